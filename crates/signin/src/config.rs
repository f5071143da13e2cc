//! Tenant configuration: one TOML file per tenant. Parsing is strict (unknown keys are errors)
//! and every mistake is reported with the file, the line, the key and what was expected, all at
//! once — syntax errors, wrong types and invalid values in the config, and what is wrong in the
//! files it names (TLS and CA certificates, partner keys, intel lists, policies) — before a
//! tenant creates anything, so it never starts half-configured.

use crate::protection::Prepared;
use ipnet::IpNet;
use protocol::client_auth::AuthMethod;
use protocol::jwt::SigningAlg;
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

mod files;
mod mail;
mod partner;
mod rate_limits;
mod registration;
mod retention;
mod risk;
mod secrets;
mod source;
mod sspr;
pub use mail::{MailSettings, SmtpSecurity, SmtpSettings};
pub use partner::{PartnerConfig, PartnerCredential, SignalsDelivery};
pub use rate_limits::RateLimitSettings;
pub use registration::RegistrationSettings;
pub use retention::RetentionSettings;
pub use risk::RiskSettings;
use source::{Doc, Section};
pub use sspr::SsprSettings;

/// Everything wrong with a config file and the files it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The config file (or a description of where the config came from).
    pub file: String,
    /// One entry per problem, each naming its own file (the config or a file it names).
    pub problems: Vec<Problem>,
}

/// One problem: where it is, which key, and what was expected there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file the problem is in: the config file, or a file it names.
    pub file: String,
    /// 1-based line, where there is one.
    pub line: Option<usize>,
    /// 1-based column, for syntax errors.
    pub column: Option<usize>,
    /// Dotted key path, e.g. `apps[0].redirect_uris[1]`; for a problem in a named file, the
    /// key inside it when it has keys (a policy's field), else the config key naming the file.
    pub key: String,
    /// What was expected (and what was found, where useful).
    pub expected: String,
}

impl Problem {
    /// A problem in `file` at `key`, without a line yet.
    pub fn new(
        file: impl Into<String>,
        key: impl Into<String>,
        expected: impl Into<String>,
    ) -> Self {
        Self {
            file: file.into(),
            line: None,
            column: None,
            key: key.into(),
            expected: expected.into(),
        }
    }

    /// The same problem at `line`.
    pub fn at(mut self, line: Option<usize>) -> Self {
        self.line = line;
        self
    }
}

/// `file:line:column: key: expected`, leaving out what is not known.
impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": {}: {}", self.key, self.expected)
    }
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
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Which of the files a config names are checked with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileCheck {
    /// All of them.
    All,
    /// All but the TLS certificate and key and the partners' CA files, which the lab replaces
    /// with its development certificates.
    ExceptTls,
}

/// The top-level sections.
const SECTIONS: [&str; 14] = [
    "tenant",
    "server",
    "database",
    "tokens",
    "passwords",
    "apps",
    "partners",
    "risk",
    "registration",
    "sspr",
    "rate_limits",
    "retention",
    "mail",
    "secrets",
];

/// The file's sections, each deserialized on its own.
struct Sections {
    tenant: Section<RawTenant>,
    server: Section<RawServer>,
    database: Section<RawDatabase>,
    tokens: Section<RawTokens>,
    passwords: Section<RawPasswords>,
    apps: Vec<Option<RawApp>>,
    partners: Vec<Option<partner::RawPartner>>,
    risk: Section<risk::RawRisk>,
    registration: Section<registration::RawRegistration>,
    sspr: Section<sspr::RawSspr>,
    rate_limits: Section<rate_limits::RawRateLimits>,
    retention: Section<retention::RawRetention>,
    mail: Section<mail::RawMail>,
    secrets: Section<secrets::RawSecrets>,
}

/// The files a config names that are read apart from parsing it.
#[derive(Debug, Default)]
struct NamedFiles {
    tls: Option<TlsFiles>,
    /// `(key, path)` of each partner's CA file.
    ca_files: Vec<(String, PathBuf)>,
    risk: Option<RiskSettings>,
}

/// A parse: the config when it is complete, the files it names when checked, and every
/// problem found.
struct Parsed {
    config: Option<Config>,
    /// The intel and file policies, when the named files were checked and are good.
    prepared: Option<Prepared>,
    problems: Vec<Problem>,
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
    max_concurrent_hashes: Option<usize>,
    lockout_threshold: u32,
    lockout_duration_secs: i64,
}

impl Default for RawPasswords {
    fn default() -> Self {
        let d = PasswordPolicy::default();
        Self {
            argon2_memory_kib: d.memory_kib,
            argon2_iterations: d.iterations,
            argon2_parallelism: d.parallelism,
            max_concurrent_hashes: d.max_concurrent_hashes,
            lockout_threshold: d.lockout.threshold,
            lockout_duration_secs: d.lockout.duration_secs,
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
    push_ca_file: Option<PathBuf>,
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
    /// At most this many of the tenant's hashes queued or running at once (more wait); `None`:
    /// as many as the process has hashing threads (one per core).
    pub max_concurrent_hashes: Option<usize>,
    /// Smart lockout: wrong passwords per account and source before the source is locked, and
    /// for how long (Entra's defaults: 10, 60 s; each further lockout lasts twice as long).
    pub lockout: ::risk::lockout::LockoutSettings,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
            max_concurrent_hashes: None,
            lockout: ::risk::lockout::LockoutSettings::default(),
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
    /// `user_risk` claim. No other app ever does.
    #[serde(default)]
    pub partner_tenant: bool,
    /// The CA certificates (PEM) that sign this partner's push endpoint for shared signals, when
    /// it is not signed by one of the system's roots (a private or a lab CA). Only for a
    /// partner tenant.
    #[serde(default)]
    pub push_ca_file: Option<PathBuf>,
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
    /// Dynamic client registration (RFC 7591 / RFC 7592).
    pub registration: RegistrationSettings,
    /// Self-service password reset.
    pub sspr: SsprSettings,
    /// Requests per client IP and minute at the guessable endpoints.
    pub rate_limits: RateLimitSettings,
    /// How long logs are kept.
    pub retention: RetentionSettings,
    /// How mail (one-time codes) is sent.
    pub mail: MailSettings,
    /// `[secrets]`: the master keys secrets at rest are sealed with, read from their files or
    /// variable; `None` without the section (a SQLite tenant then keeps a generated key beside
    /// its database: [`crate::vault::for_config`]).
    pub secrets: Option<std::sync::Arc<crate::vault::Vault>>,
}

impl Config {
    /// Reads and validates a config file and every file it names (see [`Config::load_checked`]).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::load_checked(path, FileCheck::All).map(|(config, _)| config)
    }

    /// Reads and validates a config file and the files it names — TLS and CA certificates,
    /// partner keys, intel lists, named locations, geo and ASN data, the policies directory —
    /// reporting every mistake in all of them at once. Nothing is created: the intel and file
    /// policies come back read and checked, for [`crate::protection::Protection`].
    pub fn load_checked(path: &Path, check: FileCheck) -> Result<(Self, Prepared), ConfigError> {
        let file = path.display().to_string();
        let text = read_config(path, &file)?;
        Self::parse_checked(&text, &file, check)
    }

    /// [`Config::load_checked`] for config text; `file` names it in messages and is where
    /// `[risk]` paths are relative to.
    pub fn parse_checked(
        text: &str,
        file: &str,
        check: FileCheck,
    ) -> Result<(Self, Prepared), ConfigError> {
        let parsed = parse(text, file, Some(check));
        match (parsed.config, parsed.prepared) {
            (Some(config), Some(prepared)) if parsed.problems.is_empty() => Ok((config, prepared)),
            _ => Err(ConfigError {
                file: file.to_owned(),
                problems: parsed.problems,
            }),
        }
    }

    /// Checks the files this config names (after a caller changed them, as the lab does with
    /// its certificates): every problem at once, or the intel and file policies, read.
    pub fn check_files(&self) -> Result<Prepared, ConfigError> {
        let mut problems = Vec::new();
        let prepared = self.named_files().check(FileCheck::All, &mut problems);
        match prepared {
            Some(p) if problems.is_empty() => Ok(p),
            _ => Err(ConfigError {
                file: self.source.clone(),
                problems,
            }),
        }
    }

    /// Read and validate a config file without looking at the files it names (TLS, CA, intel,
    /// policies; the JWKS and partner key files are read, they are part of the config).
    pub fn load_unchecked(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = read_config(path, &file)?;
        Self::parse(&text, &file)
    }

    /// Validate config text; `file` names it in messages.
    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        let parsed = parse(text, file, None);
        match parsed.config {
            Some(config) if parsed.problems.is_empty() => Ok(config),
            _ => Err(ConfigError {
                file: file.to_owned(),
                problems: parsed.problems,
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

    fn named_files(&self) -> NamedFiles {
        NamedFiles {
            tls: self.tls.clone(),
            ca_files: self
                .apps
                .iter()
                .enumerate()
                .filter_map(|(i, a)| {
                    Some((format!("apps[{i}].push_ca_file"), a.push_ca_file.clone()?))
                })
                .chain(self.partners.iter().enumerate().filter_map(|(i, p)| {
                    Some((format!("partners[{i}].ca_file"), p.ca_file.clone()?))
                }))
                .collect(),
            risk: Some(self.risk.clone()),
        }
    }
}

/// Deserializes another TOML file (the lab's) the way the config is read: every syntax error
/// with line, column and key, and a wrong type or unknown key with its key path and line.
pub fn from_toml<'t, T: Deserialize<'t>>(text: &'t str, file: &'t str) -> Result<T, ConfigError> {
    let mut problems = Vec::new();
    let doc = Doc::parse(text, file, &mut problems);
    let value = doc.whole(&mut problems);
    problems.retain(|p| p.column.is_some() || !doc.has_syntax_error(p.line));
    problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
    match value {
        Some(v) if problems.is_empty() => Ok(v),
        _ => Err(ConfigError {
            file: file.to_owned(),
            problems,
        }),
    }
}

fn read_config(path: &Path, file: &str) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: file.to_owned(),
        problems: vec![Problem::new(
            file,
            "(file)",
            format!("a readable TOML file ({e})"),
        )],
    })
}

/// Parses and validates config text, and checks the files it names (unless `check` is
/// `None`): the config if it is complete, and every problem, each with its line.
fn parse(text: &str, file: &str, check: Option<FileCheck>) -> Parsed {
    let mut problems = Vec::new();
    let doc = Doc::parse(text, file, &mut problems);
    for (key, line) in doc.top_level_keys() {
        if !SECTIONS.contains(&key.as_str()) {
            problems.push(
                Problem::new(
                    file,
                    key.clone(),
                    format!(
                        "one of the sections {}; there is no section `{key}`",
                        SECTIONS.join(", ")
                    ),
                )
                .at(Some(line)),
            );
        }
    }
    let sections = Sections {
        tenant: doc.section("tenant", &mut problems),
        server: doc.section("server", &mut problems),
        database: doc.section("database", &mut problems),
        tokens: doc.section("tokens", &mut problems),
        passwords: doc.section("passwords", &mut problems),
        apps: doc.entries("apps", &mut problems),
        partners: doc.entries("partners", &mut problems),
        risk: doc.section("risk", &mut problems),
        registration: doc.section("registration", &mut problems),
        sspr: doc.section("sspr", &mut problems),
        rate_limits: doc.section("rate_limits", &mut problems),
        retention: doc.section("retention", &mut problems),
        mail: doc.section("mail", &mut problems),
        secrets: doc.section("secrets", &mut problems),
    };
    let mut v = Validator {
        file: file.to_owned(),
        problems: Vec::new(),
    };
    let (config, named) = v.config(sections, file);
    let mut found = v.problems;
    let prepared = check.and_then(|check| named.check(check, &mut found));
    for p in found {
        // What is found at a key mended after a type error follows from that error.
        if doc.mended(&p.key) {
            continue;
        }
        // Problems in the files the config names have their own lines (or none); the
        // config's own are at their key's line.
        let line = match p.line {
            None if p.file == file => doc.line_of(&p.key),
            line => line,
        };
        problems.push(p.at(line));
    }
    // A value the parser recovered from a syntax error is not reported a second time.
    problems.retain(|p| p.column.is_some() || !doc.has_syntax_error(p.line));
    // The config's problems in line order, then those in the files it names as found.
    problems.sort_by_key(|p| {
        if p.file == file {
            (false, p.line.unwrap_or(usize::MAX))
        } else {
            (true, 0)
        }
    });
    Parsed {
        config: config.map(|mut c| {
            c.source = file.to_owned();
            c
        }),
        prepared,
        problems,
    }
}

/// The parts of `[server]`.
struct ServerParts {
    listen: Option<SocketAddr>,
    tls: Option<TlsFiles>,
    trusted_proxies: Vec<IpNet>,
}

struct Validator {
    /// The config file, for problems.
    file: String,
    problems: Vec<Problem>,
}

impl Validator {
    fn bad(&mut self, key: impl Into<String>, expected: impl Into<String>) {
        self.problems
            .push(Problem::new(self.file.clone(), key, expected));
    }

    /// A required section: `None` (with a problem when it is missing) unless it is there.
    fn required<T>(&mut self, section: Section<T>, key: &str, expected: &str) -> Option<T> {
        match section {
            Section::Ok(t) => Some(t),
            Section::Missing => {
                self.bad(key, expected);
                None
            }
            Section::Bad => None,
        }
    }

    /// An optional section: its defaults when it is missing, `None` when it is bad.
    fn optional<T: Default>(section: Section<T>) -> Option<T> {
        match section {
            Section::Ok(t) => Some(t),
            Section::Missing => Some(T::default()),
            Section::Bad => None,
        }
    }

    /// Validates every section there is, so one bad section does not hide the others' problems;
    /// the config when every section was there and well-formed.
    fn config(&mut self, raw: Sections, file: &str) -> (Option<Config>, NamedFiles) {
        let mut named = NamedFiles::default();
        // The issuer's scheme depends on plain_http; when [server] is unusable, do not guess.
        let plain_http = match &raw.server {
            Section::Ok(s) => s.plain_http,
            _ => true,
        };
        let tenant = self
            .required(
                raw.tenant,
                "tenant",
                "a [tenant] section with id, display_name and issuer",
            )
            .map(|t| self.tenant(t, plain_http));
        let server = self
            .required(
                raw.server,
                "server",
                "a [server] section with listen and [server.tls] (or plain_http = true)",
            )
            .map(|s| self.server(s));
        if let Some(s) = &server {
            named.tls = s.tls.clone();
        }
        let database = self
            .required(raw.database, "database", "a [database] section with url")
            .map(|d| self.database(d));
        let tokens = Self::optional(raw.tokens).map(|t| self.tokens(t));
        let passwords = Self::optional(raw.passwords).map(|p| self.passwords(p));
        let mut apps = Some(Vec::new());
        for (i, a) in raw.apps.into_iter().enumerate() {
            let app = a.and_then(|a| self.app(i, a));
            if let Some(ca) = app.as_ref().and_then(|a| a.push_ca_file.clone()) {
                named.ca_files.push((format!("apps[{i}].push_ca_file"), ca));
            }
            if let Some(app) = &app
                && let Some(list) = &apps
                && list
                    .iter()
                    .any(|x: &AppConfig| x.client_id == app.client_id)
            {
                self.bad(
                    format!("apps[{i}].client_id"),
                    format!("a unique client id; {:?} is used twice", app.client_id),
                );
            }
            match (app, &mut apps) {
                (Some(app), Some(list)) => list.push(app),
                _ => apps = None,
            }
        }
        let mut partners = Some(Vec::new());
        for (i, p) in raw.partners.into_iter().enumerate() {
            let partner = p.and_then(|p| self.partner(i, p));
            if let Some(ca) = partner.as_ref().and_then(|p| p.ca_file.clone()) {
                named.ca_files.push((format!("partners[{i}].ca_file"), ca));
            }
            match (partner, &mut partners) {
                (Some(p), Some(list)) => list.push(p),
                _ => partners = None,
            }
        }
        if let Some(list) = &partners {
            self.partners_unique(list);
            if let Some(apps) = &apps {
                self.reverse_streams_known(list, apps);
            }
        }
        let risk = Self::optional(raw.risk).map(|r| self.risk(r, file));
        named.risk = risk.clone();
        let registration = Self::optional(raw.registration).map(|r| self.registration(r));
        let sspr = Self::optional(raw.sspr).map(|r| self.sspr(r));
        let rate_limits = Self::optional(raw.rate_limits).map(|r| self.rate_limits(r));
        let retention = Self::optional(raw.retention).map(|r| self.retention(r));
        // Absent, mail is off; present, it must say how to send.
        let mail = match raw.mail {
            Section::Ok(m) => Some(self.mail(m)),
            Section::Missing => Some(MailSettings::Off),
            Section::Bad => None,
        };
        let secrets = match raw.secrets {
            Section::Ok(s) => self.secrets(s, file).map(Some),
            Section::Missing => {
                if database
                    .as_ref()
                    .is_some_and(|url| url.starts_with("postgres"))
                {
                    self.bad(
                        "secrets",
                        "a [secrets] section with master_key_file or master_key_env: a \
                         PostgreSQL database is shared and backed up apart from any one \
                         machine, so its master key is kept apart from it",
                    );
                }
                Some(None)
            }
            Section::Bad => None,
        };
        let build = || {
            let (tenant_id, display_name, issuer) = tenant?;
            let server = server?;
            let (tokens, signing_alg) = tokens?;
            Some(Config {
                source: String::new(),
                tenant_id,
                display_name,
                issuer: issuer?,
                listen: server.listen?,
                tls: server.tls,
                trusted_proxies: server.trusted_proxies,
                database_url: database?,
                tokens,
                signing_alg: signing_alg?,
                passwords: passwords?,
                apps: apps?,
                partners: partners?,
                risk: risk?,
                registration: registration?,
                sspr: sspr?,
                rate_limits: rate_limits?,
                retention: retention?,
                mail: mail?,
                secrets: secrets?,
            })
        };
        (build(), named)
    }

    fn tenant(&mut self, t: RawTenant, plain_http: bool) -> (String, String, Option<String>) {
        let tenant_id = t.id;
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
        if t.display_name.trim().is_empty() {
            self.bad("tenant.display_name", "a non-empty name");
        }
        let issuer = self.issuer(&t.issuer, plain_http);
        (tenant_id, t.display_name, issuer)
    }

    fn server(&mut self, s: RawServer) -> ServerParts {
        let listen = match s.listen.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.bad(
                    "server.listen",
                    format!(
                        "an IP:port socket address such as 127.0.0.1:9443, got {:?}",
                        s.listen
                    ),
                );
                None
            }
        };
        let tls = match (s.tls, s.plain_http) {
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
        for (i, p) in s.trusted_proxies.iter().enumerate() {
            match parse_net(p) {
                Some(n) => trusted_proxies.push(n),
                None => self.bad(
                    format!("server.trusted_proxies[{i}]"),
                    format!("a CIDR or IP address, got {p:?}"),
                ),
            }
        }
        ServerParts {
            listen,
            tls,
            trusted_proxies,
        }
    }

    fn database(&mut self, d: RawDatabase) -> String {
        let db = d.url;
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
        db
    }

    fn tokens(&mut self, t: RawTokens) -> (TokenLifetimes, Option<SigningAlg>) {
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
        let lifetimes = TokenLifetimes {
            id_token: t.id_token_lifetime_secs,
            access_token: t.access_token_lifetime_secs,
            refresh_token: t.refresh_token_lifetime_secs,
            code: t.code_lifetime_secs,
            session: t.session_lifetime_secs,
            sign_in_request: t.sign_in_request_lifetime_secs,
        };
        (lifetimes, signing_alg)
    }

    fn passwords(&mut self, p: RawPasswords) -> PasswordPolicy {
        if p.argon2_memory_kib < 19 * 1024 || p.argon2_iterations < 2 || p.argon2_parallelism == 0 {
            self.bad(
                "passwords",
                "argon2id parameters at or above the OWASP minimum (argon2_memory_kib >= 19456, argon2_iterations >= 2, argon2_parallelism >= 1)",
            );
        }
        if p.max_concurrent_hashes == Some(0) {
            self.bad("passwords.max_concurrent_hashes", "at least 1");
        }
        if !(1..=1000).contains(&p.lockout_threshold) {
            self.bad(
                "passwords.lockout_threshold",
                format!(
                    "wrong passwords before a lockout, 1 to 1000, got {}",
                    p.lockout_threshold
                ),
            );
        }
        if !(1..=86_400).contains(&p.lockout_duration_secs) {
            self.bad(
                "passwords.lockout_duration_secs",
                format!(
                    "seconds of the first lockout, 1 to 86400, got {}",
                    p.lockout_duration_secs
                ),
            );
        }
        PasswordPolicy {
            memory_kib: p.argon2_memory_kib,
            iterations: p.argon2_iterations,
            parallelism: p.argon2_parallelism,
            max_concurrent_hashes: p.max_concurrent_hashes,
            lockout: ::risk::lockout::LockoutSettings {
                threshold: p.lockout_threshold,
                duration_secs: p.lockout_duration_secs,
            },
        }
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
        } else if a.client_id == crate::apps::PORTAL_CLIENT_ID {
            self.bad(
                k("client_id"),
                format!(
                    "another client id: {:?} is tenantd's own pages",
                    crate::apps::PORTAL_CLIENT_ID
                ),
            );
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
                    self.problems.push(Problem::new(
                        path.display().to_string(),
                        k("jwks_file"),
                        "a JWKS with at least one public key",
                    ));
                    None
                }
                Err(e) => {
                    self.problems.push(Problem::new(
                        path.display().to_string(),
                        k("jwks_file"),
                        format!("a readable JWKS JSON file ({e})"),
                    ));
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
        if a.push_ca_file.is_some() && !a.partner_tenant {
            self.bad(
                k("push_ca_file"),
                "only for an app with partner_tenant = true (only partner tenants receive shared signals)",
            );
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
            push_ca_file: a.push_ca_file,
        })
    }
}

/// Redirect URIs must be absolute, without fragment (RFC 6749 §3.1.2), and https except for
/// loopback (RFC 8252 §7.3) or a private-use scheme of a native app.
pub(crate) fn check_redirect_uri(u: &str) -> Result<(), String> {
    let url = url::Url::parse(u).map_err(|_| format!("an absolute URI, got {u:?}"))?;
    if url.fragment().is_some() || u.contains('#') {
        return Err(format!("a URI without fragment, got {u:?}"));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if federation::is_https_or_loopback(u) => Ok(()),
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

    pub(super) const GOOD: &str = r#"
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
        // Each at its line, in line order.
        let shown = e.to_string();
        assert!(
            shown.contains("  home.toml:3: tenant.id: 1-64 characters"),
            "{e}"
        );
        assert!(shown.contains("  home.toml:5: tenant.issuer: "), "{e}");
        assert!(
            shown.contains("  home.toml:8: server.trusted_proxies[0]: "),
            "{e}"
        );
        assert!(
            shown.contains("  home.toml:17: apps[0].redirect_uris[0]: "),
            "{e}"
        );
        let lines: Vec<_> = e.problems.iter().map(|p| p.line).collect();
        assert!(lines.is_sorted(), "{e}");
    }

    #[test]
    fn a_type_error_names_the_key_path_and_line_and_hides_nothing_else() {
        let text = format!(
            "{GOOD}[[partners]]\nid = \"fabrikam\"\nissuer = \"https://127.0.0.1:9444\"\nclient_id = \"c\"\nclient_secret = \"secret-secret\"\ntimeout_ms = \"5\"\n"
        )
        .replace("id = \"contoso\"", "id = \"Contoso!\"");
        let e = Config::parse(&text, "home.toml").unwrap_err();
        let p = e
            .problems
            .iter()
            .find(|p| p.key == "partners[0].timeout_ms")
            .unwrap_or_else(|| panic!("{e}"));
        assert_eq!(p.line, Some(24), "{e}");
        assert_eq!(p.expected, "u64, got string \"5\"");
        assert!(
            e.to_string()
                .contains("home.toml:24: partners[0].timeout_ms: u64, got string \"5\""),
            "{e}"
        );
        // The other sections are still validated.
        assert!(e.problems.iter().any(|p| p.key == "tenant.id"), "{e}");
        assert_eq!(e.problems.len(), 2, "{e}");

        // A required key of the wrong type is one problem (not also "missing", nor invalid
        // as the placeholder that lets the rest be checked).
        let e = Config::parse(&GOOD.replace("id = \"contoso\"", "id = 1"), "x.toml").unwrap_err();
        assert_eq!(e.problems.len(), 1, "{e}");
        assert_eq!(
            e.to_string(),
            "x.toml: 1 problem(s) in the configuration:\n  x.toml:3: tenant.id: a string, got integer `1`\n"
        );

        // Inside an array, in an optional section, and a missing required key.
        let e = Config::parse(
            &GOOD
                .replace("\"::1\"]", "3]")
                .replace(
                    "[database]\nurl = \"sqlite://data/contoso.db\"",
                    "[database]",
                )
                .replace(
                    "[[apps]]",
                    "[tokens]\ncode_lifetime_secs = \"60\"\n[[apps]]",
                ),
            "x.toml",
        )
        .unwrap_err();
        let found: Vec<(String, Option<usize>)> =
            e.problems.iter().map(|p| (p.key.clone(), p.line)).collect();
        assert_eq!(
            found,
            [
                ("server.trusted_proxies[1]".to_owned(), Some(8)),
                ("database.url".to_owned(), Some(12)),
                ("tokens.code_lifetime_secs".to_owned(), Some(14)),
            ],
            "{e}"
        );
    }

    #[test]
    fn smart_lockout_settings_are_read_and_checked() {
        let c = Config::parse(
            &GOOD.replace(
                "[[apps]]",
                "[passwords]\nlockout_threshold = 5\nlockout_duration_secs = 300\n[[apps]]",
            ),
            "x.toml",
        )
        .unwrap();
        assert_eq!(c.passwords.lockout.threshold, 5);
        assert_eq!(c.passwords.lockout.duration_secs, 300);
        assert_eq!(
            Config::parse(GOOD, "x.toml").unwrap().passwords.lockout,
            ::risk::lockout::LockoutSettings {
                threshold: 10,
                duration_secs: 60
            }
        );
        let e = Config::parse(
            &GOOD.replace(
                "[[apps]]",
                "[passwords]\nlockout_threshold = 0\nlockout_duration_secs = 0\n[[apps]]",
            ),
            "x.toml",
        )
        .unwrap_err();
        let keys: Vec<&str> = e.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "passwords.lockout_threshold",
                "passwords.lockout_duration_secs"
            ],
            "{e}"
        );
    }

    #[test]
    fn a_syntax_error_names_line_column_and_key_and_the_rest_is_still_checked() {
        let bad = GOOD
            .replace("listen = \"127.0.0.1:9443\"", "listen = 127.0.0.1:9443")
            .replace("id = \"contoso\"", "id = \"Contoso!\"")
            .replace(
                "first_party = true",
                "first_party = true\nscopes = [\n  \"a\",\n  b c,\n]",
            );
        let e = Config::parse(&bad, "home.toml").unwrap_err();
        let shown = e.to_string();
        let listen = e
            .problems
            .iter()
            .find(|p| p.key == "server.listen")
            .unwrap_or_else(|| panic!("{e}"));
        // Where toml's parser stopped: `127.0` is a float, the second `.` is not.
        assert_eq!((listen.line, listen.column), (Some(7), Some(15)), "{e}");
        assert!(listen.expected.starts_with("valid TOML ("), "{e}");
        assert!(
            shown.contains("  home.toml:7:15: server.listen: valid TOML ("),
            "{e}"
        );
        // In a multi-line array of an [[apps]] entry.
        assert!(
            e.problems
                .iter()
                .any(|p| p.key == "apps[0].scopes" && p.line == Some(21) && p.column.is_some()),
            "{e}"
        );
        // The mistakes on other lines are reported in the same run, the recovered lines not
        // a second time.
        assert!(e.problems.iter().any(|p| p.key == "tenant.id"), "{e}");
        assert!(
            e.problems
                .iter()
                .all(|p| p.line != Some(7) || p.column.is_some()),
            "{e}"
        );
        // The files named in the section with the syntax error are checked as well.
        let e = Config::parse_checked(
            &bad.replace("cert = \"Cargo.toml\"", "cert = \"no/such.pem\""),
            "home.toml",
            FileCheck::All,
        )
        .unwrap_err();
        assert!(
            e.problems
                .iter()
                .any(|p| p.key == "server.tls.cert" && p.file == "no/such.pem"),
            "{e}"
        );
        // A broken table header names the table.
        let e = Config::parse(&GOOD.replace("[database]", "[database"), "x.toml").unwrap_err();
        assert!(
            e.problems
                .iter()
                .any(|p| p.key == "database" && p.line == Some(12) && p.column.is_some()),
            "{e}"
        );
    }

    #[test]
    fn unknown_keys_and_sections_are_named_where_they_are() {
        let e = Config::parse(
            &GOOD
                .replace("[database]", "[database]\npool = 3")
                .replace("[[apps]]", "[databse]\nurl = \"x\"\n[[apps]]"),
            "x.toml",
        )
        .unwrap_err();
        let found: Vec<(&str, Option<usize>)> = e
            .problems
            .iter()
            .map(|p| (p.key.as_str(), p.line))
            .collect();
        assert_eq!(
            found,
            [("database.pool", Some(13)), ("databse", Some(15))],
            "{e}"
        );
        assert!(e.problems[0].expected.contains("`url`"), "{e}");
    }

    /// A directory with a config that has mistakes of every kind, in itself and in the files it
    /// names.
    fn broken_tenant() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tenantd-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("policies")).unwrap();
        std::fs::write(dir.join("anon.txt"), "192.0.2.1\n198.51.100.300/24\nnope\n").unwrap();
        std::fs::write(dir.join("mal.txt"), "203.0.113.0/24\n").unwrap();
        std::fs::write(
            dir.join("policies/10-typo.json"),
            "{\n  \"id\": \"x\",\n  \"displayName\": \"x\",\n  \"state\": \"enabled\",\n  \"condtions\": {}\n}\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("policies/20-rules.toml"),
            "id = \"pw\"\ndisplayName = \"pw\"\nstate = \"enabled\"\n[conditions.users]\nincludeUsers = [\"All\"]\n[conditions.applications]\nincludeApplications = [\"All\"]\n[grantControls]\noperator = \"AND\"\nbuiltInControls = [\"mfa\", \"passwordChange\"]\n",
        )
        .unwrap();
        std::fs::write(dir.join("not-a-key.pem"), "hello\n").unwrap();
        let text = format!(
            "{}[[partners]]\nid = \"fabrikam\"\nissuer = \"https://127.0.0.1:9444\"\nclient_id = \"c\"\nprivate_key_file = \"{}\"\n\n[risk]\nanonymous_ips = [\"anon.txt\", \"missing.txt\"]\nmalicious_ips = [\"mal.txt\"]\npolicies_dir = \"policies\"\nlow_risk_max_age_days = \"180\"\n",
            GOOD.replace("cert = \"Cargo.toml\"", "cert = \"no/such.pem\"")
                .replace("id = \"contoso\"", "id = \"Contoso!\""),
            dir.join("not-a-key.pem").display()
        );
        std::fs::write(dir.join("tenant.toml"), text).unwrap();
        dir
    }

    #[test]
    fn every_mistake_in_the_config_and_the_files_it_names_is_reported_at_once() {
        let dir = broken_tenant();
        let file = dir.join("tenant.toml");
        let e = Config::load(&file).unwrap_err();
        let shown = e.to_string();
        let d = dir.display();
        let c = file.display();
        for expected in [
            format!("{c}:3: tenant.id: 1-64 characters"),
            "no/such.pem: server.tls.cert: a PEM file of certificates, but it cannot be read"
                .to_owned(),
            "Cargo.toml: server.tls.key: a PEM file with a private key, found none".to_owned(),
            format!("{d}/not-a-key.pem: partners[0].private_key_file: a PKCS#8 PEM"),
            format!("{c}:29: risk.low_risk_max_age_days: u32, got string \"180\""),
            format!("{d}/anon.txt:2: risk.anonymous_ips[0]: not a CIDR network"),
            format!(
                "{d}/anon.txt:3: risk.anonymous_ips[0]: not an IP address or CIDR network (`nope`)"
            ),
            format!("{d}/missing.txt: risk.anonymous_ips[1]: a readable file ("),
            format!("{d}/policies/10-typo.json:5: "),
            format!("{d}/policies/20-rules.toml: "),
        ] {
            assert!(shown.contains(&expected), "{expected}\nnot in\n{shown}");
        }
        assert!(shown.contains("condtions"), "{shown}");
        assert!(shown.contains("policy `pw`"), "{shown}");
        assert_eq!(e.problems.len(), 10, "{shown}");
        assert!(shown.starts_with(&format!("{c}: 10 problem(s) in the configuration:\n")));
        // Said once each.
        assert_eq!(shown.matches("anon.txt:2").count(), 1, "{shown}");
        assert_eq!(shown.matches("10-typo.json").count(), 1, "{shown}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn named_files_are_read_and_checked_with_a_good_config() {
        let dir = std::env::temp_dir().join(format!("tenantd-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
        let text = GOOD
            .replace(
                "[server.tls]\ncert = \"Cargo.toml\"\nkey = \"Cargo.toml\"\n",
                "",
            )
            .replace("listen =", "plain_http = true\nlisten =")
            .replace("https://127", "http://127")
            + &format!(
                "[risk]\nanonymous_ips = [\"{0}/intel/anonymous-ips.txt\"]\npolicies_dir = \"{0}/policies/contoso\"\n",
                shipped.display()
            );
        let file = dir.join("t.toml");
        std::fs::write(&file, &text).unwrap();
        let (config, prepared) = Config::load_checked(&file, FileCheck::All).unwrap();
        assert!(
            prepared.describe().starts_with("3 anonymous-IP ranges"),
            "{prepared:?}"
        );
        config.check_files().unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_reverse_stream_names_a_partner_app_with_client_credentials() {
        let with = |app: &str| {
            format!(
                "{GOOD}[[partners]]\nid = \"contoso\"\nissuer = \"https://127.0.0.1:9443\"\nclient_id = \"c\"\nclient_secret = \"secret-secret\"\nreverse_stream_client_id = \"contoso\"\n\n[[apps]]\nclient_id = \"contoso\"\nname = \"Contoso\"\nclient_secret = \"contoso-secret-1\"\n{app}\n"
            )
        };
        let c = Config::parse(
            &with("grant_types = [\"client_credentials\"]\nscopes = [\"ssf.manage\"]\npartner_tenant = true"),
            "resource.toml",
        )
        .unwrap();
        assert_eq!(
            c.partners[0].reverse_stream_client_id.as_deref(),
            Some("contoso")
        );
        for bad in [
            // Not registered for a partner tenant.
            "grant_types = [\"client_credentials\"]",
            // Cannot get a token to open its stream with.
            "redirect_uris = [\"https://contoso.example/cb\"]\npartner_tenant = true",
        ] {
            let e = Config::parse(&with(bad), "resource.toml").unwrap_err();
            assert_eq!(e.problems.len(), 1, "{e}");
            assert_eq!(
                e.problems[0].key, "partners[0].reverse_stream_client_id",
                "{e}"
            );
        }
        // No such app at all.
        let e = Config::parse(
            &with("grant_types = [\"client_credentials\"]\npartner_tenant = true").replace(
                "client_id = \"contoso\"\nname",
                "client_id = \"other\"\nname",
            ),
            "resource.toml",
        )
        .unwrap_err();
        assert_eq!(
            e.problems[0].key, "partners[0].reverse_stream_client_id",
            "{e}"
        );
    }

    #[test]
    fn a_push_ca_file_is_for_a_partner_app_and_must_hold_certificates() {
        let with = |lines: &str| {
            format!(
                "{GOOD}[[apps]]\nclient_id = \"fabrikam\"\nclient_secret = \"fabrikam-secret-1\"\ngrant_types = [\"client_credentials\"]\nscopes = [\"ssf.manage\"]\n{lines}\n"
            )
        };
        let c = Config::parse(
            &with("partner_tenant = true\npush_ca_file = \"ca.pem\""),
            "home.toml",
        )
        .unwrap();
        let app = c.apps.iter().find(|a| a.client_id == "fabrikam").unwrap();
        assert_eq!(app.push_ca_file.as_deref(), Some(Path::new("ca.pem")));
        // Only partner tenants receive signals.
        let e = Config::parse(&with("push_ca_file = \"ca.pem\""), "home.toml").unwrap_err();
        assert_eq!(e.problems.len(), 1, "{e}");
        assert!(e.problems[0].key.ends_with(".push_ca_file"), "{e}");
        // A file that is not there is named with its key when files are checked.
        let dir = std::env::temp_dir().join(format!("tenantd-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("home.toml");
        std::fs::write(
            &file,
            with("partner_tenant = true\npush_ca_file = \"/nonexistent/ca.pem\""),
        )
        .unwrap();
        let e = Config::load_checked(&file, FileCheck::All).unwrap_err();
        assert!(
            e.problems
                .iter()
                .any(|p| p.key.ends_with(".push_ca_file") && p.expected.contains("cannot be read")),
            "{e}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_partners_password_reset_url_is_https_or_loopback_http() {
        let partner = |line: &str| {
            format!(
                "{GOOD}[[partners]]\nid = \"fabrikam\"\nissuer = \"https://127.0.0.1:9444\"\nclient_id = \"c\"\nclient_secret = \"secret-secret\"\n{line}\n"
            )
        };
        let url = |u: &str| partner(&format!("password_reset_url = {u:?}"));
        for ok in [
            "https://sspr.fabrikam.example/reset?tenant=fabrikam",
            "http://127.0.0.1:9444/password/reset",
            "http://[::1]:9444/password/reset",
            "http://localhost:9444/password/reset",
        ] {
            let c = Config::parse(&url(ok), "resource.toml").unwrap();
            assert_eq!(c.partners[0].password_reset_url.as_deref(), Some(ok));
        }
        // Unset: the partner entry names no page (its discovery may still advertise one).
        let c = Config::parse(&partner(""), "resource.toml").unwrap();
        assert_eq!(c.partners[0].password_reset_url, None);
        for bad in [
            "http://sspr.fabrikam.example/reset",
            "javascript:alert(1)",
            "/password/reset",
            "sspr.fabrikam.example",
        ] {
            let e = Config::parse(&url(bad), "resource.toml").unwrap_err();
            assert_eq!(e.problems.len(), 1, "{e}");
            assert_eq!(
                e.problems[0].to_string(),
                format!(
                    "resource.toml:24: partners[0].password_reset_url: an absolute https URL \
                     (plain http only for loopback) of the partner's password reset page, got {bad:?}"
                ),
            );
        }
        // The issuer follows the same rule.
        let e = Config::parse(
            &url("https://sspr.fabrikam.example/")
                .replace("https://127.0.0.1:9444", "http://fabrikam.example"),
            "resource.toml",
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("resource.toml:21: partners[0].issuer: an absolute https URL (plain http only for loopback)"),
            "{e}"
        );
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
                .any(|p| p.key == "server.tls.cert" && p.file == "no/such.pem"),
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
