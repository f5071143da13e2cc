//! Security events received from partners (OpenID Shared Signals): `received_signals`. An event
//! is applied at most once: its id (`jti`) is recorded in the transaction that applies it.

use crate::db::query;
use crate::grants::{GrantRow, end_user_sign_ins_in, grant_columns};
use crate::{Grant, Store, StoreError};

/// What a partner's event changes about one of its users who is a guest here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestChange {
    /// The guest it is about (`None`: no such guest here; the event is only recorded).
    pub guest_id: Option<String>,
    /// The user-risk claim (JSON) to hold for the guest from now on, if the event changes it.
    pub home_user_risk: Option<String>,
    /// End every session and grant the guest holds here.
    pub end_sign_ins: bool,
}

/// What applying an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalApplied {
    /// Applied now: the guest's sessions and grants ended by it.
    Now {
        /// Sessions ended.
        sessions: u64,
        /// Grants ended.
        grants: u64,
    },
    /// This event was applied before (a retry or a replay): nothing changed.
    Before,
}

impl Store {
    /// Applies partner `partner_id`'s event `jti` in one transaction: records it, stores the
    /// guest's new user-risk claim, ends their sign-ins. An event recorded before changes
    /// nothing ([`SignalApplied::Before`]).
    pub async fn apply_partner_signal(
        &self,
        partner_id: &str,
        jti: &str,
        change: &GuestChange,
        now: i64,
    ) -> Result<SignalApplied, StoreError> {
        let mut tx = self.begin_write().await?;
        let new = query(
            "INSERT INTO received_signals (partner_id, jti, guest_id, received_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (partner_id, jti) DO NOTHING",
        )
        .bind(partner_id)
        .bind(jti)
        .bind(change.guest_id.as_deref())
        .bind(now)
        .execute(&mut tx)
        .await?;
        if new.rows_affected() == 0 {
            return Ok(SignalApplied::Before);
        }
        let (mut sessions, mut grants) = (0, 0);
        if let Some(guest) = &change.guest_id {
            if let Some(claim) = &change.home_user_risk {
                query(
                    "UPDATE users SET home_user_risk = $1 \
                     WHERE id = $2 AND user_type = 'guest' AND partner_id = $3",
                )
                .bind(claim)
                .bind(guest)
                .bind(partner_id)
                .execute(&mut tx)
                .await?;
            }
            if change.end_sign_ins {
                (sessions, grants) = end_user_sign_ins_in(&mut tx, guest, now).await?;
            }
        }
        tx.commit().await?;
        Ok(SignalApplied::Now { sessions, grants })
    }

    /// Whether partner `partner_id`'s event `jti` was applied before.
    pub async fn received_before(&self, partner_id: &str, jti: &str) -> Result<bool, StoreError> {
        let row: Option<(String,)> =
            query("SELECT jti FROM received_signals WHERE partner_id = $1 AND jti = $2")
                .bind(partner_id)
                .bind(jti)
                .fetch_optional(&self.db)
                .await?;
        Ok(row.is_some())
    }

    /// The grants `user_id` holds now (not revoked, not expired), oldest first.
    pub async fn active_grants_of(
        &self,
        user_id: &str,
        now: i64,
    ) -> Result<Vec<Grant>, StoreError> {
        let rows: Vec<GrantRow> = query(concat!(
            "SELECT ",
            grant_columns!(),
            " FROM grants WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
             ORDER BY created_at, id"
        ))
        .bind(user_id)
        .bind(now)
        .fetch_all(&self.db)
        .await?;
        rows.into_iter().map(Grant::try_from).collect()
    }

    /// Forgets received events older than `t` (their senders' age limit refuses them anyway).
    pub async fn purge_received_signals(&self, t: i64) -> Result<u64, StoreError> {
        let done = query("DELETE FROM received_signals WHERE received_at < $1")
            .bind(t)
            .execute(&self.db)
            .await?;
        Ok(done.rows_affected())
    }
}

/// A stream of signals this tenant receives from a partner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivingStream {
    /// The partner.
    pub partner_id: String,
    /// The stream's id at the partner, once it made one.
    pub stream_id: Option<String>,
    /// Where to poll it, when it is polled (RFC 8936).
    pub poll_url: Option<String>,
    /// Created, unix seconds.
    pub created_at: i64,
    /// Last changed, unix seconds.
    pub updated_at: i64,
    /// The `state` of the verification event last asked for.
    pub verify_state: Option<String>,
    /// When that verification event came, unix seconds.
    pub verified_at: Option<i64>,
}
crate::db::from_row!(ReceivingStream {
    partner_id,
    stream_id,
    poll_url,
    created_at,
    updated_at,
    verify_state,
    verified_at
});

impl Store {
    /// The stream received from `partner_id`, if there is one.
    pub async fn receiving_stream(
        &self,
        partner_id: &str,
    ) -> Result<Option<ReceivingStream>, StoreError> {
        let row: Option<ReceivingStream> = query(
            "SELECT partner_id, stream_id, poll_url, created_at, updated_at, verify_state, \
             verified_at FROM receiving_streams WHERE partner_id = $1",
        )
        .bind(partner_id)
        .fetch_optional(&self.db)
        .await?;
        Ok(row)
    }

    /// Records (or replaces) the stream received from `partner_id`: its id there, where to
    /// poll it, and the `state` of the verification event asked for on it (the arrival of an
    /// earlier one forgotten).
    pub async fn put_receiving_stream(
        &self,
        partner_id: &str,
        stream_id: Option<&str>,
        poll_url: Option<&str>,
        verify_state: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        query(
            "INSERT INTO receiving_streams \
             (partner_id, stream_id, poll_url, verify_state, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) \
             ON CONFLICT (partner_id) DO UPDATE SET stream_id = excluded.stream_id, \
             poll_url = excluded.poll_url, verify_state = excluded.verify_state, \
             verified_at = NULL, updated_at = excluded.updated_at",
        )
        .bind(partner_id)
        .bind(stream_id)
        .bind(poll_url)
        .bind(verify_state)
        .bind(now)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    /// Records that the verification event with `state` came from `partner_id`; false when it
    /// is not the one last asked for.
    pub async fn receiving_verified(
        &self,
        partner_id: &str,
        state: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = query(
            "UPDATE receiving_streams SET verified_at = $3 \
             WHERE partner_id = $1 AND verify_state = $2",
        )
        .bind(partner_id)
        .bind(state)
        .bind(now)
        .execute(&self.db)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

/// What was received from one partner: how many events, and when the last one came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedSummary {
    /// The partner.
    pub partner_id: String,
    /// Events applied (within the retention of their ids).
    pub events: i64,
    /// When the last one came, unix seconds.
    pub last_received_at: Option<i64>,
}
crate::db::from_row!(ReceivedSummary {
    partner_id,
    events,
    last_received_at
});

impl Store {
    /// Per partner, the events received and applied (as long as their ids are kept).
    pub async fn received_signal_summary(&self) -> Result<Vec<ReceivedSummary>, StoreError> {
        let rows: Vec<ReceivedSummary> = query(
            "SELECT partner_id, COUNT(*) AS events, MAX(received_at) AS last_received_at \
             FROM received_signals GROUP BY partner_id ORDER BY partner_id",
        )
        .fetch_all(&self.db)
        .await?;
        Ok(rows)
    }
}
