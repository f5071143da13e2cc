//! User risk at the home tenant: leaked-credentials and threat-intelligence imports, the
//! realtime detections after a verified password (leaked credentials, password spray), and the
//! admin actions through the Graph identityProtection API and the CLI.
//!
//! The detections after a password are driven in-process: these tests sign in over HTTP, so
//! the sign-in log holds the real attempts with their IPs, then call
//! `user_risk::after_password_verified` as the password page does (see [`after_password`]).

use std::net::IpAddr;

use serde_json::Value;

use crate::support::*;

const BOB: &str = "bob@contoso.test";
const BOB_PW: &str = "bob-test-password";
const CAROL: &str = "carol@contoso.test";
const CAROL_PW: &str = "carol-test-password";

fn sha1_hex(pw: &str) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, pw.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

async fn start_home() -> TestTenant {
    start_with("contoso", ADMIN_APP).await
}

/// The tenant's config as a file, for the CLI (same database as the running tenant).
fn config_file(t: &TestTenant) -> String {
    let db = format!("sqlite://{}", t.dir.join("tenant.db").display());
    let listen = t.issuer.trim_start_matches("https://");
    let path = t.dir.join("tenant.toml");
    std::fs::write(
        &path,
        config_text("contoso", &t.issuer, listen, &db, ADMIN_APP),
    )
    .unwrap();
    path.display().to_string()
}

pub fn tenantd(args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tenantd-e2e"))
        .args(args)
        .env("TENANTD_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn get(t: &TestTenant, token: &str, path: &str) -> (u16, Value) {
    let r = backchannel()
        .get(t.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn post(t: &TestTenant, token: &str, path: &str, body: Value) -> (u16, Value) {
    let r = backchannel()
        .post(t.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn user(t: &TestTenant, email: &str) -> store::User {
    t.state().store.user_by_email(email).await.unwrap().unwrap()
}

/// The checks after a correct password, as the password page runs them: given the user, their
/// risk and the version of their sign-ins, read together just before.
async fn after_password(
    s: &server::AppState,
    user: &store::User,
    password: &str,
    ip: IpAddr,
) -> risk::UserRiskStatus {
    let read = s
        .store
        .user_with_risk_by_email(&user.email)
        .await
        .unwrap()
        .unwrap();
    server::user_risk::after_password_verified(s, &read, password, Some(ip))
        .await
        .unwrap()
}

async fn risky(t: &TestTenant, token: &str, email: &str) -> Value {
    let id = user(t, email).await.id;
    let (status, body) = get(
        t,
        token,
        &format!("/v1.0/identityProtection/riskyUsers/{id}"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn detections(t: &TestTenant, token: &str) -> Vec<Value> {
    let (status, body) = get(t, token, "/v1.0/identityProtection/riskDetections").await;
    assert_eq!(status, 200, "{body}");
    body["value"].as_array().unwrap().clone()
}

/// A browser whose requests come through the trusted proxy from `ip`.
/// One failed password sign-in from `ip`.
async fn fail_from(t: &TestTenant, ip: &str, email: &str) {
    let b = browser_from(ip);
    let r = b.get(rp_authorize(t, "")).send().await.unwrap();
    let mut form = password_form(t, &b, r, email).await;
    form.push(("password".into(), "wrong-password-123".into()));
    let r = b
        .post(t.url("/login/password"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "a wrong password shows the page again");
}

#[tokio::test]
async fn leaked_credentials_import_flags_users_offline_and_atomically() {
    let t = start_home().await;
    let s = t.state();
    // Bob's password is only known as a hash (no fingerprint yet): a pair list finds him by
    // verifying the pair's password. Carol's fingerprint is set as the password setters do.
    add_user(&t, BOB, BOB_PW, false).await;
    let carol = add_user(&t, CAROL, CAROL_PW, false).await;
    server::user_risk::after_password_set(s, &carol.id, CAROL_PW)
        .await
        .unwrap();
    let cfg = config_file(&t);
    let dir = t.dir.join("intel");
    std::fs::create_dir_all(&dir).unwrap();
    let pairs = dir.join("pairs.txt");
    std::fs::write(
        &pairs,
        format!("# pairs\n{BOB}:{BOB_PW}\nsomeone@else.test:other-password\n"),
    )
    .unwrap();
    let carol_sha = sha1_hex(CAROL_PW);
    let range = dir.join(format!("{}.txt", &carol_sha[..5]));
    std::fs::write(
        &range,
        format!(
            "{}:12\n{}:0\n",
            &carol_sha[5..],
            "0".repeat(35) // padding
        ),
    )
    .unwrap();
    // A bad file next to good ones: nothing at all is imported, and the error names file:line.
    let bad = dir.join("bad.txt");
    std::fs::write(
        &bad,
        format!("{}:3\n# fine so far\nnot-a-hash:1\n", sha1_hex(ALICE_PW)),
    )
    .unwrap();
    let (code, _, err) = tenantd(&[
        "risk",
        "import-leaked",
        "--config",
        &cfg,
        pairs.to_str().unwrap(),
        bad.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("bad.txt:3:"), "{err}");
    assert!(err.contains("HASH"), "{err}");
    assert_eq!(s.store.leaked_credentials_count().await.unwrap(), 0);
    let token = admin_token(&t).await;
    let (_, list) = get(&t, &token, "/v1.0/identityProtection/riskyUsers").await;
    assert_eq!(list["value"], serde_json::json!([]), "nothing changed");

    let (code, out, err) = tenantd(&[
        "risk",
        "import-leaked",
        "--config",
        &cfg,
        pairs.to_str().unwrap(),
        range.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("imported 3 entries"), "{out}");
    assert!(out.contains("2 user(s) flagged"), "{out}");

    let (_, list) = get(&t, &token, "/v1.0/identityProtection/riskyUsers").await;
    let list = list["value"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    for u in list {
        assert_eq!(u["riskLevel"], "high");
        assert_eq!(u["riskState"], "atRisk");
        assert_eq!(u["riskDetail"], "none");
        assert_eq!(u["isDeleted"], false);
        assert!(
            u["riskLastUpdatedDateTime"]
                .as_str()
                .unwrap()
                .ends_with('Z')
        );
    }
    let bob = risky(&t, &token, BOB).await;
    assert_eq!(bob["userPrincipalName"], BOB);
    let ds = detections(&t, &token).await;
    assert_eq!(ds.len(), 2);
    for d in &ds {
        assert_eq!(d["riskEventType"], "leakedCredentials");
        assert_eq!(d["detectionTimingType"], "offline");
        assert_eq!(d["riskLevel"], "high");
        assert_eq!(d["riskState"], "atRisk");
        assert_eq!(d["source"], "IdentityProtection");
    }
    // Alice (password not listed) is not in the report.
    let alice = user(&t, ALICE).await;
    let a = risky(&t, &token, ALICE).await;
    assert_eq!(a["riskLevel"], "none");
    assert_eq!(a["id"], alice.id);

    // Importing again adds nothing and flags nobody twice.
    let (code, out, err) = tenantd(&[
        "risk",
        "import-leaked",
        "--config",
        &cfg,
        pairs.to_str().unwrap(),
        range.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("(0 new)"), "{out}");
    assert!(out.contains("0 user(s) flagged"), "{out}");
    assert_eq!(detections(&t, &token).await.len(), 2);

    // Threat intelligence: a bad line (unknown user) changes nothing; a good file flags.
    let intel = dir.join("intel.txt");
    std::fs::write(&intel, format!("# tip\n{ALICE}\nghost@contoso.test\n")).unwrap();
    let (code, _, err) = tenantd(&[
        "risk",
        "import-threat-intel",
        "--config",
        &cfg,
        intel.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("intel.txt:3:"), "{err}");
    assert_eq!(risky(&t, &token, ALICE).await["riskLevel"], "none");
    std::fs::write(&intel, format!("# tip\n{ALICE}\n\n{}\n", alice.id)).unwrap();
    let (code, out, err) = tenantd(&[
        "risk",
        "import-threat-intel",
        "--config",
        &cfg,
        intel.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("1 user(s) flagged"), "{out}");
    let a = risky(&t, &token, ALICE).await;
    assert_eq!(
        (a["riskLevel"].as_str(), a["riskState"].as_str()),
        (Some("high"), Some("atRisk"))
    );
}

#[tokio::test]
async fn a_sign_in_with_a_leaked_password_raises_a_realtime_detection_once() {
    let t = start_home().await;
    let s = t.state();
    let token = admin_token(&t).await;
    let home = server::user_risk::Home::of(s);
    let report = server::user_risk::import_leaked(
        &home,
        "hashes.txt",
        &format!("{}:42\n", sha1_hex(ALICE_PW)),
    )
    .await
    .unwrap();
    // No fingerprint for alice yet (seeded straight into the store): not found offline.
    assert_eq!((report.new, report.users_flagged), (1, 0));

    let b = browser_from("192.0.2.44");
    let redirect = sign_in(&t, &b, &rp_authorize(&t, ""), ALICE, ALICE_PW).await;
    assert!(redirect.starts_with(RP_REDIRECT), "{redirect}");
    let alice = user(&t, ALICE).await;
    let ip: IpAddr = "192.0.2.44".parse().unwrap();
    let status = after_password(s, &alice, ALICE_PW, ip).await;
    assert_eq!(status.risk_level, risk::RiskLevel::High);
    assert_eq!(status.risk_state, risk::RiskState::AtRisk);
    let ds = detections(&t, &token).await;
    assert_eq!(ds.len(), 1);
    assert_eq!(ds[0]["riskEventType"], "leakedCredentials");
    assert_eq!(ds[0]["detectionTimingType"], "realtime");
    assert_eq!(ds[0]["ipAddress"], "192.0.2.44");
    assert_eq!(ds[0]["userId"], alice.id);

    // The same password again: already judged, no second detection.
    after_password(s, &alice, ALICE_PW, ip).await;
    assert_eq!(detections(&t, &token).await.len(), 1);

    // Dismissed by an admin, it stays dismissed on the next sign-in with that password.
    let (status, body) = post(
        &t,
        &token,
        "/v1.0/identityProtection/riskyUsers/dismiss",
        serde_json::json!({"userIds": [alice.id]}),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let status = after_password(s, &alice, ALICE_PW, ip).await;
    assert_eq!(status.risk_state, risk::RiskState::Dismissed);
    let ds = detections(&t, &token).await;
    assert_eq!(ds.len(), 1);
    assert_eq!(ds[0]["riskState"], "dismissed");

    // A new password that is not leaked: nothing new.
    server::user_risk::after_password_set(s, &alice.id, "a-fresh-password-1")
        .await
        .unwrap();
    let status = after_password(s, &alice, "a-fresh-password-1", ip).await;
    assert_eq!(status.risk_state, risk::RiskState::Dismissed);
    assert_eq!(detections(&t, &token).await.len(), 1);
}

#[tokio::test]
async fn password_spray_from_one_ip_flags_the_account_that_signs_in_from_it() {
    let t = start_home().await;
    let s = t.state();
    let token = admin_token(&t).await;
    let spray_ip = "203.0.113.50";
    // Ten distinct accounts fail from one IP: nine unknown (50034), alice's wrong password (50126).
    for i in 0..9 {
        fail_from(&t, spray_ip, &format!("user{i}@contoso.test")).await;
    }
    fail_from(&t, spray_ip, ALICE).await;
    // Another IP with a single failure.
    fail_from(&t, "198.51.100.9", ALICE).await;
    let alice = user(&t, ALICE).await;

    // Alice signs in from the quiet IP: no spray.
    let b = browser_from("198.51.100.9");
    sign_in(&t, &b, &rp_authorize(&t, ""), ALICE, ALICE_PW).await;
    let quiet: IpAddr = "198.51.100.9".parse().unwrap();
    let status = after_password(s, &alice, ALICE_PW, quiet).await;
    assert_eq!(status.risk_state, risk::RiskState::None);

    // Then from the spraying IP: passwordSpray, high, realtime, with the IP.
    let b = browser_from(spray_ip);
    sign_in(&t, &b, &rp_authorize(&t, ""), ALICE, ALICE_PW).await;
    let ip: IpAddr = spray_ip.parse().unwrap();
    let status = after_password(s, &alice, ALICE_PW, ip).await;
    assert_eq!(status.risk_level, risk::RiskLevel::High);
    assert_eq!(status.risk_state, risk::RiskState::AtRisk);
    let ds = detections(&t, &token).await;
    assert_eq!(ds.len(), 1, "{ds:?}");
    assert_eq!(ds[0]["riskEventType"], "passwordSpray");
    assert_eq!(ds[0]["detectionTimingType"], "realtime");
    assert_eq!(ds[0]["ipAddress"], spray_ip);
    assert!(
        ds[0]["additionalInfo"]
            .as_str()
            .unwrap()
            .contains("10 accounts"),
        "{}",
        ds[0]
    );
    // The same failures do not raise it again.
    after_password(s, &alice, ALICE_PW, ip).await;
    assert_eq!(detections(&t, &token).await.len(), 1);
    // Once an admin has dismissed it, the failures it judged still do not raise it again;
    // as many new failures from the IP, after it, do.
    let r = backchannel()
        .post(t.url("/v1.0/identityProtection/riskyUsers/dismiss"))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "userIds": [alice.id] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    t.clock.advance(10);
    let status = after_password(s, &alice, ALICE_PW, ip).await;
    assert_eq!(status.risk_state, risk::RiskState::Dismissed);
    assert_eq!(detections(&t, &token).await.len(), 1);
    for i in 10..20 {
        fail_from(&t, spray_ip, &format!("user{i}@contoso.test")).await;
    }
    let status = after_password(s, &alice, ALICE_PW, ip).await;
    assert_eq!(status.risk_state, risk::RiskState::AtRisk);
    let ds = detections(&t, &token).await;
    assert_eq!(ds.len(), 2, "{ds:?}");
    assert!(
        ds.iter().all(|d| d["riskEventType"] == "passwordSpray"),
        "{ds:?}"
    );
}

#[tokio::test]
async fn admins_dismiss_and_confirm_through_the_api_and_the_cli() {
    let t = start_home().await;
    let s = t.state();
    let bob = add_user(&t, BOB, BOB_PW, false).await;
    let alice = user(&t, ALICE).await;
    let guest = s
        .store
        .invite_guest(
            &store::NewGuest {
                id: "guest-1".into(),
                email: "gina@partner.test".into(),
                display_name: "Gina".into(),
                partner_id: "partner-1".into(),
                now: s.now(),
            },
            "inv-1",
            None,
        )
        .await
        .unwrap()
        .0;
    let token = admin_token(&t).await;
    const CONFIRM: &str = "/v1.0/identityProtection/riskyUsers/confirmCompromised";
    const DISMISS: &str = "/v1.0/identityProtection/riskyUsers/dismiss";

    // Authentication and bad input: 401/403/400/404, and nothing changes.
    let r = backchannel()
        .get(t.url("/v1.0/identityProtection/riskyUsers"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    for bad in [
        serde_json::json!({}),
        serde_json::json!({"userIds": []}),
        serde_json::json!({"userIds": "x"}),
        serde_json::json!({"userIds": [alice.id], "extra": 1}),
    ] {
        let (status, body) = post(&t, &token, CONFIRM, bad.clone()).await;
        assert_eq!(status, 400, "{bad} -> {body}");
        assert!(body["error"]["message"].is_string(), "{body}");
    }
    let (status, body) = post(
        &t,
        &token,
        CONFIRM,
        serde_json::json!({"userIds": [alice.id, "no-such-user"]}),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "ResourceNotFound");
    let (status, body) = post(
        &t,
        &token,
        CONFIRM,
        serde_json::json!({"userIds": [alice.id, guest.id]}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("held by their home organization (partner-1)"),
        "{body}"
    );
    let (status, body) = post(
        &t,
        &token,
        DISMISS,
        serde_json::json!({"userIds": [alice.id]}),
    )
    .await;
    assert_eq!(status, 400, "no risk to dismiss: {body}");
    assert_eq!(risky(&t, &token, ALICE).await["riskState"], "none");
    let (status, _) = get(
        &t,
        &token,
        &format!("/v1.0/identityProtection/riskyUsers/{}", guest.id),
    )
    .await;
    assert_eq!(status, 404, "guests are not in the home's report");
    let (status, _) = get(&t, &token, "/v1.0/identityProtection/riskDetections?$top=0").await;
    assert_eq!(status, 400);

    // Confirm, then dismiss, through the API.
    let (status, body) = post(
        &t,
        &token,
        CONFIRM,
        serde_json::json!({"userIds": [alice.id, alice.id]}),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let a = risky(&t, &token, ALICE).await;
    assert_eq!(a["riskLevel"], "high");
    assert_eq!(a["riskState"], "confirmedCompromised");
    assert_eq!(a["riskDetail"], "adminConfirmedUserCompromised");
    let ds = detections(&t, &token).await;
    assert_eq!(ds.len(), 1);
    assert_eq!(ds[0]["riskEventType"], "adminConfirmedUserCompromised");
    let (status, _) = post(
        &t,
        &token,
        CONFIRM,
        serde_json::json!({"userIds": [alice.id]}),
    )
    .await;
    assert_eq!(status, 400, "already confirmed compromised");
    let (status, body) = post(
        &t,
        &token,
        DISMISS,
        serde_json::json!({"userIds": [alice.id]}),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let a = risky(&t, &token, ALICE).await;
    assert_eq!(
        (
            a["riskLevel"].as_str(),
            a["riskState"].as_str(),
            a["riskDetail"].as_str()
        ),
        (
            Some("none"),
            Some("dismissed"),
            Some("adminDismissedAllRiskForUser")
        )
    );
    let (status, history) = get(
        &t,
        &token,
        &format!("/v1.0/identityProtection/riskyUsers/{}/history", alice.id),
    )
    .await;
    assert_eq!(status, 200);
    let h = history["value"].as_array().unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h[0]["riskState"], "dismissed");
    assert_eq!(h[0]["initiatedBy"], "admin:admin-daemon");
    assert_eq!(h[1]["riskState"], "confirmedCompromised");
    assert_eq!(detections(&t, &token).await[0]["riskState"], "dismissed");

    // The CLI: confirm bob, show, then an admin temporary password remediates.
    let cfg = config_file(&t);
    let (code, out, err) = tenantd(&["risk", "confirm-compromised", "--config", &cfg, BOB]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("confirmedCompromised"), "{out}");
    let (code, out, _) = tenantd(&["risk", "show", "--config", &cfg, BOB]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("level high, state confirmedCompromised"),
        "{out}"
    );
    assert!(out.contains("adminConfirmedUserCompromised"), "{out}");
    assert!(out.contains("by admin:cli"), "{out}");
    let (code, out, err) = tenantd(&["user", "set-password", "--config", &cfg, BOB]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("remediated (adminGeneratedTemporaryPassword)"),
        "{out}"
    );
    let b = risky(&t, &token, BOB).await;
    assert_eq!(b["riskState"], "remediated");
    assert_eq!(b["riskDetail"], "adminGeneratedTemporaryPassword");
    let bob_ds = s
        .store
        .list_detections(&store::DetectionFilter {
            user_id: Some(bob.id.clone()),
            ..store::DetectionFilter::default()
        })
        .await
        .unwrap();
    assert!(bob_ds.iter().all(|d| d.state == "remediated"), "{bob_ds:?}");
    // The CLI's changes are in the audit log, under its own name, newest first.
    let audits: Vec<(String, String)> = s
        .store
        .list_audits(&store::AuditFilter {
            target_id: Some(bob.id.clone()),
            limit: 10,
            ..store::AuditFilter::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.activity_display_name, a.initiated_by))
        .collect();
    let cli = r#"{"app":{"appId":"tenantd-cli","displayName":"tenantd-cli"}}"#;
    assert_eq!(
        audits.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(),
        ["Reset user password", "Confirm user compromised"],
        "{audits:?}"
    );
    assert!(audits.iter().all(|(_, by)| by == cli), "{audits:?}");
    // alice's were made through the API, by its app.
    let alice_audits = s
        .store
        .list_audits(&store::AuditFilter {
            target_id: Some(alice.id.clone()),
            limit: 10,
            ..store::AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(alice_audits.len(), 2, "{alice_audits:?}");
    assert!(alice_audits[0].initiated_by.contains("admin-daemon"));
    // Dismissing a user with no risk left is refused by the risk rules; a guest's risk is not ours.
    let (code, _, err) = tenantd(&["risk", "dismiss", "--config", &cfg, BOB]);
    assert_eq!(code, Some(6), "{err}");
    let (code, _, err) = tenantd(&["risk", "dismiss", "--config", &cfg, "gina@partner.test"]);
    assert_eq!(code, Some(6), "{err}");
    assert!(err.contains("home organization"), "{err}");
}

/// `riskyUsers` with the seed's "User" filter, level and state filters, sorting and paging; a
/// filter it cannot apply is a 400, never ignored; guests are not in it.
#[tokio::test]
async fn risky_users_report_filters_sorts_and_pages() {
    let t = start_with("contoso", ADMIN_APP).await;
    let store = &t.state().store;
    let cases = [
        ("ann@contoso.test", "high", "atRisk", 100),
        ("andy@contoso.test", "medium", "atRisk", 200),
        ("bea@contoso.test", "none", "dismissed", 300),
        ("ben@contoso.test", "high", "confirmedCompromised", 400),
    ];
    for (email, level, state, at) in cases {
        let u = add_user(&t, email, "a-test-password", false).await;
        store
            .set_user_risk(
                &store::UserRiskRecord {
                    user_id: u.id,
                    level: level.into(),
                    state: state.into(),
                    detail: "none".into(),
                    updated_at: at,
                },
                "test",
                None,
            )
            .await
            .unwrap();
    }
    let token = admin_token(&t).await;
    let get = |query: String| {
        let token = token.clone();
        let url = t.url(&format!("/v1.0/identityProtection/riskyUsers?{query}"));
        async move {
            let r = backchannel()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    let names = |body: &Value| -> Vec<String> {
        body["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["userPrincipalName"].as_str().unwrap().to_owned())
            .collect()
    };
    let (s, all) = get(String::new()).await;
    assert_eq!(s, 200);
    assert_eq!(
        names(&all),
        [
            "ben@contoso.test",
            "bea@contoso.test",
            "andy@contoso.test",
            "ann@contoso.test"
        ]
    );
    let filter = |f: &str| format!("$filter={}", urlenc(f));
    let (_, body) = get(filter("startswith(userPrincipalName,'an')")).await;
    assert_eq!(names(&body), ["andy@contoso.test", "ann@contoso.test"]);
    let (_, body) = get(filter("riskLevel eq 'high' and riskState eq 'atRisk'")).await;
    assert_eq!(names(&body), ["ann@contoso.test"]);
    let (_, body) = get(filter("userDisplayName eq 'BEA'")).await;
    assert_eq!(names(&body), ["bea@contoso.test"]);
    let (_, body) = get("$orderby=riskLastUpdatedDateTime%20asc&$top=3".into()).await;
    assert_eq!(
        names(&body),
        ["ann@contoso.test", "andy@contoso.test", "bea@contoso.test"]
    );
    let next = body["@odata.nextLink"].as_str().unwrap().to_owned();
    let r: Value = backchannel()
        .get(&next)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(names(&r), ["ben@contoso.test"]);
    assert!(r.get("@odata.nextLink").is_none());
    for bad in [
        filter("riskLevel eq 'severe'"),
        filter("userPrincipalName ne 'ann@contoso.test'"),
        filter("riskDetail eq 'none'"),
        filter("startswith(riskLevel,'h')"),
        "$orderby=userPrincipalName".into(),
        "$top=0".into(),
        "$count=true".into(),
    ] {
        let (s, body) = get(bad.clone()).await;
        assert_eq!(s, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "Request_UnsupportedQuery", "{bad}");
    }
}

/// A partner's report that it blocked alice (the reverse stream's domain half): a
/// `partnerReportedRisk` detection from that partner in the detections report and her risk
/// history, at the level `[risk] partner_reported_risk_level` sets; the same partner reporting
/// the retried sign-in adds nothing; set to `high`, the home's own policies then see high risk.
#[tokio::test]
async fn a_partners_report_of_a_block_is_a_partner_reported_risk_detection() {
    use server::user_risk::{PartnerReport, partner_reported};
    let report = PartnerReport {
        partner: "fabrikam".into(),
        partner_name: "Fabrikam".into(),
        blocked_at: 1_764_900_000,
        policy: "Block high sign-in risk".into(),
        sign_in_risk: risk::RiskLevel::High,
        detections: vec!["anonymizedIPAddress".into()],
        ip: Some("203.0.113.9".parse().unwrap()),
    };
    let t = start_home().await;
    let token = admin_token(&t).await;
    let alice = user(&t, ALICE).await;
    let status = partner_reported(t.state(), &alice.id, &report)
        .await
        .unwrap();
    assert_eq!(status.risk_level, risk::RiskLevel::Low);
    assert_eq!(status.risk_state, risk::RiskState::AtRisk);
    partner_reported(t.state(), &alice.id, &report)
        .await
        .unwrap();
    let found: Vec<Value> = detections(&t, &token)
        .await
        .into_iter()
        .filter(|d| d["riskEventType"] == "partnerReportedRisk")
        .collect();
    assert_eq!(found.len(), 1, "reported twice, detected once: {found:?}");
    assert_eq!(found[0]["source"], "fabrikam");
    assert_eq!(found[0]["userId"], alice.id.as_str());
    assert_eq!(found[0]["riskLevel"], "low");
    let (status, history) = get(
        &t,
        &token,
        &format!("/v1.0/identityProtection/riskyUsers/{}/history", alice.id),
    )
    .await;
    assert_eq!(status, 200, "{history}");
    assert!(
        history.to_string().contains("partnerReportedRisk")
            && history.to_string().contains("Fabrikam blocked"),
        "{history}"
    );

    let strict = start_with(
        "contoso",
        &format!("{ADMIN_APP}\n[risk]\npartner_reported_risk_level = \"high\"\n"),
    )
    .await;
    let alice = user(&strict, ALICE).await;
    let status = partner_reported(strict.state(), &alice.id, &report)
        .await
        .unwrap();
    assert_eq!(status.risk_level, risk::RiskLevel::High);
}
