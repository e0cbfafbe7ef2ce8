//! Machine names, checked by smolvm's rules and reported in its words.

use crate::error::{Error, Result};

/// The longest name smolvm accepts, in bytes.
const MAX_LEN: usize = 128;

/// smolvm's checks in smolvm's order, each with its own message: empty,
/// too long, first character, trailing `-`, then character by character
/// a `--` run or a character outside letters, digits, `-` and `_`. Every
/// name also becomes a directory name under the state home, and these rules
/// keep it from being `.`, `..` or hidden.
pub fn check(name: &str) -> std::result::Result<(), String> {
    let label = "machine name";
    let Some(first) = name.chars().next() else {
        return Err(format!("{label} cannot be empty"));
    };
    if name.len() > MAX_LEN {
        return Err(format!(
            "{label} too long: {} characters (max {MAX_LEN})",
            name.len()
        ));
    }
    if !first.is_ascii_alphanumeric() {
        return Err(format!(
            "{label} must start with a letter or digit (got: {name:?})"
        ));
    }
    if name.ends_with('-') {
        return Err(format!("{label} cannot end with a hyphen (got: {name:?})"));
    }
    let mut after_hyphen = false;
    for c in name.chars() {
        if c == '-' && after_hyphen {
            return Err(format!("{label} cannot contain consecutive hyphens"));
        }
        after_hyphen = c == '-';
        if !c.is_ascii_alphanumeric() && c != '-' && c != '_' {
            if c == '/' || c == '\\' {
                return Err(format!("{label} cannot contain path separators"));
            }
            return Err(format!("{label} contains invalid character: '{c}'"));
        }
    }
    Ok(())
}

/// The check that status, stop, exec and cp make before anything else.
pub fn validate(name: &str) -> Result<()> {
    check(name).map_err(|why| {
        Error::new(format!(
            "config operation failed: validate machine name: {why}"
        ))
    })
}

/// start and delete do not check names; they look the machine up, and a
/// name smolvm would refuse can never have been created. The stand-in must
/// not use such a name as a path, so it answers "not found" straight away.
pub fn must_exist(name: &str) -> Result<()> {
    check(name).map_err(|_| crate::machine::not_found(name))
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn accepts_and_rejects_like_smolvm() {
        for good in [
            "default",
            "a",
            "A1",
            "bottle-1_x",
            "9lives",
            &"a".repeat(128),
        ] {
            assert!(check(good).is_ok(), "{good}");
        }
        let too_long = "a".repeat(129);
        for (bad, why) in [
            ("", "machine name cannot be empty"),
            (
                "-a",
                "machine name must start with a letter or digit (got: \"-a\")",
            ),
            (
                "_a",
                "machine name must start with a letter or digit (got: \"_a\")",
            ),
            ("a-", "machine name cannot end with a hyphen (got: \"a-\")"),
            ("a--b", "machine name cannot contain consecutive hyphens"),
            ("a b", "machine name contains invalid character: ' '"),
            ("a!b", "machine name contains invalid character: '!'"),
            ("a/b", "machine name cannot contain path separators"),
            (
                "..",
                "machine name must start with a letter or digit (got: \"..\")",
            ),
            ("aé", "machine name contains invalid character: 'é'"),
            (&too_long, "machine name too long: 129 characters (max 128)"),
        ] {
            assert_eq!(check(bad).unwrap_err(), why, "{bad}");
        }
    }
}
