//! create, start, stop, delete, status and ls, with smolvm 1.9.2's
//! messages and (where cheap) its human-readable output.

use std::io::{BufRead, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::cli::{CreateArgs, DeleteArgs, LsArgs, NameArgs, StatusArgs};
use crate::error::{Error, Result};
use crate::machine::{self, Machine, State, Store};
use crate::{json, name};

/// smolvm's floor for `--mem`.
const MIN_MEM_MIB: u32 = 64;

fn config_error(what: &str, why: impl std::fmt::Display) -> Error {
    Error::new(format!("config operation failed: {what}: {why}"))
}

pub fn create(args: CreateArgs) -> Result<i32> {
    let name = &args.machine.name;
    name::check(name).map_err(|why| config_error("create machine", why))?;
    if args.cpus == 0 {
        return Err(config_error(
            "validate resources",
            "CPU count must be at least 1",
        ));
    }
    if args.mem < MIN_MEM_MIB {
        return Err(config_error(
            "validate resources",
            format!(
                "memory must be at least {MIN_MEM_MIB} MiB (got {} MiB)",
                args.mem
            ),
        ));
    }
    let mut volumes = Vec::new();
    for text in &args.volume {
        volumes.push(machine::parse_volume(text)?);
    }
    // smolvm drops a malformed `-e` without a word (and `-e KEY` takes the
    // host's KEY, if set); a malformed `--label` is an error.
    let mut env = Vec::new();
    for text in &args.env {
        if let Some(pair) = machine::parse_env_spec(text) {
            machine::set_pair(&mut env, pair);
        }
    }
    let mut labels = Vec::new();
    for text in &args.label {
        let pair = match text.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => {
                return Err(config_error(
                    "--label",
                    format!("expected KEY=VALUE, got '{text}'"),
                ))
            }
        };
        machine::set_pair(&mut labels, pair);
    }
    let created_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let m = Machine {
        name: name.clone(),
        state: State::Created,
        image: args.image,
        cpus: args.cpus,
        mem: args.mem,
        net: args.net,
        volumes,
        env,
        labels,
        created_at,
        started_ns: 0,
    };
    Store::open()?.create(&m)?;
    println!("Created machine: {}", m.name);
    println!("  CPUs: {}, Memory: {} MiB", m.cpus, m.mem);
    println!();
    println!(
        "Use 'smolvm machine start --name {}' to start the machine",
        m.name
    );
    println!(
        "Then use 'smolvm machine exec --name {} -- <command>' to run commands",
        m.name
    );
    Ok(0)
}

pub fn start(args: NameArgs) -> Result<i32> {
    let name = &args.name;
    name::must_exist(name)?;
    let store = Store::open()?;
    let _lock = store.lock(name)?;
    let mut m = store.load(name)?;
    // smolvm adds "(PID: N)" of the VM process; the stand-in has none.
    if m.state == State::Running {
        println!("Machine '{name}' already running");
        return Ok(0);
    }
    println!("Starting machine '{name}'...");
    // A machine asking for more memory than the host has cannot boot, on
    // the stand-in as with the stand-in guest behind the real smolvm, in
    // the real smolvm's words for a boot process that died.
    if let Err(e) = crate::boot::check_memory(u64::from(m.mem)) {
        return Err(Error::new(format!(
            "agent operation failed: start machine: agent operation failed: monitor agent: \
             Error: smolvm-standin guest: {e} (boot process exited (code 1) before the agent \
             was ready)"
        )));
    }
    m.state = State::Running;
    m.started_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    store.save(&m)?;
    println!("Machine '{name}' running");
    Ok(0)
}

pub fn stop(args: NameArgs) -> Result<i32> {
    let name = &args.name;
    name::validate(name)?;
    let store = Store::open()?;
    let _lock = store.lock(name)?;
    let mut m = store.load(name)?;
    if m.state != State::Running {
        println!(
            "Machine '{name}' is not running (state: {})",
            m.state.as_str()
        );
        return Ok(0);
    }
    println!("Stopping machine '{name}'...");
    m.state = State::Stopped;
    store.save(&m)?;
    println!("Stopped machine: {name}");
    Ok(0)
}

pub fn delete(args: DeleteArgs) -> Result<i32> {
    let name = &args.machine.name;
    name::must_exist(name)?;
    let store = Store::open()?;
    let _lock = store.lock(name)?;
    store.load(name)?;
    if !args.force {
        // smolvm asks on stdout and reads one line of stdin; anything but
        // y/yes (end of input included) cancels, and that is no failure.
        print!("Delete machine '{name}'? [y/N] ");
        let _ = std::io::stdout().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            println!("Cancelled");
            return Ok(0);
        }
    }
    store.delete(name)?;
    println!("Deleted machine: {name}");
    Ok(0)
}

pub fn status(args: StatusArgs) -> Result<i32> {
    let name = &args.machine.name;
    name::validate(name)?;
    let store = Store::open()?;
    // smolvm's JSON status looks the machine up on its own path, with its
    // own message.
    let m = match store.load(name) {
        Err(_) if args.json && !store.machine_dir(name).exists() => {
            return Err(config_error(
                "machine status",
                format!("machine '{name}' not found"),
            ))
        }
        other => other?,
    };
    if args.json {
        println!("{}", json::machine_pretty(&m));
    } else {
        println!("Machine '{name}': {}", m.state.as_str());
    }
    Ok(0)
}

pub fn ls(args: LsArgs) -> Result<i32> {
    let machines = Store::open()?.list()?;
    if args.json {
        println!("{}", json::machines_pretty(&machines));
    } else if machines.is_empty() {
        println!("No machines found");
    } else {
        println!(
            "{:<20} {:<12} {:>5} {:>10} {:>7} {:>7} {:>8} {:>8}",
            "NAME", "STATE", "CPUS", "MEMORY", "MOUNTS", "PORTS", "STORAGE", "OVERLAY"
        );
        println!("{}", "-".repeat(88));
        for m in &machines {
            let shown = if m.name.len() > 18 {
                format!("{}...", &m.name[..15])
            } else {
                m.name.clone()
            };
            println!(
                "{:<20} {:<12} {:>5} {:>10} {:>7} {:>7} {:>8} {:>8}",
                shown,
                m.state.as_str(),
                m.cpus,
                format!("{} MiB", m.mem),
                m.volumes.len(),
                0,
                "20 GiB",
                "10 GiB"
            );
        }
    }
    Ok(0)
}
