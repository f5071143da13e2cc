//! `/v1.0/users` end to end: members created over the Graph-shaped admin API sign in (and change
//! a temporary password first), filters and paging, refusals that change nothing, disabling
//! and password resets that end held tokens at once, deletion.

use crate::federation::{invite, partner_toml};
use crate::support::*;
use serde_json::{Value, json};

/// A tenant with an admin app and one partner (`contoso.test` is the partner's domain, so the
/// tenant's own members here live in `fabrikam.test`).
async fn tenant() -> TestTenant {
    start_with(
        "fabrikam",
        &format!("{}{ADMIN_APP}", partner_toml("https://127.0.0.1:1", "")),
    )
    .await
}

/// A tenant with an admin app and no partner: alice (`contoso.test`) is a member here.
async fn home() -> TestTenant {
    start_with("contoso", ADMIN_APP).await
}

/// Calls the admin API with `token` (none: no Authorization header).
async fn call(
    t: &TestTenant,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = backchannel().request(method, t.url(path));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn get(t: &TestTenant, token: &str, path: &str) -> (u16, Value) {
    call(t, reqwest::Method::GET, path, Some(token), None).await
}

async fn post(t: &TestTenant, token: &str, body: Value) -> (u16, Value) {
    call(
        t,
        reqwest::Method::POST,
        "/v1.0/users",
        Some(token),
        Some(body),
    )
    .await
}

async fn patch(t: &TestTenant, token: &str, id: &str, body: Value) -> (u16, Value) {
    let path = format!("/v1.0/users/{}", urlenc(id));
    call(t, reqwest::Method::PATCH, &path, Some(token), Some(body)).await
}

async fn delete(t: &TestTenant, token: &str, id: &str) -> (u16, Value) {
    let path = format!("/v1.0/users/{}", urlenc(id));
    call(t, reqwest::Method::DELETE, &path, Some(token), None).await
}

fn member(upn: &str, password: &str, force_change: bool) -> Value {
    json!({
        "accountEnabled": true,
        "displayName": format!("User {upn}"),
        "mailNickname": upn.split('@').next(),
        "userPrincipalName": upn,
        "passwordProfile": {"password": password, "forceChangePasswordNextSignIn": force_change},
    })
}

/// Everything the store holds about users, to show a refused call changed nothing.
async fn snapshot(t: &TestTenant) -> Vec<store::User> {
    t.state().store.list_users().await.unwrap()
}

/// The password page's answer to `email` / `password` (200: refused, with the page text).
async fn refused_sign_in(t: &TestTenant, email: &str, password: &str) -> String {
    let b = browser();
    let r = b.get(rp_authorize(t, "")).send().await.unwrap();
    let mut form = password_form(t, &b, r, email).await;
    form.push(("password".into(), password.into()));
    let r = b
        .post(t.url("/login/password"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "stays on the password page");
    r.text().await.unwrap()
}

/// Signs `email` in through the lab RP and returns the token response.
async fn tokens_of(t: &TestTenant, email: &str, password: &str) -> Value {
    let redirect = sign_in(t, &browser(), &rp_authorize(t, ""), email, password).await;
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

async fn refresh(t: &TestTenant, rt: &str) -> (u16, Value) {
    let r = rp_token(t, &[("grant_type", "refresh_token"), ("refresh_token", rt)]).await;
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn userinfo_status(t: &TestTenant, at: &str) -> u16 {
    backchannel()
        .get(t.url("/userinfo"))
        .bearer_auth(at)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn users_api_needs_an_admin_token_and_changes_nothing_without_one() {
    let t = tenant().await;
    let alice = t.state().store.user_by_email(ALICE).await.unwrap().unwrap();
    let before = snapshot(&t).await;
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
    let not_admin = daemon["access_token"].as_str().unwrap().to_owned();
    let item = format!("/v1.0/users/{}", alice.id);
    let calls = [
        (reqwest::Method::GET, "/v1.0/users", None),
        (
            reqwest::Method::POST,
            "/v1.0/users",
            Some(member("eve@fabrikam.test", "eve-strong-password-1", false)),
        ),
        (reqwest::Method::GET, item.as_str(), None),
        (
            reqwest::Method::PATCH,
            item.as_str(),
            Some(json!({"accountEnabled": false})),
        ),
        (reqwest::Method::DELETE, item.as_str(), None),
    ];
    for (method, path, body) in calls {
        let (status, _) = call(&t, method.clone(), path, None, body.clone()).await;
        assert_eq!(status, 401, "{method} {path} without a token");
        let (status, e) = call(&t, method.clone(), path, Some(&not_admin), body.clone()).await;
        assert_eq!(status, 403, "{method} {path} without the admin scope");
        assert_eq!(e["error"], "insufficient_scope");
        let (status, _) = call(&t, method.clone(), path, Some("not-a-token"), body).await;
        assert_eq!(status, 401, "{method} {path} with garbage");
    }
    assert_eq!(snapshot(&t).await, before);
}

#[tokio::test]
async fn a_member_created_over_the_api_signs_in() {
    let t = tenant().await;
    let token = admin_token(&t).await;
    let (status, v) = post(
        &t,
        &token,
        json!({
            "accountEnabled": true,
            "displayName": "Dana Scully",
            "givenName": "Dana",
            "surname": "Scully",
            "mailNickname": "dana",
            "userPrincipalName": "Dana@Fabrikam.test",
            "passwordProfile": {"password": "dana-strong-password-1", "forceChangePasswordNextSignIn": false},
        }),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(
        v["@odata.context"],
        format!("{}/v1.0/$metadata#users/$entity", t.issuer)
    );
    assert_eq!(v["userPrincipalName"], "dana@fabrikam.test");
    assert_eq!(v["mail"], "dana@fabrikam.test");
    assert_eq!(v["displayName"], "Dana Scully");
    assert_eq!(v["givenName"], "Dana");
    assert_eq!(v["surname"], "Scully");
    assert_eq!(v["accountEnabled"], true);
    assert_eq!(v["userType"], "Member");
    assert_eq!(v["externalUserState"], Value::Null);
    assert!(v["createdDateTime"].as_str().unwrap().ends_with('Z'));
    assert!(!v.to_string().contains("password"), "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    let stored = t.state().store.user_by_id(&id).await.unwrap().unwrap();
    assert!(
        stored
            .password_hash
            .as_deref()
            .unwrap()
            .starts_with("$argon2id$")
    );
    assert!(!stored.must_change_password);

    // By id and by sign-in name (in any case), the same user.
    for key in [id.as_str(), "dana@fabrikam.test", "DANA@fabrikam.test"] {
        let (status, got) = get(&t, &token, &format!("/v1.0/users/{}", urlenc(key))).await;
        assert_eq!(status, 200, "{key}");
        assert_eq!(got, v, "{key}");
    }
    let (status, e) = get(&t, &token, "/v1.0/users/nobody@fabrikam.test").await;
    assert_eq!(status, 404);
    assert_eq!(e["error"]["code"], "Request_ResourceNotFound");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nobody@fabrikam.test")
    );

    // She signs in with the password the admin set, and her ID token says who she is.
    let tokens = tokens_of(&t, "dana@fabrikam.test", "dana-strong-password-1").await;
    let id_token = crate::flows::decode_payload(tokens["id_token"].as_str().unwrap());
    assert_eq!(id_token["sub"], id.as_str());
    assert_eq!(id_token["name"], "Dana Scully");
    assert_eq!(id_token["email"], "dana@fabrikam.test");

    // Created disabled: no sign-in until enabled.
    let mut off = member("off@fabrikam.test", "off-strong-password-1", false);
    off["accountEnabled"] = json!(false);
    let (status, v) = post(&t, &token, off).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["accountEnabled"], false);
    assert!(
        refused_sign_in(&t, "off@fabrikam.test", "off-strong-password-1")
            .await
            .contains("disabled")
    );
    let (status, _) = patch(
        &t,
        &token,
        "off@fabrikam.test",
        json!({"accountEnabled": true}),
    )
    .await;
    assert_eq!(status, 204);
    tokens_of(&t, "off@fabrikam.test", "off-strong-password-1").await;
}

#[tokio::test]
async fn a_temporary_password_must_be_changed_at_first_sign_in() {
    let t = tenant().await;
    let token = admin_token(&t).await;
    let (status, v) = post(
        &t,
        &token,
        member("temp@fabrikam.test", "temporary-password-1", true),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let b = browser();
    let r = b.get(rp_authorize(&t, "")).send().await.unwrap();
    let mut form = password_form(&t, &b, r, "temp@fabrikam.test").await;
    form.push(("password".into(), "temporary-password-1".into()));
    let page = b
        .post(t.url("/login/password"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Change your password"), "{html}");
    // A password from a leak is no secure change.
    let leaked = "Summer-2024-leaked!";
    server::user_risk::import_leaked(
        &server::user_risk::Home::of(t.state()),
        "leaked.txt",
        &format!("{}:12\n", server::user_risk::password_sha1(leaked)),
    )
    .await
    .unwrap();
    let mut form = hidden_inputs(&html);
    form.push(("new_password".into(), leaked.into()));
    form.push(("confirm_password".into(), leaked.into()));
    let page = b
        .post(t.url("/login/change-password"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("leaked passwords"), "{html}");
    let mut form = hidden_inputs(&html);
    form.push(("new_password".into(), "my-own-new-password".into()));
    form.push(("confirm_password".into(), "my-own-new-password".into()));
    let r = b
        .post(t.url("/login/change-password"))
        .form(&form)
        .send()
        .await
        .unwrap();
    code_from(&t, &location(&r), "st-1");
    tokens_of(&t, "temp@fabrikam.test", "my-own-new-password").await;
}

#[tokio::test]
async fn bad_creations_are_refused_and_change_nothing() {
    let t = tenant().await;
    let token = admin_token(&t).await;
    // A password-only leak (a SHA-1 list): nobody may get this password.
    let leaked = "Summer-2024-leaked!";
    server::user_risk::import_leaked(
        &server::user_risk::Home::of(t.state()),
        "leaked.txt",
        &format!("{}:12\n", server::user_risk::password_sha1(leaked)),
    )
    .await
    .unwrap();
    let before = snapshot(&t).await;
    let with = |change: &dyn Fn(&mut Value)| {
        let mut body = member("new@fabrikam.test", "a-strong-password-1", false);
        change(&mut body);
        body
    };
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            with(&|b| b["passwordProfile"]["password"] = json!("short")),
            "Request_BadRequest",
            "password complexity",
        ),
        (
            with(&|b| b["passwordProfile"]["password"] = json!(leaked)),
            "Request_BadRequest",
            "leaked credentials",
        ),
        (
            with(&|b| b["userPrincipalName"] = json!("ALICE@contoso.test")),
            "Request_BadRequest",
            "partner organization Contoso",
        ),
        (
            with(&|b| b["userPrincipalName"] = json!("frank@contoso.test")),
            "Request_BadRequest",
            "by invitation",
        ),
        (
            with(&|b| b["userType"] = json!("Guest")),
            "Request_BadRequest",
            "invitations",
        ),
        (
            with(&|b| b["userPrincipalName"] = json!("not an email")),
            "Request_BadRequest",
            "email address",
        ),
        (
            with(&|b| b["displayName"] = json!("   ")),
            "Request_BadRequest",
            "displayName",
        ),
        (
            with(&|b| b["department"] = json!("Sales")),
            "BadRequest",
            "department",
        ),
        (
            with(&|b| {
                if let Some(m) = b.as_object_mut() {
                    m.remove("passwordProfile");
                }
            }),
            "BadRequest",
            "passwordProfile",
        ),
    ];
    for (body, code, needle) in cases {
        let (status, e) = post(&t, &token, body.clone()).await;
        assert_eq!(status, 400, "{body}: {e}");
        assert_eq!(e["error"]["code"], code, "{body}: {e}");
        let message = e["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{body}: {message}");
    }
    assert_eq!(snapshot(&t).await, before);

    // A taken sign-in name, in any case: Graph's error, and the existing user is untouched.
    t.state().store.user_by_email(ALICE).await.unwrap().unwrap();
    let first = post(
        &t,
        &token,
        member("bo@fabrikam.test", "bo-strong-password-1", false),
    )
    .await;
    assert_eq!(first.0, 201);
    let before = snapshot(&t).await;
    let (status, e) = post(
        &t,
        &token,
        member("BO@Fabrikam.test", "another-password-22", true),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(e["error"]["code"], "Request_BadRequest");
    assert_eq!(
        e["error"]["message"],
        "Another object with the same value for property userPrincipalName already exists."
    );
    assert_eq!(snapshot(&t).await, before);
    tokens_of(&t, "bo@fabrikam.test", "bo-strong-password-1").await;
}

#[tokio::test]
async fn filters_and_paging_work_in_graphs_syntax() {
    let t = tenant().await;
    let token = admin_token(&t).await;
    for (email, name) in [
        ("ann@fabrikam.test", "Ann Archer"),
        ("annie@fabrikam.test", "Annie O'Hara"),
        ("an_x@fabrikam.test", "Anx"),
        ("bob@fabrikam.test", "Bob"),
        ("carl@fabrikam.test", "Carl"),
    ] {
        let mut body = member(email, "a-strong-password-1", false);
        body["displayName"] = json!(name);
        assert_eq!(post(&t, &token, body).await.0, 201);
    }
    invite(&t, "guest@contoso.test", "contoso").await;
    let list = |query: &str| {
        let path = format!("/v1.0/users?{query}");
        let t = &t;
        let token = token.clone();
        async move { get(t, &token, &path).await }
    };
    let upns = |v: &Value| -> Vec<String> {
        let mut out: Vec<String> = v["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["userPrincipalName"].as_str().unwrap().to_owned())
            .collect();
        out.sort();
        out
    };
    let filter = |f: &str| format!("$filter={}", urlenc(f));

    let (status, all) = list("").await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(
        all["@odata.context"],
        format!("{}/v1.0/$metadata#users", t.issuer)
    );
    assert_eq!(
        all["value"].as_array().unwrap().len(),
        7,
        "alice, 5 members, a guest"
    );
    assert!(all.get("@odata.nextLink").is_none());
    let guest = all["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["userType"] == "Guest")
        .unwrap();
    assert_eq!(guest["externalUserState"], "PendingAcceptance");
    assert_eq!(guest["userPrincipalName"], "guest@contoso.test");

    for (f, expected) in [
        (
            "userPrincipalName eq 'ANN@fabrikam.test'",
            vec!["ann@fabrikam.test"],
        ),
        (
            "startswith(userPrincipalName,'ann')",
            vec!["ann@fabrikam.test", "annie@fabrikam.test"],
        ),
        (
            "startswith(userPrincipalName,'an_')",
            vec!["an_x@fabrikam.test"],
        ),
        (
            "startswith(displayName,'an')",
            vec![
                "an_x@fabrikam.test",
                "ann@fabrikam.test",
                "annie@fabrikam.test",
            ],
        ),
        (
            "displayName eq 'Annie O''Hara'",
            vec!["annie@fabrikam.test"],
        ),
        ("userType eq 'Guest'", vec!["guest@contoso.test"]),
        (
            "userType eq 'Member' and startswith(displayName,'A') and startswith(userPrincipalName,'ann')",
            vec!["ann@fabrikam.test", "annie@fabrikam.test"],
        ),
        ("startswith(displayName,'%')", vec![]),
    ] {
        let (status, v) = list(&filter(f)).await;
        assert_eq!(status, 200, "{f}: {v}");
        assert_eq!(upns(&v), expected, "{f}");
    }

    // Anything the server cannot apply exactly is refused, never ignored.
    for query in [
        filter("mail eq 'ann@fabrikam.test'"),
        filter("displayName eq 'Ann' or displayName eq 'Bob'"),
        filter("displayName ne 'Ann'"),
        filter("endswith(userPrincipalName,'.test')"),
        filter("displayName eq Ann"),
        filter("userType eq 'Admin'"),
        filter(""),
        "$top=0".to_owned(),
        "$top=1000".to_owned(),
        "$skiptoken=bogus".to_owned(),
        "$orderby=displayName".to_owned(),
        "$select=id".to_owned(),
        "$count=true".to_owned(),
    ] {
        let (status, e) = list(&query).await;
        assert_eq!(status, 400, "{query}: {e}");
        assert_eq!(e["error"]["code"], "Request_UnsupportedQuery", "{query}");
    }

    // Pages of 2 through @odata.nextLink: everyone once, in a stable order.
    let mut seen = Vec::new();
    let (status, mut page) = list("$top=2").await;
    assert_eq!(status, 200);
    let mut pages = 1;
    loop {
        seen.extend(
            page["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["userPrincipalName"].as_str().unwrap().to_owned()),
        );
        let Some(next) = page["@odata.nextLink"].as_str() else {
            break;
        };
        assert!(
            next.starts_with(&format!("{}/v1.0/users?", t.issuer)),
            "{next}"
        );
        let r = backchannel()
            .get(next)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        page = r.json().await.unwrap();
        pages += 1;
    }
    assert_eq!(pages, 4);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 7, "{seen:?}");
    assert_eq!(sorted, upns(&all));

    // The filter travels with the next link.
    let (status, v) = list(&format!(
        "{}&$top=1",
        filter("startswith(userPrincipalName,'ann')")
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(upns(&v), ["ann@fabrikam.test"]);
    let next = v["@odata.nextLink"].as_str().unwrap();
    let v: Value = backchannel()
        .get(next)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(upns(&v), ["annie@fabrikam.test"]);
    assert!(v.get("@odata.nextLink").is_none());
}

#[tokio::test]
async fn disabling_over_patch_ends_held_tokens_at_once() {
    let t = home().await;
    let token = admin_token(&t).await;
    let tokens = tokens_of(&t, ALICE, ALICE_PW).await;
    let rt = tokens["refresh_token"].as_str().unwrap();
    let at = tokens["access_token"].as_str().unwrap();
    assert_eq!(userinfo_status(&t, at).await, 200);

    // Bad input first: refused, and alice's tokens and account are untouched.
    let before = snapshot(&t).await;
    for (body, needle) in [
        (
            json!({"accountEnabled": false, "jobTitle": "x"}),
            "jobTitle",
        ),
        (
            json!({"accountEnabled": false, "displayName": ""}),
            "displayName",
        ),
        (
            json!({"accountEnabled": false, "displayName": null}),
            "displayName",
        ),
        (json!({"accountEnabled": "no"}), "invalid type"),
        (
            json!({"accountEnabled": false, "passwordProfile": {"password": "short"}}),
            "password",
        ),
        (
            json!({"userPrincipalName": "x@fabrikam.test"}),
            "userPrincipalName",
        ),
    ] {
        let (status, e) = patch(&t, &token, ALICE, body.clone()).await;
        assert_eq!(status, 400, "{body}: {e}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(needle),
            "{body}: {e}"
        );
    }
    assert_eq!(snapshot(&t).await, before);
    assert_eq!(userinfo_status(&t, at).await, 200);
    let (status, body) = refresh(&t, rt).await;
    assert_eq!(status, 200, "{body}");
    let rt = body["refresh_token"].as_str().unwrap().to_owned();

    let (status, e) = patch(
        &t,
        &token,
        "nobody@fabrikam.test",
        json!({"accountEnabled": false}),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(e["error"]["code"], "Request_ResourceNotFound");

    let (status, _) = patch(
        &t,
        &token,
        ALICE,
        json!({"accountEnabled": false, "displayName": "Alice S.", "givenName": null}),
    )
    .await;
    assert_eq!(status, 204);
    let (status, body) = refresh(&t, &rt).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(
        userinfo_status(&t, at).await,
        401,
        "the access token ended too"
    );
    assert!(
        refused_sign_in(&t, ALICE, ALICE_PW)
            .await
            .contains("disabled")
    );
    let (_, v) = get(&t, &token, &format!("/v1.0/users/{}", urlenc(ALICE))).await;
    assert_eq!(v["accountEnabled"], false);
    assert_eq!(v["displayName"], "Alice S.");
    assert_eq!(v["givenName"], Value::Null);
    assert_eq!(v["surname"], "Smith");

    // Enabled again: she signs in, but the ended tokens stay ended.
    assert_eq!(
        patch(&t, &token, ALICE, json!({"accountEnabled": true}))
            .await
            .0,
        204
    );
    assert_eq!(refresh(&t, &rt).await.0, 400);
    tokens_of(&t, ALICE, ALICE_PW).await;
}

/// The code exchange itself refuses a user no longer active, even while their session lives
/// on (a status changed straight in the store, ending nothing), although the replica that
/// issued the code kept the user it issued it to.
#[tokio::test]
async fn a_code_of_a_user_disabled_since_it_was_issued_is_refused_and_spent() {
    let t = home().await;
    let exchange = |code: String| {
        let t = &t;
        async move {
            let r = rp_token(
                t,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", RP_REDIRECT),
                ],
            )
            .await;
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let b = browser();
    let redirect = sign_in(&t, &b, &rp_authorize(&t, ""), ALICE, ALICE_PW).await;
    let code = code_from(&t, &redirect, "st-1");
    let alice = t.state().store.user_by_email(ALICE).await.unwrap().unwrap();
    let status = |s| {
        let t = &t;
        let id = alice.id.clone();
        async move {
            t.state()
                .store
                .set_user_status(&id, s, t.state().now())
                .await
                .unwrap();
        }
    };
    status(store::UserStatus::Disabled).await;
    let (code_status, body) = exchange(code.clone()).await;
    assert_eq!(code_status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant");

    // Enabled again: that code stays spent, and a new one of the same session is redeemed.
    status(store::UserStatus::Active).await;
    assert_eq!(exchange(code).await.0, 400, "spent");
    let redirect = b.get(rp_authorize(&t, "")).send().await.unwrap();
    let location = redirect.headers()["location"].to_str().unwrap().to_owned();
    let (code_status, body) = exchange(code_from(&t, &location, "st-1")).await;
    assert_eq!(code_status, 200, "{body}");
}

#[tokio::test]
async fn an_admin_password_reset_ends_sign_ins_and_a_temporary_one_remediates_risk() {
    let t = home().await;
    let token = admin_token(&t).await;
    let s = t.state();
    let alice = s.store.user_by_email(ALICE).await.unwrap().unwrap();
    let tokens = tokens_of(&t, ALICE, ALICE_PW).await;
    // Alice's password turns up in a leak: high user risk.
    server::user_risk::import_leaked(
        &server::user_risk::Home::of(s),
        "leaked.txt",
        &format!("{ALICE}:{ALICE_PW}\n"),
    )
    .await
    .unwrap();
    let risk = server::user_risk::current(s, &alice.id).await.unwrap();
    assert_eq!(risk.risk_state.as_str(), "atRisk");

    // The leaked password itself may not be set again, nor a weak one: nothing changes.
    let before = snapshot(&t).await;
    for password in [ALICE_PW, "short"] {
        let (status, _) = patch(
            &t,
            &token,
            &alice.id,
            json!({"passwordProfile": {"password": password, "forceChangePasswordNextSignIn": true}}),
        )
        .await;
        assert_eq!(status, 400, "{password}");
    }
    assert_eq!(snapshot(&t).await, before);

    let (status, e) = patch(
        &t,
        &token,
        &alice.id,
        json!({"passwordProfile": {"password": "temporary-reset-pw-1", "forceChangePasswordNextSignIn": true}}),
    )
    .await;
    assert_eq!(status, 204, "{e}");
    let (status, _) = refresh(&t, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 400, "the reset ended her refresh token");
    let risk = server::user_risk::current(s, &alice.id).await.unwrap();
    assert_eq!(
        (risk.risk_state.as_str(), risk.risk_detail.as_str()),
        ("remediated", "adminGeneratedTemporaryPassword")
    );
    let history = s.store.risk_history(&alice.id).await.unwrap();
    assert_eq!(history[0].actor, "admin:admin-daemon");
    assert!(
        refused_sign_in(&t, ALICE, ALICE_PW)
            .await
            .contains("Your email or password is incorrect.")
    );
    let alice = s.store.user_by_id(&alice.id).await.unwrap().unwrap();
    assert!(alice.must_change_password);

    // A permanent one: no change needed at sign-in.
    let (status, _) = patch(
        &t,
        &token,
        ALICE,
        json!({"passwordProfile": {"password": "alice-permanent-pw-2"}}),
    )
    .await;
    assert_eq!(status, 204);
    tokens_of(&t, ALICE, "alice-permanent-pw-2").await;
}

#[tokio::test]
async fn a_guest_has_no_password_to_set() {
    let t = tenant().await;
    let token = admin_token(&t).await;
    let guest = invite(&t, "guest@contoso.test", "contoso").await;
    let before = snapshot(&t).await;
    let (status, e) = patch(
        &t,
        &token,
        &guest.id,
        json!({"displayName": "G", "passwordProfile": {"password": "guest-password-123"}}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("guest from Contoso"),
        "{e}"
    );
    assert_eq!(snapshot(&t).await, before);
}

#[tokio::test]
async fn delete_removes_the_user_and_what_they_hold() {
    let t = tenant().await;
    let token = admin_token(&t).await;
    let (status, v) = post(
        &t,
        &token,
        member("gone@fabrikam.test", "gone-strong-password-1", false),
    )
    .await;
    assert_eq!(status, 201);
    let id = v["id"].as_str().unwrap().to_owned();
    let tokens = tokens_of(&t, "gone@fabrikam.test", "gone-strong-password-1").await;
    let at = tokens["access_token"].as_str().unwrap();

    let (status, _) = delete(&t, &token, &id).await;
    assert_eq!(status, 204);
    let (status, e) = get(&t, &token, &format!("/v1.0/users/{id}")).await;
    assert_eq!(status, 404);
    assert_eq!(e["error"]["code"], "Request_ResourceNotFound");
    assert_eq!(
        refresh(&t, tokens["refresh_token"].as_str().unwrap())
            .await
            .0,
        400
    );
    assert_eq!(userinfo_status(&t, at).await, 401);
    assert!(
        refused_sign_in(&t, "gone@fabrikam.test", "gone-strong-password-1")
            .await
            .contains("Your email or password is incorrect.")
    );
    let (status, e) = delete(&t, &token, &id).await;
    assert_eq!(status, 404);
    assert_eq!(e["error"]["code"], "Request_ResourceNotFound");
    // The sign-in log keeps what happened.
    let rows = t
        .state()
        .store
        .list_sign_ins(&store::SignInFilter {
            user_id: Some(id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!rows.is_empty());

    // Guests too, by sign-in name; the address may be invited again.
    invite(&t, "guest@contoso.test", "contoso").await;
    assert_eq!(delete(&t, &token, "guest@contoso.test").await.0, 204);
    assert!(
        t.state()
            .store
            .user_by_email("guest@contoso.test")
            .await
            .unwrap()
            .is_none()
    );
    invite(&t, "guest@contoso.test", "contoso").await;
    let (_, all) = get(&t, &token, "/v1.0/users").await;
    assert_eq!(
        all["value"].as_array().unwrap().len(),
        2,
        "alice and the new guest"
    );
}
