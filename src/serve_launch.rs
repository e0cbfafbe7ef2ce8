//! Machines launched at an endpoint, torn down there, and reaped.
//!
//! serve keeps no labels, so a machine cannot say who owns it. Instead the
//! library records every machine it launches at an endpoint in a file on
//! this host, under `$XDG_STATE_HOME/libbottle/serve` (else
//! `~/.local/state/libbottle/serve`): the endpoint's URL, the machine's
//! name and creation time, and the owning process as the CLI's labels name
//! it. The record is written before the machine is created and removed once
//! it is deleted. [`reap_at`] deletes the machines of records whose owner
//! has exited: only what this user launched from this host, never a
//! machine made again under the same name since (its creation time
//! differs), and nothing whose record was lost.

use std::fs;
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::cancel::{Bounds, Limits};
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::guest_env;
use crate::launch::{generated_name, LaunchOptions, ProcessId, CLEANUP_GRACE};
use crate::machine::{Host, Machine};
use crate::serve::{CreateRequest, EnvVar, Lifecycle, Mount, Serve};

/// One machine launched at an endpoint.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    url: String,
    machine: String,
    /// serve's `createdAt`, once the create has answered.
    created_at: Option<u64>,
    owner: ProcessId,
}

/// [`crate::Bottle::launch`] at an endpoint.
pub(crate) fn launch(opts: &LaunchOptions, ep: &Endpoint) -> Result<Machine> {
    let serve = Serve::new(ep)?;
    let bounds = opts.limits.start();
    let owner = ProcessId::current()?;
    let name = opts
        .name
        .clone()
        .unwrap_or_else(|| generated_name(owner.pid));
    let mut record = Record {
        url: ep.url().to_owned(),
        machine: name.clone(),
        created_at: None,
        owner,
    };
    record.save()?;
    let volumes: Vec<(String, &str, bool)> = opts
        .volumes
        .iter()
        .map(|v| {
            (
                v.host.to_string_lossy().into_owned(),
                v.guest.as_str(),
                v.read_only,
            )
        })
        .collect();
    let carriers: Vec<String> = (0..opts.env.len())
        .map(guest_env::machine_carrier)
        .collect();
    let req = CreateRequest {
        name: &name,
        image: opts.image.as_deref(),
        cpus: opts.cpus,
        memory_mb: opts.memory_mib,
        network: opts.network,
        mounts: volumes
            .iter()
            .map(|(source, target, readonly)| Mount {
                source,
                target,
                readonly: *readonly,
            })
            .collect(),
        env: carriers
            .iter()
            .zip(&opts.env)
            .map(|(name, (_, value))| EnvVar { name, value })
            .collect(),
    };
    let asked = now_secs();
    let what = |op: &str| format!("smolvm machine {op} on '{name}'");
    let created = match serve.create(&req, &bounds) {
        Ok(Ok(info)) => info,
        Ok(Err(refused)) => {
            record.remove();
            return Err(failed("create", &name, &refused.message));
        }
        Err(e @ (Error::Timeout(_) | Error::Cancelled(_))) => {
            // Ours only if it was created since the request went out.
            let cleanup = cleanup_bounds();
            if let Ok(Some(info)) = serve.machine(&name, &cleanup) {
                if info.created_at.is_some_and(|t| t >= asked) {
                    let _ = serve.lifecycle(Lifecycle::Delete, &name, &cleanup);
                }
            }
            record.remove();
            return Err(bounds.explain(&what("create"), e));
        }
        Err(e) => {
            record.remove();
            return Err(e);
        }
    };
    record.created_at = created.created_at;
    // The machine exists: a record that cannot be updated still names it.
    let _ = record.save();
    let started = serve
        .lifecycle(Lifecycle::Start, &name, &bounds)
        .and_then(|r| r.map_err(|refused| failed("start", &name, &refused.message)))
        .map_err(|e| bounds.explain(&what("start"), e));
    if let Err(start) = started {
        let limited = bounds.deadline.is_some() || bounds.cancel.is_some();
        let cleanup = if limited {
            cleanup_bounds()
        } else {
            Bounds::default()
        };
        return Err(match delete(&serve, &name, &cleanup) {
            Ok(()) => {
                record.remove();
                start
            }
            Err(delete) => Error::Smolvm(format!(
                "{start}; deleting the machine afterwards failed too: {delete}"
            )),
        });
    }
    let env = opts.env.iter().map(|(k, _)| k.clone()).collect();
    let machine_env = opts.env.iter().map(|(_, v)| v.clone()).collect();
    Ok(Machine::new(
        name,
        Host::Serve { serve, machine_env },
        opts.prompt_path.clone(),
        env,
    ))
}

/// Stops and deletes a launched machine at its endpoint, and forgets it.
pub(crate) fn teardown(serve: &Serve, name: &str, bounds: &Bounds) -> Result<()> {
    let stopped = serve
        .lifecycle(Lifecycle::Stop, name, bounds)
        .and_then(|r| r.map_err(|refused| failed("stop", name, &refused.message)));
    if let Err(e @ (Error::Timeout(_) | Error::Cancelled(_))) = stopped {
        return Err(bounds.explain(&format!("smolvm machine stop on '{name}'"), e));
    }
    delete(serve, name, bounds)?;
    Record::forget(serve.url(), name);
    stopped
}

/// Deletes a machine; one already gone counts as deleted.
fn delete(serve: &Serve, name: &str, bounds: &Bounds) -> Result<()> {
    match serve.lifecycle(Lifecycle::Delete, name, bounds) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(refused)) if refused.status == 404 => Ok(()),
        Ok(Err(refused)) => Err(failed("delete", name, &refused.message)),
        Err(e) => Err(bounds.explain(&format!("smolvm machine delete on '{name}'"), e)),
    }
}

/// [`crate::Bottle::reap_at`]: deletes the machines this host's records
/// for `ep` name whose owner is gone.
pub(crate) fn reap_at(ep: &Endpoint, removed: &mut Vec<String>, limits: &Limits) -> Result<()> {
    let serve = Serve::new(ep)?;
    let bounds = limits.start();
    let here = ProcessId::current()?;
    let mut failures = Vec::new();
    for (path, record) in Record::all()? {
        if record.url != ep.url() || !record.owner.is_gone(&here) {
            continue;
        }
        let name = record.machine.as_str();
        let info = serve
            .machine(name, &bounds)
            .map_err(|e| bounds.explain("smolvm serve's machine list", e))?;
        let ours =
            info.is_some_and(|i| record.created_at.is_none() || i.created_at == record.created_at);
        if ours {
            match delete(&serve, name, &bounds) {
                Ok(()) => removed.push(name.to_owned()),
                Err(e @ (Error::Timeout(_) | Error::Cancelled(_))) => return Err(e),
                Err(e) => {
                    failures.push(e.to_string());
                    continue;
                }
            }
        }
        let _ = fs::remove_file(path);
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Error::Smolvm(failures.join("; ")))
    }
}

impl Record {
    /// The directory of the records; created when a record is saved.
    fn dir() -> Option<PathBuf> {
        let state = std::env::var_os("XDG_STATE_HOME")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|h| !h.is_empty())
                    .map(|h| PathBuf::from(h).join(".local/state"))
            })?;
        Some(state.join("libbottle/serve"))
    }

    /// The record's file: the machine's name and a hash of the URL, so that
    /// one name at two endpoints has two records.
    fn path(url: &str, machine: &str) -> Option<PathBuf> {
        // FNV-1a: stable across builds, which std's hasher is not.
        let hash = url.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        Some(Self::dir()?.join(format!("{machine}@{hash:016x}.json")))
    }

    /// Writes the record whole (a temporary file renamed into place).
    fn save(&self) -> Result<()> {
        let Some(path) = Self::path(&self.url, &self.machine) else {
            return Err(Error::io(
                "recording the machine for reap",
                std::io::Error::other("neither XDG_STATE_HOME nor HOME is set"),
            ));
        };
        let dir = path.parent().expect("a record has a directory");
        let context = || format!("recording the machine for reap in {}", dir.display());
        fs::create_dir_all(dir).map_err(|e| Error::io(context(), e))?;
        let mut temp = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(context(), e))?;
        serde_json::to_writer(&mut temp, self).map_err(|e| Error::io(context(), e.into()))?;
        temp.persist(&path)
            .map(drop)
            .map_err(|e| Error::io(context(), e.error))
    }

    fn remove(&self) {
        Self::forget(&self.url, &self.machine);
    }

    fn forget(url: &str, machine: &str) {
        if let Some(path) = Self::path(url, machine) {
            let _ = fs::remove_file(path);
        }
    }

    /// Every record readable on this host (unreadable ones are skipped).
    fn all() -> Result<Vec<(PathBuf, Record)>> {
        let Some(dir) = Self::dir() else {
            return Ok(Vec::new());
        };
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(format!("reading {}", dir.display()), e)),
        };
        Ok(entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
            .filter_map(|e| {
                let data = fs::read(e.path()).ok()?;
                Some((e.path(), serde_json::from_slice(&data).ok()?))
            })
            .collect())
    }
}

fn failed(op: &str, name: &str, message: &str) -> Error {
    crate::smolvm::failed(op, name, message)
}

fn cleanup_bounds() -> Bounds {
    Bounds {
        deadline: Some(Instant::now() + CLEANUP_GRACE),
        timeout: Some(CLEANUP_GRACE),
        cancel: None,
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
