//! The routes: home, login, callback, result, logout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{CoreAuthenticationFlow, CoreGenderClaim, CoreIdToken};
use openidconnect::{
    AccessToken, AccessTokenHash, AuthorizationCode, ClaimsVerificationError, ClientId, CsrfToken,
    EndSessionUrl, LogoutRequest, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    PostLogoutRedirectUrl, RequestTokenError, Scope, SignatureVerificationError, SubjectIdentifier,
    TokenResponse, UserInfoClaims, UserInfoError,
};
use serde::Deserialize;

use crate::checks::{check_iss, check_state, issuer_candidates};
use crate::pages::{
    ErrorPage, HomePage, ProviderError, ResultPage, TokenInfo, Userinfo, claim_rows, render,
};
use crate::provider::{DiscoveryFailure, OtherClaims, Provider, ProviderCache};
use crate::store::ExpiringMap;
use crate::{DemoConfig, DemoError, error_chain, tls};

/// Cookie holding the id of the sign-in in progress.
const FLOW_COOKIE: &str = "tenantd-demo-flow";
/// Cookie holding the id of the signed-in result.
const SESSION_COOKIE: &str = "tenantd-demo-session";
/// A sign-in must come back within this time.
const FLOW_TTL: Duration = Duration::from_secs(10 * 60);
/// How long the demo remembers a signed-in result.
const SESSION_TTL: Duration = Duration::from_secs(8 * 60 * 60);
/// Bound on flows and on results held in memory.
const MAX_ENTRIES: usize = 10_000;

/// What the demo keeps between `/login` and `/callback`.
struct Flow {
    state: CsrfToken,
    nonce: Nonce,
    pkce_verifier: PkceCodeVerifier,
}

/// A signed-in result.
struct SignedIn {
    sub: String,
    id_token: CoreIdToken,
    end_session_endpoint: Option<EndSessionUrl>,
    page: ResultPage,
}

struct App {
    title: String,
    issuer: String,
    client_id: ClientId,
    scopes: Vec<Scope>,
    post_logout_redirect_uri: PostLogoutRedirectUrl,
    secure_cookies: bool,
    http: reqwest::Client,
    provider: ProviderCache,
    flows: ExpiringMap<Flow>,
    sessions: ExpiringMap<Arc<SignedIn>>,
}

type AppState = Arc<App>;

/// A refusal or failure, shown on the error page; details were logged where they happened.
struct Failure {
    status: StatusCode,
    heading: &'static str,
    explanation: String,
    provider_error: Option<ProviderError>,
}

impl Failure {
    fn new(status: StatusCode, heading: &'static str, explanation: impl Into<String>) -> Self {
        Self {
            status,
            heading,
            explanation: explanation.into(),
            provider_error: None,
        }
    }

    fn refused(explanation: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Sign-in refused", explanation)
    }

    fn upstream(explanation: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "Sign-in failed", explanation)
    }

    fn page(&self, title: &str) -> Response {
        render(
            self.status,
            &ErrorPage {
                title,
                heading: self.heading,
                explanation: &self.explanation,
                provider_error: self.provider_error.as_ref(),
            },
        )
    }
}

impl From<DiscoveryFailure> for Failure {
    fn from(failure: DiscoveryFailure) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "Provider unavailable", failure.0)
    }
}

pub(crate) async fn router(cfg: DemoConfig) -> Result<Router, DemoError> {
    validate(&cfg)?;
    let origin = cfg.redirect_uri.origin().ascii_serialization();
    let post_logout_redirect_uri = PostLogoutRedirectUrl::new(format!("{origin}/"))
        .map_err(|e| DemoError::Config(format!("redirect_uri origin {origin}: {e}")))?;
    let http = tls::http_client(cfg.ca_file.as_deref()).await?;
    let app = App {
        title: cfg.title.clone(),
        issuer: issuer_candidates(&cfg.issuer)
            .into_iter()
            .next()
            .unwrap_or_default(),
        client_id: ClientId::new(cfg.client_id.clone()),
        // openidconnect always sends `openid` itself.
        scopes: cfg
            .scopes
            .iter()
            .filter(|s| s.as_str() != "openid" && !s.is_empty())
            .map(|s| Scope::new(s.clone()))
            .collect(),
        post_logout_redirect_uri,
        secure_cookies: cfg.redirect_uri.scheme() == "https",
        provider: ProviderCache::new(&cfg, http.clone()),
        http,
        flows: ExpiringMap::new(FLOW_TTL, MAX_ENTRIES),
        sessions: ExpiringMap::new(SESSION_TTL, MAX_ENTRIES),
    };
    Ok(Router::new()
        .route("/", get(home))
        .route("/login", get(login))
        .route("/callback", get(callback))
        .route("/result", get(result))
        .route("/logout", post(logout))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(Arc::new(app)))
}

fn validate(cfg: &DemoConfig) -> Result<(), DemoError> {
    let issuer = &cfg.issuer;
    if !matches!(issuer.scheme(), "https" | "http") || issuer.host().is_none() {
        return Err(DemoError::Config(format!(
            "issuer {issuer} must be an http(s) URL with a host"
        )));
    }
    if issuer.query().is_some() || issuer.fragment().is_some() {
        return Err(DemoError::Config(format!(
            "issuer {issuer} must not have a query or fragment"
        )));
    }
    let redirect = &cfg.redirect_uri;
    if !matches!(redirect.scheme(), "https" | "http") || redirect.host().is_none() {
        return Err(DemoError::Config(format!(
            "redirect_uri {redirect} must be an http(s) URL with a host"
        )));
    }
    if redirect.path() != "/callback" {
        return Err(DemoError::Config(format!(
            "redirect_uri {redirect} must end in /callback, where the demo receives responses"
        )));
    }
    if cfg.client_id.is_empty() {
        return Err(DemoError::Config("client_id is empty".to_owned()));
    }
    Ok(())
}

/// Pages carry the code and tokens' results: keep them out of caches, frames and referrers.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    response
}

impl App {
    fn cookie(&self, name: &'static str, value: String) -> Cookie<'static> {
        Cookie::build((name, value))
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.secure_cookies)
            .build()
    }

    fn session(&self, jar: &CookieJar) -> Option<Arc<SignedIn>> {
        let id = jar.get(SESSION_COOKIE)?;
        self.sessions.get(id.value(), Instant::now())
    }
}

fn removal(name: &'static str) -> Cookie<'static> {
    Cookie::build((name, "")).path("/").build()
}

/// `GET /`: title, issuer, "Sign in".
async fn home(State(app): State<AppState>, jar: CookieJar) -> Response {
    let session = app.session(&jar);
    render(
        StatusCode::OK,
        &HomePage {
            title: &app.title,
            issuer: &app.issuer,
            signed_in_as: session.as_ref().map(|s| s.sub.as_str()),
        },
    )
}

/// `GET /login`: discover, remember the flow server-side, 303 to the provider.
async fn login(State(app): State<AppState>, jar: CookieJar) -> Response {
    let provider = match app.provider.get().await {
        Ok(provider) => provider,
        Err(failure) => return Failure::from(failure).page(&app.title),
    };
    let (pkce_challenge, pkce_verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = provider
        .client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scopes(app.scopes.iter().cloned())
        .set_pkce_challenge(pkce_challenge)
        .url();
    let flow = Flow {
        state,
        nonce,
        pkce_verifier,
    };
    let now = Instant::now();
    // A new sign-in in this browser replaces the one in progress.
    if let Some(previous) = jar.get(FLOW_COOKIE) {
        app.flows.take(previous.value(), now);
    }
    let Some(id) = app.flows.insert(flow, now) else {
        tracing::warn!("too many sign-ins in progress; refusing a new one");
        return Failure::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Busy",
            "Too many sign-ins are in progress. Try again in a few minutes.",
        )
        .page(&app.title);
    };
    (
        jar.add(app.cookie(FLOW_COOKIE, id)),
        Redirect::to(url.as_str()),
    )
        .into_response()
}

/// The authorization response's query parameters.
#[derive(Deserialize)]
struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /callback`: check, exchange, verify, show.
async fn callback(
    State(app): State<AppState>,
    jar: CookieJar,
    params: Result<Query<CallbackParams>, QueryRejection>,
) -> Response {
    // The flow is single use whatever happens next.
    let flow_id = jar.get(FLOW_COOKIE).map(|c| c.value().to_owned());
    let jar = jar.remove(removal(FLOW_COOKIE));
    match complete_sign_in(&app, flow_id, params).await {
        Ok(signed_in) => {
            let page = signed_in.page.render_page();
            // Signing in again replaces this browser's earlier result.
            if let Some(previous) = jar.get(SESSION_COOKIE) {
                app.sessions.take(previous.value(), Instant::now());
            }
            match app.sessions.insert(Arc::new(signed_in), Instant::now()) {
                Some(id) => (jar.add(app.cookie(SESSION_COOKIE, id)), page).into_response(),
                // Still show the result; it just cannot be revisited.
                None => (jar, page).into_response(),
            }
        }
        Err(failure) => (jar, failure.page(&app.title)).into_response(),
    }
}

impl ResultPage {
    fn render_page(&self) -> Response {
        render(StatusCode::OK, self)
    }
}

async fn complete_sign_in(
    app: &App,
    flow_id: Option<String>,
    params: Result<Query<CallbackParams>, QueryRejection>,
) -> Result<SignedIn, Failure> {
    let flow = flow_id
        .and_then(|id| app.flows.take(&id, Instant::now()))
        .ok_or_else(|| {
            tracing::info!("authorization response without a live flow");
            Failure::refused(
                "No sign-in is in progress in this browser: it expired (10 minutes), was \
                 already completed, or cookies are blocked. Start again.",
            )
        })?;
    let Query(params) = params.map_err(|e| {
        tracing::info!(error = %e, "malformed authorization response");
        Failure::refused(
            "The response's parameters are malformed (for example, a parameter appears twice).",
        )
    })?;
    check_state(flow.state.secret(), params.state.as_deref()).map_err(|why| {
        tracing::warn!(why, "authorization response refused: state");
        Failure::refused(why)
    })?;

    let mut provider = app.provider.get().await?;
    check_iss(
        &provider.issuer,
        params.iss.as_deref(),
        provider.iss_parameter_required,
    )
    .map_err(|why| {
        tracing::warn!(why, iss = ?params.iss, expected = %provider.issuer, "authorization response refused: iss");
        Failure::refused(why)
    })?;

    if let Some(error) = params.error {
        tracing::info!(%error, description = ?params.error_description, "provider returned an error");
        return Err(Failure {
            provider_error: Some(ProviderError {
                error,
                description: params.error_description,
                iss: params.iss,
            }),
            ..Failure::new(
                StatusCode::BAD_REQUEST,
                "The provider did not sign you in",
                "The provider answered the sign-in request with an error.",
            )
        });
    }
    let code = params
        .code
        .ok_or_else(|| Failure::refused("The response carries neither a code nor an error."))?;

    let token_response = provider
        .client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|e| {
            tracing::warn!(error = %e, "no token endpoint");
            Failure::upstream("The provider's discovery document lists no token endpoint.")
        })?
        .set_pkce_verifier(flow.pkce_verifier)
        .request_async(&app.http)
        .await
        .map_err(|e| token_failure(&e))?;

    let id_token = token_response
        .id_token()
        .ok_or_else(|| Failure::upstream("The token response carries no ID token."))?
        .clone();
    let access_token = token_response.access_token();
    let sub = match verify(&provider, &id_token, access_token, &flow.nonce) {
        Ok(sub) => sub,
        Err(Verify::UnknownKey) => {
            tracing::info!("ID token signed with an unknown key; discovering the provider again");
            provider = app.provider.refresh(&provider).await?;
            verify(&provider, &id_token, access_token, &flow.nonce).map_err(Verify::failure)?
        }
        Err(other) => return Err(other.failure()),
    };
    let claims = payload_claims(&id_token).map_err(|why| {
        tracing::warn!(why, "verified ID token payload unreadable");
        Failure::upstream("The ID token's claims could not be read.")
    })?;
    tracing::info!(sub = sub.as_str(), "signed in");

    let userinfo = userinfo(app, &provider, access_token, &sub).await;
    let token = TokenInfo {
        token_type: token_type_name(token_response.token_type()),
        expires_in: token_response.expires_in().map(|d| d.as_secs()),
        scope: token_response.scopes().map(|scopes| {
            scopes
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        }),
        refresh_token_issued: token_response.refresh_token().is_some(),
    };
    Ok(SignedIn {
        sub: sub.as_str().to_owned(),
        page: ResultPage {
            title: app.title.clone(),
            issuer: provider.issuer.clone(),
            claims: claim_rows(&claims),
            token,
            userinfo,
            can_sign_out: provider.end_session_endpoint.is_some(),
        },
        id_token,
        end_session_endpoint: provider.end_session_endpoint.clone(),
    })
}

fn token_failure<RE: std::error::Error + 'static>(
    err: &RequestTokenError<
        RE,
        openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
    >,
) -> Failure {
    tracing::warn!(error = %error_chain(err), "token exchange failed");
    match err {
        RequestTokenError::ServerResponse(response) => {
            let mut text = format!(
                "The provider refused to exchange the code: {}",
                response.error()
            );
            if let Some(description) = response.error_description() {
                text.push_str(&format!(" ({description})"));
            }
            text.push('.');
            Failure::upstream(text)
        }
        RequestTokenError::Request(_) => {
            Failure::upstream("The provider's token endpoint could not be reached.")
        }
        RequestTokenError::Parse(..) => {
            Failure::upstream("The provider's token response is not valid.")
        }
        RequestTokenError::Other(_) => Failure::upstream("The token exchange failed."),
    }
}

fn token_type_name(token_type: &impl serde::Serialize) -> String {
    match serde_json::to_value(token_type) {
        Ok(serde_json::Value::String(name)) => name,
        Ok(other) => other.to_string(),
        Err(_) => "unknown".to_owned(),
    }
}

/// Why an ID token was not accepted.
enum Verify {
    /// No key in the cached JWKS matches: worth discovering again once.
    UnknownKey,
    /// Anything else: the explanation for the page.
    Refused(String),
}

impl Verify {
    fn failure(self) -> Failure {
        match self {
            Verify::UnknownKey => Failure::upstream(
                "The ID token is signed with a key the provider does not publish.",
            ),
            Verify::Refused(why) => Failure::upstream(why),
        }
    }
}

/// Verifies the ID token (signature with the provider's advertised algorithms and keys, issuer,
/// audience, expiry, nonce) and, when present, `at_hash` against the access token.
fn verify(
    provider: &Provider,
    id_token: &CoreIdToken,
    access_token: &AccessToken,
    nonce: &Nonce,
) -> Result<SubjectIdentifier, Verify> {
    let verifier = provider.client.id_token_verifier();
    let claims = id_token.claims(&verifier, nonce).map_err(|err| {
        if matches!(
            err,
            ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey
            )
        ) {
            return Verify::UnknownKey;
        }
        tracing::warn!(error = %error_chain(&err), "ID token refused");
        Verify::Refused(format!("The ID token was refused: {err}."))
    })?;
    if let Some(expected) = claims.access_token_hash() {
        let actual = id_token
            .signing_alg()
            .and_then(|alg| Ok((alg, id_token.signing_key(&verifier)?)))
            .map_err(|e| e.to_string())
            .and_then(|(alg, key)| {
                AccessTokenHash::from_token(access_token, alg, key).map_err(|e| e.to_string())
            })
            .map_err(|why| {
                tracing::warn!(why, "cannot compute at_hash");
                Verify::Refused("The ID token's at_hash could not be checked.".to_owned())
            })?;
        if actual != *expected {
            tracing::warn!("at_hash does not match the access token");
            return Err(Verify::Refused(
                "The ID token does not belong to the access token it came with (at_hash)."
                    .to_owned(),
            ));
        }
    }
    Ok(claims.subject().clone())
}

/// Every claim of an already verified ID token, exactly as the provider signed it (the typed
/// claims would drop the ones openidconnect does not know).
fn payload_claims(
    id_token: &CoreIdToken,
) -> Result<serde_json::Map<String, serde_json::Value>, &'static str> {
    let compact = id_token.to_string();
    let payload = compact.split('.').nth(1).ok_or("not a compact JWS")?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| "payload is not base64url")?;
    serde_json::from_slice(&bytes).map_err(|_| "payload is not a JSON object")
}

/// Calls userinfo when the provider has it; openidconnect checks that its `sub` is the ID
/// token's.
async fn userinfo(
    app: &App,
    provider: &Provider,
    access_token: &AccessToken,
    sub: &SubjectIdentifier,
) -> Userinfo {
    if !provider.has_userinfo {
        return Userinfo::NotOffered;
    }
    let request = match provider
        .client
        .user_info(access_token.clone(), Some(sub.clone()))
    {
        Ok(request) => request,
        Err(e) => {
            tracing::warn!(error = %e, "userinfo");
            return Userinfo::NotOffered;
        }
    };
    let response: Result<UserInfoClaims<OtherClaims, CoreGenderClaim>, _> =
        request.request_async(&app.http).await;
    let claims = match response {
        Ok(claims) => claims,
        Err(err) => {
            tracing::warn!(error = %error_chain(&err), "userinfo request failed");
            let why = match err {
                UserInfoError::ClaimsVerification(e) => format!("its claims were refused ({e})"),
                UserInfoError::Request(_) => "the endpoint could not be reached".to_owned(),
                UserInfoError::Response(status, ..) => format!("the endpoint answered {status}"),
                UserInfoError::Parse(_) => "the response is not valid".to_owned(),
                _ => "it failed".to_owned(),
            };
            return Userinfo::Failed(why);
        }
    };
    match serde_json::to_value(&claims) {
        Ok(serde_json::Value::Object(map)) => Userinfo::Claims(claim_rows(&map)),
        _ => Userinfo::Failed("its claims could not be displayed".to_owned()),
    }
}

/// `GET /result`: the signed-in result again.
async fn result(State(app): State<AppState>, jar: CookieJar) -> Response {
    match app.session(&jar) {
        Some(session) => session.page.render_page(),
        None => Redirect::to("/").into_response(),
    }
}

/// `POST /logout`: forget the result here, then RP-initiated logout at the provider
/// (`id_token_hint`, `post_logout_redirect_uri` = this app's `/`, `client_id`).
async fn logout(State(app): State<AppState>, jar: CookieJar) -> Response {
    let session = jar
        .get(SESSION_COOKIE)
        .and_then(|c| app.sessions.take(c.value(), Instant::now()));
    let jar = jar.remove(removal(SESSION_COOKIE));
    let target = session
        .and_then(|s| {
            let endpoint = s.end_session_endpoint.clone()?;
            Some(
                LogoutRequest::from(endpoint)
                    .set_id_token_hint(&s.id_token)
                    .set_client_id(app.client_id.clone())
                    .set_post_logout_redirect_uri(app.post_logout_redirect_uri.clone())
                    .http_get_url()
                    .to_string(),
            )
        })
        .unwrap_or_else(|| "/".to_owned());
    (jar, Redirect::to(&target)).into_response()
}
