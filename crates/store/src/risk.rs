//! User risk (Graph `riskyUser`) and its history: `user_risk`, `risk_history`.
//!
//! Level, state and detail are Graph's camelCase strings (`high`, `atRisk`, `none`, ...),
//! stored as given: the server owns and validates the vocabulary.

use crate::db::{DbError, FromRow, Row, Tx, from_row, query, query_assembled};
use crate::users::{UserRow, joined_user_columns, like_prefix, normalize_email};
use crate::{Store, StoreError, User, UserCondition};

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

/// What a risky user on a [`Store::list_risky_users`] page satisfies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RiskyUserCondition {
    /// A condition on the user (sign-in name or display name; a type condition is ignored:
    /// the report holds members only).
    User(UserCondition),
    /// `riskLevel` is this (Graph's spelling).
    LevelIs(String),
    /// `riskState` is this (Graph's spelling).
    StateIs(String),
}

/// A page of the risky users report: members whose risk was ever recorded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RiskyUserQuery {
    /// What every user on the page satisfies.
    pub conditions: Vec<RiskyUserCondition>,
    /// Least recently changed first (default: most recently).
    pub oldest_first: bool,
    /// Page size.
    pub limit: i64,
    /// Where the previous page ended: its last row's (risk `updated_at`, user id). Keyset
    /// paging: a page costs the same however deep it is, and rows changed meanwhile are
    /// neither repeated nor skipped because of rows before them.
    pub after: Option<(i64, String)>,
}

/// A member and their stored risk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskyUser {
    /// The member.
    pub user: User,
    /// Their risk as stored.
    pub risk: UserRiskRecord,
}

struct RiskyUserRow {
    user: UserRow,
    level: String,
    state: String,
    detail: String,
    risk_updated_at: i64,
}

impl FromRow for RiskyUserRow {
    fn from_row(row: &Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            user: UserRow::from_row(row)?,
            level: row.get("level")?,
            state: row.get("state")?,
            detail: row.get("detail")?,
            risk_updated_at: row.get("risk_updated_at")?,
        })
    }
}

impl Store {
    /// One page of the risky users report (members only: a guest's risk is their home's),
    /// ordered by when their risk last changed, then by user id. Served by the
    /// `user_risk (updated_at, user_id)` index, each row's user found by id; filters on the
    /// user are checked on the joined row. `CROSS JOIN` is how SQLite is told to read
    /// `user_risk` first: without statistics its planner would scan every user and sort
    /// (PostgreSQL plans it as any join).
    pub async fn list_risky_users(&self, q: &RiskyUserQuery) -> Result<Vec<RiskyUser>, StoreError> {
        let mut conditions: Vec<String> = vec!["u.user_type = 'member'".to_owned()];
        let mut args: Vec<String> = Vec::new();
        let mut push = |condition: &str, arg: String| {
            args.push(arg);
            conditions.push(condition.replace('?', &format!("${}", args.len())));
        };
        for c in &q.conditions {
            match c {
                RiskyUserCondition::User(UserCondition::EmailIs(email)) => {
                    push("u.email = ?", normalize_email(email));
                }
                RiskyUserCondition::User(UserCondition::EmailStartsWith(prefix)) => push(
                    r"u.email LIKE ? ESCAPE '\'",
                    like_prefix(&normalize_email(prefix)),
                ),
                RiskyUserCondition::User(UserCondition::DisplayNameIs(name)) => {
                    push("LOWER(u.display_name) = LOWER(?)", name.clone());
                }
                RiskyUserCondition::User(UserCondition::DisplayNameStartsWith(prefix)) => push(
                    r"LOWER(u.display_name) LIKE LOWER(?) ESCAPE '\'",
                    like_prefix(prefix),
                ),
                RiskyUserCondition::User(UserCondition::TypeIs(_)) => {}
                RiskyUserCondition::LevelIs(level) => push("r.level = ?", level.clone()),
                RiskyUserCondition::StateIs(state) => push("r.state = ?", state.clone()),
            }
        }
        let order = if q.oldest_first { "ASC" } else { "DESC" };
        let n = args.len();
        let (keyset, limit) = match &q.after {
            Some(_) => {
                let op = if q.oldest_first { ">" } else { "<" };
                (
                    format!(
                        " AND (r.updated_at {op} ${at} OR (r.updated_at = ${at} AND r.user_id {op} ${id}))",
                        at = n + 1,
                        id = n + 2
                    ),
                    n + 3,
                )
            }
            None => (String::new(), n + 1),
        };
        let sql = format!(
            concat!(
                "SELECT ",
                joined_user_columns!(),
                ", r.level, r.state, r.detail, r.updated_at AS risk_updated_at \
                 FROM user_risk r CROSS JOIN users u WHERE u.id = r.user_id AND {}{} \
                 ORDER BY r.updated_at {}, r.user_id {} LIMIT ${}"
            ),
            conditions.join(" AND "),
            keyset,
            order,
            order,
            limit
        );
        let mut query = query_assembled(sql);
        for arg in args {
            query = query.bind(arg);
        }
        if let Some((at, id)) = &q.after {
            query = query.bind(*at).bind(id.as_str());
        }
        let rows: Vec<RiskyUserRow> = query.bind(q.limit.max(0)).fetch_all(&self.db).await?;
        rows.into_iter()
            .map(|r| {
                let user = User::try_from(r.user)?;
                let risk = UserRiskRecord {
                    user_id: user.id.clone(),
                    level: r.level,
                    state: r.state,
                    detail: r.detail,
                    updated_at: r.risk_updated_at,
                };
                Ok(RiskyUser { user, risk })
            })
            .collect()
    }
}
