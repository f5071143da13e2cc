//! Scale-out: two replicas of one tenant on one PostgreSQL database, started together on a fresh
//! database (the migrations take PostgreSQL's advisory lock, so both come up), behind "a load
//! balancer" that sends every step of a flow to the other replica: the sign-in pages, the code,
//! the token exchange, a refresh and userinfo all work across them, smart lockout counts the
//! wrong passwords of both, a password reset's steps cross them, and a key rotated on one is published by both before either signs
//! with it.

use std::net::TcpListener;
use std::sync::Arc;

use server::{Config, OffsetClock, Tenant};

use crate::support::*;

/// One replica: the shared issuer and database, its own listener.
async fn replica(issuer: &str, db: &str) -> (Tenant, u16, Arc<OffsetClock>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let text = config_text("replicated", issuer, &format!("127.0.0.1:{port}"), db, "");
    let config = Config::parse(&text, "replica.toml").unwrap();
    let clock = Arc::new(OffsetClock::default());
    let tenant = Tenant::start(config, listener, clock.clone())
        .await
        .unwrap();
    (tenant, port, clock)
}

/// Sends step `n` of a flow to replica `n % 2`: the URL's port (the issuer's) is swapped.
struct Balancer {
    issuer: String,
    ports: [u16; 2],
    step: std::sync::atomic::AtomicUsize,
}

impl Balancer {
    fn next(&self, url: &str) -> String {
        let n = self.step.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let to = format!("https://127.0.0.1:{}", self.ports[n % 2]);
        let url = if url.starts_with('/') {
            format!("{}{url}", self.issuer)
        } else {
            url.to_owned()
        };
        url.replacen(&self.issuer, &to, 1)
    }
}

/// From the app's authorize request through the email page to the password's answer, each step
/// through the balancer.
async fn submit_password_via(
    lb: &Balancer,
    b: &reqwest::Client,
    authorize: &str,
    password: &str,
) -> reqwest::Response {
    let r = b.get(lb.next(authorize)).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let page = b
        .get(lb.next(&location(&r)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut form = hidden_inputs(&page);
    form.push(("email".into(), ALICE.into()));
    let page = b
        .post(lb.next("/login"))
        .form(&form)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut form = hidden_inputs(&page);
    form.push(("password".into(), password.into()));
    b.post(lb.next("/login/password"))
        .form(&form)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn every_step_of_a_flow_may_land_on_either_replica() {
    use sqlx::Connection;
    let Ok(base) = std::env::var("TENANTD_TEST_DATABASE_URL") else {
        println!("skipped: TENANTD_TEST_DATABASE_URL not set");
        return;
    };
    let name = format!("tenantd_replicas_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::Executor::execute(
        &mut admin,
        sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")),
    )
    .await
    .unwrap();
    let mut db = url::Url::parse(&base).unwrap();
    db.set_path(&name);
    // The issuer is the load balancer's address; here, replica A's port stands for it.
    let front = TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = issuer_of(&front);
    drop(front);
    // Both start at once on the empty database.
    let ((a, port_a, clock_a), (b, port_b, clock_b)) =
        tokio::join!(replica(&issuer, db.as_str()), replica(&issuer, db.as_str()));
    let hash = a.state.passwords.hash(ALICE_PW).await.unwrap();
    a.state
        .store
        .insert_user(&store::NewUser {
            id: uuid::Uuid::new_v4().to_string(),
            email: ALICE.into(),
            display_name: "Alice Smith".into(),
            given_name: None,
            family_name: None,
            password_hash: Some(hash),
            must_change_password: false,
            now: a.state.now(),
        })
        .await
        .unwrap();
    let lb = Balancer {
        issuer: issuer.clone(),
        ports: [port_a, port_b],
        step: 0.into(),
    };
    let browser = browser();

    // The sign-in pages, alternating.
    let authorize = format!(
        "/authorize?response_type=code&client_id={RP_ID}&redirect_uri={}&scope=openid%20offline_access&state=st-1&nonce=n-1",
        urlenc(RP_REDIRECT)
    );
    let r = submit_password_via(&lb, &browser, &authorize, ALICE_PW).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let mut to_app = location(&r);
    // Consent or straight to the app: first-party, so straight on (maybe via /login/continue).
    while !to_app.starts_with(RP_REDIRECT) {
        let r = browser.get(lb.next(&to_app)).send().await.unwrap();
        assert_eq!(r.status(), 303, "{to_app}");
        to_app = location(&r);
    }
    let code = query(&to_app)["code"].clone();

    // The code on one replica, the refresh on the other, userinfo on the first.
    let token = |form: Vec<(&'static str, String)>| {
        let url = lb.next("/token");
        async move {
            backchannel()
                .post(url)
                .basic_auth(RP_ID, Some(RP_SECRET))
                .form(&form)
                .send()
                .await
                .unwrap()
        }
    };
    let r = token(vec![
        ("grant_type", "authorization_code".into()),
        ("code", code.clone()),
        ("redirect_uri", RP_REDIRECT.into()),
    ])
    .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let tokens: serde_json::Value = r.json().await.unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let r = token(vec![
        ("grant_type", "refresh_token".into()),
        ("refresh_token", refresh.clone()),
    ])
    .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let rotated: serde_json::Value = r.json().await.unwrap();
    // The old refresh token is spent on every replica: its reuse is refused.
    let r = token(vec![
        ("grant_type", "refresh_token".into()),
        ("refresh_token", refresh),
    ])
    .await;
    assert_eq!(r.status(), 400);
    let r = backchannel()
        .get(lb.next("/userinfo"))
        .bearer_auth(rotated["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    // The reuse revoked the family: the access token of the rotation is dead too, everywhere.
    assert_eq!(r.status(), 401);
    // The code was spent on the other replica.
    let r = token(vec![
        ("grant_type", "authorization_code".into()),
        ("code", code),
        ("redirect_uri", RP_REDIRECT.into()),
    ])
    .await;
    assert_eq!(r.status(), 400);

    // Smart lockout counts wrong passwords on both replicas together.
    let mut last = String::new();
    for i in 0..10 {
        let b = browser_from("203.0.113.70");
        last = submit_password_via(&lb, &b, &authorize, &format!("guess-{i}"))
            .await
            .text()
            .await
            .unwrap();
    }
    assert!(last.contains("temporarily locked"), "{last}");

    // Self-service password reset, each step on the other replica: the address, then the
    // authenticator's code with the new password. (The lockout above is for the unfamiliar
    // network; the reset comes from alice's own.)
    let alice = a.state.store.user_by_email(ALICE).await.unwrap().unwrap();
    server::mfa::register_totp(&a.state, &alice.id, "JBSWY3DPEHPK3PXP")
        .await
        .unwrap();
    let page = browser
        .get(lb.next("/password/reset"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut form = hidden_inputs(&page);
    form.push(("email".into(), ALICE.into()));
    let page = browser
        .post(lb.next("/password/reset"))
        .form(&form)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut form = hidden_inputs(&page);
    form.push(("code".into(), crate::mfa::totp_at("JBSWY3DPEHPK3PXP", now)));
    form.push(("new_password".into(), "alices-replicated-password".into()));
    form.push((
        "confirm_password".into(),
        "alices-replicated-password".into(),
    ));
    let page = browser
        .post(lb.next("/password/reset/new"))
        .form(&form)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Your password was reset"), "{page}");

    // A key rotated on one replica: once both have re-read the keys (every 30 s), both publish
    // it, and it signs only after the propagation time, so no replica meets a token under a key
    // it does not know.
    let old_kid = a
        .state
        .keys()
        .active(protocol::jwt::SigningAlg::ES256)
        .unwrap()
        .kid
        .clone();
    let new_kid = server::keys::rotate(
        &a.state.store,
        protocol::jwt::SigningAlg::ES256,
        a.state.now(),
    )
    .await
    .unwrap();
    for t in [&a, &b] {
        server::server::reload_keys(&t.state).await;
        assert_eq!(
            t.state
                .keys()
                .active(protocol::jwt::SigningAlg::ES256)
                .unwrap()
                .kid,
            old_kid,
            "not signing with it yet"
        );
        let jwks: serde_json::Value = serde_json::from_slice(&t.state.jwks()).unwrap();
        assert!(
            jwks["keys"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kid"] == new_kid.as_str())
        );
    }
    for clock in [&clock_a, &clock_b] {
        clock.advance(server::keys::PROPAGATION_SECS + 1);
    }
    for t in [&a, &b] {
        server::server::reload_keys(&t.state).await;
        assert_eq!(
            t.state
                .keys()
                .active(protocol::jwt::SigningAlg::ES256)
                .unwrap()
                .kid,
            new_kid
        );
    }

    a.shutdown().await;
    b.shutdown().await;
    let _ = sqlx::Executor::execute(
        &mut admin,
        sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")),
    )
    .await;
}
