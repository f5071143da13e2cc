//! The seed's scenario end to end, with both tenants over HTTP: bob, a guest at the resource
//! whose home says his user risk is high, is blocked there with the seed's sentence; his risk
//! is remediated only at his home — (a) by his own secure password reset with his
//! authenticator, (b) by the home admin's dismiss, (c) by the home admin's temporary password,
//! which he must change at the home — and then he gets in; (d) the resource's admin cannot
//! remediate him, and he is not in the resource's risky users.

use crate::federation::*;
use crate::risk::{blocked, bob_at_risk, policies_copy, resource_lines};
use crate::support::*;
use policy::codes::BLOCKED_MESSAGE;
use serde_json::{Value, json};

/// bob's authenticator key (the lab's).
pub const BOB_TOTP: &str = "JBSWY3DPEHPK3PXP";

/// The pair with the resource's shipped policies and an admin app at both tenants; bob at risk
/// at home and blocked at the resource.
pub(crate) async fn bob_blocked() -> Pair {
    let policies = policies_copy("fabrikam");
    let p = pair_with(ADMIN_APP, &resource_lines(&policies, TRUSTED)).await;
    bob_at_risk(&p).await;
    let (page, _) = blocked(
        federated_sign_in(&p, &browser(), &rp_authorize(&p.resource, ""), BOB, BOB_PW).await,
    );
    assert!(page.contains(BLOCKED_MESSAGE), "{page}");
    assert!(
        page.contains("still blocked after resetting"),
        "the seed's advice for a guest who is still blocked: {page}"
    );
    p
}

/// bob signs in to the resource's app with `password` (his home session, if any, is new).
pub(crate) async fn bob_gets_in(p: &Pair, password: &str) {
    let redirect = app_redirect(
        federated_sign_in(p, &browser(), &rp_authorize(&p.resource, ""), BOB, password).await,
    );
    let tokens = exchange(&p.resource, &redirect).await;
    assert!(tokens["id_token"].is_string(), "{tokens}");
}

pub(crate) async fn bob_at(t: &TestTenant) -> store::User {
    t.state().store.user_by_email(BOB).await.unwrap().unwrap()
}

pub(crate) async fn bob_risk(p: &Pair) -> risk::UserRiskStatus {
    let bob = bob_at(&p.home).await;
    server::user_risk::current(p.home.state(), &bob.id)
        .await
        .unwrap()
}

/// An admin API call with the tenant's admin app.
async fn admin(
    t: &TestTenant,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let token = admin_token(t).await;
    let mut r = backchannel()
        .request(method, t.url(path))
        .bearer_auth(token);
    if let Some(body) = body {
        r = r.json(&body);
    }
    r.send().await.unwrap()
}

/// The directory audit lines about `user_id`.
pub(crate) async fn audits_of(t: &TestTenant, user_id: &str) -> Vec<Value> {
    let filter = urlenc(&format!("targetResources/any(t: t/id eq '{user_id}')"));
    let r = admin(
        t,
        reqwest::Method::GET,
        &format!("/v1.0/auditLogs/directoryAudits?$filter={filter}"),
        None,
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    body["value"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_bob_resets_his_password_at_home_with_his_authenticator_and_gets_in() {
    let p = bob_blocked().await;
    let bob = bob_at(&p.home).await;
    server::mfa::register_totp(p.home.state(), &bob.id, BOB_TOTP)
        .await
        .unwrap();
    let b = browser();
    let page = page_text(&b, p.home.url("/password/reset")).await;
    let mut form = hidden_inputs(&page);
    form.push(("email".into(), BOB.into()));
    let page = b
        .post(p.home.url("/password/reset"))
        .form(&form)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut form = hidden_inputs(&page);
    form.push(("code".into(), crate::mfa::totp_at(BOB_TOTP, now)));
    form.push(("new_password".into(), "bobs-new-secure-password".into()));
    form.push(("confirm_password".into(), "bobs-new-secure-password".into()));
    let page = b
        .post(p.home.url("/password/reset/new"))
        .form(&form)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Your password was reset"), "{page}");
    let status = bob_risk(&p).await;
    assert_eq!(status.risk_state, risk::RiskState::Remediated);
    assert_eq!(
        status.risk_detail,
        risk::RiskDetail::UserPerformedSecuredPasswordReset
    );
    bob_gets_in(&p, "bobs-new-secure-password").await;
}

#[tokio::test]
async fn b_the_home_admin_dismisses_bobs_risk_and_he_gets_in_with_an_audit_line() {
    let p = bob_blocked().await;
    let bob = bob_at(&p.home).await;
    let r = admin(
        &p.home,
        reqwest::Method::POST,
        "/v1.0/identityProtection/riskyUsers/dismiss",
        Some(json!({ "userIds": [bob.id] })),
    )
    .await;
    assert_eq!(r.status(), 204);
    let status = bob_risk(&p).await;
    assert_eq!(status.risk_state, risk::RiskState::Dismissed);
    // Dismissing leaves the password alone: bob signs in with the one he had.
    bob_gets_in(&p, BOB_PW).await;
    let audits = audits_of(&p.home, &bob.id).await;
    assert_eq!(audits.len(), 1, "{audits:?}");
    let a = &audits[0];
    assert_eq!(a["activityDisplayName"], "Dismiss user risk");
    assert_eq!(a["category"], "IdentityProtection");
    assert_eq!(a["initiatedBy"]["app"]["appId"], "admin-daemon");
    assert_eq!(a["targetResources"][0]["userPrincipalName"], BOB);
    assert_eq!(a["result"], "success");
    assert!(a["activityDateTime"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn c_the_home_admin_sets_a_temporary_password_bob_changes_it_at_home_and_gets_in() {
    let p = bob_blocked().await;
    let bob = bob_at(&p.home).await;
    let r = admin(
        &p.home,
        reqwest::Method::PATCH,
        &format!("/v1.0/users/{}", bob.id),
        Some(json!({ "passwordProfile": {
            "password": "temporary-pw-for-bob",
            "forceChangePasswordNextSignIn": true,
        }})),
    )
    .await;
    assert_eq!(r.status(), 204);
    let status = bob_risk(&p).await;
    assert_eq!(status.risk_state, risk::RiskState::Remediated);
    assert_eq!(
        status.risk_detail,
        risk::RiskDetail::AdminGeneratedTemporaryPassword
    );
    // At the home, the temporary password leads to the change-password page, then back to the
    // resource, which lets him in.
    let b = browser();
    let r = submit_email(&b, &p.resource.issuer, &rp_authorize(&p.resource, ""), BOB).await;
    assert_eq!(r.status(), 303);
    let mut form = hidden_inputs(&sign_in_page(&b, location(&r)).await);
    form.push(("password".into(), "temporary-pw-for-bob".into()));
    let page = b
        .post(p.home.url("/login/password"))
        .form(&form)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Change your password"), "{page}");
    let mut form = hidden_inputs(&page);
    form.push(("new_password".into(), "bobs-own-new-password".into()));
    form.push(("confirm_password".into(), "bobs-own-new-password".into()));
    let r = b
        .post(p.home.url("/login/change-password"))
        .form(&form)
        .send()
        .await
        .unwrap();
    let callback = location(&r);
    assert!(
        callback.starts_with(&format!("{}/federation/callback", p.resource.issuer)),
        "{callback}"
    );
    let r = b.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 303, "let in at the resource");
    exchange(&p.resource, &location(&r)).await;
    let audits = audits_of(&p.home, &bob.id).await;
    assert!(
        audits
            .iter()
            .any(|a| a["activityDisplayName"] == "Reset user password"),
        "{audits:?}"
    );
}

#[tokio::test]
async fn d_the_resource_admin_cannot_remediate_bob_and_does_not_list_him() {
    let p = bob_blocked().await;
    let guest = bob_at(&p.resource).await;
    for action in ["dismiss", "confirmCompromised", "confirmSafe"] {
        let r = admin(
            &p.resource,
            reqwest::Method::POST,
            &format!("/v1.0/identityProtection/riskyUsers/{action}"),
            Some(json!({ "userIds": [guest.id] })),
        )
        .await;
        assert_eq!(r.status(), 403, "{action}");
        let body: Value = r.json().await.unwrap();
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("contoso"),
            "names the home tenant: {message}"
        );
    }
    let r = admin(
        &p.resource,
        reqwest::Method::GET,
        "/v1.0/identityProtection/riskyUsers",
        None,
    )
    .await;
    let body: Value = r.json().await.unwrap();
    assert!(
        body["value"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["userPrincipalName"] != BOB),
        "{body}"
    );
    // Nothing changed anywhere: bob is still blocked.
    let (page, _) = blocked(
        federated_sign_in(&p, &browser(), &rp_authorize(&p.resource, ""), BOB, BOB_PW).await,
    );
    assert!(page.contains(BLOCKED_MESSAGE), "{page}");
    assert!(audits_of(&p.resource, &guest.id).await.is_empty());
}

#[tokio::test]
async fn confirm_safe_closes_bobs_risk_and_his_detections_without_touching_his_password() {
    let p = bob_blocked().await;
    let bob = bob_at(&p.home).await;
    let r = admin(
        &p.home,
        reqwest::Method::POST,
        "/v1.0/identityProtection/riskyUsers/confirmSafe",
        Some(json!({ "userIds": [bob.id] })),
    )
    .await;
    assert_eq!(r.status(), 204);
    let status = bob_risk(&p).await;
    assert_eq!(status.risk_state, risk::RiskState::ConfirmedSafe);
    assert_eq!(status.risk_level, risk::RiskLevel::None);
    let r = admin(
        &p.home,
        reqwest::Method::GET,
        &format!(
            "/v1.0/identityProtection/riskDetections?$filter={}",
            urlenc(&format!("userId eq '{}'", bob.id))
        ),
        None,
    )
    .await;
    let body: Value = r.json().await.unwrap();
    let detections = body["value"].as_array().unwrap();
    assert!(!detections.is_empty());
    assert!(
        detections.iter().all(|d| d["riskState"] == "confirmedSafe"),
        "{detections:?}"
    );
    // Twice is refused: there is no risk left to act on.
    let r = admin(
        &p.home,
        reqwest::Method::POST,
        "/v1.0/identityProtection/riskyUsers/confirmSafe",
        Some(json!({ "userIds": [bob.id] })),
    )
    .await;
    assert_eq!(r.status(), 400);
    bob_gets_in(&p, BOB_PW).await;
    let audits = audits_of(&p.home, &bob.id).await;
    assert_eq!(audits.len(), 1, "{audits:?}");
    assert_eq!(audits[0]["activityDisplayName"], "Confirm user safe");
}
