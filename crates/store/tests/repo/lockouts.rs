//! Smart lockout's counters: a missing row reads as zeros, each change is applied once even
//! when requests race, and old counts are purged.

use tenantd_store::LockoutRow;

use crate::Ctx;

pub async fn counts_change_once_each_and_are_purged(ctx: Ctx) {
    let store = &ctx.store;
    assert_eq!(store.lockout("a@x.test", "unfamiliar").await.unwrap(), None);
    let bump = |r: LockoutRow| LockoutRow {
        failures: r.failures + 1,
        ..r
    };
    // Twenty concurrent wrong passwords count twenty.
    let mut tries = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let store = store.clone();
        tries.spawn(async move {
            store
                .update_lockout("a@x.test", "unfamiliar", 100, bump)
                .await
        });
    }
    while let Some(r) = tries.join_next().await {
        r.unwrap().unwrap();
    }
    assert_eq!(
        store
            .lockout("a@x.test", "unfamiliar")
            .await
            .unwrap()
            .unwrap()
            .failures,
        20
    );
    // Sources and accounts are apart.
    assert_eq!(store.lockout("a@x.test", "familiar").await.unwrap(), None);
    let locked = store
        .update_lockout("b@x.test", "familiar", 150, |_| LockoutRow {
            failures: 0,
            locked_until: 400,
            lockouts: 1,
        })
        .await
        .unwrap();
    assert_eq!(locked.locked_until, 400);
    // The purge forgets counts untouched since `before` whose lock is over: a's, not b's.
    assert_eq!(store.purge_lockouts(300).await.unwrap(), 1);
    assert_eq!(store.lockout("a@x.test", "unfamiliar").await.unwrap(), None);
    assert!(
        store
            .lockout("b@x.test", "familiar")
            .await
            .unwrap()
            .is_some()
    );
}
