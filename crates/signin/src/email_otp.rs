//! One-time codes sent by email: a second factor at sign-in and a way to prove who you are at
//! self-service password reset.
//!
//! A code is 8 digits (so a form that takes any code tells it from a 6-digit authenticator code
//! and a 16-character recovery code), works once, for 10 minutes, for one purpose, for the
//! address it was sent to. It is stored only as an HMAC under a tenant secret (8 digits are too
//! few for a plain hash: a database leak would give the codes away), and each try at it is
//! counted; after [`MAX_TRIES`] it is void. Sending a new code replaces the old one. A user may
//! ask for another code [`RESEND_AFTER_SECS`] after the last, and for at most
//! [`MAX_SENDS_PER_HOUR`] an hour.
//!
//! The decisions are pure functions of the stored code, the time and the randomness they are
//! given ([`issue`], [`judge`], [`may_send`]); the functions at the end apply them to the
//! store and send the mail.

use crate::Directory;
use crate::mail::{Mail, MailError};
use crate::secrets::{ct_eq, random_bytes, random_token};
use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use store::{EmailOtp, StoreError};

/// Digits of a code.
pub const DIGITS: usize = 8;
/// How long a code works.
pub const LIFETIME_SECS: i64 = 600;
/// Tries at one code, right or wrong, before it is void.
pub const MAX_TRIES: i64 = 5;
/// The least time between two codes for the same purpose.
pub const RESEND_AFTER_SECS: i64 = 30;
/// Codes one user may be sent in an hour, all purposes together.
pub const MAX_SENDS_PER_HOUR: i64 = 10;
/// The tenant secret the codes' hashes are keyed with.
const KEY_NAME: &str = "email-otp-key";
/// `10^DIGITS`.
const MODULUS: u64 = 100_000_000;

/// What a code may be used for: a code sent for one purpose does not work for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The second step of a sign-in.
    SignIn,
    /// Proving who you are at self-service password reset.
    PasswordReset,
    /// Proving you read an address before it is registered for codes.
    NewAddress,
    /// Proving who you are before changing your security info.
    SecurityInfo,
}

impl Purpose {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::SignIn => "signIn",
            Purpose::PasswordReset => "passwordReset",
            Purpose::NewAddress => "newAddress",
            Purpose::SecurityInfo => "securityInfo",
        }
    }

    fn what_for(self) -> &'static str {
        match self {
            Purpose::SignIn => "to finish signing in",
            Purpose::PasswordReset => "to reset your password",
            Purpose::NewAddress => "to confirm this address for verification codes",
            Purpose::SecurityInfo => "to change your security info",
        }
    }
}

/// A code of [`DIGITS`] digits from 8 random bytes, uniform: `None` for the few values that
/// would make some codes likelier than others (draw again).
pub fn code_from_random(bytes: [u8; 8]) -> Option<String> {
    let n = u64::from_le_bytes(bytes);
    // The largest multiple of 10^8 that fits: values at or above it are refused.
    let limit = u64::MAX - (u64::MAX % MODULUS);
    (n < limit).then(|| format!("{:0width$}", n % MODULUS, width = DIGITS))
}

/// A code as typed, reduced to its digits: spaces and dashes are dropped. `None` unless that
/// leaves exactly [`DIGITS`] ASCII digits.
pub fn normalize(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    (code.len() == DIGITS && code.bytes().all(|b| b.is_ascii_digit())).then_some(code)
}

/// Whether `typed` has the shape of an emailed code (and not of another kind of code).
pub fn looks_like_code(typed: &str) -> bool {
    normalize(typed).is_some()
}

/// The stored hash of `code`: HMAC-SHA-256 under the tenant's key, over the user, purpose and
/// address too, so a hash copied to another row proves nothing there.
pub fn code_hash(key: &[u8], user_id: &str, purpose: &str, email: &str, code: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut ctx = hmac::Context::with_key(&key);
    for part in [user_id, purpose, email, code] {
        // Length-prefixed, so no two different tuples hash the same text.
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part.as_bytes());
    }
    URL_SAFE_NO_PAD.encode(ctx.sign().as_ref())
}

/// A new code for `user_id` and `purpose`, to be sent to `email` at `now`: the code (for the
/// message only) and its row, which replaces any other code of that purpose. `random` is drawn
/// until it gives a uniform code.
pub fn issue(
    key: &[u8],
    user_id: &str,
    purpose: Purpose,
    email: &str,
    now: i64,
    mut random: impl FnMut() -> [u8; 8],
) -> (String, EmailOtp) {
    let code = loop {
        if let Some(code) = code_from_random(random()) {
            break code;
        }
    };
    let otp = EmailOtp {
        user_id: user_id.to_owned(),
        purpose: purpose.as_str().to_owned(),
        email: email.to_owned(),
        code_hash: code_hash(key, user_id, purpose.as_str(), email, &code),
        created_at: now,
        expires_at: now + LIFETIME_SECS,
        attempts: 0,
    };
    (code, otp)
}

/// Whether a new code may be sent at `now`, given the live one: `Err(seconds to wait)` within
/// [`RESEND_AFTER_SECS`] of the last (a double click or a reload must not flood the inbox).
pub fn may_send(live: Option<&EmailOtp>, now: i64) -> Result<(), i64> {
    match live {
        Some(otp) if now < otp.expires_at && now - otp.created_at < RESEND_AFTER_SECS => {
            Err(RESEND_AFTER_SECS - (now - otp.created_at))
        }
        _ => Ok(()),
    }
}

/// What a try at a code comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The right code, in time: it is spent.
    Accepted,
    /// Not the code; this many tries are left.
    Wrong {
        /// Tries left at this code.
        tries_left: i64,
    },
    /// The code is older than [`LIFETIME_SECS`]: it is void.
    Expired,
    /// More than [`MAX_TRIES`] tries: the code is void.
    TooManyTries,
    /// No code was sent for this purpose (or it was spent, replaced or voided).
    NoCode,
}

/// Judges a try: `counted` is the code with this try already counted in `attempts`, `typed`
/// what the user entered. Pure.
pub fn judge(key: &[u8], counted: &EmailOtp, typed: &str, now: i64) -> Verdict {
    if now >= counted.expires_at {
        return Verdict::Expired;
    }
    if counted.attempts > MAX_TRIES {
        return Verdict::TooManyTries;
    }
    let right = normalize(typed).is_some_and(|code| {
        let hash = code_hash(
            key,
            &counted.user_id,
            &counted.purpose,
            &counted.email,
            &code,
        );
        ct_eq(hash.as_bytes(), counted.code_hash.as_bytes())
    });
    if right {
        Verdict::Accepted
    } else {
        Verdict::Wrong {
            tries_left: MAX_TRIES - counted.attempts,
        }
    }
}

/// An address with most of its local part hidden, for pages that must say where a code went
/// without showing the address to whoever is at the keyboard: `j***@contoso.test`.
pub fn mask(email: &str) -> String {
    match email.rsplit_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_owned(),
    }
}

/// The message carrying `code`.
pub fn message(tenant_name: &str, purpose: Purpose, to: &str, code: &str) -> Mail {
    let minutes = LIFETIME_SECS / 60;
    let what_for = purpose.what_for();
    let body = format!(
        "Your {tenant_name} verification code is: {code}\n\n\
         Enter it on the page where you asked for it, {what_for}. It works once, for {minutes} minutes.\n\n\
         If you did not ask for this code, do not give it to anyone: someone may be trying to use your account. \
         Consider changing your password, or tell your administrator.\n"
    );
    Mail {
        to: to.to_owned(),
        subject: format!("Your {tenant_name} verification code"),
        body,
    }
}

/// Why no code was sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The tenant sends no mail (`[mail]` is not configured).
    #[error("mail is off")]
    MailOff,
    /// The user registered no address for codes.
    #[error("no address registered for codes")]
    NoAddress,
    /// A code was sent a moment ago, or too many this hour.
    #[error("too soon: retry after {retry_after} s")]
    TooSoon {
        /// Seconds until another may be sent.
        retry_after: i64,
    },
    /// The mail could not be sent.
    #[error(transparent)]
    Mail(#[from] MailError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A code that was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// Where it went, masked (see [`mask`]).
    pub masked_to: String,
}

/// The tenant's key for code hashes, made once and kept in the store (so every replica and
/// restart agree).
async fn key(dir: &Directory) -> Result<Vec<u8>, StoreError> {
    let key = dir
        .store
        .tenant_secret(KEY_NAME, &random_token(), dir.now())
        .await?;
    Ok(key.into_bytes())
}

/// The address the user receives codes at, when the tenant sends mail and they registered one.
pub async fn address(dir: &Directory, user_id: &str) -> Result<Option<String>, StoreError> {
    if dir.mailer.is_none() {
        return Ok(None);
    }
    Ok(dir.store.email_otp_method(user_id).await?.map(|m| m.email))
}

/// Registers `email` as where the user receives codes (replacing another; codes sent to that
/// one stop working). The caller decides the address is the user's: their sign-in address, or
/// one they proved they read with a [`Purpose::NewAddress`] code.
pub async fn register_address(
    dir: &Directory,
    user_id: &str,
    email: &str,
) -> Result<(), StoreError> {
    if !crate::plausible_email(email) {
        return Err(StoreError::Conflict("not an email address".into()));
    }
    dir.store
        .set_email_otp_method(user_id, email, dir.now())
        .await?;
    Ok(())
}

/// Sends a new code for `purpose` to the user's registered address.
pub async fn send(dir: &Directory, user_id: &str, purpose: Purpose) -> Result<Sent, SendError> {
    if dir.mailer.is_none() {
        return Err(SendError::MailOff);
    }
    let to = dir
        .store
        .email_otp_method(user_id)
        .await?
        .ok_or(SendError::NoAddress)?
        .email;
    send_to(dir, user_id, purpose, &to).await
}

/// Sends a new code for `purpose` to `to` (for [`Purpose::NewAddress`], the address being
/// registered; otherwise use [`send`]).
pub async fn send_to(
    dir: &Directory,
    user_id: &str,
    purpose: Purpose,
    to: &str,
) -> Result<Sent, SendError> {
    let mailer = dir.mailer.as_ref().ok_or(SendError::MailOff)?;
    let now = dir.now();
    let live = dir.store.email_otp(user_id, purpose.as_str()).await?;
    may_send(live.as_ref(), now).map_err(|retry_after| SendError::TooSoon { retry_after })?;
    // Counted in the database, so the hourly cap holds across replicas and restarts.
    let bucket = format!("email-otp:{user_id}");
    let count = dir
        .store
        .count_sspr_attempt(&[bucket.as_str()], 3600, now)
        .await?;
    if let Some(c) = count.first()
        && c.attempts > MAX_SENDS_PER_HOUR
    {
        return Err(SendError::TooSoon {
            retry_after: (c.window_ends_at - now).max(1),
        });
    }
    let key = key(dir).await?;
    let to = to.to_lowercase();
    let (code, otp) = issue(&key, user_id, purpose, &to, now, random_bytes::<8>);
    // Stored before it is sent: a code that arrives always works.
    dir.store.put_email_otp(&otp).await?;
    let mail = message(&dir.config.display_name, purpose, &to, &code);
    if let Err(e) = mailer.send(&dir.store, &mail, now).await {
        dir.store
            .delete_email_otp(user_id, purpose.as_str())
            .await?;
        return Err(e.into());
    }
    tracing::info!(user = %user_id, purpose = purpose.as_str(), "one-time code sent by email");
    Ok(Sent {
        masked_to: mask(&to),
    })
}

/// Judges `typed` against the user's code for `purpose` at the directory's time: each try is
/// counted; an accepted code is spent, an expired or exhausted one voided.
pub async fn verify(
    dir: &Directory,
    user_id: &str,
    purpose: Purpose,
    typed: &str,
) -> Result<Verdict, StoreError> {
    let Some(counted) = dir
        .store
        .count_email_otp_attempt(user_id, purpose.as_str())
        .await?
    else {
        return Ok(Verdict::NoCode);
    };
    let key = key(dir).await?;
    let verdict = judge(&key, &counted, typed, dir.now());
    match verdict {
        Verdict::Accepted => {
            // One winner among concurrent tries with the right code.
            let spent = dir
                .store
                .consume_email_otp(user_id, purpose.as_str(), &counted.code_hash)
                .await?;
            Ok(if spent { verdict } else { Verdict::NoCode })
        }
        Verdict::Expired | Verdict::TooManyTries => {
            dir.store
                .delete_email_otp(user_id, purpose.as_str())
                .await?;
            Ok(verdict)
        }
        Verdict::Wrong { .. } | Verdict::NoCode => Ok(verdict),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"a tenant secret for the tests";

    /// Randomness from a list, for codes the test knows.
    fn draws(values: &[u64]) -> impl FnMut() -> [u8; 8] + '_ {
        let mut i = 0;
        move || {
            let v = values[i];
            i += 1;
            v.to_le_bytes()
        }
    }

    fn issued(now: i64) -> (String, EmailOtp) {
        issue(
            KEY,
            "u1",
            Purpose::SignIn,
            "alice@contoso.test",
            now,
            draws(&[12_345_678]),
        )
    }

    /// The stored row after `n` tries were counted.
    fn after_tries(otp: &EmailOtp, n: i64) -> EmailOtp {
        EmailOtp {
            attempts: n,
            ..otp.clone()
        }
    }

    #[test]
    fn codes_are_eight_uniform_digits() {
        assert_eq!(code_from_random(0u64.to_le_bytes()).unwrap(), "00000000");
        assert_eq!(code_from_random(42u64.to_le_bytes()).unwrap(), "00000042");
        assert_eq!(
            code_from_random(123_456_789u64.to_le_bytes()).unwrap(),
            "23456789"
        );
        // The top of the range would favour low codes: drawn again.
        assert_eq!(code_from_random(u64::MAX.to_le_bytes()), None);
        let (code, _) = issue(
            KEY,
            "u1",
            Purpose::SignIn,
            "a@b.test",
            0,
            draws(&[u64::MAX, 7]),
        );
        assert_eq!(code, "00000007");
        let (code, otp) = issue(KEY, "u1", Purpose::SignIn, "a@b.test", 0, || {
            random_bytes::<8>()
        });
        assert!(looks_like_code(&code));
        assert!(!otp.code_hash.contains(&code), "only the hash is stored");
    }

    #[test]
    fn typed_codes_are_normalized() {
        assert_eq!(normalize(" 1234 5678 ").as_deref(), Some("12345678"));
        assert_eq!(normalize("1234-5678").as_deref(), Some("12345678"));
        for bad in ["123456", "123456789", "1234567a", "", "１２３４５６７８"] {
            assert_eq!(normalize(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_right_code_in_time_is_accepted() {
        let (code, otp) = issued(1_000);
        assert_eq!(otp.expires_at, 1_000 + LIFETIME_SECS);
        assert_eq!(otp.attempts, 0);
        assert_eq!(code, "12345678");
        assert_eq!(
            judge(KEY, &after_tries(&otp, 1), "1234 5678", 1_001),
            Verdict::Accepted
        );
        assert_eq!(
            judge(KEY, &after_tries(&otp, 1), &code, 1_000 + LIFETIME_SECS - 1),
            Verdict::Accepted
        );
    }

    #[test]
    fn a_code_expires_after_ten_minutes() {
        let (code, otp) = issued(1_000);
        assert_eq!(
            judge(KEY, &after_tries(&otp, 1), &code, 1_000 + LIFETIME_SECS),
            Verdict::Expired
        );
        assert_eq!(
            judge(KEY, &after_tries(&otp, 1), "00000000", 5_000),
            Verdict::Expired
        );
    }

    #[test]
    fn wrong_tries_are_limited_and_the_right_code_fails_after_them() {
        let (code, otp) = issued(1_000);
        for n in 1..=MAX_TRIES {
            assert_eq!(
                judge(KEY, &after_tries(&otp, n), "87654321", 1_010),
                Verdict::Wrong {
                    tries_left: MAX_TRIES - n
                }
            );
        }
        // The last allowed try may still be the right one; after it, nothing is.
        assert_eq!(
            judge(KEY, &after_tries(&otp, MAX_TRIES), &code, 1_010),
            Verdict::Accepted
        );
        assert_eq!(
            judge(KEY, &after_tries(&otp, MAX_TRIES + 1), &code, 1_010),
            Verdict::TooManyTries
        );
        assert_eq!(
            judge(KEY, &after_tries(&otp, 1), "not a code", 1_010),
            Verdict::Wrong {
                tries_left: MAX_TRIES - 1
            }
        );
    }

    #[test]
    fn a_code_is_bound_to_its_user_purpose_address_and_key() {
        let (code, otp) = issued(1_000);
        let moved = |f: &dyn Fn(&mut EmailOtp)| {
            let mut o = after_tries(&otp, 1);
            f(&mut o);
            judge(KEY, &o, &code, 1_001)
        };
        let wrong = Verdict::Wrong {
            tries_left: MAX_TRIES - 1,
        };
        assert_eq!(moved(&|o| o.user_id = "u2".into()), wrong);
        assert_eq!(moved(&|o| o.purpose = "passwordReset".into()), wrong);
        assert_eq!(moved(&|o| o.email = "mallory@evil.test".into()), wrong);
        assert_eq!(
            judge(b"another tenant", &after_tries(&otp, 1), &code, 1_001),
            wrong
        );
    }

    #[test]
    fn a_new_code_waits_half_a_minute_after_the_last() {
        let (_, otp) = issued(1_000);
        assert_eq!(may_send(None, 1_000), Ok(()));
        assert_eq!(may_send(Some(&otp), 1_000), Err(RESEND_AFTER_SECS));
        assert_eq!(may_send(Some(&otp), 1_020), Err(RESEND_AFTER_SECS - 20));
        assert_eq!(may_send(Some(&otp), 1_000 + RESEND_AFTER_SECS), Ok(()));
        // A replacement has a new hash: the old code does not judge right against it.
        let (code2, otp2) = issue(
            KEY,
            "u1",
            Purpose::SignIn,
            "alice@contoso.test",
            1_040,
            draws(&[87_654_321]),
        );
        assert_ne!(otp2.code_hash, otp.code_hash);
        assert_eq!(
            judge(KEY, &after_tries(&otp2, 1), "12345678", 1_041),
            Verdict::Wrong {
                tries_left: MAX_TRIES - 1
            }
        );
        assert_eq!(
            judge(KEY, &after_tries(&otp2, 1), &code2, 1_041),
            Verdict::Accepted
        );
    }

    #[test]
    fn addresses_are_masked_and_messages_say_what_for() {
        assert_eq!(mask("jane.doe@contoso.test"), "j***@contoso.test");
        assert_eq!(mask("j@contoso.test"), "j***@contoso.test");
        assert_eq!(mask("nonsense"), "***");
        let m = message("Contoso", Purpose::PasswordReset, "a@b.test", "12345678");
        assert_eq!(m.subject, "Your Contoso verification code");
        assert!(m.body.contains("12345678"));
        assert!(m.body.contains("reset your password"));
        assert!(m.body.contains("10 minutes"));
    }

    mod with_a_store {
        use super::super::*;
        use crate::config::Config;
        use crate::passwords::Passwords;
        use crate::protection::Protection;

        use crate::testing::{CONFIG, directory};

        /// The code in the newest outbox message.
        async fn last_code(dir: &Directory) -> String {
            let mail = dir.store.outbox_mail(1).await.unwrap();
            let body = &mail.first().expect("a message").body;
            body.split_whitespace()
                .find_map(normalize)
                .expect("a code in the message")
        }

        #[tokio::test]
        async fn a_code_is_sent_to_the_registered_address_and_works_once() {
            let (dir, _, user) = directory().await;
            assert!(matches!(
                send(&dir, &user, Purpose::SignIn).await,
                Err(SendError::NoAddress)
            ));
            assert_eq!(address(&dir, &user).await.unwrap(), None);
            register_address(&dir, &user, "Alice@Contoso.test")
                .await
                .unwrap();
            assert_eq!(
                address(&dir, &user).await.unwrap().as_deref(),
                Some("alice@contoso.test")
            );
            let sent = send(&dir, &user, Purpose::SignIn).await.unwrap();
            assert_eq!(sent.masked_to, "a***@contoso.test");
            let mail = dir.store.outbox_mail(10).await.unwrap();
            assert_eq!(mail.len(), 1);
            assert_eq!(mail[0].recipient, "alice@contoso.test");
            let code = last_code(&dir).await;
            assert_eq!(
                verify(&dir, &user, Purpose::PasswordReset, &code)
                    .await
                    .unwrap(),
                Verdict::NoCode,
                "not for another purpose"
            );
            assert_eq!(
                verify(&dir, &user, Purpose::SignIn, &code).await.unwrap(),
                Verdict::Accepted
            );
            assert_eq!(
                verify(&dir, &user, Purpose::SignIn, &code).await.unwrap(),
                Verdict::NoCode,
                "single use"
            );
        }

        #[tokio::test]
        async fn a_new_code_replaces_the_old_one() {
            let (dir, clock, user) = directory().await;
            register_address(&dir, &user, "alice@contoso.test")
                .await
                .unwrap();
            send(&dir, &user, Purpose::SignIn).await.unwrap();
            let first = last_code(&dir).await;
            assert!(matches!(
                send(&dir, &user, Purpose::SignIn).await,
                Err(SendError::TooSoon { .. })
            ));
            clock.advance(RESEND_AFTER_SECS);
            send(&dir, &user, Purpose::SignIn).await.unwrap();
            let second = last_code(&dir).await;
            if first != second {
                assert!(matches!(
                    verify(&dir, &user, Purpose::SignIn, &first).await.unwrap(),
                    Verdict::Wrong { .. }
                ));
            }
            assert_eq!(
                verify(&dir, &user, Purpose::SignIn, &second).await.unwrap(),
                Verdict::Accepted
            );
        }

        #[tokio::test]
        async fn codes_expire_and_run_out_of_tries() {
            let (dir, clock, user) = directory().await;
            register_address(&dir, &user, "alice@contoso.test")
                .await
                .unwrap();
            send(&dir, &user, Purpose::PasswordReset).await.unwrap();
            let code = last_code(&dir).await;
            clock.advance(LIFETIME_SECS);
            assert_eq!(
                verify(&dir, &user, Purpose::PasswordReset, &code)
                    .await
                    .unwrap(),
                Verdict::Expired
            );
            assert_eq!(
                verify(&dir, &user, Purpose::PasswordReset, &code)
                    .await
                    .unwrap(),
                Verdict::NoCode,
                "an expired code is void"
            );

            send(&dir, &user, Purpose::PasswordReset).await.unwrap();
            let code = last_code(&dir).await;
            let wrong = if code == "00000000" {
                "11111111"
            } else {
                "00000000"
            };
            for left in (0..MAX_TRIES).rev() {
                assert_eq!(
                    verify(&dir, &user, Purpose::PasswordReset, wrong)
                        .await
                        .unwrap(),
                    Verdict::Wrong { tries_left: left }
                );
            }
            assert_eq!(
                verify(&dir, &user, Purpose::PasswordReset, &code)
                    .await
                    .unwrap(),
                Verdict::TooManyTries
            );
            assert_eq!(
                verify(&dir, &user, Purpose::PasswordReset, &code)
                    .await
                    .unwrap(),
                Verdict::NoCode
            );
        }

        #[tokio::test]
        async fn sends_are_capped_per_hour_and_mail_off_sends_nothing() {
            let (dir, clock, user) = directory().await;
            register_address(&dir, &user, "alice@contoso.test")
                .await
                .unwrap();
            for _ in 0..MAX_SENDS_PER_HOUR {
                send(&dir, &user, Purpose::SignIn).await.unwrap();
                clock.advance(RESEND_AFTER_SECS);
            }
            assert!(matches!(
                send(&dir, &user, Purpose::SignIn).await,
                Err(SendError::TooSoon { retry_after }) if retry_after > 0
            ));
            clock.advance(3600);
            send(&dir, &user, Purpose::SignIn).await.unwrap();

            let mut off = Config::parse(CONFIG, "test.toml").unwrap();
            off.mail = crate::config::MailSettings::Off;
            let store = dir.store.clone();
            let protection = Protection::load(off.risk.clone(), &store).await.unwrap();
            let dir_off = Directory::new(
                off.clone(),
                store,
                clock.clone(),
                Passwords::new(&off.passwords).unwrap(),
                protocol::jwt::KeySet::new(Vec::new(), 3600),
                Vec::new(),
                protection,
            );
            assert_eq!(address(&dir_off, &user).await.unwrap(), None);
            assert!(matches!(
                send(&dir_off, &user, Purpose::SignIn).await,
                Err(SendError::MailOff)
            ));
        }
    }
}
