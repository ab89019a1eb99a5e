#![doc = include_str!("../README.md")]

use std::collections::BTreeMap;
use std::fmt::Display;
use std::net::SocketAddr;
use std::str::FromStr;

pub use secrecy::{ExposeSecret, SecretString};

/// One variable that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub variable: String,
    pub reason: String,
}

/// Every problem found while reading a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {}", self.summary())]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl ConfigError {
    fn summary(&self) -> String {
        self.problems
            .iter()
            .map(|p| format!("{}: {}", p.variable, p.reason))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// A snapshot of variables plus the problems found while reading them.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
    problems: Vec<Problem>,
}

impl Env {
    /// The process environment (only `CADENZA_*` and `RUST_LOG` are kept).
    pub fn from_process() -> Self {
        Self::from_pairs(
            std::env::vars().filter(|(k, _)| k.starts_with("CADENZA_") || k == "RUST_LOG"),
        )
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            problems: Vec::new(),
        }
    }

    /// Sets a variable, replacing any value (for runners that derive one config from another).
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        self.vars.insert(key.to_owned(), value.into());
    }

    /// A non-empty value, or `None`.
    pub fn optional(&self, key: &str) -> Option<String> {
        self.vars.get(key).filter(|v| !v.trim().is_empty()).cloned()
    }

    pub fn string(&self, key: &str, default: &str) -> String {
        self.optional(key).unwrap_or_else(|| default.to_owned())
    }

    pub fn secret(&self, key: &str) -> Option<SecretString> {
        self.optional(key).map(SecretString::from)
    }

    /// Parses a value with `FromStr`, recording a problem (and returning the
    /// default) when it does not parse.
    pub fn parse<T>(&mut self, key: &str, default: T) -> T
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.optional(key) {
            None => default,
            Some(raw) => match raw.trim().parse() {
                Ok(value) => value,
                Err(err) => {
                    self.problem(key, format!("`{raw}` is not valid: {err}"));
                    default
                }
            },
        }
    }

    pub fn addr(&mut self, key: &str, default: &str) -> SocketAddr {
        let fallback = default
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
        self.parse(key, fallback)
    }

    /// An address that has no default: `None` when unset, recording a problem
    /// (and returning `None`) when it does not parse.
    pub fn optional_addr(&mut self, key: &str) -> Option<SocketAddr> {
        let raw = self.optional(key)?;
        match raw.trim().parse() {
            Ok(addr) => Some(addr),
            Err(err) => {
                self.problem(key, format!("`{raw}` is not an address (host:port): {err}"));
                None
            }
        }
    }

    /// `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`.
    pub fn flag(&mut self, key: &str, default: bool) -> bool {
        match self.optional(key).map(|v| v.trim().to_ascii_lowercase()) {
            None => default,
            Some(v) if matches!(v.as_str(), "1" | "true" | "yes" | "on") => true,
            Some(v) if matches!(v.as_str(), "0" | "false" | "no" | "off") => false,
            Some(v) => {
                self.problem(key, format!("`{v}` is not a boolean (use true or false)"));
                default
            }
        }
    }

    /// A number that must lie within `range`.
    pub fn bounded<T>(&mut self, key: &str, default: T, range: std::ops::RangeInclusive<T>) -> T
    where
        T: FromStr + PartialOrd + Display + Copy,
        T::Err: Display,
    {
        let value = self.parse(key, default);
        if range.contains(&value) {
            value
        } else {
            self.problem(
                key,
                format!("{value} is outside {}..={}", range.start(), range.end()),
            );
            default
        }
    }

    pub fn problem(&mut self, key: &str, reason: impl Into<String>) {
        self.problems.push(Problem {
            variable: key.to_owned(),
            reason: reason.into(),
        });
    }

    /// Whether dev mode is on (`CADENZA_DEV_MODE`, off by default). Dev mode
    /// hands a token for any name to anyone who asks, so a process in it must
    /// hold nothing of production's: with any of [`PRODUCTION_SECRETS`] set it
    /// is a configuration problem, naming the variable.
    pub fn dev_mode(&mut self) -> bool {
        let on = self.flag(DEV_MODE, false);
        if on {
            for secret in PRODUCTION_SECRETS {
                if self.optional(secret).is_some() {
                    self.problem(
                        DEV_MODE,
                        format!(
                            "dev mode refuses to start while {secret} is set: it issues tokens to \
                             anyone, so it must hold no production secret"
                        ),
                    );
                }
            }
        }
        on
    }

    /// Ok when nothing was wrong; otherwise every problem found.
    pub fn finish(&self) -> Result<(), ConfigError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError {
                problems: self.problems.clone(),
            })
        }
    }
}

pub const DEV_MODE: &str = "CADENZA_DEV_MODE";

/// Secrets only a production system has: a hosted provider's key (it costs
/// money and reaches a real account), object-store credentials, and a rotated
/// token secret (no dev set-up rotates).
pub const PRODUCTION_SECRETS: [&str; 5] = [
    "CADENZA_FAL_KEY",
    "CADENZA_REPLICATE_TOKEN",
    "CADENZA_S3_ACCESS_KEY_ID",
    "CADENZA_S3_SECRET_ACCESS_KEY",
    "CADENZA_JWT_PREVIOUS_SECRETS",
];

/// The token signing secrets shared by the gateway (verifies) and `project`
/// (signs): `CADENZA_JWT_SECRET`, the active one, required outside dev mode, and
/// `CADENZA_JWT_PREVIOUS_SECRETS`, comma-separated secrets that still verify
/// tokens signed before a rotation.
#[derive(Debug, Clone, Default)]
pub struct JwtSecrets {
    pub active: Option<SecretString>,
    pub previous: Vec<SecretString>,
}

impl JwtSecrets {
    pub fn from_env(env: &mut Env, dev_mode: bool) -> Self {
        let active = env.secret("CADENZA_JWT_SECRET");
        if active.is_none() && !dev_mode {
            env.problem(
                "CADENZA_JWT_SECRET",
                "required outside dev mode (at least 32 bytes)",
            );
        }
        let previous = env
            .optional("CADENZA_JWT_PREVIOUS_SECRETS")
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| SecretString::from(s.to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Self { active, previous }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_mode_refuses_production_secrets() {
        let mut env = Env::from_pairs([
            (DEV_MODE, "true"),
            ("CADENZA_FAL_KEY", "a real key"),
            (
                "CADENZA_JWT_SECRET",
                "a dev secret of at least thirty-two bytes",
            ),
        ]);
        assert!(env.dev_mode());
        let err = env.finish().expect_err("a provider key in dev mode");
        assert_eq!(err.problems.len(), 1, "{err}");
        assert!(err.problems[0].reason.contains("CADENZA_FAL_KEY"), "{err}");
        // The same key outside dev mode is fine, and so is dev mode without it.
        let mut env = Env::from_pairs([("CADENZA_FAL_KEY", "a real key")]);
        assert!(!env.dev_mode());
        assert!(env.finish().is_ok());
        let mut env = Env::from_pairs([(DEV_MODE, "true")]);
        assert!(env.dev_mode());
        assert!(env.finish().is_ok());
    }

    #[test]
    fn reports_every_problem_at_once() {
        let mut env = Env::from_pairs([
            ("CADENZA_A", "not-a-number"),
            ("CADENZA_B", "maybe"),
            ("CADENZA_C", "5000"),
        ]);
        assert_eq!(env.parse::<u32>("CADENZA_A", 7), 7);
        assert!(env.flag("CADENZA_B", true));
        assert_eq!(env.bounded::<u32>("CADENZA_C", 10, 1..=100), 10);
        let err = env.finish().expect_err("three problems");
        let vars: Vec<_> = err.problems.iter().map(|p| p.variable.as_str()).collect();
        assert_eq!(vars, ["CADENZA_A", "CADENZA_B", "CADENZA_C"]);
    }

    #[test]
    fn optional_addresses_are_none_unset_and_problems_when_malformed() {
        let mut env = Env::from_pairs([("CADENZA_SET", "0.0.0.0:8086"), ("CADENZA_BAD", "8086")]);
        assert_eq!(env.optional_addr("CADENZA_UNSET"), None);
        assert_eq!(
            env.optional_addr("CADENZA_SET"),
            Some(SocketAddr::from(([0, 0, 0, 0], 8086)))
        );
        assert_eq!(env.optional_addr("CADENZA_BAD"), None);
        let err = env.finish().expect_err("one problem");
        assert_eq!(err.problems.len(), 1);
        assert_eq!(err.problems[0].variable, "CADENZA_BAD");
    }

    #[test]
    fn defaults_apply_to_missing_and_blank_values() {
        let mut env = Env::from_pairs([("CADENZA_BLANK", "  ")]);
        assert_eq!(env.string("CADENZA_BLANK", "x"), "x");
        assert_eq!(env.parse::<u16>("CADENZA_MISSING", 3), 3);
        assert!(env.finish().is_ok());
    }
}
