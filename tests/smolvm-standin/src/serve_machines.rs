//! Machine lifecycle routes of `serve`: create, list, get, start, stop,
//! delete, with smolvm 1.9.2's request and response shapes, over the
//! stand-in's store (the same records and root filesystems as its CLI).

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::cli::{CreateArgs, DeleteArgs, NameArgs};
use crate::lifecycle;
use crate::machine::{Machine, State as MachineState, Store};
use crate::serve::{blocking, ApiError, Shared};

/// smolvm's defaults for a machine created through the API.
const DEFAULT_CPUS: u8 = 4;
const DEFAULT_MEMORY_MIB: u32 = 8192;
/// The disk sizes smolvm reports for a machine created without any.
const DEFAULT_STORAGE_GB: u64 = 20;
const DEFAULT_OVERLAY_GB: u64 = 10;

#[derive(Deserialize)]
pub struct MountSpec {
    source: String,
    target: String,
    #[serde(default)]
    readonly: bool,
}

#[derive(Deserialize)]
pub struct EnvVar {
    pub name: String,
    pub value: String,
}

/// The fields of smolvm's `CreateMachineRequest` the stand-in can honour.
/// As in smolvm, unknown fields are ignored (so a `labels` field is
/// accepted and dropped: machines have no labels).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateRequest {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    cpus: Option<u8>,
    #[serde(default, rename = "memoryMb")]
    mem: Option<u32>,
    #[serde(default)]
    mounts: Vec<MountSpec>,
    #[serde(default)]
    network: bool,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    secrets: std::collections::BTreeMap<String, smolvm_protocol::SecretRef>,
    /// The machine's workload environment: recorded (the CLI's exec applies
    /// it) but, as in smolvm, not applied to API execs.
    #[serde(default)]
    env: Vec<EnvVar>,
}

#[derive(Serialize)]
struct MountInfo {
    tag: String,
    source: String,
    target: String,
    readonly: bool,
}

/// smolvm's `MachineInfo`, minus what the stand-in has no value for (pid,
/// CPU and memory samples, disk usage), which smolvm omits when unknown.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MachineInfo {
    name: String,
    state: &'static str,
    cpus: u8,
    #[serde(rename = "memoryMb")]
    mem: u32,
    mounts: Vec<MountInfo>,
    ports: Vec<serde_json::Value>,
    network: bool,
    gpu: bool,
    cuda: bool,
    storage_gb: u64,
    overlay_gb: u64,
    forkable: bool,
    forkpoint_held: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    disk_used_mb: Option<u64>,
    created_at: u64,
}

impl From<&Machine> for MachineInfo {
    fn from(m: &Machine) -> Self {
        MachineInfo {
            name: m.name.clone(),
            state: m.state.as_str(),
            cpus: m.cpus,
            mem: m.mem,
            mounts: m
                .volumes
                .iter()
                .enumerate()
                .map(|(i, v)| MountInfo {
                    tag: format!("smolvm{i}"),
                    source: v.host.clone(),
                    target: v.guest.clone(),
                    readonly: v.read_only,
                })
                .collect(),
            ports: Vec::new(),
            network: m.net,
            gpu: false,
            cuda: false,
            storage_gb: DEFAULT_STORAGE_GB,
            overlay_gb: DEFAULT_OVERLAY_GB,
            forkable: false,
            forkpoint_held: false,
            disk_used_mb: Store::open()
                .ok()
                .and_then(|store| disk_used(&store.machine_dir(&m.name)).ok())
                .map(|bytes| bytes / (1024 * 1024)),
            created_at: m.created_at,
        }
    }
}

#[derive(Serialize)]
pub struct MachineList {
    machines: Vec<MachineInfo>,
}

#[derive(Serialize)]
pub struct Deleted {
    deleted: String,
}

/// The blocks a machine's directory holds, as smolvm measures its disk
/// images: real usage, not apparent size. Symbolic links are not followed.
fn disk_used(dir: &std::path::Path) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += meta.blocks() * 512;
        if meta.is_dir() {
            total += disk_used(&entry.path()).unwrap_or(0);
        }
    }
    Ok(total)
}

fn internal(e: crate::error::Error) -> ApiError {
    ApiError::Internal(e.to_string())
}

/// A machine record, or smolvm's 404 for a name it has no record of.
pub fn lookup(name: &str) -> Result<Machine, ApiError> {
    let store = Store::open().map_err(internal)?;
    if crate::name::validate(name).is_err() || !store.machine_dir(name).join("state").exists() {
        return Err(ApiError::NotFound(format!("machine '{name}' not found")));
    }
    store.load(name).map_err(internal)
}

/// smolvm's `validate_vm_name` messages.
fn validate_name(name: &str) -> Result<(), String> {
    const LABEL: &str = "machine name";
    let first = name
        .chars()
        .next()
        .ok_or_else(|| format!("{LABEL} cannot be empty"))?;
    if name.len() > 128 {
        return Err(format!(
            "{LABEL} too long: {} characters (max 128)",
            name.len()
        ));
    }
    if !first.is_ascii_alphanumeric() {
        return Err(format!(
            "{LABEL} must start with a letter or digit (got: {name:?})"
        ));
    }
    if name.ends_with('-') {
        return Err(format!("{LABEL} cannot end with a hyphen (got: {name:?})"));
    }
    if name.contains("--") {
        return Err(format!("{LABEL} cannot contain consecutive hyphens"));
    }
    match name
        .chars()
        .find(|c| !c.is_ascii_alphanumeric() && *c != '-' && *c != '_')
    {
        Some('/') | Some('\\') => Err(format!("{LABEL} cannot contain path separators")),
        Some(c) => Err(format!("{LABEL} contains invalid character: '{c}'")),
        None => Ok(()),
    }
}

/// smolvm's rule for an environment variable (or secret) name from the
/// API: which part of it a name breaks, if any.
fn env_key_rule(key: &str) -> Option<&'static str> {
    if key.is_empty() {
        Some("env key must not be empty")
    } else if key.len() > 256 {
        Some("env key exceeds 256-byte limit")
    } else if !key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        Some("env key must start with an ASCII letter or underscore")
    } else if !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Some("env key must contain only ASCII alphanumeric and underscore")
    } else {
        None
    }
}

pub fn validate_env(env: &[EnvVar]) -> Result<(), ApiError> {
    for var in env {
        if let Some(rule) = env_key_rule(&var.name) {
            return Err(ApiError::BadRequest(format!(
                "env entry with {}-byte name rejected: {rule}",
                var.name.len()
            )));
        }
    }
    Ok(())
}

/// smolvm's checks of request secrets: the key must be a variable name,
/// and the reference must name exactly one source, which the API's
/// untrusted scope then refuses whatever it is (secrets are for the CLI).
pub fn validate_secrets(
    secrets: &std::collections::BTreeMap<String, smolvm_protocol::SecretRef>,
) -> Result<(), ApiError> {
    const MAX_SECRETS: usize = 64;
    if secrets.len() > MAX_SECRETS {
        return Err(ApiError::BadRequest(format!(
            "request `secrets` map has {} entries; maximum is {MAX_SECRETS}",
            secrets.len()
        )));
    }
    // Every entry is refused; the first (in name order) is reported.
    let Some((name, source)) = secrets.iter().next() else {
        return Ok(());
    };
    if let Some(rule) = env_key_rule(name) {
        return Err(ApiError::BadRequest(format!(
            "secrets entry with {}-byte key rejected: {rule}",
            name.len()
        )));
    }
    let reason = match (&source.from_env, &source.from_file) {
        (None, None) => {
            "no source set: exactly one of from_env, from_file must be specified".to_string()
        }
        (Some(_), Some(_)) => {
            "multiple sources set: exactly one of from_env, from_file must be specified".to_string()
        }
        (Some(_), None) => untrusted("env"),
        (None, Some(_)) => untrusted("file"),
    };
    Err(ApiError::BadRequest(format!("secret '{name}': {reason}")))
}

fn untrusted(kind: &str) -> String {
    format!(
        "source kind '{kind}' is not allowed in scope Untrusted; \
         secret refs may only be resolved on the trusted local host"
    )
}

fn machine_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("vm-{:08x}", nanos ^ std::process::id())
}

pub async fn create(
    State(state): State<Shared>,
    Json(req): Json<CreateRequest>,
) -> Result<Json<MachineInfo>, ApiError> {
    // smolvm's order: the name, the mounts, then the name must be free
    // (a record unknown to the registry counts too), then secrets and env.
    let name = req.name.clone().unwrap_or_else(machine_name);
    validate_name(&name).map_err(ApiError::BadRequest)?;
    let mut volume = Vec::new();
    for m in &req.mounts {
        if !std::path::Path::new(&m.source).exists() {
            return Err(ApiError::BadRequest(format!(
                "mount source not found: {}",
                m.source
            )));
        }
        if !m.target.starts_with('/') {
            return Err(ApiError::BadRequest(format!(
                "mount operation failed: validate guest path: \
                 target path on guest should be an absolute directory: {}",
                m.target
            )));
        }
        let access = if m.readonly { ":ro" } else { "" };
        volume.push(format!("{}:{}{access}", m.source, m.target));
    }
    if state.knows(&name) {
        return Err(ApiError::Conflict(format!(
            "machine '{name}' already exists"
        )));
    }
    if lookup(&name).is_ok() {
        return Err(ApiError::Conflict(format!(
            "machine '{name}' already exists or is being created"
        )));
    }
    validate_secrets(&req.secrets)?;
    validate_env(&req.env)?;
    let args = CreateArgs {
        machine: NameArgs { name: name.clone() },
        image: req.image.clone(),
        net: req.network,
        cpus: req.cpus.unwrap_or(DEFAULT_CPUS),
        mem: req.mem.unwrap_or(DEFAULT_MEMORY_MIB),
        volume,
        env: req
            .env
            .iter()
            .map(|e| format!("{}={}", e.name, e.value))
            .collect(),
        label: Vec::new(),
    };
    let created = name.clone();
    let machine = blocking(move || {
        lifecycle::create(args).map_err(|e| {
            let text = e.to_string();
            if text.starts_with("vm already exists") {
                ApiError::Conflict(format!(
                    "machine '{created}' already exists or is being created"
                ))
            } else if text.starts_with("invalid volume") {
                ApiError::BadRequest(text)
            } else {
                ApiError::Internal(text)
            }
        })?;
        lookup(&created)
    })
    .await?;
    state.adopt(&name);
    Ok(Json(MachineInfo::from(&machine)))
}

pub async fn list() -> Result<Json<MachineList>, ApiError> {
    let machines = blocking(|| Store::open().and_then(|s| s.list()).map_err(internal)).await?;
    Ok(Json(MachineList {
        machines: machines.iter().map(MachineInfo::from).collect(),
    }))
}

pub async fn get(Path(name): Path<String>) -> Result<Json<MachineInfo>, ApiError> {
    let machine = blocking(move || lookup(&name)).await?;
    Ok(Json(MachineInfo::from(&machine)))
}

/// Marks the machine running (the stand-in's boot), as `machine start`.
pub fn boot(name: &str) -> Result<Machine, ApiError> {
    lookup(name)?;
    lifecycle::start(NameArgs {
        name: name.to_string(),
    })
    .map_err(|e| ApiError::Internal(format!("failed to start machine: {e}")))?;
    lookup(name)
}

/// `start`'s query and body, parsed only so that malformed ones are refused
/// as smolvm refuses them; fork bases and registry credentials have no
/// meaning for the stand-in.
#[derive(Deserialize)]
#[allow(dead_code)]
pub struct StartQuery {
    #[serde(default)]
    forkable: bool,
    #[serde(default, rename = "forkPoolSize")]
    fork_pool_size: Option<u32>,
    #[serde(default, rename = "cudaVramLimitMib")]
    cuda_vram_limit_mib: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct StartRequest {
    #[serde(default)]
    registry_auth: Option<serde_json::Value>,
}

/// Starts the machine and adopts it into the registry: how a machine the
/// CLI created after serve started becomes usable through the API. Its
/// guest starts with the first request that needs it.
pub async fn start(
    State(state): State<Shared>,
    Path(name): Path<String>,
    Query(_query): Query<StartQuery>,
    _body: Option<Json<StartRequest>>,
) -> Result<Json<MachineInfo>, ApiError> {
    let booted = name.clone();
    let machine = blocking(move || boot(&booted)).await?;
    state.adopt(&name);
    Ok(Json(MachineInfo::from(&machine)))
}

/// Stops the machine: its guest ends, with everything running in it.
pub async fn stop(
    State(state): State<Shared>,
    Path(name): Path<String>,
) -> Result<Json<MachineInfo>, ApiError> {
    let machine = blocking(move || {
        state.guests.end_then(&name, || {
            let m = lookup(&name)?;
            if m.state != MachineState::Running {
                return Ok(m);
            }
            lifecycle::stop(NameArgs { name: name.clone() }).map_err(internal)?;
            lookup(&name)
        })
    })
    .await?;
    Ok(Json(MachineInfo::from(&machine)))
}

/// Deletes the machine, its guest ended first.
pub async fn delete(
    State(state): State<Shared>,
    Path(name): Path<String>,
) -> Result<Json<Deleted>, ApiError> {
    let deleted = name.clone();
    let shared = state.clone();
    blocking(move || {
        shared.guests.end_then(&deleted, || {
            lookup(&deleted)?;
            lifecycle::delete(DeleteArgs {
                machine: NameArgs {
                    name: deleted.clone(),
                },
                force: true,
            })
            .map_err(internal)
        })
    })
    .await?;
    state.forget(&name);
    Ok(Json(Deleted { deleted: name }))
}
