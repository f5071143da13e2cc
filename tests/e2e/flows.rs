//! Happy paths, each through the public protocol surface.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::*;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};

#[tokio::test]
async fn openidconnect_rp_code_pkce_userinfo_and_refresh() {
    let t = start("contoso").await;
    let http = backchannel();
    let meta =
        CoreProviderMetadata::discover_async(IssuerUrl::new(t.issuer.clone()).unwrap(), &http)
            .await
            .unwrap();
    let client = CoreClient::from_provider_metadata(
        meta,
        ClientId::new(RP_ID.into()),
        Some(ClientSecret::new(RP_SECRET.into())),
    )
    .set_redirect_uri(RedirectUrl::new(RP_REDIRECT.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();
    let b = browser();
    let redirect = sign_in(&t, &b, url.as_str(), ALICE, ALICE_PW).await;
    let code = code_from(&t, &redirect, csrf.secret());

    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    let id_token = tokens.id_token().expect("an ID token");
    let claims = id_token
        .claims(&client.id_token_verifier(), &nonce)
        .expect("ID token verifies");
    assert_eq!(claims.email().map(|e| e.as_str()), Some(ALICE));
    assert!(claims.auth_time().is_some());
    let raw: serde_json::Value = decode_payload(&id_token.to_string());
    assert_eq!(raw["tid"], "contoso");
    assert_eq!(raw["azp"], RP_ID);
    assert_eq!(raw["amr"], serde_json::json!(["pwd"]));
    assert!(raw["sid"].is_string());
    let at_header: serde_json::Value = decode_header(tokens.access_token().secret());
    assert_eq!(at_header["typ"], "at+jwt", "RFC 9068 access token");

    let info: CoreUserInfoClaims = client
        .user_info(tokens.access_token().clone(), None)
        .unwrap()
        .request_async(&http)
        .await
        .unwrap();
    assert_eq!(info.subject(), claims.subject());
    assert_eq!(info.email().map(|e| e.as_str()), Some(ALICE));

    let refreshed = client
        .exchange_refresh_token(tokens.refresh_token().unwrap())
        .unwrap()
        .request_async(&http)
        .await
        .unwrap();
    assert_ne!(
        refreshed.refresh_token().unwrap().secret(),
        tokens.refresh_token().unwrap().secret(),
        "refresh tokens rotate"
    );
    let info: CoreUserInfoClaims = client
        .user_info(refreshed.access_token().clone(), None)
        .unwrap()
        .request_async(&http)
        .await
        .unwrap();
    assert_eq!(info.subject(), claims.subject());
}

pub fn decode_payload(jwt: &str) -> serde_json::Value {
    decode_part(jwt, 1)
}

pub fn decode_header(jwt: &str) -> serde_json::Value {
    decode_part(jwt, 0)
}

fn decode_part(jwt: &str, i: usize) -> serde_json::Value {
    use base64::Engine;
    let part = jwt.split('.').nth(i).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn refresh_rotation_and_reuse_revokes_the_family() {
    let t = start("contoso").await;
    let b = browser();
    let first = alice_tokens(&t, &b).await;
    let rt1 = first["refresh_token"].as_str().unwrap().to_owned();
    let r = rp_token(
        &t,
        &[("grant_type", "refresh_token"), ("refresh_token", &rt1)],
    )
    .await;
    assert_eq!(r.status(), 200);
    let second: serde_json::Value = r.json().await.unwrap();
    let rt2 = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rt1, rt2);
    // Replaying the first token is reuse: refused, and the whole family dies.
    let r = rp_token(
        &t,
        &[("grant_type", "refresh_token"), ("refresh_token", &rt1)],
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    let r = rp_token(
        &t,
        &[("grant_type", "refresh_token"), ("refresh_token", &rt2)],
    )
    .await;
    assert_eq!(
        r.status(),
        400,
        "the rotated token is revoked with its family"
    );
    let at = second["access_token"].as_str().unwrap();
    let r = backchannel()
        .get(t.url("/userinfo"))
        .bearer_auth(at)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        401,
        "access tokens of the family are revoked too"
    );
}

#[tokio::test]
async fn scope_can_narrow_on_refresh_but_not_widen() {
    let t = start("contoso").await;
    let tokens = alice_tokens(&t, &browser()).await;
    let rt = tokens["refresh_token"].as_str().unwrap();
    let r = rp_token(
        &t,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("scope", "openid offline_access"),
        ],
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_scope"
    );
}

#[tokio::test]
async fn public_client_with_pkce_and_form_post() {
    let t = start("contoso").await;
    let b = browser();
    let verifier = "x".repeat(43) + "-verifier-for-the-public-client";
    let challenge = protocol::pkce::s256_challenge(&verifier);
    let url = t.url(&format!(
        "/authorize?response_type=code&client_id={PUBLIC_ID}&redirect_uri={}&scope=openid&state=s2&code_challenge={challenge}&code_challenge_method=S256&response_mode=form_post",
        urlenc(PUBLIC_REDIRECT)
    ));
    let r = b.get(&url).send().await.unwrap();
    let mut form = password_form(&t, &b, r, ALICE).await;
    form.push(("password".into(), ALICE_PW.into()));
    let r = b
        .post(t.url("/login/password"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "form_post answers with an auto-submitting form"
    );
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("form-action http://127.0.0.1:9556"), "{csp}");
    assert!(
        !csp.contains("'self'"),
        "its own policy, not the pages' default: {csp}"
    );
    let html = r.text().await.unwrap();
    assert!(html.contains(&format!("action=\"{PUBLIC_REDIRECT}\"")));
    let fields: std::collections::HashMap<_, _> = hidden_inputs(&html).into_iter().collect();
    assert_eq!(fields["state"], "s2");
    assert_eq!(fields["iss"], t.issuer);
    let r = backchannel()
        .post(t.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &fields["code"]),
            ("redirect_uri", PUBLIC_REDIRECT),
            ("client_id", PUBLIC_ID),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["id_token"].is_string());
}

#[tokio::test]
async fn session_sso_prompt_none_and_max_age() {
    let t = start("contoso").await;
    let b = browser();
    alice_tokens(&t, &b).await;
    // An existing session gives a code without any page.
    let r = b
        .get(rp_authorize(&t, "&prompt=none"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    code_from(&t, &location(&r), "st-1");
    // prompt=login and max_age=0 force the password again.
    for extra in ["&prompt=login", "&max_age=0"] {
        t.clock.advance(2);
        let r = b.get(rp_authorize(&t, extra)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{extra}");
        let page = r.text().await.unwrap();
        assert!(
            page.contains(r#"action="/login""#),
            "the email page: {extra}"
        );
    }
    // Without a session, prompt=none is an error sent to the client, with iss.
    let r = browser()
        .get(rp_authorize(&t, "&prompt=none"))
        .send()
        .await
        .unwrap();
    let q = query(&location(&r));
    assert_eq!(q["error"], "login_required");
    assert_eq!(q["iss"], t.issuer);
    assert_eq!(q["state"], "st-1");
}

#[tokio::test]
async fn consent_for_third_party_apps_and_offline_access_rules() {
    let t = start("contoso").await;
    let b = browser();
    let base = format!(
        "/authorize?response_type=code&client_id={THIRD_ID}&redirect_uri={}&scope=openid%20email%20offline_access&state=c1",
        urlenc(THIRD_REDIRECT)
    );
    // First: deny.
    let next = sign_in(&t, &b, &t.url(&base), ALICE, ALICE_PW).await;
    assert!(next.starts_with("/consent?interaction="), "{next}");
    let page = b
        .get(t.url(&next))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Partner App"));
    assert!(
        !page.contains("Keep access while you are away"),
        "offline_access without prompt=consent is dropped (OIDC Core 11)"
    );
    let mut form = hidden_inputs(&page);
    form.push(("decision".into(), "deny".into()));
    let r = b.post(t.url("/consent")).form(&form).send().await.unwrap();
    let q = query(&location(&r));
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["iss"], t.issuer);
    // With prompt=consent offline_access is asked for; accept.
    let r = b
        .get(t.url(&format!("{base}&prompt=consent")))
        .send()
        .await
        .unwrap();
    let page = b
        .get(t.url(&location(&r)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Keep access while you are away"));
    let mut form = hidden_inputs(&page);
    form.push(("decision".into(), "allow".into()));
    let r = b.post(t.url("/consent")).form(&form).send().await.unwrap();
    let code = code_from(&t, &location(&r), "c1");
    let r = backchannel()
        .post(t.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", THIRD_REDIRECT),
            ("client_id", THIRD_ID),
            ("client_secret", THIRD_SECRET),
        ])
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["scope"].as_str().unwrap().contains("offline_access"));
    // Consent is remembered: the next request (without offline_access) needs no page.
    let r = b
        .get(t.url(&base.replace("%20offline_access", "")))
        .send()
        .await
        .unwrap();
    code_from(&t, &location(&r), "c1");
}

#[tokio::test]
async fn logout_with_hint_redirects_and_ends_session_bound_tokens() {
    let t = start("contoso").await;
    let b = browser();
    let tokens = alice_tokens(&t, &b).await;
    let id_token = tokens["id_token"].as_str().unwrap();
    let url = t.url(&format!(
        "/logout?id_token_hint={id_token}&post_logout_redirect_uri={}&state=bye",
        urlenc(RP_LOGOUT)
    ));
    let r = b.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), format!("{RP_LOGOUT}?state=bye"));
    // The session is gone...
    let r = b
        .get(rp_authorize(&t, "&prompt=none"))
        .send()
        .await
        .unwrap();
    assert_eq!(query(&location(&r))["error"], "login_required");
    // ...and so are the refresh tokens bound to it (no offline_access).
    let r = rp_token(
        &t,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn logout_without_hint_asks_for_confirmation() {
    let t = start("contoso").await;
    let b = browser();
    alice_tokens(&t, &b).await;
    let r = b
        .get(t.url(&format!(
            "/logout?client_id={RP_ID}&post_logout_redirect_uri={}",
            urlenc(RP_LOGOUT)
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(page.contains("Sign out?"));
    let mut form = hidden_inputs(&page);
    form.push(("decision".into(), "yes".into()));
    let r = b
        .post(t.url("/logout/confirm"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(location(&r), RP_LOGOUT);
    let r = b
        .get(rp_authorize(&t, "&prompt=none"))
        .send()
        .await
        .unwrap();
    assert_eq!(query(&location(&r))["error"], "login_required");
}

#[tokio::test]
async fn client_credentials_introspection_and_revocation() {
    let t = start("contoso").await;
    let c = backchannel();
    let r = c
        .post(t.url("/token"))
        .basic_auth(CC_ID, Some(CC_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["scope"], "reports.read");
    assert!(body.get("refresh_token").is_none() && body.get("id_token").is_none());
    let at = body["access_token"].as_str().unwrap();
    let introspect = |token: String| {
        let c = c.clone();
        let url = t.url("/introspect");
        async move {
            let r = c
                .post(url)
                .basic_auth(CC_ID, Some(CC_SECRET))
                .form(&[("token", token.as_str())])
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.json::<serde_json::Value>().await.unwrap()
        }
    };
    let info = introspect(at.to_owned()).await;
    assert_eq!(info["active"], true);
    assert_eq!(info["client_id"], CC_ID);
    assert_eq!(info["sub"], CC_ID);
    // Another client cannot introspect it.
    let r = c
        .post(t.url("/introspect"))
        .basic_auth(RP_ID, Some(RP_SECRET))
        .form(&[("token", at)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["active"],
        false
    );
    // Revoke, then it is inactive.
    let r = c
        .post(t.url("/revoke"))
        .basic_auth(CC_ID, Some(CC_SECRET))
        .form(&[("token", at)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(introspect(at.to_owned()).await["active"], false);
    // Scopes outside the registration are refused.
    let r = c
        .post(t.url("/token"))
        .basic_auth(CC_ID, Some(CC_SECRET))
        .form(&[("grant_type", "client_credentials"), ("scope", "admin")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_scope"
    );
}

#[tokio::test]
async fn revoking_a_refresh_token_revokes_the_grant() {
    let t = start("contoso").await;
    let tokens = alice_tokens(&t, &browser()).await;
    let rt = tokens["refresh_token"].as_str().unwrap();
    let r = backchannel()
        .post(t.url("/revoke"))
        .basic_auth(RP_ID, Some(RP_SECRET))
        .form(&[("token", rt), ("token_type_hint", "refresh_token")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = rp_token(
        &t,
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
    )
    .await;
    assert_eq!(r.status(), 400);
    let r = backchannel()
        .get(t.url("/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn private_key_jwt_client_authentication_and_assertion_replay() {
    let t = start("contoso").await;
    let b = browser();
    let url = t.url(&format!(
        "/authorize?response_type=code&client_id={JWT_ID}&redirect_uri={}&scope=openid&state=j",
        urlenc(JWT_REDIRECT)
    ));
    let code = code_from(&t, &sign_in(&t, &b, &url, ALICE, ALICE_PW).await, "j");
    let f = fixtures();
    let now = t.state().now();
    let claims = serde_json::json!({"iss": JWT_ID, "sub": JWT_ID, "aud": t.url("/token"), "iat": now, "exp": now + 60, "jti": uuid::Uuid::new_v4().to_string()});
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(f.client_kid.clone());
    let assertion = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ec_pem(f.client_key_pem.as_bytes()).unwrap(),
    )
    .unwrap();
    let form = |code: &str| {
        vec![
            ("grant_type".to_owned(), "authorization_code".to_owned()),
            ("code".into(), code.to_owned()),
            ("redirect_uri".into(), JWT_REDIRECT.into()),
            (
                "client_assertion_type".into(),
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
            ),
            ("client_assertion".into(), assertion.clone()),
        ]
    };
    let r = backchannel()
        .post(t.url("/token"))
        .form(&form(&code))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // The same assertion again is a replay.
    let r = backchannel()
        .post(t.url("/token"))
        .form(&form("whatever"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_client"
    );
}

#[tokio::test]
async fn must_change_password_then_continue() {
    let t = start("contoso").await;
    add_user(&t, "temp@contoso.test", "temporary-pw-1", true).await;
    let b = browser();
    let r = b.get(rp_authorize(&t, "")).send().await.unwrap();
    let mut form = password_form(&t, &b, r, "temp@contoso.test").await;
    form.push(("password".into(), "temporary-pw-1".into()));
    let page = b
        .post(t.url("/login/password"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Change your password"));
    let base = hidden_inputs(&html);
    let mut form = base.clone();
    form.push(("new_password".into(), "short".into()));
    form.push(("confirm_password".into(), "short".into()));
    let page = b
        .post(t.url("/login/change-password"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert!(page.text().await.unwrap().contains("at least 8"));
    let mut form = base.clone();
    form.push(("new_password".into(), "a-brand-new-password".into()));
    form.push(("confirm_password".into(), "a-brand-new-password".into()));
    let r = b
        .post(t.url("/login/change-password"))
        .form(&form)
        .send()
        .await
        .unwrap();
    code_from(&t, &location(&r), "st-1");
    let user = t
        .state()
        .store
        .user_by_email("temp@contoso.test")
        .await
        .unwrap()
        .unwrap();
    assert!(!user.must_change_password);
    assert!(
        t.state()
            .passwords
            .verify("a-brand-new-password", user.password_hash.as_deref())
            .await
    );
}

#[tokio::test]
async fn every_password_attempt_is_in_the_sign_in_log() {
    let t = start("contoso").await;
    let b = browser();
    let r = b.get(rp_authorize(&t, "")).send().await.unwrap();
    let mut form = password_form(&t, &b, r, ALICE).await;
    form.push(("password".into(), "wrong-password".into()));
    let page = b
        .post(t.url("/login/password"))
        .header("x-forwarded-for", "198.51.100.7")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("Your email or password is incorrect.")
    );
    alice_tokens(&t, &b).await;
    let rows = t
        .state()
        .store
        .list_sign_ins(&store::SignInFilter::default())
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    let failure = rows.iter().find(|r| r.error_code != 0).unwrap();
    assert_eq!(failure.error_code, 50126);
    assert_eq!(
        failure.ip_address.as_deref(),
        Some("198.51.100.7"),
        "X-Forwarded-For believed from the trusted loopback proxy"
    );
    assert_eq!(failure.app_id.as_deref(), Some(RP_ID));
    let success = rows.iter().find(|r| r.error_code == 0).unwrap();
    assert_eq!(success.user_principal_name.as_deref(), Some(ALICE));
    assert_eq!(success.user_type, "member");
    assert!(!success.correlation_id.is_empty());
}

#[tokio::test]
async fn client_credentials_without_scope_is_not_admin() {
    let t = start_with("contoso", ADMIN_APP).await;
    let r: serde_json::Value = backchannel()
        .post(t.url("/token"))
        .basic_auth("admin-daemon", Some("admin-daemon-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["scope"], "", "no scope asked, no admin: {r}");
    let token = r["access_token"].as_str().unwrap();
    let r = backchannel()
        .get(t.url("/v1.0/auditLogs/signIns"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Asked for by name, it is granted and works.
    let r = backchannel()
        .get(t.url("/v1.0/auditLogs/signIns"))
        .bearer_auth(admin_token(&t).await)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// OIDC Core §3.1.2.1 and §5.3.1: the authorization and userinfo endpoints accept POST, and
/// userinfo takes the access token from a form body too (RFC 6750 §2.2).
#[tokio::test]
async fn authorize_and_userinfo_accept_post() {
    let t = start("contoso").await;
    let b = browser();
    let form = "application/x-www-form-urlencoded";
    let body = rp_authorize(&t, "").split_once('?').unwrap().1.to_owned();
    let r = b
        .post(t.url("/authorize"))
        .header("content-type", form)
        .body(body)
        .send()
        .await
        .unwrap();
    let redirect = submit_password(&t, &b, r, ALICE, ALICE_PW).await;
    let code = code_from(&t, &redirect, "st-1");
    let tokens: serde_json::Value = rp_token(
        &t,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", RP_REDIRECT),
        ],
    )
    .await
    .json()
    .await
    .unwrap();
    let at = tokens["access_token"].as_str().unwrap();
    let http = backchannel();
    let url = t.url("/userinfo");
    let answers = [
        http.get(&url).bearer_auth(at).send().await.unwrap(),
        http.post(&url).bearer_auth(at).send().await.unwrap(),
        http.post(&url)
            .form(&[("access_token", at)])
            .send()
            .await
            .unwrap(),
    ];
    for r in answers {
        assert_eq!(r.status(), 200);
        let info: serde_json::Value = r.json().await.unwrap();
        assert_eq!(info["email"], ALICE);
        assert!(info["sub"].is_string());
    }
    // One place only; and a form without a token is no token.
    let r = http
        .post(&url)
        .bearer_auth(at)
        .form(&[("access_token", at)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = http
        .post(&url)
        .form(&[("other", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
}

/// OIDC Core §5.5: standard claims asked for by name with the `claims` parameter are released
/// where they were asked for (ID token, userinfo) without their scope, on refresh too; the user
/// consents to them as to their scope; malformed JSON is `invalid_request`.
#[tokio::test]
async fn the_claims_parameter_releases_standard_claims_by_name() {
    let t = start("contoso").await;
    let meta: serde_json::Value = backchannel()
        .get(t.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["claims_parameter_supported"], true);
    let claims =
        r#"{"id_token":{"email":null,"name":{"essential":true}},"userinfo":{"email":null}}"#;
    let only_openid = |extra: &str| {
        rp_authorize(&t, &format!("&claims={}{extra}", urlenc(claims))).replace(
            "scope=openid%20profile%20email",
            "scope=openid%20offline_access",
        )
    };
    let b = browser();
    let redirect = sign_in(&t, &b, &only_openid(""), ALICE, ALICE_PW).await;
    let code = code_from(&t, &redirect, "st-1");
    let tokens: serde_json::Value = rp_token(
        &t,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", RP_REDIRECT),
        ],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(tokens["scope"], "offline_access openid");
    let id = decode_payload(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["email"], ALICE);
    assert_eq!(id["name"], "Alice Smith");
    for not_asked in ["email_verified", "preferred_username", "given_name"] {
        assert!(id.get(not_asked).is_none(), "{not_asked}: {id}");
    }
    let userinfo = |at: String| {
        let url = t.url("/userinfo");
        async move {
            backchannel()
                .get(url)
                .bearer_auth(at)
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let info = userinfo(tokens["access_token"].as_str().unwrap().to_owned()).await;
    assert_eq!(info["email"], ALICE);
    assert!(
        info.get("name").is_none(),
        "name was asked for in the ID token only"
    );
    // A refresh keeps what was asked for.
    let refreshed: serde_json::Value = rp_token(
        &t,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ],
    )
    .await
    .json()
    .await
    .unwrap();
    let id = decode_payload(refreshed["id_token"].as_str().unwrap());
    assert_eq!(id["email"], ALICE);
    assert_eq!(id["name"], "Alice Smith");
    let info = userinfo(refreshed["access_token"].as_str().unwrap().to_owned()).await;
    assert_eq!(info["email"], ALICE);
    // Without the parameter, the scope alone decides.
    let plain = rp_authorize(&t, "").replace("scope=openid%20profile%20email", "scope=openid");
    let r = b.get(plain).send().await.unwrap();
    let tokens: serde_json::Value = rp_token(
        &t,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code_from(&t, &location(&r), "st-1")),
            ("redirect_uri", RP_REDIRECT),
        ],
    )
    .await
    .json()
    .await
    .unwrap();
    let id = decode_payload(tokens["id_token"].as_str().unwrap());
    assert!(
        id.get("email").is_none() && id.get("name").is_none(),
        "{id}"
    );
    // Malformed: invalid_request to the app, with its state.
    let r = b
        .get(rp_authorize(&t, "&claims=%7B%22id_token%22%3A"))
        .send()
        .await
        .unwrap();
    let q = query(&location(&r));
    assert_eq!(q["error"], "invalid_request");
    assert_eq!(q["state"], "st-1");
    // A third-party app asks the user for what the claims reveal, as for the scope.
    let third = format!(
        "/authorize?response_type=code&client_id={THIRD_ID}&redirect_uri={}&scope=openid&state=c1&claims={}",
        urlenc(THIRD_REDIRECT),
        urlenc(r#"{"userinfo":{"email":null}}"#)
    );
    let r = b.get(t.url(&third)).send().await.unwrap();
    let next = location(&r);
    assert!(next.starts_with("/consent?interaction="), "{next}");
    let page = page_text(&b, t.url(&next)).await;
    assert!(page.contains("See your email address"), "{page}");
    assert!(!page.contains("See your name"));
}
