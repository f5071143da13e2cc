//! Whole-store behaviour: reopening, purging, corrupt rows.

use sqlx::{Connection, Executor};
use tenantd_store::{Interaction, SigningKeyRecord, Store, StoreError};

use crate::{Ctx, code, grant, new_user, refresh, session, user_with_grant};

pub async fn survives_reopen(ctx: Ctx) {
    let store = &ctx.store;
    store.ping().await.unwrap();
    user_with_grant(store).await;
    store
        .create_session(&session("s1", "u1", 5_000))
        .await
        .unwrap();
    store
        .sync_config_apps(&[("app-1".to_owned(), "{}".to_owned())], 100)
        .await
        .unwrap();
    let k = SigningKeyRecord {
        kid: "k1".to_owned(),
        alg: "ES256".to_owned(),
        private_key_pem: "pem".to_owned(),
        created_at: 100,
        retired_at: None,
    };
    store.insert_signing_key(&k).await.unwrap();
    store.close().await;
    assert!(store.ping().await.is_err(), "closed store must not answer");

    let reopened = Store::connect(&ctx.url).await.unwrap();
    assert_eq!(reopened.backend(), store.backend());
    reopened.ping().await.unwrap();
    assert_eq!(
        reopened
            .user_by_email("U1@example.com")
            .await
            .unwrap()
            .unwrap()
            .id,
        "u1"
    );
    assert!(
        reopened
            .session_by_token_hash("hash-of-s1", 200)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(reopened.app_records().await.unwrap().len(), 1);
    assert_eq!(reopened.signing_keys().await.unwrap(), [k]);
    assert!(matches!(
        reopened.redeem_code("c1", 120).await.unwrap(),
        tenantd_store::CodeRedemption::Redeemed { .. }
    ));
    reopened.close().await;
}

pub async fn purge_expired_removes_only_dead_rows(ctx: Ctx) {
    let store = &ctx.store;
    store
        .insert_user(&new_user("u1", "u1@example.com"))
        .await
        .unwrap();
    // Dead at 1_000: expired grant (with its live code and token), code, token, session,
    // interaction, jti, revoked access token. Alive: the same with later expiries.
    let mut dead_grant = grant("g-dead", "u1", None, false);
    dead_grant.expires_at = 1_000;
    store
        .create_grant_with_code(&dead_grant, &code("c-of-dead", "g-dead", 2_000))
        .await
        .unwrap();
    store
        .insert_refresh_token(&refresh("r-of-dead", "g-dead", 2_000))
        .await
        .unwrap();
    store
        .create_grant_with_code(
            &grant("g-live", "u1", None, false),
            &code("c-dead", "g-live", 999),
        )
        .await
        .unwrap();
    store
        .insert_refresh_token(&refresh("r-dead", "g-live", 1_000))
        .await
        .unwrap();
    store
        .insert_refresh_token(&refresh("r-live", "g-live", 1_001))
        .await
        .unwrap();
    store
        .create_session(&session("s-dead", "u1", 1_000))
        .await
        .unwrap();
    store
        .create_session(&session("s-live", "u1", 1_001))
        .await
        .unwrap();
    for (id, expires_at) in [("i-dead", 1_000), ("i-live", 1_001)] {
        let i = Interaction {
            id: id.to_owned(),
            request_json: "{}".to_owned(),
            created_at: 1,
            expires_at,
        };
        store.create_interaction(&i).await.unwrap();
    }
    store
        .remember_jti("app-1", "j-dead", 1_000, 100)
        .await
        .unwrap();
    store
        .remember_jti("app-1", "j-live", 1_001, 100)
        .await
        .unwrap();
    store.revoke_access_token("a-dead", 1_000).await.unwrap();
    store.revoke_access_token("a-live", 1_001).await.unwrap();

    // grant + its code + its token, code, token, session, interaction, jti, access token
    assert_eq!(store.purge_expired(1_000).await.unwrap(), 9);
    assert_eq!(store.purge_expired(1_000).await.unwrap(), 0);

    assert_eq!(store.grant("g-dead").await.unwrap(), None);
    assert_eq!(store.refresh_token("r-of-dead").await.unwrap(), None);
    assert_eq!(store.refresh_token("r-dead").await.unwrap(), None);
    assert!(store.grant("g-live").await.unwrap().is_some());
    assert!(store.refresh_token("r-live").await.unwrap().is_some());
    assert_eq!(
        store.redeem_code("c-dead", 100).await.unwrap(),
        tenantd_store::CodeRedemption::NotFound
    );
    assert!(store.session_by_id("s-dead").await.unwrap().is_none());
    assert!(store.session_by_id("s-live").await.unwrap().is_some());
    assert!(store.interaction("i-dead", 0).await.unwrap().is_none());
    assert!(store.interaction("i-live", 0).await.unwrap().is_some());
    assert!(!store.access_token_revoked("a-dead").await.unwrap());
    assert!(store.access_token_revoked("a-live").await.unwrap());
    // j-live is still remembered, j-dead was forgotten.
    assert!(
        !store
            .remember_jti("app-1", "j-live", 1_001, 100)
            .await
            .unwrap()
    );
    assert!(
        store
            .remember_jti("app-1", "j-dead", 5_000, 100)
            .await
            .unwrap()
    );
}

pub async fn corrupt_rows_are_reported(ctx: Ctx) {
    let store = &ctx.store;
    store
        .insert_user(&new_user("u1", "u1@example.com"))
        .await
        .unwrap();
    store
        .create_session(&session("s1", "u1", 5_000))
        .await
        .unwrap();
    let mut raw = sqlx::AnyConnection::connect(&ctx.url).await.unwrap();
    raw.execute("UPDATE sessions SET amr = 'not json' WHERE id = 's1'")
        .await
        .unwrap();
    raw.execute("UPDATE users SET status = 'frozen' WHERE id = 'u1'")
        .await
        .unwrap();
    raw.close().await.unwrap();

    let err = store.session_by_id("s1").await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt(m) if m.contains("amr")),
        "{err:?}"
    );
    let err = store.user_by_id("u1").await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt(m) if m.contains("frozen")),
        "{err:?}"
    );
    assert!(matches!(
        store.list_users().await,
        Err(StoreError::Corrupt(_))
    ));
}
