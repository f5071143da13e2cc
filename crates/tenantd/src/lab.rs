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
use server::config::Config;
use server::state::{Clock, SystemClock};
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

/// Run the lab until Ctrl-C.
pub async fn run(args: LabArgs) -> anyhow::Result<()> {
    let (lab, lab_dir, builtin) = match &args.config {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            let dir = p.parent().map(Path::to_path_buf).unwrap_or_default();
            (parse_lab(&text, &p.display().to_string())?, dir, false)
        }
        None => (
            parse_lab(LAB_TOML, "config/lab.toml (built in)")?,
            PathBuf::from("config"),
            true,
        ),
    };
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
    for t in &lab.tenants {
        let path = lab_dir.join(&t.config);
        let mut config = match t.config.to_str() {
            Some("home.toml") if builtin => {
                Config::parse(HOME_TOML, "config/home.toml (built in)")?
            }
            Some("resource.toml") if builtin => {
                Config::parse(RESOURCE_TOML, "config/resource.toml (built in)")?
            }
            _ => Config::load_unchecked(&path)?,
        };
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
        config.check_files()?;
        let listener = std::net::TcpListener::bind(config.listen)
            .with_context(|| format!("binding {} for {}", config.listen, config.tenant_id))?;
        let tenant = Tenant::start(config, listener, Arc::new(SystemClock)).await?;
        seed(&tenant, &t.users, &t.guests).await?;
        import_leaked(&tenant, &lab_dir, builtin, &t.leaked_credentials).await?;
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

/// Imports the tenant's leaked-credential files (the built-in copy of
/// `intel/leaked-credentials.txt` when running the built-in lab).
async fn import_leaked(
    tenant: &Tenant,
    lab_dir: &Path,
    builtin: bool,
    files: &[PathBuf],
) -> anyhow::Result<()> {
    let state = &tenant.state;
    let home = server::user_risk::Home::of(state);
    for f in files {
        let text = match f.to_str() {
            Some("intel/leaked-credentials.txt") if builtin => LEAKED_TXT.to_owned(),
            _ => {
                let path = lab_dir.join(f);
                std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?
            }
        };
        let report = server::user_risk::import_leaked(&home, &f.display().to_string(), &text)
            .await
            .with_context(|| format!("importing {}", f.display()))?;
        if report.users_flagged > 0 {
            println!(
                "{}: {} imported, {} user(s) flagged with leakedCredentials",
                state.config.tenant_id,
                f.display(),
                report.users_flagged
            );
        }
    }
    Ok(())
}

fn parse_lab(text: &str, name: &str) -> anyhow::Result<LabFile> {
    toml::from_str(text).map_err(|e| anyhow::anyhow!("{name}: {e}"))
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
