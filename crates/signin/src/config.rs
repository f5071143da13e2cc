//! Tenant configuration: one TOML file per tenant. Parsing is strict (unknown keys are errors)
//! and every mistake is reported with the file, the key and what was expected, all at once, so a
//! tenant never starts half-configured.

use ipnet::IpNet;
use protocol::client_auth::AuthMethod;
use protocol::jwt::SigningAlg;
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

mod partner;
mod risk;
pub use partner::{PartnerConfig, PartnerCredential};
pub use risk::RiskSettings;

/// Everything wrong with a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or a description of where the config came from).
    pub file: String,
    /// One entry per problem.
    pub problems: Vec<Problem>,
}

/// One problem: which key, and what was expected there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path, e.g. `apps[0].redirect_uris[1]`.
    pub key: String,
    /// What was expected (and what was found, where useful).
    pub expected: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {} problem(s) in the configuration:",
            self.file,
            self.problems.len()
        )?;
        for p in &self.problems {
            writeln!(f, "  {}: {}: {}", self.file, p.key, p.expected)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    tenant: RawTenant,
    server: RawServer,
    database: RawDatabase,
    #[serde(default)]
    tokens: RawTokens,
    #[serde(default)]
    passwords: RawPasswords,
    #[serde(default)]
    apps: Vec<RawApp>,
    #[serde(default)]
    partners: Vec<partner::RawPartner>,
    #[serde(default)]
    risk: risk::RawRisk,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTenant {
    id: String,
    display_name: String,
    issuer: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: String,
    #[serde(default)]
    tls: Option<RawTls>,
    #[serde(default)]
    plain_http: bool,
    #[serde(default)]
    trusted_proxies: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: PathBuf,
    key: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    url: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawTokens {
    id_token_lifetime_secs: i64,
    access_token_lifetime_secs: i64,
    refresh_token_lifetime_secs: i64,
    code_lifetime_secs: i64,
    session_lifetime_secs: i64,
    sign_in_request_lifetime_secs: i64,
    signing_alg: String,
}

impl Default for RawTokens {
    fn default() -> Self {
        let d = TokenLifetimes::default();
        Self {
            id_token_lifetime_secs: d.id_token,
            access_token_lifetime_secs: d.access_token,
            refresh_token_lifetime_secs: d.refresh_token,
            code_lifetime_secs: d.code,
            session_lifetime_secs: d.session,
            sign_in_request_lifetime_secs: d.sign_in_request,
            signing_alg: "ES256".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawPasswords {
    argon2_memory_kib: u32,
    argon2_iterations: u32,
    argon2_parallelism: u32,
    max_concurrent_hashes: usize,
}

impl Default for RawPasswords {
    fn default() -> Self {
        let d = PasswordPolicy::default();
        Self {
            argon2_memory_kib: d.memory_kib,
            argon2_iterations: d.iterations,
            argon2_parallelism: d.parallelism,
            max_concurrent_hashes: d.max_concurrent_hashes,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    client_id: String,
    name: Option<String>,
    client_secret: Option<String>,
    client_secret_env: Option<String>,
    token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    post_logout_redirect_uris: Vec<String>,
    grant_types: Option<Vec<String>>,
    #[serde(default)]
    first_party: bool,
    #[serde(default)]
    scopes: Vec<String>,
    id_token_signed_response_alg: Option<String>,
    jwks_file: Option<PathBuf>,
    #[serde(default)]
    partner_tenant: bool,
}

/// Token and session lifetimes, in seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenLifetimes {
    /// ID token.
    pub id_token: i64,
    /// Access token.
    pub access_token: i64,
    /// Refresh token (and an offline grant).
    pub refresh_token: i64,
    /// Authorization code: short, as RFC 6749 §4.1.2 recommends (max 10 minutes).
    pub code: i64,
    /// Browser session.
    pub session: i64,
    /// A pending sign-in (the time a user has to finish the pages).
    pub sign_in_request: i64,
}

impl Default for TokenLifetimes {
    fn default() -> Self {
        Self {
            id_token: 300,
            access_token: 300,
            refresh_token: 14 * 86_400,
            code: 60,
            session: 8 * 3600,
            sign_in_request: 900,
        }
    }
}

/// Password hashing parameters (argon2id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Memory in KiB (OWASP minimum: 19 MiB).
    pub memory_kib: u32,
    /// Passes (OWASP minimum with 19 MiB: 2).
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
    /// Hashes computed at once; more wait, so a burst of sign-ins cannot starve the runtime.
    pub max_concurrent_hashes: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
            max_concurrent_hashes: 2,
        }
    }
}

/// TLS certificate and key files (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

/// The grants an app may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    /// Authorization code.
    AuthorizationCode,
    /// Refresh token.
    RefreshToken,
    /// Client credentials.
    ClientCredentials,
}

/// A registered app (OIDC client).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AppConfig {
    /// Client id.
    pub client_id: String,
    /// Display name shown on consent pages.
    pub name: String,
    /// The secret (only for secret-based methods). Never logged.
    #[serde(skip)]
    pub client_secret: Option<String>,
    /// How the client authenticates at the token endpoint.
    pub auth_method: AuthMethod,
    /// Exact redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Exact post-logout redirect URIs.
    pub post_logout_redirect_uris: Vec<String>,
    /// Allowed grants.
    pub grant_types: Vec<GrantType>,
    /// First-party apps skip the consent page.
    pub first_party: bool,
    /// Extra scopes (beyond openid/profile/email/offline_access) the app may ask for.
    pub scopes: Vec<String>,
    /// ID token algorithm.
    pub id_token_alg: SigningAlg,
    /// Public keys for `private_key_jwt`.
    pub jwks: Option<jsonwebtoken::jwk::JwkSet>,
    /// The app is another tenant federating its guests' sign-ins here: it receives the
    /// `user_risk` claim (DESIGN.md §4). No other app ever does.
    #[serde(default)]
    pub partner_tenant: bool,
}

/// A validated tenant configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from, for messages.
    pub source: String,
    /// Tenant id (also the `tid` claim and the cookie namespace).
    pub tenant_id: String,
    /// Display name.
    pub display_name: String,
    /// Issuer URL, without trailing slash.
    pub issuer: String,
    /// Listen address.
    pub listen: SocketAddr,
    /// TLS files; `None` only with `plain_http = true`.
    pub tls: Option<TlsFiles>,
    /// Peers whose `X-Forwarded-For` / `Forwarded` headers are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Database URL.
    pub database_url: String,
    /// Lifetimes.
    pub tokens: TokenLifetimes,
    /// Default algorithm for ID tokens and access tokens.
    pub signing_alg: SigningAlg,
    /// Password hashing.
    pub passwords: PasswordPolicy,
    /// Apps.
    pub apps: Vec<AppConfig>,
    /// Partner tenants whose users may sign in here as guests.
    pub partners: Vec<PartnerConfig>,
    /// ID Protection: intel files, policies, risk settings.
    pub risk: RiskSettings,
}

impl Config {
    /// Read and validate a config file, including that the files it names can be read.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let config = Self::load_unchecked(path)?;
        config.check_files()?;
        Ok(config)
    }

    /// Check that the files the config names (TLS certificate and key) can be read.
    pub fn check_files(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if let Some(tls) = &self.tls {
            for (key, path) in [("server.tls.cert", &tls.cert), ("server.tls.key", &tls.key)] {
                if let Err(e) = std::fs::metadata(path) {
                    problems.push(Problem {
                        key: key.into(),
                        expected: format!(
                            "a readable PEM file, but {} cannot be read ({e}); `tenantd certs` writes dev ones",
                            path.display()
                        ),
                    });
                }
            }
        }
        for (i, p) in self.partners.iter().enumerate() {
            if let Some(ca) = &p.ca_file
                && let Err(e) = std::fs::metadata(ca)
            {
                problems.push(Problem {
                    key: format!("partners[{i}].ca_file"),
                    expected: format!(
                        "a readable PEM file of CA certificates, but {} cannot be read ({e})",
                        ca.display()
                    ),
                });
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError {
                file: self.source.clone(),
                problems,
            })
        }
    }

    /// Read and validate a config file without looking at the files it names.
    pub fn load_unchecked(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            problems: vec![Problem {
                key: "(file)".into(),
                expected: format!("a readable TOML file ({e})"),
            }],
        })?;
        Self::parse(&text, &file)
    }

    /// Validate config text; `file` names it in messages.
    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError {
            file: file.to_owned(),
            problems: vec![Problem {
                key: toml_error_key(&e),
                expected: e.message().trim().to_owned(),
            }],
        })?;
        let mut v = Validator {
            problems: Vec::new(),
        };
        let cfg = v.config(raw, file);
        match cfg {
            Some(mut c) if v.problems.is_empty() => {
                c.source = file.to_owned();
                Ok(c)
            }
            _ => Err(ConfigError {
                file: file.to_owned(),
                problems: v.problems,
            }),
        }
    }

    /// The cookie-name prefix: `__Host-` (bound to this exact origin) when served over TLS.
    pub fn cookie_prefix(&self) -> String {
        let id = &self.tenant_id;
        if self.tls.is_some() {
            format!("__Host-tenantd-{id}")
        } else {
            format!("tenantd-{id}")
        }
    }
}

fn toml_error_key(e: &toml::de::Error) -> String {
    // toml reports a span; the message carries line and column in Display.
    let line = e
        .to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    if line.is_empty() {
        "(document)".into()
    } else {
        line
    }
}

struct Validator {
    problems: Vec<Problem>,
}

impl Validator {
    fn bad(&mut self, key: impl Into<String>, expected: impl Into<String>) {
        self.problems.push(Problem {
            key: key.into(),
            expected: expected.into(),
        });
    }

    fn config(&mut self, raw: RawConfig, file: &str) -> Option<Config> {
        let tenant_id = raw.tenant.id.clone();
        if tenant_id.is_empty()
            || tenant_id.len() > 64
            || !tenant_id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            self.bad(
                "tenant.id",
                format!("1-64 characters of a-z, 0-9 and '-', got {tenant_id:?}"),
            );
        }
        if raw.tenant.display_name.trim().is_empty() {
            self.bad("tenant.display_name", "a non-empty name");
        }
        let issuer = self.issuer(&raw.tenant.issuer, raw.server.plain_http);
        let listen = match raw.server.listen.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.bad(
                    "server.listen",
                    format!(
                        "an IP:port socket address such as 127.0.0.1:9443, got {:?}",
                        raw.server.listen
                    ),
                );
                None
            }
        };
        let tls = match (raw.server.tls, raw.server.plain_http) {
            (Some(t), false) => Some(TlsFiles {
                cert: t.cert,
                key: t.key,
            }),
            (None, true) => None,
            (Some(_), true) => {
                self.bad(
                    "server.plain_http",
                    "either [server.tls] or plain_http = true, not both",
                );
                None
            }
            (None, false) => {
                self.bad("server.tls", "a [server.tls] section with cert and key (or plain_http = true to serve without TLS)");
                None
            }
        };
        let mut trusted_proxies = Vec::new();
        for (i, p) in raw.server.trusted_proxies.iter().enumerate() {
            match parse_net(p) {
                Some(n) => trusted_proxies.push(n),
                None => self.bad(
                    format!("server.trusted_proxies[{i}]"),
                    format!("a CIDR or IP address, got {p:?}"),
                ),
            }
        }
        let db = raw.database.url.clone();
        if !(db.starts_with("sqlite:")
            || db.starts_with("postgres://")
            || db.starts_with("postgresql://"))
        {
            self.bad(
                "database.url",
                format!(
                    "a sqlite://PATH or postgres://... URL, got {:?}",
                    redact_url(&db)
                ),
            );
        }
        let t = &raw.tokens;
        for (key, value, min, max) in [
            (
                "tokens.id_token_lifetime_secs",
                t.id_token_lifetime_secs,
                30,
                86_400,
            ),
            (
                "tokens.access_token_lifetime_secs",
                t.access_token_lifetime_secs,
                30,
                86_400,
            ),
            (
                "tokens.refresh_token_lifetime_secs",
                t.refresh_token_lifetime_secs,
                60,
                365 * 86_400,
            ),
            ("tokens.code_lifetime_secs", t.code_lifetime_secs, 1, 600),
            (
                "tokens.session_lifetime_secs",
                t.session_lifetime_secs,
                60,
                30 * 86_400,
            ),
            (
                "tokens.sign_in_request_lifetime_secs",
                t.sign_in_request_lifetime_secs,
                60,
                3600,
            ),
        ] {
            if !(min..=max).contains(&value) {
                self.bad(key, format!("seconds between {min} and {max}, got {value}"));
            }
        }
        let signing_alg = self.alg("tokens.signing_alg", &t.signing_alg);
        let p = &raw.passwords;
        if p.argon2_memory_kib < 19 * 1024 || p.argon2_iterations < 2 || p.argon2_parallelism == 0 {
            self.bad(
                "passwords",
                "argon2id parameters at or above the OWASP minimum (argon2_memory_kib >= 19456, argon2_iterations >= 2, argon2_parallelism >= 1)",
            );
        }
        if p.max_concurrent_hashes == 0 {
            self.bad("passwords.max_concurrent_hashes", "at least 1");
        }
        let mut apps = Vec::new();
        for (i, a) in raw.apps.into_iter().enumerate() {
            if let Some(app) = self.app(i, a) {
                if apps
                    .iter()
                    .any(|x: &AppConfig| x.client_id == app.client_id)
                {
                    self.bad(
                        format!("apps[{i}].client_id"),
                        format!("a unique client id; {:?} is used twice", app.client_id),
                    );
                }
                apps.push(app);
            }
        }
        let mut partners = Vec::new();
        for (i, p) in raw.partners.into_iter().enumerate() {
            if let Some(p) = self.partner(i, p) {
                partners.push(p);
            }
        }
        self.partners_unique(&partners);
        let risk = self.risk(raw.risk, file);
        Some(Config {
            source: String::new(),
            tenant_id,
            display_name: raw.tenant.display_name,
            issuer: issuer?,
            listen: listen?,
            tls,
            trusted_proxies,
            database_url: db,
            tokens: TokenLifetimes {
                id_token: t.id_token_lifetime_secs,
                access_token: t.access_token_lifetime_secs,
                refresh_token: t.refresh_token_lifetime_secs,
                code: t.code_lifetime_secs,
                session: t.session_lifetime_secs,
                sign_in_request: t.sign_in_request_lifetime_secs,
            },
            signing_alg: signing_alg?,
            passwords: PasswordPolicy {
                memory_kib: p.argon2_memory_kib,
                iterations: p.argon2_iterations,
                parallelism: p.argon2_parallelism,
                max_concurrent_hashes: p.max_concurrent_hashes,
            },
            apps,
            partners,
            risk,
        })
    }

    fn issuer(&mut self, s: &str, plain_http: bool) -> Option<String> {
        let expected = "an absolute https URL (http only with plain_http = true) without query, fragment or trailing slash";
        let Ok(url) = url::Url::parse(s) else {
            self.bad("tenant.issuer", format!("{expected}, got {s:?}"));
            return None;
        };
        let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && plain_http);
        if !scheme_ok
            || url.query().is_some()
            || url.fragment().is_some()
            || s.ends_with('/')
            || url.host().is_none()
        {
            self.bad("tenant.issuer", format!("{expected}, got {s:?}"));
            return None;
        }
        Some(s.to_owned())
    }

    /// A secret given inline or by environment variable (`prefix` is the table's key path with
    /// a trailing dot). `None` when a problem was reported, `Some(None)` when neither is set.
    fn secret(
        &mut self,
        prefix: &str,
        inline: Option<String>,
        env: Option<String>,
    ) -> Option<Option<String>> {
        match (inline, env) {
            (Some(s), None) => Some(Some(s)),
            (None, Some(var)) => match std::env::var(&var) {
                Ok(s) => Some(Some(s)),
                Err(_) => {
                    self.bad(
                        format!("{prefix}client_secret_env"),
                        format!("the environment variable {var} to be set"),
                    );
                    None
                }
            },
            (None, None) => Some(None),
            (Some(_), Some(_)) => {
                self.bad(
                    format!("{prefix}client_secret"),
                    "client_secret or client_secret_env, not both",
                );
                None
            }
        }
    }

    fn alg(&mut self, key: &str, s: &str) -> Option<SigningAlg> {
        let alg = SigningAlg::parse(s);
        if alg.is_none() {
            self.bad(key, format!("ES256 or RS256, got {s:?}"));
        }
        alg
    }

    fn app(&mut self, i: usize, a: RawApp) -> Option<AppConfig> {
        let k = |f: &str| format!("apps[{i}].{f}");
        if a.client_id.is_empty()
            || a.client_id.len() > 128
            || !a.client_id.bytes().all(|b| b.is_ascii_graphic())
        {
            self.bad(k("client_id"), "1-128 printable ASCII characters");
        }
        let secret = self
            .secret(&k(""), a.client_secret, a.client_secret_env)
            .flatten();
        let method = match a.token_endpoint_auth_method.as_deref() {
            None if a.jwks_file.is_some() => AuthMethod::PrivateKeyJwt,
            None if secret.is_some() => AuthMethod::ClientSecretBasic,
            None => AuthMethod::None,
            Some("client_secret_basic") => AuthMethod::ClientSecretBasic,
            Some("client_secret_post") => AuthMethod::ClientSecretPost,
            Some("private_key_jwt") => AuthMethod::PrivateKeyJwt,
            Some("none") => AuthMethod::None,
            Some(other) => {
                self.bad(
                    k("token_endpoint_auth_method"),
                    format!("client_secret_basic, client_secret_post, private_key_jwt or none, got {other:?}"),
                );
                AuthMethod::None
            }
        };
        match method {
            AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost => match &secret {
                Some(s) if s.len() >= 8 => {}
                _ => self.bad(
                    k("client_secret"),
                    "a secret of at least 8 characters for a secret-based client",
                ),
            },
            AuthMethod::PrivateKeyJwt | AuthMethod::None if secret.is_some() => {
                self.bad(
                    k("client_secret"),
                    format!("no secret for a client using {}", method.as_str()),
                );
            }
            _ => {}
        }
        let jwks = match (&a.jwks_file, method) {
            (Some(path), AuthMethod::PrivateKeyJwt) => match std::fs::read_to_string(path)
                .map_err(|e| e.to_string())
                .and_then(|t| {
                    serde_json::from_str::<jsonwebtoken::jwk::JwkSet>(&t).map_err(|e| e.to_string())
                }) {
                Ok(set) if !set.keys.is_empty() => Some(set),
                Ok(_) => {
                    self.bad(k("jwks_file"), "a JWKS with at least one public key");
                    None
                }
                Err(e) => {
                    self.bad(k("jwks_file"), format!("a readable JWKS JSON file ({e})"));
                    None
                }
            },
            (None, AuthMethod::PrivateKeyJwt) => {
                self.bad(
                    k("jwks_file"),
                    "the client's public keys (JWKS file) for private_key_jwt",
                );
                None
            }
            (Some(_), _) => {
                self.bad(
                    k("jwks_file"),
                    "only with token_endpoint_auth_method = \"private_key_jwt\"",
                );
                None
            }
            (None, _) => None,
        };
        let grant_types: Vec<GrantType> = match a.grant_types {
            None => vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            Some(list) => list
                .iter()
                .enumerate()
                .filter_map(|(j, g)| match g.as_str() {
                    "authorization_code" => Some(GrantType::AuthorizationCode),
                    "refresh_token" => Some(GrantType::RefreshToken),
                    "client_credentials" => Some(GrantType::ClientCredentials),
                    other => {
                        self.bad(
                            format!("apps[{i}].grant_types[{j}]"),
                            format!("authorization_code, refresh_token or client_credentials, got {other:?}"),
                        );
                        None
                    }
                })
                .collect(),
        };
        if grant_types.contains(&GrantType::ClientCredentials) && method == AuthMethod::None {
            self.bad(k("grant_types"), "client_credentials only for a confidential client (a public client cannot keep a secret)");
        }
        if grant_types.contains(&GrantType::AuthorizationCode) && a.redirect_uris.is_empty() {
            self.bad(
                k("redirect_uris"),
                "at least one redirect URI for an app using authorization_code",
            );
        }
        for (j, u) in a.redirect_uris.iter().enumerate() {
            if let Err(e) = check_redirect_uri(u) {
                self.bad(format!("apps[{i}].redirect_uris[{j}]"), e);
            }
        }
        for (j, u) in a.post_logout_redirect_uris.iter().enumerate() {
            if let Err(e) = check_redirect_uri(u) {
                self.bad(format!("apps[{i}].post_logout_redirect_uris[{j}]"), e);
            }
        }
        for (j, s) in a.scopes.iter().enumerate() {
            if protocol::scope::Scope::parse(s).is_none_or(|p| p.iter().count() != 1) {
                self.bad(
                    format!("apps[{i}].scopes[{j}]"),
                    format!("a single scope token, got {s:?}"),
                );
            }
        }
        let id_token_alg = match a.id_token_signed_response_alg.as_deref() {
            None => SigningAlg::ES256,
            Some(s) => self
                .alg(&k("id_token_signed_response_alg"), s)
                .unwrap_or(SigningAlg::ES256),
        };
        Some(AppConfig {
            name: a.name.unwrap_or_else(|| a.client_id.clone()),
            client_id: a.client_id,
            client_secret: secret,
            auth_method: method,
            redirect_uris: a.redirect_uris,
            post_logout_redirect_uris: a.post_logout_redirect_uris,
            grant_types,
            first_party: a.first_party,
            scopes: a.scopes,
            id_token_alg,
            jwks,
            partner_tenant: a.partner_tenant,
        })
    }
}

/// Redirect URIs must be absolute, without fragment (RFC 6749 §3.1.2), and https except for
/// loopback (RFC 8252 §7.3) or a private-use scheme of a native app.
fn check_redirect_uri(u: &str) -> Result<(), String> {
    let url = url::Url::parse(u).map_err(|_| format!("an absolute URI, got {u:?}"))?;
    if url.fragment().is_some() || u.contains('#') {
        return Err(format!("a URI without fragment, got {u:?}"));
    }
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"));
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(format!("https (plain http only for loopback), got {u:?}")),
        s if s.contains('.') => Ok(()),
        _ => Err(format!(
            "https, loopback http, or a reverse-domain private-use scheme, got {u:?}"
        )),
    }
}

fn parse_net(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

/// A database URL with any password replaced, for messages.
pub fn redact_url(u: &str) -> String {
    match url::Url::parse(u) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.into()
        }
        _ => u.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[tenant]
id = "contoso"
display_name = "Contoso"
issuer = "https://127.0.0.1:9443"
[server]
listen = "127.0.0.1:9443"
trusted_proxies = ["127.0.0.1/32", "::1"]
[server.tls]
cert = "Cargo.toml"
key = "Cargo.toml"
[database]
url = "sqlite://data/contoso.db"
[[apps]]
client_id = "lab-rp"
client_secret = "lab-rp-secret"
redirect_uris = ["http://127.0.0.1:9555/callback"]
first_party = true
"#;

    #[test]
    fn good_config_loads_with_defaults() {
        let c = Config::parse(GOOD, "home.toml").unwrap();
        assert_eq!(c.tenant_id, "contoso");
        assert_eq!(c.apps[0].auth_method, AuthMethod::ClientSecretBasic);
        assert_eq!(
            c.apps[0].grant_types,
            vec![GrantType::AuthorizationCode, GrantType::RefreshToken]
        );
        assert_eq!(c.tokens, TokenLifetimes::default());
        assert_eq!(c.cookie_prefix(), "__Host-tenantd-contoso");
        assert_eq!(c.trusted_proxies.len(), 2);
    }

    #[test]
    fn every_mistake_is_reported_with_key_and_file() {
        let bad = GOOD
            .replace("id = \"contoso\"", "id = \"Contoso!\"")
            .replace("https://127.0.0.1:9443\"", "https://127.0.0.1:9443/\"")
            .replace("127.0.0.1/32", "not-a-cidr")
            .replace(
                "http://127.0.0.1:9555/callback",
                "http://example.com/cb#frag",
            );
        let e = Config::parse(&bad, "home.toml").unwrap_err();
        let keys: Vec<&str> = e.problems.iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"tenant.id"), "{e}");
        assert!(keys.contains(&"tenant.issuer"), "{e}");
        assert!(keys.contains(&"server.trusted_proxies[0]"), "{e}");
        assert!(keys.contains(&"apps[0].redirect_uris[0]"), "{e}");
        assert!(e.to_string().contains("home.toml: tenant.id"));
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_errors() {
        let e = Config::parse(
            &GOOD.replace("[database]", "[database]\npool = 3"),
            "x.toml",
        )
        .unwrap_err();
        assert!(e.to_string().contains("pool"), "{e}");
        let e = Config::parse(
            &GOOD.replace("first_party = true", "first_party = \"yes\""),
            "x.toml",
        )
        .unwrap_err();
        assert_eq!(e.problems.len(), 1, "{e}");
    }

    #[test]
    fn tls_is_required_unless_plain_http_is_explicit() {
        let no_tls = GOOD.replace(
            "[server.tls]\ncert = \"Cargo.toml\"\nkey = \"Cargo.toml\"\n",
            "",
        );
        assert!(Config::parse(&no_tls, "x").is_err());
        let plain = no_tls
            .replace("listen =", "plain_http = true\nlisten =")
            .replace("https://127", "http://127");
        let c = Config::parse(&plain, "x").unwrap();
        assert!(c.tls.is_none());
        assert_eq!(c.cookie_prefix(), "tenantd-contoso");
    }

    #[test]
    fn missing_tls_files_are_named() {
        let bad = GOOD.replace("cert = \"Cargo.toml\"", "cert = \"no/such.pem\"");
        let e = Config::parse(&bad, "x").unwrap().check_files().unwrap_err();
        assert!(
            e.problems
                .iter()
                .any(|p| p.key == "server.tls.cert" && p.expected.contains("no/such.pem")),
            "{e}"
        );
    }

    #[test]
    fn weak_secret_and_public_client_credentials_are_refused() {
        let e = Config::parse(&GOOD.replace("lab-rp-secret", "short"), "x").unwrap_err();
        assert!(e.problems.iter().any(|p| p.key == "apps[0].client_secret"));
        let public_cc = GOOD.replace(
            "client_secret = \"lab-rp-secret\"",
            "grant_types = [\"client_credentials\"]",
        );
        let e = Config::parse(&public_cc, "x").unwrap_err();
        assert!(e.problems.iter().any(|p| p.key == "apps[0].grant_types"));
    }
}
