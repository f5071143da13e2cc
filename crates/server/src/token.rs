//! The token endpoint (authorization_code, refresh_token, client_credentials), client
//! authentication, and the tokens themselves.

use crate::config::GrantType;
use crate::secrets::{ct_eq, random_token, secret_digest, token_hash};
use crate::state::{App, AppState};
use crate::web::{ApiError, Ctx, no_store};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use protocol::client_auth::{self, AuthMethod, Presented};
use protocol::jwt::{AT_JWT_TYP, AccessTokenClaims, Audience, IdTokenClaims};
use protocol::params::Params;
use protocol::scope::Scope;
use protocol::token::{GrantRequest, parse_grant};
use protocol::{ErrorCode, OAuthError};
use risk::UserRiskClaim;
use serde::Serialize;
use std::sync::Arc;
use store::{CodeRedemption, Grant, RefreshToken, Rotation, User, UserStatus};

/// Parse a form-encoded body; anything else is refused (RFC 6749 §3.2).
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
    let text = std::str::from_utf8(body)
        .map_err(|_| OAuthError::invalid_request("The body is not UTF-8."))?;
    Params::parse(text)
}

/// Authenticate the calling client by its registered method.
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
    let unknown = || fail(OAuthError::invalid_client("Client authentication failed."));
    let client_id = match &presented {
        Presented::Secret { client_id, .. } | Presented::None { client_id } => client_id.clone(),
        Presented::Assertion {
            client_id,
            assertion,
        } => match client_id {
            Some(c) => c.clone(),
            None => assertion_subject(assertion).ok_or_else(unknown)?,
        },
    };
    let app = state
        .app(&client_id)
        .ok_or_else(|| {
            unknown()
                .error
                .with_detail(format!("unknown client {client_id}"))
        })
        .map_err(fail)?;
    if presented.method() != app.config.auth_method {
        return Err(fail(
            OAuthError::invalid_client("Client authentication failed.").with_detail(format!(
                "client {client_id} used {} but is registered for {}",
                presented.method().as_str(),
                app.config.auth_method.as_str()
            )),
        ));
    }
    match presented {
        Presented::Secret { secret, .. } => {
            let ok = app
                .secret_digest
                .is_some_and(|d| ct_eq(&d, &secret_digest(&secret)));
            if !ok {
                return Err(fail(
                    OAuthError::invalid_client("Client authentication failed.")
                        .with_detail("wrong secret"),
                ));
            }
        }
        Presented::Assertion { assertion, .. } => {
            let jwks = app.config.jwks.as_ref().ok_or_else(unknown)?;
            let token_endpoint = format!(
                "{}{}",
                state.config.issuer,
                protocol::discovery::paths::TOKEN
            );
            let now = state.now();
            let verified = protocol::jwt::verify_client_assertion(
                &assertion,
                &client_id,
                jwks,
                &[token_endpoint.as_str(), state.config.issuer.as_str()],
                now,
            )
            .map_err(fail)?;
            let fresh = state
                .store
                .remember_jti(&client_id, &verified.jti, verified.exp, now)
                .await?;
            if !fresh {
                return Err(fail(OAuthError::invalid_client(
                    "The client assertion was already used.",
                )));
            }
        }
        Presented::None { .. } => {}
    }
    Ok(app)
}

fn assertion_subject(assertion: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Sub {
        sub: String,
    }
    // Only to find which client's keys to verify with; the claims are verified afterwards.
    jsonwebtoken::dangerous::insecure_decode::<Sub>(assertion)
        .ok()
        .map(|d| d.claims.sub)
}

/// RFC 6749 §5.1 successful response.
#[derive(Debug, Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
    scope: String,
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

async fn exchange_code(
    state: &AppState,
    app: &App,
    code: &str,
    redirect_uri: Option<&str>,
    verifier: Option<&str>,
) -> Result<TokenResponse, ApiError> {
    let now = state.now();
    let invalid = |why: &'static str| OAuthError::invalid_grant(why);
    // Runs inside the redemption, after the code is marked consumed: a failure revokes the
    // grant in the same transaction (the code is spent and cannot be retried); success stores
    // the family's first refresh token in it.
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
    let redeemed = state
        .store
        .redeem_code_with(&token_hash(code), now, |code_row, grant| {
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
        CodeRedemption::Redeemed { code, grant } => (code, grant),
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
        CodeRedemption::NotFound => {
            return Err(invalid("The authorization code is invalid.").into());
        }
    };
    let user = active_user(state, &grant.user_id).await?;
    let Some(user) = user else {
        state.store.revoke_grant(&grant.id, now).await?;
        return Err(invalid("The user is no longer active.").into());
    };
    let extra = released_claims(state, app, &user, &grant.scope).await?;
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

/// The first refresh token of a grant's family, for the code exchange (if the client may use
/// the refresh grant): the token to hand out and the row to store.
fn first_refresh_token(
    state: &AppState,
    app: &App,
    grant: &Grant,
    now: i64,
) -> Option<(String, RefreshToken)> {
    if !app.config.grant_types.contains(&GrantType::RefreshToken) {
        return None;
    }
    let token = random_token();
    let row = RefreshToken {
        token_hash: token_hash(&token),
        grant_id: grant.id.clone(),
        client_id: app.config.client_id.clone(),
        scope: grant.scope.clone(),
        created_at: now,
        expires_at: (now + state.config.tokens.refresh_token).min(grant.expires_at),
        used_at: None,
    };
    Some((token, row))
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
    let judged = match live_refresh_grant(state, app, &hash, now).await? {
        Some(grant) => Some(judge_refresh(state, ctx, app, &grant).await?),
        None => None,
    };
    let invalid = || OAuthError::invalid_grant("The refresh token is invalid, expired or revoked.");
    let new_token = random_token();
    let new_hash = token_hash(&new_token);
    // Runs inside the rotation, before anything changes: a refresh token of another client, or
    // a scope beyond the grant, is refused without burning the token.
    let prepare = |old: &RefreshToken, grant: &Grant| -> Result<RefreshToken, OAuthError> {
        if old.client_id != app.config.client_id {
            return Err(invalid().with_detail("refresh token of another client"));
        }
        if let Some(s) = &scope
            && !s.is_subset(&Scope::parse(&grant.scope).unwrap_or_default())
        {
            return Err(OAuthError::new(
                ErrorCode::InvalidScope,
                "The requested scope exceeds the original grant.",
            ));
        }
        Ok(RefreshToken {
            token_hash: new_hash,
            grant_id: grant.id.clone(),
            client_id: app.config.client_id.clone(),
            scope: grant.scope.clone(),
            created_at: now,
            expires_at: (now + state.config.tokens.refresh_token).min(grant.expires_at),
            used_at: None,
        })
    };
    let rotation = state
        .store
        .rotate_refresh_token_with(&hash, now, prepare)
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
        None => judge_refresh(state, ctx, app, &grant).await?,
    };
    let scope = scope.to_string();
    let extra = released_claims(state, app, &user, &scope).await?;
    let mut resp = issue_user_tokens(state, app, &grant, &user, &scope, None, extra)?;
    resp.refresh_token = Some(new_token);
    Ok(resp)
}

/// The grant of a refresh token that is live for this client, without changing anything.
async fn live_refresh_grant(
    state: &AppState,
    app: &App,
    hash: &str,
    now: i64,
) -> Result<Option<Grant>, ApiError> {
    let Some(old) = state.store.refresh_token(hash).await? else {
        return Ok(None);
    };
    if old.used_at.is_some() || old.expires_at <= now || old.client_id != app.config.client_id {
        return Ok(None);
    }
    Ok(state
        .store
        .grant(&old.grant_id)
        .await?
        .filter(|g| g.revoked_at.is_none() && g.expires_at > now))
}

/// The gate's judgement of a refresh; a refusal that calls for remediation ends the family.
async fn judge_refresh(
    state: &AppState,
    ctx: &Ctx,
    app: &App,
    grant: &Grant,
) -> Result<User, ApiError> {
    match signin::gate::judge_refresh(state, ctx.client(), app, grant).await {
        Ok(user) => Ok(user),
        Err(r) => {
            if r.revoke_family {
                state.store.revoke_grant(&grant.id, state.now()).await?;
            }
            Err(r.error.into())
        }
    }
}

/// Sign the access token and ID token for a user grant (the caller adds the refresh token).
fn issue_user_tokens(
    state: &AppState,
    app: &App,
    grant: &Grant,
    user: &User,
    scope: &str,
    nonce: Option<String>,
    extra: serde_json::Map<String, serde_json::Value>,
) -> Result<TokenResponse, ApiError> {
    let now = state.now();
    let cfg = &state.config;
    let keys = state.keys();
    let scopes = Scope::parse(scope).unwrap_or_default();
    let at = AccessTokenClaims {
        iss: cfg.issuer.clone(),
        exp: now + cfg.tokens.access_token,
        aud: Audience::One(cfg.issuer.clone()),
        sub: user.id.clone(),
        client_id: app.config.client_id.clone(),
        iat: now,
        jti: uuid::Uuid::new_v4().to_string(),
        scope: Some(scope.to_owned()),
        auth_time: Some(grant.auth_time),
        acr: grant.acr.clone(),
        amr: Some(grant.amr.clone()),
        sid: grant.session_id.clone(),
        tid: cfg.tenant_id.clone(),
        gid: Some(grant.id.clone()),
    };
    let access_token = keys
        .sign(cfg.signing_alg, AT_JWT_TYP, &at)
        .map_err(OAuthError::from)?;
    let id_token = if scopes.contains("openid") {
        let claims = IdTokenClaims {
            iss: cfg.issuer.clone(),
            sub: user.id.clone(),
            aud: Audience::One(app.config.client_id.clone()),
            exp: now + cfg.tokens.id_token,
            iat: now,
            auth_time: Some(grant.auth_time),
            nonce,
            sid: grant.session_id.clone(),
            amr: Some(grant.amr.clone()),
            acr: grant.acr.clone(),
            azp: Some(app.config.client_id.clone()),
            tid: cfg.tenant_id.clone(),
            extra,
        };
        Some(
            keys.sign(app.config.id_token_alg, "JWT", &claims)
                .map_err(OAuthError::from)?,
        )
    } else {
        None
    };
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: cfg.tokens.access_token,
        refresh_token: None,
        id_token,
        scope: scope.to_owned(),
    })
}

/// Every claim about the user an app receives in the ID token and from userinfo (besides
/// `sub`): profile and email by scope, `user_type`, for a guest `idp` and `home_tenant`, and
/// for an app registered as a partner tenant the member's `user_risk` (DESIGN.md §4; no other
/// app ever receives it).
pub async fn released_claims(
    state: &AppState,
    app: &App,
    user: &User,
    scope: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, store::StoreError> {
    let scopes = Scope::parse(scope).unwrap_or_default();
    let mut m = user_claims(user, &scopes);
    m.insert("user_type".into(), user.user_type.as_str().into());
    if let Some(partner_id) = &user.partner_id {
        let idp = state
            .partner(partner_id)
            .map_or_else(|| partner_id.clone(), |p| p.config.issuer.clone());
        m.insert("idp".into(), idp.into());
        m.insert("home_tenant".into(), partner_id.clone().into());
    } else if app.config.partner_tenant && scopes.contains("openid") {
        let claim = home_user_risk(state, user).await?;
        let value =
            serde_json::to_value(claim).map_err(|e| store::StoreError::Corrupt(e.to_string()))?;
        m.insert("user_risk".into(), value);
    }
    Ok(m)
}

/// The `user_risk` claim for a member of this tenant: what the store holds, or no risk.
async fn home_user_risk(state: &AppState, user: &User) -> Result<UserRiskClaim, store::StoreError> {
    // `current` ages low detections out first, so the claim never says more than the home knows.
    let status = crate::user_risk::current(state, &user.id).await?;
    let updated_at = state
        .store
        .user_risk(&user.id)
        .await?
        .map_or(user.created_at, |r| r.updated_at);
    Ok(UserRiskClaim {
        level: status.risk_level,
        state: status.risk_state,
        detail: status.risk_detail,
        updated_at,
    })
}

/// Profile and email claims released by scope (OIDC Core §5.4).
pub fn user_claims(user: &User, scopes: &Scope) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    if scopes.contains("profile") {
        m.insert("name".into(), user.display_name.clone().into());
        if let Some(g) = &user.given_name {
            m.insert("given_name".into(), g.clone().into());
        }
        if let Some(f) = &user.family_name {
            m.insert("family_name".into(), f.clone().into());
        }
        m.insert("preferred_username".into(), user.email.clone().into());
        m.insert("updated_at".into(), user.updated_at.into());
    }
    if scopes.contains("email") {
        m.insert("email".into(), user.email.clone().into());
        // Addresses are assigned by the directory's administrators, not self-asserted.
        m.insert("email_verified".into(), true.into());
    }
    m
}

fn client_credentials(
    state: &AppState,
    app: &App,
    scope: Option<Scope>,
) -> Result<TokenResponse, ApiError> {
    if app.config.auth_method == AuthMethod::None {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "Public clients cannot use client_credentials.",
        )
        .into());
    }
    let scope = protocol::token::client_credentials_scope(scope, &app.config.scopes)?;
    let now = state.now();
    let cfg = &state.config;
    let at = AccessTokenClaims {
        iss: cfg.issuer.clone(),
        exp: now + cfg.tokens.access_token,
        aud: Audience::One(cfg.issuer.clone()),
        sub: app.config.client_id.clone(),
        client_id: app.config.client_id.clone(),
        iat: now,
        jti: uuid::Uuid::new_v4().to_string(),
        scope: Some(scope.to_string()),
        auth_time: None,
        acr: None,
        amr: None,
        sid: None,
        tid: cfg.tenant_id.clone(),
        gid: None,
    };
    let access_token = state
        .keys()
        .sign(cfg.signing_alg, AT_JWT_TYP, &at)
        .map_err(OAuthError::from)?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: cfg.tokens.access_token,
        refresh_token: None,
        id_token: None,
        scope: scope.to_string(),
    })
}

/// Verify one of our access tokens and that it has not been revoked.
pub async fn verify_access_token(
    state: &AppState,
    token: &str,
) -> Result<AccessTokenClaims, OAuthError> {
    let now = state.now();
    let claims: AccessTokenClaims = state.keys().verify(token, AT_JWT_TYP, now)?;
    if claims.iss != state.config.issuer {
        return Err(OAuthError::invalid_token(
            "The token was issued by someone else.",
        ));
    }
    protocol::jwt::check_times(claims.exp, Some(claims.iat), None, now)?;
    let store_err = |e: store::StoreError| OAuthError::server_error(e.to_string());
    match &claims.gid {
        Some(gid) => {
            let live = state
                .store
                .grant(gid)
                .await
                .map_err(store_err)?
                .is_some_and(|g| g.revoked_at.is_none());
            if !live {
                return Err(OAuthError::invalid_token("The token has been revoked."));
            }
        }
        None => {
            if state
                .store
                .access_token_revoked(&claims.jti)
                .await
                .map_err(store_err)?
            {
                return Err(OAuthError::invalid_token("The token has been revoked."));
            }
        }
    }
    Ok(claims)
}
