//! HTTP plumbing shared by handlers: the request context (correlation id, client IP, user
//! agent), error responses (RFC JSON, Bearer challenges, pages), cookies and CSRF.

use crate::pages;
use crate::state::AppState;
use askama::Template;
use axum::extract::{FromRequest, FromRequestParts, RawForm, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use protocol::OAuthError;
use serde::de::DeserializeOwned;
use std::net::IpAddr;

/// The header carrying the request / correlation id.
pub const REQUEST_ID: &str = "x-request-id";

/// Facts about the request every handler may need.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Correlation id (the request id), shown on pages and written to logs.
    pub correlation_id: String,
    /// Client IP (see [`crate::client_ip`]).
    pub ip: IpAddr,
    /// User agent, truncated.
    pub user_agent: Option<String>,
}

impl Ctx {
    /// The request's facts for the application layer (sign-in log rows, the gate's inputs).
    pub fn client(&self) -> signin::Client<'_> {
        signin::Client {
            correlation_id: &self.correlation_id,
            ip: self.ip,
            user_agent: self.user_agent.as_deref(),
        }
    }
}

impl<'a> From<&'a Ctx> for signin::Client<'a> {
    fn from(ctx: &'a Ctx) -> Self {
        ctx.client()
    }
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let correlation_id = parts
            .headers
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
        let ip = crate::client_ip::of_request(
            &parts.extensions,
            &parts.headers,
            &state.config.trusted_proxies,
        );
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(512).collect());
        Ok(Self {
            correlation_id,
            ip,
            user_agent,
        })
    }
}

/// An OAuth error at a back-channel endpoint: RFC 6749 §5.2 JSON, `Cache-Control: no-store`,
/// and `WWW-Authenticate` where the RFCs ask for it.
#[derive(Debug)]
pub struct ApiError {
    /// The error.
    pub error: OAuthError,
    /// The client used HTTP Basic, so a 401 must challenge Basic (RFC 6749 §5.2).
    pub basic_challenge: bool,
}

impl From<OAuthError> for ApiError {
    fn from(error: OAuthError) -> Self {
        Self {
            error,
            basic_challenge: false,
        }
    }
}

impl From<store::StoreError> for ApiError {
    fn from(e: store::StoreError) -> Self {
        signin::tokens::store_failure(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        log_oauth_error(&self.error);
        let status =
            StatusCode::from_u16(self.error.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        let mut resp = (status, axum::Json(self.error.to_json())).into_response();
        no_store(resp.headers_mut());
        if status == StatusCode::UNAUTHORIZED && self.basic_challenge {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"tenantd\""),
            );
        }
        resp
    }
}

/// The token of an `Authorization: Bearer` header (RFC 6750 §2.1), if there is one (possibly
/// empty: callers refuse that).
pub fn bearer_header(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// An error at a resource endpoint (UserInfo): RFC 6750 §3 `WWW-Authenticate: Bearer`.
#[derive(Debug)]
pub struct BearerError(pub OAuthError);

impl From<OAuthError> for BearerError {
    fn from(e: OAuthError) -> Self {
        Self(e)
    }
}

impl From<store::StoreError> for BearerError {
    fn from(e: store::StoreError) -> Self {
        Self(signin::tokens::store_failure(e))
    }
}

impl IntoResponse for BearerError {
    fn into_response(self) -> Response {
        log_oauth_error(&self.0);
        let e = self.0;
        let status = StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::UNAUTHORIZED);
        let challenge = format!(
            "Bearer realm=\"tenantd\", error=\"{}\", error_description=\"{}\"",
            e.code.as_str(),
            e.description.replace(['"', '\\'], "'")
        );
        let mut resp = (status, axum::Json(e.to_json())).into_response();
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        no_store(resp.headers_mut());
        resp
    }
}

fn log_oauth_error(e: &OAuthError) {
    if e.code == protocol::ErrorCode::ServerError {
        tracing::error!(error = %e, detail = e.detail.as_deref().unwrap_or(""), "request failed");
    } else {
        tracing::info!(error = %e, description = %e.description, detail = e.detail.as_deref().unwrap_or(""), "request refused");
    }
}

/// An error shown to a person as a page. Handlers return it (`Result<Response, PageError>`
/// and `?`); [`with_error_pages`] turns it into the tenant's error page with the request's
/// correlation id, so a handler needs neither to render it.
#[derive(Debug, Clone)]
pub struct PageError {
    /// HTTP status.
    pub status: StatusCode,
    /// Heading.
    pub title: &'static str,
    /// Plain words: what happened and what to do.
    pub message: String,
    /// A code people can look up, where one fits.
    pub error_code: Option<u32>,
    /// Private detail for the log.
    pub detail: Option<String>,
}

impl PageError {
    /// A 400 page.
    pub fn bad_request(title: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            title,
            message: message.into(),
            error_code: None,
            detail: None,
        }
    }

    /// A 500 page with a private detail.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            title: "Something went wrong",
            message: "The sign-in service could not complete your request. Please try again."
                .into(),
            error_code: None,
            detail: Some(detail.into()),
        }
    }

    /// The sign-in request is unknown or expired.
    pub fn expired_request() -> Self {
        Self::bad_request(
            "This sign-in has expired",
            "The sign-in request is no longer valid. Go back to the app and start signing in again.",
        )
    }

    /// Render with the tenant name and correlation id.
    pub fn render(self, state: &AppState, ctx: &Ctx) -> Response {
        self.page(state, &ctx.correlation_id)
    }

    fn page(self, state: &AppState, correlation_id: &str) -> Response {
        match &self.detail {
            Some(d) if self.status.is_server_error() => {
                tracing::error!(%correlation_id, detail = %d, "page error")
            }
            Some(d) => {
                tracing::info!(%correlation_id, detail = %d, title = self.title, "page refusal")
            }
            None => {
                tracing::info!(%correlation_id, title = self.title, "page refusal")
            }
        }
        let page = pages::ErrorPage {
            tenant_name: &state.config.display_name,
            title: self.title,
            message: &self.message,
            error_code: self.error_code,
            correlation_id,
        };
        (self.status, html(&page)).into_response()
    }
}

impl IntoResponse for PageError {
    /// The error travels in the response's extensions to [`with_error_pages`], which knows
    /// the tenant and the request.
    fn into_response(self) -> Response {
        let mut r = self.status.into_response();
        r.extensions_mut().insert(self);
        r
    }
}

/// Runs the rest of the request and renders a [`PageError`] a handler returned as the
/// tenant's error page, naming the request's correlation id. Run by the router's middleware
/// (`crate::app`).
pub async fn with_error_pages(state: &AppState, req: Request, next: Next) -> Response {
    // A `HeaderValue` clone shares its bytes: nothing is copied for a request that succeeds.
    let request_id = req.headers().get(REQUEST_ID).cloned();
    let mut resp = next.run(req).await;
    match resp.extensions_mut().remove::<PageError>() {
        Some(e) => e.page(
            state,
            request_id
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default(),
        ),
        None => resp,
    }
}

impl From<store::StoreError> for PageError {
    fn from(e: store::StoreError) -> Self {
        if e.is_unavailable() {
            return Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                title: "Temporarily unavailable",
                message: "The sign-in service cannot reach its database right now. Wait a \
                          moment and try again."
                    .into(),
                error_code: None,
                detail: Some(e.to_string()),
            };
        }
        Self::internal(e.to_string())
    }
}

/// A user-risk step that failed because the database is away is the same 503 page as any other
/// store call; anything else is an internal error.
impl From<signin::user_risk::UserRiskError> for PageError {
    fn from(e: signin::user_risk::UserRiskError) -> Self {
        match e {
            signin::user_risk::UserRiskError::Store(e) => e.into(),
            other => Self::internal(format!("user risk: {other}")),
        }
    }
}

impl From<signin::sign_in::SignInError> for PageError {
    fn from(e: signin::sign_in::SignInError) -> Self {
        match e {
            signin::sign_in::SignInError::Expired => Self::expired_request(),
            signin::sign_in::SignInError::Store(e) => e.into(),
            other => Self::internal(other.to_string()),
        }
    }
}

/// A page's form body, deserialized like axum's `Form`, except that text which is not UTF-8 is
/// refused instead of replaced: a page never acts on a value other than the one the browser
/// sent. Any unreadable form is the tenant's 400 page, not a plain-text rejection.
#[derive(Debug)]
pub struct Form<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Form<T> {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let RawForm(bytes) = RawForm::from_request(req, state)
            .await
            .map_err(|e| unreadable(e.body_text()))?;
        strict_decode(&bytes).map(Self)
    }
}

/// A page's query string, deserialized like axum's `Query` with [`Form`]'s rules.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        strict_decode(parts.uri.query().unwrap_or_default().as_bytes()).map(Self)
    }
}

fn strict_decode<T: DeserializeOwned>(encoded: &[u8]) -> Result<T, PageError> {
    if !protocol::params::is_utf8_form(encoded) {
        return Err(PageError::bad_request(
            "Invalid request",
            "The request contains text that is not valid UTF-8. Go back and try again.",
        ));
    }
    serde_urlencoded::from_bytes(encoded).map_err(|e| unreadable(e.to_string()))
}

fn unreadable(detail: String) -> PageError {
    PageError {
        detail: Some(detail),
        ..PageError::bad_request(
            "Invalid request",
            "The request could not be read. Go back and try again.",
        )
    }
}

/// Where a page's forms may end up besides this tenant: the redirect URI (or post-logout
/// redirect URI) of the app the page serves. The page CSP's `form-action` adds its origin, so a
/// registered app (known only from the store) is reached as a config-file app is.
#[derive(Debug, Clone)]
pub struct FormTarget(pub String);

/// [`html`] for a page whose forms end up at `target` (see [`FormTarget`]).
pub fn html_to<T: Template>(t: &T, target: &str) -> Response {
    let mut r = html(t);
    r.extensions_mut().insert(FormTarget(target.to_owned()));
    r
}

/// Render a template to an HTML response; a template failure becomes a bare 500.
pub fn html<T: Template>(t: &T) -> Response {
    match t.render() {
        Ok(body) => {
            let mut r = Html(body).into_response();
            no_store(r.headers_mut());
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1).
pub fn no_store(h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// A cookie with the tenant's defaults: HttpOnly, SameSite=Lax, Path=/, Secure over TLS.
pub fn cookie(
    state: &AppState,
    name: &str,
    value: String,
    max_age: Option<i64>,
) -> Cookie<'static> {
    let mut c = Cookie::new(name.to_owned(), value);
    c.set_http_only(true);
    c.set_same_site(SameSite::Lax);
    c.set_path("/");
    c.set_secure(state.cookies.secure);
    if let Some(secs) = max_age {
        c.set_max_age(time::Duration::seconds(secs));
    }
    c
}

/// The CSRF token for this browser, creating (and setting) one if needed.
pub fn csrf_token(state: &AppState, jar: CookieJar) -> (CookieJar, String) {
    if let Some(c) = jar.get(&state.cookies.csrf)
        && c.value().len() == 43
    {
        let v = c.value().to_owned();
        return (jar, v);
    }
    let token = crate::secrets::random_token();
    let jar = jar.add(cookie(state, &state.cookies.csrf, token.clone(), None));
    (jar, token)
}

/// Check a submitted form's CSRF token against the cookie (double submit), in constant time.
pub fn check_csrf(state: &AppState, jar: &CookieJar, submitted: &str) -> Result<(), PageError> {
    let ok = jar.get(&state.cookies.csrf).is_some_and(|c| {
        !submitted.is_empty() && crate::secrets::ct_eq(c.value().as_bytes(), submitted.as_bytes())
    });
    if ok {
        Ok(())
    } else {
        Err(PageError {
            status: StatusCode::FORBIDDEN,
            title: "Your form has expired",
            message:
                "This page could not be verified (the form was too old or cookies are blocked). \
                      Go back, reload the page and try again."
                    .into(),
            error_code: None,
            detail: Some("CSRF token missing or mismatched".into()),
        })
    }
}
