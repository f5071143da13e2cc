//! Persistence for one tenant.
//!
//! This crate owns the tenant's database: the schema (embedded migrations under `migrations/`)
//! and every query against it, for users (members and guests), guest invitations, partners
//! (trusted other tenants) and the claim profile of their ID tokens, user risk and its history,
//! apps, consents, browser sessions (local or federated), pending interactions (consumed at most
//! once), grants with their refresh tokens, the secret authorization codes are sealed with (the
//! codes themselves are never stored), access-token and client-assertion (`jti`) revocation
//! lists, signing keys, the sign-in log, MFA (TOTP methods, recovery codes, one-time codes sent
//! by email), risk detections, the leaked-credentials corpus, self-service password reset
//! attempts and the development mail outbox.
//!
//! One portable query set runs on SQLite (the default, a file: one rusqlite connection used in
//! place) and PostgreSQL (sqlx): see the `db` module. sqlx applies the migrations on both.
//! Conventions every caller relies on:
//! - time is `i64` unix seconds passed in by the caller; the store never reads the clock, and a
//!   row "expires at" `t` when `now >= t`;
//! - ids are chosen by the caller; secrets (session cookies, refresh tokens, recovery codes)
//!   are stored only as the hashes the caller passes in; the secrets that must be read back
//!   (signing keys, TOTP keys, the code-sealing key, the tenant's HMAC keys) are sealed by the
//!   [`Sealer`] the store is opened with, inside the functions that write and read them;
//! - everything that must be atomic (code redemption, refresh rotation, key rotation, guest
//!   invitation and redemption, risk changes with their history, TOTP steps and recovery codes
//!   used once) is one transaction or one conditional statement, and replay or reuse revokes
//!   the grant inside that same transaction.

#![deny(missing_docs)]

mod apps;
mod audits;
mod ca_policies;
mod db;
mod detections;
mod email_otp;
mod error;
mod grants;
mod groups;
mod guests;
mod keys;
mod leaked;
mod lockouts;
mod mfa;
mod partner_profiles;
mod partners;
mod retention;
mod revocation;
mod risk;
mod roles;
mod sealing;
mod sessions;
mod sign_ins;
mod signals;
mod ssf;
mod sspr;
mod users;

use std::sync::Arc;
use std::time::Duration;

use sqlx::Connection as _;
use sqlx::postgres::PgPoolOptions;

pub use db::DbError;
use db::{Db, Tx, query};

pub use apps::{AppRecord, AppSource};
pub use audits::{AuditFilter, DirectoryAudit};
pub use detections::{DETECTION_ACTIVE, DetectionFilter, DetectionRecord, RiskChange};
pub use email_otp::{EmailOtp, EmailOtpMethod, OutboxMail};
pub use error::StoreError;
pub use grants::{AuthCode, CodeRedemption, Grant, RefreshToken, RefreshTokenUser, Rotation};
pub use groups::Group;
pub use guests::{Invitation, InvitationStatus, NewGuest};
pub use keys::SigningKeyRecord;
pub use leaked::LeakedCredential;
pub use lockouts::LockoutRow;
pub use mfa::{MfaReset, TotpMethod};
pub use partner_profiles::PartnerProfile;
pub use retention::{Purged, Retention};
pub use risk::{RiskHistoryItem, RiskyUser, RiskyUserCondition, RiskyUserQuery, UserRiskRecord};
pub use sealing::{Opened, Resealed, SealError, Sealer};
pub use sessions::{Consumption, Interaction, Session, SessionUser};
pub use sign_ins::{
    FLUSH_EVERY, INTERACTIVE_USER, NON_INTERACTIVE_USER, RECENT_USERS, RecentFacts, RecentSignIn,
    SignInFilter, SignInLocation, SignInLog,
};
pub use signals::{GuestChange, ReceivedSummary, ReceivingStream, SignalApplied};
pub use ssf::{
    DeliveryCounts, OUTBOX_DELIVERED, OUTBOX_FAILED, OUTBOX_PENDING, OutboxEvent, STREAM_DISABLED,
    STREAM_ENABLED, STREAM_PAUSED, Signal, StreamRecord,
};
pub use sspr::AttemptCount;
pub use users::{
    InvitationState, NewUser, User, UserCondition, UserDeletion, UserPageQuery, UserStatus,
    UserType, UserUpdate, UserWithRisk,
};

/// The embedded schema migrations (portable DDL, one folder for both backends).
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How long a SQLite connection waits for another process's writer before failing with
/// `SQLITE_BUSY` (this process's writers queue on the store's connection instead).
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the background thread checkpoints the SQLite write-ahead log into the database.
/// Each round ends in fsyncs whose writeback is most of its cost, and a page written again
/// within a round is written back once: a round a second cost less CPU per flow than five
/// (SSO −8…−10 %, refresh −2…−5 %, a password sign-in's overhead −0.6 points; BENCHMARKS.md
/// step 17). The log holds up to a second of writes: about 110 MB at 5,800 refreshes a second.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Which database engine a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, a file on disk (`sqlite://path/to.db`).
    Sqlite,
    /// PostgreSQL (`postgres://...` or `postgresql://...`).
    Postgres,
}

impl Backend {
    /// The backend a connection URL names, from its scheme.
    pub fn from_url(url: &str) -> Result<Backend, StoreError> {
        let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or_default();
        match scheme {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            _ => Err(StoreError::Config(format!(
                "unsupported scheme {scheme:?}: use sqlite:// or postgres://"
            ))),
        }
    }
}

/// A handle on the tenant's database.
///
/// Cloning is cheap and shares the connection (SQLite) or pool (PostgreSQL).
#[derive(Debug, Clone)]
pub struct Store {
    db: Db,
    /// Sign-in rows logged behind the requests (see [`Store::log_sign_in`]).
    sign_ins: Arc<sign_ins::SignInQueue>,
    /// Seals the secret columns (see the `sealing` module).
    sealer: Arc<dyn Sealer>,
    /// Woken when a transaction that wrote shared signals to the outbox has committed.
    outbox_written: Arc<tokio::sync::Notify>,
    /// The tenant secrets read so far, opened (see [`Store::tenant_secret`]).
    tenant_secrets: Arc<std::sync::Mutex<std::collections::HashMap<String, String>>>,
}

impl Store {
    /// Connects to `url` (`sqlite://path/to.db` or `postgres://...`) and applies pending
    /// migrations.
    ///
    /// For SQLite the file and its parent directory are created if missing, the journal is
    /// switched to WAL with `synchronous=NORMAL` (a commit is durable against a crash of the
    /// process as soon as it returns; only a power loss can take the last commits), and
    /// foreign keys are enforced. `sqlite::memory:` works too (gone on close), for tests.
    ///
    /// `sealer` seals the secrets the store writes and opens those it reads.
    pub async fn connect(url: &str, sealer: Arc<dyn Sealer>) -> Result<Store, StoreError> {
        let db = match Backend::from_url(url)? {
            Backend::Sqlite => connect_sqlite(url).await?,
            Backend::Postgres => {
                let pool = PgPoolOptions::new()
                    .max_connections(10)
                    .acquire_timeout(Duration::from_secs(10))
                    // No ping before every statement (one round trip each): a connection the
                    // server dropped fails its next statement, and sqlx then discards it.
                    .test_before_acquire(false)
                    .connect(url)
                    .await
                    .map_err(DbError::from)?;
                migrate(&pool).await?;
                Db::Postgres(pool)
            }
        };
        let sign_ins = sign_ins::SignInQueue::start(db.clone());
        Ok(Store {
            db,
            sign_ins,
            sealer,
            outbox_written: Arc::new(tokio::sync::Notify::new()),
            tenant_secrets: Arc::default(),
        })
    }

    /// Resolves once a transaction of this process that wrote shared signals to the outbox
    /// has committed since the last time it resolved (so the push worker sends them at once
    /// rather than at its next round; other replicas' signals are found by that round).
    pub async fn outbox_written(&self) {
        self.outbox_written.notified().await;
    }

    /// The backend this store talks to.
    pub fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// Checks that the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        query("SELECT 1").execute(&self.db).await?;
        Ok(())
    }

    /// The database connections `(in use, idle)` now: the PostgreSQL pool's, or SQLite's one
    /// connection (in use while a statement or transaction holds it).
    pub fn connections(&self) -> Option<(u32, u32)> {
        match &self.db {
            Db::Postgres(pool) => {
                let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX);
                Some((pool.size().saturating_sub(idle), idle))
            }
            Db::Sqlite(conn) => Some(if conn.try_lock().is_ok() {
                (0, 1)
            } else {
                (1, 0)
            }),
        }
    }

    /// Closes the database, after writing the sign-in rows still queued: on PostgreSQL waits for connections in use to be returned; on
    /// SQLite waits for the statement in progress and checkpoints the log.
    pub async fn close(&self) {
        if let Err(e) = self.sign_ins.flush().await {
            tracing::error!(error = %e, "writing the last sign-in rows failed");
        }
        match &self.db {
            Db::Postgres(pool) => pool.close().await,
            Db::Sqlite(conn) => {
                if let Some(conn) = conn.lock().await.take()
                    && let Err(e) =
                        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                {
                    tracing::warn!(error = %e, "final SQLite checkpoint failed");
                }
            }
        }
    }

    /// Deletes what can no longer be used at `now`: expired interactions, sessions, refresh
    /// tokens, grants (with their tokens), revoked-access-token entries, remembered client
    /// `jti`s, ended password reset windows, expired email codes and outbox mail. Returns the
    /// number of rows deleted. A family's first refresh token is part of its grant's row and
    /// goes with the grant (until then, expired, it is refused).
    ///
    /// Retired signing keys are not touched: see
    /// [`Store::delete_signing_keys_retired_before`].
    pub async fn purge_expired(&self, now: i64) -> Result<u64, StoreError> {
        const PURGES: [&str; 9] = [
            // Tokens of expired grants explicitly (not by cascade) so they count.
            "DELETE FROM refresh_tokens WHERE expires_at <= $1 \
             OR grant_id IN (SELECT id FROM grants WHERE expires_at <= $1)",
            "DELETE FROM grants WHERE expires_at <= $1",
            "DELETE FROM sessions WHERE expires_at <= $1",
            "DELETE FROM interactions WHERE expires_at <= $1",
            "DELETE FROM revoked_access_tokens WHERE expires_at <= $1",
            "DELETE FROM client_jtis WHERE expires_at <= $1",
            "DELETE FROM sspr_attempts WHERE expires_at <= $1",
            "DELETE FROM email_otps WHERE expires_at <= $1",
            "DELETE FROM mail_outbox WHERE expires_at <= $1",
        ];
        let mut tx = self.begin_write().await?;
        let mut deleted = 0;
        for sql in PURGES {
            deleted += query(sql).bind(now).execute(&mut tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(deleted)
    }

    /// Begins a transaction that will write (see [`Db::begin_write`]).
    pub(crate) async fn begin_write(&self) -> Result<Tx, StoreError> {
        // Its commit wakes the push worker if it wrote shared signals (`enqueue_signals`).
        Ok(self.db.begin_write().await?.waking(&self.outbox_written))
    }
}

/// Opens the SQLite database: migrations through sqlx (the one migration runner for both
/// engines, which keeps its bookkeeping table), then the store's own connection, and a
/// checkpoint thread for a file.
async fn connect_sqlite(url: &str) -> Result<Db, StoreError> {
    use rusqlite::OpenFlags;
    let (path, in_memory) = sqlite_path(url)?;
    let (conn, migrator) = if in_memory {
        // A private in-memory database, shared by name between the migration connection and
        // the store's, and gone when the store's closes.
        let name = format!("file:tenantd-{}", uuid::Uuid::new_v4());
        let flags = OpenFlags::default()
            | OpenFlags::SQLITE_OPEN_MEMORY
            | OpenFlags::SQLITE_OPEN_SHARED_CACHE;
        let migrator = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&name)
            .in_memory(true)
            .shared_cache(true);
        (open_sqlite(&name, flags)?, migrator)
    } else {
        let migrator = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        (open_sqlite(&path, OpenFlags::default())?, migrator)
    };
    let mut migrator =
        sqlx::sqlite::SqliteConnection::connect_with(&migrator.busy_timeout(SQLITE_BUSY_TIMEOUT))
            .await
            .map_err(DbError::from)?;
    migrate(&mut migrator).await?;
    migrator.close().await.map_err(DbError::from)?;
    let db = Db::sqlite(conn);
    if let Db::Sqlite(conn) = &db
        && !in_memory
    {
        spawn_checkpoints(&path, Arc::downgrade(conn))?;
    }
    Ok(db)
}

/// Applies the pending migrations.
///
/// The future is boxed as `Send`: `Migrator::run` is generic over `Acquire<'a>`, which makes
/// every caller's future `Send` only for one specific lifetime, and a generic `Send` bound
/// (`tokio::spawn` of a future that connects) then fails with "not general enough".
fn migrate<'a, A>(
    conn: A,
) -> std::pin::Pin<Box<dyn Future<Output = Result<(), sqlx::migrate::MigrateError>> + Send + 'a>>
where
    A: sqlx::Acquire<'a> + Send + 'a,
    <A::Connection as std::ops::Deref>::Target: sqlx::migrate::Migrate,
{
    Box::pin(MIGRATOR.run(conn))
}

/// Opens one SQLite connection with the store's settings.
fn open_sqlite(path: &str, flags: rusqlite::OpenFlags) -> Result<rusqlite::Connection, StoreError> {
    let conn = rusqlite::Connection::open_with_flags(path, flags).map_err(DbError::from)?;
    conn.busy_timeout(SQLITE_BUSY_TIMEOUT)
        .map_err(DbError::from)?;
    // The query planner's stability guarantee: a plan never depends on a bound value. Without
    // it SQLite folds a bound `LIMIT $n` (and a bound `LIKE` pattern) into the plan and marks
    // the statement expired whenever that parameter is bound again, so a cached statement was
    // parsed and planned anew on every run (the recent sign-ins read of every sign-in).
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map_err(DbError::from)?;
    for (pragma, value) in [
        ("journal_mode", "WAL"),
        ("synchronous", "NORMAL"),
        ("foreign_keys", "ON"),
        // Checkpoints run on their own thread (see `spawn_checkpoints`).
        ("wal_autocheckpoint", "0"),
        // A write transaction that joins a group is a savepoint inside the group's transaction
        // (see `db::Group`), so SQLite keeps the pages it changes in a sub-journal to undo it
        // alone.
        // On disk, a sub-journal past 64 KiB became a temporary file created, written and
        // deleted once per group commit (4 % of an SSO flow's CPU); in memory it is a few
        // pages, freed when the savepoint is released.
        ("temp_store", "MEMORY"),
        // SQLite's own page cache, 1 MiB rather than its default 2 MB (in KiB when negative).
        // A page it misses is read from the operating system's page cache, a copy away:
        // halving it cost nothing measurable per SSO flow or refresh, and a tenant under load
        // is 1.1 MiB smaller (BENCHMARKS.md, step 23).
        ("cache_size", "-1024"),
    ] {
        conn.pragma_update(None, pragma, value)
            .map_err(DbError::from)?;
    }
    Ok(conn)
}

/// Checkpoints the write-ahead log from a thread of its own, so no request's commit pays for
/// it. The thread ends once the store it serves is dropped.
///
/// A passive checkpoint copies what is committed without blocking anyone, but under steady
/// writes it never catches up: frames are appended while it copies, the log is never wholly
/// copied when a write begins, SQLite never starts it over, and it grows for as long as the
/// load lasts (a 29 MB database had a 990 MB log after 11 s of sign-ins). So each round copies
/// in bulk first, then holds the store's connection (its writers wait on the mutex, never in
/// SQLite's busy handler) for a `RESTART` checkpoint: the few frames written meanwhile are
/// copied and the log starts over from its beginning.
fn spawn_checkpoints(
    path: &str,
    store: std::sync::Weak<tokio::sync::Mutex<db::Conn>>,
) -> Result<(), StoreError> {
    let conn = open_sqlite(path, rusqlite::OpenFlags::default())?;
    // Never wait in SQLite's busy handler (another process writing): the next round retries.
    conn.busy_timeout(Duration::ZERO).map_err(DbError::from)?;
    let checkpoint =
        move |mode: &str| conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(()));
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            loop {
                std::thread::sleep(CHECKPOINT_EVERY);
                let Some(store) = store.upgrade() else {
                    return;
                };
                if let Err(e) = checkpoint("PASSIVE") {
                    tracing::warn!(error = %e, "SQLite checkpoint failed");
                    continue;
                }
                let mut held = store.blocking_lock();
                // Commits the group in progress, if any: a checkpoint cannot restart the log
                // under an open transaction.
                held.settle();
                if held.open().is_ok()
                    && let Err(e) = checkpoint("RESTART")
                {
                    tracing::debug!(error = %e, "SQLite log not started over this round");
                }
            }
        })
        .map_err(|e| StoreError::Config(format!("cannot start the checkpoint thread: {e}")))?;
    Ok(())
}

/// The file a SQLite URL names (its parent directory created), or that it is in memory.
fn sqlite_path(url: &str) -> Result<(String, bool), StoreError> {
    let Some(path) = sqlite_file(url)? else {
        return Ok((String::new(), true));
    };
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)
            .map_err(|e| StoreError::Config(format!("cannot create {}: {e}", parent.display())))?;
    }
    Ok((path.display().to_string(), false))
}

/// The file a `sqlite:` URL names; `None` for an in-memory database.
pub fn sqlite_file(url: &str) -> Result<Option<std::path::PathBuf>, StoreError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| StoreError::Config(format!("not a sqlite URL: {url}")))?;
    let (path, params) = match rest.split_once('?') {
        Some((path, params)) => (path, Some(params)),
        None => (rest, None),
    };
    if path == ":memory:" || params.is_some_and(|p| p.contains("mode=memory")) {
        return Ok(None);
    }
    if path.is_empty() {
        return Err(StoreError::Config(format!("no database file in {url}")));
    }
    Ok(Some(path.into()))
}

/// Encodes a boolean for a BIGINT 0/1 column.
pub(crate) fn bool_to_db(value: bool) -> i64 {
    i64::from(value)
}

/// Decodes a BIGINT 0/1 column; anything else is a corrupt row.
pub(crate) fn bool_from_db(value: i64, column: &str) -> Result<bool, StoreError> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(StoreError::Corrupt(format!(
            "{column} is {other}, expected 0 or 1"
        ))),
    }
}

/// Encodes a list of strings (e.g. `amr`) as a JSON array for a TEXT column.
pub(crate) fn strings_to_json(values: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(values).map_err(|e| StoreError::Corrupt(format!("cannot encode: {e}")))
}

/// Decodes a JSON array of strings from a TEXT column.
pub(crate) fn strings_from_json(text: &str, column: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("{column} is not a JSON array of strings: {e}")))
}
