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
