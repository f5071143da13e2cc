//! `[sspr]`: self-service password reset (`/password/reset`). On unless `enabled = false`;
//! off, or for an account without a registered method, the page tells the user to contact
//! their administrator. Attempts are limited per account and per client IP within a window.

use super::Validator;
use serde::Deserialize;

/// `[sspr]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSspr {
    enabled: Option<bool>,
    max_attempts_per_account: Option<i64>,
    max_attempts_per_ip: Option<i64>,
    window_secs: Option<i64>,
}

/// The validated `[sspr]` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SsprSettings {
    /// Users reset their own password at `/password/reset`.
    pub enabled: bool,
    /// Reset attempts (the email step and each code) allowed per account in a window.
    pub max_attempts_per_account: i64,
    /// Reset attempts allowed per client IP in a window.
    pub max_attempts_per_ip: i64,
    /// The window, in seconds.
    pub window_secs: i64,
}

impl Default for SsprSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            max_attempts_per_account: 5,
            max_attempts_per_ip: 20,
            window_secs: 900,
        }
    }
}

impl Validator {
    pub(super) fn sspr(&mut self, raw: RawSspr) -> SsprSettings {
        let mut s = SsprSettings::default();
        if let Some(enabled) = raw.enabled {
            s.enabled = enabled;
        }
        let mut limit = |key: &str, value: Option<i64>, into: &mut i64| {
            if let Some(n) = value {
                if !(1..=10_000).contains(&n) {
                    self.bad(
                        format!("sspr.{key}"),
                        format!("a number of attempts from 1 to 10000, got {n}"),
                    );
                }
                *into = n;
            }
        };
        limit(
            "max_attempts_per_account",
            raw.max_attempts_per_account,
            &mut s.max_attempts_per_account,
        );
        limit(
            "max_attempts_per_ip",
            raw.max_attempts_per_ip,
            &mut s.max_attempts_per_ip,
        );
        if let Some(w) = raw.window_secs {
            if !(60..=86_400).contains(&w) {
                self.bad(
                    "sspr.window_secs",
                    format!("seconds from 60 to 86400, got {w}"),
                );
            }
            s.window_secs = w;
        }
        s
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::super::{Config, tests::GOOD};
    use super::*;

    #[test]
    fn sspr_is_on_by_default_with_its_limits() {
        let c = Config::parse(GOOD, "x.toml").unwrap();
        assert_eq!(c.sspr, SsprSettings::default());
        assert!(c.sspr.enabled);
        let c = Config::parse(
            &format!(
                "{GOOD}[sspr]\nenabled = false\nmax_attempts_per_account = 3\n\
                 max_attempts_per_ip = 10\nwindow_secs = 600\n"
            ),
            "x.toml",
        )
        .unwrap();
        assert_eq!(
            c.sspr,
            SsprSettings {
                enabled: false,
                max_attempts_per_account: 3,
                max_attempts_per_ip: 10,
                window_secs: 600,
            }
        );
    }

    #[test]
    fn mistakes_in_the_section_are_named_with_their_line() {
        let at = GOOD.lines().count();
        let e = Config::parse(
            &format!(
                "{GOOD}[sspr]\nenabled = \"yes\"\nmax_attempts_per_ip = 0\nwindow_secs = 5\n\
                 lockout = true\n"
            ),
            "x.toml",
        )
        .unwrap_err();
        let shown = e.to_string();
        assert!(
            shown.contains(&format!("x.toml:{}: sspr.enabled: a boolean", at + 2)),
            "{shown}"
        );
        assert!(
            shown.contains(&format!("x.toml:{}: sspr.lockout: ", at + 5)),
            "{shown}"
        );
        // The other keys are still checked once the section parses.
        let e = Config::parse(
            &format!("{GOOD}[sspr]\nmax_attempts_per_ip = 0\nwindow_secs = 5\n"),
            "x.toml",
        )
        .unwrap_err();
        let shown = e.to_string();
        assert!(
            shown.contains(&format!(
                "x.toml:{}: sspr.max_attempts_per_ip: a number of attempts from 1 to 10000, got 0",
                at + 2
            )),
            "{shown}"
        );
        assert!(
            shown.contains(&format!(
                "x.toml:{}: sspr.window_secs: seconds from 60 to 86400, got 5",
                at + 3
            )),
            "{shown}"
        );
    }
}
