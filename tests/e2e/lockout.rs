//! Smart lockout: ten wrong passwords for one account from an unfamiliar network lock that
//! source (the eleventh try is refused unchecked, even with the right password, error 50053 in
//! the sign-in log, a `suspiciousIPAddress` detection in the reports); the user at a network
//! they signed in from before is not locked out; an unknown address locks the same way (the
//! lockout tells nobody which accounts exist); the lock ends after its duration.

use crate::support::*;

/// Submits `password` for `email` from `ip` in a new browser (no session to sign in with);
/// returns the page shown (the password page again, with its message) or the Location of a
/// successful sign-in.
async fn try_password(t: &TestTenant, ip: &str, email: &str, password: &str) -> String {
    let b = &browser_from(ip);
    let r = b.get(rp_authorize(t, "")).send().await.unwrap();
    let mut form = password_form(t, b, r, email).await;
    form.push(("password".into(), password.into()));
    let r = b
        .post(t.url("/login/password"))
        .form(&form)
        .send()
        .await
        .unwrap();
    if r.status() == 303 {
        format!("redirect:{}", location(&r))
    } else {
        r.text().await.unwrap()
    }
}

const LOCKED: &str = "temporarily locked";

#[tokio::test]
async fn guessing_locks_the_unfamiliar_source_and_is_detected_while_the_user_gets_in() {
    let t = start_with("contoso", ADMIN_APP).await;
    let home = "192.0.2.10";
    // alice has signed in from her usual network before.
    assert!(
        try_password(&t, home, ALICE, ALICE_PW)
            .await
            .starts_with("redirect:")
    );

    let attacker = "203.0.113.50";
    for i in 1..10 {
        let page = try_password(&t, attacker, ALICE, &format!("guess-{i}")).await;
        assert!(
            page.contains("incorrect") && !page.contains(LOCKED),
            "try {i}: {page}"
        );
    }
    let page = try_password(&t, attacker, ALICE, "guess-10").await;
    assert!(
        page.contains(LOCKED),
        "the tenth wrong password locks: {page}"
    );
    assert!(page.contains("1 minute"), "{page}");
    // Locked: even the right password is refused from there, unchecked.
    let page = try_password(&t, attacker, ALICE, ALICE_PW).await;
    assert!(page.contains(LOCKED), "{page}");
    // alice, from her usual network, is not locked out.
    assert!(
        try_password(&t, home, ALICE, ALICE_PW)
            .await
            .starts_with("redirect:")
    );

    // The sign-in log says 50053; the reports show the attack.
    let token = admin_token(&t).await;
    let log: serde_json::Value = backchannel()
        .get(t.url("/v1.0/auditLogs/signIns?$filter=status/errorCode%20eq%2050053"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rows = log["value"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{log}");
    assert!(rows.iter().all(|r| r["ipAddress"] == "203.0.113.50"));
    let detections: serde_json::Value = backchannel()
        .get(t.url("/v1.0/identityProtection/riskDetections"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let d = detections["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["riskEventType"] == "suspiciousIPAddress")
        .expect("the lockout is detected");
    assert_eq!(d["userPrincipalName"], ALICE);
    assert_eq!(d["ipAddress"], "203.0.113.50");
    assert_eq!(d["riskLevel"], "low");

    // After the minute, the source may try again.
    t.clock.advance(61);
    assert!(
        try_password(&t, attacker, ALICE, ALICE_PW)
            .await
            .starts_with("redirect:")
    );
}

#[tokio::test]
async fn an_unknown_address_locks_like_a_known_one() {
    let t = start("contoso").await;
    let b = "203.0.113.51";
    for i in 1..10 {
        let page = try_password(&t, b, "nobody@contoso.test", &format!("guess-{i}")).await;
        assert!(!page.contains(LOCKED), "{page}");
    }
    let page = try_password(&t, b, "nobody@contoso.test", "guess-10").await;
    assert!(page.contains(LOCKED), "{page}");
}

/// Beyond `[rate_limits]`, a client IP gets 429 with `Retry-After` at the sign-in pages and
/// the token endpoint (before any password is checked); another client is not affected.
#[tokio::test]
async fn rate_limits_answer_429_with_retry_after_per_client_ip() {
    let t = start_with(
        "contoso",
        "\n[rate_limits]\nsign_in_per_minute = 3\ntoken_per_minute = 2\n",
    )
    .await;
    let flood = browser_from("203.0.113.60");
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let r = flood
            .post(t.url("/login/password"))
            .form(&[("email", ALICE), ("password", "x")])
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            let wait: u64 = r.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=60).contains(&wait), "{wait}");
        }
    }
    assert_eq!(&statuses[3..], [429, 429], "{statuses:?}");
    assert!(statuses[..3].iter().all(|s| *s != 429), "{statuses:?}");
    // Someone else signs in.
    assert!(
        try_password(&t, "198.51.100.9", ALICE, ALICE_PW)
            .await
            .starts_with("redirect:")
    );
    // The token endpoint answers in JSON.
    let mut last = None;
    for _ in 0..3 {
        last = Some(
            backchannel()
                .post(t.url("/token"))
                .header("x-forwarded-for", "203.0.113.61")
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap(),
        );
    }
    let r = last.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
}
