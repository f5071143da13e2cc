//! Partners checked before guests need them (start-up, reload) and named failures at sign-in:
//! a partner whose TLS certificate this tenant does not trust is not "not responding", the
//! reload API lists each partner's findings, and every guest sign-in's log row says whether the
//! home's token carried the risk claim the partner's mapping looks for.

use crate::federation::*;
use crate::support::*;
use serde_json::{Value, json};
use std::net::TcpListener;

/// `POST /v1.0/tenantd/reload` with an admin token: the answer's `partners`.
async fn reload_partners(t: &TestTenant) -> Vec<Value> {
    let token = admin_token(t).await;
    let r = backchannel()
        .post(t.url("/v1.0/tenantd/reload"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    body["partners"].as_array().unwrap().clone()
}

fn kinds(partner: &Value) -> Vec<String> {
    partner["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_partner_whose_certificate_is_not_trusted_is_named_as_such() {
    // A real home tenant, served with the test CA's certificate; the resource's partner entry
    // trusts another CA only.
    let home = start_with("contoso", "").await;
    let other = tenant_dir("other-ca").0;
    let (other_ca, _) = tenantd::certs::ensure(&other, true).unwrap();
    let (d, db) = tenant_dir("fabrikam");
    let config = partner_toml(&home.issuer, "").replace(
        &fixtures().ca.display().to_string(),
        &other_ca.ca.display().to_string(),
    );
    let resource = start_on(
        "fabrikam",
        TcpListener::bind("127.0.0.1:0").unwrap(),
        &d,
        &db,
        &format!("{config}{ADMIN_APP}"),
    )
    .await;
    invite(&resource, ALICE, "contoso").await;

    // The guest's page says what happened, not "not responding"; the app gets access_denied.
    let r = submit_email(
        &browser(),
        &resource.issuer,
        &rp_authorize(&resource, ""),
        ALICE,
    )
    .await;
    let (text, err) = refusal(Ended::Page(r.status().as_u16(), r.text().await.unwrap()));
    assert!(
        text.contains("certificate is not trusted") && text.contains("9003301"),
        "{text}"
    );
    assert!(!text.contains("not responding"), "{text}");
    assert_eq!(err.get("error").map(String::as_str), Some("access_denied"));

    // The sign-in log row has its own code and reason, and what was wrong with the certificate.
    let row = sign_in_rows(&resource).await.into_iter().next().unwrap();
    assert_eq!(row.error_code, 9003301);
    assert!(
        row.failure_reason
            .as_deref()
            .unwrap()
            .contains("certificate not trusted"),
        "{:?}",
        row.failure_reason
    );
    assert_eq!(
        row.details["homeCertificate"], "unknownIssuer",
        "{:#}",
        row.details
    );
    assert_eq!(row.home_tenant_id.as_deref(), Some("contoso"));

    // The reload API reports it, with the fix.
    let partners = reload_partners(&resource).await;
    assert_eq!(partners.len(), 1);
    assert_eq!(partners[0]["id"], "contoso");
    assert_eq!(partners[0]["issuer"], home.issuer.as_str());
    assert_eq!(partners[0]["ok"], false);
    assert_eq!(kinds(&partners[0]), ["untrustedCertificate"]);
    let fix = partners[0]["findings"][0]["fix"].as_str().unwrap();
    assert!(fix.contains("ca_file"), "{fix}");
}

#[tokio::test]
async fn the_reload_api_reports_each_partners_findings() {
    // A tenantd home lists user_risk in claims_supported: nothing to report.
    let p = pair_with("", &format!("{TRUSTED}\n{ADMIN_APP}")).await;
    let partners = reload_partners(&p.resource).await;
    assert_eq!(partners[0]["ok"], true, "{partners:?}");
    assert!(kinds(&partners[0]).is_empty());

    // A home that lists its claims without the mapped one: its tokens probably carry risk
    // under another name.
    let idp = fake_idp_with(json!({"claims_supported": ["sub", "email", "risk_level"]})).await;
    let resource = resource_of(&idp, &format!("{TRUSTED}\n{ADMIN_APP}")).await;
    let partners = reload_partners(&resource).await;
    assert_eq!(kinds(&partners[0]), ["riskClaimNotSupported"]);
    let finding = &partners[0]["findings"][0];
    assert!(
        finding["message"]
            .as_str()
            .unwrap()
            .contains("\"user_risk\""),
        "{finding}"
    );
    assert!(
        finding["fix"]
            .as_str()
            .unwrap()
            .contains("user_risk_claim.claim"),
        "{finding}"
    );
    // Mapped to the claim it lists: fine.
    let resource = resource_of(
        &idp,
        &format!(
            "{TRUSTED}\n[partners.user_risk_claim]\nclaim = \"risk_level\"\nformat = \"level\"\n{ADMIN_APP}"
        ),
    )
    .await;
    let partners = reload_partners(&resource).await;
    assert!(kinds(&partners[0]).is_empty(), "{partners:?}");
    // Not trusted for risk: the claim is not read, so its name is not judged.
    let resource = resource_of(&idp, ADMIN_APP).await;
    let partners = reload_partners(&resource).await;
    assert!(kinds(&partners[0]).is_empty(), "{partners:?}");

    // A home that does not answer.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = issuer_of(&closed);
    drop(closed);
    let (d, db) = tenant_dir("fabrikam");
    let resource = start_at(
        "fabrikam",
        &d,
        &db,
        &format!("{}{ADMIN_APP}", partner_toml(&issuer, "timeout_ms = 500")),
    )
    .await;
    let partners = reload_partners(&resource).await;
    assert_eq!(kinds(&partners[0]), ["unreachable"]);
}

#[tokio::test]
async fn the_sign_in_log_says_whether_the_home_sent_the_risk_claim() {
    let trusted = "trust_user_risk = true";
    let (resource, idp) = resource_with_fake(trusted).await;
    app_redirect(fake_callback(&resource, &idp, Forge::Good, None).await);
    let row = last_success(&resource).await;
    assert_eq!(row.details["homeRiskClaim"], "present", "{:#}", row.details);
    assert_eq!(row.details["homeRiskClaimName"], "user_risk");

    // The token carries risk under another name: not required, so the guest gets in with user
    // risk none, and the row says the claim was absent.
    app_redirect(fake_callback(&resource, &idp, Forge::RiskAsLevel, None).await);
    let row = last_success(&resource).await;
    assert_eq!(row.details["homeRiskClaim"], "absent", "{:#}", row.details);
    assert_eq!(row.details["userRisk"], Value::Null);

    // The claim is there in another shape than mapped.
    let resource = resource_of(
        &idp,
        &format!(
            "{trusted}\n[partners.user_risk_claim]\nclaim = \"user_risk\"\nformat = \"level\""
        ),
    )
    .await;
    app_redirect(fake_callback(&resource, &idp, Forge::Good, None).await);
    let row = last_success(&resource).await;
    assert_eq!(
        row.details["homeRiskClaim"], "unreadable",
        "{:#}",
        row.details
    );
    assert!(
        row.details["homeRiskClaimProblem"]
            .as_str()
            .unwrap()
            .contains("not a string"),
        "{:#}",
        row.details
    );

    // Required and absent: refused, and the refusal's row says why too.
    let (resource, idp) = resource_with_fake(TRUSTED).await;
    refusal(fake_callback(&resource, &idp, Forge::RiskAsLevel, None).await);
    let row = sign_in_rows(&resource).await.into_iter().next().unwrap();
    assert_eq!(row.error_code, 50008);
    assert_eq!(row.details["homeRiskClaim"], "absent", "{:#}", row.details);
}
