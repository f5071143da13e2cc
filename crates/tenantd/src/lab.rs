//! `tenantd lab`: the tenants and the demo app on loopback, SQLite under a lab data dir, dev TLS
//! certificates generated if missing, seeded users, and the URLs to click printed.
//!
//! The lab is described by a lab file naming each tenant's config. Run from the repository it
//! reads `config/lab.toml` and the files it names, so an edit there is what runs. Elsewhere
//! (an installed binary), the shipped `config/` tree is compiled in and written once to
//! `lab-config/`, then read from there like any other files. The lab runs each tenant config
//! with three changes ([`as_lab_tenant`]): its database under the lab data dir, the lab's dev
//! certificates, and its partners (the other lab tenants) trusted through the dev CA. The CLI's
//! `--lab TENANT` applies the same changes, so it reaches the data the lab runs on.

use crate::certs::{self, DevCerts};
use anyhow::Context;
use clap::Args;
use serde::Deserialize;
use server::Tenant;
use server::config::{Config, ConfigError, FileCheck, Problem};
use server::protection::Prepared;
use server::state::{Clock, SystemClock};
use server::user_risk::{ImportError, LeakedFile};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The lab file in a checkout of the repository.
const REPOSITORY_LAB: &str = "config/lab.toml";
/// Where the compiled-in lab is written when there is no checkout.
const WRITTEN_LAB_DIR: &str = "lab-config";

/// The shipped `config/` tree, relative paths and contents. A unit test keeps it equal to the
/// directory, so the fallback is exactly what the repository ships.
const BUILT_IN: &[(&str, &str)] = &[
    ("lab.toml", include_str!("../../../config/lab.toml")),
    ("home.toml", include_str!("../../../config/home.toml")),
    (
        "resource.toml",
        include_str!("../../../config/resource.toml"),
    ),
    (
        "intel/anonymous-ips.txt",
        include_str!("../../../config/intel/anonymous-ips.txt"),
    ),
    (
        "intel/asn.csv",
        include_str!("../../../config/intel/asn.csv"),
    ),
    (
        "intel/geo-city.csv",
        include_str!("../../../config/intel/geo-city.csv"),
    ),
    (
        "intel/leaked-credentials.txt",
        include_str!("../../../config/intel/leaked-credentials.txt"),
    ),
    (
        "intel/malicious-ips.txt",
        include_str!("../../../config/intel/malicious-ips.txt"),
    ),
    (
        "intel/named-locations.toml",
        include_str!("../../../config/intel/named-locations.toml"),
    ),
    (
        "policies/README.md",
        include_str!("../../../config/policies/README.md"),
    ),
    (
        "policies/contoso/identity-protection.toml",
        include_str!("../../../config/policies/contoso/identity-protection.toml"),
    ),
    (
        "policies/fabrikam/10-block-high-sign-in-risk.json",
        include_str!("../../../config/policies/fabrikam/10-block-high-sign-in-risk.json"),
    ),
    (
        "policies/fabrikam/20-guests-mfa-report-only.toml",
        include_str!("../../../config/policies/fabrikam/20-guests-mfa-report-only.toml"),
    ),
    (
        "policies/fabrikam/identity-protection.toml",
        include_str!("../../../config/policies/fabrikam/identity-protection.toml"),
    ),
];

/// Options of `tenantd lab`.
#[derive(Debug, Args)]
pub struct LabArgs {
    /// Lab file (default: config/lab.toml when run from the repository, else the built-in lab
    /// written to lab-config/).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Delete the lab's data first and start from freshly seeded data.
    #[arg(long)]
    reset: bool,
    /// Run only these parts of the lab: tenant ids, or `demo-app` (repeatable; default: all).
    /// One container per part in a compose lab; the others are reached at their issuers.
    #[arg(long = "only", value_name = "PART")]
    only: Vec<String>,
    /// The database of the one tenant this process runs (with `--only TENANT`), instead of the
    /// lab's SQLite file: e.g. `postgres://user@host/db`.
    #[arg(long, env = "TENANTD_DATABASE_URL", value_name = "URL")]
    database_url: Option<String>,
}

/// What `--only` names that runs the demo app.
const DEMO_APP: &str = "demo-app";

/// The lab file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabFile {
    /// Where the tenants' SQLite files go.
    pub data_dir: PathBuf,
    /// Where the dev certificates are (generated if missing).
    pub certs_dir: PathBuf,
    /// The tenants.
    pub tenants: Vec<LabTenant>,
    /// The demo app.
    pub demo_app: LabDemo,
}

/// One tenant of the lab.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabTenant {
    /// Its config file, relative to the lab file.
    pub config: PathBuf,
    /// A short word for the printed summary ("home", "resource").
    pub role: String,
    /// Users created when missing.
    #[serde(default)]
    pub users: Vec<LabUser>,
    /// Guests invited when missing.
    #[serde(default)]
    pub guests: Vec<LabGuest>,
    /// Groups created when missing (members added when missing).
    #[serde(default)]
    pub groups: Vec<LabGroup>,
    /// Leaked-credential files (relative to the lab file) imported after the users are seeded,
    /// so user risk comes from real detections. Importing again on restart changes nothing.
    #[serde(default)]
    pub leaked_credentials: Vec<PathBuf>,
}

/// A seeded group.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabGroup {
    /// Its id: what policies name in `includeGroups` / `excludeGroups`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Members: emails of the tenant's seeded users or guests.
    #[serde(default)]
    pub members: Vec<String>,
}

/// A seeded guest invitation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabGuest {
    /// The guest's home email.
    pub email: String,
    /// The partner they come from.
    pub partner: String,
}

/// A seeded user.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabUser {
    /// Email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Password (lab only!).
    pub password: String,
    /// An authenticator-app key (RFC 4648 base32, at least 80 bits) registered for the user, so
    /// the lab can walk what needs one (a self-service password reset). Printed at start.
    #[serde(default)]
    pub totp_secret: Option<String>,
    /// Codes by email to the user's sign-in address (the lab's mail goes to the development
    /// outbox, `/dev/outbox`).
    #[serde(default)]
    pub email_otp: bool,
    /// An administrator of the tenant (the admin API accepts their own tokens).
    #[serde(default)]
    pub admin: bool,
}

/// The demo app's registration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabDemo {
    /// Listen address.
    pub listen: std::net::SocketAddr,
    /// Tenant id it signs in with.
    pub tenant: String,
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: String,
}

/// A lab tenant, checked and ready to start.
struct Ready {
    config: Config,
    prepared: Prepared,
    /// Its leaked-credential files, read and parsed.
    leaked: Vec<LeakedFile>,
}

/// Why `--lab TENANT` cannot reach a lab tenant.
#[derive(Debug, thiserror::Error)]
pub enum LabTenantError {
    /// No lab file here.
    #[error(
        "no lab here: neither {REPOSITORY_LAB} nor {WRITTEN_LAB_DIR}/lab.toml exists in {0}; run `tenantd lab` from this directory first"
    )]
    NoLab(String),
    /// The lab file or a tenant config is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// No lab tenant with that id.
    #[error("the lab in {lab} has no tenant {tenant:?} (its tenants: {known})")]
    UnknownTenant {
        /// The lab file.
        lab: String,
        /// The id asked for.
        tenant: String,
        /// The ids it has.
        known: String,
    },
    /// The lab never ran here, so the tenant has no database.
    #[error("lab tenant {tenant:?} has no data yet ({db} is missing); run `tenantd lab` first")]
    NoData {
        /// The tenant.
        tenant: String,
        /// Its database file.
        db: String,
    },
}

/// The lab file to use, relative to `cwd`: the one given, the repository's, or a previously
/// written built-in lab. `None` when there is none of them.
fn find_lab_file(cwd: &Path, given: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = given {
        return Some(p.to_path_buf());
    }
    [
        PathBuf::from(REPOSITORY_LAB),
        Path::new(WRITTEN_LAB_DIR).join("lab.toml"),
    ]
    .into_iter()
    .find(|p| cwd.join(p).is_file())
}

/// Writes the built-in lab tree under `dir` (files that exist are kept: they may be edits).
fn write_built_in(dir: &Path) -> anyhow::Result<()> {
    for (name, text) in BUILT_IN {
        let path = dir.join(name);
        if path.exists() {
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// How the lab runs a tenant config: the database under the lab data dir, the lab's dev
/// certificates, partners (the lab's other tenants) trusted through the dev CA, and mail kept
/// in the development outbox (a lab never sends mail).
fn as_lab_tenant(config: &mut Config, lab: &LabFile, dev: &DevCerts) {
    config.mail = server::config::MailSettings::Outbox;
    let db = lab.data_dir.join(format!("{}.db", config.tenant_id));
    config.database_url = format!("sqlite://{}", db.display());
    if let Some(tls) = &mut config.tls {
        tls.cert = dev.cert.clone();
        tls.key = dev.key.clone();
    }
    for p in &mut config.partners {
        if p.ca_file.is_some() {
            p.ca_file = Some(dev.ca.clone());
        }
    }
    for a in &mut config.apps {
        if a.push_ca_file.is_some() {
            a.push_ca_file = Some(dev.ca.clone());
        }
    }
}

/// A lab tenant's config as the lab runs it, for the CLI's `--lab TENANT`: found from the
/// current directory like `tenantd lab` finds its lab, checked the same way, and refused when
/// the lab has not run here (the CLI must not create a lab database of its own).
pub fn tenant(tenant: &str) -> Result<(Config, Prepared), LabTenantError> {
    let cwd = std::env::current_dir().unwrap_or_default();
    let path = find_lab_file(&cwd, None)
        .ok_or_else(|| LabTenantError::NoLab(cwd.display().to_string()))?;
    let (lab, ready) = check(&path)?;
    let known: Vec<String> = ready.iter().map(|r| r.config.tenant_id.clone()).collect();
    let Some(Ready {
        mut config,
        prepared,
        ..
    }) = ready.into_iter().find(|r| r.config.tenant_id == tenant)
    else {
        return Err(LabTenantError::UnknownTenant {
            lab: path.display().to_string(),
            tenant: tenant.to_owned(),
            known: known.join(", "),
        });
    };
    as_lab_tenant(&mut config, &lab, &DevCerts::in_dir(&lab.certs_dir));
    let db = lab.data_dir.join(format!("{tenant}.db"));
    if !db.is_file() {
        return Err(LabTenantError::NoData {
            tenant: tenant.to_owned(),
            db: db.display().to_string(),
        });
    }
    Ok((config, prepared))
}

/// A file the lab names, or the problem naming it, the lab file's `key` and what was expected.
fn read(path: &Path, key: &str, expected: &str) -> Result<String, Problem> {
    std::fs::read_to_string(path)
        .map_err(|e| Problem::new(path.display().to_string(), key, format!("{expected} ({e})")))
}

/// Reads and checks the lab file, every tenant config and every file they name, and the
/// leaked-credential files: all mistakes in one [`ConfigError`], before anything is created.
fn check(path: &Path) -> Result<(LabFile, Vec<Ready>), ConfigError> {
    let lab_name = path.display().to_string();
    let text = read(path, "(file)", "a readable TOML file").map_err(|p| ConfigError {
        file: lab_name.clone(),
        problems: vec![p],
    })?;
    let lab = parse_lab(&text, &lab_name)?;
    let lab_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut problems = Vec::new();
    let mut ready = Vec::new();
    for (i, t) in lab.tenants.iter().enumerate() {
        let path = lab_dir.join(&t.config);
        let name = path.display().to_string();
        let text = match read(
            &path,
            &format!("tenants[{i}].config"),
            "a readable tenant config file",
        ) {
            Ok(text) => text,
            Err(p) => {
                problems.push(p);
                continue;
            }
        };
        for (j, g) in t.groups.iter().enumerate() {
            for (k, m) in g.members.iter().enumerate() {
                let seeded = t.users.iter().any(|u| u.email.eq_ignore_ascii_case(m))
                    || t.guests.iter().any(|u| u.email.eq_ignore_ascii_case(m));
                if !seeded {
                    problems.push(Problem::new(
                        lab_name.clone(),
                        format!("tenants[{i}].groups[{j}].members[{k}]"),
                        "the email of one of this tenant's users or guests",
                    ));
                }
            }
        }
        for (j, u) in t.users.iter().enumerate() {
            if let Some(secret) = &u.totp_secret
                && !server::mfa::usable_secret(secret)
            {
                problems.push(Problem::new(
                    lab_name.clone(),
                    format!("tenants[{i}].users[{j}].totp_secret"),
                    "an authenticator key: RFC 4648 base32 of at least 80 bits (16 characters)",
                ));
            }
        }
        // The lab serves its tenants with its own dev certificates (made below if missing).
        let checked = Config::parse_checked(&text, &name, FileCheck::ExceptTls);
        let mut leaked = Vec::new();
        for (j, f) in t.leaked_credentials.iter().enumerate() {
            let path = lab_dir.join(f);
            let key = format!("tenants[{i}].leaked_credentials[{j}]");
            let text = match read(&path, &key, "a readable leaked-credentials file") {
                Ok(text) => text,
                Err(p) => {
                    problems.push(p);
                    continue;
                }
            };
            match server::user_risk::parse_leaked(&path.display().to_string(), &text) {
                Ok(file) => leaked.push(file),
                Err(ImportError::Line {
                    file,
                    line,
                    message,
                }) => problems.push(Problem::new(file, key, message).at(Some(line))),
                Err(e) => {
                    problems.push(Problem::new(path.display().to_string(), key, e.to_string()))
                }
            }
        }
        match checked {
            Ok((config, prepared)) => ready.push(Ready {
                config,
                prepared,
                leaked,
            }),
            Err(e) => problems.extend(e.problems),
        }
    }
    if problems.is_empty()
        && !ready
            .iter()
            .any(|r| r.config.tenant_id == lab.demo_app.tenant)
    {
        problems.push(Problem::new(
            lab_name.clone(),
            "demo_app.tenant",
            format!(
                "the id of one of the lab's tenants, got {:?}",
                lab.demo_app.tenant
            ),
        ));
    }
    if problems.is_empty() {
        Ok((lab, ready))
    } else {
        Err(ConfigError {
            file: lab_name,
            problems,
        })
    }
}

/// Run the lab until Ctrl-C. The lab file, the tenants' configs and every file they name are
/// checked first; a mistake anywhere is a [`ConfigError`] and nothing is created.
pub async fn run(args: LabArgs) -> anyhow::Result<()> {
    // Before anything answers: a SIGTERM from then on stops the lab cleanly.
    let stop = server::server::shutdown_signal();
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let path = match find_lab_file(&cwd, args.config.as_deref()) {
        Some(path) => path,
        None => {
            // Not in a checkout: the shipped files, written once so they can be edited.
            write_built_in(Path::new(WRITTEN_LAB_DIR))?;
            println!(
                "no {REPOSITORY_LAB} here: wrote the built-in lab to {WRITTEN_LAB_DIR}/ (edit it there; it is read from disk from now on)"
            );
            Path::new(WRITTEN_LAB_DIR).join("lab.toml")
        }
    };
    let shipped = args.config.is_none();
    let (lab, ready) = check(&path)?;
    let runs = |part: &str| args.only.is_empty() || args.only.iter().any(|o| o == part);
    let known: Vec<&str> = ready
        .iter()
        .map(|r| r.config.tenant_id.as_str())
        .chain([DEMO_APP])
        .collect();
    if let Some(unknown) = args.only.iter().find(|o| !known.contains(&o.as_str())) {
        anyhow::bail!("--only {unknown}: one of {}", known.join(", "));
    }
    let running_tenants = ready.iter().filter(|r| runs(&r.config.tenant_id)).count();
    if args.database_url.is_some() && running_tenants != 1 {
        anyhow::bail!(
            "--database-url (TENANTD_DATABASE_URL) is one tenant's database: run one with --only TENANT"
        );
    }
    if args.database_url.is_some() && args.reset {
        // The data dir holds that database's master key: removing it would leave the database
        // unreadable, and --reset would not empty the database anyway.
        anyhow::bail!(
            "--reset empties the lab's data dir, not a database given with --database-url (TENANTD_DATABASE_URL): drop and create that database yourself, then start without --reset"
        );
    }
    // The issuers of every tenant, also those another process runs (the demo app's tenant).
    let mut issuers: HashMap<String, String> = ready
        .iter()
        .map(|r| (r.config.tenant_id.clone(), r.config.issuer.clone()))
        .collect();
    if args.reset && lab.data_dir.exists() {
        std::fs::remove_dir_all(&lab.data_dir)
            .with_context(|| format!("removing {}", lab.data_dir.display()))?;
        println!("reset: removed {}", lab.data_dir.display());
    }
    std::fs::create_dir_all(&lab.data_dir)
        .with_context(|| format!("creating {}", lab.data_dir.display()))?;
    let (dev, created) = certs::ensure(&lab.certs_dir, false)?;
    if created {
        println!(
            "generated dev TLS certificates in {} (trust {} to avoid browser warnings)",
            lab.certs_dir.display(),
            dev.ca.display()
        );
    }

    // Every port is bound before any tenant starts: a tenant's first look at its partner (its
    // discovery, its stream of shared signals) then waits for the partner to serve, instead of
    // finding nothing there and warning that the partner is unreachable.
    let mut bound = Vec::new();
    for (t, r) in lab.tenants.iter().zip(ready) {
        let Ready {
            mut config,
            prepared,
            leaked,
        } = r;
        if !runs(&config.tenant_id) {
            continue;
        }
        as_lab_tenant(&mut config, &lab, &dev);
        if let Some(url) = &args.database_url {
            config.database_url.clone_from(url);
            // Its master key stays in the lab's data dir, apart from the database.
            if config.secrets.is_none() {
                let key = lab
                    .data_dir
                    .join(format!("{}.master.key", config.tenant_id));
                config.secrets = Some(Arc::new(server::vault::key_file(&key)?));
            }
        }
        let listener = std::net::TcpListener::bind(config.listen)
            .with_context(|| format!("binding {} for {}", config.listen, config.tenant_id))?;
        bound.push((t, config, prepared, leaked, listener));
    }
    let mut tenants: Vec<(Tenant, String)> = Vec::new();
    for (t, config, prepared, leaked, listener) in bound {
        let tenant =
            Tenant::start_prepared(config, prepared, listener, Arc::new(SystemClock)).await?;
        seed(&tenant, &t.users, &t.guests).await?;
        seed_groups(&tenant, &t.groups).await?;
        import_leaked(&tenant, &leaked).await?;
        issuers.insert(
            tenant.state.config.tenant_id.clone(),
            tenant.state.config.issuer.clone(),
        );
        tenants.push((tenant, t.role.clone()));
    }

    let issuer = issuers
        .get(&lab.demo_app.tenant)
        .with_context(|| format!("demo_app.tenant: no lab tenant {:?}", lab.demo_app.tenant))?;
    let demo_cfg = demo::DemoConfig {
        listen: lab.demo_app.listen,
        issuer: url::Url::parse(issuer)?,
        client_id: lab.demo_app.client_id.clone(),
        client_secret: Some(lab.demo_app.client_secret.clone()),
        redirect_uri: url::Url::parse(&format!("http://{}/callback", lab.demo_app.listen))?,
        ca_file: Some(dev.ca.clone()),
        scopes: vec![
            "openid".into(),
            "profile".into(),
            "email".into(),
            "offline_access".into(),
        ],
        title: "tenantd demo app".into(),
    };
    let (stop_demo, demo_stopped) = tokio::sync::oneshot::channel::<()>();
    let demo_task = runs(DEMO_APP).then(|| {
        tokio::spawn(demo::serve(demo_cfg, async move {
            let _ = demo_stopped.await;
        }))
    });

    println!();
    println!(
        "tenantd lab is running ({}, data in {}, Ctrl-C to stop)",
        path.display(),
        lab.data_dir.display()
    );
    for (t, role) in &tenants {
        let c = &t.state.config;
        println!(
            "  {:<9} {:<10} {}   discovery: {}/.well-known/openid-configuration",
            role, c.tenant_id, c.issuer, c.issuer
        );
        println!(
            "  {:<20} {}/admin   (administrators: admin@ accounts below)",
            "", c.issuer
        );
    }
    if runs(DEMO_APP) {
        println!(
            "  demo app             http://{}   <- open this and click \"Sign in\"",
            lab.demo_app.listen
        );
    }
    for (t, _) in &tenants {
        let c = &t.state.config;
        println!(
            "  dev outbox {:<9} {}{}   (mail the tenant would send: verification codes)",
            c.tenant_id,
            c.issuer,
            server::dev::OUTBOX_PATH
        );
    }
    println!();
    println!("  accounts:");
    for t in &lab.tenants {
        for u in &t.users {
            match (&u.totp_secret, u.email_otp) {
                (Some(key), _) => println!(
                    "    {:<24} {:<20} authenticator app key {key} (oathtool --totp -b {key})",
                    u.email, u.password
                ),
                (None, true) => println!(
                    "    {:<24} {:<20} codes by email (read them in the dev outbox)",
                    u.email, u.password
                ),
                (None, false) => println!("    {:<24} {}", u.email, u.password),
            }
        }
    }
    for (t, _) in &tenants {
        for app in &t.state.config.apps {
            if let Some(secret) = &app.client_secret
                && app.client_id != lab.demo_app.client_id
            {
                println!(
                    "  scripted client at {}: {} / {}  redirect {}",
                    t.state.config.tenant_id,
                    app.client_id,
                    secret,
                    app.redirect_uris.first().map(String::as_str).unwrap_or("-")
                );
            }
        }
    }
    if let Some((t, _)) = tenants
        .iter()
        .find(|(t, _)| t.state.config.registration.enabled)
    {
        let c = &t.state.config;
        let auth = if c.registration.initial_access_token.is_some() {
            " -H \"Authorization: Bearer $INITIAL_ACCESS_TOKEN\""
        } else {
            ""
        };
        println!(
            "  register an app at {} (RFC 7591): curl --cacert {}{auth} -H 'content-type: application/json' -d '{{\"client_name\":\"My app\",\"redirect_uris\":[\"http://127.0.0.1:9555/callback\"]}}' {}{}",
            c.tenant_id,
            dev.ca.display(),
            c.issuer,
            protocol::discovery::paths::REGISTER
        );
    }
    println!(
        "  TLS: dev CA {} (see certs/README.md to trust it)",
        dev.ca.display()
    );
    if shipped {
        let dir = path.parent().unwrap_or(Path::new("")).display();
        println!();
        println!("  try (README, \"Lab walk-through\"):");
        println!("    alice@contoso.test   signs in to the demo app as a guest of fabrikam");
        println!(
            "    bob@contoso.test     is blocked at fabrikam: his password is in contoso's leaked-credentials list (53011)"
        );
        println!(
            "    alice with X-Forwarded-For: 198.51.100.7 (an anonymous IP) is asked for MFA at fabrikam (53004: no enrolment while risky)"
        );
        println!(
            "    policies: {dir}/policies/, intel: {dir}/intel/ (read from disk: edit and restart)"
        );
    }
    println!();

    stop.await;
    println!("stopping the lab");
    let _ = stop_demo.send(());
    if let Some(task) = demo_task {
        let _ = task.await;
    }
    for (t, _) in tenants {
        t.shutdown().await;
    }
    Ok(())
}

/// Imports the tenant's leaked-credential files (read and parsed by the lab's check).
async fn import_leaked(tenant: &Tenant, files: &[LeakedFile]) -> anyhow::Result<()> {
    let state = &tenant.state;
    let home = server::user_risk::Home::of(state);
    for f in files {
        let report = home
            .import_leaked_files(std::slice::from_ref(f))
            .await
            .with_context(|| format!("importing {}", f.name))?;
        if report.users_flagged > 0 {
            println!(
                "{}: {} imported, {} user(s) flagged with leakedCredentials",
                state.config.tenant_id, f.name, report.users_flagged
            );
        }
    }
    Ok(())
}

fn parse_lab(text: &str, name: &str) -> Result<LabFile, ConfigError> {
    server::config::from_toml(text, name)
}

async fn seed(tenant: &Tenant, users: &[LabUser], guests: &[LabGuest]) -> anyhow::Result<()> {
    let state = &tenant.state;
    let now = SystemClock.now();
    for g in guests {
        if state.store.user_by_email(&g.email).await?.is_some() {
            continue;
        }
        server::guests::invite(
            &state.store,
            &state.config,
            &g.email,
            &g.partner,
            None,
            None,
            now,
        )
        .await
        .with_context(|| format!("inviting {}", g.email))?;
    }
    for u in users {
        if let Some(user) = state.store.user_by_email(&u.email).await? {
            // A key added to the lab file after the first run is registered on the next one.
            if let Some(key) = &u.totp_secret
                && state.store.confirmed_totp(&user.id).await?.is_none()
            {
                server::mfa::register_totp(state, &user.id, key).await?;
            }
            if u.email_otp && state.store.email_otp_method(&user.id).await?.is_none() {
                server::email_otp::register_address(state, &user.id, &user.email).await?;
            }
            continue;
        }
        let hash = state.passwords.hash(&u.password).await?;
        let user = state
            .store
            .insert_user(&store::NewUser {
                id: uuid::Uuid::new_v4().to_string(),
                email: u.email.clone(),
                display_name: u.name.clone(),
                given_name: u.name.split_whitespace().next().map(str::to_owned),
                family_name: u.name.split_whitespace().nth(1).map(str::to_owned),
                password_hash: Some(hash),
                must_change_password: false,
                now,
            })
            .await?;
        if let Some(key) = &u.totp_secret {
            server::mfa::register_totp(state, &user.id, key).await?;
        }
        if u.email_otp {
            server::email_otp::register_address(state, &user.id, &user.email).await?;
        }
        if u.admin {
            state
                .store
                .add_role_member(server::admin::roles::ADMINISTRATOR, &user.id, now)
                .await?;
        }
        server::user_risk::after_password_set(state, &user.id, &u.password).await?;
    }
    Ok(())
}

async fn seed_groups(tenant: &Tenant, groups: &[LabGroup]) -> anyhow::Result<()> {
    let state = &tenant.state;
    let now = SystemClock.now();
    for g in groups {
        if state.store.group(&g.id).await?.is_none() {
            state
                .store
                .create_group(&store::Group {
                    id: g.id.clone(),
                    display_name: g.name.clone(),
                    description: None,
                    created_at: now,
                })
                .await?;
        }
        for email in &g.members {
            let user = state
                .store
                .user_by_email(email)
                .await?
                .with_context(|| format!("group {}: no user {email}", g.id))?;
            state.store.add_group_member(&g.id, &user.id, now).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn scratch() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tenantd-lab-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Every file under `dir`, relative, with `/` separators.
    fn files_under(dir: &Path, base: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files_under(&path, base, out);
            } else {
                let rel = path.strip_prefix(base).unwrap();
                out.push(rel.to_str().unwrap().replace('\\', "/"));
            }
        }
    }

    #[test]
    fn the_built_in_lab_is_exactly_the_shipped_config_tree() {
        let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
        let mut shipped = Vec::new();
        files_under(&config, &config, &mut shipped);
        shipped.sort();
        let mut built_in: Vec<String> = BUILT_IN.iter().map(|(n, _)| (*n).to_owned()).collect();
        built_in.sort();
        assert_eq!(built_in, shipped, "add new config files to BUILT_IN");
        for (name, text) in BUILT_IN {
            assert_eq!(
                std::fs::read_to_string(config.join(name)).unwrap(),
                *text,
                "{name}"
            );
        }
    }

    #[test]
    fn the_built_in_lab_written_out_passes_the_lab_check() {
        let dir = scratch();
        write_built_in(&dir).unwrap();
        let (lab, ready) = check(&dir.join("lab.toml")).unwrap();
        assert_eq!(ready.len(), 2);
        assert!(lab.tenants.iter().any(|t| !t.guests.is_empty()));
        let resource = ready
            .iter()
            .find(|r| r.config.tenant_id == "fabrikam")
            .unwrap();
        assert_eq!(resource.config.partners.len(), 1);
        let home = ready
            .iter()
            .find(|r| r.config.tenant_id == "contoso")
            .unwrap();
        assert!(
            home.leaked
                .iter()
                .flat_map(|f| &f.entries)
                .any(|e| e.email.as_deref() == Some("bob@contoso.test"))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_lab_reads_the_repository_first_and_never_overwrites_edits() {
        let cwd = scratch();
        assert_eq!(find_lab_file(&cwd, None), None);
        let written = cwd.join(WRITTEN_LAB_DIR);
        write_built_in(&written).unwrap();
        assert_eq!(
            find_lab_file(&cwd, None),
            Some(Path::new(WRITTEN_LAB_DIR).join("lab.toml"))
        );
        // An edit survives the next start (which writes only missing files).
        std::fs::write(written.join("home.toml"), "# edited").unwrap();
        std::fs::remove_file(written.join("intel/asn.csv")).unwrap();
        write_built_in(&written).unwrap();
        assert_eq!(
            std::fs::read_to_string(written.join("home.toml")).unwrap(),
            "# edited"
        );
        assert!(written.join("intel/asn.csv").is_file());
        // A checkout's config wins over a written copy; a given file wins over both.
        std::fs::create_dir_all(cwd.join("config")).unwrap();
        std::fs::write(cwd.join(REPOSITORY_LAB), "").unwrap();
        assert_eq!(
            find_lab_file(&cwd, None),
            Some(PathBuf::from(REPOSITORY_LAB))
        );
        assert_eq!(
            find_lab_file(&cwd, Some(Path::new("x.toml"))),
            Some(PathBuf::from("x.toml"))
        );
        std::fs::remove_dir_all(&cwd).unwrap();
    }

    #[test]
    fn a_lab_tenant_runs_on_the_lab_database_and_certificates() {
        let dir = scratch();
        write_built_in(&dir).unwrap();
        let (lab, ready) = check(&dir.join("lab.toml")).unwrap();
        let dev = DevCerts::in_dir(&lab.certs_dir);
        for r in ready {
            let mut config = r.config;
            as_lab_tenant(&mut config, &lab, &dev);
            assert_eq!(
                config.database_url,
                format!(
                    "sqlite://{}",
                    lab.data_dir
                        .join(format!("{}.db", config.tenant_id))
                        .display()
                )
            );
            assert!(
                config
                    .tls
                    .iter()
                    .all(|t| t.cert == dev.cert && t.key == dev.key)
            );
            assert!(
                config
                    .partners
                    .iter()
                    .all(|p| p.ca_file.as_ref() == Some(&dev.ca))
            );
            assert!(
                config
                    .apps
                    .iter()
                    .all(|a| a.push_ca_file.is_none() || a.push_ca_file.as_ref() == Some(&dev.ca))
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
