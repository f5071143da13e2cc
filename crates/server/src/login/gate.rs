//! The sign-in gate's pages. The decision is `signin::gate`'s (user risk, sign-in risk,
//! Conditional Access → a `Verdict`); this module turns it into HTTP: allow (session, then
//! consent or the code), block (the refusal page and the app's `access_denied`), or a step
//! (MFA, password change) for which the sign-in is held, bound to this browser, and resumed
//! through [`resume`] (`GET /login/continue`), which judges again with what was satisfied.

use crate::login::refusal;
use crate::oidc::finish;
use crate::pages;
use crate::secrets::token_hash;
use crate::session::{self, Current};
use crate::state::AppState;
use crate::web::Query;
use crate::web::{Ctx, PageError, csrf_token, html_to};
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use protocol::authorize::AuthorizationRequest;
use serde::Deserialize;
use signin::gate::{self, AlreadyRead, Assessment, How, Step, Verdict};
use signin::sign_in::{self as progress, GuestSession, SignIn};
use signin::signin_log::Outcome;
use store::{User, UserStatus};

pub use signin::gate::PASSWORD_RESET_PATH;

/// A sign-in whose user was just authenticated (a password, a partner's ID token, or a step
/// done): judged, then allowed, blocked or held for a step. `page` is the id it is kept under;
/// `read`, what the caller already read for the gate.
pub async fn judge(
    state: AppState,
    ctx: Ctx,
    jar: CookieJar,
    page: &str,
    sign_in: SignIn,
    user: User,
    read: AlreadyRead,
) -> Response {
    let app_id = sign_in.request.client_id.clone();
    match gate::assess_with(&state, ctx.client().into(), &user, read, &sign_in, &app_id).await {
        Ok(a) => decide(state, ctx, jar, Via::Page(page), sign_in, user, a).await,
        Err(e) => PageError::from(e).render(&state, &ctx),
    }
}

/// Single sign-on: a live session meets a new authorization request. Policies are evaluated
/// again (the app, the IP and the risk may all differ from the sign-in that made the session).
pub async fn judge_single_sign_on(
    state: AppState,
    ctx: Ctx,
    jar: CookieJar,
    request: AuthorizationRequest,
    correlation_id: String,
    mut current: Current,
) -> Response {
    let guest: Option<GuestSession> = match &current.session.federation_json {
        Some(json) => match serde_json::from_str(json) {
            Ok(g) => Some(g),
            Err(e) => {
                return PageError::internal(format!("session federation facts unreadable: {e}"))
                    .render(&state, &ctx);
            }
        },
        None => None,
    };
    let mut sign_in = SignIn::new(request, correlation_id)
        .authenticated(&current.user.id, current.session.amr.clone());
    sign_in.guest = guest;
    let app_id = sign_in.request.client_id.clone();
    let user = current.user.clone();
    let read = std::mem::replace(&mut current.read, AlreadyRead::Nothing);
    match gate::assess_with(&state, ctx.client().into(), &user, read, &sign_in, &app_id).await {
        Ok(a) => {
            let via = Via::Session(Box::new(current));
            decide(state, ctx, jar, via, sign_in, user, a).await
        }
        Err(e) => PageError::from(e).render(&state, &ctx),
    }
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
) -> Result<Response, PageError> {
    let sign_in = progress::load(&state, &q.interaction).await?;
    if !sign_in.held || !same_browser(&state, &jar, &sign_in) {
        return Err(PageError::expired_request());
    }
    // Between the steps the user may have been disabled: look them up again.
    let user = held_user(&state, &sign_in).await?;
    Ok(judge(
        state,
        ctx,
        jar,
        &q.interaction,
        sign_in,
        user,
        AlreadyRead::Nothing,
    )
    .await)
}

/// Whether this browser is the one the sign-in is bound to (its CSRF cookie).
pub(crate) fn same_browser(state: &AppState, jar: &CookieJar, sign_in: &SignIn) -> bool {
    jar.get(&state.cookies.csrf)
        .is_some_and(|c| sign_in.bound_to_browser(&token_hash(c.value())))
}

/// The active user a held sign-in names.
pub(crate) async fn held_user(state: &AppState, sign_in: &SignIn) -> Result<User, PageError> {
    let id = sign_in.user_id.as_deref().unwrap_or_default();
    match state.store.user_by_id(id).await? {
        Some(u) if u.status == UserStatus::Active => Ok(u),
        _ => Err(PageError::expired_request()),
    }
}

/// How a judged sign-in reached the gate.
enum Via<'a> {
    /// Through the sign-in pages: the id it is kept under.
    Page(&'a str),
    /// A live session reused for another app (single sign-on).
    Session(Box<Current>),
}

async fn decide(
    state: AppState,
    ctx: Ctx,
    jar: CookieJar,
    via: Via<'_>,
    mut sign_in: SignIn,
    user: User,
    a: Assessment,
) -> Response {
    sign_in.user_risk_level = a.user_risk;
    sign_in.sign_in_risk_level = a.sign_in.risk_level;
    match a.verdict.clone() {
        Verdict::Allow => allow(state, ctx, jar, via, sign_in, user, a).await,
        Verdict::Block { code, reason } => {
            tracing::info!(correlation_id = %sign_in.correlation_id, user = %user.id, %reason, code, "sign-in blocked");
            let outcome = Outcome::Failure(code, gate::block_reason(code));
            gate::log(
                &state,
                ctx.client(),
                &sign_in,
                &user,
                &a,
                How::Interactive,
                outcome,
            )
            .await;
            let r = gate::blocked(&state, &sign_in, &a, code);
            refusal::render(&state, &sign_in.correlation_id, Some(&sign_in.request), r).await
        }
        Verdict::Step(step) => {
            if step == Step::PasswordChange {
                // MFA is satisfied here (by this sign-in or the session's): the change page
                // checks this mark, so a sign-in still waiting for MFA cannot change the
                // password.
                sign_in.mfa_done = true;
            }
            let outcome = gate::interrupted(step);
            gate::log(
                &state,
                ctx.client(),
                &sign_in,
                &user,
                &a,
                How::Interactive,
                outcome,
            )
            .await;
            let page = match via {
                Via::Page(id) => Some(id),
                Via::Session(_) => None,
            };
            hold(&state, &ctx, jar, page, sign_in, &user, step)
                .await
                .unwrap_or_else(|e| e.render(&state, &ctx))
        }
    }
}

async fn allow(
    state: AppState,
    ctx: Ctx,
    jar: CookieJar,
    via: Via<'_>,
    sign_in: SignIn,
    user: User,
    a: Assessment,
) -> Response {
    let page = match via {
        Via::Session(current) => {
            let how = How::SingleSignOn;
            gate::log(
                &state,
                ctx.client(),
                &sign_in,
                &user,
                &a,
                how,
                Outcome::Success,
            )
            .await;
            return finish::continue_with_session(state, ctx, jar, sign_in.request, *current).await;
        }
        Via::Page(id) => id,
    };
    let how = How::Interactive;
    gate::log(
        &state,
        ctx.client(),
        &sign_in,
        &user,
        &a,
        how,
        Outcome::Success,
    )
    .await;
    if let Err(e) = gate::risky_sign_in_raises_user_risk(&state, &sign_in, &user, &a).await {
        return PageError::from(e).render(&state, &ctx);
    }
    let started = match sign_in.guest.clone() {
        Some(mut facts) => {
            facts.mfa_here = facts.mfa_here || sign_in.mfa_done;
            session::start_federated(&state, jar, page, user, sign_in.amr.clone(), &facts).await
        }
        None => session::start(&state, jar, page, user, sign_in.amr.clone()).await,
    };
    match started {
        Ok((jar, current)) => {
            finish::continue_with_session(state, ctx, jar, sign_in.request, current).await
        }
        Err(e) => PageError::from(e).render(&state, &ctx),
    }
}

/// Hold the sign-in (a new id, bound to this browser) and send the user to the step.
async fn hold(
    state: &AppState,
    ctx: &Ctx,
    jar: CookieJar,
    page: Option<&str>,
    mut sign_in: SignIn,
    user: &User,
    step: Step,
) -> Result<Response, PageError> {
    // The browser gets a CSRF cookie now if it had none (single sign-on), and the held sign-in
    // is bound to it.
    let (jar, csrf) = csrf_token(state, jar);
    sign_in.held = true;
    sign_in.bound_to = Some(token_hash(&csrf));
    let id = match page {
        Some(old) => progress::replace(state, old, &sign_in).await?,
        None => progress::save(state, &sign_in).await?,
    };
    tracing::debug!(correlation_id = %ctx.correlation_id, ?step, "sign-in held");
    Ok(match step {
        Step::Mfa => (jar, Redirect::to(&format!("/login/mfa?interaction={id}"))).into_response(),
        Step::PasswordChange => {
            let page = pages::ChangePassword {
                tenant_name: &state.config.display_name,
                interaction: &id,
                csrf_token: &csrf,
                email: &user.email,
                error: None,
            };
            (jar, html_to(&page, &sign_in.request.redirect_uri)).into_response()
        }
    })
}
