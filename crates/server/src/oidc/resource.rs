//! UserInfo, revocation (RFC 7009) and introspection (RFC 7662). Access tokens are checked and
//! the released claims decided by [`signin::tokens`]; clients authenticate through
//! [`crate::oidc::token::authenticate_client`].

use crate::oidc::token::{authenticate_client, form_params};
use crate::state::AppState;
use crate::web::{ApiError, BearerError, bearer_header, no_store};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use protocol::jwt::{AT_JWT_TYP, AccessTokenClaims};
use protocol::scope::Scope;
use protocol::{ErrorCode, OAuthError};
use signin::tokens::{
    grant_claims, released_claims, verify_access_token, verify_access_token_grant,
};
use store::UserStatus;

/// `GET|POST /userinfo` with a bearer access token (RFC 6750 §2.1, or §2.2 form body).
pub async fn userinfo(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, BearerError> {
    let token = bearer(&headers, &method, &body)?;
    let (claims, grant) = verify_access_token_grant(&state, &token).await?;
    let scopes = Scope::parse(claims.scope.as_deref().unwrap_or("")).unwrap_or_default();
    if !scopes.contains("openid") {
        return Err(OAuthError::new(
            ErrorCode::InsufficientScope,
            "The token was not issued with the openid scope.",
        )
        .into());
    }
    let user = state.store.user_by_id(&claims.sub).await?;
    let Some(user) = user.filter(|u| u.status == UserStatus::Active) else {
        return Err(OAuthError::invalid_token("The user is no longer active.").into());
    };
    let Some(app) = state.app(&claims.client_id).await? else {
        return Err(OAuthError::invalid_token("The app is no longer registered.").into());
    };
    // The claims asked for at userinfo by name (OIDC Core §5.5), with the grant.
    let requested = match &grant {
        Some(g) => grant_claims(g)?.userinfo,
        None => Default::default(),
    };
    let mut body = released_claims(&state, &app, &user, &scopes.to_string(), &requested).await?;
    body.insert("sub".into(), user.id.into());
    let mut r = axum::Json(serde_json::Value::Object(body)).into_response();
    no_store(r.headers_mut());
    Ok(r)
}

fn bearer(headers: &HeaderMap, method: &Method, body: &Bytes) -> Result<String, BearerError> {
    let from_header = bearer_header(headers);
    // RFC 6750 §2.2: a form body (and only a form body) may carry the token; one that cannot
    // be read is refused, not ignored.
    let from_body = if *method == Method::POST && is_form(headers) {
        form_params(headers, body)?
            .get("access_token")
            .map(str::to_owned)
    } else {
        None
    };
    match (from_header, from_body) {
        (Some(_), Some(_)) => {
            Err(OAuthError::invalid_request("Send the access token in one place only.").into())
        }
        (Some(t), None) | (None, Some(t)) if !t.is_empty() => Ok(t),
        _ => Err(OAuthError::invalid_token("An access token is required.").into()),
    }
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// `POST /revoke` (RFC 7009). Unknown or foreign tokens still get 200: revocation must not
/// become an oracle for which tokens exist.
pub async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let params = form_params(&headers, &body)?;
    let app = authenticate_client(&state, &headers, &params).await?;
    let token = params.require("token")?;
    let now = state.now();
    if let Some(rt) = state
        .store
        .refresh_token(&crate::secrets::token_hash(token))
        .await?
    {
        if rt.client_id == app.config.client_id {
            state.store.revoke_grant(&rt.grant_id, now).await?;
        }
    } else if let Ok(claims) = state
        .keys()
        .verify::<AccessTokenClaims>(token, AT_JWT_TYP, now)
        && claims.client_id == app.config.client_id
        && claims.iss == state.config.issuer
    {
        match &claims.gid {
            // RFC 7009 §2.1 lets revoking an access token revoke its grant.
            Some(gid) => {
                state.store.revoke_grant(gid, now).await?;
            }
            None => {
                state
                    .store
                    .revoke_access_token(&claims.jti, claims.exp)
                    .await?
            }
        }
    }
    let mut r = ().into_response();
    no_store(r.headers_mut());
    Ok(r)
}

/// `POST /introspect` (RFC 7662). A client may introspect only tokens issued to it.
pub async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let params = form_params(&headers, &body)?;
    let app = authenticate_client(&state, &headers, &params).await?;
    let token = params.require("token")?;
    let now = state.now();
    let inactive = serde_json::json!({ "active": false });
    let mut answer = inactive.clone();
    if let Some((rt, grant)) = state
        .store
        .refresh_token_with_grant(&crate::secrets::token_hash(token))
        .await?
    {
        let live = rt.used_at.is_none()
            && rt.expires_at > now
            && grant.revoked_at.is_none()
            && grant.expires_at > now;
        if live && rt.client_id == app.config.client_id {
            answer = serde_json::json!({
                "active": true,
                "token_type": "refresh_token",
                "scope": rt.scope,
                "client_id": rt.client_id,
                "sub": grant.user_id,
                "iss": state.config.issuer,
                "iat": rt.created_at,
                "exp": rt.expires_at,
                "tid": state.config.tenant_id,
            });
        }
    } else if let Ok(claims) = verify_access_token(&state, token).await
        && claims.client_id == app.config.client_id
    {
        answer = serde_json::json!({
            "active": true,
            "token_type": "Bearer",
            "scope": claims.scope,
            "client_id": claims.client_id,
            "sub": claims.sub,
            "aud": claims.aud,
            "iss": claims.iss,
            "iat": claims.iat,
            "exp": claims.exp,
            "jti": claims.jti,
            "tid": claims.tid,
        });
    }
    let mut r = axum::Json(answer).into_response();
    no_store(r.headers_mut());
    Ok(r)
}
