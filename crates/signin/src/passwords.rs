//! Password hashing with argon2id on the process's hashing threads (one per core it may run on,
//! shared by every tenant in the process), off the async runtime: a burst of sign-ins queues
//! instead of starving every other request of CPU or running more hashes at once than there are
//! cores to run them (which only makes each one slower). Each thread reuses one memory buffer
//! while sign-ins keep coming and gives it back to the system when idle.

use crate::config::PasswordPolicy;
use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::Duration;
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

/// How long a hashing thread keeps its memory buffer after its last job. Sign-ins that keep
/// coming reuse it; after a pause the next one pays a few milliseconds of page faults.
#[cfg(not(test))]
const BUFFER_IDLE: Duration = Duration::from_secs(2);
#[cfg(test)]
const BUFFER_IDLE: Duration = Duration::from_millis(50);

/// Capacity reserved for a buffer, in blocks of 1 KiB: 33 MiB, more than glibc's largest
/// dynamic mmap threshold (32 MiB), so every buffer is a mapping of its own that freeing
/// returns to the system, whatever sizes were freed before. Only the blocks a hash uses are
/// touched, so only they are resident.
const OWN_MAPPING_BLOCKS: usize = 33 * 1024;

/// Work for a hashing thread.
enum Job {
    Hash {
        params: Params,
        password: String,
        reply: oneshot::Sender<Result<String, PasswordError>>,
    },
    Verify {
        /// The tenant's configured memory cost, in blocks: a stored hash that needs more is
        /// verified with a one-off buffer rather than growing the thread's.
        configured_blocks: usize,
        password: String,
        stored: Arc<str>,
        reply: oneshot::Sender<bool>,
    },
}

/// The process's hashing threads.
struct Pool {
    jobs: mpsc::Sender<Job>,
    threads: usize,
}

/// The pool, started on first use: as many threads as cores this process may run on (its CPU
/// affinity and quota, as `available_parallelism` reads them).
fn pool() -> Result<&'static Pool, PasswordError> {
    static POOL: OnceLock<Result<Pool, String>> = OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads {
            let queue = Arc::clone(&queue);
            // The load generator tells the hash's CPU from the rest by this name.
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || hashing_thread(&queue))
                .map_err(|e| format!("cannot start hashing thread: {e}"))?;
        }
        Ok(Pool { jobs, threads })
    })
    .as_ref()
    .map_err(|e| PasswordError::Hash(e.clone()))
}

/// The tenant's password hasher: its parameters and its share of the process's hashing
/// threads.
///
/// At most `max_concurrent_hashes` of the tenant's hashes are queued or running at once (by
/// default as many as there are hashing threads), so one tenant's burst cannot fill the queue
/// in front of another's. Memory is bounded by threads × the largest `m_cost`.
#[derive(Clone)]
pub struct Passwords {
    params: Params,
    permits: Arc<Semaphore>,
    pool: &'static Pool,
    /// A hash of a random string, verified against when the user does not exist so that
    /// unknown and known emails take the same time.
    dummy_hash: Arc<str>,
}

impl Passwords {
    /// Build from the policy (starting the process's hashing threads if this is the first).
    pub fn new(policy: &PasswordPolicy) -> Result<Self, PasswordError> {
        let params = Params::new(
            policy.memory_kib,
            policy.iterations,
            policy.parallelism,
            None,
        )
        .map_err(|e| PasswordError::Params(e.to_string()))?;
        let pool = pool()?;
        let permits = policy.max_concurrent_hashes.unwrap_or(pool.threads).max(1);
        // A one-off buffer, freed again: idle memory stays low until the first sign-in.
        let dummy = hash_with(&params, &crate::secrets::random_token(), &mut Vec::new())?;
        Ok(Self {
            params,
            permits: Arc::new(Semaphore::new(permits)),
            pool,
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
        self.pool
            .jobs
            .send(Job::Hash {
                params: self.params.clone(),
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
        let sent = self.pool.jobs.send(Job::Verify {
            configured_blocks: self.params.block_count(),
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

/// One hashing thread: takes jobs while the process runs, reusing one memory buffer, and frees
/// the buffer after [`BUFFER_IDLE`] without a job.
fn hashing_thread(queue: &Mutex<mpsc::Receiver<Job>>) {
    let mut memory = Vec::new();
    loop {
        // Threads wait for the queue in turn; each waits at most BUFFER_IDLE, so every idle
        // thread gets its turn to free its buffer.
        let job = match queue.lock() {
            Ok(queue) => queue.recv_timeout(BUFFER_IDLE),
            Err(_) => return,
        };
        match job {
            Ok(Job::Hash {
                params,
                password,
                reply,
            }) => {
                // The receiver may have gone (request cancelled): nothing to do then.
                let _ = reply.send(hash_with(&params, &password, &mut memory));
            }
            Ok(Job::Verify {
                configured_blocks,
                password,
                stored,
                reply,
            }) => {
                let _ = reply.send(verify_with(
                    configured_blocks,
                    &password,
                    &stored,
                    &mut memory,
                ));
            }
            Err(RecvTimeoutError::Timeout) => memory = Vec::new(),
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// `memory` with at least `blocks` blocks, grown if needed (in a mapping of its own: see
/// [`OWN_MAPPING_BLOCKS`]).
fn blocks_of(memory: &mut Vec<Block>, blocks: usize) -> &mut [Block] {
    if memory.len() < blocks {
        memory.reserve_exact(blocks.max(OWN_MAPPING_BLOCKS) - memory.len());
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
    async fn hashing_threads_work_again_after_freeing_their_buffers() {
        let p = Passwords::new(&PasswordPolicy::default()).unwrap();
        let h = p.hash("correct horse").await.unwrap();
        // Every thread has had its turn to time out and free its buffer.
        let threads = u32::try_from(pool().unwrap().threads).unwrap();
        tokio::time::sleep(BUFFER_IDLE * (threads + 2)).await;
        assert!(p.verify("correct horse", Some(&h)).await);
        assert!(!p.verify("wrong horse", Some(&h)).await);
    }

    #[test]
    fn buffers_are_mappings_of_their_own() {
        let mut memory = Vec::new();
        assert_eq!(blocks_of(&mut memory, 19 * 1024).len(), 19 * 1024);
        assert!(memory.capacity() * 1024 > 32 * 1024 * 1024);
        // A larger cost grows the same buffer.
        assert_eq!(blocks_of(&mut memory, 40 * 1024).len(), 40 * 1024);
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
