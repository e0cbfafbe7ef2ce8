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
mod serve;
mod serve_exec;
mod serve_files;
mod serve_guest;
mod serve_machines;
mod serve_tls;
mod spawn;
mod sys;

use std::io::Write;

use clap::Parser;

use cli::{Cli, Command, MachineCommand, ServeCommand};

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
        Command::Serve(ServeCommand::Start(args)) => finish(serve::run(args)),
        Command::ApiGuest(args) => finish(serve_guest::run(&args.name)),
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
    finish(result)
}

/// Exits with the command's status, or prints its error as smolvm does
/// (`Error: <message>`) and exits 1.
fn finish(result: error::Result<i32>) -> ! {
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
