//! Dynamic client registration (RFC 7591) and the management of a registration with its
//! registration access token (RFC 7592): a client registered by a standards library signs a user
//! in, bad metadata is refused with RFC 7591's errors and stores nothing, a registration is read,
//! replaced and deleted only with its token, and deleting it ends what it was issued.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::federation::{Serving, wait_ready};
use crate::flows::decode_payload;
use crate::support::*;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreClientRegistrationRequest, CoreGrantType,
    CoreProviderMetadata,
};
use openidconnect::{
    AuthorizationCode, ClientName, CsrfToken, IssuerUrl, LocalizedClaim, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};
use reqwest::Method;
use serde_json::{Value, json};

/// Registration on, open to anyone.
const OPEN: &str = "\n[registration]\nenabled = true\n";
const DYN_REDIRECT: &str = "https://dyn.test/cb";
const DYN_REDIRECT_2: &str = "https://dyn.test/cb2";

/// `POST /register` with a JSON body (and an initial access token).
async fn register(issuer: &str, body: &Value, token: Option<&str>) -> reqwest::Response {
    let mut r = backchannel().post(format!("{issuer}/register")).json(body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    r.send().await.unwrap()
}

/// A registration that must succeed: the response body.
async fn registered(t: &TestTenant, body: Value) -> Value {
    let r = register(&t.issuer, &body, None).await;
    assert_eq!(r.status(), 201, "{body}");
    r.json().await.unwrap()
}

/// An RFC 7592 call with a registration access token: status, `WWW-Authenticate`, body.
async fn manage(
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, String, Value) {
    let mut r = backchannel().request(method, uri);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(b) = body {
        r = r.json(b);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, challenge, r.json().await.unwrap_or(Value::Null))
}

/// Whether `id`/`secret` authenticate at the token endpoint: a made-up code is then
/// `invalid_grant` (the client was recognised) rather than `invalid_client`.
async fn secret_works(t: &TestTenant, id: &str, secret: &str) -> bool {
    let r = backchannel()
        .post(t.url("/token"))
        .basic_auth(id, Some(secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", "made-up"),
            ("redirect_uri", DYN_REDIRECT),
        ])
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    match status {
        400 => {
            assert_eq!(body["error"], "invalid_grant");
            true
        }
        401 => {
            assert_eq!(body["error"], "invalid_client");
            false
        }
        other => panic!("{other}: {body}"),
    }
}

/// After the password (or a live session): accept the consent page if it is shown; the
/// redirect to the app.
async fn through_consent(t: &TestTenant, b: &reqwest::Client, next: String) -> String {
    if !next.starts_with("/consent") {
        return next;
    }
    let page = page_text(b, t.url(&next)).await;
    let mut form = hidden_inputs(&page);
    form.push(("decision".into(), "allow".into()));
    let r = b.post(t.url("/consent")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 303);
    location(&r)
}

async fn app_count(t: &TestTenant) -> usize {
    t.state().store.app_records().await.unwrap().len()
}

#[tokio::test]
async fn a_client_registered_by_openidconnect_signs_a_user_in_with_pkce() {
    let t = start_with("contoso", OPEN).await;
    let http = backchannel();
    let meta =
        CoreProviderMetadata::discover_async(IssuerUrl::new(t.issuer.clone()).unwrap(), &http)
            .await
            .unwrap();
    let endpoint = meta
        .registration_endpoint()
        .expect("discovery advertises registration")
        .clone();
    assert_eq!(endpoint.as_str(), t.url("/register"));
    let mut name = LocalizedClaim::new();
    name.insert(None, ClientName::new("Dynamic RP".into()));
    let registration = CoreClientRegistrationRequest::new(
        vec![RedirectUrl::new(DYN_REDIRECT.into()).unwrap()],
        Default::default(),
    )
    .set_client_name(Some(name))
    .set_grant_types(Some(vec![
        CoreGrantType::AuthorizationCode,
        CoreGrantType::RefreshToken,
    ]))
    .register_async(&endpoint, &http)
    .await
    .unwrap();
    let client_id = registration.client_id().clone();
    let secret = registration
        .client_secret()
        .expect("a client secret for client_secret_basic")
        .clone();
    assert!(registration.registration_access_token().is_some());
    assert_eq!(
        registration
            .registration_client_uri()
            .map(|u| u.url().to_string()),
        Some(t.url(&format!("/register/{}", client_id.as_str())))
    );
    assert!(registration.client_id_issued_at().is_some());
    assert_eq!(
        registration
            .client_secret_expires_at()
            .map(|t| t.timestamp()),
        Some(0),
        "the secret does not expire"
    );

    let client = CoreClient::from_provider_metadata(meta, client_id.clone(), Some(secret))
        .set_redirect_uri(RedirectUrl::new(DYN_REDIRECT.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();
    let b = browser();
    let next = sign_in(&t, &b, url.as_str(), ALICE, ALICE_PW).await;
    assert!(
        next.starts_with("/consent"),
        "a self-registered app is third-party: consent is asked ({next})"
    );
    let page = page_text(&b, t.url(&next)).await;
    assert!(page.contains("Dynamic RP"), "the registered name is shown");
    let redirect = through_consent(&t, &b, next).await;
    assert!(redirect.starts_with(DYN_REDIRECT), "{redirect}");
    let code = code_from(&t, &redirect, csrf.secret());
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    let claims = tokens
        .id_token()
        .expect("an ID token")
        .claims(&client.id_token_verifier(), &nonce)
        .expect("the ID token verifies");
    assert_eq!(claims.email().map(|e| e.as_str()), Some(ALICE));
    assert_eq!(
        decode_payload(&tokens.id_token().unwrap().to_string())["azp"],
        client_id.as_str()
    );
    client
        .exchange_refresh_token(tokens.refresh_token().expect("the refresh_token grant"))
        .unwrap()
        .request_async(&http)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_registration_is_read_replaced_and_deleted_only_with_its_token() {
    let t = start_with("contoso", OPEN).await;
    let reg = registered(
        &t,
        json!({
            "client_name": "Before",
            "redirect_uris": [DYN_REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "calendar.read",
            "logo_uri": "https://dyn.test/logo.png",
        }),
    )
    .await;
    let id = reg["client_id"].as_str().unwrap().to_owned();
    let secret = reg["client_secret"].as_str().unwrap().to_owned();
    let token = reg["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let uri = reg["registration_client_uri"].as_str().unwrap().to_owned();
    assert_eq!(uri, t.url(&format!("/register/{id}")));
    assert_eq!(reg["client_secret_expires_at"], 0);
    assert_eq!(reg["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(reg["response_types"], json!(["code"]));
    assert!(
        reg.get("logo_uri").is_none(),
        "not understood, not registered"
    );
    assert!(secret_works(&t, &id, &secret).await);

    // Read.
    let (status, _, got) = manage(Method::GET, &uri, Some(&token), None).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["client_id"], id.as_str());
    assert_eq!(got["client_name"], "Before");
    assert_eq!(
        got["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(got["scope"], "calendar.read");
    assert_eq!(got["registration_client_uri"], uri.as_str());
    assert!(
        got.get("client_secret").is_none(),
        "the secret is never kept"
    );

    // Refused, all alike: a wrong token, no token, another client's token, a client of the
    // config file, a client that does not exist.
    let other = registered(&t, json!({"redirect_uris": [DYN_REDIRECT]})).await;
    let other_token = other["registration_access_token"].as_str().unwrap();
    let mut refusals = Vec::new();
    for (u, tok) in [
        (uri.clone(), Some("not-the-token")),
        (uri.clone(), None),
        (uri.clone(), Some(other_token)),
        (t.url(&format!("/register/{RP_ID}")), Some(token.as_str())),
        (
            t.url(&format!("/register/{}", uuid::Uuid::new_v4())),
            Some(token.as_str()),
        ),
    ] {
        for method in [Method::GET, Method::PUT, Method::DELETE] {
            let body = json!({"client_id": id, "redirect_uris": [DYN_REDIRECT]});
            let (status, challenge, body) = manage(method.clone(), &u, tok, Some(&body)).await;
            assert_eq!(status, 401, "{method} {u} {tok:?}: {body}");
            assert!(challenge.starts_with("Bearer "), "{challenge}");
            assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
            refusals.push(body);
        }
    }
    assert!(
        refusals.windows(2).all(|w| w[0] == w[1]),
        "nothing tells whether the client exists: {refusals:?}"
    );

    // Replace: the body names the client; a secret in it must be the client's; bad metadata
    // changes nothing.
    let put = |body: Value| {
        let (uri, token) = (uri.clone(), token.clone());
        async move { manage(Method::PUT, &uri, Some(&token), Some(&body)).await }
    };
    for (body, error) in [
        (
            json!({"redirect_uris": [DYN_REDIRECT]}),
            "invalid_client_metadata",
        ),
        (
            json!({"client_id": other["client_id"], "redirect_uris": [DYN_REDIRECT]}),
            "invalid_client_metadata",
        ),
        (
            json!({"client_id": id, "client_secret": "guess", "redirect_uris": [DYN_REDIRECT]}),
            "invalid_client_metadata",
        ),
        (
            json!({"client_id": id, "redirect_uris": ["http://dyn.test/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"client_id": id, "redirect_uris": [DYN_REDIRECT], "scope": "admin"}),
            "invalid_client_metadata",
        ),
    ] {
        let (status, _, got) = put(body.clone()).await;
        assert_eq!(status, 400, "{body}: {got}");
        assert_eq!(got["error"], error, "{body}: {got}");
    }
    let (_, _, got) = manage(Method::GET, &uri, Some(&token), None).await;
    assert_eq!(got["client_name"], "Before", "unchanged");

    // What a GET returned may be sent back as it is (the response-only members are ignored).
    let (status, _, same) = put(got.clone()).await;
    assert_eq!(status, 200, "{same}");
    assert_eq!(same, got);

    // A full replacement: what is left out takes its default.
    let (status, _, replaced) = put(json!({
        "client_id": id,
        "client_secret": secret,
        "redirect_uris": [DYN_REDIRECT, DYN_REDIRECT_2],
    }))
    .await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(
        replaced["redirect_uris"],
        json!([DYN_REDIRECT, DYN_REDIRECT_2])
    );
    assert_eq!(replaced["client_name"], id.as_str(), "name reset");
    assert_eq!(replaced["grant_types"], json!(["authorization_code"]));
    assert!(replaced.get("scope").is_none(), "scope reset");
    assert_eq!(replaced["registration_access_token"], token.as_str());
    let (_, _, got) = manage(Method::GET, &uri, Some(&token), None).await;
    assert_eq!(got, replaced);
    assert!(
        secret_works(&t, &id, &secret).await,
        "the secret outlives an update"
    );

    // Delete.
    let (status, _, _) = manage(Method::DELETE, &uri, Some(&token), None).await;
    assert_eq!(status, 204);
    let (status, _, _) = manage(Method::GET, &uri, Some(&token), None).await;
    assert_eq!(status, 401);
    let (status, _, _) = manage(Method::DELETE, &uri, Some(&token), None).await;
    assert_eq!(status, 401);
    assert!(!secret_works(&t, &id, &secret).await);
    assert!(t.state().app(&id).await.unwrap().is_none());
}

#[tokio::test]
async fn bad_metadata_gets_the_rfc_7591_error_and_stores_nothing() {
    let t = start_with("contoso", OPEN).await;
    let before = app_count(&t).await;
    for (body, error) in [
        (
            json!({"redirect_uris": ["http://dyn.test/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["https://dyn.test/cb#fragment"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"client_name": "no redirect"}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": [DYN_REDIRECT], "grant_types": ["implicit"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": [DYN_REDIRECT], "jwks_uri": "https://dyn.test/jwks"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": [DYN_REDIRECT], "token_endpoint_auth_method": "client_secret_jwt"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": DYN_REDIRECT}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": [DYN_REDIRECT], "scope": "openid admin"}),
            "invalid_client_metadata",
        ),
        (
            json!({"grant_types": ["client_credentials"], "response_types": [], "scope": "reports.read"}),
            "invalid_client_metadata",
        ),
        (json!([DYN_REDIRECT]), "invalid_client_metadata"),
        (json!("redirect_uris"), "invalid_client_metadata"),
    ] {
        let r = register(&t.issuer, &body, None).await;
        assert_eq!(r.status(), 400, "{body}");
        assert_eq!(
            r.headers().get("cache-control").unwrap(),
            "no-store",
            "{body}"
        );
        let got: Value = r.json().await.unwrap();
        assert_eq!(got["error"], error, "{body}: {got}");
        assert!(
            got["error_description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{got}"
        );
    }
    // Not JSON at all, or not sent as JSON.
    for (content_type, body) in [
        ("application/json", "{not json"),
        (
            "application/x-www-form-urlencoded",
            "redirect_uris=https%3A%2F%2Fdyn.test%2Fcb",
        ),
    ] {
        let r = backchannel()
            .post(t.url("/register"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let got: Value = r.json().await.unwrap();
        assert_eq!(got["error"], "invalid_client_metadata", "{body}: {got}");
    }
    assert_eq!(app_count(&t).await, before, "nothing was stored");
    // And the same request, mended, is registered.
    let reg = registered(
        &t,
        json!({"redirect_uris": [DYN_REDIRECT], "grant_types": ["authorization_code"]}),
    )
    .await;
    assert!(reg["client_id"].is_string());
    assert_eq!(app_count(&t).await, before + 1);
}

#[tokio::test]
async fn registration_is_off_by_default() {
    let t = start("contoso").await;
    let discovery: Value = backchannel()
        .get(t.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(discovery["token_endpoint"].is_string());
    assert!(
        discovery.get("registration_endpoint").is_none(),
        "{discovery}"
    );
    let r = register(&t.issuer, &json!({"redirect_uris": [DYN_REDIRECT]}), None).await;
    assert_eq!(r.status(), 404);
    for method in [Method::GET, Method::PUT, Method::DELETE] {
        let (status, _, _) = manage(
            method,
            &t.url(&format!("/register/{RP_ID}")),
            Some("x"),
            None,
        )
        .await;
        assert_eq!(status, 404);
    }
    assert!(t.state().app(RP_ID).await.unwrap().is_some());
}

#[tokio::test]
async fn an_initial_access_token_is_required_when_configured() {
    let (dir, db) = tenant_dir("iat");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = issuer_of(&listener);
    let listen = listener.local_addr().unwrap().to_string();
    drop(listener);
    let text = config_text(
        "iat",
        &issuer,
        &listen,
        &db,
        "\n[registration]\nenabled = true\ninitial_access_token_env = \"TENANTD_E2E_INITIAL_TOKEN\"\n",
    );
    let config = dir.join("tenant.toml");
    std::fs::write(&config, text).unwrap();
    let initial = "initial-access-token-for-the-e2e-test";
    let _serving = Serving(
        std::process::Command::new(env!("CARGO_BIN_EXE_tenantd-e2e"))
            .args(["serve", "--config", config.to_str().unwrap()])
            .env("TENANTD_LOG", "warn")
            .env("TENANTD_E2E_INITIAL_TOKEN", initial)
            .spawn()
            .unwrap(),
    );
    wait_ready(&issuer).await;
    let body = json!({"redirect_uris": [DYN_REDIRECT]});
    for token in [None, Some("wrong-token"), Some("")] {
        let r = register(&issuer, &body, token).await;
        assert_eq!(r.status(), 401, "{token:?}");
        let challenge = r
            .headers()
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap();
        assert!(challenge.starts_with("Bearer "), "{challenge}");
        let got: Value = r.json().await.unwrap();
        assert_eq!(got["error"], "invalid_token");
    }
    let r = register(&issuer, &body, Some(initial)).await;
    assert_eq!(r.status(), 201);
    let reg: Value = r.json().await.unwrap();
    // The registration is then managed with its own token, not the initial one.
    let uri = reg["registration_client_uri"].as_str().unwrap();
    let (status, _, _) = manage(Method::GET, uri, Some(initial), None).await;
    assert_eq!(status, 401);
    let token = reg["registration_access_token"].as_str().unwrap();
    let (status, _, _) = manage(Method::GET, uri, Some(token), None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn deleting_a_registration_ends_its_codes_and_tokens() {
    let t = start_with("contoso", OPEN).await;
    let reg = registered(
        &t,
        json!({
            "client_name": "Short-lived",
            "redirect_uris": [DYN_REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
        }),
    )
    .await;
    let id = reg["client_id"].as_str().unwrap().to_owned();
    let secret = reg["client_secret"].as_str().unwrap().to_owned();
    let authorize = t.url(&format!(
        "/authorize?response_type=code&client_id={id}&redirect_uri={}&scope=openid%20email&state=d1&nonce=n1",
        urlenc(DYN_REDIRECT)
    ));
    let b = browser();
    let next = sign_in(&t, &b, &authorize, ALICE, ALICE_PW).await;
    let code = code_from(&t, &through_consent(&t, &b, next).await, "d1");
    let redeem = |code: String| {
        let (t_url, id, secret) = (t.url("/token"), id.clone(), secret.clone());
        async move {
            backchannel()
                .post(t_url)
                .basic_auth(id, Some(secret))
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("redirect_uri", DYN_REDIRECT),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let r = redeem(code).await;
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    // A second code (single sign-on, consent remembered), not redeemed yet.
    let r = b.get(&authorize).send().await.unwrap();
    let pending = code_from(&t, &location(&r), "d1");

    let (status, _, _) = manage(
        Method::DELETE,
        reg["registration_client_uri"].as_str().unwrap(),
        reg["registration_access_token"].as_str(),
        None,
    )
    .await;
    assert_eq!(status, 204);

    let r = redeem(pending).await;
    assert_eq!(r.status(), 401);
    let got: Value = r.json().await.unwrap();
    assert_eq!(got["error"], "invalid_client", "{got}");
    let r = backchannel()
        .post(t.url("/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = backchannel()
        .get(t.url("/userinfo"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "its access tokens are revoked");
    // Nor does the code work for anyone else.
    let r = b.get(&authorize).send().await.unwrap();
    assert_ne!(r.status(), 303, "an unknown client is not redirected to");
}
