//! Finishing a sign-in once the user is known and the gate has let them through: consent if
//! the app needs it, then the grant and its single-use code, delivered by the request's
//! response mode (RFC 9207 `iss` included); and errors sent back to the app.

use crate::pages;
use crate::secrets::random_token;
use crate::session::Current;
use crate::state::{App, AppState};
use crate::web::{Ctx, PageError, html};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use protocol::authorize::{
    self, AuthorizationRequest, AuthorizeError, ErrorRedirect, ResponseMode,
};
use protocol::{ErrorCode, OAuthError};
use signin::sign_in::{self as progress, SignIn};
use std::sync::Arc;
use store::{AuthCode, Grant};

/// With an authenticated user: ask for consent if needed, else issue the code.
pub async fn continue_with_session(
    state: AppState,
    ctx: Ctx,
    jar: CookieJar,
    request: AuthorizationRequest,
    current: Current,
) -> Response {
    let app = match state.app(&request.client_id).await {
        Ok(app) => app,
        Err(e) => return PageError::from(e).render(&state, &ctx),
    };
    let Some(app) = app else {
        return PageError::bad_request(
            "Unknown application",
            "The application is no longer registered.",
        )
        .render(&state, &ctx);
    };
    match needs_consent(&state, &app, &request, &current).await {
        Ok(false) => {}
        Ok(true) if request.prompt.none => {
            return error_to_client(
                &state,
                &ctx,
                &request,
                OAuthError::new(
                    ErrorCode::ConsentRequired,
                    "The user has not consented to this application.",
                ),
            );
        }
        Ok(true) => {
            let sign_in = SignIn::new(request, ctx.correlation_id.clone());
            return match progress::save(&state, &sign_in).await {
                Ok(id) => {
                    (jar, Redirect::to(&format!("/consent?interaction={id}"))).into_response()
                }
                Err(e) => PageError::from(e).render(&state, &ctx),
            };
        }
        Err(e) => return e.render(&state, &ctx),
    }
    match issue_code(&state, &request, &current).await {
        Ok(code) => (
            jar,
            deliver(
                &request.redirect_uri,
                request.response_mode,
                &authorize::success_params(&code, request.state.as_deref(), &state.config.issuer),
            ),
        )
            .into_response(),
        Err(e) => e.render(&state, &ctx),
    }
}

async fn needs_consent(
    state: &AppState,
    app: &Arc<App>,
    request: &AuthorizationRequest,
    c: &Current,
) -> Result<bool, PageError> {
    if app.config.first_party {
        return Ok(false);
    }
    let given = state
        .store
        .consent(&c.user.id, &app.config.client_id)
        .await?
        .and_then(|s| protocol::scope::Scope::parse(&s))
        .unwrap_or_default();
    Ok(authorize::consent_needed(request, false, &given))
}

/// The grant and its single-use code, sealed into the code: nothing is written until the code
/// is redeemed.
async fn issue_code(
    state: &AppState,
    request: &AuthorizationRequest,
    c: &Current,
) -> Result<String, PageError> {
    let now = state.now();
    let t = &state.config.tokens;
    let offline = request.scopes().contains("offline_access");
    // The claims asked for by name go with the grant, for the code exchange, refreshes and
    // userinfo (OIDC Core §5.5).
    let claims = if request.claims.is_empty() {
        None
    } else {
        Some(
            serde_json::to_string(&request.claims)
                .map_err(|e| PageError::internal(e.to_string()))?,
        )
    };
    let grant = Grant {
        // Time-ordered (UUIDv7: a millisecond timestamp, then 74 random bits), so that the
        // grants' key and the refresh tokens' grant index grow at their end: a commit's
        // grants land on the same pages, and a group commit writes those pages once.
        id: uuid::Uuid::now_v7().to_string(),
        client_id: request.client_id.clone(),
        user_id: c.user.id.clone(),
        session_id: Some(c.session.id.clone()),
        scope: request.scope.clone(),
        auth_time: c.session.auth_time,
        amr: c.session.amr.clone(),
        acr: c.session.acr.clone(),
        offline,
        created_at: now,
        // An online grant lives as long as the session; an offline one as long as a refresh token.
        expires_at: if offline {
            now + t.refresh_token
        } else {
            c.session.expires_at.max(now + t.code)
        },
        revoked_at: None,
        claims,
    };
    let auth_code = AuthCode {
        grant_id: grant.id.clone(),
        client_id: request.client_id.clone(),
        redirect_uri: request.redirect_uri.clone(),
        scope: request.scope.clone(),
        nonce: request.nonce.clone(),
        code_challenge: request.code_challenge.clone(),
        code_challenge_method: request.code_challenge.as_ref().map(|_| "S256".to_owned()),
        created_at: now,
        expires_at: now + t.code,
    };
    Ok(signin::authorization_codes::seal(state, &grant, &auth_code, &c.user).await?)
}

pub fn authorize_error(state: &AppState, ctx: &Ctx, e: AuthorizeError) -> Response {
    match e {
        AuthorizeError::Page(e) => {
            tracing::info!(correlation_id = %ctx.correlation_id, error = %e, description = %e.description, "authorization request refused");
            PageError::bad_request("Invalid sign-in request", e.description).render(state, ctx)
        }
        AuthorizeError::Redirect(r) => {
            tracing::info!(correlation_id = %ctx.correlation_id, error = %r.error, description = %r.error.description, "authorization error sent to client");
            redirect_error(state, &r)
        }
    }
}

/// Send an error for a validated request back to the client.
pub fn error_to_client(
    state: &AppState,
    ctx: &Ctx,
    request: &AuthorizationRequest,
    error: OAuthError,
) -> Response {
    authorize_error(
        state,
        ctx,
        AuthorizeError::Redirect(ErrorRedirect {
            error,
            redirect_uri: request.redirect_uri.clone(),
            state: request.state.clone(),
            response_mode: request.response_mode,
        }),
    )
}

fn redirect_error(state: &AppState, r: &ErrorRedirect) -> Response {
    let params = authorize::error_params(&r.error, r.state.as_deref(), &state.config.issuer);
    deliver(&r.redirect_uri, r.response_mode, &params)
}

/// Deliver authorization response parameters by the request's response mode.
fn deliver(redirect_uri: &str, mode: ResponseMode, params: &[(&'static str, String)]) -> Response {
    match mode {
        ResponseMode::Query => match authorize::append_query(redirect_uri, params) {
            Some(url) => Redirect::to(&url).into_response(),
            None => (StatusCode::INTERNAL_SERVER_ERROR, "bad redirect URI").into_response(),
        },
        ResponseMode::FormPost => {
            let nonce = random_token();
            let page = pages::FormPost {
                action: redirect_uri,
                fields: params.iter().map(|(k, v)| (*k, v.clone())).collect(),
                nonce: &nonce,
            };
            let mut resp = html(&page);
            let csp = format!(
                "default-src 'none'; script-src 'nonce-{nonce}'; form-action {}; frame-ancestors 'none'; base-uri 'none'",
                origin_of(redirect_uri)
            );
            if let Ok(v) = HeaderValue::from_str(&csp) {
                resp.headers_mut()
                    .insert(header::CONTENT_SECURITY_POLICY, v);
            }
            resp
        }
    }
}

fn origin_of(uri: &str) -> String {
    url::Url::parse(uri)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|_| "'none'".into())
}
