//! Password verification at the OWASP argon2id parameters (19 MiB, t = 2, p = 1): the argon2
//! crate alone (a fresh zeroed buffer per hash, as it allocates by default), the crate with a
//! reused buffer (the hash and nothing else), and `Passwords::verify` (the process's hashing
//! threads, a reused buffer, the hand-off from and back to the runtime). The differences are
//! what allocating costs and what tenantd adds to the hash itself.
//!
//! `cargo bench -p tenantd-signin --bench passwords -- --warm-up-time 1 --measurement-time 5`
//!
//! Results and the machine they were taken on: BENCHMARKS.md at the repository root.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use argon2::{Algorithm, Argon2, Params, Version};
use criterion::{Criterion, criterion_group, criterion_main};
use tenantd_signin::config::PasswordPolicy;
use tenantd_signin::passwords::Passwords;

fn verify(c: &mut Criterion) {
    let policy = PasswordPolicy::default();
    let params = Params::new(
        policy.memory_kib,
        policy.iterations,
        policy.parallelism,
        None,
    )
    .unwrap();
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let salt = [7u8; 16];
    let mut out = [0u8; 32];
    let mut group = c.benchmark_group("argon2id_owasp");
    group.sample_size(20);
    group.bench_function("argon2_crate_alone", |b| {
        b.iter(|| {
            argon2
                .hash_password_into(black_box(b"correct horse battery"), &salt, &mut out)
                .unwrap();
        });
    });
    // What tenantd's hashing threads do: the same hash in a buffer kept from the last one, so
    // neither allocating nor zeroing 19 MiB is part of it.
    let mut blocks = vec![argon2::Block::new(); argon2.params().block_count()];
    group.bench_function("argon2_crate_reused_buffer", |b| {
        b.iter(|| {
            argon2
                .hash_password_into_with_memory(
                    black_box(b"correct horse battery"),
                    &salt,
                    &mut out,
                    &mut blocks,
                )
                .unwrap();
        });
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let passwords = Passwords::new(&policy).unwrap();
    let stored = runtime
        .block_on(passwords.hash("correct horse battery"))
        .unwrap();
    group.bench_function("passwords_verify", |b| {
        b.iter(|| {
            assert!(
                runtime
                    .block_on(passwords.verify(black_box("correct horse battery"), Some(&stored)))
            );
        });
    });
    group.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
