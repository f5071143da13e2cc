//! Guests, invitations, partners, and the upgrade of a pre-federation database.

use sqlx::{Connection, Executor};
use tenantd_store::{
    Consumption, InvitationState, InvitationStatus, Store, StoreError, User, UserStatus, UserType,
};

use crate::{Ctx, Kind, new_guest, new_user, run_unmigrated};

/// Asserts a Conflict whose message mentions `word`.
fn assert_conflict<T: std::fmt::Debug>(result: Result<T, StoreError>, word: &str) {
    match result {
        Err(StoreError::Conflict(msg)) => assert!(msg.contains(word), "{word:?} not in {msg:?}"),
        other => panic!("expected Conflict about {word}, got {other:?}"),
    }
}

async fn user(ctx: &Ctx, id: &str) -> User {
    ctx.store.user_by_id(id).await.unwrap().unwrap()
}

pub async fn invite_creates_pending_guest(ctx: Ctx) {
    let store = &ctx.store;
    let (guest, invitation) = store
        .invite_guest(
            &new_guest("g1", "Alice@Partner.Example", "p1"),
            "inv1",
            Some("https://app.example/welcome"),
        )
        .await
        .unwrap();
    assert_eq!(guest.id, "g1");
    assert_eq!(guest.email, "alice@partner.example");
    assert_eq!(guest.display_name, "Guest g1");
    assert_eq!(guest.user_type, UserType::Guest);
    assert_eq!(guest.partner_id.as_deref(), Some("p1"));
    assert_eq!(guest.home_subject, None);
    assert_eq!(
        guest.invitation_state,
        Some(InvitationState::PendingAcceptance)
    );
    assert_eq!(guest.password_hash, None);
    assert_eq!(guest.status, UserStatus::Active);
    assert!(!guest.must_change_password);
    assert_eq!((guest.created_at, guest.updated_at), (100, 100));

    assert_eq!(invitation.id, "inv1");
    assert_eq!(invitation.user_id, "g1");
    assert_eq!(invitation.email, "alice@partner.example");
    assert_eq!(invitation.partner_id, "p1");
    assert_eq!(
        invitation.invite_redirect_url.as_deref(),
        Some("https://app.example/welcome")
    );
    assert_eq!(invitation.status, InvitationStatus::PendingAcceptance);
    assert_eq!(invitation.created_at, 100);
    assert_eq!(invitation.redeemed_at, None);

    // What was returned is what was stored.
    assert_eq!(user(&ctx, "g1").await, guest);

    // A guest's credentials live at their home: no local password, ever.
    assert_conflict(
        store.set_password("g1", "$argon2id$x", false, 101).await,
        "guest",
    );
    assert_eq!(user(&ctx, "g1").await.password_hash, None);

    // The home's last user_risk claim is kept on the guest for their refreshes.
    let claim = r#"{"level":"high","state":"atRisk","detail":"none","updated_at":5}"#;
    store.set_home_user_risk("g1", Some(claim)).await.unwrap();
    assert_eq!(
        user(&ctx, "g1").await.home_user_risk.as_deref(),
        Some(claim)
    );
    store.set_home_user_risk("g1", None).await.unwrap();
    assert_eq!(user(&ctx, "g1").await.home_user_risk, None);
    assert!(matches!(
        store.set_home_user_risk("nobody", None).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        store.user_by_email("ALICE@partner.example").await.unwrap(),
        Some(guest.clone())
    );
    assert_eq!(
        store.invitation_for_user("g1").await.unwrap(),
        Some(invitation)
    );
    assert_eq!(store.invitation_for_user("nobody").await.unwrap(), None);

    let (_, no_redirect) = store
        .invite_guest(&new_guest("g2", "bob@partner.example", "p1"), "inv2", None)
        .await
        .unwrap();
    assert_eq!(no_redirect.invite_redirect_url, None);
    assert_eq!(
        store
            .invitation_for_user("g2")
            .await
            .unwrap()
            .unwrap()
            .invite_redirect_url,
        None
    );

    // Members are members, with no guest columns.
    store
        .insert_user(&new_user("u1", "u1@example.com"))
        .await
        .unwrap();
    let member = user(&ctx, "u1").await;
    assert_eq!(member.user_type, UserType::Member);
    assert_eq!(
        (
            member.partner_id,
            member.home_subject,
            member.invitation_state
        ),
        (None, None, None)
    );
    let types: Vec<(String, UserType)> = store
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| (u.id, u.user_type))
        .collect();
    assert_eq!(
        types,
        [
            ("g1".to_owned(), UserType::Guest),
            ("g2".to_owned(), UserType::Guest),
            ("u1".to_owned(), UserType::Member),
        ]
    );
}

pub async fn invite_email_and_id_conflicts(ctx: Ctx) {
    let store = &ctx.store;
    store
        .insert_user(&new_user("u1", "bob@example.com"))
        .await
        .unwrap();

    // A member's email, in another case.
    assert_conflict(
        store
            .invite_guest(&new_guest("g1", "BOB@Example.com", "p1"), "inv1", None)
            .await,
        "email",
    );
    assert_eq!(store.user_by_id("g1").await.unwrap(), None);
    assert_eq!(store.invitation_for_user("g1").await.unwrap(), None);

    // Another guest's email, and a member's insert with a guest's email.
    store
        .invite_guest(
            &new_guest("g1", "carol@partner.example", "p1"),
            "inv1",
            None,
        )
        .await
        .unwrap();
    assert_conflict(
        store
            .invite_guest(
                &new_guest("g2", "Carol@partner.example", "p2"),
                "inv2",
                None,
            )
            .await,
        "email",
    );
    assert_conflict(
        store
            .insert_user(&new_user("u2", "carol@PARTNER.example"))
            .await,
        "email",
    );

    // A taken user id.
    assert_conflict(
        store
            .invite_guest(&new_guest("g1", "dave@partner.example", "p1"), "inv3", None)
            .await,
        "id",
    );
    // A taken invitation id: the guest row of the same transaction is not left behind.
    assert_conflict(
        store
            .invite_guest(&new_guest("g3", "erin@partner.example", "p1"), "inv1", None)
            .await,
        "invitation",
    );
    assert_eq!(store.user_by_id("g3").await.unwrap(), None);
    assert_eq!(
        store.user_by_email("erin@partner.example").await.unwrap(),
        None
    );
    assert_eq!(
        store
            .invitation_for_user("g1")
            .await
            .unwrap()
            .unwrap()
            .user_id,
        "g1",
        "the existing invitation is untouched"
    );
    assert_eq!(store.list_users().await.unwrap().len(), 2);

    // After all that, the store still writes (the failed transactions released the write turn).
    store
        .invite_guest(&new_guest("g3", "erin@partner.example", "p1"), "inv3", None)
        .await
        .unwrap();
}

pub async fn redeem_binds_once(ctx: Ctx) {
    let store = &ctx.store;
    store
        .insert_user(&new_user("u1", "u1@example.com"))
        .await
        .unwrap();
    store
        .invite_guest(&new_guest("g1", "g1@partner.example", "p1"), "inv1", None)
        .await
        .unwrap();
    store
        .invite_guest(&new_guest("g2", "g2@partner.example", "p1"), "inv2", None)
        .await
        .unwrap();
    store
        .invite_guest(&new_guest("g3", "g3@other.example", "p2"), "inv3", None)
        .await
        .unwrap();
    assert_eq!(
        store.guest_by_home_subject("p1", "sub-1").await.unwrap(),
        None
    );

    let bound = store
        .redeem_invitation("g1", "p1", "sub-1", 200)
        .await
        .unwrap();
    assert_eq!(bound.home_subject.as_deref(), Some("sub-1"));
    assert_eq!(bound.invitation_state, Some(InvitationState::Accepted));
    assert_eq!(bound.user_type, UserType::Guest);
    assert_eq!(bound.partner_id.as_deref(), Some("p1"));
    assert_eq!((bound.created_at, bound.updated_at), (100, 200));
    assert_eq!(user(&ctx, "g1").await, bound);
    let invitation = store.invitation_for_user("g1").await.unwrap().unwrap();
    assert_eq!(invitation.status, InvitationStatus::Completed);
    assert_eq!(invitation.redeemed_at, Some(200));

    // Found by the home identity, and only by that exact pair.
    assert_eq!(
        store.guest_by_home_subject("p1", "sub-1").await.unwrap(),
        Some(bound.clone())
    );
    assert_eq!(
        store.guest_by_home_subject("p2", "sub-1").await.unwrap(),
        None
    );
    assert_eq!(
        store.guest_by_home_subject("p1", "sub-2").await.unwrap(),
        None
    );

    // Bound once: the same identity again (two first sign-ins at once) gets the guest
    // unchanged; another identity cannot rebind it.
    assert_eq!(
        store
            .redeem_invitation("g1", "p1", "sub-1", 300)
            .await
            .unwrap(),
        bound
    );
    assert_conflict(
        store.redeem_invitation("g1", "p1", "sub-9", 300).await,
        "already redeemed",
    );
    assert_eq!(user(&ctx, "g1").await, bound);
    assert_eq!(
        store.invitation_for_user("g1").await.unwrap().unwrap(),
        invitation
    );

    // Another partner's identity cannot redeem a p1 guest.
    assert_conflict(
        store.redeem_invitation("g2", "p2", "sub-2", 300).await,
        "another partner",
    );
    // The identity bound to g1 cannot be bound to g2 too.
    assert_conflict(
        store.redeem_invitation("g2", "p1", "sub-1", 300).await,
        "already bound",
    );
    let g2 = user(&ctx, "g2").await;
    assert_eq!(g2.home_subject, None);
    assert_eq!(
        g2.invitation_state,
        Some(InvitationState::PendingAcceptance)
    );
    assert_eq!(g2.updated_at, 100);
    let inv2 = store.invitation_for_user("g2").await.unwrap().unwrap();
    assert_eq!(
        (inv2.status, inv2.redeemed_at),
        (InvitationStatus::PendingAcceptance, None)
    );

    // A member is never redeemed; an unknown user is not found.
    assert_conflict(
        store.redeem_invitation("u1", "p1", "sub-3", 300).await,
        "not a guest",
    );
    let member = user(&ctx, "u1").await;
    assert_eq!(
        (
            member.home_subject,
            member.invitation_state,
            member.updated_at
        ),
        (None, None, 100)
    );
    assert!(matches!(
        store.redeem_invitation("nobody", "p1", "sub-4", 300).await,
        Err(StoreError::NotFound)
    ));

    // The same `sub` at another partner is another identity; g2 can still take a free one.
    let g3 = store
        .redeem_invitation("g3", "p2", "sub-1", 400)
        .await
        .unwrap();
    assert_eq!(
        store.guest_by_home_subject("p2", "sub-1").await.unwrap(),
        Some(g3)
    );
    store
        .redeem_invitation("g2", "p1", "sub-2", 400)
        .await
        .unwrap();
    assert_eq!(
        store
            .guest_by_home_subject("p1", "sub-2")
            .await
            .unwrap()
            .unwrap()
            .id,
        "g2"
    );
    assert_eq!(
        store
            .guest_by_home_subject("p1", "sub-1")
            .await
            .unwrap()
            .unwrap()
            .id,
        "g1"
    );
}

pub async fn latest_invitation_and_all_pending_completed(ctx: Ctx) {
    let store = &ctx.store;
    store
        .invite_guest(&new_guest("g1", "g1@partner.example", "p1"), "inv-a", None)
        .await
        .unwrap();
    // A re-sent invitation for the same guest (the store's API makes one per guest; the
    // server may add more later).
    let mut raw = sqlx::AnyConnection::connect(&ctx.url).await.unwrap();
    raw.execute(
        "INSERT INTO invitations (id, user_id, email, partner_id, invite_redirect_url, status, \
         created_at, redeemed_at) VALUES ('inv-b', 'g1', 'g1@partner.example', 'p1', \
         'https://app.example/again', 'PendingAcceptance', 150, NULL)",
    )
    .await
    .unwrap();
    raw.close().await.unwrap();

    let latest = store.invitation_for_user("g1").await.unwrap().unwrap();
    assert_eq!(latest.id, "inv-b");
    assert_eq!(
        latest.invite_redirect_url.as_deref(),
        Some("https://app.example/again")
    );

    store
        .redeem_invitation("g1", "p1", "sub-1", 200)
        .await
        .unwrap();
    let latest = store.invitation_for_user("g1").await.unwrap().unwrap();
    assert_eq!(
        (latest.id.as_str(), latest.status, latest.redeemed_at),
        ("inv-b", InvitationStatus::Completed, Some(200))
    );
    // The older one is completed too.
    let mut raw = sqlx::AnyConnection::connect(&ctx.url).await.unwrap();
    let (status, redeemed_at): (String, Option<i64>) =
        sqlx::query_as("SELECT status, redeemed_at FROM invitations WHERE id = 'inv-a'")
            .fetch_one(&mut raw)
            .await
            .unwrap();
    raw.close().await.unwrap();
    assert_eq!((status.as_str(), redeemed_at), ("Completed", Some(200)));
}

pub async fn profile_refresh(ctx: Ctx) {
    let store = &ctx.store;
    store
        .insert_user(&new_user("u1", "taken@example.com"))
        .await
        .unwrap();
    store
        .invite_guest(&new_guest("g1", "old@partner.example", "p1"), "inv1", None)
        .await
        .unwrap();
    store
        .redeem_invitation("g1", "p1", "sub-1", 150)
        .await
        .unwrap();

    store
        .refresh_guest_profile(
            "g1",
            "New@Partner.Example",
            "Alice New",
            Some("Alice"),
            Some("New"),
            200,
        )
        .await
        .unwrap();
    let refreshed = user(&ctx, "g1").await;
    assert_eq!(refreshed.email, "new@partner.example");
    assert_eq!(refreshed.display_name, "Alice New");
    assert_eq!(refreshed.given_name.as_deref(), Some("Alice"));
    assert_eq!(refreshed.family_name.as_deref(), Some("New"));
    assert_eq!(refreshed.updated_at, 200);
    // The binding is untouched.
    assert_eq!(refreshed.user_type, UserType::Guest);
    assert_eq!(refreshed.home_subject.as_deref(), Some("sub-1"));
    assert_eq!(refreshed.invitation_state, Some(InvitationState::Accepted));
    assert_eq!(
        store.user_by_email("NEW@partner.example").await.unwrap(),
        Some(refreshed.clone())
    );
    assert_eq!(
        store.user_by_email("old@partner.example").await.unwrap(),
        None
    );

    // Names the home no longer sends are cleared.
    store
        .refresh_guest_profile("g1", "new@partner.example", "Alice", None, None, 250)
        .await
        .unwrap();
    let cleared = user(&ctx, "g1").await;
    assert_eq!((cleared.given_name, cleared.family_name), (None, None));
    assert_eq!(cleared.updated_at, 250);
    let before = user(&ctx, "g1").await;

    // Another user's email: conflict, nothing changed.
    assert_conflict(
        store
            .refresh_guest_profile("g1", "TAKEN@example.com", "Mallory", Some("M"), None, 300)
            .await,
        "email",
    );
    assert_eq!(user(&ctx, "g1").await, before);
    assert_eq!(user(&ctx, "u1").await.display_name, "User u1");

    // Only guests: a member's profile is not refreshed from a partner.
    assert!(matches!(
        store
            .refresh_guest_profile("u1", "x@example.com", "X", None, None, 300)
            .await,
        Err(StoreError::NotFound)
    ));
    let member = user(&ctx, "u1").await;
    assert_eq!(
        (member.email.as_str(), member.updated_at),
        ("taken@example.com", 100)
    );
    assert!(matches!(
        store
            .refresh_guest_profile("nobody", "y@example.com", "Y", None, None, 300)
            .await,
        Err(StoreError::NotFound)
    ));
}

pub async fn corrupt_guest_columns_are_reported(ctx: Ctx) {
    let store = &ctx.store;
    store
        .invite_guest(&new_guest("g1", "g1@partner.example", "p1"), "inv1", None)
        .await
        .unwrap();
    store
        .invite_guest(&new_guest("g2", "g2@partner.example", "p1"), "inv2", None)
        .await
        .unwrap();
    let mut raw = sqlx::AnyConnection::connect(&ctx.url).await.unwrap();
    raw.execute("UPDATE users SET user_type = 'robot' WHERE id = 'g1'")
        .await
        .unwrap();
    raw.execute("UPDATE users SET invitation_state = 'maybe' WHERE id = 'g2'")
        .await
        .unwrap();
    raw.execute("UPDATE invitations SET status = 'Lost' WHERE id = 'inv1'")
        .await
        .unwrap();
    raw.close().await.unwrap();

    for (id, bad) in [("g1", "robot"), ("g2", "maybe")] {
        let err = store.user_by_id(id).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt(m) if m.contains(bad)),
            "{err:?}"
        );
    }
    let err = store.invitation_for_user("g1").await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt(m) if m.contains("Lost")),
        "{err:?}"
    );
}

pub async fn partners_upsert_list_delete(ctx: Ctx) {
    let store = &ctx.store;
    assert!(store.list_partners().await.unwrap().is_empty());
    store
        .upsert_partner("zeta", r#"{"issuer":"https://z"}"#, 100)
        .await
        .unwrap();
    store
        .upsert_partner("alpha", r#"{"issuer":"https://a"}"#, 100)
        .await
        .unwrap();
    store
        .upsert_partner("zeta", r#"{"issuer":"https://z2"}"#, 200)
        .await
        .unwrap();
    assert_eq!(
        store.list_partners().await.unwrap(),
        [
            ("alpha".to_owned(), r#"{"issuer":"https://a"}"#.to_owned()),
            ("zeta".to_owned(), r#"{"issuer":"https://z2"}"#.to_owned()),
        ]
    );
    // The upsert kept the creation time and moved the update time.
    let mut raw = sqlx::AnyConnection::connect(&ctx.url).await.unwrap();
    let times: (i64, i64) =
        sqlx::query_as("SELECT created_at, updated_at FROM partners WHERE id = 'zeta'")
            .fetch_one(&mut raw)
            .await
            .unwrap();
    raw.close().await.unwrap();
    assert_eq!(times, (100, 200));

    // Deleting a partner keeps its guests.
    store
        .invite_guest(&new_guest("g1", "g1@z.example", "zeta"), "inv1", None)
        .await
        .unwrap();
    assert!(store.delete_partner("zeta").await.unwrap());
    assert!(!store.delete_partner("zeta").await.unwrap());
    assert!(!store.delete_partner("never").await.unwrap());
    assert_eq!(
        store.list_partners().await.unwrap(),
        [("alpha".to_owned(), r#"{"issuer":"https://a"}"#.to_owned())]
    );
    assert_eq!(user(&ctx, "g1").await.partner_id.as_deref(), Some("zeta"));
    // Apps are a separate table.
    assert!(store.app_records().await.unwrap().is_empty());
}

// ---- upgrade: a database at migration 0001, with data, opened by this version ----

/// Applies only `0001_initial.sql` (the same bytes, so the same checksum) and adds rows the
/// way the previous version wrote them; then `Store::connect` applies the rest.
async fn existing_rows_survive_upgrade(url: String) {
    let only_first = std::env::temp_dir().join(crate::unique("tenantd_migrations"));
    std::fs::create_dir_all(&only_first).unwrap();
    let first =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/0001_initial.sql");
    std::fs::copy(&first, only_first.join("0001_initial.sql")).unwrap();
    let migrator = sqlx::migrate::Migrator::new(only_first.as_path())
        .await
        .unwrap();
    {
        let old = crate::raw_pool(&url).await;
        migrator.run(&old).await.unwrap();
        for sql in [
            "INSERT INTO users (id, email, display_name, given_name, family_name, \
             password_hash, status, must_change_password, created_at, updated_at) \
             VALUES ('u1', 'u1@example.com', 'User 1', NULL, NULL, 'hash', 'active', 0, 1, 2)",
            "INSERT INTO sessions (id, token_hash, user_id, auth_time, amr, acr, created_at, \
             expires_at, revoked_at) VALUES ('s1', 'h1', 'u1', 1, '[\"pwd\"]', NULL, 1, 5000, \
             NULL)",
            "INSERT INTO interactions (id, request_json, created_at, expires_at) \
             VALUES ('i1', '{}', 1, 5000)",
        ] {
            old.execute(sql).await.unwrap();
        }
        old.close().await;
    }
    std::fs::remove_dir_all(&only_first).unwrap();

    let store = Store::connect(&url, crate::sealer()).await.unwrap();
    let u1 = store.user_by_id("u1").await.unwrap().unwrap();
    assert_eq!(u1.user_type, UserType::Member);
    assert_eq!(
        (u1.partner_id, u1.home_subject, u1.invitation_state),
        (None, None, None)
    );
    assert_eq!((u1.created_at, u1.updated_at), (1, 2));
    let s1 = store
        .session_by_token_hash("h1", 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s1.federation_json, None);
    assert_eq!(s1.amr, ["pwd"]);
    assert!(store.interaction("i1", 100).await.unwrap().is_some());
    assert!(matches!(
        store.consume_interaction("i1", 100).await.unwrap(),
        Consumption::Consumed(_)
    ));
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_from_0001_sqlite() {
    run_unmigrated(Kind::Sqlite, existing_rows_survive_upgrade).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_from_0001_postgres() {
    run_unmigrated(Kind::Postgres, existing_rows_survive_upgrade).await;
}
