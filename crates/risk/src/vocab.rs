//! The ID Protection vocabulary, spelled on the wire exactly as Microsoft Graph
//! spells it (camelCase strings), so people who know Entra can read tenantd's data.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Parses one of this module's enumerations from its wire spelling (`"high"`, `"atRisk"`,
/// `"userPerformedSecuredPasswordReset"`); `None` for anything else. For values that arrive as
/// plain strings (the store, the command line, a partner's claim).
pub fn from_wire<T: serde::de::DeserializeOwned>(text: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(text.to_owned())).ok()
}

/// The wire spelling of any enumeration that serializes as a string (this module's, the policy
/// crate's): the inverse of [`from_wire`]. Empty for a value that is not a string.
pub fn to_wire<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// Graph `riskLevel`.
///
/// Ordered by severity: `none < hidden < low < medium < high`. `hidden` is Graph's "there is a
/// risk but its level is not disclosed": it outranks `none` (something was found) but is below
/// every disclosed level, so the highest *known* level always wins an aggregation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum RiskLevel {
    #[default]
    None,
    Low,
    Medium,
    High,
    Hidden,
}

impl RiskLevel {
    /// Every level, in wire order.
    pub const ALL: [RiskLevel; 5] = [
        RiskLevel::None,
        RiskLevel::Low,
        RiskLevel::Medium,
        RiskLevel::High,
        RiskLevel::Hidden,
    ];

    fn rank(self) -> u8 {
        match self {
            RiskLevel::None => 0,
            RiskLevel::Hidden => 1,
            RiskLevel::Low => 2,
            RiskLevel::Medium => 3,
            RiskLevel::High => 4,
        }
    }

    /// The wire name (`"medium"`).
    pub fn as_str(self) -> &'static str {
        match self {
            RiskLevel::None => "none",
            RiskLevel::Low => "low",
            RiskLevel::Medium => "medium",
            RiskLevel::High => "high",
            RiskLevel::Hidden => "hidden",
        }
    }

    /// One step less severe (`high -> medium -> low -> none`); `none` and `hidden` stay put.
    pub fn lowered(self) -> RiskLevel {
        match self {
            RiskLevel::High => RiskLevel::Medium,
            RiskLevel::Medium => RiskLevel::Low,
            RiskLevel::Low => RiskLevel::None,
            other => other,
        }
    }

    /// A small bit for this level, so sets of levels are one byte (used by the policy crate).
    pub fn bit(self) -> u8 {
        1 << self.rank()
    }
}

impl PartialOrd for RiskLevel {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for RiskLevel {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank().cmp(&other.rank())
    }
}

impl fmt::Display for RiskLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Graph `riskState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum RiskState {
    #[default]
    None,
    AtRisk,
    ConfirmedCompromised,
    Remediated,
    Dismissed,
    ConfirmedSafe,
}

impl RiskState {
    pub fn as_str(self) -> &'static str {
        match self {
            RiskState::None => "none",
            RiskState::AtRisk => "atRisk",
            RiskState::ConfirmedCompromised => "confirmedCompromised",
            RiskState::Remediated => "remediated",
            RiskState::Dismissed => "dismissed",
            RiskState::ConfirmedSafe => "confirmedSafe",
        }
    }
}

impl fmt::Display for RiskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Graph `riskDetail`: why the risk state is what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum RiskDetail {
    #[default]
    None,
    UserPerformedSecuredPasswordReset,
    UserPerformedSecuredPasswordChange,
    AdminGeneratedTemporaryPassword,
    AdminDismissedAllRiskForUser,
    AdminConfirmedUserCompromised,
    #[serde(rename = "userPassedMFADrivenByRiskBasedPolicy")]
    UserPassedMfaDrivenByRiskBasedPolicy,
    AdminConfirmedSigninSafe,
}

impl RiskDetail {
    pub fn as_str(self) -> &'static str {
        match self {
            RiskDetail::None => "none",
            RiskDetail::UserPerformedSecuredPasswordReset => "userPerformedSecuredPasswordReset",
            RiskDetail::UserPerformedSecuredPasswordChange => "userPerformedSecuredPasswordChange",
            RiskDetail::AdminGeneratedTemporaryPassword => "adminGeneratedTemporaryPassword",
            RiskDetail::AdminDismissedAllRiskForUser => "adminDismissedAllRiskForUser",
            RiskDetail::AdminConfirmedUserCompromised => "adminConfirmedUserCompromised",
            RiskDetail::UserPassedMfaDrivenByRiskBasedPolicy => {
                "userPassedMFADrivenByRiskBasedPolicy"
            }
            RiskDetail::AdminConfirmedSigninSafe => "adminConfirmedSigninSafe",
        }
    }
}

impl fmt::Display for RiskDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Graph `riskEventType`: the kind of a detection.
///
/// `tokenIssuerAnomaly` and `partnerReportedRisk` are tenantd's own: a
/// partner's ID token that verifies but looks wrong, and a block reported back by a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RiskEventType {
    // User risk (home).
    LeakedCredentials,
    AdminConfirmedUserCompromised,
    PasswordSpray,
    InvestigationsThreatIntelligence,
    AnomalousUserActivity,
    PartnerReportedRisk,
    // Sign-in risk (real time, where the sign-in happens).
    #[serde(rename = "anonymizedIPAddress")]
    AnonymizedIpAddress,
    #[serde(rename = "maliciousIPAddress")]
    MaliciousIpAddress,
    /// Many wrong passwords for the account from one source: smart lockout locked it.
    #[serde(rename = "suspiciousIPAddress")]
    SuspiciousIpAddress,
    UnlikelyTravel,
    ImpossibleTravel,
    UnfamiliarFeatures,
    NewCountry,
    SuspiciousVelocity,
    TokenIssuerAnomaly,
}

impl RiskEventType {
    pub fn as_str(self) -> &'static str {
        match self {
            RiskEventType::LeakedCredentials => "leakedCredentials",
            RiskEventType::AdminConfirmedUserCompromised => "adminConfirmedUserCompromised",
            RiskEventType::PasswordSpray => "passwordSpray",
            RiskEventType::InvestigationsThreatIntelligence => "investigationsThreatIntelligence",
            RiskEventType::AnomalousUserActivity => "anomalousUserActivity",
            RiskEventType::PartnerReportedRisk => "partnerReportedRisk",
            RiskEventType::AnonymizedIpAddress => "anonymizedIPAddress",
            RiskEventType::MaliciousIpAddress => "maliciousIPAddress",
            RiskEventType::SuspiciousIpAddress => "suspiciousIPAddress",
            RiskEventType::UnlikelyTravel => "unlikelyTravel",
            RiskEventType::ImpossibleTravel => "impossibleTravel",
            RiskEventType::UnfamiliarFeatures => "unfamiliarFeatures",
            RiskEventType::NewCountry => "newCountry",
            RiskEventType::SuspiciousVelocity => "suspiciousVelocity",
            RiskEventType::TokenIssuerAnomaly => "tokenIssuerAnomaly",
        }
    }

    /// Whether this kind of detection contributes to *user* risk (as opposed to the risk of one
    /// sign-in).
    pub fn is_user_risk(self) -> bool {
        matches!(
            self,
            RiskEventType::LeakedCredentials
                | RiskEventType::AdminConfirmedUserCompromised
                | RiskEventType::PasswordSpray
                | RiskEventType::InvestigationsThreatIntelligence
                | RiskEventType::AnomalousUserActivity
                | RiskEventType::PartnerReportedRisk
        )
    }
}

impl fmt::Display for RiskEventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Graph `detectionTimingType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DetectionTimingType {
    Realtime,
    NearRealtime,
    Offline,
}

/// Graph `userType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum UserType {
    #[default]
    Member,
    Guest,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_match_graph() {
        let cases = [
            (
                serde_json::to_string(&RiskEventType::AnonymizedIpAddress),
                "\"anonymizedIPAddress\"",
            ),
            (
                serde_json::to_string(&RiskEventType::MaliciousIpAddress),
                "\"maliciousIPAddress\"",
            ),
            (
                serde_json::to_string(&RiskEventType::TokenIssuerAnomaly),
                "\"tokenIssuerAnomaly\"",
            ),
            (
                serde_json::to_string(&RiskDetail::UserPassedMfaDrivenByRiskBasedPolicy),
                "\"userPassedMFADrivenByRiskBasedPolicy\"",
            ),
            (
                serde_json::to_string(&RiskState::ConfirmedCompromised),
                "\"confirmedCompromised\"",
            ),
            (
                serde_json::to_string(&DetectionTimingType::NearRealtime),
                "\"nearRealtime\"",
            ),
            (serde_json::to_string(&UserType::Guest), "\"guest\""),
        ];
        for (got, want) in cases {
            assert_eq!(got.ok().as_deref(), Some(want));
        }
    }

    #[test]
    fn as_str_agrees_with_serde() {
        for t in [
            RiskEventType::LeakedCredentials,
            RiskEventType::AdminConfirmedUserCompromised,
            RiskEventType::PasswordSpray,
            RiskEventType::InvestigationsThreatIntelligence,
            RiskEventType::AnomalousUserActivity,
            RiskEventType::PartnerReportedRisk,
            RiskEventType::AnonymizedIpAddress,
            RiskEventType::MaliciousIpAddress,
            RiskEventType::UnlikelyTravel,
            RiskEventType::ImpossibleTravel,
            RiskEventType::UnfamiliarFeatures,
            RiskEventType::NewCountry,
            RiskEventType::SuspiciousVelocity,
            RiskEventType::TokenIssuerAnomaly,
        ] {
            assert_eq!(
                serde_json::to_string(&t).ok(),
                Some(format!("\"{}\"", t.as_str()))
            );
        }
        for l in RiskLevel::ALL {
            assert_eq!(
                serde_json::to_string(&l).ok(),
                Some(format!("\"{}\"", l.as_str()))
            );
        }
    }

    #[test]
    fn unknown_level_refused() {
        assert!(serde_json::from_str::<RiskLevel>("\"severe\"").is_err());
        assert!(serde_json::from_str::<RiskLevel>("\"High\"").is_err());
    }

    #[test]
    fn levels_order_by_severity() {
        assert!(RiskLevel::None < RiskLevel::Hidden);
        assert!(RiskLevel::Hidden < RiskLevel::Low);
        assert!(RiskLevel::Low < RiskLevel::Medium);
        assert!(RiskLevel::Medium < RiskLevel::High);
        assert_eq!(RiskLevel::High.lowered(), RiskLevel::Medium);
        assert_eq!(RiskLevel::Low.lowered(), RiskLevel::None);
        let bits: u8 = RiskLevel::ALL.iter().map(|l| l.bit()).fold(0, |a, b| a | b);
        assert_eq!(bits.count_ones(), 5);
    }
}
