//! Token signing keys: `signing_keys`.
//!
//! A key is active while `retired_at` is NULL. Retired keys stay (and stay in the JWKS, the
//! server decides) until [`Store::delete_signing_keys_retired_before`] removes them, so tokens
//! signed just before a rotation still verify.

use crate::db::{from_row, query};
use std::fmt;

use crate::{Store, StoreError};

/// A signing key with its private half. `Debug` leaves out the private key.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    /// Key id (`kid`), caller-chosen (e.g. the RFC 7638 thumbprint).
    pub kid: String,
    /// JWS algorithm, e.g. `ES256`, `RS256`.
    pub alg: String,
    /// The private key as PKCS#8 PEM text.
    pub private_key_pem: String,
    /// Creation time, unix seconds.
    pub created_at: i64,
    /// When it stopped signing, if it did.
    pub retired_at: Option<i64>,
}
from_row!(SigningKeyRecord {
    kid,
    alg,
    private_key_pem,
    created_at,
    retired_at
});

impl fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("private_key_pem", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish()
    }
}

/// The table whose `private_key_pem` is sealed.
const TABLE: &str = "signing_keys";

async fn insert_key(
    executor: impl crate::db::Executor,
    key: &SigningKeyRecord,
    sealed_pem: &str,
) -> Result<(), StoreError> {
    query(
        "INSERT INTO signing_keys (kid, alg, private_key_pem, created_at, retired_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&key.kid)
    .bind(&key.alg)
    .bind(sealed_pem)
    .bind(key.created_at)
    .bind(key.retired_at)
    .execute(executor)
    .await
    .map_err(|e| StoreError::conflict_or_db(e, || format!("signing key exists: {}", key.kid)))?;
    Ok(())
}

impl Store {
    /// All signing keys, active (`retired_at` is `None`) and retired, oldest first.
    pub async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let keys: Vec<SigningKeyRecord> = query(
            "SELECT kid, alg, private_key_pem, created_at, retired_at FROM signing_keys \
             ORDER BY created_at, kid",
        )
        .fetch_all(&self.db)
        .await?;
        keys.into_iter()
            .map(|mut k| {
                k.private_key_pem = self.open(TABLE, &k.kid, &k.private_key_pem)?;
                Ok(k)
            })
            .collect()
    }

    /// Stores a key (e.g. the first one at start-up). [`StoreError::Conflict`] if the kid is
    /// taken.
    pub async fn insert_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError> {
        let sealed = self.seal(TABLE, &key.kid, &key.private_key_pem);
        insert_key(&self.db, key, &sealed).await
    }

    /// In one transaction: retires every active key of `alg` at `now` and stores `new`.
    /// [`StoreError::Conflict`] (and nothing changes) if the new kid is taken.
    pub async fn rotate_signing_key(
        &self,
        alg: &str,
        new: &SigningKeyRecord,
        now: i64,
    ) -> Result<(), StoreError> {
        let sealed = self.seal(TABLE, &new.kid, &new.private_key_pem);
        let mut tx = self.begin_write().await?;
        query("UPDATE signing_keys SET retired_at = $1 WHERE alg = $2 AND retired_at IS NULL")
            .bind(now)
            .bind(alg)
            .execute(&mut tx)
            .await?;
        insert_key(&mut tx, new, &sealed).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes keys retired before `t` (strictly). Returns how many were deleted.
    pub async fn delete_signing_keys_retired_before(&self, t: i64) -> Result<u64, StoreError> {
        let done =
            query("DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND retired_at < $1")
                .bind(t)
                .execute(&self.db)
                .await?;
        Ok(done.rows_affected())
    }
}
