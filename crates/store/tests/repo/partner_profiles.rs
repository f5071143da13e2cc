//! The claim profile of each partner's ID tokens.

use tenantd_store::{PartnerProfile, Store};

use crate::Ctx;

fn names(n: &[&str]) -> Vec<String> {
    n.iter().map(|s| (*s).to_owned()).collect()
}

pub async fn learns_intersection_and_union_and_survives_reopen(ctx: Ctx) {
    let store = &ctx.store;
    let empty = store.partner_profile("contoso").await.unwrap();
    assert_eq!(empty.tokens_seen, 0);
    assert!(empty.always.is_empty() && empty.seen.is_empty());

    // Each call returns the profile before the token (what the token is judged against).
    let before = store
        .record_partner_token("contoso", &names(&["sub", "iss", "email", "iss"]), 10)
        .await
        .unwrap();
    assert_eq!(before.tokens_seen, 0);
    let before = store
        .record_partner_token("contoso", &names(&["iss", "sub", "email", "groups"]), 20)
        .await
        .unwrap();
    assert_eq!(
        before,
        PartnerProfile {
            partner_id: "contoso".into(),
            tokens_seen: 1,
            always: names(&["email", "iss", "sub"]),
            seen: names(&["email", "iss", "sub"]),
            updated_at: 10,
        }
    );
    store
        .record_partner_token("contoso", &names(&["iss", "sub"]), 30)
        .await
        .unwrap();
    // Another partner has a profile of its own.
    store
        .record_partner_token("other", &names(&["x"]), 30)
        .await
        .unwrap();

    store.close().await;
    let reopened = Store::connect(&ctx.url, crate::sealer()).await.unwrap();
    let p = reopened.partner_profile("contoso").await.unwrap();
    assert_eq!(p.tokens_seen, 3);
    assert_eq!(p.always, names(&["iss", "sub"]));
    assert_eq!(p.seen, names(&["email", "groups", "iss", "sub"]));
    assert_eq!(p.updated_at, 30);
    assert_eq!(
        reopened.partner_profile("other").await.unwrap().always,
        names(&["x"])
    );
}

pub async fn concurrent_tokens_are_all_counted(ctx: Ctx) {
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = ctx.store.clone();
        tasks.push(tokio::spawn(async move {
            let own = format!("c{i}");
            store
                .record_partner_token("contoso", &names(&["iss", "sub", &own]), i)
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let p = ctx.store.partner_profile("contoso").await.unwrap();
    assert_eq!(p.tokens_seen, 8);
    assert_eq!(p.always, names(&["iss", "sub"]));
    assert_eq!(p.seen.len(), 10);
}
