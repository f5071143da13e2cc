//! The token endpoint (authorization_code, refresh_token, client_credentials) and client
//! authentication over HTTP. Minting and checking tokens, and authenticating a client from what
//! it presented, are [`signin::tokens`]; the code exchange and refresh orchestration (which the
//! sign-in gate judges) stay here for now.

use crate::config::GrantType;
use crate::secrets::{random_token, token_hash};
use crate::state::{App, AppState};
use crate::web::{ApiError, Ctx, no_store};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use protocol::client_auth;
use protocol::params::Params;
use protocol::scope::Scope;
use protocol::token::{GrantRequest, parse_grant};
use protocol::{ErrorCode, OAuthError};
use signin::gate::AlreadyRead;
use signin::tokens::{
    TokenResponse, client_credentials, first_refresh_token, grant_claims, issue_user_tokens,
    refresh_token_row, released_claims,
};
use std::sync::Arc;
use store::{CodeRedemption, Grant, RefreshToken, Rotation, User, UserStatus};

/// Parse a form-encoded body; anything else, or bytes that are not UTF-8, is refused with
/// `invalid_request` (RFC 6749 §3.2).
pub fn form_params(headers: &HeaderMap, body: &Bytes) -> Result<Params, OAuthError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request(
            "The body must be application/x-www-form-urlencoded.",
        ));
    }
    Params::parse(body)
}

/// Authenticate the calling client by its registered method: read the `Authorization` header,
/// work out what was presented ([`client_auth::presented`]) and check it
/// ([`signin::tokens::authenticate_client`]). A 401 after Basic challenges Basic (RFC 6749 §5.2).
pub async fn authenticate_client(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Arc<App>, ApiError> {
    let authz = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    let basic = authz.is_some();
    let fail = |e: OAuthError| ApiError {
        error: e,
        basic_challenge: basic,
    };
    let presented = client_auth::presented(authz, params).map_err(fail)?;
    signin::tokens::authenticate_client(state, presented)
        .await
        .map_err(fail)
}

/// `POST /token`.
pub async fn token(
    State(state): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let params = form_params(&headers, &body)?;
    let app = authenticate_client(&state, &headers, &params).await?;
    let grant = parse_grant(&params)?;
    let allowed = match &grant {
        GrantRequest::AuthorizationCode { .. } => GrantType::AuthorizationCode,
        GrantRequest::RefreshToken { .. } => GrantType::RefreshToken,
        GrantRequest::ClientCredentials { .. } => GrantType::ClientCredentials,
    };
    if !app.config.grant_types.contains(&allowed) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "This client may not use this grant type.",
        )
        .into());
    }
    let resp = match grant {
        GrantRequest::AuthorizationCode {
            code,
            redirect_uri,
            code_verifier,
        } => {
            exchange_code(
                &state,
                &app,
                &code,
                redirect_uri.as_deref(),
                code_verifier.as_deref(),
            )
            .await?
        }
        GrantRequest::RefreshToken {
            refresh_token,
            scope,
        } => refresh(&state, &ctx, &app, &refresh_token, scope).await?,
        GrantRequest::ClientCredentials { scope } => client_credentials(&state, &app, scope)?,
    };
    tracing::debug!(correlation_id = %ctx.correlation_id, client = %app.config.client_id, "tokens issued");
    let mut r = axum::Json(resp).into_response();
    no_store(r.headers_mut());
    Ok(r)
}

/// Redeem an authorization code for `app` (RFC 6749 §4.1.3): the token endpoint's exchange,
/// also used in-process by tenantd's own pages ([`crate::portal`]).
pub(crate) async fn exchange_code(
    state: &AppState,
    app: &App,
    code: &str,
    redirect_uri: Option<&str>,
    verifier: Option<&str>,
) -> Result<TokenResponse, ApiError> {
    let now = state.now();
    let invalid = |why: &'static str| OAuthError::invalid_grant(why);
    // Runs inside the redemption, before anything is stored: a failure stores the grant
    // revoked (the code is spent and cannot be retried); success mints the family's first
    // refresh token, stored with the grant.
    let check = |code_row: &store::AuthCode,
                 grant: &Grant|
     -> Result<Option<(String, RefreshToken)>, OAuthError> {
        let bound = protocol::token::CodeBinding {
            client_id: &code_row.client_id,
            redirect_uri: &code_row.redirect_uri,
            code_challenge: code_row.code_challenge.as_deref(),
        };
        protocol::token::check_code_redemption(
            &bound,
            &app.config.client_id,
            redirect_uri,
            verifier,
        )?;
        Ok(first_refresh_token(state, app, grant, now))
    };
    let mut first_refresh = None;
    let Some((sealed_code, sealed_grant)) = signin::authorization_codes::open(state, code).await?
    else {
        return Err(invalid("The authorization code is invalid.").into());
    };
    let redeemed = state
        .store
        .redeem_sealed_code(&sealed_code, &sealed_grant, now, |code_row, grant| {
            check(code_row, grant).map(|issued| {
                issued.map(|(token, row)| {
                    first_refresh = Some(token);
                    row
                })
            })
        })
        .await?
        .map_err(ApiError::from)?;
    let (code_row, grant) = match redeemed {
        CodeRedemption::Redeemed => (sealed_code, sealed_grant),
        CodeRedemption::Replayed { grant_id } => {
            // RFC 6749 §4.1.2 / RFC 9700 §4.5: the store has revoked every token of that grant.
            return Err(invalid("The authorization code has already been used.")
                .with_detail(format!("code replay; grant {grant_id} revoked"))
                .into());
        }
        CodeRedemption::Expired => {
            return Err(invalid("The authorization code has expired.").into());
        }
        CodeRedemption::GrantRevoked => {
            return Err(invalid("The authorization has been revoked.").into());
        }
    };
    // The redemption refused a user no longer active; the user the code was issued to is
    // kept by the replica that issued it, and read here otherwise.
    let user = match signin::authorization_codes::issued_user(state, &grant) {
        Some(user) => Some(user),
        None => active_user(state, &grant.user_id).await?,
    };
    let Some(user) = user else {
        state.store.revoke_grant(&grant.id, now).await?;
        return Err(invalid("The user is no longer active.").into());
    };
    let requested = grant_claims(&grant)?.id_token;
    let extra = released_claims(state, app, &user, &grant.scope, &requested).await?;
    let mut resp = issue_user_tokens(
        state,
        app,
        &grant,
        &user,
        &grant.scope,
        code_row.nonce,
        extra,
    )?;
    resp.refresh_token = first_refresh;
    Ok(resp)
}

async fn active_user(state: &AppState, id: &str) -> Result<Option<User>, ApiError> {
    Ok(state
        .store
        .user_by_id(id)
        .await?
        .filter(|u| u.status == UserStatus::Active))
}

async fn refresh(
    state: &AppState,
    ctx: &Ctx,
    app: &App,
    token: &str,
    scope: Option<Scope>,
) -> Result<TokenResponse, ApiError> {
    let now = state.now();
    let hash = token_hash(token);
    // The gate judges a live token before it is rotated, so a refusal (another network, a
    // policy) does not burn it; the rotation below checks everything again atomically.
    // A request the rotation will refuse anyway (a scope beyond the grant) is not a sign-in.
    let within = |grant: &Grant| {
        scope
            .as_ref()
            .is_none_or(|s| s.is_subset(&Scope::parse(&grant.scope).unwrap_or_default()))
    };
    let invalid = || OAuthError::invalid_grant("The refresh token is invalid, expired or revoked.");
    // One read serves the gate (the token, its grant, the user and their risk) and the
    // rotation (which checks again, atomically, what can change: the token being used, the
    // grant being revoked).
    let Some(read) = state.store.refresh_token_and_user(&hash).await? else {
        return Err(invalid().into());
    };
    let (old, grant) = (read.token, read.grant);
    let judged = if live(&old, &grant, app, now) && within(&grant) {
        let already = AlreadyRead::WithUser {
            user_risk: read.user_risk,
            sign_ins_version: read.sign_ins_version,
        };
        Some(judge_refresh(state, ctx, app, &grant, Some(read.user), already).await?)
    } else {
        None
    };
    let new_token = random_token();
    let new_hash = token_hash(&new_token);
    // Runs inside the rotation, before anything changes: a refresh token of another client, or
    // a scope beyond the grant, is refused without burning the token.
    let prepare = |old: &RefreshToken, grant: &Grant| -> Result<RefreshToken, OAuthError> {
        if old.client_id != app.config.client_id {
            return Err(invalid().with_detail("refresh token of another client"));
        }
        if !within(grant) {
            return Err(OAuthError::new(
                ErrorCode::InvalidScope,
                "The requested scope exceeds the original grant.",
            ));
        }
        Ok(refresh_token_row(state, app, grant, new_hash, now))
    };
    let rotation = state
        .store
        .rotate_read_refresh_token((old, grant), now, prepare)
        .await?
        .map_err(ApiError::from)?;
    let grant = match rotation {
        Rotation::Rotated { grant, .. } => grant,
        Rotation::Reused { grant_id } => {
            return Err(invalid()
                .with_detail(format!("refresh token reuse; grant {grant_id} revoked"))
                .into());
        }
        Rotation::Expired | Rotation::GrantRevoked | Rotation::NotFound => {
            return Err(invalid().into());
        }
    };
    let scope = scope.unwrap_or_else(|| Scope::parse(&grant.scope).unwrap_or_default());
    let user = match judged {
        Some(user) => user,
        // The token was not live a moment ago yet rotated now (a race): judge it now; it is
        // spent either way.
        None => {
            let user = state.store.user_by_id(&grant.user_id).await?;
            judge_refresh(state, ctx, app, &grant, user, AlreadyRead::Nothing).await?
        }
    };
    let scope = scope.to_string();
    let requested = grant_claims(&grant)?.id_token;
    let extra = released_claims(state, app, &user, &scope, &requested).await?;
    let mut resp = issue_user_tokens(state, app, &grant, &user, &scope, None, extra)?;
    resp.refresh_token = Some(new_token);
    Ok(resp)
}

/// Whether a refresh token (as read with its grant) is live for this client.
fn live(old: &RefreshToken, grant: &Grant, app: &App, now: i64) -> bool {
    old.used_at.is_none()
        && old.expires_at > now
        && old.client_id == app.config.client_id
        && grant.revoked_at.is_none()
        && grant.expires_at > now
}

/// The gate's judgement of a refresh; a refusal that calls for remediation ends the family.
async fn judge_refresh(
    state: &AppState,
    ctx: &Ctx,
    app: &App,
    grant: &Grant,
    user: Option<User>,
    read: AlreadyRead,
) -> Result<User, ApiError> {
    match signin::gate::judge_refresh(state, ctx.client(), app, grant, user, read).await {
        Ok(user) => Ok(user),
        Err(r) => {
            if r.revoke_family {
                state.store.revoke_grant(&grant.id, state.now()).await?;
            }
            Err(r.error.into())
        }
    }
}
