//! Federation end to end: a home tenant and a resource tenant (both real, on ephemeral ports),
//! guests signing in to the resource with their home credentials, and every refusal failing
//! closed. A small fake home IdP (plain HTTP on loopback) produces the broken ID tokens a real
//! tenantd never would.

use crate::flows::decode_payload;
use crate::support::*;
use reqwest::Client;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

pub const BOB: &str = "bob@contoso.test";
pub const BOB_PW: &str = "bob-test-password";
pub const CAROL: &str = "carol@fabrikam.test";
pub const CAROL_PW: &str = "carol-test-password";
const FED_SECRET: &str = "fabrikam-federation-secret";

/// The partner entry for `contoso` at the resource; `lines` adds or sets trust settings.
pub fn partner_toml(home_issuer: &str, lines: &str) -> String {
    format!(
        r#"
[[partners]]
id = "contoso"
display_name = "Contoso"
issuer = "{home_issuer}"
client_id = "fabrikam"
client_secret = "{FED_SECRET}"
domains = ["contoso.test"]
ca_file = "{ca}"
{lines}
"#,
        ca = fixtures().ca.display()
    )
}

/// The resource's registration at the home.
pub fn home_app_toml(resource_issuer: &str) -> String {
    format!(
        r#"
[[apps]]
client_id = "fabrikam"
name = "Fabrikam"
client_secret = "{FED_SECRET}"
redirect_uris = ["{resource_issuer}/federation/callback"]
grant_types = ["authorization_code"]
first_party = true
partner_tenant = true
"#
    )
}

pub struct Pair {
    pub home: TestTenant,
    pub resource: TestTenant,
}

/// The two issuers a federated sign-in goes between.
pub struct Ends {
    pub home: String,
    pub resource: String,
}

impl Pair {
    pub fn ends(&self) -> Ends {
        Ends {
            home: self.home.issuer.clone(),
            resource: self.resource.issuer.clone(),
        }
    }
}

/// contoso (alice, bob) and fabrikam (carol; alice and bob invited from contoso).
pub async fn pair(partner_lines: &str) -> Pair {
    pair_with("", partner_lines).await
}

/// [`pair`] with extra config for each tenant (the home's policies; at the resource, lines
/// added to the partner entry, and anything after them).
pub async fn pair_with(home_extra: &str, resource_extra: &str) -> Pair {
    let home_l = TcpListener::bind("127.0.0.1:0").unwrap();
    let res_l = TcpListener::bind("127.0.0.1:0").unwrap();
    let (home_issuer, res_issuer) = (issuer_of(&home_l), issuer_of(&res_l));
    let (hd, hdb) = tenant_dir("contoso");
    let home = start_on(
        "contoso",
        home_l,
        &hd,
        &hdb,
        &format!("{}{home_extra}", home_app_toml(&res_issuer)),
    )
    .await;
    add_user(&home, ALICE, ALICE_PW, false).await;
    add_user(&home, BOB, BOB_PW, false).await;
    let (rd, rdb) = tenant_dir("fabrikam");
    let resource = start_on(
        "fabrikam",
        res_l,
        &rd,
        &rdb,
        &partner_toml(&home_issuer, resource_extra),
    )
    .await;
    add_user(&resource, CAROL, CAROL_PW, false).await;
    for email in [ALICE, BOB] {
        invite(&resource, email, "contoso").await;
    }
    Pair { home, resource }
}

pub const TRUSTED: &str = "trust_user_risk = true\nrequire_user_risk_claim = true";

pub async fn invite(t: &TestTenant, email: &str, partner: &str) -> store::User {
    let s = t.state();
    server::guests::invite(&s.store, &s.config, email, partner, None, None, s.now())
        .await
        .unwrap()
        .0
}

/// What the browser ends on after a federated sign-in attempt.
pub enum Ended {
    /// Redirected to the app (the Location).
    App(String),
    /// A refusal page at the resource: status and text.
    Page(u16, String),
}

/// Drive `email` from the resource's authorize URL through home realm discovery, the home's
/// password page (unless the home session already exists) and back to the resource.
pub async fn federated_sign_in(
    p: &Pair,
    b: &Client,
    authorize_url: &str,
    email: &str,
    password: &str,
) -> Ended {
    sign_in_between(&p.ends(), b, authorize_url, email, password).await
}

/// [`federated_sign_in`] between any two tenants.
pub async fn sign_in_between(
    p: &Ends,
    b: &Client,
    authorize_url: &str,
    email: &str,
    password: &str,
) -> Ended {
    let r = submit_email(b, &p.resource, authorize_url, email).await;
    back_from_home(p, b, r, password).await
}

/// Open `authorize_url` at the resource and submit `email` on its email page; returns the
/// answer (home realm discovery's redirect, or a refusal page).
pub async fn submit_email(
    b: &Client,
    resource: &str,
    authorize_url: &str,
    email: &str,
) -> reqwest::Response {
    let page = b.get(authorize_url).send().await.unwrap();
    assert_eq!(page.status(), 200, "authorize -> the email page");
    let mut form = hidden_inputs(&page.text().await.unwrap());
    form.push(("email".into(), email.into()));
    b.post(format!("{resource}/login"))
        .form(&form)
        .send()
        .await
        .unwrap()
}

/// From the resource's redirect to the home: sign in there if asked, then the callback.
pub async fn follow_to_home_and_back(
    p: &Pair,
    b: &Client,
    r: reqwest::Response,
    password: &str,
) -> Ended {
    back_from_home(&p.ends(), b, r, password).await
}

async fn back_from_home(p: &Ends, b: &Client, r: reqwest::Response, password: &str) -> Ended {
    if r.status() != 303 {
        let status = r.status().as_u16();
        return Ended::Page(status, r.text().await.unwrap());
    }
    let callback = through_home(p, b, r, password).await;
    let r = b.get(&callback).send().await.unwrap();
    match r.status().as_u16() {
        303 => Ended::App(location(&r)),
        s => Ended::Page(s, r.text().await.unwrap()),
    }
}

/// From the resource's redirect `r` to the home, through the home's password page: the URL of
/// the resource's callback the home sends the browser back to (not followed).
pub async fn through_home(p: &Ends, b: &Client, r: reqwest::Response, password: &str) -> String {
    let to_home = location(&r);
    assert!(
        to_home.starts_with(&p.home),
        "HRD goes to the home: {to_home}"
    );
    let q = query(&to_home);
    assert_eq!(
        q.get("code_challenge_method").map(String::as_str),
        Some("S256")
    );
    assert!(q.contains_key("nonce") && q.contains_key("state") && q.contains_key("login_hint"));
    let page = b.get(&to_home).send().await.unwrap();
    // A session at the home answers at once; otherwise login_hint skips the home's email
    // page: the password form, shown by its authorization endpoint.
    let next = match page.status().as_u16() {
        303 => location(&page),
        200 => {
            let mut form = hidden_inputs(&page.text().await.unwrap());
            form.push(("password".into(), password.into()));
            let r = b
                .post(format!("{}/login/password", p.home))
                .form(&form)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 303, "home password accepted");
            location(&r)
        }
        s => panic!("home authorize answered {s}"),
    };
    assert!(
        next.starts_with(&format!("{}/federation/callback", p.resource)),
        "home -> resource callback: {next}"
    );
    next
}

pub fn app_redirect(e: Ended) -> String {
    match e {
        Ended::App(l) => l,
        Ended::Page(s, t) => panic!("expected a redirect to the app, got {s}: {t}"),
    }
}

/// A refusal page: its text, and the OAuth error the app would receive from its link.
pub fn refusal(e: Ended) -> (String, std::collections::HashMap<String, String>) {
    match e {
        Ended::App(l) => panic!("expected a refusal page, got a redirect to {l}"),
        Ended::Page(status, text) => {
            // 503 for a refusal for now (`temporarily_unavailable`), 403 for a decision.
            assert!(status == 403 || status == 503, "{status}: {text}");
            let i = text
                .find("id=\"continue\" class=\"button\" href=\"")
                .expect(&text);
            let rest = &text[i + "id=\"continue\" class=\"button\" href=\"".len()..];
            let href = rest[..rest.find('"').unwrap()]
                .replace("&amp;", "&")
                .replace("&#38;", "&");
            (text, query(&href))
        }
    }
}

pub async fn sign_in_rows(t: &TestTenant) -> Vec<store::SignInLog> {
    t.state()
        .store
        .list_sign_ins(&store::SignInFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
}

pub async fn exchange(t: &TestTenant, redirect: &str) -> serde_json::Value {
    let code = code_from(t, redirect, "st-1");
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

#[tokio::test]
async fn guest_signs_in_with_home_credentials_and_both_logs_join() {
    let p = pair(TRUSTED).await;
    let b = browser();
    // The email page's form may end at the home (its answer is a 303 there), and its policy
    // says so: Chrome and Safari hold the redirect to form-action.
    let page = b.get(rp_authorize(&p.resource, "")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    let form_action = csp
        .split(';')
        .find(|d| d.trim().starts_with("form-action"))
        .unwrap();
    assert!(
        form_action.split_whitespace().any(|s| s == p.home.issuer),
        "{csp}"
    );
    let redirect = app_redirect(
        federated_sign_in(&p, &b, &rp_authorize(&p.resource, ""), ALICE, ALICE_PW).await,
    );
    let tokens = exchange(&p.resource, &redirect).await;
    let id = decode_payload(tokens["id_token"].as_str().unwrap());
    let guest = p
        .resource
        .state()
        .store
        .user_by_email(ALICE)
        .await
        .unwrap()
        .unwrap();
    let home_alice = p
        .home
        .state()
        .store
        .user_by_email(ALICE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(id["iss"], p.resource.issuer.as_str());
    assert_eq!(
        id["sub"],
        guest.id.as_str(),
        "the resource's own id for the guest"
    );
    assert_ne!(id["sub"], home_alice.id.as_str());
    assert_eq!(id["idp"], p.home.issuer.as_str());
    assert_eq!(id["user_type"], "guest");
    assert_eq!(id["home_tenant"], "contoso");
    assert_eq!(id["amr"], serde_json::json!(["pwd"]));
    assert_eq!(id["email"], ALICE);
    assert_eq!(
        id["name"], "Alice Smith",
        "profile refreshed from the home token"
    );
    assert!(
        id.get("user_risk").is_none(),
        "resource apps are not partner tenants"
    );
    assert_eq!(guest.home_subject.as_deref(), Some(home_alice.id.as_str()));
    assert_eq!(
        guest.invitation_state,
        Some(store::InvitationState::Accepted)
    );

    // One sign-in, one correlation id, logged on both sides.
    let res_rows = sign_in_rows(&p.resource).await;
    let home_rows = sign_in_rows(&p.home).await;
    let r = res_rows
        .iter()
        .find(|r| r.error_code == 0)
        .expect("resource row");
    assert_eq!(r.user_type, "guest");
    assert_eq!(r.cross_tenant_access_type, "b2bCollaboration");
    assert_eq!(r.home_tenant_id.as_deref(), Some("contoso"));
    assert_eq!(r.resource_tenant_id.as_deref(), Some("fabrikam"));
    assert_eq!(r.details["userRisk"]["level"], "none");
    let h = home_rows
        .iter()
        .find(|h| h.correlation_id == r.correlation_id)
        .expect("home row with the same correlation id");
    assert_eq!(h.app_id.as_deref(), Some("fabrikam"));
    assert_eq!(h.cross_tenant_access_type, "b2bCollaboration");
    assert_eq!(h.resource_tenant_id.as_deref(), Some("fabrikam"));

    // A second sign-in in a new browser matches on (partner, home sub), not on email.
    let b2 = browser();
    app_redirect(federated_sign_in(&p, &b2, &rp_authorize(&p.resource, ""), ALICE, ALICE_PW).await);
}

#[tokio::test]
async fn home_releases_user_risk_only_to_partner_apps_and_the_resource_reads_it() {
    let p = pair(TRUSTED).await;
    let s = p.home.state();
    let bob = s.store.user_by_email(BOB).await.unwrap().unwrap();
    // Bob's risk comes from a real detection at his home.
    let leaked = server::user_risk::new_detection(
        risk::RiskEventType::LeakedCredentials,
        risk::RiskLevel::High,
        risk::DetectionTimingType::Offline,
        None,
        s.now(),
        "bob's password is in a leaked-credentials list".into(),
    );
    server::user_risk::raise(s, &bob.id, leaked).await.unwrap();
    // An ordinary app at the home never sees the claim.
    let hb = browser();
    let redirect = sign_in(&p.home, &hb, &rp_authorize(&p.home, ""), BOB, BOB_PW).await;
    let tokens = exchange(&p.home, &redirect).await;
    let id = decode_payload(tokens["id_token"].as_str().unwrap());
    assert!(id.get("user_risk").is_none(), "{id}");
    let ui: serde_json::Value = backchannel()
        .get(p.home.url("/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(ui.get("user_risk").is_none(), "{ui}");
    // The resource (a partner-tenant app at the home) gets it and records it.
    let b = browser();
    let redirect =
        app_redirect(federated_sign_in(&p, &b, &rp_authorize(&p.resource, ""), BOB, BOB_PW).await);
    let rows = sign_in_rows(&p.resource).await;
    let row = rows
        .iter()
        .find(|r| r.user_principal_name.as_deref() == Some(BOB))
        .unwrap();
    assert_eq!(row.details["userRisk"]["level"], "high");
    assert_eq!(row.details["userRisk"]["state"], "atRisk");
    // Kept on the guest's session too (what the risk policies will evaluate).
    let id = decode_payload(
        exchange(&p.resource, &redirect).await["id_token"]
            .as_str()
            .unwrap(),
    );
    let session = p
        .resource
        .state()
        .store
        .session_by_id(id["sid"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    let facts: serde_json::Value =
        serde_json::from_str(session.federation_json.as_deref().unwrap()).unwrap();
    assert_eq!(facts["user_risk"]["level"], "high");
    assert_eq!(facts["partner"], "contoso");
}

#[tokio::test]
async fn member_of_the_resource_signs_in_with_a_password_there() {
    let p = pair(TRUSTED).await;
    let b = browser();
    let redirect = sign_in(
        &p.resource,
        &b,
        &rp_authorize(&p.resource, ""),
        CAROL,
        CAROL_PW,
    )
    .await;
    let tokens = exchange(&p.resource, &redirect).await;
    let id = decode_payload(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["user_type"], "member");
    assert!(id.get("idp").is_none() && id.get("home_tenant").is_none());
}

#[tokio::test]
async fn refusals_for_guests_each_have_a_page_an_oauth_error_and_a_log_row() {
    let p = pair(TRUSTED).await;
    // Not invited.
    add_user(&p.home, "dave@contoso.test", "dave-test-password", false).await;
    let b = browser();
    let (text, err) = refusal(
        federated_sign_in(
            &p,
            &b,
            &rp_authorize(&p.resource, ""),
            "dave@contoso.test",
            "dave-test-password",
        )
        .await,
    );
    assert!(text.contains("has not been invited"), "{text}");
    assert!(text.contains("50020"));
    assert_eq!(err.get("error").map(String::as_str), Some("access_denied"));
    assert_eq!(err.get("state").map(String::as_str), Some("st-1"));
    assert_eq!(
        err.get("iss").map(String::as_str),
        Some(p.resource.issuer.as_str())
    );
    assert!(
        p.resource
            .state()
            .store
            .user_by_email("dave@contoso.test")
            .await
            .unwrap()
            .is_none()
    );

    // Guest disabled.
    let alice = p
        .resource
        .state()
        .store
        .user_by_email(ALICE)
        .await
        .unwrap()
        .unwrap();
    p.resource
        .state()
        .store
        .set_user_status(
            &alice.id,
            store::UserStatus::Disabled,
            p.resource.state().now(),
        )
        .await
        .unwrap();
    let (text, err) = refusal(
        federated_sign_in(
            &p,
            &browser(),
            &rp_authorize(&p.resource, ""),
            ALICE,
            ALICE_PW,
        )
        .await,
    );
    assert!(text.contains("disabled"), "{text}");
    assert_eq!(err.get("error").map(String::as_str), Some("access_denied"));
    let after = p
        .resource
        .state()
        .store
        .user_by_email(ALICE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        after.home_subject, None,
        "nothing written for a refused guest"
    );

    // Invitation for another partner.
    let other = "erin@contoso.test";
    add_user(&p.home, other, "erin-test-password", false).await;
    // A second partner whose domain is elsewhere; erin's invitation names it.
    let p2 = pair(&format!(
        "{TRUSTED}\n[[partners]]\nid = \"northwind\"\nissuer = \"https://northwind.test\"\nclient_id = \"x\"\nclient_secret = \"y\"\ndomains = [\"northwind.test\"]"
    ))
    .await;
    add_user(&p2.home, other, "erin-test-password", false).await;
    invite(&p2.resource, other, "northwind").await;
    let (text, _) = refusal(
        federated_sign_in(
            &p2,
            &browser(),
            &rp_authorize(&p2.resource, ""),
            other,
            "erin-test-password",
        )
        .await,
    );
    assert!(text.contains("another organization"), "{text}");
    let erin = p2
        .resource
        .state()
        .store
        .user_by_email(other)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(erin.home_subject, None);

    let codes: Vec<i64> = sign_in_rows(&p.resource)
        .await
        .iter()
        .map(|r| r.error_code)
        .collect();
    assert!(
        codes.contains(&50020) && codes.contains(&50057),
        "{codes:?}"
    );
    let reasons: Vec<String> = sign_in_rows(&p2.resource)
        .await
        .iter()
        .filter_map(|r| r.failure_reason.clone())
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("another partner")),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn partner_with_inbound_disabled_is_refused_before_leaving_the_resource() {
    let p = pair("inbound_enabled = false").await;
    let b = browser();
    let (text, err) =
        refusal(federated_sign_in(&p, &b, &rp_authorize(&p.resource, ""), ALICE, ALICE_PW).await);
    assert!(
        text.contains("500213") && text.contains("does not accept sign-ins"),
        "{text}"
    );
    assert_eq!(err.get("error").map(String::as_str), Some("access_denied"));
    assert!(
        sign_in_rows(&p.resource)
            .await
            .iter()
            .any(|r| r.error_code == 500213)
    );
    assert!(
        sign_in_rows(&p.home).await.is_empty(),
        "the home was never asked"
    );
}

#[tokio::test]
async fn replayed_and_foreign_browser_callbacks_are_refused() {
    let p = pair(TRUSTED).await;
    let b = browser();
    // Walk to the callback URL but keep it.
    let r = submit_email(
        &b,
        &p.resource.issuer,
        &rp_authorize(&p.resource, ""),
        ALICE,
    )
    .await;
    let page = b.get(location(&r)).send().await.unwrap();
    let mut form = hidden_inputs(&page.text().await.unwrap());
    form.push(("password".into(), ALICE_PW.into()));
    let r = b
        .post(p.home.url("/login/password"))
        .form(&form)
        .send()
        .await
        .unwrap();
    let callback = location(&r);

    // Another browser presenting it: state belongs to someone else.
    let (text, err) = refusal(match browser().get(&callback).send().await.unwrap() {
        r if r.status() == 303 => Ended::App(location(&r)),
        r => Ended::Page(r.status().as_u16(), r.text().await.unwrap()),
    });
    assert!(text.contains("did not come back to the browser"), "{text}");
    assert_eq!(err.get("error").map(String::as_str), Some("access_denied"));
    // That attempt did not use up the real browser's sign-in: it completes, once.
    let r = b.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 303, "the right browser goes on");
    let r = b.get(&callback).send().await.unwrap();
    let (text, _) = refusal(Ended::Page(r.status().as_u16(), r.text().await.unwrap()));
    assert!(text.contains("already been used"), "{text}");
    // An unknown state: an expired-request page, no redirect anywhere.
    let r = b
        .get(p.resource.url("/federation/callback?code=x&state=nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let codes: Vec<i64> = sign_in_rows(&p.resource)
        .await
        .iter()
        .map(|r| r.error_code)
        .collect();
    assert_eq!(
        codes.iter().filter(|c| **c == 9002313).count(),
        3,
        "{codes:?}"
    );
    assert!(
        p.resource
            .state()
            .store
            .user_by_email(ALICE)
            .await
            .unwrap()
            .unwrap()
            .home_subject
            .is_some(),
        "redeemed by the right browser only"
    );
}

#[tokio::test]
async fn home_signing_key_rotation_is_picked_up_from_an_unknown_kid() {
    let p = pair(TRUSTED).await;
    let b = browser();
    app_redirect(federated_sign_in(&p, &b, &rp_authorize(&p.resource, ""), ALICE, ALICE_PW).await);
    let hs = p.home.state();
    server::keys::rotate(&hs.store, protocol::jwt::SigningAlg::ES256, hs.now())
        .await
        .unwrap();
    // Published at once, signing a minute later (both tenants' clocks move on together).
    p.home.clock.advance(server::keys::PROPAGATION_SECS + 1);
    p.resource.clock.advance(server::keys::PROPAGATION_SECS + 1);
    server::server::reload_keys(hs).await;
    // The home session still exists: the home answers at once with a token under the new key.
    let authorize = rp_authorize(&p.resource, "&prompt=login");
    let r = submit_email(&b, &p.resource.issuer, &authorize, ALICE).await;
    app_redirect(follow_to_home_and_back(&p, &b, r, ALICE_PW).await);
}

#[tokio::test]
async fn home_unreachable_fails_closed_with_temporarily_unavailable() {
    // A "home" that accepts connections and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = format!("https://127.0.0.1:{}", silent.local_addr().unwrap().port());
    let keep = std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in silent.incoming().take(4) {
            held.push(c);
        }
        std::thread::sleep(std::time::Duration::from_secs(5));
    });
    let (d, db) = tenant_dir("fabrikam");
    let resource = start_at(
        "fabrikam",
        &d,
        &db,
        &partner_toml(&issuer, "timeout_ms = 300").replace("contoso.test", "slow.test"),
    )
    .await;
    let authorize = rp_authorize(&resource, "");
    let r = submit_email(&browser(), &resource.issuer, &authorize, "x@slow.test").await;
    let (text, err) = refusal(Ended::Page(r.status().as_u16(), r.text().await.unwrap()));
    assert!(text.contains("not responding"), "{text}");
    assert_eq!(
        err.get("error").map(String::as_str),
        Some("temporarily_unavailable")
    );
    drop(keep);
}

// ---- a fake home IdP for tokens a real tenantd never sends ----

#[derive(Clone, Copy, PartialEq)]
pub enum Forge {
    Good,
    BadSignature,
    WrongAudience,
    WrongIssuer,
    Expired,
    WrongNonce,
    RiskAsLevel,
    /// Without `amr` (which the fake always sends) and with a `groups` claim it never sent.
    OddClaims,
    /// `email_verified: false`: the home does not vouch for the address.
    UnverifiedEmail,
}

pub struct FakeIdp {
    issuer: String,
    forge: Mutex<Forge>,
    pub nonce: Mutex<String>,
    key: protocol::jwt::KeySet,
    other: protocol::jwt::KeySet,
    /// The takeover: sign with `other` and publish only `other` in the JWKS.
    swapped: Mutex<bool>,
}

async fn fake_idp() -> Arc<FakeIdp> {
    fake_idp_with(serde_json::json!({})).await
}

/// A fake home whose discovery document advertises `password_reset_uri` (`{issuer}` in it is
/// replaced by the fake's issuer), as tenantd does; third-party homes usually advertise none.
async fn fake_idp_advertising(password_reset_uri: Option<&str>) -> Arc<FakeIdp> {
    match password_reset_uri {
        Some(u) => fake_idp_with(serde_json::json!({ "password_reset_uri": u })).await,
        None => fake_idp().await,
    }
}

/// A fake home whose discovery document also has the members of `discovery_extra` (`{issuer}`
/// in a string value is replaced by the fake's issuer).
pub async fn fake_idp_with(discovery_extra: serde_json::Value) -> Arc<FakeIdp> {
    use axum::routing::{get, post};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let key = |_: u8| {
        let pem = server::keys::generate_pem(protocol::jwt::SigningAlg::ES256).unwrap();
        protocol::jwt::SigningKey::from_pkcs8_pem(protocol::jwt::SigningAlg::ES256, &pem, 0, None)
            .unwrap()
    };
    let idp = Arc::new(FakeIdp {
        issuer: issuer.clone(),
        forge: Mutex::new(Forge::Good),
        nonce: Mutex::new(String::new()),
        key: protocol::jwt::KeySet::new(vec![key(0)], 0),
        other: protocol::jwt::KeySet::new(vec![key(1)], 0),
        swapped: Mutex::new(false),
    });
    let discovery = serde_json::json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
    });
    let mut discovery = discovery;
    if let (Some(d), Some(extra)) = (discovery.as_object_mut(), discovery_extra.as_object()) {
        for (k, v) in extra {
            let v = match v.as_str() {
                Some(text) => text.replace("{issuer}", &issuer).into(),
                None => v.clone(),
            };
            d.insert(k.clone(), v);
        }
    }
    let i2 = idp.clone();
    let i3 = idp.clone();
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(move || async move { axum::Json(discovery) }),
        )
        .route(
            "/jwks",
            get(move || {
                let idp = i3.clone();
                async move { axum::Json(serde_json::to_value(idp.signing().jwks(0)).unwrap()) }
            }),
        )
        .route(
            "/token",
            post(move || {
                let idp = i2.clone();
                async move { axum::Json(idp.token()) }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    idp
}

impl FakeIdp {
    /// The key set it signs with and publishes.
    fn signing(&self) -> &protocol::jwt::KeySet {
        if *self.swapped.lock().unwrap() {
            &self.other
        } else {
            &self.key
        }
    }

    fn token(&self) -> serde_json::Value {
        let forge = *self.forge.lock().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let mut claims = serde_json::json!({
            "iss": if forge == Forge::WrongIssuer { "http://evil.test" } else { self.issuer.as_str() },
            "sub": "fake-sub-1",
            "aud": if forge == Forge::WrongAudience { "someone-else" } else { "fabrikam" },
            "iat": if forge == Forge::Expired { now - 3600 } else { now },
            "exp": if forge == Forge::Expired { now - 1800 } else { now + 300 },
            "nonce": if forge == Forge::WrongNonce { "other".to_owned() } else { self.nonce.lock().unwrap().clone() },
            "email": ALICE,
            "email_verified": forge != Forge::UnverifiedEmail,
            "name": "Alice from elsewhere",
            "amr": ["pwd", "mfa"],
            "user_risk": {"level": "medium", "state": "atRisk", "detail": "none", "updated_at": now},
        });
        if forge == Forge::RiskAsLevel {
            let m = claims.as_object_mut().unwrap();
            m.remove("user_risk");
            m.insert("risk_level".into(), "HIGH".into());
        }
        if forge == Forge::OddClaims {
            let m = claims.as_object_mut().unwrap();
            m.remove("amr");
            m.insert("groups".into(), serde_json::json!(["admins"]));
        }
        let keys = if forge == Forge::BadSignature {
            // Signed by another key under the published key's id.
            let mut t = self
                .other
                .sign(protocol::jwt::SigningAlg::ES256, "JWT", &claims)
                .unwrap();
            let good = self
                .key
                .sign(protocol::jwt::SigningAlg::ES256, "JWT", &claims)
                .unwrap();
            let header = good.split('.').next().unwrap().to_owned();
            let rest = t.split_once('.').unwrap().1.to_owned();
            t = format!("{header}.{rest}");
            return serde_json::json!({"access_token": "at", "token_type": "Bearer", "id_token": t});
        } else {
            self.signing()
        };
        let id = keys
            .sign(protocol::jwt::SigningAlg::ES256, "JWT", &claims)
            .unwrap();
        serde_json::json!({"access_token": "at", "token_type": "Bearer", "expires_in": 300, "id_token": id})
    }
}

/// A resource whose partner `contoso` is the fake IdP; returns it and the fake.
pub async fn resource_with_fake(lines: &str) -> (TestTenant, Arc<FakeIdp>) {
    let idp = fake_idp().await;
    (resource_of(&idp, lines).await, idp)
}

/// [`resource_with_fake`] with a fake home of the caller's.
async fn resource_with_fake_home(idp: Arc<FakeIdp>, lines: &str) -> (TestTenant, Arc<FakeIdp>) {
    (resource_of(&idp, lines).await, idp)
}

/// A resource whose partner `contoso` is `idp`.
pub async fn resource_of(idp: &FakeIdp, lines: &str) -> TestTenant {
    let (d, db) = tenant_dir("fabrikam");
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let resource = start_on("fabrikam", l, &d, &db, &partner_toml(&idp.issuer, lines)).await;
    invite(&resource, "alice@contoso.test", "contoso").await;
    resource
}

/// Start a federated sign-in at `resource` and return the browser, the state and the nonce the
/// resource sent to the (fake) home.
async fn to_fake_home(resource: &TestTenant) -> (Client, String, String) {
    let b = browser();
    let r = submit_email(&b, &resource.issuer, &rp_authorize(resource, ""), ALICE).await;
    assert_eq!(r.status(), 303);
    let q = query(&location(&r));
    (b, q["state"].clone(), q["nonce"].clone())
}

pub async fn fake_callback(
    resource: &TestTenant,
    idp: &FakeIdp,
    forge: Forge,
    iss: Option<&str>,
) -> Ended {
    let (b, state, nonce) = to_fake_home(resource).await;
    *idp.forge.lock().unwrap() = forge;
    *idp.nonce.lock().unwrap() = nonce;
    let mut url = resource.url(&format!(
        "/federation/callback?code=c&state={}",
        urlenc(&state)
    ));
    if let Some(iss) = iss {
        url.push_str(&format!("&iss={}", urlenc(iss)));
    }
    let r = b.get(url).send().await.unwrap();
    match r.status().as_u16() {
        303 => Ended::App(location(&r)),
        s => Ended::Page(s, r.text().await.unwrap()),
    }
}

#[tokio::test]
async fn forged_or_broken_home_tokens_fail_closed() {
    let (resource, idp) = resource_with_fake(TRUSTED).await;
    for (forge, code, words) in [
        (Forge::BadSignature, 50008, "signature"),
        (Forge::WrongAudience, 50008, "another audience"),
        (Forge::WrongIssuer, 50107, "unknown issuer"),
        (Forge::Expired, 50008, "expired"),
        (Forge::WrongNonce, 50008, "nonce"),
    ] {
        let (text, err) = refusal(fake_callback(&resource, &idp, forge, None).await);
        assert!(
            text.contains(&code.to_string()) && text.contains(words),
            "{words}: {text}"
        );
        assert_eq!(err.get("error").map(String::as_str), Some("access_denied"));
    }
    // RFC 9207: a response naming another issuer is refused before the code is used.
    let (text, _) =
        refusal(fake_callback(&resource, &idp, Forge::Good, Some("https://evil.test")).await);
    assert!(text.contains("RFC 9207"), "{text}");
    // The home's own error comes back as access_denied with its code named.
    let (b, state, _) = to_fake_home(&resource).await;
    let r = b
        .get(resource.url(&format!(
            "/federation/callback?error=access_denied&error_description=no&state={}",
            urlenc(&state)
        )))
        .send()
        .await
        .unwrap();
    let (text, err) = refusal(Ended::Page(r.status().as_u16(), r.text().await.unwrap()));
    assert!(
        text.contains("answered the sign-in with an error"),
        "{text}"
    );
    assert_eq!(err.get("error").map(String::as_str), Some("access_denied"));
    // Nothing but log rows was written: alice's invitation is still open.
    let alice = resource
        .state()
        .store
        .user_by_email(ALICE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(alice.home_subject, None);
    assert_eq!(
        sign_in_rows(&resource)
            .await
            .iter()
            .filter(|r| r.error_code != 0)
            .count(),
        7
    );
    // And a good token from the same partner works.
    app_redirect(fake_callback(&resource, &idp, Forge::Good, None).await);
}

#[tokio::test]
async fn a_claim_mapping_reads_risk_from_a_differently_named_claim() {
    let (resource, idp) = resource_with_fake(&format!(
        "{TRUSTED}\ntrust_mfa = true\n[partners.user_risk_claim]\nclaim = \"risk_level\"\nformat = \"level\""
    ))
    .await;
    app_redirect(fake_callback(&resource, &idp, Forge::RiskAsLevel, None).await);
    let row = sign_in_rows(&resource)
        .await
        .into_iter()
        .find(|r| r.error_code == 0)
        .unwrap();
    assert_eq!(row.details["userRisk"]["level"], "high");
    assert_eq!(row.details["userRisk"]["state"], "atRisk");
    // The default mapping finds no user_risk in that token and, required, refuses.
    let (resource, idp) = resource_with_fake(TRUSTED).await;
    let (text, _) = refusal(fake_callback(&resource, &idp, Forge::RiskAsLevel, None).await);
    assert!(
        text.contains("did not say whether your account is at risk"),
        "{text}"
    );
}

#[tokio::test]
async fn an_invitation_is_redeemed_only_with_an_email_the_home_verified() {
    let (resource, idp) = resource_with_fake(TRUSTED).await;
    let (text, err) = refusal(fake_callback(&resource, &idp, Forge::UnverifiedEmail, None).await);
    assert!(
        text.contains("90072") && text.contains("did not confirm"),
        "{text}"
    );
    assert_eq!(err.get("error").map(String::as_str), Some("access_denied"));
    let alice = resource
        .state()
        .store
        .user_by_email(ALICE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(alice.home_subject, None, "nothing redeemed");
    let row = sign_in_rows(&resource).await.into_iter().next().unwrap();
    assert_eq!(row.error_code, 90072);
    // The same home account with a verified address redeems it.
    app_redirect(fake_callback(&resource, &idp, Forge::Good, None).await);
    let alice = resource
        .state()
        .store
        .user_by_email(ALICE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(alice.home_subject.as_deref(), Some("fake-sub-1"));

    // A partner configured to vouch for its addresses needs no email_verified.
    let (resource, idp) = resource_with_fake(&format!("{TRUSTED}\nemails_verified = true")).await;
    app_redirect(fake_callback(&resource, &idp, Forge::UnverifiedEmail, None).await);
}

/// The resource's log row of the last successful sign-in.
pub async fn last_success(resource: &TestTenant) -> store::SignInLog {
    sign_in_rows(resource)
        .await
        .into_iter()
        .find(|r| r.error_code == 0)
        .unwrap()
}

fn token_anomaly(row: &store::SignInLog) -> Option<String> {
    let types = row.details["riskEventTypes_v2"].as_array().unwrap();
    if !types.iter().any(|t| t == "tokenIssuerAnomaly") {
        return None;
    }
    let d = row.details["riskDetections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["riskEventType"] == "tokenIssuerAnomaly")
        .unwrap();
    Some(d["explanation"].as_str().unwrap().to_owned())
}

/// Three ordinary sign-ins through the fake home: the claim profile is learned and nothing is
/// raised.
async fn three_ordinary_sign_ins(resource: &TestTenant, idp: &FakeIdp) {
    for _ in 0..3 {
        app_redirect(fake_callback(resource, idp, Forge::Good, None).await);
        let row = last_success(resource).await;
        assert_eq!(token_anomaly(&row), None, "{:#}", row.details);
        assert_eq!(row.risk_level_during_sign_in.as_deref(), Some("none"));
    }
}

#[tokio::test]
async fn a_key_rotation_at_a_third_party_home_raises_nothing_even_after_a_restart() {
    let (resource, idp) = resource_with_fake(TRUSTED).await;
    three_ordinary_sign_ins(&resource, &idp).await;
    // The home replaces its key at once: a new kid, the old one gone from its JWKS. The resource
    // discovers again for the unknown kid; a key the partner publishes is the partner's.
    *idp.swapped.lock().unwrap() = true;
    for _ in 0..2 {
        app_redirect(fake_callback(&resource, &idp, Forge::Good, None).await);
        let row = last_success(&resource).await;
        assert_eq!(token_anomaly(&row), None, "{:#}", row.details);
        assert_eq!(row.risk_level_during_sign_in.as_deref(), Some("none"));
    }
    // The same after a restart of the resource, and after the home rotates back: nothing about
    // keys is remembered that could make the outcome depend on when the resource started.
    let dir = resource.dir.clone();
    resource.tenant.shutdown().await;
    let db = format!("sqlite://{}", dir.join("tenant.db").display());
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let resource = start_on(
        "fabrikam",
        l,
        &dir,
        &db,
        &partner_toml(&idp.issuer, TRUSTED),
    )
    .await;
    app_redirect(fake_callback(&resource, &idp, Forge::Good, None).await);
    *idp.swapped.lock().unwrap() = false;
    app_redirect(fake_callback(&resource, &idp, Forge::Good, None).await);
    let rows = sign_in_rows(&resource).await;
    assert!(rows.len() >= 7, "the log survived the restart");
    for row in rows.iter().take(2) {
        assert_eq!(row.error_code, 0);
        assert_eq!(token_anomaly(row), None, "{:#}", row.details);
        assert_eq!(row.risk_level_during_sign_in.as_deref(), Some("none"));
    }
}

#[tokio::test]
async fn a_partner_token_whose_claims_deviate_is_a_medium_token_issuer_anomaly() {
    let (resource, idp) = resource_with_fake(TRUSTED).await;
    three_ordinary_sign_ins(&resource, &idp).await;
    app_redirect(fake_callback(&resource, &idp, Forge::OddClaims, None).await);
    let row = last_success(&resource).await;
    assert_eq!(row.risk_level_during_sign_in.as_deref(), Some("medium"));
    let why = token_anomaly(&row).expect("tokenIssuerAnomaly");
    assert!(why.contains("missing amr"), "{why}");
    assert!(why.contains("unexpected groups"), "{why}");
    assert!(!why.contains("vanished"), "{why}");
    // The profile is the partner's, persisted: it is what the next token is judged against.
    let profile = resource
        .state()
        .store
        .partner_profile("contoso")
        .await
        .unwrap();
    assert_eq!(profile.tokens_seen, 4);
    assert!(!profile.always.iter().any(|c| c == "amr"));
}

#[tokio::test]
async fn odd_claims_are_not_judged_while_the_profile_is_learned() {
    let (resource, idp) = resource_with_fake(TRUSTED).await;
    app_redirect(fake_callback(&resource, &idp, Forge::Good, None).await);
    app_redirect(fake_callback(&resource, &idp, Forge::OddClaims, None).await);
    let row = last_success(&resource).await;
    assert_eq!(token_anomaly(&row), None, "{:#}", row.details);
}

// ---- the block page's password reset link, whatever the home ----

/// Partner lines for a resource whose only policy is the built-in user-risk policy at
/// `medium` (the fake home always says medium), so a trusted fake's guest is blocked (53011).
fn blocking_medium_user_risk(partner_lines: &str) -> String {
    let policies = fixtures()
        .dir
        .join(format!("policies-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::write(
        policies.join("identity-protection.toml"),
        "[userRiskPolicy]\nstate = \"enabled\"\nuserRiskLevels = [\"medium\", \"high\"]\n",
    )
    .unwrap();
    format!(
        "{TRUSTED}\n{partner_lines}\n[risk]\npolicies_dir = \"{}\"\n",
        policies.display()
    )
}

/// A blocked guest's page (quotes unescaped), checked for what every block page says.
fn blocked_page(e: Ended) -> String {
    let (page, oauth) = crate::risk::blocked(e);
    assert!(page.contains(policy::codes::BLOCKED_MESSAGE), "{page}");
    assert!(page.contains("53011"), "{page}");
    // The seed's last line, after the way to reset.
    assert!(
        page.contains(&format!(
            "<p id=\"still-blocked\">{}</p>",
            policy::codes::STILL_BLOCKED_AFTER_RESET
        )),
        "{page}"
    );
    assert_eq!(oauth["error"], "access_denied");
    page
}

const ASK_ADMIN: &str =
    "Contact your organization's administrator (at Contoso) to reset your password.";

#[tokio::test]
async fn a_tenantd_home_advertises_its_reset_page_and_the_block_page_links_to_it() {
    let policies = crate::risk::policies_copy("fabrikam");
    let p = pair(&crate::risk::resource_lines(&policies, TRUSTED)).await;
    // The home says where its page is; the resource's partner entry names none.
    let reset = format!("{}/password/reset", p.home.issuer);
    let discovery: serde_json::Value = browser()
        .get(p.home.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["password_reset_uri"], reset.as_str());
    assert_eq!(
        p.resource
            .state()
            .partner("contoso")
            .unwrap()
            .config
            .password_reset_url,
        None
    );
    crate::risk::bob_at_risk(&p).await;
    let page = blocked_page(
        federated_sign_in(&p, &browser(), &rp_authorize(&p.resource, ""), BOB, BOB_PW).await,
    );
    assert!(
        page.contains(&format!(
            "href=\"{reset}\">Reset your password at Contoso</a>"
        )),
        "the page the home advertised: {page}"
    );
    // A reset page is known: no "contact your administrator" instead of it (the seed's last
    // line, for after a reset, names the IT administrator).
    assert!(!page.contains(ASK_ADMIN), "{page}");
    assert!(!page.contains("organization's administrator"), "{page}");

    // Kept on the guest's session: a block at single sign-on (here, from a malicious IP)
    // links to the same page.
    let a = browser();
    let redirect = app_redirect(
        federated_sign_in(&p, &a, &rp_authorize(&p.resource, ""), ALICE, ALICE_PW).await,
    );
    exchange(&p.resource, &redirect).await;
    let r = a
        .get(rp_authorize(&p.resource, ""))
        .header("x-forwarded-for", "203.0.113.66")
        .send()
        .await
        .unwrap();
    let (page, oauth) =
        crate::risk::blocked(Ended::Page(r.status().as_u16(), r.text().await.unwrap()));
    assert!(page.contains(policy::codes::BLOCKED_MESSAGE), "{page}");
    assert_eq!(oauth["error"], "access_denied");
    assert!(
        page.contains(&format!(
            "href=\"{reset}\">Reset your password at Contoso</a>"
        )),
        "single sign-on: {page}"
    );
}

#[tokio::test]
async fn a_third_party_homes_configured_reset_page_wins_over_the_advertised_one() {
    let idp = fake_idp_advertising(Some("{issuer}/advertised/reset")).await;
    let configured = "https://sspr.contoso.example/reset?tenant=contoso&lang=en";
    let (resource, idp) = resource_with_fake_home(
        idp,
        &blocking_medium_user_risk(&format!("password_reset_url = \"{configured}\"")),
    )
    .await;
    let page = blocked_page(fake_callback(&resource, &idp, Forge::Good, None).await);
    // The template escapes the URL's `&` (a browser reads it back as `&`).
    let page = page.replace("&#38;", "&").replace("&amp;", "&");
    assert!(
        page.contains(&format!(
            "href=\"{configured}\">Reset your password at Contoso</a>"
        )),
        "the configured page: {page}"
    );
    assert!(!page.contains("/advertised/reset"), "{page}");
    assert!(!page.contains(ASK_ADMIN), "{page}");
}

#[tokio::test]
async fn a_third_party_home_with_no_reset_page_gets_the_administrator_sentence() {
    // Neither configured nor advertised: no link to a page that does not exist.
    let (resource, idp) = resource_with_fake(&blocking_medium_user_risk("")).await;
    let page = blocked_page(fake_callback(&resource, &idp, Forge::Good, None).await);
    assert!(page.contains(ASK_ADMIN), "{page}");
    assert!(!page.contains("/password/reset"), "no dead link: {page}");
    assert!(!page.contains("Reset your password at"), "{page}");

    // An advertised page a guest could not safely follow (plain http across a network) is
    // ignored the same way.
    let idp = fake_idp_advertising(Some("http://sspr.contoso.example/reset")).await;
    let (resource, idp) = resource_with_fake_home(idp, &blocking_medium_user_risk("")).await;
    let page = blocked_page(fake_callback(&resource, &idp, Forge::Good, None).await);
    assert!(page.contains(ASK_ADMIN), "{page}");
    assert!(!page.contains("sspr.contoso.example"), "{page}");
}

// ---- the binary: two `tenantd serve` processes, the CLI, the admin API ----

fn tenantd(args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tenantd-e2e"))
        .args(args)
        .env("TENANTD_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

pub struct Serving(pub std::process::Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub async fn wait_ready(issuer: &str) {
    for _ in 0..100 {
        if let Ok(r) = backchannel().get(format!("{issuer}/readyz")).send().await
            && r.status() == 200
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{issuer} never became ready");
}

#[tokio::test]
async fn two_tenantd_serve_processes_federate_a_guest() {
    let dir = fixtures()
        .dir
        .join(format!("procs-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    // Learn two free ports, then let the processes bind them.
    let (hl, rl) = (
        TcpListener::bind("127.0.0.1:0").unwrap(),
        TcpListener::bind("127.0.0.1:0").unwrap(),
    );
    let (home_issuer, res_issuer) = (issuer_of(&hl), issuer_of(&rl));
    let (home_addr, res_addr) = (hl.local_addr().unwrap(), rl.local_addr().unwrap());
    drop((hl, rl));
    let home_cfg = dir.join("home.toml");
    let res_cfg = dir.join("resource.toml");
    let db = |n: &str| format!("sqlite://{}", dir.join(n).display());
    std::fs::write(
        &home_cfg,
        config_text(
            "contoso",
            &home_issuer,
            &home_addr.to_string(),
            &db("home.db"),
            &home_app_toml(&res_issuer),
        ),
    )
    .unwrap();
    std::fs::write(
        &res_cfg,
        config_text(
            "fabrikam",
            &res_issuer,
            &res_addr.to_string(),
            &db("res.db"),
            &partner_toml(&home_issuer, TRUSTED),
        ),
    )
    .unwrap();
    let (home_cfg, res_cfg) = (home_cfg.to_str().unwrap(), res_cfg.to_str().unwrap());

    let out = tenantd(
        &[
            "user",
            "add",
            "--config",
            home_cfg,
            ALICE,
            "--password-stdin",
        ],
        Some(&format!("{ALICE_PW}\n")),
    );
    assert!(out.status.success(), "{out:?}");
    // An admin cannot hand out a password from the leaked-credentials corpus.
    let leaked = dir.join("leaked.txt");
    std::fs::write(&leaked, "erin@contoso.test:Known-leaked-passw0rd\n").unwrap();
    let out = tenantd(
        &[
            "risk",
            "import-leaked",
            "--config",
            home_cfg,
            leaked.to_str().unwrap(),
        ],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    let out = tenantd(
        &[
            "user",
            "add",
            "--config",
            home_cfg,
            "erin@contoso.test",
            "--password-stdin",
        ],
        Some("Known-leaked-passw0rd\n"),
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("leaked"),
        "{out:?}"
    );
    let out = tenantd(&["user", "list", "--config", home_cfg], None);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("erin@"),
        "{out:?}"
    );
    let out = tenantd(&["risk", "show", "--config", home_cfg, ALICE], None);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("level none, state none"),
        "{out:?}"
    );
    let out = tenantd(&["risk", "dismiss", "--config", home_cfg, ALICE], None);
    assert_eq!(
        out.status.code(),
        Some(6),
        "no risk to dismiss is refused by the risk rules: {out:?}"
    );
    let out = tenantd(
        &[
            "risk",
            "confirm-compromised",
            "--config",
            home_cfg,
            "nobody@contoso.test",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(4), "unknown user: {out:?}");
    let out = tenantd(
        &[
            "guest",
            "invite",
            "--config",
            res_cfg,
            ALICE,
            "--partner",
            "nope",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(4), "unknown partner: {out:?}");
    let out = tenantd(
        &[
            "guest",
            "invite",
            "--config",
            res_cfg,
            ALICE,
            "--partner",
            "contoso",
        ],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    let out = tenantd(
        &[
            "guest",
            "invite",
            "--config",
            res_cfg,
            ALICE,
            "--partner",
            "contoso",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(5), "invited twice: {out:?}");

    let spawn = |cfg: &str| {
        Serving(
            std::process::Command::new(env!("CARGO_BIN_EXE_tenantd-e2e"))
                .args(["serve", "--config", cfg])
                .env("TENANTD_LOG", "warn")
                .spawn()
                .unwrap(),
        )
    };
    let _home = spawn(home_cfg);
    let _res = spawn(res_cfg);
    wait_ready(&home_issuer).await;
    wait_ready(&res_issuer).await;

    let ends = Ends {
        home: home_issuer.clone(),
        resource: res_issuer.clone(),
    };
    let authorize = format!(
        "{res_issuer}/authorize?response_type=code&client_id={RP_ID}&redirect_uri={}&scope=openid%20profile%20email&state=st-1&nonce=n-1",
        urlenc(RP_REDIRECT)
    );
    let redirect =
        app_redirect(sign_in_between(&ends, &browser(), &authorize, ALICE, ALICE_PW).await);
    let q = query(&redirect);
    assert_eq!(q.get("iss"), Some(&res_issuer));
    let r = backchannel()
        .post(format!("{res_issuer}/token"))
        .basic_auth(RP_ID, Some(RP_SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &q["code"]),
            ("redirect_uri", RP_REDIRECT),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let tokens: serde_json::Value = r.json().await.unwrap();
    let id = decode_payload(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["user_type"], "guest");
    assert_eq!(id["idp"], home_issuer.as_str());
}

#[tokio::test]
async fn invitations_api_is_graph_shaped_and_admin_only() {
    let admin = "\n[[apps]]\nclient_id = \"admin-daemon\"\nclient_secret = \"admin-daemon-secret\"\ngrant_types = [\"client_credentials\"]\nscopes = [\"admin\"]\n";
    let (d, db) = tenant_dir("fabrikam");
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let t = start_on(
        "fabrikam",
        l,
        &d,
        &db,
        &format!("{}{admin}", partner_toml("https://127.0.0.1:1", TRUSTED)),
    )
    .await;
    let token = |id: &'static str, secret: &'static str, scope: &'static str| {
        let url = t.url("/token");
        async move {
            let r: serde_json::Value = backchannel()
                .post(url)
                .basic_auth(id, Some(secret))
                .form(&[("grant_type", "client_credentials"), ("scope", scope)])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            r["access_token"].as_str().unwrap().to_owned()
        }
    };
    let body = serde_json::json!({
        "invitedUserEmailAddress": "Frank@Contoso.test",
        "inviteRedirectUrl": "https://apps.fabrikam.test/",
        "sendInvitationMessage": false,
    });
    let post = |tok: Option<String>, body: serde_json::Value| {
        let mut req = backchannel().post(t.url("/v1.0/invitations")).json(&body);
        if let Some(tok) = tok {
            req = req.bearer_auth(tok);
        }
        req.send()
    };
    let r = post(None, body.clone()).await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let r = post(
        Some(token(CC_ID, CC_SECRET, "reports.read").await),
        body.clone(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 403, "a token without the admin scope");
    let admin_token = token("admin-daemon", "admin-daemon-secret", "admin").await;
    let r = post(Some(admin_token.clone()), body.clone()).await.unwrap();
    assert_eq!(r.status(), 201);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["status"], "PendingAcceptance");
    assert_eq!(v["invitedUserEmailAddress"], "frank@contoso.test");
    let guest = t
        .state()
        .store
        .user_by_email("frank@contoso.test")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v["invitedUser"]["id"], guest.id.as_str());
    assert_eq!(
        guest.partner_id.as_deref(),
        Some("contoso"),
        "partner found by domain"
    );
    assert_eq!(
        post(Some(admin_token.clone()), body.clone())
            .await
            .unwrap()
            .status(),
        409
    );
    for bad in [
        serde_json::json!({"invitedUserEmailAddress": "x@unknown.test", "inviteRedirectUrl": "https://a.test/"}),
        serde_json::json!({"invitedUserEmailAddress": "not-an-email", "inviteRedirectUrl": "https://a.test/", "partnerId": "contoso"}),
        serde_json::json!({"invitedUserEmailAddress": "g@contoso.test", "inviteRedirectUrl": "javascript:alert(1)"}),
        serde_json::json!({"invitedUserEmailAddress": "g@contoso.test"}),
        serde_json::json!({"invitedUserEmailAddress": "g@contoso.test", "inviteRedirectUrl": "https://a.test/", "surprise": 1}),
    ] {
        let r = post(Some(admin_token.clone()), bad.clone()).await.unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        let e: serde_json::Value = r.json().await.unwrap();
        assert_eq!(e["error"]["code"], "BadRequest", "{bad}");
    }
    assert!(
        t.state()
            .store
            .user_by_email("g@contoso.test")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn guest_signs_in_through_the_demo_app_an_openidconnect_rp() {
    let port = stable_port();
    let demo_url = format!("http://127.0.0.1:{port}");
    let home_l = TcpListener::bind("127.0.0.1:0").unwrap();
    let res_l = TcpListener::bind("127.0.0.1:0").unwrap();
    let (home_issuer, res_issuer) = (issuer_of(&home_l), issuer_of(&res_l));
    let (hd, hdb) = tenant_dir("contoso");
    let home = start_on("contoso", home_l, &hd, &hdb, &home_app_toml(&res_issuer)).await;
    add_user(&home, ALICE, ALICE_PW, false).await;
    let demo_app = format!(
        "\n[[apps]]\nclient_id = \"demo-app\"\nclient_secret = \"demo-app-secret\"\nredirect_uris = [\"{demo_url}/callback\"]\n"
    );
    let (rd, rdb) = tenant_dir("fabrikam");
    let resource = start_on(
        "fabrikam",
        res_l,
        &rd,
        &rdb,
        &format!("{}{demo_app}", partner_toml(&home_issuer, TRUSTED)),
    )
    .await;
    invite(&resource, ALICE, "contoso").await;
    let cfg = demo::DemoConfig {
        listen: format!("127.0.0.1:{port}").parse().unwrap(),
        issuer: url::Url::parse(&res_issuer).unwrap(),
        client_id: "demo-app".into(),
        client_secret: Some("demo-app-secret".into()),
        redirect_uri: url::Url::parse(&format!("{demo_url}/callback")).unwrap(),
        ca_file: Some(fixtures().ca.clone()),
        scopes: vec!["openid".into(), "profile".into(), "email".into()],
        title: "demo".into(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let demo_task = tokio::spawn(demo::serve(cfg, async move {
        let _ = stopped.await;
    }));
    let b = browser();
    let mut r = None;
    for _ in 0..400 {
        if let Ok(resp) = b.get(format!("{demo_url}/login")).send().await {
            r = Some(resp);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let authorize = location(&r.expect("demo app up"));
    assert!(authorize.starts_with(&res_issuer), "{authorize}");
    let ends = Ends {
        home: home_issuer.clone(),
        resource: res_issuer.clone(),
    };
    // The demo app is not first-party at the resource: the guest consents there.
    let consent = app_redirect(sign_in_between(&ends, &b, &authorize, ALICE, ALICE_PW).await);
    assert!(consent.starts_with("/consent"), "{consent}");
    let page = b.get(resource.url(&consent)).send().await.unwrap();
    let mut form = hidden_inputs(&page.text().await.unwrap());
    form.push(("decision".into(), "allow".into()));
    let r = b
        .post(resource.url("/consent"))
        .form(&form)
        .send()
        .await
        .unwrap();
    let callback = location(&r);
    assert!(
        callback.starts_with(&format!("{demo_url}/callback")),
        "{callback}"
    );
    let page = b.get(&callback).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let text = page.text().await.unwrap();
    assert!(
        text.contains("home_tenant") && text.contains("contoso"),
        "{text}"
    );
    assert!(
        text.contains("guest") && text.contains(&home_issuer),
        "{text}"
    );
    let _ = stop.send(());
    let _ = demo_task.await;
}

#[tokio::test]
async fn the_resource_authenticates_to_the_home_with_private_key_jwt() {
    let home_l = TcpListener::bind("127.0.0.1:0").unwrap();
    let res_l = TcpListener::bind("127.0.0.1:0").unwrap();
    let (home_issuer, res_issuer) = (issuer_of(&home_l), issuer_of(&res_l));
    let f = fixtures();
    let (hd, hdb) = tenant_dir("contoso");
    let (rd, rdb) = tenant_dir("fabrikam");
    let key = rd.join("fabrikam-federation-key.pem");
    std::fs::write(&key, &f.client_key_pem).unwrap();
    let partner = format!(
        r#"
[[partners]]
id = "contoso"
display_name = "Contoso"
issuer = "{home_issuer}"
client_id = "fabrikam"
private_key_file = "{key}"
domains = ["contoso.test"]
ca_file = "{ca}"
trust_user_risk = true
require_user_risk_claim = true
"#,
        key = key.display(),
        ca = f.ca.display()
    );
    // What the home registers is what `tenantd keys public --partner` prints for the resource.
    let res_config = rd.join("fabrikam.toml");
    std::fs::write(
        &res_config,
        config_text(
            "fabrikam",
            &res_issuer,
            &res_l.local_addr().unwrap().to_string(),
            &rdb,
            &partner,
        ),
    )
    .unwrap();
    let (code, jwks, stderr) = crate::user_risk::tenantd(&[
        "keys",
        "public",
        "--config",
        res_config.to_str().unwrap(),
        "--partner",
        "contoso",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let printed: serde_json::Value = serde_json::from_str(&jwks).unwrap();
    let keys = printed["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert!(keys[0].get("d").is_none(), "no private parts: {jwks}");
    let jwks_file = hd.join("fabrikam-jwks.json");
    std::fs::write(&jwks_file, &jwks).unwrap();
    let home = start_on(
        "contoso",
        home_l,
        &hd,
        &hdb,
        &format!(
            r#"
[[apps]]
client_id = "fabrikam"
name = "Fabrikam"
token_endpoint_auth_method = "private_key_jwt"
jwks_file = "{jwks}"
redirect_uris = ["{res_issuer}/federation/callback"]
grant_types = ["authorization_code"]
first_party = true
partner_tenant = true
"#,
            jwks = jwks_file.display()
        ),
    )
    .await;
    add_user(&home, ALICE, ALICE_PW, false).await;
    let resource = start_on("fabrikam", res_l, &rd, &rdb, &partner).await;
    invite(&resource, ALICE, "contoso").await;
    let p = Pair { home, resource };
    let redirect = app_redirect(
        federated_sign_in(
            &p,
            &browser(),
            &rp_authorize(&p.resource, ""),
            ALICE,
            ALICE_PW,
        )
        .await,
    );
    let tokens = exchange(&p.resource, &redirect).await;
    let id = decode_payload(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["idp"], p.home.issuer.as_str());
    // The home's registration has no secret and accepts only private_key_jwt: the code
    // exchange behind this sign-in could only succeed with the resource's signed assertion.
    let rows = sign_in_rows(&p.home).await;
    assert_eq!(rows[0].app_id.as_deref(), Some("fabrikam"));
    assert_eq!(rows[0].error_code, 0);
}
