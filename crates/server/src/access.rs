//! The sign-in gate (DESIGN.md §5, §6). Every sign-in, once the user is known — a password just
//! verified, a partner's ID token just accepted, a session reused for single sign-on — is judged
//! here before any session, code or token exists for it:
//!
//! 1. **user risk**: a member's own (this tenant is their home); a guest's is the home's
//!    `user_risk` claim when the partner entry trusts it — the seed: "The user risk for B2B
//!    collaboration users is evaluated at their home directory";
//! 2. **sign-in risk**, in real time, from this tenant's intel and the user's recent sign-ins
//!    here — the seed: "evaluated at the resource directory when they try to access the
//!    resource";
//! 3. **Conditional Access** and the built-in risk policies, evaluated on both;
//! 4. the **decision**: allow (session, then code), block (the seed's sentence, nothing
//!    created), MFA at this tenant (TOTP), or a secure password change (members).
//!
//! Between steps the sign-in waits as a pending interaction carrying a [`Gate`]; MFA and the
//! password-change page come back through [`resume`] (`GET /login/continue`), which judges again
//! with what has been satisfied since.

use crate::authorize::{self, Gate, Pending};
use crate::federated::GuestSession;
use crate::pages;
use crate::refusal::{self, Refusal};
use crate::secrets::{ct_eq, token_hash};
use crate::session::{self, Current};
use crate::signin_log::{self, Entry, Outcome, RiskLog};
use crate::state::App;
use crate::state::AppState;
use crate::web::{Ctx, PageError, csrf_token, html};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use policy::{Decision, EvaluationInput, PolicySet, Satisfied, UserFacts};
use protocol::authorize::AuthorizationRequest;
use protocol::{ErrorCode, OAuthError};
use risk::{
    PastSignIn, RiskDetail, RiskEventType, RiskLevel, RiskState, SignInContext, SignInRisk,
    UserRiskClaim, UserType,
};
use serde::Deserialize;
use signin::codes;
use store::{Grant, StoreError, User, UserStatus};
use time::OffsetDateTime;

/// How many of the user's recent successful sign-ins here sign-in risk compares with.
const HISTORY: i64 = 50;

/// One sign-in being judged: the held request, the gate, the user and what was found.
struct Case {
    pending: Pending,
    gate: Gate,
    user: User,
    a: Assessment,
}

/// What the gate found for one sign-in.
struct Assessment {
    user_risk: RiskLevel,
    sign_in: SignInRisk,
    evaluation: policy::Evaluation<'static>,
    verdict: Verdict,
}

/// The gate's decision about one sign-in, once the policies have been read against what was
/// satisfied so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Let the sign-in (or refresh) through.
    Allow,
    /// Refuse it: the Entra-style code people can look up, and the policies' reason.
    Block {
        /// 53011, 53003 or 50053.
        code: u32,
        /// Why, in the policies' words (for the logs).
        reason: String,
    },
    /// The user must do something first, interactively.
    Step(Step),
}

/// What a held sign-in waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// MFA at this tenant.
    Mfa,
    /// A secure password change (members; MFA done first).
    PasswordChange,
}

/// Where a sign-in comes from, as far as sign-in risk may judge it.
#[derive(Debug, Clone, Copy)]
pub enum Origin<'a> {
    /// The user's own device (a browser, or a public client's refresh): its IP and user agent
    /// are the user's and are judged (IP lists, travel, familiarity, velocity).
    Device {
        /// Client IP.
        ip: std::net::IpAddr,
        /// User agent.
        user_agent: &'a str,
    },
    /// A confidential client's back channel: the IP is its server's, not the user's, so it
    /// never feeds sign-in risk (a web app hosted abroad must not make its users look like
    /// impossible travellers).
    BackChannel,
}

impl<'a> Origin<'a> {
    fn of(ctx: &'a Ctx) -> Self {
        Origin::Device {
            ip: ctx.ip,
            user_agent: ctx.user_agent.as_deref().unwrap_or(""),
        }
    }
}

/// A new sign-in whose user (active) was just authenticated (password, or a partner's ID token).
/// `gate` says how; `interaction` is the pending sign-in's id.
pub async fn judge(
    state: AppState,
    ctx: Ctx,
    jar: CookieJar,
    interaction: &str,
    pending: Pending,
    gate: Gate,
    user: User,
) -> Response {
    let app_id = pending.request.client_id.clone();
    let assessment = match assess(&state, Origin::of(&ctx), &user, &gate, &app_id).await {
        Ok(a) => a,
        Err(e) => return PageError::from(e).render(&state, &ctx),
    };
    let case = Case {
        pending,
        gate,
        user,
        a: assessment,
    };
    decide(state, ctx, jar, Some(interaction), case, None).await
}

/// Single sign-on: a live session meets a new authorization request. Policies are evaluated
/// again (the app, the IP and the risk may all differ from the sign-in that made the session).
pub async fn judge_single_sign_on(
    state: AppState,
    ctx: Ctx,
    jar: CookieJar,
    request: AuthorizationRequest,
    correlation_id: String,
    current: Current,
) -> Response {
    let guest = match &current.session.federation_json {
        Some(json) => match serde_json::from_str(json) {
            Ok(g) => Some(g),
            Err(e) => {
                return PageError::internal(format!("session federation facts unreadable: {e}"))
                    .render(&state, &ctx);
            }
        },
        None => None,
    };
    let gate = Gate {
        user_id: current.user.id.clone(),
        amr: current.session.amr.clone(),
        guest,
        ..Gate::default()
    };
    let assessment = match assess(
        &state,
        Origin::of(&ctx),
        &current.user,
        &gate,
        &request.client_id,
    )
    .await
    {
        Ok(a) => a,
        Err(e) => return PageError::from(e).render(&state, &ctx),
    };
    let case = Case {
        pending: Pending::new(request, correlation_id),
        gate,
        user: current.user.clone(),
        a: assessment,
    };
    decide(state, ctx, jar, None, case, Some(current)).await
}

/// `?interaction=`
#[derive(Debug, Deserialize)]
pub struct ContinueQuery {
    #[serde(default)]
    interaction: String,
}

/// `GET /login/continue`: back from a step (MFA, password change); judge again.
pub async fn resume(
    State(state): State<AppState>,
    ctx: Ctx,
    jar: CookieJar,
    Query(q): Query<ContinueQuery>,
) -> Response {
    let pending = match authorize::load_pending(&state, &q.interaction).await {
        Ok(p) => p,
        Err(e) => return e.render(&state, &ctx),
    };
    let Some(gate) = pending.gate.clone() else {
        return PageError::expired_request().render(&state, &ctx);
    };
    if !same_browser(&state, &jar, &gate) {
        return PageError::expired_request().render(&state, &ctx);
    }
    // Between the steps the user may have been disabled: look them up again.
    let user = match active_user(&state, &gate.user_id).await {
        Ok(u) => u,
        Err(e) => return e.render(&state, &ctx),
    };
    judge(state, ctx, jar, &q.interaction, pending, gate, user).await
}

/// Whether this browser is the one the gate held the sign-in for (its CSRF cookie).
pub(crate) fn same_browser(state: &AppState, jar: &CookieJar, gate: &Gate) -> bool {
    jar.get(&state.cookies.csrf).is_some_and(|c| {
        !gate.binding.is_empty() && ct_eq(token_hash(c.value()).as_bytes(), gate.binding.as_bytes())
    })
}

async fn active_user(state: &AppState, id: &str) -> Result<User, PageError> {
    match state.store.user_by_id(id).await? {
        Some(u) if u.status == UserStatus::Active => Ok(u),
        _ => Err(PageError::expired_request()),
    }
}

/// User risk, sign-in risk and the policies' verdict. Reads: the member's risk row and the
/// user's recent sign-ins; everything else is pure.
async fn assess(
    state: &AppState,
    origin: Origin<'_>,
    user: &User,
    gate: &Gate,
    app_id: &str,
) -> Result<Assessment, StoreError> {
    let user_risk = match &gate.guest {
        Some(g) => UserRiskClaim::effective_level(g.user_risk.as_ref(), g.user_risk_trusted),
        // The change this sign-in just made remediated the risk; the policies (and the log)
        // judge the sign-in on the risk that required it, now satisfied.
        None if gate.password_changed => gate.user_risk_level,
        None => member_risk(state, &user.id).await?,
    };
    let sign_in = match origin {
        Origin::Device { ip, user_agent } => {
            sign_in_risk(
                state,
                ip,
                user_agent,
                &user.id,
                gate.guest.as_ref().and_then(|g| g.token.as_ref()),
            )
            .await?
        }
        Origin::BackChannel => SignInRisk::not_evaluated(
            "a confidential client's refresh comes from its server, not the user's device",
        ),
    };
    let mfa_satisfied = gate.mfa_done
        || match &gate.guest {
            // A guest's own MFA at the home counts only where the partner entry says so.
            Some(g) => {
                g.mfa_here
                    || (state
                        .partner(&g.partner)
                        .is_some_and(|p| p.config.trust_mfa)
                        && g.home_amr.iter().any(|a| a == "mfa"))
            }
            None => gate.amr.iter().any(|a| a == "mfa"),
        };
    let input = evaluation_input(
        user,
        app_id,
        &sign_in.facts,
        user_risk,
        sign_in.risk_level,
        Satisfied {
            mfa: mfa_satisfied,
            password_change: gate.password_changed,
        },
    );
    // A partner tenant signing one of our members in as its guest enforces its own policies
    // (as Entra: the resource tenant's Conditional Access applies to B2B access); here the home
    // only authenticates, and its own risk travels in the `user_risk` claim.
    let partner_app =
        gate.guest.is_none() && state.app(app_id).is_some_and(|a| a.config.partner_tenant);
    let evaluation = if partner_app {
        PolicySet::default().evaluate(&input).into_owned()
    } else {
        state
            .protection
            .policies()
            .set
            .evaluate(&input)
            .into_owned()
    };
    let verdict = verdict(&evaluation.decision, mfa_satisfied, &sign_in);
    Ok(Assessment {
        user_risk,
        sign_in,
        evaluation,
        verdict,
    })
}

/// The policies' decision, read against what this sign-in has satisfied.
fn verdict(decision: &Decision, mfa_satisfied: bool, sign_in: &SignInRisk) -> Verdict {
    match decision {
        Decision::Allow => Verdict::Allow,
        Decision::Block { reason, error_code } => {
            let malicious_ip = sign_in
                .detections
                .iter()
                .any(|d| d.risk_event_type == RiskEventType::MaliciousIpAddress);
            let code = if *error_code == codes::BLOCKED_BY_CONDITIONAL_ACCESS && malicious_ip {
                codes::LOCKED_OR_MALICIOUS_IP
            } else {
                *error_code
            };
            Verdict::Block {
                code,
                reason: reason.clone(),
            }
        }
        Decision::RequireMfa | Decision::RequirePasswordChange { mfa_first: true }
            if !mfa_satisfied =>
        {
            Verdict::Step(Step::Mfa)
        }
        // MFA is satisfied yet still required: only a policy bug gets here; refuse rather than
        // let it through.
        Decision::RequireMfa => Verdict::Block {
            code: codes::BLOCKED_BY_CONDITIONAL_ACCESS,
            reason: "MFA satisfied but still required".to_owned(),
        },
        Decision::RequirePasswordChange { .. } => Verdict::Step(Step::PasswordChange),
    }
}

/// What the policies read about one sign-in (the gate's, or a what-if's).
pub(crate) fn evaluation_input(
    user: &User,
    app_id: &str,
    facts: &risk::IpFacts,
    user_risk: RiskLevel,
    sign_in_risk: RiskLevel,
    satisfied: Satisfied,
) -> EvaluationInput {
    EvaluationInput {
        user: UserFacts {
            id: user.id.clone(),
            user_type: match user.user_type {
                store::UserType::Guest => UserType::Guest,
                store::UserType::Member => UserType::Member,
            },
            groups: Vec::new(),
        },
        app_id: app_id.to_owned(),
        location: facts.into(),
        user_risk_level: user_risk,
        sign_in_risk_level: sign_in_risk,
        satisfied,
    }
}

/// Real-time sign-in risk of a sign-in by `user_id` from `ip` now: one read (the user's recent
/// sign-ins here), the rest pure. `token`: the facts about the partner's ID token of a
/// federated guest sign-in, for `tokenIssuerAnomaly`.
pub(crate) async fn sign_in_risk(
    state: &AppState,
    ip: std::net::IpAddr,
    user_agent: &str,
    user_id: &str,
    token: Option<&risk::TokenIssuerFacts>,
) -> Result<SignInRisk, StoreError> {
    let history = past_sign_ins(state, user_id).await?;
    let intel = state.protection.intel();
    let at = OffsetDateTime::from_unix_timestamp(state.now())
        .map_err(|e| StoreError::Corrupt(format!("clock out of range: {e}")))?;
    Ok(risk::evaluate_sign_in(
        &SignInContext {
            ip,
            user_agent,
            at,
            history: &history,
            token,
        },
        &intel,
        &state.protection.settings().sign_in,
    ))
}

/// A member's current user risk at this (their home) tenant: remediated, dismissed and aged-out
/// risk counts as none.
pub(crate) async fn member_risk(state: &AppState, user_id: &str) -> Result<RiskLevel, StoreError> {
    let status = crate::user_risk::current(state, user_id).await?;
    Ok(match status.risk_state {
        RiskState::AtRisk | RiskState::ConfirmedCompromised => status.risk_level,
        _ => RiskLevel::None,
    })
}

/// The user's recent successful sign-ins here, as sign-in risk compares them.
async fn past_sign_ins(state: &AppState, user_id: &str) -> Result<Vec<PastSignIn>, StoreError> {
    #[derive(Default, Deserialize)]
    struct Location {
        country: Option<String>,
        city: Option<String>,
        latitude: Option<f64>,
        longitude: Option<f64>,
        asn: Option<u32>,
    }
    let rows = state.store.recent_sign_ins(user_id, HISTORY).await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let at = OffsetDateTime::from_unix_timestamp(r.created_at).ok()?;
            // A row from before locations were recorded (or unreadable) still counts for time,
            // IP and user agent.
            let loc: Location = r
                .location
                .as_deref()
                .and_then(|l| serde_json::from_str(l).ok())
                .unwrap_or_default();
            Some(PastSignIn {
                at,
                ip: r.ip_address.as_deref().and_then(|i| i.parse().ok()),
                country: loc.country,
                city: loc.city,
                latitude: loc.latitude,
                longitude: loc.longitude,
                asn: loc.asn,
                user_agent: r.user_agent,
            })
        })
        .collect())
}

async fn decide(
    state: AppState,
    ctx: Ctx,
    jar: CookieJar,
    interaction: Option<&str>,
    mut case: Case,
    sso: Option<Current>,
) -> Response {
    case.gate.user_risk_level = case.a.user_risk;
    case.gate.sign_in_risk_level = case.a.sign_in.risk_level;
    match case.a.verdict.clone() {
        Verdict::Allow => allow(state, ctx, jar, interaction, case, sso).await,
        Verdict::Block { code, reason } => block(&state, &ctx, &case, &reason, code).await,
        Verdict::Step(Step::Mfa) => step(&state, &ctx, jar, interaction, case, Step::Mfa).await,
        Verdict::Step(Step::PasswordChange) => {
            // MFA is satisfied here (by this sign-in or the session's): the change page checks
            // this mark, so a pending sign-in still waiting for MFA cannot change the password.
            case.gate.mfa_done = true;
            step(&state, &ctx, jar, interaction, case, Step::PasswordChange).await
        }
    }
}

/// The sign-in's own risk state for the log: remediated when MFA was done in this sign-in.
fn sign_in_risk_state(a: &Assessment, gate: &Gate) -> (RiskState, RiskDetail) {
    if a.sign_in.risk_level > RiskLevel::None && gate.mfa_done {
        risk::signin::remediated_by_mfa()
    } else {
        a.sign_in.risk_state()
    }
}

fn risk_log(a: &Assessment, gate: &Gate) -> RiskLog {
    let (risk_state, risk_detail) = sign_in_risk_state(a, gate);
    RiskLog {
        risk_level_aggregated: a.user_risk,
        risk_level_during_sign_in: a.sign_in.risk_level,
        risk_state,
        risk_detail,
        risk_event_types: a.sign_in.risk_event_types(),
        risk_detections: a.sign_in.detections.clone(),
        conditional_access_status: a.evaluation.conditional_access_status,
        applied_conditional_access_policies: a
            .evaluation
            .applied_conditional_access_policies
            .clone(),
        location: a.sign_in.facts.clone(),
    }
}

async fn log(state: &AppState, ctx: &Ctx, case: &Case, sso: bool, outcome: Outcome) {
    let Case {
        pending,
        gate,
        user,
        a,
    } = case;
    let how = if sso {
        How::SingleSignOn
    } else {
        How::Interactive
    };
    let entry = Entry {
        correlation_id: &pending.correlation_id,
        app_id: Some(&pending.request.client_id),
        ..judged_entry(user, gate, a, how)
    };
    signin_log::write(state, ctx, entry, outcome).await;
}

/// How a judged sign-in happened, for its log row.
#[derive(Clone, Copy, PartialEq, Eq)]
enum How {
    Interactive,
    SingleSignOn,
    Refresh,
}

/// The log entry of a sign-in the gate judged (the caller adds correlation id and app).
fn judged_entry<'a>(user: &'a User, gate: &'a Gate, a: &Assessment, how: How) -> Entry<'a> {
    let sso = how == How::SingleSignOn;
    let details = match &gate.guest {
        Some(g) => serde_json::json!({
            "homeSubject": user.home_subject,
            "userRisk": g.user_risk,
            "userRiskTrusted": g.user_risk_trusted,
            "homeAmr": g.home_amr,
            "singleSignOn": sso,
        }),
        None => serde_json::json!({ "singleSignOn": sso }),
    };
    Entry {
        upn: Some(&user.email),
        user_id: Some(&user.id),
        guest_of: gate.guest.as_ref().map(|g| g.partner.as_str()),
        details,
        risk: Some(risk_log(a, gate)),
        non_interactive: how == How::Refresh,
        ..Entry::default()
    }
}

async fn allow(
    state: AppState,
    ctx: Ctx,
    jar: CookieJar,
    interaction: Option<&str>,
    case: Case,
    sso: Option<Current>,
) -> Response {
    log(&state, &ctx, &case, sso.is_some(), Outcome::Success).await;
    if sso.is_none()
        && let Err(e) = risky_sign_in_raises_user_risk(&state, &case).await
    {
        return PageError::internal(format!("recording the risky sign-in failed: {e}"))
            .render(&state, &ctx);
    }
    let Case {
        pending,
        gate,
        user,
        ..
    } = case;
    if let Some(current) = sso {
        return authorize::continue_with_session(state, ctx, jar, pending.request, current).await;
    }
    if let Some(id) = interaction
        && let Err(e) = state.store.delete_interaction(id).await
    {
        return PageError::from(e).render(&state, &ctx);
    }
    let started = match gate.guest.clone() {
        Some(mut facts) => {
            facts.mfa_here = facts.mfa_here || gate.mfa_done;
            session::start_federated(&state, jar, user, gate.amr.clone(), &facts).await
        }
        None => session::start(&state, jar, user, gate.amr.clone()).await,
    };
    match started {
        Ok((jar, current)) => {
            authorize::continue_with_session(state, ctx, jar, pending.request, current).await
        }
        Err(e) => PageError::from(e).render(&state, &ctx),
    }
}

/// A member's risky sign-in that still succeeded, without MFA remediating it, counts towards
/// their user risk here at their home (DESIGN.md §5): its strongest detection is recorded at
/// most `medium` — one sign-in is evidence, not proof of compromise.
async fn risky_sign_in_raises_user_risk(
    state: &AppState,
    case: &Case,
) -> Result<(), crate::user_risk::UserRiskError> {
    let sign_in = &case.a.sign_in;
    if case.gate.guest.is_some() || case.gate.mfa_done || sign_in.risk_level == RiskLevel::None {
        return Ok(());
    }
    let Some(strongest) = sign_in.detections.iter().max_by_key(|d| d.risk_level) else {
        return Ok(());
    };
    let detection = crate::user_risk::new_detection(
        strongest.risk_event_type,
        strongest.risk_level.min(RiskLevel::Medium),
        risk::DetectionTimingType::Realtime,
        sign_in.facts.ip,
        state.now(),
        format!(
            "a sign-in that succeeded without MFA was risky: {}",
            strongest.explanation
        ),
    );
    crate::user_risk::raise(state, &case.user.id, detection).await?;
    Ok(())
}

/// Whether risk (the user's or the sign-in's) played a part: the block page then says the seed's
/// sentence and how to remediate.
fn is_risky(a: &Assessment) -> bool {
    a.user_risk > RiskLevel::None || a.sign_in.risk_level > RiskLevel::None
}

/// The sign-in log's `failureReason` for a block code.
fn block_reason(code: u32) -> &'static str {
    match code {
        codes::BLOCKED_DUE_TO_HOME_RISK => "Blocked due to user risk on the home tenant.",
        codes::LOCKED_OR_MALICIOUS_IP => "Sign-in from a malicious IP address was blocked.",
        _ => "Blocked by Conditional Access.",
    }
}

/// Where a user can reset their password: a guest's home tenant (their risk lives there), or
/// this tenant for a member.
fn password_reset_link(state: &AppState, gate: &Gate) -> (String, String) {
    match gate.guest.as_ref().and_then(|g| state.partner(&g.partner)) {
        Some(p) => (
            format!(
                "{}{}",
                p.config.issuer.trim_end_matches('/'),
                PASSWORD_RESET_PATH
            ),
            format!("Reset your password at {}", p.config.display_name),
        ),
        None => (
            format!(
                "{}{}",
                state.config.issuer.trim_end_matches('/'),
                PASSWORD_RESET_PATH
            ),
            "Reset your password".to_owned(),
        ),
    }
}

/// The self-service password reset page of a tenant.
pub const PASSWORD_RESET_PATH: &str = "/password/reset";

async fn block(
    state: &AppState,
    ctx: &Ctx,
    case: &Case,
    reason: &str,
    error_code: u32,
) -> Response {
    let Case {
        pending,
        gate,
        user,
        a,
    } = case;
    let risky = is_risky(a);
    let code = error_code;
    let failure = block_reason(code);
    tracing::info!(correlation_id = %pending.correlation_id, user = %user.id, %reason, code, "sign-in blocked");
    log(state, ctx, case, false, Outcome::Failure(code, failure)).await;
    let (message, explanation, link) = if risky {
        let explanation = match gate.guest.as_ref().and_then(|g| state.partner(&g.partner)) {
            Some(p) if code == codes::BLOCKED_DUE_TO_HOME_RISK => format!(
                "Your account belongs to {home}, and {home} considers it at risk. \
                 {here} cannot clear that risk: only {home} can. Reset your password at \
                 {home} (it takes you to your own organization's page), then sign in again.",
                home = p.config.display_name,
                here = state.config.display_name,
            ),
            Some(p) => format!(
                "This sign-in looked risky to {here}. If it was you, try again from your usual \
                 network; if your account is at risk, reset your password at {home}.",
                here = state.config.display_name,
                home = p.config.display_name,
            ),
            None => "Reset your password to secure your account, or contact your administrator."
                .to_owned(),
        };
        (
            codes::BLOCKED_MESSAGE.to_owned(),
            explanation,
            Some(password_reset_link(state, gate)),
        )
    } else {
        (
            "You cannot access this right now.".to_owned(),
            "Your sign-in was successful, but a Conditional Access policy of this \
             organization blocks access to this app."
                .to_owned(),
            None,
        )
    };
    let description = message.clone();
    let r = Refusal {
        title: "Sign-in blocked",
        message,
        explanation: Some(explanation),
        home_link: link,
        error_code: code,
        oauth: OAuthError::new(ErrorCode::AccessDenied, description),
    };
    refusal::render(state, &pending.correlation_id, Some(&pending.request), r)
}

/// Hold the sign-in (a new pending id, the gate inside) and send the user to the step.
async fn step(
    state: &AppState,
    ctx: &Ctx,
    jar: CookieJar,
    interaction: Option<&str>,
    case: Case,
    step: Step,
) -> Response {
    // The interruption is a sign-in log row of its own, as in Entra: the decision and why are
    // on record even if the user never finishes the step.
    let (code, reason): (u32, &'static str) = match step {
        Step::Mfa => (
            codes::STRONG_AUTH_REQUIRED,
            "Strong authentication is required (interrupted: MFA).",
        ),
        Step::PasswordChange => (
            codes::PASSWORD_CHANGE_REQUIRED,
            "A password change is required due to user risk (interrupted).",
        ),
    };
    log(state, ctx, &case, false, Outcome::Failure(code, reason)).await;
    let Case {
        mut pending,
        mut gate,
        user,
        ..
    } = case;
    // The browser gets a CSRF cookie now if it had none (single sign-on), and the held sign-in
    // is bound to it.
    let (jar, csrf) = csrf_token(state, jar);
    gate.binding = token_hash(&csrf);
    pending.verified_user = Some(user.id.clone());
    pending.gate = Some(gate);
    let id = match interaction {
        Some(old) => authorize::replace_pending(state, old, pending).await,
        None => authorize::start_pending(state, pending).await,
    };
    let id = match id {
        Ok(id) => id,
        Err(e) => return e.render(state, ctx),
    };
    match step {
        Step::Mfa => (jar, Redirect::to(&format!("/login/mfa?interaction={id}"))).into_response(),
        Step::PasswordChange => {
            let page = pages::ChangePassword {
                tenant_name: &state.config.display_name,
                interaction: &id,
                csrf_token: &csrf,
                email: &user.email,
                error: None,
            };
            (jar, html(&page)).into_response()
        }
    }
}

/// Why a refresh was refused, for the token endpoint.
#[derive(Debug)]
pub struct RefreshRefusal {
    /// `invalid_grant`, the Entra code in the description.
    pub error: OAuthError,
    /// Whether the refresh token's family must go: the user's account or risk requires a new
    /// interactive sign-in (remediation), not merely another network.
    pub revoke_family: bool,
}

impl From<StoreError> for RefreshRefusal {
    fn from(e: StoreError) -> Self {
        Self {
            error: OAuthError::server_error(e.to_string()),
            revoke_family: false,
        }
    }
}

/// A refresh-token grant is a non-interactive sign-in, as in Entra: the user's account state
/// and risk are read again (a member's own; a guest's the last claim their home sent), sign-in
/// risk judges what belongs to the user (a public client's IP is the user's device; a
/// confidential client's is its server's and is not judged), and the same policies decide. Each
/// refresh is a `nonInteractiveUser` row in the sign-in log. Returns the user to issue tokens
/// for.
pub async fn judge_refresh(
    state: &AppState,
    ctx: &Ctx,
    app: &App,
    grant: &Grant,
) -> Result<User, RefreshRefusal> {
    let refuse = |code: u32, message: &str, revoke_family: bool| RefreshRefusal {
        error: OAuthError::invalid_grant(format!("{message} (error code {code})")),
        revoke_family,
    };
    let user = match state.store.user_by_id(&grant.user_id).await? {
        Some(u) if u.status == UserStatus::Active => u,
        _ => {
            return Err(refuse(
                codes::ACCOUNT_DISABLED,
                "The user account is disabled or no longer exists.",
                true,
            ));
        }
    };
    let guest = match user.user_type {
        store::UserType::Guest => Some(guest_on_refresh(state, &user, grant).await?),
        store::UserType::Member => None,
    };
    let gate = Gate {
        user_id: user.id.clone(),
        amr: grant.amr.clone(),
        guest,
        ..Gate::default()
    };
    let origin = if app.config.auth_method == protocol::client_auth::AuthMethod::None {
        Origin::of(ctx)
    } else {
        Origin::BackChannel
    };
    let a = assess(state, origin, &user, &gate, &app.config.client_id).await?;
    // The user-risk policy's password change is a remediation only an interactive sign-in can
    // do (MFA first or not): refuse, and end the family.
    let verdict = match (&a.verdict, &a.evaluation.decision) {
        (Verdict::Step(Step::Mfa), Decision::RequirePasswordChange { .. }) => {
            Verdict::Step(Step::PasswordChange)
        }
        (v, _) => v.clone(),
    };
    let (outcome, refusal) = match &verdict {
        Verdict::Allow => (Outcome::Success, None),
        Verdict::Block { code, .. } => {
            let message = if is_risky(&a) {
                codes::BLOCKED_MESSAGE
            } else {
                "Access has been blocked by Conditional Access policies."
            };
            let revoke = a.user_risk > RiskLevel::None;
            (
                Outcome::Failure(*code, block_reason(*code)),
                Some(refuse(*code, message, revoke)),
            )
        }
        Verdict::Step(Step::Mfa) => (
            Outcome::Failure(
                codes::STRONG_AUTH_REQUIRED_NON_INTERACTIVE,
                "Strong authentication is required; a refresh cannot provide it.",
            ),
            Some(refuse(
                codes::STRONG_AUTH_REQUIRED_NON_INTERACTIVE,
                "Multi-factor authentication is required: sign in again.",
                false,
            )),
        ),
        Verdict::Step(Step::PasswordChange) => (
            Outcome::Failure(
                codes::PASSWORD_CHANGE_REQUIRED,
                "A password change is required due to user risk.",
            ),
            Some(refuse(
                codes::PASSWORD_CHANGE_REQUIRED,
                codes::BLOCKED_MESSAGE,
                true,
            )),
        ),
    };
    let entry = Entry {
        correlation_id: &ctx.correlation_id,
        app_id: Some(&app.config.client_id),
        ..judged_entry(&user, &gate, &a, How::Refresh)
    };
    signin_log::write(state, ctx, entry, outcome).await;
    match refusal {
        None => Ok(user),
        Some(r) => Err(r),
    }
}

/// What a guest's refresh is judged with: the partner they come from, the home's last
/// `user_risk` claim (kept on the guest at each federated sign-in; real-time updates come with
/// shared signals), and whether MFA was done here in the session the grant came from.
async fn guest_on_refresh(
    state: &AppState,
    user: &User,
    grant: &Grant,
) -> Result<GuestSession, StoreError> {
    let partner_id = user.partner_id.clone().unwrap_or_default();
    let partner = state.partner(&partner_id);
    let user_risk_trusted = partner.as_ref().is_some_and(|p| p.config.trust_user_risk);
    let user_risk: Option<UserRiskClaim> = user
        .home_user_risk
        .as_deref()
        .and_then(|json| serde_json::from_str(json).ok());
    // The session may be gone (an offline grant outlives it): then MFA done here is not
    // known, and only the home's MFA counts (if the partner is trusted for it).
    let session_facts: Option<GuestSession> = match &grant.session_id {
        Some(id) => state
            .store
            .session_by_id(id)
            .await?
            .and_then(|s| s.federation_json)
            .and_then(|json| serde_json::from_str(&json).ok()),
        None => None,
    };
    Ok(GuestSession {
        idp: partner
            .as_ref()
            .map_or_else(String::new, |p| p.config.issuer.clone()),
        partner: partner_id,
        home_amr: grant.amr.clone(),
        user_risk,
        user_risk_trusted,
        home_auth_time: Some(grant.auth_time),
        mfa_here: session_facts.is_some_and(|f| f.mfa_here),
        token: None,
    })
}
