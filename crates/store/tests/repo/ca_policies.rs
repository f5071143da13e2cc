//! Conditional Access policies created through the admin API.

use tenantd_store::StoreError;

use crate::Ctx;

pub async fn crud(ctx: Ctx) {
    let store = &ctx.store;
    assert!(store.list_ca_policies().await.unwrap().is_empty());
    store
        .insert_ca_policy("b", r#"{"id":"b"}"#, 10)
        .await
        .unwrap();
    store
        .insert_ca_policy("a", r#"{"id":"a"}"#, 20)
        .await
        .unwrap();
    assert!(matches!(
        store.insert_ca_policy("a", "{}", 30).await,
        Err(StoreError::Conflict(_))
    ));
    // Creation order is evaluation order.
    let ids: Vec<String> = store
        .list_ca_policies()
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, ["b", "a"]);
    store
        .update_ca_policy("b", r#"{"id":"b","v":2}"#, 40)
        .await
        .unwrap();
    assert!(matches!(
        store.update_ca_policy("zz", "{}", 40).await,
        Err(StoreError::NotFound)
    ));
    let list = store.list_ca_policies().await.unwrap();
    assert_eq!(list[0], ("b".to_owned(), r#"{"id":"b","v":2}"#.to_owned()));
    assert!(store.delete_ca_policy("b").await.unwrap());
    assert!(!store.delete_ca_policy("b").await.unwrap());
    assert_eq!(store.list_ca_policies().await.unwrap().len(), 1);
}

pub async fn file_policy_states_are_switched_and_replaced(ctx: Ctx) {
    let store = &ctx.store;
    assert!(store.ca_policy_states().await.unwrap().is_empty());
    store
        .set_ca_policy_state("p1", "disabled", 10)
        .await
        .unwrap();
    store
        .set_ca_policy_state("p0", "enabled", 11)
        .await
        .unwrap();
    store
        .set_ca_policy_state("p1", "enabledForReportingButNotEnforced", 12)
        .await
        .unwrap();
    assert_eq!(
        store.ca_policy_states().await.unwrap(),
        [
            ("p0".to_owned(), "enabled".to_owned()),
            (
                "p1".to_owned(),
                "enabledForReportingButNotEnforced".to_owned()
            ),
        ]
    );
}
