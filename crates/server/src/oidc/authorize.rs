//! The authorization endpoint (RFC 6749 §4.1.1, OIDC Core §3.1.2): validate, then hand the
//! request to the gate through the browser's session (single sign-on) or the sign-in pages.

use crate::oidc::finish::{authorize_error, error_to_client};
use crate::session;
use crate::state::{App, AppState};
use crate::web::{Ctx, PageError};
use axum::extract::{RawForm, RawQuery, State};
use axum::response::Response;
use axum_extra::extract::cookie::CookieJar;
use protocol::authorize::{self, AuthorizeError, ClientRules};
use protocol::params::Params;
use protocol::{ErrorCode, OAuthError};
use signin::sign_in as progress;

/// The correlation id an app asked for with `client-request-id`, if it is a plausible one
/// (letters, digits and '-', at most 64): it only joins logs, so anything else is ignored.
fn client_request_id(params: &Params) -> Option<String> {
    params
        .get("client-request-id")
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        .map(str::to_owned)
}

/// `GET /authorize`.
pub async fn get(
    State(state): State<AppState>,
    ctx: Ctx,
    jar: CookieJar,
    RawQuery(q): RawQuery,
) -> Response {
    authorize(state, ctx, jar, q.unwrap_or_default().as_bytes()).await
}

/// `POST /authorize` (OIDC Core §3.1.2.1 allows form-encoded POST).
pub async fn post(
    State(state): State<AppState>,
    ctx: Ctx,
    jar: CookieJar,
    RawForm(body): RawForm,
) -> Response {
    authorize(state, ctx, jar, &body).await
}

async fn authorize(state: AppState, ctx: Ctx, jar: CookieJar, raw: &[u8]) -> Response {
    let params = match Params::parse(raw) {
        Ok(p) => p,
        Err(e) => return refuse_unreadable(&state, &ctx, raw, e).await,
    };
    let client_id = match authorize::client_id(&params) {
        Ok(c) => c,
        Err(e) => return authorize_error(&state, &ctx, e),
    };
    let app = match state.app(client_id).await {
        Ok(app) => app,
        Err(e) => return PageError::from(e).render(&state, &ctx),
    };
    let Some(app) = app else {
        return PageError::bad_request(
            "Unknown application",
            "The application that sent you here is not registered with this organization.",
        )
        .render(&state, &ctx);
    };
    let mut request = match authorize::validate(&params, &rules(&app)) {
        Ok(r) => r,
        Err(e) => return authorize_error(&state, &ctx, e),
    };
    authorize::limit_offline_access(&mut request, app.config.first_party);
    let correlation_id = client_request_id(&params).unwrap_or_else(|| ctx.correlation_id.clone());
    let current = match session::current(&state, &jar).await {
        Ok(c) => c,
        Err(e) => return PageError::from(e).render(&state, &ctx),
    };
    let now = state.now();
    let current =
        current.filter(|c| authorize::session_satisfies(&request, c.session.auth_time, now));
    match current {
        Some(c) => {
            // Single sign-on with the existing session is a sign-in too: judged and logged.
            crate::login::gate::judge_single_sign_on(state, ctx, jar, request, correlation_id, c)
                .await
        }
        None if request.prompt.none => error_to_client(
            &state,
            &ctx,
            &request,
            OAuthError::new(ErrorCode::LoginRequired, "The user is not signed in."),
        ),
        None => match progress::begin(&state, request, correlation_id).await {
            Ok((id, sign_in)) => crate::login::first_page(&state, &ctx, jar, &id, sign_in).await,
            Err(e) => PageError::from(e).render(&state, &ctx),
        },
    }
}

/// A request whose parameters could not all be read (bytes that are not UTF-8): refused to the
/// app if its client and redirect URI can still be read and are right, else with a page.
async fn refuse_unreadable(state: &AppState, ctx: &Ctx, raw: &[u8], e: OAuthError) -> Response {
    let readable = Params::parse_decodable(raw).ok();
    let app = match readable.as_ref().and_then(|p| p.get("client_id")) {
        // A store failure here only loses the way back to the app: the refusal stays a page.
        Some(c) => state.app(c).await.ok().flatten(),
        None => None,
    };
    let refusal = match (&readable, &app) {
        (Some(p), Some(app)) => authorize::refuse_unreadable(p, &rules(app), e),
        _ => AuthorizeError::Page(e),
    };
    authorize_error(state, ctx, refusal)
}

/// The rules the protocol checks need from an app.
pub fn rules(app: &App) -> ClientRules<'_> {
    use crate::config::GrantType;
    ClientRules {
        client_id: &app.config.client_id,
        redirect_uris: &app.config.redirect_uris,
        public: app.config.auth_method == protocol::client_auth::AuthMethod::None,
        allows_authorization_code: app
            .config
            .grant_types
            .contains(&GrantType::AuthorizationCode),
        extra_scopes: &app.config.scopes,
    }
}
