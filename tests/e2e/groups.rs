//! Groups: created and filled through Graph's API, taking effect in Conditional Access (the
//! break-glass exclusion), refused in a policy when unknown, kept while a policy names them,
//! and audited.

use serde_json::{Value, json};

use crate::risk::password_attempt;
use crate::support::*;

const DAVE: &str = "dave@fabrikam.test";
const ERIN: &str = "erin@fabrikam.test";
const PW: &str = "a-good-test-password";

async fn call(
    t: &TestTenant,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let token = admin_token(t).await;
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

fn block_all_except(group: &str) -> Value {
    json!({
        "displayName": "Block everyone but break-glass",
        "state": "enabled",
        "conditions": {
            "users": { "includeUsers": ["All"], "excludeGroups": [group] },
            "applications": { "includeApplications": ["All"] },
        },
        "grantControls": { "operator": "OR", "builtInControls": ["block"] },
    })
}

#[tokio::test]
async fn a_break_glass_group_excluded_from_a_blocking_policy_lets_its_members_in() {
    use reqwest::Method;
    let t = start_with("fabrikam", ADMIN_APP).await;
    let dave = add_user(&t, DAVE, PW, false).await;
    add_user(&t, ERIN, PW, false).await;

    let (s, group) = call(
        &t,
        Method::POST,
        "/v1.0/groups",
        Some(json!({ "displayName": "Break-glass", "mailEnabled": false,
                     "mailNickname": "bg", "securityEnabled": true })),
    )
    .await;
    assert_eq!(s, 201, "{group}");
    let gid = group["id"].as_str().unwrap().to_owned();
    let add = json!({ "@odata.id": format!("{}/v1.0/directoryObjects/{}", t.issuer, dave.id) });
    let members_ref = format!("/v1.0/groups/{gid}/members/$ref");
    assert_eq!(
        call(&t, Method::POST, &members_ref, Some(add.clone()))
            .await
            .0,
        204
    );
    // Twice is a 400, as in Graph; an unknown user a 404.
    assert_eq!(call(&t, Method::POST, &members_ref, Some(add)).await.0, 400);
    let nobody = json!({ "@odata.id": format!("{}/v1.0/directoryObjects/nobody", t.issuer) });
    assert_eq!(
        call(&t, Method::POST, &members_ref, Some(nobody)).await.0,
        404
    );
    let (_, members) = call(
        &t,
        Method::GET,
        &format!("/v1.0/groups/{gid}/members"),
        None,
    )
    .await;
    assert_eq!(members["value"][0]["userPrincipalName"], DAVE);

    // A policy naming a group that does not exist is refused, naming the field.
    let (s, e) = call(
        &t,
        Method::POST,
        "/v1.0/identity/conditionalAccess/policies",
        Some(block_all_except("no-such-group")),
    )
    .await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(
        e["error"]["details"][0]["target"],
        "conditions.users.excludeGroups"
    );
    let (s, policy) = call(
        &t,
        Method::POST,
        "/v1.0/identity/conditionalAccess/policies",
        Some(block_all_except(&gid)),
    )
    .await;
    assert_eq!(s, 201, "{policy}");

    // dave (in the group) gets in; erin is blocked.
    let r = password_attempt(&t, &browser(), &rp_authorize(&t, ""), DAVE, PW).await;
    assert_eq!(r.status(), 303, "break-glass member let in");
    assert!(location(&r).starts_with(RP_REDIRECT));
    let r = password_attempt(&t, &browser(), &rp_authorize(&t, ""), ERIN, PW).await;
    assert_eq!(r.status(), 403, "everyone else blocked");

    // The group cannot go while the policy names it.
    let (s, e) = call(&t, Method::DELETE, &format!("/v1.0/groups/{gid}"), None).await;
    assert_eq!(s, 409, "{e}");
    let pid = policy["id"].as_str().unwrap();
    let (s, _) = call(
        &t,
        Method::DELETE,
        &format!("/v1.0/identity/conditionalAccess/policies/{pid}"),
        None,
    )
    .await;
    assert_eq!(s, 204);
    let (s, _) = call(
        &t,
        Method::DELETE,
        &format!("/v1.0/groups/{gid}/members/{}/$ref", dave.id),
        None,
    )
    .await;
    assert_eq!(s, 204);
    assert_eq!(
        call(&t, Method::DELETE, &format!("/v1.0/groups/{gid}"), None)
            .await
            .0,
        204
    );
    assert_eq!(
        call(&t, Method::GET, &format!("/v1.0/groups/{gid}"), None)
            .await
            .0,
        404
    );

    let (_, audits) = call(
        &t,
        Method::GET,
        "/v1.0/auditLogs/directoryAudits?$filter=category%20eq%20%27GroupManagement%27",
        None,
    )
    .await;
    let names: Vec<&str> = audits["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["activityDisplayName"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Delete group",
            "Remove member from group",
            "Add member to group",
            "Add group"
        ]
    );
}
