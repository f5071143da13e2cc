//! Persistence for one tenant.
//!
//! This crate owns the tenant's database: the schema (embedded migrations under `migrations/`)
//! and every query against it, for users (members and guests), guest invitations, partners
//! (trusted other tenants) and the claim profile of their ID tokens, user risk and its history,
//! apps, consents, browser sessions (local or federated), pending interactions (consumed at most
//! once), grants with their authorization codes and refresh tokens, access-token and
//! client-assertion (`jti`) revocation lists, signing keys, the sign-in log, MFA (TOTP methods
//! and recovery codes), risk detections, the leaked-credentials corpus and self-service password
//! reset attempts.
//!
//! One portable query set runs on SQLite (the default, a file) and PostgreSQL through sqlx's
//! `Any` driver. Conventions every caller relies on:
//! - time is `i64` unix seconds passed in by the caller; the store never reads the clock, and a
//!   row "expires at" `t` when `now >= t`;
//! - ids are chosen by the caller; secrets (session cookies, codes, refresh tokens, recovery
//!   codes) are stored only as the hashes the caller passes in (TOTP keys cannot be: the
//!   server computes codes from them);
//! - everything that must be atomic (code redemption, refresh rotation, key rotation, guest
//!   invitation and redemption, risk changes with their history, TOTP steps and recovery codes
//!   used once) is one transaction or one conditional statement, and replay or reuse revokes
//!   the grant inside that same transaction.

#![deny(missing_docs)]

mod apps;
mod ca_policies;
mod detections;
mod error;
mod grants;
mod guests;
mod keys;
mod leaked;
mod mfa;
mod partner_profiles;
mod partners;
mod revocation;
mod risk;
mod sessions;
mod sign_ins;
mod sspr;
mod users;

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{Any, AnyConnection, AnyPool, Executor, Transaction};
use tokio::sync::{Mutex, MutexGuard, OwnedMutexGuard};

pub use apps::{AppRecord, AppSource};
pub use detections::{DETECTION_ACTIVE, DetectionFilter, DetectionRecord, RiskChange};
pub use error::StoreError;
pub use grants::{AuthCode, CodeRedemption, Grant, RefreshToken, Rotation};
pub use guests::{Invitation, InvitationStatus, NewGuest};
pub use keys::SigningKeyRecord;
pub use leaked::LeakedCredential;
pub use mfa::{MfaReset, TotpMethod};
pub use partner_profiles::PartnerProfile;
pub use risk::{RiskHistoryItem, UserRiskRecord};
pub use sessions::{Consumption, Interaction, Session};
pub use sign_ins::{INTERACTIVE_USER, NON_INTERACTIVE_USER, RecentSignIn, SignInFilter, SignInLog};
pub use sspr::AttemptCount;
pub use users::{
    InvitationState, NewUser, User, UserCondition, UserDeletion, UserPageQuery, UserStatus,
    UserType, UserUpdate,
};

/// The embedded schema migrations (portable DDL, one folder for both backends).
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How long a SQLite connection waits for another writer before failing with `SQLITE_BUSY`.
const SQLITE_BUSY_TIMEOUT_MS: u64 = 5_000;

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

/// A handle on the tenant's database: a connection pool plus the backend it talks to.
///
/// Cloning is cheap and shares the pool.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// On SQLite, the turn to write: held for every write (a write transaction from
    /// `begin_write` to commit or rollback, or a single autocommit write statement), so
    /// concurrent writers queue here in FIFO order instead of sleeping in SQLite's busy handler.
    /// `None` on PostgreSQL, which has row locks.
    write_turn: Option<Arc<Mutex<()>>>,
}

/// A write transaction (see [`Store::begin_write`]). Derefs to the connection for queries; on
/// SQLite it holds the store's write turn until it is committed or dropped.
pub(crate) struct WriteTx {
    // Declared before `_turn`, so on drop the rollback is queued before the turn is released.
    tx: Transaction<'static, Any>,
    _turn: Option<OwnedMutexGuard<()>>,
}

impl WriteTx {
    /// Commits, then releases the write turn.
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl Deref for WriteTx {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.tx
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }
}

impl Store {
    /// Connects to `url` (`sqlite://path/to.db` or `postgres://...`) and applies pending
    /// migrations.
    ///
    /// For SQLite the file and its parent directory are created if missing, the journal is
    /// switched to WAL, and every connection gets `synchronous=NORMAL`, `foreign_keys=ON` and a
    /// 5 s busy timeout. `sqlite::memory:` works too (one connection, gone on close), for tests.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        install_default_drivers();
        let backend = Backend::from_url(url)?;
        let (url, options) = match backend {
            Backend::Sqlite => {
                let (url, in_memory) = prepare_sqlite_url(url)?;
                let options = AnyPoolOptions::new().after_connect(|conn, _meta| {
                    Box::pin(async move {
                        let busy = format!("PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}");
                        for pragma in [
                            "PRAGMA foreign_keys = ON".to_owned(),
                            "PRAGMA synchronous = NORMAL".to_owned(),
                            busy,
                        ] {
                            sqlx::query(sqlx::AssertSqlSafe(pragma))
                                .execute(&mut *conn)
                                .await?;
                        }
                        Ok(())
                    })
                });
                let options = if in_memory {
                    // Every new connection to `:memory:` would be a new, empty database.
                    options
                        .max_connections(1)
                        .min_connections(1)
                        .idle_timeout(None)
                        .max_lifetime(None)
                } else {
                    options.max_connections(8)
                };
                // A local file does not drop connections: skip the ping (one more round trip
                // to the connection's worker thread) on every acquire.
                (url, options.test_before_acquire(false))
            }
            Backend::Postgres => (url.to_owned(), AnyPoolOptions::new().max_connections(10)),
        };
        let pool = options
            .acquire_timeout(Duration::from_secs(10))
            .connect(&url)
            .await?;
        if backend == Backend::Sqlite {
            // Persistent in the file; needs an exclusive lock, so set it once here rather than
            // on every connection.
            pool.execute("PRAGMA journal_mode = WAL").await?;
        }
        MIGRATOR.run(&pool).await?;
        let write_turn = (backend == Backend::Sqlite).then(|| Arc::new(Mutex::new(())));
        Ok(Store {
            pool,
            backend,
            write_turn,
        })
    }

    /// The backend this store talks to.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Checks that the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Deletes what can no longer be used at `now`: expired authorization codes, interactions,
    /// sessions, refresh tokens, grants (with their codes and tokens), revoked-access-token
    /// entries, remembered client `jti`s and ended password reset windows. Returns the number
    /// of rows deleted.
    ///
    /// Retired signing keys are not touched: see
    /// [`Store::delete_signing_keys_retired_before`].
    pub async fn purge_expired(&self, now: i64) -> Result<u64, StoreError> {
        const PURGES: [&str; 8] = [
            // Codes and tokens of expired grants explicitly (not by cascade) so they count.
            "DELETE FROM auth_codes WHERE expires_at <= $1 \
             OR grant_id IN (SELECT id FROM grants WHERE expires_at <= $1)",
            "DELETE FROM refresh_tokens WHERE expires_at <= $1 \
             OR grant_id IN (SELECT id FROM grants WHERE expires_at <= $1)",
            "DELETE FROM grants WHERE expires_at <= $1",
            "DELETE FROM sessions WHERE expires_at <= $1",
            "DELETE FROM interactions WHERE expires_at <= $1",
            "DELETE FROM revoked_access_tokens WHERE expires_at <= $1",
            "DELETE FROM client_jtis WHERE expires_at <= $1",
            "DELETE FROM sspr_attempts WHERE expires_at <= $1",
        ];
        let mut tx = self.begin_write().await?;
        let mut deleted = 0;
        for sql in PURGES {
            deleted += sqlx::query(sql)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(deleted)
    }

    /// Begins a transaction that will write.
    ///
    /// On SQLite this first waits for the store's write turn (writers queue in-process, FIFO),
    /// then runs `BEGIN IMMEDIATE`: the write lock is taken before the first read, so a
    /// transaction never fails half-way when it upgrades from reading to writing. The turn is
    /// held until the transaction is committed or dropped, so no writer of this process meets
    /// `SQLITE_BUSY`; the busy timeout only covers other processes on the same file.
    pub(crate) async fn begin_write(&self) -> Result<WriteTx, StoreError> {
        let tx = match &self.write_turn {
            Some(turn) => {
                let turn = Arc::clone(turn).lock_owned().await;
                WriteTx {
                    tx: self.pool.begin_with("BEGIN IMMEDIATE").await?,
                    _turn: Some(turn),
                }
            }
            None => WriteTx {
                tx: self.pool.begin().await?,
                _turn: None,
            },
        };
        Ok(tx)
    }

    /// Waits for the write turn before a single autocommit write statement (on SQLite; a no-op
    /// on PostgreSQL). Hold the guard until the statement has run.
    pub(crate) async fn write_turn(&self) -> Option<MutexGuard<'_, ()>> {
        match &self.write_turn {
            Some(turn) => Some(turn.lock().await),
            None => None,
        }
    }
}

/// Splits a SQLite URL, creates the database's parent directory, and makes sure the file is
/// created if missing (`mode=rwc`). Returns the URL to connect with and whether it is in memory.
fn prepare_sqlite_url(url: &str) -> Result<(String, bool), StoreError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| StoreError::Config(format!("not a sqlite URL: {url}")))?;
    let (path, params) = match rest.split_once('?') {
        Some((path, params)) => (path, Some(params)),
        None => (rest, None),
    };
    let has_mode = params.is_some_and(|p| p.split('&').any(|kv| kv.starts_with("mode=")));
    let in_memory = path == ":memory:" || params.is_some_and(|p| p.contains("mode=memory"));
    if path.is_empty() && !in_memory {
        return Err(StoreError::Config(format!("no database file in {url}")));
    }
    if !in_memory
        && let Some(parent) = std::path::Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)
            .map_err(|e| StoreError::Config(format!("cannot create {}: {e}", parent.display())))?;
    }
    let url = match (has_mode || in_memory, params) {
        (true, _) => url.to_owned(),
        (false, Some(_)) => format!("{url}&mode=rwc"),
        (false, None) => format!("{url}?mode=rwc"),
    };
    Ok((url, in_memory))
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
