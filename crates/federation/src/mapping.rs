//! Reading user risk out of a partner's ID token.
//!
//! tenantd homes send the `user_risk` object (README, "The `user_risk` claim"). A third-party
//! home IdP may carry the same facts under another name or as a bare level string; the partner entry's
//! [`ClaimMapping`] says where to look and in what shape, so the rest of the resource only ever
//! sees a [`UserRiskClaim`].

use risk::{RiskDetail, RiskLevel, RiskState, UserRiskClaim};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Where a partner puts user risk and in what shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimMapping {
    /// Claim name; a dotted path (`ext.risk`) reaches into nested objects.
    pub claim: String,
    /// What the claim holds.
    pub format: ClaimFormat,
}

/// The shape of the user-risk claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimFormat {
    /// An object with level, state, detail and update time under these member names (tenantd's
    /// own contract uses `level`, `state`, `detail`, `updated_at`). Only the level is required;
    /// a missing state reads as `atRisk` when the level is not `none`.
    Object {
        /// Member holding the `riskLevel`.
        level: String,
        /// Member holding the `riskState`.
        state: String,
        /// Member holding the `riskDetail`.
        detail: String,
        /// Member holding the unix time of the last change.
        updated_at: String,
    },
    /// A bare `riskLevel` string (`"high"`), e.g. a claim mapper in another IdP.
    Level,
}

impl Default for ClaimMapping {
    /// tenantd's own contract: `"user_risk": {"level", "state", "detail", "updated_at"}`.
    fn default() -> Self {
        Self {
            claim: "user_risk".into(),
            format: ClaimFormat::Object {
                level: "level".into(),
                state: "state".into(),
                detail: "detail".into(),
                updated_at: "updated_at".into(),
            },
        }
    }
}

/// What the mapping found in a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RiskClaimReading {
    /// The claim is not there.
    Absent,
    /// The claim is there but cannot be read; the reason names what is wrong.
    Malformed(String),
    /// The claim, read.
    Present(UserRiskClaim),
}

/// Whether a token carried the mapped claim, for the sign-in log (`homeRiskClaim`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClaimPresence {
    /// There and read.
    Present,
    /// Not there.
    Absent,
    /// There, but not in the configured shape.
    Unreadable,
}

impl RiskClaimReading {
    /// Whether the claim was there and readable.
    pub fn presence(&self) -> ClaimPresence {
        match self {
            RiskClaimReading::Present(_) => ClaimPresence::Present,
            RiskClaimReading::Absent => ClaimPresence::Absent,
            RiskClaimReading::Malformed(_) => ClaimPresence::Unreadable,
        }
    }
}

impl ClaimMapping {
    /// Whether a partner's `claims_supported` list names the claim: its whole name, or for a
    /// dotted path the top-level claim it reaches into (the way [`ClaimMapping::read`] finds it).
    pub fn is_listed_in(&self, claims_supported: &[String]) -> bool {
        let top = self.claim.split('.').next().unwrap_or(&self.claim);
        claims_supported
            .iter()
            .any(|c| *c == self.claim || c == top)
    }

    /// Reads the claim from a verified token's payload. `issued_at` stands in for a missing
    /// update time.
    pub fn read(&self, claims: &Map<String, Value>, issued_at: i64) -> RiskClaimReading {
        let Some(value) = lookup(claims, &self.claim) else {
            return RiskClaimReading::Absent;
        };
        let read = match &self.format {
            ClaimFormat::Level => level(value).map(|level| UserRiskClaim {
                level,
                state: implied_state(level),
                detail: RiskDetail::None,
                updated_at: issued_at,
            }),
            ClaimFormat::Object {
                level: level_key,
                state,
                detail,
                updated_at,
            } => match value {
                Value::Object(object) => read_object(
                    object,
                    [level_key, state, detail, updated_at].map(String::as_str),
                    issued_at,
                ),
                _ => Err("is not a JSON object".to_owned()),
            },
        };
        match read {
            Ok(claim) => RiskClaimReading::Present(claim),
            Err(why) => RiskClaimReading::Malformed(format!("claim {:?} {why}", self.claim)),
        }
    }
}

fn read_object(
    object: &Map<String, Value>,
    [level_key, state_key, detail_key, updated_key]: [&str; 4],
    issued_at: i64,
) -> Result<UserRiskClaim, String> {
    let level = object
        .get(level_key)
        .ok_or_else(|| format!("has no {level_key:?} member"))
        .and_then(|v| level(v).map_err(|e| format!("member {level_key:?} {e}")))?;
    let state = match object.get(state_key) {
        None => implied_state(level),
        Some(v) => enum_value::<RiskState>(v).map_err(|e| format!("member {state_key:?} {e}"))?,
    };
    let detail = match object.get(detail_key) {
        None => RiskDetail::None,
        Some(v) => enum_value::<RiskDetail>(v).map_err(|e| format!("member {detail_key:?} {e}"))?,
    };
    let updated_at = match object.get(updated_key) {
        None => issued_at,
        Some(v) => v
            .as_i64()
            .filter(|t| *t >= 0)
            .ok_or_else(|| format!("member {updated_key:?} is not a unix time"))?,
    };
    Ok(UserRiskClaim {
        level,
        state,
        detail,
        updated_at,
    })
}

/// A level string, case-insensitively (other IdPs write `HIGH`).
fn level(value: &Value) -> Result<RiskLevel, String> {
    match value {
        Value::String(s) => enum_value(&Value::String(s.to_ascii_lowercase())),
        _ => Err("is not a string".to_owned()),
    }
}

fn enum_value<T: DeserializeOwned>(value: &Value) -> Result<T, String> {
    match value {
        Value::String(s) => {
            risk::from_wire(s).ok_or_else(|| format!("has the unknown value {s:?}"))
        }
        _ => Err("is not a string".to_owned()),
    }
}

/// A bare level says nothing about state: a level above `none` means the user is at risk.
fn implied_state(level: RiskLevel) -> RiskState {
    if level == RiskLevel::None {
        RiskState::None
    } else {
        RiskState::AtRisk
    }
}

/// Follows a dotted path through nested objects. A claim whose own name contains a dot is
/// found first, so `"https://example.com/risk"`-style names work too.
fn lookup<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(path) {
        return Some(v);
    }
    let mut parts = path.split('.');
    let mut current = claims.get(parts.next()?)?;
    for part in parts {
        current = current.as_object()?.get(part)?;
    }
    Some(current)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn reads_the_tenantd_contract() {
        let c = claims(json!({"sub": "x", "user_risk":
            {"level": "high", "state": "atRisk", "detail": "none", "updated_at": 1_764_000_000}}));
        assert_eq!(
            ClaimMapping::default().read(&c, 5),
            RiskClaimReading::Present(UserRiskClaim {
                level: RiskLevel::High,
                state: RiskState::AtRisk,
                detail: RiskDetail::None,
                updated_at: 1_764_000_000,
            })
        );
    }

    #[test]
    fn a_claims_supported_list_names_the_claim_or_its_top_level_object() {
        let list = |n: &[&str]| n.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let mapping = |claim: &str| ClaimMapping {
            claim: claim.into(),
            format: ClaimFormat::Level,
        };
        assert!(ClaimMapping::default().is_listed_in(&list(&["sub", "user_risk"])));
        assert!(!ClaimMapping::default().is_listed_in(&list(&["sub", "risk"])));
        assert!(mapping("ext.risk").is_listed_in(&list(&["ext"])));
        assert!(mapping("https://idp.test/risk").is_listed_in(&list(&["https://idp.test/risk"])));
        assert!(!mapping("ext.risk").is_listed_in(&list(&["risk"])));
    }

    #[test]
    fn absent_and_malformed_are_told_apart() {
        let m = ClaimMapping::default();
        assert_eq!(
            m.read(&claims(json!({"sub": "x"})), 5),
            RiskClaimReading::Absent
        );
        for bad in [
            json!("high"),
            json!({"state": "atRisk"}),
            json!({"level": "extreme"}),
            json!({"level": 3}),
            json!({"level": "low", "state": "sad"}),
            json!({"level": "low", "updated_at": "yesterday"}),
            json!({"level": "low", "updated_at": -1}),
        ] {
            let r = m.read(&claims(json!({ "user_risk": bad.clone() })), 5);
            assert!(
                matches!(r, RiskClaimReading::Malformed(ref why) if why.contains("user_risk")),
                "{bad} -> {r:?}"
            );
            assert_eq!(r.presence(), ClaimPresence::Unreadable);
        }
        assert_eq!(RiskClaimReading::Absent.presence(), ClaimPresence::Absent);
        assert_eq!(
            serde_json::to_value(ClaimPresence::Unreadable).unwrap(),
            json!("unreadable")
        );
    }

    #[test]
    fn a_level_only_object_implies_state_and_time() {
        let r = ClaimMapping::default().read(&claims(json!({"user_risk": {"level": "low"}})), 77);
        assert_eq!(
            r,
            RiskClaimReading::Present(UserRiskClaim {
                level: RiskLevel::Low,
                state: RiskState::AtRisk,
                detail: RiskDetail::None,
                updated_at: 77,
            })
        );
    }

    #[test]
    fn a_third_party_bare_level_under_a_nested_name() {
        let m = ClaimMapping {
            claim: "ext.riskLevel".into(),
            format: ClaimFormat::Level,
        };
        let r = m.read(&claims(json!({"ext": {"riskLevel": "MEDIUM"}})), 9);
        assert_eq!(
            r,
            RiskClaimReading::Present(UserRiskClaim {
                level: RiskLevel::Medium,
                state: RiskState::AtRisk,
                detail: RiskDetail::None,
                updated_at: 9,
            })
        );
        assert_eq!(
            m.read(&claims(json!({"ext": {"riskLevel": "none"}})), 9),
            RiskClaimReading::Present(UserRiskClaim {
                level: RiskLevel::None,
                state: RiskState::None,
                detail: RiskDetail::None,
                updated_at: 9,
            })
        );
        assert_eq!(
            m.read(&claims(json!({"riskLevel": "high"})), 9),
            RiskClaimReading::Absent
        );
    }

    #[test]
    fn renamed_object_members_and_dotted_claim_names() {
        let m = ClaimMapping {
            claim: "https://idp.example/risk".into(),
            format: ClaimFormat::Object {
                level: "riskLevel".into(),
                state: "riskState".into(),
                detail: "riskDetail".into(),
                updated_at: "riskLastUpdatedDateTime".into(),
            },
        };
        let c = claims(json!({"https://idp.example/risk":
            {"riskLevel": "high", "riskState": "confirmedCompromised",
             "riskDetail": "adminConfirmedUserCompromised", "riskLastUpdatedDateTime": 10}}));
        assert_eq!(
            m.read(&c, 5),
            RiskClaimReading::Present(UserRiskClaim {
                level: RiskLevel::High,
                state: RiskState::ConfirmedCompromised,
                detail: RiskDetail::AdminConfirmedUserCompromised,
                updated_at: 10,
            })
        );
    }
}
