//! `[risk]`: where a tenant's ID Protection data comes from — IP intelligence files, the
//! Conditional Access policy directory — and the knobs of sign-in and user risk.
//!
//! Paths are relative to the directory of the config file, so a tenant's config and its
//! `intel/` and `policies/` travel together.

use super::Validator;
use risk::{AgeingConfig, SignInRiskConfig};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// `[risk]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRisk {
    #[serde(default)]
    anonymous_ips: Vec<PathBuf>,
    #[serde(default)]
    malicious_ips: Vec<PathBuf>,
    named_locations: Option<PathBuf>,
    geo: Option<PathBuf>,
    asn: Option<PathBuf>,
    policies_dir: Option<PathBuf>,
    low_risk_max_age_days: Option<u32>,
    password_spray_accounts: Option<i64>,
    password_spray_window_secs: Option<i64>,
    partner_reported_risk_level: Option<String>,
    #[serde(default)]
    sign_in: toml::Table,
}

/// The validated `[risk]` section (file paths resolved, not yet read).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RiskSettings {
    /// CIDR list files of anonymous IPs (Tor exits, anonymous VPNs).
    pub anonymous_ips: Vec<PathBuf>,
    /// CIDR list files of malicious IPs.
    pub malicious_ips: Vec<PathBuf>,
    /// Named locations (TOML or JSON, Graph's namedLocation shape).
    pub named_locations: Option<PathBuf>,
    /// Geolocation: "IP to city lite" CSV or a MaxMind `.mmdb`.
    pub geo: Option<PathBuf>,
    /// ASN: "IP to ASN lite" CSV or a MaxMind ASN `.mmdb`.
    pub asn: Option<PathBuf>,
    /// Conditional Access policy files (`*.json`, `*.toml`) and `identity-protection.toml`
    /// (the built-in user-risk and sign-in-risk policies).
    pub policies_dir: Option<PathBuf>,
    /// How long low-level detections count.
    pub ageing: AgeingConfig,
    /// Sign-in risk thresholds and levels.
    pub sign_in: SignInRiskConfig,
    /// When failed passwords from one IP count as a password spray.
    pub password_spray: crate::user_risk::PasswordSprayConfig,
    /// The level of the `partnerReportedRisk` detection a partner's report of a block raises
    /// (`low` unless set): how much this tenant's own user-risk policies make of it.
    pub partner_reported_risk_level: Option<risk::RiskLevel>,
}

impl RiskSettings {
    /// The level a partner's report of a block is detected at.
    pub fn partner_reported_level(&self) -> risk::RiskLevel {
        self.partner_reported_risk_level
            .unwrap_or(risk::RiskLevel::Low)
    }
}

impl Validator {
    pub(super) fn risk(&mut self, raw: RawRisk, file: &str) -> RiskSettings {
        let base = Path::new(file).parent().unwrap_or(Path::new(""));
        let at = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let mut ageing = AgeingConfig::default();
        if let Some(days) = raw.low_risk_max_age_days {
            if days == 0 || days > 3650 {
                self.bad(
                    "risk.low_risk_max_age_days",
                    format!("a number of days from 1 to 3650, got {days}"),
                );
            }
            ageing.low_level_max_age_days = days;
        }
        let sign_in = self.sign_in_risk(raw.sign_in);
        let mut password_spray = crate::user_risk::PasswordSprayConfig::default();
        if let Some(n) = raw.password_spray_accounts {
            if !(2..=10_000).contains(&n) {
                self.bad(
                    "risk.password_spray_accounts",
                    format!("a number of accounts from 2 to 10000, got {n}"),
                );
            }
            password_spray.min_accounts = n;
        }
        if let Some(w) = raw.password_spray_window_secs {
            if !(60..=7 * 86_400).contains(&w) {
                self.bad(
                    "risk.password_spray_window_secs",
                    format!("seconds from 60 to 604800, got {w}"),
                );
            }
            password_spray.window_secs = w;
        }
        let partner_reported_risk_level = raw.partner_reported_risk_level.and_then(|l| {
            let level = match l.as_str() {
                "low" => Some(risk::RiskLevel::Low),
                "medium" => Some(risk::RiskLevel::Medium),
                "high" => Some(risk::RiskLevel::High),
                _ => None,
            };
            if level.is_none() {
                self.bad(
                    "risk.partner_reported_risk_level",
                    format!("low, medium or high, got {l:?}"),
                );
            }
            level
        });
        RiskSettings {
            partner_reported_risk_level,
            anonymous_ips: raw.anonymous_ips.into_iter().map(at).collect(),
            malicious_ips: raw.malicious_ips.into_iter().map(at).collect(),
            named_locations: raw.named_locations.map(at),
            geo: raw.geo.map(at),
            asn: raw.asn.map(at),
            policies_dir: raw.policies_dir.map(at),
            ageing,
            sign_in,
            password_spray,
        }
    }

    /// `[risk.sign_in]` in snake_case (`impossible_travel_kmh`, `[risk.sign_in.levels]`, ...)
    /// onto the risk crate's settings.
    fn sign_in_risk(&mut self, table: toml::Table) -> SignInRiskConfig {
        let value = serde_json::to_value(camel_keys(toml::Value::Table(table)));
        let parsed = value
            .map_err(|e| ("risk.sign_in".to_owned(), e.to_string()))
            .and_then(|v| {
                serde_path_to_error::deserialize::<_, SignInRiskConfig>(v).map_err(|e| {
                    let path = snake(&e.path().to_string());
                    let key = if path == "." {
                        "risk.sign_in".to_owned()
                    } else {
                        format!("risk.sign_in.{path}")
                    };
                    super::source::explain(key, &snake(&e.inner().to_string()))
                })
            });
        match parsed {
            Ok(c) => {
                if let Err(e) = c.validate() {
                    self.bad("risk.sign_in", snake(&e));
                }
                c
            }
            Err((key, expected)) => {
                self.bad(key, expected);
                SignInRiskConfig::default()
            }
        }
    }
}

fn camel_keys(v: toml::Value) -> toml::Value {
    match v {
        toml::Value::Table(t) => toml::Value::Table(
            t.into_iter()
                .map(|(k, v)| (camel(&k), camel_keys(v)))
                .collect(),
        ),
        other => other,
    }
}

fn camel(k: &str) -> String {
    let mut out = String::with_capacity(k.len());
    let mut upper = false;
    for c in k.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Messages from the risk crate name camelCase fields; the config file uses snake_case.
fn snake(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len() + 8);
    let mut prev_lower = false;
    for c in msg.chars() {
        if c.is_ascii_uppercase() && prev_lower {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::{Config, tests::GOOD};

    #[test]
    fn partner_reports_are_low_unless_set() {
        let c = Config::parse(GOOD, "x.toml").unwrap();
        assert_eq!(c.risk.partner_reported_level(), risk::RiskLevel::Low);
        let c = Config::parse(
            &format!("{GOOD}[risk]\npartner_reported_risk_level = \"medium\"\n"),
            "x.toml",
        )
        .unwrap();
        assert_eq!(c.risk.partner_reported_level(), risk::RiskLevel::Medium);
        let e = Config::parse(
            &format!("{GOOD}[risk]\npartner_reported_risk_level = \"none\"\n"),
            "x.toml",
        )
        .unwrap_err();
        assert!(
            e.problems
                .iter()
                .any(|p| p.key == "risk.partner_reported_risk_level"),
            "{e}"
        );
    }
}
