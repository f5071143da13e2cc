//! Codes sent by email: the address, the live code per purpose, the development outbox.

use tenantd_store::{EmailOtp, OutboxMail, StoreError};

use crate::{Ctx, new_user};

async fn two_users(ctx: &Ctx) {
    for (id, email) in [("u1", "u1@example.com"), ("u2", "u2@example.com")] {
        ctx.store.insert_user(&new_user(id, email)).await.unwrap();
    }
}

fn otp(user_id: &str, purpose: &str, hash: &str, created_at: i64) -> EmailOtp {
    EmailOtp {
        user_id: user_id.to_owned(),
        purpose: purpose.to_owned(),
        email: format!("{user_id}@example.com"),
        code_hash: hash.to_owned(),
        created_at,
        expires_at: created_at + 600,
        attempts: 0,
    }
}

pub async fn the_address_is_one_per_user_and_a_change_voids_its_codes(ctx: Ctx) {
    let store = &ctx.store;
    two_users(&ctx).await;
    assert!(store.email_otp_method("u1").await.unwrap().is_none());
    assert!(matches!(
        store
            .set_email_otp_method("nobody", "x@example.com", 100)
            .await,
        Err(StoreError::NotFound)
    ));
    let m = store
        .set_email_otp_method("u1", "U1@Example.com", 100)
        .await
        .unwrap();
    assert_eq!(m.email, "u1@example.com", "lowercased");
    assert_eq!(store.email_otp_method("u1").await.unwrap(), Some(m));
    store
        .put_email_otp(&otp("u1", "signIn", "h1", 100))
        .await
        .unwrap();
    // The same address again keeps its code; another one voids it.
    store
        .set_email_otp_method("u1", "u1@example.com", 110)
        .await
        .unwrap();
    assert!(store.email_otp("u1", "signIn").await.unwrap().is_some());
    let changed = store
        .set_email_otp_method("u1", "other@example.com", 120)
        .await
        .unwrap();
    assert_eq!(changed.email, "other@example.com");
    assert_eq!(changed.created_at, 120);
    assert!(store.email_otp("u1", "signIn").await.unwrap().is_none());
    assert!(store.email_otp_method("u2").await.unwrap().is_none());

    store
        .put_email_otp(&EmailOtp {
            email: "other@example.com".into(),
            ..otp("u1", "signIn", "h2", 130)
        })
        .await
        .unwrap();
    assert!(store.delete_email_otp_method("u1").await.unwrap());
    assert!(!store.delete_email_otp_method("u1").await.unwrap());
    assert!(store.email_otp_method("u1").await.unwrap().is_none());
    assert!(
        store.email_otp("u1", "signIn").await.unwrap().is_none(),
        "its codes go with it"
    );
}

pub async fn a_new_code_replaces_the_old_and_is_spent_once(ctx: Ctx) {
    let store = &ctx.store;
    two_users(&ctx).await;
    assert!(matches!(
        store
            .put_email_otp(&otp("nobody", "signIn", "h", 100))
            .await,
        Err(StoreError::NotFound)
    ));
    store
        .put_email_otp(&otp("u1", "signIn", "h1", 100))
        .await
        .unwrap();
    store
        .put_email_otp(&otp("u1", "passwordReset", "h-reset", 100))
        .await
        .unwrap();
    store
        .put_email_otp(&otp("u2", "signIn", "h-u2", 100))
        .await
        .unwrap();
    // Two tries at the first code, then a new one: the count starts again.
    for n in 1..=2 {
        let counted = store
            .count_email_otp_attempt("u1", "signIn")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(counted.attempts, n);
        assert_eq!(counted.code_hash, "h1");
    }
    store
        .put_email_otp(&otp("u1", "signIn", "h2", 150))
        .await
        .unwrap();
    let live = store.email_otp("u1", "signIn").await.unwrap().unwrap();
    assert_eq!(live, otp("u1", "signIn", "h2", 150));
    assert!(
        !store.consume_email_otp("u1", "signIn", "h1").await.unwrap(),
        "the replaced code is void"
    );
    assert!(
        !store.consume_email_otp("u2", "signIn", "h2").await.unwrap(),
        "another user's"
    );
    assert!(
        !store
            .consume_email_otp("u1", "passwordReset", "h2")
            .await
            .unwrap(),
        "another purpose's"
    );
    assert!(store.consume_email_otp("u1", "signIn", "h2").await.unwrap());
    assert!(
        !store.consume_email_otp("u1", "signIn", "h2").await.unwrap(),
        "spent"
    );
    assert!(
        store
            .count_email_otp_attempt("u1", "signIn")
            .await
            .unwrap()
            .is_none()
    );
    // The other purpose and user are untouched.
    assert!(
        store
            .email_otp("u1", "passwordReset")
            .await
            .unwrap()
            .is_some()
    );
    store.delete_email_otp("u1", "passwordReset").await.unwrap();
    assert!(
        store
            .email_otp("u1", "passwordReset")
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.email_otp("u2", "signIn").await.unwrap().is_some());
}

pub async fn concurrent_tries_are_each_counted_and_one_spends_the_code(ctx: Ctx) {
    let store = ctx.store.clone();
    two_users(&ctx).await;
    store
        .put_email_otp(&otp("u1", "signIn", "h1", 100))
        .await
        .unwrap();
    let tries = (0..8).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            let counted = store.count_email_otp_attempt("u1", "signIn").await.unwrap();
            let spent = store.consume_email_otp("u1", "signIn", "h1").await.unwrap();
            (counted.map(|c| c.attempts), spent)
        })
    });
    let mut spent = 0;
    let mut counts = Vec::new();
    for t in tries {
        let (count, won) = t.await.unwrap();
        counts.extend(count);
        spent += usize::from(won);
    }
    assert_eq!(spent, 1);
    // Every try that found the code was counted once: the counts are 1, 2, ... without a gap
    // or a repeat (the tries after the spending one find no code).
    counts.sort_unstable();
    let expected: Vec<i64> = (1..=i64::try_from(counts.len()).unwrap()).collect();
    assert_eq!(counts, expected);
}

pub async fn the_outbox_lists_newest_first_and_purges(ctx: Ctx) {
    let store = &ctx.store;
    two_users(&ctx).await;
    let mail = |id: &str, created_at: i64| OutboxMail {
        id: id.to_owned(),
        recipient: "u1@example.com".to_owned(),
        subject: format!("subject {id}"),
        body: format!("body {id}\nline two"),
        created_at,
        expires_at: created_at + 1_000,
    };
    assert!(store.outbox_mail(10).await.unwrap().is_empty());
    for (id, at) in [("a", 100), ("c", 300), ("b", 200), ("d", 300)] {
        store.add_outbox_mail(&mail(id, at)).await.unwrap();
    }
    assert!(matches!(
        store.add_outbox_mail(&mail("a", 500)).await,
        Err(StoreError::Conflict(_))
    ));
    let listed = store.outbox_mail(10).await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["d", "c", "b", "a"]);
    assert_eq!(listed[3], mail("a", 100));
    assert_eq!(store.outbox_mail(2).await.unwrap().len(), 2);

    // Expired codes and outbox mail are purged; live ones stay.
    store
        .put_email_otp(&otp("u1", "signIn", "h", 500))
        .await
        .unwrap();
    store
        .put_email_otp(&otp("u2", "signIn", "h", 1_000))
        .await
        .unwrap();
    assert_eq!(
        store.purge_expired(1_200).await.unwrap(),
        3,
        "a, b, u1's code"
    );
    let ids: Vec<String> = store
        .outbox_mail(10)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(ids, ["d", "c"]);
    assert!(store.email_otp("u1", "signIn").await.unwrap().is_none());
    assert!(store.email_otp("u2", "signIn").await.unwrap().is_some());
}

pub async fn deleting_a_user_deletes_their_address_and_codes(ctx: Ctx) {
    let store = &ctx.store;
    two_users(&ctx).await;
    for u in ["u1", "u2"] {
        store
            .set_email_otp_method(u, &format!("{u}@example.com"), 100)
            .await
            .unwrap();
        store
            .put_email_otp(&otp(u, "signIn", "h", 100))
            .await
            .unwrap();
    }
    assert!(store.delete_user("u1").await.unwrap().is_some());
    assert!(store.email_otp_method("u1").await.unwrap().is_none());
    assert!(store.email_otp("u1", "signIn").await.unwrap().is_none());
    assert!(store.email_otp_method("u2").await.unwrap().is_some());
    assert!(store.email_otp("u2", "signIn").await.unwrap().is_some());
}
