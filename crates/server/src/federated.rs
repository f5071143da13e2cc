//! Guest sign-in by federation, its HTTP side: home realm discovery sends the
//! browser to the partner (the guest's home tenant), with what the app asked of the
//! authentication; the partner's redirect comes back to `/federation/callback`, which takes
//! the sign-in waiting under its `state` (once, in the browser that started it), lets
//! `federation::Upstream` verify the answer and `signin::federation` judge it, and hands the
//! guest to the gate. Everything that goes wrong fails closed: a page in plain words, the OAuth
//! error for the app, a sign-in log row, and no other write.

use std::sync::Arc;

use crate::login::gate;
use crate::login::refusal::{self, Refusal};
use crate::secrets::token_hash;
use crate::signin_log::{self, Entry, Outcome};
use crate::state::{AppState, Partner};
use crate::web::Query;
use crate::web::{Ctx, PageError};
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use federation::CallbackParams;
use protocol::{ErrorCode, OAuthError};
use signin::codes;
use signin::federation::{
    NotAccepted, failure_code, failure_details, failure_reason, federation_refusal,
    inbound_disabled,
};
use signin::gate::AlreadyRead;
use signin::sign_in::{self as progress, AtHome, SignIn};
use store::Consumption;

/// The path of the callback partners redirect guests back to.
pub const CALLBACK_PATH: &str = "/federation/callback";

fn flow_key(state_param: &str) -> String {
    format!("fed.{}", token_hash(state_param))
}

/// Send the browser to `partner` for `email` (home realm discovery found it).
pub async fn start(
    state: &AppState,
    ctx: &Ctx,
    page: &str,
    sign_in: SignIn,
    partner: Arc<Partner>,
    email: &str,
    csrf: &str,
) -> Response {
    let log = |outcome, details| {
        let entry = Entry {
            correlation_id: &sign_in.correlation_id,
            app_id: Some(&sign_in.request.client_id),
            upn: Some(email),
            guest_of: Some(&partner.config.id),
            details,
            ..Entry::default()
        };
        signin_log::write(state, ctx, entry, outcome)
    };
    if !partner.config.inbound_enabled {
        log(
            Outcome::Failure(
                codes::BLOCKED_BY_INBOUND_POLICY,
                "Blocked by the inbound cross-tenant access policy.",
            ),
            serde_json::json!({}),
        )
        .await;
        return refuse(state, &sign_in, inbound_disabled(&partner)).await;
    }
    let request = &sign_in.request;
    let reauthentication = federation::Reauthentication {
        login: request.prompt.login || request.prompt.select_account,
        max_age: request.max_age,
        acr_values: request
            .acr_values
            .as_deref()
            .map(|v| v.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
    };
    let redirect = match partner
        .upstream
        .authorization_redirect(Some(email), &sign_in.correlation_id, &reauthentication)
        .await
    {
        Ok(r) => r,
        Err(e) => {
            log(
                Outcome::Failure(failure_code(&e), failure_reason(&e)),
                failure_details(&e),
            )
            .await;
            return refuse(state, &sign_in, federation_refusal(&partner, &e)).await;
        }
    };
    let mut sign_in = sign_in;
    sign_in.bound_to = Some(token_hash(csrf));
    sign_in.at_home = Some(AtHome {
        page: page.to_owned(),
        partner: partner.config.id.clone(),
        email: email.to_owned(),
        secrets: redirect.secrets,
        started_at: state.now(),
    });
    match progress::save_as(state, &flow_key(&redirect.state), &sign_in).await {
        Ok(()) => Redirect::to(&redirect.url).into_response(),
        Err(e) => PageError::from(e).render(state, ctx),
    }
}

/// `GET /federation/callback`: the partner's authorization response.
pub async fn callback(
    State(state): State<AppState>,
    ctx: Ctx,
    jar: CookieJar,
    Query(params): Query<CallbackParams>,
) -> Response {
    let Some(state_param) = params
        .state
        .as_deref()
        .filter(|s| !s.is_empty() && s.len() <= 128)
    else {
        return stale_callback(&state, &ctx, "the response carries no state").await;
    };
    let key = flow_key(state_param);
    // Looked at before it is taken: a response delivered to another browser is refused
    // without using up the real browser's sign-in.
    let waiting = match state.store.interaction(&key, state.now()).await {
        Ok(Some(i)) => progress::read(&i.request_json).ok(),
        Ok(None) => None,
        Err(e) => return PageError::from(e).render(&state, &ctx),
    };
    if let Some(w) = &waiting
        && !gate::same_browser(&state, &jar, w)
    {
        return foreign_browser(&state, &ctx, w).await;
    }
    let sign_in = match state.store.consume_interaction(&key, state.now()).await {
        Ok(Consumption::Consumed(i)) => match progress::read(&i.request_json) {
            Ok(s) => s,
            Err(e) => return PageError::from(e).render(&state, &ctx),
        },
        Ok(Consumption::AlreadyConsumed(i)) => {
            return replayed(&state, &ctx, progress::read(&i.request_json).ok()).await;
        }
        Ok(Consumption::NotFound) => {
            return stale_callback(&state, &ctx, "unknown or expired state").await;
        }
        Err(e) => return PageError::from(e).render(&state, &ctx),
    };
    // Consumed between the look and the take by another browser's request: same refusal.
    if !gate::same_browser(&state, &jar, &sign_in) {
        return foreign_browser(&state, &ctx, &sign_in).await;
    }
    let Some(at_home) = sign_in.at_home.clone() else {
        return PageError::expired_request().render(&state, &ctx);
    };
    let Some(partner) = state.partner(&at_home.partner) else {
        return PageError::expired_request().render(&state, &ctx);
    };
    if !partner.config.inbound_enabled {
        return fail(
            &state,
            &ctx,
            &sign_in,
            codes::BLOCKED_BY_INBOUND_POLICY,
            "Blocked by the inbound cross-tenant access policy.",
            serde_json::json!({}),
            inbound_disabled(&partner),
        )
        .await;
    }
    let home = match partner
        .upstream
        .complete(&params, &at_home.secrets, state.now())
        .await
    {
        Ok(h) => h,
        Err(e) => {
            return fail(
                &state,
                &ctx,
                &sign_in,
                failure_code(&e),
                failure_reason(&e),
                failure_details(&e),
                federation_refusal(&partner, &e),
            )
            .await;
        }
    };
    let waiting = sign_in.clone();
    match signin::federation::accept(&state, &partner, &home, sign_in, at_home.started_at).await {
        Ok((mut sign_in, guest)) => {
            // Back here, the sign-in is no longer bound or waiting: the gate decides.
            sign_in.bound_to = None;
            sign_in.at_home = None;
            gate::judge(
                state,
                ctx,
                jar,
                &at_home.page,
                sign_in,
                guest,
                AlreadyRead::Nothing,
            )
            .await
        }
        Err(NotAccepted::Refused(r)) => {
            fail(
                &state, &ctx, &waiting, r.code, r.reason, r.details, r.refusal,
            )
            .await
        }
        Err(NotAccepted::Store(e)) => PageError::from(e).render(&state, &ctx),
    }
}

/// A refused answer: the sign-in log row (the partner and the address the user typed), then
/// the refusal page.
async fn fail(
    state: &AppState,
    ctx: &Ctx,
    sign_in: &SignIn,
    code: u32,
    reason: &'static str,
    details: serde_json::Value,
    r: Refusal,
) -> Response {
    let at_home = sign_in.at_home.as_ref();
    let entry = Entry {
        correlation_id: &sign_in.correlation_id,
        app_id: Some(&sign_in.request.client_id),
        upn: at_home.map(|h| h.email.as_str()),
        guest_of: at_home.map(|h| h.partner.as_str()),
        details,
        ..Entry::default()
    };
    signin_log::write(state, ctx, entry, Outcome::Failure(code, reason)).await;
    refuse(state, sign_in, r).await
}

/// The partner's response came back to another browser than the one that started the sign-in
/// (a leaked or planted callback URL): refused, and the real browser's sign-in is left as it was.
async fn foreign_browser(state: &AppState, ctx: &Ctx, sign_in: &SignIn) -> Response {
    fail(
        state,
        ctx,
        sign_in,
        codes::INVALID_FEDERATION_RESPONSE,
        "The sign-in response came back to a different browser (state mismatch).",
        serde_json::json!({}),
        Refusal {
            title: "This sign-in could not be verified",
            message: "The answer from your home organization did not come back to the browser that started the sign-in.".into(),
            explanation: Some("Start signing in again from the app.".into()),
            home_link: None,
            footnote: None,
            error_code: codes::INVALID_FEDERATION_RESPONSE,
            oauth: OAuthError::new(ErrorCode::AccessDenied, "The federated sign-in response does not belong to this browser."),
        },
    )
    .await
}

/// The same `state` came back a second time: someone replays the partner's response.
async fn replayed(state: &AppState, ctx: &Ctx, sign_in: Option<SignIn>) -> Response {
    let Some((sign_in, at_home)) = sign_in.and_then(|s| s.at_home.clone().map(|h| (s, h))) else {
        return stale_callback(state, ctx, "state replayed").await;
    };
    let entry = Entry {
        correlation_id: &sign_in.correlation_id,
        app_id: Some(&sign_in.request.client_id),
        upn: Some(&at_home.email),
        guest_of: Some(&at_home.partner),
        ..Entry::default()
    };
    let reason = "The sign-in response was replayed (state already used).";
    signin_log::write(
        state,
        ctx,
        entry,
        Outcome::Failure(codes::INVALID_FEDERATION_RESPONSE, reason),
    )
    .await;
    refuse(
        state,
        &sign_in,
        Refusal {
            title: "This sign-in link was already used",
            message: "The answer from your home organization has already been used once.".into(),
            explanation: Some("Start signing in again from the app.".into()),
            home_link: None,
            footnote: None,
            error_code: codes::INVALID_FEDERATION_RESPONSE,
            oauth: OAuthError::new(
                ErrorCode::AccessDenied,
                "The federated sign-in response was already used.",
            ),
        },
    )
    .await
}

/// A callback that matches no sign-in in progress: there is no app to tell, only the log.
async fn stale_callback(state: &AppState, ctx: &Ctx, why: &'static str) -> Response {
    let entry = Entry {
        correlation_id: &ctx.correlation_id,
        details: serde_json::json!({"federation": why}),
        ..Entry::default()
    };
    signin_log::write(
        state,
        ctx,
        entry,
        Outcome::Failure(
            codes::INVALID_FEDERATION_RESPONSE,
            "The sign-in response matches no sign-in in progress.",
        ),
    )
    .await;
    PageError::expired_request().render(state, ctx)
}

async fn refuse(state: &AppState, sign_in: &SignIn, r: Refusal) -> Response {
    refusal::render(state, &sign_in.correlation_id, Some(&sign_in.request), r).await
}
