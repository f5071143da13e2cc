//! Evaluation: every policy, in order, against one sign-in's facts; one decision.
//!
//! Policies are compiled once (ids interned to integers, risk levels to bit masks) so that a
//! sign-in costs a few integer comparisons per policy and one allocation for the results.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

use risk::{RiskLevel, UserType};

use crate::codes;
use crate::error::PolicyError;
use crate::model::{
    BuiltInControl, ConditionalAccessPolicy, GrantOperator, IdentityProtectionPolicies, PolicyState,
};
use crate::validate::{ALL, ALL_TRUSTED, GUESTS, NONE, validate};

// ---------------------------------------------------------------------------------------------
// Inputs

/// Who is signing in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct UserFacts {
    pub id: String,
    #[serde(default)]
    pub user_type: UserType,
    #[serde(default)]
    pub groups: Vec<String>,
}

/// Where from: the named locations the IP is in (from the risk crate's `IpFacts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct LocationFacts {
    #[serde(default)]
    pub named_location_ids: Vec<String>,
    #[serde(default)]
    pub trusted: bool,
}

impl From<&risk::IpFacts> for LocationFacts {
    /// The named locations the risk crate's intel lookup matched.
    fn from(f: &risk::IpFacts) -> Self {
        LocationFacts {
            named_location_ids: f.named_locations.clone(),
            trusted: f.trusted_location,
        }
    }
}

/// What the user has already done in this sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Satisfied {
    /// MFA done: at this tenant (TOTP), or for a guest the home's `amr` shows MFA *and* the
    /// partner entry trusts the partner's MFA. The server decides; the policy only reads it.
    #[serde(default)]
    pub mfa: bool,
    /// A secure password change done in this sign-in (members only).
    #[serde(default)]
    pub password_change: bool,
}

/// Everything a policy evaluation reads. Deserializable, so the what-if endpoint can take it
/// straight from a request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct EvaluationInput {
    pub user: UserFacts,
    pub app_id: String,
    #[serde(default)]
    pub location: LocationFacts,
    /// For a guest: the home's `user_risk` claim level when the partner's risk is trusted,
    /// otherwise `none`. For a member: this tenant's own user risk.
    #[serde(default)]
    pub user_risk_level: RiskLevel,
    /// This tenant's real-time sign-in risk.
    #[serde(default)]
    pub sign_in_risk_level: RiskLevel,
    #[serde(default)]
    pub satisfied: Satisfied,
}

// ---------------------------------------------------------------------------------------------
// Outputs

/// Per-policy `result` (Graph `appliedConditionalAccessPolicy.result`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PolicyResult {
    Success,
    Failure,
    NotApplied,
    NotEnabled,
    ReportOnlySuccess,
    ReportOnlyFailure,
    ReportOnlyNotApplied,
}

/// Overall `conditionalAccessStatus` of a sign-in (enforced policies only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ConditionalAccessStatus {
    Success,
    Failure,
    NotApplied,
}

/// A small set of built-in controls (one byte), serialized as their names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Controls(u8);

impl Controls {
    const ORDER: [BuiltInControl; 3] = [
        BuiltInControl::Block,
        BuiltInControl::Mfa,
        BuiltInControl::PasswordChange,
    ];

    fn bit(c: BuiltInControl) -> u8 {
        match c {
            BuiltInControl::Block => 1,
            BuiltInControl::Mfa => 2,
            BuiltInControl::PasswordChange => 4,
        }
    }

    pub fn from_slice(cs: &[BuiltInControl]) -> Self {
        Controls(cs.iter().fold(0, |a, c| a | Self::bit(*c)))
    }

    pub fn contains(self, c: BuiltInControl) -> bool {
        self.0 & Self::bit(c) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    fn with(self, c: BuiltInControl) -> Self {
        Controls(self.0 | Self::bit(c))
    }

    pub fn iter(self) -> impl Iterator<Item = BuiltInControl> {
        Self::ORDER.into_iter().filter(move |c| self.contains(*c))
    }
}

impl Serialize for Controls {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl fmt::Display for Controls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(BuiltInControl::as_str).collect();
        f.write_str(&names.join(", "))
    }
}

/// Why a policy got its result. Cheap to produce; the sentence is written only when shown or
/// serialized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why<'a> {
    Disabled,
    UserNotIncluded,
    UserExcluded,
    GuestsExcluded,
    GroupExcluded(Cow<'a, str>),
    AppNotIncluded,
    AppExcluded,
    UserRiskNotInLevels(RiskLevel),
    SignInRiskNotInLevels(RiskLevel),
    LocationNotIncluded,
    LocationExcluded,
    /// The policy grants `block`.
    Blocked,
    /// `passwordChange` required for a guest: cannot be satisfied at the resource.
    GuestPasswordChange,
    /// All required controls satisfied.
    Satisfied(Controls),
    /// These controls are still required in this sign-in.
    Pending(Controls),
}

impl fmt::Display for Why<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::Disabled => f.write_str("the policy is disabled"),
            Why::UserNotIncluded => f.write_str("the user is not among the policy's users"),
            Why::UserExcluded => f.write_str("the user is excluded (excludeUsers)"),
            Why::GuestsExcluded => f.write_str("guests are excluded (excludeUsers)"),
            Why::GroupExcluded(g) => write!(f, "the user is in excluded group {g}"),
            Why::AppNotIncluded => f.write_str("the app is not among the policy's applications"),
            Why::AppExcluded => f.write_str("the app is excluded (excludeApplications)"),
            Why::UserRiskNotInLevels(l) => {
                write!(f, "user risk {l} is not one of the policy's userRiskLevels")
            }
            Why::SignInRiskNotInLevels(l) => {
                write!(
                    f,
                    "sign-in risk {l} is not one of the policy's signInRiskLevels"
                )
            }
            Why::LocationNotIncluded => {
                f.write_str("the sign-in location is not among the policy's locations")
            }
            Why::LocationExcluded => f.write_str("the sign-in location is excluded"),
            Why::Blocked => f.write_str("the policy applies and its grant control is block"),
            Why::GuestPasswordChange => f.write_str(
                "the policy requires a password change, which a guest cannot do here: their \
                 password lives at their home organization, so the sign-in is blocked",
            ),
            Why::Satisfied(c) => write!(f, "the policy applies and {c} is satisfied"),
            Why::Pending(c) => write!(f, "the policy applies and requires {c}"),
        }
    }
}

impl Serialize for Why<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One policy's verdict (Graph `appliedConditionalAccessPolicy` plus `why`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedPolicy<'a> {
    pub id: Cow<'a, str>,
    pub display_name: Cow<'a, str>,
    /// The policy's grant controls when it applied; empty otherwise.
    pub enforced_grant_controls: Controls,
    pub result: PolicyResult,
    pub why: Why<'a>,
}

/// What the sign-in must do next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(
    tag = "decision",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Decision {
    Allow,
    /// Do MFA (at this tenant) and evaluate again with `satisfied.mfa = true`.
    RequireMfa,
    /// Members only: do a secure password change (after MFA when `mfaFirst`), then evaluate
    /// again.
    RequirePasswordChange {
        mfa_first: bool,
    },
    /// Refuse. `reason` is for logs (which policy, why); the page and the OAuth
    /// `error_description` show [`codes::BLOCKED_MESSAGE`].
    Block {
        reason: String,
        error_code: u32,
    },
}

impl Decision {
    /// The sign-in log's `status.errorCode` for this decision (`None` for allow).
    pub fn error_code(&self) -> Option<u32> {
        match self {
            Decision::Allow => None,
            Decision::RequireMfa => Some(codes::STRONG_AUTH_REQUIRED),
            Decision::RequirePasswordChange { .. } => Some(codes::PASSWORD_CHANGE_REQUIRED),
            Decision::Block { error_code, .. } => Some(*error_code),
        }
    }
}

/// The full answer for one sign-in (or one what-if).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Evaluation<'a> {
    pub decision: Decision,
    pub conditional_access_status: ConditionalAccessStatus,
    pub applied_conditional_access_policies: Vec<AppliedPolicy<'a>>,
}

impl Why<'_> {
    /// The same reason, no longer borrowing from the policy set.
    pub fn into_owned(self) -> Why<'static> {
        match self {
            Why::Disabled => Why::Disabled,
            Why::UserNotIncluded => Why::UserNotIncluded,
            Why::UserExcluded => Why::UserExcluded,
            Why::GuestsExcluded => Why::GuestsExcluded,
            Why::GroupExcluded(g) => Why::GroupExcluded(Cow::Owned(g.into_owned())),
            Why::AppNotIncluded => Why::AppNotIncluded,
            Why::AppExcluded => Why::AppExcluded,
            Why::UserRiskNotInLevels(l) => Why::UserRiskNotInLevels(l),
            Why::SignInRiskNotInLevels(l) => Why::SignInRiskNotInLevels(l),
            Why::LocationNotIncluded => Why::LocationNotIncluded,
            Why::LocationExcluded => Why::LocationExcluded,
            Why::Blocked => Why::Blocked,
            Why::GuestPasswordChange => Why::GuestPasswordChange,
            Why::Satisfied(c) => Why::Satisfied(c),
            Why::Pending(c) => Why::Pending(c),
        }
    }
}

impl Evaluation<'_> {
    /// The same evaluation, no longer borrowing from the policy set (to keep it after the set
    /// is replaced, or to send it elsewhere).
    pub fn into_owned(self) -> Evaluation<'static> {
        Evaluation {
            decision: self.decision,
            conditional_access_status: self.conditional_access_status,
            applied_conditional_access_policies: self
                .applied_conditional_access_policies
                .into_iter()
                .map(|a| AppliedPolicy {
                    id: Cow::Owned(a.id.into_owned()),
                    display_name: Cow::Owned(a.display_name.into_owned()),
                    enforced_grant_controls: a.enforced_grant_controls,
                    result: a.result,
                    why: a.why.into_owned(),
                })
                .collect(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Compiled policies

type Sym = u32;

#[derive(Debug, Default)]
struct Target {
    all: bool,
    guests: bool,
    ids: Vec<Sym>,
}

#[derive(Debug)]
struct LocationRule {
    include_all: bool,
    include_trusted: bool,
    include: Vec<Sym>,
    exclude_trusted: bool,
    exclude: Vec<Sym>,
}

#[derive(Debug)]
struct Compiled {
    id: Box<str>,
    display_name: Box<str>,
    state: PolicyState,
    include_users: Target,
    exclude_users: Target,
    include_groups: Vec<Sym>,
    exclude_groups: Vec<(Sym, Box<str>)>,
    apps_all: bool,
    include_apps: Vec<Sym>,
    exclude_apps: Vec<Sym>,
    /// 0 = no condition.
    user_risk_mask: u8,
    sign_in_risk_mask: u8,
    locations: Option<LocationRule>,
    operator: GrantOperator,
    controls: Controls,
}

/// A validated, compiled set of policies (Conditional Access + built-in), in evaluation order.
#[derive(Debug, Default)]
pub struct PolicySet {
    policies: Vec<Compiled>,
    symbols: HashMap<Box<str>, Sym>,
    source: Vec<ConditionalAccessPolicy>,
}

struct Interner<'a>(&'a mut HashMap<Box<str>, Sym>);

impl Interner<'_> {
    fn sym(&mut self, s: &str) -> Sym {
        let next = Sym::try_from(self.0.len()).unwrap_or(Sym::MAX);
        *self.0.entry(s.into()).or_insert(next)
    }
    fn syms(&mut self, list: &[String], skip: &[&str]) -> Vec<Sym> {
        let mut v: Vec<Sym> = list
            .iter()
            .filter(|s| !skip.contains(&s.as_str()))
            .map(|s| self.sym(s))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

fn mask(levels: &[RiskLevel]) -> u8 {
    levels.iter().fold(0, |a, l| a | l.bit())
}

impl PolicySet {
    /// Validates and compiles `policies` followed by the built-in ID Protection policies.
    /// Every invalid policy's errors are returned together; duplicate ids are refused.
    pub fn compile(
        policies: Vec<ConditionalAccessPolicy>,
        builtin: &IdentityProtectionPolicies,
    ) -> Result<PolicySet, PolicyError> {
        let mut all = policies;
        all.extend(builtin.to_conditional_access());
        let mut errors = Vec::new();
        let mut ids = HashSet::new();
        for p in &all {
            if let Err(PolicyError::Invalid(v)) = validate(p) {
                errors.extend(v);
            }
            if !p.id.is_empty() && !ids.insert(p.id.as_str()) {
                errors.push(crate::error::FieldError {
                    policy: p.id.clone(),
                    field: "id".into(),
                    message: "two policies have this id".into(),
                });
            }
        }
        if !errors.is_empty() {
            return Err(PolicyError::Invalid(errors));
        }
        let mut symbols = HashMap::new();
        let mut compiled = Vec::with_capacity(all.len());
        for p in &all {
            let mut i = Interner(&mut symbols);
            let c = &p.conditions;
            let u = &c.users;
            let a = &c.applications;
            compiled.push(Compiled {
                id: p.id.as_str().into(),
                display_name: p.display_name.as_str().into(),
                state: p.state,
                include_users: Target {
                    all: u.include_users.iter().any(|s| s == ALL),
                    guests: u.include_users.iter().any(|s| s == GUESTS),
                    ids: i.syms(&u.include_users, &[ALL, GUESTS, NONE]),
                },
                exclude_users: Target {
                    all: false,
                    guests: u.exclude_users.iter().any(|s| s == GUESTS),
                    ids: i.syms(&u.exclude_users, &[GUESTS]),
                },
                include_groups: i.syms(&u.include_groups, &[]),
                exclude_groups: u
                    .exclude_groups
                    .iter()
                    .map(|g| (i.sym(g), Box::from(g.as_str())))
                    .collect(),
                apps_all: a.include_applications.iter().any(|s| s == ALL),
                include_apps: i.syms(&a.include_applications, &[ALL, NONE]),
                exclude_apps: i.syms(&a.exclude_applications, &[]),
                user_risk_mask: mask(&c.user_risk_levels),
                sign_in_risk_mask: mask(&c.sign_in_risk_levels),
                locations: c.locations.as_ref().map(|l| LocationRule {
                    include_all: l.include_locations.iter().any(|s| s == ALL),
                    include_trusted: l.include_locations.iter().any(|s| s == ALL_TRUSTED),
                    include: i.syms(&l.include_locations, &[ALL, ALL_TRUSTED]),
                    exclude_trusted: l.exclude_locations.iter().any(|s| s == ALL_TRUSTED),
                    exclude: i.syms(&l.exclude_locations, &[ALL_TRUSTED]),
                }),
                operator: p
                    .grant_controls
                    .as_ref()
                    .map(|g| g.operator)
                    .unwrap_or_default(),
                controls: p
                    .grant_controls
                    .as_ref()
                    .map(|g| Controls::from_slice(&g.built_in_controls))
                    .unwrap_or_default(),
            });
        }
        Ok(PolicySet {
            policies: compiled,
            symbols,
            source: all,
        })
    }

    /// The policies as given (Conditional Access first, then the built-in ones).
    pub fn policies(&self) -> &[ConditionalAccessPolicy] {
        &self.source
    }

    /// Whether any policy includes or excludes a group: only then does a sign-in need the
    /// user's groups read.
    pub fn names_groups(&self) -> bool {
        self.source.iter().any(|p| {
            let u = &p.conditions.users;
            !u.include_groups.is_empty() || !u.exclude_groups.is_empty()
        })
    }

    pub fn len(&self) -> usize {
        self.policies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// Evaluates every policy for one sign-in and decides.
    ///
    /// - disabled policies are `notEnabled`;
    /// - a policy applies when the user, app, risk levels and location all match it;
    /// - report-only policies are evaluated and reported (`reportOnly*`) but never enforced;
    /// - `block` wins over everything; then a member's pending `passwordChange`; then `mfa`;
    /// - `passwordChange` for a guest blocks (see [`guest_password_change`]);
    /// - a block of a guest by a policy with a user-risk condition is error 53011 (the risk is
    ///   held by the home tenant), any other block 53003.
    pub fn evaluate(&self, input: &EvaluationInput) -> Evaluation<'_> {
        let facts = Interned::new(&self.symbols, input);
        let mut applied = Vec::with_capacity(self.policies.len());
        // Blocking policies (indices) and the error code; the reason is written once at the end.
        let mut blockers: Vec<usize> = Vec::new();
        let mut block_code = 0u32;
        let mut pending = Controls::default();
        let mut any_success = false;
        let mut any_failure = false;

        for (index, p) in self.policies.iter().enumerate() {
            let report_only = p.state == PolicyState::EnabledForReportingButNotEnforced;
            let (result, why, enforced) = if p.state == PolicyState::Disabled {
                (PolicyResult::NotEnabled, Why::Disabled, Controls::default())
            } else if let Err(why) = p.applies(input, &facts) {
                let r = if report_only {
                    PolicyResult::ReportOnlyNotApplied
                } else {
                    PolicyResult::NotApplied
                };
                (r, why, Controls::default())
            } else {
                let outcome = p.grant(input);
                let ok = matches!(outcome, Grant::Satisfied);
                if !report_only {
                    match &outcome {
                        Grant::Satisfied => any_success = true,
                        Grant::Pending(c) => {
                            any_failure = true;
                            pending = Controls(pending.0 | c.0);
                        }
                        Grant::Block(_) => {
                            any_failure = true;
                            let code = if input.user.user_type == UserType::Guest
                                && p.user_risk_mask != 0
                            {
                                codes::BLOCKED_DUE_TO_HOME_RISK
                            } else {
                                codes::BLOCKED_BY_CONDITIONAL_ACCESS
                            };
                            // The home-risk code explains more to a guest: it wins.
                            if block_code != codes::BLOCKED_DUE_TO_HOME_RISK {
                                block_code = code;
                            }
                            blockers.push(index);
                        }
                    }
                }
                let r = match (report_only, ok) {
                    (false, true) => PolicyResult::Success,
                    (false, false) => PolicyResult::Failure,
                    (true, true) => PolicyResult::ReportOnlySuccess,
                    (true, false) => PolicyResult::ReportOnlyFailure,
                };
                let why = match outcome {
                    Grant::Satisfied => Why::Satisfied(p.controls),
                    Grant::Pending(c) => Why::Pending(c),
                    Grant::Block(w) => w,
                };
                (r, why, p.controls)
            };
            applied.push(AppliedPolicy {
                id: Cow::Borrowed(&p.id),
                display_name: Cow::Borrowed(&p.display_name),
                enforced_grant_controls: enforced,
                result,
                why,
            });
        }

        let decision = if !blockers.is_empty() {
            let mut reason = String::from("blocked by ");
            for (n, i) in blockers.iter().enumerate() {
                if let Some(p) = self.policies.get(*i) {
                    if n > 0 {
                        reason.push_str("; ");
                    }
                    reason.push_str("policy `");
                    reason.push_str(&p.display_name);
                    reason.push_str("` (");
                    reason.push_str(&p.id);
                    reason.push(')');
                }
            }
            Decision::Block {
                reason,
                error_code: block_code,
            }
        } else if pending.contains(BuiltInControl::PasswordChange) {
            Decision::RequirePasswordChange {
                mfa_first: pending.contains(BuiltInControl::Mfa),
            }
        } else if pending.contains(BuiltInControl::Mfa) {
            Decision::RequireMfa
        } else {
            Decision::Allow
        };
        let conditional_access_status = if any_failure {
            ConditionalAccessStatus::Failure
        } else if any_success {
            ConditionalAccessStatus::Success
        } else {
            ConditionalAccessStatus::NotApplied
        };
        Evaluation {
            decision,
            conditional_access_status,
            applied_conditional_access_policies: applied,
        }
    }

    /// What-if: "what would happen for this user, app, location and risk?" It is exactly
    /// [`PolicySet::evaluate`] on caller-supplied facts; nothing is signed in, stored or changed.
    pub fn what_if(&self, input: &EvaluationInput) -> Evaluation<'_> {
        self.evaluate(input)
    }
}

/// What-if against a policy set that is not (yet) the tenant's, e.g. a draft policy next to the
/// current ones: compiles and evaluates, nothing else.
pub fn what_if(
    policies: Vec<ConditionalAccessPolicy>,
    builtin: &IdentityProtectionPolicies,
    input: &EvaluationInput,
) -> Result<Evaluation<'static>, PolicyError> {
    Ok(PolicySet::compile(policies, builtin)?
        .evaluate(input)
        .into_owned())
}

/// The input's ids as the set's symbols (unknown ids are `None`: no policy names them).
struct Interned {
    user: Option<Sym>,
    groups: Vec<Sym>,
    app: Option<Sym>,
    locations: Vec<Sym>,
}

impl Interned {
    fn new(symbols: &HashMap<Box<str>, Sym>, input: &EvaluationInput) -> Self {
        let look = |s: &str| symbols.get(s).copied();
        Interned {
            user: look(&input.user.id),
            groups: input.user.groups.iter().filter_map(|g| look(g)).collect(),
            app: look(&input.app_id),
            locations: input
                .location
                .named_location_ids
                .iter()
                .filter_map(|l| look(l))
                .collect(),
        }
    }
}

fn has(list: &[Sym], s: Option<Sym>) -> bool {
    s.is_some_and(|s| list.binary_search(&s).is_ok())
}

fn any_in(list: &[Sym], of: &[Sym]) -> bool {
    of.iter().any(|s| list.binary_search(s).is_ok())
}

enum Grant {
    Satisfied,
    Pending(Controls),
    Block(Why<'static>),
}

impl Compiled {
    /// Whether every condition matches; the first that does not is the reason.
    fn applies(&self, input: &EvaluationInput, f: &Interned) -> Result<(), Why<'_>> {
        let guest = input.user.user_type == UserType::Guest;
        // Users: exclusions first (they always win), then inclusion.
        if has(&self.exclude_users.ids, f.user) {
            return Err(Why::UserExcluded);
        }
        if guest && self.exclude_users.guests {
            return Err(Why::GuestsExcluded);
        }
        if let Some((_, name)) = self
            .exclude_groups
            .iter()
            .find(|(s, _)| f.groups.contains(s))
        {
            return Err(Why::GroupExcluded(Cow::Borrowed(name)));
        }
        let included = self.include_users.all
            || (guest && self.include_users.guests)
            || has(&self.include_users.ids, f.user)
            || any_in(&self.include_groups, &f.groups);
        if !included {
            return Err(Why::UserNotIncluded);
        }
        // Applications.
        if has(&self.exclude_apps, f.app) {
            return Err(Why::AppExcluded);
        }
        if !(self.apps_all || has(&self.include_apps, f.app)) {
            return Err(Why::AppNotIncluded);
        }
        // Risk.
        if self.user_risk_mask != 0 && self.user_risk_mask & input.user_risk_level.bit() == 0 {
            return Err(Why::UserRiskNotInLevels(input.user_risk_level));
        }
        if self.sign_in_risk_mask != 0
            && self.sign_in_risk_mask & input.sign_in_risk_level.bit() == 0
        {
            return Err(Why::SignInRiskNotInLevels(input.sign_in_risk_level));
        }
        // Locations.
        if let Some(l) = &self.locations {
            let trusted = input.location.trusted;
            if (l.exclude_trusted && trusted) || any_in(&l.exclude, &f.locations) {
                return Err(Why::LocationExcluded);
            }
            let inside =
                l.include_all || (l.include_trusted && trusted) || any_in(&l.include, &f.locations);
            if !inside {
                return Err(Why::LocationNotIncluded);
            }
        }
        Ok(())
    }

    /// The grant controls against what the user has satisfied.
    fn grant(&self, input: &EvaluationInput) -> Grant {
        let c = self.controls;
        if c.contains(BuiltInControl::Block) {
            return Grant::Block(Why::Blocked);
        }
        let guest = input.user.user_type == UserType::Guest;
        let mut satisfied = Controls::default();
        let mut pending = Controls::default();
        let mut impossible = false;
        for ctl in c.iter() {
            let done = match ctl {
                BuiltInControl::Mfa => input.satisfied.mfa,
                BuiltInControl::PasswordChange => {
                    if guest_password_change(input.user.user_type).is_err() {
                        impossible = true;
                        false
                    } else {
                        input.satisfied.password_change
                    }
                }
                BuiltInControl::Block => false,
            };
            if done {
                satisfied = satisfied.with(ctl);
            } else if !(guest && ctl == BuiltInControl::PasswordChange) {
                pending = pending.with(ctl);
            }
        }
        match self.operator {
            GrantOperator::And => {
                if impossible {
                    Grant::Block(Why::GuestPasswordChange)
                } else if pending.is_empty() {
                    Grant::Satisfied
                } else {
                    Grant::Pending(pending)
                }
            }
            GrantOperator::Or => {
                if !satisfied.is_empty() {
                    Grant::Satisfied
                } else if !pending.is_empty() {
                    // The user picks one; MFA is the one every user can do.
                    if pending.contains(BuiltInControl::Mfa) {
                        Grant::Pending(Controls::default().with(BuiltInControl::Mfa))
                    } else {
                        Grant::Pending(pending)
                    }
                } else {
                    Grant::Block(Why::GuestPasswordChange)
                }
            }
        }
    }
}

/// The seed's limitation, in one place: "If a guest user triggers the ID Protection user risk
/// policy to force password reset, **they will be blocked**. This block is due to the inability
/// to reset passwords in the resource directory."
///
/// `passwordChange` can be satisfied by members only; for a guest it is an error, and the
/// policy that required it blocks the sign-in (53011 when the policy has a user-risk condition,
/// which validation makes certain for `passwordChange`).
pub fn guest_password_change(user_type: UserType) -> Result<(), u32> {
    match user_type {
        UserType::Member => Ok(()),
        UserType::Guest => Err(codes::BLOCKED_DUE_TO_HOME_RISK),
    }
}

/// A refusal to register an MFA method during a risky sign-in, so an attacker holding the
/// password cannot enrol their own factor (Entra error 53004, `ProofUpBlockedDueToRisk`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProofUpBlocked {
    pub error_code: u32,
    pub user_risk_level: RiskLevel,
    pub sign_in_risk_level: RiskLevel,
}

/// Whether the user may register an MFA method in this sign-in: refused when the user risk or
/// the sign-in risk is at or above `threshold` (tenantd uses `low`: any risk at all).
pub fn mfa_registration_allowed(
    user_risk_level: RiskLevel,
    sign_in_risk_level: RiskLevel,
    threshold: RiskLevel,
) -> Result<(), ProofUpBlocked> {
    // `hidden` is a risk whose level is not disclosed: treat it as risky.
    let risky = |l: RiskLevel| l == RiskLevel::Hidden || (l != RiskLevel::None && l >= threshold);
    if risky(user_risk_level) || risky(sign_in_risk_level) {
        Err(ProofUpBlocked {
            error_code: codes::PROOF_UP_BLOCKED_DUE_TO_RISK,
            user_risk_level,
            sign_in_risk_level,
        })
    } else {
        Ok(())
    }
}
