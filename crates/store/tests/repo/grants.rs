//! Grants, authorization codes, refresh tokens and the revocation lists.

use tenantd_store::{
    AuthCode, CodeRedemption, Grant, RefreshToken, Rotation, StoreError, UserStatus,
};

use crate::{Ctx, code, create_grant, grant, new_user, refresh, session, user_with_grant};

/// The `claims` a grant was asked with come back from every read: by id, from the redemption
/// and with its refresh token.
pub async fn grant_claims_round_trip(ctx: Ctx) {
    let store = &ctx.store;
    store
        .insert_user(&new_user("u1", "u1@example.com"))
        .await
        .unwrap();
    let mut g = grant("g1", "u1", None, false);
    g.claims = Some(r#"{"userinfo":["email"]}"#.to_owned());
    let redeemed = store
        .redeem_sealed_code(&code("g1", 160), &g, 120, no_check)
        .await
        .unwrap();
    assert_eq!(redeemed, Ok(CodeRedemption::Redeemed), "the code redeems");
    assert_eq!(store.grant("g1").await.unwrap(), Some(g.clone()));
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
    create_grant(store, &grant("g2", "u1", None, false)).await;
    assert_eq!(store.grant("g2").await.unwrap().unwrap().claims, None);
}

/// A refresh token is read with its grant, the grant's user, the user's risk and the version of
/// their sign-ins in one statement; any of them changing shows in the next read.
pub async fn refresh_token_read_with_its_user(ctx: Ctx) {
    let store = &ctx.store;
    user_with_grant(store).await;
    store
        .insert_refresh_token(&refresh("r1", "g1", 5_000))
        .await
        .unwrap();
    assert_eq!(store.refresh_token_and_user("nope").await.unwrap(), None);
    let read = store.refresh_token_and_user("r1").await.unwrap().unwrap();
    assert_eq!(read.token, refresh("r1", "g1", 5_000));
    assert_eq!(read.grant, store.grant("g1").await.unwrap().unwrap());
    assert_eq!(read.user, store.user_by_id("u1").await.unwrap().unwrap());
    assert_eq!((read.user_risk, read.sign_ins_version), (None, 0));

    let risk = crate::at_high_risk_after_a_sign_in(store, "u1").await;
    store.revoke_grant("g1", 300).await.unwrap();
    let read = store.refresh_token_and_user("r1").await.unwrap().unwrap();
    assert_eq!(read.user_risk, Some(risk));
    assert_eq!(
        read.sign_ins_version,
        store.sign_ins_version("u1").await.unwrap()
    );
    assert_ne!(read.sign_ins_version, 0);
    assert_eq!(
        read.grant.revoked_at,
        Some(300),
        "whatever the grant's state"
    );
    // The same token and grant as the read without the user.
    assert_eq!(
        store.refresh_token_with_grant("r1").await.unwrap(),
        Some((read.token, read.grant))
    );
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

    rotated_twice_then_reused(store, "g1", "r1", 5_000).await;
}

/// Rotates the family's live token `first` of grant `grant_id` twice, then presents it again:
/// reuse, which kills the family, the newest token included. Tokens made here are named after
/// `first` and expire at `expires_at`.
async fn rotated_twice_then_reused(
    store: &tenantd_store::Store,
    grant_id: &str,
    first: &str,
    expires_at: i64,
) {
    let [second, third, fourth, fifth] = [2, 3, 4, 5].map(|n| format!("{first}-{n}"));
    let Rotation::Rotated { old, grant: g } = store
        .rotate_refresh_token(first, &refresh(&second, grant_id, expires_at), 200)
        .await
        .unwrap()
    else {
        panic!("first rotation must succeed");
    };
    assert_eq!(old.token_hash, first);
    assert_eq!(old.used_at, Some(200));
    assert_eq!(g.id, grant_id);
    assert_eq!(
        store.refresh_token(first).await.unwrap().unwrap().used_at,
        Some(200),
        "its use is stored"
    );
    assert_eq!(
        store.refresh_token(&second).await.unwrap(),
        Some(refresh(&second, grant_id, expires_at))
    );
    assert!(matches!(
        store
            .rotate_refresh_token(&second, &refresh(&third, grant_id, expires_at), 300)
            .await
            .unwrap(),
        Rotation::Rotated { .. }
    ));

    // The first shows up again: reuse. The family dies, the newest token included.
    assert_eq!(
        store
            .rotate_refresh_token(first, &refresh(&fourth, grant_id, expires_at), 400)
            .await
            .unwrap(),
        Rotation::Reused {
            grant_id: grant_id.to_owned()
        }
    );
    assert_eq!(
        store.grant(grant_id).await.unwrap().unwrap().revoked_at,
        Some(400)
    );
    assert_eq!(
        store.refresh_token(&fourth).await.unwrap(),
        None,
        "nothing issued on reuse"
    );
    assert_eq!(
        store
            .rotate_refresh_token(&third, &refresh(&fifth, grant_id, expires_at), 401)
            .await
            .unwrap(),
        Rotation::GrantRevoked
    );
    assert_eq!(
        store.refresh_token(&third).await.unwrap().unwrap().used_at,
        None
    );
    assert_eq!(store.refresh_token(&fifth).await.unwrap(), None);
}

pub async fn rotation_refuses_another_grant(ctx: Ctx) {
    let store = &ctx.store;
    user_with_grant(store).await;
    create_grant(store, &grant("g2", "u1", None, false)).await;
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
    for s in ["s1", "s2"] {
        store
            .create_session(&session(s, "u1", 5_000))
            .await
            .unwrap();
    }
    for g in [&online, &offline, &elsewhere] {
        create_grant(store, g).await;
    }
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
    create_grant(store, &grant("g2", "u1", None, true)).await;
    create_grant(store, &grant("g3", "u2", None, false)).await;
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

/// A rotation of a token read earlier checks again what may have changed since the read: a
/// token used meanwhile is reuse (the family is revoked), and a grant revoked meanwhile does
/// not rotate.
pub async fn rotation_of_an_earlier_read_checks_again(ctx: Ctx) {
    let store = &ctx.store;
    user_with_grant(store).await;
    for hash in ["r1", "r4"] {
        store
            .insert_refresh_token(&refresh(hash, "g1", 5_000))
            .await
            .unwrap();
    }
    // Three reads, all while the grant is live and neither token used.
    let stale = store.refresh_token_with_grant("r1").await.unwrap().unwrap();
    let again = stale.clone();
    let other = store.refresh_token_with_grant("r4").await.unwrap().unwrap();
    assert_eq!(other.1.revoked_at, None);
    let next = |hash: &'static str| move |_: &_, _: &_| Ok::<_, ()>(refresh(hash, "g1", 5_000));
    let first = store
        .rotate_read_refresh_token(stale, 200, next("r2"))
        .await
        .unwrap();
    assert!(matches!(first, Ok(Rotation::Rotated { .. })), "{first:?}");
    let second = store
        .rotate_read_refresh_token(again, 201, next("r3"))
        .await
        .unwrap();
    assert_eq!(
        second,
        Ok(Rotation::Reused {
            grant_id: "g1".to_owned()
        })
    );
    assert_eq!(
        store.grant("g1").await.unwrap().unwrap().revoked_at,
        Some(201)
    );
    assert!(store.refresh_token("r3").await.unwrap().is_none());
    // The grant was revoked after r4 was read: it does not rotate.
    let revoked = store
        .rotate_read_refresh_token(other, 202, next("r5"))
        .await
        .unwrap();
    assert_eq!(revoked, Ok(Rotation::GrantRevoked));
    assert!(store.refresh_token("r5").await.unwrap().is_none());
}

/// u2 with a live session `s2`; the grant `g2` and code a sealed code of that session carries.
async fn sealed_fixture(store: &tenantd_store::Store) -> (AuthCode, Grant) {
    store
        .insert_user(&new_user("u2", "u2@example.com"))
        .await
        .unwrap();
    store
        .create_session(&session("s2", "u2", 5_000))
        .await
        .unwrap();
    (code("g2", 160), grant("g2", "u2", Some("s2"), true))
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
    assert_eq!(first, CodeRedemption::Redeemed);
    assert_eq!(store.grant("g2").await.unwrap(), Some(g.clone()));
    assert_eq!(
        store.refresh_token("r-first").await.unwrap(),
        Some(refresh("r-first", "g2", 9_000)),
        "the first refresh token is stored with the grant"
    );

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
    assert_eq!(
        store
            .rotate_refresh_token("r-first", &refresh("r-next", "g2", 9_000), 131)
            .await
            .unwrap(),
        Rotation::GrantRevoked,
        "the refresh token issued from the replayed code dies with the grant"
    );

    // Still a replay after the code's expiry (the grant was there), and the first revocation
    // is kept.
    let late = store
        .redeem_sealed_code(&c, &g, 500, no_check)
        .await
        .unwrap();
    assert!(
        matches!(late, Ok(CodeRedemption::Replayed { ref grant_id }) if grant_id == "g2"),
        "{late:?}"
    );
    assert_eq!(
        store.grant("g2").await.unwrap().unwrap().revoked_at,
        Some(130)
    );
}

/// Redeems the fixture's code `g2` at 120, minting a first refresh token, and checks that it
/// is refused: the grant stored revoked (the code spent) and no refresh token stored.
async fn refused_and_spent_at_120(store: &tenantd_store::Store, c: &AuthCode, g: &Grant) {
    let refused = store
        .redeem_sealed_code(c, g, 120, |_, _| {
            Ok::<_, ()>(Some(refresh("r-refused", "g2", 9_000)))
        })
        .await
        .unwrap();
    assert!(
        matches!(refused, Ok(CodeRedemption::GrantRevoked)),
        "{refused:?}"
    );
    assert_eq!(
        store.refresh_token("r-refused").await.unwrap(),
        None,
        "no refresh token for a grant stored revoked"
    );
    assert_eq!(
        store.grant("g2").await.unwrap().unwrap().revoked_at,
        Some(120),
        "spent and revoked"
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
    // Expiry is no replay: shown again, it is still just expired.
    let again = store
        .redeem_sealed_code(&c, &g, 161, no_check)
        .await
        .unwrap();
    assert!(matches!(again, Ok(CodeRedemption::Expired)), "{again:?}");
    assert!(store.grant("g2").await.unwrap().is_none());

    store.end_user_sign_ins("u2", 110).await.unwrap();
    refused_and_spent_at_120(store, &c, &g).await;
    // Spent all the same: showing it again is a replay, which keeps the first revocation.
    let again = store
        .redeem_sealed_code(&c, &g, 121, no_check)
        .await
        .unwrap();
    assert!(
        matches!(again, Ok(CodeRedemption::Replayed { .. })),
        "{again:?}"
    );
    assert_eq!(
        store.grant("g2").await.unwrap().unwrap().revoked_at,
        Some(120)
    );
}

pub async fn sealed_code_of_a_user_no_longer_active_is_refused(ctx: Ctx) {
    let store = &ctx.store;
    let (c, g) = sealed_fixture(store).await;
    // Disabled while the session lives on: the redemption itself refuses the user.
    store
        .set_user_status("u2", UserStatus::Disabled, 110)
        .await
        .unwrap();
    refused_and_spent_at_120(store, &c, &g).await;
    // Enabled again, a new code of the same session is redeemed.
    store
        .set_user_status("u2", UserStatus::Active, 130)
        .await
        .unwrap();
    let (c3, g3) = (code("g3", 160), grant("g3", "u2", Some("s2"), true));
    let redeemed = store
        .redeem_sealed_code(&c3, &g3, 140, no_check)
        .await
        .unwrap();
    assert_eq!(redeemed, Ok(CodeRedemption::Redeemed));
    assert_eq!(store.grant("g3").await.unwrap(), Some(g3));
}

pub async fn sealed_code_failing_its_check_is_spent(ctx: Ctx) {
    let store = &ctx.store;
    let (c, g) = sealed_fixture(store).await;
    let failed = store
        .redeem_sealed_code(&c, &g, 120, |code, grant| {
            assert_eq!(
                (code, grant),
                (&c, &g),
                "the check sees what the code carried"
            );
            Err::<Option<RefreshToken>, _>("pkce")
        })
        .await
        .unwrap();
    assert_eq!(failed, Err("pkce"));
    assert_eq!(
        store.grant("g2").await.unwrap().unwrap().revoked_at,
        Some(120)
    );
    // The code stays spent: a retry is a replay.
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
    // Half the contenders mint a first refresh token, half do not: the grant's id decides
    // between both kinds alike.
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (store, c, g) = (store.clone(), c.clone(), g.clone());
            tokio::spawn(async move {
                store
                    .redeem_sealed_code(&c, &g, 120, |_, _| {
                        Ok::<_, ()>((i % 2 == 0).then(|| refresh(&format!("r{i}"), "g2", 9_000)))
                    })
                    .await
            })
        })
        .collect();
    let mut redeemed = 0;
    let mut replayed = 0;
    let mut winner = None;
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.unwrap().unwrap() {
            Ok(CodeRedemption::Redeemed) => {
                redeemed += 1;
                winner = Some(i);
            }
            Ok(CodeRedemption::Replayed { .. }) => replayed += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((redeemed, replayed), (1, 7));
    let mut stored = Vec::new();
    for i in (0..8).step_by(2) {
        if store
            .refresh_token(&format!("r{i}"))
            .await
            .unwrap()
            .is_some()
        {
            stored.push(i);
        }
    }
    let winner = winner.unwrap();
    let expected: Vec<usize> = (winner % 2 == 0).then_some(winner).into_iter().collect();
    assert_eq!(
        stored, expected,
        "only the winner's refresh token is stored"
    );
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

/// The grant and the first refresh token are written in one transaction: when the token cannot
/// be stored, neither is the grant, and the code is not spent.
pub async fn sealed_redemption_is_atomic(ctx: Ctx) {
    let store = &ctx.store;
    user_with_grant(store).await;
    store
        .insert_refresh_token(&refresh("r1", "g1", 5_000))
        .await
        .unwrap();
    let (c, g) = sealed_fixture(store).await;
    // The first refresh token's hash is taken: the grant insert must be rolled back too.
    let err = store
        .redeem_sealed_code(&c, &g, 120, |_, _| {
            Ok::<_, ()>(Some(refresh("r1", "g2", 9_000)))
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(store.grant("g2").await.unwrap(), None);
    assert_eq!(
        store.refresh_token("r1").await.unwrap(),
        Some(refresh("r1", "g1", 5_000))
    );
    // Nothing was spent: the code still redeems.
    let redeemed = store
        .redeem_sealed_code(&c, &g, 121, |_, _| {
            Ok::<_, ()>(Some(refresh("r2", "g2", 9_000)))
        })
        .await
        .unwrap();
    assert!(
        matches!(redeemed, Ok(CodeRedemption::Redeemed)),
        "{redeemed:?}"
    );
    assert_eq!(
        store.refresh_token("r2").await.unwrap(),
        Some(refresh("r2", "g2", 9_000))
    );
}

pub async fn code_sealing_secret_is_created_once(ctx: Ctx) {
    let store = &ctx.store;
    let first = store.code_sealing_secret("one", 100).await.unwrap();
    assert_eq!(first, "one");
    assert_eq!(store.code_sealing_secret("two", 200).await.unwrap(), "one");
}

/// A family's first refresh token, stored with its grant by the code exchange, reads, rotates
/// and is caught on reuse like the tokens rotation makes after it; a hash names one token
/// wherever it is kept.
pub async fn first_refresh_token_lives_and_rotates_like_the_rest(ctx: Ctx) {
    let store = &ctx.store;
    let (c, g) = sealed_fixture(store).await;
    let redeemed = store
        .redeem_sealed_code(&c, &g, 120, |_, _| {
            Ok::<_, ()>(Some(refresh("r-first", "g2", 9_000)))
        })
        .await
        .unwrap();
    assert_eq!(redeemed, Ok(CodeRedemption::Redeemed));
    let read = store
        .refresh_token_and_user("r-first")
        .await
        .unwrap()
        .expect("the first token is read with its grant and user");
    assert_eq!(read.token, refresh("r-first", "g2", 9_000));
    assert_eq!(read.grant, g);
    assert_eq!(read.user.id, "u2");

    // Taken by the first token: a rotation to its hash changes nothing.
    let err = store
        .rotate_refresh_token("r-first", &refresh("r-first", "g2", 9_000), 130)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(
        store
            .refresh_token("r-first")
            .await
            .unwrap()
            .unwrap()
            .used_at,
        None
    );

    rotated_twice_then_reused(store, "g2", "r-first", 9_000).await;
}

/// A first token past its own expiry (before its grant's) does not rotate, and is not reuse.
pub async fn first_refresh_token_expires(ctx: Ctx) {
    let store = &ctx.store;
    let (c, g) = sealed_fixture(store).await;
    store
        .redeem_sealed_code(&c, &g, 120, |_, _| {
            Ok::<_, ()>(Some(refresh("r-first", "g2", 500)))
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store
            .rotate_refresh_token("r-first", &refresh("r-2", "g2", 9_000), 500)
            .await
            .unwrap(),
        Rotation::Expired
    );
    assert_eq!(store.grant("g2").await.unwrap().unwrap().revoked_at, None);
    assert_eq!(store.refresh_token("r-2").await.unwrap(), None);
}

/// A first refresh token not of its grant (another grant, client or scope, or already used) is
/// refused before anything is stored: the code is not spent.
pub async fn first_refresh_token_must_be_of_its_grant(ctx: Ctx) {
    let store = &ctx.store;
    let (c, g) = sealed_fixture(store).await;
    let mut narrower = refresh("r-first", "g2", 9_000);
    narrower.scope = "openid".to_owned();
    for bad in [refresh("r-first", "g1", 9_000), narrower] {
        let err = store
            .redeem_sealed_code(&c, &g, 120, |_, _| Ok::<_, ()>(Some(bad.clone())))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    }
    assert_eq!(store.grant("g2").await.unwrap(), None);
    assert_eq!(store.refresh_token("r-first").await.unwrap(), None);
}

/// Redemptions at the same moment share commits (on SQLite, one group): one whose first
/// refresh token's hash is taken fails alone, and the others' grants and tokens are stored.
pub async fn concurrent_redemptions_fail_alone(ctx: Ctx) {
    let store = ctx.store.clone();
    sealed_fixture(&store).await;
    store
        .insert_user(&new_user("u1", "u1@example.com"))
        .await
        .unwrap();
    create_grant(&store, &grant("g1", "u1", None, false)).await;
    store
        .insert_refresh_token(&refresh("taken", "g1", 5_000))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let id = format!("g-{i}");
                let hash = if i % 3 == 0 {
                    "taken".to_owned()
                } else {
                    format!("r-{i}")
                };
                store
                    .redeem_sealed_code(&code(&id, 160), &grant(&id, "u2", None, true), 120, {
                        let id = id.clone();
                        move |_, _| Ok::<_, ()>(Some(refresh(&hash, &id, 9_000)))
                    })
                    .await
            })
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        let outcome = t.await.unwrap();
        let id = format!("g-{i}");
        if i % 3 == 0 {
            assert!(
                matches!(outcome, Err(StoreError::Conflict(_))),
                "{outcome:?}"
            );
            assert_eq!(store.grant(&id).await.unwrap(), None, "{id} spent nothing");
        } else {
            assert_eq!(outcome.unwrap(), Ok(CodeRedemption::Redeemed));
            assert_eq!(
                store.refresh_token(&format!("r-{i}")).await.unwrap(),
                Some(refresh(&format!("r-{i}"), &id, 9_000)),
            );
        }
    }
    assert_eq!(
        store.refresh_token("taken").await.unwrap(),
        Some(refresh("taken", "g1", 5_000))
    );
}
