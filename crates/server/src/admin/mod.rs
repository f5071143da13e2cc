//! The admin JSON API, Graph-shaped where Graph has a shape. Every call needs a bearer access
//! token this tenant issued with the `admin` scope to a confidential app (client credentials).
//!
//! The pieces every admin handler shares live here: the [`Admin`] extractor (authentication,
//! refused with RFC 6750 challenges), the [`GraphJson`] body and [`GraphQuery`] extractors, [`GraphError`] (Graph's
//! `{"error": {"code", "message"}}` body) and [`reply`]. A handler reads: extract, one domain
//! call, render. This module also serves `POST /v1.0/invitations`; Conditional Access is
//! [`policies`], the sign-in log [`sign_ins`], ID Protection's reports and actions [`risk`],
//! the directory's users [`users`].

pub mod applications;
pub mod audits;
pub mod groups;
pub mod pages;
pub mod policies;
pub mod risk;
pub mod roles;
pub mod sign_ins;
pub mod users;

use std::fmt;
use std::panic::Location;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use protocol::jwt::AccessTokenClaims;
use protocol::{ErrorCode, OAuthError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use store::{Invitation, User};

use crate::guests::{self, InviteError};
use crate::state::AppState;
use crate::web::{BearerError, bearer_header, no_store};
use signin::tokens::verify_access_token;

/// The scope an access token needs for the admin API.
pub const ADMIN_SCOPE: &str = "admin";

/// An admin call's query string (`$filter`, `$top`, ...) as name → value. Text that is not
/// UTF-8 is refused with 400 rather than decoded with replacements: a filter is applied exactly
/// as sent or not at all.
#[derive(Debug, Default)]
pub struct GraphQuery(pub std::collections::HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for GraphQuery {
    type Rejection = GraphError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        if !protocol::params::is_utf8_form(query.as_bytes()) {
            return Err(GraphError::bad_request(
                "The query string is not valid UTF-8.",
            ));
        }
        serde_urlencoded::from_str(query).map(Self).map_err(|e| {
            GraphError::bad_request(format!("The query string could not be read: {e}"))
        })
    }
}

/// Who is calling the admin API: a live access token issued here with the `admin` scope, either
/// to an app for itself (client credentials), or to a user who holds the administrator role
/// ([`roles::ADMINISTRATOR`]; checked at every call, so taking the role away takes effect at
/// once). Taking it as a handler parameter is the authentication; when it is refused the
/// handler never runs and the client gets an RFC 6750 challenge.
#[derive(Debug, Clone)]
pub struct Admin {
    /// The app's client id (who the audit lines name).
    pub client_id: String,
    /// The verified token.
    pub claims: AccessTokenClaims,
    /// The administrator, for a user's token.
    pub user: Option<User>,
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = BearerError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_header(&parts.headers)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| OAuthError::invalid_token("An access token is required."))?;
        let claims = verify_access_token(state, &token).await?;
        Self::from_claims(state, claims).await
    }
}

impl Admin {
    /// Who the risk history names for this caller's actions: the administrator (their sign-in
    /// name) when a person acts, else the app.
    pub fn actor(&self) -> ::risk::Actor {
        ::risk::Actor::Admin(
            self.user
                .as_ref()
                .map_or_else(|| self.client_id.clone(), |u| u.email.clone()),
        )
    }

    /// The caller of a verified access token, if it may use the admin API (see [`Admin`]).
    pub async fn from_claims(
        state: &AppState,
        claims: AccessTokenClaims,
    ) -> Result<Self, BearerError> {
        let refused = || -> BearerError {
            OAuthError::new(
                ErrorCode::InsufficientScope,
                "The admin API needs a token with the admin scope, of an app for itself or of \
                 an administrator.",
            )
            .into()
        };
        if !has_admin_scope(&claims) {
            return Err(refused());
        }
        // An app's own token (client credentials): its `sub` is its client id.
        if claims.sub == claims.client_id {
            return Ok(Self {
                client_id: claims.client_id.clone(),
                claims,
                user: None,
            });
        }
        let unavailable = |e: store::StoreError| -> BearerError {
            tracing::error!(error = %e, "reading the caller's administrator role failed");
            OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "The request could not be completed.",
            )
            .into()
        };
        let user = state
            .store
            .user_by_id(&claims.sub)
            .await
            .map_err(unavailable)?
            .filter(|u| u.status == store::UserStatus::Active)
            .ok_or_else(refused)?;
        if !state
            .store
            .has_role(roles::ADMINISTRATOR, &user.id)
            .await
            .map_err(unavailable)?
        {
            return Err(refused());
        }
        Ok(Self {
            client_id: claims.client_id.clone(),
            claims,
            user: Some(user),
        })
    }
}

/// Graph's reference to a directory object, the body of `POST …/members/$ref`
/// (`{"@odata.id": "https://…/v1.0/directoryObjects/{id}"}`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberRef {
    #[serde(rename = "@odata.id")]
    odata_id: String,
}

impl MemberRef {
    /// The user the reference names (`…/directoryObjects/{id}` or `…/users/{id}`): 400 for a
    /// reference to anything else, 404 for an unknown user.
    pub async fn user(&self, state: &AppState) -> Result<User, GraphError> {
        let id = self
            .odata_id
            .rsplit_once('/')
            .filter(|(path, _)| path.ends_with("/directoryObjects") || path.ends_with("/users"))
            .map(|(_, id)| id)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                GraphError::bad_request(
                    "@odata.id must name a user: https://…/v1.0/directoryObjects/{id}.",
                )
            })?;
        state
            .store
            .user_by_id(id)
            .await?
            .ok_or_else(|| GraphError::not_found(format!("No user with id {id}.")))
    }
}

/// Graph's answer to adding a member twice.
pub fn already_a_member() -> GraphError {
    GraphError::bad_request(
        "One or more added object references already exist for the following modified \
         properties: 'members'.",
    )
}

/// Whether the token carries the admin scope (necessary, not sufficient: see [`Admin`]).
fn has_admin_scope(claims: &AccessTokenClaims) -> bool {
    claims
        .scope
        .as_deref()
        .is_some_and(|s| s.split(' ').any(|x| x == ADMIN_SCOPE))
}

/// The client sees this instead of internal detail, which goes to the log only.
const INTERNAL_MESSAGE: &str = "The request could not be completed.";

/// An admin API error: Graph's `{"error": {"code", "message"}}` body (with `details` where there
/// is more than one thing to say), its HTTP status, and `Cache-Control: no-store`.
#[derive(Debug)]
pub struct GraphError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Option<Vec<GraphErrorDetail>>,
}

/// One entry of a [`GraphError`]'s `details`: what is wrong with one part of the request.
#[derive(Debug, Clone, Serialize)]
pub struct GraphErrorDetail {
    /// Machine-readable reason.
    pub code: &'static str,
    /// The field it is about.
    pub target: String,
    /// Plain words.
    pub message: String,
}

impl GraphError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    /// 400 `BadRequest`: the request is wrong; the message says how.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// 400 `Request_UnsupportedQuery`: a query option this server cannot answer exactly (never
    /// ignored: an ignored filter would answer with more than was asked for).
    pub fn unsupported_query(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Request_UnsupportedQuery", message)
    }

    /// 403 `Forbidden`: understood, authenticated, and not allowed.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden", message)
    }

    /// 404 `ResourceNotFound`; the message names what was looked for.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "ResourceNotFound", message)
    }

    /// 409 `Conflict`: the request clashes with what exists.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "Conflict", message)
    }

    /// 500 `InternalServerError`. The detail is logged with the caller's source location (the
    /// client's message is generic, so the log is the only place saying which call failed).
    #[track_caller]
    pub fn internal(detail: impl fmt::Display) -> Self {
        let at = Location::caller();
        tracing::error!(error = %detail, at = %at, "admin API request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            INTERNAL_MESSAGE,
        )
    }

    /// Adds `details` (shown even when empty, as Graph does for validation errors).
    #[must_use]
    pub fn with_details(mut self, details: Vec<GraphErrorDetail>) -> Self {
        self.details = Some(details);
        self
    }

    fn body(&self) -> Value {
        let mut error = json!({"code": self.code, "message": self.message});
        if let (Some(details), Some(map)) = (&self.details, error.as_object_mut()) {
            map.insert("details".into(), json!(details));
        }
        json!({ "error": error })
    }
}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        reply(self.status, self.body())
    }
}

/// The same refusal on an admin page: its message, in the tenant's page.
impl From<GraphError> for crate::web::PageError {
    fn from(e: GraphError) -> Self {
        if e.status.is_server_error() {
            return Self::internal(e.message);
        }
        Self {
            status: e.status,
            title: "This could not be done",
            message: e.message,
            error_code: None,
            detail: Some(format!("admin page refused: {}", e.code)),
        }
    }
}

impl From<store::StoreError> for GraphError {
    #[track_caller]
    fn from(e: store::StoreError) -> Self {
        if e.is_unavailable() {
            tracing::warn!(error = %e, "admin API request: the database is unreachable");
            return Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "The service cannot reach its database right now; try again later.",
            );
        }
        Self::internal(e)
    }
}

impl From<JsonRejection> for GraphError {
    fn from(e: JsonRejection) -> Self {
        // Whatever axum's own status (415, 422, ...), the admin API has always said 400.
        Self::bad_request(e.body_text())
    }
}

/// A JSON request body; a body that is not the expected JSON is a [`GraphError`] 400. Put it
/// last among a handler's parameters, so [`Admin`] refuses an unauthenticated call first.
#[derive(Debug, FromRequest)]
#[from_request(via(Json), rejection(GraphError))]
pub struct GraphJson<T>(pub T);

/// A JSON answer with `Cache-Control: no-store` (admin answers are about live security state).
pub fn reply(status: StatusCode, body: Value) -> Response {
    let mut r = (status, Json(body)).into_response();
    no_store(r.headers_mut());
    r
}

/// A 204 with `Cache-Control: no-store`.
pub fn no_content() -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
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

impl InvitationRequest {
    /// The partner the guest comes from: named, or found by the email's domain.
    fn partner(&self, state: &AppState) -> Result<String, GraphError> {
        if self
            .invited_user_type
            .as_deref()
            .is_some_and(|t| !t.eq_ignore_ascii_case("guest"))
        {
            return Err(GraphError::bad_request("invitedUserType must be Guest."));
        }
        let _ = (
            &self.send_invitation_message,
            &self.invited_user_message_info,
        );
        self.partner_id
            .clone()
            .or_else(|| {
                state
                    .partner_for_email(&self.invited_user_email_address)
                    .map(|p| p.config.id.clone())
            })
            .ok_or_else(|| {
                GraphError::bad_request(
                    "No partner organization has this email domain; name one with partnerId.",
                )
            })
    }
}

impl From<InviteError> for GraphError {
    #[track_caller]
    fn from(e: InviteError) -> Self {
        match e {
            InviteError::Store(e) => Self::internal(e),
            e @ InviteError::Exists(_) => Self::conflict(e.to_string()),
            e => Self::bad_request(e.to_string()),
        }
    }
}

/// `POST /v1.0/invitations`: invite a guest from a partner tenant.
pub async fn invite(
    State(state): State<AppState>,
    ctx: crate::web::Ctx,
    admin: Admin,
    GraphJson(req): GraphJson<InvitationRequest>,
) -> Result<Response, GraphError> {
    let partner = req.partner(&state)?;
    let (user, invitation) = guests::invite(
        &state.store,
        &state.config,
        &req.invited_user_email_address,
        &partner,
        req.invited_user_display_name.as_deref(),
        Some(&req.invite_redirect_url),
        state.now(),
    )
    .await?;
    tracing::info!(app = %admin.client_id, guest = %user.id, partner = %partner, "guest invited");
    let activity =
        audits::Activity::on_user(audits::Area::Users, "Invite external user", "Add", &user)
            .detail("partner", partner.as_str());
    audits::record(&state, &ctx, &admin, activity).await;
    Ok(reply(
        StatusCode::CREATED,
        invitation_json(&state, &user, &invitation, &partner),
    ))
}

/// Graph `invitation`, plus the partner (a tenantd extension).
fn invitation_json(state: &AppState, user: &User, invitation: &Invitation, partner: &str) -> Value {
    json!({
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
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use axum::http::header;

    async fn rendered(e: GraphError) -> (StatusCode, String, Value) {
        let r = e.into_response();
        let status = r.status();
        let cache = r.headers()[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .to_owned();
        let bytes = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, cache, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn errors_have_graphs_shape_status_and_no_store() {
        for (e, status, code) in [
            (GraphError::bad_request("m"), 400, "BadRequest"),
            (GraphError::forbidden("m"), 403, "Forbidden"),
            (GraphError::not_found("m"), 404, "ResourceNotFound"),
            (GraphError::conflict("m"), 409, "Conflict"),
        ] {
            let (s, cache, body) = rendered(e).await;
            assert_eq!(s.as_u16(), status);
            assert_eq!(cache, "no-store");
            assert_eq!(body, json!({"error": {"code": code, "message": "m"}}));
        }
    }

    #[tokio::test]
    async fn internal_errors_hide_the_detail() {
        let e = GraphError::from(store::StoreError::Corrupt("secret row 42".into()));
        let (s, _, body) = rendered(e).await;
        assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            body,
            json!({"error": {"code": "InternalServerError", "message": INTERNAL_MESSAGE}})
        );
    }

    #[tokio::test]
    async fn details_are_shown_when_given_even_empty() {
        let (_, _, body) = rendered(GraphError::bad_request("m").with_details(vec![])).await;
        assert_eq!(body["error"]["details"], json!([]));
        let detail = GraphErrorDetail {
            code: "InvalidPolicy",
            target: "state".into(),
            message: "bad".into(),
        };
        let (_, _, body) = rendered(GraphError::bad_request("m").with_details(vec![detail])).await;
        assert_eq!(
            body["error"]["details"],
            json!([{"code": "InvalidPolicy", "target": "state", "message": "bad"}])
        );
    }
}
