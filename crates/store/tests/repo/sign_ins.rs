//! The sign-in log.

use serde_json::json;
use tenantd_store::{SignInFilter, SignInLog, StoreError};

use crate::Ctx;

/// Sign-in `i`: user `u-odd` or `u-even`, a success unless `i` is a multiple of 4, a refresh when
/// `i % 7 == 6`, at `1_000 + i`.
pub fn log(i: i64) -> SignInLog {
    SignInLog {
        id: format!("log-{i:02}"),
        created_at: 1_000 + i,
        correlation_id: format!("corr-{i}"),
        user_id: Some(if i % 2 == 0 { "u-even" } else { "u-odd" }.to_owned()),
        user_principal_name: Some(format!("user{i}@example.com")),
        app_id: Some(if i % 3 == 0 { "app-a" } else { "app-b" }.to_owned()),
        ip_address: Some("192.0.2.7".to_owned()),
        user_agent: None,
        error_code: if i % 4 == 0 { 53003 } else { 0 },
        failure_reason: (i % 4 == 0).then(|| "Blocked by Conditional Access".to_owned()),
        user_type: "member".to_owned(),
        cross_tenant_access_type: "none".to_owned(),
        home_tenant_id: None,
        resource_tenant_id: Some("tenant-1".to_owned()),
        risk_level_aggregated: Some(if i % 5 == 0 { "high" } else { "none" }.to_owned()),
        risk_level_during_sign_in: Some(if i % 3 == 0 { "medium" } else { "none" }.to_owned()),
        conditional_access_status: Some("notApplied".to_owned()),
        location: None,
        details: json!({ "n": i }),
        // Every seventh is a refresh.
        sign_in_event_type: if i % 7 == 6 {
            "nonInteractiveUser"
        } else {
            "interactiveUser"
        }
        .to_owned(),
        risk_state: None,
        risk_detail: None,
    }
}

fn ids(logs: &[SignInLog]) -> Vec<String> {
    logs.iter().map(|l| l.id.clone()).collect()
}

fn expect(range: impl Iterator<Item = i64>) -> Vec<String> {
    range.map(|i| format!("log-{i:02}")).collect()
}

pub async fn filters_and_paging(ctx: Ctx) {
    let store = &ctx.store;
    // Inserted out of order: the order comes from created_at.
    for i in [5, 0, 9, 3, 11, 1, 7, 2, 10, 4, 8, 6] {
        store.insert_sign_in(&log(i)).await.unwrap();
    }
    assert!(matches!(
        store.insert_sign_in(&log(5)).await,
        Err(StoreError::Conflict(_))
    ));

    let all = store.list_sign_ins(&SignInFilter::default()).await.unwrap();
    assert_eq!(ids(&all), expect((0..12).rev()), "newest first");
    assert_eq!(all[0], log(11));
    let refreshes = SignInFilter {
        sign_in_event_type: Some("nonInteractiveUser".to_owned()),
        ..SignInFilter::default()
    };
    assert_eq!(
        ids(&store.list_sign_ins(&refreshes).await.unwrap()),
        expect([6].into_iter())
    );

    let page = |limit, offset| SignInFilter {
        limit,
        offset,
        ..SignInFilter::default()
    };
    assert_eq!(
        ids(&store.list_sign_ins(&page(5, 0)).await.unwrap()),
        expect((7..12).rev())
    );
    assert_eq!(
        ids(&store.list_sign_ins(&page(5, 5)).await.unwrap()),
        expect((2..7).rev())
    );
    assert_eq!(
        ids(&store.list_sign_ins(&page(5, 10)).await.unwrap()),
        expect((0..2).rev())
    );
    assert!(store.list_sign_ins(&page(5, 12)).await.unwrap().is_empty());
    assert!(store.list_sign_ins(&page(-1, 0)).await.unwrap().is_empty());

    let by_user = SignInFilter {
        user_id: Some("u-even".to_owned()),
        ..SignInFilter::default()
    };
    assert_eq!(
        ids(&store.list_sign_ins(&by_user).await.unwrap()),
        expect((0..12).rev().filter(|i| i % 2 == 0))
    );
    let by_app = SignInFilter {
        app_id: Some("app-a".to_owned()),
        ..SignInFilter::default()
    };
    assert_eq!(
        ids(&store.list_sign_ins(&by_app).await.unwrap()),
        expect([9, 6, 3, 0].into_iter())
    );
    let failures = SignInFilter {
        success: Some(false),
        ..SignInFilter::default()
    };
    assert_eq!(
        ids(&store.list_sign_ins(&failures).await.unwrap()),
        expect([8, 4, 0].into_iter())
    );
    let successes = SignInFilter {
        success: Some(true),
        ..SignInFilter::default()
    };
    assert_eq!(store.list_sign_ins(&successes).await.unwrap().len(), 9);
    let window = SignInFilter {
        from: Some(1_003),
        to: Some(1_006),
        ..SignInFilter::default()
    };
    assert_eq!(
        ids(&store.list_sign_ins(&window).await.unwrap()),
        expect((3..=6).rev())
    );

    let risky = SignInFilter {
        risk_level_during_sign_in: Some("medium".to_owned()),
        ..SignInFilter::default()
    };
    assert_eq!(
        ids(&store.list_sign_ins(&risky).await.unwrap()),
        expect([9, 6, 3, 0].into_iter())
    );
    let high_user_risk = SignInFilter {
        risk_level_aggregated: Some("high".to_owned()),
        ..SignInFilter::default()
    };
    assert_eq!(
        ids(&store.list_sign_ins(&high_user_risk).await.unwrap()),
        expect([10, 5, 0].into_iter())
    );
    let blocked = SignInFilter {
        error_code: Some(53003),
        user_principal_name: Some("user8@example.com".to_owned()),
        ..SignInFilter::default()
    };
    assert_eq!(
        ids(&store.list_sign_ins(&blocked).await.unwrap()),
        expect([8].into_iter())
    );
    let correlated = SignInFilter {
        correlation_id: Some("corr-7".to_owned()),
        ..SignInFilter::default()
    };
    assert_eq!(
        ids(&store.list_sign_ins(&correlated).await.unwrap()),
        expect([7].into_iter())
    );

    // Everything at once, paged.
    let combined = SignInFilter {
        user_id: Some("u-even".to_owned()),
        app_id: Some("app-b".to_owned()),
        success: Some(true),
        from: Some(1_001),
        to: Some(1_011),
        limit: 2,
        offset: 1,
        ..SignInFilter::default()
    };
    // even, app-b (not multiple of 3), success (not multiple of 4), in 1..=11: 2, 10 -> [10, 2]
    assert_eq!(
        ids(&store.list_sign_ins(&combined).await.unwrap()),
        expect([2].into_iter())
    );
}

pub async fn details_round_trip(ctx: Ctx) {
    let store = &ctx.store;
    let mut entry = log(1);
    entry.user_id = None;
    entry.app_id = None;
    entry.user_type = "guest".to_owned();
    entry.cross_tenant_access_type = "b2bCollaboration".to_owned();
    entry.home_tenant_id = Some("home".to_owned());
    entry.details = json!({
        "riskLevelDuringSignIn": "high",
        "riskEventTypes": ["unfamiliarFeatures", "anonymizedIPAddress"],
        "appliedConditionalAccessPolicies": [{ "id": "p1", "result": "failure" }],
        "quote": "it's \"quoted\" — ünïcode",
    });
    store.insert_sign_in(&entry).await.unwrap();
    let read = store.list_sign_ins(&SignInFilter::default()).await.unwrap();
    assert_eq!(read, [entry]);
}

pub async fn recent_sign_ins_are_the_users_successes_newest_first(ctx: Ctx) {
    let store = &ctx.store;
    for i in 0..12 {
        let mut l = log(i);
        l.location = Some(format!("{{\"n\":{i}}}"));
        store.insert_sign_in(&l).await.unwrap();
    }
    // u-even's interactive successes (not multiples of 4; 6 is a refresh): 10, 2.
    let recent = crate::recent(store, "u-even", 10).await.unwrap();
    let at: Vec<i64> = recent.iter().map(|r| r.created_at - 1_000).collect();
    assert_eq!(at, [10, 2]);
    assert_eq!(recent[0].location(), Some("{\"n\":10}"));
    assert_eq!(recent[0].ip_address.as_deref(), Some("192.0.2.7"));
    assert_eq!(crate::recent(store, "u-even", 2).await.unwrap().len(), 2);
    assert!(crate::recent(store, "nobody", 10).await.unwrap().is_empty());
}

/// Once read, a user's recent sign-ins stay current: a row logged after is first at once, rows
/// that do not count stay out, a deeper read reaches further back, a row written directly (an
/// import, older than the newest) takes its place by time, and a purge takes rows away.
pub async fn recent_sign_ins_stay_current_after_they_are_read(ctx: Ctx) {
    let store = &ctx.store;
    let times = |rows: &[std::sync::Arc<tenantd_store::RecentSignIn>]| {
        rows.iter().map(|r| r.created_at).collect::<Vec<_>>()
    };
    for i in [1, 3] {
        store.insert_sign_in(&log(i)).await.unwrap();
    }
    let recent = crate::recent(store, "u-odd", 1).await.unwrap();
    assert_eq!(times(&recent), [1_003]);
    store.log_sign_in(log(5));
    let recent = crate::recent(store, "u-odd", 1).await.unwrap();
    assert_eq!(times(&recent), [1_005], "a logged success is the newest");
    let mut failure = log(7);
    failure.error_code = 50_126;
    store.log_sign_in(failure);
    store.log_sign_in(log(13)); // a refresh
    let recent = crate::recent(store, "u-odd", 1).await.unwrap();
    assert_eq!(
        times(&recent),
        [1_005],
        "a failure and a refresh do not count"
    );
    let recent = crate::recent(store, "u-odd", 10).await.unwrap();
    assert_eq!(times(&recent), [1_005, 1_003, 1_001]);
    let mut imported = log(2);
    imported.id = "imported".to_owned();
    imported.user_id = Some("u-odd".to_owned());
    store.insert_sign_in(&imported).await.unwrap();
    let recent = crate::recent(store, "u-odd", 10).await.unwrap();
    assert_eq!(times(&recent), [1_005, 1_003, 1_002, 1_001]);
    store.flush_sign_ins().await.unwrap();
    let retention = tenantd_store::Retention {
        sign_ins_before: 1_003,
        risk_before: 0,
        audits_before: 0,
    };
    store.purge_retained(&retention, 100).await.unwrap();
    let recent = crate::recent(store, "u-odd", 10).await.unwrap();
    assert_eq!(times(&recent), [1_005, 1_003], "purged rows are gone");
}

/// A user's recent sign-ins kept in memory give way to what another replica (another process
/// on the same SQLite file, another server on the same PostgreSQL database) writes, whichever
/// way it writes; each replica's own flushes move the user's version on.
pub async fn recent_sign_ins_see_another_replicas_rows(ctx: Ctx) {
    let store = &ctx.store;
    let other = tenantd_store::Store::connect(&ctx.url, crate::sealer())
        .await
        .unwrap();
    let times = |rows: Vec<std::sync::Arc<tenantd_store::RecentSignIn>>| {
        rows.iter().map(|r| r.created_at).collect::<Vec<_>>()
    };
    store.insert_sign_in(&log(1)).await.unwrap();
    assert_eq!(store.sign_ins_version("u-odd").await.unwrap(), 1);
    assert_eq!(
        times(crate::recent(store, "u-odd", 50).await.unwrap()),
        [1_001]
    );
    store.log_sign_in(log(3));
    store.flush_sign_ins().await.unwrap();
    assert_eq!(store.sign_ins_version("u-odd").await.unwrap(), 2);
    assert_eq!(
        times(crate::recent(store, "u-odd", 50).await.unwrap()),
        [1_003, 1_001]
    );

    other.log_sign_in(log(5));
    other.flush_sign_ins().await.unwrap();
    assert_eq!(
        times(crate::recent(store, "u-odd", 50).await.unwrap()),
        [1_005, 1_003, 1_001],
        "another replica's logged row"
    );
    other.insert_sign_in(&log(7)).await.unwrap();
    assert_eq!(
        times(crate::recent(store, "u-odd", 50).await.unwrap()),
        [1_007, 1_005, 1_003, 1_001],
        "another replica's row written directly"
    );
    // A caller without a version (no session read it) gets the same: the store reads it.
    other.log_sign_in(log(11));
    other.flush_sign_ins().await.unwrap();
    assert_eq!(
        times(store.recent_sign_ins("u-odd", None, 50).await.unwrap()),
        [1_011, 1_007, 1_005, 1_003, 1_001],
        "another replica's row, read without a version"
    );
    store.log_sign_in(log(9));
    store.flush_sign_ins().await.unwrap();
    assert_eq!(
        times(crate::recent(&other, "u-odd", 2).await.unwrap()),
        [1_011, 1_009],
        "and the other way round"
    );

    // A failure is no history: it leaves the version where it was.
    let before = store.sign_ins_version("u-even").await.unwrap();
    store.log_sign_in(log(4));
    store.flush_sign_ins().await.unwrap();
    assert_eq!(store.sign_ins_version("u-even").await.unwrap(), before);
    other.close().await;
}

/// A sign-in logged behind the request is seen at once by sign-in risk (from the queue), by
/// every other reader (which writes the queue first), and survives `close` and a reopen.
pub async fn logged_sign_ins_are_seen_before_and_after_they_are_written(ctx: Ctx) {
    let store = &ctx.store;
    store.insert_sign_in(&log(1)).await.unwrap();
    // Queued: 3 (success), 4 (failure, left out of recent), 5 (success).
    for i in [3, 4, 5] {
        store.log_sign_in(log(i));
    }
    let recent = crate::recent(store, "u-odd", 10).await.unwrap();
    let times: Vec<i64> = recent.iter().map(|r| r.created_at).collect();
    assert_eq!(
        times,
        vec![1_005, 1_003, 1_001],
        "queued rows first, newest first"
    );
    assert_eq!(
        crate::recent(store, "u-odd", 2).await.unwrap().len(),
        2,
        "the limit holds across the queue and the table"
    );

    let all = store.list_sign_ins(&SignInFilter::default()).await.unwrap();
    assert_eq!(ids(&all), expect([5, 4, 3, 1].into_iter()));
    assert_eq!(all[0], log(5), "written as logged");

    store.log_sign_in(log(7));
    store.close().await;
    let reopened = tenantd_store::Store::connect(&ctx.url, crate::sealer())
        .await
        .unwrap();
    let all = reopened
        .list_sign_ins(&SignInFilter::default())
        .await
        .unwrap();
    assert_eq!(
        ids(&all),
        expect([7, 5, 4, 3, 1].into_iter()),
        "close wrote the queue"
    );
    reopened.close().await;
}

/// Without any reader asking, the queue is written within a bounded time.
pub async fn logged_sign_ins_are_written_in_the_background(ctx: Ctx) {
    let store = &ctx.store;
    store.log_sign_in(log(2));
    let other = tenantd_store::Store::connect(&ctx.url, crate::sealer())
        .await
        .unwrap();
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen = other.list_sign_ins(&SignInFilter::default()).await.unwrap();
        if !seen.is_empty() {
            break;
        }
        tokio::time::sleep(tenantd_store::FLUSH_EVERY / 5).await;
    }
    assert_eq!(ids(&seen), expect([2].into_iter()));
    other.close().await;
}

/// One row the database refuses (PostgreSQL takes no NUL byte in text) costs only itself: the
/// rest of its batch is written.
pub async fn a_bad_row_does_not_lose_its_batch(ctx: Ctx) {
    let store = &ctx.store;
    let mut bad = log(4);
    bad.user_agent = Some("nul\0byte".to_owned());
    store.log_sign_in(log(3));
    store.log_sign_in(bad);
    store.log_sign_in(log(5));
    store.flush_sign_ins().await.unwrap();
    let all = ids(&store.list_sign_ins(&SignInFilter::default()).await.unwrap());
    assert!(
        all.contains(&"log-03".to_owned()) && all.contains(&"log-05".to_owned()),
        "{all:?}"
    );
}

/// A sign-in row as the gate writes it: the risk fields in their columns and in details, and
/// the applied policies.
fn judged(i: i64, policies: serde_json::Value) -> SignInLog {
    let mut entry = log(i);
    entry.risk_state = Some("none".to_owned());
    entry.risk_detail = Some("none".to_owned());
    entry.location = Some(r#"{"asn":null,"city":"Oslo","country":"NO"}"#.to_owned());
    entry.details = json!({
        "appliedConditionalAccessPolicies": policies,
        "conditionalAccessStatus": entry.conditional_access_status,
        "riskLevelAggregated": entry.risk_level_aggregated,
        "riskLevelDuringSignIn": entry.risk_level_during_sign_in,
        "riskState": "none",
        "riskDetail": "none",
        "riskDetections": [],
        "singleSignOn": false,
    });
    entry
}

pub async fn lean_rows_read_back_whole(ctx: Ctx) {
    let store = &ctx.store;
    let policies = json!([
        { "id": "p1", "displayName": "Block high-risk sign-ins", "enforcedGrantControls": [],
          "result": "notApplied", "why": "sign-in risk none is not one of the policy's signInRiskLevels" },
        { "id": "p2", "displayName": "MFA for guests", "enforcedGrantControls": ["mfa"],
          "result": "reportOnlyFailure", "why": "the policy applies and requires mfa" },
    ]);
    let other = json!([{ "id": "p3", "displayName": "x", "enforcedGrantControls": ["block"],
                         "result": "failure", "why": "the policy applies and its grant control is block" }]);
    let a = judged(1, policies.clone());
    let b = judged(2, policies);
    let c = judged(3, other);
    // A row of before migration 0026: everything in details, no policy set.
    let mut old = judged(4, json!([{ "id": "p9" }]));
    old.id = "log-00-old".to_owned();
    let pool = crate::raw_pool(&ctx.url).await;
    sqlx::query(
        "INSERT INTO sign_ins (id, created_at, correlation_id, error_code, user_type, \
         cross_tenant_access_type, risk_level_aggregated, risk_level_during_sign_in, \
         conditional_access_status, details, sign_in_event_type) \
         VALUES ($1, 900, 'c', 0, 'member', 'none', 'none', 'medium', 'notApplied', $2, \
         'interactiveUser')",
    )
    .bind(&old.id)
    .bind(old.details.to_string())
    .execute(&pool)
    .await
    .unwrap();
    store.insert_sign_in(&a).await.unwrap();
    store.log_sign_in(b.clone());
    store.log_sign_in(c.clone());
    store.flush_sign_ins().await.unwrap();

    let read = store.list_sign_ins(&SignInFilter::default()).await.unwrap();
    assert_eq!(read.len(), 4);
    assert_eq!(read[0], c);
    assert_eq!(read[1], b);
    assert_eq!(read[2], a);
    assert_eq!(read[3].details, old.details);

    // Stored: each list of policies once, and details without what has columns.
    let (sets,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM sign_in_policy_sets")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(sets, 2);
    let (details, moved): (String, i64) =
        sqlx::query_as("SELECT details, details_moved FROM sign_ins WHERE id = 'log-01'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(moved, 7);
    let stored: serde_json::Value = serde_json::from_str(&details).unwrap();
    assert_eq!(
        stored,
        json!({ "riskState": "none", "riskDetail": "none", "riskDetections": [], "singleSignOn": false })
    );
    // A details value that differs from its column stays in details.
    let mut d = judged(5, json!([]));
    d.details["riskLevelAggregated"] = json!("low");
    store.insert_sign_in(&d).await.unwrap();
    let read = store
        .list_sign_ins(&SignInFilter {
            correlation_id: Some("corr-5".to_owned()),
            ..SignInFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(read, [d]);
}

/// A batch larger than one statement's rows (on PostgreSQL 45 rows go as 32 + 8 + 4 + 1), with
/// two lists of policies among them, reads back whole: every row, in order, with its details.
pub async fn a_large_batch_is_written_whole(ctx: Ctx) {
    let store = &ctx.store;
    let sets = [
        json!([{ "id": "p1", "displayName": "one", "enforcedGrantControls": [],
                 "result": "notApplied", "why": "x" }]),
        json!([{ "id": "p2", "displayName": "two", "enforcedGrantControls": ["mfa"],
                 "result": "success", "why": "y" }]),
    ];
    let logged: Vec<SignInLog> = (0..45)
        .map(|i| {
            let mut row = judged(i, sets[(i % 2) as usize].clone());
            row.id = format!("log-{i:03}");
            row
        })
        .collect();
    for row in &logged {
        store.log_sign_in(row.clone());
    }
    store.flush_sign_ins().await.unwrap();

    let mut read = store
        .list_sign_ins(&SignInFilter {
            limit: 100,
            ..SignInFilter::default()
        })
        .await
        .unwrap();
    read.reverse();
    assert_eq!(read, logged);
    let pool = crate::raw_pool(&ctx.url).await;
    let (sets,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM sign_in_policy_sets")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(sets, 2);
}
