//! Users, apps and consents.

use sqlx::Connection;
use tenantd_store::{
    AppRecord, AppSource, DetectionRecord, RiskChange, StoreError, UserCondition, UserPageQuery,
    UserRiskRecord, UserStatus, UserType, UserUpdate,
};

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

pub async fn user_read_by_email_with_their_risk(ctx: Ctx) {
    let store = &ctx.store;
    let created = store
        .insert_user(&new_user("u1", "Bob@Example.COM"))
        .await
        .unwrap();
    assert_eq!(
        store
            .user_with_risk_by_email("bob@example.org")
            .await
            .unwrap(),
        None
    );
    let read = store
        .user_with_risk_by_email("BOB@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.user, created);
    assert_eq!((read.user_risk, read.sign_ins_version), (None, 0));
    assert_eq!(read.leak_fingerprint, None);

    let risk = crate::at_high_risk_after_a_sign_in(store, "u1").await;
    store.set_leak_fingerprint("u1", "fp-1", 995).await.unwrap();
    let read = store
        .user_with_risk_by_email("bob@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.user, created);
    assert_eq!(read.user_risk, Some(risk));
    assert_eq!(
        read.sign_ins_version,
        store.sign_ins_version("u1").await.unwrap()
    );
    assert_ne!(read.sign_ins_version, 0);
    assert_eq!(read.leak_fingerprint, Some(("fp-1".to_owned(), 995)));
    assert_eq!(
        read.leak_fingerprint,
        store.leak_fingerprint("u1").await.unwrap()
    );
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
    let texts = |records: Vec<AppRecord>| -> Vec<(String, String)> {
        records
            .into_iter()
            .map(|a| (a.client_id, a.config_json))
            .collect()
    };
    assert!(store.app_records().await.unwrap().is_empty());
    let app = |id: &str, json: &str| (id.to_owned(), json.to_owned());
    store
        .sync_config_apps(
            &[
                app("zeta", r#"{"name":"Z"}"#),
                app("alpha", r#"{"name":"A"}"#),
            ],
            100,
        )
        .await
        .unwrap();
    store
        .sync_config_apps(
            &[
                app("zeta", r#"{"name":"Z2"}"#),
                app("alpha", r#"{"name":"A"}"#),
            ],
            200,
        )
        .await
        .unwrap();
    assert_eq!(
        texts(store.app_records().await.unwrap()),
        [
            app("alpha", r#"{"name":"A"}"#),
            app("zeta", r#"{"name":"Z2"}"#)
        ]
    );
    assert!(store.delete_app("zeta", 300).await.unwrap());
    assert!(!store.delete_app("zeta", 300).await.unwrap());
    assert_eq!(store.app_records().await.unwrap().len(), 1);
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

// ---- the admin API's users: pages, updates, deletion ----

fn emails(users: &[tenantd_store::User]) -> Vec<&str> {
    users.iter().map(|u| u.email.as_str()).collect()
}

/// The emails of the users matching `conditions`, sorted here (the store orders by the
/// database's collation, which need not be byte order on PostgreSQL).
async fn page(ctx: &Ctx, conditions: Vec<UserCondition>) -> Vec<String> {
    let users = ctx
        .store
        .list_users_page(&UserPageQuery {
            conditions,
            after_email: None,
            limit: 100,
        })
        .await
        .unwrap();
    let mut emails: Vec<String> = emails(&users).into_iter().map(str::to_owned).collect();
    emails.sort();
    emails
}

pub async fn users_page_filters_and_keyset_paging(ctx: Ctx) {
    let store = &ctx.store;
    for (id, email, name) in [
        ("u1", "ann@example.com", "Ann Archer"),
        ("u2", "an_x@example.com", "Annex"),
        ("u3", "anna@example.com", "anna lee"),
        ("u4", "bob@example.com", "Bob 100%"),
        ("u5", "b%b@example.com", "B\\b"),
    ] {
        let mut u = new_user(id, email);
        u.display_name = name.to_owned();
        store.insert_user(&u).await.unwrap();
    }
    store
        .invite_guest(
            &crate::new_guest("g1", "ann@partner.test", "p1"),
            "i1",
            None,
        )
        .await
        .unwrap();

    let all: Vec<String> = store
        .list_users_page(&UserPageQuery {
            limit: 100,
            ..UserPageQuery::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.email)
        .collect();
    assert_eq!(all.len(), 6);

    // Equality ignores case; a prefix is taken literally (`_` and `%` are no wildcards).
    assert_eq!(
        page(&ctx, vec![UserCondition::EmailIs("ANN@Example.com".into())]).await,
        ["ann@example.com"]
    );
    assert_eq!(
        page(&ctx, vec![UserCondition::EmailStartsWith("AN_".into())]).await,
        ["an_x@example.com"]
    );
    assert_eq!(
        page(&ctx, vec![UserCondition::EmailStartsWith("b%".into())]).await,
        ["b%b@example.com"]
    );
    assert_eq!(
        page(&ctx, vec![UserCondition::EmailStartsWith("ann".into())]).await,
        ["ann@example.com", "ann@partner.test", "anna@example.com"]
    );
    assert_eq!(
        page(&ctx, vec![UserCondition::DisplayNameIs("ANNA LEE".into())]).await,
        ["anna@example.com"]
    );
    assert_eq!(
        page(
            &ctx,
            vec![UserCondition::DisplayNameStartsWith("ann".into())]
        )
        .await,
        ["an_x@example.com", "ann@example.com", "anna@example.com"]
    );
    assert_eq!(
        page(
            &ctx,
            vec![UserCondition::DisplayNameStartsWith("bob 100%".into())]
        )
        .await,
        ["bob@example.com"]
    );
    assert_eq!(
        page(
            &ctx,
            vec![UserCondition::DisplayNameStartsWith("B\\".into())]
        )
        .await,
        ["b%b@example.com"]
    );
    assert!(
        page(&ctx, vec![UserCondition::DisplayNameStartsWith("%".into())])
            .await
            .is_empty()
    );
    assert_eq!(
        page(&ctx, vec![UserCondition::TypeIs(UserType::Guest)]).await,
        ["ann@partner.test"]
    );
    // Conditions are ANDed.
    assert_eq!(
        page(
            &ctx,
            vec![
                UserCondition::EmailStartsWith("ann".into()),
                UserCondition::TypeIs(UserType::Member),
            ]
        )
        .await,
        ["ann@example.com", "anna@example.com"]
    );

    // Keyset pages of 2 cover everyone once, in order, and a user added behind the cursor
    // does not shift the next page.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let users = store
            .list_users_page(&UserPageQuery {
                conditions: vec![],
                after_email: after.clone(),
                limit: 2,
            })
            .await
            .unwrap();
        if users.is_empty() {
            break;
        }
        if seen.is_empty() {
            store
                .insert_user(&new_user("u0", "aaa@example.com"))
                .await
                .unwrap();
        }
        after = users.last().map(|u| u.email.clone());
        seen.extend(users.into_iter().map(|u| u.email));
    }
    assert_eq!(seen, all);
    assert!(
        store
            .list_users_page(&UserPageQuery {
                conditions: vec![],
                after_email: None,
                limit: -1,
            })
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn members_may_be_created_disabled(ctx: Ctx) {
    let store = &ctx.store;
    let u = store
        .insert_member(&new_user("u1", "Off@Example.com"), UserStatus::Disabled)
        .await
        .unwrap();
    assert_eq!(u.status, UserStatus::Disabled);
    assert_eq!(u.user_type, UserType::Member);
    assert_eq!(store.user_by_id("u1").await.unwrap().unwrap(), u);
    assert!(matches!(
        store
            .insert_member(&new_user("u2", "off@example.com"), UserStatus::Active)
            .await,
        Err(StoreError::Conflict(_))
    ));
}

pub async fn update_user_applies_together_and_ends_sign_ins(ctx: Ctx) {
    let store = &ctx.store;
    crate::user_with_grant(store).await;
    // Names only: sign-ins live on.
    let ended = store
        .update_user(
            "u1",
            &UserUpdate {
                display_name: Some("Renamed".into()),
                given_name: Some(None),
                family_name: Some(Some("Family".into())),
                ..UserUpdate::default()
            },
            200,
        )
        .await
        .unwrap();
    assert_eq!(ended, (0, 0));
    let u = store.user_by_id("u1").await.unwrap().unwrap();
    assert_eq!(
        (
            u.display_name.as_str(),
            u.given_name,
            u.family_name.as_deref()
        ),
        ("Renamed", None, Some("Family"))
    );
    assert_eq!(u.updated_at, 200);
    assert!(
        store
            .session_by_id("s1")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none()
    );

    // Disabled with a new temporary password, sessions and grants ended, all at once.
    let ended = store
        .update_user(
            "u1",
            &UserUpdate {
                status: Some(UserStatus::Disabled),
                password: Some(("$argon2id$new".into(), true)),
                end_sign_ins: true,
                ..UserUpdate::default()
            },
            300,
        )
        .await
        .unwrap();
    assert_eq!(ended, (1, 1));
    let u = store.user_by_id("u1").await.unwrap().unwrap();
    assert_eq!(u.status, UserStatus::Disabled);
    assert_eq!(u.password_hash.as_deref(), Some("$argon2id$new"));
    assert!(u.must_change_password);
    assert_eq!(u.display_name, "Renamed", "untouched columns stay");
    assert_eq!(
        store.session_by_id("s1").await.unwrap().unwrap().revoked_at,
        Some(300)
    );
    assert_eq!(
        store.grant("g1").await.unwrap().unwrap().revoked_at,
        Some(300)
    );
    // Debug never shows the hash.
    assert!(
        !format!(
            "{:?}",
            UserUpdate {
                password: Some(("$argon2id$secret".into(), false)),
                ..UserUpdate::default()
            }
        )
        .contains("argon2")
    );

    // A guest has no local password: refused, and nothing else of the update is applied.
    store
        .invite_guest(&crate::new_guest("g1", "g@partner.test", "p1"), "i1", None)
        .await
        .unwrap();
    let before = store.user_by_id("g1").await.unwrap().unwrap();
    let refused = store
        .update_user(
            "g1",
            &UserUpdate {
                display_name: Some("Changed".into()),
                password: Some(("$argon2id$x".into(), false)),
                end_sign_ins: true,
                ..UserUpdate::default()
            },
            400,
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    assert_eq!(store.user_by_id("g1").await.unwrap().unwrap(), before);
    // A guest may be renamed and disabled.
    store
        .update_user(
            "g1",
            &UserUpdate {
                status: Some(UserStatus::Disabled),
                end_sign_ins: true,
                ..UserUpdate::default()
            },
            400,
        )
        .await
        .unwrap();
    assert_eq!(
        store.user_by_id("g1").await.unwrap().unwrap().status,
        UserStatus::Disabled
    );
    assert!(matches!(
        store
            .update_user("nobody", &UserUpdate::default(), 400)
            .await,
        Err(StoreError::NotFound)
    ));
}

/// Rows of `table` whose `column` is `value`, counted behind the store's back.
async fn count(url: &str, table: &str, column: &str, value: &str) -> i64 {
    let mut raw = sqlx::AnyConnection::connect(url).await.unwrap();
    let sql = format!("SELECT COUNT(*) FROM {table} WHERE {column} = $1");
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(value)
        .fetch_one(&mut raw)
        .await
        .unwrap();
    raw.close().await.unwrap();
    n
}

/// Every row that hangs off user `id`: sessions, grants, refresh tokens, consents, MFA, risk,
/// detections, leak fingerprint, invitations.
async fn rows_of(url: &str, id: &str) -> Vec<(&'static str, i64)> {
    let mut out = Vec::new();
    for table in [
        "sessions",
        "grants",
        "consents",
        "mfa_methods",
        "recovery_codes",
        "user_risk",
        "risk_history",
        "risk_detections",
        "leak_fingerprints",
        "invitations",
    ] {
        out.push((table, count(url, table, "user_id", id).await));
    }
    let mut raw = sqlx::AnyConnection::connect(url).await.unwrap();
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM refresh_tokens \
         WHERE grant_id IN (SELECT id FROM grants WHERE user_id = $1)",
    )
    .bind(id)
    .fetch_one(&mut raw)
    .await
    .unwrap();
    raw.close().await.unwrap();
    out.push(("refresh_tokens", n));
    out
}

/// Gives user `id` a row in every table that hangs off users.
async fn everything_for(store: &tenantd_store::Store, id: &str, n: i64) {
    let sid = format!("s-{id}");
    let gid = format!("g-{id}");
    store
        .create_session(&crate::session(&sid, id, 10_000))
        .await
        .unwrap();
    crate::create_grant(store, &crate::grant(&gid, id, Some(&sid), true)).await;
    store
        .insert_refresh_token(&crate::refresh(&format!("r-{id}"), &gid, 10_000))
        .await
        .unwrap();
    store
        .grant_consent(id, "app-1", "openid", 100)
        .await
        .unwrap();
    store
        .add_unconfirmed_totp(&format!("m-{id}"), id, "S", 100)
        .await
        .unwrap();
    store
        .replace_recovery_codes(id, &[format!("rc-{id}")], 100)
        .await
        .unwrap();
    store
        .apply_risk_changes(&[RiskChange {
            signals: Vec::new(),
            record: UserRiskRecord {
                user_id: id.to_owned(),
                level: "high".into(),
                state: "atRisk".into(),
                detail: "none".into(),
                updated_at: 100 + n,
            },
            expected: None,
            detection: Some(DetectionRecord {
                id: format!("d-{id}"),
                user_id: id.to_owned(),
                risk_event_type: "leakedCredentials".into(),
                risk_level: "high".into(),
                detection_timing_type: "offline".into(),
                source: "IdentityProtection".into(),
                ip_address: None,
                detected_at: 100 + n,
                state: "active".into(),
                explanation: "test".into(),
            }),
            resolve_active_to: None,
            actor: "system".into(),
            reason: None,
            audit: None,
        }])
        .await
        .unwrap();
    store
        .set_leak_fingerprint(id, &format!("fp-{id}"), 100)
        .await
        .unwrap();
}

pub async fn deleting_a_user_deletes_everything_hanging_off_them(ctx: Ctx) {
    let store = &ctx.store;
    store
        .insert_user(&new_user("u1", "u1@example.com"))
        .await
        .unwrap();
    store
        .insert_user(&new_user("u2", "u2@example.com"))
        .await
        .unwrap();
    store
        .invite_guest(&crate::new_guest("g1", "g@partner.test", "p1"), "i1", None)
        .await
        .unwrap();
    everything_for(store, "u1", 1).await;
    everything_for(store, "u2", 2).await;
    everything_for(store, "g1", 3).await;
    for id in ["u1", "u2", "g1"] {
        for (table, n) in rows_of(&ctx.url, id).await {
            let expected = i64::from(table != "invitations" || id == "g1");
            assert_eq!(n, expected, "{id}: {table} before");
        }
    }

    let deleted = store.delete_user("u1").await.unwrap();
    assert_eq!(
        deleted,
        Some(tenantd_store::UserDeletion {
            sessions: 1,
            grants: 1
        })
    );
    assert!(store.user_by_id("u1").await.unwrap().is_none());
    assert!(
        store
            .user_by_email("u1@example.com")
            .await
            .unwrap()
            .is_none()
    );
    for (table, n) in rows_of(&ctx.url, "u1").await {
        assert_eq!(n, 0, "u1: {table} after");
    }
    assert!(store.refresh_token("r-u1").await.unwrap().is_none());
    // Nobody else loses anything.
    for (table, n) in rows_of(&ctx.url, "u2").await {
        assert_eq!(n, i64::from(table != "invitations"), "u2: {table} after");
    }
    // A guest goes the same way, invitation included; the address may be invited again.
    assert!(store.delete_user("g1").await.unwrap().is_some());
    for (table, n) in rows_of(&ctx.url, "g1").await {
        assert_eq!(n, 0, "g1: {table} after");
    }
    store
        .invite_guest(&crate::new_guest("g2", "g@partner.test", "p1"), "i2", None)
        .await
        .unwrap();
    // Unknown: nothing to delete.
    assert_eq!(store.delete_user("u1").await.unwrap(), None);
    assert_eq!(store.delete_user("nobody").await.unwrap(), None);
    assert_eq!(store.list_users().await.unwrap().len(), 2);
}
