//! How variables travel to a guest command: the one place that names the
//! carriers.
//!
//! A variable never reaches smolvm or `runuser` under its own name: a
//! caller's `PATH` or `LD_PRELOAD` would then reach root processes. Each
//! travels under a neutral carrier name instead — `BOTTLE_ENV_N` for
//! `-e`, `BOTTLE_SECRET_N` for `--secret-env` (also the variable of
//! smolvm's own environment that holds the secret), `BOTTLE_MACHINE_ENV_N`
//! for the machine's own variables — and the user's shell renames it (see
//! [`crate::guest_command::with_exports`]).
//!
//! So a caller's name must never be a carrier name: exported under the
//! name it travels in, or under another variable's carrier, it would be
//! unset again with the carriers. Those names are refused when set, as is
//! `_`, which every shell sets itself.

use crate::error::{Error, Result};

/// The carrier prefixes, one per way a variable travels.
const ENV_PREFIX: &str = "BOTTLE_ENV_";
const SECRET_PREFIX: &str = "BOTTLE_SECRET_";
const MACHINE_PREFIX: &str = "BOTTLE_MACHINE_ENV_";

/// Longest carrier name, for any index a process can reach.
pub(crate) const CARRIER_MAX: usize = MACHINE_PREFIX.len() + 20;

/// The carrier of the `i`th variable of `bottle_exec_options_add_env`.
pub(crate) fn env_carrier(i: usize) -> String {
    format!("{ENV_PREFIX}{i}")
}

/// The carrier of the `i`th secret: smolvm reads it from its own
/// environment (`--secret-env NAME=CARRIER`) and sets it in the guest.
pub(crate) fn secret_carrier(i: usize) -> String {
    format!("{SECRET_PREFIX}{i}")
}

/// The name under which a launched machine holds its `i`th variable.
pub(crate) fn machine_carrier(i: usize) -> String {
    format!("{MACHINE_PREFIX}{i}")
}

/// Refuses a caller's variable name that could not arrive intact: a carrier
/// name, or `_`.
pub(crate) fn check_name(name: &str) -> Result<()> {
    if name == "_" {
        return Err(Error::invalid(
            "name",
            "\"_\" cannot be set: every shell sets it itself, so no value given to it \
             would arrive",
        ));
    }
    let carrier = [ENV_PREFIX, SECRET_PREFIX, MACHINE_PREFIX]
        .iter()
        .any(|prefix| {
            name.strip_prefix(prefix)
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        });
    if carrier {
        return Err(Error::invalid(
            "name",
            format!(
                "{name:?} is reserved: libbottle carries variables to the guest under the \
                 names {ENV_PREFIX}N, {SECRET_PREFIX}N and {MACHINE_PREFIX}N, and a variable \
                 of that name would be lost"
            ),
        ));
    }
    Ok(())
}

/// The variables of one command, as they travel: smolvm sets each carrier
/// (`-e`, `--secret-env`, or the machine's own), runuser keeps them, and
/// the user's shell renames them.
pub(crate) struct GuestEnv {
    /// (name, carrier) in the order they are exported: later ones win.
    exports: Vec<(String, String)>,
    /// (carrier, value) for `-e`.
    pub plain: Vec<(String, String)>,
    /// (carrier, host variable) for `--secret-env`: the same name.
    pub secret: Vec<(String, String)>,
}

impl GuestEnv {
    /// The machine's variables (`machine_env`, by name), then the command's
    /// own: `env` for `-e` and `secret_env` for `--secret-env`.
    pub(crate) fn new(
        machine_env: &[String],
        env: &[(String, String)],
        secret_env: &[(String, String)],
    ) -> Self {
        let machine = machine_env
            .iter()
            .enumerate()
            .map(|(i, name)| (name.clone(), machine_carrier(i)));
        let plain: Vec<(String, String)> = env
            .iter()
            .enumerate()
            .map(|(i, (_, value))| (env_carrier(i), value.clone()))
            .collect();
        let secret: Vec<(String, String)> = (0..secret_env.len())
            .map(secret_carrier)
            .map(|var| (var.clone(), var))
            .collect();
        let named = |names: &[(String, String)], carriers: &[(String, String)]| {
            names
                .iter()
                .zip(carriers)
                .map(|((n, _), (c, _))| (n.clone(), c.clone()))
                .collect::<Vec<_>>()
        };
        let exports = machine
            .chain(named(env, &plain))
            .chain(named(secret_env, &secret))
            .collect();
        GuestEnv {
            exports,
            plain,
            secret,
        }
    }

    /// (name, carrier) in the order they are exported.
    pub(crate) fn exports(&self) -> Vec<(&str, &str)> {
        self.exports
            .iter()
            .map(|(n, c)| (n.as_str(), c.as_str()))
            .collect()
    }

    /// The variables of smolvm's own environment that hold the secrets
    /// (the `secret_env` this was made with): each secret reaches smolvm
    /// only there, never on a command line.
    pub(crate) fn secret_values<'a>(
        &'a self,
        secret_env: &'a [(String, String)],
    ) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.secret
            .iter()
            .zip(secret_env)
            .map(|((_, carrier), (_, value))| (carrier.as_str(), value.as_str()))
    }

    /// (carrier, value) of every variable, for a transport that sets them
    /// all itself (serve's exec request): `machine_env`, the values of the
    /// machine's variables, and `secret_env`, the command's secrets, in the
    /// order this was made with.
    pub(crate) fn values<'a>(
        &'a self,
        machine_env: &'a [String],
        secret_env: &'a [(String, String)],
    ) -> Vec<(String, String)> {
        let machine = machine_env
            .iter()
            .enumerate()
            .map(|(i, value)| (machine_carrier(i), value.clone()));
        machine
            .chain(self.plain.iter().cloned())
            .chain(
                self.secret_values(secret_env)
                    .map(|(c, v)| (c.to_owned(), v.to_owned())),
            )
            .collect()
    }

    /// Every carrier, for runuser to keep.
    pub(crate) fn carriers(&self) -> Vec<&str> {
        self.exports.iter().map(|(_, c)| c.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carrier_names_and_underscore_are_refused() {
        for bad in [
            "_",
            "BOTTLE_ENV_0",
            "BOTTLE_ENV_17",
            "BOTTLE_SECRET_0",
            "BOTTLE_MACHINE_ENV_3",
        ] {
            let e = check_name(bad).unwrap_err().to_string();
            assert!(e.starts_with("name: "), "{bad}: {e}");
        }
        for ok in [
            "BOTTLE_ENV_",
            "BOTTLE_ENV_X",
            "BOTTLE_ENV_0X",
            "BOTTLE_SMOLVM",
            "__",
            "_x",
        ] {
            check_name(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        assert!(machine_carrier(usize::MAX).len() <= CARRIER_MAX);
    }

    #[test]
    fn exports_follow_machine_then_plain_then_secret() {
        let secret = [("T".into(), "s".into())];
        let env = GuestEnv::new(&["M".to_owned()], &[("A".into(), "1".into())], &secret);
        assert_eq!(
            env.exports(),
            [
                ("M", "BOTTLE_MACHINE_ENV_0"),
                ("A", "BOTTLE_ENV_0"),
                ("T", "BOTTLE_SECRET_0")
            ]
        );
        assert_eq!(env.plain, [("BOTTLE_ENV_0".into(), "1".into())]);
        assert_eq!(
            env.secret,
            [("BOTTLE_SECRET_0".into(), "BOTTLE_SECRET_0".into())]
        );
        assert_eq!(
            env.secret_values(&secret).collect::<Vec<_>>(),
            [("BOTTLE_SECRET_0", "s")]
        );
    }
}
