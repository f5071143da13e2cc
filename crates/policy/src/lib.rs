//! Conditional Access and the built-in ID Protection risk policies, pure: no I/O.
//!
//! - [`model`]: Graph's `conditionalAccessPolicy` shape, the built-in user-risk and
//!   sign-in-risk policies, parsing from JSON and TOML with errors naming file, line and field;
//! - [`validate()`]: Graph's rules (e.g. `passwordChange` must be AND-ed with `mfa`, needs
//!   `userRiskLevels` and all apps; `block` stands alone);
//! - [`PolicySet`]: compiled once, evaluated per sign-in into a [`Decision`], a
//!   [`ConditionalAccessStatus`] and one [`AppliedPolicy`] (result + why) per policy; what-if is
//!   the same evaluation on caller-supplied facts;
//! - [`codes`]: error codes and the seed's block message.

pub mod codes;
pub mod error;
pub mod evaluate;
pub mod model;
pub mod validate;

pub use error::{FieldError, PolicyError};
pub use evaluate::{
    AppliedPolicy, ConditionalAccessStatus, Controls, Decision, Evaluation, EvaluationInput,
    LocationFacts, PolicyResult, PolicySet, ProofUpBlocked, Satisfied, UserFacts, Why,
    guest_password_change, mfa_registration_allowed, what_if,
};
pub use model::{
    ApplicationsCondition, BuiltInControl, ConditionalAccessPolicy, Conditions, GrantControls,
    GrantOperator, IdentityProtectionPolicies, LocationsCondition, PolicyState,
    SIGN_IN_RISK_POLICY_ID, SignInRiskPolicy, USER_RISK_POLICY_ID, UserRiskPolicy, UsersCondition,
    parse_identity_protection_toml, parse_policies_json, parse_policies_toml, parse_policy_file,
    parse_policy_json,
};
pub use validate::validate;

#[cfg(test)]
mod tests;
