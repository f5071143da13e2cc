//! Scale-out: two replicas of one tenant on one PostgreSQL database, started together on a fresh
//! database (the migrations take PostgreSQL's advisory lock, so both come up), behind "a load
//! balancer" that sends every step of a flow to the other replica: the sign-in pages, the code,
//! the token exchange, a refresh and userinfo all work across them, smart lockout counts the
//! wrong passwords of both, a password reset's steps cross them, and a key rotated on one is published by both before either signs
//! with it. A resource tenant's replicas also carry guests' federated sign-ins, MFA and
//! Conditional Access policies created through either one's admin API.

use std::net::TcpListener;
use std::sync::Arc;

use server::{Config, OffsetClock, Tenant};

use crate::support::*;

/// One replica: the shared issuer and database, its own listener.
async fn replica(issuer: &str, db: &str) -> (Tenant, u16, Arc<OffsetClock>) {
    replica_of("replicated", issuer, db, "").await
}

/// A replica of tenant `id` with `extra` config.
async fn replica_of(
    id: &str,
    issuer: &str,
    db: &str,
    extra: &str,
) -> (Tenant, u16, Arc<OffsetClock>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let text = config_text(id, issuer, &format!("127.0.0.1:{port}"), db, extra);
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
    submit_password_as(lb, b, authorize, ALICE, password).await
}

/// [`submit_password_via`] for `email`.
async fn submit_password_as(
    lb: &Balancer,
    b: &reqwest::Client,
    authorize: &str,
    email: &str,
    password: &str,
) -> reqwest::Response {
    let page = submit_email_via(lb, b, authorize, email)
        .await
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

/// The app's authorize request, then `email` on the sign-in page, each step through the
/// balancer: the tenant's answer to the address.
async fn submit_email_via(
    lb: &Balancer,
    b: &reqwest::Client,
    authorize: &str,
    email: &str,
) -> reqwest::Response {
    let page = sign_in_page(b, lb.next(authorize)).await;
    let mut form = hidden_inputs(&page);
    form.push(("email".into(), email.into()));
    b.post(lb.next("/login")).form(&form).send().await.unwrap()
}

/// A fresh PostgreSQL database: its URL, its name and the admin connection that drops it.
/// `None` (the test skips) without `TENANTD_TEST_DATABASE_URL`.
async fn fresh_database() -> Option<(url::Url, String, sqlx::PgConnection)> {
    use sqlx::Connection;
    let Ok(base) = std::env::var("TENANTD_TEST_DATABASE_URL") else {
        println!("skipped: TENANTD_TEST_DATABASE_URL not set");
        return None;
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
    Some((db, name, admin))
}

async fn drop_database(mut admin: sqlx::PgConnection, name: &str) {
    let _ = sqlx::Executor::execute(
        &mut admin,
        sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")),
    )
    .await;
}

#[tokio::test]
async fn every_step_of_a_flow_may_land_on_either_replica() {
    let Some((db, name, admin)) = fresh_database().await else {
        return;
    };
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
    drop_database(admin, &name).await;
}

/// Follows redirects at the tenant, each hop through the balancer, until one leaves for the
/// app (`Ok`, its location) or a page is answered (`Err`: status and text).
async fn follow_to_app(
    lb: &Balancer,
    b: &reqwest::Client,
    mut location_: String,
) -> Result<String, (u16, String)> {
    while !location_.starts_with(RP_REDIRECT) {
        let r = b.get(lb.next(&location_)).send().await.unwrap();
        if r.status() != 303 {
            return Err((r.status().as_u16(), r.text().await.unwrap()));
        }
        location_ = location(&r);
    }
    Ok(location_)
}

/// A guest's sign-in at the replicated resource: the resource's steps alternate replicas, the
/// home's are the home's. Ends where [`follow_to_app`] ends.
async fn guest_sign_in_via(
    lb: &Balancer,
    home: &str,
    b: &reqwest::Client,
    authorize: &str,
    email: &str,
    password: &str,
) -> Result<String, (u16, String)> {
    let r = submit_email_via(lb, b, authorize, email).await;
    assert_eq!(r.status(), 303, "home realm discovery");
    let to_home = location(&r);
    assert!(to_home.starts_with(home), "{to_home}");
    let page = sign_in_page(b, &to_home).await;
    let mut form = hidden_inputs(&page);
    form.push(("password".into(), password.into()));
    let r = b
        .post(format!("{home}/login/password"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "the home accepts the password");
    let callback = location(&r);
    assert!(
        callback.starts_with(&format!("{}/federation/callback", lb.issuer)),
        "{callback}"
    );
    follow_to_app(lb, b, callback).await
}

/// Guests, MFA and a policy change, over two replicas of a resource tenant on one PostgreSQL
/// database: a guest's federated sign-in (its state, nonce and PKCE verifier kept in the
/// database) starts on one replica and returns from the home to the other; Conditional Access
/// policies created through one replica's admin API hold on the other once it has followed
/// the database (every 30 s; called here); a member's MFA code page is served by one replica
/// and the code checked by the other; a blocked guest is blocked by either.
#[tokio::test]
async fn guests_mfa_and_policy_changes_cross_replicas() {
    use crate::federation::{BOB, BOB_PW, CAROL, CAROL_PW, TRUSTED, home_app_toml, partner_toml};
    let Some((db, name, admin)) = fresh_database().await else {
        return;
    };
    let front = TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = issuer_of(&front);
    drop(front);
    let (hd, hdb) = tenant_dir("contoso");
    let home = start_on(
        "contoso",
        TcpListener::bind("127.0.0.1:0").unwrap(),
        &hd,
        &hdb,
        &home_app_toml(&issuer),
    )
    .await;
    add_user(&home, ALICE, ALICE_PW, false).await;
    add_user(&home, BOB, BOB_PW, false).await;
    let extra = format!("{}{ADMIN_APP}", partner_toml(&home.issuer, TRUSTED));
    let ((a, port_a, _), (b, port_b, _)) = tokio::join!(
        replica_of("fabrikam", &issuer, db.as_str(), &extra),
        replica_of("fabrikam", &issuer, db.as_str(), &extra)
    );
    let lb = Balancer {
        issuer: issuer.clone(),
        ports: [port_a, port_b],
        step: 0.into(),
    };
    let s = &a.state;
    for email in [ALICE, BOB] {
        server::guests::invite(&s.store, &s.config, email, "contoso", None, None, s.now())
            .await
            .unwrap();
    }
    let bob = s.store.user_by_email(BOB).await.unwrap().unwrap();
    let carol = s
        .store
        .insert_user(&store::NewUser {
            id: uuid::Uuid::new_v4().to_string(),
            email: CAROL.into(),
            display_name: "Carol".into(),
            given_name: None,
            family_name: None,
            password_hash: Some(s.passwords.hash(CAROL_PW).await.unwrap()),
            must_change_password: false,
            now: s.now(),
        })
        .await
        .unwrap();
    const CAROL_TOTP: &str = "JBSWY3DPEHPK3PXPJBSWY3DP";
    server::mfa::register_totp(s, &carol.id, CAROL_TOTP)
        .await
        .unwrap();

    // Two policies through replica A's admin API; B follows the database.
    let at_a = Remote(format!("https://127.0.0.1:{port_a}"));
    let token = admin_token(&at_a).await;
    for (display, user, control) in [
        ("Block bob", &bob.id, "block"),
        ("MFA for carol", &carol.id, "mfa"),
    ] {
        let r = backchannel()
            .post(at_a.url("/v1.0/identity/conditionalAccess/policies"))
            .bearer_auth(&token)
            .json(&serde_json::json!({
                "displayName": display,
                "state": "enabled",
                "conditions": {
                    "users": {"includeUsers": [user]},
                    "applications": {"includeApplications": ["All"]},
                },
                "grantControls": {"operator": "OR", "builtInControls": [control]},
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
    let before = b.state.protection.policies().api.len();
    assert_eq!(before, 0, "B has not looked yet");
    server::server::follow_policies(&b.state).await;
    assert_eq!(b.state.protection.policies().api.len(), 2);

    let authorize = format!(
        "/authorize?response_type=code&client_id={RP_ID}&redirect_uri={}&scope=openid%20offline_access&state=st-1&nonce=n-1",
        urlenc(RP_REDIRECT)
    );
    // Alice, a guest: in through either replica, her tokens work on both.
    let to_app = guest_sign_in_via(&lb, &home.issuer, &browser(), &authorize, ALICE, ALICE_PW)
        .await
        .unwrap_or_else(|(s, page)| panic!("{s}: {page}"));
    let code = query(&to_app)["code"].clone();
    let r = backchannel()
        .post(lb.next("/token"))
        .basic_auth(RP_ID, Some(RP_SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", RP_REDIRECT),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let tokens: serde_json::Value = r.json().await.unwrap();
    let r = backchannel()
        .post(lb.next("/token"))
        .basic_auth(RP_ID, Some(RP_SECRET))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    // Bob, a guest the policy blocks: refused whichever replica judges him.
    for _ in 0..2 {
        let (status, page) =
            guest_sign_in_via(&lb, &home.issuer, &browser(), &authorize, BOB, BOB_PW)
                .await
                .unwrap_err();
        assert_eq!(status, 403, "{page}");
        assert!(page.contains("53003"), "{page}");
    }

    // Carol, a member the policy asks for MFA: the code page on one replica, the code on the
    // other.
    let br = browser();
    let r = submit_password_as(&lb, &br, &authorize, CAROL, CAROL_PW).await;
    assert_eq!(r.status(), 303);
    let (status, page) = follow_to_app(&lb, &br, location(&r)).await.unwrap_err();
    assert_eq!(status, 200);
    assert!(page.contains("action=\"/login/mfa\""), "{page}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // The page's first form (it has others: recovery codes, codes by email).
    let form = vec![
        ("interaction", crate::mfa::hidden(&page, "interaction")),
        ("csrf_token", crate::mfa::hidden(&page, "csrf_token")),
        ("code", crate::mfa::totp_at(CAROL_TOTP, now)),
    ];
    let r = br
        .post(lb.next("/login/mfa"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let to_app = follow_to_app(&lb, &br, location(&r))
        .await
        .unwrap_or_else(|(s, page)| panic!("{s}: {page}"));
    assert!(query(&to_app).contains_key("code"), "{to_app}");

    a.shutdown().await;
    b.shutdown().await;
    home.tenant.shutdown().await;
    drop_database(admin, &name).await;
}
