//! TOTP MFA pages (`/login/mfa`), and helpers for flows that pass through them.
//!
//! Until the sign-in gate sends browsers here, the tests below put the gate's state on a
//! pending sign-in themselves, as the gate will, and check what comes back: the redirect to
//! `/login/continue` with the gate marked, or the refusal.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support::*;
use signin::sign_in::{self as progress, SignIn};
use totp_rs::{Algorithm, Builder, Secret};

/// The current 6-digit code for a base32 key (SHA-1, 30 s steps: what the enrolment page
/// tells the user's app).
#[allow(dead_code)]
pub fn totp_now(secret_base32: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    totp_at(secret_base32, now)
}

/// The code for a base32 key at unix time `unix`, as an authenticator app computes it (apps
/// accept 80-bit keys such as the lab's, which totp-rs's RFC check would refuse).
#[allow(dead_code)]
pub fn totp_at(secret_base32: &str, unix: u64) -> String {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_secret(Secret::try_from_base32(secret_base32).unwrap())
        .build_noncompliant()
        .generate(unix)
        .to_string()
}

/// The key shown on the enrolment page (`id="totp-secret"`), spaces removed.
#[allow(dead_code)]
pub fn enrolment_secret(page_html: &str) -> Option<String> {
    let start = page_html.find("id=\"totp-secret\"")?;
    let rest = &page_html[start..];
    let rest = &rest[rest.find('>')? + 1..];
    let secret: String = rest[..rest.find('<')?]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    (!secret.is_empty()).then_some(secret)
}

/// The recovery codes shown after enrolment.
#[allow(dead_code)]
pub fn recovery_codes(page_html: &str) -> Vec<String> {
    let Some(start) = page_html.find("id=\"recovery-codes\"") else {
        return Vec::new();
    };
    let list = &page_html[start..];
    let list = &list[..list.find("</ul>").unwrap_or(list.len())];
    list.split("<code>")
        .skip(1)
        .filter_map(|s| s.split_once("</code>").map(|(c, _)| c.to_owned()))
        .collect()
}

/// The value of the first hidden input named `name`.
pub(crate) fn hidden(page_html: &str, name: &str) -> String {
    hidden_inputs(page_html)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no hidden {name} in {page_html}"))
}

/// A pending sign-in of `user` held by the gate at the MFA step, as the gate leaves it: starts
/// an authorization in `b` and returns the `/login/mfa` path.
pub(crate) async fn at_mfa_step(
    t: &TestTenant,
    b: &reqwest::Client,
    user: &store::User,
    sign_in_risk: risk::RiskLevel,
) -> String {
    // The email page gives the browser its CSRF cookie; the gate binds the sign-in to it.
    let page = sign_in_page(b, rp_authorize(t, "")).await;
    let id = hidden(&page, "interaction");
    let csrf = hidden(&page, "csrf_token");
    let pending = progress::load(t.state(), &id).await.unwrap();
    let mut held = pending.authenticated(&user.id, vec!["pwd".into()]);
    held.held = true;
    held.bound_to = Some(server::secrets::token_hash(&csrf));
    held.sign_in_risk_level = sign_in_risk;
    let id = progress::replace(t.state(), &id, &held).await.unwrap();
    format!("/login/mfa?interaction={id}")
}

/// The held sign-in a `/login/continue?interaction=` location leads to.
pub(crate) async fn gate_at(t: &TestTenant, continue_location: &str) -> SignIn {
    assert!(
        continue_location.starts_with("/login/continue?interaction="),
        "{continue_location}"
    );
    let id = &query(&t.url(continue_location))["interaction"];
    progress::load(t.state(), id).await.unwrap()
}

pub(crate) async fn post(
    t: &TestTenant,
    b: &reqwest::Client,
    path: &str,
    page_html: &str,
    field: (&str, &str),
) -> reqwest::Response {
    let form = vec![
        ("interaction".to_owned(), hidden(page_html, "interaction")),
        ("csrf_token".to_owned(), hidden(page_html, "csrf_token")),
        (field.0.to_owned(), field.1.to_owned()),
    ];
    b.post(t.url(path)).form(&form).send().await.unwrap()
}

#[tokio::test]
async fn mfa_enrolment_then_verification_and_recovery_codes() {
    let t = start("mfa-enrol").await;
    let alice = t.state().store.user_by_email(ALICE).await.unwrap().unwrap();
    let b = browser();

    // No authenticator yet: enrolment. A wrong code keeps the same key on the page.
    let path = at_mfa_step(&t, &b, &alice, risk::RiskLevel::None).await;
    let page = page_text(&b, t.url(&path)).await;
    let secret = enrolment_secret(&page).expect("enrolment page shows the key");
    assert!(page.contains("otpauth://totp/"), "{page}");
    // The key as a QR code drawn on the server: inline SVG, nothing to load.
    assert!(
        page.contains("<svg role=\"img\" aria-label=\"QR code of the setup key\""),
        "{page}"
    );
    assert!(!page.contains("<?xml"), "{page}");
    let wrong = if totp_now(&secret) == "000000" {
        "111111"
    } else {
        "000000"
    };
    let r = post(&t, &b, "/login/mfa/enrol", &page, ("code", wrong)).await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(page.contains("class=\"error\""), "{page}");
    assert_eq!(enrolment_secret(&page).as_deref(), Some(secret.as_str()));

    let code = totp_now(&secret);
    let r = post(&t, &b, "/login/mfa/enrol", &page, ("code", &code)).await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    let codes = recovery_codes(&page);
    assert_eq!(codes.len(), 10);
    let next = format!(
        "/login/continue?interaction={}",
        hidden(&page, "interaction")
    );
    let gate = gate_at(&t, &next).await;
    assert!(gate.mfa_done);
    assert_eq!(gate.amr, ["pwd", "mfa", "otp"]);
    assert_eq!(gate.mfa_failures, 1);
    assert!(signin::mfa::has_method(t.state(), &alice.id).await.unwrap());

    // Next sign-in: the code page. The enrolment's code is spent (RFC 6238 §5.2).
    let path = at_mfa_step(&t, &b, &alice, risk::RiskLevel::None).await;
    let page = page_text(&b, t.url(&path)).await;
    assert!(enrolment_secret(&page).is_none(), "no second enrolment");
    let r = post(&t, &b, "/login/mfa", &page, ("code", &code)).await;
    assert_eq!(r.status(), 200, "a replayed code is refused");
    let page = r.text().await.unwrap();
    assert!(page.contains("class=\"error\""));

    // A recovery code works once, typed loosely.
    let r = post(
        &t,
        &b,
        "/login/mfa/recovery",
        &page,
        ("recovery_code", &codes[3].to_uppercase()),
    )
    .await;
    assert_eq!(r.status(), 303);
    let gate = gate_at(&t, &location(&r)).await;
    assert!(gate.mfa_done);
    assert_eq!(gate.amr, ["pwd", "mfa", "otp"]);

    let path = at_mfa_step(&t, &b, &alice, risk::RiskLevel::None).await;
    let page = page_text(&b, t.url(&path)).await;
    let r = post(
        &t,
        &b,
        "/login/mfa/recovery",
        &page,
        ("recovery_code", &codes[3]),
    )
    .await;
    assert_eq!(r.status(), 200, "a recovery code is single-use");
    let page = r.text().await.unwrap();
    // The submitted form's id is gone; only the page's new one goes on.
    let r = b
        .post(t.url("/login/mfa"))
        .form(&[
            (
                "interaction",
                path.trim_start_matches("/login/mfa?interaction="),
            ),
            ("csrf_token", &hidden(&page, "csrf_token")),
            ("code", "123456"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        400,
        "a claimed sign-in cannot be submitted again"
    );

    // The CLI reset removes the authenticator: the next sign-in enrols again.
    let run = |args: Vec<String>| {
        use clap::Parser;
        let cli = tenantd::cli::Cli::try_parse_from(["tenantd".to_owned()].into_iter().chain(args))
            .unwrap();
        async move { tenantd::cli::execute(cli).await.map_err(|f| f.code) }
    };
    let config = t.dir.join("cli.toml");
    let db = format!("sqlite://{}", t.dir.join("tenant.db").display());
    std::fs::write(
        &config,
        config_text("cli", "https://127.0.0.1:1", "127.0.0.1:1", &db, ""),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let args = |email: &str| ["mfa", "reset", "--config", config, email].map(str::to_owned);
    assert_eq!(run(args("nobody@contoso.test").to_vec()).await, Err(4));
    assert_eq!(run(args(ALICE).to_vec()).await, Ok(()));
    assert!(!signin::mfa::has_method(t.state(), &alice.id).await.unwrap());
    assert_eq!(
        t.state()
            .store
            .unused_recovery_codes(&alice.id)
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn mfa_registration_is_refused_during_a_risky_sign_in() {
    let t = start("mfa-risky").await;
    let alice = t.state().store.user_by_email(ALICE).await.unwrap().unwrap();
    let b = browser();
    let path = at_mfa_step(&t, &b, &alice, risk::RiskLevel::Medium).await;
    let r = b.get(t.url(&path)).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let page = r.text().await.unwrap();
    assert!(page.contains("53004"), "{page}");
    assert!(page.contains("error=access_denied"), "{page}");
    assert!(enrolment_secret(&page).is_none());
    assert!(
        t.state()
            .store
            .unconfirmed_totp(&alice.id)
            .await
            .unwrap()
            .is_none(),
        "nothing registered"
    );
    let r = b.get(t.url(&path)).send().await.unwrap();
    assert_eq!(r.status(), 400, "the sign-in is over");
}

#[tokio::test]
async fn mfa_five_wrong_codes_refuse_the_sign_in() {
    let t = start("mfa-wrong").await;
    let alice = t.state().store.user_by_email(ALICE).await.unwrap().unwrap();
    let store = &t.state().store;
    let secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    store
        .add_unconfirmed_totp("m1", &alice.id, secret, 0)
        .await
        .unwrap();
    assert!(store.confirm_totp("m1", 1, 0).await.unwrap());
    let b = browser();
    let path = at_mfa_step(&t, &b, &alice, risk::RiskLevel::None).await;
    let mut page = page_text(&b, t.url(&path)).await;
    let now = u64::try_from(t.state().now()).unwrap();
    let valid: Vec<String> = [now - 30, now, now + 30]
        .into_iter()
        .map(|at| totp_at(secret, at))
        .collect();
    let wrong = (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .find(|c| !valid.contains(c))
        .unwrap();
    for _ in 0..4 {
        let r = post(&t, &b, "/login/mfa", &page, ("code", &wrong)).await;
        assert_eq!(r.status(), 200);
        page = r.text().await.unwrap();
    }
    let r = post(&t, &b, "/login/mfa", &page, ("code", &wrong)).await;
    assert_eq!(r.status(), 403);
    let refused = r.text().await.unwrap();
    assert!(refused.contains("500121"), "{refused}");
    let logged = store
        .list_sign_ins(&store::SignInFilter {
            user_id: Some(alice.id.clone()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(logged.iter().any(|s| s.error_code == 500121));
}
