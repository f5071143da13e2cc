//! One test per security rule (RFC 9700 and friends). Each asserts the refusal and that
//! nothing usable was issued or stored.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::*;

/// Nothing pending or issued: purging "far in the future" removes no rows.
async fn assert_nothing_stored(t: &TestTenant) {
    let purged = t
        .state()
        .store
        .purge_expired(t.state().now() + 10 * 365 * 86_400)
        .await
        .unwrap();
    assert_eq!(purged, 0, "a refused request must not store anything");
}

#[tokio::test]
async fn redirect_uri_must_match_exactly_and_is_never_used_otherwise() {
    let t = start("contoso").await;
    for bad in [
        "http://127.0.0.1:9555/callback/",
        "http://127.0.0.1:9555/callback?x=1",
        "http://127.0.0.1:9555/Callback",
        "https://evil.test/callback",
    ] {
        let url = rp_authorize(&t, "").replace(&urlenc(RP_REDIRECT), &urlenc(bad));
        let r = browser().get(&url).send().await.unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        assert!(
            r.headers().get("location").is_none(),
            "no redirect to an unregistered URI: {bad}"
        );
        assert!(r.text().await.unwrap().contains("Invalid sign-in request"));
    }
    // At the token endpoint too.
    let b = browser();
    let code = code_from(
        &t,
        &sign_in(&t, &b, &rp_authorize(&t, ""), ALICE, ALICE_PW).await,
        "st-1",
    );
    let r = rp_token(
        &t,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:9555/callback/"),
        ],
    )
    .await;
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_grant"
    );
}

#[tokio::test]
async fn code_reuse_fails_and_revokes_tokens_from_the_first_use() {
    let t = start("contoso").await;
    let b = browser();
    let code = code_from(
        &t,
        &sign_in(&t, &b, &rp_authorize(&t, ""), ALICE, ALICE_PW).await,
        "st-1",
    );
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", RP_REDIRECT),
    ];
    let first: serde_json::Value = rp_token(&t, &form).await.json().await.unwrap();
    let at = first["access_token"].as_str().unwrap();
    let r = backchannel()
        .get(t.url("/userinfo"))
        .bearer_auth(at)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = rp_token(&t, &form).await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    let r = backchannel()
        .get(t.url("/userinfo"))
        .bearer_auth(at)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the first use's access token is revoked");
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    let r = rp_token(
        &t,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", first["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(r.status(), 400, "and so is its refresh token");
}

#[tokio::test]
async fn pkce_missing_wrong_plain_and_downgrade_are_refused() {
    let t = start("contoso").await;
    let b = browser();
    alice_tokens(&t, &b).await; // a session, so authorize answers at once
    let public = |extra: &str| {
        t.url(&format!("/authorize?response_type=code&client_id={PUBLIC_ID}&redirect_uri={}&scope=openid&state=p{extra}", urlenc(PUBLIC_REDIRECT)))
    };
    // Missing for a public client.
    let r = b.get(public("")).send().await.unwrap();
    let q = query(&location(&r));
    assert_eq!(q["error"], "invalid_request");
    assert_eq!(q["iss"], t.issuer);
    // plain.
    let r = b
        .get(public(&format!(
            "&code_challenge={}&code_challenge_method=plain",
            "a".repeat(43)
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(query(&location(&r))["error"], "invalid_request");
    // Wrong verifier.
    let verifier = "v".repeat(50);
    let r = b
        .get(public(&format!(
            "&code_challenge={}&code_challenge_method=S256",
            protocol::pkce::s256_challenge(&verifier)
        )))
        .send()
        .await
        .unwrap();
    let code = code_from(&t, &location(&r), "p");
    let token = |code: String, verifier: Option<String>| {
        let mut form = vec![
            ("grant_type".to_owned(), "authorization_code".to_owned()),
            ("code".into(), code),
            ("redirect_uri".into(), PUBLIC_REDIRECT.into()),
            ("client_id".into(), PUBLIC_ID.into()),
        ];
        if let Some(v) = verifier {
            form.push(("code_verifier".into(), v));
        }
        let url = t.url("/token");
        async move {
            backchannel()
                .post(url)
                .form(&form)
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    assert_eq!(
        token(code.clone(), Some("w".repeat(50))).await["error"],
        "invalid_grant"
    );
    assert_eq!(
        token(code, Some(verifier)).await["error"],
        "invalid_grant",
        "a code is dead after a failed PKCE check"
    );
    // Missing verifier for a code issued with a challenge.
    let verifier = "z".repeat(60);
    let r = b
        .get(public(&format!(
            "&code_challenge={}&code_challenge_method=S256",
            protocol::pkce::s256_challenge(&verifier)
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(
        token(code_from(&t, &location(&r), "p"), None).await["error"],
        "invalid_grant"
    );
    // Downgrade: no challenge at authorize (confidential client), verifier at the token endpoint.
    let r = b.get(rp_authorize(&t, "")).send().await.unwrap();
    let code = code_from(&t, &location(&r), "st-1");
    let r = rp_token(
        &t,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", RP_REDIRECT),
            ("code_verifier", &"d".repeat(50)),
        ],
    )
    .await;
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_grant"
    );
}

fn b64(v: &serde_json::Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

#[tokio::test]
async fn alg_none_and_hs256_tokens_are_refused_everywhere() {
    let t = start("contoso").await;
    let tokens = alice_tokens(&t, &browser()).await;
    let real = tokens["access_token"].as_str().unwrap();
    let header = crate::flows::decode_header(real);
    let claims = crate::flows::decode_payload(real);
    let kid = header["kid"].as_str().unwrap();
    let none = format!(
        "{}.{}.",
        b64(&serde_json::json!({"alg": "none", "typ": "at+jwt", "kid": kid})),
        b64(&claims)
    );
    // HS256 keyed with the public JWKS (the classic RS/HS confusion).
    let jwks = backchannel()
        .get(t.url("/jwks"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    h.kid = Some(kid.into());
    h.typ = Some("at+jwt".into());
    let hs = jsonwebtoken::encode(
        &h,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(jwks.as_bytes()),
    )
    .unwrap();
    for forged in [none.as_str(), hs.as_str()] {
        let r = backchannel()
            .get(t.url("/userinfo"))
            .bearer_auth(forged)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let r = backchannel()
            .post(t.url("/introspect"))
            .basic_auth(RP_ID, Some(RP_SECRET))
            .form(&[("token", forged)])
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.json::<serde_json::Value>().await.unwrap()["active"],
            false
        );
        let r = browser()
            .get(t.url(&format!("/logout?id_token_hint={forged}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "forged id_token_hint refused");
    }
    // An ID token is not an access token.
    let r = backchannel()
        .get(t.url("/userinfo"))
        .bearer_auth(tokens["id_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn unknown_client_and_wrong_secret() {
    let t = start("contoso").await;
    let r = browser()
        .get(rp_authorize(&t, "").replace("client_id=lab-rp", "client_id=nobody"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
    for (id, secret) in [("nobody", "whatever-secret"), (RP_ID, "wrong-secret")] {
        let r = backchannel()
            .post(t.url("/token"))
            .basic_auth(id, Some(secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", "x"),
                ("redirect_uri", RP_REDIRECT),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        assert!(
            r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Basic")
        );
        assert_eq!(r.headers()["cache-control"], "no-store");
        assert_eq!(
            r.json::<serde_json::Value>().await.unwrap()["error"],
            "invalid_client"
        );
    }
    // A client registered for client_sec_post cannot use Basic.
    let r = backchannel()
        .post(t.url("/token"))
        .basic_auth(THIRD_ID, Some(THIRD_SECRET))
        .form(&[("grant_type", "authorization_code"), ("code", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn expired_code_is_refused() {
    let t = start("contoso").await;
    let b = browser();
    let code = code_from(
        &t,
        &sign_in(&t, &b, &rp_authorize(&t, ""), ALICE, ALICE_PW).await,
        "st-1",
    );
    t.clock.advance(61);
    let r = rp_token(
        &t,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", RP_REDIRECT),
        ],
    )
    .await;
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
}

#[tokio::test]
async fn csrf_token_missing_or_wrong_is_refused() {
    let t = start("contoso").await;
    let b = browser();
    let page = sign_in_page(&b, rp_authorize(&t, "")).await;
    let form: Vec<(String, String)> = hidden_inputs(&page);
    let interaction = form
        .iter()
        .find(|(k, _)| k == "interaction")
        .unwrap()
        .1
        .clone();
    for csrf in [None, Some("A".repeat(43))] {
        let mut f = vec![
            ("interaction".to_owned(), interaction.clone()),
            ("email".into(), ALICE.into()),
            ("password".into(), ALICE_PW.into()),
        ];
        if let Some(c) = csrf {
            f.push(("csrf_token".into(), c));
        }
        let r = b
            .post(t.url("/login/password"))
            .form(&f)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        assert!(r.headers().get("location").is_none());
        assert!(
            r.headers()
                .get_all("set-cookie")
                .iter()
                .all(|c| !c.to_str().unwrap().contains("-session=")),
            "no session"
        );
    }
    // A fresh browser without the CSRF cookie cannot replay someone's form either.
    let r = browser()
        .post(t.url("/login/password"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn logout_cannot_be_an_open_redirect() {
    let t = start("contoso").await;
    let b = browser();
    let tokens = alice_tokens(&t, &b).await;
    let hint = tokens["id_token"].as_str().unwrap();
    for target in [
        "https://evil.test/",
        "http://127.0.0.1:9555/other",
        "//evil.test",
        "http://127.0.0.1:9555",
    ] {
        for q in [
            format!(
                "/logout?id_token_hint={hint}&post_logout_redirect_uri={}",
                urlenc(target)
            ),
            format!(
                "/logout?client_id={RP_ID}&post_logout_redirect_uri={}",
                urlenc(target)
            ),
            format!("/logout?post_logout_redirect_uri={}", urlenc(target)),
        ] {
            let r = b.get(t.url(&q)).send().await.unwrap();
            assert_eq!(r.status(), 400, "{q}");
            assert!(r.headers().get("location").is_none());
            // A page in plain words, naming the tenant and the request's correlation id.
            let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
            let page = r.text().await.unwrap();
            assert!(
                page.contains("Tenant contoso") && page.contains(&id),
                "{page}"
            );
        }
    }
    // Mismatched client_id and hint.
    let r = b
        .get(t.url(&format!(
            "/logout?id_token_hint={hint}&client_id={THIRD_ID}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // The session survived all of that.
    let r = b
        .get(rp_authorize(&t, "&prompt=none"))
        .send()
        .await
        .unwrap();
    code_from(&t, &location(&r), "st-1");
}

#[tokio::test]
async fn oversized_and_malformed_parameters_get_a_clear_400_and_store_nothing() {
    let t = start("contoso").await;
    let b = browser();
    let long_state = "s".repeat(5000);
    let cases = [
        rp_authorize(&t, &format!("&state={long_state}")).replace("state=st-1&", ""),
        rp_authorize(&t, "&scope=openid"),
        rp_authorize(&t, "&response_type=code"),
        t.url("/authorize?client_id=%FF%FE&redirect_uri=x"),
        t.url("/authorize"),
    ];
    for url in &cases {
        let r = b.get(url).send().await.unwrap();
        assert_eq!(r.status(), 400, "{url}");
        assert!(r.headers().get("location").is_none());
    }
    let r = b
        .get(rp_authorize(&t, &format!("&x={}", "y".repeat(9000))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 414);
    // Token endpoint: wrong content type, repeated parameter, bad grant.
    let r = backchannel()
        .post(t.url("/token"))
        .basic_auth(RP_ID, Some(RP_SECRET))
        .json(&serde_json::json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_request"
    );
    let r = backchannel()
        .post(t.url("/token"))
        .basic_auth(RP_ID, Some(RP_SECRET))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=authorization_code&code=a&code=b")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_request"
    );
    let r = rp_token(
        &t,
        &[
            ("grant_type", "password"),
            ("username", ALICE),
            ("password", ALICE_PW),
        ],
    )
    .await;
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );
    let r = backchannel()
        .post(t.url("/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'a'; 70 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_nothing_stored(&t).await;
}

#[tokio::test]
async fn cookies_are_httponly_secure_lax_and_named_per_tenant() {
    let a = start("contoso").await;
    let f = start("fabrikam").await;
    for (t, name) in [(&a, "contoso"), (&f, "fabrikam")] {
        let b = browser();
        let page = b.get(rp_authorize(t, "")).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let mut cookies: Vec<String> = page
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        let mut form = hidden_inputs(&page.text().await.unwrap());
        form.push(("email".into(), ALICE.into()));
        let page = b.post(t.url("/login")).form(&form).send().await.unwrap();
        let mut form = hidden_inputs(&page.text().await.unwrap());
        form.push(("password".into(), ALICE_PW.into()));
        let r = b
            .post(t.url("/login/password"))
            .form(&form)
            .send()
            .await
            .unwrap();
        cookies.extend(
            r.headers()
                .get_all("set-cookie")
                .iter()
                .map(|v| v.to_str().unwrap().to_owned()),
        );
        assert!(
            cookies
                .iter()
                .any(|c| c.starts_with(&format!("__Host-tenantd-{name}-session="))),
            "{cookies:?}"
        );
        assert!(
            cookies
                .iter()
                .any(|c| c.starts_with(&format!("__Host-tenantd-{name}-csrf="))),
            "{cookies:?}"
        );
        for c in &cookies {
            assert!(
                c.contains("HttpOnly")
                    && c.contains("Secure")
                    && c.contains("SameSite=Lax")
                    && c.contains("Path=/"),
                "{c}"
            );
            assert!(!c.contains("Domain="), "host-only: {c}");
        }
    }
}

#[tokio::test]
async fn disabled_user_cannot_sign_in_and_pages_do_not_enumerate_accounts() {
    let t = start("contoso").await;
    let user = t.state().store.user_by_email(ALICE).await.unwrap().unwrap();
    t.state()
        .store
        .set_user_status(&user.id, store::UserStatus::Disabled, t.state().now())
        .await
        .unwrap();
    let b = browser();
    let attempt = |email: &'static str, pw: &'static str| {
        let b = b.clone();
        let t = &t;
        async move {
            let r = b.get(rp_authorize(t, "")).send().await.unwrap();
            let mut form = password_form(t, &b, r, email).await;
            form.push(("password".into(), pw.into()));
            let r = b
                .post(t.url("/login/password"))
                .form(&form)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "stays on the password page");
            r.text().await.unwrap()
        }
    };
    assert!(attempt(ALICE, ALICE_PW).await.contains("disabled"));
    let unknown = attempt("nobody@contoso.test", "whatever-pw").await;
    let wrong = attempt("bob@contoso.test", "whatever-pw").await;
    assert!(unknown.contains("Your email or password is incorrect."));
    assert!(wrong.contains("Your email or password is incorrect."));
    let rows = t
        .state()
        .store
        .list_sign_ins(&store::SignInFilter::default())
        .await
        .unwrap();
    let mut codes: Vec<i64> = rows.iter().map(|r| r.error_code).collect();
    codes.sort();
    assert_eq!(codes, vec![50034, 50034, 50057]);
}

#[tokio::test]
async fn security_headers_on_pages() {
    let t = start("contoso").await;
    let b = browser();
    let r = b.get(rp_authorize(&t, "")).send().await.unwrap();
    assert_eq!(r.status(), 200, "the email page");
    let h = r.headers();
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    // Forms post here, and end (after a 303, which Chrome and Safari check too) only at the
    // apps' registered redirect URIs.
    assert!(
        csp.contains("form-action 'self' http://127.0.0.1:9555 http://127.0.0.1:9556 https://jwt.test https://partner.test;"),
        "{csp}"
    );
    // Served over TLS: HSTS, on pages and on the API alike.
    assert_eq!(h["strict-transport-security"], "max-age=31536000");
    let r = backchannel()
        .get(t.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["strict-transport-security"], "max-age=31536000");
    assert_eq!(h["cache-control"], "no-store");
    assert!(h.get("x-request-id").is_some());
    // Autoescaping: a hostile login_hint is rendered inert.
    let r = b
        .get(rp_authorize(
            &t,
            "&prompt=login&login_hint=%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(!html.contains("<script>alert(1)"));
    assert!(
        html.contains("&#34;&#62;&#60;script&#62;") || html.contains("&quot;&gt;&lt;script&gt;"),
        "{html}"
    );
}

/// Pages, the federation callback and the admin API refuse text that is not UTF-8 (400) instead
/// of acting on a value with replacement characters, and the refusal changes nothing: the same
/// sign-in goes on with the right bytes.
#[tokio::test]
async fn pages_callbacks_and_the_admin_api_refuse_text_that_is_not_utf8() {
    let t = start_with("contoso", ADMIN_APP).await;
    let b = browser();
    let r = b.get(rp_authorize(&t, "")).send().await.unwrap();
    let mut form = password_form(&t, &b, r, ALICE).await;
    form.push(("password".into(), ALICE_PW.into()));
    let encoded = |form: &[(String, String)]| {
        form.iter()
            .map(|(k, v)| format!("{}={}", urlenc(k), urlenc(v)))
            .collect::<Vec<_>>()
            .join("&")
    };
    let good = encoded(&form);
    for bad in [
        good.replace(&urlenc(ALICE_PW), "alice-test-password%FF"),
        format!("{good}&extra=%C3"),
    ] {
        let r = b
            .post(t.url("/login/password"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert!(r.text().await.unwrap().contains("not valid UTF-8"));
    }
    let r = b
        .post(t.url("/login/password"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "the refusals used nothing up");
    code_from(&t, &location(&r), "st-1");

    let r = b
        .get(t.url("/federation/callback?code=abc&state=%FF%FE"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("not valid UTF-8"));

    let token = admin_token(&t).await;
    for path in [
        "/v1.0/auditLogs/signIns?$filter=userPrincipalName%20eq%20'%FF'",
        "/v1.0/identityProtection/riskDetections?$filter=userId%20eq%20'%FF'",
    ] {
        let r = backchannel()
            .get(t.url(path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{path}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "BadRequest", "{path}");
    }
}

/// RFC 6749 §3.1 / §4.1.2.1: parameters whose bytes are not UTF-8 are refused with
/// `invalid_request`, never decoded with replacement characters, and an altered `state` is
/// never sent back.
#[tokio::test]
async fn parameters_that_are_not_utf8_are_refused_never_altered() {
    let t = start("contoso").await;
    let b = browser();
    let refused_to_app = |r: &reqwest::Response, state: Option<&str>| {
        assert_eq!(r.status(), 303, "{}", r.url());
        let to = location(r);
        assert!(to.starts_with(RP_REDIRECT), "{to}");
        let q = query(&to);
        assert_eq!(q["error"], "invalid_request", "{to}");
        assert_eq!(q["iss"], t.issuer);
        assert_eq!(q.get("state").map(String::as_str), state, "{to}");
    };
    // Client and redirect URI known to be right: the error goes to the app, without the state.
    let bad_state = rp_authorize(&t, "").replace("state=st-1", "state=%FF%FE");
    let r = b.get(&bad_state).send().await.unwrap();
    refused_to_app(&r, None);
    // Another parameter that is not UTF-8: the readable state comes back.
    let r = b
        .get(rp_authorize(&t, "&login_hint=x%C3"))
        .send()
        .await
        .unwrap();
    refused_to_app(&r, Some("st-1"));
    // The same as a form POST, percent-encoded or as raw bytes.
    let body = bad_state.split_once('?').unwrap().1.to_owned();
    let mut raw = rp_authorize(&t, "")
        .split_once('?')
        .unwrap()
        .1
        .replace("state=st-1", "state=")
        .into_bytes();
    raw.extend_from_slice(b"&login_hint=\xff\xfe");
    for body in [body.into_bytes(), raw] {
        let r = b
            .post(t.url("/authorize"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        refused_to_app(&r, None);
    }
    // Until client and redirect URI are known to be right: a page, no redirect.
    for url in [
        rp_authorize(&t, "").replace(&urlenc(RP_REDIRECT), "http%3A%2F%2F127.0.0.1%3A9555%2F%FF"),
        rp_authorize(&t, "").replace("client_id=lab-rp", "client_id=lab-rp%FF"),
    ] {
        let r = b.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 400, "{url}");
        assert!(r.headers().get("location").is_none());
        assert!(r.text().await.unwrap().contains("not valid UTF-8"));
    }
    // Back channel: token, revocation, introspection, userinfo; Basic credentials too.
    for path in ["/token", "/revoke", "/introspect"] {
        let r = backchannel()
            .post(t.url(path))
            .basic_auth(RP_ID, Some(RP_SECRET))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials&token=t%FF")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{path}");
        assert_eq!(
            r.json::<serde_json::Value>().await.unwrap()["error"],
            "invalid_request",
            "{path}"
        );
    }
    let r = backchannel()
        .post(t.url("/token"))
        .basic_auth(RP_ID, Some("lab-rp-secret%FF"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_request"
    );
    let r = backchannel()
        .post(t.url("/userinfo"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("access_token=a%FF")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_request"
    );
    // Logout: a page, and no redirect carrying an altered state.
    let logout = format!(
        "client_id={RP_ID}&post_logout_redirect_uri={}&state=%FF",
        urlenc(RP_LOGOUT)
    );
    let r = b
        .get(t.url(&format!("/logout?{logout}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
    let r = b
        .post(t.url("/logout"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(logout)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
    assert_nothing_stored(&t).await;
}

/// RFC 6749 §4.1.2: `state` comes back exactly as sent, whatever valid UTF-8 it holds, in the
/// success redirect, the error redirect and `form_post`.
#[tokio::test]
async fn an_awkward_state_comes_back_byte_for_byte() {
    let t = start("contoso").await;
    let b = browser();
    let state = "a b+c&d=e;f/g?h#i %20%zz% \u{e9}t\u{e9} \u{2713}\u{1F600} \"<'>\\";
    let with_state = |extra: &str| {
        rp_authorize(&t, extra).replace("state=st-1", &format!("state={}", urlenc(state)))
    };
    // An error redirect (no session yet).
    let r = b.get(with_state("&prompt=none")).send().await.unwrap();
    let q = query(&location(&r));
    assert_eq!(q["error"], "login_required");
    assert_eq!(q["state"], state);
    // Success, through the sign-in pages.
    let redirect = sign_in(&t, &b, &with_state(""), ALICE, ALICE_PW).await;
    code_from(&t, &redirect, state);
    // Single sign-on, and the same request as a POST.
    let r = b.get(with_state("")).send().await.unwrap();
    code_from(&t, &location(&r), state);
    let r = b
        .post(t.url("/authorize"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(with_state("").split_once('?').unwrap().1.to_owned())
        .send()
        .await
        .unwrap();
    code_from(&t, &location(&r), state);
    // form_post: the hidden field holds it exactly.
    let r = b
        .get(with_state("&response_mode=form_post"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let fields = hidden_inputs(&r.text().await.unwrap());
    let got: std::collections::HashMap<_, _> = fields.into_iter().collect();
    assert_eq!(got["state"], state);
    assert!(got.contains_key("code"));
}

/// OIDC Core §6: request objects are not supported; once the client and redirect URI are known
/// to be right the app hears so (`request_not_supported`, `request_uri_not_supported`, with its
/// state), and discovery says so.
#[tokio::test]
async fn request_objects_are_refused_to_the_app_and_discovery_says_so() {
    let t = start("contoso").await;
    let b = browser();
    for (param, code) in [
        ("request", "request_not_supported"),
        ("request_uri", "request_uri_not_supported"),
    ] {
        let value = urlenc("https://127.0.0.1:9555/request.jwt");
        let r = b
            .get(rp_authorize(&t, &format!("&{param}={value}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        let to = location(&r);
        assert!(to.starts_with(RP_REDIRECT), "{to}");
        let q = query(&to);
        assert_eq!(q["error"], code);
        assert_eq!(q["state"], "st-1");
        assert_eq!(q["iss"], t.issuer);
        // A redirect URI that is not registered: a page, whatever else is wrong.
        let r = b
            .get(
                rp_authorize(&t, &format!("&{param}={value}"))
                    .replace(&urlenc(RP_REDIRECT), &urlenc("https://evil.test/cb")),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert!(r.headers().get("location").is_none());
    }
    let meta: serde_json::Value = backchannel()
        .get(t.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["request_parameter_supported"], false);
    assert_eq!(meta["request_uri_parameter_supported"], false);
    assert_nothing_stored(&t).await;
}
