//! Faults under load: the database going away and coming back while clients sign in, redeem
//! codes and refresh (503 pages and `temporarily_unavailable` meanwhile, service again without a
//! restart, nothing answered lost), and SIGTERM while requests are in flight (each finishes
//! with its normal answer, new connections are refused, the process exits 0).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::observability::Proxy;
use crate::support::*;

/// Longest any one request may take before the test calls it a hang.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

fn client(cookies: bool) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls())
        .cookie_store(cookies)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(REQUEST_TIMEOUT)
        .build()
        .unwrap()
}

/// A database of its own on the test PostgreSQL server, dropped at the end.
struct PgDatabase {
    base: String,
    name: String,
}

impl PgDatabase {
    async fn create() -> Option<Self> {
        use sqlx::Connection;
        let base = std::env::var("TENANTD_TEST_DATABASE_URL").ok()?;
        let name = format!("tenantd_e2e_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
        sqlx::Executor::execute(
            &mut admin,
            sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")),
        )
        .await
        .unwrap();
        Some(Self { base, name })
    }

    async fn drop_it(self) {
        use sqlx::Connection;
        if let Ok(mut admin) = sqlx::PgConnection::connect(&self.base).await {
            let _ = sqlx::Executor::execute(
                &mut admin,
                sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                )),
            )
            .await;
        }
    }
}

/// What a step of a flow came to: its expected answer, a clear "try later", or anything else.
enum Bad {
    Unavailable,
    Unexpected(String),
}

struct Got {
    location: String,
    body: String,
}

/// Checks one answer: `expected`, or a 503 that says so clearly (the HTML page at the browser
/// routes, `temporarily_unavailable` JSON at the token endpoint); anything else (another
/// status, a 500, a timeout, a dropped connection) is unexpected.
async fn answer(
    what: &str,
    r: reqwest::Result<reqwest::Response>,
    expected: u16,
) -> Result<Got, Bad> {
    let r = r.map_err(|e| Bad::Unexpected(format!("{what}: {e}")))?;
    let status = r.status().as_u16();
    let location = location(&r);
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = r
        .text()
        .await
        .map_err(|e| Bad::Unexpected(format!("{what}: reading the body: {e}")))?;
    if status == expected {
        return Ok(Got { location, body });
    }
    if status == 503 {
        let clear = if what == "token" {
            content_type.starts_with("application/json")
                && serde_json::from_str::<serde_json::Value>(&body)
                    .is_ok_and(|v| v["error"] == "temporarily_unavailable")
        } else {
            content_type.starts_with("text/html") && body.contains("Temporarily unavailable")
        };
        if clear {
            return Err(Bad::Unavailable);
        }
    }
    let excerpt: String = body.chars().take(300).collect();
    Err(Bad::Unexpected(format!(
        "{what}: {status} ({content_type}) {excerpt}"
    )))
}

async fn token(t: &TestTenant, form: &[(&str, &str)]) -> Result<String, Bad> {
    let r = client(false)
        .post(t.url("/token"))
        .basic_auth(RP_ID, Some(RP_SECRET))
        .form(form)
        .send()
        .await;
    let got = answer("token", r, 200).await?;
    let v: serde_json::Value = serde_json::from_str(&got.body)
        .map_err(|e| Bad::Unexpected(format!("token: not JSON: {e}")))?;
    v["refresh_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| Bad::Unexpected(format!("token: no refresh token in {v}")))
}

/// A whole password sign-in in a new browser, then the code redeemed. `signed_in` is set once
/// the password was answered with the redirect to the app (a sign-in the log must keep).
async fn sign_in_and_redeem(t: &TestTenant, signed_in: &mut bool) -> Result<String, Bad> {
    let b = client(true);
    let got = answer("authorize", b.get(rp_authorize(t, "")).send().await, 200).await?;
    let mut form = hidden_inputs(&got.body);
    form.push(("email".into(), ALICE.into()));
    let got = answer(
        "email",
        b.post(t.url("/login")).form(&form).send().await,
        200,
    )
    .await?;
    let mut form = hidden_inputs(&got.body);
    form.push(("password".into(), ALICE_PW.into()));
    let got = answer(
        "password",
        b.post(t.url("/login/password")).form(&form).send().await,
        303,
    )
    .await?;
    if !got.location.starts_with(RP_REDIRECT) {
        return Err(Bad::Unexpected(format!(
            "password: redirected to {}",
            got.location
        )));
    }
    *signed_in = true;
    let code = query(&got.location)
        .get("code")
        .cloned()
        .ok_or_else(|| Bad::Unexpected(format!("no code in {}", got.location)))?;
    token(
        t,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", RP_REDIRECT),
        ],
    )
    .await
}

/// What the clients saw.
#[derive(Default)]
struct Tally {
    /// Flows (sign-in + redeem) and refreshes answered 200.
    sign_ins_ok: u64,
    refreshes_ok: u64,
    /// Clear 503s.
    unavailable: u64,
    /// Passwords answered with the redirect to the app.
    signed_in: u64,
    /// Refresh tokens from code redemptions answered 200 (each must still refresh after).
    issued: Vec<String>,
    /// The refresh chains' latest tokens.
    chains: Vec<String>,
    /// Refreshes answered 503 whose rotation had committed (the next use was reuse).
    committed_unanswered: u64,
    unexpected: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_cut_during_load_answers_503_then_serves_again_losing_nothing() {
    let Some(db) = PgDatabase::create().await else {
        println!("skipped: TENANTD_TEST_DATABASE_URL not set");
        return;
    };
    let url = url::Url::parse(&db.base).unwrap();
    let upstream = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
    let proxy = Proxy::to(&upstream).await;
    let mut through = url.clone();
    through.set_port(Some(proxy.port)).unwrap();
    through.set_path(&db.name);
    let (dir, _) = tenant_dir("faults");
    let t = Arc::new(start_at("faults", &dir, through.as_str(), "").await);
    let ready = || async {
        client(false)
            .get(t.url("/readyz"))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    assert_eq!(ready().await, 200);

    let tally = Arc::new(Mutex::new(Tally::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..2 {
        let (t, tally, stop) = (t.clone(), tally.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let mut signed_in = false;
                let r = sign_in_and_redeem(&t, &mut signed_in).await;
                let mut tally = tally.lock().unwrap();
                tally.signed_in += u64::from(signed_in);
                match r {
                    Ok(rt) => {
                        tally.sign_ins_ok += 1;
                        tally.issued.push(rt);
                    }
                    Err(Bad::Unavailable) => tally.unavailable += 1,
                    Err(Bad::Unexpected(e)) => tally.unexpected.push(e),
                }
            }
        }));
    }
    for _ in 0..2 {
        let first = alice_tokens(&*t, &browser()).await["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let (t, tally, stop) = (t.clone(), tally.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut chain = first;
            // The last refresh of `chain` was answered 503: its rotation may have committed
            // all the same (the connection was cut after the COMMIT reached the database), so
            // the token may be used already. Presenting it again is then reuse, refused and
            // the family revoked (RFC 9700 §4.14.2): the client starts a new chain.
            let mut unsure = false;
            while !stop.load(Ordering::SeqCst) {
                let r = token(
                    &t,
                    &[("grant_type", "refresh_token"), ("refresh_token", &chain)],
                )
                .await;
                let lost = {
                    let mut tally = tally.lock().unwrap();
                    match r {
                        Ok(rt) => {
                            tally.refreshes_ok += 1;
                            chain = rt;
                            unsure = false;
                            false
                        }
                        Err(Bad::Unavailable) => {
                            tally.unavailable += 1;
                            unsure = true;
                            false
                        }
                        Err(Bad::Unexpected(e)) if unsure && e.contains("invalid_grant") => {
                            tally.committed_unanswered += 1;
                            true
                        }
                        Err(Bad::Unexpected(e)) => {
                            tally.unexpected.push(e);
                            false
                        }
                    }
                };
                if lost {
                    let mut ignored = false;
                    match sign_in_and_redeem(&t, &mut ignored).await {
                        Ok(rt) => {
                            chain = rt;
                            unsure = false;
                        }
                        Err(Bad::Unavailable) => tally.lock().unwrap().unavailable += 1,
                        Err(Bad::Unexpected(e)) => tally.lock().unwrap().unexpected.push(e),
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tally.lock().unwrap().chains.push(chain);
        }));
    }
    // Waits (generously) until `done` holds of the tally.
    let until = |what: &'static str, done: Box<dyn Fn(&Tally) -> bool + Send>| {
        let tally = tally.clone();
        async move {
            let started = Instant::now();
            while !done(&tally.lock().unwrap()) {
                {
                    let t = tally.lock().unwrap();
                    assert!(
                        started.elapsed() < Duration::from_secs(60),
                        "{what}: {} sign-ins, {} refreshes, {} unavailable, unexpected {:?}",
                        t.sign_ins_ok,
                        t.refreshes_ok,
                        t.unavailable,
                        t.unexpected
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    until(
        "serving before the cut",
        Box::new(|t| t.sign_ins_ok >= 2 && t.refreshes_ok >= 4),
    )
    .await;

    proxy.cut();
    let started = Instant::now();
    assert_eq!(ready().await, 503, "the database is gone");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "answered in time"
    );
    let unavailable = tally.lock().unwrap().unavailable;
    until(
        "503s while the database is away",
        Box::new(move |t| t.unavailable >= unavailable + 6),
    )
    .await;

    proxy.restore();
    let mut status = 0;
    for _ in 0..100 {
        status = ready().await;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "ready again once the database is back");
    let (sign_ins, refreshes) = {
        let t = tally.lock().unwrap();
        (t.sign_ins_ok, t.refreshes_ok)
    };
    until(
        "serving again after the restore",
        Box::new(move |t| t.sign_ins_ok >= sign_ins + 2 && t.refreshes_ok >= refreshes + 4),
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }

    let tally = std::mem::take(&mut *tally.lock().unwrap());
    assert!(
        tally.unexpected.is_empty(),
        "only the expected answers or clear 503s: {:#?}",
        tally.unexpected
    );
    assert!(tally.unavailable > 0);
    // Nothing answered 200 is lost: every refresh token handed out still refreshes (the
    // chains' latest too), and every sign-in the app was sent back from is in the log.
    for rt in tally.issued.iter().chain(&tally.chains) {
        let r = rp_token(
            &*t,
            &[("grant_type", "refresh_token"), ("refresh_token", rt)],
        )
        .await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    let alice = t.state().store.user_by_email(ALICE).await.unwrap().unwrap();
    let logged = t
        .state()
        .store
        .list_sign_ins(&store::SignInFilter {
            user_id: Some(alice.id),
            success: Some(true),
            sign_in_event_type: Some(store::INTERACTIVE_USER.into()),
            limit: 100_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .len();
    // Two more interactive sign-ins opened the refresh chains.
    assert!(
        logged as u64 >= tally.signed_in + 2,
        "{logged} sign-in rows for {} sign-ins answered",
        tally.signed_in + 2
    );
    println!(
        "{} sign-ins, {} refreshes, {} clear 503s, {} refreshes committed but unanswered",
        tally.sign_ins_ok, tally.refreshes_ok, tally.unavailable, tally.committed_unanswered
    );
    let t = Arc::try_unwrap(t).ok().unwrap();
    t.tenant.shutdown().await;
    db.drop_it().await;
}

/// A raw HTTPS/1.1 connection (blocking rustls), so a request can be sent in two parts.
struct Raw {
    tls: rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>,
}

impl Raw {
    fn connect(port: u16) -> std::io::Result<Self> {
        let sock = std::net::TcpStream::connect(("127.0.0.1", port))?;
        sock.set_read_timeout(Some(REQUEST_TIMEOUT))?;
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let conn = rustls::ClientConnection::new(Arc::new(tls()), name).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, sock);
        // The handshake now: the server has accepted this connection once it is done.
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock)?;
        }
        Ok(Self { tls })
    }

    fn send(&mut self, bytes: &[u8]) {
        std::io::Write::write_all(&mut self.tls, bytes).unwrap();
        std::io::Write::flush(&mut self.tls).unwrap();
    }

    /// The status and `Location` of the answer.
    fn answer(&mut self) -> (u16, String) {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match std::io::Read::read(&mut self.tls, &mut byte) {
                Ok(1) => head.push(byte[0]),
                other => panic!(
                    "the answer ended early ({other:?}): {}",
                    String::from_utf8_lossy(&head)
                ),
            }
        }
        let head = String::from_utf8(head).unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let location = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("location")
                    .then(|| v.trim().to_owned())
            })
            .unwrap_or_default();
        (status, location)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_requests_in_flight_finish_then_refuses_and_exits_0() {
    let (t, cfg) = crate::durability::prepared().await;
    let port = url::Url::parse(t.issuer()).unwrap().port().unwrap();
    let mut serving = crate::durability::serve(&t, &cfg).await;
    // Four people at the password page, each on a connection of their own whose request head
    // and first half of the form are sent: requests the server is in the middle of.
    let mut in_flight = Vec::new();
    for _ in 0..4 {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let b = reqwest::Client::builder()
            .use_preconfigured_tls(tls())
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let r = b.get(rp_authorize(&t, "")).send().await.unwrap();
        let mut form = password_form(&t, &b, r, ALICE).await;
        form.push(("password".into(), ALICE_PW.into()));
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&form)
            .finish();
        let cookies = reqwest::cookie::CookieStore::cookies(
            &*jar,
            &url::Url::parse(&t.url("/login/password")).unwrap(),
        )
        .unwrap();
        let head = format!(
            "POST /login/password HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n\
             content-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\
             cookie: {}\r\n\r\n",
            body.len(),
            cookies.to_str().unwrap()
        );
        let (first, rest) = body.split_at(body.len() / 2);
        let (first, rest) = (format!("{head}{first}"), rest.to_owned());
        let (send_rest, wait) = std::sync::mpsc::channel::<()>();
        let conn = tokio::task::spawn_blocking(move || {
            let mut raw = Raw::connect(port).unwrap();
            raw.send(first.as_bytes());
            wait.recv().unwrap();
            raw.send(rest.as_bytes());
            raw.answer()
        });
        in_flight.push((send_rest, conn));
    }
    // Long enough for the server to have read each request's head and be waiting for its body.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let pid = serving.0.id().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    // The listener closes: a new connection is refused (give the signal a moment to land).
    let mut refused = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            refused = true;
            break;
        }
    }
    assert!(refused, "new connections are refused after SIGTERM");
    assert!(
        serving.0.try_wait().unwrap().is_none(),
        "still running while requests are in flight"
    );

    // Each request in flight gets its normal answer: the redirect back to the app with a code.
    for (send_rest, conn) in in_flight {
        send_rest.send(()).unwrap();
        let (status, location) = conn.await.unwrap();
        assert_eq!(status, 303, "{location}");
        assert!(location.starts_with(RP_REDIRECT), "{location}");
        assert!(query(&location).contains_key("code"), "{location}");
    }
    let started = Instant::now();
    let exit = loop {
        if let Some(exit) = serving.0.try_wait().unwrap() {
            break exit;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "exits once the requests are done"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "a clean stop: {exit:?}");
}

/// The home going down in the middle of a guest's sign-in: the resource cannot redeem the
/// home's code, and says so on a clean page (the app gets `temporarily_unavailable`), not an
/// error; when the home is back on its address and database, guests sign in again without the
/// resource being touched.
#[tokio::test]
async fn home_down_during_a_guest_sign_in_is_refused_cleanly_and_sign_ins_recover() {
    use crate::federation::*;
    // The home is stopped and started again on its address.
    let home_l = stable_listener();
    let res_l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (home_issuer, res_issuer) = (issuer_of(&home_l), issuer_of(&res_l));
    let home_port = home_l.local_addr().unwrap().port();
    let (hd, hdb) = tenant_dir("contoso");
    let home_extra = home_app_toml(&res_issuer);
    let home = start_on("contoso", home_l, &hd, &hdb, &home_extra).await;
    add_user(&home, BOB, BOB_PW, false).await;
    let (rd, rdb) = tenant_dir("fabrikam");
    let resource = start_on(
        "fabrikam",
        res_l,
        &rd,
        &rdb,
        &partner_toml(&home_issuer, &format!("{TRUSTED}\ntimeout_ms = 1000")),
    )
    .await;
    invite(&resource, BOB, "contoso").await;
    let p = Pair { home, resource };
    app_redirect(
        federated_sign_in(&p, &browser(), &rp_authorize(&p.resource, ""), BOB, BOB_PW).await,
    );

    // Bob is at the home and sent back with a code; the home dies before the resource
    // redeems it.
    let b = browser();
    let r = submit_email(&b, &p.resource.issuer, &rp_authorize(&p.resource, ""), BOB).await;
    let callback = through_home(&p.ends(), &b, r, BOB_PW).await;
    let Pair { home, resource } = p;
    home.tenant.shutdown().await;
    let r = b.get(&callback).send().await.unwrap();
    let status = r.status().as_u16();
    let page = r.text().await.unwrap();
    assert_eq!(status, 503, "{page}");
    let (page, oauth) = refusal(Ended::Page(status, page));
    assert!(page.contains("not responding"), "{page}");
    assert_eq!(oauth["error"], "temporarily_unavailable");

    // The home is back: a new sign-in goes through.
    let home = start_on(
        "contoso",
        std::net::TcpListener::bind(("127.0.0.1", home_port)).unwrap(),
        &hd,
        &hdb,
        &home_extra,
    )
    .await;
    let p = Pair { home, resource };
    app_redirect(
        federated_sign_in(&p, &browser(), &rp_authorize(&p.resource, ""), BOB, BOB_PW).await,
    );
}
