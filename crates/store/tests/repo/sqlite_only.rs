//! SQLite-specific set-up: file creation, WAL, in-memory databases, bad URLs.

use tenantd_store::{Backend, Store, StoreError};

use crate::{new_user, sqlite_url};

#[tokio::test]
async fn creates_file_and_parent_dir_and_uses_wal() {
    let (url, dir) = sqlite_url();
    assert!(!dir.exists());
    let store = Store::connect(&url, crate::sealer()).await.unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    let db = dir.join("nested").join("tenant.db");
    assert!(db.is_file(), "{} not created", db.display());
    store
        .insert_user(&new_user("u1", "u1@example.com"))
        .await
        .unwrap();
    let wal = dir.join("nested").join("tenant.db-wal");
    assert!(wal.is_file(), "no WAL file next to the database");
    store.close().await;
    // Migrations are idempotent: connecting again applies nothing and keeps the data.
    let again = Store::connect(&url, crate::sealer()).await.unwrap();
    assert_eq!(again.list_users().await.unwrap().len(), 1);
    again.close().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn in_memory_database_is_one_database() {
    let store = Store::connect("sqlite::memory:", crate::sealer())
        .await
        .unwrap();
    store
        .insert_user(&new_user("u1", "u1@example.com"))
        .await
        .unwrap();
    // Across several calls (and a clone) it is the same database.
    let clone = store.clone();
    assert!(clone.user_by_id("u1").await.unwrap().is_some());
    assert_eq!(store.list_users().await.unwrap().len(), 1);
    store.close().await;
}

#[tokio::test]
async fn unsupported_urls_are_refused() {
    for url in ["mysql://localhost/x", "nonsense", "sqlite://"] {
        let err = Store::connect(url, crate::sealer()).await.unwrap_err();
        assert!(matches!(err, StoreError::Config(_)), "{url}: {err:?}");
    }
}

/// Under steady writes the write-ahead log is copied into the database and started over, not
/// grown without bound (a passive checkpoint alone never catches up with a busy writer).
#[tokio::test]
async fn the_log_starts_over_under_steady_writes() {
    let (url, dir) = sqlite_url();
    let store = Store::connect(&url, crate::sealer()).await.unwrap();
    let wal = dir.join("nested").join("tenant.db-wal");
    let started = std::time::Instant::now();
    let mut commits = 0_u64;
    // Long enough for several checkpoint rounds (one a second), a write every millisecond or
    // so.
    while started.elapsed() < std::time::Duration::from_secs(8) {
        let id = format!("u{commits}");
        store
            .insert_user(&new_user(&id, &format!("{id}@example.com")))
            .await
            .unwrap();
        commits += 1;
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    // Each insert commits at least three pages (the row, and the id and email indexes): a log
    // that was never started over holds them all. One started over each second holds about a
    // second of them (a fifth of `never_rewound` here).
    let never_rewound = commits * 3 * 4096;
    let size = std::fs::metadata(&wal).unwrap().len();
    assert!(
        size < never_rewound / 3,
        "the log is {size} bytes after {commits} commits (never started over: >= {never_rewound})"
    );
    store.close().await;
    std::fs::remove_dir_all(dir).unwrap();
}
