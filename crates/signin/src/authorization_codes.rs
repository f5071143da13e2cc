//! Authorization codes that carry their grant, sealed with the tenant's code key
//! (AES-256-GCM): issuing a code writes nothing, and the store's `redeem_sealed_code` inserts
//! the grant at the token endpoint, where the grant's id is the code's "spent" mark. A code
//! that does not open (another tenant's, altered, forged) is simply unknown.
//!
//! The key is created once per tenant in the database, so every replica and every restart
//! opens the codes the others issued.
//!
//! The replica that issues a code also keeps the user it issued it to ([`IssuedUsers`]), so
//! the exchange need not read them again.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use protocol::sealed::{SECRET_LEN, SealingKey};
use serde::{Deserialize, Serialize};
use store::{AuthCode, Grant, StoreError, User};

use crate::Directory;
use crate::secrets::random_bytes;

/// Associated data of every sealed code: a value sealed for another purpose never opens here.
/// The version names [`Carried`]'s encoding, so a change to it needs a new label: a code sealed
/// by another version is then unknown (`invalid_grant`) rather than misread.
pub(crate) const PURPOSE: &str = "tenantd authorization code v2";

/// What a code carries: its grant and what the token request is checked against.
///
/// Encoded with postcard, which writes the values by position and no field names: the code
/// travels in a redirect URL and a token request, and half its length used to be JSON keys.
#[derive(Serialize, Deserialize)]
struct Carried {
    grant_id: String,
    client_id: String,
    user_id: String,
    session_id: Option<String>,
    scope: String,
    auth_time: i64,
    amr: Vec<String>,
    acr: Option<String>,
    offline: bool,
    claims: Option<String>,
    grant_expires_at: i64,
    redirect_uri: String,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    created_at: i64,
    expires_at: i64,
}

/// Most users [`IssuedUsers`] keeps: past it (codes issued and never redeemed, faster than they
/// expire), an exchange reads its user as a code redeemed at another replica does.
const MOST_ISSUED_USERS: usize = 1024;

/// The users this replica issued codes to, by grant id, until the code is redeemed or expires:
/// the exchange takes its user from here instead of reading them again.
///
/// This is safe because what may have changed since decides nothing here: the redemption
/// itself refuses a user no longer active, or a session that has ended, in the statement that
/// spends the code. The claims are the user's as they were at the sign-in the code was issued
/// for, at most the code's lifetime ago. A code redeemed at another replica, or after a
/// restart, reads its user.
#[derive(Debug, Default)]
pub(crate) struct IssuedUsers(Mutex<Issued>);

#[derive(Debug, Default)]
struct Issued {
    /// Grant id → the code's expiry (unix seconds) and its user, without their password hash.
    users: HashMap<String, (i64, User)>,
    /// When expired entries were last swept out (at most once a second, when full).
    swept_at: i64,
}

impl IssuedUsers {
    fn keep(&self, grant_id: &str, expires_at: i64, user: &User, now: i64) {
        // Copied before the lock is taken, so other requests wait for no allocation.
        let user = User {
            password_hash: None,
            ..user.clone()
        };
        // Nothing here is left half-changed by a panic, so a poisoned lock is still sound.
        let mut issued = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if issued.users.len() >= MOST_ISSUED_USERS && issued.swept_at < now {
            issued.users.retain(|_, (expires_at, _)| *expires_at > now);
            issued.swept_at = now;
        }
        if issued.users.len() < MOST_ISSUED_USERS {
            issued.users.insert(grant_id.to_owned(), (expires_at, user));
        }
    }

    fn take(&self, grant_id: &str, now: i64) -> Option<User> {
        let mut issued = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let (expires_at, user) = issued.users.remove(grant_id)?;
        (expires_at > now).then_some(user)
    }
}

/// The tenant's sealing key, read (or created) once: codes and sign-ins not yet authenticated
/// ([`crate::sign_in::begin`]) are sealed with it, each for its own purpose.
pub(crate) async fn key(dir: &Directory) -> Result<&SealingKey, StoreError> {
    dir.code_key
        .get_or_try_init(|| async {
            let candidate = URL_SAFE_NO_PAD.encode(random_bytes::<SECRET_LEN>());
            let secret = dir.store.code_sealing_secret(&candidate, dir.now()).await?;
            URL_SAFE_NO_PAD
                .decode(secret)
                .ok()
                .and_then(|bytes| SealingKey::new(&bytes).ok())
                .ok_or_else(|| StoreError::Corrupt("code_sealing_keys.secret is not a key".into()))
        })
        .await
}

/// Seals `grant` and its `code`, issued to `user`: the sealed text is the code. The user is
/// kept for the exchange (see [`IssuedUsers`]).
pub async fn seal(
    dir: &Directory,
    grant: &Grant,
    code: &AuthCode,
    user: &User,
) -> Result<String, StoreError> {
    let carried = Carried {
        grant_id: grant.id.clone(),
        client_id: grant.client_id.clone(),
        user_id: grant.user_id.clone(),
        session_id: grant.session_id.clone(),
        scope: grant.scope.clone(),
        auth_time: grant.auth_time,
        amr: grant.amr.clone(),
        acr: grant.acr.clone(),
        offline: grant.offline,
        claims: grant.claims.clone(),
        grant_expires_at: grant.expires_at,
        redirect_uri: code.redirect_uri.clone(),
        nonce: code.nonce.clone(),
        code_challenge: code.code_challenge.clone(),
        code_challenge_method: code.code_challenge_method.clone(),
        created_at: code.created_at,
        expires_at: code.expires_at,
    };
    let plaintext = postcard::to_allocvec(&carried)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode a code: {e}")))?;
    let sealed = key(dir).await?.seal(random_bytes(), PURPOSE, &plaintext);
    dir.issued_users
        .keep(&grant.id, code.expires_at, user, dir.now());
    Ok(sealed)
}

/// The user the code of `grant` was issued to, if this replica issued it and it has not
/// expired; once. The caller must have redeemed the code: the redemption is what checks that
/// the user is still active.
pub fn issued_user(dir: &Directory, grant: &Grant) -> Option<User> {
    dir.issued_users
        .take(&grant.id, dir.now())
        .filter(|user| user.id == grant.user_id)
}

/// The code and grant `code` carries, if it is one of this tenant's codes.
pub async fn open(dir: &Directory, code: &str) -> Result<Option<(AuthCode, Grant)>, StoreError> {
    let Some(plaintext) = key(dir).await?.open(PURPOSE, code) else {
        return Ok(None);
    };
    let Ok(c) = postcard::from_bytes::<Carried>(&plaintext) else {
        return Ok(None);
    };
    let grant = Grant {
        id: c.grant_id.clone(),
        client_id: c.client_id.clone(),
        user_id: c.user_id,
        session_id: c.session_id,
        scope: c.scope.clone(),
        auth_time: c.auth_time,
        amr: c.amr,
        acr: c.acr,
        offline: c.offline,
        created_at: c.created_at,
        expires_at: c.grant_expires_at,
        revoked_at: None,
        claims: c.claims,
    };
    let code = AuthCode {
        grant_id: c.grant_id,
        client_id: c.client_id,
        redirect_uri: c.redirect_uri,
        scope: c.scope,
        nonce: c.nonce,
        code_challenge: c.code_challenge,
        code_challenge_method: c.code_challenge_method,
        created_at: c.created_at,
        expires_at: c.expires_at,
    };
    Ok(Some((code, grant)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A code as a browser sign-in issues it: a v7 id, PKCE and a nonce of 43 characters.
    fn issued() -> (Grant, AuthCode) {
        let grant = Grant {
            id: "0193a4c1-7d2e-7b3a-9f10-2c4d5e6f7a8b".into(),
            client_id: "demo-app".into(),
            user_id: "0193a4c1-0000-7000-8000-00000000a11c".into(),
            session_id: Some("0193a4c1-1111-7111-8111-111111111111".into()),
            scope: "openid profile email offline_access".into(),
            auth_time: 1_796_000_000,
            amr: vec!["pwd".into(), "mfa".into()],
            acr: Some("urn:tenantd:acr:mfa".into()),
            offline: true,
            created_at: 1_796_000_100,
            expires_at: 1_798_592_100,
            revoked_at: None,
            claims: Some(r#"{"id_token":{"email":null}}"#.into()),
        };
        let code = AuthCode {
            grant_id: grant.id.clone(),
            client_id: grant.client_id.clone(),
            redirect_uri: "https://app.example.com/auth/callback".into(),
            scope: grant.scope.clone(),
            nonce: Some("n".repeat(43)),
            code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
            code_challenge_method: Some("S256".into()),
            created_at: 1_796_000_100,
            expires_at: 1_796_000_160,
        };
        (grant, code)
    }

    #[tokio::test]
    async fn a_code_opens_to_what_was_sealed_and_is_short() {
        let (dir, _, id) = crate::testing::directory().await;
        let user = dir.store.user_by_id(&id).await.unwrap().unwrap();
        let (grant, code) = issued();
        let sealed = seal(&dir, &grant, &code, &user).await.unwrap();
        // It travels in a redirect URL: as JSON this one was 879 characters, by position 532.
        assert!(sealed.len() <= 532, "{} characters", sealed.len());
        let (opened_code, opened_grant) = open(&dir, &sealed).await.unwrap().unwrap();
        assert_eq!(opened_grant, grant);
        assert_eq!(opened_code, code);
    }

    #[tokio::test]
    async fn anything_else_is_unknown() {
        let (dir, _, id) = crate::testing::directory().await;
        let user = dir.store.user_by_id(&id).await.unwrap().unwrap();
        let (grant, code) = issued();
        let sealed = seal(&dir, &grant, &code, &user).await.unwrap();
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 2;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).unwrap();
        // A code of the JSON encoding (label v1) and a v2 label over something else.
        let key = key(&dir).await.unwrap();
        let v1 = key.seal(
            random_bytes(),
            "tenantd authorization code v1",
            br#"{"grant_id":"g"}"#,
        );
        let not_carried = key.seal(random_bytes(), PURPOSE, b"\xff\xff");
        for code in [altered.as_str(), &v1, &not_carried, "", "not a code"] {
            assert!(open(&dir, code).await.unwrap().is_none(), "{code}");
        }
    }

    #[tokio::test]
    async fn the_user_a_code_was_issued_to_is_kept_for_its_exchange_once() {
        let (dir, clock, id) = crate::testing::directory().await;
        let mut user = dir.store.user_by_id(&id).await.unwrap().unwrap();
        user.password_hash = Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into());
        let (mut grant, mut code) = issued();
        grant.user_id = id.clone();
        code.expires_at = dir.now() + 60;
        seal(&dir, &grant, &code, &user).await.unwrap();
        let kept = issued_user(&dir, &grant).unwrap();
        assert_eq!(kept.password_hash, None, "no password hash is kept");
        assert_eq!(
            kept,
            User {
                password_hash: None,
                ..user.clone()
            }
        );
        assert_eq!(issued_user(&dir, &grant), None, "taken once");

        // Not after the code's expiry, nor for a grant of someone else.
        seal(&dir, &grant, &code, &user).await.unwrap();
        clock.advance(60);
        assert_eq!(issued_user(&dir, &grant), None, "expired");
        code.expires_at = dir.now() + 60;
        seal(&dir, &grant, &code, &user).await.unwrap();
        let theirs = Grant {
            user_id: "someone else".into(),
            ..grant.clone()
        };
        assert_eq!(issued_user(&dir, &theirs), None, "another user's grant");
    }

    #[test]
    fn issued_users_are_bounded_and_swept_of_expired_codes() {
        let users = IssuedUsers::default();
        let user = crate::testing::user(None);
        for n in 0..MOST_ISSUED_USERS {
            users.keep(&format!("g{n}"), 100, &user, 10);
        }
        users.keep("one too many", 100, &user, 10);
        assert_eq!(users.take("one too many", 10), None, "full: not kept");
        assert!(users.take("g0", 10).is_some());
        users.keep("g0", 100, &user, 10);
        // Once those codes have expired, the next one sweeps them out.
        users.keep("later", 200, &user, 100);
        assert!(users.take("later", 100).is_some());
        let left = users.0.lock().unwrap().users.len();
        assert_eq!(left, 0, "the expired were swept");
    }
}
