//! Checks on every string that ends up in a smolvm or runuser command line.
//!
//! Each check runs before anything is spawned, so a rejected argument never
//! reaches smolvm. Messages start with the argument's name, which the
//! caller passes in where one rule serves arguments of several names: each
//! layer names arguments as its own callers know them (the Rust API by its
//! fields and parameters, the C boundary by the header's parameters).

use std::path::Path;

use crate::error::{Error, Result};
use crate::guest_env::{self, CARRIER_MAX};

/// Longest machine name smolvm accepts.
const MACHINE_NAME_MAX: usize = 128;

/// Longest user name `runuser` is given (the useradd limit).
const USER_MAX: usize = 32;

/// Longest single argument the Linux kernel passes to a new program
/// (MAX_ARG_STRLEN, 32 pages, including the terminating NUL). The script and
/// the claude command line each travel as one argument of smolvm and then of
/// `runuser` in the guest, so a longer one could never run.
pub(crate) const ARG_MAX_BYTES: usize = 32 * 4096 - 1;

/// Longest environment variable name: far beyond any real one, and short
/// enough that a long `NAME=VALUE` is always the value's doing.
const ENV_NAME_MAX: usize = 4096;

/// Longest path a guest path may be (PATH_MAX without the NUL).
const PATH_MAX_BYTES: usize = 4095;

/// smolvm's machine-name rule, as docs/SMOLVM-CLI.md records it and the
/// checks below spell it out; `bottle_open`'s doc states it for C callers,
/// and every other doc points there. The rule also guarantees a name can
/// never be read as an option or contain the `:` that `machine cp` splits
/// on.
pub(crate) fn machine_name(name: &str) -> Result<()> {
    let bad = |reason: String| Err(Error::invalid("machine_name", reason));
    if name.is_empty() {
        return bad("must not be empty".into());
    }
    if name.len() > MACHINE_NAME_MAX {
        return bad(format!(
            "is {} bytes long; smolvm allows at most {MACHINE_NAME_MAX}",
            name.len()
        ));
    }
    if let Some((i, c)) = name
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    {
        return bad(format!(
            "{} at byte {i} is not allowed; use ASCII letters, digits, '-' and '_'",
            describe_char(c)
        ));
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric() {
        return bad("must start with an ASCII letter or digit".into());
    }
    if name.ends_with('-') {
        return bad("must not end with '-'".into());
    }
    if name.contains("--") {
        return bad("must not contain \"--\"".into());
    }
    Ok(())
}

/// A guest user name for `runuser -l USER`: 1 to 32 characters of ASCII
/// letters, digits, `_`, `.` and `-`, starting with a letter or `_`. Starting
/// with a letter or `_` is what keeps it from being read as an option of
/// runuser (`-c`, `--session-command`, ...).
pub(crate) fn user(user: &str) -> Result<()> {
    let bad = |reason: String| Err(Error::invalid("user", reason));
    if user.is_empty() {
        return bad("must not be empty".into());
    }
    if user.len() > USER_MAX {
        return bad(format!(
            "is {} bytes long; at most {USER_MAX} are allowed",
            user.len()
        ));
    }
    let first = user.as_bytes()[0];
    if !(first.is_ascii_alphabetic() || first == b'_') {
        return bad("must start with an ASCII letter or '_'".into());
    }
    if let Some((i, c)) = user
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return bad(format!(
            "{} at byte {i} is not allowed; use ASCII letters, digits, '_', '.' and '-'",
            describe_char(c)
        ));
    }
    Ok(())
}

/// An absolute path inside the guest.
pub(crate) fn guest_path(arg: &str, path: &str) -> Result<()> {
    if !path.starts_with('/') {
        return Err(Error::invalid(
            arg,
            format!("{path:?} is not an absolute guest path (it must start with '/')"),
        ));
    }
    if path.len() > PATH_MAX_BYTES {
        return Err(Error::invalid(
            arg,
            format!(
                "is {} bytes long; a path may have at most {PATH_MAX_BYTES}",
                path.len()
            ),
        ));
    }
    Ok(())
}

/// One argument that a new program will receive must fit the kernel's limit.
pub(crate) fn single_argument(arg: &str, what: &str, len: usize) -> Result<()> {
    if len > ARG_MAX_BYTES {
        return Err(Error::invalid(
            arg,
            format!(
                "{what} is {len} bytes; the kernel passes at most {ARG_MAX_BYTES} bytes in one argument"
            ),
        ));
    }
    Ok(())
}

/// An environment variable name: an ASCII letter or `_`, then letters,
/// digits and `_`. Anything else could not be exported by the guest shell,
/// and `=` would split `-e K=V` in the wrong place.
pub(crate) fn env_name(arg: &str, name: &str) -> Result<()> {
    let valid = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(
            arg,
            format!("{name:?} is not a valid environment variable name (use ASCII letters, digits and '_', not starting with a digit)"),
        ))
    }
}

/// An environment variable for a guest command: a valid name that is not
/// one of the library's carrier names (see [`crate::guest_env`]), and a
/// value that fits one argument both as `NAME=VALUE` in the user's shell
/// and under its carrier name (`BOTTLE_SECRET_N=VALUE`, ...) on its way
/// there.
pub(crate) fn env_pair(name: &str, value: &str) -> Result<()> {
    env_name("name", name)?;
    guest_env::check_name(name)?;
    if name.len() > ENV_NAME_MAX {
        return Err(Error::invalid(
            "name",
            format!(
                "is {} bytes long; at most {ENV_NAME_MAX} are allowed",
                name.len()
            ),
        ));
    }
    single_argument("value", "NAME=VALUE", name.len() + 1 + value.len())?;
    single_argument(
        "value",
        "the value under its carrier name (BOTTLE_..._N=VALUE)",
        CARRIER_MAX + 1 + value.len(),
    )
}

/// The error for a command whose arguments and environment together
/// (`bytes`) exceed what the kernel passes to a new program (`limit`),
/// naming the largest of the caller's `parts`: (argument, what it is,
/// bytes).
pub(crate) fn too_large(parts: &[(&str, &str, usize)], bytes: usize, limit: usize) -> Error {
    let (arg, what, size) =
        parts
            .iter()
            .copied()
            .max_by_key(|p| p.2)
            .unwrap_or(("argv", "the arguments", 0));
    Error::invalid(
        arg,
        format!(
            "{what} take {size} bytes, and smolvm's arguments and environment would \
             total {bytes} bytes; the kernel passes at most {limit} to a new program"
        ),
    )
}

/// Owner ids for a copy. `(uid_t)-1` means "leave unchanged" to chown, so
/// it would silently leave root as the owner.
pub(crate) fn owner_ids(uid: u32, gid: u32) -> Result<()> {
    for (arg, id) in [("uid", uid), ("gid", gid)] {
        if id == u32::MAX {
            return Err(Error::invalid(
                arg,
                format!("{id} is (uid_t)-1, which chown reads as \"leave unchanged\""),
            ));
        }
    }
    Ok(())
}

/// Permission bits as `chmod` takes them.
pub(crate) fn mode(mode: u32) -> Result<()> {
    if mode > 0o7777 {
        return Err(Error::invalid(
            "mode",
            format!("{mode:#o} has bits beyond 07777"),
        ));
    }
    Ok(())
}

/// A guest path smolvm's cp can take: absolute, without the `:` that cp
/// reads as the machine separator, and without a `..` component, which
/// smolvm's agent refuses (`parent traversal is not allowed`).
pub(crate) fn cp_guest_path(guest_path: &str) -> Result<()> {
    self::guest_path("guest_path", guest_path)?;
    if guest_path.contains(':') {
        return Err(Error::invalid(
            "guest_path",
            format!("{guest_path:?} contains ':', which smolvm's cp reads as MACHINE:PATH"),
        ));
    }
    if guest_path.split('/').any(|part| part == "..") {
        return Err(Error::invalid(
            "guest_path",
            format!("{guest_path:?} has a '..' component, which smolvm's agent refuses"),
        ));
    }
    Ok(())
}

/// An image reference: non-empty, printable ASCII, no spaces, and not
/// starting with `-`.
pub(crate) fn image(image: &str) -> Result<()> {
    let printable = image.bytes().all(|b| b.is_ascii_graphic());
    if image.is_empty() || !printable || image.starts_with('-') {
        return Err(Error::invalid(
            "image",
            format!(
                "{image:?} is not an image reference (printable ASCII without spaces, \
                 not starting with '-')"
            ),
        ));
    }
    Ok(())
}

/// A volume, `-v HOST:GUEST[:ro]`: split at `:`, so neither side may hold
/// one; the host side is absolute, so it cannot be read as an option.
/// `names` are the names of the host and the guest side in messages.
pub(crate) fn volume(host: &Path, guest: &str, names: (&str, &str)) -> Result<()> {
    let (host_arg, guest_arg) = names;
    let shown = host.display();
    let host = host
        .to_str()
        .ok_or_else(|| Error::invalid(host_arg, format!("{shown} is not UTF-8")))?;
    if !host.starts_with('/') || host.contains(':') {
        return Err(Error::invalid(
            host_arg,
            format!("{host:?} must be an absolute path without ':'"),
        ));
    }
    guest_path(guest_arg, guest)?;
    if guest.contains(':') {
        return Err(Error::invalid(
            guest_arg,
            format!("{guest:?} must not contain ':'"),
        ));
    }
    Ok(())
}

fn describe_char(c: char) -> String {
    if c.is_ascii_graphic() || c == ' ' {
        format!("character {c:?}")
    } else {
        format!("character U+{:04X}", c as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(r: Result<()>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn cp_guest_paths_have_no_parent_components() {
        assert!(cp_guest_path("/tmp/a..b/..c").is_ok());
        assert_eq!(
            reason(cp_guest_path("/tmp/../x")),
            "guest_path: \"/tmp/../x\" has a '..' component, which smolvm's agent refuses"
        );
        assert!(cp_guest_path("/x/..").is_err());
    }

    #[test]
    fn machine_names_follow_smolvm_rules() {
        for ok in [
            "a",
            "default",
            "agent-1",
            "A_b-9",
            "9lives",
            &"x".repeat(128),
        ] {
            machine_name(ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        }
        for (bad, why) in [
            ("", "must not be empty"),
            ("-a", "must start with an ASCII letter or digit"),
            ("_a", "must start with an ASCII letter or digit"),
            ("a-", "must not end with '-'"),
            ("a--b", "must not contain \"--\""),
            ("a b", "character ' ' at byte 1"),
            ("a:b", "character ':'"),
            ("..", "character '.'"),
            ("a/b", "character '/'"),
            ("é", "character U+00E9 at byte 0"),
            ("a\nb", "character U+000A"),
            ("$(id)", "character '$'"),
        ] {
            let msg = reason(machine_name(bad));
            assert!(msg.starts_with("machine_name: "), "{bad:?}: {msg}");
            assert!(msg.contains(why), "{bad:?}: {msg} lacks {why:?}");
        }
        assert!(reason(machine_name(&"x".repeat(129))).contains("129 bytes"));
    }

    #[test]
    fn users_cannot_become_options() {
        for ok in ["node", "root", "www-data", "_svc", "a.b", "u1"] {
            user(ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        }
        for bad in [
            "", "-c", "--help", "-", "..", ".x", "1abc", "no de", "a:b", "a;b", "é",
        ] {
            let msg = reason(user(bad));
            assert!(msg.starts_with("user: "), "{bad:?}: {msg}");
        }
        assert!(reason(user(&"u".repeat(33))).contains("33 bytes"));
    }

    #[test]
    fn guest_paths_are_absolute_and_bounded() {
        guest_path("guest_path", "/home/node/a b:c").unwrap();
        assert!(reason(guest_path("guest_path", "rel/x")).contains("not an absolute"));
        assert!(reason(guest_path("guest_path", "")).contains("not an absolute"));
        assert!(reason(guest_path("prompt_path", "-x")).starts_with("prompt_path: "));
        let long = format!("/{}", "a".repeat(PATH_MAX_BYTES));
        assert!(reason(guest_path("guest_path", &long)).contains("4096 bytes"));
    }

    #[test]
    fn env_names_are_shell_identifiers() {
        for ok in ["A", "_x", "PATH", "a1_B"] {
            env_name("key", ok).unwrap();
        }
        for bad in ["", "1A", "A=B", "A B", "-e", "é", "A-B"] {
            assert!(reason(env_name("key", bad)).starts_with("key: "), "{bad:?}");
        }
    }

    #[test]
    fn modes_are_permission_bits() {
        mode(0o7777).unwrap();
        mode(0).unwrap();
        assert!(reason(mode(0o10000)).starts_with("mode: 0o10000"));
    }

    #[test]
    fn values_fit_under_their_carrier_names_too() {
        env_pair("A", "short").unwrap();
        let near = "v".repeat(ARG_MAX_BYTES - 3);
        assert!(reason(env_pair("A", &near)).starts_with("value: the value under its carrier name"));
        assert!(reason(owner_ids(u32::MAX, 0)).starts_with("uid: "));
        assert!(reason(owner_ids(0, u32::MAX)).starts_with("gid: "));
        owner_ids(1000, 1000).unwrap();
    }

    #[test]
    fn env_values_must_fit_one_argument() {
        env_pair("A", "short").unwrap();
        let long = "v".repeat(ARG_MAX_BYTES);
        assert!(reason(env_pair("A", &long)).starts_with("value: NAME=VALUE is "));
        assert!(reason(env_pair("1A", "v")).starts_with("name: "));
        let long_name = "N".repeat(ARG_MAX_BYTES);
        assert!(reason(env_pair(&long_name, "v")).starts_with("name: "));
    }

    #[test]
    fn single_argument_limit_is_the_kernels() {
        single_argument("script", "the script", ARG_MAX_BYTES).unwrap();
        let msg = reason(single_argument("script", "the script", ARG_MAX_BYTES + 1));
        assert!(msg.contains("131072 bytes"), "{msg}");
    }
}
