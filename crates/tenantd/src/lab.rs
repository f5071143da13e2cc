//! `tenantd lab`: the tenants and the demo app on loopback, SQLite under a lab data dir, dev TLS
//! certificates generated if missing, seeded users, and the URLs to click printed.
//!
//! The lab is described by `config/lab.toml` (compiled in, so `cargo run --release -- lab`
//! works from a fresh clone; `--config` reads another file). Each tenant entry names a tenant
//! config file; the lab only swaps its database for one under the lab data dir.

use crate::certs;
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

const LAB_TOML: &str = include_str!("../../../config/lab.toml");
const HOME_TOML: &str = include_str!("../../../config/home.toml");
const RESOURCE_TOML: &str = include_str!("../../../config/resource.toml");
const LEAKED_TXT: &str = include_str!("../../../config/intel/leaked-credentials.txt");

/// Options of `tenantd lab`.
#[derive(Debug, Args)]
pub struct LabArgs {
    /// Lab description (default: the built-in copy of config/lab.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Delete the lab's data first and start from freshly seeded data.
    #[arg(long)]
    reset: bool,
}

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
    /// Leaked-credential files (relative to the lab file) imported after the users are seeded,
    /// so user risk comes from real detections. Importing again on restart changes nothing.
    #[serde(default)]
    pub leaked_credentials: Vec<PathBuf>,
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

/// Reads and checks the lab file, every tenant config and every file they name, and the
/// leaked-credential files: all mistakes in one [`ConfigError`], before anything is created.
fn check(args: &LabArgs) -> Result<(LabFile, Vec<Ready>, bool), ConfigError> {
    let (lab, lab_name, lab_dir, builtin) = match &args.config {
        Some(p) => {
            let name = p.display().to_string();
            let text = std::fs::read_to_string(p).map_err(|e| ConfigError {
                file: name.clone(),
                problems: vec![Problem::new(
                    name.clone(),
                    "(file)",
                    format!("a readable TOML file ({e})"),
                )],
            })?;
            let dir = p.parent().map(Path::to_path_buf).unwrap_or_default();
            (parse_lab(&text, &name)?, name, dir, false)
        }
        None => {
            let name = "config/lab.toml (built in)".to_owned();
            (
                parse_lab(LAB_TOML, &name)?,
                name,
                PathBuf::from("config"),
                true,
            )
        }
    };
    let mut problems = Vec::new();
    let mut ready = Vec::new();
    for (i, t) in lab.tenants.iter().enumerate() {
        let path = lab_dir.join(&t.config);
        let (text, name) = match t.config.to_str() {
            Some("home.toml") if builtin => (
                HOME_TOML.to_owned(),
                "config/home.toml (built in)".to_owned(),
            ),
            Some("resource.toml") if builtin => (
                RESOURCE_TOML.to_owned(),
                "config/resource.toml (built in)".to_owned(),
            ),
            _ => match std::fs::read_to_string(&path) {
                Ok(text) => (text, path.display().to_string()),
                Err(e) => {
                    problems.push(Problem::new(
                        path.display().to_string(),
                        format!("tenants[{i}].config"),
                        format!("a readable tenant config file ({e})"),
                    ));
                    continue;
                }
            },
        };
        // The lab serves its tenants with its own dev certificates (made below if missing).
        let checked = Config::parse_checked(&text, &name, FileCheck::ExceptTls);
        let mut leaked = Vec::new();
        for (j, f) in t.leaked_credentials.iter().enumerate() {
            let text = match f.to_str() {
                Some("intel/leaked-credentials.txt") if builtin => LEAKED_TXT.to_owned(),
                _ => {
                    let path = lab_dir.join(f);
                    match std::fs::read_to_string(&path) {
                        Ok(text) => text,
                        Err(e) => {
                            problems.push(Problem::new(
                                path.display().to_string(),
                                format!("tenants[{i}].leaked_credentials[{j}]"),
                                format!("a readable leaked-credentials file ({e})"),
                            ));
                            continue;
                        }
                    }
                }
            };
            match server::user_risk::parse_leaked(&f.display().to_string(), &text) {
                Ok(file) => leaked.push(file),
                Err(ImportError::Line {
                    file,
                    line,
                    message,
                }) => problems.push(
                    Problem::new(
                        file,
                        format!("tenants[{i}].leaked_credentials[{j}]"),
                        message,
                    )
                    .at(Some(line)),
                ),
                Err(e) => problems.push(Problem::new(
                    f.display().to_string(),
                    format!("tenants[{i}].leaked_credentials[{j}]"),
                    e.to_string(),
                )),
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
        Ok((lab, ready, builtin))
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
    let (lab, ready, builtin) = check(&args)?;
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

    let mut tenants: Vec<(Tenant, String)> = Vec::new();
    let mut issuers: HashMap<String, String> = HashMap::new();
    for (t, r) in lab.tenants.iter().zip(ready) {
        let Ready {
            mut config,
            prepared,
            leaked,
        } = r;
        let db = lab.data_dir.join(format!("{}.db", config.tenant_id));
        config.database_url = format!("sqlite://{}", db.display());
        if let Some(tls) = &mut config.tls {
            tls.cert = dev.cert.clone();
            tls.key = dev.key.clone();
        }
        // The lab's partners are its other tenants, served with the lab's dev certificates.
        for p in &mut config.partners {
            if p.ca_file.is_some() {
                p.ca_file = Some(dev.ca.clone());
            }
        }
        let listener = std::net::TcpListener::bind(config.listen)
            .with_context(|| format!("binding {} for {}", config.listen, config.tenant_id))?;
        let tenant =
            Tenant::start_prepared(config, prepared, listener, Arc::new(SystemClock)).await?;
        seed(&tenant, &t.users, &t.guests).await?;
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
    let demo_task = tokio::spawn(demo::serve(demo_cfg, async move {
        let _ = demo_stopped.await;
    }));

    println!();
    println!(
        "tenantd lab is running (data in {}, Ctrl-C to stop)",
        lab.data_dir.display()
    );
    for (t, role) in &tenants {
        let c = &t.state.config;
        println!(
            "  {:<9} {:<10} {}   discovery: {}/.well-known/openid-configuration",
            role, c.tenant_id, c.issuer, c.issuer
        );
    }
    println!(
        "  demo app             http://{}   <- open this and click \"Sign in\"",
        lab.demo_app.listen
    );
    println!();
    println!("  accounts:");
    for t in &lab.tenants {
        for u in &t.users {
            println!("    {:<24} {}", u.email, u.password);
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
    println!(
        "  TLS: dev CA {} (see certs/README.md to trust it)",
        dev.ca.display()
    );
    if builtin {
        println!();
        println!("  try (README, \"Lab walk-through\"):");
        println!("    alice@contoso.test   signs in to the demo app as a guest of fabrikam");
        println!(
            "    bob@contoso.test     is blocked at fabrikam: his password is in contoso's leaked-credentials list (53011)"
        );
        println!(
            "    alice with X-Forwarded-For: 198.51.100.7 (an anonymous IP) is asked for MFA at fabrikam (53004: no enrolment while risky)"
        );
        println!("    policies: config/policies/, intel: config/intel/");
    }
    println!();

    server::server::shutdown_signal().await;
    println!("stopping the lab");
    let _ = stop_demo.send(());
    let _ = demo_task.await;
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
        if state.store.user_by_email(&u.email).await?.is_some() {
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
        server::user_risk::after_password_set(state, &user.id, &u.password).await?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn built_in_lab_and_home_configs_are_valid() {
        let lab = parse_lab(LAB_TOML, "lab").unwrap();
        assert!(!lab.tenants.is_empty());
        Config::parse(HOME_TOML, "home").unwrap();
        let resource = Config::parse(RESOURCE_TOML, "resource").unwrap();
        assert_eq!(resource.partners.len(), 1);
        assert!(lab.tenants.iter().any(|t| !t.guests.is_empty()));
        let leaked = server::user_risk::parse_leaked("leaked-credentials.txt", LEAKED_TXT).unwrap();
        assert!(
            leaked
                .entries
                .iter()
                .any(|e| e.email.as_deref() == Some("bob@contoso.test"))
        );
    }
}
