//! Test harness: real tenants on ephemeral loopback ports with real TLS (a dev CA generated once
//! per test process), a browser-like client (cookie jar, manual redirects), and helpers that
//! walk the sign-in pages the way a person would.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use reqwest::header::LOCATION;
use server::{Config, OffsetClock, Tenant};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

pub const ALICE: &str = "alice@contoso.test";
pub const ALICE_PW: &str = "alice-test-password";
pub const RP_ID: &str = "lab-rp";
pub const RP_SECRET: &str = "lab-rp-secret";
pub const RP_REDIRECT: &str = "http://127.0.0.1:9555/callback";
pub const RP_LOGOUT: &str = "http://127.0.0.1:9555/";
pub const PUBLIC_ID: &str = "spa";
pub const PUBLIC_REDIRECT: &str = "http://127.0.0.1:9556/cb";
pub const THIRD_ID: &str = "partner-app";
pub const THIRD_SECRET: &str = "partner-app-secret";
pub const THIRD_REDIRECT: &str = "https://partner.test/cb";
pub const CC_ID: &str = "daemon";
pub const CC_SECRET: &str = "daemon-secret-123";
pub const JWT_ID: &str = "jwt-client";
pub const JWT_REDIRECT: &str = "https://jwt.test/cb";

/// Generated once per process: the dev CA and leaf, plus the private_key_jwt client key.
pub struct Fixtures {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_key_pem: String,
    pub client_kid: String,
    pub client_jwks: PathBuf,
    /// The master key of tenants on PostgreSQL.
    pub master_key: PathBuf,
}

pub fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let dir = std::env::temp_dir().join(format!("tenantd-e2e-{}", uuid::Uuid::new_v4()));
        let (certs, _) = tenantd::certs::ensure(&dir.join("certs"), true).unwrap();
        let client_key_pem = server::keys::generate_pem(protocol::jwt::SigningAlg::ES256).unwrap();
        let k = protocol::jwt::SigningKey::from_pkcs8_pem(
            protocol::jwt::SigningAlg::ES256,
            &client_key_pem,
            0,
            None,
        )
        .unwrap();
        let client_jwks = dir.join("client-jwks.json");
        std::fs::write(
            &client_jwks,
            serde_json::json!({ "keys": [k.public_jwk()] }).to_string(),
        )
        .unwrap();
        let master_key = dir.join("master.key");
        server::vault::create_key_file(&master_key).unwrap();
        Fixtures {
            master_key,
            ca: certs.ca,
            cert: certs.cert,
            key: certs.key,
            client_key_pem,
            client_kid: k.kid.clone(),
            client_jwks,
            dir,
        }
    })
}

/// A running tenant for one test.
pub struct TestTenant {
    pub tenant: Tenant,
    pub issuer: String,
    pub clock: Arc<OffsetClock>,
    pub dir: PathBuf,
}

impl TestTenant {
    pub fn state(&self) -> &server::AppState {
        &self.tenant.state
    }
}

/// A tenant the helpers below can drive over HTTP: in this process ([`TestTenant`]) or a
/// `tenantd serve` process ([`Remote`]).
pub trait Issuer {
    fn issuer(&self) -> &str;

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.issuer(), path)
    }
}

impl Issuer for TestTenant {
    fn issuer(&self) -> &str {
        &self.issuer
    }
}

/// A tenant served by another process, known by its issuer.
pub struct Remote(pub String);

impl Issuer for Remote {
    fn issuer(&self) -> &str {
        &self.0
    }
}

/// The config text for a test tenant; `extra` is appended (more apps, overrides).
pub fn config_text(id: &str, issuer: &str, listen: &str, db: &str, extra: &str) -> String {
    let f = fixtures();
    format!(
        r#"
[tenant]
id = "{id}"
display_name = "Tenant {id}"
issuer = "{issuer}"
[server]
listen = "{listen}"
trusted_proxies = ["127.0.0.1/32"]
[server.tls]
cert = "{cert}"
key = "{key}"
[database]
url = "{db}"
[[apps]]
client_id = "{RP_ID}"
name = "Lab RP"
client_secret = "{RP_SECRET}"
redirect_uris = ["{RP_REDIRECT}"]
post_logout_redirect_uris = ["{RP_LOGOUT}"]
first_party = true
[[apps]]
client_id = "{PUBLIC_ID}"
name = "Single-page app"
token_endpoint_auth_method = "none"
redirect_uris = ["{PUBLIC_REDIRECT}"]
first_party = true
[[apps]]
client_id = "{THIRD_ID}"
name = "Partner App"
client_secret = "{THIRD_SECRET}"
token_endpoint_auth_method = "client_secret_post"
redirect_uris = ["{THIRD_REDIRECT}"]
[[apps]]
client_id = "{CC_ID}"
name = "Daemon"
client_secret = "{CC_SECRET}"
grant_types = ["client_credentials"]
scopes = ["reports.read"]
[[apps]]
client_id = "{JWT_ID}"
name = "JWT client"
jwks_file = "{jwks}"
redirect_uris = ["{JWT_REDIRECT}"]
first_party = true
{extra}
{secrets}"#,
        cert = f.cert.display(),
        key = f.key.display(),
        jwks = f.client_jwks.display(),
        // A SQLite tenant keeps its generated key beside the database; PostgreSQL needs one
        // named (replicas of one tenant share it).
        secrets = if db.starts_with("postgres") {
            format!(
                "[secrets]\nmaster_key_file = \"{}\"\n",
                f.master_key.display()
            )
        } else {
            String::new()
        },
    )
}

/// Start a tenant on an ephemeral port with alice seeded.
pub async fn start(id: &str) -> TestTenant {
    start_with(id, "").await
}

pub async fn start_with(id: &str, extra: &str) -> TestTenant {
    let (dir, db) = tenant_dir(id);
    start_at(id, &dir, &db, extra).await
}

/// Start (or restart) a tenant whose database is `db`.
pub async fn start_at(id: &str, dir: &Path, db: &str, extra: &str) -> TestTenant {
    let t = start_on(
        id,
        TcpListener::bind("127.0.0.1:0").unwrap(),
        dir,
        db,
        extra,
    )
    .await;
    if t.state()
        .store
        .user_by_email(ALICE)
        .await
        .unwrap()
        .is_none()
    {
        add_user(&t, ALICE, ALICE_PW, false).await;
    }
    t
}

/// A fresh directory and SQLite URL for a tenant.
pub fn tenant_dir(id: &str) -> (PathBuf, String) {
    let dir = fixtures()
        .dir
        .join(format!("{id}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = format!("sqlite://{}", dir.join("tenant.db").display());
    (dir, db)
}

/// The issuer a tenant bound to `listener` has.
pub fn issuer_of(listener: &TcpListener) -> String {
    format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    )
}

/// A loopback listener on a port the kernel never hands out by itself, for a server that a
/// test stops and starts again on the same address, or whose port it passes to another
/// process. Every `bind(…:0)` and every outgoing connection of the other tests takes its port
/// from the ephemeral range (`ip_local_port_range`), so a port from there that is free for a
/// moment can be taken in that moment. These ports lie just below that range; each call in
/// this process tries the next one, so two tests never get the same port.
pub fn stable_listener() -> TcpListener {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let span = ephemeral_low.saturating_sub(1024).min(4096);
    assert!(
        span > 0,
        "no ports below the ephemeral range {ephemeral_low}"
    );
    // Another test process may be running at the same time: it starts elsewhere in the span.
    let start = std::process::id() % span;
    for _ in 0..span {
        let offset = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        let port = u16::try_from(ephemeral_low - 1 - offset).unwrap();
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            return listener;
        }
    }
    panic!("no free loopback port below {ephemeral_low}");
}

/// A port from [`stable_listener`], free again, for a process the test starts.
pub fn stable_port() -> u16 {
    stable_listener().local_addr().unwrap().port()
}

/// Start a tenant on an already bound listener, seeding nobody.
pub async fn start_on(
    id: &str,
    listener: TcpListener,
    dir: &Path,
    db: &str,
    extra: &str,
) -> TestTenant {
    let addr = listener.local_addr().unwrap();
    let issuer = issuer_of(&listener);
    let text = config_text(id, &issuer, &addr.to_string(), db, extra);
    let config = Config::parse(&text, "test.toml").unwrap();
    let clock = Arc::new(OffsetClock::default());
    let tenant = Tenant::start(config, listener, clock.clone())
        .await
        .unwrap();
    TestTenant {
        tenant,
        issuer,
        clock,
        dir: dir.to_path_buf(),
    }
}

pub async fn add_user(
    t: &TestTenant,
    email: &str,
    password: &str,
    must_change: bool,
) -> store::User {
    let hash = t.state().passwords.hash(password).await.unwrap();
    t.state()
        .store
        .insert_user(&store::NewUser {
            id: uuid::Uuid::new_v4().to_string(),
            email: email.into(),
            display_name: if email == ALICE {
                "Alice Smith".into()
            } else {
                email.split('@').next().unwrap_or_default().into()
            },
            given_name: (email == ALICE).then(|| "Alice".into()),
            family_name: (email == ALICE).then(|| "Smith".into()),
            password_hash: Some(hash),
            must_change_password: must_change,
            now: t.state().now(),
        })
        .await
        .unwrap()
}

pub fn tls() -> rustls::ClientConfig {
    server::tls::client_config(Some(&fixtures().ca)).unwrap()
}

/// A browser: cookie jar, redirects not followed (tests look at each hop).
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls())
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A back-channel client (no cookies, no redirects).
pub fn backchannel() -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Hidden inputs of the first form on a page.
pub fn hidden_inputs(html: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find("<input type=\"hidden\" name=\"") {
        rest = &rest[i + 27..];
        let Some(end) = rest.find('"') else { break };
        let name = rest[..end].to_owned();
        let Some(v) = rest.find("value=\"") else {
            break;
        };
        let after = &rest[v + 7..];
        let Some(vend) = after.find('"') else { break };
        out.push((name, html_unescape(&after[..vend])));
        rest = &after[vend..];
    }
    out
}

fn html_unescape(s: &str) -> String {
    s.replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#38;", "&")
        .replace("&amp;", "&")
}

pub fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get(LOCATION)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// Query parameters of a URL.
pub fn query(url: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// The standard authorize query for the confidential lab RP.
pub fn rp_authorize(t: &impl Issuer, extra: &str) -> String {
    t.url(&format!(
        "/authorize?response_type=code&client_id={RP_ID}&redirect_uri={}&scope=openid%20profile%20email&state=st-1&nonce=n-1{extra}",
        urlenc(RP_REDIRECT)
    ))
}

pub fn urlenc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Follow an authorization URL through the sign-in pages with email + password, returning the
/// final redirect (to the client) as a URL string. Panics on any unexpected page.
pub async fn sign_in(
    t: &impl Issuer,
    b: &reqwest::Client,
    authorize_url: &str,
    email: &str,
    password: &str,
) -> String {
    let r = b.get(authorize_url).send().await.unwrap();
    // A session (single sign-on) or a refusal goes straight back; otherwise the email page.
    if r.status() == 303 {
        return location(&r);
    }
    submit_password(t, b, r, email, password).await
}

/// From the authorization endpoint's answer (the email page): email, password, submit.
/// Returns the Location after the password (client redirect or consent page).
pub async fn submit_password(
    t: &impl Issuer,
    b: &reqwest::Client,
    email_page: reqwest::Response,
    email: &str,
    password: &str,
) -> String {
    let mut form = password_form(t, b, email_page, email).await;
    form.push(("password".into(), password.into()));
    let r = b
        .post(t.url("/login/password"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "password accepted should redirect");
    location(&r)
}

/// From the authorization endpoint's answer (the email page, shown at once): the password
/// page; returns the password form's hidden fields (interaction, csrf_token, email).
pub async fn password_form(
    t: &impl Issuer,
    b: &reqwest::Client,
    email_page: reqwest::Response,
    email: &str,
) -> Vec<(String, String)> {
    assert_eq!(
        email_page.status(),
        200,
        "authorize should show the sign-in page"
    );
    let mut form = hidden_inputs(&email_page.text().await.unwrap());
    form.push(("email".into(), email.into()));
    let page = b.post(t.url("/login")).form(&form).send().await.unwrap();
    assert_eq!(page.status(), 200);
    hidden_inputs(&page.text().await.unwrap())
}

/// The code from a client redirect, checking `state` and RFC 9207 `iss`.
pub fn code_from(t: &impl Issuer, redirect: &str, state: &str) -> String {
    let q = query(redirect);
    assert_eq!(
        q.get("state").map(String::as_str),
        Some(state),
        "state echoed: {redirect}"
    );
    assert_eq!(
        q.get("iss").map(String::as_str),
        Some(t.issuer()),
        "RFC 9207 iss present: {redirect}"
    );
    q.get("code")
        .cloned()
        .unwrap_or_else(|| panic!("no code in {redirect}"))
}

/// Exchange a code at the token endpoint as the lab RP (Basic auth).
pub async fn rp_token(t: &impl Issuer, form: &[(&str, &str)]) -> reqwest::Response {
    backchannel()
        .post(t.url("/token"))
        .basic_auth(RP_ID, Some(RP_SECRET))
        .form(form)
        .send()
        .await
        .unwrap()
}

/// Sign alice in through the lab RP and return the token response JSON.
pub async fn alice_tokens(t: &impl Issuer, b: &reqwest::Client) -> serde_json::Value {
    let redirect = sign_in(t, b, &rp_authorize(t, ""), ALICE, ALICE_PW).await;
    let code = code_from(t, &redirect, "st-1");
    let r = rp_token(
        t,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", RP_REDIRECT),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// An app allowed the `admin` scope (client credentials), for the admin API.
pub const ADMIN_APP: &str = "\n[[apps]]\nclient_id = \"admin-daemon\"\nclient_secret = \"admin-daemon-secret\"\ngrant_types = [\"client_credentials\"]\nscopes = [\"admin\"]\n";

/// An admin API token from [`ADMIN_APP`].
pub async fn admin_token(t: &impl Issuer) -> String {
    let r: serde_json::Value = backchannel()
        .post(t.url("/token"))
        .basic_auth("admin-daemon", Some("admin-daemon-secret"))
        .form(&[("grant_type", "client_credentials"), ("scope", "admin")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["access_token"].as_str().unwrap().to_owned()
}

/// A browser behind the tenants' trusted proxy (127.0.0.1) that says the client is `ip`.
pub fn browser_from(ip: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-forwarded-for", ip.parse().unwrap());
    reqwest::Client::builder()
        .use_preconfigured_tls(tls())
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .unwrap()
}

/// GET `url` in browser `b` and return the page's text.
/// The sign-in page an authorization URL answers with at once (no session there): its HTML.
pub async fn sign_in_page(b: &reqwest::Client, authorize_url: impl reqwest::IntoUrl) -> String {
    let page = b.get(authorize_url).send().await.unwrap();
    assert_eq!(page.status(), 200, "authorize should show the sign-in page");
    page.text().await.unwrap()
}

pub async fn page_text(b: &reqwest::Client, url: impl reqwest::IntoUrl) -> String {
    b.get(url).send().await.unwrap().text().await.unwrap()
}

/// From a `/consent?interaction=` path: allow, and return where the answer sends the browser.
pub async fn consent(t: &TestTenant, b: &reqwest::Client, consent_path: &str) -> String {
    let page = b.get(t.url(consent_path)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let mut form = hidden_inputs(&page.text().await.unwrap());
    form.push(("decision".into(), "allow".into()));
    let r = b.post(t.url("/consent")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 303);
    location(&r)
}
