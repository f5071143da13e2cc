//! Self-service password reset attempts (`sspr_attempts`): a counter per bucket (an account or
//! a client IP) in a fixed window, in the database so every replica and a restart see it.

use crate::db::query;
use crate::{Store, StoreError};

/// One bucket's count after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptCount {
    /// Attempts in the current window, this one included.
    pub attempts: i64,
    /// When the current window ends (unix seconds).
    pub window_ends_at: i64,
}

impl Store {
    /// Counts an attempt at `now` in each of `buckets` (one transaction) and returns each
    /// bucket's count, in order. A bucket whose window has ended (or that is new) starts a new
    /// window of `window_secs` at 1.
    ///
    /// Atomic per bucket: one `INSERT ... ON CONFLICT DO UPDATE`, so concurrent attempts (from
    /// any replica) are each counted once.
    pub async fn count_sspr_attempt(
        &self,
        buckets: &[&str],
        window_secs: i64,
        now: i64,
    ) -> Result<Vec<AttemptCount>, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut counts = Vec::with_capacity(buckets.len());
        for bucket in buckets {
            let (attempts, window_ends_at): (i64, i64) = query(
                "INSERT INTO sspr_attempts (bucket, attempts, expires_at) VALUES ($1, 1, $2) \
                 ON CONFLICT (bucket) DO UPDATE SET \
                 attempts = CASE WHEN sspr_attempts.expires_at <= $3 THEN 1 \
                 ELSE sspr_attempts.attempts + 1 END, \
                 expires_at = CASE WHEN sspr_attempts.expires_at <= $3 THEN $2 \
                 ELSE sspr_attempts.expires_at END \
                 RETURNING attempts, expires_at",
            )
            .bind(*bucket)
            .bind(now + window_secs)
            .bind(now)
            .fetch_one(&mut tx)
            .await?;
            counts.push(AttemptCount {
                attempts,
                window_ends_at,
            });
        }
        tx.commit().await?;
        Ok(counts)
    }
}
