//! Machine names, checked exactly as smolvm checks them.

use crate::error::{Error, Result};

/// 1 to 128 ASCII letters, digits, `-`, `_`; a letter or digit first; no
/// trailing `-`; no `--` run. Every name also becomes a directory name under
/// the state home, and these rules keep it from being `.`, `..` or hidden.
pub fn validate(name: &str) -> Result<()> {
    let bytes = name.as_bytes();
    let valid = (1..=128).contains(&bytes.len())
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
        && !name.ends_with('-')
        && !name.contains("--");
    if valid {
        Ok(())
    } else {
        Err(Error::new(format!("invalid machine name: '{name}'")))
    }
}

#[cfg(test)]
mod tests {
    use super::validate;

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
            assert!(validate(good).is_ok(), "{good}");
        }
        let too_long = "a".repeat(129);
        for bad in [
            "", "-a", "_a", "a-", "a--b", "a b", "a/b", "..", "é", &too_long,
        ] {
            assert!(validate(bad).is_err(), "{bad}");
        }
    }
}
