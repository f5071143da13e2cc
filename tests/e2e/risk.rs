//! Risk and policies end to end: the resource blocks a guest whose home says high risk with the
//! seed's sentence, lets a clean guest in, explains every decision in its sign-in log, and
//! serves the policy, what-if, sign-in log and reload APIs.

use crate::federation::*;
use crate::support::*;
use policy::codes::BLOCKED_MESSAGE;
use std::path::PathBuf;

/// The shipped intel and policies.
pub fn config_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config")
}

/// `[risk]` with the shipped intel and the given policies directory.
pub fn risk_toml(policies_dir: &std::path::Path) -> String {
    let intel = config_dir().join("intel");
    format!(
        r#"
[risk]
anonymous_ips = ["{i}/anonymous-ips.txt"]
malicious_ips = ["{i}/malicious-ips.txt"]
named_locations = "{i}/named-locations.toml"
geo = "{i}/geo-city.csv"
asn = "{i}/asn.csv"
policies_dir = "{p}"
"#,
        i = intel.display(),
        p = policies_dir.display()
    )
}

/// A copy of the shipped policies of `tenant` in a directory of the test's own.
pub fn policies_copy(tenant: &str) -> PathBuf {
    let dir = fixtures()
        .dir
        .join(format!("policies-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(config_dir().join("policies").join(tenant)).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
    }
    dir
}

/// Partner lines for [`pair`]: trusted user risk, the resource's lab policies, an admin app.
pub fn resource_lines(policies: &std::path::Path, partner: &str) -> String {
    format!("{partner}\n{}{ADMIN_APP}", risk_toml(policies))
}

/// A refusal page (unescaped) and the OAuth error its link carries.
pub fn blocked(e: Ended) -> (String, std::collections::HashMap<String, String>) {
    let (page, oauth) = refusal(e);
    (unescaped(&page), oauth)
}

/// Bob's risk at his home: high and at risk, from a real `leakedCredentials` detection (his
/// password is in an imported credential-pair list).
pub async fn bob_at_risk(p: &Pair) {
    let s = p.home.state();
    let report = server::user_risk::import_leaked(
        &server::user_risk::Home::of(s),
        "leaked.txt",
        &format!("{BOB}:{BOB_PW}\n"),
    )
    .await
    .unwrap();
    assert_eq!(report.users_flagged, 1);
}

/// Authorize, email page, password: the answer to the password form (a redirect or a page).
pub async fn password_attempt(
    t: &TestTenant,
    b: &reqwest::Client,
    authorize_url: &str,
    email: &str,
    password: &str,
) -> reqwest::Response {
    let r = b.get(authorize_url).send().await.unwrap();
    let mut form = password_form(t, b, r, email).await;
    form.push(("password".into(), password.into()));
    b.post(t.url("/login/password"))
        .form(&form)
        .send()
        .await
        .unwrap()
}

/// A page's text with HTML's escaping of quotes undone (the sentence has an apostrophe).
pub fn unescaped(html: &str) -> String {
    html.replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
}

pub async fn text_of(r: reqwest::Response) -> String {
    unescaped(&r.text().await.unwrap())
}

fn policy_result<'a>(row: &'a store::SignInLog, id: &str) -> &'a str {
    row.details["appliedConditionalAccessPolicies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .unwrap_or_else(|| panic!("policy {id} in {}", row.details))["result"]
        .as_str()
        .unwrap()
}

#[tokio::test]
async fn risky_guest_is_blocked_with_the_seed_sentence_and_a_clean_guest_passes() {
    let policies = policies_copy("fabrikam");
    let p = pair(&resource_lines(&policies, TRUSTED)).await;
    bob_at_risk(&p).await;

    // Bob: blocked at the resource, not at home.
    let b = browser();
    let (page, oauth) =
        blocked(federated_sign_in(&p, &b, &rp_authorize(&p.resource, ""), BOB, BOB_PW).await);
    assert!(
        page.contains(BLOCKED_MESSAGE),
        "the seed's exact sentence: {page}"
    );
    assert!(page.contains("53011"), "{page}");
    assert!(
        page.contains(&format!("{}/password/reset", p.home.issuer)),
        "the home's password reset link: {page}"
    );
    assert_eq!(oauth["error"], "access_denied");
    assert_eq!(oauth["error_description"], BLOCKED_MESSAGE);
    assert_eq!(oauth["iss"], p.resource.issuer);
    assert_eq!(oauth["state"], "st-1");
    // No session, hence no code: a fresh authorize at the resource asks for sign-in again.
    let r = b
        .get(rp_authorize(&p.resource, "&prompt=none"))
        .send()
        .await
        .unwrap();
    let q = query(&location(&r));
    assert_eq!(q["error"], "login_required", "no session was created");
    let rows = sign_in_rows(&p.resource).await;
    let bob_row = rows
        .iter()
        .find(|r| r.user_principal_name.as_deref() == Some(BOB))
        .unwrap();
    assert_eq!(bob_row.error_code, 53011);
    assert_eq!(bob_row.risk_level_aggregated.as_deref(), Some("high"));
    assert_eq!(
        bob_row.conditional_access_status.as_deref(),
        Some("failure")
    );
    assert_eq!(bob_row.user_type, "guest");
    assert_eq!(
        policy_result(bob_row, "idProtection-userRiskPolicy"),
        "failure"
    );
    assert!(
        page.contains(&bob_row.correlation_id),
        "correlation id on the page"
    );

    // Alice: let in; the report-only guest-MFA policy is reported, not enforced.
    let a = browser();
    let redirect = app_redirect(
        federated_sign_in(&p, &a, &rp_authorize(&p.resource, ""), ALICE, ALICE_PW).await,
    );
    exchange(&p.resource, &redirect).await;
    let rows = sign_in_rows(&p.resource).await;
    let alice_row = rows
        .iter()
        .find(|r| r.user_principal_name.as_deref() == Some(ALICE))
        .unwrap();
    assert_eq!(alice_row.error_code, 0);
    assert_eq!(alice_row.risk_level_aggregated.as_deref(), Some("none"));
    assert_eq!(alice_row.risk_level_during_sign_in.as_deref(), Some("none"));
    assert_eq!(
        policy_result(alice_row, "guests-mfa-report-only"),
        "reportOnlyFailure"
    );
    assert_eq!(
        policy_result(alice_row, "idProtection-userRiskPolicy"),
        "notApplied"
    );
}

#[tokio::test]
async fn guest_password_change_policy_blocks_even_without_trusting_mfa() {
    // The user-risk policy's passwordChange cannot be met by a guest: blocked (53011), and the
    // home's MFA would not help either.
    let policies = policies_copy("fabrikam");
    let p = pair(&resource_lines(
        &policies,
        &format!("{TRUSTED}\ntrust_mfa = true"),
    ))
    .await;
    bob_at_risk(&p).await;
    let b = browser();
    let (page, oauth) =
        blocked(federated_sign_in(&p, &b, &rp_authorize(&p.resource, ""), BOB, BOB_PW).await);
    assert!(page.contains(BLOCKED_MESSAGE));
    assert_eq!(oauth["error_description"], BLOCKED_MESSAGE);
}

#[tokio::test]
async fn malicious_ip_is_blocked_by_the_high_sign_in_risk_policy() {
    let policies = policies_copy("fabrikam");
    let p = pair(&resource_lines(&policies, TRUSTED)).await;
    // Carol, a member of the resource, from the lab's "botnet" (trusted proxy: 127.0.0.1).
    let b = browser_from("203.0.113.66");
    let r = password_attempt(
        &p.resource,
        &b,
        &rp_authorize(&p.resource, ""),
        CAROL,
        CAROL_PW,
    )
    .await;
    assert_eq!(r.status(), 403);
    let page = text_of(r).await;
    assert!(page.contains(BLOCKED_MESSAGE), "{page}");
    assert!(page.contains("50053"), "malicious IP code: {page}");
    let rows = sign_in_rows(&p.resource).await;
    let row = rows.first().unwrap();
    assert_eq!(row.ip_address.as_deref(), Some("203.0.113.66"));
    assert_eq!(row.risk_level_during_sign_in.as_deref(), Some("high"));
    assert_eq!(row.details["riskEventTypes_v2"][0], "maliciousIPAddress");
    assert_eq!(policy_result(row, "block-high-sign-in-risk"), "failure");
}

#[tokio::test]
async fn policies_api_validates_crud_and_what_if_explains_without_signing_in() {
    let policies = policies_copy("fabrikam");
    let p = pair(&resource_lines(&policies, TRUSTED)).await;
    let tok = admin_token(&p.resource).await;
    let c = backchannel();
    let url = p.resource.url("/v1.0/identity/conditionalAccess/policies");

    let list: serde_json::Value = c
        .get(&url)
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "block-high-sign-in-risk",
            "guests-mfa-report-only",
            "idProtection-userRiskPolicy",
            "idProtection-signInRiskPolicy"
        ]
    );

    // Graph's rule: passwordChange must be AND-ed with mfa. Refused, nothing stored.
    let bad = serde_json::json!({
        "displayName": "bad", "state": "enabled",
        "conditions": {"users": {"includeUsers": ["All"]}, "applications": {"includeApplications": ["All"]}, "userRiskLevels": ["high"]},
        "grantControls": {"operator": "OR", "builtInControls": ["passwordChange"]}
    });
    let r = c
        .post(&url)
        .bearer_auth(&tok)
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: serde_json::Value = r.json().await.unwrap();
    assert!(
        e["error"]["message"].as_str().unwrap().contains("mfa"),
        "{e}"
    );
    assert_eq!(
        p.resource
            .state()
            .store
            .list_ca_policies()
            .await
            .unwrap()
            .len(),
        0
    );

    // A valid one: block carol's app access from everywhere but trusted locations.
    let good = serde_json::json!({
        "displayName": "Block lab-rp outside trusted locations", "state": "enabled",
        "conditions": {
            "users": {"includeUsers": ["All"]},
            "applications": {"includeApplications": [RP_ID]},
            "locations": {"includeLocations": ["All"], "excludeLocations": ["AllTrusted"]}
        },
        "grantControls": {"operator": "OR", "builtInControls": ["block"]}
    });
    let r = c
        .post(&url)
        .bearer_auth(&tok)
        .json(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: serde_json::Value = r.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["tenantdSource"], "api");

    // Carol from 127.0.0.1 (not trusted): blocked by CA, not by risk.
    let b = browser();
    let r = password_attempt(
        &p.resource,
        &b,
        &rp_authorize(&p.resource, ""),
        CAROL,
        CAROL_PW,
    )
    .await;
    assert_eq!(r.status(), 403);
    let page = text_of(r).await;
    assert!(
        page.contains("53003") && page.contains("You cannot access this right now"),
        "{page}"
    );
    assert!(!page.contains(BLOCKED_MESSAGE), "not a risk block");

    // What-if for carol from the trusted Oslo office: allowed; from elsewhere: blocked.
    let what_if = |ip: &str, user: &str, extra: serde_json::Value| {
        let mut body = serde_json::json!({"user": user, "appId": RP_ID, "ipAddress": ip});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        c.post(p.resource.url("/v1.0/identity/conditionalAccess/evaluate"))
            .bearer_auth(&tok)
            .json(&body)
            .send()
    };
    let before = sign_in_rows(&p.resource).await.len();
    let v: serde_json::Value = what_if("192.0.2.10", CAROL, serde_json::json!({}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["decision"]["decision"], "allow", "{v}");
    let v: serde_json::Value = what_if("198.51.100.200", CAROL, serde_json::json!({}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["decision"]["decision"], "block", "{v}");
    let mine = v["appliedConditionalAccessPolicies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(mine["result"], "failure");
    // A guest with an assumed high user risk: the user-risk policy blocks (53011).
    let v: serde_json::Value = what_if(
        "192.0.2.10",
        BOB,
        serde_json::json!({"userRiskLevel": "high"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(v["decision"]["errorCode"], 53011, "{v}");
    // The anonymous-IP example: medium sign-in risk asks for MFA.
    let v: serde_json::Value = what_if(
        "198.51.100.7",
        ALICE,
        serde_json::json!({"appId": THIRD_ID}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(v["signInRiskLevel"], "medium", "{v}");
    assert_eq!(v["decision"]["decision"], "requireMfa", "{v}");
    assert_eq!(
        sign_in_rows(&p.resource).await.len(),
        before,
        "what-if signs nobody in"
    );

    // PATCH (merge) to report-only, then the sign-in passes and the policy is reported.
    let r = c
        .patch(format!("{url}/{id}"))
        .bearer_auth(&tok)
        .json(&serde_json::json!({"state": "enabledForReportingButNotEnforced"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let b = browser();
    let r = password_attempt(
        &p.resource,
        &b,
        &rp_authorize(&p.resource, ""),
        CAROL,
        CAROL_PW,
    )
    .await;
    assert_eq!(r.status(), 303, "report-only is not enforced");
    let rows = sign_in_rows(&p.resource).await;
    assert_eq!(policy_result(&rows[0], &id), "reportOnlyFailure");

    // Policies from files are read-only; unknown ids are 404; API policies can be deleted.
    let r = c
        .delete(format!("{url}/block-high-sign-in-risk"))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let r = c
        .delete(format!("{url}/nope"))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = c
        .delete(format!("{url}/{id}"))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = c
        .get(format!("{url}/{id}"))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Without a token: 401.
    assert_eq!(c.get(&url).send().await.unwrap().status(), 401);
}

#[tokio::test]
async fn sign_in_log_api_filters_and_pages() {
    let policies = policies_copy("fabrikam");
    let p = pair(&resource_lines(&policies, TRUSTED)).await;
    bob_at_risk(&p).await;
    let b = browser();
    let _ = federated_sign_in(&p, &b, &rp_authorize(&p.resource, ""), BOB, BOB_PW).await;
    for _ in 0..3 {
        let b = browser();
        let r = password_attempt(
            &p.resource,
            &b,
            &rp_authorize(&p.resource, ""),
            CAROL,
            CAROL_PW,
        )
        .await;
        assert_eq!(r.status(), 303);
    }
    let tok = admin_token(&p.resource).await;
    let get = |q: &str| {
        backchannel()
            .get(format!("{}/v1.0/auditLogs/signIns{q}", p.resource.issuer))
            .bearer_auth(&tok)
            .send()
    };
    let v: serde_json::Value = get("?$filter=riskLevelAggregated eq 'high'")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rows = v["value"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{v}");
    assert_eq!(rows[0]["userPrincipalName"], BOB);
    assert_eq!(rows[0]["status"]["errorCode"], 53011);
    assert_eq!(rows[0]["conditionalAccessStatus"], "failure");
    assert_eq!(
        rows[0]["riskState"], "none",
        "the sign-in itself was not risky"
    );
    assert!(
        rows[0]["appliedConditionalAccessPolicies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == "idProtection-userRiskPolicy"
                && a["result"] == "failure"
                && a["enforcedGrantControls"][0] == "mfa")
    );
    let v: serde_json::Value = get("?$filter=status/errorCode eq 53011")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["value"].as_array().unwrap().len(), 1);
    let v: serde_json::Value = get(&format!("?$filter=userPrincipalName eq '{CAROL}'&$top=2"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["value"].as_array().unwrap().len(), 2);
    let next = v["@odata.nextLink"].as_str().unwrap().to_owned();
    let v: serde_json::Value = backchannel()
        .get(next)
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["value"].as_array().unwrap().len(),
        1,
        "the third row on page two"
    );
    assert!(v.get("@odata.nextLink").is_none());
    let r = get("?$filter=displayName eq 'x'").await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("unsupported"));
}

#[tokio::test]
async fn bad_intel_or_policy_files_are_refused_and_the_previous_state_kept() {
    let policies = policies_copy("fabrikam");
    let p = pair(&resource_lines(&policies, TRUSTED)).await;
    let tok = admin_token(&p.resource).await;
    let reload = || {
        backchannel()
            .post(p.resource.url("/v1.0/tenantd/reload"))
            .bearer_auth(&tok)
            .send()
    };
    let r = reload().await.unwrap();
    assert_eq!(r.status(), 200);
    let before = p.resource.state().protection.policies().set.len();

    // A policy file with a typo'd field: refused with file, line and field; nothing changes.
    let bad = policies.join("30-typo.json");
    std::fs::write(&bad, "{\n  \"id\": \"x\",\n  \"displayName\": \"x\",\n  \"state\": \"enabled\",\n  \"condtions\": {}\n}\n").unwrap();
    let r = reload().await.unwrap();
    assert_eq!(r.status(), 400);
    let msg = r.text().await.unwrap();
    assert!(
        msg.contains("30-typo.json") && msg.contains("condtions"),
        "{msg}"
    );
    assert!(msg.contains("nothing was changed"), "{msg}");
    assert_eq!(p.resource.state().protection.policies().set.len(), before);
    std::fs::remove_file(&bad).unwrap();

    // A policy that parses but breaks Graph's rules names the policy and its file.
    std::fs::write(
        policies.join("40-rules.toml"),
        "id = \"pw\"\ndisplayName = \"pw\"\nstate = \"enabled\"\n[conditions.users]\nincludeUsers = [\"All\"]\n[conditions.applications]\nincludeApplications = [\"All\"]\n[grantControls]\noperator = \"AND\"\nbuiltInControls = [\"mfa\", \"passwordChange\"]\n",
    )
    .unwrap();
    let msg = reload().await.unwrap().text().await.unwrap();
    assert!(
        msg.contains("40-rules.toml") && msg.contains("userRiskLevels"),
        "{msg}"
    );
    std::fs::remove_file(policies.join("40-rules.toml")).unwrap();

    // SIGHUP's path and the API share the loader: a good reload works again.
    assert_eq!(reload().await.unwrap().status(), 200);

    // Bad intel: a tenant whose anonymous-IP list has a bad line does not start, naming it.
    let list = fixtures()
        .dir
        .join(format!("anon-{}.txt", uuid::Uuid::new_v4()));
    std::fs::write(&list, "198.51.100.7\n198.51.100.300/24\n").unwrap();
    let (d, db) = tenant_dir("broken");
    let text = config_text(
        "broken",
        "https://127.0.0.1:1",
        "127.0.0.1:0",
        &db,
        &format!("[risk]\nanonymous_ips = [\"{}\"]\n", list.display()),
    );
    let config = server::Config::parse(&text, &d.join("t.toml").display().to_string()).unwrap();
    let err = server::Tenant::start(
        config,
        std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        std::sync::Arc::new(server::OffsetClock::default()),
    )
    .await
    .err()
    .unwrap();
    let msg = format!("{err:#}");
    assert!(
        msg.contains(&format!("{}:2", list.display())) && msg.contains("198.51.100.300"),
        "{msg}"
    );
    // Said once, and found before the database (and its signing keys) was created.
    assert_eq!(msg.matches("198.51.100.300").count(), 1, "{msg}");
    assert!(
        err.chain()
            .any(|c| c.downcast_ref::<server::config::ConfigError>().is_some()),
        "{err:?}"
    );
    assert!(!d.join("tenant.db").exists(), "no database was created");
}

/// At `/login/mfa?...` of `base` with no authenticator yet: enrol one, then continue. Returns
/// the key and the answer of `/login/continue`.
pub async fn enrol_and_continue(
    base: &str,
    b: &reqwest::Client,
    mfa_path: &str,
) -> (String, reqwest::Response) {
    let page = b.get(format!("{base}{mfa_path}")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    let secret = crate::mfa::enrolment_secret(&page).expect("the enrolment page");
    let mut form = hidden_inputs(&page);
    form.push(("code".into(), crate::mfa::totp_now(&secret)));
    let r = b
        .post(format!("{base}/login/mfa/enrol"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    let interaction = hidden_inputs(&page)
        .into_iter()
        .find(|(k, _)| k == "interaction")
        .unwrap()
        .1;
    let r = b
        .get(format!("{base}/login/continue?interaction={interaction}"))
        .send()
        .await
        .unwrap();
    (secret, r)
}

const GUESTS_MFA: &str = r#"{
  "id": "guests-mfa", "displayName": "Require MFA for guests", "state": "enabled",
  "conditions": {"users": {"includeUsers": ["GuestsOrExternalUsers"]}, "applications": {"includeApplications": ["All"]}},
  "grantControls": {"operator": "OR", "builtInControls": ["mfa"]}
}"#;

#[tokio::test]
async fn anonymous_ip_guest_is_asked_for_mfa_and_cannot_enrol_during_the_risky_sign_in() {
    let policies = policies_copy("fabrikam");
    let p = pair(&resource_lines(&policies, TRUSTED)).await;
    let b = browser_from("198.51.100.7");
    let to_mfa =
        match federated_sign_in(&p, &b, &rp_authorize(&p.resource, ""), ALICE, ALICE_PW).await {
            Ended::App(l) => l,
            Ended::Page(s, t) => panic!("{s}: {t}"),
        };
    assert!(to_mfa.starts_with("/login/mfa?"), "challenged: {to_mfa}");
    let r = b.get(p.resource.url(&to_mfa)).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let page = text_of(r).await;
    assert!(page.contains("53004"), "{page}");
    let rows = sign_in_rows(&p.resource).await;
    assert_eq!(rows[0].error_code, 53004);
    assert!(
        !signin::mfa::has_method(p.resource.state(), rows[0].user_id.as_deref().unwrap())
            .await
            .unwrap(),
        "no factor was enrolled"
    );
}

#[tokio::test]
async fn guest_mfa_is_done_at_the_resource_unless_the_partner_is_trusted_for_mfa() {
    // Home: lab-rp requires MFA of everyone, so alice's home session carries amr mfa.
    let home_policies = fixtures().dir.join(format!("hp-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&home_policies).unwrap();
    std::fs::write(
        home_policies.join("mfa.json"),
        format!(
            r#"{{"id": "mfa-rp", "displayName": "MFA for lab-rp", "state": "enabled",
  "conditions": {{"users": {{"includeUsers": ["All"]}}, "applications": {{"includeApplications": ["{RP_ID}"]}}}},
  "grantControls": {{"operator": "OR", "builtInControls": ["mfa"]}}}}"#
        ),
    )
    .unwrap();
    for trust_mfa in [false, true] {
        let policies = policies_copy("fabrikam");
        std::fs::write(policies.join("30-guests-mfa.json"), GUESTS_MFA).unwrap();
        let p = pair_with(
            &risk_toml(&home_policies),
            &resource_lines(&policies, &format!("{TRUSTED}\ntrust_mfa = {trust_mfa}")),
        )
        .await;
        let b = browser();
        // MFA at home first (enrolment, then the code).
        let r = b.get(rp_authorize(&p.home, "")).send().await.unwrap();
        let mut form = password_form(&p.home, &b, r, ALICE).await;
        form.push(("password".into(), ALICE_PW.into()));
        let r = b
            .post(p.home.url("/login/password"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        let to_mfa = location(&r);
        assert!(to_mfa.starts_with("/login/mfa?"), "{to_mfa}");
        let (_, r) = enrol_and_continue(&p.home.issuer, &b, &to_mfa).await;
        assert_eq!(r.status(), 303);
        assert!(
            location(&r).starts_with(RP_REDIRECT),
            "signed in at home with MFA"
        );

        // Then the resource, in the same browser: the home signs alice in by SSO (amr mfa).
        let r = submit_email(
            &b,
            &p.resource.issuer,
            &rp_authorize(&p.resource, ""),
            ALICE,
        )
        .await;
        let ended = follow_to_home_and_back(&p, &b, r, ALICE_PW).await;
        let l = match ended {
            Ended::App(l) => l,
            Ended::Page(s, t) => panic!("{s}: {t}"),
        };
        let rows = sign_in_rows(&p.resource).await;
        if trust_mfa {
            assert!(l.starts_with(RP_REDIRECT), "the home's MFA counts: {l}");
            assert_eq!(policy_result(&rows[0], "guests-mfa"), "success");
        } else {
            assert!(l.starts_with("/login/mfa?"), "MFA here: {l}");
            let (_, r) = enrol_and_continue(&p.resource.issuer, &b, &l).await;
            assert_eq!(r.status(), 303);
            assert!(location(&r).starts_with(RP_REDIRECT));
            let rows = sign_in_rows(&p.resource).await;
            assert_eq!(rows[0].error_code, 0);
            assert_eq!(policy_result(&rows[0], "guests-mfa"), "success");
        }
    }
}

/// The home with contoso's shipped policies; alice has a TOTP authenticator (returns its key).
async fn home_with_policies_and_alice_enrolled() -> (TestTenant, String) {
    let policies = policies_copy("contoso");
    let t = start_with("contoso", &format!("{}{ADMIN_APP}", risk_toml(&policies))).await;
    // Enrol alice while she is not at risk: a first sign-in with MFA required by a policy.
    std::fs::write(
        policies.join("mfa.json"),
        GUESTS_MFA
            .replace("GuestsOrExternalUsers", "All")
            .replace("guests-mfa", "all-mfa"),
    )
    .unwrap();
    t.state().protection.reload(&t.state().store).await.unwrap();
    let b = browser();
    let r = password_attempt(&t, &b, &rp_authorize(&t, ""), ALICE, ALICE_PW).await;
    let (secret, r) = enrol_and_continue(&t.issuer, &b, &location(&r)).await;
    assert!(location(&r).starts_with(RP_REDIRECT));
    std::fs::remove_file(policies.join("mfa.json")).unwrap();
    t.state().protection.reload(&t.state().store).await.unwrap();
    (t, secret)
}

/// `interaction` and `csrf_token` of a page, once each (the MFA page has two forms).
fn form_fields(page: &str) -> Vec<(String, String)> {
    let mut f: Vec<(String, String)> = hidden_inputs(page)
        .into_iter()
        .filter(|(k, _)| k == "interaction" || k == "csrf_token")
        .collect();
    f.sort();
    f.dedup();
    f
}

async fn alice_risk(t: &TestTenant) -> risk::UserRiskStatus {
    let alice = t.state().store.user_by_email(ALICE).await.unwrap().unwrap();
    server::user_risk::current(t.state(), &alice.id)
        .await
        .unwrap()
}

async fn confirm_alice_compromised(t: &TestTenant) {
    let alice = t.state().store.user_by_email(ALICE).await.unwrap().unwrap();
    server::user_risk::remediate(
        t.state(),
        &alice.id,
        risk::UserRiskEvent::AdminConfirmedCompromised,
        risk::Actor::Admin("test".into()),
    )
    .await
    .unwrap();
    assert_eq!(alice_risk(t).await.risk_level, risk::RiskLevel::High);
}

#[tokio::test]
async fn risky_member_does_mfa_then_a_secure_password_change_which_remediates() {
    let (t, secret) = home_with_policies_and_alice_enrolled().await;
    confirm_alice_compromised(&t).await;
    // Wait for the next TOTP step: the enrolment's code is spent.
    let b = browser();
    let r = password_attempt(&t, &b, &rp_authorize(&t, ""), ALICE, ALICE_PW).await;
    let to_mfa = location(&r);
    assert!(
        to_mfa.starts_with("/login/mfa?"),
        "user risk high: MFA first: {to_mfa}"
    );
    let stolen = browser().get(t.url(&to_mfa)).send().await.unwrap();
    assert_ne!(
        stolen.status(),
        200,
        "another browser never sees the MFA step"
    );
    let page = page_text(&b, t.url(&to_mfa)).await;
    assert!(
        crate::mfa::enrolment_secret(&page).is_none(),
        "verify, not enrol"
    );

    // A pending sign-in still waiting for MFA cannot jump to the password change.
    let mut skip = form_fields(&page);
    skip.push(("new_password".into(), "brand-new-password-1".into()));
    skip.push(("confirm_password".into(), "brand-new-password-1".into()));
    let r = b
        .post(t.url("/login/change-password"))
        .form(&skip)
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 303);
    assert_eq!(
        alice_risk(&t).await.risk_state,
        risk::RiskState::ConfirmedCompromised
    );

    // The code from the next step (the enrolment used this one).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut form = form_fields(&page);
    form.push(("code".into(), crate::mfa::totp_at(&secret, now + 30)));
    let r = b
        .post(t.url("/login/mfa"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "MFA accepted");
    let resume = location(&r);
    let stolen = browser().get(t.url(&resume)).send().await.unwrap();
    assert_ne!(
        stolen.status(),
        200,
        "another browser cannot resume the sign-in"
    );
    assert_ne!(stolen.status(), 303);
    let r = b.get(t.url(&resume)).send().await.unwrap();
    assert_eq!(r.status(), 200, "then the password change page");
    let page = r.text().await.unwrap();
    assert!(page.contains("/login/change-password"), "{page}");
    let mut form = hidden_inputs(&page);
    form.push(("new_password".into(), "brand-new-password-1".into()));
    form.push(("confirm_password".into(), "brand-new-password-1".into()));
    let r = b
        .post(t.url("/login/change-password"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(
        location(&r).starts_with(RP_REDIRECT),
        "signed in: {}",
        location(&r)
    );
    let status = alice_risk(&t).await;
    assert_eq!(status.risk_state, risk::RiskState::Remediated);
    assert_eq!(
        status.risk_detail,
        risk::RiskDetail::UserPerformedSecuredPasswordChange
    );
    assert_eq!(status.risk_level, risk::RiskLevel::None);
    let rows = sign_in_rows(&t).await;
    assert_eq!(rows[0].error_code, 0);
    assert_eq!(
        policy_result(&rows[0], "idProtection-userRiskPolicy"),
        "success"
    );
}

#[tokio::test]
async fn self_service_password_reset_remediates_at_home() {
    let (t, secret) = home_with_policies_and_alice_enrolled().await;
    confirm_alice_compromised(&t).await;
    let b = browser();
    let page = page_text(&b, t.url("/password/reset")).await;
    let mut form = hidden_inputs(&page);
    form.push(("email".into(), ALICE.into()));
    let page = b
        .post(t.url("/password/reset"))
        .form(&form)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // A wrong code: refused, nothing changes.
    let mut bad = hidden_inputs(&page);
    bad.push(("code".into(), "000000".into()));
    bad.push(("new_password".into(), "reset-password-2".into()));
    bad.push(("confirm_password".into(), "reset-password-2".into()));
    let page = b
        .post(t.url("/password/reset/new"))
        .form(&bad)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("not right"), "{page}");
    assert_eq!(
        alice_risk(&t).await.risk_state,
        risk::RiskState::ConfirmedCompromised
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // The right code, but the current password again: not a secure reset, nothing changes.
    let mut same = hidden_inputs(&page);
    same.push(("code".into(), crate::mfa::totp_at(&secret, now + 30)));
    same.push(("new_password".into(), ALICE_PW.into()));
    same.push(("confirm_password".into(), ALICE_PW.into()));
    let page = b
        .post(t.url("/password/reset/new"))
        .form(&same)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("must differ from your current one"), "{page}");
    assert_eq!(
        alice_risk(&t).await.risk_state,
        risk::RiskState::ConfirmedCompromised
    );
    // A TOTP step is used once: the next code is a minute on.
    t.clock.advance(60);
    let mut form = hidden_inputs(&page);
    form.push(("code".into(), crate::mfa::totp_at(&secret, now + 60)));
    form.push(("new_password".into(), "reset-password-2".into()));
    form.push(("confirm_password".into(), "reset-password-2".into()));
    let page = b
        .post(t.url("/password/reset/new"))
        .form(&form)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Your password was reset"), "{page}");
    let status = alice_risk(&t).await;
    assert_eq!(status.risk_state, risk::RiskState::Remediated);
    assert_eq!(
        status.risk_detail,
        risk::RiskDetail::UserPerformedSecuredPasswordReset
    );
    // The new password works; the old one does not.
    let r = password_attempt(&t, &browser(), &rp_authorize(&t, ""), ALICE, ALICE_PW).await;
    assert_eq!(r.status(), 200, "old password refused");
    let r = password_attempt(
        &t,
        &browser(),
        &rp_authorize(&t, ""),
        ALICE,
        "reset-password-2",
    )
    .await;
    assert_eq!(r.status(), 303);
}

#[tokio::test]
async fn passing_mfa_for_a_risky_sign_in_remediates_it_and_leaves_user_risk_alone() {
    let (t, secret) = home_with_policies_and_alice_enrolled().await;
    // From the lab's "Tor exit": sign-in risk medium → contoso's sign-in-risk policy asks for MFA.
    let b = browser_from("198.51.100.7");
    let r = password_attempt(&t, &b, &rp_authorize(&t, ""), ALICE, ALICE_PW).await;
    let to_mfa = location(&r);
    assert!(to_mfa.starts_with("/login/mfa?"), "{to_mfa}");
    let page = page_text(&b, t.url(&to_mfa)).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut form = form_fields(&page);
    form.push(("code".into(), crate::mfa::totp_at(&secret, now + 30)));
    let r = b
        .post(t.url("/login/mfa"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = b.get(t.url(&location(&r))).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert!(location(&r).starts_with(RP_REDIRECT));
    let rows = sign_in_rows(&t).await;
    let row = &rows[0];
    assert_eq!(row.error_code, 0);
    assert_eq!(row.risk_level_during_sign_in.as_deref(), Some("medium"));
    assert_eq!(row.details["riskState"], "remediated");
    assert_eq!(
        row.details["riskDetail"],
        "userPassedMFADrivenByRiskBasedPolicy"
    );
    assert_eq!(
        policy_result(row, "idProtection-signInRiskPolicy"),
        "success"
    );
    assert_eq!(
        rows[1].error_code, 50074,
        "the interruption is on record too"
    );
    assert_eq!(rows[1].correlation_id, row.correlation_id);
    assert_eq!(
        policy_result(&rows[1], "idProtection-signInRiskPolicy"),
        "failure"
    );
    assert_eq!(
        alice_risk(&t).await.risk_level,
        risk::RiskLevel::None,
        "a remediated sign-in does not count towards user risk"
    );

    // The same from the botnet range without MFA being possible would be blocked; and a risky
    // sign-in that succeeds without MFA (no policy asks) raises the member's user risk.
    let policies_dir = t.dir.join("no-policies");
    std::fs::create_dir_all(&policies_dir).unwrap();
    let t2 = start_with("contoso2", &risk_toml(&policies_dir)).await;
    let b = browser_from("198.51.100.7");
    let r = password_attempt(&t2, &b, &rp_authorize(&t2, ""), ALICE, ALICE_PW).await;
    assert_eq!(r.status(), 303);
    let status = alice_risk(&t2).await;
    assert_eq!(status.risk_state, risk::RiskState::AtRisk);
    assert_eq!(status.risk_level, risk::RiskLevel::Medium);
    // The same sign-in retried adds no more detections: one of a kind per window.
    for _ in 0..3 {
        let b = browser_from("198.51.100.7");
        let r = password_attempt(&t2, &b, &rp_authorize(&t2, ""), ALICE, ALICE_PW).await;
        assert_eq!(r.status(), 303);
    }
    let alice = t2
        .state()
        .store
        .user_by_email(ALICE)
        .await
        .unwrap()
        .unwrap();
    let detections = t2.state().store.active_detections(&alice.id).await.unwrap();
    assert_eq!(detections.len(), 1, "{detections:?}");
}

#[tokio::test]
async fn sighup_reloads_policies_and_a_bad_file_keeps_the_previous_ones() {
    let policies = policies_copy("fabrikam");
    let (dir, db) = tenant_dir("hup");
    let port = stable_port();
    let issuer = format!("https://127.0.0.1:{port}");
    let cfg = dir.join("tenant.toml");
    std::fs::write(
        &cfg,
        config_text(
            "hup",
            &issuer,
            &format!("127.0.0.1:{port}"),
            &db,
            &format!("{}{ADMIN_APP}", risk_toml(&policies)),
        ),
    )
    .unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_tenantd-e2e"))
        .args(["serve", "--config", cfg.to_str().unwrap()])
        .env("TENANTD_LOG", "warn")
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let _serving = Serving(child);
    wait_ready(&issuer).await;
    let tok: serde_json::Value = backchannel()
        .post(format!("{issuer}/token"))
        .basic_auth("admin-daemon", Some("admin-daemon-secret"))
        .form(&[("grant_type", "client_credentials"), ("scope", "admin")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tok = tok["access_token"].as_str().unwrap().to_owned();
    let ids = || async {
        let v: serde_json::Value = backchannel()
            .get(format!("{issuer}/v1.0/identity/conditionalAccess/policies"))
            .bearer_auth(&tok)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let hup = || {
        let s = std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap();
        assert!(s.success());
    };
    let before = ids().await;
    assert!(!before.contains(&"guests-mfa".to_owned()));

    std::fs::write(policies.join("30-guests-mfa.json"), GUESTS_MFA).unwrap();
    hup();
    let mut after = Vec::new();
    for _ in 0..50 {
        after = ids().await;
        if after.len() > before.len() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(after.contains(&"guests-mfa".to_owned()), "{after:?}");

    std::fs::write(policies.join("40-broken.json"), "{ not json").unwrap();
    hup();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(ids().await, after, "a bad file keeps the previous policies");
    let r = backchannel()
        .get(format!("{issuer}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "still serving");
}

#[tokio::test]
async fn travel_between_sign_ins_is_judged_from_the_users_history_here() {
    let policies_dir = fixtures()
        .dir
        .join(format!("none-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&policies_dir).unwrap();
    let t = start_with("travel", &risk_toml(&policies_dir)).await;
    // Oslo (192.0.2.x), then Sydney (198.51.100.x) minutes later: ~15,950 km.
    let r = password_attempt(
        &t,
        &browser_from("192.0.2.10"),
        &rp_authorize(&t, ""),
        ALICE,
        ALICE_PW,
    )
    .await;
    assert_eq!(r.status(), 303);
    t.clock.advance(600);
    let r = password_attempt(
        &t,
        &browser_from("198.51.100.200"),
        &rp_authorize(&t, ""),
        ALICE,
        ALICE_PW,
    )
    .await;
    assert_eq!(r.status(), 303, "no policy: allowed, but judged");
    let rows = sign_in_rows(&t).await;
    let last = &rows[0];
    assert_eq!(last.ip_address.as_deref(), Some("198.51.100.200"));
    let types = last.details["riskEventTypes_v2"].as_array().unwrap();
    assert!(
        types.iter().any(|t| t == "impossibleTravel"),
        "{}",
        last.details
    );
    assert_eq!(last.risk_level_during_sign_in.as_deref(), Some("high"));
    let why = last.details["riskDetections"].to_string();
    assert!(why.contains("Oslo") && why.contains("Sydney"), "{why}");
    assert_eq!(
        rows[1].risk_level_during_sign_in.as_deref(),
        Some("none"),
        "the first sign-in had nothing to compare with"
    );
}

/// A scripted client on one machine: one IP (`ip`, through the tenant's trusted proxy), one
/// user agent, and a fresh cookie jar, so nothing is remembered between sign-ins.
fn test_suite_client(ip: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-forwarded-for", ip.parse().unwrap());
    reqwest::Client::builder()
        .use_preconfigured_tls(server::tls::client_config(Some(&fixtures().ca)).unwrap())
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("rp-test-suite/2.4 python-requests/2.32.3")
        .default_headers(headers)
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_test_suite_signing_one_user_in_200_times_from_one_machine_is_never_risky() {
    // The shipped intel and Fabrikam's shipped policies: the sign-in risk policy asks for MFA
    // at medium and above, which a script cannot do. A relying-party test suite signs the same
    // user in again and again from one machine, far more than `velocity_max_sign_ins` (10)
    // times within `velocity_window_seconds` (300): repeats from a familiar network and device
    // are never suspicious, so every one of them ends with a code.
    const SIGN_INS: usize = 200;
    let policies = policies_copy("fabrikam");
    let t = start_with("suite", &risk_toml(&policies)).await;
    // Sydney, AS64497: geolocated, with an ASN, on no IP list and in no trusted named
    // location, so travel, new country and unfamiliar features are all judged.
    let ip = "198.51.100.20";
    for i in 0..SIGN_INS {
        // A fresh client each time: no session, so each is a real password sign-in.
        let b = test_suite_client(ip);
        let redirect = sign_in(&t, &b, &rp_authorize(&t, ""), ALICE, ALICE_PW).await;
        assert!(
            redirect.starts_with(RP_REDIRECT),
            "sign-in {} ended at {redirect}, not at the app",
            i + 1
        );
        let code = code_from(&t, &redirect, "st-1");
        let r = rp_token(
            &t,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", RP_REDIRECT),
            ],
        )
        .await;
        assert_eq!(r.status(), 200, "sign-in {}: the code is redeemed", i + 1);
    }
    let rows = t
        .state()
        .store
        .list_sign_ins(&store::SignInFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), SIGN_INS, "one log row per sign-in");
    for row in &rows {
        assert_eq!(row.error_code, 0, "{:?}", row.failure_reason);
        assert_eq!(row.ip_address.as_deref(), Some(ip));
        assert_eq!(
            row.risk_level_during_sign_in.as_deref(),
            Some("none"),
            "{}",
            row.details
        );
        assert_eq!(row.risk_level_aggregated.as_deref(), Some("none"));
        assert_eq!(
            row.details["riskEventTypes_v2"],
            serde_json::json!([]),
            "{}",
            row.details
        );
        assert_eq!(
            row.details["riskDetections"],
            serde_json::json!([]),
            "{}",
            row.details
        );
    }
    assert_eq!(
        alice_risk(&t).await.risk_level,
        risk::RiskLevel::None,
        "no risky sign-in raised alice's user risk"
    );
}

/// The email step of `/password/reset` in browser `b` for `account`.
async fn reset_for(t: &TestTenant, b: &reqwest::Client, account: &str) -> reqwest::Response {
    let page = page_text(b, t.url("/password/reset")).await;
    let mut form = hidden_inputs(&page);
    form.push(("email".into(), account.into()));
    b.post(t.url("/password/reset"))
        .form(&form)
        .send()
        .await
        .unwrap()
}

/// The text of the administrator page's fact `id` (`<dd id="fact-...">`).
fn fact(page: &str, id: &str) -> String {
    let open = format!("<dd id=\"fact-{id}\">");
    let start = page.find(&open).unwrap_or_else(|| panic!("{id}: {page}")) + open.len();
    let rest = &page[start..];
    rest[..rest.find("</dd>").unwrap()]
        .replace("<code>", "")
        .replace("</code>", "")
}

/// An administrator page: the four facts to hand over, checked; returns the page with the
/// facts that differ per request (time, correlation id) taken out.
async fn administrator_page(t: &TestTenant, r: reqwest::Response, typed: &str) -> String {
    assert_eq!(r.status(), 200);
    let correlation_id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let page = text_of(r).await;
    assert!(page.contains("Contact your administrator"), "{page}");
    assert!(!page.contains("name=\"code\""), "no code form: {page}");
    assert_eq!(fact(&page, "account"), typed);
    assert_eq!(fact(&page, "tenant"), "Tenant contoso (contoso)");
    assert_eq!(fact(&page, "correlation-id"), correlation_id);
    let time = fact(&page, "time");
    let at = time::OffsetDateTime::parse(&time, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{time}: {e}"));
    assert_eq!(at.offset(), time::UtcOffset::UTC, "{time}");
    assert!((t.state().now() - at.unix_timestamp()).abs() <= 5, "{time}");
    page.replace(&time, "TIME")
        .replace(&correlation_id, "CORRELATION")
        .replace(typed, "ACCOUNT")
}

#[tokio::test]
async fn sspr_off_sends_even_an_enrolled_user_to_their_administrator() {
    let t = start_with("contoso", "\n[sspr]\nenabled = false\n").await;
    // No reset page to send blocked guests to: discovery does not advertise one.
    let meta: serde_json::Value = backchannel()
        .get(t.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(meta.get("password_reset_uri").is_none(), "{meta}");
    assert!(!t.state().config.sspr.enabled);
    // Alice has an authenticator: off is off all the same.
    let alice = t.state().store.user_by_email(ALICE).await.unwrap().unwrap();
    let store = &t.state().store;
    store
        .add_unconfirmed_totp("m1", &alice.id, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", 0)
        .await
        .unwrap();
    assert!(store.confirm_totp("m1", 1, 0).await.unwrap());
    let b = browser();
    let page = page_text(&b, t.url("/password/reset")).await;
    assert!(page.contains("what to give your administrator"), "{page}");
    // Still CSRF-protected.
    let r = b
        .post(t.url("/password/reset"))
        .form(&[("email", ALICE), ("csrf_token", "forged")])
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 200);
    assert!(!text_of(r).await.contains("fact-account"));
    // The account as typed.
    let typed = "Alice@Contoso.test";
    administrator_page(&t, reset_for(&t, &b, typed).await, typed).await;
}

#[tokio::test]
async fn a_user_without_a_method_and_an_unknown_user_get_the_same_answer() {
    let t = start("contoso").await;
    assert!(t.state().config.sspr.enabled);
    let b = browser();
    // Alice exists, without an authenticator.
    let known = administrator_page(&t, reset_for(&t, &b, ALICE).await, ALICE).await;
    let nobody = "nobody@contoso.test";
    let unknown = administrator_page(&t, reset_for(&t, &b, nobody).await, nobody).await;
    assert_eq!(known, unknown);
}

#[tokio::test]
async fn reset_attempts_are_limited_per_account_and_per_ip_for_any_account() {
    let t = start_with(
        "contoso",
        "\n[sspr]\nmax_attempts_per_account = 2\nmax_attempts_per_ip = 3\nwindow_secs = 600\n",
    )
    .await;
    // Per account: an existing one and an unknown one alike, each from its own network.
    let mut refusals = Vec::new();
    for (ip, account) in [
        ("203.0.113.1", ALICE),
        ("203.0.113.2", "nobody@contoso.test"),
    ] {
        let b = browser_from(ip);
        for _ in 0..2 {
            assert_eq!(reset_for(&t, &b, account).await.status(), 200);
        }
        let r = reset_for(&t, &b, account).await;
        assert_eq!(r.status(), 429, "{account}");
        let retry: i64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=600).contains(&retry), "{retry}");
        let page = text_of(r).await;
        assert!(page.contains("Too many attempts"), "{page}");
        assert!(!page.contains(account), "{page}");
        refusals.push(
            page.split("Correlation ID")
                .next()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    assert_eq!(refusals[0], refusals[1], "the same answer for both");
    // Per IP: a fourth account from one address.
    let b = browser_from("203.0.113.3");
    for n in 0..3 {
        let r = reset_for(&t, &b, &format!("user{n}@contoso.test")).await;
        assert_eq!(r.status(), 200);
    }
    let r = reset_for(&t, &b, "user3@contoso.test").await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    // The window ends: alice may try again.
    t.clock.advance(601);
    let r = reset_for(&t, &browser_from("203.0.113.1"), ALICE).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn each_code_submitted_counts_as_a_reset_attempt() {
    let t = start_with("contoso", "\n[sspr]\nmax_attempts_per_account = 3\n").await;
    let alice = t.state().store.user_by_email(ALICE).await.unwrap().unwrap();
    let store = &t.state().store;
    store
        .add_unconfirmed_totp("m1", &alice.id, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", 0)
        .await
        .unwrap();
    assert!(store.confirm_totp("m1", 1, 0).await.unwrap());
    let b = browser();
    // With a method: the code form (attempt 1).
    let r = reset_for(&t, &b, ALICE).await;
    assert_eq!(r.status(), 200);
    let mut page = text_of(r).await;
    assert!(page.contains("name=\"code\""), "{page}");
    // Two wrong codes (attempts 2 and 3), then the limit.
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let mut form = hidden_inputs(&page);
        form.push(("code".into(), "000000".into()));
        form.push(("new_password".into(), "reset-password-2".into()));
        form.push(("confirm_password".into(), "reset-password-2".into()));
        let r = b
            .post(t.url("/password/reset/new"))
            .form(&form)
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            assert!(r.headers().contains_key("retry-after"));
        }
        page = text_of(r).await;
    }
    assert_eq!(statuses, [200, 200, 429]);
    assert!(page.contains("Too many attempts"), "{page}");
}
