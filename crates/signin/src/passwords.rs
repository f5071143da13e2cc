//! Password hashing with argon2id on a few dedicated threads (one per allowed concurrent hash,
//! each reusing one memory buffer), off the async runtime: a burst of sign-ins queues instead of
//! starving every other request of CPU, and no 19 MiB buffer is left behind per sign-in.

use crate::config::PasswordPolicy;
use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::sync::{Arc, Mutex, mpsc};
use subtle::ConstantTimeEq;
use tokio::sync::{Semaphore, oneshot};

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
    /// The hashing thread could not run.
    #[error("hashing task failed")]
    Task,
}

/// Work for a hashing thread.
enum Job {
    Hash {
        password: String,
        reply: oneshot::Sender<Result<String, PasswordError>>,
    },
    Verify {
        password: String,
        stored: Arc<str>,
        reply: oneshot::Sender<bool>,
    },
}

/// The tenant's password hasher.
///
/// Hashing runs on `max_concurrent_hashes` dedicated threads. Each keeps one argon2 memory
/// buffer (`m_cost` KiB, allocated on its first job) and reuses it for every hash and
/// verification, so the memory is bounded by `max_concurrent_hashes × m_cost` and never handed
/// back to (and kept by) the allocator's per-thread arenas.
#[derive(Clone)]
pub struct Passwords {
    params: Params,
    permits: Arc<Semaphore>,
    jobs: mpsc::Sender<Job>,
    /// A hash of a random string, verified against when the user does not exist so that
    /// unknown and known emails take the same time.
    dummy_hash: Arc<str>,
}

impl Passwords {
    /// Build from the policy, and start its hashing threads.
    pub fn new(policy: &PasswordPolicy) -> Result<Self, PasswordError> {
        let params = Params::new(
            policy.memory_kib,
            policy.iterations,
            policy.parallelism,
            None,
        )
        .map_err(|e| PasswordError::Params(e.to_string()))?;
        let threads = policy.max_concurrent_hashes.max(1);
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        // A one-off buffer, freed again: idle memory stays low until the first sign-in.
        let dummy = hash_with(&params, &crate::secrets::random_token(), &mut Vec::new())?;
        for i in 0..threads {
            let queue = Arc::clone(&queue);
            let params = params.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || hashing_thread(&queue, &params, Vec::new()))
                .map_err(|e| PasswordError::Hash(format!("cannot start hashing thread: {e}")))?;
        }
        Ok(Self {
            params,
            permits: Arc::new(Semaphore::new(threads)),
            jobs,
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
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Hash {
                password: password.to_owned(),
                reply,
            })
            .map_err(|_| PasswordError::Task)?;
        answer.await.map_err(|_| PasswordError::Task)?
    }

    /// Verify a password against a stored hash; `None` (no such user, or no password) still
    /// spends the same time and returns false.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> bool {
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let known = stored.is_some();
        let stored = stored.map_or_else(|| Arc::clone(&self.dummy_hash), Arc::from);
        let (reply, answer) = oneshot::channel();
        let sent = self.jobs.send(Job::Verify {
            password: password.to_owned(),
            stored,
            reply,
        });
        if sent.is_err() {
            return false;
        }
        let ok = answer.await.unwrap_or(false);
        ok && known
    }
}

/// One hashing thread: takes jobs until every [`Passwords`] handle is gone, reusing `memory`.
fn hashing_thread(queue: &Mutex<mpsc::Receiver<Job>>, params: &Params, mut memory: Vec<Block>) {
    loop {
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        match job {
            Ok(Job::Hash { password, reply }) => {
                // The receiver may have gone (request cancelled): nothing to do then.
                let _ = reply.send(hash_with(params, &password, &mut memory));
            }
            Ok(Job::Verify {
                password,
                stored,
                reply,
            }) => {
                let _ = reply.send(verify_with(
                    params.block_count(),
                    &password,
                    &stored,
                    &mut memory,
                ));
            }
            Err(_) => return,
        }
    }
}

/// `memory` with at least `blocks` blocks, grown (once) if needed.
fn blocks_of(memory: &mut Vec<Block>, blocks: usize) -> &mut [Block] {
    if memory.len() < blocks {
        memory.resize(blocks, Block::new());
    }
    &mut memory[..blocks]
}

/// Hash with argon2id at `params` and a fresh random salt into a PHC string, using `memory`.
fn hash_with(
    params: &Params,
    password: &str,
    memory: &mut Vec<Block>,
) -> Result<String, PasswordError> {
    let err = |e: &dyn std::fmt::Display| PasswordError::Hash(e.to_string());
    let salt = Salt::generate();
    let mut out = [0u8; Output::MAX_LENGTH];
    let out = out
        .get_mut(..params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN))
        .ok_or_else(|| PasswordError::Params("output length".to_owned()))?;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(
            password.as_bytes(),
            &salt,
            &mut *out,
            blocks_of(memory, params.block_count()),
        )
        .map_err(|e| err(&e))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|e| err(&e))?,
        salt: Some(salt),
        hash: Some(Output::new(out).map_err(|e| err(&e))?),
    };
    Ok(phc.to_string())
}

/// Verify `password` against a stored PHC string with its own algorithm, version and
/// parameters, using `memory` when the stored memory cost is at most the configured one
/// (`configured_blocks`), and a one-off buffer otherwise. The outputs are compared in constant
/// time.
fn verify_with(
    configured_blocks: usize,
    password: &str,
    stored: &str,
    memory: &mut Vec<Block>,
) -> bool {
    let Ok(phc) = PasswordHash::new(stored) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&phc.salt, &phc.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(phc.algorithm.as_str()) else {
        return false;
    };
    let version = match phc.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(&phc) else {
        return false;
    };
    let blocks = params.block_count();
    let argon2 = Argon2::new(algorithm, version, params);
    let mut out = [0u8; Output::MAX_LENGTH];
    let Some(out) = out.get_mut(..expected.len()) else {
        return false;
    };
    let done = if blocks <= configured_blocks {
        argon2.hash_password_into_with_memory(
            password.as_bytes(),
            salt,
            &mut *out,
            blocks_of(memory, blocks),
        )
    } else {
        // A hash made with a larger memory cost than configured now: do not keep its buffer.
        argon2.hash_password_into(password.as_bytes(), salt, out)
    };
    done.is_ok() && bool::from(out.ct_eq(expected.as_bytes()))
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

    #[tokio::test]
    async fn compatible_with_plain_argon2() {
        use argon2::{PasswordHasher, PasswordVerifier};
        let p = Passwords::new(&PasswordPolicy::default()).unwrap();
        // Made by the hashing threads, verified by the argon2 crate's own verifier.
        let ours = p.hash("correct horse").await.unwrap();
        let plain = Argon2::default();
        assert!(
            plain
                .verify_password(b"correct horse", ours.as_str())
                .is_ok()
        );
        assert!(
            plain
                .verify_password(b"wrong horse", ours.as_str())
                .is_err()
        );
        // Made by the argon2 crate's own hasher, verified by the hashing threads.
        let theirs = plain.hash_password(b"battery staple").unwrap().to_string();
        assert!(p.verify("battery staple", Some(&theirs)).await);
        assert!(!p.verify("battery stapler", Some(&theirs)).await);
        // Other parameters than configured (smaller and larger memory) still verify.
        for m in [8 * 1024, 32 * 1024] {
            let other = Argon2::new(
                Algorithm::Argon2id,
                Version::V0x13,
                Params::new(m, 1, 1, None).unwrap(),
            )
            .hash_password(b"staple")
            .unwrap()
            .to_string();
            assert!(p.verify("staple", Some(&other)).await, "m = {m}");
            assert!(!p.verify("stapler", Some(&other)).await, "m = {m}");
        }
        // Garbage never verifies.
        assert!(!p.verify("staple", Some("$argon2id$v=19$nonsense")).await);
    }
}
