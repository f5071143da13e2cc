//! The router: every endpoint, and the middleware around it (request ids, tracing, body and
//! time limits, security headers, panic catching).

use crate::admin;
use crate::login;
use crate::login::mfa;
use crate::oidc::{authorize, logout, registration, resource, token};
use crate::state::AppState;
use crate::web::FormTarget;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use protocol::discovery::paths;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// Largest request body accepted anywhere (forms and token requests are tiny).
pub const MAX_BODY: usize = 64 * 1024;
/// Longest request URI accepted.
pub const MAX_URI: usize = 8 * 1024;

/// Build the router for a tenant.
pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static(crate::web::REQUEST_ID);
    let page_csp = Arc::new(PageCsp::new(&state.config));
    // HSTS only where this tenant serves TLS itself (RFC 6797 §7.2: never over plain HTTP).
    let hsts = state.config.tls.is_some().then(|| {
        SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        )
    });
    let routes = Router::new()
        .route("/", get(login::root))
        .route(paths::DISCOVERY, get(discovery))
        .route(paths::OAUTH_METADATA, get(discovery))
        .route(paths::JWKS, get(jwks))
        .route(crate::ssf::WELL_KNOWN, get(crate::ssf::configuration))
        .route(
            "/ssf/stream",
            post(crate::ssf::create)
                .get(crate::ssf::read)
                .patch(crate::ssf::update)
                .put(crate::ssf::replace)
                .delete(crate::ssf::delete),
        )
        .route(
            "/ssf/status",
            get(crate::ssf::status).post(crate::ssf::set_status),
        )
        .route("/ssf/subjects/add", post(crate::ssf::add_subject))
        .route("/ssf/subjects/remove", post(crate::ssf::remove_subject))
        .route("/ssf/verify", post(crate::ssf::verify))
        .route("/ssf/poll/{stream_id}", post(crate::ssf::poll))
        .route(
            "/v1.0/identityProtection/sharedSignals/streams",
            get(crate::ssf::admin_streams),
        )
        .route(
            "/v1.0/identityProtection/sharedSignals/streams/{id}/events",
            get(crate::ssf::admin_stream_events),
        )
        .route(paths::AUTHORIZE, get(authorize::get).post(authorize::post))
        .route(paths::TOKEN, post(token::token))
        .route(
            paths::USERINFO,
            get(resource::userinfo).post(resource::userinfo),
        )
        .route(paths::REVOKE, post(resource::revoke))
        .route(paths::INTROSPECT, post(resource::introspect))
        .route(paths::LOGOUT, get(logout::get).post(logout::post))
        .route("/logout/confirm", post(logout::confirm))
        .merge(registration_routes(state.config.registration.enabled))
        .route("/login", get(login::email_page).post(login::email_submit))
        .route("/login/password", post(login::password_submit))
        .route("/login/continue", get(crate::login::gate::resume))
        .route(
            crate::login::gate::PASSWORD_RESET_PATH,
            get(crate::login::sspr::page).post(crate::login::sspr::start),
        )
        .route("/password/reset/new", post(crate::login::sspr::finish))
        .merge(admin_pages())
        .merge(account_pages())
        .route("/password/reset/email", post(crate::login::sspr::send_code))
        .route("/v1.0/invitations", post(admin::invite))
        .route(
            "/v1.0/applications",
            get(admin::applications::list).post(admin::applications::create),
        )
        .route(
            "/v1.0/applications/{id}",
            get(admin::applications::get)
                .patch(admin::applications::patch)
                .delete(admin::applications::delete),
        )
        .route(
            "/v1.0/applications/{id}/addPassword",
            post(admin::applications::add_password),
        )
        .route(
            "/v1.0/applications/{id}/removePassword",
            post(admin::applications::remove_password),
        )
        .route(
            "/v1.0/users",
            get(admin::users::list).post(admin::users::create),
        )
        .route(
            "/v1.0/users/{id}",
            get(admin::users::get)
                .patch(admin::users::update)
                .delete(admin::users::delete),
        )
        .route("/v1.0/directoryRoles", get(admin::roles::list))
        .route(
            "/v1.0/directoryRoles/{id}/members",
            get(admin::roles::members),
        )
        .route(
            "/v1.0/directoryRoles/{id}/members/$ref",
            post(admin::roles::add_member),
        )
        .route(
            "/v1.0/directoryRoles/{id}/members/{user_id}/$ref",
            axum::routing::delete(admin::roles::remove_member),
        )
        .route(
            "/v1.0/groups",
            get(admin::groups::list).post(admin::groups::create),
        )
        .route(
            "/v1.0/groups/{id}",
            get(admin::groups::get).delete(admin::groups::delete),
        )
        .route("/v1.0/groups/{id}/members", get(admin::groups::members))
        .route(
            "/v1.0/groups/{id}/members/$ref",
            post(admin::groups::add_member),
        )
        .route(
            "/v1.0/groups/{id}/members/{user_id}/$ref",
            axum::routing::delete(admin::groups::remove_member),
        )
        .route(
            "/v1.0/identity/conditionalAccess/policies",
            get(admin::policies::list).post(admin::policies::create),
        )
        .route(
            "/v1.0/identity/conditionalAccess/policies/{id}",
            get(admin::policies::get)
                .patch(admin::policies::update)
                .delete(admin::policies::delete),
        )
        .route(
            "/v1.0/identity/conditionalAccess/evaluate",
            post(admin::policies::evaluate),
        )
        .route("/v1.0/tenantd/reload", post(admin::policies::reload))
        .route("/v1.0/auditLogs/signIns", get(admin::sign_ins::sign_ins))
        .route("/v1.0/auditLogs/directoryAudits", get(admin::audits::list))
        .route(
            "/v1.0/identityProtection/riskyUsers",
            get(admin::risk::list_risky_users),
        )
        .route(
            "/v1.0/identityProtection/riskyUsers/dismiss",
            post(admin::risk::dismiss),
        )
        .route(
            "/v1.0/identityProtection/riskyUsers/confirmCompromised",
            post(admin::risk::confirm_compromised),
        )
        .route(
            "/v1.0/identityProtection/riskyUsers/confirmSafe",
            post(admin::risk::confirm_safe),
        )
        .route(
            "/v1.0/identityProtection/riskyUsers/{id}",
            get(admin::risk::get_risky_user),
        )
        .route(
            "/v1.0/identityProtection/riskyUsers/{id}/history",
            get(admin::risk::risky_user_history),
        )
        .route(
            "/v1.0/identityProtection/riskDetections",
            get(admin::risk::list_risk_detections),
        )
        .route(
            crate::federated::CALLBACK_PATH,
            get(crate::federated::callback),
        )
        .route(
            crate::ssf_receiver::PUSH_PATH,
            post(crate::ssf_receiver::push),
        )
        .route(
            "/v1.0/identityProtection/sharedSignals/received",
            get(crate::ssf_receiver::received),
        )
        .route("/login/change-password", post(login::change_submit))
        .route("/login/mfa", get(mfa::page).post(mfa::verify_submit))
        .route("/login/mfa/recovery", post(mfa::recovery_submit))
        .route("/login/mfa/enrol", post(mfa::enrol_submit))
        .route("/login/mfa/email/send", post(mfa::email_send))
        .route("/login/mfa/email", post(mfa::email_submit))
        .merge(dev_routes(state.config.mail.outbox()))
        .route(
            "/consent",
            get(login::consent_page).post(login::consent_submit),
        )
        .route("/static/tenantd.css", get(css))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(crate::metrics::serve))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::track,
        ))
        .fallback(not_found)
        .with_state(state.clone());
    let headers = ServiceBuilder::new()
        // What the layers outside the router answer themselves (a timeout, a URI too long).
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(STRICT_CSP),
        ))
        .option_layer(hsts)
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ));
    // The middleware wraps the router once, not each route: `Router::layer` would wrap every
    // route in its own boxed copy of the whole stack, cloned (box by box) for each request.
    let app = ServiceBuilder::new()
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::COOKIE,
        ]))
        .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(PropagateRequestIdLayer::new(request_id))
        .layer(CatchPanicLayer::custom(|_| {
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }))
        .layer(axum::middleware::from_fn(limit_uri))
        .layer(RequestBodyLimitLayer::new(MAX_BODY))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
        .layer(headers)
        .map_request(axum_body)
        .layer(axum::middleware::from_fn_with_state(
            Edge {
                state,
                csp: page_csp,
            },
            edge,
        ))
        .service(routes);
    Router::new().fallback_service(app)
}

/// A member's security info ([`crate::account`]) and its sign-in ([`crate::portal`]).
fn account_pages() -> Router<AppState> {
    use crate::account;
    Router::new()
        .route("/account", get(account::home))
        .route("/account/callback", get(crate::portal::account_callback))
        .route("/account/signout", post(account::sign_out))
        .route(
            account::SECURITY_PATH,
            get(account::page).post(account::action),
        )
}

/// The admin pages ([`admin::pages`]) and their sign-in ([`crate::portal`]).
fn admin_pages() -> Router<AppState> {
    use admin::pages;
    Router::new()
        .route("/admin", get(pages::home))
        .route("/admin/callback", get(crate::portal::admin_callback))
        .route("/admin/signout", post(pages::sign_out))
        .route("/admin/risky-users", get(pages::risky_users))
        .route("/admin/risky-users.csv", get(pages::risky_users_csv))
        .route("/admin/users", get(pages::users))
        .route(
            "/admin/users/{id}",
            get(pages::user).post(pages::user_action),
        )
        .route("/admin/guests", get(pages::guests).post(pages::invite))
        .route("/admin/detections", get(pages::detections))
        .route("/admin/sign-ins", get(pages::sign_in_logs))
        .route("/admin/policies", get(pages::policies))
        .route("/admin/policies/{id}", post(pages::set_policy_state))
        .route("/admin/audit", get(pages::audit))
        .route("/admin/shared-signals", get(pages::shared_signals))
}

/// Dynamic client registration (RFC 7591, RFC 7592), when the tenant allows it; otherwise
/// these paths are not found.
fn registration_routes(enabled: bool) -> Router<AppState> {
    if !enabled {
        return Router::new();
    }
    Router::new()
        .route(paths::REGISTER, post(registration::register))
        .route(
            "/register/{client_id}",
            get(registration::read)
                .put(registration::replace)
                .delete(registration::delete),
        )
}

/// The development outbox page, when mail goes to the outbox; otherwise the path is not found.
fn dev_routes(outbox: bool) -> Router<AppState> {
    if !outbox {
        return Router::new();
    }
    Router::new().route(crate::dev::OUTBOX_PATH, get(crate::dev::outbox))
}

/// The page CSP with forms allowed to this tenant only.
const STRICT_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The pages' default Content-Security-Policy (a response that sets its own, like
/// `form_post`'s, keeps it). `form-action` allows `'self'` and where this tenant's forms
/// legitimately end up: Chrome and Safari hold a form submission's redirects to `form-action`
/// too (w3c/webappsec-csp#8), and the sign-in's forms are answered with a 303 to the app's
/// redirect URI (password, MFA, consent), a refused sign-in's page posts to it, a confirmed
/// logout goes to a post-logout redirect URI, and the email page sends a guest on to their home.
/// So: the origins known at start-up (the config file's apps' redirect and post-logout redirect
/// URIs, the partners' issuers), plus the page's own [`FormTarget`] (the redirect URI of the
/// sign-in it serves, which is how an app registered while the tenant runs is reached) — never
/// any other. The header for the start-up origins is made once; a page adds to it only when its
/// target is not among them.
struct PageCsp {
    sources: BTreeSet<String>,
    header: HeaderValue,
}

impl PageCsp {
    fn new(config: &crate::config::Config) -> Self {
        let sources: BTreeSet<String> = config
            .apps
            .iter()
            .flat_map(|a| a.redirect_uris.iter().chain(&a.post_logout_redirect_uris))
            .chain(config.partners.iter().map(|p| &p.issuer))
            .filter_map(|u| csp_source(u))
            .collect();
        let header = csp_header(&sources);
        Self { sources, header }
    }

    /// The header for a page whose forms end at `target` (if any).
    fn for_target(&self, target: Option<&str>) -> HeaderValue {
        match target.and_then(csp_source) {
            Some(extra) if !self.sources.contains(&extra) => {
                let mut sources = self.sources.clone();
                sources.insert(extra);
                csp_header(&sources)
            }
            _ => self.header.clone(),
        }
    }
}

/// What the router's own middleware ([`edge`]) needs.
#[derive(Clone)]
struct Edge {
    state: AppState,
    csp: Arc<PageCsp>,
}

/// The router's own middleware, one layer (each layer boxes a future and its next service for
/// every request): a client over its rate limit is answered 429; a handler's [`PageError`]
/// becomes the tenant's error page; every response without a CSP of its own gets [`PageCsp`].
///
/// [`PageError`]: crate::web::PageError
async fn edge(
    State(edge): State<Edge>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut resp = match crate::rate_limits::refusal(&edge.state, &req) {
        Some(refused) => refused,
        None => crate::web::with_error_pages(&edge.state, req, next).await,
    };
    if !resp.headers().contains_key(header::CONTENT_SECURITY_POLICY) {
        let target = resp.extensions().get::<FormTarget>().map(|t| t.0.as_str());
        let value = edge.csp.for_target(target);
        resp.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, value);
    }
    resp
}

fn csp_header(sources: &BTreeSet<String>) -> HeaderValue {
    let csp = format!(
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action {}; frame-ancestors 'none'; base-uri 'none'",
        form_action(sources)
    );
    HeaderValue::from_str(&csp).unwrap_or(HeaderValue::from_static(STRICT_CSP))
}

/// The CSP source of a URI: its origin (`https://app.test:8443`), or for a URI without one (a
/// native app's private-use scheme) its scheme (`com.example.app:`).
fn csp_source(uri: &str) -> Option<String> {
    let u = url::Url::parse(uri).ok()?;
    Some(match u.origin() {
        origin @ url::Origin::Tuple(..) => origin.ascii_serialization(),
        url::Origin::Opaque(_) => format!("{}:", u.scheme()),
    })
}

/// `'self'` and `sources`, as `form-action` lists them.
fn form_action(sources: &BTreeSet<String>) -> String {
    std::iter::once("'self'")
        .chain(sources.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

async fn limit_uri(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if uri_len(req.uri()) > MAX_URI {
        return (StatusCode::URI_TOO_LONG, "The request URI is too long.").into_response();
    }
    next.run(req).await
}

/// A request's tracing span: method, path and request id (its correlation id).
fn request_span<B>(req: &axum::http::Request<B>) -> tracing::Span {
    let id = req
        .headers()
        .get(crate::web::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
}

/// The request with its body (limited by [`RequestBodyLimitLayer`]) as axum's body type, which
/// the middleware inside takes.
fn axum_body<B>(req: axum::http::Request<B>) -> axum::extract::Request
where
    B: axum::body::HttpBody<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    req.map(axum::body::Body::new)
}

/// The length of `uri` as written (`scheme://authority/path?query`), without writing it.
fn uri_len(uri: &axum::http::Uri) -> usize {
    uri.scheme_str().map_or(0, |s| s.len() + "://".len())
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path_and_query().map_or(0, |p| p.as_str().len())
}

async fn discovery(State(state): State<AppState>) -> Response {
    json_bytes(state.discovery.clone(), "public, max-age=300")
}

async fn jwks(State(state): State<AppState>) -> Response {
    json_bytes(state.jwks(), "public, max-age=60")
}

fn json_bytes(body: bytes::Bytes, cache: &'static str) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        body,
    )
        .into_response()
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../static/tenantd.css"),
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok"
}

/// How long `/readyz` waits for the database: a probe's own timeout is a few seconds, and an
/// unreachable database must read as "not ready", not as a probe that hangs.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

async fn readyz(State(state): State<AppState>) -> Response {
    match tokio::time::timeout(READY_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready").into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "database not reachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response()
        }
        Err(_) => {
            tracing::warn!("database did not answer in time");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response()
        }
    }
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found").into_response()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn form_action_names_self_and_the_origins_forms_end_at() {
        let uris = [
            "https://app.test/cb",
            "https://app.test/other?x=1",
            "http://127.0.0.1:9555/callback",
            "https://login.partner.test/tenant/v2.0",
            "com.example.app:/oauth2redirect",
            "not a uri",
        ];
        let sources: BTreeSet<String> = uris.into_iter().filter_map(csp_source).collect();
        assert_eq!(
            form_action(&sources),
            "'self' com.example.app: http://127.0.0.1:9555 https://app.test https://login.partner.test"
        );
        assert_eq!(form_action(&BTreeSet::new()), "'self'");
    }

    #[test]
    fn a_uris_length_is_the_length_it_is_written_with() {
        for uri in [
            "/authorize?client_id=app&redirect_uri=https%3A%2F%2Fapp.test%2Fcb&scope=openid",
            "/",
            "*",
            "https://idp.test:8443/token?x=1",
            "http://idp.test",
            "idp.test:443",
        ] {
            let parsed: axum::http::Uri = uri.parse().unwrap_or_else(|e| panic!("{uri}: {e}"));
            assert_eq!(uri_len(&parsed), parsed.to_string().len(), "{uri}");
        }
    }
}
