//! The documents `status --json` and `ls --json` print: smolvm 1.9.2's
//! machine object, every key of it, pretty-printed with sorted keys as
//! smolvm prints it.

use serde_json::{json, Map, Value};

use crate::machine::Machine;

/// The machine object. What the stand-in records is filled in (`name`,
/// `state`, `image`, `cpus`, `memory_mib`, `network`, `labels`, `mounts` as
/// a count, `created_at` in seconds since the epoch); the rest is what
/// smolvm shows for a plain machine made by `machine create` (no workload,
/// GPU, health check, restart policy or port). `pid` is the VM process in
/// smolvm; the stand-in has none, so it is null in every state.
pub fn machine(m: &Machine) -> Value {
    let labels: Map<String, Value> = m
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({
        "cmd": [],
        "cpus": m.cpus,
        "created_at": m.created_at,
        "cuda": false,
        "cuda_fork_pool_size": null,
        "cuda_vram_limit_mib": null,
        "entrypoint": [],
        "ephemeral": false,
        "forkable": false,
        "forkpoint_held": false,
        "gpu": false,
        "gpu_vram_mib": null,
        "health_cmd": null,
        "health_interval_secs": null,
        "health_retries": null,
        "health_startup_grace_secs": null,
        "health_timeout_secs": null,
        "image": m.image,
        "labels": labels,
        "memory_mib": m.mem,
        "mounts": m.volumes.len(),
        "name": m.name,
        "network": m.net,
        "overlay_gb": null,
        "pid": null,
        "ports": 0,
        "restart_count": 0,
        "restart_max_retries": 0,
        "restart_policy": "never",
        "state": m.state.as_str(),
        "storage_gb": null,
    })
}

pub fn machine_pretty(m: &Machine) -> String {
    serde_json::to_string_pretty(&machine(m)).expect("a JSON value always serialises")
}

/// `[]` when there are none, sorted by name otherwise.
pub fn machines_pretty(ms: &[Machine]) -> String {
    let all: Vec<Value> = ms.iter().map(machine).collect();
    serde_json::to_string_pretty(&all).expect("a JSON value always serialises")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::State;

    #[test]
    fn carries_what_libbottle_reads() {
        let m = Machine {
            name: "m".into(),
            state: State::Running,
            image: None,
            cpus: 2,
            mem: 512,
            net: true,
            volumes: Vec::new(),
            env: Vec::new(),
            labels: vec![("bottle".into(), "1".into())],
            created_at: 1_700_000_000,
            started_ns: 0,
        };
        let v = machine(&m);
        assert_eq!(v.as_object().unwrap().len(), 31);
        assert_eq!(v["state"], "running");
        assert_eq!(v["image"], Value::Null);
        assert_eq!(v["memory_mib"], 512);
        assert_eq!(v["network"], true);
        assert_eq!(v["labels"]["bottle"], "1");
        assert_eq!(v["created_at"], 1_700_000_000u64);
        assert_eq!(machines_pretty(&[]), "[]");
    }
}
