//! A stand-in for the smolvm CLI (`smolvm machine ...`) for libbottle's
//! tests: same command line, exit statuses and messages, with each machine
//! a root filesystem that commands really run in, isolated by namespaces
//! and chroot instead of a microVM. See README.md.

mod agent;
mod agent_exec;
mod agent_file;
mod boot;
mod cli;
mod copy;
mod error;
mod exec;
mod guest;
mod json;
mod lifecycle;
mod machine;
mod name;
mod rootfs;
mod spawn;
mod sys;

use std::io::Write;

use clap::Parser;

use cli::{Cli, Command, MachineCommand};

fn main() {
    let command = match Cli::parse().command {
        Command::Machine(command) => command,
        Command::BootVm { config } => {
            let code = boot::run(&config).unwrap_or_else(|e| {
                eprintln!("Error: {e}");
                1
            });
            std::process::exit(code);
        }
    };
    let result = match command {
        MachineCommand::Exec(args) => exec::run(args),
        MachineCommand::Create(args) => lifecycle::create(args),
        MachineCommand::Start(args) => lifecycle::start(args),
        MachineCommand::Stop(args) => lifecycle::stop(args),
        MachineCommand::Delete(args) => lifecycle::delete(args),
        MachineCommand::Status(args) => lifecycle::status(args),
        MachineCommand::Ls(args) => lifecycle::ls(args),
        MachineCommand::Cp(args) => copy::run(args),
    };
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e}");
            1
        }
    };
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}
