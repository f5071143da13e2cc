//! Security events from partners: applied once, in one transaction with what they change.

use tenantd_store::{GuestChange, SignalApplied};

use crate::{Ctx, create_grant, grant, new_guest, session};

pub async fn a_partner_event_is_applied_once(ctx: Ctx) {
    let store = &ctx.store;
    store
        .invite_guest(&new_guest("g1", "bob@partner.example", "p1"), "inv1", None)
        .await
        .unwrap();
    store
        .create_session(&session("s1", "g1", 10_000))
        .await
        .unwrap();
    create_grant(store, &grant("gr1", "g1", Some("s1"), true)).await;
    assert_eq!(store.active_grants_of("g1", 200).await.unwrap().len(), 1);
    assert!(
        store
            .active_grants_of("g1", 10_000)
            .await
            .unwrap()
            .is_empty(),
        "expired"
    );

    let change = GuestChange {
        guest_id: Some("g1".into()),
        home_user_risk: Some(r#"{"level":"high"}"#.into()),
        end_sign_ins: true,
    };
    assert_eq!(
        store
            .apply_partner_signal("p1", "jti-1", &change, 200)
            .await
            .unwrap(),
        SignalApplied::Now {
            sessions: 1,
            grants: 1
        }
    );
    let g1 = store.user_by_id("g1").await.unwrap().unwrap();
    assert_eq!(g1.home_user_risk.as_deref(), Some(r#"{"level":"high"}"#));
    assert!(store.active_grants_of("g1", 200).await.unwrap().is_empty());
    assert!(
        store
            .session_by_id("s1")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );

    // The same event again changes nothing, even with other content; another partner's
    // event of the same id is its own.
    let lower = GuestChange {
        home_user_risk: Some(r#"{"level":"low"}"#.into()),
        ..change.clone()
    };
    assert_eq!(
        store
            .apply_partner_signal("p1", "jti-1", &lower, 300)
            .await
            .unwrap(),
        SignalApplied::Before
    );
    let g1 = store.user_by_id("g1").await.unwrap().unwrap();
    assert_eq!(g1.home_user_risk.as_deref(), Some(r#"{"level":"high"}"#));
    // A partner changes only its own users' risk.
    assert_eq!(
        store
            .apply_partner_signal("p2", "jti-1", &lower, 300)
            .await
            .unwrap(),
        SignalApplied::Now {
            sessions: 0,
            grants: 0
        }
    );
    let g1 = store.user_by_id("g1").await.unwrap().unwrap();
    assert_eq!(g1.home_user_risk.as_deref(), Some(r#"{"level":"high"}"#));

    assert!(store.received_before("p1", "jti-1").await.unwrap());
    assert!(!store.received_before("p1", "jti-2").await.unwrap());
    let summary = store.received_signal_summary().await.unwrap();
    assert_eq!(
        summary
            .iter()
            .map(|r| (r.partner_id.as_str(), r.events, r.last_received_at))
            .collect::<Vec<_>>(),
        [("p1", 1, Some(200)), ("p2", 1, Some(300))]
    );
    assert_eq!(store.purge_received_signals(250).await.unwrap(), 1);
    assert_eq!(store.purge_received_signals(1_000).await.unwrap(), 1);
}

pub async fn a_receiving_stream_is_kept_per_partner(ctx: Ctx) {
    let store = &ctx.store;
    assert_eq!(store.receiving_stream("p1").await.unwrap(), None);
    store
        .put_receiving_stream("p1", None, None, None, 100)
        .await
        .unwrap();
    store
        .put_receiving_stream("p1", Some("s-1"), Some("https://p1.test/poll"), None, 200)
        .await
        .unwrap();
    let s = store.receiving_stream("p1").await.unwrap().unwrap();
    assert_eq!(
        (
            s.stream_id.as_deref(),
            s.poll_url.as_deref(),
            s.created_at,
            s.updated_at
        ),
        (Some("s-1"), Some("https://p1.test/poll"), 100, 200)
    );
    assert_eq!(store.receiving_stream("p2").await.unwrap(), None);

    // The verification asked for: only its own state marks it come.
    assert_eq!((s.verify_state, s.verified_at), (None, None));
    store
        .put_receiving_stream("p1", Some("s-1"), None, Some("st-1"), 300)
        .await
        .unwrap();
    assert!(!store.receiving_verified("p1", "st-0", 300).await.unwrap());
    assert!(!store.receiving_verified("p2", "st-1", 300).await.unwrap());
    let s = store.receiving_stream("p1").await.unwrap().unwrap();
    assert_eq!(
        (s.verify_state.as_deref(), s.verified_at),
        (Some("st-1"), None)
    );
    assert!(store.receiving_verified("p1", "st-1", 300).await.unwrap());
    let s = store.receiving_stream("p1").await.unwrap().unwrap();
    assert_eq!(s.verified_at, Some(300));
    // The stream set up again asks anew, and forgets the last one's arrival.
    store
        .put_receiving_stream("p1", Some("s-1"), None, Some("st-2"), 400)
        .await
        .unwrap();
    let s = store.receiving_stream("p1").await.unwrap().unwrap();
    assert_eq!(
        (s.verify_state.as_deref(), s.verified_at),
        (Some("st-2"), None)
    );
}
