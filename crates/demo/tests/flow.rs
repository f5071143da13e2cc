//! Drives the demo RP through /login → provider → /callback against a tiny fake OpenID
//! provider (discovery, JWKS, authorize, token, userinfo) over plain HTTP on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tenantd_demo::DemoConfig;
use url::Url;

const CLIENT_ID: &str = "demo-app";
const CLIENT_SECRET: &str = "demo-secret";

// ---------------------------------------------------------------------------------------------
// The fake provider.

struct SigningKey {
    kid: String,
    key: EncodingKey,
    jwk: Jwk,
}

fn signing_key(kid: &str) -> SigningKey {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let key = EncodingKey::from_ec_der(&pair.serialize_der());
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    SigningKey {
        kid: kid.to_owned(),
        key,
        jwk,
    }
}

struct Grant {
    nonce: String,
    challenge: String,
}

struct Op {
    /// Where the endpoints are.
    base: String,
    /// The issuer the provider advertises (`base`, or `base/`).
    issuer: String,
    key: Mutex<SigningKey>,
    grants: Mutex<HashMap<String, Grant>>,
    /// When set, ID tokens carry this nonce instead of the requested one.
    nonce_override: Mutex<Option<String>>,
    token_calls: AtomicUsize,
    jwks_calls: AtomicUsize,
}

fn sha256_b64(data: &[u8]) -> (Vec<u8>, String) {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let bytes = digest.as_ref().to_vec();
    let b64 = URL_SAFE_NO_PAD.encode(&bytes);
    (bytes, b64)
}

async fn discovery(State(op): State<Arc<Op>>) -> Json<Value> {
    let i = &op.base;
    Json(json!({
        "issuer": op.issuer,
        "authorization_endpoint": format!("{i}/authorize"),
        "token_endpoint": format!("{i}/token"),
        "userinfo_endpoint": format!("{i}/userinfo"),
        "jwks_uri": format!("{i}/jwks"),
        "end_session_endpoint": format!("{i}/logout"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
    }))
}

async fn jwks(State(op): State<Arc<Op>>) -> Json<JwkSet> {
    op.jwks_calls.fetch_add(1, Ordering::SeqCst);
    let key = op.key.lock().unwrap();
    Json(JwkSet {
        keys: vec![key.jwk.clone()],
    })
}

async fn authorize(
    State(op): State<Arc<Op>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let param = |name: &str| q.get(name).cloned().unwrap_or_default();
    assert_eq!(param("client_id"), CLIENT_ID);
    assert_eq!(param("response_type"), "code");
    assert_eq!(param("code_challenge_method"), "S256");
    let scopes: Vec<String> = param("scope").split(' ').map(str::to_owned).collect();
    assert_eq!(scopes, ["openid", "profile", "email", "offline_access"]);
    let code = format!("code-{}", op.grants.lock().unwrap().len());
    op.grants.lock().unwrap().insert(
        code.clone(),
        Grant {
            nonce: param("nonce"),
            challenge: param("code_challenge"),
        },
    );
    let mut back = Url::parse(&param("redirect_uri")).unwrap();
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &param("state"))
        .append_pair("iss", &op.issuer);
    Redirect::to(back.as_str()).into_response()
}

async fn token(
    State(op): State<Arc<Op>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    op.token_calls.fetch_add(1, Ordering::SeqCst);
    let refuse = |why: &str| {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant", "error_description": why})),
        )
            .into_response()
    };
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some(basic.as_str())
    {
        return refuse("client_secret_basic expected");
    }
    let param = |name: &str| form.get(name).cloned().unwrap_or_default();
    if param("grant_type") != "authorization_code" {
        return refuse("grant_type");
    }
    let Some(grant) = op.grants.lock().unwrap().remove(&param("code")) else {
        return refuse("unknown or used code");
    };
    if sha256_b64(param("code_verifier").as_bytes()).1 != grant.challenge {
        return refuse("PKCE verifier does not match");
    }
    let access_token = "at-for-alice";
    let (digest, _) = sha256_b64(access_token.as_bytes());
    let at_hash = URL_SAFE_NO_PAD.encode(&digest[..16]);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let nonce = op
        .nonce_override
        .lock()
        .unwrap()
        .clone()
        .unwrap_or(grant.nonce);
    let claims = json!({
        "iss": op.issuer, "sub": "alice", "aud": CLIENT_ID, "iat": now, "exp": now + 300,
        "nonce": nonce, "at_hash": at_hash, "email": "alice@home.test",
        "name": "<b>Alice</b>", "user_risk": "low", "amr": ["pwd", "otp"],
    });
    let id_token = {
        let key = op.key.lock().unwrap();
        let mut jwt_header = Header::new(Algorithm::ES256);
        jwt_header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&jwt_header, &claims, &key.key).unwrap()
    };
    Json(json!({
        "access_token": access_token, "token_type": "Bearer", "expires_in": 300,
        "scope": "openid profile email offline_access", "refresh_token": "rt-for-alice",
        "id_token": id_token,
    }))
    .into_response()
}

async fn userinfo(headers: HeaderMap) -> Response {
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some("Bearer at-for-alice")
    {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    Json(json!({"sub": "alice", "email": "alice@home.test", "userinfo_marker": 42})).into_response()
}

async fn listen() -> (tokio::net::TcpListener, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

async fn start_op() -> Arc<Op> {
    start_op_with_issuer_suffix("").await
}

async fn start_op_with_issuer_suffix(suffix: &str) -> Arc<Op> {
    let (listener, addr) = listen().await;
    let op = Arc::new(Op {
        base: format!("http://{addr}"),
        issuer: format!("http://{addr}{suffix}"),
        key: Mutex::new(signing_key("key-1")),
        grants: Mutex::new(HashMap::new()),
        nonce_override: Mutex::new(None),
        token_calls: AtomicUsize::new(0),
        jwks_calls: AtomicUsize::new(0),
    });
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .route("/userinfo", get(userinfo))
        .with_state(op.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    op
}

// ---------------------------------------------------------------------------------------------
// The demo and a cookie-keeping "browser" that does not follow redirects.

struct Demo {
    origin: String,
    browser: reqwest::Client,
}

async fn start_demo(issuer: &str) -> Demo {
    let (listener, addr) = listen().await;
    let cfg = DemoConfig {
        listen: addr,
        issuer: Url::parse(issuer).unwrap(),
        client_id: CLIENT_ID.to_owned(),
        client_secret: Some(CLIENT_SECRET.to_owned()),
        redirect_uri: Url::parse(&format!("http://{addr}/callback")).unwrap(),
        ca_file: None,
        scopes: ["openid", "profile", "email", "offline_access"]
            .map(str::to_owned)
            .to_vec(),
        title: "Demo <app>".to_owned(),
    };
    let app = tenantd_demo::router(cfg).await.unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let browser = reqwest_builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Demo {
        origin: format!("http://{addr}"),
        browser,
    }
}

/// reqwest is built without a crypto provider: hand it a rustls config (plain HTTP here).
fn reqwest_builder() -> reqwest::ClientBuilder {
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    reqwest::Client::builder().use_preconfigured_tls(tls)
}

fn location(response: &reqwest::Response) -> String {
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "{response:?}");
    response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap()
        .to_owned()
}

impl Demo {
    async fn get(&self, url: &str) -> reqwest::Response {
        self.browser.get(url).send().await.unwrap()
    }

    /// /login → provider's /authorize → the callback URL the provider sends the browser to.
    async fn start_sign_in(&self) -> Url {
        let to_provider = location(&self.get(&format!("{}/login", self.origin)).await);
        let back = location(&self.get(&to_provider).await);
        Url::parse(&back).unwrap()
    }

    async fn callback(&self, url: &Url) -> (StatusCode, String) {
        let response = self.get(url.as_str()).await;
        let status = response.status();
        (status, response.text().await.unwrap())
    }
}

fn query(url: &Url) -> Vec<(String, String)> {
    url.query_pairs().into_owned().collect()
}

fn with_query(url: &Url, pairs: &[(String, String)]) -> Url {
    let mut url = url.clone();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    url
}

/// The callback URL with `name` replaced by `value` (or removed when `None`).
fn tamper(url: &Url, name: &str, value: Option<&str>) -> Url {
    let pairs: Vec<(String, String)> = query(url)
        .into_iter()
        .filter_map(|(k, v)| match (k == name, value) {
            (false, _) => Some((k, v)),
            (true, Some(new)) => Some((k, new.to_owned())),
            (true, None) => None,
        })
        .collect();
    with_query(url, &pairs)
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn sign_in_shows_claims_token_fields_and_userinfo_then_signs_out() {
    let op = start_op().await;
    let demo = start_demo(&op.issuer).await;

    let home = demo.get(&demo.origin).await.text().await.unwrap();
    assert!(
        home.contains("Demo &#60;app&#62;") || home.contains("Demo &lt;app&gt;"),
        "{home}"
    );
    assert!(
        home.contains(&op.issuer) && home.contains("href=\"/login\""),
        "{home}"
    );

    let callback = demo.start_sign_in().await;
    let (status, body) = demo.callback(&callback).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Every ID-token claim, including ones openidconnect does not know, values escaped.
    for claim in [
        "<th>sub</th>",
        "<th>user_risk</th>",
        "<th>amr</th>",
        "<th>at_hash</th>",
    ] {
        assert!(body.contains(claim), "missing {claim}: {body}");
    }
    assert!(body.contains("alice@home.test"), "{body}");
    assert!(
        !body.contains("<b>Alice</b>"),
        "claim value not escaped: {body}"
    );
    assert!(
        body.contains("&lt;b&gt;Alice") || body.contains("&#60;b&#62;Alice"),
        "{body}"
    );
    // Token response fields, not the tokens.
    assert!(body.contains("300 s"), "{body}");
    assert!(
        body.contains("openid profile email offline_access"),
        "{body}"
    );
    assert!(
        body.contains("<th>refresh token</th><td>issued</td>"),
        "{body}"
    );
    assert!(
        !body.contains("at-for-alice") && !body.contains("rt-for-alice"),
        "{body}"
    );
    // Userinfo.
    assert!(body.contains("<th>userinfo_marker</th>"), "{body}");
    assert_eq!(op.token_calls.load(Ordering::SeqCst), 1);

    // The result is remembered for this browser.
    let home = demo.get(&demo.origin).await.text().await.unwrap();
    assert!(home.contains("Signed in as <code>alice</code>"), "{home}");
    let again = demo.get(&format!("{}/result", demo.origin)).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert!(again.text().await.unwrap().contains("<th>user_risk</th>"));

    // Sign out: RP-initiated logout at the provider.
    let response = demo
        .browser
        .post(format!("{}/logout", demo.origin))
        .send()
        .await
        .unwrap();
    let logout = Url::parse(&location(&response)).unwrap();
    assert_eq!(
        logout.as_str().split('?').next(),
        Some(format!("{}/logout", op.base).as_str())
    );
    let params: HashMap<String, String> = query(&logout).into_iter().collect();
    assert_eq!(params.get("client_id").map(String::as_str), Some(CLIENT_ID));
    assert_eq!(
        params.get("post_logout_redirect_uri"),
        Some(&format!("{}/", demo.origin))
    );
    assert_eq!(
        params.get("id_token_hint").map(|t| t.split('.').count()),
        Some(3)
    );
    // And the demo forgot the result.
    let after = demo.get(&format!("{}/result", demo.origin)).await;
    assert_eq!(location(&after), "/");
}

#[tokio::test]
async fn wrong_iss_parameter_is_refused_before_the_code_is_used() {
    let op = start_op().await;
    let demo = start_demo(&op.issuer).await;
    let callback = demo.start_sign_in().await;
    let forged = tamper(&callback, "iss", Some("http://evil.example"));
    let (status, body) = demo.callback(&forged).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("different issuer"), "{body}");
    assert_eq!(op.token_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn missing_iss_parameter_is_refused_when_the_provider_advertises_it() {
    let op = start_op().await;
    let demo = start_demo(&op.issuer).await;
    let callback = demo.start_sign_in().await;
    let (status, body) = demo.callback(&tamper(&callback, "iss", None)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body.contains("authorization_response_iss_parameter_supported"),
        "{body}"
    );
    assert_eq!(op.token_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn bad_state_is_refused_and_the_flow_is_spent() {
    let op = start_op().await;
    let demo = start_demo(&op.issuer).await;
    let callback = demo.start_sign_in().await;
    let (status, body) = demo
        .callback(&tamper(&callback, "state", Some("forged")))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("state does not match"), "{body}");
    // The genuine response afterwards finds no flow: single use.
    let (status, body) = demo.callback(&callback).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("No sign-in is in progress"), "{body}");
    assert_eq!(op.token_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn replayed_callback_is_refused() {
    let op = start_op().await;
    let demo = start_demo(&op.issuer).await;
    let callback = demo.start_sign_in().await;
    assert_eq!(demo.callback(&callback).await.0, StatusCode::OK);
    let (status, body) = demo.callback(&callback).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("No sign-in is in progress"), "{body}");
    assert_eq!(op.token_calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn provider_error_is_shown_escaped() {
    let op = start_op().await;
    let demo = start_demo(&op.issuer).await;
    let callback = demo.start_sign_in().await;
    let pairs = query(&callback);
    let state = pairs.iter().find(|(k, _)| k == "state").unwrap().1.clone();
    let error_response = with_query(
        &callback,
        &[
            ("error".to_owned(), "access_denied".to_owned()),
            (
                "error_description".to_owned(),
                "Blocked <script>alert(1)</script> by policy".to_owned(),
            ),
            ("state".to_owned(), state),
            ("iss".to_owned(), op.issuer.clone()),
        ],
    );
    let (status, body) = demo.callback(&error_response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("<code>access_denied</code>"), "{body}");
    assert!(!body.contains("<script>"), "not escaped: {body}");
    assert!(
        body.contains("Blocked &lt;script&gt;alert(1)&lt;/script&gt; by policy")
            || body.contains("Blocked &#60;script&#62;alert(1)&#60;/script&#62; by policy"),
        "{body}"
    );
    assert!(
        body.contains(&format!("<code>{}</code>", op.issuer)),
        "{body}"
    );
    assert_eq!(op.token_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn wrong_nonce_is_refused() {
    let op = start_op().await;
    let demo = start_demo(&op.issuer).await;
    *op.nonce_override.lock().unwrap() = Some("someone-elses-nonce".to_owned());
    let callback = demo.start_sign_in().await;
    let (status, body) = demo.callback(&callback).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(body.contains("ID token was refused"), "{body}");
    assert!(body.contains("nonce"), "{body}");
}

#[tokio::test]
async fn rotated_signing_key_triggers_one_rediscovery() {
    let op = start_op().await;
    let demo = start_demo(&op.issuer).await;
    let callback = demo.start_sign_in().await;
    assert_eq!(demo.callback(&callback).await.0, StatusCode::OK);
    assert_eq!(
        op.jwks_calls.load(Ordering::SeqCst),
        1,
        "metadata is cached"
    );

    *op.key.lock().unwrap() = signing_key("key-2");
    let callback = demo.start_sign_in().await;
    let (status, body) = demo.callback(&callback).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(op.jwks_calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn issuer_advertised_with_a_trailing_slash_is_found() {
    // The configured `url::Url` cannot tell `http://h:p` from `http://h:p/`; the demo tries both.
    let op = start_op_with_issuer_suffix("/").await;
    let demo = start_demo(&op.base).await;
    let callback = demo.start_sign_in().await;
    let (status, body) = demo.callback(&callback).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.contains(&format!("<code>{}</code>", op.issuer)),
        "{body}"
    );
}

#[tokio::test]
async fn unreachable_provider_shows_an_error_page() {
    // A port that was just free: nothing listens there.
    let (listener, addr) = listen().await;
    drop(listener);
    let demo = start_demo(&format!("http://{addr}")).await;
    let response = demo.get(&format!("{}/login", demo.origin)).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let body = response.text().await.unwrap();
    assert!(body.contains("could not be reached"), "{body}");
}

fn config(issuer: &str, redirect_uri: &str) -> DemoConfig {
    let redirect_uri = Url::parse(redirect_uri).unwrap();
    DemoConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], redirect_uri.port().unwrap_or(80))),
        issuer: Url::parse(issuer).unwrap(),
        client_id: CLIENT_ID.to_owned(),
        client_secret: Some(CLIENT_SECRET.to_owned()),
        redirect_uri,
        ca_file: None,
        scopes: vec!["openid".to_owned()],
        title: "Demo".to_owned(),
    }
}

#[tokio::test]
async fn unusable_config_is_refused_and_debug_hides_the_secret() {
    let bad_redirect = config("https://home.test", "https://app.test/elsewhere");
    let err = tenantd_demo::router(bad_redirect).await.err();
    assert!(
        matches!(err, Some(tenantd_demo::DemoError::Config(_))),
        "{err:?}"
    );
    let bad_issuer = config("https://home.test/?tenant=x", "https://app.test/callback");
    assert!(tenantd_demo::router(bad_issuer).await.is_err());
    let shown = format!(
        "{:?}",
        config("https://home.test", "https://app.test/callback")
    );
    assert!(!shown.contains(CLIENT_SECRET), "{shown}");
}

#[tokio::test]
async fn serve_binds_serves_and_stops_on_shutdown() {
    let (listener, addr) = listen().await;
    drop(listener);
    let cfg = config("https://home.test", &format!("http://{addr}/callback"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(tenantd_demo::serve(cfg, async {
        let _ = stopped.await;
    }));
    let client = reqwest_builder().build().unwrap();
    let mut home = None;
    for _ in 0..50 {
        match client.get(format!("http://{addr}/")).send().await {
            Ok(response) => {
                home = Some(response);
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
    let home = home.expect("the demo never answered");
    assert_eq!(home.status(), StatusCode::OK);
    assert_eq!(
        home.headers().get(header::REFERRER_POLICY).unwrap(),
        "no-referrer"
    );
    stop.send(()).unwrap();
    let result = tokio::time::timeout(std::time::Duration::from_secs(5), server)
        .await
        .expect("serve did not stop")
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
}
