//! `/v1.0/applications`: apps registered while the tenant runs, used at once by a strict
//! third-party relying party, and gone at once when deleted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::*;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};
use serde_json::{Value, json};

const APP_REDIRECT: &str = "https://ci.example/cb";

async fn call(
    t: &TestTenant,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = backchannel()
        .request(method, t.url(path))
        .bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Registers a confidential app with one secret; returns (client id, secret).
async fn registered_app(t: &TestTenant, token: &str) -> (String, String) {
    let (status, app) = call(
        t,
        token,
        reqwest::Method::POST,
        "/v1.0/applications",
        Some(json!({
            "displayName": "CI app",
            "web": {"redirectUris": [APP_REDIRECT]},
        })),
    )
    .await;
    assert_eq!(status, 201, "{app}");
    let id = app["appId"].as_str().unwrap().to_owned();
    assert_eq!(app["id"], id.as_str());
    assert_eq!(
        app["tenantd"]["tokenEndpointAuthMethod"],
        "client_secret_basic"
    );
    assert_eq!(app["tenantd"]["readOnly"], false);
    let (status, cred) = call(
        t,
        token,
        reqwest::Method::POST,
        &format!("/v1.0/applications/{id}/addPassword"),
        Some(json!({"passwordCredential": {"displayName": "ci"}})),
    )
    .await;
    assert_eq!(status, 200, "{cred}");
    (id, cred["secretText"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn an_app_registered_over_the_api_signs_users_in_with_an_openidconnect_rp() {
    let t = start_with("contoso", ADMIN_APP).await;
    let token = admin_token(&t).await;
    let (client_id, secret) = registered_app(&t, &token).await;

    let http = backchannel();
    let meta =
        CoreProviderMetadata::discover_async(IssuerUrl::new(t.issuer.clone()).unwrap(), &http)
            .await
            .unwrap();
    let client = CoreClient::from_provider_metadata(
        meta,
        ClientId::new(client_id.clone()),
        Some(ClientSecret::new(secret.clone())),
    )
    .set_redirect_uri(RedirectUrl::new(APP_REDIRECT.into()).unwrap());
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
    // The password page's CSP lets its form's answer (a 303 to the app) reach the app, which
    // the tenant learnt of after it started (browsers hold redirects to `form-action`).
    let b = browser();
    let page = b.get(url.as_str()).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let mut form = hidden_inputs(&page.text().await.unwrap());
    form.push(("email".into(), ALICE.into()));
    let page = b.post(t.url("/login")).form(&form).send().await.unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("form-action 'self'") && csp.contains("https://ci.example"),
        "{csp}"
    );
    let redirect = sign_in(&t, &b, url.as_str(), ALICE, ALICE_PW).await;
    // Not first-party: the consent page comes first.
    assert!(redirect.starts_with("/consent"), "{redirect}");
    let redirect = consent(&t, &b, &redirect).await;
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
        .unwrap()
        .claims(&client.id_token_verifier(), &nonce)
        .unwrap();
    assert_eq!(claims.email().map(|e| e.as_str()), Some(ALICE));
    assert_eq!(claims.audiences()[0].as_str(), client_id);

    // A second secret, then the first removed: it stops working at once.
    let (status, cred) = call(
        &t,
        &token,
        reqwest::Method::POST,
        &format!("/v1.0/applications/{client_id}/addPassword"),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 200);
    let second = cred["secretText"].as_str().unwrap().to_owned();
    let (_, app) = call(
        &t,
        &token,
        reqwest::Method::GET,
        &format!("/v1.0/applications/{client_id}"),
        None,
    )
    .await;
    let creds = app["passwordCredentials"].as_array().unwrap();
    assert_eq!(creds.len(), 2);
    assert!(creds.iter().all(|c| c["secretText"].is_null()), "{app}");
    let first_key = creds.iter().find(|c| c["displayName"] == "ci").unwrap()["keyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = call(
        &t,
        &token,
        reqwest::Method::POST,
        &format!("/v1.0/applications/{client_id}/removePassword"),
        Some(json!({"keyId": first_key})),
    )
    .await;
    assert_eq!(status, 204);
    let refresh = |secret: String| {
        let rt = tokens.refresh_token().unwrap().secret().clone();
        let client_id = client_id.clone();
        let t = &t;
        async move {
            backchannel()
                .post(t.url("/token"))
                .basic_auth(&client_id, Some(secret))
                .form(&[("grant_type", "refresh_token"), ("refresh_token", &rt)])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(refresh(secret).await, 401, "a removed secret is refused");
    assert_eq!(refresh(second).await, 200);
}

#[tokio::test]
async fn bad_registrations_and_config_apps_change_nothing() {
    let t = start_with("contoso", ADMIN_APP).await;
    let token = admin_token(&t).await;
    let count = |v: &Value| v["value"].as_array().unwrap().len();
    let (status, before) = call(&t, &token, reqwest::Method::GET, "/v1.0/applications", None).await;
    assert_eq!(status, 200);
    // The config file's apps are listed, read-only.
    let lab_rp = before["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["appId"] == RP_ID)
        .unwrap();
    assert_eq!(lab_rp["tenantd"]["readOnly"], true);
    assert_eq!(lab_rp["tenantd"]["source"], "config");
    for body in [
        json!({"displayName": "x", "web": {"redirectUris": ["http://ci.example/cb"]}}),
        json!({"displayName": "x", "web": {"redirectUris": ["https://ci.example/cb#f"]}}),
        json!({"displayName": "x", "web": {"redirectUris": [APP_REDIRECT]}, "tenantd": {"grantTypes": ["implicit"]}}),
        json!({"displayName": "x", "web": {"redirectUris": [APP_REDIRECT]}, "tenantd": {"tokenEndpointAuthMethod": "private_key_jwt"}}),
        json!({"displayName": "x", "web": {"redirectUris": [APP_REDIRECT]}, "unknownField": 1}),
        json!({"web": {"redirectUris": [APP_REDIRECT]}}),
        json!({"displayName": "x", "web": {"redirectUris": []}}),
    ] {
        let (status, err) = call(
            &t,
            &token,
            reqwest::Method::POST,
            "/v1.0/applications",
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, 400, "{body} -> {err}");
        assert_eq!(err["error"]["code"], "BadRequest", "{err}");
    }
    // Without the admin scope: refused.
    let (status, _) = call(
        &t,
        "not-a-token",
        reqwest::Method::POST,
        "/v1.0/applications",
        Some(json!({"displayName": "x", "web": {"redirectUris": [APP_REDIRECT]}})),
    )
    .await;
    assert_eq!(status, 401);
    let daemon: Value = backchannel()
        .post(t.url("/token"))
        .basic_auth(CC_ID, Some(CC_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (status, _) = call(
        &t,
        daemon["access_token"].as_str().unwrap(),
        reqwest::Method::GET,
        "/v1.0/applications",
        None,
    )
    .await;
    assert_eq!(status, 403);
    // The config file's apps are changed in the file only.
    for (method, path, body) in [
        (
            reqwest::Method::PATCH,
            format!("/v1.0/applications/{RP_ID}"),
            Some(json!({"displayName": "renamed"})),
        ),
        (
            reqwest::Method::DELETE,
            format!("/v1.0/applications/{RP_ID}"),
            None,
        ),
        (
            reqwest::Method::POST,
            format!("/v1.0/applications/{RP_ID}/addPassword"),
            Some(json!({})),
        ),
    ] {
        let (status, err) = call(&t, &token, method, &path, body).await;
        assert_eq!(status, 409, "{path}: {err}");
    }
    let (status, err) = call(
        &t,
        &token,
        reqwest::Method::GET,
        "/v1.0/applications?$filter=displayName%20eq%20'x'",
        None,
    )
    .await;
    assert_eq!(status, 400, "a filter is never ignored");
    assert_eq!(err["error"]["code"], "Request_UnsupportedQuery");
    let (_, after) = call(&t, &token, reqwest::Method::GET, "/v1.0/applications", None).await;
    assert_eq!(count(&after), count(&before));
    assert_eq!(after, before);

    // A public client from Graph's publicClient: no secret, PKCE only.
    let (status, spa) = call(
        &t,
        &token,
        reqwest::Method::POST,
        "/v1.0/applications",
        Some(json!({"displayName": "Native", "publicClient": {"redirectUris": ["http://127.0.0.1:7777/cb"]}})),
    )
    .await;
    assert_eq!(status, 201, "{spa}");
    assert_eq!(spa["tenantd"]["tokenEndpointAuthMethod"], "none");
    assert_eq!(spa["isFallbackPublicClient"], true);
    let id = spa["appId"].as_str().unwrap();
    let (status, _) = call(
        &t,
        &token,
        reqwest::Method::POST,
        &format!("/v1.0/applications/{id}/addPassword"),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 400, "a public client has no secret");
    // PATCH changes what it names and keeps the rest.
    let (status, _) = call(
        &t,
        &token,
        reqwest::Method::PATCH,
        &format!("/v1.0/applications/{id}"),
        Some(json!({"displayName": "Native 2"})),
    )
    .await;
    assert_eq!(status, 204);
    let (_, spa) = call(
        &t,
        &token,
        reqwest::Method::GET,
        &format!("/v1.0/applications/{id}"),
        None,
    )
    .await;
    assert_eq!(spa["displayName"], "Native 2");
    assert_eq!(
        spa["publicClient"]["redirectUris"][0],
        "http://127.0.0.1:7777/cb"
    );
}

#[tokio::test]
async fn an_app_deleted_mid_session_can_no_longer_redeem_codes_or_refresh() {
    let t = start_with("contoso", ADMIN_APP).await;
    let token = admin_token(&t).await;
    let (client_id, secret) = registered_app(&t, &token).await;
    let (status, _) = call(
        &t,
        &token,
        reqwest::Method::PATCH,
        &format!("/v1.0/applications/{client_id}"),
        Some(json!({"tenantd": {"firstParty": true}})),
    )
    .await;
    assert_eq!(status, 204);
    let authorize = |state: &str| {
        format!(
            "{}/authorize?response_type=code&client_id={client_id}&redirect_uri={}&scope=openid%20offline_access&state={state}&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&prompt=consent",
            t.issuer,
            urlenc(APP_REDIRECT)
        )
    };
    let b = browser();
    let redirect = sign_in(&t, &b, &authorize("s1"), ALICE, ALICE_PW).await;
    let redirect = if redirect.starts_with("/consent") {
        consent(&t, &b, &redirect).await
    } else {
        redirect
    };
    let exchange = |code: String| {
        let (client_id, secret) = (client_id.clone(), secret.clone());
        let t = &t;
        async move {
            backchannel()
                .post(t.url("/token"))
                .basic_auth(&client_id, Some(secret))
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", APP_REDIRECT),
                    (
                        "code_verifier",
                        "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
                    ),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let r = exchange(code_from(&t, &redirect, "s1")).await;
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.unwrap();
    // A second code, held while the app is deleted.
    let redirect = sign_in(&t, &b, &authorize("s2"), ALICE, ALICE_PW).await;
    let redirect = if redirect.starts_with("/consent") {
        consent(&t, &b, &redirect).await
    } else {
        redirect
    };
    let held = code_from(&t, &redirect, "s2");

    let (status, _) = call(
        &t,
        &token,
        reqwest::Method::DELETE,
        &format!("/v1.0/applications/{client_id}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let r = exchange(held).await;
    assert_eq!(r.status(), 401, "an unknown client");
    let r = backchannel()
        .post(t.url("/token"))
        .basic_auth(&client_id, Some(&secret))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = backchannel()
        .get(t.url("/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "its access tokens end with it");
    let r = browser().get(authorize("s3")).send().await.unwrap();
    assert_eq!(r.status(), 400, "authorize no longer knows it");
    let (status, _) = call(
        &t,
        &token,
        reqwest::Method::GET,
        &format!("/v1.0/applications/{client_id}"),
        None,
    )
    .await;
    assert_eq!(status, 404);
}
