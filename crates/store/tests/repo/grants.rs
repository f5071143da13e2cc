//! Grants, authorization codes, refresh tokens and the revocation lists.

use tenantd_store::{AuthCode, CodeRedemption, Grant, RefreshToken, Rotation, StoreError};

use crate::{Ctx, code, grant, new_user, refresh, user_with_grant};

pub async fn code_redeemed_once_then_replay_revokes_grant(ctx: Ctx) {
    let store = &ctx.store;
    user_with_grant(store).await;

    let CodeRedemption::Redeemed {
        code: redeemed,
        grant: g,
    } = store.redeem_code("c1", 120).await.unwrap()
    else {
        panic!("first redemption must succeed");
    };
    assert_eq!(redeemed.consumed_at, Some(120));
    assert_eq!(redeemed.nonce.as_deref(), Some("n-1"));
    assert_eq!(redeemed.code_challenge_method.as_deref(), Some("S256"));
    assert_eq!(g, grant("g1", "u1", Some("s1"), false));
    // Tokens issued from the first redemption.
    store
        .insert_refresh_token(&refresh("r1", "g1", 5_000))
        .await
        .unwrap();

    assert_eq!(
        store.redeem_code("c1", 121).await.unwrap(),
        CodeRedemption::Replayed {
            grant_id: "g1".to_owned()
        }
    );
    assert_eq!(
        store.grant("g1").await.unwrap().unwrap().revoked_at,
        Some(121)
    );
    assert_eq!(
        store
            .rotate_refresh_token("r1", &refresh("r2", "g1", 5_000), 122)
            .await
            .unwrap(),
        Rotation::GrantRevoked,
        "the refresh token issued from the replayed code dies with the grant"
    );
    // A replay long after expiry still counts as a replay, and keeps the first revocation.
    assert_eq!(
        store.redeem_code("c1", 9_000).await.unwrap(),
        CodeRedemption::Replayed {
            grant_id: "g1".to_owned()
        }
    );
    assert_eq!(
        store.grant("g1").await.unwrap().unwrap().revoked_at,
        Some(121)
    );
}

pub async fn expired_and_unknown_codes(ctx: Ctx) {
    let store = &ctx.store;
    user_with_grant(store).await; // c1 expires at 160
    assert_eq!(
        store.redeem_code("c1", 160).await.unwrap(),
        CodeRedemption::Expired
    );
    assert_eq!(
        store.redeem_code("c1", 161).await.unwrap(),
        CodeRedemption::Expired
    );
    assert_eq!(
        store.grant("g1").await.unwrap().unwrap().revoked_at,
        None,
        "expiry is no replay"
    );
    assert_eq!(
        store.redeem_code("nope", 120).await.unwrap(),
        CodeRedemption::NotFound
    );
}

pub async fn code_of_revoked_grant_is_refused(ctx: Ctx) {
    let store = &ctx.store;
    user_with_grant(store).await;
    assert_eq!(
        store.revoke_session_grants("s1", false, 110).await.unwrap(),
        1
    );
    assert_eq!(
        store.redeem_code("c1", 120).await.unwrap(),
        CodeRedemption::GrantRevoked
    );
    // Consumed all the same: showing it again is a replay.
    assert_eq!(
        store.redeem_code("c1", 121).await.unwrap(),
        CodeRedemption::Replayed {
            grant_id: "g1".to_owned()
        }
    );
    assert_eq!(
        store.grant("g1").await.unwrap().unwrap().revoked_at,
        Some(110)
    );
}

pub async fn concurrent_redemption_has_one_winner(ctx: Ctx) {
    let store = &ctx.store;
    user_with_grant(store).await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.redeem_code("c1", 120).await.unwrap() })
        })
        .collect();
    let mut redeemed = 0;
    let mut replayed = 0;
    for task in tasks {
        match task.await.unwrap() {
            CodeRedemption::Redeemed { .. } => redeemed += 1,
            CodeRedemption::Replayed { .. } => replayed += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((redeemed, replayed), (1, 7));
    assert!(
        store
            .grant("g1")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
}

pub async fn grant_with_code_is_atomic(ctx: Ctx) {
    let store = &ctx.store;
    user_with_grant(store).await;
    // Same code hash again with a new grant: the grant insert must be rolled back too.
    let err = store
        .create_grant_with_code(&grant("g2", "u1", None, false), &code("c1", "g2", 160))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(store.grant("g2").await.unwrap(), None);
    // Same grant id again.
    let err = store
        .create_grant_with_code(&grant("g1", "u1", None, false), &code("c9", "g1", 160))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(
        store.redeem_code("c9", 120).await.unwrap(),
        CodeRedemption::NotFound
    );
}

/// The `claims` a grant was asked with come back from every read: by id, with its code and
/// with its refresh token.
pub async fn grant_claims_round_trip(ctx: Ctx) {
    let store = &ctx.store;
    store
        .insert_user(&new_user("u1", "u1@example.com"))
        .await
        .unwrap();
    let mut g = grant("g1", "u1", None, false);
    g.claims = Some(r#"{"userinfo":["email"]}"#.to_owned());
    store
        .create_grant_with_code(&g, &code("c1", "g1", 160))
        .await
        .unwrap();
    assert_eq!(store.grant("g1").await.unwrap(), Some(g.clone()));
    let CodeRedemption::Redeemed {
        grant: redeemed, ..
    } = store.redeem_code("c1", 120).await.unwrap()
    else {
        panic!("the code redeems");
    };
    assert_eq!(redeemed, g);
    store
        .insert_refresh_token(&refresh("r1", "g1", 5_000))
        .await
        .unwrap();
    let Rotation::Rotated { grant: rotated, .. } = store
        .rotate_refresh_token("r1", &refresh("r2", "g1", 5_000), 200)
        .await
        .unwrap()
    else {
        panic!("the refresh token rotates");
    };
    assert_eq!(rotated, g);
    // Without claims: NULL, read back as none.
    store
        .create_grant_with_code(&grant("g2", "u1", None, false), &code("c2", "g2", 160))
        .await
        .unwrap();
    assert_eq!(store.grant("g2").await.unwrap().unwrap().claims, None);
}

pub async fn rotation_and_reuse_revokes_family(ctx: Ctx) {
    let store = &ctx.store;
    user_with_grant(store).await;
    store
        .insert_refresh_token(&refresh("r1", "g1", 5_000))
        .await
        .unwrap();
    assert!(matches!(
        store
            .insert_refresh_token(&refresh("r1", "g1", 5_000))
            .await,
        Err(StoreError::Conflict(_))
    ));

    let Rotation::Rotated { old, grant: g } = store
        .rotate_refresh_token("r1", &refresh("r2", "g1", 5_000), 200)
        .await
        .unwrap()
    else {
        panic!("first rotation must succeed");
    };
    assert_eq!(old.token_hash, "r1");
    assert_eq!(old.used_at, Some(200));
    assert_eq!(g.id, "g1");
    assert_eq!(
        store.refresh_token("r2").await.unwrap(),
        Some(refresh("r2", "g1", 5_000))
    );
    assert!(matches!(
        store
            .rotate_refresh_token("r2", &refresh("r3", "g1", 5_000), 300)
            .await
            .unwrap(),
        Rotation::Rotated { .. }
    ));

    // r1 shows up again: reuse. The family dies, the newest token (r3) included.
    assert_eq!(
        store
            .rotate_refresh_token("r1", &refresh("r4", "g1", 5_000), 400)
            .await
            .unwrap(),
        Rotation::Reused {
            grant_id: "g1".to_owned()
        }
    );
    assert_eq!(
        store.grant("g1").await.unwrap().unwrap().revoked_at,
        Some(400)
    );
    assert_eq!(
        store.refresh_token("r4").await.unwrap(),
        None,
        "nothing issued on reuse"
    );
    assert_eq!(
        store
            .rotate_refresh_token("r3", &refresh("r5", "g1", 5_000), 401)
            .await
            .unwrap(),
        Rotation::GrantRevoked
    );
    assert_eq!(
        store.refresh_token("r3").await.unwrap().unwrap().used_at,
        None
    );
    assert_eq!(store.refresh_token("r5").await.unwrap(), None);
}

pub async fn rotation_refuses_another_grant(ctx: Ctx) {
    let store = &ctx.store;
    user_with_grant(store).await;
    store
        .create_grant_with_code(&grant("g2", "u1", None, false), &code("c2", "g2", 160))
        .await
        .unwrap();
    store
        .insert_refresh_token(&refresh("r1", "g1", 5_000))
        .await
        .unwrap();
    let err = store
        .rotate_refresh_token("r1", &refresh("r2", "g2", 5_000), 200)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(
        store.refresh_token("r1").await.unwrap().unwrap().used_at,
        None
    );
    assert_eq!(store.refresh_token("r2").await.unwrap(), None);
}

pub async fn expired_and_unknown_refresh_tokens(ctx: Ctx) {
    let store = &ctx.store;
    user_with_grant(store).await; // grant g1 expires at 10_000
    store
        .insert_refresh_token(&refresh("r1", "g1", 500))
        .await
        .unwrap();
    assert_eq!(
        store
            .rotate_refresh_token("r1", &refresh("r2", "g1", 5_000), 500)
            .await
            .unwrap(),
        Rotation::Expired
    );
    assert_eq!(
        store.refresh_token("r1").await.unwrap().unwrap().used_at,
        None
    );
    assert_eq!(store.grant("g1").await.unwrap().unwrap().revoked_at, None);
    // A live token whose grant has expired does not rotate either.
    store
        .insert_refresh_token(&refresh("r3", "g1", 20_000))
        .await
        .unwrap();
    assert_eq!(
        store
            .rotate_refresh_token("r3", &refresh("r4", "g1", 30_000), 10_000)
            .await
            .unwrap(),
        Rotation::Expired
    );
    assert_eq!(
        store
            .rotate_refresh_token("nope", &refresh("r5", "g1", 5_000), 200)
            .await
            .unwrap(),
        Rotation::NotFound
    );
    assert_eq!(store.refresh_token("r2").await.unwrap(), None);
    assert_eq!(store.refresh_token("r4").await.unwrap(), None);
}

pub async fn grant_revoke_kills_refresh(ctx: Ctx) {
    let store = &ctx.store;
    user_with_grant(store).await;
    store
        .insert_refresh_token(&refresh("r1", "g1", 5_000))
        .await
        .unwrap();
    assert!(store.revoke_grant("g1", 150).await.unwrap());
    assert!(!store.revoke_grant("g1", 151).await.unwrap());
    assert!(!store.revoke_grant("nope", 151).await.unwrap());
    assert_eq!(
        store.grant("g1").await.unwrap().unwrap().revoked_at,
        Some(150)
    );
    assert_eq!(
        store
            .rotate_refresh_token("r1", &refresh("r2", "g1", 5_000), 200)
            .await
            .unwrap(),
        Rotation::GrantRevoked
    );
    assert_eq!(store.refresh_token("r2").await.unwrap(), None);
}

pub async fn concurrent_rotation_has_one_winner(ctx: Ctx) {
    let store = &ctx.store;
    user_with_grant(store).await;
    store
        .insert_refresh_token(&refresh("r0", "g1", 5_000))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let new = refresh(&format!("next-{i}"), "g1", 5_000);
                store.rotate_refresh_token("r0", &new, 200).await.unwrap()
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    let rotated = outcomes
        .iter()
        .filter(|o| matches!(o, Rotation::Rotated { .. }))
        .count();
    let reused = outcomes
        .iter()
        .filter(|o| matches!(o, Rotation::Reused { .. }))
        .count();
    assert_eq!((rotated, reused), (1, 5), "{outcomes:?}");
    assert!(
        store
            .grant("g1")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
}

pub async fn session_grants_respect_offline(ctx: Ctx) {
    let store = &ctx.store;
    store
        .insert_user(&new_user("u1", "u1@example.com"))
        .await
        .unwrap();
    let online = grant("g-online", "u1", Some("s1"), false);
    let offline = grant("g-offline", "u1", Some("s1"), true);
    let elsewhere = grant("g-other", "u1", Some("s2"), false);
    store
        .create_grant_with_code(&online, &code("c1", "g-online", 160))
        .await
        .unwrap();
    store
        .create_grant_with_code(&offline, &code("c2", "g-offline", 160))
        .await
        .unwrap();
    store
        .create_grant_with_code(&elsewhere, &code("c3", "g-other", 160))
        .await
        .unwrap();
    assert!(store.grant("g-offline").await.unwrap().unwrap().offline);

    assert_eq!(
        store.revoke_session_grants("s1", false, 200).await.unwrap(),
        1
    );
    assert_eq!(
        store.grant("g-online").await.unwrap().unwrap().revoked_at,
        Some(200)
    );
    assert_eq!(
        store.grant("g-offline").await.unwrap().unwrap().revoked_at,
        None
    );
    assert_eq!(
        store.revoke_session_grants("s1", true, 300).await.unwrap(),
        1
    );
    assert_eq!(
        store.grant("g-offline").await.unwrap().unwrap().revoked_at,
        Some(300)
    );
    assert_eq!(
        store.grant("g-online").await.unwrap().unwrap().revoked_at,
        Some(200)
    );
    assert_eq!(
        store.grant("g-other").await.unwrap().unwrap().revoked_at,
        None
    );
}

pub async fn ending_a_users_sign_ins_revokes_their_grants(ctx: Ctx) {
    let store = &ctx.store;
    user_with_grant(store).await;
    store
        .insert_user(&new_user("u2", "u2@example.com"))
        .await
        .unwrap();
    store
        .create_grant_with_code(&grant("g2", "u1", None, true), &code("c2", "g2", 160))
        .await
        .unwrap();
    store
        .create_grant_with_code(&grant("g3", "u2", None, false), &code("c3", "g3", 160))
        .await
        .unwrap();
    assert_eq!(store.end_user_sign_ins("u1", 200).await.unwrap().1, 2);
    assert_eq!(store.end_user_sign_ins("u1", 201).await.unwrap().1, 0);
    assert_eq!(store.grant("g3").await.unwrap().unwrap().revoked_at, None);
}

pub async fn jti_replay_is_detected(ctx: Ctx) {
    let store = &ctx.store;
    assert!(store.remember_jti("app-1", "j1", 300, 100).await.unwrap());
    assert!(
        !store.remember_jti("app-1", "j1", 300, 200).await.unwrap(),
        "replay"
    );
    assert!(
        store.remember_jti("app-2", "j1", 300, 200).await.unwrap(),
        "per client"
    );
    assert!(store.remember_jti("app-1", "j2", 300, 200).await.unwrap());
    // Once the first entry has expired the jti is accepted (the assertion's exp check is the
    // caller's) and remembered again.
    assert!(store.remember_jti("app-1", "j1", 600, 300).await.unwrap());
    assert!(!store.remember_jti("app-1", "j1", 600, 599).await.unwrap());
}

pub async fn access_token_revocation(ctx: Ctx) {
    let store = &ctx.store;
    assert!(!store.access_token_revoked("jti-1").await.unwrap());
    store.revoke_access_token("jti-1", 500).await.unwrap();
    store.revoke_access_token("jti-1", 500).await.unwrap();
    assert!(store.access_token_revoked("jti-1").await.unwrap());
    assert!(!store.access_token_revoked("jti-2").await.unwrap());
}

pub async fn refused_rotation_changes_nothing(ctx: Ctx) {
    let store = &ctx.store;
    user_with_grant(store).await;
    store
        .insert_refresh_token(&refresh("r1", "g1", 5_000))
        .await
        .unwrap();
    // The caller's check sees the stored token and grant and refuses: nothing is burned.
    let refused = store
        .rotate_refresh_token_with("r1", 200, |old, g| {
            assert_eq!(old.token_hash, "r1");
            assert_eq!(g.id, "g1");
            Err::<tenantd_store::RefreshToken, _>("wrong client")
        })
        .await
        .unwrap();
    assert_eq!(refused, Err("wrong client"));
    assert_eq!(
        store.refresh_token("r1").await.unwrap().unwrap().used_at,
        None
    );
    // The token still rotates afterwards, and the outcome carries the used token and grant.
    let Ok(Rotation::Rotated { old, grant: g }) = store
        .rotate_refresh_token_with("r1", 201, |_, _| Ok::<_, ()>(refresh("r2", "g1", 5_000)))
        .await
        .unwrap()
    else {
        panic!("must rotate");
    };
    assert_eq!(old.used_at, Some(201));
    assert_eq!(g, grant("g1", "u1", Some("s1"), false));
    assert!(store.refresh_token("r2").await.unwrap().is_some());
}

pub async fn failed_code_check_revokes_grant_in_redemption(ctx: Ctx) {
    let store = &ctx.store;
    user_with_grant(store).await;
    let failed = store
        .redeem_code_with("c1", 120, |code, _| {
            assert_eq!(code.consumed_at, Some(120));
            Err::<Option<tenantd_store::RefreshToken>, _>("pkce")
        })
        .await
        .unwrap();
    assert_eq!(failed, Err("pkce"));
    assert!(
        store
            .grant("g1")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    // The code stays spent: a retry is a replay.
    assert!(matches!(
        store.redeem_code("c1", 121).await.unwrap(),
        CodeRedemption::Replayed { .. }
    ));
}

pub async fn code_redemption_stores_first_refresh_token(ctx: Ctx) {
    let store = &ctx.store;
    user_with_grant(store).await;
    let redeemed = store
        .redeem_code_with("c1", 120, |_, _| {
            Ok::<_, ()>(Some(refresh("r1", "g1", 5_000)))
        })
        .await
        .unwrap();
    assert!(matches!(redeemed, Ok(CodeRedemption::Redeemed { .. })));
    assert_eq!(
        store.refresh_token("r1").await.unwrap(),
        Some(refresh("r1", "g1", 5_000))
    );
}

/// u2 with a live session `s2`; the grant `g2` and code a sealed code of that session carries.
async fn sealed_fixture(store: &tenantd_store::Store) -> (AuthCode, Grant) {
    store
        .insert_user(&crate::new_user("u2", "u2@example.com"))
        .await
        .unwrap();
    store
        .create_session(&crate::session("s2", "u2", 5_000))
        .await
        .unwrap();
    (
        code("sealed", "g2", 160),
        grant("g2", "u2", Some("s2"), true),
    )
}

fn no_check(_: &AuthCode, _: &Grant) -> Result<Option<RefreshToken>, ()> {
    Ok(None)
}

pub async fn sealed_code_inserts_its_grant_once_and_a_replay_revokes_it(ctx: Ctx) {
    let store = &ctx.store;
    let (c, g) = sealed_fixture(store).await;
    assert!(
        store.grant("g2").await.unwrap().is_none(),
        "nothing written at issue"
    );
    let first = store
        .redeem_sealed_code(&c, &g, 120, |_, _| {
            Ok::<_, ()>(Some(refresh("r-first", "g2", 9_000)))
        })
        .await
        .unwrap()
        .unwrap();
    match first {
        CodeRedemption::Redeemed { code, grant } => {
            assert_eq!(code.consumed_at, Some(120));
            assert_eq!(grant, g);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(store.grant("g2").await.unwrap(), Some(g.clone()));
    assert!(store.refresh_token("r-first").await.unwrap().is_some());

    let replay = store
        .redeem_sealed_code(&c, &g, 130, no_check)
        .await
        .unwrap();
    assert!(
        matches!(replay, Ok(CodeRedemption::Replayed { ref grant_id }) if grant_id == "g2"),
        "{replay:?}"
    );
    assert_eq!(
        store.grant("g2").await.unwrap().unwrap().revoked_at,
        Some(130)
    );

    // Still a replay after the code's expiry: the grant was there.
    let late = store
        .redeem_sealed_code(&c, &g, 500, no_check)
        .await
        .unwrap();
    assert!(
        matches!(late, Ok(CodeRedemption::Replayed { .. })),
        "{late:?}"
    );
}

pub async fn sealed_code_expired_or_of_an_ended_session_is_refused(ctx: Ctx) {
    let store = &ctx.store;
    let (c, g) = sealed_fixture(store).await;
    let expired = store
        .redeem_sealed_code(&c, &g, 160, no_check)
        .await
        .unwrap();
    assert!(
        matches!(expired, Ok(CodeRedemption::Expired)),
        "{expired:?}"
    );
    assert!(
        store.grant("g2").await.unwrap().is_none(),
        "an expired code writes nothing"
    );

    store.end_user_sign_ins("u2", 110).await.unwrap();
    let ended = store
        .redeem_sealed_code(&c, &g, 120, no_check)
        .await
        .unwrap();
    assert!(
        matches!(ended, Ok(CodeRedemption::GrantRevoked)),
        "{ended:?}"
    );
    assert_eq!(
        store.grant("g2").await.unwrap().unwrap().revoked_at,
        Some(120),
        "spent and revoked"
    );
    let again = store
        .redeem_sealed_code(&c, &g, 121, no_check)
        .await
        .unwrap();
    assert!(
        matches!(again, Ok(CodeRedemption::Replayed { .. })),
        "{again:?}"
    );
}

pub async fn sealed_code_failing_its_check_is_spent(ctx: Ctx) {
    let store = &ctx.store;
    let (c, g) = sealed_fixture(store).await;
    let failed = store
        .redeem_sealed_code(&c, &g, 120, |_, _| Err::<Option<RefreshToken>, _>("pkce"))
        .await
        .unwrap();
    assert_eq!(failed.unwrap_err(), "pkce");
    assert_eq!(
        store.grant("g2").await.unwrap().unwrap().revoked_at,
        Some(120)
    );
    let retry = store
        .redeem_sealed_code(&c, &g, 121, no_check)
        .await
        .unwrap();
    assert!(
        matches!(retry, Ok(CodeRedemption::Replayed { .. })),
        "{retry:?}"
    );
}

pub async fn concurrent_sealed_redemption_has_one_winner(ctx: Ctx) {
    let store = ctx.store.clone();
    let (c, g) = sealed_fixture(&store).await;
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (store, c, g) = (store.clone(), c.clone(), g.clone());
            tokio::spawn(async move { store.redeem_sealed_code(&c, &g, 120, no_check).await })
        })
        .collect();
    let mut redeemed = 0;
    for t in tasks {
        if let Ok(CodeRedemption::Redeemed { .. }) = t.await.unwrap().unwrap() {
            redeemed += 1;
        }
    }
    assert_eq!(redeemed, 1);
    assert!(
        store
            .grant("g2")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some(),
        "the losers were replays: the grant is revoked"
    );
}

pub async fn code_sealing_secret_is_created_once(ctx: Ctx) {
    let store = &ctx.store;
    let first = store.code_sealing_secret("one", 100).await.unwrap();
    assert_eq!(first, "one");
    assert_eq!(store.code_sealing_secret("two", 200).await.unwrap(), "one");
}
