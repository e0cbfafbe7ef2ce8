//! A bottle's lifecycle: launching one that owns its machine, closing
//! any bottle, and reaping the machines of processes that are gone.

use std::ffi::{c_char, CString};

use super::boundary::{
    self, box_out, free_boxed, mut_arg, opt_str_arg, out_arg, path_arg, ref_arg, str_arg,
    timeout_arg,
};
use super::call_options::bottle_call_options;
use super::cancel::{bottle_cancel, cancel_arg};
use super::endpoint::bottle_endpoint;
use super::exec_options::env_pair;
use super::handle::bottle;
use super::status::bottle_status;
use crate::bottle::Bottle;
use crate::cancel::Limits;
use crate::error::Error;
use crate::launch::{LaunchOptions, Volume};
use crate::validate;

/// Options for `bottle_launch` (opaque). Same rules as `bottle_exec_options`:
/// extended only by new setters; not changed while a call uses them.
pub struct bottle_launch_options(LaunchOptions);

/// Makes launch options with the defaults in `*out` (NULL on failure): a
/// generated unique name, smolvm's default image, CPUs and memory, no
/// network, no volumes, no environment, no prompt file.
///
/// Returns `BOTTLE_OK`, or `BOTTLE_ERR_INVALID_ARGUMENT` for NULL `out`.
/// Thread-safe.
///
/// # Safety
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn bottle_launch_options_new(
    out: *mut *mut bottle_launch_options,
) -> bottle_status {
    boundary::guard(|| box_out(out, || Ok(bottle_launch_options(LaunchOptions::default()))))
}

/// Frees launch options; NULL is ignored.
///
/// Not while a call or another thread uses `opts`.
///
/// # Safety
/// `opts` is NULL or from `bottle_launch_options_new` and not yet freed.
#[no_mangle]
pub unsafe extern "C" fn bottle_launch_options_free(opts: *mut bottle_launch_options) {
    // SAFETY: `opts` is NULL or from its constructor, not yet freed (the contract).
    boundary::guard_void(|| unsafe { free_boxed(opts) });
}

/// The machine's name (smolvm's rules, as for `bottle_open`); NULL goes
/// back to a generated one, `bottle-PID-N-HEX`.
///
/// Returns `BOTTLE_OK`, or `BOTTLE_ERR_INVALID_ARGUMENT` for NULL `opts`,
/// or a name that breaks smolvm's rule; a refused value leaves the options
/// as they were. Not while another thread uses `opts`.
///
/// # Safety
/// `opts` is NULL or live options; `machine_name` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn bottle_launch_options_set_name(
    opts: *mut bottle_launch_options,
    machine_name: *const c_char,
) -> bottle_status {
    boundary::guard(|| {
        // SAFETY: `opts` is NULL or live, and used by no other thread during the call (the
        // contract).
        let opts = unsafe { mut_arg(opts, "opts") }?;
        // SAFETY: `machine_name` is NULL or NUL-terminated (the contract).
        let name = unsafe { opt_str_arg(machine_name, "machine_name") }?;
        if let Some(n) = name {
            validate::machine_name(n)?;
        }
        opts.0.name = name.map(str::to_owned);
        Ok(())
    })
}

/// The image to boot (an OCI reference such as the agent image: printable
/// ASCII, no spaces, not starting with `-`); NULL is smolvm's default.
///
/// Returns `BOTTLE_OK`, or `BOTTLE_ERR_INVALID_ARGUMENT` for NULL `opts`,
/// or an `image` that is not an image reference; a refused value leaves the
/// options as they were. Not while another thread uses `opts`.
///
/// # Safety
/// `opts` is NULL or live options; `image` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn bottle_launch_options_set_image(
    opts: *mut bottle_launch_options,
    image: *const c_char,
) -> bottle_status {
    boundary::guard(|| {
        // SAFETY: `opts` is NULL or live, and used by no other thread during the call (the
        // contract).
        let opts = unsafe { mut_arg(opts, "opts") }?;
        // SAFETY: `image` is NULL or NUL-terminated (the contract).
        let image = unsafe { opt_str_arg(image, "image") }?;
        if let Some(i) = image {
            validate::image(i)?;
        }
        opts.0.image = image.map(str::to_owned);
        Ok(())
    })
}

/// Virtual CPUs; 0 goes back to smolvm's default.
///
/// Returns `BOTTLE_OK`, or `BOTTLE_ERR_INVALID_ARGUMENT` for NULL `opts`.
/// Not while another thread uses `opts`.
///
/// # Safety
/// `opts` is NULL or live options.
#[no_mangle]
pub unsafe extern "C" fn bottle_launch_options_set_cpus(
    opts: *mut bottle_launch_options,
    cpus: u32,
) -> bottle_status {
    boundary::guard(|| {
        // SAFETY: `opts` is NULL or live, and used by no other thread during the call (the
        // contract).
        let opts = unsafe { mut_arg(opts, "opts") }?;
        opts.0.cpus = (cpus > 0).then_some(cpus);
        Ok(())
    })
}

/// Memory in MiB; 0 goes back to smolvm's default.
///
/// Returns `BOTTLE_OK`, or `BOTTLE_ERR_INVALID_ARGUMENT` for NULL `opts`.
/// Not while another thread uses `opts`.
///
/// # Safety
/// `opts` is NULL or live options.
#[no_mangle]
pub unsafe extern "C" fn bottle_launch_options_set_memory_mib(
    opts: *mut bottle_launch_options,
    mib: u32,
) -> bottle_status {
    boundary::guard(|| {
        // SAFETY: `opts` is NULL or live, and used by no other thread during the call (the
        // contract).
        let opts = unsafe { mut_arg(opts, "opts") }?;
        opts.0.memory_mib = (mib > 0).then_some(mib);
        Ok(())
    })
}

/// Outbound network for the guest (smolvm's `--net`); off by default.
///
/// Returns `BOTTLE_OK`, or `BOTTLE_ERR_INVALID_ARGUMENT` for NULL `opts`.
/// Not while another thread uses `opts`.
///
/// # Safety
/// `opts` is NULL or live options.
#[no_mangle]
pub unsafe extern "C" fn bottle_launch_options_set_network(
    opts: *mut bottle_launch_options,
    enabled: bool,
) -> bottle_status {
    boundary::guard(|| {
        // SAFETY: `opts` is NULL or live, and used by no other thread during the call (the
        // contract).
        let opts = unsafe { mut_arg(opts, "opts") }?;
        opts.0.network = enabled;
        Ok(())
    })
}

/// Shares the host directory `host_path` into the guest at `guest_path`,
/// read-only if `read_only`. Both absolute, UTF-8, without `:` (smolvm's
/// `-v HOST:GUEST[:ro]` is split at `:`).
///
/// Returns `BOTTLE_OK`, or `BOTTLE_ERR_INVALID_ARGUMENT` for NULL `opts`,
/// or a path that is NULL, not absolute UTF-8, or holds `:`; a refused
/// value leaves the options as they were. Not while another thread uses
/// `opts`.
///
/// # Safety
/// `opts` is NULL or live options; strings are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn bottle_launch_options_add_volume(
    opts: *mut bottle_launch_options,
    host_path: *const c_char,
    guest_path: *const c_char,
    read_only: bool,
) -> bottle_status {
    boundary::guard(|| {
        // SAFETY: `opts` is NULL or live, and used by no other thread during the call (the
        // contract).
        let opts = unsafe { mut_arg(opts, "opts") }?;
        // SAFETY: `host_path` is NULL or NUL-terminated (the contract).
        let host = unsafe { path_arg(host_path, "host_path") }?;
        // SAFETY: `guest_path` is NULL or NUL-terminated (the contract).
        let guest = unsafe { str_arg(guest_path, "guest_path") }?;
        let volume = Volume {
            host: host.to_path_buf(),
            guest: guest.to_owned(),
            read_only,
        };
        validate::volume(&volume.host, &volume.guest, ("host_path", "guest_path"))?;
        opts.0.volumes.push(volume);
        Ok(())
    })
}

/// Adds `name=value` to the environment of every command in the machine.
/// Same rules as `bottle_exec_options_add_env`, and likewise visible on
/// smolvm's command line while `create` runs: no secrets here.
///
/// Returns `BOTTLE_OK`, or `BOTTLE_ERR_INVALID_ARGUMENT` for NULL `opts`,
/// or a `name` or `value` that is NULL, not UTF-8 or refused; a refused
/// value leaves the options as they were. Not while another thread uses
/// `opts`.
///
/// # Safety
/// `opts` is NULL or live options; strings are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn bottle_launch_options_add_env(
    opts: *mut bottle_launch_options,
    name: *const c_char,
    value: *const c_char,
) -> bottle_status {
    boundary::guard(|| {
        // SAFETY: `opts` is NULL or live, and used by no other thread during the call (the
        // contract).
        let opts = unsafe { mut_arg(opts, "opts") }?;
        // SAFETY: `name` and `value` are NULL or NUL-terminated (the contract).
        let pair = unsafe { env_pair(name, value) }?;
        opts.0.env.push(pair);
        Ok(())
    })
}

/// The in-guest system-prompt file for `bottle_exec_claude`, as
/// `prompt_path` of `bottle_open`; NULL for none.
///
/// Returns `BOTTLE_OK`, or `BOTTLE_ERR_INVALID_ARGUMENT` for NULL `opts`,
/// or a `path` that is not an absolute UTF-8 path; a refused value leaves
/// the options as they were. Not while another thread uses `opts`.
///
/// # Safety
/// `opts` is NULL or live options; `path` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn bottle_launch_options_set_prompt_path(
    opts: *mut bottle_launch_options,
    path: *const c_char,
) -> bottle_status {
    boundary::guard(|| {
        // SAFETY: `opts` is NULL or live, and used by no other thread during the call (the
        // contract).
        let opts = unsafe { mut_arg(opts, "opts") }?;
        // SAFETY: `path` is NULL or NUL-terminated (the contract).
        let path = unsafe { opt_str_arg(path, "prompt_path") }?;
        if let Some(p) = path {
            validate::guest_path("prompt_path", p)?;
        }
        opts.0.prompt_path = path.map(str::to_owned);
        Ok(())
    })
}

/// Launches at the `smolvm serve` of `ep` instead of through the local
/// smolvm CLI; NULL goes back to the CLI. The endpoint is copied: it may
/// be freed once this returns.
///
/// serve keeps no labels, so a machine launched there is recorded on this
/// host instead (a file under `$XDG_STATE_HOME/libbottle/serve`, else
/// `~/.local/state/libbottle/serve`), for `bottle_reap_at`; `bottle_launch`
/// fails with `BOTTLE_ERR_IO` if the record cannot be written. The
/// machine's variables (`bottle_launch_options_add_env`) are sent with
/// every command, since serve does not apply them to its commands itself.
///
/// Returns `BOTTLE_OK`, or `BOTTLE_ERR_INVALID_ARGUMENT` for NULL `opts`
/// or an `https://` endpoint without its certificates. Not while another
/// thread uses `opts`.
///
/// # Safety
/// `opts` is NULL or live options; `ep` is NULL or a live endpoint.
#[no_mangle]
pub unsafe extern "C" fn bottle_launch_options_set_endpoint(
    opts: *mut bottle_launch_options,
    ep: *const bottle_endpoint,
) -> bottle_status {
    boundary::guard(|| {
        // SAFETY: `opts` is NULL or live, and used by no other thread during the call (the
        // contract).
        let opts = unsafe { mut_arg(opts, "opts") }?;
        // SAFETY: `ep` is NULL or live (the contract).
        let ep = unsafe { ep.as_ref() };
        if let Some(ep) = ep {
            ep.0.check_usable()?;
        }
        opts.0.endpoint = ep.map(|ep| ep.0.clone());
        Ok(())
    })
}

/// How long the launch (create and start together) may take, in
/// milliseconds; 0 means no limit. When it is up, the smolvm process
/// running then, and every process in its process group, is stopped
/// (SIGTERM, SIGKILL half a second later) and reaped, the machine if it was
/// created is deleted again, and `bottle_launch` returns
/// `BOTTLE_ERR_TIMEOUT`. That deletion (as after a failed start of a launch
/// with a timeout or a cancel token) gets 5 seconds of its own; a machine
/// smolvm has not deleted by then stays, labelled as this process's, for
/// `bottle_reap` once the process has exited.
///
/// Returns `BOTTLE_OK`, or `BOTTLE_ERR_INVALID_ARGUMENT` for NULL `opts`.
/// Not while another thread uses `opts`.
///
/// # Safety
/// `opts` is NULL or live options.
#[no_mangle]
pub unsafe extern "C" fn bottle_launch_options_set_timeout_ms(
    opts: *mut bottle_launch_options,
    timeout_ms: u64,
) -> bottle_status {
    boundary::guard(|| {
        // SAFETY: `opts` is NULL or live, and used by no other thread during the call (the
        // contract).
        let opts = unsafe { mut_arg(opts, "opts") }?;
        opts.0.limits.timeout = timeout_arg(timeout_ms);
        Ok(())
    })
}

/// Attaches a cancel token (NULL detaches): tripped, it stops the launch as
/// the timeout does, with `BOTTLE_ERR_CANCELLED`. The options keep their
/// own reference, so the token may be freed before them.
///
/// Returns `BOTTLE_OK`, or `BOTTLE_ERR_INVALID_ARGUMENT` for NULL `opts`.
/// Not while another thread uses `opts`.
///
/// # Safety
/// `opts` is NULL or live options; `cancel` is NULL or a live token.
#[no_mangle]
pub unsafe extern "C" fn bottle_launch_options_set_cancel(
    opts: *mut bottle_launch_options,
    cancel: *const bottle_cancel,
) -> bottle_status {
    boundary::guard(|| {
        // SAFETY: `opts` is NULL or live, and used by no other thread during the call (the
        // contract).
        let opts = unsafe { mut_arg(opts, "opts") }?;
        // SAFETY: `cancel` is NULL or a live token (the contract).
        opts.0.limits.cancel = unsafe { cancel_arg(cancel) };
        Ok(())
    })
}

/// Creates a machine as `opts` says (NULL: all defaults), starts it, and
/// returns in `*out` a bottle that owns it: `bottle_close` stops and deletes
/// the machine. The machine carries smolvm labels marking it as libbottle's
/// and naming this process (pid, start time, boot id), so that
/// `bottle_reap` can find it should this process die without closing it.
/// `bottle_machine_name` tells the name.
///
/// If the machine is created but fails to start, it is deleted again and the
/// start's error returned (`BOTTLE_ERR_SMOLVM`, smolvm's message). Other
/// codes: `BOTTLE_ERR_INVALID_ARGUMENT`, `BOTTLE_ERR_SMOLVM_NOT_FOUND`,
/// `BOTTLE_ERR_IO`; with a timeout or cancel token set,
/// `BOTTLE_ERR_TIMEOUT` or `BOTTLE_ERR_CANCELLED`. Blocks until the machine
/// runs. Thread-safe.
///
/// # Safety
/// `opts` is NULL or live options; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn bottle_launch(
    opts: *const bottle_launch_options,
    out: *mut *mut bottle,
) -> bottle_status {
    boundary::guard(|| {
        let default = LaunchOptions::default();
        // SAFETY: per the contract.
        let opts = unsafe { opts.as_ref() }.map_or(&default, |o| &o.0);
        box_out(out, || Bottle::launch(opts).map(bottle::new))
    })
}

/// Releases a bottle. NULL is ignored. A bottle from `bottle_open` leaves
/// its machine as it is: its lifecycle belongs to whoever started it. A
/// bottle from `bottle_launch` stops and deletes its machine; a failure to
/// do so is not reported (use `bottle_close_checked` to see it), and the
/// machine then stays behind, labelled as this process's, for `bottle_reap`
/// to delete once this process has exited. No other thread may be using the
/// bottle, and it must not be used afterwards.
///
/// # Safety
/// `b` is NULL or a bottle from `bottle_open` or `bottle_launch`, not yet
/// closed.
#[no_mangle]
pub unsafe extern "C" fn bottle_close(b: *mut bottle) {
    boundary::guard_void(|| {
        if !b.is_null() {
            // SAFETY: `b` came from `box_out` in `bottle_open` or `bottle_launch`.
            drop(unsafe { Box::from_raw(b) });
        }
    });
}

/// Releases a bottle and reports what happened to its machine: for a bottle
/// from `bottle_launch`, the machine is stopped and deleted, and a failure
/// of either is returned as `BOTTLE_ERR_SMOLVM` (deletion is tried even if
/// the stop failed); for a bottle from `bottle_open` nothing happens to the
/// machine and the result is `BOTTLE_OK`. The handle is freed in every case
/// and must not be used again. NULL is `BOTTLE_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `b` is NULL or an open bottle, used by no other thread.
#[no_mangle]
pub unsafe extern "C" fn bottle_close_checked(b: *mut bottle) -> bottle_status {
    // SAFETY: the arguments go on under this function's own contract.
    unsafe { bottle_close_with(b, std::ptr::null()) }
}

/// `bottle_close_checked` with the timeout and cancel token of `opts`
/// (NULL: none, exactly `bottle_close_checked`). A teardown stopped by them
/// returns `BOTTLE_ERR_TIMEOUT` or `BOTTLE_ERR_CANCELLED`, with smolvm and
/// its process group stopped and reaped; the machine is then left as it
/// is (perhaps stopped, not deleted), still labelled as this process's,
/// for `bottle_reap` once this process has exited. The handle is freed in
/// every case. Not for a bottle another thread is using.
///
/// # Safety
/// `b` is NULL or an open bottle, used by no other thread; `opts` is NULL
/// or live options.
#[no_mangle]
pub unsafe extern "C" fn bottle_close_with(
    b: *mut bottle,
    opts: *const bottle_call_options,
) -> bottle_status {
    boundary::guard(|| {
        if b.is_null() {
            return Err(Error::invalid("b", "must not be NULL"));
        }
        // SAFETY: `b` came from `box_out` in `bottle_open` or `bottle_launch`.
        let handle = unsafe { Box::from_raw(b) };
        let default = Limits::default();
        // SAFETY: per the contract.
        let limits = unsafe { opts.as_ref() }.map_or(&default, |o| &o.0);
        handle.inner.close_within(limits)
    })
}

/// A list of machine names, owned by the library: free it with
/// `bottle_names_free`. The caller allocates the struct itself, so its
/// size and fields are fixed for good (see the top of this header).
#[repr(C)]
pub struct bottle_names {
    /// `count` NUL-terminated UTF-8 names.
    pub names: *mut *mut c_char,
    pub count: usize,
}

/// Deletes every machine that libbottle launched and whose owning process
/// is gone (exited, or from before a reboot), such as those of a process
/// that was killed before it could close its bottles. Machines of live
/// processes, and machines libbottle did not launch, are left alone.
///
/// `removed` (required) receives the names deleted, also when the call
/// fails part-way: a machine that could not be deleted makes the call
/// return `BOTTLE_ERR_SMOLVM` after the others have been tried. Free it with
/// `bottle_names_free`. Thread-safe; finds smolvm as `bottle_open` does. An
/// owner that has exited but not been waited for (a zombie) is gone. Two
/// reapers at once are safe: a machine the other deleted first is neither
/// listed nor an error.
///
/// # Safety
/// `removed` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn bottle_reap(removed: *mut bottle_names) -> bottle_status {
    // SAFETY: the arguments go on under this function's own contract.
    unsafe { bottle_reap_with(std::ptr::null(), removed) }
}

/// `bottle_reap` with the timeout and cancel token of `opts` (NULL: none,
/// exactly `bottle_reap`). Stopped, it returns `BOTTLE_ERR_TIMEOUT` or
/// `BOTTLE_ERR_CANCELLED`, with `removed` listing the machines deleted
/// before; the smolvm process running then, and its process group, have
/// been stopped and reaped (a machine whose delete was stopped may be
/// left, for the next reap). Thread-safe, also with other reapers at once:
/// a machine another reaper deleted first is neither listed nor an error.
///
/// # Safety
/// `opts` is NULL or live options; `removed` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn bottle_reap_with(
    opts: *const bottle_call_options,
    removed: *mut bottle_names,
) -> bottle_status {
    // SAFETY: the arguments go on under this function's own contract.
    unsafe { reap_into(opts, removed, Bottle::reap_within) }
}

/// The body of both reaps: `removed` is zeroed first, whatever fails, then
/// filled with what `reap` deleted.
///
/// # Safety
/// `opts` is NULL or live options; `removed` is NULL or writable.
unsafe fn reap_into(
    opts: *const bottle_call_options,
    removed: *mut bottle_names,
    reap: impl FnOnce(&mut Vec<String>, &Limits) -> Result<(), Error>,
) -> bottle_status {
    boundary::guard(|| {
        let out = out_arg(removed, "removed")?;
        // SAFETY: `out` is non-NULL and writable per the contract.
        unsafe {
            out.as_ptr().write(bottle_names {
                names: std::ptr::null_mut(),
                count: 0,
            })
        };
        let default = Limits::default();
        // SAFETY: per the contract.
        let limits = unsafe { opts.as_ref() }.map_or(&default, |o| &o.0);
        let mut names = Vec::new();
        let result = reap(&mut names, limits);
        // SAFETY: `out` is non-NULL and writable per the contract.
        unsafe { out.as_ptr().write(names_to_c(names)) };
        result
    })
}

/// `bottle_reap_with` at an endpoint. serve keeps no labels: this deletes
/// the machines that this user launched at `ep` from this host (recorded
/// then, see `bottle_launch_options_set_endpoint`) and whose owning process
/// is gone. It never touches machines launched from another host or by
/// another user, nor one made again under the same name since (its
/// creation time differs from the record's); a machine whose record was
/// lost is not found. `opts` may be NULL; `removed` is filled as by
/// `bottle_reap`. Returns `BOTTLE_OK`, `BOTTLE_ERR_INVALID_ARGUMENT`,
/// `BOTTLE_ERR_SMOLVM` (serve refused a delete; the others were tried),
/// `BOTTLE_ERR_IO` (serve unreachable, records unreadable),
/// `BOTTLE_ERR_TIMEOUT` or `BOTTLE_ERR_CANCELLED`. Thread-safe.
///
/// # Safety
/// `ep` is NULL or a live endpoint; `opts` is NULL or live options;
/// `removed` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn bottle_reap_at(
    ep: *const bottle_endpoint,
    opts: *const bottle_call_options,
    removed: *mut bottle_names,
) -> bottle_status {
    // SAFETY: the arguments go on under this function's own contract.
    unsafe {
        reap_into(opts, removed, |names, limits| {
            // SAFETY: `ep` is NULL or live (the contract).
            let ep = ref_arg(ep, "ep")?;
            Bottle::reap_at(&ep.0, names, limits)
        })
    }
}

/// Frees a name list and zeroes it. NULL-safe and twice-safe.
///
/// # Safety
/// `names` is NULL or a list filled by libbottle (or all zeros).
#[no_mangle]
pub unsafe extern "C" fn bottle_names_free(names: *mut bottle_names) {
    boundary::guard_void(|| {
        // SAFETY: per the contract.
        let Some(list) = (unsafe { names.as_mut() }) else {
            return;
        };
        if !list.names.is_null() {
            // SAFETY: made by `names_to_c` from a boxed slice of `count`
            // pointers, each from `CString::into_raw`.
            let all = unsafe {
                Box::from_raw(std::ptr::slice_from_raw_parts_mut(list.names, list.count))
            };
            for &name in all.iter() {
                // SAFETY: each came from `CString::into_raw` in
                // `names_to_c`, and the list is freed only once.
                drop(unsafe { CString::from_raw(name) });
            }
        }
        list.names = std::ptr::null_mut();
        list.count = 0;
    });
}

/// The names as C gets them; no names is `{NULL, 0}`.
fn names_to_c(names: Vec<String>) -> bottle_names {
    if names.is_empty() {
        return bottle_names {
            names: std::ptr::null_mut(),
            count: 0,
        };
    }
    let raw: Box<[*mut c_char]> = names
        .into_iter()
        .map(|n| {
            CString::new(n)
                .expect("machine names have no NUL")
                .into_raw()
        })
        .collect();
    let count = raw.len();
    bottle_names {
        names: Box::into_raw(raw).cast(),
        count,
    }
}
