//! One risk event (Graph `riskDetection`, trimmed to what tenantd records).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::vocab::{DetectionTimingType, RiskEventType, RiskLevel};

/// Whether a detection still counts towards risk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum DetectionState {
    /// Counts towards the user's (or sign-in's) risk level.
    #[default]
    Active,
    /// An admin dismissed it: it no longer counts.
    Dismissed,
    /// The user remediated it (secure password reset/change, MFA, admin temporary password).
    Remediated,
}

/// One detection: what was seen, how bad, when, from where, and why in plain words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Detection {
    pub id: String,
    pub risk_event_type: RiskEventType,
    pub risk_level: RiskLevel,
    pub detection_timing_type: DetectionTimingType,
    /// Who detected it: `"IdentityProtection"` for tenantd's own engine, `"admin"`, or the
    /// partner's issuer for `partnerReportedRisk`.
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<IpAddr>,
    #[serde(with = "time::serde::rfc3339")]
    pub detected_date_time: OffsetDateTime,
    #[serde(default)]
    pub state: DetectionState,
    /// Human explanation (Graph's `additionalInfo` in spirit).
    pub explanation: String,
}

/// The `source` tenantd's own engine writes.
pub const SOURCE_IDENTITY_PROTECTION: &str = "IdentityProtection";

impl Detection {
    /// Whether this detection counts at `now`: it is active and, if its level is `low`, it is
    /// younger than `low_level_max_age` (Entra ages low-level detections out; 180 days by
    /// default, see [`crate::AgeingConfig`]).
    pub fn counts_at(&self, now: OffsetDateTime, ageing: &crate::AgeingConfig) -> bool {
        if self.state != DetectionState::Active {
            return false;
        }
        if self.risk_level == RiskLevel::Low {
            return now - self.detected_date_time < ageing.low_level_max_age();
        }
        true
    }
}
