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

/// The stream `t` receives from `partner`, once `done` holds of it (`None` after `secs`).
async fn receiving(
    t: &server::AppState,
    partner: &str,
    secs: u64,
    done: impl Fn(&store::ReceivingStream) -> bool,
) -> Option<store::ReceivingStream> {
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(secs) {
        let r = t.store.receiving_stream(partner).await.unwrap();
        if let Some(r) = r.filter(|r| done(r)) {
            return Some(r);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    None
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

    // The admin API shows the stream from contoso and what came on it (two events applied;
    // the repeat and the verification are not).
    let admin = admin_token(&p.resource).await;
    let r: Value = backchannel()
        .get(
            p.resource
                .url("/v1.0/identityProtection/sharedSignals/received"),
        )
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let contoso = &r["value"][0];
    assert_eq!(contoso["partnerId"], "contoso", "{r}");
    assert_eq!(contoso["delivery"], "push");
    assert_eq!(contoso["eventsReceived"], 2, "{r}");
    assert!(contoso["lastReceivedDateTime"].is_string(), "{r}");
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

/// What a fake SSF transmitter saw: each request as (method, path and query, JSON body).
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, String, Value)>>>;

/// A fake partner with an SSF transmitter (plain HTTP on loopback): OIDC discovery, JWKS, a
/// token endpoint for the client credentials grant, `/.well-known/ssf-configuration`, one
/// stream store and a verification endpoint; every request recorded.
struct FakeTransmitter {
    issuer: String,
    keys: KeySet,
    seen: Seen,
    stream: std::sync::Arc<std::sync::Mutex<Option<Value>>>,
    /// SETs waiting to be polled, `(jti, SET)`, until acknowledged.
    queue: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
}

async fn fake_transmitter() -> FakeTransmitter {
    use axum::extract::{Json as J, OriginalUri};
    use axum::http::Method;
    use axum::routing::{any, get, post};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let key = SigningKey::from_pkcs8_pem(
        SigningAlg::ES256,
        &server::keys::generate_pem(SigningAlg::ES256).unwrap(),
        0,
        None,
    )
    .unwrap();
    let keys = KeySet::new(vec![key], 0);
    let jwks = serde_json::to_value(keys.jwks(0)).unwrap();
    let seen: Seen = Default::default();
    let stream: std::sync::Arc<std::sync::Mutex<Option<Value>>> = Default::default();
    let discovery = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
    });
    let ssf = json!({
        "spec_version": "1_0",
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/jwks"),
        "delivery_methods_supported": ["urn:ietf:rfc:8935", "urn:ietf:rfc:8936"],
        "configuration_endpoint": format!("{issuer}/ssf/streams"),
        "verification_endpoint": format!("{issuer}/ssf/verify"),
    });
    let record = |seen: Seen| {
        move |method: Method, uri: OriginalUri, body: Option<J<Value>>| {
            seen.lock().unwrap().push((
                method.to_string(),
                uri.0.to_string(),
                body.map(|J(b)| b).unwrap_or(Value::Null),
            ));
        }
    };
    let (s1, s2, s3, s4) = (seen.clone(), seen.clone(), seen.clone(), seen.clone());
    let st = stream.clone();
    let queue: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>> = Default::default();
    let q = queue.clone();
    let poll_url = format!("{issuer}/ssf/poll");
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(move || async move { axum::Json(discovery) }),
        )
        .route(
            "/.well-known/ssf-configuration",
            get(move || async move { axum::Json(ssf) }),
        )
        .route("/jwks", get(move || async move { axum::Json(jwks) }))
        .route(
            "/token",
            post(move |body: String| {
                let seen = s1.clone();
                async move {
                    seen.lock()
                        .unwrap()
                        .push(("POST".into(), "/token".into(), Value::String(body)));
                    axum::Json(json!({"access_token": "mgmt-token", "token_type": "Bearer", "expires_in": 300}))
                }
            }),
        )
        .route(
            "/ssf/streams",
            any(
                move |method: Method, uri: OriginalUri, body: Option<J<Value>>| {
                    let seen = s2.clone();
                    let stream = st.clone();
                    async move {
                        record(seen)(method.clone(), uri.clone(), body.clone());
                        let mut current = stream.lock().unwrap();
                        let wanted = uri.0.query().and_then(|q| q.strip_prefix("stream_id="));
                        match method.as_str() {
                            "GET" => match (&*current, wanted) {
                                (Some(s), Some(id)) if s["stream_id"] == id => {
                                    (axum::http::StatusCode::OK, axum::Json(s.clone()))
                                }
                                (_, Some(_)) => {
                                    (axum::http::StatusCode::NOT_FOUND, axum::Json(Value::Null))
                                }
                                (Some(s), None) => {
                                    (axum::http::StatusCode::OK, axum::Json(json!([s])))
                                }
                                (None, None) => (axum::http::StatusCode::OK, axum::Json(json!([]))),
                            },
                            "POST" => {
                                let mut s = body.map(|J(b)| b).unwrap_or_default();
                                s["stream_id"] = uuid::Uuid::new_v4().to_string().into();
                                if s["delivery"]["method"] == "urn:ietf:rfc:8936" {
                                    s["delivery"]["endpoint_url"] = poll_url.clone().into();
                                }
                                *current = Some(s.clone());
                                (axum::http::StatusCode::CREATED, axum::Json(s))
                            }
                            _ => {
                                let mut s = body.map(|J(b)| b).unwrap_or_default();
                                if s["delivery"]["method"] == "urn:ietf:rfc:8936" {
                                    s["delivery"]["endpoint_url"] = poll_url.clone().into();
                                }
                                *current = Some(s.clone());
                                (axum::http::StatusCode::OK, axum::Json(s))
                            }
                        }
                    }
                },
            ),
        )
        .route(
            "/ssf/poll",
            post(move |method: Method, uri: OriginalUri, body: Option<J<Value>>| {
                let seen = s4.clone();
                let queue = q.clone();
                async move {
                    let body = body.map(|J(b)| b).unwrap_or_default();
                    record(seen)(method, uri, Some(J(body.clone())));
                    let mut queue = queue.lock().unwrap();
                    let acked: Vec<&str> = body["ack"]
                        .as_array()
                        .map(|a| a.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    queue.retain(|(jti, _)| !acked.contains(&jti.as_str()));
                    let max = body["maxEvents"].as_u64().unwrap_or(10) as usize;
                    let sets: serde_json::Map<String, Value> = queue
                        .iter()
                        .take(max)
                        .map(|(jti, set)| (jti.clone(), Value::String(set.clone())))
                        .collect();
                    axum::Json(json!({"sets": sets, "moreAvailable": queue.len() > max}))
                }
            }),
        )
        .route(
            "/ssf/verify",
            post(move |method: Method, uri: OriginalUri, body: Option<J<Value>>| {
                let seen = s3.clone();
                async move {
                    record(seen)(method, uri, body);
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    FakeTransmitter {
        issuer,
        keys,
        seen,
        stream,
        queue,
    }
}

/// The resource sets its stream up at a partner's transmitter when it starts, as SSF 1.0 says,
/// keeps it there
/// (a second set-up replaces the same stream), repairs it when the partner lost it, and
/// accepts what the partner then pushes with the token it was given.
#[tokio::test]
async fn the_resource_sets_up_keeps_and_repairs_its_stream_at_the_partner() {
    let fake = fake_transmitter().await;
    let (d, db) = tenant_dir("fabrikam");
    let resource = start_on(
        "fabrikam",
        std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        &d,
        &db,
        &partner_toml(&fake.issuer, "shared_signals = true"),
    )
    .await;
    let s = resource.state();
    // The tenant sets it up on its own at start-up (then every 10 minutes).
    let first = receiving(s, "contoso", 10, |r| r.stream_id.is_some())
        .await
        .and_then(|r| r.stream_id);
    let first = first.expect("the stream was set up at start-up");
    // The verification request follows the stream's creation: wait for it too.
    let verified = |seen: &[(String, String, Value)]| {
        seen.iter()
            .any(|(m, p, b)| m == "POST" && p == "/ssf/verify" && b["stream_id"] == first.as_str())
    };
    for _ in 0..100 {
        if verified(&fake.seen.lock().unwrap()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let seen = fake.seen.lock().unwrap().clone();
    let token_request = seen.iter().find(|(_, path, _)| path == "/token").unwrap();
    let form = token_request.2.as_str().unwrap();
    assert!(
        form.contains("grant_type=client_credentials") && form.contains("scope=ssf.manage"),
        "{form}"
    );
    let created = seen
        .iter()
        .find(|(m, p, _)| m == "POST" && p == "/ssf/streams")
        .unwrap();
    let delivery = &created.2["delivery"];
    assert_eq!(delivery["method"], "urn:ietf:rfc:8935");
    assert_eq!(
        delivery["endpoint_url"],
        format!("{}/ssf/receive/contoso", resource.issuer)
    );
    let token = server::guest_signals::push_token(s, "contoso")
        .await
        .unwrap();
    assert_eq!(delivery["authorization_header"], format!("Bearer {token}"));
    let requested = created.2["events_requested"].as_array().unwrap();
    assert!(requested.contains(&json!(event_types::RISK_LEVEL_CHANGE)));
    assert!(verified(&seen));

    // Again: the same stream, replaced, not a second one.
    fake.seen.lock().unwrap().clear();
    let push = server::config::SignalsDelivery::Push;
    assert_eq!(
        server::guest_signals::connect(s, "contoso", push)
            .await
            .unwrap()
            .stream_id,
        first
    );
    let seen = fake.seen.lock().unwrap().clone();
    assert!(
        !seen
            .iter()
            .any(|(m, p, _)| m == "POST" && p == "/ssf/streams")
    );
    assert!(
        seen.iter()
            .any(|(m, _, b)| m == "PUT" && b["stream_id"] == first.as_str())
    );

    // The partner lost it: made again.
    *fake.stream.lock().unwrap() = None;
    let second = server::guest_signals::connect(s, "contoso", push)
        .await
        .unwrap()
        .stream_id;
    assert_ne!(second, first);
    let kept = s.store.receiving_stream("contoso").await.unwrap().unwrap();
    assert_eq!(kept.stream_id.as_deref(), Some(second.as_str()));

    // What the partner pushes with what it was given is accepted.
    let set = fake
        .keys
        .sign(
            SigningAlg::ES256,
            "secevent+jwt",
            &json!({"iss": fake.issuer, "aud": resource.issuer, "jti": "v-1",
                    "iat": s.now(), "sub_id": {"format": "opaque", "id": second},
                    "events": { event_types::VERIFICATION: { "state": "x" } }}),
        )
        .unwrap();
    let r = backchannel()
        .post(delivery["endpoint_url"].as_str().unwrap())
        .header(
            "authorization",
            delivery["authorization_header"].as_str().unwrap(),
        )
        .header("content-type", "application/secevent+jwt")
        .body(set)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);

    // This partner never pushes the verification event the resource asked for (nor did the
    // state above match it): its pushes do not reach the resource, which polls instead.
    let polled = receiving(s, "contoso", 15, |r| r.poll_url.is_some())
        .await
        .and_then(|r| r.poll_url);
    assert!(polled.is_some(), "the resource fell back to polling");
    let stream = fake.stream.lock().unwrap().clone().unwrap();
    assert_eq!(stream["delivery"]["method"], "urn:ietf:rfc:8936");
    assert_eq!(
        stream["stream_id"],
        second.as_str(),
        "the same stream, replaced"
    );
}

/// A resource the partner cannot reach polls instead (RFC 8936): what it fetches is applied and
/// acknowledged; a SET it refuses is reported in `setErrs` and never acknowledged.
#[tokio::test]
async fn a_polled_stream_is_fetched_applied_and_acknowledged() {
    let fake = fake_transmitter().await;
    let (d, db) = tenant_dir("fabrikam");
    let resource = start_on(
        "fabrikam",
        std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        &d,
        &db,
        &partner_toml(
            &fake.issuer,
            &format!("{TRUSTED}\nshared_signals = true\nshared_signals_delivery = \"poll\""),
        ),
    )
    .await;
    let s = resource.state();
    invite(&resource, BOB, "contoso").await;
    let good = fake
        .keys
        .sign(
            SigningAlg::ES256,
            "secevent+jwt",
            &json!({"iss": fake.issuer, "aud": resource.issuer, "jti": "good-1",
                    "iat": s.now(), "sub_id": email(BOB), "events": risk_level("HIGH")}),
        )
        .unwrap();
    let stranger = KeySet::new(
        vec![
            SigningKey::from_pkcs8_pem(
                SigningAlg::ES256,
                &server::keys::generate_pem(SigningAlg::ES256).unwrap(),
                0,
                None,
            )
            .unwrap(),
        ],
        0,
    );
    let forged = stranger
        .sign(
            SigningAlg::ES256,
            "secevent+jwt",
            &json!({"iss": fake.issuer, "aud": resource.issuer, "jti": "forged-1",
                    "iat": s.now(), "sub_id": email(BOB), "events": risk_level("LOW")}),
        )
        .unwrap();
    fake.queue
        .lock()
        .unwrap()
        .extend([("good-1".to_owned(), good), ("forged-1".to_owned(), forged)]);
    // The tenant sets the stream up and polls on its own.
    let mut held = None;
    for _ in 0..100 {
        held = s
            .store
            .user_by_email(BOB)
            .await
            .unwrap()
            .and_then(|u| u.home_user_risk);
        if held.is_some() && fake.queue.lock().unwrap().len() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let held: Value = serde_json::from_str(&held.expect("the polled SET was applied")).unwrap();
    assert_eq!(held["level"], "high");
    let stream = fake.stream.lock().unwrap().clone().unwrap();
    assert_eq!(stream["delivery"]["method"], "urn:ietf:rfc:8936");
    // The good one acknowledged (gone from the queue), the forged one reported, never acked.
    let queue = fake.queue.lock().unwrap().clone();
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0].0, "forged-1");
    let polls: Vec<Value> = fake
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, p, _)| p == "/ssf/poll")
        .map(|(_, _, b)| b.clone())
        .collect();
    assert!(
        polls
            .iter()
            .any(|b| b["setErrs"]["forged-1"]["err"] == "invalid_key"),
        "{polls:?}"
    );
    assert!(
        !polls
            .iter()
            .any(|b| b["ack"].as_array().unwrap().contains(&json!("forged-1")))
    );
}

/// The report back to the home: a partner that blocked one of the home's members as a guest
/// pushes a `sign-in-blocked` SET signed with its own keys to the home, which records a
/// `partnerReportedRisk` detection from that partner, once however often it comes.
#[tokio::test]
async fn a_partners_report_of_a_block_reaches_the_home_as_a_detection() {
    let home_l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let res_l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (home_issuer, res_issuer) = (issuer_of(&home_l), issuer_of(&res_l));
    let (rd, rdb) = tenant_dir("fabrikam");
    let resource = start_on(
        "fabrikam",
        res_l,
        &rd,
        &rdb,
        &partner_toml(&home_issuer, TRUSTED),
    )
    .await;
    // The home lists the resource as a partner whose signals it receives.
    let (hd, hdb) = tenant_dir("contoso");
    let home = start_on(
        "contoso",
        home_l,
        &hd,
        &hdb,
        &format!(
            "{}{ADMIN_APP}\n[[partners]]\nid = \"fabrikam\"\ndisplay_name = \"Fabrikam\"\nissuer = \"{res_issuer}\"\nclient_id = \"contoso\"\nclient_secret = \"contoso-at-fabrikam\"\nca_file = \"{}\"\ninbound_enabled = false\nshared_signals = true\n",
            home_app_toml(&res_issuer),
            fixtures().ca.display()
        ),
    )
    .await;
    let bob = add_user(&home, BOB, BOB_PW, false).await;
    let token = server::guest_signals::push_token(home.state(), "fabrikam")
        .await
        .unwrap();
    let report = resource
        .state()
        .keys()
        .sign(
            SigningAlg::ES256,
            "secevent+jwt",
            &json!({
                "iss": resource.issuer, "aud": home.issuer, "jti": "block-1",
                "iat": resource.state().now(),
                "sub_id": {"format": "iss_sub", "iss": home.issuer, "sub": bob.id},
                "events": { event_types::SIGN_IN_BLOCKED: {
                    "event_timestamp": resource.state().now(),
                    "policy": "Block high sign-in risk", "error_code": 53003,
                    "sign_in_risk_level": "HIGH",
                    "risk_event_types": ["anonymizedIPAddress"],
                    "ip_address": "203.0.113.9",
                }},
            }),
        )
        .unwrap();
    for _ in 0..2 {
        let r = backchannel()
            .post(home.url("/ssf/receive/fabrikam"))
            .bearer_auth(&token)
            .header("content-type", "application/secevent+jwt")
            .body(report.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    let admin = admin_token(&home).await;
    let detections: Value = backchannel()
        .get(home.url("/v1.0/identityProtection/riskDetections"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let found: Vec<&Value> = detections["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["riskEventType"] == "partnerReportedRisk")
        .collect();
    assert_eq!(found.len(), 1, "{detections}");
    assert_eq!(found[0]["userId"], bob.id.as_str());
    assert_eq!(found[0]["source"], "fabrikam");
    let status = server::user_risk::current(home.state(), &bob.id)
        .await
        .unwrap();
    assert_eq!(status.risk_level, risk::RiskLevel::Low);
}

/// Two real tenants, end to end: the resource sets its (polled) stream up at the home's
/// transmitter; bob signs in to the resource's app and holds a refresh token; the home's admin
/// confirms him compromised; the home's `risk-level-change` reaches the resource, whose gate
/// now blocks him, so his refresh token is refused within seconds, without any sign-in.
#[tokio::test]
async fn a_home_risk_change_ends_the_guests_tokens_at_the_resource() {
    home_to_resource(false, Delivery::PushTrusted).await;
}

/// The same when the home cannot push to the resource (it does not trust the resource's
/// certificate): the pushed verification never comes, and the resource polls instead.
#[tokio::test]
async fn signals_the_home_cannot_push_are_polled_instead() {
    home_to_resource(false, Delivery::PushUntrusted).await;
}

/// The same, with the resource down while the home emits: the events wait at the home and
/// reach the resource when it is back.
#[tokio::test]
async fn a_resource_that_was_down_catches_up_on_the_homes_signals() {
    home_to_resource(true, Delivery::Poll).await;
}

/// How the home's signals reach the resource in [`home_to_resource`].
#[derive(PartialEq)]
enum Delivery {
    /// Polled by the resource.
    Poll,
    /// Pushed by the home, which trusts the resource's certificate (its app's `push_ca_file`).
    PushTrusted,
    /// Push asked for, but the home does not trust the resource's certificate.
    PushUntrusted,
}

async fn home_to_resource(down_while_emitting: bool, delivery: Delivery) {
    let home_l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    // The resource may be stopped and started again on its address.
    let res_l = stable_listener();
    let (home_issuer, res_issuer) = (issuer_of(&home_l), issuer_of(&res_l));
    let (hd, hdb) = tenant_dir("contoso");
    // The resource's client at the home: federation, and the SSF receiver's client credentials.
    let home = start_on(
        "contoso",
        home_l,
        &hd,
        &hdb,
        &format!(
            "{ADMIN_APP}\n[[apps]]\nclient_id = \"fabrikam\"\nname = \"Fabrikam\"\nclient_secret = \"fabrikam-federation-secret\"\nredirect_uris = [\"{res_issuer}/federation/callback\"]\ngrant_types = [\"authorization_code\", \"client_credentials\"]\nscopes = [\"ssf.manage\", \"ssf.read\"]\nfirst_party = true\npartner_tenant = true\n{}",
            if delivery == Delivery::PushTrusted {
                format!("push_ca_file = \"{}\"\n", fixtures().ca.display())
            } else {
                String::new()
            }
        ),
    )
    .await;
    add_user(&home, BOB, BOB_PW, false).await;
    let policies = crate::risk::policies_copy("fabrikam");
    let (rd, rdb) = tenant_dir("fabrikam");
    let res_port = res_l.local_addr().unwrap().port();
    let resource_extra = partner_toml(
        &home_issuer,
        &crate::risk::resource_lines(
            &policies,
            &format!(
                "{TRUSTED}\nshared_signals = true\nshared_signals_delivery = \"{}\"",
                if delivery == Delivery::Poll {
                    "poll"
                } else {
                    "push"
                }
            ),
        ),
    );
    let resource = start_on("fabrikam", res_l, &rd, &rdb, &resource_extra).await;
    invite(&resource, BOB, "contoso").await;
    let p = Pair { home, resource };
    let rt = refresh_token_of(&p, BOB, BOB_PW).await;
    let Pair { home, resource } = p;
    let stream = receiving(resource.state(), "contoso", 10, |r| r.stream_id.is_some())
        .await
        .and_then(|r| r.stream_id);
    assert!(
        stream.is_some(),
        "the resource set its stream up at the home"
    );
    if delivery != Delivery::Poll {
        // Pushed and verified, or (untrusted) polled after the verification did not come.
        let settled = receiving(resource.state(), "contoso", 15, |r| {
            r.verified_at.is_some() || r.poll_url.is_some()
        })
        .await;
        let r = settled.expect("the stream was verified or fell back to polling");
        assert_eq!(
            r.poll_url.is_none(),
            delivery == Delivery::PushTrusted,
            "{r:?}"
        );
        let kept = home
            .state()
            .store
            .ssf_stream(stream.as_deref().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            kept.delivery_method,
            if delivery == Delivery::PushTrusted {
                "urn:ietf:rfc:8935"
            } else {
                "urn:ietf:rfc:8936"
            }
        );
    }
    let mut resource = Some(resource);
    if down_while_emitting && let Some(r) = resource.take() {
        r.tenant.shutdown().await;
    }
    let bob = home
        .state()
        .store
        .user_by_email(BOB)
        .await
        .unwrap()
        .unwrap();
    let r = backchannel()
        .post(home.url("/v1.0/identityProtection/riskyUsers/confirmCompromised"))
        .bearer_auth(admin_token(&home).await)
        .json(&json!({ "userIds": [bob.id] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    if down_while_emitting {
        // Two events while the resource is away: applied out of order, the second (risk
        // dismissed) would leave bob's held risk high; in order, his grants end and his risk
        // ends up dismissed.
        dismiss(&home, &bob.id).await;
        // The home has emitted by now; the resource comes back on its port and database.
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        resource = Some(
            start_on(
                "fabrikam",
                std::net::TcpListener::bind(("127.0.0.1", res_port)).unwrap(),
                &rd,
                &rdb,
                &resource_extra,
            )
            .await,
        );
    }
    let resource = resource.unwrap();
    let s = resource.state();
    let started = std::time::Instant::now();
    let mut ended = false;
    let held = if down_while_emitting {
        "\"dismissed\""
    } else {
        "\"high\""
    };
    while started.elapsed() < std::time::Duration::from_secs(10) {
        let guest = s.store.user_by_email(BOB).await.unwrap().unwrap();
        if guest
            .home_user_risk
            .as_deref()
            .is_some_and(|c| c.contains(held))
            && s.store
                .active_grants_of(&guest.id, s.now())
                .await
                .unwrap()
                .is_empty()
        {
            ended = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let guest = s.store.user_by_email(BOB).await.unwrap().unwrap();
    assert!(
        ended,
        "the resource heard of it and ended bob's grants: held {:?}, grants {:?}, home outbox {:#?}",
        guest.home_user_risk,
        s.store.active_grants_of(&guest.id, s.now()).await.unwrap(),
        home.state()
            .store
            .ssf_outbox(stream.as_deref().unwrap(), 100)
            .await
            .unwrap()
    );
    if down_while_emitting {
        // Every SET the home sent about bob was applied, once (none lost, none twice).
        let sent = home
            .state()
            .store
            .ssf_outbox(stream.as_deref().unwrap(), 100)
            .await
            .unwrap();
        let about_bob = sent.iter().filter(|e| e.subject_key == bob.id).count();
        assert!(about_bob >= 2, "{sent:?}");
        let applied = s.store.received_signal_summary().await.unwrap();
        assert_eq!(
            applied[0].events as usize, about_bob,
            "{applied:?} {sent:?}"
        );
    }
    let p = Pair { home, resource };
    assert_eq!(refresh(&p, &rt).await, 400);
    if down_while_emitting {
        return;
    }
    // Bob's home clears his risk (the admin dismisses it): the resource learns it and lets his
    // next sign-in through.
    dismiss(&p.home, &bob.id).await;
    let s = p.resource.state();
    let started = std::time::Instant::now();
    let mut learnt = false;
    while !learnt && started.elapsed() < std::time::Duration::from_secs(10) {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let guest = s.store.user_by_email(BOB).await.unwrap().unwrap();
        learnt = guest
            .home_user_risk
            .as_deref()
            .is_some_and(|c| c.contains("\"dismissed\""));
    }
    assert!(
        learnt,
        "the resource heard that bob's home cleared his risk"
    );
    refresh_token_of(&p, BOB, BOB_PW).await;
}

/// The home's admin dismisses `user_id`'s risk.
async fn dismiss(home: &TestTenant, user_id: &str) {
    let r = backchannel()
        .post(home.url("/v1.0/identityProtection/riskyUsers/dismiss"))
        .bearer_auth(admin_token(home).await)
        .json(&json!({ "userIds": [user_id] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
}

/// The reverse stream, two real tenants end to end: the home opens a (polled) stream at the
/// resource's transmitter with the resource's app for it; the home confirms bob compromised,
/// so the resource blocks his next sign-in; the resource reports the block on that stream and
/// the home records a `partnerReportedRisk` detection from the resource, which names the
/// policy, while no other stream hears of it.
#[tokio::test]
async fn a_block_at_the_resource_is_reported_back_and_recorded_at_the_home() {
    let home_l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let res_l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (home_issuer, res_issuer) = (issuer_of(&home_l), issuer_of(&res_l));
    let (hd, hdb) = tenant_dir("contoso");
    let home = start_on(
        "contoso",
        home_l,
        &hd,
        &hdb,
        &format!(
            "{}{ADMIN_APP}\n[[partners]]\nid = \"fabrikam\"\ndisplay_name = \"Fabrikam\"\nissuer = \"{res_issuer}\"\nclient_id = \"contoso\"\nclient_secret = \"contoso-at-fabrikam\"\nca_file = \"{}\"\ninbound_enabled = false\nshared_signals = true\nshared_signals_delivery = \"poll\"\n",
            home_app_toml(&res_issuer),
            fixtures().ca.display()
        ),
    )
    .await;
    let bob = add_user(&home, BOB, BOB_PW, false).await;
    let policies = crate::risk::policies_copy("fabrikam");
    let (rd, rdb) = tenant_dir("fabrikam");
    let resource = start_on(
        "fabrikam",
        res_l,
        &rd,
        &rdb,
        &format!(
            "{}\n[[apps]]\nclient_id = \"contoso\"\nname = \"Contoso\"\nclient_secret = \"contoso-at-fabrikam\"\ngrant_types = [\"client_credentials\"]\nscopes = [\"ssf.manage\", \"ssf.read\"]\npartner_tenant = true\n",
            partner_toml(
                &home_issuer,
                &crate::risk::resource_lines(
                    &policies,
                    &format!("{TRUSTED}\nreverse_stream_client_id = \"contoso\""),
                ),
            )
        ),
    )
    .await;
    invite(&resource, BOB, "contoso").await;
    // The home's stream at the resource.
    let stream = receiving(home.state(), "fabrikam", 10, |r| r.stream_id.is_some())
        .await
        .and_then(|r| r.stream_id);
    let stream = stream.expect("the home opened its stream at the resource");
    let delivered = resource
        .state()
        .store
        .ssf_stream(&stream)
        .await
        .unwrap()
        .unwrap()
        .events_delivered;
    assert!(
        delivered
            .split(' ')
            .any(|e| e == event_types::SIGN_IN_BLOCKED),
        "{delivered}"
    );

    let r = backchannel()
        .post(home.url("/v1.0/identityProtection/riskyUsers/confirmCompromised"))
        .bearer_auth(admin_token(&home).await)
        .json(&json!({ "userIds": [bob.id] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let p = Pair { home, resource };
    let ended =
        federated_sign_in(&p, &browser(), &rp_authorize(&p.resource, ""), BOB, BOB_PW).await;
    let (page, _) = crate::risk::blocked(ended);
    assert!(page.contains(policy::codes::BLOCKED_MESSAGE), "{page}");

    // The report is in the home's stream at the resource, and in no other.
    let outbox = p
        .resource
        .state()
        .store
        .ssf_outbox(&stream, 10)
        .await
        .unwrap();
    let report = outbox
        .iter()
        .find(|e| e.event_type == event_types::SIGN_IN_BLOCKED)
        .expect("the block is in the home's stream");
    let payload: Value = serde_json::from_str(&report.payload_json).unwrap();
    assert_eq!(payload["sub_id"]["user"]["iss"], p.home.issuer.as_str());
    assert_eq!(payload["sub_id"]["user"]["sub"], bob.id.as_str());
    let event = &payload["events"][event_types::SIGN_IN_BLOCKED];
    assert_eq!(event["error_code"], 53011, "{event}");
    assert!(event["policy"].as_str().is_some_and(|p| !p.is_empty()));
    // Bob tries again at once: blocked again, but the home was just told; no second report.
    let (page, _) = crate::risk::blocked(
        federated_sign_in(&p, &browser(), &rp_authorize(&p.resource, ""), BOB, BOB_PW).await,
    );
    assert!(page.contains(policy::codes::BLOCKED_MESSAGE), "{page}");
    let reports = p
        .resource
        .state()
        .store
        .ssf_outbox(&stream, 10)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.event_type == event_types::SIGN_IN_BLOCKED)
        .count();
    assert_eq!(
        reports,
        1,
        "one report per guest per {} s",
        signin::gate::REPORT_EVERY
    );

    // The home polls it and records it.
    let admin = admin_token(&p.home).await;
    let started = std::time::Instant::now();
    let mut found = Vec::new();
    while found.is_empty() && started.elapsed() < std::time::Duration::from_secs(10) {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let detections: Value = backchannel()
            .get(p.home.url("/v1.0/identityProtection/riskDetections"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        found = detections["value"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["riskEventType"] == "partnerReportedRisk")
            .cloned()
            .collect();
    }
    assert_eq!(found.len(), 1, "the home recorded the partner's report");
    assert_eq!(found[0]["userId"], bob.id.as_str());
    assert_eq!(found[0]["source"], "fabrikam");
    // Acknowledged at the resource: delivered, not pending.
    let counts = p
        .resource
        .state()
        .store
        .ssf_delivery_counts(&stream)
        .await
        .unwrap();
    assert_eq!(counts.pending, 0, "{counts:?}");

    // Both ends show the stream to their administrators: the resource what it sent and where
    // it stands, the home what it received.
    use crate::admin_pages::{administrator, sign_in_to_admin};
    administrator(&p.resource, "admin@fabrikam.test").await;
    let b = browser();
    sign_in_to_admin(&p.resource, &b, "admin@fabrikam.test").await;
    let page = page_text(&b, p.resource.url("/admin/shared-signals")).await;
    let sent = &page[page.find("id=\"sent\"").unwrap()..page.find("id=\"received\"").unwrap()];
    assert!(sent.contains("Contoso (contoso)"), "{sent}");
    assert!(sent.contains(&format!("stream {stream}")), "{sent}");
    assert!(sent.contains("sign-in-blocked"), "{sent}");
    // Delivered: the stream's verification and the report.
    assert!(
        sent.contains("<td>0</td><td>2</td><td>0</td>"),
        "pending, delivered, failed: {sent}"
    );
    assert!(
        sent.contains("<td>sign-in-blocked</td><td>") && sent.contains("<td>delivered</td>"),
        "{sent}"
    );
    administrator(&p.home, crate::admin_pages::ADMIN).await;
    let b = browser();
    sign_in_to_admin(&p.home, &b, crate::admin_pages::ADMIN).await;
    let page = page_text(&b, p.home.url("/admin/shared-signals")).await;
    let received = &page[page.find("id=\"received\"").unwrap()..];
    assert!(received.contains("Fabrikam"), "{received}");
    assert!(received.contains(&stream), "{received}");
    assert!(
        received.contains("<td>1</td>"),
        "one event applied: {received}"
    );
}
