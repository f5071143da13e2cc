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
use crate::pages;
use crate::refusal::{self, Refusal};
use crate::secrets::{ct_eq, token_hash};
use crate::session::{self, Current};
use crate::signin_log::{self, Entry, Outcome, RiskLog};
use crate::state::AppState;
use crate::web::{Ctx, PageError, csrf_token, html};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use policy::{Decision, EvaluationInput, PolicySet, Satisfied, UserFacts, codes};
use protocol::authorize::AuthorizationRequest;
use protocol::{ErrorCode, OAuthError};
use risk::{
    PastSignIn, RiskDetail, RiskEventType, RiskLevel, RiskState, SignInContext, SignInRisk,
    UserRiskClaim, UserType,
};
use serde::Deserialize;
use store::{StoreError, User, UserStatus};
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
    mfa_satisfied: bool,
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
    let assessment = match assess(&state, &ctx, &user, &gate, &pending.request.client_id).await {
        Ok(a) => a,
        Err(e) => return e.render(&state, &ctx),
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
    let assessment = match assess(&state, &ctx, &current.user, &gate, &request.client_id).await {
        Ok(a) => a,
        Err(e) => return e.render(&state, &ctx),
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
    ctx: &Ctx,
    user: &User,
    gate: &Gate,
    app_id: &str,
) -> Result<Assessment, PageError> {
    let user_risk = match &gate.guest {
        Some(g) => UserRiskClaim::effective_level(g.user_risk.as_ref(), g.user_risk_trusted),
        // The change this sign-in just made remediated the risk; the policies (and the log)
        // judge the sign-in on the risk that required it, now satisfied.
        None if gate.password_changed => gate.user_risk_level,
        None => member_risk(state, &user.id).await?,
    };
    let sign_in = sign_in_risk(
        state,
        ctx.ip,
        ctx.user_agent.as_deref().unwrap_or(""),
        &user.id,
        gate.guest.as_ref().and_then(|g| g.token.as_ref()),
    )
    .await?;
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
    Ok(Assessment {
        user_risk,
        sign_in,
        evaluation,
        mfa_satisfied,
    })
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
    match case.a.evaluation.decision.clone() {
        Decision::Allow => allow(state, ctx, jar, interaction, case, sso).await,
        Decision::Block { reason, error_code } => {
            block(&state, &ctx, &case, &reason, error_code).await
        }
        Decision::RequireMfa | Decision::RequirePasswordChange { mfa_first: true }
            if !case.a.mfa_satisfied =>
        {
            step(&state, &ctx, jar, interaction, case, Step::Mfa).await
        }
        Decision::RequireMfa => {
            // Only reachable when MFA is satisfied yet still pending: a policy bug; refuse.
            PageError::internal("MFA satisfied but still required").render(&state, &ctx)
        }
        Decision::RequirePasswordChange { .. } => {
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
    let entry = Entry {
        correlation_id: &pending.correlation_id,
        app_id: Some(&pending.request.client_id),
        upn: Some(&user.email),
        user_id: Some(&user.id),
        guest_of: gate.guest.as_ref().map(|g| g.partner.as_str()),
        details,
        risk: Some(risk_log(a, gate)),
    };
    signin_log::write(state, ctx, entry, outcome).await;
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
    let risky = a.user_risk > RiskLevel::None || a.sign_in.risk_level > RiskLevel::None;
    let malicious_ip = a
        .sign_in
        .detections
        .iter()
        .any(|d| d.risk_event_type == RiskEventType::MaliciousIpAddress);
    let code = if error_code == codes::BLOCKED_BY_CONDITIONAL_ACCESS && malicious_ip {
        codes::LOCKED_OR_MALICIOUS_IP
    } else {
        error_code
    };
    let failure: &'static str = match code {
        codes::BLOCKED_DUE_TO_HOME_RISK => "Blocked due to user risk on the home tenant.",
        codes::LOCKED_OR_MALICIOUS_IP => "Sign-in from a malicious IP address was blocked.",
        _ => "Blocked by Conditional Access.",
    };
    tracing::info!(correlation_id = %pending.correlation_id, user = %user.id, %reason, code, "sign-in blocked");
    log(
        state,
        ctx,
        case,
        false,
        Outcome::Failure(i64::from(code), failure),
    )
    .await;
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
        error_code: i64::from(code),
        oauth: OAuthError::new(ErrorCode::AccessDenied, description),
    };
    refusal::render(state, &pending.correlation_id, Some(&pending.request), r)
}

enum Step {
    Mfa,
    PasswordChange,
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
    let (code, reason): (i64, &'static str) = match step {
        Step::Mfa => (
            i64::from(codes::STRONG_AUTH_REQUIRED),
            "Strong authentication is required (interrupted: MFA).",
        ),
        Step::PasswordChange => (
            i64::from(codes::PASSWORD_CHANGE_REQUIRED),
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
