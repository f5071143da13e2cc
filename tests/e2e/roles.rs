//! Administrators: a user holding the administrator role calls the admin API with their own
//! token (scope `admin`, from an app allowed it); a user without the role cannot, even with the
//! scope; taking the role away takes effect at the next call; the audit log names the user.

use serde_json::{Value, json};

use crate::support::*;

const CONSOLE: &str = "\n[[apps]]\nclient_id = \"admin-console\"\nname = \"Admin console\"\nclient_secret = \"admin-console-secret\"\nredirect_uris = [\"http://127.0.0.1:9555/callback\"]\nscopes = [\"admin\"]\nfirst_party = true\n";
const ROLE: &str = "62e90394-69f5-4237-9190-012177145e10";

/// A user's access token with the `admin` scope, from the admin console's code flow.
async fn user_admin_token(t: &TestTenant, email: &str, password: &str) -> String {
    let authorize = t.url(&format!(
        "/authorize?response_type=code&client_id=admin-console&redirect_uri={}&scope=openid%20admin&state=st-1&nonce=n-1",
        urlenc("http://127.0.0.1:9555/callback")
    ));
    let redirect = sign_in(t, &browser(), &authorize, email, password).await;
    let code = code_from(t, &redirect, "st-1");
    let r: Value = backchannel()
        .post(t.url("/token"))
        .basic_auth("admin-console", Some("admin-console-secret"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "http://127.0.0.1:9555/callback"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(r["scope"].as_str().unwrap().contains("admin"), "{r}");
    r["access_token"].as_str().unwrap().to_owned()
}

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
    if let Some(body) = body {
        r = r.json(&body);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn administrators_use_the_admin_api_with_their_own_tokens_while_they_hold_the_role() {
    use reqwest::Method;
    let t = start_with("contoso", &format!("{CONSOLE}{ADMIN_APP}")).await;
    let alice = t.state().store.user_by_email(ALICE).await.unwrap().unwrap();
    let dave = add_user(&t, "dave@contoso.test", "dave-test-password", false).await;
    let app = admin_token(&t).await;

    // dave has no role: his token with the admin scope is refused (RFC 6750 insufficient_scope).
    let dave_token = user_admin_token(&t, "dave@contoso.test", "dave-test-password").await;
    let r = backchannel()
        .get(t.url("/v1.0/users"))
        .bearer_auth(&dave_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient_scope")
    );

    // The app makes alice an administrator; her own token now works.
    let add = json!({ "@odata.id": format!("{}/v1.0/directoryObjects/{}", t.issuer, alice.id) });
    let members = format!("/v1.0/directoryRoles/{ROLE}/members");
    let (s, _) = call(
        &t,
        &app,
        Method::POST,
        &format!("{members}/$ref"),
        Some(add),
    )
    .await;
    assert_eq!(s, 204);
    let (_, roles) = call(&t, &app, Method::GET, "/v1.0/directoryRoles", None).await;
    assert_eq!(roles["value"][0]["displayName"], "Global Administrator");
    let (_, list) = call(&t, &app, Method::GET, &members, None).await;
    assert_eq!(list["value"][0]["userPrincipalName"], ALICE);
    let alice_token = user_admin_token(&t, ALICE, ALICE_PW).await;
    let (s, _) = call(&t, &alice_token, Method::GET, "/v1.0/users", None).await;
    assert_eq!(s, 200);
    // What she does is audited under her name.
    let (s, _) = call(
        &t,
        &alice_token,
        Method::PATCH,
        &format!("/v1.0/users/{}", dave.id),
        Some(json!({ "accountEnabled": false })),
    )
    .await;
    assert_eq!(s, 204);
    let filter = urlenc(&format!("targetResources/any(t: t/id eq '{}')", dave.id));
    let (_, audits) = call(
        &t,
        &app,
        Method::GET,
        &format!("/v1.0/auditLogs/directoryAudits?$filter={filter}"),
        None,
    )
    .await;
    assert_eq!(audits["value"][0]["activityDisplayName"], "Disable account");
    assert_eq!(
        audits["value"][0]["initiatedBy"]["user"]["userPrincipalName"],
        ALICE
    );
    assert_eq!(
        audits["value"][0]["initiatedBy"]["app"]["appId"],
        "admin-console"
    );
    // She cannot remove her own role; the app can, and her token stops working at once.
    let own = format!("{members}/{}/$ref", alice.id);
    assert_eq!(
        call(&t, &alice_token, Method::DELETE, &own, None).await.0,
        400
    );
    assert_eq!(call(&t, &app, Method::DELETE, &own, None).await.0, 204);
    assert_eq!(
        call(&t, &alice_token, Method::GET, "/v1.0/users", None)
            .await
            .0,
        403
    );
}
