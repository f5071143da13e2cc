//! A sign-in refused after its authorization request was validated: a page in plain words with
//! a code people can look up and the correlation id, plus the way back to the app carrying the
//! standard OAuth error (`access_denied` or `temporarily_unavailable` with a description).

use crate::pages::{self, BackToApp};
use crate::state::AppState;
use crate::web::{html, html_to};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use protocol::authorize::{self, AuthorizationRequest, ResponseMode};

pub use signin::refusal::Refusal;

/// Render the refusal. With the request known, the page offers the way back to the app with
/// the OAuth error, `state` and the RFC 9207 `iss`.
pub async fn render(
    state: &AppState,
    correlation_id: &str,
    request: Option<&AuthorizationRequest>,
    r: Refusal,
) -> Response {
    tracing::info!(correlation_id, error_code = r.error_code, error = %r.oauth, description = %r.oauth.description, "sign-in refused");
    let app_name = match request {
        Some(req) => app_name(state, &req.client_id).await,
        None => String::new(),
    };
    let back = request.and_then(|req| {
        let params = authorize::error_params(&r.oauth, req.state.as_deref(), &state.config.issuer);
        let app_name = app_name.clone();
        match req.response_mode {
            ResponseMode::Query => {
                authorize::append_query(&req.redirect_uri, &params).map(|action| BackToApp {
                    app_name,
                    action,
                    fields: Vec::new(),
                    post: false,
                })
            }
            ResponseMode::FormPost => Some(BackToApp {
                app_name,
                action: req.redirect_uri.clone(),
                fields: params,
                post: true,
            }),
        }
    });
    let page = pages::Refused {
        tenant_name: &state.config.display_name,
        title: r.title,
        message: &r.message,
        explanation: r.explanation.as_deref(),
        home_link: r.home_link,
        footnote: r.footnote,
        error_code: Some(r.error_code),
        correlation_id,
        back,
    };
    let page = match request {
        Some(req) => html_to(&page, &req.redirect_uri),
        None => html(&page),
    };
    // A refusal for now (a home that does not answer) is a 503, like the OAuth error it
    // carries; a decision (a block, a policy) is a 403.
    let status = if r.oauth.code == protocol::ErrorCode::TemporarilyUnavailable {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::FORBIDDEN
    };
    (status, page).into_response()
}

/// The name pages show for an app: its registered name, or its client id when it is gone or
/// cannot be read (a page about a refusal must still render).
pub async fn app_name(state: &AppState, client_id: &str) -> String {
    match state.app(client_id).await {
        Ok(Some(app)) => app.config.name.clone(),
        Ok(None) => client_id.to_owned(),
        Err(e) => {
            tracing::warn!(error = %e, client_id, "app lookup failed");
            client_id.to_owned()
        }
    }
}
