//! Browser sessions and interactions.

use tenantd_store::{Interaction, StoreError};

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

pub async fn revoke_user_sessions_counts(ctx: Ctx) {
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

    assert_eq!(store.revoke_user_sessions("u1", 200).await.unwrap(), 2);
    assert_eq!(store.revoke_user_sessions("u1", 201).await.unwrap(), 0);
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
