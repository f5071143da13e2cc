//! Shared Signals streams, subjects and the transactional outbox.

use tenantd_store::{
    OUTBOX_DELIVERED, OUTBOX_FAILED, RiskChange, STREAM_ENABLED, STREAM_PAUSED, Signal, StoreError,
    StreamRecord, UserRiskRecord,
};

use crate::{Ctx, create_grant, grant, new_user};

const RLC: &str = "https://schemas.openid.net/secevent/caep/event-type/risk-level-change";
const PUSH: &str = "urn:ietf:rfc:8935";

fn stream(id: &str, client_id: &str, method: &str) -> StreamRecord {
    StreamRecord {
        id: id.to_owned(),
        client_id: client_id.to_owned(),
        aud: format!("https://{client_id}.example"),
        events_requested: RLC.to_owned(),
        events_delivered: RLC.to_owned(),
        description: None,
        delivery_method: method.to_owned(),
        endpoint_url: Some("https://receiver.example/events".to_owned()),
        authorization_header: None,
        status: STREAM_ENABLED.to_owned(),
        reason: None,
        last_seq: 0,
        created_at: 100,
        updated_at: 100,
    }
}

fn signal(user: &str, jti: &str, at: i64) -> Signal {
    Signal {
        user_id: user.to_owned(),
        event_type: RLC.to_owned(),
        payload_json: format!(r#"{{"sub_id":{{"format":"opaque","id":"{user}"}}}}"#),
        jti: jti.to_owned(),
        at,
        to_client: None,
    }
}

fn risk(user: &str, level: &str, at: i64) -> UserRiskRecord {
    UserRiskRecord {
        user_id: user.to_owned(),
        level: level.to_owned(),
        state: "atRisk".to_owned(),
        detail: "none".to_owned(),
        updated_at: at,
    }
}

pub async fn streams_are_managed_and_one_per_app(ctx: Ctx) {
    let store = &ctx.store;
    store
        .create_ssf_stream(&stream("s1", "app-1", PUSH))
        .await
        .unwrap();
    assert!(matches!(
        store.create_ssf_stream(&stream("s2", "app-1", PUSH)).await,
        Err(StoreError::Conflict(_))
    ));
    let mut s = store.ssf_stream("s1").await.unwrap().unwrap();
    assert_eq!(s, stream("s1", "app-1", PUSH));
    s.status = STREAM_PAUSED.to_owned();
    s.reason = Some("maintenance".to_owned());
    s.updated_at = 200;
    store.update_ssf_stream(&s).await.unwrap();
    assert_eq!(store.list_ssf_streams().await.unwrap(), vec![s]);

    store
        .insert_user(&new_user("u1", "u1@example.com"))
        .await
        .unwrap();
    store.add_ssf_subject("s1", "u1", 150).await.unwrap();
    store.add_ssf_subject("s1", "u1", 150).await.unwrap();
    assert!(matches!(
        store.add_ssf_subject("s1", "nobody", 150).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        store.ssf_subjects("s1").await.unwrap(),
        vec!["u1".to_owned()]
    );
    assert!(store.remove_ssf_subject("s1", "u1").await.unwrap());
    assert!(!store.remove_ssf_subject("s1", "u1").await.unwrap());

    assert!(store.delete_ssf_stream("s1").await.unwrap());
    assert!(!store.delete_ssf_stream("s1").await.unwrap());
    assert_eq!(store.ssf_stream("s1").await.unwrap(), None);
}

/// A risk change writes its SET rows in its own transaction: a refused change writes none, and
/// only streams that hear about the user (a subject, or the user uses the partner's app) get one.
pub async fn risk_changes_write_the_outbox_in_their_transaction(ctx: Ctx) {
    let store = &ctx.store;
    store
        .insert_user(&new_user("u1", "u1@example.com"))
        .await
        .unwrap();
    store
        .insert_user(&new_user("u2", "u2@example.com"))
        .await
        .unwrap();
    // u1 signed in at app-1 (the partner of stream s1); s2's partner never saw u1.
    create_grant(store, &grant("g1", "u1", None, false)).await;
    store
        .create_ssf_stream(&stream("s1", "app-1", PUSH))
        .await
        .unwrap();
    store
        .create_ssf_stream(&stream("s2", "app-2", PUSH))
        .await
        .unwrap();

    let change = |user: &str, expected, jti: &str, at| RiskChange {
        record: risk(user, "high", at),
        expected,
        detection: None,
        resolve_active_to: None,
        actor: "system".to_owned(),
        reason: None,
        audit: None,
        signals: vec![signal(user, jti, at)],
    };
    store
        .apply_risk_changes(&[change("u1", None, "j1", 200)])
        .await
        .unwrap();
    // A stale change is refused: its event is not written either.
    assert!(matches!(
        store
            .apply_risk_changes(&[change("u1", None, "j2", 210)])
            .await,
        Err(StoreError::Conflict(_))
    ));
    // u2 is nobody's guest: no stream hears about it.
    store
        .apply_risk_changes(&[change("u2", None, "j3", 220)])
        .await
        .unwrap();
    // Until the receiver of s2 adds it as a subject.
    store.add_ssf_subject("s2", "u2", 225).await.unwrap();
    store
        .apply_risk_changes(&[change("u2", Some(risk("u2", "high", 220)), "j4", 230)])
        .await
        .unwrap();

    let s1 = store.ssf_pending("s1", 10).await.unwrap();
    assert_eq!(
        s1.iter()
            .map(|e| (e.seq, e.jti.as_str()))
            .collect::<Vec<_>>(),
        vec![(1, "j1.1")]
    );
    assert_eq!(s1[0].created_at, 200);
    assert_eq!(s1[0].subject_key, "u1");
    let s2 = store.ssf_pending("s2", 10).await.unwrap();
    assert_eq!(
        s2.iter().map(|e| e.jti.as_str()).collect::<Vec<_>>(),
        vec!["j4.1"]
    );

    // A stream that does not deliver the event type gets nothing.
    let mut other = store.ssf_stream("s1").await.unwrap().unwrap();
    other.events_delivered = "urn:example:other".to_owned();
    store.update_ssf_stream(&other).await.unwrap();
    store
        .record_signals(&[signal("u1", "j5", 240)])
        .await
        .unwrap();
    assert_eq!(store.ssf_pending("s1", 10).await.unwrap().len(), 1);

    // A signal for one partner app reaches that app's stream only, whatever its subjects:
    // u2 is s2's subject and u1 used s1's app, yet only s2 hears of this one about u1.
    let to_app_2 = Signal {
        to_client: Some("app-2".to_owned()),
        ..signal("u1", "j6", 250)
    };
    store.record_signals(&[to_app_2]).await.unwrap();
    assert_eq!(store.ssf_pending("s1", 10).await.unwrap().len(), 1);
    assert_eq!(
        store
            .ssf_pending("s2", 10)
            .await
            .unwrap()
            .iter()
            .map(|e| e.jti.as_str())
            .collect::<Vec<_>>(),
        vec!["j4.1", "j6.2"]
    );
    // Whether app-2's stream heard of u1 lately (the reverse stream's once-per-window rule).
    assert!(
        store
            .ssf_signalled_since("app-2", "u1", RLC, 250)
            .await
            .unwrap()
    );
    assert!(
        !store
            .ssf_signalled_since("app-2", "u1", RLC, 251)
            .await
            .unwrap()
    );
    assert!(
        !store
            .ssf_signalled_since("app-1", "u1", "urn:example:other", 0)
            .await
            .unwrap()
    );
}

/// Poll acknowledges, push retries keep per-subject order, failures are final.
pub async fn delivery_keeps_order_and_state(ctx: Ctx) {
    let store = &ctx.store;
    store
        .insert_user(&new_user("u1", "u1@example.com"))
        .await
        .unwrap();
    store
        .insert_user(&new_user("u2", "u2@example.com"))
        .await
        .unwrap();
    store
        .create_ssf_stream(&stream("s1", "app-1", PUSH))
        .await
        .unwrap();
    store.add_ssf_subject("s1", "u1", 100).await.unwrap();
    store.add_ssf_subject("s1", "u2", 100).await.unwrap();
    store
        .record_signals(&[
            signal("u1", "a", 200),
            signal("u1", "b", 201),
            signal("u2", "c", 202),
        ])
        .await
        .unwrap();
    let due = store.ssf_due_pushes(300, 10).await.unwrap();
    assert_eq!(
        due.iter().map(|e| e.jti.as_str()).collect::<Vec<_>>(),
        vec!["a.1", "c.3"]
    );
    // Two workers: only one claims a due SET.
    assert!(store.ssf_claim_push("s1", "a.1", 200, 330).await.unwrap());
    assert!(!store.ssf_claim_push("s1", "a.1", 200, 330).await.unwrap());
    // a fails once: b (same subject) waits behind it; c is delivered.
    store
        .ssf_mark_retry("s1", "a.1", "HTTP 503", 310)
        .await
        .unwrap();
    assert!(store.ssf_mark_delivered("s1", "c.3", 300).await.unwrap());
    assert!(!store.ssf_mark_delivered("s1", "c.3", 300).await.unwrap());
    assert!(store.ssf_due_pushes(305, 10).await.unwrap().is_empty());
    let due = store.ssf_due_pushes(310, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].jti.as_str(), due[0].attempts), ("a.1", 1));
    assert!(
        store
            .ssf_mark_failed("s1", "a.1", "invalid_request", 311)
            .await
            .unwrap()
    );
    let due = store.ssf_due_pushes(311, 10).await.unwrap();
    assert_eq!(
        due.iter().map(|e| e.jti.as_str()).collect::<Vec<_>>(),
        vec!["b.2"]
    );
    // A paused stream holds its events.
    let mut paused = store.ssf_stream("s1").await.unwrap().unwrap();
    paused.status = STREAM_PAUSED.to_owned();
    store.update_ssf_stream(&paused).await.unwrap();
    assert!(store.ssf_due_pushes(311, 10).await.unwrap().is_empty());

    let counts = store.ssf_delivery_counts("s1").await.unwrap();
    assert_eq!((counts.pending, counts.delivered, counts.failed), (1, 1, 1));
    let all = store.ssf_outbox("s1", 10).await.unwrap();
    let states: Vec<(&str, &str)> = all
        .iter()
        .map(|e| (e.jti.as_str(), e.state.as_str()))
        .collect();
    assert_eq!(
        states,
        vec![
            ("c.3", OUTBOX_DELIVERED),
            ("b.2", "pending"),
            ("a.1", OUTBOX_FAILED)
        ]
    );

    // Settled rows go after their time; pending ones stay.
    assert_eq!(store.purge_ssf_outbox(311).await.unwrap(), 1);
    assert_eq!(store.purge_ssf_outbox(312).await.unwrap(), 1);
    assert_eq!(store.ssf_outbox("s1", 10).await.unwrap().len(), 1);

    // A verification event goes to one stream whatever its subjects.
    let jti = store
        .record_stream_signal("s1", &signal("u1", "v", 400))
        .await
        .unwrap();
    assert_eq!(jti, "v.4");
    assert!(matches!(
        store
            .record_stream_signal("nope", &signal("u1", "w", 400))
            .await,
        Err(StoreError::NotFound)
    ));
}

/// Enrolling and removing an authenticator write their signals with the change; removing
/// only an unconfirmed one writes none.
pub async fn mfa_changes_write_their_signals(ctx: Ctx) {
    let store = &ctx.store;
    store
        .insert_user(&new_user("u1", "u1@example.com"))
        .await
        .unwrap();
    let mut s = stream("s1", "app-1", PUSH);
    s.events_delivered = RLC.to_owned();
    store.create_ssf_stream(&s).await.unwrap();
    store.add_ssf_subject("s1", "u1", 100).await.unwrap();
    store
        .add_unconfirmed_totp("m1", "u1", "secret", 100)
        .await
        .unwrap();
    // Not confirmed: removing it says nothing.
    store
        .delete_totp_signalled("u1", &[signal("u1", "x", 110)])
        .await
        .unwrap();
    assert!(store.ssf_pending("s1", 10).await.unwrap().is_empty());
    store
        .add_unconfirmed_totp("m2", "u1", "secret", 120)
        .await
        .unwrap();
    assert!(
        store
            .confirm_totp_signalled("m2", 4, 130, &[signal("u1", "add", 130)])
            .await
            .unwrap()
    );
    // A second confirmation changes nothing and writes nothing.
    assert!(
        !store
            .confirm_totp_signalled("m2", 5, 131, &[signal("u1", "again", 131)])
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .delete_totp_signalled("u1", &[signal("u1", "del", 140)])
            .await
            .unwrap(),
        1
    );
    let jtis: Vec<String> = store
        .ssf_pending("s1", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.jti)
        .collect();
    assert_eq!(jtis, vec!["add.1".to_owned(), "del.2".to_owned()]);
}

pub async fn a_commit_that_wrote_signals_wakes_the_push_worker(ctx: Ctx) {
    let store = &ctx.store;
    store
        .insert_user(&new_user("u1", "u1@example.com"))
        .await
        .unwrap();
    let woken = || {
        tokio::time::timeout(
            std::time::Duration::from_millis(200),
            store.outbox_written(),
        )
    };
    // A transaction without signals wakes nobody.
    store
        .end_user_sign_ins_signalled("u1", 100, &[])
        .await
        .unwrap();
    assert!(
        woken().await.is_err(),
        "woken by a commit that wrote no signal"
    );
    // One that wrote some wakes the worker once it has committed (the wake-up is kept until
    // the worker next waits).
    store
        .end_user_sign_ins_signalled("u1", 101, &[signal("u1", "j1", 101)])
        .await
        .unwrap();
    assert!(
        woken().await.is_ok(),
        "not woken after signals were committed"
    );
    assert!(woken().await.is_err(), "one commit, one wake-up");
}
