//! Secrets at rest: what the database holds is sealed, reads open it, values written in clear
//! or under a previous key are resealed, and a value moved to another row does not open.

use std::sync::Arc;

use sqlx::Executor;
use tenantd_store::{SigningKeyRecord, Store, StoreError};

use crate::{Ctx, TestSealer};

const PEM: &str = "-----BEGIN PRIVATE KEY-----\nsecret-key\n-----END PRIVATE KEY-----\n";

fn key(kid: &str) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: kid.to_owned(),
        alg: "ES256".to_owned(),
        private_key_pem: PEM.to_owned(),
        created_at: 100,
        retired_at: None,
    }
}

async fn raw(url: &str, sql: &str) -> Vec<String> {
    let pool = crate::raw_pool(url).await;
    let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    rows.into_iter().map(|(v,)| v).collect()
}

pub async fn secrets_are_sealed_in_the_database(ctx: Ctx) {
    let store = &ctx.store;
    store.insert_signing_key(&key("es-1")).await.unwrap();
    store
        .insert_user(&crate::new_user("u1", "u1@contoso.test"))
        .await
        .unwrap();
    store
        .add_unconfirmed_totp("m1", "u1", "JBSWY3DPEHPK3PXP", 100)
        .await
        .unwrap();
    assert_eq!(
        store.code_sealing_secret("code-secret", 100).await.unwrap(),
        "code-secret"
    );
    assert_eq!(
        store
            .tenant_secret("leak", "hmac-secret", 100)
            .await
            .unwrap(),
        "hmac-secret"
    );

    assert_eq!(store.signing_keys().await.unwrap()[0].private_key_pem, PEM);
    let totp = store.unconfirmed_totp("u1").await.unwrap().unwrap();
    assert_eq!(totp.secret, "JBSWY3DPEHPK3PXP");

    for (sql, clear) in [
        ("SELECT private_key_pem FROM signing_keys", PEM),
        ("SELECT secret FROM mfa_methods", "JBSWY3DPEHPK3PXP"),
        ("SELECT secret FROM code_sealing_keys", "code-secret"),
        ("SELECT value FROM tenant_secrets", "hmac-secret"),
    ] {
        let stored = raw(&ctx.url, sql).await;
        assert_eq!(stored.len(), 1, "{sql}");
        assert!(stored[0].starts_with("test:k1:"), "{sql}: {}", stored[0]);
        assert!(
            !stored[0].contains(clear),
            "{sql} holds the secret in clear"
        );
    }
}

pub async fn clear_values_and_previous_keys_are_resealed(ctx: Ctx) {
    ctx.store.insert_signing_key(&key("es-1")).await.unwrap();
    // A value an earlier version wrote in clear.
    let pool = crate::raw_pool(&ctx.url).await;
    pool.execute(
        "INSERT INTO tenant_secrets (name, value, created_at) VALUES ('old', 'in-clear', 1)",
    )
    .await
    .unwrap();
    pool.close().await;
    assert!(matches!(
        ctx.store.tenant_secret("old", "new", 2).await,
        Err(StoreError::Corrupt(_))
    ));
    let report = ctx.store.reseal_secrets().await.unwrap();
    assert!(report.contains(&("tenant_secrets", 1)), "{report:?}");
    assert!(report.contains(&("signing_keys", 0)), "{report:?}");
    assert_eq!(
        ctx.store.tenant_secret("old", "new", 2).await.unwrap(),
        "in-clear"
    );
    assert_eq!(
        ctx.store
            .reseal_secrets()
            .await
            .unwrap()
            .iter()
            .map(|r| r.1)
            .sum::<u64>(),
        0
    );

    // Rotation: the new key seals, the old one still opens until everything is resealed.
    let rotated = Store::connect(
        &ctx.url,
        Arc::new(TestSealer {
            current: "k2",
            previous: vec!["k1"],
        }),
    )
    .await
    .unwrap();
    assert_eq!(
        rotated.signing_keys().await.unwrap()[0].private_key_pem,
        PEM
    );
    let report = rotated.reseal_secrets().await.unwrap();
    assert!(report.contains(&("signing_keys", 1)), "{report:?}");
    assert!(report.contains(&("tenant_secrets", 1)), "{report:?}");
    rotated.close().await;
    let stored = raw(&ctx.url, "SELECT private_key_pem FROM signing_keys").await;
    assert!(stored[0].starts_with("test:k2:"), "{}", stored[0]);

    // Without the old key, nothing sealed under it remained; with only an unknown key,
    // reading and resealing refuse rather than guess.
    let only_new = Store::connect(
        &ctx.url,
        Arc::new(TestSealer {
            current: "k2",
            previous: Vec::new(),
        }),
    )
    .await
    .unwrap();
    assert_eq!(
        only_new.signing_keys().await.unwrap()[0].private_key_pem,
        PEM
    );
    only_new.close().await;
    let stranger = Store::connect(
        &ctx.url,
        Arc::new(TestSealer {
            current: "k3",
            previous: Vec::new(),
        }),
    )
    .await
    .unwrap();
    assert!(matches!(
        stranger.signing_keys().await,
        Err(StoreError::Corrupt(m)) if m.contains("k2")
    ));
    assert!(matches!(
        stranger.reseal_secrets().await,
        Err(StoreError::Corrupt(_))
    ));
    stranger.close().await;
}

pub async fn a_sealed_value_does_not_open_in_another_row(ctx: Ctx) {
    ctx.store.insert_signing_key(&key("es-1")).await.unwrap();
    let pool = crate::raw_pool(&ctx.url).await;
    pool.execute(
        "INSERT INTO signing_keys (kid, alg, private_key_pem, created_at, retired_at) \
         SELECT 'es-2', alg, private_key_pem, 101, 102 FROM signing_keys WHERE kid = 'es-1'",
    )
    .await
    .unwrap();
    pool.close().await;
    assert!(matches!(
        ctx.store.signing_keys().await,
        Err(StoreError::Corrupt(m)) if m.contains("es-2")
    ));
}
