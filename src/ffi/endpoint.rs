//! Endpoints: a `smolvm serve` to reach instead of the local smolvm CLI,
//! and opening a bottle at one.

use std::ffi::c_char;

use super::boundary::{
    self, box_out, free_boxed, mut_arg, opt_str_arg, path_arg, ref_arg, str_arg,
};
use super::handle::bottle;
use super::status::bottle_status;
use crate::bottle::Bottle;
use crate::endpoint::Endpoint;

/// A `smolvm serve` to talk to (opaque): a bottle opened or launched at an
/// endpoint does every operation through serve's HTTP API instead of
/// running the smolvm CLI, with the same results and status codes.
///
/// What differs at an endpoint:
/// - `bottle_exec_claude` with `tty` runs claude on serve's interactive
///   route: a guest terminal, with the caller's terminal in raw mode
///   (stderr arrives merged into stdout, as on any terminal). Without
///   `tty`, claude's stdout and stderr arrive in pieces, as below.
/// - Output reaches `bottle_exec_options_set_stdout_fn` and `..._stderr_fn`
///   callbacks in pieces fetched about every 0.2 s, not as it is written.
/// - A command whose caller vanished without stopping it is killed in the
///   guest about a minute later (through the CLI, at once).
/// - `bottle_reap` does not see machines launched at an endpoint; use
///   `bottle_reap_at`.
///
/// An endpoint is immutable once a bottle uses it (bottles keep what they
/// need: the endpoint may be freed as soon as `bottle_open_at` or
/// `bottle_launch` returns) and may be shared by threads for reading.
pub struct bottle_endpoint(pub(super) Endpoint);

/// Makes an endpoint from `url` in `*out` (NULL on failure); nothing is
/// contacted.
///
/// - `url`: `unix:/path/to/smolvm.sock` (or `unix:///path`), the socket
///   `smolvm serve` listens on by default; `https://host:port`, serve's
///   TCP listener with mutual TLS (set the certificates with
///   `bottle_endpoint_set_tls` before use); or `http://127.0.0.1:port`,
///   plain HTTP, allowed only to a loopback address because serve has no
///   other authentication.
///
/// Returns `BOTTLE_OK`, or `BOTTLE_ERR_INVALID_ARGUMENT` for NULL `out`
/// or a `url` that is none of those (the message says why). Thread-safe.
///
/// # Safety
/// `url` is NULL or NUL-terminated; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn bottle_endpoint_new(
    url: *const c_char,
    out: *mut *mut bottle_endpoint,
) -> bottle_status {
    boundary::guard(|| {
        box_out(out, || {
            // SAFETY: `url` is NULL or NUL-terminated (the contract).
            let url = unsafe { str_arg(url, "url") }?;
            Endpoint::new(url).map(bottle_endpoint)
        })
    })
}

/// Sets the mutual-TLS material of an `https://` endpoint, read from PEM
/// files at once: `ca_file`, the CA certificate(s) serve's certificate
/// must chain to (its host name must match the URL's); `cert_file`, this
/// client's certificate (chain), which serve checks against its
/// `SMOLVM_SERVE_TLS_CLIENT_CA`; `key_file`, the client's private key.
/// All three are required.
///
/// Returns `BOTTLE_OK`; `BOTTLE_ERR_INVALID_ARGUMENT` for a NULL argument,
/// an endpoint that is not `https://`, or a file without the PEM it
/// should hold (the message names the argument); `BOTTLE_ERR_IO` for a
/// file that cannot be read; `BOTTLE_ERR_UNSUPPORTED` from a library
/// built without its `tls` feature. A refused call leaves the endpoint as it
/// was. Not while another thread uses `ep`.
///
/// # Safety
/// `ep` is NULL or a live endpoint; the paths are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn bottle_endpoint_set_tls(
    ep: *mut bottle_endpoint,
    ca_file: *const c_char,
    cert_file: *const c_char,
    key_file: *const c_char,
) -> bottle_status {
    boundary::guard(|| {
        // SAFETY: `ep` is NULL or live, used by no other thread (the contract).
        let ep = unsafe { mut_arg(ep, "ep") }?;
        // SAFETY: the paths are NULL or NUL-terminated (the contract).
        let (ca, cert, key) = unsafe {
            (
                path_arg(ca_file, "ca_file")?,
                path_arg(cert_file, "cert_file")?,
                path_arg(key_file, "key_file")?,
            )
        };
        ep.0.set_tls(ca, cert, key)
    })
}

/// Frees an endpoint; NULL is ignored. Bottles opened or launched at it
/// are not affected.
///
/// # Safety
/// `ep` is NULL or from `bottle_endpoint_new` and not yet freed, and no
/// other thread uses it.
#[no_mangle]
pub unsafe extern "C" fn bottle_endpoint_free(ep: *mut bottle_endpoint) {
    // SAFETY: `ep` is NULL or from its constructor, not yet freed (the contract).
    boundary::guard_void(|| unsafe { free_boxed(ep) });
}

/// `bottle_open` at an endpoint: a handle on the machine `machine_name`
/// that `ep`'s serve runs. Same arguments, rules and codes as
/// `bottle_open` (it does not contact serve either; an `https://` endpoint
/// without its certificates is `BOTTLE_ERR_INVALID_ARGUMENT`), and the
/// bottle is used and closed the same way. `ep` may be freed once this
/// returns. Thread-safe.
///
/// # Safety
/// `ep` is NULL or a live endpoint; the strings are NULL or
/// NUL-terminated; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn bottle_open_at(
    ep: *const bottle_endpoint,
    machine_name: *const c_char,
    prompt_path: *const c_char,
    out: *mut *mut bottle,
) -> bottle_status {
    boundary::guard(|| {
        box_out(out, || {
            // SAFETY: `ep` is NULL or live (the contract).
            let ep = unsafe { ref_arg(ep, "ep") }?;
            // SAFETY: `machine_name` is NULL or NUL-terminated (the contract).
            let machine = unsafe { str_arg(machine_name, "machine_name") }?;
            // SAFETY: `prompt_path` is NULL or NUL-terminated (the contract).
            let prompt = unsafe { opt_str_arg(prompt_path, "prompt_path") }?;
            Bottle::open_at(&ep.0, machine, prompt).map(bottle::new)
        })
    })
}
