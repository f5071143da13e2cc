//! The admin pages, driven like a browser: an administrator signs in to them through the
//! tenant's own OIDC flow, finds bob in the risky users report (filters, CSV), opens his risk
//! timeline and dismisses it, which lets him in at the resource and is audited; a temporary
//! password is shown once; a user without the role, a form without its CSRF token and the
//! resource's admin acting on its guest are all refused; Conditional Access switches.

use crate::federation::*;
use crate::seed::{audits_of, bob_at, bob_blocked, bob_gets_in, bob_risk};
use crate::support::*;

pub(crate) const ADMIN: &str = "admin@contoso.test";
pub(crate) const ADMIN_PW: &str = "admin-test-password";
const ADMINISTRATOR: &str = "62e90394-69f5-4237-9190-012177145e10";

/// A member of `t` holding the administrator role.
pub(crate) async fn administrator(t: &TestTenant, email: &str) {
    let user = add_user(t, email, ADMIN_PW, false).await;
    t.state()
        .store
        .add_role_member(ADMINISTRATOR, &user.id, t.state().now())
        .await
        .unwrap();
}

/// Signs `email` in to the admin pages from `/admin`, as a browser would: the pages send it to
/// the tenant's `/authorize`, the sign-in pages take the password, the callback lands it on the
/// page it asked for. Returns that last response.
pub(crate) async fn sign_in_to_admin(
    t: &TestTenant,
    b: &reqwest::Client,
    email: &str,
) -> reqwest::Response {
    let r = b.get(t.url("/admin/risky-users")).send().await.unwrap();
    assert_eq!(r.status(), 303, "not signed in: off to sign in");
    let authorize = location(&r);
    assert!(
        authorize.starts_with(&t.url("/authorize?")),
        "the pages sign in with the tenant's own OIDC flow: {authorize}"
    );
    let q = query(&authorize);
    assert_eq!(q["client_id"], "tenantd-portal");
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q["scope"].split(' ').any(|s| s == "admin"));
    let callback = sign_in(t, b, &authorize, email, ADMIN_PW).await;
    assert!(
        callback.starts_with(&t.url("/admin/callback?")),
        "{callback}"
    );
    let r = b.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    assert_eq!(location(&r), "/admin/risky-users");
    b.get(t.url("/admin/risky-users")).send().await.unwrap()
}

/// The form on `page` whose `action` hidden input is `action`: its hidden fields.
fn action_form(page: &str, action: &str) -> Vec<(String, String)> {
    let marker = format!("name=\"action\" value=\"{action}\"");
    let at = page.find(&marker).expect("the action's form");
    let start = page[..at].rfind("<form").unwrap();
    let end = at + page[at..].find("</form>").unwrap();
    hidden_inputs(&page[start..end])
}

#[tokio::test]
async fn the_home_admin_finds_bob_and_dismisses_his_risk_in_the_pages() {
    let p = bob_blocked().await;
    administrator(&p.home, ADMIN).await;
    let bob = bob_at(&p.home).await;
    let b = browser();
    let r = sign_in_to_admin(&p.home, &b, ADMIN).await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(
        page.contains(BOB),
        "bob is in the risky users report: {page}"
    );
    assert!(page.contains("badge high"), "{page}");

    // Filters: the seed's "User" filter, level, state; a garbage level is refused, not ignored.
    for (q, listed) in [
        ("?user=bob%40", true),
        ("?user=Zed", false),
        ("?level=high&state=atRisk", true),
        ("?level=low", false),
        ("?order=oldest", true),
    ] {
        let page = page_text(&b, p.home.url(&format!("/admin/risky-users{q}"))).await;
        assert_eq!(page.contains(BOB), listed, "{q}: {page}");
    }
    let r = b
        .get(p.home.url("/admin/risky-users?level=extreme"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = b
        .get(p.home.url("/admin/risky-users.csv?level=high"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = r.text().await.unwrap();
    assert!(csv.starts_with("id,userPrincipalName,"), "{csv}");
    assert!(csv.contains(&format!("\"{}\",\"{BOB}\"", bob.id)), "{csv}");

    // bob's page: his level, the timeline with the leaked-credentials detection.
    let page = page_text(&b, p.home.url(&format!("/admin/users/{}", bob.id))).await;
    assert!(page.contains("id=\"risk-level\">high"), "{page}");
    assert!(page.contains("leakedCredentials"), "{page}");

    // A form without its CSRF token changes nothing.
    let r = b
        .post(p.home.url(&format!("/admin/users/{}", bob.id)))
        .form(&[("action", "dismiss"), ("csrf_token", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(bob_risk(&p).await.risk_state, risk::RiskState::AtRisk);

    let form = action_form(&page, "dismiss");
    let done = b
        .post(p.home.url(&format!("/admin/users/{}", bob.id)))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    let done = done.text().await.unwrap();
    assert!(done.contains("User risk dismissed"), "{done}");
    assert!(
        done.contains("id=\"reminder\""),
        "the seed: dismissing leaves the password, remind the admin: {done}"
    );
    assert_eq!(bob_risk(&p).await.risk_state, risk::RiskState::Dismissed);
    bob_gets_in(&p, BOB_PW).await;

    // The audit line names the administrator, in the API and on the audit page.
    let audits = audits_of(&p.home, &bob.id).await;
    let line = audits
        .iter()
        .find(|a| a["activityDisplayName"] == "Dismiss user risk")
        .expect("audited");
    assert_eq!(line["initiatedBy"]["user"]["userPrincipalName"], ADMIN);
    assert_eq!(line["initiatedBy"]["app"]["appId"], "tenantd-portal");
    // bob's risk history names the administrator who acted, not the pages' app.
    let history = p.home.state().store.risk_history(&bob.id).await.unwrap();
    assert_eq!(history[0].actor, format!("admin:{ADMIN}"), "{history:?}");
    let page = page_text(&b, p.home.url("/admin/audit")).await;
    assert!(
        page.contains("Dismiss user risk") && page.contains(ADMIN),
        "{page}"
    );
    let page = page_text(&b, p.home.url("/admin/detections")).await;
    assert!(page.contains("leakedCredentials"), "{page}");
    let page = page_text(&b, p.home.url("/admin/sign-ins?user=bob%40contoso.test")).await;
    assert!(
        page.contains("<td>lab-rp</td>") || page.contains(BOB),
        "{page}"
    );
    let page = page_text(&b, p.home.url("/admin/sign-ins?filter=nonsense+eq+1")).await;
    assert!(
        page.contains("role=\"alert\""),
        "a bad $filter is explained: {page}"
    );
}

#[tokio::test]
async fn a_temporary_password_is_shown_once_and_must_be_changed() {
    let p = bob_blocked().await;
    administrator(&p.home, ADMIN).await;
    let bob = bob_at(&p.home).await;
    let b = browser();
    sign_in_to_admin(&p.home, &b, ADMIN).await;
    let page = page_text(&b, p.home.url(&format!("/admin/users/{}", bob.id))).await;
    let done = b
        .post(p.home.url(&format!("/admin/users/{}", bob.id)))
        .form(&action_form(&page, "reset-password"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at = done.find("id=\"temporary-password\">").expect("shown") + 24;
    let password = &done[at..at + done[at..].find('<').unwrap()];
    assert_eq!(password.len(), 22, "{done}");
    let status = bob_risk(&p).await;
    assert_eq!(status.risk_state, risk::RiskState::Remediated);
    assert_eq!(
        status.risk_detail,
        risk::RiskDetail::AdminGeneratedTemporaryPassword
    );
    let bob = bob_at(&p.home).await;
    assert!(bob.must_change_password);
    assert!(
        !page_text(&b, p.home.url(&format!("/admin/users/{}", bob.id)))
            .await
            .contains(password),
        "shown once"
    );
}

#[tokio::test]
async fn users_without_the_role_and_the_resource_admin_on_a_guest_are_refused() {
    let p = bob_blocked().await;
    // alice is a member without the role: signed in, and refused.
    let b = browser();
    let r = b.get(p.home.url("/admin")).send().await.unwrap();
    let callback = sign_in(&p.home, &b, &location(&r), ALICE, ALICE_PW).await;
    let r = b.get(&callback).send().await.unwrap();
    assert_eq!(location(&r), "/admin");
    let r = b.get(p.home.url("/admin")).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("administrator role"));

    // A callback this browser did not start is refused.
    let r = browser()
        .get(p.home.url("/admin/callback?code=x&state=y"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // The resource's admin: bob is a guest, his risk is Contoso's.
    administrator(&p.resource, "admin@fabrikam.test").await;
    let guest = bob_at(&p.resource).await;
    let b = browser();
    let page = sign_in_to_admin(&p.resource, &b, "admin@fabrikam.test")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        !page.contains(BOB),
        "guests are not in the risky users report: {page}"
    );
    let page = page_text(&b, p.resource.url(&format!("/admin/users/{}", guest.id))).await;
    assert!(page.contains("id=\"guest-risk\""), "{page}");
    assert!(!page.contains("value=\"dismiss\""), "{page}");
    let form = action_form(&page, "block");
    let csrf = form
        .iter()
        .find(|(k, _)| k == "csrf_token")
        .unwrap()
        .1
        .clone();
    let r = b
        .post(p.resource.url(&format!("/admin/users/{}", guest.id)))
        .form(&[("action", "dismiss"), ("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("home organization") && page.contains("Contoso"),
        "{page}"
    );
}

#[tokio::test]
async fn conditional_access_policies_switch_in_the_pages() {
    let t = start_with("contoso", ADMIN_APP).await;
    administrator(&t, ADMIN).await;
    let token = admin_token(&t).await;
    let r = backchannel()
        .post(t.url("/v1.0/identity/conditionalAccess/policies"))
        .bearer_auth(&token)
        .json(&serde_json::json!({
            "displayName": "Block high sign-in risk",
            "state": "enabled",
            "conditions": {
                "users": {"includeUsers": ["All"]},
                "applications": {"includeApplications": ["All"]},
                "signInRiskLevels": ["high"],
            },
            "grantControls": {"operator": "OR", "builtInControls": ["block"]},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = browser();
    sign_in_to_admin(&t, &b, ADMIN).await;
    let page = page_text(&b, t.url("/admin/policies")).await;
    assert!(page.contains("Block high sign-in risk"), "{page}");
    let csrf = hidden_inputs(&page)
        .into_iter()
        .find(|(k, _)| k == "csrf_token")
        .unwrap()
        .1;
    let r = b
        .post(t.url(&format!("/admin/policies/{id}")))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("state", "enabledForReportingButNotEnforced"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let policy = t.state().protection.policies();
    let p = policy.set.policies().iter().find(|p| p.id == id).unwrap();
    assert_eq!(
        serde_json::to_value(p.state).unwrap(),
        "enabledForReportingButNotEnforced"
    );
    let r = b
        .post(t.url(&format!("/admin/policies/{id}")))
        .form(&[("csrf_token", csrf.as_str()), ("state", "sometimes")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn a_policy_from_a_file_switches_in_the_pages_and_stays_switched_across_reloads() {
    let policies = crate::risk::policies_copy("fabrikam");
    let t = start_with(
        "fabrikam",
        &format!("{}{ADMIN_APP}", crate::risk::risk_toml(&policies)),
    )
    .await;
    administrator(&t, "admin@fabrikam.test").await;
    let state_of = |t: &TestTenant| {
        let p = t.state().protection.policies();
        let policy = p
            .set
            .policies()
            .iter()
            .find(|p| p.id == "block-high-sign-in-risk")
            .unwrap()
            .clone();
        serde_json::to_value(policy.state).unwrap()
    };
    assert_eq!(state_of(&t), "enabled");
    let b = browser();
    sign_in_to_admin(&t, &b, "admin@fabrikam.test").await;
    let page = page_text(&b, t.url("/admin/policies")).await;
    assert!(page.contains("10-block-high-sign-in-risk.json"), "{page}");
    let csrf = hidden_inputs(&page)
        .into_iter()
        .find(|(k, _)| k == "csrf_token")
        .unwrap()
        .1;
    let r = b
        .post(t.url("/admin/policies/block-high-sign-in-risk"))
        .form(&[("csrf_token", csrf.as_str()), ("state", "disabled")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(state_of(&t), "disabled");
    // A reload (SIGHUP) reads the file again; the switch holds.
    t.state()
        .protection
        .reload_policies(&t.state().store)
        .await
        .unwrap();
    assert_eq!(state_of(&t), "disabled");
    // Anything else about a file's policy is the file's.
    let r = backchannel()
        .patch(t.url("/v1.0/identity/conditionalAccess/policies/block-high-sign-in-risk"))
        .bearer_auth(admin_token(&t).await)
        .json(&serde_json::json!({"displayName": "renamed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let r = backchannel()
        .patch(t.url("/v1.0/identity/conditionalAccess/policies/block-high-sign-in-risk"))
        .bearer_auth(admin_token(&t).await)
        .json(&serde_json::json!({"state": "enabledForReportingButNotEnforced"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(state_of(&t), "enabledForReportingButNotEnforced");
}
