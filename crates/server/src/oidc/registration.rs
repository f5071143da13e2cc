//! Dynamic client registration: `POST /register` (RFC 7591) and the management of a
//! registration at its `registration_client_uri`, `/register/{client_id}` (RFC 7592: read,
//! replace, delete, each with the registration access token). Served only when the tenant's
//! `[registration]` says `enabled = true` (see [`crate::app::router`]). The rules are the app
//! registry's ([`signin::apps`]); a handler parses, makes one registry call and renders.

use crate::secrets::{ct_eq, token_hash};
use crate::state::AppState;
use crate::web::{ApiError, BearerError, bearer_header, no_store};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use protocol::discovery::paths;
use protocol::{ErrorCode, OAuthError};
use serde_json::{Map, Value};
use signin::apps::{self, App, Metadata, MetadataError, RegistryError, Trust};
use std::sync::Arc;
use store::AppSource;

/// `POST /register`: registers the client described by the JSON body; 201 with its client id,
/// its client secret (for a secret-based client, shown this once), the registration access
/// token and where to manage the registration (RFC 7591 §3.2.1).
pub async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Error> {
    if let Some(expected) = &state.config.registration.initial_access_token {
        let presented = bearer_header(&headers).unwrap_or_default();
        // Digests, so the comparison takes as long whatever was sent.
        if !ct_eq(
            token_hash(&presented).as_bytes(),
            token_hash(expected).as_bytes(),
        ) {
            return Err(OAuthError::invalid_token(
                "Registering a client needs this tenant's initial access token.",
            )
            .into());
        }
    }
    let (meta, _) = metadata(&headers, &body)?;
    let registered =
        apps::register(&state, None, &meta, Trust::default(), AppSource::Dynamic).await?;
    let token = registered.registration_token.ok_or_else(|| {
        OAuthError::server_error("a dynamic registration came back without its token")
    })?;
    let mut body = information(&state, &registered.app, &token);
    if let Some(secret) = registered.client_secret {
        body.insert("client_secret".into(), secret.into());
        body.insert("client_secret_expires_at".into(), 0.into());
    }
    Ok(reply(StatusCode::CREATED, body))
}

/// `GET /register/{client_id}`: the registration as it is now (RFC 7592 §2.1), without the
/// client secret, which is never kept.
pub async fn read(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let (app, token) = authorized(&state, &headers, &client_id).await?;
    Ok(reply(StatusCode::OK, information(&state, &app, &token)))
}

/// `PUT /register/{client_id}`: replaces the registration (RFC 7592 §2.2). The body carries
/// the client id; a client secret in it must be the client's (it cannot be changed here);
/// metadata left out takes its default. The client id, secret and registration access token
/// stay the same.
pub async fn replace(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Error> {
    let (app, token) = authorized(&state, &headers, &client_id).await?;
    let (meta, object) = metadata(&headers, &body)?;
    if object.get("client_id").and_then(Value::as_str) != Some(client_id.as_str()) {
        return Err(refused(MetadataError::ClientMetadata(
            "client_id: the body must carry the client id of the registration it replaces".into(),
        )));
    }
    if let Some(secret) = object.get("client_secret")
        && !secret
            .as_str()
            .is_some_and(|s| app.accepts_secret(s, state.now()))
    {
        return Err(refused(MetadataError::ClientMetadata(
            "client_secret: only the client's current secret (it cannot be changed here)".into(),
        )));
    }
    let app = apps::update(&state, &client_id, &meta, Trust::default()).await?;
    Ok(reply(StatusCode::OK, information(&state, &app, &token)))
}

/// `DELETE /register/{client_id}`: deletes the registration (RFC 7592 §2.3); its codes can no
/// longer be redeemed and its grants, refresh and access tokens are revoked.
pub async fn delete(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    authorized(&state, &headers, &client_id).await?;
    apps::delete(&state, &client_id).await?;
    let mut r = StatusCode::NO_CONTENT.into_response();
    no_store(r.headers_mut());
    Ok(r)
}

/// The dynamic registration `client_id` when the request carries its registration access token,
/// and the token. Any other case — no token, a wrong one, no such client, a client that was not
/// registered dynamically — is the same `invalid_token`, so nobody learns which clients exist.
async fn authorized(
    state: &AppState,
    headers: &HeaderMap,
    client_id: &str,
) -> Result<(Arc<App>, String), Error> {
    let refused =
        || OAuthError::invalid_token("The registration access token is not valid for this client.");
    let token = bearer_header(headers)
        .filter(|t| !t.is_empty())
        .ok_or_else(refused)?;
    match state.app(client_id).await? {
        Some(app)
            if app.source == AppSource::Dynamic
                && apps::accepts_registration_token(&app, &token) =>
        {
            Ok((app, token))
        }
        _ => Err(refused().into()),
    }
}

/// The JSON body: client metadata, and the object it came in.
fn metadata(headers: &HeaderMap, body: &[u8]) -> Result<(Metadata, Map<String, Value>), Error> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(refused(MetadataError::ClientMetadata(
            "the request body must be a JSON object of client metadata (Content-Type: application/json)"
                .into(),
        )));
    }
    apps::parse_metadata(body).map_err(refused)
}

/// RFC 7591 §3.2.1 / RFC 7592 §3: the registered metadata with the client id, when it was
/// issued, the registration access token and where to manage the registration.
fn information(state: &AppState, app: &App, token: &str) -> Map<String, Value> {
    let mut body = match serde_json::to_value(apps::metadata_of(&app.config)) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let id = &app.config.client_id;
    body.insert("client_id".into(), id.clone().into());
    body.insert("client_id_issued_at".into(), app.created_at.into());
    body.insert("registration_access_token".into(), token.into());
    body.insert(
        "registration_client_uri".into(),
        format!("{}{}/{id}", state.config.issuer, paths::REGISTER).into(),
    );
    body
}

fn reply(status: StatusCode, body: Map<String, Value>) -> Response {
    let mut r = (status, axum::Json(Value::Object(body))).into_response();
    no_store(r.headers_mut());
    r
}

/// RFC 7591 §3.2.2: `invalid_redirect_uri` or `invalid_client_metadata`, with what is wrong.
fn refused(e: MetadataError) -> Error {
    let code = match e {
        MetadataError::RedirectUri(_) => ErrorCode::InvalidRedirectUri,
        MetadataError::ClientMetadata(_) => ErrorCode::InvalidClientMetadata,
    };
    Error::Api(OAuthError::new(code, e.to_string()))
}

/// A refused registration request: a bearer challenge (RFC 6750 §3) for a missing or wrong
/// token, RFC 7591's JSON error otherwise, 409 when the registration changed meanwhile.
#[derive(Debug)]
pub enum Error {
    /// 401 with `WWW-Authenticate: Bearer`.
    Token(OAuthError),
    /// RFC 6749 §5.2-shaped JSON with the code's status.
    Api(OAuthError),
    /// 409: a concurrent change won; read the registration again.
    Conflict(OAuthError),
}

impl From<OAuthError> for Error {
    fn from(e: OAuthError) -> Self {
        if e.code == ErrorCode::InvalidToken {
            Self::Token(e)
        } else {
            Self::Api(e)
        }
    }
}

impl From<store::StoreError> for Error {
    fn from(e: store::StoreError) -> Self {
        Self::Api(signin::tokens::store_failure(e))
    }
}

impl From<RegistryError> for Error {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Metadata(m) => refused(m),
            // Deleted (or never ours) between the token check and the change.
            RegistryError::NotFound(_) | RegistryError::ReadOnly(_) => {
                Self::Token(OAuthError::invalid_token(
                    "The registration access token is not valid for this client.",
                ))
            }
            RegistryError::Changed(_) => Self::Conflict(OAuthError::invalid_request(
                "The registration was changed meanwhile: read it again and retry.",
            )),
            RegistryError::Store(s) => s.into(),
            other @ (RegistryError::Exists(_) | RegistryError::NoSuchSecret(..)) => {
                Self::Api(OAuthError::server_error(other.to_string()))
            }
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match self {
            Self::Token(e) => BearerError(e).into_response(),
            Self::Api(e) => ApiError::from(e).into_response(),
            Self::Conflict(e) => {
                let mut r = ApiError::from(e).into_response();
                *r.status_mut() = StatusCode::CONFLICT;
                r
            }
        }
    }
}
