//! Multi-factor authentication: TOTP methods (`mfa_methods`) and recovery codes
//! (`recovery_codes`). Codes sent by email are in `email_otp`.
//!
//! Everything that decides whether a factor may be used once is one conditional statement:
//! a TOTP time step is accepted only if it is newer than every step accepted before, and a
//! recovery code is spent by the `UPDATE` that finds it unused. Two concurrent sign-ins with
//! the same code therefore have one winner.

use crate::db::{DbError, from_row, query};
use crate::{Store, StoreError};

/// The `kind` of a TOTP method (RFC 6238).
const TOTP: &str = "totp";

/// The table whose `secret` is sealed.
const TABLE: &str = "mfa_methods";

/// A TOTP authenticator registered to a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpMethod {
    /// Caller-chosen id.
    pub id: String,
    /// The user it belongs to.
    pub user_id: String,
    /// The shared key, base32 (the server needs the key itself to compute codes).
    pub secret: String,
    /// Creation time, unix seconds.
    pub created_at: i64,
    /// When the user proved their app holds the key; `None` while enrolment is unfinished.
    pub confirmed_at: Option<i64>,
    /// The newest RFC 6238 time step accepted so far, if any.
    pub last_used_step: Option<i64>,
}
from_row!(TotpMethod {
    id,
    user_id,
    secret,
    created_at,
    confirmed_at,
    last_used_step
});

/// What [`Store::delete_mfa`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MfaReset {
    /// TOTP methods deleted (confirmed or not).
    pub methods: u64,
    /// Recovery codes deleted (used or not).
    pub recovery_codes: u64,
    /// Addresses for codes sent by email deleted (0 or 1), with their codes.
    pub email_methods: u64,
}

macro_rules! method_columns {
    () => {
        "id, user_id, secret, created_at, confirmed_at, last_used_step"
    };
}

/// Maps a foreign-key violation (the user does not exist) to [`StoreError::NotFound`].
fn not_found_or_db(err: DbError) -> StoreError {
    match &err {
        e if e.is_foreign_key_violation() => StoreError::NotFound,
        _ => StoreError::Database(err),
    }
}

impl Store {
    /// Starts a TOTP enrolment: stores an unconfirmed method, replacing the user's earlier
    /// unconfirmed one (only the key shown last can be confirmed). Confirmed methods are kept.
    /// [`StoreError::NotFound`] if there is no such user, [`StoreError::Conflict`] if the id is
    /// taken; nothing changes in either case.
    pub async fn add_unconfirmed_totp(
        &self,
        id: &str,
        user_id: &str,
        secret: &str,
        now: i64,
    ) -> Result<TotpMethod, StoreError> {
        let mut tx = self.begin_write().await?;
        query("DELETE FROM mfa_methods WHERE user_id = $1 AND kind = $2 AND confirmed_at IS NULL")
            .bind(user_id)
            .bind(TOTP)
            .execute(&mut tx)
            .await?;
        query(
            "INSERT INTO mfa_methods (id, user_id, kind, secret, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(user_id)
        .bind(TOTP)
        .bind(self.seal(TABLE, id, secret))
        .bind(now)
        .execute(&mut tx)
        .await
        .map_err(|e| match &e {
            e if e.is_unique_violation() => {
                StoreError::Conflict(format!("MFA method exists: {id}"))
            }
            _ => not_found_or_db(e),
        })?;
        tx.commit().await?;
        Ok(TotpMethod {
            id: id.to_owned(),
            user_id: user_id.to_owned(),
            secret: secret.to_owned(),
            created_at: now,
            confirmed_at: None,
            last_used_step: None,
        })
    }

    /// The user's confirmed TOTP method, if they have one.
    pub async fn confirmed_totp(&self, user_id: &str) -> Result<Option<TotpMethod>, StoreError> {
        self.totp_method(
            user_id,
            concat!(
                "SELECT ",
                method_columns!(),
                " FROM mfa_methods WHERE user_id = $1 AND kind = $2 \
                 AND confirmed_at IS NOT NULL ORDER BY confirmed_at DESC, id LIMIT 1"
            ),
        )
        .await
    }

    /// The user's unfinished TOTP enrolment, if there is one.
    pub async fn unconfirmed_totp(&self, user_id: &str) -> Result<Option<TotpMethod>, StoreError> {
        self.totp_method(
            user_id,
            concat!(
                "SELECT ",
                method_columns!(),
                " FROM mfa_methods WHERE user_id = $1 AND kind = $2 \
                 AND confirmed_at IS NULL ORDER BY created_at DESC, id LIMIT 1"
            ),
        )
        .await
    }

    async fn totp_method(
        &self,
        user_id: &str,
        sql: &'static str,
    ) -> Result<Option<TotpMethod>, StoreError> {
        let method: Option<TotpMethod> = query(sql)
            .bind(user_id)
            .bind(TOTP)
            .fetch_optional(&self.db)
            .await?;
        method
            .map(|mut m| {
                m.secret = self.open(TABLE, &m.id, &m.secret)?;
                Ok(m)
            })
            .transpose()
    }

    /// Finishes an enrolment: confirms the unconfirmed method `id` at `now`, records `step` (the
    /// step of the code that proved it) as used, and deletes the user's other methods, so a user
    /// has one authenticator. Returns whether this call confirmed it (false if unknown or
    /// already confirmed; nothing changes then).
    pub async fn confirm_totp(&self, id: &str, step: i64, now: i64) -> Result<bool, StoreError> {
        self.confirm_totp_signalled(id, step, now, &[]).await
    }

    /// [`Store::confirm_totp`], writing `signals` (CAEP `credential-change`) to the Shared
    /// Signals outbox in the same transaction when it confirms.
    pub async fn confirm_totp_signalled(
        &self,
        id: &str,
        step: i64,
        now: i64,
        signals: &[crate::Signal],
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let confirmed: Option<(String,)> = query(
            "UPDATE mfa_methods SET confirmed_at = $1, last_used_step = $2 \
             WHERE id = $3 AND confirmed_at IS NULL RETURNING user_id",
        )
        .bind(now)
        .bind(step)
        .bind(id)
        .fetch_optional(&mut tx)
        .await?;
        let Some((user_id,)) = confirmed else {
            return Ok(false);
        };
        query("DELETE FROM mfa_methods WHERE user_id = $1 AND id <> $2")
            .bind(&user_id)
            .bind(id)
            .execute(&mut tx)
            .await?;
        crate::ssf::enqueue_signals(&mut tx, signals).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Accepts TOTP time step `step` for the confirmed method `id`, at most once: true only if
    /// no step at or after `step` was accepted before (RFC 6238 §5.2: a code is used once, and
    /// an older code after a newer one is refused too). One conditional `UPDATE`, so of two
    /// concurrent calls with the same step exactly one gets true.
    pub async fn use_totp_step(&self, id: &str, step: i64) -> Result<bool, StoreError> {
        let done = query(
            "UPDATE mfa_methods SET last_used_step = $1 WHERE id = $2 \
             AND confirmed_at IS NOT NULL AND (last_used_step IS NULL OR last_used_step < $1)",
        )
        .bind(step)
        .bind(id)
        .execute(&self.db)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes the user's authenticators (confirmed or not); their recovery codes stay. Returns
    /// how many were deleted.
    pub async fn delete_totp(&self, user_id: &str) -> Result<u64, StoreError> {
        self.delete_totp_signalled(user_id, &[]).await
    }

    /// [`Store::delete_totp`], writing `signals` (CAEP `credential-change`) to the Shared
    /// Signals outbox in the same transaction when a confirmed authenticator goes.
    pub async fn delete_totp_signalled(
        &self,
        user_id: &str,
        signals: &[crate::Signal],
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let (confirmed,): (i64,) = query(
            "SELECT COUNT(*) FROM mfa_methods WHERE user_id = $1 AND kind = $2 \
             AND confirmed_at IS NOT NULL",
        )
        .bind(user_id)
        .bind(TOTP)
        .fetch_one(&mut tx)
        .await?;
        let done = query("DELETE FROM mfa_methods WHERE user_id = $1 AND kind = $2")
            .bind(user_id)
            .bind(TOTP)
            .execute(&mut tx)
            .await?;
        if confirmed > 0 {
            crate::ssf::enqueue_signals(&mut tx, signals).await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// Replaces all of a user's recovery codes with `code_hashes` (the caller hashes; codes
    /// themselves are never stored), in one transaction. [`StoreError::NotFound`] if there is
    /// no such user; [`StoreError::Conflict`] if a hash repeats. Nothing changes on error.
    pub async fn replace_recovery_codes(
        &self,
        user_id: &str,
        code_hashes: &[String],
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut tx)
            .await?;
        for hash in code_hashes {
            query(
                "INSERT INTO recovery_codes (user_id, code_hash, created_at) VALUES ($1, $2, $3)",
            )
            .bind(user_id)
            .bind(hash)
            .bind(now)
            .execute(&mut tx)
            .await
            .map_err(|e| match &e {
                e if e.is_unique_violation() => {
                    StoreError::Conflict("repeated recovery code".into())
                }
                _ => not_found_or_db(e),
            })?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Spends the user's recovery code hashing to `code_hash` at `now`. True only for the first
    /// use of an existing code of this user; one conditional `UPDATE`, so of two concurrent
    /// calls exactly one gets true.
    pub async fn consume_recovery_code(
        &self,
        user_id: &str,
        code_hash: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = query(
            "UPDATE recovery_codes SET used_at = $1 \
             WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL",
        )
        .bind(now)
        .bind(user_id)
        .bind(code_hash)
        .execute(&self.db)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// How many of the user's recovery codes are still unused.
    pub async fn unused_recovery_codes(&self, user_id: &str) -> Result<u64, StoreError> {
        let (count,): (i64,) =
            query("SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL")
                .bind(user_id)
                .fetch_one(&self.db)
                .await?;
        u64::try_from(count).map_err(|_| StoreError::Corrupt(format!("count is {count}")))
    }

    /// Deletes all of a user's MFA methods (authenticators, the address for emailed codes and
    /// its codes) and recovery codes (an administrator's reset: the user enrols again at their
    /// next sign-in that requires MFA), in one transaction.
    pub async fn delete_mfa(&self, user_id: &str) -> Result<MfaReset, StoreError> {
        let mut tx = self.begin_write().await?;
        let methods = query("DELETE FROM mfa_methods WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut tx)
            .await?
            .rows_affected();
        let recovery_codes = query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut tx)
            .await?
            .rows_affected();
        query("DELETE FROM email_otps WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut tx)
            .await?;
        let email_methods = query("DELETE FROM email_otp_methods WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(MfaReset {
            methods,
            recovery_codes,
            email_methods,
        })
    }
}
