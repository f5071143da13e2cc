//! Shared signals, the resource's receiving end: SETs a partner pushes (RFC 8935) about its
//! users who are guests here, checked and acted on at once; every forged, misdirected, stale or
//! unauthenticated one refused with its RFC 8935 error and nothing changed.

use protocol::jwt::{KeySet, SigningAlg, SigningKey};
use serde_json::{Value, json};
use server::guest_signals::event_types;

use crate::federation::*;
use crate::support::*;

/// A resource that receives contoso's signals, trusts its risk and blocks high user risk.
async fn receiving_pair() -> (Pair, String) {
    let policies = crate::risk::policies_copy("fabrikam");
    let p = pair(&crate::risk::resource_lines(
        &policies,
        &format!("{TRUSTED}\nshared_signals = true"),
    ))
    .await;
    let token = server::guest_signals::push_token(p.resource.state(), "contoso")
        .await
        .unwrap();
    (p, token)
}

/// A SET from the home, signed with its tenant key.
fn set_from(p: &Pair, sub_id: Value, events: Value, extra: Value) -> String {
    let now = p.home.state().now();
    let mut claims = json!({
        "iss": p.home.issuer,
        "aud": p.resource.issuer,
        "jti": uuid::Uuid::new_v4().to_string(),
        "iat": now,
        "sub_id": sub_id,
        "events": events,
    });
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    p.home
        .state()
        .keys()
        .sign(SigningAlg::ES256, "secevent+jwt", &claims)
        .unwrap()
}

fn email(address: &str) -> Value {
    json!({ "format": "email", "email": address })
}

fn risk_level(level: &str) -> Value {
    json!({ event_types::RISK_LEVEL_CHANGE: {
        "principal": "USER", "current_level": level, "previous_level": "LOW",
        "risk_reason": "admin confirmed the user compromised",
    }})
}

async fn push_as(p: &Pair, token: &str, content_type: &str, set: &str) -> (u16, Value) {
    let r = backchannel()
        .post(p.resource.url("/ssf/receive/contoso"))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(set.to_owned())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn push(p: &Pair, token: &str, set: &str) -> (u16, Value) {
    push_as(p, token, "application/secevent+jwt", set).await
}

async fn refresh_token_of(p: &Pair, who: &str, password: &str) -> String {
    let redirect = app_redirect(
        federated_sign_in(p, &browser(), &rp_authorize(&p.resource, ""), who, password).await,
    );
    exchange(&p.resource, &redirect).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn refresh(p: &Pair, rt: &str) -> u16 {
    rp_token(
        &p.resource,
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
    )
    .await
    .status()
    .as_u16()
}

#[tokio::test]
async fn a_pushed_risk_change_ends_the_guests_tokens_at_once() {
    let (p, token) = receiving_pair().await;
    let bob_rt = refresh_token_of(&p, BOB, BOB_PW).await;
    let alice_rt = refresh_token_of(&p, ALICE, ALICE_PW).await;

    // A verification event is accepted and changes nothing.
    let verify = set_from(
        &p,
        json!({"format": "opaque", "id": "stream-1"}),
        json!({ event_types::VERIFICATION: { "state": "s-1" } }),
        json!({}),
    );
    assert_eq!(push(&p, &token, &verify).await.0, 202);

    // Bob's home says his risk is high: his refresh token is dead before he uses it again.
    let high = set_from(&p, email(BOB), risk_level("HIGH"), json!({}));
    assert_eq!(push(&p, &token, &high).await.0, 202);
    assert_eq!(refresh(&p, &bob_rt).await, 400);
    // The same SET again: acknowledged, applied once.
    assert_eq!(push(&p, &token, &high).await.0, 202);

    // Alice's home revoked her sessions; the SET names her by her subject there.
    let home_alice = p
        .home
        .state()
        .store
        .user_by_email(ALICE)
        .await
        .unwrap()
        .unwrap();
    let revoked = set_from(
        &p,
        json!({"format": "complex",
               "user": {"format": "iss_sub", "iss": p.home.issuer, "sub": home_alice.id},
               "tenant": {"format": "opaque", "id": "contoso"}}),
        json!({ event_types::SESSION_REVOKED: { "event_timestamp": p.home.state().now() } }),
        json!({}),
    );
    assert_eq!(push(&p, &token, &revoked).await.0, 202);
    assert_eq!(refresh(&p, &alice_rt).await, 400);
}

#[tokio::test]
async fn forged_misdirected_stale_and_unauthenticated_sets_are_refused() {
    let (p, token) = receiving_pair().await;
    let bob_rt = refresh_token_of(&p, BOB, BOB_PW).await;
    let high = || set_from(&p, email(BOB), risk_level("HIGH"), json!({}));

    let expect = |got: (u16, Value), status: u16, err: &str| {
        assert_eq!(got.0, status, "{}", got.1);
        assert_eq!(got.1["err"], err, "{}", got.1);
        assert!(got.1["description"].as_str().is_some_and(|d| !d.is_empty()));
    };
    expect(
        push(&p, "not-the-token", &high()).await,
        401,
        "authentication_failed",
    );
    expect(
        push_as(&p, &token, "application/json", &high()).await,
        400,
        "invalid_request",
    );
    // Signed by a key the home does not publish.
    let stranger = SigningKey::from_pkcs8_pem(
        SigningAlg::ES256,
        &server::keys::generate_pem(SigningAlg::ES256).unwrap(),
        0,
        None,
    )
    .unwrap();
    let forged = KeySet::new(vec![stranger], 0)
        .sign(
            SigningAlg::ES256,
            "secevent+jwt",
            &json!({"iss": p.home.issuer, "aud": p.resource.issuer, "jti": "f-1",
                    "iat": p.home.state().now(), "sub_id": email(BOB),
                    "events": risk_level("HIGH")}),
        )
        .unwrap();
    expect(push(&p, &token, &forged).await, 400, "invalid_key");
    // A real signature, altered.
    let mut altered = high();
    let last = altered.pop().unwrap();
    altered.push(if last == 'A' { 'B' } else { 'A' });
    expect(push(&p, &token, &altered).await, 400, "invalid_key");
    expect(
        push(
            &p,
            &token,
            &set_from(
                &p,
                email(BOB),
                risk_level("HIGH"),
                json!({"aud": "https://elsewhere.test"}),
            ),
        )
        .await,
        400,
        "invalid_audience",
    );
    expect(
        push(
            &p,
            &token,
            &set_from(
                &p,
                email(BOB),
                risk_level("HIGH"),
                json!({"iss": "https://elsewhere.test"}),
            ),
        )
        .await,
        400,
        "invalid_issuer",
    );
    let old = p.home.state().now() - federation::signals::MAX_SET_AGE_SECS - 10;
    expect(
        push(
            &p,
            &token,
            &set_from(&p, email(BOB), risk_level("HIGH"), json!({"iat": old})),
        )
        .await,
        400,
        "invalid_request",
    );
    // Not a SET: an ID-token-typed JWT with the same claims.
    let jwt = p
        .home
        .state()
        .keys()
        .sign(
            SigningAlg::ES256,
            "JWT",
            &json!({"iss": p.home.issuer, "aud": p.resource.issuer, "jti": "t-1",
                    "iat": p.home.state().now(), "sub_id": email(BOB),
                    "events": risk_level("HIGH")}),
        )
        .unwrap();
    expect(push(&p, &token, &jwt).await, 400, "invalid_request");
    // A partner that sends no signals has no endpoint.
    let r = backchannel()
        .post(p.resource.url("/ssf/receive/northwind"))
        .bearer_auth(&token)
        .header("content-type", "application/secevent+jwt")
        .body(high())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // None of it changed anything.
    assert_eq!(refresh(&p, &bob_rt).await, 200);
}
