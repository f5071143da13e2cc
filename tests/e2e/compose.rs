//! `compose.yaml`, proven as far as a machine without a container engine allows: its shape is
//! checked (the services, profiles, health checks on `/readyz`, the host network the issuers
//! rely on), then each service of the default profile is started natively with its exact
//! command line and environment, on the ports the file gives, in a directory laid out as the
//! image's working directory, and the guest scenario is walked through them: alice gets in at
//! the resource, bob is blocked with the seed's sentence, the demo app answers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use serde_norway::Value;

use crate::federation::{Ended, app_redirect, sign_in_between};
use crate::support::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn compose() -> Value {
    let text = std::fs::read_to_string(repo().join("compose.yaml")).unwrap();
    let mut v: Value = serde_norway::from_str(&text).unwrap();
    v.apply_merge().unwrap();
    v
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| s.iter().map(|x| x.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

/// A service's command line and environment, as the file gives them.
fn service(c: &Value, name: &str) -> (Vec<String>, HashMap<String, String>) {
    let s = &c["services"][name];
    let env = s["environment"]
        .as_mapping()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.as_str().unwrap().to_owned(),
                        v.as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    (strings(&s["command"]), env)
}

#[test]
fn the_compose_file_has_the_services_profiles_and_checks_it_promises() {
    let c = compose();
    let services = c["services"].as_mapping().unwrap();
    for name in [
        "certs",
        "home",
        "resource",
        "demo-app",
        "postgres",
        "home-pg",
        "resource-pg",
    ] {
        assert!(services.contains_key(name), "service {name}");
    }
    let profiles = |name: &str| strings(&c["services"][name]["profiles"]);
    assert_eq!(profiles("home"), ["sqlite"]);
    assert_eq!(profiles("resource"), ["sqlite"]);
    assert_eq!(profiles("home-pg"), ["postgres"]);
    assert_eq!(profiles("resource-pg"), ["postgres"]);
    assert_eq!(profiles("postgres"), ["postgres"]);
    assert!(
        profiles("demo-app").is_empty(),
        "the demo app runs in every profile"
    );
    // `docker compose up` means the SQLite profile.
    let env = std::fs::read_to_string(repo().join(".env")).unwrap();
    assert!(env.lines().any(|l| l == "COMPOSE_PROFILES=sqlite"), "{env}");
    for (name, port) in [
        ("home", 9443),
        ("resource", 9444),
        ("home-pg", 9443),
        ("resource-pg", 9444),
    ] {
        let s = &c["services"][name];
        assert_eq!(s["network_mode"].as_str(), Some("host"), "{name}");
        let check = strings(&s["healthcheck"]["test"]).join(" ");
        assert!(
            check.contains(&format!("https://127.0.0.1:{port}/readyz")),
            "{name}: {check}"
        );
        assert_eq!(
            s["depends_on"]["certs"]["condition"].as_str(),
            Some("service_completed_successfully"),
            "{name}"
        );
    }
    // The PostgreSQL tenants each name their own database on the compose PostgreSQL.
    for (name, db) in [("home-pg", "contoso"), ("resource-pg", "fabrikam")] {
        let (_, env) = service(&c, name);
        assert!(
            env["TENANTD_DATABASE_URL"].ends_with(&format!(":55432/{db}")),
            "{name}: {env:?}"
        );
    }
    let init = std::fs::read_to_string(repo().join("docker/postgres-init.sql")).unwrap();
    assert!(init.contains("CREATE DATABASE contoso") && init.contains("CREATE DATABASE fabrikam"));
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    assert!(dockerfile.contains("cargo build --release --locked -p tenantd"));
    assert!(dockerfile.contains("WORKDIR /srv/tenantd"));
}

/// Children killed when the test ends, however it ends.
struct Services(Vec<Child>);

impl Drop for Services {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// What each service in `dir` logged, for a failed assertion to quote.
fn logs(dir: &Path) -> String {
    let mut out = String::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "log") {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            out += &format!("--- {}\n{text}\n", path.display());
        }
    }
    out
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test]
async fn the_compose_services_run_natively_and_serve_the_guest_scenario() {
    let c = compose();
    walk(&c, ["home", "resource"], |env| env).await;
    // The postgres profile, on this machine's PostgreSQL instead of the compose one: the same
    // command lines and environment, the database URLs moved to that server.
    let Ok(base) = std::env::var("TENANTD_TEST_DATABASE_URL") else {
        println!("skipped the postgres profile: TENANTD_TEST_DATABASE_URL not set");
        return;
    };
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let mut made = Vec::new();
    let moved = |mut env: HashMap<String, String>| {
        if let Some(url) = env.get_mut("TENANTD_DATABASE_URL") {
            let db = url.rsplit('/').next().unwrap_or_default().to_owned();
            let mut to = url::Url::parse(&base).unwrap();
            to.set_path(&format!("compose_{db}_{suffix}"));
            *url = to.to_string();
        }
        env
    };
    for db in ["contoso", "fabrikam"] {
        let name = format!("compose_{db}_{suffix}");
        sqlx::Executor::execute(
            &mut admin,
            sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")),
        )
        .await
        .unwrap();
        made.push(name);
    }
    walk(&c, ["home-pg", "resource-pg"], moved).await;
    for name in made {
        let _ = sqlx::Executor::execute(
            &mut admin,
            sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")),
        )
        .await;
    }
}

/// Runs the `certs` service, then `tenants` and the demo app, natively and as the file says,
/// and walks the guest scenario through them.
async fn walk(
    c: &Value,
    tenants: [&str; 2],
    environment: impl Fn(HashMap<String, String>) -> HashMap<String, String>,
) {
    // The image's working directory: the shipped config, then what the `certs` service makes.
    let dir = fixtures()
        .dir
        .join(format!("compose-{}", uuid::Uuid::new_v4()));
    copy_tree(&repo().join("config"), &dir.join("config"));
    // Each service logs to a file of its own, which a failed assertion below quotes.
    let run = |name: &str| {
        let (args, env) = service(c, name);
        let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
        Command::new(env!("CARGO_BIN_EXE_tenantd-e2e"))
            .args(&args)
            .envs(&environment(env))
            .env("TENANTD_LOG", "info")
            .env_remove("TENANTD_CONFIG")
            .current_dir(&dir)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap()
    };
    let status = run("certs").wait().unwrap();
    assert!(status.success(), "certs: {status}");
    let ca = std::fs::read(dir.join("certs/dev-ca.pem")).unwrap();
    let services = Services(vec![run(tenants[0]), run(tenants[1]), run("demo-app")]);
    let tls = reqwest::Certificate::from_pem(&ca).unwrap();
    let client = |cookies: bool| {
        reqwest::Client::builder()
            .add_root_certificate(tls.clone())
            .cookie_store(cookies)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    };
    let probe = client(false);
    for url in [
        "https://127.0.0.1:9443/readyz",
        "https://127.0.0.1:9444/readyz",
        "http://127.0.0.1:9445/",
    ] {
        // A deadline, not a count of tries: on a loaded machine each try is slow too.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut ok = false;
        while std::time::Instant::now() < deadline {
            if probe
                .get(url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                ok = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(
            ok,
            "{url} never answered (is a lab running on these ports?)\n{}",
            logs(&dir)
        );
    }
    let mut services = services;
    for child in &mut services.0 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "every service runs (not another process on its port)\n{}",
            logs(&dir)
        );
    }
    let ends = crate::federation::Ends {
        home: "https://127.0.0.1:9443".into(),
        resource: "https://127.0.0.1:9444".into(),
    };
    let authorize = format!(
        "{}/authorize?response_type=code&client_id={RP_ID}&redirect_uri={}&scope=openid&state=st-1&nonce=n-1",
        ends.resource,
        urlenc(RP_REDIRECT)
    );
    let alice = sign_in_between(
        &ends,
        &client(true),
        &authorize,
        "alice@contoso.test",
        "alice-lab-password",
    )
    .await;
    let redirect = app_redirect(alice);
    assert!(redirect.starts_with(RP_REDIRECT), "{redirect}");
    match sign_in_between(
        &ends,
        &client(true),
        &authorize,
        "bob@contoso.test",
        "bob-lab-password",
    )
    .await
    {
        Ended::Page(_, page) => assert!(
            page.contains("Your account is blocked."),
            "bob is blocked: {page}"
        ),
        Ended::App(to) => {
            let q = query(&to);
            assert_eq!(
                q.get("error").map(String::as_str),
                Some("access_denied"),
                "{to}"
            );
        }
    }
    // The resource reports bob's block back to his home (the reverse stream the shipped
    // configs set up, polled by the home every second): a partnerReportedRisk detection there.
    let admin = client(false);
    let token: serde_json::Value = admin
        .post(format!("{}/token", ends.home))
        .basic_auth("lab-admin", Some("lab-admin-secret"))
        .form(&[("grant_type", "client_credentials"), ("scope", "admin")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"]
        .as_str()
        .expect("an admin token")
        .to_owned();
    // The home sets its stream up at the resource as both start; when the resource is not
    // answering yet, the home tries again with back-off (2 s, 4 s, 8 s, ...), which on a loaded
    // machine can put the first poll well after the block.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let mut reported = false;
    while std::time::Instant::now() < deadline {
        let detections: serde_json::Value = admin
            .get(format!(
                "{}/v1.0/identityProtection/riskDetections",
                ends.home
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        reported = detections["value"].as_array().is_some_and(|v| {
            v.iter()
                .any(|d| d["riskEventType"] == "partnerReportedRisk" && d["source"] == "fabrikam")
        });
        if reported {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        reported,
        "the home recorded fabrikam's report of bob's block\n{}",
        logs(&dir)
    );
    drop(services);
    let _ = std::fs::remove_dir_all(&dir);
}
