//! Every token passes the sign-in gate: guests have no way around their home (no local
//! credentials, re-authentication forwarded home), refresh tokens are non-interactive sign-ins
//! judged again, and an invitation needs an address the home vouches for.

use crate::federation::*;
use crate::support::*;

#[tokio::test]
async fn a_guest_has_no_local_credentials_at_the_resource() {
    let p = pair(TRUSTED).await;
    let b = browser();
    app_redirect(federated_sign_in(&p, &b, &rp_authorize(&p.resource, ""), ALICE, ALICE_PW).await);
    let store = &p.resource.state().store;
    let alice = store.user_by_email(ALICE).await.unwrap().unwrap();
    // No path can give the guest a password here.
    assert!(matches!(
        store.set_password(&alice.id, "$argon2id$x", false, 0).await,
        Err(store::StoreError::Conflict(_))
    ));
    // The password form posted straight to the resource, the home password included, is refused
    // with the home named, and no code reaches the app.
    let b = browser();
    let page = b.get(rp_authorize(&p.resource, "")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let mut form = hidden_inputs(&page.text().await.unwrap());
    form.push(("email".into(), ALICE.into()));
    form.push(("password".into(), ALICE_PW.into()));
    let r = b
        .post(p.resource.url("/login/password"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("guest account") && text.contains("Contoso"),
        "{text}"
    );
    let row = sign_in_rows(&p.resource).await.into_iter().next().unwrap();
    assert_eq!(row.error_code, 50126);
    assert_eq!(row.user_id.as_deref(), Some(alice.id.as_str()));

    // The CLI refuses too, naming the home, and changes nothing.
    let t = &p.resource;
    let cfg = t.dir.join("resource.toml");
    std::fs::write(
        &cfg,
        config_text(
            "fabrikam",
            &t.issuer,
            t.issuer.trim_start_matches("https://"),
            &format!("sqlite://{}", t.dir.join("tenant.db").display()),
            &partner_toml(&p.home.issuer, TRUSTED),
        ),
    )
    .unwrap();
    let cfg = cfg.display().to_string();
    for args in [
        &["user", "set-password", "--config", &cfg, ALICE][..],
        &["mfa", "reset", "--config", &cfg, ALICE][..],
    ] {
        let (code, _, err) = crate::user_risk::tenantd(args);
        assert_eq!(code, Some(6), "{args:?}: {err}");
        assert!(err.contains("guest from Contoso"), "{err}");
    }
    let alice = store.user_by_email(ALICE).await.unwrap().unwrap();
    assert_eq!(alice.password_hash, None);
}

/// POST /token with `form`, as the lab RP (Basic auth) or, with `client: None`, a public
/// client; from `ip` when given (the tenants trust 127.0.0.1 as a proxy).
async fn token_call(
    t: &TestTenant,
    ip: Option<&str>,
    client: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> (u16, serde_json::Value) {
    let c = match ip {
        Some(ip) => browser_from(ip),
        None => backchannel(),
    };
    let mut req = c.post(t.url("/token")).form(form);
    if let Some((id, secret)) = client {
        req = req.basic_auth(id, Some(secret));
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn refresh_as_rp(t: &TestTenant, rt: &str) -> (u16, serde_json::Value) {
    token_call(
        t,
        None,
        Some((RP_ID, RP_SECRET)),
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
    )
    .await
}

/// The sign-in log's refresh rows (`nonInteractiveUser`), newest first.
async fn refresh_rows(t: &TestTenant) -> Vec<store::SignInLog> {
    t.state()
        .store
        .list_sign_ins(&store::SignInFilter {
            sign_in_event_type: Some("nonInteractiveUser".into()),
            ..Default::default()
        })
        .await
        .unwrap()
}

async fn introspect_active(t: &TestTenant, token: &str) -> bool {
    let r: serde_json::Value = backchannel()
        .post(t.url("/introspect"))
        .basic_auth(RP_ID, Some(RP_SECRET))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["active"] == true
}

#[tokio::test]
async fn a_members_refresh_is_a_non_interactive_sign_in_judged_again() {
    let policies = crate::risk::policies_copy("contoso");
    let t = start_with(
        "contoso",
        &format!("{}{ADMIN_APP}", crate::risk::risk_toml(&policies)),
    )
    .await;
    let tokens = alice_tokens(&t, &browser()).await;
    let (status, body) = refresh_as_rp(&t, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{body}");
    let rt = body["refresh_token"].as_str().unwrap().to_owned();
    let at = body["access_token"].as_str().unwrap().to_owned();
    let rows = refresh_rows(&t).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].error_code, 0);
    assert_eq!(rows[0].user_principal_name.as_deref(), Some(ALICE));
    assert_eq!(rows[0].risk_level_aggregated.as_deref(), Some("none"));

    // Alice's password turns up in a leak (offline: nothing else happens to her tokens). Her
    // next refresh meets the user-risk policy, which needs an interactive remediation.
    let report = server::user_risk::import_leaked(
        &server::user_risk::Home::of(t.state()),
        "leaked.txt",
        &format!("{ALICE}:{ALICE_PW}\n"),
    )
    .await
    .unwrap();
    assert_eq!(report.users_flagged, 1);
    let (status, body) = refresh_as_rp(&t, &rt).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("50135"),
        "{body}"
    );
    // The family is gone: the same token again, and the access token of the grant.
    let (status, body) = refresh_as_rp(&t, &rt).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(!introspect_active(&t, &at).await);
    let rows = refresh_rows(&t).await;
    assert_eq!(rows[0].error_code, 50135);
    assert_eq!(rows[0].risk_level_aggregated.as_deref(), Some("high"));
    assert_eq!(rows[0].sign_in_event_type, "nonInteractiveUser");
    // The sign-in log API filters them as Graph does.
    let r: serde_json::Value = backchannel()
        .get(t.url(
            "/v1.0/auditLogs/signIns?$filter=signInEventTypes/any(t:%20t%20eq%20'nonInteractiveUser')",
        ))
        .bearer_auth(admin_token(&t).await)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let v = r["value"].as_array().unwrap();
    assert_eq!(v.len(), 2, "{r}");
    assert_eq!(v[0]["status"]["errorCode"], 50135);
    assert_eq!(v[0]["isInteractive"], false);
    assert_eq!(
        v[0]["signInEventTypes"],
        serde_json::json!(["nonInteractiveUser"])
    );
    // Refreshes are not interactive history.
    assert!(
        t.state()
            .store
            .recent_sign_ins(rows[0].user_id.as_deref().unwrap(), None, 50)
            .await
            .unwrap()
            .len()
            == 1
    );
}

#[tokio::test]
async fn confirming_a_user_compromised_ends_their_tokens_at_once() {
    let t = start_with("contoso", ADMIN_APP).await;
    let tokens = alice_tokens(&t, &browser()).await;
    let alice = t.state().store.user_by_email(ALICE).await.unwrap().unwrap();
    let r = backchannel()
        .post(t.url("/v1.0/identityProtection/riskyUsers/confirmCompromised"))
        .bearer_auth(admin_token(&t).await)
        .json(&serde_json::json!({ "userIds": [alice.id] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (status, body) = refresh_as_rp(&t, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(!introspect_active(&t, tokens["access_token"].as_str().unwrap()).await);
    // And her browser session is over: signing in again asks for the password.
    let r = browser()
        .get(rp_authorize(&t, "&prompt=none"))
        .send()
        .await
        .unwrap();
    assert_eq!(query(&location(&r))["error"], "login_required");
}

#[tokio::test]
async fn a_guests_refresh_is_judged_on_the_last_risk_their_home_sent() {
    let policies = crate::risk::policies_copy("fabrikam");
    let p = pair(&crate::risk::resource_lines(&policies, TRUSTED)).await;
    let b = browser();
    let redirect =
        app_redirect(federated_sign_in(&p, &b, &rp_authorize(&p.resource, ""), BOB, BOB_PW).await);
    let tokens = exchange(&p.resource, &redirect).await;
    let rt = tokens["refresh_token"].as_str().unwrap().to_owned();
    // Bob becomes risky at home; the resource has not heard yet, so his refresh still passes.
    crate::risk::bob_at_risk(&p).await;
    let (status, body) = refresh_as_rp(&p.resource, &rt).await;
    assert_eq!(status, 200, "{body}");
    let rt = body["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(refresh_rows(&p.resource).await[0].user_type, "guest");
    // His next sign-in brings the home's new claim (and is blocked); from then on his refresh
    // tokens are refused with the same code, and their family ends.
    let (page, _) = crate::risk::blocked(
        federated_sign_in(&p, &browser(), &rp_authorize(&p.resource, ""), BOB, BOB_PW).await,
    );
    assert!(page.contains("53011"), "{page}");
    let (status, body) = refresh_as_rp(&p.resource, &rt).await;
    assert_eq!(status, 400, "{body}");
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.contains("53011") && description.contains(policy::codes::BLOCKED_MESSAGE),
        "{body}"
    );
    let (status, _) = refresh_as_rp(&p.resource, &rt).await;
    assert_eq!(status, 400);
    let row = &refresh_rows(&p.resource).await[0];
    assert_eq!(row.error_code, 53011);
    assert_eq!(row.risk_level_aggregated.as_deref(), Some("high"));
}

#[tokio::test]
async fn a_public_clients_refresh_ip_is_judged_a_confidential_clients_is_not() {
    let policies = crate::risk::policies_copy("fabrikam");
    let t = start_with("fabrikam", &crate::risk::risk_toml(&policies)).await;
    // The confidential lab RP.
    let rp = alice_tokens(&t, &browser()).await;
    // The public SPA, with PKCE.
    let b = browser();
    let verifier = "v".repeat(43);
    let url = t.url(&format!(
        "/authorize?response_type=code&client_id={PUBLIC_ID}&redirect_uri={}&scope=openid&state=st-1&code_challenge={}&code_challenge_method=S256",
        urlenc(PUBLIC_REDIRECT),
        protocol::pkce::s256_challenge(&verifier)
    ));
    let redirect = sign_in(&t, &b, &url, ALICE, ALICE_PW).await;
    let code = code_from(&t, &redirect, "st-1");
    let (status, spa) = token_call(
        &t,
        None,
        None,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", PUBLIC_REDIRECT),
            ("client_id", PUBLIC_ID),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(status, 200, "{spa}");
    let spa_rt = spa["refresh_token"].as_str().unwrap();

    // From a known-malicious IP: the public client's IP is the user's device: blocked (50053),
    // but only this attempt: the family stays, so the user's device can retry elsewhere.
    let malicious = "203.0.113.66";
    let refresh_spa = |ip: Option<&'static str>, rt: String| {
        let t = &t;
        async move {
            token_call(
                t,
                ip,
                None,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &rt),
                    ("client_id", PUBLIC_ID),
                ],
            )
            .await
        }
    };
    let (status, body) = refresh_spa(Some(malicious), spa_rt.to_owned()).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("50053"),
        "{body}"
    );
    let (status, body) = refresh_spa(None, spa_rt.to_owned()).await;
    assert_eq!(status, 200, "the family survives a network refusal: {body}");

    // The confidential client's back channel from the same IP is its server: not judged.
    let (status, body) = token_call(
        &t,
        Some(malicious),
        Some((RP_ID, RP_SECRET)),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rp["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let row = &refresh_rows(&t).await[0];
    assert_eq!(row.app_id.as_deref(), Some(RP_ID));
    assert_eq!(row.error_code, 0);
    assert_eq!(row.risk_level_during_sign_in.as_deref(), Some("none"));
    assert_eq!(row.ip_address.as_deref(), Some(malicious));
}

#[tokio::test]
async fn a_guests_reauthentication_is_forwarded_to_the_home() {
    let p = pair(TRUSTED).await;
    // The resource's clock runs 5 minutes ahead: a guest's auth_time is the home's, not the
    // moment the resource issued its tokens.
    p.resource.clock.advance(300);
    let b = browser();
    let redirect = app_redirect(
        federated_sign_in(&p, &b, &rp_authorize(&p.resource, ""), ALICE, ALICE_PW).await,
    );
    let id = crate::flows::decode_payload(
        exchange(&p.resource, &redirect).await["id_token"]
            .as_str()
            .unwrap(),
    );
    let first_auth = id["auth_time"].as_i64().unwrap();
    assert!(
        id["iat"].as_i64().unwrap() - first_auth >= 290,
        "auth_time is the home's: {id}"
    );
    assert_eq!(id["amr"], serde_json::json!(["pwd"]));

    // prompt=login and max_age go to the home, which asks for the password again (the clocks
    // agree again: the resource allows a home clock only a minute off).
    p.home.clock.advance(300);
    for extra in ["&prompt=login", "&max_age=60"] {
        p.home.clock.advance(120);
        p.resource.clock.advance(120);
        let r = submit_email(
            &b,
            &p.resource.issuer,
            &rp_authorize(&p.resource, extra),
            ALICE,
        )
        .await;
        assert_eq!(r.status(), 303);
        let to_home = location(&r);
        let q = query(&to_home);
        match extra {
            "&prompt=login" => assert_eq!(q.get("prompt").map(String::as_str), Some("login")),
            _ => assert_eq!(q.get("max_age").map(String::as_str), Some("60")),
        }
        let page = b.get(&to_home).send().await.unwrap();
        assert_eq!(page.status(), 200, "the home asks again");
        let redirect = match follow_password_at_home(&p, &b, page).await {
            Ended::App(l) => l,
            Ended::Page(s, t) => panic!("{s}: {t}"),
        };
        let id = crate::flows::decode_payload(
            exchange(&p.resource, &redirect).await["id_token"]
                .as_str()
                .unwrap(),
        );
        assert!(id["auth_time"].as_i64().unwrap() > first_auth, "{id}");
    }
}

/// The home's password page (login_hint skipped its email page): the password, then back to
/// the resource's callback.
async fn follow_password_at_home(p: &Pair, b: &reqwest::Client, page: reqwest::Response) -> Ended {
    let mut form = hidden_inputs(&page.text().await.unwrap());
    form.push(("password".into(), ALICE_PW.into()));
    let r = b
        .post(p.home.url("/login/password"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = b.get(location(&r)).send().await.unwrap();
    match r.status().as_u16() {
        303 => Ended::App(location(&r)),
        s => Ended::Page(s, r.text().await.unwrap()),
    }
}

#[tokio::test]
async fn a_home_that_does_not_reauthenticate_is_refused_with_login_required() {
    // The fake home sends no auth_time: it cannot show it honoured prompt=login.
    let (resource, idp) = resource_with_fake(TRUSTED).await;
    let b = browser();
    let r = submit_email(
        &b,
        &resource.issuer,
        &rp_authorize(&resource, "&prompt=login&acr_values=urn%3Aexample%3Amfa"),
        ALICE,
    )
    .await;
    let q = query(&location(&r));
    assert_eq!(q.get("prompt").map(String::as_str), Some("login"));
    assert_eq!(
        q.get("acr_values").map(String::as_str),
        Some("urn:example:mfa")
    );
    *idp.nonce.lock().unwrap() = q["nonce"].clone();
    let r = b
        .get(resource.url(&format!(
            "/federation/callback?code=c&state={}",
            urlenc(&q["state"])
        )))
        .send()
        .await
        .unwrap();
    let (text, err) = refusal(Ended::Page(r.status().as_u16(), r.text().await.unwrap()));
    assert!(text.contains("50058"), "{text}");
    assert_eq!(err.get("error").map(String::as_str), Some("login_required"));
    // Nothing redeemed.
    let alice = resource
        .state()
        .store
        .user_by_email(ALICE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(alice.home_subject, None);
}

/// A partner's signal about a guest acts at once (the domain half of shared signals; the SETs
/// carrying it are checked before): bob holds a refresh token at the resource; his home says
/// his risk is now high; the gate judges his grant on that and the policies block, so his
/// sessions and grants end and his refresh is refused. The same event again changes nothing; a
/// lower level ends nothing; a session revocation ends alice's at once.
#[tokio::test]
async fn a_partners_signal_about_a_guest_acts_at_once_and_once() {
    use server::guest_signals::{Signal, Subject, apply};
    let policies = crate::risk::policies_copy("fabrikam");
    let p = pair(&crate::risk::resource_lines(&policies, TRUSTED)).await;
    let tokens_of = |who: &'static str, pw: &'static str| {
        let p = &p;
        async move {
            let redirect = app_redirect(
                federated_sign_in(p, &browser(), &rp_authorize(&p.resource, ""), who, pw).await,
            );
            exchange(&p.resource, &redirect).await["refresh_token"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let bob_rt = tokens_of(BOB, BOB_PW).await;
    let alice_rt = tokens_of(ALICE, ALICE_PW).await;
    let s = p.resource.state();

    // Low: nothing ends; the refresh passes.
    let low = Signal::RiskLevelChange {
        current: risk::RiskLevel::Low,
        reason: None,
        at: None,
    };
    let applied = apply(
        s,
        "contoso",
        "e-1",
        &Subject::Email(BOB.into()),
        std::slice::from_ref(&low),
    )
    .await
    .unwrap();
    assert!(applied.guest_id.is_some());
    assert_eq!(applied.ended_because, None);
    let (status, body) = refresh_as_rp(&p.resource, &bob_rt).await;
    assert_eq!(status, 200, "{body}");
    let bob_rt = body["refresh_token"].as_str().unwrap().to_owned();

    // High: the policies block him, everything ends.
    let high = Signal::RiskLevelChange {
        current: risk::RiskLevel::High,
        reason: Some("confirmed compromised".into()),
        at: None,
    };
    let applied = apply(
        s,
        "contoso",
        "e-2",
        &Subject::Email(BOB.into()),
        std::slice::from_ref(&high),
    )
    .await
    .unwrap();
    assert!(
        applied
            .ended_because
            .as_deref()
            .is_some_and(|why| why.contains("53011")),
        "{applied:?}"
    );
    assert!(matches!(
        applied.applied,
        store::SignalApplied::Now { grants: 1.., .. }
    ));
    let (status, body) = refresh_as_rp(&p.resource, &bob_rt).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant");

    // The same event again: applied before, nothing changes; a later low one unblocks the
    // next sign-in's refresh judgement, but ends nothing and revives nothing.
    let again = apply(
        s,
        "contoso",
        "e-2",
        &Subject::Email(BOB.into()),
        std::slice::from_ref(&high),
    )
    .await
    .unwrap();
    assert_eq!(again.applied, store::SignalApplied::Before);
    assert_eq!(again.ended_because, None);

    // A change that happened before the risk held (a late or out-of-order SET) changes
    // nothing: bob's risk stays high.
    let held = || async {
        let bob = s.store.user_by_email(BOB).await.unwrap().unwrap();
        serde_json::from_str::<risk::UserRiskClaim>(&bob.home_user_risk.unwrap()).unwrap()
    };
    let high_since = held().await.updated_at;
    let stale = Signal::RiskLevelChange {
        current: risk::RiskLevel::Low,
        reason: Some("adminDismissedAllRiskForUser".into()),
        at: Some(high_since - 10),
    };
    let applied = apply(
        s,
        "contoso",
        "e-stale",
        &Subject::Email(BOB.into()),
        std::slice::from_ref(&stale),
    )
    .await
    .unwrap();
    assert!(matches!(applied.applied, store::SignalApplied::Now { .. }));
    assert_eq!(held().await.level, risk::RiskLevel::High);

    // Another partner's name for the same address is not bob.
    let stranger = apply(
        s,
        "northwind",
        "e-3",
        &Subject::Email(BOB.into()),
        std::slice::from_ref(&high),
    )
    .await
    .unwrap();
    assert_eq!(stranger.guest_id, None);

    // Alice's home revoked her sessions: hers end here too.
    let home_alice = p
        .home
        .state()
        .store
        .user_by_email(ALICE)
        .await
        .unwrap()
        .unwrap();
    let applied = apply(
        s,
        "contoso",
        "e-4",
        &Subject::HomeSubject(home_alice.id.clone()),
        &[Signal::SessionRevoked],
    )
    .await
    .unwrap();
    assert!(applied.guest_id.is_some(), "found by her subject at home");
    assert!(applied.ended_because.is_some());
    let (status, _) = refresh_as_rp(&p.resource, &alice_rt).await;
    assert_eq!(status, 400);
}
