//! The admin JSON API, Graph-shaped where Graph has a shape. Every call needs a bearer access
//! token this tenant issued with the `admin` scope to a confidential app (client credentials).
//! Errors use Graph's `{"error": {"code", "message"}}` body; authentication failures use
//! RFC 6750 challenges.

use crate::guests::{self, InviteError};
use crate::state::AppState;
use crate::token::verify_access_token;
use crate::web::{BearerError, bearer_header, no_store};
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use protocol::jwt::AccessTokenClaims;
use protocol::{ErrorCode, OAuthError};
use serde::Deserialize;

/// The scope an access token needs for the admin API.
pub const ADMIN_SCOPE: &str = "admin";

/// Check the bearer token: issued here, live, with the admin scope, to an app (not a user).
pub async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<AccessTokenClaims, BearerError> {
    let token = bearer_header(headers)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| OAuthError::invalid_token("An access token is required."))?;
    let claims = verify_access_token(state, &token).await?;
    let admin = claims
        .scope
        .as_deref()
        .is_some_and(|s| s.split(' ').any(|x| x == ADMIN_SCOPE));
    if !admin || claims.sub != claims.client_id {
        return Err(OAuthError::new(
            ErrorCode::InsufficientScope,
            "The admin API needs an app token with the admin scope.",
        )
        .into());
    }
    Ok(claims)
}

/// A Graph-style error response.
pub fn graph_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = serde_json::json!({"error": {"code": code, "message": message.into()}});
    let mut r = (status, Json(body)).into_response();
    no_store(r.headers_mut());
    r
}

/// `POST /v1.0/invitations` body (Graph `invitation`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InvitationRequest {
    invited_user_email_address: String,
    invite_redirect_url: String,
    #[serde(default)]
    invited_user_display_name: Option<String>,
    /// tenantd extension: the partner, when the email domain alone does not say.
    #[serde(default)]
    partner_id: Option<String>,
    // Accepted for Graph compatibility; tenantd sends no mail.
    #[serde(default)]
    send_invitation_message: Option<bool>,
    #[serde(default)]
    invited_user_type: Option<String>,
    #[serde(default)]
    invited_user_message_info: Option<serde_json::Value>,
}

/// `POST /v1.0/invitations`: invite a guest from a partner tenant.
pub async fn invite(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<InvitationRequest>, JsonRejection>,
) -> Response {
    let claims = match authorize(&state, &headers).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => return graph_error(StatusCode::BAD_REQUEST, "BadRequest", e.body_text()),
    };
    if req
        .invited_user_type
        .as_deref()
        .is_some_and(|t| !t.eq_ignore_ascii_case("guest"))
    {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "invitedUserType must be Guest.",
        );
    }
    let _ = (&req.send_invitation_message, &req.invited_user_message_info);
    let partner = match req.partner_id.clone().or_else(|| {
        state
            .partner_for_email(&req.invited_user_email_address)
            .map(|p| p.config.id.clone())
    }) {
        Some(p) => p,
        None => {
            return graph_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "No partner organization has this email domain; name one with partnerId.",
            );
        }
    };
    let invited = guests::invite(
        &state.store,
        &state.config,
        &req.invited_user_email_address,
        &partner,
        req.invited_user_display_name.as_deref(),
        Some(&req.invite_redirect_url),
        state.now(),
    )
    .await;
    let (user, invitation) = match invited {
        Ok(x) => x,
        Err(InviteError::Store(e)) => {
            tracing::error!(error = %e, "invitation failed");
            return graph_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "The invitation could not be stored.",
            );
        }
        Err(e @ InviteError::Exists(_)) => {
            return graph_error(StatusCode::CONFLICT, "Conflict", e.to_string());
        }
        Err(e) => return graph_error(StatusCode::BAD_REQUEST, "BadRequest", e.to_string()),
    };
    tracing::info!(app = %claims.client_id, guest = %user.id, partner = %partner, "guest invited");
    let body = serde_json::json!({
        "id": invitation.id,
        "invitedUserEmailAddress": user.email,
        "invitedUserDisplayName": user.display_name,
        "invitedUserType": "Guest",
        "inviteRedirectUrl": invitation.invite_redirect_url,
        "inviteRedeemUrl": state.config.issuer,
        "sendInvitationMessage": false,
        "status": invitation.status.as_str(),
        "invitedUser": {"id": user.id},
        "partnerId": partner,
    });
    let mut r = (StatusCode::CREATED, Json(body)).into_response();
    no_store(r.headers_mut());
    r
}
