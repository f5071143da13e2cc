//! The two engines behind one query API.
//!
//! Every query is written once, in portable SQL with `$1`-style parameters, and runs on either:
//! - **SQLite** (the embedded default): one `rusqlite` connection owned by the store and used
//!   in place, on the calling task's thread. A statement on a cached page costs microseconds,
//!   less than handing it to another thread and back, so nothing is gained by a thread hop;
//!   statements are prepared once and cached. The connection is behind an async mutex: a
//!   write transaction holds it from `BEGIN IMMEDIATE` to `COMMIT`, which also makes the
//!   in-process writers queue in FIFO order instead of meeting `SQLITE_BUSY`. WAL checkpoints
//!   run on a background thread with its own connection, never inside a request's commit.
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
    /// The one SQLite connection (`None` once the store is closed).
    Sqlite(Arc<Mutex<Option<rusqlite::Connection>>>),
    /// A PostgreSQL pool.
    Postgres(PgPool),
}

impl Db {
    /// Wraps an open SQLite connection: caches statements.
    pub(crate) fn sqlite(conn: rusqlite::Connection) -> Db {
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Db::Sqlite(Arc::new(Mutex::new(Some(conn))))
    }

    /// Begins a write transaction. On SQLite it holds the connection until commit or drop and
    /// takes the write lock first (`BEGIN IMMEDIATE`), so it never fails half-way when it
    /// upgrades from reading to writing.
    pub(crate) async fn begin_write(&self) -> Result<Tx, DbError> {
        match self {
            Db::Sqlite(conn) => {
                let conn = Arc::clone(conn).lock_owned().await;
                tracing::trace!("BEGIN IMMEDIATE");
                run_cached(open(&conn)?, "BEGIN IMMEDIATE")?;
                Ok(Tx::new(EngineTx::Sqlite(SqliteTx { conn, open: true })))
            }
            Db::Postgres(pool) => Ok(Tx::new(EngineTx::Postgres(pool.begin().await?))),
        }
    }

    /// SQLite's `PRAGMA data_version`: it changes when another connection commits to the
    /// file (another process, say), not when this one does. `None` on PostgreSQL.
    pub(crate) async fn data_version(&self) -> Result<Option<i64>, DbError> {
        match self {
            Db::Sqlite(conn) => {
                let conn = conn.lock().await;
                let version = open(&conn)?
                    .prepare_cached("PRAGMA data_version")?
                    .query_row([], |row| row.get(0))?;
                Ok(Some(version))
            }
            Db::Postgres(_) => Ok(None),
        }
    }
}

/// Runs a statement without parameters or rows (`BEGIN`, `COMMIT`), prepared once.
fn run_cached(conn: &rusqlite::Connection, sql: &str) -> Result<(), rusqlite::Error> {
    conn.prepare_cached(sql)?.raw_execute().map(drop)
}

/// The connection, unless the store was closed.
pub(crate) fn open(conn: &Option<rusqlite::Connection>) -> Result<&rusqlite::Connection, DbError> {
    conn.as_ref().ok_or(DbError::Closed)
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

/// Holds the SQLite connection from `BEGIN` to `COMMIT`, or to the `ROLLBACK` run on drop.
pub(crate) struct SqliteTx {
    conn: OwnedMutexGuard<Option<rusqlite::Connection>>,
    open: bool,
}

impl Tx {
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
                // A failed COMMIT leaves the transaction open: drop then rolls it back so the
                // connection is usable by the next caller.
                tracing::trace!("COMMIT");
                run_cached(open(&tx.conn)?, "COMMIT")?;
                tx.open = false;
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
        if self.open
            && let Some(conn) = self.conn.as_ref()
            && let Err(e) = run_cached(conn, "ROLLBACK")
        {
            tracing::error!(error = %e, "rolling back an abandoned SQLite transaction failed");
        }
    }
}

/// Where a statement runs: on the database (outside any transaction) or in a transaction.
pub(crate) enum Target<'a> {
    /// Autocommit, on the store's database.
    Db(&'a Db),
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
        Target::Db(self)
    }
}

impl Executor for Target<'_> {
    fn target(&mut self) -> Target<'_> {
        match self {
            Target::Db(db) => Target::Db(db),
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
    /// A SQLite row.
    Sqlite(&'r rusqlite::Row<'r>),
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
            Row::Sqlite(row) => Ok(row.get(name)?),
            Row::Postgres(row) => Ok(row.try_get(name)?),
        }
    }

    /// The value of the column at `index` (0-based).
    pub(crate) fn get_at<T: Decode>(&self, index: usize) -> Result<T, DbError> {
        match self {
            Row::Sqlite(row) => Ok(row.get(index)?),
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
/// name, which keeps a reused or out-of-order `$n` right. The common ones without allocating.
const PARAM_NAMES: [&str; 16] = [
    "$1", "$2", "$3", "$4", "$5", "$6", "$7", "$8", "$9", "$10", "$11", "$12", "$13", "$14", "$15",
    "$16",
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

    /// Runs the statement; returns how many rows it changed.
    pub(crate) async fn execute(self, mut target: impl Executor) -> Result<Done, DbError> {
        match target.target() {
            Target::Db(Db::Sqlite(conn)) => self.sqlite_execute(open(&*conn.lock().await)?),
            Target::Tx(Tx {
                engine: EngineTx::Sqlite(SqliteTx { conn, .. }),
                ..
            }) => self.sqlite_execute(open(conn)?),
            Target::Db(Db::Postgres(pool)) => {
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
            Target::Db(Db::Sqlite(conn)) => {
                self.sqlite_fetch(open(&*conn.lock().await)?, usize::MAX)
            }
            Target::Tx(Tx {
                engine: EngineTx::Sqlite(SqliteTx { conn, .. }),
                ..
            }) => self.sqlite_fetch(open(conn)?, usize::MAX),
            Target::Db(Db::Postgres(pool)) => {
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
            Target::Db(Db::Sqlite(conn)) => {
                Ok(self.sqlite_fetch(open(&*conn.lock().await)?, 1)?.pop())
            }
            Target::Tx(Tx {
                engine: EngineTx::Sqlite(SqliteTx { conn, .. }),
                ..
            }) => Ok(self.sqlite_fetch(open(conn)?, 1)?.pop()),
            Target::Db(Db::Postgres(pool)) => {
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
            Target::Db(Db::Postgres(pool)) => {
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
            out.push(R::from_row(&Row::Sqlite(row))?);
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
