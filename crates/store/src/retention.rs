//! Retention: rows older than the tenant keeps them are deleted in small batches (the
//! housekeeping task calls [`Store::purge_retained`] until a batch comes back short), so a
//! purge never holds the database for long however much has piled up. Risk detections still
//! active are kept whatever their age: they make the user's current risk.

use crate::db::query;
use crate::{Store, StoreError};

/// How long each kind of row is kept, as the cut-off times (unix seconds) before which rows go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Sign-in log rows created before this.
    pub sign_ins_before: i64,
    /// Risk history lines, and detections no longer active, before this.
    pub risk_before: i64,
    /// Directory audit lines before this.
    pub audits_before: i64,
}

/// What one batch deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Sign-in log rows.
    pub sign_ins: u64,
    /// Risk detections.
    pub detections: u64,
    /// Risk history lines.
    pub history: u64,
    /// Directory audit lines.
    pub audits: u64,
}

impl Purged {
    /// Whether any table had a full batch (so more may be waiting).
    pub fn full(&self, batch: i64) -> bool {
        let batch = u64::try_from(batch).unwrap_or(0);
        [self.sign_ins, self.detections, self.history, self.audits]
            .iter()
            .any(|n| *n >= batch)
    }
}

impl Store {
    /// Deletes at most `batch` sign-in rows from before `before`, oldest first, and moves their
    /// users' versions on in the same transaction (their recent sign-ins may be among them).
    async fn purge_sign_ins(&self, before: i64, batch: i64) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let purged: Vec<(Option<String>,)> = query(
            "DELETE FROM sign_ins WHERE id IN (SELECT id FROM sign_ins \
             WHERE created_at < $1 ORDER BY created_at LIMIT $2) RETURNING user_id",
        )
        .bind(before)
        .bind(batch)
        .fetch_all(&mut tx)
        .await?;
        let users = purged.iter().filter_map(|(u,)| u.as_deref()).collect();
        crate::sign_ins::advance_heads(users, &mut tx).await?;
        tx.commit().await?;
        Ok(purged.len() as u64)
    }

    /// Deletes at most `batch` rows of each kind older than `retention` says, oldest first.
    pub async fn purge_retained(
        &self,
        retention: &Retention,
        batch: i64,
    ) -> Result<Purged, StoreError> {
        let batch = batch.max(1);
        let run = |sql: &'static str, before: i64| async move {
            Ok::<u64, StoreError>(
                query(sql)
                    .bind(before)
                    .bind(batch)
                    .execute(&self.db)
                    .await?
                    .rows_affected(),
            )
        };
        let sign_ins = self
            .purge_sign_ins(retention.sign_ins_before, batch)
            .await?;
        if sign_ins > 0 {
            self.sign_ins.forget_recent();
        }
        Ok(Purged {
            sign_ins,
            detections: run(
                "DELETE FROM risk_detections WHERE id IN (SELECT id FROM risk_detections \
                 WHERE detected_at < $1 AND state <> 'active' ORDER BY detected_at LIMIT $2)",
                retention.risk_before,
            )
            .await?,
            history: run(
                "DELETE FROM risk_history WHERE id IN (SELECT id FROM risk_history \
                 WHERE created_at < $1 ORDER BY created_at LIMIT $2)",
                retention.risk_before,
            )
            .await?,
            audits: run(
                "DELETE FROM directory_audits WHERE id IN (SELECT id FROM directory_audits \
                 WHERE activity_date_time < $1 ORDER BY activity_date_time LIMIT $2)",
                retention.audits_before,
            )
            .await?,
        })
    }
}
