//! Whole-store behaviour: reopening, purging, corrupt rows.

use std::convert::Infallible;

use sqlx::{Connection, Executor};
use tenantd_store::{CodeRedemption, Interaction, SigningKeyRecord, Store, StoreError};

use crate::{Ctx, code, create_grant, grant, new_user, refresh, session, user_with_grant};

pub async fn survives_reopen(ctx: Ctx) {
    let store = &ctx.store;
    store.ping().await.unwrap();
    user_with_grant(store).await;
    assert_eq!(
        store.code_sealing_secret("key-1", 100).await.unwrap(),
        "key-1"
    );
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

    let reopened = Store::connect(&ctx.url, crate::sealer()).await.unwrap();
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
    // Codes issued before the restart open after it (same key), redeem once, and the ones
    // redeemed before stay spent.
    assert_eq!(
        reopened.code_sealing_secret("key-2", 200).await.unwrap(),
        "key-1"
    );
    let no_check = |_: &_, _: &_| Ok::<_, Infallible>(None);
    let issued = grant("g2", "u1", Some("s1"), false);
    assert!(matches!(
        reopened
            .redeem_sealed_code(&code("g2", 160), &issued, 130, no_check)
            .await
            .unwrap(),
        Ok(CodeRedemption::Redeemed)
    ));
    let spent = grant("g1", "u1", Some("s1"), false);
    assert_eq!(reopened.grant("g1").await.unwrap(), Some(spent.clone()));
    assert!(matches!(
        reopened
            .redeem_sealed_code(&code("g1", 160), &spent, 130, no_check)
            .await
            .unwrap(),
        Ok(CodeRedemption::Replayed { .. })
    ));
    reopened.close().await;
}

pub async fn purge_expired_removes_only_dead_rows(ctx: Ctx) {
    let store = &ctx.store;
    store
        .insert_user(&new_user("u1", "u1@example.com"))
        .await
        .unwrap();
    // Dead at 1_000: expired grant (with its live token), token, session, interaction, jti,
    // revoked access token. Alive: the same with later expiries.
    let mut dead_grant = grant("g-dead", "u1", None, false);
    dead_grant.expires_at = 1_000;
    create_grant(store, &dead_grant).await;
    store
        .insert_refresh_token(&refresh("r-of-dead", "g-dead", 2_000))
        .await
        .unwrap();
    create_grant(store, &grant("g-live", "u1", None, false)).await;
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

    // grant + its token, token, session, interaction, jti, access token
    assert_eq!(store.purge_expired(1_000).await.unwrap(), 7);
    assert_eq!(store.purge_expired(1_000).await.unwrap(), 0);

    assert_eq!(store.grant("g-dead").await.unwrap(), None);
    assert_eq!(store.refresh_token("r-of-dead").await.unwrap(), None);
    assert_eq!(store.refresh_token("r-dead").await.unwrap(), None);
    assert!(store.grant("g-live").await.unwrap().is_some());
    assert!(store.refresh_token("r-live").await.unwrap().is_some());
    // A code of the purged grant, live itself, does not bring it back.
    let late = store
        .redeem_sealed_code(&code("g-dead", 2_000), &dead_grant, 1_000, |_, _| {
            Ok::<_, Infallible>(None)
        })
        .await
        .unwrap();
    assert!(matches!(late, Ok(CodeRedemption::Expired)), "{late:?}");
    assert_eq!(store.grant("g-dead").await.unwrap(), None);
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
