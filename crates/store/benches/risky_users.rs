//! The risky users report on a large tenant: 100,000 members of whom 10,000 have a risk record
//! (SQLite file, as the default store), one page of 100 at a time: the first page, the last
//! page (keyset paging from the previous page's last row), the seed's "User" filter (`startswith(userPrincipalName, …)`), and a
//! level filter.
//!
//! `cargo bench -p tenantd-store --bench risky_users -- --warm-up-time 1 --measurement-time 3`
//! (under `cargo test --benches` the tenant is 2,000 members, 200 risky: it checks the bench
//! runs, not its numbers). Results: BENCHMARKS.md at the repository root.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{Criterion, criterion_group, criterion_main};
use tenantd_store::{
    NewUser, Opened, RiskyUserCondition, RiskyUserQuery, SealError, Sealer, Store, UserCondition,
    UserRiskRecord,
};

/// The report reads no secret column; a sealer is required all the same.
#[derive(Debug)]
struct NoSecrets;

impl Sealer for NoSecrets {
    fn seal(&self, _place: &str, plaintext: &str) -> String {
        plaintext.to_owned()
    }
    fn open(&self, _place: &str, _stored: &str) -> Result<Opened, SealError> {
        Err(SealError::Clear)
    }
    fn current_prefix(&self) -> String {
        String::new()
    }
}

fn tenant(members: usize) -> (tokio::runtime::Runtime, Store, std::path::PathBuf) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = std::env::temp_dir().join(format!("tenantd-bench-{}", uuid::Uuid::new_v4()));
    let url = format!("sqlite://{}/tenant.db", dir.display());
    let store = runtime.block_on(async {
        let store = Store::connect(&url, std::sync::Arc::new(NoSecrets))
            .await
            .unwrap();
        for i in 0..members {
            let id = format!("u{i:06}");
            store
                .insert_user(&NewUser {
                    id: id.clone(),
                    email: format!("user{i:06}@contoso.test"),
                    display_name: format!("User {i:06}"),
                    given_name: None,
                    family_name: None,
                    password_hash: None,
                    must_change_password: false,
                    now: 1_000,
                })
                .await
                .unwrap();
            if i % 10 == 0 {
                let level = ["low", "medium", "high"][i % 3];
                store
                    .set_user_risk(
                        &UserRiskRecord {
                            user_id: id,
                            level: level.into(),
                            state: "atRisk".into(),
                            detail: "none".into(),
                            updated_at: 2_000 + i as i64,
                        },
                        "bench",
                        None,
                    )
                    .await
                    .unwrap();
            }
        }
        store
    });
    (runtime, store, dir)
}

fn report(c: &mut Criterion) {
    let benching = std::env::args().any(|a| a == "--bench");
    let members = if benching { 100_000 } else { 2_000 };
    let (runtime, store, dir) = tenant(members);
    let page = |conditions: Vec<RiskyUserCondition>, after: Option<(i64, String)>| RiskyUserQuery {
        conditions,
        oldest_first: false,
        limit: 100,
        after,
    };
    // Newest first, the last page (users 990, 980, …, 0) begins after user 1000's row.
    let cases = [
        ("first_page", page(vec![], None)),
        (
            "last_page",
            page(vec![], Some((3_000, "u001000".to_owned()))),
        ),
        (
            "upn_startswith",
            page(
                vec![RiskyUserCondition::User(UserCondition::EmailStartsWith(
                    "user0042".into(),
                ))],
                None,
            ),
        ),
        (
            "level_high",
            page(vec![RiskyUserCondition::LevelIs("high".into())], None),
        ),
    ];
    let mut group = c.benchmark_group("risky_users_report");
    for (name, q) in cases {
        let rows = runtime.block_on(store.list_risky_users(&q)).unwrap();
        assert!(!rows.is_empty(), "{name}");
        if name == "last_page" {
            assert_eq!(rows.len(), 100);
            assert_eq!(rows[99].user.id, "u000000");
        }
        group.bench_function(name, |b| {
            b.iter(|| runtime.block_on(store.list_risky_users(&q)).unwrap());
        });
    }
    group.finish();
    runtime.block_on(store.close());
    let _ = std::fs::remove_dir_all(dir);
}

criterion_group!(benches, report);
criterion_main!(benches);
