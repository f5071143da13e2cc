//! TOTP methods and recovery codes.

use sqlx::{Connection, Executor};
use tenantd_store::{MfaReset, StoreError};

use crate::{Ctx, new_user};

async fn two_users(ctx: &Ctx) {
    for (id, email) in [("u1", "u1@example.com"), ("u2", "u2@example.com")] {
        ctx.store.insert_user(&new_user(id, email)).await.unwrap();
    }
}

pub async fn enrolment_replaces_unconfirmed_and_confirms_once(ctx: Ctx) {
    let store = &ctx.store;
    two_users(&ctx).await;
    assert!(store.confirmed_totp("u1").await.unwrap().is_none());
    store
        .add_unconfirmed_totp("m1", "u1", "SECRETONE", 100)
        .await
        .unwrap();
    let m2 = store
        .add_unconfirmed_totp("m2", "u1", "SECRETTWO", 110)
        .await
        .unwrap();
    // Only the key shown last can be confirmed.
    assert_eq!(store.unconfirmed_totp("u1").await.unwrap(), Some(m2));
    assert!(!store.confirm_totp("m1", 5, 120).await.unwrap());
    assert!(store.confirmed_totp("u1").await.unwrap().is_none());
    assert!(
        !store.use_totp_step("m2", 5).await.unwrap(),
        "an unconfirmed method cannot be used"
    );

    assert!(store.confirm_totp("m2", 5, 120).await.unwrap());
    assert!(
        !store.confirm_totp("m2", 6, 130).await.unwrap(),
        "confirmed once"
    );
    let confirmed = store.confirmed_totp("u1").await.unwrap().unwrap();
    assert_eq!(confirmed.id, "m2");
    assert_eq!(confirmed.secret, "SECRETTWO");
    assert_eq!(confirmed.confirmed_at, Some(120));
    assert_eq!(confirmed.last_used_step, Some(5));
    assert!(store.unconfirmed_totp("u1").await.unwrap().is_none());
    // The enrolment's own code is spent.
    assert!(!store.use_totp_step("m2", 5).await.unwrap());
    // The other user has nothing.
    assert!(store.confirmed_totp("u2").await.unwrap().is_none());

    // A new enrolment starts beside the confirmed method and replaces it once confirmed.
    store
        .add_unconfirmed_totp("m3", "u1", "SECRETTHREE", 200)
        .await
        .unwrap();
    assert_eq!(
        store.confirmed_totp("u1").await.unwrap().unwrap().id,
        "m2",
        "an unconfirmed method does not replace a confirmed one"
    );
    assert!(store.confirm_totp("m3", 9, 210).await.unwrap());
    assert_eq!(store.confirmed_totp("u1").await.unwrap().unwrap().id, "m3");
    assert!(!store.use_totp_step("m2", 100).await.unwrap(), "m2 is gone");
}

pub async fn enrolment_errors_change_nothing(ctx: Ctx) {
    let store = &ctx.store;
    two_users(&ctx).await;
    assert!(matches!(
        store.add_unconfirmed_totp("m1", "nobody", "S", 100).await,
        Err(StoreError::NotFound)
    ));
    store
        .add_unconfirmed_totp("m1", "u1", "S", 100)
        .await
        .unwrap();
    assert!(matches!(
        store.add_unconfirmed_totp("m1", "u2", "S", 100).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(store.unconfirmed_totp("u2").await.unwrap().is_none());
    assert!(matches!(
        store
            .replace_recovery_codes("nobody", &["h1".into()], 100)
            .await,
        Err(StoreError::NotFound)
    ));
    store
        .replace_recovery_codes("u1", &["h1".into()], 100)
        .await
        .unwrap();
    assert!(matches!(
        store
            .replace_recovery_codes("u1", &["h2".into(), "h2".into()], 100)
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.unused_recovery_codes("u1").await.unwrap(), 1);
    assert!(store.consume_recovery_code("u1", "h1", 110).await.unwrap());
}

pub async fn totp_steps_are_used_once_and_in_order(ctx: Ctx) {
    let store = &ctx.store;
    two_users(&ctx).await;
    store
        .add_unconfirmed_totp("m1", "u1", "S", 100)
        .await
        .unwrap();
    assert!(store.confirm_totp("m1", 1_000, 100).await.unwrap());

    assert!(store.use_totp_step("m1", 1_001).await.unwrap());
    assert!(
        !store.use_totp_step("m1", 1_001).await.unwrap(),
        "the same step is a replay"
    );
    assert!(
        !store.use_totp_step("m1", 1_000).await.unwrap(),
        "an older step is refused"
    );
    assert!(store.use_totp_step("m1", 1_003).await.unwrap());
    assert!(!store.use_totp_step("m1", 1_002).await.unwrap());
    assert!(!store.use_totp_step("nope", 2_000).await.unwrap());
    assert_eq!(
        store
            .confirmed_totp("u1")
            .await
            .unwrap()
            .unwrap()
            .last_used_step,
        Some(1_003)
    );
}

pub async fn concurrent_step_use_has_one_winner(ctx: Ctx) {
    let store = &ctx.store;
    two_users(&ctx).await;
    store
        .add_unconfirmed_totp("m1", "u1", "S", 100)
        .await
        .unwrap();
    assert!(store.confirm_totp("m1", 1, 100).await.unwrap());
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.use_totp_step("m1", 2).await.unwrap() })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1);
}

pub async fn recovery_codes_are_single_use_and_per_user(ctx: Ctx) {
    let store = &ctx.store;
    two_users(&ctx).await;
    let hashes: Vec<String> = (0..3).map(|i| format!("hash-{i}")).collect();
    store
        .replace_recovery_codes("u1", &hashes, 100)
        .await
        .unwrap();
    store
        .replace_recovery_codes("u2", &["hash-of-u2".into()], 100)
        .await
        .unwrap();
    assert_eq!(store.unused_recovery_codes("u1").await.unwrap(), 3);

    assert!(
        store
            .consume_recovery_code("u1", "hash-1", 110)
            .await
            .unwrap()
    );
    assert!(
        !store
            .consume_recovery_code("u1", "hash-1", 120)
            .await
            .unwrap(),
        "single use"
    );
    assert!(
        !store
            .consume_recovery_code("u1", "hash-of-u2", 120)
            .await
            .unwrap(),
        "another user's code"
    );
    assert!(
        !store
            .consume_recovery_code("u2", "hash-0", 120)
            .await
            .unwrap(),
        "another user's code"
    );
    assert!(
        !store
            .consume_recovery_code("u1", "unknown", 120)
            .await
            .unwrap()
    );
    assert_eq!(store.unused_recovery_codes("u1").await.unwrap(), 2);
    assert_eq!(store.unused_recovery_codes("u2").await.unwrap(), 1);

    // New codes replace all the old ones, used or not.
    store
        .replace_recovery_codes("u1", &["fresh".into()], 200)
        .await
        .unwrap();
    assert!(
        !store
            .consume_recovery_code("u1", "hash-0", 210)
            .await
            .unwrap()
    );
    assert!(
        store
            .consume_recovery_code("u1", "fresh", 210)
            .await
            .unwrap()
    );
    assert_eq!(store.unused_recovery_codes("u1").await.unwrap(), 0);
}

pub async fn reset_deletes_only_that_users_mfa(ctx: Ctx) {
    let store = &ctx.store;
    two_users(&ctx).await;
    for (m, u) in [("m1", "u1"), ("m2", "u2")] {
        store.add_unconfirmed_totp(m, u, "S", 100).await.unwrap();
        assert!(store.confirm_totp(m, 1, 100).await.unwrap());
        store
            .replace_recovery_codes(u, &[format!("{u}-a"), format!("{u}-b")], 100)
            .await
            .unwrap();
    }
    store
        .add_unconfirmed_totp("m3", "u1", "S", 110)
        .await
        .unwrap();
    for u in ["u1", "u2"] {
        store
            .set_email_otp_method(u, &format!("{u}@example.com"), 100)
            .await
            .unwrap();
    }
    assert_eq!(
        store.delete_mfa("u1").await.unwrap(),
        MfaReset {
            methods: 2,
            recovery_codes: 2,
            email_methods: 1,
        }
    );
    assert!(store.email_otp_method("u1").await.unwrap().is_none());
    assert!(store.email_otp_method("u2").await.unwrap().is_some());
    assert!(store.confirmed_totp("u1").await.unwrap().is_none());
    assert!(store.unconfirmed_totp("u1").await.unwrap().is_none());
    assert_eq!(store.unused_recovery_codes("u1").await.unwrap(), 0);
    assert!(store.confirmed_totp("u2").await.unwrap().is_some());
    assert_eq!(store.unused_recovery_codes("u2").await.unwrap(), 2);
    // Removing the authenticator alone keeps the recovery codes .
    assert_eq!(store.delete_totp("u2").await.unwrap(), 1);
    assert!(store.confirmed_totp("u2").await.unwrap().is_none());
    assert_eq!(store.unused_recovery_codes("u2").await.unwrap(), 2);
    assert_eq!(store.delete_totp("u2").await.unwrap(), 0);
    assert_eq!(
        store.delete_mfa("u1").await.unwrap(),
        MfaReset {
            methods: 0,
            recovery_codes: 0,
            email_methods: 0,
        }
    );
}

pub async fn deleting_a_user_deletes_their_mfa(ctx: Ctx) {
    let store = &ctx.store;
    two_users(&ctx).await;
    for u in ["u1", "u2"] {
        store
            .add_unconfirmed_totp(&format!("m-{u}"), u, "S", 100)
            .await
            .unwrap();
        store
            .replace_recovery_codes(u, &[format!("{u}-a")], 100)
            .await
            .unwrap();
    }
    // Delete behind the store's back (not with `delete_user`, which deletes MFA itself), to
    // check the foreign keys cascade, with SQLite enforcing them as the store's own
    // connections do.
    let mut raw = sqlx::AnyConnection::connect(&ctx.url).await.unwrap();
    if ctx.url.starts_with("sqlite") {
        raw.execute("PRAGMA foreign_keys = ON").await.unwrap();
    }
    raw.execute("DELETE FROM users WHERE id = 'u1'")
        .await
        .unwrap();
    raw.close().await.unwrap();
    assert!(store.unconfirmed_totp("u1").await.unwrap().is_none());
    assert_eq!(store.unused_recovery_codes("u1").await.unwrap(), 0);
    assert!(store.unconfirmed_totp("u2").await.unwrap().is_some());
    assert_eq!(store.unused_recovery_codes("u2").await.unwrap(), 1);
}
