//! The one error type of the store.

/// Everything a store call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken (duplicate email, id or hash); the message says which.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The row the call was meant to change does not exist.
    #[error("not found")]
    NotFound,
    /// The connection URL is not one the store understands.
    #[error("invalid database URL: {0}")]
    Config(String),
    /// The database refused or failed the operation.
    #[error("database error: {0}")]
    Database(#[from] crate::DbError),
    /// Applying the embedded migrations failed.
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A row holds data the store cannot read back (invalid JSON, unknown enum value).
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether the database could not be reached (connection refused or lost, no connection
    /// free in time): the request may succeed later, unlike a refused or failed statement.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Database(e) if e.is_unavailable())
    }

    /// Turns a unique-constraint violation into [`StoreError::Conflict`] with `what` as the
    /// message; every other error stays a [`StoreError::Database`].
    pub(crate) fn conflict_or_db(err: crate::DbError, what: impl FnOnce() -> String) -> Self {
        if err.is_unique_violation() {
            StoreError::Conflict(what())
        } else {
            StoreError::Database(err)
        }
    }
}
