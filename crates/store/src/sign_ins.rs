//! The sign-in log (Graph `signIn`-shaped): `sign_ins`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use crate::db::{Db, DbError, Encode, Executor, Value, from_row, query, query_assembled};
use crate::{Store, StoreError};

/// How long a logged sign-in may wait in the queue before it is written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// Sign-in rows logged but not yet written, and the database they go to.
#[derive(Debug)]
pub(crate) struct SignInQueue {
    db: Db,
    queued: Mutex<Queued>,
    /// The policy sets (`sign_in_policy_sets`) known to be stored, so a row whose list of
    /// applied policies was seen before costs no insert for it.
    policy_sets: PolicySets,
    /// Held by a flush from taking the rows to its commit, and by a reader of the queue and
    /// the table whose read overlapped a flush (see `Queued::flushes`), so no reader sees a
    /// row in neither place.
    flushing: tokio::sync::Mutex<()>,
}

impl SignInQueue {
    /// A queue for `db`, written every [`FLUSH_EVERY`] by a task that ends when the queue (the
    /// last clone of its store) is dropped.
    pub(crate) fn start(db: Db) -> std::sync::Arc<SignInQueue> {
        let queue = std::sync::Arc::new(SignInQueue {
            db,
            queued: Mutex::new(Queued::default()),
            policy_sets: PolicySets::default(),
            flushing: tokio::sync::Mutex::new(()),
        });
        tokio::spawn(write_behind(std::sync::Arc::downgrade(&queue)));
        queue
    }

    /// Writes the queued rows in one transaction. While the database cannot be reached the
    /// rows go back to the front of the queue for the next flush (up to [`MAX_QUEUED`]), so a
    /// database that is away for a moment loses no sign-in. If the transaction fails for another
    /// reason (on PostgreSQL one bad row, say text with a NUL byte, aborts the whole
    /// transaction), the rows are written one by one, so one bad row costs only itself.
    ///
    /// When it returns `Ok`, no row logged before the call is still waiting: with nothing
    /// queued it still waits for a flush under way, whose rows are in neither the queue nor the
    /// table until it commits (so every reader that writes the queue first sees them).
    pub(crate) async fn flush(&self) -> Result<(), StoreError> {
        if self.lock().settled() {
            return Ok(());
        }
        let _flushing = self.flushing.lock().await;
        let tx = self.db.begin_write().await?;
        let (rows, _taken) = {
            let mut queued = self.lock();
            // Odd from here until the rows are written or back in the queue (`Taken`'s drop).
            queued.flushes += 1;
            (std::mem::take(&mut queued.rows), Taken(self))
        };
        if rows.is_empty() {
            // Another flush (the background one, or close) wrote them while this one waited.
            return Ok(());
        }
        let e = match write_all(&rows, &self.policy_sets, tx).await {
            Ok(heads) => {
                self.lock().recent.advanced(&heads);
                return Ok(());
            }
            Err(e) => e,
        };
        if e.is_unavailable() {
            self.requeue(rows);
            return Err(e.into());
        }
        tracing::warn!(error = %e, rows = rows.len(), "writing a batch of sign-in rows failed; writing them one by one");
        for (i, row) in rows.iter().enumerate() {
            match insert_row(row, &self.policy_sets, &self.db).await {
                Ok(()) => {}
                Err(e) if e.is_unavailable() => {
                    self.requeue(rows[i..].to_vec());
                    return Err(e.into());
                }
                Err(e) => {
                    tracing::error!(sign_in = %row.id, error = %e, "a sign-in row could not be written");
                    // It may be in a user's recent sign-ins, and now never in the table.
                    self.lock().recent.forget();
                }
            }
        }
        Ok(())
    }

    /// Puts `rows` back ahead of what was logged since, keeping at most [`MAX_QUEUED`] (the
    /// newest: a database away for hours costs memory no further than this).
    fn requeue(&self, mut rows: Vec<SignInLog>) {
        let mut queued = self.lock();
        rows.append(&mut queued.rows);
        let excess = rows.len().saturating_sub(MAX_QUEUED);
        if excess > 0 {
            tracing::error!(
                rows = excess,
                "the sign-in log queue is full while the database is away; the oldest rows are lost"
            );
            rows.drain(..excess);
            queued.recent.forget();
        }
        queued.rows = rows;
    }

    /// The queue and the recent sign-ins; a panic elsewhere while holding the lock leaves them
    /// usable.
    fn lock(&self) -> MutexGuard<'_, Queued> {
        self.queued
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// [`SignInQueue::flush`], but only if a read of the table alone could miss a row that
    /// `counts` picks: one still queued, or one a flush under way has taken. A reader that
    /// cares about a few rows (the password-spray count: failures from one IP) so pays for a
    /// commit only when one of them is waiting, not on every call.
    pub(crate) async fn write_before_reading(
        &self,
        counts: impl Fn(&SignInLog) -> bool,
    ) -> Result<(), StoreError> {
        let needed = {
            let queued = self.lock();
            queued.flush_under_way() || queued.rows.iter().any(counts)
        };
        if needed { self.flush().await } else { Ok(()) }
    }

    /// Forgets every user's recent sign-ins: the table changed in a way a logged row does not
    /// describe (an update, a purge, a row written directly).
    pub(crate) fn forget_recent(&self) {
        self.lock().recent.forget();
    }
}

/// A flush's rows, taken from the queue: on drop (written, or put back) the flush count is
/// even again.
struct Taken<'a>(&'a SignInQueue);

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        self.0.lock().flushes += 1;
    }
}

/// What the queue's lock guards together, so that a reader filling a user's recent sign-ins
/// from the table and the queue cannot miss a row logged meanwhile.
#[derive(Debug, Default)]
struct Queued {
    /// Logged, not yet written.
    rows: Vec<SignInLog>,
    /// Bumped when a flush takes the rows and again when they are written or back in the
    /// queue: odd while some rows are in neither place. A reader of the table and the queue
    /// that saw the same even count before and after missed no row, without waiting for a
    /// flush (on PostgreSQL a read is a round trip, and holding the flush lock across it made
    /// every sign-in's read wait for the one before).
    flushes: u64,
    /// The recent sign-ins of users seen lately.
    recent: RecentSignIns,
}

impl Queued {
    /// A flush has taken rows that are not in the table yet.
    fn flush_under_way(&self) -> bool {
        !self.flushes.is_multiple_of(2)
    }

    /// Nothing queued and no flush under way: every logged row is in the table.
    fn settled(&self) -> bool {
        self.rows.is_empty() && !self.flush_under_way()
    }
}

/// How many users' recent sign-ins are kept in memory (the first filled go first). A user's 50
/// rows take about 20 KiB, so this bounds them to about 5 MiB.
pub const RECENT_USERS: usize = 256;

/// The newest sign-ins that count for sign-in risk, of the users who signed in lately, kept so
/// a user's next sign-in reads them from memory. Kept coherent with the table: a logged row
/// is added to its user's ring as it is queued, and anything else that changes which rows
/// count (an update of risk states, a purge, a row written directly, a row that could not be
/// written) forgets them all. What another connection commits (another replica, another
/// process on the same SQLite file) is seen through the user's version in `sign_in_heads`,
/// which a ring must have reached to be read.
#[derive(Debug, Default)]
struct RecentSignIns {
    users: HashMap<String, Ring>,
    /// The users in the order they were filled, oldest first.
    order: VecDeque<String>,
    /// Counts the times all was forgotten: a reader fills a ring only if nothing was forgotten
    /// since it began, so a read from before a change cannot land after it.
    generation: u64,
}

/// One user's newest rows, newest first: the first `depth` of theirs, or all of them if fewer.
#[derive(Debug)]
struct Ring {
    rows: VecDeque<Arc<RecentSignIn>>,
    depth: usize,
    /// The user's version in `sign_in_heads` that the rows are the table's at, or newer (with
    /// this replica's logged rows on top); `None` when not known.
    version: Option<i64>,
}

impl RecentSignIns {
    /// The user's ring, if it holds `limit` rows and is at `version` or a later one (a reader
    /// whose version was read before a flush moved it on may have the newer rows: they are what
    /// a read of the table now would return).
    fn get(&self, user_id: &str, limit: usize, version: i64) -> Option<Vec<Arc<RecentSignIn>>> {
        let ring = self.users.get(user_id)?;
        let current = ring.version.is_some_and(|at| at >= version);
        (current && limit <= ring.depth).then(|| ring.rows.iter().take(limit).cloned().collect())
    }

    fn fill(
        &mut self,
        generation: u64,
        user_id: &str,
        depth: usize,
        rows: &[Arc<RecentSignIn>],
        version: i64,
    ) {
        if generation != self.generation {
            return;
        }
        if !self.users.contains_key(user_id) {
            if self.order.len() >= RECENT_USERS
                && let Some(oldest) = self.order.pop_front()
            {
                self.users.remove(&oldest);
            }
            self.order.push_back(user_id.to_owned());
        }
        if let Some(kept) = self.users.get(user_id)
            && kept.version > Some(version)
            && kept.depth >= depth
        {
            // A reader that read an older version would only put the ring back.
            return;
        }
        let rows = rows.iter().take(depth).cloned().collect();
        self.users.insert(
            user_id.to_owned(),
            Ring {
                rows,
                depth,
                version: Some(version),
            },
        );
    }

    /// A flush committed, moving these users' versions on to these: a ring one behind holds
    /// what was written (its rows were added as they were logged) and moves on too, a ring
    /// filled since from a read of that version or later stays, and any other (another replica
    /// wrote in between) is no longer known to be current.
    fn advanced(&mut self, heads: &[(String, i64)]) {
        for (user_id, version) in heads {
            if let Some(ring) = self.users.get_mut(user_id) {
                ring.version = match ring.version {
                    Some(at) if at == version - 1 => Some(*version),
                    Some(at) if at >= *version => Some(at),
                    _ => None,
                };
            }
        }
    }

    fn logged(&mut self, log: &SignInLog) {
        let Some(ring) = log
            .user_id
            .as_deref()
            .and_then(|user| self.users.get_mut(user))
        else {
            return;
        };
        if counts_for_risk(log) {
            ring.rows.push_front(Arc::new(RecentSignIn::from(log)));
            ring.rows.truncate(ring.depth);
        }
    }

    fn forget(&mut self) {
        self.users.clear();
        self.order.clear();
        self.generation += 1;
    }
}

/// Whether sign-in risk compares later sign-ins with this one (see [`Store::recent_sign_ins`]).
fn counts_for_risk(log: &SignInLog) -> bool {
    (log.error_code == 0 || log.risk_state.as_deref() == Some(CONFIRMED_SAFE))
        && log.sign_in_event_type == INTERACTIVE_USER
}

impl From<&SignInLog> for RecentSignIn {
    fn from(log: &SignInLog) -> RecentSignIn {
        RecentSignIn {
            created_at: log.created_at,
            ip_address: log.ip_address.clone(),
            user_agent: log.user_agent.as_deref().map(Arc::from),
            location: log.location.clone(),
            decoded: OnceLock::new(),
        }
    }
}

/// Most sign-in rows kept in memory while the database cannot be reached.
pub const MAX_QUEUED: usize = 100_000;

/// Writes `rows` and moves their users' versions on, in `tx`, and commits; the users' new
/// versions.
async fn write_all(
    rows: &[SignInLog],
    sets: &PolicySets,
    mut tx: crate::db::Tx,
) -> Result<Vec<(String, i64)>, DbError> {
    let leans = rows
        .iter()
        .map(|r| lean(r, sets))
        .collect::<Result<Vec<_>, _>>()?;
    let mut stored: Vec<String> = Vec::new();
    for (id, json) in leans.iter().filter_map(|l| l.policies.as_ref()) {
        if !sets.contains(id) && !stored.contains(id) {
            insert_policy_set(id, json, &mut tx).await?;
            stored.push(id.clone());
        }
    }
    let most = if tx.is_postgres() {
        MOST_ROWS_PER_INSERT
    } else {
        1
    };
    let mut rest: Vec<Vec<Value>> = rows.iter().zip(&leans).map(row_values).collect();
    while !rest.is_empty() {
        let n = chunk_len(&rest, most);
        let tail = rest.split_off(n);
        insert_rows(rest, &mut tx).await?;
        rest = tail;
    }
    let heads = advance_heads(users_counting(rows), &mut tx).await?;
    tx.commit().await?;
    // Only now are they known to be there: a rolled-back batch leaves them unknown.
    sets.known(stored);
    Ok(heads)
}

/// The users with a row in `rows` that counts for sign-in risk.
fn users_counting(rows: &[SignInLog]) -> Vec<&str> {
    rows.iter()
        .filter(|r| counts_for_risk(r))
        .filter_map(|r| r.user_id.as_deref())
        .collect()
}

/// Moves each user's version in `sign_in_heads` on by one (from 0 for a user without one),
/// in the caller's transaction, which changes their sign-ins; their new versions. Each user
/// once, in order, so concurrent transactions lock their users' heads in the same order and
/// cannot deadlock.
pub(crate) async fn advance_heads(
    mut users: Vec<&str>,
    tx: &mut crate::db::Tx,
) -> Result<Vec<(String, i64)>, DbError> {
    users.sort_unstable();
    users.dedup();
    let mut heads = Vec::with_capacity(users.len());
    for user in users {
        let (version,): (i64,) = query(
            "INSERT INTO sign_in_heads (user_id, version) VALUES ($1, 1) \
             ON CONFLICT (user_id) DO UPDATE SET version = sign_in_heads.version + 1 \
             RETURNING version",
        )
        .bind(user)
        .fetch_one(&mut *tx)
        .await?;
        heads.push((user.to_owned(), version));
    }
    Ok(heads)
}

/// Most rows one `INSERT` of a batch writes on PostgreSQL, where each statement is a round
/// trip: a batch of `n` rows costs about `n / 32` statements, not `n`. On SQLite a statement is
/// a function call, and a long one only costs binding its parameters by name, so each row is
/// its own.
const MOST_ROWS_PER_INSERT: usize = 32;

/// Most bytes of parameters one `INSERT` of a batch sends (unless one row alone is larger).
/// sqlx does not set `TCP_NODELAY`: a message longer than one TLS record (16 KiB) leaves the
/// record's tail waiting on Nagle's algorithm for PostgreSQL's delayed ACK, 40 ms and more,
/// measured here as a stalled flush.
const MOST_BYTES_PER_INSERT: usize = 8 * 1024;

/// How many of `rows` (each its parameters) the next `INSERT` writes: a power of two up to
/// `most`, so a batch of any size uses a handful of statement texts (each prepared once), and
/// within [`MOST_BYTES_PER_INSERT`].
fn chunk_len(rows: &[Vec<Value>], most: usize) -> usize {
    let bytes = |rows: &[Vec<Value>]| rows.iter().flatten().map(Value::wire_len).sum::<usize>();
    let mut n = 1 << most.max(1).min(rows.len().max(1)).ilog2();
    while n > 1 && bytes(&rows[..n]) > MOST_BYTES_PER_INSERT {
        n /= 2;
    }
    n
}

/// The policy sets known to be in `sign_in_policy_sets`, and the names of the last few seen.
#[derive(Debug, Default)]
pub(crate) struct PolicySets(Mutex<KnownSets>);

#[derive(Debug, Default)]
struct KnownSets {
    stored: HashSet<String>,
    /// The last [`NAMED_SETS`] sets' JSON and names, newest first: the next row's set is
    /// almost always one of them, found by comparing its JSON, not by hashing it again.
    named: VecDeque<(String, String)>,
}

/// How many policy sets' names [`PolicySets::id_of`] keeps.
const NAMED_SETS: usize = 16;

impl PolicySets {
    fn lock(&self) -> MutexGuard<'_, KnownSets> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn contains(&self, id: &str) -> bool {
        self.lock().stored.contains(id)
    }

    fn known(&self, ids: impl IntoIterator<Item = String>) {
        self.lock().stored.extend(ids);
    }

    /// The name of the policy set `json` ([`policy_set_id`]).
    fn id_of(&self, json: &str) -> String {
        let mut sets = self.lock();
        if let Some(i) = sets.named.iter().position(|(j, _)| j == json) {
            let set = sets.named.remove(i).unwrap_or_default();
            let id = set.1.clone();
            sets.named.push_front(set);
            return id;
        }
        let id = policy_set_id(json);
        sets.named.truncate(NAMED_SETS - 1);
        sets.named.push_front((json.to_owned(), id.clone()));
        id
    }
}

/// The queue's writer: every [`FLUSH_EVERY`], whatever was logged since.
async fn write_behind(queue: Weak<SignInQueue>) {
    loop {
        tokio::time::sleep(FLUSH_EVERY).await;
        let Some(queue) = queue.upgrade() else {
            return;
        };
        match queue.flush().await {
            Ok(()) => {}
            Err(e) if e.is_unavailable() => {
                tracing::warn!(error = %e, "the sign-in log waits for the database");
            }
            Err(e) => tracing::error!(error = %e, "writing the sign-in log failed"),
        }
    }
}

/// One sign-in attempt, successful or not. Fields later features add (risk, policies, MFA)
/// go in `details`.
#[derive(Debug, Clone, PartialEq)]
pub struct SignInLog {
    /// Caller-chosen id.
    pub id: String,
    /// When it happened, unix seconds (`createdDateTime`).
    pub created_at: i64,
    /// Ties together the log lines and events of one sign-in (`correlationId`).
    pub correlation_id: String,
    /// The user, when known (`userId`).
    pub user_id: Option<String>,
    /// The name typed or asserted (`userPrincipalName`).
    pub user_principal_name: Option<String>,
    /// The app signed in to (`appId`).
    pub app_id: Option<String>,
    /// Client IP (`ipAddress`).
    pub ip_address: Option<String>,
    /// Browser user agent.
    pub user_agent: Option<String>,
    /// `status.errorCode`: 0 = success, else the code people can look up.
    pub error_code: i64,
    /// `status.failureReason`.
    pub failure_reason: Option<String>,
    /// `member` or `guest` (`userType`).
    pub user_type: String,
    /// `none` or `b2bCollaboration` (`crossTenantAccessType`).
    pub cross_tenant_access_type: String,
    /// The user's home tenant (`homeTenantId`).
    pub home_tenant_id: Option<String>,
    /// The tenant signed in to (`resourceTenantId`).
    pub resource_tenant_id: Option<String>,
    /// `riskLevelAggregated`: the user risk the sign-in was evaluated with, when evaluated.
    pub risk_level_aggregated: Option<String>,
    /// `riskLevelDuringSignIn`: the sign-in's own real-time risk, when evaluated.
    pub risk_level_during_sign_in: Option<String>,
    /// `conditionalAccessStatus`: `success`, `failure` or `notApplied`, when evaluated.
    pub conditional_access_status: Option<String>,
    /// Where the client IP is (JSON: country, city, latitude, longitude, asn), when known.
    pub location: Option<String>,
    /// Everything else, as a JSON value (stored as text).
    pub details: serde_json::Value,
    /// `interactiveUser` (a person at the pages) or `nonInteractiveUser` (a refresh-token
    /// grant), Graph's `signInEventTypes`.
    pub sign_in_event_type: String,
    /// `riskState` of a risky sign-in: `atRisk` when written, then what remediating the user
    /// made of it ([`Store::apply_risk_changes`] closes it). `None` for a sign-in without risk.
    pub risk_state: Option<String>,
    /// `riskDetail` going with `risk_state`.
    pub risk_detail: Option<String>,
}

/// The `riskState` of a risky sign-in an admin confirmed was the user's own.
pub const CONFIRMED_SAFE: &str = "confirmedSafe";

/// Graph's `signInEventTypes` value of an interactive sign-in.
pub const INTERACTIVE_USER: &str = "interactiveUser";
/// Graph's `signInEventTypes` value of a sign-in with a refresh token.
pub const NON_INTERACTIVE_USER: &str = "nonInteractiveUser";

struct SignInRow {
    id: String,
    created_at: i64,
    correlation_id: String,
    user_id: Option<String>,
    user_principal_name: Option<String>,
    app_id: Option<String>,
    ip_address: Option<String>,
    user_agent: Option<String>,
    error_code: i64,
    failure_reason: Option<String>,
    user_type: String,
    cross_tenant_access_type: String,
    home_tenant_id: Option<String>,
    resource_tenant_id: Option<String>,
    risk_level_aggregated: Option<String>,
    risk_level_during_sign_in: Option<String>,
    conditional_access_status: Option<String>,
    location: Option<String>,
    details: String,
    sign_in_event_type: String,
    risk_state: Option<String>,
    risk_detail: Option<String>,
    details_moved: i64,
    policies: Option<String>,
}
from_row!(SignInRow {
    id,
    created_at,
    correlation_id,
    user_id,
    user_principal_name,
    app_id,
    ip_address,
    user_agent,
    error_code,
    failure_reason,
    user_type,
    cross_tenant_access_type,
    home_tenant_id,
    resource_tenant_id,
    risk_level_aggregated,
    risk_level_during_sign_in,
    conditional_access_status,
    location,
    details,
    sign_in_event_type,
    risk_state,
    risk_detail,
    details_moved,
    policies
});

impl TryFrom<SignInRow> for SignInLog {
    type Error = StoreError;

    fn try_from(row: SignInRow) -> Result<SignInLog, StoreError> {
        let mut details: serde_json::Value = serde_json::from_str(&row.details).map_err(|e| {
            StoreError::Corrupt(format!("sign-in {}: details is not JSON: {e}", row.id))
        })?;
        restore(&mut details, &row)?;
        Ok(SignInLog {
            id: row.id,
            created_at: row.created_at,
            correlation_id: row.correlation_id,
            user_id: row.user_id,
            user_principal_name: row.user_principal_name,
            app_id: row.app_id,
            ip_address: row.ip_address,
            user_agent: row.user_agent,
            error_code: row.error_code,
            failure_reason: row.failure_reason,
            user_type: row.user_type,
            cross_tenant_access_type: row.cross_tenant_access_type,
            home_tenant_id: row.home_tenant_id,
            resource_tenant_id: row.resource_tenant_id,
            risk_level_aggregated: row.risk_level_aggregated,
            risk_level_during_sign_in: row.risk_level_during_sign_in,
            conditional_access_status: row.conditional_access_status,
            location: row.location,
            details,
            sign_in_event_type: row.sign_in_event_type,
            risk_state: row.risk_state,
            risk_detail: row.risk_detail,
        })
    }
}

macro_rules! sign_in_columns {
    () => {
        "id, created_at, correlation_id, user_id, user_principal_name, app_id, ip_address, \
         user_agent, error_code, failure_reason, user_type, cross_tenant_access_type, \
         home_tenant_id, resource_tenant_id, risk_level_aggregated, risk_level_during_sign_in, \
         conditional_access_status, location, details, sign_in_event_type, risk_state, \
         risk_detail, details_moved, policy_set_id"
    };
}

/// The columns read back: the row's, and its policy set's list (`policies`), joined.
macro_rules! sign_in_read_columns {
    () => {
        "s.id, s.created_at, s.correlation_id, s.user_id, s.user_principal_name, s.app_id, \
         s.ip_address, s.user_agent, s.error_code, s.failure_reason, s.user_type, \
         s.cross_tenant_access_type, s.home_tenant_id, s.resource_tenant_id, \
         s.risk_level_aggregated, s.risk_level_during_sign_in, s.conditional_access_status, \
         s.location, s.details, s.sign_in_event_type, s.risk_state, s.risk_detail, \
         s.details_moved, p.policies FROM sign_ins s \
         LEFT JOIN sign_in_policy_sets p ON p.policy_set_id = s.policy_set_id"
    };
}

/// The details key of the applied Conditional Access policies, stored as a policy set.
const APPLIED_POLICIES: &str = "appliedConditionalAccessPolicies";

/// The details keys whose values have columns of their own: a row written since migration 0026
/// leaves them out of `details` when they equal the column, with the key's bit set in
/// `details_moved`, and reading puts them back.
const MOVED: [(&str, i64); 3] = [
    ("riskLevelAggregated", 1),
    ("riskLevelDuringSignIn", 2),
    ("conditionalAccessStatus", 4),
];

/// The column that holds a [`MOVED`] key's value.
fn moved_column<'a>(
    key: &str,
    risk_level_aggregated: &'a Option<String>,
    risk_level_during_sign_in: &'a Option<String>,
    conditional_access_status: &'a Option<String>,
) -> &'a Option<String> {
    match key {
        "riskLevelAggregated" => risk_level_aggregated,
        "riskLevelDuringSignIn" => risk_level_during_sign_in,
        _ => conditional_access_status,
    }
}

/// A row's details as stored: without what the columns and the policy set hold.
struct Lean {
    details: String,
    moved: i64,
    /// The policy set: its name and JSON.
    policies: Option<(String, String)>,
}

/// Splits what is stored elsewhere off `log.details`, without copying the rest: it is written
/// straight from the row (see [`Without`]).
fn lean(log: &SignInLog, sets: &PolicySets) -> Result<Lean, DbError> {
    fn encode(v: &impl serde::Serialize) -> Result<String, DbError> {
        serde_json::to_string(v).map_err(|e| DbError::Usage(format!("cannot encode details: {e}")))
    }
    let Some(map) = log.details.as_object() else {
        return Ok(Lean {
            details: encode(&log.details)?,
            moved: 0,
            policies: None,
        });
    };
    let mut moved = 0;
    for (key, bit) in MOVED {
        let column = moved_column(
            key,
            &log.risk_level_aggregated,
            &log.risk_level_during_sign_in,
            &log.conditional_access_status,
        );
        if let (Some(column), Some(serde_json::Value::String(v))) = (column, map.get(key))
            && v == column
        {
            moved |= bit;
        }
    }
    let policies = match map.get(APPLIED_POLICIES) {
        Some(list @ serde_json::Value::Array(_)) => {
            let json = encode(list)?;
            Some((sets.id_of(&json), json))
        }
        _ => None,
    };
    Ok(Lean {
        details: encode(&Without {
            map,
            moved,
            policies: policies.is_some(),
        })?,
        moved,
        policies,
    })
}

/// A row's details without the keys [`lean`] stores elsewhere: the [`MOVED`] ones whose bit is
/// set in `moved`, and the applied policies when `policies`.
struct Without<'a> {
    map: &'a serde_json::Map<String, serde_json::Value>,
    moved: i64,
    policies: bool,
}

impl serde::Serialize for Without<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let stored_elsewhere = |key: &str| {
            (self.policies && key == APPLIED_POLICIES)
                || MOVED
                    .iter()
                    .any(|(k, bit)| *k == key && self.moved & bit != 0)
        };
        let mut map = s.serialize_map(None)?;
        for (key, value) in self.map {
            if !stored_elsewhere(key) {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

/// The name of a policy set: the first 128 bits of the SHA-256 of its JSON, in hex.
fn policy_set_id(json: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, json.as_bytes());
    digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Puts back into `details` what [`lean`] took out of it.
fn restore(details: &mut serde_json::Value, row: &SignInRow) -> Result<(), StoreError> {
    let Some(map) = details.as_object_mut() else {
        return Ok(());
    };
    if let Some(policies) = &row.policies {
        let list = serde_json::from_str(policies).map_err(|e| {
            StoreError::Corrupt(format!(
                "sign-in {}: its policy set is not JSON: {e}",
                row.id
            ))
        })?;
        map.insert(APPLIED_POLICIES.to_owned(), list);
    }
    for (key, bit) in MOVED {
        let column = moved_column(
            key,
            &row.risk_level_aggregated,
            &row.risk_level_during_sign_in,
            &row.conditional_access_status,
        );
        if row.details_moved & bit != 0
            && let Some(value) = column
        {
            map.insert(key.to_owned(), serde_json::Value::String(value.clone()));
        }
    }
    Ok(())
}

/// One earlier successful sign-in, as [`Store::recent_sign_ins`] returns it.
#[derive(Debug, Clone)]
pub struct RecentSignIn {
    /// Unix seconds.
    pub created_at: i64,
    /// Client IP.
    pub ip_address: Option<String>,
    /// Browser user agent, shared with every sign-in risk history that includes the row.
    pub user_agent: Option<Arc<str>>,
    /// The location JSON written with it ([`SignInLocation::to_json`]); private, so that
    /// `decoded` cannot go stale.
    location: Option<String>,
    /// The row as sign-in risk reads it, decoded once: a row kept in memory serves each of its
    /// user's next sign-ins, and decoding its location every time was 2% of a sign-in.
    decoded: OnceLock<RecentFacts>,
}

/// A kept sign-in's facts, decoded once and shared by every later sign-in that compares
/// itself with it.
#[derive(Debug, Clone, Default)]
pub struct RecentFacts {
    /// The client IP; `None` when the row has none or it does not parse.
    pub ip: Option<std::net::IpAddr>,
    /// Country code.
    pub country: Option<Arc<str>>,
    /// City.
    pub city: Option<Arc<str>>,
    /// Latitude, degrees.
    pub latitude: Option<f64>,
    /// Longitude, degrees.
    pub longitude: Option<f64>,
    /// Autonomous system number.
    pub asn: Option<u32>,
}

impl RecentSignIn {
    /// The location JSON written with the row.
    pub fn location(&self) -> Option<&str> {
        self.location.as_deref()
    }

    /// The row's facts, decoded; the location is empty for a row written before locations
    /// were, or unreadable (such a row still counts for its time, IP and user agent).
    pub fn facts(&self) -> &RecentFacts {
        self.decoded.get_or_init(|| {
            let location: SignInLocation = self
                .location
                .as_deref()
                .and_then(|l| serde_json::from_str(l).ok())
                .unwrap_or_default();
            RecentFacts {
                ip: self.ip_address.as_deref().and_then(|ip| ip.parse().ok()),
                country: location.country.as_deref().map(Arc::from),
                city: location.city.as_deref().map(Arc::from),
                latitude: location.latitude,
                longitude: location.longitude,
                asn: location.asn,
            }
        })
    }
}

/// Equal when the rows are: whether either was decoded yet does not matter.
impl PartialEq for RecentSignIn {
    fn eq(&self, other: &Self) -> bool {
        (
            self.created_at,
            &self.ip_address,
            &self.user_agent,
            &self.location,
        ) == (
            other.created_at,
            &other.ip_address,
            &other.user_agent,
            &other.location,
        )
    }
}

impl crate::db::FromRow for RecentSignIn {
    fn from_row(row: &crate::db::Row<'_>) -> Result<Self, DbError> {
        Ok(RecentSignIn {
            created_at: row.get("created_at")?,
            ip_address: row.get("ip_address")?,
            user_agent: row
                .get::<Option<String>>("user_agent")?
                .as_deref()
                .map(Arc::from),
            location: row.get("location")?,
            decoded: OnceLock::new(),
        })
    }
}

/// Where a sign-in came from, as its row's `location` column holds it (JSON): what sign-in
/// risk compares the user's next sign-ins with.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SignInLocation {
    /// Country code.
    pub country: Option<String>,
    /// City.
    pub city: Option<String>,
    /// Latitude, degrees.
    pub latitude: Option<f64>,
    /// Longitude, degrees.
    pub longitude: Option<f64>,
    /// Autonomous system number.
    pub asn: Option<u32>,
}

impl SignInLocation {
    /// The column's JSON.
    pub fn to_json(&self) -> String {
        // Strings, numbers and options only: serializing cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Which sign-ins [`Store::list_sign_ins`] returns. Every `Some` narrows the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInFilter {
    /// Only this user's sign-ins.
    pub user_id: Option<String>,
    /// Only sign-ins to this app.
    pub app_id: Option<String>,
    /// `Some(true)`: only successes (`error_code = 0`); `Some(false)`: only failures.
    pub success: Option<bool>,
    /// Only sign-ins with this `riskLevelDuringSignIn`.
    pub risk_level_during_sign_in: Option<String>,
    /// Only sign-ins with this `riskLevelAggregated`.
    pub risk_level_aggregated: Option<String>,
    /// Only sign-ins with this `status.errorCode`.
    pub error_code: Option<i64>,
    /// Only sign-ins of this sign-in name (`userPrincipalName`).
    pub user_principal_name: Option<String>,
    /// Only sign-ins with this correlation id.
    pub correlation_id: Option<String>,
    /// Only sign-ins of this `signInEventTypes` value.
    pub sign_in_event_type: Option<String>,
    /// Only sign-ins at or after this time (inclusive), unix seconds.
    pub from: Option<i64>,
    /// Only sign-ins at or before this time (inclusive), unix seconds.
    pub to: Option<i64>,
    /// Page size; negative counts as 0.
    pub limit: i64,
    /// Rows to skip (newest first); negative counts as 0.
    pub offset: i64,
}

impl Default for SignInFilter {
    /// No filter, the first 50 rows.
    fn default() -> SignInFilter {
        SignInFilter {
            user_id: None,
            app_id: None,
            success: None,
            risk_level_during_sign_in: None,
            risk_level_aggregated: None,
            error_code: None,
            user_principal_name: None,
            correlation_id: None,
            sign_in_event_type: None,
            from: None,
            to: None,
            limit: 50,
            offset: 0,
        }
    }
}

enum Arg<'a> {
    Text(&'a str),
    Int(i64),
}

impl Store {
    /// Writes one sign-in row now, durably, and reports a clash ([`StoreError::Conflict`] if
    /// the id is taken). Sign-ins as they happen go through [`Store::log_sign_in`] instead.
    pub async fn insert_sign_in(&self, log: &SignInLog) -> Result<(), StoreError> {
        let written = insert_row(log, &self.sign_ins.policy_sets, &self.db)
            .await
            .map_err(|e| StoreError::conflict_or_db(e, || format!("sign-in exists: {}", log.id)));
        // Written at any time it says (an import, say), so not simply the newest of its user's.
        self.sign_ins.forget_recent();
        written
    }

    /// Logs a sign-in behind the request: the row is queued and written with the others of
    /// its batch within [`FLUSH_EVERY`], in one transaction, so a sign-in pays for no commit
    /// of its own. Until then [`Store::recent_sign_ins`] already sees it,
    /// [`Store::failed_accounts_from_ip`] writes the queue first only if it holds a failure it
    /// counts, and every other read of the log writes the queue first. [`Store::close`] writes
    /// what is queued (the server closes the store on SIGTERM); a crash can lose at most the
    /// last batch.
    pub fn log_sign_in(&self, log: SignInLog) {
        let mut queued = self.sign_ins.lock();
        queued.recent.logged(&log);
        queued.rows.push(log);
    }

    /// Writes the queued sign-in rows now (see [`Store::log_sign_in`]).
    pub async fn flush_sign_ins(&self) -> Result<(), StoreError> {
        self.sign_ins.flush().await
    }

    /// A user's most recent successful interactive sign-ins (and refused ones an admin
    /// confirmed were the user's own: confirming safe makes their IP, place and device
    /// familiar), newest first (in no particular order within one second), without their
    /// details: what sign-in risk compares a new sign-in with. Refreshes are left out: a
    /// confidential client's IP is its server's, and a public client's repeats its user's.
    ///
    /// The rows of the last [`RECENT_USERS`] users whose rows were read from the table are kept
    /// in memory and kept current as sign-ins are logged, so a user's next sign-in costs no
    /// read of the table. What another connection commits (another replica on PostgreSQL,
    /// another process on the same SQLite file) must not be missed: every change to a user's
    /// sign-ins moves their `version` on (see
    /// [`SessionUser::sign_ins_version`](crate::SessionUser)), and the kept rows are read only
    /// at that version or a later one. A caller that has no `version` (no session read it with
    /// the user) leaves it to this call, which reads it first: one single-row read, and the
    /// user's rows only when the kept ones are behind it.
    pub async fn recent_sign_ins(
        &self,
        user_id: &str,
        version: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Arc<RecentSignIn>>, StoreError> {
        // Read before the rows, so the rows are at least as new as the version they are kept at.
        let version = match version {
            Some(v) => v,
            None => self.sign_ins_version(user_id).await?,
        };
        let flushes = self.sign_ins.lock().flushes;
        if flushes.is_multiple_of(2)
            && let Some(rows) = self
                .read_recent_sign_ins(user_id, version, limit, Some(flushes))
                .await?
        {
            return Ok(rows);
        }
        // A flush overlapped: read again while none can run.
        let _flushing = self.sign_ins.flushing.lock().await;
        Ok(self
            .read_recent_sign_ins(user_id, version, limit, None)
            .await?
            .unwrap_or_default())
    }

    /// The version of a user's sign-ins that [`Store::recent_sign_ins`] takes, read on its own
    /// (a request with a session has it from [`Store::session_and_user`]): 0 before any.
    pub async fn sign_ins_version(&self, user_id: &str) -> Result<i64, StoreError> {
        let version: Option<(i64,)> = query("SELECT version FROM sign_in_heads WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(&self.db)
            .await?;
        Ok(version.map_or(0, |(v,)| v))
    }

    /// [`Store::recent_sign_ins`] from the kept ring, or the table and the queue. With
    /// `flushes`, `None` if a flush took rows since that count was read (some may have been in
    /// neither place); without, the caller holds the flush lock and the answer is always there.
    async fn read_recent_sign_ins(
        &self,
        user_id: &str,
        version: i64,
        limit: i64,
        flushes: Option<u64>,
    ) -> Result<Option<Vec<Arc<RecentSignIn>>>, StoreError> {
        let limit = limit.max(0);
        let depth = usize::try_from(limit).unwrap_or(usize::MAX);
        let generation = {
            let queued = self.sign_ins.lock();
            if let Some(rows) = queued.recent.get(user_id, depth, version) {
                return Ok(Some(rows));
            }
            queued.recent.generation
        };
        let rows: Vec<RecentSignIn> = query(
            // No tie-break on id: the order within one second does not matter to sign-in
            // risk, and without it the (user_id, created_at) index yields the rows in order,
            // so the read stops after `limit` of them instead of sorting a busy second.
            "SELECT created_at, ip_address, user_agent, location FROM sign_ins \
             WHERE user_id = $1 AND (error_code = 0 OR risk_state = 'confirmedSafe') \
             AND sign_in_event_type = 'interactiveUser' \
             ORDER BY created_at DESC LIMIT $2",
        )
        .bind(user_id)
        .bind(limit)
        .fetch_all(&self.db)
        .await?;
        // The queue and the ring under one lock: a row logged from here on is added to the
        // ring this call fills.
        let mut queued = self.sign_ins.lock();
        if flushes.is_some_and(|f| f != queued.flushes) {
            return Ok(None);
        }
        let mut recent: Vec<Arc<RecentSignIn>> = queued
            .rows
            .iter()
            .rev()
            .filter(|r| r.user_id.as_deref() == Some(user_id) && counts_for_risk(r))
            .take(depth)
            .map(|r| Arc::new(RecentSignIn::from(r)))
            .collect();
        recent.extend(rows.into_iter().take(depth - recent.len()).map(Arc::new));
        queued
            .recent
            .fill(generation, user_id, depth, &recent, version);
        Ok(Some(recent))
    }

    /// Sign-ins matching `filter`, newest first (ties by id, descending), one page.
    pub async fn list_sign_ins(&self, filter: &SignInFilter) -> Result<Vec<SignInLog>, StoreError> {
        self.flush_sign_ins().await?;
        let mut conditions: Vec<String> = Vec::new();
        let mut args: Vec<Arg<'_>> = Vec::new();
        let mut push = |condition: &str, arg| {
            args.push(arg);
            conditions.push(condition.replace('?', &format!("${}", args.len())));
        };
        if let Some(user_id) = &filter.user_id {
            push("user_id = ?", Arg::Text(user_id));
        }
        if let Some(app_id) = &filter.app_id {
            push("app_id = ?", Arg::Text(app_id));
        }
        if let Some(level) = &filter.risk_level_during_sign_in {
            push("risk_level_during_sign_in = ?", Arg::Text(level));
        }
        if let Some(level) = &filter.risk_level_aggregated {
            push("risk_level_aggregated = ?", Arg::Text(level));
        }
        if let Some(code) = filter.error_code {
            push("error_code = ?", Arg::Int(code));
        }
        if let Some(upn) = &filter.user_principal_name {
            push("user_principal_name = ?", Arg::Text(upn));
        }
        if let Some(id) = &filter.correlation_id {
            push("correlation_id = ?", Arg::Text(id));
        }
        if let Some(t) = &filter.sign_in_event_type {
            push("sign_in_event_type = ?", Arg::Text(t));
        }
        if let Some(from) = filter.from {
            push("created_at >= ?", Arg::Int(from));
        }
        if let Some(to) = filter.to {
            push("created_at <= ?", Arg::Int(to));
        }
        match filter.success {
            Some(true) => conditions.push("error_code = 0".to_owned()),
            Some(false) => conditions.push("error_code <> 0".to_owned()),
            None => {}
        }
        let mut sql = String::from(concat!("SELECT ", sign_in_read_columns!()));
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        sql.push_str(&format!(
            " ORDER BY created_at DESC, id DESC LIMIT ${} OFFSET ${}",
            args.len() + 1,
            args.len() + 2
        ));
        let mut query = query_assembled(sql);
        for arg in args {
            query = match arg {
                Arg::Text(text) => query.bind(text),
                Arg::Int(int) => query.bind(int),
            };
        }
        let rows: Vec<SignInRow> = query
            .bind(filter.limit.max(0))
            .bind(filter.offset.max(0))
            .fetch_all(&self.db)
            .await?;
        rows.into_iter().map(SignInLog::try_from).collect()
    }
}

/// Inserts one row in a transaction of its own, as a batch of one.
async fn insert_row(log: &SignInLog, sets: &PolicySets, db: &Db) -> Result<(), DbError> {
    write_all(std::slice::from_ref(log), sets, db.begin_write().await?)
        .await
        .map(drop)
}

async fn insert_policy_set(id: &str, json: &str, mut target: impl Executor) -> Result<(), DbError> {
    query(
        "INSERT INTO sign_in_policy_sets (policy_set_id, policies) VALUES ($1, $2) \
         ON CONFLICT (policy_set_id) DO NOTHING",
    )
    .bind(id)
    .bind(json)
    .execute(target.target())
    .await?;
    Ok(())
}

/// The columns of `sign_ins` one row writes.
const SIGN_IN_COLUMNS: usize = 24;

/// Inserts `rows` (each its parameters, [`row_values`]) in one statement.
async fn insert_rows(rows: Vec<Vec<Value>>, mut target: impl Executor) -> Result<(), DbError> {
    insert_query(rows.len())
        .bind_values(rows.into_iter().flatten())
        .execute(target.target())
        .await?;
    Ok(())
}

/// A row's parameters, in the order of `sign_in_columns!`, with its [`lean`] form.
fn row_values((log, lean): (&SignInLog, &Lean)) -> Vec<Value> {
    vec![
        (&log.id).encode(),
        log.created_at.encode(),
        (&log.correlation_id).encode(),
        (&log.user_id).encode(),
        (&log.user_principal_name).encode(),
        (&log.app_id).encode(),
        (&log.ip_address).encode(),
        (&log.user_agent).encode(),
        log.error_code.encode(),
        (&log.failure_reason).encode(),
        (&log.user_type).encode(),
        (&log.cross_tenant_access_type).encode(),
        (&log.home_tenant_id).encode(),
        (&log.resource_tenant_id).encode(),
        (&log.risk_level_aggregated).encode(),
        (&log.risk_level_during_sign_in).encode(),
        (&log.conditional_access_status).encode(),
        (&log.location).encode(),
        (&lean.details).encode(),
        (&log.sign_in_event_type).encode(),
        (&log.risk_state).encode(),
        (&log.risk_detail).encode(),
        lean.moved.encode(),
        lean.policies.as_ref().map(|(id, _)| id.as_str()).encode(),
    ]
}

/// The `INSERT` of `rows` rows. The texts [`chunk_len`] asks for (a power of two up to
/// [`MOST_ROWS_PER_INSERT`]) are written once per process, not for every batch.
fn insert_query(rows: usize) -> crate::db::Query {
    static TEXTS: [OnceLock<String>; MOST_ROWS_PER_INSERT.ilog2() as usize + 1] =
        [const { OnceLock::new() }; MOST_ROWS_PER_INSERT.ilog2() as usize + 1];
    let kept = rows
        .checked_ilog2()
        .filter(|_| rows.is_power_of_two())
        .and_then(|i| TEXTS.get(i as usize));
    match kept {
        Some(text) => query(text.get_or_init(|| insert_sql(rows))),
        None => query_assembled(insert_sql(rows)),
    }
}

/// `INSERT INTO sign_ins (…) VALUES (…), (…)` for `rows` rows: one text per row count.
fn insert_sql(rows: usize) -> String {
    let mut sql = String::from(concat!(
        "INSERT INTO sign_ins (",
        sign_in_columns!(),
        ") VALUES "
    ));
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..SIGN_IN_COLUMNS {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", r * SIGN_IN_COLUMNS + c + 1));
        }
        sql.push(')');
    }
    sql
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A reader that writes the queue first must not read the table while a flush under way
    /// still holds rows it took, even with nothing left in the queue.
    #[tokio::test]
    async fn writing_first_waits_for_a_flush_under_way() {
        let db = Db::sqlite(rusqlite::Connection::open_in_memory().unwrap());
        let queue = SignInQueue::start(db);
        // Nothing queued and nothing under way: nothing to wait for.
        queue.flush().await.unwrap();
        // A flush that has taken its rows and not committed them yet.
        let under_way = queue.flushing.lock().await;
        queue.lock().flushes += 1;
        let waiting = {
            let queue = Arc::clone(&queue);
            tokio::spawn(async move { queue.write_before_reading(|_| false).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished(), "it read past the flush under way");
        queue.lock().flushes += 1;
        drop(under_way);
        waiting.await.unwrap().unwrap();
    }

    fn row(at: i64) -> Arc<RecentSignIn> {
        Arc::new(RecentSignIn {
            created_at: at,
            ip_address: None,
            user_agent: None,
            location: None,
            decoded: OnceLock::new(),
        })
    }

    #[test]
    fn a_policy_sets_name_is_its_hash_whether_or_not_it_was_seen_lately() {
        let sets = PolicySets::default();
        let json = |i: usize| format!(r#"[{{"id":"p{i}","result":"success"}}]"#);
        for round in 0..2 {
            for i in 0..NAMED_SETS + 4 {
                assert_eq!(sets.id_of(&json(i)), policy_set_id(&json(i)), "{round} {i}");
                assert_eq!(sets.id_of(&json(0)), policy_set_id(&json(0)), "{round} {i}");
            }
        }
        assert_eq!(sets.lock().named.len(), NAMED_SETS);
        assert_ne!(policy_set_id(&json(1)), policy_set_id(&json(2)));
    }

    #[test]
    fn a_batch_goes_in_statements_of_powers_of_two_within_the_bytes() {
        let small = SignInLog {
            id: "s".into(),
            created_at: 1,
            correlation_id: "c".into(),
            user_id: None,
            user_principal_name: None,
            app_id: None,
            ip_address: None,
            user_agent: None,
            error_code: 0,
            failure_reason: None,
            user_type: "member".into(),
            cross_tenant_access_type: "none".into(),
            home_tenant_id: None,
            resource_tenant_id: None,
            risk_level_aggregated: None,
            risk_level_during_sign_in: None,
            conditional_access_status: None,
            location: None,
            details: serde_json::json!({}),
            sign_in_event_type: INTERACTIVE_USER.into(),
            risk_state: None,
            risk_detail: None,
        };
        let mut large = small.clone();
        large.user_agent = Some("x".repeat(3_000));
        let split = |logs: &[SignInLog], most: usize| {
            let sets = PolicySets::default();
            let leans: Vec<Lean> = logs.iter().map(|l| lean(l, &sets).unwrap()).collect();
            let mut rest: Vec<_> = logs.iter().zip(&leans).map(row_values).collect();
            let mut sizes = Vec::new();
            while !rest.is_empty() {
                let n = chunk_len(&rest, most);
                sizes.push(n);
                rest.drain(..n);
            }
            sizes
        };
        let smalls = |n: usize| vec![small.clone(); n];
        assert_eq!(split(&smalls(45), 32), [32, 8, 4, 1]);
        assert_eq!(split(&smalls(70), 32), [32, 32, 4, 2]);
        assert_eq!(split(&smalls(3), 1), [1, 1, 1]);
        assert_eq!(split(&smalls(1), 32), [1]);
        // 3 KB rows: two to a statement; a row over the limit goes alone.
        assert_eq!(split(&vec![large.clone(); 5], 32), [2, 2, 1]);
        large.user_agent = Some("x".repeat(20_000));
        assert_eq!(split(&[large, small], 32), [1, 1]);
        let two = insert_sql(2);
        assert!(two.ends_with("$23, $24), ($25, $26, $27, $28, $29, $30, $31, $32, $33, $34, $35, $36, $37, $38, $39, $40, $41, $42, $43, $44, $45, $46, $47, $48)"), "{two}");
        assert_eq!(insert_sql(1).matches('$').count(), SIGN_IN_COLUMNS);
    }

    #[test]
    fn a_rows_facts_decode_once_and_a_bad_location_is_empty() {
        let at = SignInLocation {
            country: Some("NL".into()),
            city: Some("Amsterdam".into()),
            latitude: Some(52.37),
            longitude: Some(4.89),
            asn: Some(1136),
        };
        let mut r = RecentSignIn::clone(&row(1));
        r.location = Some(at.to_json());
        r.ip_address = Some("198.51.100.7".into());
        r.user_agent = Some("Firefox".into());
        let facts = r.facts();
        assert_eq!(facts.ip, Some("198.51.100.7".parse().unwrap()));
        assert_eq!(
            (facts.country.as_deref(), facts.city.as_deref()),
            (Some("NL"), Some("Amsterdam"))
        );
        assert_eq!(
            (facts.latitude, facts.longitude, facts.asn),
            (Some(52.37), Some(4.89), Some(1136))
        );
        assert!(std::ptr::eq(r.facts(), r.facts()));
        let mut bad = RecentSignIn::clone(&row(1));
        bad.location = Some("{not json".into());
        bad.ip_address = Some("not an address".into());
        let facts = bad.facts();
        assert!(facts.ip.is_none() && facts.country.is_none() && facts.asn.is_none());
        // Whether a row was decoded does not make it another row.
        let mut fresh = RecentSignIn::clone(&row(1));
        fresh.location = r.location.clone();
        fresh.ip_address = r.ip_address.clone();
        fresh.user_agent = r.user_agent.clone();
        assert_eq!(fresh, r);
    }

    #[test]
    fn the_first_users_filled_go_first_when_full() {
        let mut recent = RecentSignIns::default();
        for n in 0..=RECENT_USERS {
            recent.fill(0, &format!("u{n}"), 50, &[row(1)], 0);
        }
        assert!(recent.get("u0", 50, 0).is_none(), "the first user went");
        assert!(recent.get("u1", 50, 0).is_some());
        assert!(recent.get(&format!("u{RECENT_USERS}"), 50, 0).is_some());
        assert_eq!(recent.users.len(), RECENT_USERS);
        // Filling a kept user again does not push anyone out.
        recent.fill(0, "u1", 50, &[row(2)], 0);
        assert_eq!(recent.users.len(), RECENT_USERS);
        assert!(recent.get("u2", 50, 0).is_some());
    }

    #[test]
    fn a_read_from_before_a_change_is_not_kept() {
        let mut recent = RecentSignIns::default();
        let began = recent.generation;
        recent.forget();
        recent.fill(began, "u1", 50, &[row(1)], 0);
        assert!(recent.get("u1", 50, 0).is_none());
        recent.fill(recent.generation, "u1", 50, &[row(1)], 0);
        assert!(recent.get("u1", 50, 0).is_some());
        assert!(
            recent.get("u1", 51, 0).is_none(),
            "deeper than it was filled"
        );
    }

    #[test]
    fn a_ring_is_read_at_its_version_and_moves_on_with_its_own_flush() {
        let mut recent = RecentSignIns::default();
        recent.fill(recent.generation, "u1", 50, &[row(1)], 4);
        assert!(recent.get("u1", 50, 4).is_some());
        assert!(recent.get("u1", 50, 5).is_none(), "the table moved on");
        assert!(
            recent.get("u1", 50, 3).is_some(),
            "newer than the reader knows"
        );
        recent.fill(recent.generation, "u1", 50, &[], 3);
        assert!(
            recent.get("u1", 50, 4).is_some(),
            "a read of an older version does not put the ring back"
        );
        recent.advanced(&[("u1".to_owned(), 5)]);
        assert!(recent.get("u1", 50, 5).is_some(), "its own flush");
        // Another replica wrote 6: this flush's 7 leaves the ring unknown.
        recent.advanced(&[("u1".to_owned(), 7)]);
        assert!(recent.get("u1", 50, 7).is_none());
        assert!(recent.get("u1", 50, 5).is_none());
        // A ring no longer known to be current stays so until it is filled again.
        recent.advanced(&[("u1".to_owned(), 8)]);
        assert!(recent.get("u1", 50, 8).is_none());
        recent.fill(recent.generation, "u1", 50, &[row(2)], 8);
        assert!(recent.get("u1", 50, 8).is_some());
    }
}
