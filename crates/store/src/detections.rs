//! Risk detections (Graph `riskDetection`) and atomic user-risk changes: `risk_detections`,
//! together with `user_risk` and `risk_history`.
//!
//! Every change of a user's risk goes through [`Store::apply_risk_changes`]: the new status,
//! its history line, the detection that caused it (if any) and the detections it resolves (if
//! any) are written in one transaction, guarded by the status the caller read, so two
//! concurrent changes cannot lose each other's update.

use crate::db::{from_row, query, query_assembled};
use crate::risk::{UserRiskRecord, not_found_or_db, write_user_risk};
use crate::{Store, StoreError};

/// A detection as stored. Level, type, timing and state are Graph's camelCase strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectionRecord {
    /// Caller-chosen id.
    pub id: String,
    /// The user it is about.
    pub user_id: String,
    /// `riskEventType` (`leakedCredentials`, `passwordSpray`, ...).
    pub risk_event_type: String,
    /// `riskLevel`.
    pub risk_level: String,
    /// `detectionTimingType`: `realtime`, `nearRealtime` or `offline`.
    pub detection_timing_type: String,
    /// Who detected it (`IdentityProtection`, `admin`, ...).
    pub source: String,
    /// The IP address involved, if any.
    pub ip_address: Option<String>,
    /// When, unix seconds.
    pub detected_at: i64,
    /// `active`, `dismissed` or `remediated`.
    pub state: String,
    /// Why, in plain words.
    pub explanation: String,
}
from_row!(DetectionRecord {
    id,
    user_id,
    risk_event_type,
    risk_level,
    detection_timing_type,
    source,
    ip_address,
    detected_at,
    state,
    explanation
});

/// The state of a detection that still counts.
pub const DETECTION_ACTIVE: &str = "active";

/// One change of one user's risk, for [`Store::apply_risk_changes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskChange {
    /// The user's new status (its `user_id` names the user; `updated_at` is the change time).
    pub record: UserRiskRecord,
    /// The status the caller computed the change from; `None` when the user had none. The
    /// change is refused with [`StoreError::Conflict`] if the stored status differs.
    pub expected: Option<UserRiskRecord>,
    /// A new detection to record with the change (its `user_id` must be the record's).
    pub detection: Option<DetectionRecord>,
    /// Move the user's active detections to this state (`dismissed`, `remediated`).
    pub resolve_active_to: Option<String>,
    /// Who made the change.
    pub actor: String,
    /// Why.
    pub reason: Option<String>,
    /// The directory audit line of an admin's change, written in the same transaction.
    pub audit: Option<crate::DirectoryAudit>,
    /// Shared Signals events the change causes (CAEP `risk-level-change`...), written to the
    /// outbox of every stream that hears about the user, in the same transaction.
    pub signals: Vec<crate::Signal>,
}

/// Which detections [`Store::list_detections`] returns, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectionFilter {
    /// Only this user's.
    pub user_id: Option<String>,
    /// Page size; negative counts as 0.
    pub limit: i64,
    /// Rows to skip; negative counts as 0.
    pub offset: i64,
}

impl Default for DetectionFilter {
    /// Everyone's, the first 100.
    fn default() -> Self {
        Self {
            user_id: None,
            limit: 100,
            offset: 0,
        }
    }
}

macro_rules! detection_columns {
    () => {
        "id, user_id, risk_event_type, risk_level, detection_timing_type, source, ip_address, \
         detected_at, state, explanation"
    };
}

impl Store {
    /// Applies `changes` in one transaction: for each, checks the stored status still equals
    /// `expected`, records the detection, resolves the active detections, sets the status and
    /// appends the history line. All or nothing: [`StoreError::Conflict`] if a status changed
    /// meanwhile, [`StoreError::NotFound`] if a user does not exist.
    pub async fn apply_risk_changes(&self, changes: &[RiskChange]) -> Result<(), StoreError> {
        if changes.iter().any(|c| c.resolve_active_to.is_some()) {
            // Queued sign-in rows are closed with the rest, so they are written first.
            self.flush_sign_ins().await?;
        }
        let mut tx = self.begin_write().await?;
        for change in changes {
            let user_id = &change.record.user_id;
            let exists: Option<(String,)> = query("SELECT id FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_optional(&mut tx)
                .await?;
            if exists.is_none() {
                return Err(StoreError::NotFound);
            }
            let stored: Option<UserRiskRecord> = query(
                "SELECT user_id, level, state, detail, updated_at FROM user_risk \
                 WHERE user_id = $1",
            )
            .bind(user_id)
            .fetch_optional(&mut tx)
            .await?;
            if stored != change.expected {
                return Err(StoreError::Conflict(format!(
                    "the user risk of {user_id} changed meanwhile"
                )));
            }
            if let Some(state) = &change.resolve_active_to {
                query("UPDATE risk_detections SET state = $1 WHERE user_id = $2 AND state = $3")
                    .bind(state)
                    .bind(user_id)
                    .bind(DETECTION_ACTIVE)
                    .execute(&mut tx)
                    .await?;
                // The user's open risky sign-ins close the way the user's risk did.
                query(
                    "UPDATE sign_ins SET risk_state = $1, risk_detail = $2 \
                     WHERE user_id = $3 AND risk_state = 'atRisk'",
                )
                .bind(&change.record.state)
                .bind(&change.record.detail)
                .bind(user_id)
                .execute(&mut tx)
                .await?;
                crate::sign_ins::advance_heads(vec![user_id], &mut tx).await?;
            }
            if let Some(d) = &change.detection {
                if &d.user_id != user_id {
                    return Err(StoreError::Corrupt(format!(
                        "detection {} is about {}, not {user_id}",
                        d.id, d.user_id
                    )));
                }
                query(concat!(
                    "INSERT INTO risk_detections (",
                    detection_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                ))
                .bind(&d.id)
                .bind(&d.user_id)
                .bind(&d.risk_event_type)
                .bind(&d.risk_level)
                .bind(&d.detection_timing_type)
                .bind(&d.source)
                .bind(&d.ip_address)
                .bind(d.detected_at)
                .bind(&d.state)
                .bind(&d.explanation)
                .execute(&mut tx)
                .await
                .map_err(|e| match &e {
                    e if e.is_unique_violation() => {
                        StoreError::Conflict(format!("detection id already exists: {}", d.id))
                    }
                    _ => not_found_or_db(e),
                })?;
            }
            write_user_risk(
                &mut tx,
                &change.record,
                &change.actor,
                change.reason.as_deref(),
            )
            .await?;
            if let Some(audit) = &change.audit {
                crate::audits::insert_audit(audit, &mut tx).await?;
            }
            crate::ssf::enqueue_signals(&mut tx, &change.signals).await?;
        }
        tx.commit().await?;
        if changes.iter().any(|c| c.resolve_active_to.is_some()) {
            // Sign-ins that were at risk may count as the user's own now.
            self.sign_ins.forget_recent();
        }
        Ok(())
    }

    /// Detections, newest first (by time, then id), paged.
    pub async fn list_detections(
        &self,
        filter: &DetectionFilter,
    ) -> Result<Vec<DetectionRecord>, StoreError> {
        let limit = filter.limit.max(0);
        let offset = filter.offset.max(0);
        let rows: Vec<DetectionRecord> =
            match &filter.user_id {
                Some(user) => {
                    query(concat!(
                        "SELECT ",
                        detection_columns!(),
                        " FROM risk_detections WHERE user_id = $1 \
                     ORDER BY detected_at DESC, id DESC LIMIT $2 OFFSET $3"
                    ))
                    .bind(user)
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(&self.db)
                    .await?
                }
                None => query(concat!(
                    "SELECT ",
                    detection_columns!(),
                    " FROM risk_detections ORDER BY detected_at DESC, id DESC LIMIT $1 OFFSET $2"
                ))
                .bind(limit)
                .bind(offset)
                .fetch_all(&self.db)
                .await?,
            };
        Ok(rows)
    }

    /// When the user's latest detection of `risk_event_type` (in any state) at or after
    /// `since` was made; `None` if there is none.
    pub async fn latest_detection_since(
        &self,
        user_id: &str,
        risk_event_type: &str,
        since: i64,
    ) -> Result<Option<i64>, StoreError> {
        let (latest,): (Option<i64>,) = query(
            "SELECT MAX(detected_at) FROM risk_detections \
             WHERE user_id = $1 AND risk_event_type = $2 AND detected_at >= $3",
        )
        .bind(user_id)
        .bind(risk_event_type)
        .bind(since)
        .fetch_one(&self.db)
        .await?;
        Ok(latest)
    }

    /// A user's active detections (the ones that can count towards their risk), newest first.
    pub async fn active_detections(
        &self,
        user_id: &str,
    ) -> Result<Vec<DetectionRecord>, StoreError> {
        let rows: Vec<DetectionRecord> = query(concat!(
            "SELECT ",
            detection_columns!(),
            " FROM risk_detections WHERE user_id = $1 AND state = $2 \
             ORDER BY detected_at DESC, id DESC"
        ))
        .bind(user_id)
        .bind(DETECTION_ACTIVE)
        .fetch_all(&self.db)
        .await?;
        Ok(rows)
    }

    /// How many distinct sign-in names failed with one of `error_codes` from `ip_address` at or
    /// after `since` (unix seconds): the password-spray signal. Logged rows not yet written
    /// count too: the queue is written first when it holds such a failure (otherwise a
    /// password sign-in would force a commit of the log on every call).
    pub async fn failed_accounts_from_ip(
        &self,
        ip_address: &str,
        since: i64,
        error_codes: &[i64],
    ) -> Result<i64, StoreError> {
        if error_codes.is_empty() {
            return Ok(0);
        }
        self.sign_ins
            .write_before_reading(|row| {
                row.ip_address.as_deref() == Some(ip_address)
                    && row.created_at >= since
                    && error_codes.contains(&row.error_code)
            })
            .await?;
        let placeholders: Vec<String> = (0..error_codes.len())
            .map(|i| format!("${}", i + 3))
            .collect();
        let sql = format!(
            "SELECT COUNT(DISTINCT user_principal_name) FROM sign_ins \
             WHERE ip_address = $1 AND created_at >= $2 AND error_code IN ({})",
            placeholders.join(", ")
        );
        let mut query = query_assembled(sql).bind(ip_address).bind(since);
        for code in error_codes {
            query = query.bind(*code);
        }
        let (count,) = query.fetch_one::<(i64,)>(&self.db).await?;
        Ok(count)
    }
}
