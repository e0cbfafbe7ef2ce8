//! The command line, as clap definitions. clap itself rejects unknown
//! options, missing values, missing arguments and non-UTF-8 arguments with an
//! `error:` message and exit status 2, which is what smolvm (also clap) does.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "smolvm",
    bin_name = "smolvm",
    version = "1.9.0-standin",
    about = "Stand-in for the smolvm microVM manager, for libbottle's tests"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Manage machines
    #[command(subcommand)]
    Machine(MachineCommand),
    /// The VM process the real smolvm CLI starts (`SMOLVM_BOOT_BINARY`):
    /// a stand-in guest serving smolvm's agent protocol
    #[command(name = "_boot-vm", hide = true)]
    BootVm {
        /// smolvm's boot config (JSON)
        config: std::path::PathBuf,
    },
    /// Start the HTTP API server for programmatic machine management
    #[command(subcommand)]
    Serve(ServeCommand),
    /// The guest of a running machine behind `serve`: enters the machine and
    /// serves smolvm's agent protocol on the listening socket that is its
    /// stdin, until killed
    #[command(name = "_api-guest", hide = true)]
    ApiGuest(NameArgs),
}

#[derive(Subcommand, Debug)]
pub enum ServeCommand {
    /// Start the HTTP API server
    Start(ServeStartArgs),
}

/// `smolvm serve start`'s arguments. Only `--listen` does anything; the
/// others are accepted so that a command line written for smolvm works.
#[derive(Args, Debug)]
pub struct ServeStartArgs {
    /// Address and port or Unix socket path to listen on
    #[arg(short, long, value_name = "ADDR:PORT|PATH",
          default_value_t = crate::serve::default_listen())]
    pub listen: String,

    /// Enable debug logging (accepted, ignored)
    #[arg(short, long)]
    pub verbose: bool,

    /// CORS allowed origins (accepted, ignored)
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    pub cors_origins: Vec<String>,

    /// Output logs as structured JSON (accepted, ignored)
    #[arg(long)]
    pub json_logs: bool,

    /// Seccomp mode for VM boot subprocesses (accepted, ignored)
    #[arg(long, value_name = "MODE", default_value = "enforce")]
    pub seccomp: String,

    /// Landlock mode for VM boot subprocesses (accepted, ignored)
    #[arg(long, value_name = "MODE", default_value = "enforce")]
    pub landlock: String,
}

#[derive(Subcommand, Debug)]
pub enum MachineCommand {
    /// Run a command in a running machine
    Exec(ExecArgs),
    /// Create a new named machine (does not boot it)
    Create(CreateArgs),
    /// Start a machine
    Start(NameArgs),
    /// Stop a machine
    Stop(NameArgs),
    /// Delete a machine
    #[command(visible_alias = "rm")]
    Delete(DeleteArgs),
    /// Show machine status
    Status(StatusArgs),
    /// List all machines
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Copy a regular file between host and machine
    Cp(CpArgs),
}

#[derive(Args, Debug)]
pub struct NameArgs {
    /// Machine name
    #[arg(long, value_name = "NAME", default_value = "default")]
    pub name: String,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Machine name (default: "default"). Kept optional: smolvm words the
    /// failures of an exec without `--name` differently.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Keep stdin open
    #[arg(short = 'i', long)]
    pub interactive: bool,

    /// Pass the terminal through, as with -i (the stand-in allocates no pty)
    #[arg(short = 't', long)]
    pub tty: bool,

    /// Set an environment variable in the guest
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,

    /// Set a guest variable from a variable of this process's environment
    #[arg(long = "secret-env", value_name = "GUEST_VAR=HOST_VAR")]
    pub secret_env: Vec<String>,

    /// Working directory in the guest
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    pub workdir: Option<String>,

    /// Kill the command after this long (humantime: 500ms, 30s, 1min 30s, ...)
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,

    /// Pass output through as it is produced instead of after the command ends
    #[arg(long)]
    pub stream: bool,

    /// Command and arguments
    #[arg(trailing_var_arg = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    #[command(flatten)]
    pub machine: NameArgs,

    /// Image to record
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,

    /// Give the machine the host's network
    #[arg(long)]
    pub net: bool,

    /// Number of virtual CPUs (recorded only; checked by smolvm's
    /// resource rules, so 0 is an `Error:`, not a usage error)
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub cpus: u8,

    /// Memory in MiB (recorded only; at least 64, as smolvm requires)
    #[arg(long, value_name = "MiB", default_value_t = 8192)]
    pub mem: u32,

    /// Mount a host path into the guest
    #[arg(short = 'v', long = "volume", value_name = "HOST:GUEST[:ro]")]
    pub volume: Vec<String>,

    /// Environment variable for every exec
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,

    /// Label to find the machine by
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub label: Vec<String>,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub machine: NameArgs,

    /// Really delete
    #[arg(short = 'f', long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub machine: NameArgs,

    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct CpArgs {
    /// Mode of a file copied in, in octal (default 644). Checked after the
    /// machine, as smolvm does, so a bad one is an `Error:` line.
    #[arg(long, value_name = "OCTAL")]
    pub mode: Option<String>,

    /// Owner of a file copied in
    #[arg(long, value_name = "UID")]
    pub uid: Option<u32>,

    /// Group of a file copied in
    #[arg(long, value_name = "GID")]
    pub gid: Option<u32>,

    /// Source: a host path, or MACHINE:PATH
    pub src: String,

    /// Destination: a host path, or MACHINE:PATH
    pub dst: String,
}

/// An octal mode as smolvm's cp takes it: `644`, `0755`, `0o600`.
pub fn parse_mode(text: &str) -> Result<u32, String> {
    let digits = text.trim_start_matches("0o");
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o7777 => Ok(mode),
        _ => Err(format!(
            "config operation failed: cp: invalid octal mode '{text}' (expected e.g. 644)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(parse_mode("644"), Ok(0o644));
        assert_eq!(parse_mode("0755"), Ok(0o755));
        assert_eq!(parse_mode("4755"), Ok(0o4755));
        assert_eq!(parse_mode("0o600"), Ok(0o600));
        for bad in ["", "8", "17777", "rw"] {
            assert!(parse_mode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn clap_definitions_are_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
