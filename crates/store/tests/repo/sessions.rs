//! Browser sessions and interactions.

use tenantd_store::{Consumption, Interaction, StoreError};

use crate::{Ctx, new_user, session};

pub async fn session_expiry_and_revocation(ctx: Ctx) {
    let store = &ctx.store;
    store
        .insert_user(&new_user("u1", "u1@example.com"))
        .await
        .unwrap();
    let s = session("s1", "u1", 1_000);
    store.create_session(&s).await.unwrap();
    assert!(matches!(
        store.create_session(&s).await,
        Err(StoreError::Conflict(_))
    ));

    assert_eq!(
        store
            .session_by_token_hash("hash-of-s1", 999)
            .await
            .unwrap(),
        Some(s.clone())
    );
    assert_eq!(
        store
            .session_by_token_hash("hash-of-s1", 1_000)
            .await
            .unwrap(),
        None
    );
    // The session with its user and the user's risk, in one read; the same rules.
    let read = store
        .session_and_user("hash-of-s1", 999)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.session, s);
    assert_eq!(read.user, store.user_by_id("u1").await.unwrap().unwrap());
    assert_eq!(read.user_risk, None);
    let risk = crate::high_risk("u1", 990);
    store.set_user_risk(&risk, "system", None).await.unwrap();
    let read = store
        .session_and_user("hash-of-s1", 999)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.user_risk, Some(risk));
    assert_eq!(
        store.session_and_user("hash-of-s1", 1_000).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .session_by_token_hash("hash-of-other", 500)
            .await
            .unwrap(),
        None
    );

    store
        .create_session(&session("s2", "u1", 1_000))
        .await
        .unwrap();
    assert!(store.revoke_session("s2", 500).await.unwrap());
    assert!(
        !store.revoke_session("s2", 600).await.unwrap(),
        "second revoke is a no-op"
    );
    assert!(!store.revoke_session("nope", 600).await.unwrap());
    assert_eq!(
        store
            .session_by_token_hash("hash-of-s2", 501)
            .await
            .unwrap(),
        None
    );
    let revoked = store.session_by_id("s2").await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(500), "first revocation time kept");
    assert_eq!(revoked.amr, ["pwd", "otp"]);
    // The other session is untouched.
    assert!(
        store
            .session_by_token_hash("hash-of-s1", 501)
            .await
            .unwrap()
            .is_some()
    );
    assert!(store.session_by_id("nope").await.unwrap().is_none());
}

pub async fn ending_a_users_sign_ins_revokes_their_sessions(ctx: Ctx) {
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
        .create_session(&session("a", "u1", 1_000))
        .await
        .unwrap();
    store
        .create_session(&session("b", "u1", 1_000))
        .await
        .unwrap();
    store
        .create_session(&session("c", "u1", 1_000))
        .await
        .unwrap();
    store
        .create_session(&session("d", "u2", 1_000))
        .await
        .unwrap();
    store.revoke_session("c", 150).await.unwrap();

    assert_eq!(store.end_user_sign_ins("u1", 200).await.unwrap().0, 2);
    assert_eq!(store.end_user_sign_ins("u1", 201).await.unwrap().0, 0);
    for id in ["a", "b"] {
        assert_eq!(
            store.session_by_id(id).await.unwrap().unwrap().revoked_at,
            Some(200)
        );
    }
    assert_eq!(
        store.session_by_id("c").await.unwrap().unwrap().revoked_at,
        Some(150)
    );
    assert!(
        store
            .session_by_token_hash("hash-of-d", 300)
            .await
            .unwrap()
            .is_some()
    );
}

pub async fn interactions_expire_and_delete(ctx: Ctx) {
    let store = &ctx.store;
    let i = Interaction {
        id: "i1".to_owned(),
        request_json: r#"{"client_id":"app-1","scope":"openid"}"#.to_owned(),
        created_at: 100,
        expires_at: 700,
    };
    store.create_interaction(&i).await.unwrap();
    assert!(matches!(
        store.create_interaction(&i).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.interaction("i1", 699).await.unwrap(), Some(i.clone()));
    assert_eq!(store.interaction("i1", 700).await.unwrap(), None);
    assert_eq!(store.interaction("nope", 100).await.unwrap(), None);
    assert!(store.delete_interaction("i1").await.unwrap());
    assert!(!store.delete_interaction("i1").await.unwrap());
    assert_eq!(store.interaction("i1", 100).await.unwrap(), None);
}

pub async fn a_finished_sign_in_keeps_its_session_not_its_page(ctx: Ctx) {
    let store = &ctx.store;
    store
        .insert_user(&new_user("u1", "u1@example.com"))
        .await
        .unwrap();
    store
        .create_interaction(&interaction("page", 700))
        .await
        .unwrap();
    store
        .create_interaction(&interaction("other", 700))
        .await
        .unwrap();
    let s1 = session("s1", "u1", 1_000);
    store.finish_sign_in(Some("page"), &s1).await.unwrap();
    assert_eq!(store.interaction("page", 100).await.unwrap(), None);
    assert_eq!(
        store
            .session_by_token_hash("hash-of-s1", 500)
            .await
            .unwrap(),
        Some(s1.clone())
    );
    // A session that cannot be stored changes nothing: the page stays for another try.
    assert!(matches!(
        store.finish_sign_in(Some("other"), &s1).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(store.interaction("other", 100).await.unwrap().is_some());
    // A sign-in kept in no interaction (sealed into its id) only stores its session.
    let s2 = session("s2", "u1", 1_000);
    store.finish_sign_in(None, &s2).await.unwrap();
    assert_eq!(
        store
            .session_by_token_hash("hash-of-s2", 500)
            .await
            .unwrap(),
        Some(s2)
    );
    assert!(store.interaction("other", 100).await.unwrap().is_some());
}

fn interaction(id: &str, expires_at: i64) -> Interaction {
    Interaction {
        id: id.to_owned(),
        request_json: format!(r#"{{"client_id":"app-1","state":"{id}"}}"#),
        created_at: 100,
        expires_at,
    }
}

pub async fn interactions_are_consumed_once(ctx: Ctx) {
    let store = &ctx.store;
    let i1 = interaction("i1", 700);
    let i2 = interaction("i2", 500);
    store.create_interaction(&i1).await.unwrap();
    store.create_interaction(&i2).await.unwrap();

    assert_eq!(
        store.consume_interaction("i1", 200).await.unwrap(),
        Consumption::Consumed(i1.clone())
    );
    // Consumed: hidden from `interaction`, reported (with the request) on every later call.
    assert_eq!(store.interaction("i1", 201).await.unwrap(), None);
    assert_eq!(
        store.consume_interaction("i1", 300).await.unwrap(),
        Consumption::AlreadyConsumed(i1.clone())
    );
    assert_eq!(
        store.consume_interaction("i1", 699).await.unwrap(),
        Consumption::AlreadyConsumed(i1.clone())
    );
    // Expired: not found, consumed or not.
    assert_eq!(
        store.consume_interaction("i1", 700).await.unwrap(),
        Consumption::NotFound
    );
    assert_eq!(
        store.consume_interaction("i2", 500).await.unwrap(),
        Consumption::NotFound
    );
    assert_eq!(
        store.consume_interaction("nope", 100).await.unwrap(),
        Consumption::NotFound
    );
    // The expired attempt did not consume i2: before its expiry it is still there, once.
    assert_eq!(
        store.interaction("i2", 499).await.unwrap(),
        Some(i2.clone())
    );
    assert_eq!(
        store.consume_interaction("i2", 499).await.unwrap(),
        Consumption::Consumed(i2)
    );

    // Consumed interactions are deleted and purged like the others.
    let i3 = interaction("i3", 900);
    store.create_interaction(&i3).await.unwrap();
    store.consume_interaction("i3", 200).await.unwrap();
    assert!(store.delete_interaction("i3").await.unwrap());
    assert_eq!(
        store.consume_interaction("i3", 300).await.unwrap(),
        Consumption::NotFound
    );
    assert_eq!(store.purge_expired(700).await.unwrap(), 2, "i1 and i2");
    assert_eq!(
        store.consume_interaction("i1", 100).await.unwrap(),
        Consumption::NotFound
    );
}

pub async fn concurrent_consumption_has_one_winner(ctx: Ctx) {
    let store = ctx.store.clone();
    let i = interaction("i1", 10_000);
    store.create_interaction(&i).await.unwrap();
    let mut tasks = Vec::new();
    for n in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.consume_interaction("i1", 200 + n).await.unwrap()
        }));
    }
    let mut consumed = 0;
    let mut already = 0;
    for task in tasks {
        match task.await.unwrap() {
            Consumption::Consumed(got) => {
                assert_eq!(got, i);
                consumed += 1;
            }
            Consumption::AlreadyConsumed(got) => {
                assert_eq!(got, i);
                already += 1;
            }
            Consumption::NotFound => panic!("a live interaction was not found"),
        }
    }
    assert_eq!((consumed, already), (1, 7));
}

pub async fn federated_session_round_trips(ctx: Ctx) {
    let store = &ctx.store;
    store
        .insert_user(&new_user("u1", "u1@example.com"))
        .await
        .unwrap();
    let local = session("s-local", "u1", 1_000);
    let mut federated = session("s-fed", "u1", 1_000);
    federated.federation_json = Some(
        r#"{"partner_id":"p1","home_issuer":"https://home.example","user_risk":{"level":"high","state":"atRisk","detail":"none","updated_at":1764000000}}"#
            .to_owned(),
    );
    store.create_session(&local).await.unwrap();
    store.create_session(&federated).await.unwrap();

    for (s, hash) in [(&local, "hash-of-s-local"), (&federated, "hash-of-s-fed")] {
        assert_eq!(
            store
                .session_by_token_hash(hash, 500)
                .await
                .unwrap()
                .as_ref(),
            Some(s)
        );
        assert_eq!(store.session_by_id(&s.id).await.unwrap().as_ref(), Some(s));
    }
    assert_eq!(
        store
            .session_by_id("s-local")
            .await
            .unwrap()
            .unwrap()
            .federation_json,
        None
    );
}
