//! One-time codes sent by email: the address a user receives them at (`email_otp_methods`),
//! the live code per user and purpose (`email_otps`), and the development outbox
//! (`mail_outbox`).
//!
//! A code is single-use through one conditional statement: the `DELETE` that finds the row
//! with the accepted hash. Every try is counted by one `UPDATE ... RETURNING` before the caller
//! compares, so concurrent tries are each counted and at most one of them spends the code.

use crate::db::{DbError, from_row, query};
use crate::{Store, StoreError};

/// The address a user receives one-time codes at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailOtpMethod {
    /// The user.
    pub user_id: String,
    /// Where codes go (lowercased).
    pub email: String,
    /// When it was registered, unix seconds.
    pub created_at: i64,
}
from_row!(EmailOtpMethod {
    user_id,
    email,
    created_at
});

/// A code sent by email, as stored: its keyed hash, never the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailOtp {
    /// The user it was sent for.
    pub user_id: String,
    /// What it may be used for (the caller's vocabulary, e.g. `signIn`).
    pub purpose: String,
    /// The address it was sent to.
    pub email: String,
    /// The caller's keyed hash of the code.
    pub code_hash: String,
    /// When it was sent, unix seconds.
    pub created_at: i64,
    /// When it stops working, unix seconds.
    pub expires_at: i64,
    /// Tries so far, right or wrong.
    pub attempts: i64,
}
from_row!(EmailOtp {
    user_id,
    purpose,
    email,
    code_hash,
    created_at,
    expires_at,
    attempts
});

/// A message held by the development outbox instead of being sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMail {
    /// Caller-chosen id (time-ordered ids list in the order they were made).
    pub id: String,
    /// The `To` address.
    pub recipient: String,
    /// Subject.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
    /// When it was "sent", unix seconds.
    pub created_at: i64,
    /// When [`Store::purge_expired`] drops it.
    pub expires_at: i64,
}
from_row!(OutboxMail {
    id,
    recipient,
    subject,
    body,
    created_at,
    expires_at
});

macro_rules! otp_columns {
    () => {
        "user_id, purpose, email, code_hash, created_at, expires_at, attempts"
    };
}

fn not_found_or_db(err: DbError) -> StoreError {
    if err.is_foreign_key_violation() {
        StoreError::NotFound
    } else {
        StoreError::Database(err)
    }
}

impl Store {
    /// Registers (or changes) the address `user_id` receives codes at. A change voids the codes
    /// sent to the old address. [`StoreError::NotFound`] if there is no such user.
    pub async fn set_email_otp_method(
        &self,
        user_id: &str,
        email: &str,
        now: i64,
    ) -> Result<EmailOtpMethod, StoreError> {
        let email = email.to_lowercase();
        let mut tx = self.begin_write().await?;
        query(
            "INSERT INTO email_otp_methods (user_id, email, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id) DO UPDATE SET email = $2, created_at = $3",
        )
        .bind(user_id)
        .bind(&email)
        .bind(now)
        .execute(&mut tx)
        .await
        .map_err(not_found_or_db)?;
        query("DELETE FROM email_otps WHERE user_id = $1 AND email <> $2")
            .bind(user_id)
            .bind(&email)
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(EmailOtpMethod {
            user_id: user_id.to_owned(),
            email,
            created_at: now,
        })
    }

    /// The address the user receives codes at, if they registered one.
    pub async fn email_otp_method(
        &self,
        user_id: &str,
    ) -> Result<Option<EmailOtpMethod>, StoreError> {
        let method: Option<EmailOtpMethod> =
            query("SELECT user_id, email, created_at FROM email_otp_methods WHERE user_id = $1")
                .bind(user_id)
                .fetch_optional(&self.db)
                .await?;
        Ok(method)
    }

    /// Removes the user's address and every code sent to it. Returns whether there was one.
    pub async fn delete_email_otp_method(&self, user_id: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        query("DELETE FROM email_otps WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut tx)
            .await?;
        let deleted = query("DELETE FROM email_otp_methods WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(deleted > 0)
    }

    /// Stores a code just sent, replacing the user's live code for the same purpose (the old
    /// one stops working). [`StoreError::NotFound`] if there is no such user.
    pub async fn put_email_otp(&self, otp: &EmailOtp) -> Result<(), StoreError> {
        query(
            "INSERT INTO email_otps (user_id, purpose, email, code_hash, created_at, expires_at, \
             attempts) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (user_id, purpose) DO UPDATE SET email = $3, code_hash = $4, \
             created_at = $5, expires_at = $6, attempts = $7",
        )
        .bind(&otp.user_id)
        .bind(&otp.purpose)
        .bind(&otp.email)
        .bind(&otp.code_hash)
        .bind(otp.created_at)
        .bind(otp.expires_at)
        .bind(otp.attempts)
        .execute(&self.db)
        .await
        .map_err(not_found_or_db)?;
        Ok(())
    }

    /// The user's live (or expired but not yet purged) code for `purpose`, if any.
    pub async fn email_otp(
        &self,
        user_id: &str,
        purpose: &str,
    ) -> Result<Option<EmailOtp>, StoreError> {
        let otp: Option<EmailOtp> = query(concat!(
            "SELECT ",
            otp_columns!(),
            " FROM email_otps WHERE user_id = $1 AND purpose = $2"
        ))
        .bind(user_id)
        .bind(purpose)
        .fetch_optional(&self.db)
        .await?;
        Ok(otp)
    }

    /// Counts one try at the user's code for `purpose` and returns the code as it is after
    /// the count (so `attempts` includes this try); `None` if there is no code. One statement,
    /// so concurrent tries are each counted.
    pub async fn count_email_otp_attempt(
        &self,
        user_id: &str,
        purpose: &str,
    ) -> Result<Option<EmailOtp>, StoreError> {
        let otp: Option<EmailOtp> = query(concat!(
            "UPDATE email_otps SET attempts = attempts + 1 WHERE user_id = $1 AND purpose = $2 \
             RETURNING ",
            otp_columns!()
        ))
        .bind(user_id)
        .bind(purpose)
        .fetch_optional(&self.db)
        .await?;
        Ok(otp)
    }

    /// Spends the user's code for `purpose` whose hash is `code_hash`: true only for the call
    /// that deletes it, so of two concurrent calls exactly one gets true. A code that was
    /// replaced in between (another hash) is not touched.
    pub async fn consume_email_otp(
        &self,
        user_id: &str,
        purpose: &str,
        code_hash: &str,
    ) -> Result<bool, StoreError> {
        let done =
            query("DELETE FROM email_otps WHERE user_id = $1 AND purpose = $2 AND code_hash = $3")
                .bind(user_id)
                .bind(purpose)
                .bind(code_hash)
                .execute(&self.db)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Voids the user's code for `purpose` (expired, or out of tries).
    pub async fn delete_email_otp(&self, user_id: &str, purpose: &str) -> Result<(), StoreError> {
        query("DELETE FROM email_otps WHERE user_id = $1 AND purpose = $2")
            .bind(user_id)
            .bind(purpose)
            .execute(&self.db)
            .await?;
        Ok(())
    }

    /// Keeps a message in the development outbox. [`StoreError::Conflict`] if the id is taken.
    pub async fn add_outbox_mail(&self, mail: &OutboxMail) -> Result<(), StoreError> {
        query(
            "INSERT INTO mail_outbox (id, recipient, subject, body, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&mail.id)
        .bind(&mail.recipient)
        .bind(&mail.subject)
        .bind(&mail.body)
        .bind(mail.created_at)
        .bind(mail.expires_at)
        .execute(&self.db)
        .await
        .map_err(|e| {
            if e.is_unique_violation() {
                StoreError::Conflict(format!("outbox mail exists: {}", mail.id))
            } else {
                StoreError::Database(e)
            }
        })?;
        Ok(())
    }

    /// The newest `limit` messages of the development outbox, newest first.
    pub async fn outbox_mail(&self, limit: i64) -> Result<Vec<OutboxMail>, StoreError> {
        let mail: Vec<OutboxMail> = query(
            "SELECT id, recipient, subject, body, created_at, expires_at FROM mail_outbox \
             ORDER BY created_at DESC, id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.db)
        .await?;
        Ok(mail)
    }
}
