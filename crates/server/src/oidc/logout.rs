//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0). A `post_logout_redirect_uri`
//! is honoured only if it exactly matches one registered for the client, so logout can never be
//! used as an open redirect. Without a valid `id_token_hint` for the current session the user is
//! asked to confirm (a cross-site request cannot sign them out silently).

use crate::pages;
use crate::session;
use crate::state::AppState;
use crate::web::{Ctx, PageError, check_csrf, csrf_token, html, html_to};
use axum::extract::{RawForm, RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use protocol::jwt::IdTokenClaims;
use protocol::params::Params;

/// A checked logout request.
struct LogoutRequest {
    client_id: Option<String>,
    redirect: Option<String>,
    state: Option<String>,
    hint_sid: Option<String>,
}

async fn check(state: &AppState, params: &Params) -> Result<LogoutRequest, PageError> {
    let bad = |m: &str| PageError::bad_request("Sign-out request not valid", m.to_owned());
    let mut hint_client = None;
    let mut hint_sid = None;
    if let Some(hint) = params.get("id_token_hint") {
        // An expired hint is still a fine hint (RP-Initiated Logout §2); the signature is not optional.
        let claims: IdTokenClaims = state
            .keys()
            .verify(hint, "JWT", state.now())
            .map_err(|_| bad("The id_token_hint was not issued by this organization."))?;
        if claims.iss != state.config.issuer {
            return Err(bad(
                "The id_token_hint was not issued by this organization.",
            ));
        }
        hint_client = match &claims.aud {
            protocol::jwt::Audience::One(a) => Some(a.clone()),
            protocol::jwt::Audience::Many(v) => claims.azp.clone().or_else(|| v.first().cloned()),
        };
        hint_sid = claims.sid;
    }
    let client_id = match (params.get("client_id"), hint_client) {
        (Some(c), Some(h)) if c != h => {
            return Err(bad("client_id does not match the id_token_hint."));
        }
        (Some(c), _) => Some(c.to_owned()),
        (None, h) => h,
    };
    let redirect = match params.get("post_logout_redirect_uri") {
        None => None,
        Some(uri) => {
            let app = match client_id.as_deref() {
                Some(c) => state.app(c).await?,
                None => None,
            };
            let app = app.ok_or_else(|| bad("post_logout_redirect_uri needs client_id or id_token_hint to identify the application."))?;
            if !app
                .config
                .post_logout_redirect_uris
                .iter()
                .any(|u| u == uri)
            {
                return Err(bad(
                    "post_logout_redirect_uri is not registered for this application.",
                ));
            }
            Some(uri.to_owned())
        }
    };
    Ok(LogoutRequest {
        client_id,
        redirect,
        state: params.get("state").map(str::to_owned),
        hint_sid,
    })
}

/// `GET /logout`.
pub async fn get(
    State(state): State<AppState>,
    ctx: Ctx,
    jar: CookieJar,
    RawQuery(q): RawQuery,
) -> Result<Response, PageError> {
    logout(state, ctx, jar, q.unwrap_or_default().as_bytes()).await
}

/// `POST /logout`.
pub async fn post(
    State(state): State<AppState>,
    ctx: Ctx,
    jar: CookieJar,
    RawForm(body): RawForm,
) -> Result<Response, PageError> {
    logout(state, ctx, jar, &body).await
}

/// A sign-out request's parameters, or the page that says they are not valid (bytes that are
/// not UTF-8 included: a `state` is sent back as it came or not at all).
fn parse(raw: &[u8]) -> Result<Params, PageError> {
    Params::parse(raw)
        .map_err(|e| PageError::bad_request("Sign-out request not valid", e.description))
}

async fn logout(
    state: AppState,
    ctx: Ctx,
    jar: CookieJar,
    raw: &[u8],
) -> Result<Response, PageError> {
    let params = parse(raw)?;
    let req = check(&state, &params).await?;
    Ok(match session::current(&state, &jar).await? {
        None => done(&state, jar, &req),
        Some(c) if req.hint_sid.as_deref() == Some(c.session.id.as_str()) => {
            end(&state, &ctx, jar, &c, &req).await?
        }
        Some(_) => {
            let (jar, csrf) = csrf_token(&state, jar);
            let app_name = match req.client_id.as_deref() {
                Some(c) => Some(crate::login::refusal::app_name(&state, c).await),
                None => None,
            };
            let mut fields = Vec::new();
            for key in [
                "client_id",
                "post_logout_redirect_uri",
                "state",
                "id_token_hint",
            ] {
                if let Some(v) = params.get(key) {
                    fields.push((key, v.to_owned()));
                }
            }
            let page = pages::LogoutConfirm {
                tenant_name: &state.config.display_name,
                app_name: app_name.as_deref(),
                csrf_token: &csrf,
                fields,
            };
            let page = match &req.redirect {
                Some(to) => html_to(&page, to),
                None => html(&page),
            };
            (jar, page).into_response()
        }
    })
}

/// `POST /logout/confirm`.
pub async fn confirm(
    State(state): State<AppState>,
    ctx: Ctx,
    jar: CookieJar,
    RawForm(body): RawForm,
) -> Result<Response, PageError> {
    let params = parse(&body)?;
    check_csrf(&state, &jar, params.get("csrf_token").unwrap_or(""))?;
    let req = check(&state, &params).await?;
    if params.get("decision") != Some("yes") {
        return Ok(html(&pages::SignedOut {
            tenant_name: &state.config.display_name,
            title: "You are still signed in",
            message: "You can close this window.",
        }));
    }
    match session::current(&state, &jar).await? {
        Some(c) => end(&state, &ctx, jar, &c, &req).await,
        None => Ok(done(&state, jar, &req)),
    }
}

async fn end(
    state: &AppState,
    ctx: &Ctx,
    jar: CookieJar,
    c: &session::Current,
    req: &LogoutRequest,
) -> Result<Response, PageError> {
    let now = state.now();
    // Refresh tokens without offline_access are bound to the session and end with it.
    state.store.revoke_session(&c.session.id, now).await?;
    state
        .store
        .revoke_session_grants(&c.session.id, false, now)
        .await?;
    tracing::info!(correlation_id = %ctx.correlation_id, user = %c.user.email, "signed out");
    Ok(done(state, jar, req))
}

fn done(state: &AppState, jar: CookieJar, req: &LogoutRequest) -> Response {
    let jar = session::clear(state, jar);
    match &req.redirect {
        Some(uri) => {
            let mut params = Vec::new();
            if let Some(s) = &req.state {
                params.push(("state", s.clone()));
            }
            let target =
                protocol::authorize::append_query(uri, &params).unwrap_or_else(|| uri.clone());
            (jar, Redirect::to(&target)).into_response()
        }
        None => (
            jar,
            html(&pages::SignedOut {
                tenant_name: &state.config.display_name,
                title: "You have signed out",
                message: "You can close this window.",
            }),
        )
            .into_response(),
    }
}
