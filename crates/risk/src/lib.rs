//! ID Protection risk for tenantd, pure: no I/O, no clock, no randomness — time, data and ids
//! come in as arguments, so every rule is tested without a server.
//!
//! - [`vocab`]: Graph's risk vocabulary (`riskLevel`, `riskState`, `riskDetail`,
//!   `riskEventType`, `detectionTimingType`, `userType`).
//! - [`detection`]: one risk event.
//! - [`user_risk`]: user risk at the home — aggregation, the state machine, history.
//! - [`signin`]: real-time sign-in risk — evaluators by phase, one aggregation step.
//! - [`intel`]: anonymous/malicious IP lists, named locations, geolocation and ASN.
//! - [`lockout`]: smart lockout's counters (familiar and unfamiliar sources apart).

pub mod detection;
pub mod intel;
pub mod lockout;
pub mod signin;
pub mod user_risk;
pub mod vocab;

pub use detection::{Detection, DetectionState, SOURCE_IDENTITY_PROTECTION};
pub use intel::{Intel, IntelError, IntelSource, IntelSources, IpFacts};
pub use signin::{
    PastSignIn, Phase, SignInContext, SignInDetection, SignInRisk, SignInRiskConfig,
    TokenAnomalyConfig, TokenIssuerFacts, evaluate_sign_in,
};
pub use user_risk::{
    Actor, AgeingConfig, RiskHistoryEntry, RiskTransitionError, Transition, UserRiskClaim,
    UserRiskEvent, UserRiskStatus, aggregate_user_risk, ensure_risk_is_ours, transition,
};
pub use vocab::{
    DetectionTimingType, RiskDetail, RiskEventType, RiskLevel, RiskState, UserType, from_wire,
    to_wire,
};
