//! What runs inside the guest, built as an argv for `smolvm machine exec --`.
//!
//! smolvm runs guest commands as root, but the agent image's user is `node`
//! and claude-code refuses `--dangerously-skip-permissions` as root. So every
//! command goes through `runuser -l USER` with SCRIPT: `-l` also gives USER's
//! login environment (`$HOME`, `$USER`, `$PATH`), and `runuser -l root` is a
//! harmless switch when root is wanted.

use std::borrow::Cow;

use crate::error::Result;
use crate::validate;

/// The user commands run as when the caller names none.
pub const DEFAULT_USER: &str = "node";

/// `runuser -l [-w NAME,...] -c -- -- USER SCRIPT` as separate arguments.
///
/// runuser hands its `-c` value to the login shell right after the shell's
/// own `-c`, where bash and dash still parse options: a script such as `-x`
/// or `--help` would be taken for one. So runuser's `-c` value is `--`,
/// which ends the shell's options, and SCRIPT reaches the shell as
/// runuser's extra argument, unchanged, after a second `--` that ends
/// runuser's own options. USER has been validated as well, so it cannot be
/// an option either. A login shell starts from a clean environment, so the
/// variables smolvm sets for runuser (`-e`, `--secret-env`) survive only
/// when named in `-w` (`--whitelist-environment`).
pub fn runuser_command(user: &str, keep_env: &[&str], script: &str) -> Vec<String> {
    let mut argv: Vec<String> = vec!["runuser".into(), "-l".into()];
    if !keep_env.is_empty() {
        argv.push("-w".into());
        argv.push(keep_env.join(","));
    }
    argv.extend(["-c", "--", "--", user, script].map(str::to_owned));
    argv
}

/// `script` with variables exported first. Each variable reaches the guest
/// under a neutral carrier name (`BOTTLE_ENV_0`, ...) and is renamed here,
/// in the user's own shell: a caller's `PATH` or `LD_PRELOAD` must never
/// reach `runuser`, which runs as root until it switches user. The names
/// are validated identifiers and the values are only expanded, never
/// parsed, so nothing here can become code. Same line, so the script's line
/// numbers stay its own.
pub fn with_exports(exports: &[(&str, &str)], script: &str) -> String {
    if exports.is_empty() {
        return script.to_owned();
    }
    let mut prefix = String::from("export");
    for (name, carrier) in exports {
        prefix.push_str(&format!(" {name}=\"${carrier}\""));
    }
    prefix.push_str("; unset");
    for (_, carrier) in exports {
        prefix.push(' ');
        prefix.push_str(carrier);
    }
    format!("{prefix}; {script}")
}

/// `script` run in `dir`. A login shell always starts in the user's home
/// (smolvm's own `-w` is undone by it), so the script changes directory
/// itself; on the same line, so the script's line numbers stay its own.
pub fn in_workdir(dir: &str, script: &str) -> String {
    format!(
        "cd -- {} || exit 1; {script}",
        shell_escape::unix::escape(Cow::Borrowed(dir))
    )
}

/// The login-shell script that starts claude with exactly `args`:
/// `exec claude [--append-system-prompt-file PROMPT] ARG...`. Every piece is
/// single-quoted for the shell, so each element arrives as one argument,
/// byte for byte, whatever it contains. `exec` replaces the shell, so
/// claude's exit status is the command's.
pub fn claude_script(prompt_path: Option<&str>, args: &[&str]) -> Result<String> {
    let mut script = String::from("exec claude");
    let prompt = prompt_path.map(|p| ["--append-system-prompt-file", p]);
    for arg in prompt.iter().flatten().chain(args) {
        script.push(' ');
        script.push_str(&shell_escape::unix::escape(Cow::Borrowed(arg)));
    }
    validate::single_argument("argv", "the quoted claude command line", script.len())?;
    Ok(script)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runuser_keeps_the_script_as_one_argument() {
        let argv = runuser_command("node", &[], "echo 'a b'; exit 3");
        assert_eq!(
            argv,
            [
                "runuser",
                "-l",
                "-c",
                "--",
                "--",
                "node",
                "echo 'a b'; exit 3"
            ]
        );
        let argv = runuser_command("root", &["A", "B_2"], "env");
        assert_eq!(
            argv,
            ["runuser", "-l", "-w", "A,B_2", "-c", "--", "--", "root", "env"]
        );
    }

    #[test]
    fn exports_rename_carriers_in_the_users_shell() {
        assert_eq!(with_exports(&[], "env"), "env");
        assert_eq!(
            with_exports(
                &[("PATH", "BOTTLE_ENV_0"), ("TOKEN", "BOTTLE_SECRET_0")],
                "env"
            ),
            r#"export PATH="$BOTTLE_ENV_0" TOKEN="$BOTTLE_SECRET_0"; unset BOTTLE_ENV_0 BOTTLE_SECRET_0; env"#
        );
    }

    #[test]
    fn workdir_is_quoted_and_keeps_line_numbers() {
        assert_eq!(
            in_workdir("/w/it's here", "echo $LINENO"),
            r#"cd -- '/w/it'\''s here' || exit 1; echo $LINENO"#
        );
    }

    #[test]
    fn claude_script_quotes_every_argument() {
        let s = claude_script(Some("/p/prompt file.md"), &["-p", "it's $HOME", ""]).unwrap();
        assert_eq!(
            s,
            r#"exec claude --append-system-prompt-file '/p/prompt file.md' -p 'it'\''s $HOME' ''"#
        );
        assert_eq!(claude_script(None, &[]).unwrap(), "exec claude");
    }

    #[test]
    fn claude_script_too_long_for_one_argument_is_rejected() {
        let big = "x".repeat(validate::ARG_MAX_BYTES);
        let err = claude_script(None, &[&big]).unwrap_err().to_string();
        assert!(
            err.starts_with("argv: the quoted claude command line is "),
            "{err}"
        );
    }
}
