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

/// How long a real-time detection of a kind stands for every repeat of it: the same sign-in
/// retried (a guest's blocked retries reaching the home, a test run) adds nothing more.
pub const REPEAT_WINDOW: time::Duration = time::Duration::hours(24);

impl Detection {
    /// Whether this detection only repeats one of `active`: the same kind from the same source,
    /// at no higher level, while that one still stands — for an offline detection (a leak, threat
    /// intelligence) as long as it is active, for a real-time one within [`REPEAT_WINDOW`]. A
    /// repeat is not recorded: one detection of a kind per user and window.
    pub fn repeats(&self, active: &[Detection]) -> bool {
        active.iter().any(|a| {
            a.state == DetectionState::Active
                && a.risk_event_type == self.risk_event_type
                && a.source == self.source
                && a.risk_level >= self.risk_level
                && (self.detection_timing_type == DetectionTimingType::Offline
                    || (self.detected_date_time - a.detected_date_time).abs() < REPEAT_WINDOW)
        })
    }

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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn detection(kind: RiskEventType, level: RiskLevel, at: OffsetDateTime) -> Detection {
        Detection {
            id: "d".into(),
            risk_event_type: kind,
            risk_level: level,
            detection_timing_type: DetectionTimingType::Realtime,
            source: SOURCE_IDENTITY_PROTECTION.into(),
            ip_address: None,
            detected_date_time: at,
            state: DetectionState::Active,
            explanation: String::new(),
        }
    }

    #[test]
    fn a_repeat_of_a_standing_detection_is_not_another_one() {
        let t0 = datetime!(2026-12-01 10:00 UTC);
        let first = detection(RiskEventType::AnonymizedIpAddress, RiskLevel::Medium, t0);
        let again = detection(
            RiskEventType::AnonymizedIpAddress,
            RiskLevel::Medium,
            t0 + time::Duration::minutes(5),
        );
        assert!(again.repeats(std::slice::from_ref(&first)));
        // Worse than what stands, another kind, after the window, or once the first is
        // remediated: recorded.
        let worse = Detection {
            risk_level: RiskLevel::High,
            ..again.clone()
        };
        assert!(!worse.repeats(std::slice::from_ref(&first)));
        let other = Detection {
            risk_event_type: RiskEventType::MaliciousIpAddress,
            ..again.clone()
        };
        assert!(!other.repeats(std::slice::from_ref(&first)));
        let later = Detection {
            detected_date_time: t0 + REPEAT_WINDOW + time::Duration::seconds(1),
            ..again.clone()
        };
        assert!(!later.repeats(std::slice::from_ref(&first)));
        let remediated = Detection {
            state: DetectionState::Remediated,
            ..first.clone()
        };
        assert!(!again.repeats(&[remediated]));
        // An offline detection stands while it is active, however old.
        let leak = Detection {
            risk_event_type: RiskEventType::LeakedCredentials,
            detection_timing_type: DetectionTimingType::Offline,
            risk_level: RiskLevel::High,
            ..first
        };
        let leak_again = Detection {
            detected_date_time: t0 + time::Duration::days(90),
            ..leak.clone()
        };
        assert!(leak_again.repeats(&[leak]));
    }
}
