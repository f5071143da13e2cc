//! Grants and what hangs off them: `grants`, `refresh_tokens`, and `code_sealing_keys` (the
//! secret their authorization codes are sealed with).
//!
//! A family's first refresh token is kept in its grant's row, so that a code exchange is one
//! statement; the tokens rotation makes after it are rows of `refresh_tokens`. Readers see
//! both through the `all_refresh_tokens` view.
//!
//! A grant is one user's authorization of one client. Its authorization code, access tokens and
//! refresh tokens (one rotation family per grant) are only as alive as the grant: revoking the
//! grant kills them all, and a replayed code or reused refresh token revokes the grant in the
//! same transaction that detects it (RFC 9700 §2.1.1 and §4.14.2).

use crate::db::{DbError, Executor, FromRow, Row, Tx, from_row, query};
use crate::users::{
    JoinedUserRow, joined_user_columns, joined_user_risk_columns, joined_user_risk_tables,
};
use crate::{
    Store, StoreError, User, UserRiskRecord, bool_from_db, bool_to_db, strings_from_json,
    strings_to_json,
};

/// One user's authorization of one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Caller-chosen id (put in access tokens so they can be checked against the grant).
    pub id: String,
    /// The client the user authorized.
    pub client_id: String,
    /// The user.
    pub user_id: String,
    /// The browser session that created it (`sid`), if any.
    pub session_id: Option<String>,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// When the user authenticated, unix seconds.
    pub auth_time: i64,
    /// Authentication methods (`amr`), stored as a JSON array.
    pub amr: Vec<String>,
    /// Authentication context class (`acr`).
    pub acr: Option<String>,
    /// `offline_access` was granted: the grant outlives the session.
    pub offline: bool,
    /// Creation time, unix seconds.
    pub created_at: i64,
    /// Dead from this time on, unix seconds.
    pub expires_at: i64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
    /// The claims the app asked for by name (the `claims` request parameter, as JSON), if any.
    pub claims: Option<String>,
}

pub(crate) struct GrantRow {
    id: String,
    client_id: String,
    user_id: String,
    session_id: Option<String>,
    scope: String,
    auth_time: i64,
    amr: String,
    acr: Option<String>,
    offline: i64,
    created_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
    claims: Option<String>,
}
from_row!(GrantRow {
    id,
    client_id,
    user_id,
    session_id,
    scope,
    auth_time,
    amr,
    acr,
    offline,
    created_at,
    expires_at,
    revoked_at,
    claims
});

impl TryFrom<GrantRow> for Grant {
    type Error = StoreError;

    fn try_from(row: GrantRow) -> Result<Grant, StoreError> {
        Ok(Grant {
            amr: strings_from_json(&row.amr, "grants.amr")?,
            offline: bool_from_db(row.offline, "grants.offline")?,
            id: row.id,
            client_id: row.client_id,
            user_id: row.user_id,
            session_id: row.session_id,
            scope: row.scope,
            auth_time: row.auth_time,
            acr: row.acr,
            created_at: row.created_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
            claims: row.claims,
        })
    }
}

macro_rules! grant_columns {
    () => {
        "id, client_id, user_id, session_id, scope, auth_time, amr, acr, offline, created_at, \
         expires_at, revoked_at, claims"
    };
}
pub(crate) use grant_columns;

/// An authorization code: what the token request is checked against. Never stored: the code
/// itself carries it, sealed (see [`Store::redeem_sealed_code`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthCode {
    /// The grant it redeems into.
    pub grant_id: String,
    /// The client it was issued to.
    pub client_id: String,
    /// The exact `redirect_uri` of the authorization request.
    pub redirect_uri: String,
    /// Scopes, space-separated.
    pub scope: String,
    /// The request's `nonce`, for the ID token.
    pub nonce: Option<String>,
    /// PKCE `code_challenge`.
    pub code_challenge: Option<String>,
    /// PKCE `code_challenge_method`.
    pub code_challenge_method: Option<String>,
    /// Creation time, unix seconds.
    pub created_at: i64,
    /// Dead from this time on, unix seconds.
    pub expires_at: i64,
}

/// The outcome of [`Store::redeem_sealed_code`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeRedemption {
    /// The code was fresh and is now spent: its grant is stored, live, as the caller passed it
    /// (the caller keeps the code and grant it opened; nothing of them changed).
    Redeemed,
    /// The code had already been redeemed: the store has already revoked its grant in the same
    /// transaction, so tokens issued from the first redemption die too.
    Replayed {
        /// The grant that was revoked.
        grant_id: String,
    },
    /// The code (or its grant) has expired.
    Expired,
    /// The code was fresh but its session has ended since (e.g. the user signed out in
    /// between), or its user is no longer active; the code is now spent and its grant revoked.
    GrantRevoked,
}

/// A refresh token, stored by hash. All refresh tokens of one grant form one rotation family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// SHA-256 of the token, computed by the caller.
    pub token_hash: String,
    /// The grant (family) it belongs to.
    pub grant_id: String,
    /// The client it was issued to.
    pub client_id: String,
    /// Scopes, space-separated.
    pub scope: String,
    /// Creation time, unix seconds.
    pub created_at: i64,
    /// Dead from this time on, unix seconds.
    pub expires_at: i64,
    /// When it was rotated away (a second use is reuse), if it was.
    pub used_at: Option<i64>,
}
from_row!(RefreshToken {
    token_hash,
    grant_id,
    client_id,
    scope,
    created_at,
    expires_at,
    used_at
});

macro_rules! refresh_columns {
    () => {
        "token_hash, grant_id, client_id, scope, created_at, expires_at, used_at"
    };
}

/// The outcome of [`Store::rotate_refresh_token`].
// Returned once per token request and matched at once: boxing would only cost an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The old token is now marked used and the new one stored, in one transaction.
    Rotated {
        /// The old token as stored after rotation (`used_at` is set).
        old: RefreshToken,
        /// The family's grant, live.
        grant: Grant,
    },
    /// The old token had already been used: the store has already revoked the grant (and so
    /// the whole family) in the same transaction (RFC 9700 refresh token reuse detection).
    Reused {
        /// The grant that was revoked.
        grant_id: String,
    },
    /// The old token (or its grant) has expired.
    Expired,
    /// The family's grant has been revoked.
    GrantRevoked,
    /// No such token.
    NotFound,
}

async fn grant_in(tx: &mut Tx, id: &str) -> Result<Option<Grant>, StoreError> {
    let row: Option<GrantRow> = query(concat!(
        "SELECT ",
        grant_columns!(),
        " FROM grants WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    row.map(Grant::try_from).transpose()
}

async fn refresh_in(tx: &mut Tx, token_hash: &str) -> Result<Option<RefreshToken>, StoreError> {
    let token: Option<RefreshToken> = query(concat!(
        "SELECT ",
        refresh_columns!(),
        " FROM all_refresh_tokens WHERE token_hash = $1"
    ))
    .bind(token_hash)
    .fetch_optional(&mut *tx)
    .await?;
    Ok(token)
}

/// A refresh token joined with its grant (one statement instead of two), as
/// [`refresh_join_columns`] names its columns.
struct RefreshGrantRow {
    token_hash: String,
    grant_id: String,
    client_id: String,
    scope: String,
    created_at: i64,
    expires_at: i64,
    used_at: Option<i64>,
    grant: GrantJoinRow,
}

impl FromRow for RefreshGrantRow {
    fn from_row(row: &Row<'_>) -> Result<Self, DbError> {
        Ok(RefreshGrantRow {
            token_hash: row.get("rt_token_hash")?,
            grant_id: row.get("rt_grant_id")?,
            client_id: row.get("rt_client_id")?,
            scope: row.get("rt_scope")?,
            created_at: row.get("rt_created_at")?,
            expires_at: row.get("rt_expires_at")?,
            used_at: row.get("rt_used_at")?,
            grant: GrantJoinRow::from_row(row)?,
        })
    }
}

impl RefreshGrantRow {
    fn into_pair(self) -> Result<(RefreshToken, Grant), StoreError> {
        let grant = self.grant.into_grant(self.grant_id.clone())?;
        let token = RefreshToken {
            token_hash: self.token_hash,
            grant_id: self.grant_id,
            client_id: self.client_id,
            scope: self.scope,
            created_at: self.created_at,
            expires_at: self.expires_at,
            used_at: self.used_at,
        };
        Ok((token, grant))
    }
}

/// A refresh token with its grant, the grant's user, the user's stored risk and the version
/// of their sign-ins, read together ([`Store::refresh_token_and_user`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenUser {
    /// The refresh token, whatever its state.
    pub token: RefreshToken,
    /// Its grant, whatever its state.
    pub grant: Grant,
    /// The grant's user.
    pub user: User,
    /// The user's `user_risk` row; `None` if their risk was never set.
    pub user_risk: Option<UserRiskRecord>,
    /// The version of the user's sign-ins, for [`Store::recent_sign_ins`].
    pub sign_ins_version: i64,
}

struct GrantJoinRow {
    g_client_id: String,
    g_user_id: String,
    g_session_id: Option<String>,
    g_scope: String,
    g_auth_time: i64,
    g_amr: String,
    g_acr: Option<String>,
    g_offline: i64,
    g_created_at: i64,
    g_expires_at: i64,
    g_revoked_at: Option<i64>,
    g_claims: Option<String>,
}
from_row!(GrantJoinRow {
    g_client_id,
    g_user_id,
    g_session_id,
    g_scope,
    g_auth_time,
    g_amr,
    g_acr,
    g_offline,
    g_created_at,
    g_expires_at,
    g_revoked_at,
    g_claims
});

impl GrantJoinRow {
    fn into_grant(self, id: String) -> Result<Grant, StoreError> {
        Grant::try_from(GrantRow {
            id,
            client_id: self.g_client_id,
            user_id: self.g_user_id,
            session_id: self.g_session_id,
            scope: self.g_scope,
            auth_time: self.g_auth_time,
            amr: self.g_amr,
            acr: self.g_acr,
            offline: self.g_offline,
            created_at: self.g_created_at,
            expires_at: self.g_expires_at,
            revoked_at: self.g_revoked_at,
            claims: self.g_claims,
        })
    }
}

/// The grant columns of a join, prefixed `g_` (the grant's id is the other table's `grant_id`).
macro_rules! grant_join_columns {
    () => {
        "g.client_id AS g_client_id, g.user_id AS g_user_id, g.session_id AS g_session_id, \
         g.scope AS g_scope, g.auth_time AS g_auth_time, g.amr AS g_amr, g.acr AS g_acr, \
         g.offline AS g_offline, g.created_at AS g_created_at, g.expires_at AS g_expires_at, \
         g.revoked_at AS g_revoked_at, g.claims AS g_claims"
    };
}

/// A refresh token's columns (`rt`) and its grant's (`g`), as [`RefreshGrantRow`] reads them.
macro_rules! refresh_join_columns {
    () => {
        concat!(
            "rt.token_hash AS rt_token_hash, rt.grant_id AS rt_grant_id, \
             rt.client_id AS rt_client_id, rt.scope AS rt_scope, \
             rt.created_at AS rt_created_at, rt.expires_at AS rt_expires_at, \
             rt.used_at AS rt_used_at, ",
            grant_join_columns!()
        )
    };
}

async fn refresh_with_grant(
    executor: impl crate::db::Executor,
    token_hash: &str,
) -> Result<Option<(RefreshToken, Grant)>, StoreError> {
    let row: Option<RefreshGrantRow> = query(concat!(
        "SELECT ",
        refresh_join_columns!(),
        " FROM all_refresh_tokens rt JOIN grants g ON g.id = rt.grant_id \
         WHERE rt.token_hash = $1"
    ))
    .bind(token_hash)
    .fetch_optional(executor)
    .await?;
    row.map(RefreshGrantRow::into_pair).transpose()
}

/// Marks a refresh token used if it is unused and unexpired and its grant live, the statement
/// checking it all. A family's tokens after the first are in `refresh_tokens`, which most
/// rotations find; its first is in its grant's row, tried second.
const MARK_USED: [&str; 2] = [
    "UPDATE refresh_tokens SET used_at = $1 \
     WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1 \
     AND EXISTS (SELECT 1 FROM grants g WHERE g.id = refresh_tokens.grant_id \
                 AND g.revoked_at IS NULL AND g.expires_at > $1)",
    "UPDATE grants SET refresh_used_at = $1 \
     WHERE refresh_hash = $2 AND refresh_used_at IS NULL AND refresh_expires_at > $1 \
     AND revoked_at IS NULL AND expires_at > $1",
];

/// Revokes a grant unless already revoked (the first revocation time is kept).
async fn revoke_grant_in(tx: &mut Tx, id: &str, now: i64) -> Result<bool, StoreError> {
    let done = query("UPDATE grants SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// What a [`StoreError::Conflict`] says when a refresh token's hash is taken.
fn hash_taken() -> String {
    "refresh token hash already exists".to_owned()
}

/// Stores a refresh token in `refresh_tokens`. A hash names one token, in either table:
/// [`StoreError::Conflict`] if it is taken (here by the primary key, in a grant's row by the
/// `NOT EXISTS`).
async fn insert_refresh_in(tx: &mut Tx, token: &RefreshToken) -> Result<(), StoreError> {
    let inserted = query(concat!(
        "INSERT INTO refresh_tokens (",
        refresh_columns!(),
        ") SELECT $1, $2, $3, $4, $5, $6, $7 \
         WHERE NOT EXISTS (SELECT 1 FROM grants WHERE refresh_hash = $1)"
    ))
    .bind(&token.token_hash)
    .bind(&token.grant_id)
    .bind(&token.client_id)
    .bind(&token.scope)
    .bind(token.created_at)
    .bind(token.expires_at)
    .bind(token.used_at)
    .execute(&mut *tx)
    .await
    .map_err(|e| StoreError::conflict_or_db(e, hash_taken))?;
    if inserted.rows_affected() == 0 {
        return Err(StoreError::Conflict(hash_taken()));
    }
    Ok(())
}

/// [`Store::end_user_sign_ins`] inside the caller's transaction: revokes the user's live
/// sessions and grants at `now`; returns how many of each.
pub(crate) async fn end_user_sign_ins_in(
    tx: &mut Tx,
    user_id: &str,
    now: i64,
) -> Result<(u64, u64), DbError> {
    let mut ended = [0; 2];
    for (n, sql) in [
        "UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
        "UPDATE grants SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
    ]
    .into_iter()
    .enumerate()
    {
        ended[n] = query(sql)
            .bind(now)
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    }
    Ok((ended[0], ended[1]))
}

/// A replayed code's outcome (its grant is revoked), logged.
fn replayed(grant_id: &str) -> CodeRedemption {
    tracing::warn!(grant_id = %grant_id, "authorization code replayed; grant revoked");
    CodeRedemption::Replayed {
        grant_id: grant_id.to_owned(),
    }
}

/// Stores a code's grant unless a grant with its id exists (the code was redeemed before:
/// `None`). In the same statement, a grant whose session has ended by `now`, or whose user is
/// no longer active (disabled or deleted), is stored revoked: `Some(true)` when the session is
/// live (or the grant has none) and the user active, `Some(false)` when not. One round trip
/// where separate session and user reads took three, and the caller may then use the user it
/// read when it issued the code.
///
/// `first_refresh`, the family's first refresh token, is stored in the grant's own row when
/// the grant is stored live, and not at all when it is stored revoked: so the whole code
/// exchange is this one statement, committing by itself. A hash taken in a grant's row fails
/// the statement (the unique index); one taken in `refresh_tokens` stores nothing, like a
/// replay (`None`), which the caller tells apart.
async fn insert_code_grant(
    target: impl Executor,
    grant: &Grant,
    first_refresh: Option<&RefreshToken>,
    now: i64,
) -> Result<Option<bool>, StoreError> {
    if let Some(token) = first_refresh
        && (token.grant_id != grant.id
            || token.client_id != grant.client_id
            || token.scope != grant.scope
            || token.used_at.is_some())
    {
        return Err(StoreError::Conflict(
            "a first refresh token must be unused and of its grant, client and scope".to_owned(),
        ));
    }
    // `live` is derived once and used by each CASE. (SQLite needs a WHERE on an INSERT ...
    // SELECT before ON CONFLICT, and has one.)
    let revoked: Option<(Option<i64>,)> = query(concat!(
        "INSERT INTO grants (",
        grant_columns!(),
        ", refresh_hash, refresh_created_at, refresh_expires_at) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
         CASE WHEN live.ok THEN $12 ELSE $14 END, $13, \
         CASE WHEN live.ok THEN $15 END, CASE WHEN live.ok THEN $16 END, \
         CASE WHEN live.ok THEN $17 END \
         FROM (SELECT ($4 IS NULL OR EXISTS (SELECT 1 FROM sessions \
             WHERE id = $4 AND revoked_at IS NULL AND expires_at > $14)) \
             AND EXISTS (SELECT 1 FROM users WHERE id = $3 AND status = 'active') AS ok) live \
         WHERE NOT EXISTS (SELECT 1 FROM refresh_tokens WHERE token_hash = $15) \
         ON CONFLICT (id) DO NOTHING RETURNING revoked_at"
    ))
    .bind(&grant.id)
    .bind(&grant.client_id)
    .bind(&grant.user_id)
    .bind(&grant.session_id)
    .bind(&grant.scope)
    .bind(grant.auth_time)
    .bind(strings_to_json(&grant.amr)?)
    .bind(&grant.acr)
    .bind(bool_to_db(grant.offline))
    .bind(grant.created_at)
    .bind(grant.expires_at)
    .bind(grant.revoked_at)
    .bind(&grant.claims)
    .bind(now)
    .bind(first_refresh.map(|t| t.token_hash.as_str()))
    .bind(first_refresh.map(|t| t.created_at))
    .bind(first_refresh.map(|t| t.expires_at))
    .fetch_optional(target)
    .await
    .map_err(|e| StoreError::conflict_or_db(e, hash_taken))?;
    Ok(revoked.map(|(revoked_at,)| revoked_at == grant.revoked_at))
}

impl Store {
    /// The secret authorization codes are sealed with: the stored one, or `candidate` stored
    /// now if there is none yet (replicas starting together agree on the first one written).
    pub async fn code_sealing_secret(
        &self,
        candidate: &str,
        now: i64,
    ) -> Result<String, StoreError> {
        let mut tx = self.begin_write().await?;
        query(
            "INSERT INTO code_sealing_keys (id, secret, created_at) VALUES ('current', $1, $2) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(self.seal("code_sealing_keys", "current", candidate))
        .bind(now)
        .execute(&mut tx)
        .await?;
        let (secret,): (String,) =
            query("SELECT secret FROM code_sealing_keys WHERE id = 'current'")
                .fetch_one(&mut tx)
                .await?;
        tx.commit().await?;
        self.open("code_sealing_keys", "current", &secret)
    }

    /// Redeems a sealed authorization code at most once. `code` and `grant` are what the code
    /// carried (the caller has opened it, so they are authentic); nothing of them is stored
    /// until now, so issuing the code wrote nothing.
    ///
    /// The grant is inserted, and its id is the code's "spent" mark: a second redemption (a
    /// replay, or the loser of two concurrent ones) finds it and revokes the grant with every
    /// token issued from it, even after the code has expired. A fresh code whose session has
    /// ended since (sign-out, an admin or risk ending the user's sign-ins), or whose user is no
    /// longer active, is refused and spent.
    ///
    /// `check` runs first, on the code alone, so the caller can check it against the request
    /// (client, redirect URI, PKCE) and mint the family's first refresh token. If it fails, the
    /// grant is stored revoked (the code is spent, so it cannot be retried) and its error is
    /// returned as `Ok(Err(e))`. If it returns a refresh token (it must be unused and of the
    /// grant, its client and scope, else [`StoreError::Conflict`] and nothing is stored), the
    /// token is stored in the grant's row. Either way the redemption is one statement
    /// committing by itself: on PostgreSQL one round trip, not the four of a transaction
    /// writing two tables. Every other outcome is returned as `Ok(Ok(_))`.
    pub async fn redeem_sealed_code<E>(
        &self,
        code: &AuthCode,
        grant: &Grant,
        now: i64,
        check: impl FnOnce(&AuthCode, &Grant) -> Result<Option<RefreshToken>, E>,
    ) -> Result<Result<CodeRedemption, E>, StoreError> {
        if code.expires_at <= now || grant.expires_at <= now {
            let mut tx = self.begin_write().await?;
            let outcome = if grant_in(&mut tx, &grant.id).await?.is_some() {
                revoke_grant_in(&mut tx, &grant.id, now).await?;
                replayed(&grant.id)
            } else {
                CodeRedemption::Expired
            };
            tx.commit().await?;
            return Ok(Ok(outcome));
        }
        let checked = check(code, grant);
        let stored = match &checked {
            Ok(first_refresh) => {
                insert_code_grant(self.db.one_write(), grant, first_refresh.as_ref(), now).await?
            }
            Err(_) => {
                let refused = Grant {
                    revoked_at: Some(now),
                    ..grant.clone()
                };
                insert_code_grant(self.db.one_write(), &refused, None, now).await?
            }
        };
        let Some(session_live) = stored else {
            if matches!(checked, Ok(Some(_))) && self.grant(&grant.id).await?.is_none() {
                // Not a replay: the first refresh token's hash is taken, and nothing is spent.
                return Err(StoreError::Conflict(hash_taken()));
            }
            self.revoke_grant(&grant.id, now).await?;
            return Ok(Ok(replayed(&grant.id)));
        };
        Ok(match checked {
            Err(e) => Err(e),
            // Stored revoked: the code is spent, and nothing can use the grant.
            Ok(_) if !session_live => Ok(CodeRedemption::GrantRevoked),
            Ok(_) => Ok(CodeRedemption::Redeemed),
        })
    }

    /// The grant with this id, whatever its state (check `expires_at` and `revoked_at`).
    pub async fn grant(&self, id: &str) -> Result<Option<Grant>, StoreError> {
        let row: Option<GrantRow> = query(concat!(
            "SELECT ",
            grant_columns!(),
            " FROM grants WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.db)
        .await?;
        row.map(Grant::try_from).transpose()
    }

    /// Revokes a grant, and with it its access tokens and refresh token family.
    /// Returns whether this call revoked it (false if unknown or already revoked).
    pub async fn revoke_grant(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        let done = query("UPDATE grants SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(&self.db)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Revokes the grants created in a browser session (sign-out, session revocation);
    /// `offline` grants only when `include_offline`. Returns how many were revoked.
    pub async fn revoke_session_grants(
        &self,
        session_id: &str,
        include_offline: bool,
        now: i64,
    ) -> Result<u64, StoreError> {
        let done = query(
            "UPDATE grants SET revoked_at = $1 \
             WHERE session_id = $2 AND revoked_at IS NULL AND ($3 = 1 OR offline = 0)",
        )
        .bind(now)
        .bind(session_id)
        .bind(bool_to_db(include_offline))
        .execute(&self.db)
        .await?;
        Ok(done.rows_affected())
    }

    /// Ends what a user's sign-ins got them, in one transaction: every session and every grant
    /// (refresh tokens, and the access tokens tied to their grants), offline ones included —
    /// the user's credentials may be in someone else's hands (compromise confirmed, password
    /// reset, account disabled). Returns how many sessions and grants were revoked.
    pub async fn end_user_sign_ins(
        &self,
        user_id: &str,
        now: i64,
    ) -> Result<(u64, u64), StoreError> {
        self.end_user_sign_ins_signalled(user_id, now, &[]).await
    }

    /// [`Store::end_user_sign_ins`], writing `signals` (CAEP `session-revoked`...) to the
    /// Shared Signals outbox in the same transaction.
    pub async fn end_user_sign_ins_signalled(
        &self,
        user_id: &str,
        now: i64,
        signals: &[crate::Signal],
    ) -> Result<(u64, u64), StoreError> {
        let mut tx = self.begin_write().await?;
        let ended = end_user_sign_ins_in(&mut tx, user_id, now).await?;
        crate::ssf::enqueue_signals(&mut tx, signals).await?;
        tx.commit().await?;
        Ok(ended)
    }

    /// Stores a refresh token of an existing grant (a code exchange stores the family's first
    /// with its grant: see [`Store::redeem_sealed_code`]). [`StoreError::Conflict`] if the
    /// hash is taken.
    pub async fn insert_refresh_token(&self, token: &RefreshToken) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        insert_refresh_in(&mut tx, token).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The refresh token with this hash and its grant, whatever their state, in one read
    /// (`None` if either is gone).
    pub async fn refresh_token_with_grant(
        &self,
        hash: &str,
    ) -> Result<Option<(RefreshToken, Grant)>, StoreError> {
        refresh_with_grant(&self.db, hash).await
    }

    /// [`Store::refresh_token_with_grant`], the grant's user, the user's stored risk and the
    /// version of their sign-ins, in one read: what judging a refresh needs, without a round
    /// trip for each (`None` if the token, its grant or its user is gone).
    pub async fn refresh_token_and_user(
        &self,
        hash: &str,
    ) -> Result<Option<RefreshTokenUser>, StoreError> {
        struct Joined {
            refresh: RefreshGrantRow,
            user: JoinedUserRow,
        }
        impl FromRow for Joined {
            fn from_row(row: &Row<'_>) -> Result<Self, DbError> {
                Ok(Joined {
                    refresh: RefreshGrantRow::from_row(row)?,
                    user: JoinedUserRow::from_row(row)?,
                })
            }
        }
        let row: Option<Joined> = query(concat!(
            "SELECT ",
            refresh_join_columns!(),
            ", ",
            joined_user_columns!(),
            ", ",
            joined_user_risk_columns!(),
            " FROM all_refresh_tokens rt JOIN grants g ON g.id = rt.grant_id \
             JOIN users u ON u.id = g.user_id ",
            joined_user_risk_tables!(),
            " WHERE rt.token_hash = $1"
        ))
        .bind(hash)
        .fetch_optional(&self.db)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let (token, grant) = row.refresh.into_pair()?;
        let (user, user_risk, sign_ins_version) = row.user.into_parts()?;
        Ok(Some(RefreshTokenUser {
            token,
            grant,
            user,
            user_risk,
            sign_ins_version,
        }))
    }

    /// The refresh token with this hash, whatever its state.
    pub async fn refresh_token(&self, hash: &str) -> Result<Option<RefreshToken>, StoreError> {
        let token: Option<RefreshToken> = query(concat!(
            "SELECT ",
            refresh_columns!(),
            " FROM all_refresh_tokens WHERE token_hash = $1"
        ))
        .bind(hash)
        .fetch_optional(&self.db)
        .await?;
        Ok(token)
    }

    /// Rotates a refresh token: marks `old_hash` used and stores `new`, in one transaction.
    ///
    /// Atomic: of two concurrent rotations of the same token one rotates and the other is
    /// reuse. Reuse of an already used token revokes the grant, which kills the whole family
    /// (the new token included). A token whose grant is revoked or expired never rotates. `new`
    /// must belong to the same grant and client as the old token, else [`StoreError::Conflict`]
    /// and nothing changes.
    pub async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        new: &RefreshToken,
        now: i64,
    ) -> Result<Rotation, StoreError> {
        self.rotate_refresh_token_with(old_hash, now, |old, _| {
            if old.grant_id != new.grant_id || old.client_id != new.client_id {
                return Err(StoreError::Conflict(
                    "a rotated refresh token must keep its grant and client".to_owned(),
                ));
            }
            Ok(new.clone())
        })
        .await?
    }

    /// Rotates a refresh token like [`Store::rotate_refresh_token`], with the new token made by
    /// `prepare` from the old token and its grant as stored, in the same transaction.
    ///
    /// `prepare` runs before anything changes (the caller checks the client and the requested
    /// scope there). If it fails, the transaction is rolled back with nothing changed, whatever
    /// the token's state (a used token is not treated as reused), and its error is returned as
    /// `Ok(Err(e))`. The token it returns must belong to the same grant and client as the old
    /// one, else [`StoreError::Conflict`] and nothing changes.
    pub async fn rotate_refresh_token_with<E>(
        &self,
        old_hash: &str,
        now: i64,
        prepare: impl FnOnce(&RefreshToken, &Grant) -> Result<RefreshToken, E>,
    ) -> Result<Result<Rotation, E>, StoreError> {
        // Read before taking the write turn, so the (serialized) write transaction is short.
        let Some(read) = refresh_with_grant(&self.db, old_hash).await? else {
            return Ok(Ok(Rotation::NotFound));
        };
        self.rotate_read_refresh_token(read, now, prepare).await
    }

    /// [`Store::rotate_refresh_token_with`] for a token and grant the caller has read with
    /// [`Store::refresh_token_with_grant`]: one read fewer. A read of any age is safe: what
    /// is taken from it cannot change (a token's grant and client, a grant's scope, claims and
    /// expiry are never updated), and what can (the token being used, the grant being revoked)
    /// is checked again atomically inside the transaction.
    pub async fn rotate_read_refresh_token<E>(
        &self,
        (mut old, grant): (RefreshToken, Grant),
        now: i64,
        prepare: impl FnOnce(&RefreshToken, &Grant) -> Result<RefreshToken, E>,
    ) -> Result<Result<Rotation, E>, StoreError> {
        let old_hash = old.token_hash.clone();
        let old_hash = old_hash.as_str();
        let new = match prepare(&old, &grant) {
            Ok(new) => new,
            Err(e) => return Ok(Err(e)),
        };
        if old.grant_id != new.grant_id || old.client_id != new.client_id {
            return Err(StoreError::Conflict(
                "a rotated refresh token must keep its grant and client".to_owned(),
            ));
        }
        let mut tx = self.begin_write().await?;
        // The conditions are checked by the UPDATE itself: a concurrent rotation or revocation
        // may have committed since the read above.
        let mut used = 0;
        for sql in MARK_USED {
            used = query(sql)
                .bind(now)
                .bind(old_hash)
                .execute(&mut tx)
                .await?
                .rows_affected();
            if used == 1 {
                break;
            }
        }
        let outcome = if used == 1 {
            insert_refresh_in(&mut tx, &new).await?;
            // Grants change only by revocation, which the UPDATE has just ruled out.
            old.used_at = Some(now);
            Rotation::Rotated { old, grant }
        } else {
            // Re-read: a concurrent rotation may have committed since the first read.
            let Some(old) = refresh_in(&mut tx, old_hash).await? else {
                // Purged in between.
                return Ok(Ok(Rotation::NotFound));
            };
            let grant = grant_in(&mut tx, &old.grant_id).await?;
            if old.used_at.is_some() {
                revoke_grant_in(&mut tx, &old.grant_id, now).await?;
                tracing::warn!(grant_id = %old.grant_id, "refresh token reused; grant revoked");
                Rotation::Reused {
                    grant_id: old.grant_id,
                }
            } else {
                match grant {
                    None => Rotation::GrantRevoked,
                    Some(g) if g.revoked_at.is_some() => Rotation::GrantRevoked,
                    Some(_) => Rotation::Expired,
                }
            }
        };
        tx.commit().await?;
        Ok(Ok(outcome))
    }
}
