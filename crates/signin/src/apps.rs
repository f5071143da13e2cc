//! The app registry: apps (OIDC clients) from the config file, and apps registered while the
//! tenant runs — through the admin API (`/v1.0/applications`) or RFC 7591 dynamic registration.
//!
//! Config-file apps are read-only and held in memory. Registered apps live in the store and are
//! read from it at each use, so a change made on one replica (a new redirect URI, a removed
//! secret, a deleted app) holds on every replica at once. A registration is validated here, as
//! RFC 7591 §2 metadata, whichever door it came through; client secrets are generated here,
//! shown once, and stored only as digests.

use crate::config::{AppConfig, GrantType, check_redirect_uri};
use crate::directory::Directory;
use crate::secrets::{ct_eq, random_token, token_hash};
use protocol::client_auth::AuthMethod;
use protocol::jwt::SigningAlg;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use store::{AppRecord, AppSource, StoreError};

/// The client id of tenantd's own pages (the admin pages, a member's security info): they
/// sign people in through this tenant's authorization code flow like any app, so every
/// policy, MFA step and risk decision applies to them too.
pub const PORTAL_CLIENT_ID: &str = "tenantd-portal";

/// The built-in app of tenantd's own pages: first-party (no consent), public with PKCE (its
/// code is redeemed in-process and never leaves the tenant), redirecting only to the pages'
/// own callbacks, and allowed the `admin` scope (the admin pages still require the
/// administrator role of the user at every request).
pub fn portal_app(config: &crate::config::Config) -> AppConfig {
    AppConfig {
        client_id: PORTAL_CLIENT_ID.to_owned(),
        name: format!("{} account and admin pages", config.display_name),
        client_secret: None,
        auth_method: AuthMethod::None,
        redirect_uris: PORTAL_CALLBACKS
            .iter()
            .map(|path| format!("{}{path}", config.issuer))
            .collect(),
        post_logout_redirect_uris: Vec::new(),
        grant_types: vec![crate::config::GrantType::AuthorizationCode],
        first_party: true,
        scopes: vec![ADMIN_SCOPE.to_owned()],
        id_token_alg: config.signing_alg,
        jwks: None,
        partner_tenant: false,
        push_ca_file: None,
    }
}

/// Where the portal's sign-ins return: the admin pages' and the security info pages' callbacks.
pub const PORTAL_CALLBACKS: [&str; 2] = ["/admin/callback", "/account/callback"];

/// A registered app with its secrets reduced to digests.
#[derive(Debug, Clone)]
pub struct App {
    /// The registration.
    pub config: AppConfig,
    /// The client secrets it may authenticate with (for a config-file app, the one configured).
    pub secrets: Vec<ClientSecret>,
    /// Where the registration comes from.
    pub source: AppSource,
    /// Creation time, unix seconds (0 for config-file apps).
    pub created_at: i64,
    /// Last change, unix seconds: an update applies only to the version it read.
    pub updated_at: i64,
    /// Digest of the RFC 7592 registration access token (dynamic registrations).
    pub registration_token_hash: Option<String>,
}

/// One client secret: its digest and Graph's `passwordCredential` metadata. The secret itself
/// is shown once, when it is made, and never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientSecret {
    /// Stable id (`keyId`), used to remove it.
    pub key_id: String,
    /// A label.
    #[serde(default)]
    pub display_name: Option<String>,
    /// The secret's first three characters, to tell secrets apart.
    pub hint: String,
    /// Valid from, unix seconds.
    pub start: i64,
    /// Valid until, unix seconds; `None` for no expiry.
    #[serde(default)]
    pub end: Option<i64>,
    /// [`token_hash`] of the secret.
    pub digest: String,
}

impl ClientSecret {
    /// A new random secret (256 bits, base64url) valid from `now` until `end`, and its record.
    pub fn generate(display_name: Option<String>, now: i64, end: Option<i64>) -> (String, Self) {
        let secret = random_token();
        let record = Self {
            key_id: uuid::Uuid::new_v4().to_string(),
            display_name,
            hint: secret.chars().take(3).collect(),
            start: now,
            end,
            digest: token_hash(&secret),
        };
        (secret, record)
    }
}

impl App {
    /// A config-file app.
    pub fn from_config(config: &AppConfig) -> Self {
        let secrets = config
            .client_secret
            .as_deref()
            .map(|s| ClientSecret {
                key_id: "config".to_owned(),
                display_name: Some("config file".to_owned()),
                hint: String::new(),
                start: 0,
                end: None,
                digest: token_hash(s),
            })
            .into_iter()
            .collect();
        Self {
            config: config.clone(),
            secrets,
            source: AppSource::Config,
            created_at: 0,
            updated_at: 0,
            registration_token_hash: None,
        }
    }

    /// A registered app as stored.
    pub fn from_record(record: &AppRecord) -> Result<Self, StoreError> {
        let corrupt = |what: &str, e: serde_json::Error| {
            StoreError::Corrupt(format!("app {}: {what}: {e}", record.client_id))
        };
        let config: AppConfig =
            serde_json::from_str(&record.config_json).map_err(|e| corrupt("registration", e))?;
        let secrets: Vec<ClientSecret> =
            serde_json::from_str(&record.secrets).map_err(|e| corrupt("secrets", e))?;
        Ok(Self {
            config,
            secrets,
            source: record.source,
            created_at: record.created_at,
            updated_at: record.updated_at,
            registration_token_hash: record.registration_token_hash.clone(),
        })
    }

    /// The record to store for this app.
    pub fn record(&self) -> Result<AppRecord, StoreError> {
        let json = |e: serde_json::Error| StoreError::Corrupt(e.to_string());
        Ok(AppRecord {
            client_id: self.config.client_id.clone(),
            config_json: serde_json::to_string(&self.config).map_err(json)?,
            source: self.source,
            secrets: serde_json::to_string(&self.secrets).map_err(json)?,
            registration_token_hash: self.registration_token_hash.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }

    /// Whether `secret` is one of the app's secrets, valid at `now`. Every stored digest is
    /// compared in constant time.
    pub fn accepts_secret(&self, secret: &str, now: i64) -> bool {
        let presented = token_hash(secret);
        self.secrets.iter().fold(false, |ok, s| {
            let valid = s.start <= now && s.end.is_none_or(|end| now < end);
            ct_eq(s.digest.as_bytes(), presented.as_bytes()) && valid || ok
        })
    }

    /// Whether the registration can be changed here (not from the config file).
    pub fn is_read_only(&self) -> bool {
        self.source == AppSource::Config
    }
}

/// Client metadata as RFC 7591 §2 names it, whichever door a registration comes through (the
/// admin API maps Graph's shape onto it). Absent fields take the RFC's defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Metadata {
    /// `client_name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// `redirect_uris`.
    pub redirect_uris: Vec<String>,
    /// `post_logout_redirect_uris` (OpenID RP-Initiated Logout §3.1).
    pub post_logout_redirect_uris: Vec<String>,
    /// `grant_types`; default `["authorization_code"]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_types: Option<Vec<String>>,
    /// `response_types`; default `["code"]`, the only one supported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_types: Option<Vec<String>>,
    /// `token_endpoint_auth_method`; default `client_secret_basic`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<String>,
    /// `scope`: extra scopes the app may ask for, space-separated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// `id_token_signed_response_alg`; default ES256.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token_signed_response_alg: Option<String>,
    /// `jwks`: the client's public keys for `private_key_jwt`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks: Option<jsonwebtoken::jwk::JwkSet>,
    /// `jwks_uri`: not supported (keys are registered by value), refused when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
}

/// Client metadata sent as JSON (an RFC 7591 registration request, an RFC 7592 update): the
/// metadata and the whole object, for the members that are not metadata (`client_id`,
/// `client_secret` in an update). Members this server does not understand are ignored
/// (RFC 7591 §2) and a `null` member counts as absent; a body that is not a JSON object, or a
/// known member of the wrong type, is `invalid_client_metadata`.
pub fn parse_metadata(
    body: &[u8],
) -> Result<(Metadata, serde_json::Map<String, serde_json::Value>), MetadataError> {
    let bad = |m: String| MetadataError::ClientMetadata(m);
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| bad(format!("the request body is not JSON ({e})")))?;
    let serde_json::Value::Object(mut object) = value else {
        return Err(bad(
            "the request body must be a JSON object of client metadata".into(),
        ));
    };
    object.retain(|_, v| !v.is_null());
    let meta = serde_path_to_error::deserialize(serde_json::Value::Object(object.clone()))
        .map_err(|e| bad(format!("{}: {}", e.path(), e.inner())))?;
    Ok((meta, object))
}

/// What the admin API may set beyond RFC 7591 metadata. Dynamic registration never can: an app
/// registering itself is third-party and gets no user risk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Trust {
    /// Skip the consent page.
    pub first_party: bool,
    /// The app is another tenant federating its guests' sign-ins here (gets `user_risk`).
    pub partner_tenant: bool,
}

/// Why metadata is refused (RFC 7591 §3.2.2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// `invalid_redirect_uri`.
    #[error("{0}")]
    RedirectUri(String),
    /// `invalid_client_metadata`.
    #[error("{0}")]
    ClientMetadata(String),
}

impl MetadataError {
    /// The RFC 7591 error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::RedirectUri(_) => "invalid_redirect_uri",
            Self::ClientMetadata(_) => "invalid_client_metadata",
        }
    }
}

/// Validates metadata into the registration of app `client_id`. The rules are the config
/// file's, with one more: a private-use URI scheme only for a public (native) client.
pub fn validate(
    client_id: &str,
    meta: &Metadata,
    trust: Trust,
) -> Result<AppConfig, MetadataError> {
    let bad = |m: String| Err(MetadataError::ClientMetadata(m));
    let method = match meta.token_endpoint_auth_method.as_deref() {
        None | Some("client_secret_basic") => AuthMethod::ClientSecretBasic,
        Some("client_secret_post") => AuthMethod::ClientSecretPost,
        Some("private_key_jwt") => AuthMethod::PrivateKeyJwt,
        Some("none") => AuthMethod::None,
        Some(other) => {
            return bad(format!(
                "token_endpoint_auth_method: client_secret_basic, client_secret_post, private_key_jwt or none, got {other:?}"
            ));
        }
    };
    if meta.jwks_uri.is_some() {
        return bad("jwks_uri is not supported: register the public keys by value in jwks".into());
    }
    let jwks = match (&meta.jwks, method) {
        (Some(set), AuthMethod::PrivateKeyJwt) if !set.keys.is_empty() => Some(set.clone()),
        (_, AuthMethod::PrivateKeyJwt) => {
            return bad("jwks: at least one public key for private_key_jwt".into());
        }
        (Some(_), _) => return bad("jwks: only with private_key_jwt".into()),
        (None, _) => None,
    };
    if let Some(jwks) = &jwks
        && let Some(private) = jwks.keys.iter().find(|k| has_private_parts(k))
    {
        return bad(format!(
            "jwks: public keys only (key {:?} has private parts)",
            private.common.key_id.as_deref().unwrap_or("")
        ));
    }
    let mut grant_types = Vec::new();
    for g in meta
        .grant_types
        .clone()
        .unwrap_or_else(|| vec!["authorization_code".into()])
    {
        let grant = match g.as_str() {
            "authorization_code" => GrantType::AuthorizationCode,
            "refresh_token" => GrantType::RefreshToken,
            "client_credentials" => GrantType::ClientCredentials,
            other => {
                return bad(format!(
                    "grant_types: authorization_code, refresh_token or client_credentials, got {other:?}"
                ));
            }
        };
        if !grant_types.contains(&grant) {
            grant_types.push(grant);
        }
    }
    let code = grant_types.contains(&GrantType::AuthorizationCode);
    match meta.response_types.as_deref() {
        None => {}
        Some([r]) if r == "code" && code => {}
        Some([]) if !code => {}
        Some(other) => {
            return bad(format!(
                "response_types: [\"code\"] with the authorization_code grant (and only then), got {other:?}"
            ));
        }
    }
    if grant_types.contains(&GrantType::ClientCredentials) && method == AuthMethod::None {
        return bad("grant_types: client_credentials needs a confidential client".into());
    }
    if grant_types.contains(&GrantType::RefreshToken) && !code {
        return bad("grant_types: refresh_token comes with authorization_code".into());
    }
    if code && meta.redirect_uris.is_empty() {
        return Err(MetadataError::RedirectUri(
            "redirect_uris: at least one for the authorization_code grant".into(),
        ));
    }
    for (field, uris) in [
        ("redirect_uris", &meta.redirect_uris),
        ("post_logout_redirect_uris", &meta.post_logout_redirect_uris),
    ] {
        for u in uris {
            check_redirect_uri(u)
                .map_err(|e| MetadataError::RedirectUri(format!("{field}: {e}")))?;
            let web = u.starts_with("https:") || u.starts_with("http:");
            if !web && method != AuthMethod::None {
                return Err(MetadataError::RedirectUri(format!(
                    "{field}: a private-use scheme only for a public (native) client, got {u:?}"
                )));
            }
        }
    }
    let scopes: Vec<String> = meta
        .scope
        .as_deref()
        .unwrap_or_default()
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if let Some(s) = scopes
        .iter()
        .find(|s| protocol::scope::Scope::parse(s).is_none_or(|p| p.iter().count() != 1))
    {
        return bad(format!(
            "scope: scope tokens separated by spaces, got {s:?}"
        ));
    }
    let id_token_alg = match meta.id_token_signed_response_alg.as_deref() {
        None | Some("ES256") => SigningAlg::ES256,
        Some("RS256") => SigningAlg::RS256,
        Some(other) => {
            return bad(format!(
                "id_token_signed_response_alg: ES256 or RS256, got {other:?}"
            ));
        }
    };
    let name = meta
        .client_name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or(client_id);
    if name.chars().count() > 256 || name.chars().any(char::is_control) {
        return bad("client_name: at most 256 characters, no control characters".into());
    }
    Ok(AppConfig {
        client_id: client_id.to_owned(),
        name: name.to_owned(),
        client_secret: None,
        auth_method: method,
        redirect_uris: meta.redirect_uris.clone(),
        post_logout_redirect_uris: meta.post_logout_redirect_uris.clone(),
        grant_types,
        first_party: trust.first_party,
        scopes,
        id_token_alg,
        jwks,
        partner_tenant: trust.partner_tenant,
        // A file of this server's: only its own configuration names one.
        push_ca_file: None,
    })
}

/// The scope of the admin API (`server::admin::ADMIN_SCOPE`).
const ADMIN_SCOPE: &str = "admin";

/// What a dynamic registration may not have on top of [`validate`]'s rules. An app registering
/// itself has no administrator behind it, so it gets no application permissions: never the
/// admin API's `admin` scope, and no scopes with the `client_credentials` grant (no user
/// consents to those). The admin API and the CLI register such apps.
pub fn check_dynamic(app: &AppConfig) -> Result<(), MetadataError> {
    if app.scopes.iter().any(|s| s == ADMIN_SCOPE) {
        return Err(MetadataError::ClientMetadata(
            "scope: admin is not available to a dynamically registered client".into(),
        ));
    }
    if app.grant_types.contains(&GrantType::ClientCredentials) && !app.scopes.is_empty() {
        return Err(MetadataError::ClientMetadata(
            "scope: a dynamically registered client using client_credentials registers no scopes (application permissions are granted by an administrator)".into(),
        ));
    }
    Ok(())
}

/// The metadata a registration answers with (RFC 7591 §3.2.1 echoes it).
pub fn metadata_of(app: &AppConfig) -> Metadata {
    Metadata {
        client_name: Some(app.name.clone()),
        redirect_uris: app.redirect_uris.clone(),
        post_logout_redirect_uris: app.post_logout_redirect_uris.clone(),
        grant_types: Some(
            app.grant_types
                .iter()
                .map(|g| grant_type_str(*g).to_owned())
                .collect(),
        ),
        response_types: Some(if app.grant_types.contains(&GrantType::AuthorizationCode) {
            vec!["code".to_owned()]
        } else {
            Vec::new()
        }),
        token_endpoint_auth_method: Some(app.auth_method.as_str().to_owned()),
        scope: (!app.scopes.is_empty()).then(|| app.scopes.join(" ")),
        id_token_signed_response_alg: Some(app.id_token_alg.as_str().to_owned()),
        jwks: app.jwks.clone(),
        jwks_uri: None,
    }
}

/// The registered spelling of a grant type.
pub fn grant_type_str(g: GrantType) -> &'static str {
    match g {
        GrantType::AuthorizationCode => "authorization_code",
        GrantType::RefreshToken => "refresh_token",
        GrantType::ClientCredentials => "client_credentials",
    }
}

/// Whether a JWK carries private key material (`d` for EC and RSA keys, `k` for octet keys).
fn has_private_parts(key: &jsonwebtoken::jwk::Jwk) -> bool {
    serde_json::to_value(key)
        .ok()
        .and_then(|v| {
            v.as_object()
                .map(|o| o.contains_key("d") || o.contains_key("k"))
        })
        .unwrap_or(true)
}

/// Whether the app needs a client secret.
pub fn uses_secret(app: &AppConfig) -> bool {
    matches!(
        app.auth_method,
        AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost
    )
}

/// Why a registry change is refused. Nothing is changed in any case.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The metadata is not acceptable.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// The client id is taken (by a config-file app or a registered one).
    #[error("client id already exists: {0}")]
    Exists(String),
    /// No such app.
    #[error("no app {0:?}")]
    NotFound(String),
    /// The app comes from the config file: change it there.
    #[error("app {0:?} comes from the config file and is read-only here")]
    ReadOnly(String),
    /// The app changed between reading and writing: read it again.
    #[error("app {0:?} was changed meanwhile; read it again and retry")]
    Changed(String),
    /// No client secret with that key id.
    #[error("app {0:?} has no secret with key id {1:?}")]
    NoSuchSecret(String, String),
    /// Storage failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for RegistryError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => Self::Exists(m),
            other => Self::Store(other),
        }
    }
}

/// A registration just made: the app, and the credentials shown this once.
#[derive(Debug)]
pub struct Registered {
    /// The app as stored.
    pub app: Arc<App>,
    /// The client secret, for a secret-based app registered dynamically (RFC 7591 §3.2.1).
    pub client_secret: Option<String>,
    /// The RFC 7592 registration access token, for a dynamic registration.
    pub registration_token: Option<String>,
}

/// Registers an app from `meta` (validated as [`validate`] does). `client_id` is generated
/// (a UUID, as Entra's `appId`) unless given. A dynamic registration gets its client secret
/// (when it uses one) and a registration access token at once; an API registration gets
/// secrets through [`add_secret`], as in Graph.
pub async fn register(
    dir: &Directory,
    client_id: Option<&str>,
    meta: &Metadata,
    trust: Trust,
    source: AppSource,
) -> Result<Registered, RegistryError> {
    let client_id = match client_id {
        Some(id) => {
            if id.is_empty() || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(MetadataError::ClientMetadata(
                    "client_id: 1-128 printable ASCII characters".into(),
                )
                .into());
            }
            id.to_owned()
        }
        None => uuid::Uuid::new_v4().to_string(),
    };
    if dir.apps.contains_key(&client_id) {
        return Err(RegistryError::Exists(client_id));
    }
    let config = validate(&client_id, meta, trust)?;
    if source == AppSource::Dynamic {
        check_dynamic(&config)?;
    }
    let now = dir.now();
    let mut app = App {
        config,
        secrets: Vec::new(),
        source,
        created_at: now,
        updated_at: now,
        registration_token_hash: None,
    };
    let (mut client_secret, mut registration_token) = (None, None);
    if source == AppSource::Dynamic {
        if uses_secret(&app.config) {
            let (secret, record) = ClientSecret::generate(None, now, None);
            app.secrets.push(record);
            client_secret = Some(secret);
        }
        let token = random_token();
        app.registration_token_hash = Some(token_hash(&token));
        registration_token = Some(token);
    }
    dir.store.insert_app(&app.record()?).await?;
    Ok(Registered {
        app: Arc::new(app),
        client_secret,
        registration_token,
    })
}

/// A registered app that may be changed here: refuses config-file and unknown apps.
async fn changeable(dir: &Directory, client_id: &str) -> Result<Arc<App>, RegistryError> {
    let app = dir
        .app(client_id)
        .await?
        .ok_or_else(|| RegistryError::NotFound(client_id.to_owned()))?;
    if app.is_read_only() {
        return Err(RegistryError::ReadOnly(client_id.to_owned()));
    }
    Ok(app)
}

/// Changes a registered app by `edit` and writes it over the version read, optimistically: a
/// concurrent change wins and this one is refused with [`RegistryError::Changed`]. Nothing is
/// written when `edit` refuses. Returns the app as stored and what `edit` returned.
async fn change<T>(
    dir: &Directory,
    client_id: &str,
    edit: impl FnOnce(&mut App) -> Result<T, RegistryError>,
) -> Result<(Arc<App>, T), RegistryError> {
    let read = changeable(dir, client_id).await?;
    let mut app = App::clone(&read);
    let made = edit(&mut app)?;
    // Versions only move forward, even within one second.
    app.updated_at = dir.now().max(read.updated_at + 1);
    if !dir
        .store
        .update_app(&app.record()?, read.updated_at)
        .await?
    {
        return Err(RegistryError::Changed(client_id.to_owned()));
    }
    Ok((Arc::new(app), made))
}

/// Replaces a registered app's metadata (and, from the admin API, its trust), keeping its
/// client id, secrets and registration token. Returns the app as stored.
pub async fn update(
    dir: &Directory,
    client_id: &str,
    meta: &Metadata,
    trust: Trust,
) -> Result<Arc<App>, RegistryError> {
    change(dir, client_id, |app| {
        let config = validate(client_id, meta, trust)?;
        if app.source == AppSource::Dynamic {
            check_dynamic(&config)?;
        }
        app.config = config;
        Ok(())
    })
    .await
    .map(|(app, ())| app)
}

/// Adds a client secret (Graph `addPassword`): returns the secret, shown this once, and its
/// record. `end` defaults to no expiry.
pub async fn add_secret(
    dir: &Directory,
    client_id: &str,
    display_name: Option<String>,
    end: Option<i64>,
) -> Result<(String, ClientSecret), RegistryError> {
    let now = dir.now();
    let (_, made) = change(dir, client_id, |app| {
        if !uses_secret(&app.config) {
            return Err(MetadataError::ClientMetadata(format!(
                "app {client_id:?} authenticates with {}: it has no use for a client secret",
                app.config.auth_method.as_str()
            ))
            .into());
        }
        if end.is_some_and(|e| e <= now) {
            return Err(
                MetadataError::ClientMetadata("endDateTime: a time in the future".into()).into(),
            );
        }
        let (secret, record) = ClientSecret::generate(display_name, now, end);
        app.secrets.push(record.clone());
        Ok((secret, record))
    })
    .await?;
    Ok(made)
}

/// Removes a client secret (Graph `removePassword`); it stops working at once.
pub async fn remove_secret(
    dir: &Directory,
    client_id: &str,
    key_id: &str,
) -> Result<(), RegistryError> {
    change(dir, client_id, |app| {
        if !app.secrets.iter().any(|s| s.key_id == key_id) {
            return Err(RegistryError::NoSuchSecret(
                client_id.to_owned(),
                key_id.to_owned(),
            ));
        }
        app.secrets.retain(|s| s.key_id != key_id);
        Ok(())
    })
    .await?;
    Ok(())
}

/// Deletes a registered app: its codes can no longer be redeemed, its grants (with their
/// refresh and access tokens) are revoked, its consents removed.
pub async fn delete(dir: &Directory, client_id: &str) -> Result<(), RegistryError> {
    changeable(dir, client_id).await?;
    if !dir.store.delete_app(client_id, dir.now()).await? {
        return Err(RegistryError::NotFound(client_id.to_owned()));
    }
    Ok(())
}

/// Every app: the config file's (read-only) and the registered ones, by client id. A stored
/// row that cannot be read is skipped with an error in the log rather than hiding the rest.
pub async fn list(dir: &Directory) -> Result<Vec<Arc<App>>, StoreError> {
    let mut apps: Vec<Arc<App>> = dir.apps.values().cloned().collect();
    for record in dir.store.app_records().await? {
        if record.source == AppSource::Config {
            continue;
        }
        match App::from_record(&record) {
            Ok(app) => apps.push(Arc::new(app)),
            Err(e) => {
                tracing::error!(error = %e, client_id = %record.client_id, "unreadable app registration")
            }
        }
    }
    apps.sort_by(|a, b| a.config.client_id.cmp(&b.config.client_id));
    Ok(apps)
}

/// Whether `token` is the registration access token of dynamic app `app` (RFC 7592 §3),
/// compared in constant time.
pub fn accepts_registration_token(app: &App, token: &str) -> bool {
    app.registration_token_hash
        .as_deref()
        .is_some_and(|h| ct_eq(h.as_bytes(), token_hash(token).as_bytes()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn meta(redirects: &[&str]) -> Metadata {
        Metadata {
            redirect_uris: redirects.iter().map(|s| (*s).to_owned()).collect(),
            ..Metadata::default()
        }
    }

    #[test]
    fn defaults_follow_rfc_7591() {
        let app = validate("c1", &meta(&["https://app.example/cb"]), Trust::default()).unwrap();
        assert_eq!(app.auth_method, AuthMethod::ClientSecretBasic);
        assert_eq!(app.grant_types, [GrantType::AuthorizationCode]);
        assert_eq!(app.id_token_alg, SigningAlg::ES256);
        assert_eq!(app.name, "c1");
        assert!(!app.first_party && !app.partner_tenant);
        let echoed = metadata_of(&app);
        assert_eq!(
            echoed.response_types.as_deref(),
            Some(&["code".to_owned()][..])
        );
        assert_eq!(
            echoed.token_endpoint_auth_method.as_deref(),
            Some("client_secret_basic")
        );
    }

    #[test]
    fn redirect_uris_are_https_loopback_or_native_for_public_clients() {
        for ok in [
            "https://app.example/cb",
            "http://127.0.0.1:8080/cb",
            "http://[::1]/cb",
        ] {
            validate("c", &meta(&[ok]), Trust::default()).unwrap();
        }
        for bad in [
            "http://app.example/cb",
            "https://app.example/cb#frag",
            "/relative",
            "com.example.app:/cb",
        ] {
            let e = validate("c", &meta(&[bad]), Trust::default()).unwrap_err();
            assert_eq!(e.code(), "invalid_redirect_uri", "{bad}: {e}");
        }
        let native = Metadata {
            token_endpoint_auth_method: Some("none".into()),
            ..meta(&["com.example.app:/cb"])
        };
        validate("c", &native, Trust::default()).unwrap();
        let e = validate("c", &meta(&[]), Trust::default()).unwrap_err();
        assert_eq!(e.code(), "invalid_redirect_uri");
    }

    #[test]
    fn inconsistent_metadata_is_refused() {
        let cases = [
            Metadata {
                token_endpoint_auth_method: Some("client_secret_jwt".into()),
                ..meta(&["https://a.example/cb"])
            },
            Metadata {
                grant_types: Some(vec!["implicit".into()]),
                ..meta(&["https://a.example/cb"])
            },
            Metadata {
                response_types: Some(vec!["token".into()]),
                ..meta(&["https://a.example/cb"])
            },
            Metadata {
                token_endpoint_auth_method: Some("none".into()),
                grant_types: Some(vec!["client_credentials".into()]),
                ..meta(&[])
            },
            Metadata {
                token_endpoint_auth_method: Some("private_key_jwt".into()),
                ..meta(&["https://a.example/cb"])
            },
            Metadata {
                jwks_uri: Some("https://a.example/jwks".into()),
                ..meta(&["https://a.example/cb"])
            },
            Metadata {
                scope: Some("ok bad\"scope".into()),
                ..meta(&["https://a.example/cb"])
            },
            Metadata {
                id_token_signed_response_alg: Some("none".into()),
                ..meta(&["https://a.example/cb"])
            },
        ];
        for m in cases {
            let e = validate("c", &m, Trust::default()).unwrap_err();
            assert_eq!(e.code(), "invalid_client_metadata", "{m:?}: {e}");
        }
        // A daemon: client credentials only, no redirect URIs, no response types.
        let daemon = Metadata {
            grant_types: Some(vec!["client_credentials".into()]),
            response_types: Some(vec![]),
            ..meta(&[])
        };
        validate("d", &daemon, Trust::default()).unwrap();
    }

    #[test]
    fn metadata_is_read_from_a_json_object_ignoring_what_is_not_understood() {
        let (m, object) = parse_metadata(
            br#"{"redirect_uris":["https://a.example/cb"],"client_name":null,"logo_uri":"https://a.example/l.png","client_id":"x"}"#,
        )
        .unwrap();
        assert_eq!(m, meta(&["https://a.example/cb"]));
        assert_eq!(object["client_id"], "x");
        assert!(!object.contains_key("client_name"), "null is absent");
        for (body, expected) in [
            (&b"[]"[..], "a JSON object"),
            (br#""x""#, "a JSON object"),
            (b"not json", "not JSON"),
            (
                br#"{"redirect_uris":"https://a.example/cb"}"#,
                "redirect_uris: invalid type",
            ),
            (br#"{"grant_types":[1]}"#, "grant_types[0]: invalid type"),
        ] {
            let e = parse_metadata(body).unwrap_err();
            assert_eq!(e.code(), "invalid_client_metadata");
            assert!(e.to_string().contains(expected), "{e}");
        }
    }

    #[test]
    fn a_dynamic_registration_gets_no_application_permissions() {
        let web = meta(&["https://a.example/cb"]);
        let with = |scope: &str, grants: &[&str]| Metadata {
            scope: Some(scope.into()),
            grant_types: Some(grants.iter().map(|g| (*g).to_owned()).collect()),
            response_types: (!grants.contains(&"authorization_code")).then(Vec::new),
            ..web.clone()
        };
        for (m, ok) in [
            (with("calendar.read", &["authorization_code"]), true),
            (with("admin", &["authorization_code"]), false),
            (with("reports.read", &["client_credentials"]), false),
            (
                Metadata {
                    scope: None,
                    ..with("", &["client_credentials"])
                },
                true,
            ),
        ] {
            let app = validate("c", &m, Trust::default()).unwrap();
            let checked = check_dynamic(&app);
            assert_eq!(checked.is_ok(), ok, "{m:?}: {checked:?}");
            if let Err(e) = checked {
                assert_eq!(e.code(), "invalid_client_metadata");
            }
        }
    }

    #[test]
    fn secrets_are_kept_as_digests_and_honour_their_validity() {
        let (secret, record) = ClientSecret::generate(Some("ci".into()), 100, Some(200));
        assert_eq!(secret.len(), 43);
        assert!(!record.digest.contains(&secret));
        assert_eq!(record.hint, secret[..3]);
        let mut app = App::from_config(
            &validate("c", &meta(&["https://a.example/cb"]), Trust::default()).unwrap(),
        );
        app.secrets.push(record);
        assert!(app.accepts_secret(&secret, 150));
        assert!(!app.accepts_secret(&secret, 200), "expired");
        assert!(!app.accepts_secret(&secret, 99), "not yet valid");
        assert!(!app.accepts_secret("wrong", 150));
        // Stored and read back unchanged.
        app.source = AppSource::Api;
        let again = App::from_record(&app.record().unwrap()).unwrap();
        assert_eq!(again.config, app.config);
        assert_eq!(again.secrets, app.secrets);
    }

    async fn directory() -> Directory {
        let dir = std::env::temp_dir().join(format!("tenantd-apps-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = format!(
            "[tenant]\nid = \"t\"\ndisplay_name = \"T\"\nissuer = \"https://t.test\"\n[server]\nlisten = \"127.0.0.1:0\"\nplain_http = true\n[database]\nurl = \"sqlite://{}\"\n[[apps]]\nclient_id = \"file-app\"\nclient_secret = \"file-secret-123\"\nredirect_uris = [\"https://f.test/cb\"]\n",
            dir.join("t.db").display()
        );
        let config = crate::Config::parse(&text, "apps-test.toml").unwrap();
        let store = crate::vault::open_store(&config).await.unwrap();
        let clock = Arc::new(crate::OffsetClock::default());
        let passwords = crate::passwords::Passwords::new(&config.passwords).unwrap();
        let protection = crate::protection::Protection::load(config.risk.clone(), &store)
            .await
            .unwrap();
        Directory::new(
            config,
            store,
            clock,
            passwords,
            protocol::jwt::KeySet::new(Vec::new(), 600),
            Vec::new(),
            protection,
        )
    }

    #[tokio::test]
    async fn the_registry_registers_changes_and_deletes_what_it_owns() {
        let dir = directory().await;
        let web = meta(&["https://a.example/cb"]);
        // A dynamic registration gets its secret and registration token at once.
        let r = register(&dir, None, &web, Trust::default(), AppSource::Dynamic)
            .await
            .unwrap();
        let id = r.app.config.client_id.clone();
        let secret = r.client_secret.unwrap();
        let found = dir.app(&id).await.unwrap().unwrap();
        assert!(found.accepts_secret(&secret, dir.now()));
        assert!(accepts_registration_token(
            &found,
            &r.registration_token.unwrap()
        ));
        // It cannot give itself the admin API, neither at registration nor by an update.
        let admin = Metadata {
            scope: Some("admin".into()),
            ..web.clone()
        };
        assert!(matches!(
            register(&dir, None, &admin, Trust::default(), AppSource::Dynamic).await,
            Err(RegistryError::Metadata(MetadataError::ClientMetadata(_)))
        ));
        assert!(matches!(
            update(&dir, &id, &admin, Trust::default()).await,
            Err(RegistryError::Metadata(MetadataError::ClientMetadata(_)))
        ));
        // An API registration gets secrets one by one; removing one ends it at once.
        let api = register(
            &dir,
            Some("api-app"),
            &web,
            Trust::default(),
            AppSource::Api,
        )
        .await
        .unwrap();
        assert!(api.client_secret.is_none() && api.registration_token.is_none());
        let (s1, rec1) = add_secret(&dir, "api-app", Some("ci".into()), None)
            .await
            .unwrap();
        let (s2, _) = add_secret(&dir, "api-app", None, None).await.unwrap();
        let app = dir.app("api-app").await.unwrap().unwrap();
        assert!(app.accepts_secret(&s1, dir.now()) && app.accepts_secret(&s2, dir.now()));
        remove_secret(&dir, "api-app", &rec1.key_id).await.unwrap();
        let app = dir.app("api-app").await.unwrap().unwrap();
        assert!(!app.accepts_secret(&s1, dir.now()) && app.accepts_secret(&s2, dir.now()));
        // Updates keep the secrets; bad metadata changes nothing.
        let more = meta(&["https://a.example/cb", "https://a.example/cb2"]);
        update(&dir, "api-app", &more, Trust::default())
            .await
            .unwrap();
        assert!(matches!(
            update(
                &dir,
                "api-app",
                &meta(&["http://a.example/cb"]),
                Trust::default()
            )
            .await,
            Err(RegistryError::Metadata(MetadataError::RedirectUri(_)))
        ));
        let app = dir.app("api-app").await.unwrap().unwrap();
        assert_eq!(app.config.redirect_uris.len(), 2);
        assert!(app.accepts_secret(&s2, dir.now()));
        // Names are unique across the file and the registry; the file's apps are read-only.
        for taken in ["api-app", "file-app"] {
            assert!(matches!(
                register(&dir, Some(taken), &web, Trust::default(), AppSource::Api).await,
                Err(RegistryError::Exists(_))
            ));
        }
        assert!(matches!(
            delete(&dir, "file-app").await,
            Err(RegistryError::ReadOnly(_))
        ));
        let ids: Vec<String> = list(&dir)
            .await
            .unwrap()
            .iter()
            .map(|a| a.config.client_id.clone())
            .collect();
        // The file's app, the two registered, and tenantd's own pages (read-only, built in).
        assert_eq!(ids.len(), 4, "{ids:?}");
        assert!(ids.contains(&"file-app".to_owned()));
        assert!(ids.contains(&PORTAL_CLIENT_ID.to_owned()));
        assert!(matches!(
            delete(&dir, PORTAL_CLIENT_ID).await,
            Err(RegistryError::ReadOnly(_))
        ));
        delete(&dir, "api-app").await.unwrap();
        assert!(dir.app("api-app").await.unwrap().is_none());
        assert!(matches!(
            delete(&dir, "api-app").await,
            Err(RegistryError::NotFound(_))
        ));
    }
}
