//! The demo's pages: askama templates (autoescaped HTML) and the data they show.

use askama::Template;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

/// `GET /`.
#[derive(Template)]
#[template(path = "home.html")]
pub(crate) struct HomePage<'a> {
    pub(crate) title: &'a str,
    pub(crate) issuer: &'a str,
    /// The `sub` of the signed-in user, when this browser has a result.
    pub(crate) signed_in_as: Option<&'a str>,
}

/// What a successful sign-in returned; kept in memory for `GET /result`.
#[derive(Template, Clone)]
#[template(path = "result.html")]
pub(crate) struct ResultPage {
    pub(crate) title: String,
    pub(crate) issuer: String,
    /// Every ID-token claim: name and pretty-printed JSON value, sorted by name.
    pub(crate) claims: Vec<(String, String)>,
    pub(crate) token: TokenInfo,
    pub(crate) userinfo: Userinfo,
    /// Whether the provider has an end-session endpoint.
    pub(crate) can_sign_out: bool,
}

/// The token response's fields other than the tokens themselves.
#[derive(Clone)]
pub(crate) struct TokenInfo {
    pub(crate) token_type: String,
    pub(crate) expires_in: Option<u64>,
    pub(crate) scope: Option<String>,
    pub(crate) refresh_token_issued: bool,
}

/// The userinfo call's outcome.
#[derive(Clone)]
pub(crate) enum Userinfo {
    /// The provider has no userinfo endpoint.
    NotOffered,
    /// Claim name and pretty-printed JSON value, sorted by name.
    Claims(Vec<(String, String)>),
    /// The call failed; the sign-in itself still succeeded.
    Failed(String),
}

/// An error the provider sent back in the authorization response.
pub(crate) struct ProviderError {
    pub(crate) error: String,
    pub(crate) description: Option<String>,
    pub(crate) iss: Option<String>,
}

/// Any failure.
#[derive(Template)]
#[template(path = "error.html")]
pub(crate) struct ErrorPage<'a> {
    pub(crate) title: &'a str,
    pub(crate) heading: &'a str,
    pub(crate) explanation: &'a str,
    pub(crate) provider_error: Option<&'a ProviderError>,
}

/// Claims as table rows: name and pretty JSON, sorted by name.
pub(crate) fn claim_rows(
    claims: &serde_json::Map<String, serde_json::Value>,
) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = claims
        .iter()
        .map(|(name, value)| {
            let pretty = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
            (name.clone(), pretty)
        })
        .collect();
    rows.sort();
    rows
}

/// Renders `page` as an HTML response with `status`.
pub(crate) fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => (status, Html(body)).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "rendering a page failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "The page could not be rendered.",
            )
                .into_response()
        }
    }
}
