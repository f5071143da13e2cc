//! The leaked-credentials corpus (`leaked_credentials`), users' leak fingerprints
//! (`leak_fingerprints`) and the tenant's own secrets (`tenant_secrets`).
//!
//! The corpus holds SHA-1 hashes (40 uppercase hex digits), never passwords; an entry with an
//! email is a credential pair (that address with that password), one without is a password
//! seen leaked for anyone.

use std::collections::HashMap;

use crate::db::{query, query_assembled};
use crate::{Store, StoreError};

/// One corpus entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeakedCredential {
    /// SHA-1 of the password, 40 uppercase hex digits.
    pub sha1: String,
    /// For a credential pair, the lowercased email; `None` for a password-only entry.
    pub email: Option<String>,
    /// How often the source saw it (1 when it does not say).
    pub count: i64,
}

/// Rows per INSERT statement: 5 parameters each stays far below both backends' limits.
const IMPORT_BATCH: usize = 400;

/// The table of the tenant's own secrets, whose `value` is sealed.
const TABLE: &str = "tenant_secrets";

impl Store {
    /// Adds `entries` to the corpus in one transaction (in multi-row batches), keeping the
    /// first import of an entry already present. Returns how many were new. `source` (a file
    /// name) and `now` are kept with each new entry.
    pub async fn import_leaked_credentials(
        &self,
        entries: &[LeakedCredential],
        source: &str,
        now: i64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut new = 0;
        for batch in entries.chunks(IMPORT_BATCH) {
            let values: Vec<String> = (0..batch.len())
                .map(|i| {
                    let b = i * 5;
                    format!(
                        "(${}, ${}, ${}, ${}, ${})",
                        b + 1,
                        b + 2,
                        b + 3,
                        b + 4,
                        b + 5
                    )
                })
                .collect();
            let sql = format!(
                "INSERT INTO leaked_credentials (sha1, email, seen_count, source, imported_at) \
                 VALUES {} ON CONFLICT (sha1, email) DO NOTHING",
                values.join(", ")
            );
            let mut query = query_assembled(sql);
            for e in batch {
                query = query
                    .bind(e.sha1.to_ascii_uppercase())
                    .bind(
                        e.email
                            .as_deref()
                            .map(str::to_lowercase)
                            .unwrap_or_default(),
                    )
                    .bind(e.count)
                    .bind(source)
                    .bind(now);
            }
            new += query.execute(&mut tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(new)
    }

    /// Whether a password with this SHA-1 is in the corpus for `email`: as a password-only
    /// entry, or as a credential pair with this address.
    pub async fn is_leaked(&self, sha1: &str, email: &str) -> Result<bool, StoreError> {
        let found: Option<(String,)> = query(
            "SELECT sha1 FROM leaked_credentials WHERE sha1 = $1 AND (email = '' OR email = $2) \
             LIMIT 1",
        )
        .bind(sha1.to_ascii_uppercase())
        .bind(email.to_lowercase())
        .fetch_optional(&self.db)
        .await?;
        Ok(found.is_some())
    }

    /// How many entries the corpus holds.
    pub async fn leaked_credentials_count(&self) -> Result<i64, StoreError> {
        let (n,): (i64,) = query("SELECT COUNT(*) FROM leaked_credentials")
            .fetch_one(&self.db)
            .await?;
        Ok(n)
    }

    /// Sets a user's leak fingerprint. [`StoreError::NotFound`] if there is no such user.
    pub async fn set_leak_fingerprint(
        &self,
        user_id: &str,
        fingerprint: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        query(
            "INSERT INTO leak_fingerprints (user_id, fingerprint, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id) DO UPDATE SET fingerprint = excluded.fingerprint, \
             updated_at = excluded.updated_at",
        )
        .bind(user_id)
        .bind(fingerprint)
        .bind(now)
        .execute(&self.db)
        .await
        .map_err(crate::risk::not_found_or_db)?;
        Ok(())
    }

    /// A user's leak fingerprint and when it was last set (unix seconds), if one ever was.
    pub async fn leak_fingerprint(
        &self,
        user_id: &str,
    ) -> Result<Option<(String, i64)>, StoreError> {
        let row: Option<(String, i64)> =
            query("SELECT fingerprint, updated_at FROM leak_fingerprints WHERE user_id = $1")
                .bind(user_id)
                .fetch_optional(&self.db)
                .await?;
        Ok(row)
    }

    /// The users whose fingerprint is one of `fingerprints`, as `(user_id, fingerprint)` pairs.
    pub async fn users_with_fingerprints(
        &self,
        fingerprints: &[String],
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut found = Vec::new();
        for batch in fingerprints.chunks(IMPORT_BATCH) {
            let placeholders: Vec<String> = (1..=batch.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT user_id, fingerprint FROM leak_fingerprints WHERE fingerprint IN ({}) \
                 ORDER BY user_id",
                placeholders.join(", ")
            );
            let mut query = query_assembled(sql);
            for f in batch {
                query = query.bind(f);
            }
            found.extend(query.fetch_all::<(String, String)>(&self.db).await?);
        }
        Ok(found)
    }

    /// The tenant secret called `name`; if there is none yet, `candidate` is stored and
    /// returned. Concurrent callers (and replicas) all get the one value that was stored first.
    /// A stored secret never changes (resealing changes only its sealed form), so each is read
    /// and opened once per process and kept.
    pub async fn tenant_secret(
        &self,
        name: &str,
        candidate: &str,
        now: i64,
    ) -> Result<String, StoreError> {
        if let Some(value) = self.kept_secrets().get(name) {
            return Ok(value.clone());
        }
        let value = self.read_tenant_secret(name, candidate, now).await?;
        self.kept_secrets().insert(name.to_owned(), value.clone());
        Ok(value)
    }

    fn kept_secrets(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        // A panic while the map was held left it whole: every change to it is one insert.
        self.tenant_secrets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn read_tenant_secret(
        &self,
        name: &str,
        candidate: &str,
        now: i64,
    ) -> Result<String, StoreError> {
        let existing: Option<(String,)> = query("SELECT value FROM tenant_secrets WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.db)
            .await?;
        if let Some((value,)) = existing {
            return self.open(TABLE, name, &value);
        }
        query(
            "INSERT INTO tenant_secrets (name, value, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(self.seal(TABLE, name, candidate))
        .bind(now)
        .execute(&self.db)
        .await?;
        let (value,): (String,) = query("SELECT value FROM tenant_secrets WHERE name = $1")
            .bind(name)
            .fetch_one(&self.db)
            .await?;
        self.open(TABLE, name, &value)
    }
}
