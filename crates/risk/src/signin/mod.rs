//! Real-time sign-in risk, evaluated where the sign-in happens (for a guest: at the resource).
//!
//! The seed: "The real-time sign-in risk for these users is evaluated at the resource directory
//! when they try to access the resource."
//!
//! Evaluators are grouped by phase (after keycloak-adaptive-authn): [`Phase::Network`] runs on
//! what the request alone shows (anonymous and malicious IPs), [`Phase::UserKnown`] compares the
//! sign-in with this user's own history here (travel, new country, unfamiliar features,
//! velocity across different networks or devices), [`Phase::PartnerToken`] inspects a partner's ID token that verified but may still
//! look wrong. Each evaluator produces explained evidence; one aggregation step
//! ([`aggregate`]) turns the evidence into the sign-in's level. Nothing here does I/O: intel,
//! history and the clock come in as arguments.

mod history;
mod network;
mod token;

use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::detection::{Detection, DetectionState};
use crate::intel::{Intel, IpFacts};
use crate::vocab::{DetectionTimingType, RiskDetail, RiskEventType, RiskLevel, RiskState};

pub use history::same_network;
pub use token::{TokenAnomalyConfig, TokenIssuerFacts};

/// Which group of evaluators produced a piece of evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    /// The request alone: the IP address.
    Network,
    /// The user is known: compared with their own sign-in history at this tenant.
    UserKnown,
    /// A partner's ID token was verified: does it look like what this partner always sends?
    PartnerToken,
}

/// Level of each kind of sign-in detection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct DetectionLevels {
    pub anonymized_ip_address: RiskLevel,
    pub malicious_ip_address: RiskLevel,
    pub impossible_travel: RiskLevel,
    pub unlikely_travel: RiskLevel,
    pub new_country: RiskLevel,
    pub unfamiliar_features: RiskLevel,
    pub suspicious_velocity: RiskLevel,
}

impl Default for DetectionLevels {
    fn default() -> Self {
        Self {
            anonymized_ip_address: RiskLevel::Medium,
            malicious_ip_address: RiskLevel::High,
            impossible_travel: RiskLevel::High,
            unlikely_travel: RiskLevel::Medium,
            new_country: RiskLevel::Low,
            unfamiliar_features: RiskLevel::Low,
            suspicious_velocity: RiskLevel::Medium,
        }
    }
}

/// Every knob of sign-in risk, with documented defaults (all fields optional in config files).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct SignInRiskConfig {
    pub levels: DetectionLevels,
    /// `impossibleTravel` when the speed between the previous sign-in and this one is at least
    /// this (km/h). Default 1,000: faster than any airliner's ground speed.
    pub impossible_travel_kmh: f64,
    /// `unlikelyTravel` for speeds from this up to `impossibleTravelKmh`. Default 500 km/h:
    /// reachable only by air with next to no time on the ground, so possible but unlikely.
    pub unlikely_travel_kmh: f64,
    /// Moves shorter than this are ignored (geolocation is city-accurate at best). Default 100.
    pub travel_min_distance_km: f64,
    /// `unfamiliarFeatures` only once the user has at least this many sign-ins here (the
    /// learning period). Default 3.
    pub familiarity_min_history: usize,
    /// `unfamiliarFeatures` when at least this many of {country, ASN, user agent} were never
    /// seen for this user here. Default 2 (one new property alone is ordinary life).
    pub unfamiliar_min_properties: usize,
    /// `suspiciousVelocity` when sign-ins from more than `velocityMaxSignIns` different
    /// networks or devices (this one included) fall within this many seconds. Default 300.
    pub velocity_window_seconds: u32,
    /// How many different networks or devices one user may sign in from within
    /// `velocityWindowSeconds`. Default 10. Sign-ins are told apart by network (the IPv4 /24
    /// or IPv6 /64 of the address) and device (the user agent, version numbers ignored); all
    /// sign-ins with the same network and device count once, and a sign-in whose network and
    /// device match an earlier one of the user's history here — a *familiar device and
    /// network* — is never `suspiciousVelocity`, however many there are: test suites sign one
    /// user in thousands of times from one machine. The same ASN alone is not the same
    /// network (a carrier or cloud provider serves millions).
    pub velocity_max_sign_ins: usize,
    /// A sign-in from a trusted named location is where the organisation knows its users are:
    /// `unfamiliarFeatures`, `newCountry` and `unlikelyTravel` are not raised, and
    /// `impossibleTravel` is lowered one level. Default true.
    pub trusted_location_lowers_unfamiliarity: bool,
    /// Two or more detections at `medium` or above make the sign-in `high`. Default true.
    pub escalate_multiple_medium: bool,
    pub token: TokenAnomalyConfig,
}

impl Default for SignInRiskConfig {
    fn default() -> Self {
        Self {
            levels: DetectionLevels::default(),
            impossible_travel_kmh: 1000.0,
            unlikely_travel_kmh: 500.0,
            travel_min_distance_km: 100.0,
            familiarity_min_history: 3,
            unfamiliar_min_properties: 2,
            velocity_window_seconds: 300,
            velocity_max_sign_ins: 10,
            trusted_location_lowers_unfamiliarity: true,
            escalate_multiple_medium: true,
            token: TokenAnomalyConfig::default(),
        }
    }
}

impl SignInRiskConfig {
    /// Refuses settings that cannot be meant (bands out of order, zero windows, NaN).
    pub fn validate(&self) -> Result<(), String> {
        let pos = |v: f64, name: &str| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!("{name} must be a positive number"))
            }
        };
        pos(self.impossible_travel_kmh, "impossibleTravelKmh")?;
        pos(self.unlikely_travel_kmh, "unlikelyTravelKmh")?;
        if !(self.travel_min_distance_km.is_finite() && self.travel_min_distance_km >= 0.0) {
            return Err("travelMinDistanceKm must be zero or more".into());
        }
        if self.unlikely_travel_kmh > self.impossible_travel_kmh {
            return Err("unlikelyTravelKmh must not exceed impossibleTravelKmh".into());
        }
        if self.velocity_window_seconds == 0 {
            return Err("velocityWindowSeconds must be positive".into());
        }
        if self.unfamiliar_min_properties == 0 || self.unfamiliar_min_properties > 3 {
            return Err("unfamiliarMinProperties must be 1, 2 or 3".into());
        }
        self.token.validate()
    }
}

/// One earlier sign-in of this user at this tenant, as the store keeps it. Its strings are
/// shared (`Arc<str>`): every sign-in compares itself with the user's last 50, which the store
/// keeps in memory, and copying their strings each time cost more than the comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct PastSignIn {
    pub at: OffsetDateTime,
    pub ip: Option<IpAddr>,
    pub country: Option<Arc<str>>,
    pub city: Option<Arc<str>>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub asn: Option<u32>,
    pub user_agent: Option<Arc<str>>,
}

impl PastSignIn {
    /// The record to store for the sign-in just evaluated (feed it back as history next time).
    pub fn from_facts(at: OffsetDateTime, user_agent: &str, facts: &IpFacts) -> Self {
        Self {
            at,
            ip: facts.ip,
            country: facts.country.as_deref().map(Arc::from),
            city: facts.city.as_deref().map(Arc::from),
            latitude: facts.latitude,
            longitude: facts.longitude,
            asn: facts.asn,
            user_agent: Some(Arc::from(user_agent)),
        }
    }
}

/// The sign-in being evaluated.
#[derive(Debug, Clone, Copy)]
pub struct SignInContext<'a> {
    pub ip: IpAddr,
    pub user_agent: &'a str,
    pub at: OffsetDateTime,
    /// This user's recent sign-ins at this tenant, any order (one indexed read in the store).
    pub history: &'a [PastSignIn],
    /// Facts about the partner's ID token, for a federated guest sign-in.
    pub token: Option<&'a TokenIssuerFacts>,
}

/// One piece of evidence: a detection of this sign-in, explained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignInDetection {
    pub risk_event_type: RiskEventType,
    pub risk_level: RiskLevel,
    pub detection_timing_type: DetectionTimingType,
    pub phase: Phase,
    pub explanation: String,
}

impl SignInDetection {
    fn realtime(
        phase: Phase,
        risk_event_type: RiskEventType,
        risk_level: RiskLevel,
        explanation: String,
    ) -> Self {
        Self {
            risk_event_type,
            risk_level,
            detection_timing_type: DetectionTimingType::Realtime,
            phase,
            explanation,
        }
    }

    /// The stored form, once the caller has an id for it.
    pub fn into_detection(self, id: String, ip: IpAddr, at: OffsetDateTime) -> Detection {
        Detection {
            id,
            risk_event_type: self.risk_event_type,
            risk_level: self.risk_level,
            detection_timing_type: self.detection_timing_type,
            source: crate::detection::SOURCE_IDENTITY_PROTECTION.to_owned(),
            ip_address: Some(ip),
            detected_date_time: at,
            state: DetectionState::Active,
            explanation: self.explanation,
        }
    }
}

/// The result: the sign-in's level (`riskLevelDuringSignIn`), the detections that made it, the
/// intel facts they were judged on, and notes on what was deliberately not raised.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignInRisk {
    pub risk_level: RiskLevel,
    pub detections: Vec<SignInDetection>,
    /// How the level was reached from the detections.
    pub aggregation: String,
    pub facts: IpFacts,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl SignInRisk {
    /// The risk of a sign-in whose client IP is not the user's (a confidential client's
    /// refresh, sent from its server): neither the network nor the user's history can be judged
    /// from it, so nothing is raised and `why` is noted.
    pub fn not_evaluated(why: &str) -> Self {
        Self {
            risk_level: RiskLevel::None,
            detections: Vec::new(),
            aggregation: format!("not evaluated: {why}"),
            facts: IpFacts::default(),
            notes: vec![why.to_owned()],
        }
    }

    /// `riskEventTypes_v2` for the sign-in log.
    pub fn risk_event_types(&self) -> Vec<RiskEventType> {
        let mut v: Vec<RiskEventType> = self.detections.iter().map(|d| d.risk_event_type).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The sign-in's `riskState`/`riskDetail` before any remediation: `atRisk` when the level is
    /// above `none`.
    pub fn risk_state(&self) -> (RiskState, RiskDetail) {
        if self.risk_level > RiskLevel::None {
            (RiskState::AtRisk, RiskDetail::None)
        } else {
            (RiskState::None, RiskDetail::None)
        }
    }
}

/// The sign-in's `riskState`/`riskDetail` after the user passed MFA that a risk-based policy
/// required: the sign-in's risk is remediated.
pub fn remediated_by_mfa() -> (RiskState, RiskDetail) {
    (
        RiskState::Remediated,
        RiskDetail::UserPassedMfaDrivenByRiskBasedPolicy,
    )
}

/// Evaluates one sign-in: intel lookup, every phase's evaluators, one aggregation.
pub fn evaluate_sign_in(
    ctx: &SignInContext<'_>,
    intel: &Intel,
    config: &SignInRiskConfig,
) -> SignInRisk {
    let facts = intel.lookup(ctx.ip);
    let mut ev = Evidence::default();
    network::evaluate(&facts, config, &mut ev);
    history::evaluate(ctx, &facts, config, &mut ev);
    if let Some(t) = ctx.token {
        token::evaluate(t, ctx.at, &config.token, &mut ev);
    }
    let (risk_level, aggregation) = aggregate(&ev.detections, config);
    SignInRisk {
        risk_level,
        detections: ev.detections,
        aggregation,
        facts,
        notes: ev.notes,
    }
}

/// Evidence collected by the evaluators.
#[derive(Debug, Default)]
pub(crate) struct Evidence {
    pub detections: Vec<SignInDetection>,
    pub notes: Vec<String>,
}

impl Evidence {
    fn raise(&mut self, phase: Phase, t: RiskEventType, level: RiskLevel, why: String) {
        if level == RiskLevel::None {
            self.notes.push(format!(
                "{t} not raised: its level is configured as none ({why})"
            ));
        } else {
            self.detections
                .push(SignInDetection::realtime(phase, t, level, why));
        }
    }
}

/// The one aggregation step: the highest detection level, escalated to `high` when two or more
/// detections are `medium` or above (and `escalateMultipleMedium` is on). Returns the level
/// and a sentence saying how it was reached.
pub fn aggregate(detections: &[SignInDetection], config: &SignInRiskConfig) -> (RiskLevel, String) {
    let max = detections
        .iter()
        .map(|d| d.risk_level)
        .max()
        .unwrap_or(RiskLevel::None);
    if detections.is_empty() {
        return (
            RiskLevel::None,
            "no detection: sign-in risk is none".to_owned(),
        );
    }
    let serious = detections
        .iter()
        .filter(|d| d.risk_level >= RiskLevel::Medium)
        .count();
    if config.escalate_multiple_medium && serious >= 2 && max < RiskLevel::High {
        return (
            RiskLevel::High,
            format!("{serious} detections at medium or above together make the sign-in high"),
        );
    }
    (
        max,
        format!(
            "highest of {} detection{}: {max}",
            detections.len(),
            if detections.len() == 1 { "" } else { "s" }
        ),
    )
}

/// Great-circle distance in km between two (latitude, longitude) points in degrees.
pub fn haversine_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    const EARTH_RADIUS_KM: f64 = 6371.0088;
    let (lat1, lat2) = (a.0.to_radians(), b.0.to_radians());
    let dlat = lat2 - lat1;
    let dlon = (b.1 - a.1).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

/// "3 h 5 min", "12 min", "40 s".
pub(crate) fn human_duration(d: Duration) -> String {
    let s = d.whole_seconds().max(0);
    if s < 60 {
        format!("{s} s")
    } else if s < 3600 {
        format!("{} min", s / 60)
    } else if s < 86_400 * 2 {
        format!("{} h {} min", s / 3600, (s % 3600) / 60)
    } else {
        format!("{} days", s / 86_400)
    }
}

pub(crate) fn place(country: Option<&str>, city: Option<&str>, ip: Option<IpAddr>) -> String {
    let mut s = match (city, country) {
        (Some(c), Some(k)) => format!("{c}, {k}"),
        (None, Some(k)) => k.to_owned(),
        (Some(c), None) => c.to_owned(),
        (None, None) => "an unknown place".to_owned(),
    };
    if let Some(ip) = ip {
        s.push_str(&format!(" ({ip})"));
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
pub(crate) mod tests {
    use super::*;

    pub fn det(t: RiskEventType, l: RiskLevel) -> SignInDetection {
        SignInDetection::realtime(Phase::Network, t, l, String::new())
    }

    #[test]
    fn aggregate_is_max_and_escalates() {
        let cfg = SignInRiskConfig::default();
        assert_eq!(aggregate(&[], &cfg).0, RiskLevel::None);
        let one = [det(RiskEventType::NewCountry, RiskLevel::Low)];
        assert_eq!(aggregate(&one, &cfg).0, RiskLevel::Low);
        let two_low = [
            det(RiskEventType::NewCountry, RiskLevel::Low),
            det(RiskEventType::UnfamiliarFeatures, RiskLevel::Low),
        ];
        assert_eq!(aggregate(&two_low, &cfg).0, RiskLevel::Low);
        let two_med = [
            det(RiskEventType::AnonymizedIpAddress, RiskLevel::Medium),
            det(RiskEventType::SuspiciousVelocity, RiskLevel::Medium),
        ];
        let (l, why) = aggregate(&two_med, &cfg);
        assert_eq!(l, RiskLevel::High);
        assert!(why.contains("2 detections"), "{why}");
        let no_escalation = SignInRiskConfig {
            escalate_multiple_medium: false,
            ..SignInRiskConfig::default()
        };
        assert_eq!(aggregate(&two_med, &no_escalation).0, RiskLevel::Medium);
    }

    proptest::proptest! {
        /// The aggregated level is the highest detection level, or `high` when escalation
        /// applies; never lower than the highest detection.
        #[test]
        fn aggregate_is_max_or_escalated(
            levels in proptest::collection::vec(
                proptest::sample::select(RiskLevel::ALL.to_vec()), 0..8),
            escalate in proptest::bool::ANY,
        ) {
            let ds: Vec<SignInDetection> =
                levels.iter().map(|l| det(RiskEventType::NewCountry, *l)).collect();
            let cfg = SignInRiskConfig { escalate_multiple_medium: escalate, ..SignInRiskConfig::default() };
            let (got, _) = aggregate(&ds, &cfg);
            let max = levels.iter().copied().max().unwrap_or(RiskLevel::None);
            let serious = levels.iter().filter(|l| **l >= RiskLevel::Medium).count();
            let want = if escalate && serious >= 2 { RiskLevel::High } else { max };
            proptest::prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn haversine_known_distances() {
        // Oslo -> Sydney is about 15,950 km; London -> Paris about 344 km.
        let d = haversine_km((59.9139, 10.7522), (-33.8688, 151.2093));
        assert!((d - 15_950.0).abs() < 60.0, "{d}");
        let d = haversine_km((51.5074, -0.1278), (48.8566, 2.3522));
        assert!((d - 344.0).abs() < 3.0, "{d}");
        assert_eq!(haversine_km((10.0, 10.0), (10.0, 10.0)), 0.0);
        // Antipodes: half the circumference.
        let d = haversine_km((0.0, 0.0), (0.0, 180.0));
        assert!((d - 20_015.0).abs() < 2.0, "{d}");
    }

    #[test]
    fn config_defaults_and_validation() {
        let cfg: SignInRiskConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(cfg, SignInRiskConfig::default());
        assert_eq!(cfg.impossible_travel_kmh, 1000.0);
        assert!(cfg.validate().is_ok());
        let cfg: SignInRiskConfig =
            toml::from_str("impossibleTravelKmh = 800.0\n[levels]\nnewCountry = \"medium\"\n")
                .unwrap();
        assert_eq!(cfg.levels.new_country, RiskLevel::Medium);
        assert_eq!(cfg.levels.anonymized_ip_address, RiskLevel::Medium);
        assert!(toml::from_str::<SignInRiskConfig>("impossibleTravelKmph = 1.0").is_err());
        let bad = SignInRiskConfig {
            unlikely_travel_kmh: 2000.0,
            ..SignInRiskConfig::default()
        };
        assert!(bad.validate().unwrap_err().contains("unlikelyTravelKmh"));
        let bad = SignInRiskConfig {
            impossible_travel_kmh: f64::NAN,
            ..SignInRiskConfig::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn human_durations() {
        assert_eq!(human_duration(Duration::seconds(40)), "40 s");
        assert_eq!(human_duration(Duration::minutes(12)), "12 min");
        assert_eq!(human_duration(Duration::minutes(185)), "3 h 5 min");
        assert_eq!(human_duration(Duration::days(9)), "9 days");
    }
}
