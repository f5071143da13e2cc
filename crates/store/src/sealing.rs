//! Secrets at rest. The few secrets the tenant must read back in clear — signing keys, TOTP
//! keys, the key authorization codes are sealed with, the tenant's HMAC keys — are sealed by a
//! [`Sealer`] (the tenant's master key) before they are written and opened after they are read,
//! so a copy of the database alone reveals none of them. Each value is sealed for its place
//! (table and row id), so a sealed value moved to another row does not open.
//!
//! The store calls the sealer in the functions that read and write those columns, so no caller
//! can forget to. [`Store::reseal_secrets`] brings every value under the current master key
//! (values written in clear by an earlier version, or under a previous key).

use std::fmt;

use crate::db::query_assembled;
use crate::{Store, StoreError};

/// Seals and opens the secret columns: the tenant's master key.
pub trait Sealer: Send + Sync + fmt::Debug {
    /// `plaintext` sealed under the current master key for `place` (e.g. `signing_keys/<kid>`).
    fn seal(&self, place: &str, plaintext: &str) -> String;
    /// The plaintext of a value stored at `place`.
    fn open(&self, place: &str, stored: &str) -> Result<Opened, SealError>;
    /// The prefix every value sealed under the current master key starts with (values that
    /// do not start with it need resealing).
    fn current_prefix(&self) -> String;
}

/// An opened secret.
pub struct Opened {
    /// The secret.
    pub plaintext: String,
    /// Whether it was sealed under the current master key (false: a previous one).
    pub current: bool,
}

impl fmt::Debug for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opened")
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

/// Why a stored value did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The value is not sealed (written in clear by an earlier version).
    #[error("it is stored in clear")]
    Clear,
    /// Sealed under a master key that is not configured.
    #[error("it is sealed with master key {0:?}, which is not configured")]
    UnknownKey(String),
    /// The value was altered, truncated, or sealed for another place.
    #[error("it does not open: altered, or sealed for another row")]
    Altered,
}

/// The secret columns: `(table, id column, secret column)`.
const COLUMNS: [(&str, &str, &str); 4] = [
    ("signing_keys", "kid", "private_key_pem"),
    ("mfa_methods", "id", "secret"),
    ("code_sealing_keys", "id", "secret"),
    ("tenant_secrets", "name", "value"),
];

/// What [`Store::reseal_secrets`] did: `(table, values resealed)`, for each table.
pub type Resealed = Vec<(&'static str, u64)>;

/// The place a secret is sealed for.
pub(crate) fn place(table: &str, id: &str) -> String {
    format!("{table}/{id}")
}

impl Store {
    /// Seals `plaintext` for row `id` of `table`.
    pub(crate) fn seal(&self, table: &str, id: &str, plaintext: &str) -> String {
        self.sealer.seal(&place(table, id), plaintext)
    }

    /// Opens the value stored in row `id` of `table`. A value in clear, under an unknown key
    /// or altered is [`StoreError::Corrupt`]: the tenant reseals everything at start-up, so
    /// one found later was put there by something other than tenantd.
    pub(crate) fn open(&self, table: &str, id: &str, stored: &str) -> Result<String, StoreError> {
        self.sealer
            .open(&place(table, id), stored)
            .map(|o| o.plaintext)
            .map_err(|e| StoreError::Corrupt(format!("{table} row {id:?}: the secret: {e}")))
    }

    /// Seals every secret that is not sealed under the current master key: values in clear
    /// (from a version before sealing) and values under a previous key (after a rotation).
    /// Each is replaced only if it is still the value read, so replicas doing this together
    /// agree. A value that does not open (unknown key, altered) stops it with
    /// [`StoreError::Corrupt`] naming the row.
    pub async fn reseal_secrets(&self) -> Result<Resealed, StoreError> {
        let prefix = self.sealer.current_prefix();
        // The length is a number this function computed, written into the text because
        // PostgreSQL's substr takes an int4 and bound parameters are int8.
        let prefix_len = prefix.len();
        let mut report = Vec::new();
        for (table, id_col, col) in COLUMNS {
            let stale: Vec<(String, String)> = query_assembled(format!(
                "SELECT {id_col}, {col} FROM {table} WHERE substr({col}, 1, {prefix_len}) <> $1"
            ))
            .bind(&prefix)
            .fetch_all(&self.db)
            .await?;
            let mut count = 0;
            for (id, stored) in stale {
                let plaintext = match self.sealer.open(&place(table, &id), &stored) {
                    Ok(opened) => opened.plaintext,
                    Err(SealError::Clear) => stored.clone(),
                    Err(e) => {
                        return Err(StoreError::Corrupt(format!(
                            "{table} row {id:?}: the secret: {e}"
                        )));
                    }
                };
                let sealed = self.seal(table, &id, &plaintext);
                let done = query_assembled(format!(
                    "UPDATE {table} SET {col} = $1 WHERE {id_col} = $2 AND {col} = $3"
                ))
                .bind(&sealed)
                .bind(&id)
                .bind(&stored)
                .execute(&self.db)
                .await?;
                count += done.rows_affected();
            }
            report.push((table, count));
        }
        Ok(report)
    }
}
