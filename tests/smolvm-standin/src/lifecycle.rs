//! create, start, stop, delete, status and ls.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::cli::{CreateArgs, DeleteArgs, LsArgs, NameArgs, StatusArgs};
use crate::error::{Error, Result};
use crate::machine::{self, Machine, State, Store};
use crate::{json, name};

/// The image whose `start` fails, so tests can exercise boot failures.
const FAIL_START_IMAGE: &str = "standin:fail-start";

pub fn create(args: CreateArgs) -> Result<i32> {
    name::validate(&args.machine.name)?;
    let mut volumes = Vec::new();
    for text in &args.volume {
        volumes.push(machine::parse_volume(text)?);
    }
    let mut env = Vec::new();
    for text in &args.env {
        machine::set_pair(&mut env, machine::parse_pair("environment variable", text)?);
    }
    let mut labels = Vec::new();
    for text in &args.label {
        machine::set_pair(&mut labels, machine::parse_pair("label", text)?);
    }
    let created_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let m = Machine {
        name: args.machine.name,
        state: State::Created,
        image: args.image,
        cpus: args.cpus,
        mem: args.mem,
        net: args.net,
        volumes,
        env,
        labels,
        created_at,
    };
    Store::open()?.create(&m)?;
    Ok(0)
}

pub fn start(args: NameArgs) -> Result<i32> {
    set_state(&args.name, |m| {
        if m.image.as_deref() == Some(FAIL_START_IMAGE) {
            return Err(Error::new(format!(
                "failed to start machine '{}': boot failed ({FAIL_START_IMAGE})",
                m.name
            )));
        }
        Ok(State::Running)
    })
}

pub fn stop(args: NameArgs) -> Result<i32> {
    set_state(&args.name, |m| {
        Ok(match m.state {
            State::Running => State::Stopped,
            other => other,
        })
    })
}

fn set_state(name: &str, next: impl FnOnce(&Machine) -> Result<State>) -> Result<i32> {
    name::validate(name)?;
    let store = Store::open()?;
    let _lock = store.lock(name)?;
    let mut m = store.load(name)?;
    let state = next(&m)?;
    if state != m.state {
        m.state = state;
        store.save(&m)?;
    }
    Ok(0)
}

pub fn delete(args: DeleteArgs) -> Result<i32> {
    let name = &args.machine.name;
    name::validate(name)?;
    let store = Store::open()?;
    let _lock = store.lock(name)?;
    store.load(name)?;
    if !args.force {
        return Err(Error::new(format!(
            "refusing to delete '{name}' without -f"
        )));
    }
    store.delete(name)?;
    Ok(0)
}

pub fn status(args: StatusArgs) -> Result<i32> {
    name::validate(&args.machine.name)?;
    let m = Store::open()?.load(&args.machine.name)?;
    if args.json {
        let mut out = String::new();
        json::machine(&mut out, &m);
        println!("{out}");
    } else {
        println!("{}", describe(&m));
    }
    Ok(0)
}

pub fn ls(args: LsArgs) -> Result<i32> {
    let machines = Store::open()?.list()?;
    if args.json {
        println!("{}", json::machines(&machines));
    } else if machines.is_empty() {
        println!("No machines found.");
    } else {
        for m in &machines {
            println!("{}", describe(m));
        }
    }
    Ok(0)
}

fn describe(m: &Machine) -> String {
    format!(
        "{}: {} (image {}, {} cpus, {} MiB, network {})",
        m.name,
        m.state.as_str(),
        m.image.as_deref().unwrap_or("none"),
        m.cpus,
        m.mem,
        if m.net { "on" } else { "off" }
    )
}
