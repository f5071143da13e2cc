//! `[rate_limits]`: requests per client IP and minute at the endpoints people and scripts
//! guess at: the sign-in pages, the token endpoint, password reset. Over the limit a request
//! is answered 429 with `Retry-After`. Counted in each process (a replica counts its own share).
//! `exempt` lists networks never limited (a load balancer's health checks, a CI runner).

use super::{Validator, parse_net};
use ipnet::IpNet;
use serde::Deserialize;

/// `[rate_limits]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRateLimits {
    sign_in_per_minute: Option<u32>,
    token_per_minute: Option<u32>,
    password_reset_per_minute: Option<u32>,
    exempt: Option<Vec<String>>,
}

/// The validated `[rate_limits]` section. A limit of 0 turns that limit off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitSettings {
    /// Credentials submitted at the sign-in pages (passwords, MFA codes, new passwords) per
    /// client IP and minute.
    pub sign_in_per_minute: u32,
    /// Token endpoint requests per client IP and minute.
    pub token_per_minute: u32,
    /// Password reset submissions per client IP and minute.
    pub password_reset_per_minute: u32,
    /// Client networks never limited.
    pub exempt: Vec<IpNet>,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            sign_in_per_minute: 600,
            token_per_minute: 1_200,
            password_reset_per_minute: 30,
            exempt: Vec::new(),
        }
    }
}

impl Validator {
    pub(super) fn rate_limits(&mut self, raw: RawRateLimits) -> RateLimitSettings {
        let mut s = RateLimitSettings::default();
        for (key, value, into) in [
            (
                "sign_in_per_minute",
                raw.sign_in_per_minute,
                &mut s.sign_in_per_minute,
            ),
            (
                "token_per_minute",
                raw.token_per_minute,
                &mut s.token_per_minute,
            ),
            (
                "password_reset_per_minute",
                raw.password_reset_per_minute,
                &mut s.password_reset_per_minute,
            ),
        ] {
            if let Some(n) = value {
                if n > 1_000_000 {
                    self.bad(
                        format!("rate_limits.{key}"),
                        format!("requests per minute from 0 (off) to 1000000, got {n}"),
                    );
                }
                *into = n;
            }
        }
        for (i, net) in raw.exempt.unwrap_or_default().iter().enumerate() {
            match parse_net(net) {
                Some(n) => s.exempt.push(n),
                None => self.bad(
                    format!("rate_limits.exempt[{i}]"),
                    format!("a CIDR or IP address, got {net:?}"),
                ),
            }
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
    fn limits_have_defaults_can_be_set_or_turned_off_and_are_checked() {
        let c = Config::parse(GOOD, "x.toml").unwrap();
        assert_eq!(c.rate_limits, RateLimitSettings::default());
        let c = Config::parse(
            &format!(
                "{GOOD}[rate_limits]\nsign_in_per_minute = 0\ntoken_per_minute = 50\n\
                 exempt = [\"10.0.0.0/8\", \"::1\"]\n"
            ),
            "x.toml",
        )
        .unwrap();
        assert_eq!(c.rate_limits.sign_in_per_minute, 0);
        assert_eq!(c.rate_limits.token_per_minute, 50);
        assert_eq!(c.rate_limits.password_reset_per_minute, 30);
        assert_eq!(c.rate_limits.exempt.len(), 2);
        let e = Config::parse(
            &format!("{GOOD}[rate_limits]\ntoken_per_minute = 2000000\nexempt = [\"nope\"]\n"),
            "x.toml",
        )
        .unwrap_err();
        let keys: Vec<&str> = e.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            ["rate_limits.token_per_minute", "rate_limits.exempt[0]"],
            "{e}"
        );
    }
}
