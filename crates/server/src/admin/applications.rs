//! `/v1.0/applications`: app registrations in Graph's `application` shape where it fits.
//!
//! Graph's fields carry the name (`displayName`) and redirect URIs (`web` for confidential
//! apps, `publicClient` or `spa` for public ones) and client secrets (`passwordCredentials`,
//! `addPassword`, `removePassword`); what OpenID Connect needs beyond them (grant types, token
//! endpoint authentication, scopes, ID token algorithm, a public key set for `private_key_jwt`,
//! first-party and partner-tenant trust, post-logout redirect URIs) is in a `tenantd` object.
//! `id` and `appId` are both the client id. Apps from the config file are listed with
//! `tenantd.readOnly: true` and cannot be changed here. The rules are the registry's
//! ([`signin::apps`]): the same as the config file's and dynamic registration's.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use jsonwebtoken::jwk::JwkSet;
use serde::Deserialize;
use serde_json::{Value, json};
use signin::apps::{self, App, Metadata, RegistryError, Trust};
use signin::config::AppConfig;
use store::AppSource;

use crate::admin::{Admin, GraphError, GraphJson, GraphQuery, no_content, reply};
use crate::state::AppState;
use crate::user_risk::iso;
use protocol::client_auth::AuthMethod;

/// A create or PATCH body. Every field is optional: a PATCH changes what it names.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplicationBody {
    display_name: Option<String>,
    web: Option<RedirectUris>,
    spa: Option<RedirectUris>,
    public_client: Option<RedirectUris>,
    is_fallback_public_client: Option<bool>,
    tenantd: Option<Extension>,
}

/// Graph's `webApplication` / `spaApplication` / `publicClientApplication`, reduced to what
/// OpenID Connect uses.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RedirectUris {
    #[serde(default)]
    redirect_uris: Vec<String>,
}

/// The OpenID Connect settings Graph has no field for.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Extension {
    grant_types: Option<Vec<String>>,
    token_endpoint_auth_method: Option<String>,
    first_party: Option<bool>,
    scopes: Option<Vec<String>>,
    id_token_signed_response_alg: Option<String>,
    partner_tenant: Option<bool>,
    post_logout_redirect_uris: Option<Vec<String>>,
    jwks: Option<JwkSet>,
    // Shown in answers; accepted back unchanged so a GET body can be PATCHed.
    source: Option<String>,
    read_only: Option<bool>,
}

/// `addPassword` body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddPassword {
    #[serde(default)]
    password_credential: PasswordCredential,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PasswordCredential {
    display_name: Option<String>,
    end_date_time: Option<String>,
}

/// `removePassword` body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemovePassword {
    key_id: String,
}

/// The registration a body asks for, applied over `current` (a PATCH) or over nothing (a
/// create): RFC 7591 metadata and trust, for the registry to validate.
fn desired(current: Option<&AppConfig>, body: ApplicationBody) -> (Metadata, Trust) {
    let ext = body.tenantd.unwrap_or_default();
    let _ = (ext.source, ext.read_only);
    let current_public = current.is_some_and(|c| c.auth_method == AuthMethod::None);
    let named_uris = [&body.web, &body.spa, &body.public_client]
        .iter()
        .any(|u| u.is_some());
    let public = body.is_fallback_public_client.unwrap_or(if named_uris {
        body.web.is_none()
    } else {
        current_public
    });
    let redirect_uris = if named_uris {
        [body.web, body.spa, body.public_client]
            .into_iter()
            .flatten()
            .flat_map(|u| u.redirect_uris)
            .collect()
    } else {
        current.map(|c| c.redirect_uris.clone()).unwrap_or_default()
    };
    let method = match (ext.token_endpoint_auth_method, current) {
        (Some(m), _) => m,
        _ if public => "none".to_owned(),
        (None, Some(c)) if c.auth_method != AuthMethod::None => c.auth_method.as_str().to_owned(),
        (None, _) => "client_secret_basic".to_owned(),
    };
    let grant_types = ext.grant_types.unwrap_or_else(|| match current {
        Some(c) => c
            .grant_types
            .iter()
            .map(|g| apps::grant_type_str(*g).to_owned())
            .collect(),
        None => vec!["authorization_code".into(), "refresh_token".into()],
    });
    let meta = Metadata {
        client_name: body
            .display_name
            .or_else(|| current.map(|c| c.name.clone())),
        redirect_uris,
        post_logout_redirect_uris: ext.post_logout_redirect_uris.unwrap_or_else(|| {
            current
                .map(|c| c.post_logout_redirect_uris.clone())
                .unwrap_or_default()
        }),
        response_types: None,
        token_endpoint_auth_method: Some(method),
        scope: ext
            .scopes
            .map(|s| s.join(" "))
            .or_else(|| current.map(|c| c.scopes.join(" "))),
        id_token_signed_response_alg: ext
            .id_token_signed_response_alg
            .or_else(|| current.map(|c| c.id_token_alg.as_str().to_owned())),
        jwks: ext.jwks.or_else(|| current.and_then(|c| c.jwks.clone())),
        jwks_uri: None,
        grant_types: Some(grant_types),
    };
    let trust = Trust {
        first_party: ext
            .first_party
            .unwrap_or(current.is_some_and(|c| c.first_party)),
        partner_tenant: ext
            .partner_tenant
            .unwrap_or(current.is_some_and(|c| c.partner_tenant)),
    };
    (meta, trust)
}

/// An app in Graph's shape.
fn application(state: &AppState, app: &App) -> Value {
    let c = &app.config;
    let public = c.auth_method == AuthMethod::None;
    let uris = json!({ "redirectUris": c.redirect_uris });
    let empty = json!({ "redirectUris": [] });
    json!({
        "@odata.context": format!("{}/v1.0/$metadata#applications/$entity", state.config.issuer),
        "id": c.client_id,
        "appId": c.client_id,
        "displayName": c.name,
        "createdDateTime": (app.created_at > 0).then(|| iso(app.created_at)),
        "signInAudience": "AzureADMyOrg",
        "isFallbackPublicClient": public,
        "web": if public { empty.clone() } else { uris.clone() },
        "publicClient": if public { uris } else { empty },
        "passwordCredentials": password_credentials(app),
        "tenantd": {
            "source": app.source.as_str(),
            "readOnly": app.is_read_only(),
            "grantTypes": c.grant_types.iter().map(|g| apps::grant_type_str(*g)).collect::<Vec<_>>(),
            "tokenEndpointAuthMethod": c.auth_method.as_str(),
            "firstParty": c.first_party,
            "scopes": c.scopes,
            "idTokenSignedResponseAlg": c.id_token_alg.as_str(),
            "partnerTenant": c.partner_tenant,
            "postLogoutRedirectUris": c.post_logout_redirect_uris,
            "jwks": c.jwks,
        },
    })
}

/// Graph's `passwordCredential`s: metadata only. A config-file app's secret is not listed:
/// it lives in the file.
fn password_credentials(app: &App) -> Vec<Value> {
    if app.source == AppSource::Config {
        return Vec::new();
    }
    app.secrets
        .iter()
        .map(|s| {
            json!({
                "keyId": s.key_id,
                "displayName": s.display_name,
                "hint": s.hint,
                "startDateTime": iso(s.start),
                "endDateTime": s.end.map(iso),
                "secretText": null,
            })
        })
        .collect()
}

impl From<RegistryError> for GraphError {
    #[track_caller]
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Metadata(m) => GraphError::bad_request(format!("{} ({})", m, m.code())),
            RegistryError::Exists(_) => GraphError::bad_request(format!(
                "Another object with the same value for property appId already exists. ({e})"
            )),
            RegistryError::NotFound(id) => {
                GraphError::not_found(format!("Application {id:?} does not exist."))
            }
            RegistryError::ReadOnly(_) | RegistryError::Changed(_) => {
                GraphError::conflict(e.to_string())
            }
            RegistryError::NoSuchSecret(..) => GraphError::not_found(e.to_string()),
            RegistryError::Store(s) => GraphError::internal(s),
        }
    }
}

/// `GET /v1.0/applications`: every app, by client id. No query options (`$filter`, `$top`, ...)
/// are supported, and one given is refused rather than ignored.
pub async fn list(
    State(state): State<AppState>,
    _admin: Admin,
    GraphQuery(query): GraphQuery,
) -> Result<Response, GraphError> {
    if let Some(option) = query.keys().next() {
        return Err(GraphError::unsupported_query(format!(
            "Query option {option:?} is not supported on applications."
        )));
    }
    let value: Vec<Value> = apps::list(&state)
        .await?
        .iter()
        .map(|a| {
            let mut v = application(&state, a);
            if let Some(o) = v.as_object_mut() {
                o.remove("@odata.context");
            }
            v
        })
        .collect();
    Ok(reply(
        StatusCode::OK,
        json!({
            "@odata.context": format!("{}/v1.0/$metadata#applications", state.config.issuer),
            "value": value,
        }),
    ))
}

/// `GET /v1.0/applications/{id}`
pub async fn get(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, GraphError> {
    let app = state
        .app(&id)
        .await?
        .ok_or_else(|| GraphError::from(RegistryError::NotFound(id)))?;
    Ok(reply(StatusCode::OK, application(&state, &app)))
}

/// `POST /v1.0/applications`: 201 with the new app (no secret yet: `addPassword` makes one).
pub async fn create(
    State(state): State<AppState>,
    admin: Admin,
    GraphJson(body): GraphJson<ApplicationBody>,
) -> Result<Response, GraphError> {
    if body
        .display_name
        .as_deref()
        .is_none_or(|n| n.trim().is_empty())
    {
        return Err(GraphError::bad_request("displayName is required."));
    }
    let (meta, trust) = desired(None, body);
    let registered = apps::register(&state, None, &meta, trust, AppSource::Api).await?;
    tracing::info!(admin = %admin.client_id, app = %registered.app.config.client_id, "application registered");
    Ok(reply(
        StatusCode::CREATED,
        application(&state, &registered.app),
    ))
}

/// `PATCH /v1.0/applications/{id}`: 204; changes hold at once on every replica.
pub async fn patch(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    GraphJson(body): GraphJson<ApplicationBody>,
) -> Result<Response, GraphError> {
    let current = state
        .app(&id)
        .await?
        .ok_or_else(|| GraphError::from(RegistryError::NotFound(id.clone())))?;
    if current.is_read_only() {
        return Err(GraphError::from(RegistryError::ReadOnly(id)));
    }
    let (meta, trust) = desired(Some(&current.config), body);
    apps::update(&state, &id, &meta, trust).await?;
    tracing::info!(admin = %admin.client_id, app = %id, "application changed");
    Ok(no_content())
}

/// `DELETE /v1.0/applications/{id}`: 204; the app's codes, grants and tokens stop working.
pub async fn delete(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, GraphError> {
    apps::delete(&state, &id).await?;
    tracing::info!(admin = %admin.client_id, app = %id, "application deleted");
    Ok(no_content())
}

/// `POST /v1.0/applications/{id}/addPassword`: the new `passwordCredential` with its
/// `secretText`, shown this once.
pub async fn add_password(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    GraphJson(body): GraphJson<AddPassword>,
) -> Result<Response, GraphError> {
    let end = match body.password_credential.end_date_time.as_deref() {
        None => None,
        Some(t) => Some(
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .map_err(|_| {
                    GraphError::bad_request(format!(
                        "endDateTime must be an RFC 3339 date-time, got {t:?}."
                    ))
                })?
                .unix_timestamp(),
        ),
    };
    let (secret, record) =
        apps::add_secret(&state, &id, body.password_credential.display_name, end).await?;
    tracing::info!(admin = %admin.client_id, app = %id, key_id = %record.key_id, "client secret added");
    Ok(reply(
        StatusCode::OK,
        json!({
            "@odata.context": format!("{}/v1.0/$metadata#microsoft.graph.passwordCredential", state.config.issuer),
            "keyId": record.key_id,
            "displayName": record.display_name,
            "hint": record.hint,
            "startDateTime": iso(record.start),
            "endDateTime": record.end.map(iso),
            "secretText": secret,
        }),
    ))
}

/// `POST /v1.0/applications/{id}/removePassword`: 204; the secret stops working at once.
pub async fn remove_password(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    GraphJson(body): GraphJson<RemovePassword>,
) -> Result<Response, GraphError> {
    apps::remove_secret(&state, &id, &body.key_id).await?;
    tracing::info!(admin = %admin.client_id, app = %id, key_id = %body.key_id, "client secret removed");
    Ok(no_content())
}
