//! Tokens: who a client is at the back-channel endpoints, the tokens this tenant mints (RFC 9068
//! access tokens, ID tokens, refresh tokens), checking one of its access tokens, and what an app
//! is told about a user.
//!
//! No HTTP here: the server's token, userinfo, revocation, introspection and admin handlers read
//! the request (headers, form body), call these, and render the result or the [`OAuthError`].

use crate::config::{AppConfig, GrantType};
use crate::secrets::{random_token, token_hash};
use crate::{App, Directory};
use protocol::claims::ClaimsRequest;
use protocol::client_auth::{AuthMethod, Presented};
use protocol::jwt::{AT_JWT_TYP, AccessTokenClaims, Audience, IdTokenClaims};
use protocol::scope::{Scope, scope_of_claim};
use protocol::{ErrorCode, OAuthError};
use risk::UserRiskClaim;
use serde::Serialize;
use std::collections::BTreeSet;
use std::sync::Arc;
use store::{Grant, RefreshToken, StoreError, User};

/// Claims about a user, by name, as they go into an ID token or a userinfo response.
pub type UserClaims = serde_json::Map<String, serde_json::Value>;

/// A successful token response (RFC 6749 §5.1), serialised as the token endpoint's JSON body.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    /// The access token (an RFC 9068 `at+jwt`).
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Lifetime of the access token, in seconds.
    pub expires_in: i64,
    /// The next refresh token of the grant's family, if the client may refresh.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The ID token, when `openid` was granted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// The scope the access token carries.
    pub scope: String,
}

/// Authenticate a client by what it presented (parsed from the `Authorization` header and the
/// form by [`protocol::client_auth::presented`]): the app must exist and be registered for the
/// method used; a secret is compared by digest in constant time; a `private_key_jwt` assertion
/// must verify against the app's keys for this tenant's token endpoint (or issuer) and its
/// `jti` must not have been seen before (RFC 7523 §3, replay protection in the store).
///
/// Every refusal is `invalid_client` with the same description (the detail, for logs, says
/// why); a store failure is a `server_error`.
pub async fn authenticate_client(
    dir: &Directory,
    presented: Presented,
) -> Result<Arc<App>, OAuthError> {
    let failed = || OAuthError::invalid_client("Client authentication failed.");
    let client_id = match &presented {
        Presented::Secret { client_id, .. } | Presented::None { client_id } => client_id.clone(),
        Presented::Assertion {
            client_id,
            assertion,
        } => match client_id {
            Some(c) => c.clone(),
            None => assertion_subject(assertion).ok_or_else(failed)?,
        },
    };
    let app = dir
        .app(&client_id)
        .await
        .map_err(store_failure)?
        .ok_or_else(|| failed().with_detail(format!("unknown client {client_id}")))?;
    if presented.method() != app.config.auth_method {
        return Err(failed().with_detail(format!(
            "client {client_id} used {} but is registered for {}",
            presented.method().as_str(),
            app.config.auth_method.as_str()
        )));
    }
    match presented {
        Presented::Secret { secret, .. } => {
            if !app.accepts_secret(&secret, dir.now()) {
                return Err(failed().with_detail("wrong secret"));
            }
        }
        Presented::Assertion { assertion, .. } => {
            let jwks = app.config.jwks.as_ref().ok_or_else(failed)?;
            let token_endpoint =
                format!("{}{}", dir.config.issuer, protocol::discovery::paths::TOKEN);
            let now = dir.now();
            let verified = protocol::jwt::verify_client_assertion(
                &assertion,
                &client_id,
                jwks,
                &[token_endpoint.as_str(), dir.config.issuer.as_str()],
                now,
            )?;
            let fresh = dir
                .store
                .remember_jti(&client_id, &verified.jti, verified.exp, now)
                .await
                .map_err(store_failure)?;
            if !fresh {
                return Err(OAuthError::invalid_client(
                    "The client assertion was already used.",
                ));
            }
        }
        Presented::None { .. } => {}
    }
    Ok(app)
}

/// The `sub` of an unverified assertion: only to find which client's keys to verify it with;
/// the claims are verified afterwards.
fn assertion_subject(assertion: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Sub {
        sub: String,
    }
    jsonwebtoken::dangerous::insecure_decode::<Sub>(assertion)
        .ok()
        .map(|d| d.claims.sub)
}

/// A store failure as an OAuth error: `temporarily_unavailable` (503) while the database cannot
/// be reached, so the client knows to try again later (RFC 6749 §4.1.2.1 defines it for the
/// authorization endpoint; tenantd answers it at every endpoint); `server_error` otherwise.
pub fn store_failure(e: StoreError) -> OAuthError {
    if e.is_unavailable() {
        return OAuthError::new(
            protocol::ErrorCode::TemporarilyUnavailable,
            "The service cannot reach its database right now; try again later.",
        )
        .with_detail(e.to_string());
    }
    OAuthError::server_error(e.to_string())
}

/// The stored row of a new refresh token (`token_hash` is [`token_hash`] of the token handed
/// out) in `grant`'s family for `app`: the grant's scope, and the configured refresh token
/// lifetime, never beyond the grant's own expiry.
pub fn refresh_token_row(
    dir: &Directory,
    app: &App,
    grant: &Grant,
    token_hash: String,
    now: i64,
) -> RefreshToken {
    RefreshToken {
        token_hash,
        grant_id: grant.id.clone(),
        client_id: app.config.client_id.clone(),
        scope: grant.scope.clone(),
        created_at: now,
        expires_at: (now + dir.config.tokens.refresh_token).min(grant.expires_at),
        used_at: None,
    }
}

/// The first refresh token of a grant's family, for the code exchange: the token to hand out
/// and the row to store, or `None` if the client may not use the refresh grant.
pub fn first_refresh_token(
    dir: &Directory,
    app: &App,
    grant: &Grant,
    now: i64,
) -> Option<(String, RefreshToken)> {
    if !app.config.grant_types.contains(&GrantType::RefreshToken) {
        return None;
    }
    let token = random_token();
    let row = refresh_token_row(dir, app, grant, token_hash(&token), now);
    Some((token, row))
}

/// Sign the access token (RFC 9068 `at+jwt`, with the grant id `gid` so it dies with the grant)
/// and, if `scope` has `openid`, the ID token (with `nonce` and the `extra` claims, see
/// [`released_claims`]) for a user's grant. The caller adds the refresh token.
pub fn issue_user_tokens(
    dir: &Directory,
    app: &App,
    grant: &Grant,
    user: &User,
    scope: &str,
    nonce: Option<String>,
    extra: UserClaims,
) -> Result<TokenResponse, OAuthError> {
    let now = dir.now();
    let cfg = &dir.config;
    let keys = dir.keys();
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
    let access_token = keys.sign(cfg.signing_alg, AT_JWT_TYP, &at)?;
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
        Some(keys.sign(app.config.id_token_alg, "JWT", &claims)?)
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

/// The client_credentials grant (RFC 6749 §4.4): an access token about the app itself (`sub` =
/// client id, no grant: it is revoked by its `jti`), for the requested scope within what the
/// app is registered for. Public clients are refused.
pub fn client_credentials(
    dir: &Directory,
    app: &App,
    scope: Option<Scope>,
) -> Result<TokenResponse, OAuthError> {
    if app.config.auth_method == AuthMethod::None {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "Public clients cannot use client_credentials.",
        ));
    }
    let scope = protocol::token::client_credentials_scope(scope, &app.config.scopes)?;
    let now = dir.now();
    let cfg = &dir.config;
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
    let access_token = dir.keys().sign(cfg.signing_alg, AT_JWT_TYP, &at)?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: cfg.tokens.access_token,
        refresh_token: None,
        id_token: None,
        scope: scope.to_string(),
    })
}

/// Verify one of our access tokens: signature (`at+jwt`, a key of ours), issuer, times, and
/// that it has not been revoked: a user token's grant (`gid`) must still be live, an app token's
/// `jti` must not be on the revocation list. Refusals are `invalid_token`; a store failure is a
/// `server_error`.
pub async fn verify_access_token(
    dir: &Directory,
    token: &str,
) -> Result<AccessTokenClaims, OAuthError> {
    verify_access_token_grant(dir, token)
        .await
        .map(|(claims, _)| claims)
}

/// [`verify_access_token`], with the live grant of a user's token (`None` for an app's token),
/// read once for both.
pub async fn verify_access_token_grant(
    dir: &Directory,
    token: &str,
) -> Result<(AccessTokenClaims, Option<Grant>), OAuthError> {
    let now = dir.now();
    let claims: AccessTokenClaims = dir.keys().verify(token, AT_JWT_TYP, now)?;
    if claims.iss != dir.config.issuer {
        return Err(OAuthError::invalid_token(
            "The token was issued by someone else.",
        ));
    }
    protocol::jwt::check_times(claims.exp, Some(claims.iat), None, now)?;
    let revoked = || OAuthError::invalid_token("The token has been revoked.");
    let grant = match &claims.gid {
        Some(gid) => Some(
            dir.store
                .grant(gid)
                .await
                .map_err(store_failure)?
                .filter(|g| g.revoked_at.is_none())
                .ok_or_else(revoked)?,
        ),
        None if dir
            .store
            .access_token_revoked(&claims.jti)
            .await
            .map_err(store_failure)? =>
        {
            return Err(revoked());
        }
        None => None,
    };
    Ok((claims, grant))
}

/// The `claims` request parameter a grant was made with (OIDC Core §5.5); empty for a grant
/// made without one.
pub fn grant_claims(grant: &Grant) -> Result<ClaimsRequest, StoreError> {
    grant.claims.as_deref().map_or_else(
        || Ok(ClaimsRequest::default()),
        |json| {
            serde_json::from_str(json)
                .map_err(|e| StoreError::Corrupt(format!("grants.claims of {}: {e}", grant.id)))
        },
    )
}

/// Every claim about the user an app receives in the ID token and from userinfo (besides
/// `sub`): profile and email by scope or asked for by name (`requested`, the grant's `claims`
/// request for the ID token or for userinfo, see [`grant_claims`]), `user_type`, for a guest `idp` and `home_tenant`, and
/// for an app registered as a partner tenant the member's `user_risk` (no other
/// app ever receives it). The rules are [`claims_for`]; this looks up what they need.
pub async fn released_claims(
    dir: &Directory,
    app: &App,
    user: &User,
    scope: &str,
    requested: &BTreeSet<String>,
) -> Result<UserClaims, StoreError> {
    let scopes = Scope::parse(scope).unwrap_or_default();
    let home_issuer = user
        .partner_id
        .as_deref()
        .and_then(|id| dir.partner(id))
        .map(|p| p.config.issuer.clone());
    let user_risk = if receives_user_risk(&app.config, user, &scopes) {
        Some(home_user_risk(dir, user).await?)
    } else {
        None
    };
    claims_for(
        &app.config,
        user,
        &scopes,
        requested,
        home_issuer.as_deref(),
        user_risk.as_ref(),
    )
    .map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Whether `app` receives `user`'s `user_risk` claim for `scopes`: only a member (a user of
/// this tenant, not a guest), only an app registered as `partner_tenant`, and only with
/// `openid`.
pub fn receives_user_risk(app: &AppConfig, user: &User, scopes: &Scope) -> bool {
    user.partner_id.is_none() && app.partner_tenant && scopes.contains("openid")
}

/// The release rules of [`released_claims`], given what the directory knows: [`user_claims`]
/// by scope and by name; `user_type`; for a guest, `idp` (`home_issuer`, the issuer of the partner they
/// come from, or the partner id if it is no longer configured) and `home_tenant`; for a member,
/// `user_risk` if [`receives_user_risk`] — a claim passed for anyone else is dropped, never
/// released.
pub fn claims_for(
    app: &AppConfig,
    user: &User,
    scopes: &Scope,
    requested: &BTreeSet<String>,
    home_issuer: Option<&str>,
    user_risk: Option<&UserRiskClaim>,
) -> Result<UserClaims, serde_json::Error> {
    let mut m = user_claims(user, scopes, requested);
    m.insert("user_type".into(), user.user_type.as_str().into());
    if let Some(partner_id) = &user.partner_id {
        let idp = home_issuer.unwrap_or(partner_id);
        m.insert("idp".into(), idp.into());
        m.insert("home_tenant".into(), partner_id.clone().into());
    } else if receives_user_risk(app, user, scopes)
        && let Some(claim) = user_risk
    {
        m.insert("user_risk".into(), serde_json::to_value(claim)?);
    }
    Ok(m)
}

/// The `user_risk` claim for a member of this tenant: what the store holds, or no risk.
async fn home_user_risk(dir: &Directory, user: &User) -> Result<UserRiskClaim, StoreError> {
    // `current` ages low detections out first, so the claim never says more than the home knows.
    let crate::user_risk::RiskSince { status, updated_at } =
        crate::user_risk::current_since(dir, &user.id).await?;
    let updated_at = updated_at.unwrap_or(user.created_at);
    Ok(UserRiskClaim {
        level: status.risk_level,
        state: status.risk_state,
        detail: status.risk_detail,
        updated_at,
    })
}

/// Profile and email claims (OIDC Core §5.4) the user has: those of a granted scope, and those
/// `requested` by name with the `claims` parameter (§5.5) even without their scope (the user
/// consented to them as to that scope, see `AuthorizationRequest::consent_scopes`).
pub fn user_claims(user: &User, scopes: &Scope, requested: &BTreeSet<String>) -> UserClaims {
    let released = |claim: &str| {
        requested.contains(claim) || scope_of_claim(claim).is_some_and(|s| scopes.contains(s))
    };
    let mut m = serde_json::Map::new();
    let mut put = |claim: &str, value: serde_json::Value| {
        if released(claim) {
            m.insert(claim.into(), value);
        }
    };
    put("name", user.display_name.clone().into());
    if let Some(g) = &user.given_name {
        put("given_name", g.clone().into());
    }
    if let Some(f) = &user.family_name {
        put("family_name", f.clone().into());
    }
    put("preferred_username", user.email.clone().into());
    put("updated_at", user.updated_at.into());
    put("email", user.email.clone().into());
    // Addresses are assigned by the directory's administrators, not self-asserted.
    put("email_verified", true.into());
    m
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::passwords::Passwords;
    use crate::protection::Protection;
    use crate::{OffsetClock, keys};
    use protocol::jwt::{KeySet, SigningAlg, SigningKey};
    use risk::{RiskDetail, RiskLevel, RiskState};
    use store::{AuthCode, CodeRedemption, NewUser, Session, Store};

    const ISSUER: &str = "https://login.contoso.test";

    const CONFIG: &str = r#"
[tenant]
id = "contoso"
display_name = "Contoso"
issuer = "https://login.contoso.test"
[server]
listen = "127.0.0.1:9443"
plain_http = true
[database]
url = "sqlite://unused.db"
[[apps]]
client_id = "web"
client_secret = "web-secret"
redirect_uris = ["https://web.test/cb"]
[[apps]]
client_id = "spa"
token_endpoint_auth_method = "none"
redirect_uris = ["https://spa.test/cb"]
grant_types = ["authorization_code"]
[[apps]]
client_id = "daemon"
client_secret = "daemon-secret"
token_endpoint_auth_method = "client_secret_post"
grant_types = ["client_credentials"]
scopes = ["admin"]
[[apps]]
client_id = "fabrikam"
client_secret = "fabrikam-secret"
redirect_uris = ["https://fabrikam.test/federation/callback"]
partner_tenant = true
"#;

    /// A directory over an in-memory store, with its keys, the apps above, and `signer`: a
    /// `private_key_jwt` app whose private key is returned.
    async fn directory() -> (Directory, KeySet) {
        let mut config = Config::parse(CONFIG, "test.toml").unwrap();
        let pem = keys::generate_pem(SigningAlg::ES256).unwrap();
        let client_key = SigningKey::from_pkcs8_pem(SigningAlg::ES256, &pem, 0, None).unwrap();
        let mut signer = config.apps[0].clone();
        signer.client_id = "signer".into();
        signer.client_secret = None;
        signer.auth_method = AuthMethod::PrivateKeyJwt;
        signer.jwks = Some(jsonwebtoken::jwk::JwkSet {
            keys: vec![client_key.public_jwk().clone()],
        });
        config.apps.push(signer);
        let store = Store::connect(
            "sqlite::memory:",
            std::sync::Arc::new(crate::vault::Vault::ephemeral()),
        )
        .await
        .unwrap();
        let clock = Arc::new(OffsetClock::default());
        let now = crate::Clock::now(&*clock);
        keys::ensure_keys(&store, now).await.unwrap();
        let keyset = keys::load(&store, 3600, now).await.unwrap();
        let passwords = Passwords::new(&config.passwords).unwrap();
        let protection = Protection::load(config.risk.clone(), &store).await.unwrap();
        let dir = Directory::new(
            config,
            store,
            clock,
            passwords,
            keyset,
            Vec::new(),
            protection,
        );
        (dir, KeySet::new(vec![client_key], 3600))
    }

    fn secret(method: AuthMethod, client_id: &str, secret: &str) -> Presented {
        Presented::Secret {
            method,
            client_id: client_id.into(),
            secret: secret.into(),
        }
    }

    fn assertion(client_key: &KeySet, sub: &str, aud: &str, jti: &str, now: i64) -> String {
        let claims = serde_json::json!({
            "iss": sub, "sub": sub, "aud": aud, "jti": jti, "iat": now, "exp": now + 60,
        });
        client_key.sign(SigningAlg::ES256, "JWT", &claims).unwrap()
    }

    async fn member(dir: &Directory, id: &str) -> User {
        dir.store
            .insert_user(&NewUser {
                id: id.into(),
                email: format!("{id}@contoso.test"),
                display_name: "Adele Vance".into(),
                given_name: Some("Adele".into()),
                family_name: None,
                password_hash: None,
                must_change_password: false,
                now: dir.now(),
            })
            .await
            .unwrap()
    }

    /// A live grant of `user` to `client_id` in their session `s1`, stored by redeeming its
    /// sealed code, as `/token` does.
    async fn grant(dir: &Directory, user: &User, client_id: &str, scope: &str) -> Grant {
        let now = dir.now();
        dir.store
            .create_session(&Session {
                id: "s1".into(),
                token_hash: token_hash(&random_token()),
                user_id: user.id.clone(),
                auth_time: now,
                amr: vec!["pwd".into()],
                acr: None,
                created_at: now,
                expires_at: now + 3600,
                revoked_at: None,
                federation_json: None,
            })
            .await
            .unwrap();
        let grant = Grant {
            id: uuid::Uuid::new_v4().to_string(),
            client_id: client_id.into(),
            user_id: user.id.clone(),
            session_id: Some("s1".into()),
            scope: scope.into(),
            auth_time: now,
            amr: vec!["pwd".into()],
            acr: None,
            offline: false,
            created_at: now,
            expires_at: now + 600,
            revoked_at: None,
            claims: None,
        };
        let code = AuthCode {
            grant_id: grant.id.clone(),
            client_id: client_id.into(),
            redirect_uri: "https://web.test/cb".into(),
            scope: scope.into(),
            nonce: None,
            code_challenge: None,
            code_challenge_method: None,
            created_at: now,
            expires_at: now + 60,
        };
        let redeemed = dir
            .store
            .redeem_sealed_code(&code, &grant, now, |_, _| {
                Ok::<_, std::convert::Infallible>(None)
            })
            .await
            .unwrap();
        assert!(
            matches!(redeemed, Ok(CodeRedemption::Redeemed)),
            "{redeemed:?}"
        );
        grant
    }

    fn app_config(partner_tenant: bool) -> AppConfig {
        let mut app = Config::parse(CONFIG, "test.toml").unwrap().apps[0].clone();
        app.partner_tenant = partner_tenant;
        app
    }

    fn scopes(s: &str) -> Scope {
        Scope::parse(s).unwrap()
    }

    fn unnamed() -> BTreeSet<String> {
        BTreeSet::new()
    }

    fn named(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    const HIGH: UserRiskClaim = UserRiskClaim {
        level: RiskLevel::High,
        state: RiskState::AtRisk,
        detail: RiskDetail::None,
        updated_at: 1500,
    };

    #[test]
    fn profile_and_email_follow_the_scope() {
        let member = crate::testing::user(None);
        let none = claims_for(
            &app_config(false),
            &member,
            &scopes("openid"),
            &unnamed(),
            None,
            None,
        )
        .unwrap();
        assert_eq!(
            serde_json::Value::Object(none),
            serde_json::json!({"user_type": "member"})
        );
        let all = claims_for(
            &app_config(false),
            &member,
            &scopes("openid profile email"),
            &unnamed(),
            None,
            None,
        )
        .unwrap();
        assert_eq!(all["name"], "Adele Vance");
        assert_eq!(all["given_name"], "Adele");
        assert_eq!(all["family_name"], "Vance");
        assert_eq!(all["preferred_username"], "adele@contoso.test");
        assert_eq!(all["updated_at"], 2000);
        assert_eq!(all["email"], "adele@contoso.test");
        assert_eq!(all["email_verified"], true);
        let email = user_claims(&member, &scopes("email"), &unnamed());
        assert!(email.contains_key("email") && !email.contains_key("name"));
    }

    #[test]
    fn claims_asked_for_by_name_are_released_without_their_scope() {
        let member = crate::testing::user(None);
        let openid = scopes("openid");
        let c = user_claims(&member, &openid, &named(&["email", "name"]));
        assert_eq!(
            serde_json::Value::Object(c),
            serde_json::json!({"email": "adele@contoso.test", "name": "Adele Vance"})
        );
        // Only what the user has: no middle name, and nothing that is not a standard claim.
        let mut no_family = member.clone();
        no_family.family_name = None;
        let c = user_claims(
            &no_family,
            &openid,
            &named(&["family_name", "middle_name", "user_risk"]),
        );
        assert!(c.is_empty(), "{c:?}");
        // By name and by scope together; the rest of the scope's claims stay out.
        let c = user_claims(&member, &scopes("openid email"), &named(&["given_name"]));
        let mut keys: Vec<_> = c.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["email", "email_verified", "given_name"]);
        // A member's user_risk is never released by name.
        let c = claims_for(
            &app_config(false),
            &member,
            &openid,
            &named(&["user_risk"]),
            None,
            Some(&HIGH),
        )
        .unwrap();
        assert!(!c.contains_key("user_risk"));
    }

    #[tokio::test]
    async fn a_grants_claims_request_is_read_back() {
        let (dir, _) = directory().await;
        let adele = member(&dir, "adele").await;
        let mut g = grant(&dir, &adele, "web", "openid").await;
        assert!(grant_claims(&g).unwrap().is_empty());
        g.claims = Some(r#"{"id_token":["name"],"userinfo":["email"]}"#.into());
        let requested = grant_claims(&g).unwrap();
        assert_eq!(requested.id_token, named(&["name"]));
        assert_eq!(requested.userinfo, named(&["email"]));
        let web = dir.app("web").await.unwrap().unwrap();
        let c = released_claims(&dir, &web, &adele, &g.scope, &requested.userinfo)
            .await
            .unwrap();
        assert_eq!(c["email"], "adele@contoso.test");
        assert!(!c.contains_key("name"));
        g.claims = Some("{".into());
        assert!(matches!(grant_claims(&g), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn only_partner_tenant_apps_receive_a_members_user_risk() {
        let member = crate::testing::user(None);
        let openid = scopes("openid");
        let partner = claims_for(
            &app_config(true),
            &member,
            &openid,
            &unnamed(),
            None,
            Some(&HIGH),
        )
        .unwrap();
        assert_eq!(
            partner["user_risk"],
            serde_json::json!({"level": "high", "state": "atRisk", "detail": "none", "updated_at": 1500})
        );
        assert!(receives_user_risk(&app_config(true), &member, &openid));
        // Any other app: never, even when a claim is at hand.
        assert!(!receives_user_risk(&app_config(false), &member, &openid));
        let other = claims_for(
            &app_config(false),
            &member,
            &openid,
            &unnamed(),
            None,
            Some(&HIGH),
        )
        .unwrap();
        assert!(!other.contains_key("user_risk"));
        // A partner tenant's app without openid gets no claims to carry it.
        let api = scopes("profile");
        assert!(!receives_user_risk(&app_config(true), &member, &api));
        let api = claims_for(
            &app_config(true),
            &member,
            &api,
            &unnamed(),
            None,
            Some(&HIGH),
        )
        .unwrap();
        assert!(!api.contains_key("user_risk"));
    }

    #[test]
    fn guests_carry_their_home_and_never_a_user_risk() {
        let guest = crate::testing::user(Some("fabrikam"));
        let openid = scopes("openid");
        assert!(!receives_user_risk(&app_config(true), &guest, &openid));
        let c = claims_for(
            &app_config(true),
            &guest,
            &openid,
            &unnamed(),
            Some("https://login.fabrikam.test"),
            Some(&HIGH),
        )
        .unwrap();
        assert_eq!(
            serde_json::Value::Object(c),
            serde_json::json!({
                "user_type": "guest",
                "idp": "https://login.fabrikam.test",
                "home_tenant": "fabrikam",
            })
        );
        // A partner no longer configured is named by its id.
        let c = claims_for(&app_config(false), &guest, &openid, &unnamed(), None, None).unwrap();
        assert_eq!(c["idp"], "fabrikam");
    }

    #[tokio::test]
    async fn released_claims_read_a_members_risk_for_partner_tenants_only() {
        let (dir, _) = directory().await;
        let adele = member(&dir, "adele").await;
        let fabrikam = dir.app("fabrikam").await.unwrap().unwrap();
        let web = dir.app("web").await.unwrap().unwrap();
        let c = released_claims(&dir, &fabrikam, &adele, "openid email", &unnamed())
            .await
            .unwrap();
        assert_eq!(c["user_risk"]["level"], "none");
        assert_eq!(c["user_risk"]["updated_at"], adele.created_at);
        assert_eq!(c["email"], "adele@contoso.test");
        let c = released_claims(&dir, &web, &adele, "openid email", &unnamed())
            .await
            .unwrap();
        assert!(!c.contains_key("user_risk"));
    }

    #[tokio::test]
    async fn clients_authenticate_only_by_their_registered_method() {
        let (dir, _) = directory().await;
        let basic = AuthMethod::ClientSecretBasic;
        let app = authenticate_client(&dir, secret(basic, "web", "web-secret"))
            .await
            .unwrap();
        assert_eq!(app.config.client_id, "web");
        let refused = [
            secret(basic, "web", "web-secre"),
            secret(AuthMethod::ClientSecretPost, "web", "web-secret"),
            secret(basic, "nobody", "web-secret"),
            Presented::None {
                client_id: "web".into(),
            },
        ];
        for presented in refused {
            let e = authenticate_client(&dir, presented).await.unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidClient);
            assert_eq!(e.description, "Client authentication failed.");
        }
        let public = Presented::None {
            client_id: "spa".into(),
        };
        assert!(authenticate_client(&dir, public).await.is_ok());
    }

    #[tokio::test]
    async fn a_client_assertion_is_accepted_once() {
        let (dir, client_key) = directory().await;
        let now = dir.now();
        let token_endpoint = format!("{ISSUER}{}", protocol::discovery::paths::TOKEN);
        let signed = assertion(&client_key, "signer", &token_endpoint, "j1", now);
        let presented = |client_id: Option<&str>| Presented::Assertion {
            client_id: client_id.map(str::to_owned),
            assertion: signed.clone(),
        };
        // Without a client_id parameter the assertion's `sub` names the client.
        let app = authenticate_client(&dir, presented(None)).await.unwrap();
        assert_eq!(app.config.client_id, "signer");
        let replay = authenticate_client(&dir, presented(Some("signer")))
            .await
            .unwrap_err();
        assert_eq!(replay.code, ErrorCode::InvalidClient);
        assert_eq!(replay.description, "The client assertion was already used.");
        // The issuer is an accepted audience too; another audience is not.
        let to_issuer = assertion(&client_key, "signer", ISSUER, "j2", now);
        let ok = Presented::Assertion {
            client_id: None,
            assertion: to_issuer,
        };
        assert!(authenticate_client(&dir, ok).await.is_ok());
        let elsewhere = assertion(&client_key, "signer", "https://other.test", "j3", now);
        let bad = Presented::Assertion {
            client_id: None,
            assertion: elsewhere,
        };
        let e = authenticate_client(&dir, bad).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidClient);
        // A secret client cannot present an assertion.
        let web = assertion(&client_key, "web", &token_endpoint, "j4", now);
        let web = Presented::Assertion {
            client_id: None,
            assertion: web,
        };
        assert!(authenticate_client(&dir, web).await.is_err());
    }

    #[tokio::test]
    async fn app_tokens_verify_until_their_jti_is_revoked() {
        let (dir, _) = directory().await;
        let daemon = dir.app("daemon").await.unwrap().unwrap();
        let issued = client_credentials(&dir, &daemon, Some(scopes("admin"))).unwrap();
        assert_eq!(issued.token_type, "Bearer");
        assert_eq!(issued.scope, "admin");
        assert!(issued.refresh_token.is_none() && issued.id_token.is_none());
        let claims = verify_access_token(&dir, &issued.access_token)
            .await
            .unwrap();
        assert_eq!(claims.sub, "daemon");
        assert_eq!(claims.client_id, "daemon");
        assert_eq!(claims.tid, "contoso");
        assert!(claims.gid.is_none());
        dir.store
            .revoke_access_token(&claims.jti, claims.exp)
            .await
            .unwrap();
        let e = verify_access_token(&dir, &issued.access_token)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidToken);
        // Beyond the registered scopes, or a public client: refused.
        let e = client_credentials(&dir, &daemon, Some(scopes("payroll"))).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidScope);
        let spa = dir.app("spa").await.unwrap().unwrap();
        let e = client_credentials(&dir, &spa, None).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnauthorizedClient);
        // Not ours.
        let e = verify_access_token(&dir, "e30.e30.sig").await.unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidToken);
    }

    #[tokio::test]
    async fn user_tokens_live_and_die_with_their_grant() {
        let (dir, _) = directory().await;
        let web = dir.app("web").await.unwrap().unwrap();
        let adele = member(&dir, "adele").await;
        let g = grant(&dir, &adele, "web", "openid profile").await;
        let extra = released_claims(&dir, &web, &adele, &g.scope, &unnamed())
            .await
            .unwrap();
        let issued = issue_user_tokens(
            &dir,
            &web,
            &g,
            &adele,
            &g.scope,
            Some("n-0S6".into()),
            extra,
        )
        .unwrap();
        assert_eq!(issued.expires_in, dir.config.tokens.access_token);
        let id_token: IdTokenClaims = dir
            .keys()
            .verify(issued.id_token.as_deref().unwrap(), "JWT", dir.now())
            .unwrap();
        assert_eq!(id_token.nonce.as_deref(), Some("n-0S6"));
        assert_eq!(id_token.azp.as_deref(), Some("web"));
        assert_eq!(id_token.extra["name"], "Adele Vance");
        let claims = verify_access_token(&dir, &issued.access_token)
            .await
            .unwrap();
        assert_eq!(claims.sub, "adele");
        assert_eq!(claims.gid.as_deref(), Some(g.id.as_str()));
        assert_eq!(claims.sid.as_deref(), Some("s1"));
        // Without openid there is no ID token.
        let api =
            issue_user_tokens(&dir, &web, &g, &adele, "profile", None, UserClaims::new()).unwrap();
        assert!(api.id_token.is_none());
        dir.store.revoke_grant(&g.id, dir.now()).await.unwrap();
        let e = verify_access_token(&dir, &issued.access_token)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidToken);
        assert_eq!(e.description, "The token has been revoked.");
    }

    #[tokio::test]
    async fn refresh_tokens_never_outlive_their_grant() {
        let (dir, _) = directory().await;
        let adele = member(&dir, "adele").await;
        let g = grant(&dir, &adele, "web", "openid").await;
        let web = dir.app("web").await.unwrap().unwrap();
        let now = dir.now();
        let (token, row) = first_refresh_token(&dir, &web, &g, now).unwrap();
        assert_eq!(row.token_hash, token_hash(&token));
        assert_eq!(row.grant_id, g.id);
        assert_eq!(row.client_id, "web");
        assert_eq!(row.scope, "openid");
        // The grant expires in 10 minutes, sooner than a refresh token would.
        assert!(dir.config.tokens.refresh_token > 600);
        assert_eq!(row.expires_at, g.expires_at);
        let long = Grant {
            expires_at: now + dir.config.tokens.refresh_token * 2,
            ..g.clone()
        };
        let next = refresh_token_row(&dir, &web, &long, "h".into(), now);
        assert_eq!(next.expires_at, now + dir.config.tokens.refresh_token);
        assert!(next.used_at.is_none());
        // A client without the refresh grant gets none.
        let spa = dir.app("spa").await.unwrap().unwrap();
        assert!(first_refresh_token(&dir, &spa, &g, now).is_none());
    }
}
