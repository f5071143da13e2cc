//! User risk (Graph `riskyUser`) and its history: `user_risk`, `risk_history`.
//!
//! Level, state and detail are Graph's camelCase strings (`high`, `atRisk`, `none`, ...),
//! stored as given: the server owns and validates the vocabulary.

use crate::db::{DbError, Tx, from_row, query};
use crate::{Store, StoreError};

/// A user's current risk: one row per user whose risk was ever set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRiskRecord {
    /// The user.
    pub user_id: String,
    /// `riskLevel`: `none`, `low`, `medium`, `high` or `hidden`.
    pub level: String,
    /// `riskState`: `none`, `atRisk`, `confirmedCompromised`, `remediated`, `dismissed` or
    /// `confirmedSafe`.
    pub state: String,
    /// `riskDetail`: why the state is what it is (e.g. `adminDismissedAllRiskForUser`).
    pub detail: String,
    /// When it last changed, unix seconds.
    pub updated_at: i64,
}
from_row!(UserRiskRecord {
    user_id,
    level,
    state,
    detail,
    updated_at
});

/// One change of a user's risk, kept forever (while the user exists): who did it and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskHistoryItem {
    /// Store-chosen id: a UUID v7, so within one process later changes have greater ids
    /// (the tie-break for changes in the same second).
    pub id: String,
    /// The user.
    pub user_id: String,
    /// The `riskLevel` set by this change.
    pub level: String,
    /// The `riskState` set by this change.
    pub state: String,
    /// The `riskDetail` set by this change.
    pub detail: String,
    /// Who made the change (an admin's id, or the system component that did it).
    pub actor: String,
    /// Why, in the actor's words, if given.
    pub reason: Option<String>,
    /// When, unix seconds (the record's `updated_at`).
    pub created_at: i64,
}
from_row!(RiskHistoryItem {
    id,
    user_id,
    level,
    state,
    detail,
    actor,
    reason,
    created_at
});

/// Maps a foreign-key violation (the user does not exist) to [`StoreError::NotFound`].
pub(crate) fn not_found_or_db(err: DbError) -> StoreError {
    match &err {
        e if e.is_foreign_key_violation() => StoreError::NotFound,
        _ => StoreError::Database(err),
    }
}

impl Store {
    /// The user's current risk; `None` if it was never set.
    pub async fn user_risk(&self, user_id: &str) -> Result<Option<UserRiskRecord>, StoreError> {
        let record: Option<UserRiskRecord> = query(
            "SELECT user_id, level, state, detail, updated_at FROM user_risk WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_optional(&self.db)
        .await?;
        Ok(record)
    }

    /// Sets a user's current risk to `record` and appends the change to the risk history
    /// (with `actor` and `reason`, at `record.updated_at`), in one transaction.
    /// [`StoreError::NotFound`] (and nothing changes) if there is no such user.
    ///
    /// A low-level primitive: the server changes risk only through
    /// [`Store::apply_risk_changes`], guarded by the status it read.
    pub async fn set_user_risk(
        &self,
        record: &UserRiskRecord,
        actor: &str,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let exists: Option<(String,)> = query("SELECT id FROM users WHERE id = $1")
            .bind(&record.user_id)
            .fetch_optional(&mut tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        write_user_risk(&mut tx, record, actor, reason).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A user's risk changes, newest first (empty for an unknown user).
    pub async fn risk_history(&self, user_id: &str) -> Result<Vec<RiskHistoryItem>, StoreError> {
        let items: Vec<RiskHistoryItem> = query(
            "SELECT id, user_id, level, state, detail, actor, reason, created_at \
             FROM risk_history WHERE user_id = $1 ORDER BY created_at DESC, id DESC",
        )
        .bind(user_id)
        .fetch_all(&self.db)
        .await?;
        Ok(items)
    }

    /// Every user's current risk, most recently changed first.
    pub async fn list_user_risk(&self) -> Result<Vec<UserRiskRecord>, StoreError> {
        let records: Vec<UserRiskRecord> = query(
            "SELECT user_id, level, state, detail, updated_at FROM user_risk \
             ORDER BY updated_at DESC, user_id",
        )
        .fetch_all(&self.db)
        .await?;
        Ok(records)
    }
}

/// Upserts `record` and appends its history line inside `tx`.
pub(crate) async fn write_user_risk(
    tx: &mut Tx,
    record: &UserRiskRecord,
    actor: &str,
    reason: Option<&str>,
) -> Result<(), StoreError> {
    // The foreign keys still guard a user deleted concurrently (PostgreSQL).
    query(
        "INSERT INTO user_risk (user_id, level, state, detail, updated_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (user_id) DO UPDATE SET level = excluded.level, \
             state = excluded.state, detail = excluded.detail, updated_at = excluded.updated_at",
    )
    .bind(&record.user_id)
    .bind(&record.level)
    .bind(&record.state)
    .bind(&record.detail)
    .bind(record.updated_at)
    .execute(&mut *tx)
    .await
    .map_err(not_found_or_db)?;
    query(
        "INSERT INTO risk_history \
             (id, user_id, level, state, detail, actor, reason, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(&record.user_id)
    .bind(&record.level)
    .bind(&record.state)
    .bind(&record.detail)
    .bind(actor)
    .bind(reason)
    .bind(record.updated_at)
    .execute(&mut *tx)
    .await
    .map_err(not_found_or_db)?;
    Ok(())
}
