//! User risk and its history.

use tenantd_store::{StoreError, UserRiskRecord};

use crate::{Ctx, new_guest, new_user};

fn record(user_id: &str, level: &str, state: &str, detail: &str, at: i64) -> UserRiskRecord {
    UserRiskRecord {
        user_id: user_id.to_owned(),
        level: level.to_owned(),
        state: state.to_owned(),
        detail: detail.to_owned(),
        updated_at: at,
    }
}

pub async fn user_risk_upserts_with_history(ctx: Ctx) {
    let store = &ctx.store;
    store
        .insert_user(&new_user("u1", "u1@example.com"))
        .await
        .unwrap();
    store
        .invite_guest(&new_guest("g1", "g1@partner.example", "p1"), "inv1", None)
        .await
        .unwrap();
    assert_eq!(store.user_risk("u1").await.unwrap(), None);
    assert!(store.risk_history("u1").await.unwrap().is_empty());
    assert!(store.list_user_risk().await.unwrap().is_empty());

    let at_risk = record("u1", "high", "atRisk", "none", 100);
    store
        .set_user_risk(
            &at_risk,
            "system:leakedCredentials",
            Some("found in a leak"),
        )
        .await
        .unwrap();
    assert_eq!(store.user_risk("u1").await.unwrap(), Some(at_risk.clone()));

    let dismissed = record(
        "u1",
        "none",
        "dismissed",
        "adminDismissedAllRiskForUser",
        200,
    );
    store
        .set_user_risk(&dismissed, "admin-1", None)
        .await
        .unwrap();
    // One current row, replaced.
    assert_eq!(
        store.user_risk("u1").await.unwrap(),
        Some(dismissed.clone())
    );

    let history = store.risk_history("u1").await.unwrap();
    assert_eq!(history.len(), 2);
    let (newest, oldest) = (&history[0], &history[1]);
    assert_eq!(
        (
            newest.user_id.as_str(),
            newest.level.as_str(),
            newest.state.as_str(),
            newest.detail.as_str(),
            newest.actor.as_str(),
            newest.reason.as_deref(),
            newest.created_at,
        ),
        (
            "u1",
            "none",
            "dismissed",
            "adminDismissedAllRiskForUser",
            "admin-1",
            None,
            200
        )
    );
    assert_eq!(
        (
            oldest.level.as_str(),
            oldest.state.as_str(),
            oldest.detail.as_str(),
            oldest.actor.as_str(),
            oldest.reason.as_deref(),
            oldest.created_at,
        ),
        (
            "high",
            "atRisk",
            "none",
            "system:leakedCredentials",
            Some("found in a leak"),
            100
        )
    );
    assert_ne!(newest.id, oldest.id);

    // Guests have risk too; two changes in the same second keep their order.
    store
        .set_user_risk(&record("g1", "low", "atRisk", "none", 150), "system", None)
        .await
        .unwrap();
    store
        .set_user_risk(
            &record("g1", "medium", "atRisk", "none", 150),
            "system",
            None,
        )
        .await
        .unwrap();
    let levels: Vec<String> = store
        .risk_history("g1")
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.level)
        .collect();
    assert_eq!(levels, ["medium", "low"]);
    // Each user's history is their own.
    assert_eq!(store.risk_history("u1").await.unwrap(), history);

    // Most recently changed first.
    assert_eq!(
        store.list_user_risk().await.unwrap(),
        [dismissed, record("g1", "medium", "atRisk", "none", 150)]
    );
}

pub async fn unknown_user_risk_is_not_found(ctx: Ctx) {
    let store = &ctx.store;
    store
        .insert_user(&new_user("u1", "u1@example.com"))
        .await
        .unwrap();
    assert!(matches!(
        store
            .set_user_risk(
                &record("nobody", "high", "atRisk", "none", 100),
                "admin",
                None
            )
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.user_risk("nobody").await.unwrap(), None);
    assert!(store.risk_history("nobody").await.unwrap().is_empty());
    assert!(store.list_user_risk().await.unwrap().is_empty());
    // The failed transaction left the store writable.
    store
        .set_user_risk(&record("u1", "low", "atRisk", "none", 100), "admin", None)
        .await
        .unwrap();
    assert_eq!(store.list_user_risk().await.unwrap().len(), 1);
}

pub async fn risky_users_report_is_members_only_filtered_ordered_and_paged(ctx: Ctx) {
    use tenantd_store::{RiskyUserCondition, RiskyUserQuery, UserCondition};
    let store = &ctx.store;
    let record = |user_id: &str, level: &str, updated_at| UserRiskRecord {
        user_id: user_id.to_owned(),
        level: level.to_owned(),
        state: "atRisk".to_owned(),
        detail: "none".to_owned(),
        updated_at,
    };
    for (id, email, level, at) in [
        ("u1", "ann@example.com", "high", 100),
        ("u2", "andy@example.com", "low", 200),
        ("u3", "bea_x@example.com", "high", 300),
    ] {
        store.insert_user(&new_user(id, email)).await.unwrap();
        store
            .set_user_risk(&record(id, level, at), "test", None)
            .await
            .unwrap();
    }
    store
        .invite_guest(
            &new_guest("g1", "guest@partner.example", "p1"),
            "inv1",
            None,
        )
        .await
        .unwrap();
    store
        .set_user_risk(&record("g1", "high", 400), "test", None)
        .await
        .unwrap();
    let ids = |q: RiskyUserQuery| async move {
        store
            .list_risky_users(&RiskyUserQuery { limit: 10, ..q })
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.user.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(RiskyUserQuery::default()).await, ["u3", "u2", "u1"]);
    assert_eq!(
        ids(RiskyUserQuery {
            oldest_first: true,
            ..RiskyUserQuery::default()
        })
        .await,
        ["u1", "u2", "u3"]
    );
    let with = |c: RiskyUserCondition| RiskyUserQuery {
        conditions: vec![c],
        ..RiskyUserQuery::default()
    };
    assert_eq!(
        ids(with(RiskyUserCondition::LevelIs("high".into()))).await,
        ["u3", "u1"]
    );
    assert_eq!(
        ids(with(RiskyUserCondition::User(
            UserCondition::EmailStartsWith("AN".into())
        )))
        .await,
        ["u2", "u1"]
    );
    // `_` is literal in a prefix, not a wildcard.
    assert_eq!(
        ids(with(RiskyUserCondition::User(
            UserCondition::EmailStartsWith("bea_".into())
        )))
        .await,
        ["u3"]
    );
    assert!(
        ids(with(RiskyUserCondition::User(
            UserCondition::EmailStartsWith("be_x".into())
        )))
        .await
        .is_empty()
    );
    // Keyset pages, both directions; ties on the time are ordered by id.
    store
        .set_user_risk(&record("u2", "low", 300), "test", None)
        .await
        .unwrap();
    let page = |after: Option<(i64, &str)>, oldest_first| {
        let q = RiskyUserQuery {
            limit: 1,
            after: after.map(|(at, id)| (at, id.to_owned())),
            oldest_first,
            ..RiskyUserQuery::default()
        };
        async move { store.list_risky_users(&q).await.unwrap() }
    };
    let first = page(None, false).await;
    assert_eq!(first[0].user.id, "u3");
    let second = page(Some((300, "u3")), false).await;
    assert_eq!(second[0].user.email, "andy@example.com");
    assert_eq!(second[0].risk, record("u2", "low", 300));
    assert_eq!(page(Some((300, "u2")), false).await[0].user.id, "u1");
    assert!(page(Some((100, "u1")), false).await.is_empty());
    assert_eq!(page(Some((100, "u1")), true).await[0].user.id, "u2");
    assert_eq!(page(Some((300, "u2")), true).await[0].user.id, "u3");
}
