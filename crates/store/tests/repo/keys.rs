//! Signing keys.

use tenantd_store::{SigningKeyRecord, StoreError};

use crate::Ctx;

fn key(kid: &str, alg: &str, created_at: i64) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: kid.to_owned(),
        alg: alg.to_owned(),
        private_key_pem: format!("-----BEGIN PRIVATE KEY-----\n{kid}\n-----END PRIVATE KEY-----\n"),
        created_at,
        retired_at: None,
    }
}

pub async fn rotation_keeps_old_key_until_deleted(ctx: Ctx) {
    let store = &ctx.store;
    store
        .insert_signing_key(&key("es-1", "ES256", 100))
        .await
        .unwrap();
    store
        .insert_signing_key(&key("rs-1", "RS256", 110))
        .await
        .unwrap();
    assert!(matches!(
        store.insert_signing_key(&key("es-1", "ES256", 100)).await,
        Err(StoreError::Conflict(_))
    ));

    store
        .rotate_signing_key("ES256", &key("es-2", "ES256", 200), 200)
        .await
        .unwrap();
    let keys = store.signing_keys().await.unwrap();
    let kids: Vec<(&str, Option<i64>)> = keys
        .iter()
        .map(|k| (k.kid.as_str(), k.retired_at))
        .collect();
    assert_eq!(kids, [("es-1", Some(200)), ("rs-1", None), ("es-2", None)]);
    assert_eq!(
        keys[0].private_key_pem,
        key("es-1", "ES256", 100).private_key_pem
    );
    assert!(
        !format!("{:?}", keys[0]).contains("BEGIN"),
        "Debug hides the private key"
    );

    assert_eq!(
        store.delete_signing_keys_retired_before(200).await.unwrap(),
        0
    );
    assert_eq!(store.signing_keys().await.unwrap().len(), 3);
    assert_eq!(
        store.delete_signing_keys_retired_before(201).await.unwrap(),
        1
    );
    let kids: Vec<String> = store
        .signing_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.kid)
        .collect();
    assert_eq!(kids, ["rs-1", "es-2"]);
}

pub async fn rotation_with_taken_kid_changes_nothing(ctx: Ctx) {
    let store = &ctx.store;
    store
        .insert_signing_key(&key("es-1", "ES256", 100))
        .await
        .unwrap();
    let err = store
        .rotate_signing_key("ES256", &key("es-1", "ES256", 200), 200)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let keys = store.signing_keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].retired_at, None, "the old key stays active");
}

/// One active key per algorithm: a second one (a replica starting at the same moment) is a
/// conflict and changes nothing; a retired one and another algorithm's are fine.
pub async fn one_active_key_per_algorithm(ctx: Ctx) {
    let store = &ctx.store;
    store
        .insert_signing_key(&key("a1", "ES256", 100))
        .await
        .unwrap();
    assert!(matches!(
        store.insert_signing_key(&key("a2", "ES256", 100)).await,
        Err(StoreError::Conflict(_))
    ));
    store
        .insert_signing_key(&key("r1", "RS256", 100))
        .await
        .unwrap();
    let mut retired = key("old", "ES256", 50);
    retired.retired_at = Some(90);
    store.insert_signing_key(&retired).await.unwrap();
    let kids: Vec<String> = store
        .signing_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.kid)
        .collect();
    assert!(kids.contains(&"a1".to_owned()) && !kids.contains(&"a2".to_owned()));
    assert_eq!(kids.len(), 3);
}
