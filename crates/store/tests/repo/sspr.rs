//! Self-service password reset attempt counters.

use tenantd_store::AttemptCount;

use crate::Ctx;

pub async fn attempts_are_counted_per_bucket_in_a_fixed_window(ctx: Ctx) {
    let store = &ctx.store;
    let count = |attempts, window_ends_at| AttemptCount {
        attempts,
        window_ends_at,
    };
    assert_eq!(
        store
            .count_sspr_attempt(&["account:a", "ip:1"], 900, 1_000)
            .await
            .unwrap(),
        [count(1, 1_900), count(1, 1_900)]
    );
    assert_eq!(
        store
            .count_sspr_attempt(&["account:a", "ip:1"], 900, 1_100)
            .await
            .unwrap(),
        [count(2, 1_900), count(2, 1_900)]
    );
    // Another account from the same IP: its own count, the IP's goes on.
    assert_eq!(
        store
            .count_sspr_attempt(&["account:b", "ip:1"], 900, 1_200)
            .await
            .unwrap(),
        [count(1, 2_100), count(3, 1_900)]
    );
    // The window ends: a new one starts at 1.
    assert_eq!(
        store
            .count_sspr_attempt(&["account:a", "ip:1"], 900, 1_900)
            .await
            .unwrap(),
        [count(1, 2_800), count(1, 2_800)]
    );
    // Ended windows are purged; current ones stay.
    assert_eq!(store.purge_expired(2_100).await.unwrap(), 1);
    assert_eq!(
        store
            .count_sspr_attempt(&["account:a"], 900, 2_200)
            .await
            .unwrap(),
        [count(2, 2_800)]
    );
    assert_eq!(
        store
            .count_sspr_attempt(&["account:b"], 900, 2_200)
            .await
            .unwrap(),
        [count(1, 3_100)]
    );
}

pub async fn concurrent_attempts_are_each_counted(ctx: Ctx) {
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = ctx.store.clone();
            tokio::spawn(async move {
                store
                    .count_sspr_attempt(&["account:c", "ip:2"], 900, 1_000)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.unwrap()[0].attempts);
    }
    seen.sort_unstable();
    assert_eq!(seen, (1..=8).collect::<Vec<i64>>());
}
