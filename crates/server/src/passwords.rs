//! Password hashing with argon2id, off the async runtime and behind a semaphore: a burst of
//! sign-ins queues instead of starving every other request of CPU.

use crate::config::PasswordPolicy;
use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Shortest password accepted when one is set.
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longest password accepted (argon2 is fine with more; this bounds the work per request).
pub const MAX_PASSWORD_LEN: usize = 256;

/// Errors from hashing.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The parameters are not usable.
    #[error("argon2 parameters: {0}")]
    Params(String),
    /// Hashing failed.
    #[error("hashing failed: {0}")]
    Hash(String),
    /// The blocking task could not run.
    #[error("hashing task failed")]
    Task,
}

/// The tenant's password hasher.
#[derive(Clone)]
pub struct Passwords {
    params: Params,
    permits: Arc<Semaphore>,
    /// A hash of a random string, verified against when the user does not exist so that
    /// unknown and known emails take the same time.
    dummy_hash: Arc<str>,
}

impl Passwords {
    /// Build from the policy.
    pub fn new(policy: &PasswordPolicy) -> Result<Self, PasswordError> {
        let params = Params::new(
            policy.memory_kib,
            policy.iterations,
            policy.parallelism,
            None,
        )
        .map_err(|e| PasswordError::Params(e.to_string()))?;
        let dummy = hash_with(&params, &crate::secrets::random_token())?;
        Ok(Self {
            params,
            permits: Arc::new(Semaphore::new(policy.max_concurrent_hashes)),
            dummy_hash: dummy.into(),
        })
    }

    /// A short human description of the parameters.
    pub fn describe(&self) -> String {
        format!(
            "argon2id m={} KiB, t={}, p={}",
            self.params.m_cost(),
            self.params.t_cost(),
            self.params.p_cost()
        )
    }

    /// Hash a new password (PHC string).
    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| PasswordError::Task)?;
        let params = self.params.clone();
        let pw = password.to_owned();
        tokio::task::spawn_blocking(move || hash_with(&params, &pw))
            .await
            .map_err(|_| PasswordError::Task)?
    }

    /// Verify a password against a stored hash; `None` (no such user, or no password) still
    /// spends the same time and returns false.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> bool {
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let known = stored.is_some();
        let hash = stored.map_or_else(|| self.dummy_hash.to_string(), str::to_owned);
        let pw = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || {
            Argon2::default()
                .verify_password(pw.as_bytes(), hash.as_str())
                .is_ok()
        })
        .await
        .unwrap_or(false);
        ok && known
    }
}

fn hash_with(params: &Params, password: &str) -> Result<String, PasswordError> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Why a new password is not acceptable, in words for the page.
pub fn check_new_password(password: &str) -> Result<(), &'static str> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err("Use at least 8 characters.");
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err("Use at most 256 characters.");
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_then_verify() {
        let p = Passwords::new(&PasswordPolicy::default()).unwrap();
        let h = p.hash("correct horse").await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(p.verify("correct horse", Some(&h)).await);
        assert!(!p.verify("wrong horse", Some(&h)).await);
        assert!(!p.verify("correct horse", None).await);
    }
}
