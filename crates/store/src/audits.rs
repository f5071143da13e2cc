//! The directory audit log (`directory_audits`): one row per admin change, written right after
//! the change it reports succeeded (so nothing is audited that did not happen).

use crate::db::{from_row, query, query_assembled};
use crate::{Store, StoreError};

/// One audit row (Graph `directoryAudit`; the JSON columns hold Graph's shapes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryAudit {
    /// Row id.
    pub id: String,
    /// Unix seconds.
    pub activity_date_time: i64,
    /// `UserManagement`, `IdentityProtection`, `Policy`, `ApplicationManagement`.
    pub category: String,
    /// What was done, in words (`Reset user password`, `Dismiss user risk`, ...).
    pub activity_display_name: String,
    /// `Add`, `Update`, `Delete`.
    pub operation_type: String,
    /// The part of the directory that did it (`Core Directory`, `Identity Protection`, ...).
    pub logged_by_service: String,
    /// `success` or `failure`.
    pub result: String,
    /// The request's correlation id.
    pub correlation_id: String,
    /// JSON: `{"app": {...}}` or `{"user": {...}}`.
    pub initiated_by: String,
    /// The first target's id (what [`AuditFilter::target_id`] matches).
    pub target_id: Option<String>,
    /// JSON array of `{"id", "displayName", "type", "userPrincipalName"}`.
    pub target_resources: String,
    /// JSON array of `{"key", "value"}`.
    pub additional_details: String,
}

from_row!(DirectoryAudit {
    id,
    activity_date_time,
    category,
    activity_display_name,
    operation_type,
    logged_by_service,
    result,
    correlation_id,
    initiated_by,
    target_id,
    target_resources,
    additional_details,
});

macro_rules! audit_columns {
    () => {
        "id, activity_date_time, category, activity_display_name, operation_type, \
         logged_by_service, result, correlation_id, initiated_by, target_id, \
         target_resources, additional_details"
    };
}

/// Which audit rows to list: every field set must match. Newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// `category` equals.
    pub category: Option<String>,
    /// `activity_display_name` equals.
    pub activity_display_name: Option<String>,
    /// The (first) target has this id.
    pub target_id: Option<String>,
    /// At or after (unix seconds).
    pub from: Option<i64>,
    /// At or before (unix seconds).
    pub to: Option<i64>,
    /// Page size.
    pub limit: i64,
    /// Rows skipped.
    pub offset: i64,
}

enum Arg<'a> {
    Text(&'a str),
    Int(i64),
}

impl Store {
    /// Appends an audit row. [`StoreError::Conflict`] if the id is taken.
    pub async fn record_audit(&self, audit: &DirectoryAudit) -> Result<(), StoreError> {
        insert_audit(audit, &self.db).await
    }

    /// Audit rows matching `filter`, newest first.
    pub async fn list_audits(
        &self,
        filter: &AuditFilter,
    ) -> Result<Vec<DirectoryAudit>, StoreError> {
        let mut conditions: Vec<String> = Vec::new();
        let mut args: Vec<Arg<'_>> = Vec::new();
        let mut push = |condition: &str, arg| {
            args.push(arg);
            conditions.push(condition.replace('?', &format!("${}", args.len())));
        };
        if let Some(c) = &filter.category {
            push("category = ?", Arg::Text(c));
        }
        if let Some(a) = &filter.activity_display_name {
            push("activity_display_name = ?", Arg::Text(a));
        }
        if let Some(id) = &filter.target_id {
            push("target_id = ?", Arg::Text(id));
        }
        if let Some(from) = filter.from {
            push("activity_date_time >= ?", Arg::Int(from));
        }
        if let Some(to) = filter.to {
            push("activity_date_time <= ?", Arg::Int(to));
        }
        let mut sql = String::from(concat!(
            "SELECT ",
            audit_columns!(),
            " FROM directory_audits"
        ));
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        sql.push_str(&format!(
            " ORDER BY activity_date_time DESC, id DESC LIMIT ${} OFFSET ${}",
            args.len() + 1,
            args.len() + 2
        ));
        let mut q = query_assembled(sql);
        for arg in args {
            q = match arg {
                Arg::Text(text) => q.bind(text),
                Arg::Int(int) => q.bind(int),
            };
        }
        Ok(q.bind(filter.limit)
            .bind(filter.offset)
            .fetch_all(&self.db)
            .await?)
    }
}

/// Inserts an audit row through `target` (the store, or the transaction of the change it
/// records).
pub(crate) async fn insert_audit(
    audit: &DirectoryAudit,
    target: impl crate::db::Executor,
) -> Result<(), StoreError> {
    query(concat!(
        "INSERT INTO directory_audits (",
        audit_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    ))
    .bind(&audit.id)
    .bind(audit.activity_date_time)
    .bind(&audit.category)
    .bind(&audit.activity_display_name)
    .bind(&audit.operation_type)
    .bind(&audit.logged_by_service)
    .bind(&audit.result)
    .bind(&audit.correlation_id)
    .bind(&audit.initiated_by)
    .bind(&audit.target_id)
    .bind(&audit.target_resources)
    .bind(&audit.additional_details)
    .execute(target)
    .await
    .map_err(|e| StoreError::conflict_or_db(e, || format!("audit exists: {}", audit.id)))?;
    Ok(())
}
