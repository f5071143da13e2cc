//! Smart lockout's counters (`sign_in_lockouts`): one row per account and source, in the
//! database so every replica and a restart see the same count. The rules are the `risk`
//! crate's; this module stores what they decide, each change one transaction.

use crate::db::query;
use crate::{Store, StoreError};

/// One account's count for one source, as stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LockoutRow {
    /// Wrong passwords since the last lockout or correct password.
    pub failures: i64,
    /// Locked until this unix time (0: never).
    pub locked_until: i64,
    /// Lockouts so far.
    pub lockouts: i64,
}

impl Store {
    /// The count of `account` (a normalized sign-in name) from `source`, if any.
    pub async fn lockout(
        &self,
        account: &str,
        source: &str,
    ) -> Result<Option<LockoutRow>, StoreError> {
        let row: Option<(i64, i64, i64)> = query(
            "SELECT failures, locked_until, lockouts FROM sign_in_lockouts \
             WHERE account = $1 AND source = $2",
        )
        .bind(account)
        .bind(source)
        .fetch_optional(&self.db)
        .await?;
        Ok(row.map(|(failures, locked_until, lockouts)| LockoutRow {
            failures,
            locked_until,
            lockouts,
        }))
    }

    /// Changes the count of `account` from `source` to `change(current)` (a missing row reads
    /// as all zeros) and returns what was stored. One transaction that holds the row from the
    /// first statement on (SQLite: the write lock; PostgreSQL: the row lock a no-op update
    /// takes), so concurrent changes from any replica are each applied once, in turn.
    pub async fn update_lockout(
        &self,
        account: &str,
        source: &str,
        now: i64,
        change: impl FnOnce(LockoutRow) -> LockoutRow,
    ) -> Result<LockoutRow, StoreError> {
        let mut tx = self.begin_write().await?;
        query(
            "INSERT INTO sign_in_lockouts \
             (account, source, failures, locked_until, lockouts, version, updated_at) \
             VALUES ($1, $2, 0, 0, 0, 0, $3) ON CONFLICT (account, source) DO NOTHING",
        )
        .bind(account)
        .bind(source)
        .bind(now)
        .execute(&mut tx)
        .await?;
        query(
            "UPDATE sign_in_lockouts SET version = version + 1 \
             WHERE account = $1 AND source = $2",
        )
        .bind(account)
        .bind(source)
        .execute(&mut tx)
        .await?;
        let (failures, locked_until, lockouts): (i64, i64, i64) = query(
            "SELECT failures, locked_until, lockouts FROM sign_in_lockouts \
             WHERE account = $1 AND source = $2",
        )
        .bind(account)
        .bind(source)
        .fetch_one(&mut tx)
        .await?;
        let next = change(LockoutRow {
            failures,
            locked_until,
            lockouts,
        });
        query(
            "UPDATE sign_in_lockouts SET failures = $3, locked_until = $4, lockouts = $5, \
             updated_at = $6 WHERE account = $1 AND source = $2",
        )
        .bind(account)
        .bind(source)
        .bind(next.failures)
        .bind(next.locked_until)
        .bind(next.lockouts)
        .bind(now)
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(next)
    }

    /// Forgets counts untouched since `before` whose lockout is over: the periodic purge.
    pub async fn purge_lockouts(&self, before: i64) -> Result<u64, StoreError> {
        Ok(
            query("DELETE FROM sign_in_lockouts WHERE updated_at < $1 AND locked_until < $1")
                .bind(before)
                .execute(&self.db)
                .await?
                .rows_affected(),
        )
    }
}
