//! Browser sessions and pending interactions: `sessions`, `interactions`.

use crate::db::{DbError, Executor, FromRow, Row, from_row, query};
use crate::users::{
    JoinedUserRow, joined_user_columns, joined_user_risk_columns, joined_user_risk_tables,
};
use crate::{Store, StoreError, User, UserRiskRecord, strings_from_json, strings_to_json};

/// A browser session. The cookie holds a random token; only its hash is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Public session id (the `sid` claim).
    pub id: String,
    /// SHA-256 of the cookie token, computed by the caller.
    pub token_hash: String,
    /// The signed-in user.
    pub user_id: String,
    /// When the user authenticated, unix seconds.
    pub auth_time: i64,
    /// Authentication methods (`amr`), stored as a JSON array.
    pub amr: Vec<String>,
    /// Authentication context class (`acr`).
    pub acr: Option<String>,
    /// Creation time, unix seconds.
    pub created_at: i64,
    /// The session is dead from this time on, unix seconds.
    pub expires_at: i64,
    /// When it was revoked (sign-out, admin, risk), if it was.
    pub revoked_at: Option<i64>,
    /// `None` for a local sign-in; for a federated (guest) sign-in, the server's JSON
    /// describing it (partner, home issuer, the home's `user_risk` claim). The store keeps it
    /// as text.
    pub federation_json: Option<String>,
}

/// A live session with its user and the user's stored risk, read together
/// ([`Store::session_and_user`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUser {
    /// The session.
    pub session: Session,
    /// Its user.
    pub user: User,
    /// The user's `user_risk` row; `None` if their risk was never set.
    pub user_risk: Option<UserRiskRecord>,
    /// The version of the user's sign-ins, for [`Store::recent_sign_ins`].
    pub sign_ins_version: i64,
}

struct SessionRow {
    id: String,
    token_hash: String,
    user_id: String,
    auth_time: i64,
    amr: String,
    acr: Option<String>,
    created_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
    federation_json: Option<String>,
}
from_row!(SessionRow {
    id,
    token_hash,
    user_id,
    auth_time,
    amr,
    acr,
    created_at,
    expires_at,
    revoked_at,
    federation_json
});

impl TryFrom<SessionRow> for Session {
    type Error = StoreError;

    fn try_from(row: SessionRow) -> Result<Session, StoreError> {
        Ok(Session {
            amr: strings_from_json(&row.amr, "sessions.amr")?,
            id: row.id,
            token_hash: row.token_hash,
            user_id: row.user_id,
            auth_time: row.auth_time,
            acr: row.acr,
            created_at: row.created_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
            federation_json: row.federation_json,
        })
    }
}

macro_rules! session_columns {
    () => {
        "id, token_hash, user_id, auth_time, amr, acr, created_at, expires_at, revoked_at, \
         federation_json"
    };
}

/// A pending authorization request, kept while the user signs in, and finished at most once
/// (see [`Store::consume_interaction`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interaction {
    /// Caller-chosen id (goes in the sign-in page URL).
    pub id: String,
    /// The validated authorization request, as the server's JSON.
    pub request_json: String,
    /// Creation time, unix seconds.
    pub created_at: i64,
    /// Dead from this time on, unix seconds.
    pub expires_at: i64,
}
from_row!(Interaction {
    id,
    request_json,
    created_at,
    expires_at
});

/// What [`Store::consume_interaction`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Consumption {
    /// This call consumed the interaction: the caller finishes it.
    Consumed(Interaction),
    /// It was consumed before (a replayed or concurrent finish). The stored request is there so
    /// the caller can still answer the app, but must not finish it again.
    AlreadyConsumed(Interaction),
    /// No such interaction, or it has expired.
    NotFound,
}

/// Inserts a session, where `target` says. [`StoreError::Conflict`] if the id or token hash is
/// taken.
async fn insert_session(target: impl Executor, session: &Session) -> Result<(), StoreError> {
    query(concat!(
        "INSERT INTO sessions (",
        session_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    ))
    .bind(&session.id)
    .bind(&session.token_hash)
    .bind(&session.user_id)
    .bind(session.auth_time)
    .bind(strings_to_json(&session.amr)?)
    .bind(&session.acr)
    .bind(session.created_at)
    .bind(session.expires_at)
    .bind(session.revoked_at)
    .bind(&session.federation_json)
    .execute(target)
    .await
    .map_err(|e| StoreError::conflict_or_db(e, || format!("session exists: {}", session.id)))?;
    Ok(())
}

macro_rules! interaction_columns {
    () => {
        "id, request_json, created_at, expires_at"
    };
}

impl Store {
    /// Stores a new session. [`StoreError::Conflict`] if the id or token hash is taken.
    pub async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        insert_session(self.db.one_write(), session).await
    }

    /// Stores the session a sign-in ends with and deletes the interaction that sign-in was kept
    /// under, if it was kept in one (a sign-in sealed into its id has none), in one
    /// transaction (one commit where a sign-in paid for two). [`StoreError::Conflict`] if the
    /// session's id or token hash is taken; then the interaction is kept too.
    pub async fn finish_sign_in(
        &self,
        interaction_id: Option<&str>,
        session: &Session,
    ) -> Result<(), StoreError> {
        let Some(interaction_id) = interaction_id else {
            return insert_session(self.db.one_write(), session).await;
        };
        let mut tx = self.begin_write().await?;
        query("DELETE FROM interactions WHERE id = $1")
            .bind(interaction_id)
            .execute(&mut tx)
            .await?;
        insert_session(&mut tx, session).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The live session whose cookie hashes to `hash`: `None` if unknown, expired at `now`, or
    /// revoked.
    pub async fn session_by_token_hash(
        &self,
        hash: &str,
        now: i64,
    ) -> Result<Option<Session>, StoreError> {
        let row: Option<SessionRow> = query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE token_hash = $1 AND expires_at > $2 AND revoked_at IS NULL"
        ))
        .bind(hash)
        .bind(now)
        .fetch_optional(&self.db)
        .await?;
        row.map(Session::try_from).transpose()
    }

    /// [`Store::session_by_token_hash`], the session's user, the user's stored risk and the
    /// version of their sign-ins, in one read: what a request with a session cookie needs, and
    /// what judging a single sign-on needs besides (the risk, and whether the user's recent
    /// sign-ins kept in memory are current), without a round trip of its own.
    pub async fn session_and_user(
        &self,
        hash: &str,
        now: i64,
    ) -> Result<Option<SessionUser>, StoreError> {
        let row: Option<SessionUserRow> = query(concat!(
            "SELECT s.id AS s_id, s.token_hash, s.user_id, s.auth_time, s.amr, s.acr, \
             s.created_at AS s_created_at, s.expires_at, s.revoked_at, s.federation_json, ",
            joined_user_columns!(),
            ", ",
            joined_user_risk_columns!(),
            " FROM sessions s JOIN users u ON u.id = s.user_id ",
            joined_user_risk_tables!(),
            " WHERE s.token_hash = $1 AND s.expires_at > $2 AND s.revoked_at IS NULL"
        ))
        .bind(hash)
        .bind(now)
        .fetch_optional(&self.db)
        .await?;
        row.map(|r| {
            let (user, user_risk, sign_ins_version) = r.user.into_parts()?;
            Ok(SessionUser {
                session: Session::try_from(r.session)?,
                user,
                user_risk,
                sign_ins_version,
            })
        })
        .transpose()
    }

    /// The session with this id, whatever its state (check `expires_at` and `revoked_at`).
    pub async fn session_by_id(&self, id: &str) -> Result<Option<Session>, StoreError> {
        let row: Option<SessionRow> = query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.db)
        .await?;
        row.map(Session::try_from).transpose()
    }

    /// Revokes a session. Returns whether this call revoked it (false if unknown or already
    /// revoked; the first revocation time is kept). Its grants are revoked separately, see
    /// [`Store::revoke_session_grants`].
    pub async fn revoke_session(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        let done =
            query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(id)
                .execute(&self.db)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Stores a pending interaction. [`StoreError::Conflict`] if the id is taken.
    pub async fn create_interaction(&self, interaction: &Interaction) -> Result<(), StoreError> {
        query(concat!(
            "INSERT INTO interactions (",
            interaction_columns!(),
            ") VALUES ($1, $2, $3, $4)"
        ))
        .bind(&interaction.id)
        .bind(&interaction.request_json)
        .bind(interaction.created_at)
        .bind(interaction.expires_at)
        .execute(&self.db)
        .await
        .map_err(|e| {
            StoreError::conflict_or_db(e, || format!("interaction exists: {}", interaction.id))
        })?;
        Ok(())
    }

    /// The interaction with this id, unless it has expired at `now` or has been consumed.
    pub async fn interaction(&self, id: &str, now: i64) -> Result<Option<Interaction>, StoreError> {
        let row: Option<Interaction> = query(concat!(
            "SELECT ",
            interaction_columns!(),
            " FROM interactions WHERE id = $1 AND expires_at > $2 AND consumed_at IS NULL"
        ))
        .bind(id)
        .bind(now)
        .fetch_optional(&self.db)
        .await?;
        Ok(row)
    }

    /// Marks an interaction consumed at `now`, at most once.
    ///
    /// Atomic: one `UPDATE ... WHERE consumed_at IS NULL`, so of two concurrent calls exactly
    /// one gets [`Consumption::Consumed`]; the other (and every later call before expiry) gets
    /// [`Consumption::AlreadyConsumed`]. An unknown or expired interaction is
    /// [`Consumption::NotFound`], consumed or not. Consumed interactions stay stored until
    /// [`Store::purge_expired`] removes them at expiry.
    pub async fn consume_interaction(&self, id: &str, now: i64) -> Result<Consumption, StoreError> {
        let consumed: Option<Interaction> = {
            query(concat!(
                "UPDATE interactions SET consumed_at = $1 \
                 WHERE id = $2 AND consumed_at IS NULL AND expires_at > $1 RETURNING ",
                interaction_columns!()
            ))
            .bind(now)
            .bind(id)
            .fetch_optional(&self.db)
            .await?
        };
        if let Some(interaction) = consumed {
            return Ok(Consumption::Consumed(interaction));
        }
        // Not consumed by this call: consumed already (the column is never reset), or gone.
        let earlier: Option<Interaction> = query(concat!(
            "SELECT ",
            interaction_columns!(),
            " FROM interactions WHERE id = $1 AND expires_at > $2 AND consumed_at IS NOT NULL"
        ))
        .bind(id)
        .bind(now)
        .fetch_optional(&self.db)
        .await?;
        Ok(earlier.map_or(Consumption::NotFound, Consumption::AlreadyConsumed))
    }

    /// Deletes an interaction (it is finished or abandoned). Returns whether it existed.
    pub async fn delete_interaction(&self, id: &str) -> Result<bool, StoreError> {
        let done = query("DELETE FROM interactions WHERE id = $1")
            .bind(id)
            .execute(&self.db)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

/// A session joined with its user: the session's `id` and `created_at` come aliased.
struct SessionUserRow {
    session: SessionRow,
    user: JoinedUserRow,
}

impl FromRow for SessionUserRow {
    fn from_row(row: &Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            session: SessionRow {
                id: row.get("s_id")?,
                token_hash: row.get("token_hash")?,
                user_id: row.get("user_id")?,
                auth_time: row.get("auth_time")?,
                amr: row.get("amr")?,
                acr: row.get("acr")?,
                created_at: row.get("s_created_at")?,
                expires_at: row.get("expires_at")?,
                revoked_at: row.get("revoked_at")?,
                federation_json: row.get("federation_json")?,
            },
            user: JoinedUserRow::from_row(row)?,
        })
    }
}
