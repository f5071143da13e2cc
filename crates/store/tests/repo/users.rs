//! Users, apps and consents.

use tenantd_store::{AppRecord, AppSource, StoreError, UserStatus};

use crate::{Ctx, new_user, user_with_grant};

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
    assert!(store.delete_app("zeta", 300).await.unwrap());
    assert!(!store.delete_app("zeta", 300).await.unwrap());
    assert_eq!(store.list_apps().await.unwrap().len(), 1);
}

fn registered(client_id: &str, source: AppSource, at: i64) -> AppRecord {
    AppRecord {
        client_id: client_id.to_owned(),
        config_json: format!(r#"{{"name":"{client_id}"}}"#),
        source,
        secrets: "[]".to_owned(),
        registration_token_hash: (source == AppSource::Dynamic).then(|| "rat".to_owned()),
        created_at: at,
        updated_at: at,
    }
}

pub async fn registered_apps_live_beside_config_apps(ctx: Ctx) {
    let store = &ctx.store;
    let file = |ids: &[&str]| -> Vec<(String, String)> {
        ids.iter()
            .map(|id| ((*id).to_owned(), format!(r#"{{"name":"{id}"}}"#)))
            .collect()
    };
    store
        .sync_config_apps(&file(&["old", "kept"]), 100)
        .await
        .unwrap();
    store
        .insert_app(&registered("api-1", AppSource::Api, 100))
        .await
        .unwrap();
    store
        .insert_app(&registered("dyn-1", AppSource::Dynamic, 100))
        .await
        .unwrap();
    // A taken client id, whatever its source, changes nothing.
    for taken in ["api-1", "kept"] {
        assert!(matches!(
            store
                .insert_app(&registered(taken, AppSource::Api, 150))
                .await,
            Err(StoreError::Conflict(_))
        ));
    }
    // The next start: "old" left the file; registered apps stay.
    store
        .sync_config_apps(&file(&["kept", "new"]), 200)
        .await
        .unwrap();
    let ids: Vec<(String, AppSource)> = store
        .app_records()
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.client_id, a.source))
        .collect();
    assert_eq!(
        ids,
        [
            ("api-1".to_owned(), AppSource::Api),
            ("dyn-1".to_owned(), AppSource::Dynamic),
            ("kept".to_owned(), AppSource::Config),
            ("new".to_owned(), AppSource::Config),
        ]
    );
    // A file app with a registered app's id is refused, and nothing of the file is written.
    let e = store
        .sync_config_apps(&file(&["kept", "api-1", "newer"]), 300)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, StoreError::Conflict(m) if m.contains("api-1")),
        "{e}"
    );
    assert!(store.app_record("newer").await.unwrap().is_none());
    assert_eq!(
        store.app_record("dyn-1").await.unwrap().unwrap(),
        registered("dyn-1", AppSource::Dynamic, 100)
    );

    // Updates apply to what the caller read, and never to config apps.
    let mut changed = registered("api-1", AppSource::Api, 100);
    changed.config_json = r#"{"name":"renamed"}"#.to_owned();
    changed.updated_at = 400;
    assert!(store.update_app(&changed, 100).await.unwrap());
    assert!(
        !store.update_app(&changed, 100).await.unwrap(),
        "stale read"
    );
    let mut config = registered("kept", AppSource::Api, 200);
    config.updated_at = 500;
    assert!(!store.update_app(&config, 200).await.unwrap(), "read-only");
    assert_eq!(
        store
            .app_record("api-1")
            .await
            .unwrap()
            .unwrap()
            .config_json,
        r#"{"name":"renamed"}"#
    );
}

pub async fn deleting_an_app_revokes_its_grants(ctx: Ctx) {
    let store = &ctx.store;
    store
        .insert_app(&registered("app-1", AppSource::Api, 100))
        .await
        .unwrap();
    user_with_grant(store).await;
    assert!(store.delete_app("app-1", 300).await.unwrap());
    assert_eq!(
        store.grant("g1").await.unwrap().unwrap().revoked_at,
        Some(300)
    );
    assert!(store.app_record("app-1").await.unwrap().is_none());
    assert!(!store.delete_app("app-1", 400).await.unwrap());
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
