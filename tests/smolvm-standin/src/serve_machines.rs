//! Machine lifecycle routes of `serve`: create, list, get, start, stop,
//! delete, with smolvm 1.9.2's request and response shapes, over the
//! stand-in's store (the same records and root filesystems as its CLI).

use axum::extract::{Path, State};
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

/// smolvm's rule for environment variable names from the API.
pub fn validate_env(env: &[EnvVar]) -> Result<(), ApiError> {
    for var in env {
        let key = &var.name;
        let rule = if key.is_empty() {
            Some("env key must not be empty".to_string())
        } else if key.len() > 256 {
            Some("env key exceeds 256-byte limit".to_string())
        } else if !key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            Some("env key must start with an ASCII letter or underscore".to_string())
        } else if !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            Some("env key must contain only ASCII alphanumeric and underscore".to_string())
        } else {
            None
        };
        if let Some(rule) = rule {
            return Err(ApiError::BadRequest(format!(
                "env entry with {}-byte name rejected: {rule}",
                key.len()
            )));
        }
    }
    Ok(())
}

/// smolvm resolves request secrets in its untrusted scope, where no source
/// is allowed: any entry is refused.
pub fn validate_secrets(
    secrets: &std::collections::BTreeMap<String, smolvm_protocol::SecretRef>,
) -> Result<(), ApiError> {
    match secrets.keys().next() {
        None => Ok(()),
        Some(name) => Err(ApiError::BadRequest(format!(
            "secret '{name}': secret sources are not allowed over the HTTP API; \
             configure secrets locally via the CLI"
        ))),
    }
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
    let name = req.name.clone().unwrap_or_else(machine_name);
    validate_name(&name).map_err(ApiError::BadRequest)?;
    validate_secrets(&req.secrets)?;
    validate_env(&req.env)?;
    if state.knows(&name) {
        return Err(ApiError::Conflict(format!(
            "machine '{name}' already exists"
        )));
    }
    let mut volume = Vec::new();
    for m in &req.mounts {
        if !std::path::Path::new(&m.source).exists() {
            return Err(ApiError::BadRequest(format!(
                "mount source does not exist: {}",
                m.source
            )));
        }
        let access = if m.readonly { ":ro" } else { "" };
        volume.push(format!("{}:{}{access}", m.source, m.target));
    }
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

/// Starts the machine and adopts it into the registry: how a machine the
/// CLI created after serve started becomes usable through the API.
pub async fn start(
    State(state): State<Shared>,
    Path(name): Path<String>,
) -> Result<Json<MachineInfo>, ApiError> {
    let booted = name.clone();
    let machine = blocking(move || boot(&booted)).await?;
    state.adopt(&name);
    Ok(Json(MachineInfo::from(&machine)))
}

pub async fn stop(Path(name): Path<String>) -> Result<Json<MachineInfo>, ApiError> {
    let machine = blocking(move || {
        let m = lookup(&name)?;
        if m.state != MachineState::Running {
            return Ok(m);
        }
        lifecycle::stop(NameArgs { name: name.clone() }).map_err(internal)?;
        lookup(&name)
    })
    .await?;
    Ok(Json(MachineInfo::from(&machine)))
}

pub async fn delete(
    State(state): State<Shared>,
    Path(name): Path<String>,
) -> Result<Json<Deleted>, ApiError> {
    let deleted = name.clone();
    blocking(move || {
        lookup(&deleted)?;
        lifecycle::delete(DeleteArgs {
            machine: NameArgs {
                name: deleted.clone(),
            },
            force: true,
        })
        .map_err(internal)
    })
    .await?;
    state.forget(&name);
    Ok(Json(Deleted { deleted: name }))
}
