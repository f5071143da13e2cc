//! The MFA core (RFC 6238 TOTP and single-use recovery codes): keys, codes, verification,
//! and what a user has registered, codes by email included (see [`crate::email_otp`]).
//! Each time step is accepted once and never one older than the last accepted; a recovery
//! code is spent by the call that accepts it. The pages (enrolment, verification) are the
//! server's.

use crate::Directory;
use crate::email_otp::{self, Purpose, Verdict};
use crate::secrets::{random_bytes, token_hash};
use store::StoreError;
use totp_rs::{Algorithm, Builder, Secret, Totp};

/// Digits of a code (RFC 6238's default, what every authenticator app shows).
const DIGITS: usize = 6;
/// Seconds per time step (RFC 6238 §5.2's recommendation).
const STEP_SECS: u64 = 30;
/// Time steps of clock drift accepted either way (RFC 6238 §5.2 recommends at most one).
const SKEW: u16 = 1;
/// Key length: 160 bits, RFC 4226 §4's recommendation.
const SECRET_BYTES: usize = 20;
/// Recovery codes issued at enrolment.
pub const RECOVERY_CODES: usize = 10;
/// Wrong codes after which a sign-in is refused.
pub const MAX_FAILURES: u32 = 5;
/// Recovery code characters: RFC 4648 base32, lowercase (no case or look-alike doubts when
/// typed back), 5 bits each.
const RECOVERY_ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
/// Characters in a recovery code: 80 bits, beyond guessing online and, unsalted, offline.
const RECOVERY_LEN: usize = 16;

/// Shortest key accepted for verification: 80 bits. New keys are 160 bits; keys brought from
/// elsewhere (the lab's well-known example key, an import) may be the 80 bits many authenticator
/// providers have issued, which totp-rs's RFC check (128 bits) would refuse.
const MIN_SECRET_BYTES: usize = 10;

fn totp(secret_base32: &str) -> Option<Totp> {
    let secret = Secret::try_from_base32(secret_base32).ok()?;
    if secret.as_ref().len() < MIN_SECRET_BYTES {
        return None;
    }
    let totp = Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS as u8)
        .with_skew(SKEW)
        .with_step_duration(STEP_SECS)
        .with_secret(secret)
        .build_noncompliant();
    Some(totp)
}

/// Whether `secret` is a key this tenant can verify codes of: RFC 4648 base32, at least 80 bits.
pub fn usable_secret(secret: &str) -> bool {
    totp(secret).is_some()
}

/// Registers `secret` as the user's confirmed authenticator (replacing any other), as if they
/// had enrolled it: for keys provisioned outside the enrolment pages (the lab's seeded users).
pub async fn register_totp(dir: &Directory, user_id: &str, secret: &str) -> Result<(), StoreError> {
    if !usable_secret(secret) {
        return Err(StoreError::Conflict(
            "an authenticator key must be base32 of at least 80 bits".to_owned(),
        ));
    }
    let now = dir.now();
    let id = uuid::Uuid::new_v4().to_string();
    dir.store
        .add_unconfirmed_totp(&id, user_id, secret, now)
        .await?;
    // Step 0: no code of this key has been used yet.
    dir.store.confirm_totp(&id, 0, now).await?;
    Ok(())
}

/// The RFC 6238 time step whose code `code` is, for the base32 key `secret` at unix time
/// `now`, within one step of drift; `None` for a wrong or malformed code (spaces are ignored).
/// Pure: the caller must still refuse a step already used (see [`verify_code`]).
pub fn verify_totp(secret: &str, code: &str, now: i64) -> Option<u64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    totp(secret)?.check(&code, u64::try_from(now).ok()?)
}

/// The `otpauth://` URI authenticator apps import (Key Uri Format): SHA-1, 6 digits, 30 s.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &str) -> String {
    let enc = |s: &str| -> String {
        url::form_urlencoded::byte_serialize(s.as_bytes())
            .collect::<String>()
            .replace('+', "%20")
    };
    format!(
        "otpauth://totp/{}:{}?secret={secret}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        enc(issuer),
        enc(account),
        enc(issuer),
    )
}

/// A new random key, base32.
pub fn new_secret() -> String {
    Secret::from(random_bytes::<SECRET_BYTES>()).to_base32()
}

/// The key in groups of four, easier to type into an app.
pub fn grouped(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A new recovery code, `xxxx-xxxx-xxxx-xxxx`.
pub fn new_recovery_code() -> String {
    let mut code = String::with_capacity(RECOVERY_LEN + 3);
    for (i, b) in random_bytes::<RECOVERY_LEN>().iter().enumerate() {
        if i > 0 && i % 4 == 0 {
            code.push('-');
        }
        code.push(char::from(RECOVERY_ALPHABET[usize::from(b & 31)]));
    }
    code
}

/// A recovery code as typed, reduced to what is hashed: lowercase, separators dropped.
pub fn normalize_recovery_code(code: &str) -> String {
    code.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// What a user has registered to prove who they are.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Methods {
    /// A confirmed authenticator app.
    pub totp: bool,
    /// The address codes are emailed to (only while the tenant sends mail).
    pub email: Option<String>,
    /// Unused recovery codes.
    pub recovery_codes: u64,
}

impl Methods {
    /// Whether any method proves the user's second factor (recovery codes alone do not count:
    /// they stand in for a method, they are not one).
    pub fn any(&self) -> bool {
        self.totp || self.email.is_some()
    }
}

/// The user's registered methods.
pub async fn methods(dir: &Directory, user_id: &str) -> Result<Methods, StoreError> {
    Ok(Methods {
        totp: dir.store.confirmed_totp(user_id).await?.is_some(),
        email: email_otp::address(dir, user_id).await?,
        recovery_codes: dir.store.unused_recovery_codes(user_id).await?,
    })
}

/// Whether the user has a method that proves their second factor: a confirmed authenticator,
/// or an address for codes by email (while the tenant sends mail).
pub async fn has_method(dir: &Directory, user_id: &str) -> Result<bool, StoreError> {
    Ok(dir.store.confirmed_totp(user_id).await?.is_some()
        || email_otp::address(dir, user_id).await?.is_some())
}

/// Whether the user has a confirmed authenticator.
pub async fn has_totp(dir: &Directory, user_id: &str) -> Result<bool, StoreError> {
    Ok(dir.store.confirmed_totp(user_id).await?.is_some())
}

/// Whether `code` proves the user's second factor now: a code of their confirmed authenticator
/// (6 digits; each time step is accepted once, and never one older than the last accepted), a
/// code emailed to them for `email_purpose` (8 digits; spent), or one of their unused recovery
/// codes, which this call spends. The three kinds differ in shape, so one field takes any.
pub async fn verify_code(
    dir: &Directory,
    user_id: &str,
    code: &str,
    email_purpose: Purpose,
) -> Result<bool, StoreError> {
    let digits = code.chars().filter(|c| !c.is_whitespace());
    if digits.clone().count() == DIGITS && digits.clone().all(|c| c.is_ascii_digit()) {
        check_totp(dir, user_id, code).await
    } else if email_otp::looks_like_code(code) {
        let verdict = email_otp::verify(dir, user_id, email_purpose, code).await?;
        Ok(verdict == Verdict::Accepted)
    } else {
        use_recovery_code(dir, user_id, code).await
    }
}

/// A new set of [`RECOVERY_CODES`] recovery codes for the user, replacing every earlier one
/// (used or not: the old set is void). Returns the codes, to be shown once; only their hashes
/// are stored. [`StoreError::NotFound`] if there is no such user.
pub async fn regenerate_recovery_codes(
    dir: &Directory,
    user_id: &str,
) -> Result<Vec<String>, StoreError> {
    let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| new_recovery_code()).collect();
    let hashes: Vec<String> = codes
        .iter()
        .map(|c| token_hash(&normalize_recovery_code(c)))
        .collect();
    dir.store
        .replace_recovery_codes(user_id, &hashes, dir.now())
        .await?;
    Ok(codes)
}

/// Whether `code` is the current code of the user's confirmed authenticator; its time step
/// is spent.
pub async fn check_totp(dir: &Directory, user_id: &str, code: &str) -> Result<bool, StoreError> {
    let Some(method) = dir.store.confirmed_totp(user_id).await? else {
        return Ok(false);
    };
    match verify_totp(&method.secret, code, dir.now()).and_then(|s| i64::try_from(s).ok()) {
        Some(step) => dir.store.use_totp_step(&method.id, step).await,
        None => Ok(false),
    }
}

/// Whether `code` is one of the user's unused recovery codes; it is spent.
pub async fn use_recovery_code(
    dir: &Directory,
    user_id: &str,
    code: &str,
) -> Result<bool, StoreError> {
    let code = normalize_recovery_code(code);
    if code.len() != RECOVERY_LEN {
        return Ok(false);
    }
    dir.store
        .consume_recovery_code(user_id, &token_hash(&code), dir.now())
        .await
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B's SHA-1 key, ASCII "12345678901234567890", in base32.
    const RFC_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    #[test]
    fn rfc6238_sha1_vectors() {
        // Appendix B lists 8 digits; 6 digits are the last six.
        assert_eq!(verify_totp(RFC_SECRET, "287082", 59), Some(1));
        assert_eq!(
            verify_totp(RFC_SECRET, "081804", 1_111_111_109),
            Some(1_111_111_109 / 30)
        );
        assert_eq!(
            verify_totp(RFC_SECRET, "050471", 1_111_111_111),
            Some(1_111_111_111 / 30)
        );
        assert_eq!(verify_totp(RFC_SECRET, "287 082", 59), Some(1), "spaces");
    }

    #[test]
    fn keys_of_80_bits_or_more_are_usable() {
        // The well-known example key (80 bits), which the lab gives bob.
        assert!(usable_secret("JBSWY3DPEHPK3PXP"));
        assert!(usable_secret(RFC_SECRET));
        assert!(usable_secret(&new_secret()));
        // 72 bits, and text that is not base32.
        assert!(!usable_secret(
            &Secret::from(b"123456789".to_vec()).to_base32()
        ));
        assert!(!usable_secret("not base32 at all!"));
        let code = totp("JBSWY3DPEHPK3PXP").unwrap().generate(1_000_000_000);
        assert_eq!(
            verify_totp("JBSWY3DPEHPK3PXP", &code.to_string(), 1_000_000_000),
            Some(1_000_000_000 / 30)
        );
    }

    #[test]
    fn one_step_of_skew_either_way() {
        // "287082" is step 1 (t = 30..59).
        assert_eq!(verify_totp(RFC_SECRET, "287082", 30), Some(1));
        assert_eq!(
            verify_totp(RFC_SECRET, "287082", 89),
            Some(1),
            "a step late"
        );
        assert_eq!(
            verify_totp(RFC_SECRET, "287082", 0),
            Some(1),
            "a step early"
        );
        assert_eq!(
            verify_totp(RFC_SECRET, "287082", 90),
            None,
            "two steps late"
        );
        let t: i64 = 1_111_111_109;
        let step = Some(1_111_111_109 / 30);
        assert_eq!(verify_totp(RFC_SECRET, "081804", t + 30), step);
        assert_eq!(verify_totp(RFC_SECRET, "081804", t - 30), step);
        assert_eq!(verify_totp(RFC_SECRET, "081804", t + 60), None);
        assert_eq!(verify_totp(RFC_SECRET, "081804", t - 60), None);
    }

    #[test]
    fn wrong_and_malformed_codes() {
        assert_eq!(verify_totp(RFC_SECRET, "287083", 59), None);
        assert_eq!(verify_totp(RFC_SECRET, "94287082", 59), None, "8 digits");
        assert_eq!(verify_totp(RFC_SECRET, "28708", 59), None);
        assert_eq!(verify_totp(RFC_SECRET, "+87082", 59), None);
        assert_eq!(verify_totp(RFC_SECRET, "", 59), None);
        assert_eq!(verify_totp(RFC_SECRET, "287082", -1), None);
        assert_eq!(verify_totp("not base32!", "287082", 59), None);
        assert_eq!(verify_totp("GEZDGNBV", "287082", 59), None, "key too short");
    }

    #[test]
    fn new_secrets_are_160_bit_and_verify() {
        let s = new_secret();
        assert_ne!(s, new_secret());
        assert_eq!(Secret::try_from_base32(&s).unwrap().as_bytes().len(), 20);
        let code = totp(&s).unwrap().generate(1_000_000).to_string();
        assert_eq!(verify_totp(&s, &code, 1_000_000), Some(1_000_000 / 30));
        assert_eq!(grouped("ABCDEFGHIJ"), "ABCD EFGH IJ");
    }

    #[test]
    fn otpauth_uri_names_issuer_and_account() {
        assert_eq!(
            otpauth_uri("Contoso Home", "alice@contoso.example", RFC_SECRET),
            "otpauth://totp/Contoso%20Home:alice%40contoso.example?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Contoso%20Home&algorithm=SHA1&digits=6&period=30"
        );
        assert!(otpauth_uri("A:B&c", "x", "S").starts_with("otpauth://totp/A%3AB%26c:x?"));
    }

    #[test]
    fn recovery_codes_are_random_and_normalized() {
        let c = new_recovery_code();
        assert_eq!(c.len(), 19);
        assert_eq!(c.matches('-').count(), 3);
        assert_ne!(c, new_recovery_code());
        let n = normalize_recovery_code(&c);
        assert_eq!(n.len(), RECOVERY_LEN);
        assert!(n.bytes().all(|b| RECOVERY_ALPHABET.contains(&b)));
        assert_eq!(
            normalize_recovery_code(&format!(" {} ", c.to_uppercase())),
            n
        );
    }

    #[tokio::test]
    async fn regenerated_recovery_codes_void_the_old_set() {
        let (dir, _, user) = crate::testing::directory().await;
        let old = regenerate_recovery_codes(&dir, &user).await.unwrap();
        assert_eq!(old.len(), RECOVERY_CODES);
        assert!(use_recovery_code(&dir, &user, &old[0]).await.unwrap());
        let new = regenerate_recovery_codes(&dir, &user).await.unwrap();
        assert_eq!(new.len(), RECOVERY_CODES);
        assert!(new.iter().all(|c| !old.contains(c)));
        assert_eq!(
            dir.store.unused_recovery_codes(&user).await.unwrap(),
            RECOVERY_CODES as u64
        );
        for code in &old {
            assert!(!use_recovery_code(&dir, &user, code).await.unwrap(), "void");
        }
        assert!(use_recovery_code(&dir, &user, &new[9]).await.unwrap());
        assert!(regenerate_recovery_codes(&dir, "nobody").await.is_err());
    }

    #[tokio::test]
    async fn methods_count_an_emailed_code_only_while_mail_is_on() {
        let (dir, _, user) = crate::testing::directory().await;
        assert!(!has_method(&dir, &user).await.unwrap());
        assert_eq!(methods(&dir, &user).await.unwrap(), Methods::default());
        email_otp::register_address(&dir, &user, "alice@contoso.test")
            .await
            .unwrap();
        assert!(has_method(&dir, &user).await.unwrap());
        assert!(!has_totp(&dir, &user).await.unwrap());
        let m = methods(&dir, &user).await.unwrap();
        assert!(m.any());
        assert_eq!(m.email.as_deref(), Some("alice@contoso.test"));
        // An emailed code (8 digits) passes where any method's code is taken.
        email_otp::send(&dir, &user, Purpose::PasswordReset)
            .await
            .unwrap();
        let mail = dir.store.outbox_mail(1).await.unwrap();
        let code = mail[0]
            .body
            .split_whitespace()
            .find_map(email_otp::normalize)
            .unwrap();
        assert!(
            !verify_code(&dir, &user, &code, Purpose::SignIn)
                .await
                .unwrap()
        );
        assert!(
            verify_code(&dir, &user, &code, Purpose::PasswordReset)
                .await
                .unwrap()
        );
        assert!(
            !verify_code(&dir, &user, &code, Purpose::PasswordReset)
                .await
                .unwrap()
        );
    }
}
