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
    /// The guest behind one `serve` request: enters the machine and serves
    /// smolvm's agent protocol on the listening socket that is its stdin
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
    #[command(flatten)]
    pub machine: NameArgs,

    /// Keep stdin open
    #[arg(short = 'i', long)]
    pub interactive: bool,

    /// Pass the terminal through (the stand-in allocates no pty)
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

    /// Kill the command after this long (500ms, 30s, 5m, 1h)
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    pub timeout: Option<Timeout>,

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

    /// Image to record (`standin:fail-start` makes `start` fail)
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,

    /// Give the machine the host's network
    #[arg(long)]
    pub net: bool,

    /// Number of virtual CPUs (recorded only)
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u8).range(1..))]
    pub cpus: u8,

    /// Memory in MiB (recorded only)
    #[arg(long, value_name = "MiB", default_value_t = 8192,
          value_parser = clap::value_parser!(u32).range(1..))]
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
    /// Mode of a file copied in, in octal
    #[arg(long, value_name = "OCTAL", default_value = "644", value_parser = parse_mode)]
    pub mode: u32,

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

/// A `--timeout` value; the text is kept for the timed-out message.
#[derive(Clone, Debug)]
pub struct Timeout {
    pub text: String,
    pub duration: Duration,
}

/// A bad duration is a usage error, so clap reports it (exit 2).
fn parse_timeout(text: &str) -> Result<Timeout, String> {
    let bad =
        || format!("expected a whole number followed by ms, s, m or h (e.g. 30s), got '{text}'");
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let count: u64 = text[..digits].parse().map_err(|_| bad())?;
    let seconds_per_unit = match &text[digits..] {
        "ms" => {
            return Ok(Timeout {
                text: text.to_string(),
                duration: Duration::from_millis(count),
            })
        }
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(bad()),
    };
    let seconds = count.checked_mul(seconds_per_unit).ok_or_else(bad)?;
    Ok(Timeout {
        text: text.to_string(),
        duration: Duration::from_secs(seconds),
    })
}

fn parse_mode(text: &str) -> Result<u32, String> {
    match u32::from_str_radix(text, 8) {
        Ok(mode) if !text.is_empty() && !text.starts_with('+') && mode <= 0o7777 => Ok(mode),
        _ => Err(format!("expected an octal mode such as 644, got '{text}'")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts() {
        assert_eq!(
            parse_timeout("500ms").unwrap().duration,
            Duration::from_millis(500)
        );
        assert_eq!(
            parse_timeout("30s").unwrap().duration,
            Duration::from_secs(30)
        );
        assert_eq!(
            parse_timeout("5m").unwrap().duration,
            Duration::from_secs(300)
        );
        assert_eq!(
            parse_timeout("1h").unwrap().duration,
            Duration::from_secs(3600)
        );
        for bad in [
            "",
            "s",
            "10",
            "1.5s",
            "-1s",
            "10 s",
            "3d",
            "99999999999999999999h",
        ] {
            assert!(parse_timeout(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("644"), Ok(0o644));
        assert_eq!(parse_mode("0755"), Ok(0o755));
        assert_eq!(parse_mode("4755"), Ok(0o4755));
        for bad in ["", "8", "+644", "17777", "rw"] {
            assert!(parse_mode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn clap_definitions_are_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
