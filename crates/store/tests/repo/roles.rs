//! Directory role assignments.

use tenantd_store::StoreError;

use crate::{Ctx, new_user};

pub async fn roles_are_held_until_taken_or_the_user_goes(ctx: Ctx) {
    let store = &ctx.store;
    store
        .insert_user(&new_user("u1", "b@example.com"))
        .await
        .unwrap();
    store
        .insert_user(&new_user("u2", "a@example.com"))
        .await
        .unwrap();
    assert!(!store.has_role("admin", "u1").await.unwrap());
    assert!(store.add_role_member("admin", "u1", 100).await.unwrap());
    assert!(
        !store.add_role_member("admin", "u1", 200).await.unwrap(),
        "once"
    );
    assert!(store.add_role_member("admin", "u2", 100).await.unwrap());
    assert!(matches!(
        store.add_role_member("admin", "nobody", 100).await,
        Err(StoreError::NotFound)
    ));
    assert!(store.has_role("admin", "u1").await.unwrap());
    assert!(!store.has_role("other", "u1").await.unwrap());
    let emails: Vec<String> = store
        .role_members("admin")
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.email)
        .collect();
    assert_eq!(emails, ["a@example.com", "b@example.com"]);
    assert!(store.remove_role_member("admin", "u1").await.unwrap());
    assert!(!store.remove_role_member("admin", "u1").await.unwrap());
    assert!(!store.has_role("admin", "u1").await.unwrap());
    store.delete_user("u2").await.unwrap();
    assert!(store.role_members("admin").await.unwrap().is_empty());
}
