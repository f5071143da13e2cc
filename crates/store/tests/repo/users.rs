//! Users, apps and consents.

use tenantd_store::{StoreError, UserStatus};

use crate::{Ctx, new_user};

pub async fn duplicate_email_conflicts(ctx: Ctx) {
    let store = &ctx.store;
    store
        .insert_user(&new_user("u1", "alice@example.com"))
        .await
        .unwrap();

    let err = store
        .insert_user(&new_user("u2", "ALICE@Example.com"))
        .await
        .unwrap_err();
    match err {
        StoreError::Conflict(msg) => assert!(msg.contains("email"), "{msg}"),
        other => panic!("expected Conflict, got {other:?}"),
    }
    let err = store
        .insert_user(&new_user("u1", "someone-else@example.com"))
        .await
        .unwrap_err();
    match err {
        StoreError::Conflict(msg) => assert!(msg.contains("id"), "{msg}"),
        other => panic!("expected Conflict, got {other:?}"),
    }
    let users = store.list_users().await.unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].id, "u1");
}

pub async fn email_lookup_is_case_insensitive(ctx: Ctx) {
    let store = &ctx.store;
    let created = store
        .insert_user(&new_user("u1", "Bob@Example.COM"))
        .await
        .unwrap();
    assert_eq!(created.email, "bob@example.com");
    assert_eq!(created.status, UserStatus::Active);

    for spelling in ["bob@example.com", "BOB@EXAMPLE.COM", "Bob@Example.COM"] {
        let found = store.user_by_email(spelling).await.unwrap().unwrap();
        assert_eq!(found, created, "lookup by {spelling}");
    }
    assert_eq!(store.user_by_id("u1").await.unwrap().unwrap(), created);
    assert!(
        store
            .user_by_email("bob@example.org")
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.user_by_id("nobody").await.unwrap().is_none());
    // Debug never shows the password hash.
    assert!(!format!("{created:?}").contains("argon2"));
}

pub async fn list_status_and_password(ctx: Ctx) {
    let store = &ctx.store;
    store
        .insert_user(&new_user("u1", "carol@example.com"))
        .await
        .unwrap();
    store
        .insert_user(&new_user("u2", "alice@example.com"))
        .await
        .unwrap();
    let mut guest = new_user("u3", "bob@partner.example");
    guest.password_hash = None;
    guest.given_name = None;
    guest.must_change_password = true;
    store.insert_user(&guest).await.unwrap();

    let emails: Vec<String> = store
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.email)
        .collect();
    assert_eq!(
        emails,
        [
            "alice@example.com",
            "bob@partner.example",
            "carol@example.com"
        ]
    );

    let read = store.user_by_id("u3").await.unwrap().unwrap();
    assert_eq!(read.password_hash, None);
    assert_eq!(read.given_name, None);
    assert!(read.must_change_password);

    store
        .set_user_status("u1", UserStatus::Disabled, 200)
        .await
        .unwrap();
    let u1 = store.user_by_id("u1").await.unwrap().unwrap();
    assert_eq!(u1.status, UserStatus::Disabled);
    assert_eq!(u1.updated_at, 200);
    assert_eq!(u1.created_at, 100);
    store
        .set_user_status("u1", UserStatus::Active, 201)
        .await
        .unwrap();
    assert_eq!(
        store.user_by_id("u1").await.unwrap().unwrap().status,
        UserStatus::Active
    );
    assert!(matches!(
        store
            .set_user_status("nobody", UserStatus::Disabled, 200)
            .await,
        Err(StoreError::NotFound)
    ));

    store
        .set_password("u2", "$argon2id$new", true, 300)
        .await
        .unwrap();
    let u2 = store.user_by_id("u2").await.unwrap().unwrap();
    assert_eq!(u2.password_hash.as_deref(), Some("$argon2id$new"));
    assert!(u2.must_change_password);
    assert_eq!(u2.updated_at, 300);
    store
        .set_password("u2", "$argon2id$newer", false, 301)
        .await
        .unwrap();
    assert!(
        !store
            .user_by_id("u2")
            .await
            .unwrap()
            .unwrap()
            .must_change_password
    );
    assert!(matches!(
        store.set_password("nobody", "x", false, 300).await,
        Err(StoreError::NotFound)
    ));
}

pub async fn apps_upsert_list_delete(ctx: Ctx) {
    let store = &ctx.store;
    assert!(store.list_apps().await.unwrap().is_empty());
    store
        .upsert_app("zeta", r#"{"name":"Z"}"#, 100)
        .await
        .unwrap();
    store
        .upsert_app("alpha", r#"{"name":"A"}"#, 100)
        .await
        .unwrap();
    store
        .upsert_app("zeta", r#"{"name":"Z2"}"#, 200)
        .await
        .unwrap();
    assert_eq!(
        store.list_apps().await.unwrap(),
        [
            ("alpha".to_owned(), r#"{"name":"A"}"#.to_owned()),
            ("zeta".to_owned(), r#"{"name":"Z2"}"#.to_owned()),
        ]
    );
    assert!(store.delete_app("zeta").await.unwrap());
    assert!(!store.delete_app("zeta").await.unwrap());
    assert_eq!(store.list_apps().await.unwrap().len(), 1);
}

pub async fn consent_grows_by_union(ctx: Ctx) {
    let store = &ctx.store;
    store
        .insert_user(&new_user("u1", "u1@example.com"))
        .await
        .unwrap();
    assert_eq!(store.consent("u1", "app-1").await.unwrap(), None);

    store
        .grant_consent("u1", "app-1", "openid  profile openid", 100)
        .await
        .unwrap();
    assert_eq!(
        store.consent("u1", "app-1").await.unwrap().as_deref(),
        Some("openid profile")
    );

    store
        .grant_consent("u1", "app-1", "email openid", 200)
        .await
        .unwrap();
    assert_eq!(
        store.consent("u1", "app-1").await.unwrap().as_deref(),
        Some("openid profile email")
    );
    assert_eq!(store.consent("u1", "app-2").await.unwrap(), None);
    assert_eq!(store.consent("u2", "app-1").await.unwrap(), None);
}
