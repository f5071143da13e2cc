//! Operations: health, keys and rotation, restarts, the CLI.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::*;
use clap::Parser;

#[tokio::test]
async fn health_and_readiness() {
    let t = start("contoso").await;
    let r = backchannel().get(t.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = backchannel().get(t.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn discovery_and_jwks_publish_es256_and_rs256() {
    let t = start("contoso").await;
    let d: serde_json::Value = backchannel()
        .get(t.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["issuer"], t.issuer);
    assert_eq!(
        d["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(d["authorization_response_iss_parameter_supported"], true);
    let jwks: serde_json::Value = backchannel()
        .get(t.url("/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let algs: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["alg"].as_str().unwrap())
        .collect();
    assert!(
        algs.contains(&"ES256") && algs.contains(&"RS256"),
        "{algs:?}"
    );
}

#[tokio::test]
async fn key_rotation_keeps_the_old_key_until_its_tokens_expire() {
    let t = start("contoso").await;
    let tokens = alice_tokens(&t, &browser()).await;
    let old_at = tokens["access_token"].as_str().unwrap().to_owned();
    let old_kid = crate::flows::decode_header(&old_at)["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    server::keys::rotate(
        &t.state().store,
        protocol::jwt::SigningAlg::ES256,
        t.state().now(),
    )
    .await
    .unwrap();
    server::server::reload_keys(t.state()).await;
    // Published at once; still signing with the old key until the propagation time is over.
    let early = alice_tokens(&t, &browser()).await;
    assert_eq!(
        crate::flows::decode_header(early["access_token"].as_str().unwrap())["kid"],
        old_kid.as_str()
    );
    t.clock.advance(server::keys::PROPAGATION_SECS + 1);
    server::server::reload_keys(t.state()).await;
    let jwks: serde_json::Value = backchannel()
        .get(t.url("/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids.len(), 3, "new ES256, old ES256, RS256");
    assert!(kids.contains(&old_kid.as_str()));
    // New tokens use the new key; the old token still works.
    let fresh = alice_tokens(&t, &browser()).await;
    let new_kid = crate::flows::decode_header(fresh["access_token"].as_str().unwrap())["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_kid, old_kid);
    let r = backchannel()
        .get(t.url("/userinfo"))
        .bearer_auth(&old_at)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // After the longest token lifetime the old key leaves the JWKS.
    t.clock.advance(301);
    server::server::reload_keys(t.state()).await;
    let jwks: serde_json::Value = backchannel()
        .get(t.url("/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(!kids.contains(&old_kid.as_str()));
    assert_eq!(kids.len(), 2);
}

#[tokio::test]
async fn state_survives_a_restart() {
    let t = start("contoso").await;
    let dir = t.dir.clone();
    let tokens = alice_tokens(&t, &browser()).await;
    let kid = crate::flows::decode_header(tokens["id_token"].as_str().unwrap())["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let db = format!("sqlite://{}", dir.join("tenant.db").display());
    t.tenant.shutdown().await;
    let t = start_at("contoso", &dir, &db, "").await;
    let jwks = backchannel()
        .get(t.url("/jwks"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(jwks.contains(&kid), "signing keys persist");
    let r = rp_token(
        &t,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(r.status(), 200, "refresh tokens persist");
}

#[tokio::test]
async fn cli_user_commands_against_the_configured_database() {
    let f = fixtures();
    let dir = f.dir.join(format!("cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("tenant.toml");
    let db = format!("sqlite://{}", dir.join("cli.db").display());
    std::fs::write(
        &config,
        config_text("cli", "https://127.0.0.1:1", "127.0.0.1:1", &db, ""),
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let run = |args: Vec<&str>| {
        let cli =
            tenantd::cli::Cli::try_parse_from(std::iter::once("tenantd").chain(args)).unwrap();
        async move { tenantd::cli::execute(cli).await.map_err(|f| f.code) }
    };
    assert_eq!(
        run(vec![
            "user",
            "add",
            "--config",
            c,
            "dana@contoso.test",
            "--name",
            "Dana"
        ])
        .await,
        Ok(())
    );
    assert_eq!(
        run(vec!["user", "add", "--config", c, "dana@contoso.test"]).await,
        Err(5),
        "already exists"
    );
    assert_eq!(
        run(vec![
            "user",
            "disable",
            "--config",
            c,
            "nobody@contoso.test"
        ])
        .await,
        Err(4),
        "not found"
    );
    assert_eq!(
        run(vec!["user", "disable", "--config", c, "DANA@contoso.test"]).await,
        Ok(())
    );
    assert_eq!(run(vec!["user", "list", "--config", c]).await, Ok(()));
    assert_eq!(
        run(vec!["keys", "rotate", "--config", c, "--alg", "es256"]).await,
        Ok(())
    );
    let store = server::vault::open_store(&server::Config::load(&config).unwrap())
        .await
        .unwrap();
    let dana = store
        .user_by_email("dana@contoso.test")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(dana.status, store::UserStatus::Disabled);
    assert!(
        dana.must_change_password,
        "a generated password is temporary"
    );
    let keys = store.signing_keys().await.unwrap();
    assert_eq!(keys.iter().filter(|k| k.alg == "ES256").count(), 2);
    assert_eq!(
        keys.iter().filter(|k| k.retired_at.is_none()).count(),
        2,
        "one active key per algorithm"
    );
    // A broken config is exit code 3.
    std::fs::write(&config, "[tenant]\nid = 1\n").unwrap();
    assert_eq!(run(vec!["user", "list", "--config", c]).await, Err(3));
}

/// `tenantd serve` with a config that has a value of the wrong type and names a broken intel
/// list and a broken policy file: exit code 3, each mistake named once with its file, line and
/// key, and nothing created (no database, so no signing keys). `tenantd lab` and the other
/// commands that load a config refuse it the same way.
#[test]
fn every_config_mistake_is_reported_at_once_with_exit_code_3_and_nothing_is_created() {
    let dir = fixtures()
        .dir
        .join(format!("bad-config-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(dir.join("anon.txt"), "192.0.2.1\n198.51.100.300\n").unwrap();
    std::fs::write(
        dir.join("policies/10-typo.json"),
        "{\n  \"id\": \"x\",\n  \"displayName\": \"x\",\n  \"state\": \"enabled\",\n  \"condtions\": {}\n}\n",
    )
    .unwrap();
    let db = dir.join("bad.db");
    let text = config_text(
        "bad",
        "https://127.0.0.1:1",
        "127.0.0.1:0",
        &format!("sqlite://{}", db.display()),
        "[tokens]\ncode_lifetime_secs = \"60\"\n[risk]\nanonymous_ips = [\"anon.txt\"]\npolicies_dir = \"policies\"\n",
    );
    let type_error_line = text
        .lines()
        .position(|l| l.starts_with("code_lifetime_secs"))
        .unwrap()
        + 1;
    let config = dir.join("bad.toml");
    std::fs::write(&config, &text).unwrap();
    let (c, d) = (config.display().to_string(), dir.display().to_string());
    let nothing_created = || {
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["anon.txt", "bad.toml", "policies"]);
        assert!(!db.exists());
    };

    let (code, _, stderr) = crate::user_risk::tenantd(&["serve", "--config", &c]);
    assert_eq!(code, Some(3), "{stderr}");
    for (mistake, said) in [
        (
            format!("{c}:{type_error_line}: tokens.code_lifetime_secs: i64, got string \"60\""),
            "tokens.code_lifetime_secs",
        ),
        (
            format!("{d}/anon.txt:2: risk.anonymous_ips[0]: not an IP address or CIDR network"),
            "anon.txt",
        ),
        (
            format!("{d}/policies/10-typo.json:5: condtions: unknown field `condtions`"),
            "10-typo.json",
        ),
    ] {
        assert!(stderr.contains(&mistake), "{mistake}\nnot in\n{stderr}");
        assert_eq!(stderr.matches(said).count(), 1, "{said} once:\n{stderr}");
    }
    assert!(
        stderr.starts_with(&format!("error: {c}: 3 problem(s) in the configuration:\n")),
        "{stderr}"
    );
    nothing_created();

    // Every command that loads the config: the same refusal, before the database is opened.
    let (code, _, stderr) = crate::user_risk::tenantd(&["user", "list", "--config", &c]);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("10-typo.json:5"), "{stderr}");
    nothing_created();

    // The lab checks its tenants' configs (and the files they name) before making its data
    // directory or certificates.
    let lab_dir = fixtures()
        .dir
        .join(format!("bad-lab-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&lab_dir).unwrap();
    std::fs::write(
        lab_dir.join("lab.toml"),
        format!(
            "data_dir = \"{l}/data\"\ncerts_dir = \"{l}/certs\"\n[[tenants]]\nconfig = \"{c}\"\nrole = \"home\"\nleaked_credentials = [\"no-such-file.txt\"]\n[demo_app]\nlisten = \"127.0.0.1:0\"\ntenant = \"bad\"\nclient_id = \"demo-app\"\nclient_secret = \"demo-app-secret\"\n",
            l = lab_dir.display()
        ),
    )
    .unwrap();
    let lab = lab_dir.join("lab.toml").display().to_string();
    let (code, _, stderr) = crate::user_risk::tenantd(&["lab", "--config", &lab]);
    assert_eq!(code, Some(3), "{stderr}");
    for said in [
        "tokens.code_lifetime_secs",
        "anon.txt:2",
        "10-typo.json:5",
        "tenants[0].leaked_credentials[0]",
    ] {
        assert_eq!(stderr.matches(said).count(), 1, "{said} once:\n{stderr}");
    }
    assert!(!lab_dir.join("data").exists() && !lab_dir.join("certs").exists());
    std::fs::remove_dir_all(&lab_dir).unwrap();
    nothing_created();
}

/// `--lab TENANT` reaches the lab run from the current directory; where no lab ran, it says so
/// (exit 4) and creates nothing: the CLI never starts a lab database of its own.
#[test]
fn the_cli_reaches_lab_tenants_only_where_a_lab_runs() {
    let dir = fixtures()
        .dir
        .join(format!("no-lab-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tenantd-e2e"))
            .args(args)
            .current_dir(&dir)
            .env_remove("TENANTD_CONFIG")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = run(&["user", "list", "--lab", "contoso"]);
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("run `tenantd lab`"), "{stderr}");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);

    // A lab written here (as `tenantd lab` does outside a checkout) that never ran: the tenant
    // is known, its data is not.
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    copy_tree(&shipped, &dir.join("lab-config"));
    let (code, stderr) = run(&["risk", "show", "--lab", "contoso", "bob@contoso.test"]);
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("has no data yet"), "{stderr}");
    let (code, stderr) = run(&["user", "list", "--lab", "northwind"]);
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("contoso, fabrikam"), "{stderr}");
    let (code, stderr) = run(&["user", "list", "--lab", "contoso", "--config", "x.toml"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(!dir.join("lab-data").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_tree(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// `tenantd app add|list|show|remove` against a tenant's database, through the binary: the
/// registry's rules and exit codes, a secret printed once that then works at the token
/// endpoint, and a removal that holds at once for the running tenant.
#[tokio::test]
async fn cli_app_commands_register_list_show_and_remove() {
    let tenantd = crate::user_risk::tenantd;
    let (dir, db) = tenant_dir("cliapps");
    let config = dir.join("tenant.toml");
    std::fs::write(
        &config,
        config_text("cliapps", "https://127.0.0.1:1", "127.0.0.1:1", &db, ""),
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let field = |out: &str, name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
    };

    let (code, out, err) = tenantd(&[
        "app",
        "add",
        "--config",
        c,
        "Reports",
        "--redirect-uri",
        "https://reports.test/cb",
        "--grant",
        "authorization_code",
        "--grant",
        "client_credentials",
        "--scope",
        "reports.read",
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    let id = field(&out, "client id:").unwrap();
    let secret = field(&out, "client secret:").unwrap();
    assert_eq!(uuid::Uuid::parse_str(&id).unwrap().to_string(), id);

    // A public app with a chosen client id gets no secret.
    let (code, out, err) = tenantd(&[
        "app",
        "add",
        "--config",
        c,
        "Native",
        "--public",
        "--redirect-uri",
        "com.example.native:/cb",
        "--client-id",
        "native-app",
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(field(&out, "client id:").as_deref(), Some("native-app"));
    assert_eq!(field(&out, "client secret:"), None);

    // Taken ids (registered, or in the config file) are 5; metadata the registry refuses is 2.
    for taken in ["native-app", RP_ID] {
        let (code, _, err) = tenantd(&[
            "app",
            "add",
            "--config",
            c,
            "Again",
            "--redirect-uri",
            "https://again.test/cb",
            "--client-id",
            taken,
        ]);
        assert_eq!(code, Some(5), "{taken}: {err}");
    }
    for bad in ["http://plain.test/cb", "https://frag.test/cb#x"] {
        let (code, _, err) = tenantd(&["app", "add", "--config", c, "Bad", "--redirect-uri", bad]);
        assert_eq!(code, Some(2), "{bad}: {err}");
        assert!(err.contains("redirect_uris"), "{err}");
    }
    let (code, _, _) = tenantd(&[
        "app", "add", "--config", c, "NoGrant", "--grant", "implicit",
    ]);
    assert_eq!(code, Some(2), "clap refuses an unknown grant");

    // Every app, the config file's marked read-only.
    let (code, out, err) = tenantd(&["app", "list", "--config", c]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("lab-rp\tconfig (read-only)\tLab RP\n"),
        "{out}"
    );
    assert!(out.contains(&format!("{id}\tapi\tReports\n")), "{out}");
    assert!(out.contains("native-app\tapi\tNative\n"), "{out}");
    assert!(!out.contains("Again") && !out.contains("Bad"), "{out}");
    let (_, out, _) = tenantd(&["app", "list", "--config", c, "--json"]);
    let listed: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(listed.contains(&serde_json::json!({"client_id": RP_ID, "client_name": "Lab RP", "source": "config", "read_only": true})));

    let (code, out, err) = tenantd(&["app", "show", "--config", c, &id]);
    assert_eq!(code, Some(0), "{err}");
    let shown: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["client_id"], id.as_str());
    assert_eq!(shown["client_name"], "Reports");
    assert_eq!(shown["source"], "api");
    assert_eq!(shown["scope"], "reports.read");
    assert_eq!(
        shown["grant_types"],
        serde_json::json!(["authorization_code", "client_credentials"])
    );
    assert_eq!(shown["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(shown["client_secrets"][0]["hint"], &secret[..3]);
    assert!(!out.contains("digest") && !out.contains(&secret), "{out}");
    let (code, _, _) = tenantd(&["app", "show", "--config", c, "no-such-app"]);
    assert_eq!(code, Some(4));

    // A config-file app is not removed here.
    let (code, _, err) = tenantd(&["app", "remove", "--config", c, RP_ID]);
    assert_eq!(code, Some(6), "{err}");
    assert!(err.contains("config file"), "{err}");

    // The running tenant serves the app at once, and stops when it is removed.
    let t = start_at("cliapps", &dir, &db, "").await;
    let cc = || {
        backchannel()
            .post(t.url("/token"))
            .basic_auth(&id, Some(&secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    let r = cc().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["scope"], "reports.read");
    let (code, out, err) = tenantd(&["app", "remove", "--config", c, &id]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(cc().await.unwrap().status(), 401);
    let (code, _, _) = tenantd(&["app", "remove", "--config", c, &id]);
    assert_eq!(code, Some(4));
    let (code, _, _) = tenantd(&["app", "show", "--config", c, &id]);
    assert_eq!(code, Some(4));
}

/// Secrets at rest: the database holds no signing key in clear; `secrets new-key` and
/// `secrets rotate` move every secret under a new master key, after which the old key can go;
/// a database opened with a key it was never sealed under is refused, not misread.
#[tokio::test]
async fn secrets_are_sealed_and_the_master_key_rotates() {
    let f = fixtures();
    let dir = f.dir.join(format!("secrets-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("tenant.toml");
    let db = format!("sqlite://{}", dir.join("sec.db").display());
    let base = config_text("sec", "https://127.0.0.1:1", "127.0.0.1:1", &db, "");
    std::fs::write(&config, &base).unwrap();
    let c = config.to_str().unwrap().to_owned();
    let run = |args: Vec<&str>| {
        let cli =
            tenantd::cli::Cli::try_parse_from(std::iter::once("tenantd").chain(args)).unwrap();
        async move { tenantd::cli::execute(cli).await.map_err(|f| f.code) }
    };
    assert_eq!(run(vec!["keys", "rotate", "--config", &c]).await, Ok(()));
    let beside = dir.join("sec.db.key");
    assert!(beside.is_file(), "a SQLite tenant's key is made beside it");
    let in_clear = || {
        std::fs::read_dir(&dir).unwrap().any(|e| {
            let path = e.unwrap().path();
            // The store's checkpoint thread closes its connection shortly after the command
            // returns, and SQLite then deletes the `-wal` and `-shm` files: one listed here
            // may be gone when it is read, and holds nothing then.
            let contents = match std::fs::read(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return false,
                read => read.unwrap(),
            };
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("sec.db")
                && String::from_utf8_lossy(&contents).contains("PRIVATE KEY")
        })
    };
    assert!(
        !in_clear(),
        "the database files hold a private key in clear"
    );

    let new_key = dir.join("new.key");
    let nk = new_key.to_str().unwrap();
    assert_eq!(run(vec!["secrets", "new-key", "--out", nk]).await, Ok(()));
    assert_eq!(
        run(vec!["secrets", "new-key", "--out", nk]).await,
        Err(1),
        "an existing key file is never overwritten"
    );
    std::fs::write(
        &config,
        format!(
            "{base}[secrets]\nmaster_key_file = \"new.key\"\nprevious_master_key_files = [\"sec.db.key\"]\n"
        ),
    )
    .unwrap();
    assert_eq!(run(vec!["secrets", "rotate", "--config", &c]).await, Ok(()));
    // The old key is no longer needed.
    std::fs::write(
        &config,
        format!("{base}[secrets]\nmaster_key_file = \"new.key\"\n"),
    )
    .unwrap();
    let store = server::vault::open_store(&server::Config::load(&config).unwrap())
        .await
        .unwrap();
    assert_eq!(
        store.signing_keys().await.unwrap().len(),
        4,
        "two rotated pairs"
    );
    store.close().await;
    assert!(!in_clear());

    // Under a key it was never sealed with, the tenant refuses to start its commands.
    std::fs::remove_file(&beside).unwrap();
    std::fs::write(&config, &base).unwrap();
    assert_eq!(run(vec!["keys", "rotate", "--config", &c]).await, Err(1));
}
