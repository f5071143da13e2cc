//! Observability: `/metrics` in Prometheus' text format counts requests per route (the route's
//! pattern, not its ids), sign-ins by result and error code, Conditional Access blocks by
//! policy and risk detections by type; `/readyz` follows the database.

use crate::support::*;

#[tokio::test]
async fn metrics_count_routes_sign_ins_blocks_and_detections() {
    // The resource's shipped policies: a sign-in from the lab's "botnet" is high risk and blocked.
    let policies = crate::risk::policies_copy("fabrikam");
    let t = start_with("metrics", &crate::risk::risk_toml(&policies)).await;
    let b = browser();
    let redirect = sign_in(&t, &b, &rp_authorize(&t, ""), ALICE, ALICE_PW).await;
    assert!(redirect.starts_with(RP_REDIRECT), "{redirect}");
    // A wrong password, then a blocked sign-in (50053 from a malicious IP).
    for (ip, password) in [("192.0.2.1", "wrong"), ("203.0.113.66", ALICE_PW)] {
        let b = browser_from(ip);
        let r = b.get(rp_authorize(&t, "")).send().await.unwrap();
        let mut form = password_form(&t, &b, r, ALICE).await;
        form.push(("password".into(), password.into()));
        let r = b
            .post(t.url("/login/password"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert!(!r.status().is_server_error(), "{}", r.status());
    }
    let r = backchannel().get(t.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = r.text().await.unwrap();
    let has = |needle: &str| {
        text.lines()
            .any(|l| !l.starts_with('#') && needle.split('|').all(|part| l.contains(part)))
    };
    assert!(
        has("tenantd_sign_ins_total{|tenant=\"metrics\"|result=\"success\"|error_code=\"0\""),
        "{text}"
    );
    assert!(
        has("tenantd_sign_ins_total{|tenant=\"metrics\"|result=\"failure\"|error_code=\"50126\""),
        "{text}"
    );
    assert!(
        has(
            "tenantd_conditional_access_blocks_total{|tenant=\"metrics\"|policy=\"block-high-sign-in-risk\""
        ),
        "{text}"
    );
    assert!(
        has("tenantd_risk_detections_total{|tenant=\"metrics\"|type=\"maliciousIPAddress\""),
        "{text}"
    );
    assert!(
        has("tenantd_http_requests_total{|route=\"/authorize\"|method=\"GET\"|status=\"303\""),
        "{text}"
    );
    assert!(
        has("tenantd_http_request_duration_seconds_bucket{|route=\"/login/password\""),
        "{text}"
    );
    assert!(has("tenantd_db_connections{|state=\"idle\""), "{text}");
    // Routes are their patterns: no user ids or query strings in the labels.
    assert!(!text.contains("interaction="), "{text}");
}

/// A TCP proxy in front of the local PostgreSQL that can be cut (every connection dropped, new
/// ones refused) and restored: the database going away and coming back, without touching the
/// server other tests use.
pub(crate) struct Proxy {
    pub(crate) port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    links: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    pub(crate) async fn to(upstream: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let links = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (u, l, upstream) = (up.clone(), links.clone(), upstream.to_owned());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !u.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped: connection refused, as it were
                }
                let upstream = upstream.clone();
                l.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                }));
            }
        });
        Self { port, up, links }
    }

    pub(crate) fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    pub(crate) fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
async fn readyz_follows_the_database_away_and_back_without_a_restart() {
    use sqlx::Connection;
    let Ok(base) = std::env::var("TENANTD_TEST_DATABASE_URL") else {
        println!("skipped: TENANTD_TEST_DATABASE_URL not set");
        return;
    };
    let url = url::Url::parse(&base).unwrap();
    let name = format!("tenantd_e2e_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::Executor::execute(
        &mut admin,
        sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")),
    )
    .await
    .unwrap();
    let upstream = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
    let proxy = Proxy::to(&upstream).await;
    let mut through = url.clone();
    through.set_port(Some(proxy.port)).unwrap();
    through.set_path(&name);
    let (dir, _) = tenant_dir("readyz");
    let t = start_at("readyz", &dir, through.as_str(), "").await;
    let ready = || async {
        backchannel()
            .get(t.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(ready().await, 200);
    proxy.cut();
    let started = std::time::Instant::now();
    assert_eq!(ready().await, 503, "the database is gone");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "answered in time"
    );
    // A person meanwhile gets a clear 503 page, an app's back channel `temporarily_unavailable`.
    let r = browser().get(rp_authorize(&t, "")).send().await.unwrap();
    let status = r.status();
    let page = r.text().await.unwrap();
    assert_eq!(status, 503, "{page}");
    assert!(page.contains("Temporarily unavailable"), "{page}");
    proxy.restore();
    let mut status = 0;
    for _ in 0..50 {
        status = ready().await;
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "ready again once the database is back");
    // And it serves: a sign-in goes through.
    let redirect = sign_in(&t, &browser(), &rp_authorize(&t, ""), ALICE, ALICE_PW).await;
    assert!(redirect.starts_with(RP_REDIRECT), "{redirect}");
    t.tenant.shutdown().await;
    let _ = sqlx::Executor::execute(
        &mut admin,
        sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")),
    )
    .await;
}

/// `--log-format json` writes one JSON object per line; text logs on a pipe carry no colour.
#[tokio::test]
async fn logs_are_json_lines_when_asked_and_plain_text_on_a_pipe() {
    for json in [true, false] {
        let (dir, db) = tenant_dir("logs");
        let port = stable_port();
        let issuer = format!("https://127.0.0.1:{port}");
        let cfg = dir.join("tenant.toml");
        std::fs::write(
            &cfg,
            config_text("logs", &issuer, &format!("127.0.0.1:{port}"), &db, ""),
        )
        .unwrap();
        let mut args = vec!["serve", "--config", cfg.to_str().unwrap()];
        if json {
            args.insert(0, "--log-format=json");
        }
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_tenantd-e2e"))
            .args(&args)
            .env("TENANTD_LOG", "info")
            .env_remove("TENANTD_LOG_FORMAT")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut serving = crate::federation::Serving(child);
        crate::federation::wait_ready(&issuer).await;
        let mut stdout = serving.0.stdout.take().unwrap();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &serving.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        assert!(serving.0.wait().unwrap().success(), "a clean stop");
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text).unwrap();
        let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        assert!(!lines.is_empty(), "it logged something");
        assert!(
            !text.contains('\u{1b}'),
            "no terminal colour codes on a pipe: {text}"
        );
        for line in lines {
            let parsed = serde_json::from_str::<serde_json::Value>(line);
            if json {
                let v = parsed.unwrap_or_else(|e| panic!("{e}: {line}"));
                assert!(
                    v["level"].is_string() && v["timestamp"].is_string(),
                    "{line}"
                );
            } else {
                assert!(parsed.is_err(), "text, not JSON: {line}");
            }
        }
    }
}
