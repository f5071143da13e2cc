//! Command-line interface: `serve`, `lab`, `certs`, `keys rotate|public`, `user ...`, `app ...`,
//! `guest ...`, `risk ...`, `mfa reset`, `demo-app`.
//! Exit codes are stable for scripts: 0 success, 1 runtime failure, 2 usage error (or a bad
//! line in an imported file, or app metadata the registry refuses), 3 invalid configuration (any
//! mistake in the config or the files it names, all reported at once before anything is
//! created), 4 not found, 5 already exists, 6 refused: by the user-risk rules (no risk to
//! dismiss, a guest's risk held by their home), or a change to an app of the config file.

use clap::{Args, Parser, Subcommand, ValueEnum};
use protocol::jwt::{SigningAlg, SigningKey};
use risk::{Actor, UserRiskEvent};
use server::admin::audits::{Activity, Area, record_cli};
use server::apps::{self, Metadata, RegistryError, Trust};
use server::config::{Config, ConfigError, FileCheck, PartnerCredential};
use server::passwords::{Passwords, check_new_password};
use server::protection::{Prepared, Protection};
use server::state::{Clock, Directory, SystemClock};
use server::user_risk::{self, Home, ImportError, UserRiskError};
use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use store::{AppSource, NewUser, Store, StoreError, UserStatus, UserType};
use tracing_subscriber::EnvFilter;

/// tenantd: a standards-strict OpenID Connect provider with B2B risk semantics.
#[derive(Debug, Parser)]
#[command(name = "tenantd", version, about)]
pub struct Cli {
    /// Log lines as text (colour only on a terminal) or as JSON objects, one per line.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "TENANTD_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// For people.
    Text,
    /// For log collectors: one JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve one tenant from its config file.
    Serve(ConfigArg),
    /// Run the lab: the tenants and the demo app on loopback with seeded users.
    Lab(crate::lab::LabArgs),
    /// Write a development CA and a localhost certificate (for labs and CI only).
    Certs {
        /// Where to write the PEM files.
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
    /// Signing key management.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The master key secrets at rest are sealed with.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// User management.
    #[command(subcommand)]
    User(UserCommand),
    /// Apps (OIDC clients): register, list, show, remove.
    #[command(subcommand)]
    App(AppCommand),
    /// Multi-factor authentication of members.
    #[command(subcommand)]
    Mfa(MfaCommand),
    /// Guests (B2B collaboration) from partner tenants.
    #[command(subcommand)]
    Guest(GuestCommand),
    /// User risk of this tenant's members: detections, imports, admin actions.
    #[command(subcommand)]
    Risk(RiskCommand),
    /// Run the demo relying party on its own.
    DemoApp(DemoArgs),
}

/// Which tenant a command works on: a config file, or a tenant of the lab run from the
/// current directory (its config as the lab runs it: the lab's database and certificates).
#[derive(Debug, Args)]
struct ConfigArg {
    /// The tenant's TOML config file.
    #[arg(long, short, env = "TENANTD_CONFIG", required_unless_present = "lab")]
    config: Option<PathBuf>,
    /// A tenant of the lab (`tenantd lab`) run from this directory, by id (e.g. contoso).
    /// Takes precedence over TENANTD_CONFIG.
    #[arg(long, value_name = "TENANT")]
    lab: Option<String>,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Add a new active signing key; the old one stays published until its tokens expire.
    Rotate {
        #[command(flatten)]
        config: ConfigArg,
        /// Which algorithm's key to rotate.
        #[arg(long, value_enum, default_value_t = AlgChoice::All)]
        alg: AlgChoice,
    },
    /// Print a public JWK set: the tenant's signing keys (what its jwks_uri serves), or with
    /// --partner the key this tenant authenticates with at that partner (private_key_jwt), to
    /// register there.
    Public {
        #[command(flatten)]
        config: ConfigArg,
        /// The partner whose private_key_jwt key to print.
        #[arg(long, value_name = "ID")]
        partner: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum SecretsCommand {
    /// Print a new random master key (base64 of 32 bytes) or write it to a file (mode 0600).
    NewKey {
        /// The file to write; it must not exist.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Seal every secret in the database under the current master key (`[secrets]
    /// master_key_file`), opening those sealed under a previous one
    /// (`previous_master_key_files`). A tenant also does this when it starts.
    Rotate {
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum AlgChoice {
    /// ES256 and RS256.
    All,
    /// ES256 only.
    Es256,
    /// RS256 only.
    Rs256,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Add a user. Without --password-stdin a temporary password is generated and printed, to
    /// be changed at first sign-in.
    Add {
        #[command(flatten)]
        config: ConfigArg,
        /// Email (the sign-in name).
        email: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Make the user an administrator (Graph's Global Administrator role): the admin API
        /// accepts their own tokens (with the `admin` scope).
        #[arg(long)]
        admin: bool,
    },
    /// List users.
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Disable a user (sign-in refused, sessions ended).
    Disable {
        #[command(flatten)]
        config: ConfigArg,
        /// Email.
        email: String,
    },
    /// Enable a disabled user.
    Enable {
        #[command(flatten)]
        config: ConfigArg,
        /// Email.
        email: String,
    },
    /// Set a user's password. Without --password-stdin a temporary password is generated and
    /// printed; it must be changed at the next sign-in.
    SetPassword {
        #[command(flatten)]
        config: ConfigArg,
        /// Email.
        email: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Require a change at the next sign-in even for a given password.
        #[arg(long)]
        temporary: bool,
    },
}

#[derive(Debug, Subcommand)]
enum AppCommand {
    /// Register an app, by the same rules as the admin API and dynamic registration (RFC 7591
    /// metadata). A confidential app gets a client secret, printed this once.
    Add {
        #[command(flatten)]
        config: ConfigArg,
        /// Display name, shown on the consent page.
        name: String,
        /// An exact redirect URI (repeat for more): https, loopback http, or a reverse-domain
        /// scheme for a public (native) app. Needed for the authorization_code grant.
        #[arg(long = "redirect-uri", value_name = "URI")]
        redirect_uris: Vec<String>,
        /// A public client: no secret, PKCE required (token_endpoint_auth_method none).
        #[arg(long)]
        public: bool,
        /// A grant the app may use (repeat for more); default authorization_code.
        #[arg(long = "grant", value_name = "GRANT", value_parser = ["authorization_code", "refresh_token", "client_credentials"])]
        grants: Vec<String>,
        /// A scope beyond openid, profile, email and offline_access the app may ask for (repeat
        /// for more; `admin` for the admin API with client_credentials).
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// Skip the consent page.
        #[arg(long)]
        first_party: bool,
        /// The client id; default a generated UUID.
        #[arg(long, value_name = "ID")]
        client_id: Option<String>,
    },
    /// List every app: the config file's (read-only here) and the registered ones.
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print an app's registration as JSON (RFC 7591 metadata; secrets by hint only).
    Show {
        #[command(flatten)]
        config: ConfigArg,
        /// Client id.
        client_id: String,
    },
    /// Delete a registered app: its codes stop working and its grants, refresh and access
    /// tokens are revoked. An app of the config file is removed from the file instead.
    Remove {
        #[command(flatten)]
        config: ConfigArg,
        /// Client id.
        client_id: String,
    },
}

#[derive(Debug, Subcommand)]
enum MfaCommand {
    /// Remove a user's authenticator app and recovery codes (a lost phone): they set up a new
    /// app at their next sign-in that requires MFA.
    Reset {
        #[command(flatten)]
        config: ConfigArg,
        /// Email.
        email: String,
    },
}

#[derive(Debug, Subcommand)]
enum GuestCommand {
    /// Invite a user of a partner tenant. Their first sign-in through that partner redeems the
    /// invitation and binds the guest to their home account.
    Invite {
        #[command(flatten)]
        config: ConfigArg,
        /// The guest's email (their sign-in name at home).
        email: String,
        /// The partner id (`[[partners]] id`) the guest comes from.
        #[arg(long)]
        partner: String,
        /// Display name until the home tenant supplies one.
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum RiskCommand {
    /// Import leaked-credential files: SHA-1 range files (`SUFFIX:COUNT`, named after their
    /// 5-hex-digit prefix), full SHA-1 lists (`HASH[:COUNT]`) or `email:password` pair lists.
    /// Every file is checked first: one bad line and nothing is imported. Members whose current
    /// password is in the import get a leakedCredentials detection.
    ImportLeaked {
        #[command(flatten)]
        config: ConfigArg,
        /// The files.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Import threat intelligence: one user id or email per line (`#` comments). Each named
    /// member gets an investigationsThreatIntelligence detection; an unknown user is an error
    /// and nothing is imported.
    ImportThreatIntel {
        #[command(flatten)]
        config: ConfigArg,
        /// The file.
        path: PathBuf,
    },
    /// Confirm a member compromised (user risk high, state confirmedCompromised).
    ConfirmCompromised {
        #[command(flatten)]
        config: ConfigArg,
        /// The member's email.
        email: String,
    },
    /// Confirm a member's risky activity was their own (user risk none, state confirmedSafe;
    /// the password is left alone).
    ConfirmSafe {
        #[command(flatten)]
        config: ConfigArg,
        /// The member's email.
        email: String,
    },
    /// Dismiss a member's user risk (the password is left alone).
    Dismiss {
        #[command(flatten)]
        config: ConfigArg,
        /// The member's email.
        email: String,
    },
    /// Show a user's risk: status, detections and history.
    Show {
        #[command(flatten)]
        config: ConfigArg,
        /// The user's email.
        email: String,
    },
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// The provider's issuer URL.
    #[arg(long)]
    issuer: url::Url,
    /// Client id registered at the provider.
    #[arg(long, default_value = "demo-app")]
    client_id: String,
    /// Client secret (or TENANTD_DEMO_SECRET).
    #[arg(long, env = "TENANTD_DEMO_SECRET")]
    client_secret: Option<String>,
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:9445")]
    listen: std::net::SocketAddr,
    /// CA file to trust for the provider's TLS.
    #[arg(long)]
    ca: Option<PathBuf>,
}

/// A failure with its exit code.
#[derive(Debug)]
pub struct Failure {
    /// The process exit code.
    pub code: u8,
    /// What went wrong, for stderr.
    pub message: String,
}

impl Failure {
    fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<anyhow::Error> for Failure {
    /// A [`ConfigError`] anywhere in the chain is an invalid configuration (exit code 3),
    /// printed as it is (it names every problem); anything else is a runtime failure.
    fn from(e: anyhow::Error) -> Self {
        match e.chain().find_map(|c| c.downcast_ref::<ConfigError>()) {
            Some(config) => Self::new(3, config.to_string()),
            None => Self::new(1, format!("{e:#}")),
        }
    }
}

impl From<server::vault::VaultError> for Failure {
    fn from(e: server::vault::VaultError) -> Self {
        match e {
            server::vault::VaultError::Store(e) => e.into(),
            other => Self::new(1, other.to_string()),
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::new(4, "not found"),
            StoreError::Conflict(what) => Self::new(5, format!("already exists: {what}")),
            other => Self::new(1, other.to_string()),
        }
    }
}

/// Run the CLI; returns the process exit code.
pub async fn run(cli: Cli) -> ExitCode {
    match execute(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", f.message.trim_end());
            ExitCode::from(f.code)
        }
    }
}

/// Run a parsed command line, returning the failure (and its exit code) if any.
pub async fn execute(cli: Cli) -> Result<(), Failure> {
    dispatch(cli.command).await
}

/// The config and every file it names, checked: any mistake is exit code 3, before anything
/// is created or changed.
fn load(arg: &ConfigArg) -> Result<Config, Failure> {
    load_checked(arg).map(|(config, _)| config)
}

fn load_checked(arg: &ConfigArg) -> Result<(Config, Prepared), Failure> {
    match (&arg.lab, &arg.config) {
        // clap would count TENANTD_CONFIG as a conflicting --config: only an explicit one is.
        (Some(_), Some(path))
            if std::env::var_os("TENANTD_CONFIG")
                .map(PathBuf::from)
                .as_ref()
                != Some(path) =>
        {
            Err(Failure::new(
                2,
                "give --config FILE or --lab TENANT, not both",
            ))
        }
        (Some(tenant), _) => crate::lab::tenant(tenant).map_err(|e| {
            use crate::lab::LabTenantError as E;
            let code = match e {
                E::Config(_) => 3,
                E::NoLab(_) | E::UnknownTenant { .. } | E::NoData { .. } => 4,
            };
            Failure::new(code, e.to_string())
        }),
        (None, Some(path)) => {
            Config::load_checked(path, FileCheck::All).map_err(|e| Failure::new(3, e.to_string()))
        }
        // clap requires one of them.
        (None, None) => Err(Failure::new(2, "give --config FILE or --lab TENANT")),
    }
}

async fn open(arg: &ConfigArg) -> Result<(Config, Store), Failure> {
    let config = load(arg)?;
    let store = server::vault::open_store(&config).await?;
    Ok((config, store))
}

async fn dispatch(command: Command) -> Result<(), Failure> {
    match command {
        Command::Serve(arg) => {
            let (config, prepared) = load_checked(&arg)?;
            Ok(server::server::serve(config, prepared).await?)
        }
        Command::Lab(args) => Ok(crate::lab::run(args).await?),
        Command::Certs { dir, force } => {
            let (files, written) = crate::certs::ensure(&dir, force)?;
            if written {
                println!(
                    "wrote {}, {}, {}, {}",
                    files.ca.display(),
                    files.ca_key.display(),
                    files.cert.display(),
                    files.key.display()
                );
            } else {
                println!(
                    "certificates already exist in {} (use --force to replace them)",
                    dir.display()
                );
            }
            Ok(())
        }
        Command::Keys(KeysCommand::Rotate { config, alg }) => {
            let (_, store) = open(&config).await?;
            let now = SystemClock.now();
            server::keys::ensure_keys(&store, now)
                .await
                .map_err(|e| Failure::new(1, e.to_string()))?;
            let algs = match alg {
                AlgChoice::All => vec![SigningAlg::ES256, SigningAlg::RS256],
                AlgChoice::Es256 => vec![SigningAlg::ES256],
                AlgChoice::Rs256 => vec![SigningAlg::RS256],
            };
            for a in algs {
                let kid = server::keys::rotate(&store, a, now)
                    .await
                    .map_err(|e| Failure::new(1, e.to_string()))?;
                println!("{} key rotated: new kid {kid}", a.as_str());
            }
            println!(
                "running tenants publish the new keys within 30 seconds and sign with them after 60 (so every replica publishes a key before any signs with it); old keys stay published until their tokens expire"
            );
            Ok(())
        }
        Command::Secrets(SecretsCommand::NewKey { out }) => {
            match out {
                None => println!("{}", server::vault::MasterKey::generate()),
                Some(path) => {
                    server::vault::create_key_file(&path)
                        .map_err(|e| Failure::new(1, format!("{}: {e}", path.display())))?;
                    println!("wrote a new master key to {}", path.display());
                }
            }
            Ok(())
        }
        Command::Secrets(SecretsCommand::Rotate { config }) => {
            let config = load(&config)?;
            let vault = server::vault::for_config(&config)?;
            let store = Store::connect(&config.database_url, vault.clone()).await?;
            let resealed = store.reseal_secrets().await?;
            store.close().await;
            for (table, n) in resealed {
                println!("{table}: {n} resealed");
            }
            println!(
                "every secret is sealed under master key {}; a previous key can be removed from the config once every replica runs with this one",
                vault.current_id()
            );
            Ok(())
        }
        Command::Keys(KeysCommand::Public { config, partner }) => {
            let jwks = match partner {
                Some(id) => partner_jwks(&load(&config)?, &id)?,
                None => {
                    let (cfg, store) = open(&config).await?;
                    let grace = cfg.tokens.id_token.max(cfg.tokens.access_token);
                    let keys = server::keys::load(&store, grace, SystemClock.now())
                        .await
                        .map_err(|e| Failure::new(1, e.to_string()))?
                        .jwks(SystemClock.now());
                    if keys.keys.is_empty() {
                        return Err(Failure::new(
                            4,
                            "no signing keys yet: the tenant creates them when it first starts",
                        ));
                    }
                    serde_json::to_value(keys).map_err(|e| Failure::new(1, e.to_string()))?
                }
            };
            let json =
                serde_json::to_string_pretty(&jwks).map_err(|e| Failure::new(1, e.to_string()))?;
            println!("{json}");
            Ok(())
        }
        Command::User(cmd) => user(cmd).await,
        Command::App(cmd) => app(cmd).await,
        Command::Mfa(MfaCommand::Reset { config, email }) => {
            let (cfg, store) = open(&config).await?;
            let user = find(&store, &email).await?;
            members_only(&cfg, &user, "MFA")?;
            let reset = store.delete_mfa(&user.id).await?;
            println!(
                "MFA reset for {}: {} authenticator(s), {} address(es) for emailed codes and {} recovery code(s) removed",
                user.email, reset.methods, reset.email_methods, reset.recovery_codes
            );
            Ok(())
        }
        Command::Guest(GuestCommand::Invite {
            config,
            email,
            partner,
            name,
        }) => {
            let (cfg, store) = open(&config).await?;
            let now = SystemClock.now();
            let (user, invitation) =
                server::guests::invite(&store, &cfg, &email, &partner, name.as_deref(), None, now)
                    .await
                    .map_err(|e| match e {
                        server::guests::InviteError::Exists(_) => Failure::new(5, e.to_string()),
                        server::guests::InviteError::UnknownPartner(_) => {
                            Failure::new(4, e.to_string())
                        }
                        server::guests::InviteError::Store(s) => s.into(),
                        _ => Failure::new(2, e.to_string()),
                    })?;
            println!(
                "invited {} from partner {} (guest id {}, invitation {})",
                user.email, partner, user.id, invitation.id
            );
            Ok(())
        }
        Command::Risk(cmd) => risk_command(cmd).await,
        Command::DemoApp(a) => {
            let cfg = demo::DemoConfig {
                listen: a.listen,
                issuer: a.issuer,
                client_id: a.client_id,
                client_secret: a.client_secret,
                redirect_uri: url::Url::parse(&format!("http://{}/callback", a.listen))
                    .map_err(|e| Failure::new(2, e.to_string()))?,
                ca_file: a.ca,
                scopes: vec!["openid".into(), "profile".into(), "email".into()],
                title: "tenantd demo app".into(),
            };
            println!("demo app on http://{}", a.listen);
            demo::serve(cfg, server::server::shutdown_signal())
                .await
                .map_err(|e| Failure::new(1, e.to_string()))
        }
    }
}

impl From<RegistryError> for Failure {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Metadata(m) => Self::new(2, format!("not accepted: {m}")),
            RegistryError::Exists(_) => Self::new(5, e.to_string()),
            RegistryError::NotFound(_) | RegistryError::NoSuchSecret(..) => {
                Self::new(4, e.to_string())
            }
            RegistryError::ReadOnly(_) => {
                Self::new(6, format!("{e}: change it in the config file and restart"))
            }
            RegistryError::Changed(_) => Self::new(1, e.to_string()),
            RegistryError::Store(s) => s.into(),
        }
    }
}

/// The tenant's directory for the app registry: the config file's apps and the store. No
/// signing keys or partners: the registry needs neither.
async fn directory(arg: &ConfigArg) -> Result<Directory, Failure> {
    let (config, prepared) = load_checked(arg)?;
    let store = server::vault::open_store(&config).await?;
    let passwords = hasher(&config)?;
    let protection = Protection::with_files(config.risk.clone(), prepared, &store)
        .await
        .map_err(|e| Failure::new(1, e.to_string()))?;
    let grace = config.tokens.id_token.max(config.tokens.access_token);
    Ok(Directory::new(
        config,
        store,
        Arc::new(SystemClock),
        passwords,
        protocol::jwt::KeySet::new(Vec::new(), grace),
        Vec::new(),
        protection,
    ))
}

async fn app(cmd: AppCommand) -> Result<(), Failure> {
    match cmd {
        AppCommand::Add {
            config,
            name,
            redirect_uris,
            public,
            grants,
            scopes,
            first_party,
            client_id,
        } => {
            let dir = directory(&config).await?;
            let meta = Metadata {
                client_name: Some(name),
                redirect_uris,
                grant_types: (!grants.is_empty()).then_some(grants),
                token_endpoint_auth_method: public.then(|| "none".to_owned()),
                scope: (!scopes.is_empty()).then(|| scopes.join(" ")),
                ..Metadata::default()
            };
            let trust = Trust {
                first_party,
                partner_tenant: false,
            };
            let registered =
                apps::register(&dir, client_id.as_deref(), &meta, trust, AppSource::Api).await?;
            let app = &registered.app.config;
            println!("registered {:?}", app.name);
            println!("client id:     {}", app.client_id);
            if apps::uses_secret(app) {
                let (secret, _) =
                    apps::add_secret(&dir, &app.client_id, Some("cli".to_owned()), None).await?;
                println!("client secret: {secret}");
                println!("(the secret is shown only this once: it is stored as a digest)");
            }
            Ok(())
        }
        AppCommand::List { config, json } => {
            let dir = directory(&config).await?;
            for a in apps::list(&dir).await? {
                let c = &a.config;
                if json {
                    println!(
                        "{}",
                        serde_json::json!({"client_id": c.client_id, "client_name": c.name, "source": a.source.as_str(), "read_only": a.is_read_only()})
                    );
                } else {
                    let source = if a.is_read_only() {
                        "config (read-only)"
                    } else {
                        a.source.as_str()
                    };
                    println!("{}\t{}\t{}", c.client_id, source, c.name);
                }
            }
            Ok(())
        }
        AppCommand::Show { config, client_id } => {
            let dir = directory(&config).await?;
            let app = dir
                .app(&client_id)
                .await?
                .ok_or_else(|| Failure::new(4, format!("no app {client_id:?}")))?;
            let json = serde_json::to_string_pretty(&shown(&app))
                .map_err(|e| Failure::new(1, e.to_string()))?;
            println!("{json}");
            Ok(())
        }
        AppCommand::Remove { config, client_id } => {
            let dir = directory(&config).await?;
            apps::delete(&dir, &client_id).await?;
            println!("removed app {client_id} (its grants, refresh and access tokens are revoked)");
            Ok(())
        }
    }
}

/// An app as `app show` prints it: RFC 7591 metadata, the client id, where it comes from, its
/// trust, and its secrets by key id and hint (never a digest).
fn shown(app: &apps::App) -> serde_json::Value {
    let mut v = serde_json::to_value(apps::metadata_of(&app.config)).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        let c = &app.config;
        o.insert("client_id".into(), c.client_id.clone().into());
        o.insert("source".into(), app.source.as_str().into());
        o.insert("read_only".into(), app.is_read_only().into());
        if app.created_at > 0 {
            o.insert("client_id_issued_at".into(), app.created_at.into());
        }
        o.insert("first_party".into(), c.first_party.into());
        o.insert("partner_tenant".into(), c.partner_tenant.into());
        o.insert(
            "client_secrets".into(),
            app.secrets
                .iter()
                .map(|s| {
                    serde_json::json!({"key_id": s.key_id, "display_name": s.display_name, "hint": s.hint, "start": s.start, "end": s.end})
                })
                .collect(),
        );
    }
    v
}

impl From<UserRiskError> for Failure {
    fn from(e: UserRiskError) -> Self {
        match e {
            UserRiskError::UnknownUser(_) => Self::new(4, e.to_string()),
            UserRiskError::Refused(_) | UserRiskError::NotAnAction(_) => {
                Self::new(6, e.to_string())
            }
            UserRiskError::Store(s) => s.into(),
            UserRiskError::Busy(_) => Self::new(1, e.to_string()),
        }
    }
}

impl From<ImportError> for Failure {
    fn from(e: ImportError) -> Self {
        match e {
            ImportError::Line { .. } => Self::new(2, e.to_string()),
            ImportError::Risk(r) => r.into(),
            ImportError::Store(s) => s.into(),
        }
    }
}

fn read_file(path: &std::path::Path) -> Result<String, Failure> {
    std::fs::read_to_string(path)
        .map_err(|e| Failure::new(2, format!("{}: cannot read: {e}", path.display())))
}

async fn risk_command(cmd: RiskCommand) -> Result<(), Failure> {
    match cmd {
        RiskCommand::ImportLeaked { config, paths } => {
            let (cfg, store) = open(&config).await?;
            // Every file is read and checked before anything is written.
            let mut files = Vec::new();
            for path in &paths {
                let text = read_file(path)?;
                files.push(user_risk::parse_leaked(&path.display().to_string(), &text)?);
            }
            let passwords = hasher(&cfg)?;
            let home = Home::new(&store, &passwords, &SystemClock, &cfg);
            let report = home.import_leaked_files(&files).await?;
            println!(
                "imported {} entr{} from {} file(s) ({} new); {} user(s) flagged with leakedCredentials{}",
                report.entries,
                if report.entries == 1 { "y" } else { "ies" },
                files.len(),
                report.new,
                report.users_flagged,
                if report.already_flagged > 0 {
                    format!(" ({} already flagged)", report.already_flagged)
                } else {
                    String::new()
                }
            );
            Ok(())
        }
        RiskCommand::ImportThreatIntel { config, path } => {
            let (cfg, store) = open(&config).await?;
            let text = read_file(&path)?;
            let passwords = hasher(&cfg)?;
            let home = Home::new(&store, &passwords, &SystemClock, &cfg);
            let report = home
                .import_threat_intel(&path.display().to_string(), &text)
                .await?;
            println!(
                "{} user(s) flagged with investigationsThreatIntelligence ({} already flagged)",
                report.users_flagged, report.already_flagged
            );
            Ok(())
        }
        RiskCommand::ConfirmCompromised { config, email } => {
            admin_action(&config, &email, UserRiskEvent::AdminConfirmedCompromised).await
        }
        RiskCommand::Dismiss { config, email } => {
            admin_action(&config, &email, UserRiskEvent::AdminDismissed).await
        }
        RiskCommand::ConfirmSafe { config, email } => {
            admin_action(&config, &email, UserRiskEvent::AdminConfirmedSafe).await
        }
        RiskCommand::Show { config, email } => {
            let (cfg, store) = open(&config).await?;
            let user = find(&store, &email).await?;
            let passwords = hasher(&cfg)?;
            let home = Home::new(&store, &passwords, &SystemClock, &cfg);
            let status = home.current(&user.id).await?;
            let updated = store.user_risk(&user.id).await?.map(|r| r.updated_at);
            println!(
                "user {} ({}, {})",
                user.email,
                user.id,
                user.user_type.as_str()
            );
            println!(
                "risk: level {}, state {}, detail {}{}",
                status.risk_level,
                status.risk_state,
                status.risk_detail,
                updated
                    .map(|t| format!(", updated {}", user_risk::iso(t)))
                    .unwrap_or_default()
            );
            let detections = store
                .list_detections(&store::DetectionFilter {
                    user_id: Some(user.id.clone()),
                    limit: 1000,
                    offset: 0,
                })
                .await?;
            println!("detections ({}):", detections.len());
            for d in detections {
                println!(
                    "  {}  {} {} {} {} source {}{}: {}",
                    user_risk::iso(d.detected_at),
                    d.risk_event_type,
                    d.risk_level,
                    d.detection_timing_type,
                    d.state,
                    d.source,
                    d.ip_address
                        .map(|ip| format!(" ip {ip}"))
                        .unwrap_or_default(),
                    d.explanation
                );
            }
            let history = store.risk_history(&user.id).await?;
            println!("history ({}):", history.len());
            for h in history {
                println!(
                    "  {}  {} {} {} by {}: {}",
                    user_risk::iso(h.created_at),
                    h.state,
                    h.level,
                    h.detail,
                    h.actor,
                    h.reason.unwrap_or_default()
                );
            }
            Ok(())
        }
    }
}

/// The CLI's operator, as written in the risk history (the audit log names the tool
/// `tenantd-cli`).
const CLI_ADMIN: &str = "cli";

async fn admin_action(
    config: &ConfigArg,
    email: &str,
    event: UserRiskEvent,
) -> Result<(), Failure> {
    let (cfg, store) = open(config).await?;
    let user = find(&store, email).await?;
    let passwords = hasher(&cfg)?;
    let home = Home::new(&store, &passwords, &SystemClock, &cfg);
    let name = match event {
        UserRiskEvent::AdminDismissed => "Dismiss user risk",
        UserRiskEvent::AdminConfirmedSafe => "Confirm user safe",
        _ => "Confirm user compromised",
    };
    let status = home
        .remediate(&user.id, event, Actor::Admin(CLI_ADMIN.to_owned()))
        .await?;
    let activity = Activity::on_user(Area::IdentityProtection, name, "Update", &user)
        .detail("riskState", status.risk_state.as_str())
        .detail("riskDetail", status.risk_detail.as_str());
    record_cli(&store, SystemClock.now(), activity).await;
    println!(
        "user risk of {} is now {} ({}, {})",
        user.email, status.risk_level, status.risk_state, status.risk_detail
    );
    Ok(())
}

fn read_stdin_password() -> Result<String, Failure> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure::new(1, e.to_string()))?;
    let pw = line.trim_end_matches(['\r', '\n']).to_owned();
    check_new_password(&pw).map_err(|m| Failure::new(2, format!("password not accepted: {m}")))?;
    Ok(pw)
}

/// A password read from stdin, held to the rules the admin API uses: the password policy, and
/// not in the leaked-credentials corpus (an admin must not hand out a known-leaked password).
async fn chosen_password(store: &Store, email: &str) -> Result<String, Failure> {
    let password = read_stdin_password()?;
    server::users::check_password(store, email, &password)
        .await
        .map_err(|e| match e {
            server::users::UserError::Store(s) => s.into(),
            other => Failure::new(2, format!("password not accepted: {other}")),
        })?;
    Ok(password)
}

async fn user(cmd: UserCommand) -> Result<(), Failure> {
    let now = SystemClock.now();
    match cmd {
        UserCommand::Add {
            config,
            email,
            name,
            password_stdin,
            admin,
        } => {
            let (cfg, store) = open(&config).await?;
            let email = email.trim().to_lowercase();
            if !email.contains('@') || email.len() > 254 {
                return Err(Failure::new(
                    2,
                    format!("{email:?} is not an email address"),
                ));
            }
            let (password, temporary) = if password_stdin {
                (chosen_password(&store, &email).await?, false)
            } else {
                (server::users::temporary_password(), true)
            };
            let passwords = hasher(&cfg)?;
            let hash = passwords
                .hash(&password)
                .await
                .map_err(|e| Failure::new(1, e.to_string()))?;
            let user = store
                .insert_user(&NewUser {
                    id: uuid::Uuid::new_v4().to_string(),
                    display_name: name
                        .unwrap_or_else(|| email.split('@').next().unwrap_or_default().to_owned()),
                    email,
                    given_name: None,
                    family_name: None,
                    password_hash: Some(hash),
                    must_change_password: temporary,
                    now,
                })
                .await?;
            Home::new(&store, &passwords, &SystemClock, &cfg)
                .after_password_set(&user.id, &password)
                .await?;
            record_cli(
                &store,
                now,
                Activity::on_user(Area::Users, "Add user", "Add", &user),
            )
            .await;
            if admin {
                store
                    .add_role_member(server::admin::roles::ADMINISTRATOR, &user.id, now)
                    .await?;
                let activity = Activity::on_user(Area::Roles, "Add member to role", "Add", &user)
                    .detail("roleName", "Global Administrator");
                record_cli(&store, now, activity).await;
            }
            println!(
                "added {}{} (id {})",
                user.email,
                if admin { " as an administrator" } else { "" },
                user.id
            );
            if temporary {
                println!("temporary password: {password}");
            }
            Ok(())
        }
        UserCommand::List { config, json } => {
            let (_, store) = open(&config).await?;
            for u in store.list_users().await? {
                let status = if u.status == UserStatus::Active {
                    "active"
                } else {
                    "disabled"
                };
                if json {
                    println!(
                        "{}",
                        serde_json::json!({"id": u.id, "email": u.email, "displayName": u.display_name, "status": status, "mustChangePassword": u.must_change_password})
                    );
                } else {
                    println!("{}\t{}\t{}\t{}", u.email, status, u.display_name, u.id);
                }
            }
            Ok(())
        }
        UserCommand::Disable { config, email } => {
            let (_, store) = open(&config).await?;
            let user = find(&store, &email).await?;
            store
                .set_user_status(&user.id, UserStatus::Disabled, now)
                .await?;
            // Sessions, refresh tokens and the access tokens of their grants end with it.
            let (ended, grants) = store.end_user_sign_ins(&user.id, now).await?;
            let activity = Activity::on_user(Area::Users, "Disable account", "Update", &user);
            record_cli(&store, now, activity).await;
            println!(
                "disabled {} ({ended} session(s) and {grants} grant(s) ended)",
                user.email
            );
            Ok(())
        }
        UserCommand::Enable { config, email } => {
            let (_, store) = open(&config).await?;
            let user = find(&store, &email).await?;
            store
                .set_user_status(&user.id, UserStatus::Active, now)
                .await?;
            let activity = Activity::on_user(Area::Users, "Enable account", "Update", &user);
            record_cli(&store, now, activity).await;
            println!("enabled {}", user.email);
            Ok(())
        }
        UserCommand::SetPassword {
            config,
            email,
            password_stdin,
            temporary,
        } => {
            let (cfg, store) = open(&config).await?;
            let user = find(&store, &email).await?;
            members_only(&cfg, &user, "the password")?;
            let (password, must_change) = if password_stdin {
                (chosen_password(&store, &user.email).await?, temporary)
            } else {
                (server::users::temporary_password(), true)
            };
            let passwords = hasher(&cfg)?;
            let hash = passwords
                .hash(&password)
                .await
                .map_err(|e| Failure::new(1, e.to_string()))?;
            store
                .set_password(&user.id, &hash, must_change, now)
                .await?;
            // An admin's password reset: whoever holds the old password's sessions and refresh
            // tokens must sign in again.
            let (ended, grants) = store.end_user_sign_ins(&user.id, now).await?;
            let activity = Activity::on_user(Area::Users, "Reset user password", "Update", &user)
                .detail("forceChangePasswordNextSignIn", must_change.to_string());
            record_cli(&store, now, activity).await;
            let home = Home::new(&store, &passwords, &SystemClock, &cfg);
            home.after_password_set(&user.id, &password).await?;
            // A temporary password an admin set, to be changed at next sign-in, remediates
            // the member's user risk (the seed's "Reset the user's password").
            if must_change && user.user_type == UserType::Member {
                let before = home.current(&user.id).await?;
                let after = home
                    .remediate(
                        &user.id,
                        UserRiskEvent::AdminGeneratedTemporaryPassword,
                        Actor::Admin(CLI_ADMIN.to_owned()),
                    )
                    .await?;
                if after != before {
                    println!(
                        "user risk of {} remediated ({})",
                        user.email, after.risk_detail
                    );
                }
            }
            println!(
                "password set for {}{} ({ended} session(s) and {grants} grant(s) ended)",
                user.email,
                if must_change {
                    " (must be changed at next sign-in)"
                } else {
                    ""
                }
            );
            if !password_stdin {
                println!("temporary password: {password}");
            }
            Ok(())
        }
    }
}

/// A guest's credentials and MFA live at their home tenant (the seed: their risk can only be
/// remediated there), so this tenant refuses to set them, naming the home.
/// The public half of the key this tenant signs its `private_key_jwt` client assertions with at
/// partner `id`; its `kid` is the RFC 7638 thumbprint, the one the assertions carry.
fn partner_jwks(cfg: &Config, id: &str) -> Result<serde_json::Value, Failure> {
    let partner = cfg
        .partners
        .iter()
        .find(|p| p.id == id)
        .ok_or_else(|| Failure::new(4, format!("no partner {id:?} in this tenant's config")))?;
    let PartnerCredential::PrivateKey { pem, path } = &partner.credential else {
        return Err(Failure::new(
            2,
            format!("partner {id:?} authenticates with a client secret (no private_key_file)"),
        ));
    };
    [SigningAlg::ES256, SigningAlg::RS256]
        .into_iter()
        .find_map(|alg| SigningKey::from_pkcs8_pem(alg, pem, 0, None).ok())
        .map(|key| serde_json::json!({ "keys": [key.public_jwk()] }))
        .ok_or_else(|| {
            Failure::new(
                3,
                format!("{}: not an ES256 or RS256 PKCS#8 key", path.display()),
            )
        })
}

fn members_only(cfg: &Config, user: &store::User, what: &str) -> Result<(), Failure> {
    if user.user_type != UserType::Guest {
        return Ok(());
    }
    let partner = user.partner_id.clone().unwrap_or_default();
    let home = cfg
        .partners
        .iter()
        .find(|p| p.id == partner)
        .map_or(partner, |p| p.display_name.clone());
    Err(Failure::new(
        6,
        format!(
            "{} is a guest from {home}: {what} of this account is managed at {home}, not here",
            user.email
        ),
    ))
}

fn hasher(cfg: &Config) -> Result<Passwords, Failure> {
    Passwords::new(&cfg.passwords).map_err(|e| Failure::new(1, e.to_string()))
}

async fn find(store: &Store, email: &str) -> Result<store::User, Failure> {
    store
        .user_by_email(email.trim())
        .await?
        .ok_or_else(|| Failure::new(4, format!("no user with email {email}")))
}

/// The `tenantd` process: parse the command line, set up logging (`TENANTD_LOG`, and
/// `--log-format json` or `TENANTD_LOG_FORMAT=json`), run the command on a multi-threaded
/// runtime.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter =
        EnvFilter::try_from_env("TENANTD_LOG").unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let json = cli.log_format == LogFormat::Json;
    // Requests hand their log lines to a writer thread instead of writing to stdout themselves
    // (a slow terminal or pipe must not stall a sign-in). Not lossy: only with 8k lines queued
    // does a request wait (the queue is allocated whole: the default 128k would be 4 MiB).
    // `_log_writer` flushes what is queued when `main` returns.
    let (writer, _log_writer) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(8 * 1024)
        .lossy(false)
        .thread_name("tenantd-log")
        .finish(std::io::stdout());
    if json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(writer)
            .init();
    } else {
        // Colour codes only for a terminal: piped or captured output stays plain text.
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_target(false)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .with_writer(writer)
            .init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(run(cli))
}
