//! Phase 3, at a resource: a partner's ID token that verified (signature, `iss`, `aud`, `exp`,
//! `nonce`) but does not look like what this partner sends. `tokenIssuerAnomaly` judges the
//! token itself against the partner's learned profile: its timing and its claim set.
//!
//! Which key signed it is not judged: a key the partner publishes in its own JWKS, fetched over
//! TLS from its issuer, is the partner's key, and rotating keys is ordinary hygiene that must
//! never block guests. And because one odd token is weak evidence on its own, the detection is
//! at most `medium`; only another detection in the same sign-in (aggregation escalates two
//! mediums) makes the sign-in high.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use super::{Evidence, Phase, human_duration};
use crate::vocab::{RiskEventType, RiskLevel};

/// What the resource knows about the partner ID token it just verified, next to what that
/// partner usually sends. The server fills it from its JWKS cache and its per-partner profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenIssuerFacts {
    /// The partner's issuer (for explanations).
    pub issuer: String,
    /// `kid` of the key that signed the token (for the sign-in log; not judged).
    #[serde(default)]
    pub key_id: Option<String>,
    /// `iat`.
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
    /// `auth_time`, when present.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub auth_time: Option<OffsetDateTime>,
    /// Names of the claims in this token.
    pub claim_names: Vec<String>,
    /// Names of the claims this partner's tokens always carried so far; empty while there is no
    /// profile yet (then claims are not judged).
    #[serde(default)]
    pub usual_claim_names: Vec<String>,
}

/// Knobs and levels of `tokenIssuerAnomaly`. Levels are `low` or `medium` (or `none` to
/// switch a finding off): a token anomaly alone is never high.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct TokenAnomalyConfig {
    /// Allowed clock difference for `iat` in the future and `auth_time` after `iat`.
    /// Default 300 s.
    pub max_clock_skew_seconds: u32,
    /// A token from a sign-in that just happened is fresh: older `iat` is out of line.
    /// Default 600 s.
    pub max_token_age_seconds: u32,
    /// Level for `iat`/`auth_time` out of line. Default medium.
    pub timing_level: RiskLevel,
    /// Level for a claim set that deviates from the partner's usual. Default medium.
    pub claims_level: RiskLevel,
}

impl Default for TokenAnomalyConfig {
    fn default() -> Self {
        Self {
            max_clock_skew_seconds: 300,
            max_token_age_seconds: 600,
            timing_level: RiskLevel::Medium,
            claims_level: RiskLevel::Medium,
        }
    }
}

impl TokenAnomalyConfig {
    pub(super) fn validate(&self) -> Result<(), String> {
        if self.max_token_age_seconds == 0 {
            return Err("token.maxTokenAgeSeconds must be positive".into());
        }
        for (key, level) in [
            ("token.timingLevel", self.timing_level),
            ("token.claimsLevel", self.claims_level),
        ] {
            if level > RiskLevel::Medium {
                return Err(format!(
                    "{key} must be none, low or medium: a token anomaly alone is never high \
                     (another detection in the same sign-in escalates it)"
                ));
            }
        }
        Ok(())
    }
}

/// One `tokenIssuerAnomaly` detection with every finding in its explanation and the highest
/// finding's level, or nothing when the token looks ordinary.
pub(super) fn evaluate(
    t: &TokenIssuerFacts,
    now: OffsetDateTime,
    cfg: &TokenAnomalyConfig,
    ev: &mut Evidence,
) {
    let mut findings: Vec<String> = Vec::new();
    let mut level = RiskLevel::None;
    let mut found = |l: RiskLevel, why: String| {
        level = level.max(l);
        findings.push(why);
    };
    let secs = |s: u32| Duration::seconds(i64::from(s));
    let skew = secs(cfg.max_clock_skew_seconds);
    if t.issued_at > now + skew {
        found(
            cfg.timing_level,
            format!("iat is {} in the future", human_duration(t.issued_at - now)),
        );
    } else if now - t.issued_at > secs(cfg.max_token_age_seconds) {
        found(
            cfg.timing_level,
            format!(
                "iat is {} old, while a token from a sign-in that just happened is at most {}",
                human_duration(now - t.issued_at),
                human_duration(secs(cfg.max_token_age_seconds))
            ),
        );
    }
    if let Some(auth) = t.auth_time
        && auth > t.issued_at + skew
    {
        found(
            cfg.timing_level,
            format!(
                "auth_time is {} after iat: the user authenticated after the token was issued",
                human_duration(auth - t.issued_at)
            ),
        );
    }
    if !t.usual_claim_names.is_empty() {
        let missing: Vec<&str> = t
            .usual_claim_names
            .iter()
            .filter(|u| !t.claim_names.contains(u))
            .map(String::as_str)
            .collect();
        let extra: Vec<&str> = t
            .claim_names
            .iter()
            .filter(|c| !t.usual_claim_names.contains(c))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() || !extra.is_empty() {
            let mut parts = Vec::new();
            if !missing.is_empty() {
                parts.push(format!("missing {}", missing.join(", ")));
            }
            if !extra.is_empty() {
                parts.push(format!("unexpected {}", extra.join(", ")));
            }
            found(
                cfg.claims_level,
                format!(
                    "claims deviate from what {} always sends: {}",
                    t.issuer,
                    parts.join(" and ")
                ),
            );
        }
    }
    if !findings.is_empty() {
        ev.raise(
            Phase::PartnerToken,
            RiskEventType::TokenIssuerAnomaly,
            // Config validation already refuses more; the cap keeps the rule in one place.
            level.min(RiskLevel::Medium),
            format!(
                "ID token from {} verified but looks wrong: {}",
                t.issuer,
                findings.join("; ")
            ),
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::intel::Intel;
    use crate::signin::{SignInContext, SignInRisk, SignInRiskConfig, evaluate_sign_in};

    fn now() -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::days(20_000)
    }

    fn usual() -> Vec<String> {
        [
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "nonce",
            "email",
            "user_risk",
        ]
        .map(String::from)
        .to_vec()
    }

    fn ordinary() -> TokenIssuerFacts {
        TokenIssuerFacts {
            issuer: "https://home.example".into(),
            key_id: Some("k2".into()),
            issued_at: now() - Duration::seconds(2),
            auth_time: Some(now() - Duration::seconds(20)),
            claim_names: usual(),
            usual_claim_names: usual(),
        }
    }

    fn eval(t: &TokenIssuerFacts) -> SignInRisk {
        let ctx = SignInContext {
            ip: "192.0.2.1".parse().unwrap(),
            user_agent: "x",
            at: now(),
            history: &[],
            token: Some(t),
        };
        evaluate_sign_in(&ctx, &Intel::default(), &SignInRiskConfig::default())
    }

    #[test]
    fn ordinary_token_is_quiet() {
        assert!(eval(&ordinary()).detections.is_empty());
        // A rotation changes only the kid: which published key signed is never judged.
        let t = TokenIssuerFacts {
            key_id: Some("brand-new".into()),
            ..ordinary()
        };
        assert!(eval(&t).detections.is_empty());
        let t = TokenIssuerFacts {
            key_id: None,
            ..ordinary()
        };
        assert!(eval(&t).detections.is_empty());
    }

    #[test]
    fn timing_out_of_line_is_medium() {
        let cases = [
            (
                TokenIssuerFacts {
                    issued_at: now() + Duration::minutes(30),
                    auth_time: None,
                    ..ordinary()
                },
                "in the future",
            ),
            (
                TokenIssuerFacts {
                    issued_at: now() - Duration::hours(3),
                    auth_time: None,
                    ..ordinary()
                },
                "3 h 0 min old",
            ),
            (
                TokenIssuerFacts {
                    auth_time: Some(now() + Duration::hours(1)),
                    ..ordinary()
                },
                "after iat",
            ),
        ];
        for (t, want) in cases {
            let r = eval(&t);
            assert_eq!(r.risk_level, RiskLevel::Medium, "{want}");
            assert!(r.detections[0].explanation.contains(want), "{r:#?}");
        }
    }

    #[test]
    fn claim_deviation_names_the_claims() {
        let mut t = ordinary();
        t.claim_names.retain(|c| c != "user_risk");
        t.claim_names.push("groups".into());
        let r = eval(&t);
        let e = &r.detections[0].explanation;
        assert!(e.contains("missing user_risk"), "{e}");
        assert!(e.contains("unexpected groups"), "{e}");
        assert_eq!(r.risk_level, RiskLevel::Medium);
        // No profile yet: claims are not judged.
        t.usual_claim_names.clear();
        assert!(eval(&t).detections.is_empty());
    }

    #[test]
    fn several_findings_are_one_detection_at_most_medium() {
        let mut t = TokenIssuerFacts {
            issued_at: now() - Duration::hours(2),
            auth_time: None,
            ..ordinary()
        };
        t.claim_names.push("extra".into());
        let r = eval(&t);
        assert_eq!(r.detections.len(), 1);
        assert_eq!(r.detections[0].risk_level, RiskLevel::Medium);
        assert_eq!(r.risk_level, RiskLevel::Medium);
        assert_eq!(r.detections[0].explanation.matches("; ").count(), 1);
    }

    #[test]
    fn a_token_anomaly_is_high_only_when_corroborated() {
        // The same odd token from an anonymous IP: two medium detections escalate.
        let t = TokenIssuerFacts {
            issued_at: now() - Duration::hours(2),
            auth_time: None,
            ..ordinary()
        };
        let ip = "198.51.100.7".parse().unwrap();
        let intel = Intel::load(crate::intel::IntelSources {
            anonymous_ips: vec![crate::intel::IntelSource::new("anon.txt", "198.51.100.7\n")],
            ..crate::intel::IntelSources::default()
        })
        .unwrap();
        let ctx = SignInContext {
            ip,
            user_agent: "x",
            at: now(),
            history: &[],
            token: Some(&t),
        };
        let r = evaluate_sign_in(&ctx, &intel, &SignInRiskConfig::default());
        assert_eq!(r.risk_level, RiskLevel::High, "{r:#?}");
    }

    #[test]
    fn a_high_token_level_is_refused_by_config() {
        for cfg in [
            TokenAnomalyConfig {
                timing_level: RiskLevel::High,
                ..TokenAnomalyConfig::default()
            },
            TokenAnomalyConfig {
                claims_level: RiskLevel::High,
                ..TokenAnomalyConfig::default()
            },
        ] {
            let e = cfg.validate().unwrap_err();
            assert!(e.contains("never high"), "{e}");
        }
        assert!(TokenAnomalyConfig::default().validate().is_ok());
    }
}
