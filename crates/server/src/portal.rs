//! How tenantd's own pages (the admin pages, a member's security info) know who is there: they
//! sign people in through this tenant's authorization code flow, as any app would, with the
//! built-in first-party client [`signin::apps::PORTAL_CLIENT_ID`] (PKCE S256, `state`,
//! `nonce`). So the sign-in page, MFA, Conditional Access and risk decide for these pages too,
//! and a session revoked anywhere (sign-out, block, password reset) ends their access at once:
//! the access token they keep is checked, grant included, at every request.
//!
//! A page takes [`AdminUser`] or [`Member`] as a handler parameter. Without a live token the
//! browser is sent to `/authorize` and comes back to the page it asked for (a form submitted
//! after the token expired comes back to its page, unsent). The code is redeemed in-process,
//! the ID token's signature, audience and nonce are checked, and the access token is kept in
//! an HttpOnly, `SameSite=Strict` cookie of this tenant.

use crate::admin::Admin;
use crate::oidc::token::exchange_code;
use crate::secrets::{ct_eq, random_token};
use crate::state::AppState;
use crate::web::{self, Ctx, PageError, Query};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{CookieJar, SameSite};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use protocol::jwt::{Audience, IdTokenClaims};
use serde::{Deserialize, Serialize};
use signin::apps::PORTAL_CLIENT_ID;
use store::{User, UserStatus, UserType};

/// Longest a sign-in to the pages may take, from the redirect to the callback.
const FLOW_SECS: i64 = 600;

/// Which of tenantd's own pages: each keeps its own token, with its own scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Portal {
    /// The admin pages, under `/admin`: the `admin` scope, and the administrator role.
    Admin,
    /// A member's security info, under `/account`.
    Account,
}

impl Portal {
    /// Where its pages live; every return address must be under it.
    pub fn base(self) -> &'static str {
        match self {
            Self::Admin => "/admin",
            Self::Account => "/account",
        }
    }

    fn callback(self) -> &'static str {
        match self {
            Self::Admin => "/admin/callback",
            Self::Account => "/account/callback",
        }
    }

    fn scope(self) -> &'static str {
        match self {
            Self::Admin => "openid admin",
            Self::Account => "openid",
        }
    }

    fn token_cookie(self, state: &AppState) -> String {
        match self {
            Self::Admin => format!("{}-admin", state.config.cookie_prefix()),
            Self::Account => format!("{}-account", state.config.cookie_prefix()),
        }
    }

    fn flow_cookie(self, state: &AppState) -> String {
        format!("{}-flow", self.token_cookie(state))
    }
}

/// What the browser keeps between the redirect to `/authorize` and the callback.
#[derive(Debug, Serialize, Deserialize)]
struct Flow {
    state: String,
    verifier: String,
    nonce: String,
    return_to: String,
}

/// Send the browser to sign in for `portal`, coming back to `return_to` (a path under the
/// portal's base; anything else comes back to the base).
pub fn sign_in(state: &AppState, jar: CookieJar, portal: Portal, return_to: &str) -> Response {
    start(state, jar, portal, return_to, false)
}

/// [`sign_in`], asking for the password again (`prompt=login`) even with a live session: a
/// page that needs a recent sign-in gets a new `auth_time`.
pub fn sign_in_again(
    state: &AppState,
    jar: CookieJar,
    portal: Portal,
    return_to: &str,
) -> Response {
    start(state, jar, portal, return_to, true)
}

fn start(
    state: &AppState,
    jar: CookieJar,
    portal: Portal,
    return_to: &str,
    prompt_login: bool,
) -> Response {
    let return_to = if within(portal, return_to) {
        return_to.to_owned()
    } else {
        portal.base().to_owned()
    };
    let flow = Flow {
        state: random_token(),
        verifier: random_token(),
        nonce: random_token(),
        return_to,
    };
    let url = format!(
        "{issuer}/authorize?response_type=code&client_id={client}&redirect_uri={redirect}\
         &scope={scope}&state={st}&nonce={nonce}&code_challenge={challenge}\
         &code_challenge_method=S256",
        issuer = state.config.issuer,
        client = PORTAL_CLIENT_ID,
        redirect = enc(&format!("{}{}", state.config.issuer, portal.callback())),
        scope = enc(portal.scope()),
        st = flow.state,
        nonce = flow.nonce,
        challenge = protocol::pkce::s256_challenge(&flow.verifier),
    );
    let url = if prompt_login {
        format!("{url}&prompt=login")
    } else {
        url
    };
    let value = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&flow).unwrap_or_default());
    let jar = jar.add(web::cookie(
        state,
        &portal.flow_cookie(state),
        value,
        Some(FLOW_SECS),
    ));
    (jar, Redirect::to(&url)).into_response()
}

/// A relative path under the portal's base, not a way off this origin (`//host`, `/\host`).
fn within(portal: Portal, path: &str) -> bool {
    let base = portal.base();
    path.strip_prefix(base)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'))
        && !path.contains('\\')
        && !path.starts_with("//")
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The callback's query: a code and state, or an error (RFC 6749 §4.1.2.1).
#[derive(Debug, Deserialize)]
pub struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /admin/callback`.
pub async fn admin_callback(
    State(state): State<AppState>,
    ctx: Ctx,
    jar: CookieJar,
    Query(params): Query<CallbackParams>,
) -> Result<Response, PageError> {
    callback(&state, &ctx, jar, Portal::Admin, params).await
}

/// `GET /account/callback`.
pub async fn account_callback(
    State(state): State<AppState>,
    ctx: Ctx,
    jar: CookieJar,
    Query(params): Query<CallbackParams>,
) -> Result<Response, PageError> {
    callback(&state, &ctx, jar, Portal::Account, params).await
}

async fn callback(
    state: &AppState,
    ctx: &Ctx,
    jar: CookieJar,
    portal: Portal,
    params: CallbackParams,
) -> Result<Response, PageError> {
    let flow_name = portal.flow_cookie(state);
    let flow: Option<Flow> = jar
        .get(&flow_name)
        .and_then(|c| URL_SAFE_NO_PAD.decode(c.value()).ok())
        .and_then(|b| serde_json::from_slice(&b).ok());
    let jar = jar.remove(web::cookie(state, &flow_name, String::new(), None));
    let Some(flow) = flow.filter(|f| {
        params
            .state
            .as_deref()
            .is_some_and(|s| ct_eq(s.as_bytes(), f.state.as_bytes()))
    }) else {
        // No flow of this browser's, or another one's state: start again rather than act on it.
        return Err(PageError::bad_request(
            "This sign-in has expired",
            "The sign-in to these pages could not be matched to this browser. Open the page \
             again to sign in.",
        ));
    };
    if let Some(error) = params.error {
        return Err(PageError {
            status: StatusCode::FORBIDDEN,
            detail: Some(format!(
                "portal sign-in refused: {error}: {}",
                params.error_description.as_deref().unwrap_or("")
            )),
            ..PageError::bad_request(
                "You are not signed in",
                params.error_description.unwrap_or_else(|| {
                    "The sign-in to these pages did not complete. Open the page again to sign in."
                        .to_owned()
                }),
            )
        });
    }
    let code = params.code.unwrap_or_default();
    let app = state
        .app(PORTAL_CLIENT_ID)
        .await?
        .ok_or_else(|| PageError::internal("the portal app is not registered"))?;
    let redirect_uri = format!("{}{}", state.config.issuer, portal.callback());
    let tokens = exchange_code(
        state,
        &app,
        &code,
        Some(&redirect_uri),
        Some(&flow.verifier),
    )
    .await
    .map_err(|e| PageError {
        detail: Some(format!("portal code exchange failed: {}", e.error)),
        ..PageError::expired_request()
    })?;
    check_id_token(state, tokens.id_token.as_deref(), &flow.nonce)?;
    let mut cookie = web::cookie(
        state,
        &portal.token_cookie(state),
        tokens.access_token,
        Some(tokens.expires_in),
    );
    cookie.set_same_site(SameSite::Strict);
    tracing::info!(correlation_id = %ctx.correlation_id, portal = portal.base(), "signed in to the portal");
    Ok((jar.add(cookie), Redirect::to(&flow.return_to)).into_response())
}

/// The ID token is ours, for the portal, and answers this browser's nonce (OIDC Core §3.1.3.7).
fn check_id_token(state: &AppState, id_token: Option<&str>, nonce: &str) -> Result<(), PageError> {
    let refused = |why: &str| PageError::internal(format!("portal ID token refused: {why}"));
    let token = id_token.ok_or_else(|| refused("none issued"))?;
    let claims: IdTokenClaims = state
        .keys()
        .verify(token, "JWT", state.now())
        .map_err(|e| refused(&e.to_string()))?;
    let for_portal = match &claims.aud {
        Audience::One(a) => a == PORTAL_CLIENT_ID,
        Audience::Many(v) => v.iter().any(|a| a == PORTAL_CLIENT_ID),
    };
    if claims.iss != state.config.issuer || !for_portal {
        return Err(refused("issuer or audience"));
    }
    if !claims
        .nonce
        .as_deref()
        .is_some_and(|n| ct_eq(n.as_bytes(), nonce.as_bytes()))
    {
        return Err(refused("nonce"));
    }
    Ok(())
}

/// `POST /admin/signout` and `/account/signout`: forget the pages' token, then end the
/// tenant's session the standard way (RP-initiated logout, which asks the person).
pub async fn sign_out(State(state): State<AppState>, jar: CookieJar) -> Response {
    let jar = [Portal::Admin, Portal::Account]
        .into_iter()
        .fold(jar, |jar, p| {
            jar.remove(web::cookie(
                &state,
                &p.token_cookie(&state),
                String::new(),
                None,
            ))
        });
    (jar, Redirect::to("/logout")).into_response()
}

/// Why a page did not run: the browser goes to sign in, or is shown a refusal.
#[derive(Debug)]
pub struct NotSignedIn(Response);

impl IntoResponse for NotSignedIn {
    fn into_response(self) -> Response {
        self.0
    }
}

/// The page's token, if the browser has one, checked like any access token (signature,
/// issuer, times, live grant) and for the portal's client.
async fn token_claims(
    parts: &Parts,
    state: &AppState,
    portal: Portal,
) -> Result<(CookieJar, Option<protocol::jwt::AccessTokenClaims>), NotSignedIn> {
    let jar = CookieJar::from_headers(&parts.headers);
    let Some(token) = jar
        .get(&portal.token_cookie(state))
        .map(|c| c.value().to_owned())
    else {
        return Ok((jar, None));
    };
    match signin::tokens::verify_access_token(state, &token).await {
        Ok(claims) if claims.client_id == PORTAL_CLIENT_ID => Ok((jar, Some(claims))),
        Ok(_) => Ok((jar, None)),
        Err(e) if e.code == protocol::ErrorCode::ServerError => Err(NotSignedIn(
            PageError::internal(e.to_string()).into_response(),
        )),
        Err(_) => Ok((jar, None)),
    }
}

/// Where the browser comes back to after signing in: the page itself for a `GET`, the page a
/// form was on (without re-sending it) otherwise.
fn return_to(parts: &Parts) -> String {
    if parts.method == Method::GET {
        parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned())
    } else {
        parts.uri.path().to_owned()
    }
}

/// An administrator on an admin page: signed in through the portal with the `admin` scope and
/// holding the administrator role now (the admin API's own check, [`Admin`]).
#[derive(Debug, Clone)]
pub struct AdminUser {
    /// The caller, as the admin API knows callers (audit lines name them the same way).
    pub admin: Admin,
    /// The administrator.
    pub user: User,
}

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = NotSignedIn;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let (jar, claims) = token_claims(parts, state, Portal::Admin).await?;
        let Some(claims) = claims else {
            return Err(NotSignedIn(sign_in(
                state,
                jar,
                Portal::Admin,
                &return_to(parts),
            )));
        };
        match Admin::from_claims(state, claims).await {
            Ok(admin) => match admin.user.clone() {
                Some(user) => Ok(Self { admin, user }),
                None => Err(NotSignedIn(not_an_admin())),
            },
            Err(e) if e.0.code == protocol::ErrorCode::InsufficientScope => {
                Err(NotSignedIn(not_an_admin()))
            }
            Err(e) => Err(NotSignedIn(
                PageError::internal(e.0.to_string()).into_response(),
            )),
        }
    }
}

fn not_an_admin() -> Response {
    PageError {
        status: StatusCode::FORBIDDEN,
        title: "You need the administrator role",
        message: "You are signed in, but these pages are for administrators of this \
                  organization. Ask an administrator to give you the role, or sign out and \
                  sign in as an administrator."
            .into(),
        error_code: None,
        detail: Some("portal user without the administrator role".into()),
    }
    .into_response()
}

/// A member of this tenant on their own security info pages. A guest's methods are their home
/// tenant's, so a guest is told to go there.
#[derive(Debug, Clone)]
pub struct Member {
    /// The member.
    pub user: User,
    /// The verified token's claims (`auth_time` tells how fresh the sign-in is).
    pub claims: protocol::jwt::AccessTokenClaims,
}

impl FromRequestParts<AppState> for Member {
    type Rejection = NotSignedIn;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let (jar, claims) = token_claims(parts, state, Portal::Account).await?;
        let Some(claims) = claims else {
            return Err(NotSignedIn(sign_in(
                state,
                jar,
                Portal::Account,
                &return_to(parts),
            )));
        };
        let user = state
            .store
            .user_by_id(&claims.sub)
            .await
            .map_err(|e| NotSignedIn(PageError::from(e).into_response()))?
            .filter(|u| u.status == UserStatus::Active);
        match user {
            Some(user) if user.user_type == UserType::Guest => Err(NotSignedIn(
                PageError {
                    status: StatusCode::FORBIDDEN,
                    title: "Your security info is kept by your organization",
                    message: "You are a guest here: your sign-in methods and password are \
                              managed where your account is, at your own organization."
                        .into(),
                    error_code: None,
                    detail: Some("guest on the security info pages".into()),
                }
                .into_response(),
            )),
            Some(user) => Ok(Self { user, claims }),
            None => Err(NotSignedIn(sign_in(
                state,
                jar,
                Portal::Account,
                &return_to(parts),
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_addresses_stay_under_the_portal() {
        assert!(within(Portal::Admin, "/admin"));
        assert!(within(Portal::Admin, "/admin/risky-users?level=high"));
        assert!(within(Portal::Admin, "/admin?x=1"));
        assert!(!within(Portal::Admin, "/administrator"));
        assert!(!within(Portal::Admin, "/account"));
        assert!(!within(Portal::Admin, "//evil.example/admin"));
        assert!(!within(Portal::Admin, "/admin/\\evil.example"));
        assert!(!within(Portal::Account, "https://evil.example/account"));
    }
}
