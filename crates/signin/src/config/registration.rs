//! `[registration]`: OpenID Connect dynamic client registration (RFC 7591, with RFC 7592's
//! management of a registration). Off unless `enabled = true`; with
//! `initial_access_token_env`, registering needs the token that variable holds.

use super::Validator;
use serde::Deserialize;
use std::fmt;

/// `[registration]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRegistration {
    #[serde(default)]
    enabled: bool,
    initial_access_token_env: Option<String>,
}

/// The validated `[registration]` section.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RegistrationSettings {
    /// `POST /register` (and RFC 7592 at `/register/{client_id}`) is served and advertised.
    pub enabled: bool,
    /// The initial access token `POST /register` requires (RFC 7591 §3), when one is set.
    pub initial_access_token: Option<String>,
}

/// The token is never printed.
impl fmt::Debug for RegistrationSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistrationSettings")
            .field("enabled", &self.enabled)
            .field(
                "initial_access_token",
                &self.initial_access_token.as_ref().map(|_| "***"),
            )
            .finish()
    }
}

/// Shortest initial access token accepted.
const MIN_TOKEN_LEN: usize = 16;

impl Validator {
    pub(super) fn registration(&mut self, raw: RawRegistration) -> RegistrationSettings {
        self.registration_with(raw, |var| std::env::var(var).ok())
    }

    /// [`Validator::registration`] with the environment given as a lookup.
    fn registration_with(
        &mut self,
        raw: RawRegistration,
        env: impl Fn(&str) -> Option<String>,
    ) -> RegistrationSettings {
        let key = "registration.initial_access_token_env";
        let initial_access_token = match raw.initial_access_token_env {
            None => None,
            Some(_) if !raw.enabled => {
                self.bad(
                    key,
                    "only with enabled = true (registration is off, so no token is needed)",
                );
                None
            }
            Some(var) => match env(&var) {
                None => {
                    self.bad(
                        key,
                        format!("the environment variable {var} to be set (it holds the initial access token)"),
                    );
                    None
                }
                Some(token)
                    if token.len() < MIN_TOKEN_LEN
                        || !token.bytes().all(|b| b.is_ascii_graphic()) =>
                {
                    self.bad(
                        key,
                        format!(
                            "the environment variable {var} to hold a token of at least {MIN_TOKEN_LEN} printable ASCII characters without spaces"
                        ),
                    );
                    None
                }
                Some(token) => Some(token),
            },
        };
        RegistrationSettings {
            enabled: raw.enabled,
            initial_access_token,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::super::{Config, tests::GOOD};
    use super::*;

    fn validate(raw: RawRegistration, env: &[(&str, &str)]) -> (RegistrationSettings, Vec<String>) {
        let mut v = Validator {
            file: "x.toml".into(),
            problems: Vec::new(),
        };
        let settings = v.registration_with(raw, |var| {
            env.iter()
                .find(|(k, _)| *k == var)
                .map(|(_, v)| (*v).to_owned())
        });
        let problems = v
            .problems
            .iter()
            .map(|p| format!("{}: {}", p.key, p.expected))
            .collect();
        (settings, problems)
    }

    #[test]
    fn registration_is_off_unless_enabled() {
        let c = Config::parse(GOOD, "x.toml").unwrap();
        assert_eq!(c.registration, RegistrationSettings::default());
        assert!(!c.registration.enabled);
        let c =
            Config::parse(&format!("{GOOD}[registration]\nenabled = true\n"), "x.toml").unwrap();
        assert!(c.registration.enabled);
        assert_eq!(c.registration.initial_access_token, None);
    }

    #[test]
    fn the_initial_access_token_comes_from_the_environment() {
        let raw = |enabled, var: &str| RawRegistration {
            enabled,
            initial_access_token_env: Some(var.into()),
        };
        let token = "a-long-enough-initial-token";
        let (s, problems) = validate(raw(true, "IAT"), &[("IAT", token)]);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(s.initial_access_token.as_deref(), Some(token));
        assert!(!format!("{s:?}").contains(token), "never printed");

        let (_, problems) = validate(raw(true, "IAT"), &[]);
        assert_eq!(
            problems,
            [
                "registration.initial_access_token_env: the environment variable IAT to be set (it holds the initial access token)"
            ]
        );
        for weak in ["short", "has a space in it somewhere"] {
            let (s, problems) = validate(raw(true, "IAT"), &[("IAT", weak)]);
            assert_eq!(problems.len(), 1, "{weak:?}");
            assert!(
                problems[0].contains("at least 16 printable"),
                "{problems:?}"
            );
            assert_eq!(s.initial_access_token, None);
        }
        let (_, problems) = validate(raw(false, "IAT"), &[("IAT", token)]);
        assert_eq!(
            problems,
            [
                "registration.initial_access_token_env: only with enabled = true (registration is off, so no token is needed)"
            ]
        );
    }

    #[test]
    fn mistakes_in_the_section_are_named_with_their_line() {
        let text = format!("{GOOD}[registration]\nenabled = \"yes\"\nopen = true\n");
        let e = Config::parse(&text, "x.toml").unwrap_err();
        let shown = e.to_string();
        let line = GOOD.lines().count() + 2;
        assert!(
            shown.contains(&format!("x.toml:{line}: registration.enabled: a boolean")),
            "{shown}"
        );
        let e =
            Config::parse(&format!("{GOOD}[registration]\nopen = true\n"), "x.toml").unwrap_err();
        assert_eq!(e.problems.len(), 1, "{e}");
        assert_eq!(e.problems[0].key, "registration.open", "{e}");
        assert_eq!(e.problems[0].line, Some(GOOD.lines().count() + 2), "{e}");
        // An unset variable, at its key's line.
        let var = format!("TENANTD_TEST_UNSET_{}", uuid::Uuid::new_v4().simple());
        let e = Config::parse(
            &format!(
                "{GOOD}[registration]\nenabled = true\ninitial_access_token_env = \"{var}\"\n"
            ),
            "x.toml",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "x.toml: 1 problem(s) in the configuration:\n  x.toml:{}: registration.initial_access_token_env: the environment variable {var} to be set (it holds the initial access token)\n",
                GOOD.lines().count() + 3
            )
        );
    }
}
