//! The directory audit log.

use tenantd_store::{AuditFilter, DirectoryAudit, StoreError};

use crate::Ctx;

fn audit(id: &str, at: i64, activity: &str, target: &str) -> DirectoryAudit {
    DirectoryAudit {
        id: id.to_owned(),
        activity_date_time: at,
        category: "IdentityProtection".to_owned(),
        activity_display_name: activity.to_owned(),
        operation_type: "Update".to_owned(),
        logged_by_service: "Identity Protection".to_owned(),
        result: "success".to_owned(),
        correlation_id: format!("corr-{id}"),
        initiated_by: r#"{"app":{"appId":"lab-admin"}}"#.to_owned(),
        target_id: Some(target.to_owned()),
        target_resources: format!(r#"[{{"id":"{target}","type":"User"}}]"#),
        additional_details: "[]".to_owned(),
    }
}

pub async fn audits_are_listed_newest_first_filtered_and_paged(ctx: Ctx) {
    let store = &ctx.store;
    store
        .record_audit(&audit("a1", 100, "Dismiss user risk", "u1"))
        .await
        .unwrap();
    store
        .record_audit(&audit("a2", 200, "Confirm user safe", "u2"))
        .await
        .unwrap();
    store
        .record_audit(&audit("a3", 300, "Dismiss user risk", "u2"))
        .await
        .unwrap();
    // An id is written once.
    assert!(matches!(
        store
            .record_audit(&audit("a3", 400, "Dismiss user risk", "u3"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    let list = |f: AuditFilter| async move {
        store
            .list_audits(&AuditFilter { limit: 10, ..f })
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(list(AuditFilter::default()).await, ["a3", "a2", "a1"]);
    assert_eq!(
        list(AuditFilter {
            activity_display_name: Some("Dismiss user risk".into()),
            ..AuditFilter::default()
        })
        .await,
        ["a3", "a1"]
    );
    assert_eq!(
        list(AuditFilter {
            target_id: Some("u2".into()),
            from: Some(250),
            ..AuditFilter::default()
        })
        .await,
        ["a3"]
    );
    assert_eq!(
        list(AuditFilter {
            category: Some("UserManagement".into()),
            ..AuditFilter::default()
        })
        .await,
        Vec::<String>::new()
    );
    let page = store
        .list_audits(&AuditFilter {
            limit: 1,
            offset: 1,
            to: Some(250),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(page, [audit("a1", 100, "Dismiss user risk", "u1")]);
}
