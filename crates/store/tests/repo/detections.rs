//! Risk detections with their atomic risk changes, the leaked-credentials corpus, leak
//! fingerprints, tenant secrets and the password-spray count.

use serde_json::json;
use tenantd_store::{
    DetectionFilter, DetectionRecord, LeakedCredential, RiskChange, SignInLog, StoreError,
    UserRiskRecord,
};

use crate::{Ctx, new_user};

fn detection(id: &str, user: &str, kind: &str, level: &str, at: i64) -> DetectionRecord {
    DetectionRecord {
        id: id.to_owned(),
        user_id: user.to_owned(),
        risk_event_type: kind.to_owned(),
        risk_level: level.to_owned(),
        detection_timing_type: "offline".to_owned(),
        source: "IdentityProtection".to_owned(),
        ip_address: Some("192.0.2.1".to_owned()),
        detected_at: at,
        state: "active".to_owned(),
        explanation: format!("{kind} for {user}"),
    }
}

fn status(user: &str, level: &str, state: &str, detail: &str, at: i64) -> UserRiskRecord {
    UserRiskRecord {
        user_id: user.to_owned(),
        level: level.to_owned(),
        state: state.to_owned(),
        detail: detail.to_owned(),
        updated_at: at,
    }
}

fn raise(d: DetectionRecord, expected: Option<UserRiskRecord>, level: &str) -> RiskChange {
    RiskChange {
        signals: Vec::new(),
        record: status(&d.user_id, level, "atRisk", "none", d.detected_at),
        expected,
        detection: Some(d),
        resolve_active_to: None,
        actor: "system".to_owned(),
        reason: Some("detected".to_owned()),
        audit: None,
    }
}

pub async fn detection_and_status_are_one_change(ctx: Ctx) {
    let store = &ctx.store;
    store
        .insert_user(&new_user("u1", "u1@example.com"))
        .await
        .unwrap();
    store
        .insert_user(&new_user("u2", "u2@example.com"))
        .await
        .unwrap();
    let d1 = detection("d1", "u1", "leakedCredentials", "high", 200);
    store
        .apply_risk_changes(&[raise(d1.clone(), None, "high")])
        .await
        .unwrap();
    let s1 = status("u1", "high", "atRisk", "none", 200);
    assert_eq!(store.user_risk("u1").await.unwrap(), Some(s1.clone()));
    assert_eq!(store.risk_history("u1").await.unwrap().len(), 1);
    assert_eq!(
        store.active_detections("u1").await.unwrap(),
        vec![d1.clone()]
    );

    // A change computed from a stale status is refused, and nothing of it is written.
    let stale = raise(
        detection("d2", "u1", "passwordSpray", "high", 210),
        None,
        "high",
    );
    assert!(matches!(
        store.apply_risk_changes(&[stale]).await,
        Err(StoreError::Conflict(_))
    ));
    // All or nothing across users: u2's valid change is rolled back with u1's stale one.
    let ok_u2 = raise(
        detection("d3", "u2", "passwordSpray", "high", 220),
        None,
        "high",
    );
    let stale_u1 = raise(
        detection("d4", "u1", "passwordSpray", "high", 220),
        Some(status("u1", "low", "atRisk", "none", 1)),
        "high",
    );
    assert!(matches!(
        store.apply_risk_changes(&[ok_u2, stale_u1]).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.user_risk("u2").await.unwrap(), None);
    assert!(store.risk_history("u2").await.unwrap().is_empty());
    assert_eq!(
        store.active_detections("u1").await.unwrap(),
        vec![d1.clone()]
    );
    assert_eq!(store.risk_history("u1").await.unwrap().len(), 1);

    // Unknown user: not found, nothing written.
    let ghost = raise(
        detection("d5", "ghost", "passwordSpray", "high", 230),
        None,
        "high",
    );
    assert!(matches!(
        store.apply_risk_changes(&[ghost]).await,
        Err(StoreError::NotFound)
    ));
    // A taken detection id is a conflict.
    let dup = raise(d1.clone(), Some(s1.clone()), "high");
    assert!(matches!(
        store.apply_risk_changes(&[dup]).await,
        Err(StoreError::Conflict(_))
    ));

    // Remediation resolves the active detections in the same change.
    let d6 = detection("d6", "u1", "passwordSpray", "medium", 240);
    let s2 = status("u1", "high", "atRisk", "none", 240);
    store
        .apply_risk_changes(&[raise(d6, Some(s1), "high")])
        .await
        .unwrap();
    assert_eq!(store.active_detections("u1").await.unwrap().len(), 2);
    let remediated = status(
        "u1",
        "none",
        "remediated",
        "adminGeneratedTemporaryPassword",
        250,
    );
    store
        .apply_risk_changes(&[RiskChange {
            signals: Vec::new(),
            record: remediated.clone(),
            expected: Some(s2),
            detection: None,
            resolve_active_to: Some("remediated".to_owned()),
            actor: "admin:cli".to_owned(),
            reason: None,
            audit: None,
        }])
        .await
        .unwrap();
    assert!(store.active_detections("u1").await.unwrap().is_empty());
    assert_eq!(store.user_risk("u1").await.unwrap(), Some(remediated));
    let all = store
        .list_detections(&DetectionFilter {
            user_id: Some("u1".to_owned()),
            ..DetectionFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|d| d.state == "remediated"));
    let history = store.risk_history("u1").await.unwrap();
    assert_eq!(history.len(), 3);
    assert_eq!(history[0].state, "remediated");
    assert_eq!(history[0].actor, "admin:cli");
}

pub async fn detections_list_newest_first_with_paging(ctx: Ctx) {
    let store = &ctx.store;
    for u in ["u1", "u2"] {
        store
            .insert_user(&new_user(u, &format!("{u}@example.com")))
            .await
            .unwrap();
    }
    let mut expected_u1 = None;
    let mut expected_u2 = None;
    for i in 0..6 {
        let (user, expected) = if i % 2 == 0 {
            ("u1", &mut expected_u1)
        } else {
            ("u2", &mut expected_u2)
        };
        let d = detection(&format!("d{i}"), user, "passwordSpray", "high", 300 + i);
        let change = raise(d, expected.clone(), "high");
        store
            .apply_risk_changes(std::slice::from_ref(&change))
            .await
            .unwrap();
        *expected = Some(change.record);
    }
    let ids = |v: Vec<DetectionRecord>| v.into_iter().map(|d| d.id).collect::<Vec<_>>();
    let all = store
        .list_detections(&DetectionFilter::default())
        .await
        .unwrap();
    assert_eq!(ids(all), ["d5", "d4", "d3", "d2", "d1", "d0"]);
    let page = store
        .list_detections(&DetectionFilter {
            user_id: None,
            limit: 2,
            offset: 2,
        })
        .await
        .unwrap();
    assert_eq!(ids(page), ["d3", "d2"]);
    let u2 = store
        .list_detections(&DetectionFilter {
            user_id: Some("u2".to_owned()),
            limit: 10,
            offset: 1,
        })
        .await
        .unwrap();
    assert_eq!(ids(u2), ["d3", "d1"]);
    // The latest of a kind since a time: u1 has passwordSpray at 300, 302, 304.
    let latest = |user: &'static str, kind: &'static str, since: i64| {
        let store = store.clone();
        async move {
            store
                .latest_detection_since(user, kind, since)
                .await
                .unwrap()
        }
    };
    assert_eq!(latest("u1", "passwordSpray", 0).await, Some(304));
    assert_eq!(latest("u1", "passwordSpray", 304).await, Some(304));
    assert_eq!(latest("u1", "passwordSpray", 305).await, None);
    assert_eq!(latest("u1", "leakedCredentials", 0).await, None);
    assert_eq!(latest("u2", "passwordSpray", 0).await, Some(305));
}

fn leaked(sha1: &str, email: Option<&str>) -> LeakedCredential {
    LeakedCredential {
        sha1: sha1.to_owned(),
        email: email.map(str::to_owned),
        count: 3,
    }
}

const H1: &str = "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8";
const H2: &str = "7C4A8D09CA3762AF61E59520943DC26494F8941B";

pub async fn leaked_corpus_imports_and_matches(ctx: Ctx) {
    let store = &ctx.store;
    assert!(!store.is_leaked(H1, "a@example.com").await.unwrap());
    let entries: Vec<LeakedCredential> = (0..1000)
        .map(|i| leaked(&format!("{i:040X}"), None))
        .chain([
            leaked(&H1.to_lowercase(), None),
            leaked(H2, Some("Bob@Example.com")),
        ])
        .collect();
    let new = store
        .import_leaked_credentials(&entries, "big.txt", 100)
        .await
        .unwrap();
    assert_eq!(new, 1002);
    assert_eq!(store.leaked_credentials_count().await.unwrap(), 1002);
    // Idempotent: importing again adds nothing; a pair and a password-only entry of the same
    // hash are two entries.
    let again = store
        .import_leaked_credentials(
            &[leaked(H1, None), leaked(H1, Some("c@example.com"))],
            "x",
            200,
        )
        .await
        .unwrap();
    assert_eq!(again, 1);
    // Password-only entries match everyone; pairs only their address.
    assert!(store.is_leaked(H1, "anyone@example.com").await.unwrap());
    assert!(
        store
            .is_leaked(&H2.to_lowercase(), "BOB@example.com")
            .await
            .unwrap()
    );
    assert!(!store.is_leaked(H2, "alice@example.com").await.unwrap());
}

pub async fn fingerprints_and_tenant_secret(ctx: Ctx) {
    let store = &ctx.store;
    for u in ["u1", "u2", "u3"] {
        store
            .insert_user(&new_user(u, &format!("{u}@example.com")))
            .await
            .unwrap();
    }
    assert_eq!(store.leak_fingerprint("u1").await.unwrap(), None);
    store.set_leak_fingerprint("u1", "fp-a", 100).await.unwrap();
    store.set_leak_fingerprint("u2", "fp-b", 100).await.unwrap();
    store.set_leak_fingerprint("u3", "fp-a", 100).await.unwrap();
    store.set_leak_fingerprint("u2", "fp-c", 110).await.unwrap();
    assert_eq!(
        store.leak_fingerprint("u2").await.unwrap(),
        Some(("fp-c".to_owned(), 110))
    );
    assert!(matches!(
        store.set_leak_fingerprint("ghost", "fp", 100).await,
        Err(StoreError::NotFound)
    ));
    let mut wanted: Vec<String> = (0..900).map(|i| format!("other-{i}")).collect();
    wanted.push("fp-a".to_owned());
    wanted.push("fp-b".to_owned());
    let found = store.users_with_fingerprints(&wanted).await.unwrap();
    assert_eq!(
        found,
        [
            ("u1".to_owned(), "fp-a".to_owned()),
            ("u3".to_owned(), "fp-a".to_owned())
        ]
    );

    let first = store.tenant_secret("leak-key", "k1", 100).await.unwrap();
    let second = store.tenant_secret("leak-key", "k2", 200).await.unwrap();
    assert_eq!((first.as_str(), second.as_str()), ("k1", "k1"));
    // Another replica gets the value stored first, whether it reads it or stores it.
    let other = tenantd_store::Store::connect(&ctx.url, crate::sealer())
        .await
        .unwrap();
    assert_eq!(
        other.tenant_secret("leak-key", "k3", 300).await.unwrap(),
        "k1"
    );
    let theirs = other.tenant_secret("push", "p1", 300).await.unwrap();
    assert_eq!(
        store.tenant_secret("push", "p2", 400).await.unwrap(),
        theirs
    );
    other.close().await;
}

fn attempt(i: i64, ip: &str, upn: &str, code: i64, at: i64) -> SignInLog {
    SignInLog {
        id: format!("s{i}"),
        created_at: at,
        correlation_id: format!("c{i}"),
        user_id: None,
        user_principal_name: Some(upn.to_owned()),
        app_id: None,
        ip_address: Some(ip.to_owned()),
        user_agent: None,
        error_code: code,
        failure_reason: None,
        user_type: "member".to_owned(),
        cross_tenant_access_type: "none".to_owned(),
        home_tenant_id: None,
        resource_tenant_id: None,
        risk_level_aggregated: None,
        risk_level_during_sign_in: None,
        conditional_access_status: None,
        location: None,
        details: json!({}),
        sign_in_event_type: "interactiveUser".to_owned(),
        risk_state: None,
        risk_detail: None,
    }
}

pub async fn failed_accounts_are_counted_per_ip_and_window(ctx: Ctx) {
    let store = &ctx.store;
    let rows = [
        attempt(1, "203.0.113.9", "a@x", 50126, 1000),
        attempt(2, "203.0.113.9", "a@x", 50126, 1001), // same account again
        attempt(3, "203.0.113.9", "b@x", 50034, 1002),
        attempt(4, "203.0.113.9", "c@x", 0, 1003), // a success does not count
        attempt(5, "203.0.113.9", "d@x", 53003, 1004), // another failure kind
        attempt(6, "198.51.100.1", "e@x", 50126, 1005), // another IP
        attempt(7, "203.0.113.9", "f@x", 50126, 10), // too old
    ];
    for r in &rows {
        store.insert_sign_in(r).await.unwrap();
    }
    let codes = [50126, 50034];
    assert_eq!(
        store
            .failed_accounts_from_ip("203.0.113.9", 900, &codes)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .failed_accounts_from_ip("203.0.113.9", 0, &codes)
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        store
            .failed_accounts_from_ip("192.0.2.200", 0, &codes)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .failed_accounts_from_ip("203.0.113.9", 0, &[])
            .await
            .unwrap(),
        0
    );
}

/// Failures still in the log's queue count as soon as they are logged; queued successes and
/// other IPs' failures do not.
pub async fn queued_failures_count_for_the_spray(ctx: Ctx) {
    let store = &ctx.store;
    let codes = [50126, 50034];
    store.log_sign_in(attempt(1, "203.0.113.9", "a@x", 50126, 1000));
    store.log_sign_in(attempt(2, "203.0.113.9", "c@x", 0, 1001));
    store.log_sign_in(attempt(3, "198.51.100.1", "e@x", 50126, 1002));
    let count = |ip: &'static str| async move {
        store
            .failed_accounts_from_ip(ip, 900, &codes)
            .await
            .unwrap()
    };
    assert_eq!(count("203.0.113.9").await, 1);
    store.log_sign_in(attempt(4, "203.0.113.9", "b@x", 50034, 1003));
    store.log_sign_in(attempt(5, "203.0.113.9", "a@x", 50126, 1004)); // same account again
    store.log_sign_in(attempt(6, "203.0.113.9", "d@x", 0, 1005));
    assert_eq!(count("203.0.113.9").await, 2);
    assert_eq!(count("198.51.100.1").await, 1);
    store.log_sign_in(attempt(7, "198.51.100.1", "f@x", 50126, 1006));
    assert_eq!(count("198.51.100.1").await, 2);
}

/// The spray count seeks one IP's failures in the window: the index orders by IP, error code
/// and time, so the successes of a busy shared IP are not read at all.
pub async fn the_spray_count_seeks_only_failures(ctx: Ctx) {
    use sqlx::{Connection, Executor, Row};
    // A shared egress IP: many successes, a few failures, and the planners' statistics on them.
    for i in 0..400 {
        let (code, upn) = if i % 40 == 0 {
            (50126, "a@x")
        } else {
            (0, "b@x")
        };
        ctx.store
            .log_sign_in(attempt(i, "203.0.113.9", upn, code, 1_000 + i));
    }
    ctx.store.flush_sign_ins().await.unwrap();
    assert_eq!(
        ctx.store
            .failed_accounts_from_ip("203.0.113.9", 900, &[50126, 50034])
            .await
            .unwrap(),
        1
    );
    let sql = "SELECT COUNT(DISTINCT user_principal_name) FROM sign_ins \
               WHERE ip_address = '203.0.113.9' AND created_at >= 900 \
               AND error_code IN (50126, 50034)";
    let mut conn = sqlx::AnyConnection::connect(&ctx.url).await.unwrap();
    conn.execute("ANALYZE").await.unwrap();
    let plan: Vec<String> = if ctx.url.starts_with("sqlite:") {
        let rows = conn
            .fetch_all(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
            .await
            .unwrap();
        rows.iter().map(|r| r.get::<String, _>("detail")).collect()
    } else {
        // 400 rows are read whole sooner than through any index: ask which index it would be.
        conn.execute("SET enable_seqscan = off").await.unwrap();
        let rows = conn
            .fetch_all(sqlx::AssertSqlSafe(format!("EXPLAIN {sql}")))
            .await
            .unwrap();
        rows.iter().map(|r| r.get::<String, _>(0)).collect()
    };
    let seeks_failures = plan.iter().any(|line| {
        // SQLite: `SEARCH … USING INDEX … (ip_address=? AND error_code=? …)`; PostgreSQL: the
        // scan's `Index Cond`, not a `Filter` applied to what it read.
        (line.contains("USING INDEX") || line.contains("Index Cond")) && line.contains("error_code")
    });
    let plan = plan.join("\n");
    assert!(plan.contains("sign_ins_ip_error_idx"), "{plan}");
    assert!(
        seeks_failures,
        "the error code is a key of the seek: {plan}"
    );
    conn.close().await.unwrap();
}

/// Remediating a user closes their open risky sign-ins the way their risk was closed (a row
/// still queued behind the request included); a refused sign-in confirmed safe then counts as
/// one of theirs for sign-in risk's familiarity, and other users' rows are untouched.
pub async fn remediation_closes_risky_sign_ins_and_confirmed_safe_ones_are_familiar(ctx: Ctx) {
    let store = &ctx.store;
    for u in ["u1", "u2"] {
        store
            .insert_user(&new_user(u, &format!("{u}@example.com")))
            .await
            .unwrap();
    }
    let risky = |i: i64, user: &str, ip: &str, queued: bool| {
        let mut s = attempt(i, ip, &format!("{user}@example.com"), 53003, 100 + i);
        s.user_id = Some(user.to_owned());
        s.risk_state = Some("atRisk".to_owned());
        s.risk_detail = Some("none".to_owned());
        (s, queued)
    };
    for (s, queued) in [
        risky(1, "u1", "203.0.113.1", false),
        risky(2, "u1", "203.0.113.2", true),
        risky(3, "u2", "203.0.113.3", false),
    ] {
        if queued {
            store.log_sign_in(s);
        } else {
            store.insert_sign_in(&s).await.unwrap();
        }
    }
    assert!(crate::recent(store, "u1", 10).await.unwrap().is_empty());
    let d = detection("d1", "u1", "unfamiliarFeatures", "high", 100);
    store
        .apply_risk_changes(&[raise(d, None, "high")])
        .await
        .unwrap();
    let safe = RiskChange {
        signals: Vec::new(),
        record: status("u1", "none", "confirmedSafe", "adminConfirmedUserSafe", 200),
        expected: Some(status("u1", "high", "atRisk", "none", 100)),
        detection: None,
        resolve_active_to: Some("dismissed".to_owned()),
        actor: "admin".to_owned(),
        reason: None,
        audit: None,
    };
    store.apply_risk_changes(&[safe]).await.unwrap();
    let rows = store
        .list_sign_ins(&tenantd_store::SignInFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let state_of = |id: &str| {
        let r = rows.iter().find(|r| r.id == id).unwrap();
        (
            r.risk_state.clone().unwrap(),
            r.risk_detail.clone().unwrap(),
        )
    };
    assert_eq!(
        state_of("s1"),
        ("confirmedSafe".into(), "adminConfirmedUserSafe".into())
    );
    assert_eq!(state_of("s2").0, "confirmedSafe");
    assert_eq!(state_of("s3").0, "atRisk", "another user's sign-in");
    let familiar: Vec<Option<String>> = crate::recent(store, "u1", 10)
        .await
        .unwrap()
        .iter()
        .map(|r| r.ip_address.clone())
        .collect();
    assert_eq!(
        familiar,
        [
            Some("203.0.113.2".to_owned()),
            Some("203.0.113.1".to_owned())
        ]
    );
    assert!(crate::recent(store, "u2", 10).await.unwrap().is_empty());
}

/// Retention deletes what is older than its cut-offs, a batch at a time, and keeps detections
/// that are still active whatever their age.
pub async fn retention_purges_old_rows_in_batches_and_keeps_active_detections(ctx: Ctx) {
    let store = &ctx.store;
    store
        .insert_user(&new_user("u1", "u1@example.com"))
        .await
        .unwrap();
    for (i, at) in [(1, 100), (2, 200), (3, 300), (4, 10_000)] {
        store
            .insert_sign_in(&attempt(i, "192.0.2.1", "u1@example.com", 0, at))
            .await
            .unwrap();
    }
    store
        .apply_risk_changes(&[raise(
            detection("d1", "u1", "leakedCredentials", "high", 100),
            None,
            "high",
        )])
        .await
        .unwrap();
    store
        .apply_risk_changes(&[RiskChange {
            signals: Vec::new(),
            record: status(
                "u1",
                "none",
                "dismissed",
                "adminDismissedAllRiskForUser",
                150,
            ),
            expected: Some(status("u1", "high", "atRisk", "none", 100)),
            detection: None,
            resolve_active_to: Some("dismissed".to_owned()),
            actor: "admin".to_owned(),
            reason: None,
            audit: None,
        }])
        .await
        .unwrap();
    store
        .apply_risk_changes(&[raise(
            detection("d2", "u1", "passwordSpray", "high", 200),
            Some(status(
                "u1",
                "none",
                "dismissed",
                "adminDismissedAllRiskForUser",
                150,
            )),
            "high",
        )])
        .await
        .unwrap();
    let cut = tenantd_store::Retention {
        sign_ins_before: 5_000,
        risk_before: 5_000,
        audits_before: 5_000,
    };
    // Batches of two: the first is full (more may wait), the second finishes.
    let first = store.purge_retained(&cut, 2).await.unwrap();
    assert_eq!(first.sign_ins, 2);
    assert!(first.full(2));
    let second = store.purge_retained(&cut, 2).await.unwrap();
    assert_eq!(second.sign_ins, 1);
    assert!(!store.purge_retained(&cut, 2).await.unwrap().full(2));
    let left = store
        .list_sign_ins(&tenantd_store::SignInFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].created_at, 10_000);
    // d1 was dismissed and is old: gone; d2 is old but active: it still makes u1's risk.
    let kept: Vec<String> = store
        .list_detections(&DetectionFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(kept, ["d2"]);
    assert!(store.risk_history("u1").await.unwrap().is_empty());
    assert_eq!(
        store.user_risk("u1").await.unwrap().map(|r| r.level),
        Some("high".to_owned())
    );
}

/// An admin's change and its audit line are written together: a refused change (a stale
/// status) leaves no audit line behind.
pub async fn an_admin_change_and_its_audit_line_are_one_transaction(ctx: Ctx) {
    let store = &ctx.store;
    store
        .insert_user(&new_user("u1", "u1@example.com"))
        .await
        .unwrap();
    let audit = |id: &str| tenantd_store::DirectoryAudit {
        id: id.to_owned(),
        activity_date_time: 200,
        category: "IdentityProtection".to_owned(),
        activity_display_name: "Confirm user compromised".to_owned(),
        operation_type: "Update".to_owned(),
        logged_by_service: "Identity Protection".to_owned(),
        result: "success".to_owned(),
        correlation_id: "c".to_owned(),
        initiated_by: "{}".to_owned(),
        target_id: Some("u1".to_owned()),
        target_resources: "[]".to_owned(),
        additional_details: "[]".to_owned(),
    };
    let change = |expected: Option<UserRiskRecord>, id: &str| RiskChange {
        signals: Vec::new(),
        record: status(
            "u1",
            "high",
            "confirmedCompromised",
            "adminConfirmedUserCompromised",
            200,
        ),
        expected,
        detection: None,
        resolve_active_to: None,
        actor: "admin".to_owned(),
        reason: None,
        audit: Some(audit(id)),
    };
    let stale = change(Some(status("u1", "low", "atRisk", "none", 1)), "a-stale");
    assert!(matches!(
        store.apply_risk_changes(&[stale]).await,
        Err(StoreError::Conflict(_))
    ));
    store
        .apply_risk_changes(&[change(None, "a-ok")])
        .await
        .unwrap();
    let lines: Vec<String> = store
        .list_audits(&tenantd_store::AuditFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(lines, ["a-ok"]);
}
