//! The two engines behind one query API.
//!
//! Every query is written once, in portable SQL with `$1`-style parameters, and runs on either:
//! - **SQLite** (the embedded default): one `rusqlite` connection owned by the store and used
//!   in place, on the calling task's thread. A statement on a cached page costs microseconds,
//!   less than handing it to another thread and back, so nothing is gained by a thread hop;
//!   statements are prepared once and cached. The connection is behind an async mutex: a
//!   write transaction holds it from its beginning to its end, which also makes the
//!   in-process writers queue in FIFO order instead of meeting `SQLITE_BUSY`. Commits are
//!   grouped (see [`Group`]). WAL checkpoints run on a background thread with its own
//!   connection, never inside a request's commit.
//! - **PostgreSQL** through sqlx's native driver and a pool.
//!
//! The API mirrors sqlx's (`query(..).bind(..).fetch_optional(target)`), so store code reads
//! the same for both engines; [`FromRow`] decodes a row by column name on either.

use std::borrow::Cow;
use std::sync::Arc;

use sqlx::postgres::{PgArguments, PgPool, PgRow};
use sqlx::{Arguments, Postgres, Row as _};
use tokio::sync::{Mutex, OwnedMutexGuard};

/// Statements kept prepared per SQLite connection: more than the store has, so none is
/// re-prepared in steady state.
const STATEMENT_CACHE: usize = 256;

/// An error from either engine.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite (rusqlite) failed.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL (sqlx) failed.
    #[error(transparent)]
    Postgres(#[from] sqlx::Error),
    /// A statement does not fit its parameters, or a value could not be encoded.
    #[error("{0}")]
    Usage(String),
    /// The store was closed.
    #[error("the database is closed")]
    Closed,
    /// The group commit this call's work was part of failed: nothing of it was written.
    #[error("the commit failed: {0}")]
    Commit(String),
}

impl DbError {
    /// Whether the database could not be reached (connection refused or lost, no connection
    /// free in time), as opposed to a statement it refused or failed. Only PostgreSQL is
    /// reached over a connection; an embedded SQLite file is never "unavailable".
    pub(crate) fn is_unavailable(&self) -> bool {
        let DbError::Postgres(e) = self else {
            return false;
        };
        match e {
            // A connection cut mid-message reads as a protocol error too.
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            // SQLSTATE class 08 (connection exception) and 57P01-03 (the server shutting down,
            // crashed, or not accepting connections yet).
            sqlx::Error::Database(db) => db
                .code()
                .is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")),
            _ => false,
        }
    }

    /// Whether this is a uniqueness (or primary key) violation.
    pub(crate) fn is_unique_violation(&self) -> bool {
        match self {
            DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.extended_code,
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            ),
            DbError::Postgres(sqlx::Error::Database(db)) => db.is_unique_violation(),
            _ => false,
        }
    }

    /// Whether this is a foreign key violation.
    pub(crate) fn is_foreign_key_violation(&self) -> bool {
        match self {
            DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY
            }
            DbError::Postgres(sqlx::Error::Database(db)) => db.is_foreign_key_violation(),
            _ => false,
        }
    }
}

/// The database a store talks to.
#[derive(Debug, Clone)]
pub(crate) enum Db {
    /// The one SQLite connection.
    Sqlite(Arc<Mutex<Conn>>),
    /// A PostgreSQL pool.
    Postgres(PgPool),
}

impl Db {
    /// Wraps an open SQLite connection: caches statements.
    pub(crate) fn sqlite(conn: rusqlite::Connection) -> Db {
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Db::Sqlite(Arc::new(Mutex::new(Conn {
            conn: Some(conn),
            group: None,
        })))
    }

    /// Where to run one statement that writes and needs no transaction of its own: on
    /// PostgreSQL it commits by itself (one round trip, where `BEGIN` and `COMMIT` would add
    /// two); on SQLite it runs in the open group commit, beginning one if none is open, so that
    /// it shares a commit with the writers around it instead of committing alone. A statement
    /// that fails changes nothing (SQLite undoes just the statement, not the group).
    pub(crate) fn one_write(&self) -> OneWrite<'_> {
        OneWrite(self)
    }

    /// Begins a write transaction. On SQLite it holds the connection until commit or drop,
    /// inside the group's transaction, which took the write lock first (`BEGIN IMMEDIATE`) so
    /// that it never fails half-way when it upgrades from reading to writing.
    pub(crate) async fn begin_write(&self) -> Result<Tx, DbError> {
        match self {
            Db::Sqlite(conn) => {
                let mut held = Arc::clone(conn).lock_owned().await;
                let (group, began) = held.join()?;
                // The transaction that begins a group is alone in it until it ends (it holds
                // the connection), so the group's own ROLLBACK undoes it: no savepoint, and
                // none of the savepoint's journal of the pages it changes.
                let savepoint = !began;
                if savepoint {
                    tracing::trace!("SAVEPOINT");
                    run_cached(held.open()?, "SAVEPOINT tx")?;
                }
                Ok(Tx::new(EngineTx::Sqlite(SqliteTx {
                    conn: held,
                    group,
                    open: true,
                    savepoint,
                })))
            }
            // Boxed: sqlx's `begin` future is 14 KiB, and unboxed it would be inline in every
            // future that awaits a transaction, on SQLite too, up to each request's handler,
            // which is moved (copied) several times on its way to the runtime.
            Db::Postgres(pool) => Ok(Tx::new(EngineTx::Postgres(Box::pin(pool.begin()).await?))),
        }
    }
}

/// Runs a statement without parameters or rows (`BEGIN`, `COMMIT`), prepared once.
fn run_cached(conn: &rusqlite::Connection, sql: &str) -> Result<(), rusqlite::Error> {
    conn.prepare_cached(sql)?.raw_execute().map(drop)
}

/// The SQLite connection, and the group commit open on it.
#[derive(Debug)]
pub(crate) struct Conn {
    /// `None` once the store is closed.
    conn: Option<rusqlite::Connection>,
    /// The transaction open on the connection, if any, and who waits for its commit.
    group: Option<Arc<Group>>,
}

/// A group commit: one SQLite transaction that holds the work of every caller that used the
/// connection while it was open, committed once for all of them.
///
/// A commit writes each page its transaction changed to the log, so two flows that each
/// add a grant and a refresh token write the same table and index pages twice; committed
/// together, once. A caller that finds no transaction open begins one (`BEGIN IMMEDIATE`);
/// each later write transaction runs inside it as a savepoint, which its rollback undoes
/// alone (the first needs none: see [`SqliteTx`]).
/// Whoever used the connection while the group was open (readers too: they may have seen
/// what others wrote) lets every task that is ready run first, and so use the store and join
/// the group, and then commits it unless someone already did. Nobody returns before the
/// group's `COMMIT` does, so what a response reports is as durable as before; under load a
/// commit serves several requests, and alone a caller waits for nothing but itself.
#[derive(Debug, Default)]
pub(crate) struct Group {
    /// Set once, when the group committed (`Ok`) or failed.
    outcome: std::sync::OnceLock<Result<(), String>>,
}

impl Conn {
    /// The connection, unless the store was closed.
    pub(crate) fn open(&self) -> Result<&rusqlite::Connection, DbError> {
        self.conn.as_ref().ok_or(DbError::Closed)
    }

    /// Takes the connection (closing the store), after committing the open group.
    pub(crate) fn take(&mut self) -> Option<rusqlite::Connection> {
        self.settle();
        self.conn.take()
    }

    /// Makes the caller a member of the open group, beginning one if there is none; `true`
    /// when it began one.
    fn join(&mut self) -> Result<(Arc<Group>, bool), DbError> {
        self.check();
        if let Some(group) = &self.group {
            return Ok((Arc::clone(group), false));
        }
        tracing::trace!("BEGIN IMMEDIATE");
        run_cached(self.open()?, "BEGIN IMMEDIATE")?;
        let group = Arc::new(Group::default());
        self.group = Some(Arc::clone(&group));
        Ok((group, true))
    }

    /// Rolls `group` back, if it is the open one: only for the transaction that began it,
    /// which is still its only member (see [`SqliteTx`]).
    fn abandon(&mut self, group: &Arc<Group>) {
        if !self.group.as_ref().is_some_and(|g| Arc::ptr_eq(g, group)) {
            return;
        }
        self.group = None;
        if let Some(conn) = &self.conn
            && !conn.is_autocommit()
        {
            tracing::trace!("ROLLBACK");
            if let Err(e) = run_cached(conn, "ROLLBACK") {
                tracing::error!(error = %e, "rolling back an abandoned SQLite transaction failed");
            }
        }
        let _ = group.outcome.set(Err("rolled back".into()));
    }

    /// Fails the open group if SQLite rolled its transaction back (it does so on an I/O
    /// error, a full disk or running out of memory), so that nobody takes it as committed
    /// and the next statement does not run outside any transaction.
    fn check(&mut self) {
        if let (Some(group), Some(conn)) = (&self.group, &self.conn)
            && conn.is_autocommit()
        {
            let _ = group
                .outcome
                .set(Err("SQLite rolled the transaction back".into()));
            self.group = None;
        }
    }

    /// Commits the open group, if any: the checkpoint thread and the store's close need the
    /// connection outside any transaction.
    pub(crate) fn settle(&mut self) {
        self.check();
        let (Some(group), Some(conn)) = (self.group.take(), &self.conn) else {
            return;
        };
        tracing::trace!("COMMIT");
        let outcome = run_cached(conn, "COMMIT").map_err(|e| {
            tracing::error!(error = %e, "SQLite group commit failed");
            // A failed COMMIT can leave the transaction open: end it, so that the next
            // caller starts from a clean connection.
            if !conn.is_autocommit()
                && let Err(e) = run_cached(conn, "ROLLBACK")
            {
                tracing::error!(error = %e, "rolling back a failed commit failed");
            }
            e.to_string()
        });
        let _ = group.outcome.set(outcome);
    }
}

/// Waits until `group` has committed, committing it if nobody has yet (see [`Group`]).
async fn committed(conn: &Arc<Mutex<Conn>>, group: Arc<Group>) -> Result<(), DbError> {
    // Every task that is ready runs before this one is polled again: those that use the store
    // meanwhile join the group, and one commit serves them all.
    tokio::task::yield_now().await;
    if group.outcome.get().is_none() {
        let mut held = conn.lock().await;
        if held.group.as_ref().is_some_and(|g| Arc::ptr_eq(g, &group)) {
            held.settle();
        }
    }
    match group.outcome.get() {
        Some(Ok(())) => Ok(()),
        Some(Err(e)) => Err(DbError::Commit(e.clone())),
        // A group ends only through `settle` or `check`, which both set its outcome.
        None => Err(DbError::Commit("the group ended without an outcome".into())),
    }
}

/// Runs `statement` on the connection outside any write transaction of the caller's; if a
/// group is open, the caller is one of its members and returns once it has committed. With
/// `write`, the statement writes: it joins the open group, beginning one if none is open.
async fn outside_tx<T>(
    conn: &Arc<Mutex<Conn>>,
    write: bool,
    statement: impl FnOnce(&rusqlite::Connection) -> Result<T, DbError>,
) -> Result<T, DbError> {
    let (result, group) = {
        let mut held = conn.lock().await;
        let group = if write {
            Some(held.join()?.0)
        } else {
            held.check();
            held.group.clone()
        };
        (statement(held.open()?), group)
    };
    if let Some(group) = group {
        committed(conn, group).await?;
    }
    result
}

/// A write transaction; rolled back when dropped without [`Tx::commit`].
pub(crate) struct Tx {
    engine: EngineTx,
    /// What [`Tx::wake_on_commit`] wakes (see [`Tx::waking`]).
    waiter: Option<Arc<tokio::sync::Notify>>,
    /// Whether to wake `waiter` once committed.
    wake: bool,
}

/// The engine's half of a [`Tx`].
pub(crate) enum EngineTx {
    /// A SQLite transaction on the store's connection.
    Sqlite(SqliteTx),
    /// A PostgreSQL transaction (sqlx rolls it back on drop).
    Postgres(sqlx::Transaction<'static, Postgres>),
}

/// Holds the SQLite connection from `SAVEPOINT` to `RELEASE`, or to the `ROLLBACK TO` run on
/// drop, inside its [`Group`]'s transaction. The transaction that begins a group has no
/// savepoint: nobody else can join the group while it holds the connection, so until it ends
/// the group's work is its own, and a drop rolls the whole group back.
pub(crate) struct SqliteTx {
    conn: OwnedMutexGuard<Conn>,
    group: Arc<Group>,
    open: bool,
    savepoint: bool,
}

impl Tx {
    /// Whether this is a PostgreSQL transaction (where each statement is a round trip).
    pub(crate) fn is_postgres(&self) -> bool {
        matches!(self.engine, EngineTx::Postgres(_))
    }

    fn new(engine: EngineTx) -> Self {
        Tx {
            engine,
            waiter: None,
            wake: false,
        }
    }

    /// The transaction with `waiter`, which [`Tx::wake_on_commit`] wakes.
    pub(crate) fn waking(mut self, waiter: &Arc<tokio::sync::Notify>) -> Self {
        self.waiter = Some(Arc::clone(waiter));
        self
    }

    /// Wakes the waiter once this transaction has committed (never if it rolls back), when
    /// what it wrote is visible to whoever the waiter is.
    pub(crate) fn wake_on_commit(&mut self) {
        self.wake = true;
    }

    /// Commits.
    pub(crate) async fn commit(self) -> Result<(), DbError> {
        match self.engine {
            EngineTx::Sqlite(mut tx) => {
                if tx.savepoint {
                    // A failed RELEASE leaves the savepoint open: drop then rolls it back.
                    tracing::trace!("RELEASE");
                    run_cached(tx.conn.open()?, "RELEASE tx")?;
                }
                tx.open = false;
                let conn = Arc::clone(OwnedMutexGuard::mutex(&tx.conn));
                let group = Arc::clone(&tx.group);
                drop(tx);
                committed(&conn, group).await?;
            }
            EngineTx::Postgres(tx) => tx.commit().await?,
        }
        if self.wake
            && let Some(waiter) = self.waiter
        {
            waiter.notify_one();
        }
        Ok(())
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        if !self.open {
            return;
        }
        if !self.savepoint {
            self.conn.abandon(&self.group);
            return;
        }
        // Undoes this transaction's work alone; the group's transaction stays open for the
        // others', and whoever waits for it commits it.
        if let Ok(conn) = self.conn.open()
            && !conn.is_autocommit()
            && let Err(e) =
                run_cached(conn, "ROLLBACK TO tx").and_then(|()| run_cached(conn, "RELEASE tx"))
        {
            tracing::error!(error = %e, "rolling back an abandoned SQLite transaction failed");
        }
        // Nobody else waits for the group (the connection and this hold the only references):
        // end it now rather than hold SQLite's write lock until the next caller.
        if Arc::strong_count(&self.group) == 2 {
            self.conn.settle();
        }
    }
}

/// Where a statement runs: on the database (outside any transaction) or in a transaction.
pub(crate) enum Target<'a> {
    /// On the store's database, outside any transaction of the caller's: the statement commits
    /// by itself. `write`: it writes, and on SQLite joins the group commit ([`Db::one_write`]).
    Db { db: &'a Db, write: bool },
    /// Inside the caller's transaction.
    Tx(&'a mut Tx),
}

/// Something statements run on: `&Db` or `&mut Tx`.
///
/// A trait without a lifetime parameter on purpose: a bound like `Into<Target<'t>>` ties the
/// borrow's lifetime to `'t`, which the compiler cannot prove for every lifetime when it checks
/// that a caller's future is `Send` in a generic context.
pub(crate) trait Executor {
    /// Where to run.
    fn target(&mut self) -> Target<'_>;
}

impl Executor for &Db {
    fn target(&mut self) -> Target<'_> {
        Target::Db {
            db: self,
            write: false,
        }
    }
}

/// See [`Db::one_write`].
pub(crate) struct OneWrite<'a>(&'a Db);

impl Executor for OneWrite<'_> {
    fn target(&mut self) -> Target<'_> {
        Target::Db {
            db: self.0,
            write: true,
        }
    }
}

impl Executor for Target<'_> {
    fn target(&mut self) -> Target<'_> {
        match self {
            Target::Db { db, write } => Target::Db { db, write: *write },
            Target::Tx(tx) => Target::Tx(tx),
        }
    }
}

impl Executor for &mut Tx {
    fn target(&mut self) -> Target<'_> {
        Target::Tx(self)
    }
}

/// A bound parameter. Nulls carry their type: PostgreSQL checks parameter types.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    /// A BIGINT.
    Int(i64),
    /// A TEXT.
    Text(String),
    /// A NULL BIGINT.
    NullInt,
    /// A NULL TEXT.
    NullText,
}

impl Value {
    /// About how many bytes it takes in a `Bind` message (its length, then its bytes).
    pub(crate) fn wire_len(&self) -> usize {
        4 + match self {
            Value::Int(_) => 8,
            Value::Text(t) => t.len(),
            Value::NullInt | Value::NullText => 0,
        }
    }
}

/// A Rust value that binds as a parameter.
pub(crate) trait Encode {
    /// The parameter.
    fn encode(self) -> Value;
}

impl Encode for i64 {
    fn encode(self) -> Value {
        Value::Int(self)
    }
}

impl Encode for String {
    fn encode(self) -> Value {
        Value::Text(self)
    }
}

impl Encode for &String {
    fn encode(self) -> Value {
        Value::Text(self.clone())
    }
}

impl Encode for &str {
    fn encode(self) -> Value {
        Value::Text(self.to_owned())
    }
}

impl Encode for Option<i64> {
    fn encode(self) -> Value {
        self.map_or(Value::NullInt, Value::Int)
    }
}

impl Encode for &Option<String> {
    fn encode(self) -> Value {
        self.as_deref().encode()
    }
}

impl Encode for Option<&str> {
    fn encode(self) -> Value {
        self.map_or(Value::NullText, |s| Value::Text(s.to_owned()))
    }
}

/// A row of either engine, read by column name (or position, for tuples).
pub(crate) enum Row<'r> {
    /// A SQLite row, and the column a read by name tries first: the one after the last read.
    Sqlite(&'r rusqlite::Row<'r>, std::cell::Cell<usize>),
    /// A PostgreSQL row.
    Postgres(&'r PgRow),
}

/// A column type both engines decode.
pub(crate) trait Decode:
    rusqlite::types::FromSql + for<'r> sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>
{
}

impl<T> Decode for T where
    T: rusqlite::types::FromSql + for<'r> sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>
{
}

impl Row<'_> {
    /// The value of column `name`.
    pub(crate) fn get<T: Decode>(&self, name: &str) -> Result<T, DbError> {
        match self {
            Row::Sqlite(row, next) => {
                // Rows are decoded in the order their columns are selected, so the next
                // column is nearly always the one asked for: one name compared, not a search
                // of every column's name (which was most of decoding a wide row).
                let statement = row.as_ref();
                let guess = next.get();
                let index = match statement.column_name(guess) {
                    Ok(column) if column.eq_ignore_ascii_case(name) => guess,
                    _ => statement.column_index(name)?,
                };
                next.set(index + 1);
                Ok(row.get(index)?)
            }
            Row::Postgres(row) => Ok(row.try_get(name)?),
        }
    }

    /// The value of the column at `index` (0-based).
    pub(crate) fn get_at<T: Decode>(&self, index: usize) -> Result<T, DbError> {
        match self {
            Row::Sqlite(row, _) => Ok(row.get(index)?),
            Row::Postgres(row) => Ok(row.try_get(index)?),
        }
    }
}

/// A type built from one result row.
pub(crate) trait FromRow: Sized {
    /// Decodes the row.
    fn from_row(row: &Row<'_>) -> Result<Self, DbError>;
}

/// Tuples decode by position.
macro_rules! tuple_from_row {
    ($($t:ident $i:tt),+) => {
        impl<$($t: Decode),+> FromRow for ($($t,)+) {
            fn from_row(row: &Row<'_>) -> Result<Self, DbError> {
                Ok(($(row.get_at::<$t>($i)?,)+))
            }
        }
    };
}
tuple_from_row!(A 0);
tuple_from_row!(A 0, B 1);
tuple_from_row!(A 0, B 1, C 2);
tuple_from_row!(A 0, B 1, C 2, D 3);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);

/// Implements [`FromRow`] for a struct whose fields are named as its columns.
macro_rules! from_row {
    ($ty:ident { $($field:ident),* $(,)? }) => {
        impl $crate::db::FromRow for $ty {
            fn from_row(row: &$crate::db::Row<'_>) -> Result<Self, $crate::db::DbError> {
                Ok($ty { $($field: row.get(stringify!($field))?),* })
            }
        }
    };
}
pub(crate) use from_row;

/// What a statement changed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Done {
    rows: u64,
}

impl Done {
    /// How many rows it inserted, updated or deleted.
    pub(crate) fn rows_affected(&self) -> u64 {
        self.rows
    }
}

/// A statement with its parameters, built by [`query`].
pub(crate) struct Query {
    sql: Cow<'static, str>,
    args: Vec<Value>,
}

/// A statement whose text is fixed at compile time.
pub(crate) fn query(sql: &'static str) -> Query {
    Query {
        sql: Cow::Borrowed(sql),
        args: Vec::new(),
    }
}

/// A statement assembled at run time from fixed fragments (never from input: input is bound).
pub(crate) fn query_assembled(sql: String) -> Query {
    Query {
        sql: Cow::Owned(sql),
        args: Vec::new(),
    }
}

/// Parameter names as SQLite sees them: `$1` is a *named* parameter there, so it is bound by
/// name, which keeps a reused or out-of-order `$n` right. The common ones (a sign-in row has 24)
/// without allocating.
const PARAM_NAMES: [&str; 32] = [
    "$1", "$2", "$3", "$4", "$5", "$6", "$7", "$8", "$9", "$10", "$11", "$12", "$13", "$14", "$15",
    "$16", "$17", "$18", "$19", "$20", "$21", "$22", "$23", "$24", "$25", "$26", "$27", "$28",
    "$29", "$30", "$31", "$32",
];

fn param_name(n: usize) -> Cow<'static, str> {
    match PARAM_NAMES.get(n) {
        Some(name) => Cow::Borrowed(name),
        None => Cow::Owned(format!("${}", n + 1)),
    }
}

impl Query {
    /// Binds the next parameter (`$1`, then `$2`, ...).
    pub(crate) fn bind(mut self, value: impl Encode) -> Self {
        self.args.push(value.encode());
        self
    }

    /// Binds `values` as the next parameters.
    pub(crate) fn bind_values(mut self, values: impl IntoIterator<Item = Value>) -> Self {
        self.args.extend(values);
        self
    }

    /// Runs the statement; returns how many rows it changed.
    pub(crate) async fn execute(self, mut target: impl Executor) -> Result<Done, DbError> {
        match target.target() {
            Target::Db {
                db: Db::Sqlite(conn),
                write,
            } => outside_tx(conn, write, |c| self.sqlite_execute(c)).await,
            Target::Tx(Tx {
                engine: EngineTx::Sqlite(SqliteTx { conn, .. }),
                ..
            }) => self.sqlite_execute(conn.open()?),
            Target::Db {
                db: Db::Postgres(pool),
                ..
            } => {
                let done = self.postgres()?.execute(pool).await?;
                Ok(Done {
                    rows: done.rows_affected(),
                })
            }
            Target::Tx(Tx {
                engine: EngineTx::Postgres(tx),
                ..
            }) => {
                let done = self.postgres()?.execute(&mut **tx).await?;
                Ok(Done {
                    rows: done.rows_affected(),
                })
            }
        }
    }

    /// Every row, decoded.
    pub(crate) async fn fetch_all<R: FromRow>(
        self,
        mut target: impl Executor,
    ) -> Result<Vec<R>, DbError> {
        match target.target() {
            Target::Db {
                db: Db::Sqlite(conn),
                write,
            } => outside_tx(conn, write, |c| self.sqlite_fetch(c, usize::MAX)).await,
            Target::Tx(Tx {
                engine: EngineTx::Sqlite(SqliteTx { conn, .. }),
                ..
            }) => self.sqlite_fetch(conn.open()?, usize::MAX),
            Target::Db {
                db: Db::Postgres(pool),
                ..
            } => {
                let rows = self.postgres()?.fetch_all(pool).await?;
                rows.iter()
                    .map(|r| R::from_row(&Row::Postgres(r)))
                    .collect()
            }
            Target::Tx(Tx {
                engine: EngineTx::Postgres(tx),
                ..
            }) => {
                let rows = self.postgres()?.fetch_all(&mut **tx).await?;
                rows.iter()
                    .map(|r| R::from_row(&Row::Postgres(r)))
                    .collect()
            }
        }
    }

    /// The first row, if any.
    pub(crate) async fn fetch_optional<R: FromRow>(
        self,
        mut target: impl Executor,
    ) -> Result<Option<R>, DbError> {
        match target.target() {
            Target::Db {
                db: Db::Sqlite(conn),
                write,
            } => Ok(outside_tx(conn, write, |c| self.sqlite_fetch(c, 1))
                .await?
                .pop()),
            Target::Tx(Tx {
                engine: EngineTx::Sqlite(SqliteTx { conn, .. }),
                ..
            }) => Ok(self.sqlite_fetch(conn.open()?, 1)?.pop()),
            Target::Db {
                db: Db::Postgres(pool),
                ..
            } => {
                let row = self.postgres()?.fetch_optional(pool).await?;
                row.map(|r| R::from_row(&Row::Postgres(&r))).transpose()
            }
            Target::Tx(Tx {
                engine: EngineTx::Postgres(tx),
                ..
            }) => {
                let row = self.postgres()?.fetch_optional(&mut **tx).await?;
                row.map(|r| R::from_row(&Row::Postgres(&r))).transpose()
            }
        }
    }

    /// The first row; [`DbError::Sqlite`]/[`DbError::Postgres`] "no rows" if there is none.
    pub(crate) async fn fetch_one<R: FromRow>(
        self,
        mut target: impl Executor,
    ) -> Result<R, DbError> {
        match target.target() {
            Target::Db {
                db: Db::Postgres(pool),
                ..
            } => {
                let row = self.postgres()?.fetch_one(pool).await?;
                R::from_row(&Row::Postgres(&row))
            }
            Target::Tx(Tx {
                engine: EngineTx::Postgres(tx),
                ..
            }) => {
                let row = self.postgres()?.fetch_one(&mut **tx).await?;
                R::from_row(&Row::Postgres(&row))
            }
            sqlite => self
                .fetch_optional(sqlite)
                .await?
                .ok_or(DbError::Sqlite(rusqlite::Error::QueryReturnedNoRows)),
        }
    }

    fn sqlite_statement<'c>(
        &self,
        conn: &'c rusqlite::Connection,
    ) -> Result<rusqlite::CachedStatement<'c>, DbError> {
        tracing::trace!(sql = %self.sql, "statement");
        let mut statement = conn.prepare_cached(&self.sql)?;
        for (n, value) in self.args.iter().enumerate() {
            let index = statement.parameter_index(&param_name(n))?.ok_or_else(|| {
                DbError::Usage(format!("parameter ${} is not in: {}", n + 1, self.sql))
            })?;
            match value {
                Value::Int(v) => statement.raw_bind_parameter(index, v)?,
                Value::Text(v) => statement.raw_bind_parameter(index, v)?,
                Value::NullInt | Value::NullText => {
                    statement.raw_bind_parameter(index, rusqlite::types::Null)?
                }
            }
        }
        if statement.parameter_count() != self.args.len() {
            return Err(DbError::Usage(format!(
                "{} parameters bound, {} in: {}",
                self.args.len(),
                statement.parameter_count(),
                self.sql
            )));
        }
        Ok(statement)
    }

    fn sqlite_execute(&self, conn: &rusqlite::Connection) -> Result<Done, DbError> {
        let mut statement = self.sqlite_statement(conn)?;
        if statement.column_count() > 0 {
            // A statement that returns rows (`SELECT 1` as a ping): run it, ignore the rows.
            let mut rows = statement.raw_query();
            while rows.next()?.is_some() {}
            return Ok(Done { rows: 0 });
        }
        let rows = statement.raw_execute()?;
        Ok(Done { rows: rows as u64 })
    }

    fn sqlite_fetch<R: FromRow>(
        &self,
        conn: &rusqlite::Connection,
        limit: usize,
    ) -> Result<Vec<R>, DbError> {
        let mut statement = self.sqlite_statement(conn)?;
        let mut rows = statement.raw_query();
        let mut out = Vec::new();
        while out.len() < limit
            && let Some(row) = rows.next()?
        {
            out.push(R::from_row(&Row::Sqlite(row, std::cell::Cell::new(0)))?);
        }
        Ok(out)
    }

    fn postgres(&self) -> Result<sqlx::query::Query<'_, Postgres, PgArguments>, DbError> {
        let mut args = PgArguments::default();
        for value in &self.args {
            let added = match value {
                Value::Int(v) => args.add(*v),
                Value::Text(v) => args.add(v.as_str()),
                Value::NullInt => args.add(None::<i64>),
                Value::NullText => args.add(None::<&str>),
            };
            added.map_err(|e| DbError::Postgres(sqlx::Error::Encode(e)))?;
        }
        Ok(sqlx::query_with(sqlx::AssertSqlSafe(&*self.sql), args))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    /// A store's connection on a fresh file (WAL needs one), with a table of numbers (one
    /// page: no index beside the table).
    fn db() -> (Db, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!(
            "tenantd-group-{}-{}.db",
            std::process::id(),
            next_suffix()
        ));
        let conn = crate::open_sqlite(&path.display().to_string(), rusqlite::OpenFlags::default())
            .expect("open");
        conn.execute_batch("CREATE TABLE n (v INTEGER PRIMARY KEY)")
            .expect("schema");
        (Db::sqlite(conn), path)
    }

    /// The store's connection behind `db`.
    fn sqlite(db: &Db) -> &Arc<Mutex<Conn>> {
        let Db::Sqlite(conn) = db else {
            unreachable!("a SQLite store")
        };
        conn
    }

    fn next_suffix() -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }

    /// Every transactional future holds `begin_write`'s, and so does every request handler
    /// above it: sqlx's unboxed `begin` made each of those 14 KiB larger, on SQLite too.
    #[test]
    fn a_transactions_future_stays_small() {
        fn size<F>(_: impl Fn(&'static Db) -> F) -> usize {
            std::mem::size_of::<F>()
        }
        let bytes = size(Db::begin_write);
        assert!(bytes <= 512, "{bytes} bytes");
    }

    async fn insert(db: &Db, v: i64) -> Result<(), DbError> {
        let mut tx = db.begin_write().await?;
        query("INSERT INTO n (v) VALUES ($1)")
            .bind(v)
            .execute(&mut tx)
            .await?;
        tx.commit().await
    }

    /// Inserts `v` twice in one transaction: the primary key refuses the second, and the
    /// caller drops its transaction.
    async fn insert_twice(db: &Db, v: i64) -> Result<(), DbError> {
        let mut tx = db.begin_write().await?;
        for _ in 0..2 {
            query("INSERT INTO n (v) VALUES ($1)")
                .bind(v)
                .execute(&mut tx)
                .await?;
        }
        tx.commit().await
    }

    /// The numbers another connection sees: only what was committed.
    fn committed_rows(path: &std::path::Path) -> Vec<i64> {
        let other = rusqlite::Connection::open(path).expect("open");
        let mut statement = other
            .prepare("SELECT v FROM n ORDER BY v")
            .expect("prepare");
        statement
            .query_map([], |row| row.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }

    /// Frames written to the write-ahead log (one per page per commit) since the last call,
    /// which starts the log over.
    fn log_frames(db: &Db) -> i64 {
        let held = sqlite(db).try_lock().expect("idle");
        let conn = held.open().expect("open");
        let frames = conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(1))
            .expect("checkpoint");
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .expect("truncate");
        frames
    }

    #[tokio::test(flavor = "current_thread")]
    async fn columns_read_by_name_in_any_order() {
        struct Abc(i64, i64, i64);
        impl FromRow for Abc {
            fn from_row(row: &Row<'_>) -> Result<Self, DbError> {
                // Out of the selected order, and in another case: the first guess misses.
                let c = row.get("C")?;
                let a = row.get("a")?;
                let b = row.get("b")?;
                Ok(Abc(a, b, c))
            }
        }
        let (db, path) = db();
        let row: Abc = query("SELECT 1 AS a, 2 AS b, 3 AS c")
            .fetch_one(&db)
            .await
            .expect("row");
        assert_eq!((row.0, row.1, row.2), (1, 2, 3));
        let missing = query("SELECT 1 AS a, 2 AS b, 4 AS d")
            .fetch_one::<Abc>(&db)
            .await;
        assert!(missing.is_err(), "no column c");
        let _ = std::fs::remove_file(path);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn concurrent_writers_share_one_commit() {
        let (db, path) = db();
        log_frames(&db);
        // One at a time: each commit writes the table's page.
        insert(&db, 1).await.expect("insert");
        insert(&db, 2).await.expect("insert");
        assert_eq!(log_frames(&db), 2, "two commits, one page each");

        // Ready at the same time: both are in one group, and one commit writes the page once.
        let (a, b, c) = tokio::join!(insert(&db, 3), insert(&db, 4), insert(&db, 5));
        a.and(b).and(c).expect("inserts");
        assert_eq!(log_frames(&db), 1, "one commit for the three");
        assert_eq!(committed_rows(&path), [1, 2, 3, 4, 5]);
        let _ = std::fs::remove_file(path);
    }

    /// A statement run with [`Db::one_write`] joins the open group, or begins one that the
    /// writers ready with it join; when it fails, it fails alone.
    #[tokio::test(flavor = "current_thread")]
    async fn one_write_shares_a_commit_and_fails_alone() {
        let (db, path) = db();
        let one = |v: i64| {
            query("INSERT INTO n (v) VALUES ($1)")
                .bind(v)
                .execute(db.one_write())
        };
        one(50).await.expect("alone");
        assert_eq!(committed_rows(&path), [50], "committed before it returned");
        log_frames(&db);

        let (a, taken, b, c) = tokio::join!(one(51), one(50), insert(&db, 52), one(53));
        a.and(b).and(c).expect("the others commit");
        assert!(taken.is_err(), "50 is there already");
        assert_eq!(log_frames(&db), 1, "one commit for them all");
        assert_eq!(committed_rows(&path), [50, 51, 52, 53]);
        let _ = std::fs::remove_file(path);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_rollback_undoes_its_own_work_alone() {
        let (db, path) = db();
        let (ok, failed, read) = tokio::join!(insert(&db, 11), insert_twice(&db, 10), async {
            query("SELECT v FROM n ORDER BY v")
                .fetch_all::<(i64,)>(&db)
                .await
        });
        ok.expect("the other member commits");
        assert!(failed.is_err(), "the duplicate is refused");
        // The reader ran inside the group (it saw 11 before its commit) and returned after it.
        assert_eq!(read.expect("read"), [(11,)]);
        assert_eq!(committed_rows(&path), [11]);
        let _ = std::fs::remove_file(path);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_rollback_of_a_groups_first_member_undoes_its_work_alone() {
        let (db, path) = db();
        // The first to begin is the group's first member (it has no savepoint of its own);
        // the others wait for the connection meanwhile.
        let (failed, ok, read) = tokio::join!(insert_twice(&db, 40), insert(&db, 41), async {
            query("SELECT v FROM n ORDER BY v")
                .fetch_all::<(i64,)>(&db)
                .await
        });
        assert!(failed.is_err(), "the duplicate is refused");
        ok.expect("the next writer commits");
        assert_eq!(read.expect("read"), [(41,)]);
        assert_eq!(committed_rows(&path), [41]);
        // And a first member that commits keeps its work when a later one rolls back.
        let (ok, failed) = tokio::join!(insert(&db, 42), insert(&db, 41));
        ok.expect("the first member commits");
        assert!(failed.is_err(), "41 is there already");
        assert_eq!(committed_rows(&path), [41, 42]);
        let _ = std::fs::remove_file(path);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_lone_rollback_leaves_no_transaction_open() {
        let (db, path) = db();
        let conn = sqlite(&db);
        let mut tx = db.begin_write().await.expect("begin");
        query("INSERT INTO n (v) VALUES ($1)")
            .bind(30)
            .execute(&mut tx)
            .await
            .expect("insert");
        drop(tx);
        // SQLite's write lock is free for another process at once, and nothing was written.
        let held = conn.lock().await;
        assert!(held.group.is_none());
        assert!(held.open().expect("open").is_autocommit());
        drop(held);
        assert!(committed_rows(&path).is_empty());
        let _ = std::fs::remove_file(path);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_group_sqlite_rolled_back_fails_every_member() {
        let (db, path) = db();
        let conn = sqlite(&db);
        let failing = async {
            let tx = db.begin_write().await?;
            let EngineTx::Sqlite(inner) = &tx.engine else {
                unreachable!()
            };
            // What SQLite does on an I/O error or a full disk: the whole transaction is gone,
            // the work of the members before this one too.
            run_cached(inner.conn.open()?, "ROLLBACK")?;
            tx.commit().await
        };
        let (first, second) = tokio::join!(insert(&db, 20), failing);
        assert!(second.is_err());
        let err = first.expect_err("the first member's work was lost with the group");
        assert!(matches!(err, DbError::Commit(_)), "{err}");
        // The connection is usable, outside any transaction, and the next write commits.
        assert!(conn.lock().await.group.is_none());
        insert(&db, 21).await.expect("insert");
        assert_eq!(committed_rows(&path), [21]);
        let _ = std::fs::remove_file(path);
    }
}
