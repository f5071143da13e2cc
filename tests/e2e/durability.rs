//! What a `tenantd serve` process reports is durable: across `kill -9` a spent code stays
//! spent, an unspent one stays redeemable once, and a refresh rotation holds; on SIGTERM the
//! sign-in rows still queued behind the requests are written before the process exits.

use std::path::{Path, PathBuf};

use crate::federation::{Serving, wait_ready};
use crate::support::*;

/// A tenant directory with alice seeded (by an in-process tenant, stopped again) and a config
/// for `tenantd serve` on a free port.
pub(crate) async fn prepared() -> (Remote, PathBuf) {
    let (dir, db) = tenant_dir("durable");
    let seeding = start_at("durable", &dir, &db, ADMIN_APP).await;
    seeding.tenant.shutdown().await;
    let port = stable_port();
    let issuer = format!("https://127.0.0.1:{port}");
    let cfg = dir.join("tenant.toml");
    let text = config_text(
        "durable",
        &issuer,
        &format!("127.0.0.1:{port}"),
        &db,
        ADMIN_APP,
    );
    std::fs::write(&cfg, text).unwrap();
    (Remote(issuer), cfg)
}

pub(crate) async fn serve(t: &Remote, cfg: &Path) -> Serving {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_tenantd-e2e"))
        .args(["serve", "--config", cfg.to_str().unwrap()])
        .env("TENANTD_LOG", "warn")
        .spawn()
        .unwrap();
    let serving = Serving(child);
    wait_ready(t.issuer()).await;
    serving
}

/// A code for alice through the lab RP (her session cookie in `b` after the first).
async fn code(t: &Remote, b: &reqwest::Client) -> String {
    let redirect = sign_in(t, b, &rp_authorize(t, ""), ALICE, ALICE_PW).await;
    code_from(t, &redirect, "st-1")
}

async fn redeem(t: &Remote, code: &str) -> reqwest::Response {
    rp_token(
        t,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", RP_REDIRECT),
        ],
    )
    .await
}

async fn refresh(t: &Remote, token: &str) -> reqwest::Response {
    rp_token(
        t,
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
    )
    .await
}

async fn error_of(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap();
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn a_crash_keeps_spent_codes_spent_and_rotations_done() {
    let (t, cfg) = prepared().await;
    let mut serving = serve(&t, &cfg).await;
    let b = browser();
    let spent = code(&t, &b).await;
    let r = redeem(&t, &spent).await;
    assert_eq!(r.status(), 200);
    let rt1 = r.json::<serde_json::Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = refresh(&t, &rt1).await;
    assert_eq!(r.status(), 200);
    let rt2 = r.json::<serde_json::Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // A family's first refresh token, never rotated: it is kept with its grant.
    let r = redeem(&t, &code(&t, &b).await).await;
    assert_eq!(r.status(), 200);
    let first = r.json::<serde_json::Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let unspent = code(&t, &b).await;

    // SIGKILL, right after the responses: nothing gets to run on the way out.
    serving.0.kill().unwrap();
    serving.0.wait().unwrap();
    let _serving = serve(&t, &cfg).await;

    let r = refresh(&t, &rt2).await;
    assert_eq!(
        r.status(),
        200,
        "the token rotated to before the crash is the live one: {}",
        r.text().await.unwrap()
    );
    assert_eq!(
        error_of(refresh(&t, &rt1).await).await,
        (400, "invalid_grant".into()),
        "the token rotated away before the crash stays used"
    );
    assert_eq!(
        refresh(&t, &first).await.status(),
        200,
        "a first refresh token issued before the crash refreshes"
    );
    // Last: a replayed code also revokes what was issued from it (RFC 6749 §4.1.2).
    assert_eq!(
        error_of(redeem(&t, &spent).await).await,
        (400, "invalid_grant".into()),
        "a code redeemed before the crash stays spent"
    );
    assert_eq!(
        redeem(&t, &unspent).await.status(),
        200,
        "a code issued before the crash is still good once"
    );
    assert_eq!(
        error_of(redeem(&t, &unspent).await).await,
        (400, "invalid_grant".into()),
        "and only once"
    );
}

#[tokio::test]
async fn sigterm_writes_the_sign_in_rows_still_queued() {
    let (t, cfg) = prepared().await;
    let mut serving = serve(&t, &cfg).await;
    let alices = || async {
        let token = admin_token(&t).await;
        let r: serde_json::Value = backchannel()
            .get(t.url(
                "/v1.0/auditLogs/signIns?$filter=userPrincipalName%20eq%20'alice@contoso.test'",
            ))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["value"].as_array().unwrap().len()
    };
    let before = alices().await;
    let b = browser();
    for _ in 0..3 {
        let c = code(&t, &b).await;
        assert_eq!(redeem(&t, &c).await.status(), 200);
    }
    // SIGTERM at once, well inside the queue's write interval.
    let pid = serving.0.id().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = serving.0.wait().unwrap();
    assert!(exit.success(), "a clean stop: {exit:?}");

    let _serving = serve(&t, &cfg).await;
    assert_eq!(alices().await, before + 3, "one row per sign-in, none lost");
}

/// kill -9 in the middle of mixed load (sign-ins, users created over the API, an admin
/// toggling a user's risk), then a restart: every user whose creation was answered exists, the
/// refresh tokens issued before still refresh, the keys are the same, and the toggled user's
/// stored risk is the state of the last line of their history (no change half written).
#[tokio::test]
async fn a_crash_during_mixed_load_loses_nothing_it_answered() {
    let (t, cfg) = prepared().await;
    let mut serving = serve(&t, &cfg).await;
    let b = browser();
    let mut kept = Vec::new();
    for _ in 0..3 {
        let r = redeem(&t, &code(&t, &b).await).await;
        kept.push(
            r.json::<serde_json::Value>().await.unwrap()["refresh_token"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let jwks_before: serde_json::Value = backchannel()
        .get(t.url("/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = admin_token(&t).await;
    let api = |method: reqwest::Method, path: &str, body: serde_json::Value| {
        backchannel()
            .request(method, t.url(path))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let r = api(
        reqwest::Method::POST,
        "/v1.0/users",
        serde_json::json!({
            "accountEnabled": true, "displayName": "Toggled", "userPrincipalName": "toggled@contoso.test",
            "passwordProfile": {"password": "a-long-enough-password", "forceChangePasswordNextSignIn": false},
        }),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let toggled = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The load: three kinds of work at once until the kill.
    let created = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let creating = {
        let (created, stop, t, token) = (created.clone(), stop.clone(), t.0.clone(), token.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                i += 1;
                let email = format!("load{i}@contoso.test");
                let r = backchannel()
                    .post(format!("{t}/v1.0/users"))
                    .bearer_auth(&token)
                    .json(&serde_json::json!({
                        "accountEnabled": true, "displayName": format!("Load {i}"), "userPrincipalName": email,
                        "passwordProfile": {"password": "a-long-enough-password", "forceChangePasswordNextSignIn": true},
                    }))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 201 => created.lock().unwrap().push(email),
                    _ => break,
                }
            }
        })
    };
    let toggling = {
        let (stop, t, token, id) = (stop.clone(), t.0.clone(), token.clone(), toggled.clone());
        tokio::spawn(async move {
            let mut compromised = true;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let action = if compromised {
                    "confirmCompromised"
                } else {
                    "dismiss"
                };
                let r = backchannel()
                    .post(format!("{t}/v1.0/identityProtection/riskyUsers/{action}"))
                    .bearer_auth(&token)
                    .json(&serde_json::json!({"userIds": [id]}))
                    .send()
                    .await;
                if r.is_err() {
                    break;
                }
                compromised = !compromised;
            }
        })
    };
    let signing_in = {
        let (stop, t) = (stop.clone(), Remote(t.0.clone()));
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let b = browser();
                let r = b.get(rp_authorize(&t, "")).send().await;
                if r.is_err() {
                    break;
                }
            }
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    serving.0.kill().unwrap();
    serving.0.wait().unwrap();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for task in [creating, toggling, signing_in] {
        let _ = task.await;
    }
    let created = created.lock().unwrap().clone();
    assert!(
        !created.is_empty(),
        "the load did some work before the kill"
    );

    let _serving = serve(&t, &cfg).await;
    let token = admin_token(&t).await;
    for email in &created {
        let r = backchannel()
            .get(t.url(&format!("/v1.0/users/{email}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{email} was answered 201 before the kill");
    }
    for rt in &kept {
        assert_eq!(
            refresh(&t, rt).await.status(),
            200,
            "issued before the crash"
        );
    }
    let jwks_after: serde_json::Value = backchannel()
        .get(t.url("/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks_before, jwks_after, "the same keys");
    let risky: serde_json::Value = backchannel()
        .get(t.url(&format!("/v1.0/identityProtection/riskyUsers/{toggled}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let history: serde_json::Value = backchannel()
        .get(t.url(&format!(
            "/v1.0/identityProtection/riskyUsers/{toggled}/history"
        )))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let last = &history["value"][0];
    assert_eq!(risky["riskState"], last["riskState"], "{risky} vs {last}");
    assert_eq!(risky["riskLevel"], last["riskLevel"], "{risky} vs {last}");
}
