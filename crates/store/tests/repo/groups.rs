//! Groups and their members.

use tenantd_store::{Group, StoreError};

use crate::{Ctx, new_user};

pub async fn groups_hold_members_until_deleted(ctx: Ctx) {
    let store = &ctx.store;
    let group = |id: &str, name: &str| Group {
        id: id.to_owned(),
        display_name: name.to_owned(),
        description: None,
        created_at: 100,
    };
    store
        .create_group(&group("g1", "Break-glass"))
        .await
        .unwrap();
    store.create_group(&group("g2", "Admins")).await.unwrap();
    assert!(matches!(
        store.create_group(&group("g1", "Again")).await,
        Err(StoreError::Conflict(_))
    ));
    store
        .insert_user(&new_user("u1", "b@example.com"))
        .await
        .unwrap();
    store
        .insert_user(&new_user("u2", "a@example.com"))
        .await
        .unwrap();
    assert!(store.add_group_member("g1", "u1", 100).await.unwrap());
    assert!(store.add_group_member("g1", "u2", 100).await.unwrap());
    assert!(
        !store.add_group_member("g1", "u1", 200).await.unwrap(),
        "once"
    );
    assert!(store.add_group_member("g2", "u1", 100).await.unwrap());
    for (g, u) in [("g1", "nobody"), ("nothing", "u1")] {
        assert!(matches!(
            store.add_group_member(g, u, 100).await,
            Err(StoreError::NotFound)
        ));
    }
    let names: Vec<String> = store
        .list_groups()
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.display_name)
        .collect();
    assert_eq!(names, ["Admins", "Break-glass"]);
    let emails: Vec<String> = store
        .group_members("g1")
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.email)
        .collect();
    assert_eq!(emails, ["a@example.com", "b@example.com"]);
    assert_eq!(store.user_group_ids("u1").await.unwrap(), ["g1", "g2"]);
    assert!(store.remove_group_member("g2", "u1").await.unwrap());
    assert!(!store.remove_group_member("g2", "u1").await.unwrap());
    assert!(store.delete_group("g1").await.unwrap());
    assert!(!store.delete_group("g1").await.unwrap());
    assert!(store.user_group_ids("u1").await.unwrap().is_empty());
    assert!(store.group("g1").await.unwrap().is_none());
    // A deleted user leaves the groups they were in.
    store.add_group_member("g2", "u2", 100).await.unwrap();
    store.delete_user("u2").await.unwrap();
    assert!(store.group_members("g2").await.unwrap().is_empty());
}
