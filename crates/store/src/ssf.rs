//! Shared Signals transmitter state: `ssf_streams`, `ssf_stream_subjects`, `ssf_outbox`.
//!
//! A stream belongs to one receiving partner app (`client_id`, at most one stream each). The
//! outbox holds every SET owed to a stream, numbered per stream (`seq`) in the order the
//! changes that caused them committed: a signal is written by [`enqueue_signals`] inside the
//! transaction of the change itself, so a change never commits without its events and an event
//! never exists without its change. Delivery (poll or push) walks a stream's rows by `seq`;
//! the row's state (`pending`, `delivered`, `failed`), attempts and next attempt time are in the
//! database, so a restart resumes where delivery stopped.
//!
//! Which users a stream hears about: those the receiver added as subjects, and those who use
//! the partner's app at this tenant (a consent or a grant for its `client_id`), i.e. the home's
//! users who are guests at that partner. There is no "all users" default (SSF
//! `default_subjects` is `NONE`): a partner learns nothing about users who never went there.

use crate::db::{Tx, from_row, query, query_assembled};
use crate::{Store, StoreError};

/// Stream statuses (SSF 1.0 §8.1.2).
pub const STREAM_ENABLED: &str = "enabled";
/// Events are held (still written to the outbox) but not delivered.
pub const STREAM_PAUSED: &str = "paused";
/// Events are neither written nor delivered.
pub const STREAM_DISABLED: &str = "disabled";

/// Outbox row states.
pub const OUTBOX_PENDING: &str = "pending";
/// Delivered: acknowledged by a poll, or accepted (202) by a push receiver.
pub const OUTBOX_DELIVERED: &str = "delivered";
/// Refused for good by the receiver (push 400, or a poll `setErrs`); never retried.
pub const OUTBOX_FAILED: &str = "failed";

/// One stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRecord {
    /// `stream_id`.
    pub id: String,
    /// The receiving partner app.
    pub client_id: String,
    /// The SETs' `aud`.
    pub aud: String,
    /// `events_requested`, space-separated event type URIs (as the receiver sent them).
    pub events_requested: String,
    /// `events_delivered`, space-separated event type URIs.
    pub events_delivered: String,
    /// `description`.
    pub description: Option<String>,
    /// `delivery.method` (`urn:ietf:rfc:8935` push or `urn:ietf:rfc:8936` poll).
    pub delivery_method: String,
    /// `delivery.endpoint_url` (push: the receiver's; poll: ours).
    pub endpoint_url: Option<String>,
    /// `delivery.authorization_header` sent with each push.
    pub authorization_header: Option<String>,
    /// `enabled`, `paused` or `disabled`.
    pub status: String,
    /// Why the status was last set.
    pub reason: Option<String>,
    /// The `seq` of the newest outbox row.
    pub last_seq: i64,
    /// Created, unix seconds.
    pub created_at: i64,
    /// Last changed, unix seconds.
    pub updated_at: i64,
}
from_row!(StreamRecord {
    id,
    client_id,
    aud,
    events_requested,
    events_delivered,
    description,
    delivery_method,
    endpoint_url,
    authorization_header,
    status,
    reason,
    last_seq,
    created_at,
    updated_at
});

const STREAM_COLUMNS: &str = "id, client_id, aud, events_requested, events_delivered, description, \
     delivery_method, endpoint_url, authorization_header, status, reason, last_seq, created_at, \
     updated_at";

/// An event about one user, to fan out to the streams that hear about that user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    /// The user it is about.
    pub user_id: String,
    /// Its event type URI (a stream gets it only if it is in its `events_delivered`).
    pub event_type: String,
    /// The SET's `sub_id`, `events` and (optional) `txn` members, as a JSON object.
    pub payload_json: String,
    /// A fresh random id; each stream's SET gets `{jti}.{stream seq}` as its `jti`.
    pub jti: String,
    /// When it happened (the SET's `iat`).
    pub at: i64,
    /// Only for the stream of this partner app, whoever its subjects are: a report to a
    /// guest's home goes to the home's own stream here, not to the apps the guest uses.
    pub to_client: Option<String>,
}

/// One SET owed to a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    /// The stream.
    pub stream_id: String,
    /// Its place in the stream.
    pub seq: i64,
    /// The SET's `jti`.
    pub jti: String,
    /// Events about one subject are delivered in order.
    pub subject_key: String,
    /// The event type URI.
    pub event_type: String,
    /// `sub_id`, `events`, `txn` as JSON.
    pub payload_json: String,
    /// The SET's `iat`.
    pub created_at: i64,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    /// Push attempts so far.
    pub attempts: i64,
    /// Not pushed again before this time.
    pub next_attempt_at: i64,
    /// The receiver's last refusal or the transport error.
    pub last_error: Option<String>,
    /// When it was delivered or acknowledged.
    pub delivered_at: Option<i64>,
}
from_row!(OutboxEvent {
    stream_id,
    seq,
    jti,
    subject_key,
    event_type,
    payload_json,
    created_at,
    state,
    attempts,
    next_attempt_at,
    last_error,
    delivered_at
});

const OUTBOX_COLUMNS: &str = "stream_id, seq, jti, subject_key, event_type, payload_json, \
     created_at, state, attempts, next_attempt_at, last_error, delivered_at";

/// How many of a stream's SETs are in each state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeliveryCounts {
    /// Not delivered yet.
    pub pending: i64,
    /// Delivered or acknowledged.
    pub delivered: i64,
    /// Refused for good.
    pub failed: i64,
}

/// Writes `signals` to the outbox of every stream that hears about their users, inside `tx`;
/// `tx`'s commit then wakes [`Store::outbox_written`], so the push worker sends them at once
/// rather than at its next round.
pub(crate) async fn enqueue_signals(tx: &mut Tx, signals: &[Signal]) -> Result<(), StoreError> {
    if !signals.is_empty() {
        tx.wake_on_commit();
    }
    for signal in signals {
        let streams: Vec<(String, String)> = match &signal.to_client {
            Some(client_id) => {
                query(
                    "SELECT id, events_delivered FROM ssf_streams \
                     WHERE status IN ('enabled', 'paused') AND client_id = $1",
                )
                .bind(client_id)
                .fetch_all(&mut *tx)
                .await?
            }
            None => {
                query(
                    "SELECT s.id, s.events_delivered FROM ssf_streams s \
             WHERE s.status IN ('enabled', 'paused') AND ( \
               EXISTS (SELECT 1 FROM ssf_stream_subjects x \
                       WHERE x.stream_id = s.id AND x.user_id = $1) \
               OR EXISTS (SELECT 1 FROM consents c \
                          WHERE c.client_id = s.client_id AND c.user_id = $1) \
               OR EXISTS (SELECT 1 FROM grants g \
                          WHERE g.client_id = s.client_id AND g.user_id = $1)) \
             ORDER BY s.id",
                )
                .bind(&signal.user_id)
                .fetch_all(&mut *tx)
                .await?
            }
        };
        for (stream_id, events) in streams {
            if events.split(' ').any(|e| e == signal.event_type) {
                insert_outbox(tx, &stream_id, signal).await?;
            }
        }
    }
    Ok(())
}

/// Appends `signal` to one stream's outbox, inside `tx`: the stream's row lock (the `last_seq`
/// update) orders concurrent writers.
async fn insert_outbox(
    tx: &mut Tx,
    stream_id: &str,
    signal: &Signal,
) -> Result<String, StoreError> {
    let (seq,): (i64,) =
        query("UPDATE ssf_streams SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq")
            .bind(stream_id)
            .fetch_one(&mut *tx)
            .await?;
    let jti = format!("{}.{seq}", signal.jti);
    query(
        "INSERT INTO ssf_outbox (stream_id, seq, jti, subject_key, event_type, payload_json, \
         created_at, state, attempts, next_attempt_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $7)",
    )
    .bind(stream_id)
    .bind(seq)
    .bind(&jti)
    .bind(&signal.user_id)
    .bind(&signal.event_type)
    .bind(&signal.payload_json)
    .bind(signal.at)
    .bind(OUTBOX_PENDING)
    .execute(&mut *tx)
    .await?;
    Ok(jti)
}

impl Store {
    /// Creates a stream; [`StoreError::Conflict`] if its app already has one.
    pub async fn create_ssf_stream(&self, s: &StreamRecord) -> Result<(), StoreError> {
        query_assembled(format!(
            "INSERT INTO ssf_streams ({STREAM_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        ))
        .bind(&s.id)
        .bind(&s.client_id)
        .bind(&s.aud)
        .bind(&s.events_requested)
        .bind(&s.events_delivered)
        .bind(&s.description)
        .bind(&s.delivery_method)
        .bind(&s.endpoint_url)
        .bind(&s.authorization_header)
        .bind(&s.status)
        .bind(&s.reason)
        .bind(s.last_seq)
        .bind(s.created_at)
        .bind(s.updated_at)
        .execute(&self.db)
        .await
        .map_err(|e| {
            if e.is_unique_violation() {
                StoreError::Conflict(format!("app {} already has a stream", s.client_id))
            } else {
                e.into()
            }
        })?;
        Ok(())
    }

    /// A stream by id.
    pub async fn ssf_stream(&self, id: &str) -> Result<Option<StreamRecord>, StoreError> {
        Ok(query_assembled(format!(
            "SELECT {STREAM_COLUMNS} FROM ssf_streams WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.db)
        .await?)
    }

    /// Every stream, oldest first.
    pub async fn list_ssf_streams(&self) -> Result<Vec<StreamRecord>, StoreError> {
        Ok(query_assembled(format!(
            "SELECT {STREAM_COLUMNS} FROM ssf_streams ORDER BY created_at, id"
        ))
        .fetch_all(&self.db)
        .await?)
    }

    /// Replaces a stream's configuration (aud, events, description, delivery) and status.
    /// [`StoreError::NotFound`] if it is gone.
    pub async fn update_ssf_stream(&self, s: &StreamRecord) -> Result<(), StoreError> {
        let done = query(
            "UPDATE ssf_streams SET aud = $2, events_delivered = $3, description = $4, \
             delivery_method = $5, endpoint_url = $6, authorization_header = $7, status = $8, \
             reason = $9, updated_at = $10, events_requested = $11 WHERE id = $1",
        )
        .bind(&s.id)
        .bind(&s.aud)
        .bind(&s.events_delivered)
        .bind(&s.description)
        .bind(&s.delivery_method)
        .bind(&s.endpoint_url)
        .bind(&s.authorization_header)
        .bind(&s.status)
        .bind(&s.reason)
        .bind(s.updated_at)
        .bind(&s.events_requested)
        .execute(&self.db)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Deletes a stream with its subjects and outbox. `false` if there was none.
    pub async fn delete_ssf_stream(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        for table in ["ssf_outbox", "ssf_stream_subjects"] {
            query_assembled(format!("DELETE FROM {table} WHERE stream_id = $1"))
                .bind(id)
                .execute(&mut tx)
                .await?;
        }
        let done = query("DELETE FROM ssf_streams WHERE id = $1")
            .bind(id)
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Adds a user to a stream's subjects (idempotent).
    pub async fn add_ssf_subject(
        &self,
        stream_id: &str,
        user_id: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        query(
            "INSERT INTO ssf_stream_subjects (stream_id, user_id, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (stream_id, user_id) DO NOTHING",
        )
        .bind(stream_id)
        .bind(user_id)
        .bind(now)
        .execute(&self.db)
        .await
        .map_err(|e| {
            if e.is_foreign_key_violation() {
                StoreError::NotFound
            } else {
                e.into()
            }
        })?;
        Ok(())
    }

    /// Removes a user from a stream's subjects. `false` if it was not one.
    pub async fn remove_ssf_subject(
        &self,
        stream_id: &str,
        user_id: &str,
    ) -> Result<bool, StoreError> {
        let done = query("DELETE FROM ssf_stream_subjects WHERE stream_id = $1 AND user_id = $2")
            .bind(stream_id)
            .bind(user_id)
            .execute(&self.db)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The users a stream's receiver added, by id.
    pub async fn ssf_subjects(&self, stream_id: &str) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> =
            query("SELECT user_id FROM ssf_stream_subjects WHERE stream_id = $1 ORDER BY user_id")
                .bind(stream_id)
                .fetch_all(&self.db)
                .await?;
        Ok(rows.into_iter().map(|(u,)| u).collect())
    }

    /// Writes `signals` to the outbox of the streams that hear about their users, in one
    /// transaction of its own (for changes that have no transaction of theirs to ride in).
    pub async fn record_signals(&self, signals: &[Signal]) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        enqueue_signals(&mut tx, signals).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Appends one signal to one stream whatever its subjects and events (a `verification`
    /// event the receiver asked for). Returns the SET's `jti`.
    pub async fn record_stream_signal(
        &self,
        stream_id: &str,
        signal: &Signal,
    ) -> Result<String, StoreError> {
        let mut tx = self.begin_write().await?;
        let exists: Option<(String,)> = query("SELECT id FROM ssf_streams WHERE id = $1")
            .bind(stream_id)
            .fetch_optional(&mut tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        let jti = insert_outbox(&mut tx, stream_id, signal).await?;
        tx.commit().await?;
        Ok(jti)
    }

    /// Whether the stream of partner app `client_id` got an event of `event_type` about `user_id`
    /// at or after `since` (unix seconds).
    pub async fn ssf_signalled_since(
        &self,
        client_id: &str,
        user_id: &str,
        event_type: &str,
        since: i64,
    ) -> Result<bool, StoreError> {
        // `seq`, not a literal: PostgreSQL types `1` as INT4, which an i64 does not decode.
        let row: Option<(i64,)> = query(
            "SELECT o.seq FROM ssf_outbox o JOIN ssf_streams s ON s.id = o.stream_id \
             WHERE s.client_id = $1 AND o.subject_key = $2 AND o.event_type = $3 \
             AND o.created_at >= $4 LIMIT 1",
        )
        .bind(client_id)
        .bind(user_id)
        .bind(event_type)
        .bind(since)
        .fetch_optional(&self.db)
        .await?;
        Ok(row.is_some())
    }

    /// Up to `limit` of a stream's undelivered SETs, in stream order.
    pub async fn ssf_pending(
        &self,
        stream_id: &str,
        limit: i64,
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        Ok(query_assembled(format!(
            "SELECT {OUTBOX_COLUMNS} FROM ssf_outbox WHERE stream_id = $1 AND state = $2 \
             ORDER BY seq LIMIT $3"
        ))
        .bind(stream_id)
        .bind(OUTBOX_PENDING)
        .bind(limit.max(0))
        .fetch_all(&self.db)
        .await?)
    }

    /// A stream's SETs, newest first, at most `limit` (for the admin API).
    pub async fn ssf_outbox(
        &self,
        stream_id: &str,
        limit: i64,
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        Ok(query_assembled(format!(
            "SELECT {OUTBOX_COLUMNS} FROM ssf_outbox WHERE stream_id = $1 \
             ORDER BY seq DESC LIMIT $2"
        ))
        .bind(stream_id)
        .bind(limit.max(0))
        .fetch_all(&self.db)
        .await?)
    }

    /// Marks a stream's pending SET `jti` delivered (a poll `ack`, a push 202). `false` if it
    /// was not pending (unknown, or already acknowledged: acknowledging twice is harmless).
    pub async fn ssf_mark_delivered(
        &self,
        stream_id: &str,
        jti: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = query(
            "UPDATE ssf_outbox SET state = $1, delivered_at = $2 \
             WHERE stream_id = $3 AND jti = $4 AND state = $5",
        )
        .bind(OUTBOX_DELIVERED)
        .bind(now)
        .bind(stream_id)
        .bind(jti)
        .bind(OUTBOX_PENDING)
        .execute(&self.db)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Marks a stream's pending SET `jti` refused for good, with the receiver's error.
    pub async fn ssf_mark_failed(
        &self,
        stream_id: &str,
        jti: &str,
        error: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = query(
            "UPDATE ssf_outbox SET state = $1, last_error = $2, delivered_at = $3, \
             attempts = attempts + 1 WHERE stream_id = $4 AND jti = $5 AND state = $6",
        )
        .bind(OUTBOX_FAILED)
        .bind(error)
        .bind(now)
        .bind(stream_id)
        .bind(jti)
        .bind(OUTBOX_PENDING)
        .execute(&self.db)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Claims a due SET for one push: moves its `next_attempt_at` from `seen` (the value the
    /// caller read) to `lease_until`, so another replica's worker skips it while it is being
    /// sent. `false` if someone else claimed or settled it first. A worker that dies mid-push
    /// leaves the lease to expire, and the SET is pushed again (same `jti`).
    pub async fn ssf_claim_push(
        &self,
        stream_id: &str,
        jti: &str,
        seen: i64,
        lease_until: i64,
    ) -> Result<bool, StoreError> {
        let done = query(
            "UPDATE ssf_outbox SET next_attempt_at = $1 \
             WHERE stream_id = $2 AND jti = $3 AND state = $4 AND next_attempt_at = $5",
        )
        .bind(lease_until)
        .bind(stream_id)
        .bind(jti)
        .bind(OUTBOX_PENDING)
        .bind(seen)
        .execute(&self.db)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Records a failed push attempt of `jti`: one more attempt, not retried before
    /// `next_attempt_at`.
    pub async fn ssf_mark_retry(
        &self,
        stream_id: &str,
        jti: &str,
        error: &str,
        next_attempt_at: i64,
    ) -> Result<(), StoreError> {
        query(
            "UPDATE ssf_outbox SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2 \
             WHERE stream_id = $3 AND jti = $4 AND state = $5",
        )
        .bind(error)
        .bind(next_attempt_at)
        .bind(stream_id)
        .bind(jti)
        .bind(OUTBOX_PENDING)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    /// The SETs a push worker may send now: pending rows of enabled push streams, each the
    /// oldest pending SET of its subject in its stream (a later event never overtakes an
    /// earlier one being retried), due at `now`; stream by stream in `seq` order.
    pub async fn ssf_due_pushes(
        &self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        Ok(query_assembled(format!(
            "SELECT {} FROM ssf_outbox o JOIN ssf_streams s ON s.id = o.stream_id \
             WHERE o.state = $1 AND s.status = $2 AND s.delivery_method = $3 \
               AND o.next_attempt_at <= $4 \
               AND NOT EXISTS (SELECT 1 FROM ssf_outbox e WHERE e.stream_id = o.stream_id \
                   AND e.subject_key = o.subject_key AND e.state = $1 AND e.seq < o.seq) \
             ORDER BY o.stream_id, o.seq LIMIT $5",
            OUTBOX_COLUMNS
                .split(", ")
                .map(|c| format!("o.{}", c.trim()))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .bind(OUTBOX_PENDING)
        .bind(STREAM_ENABLED)
        .bind("urn:ietf:rfc:8935")
        .bind(now)
        .bind(limit.max(0))
        .fetch_all(&self.db)
        .await?)
    }

    /// Deletes delivered and failed SETs settled before `before` (pending ones stay, whatever
    /// their age). Returns how many went.
    pub async fn purge_ssf_outbox(&self, before: i64) -> Result<u64, StoreError> {
        let done = query(
            "DELETE FROM ssf_outbox WHERE state <> $1 AND delivered_at IS NOT NULL \
             AND delivered_at < $2",
        )
        .bind(OUTBOX_PENDING)
        .bind(before)
        .execute(&self.db)
        .await?;
        Ok(done.rows_affected())
    }

    /// How many of a stream's SETs are pending, delivered and failed.
    pub async fn ssf_delivery_counts(&self, stream_id: &str) -> Result<DeliveryCounts, StoreError> {
        let rows: Vec<(String, i64)> =
            query("SELECT state, COUNT(*) FROM ssf_outbox WHERE stream_id = $1 GROUP BY state")
                .bind(stream_id)
                .fetch_all(&self.db)
                .await?;
        let mut c = DeliveryCounts::default();
        for (state, n) in rows {
            match state.as_str() {
                OUTBOX_PENDING => c.pending = n,
                OUTBOX_DELIVERED => c.delivered = n,
                _ => c.failed += n,
            }
        }
        Ok(c)
    }
}
