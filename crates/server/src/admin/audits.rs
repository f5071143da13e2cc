//! The directory audit log: [`record`] writes what an admin did (every admin action calls it
//! after the change succeeded), `GET /v1.0/auditLogs/directoryAudits` lists it in Graph's
//! `directoryAudit` shape, newest first, with `$filter` (clauses joined by `and`:
//! `category eq`, `activityDisplayName eq`, `targetResources/any(t: t/id eq '…')`,
//! `activityDateTime ge|le` an RFC 3339 time), `$top` and `$skiptoken` paging.

use axum::extract::{RawQuery, State};
use axum::response::Response;
use serde_json::{Value, json};
use store::{AuditFilter, DirectoryAudit, User};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::admin::sign_ins::{log_page, read_log_query, split_and};
use crate::admin::{Admin, GraphError};
use crate::state::AppState;
use crate::user_risk::iso;
use crate::web::Ctx;

const DEFAULT_TOP: i64 = 100;
const MAX_TOP: i64 = 1000;

/// Where an activity belongs: Graph's `category` and `loggedByService`.
#[derive(Debug, Clone, Copy)]
pub enum Area {
    /// Users and invitations (`UserManagement`, `Core Directory`).
    Users,
    /// User risk (`IdentityProtection`, `Identity Protection`).
    IdentityProtection,
    /// Conditional Access (`Policy`, `Conditional Access`).
    ConditionalAccess,
    /// Apps (`ApplicationManagement`, `Core Directory`).
    Applications,
    /// Groups and their members (`GroupManagement`, `Core Directory`).
    Groups,
    /// Directory roles (`RoleManagement`, `Core Directory`).
    Roles,
}

impl Area {
    fn category(self) -> &'static str {
        match self {
            Area::Users => "UserManagement",
            Area::IdentityProtection => "IdentityProtection",
            Area::ConditionalAccess => "Policy",
            Area::Applications => "ApplicationManagement",
            Area::Groups => "GroupManagement",
            Area::Roles => "RoleManagement",
        }
    }

    fn service(self) -> &'static str {
        match self {
            Area::Users | Area::Applications | Area::Groups | Area::Roles => "Core Directory",
            Area::IdentityProtection => "Identity Protection",
            Area::ConditionalAccess => "Conditional Access",
        }
    }
}

/// What an admin did to what.
#[derive(Debug, Clone)]
pub struct Activity {
    /// Category and service.
    pub area: Area,
    /// In words, as Entra names it (`Reset user password`, `Dismiss user risk`, ...).
    pub name: &'static str,
    /// `Add`, `Update` or `Delete`.
    pub operation: &'static str,
    /// Graph `targetResource`: `{"id", "displayName", "type", "userPrincipalName"}`.
    pub target: Value,
    /// Graph `additionalDetails` as key → value.
    pub details: Vec<(&'static str, String)>,
}

impl Activity {
    /// An activity on a user.
    pub fn on_user(area: Area, name: &'static str, operation: &'static str, user: &User) -> Self {
        Self {
            area,
            name,
            operation,
            target: json!({
                "id": user.id,
                "displayName": user.display_name,
                "type": "User",
                "userPrincipalName": user.email,
            }),
            details: Vec::new(),
        }
    }

    /// An activity on anything else, named by id and display name.
    pub fn on(
        area: Area,
        name: &'static str,
        operation: &'static str,
        kind: &'static str,
        id: &str,
        display_name: &str,
    ) -> Self {
        Self {
            area,
            name,
            operation,
            target: json!({ "id": id, "displayName": display_name, "type": kind }),
            details: Vec::new(),
        }
    }

    /// With one more `additionalDetails` entry.
    pub fn detail(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.details.push((key, value.into()));
        self
    }
}

/// Writes `activity`, done by `admin` in the request `ctx`, to the audit log. The change has
/// happened: a failure to write it is logged (with the whole activity) rather than turned into
/// an error for a request that succeeded.
pub async fn record(state: &AppState, ctx: &Ctx, admin: &Admin, activity: Activity) {
    write(&state.store, &line(state, ctx, admin, activity)).await;
}

/// The audit line of `activity` done by `admin` in the request `ctx`, for a change that writes
/// it in its own transaction (see `signin::user_risk::Home::remediate_audited`).
pub fn line(state: &AppState, ctx: &Ctx, admin: &Admin, activity: Activity) -> DirectoryAudit {
    let mut audit = row(state.now(), &ctx.correlation_id, &admin.client_id, activity);
    if let Some(user) = &admin.user {
        audit.initiated_by = json!({
            "app": { "appId": admin.client_id, "displayName": admin.client_id },
            "user": { "id": user.id, "userPrincipalName": user.email, "displayName": user.display_name },
        })
        .to_string();
    }
    audit
}

/// The app id the command-line tool's changes are audited under.
pub const CLI_APP: &str = "tenantd-cli";

/// Writes `activity`, done with the command-line tool on `store`'s database at `now`, to the
/// audit log (its correlation id is new: there is no request).
pub async fn record_cli(store: &store::Store, now: i64, activity: Activity) {
    let correlation_id = uuid::Uuid::new_v4().to_string();
    write(store, &row(now, &correlation_id, CLI_APP, activity)).await;
}

fn row(now: i64, correlation_id: &str, app: &str, activity: Activity) -> DirectoryAudit {
    DirectoryAudit {
        // Time-ordered: lines of the same second keep their order (the list's tie-break).
        id: uuid::Uuid::now_v7().to_string(),
        activity_date_time: now,
        category: activity.area.category().to_owned(),
        activity_display_name: activity.name.to_owned(),
        operation_type: activity.operation.to_owned(),
        logged_by_service: activity.area.service().to_owned(),
        result: "success".to_owned(),
        correlation_id: correlation_id.to_owned(),
        initiated_by: json!({ "app": { "appId": app, "displayName": app } }).to_string(),
        target_id: activity.target["id"].as_str().map(str::to_owned),
        target_resources: json!([activity.target]).to_string(),
        additional_details: Value::Array(
            activity
                .details
                .iter()
                .map(|(k, v)| json!({ "key": k, "value": v }))
                .collect(),
        )
        .to_string(),
    }
}

async fn write(store: &store::Store, audit: &DirectoryAudit) {
    if let Err(e) = store.record_audit(audit).await {
        tracing::error!(error = %e, activity = audit.activity_display_name, target = ?audit.target_id, initiated_by = %audit.initiated_by, correlation_id = %audit.correlation_id, "could not write the audit log");
    }
}

/// `GET /v1.0/auditLogs/directoryAudits`
pub async fn list(
    State(state): State<AppState>,
    _admin: Admin,
    RawQuery(query): RawQuery,
) -> Result<Response, GraphError> {
    let query = query.unwrap_or_default();
    let filter = parse_query(&query).map_err(GraphError::bad_request)?;
    let rows = state.store.list_audits(&filter).await?;
    let value: Vec<Value> = rows.iter().map(audit_json).collect();
    Ok(log_page(
        &state,
        "directoryAudits",
        &query,
        value,
        filter.limit,
        filter.offset,
    ))
}

/// Graph `directoryAudit`.
fn audit_json(a: &DirectoryAudit) -> Value {
    let parsed = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
    json!({
        "id": a.id,
        "category": a.category,
        "correlationId": a.correlation_id,
        "result": a.result,
        "resultReason": "",
        "activityDisplayName": a.activity_display_name,
        "activityDateTime": iso(a.activity_date_time),
        "loggedByService": a.logged_by_service,
        "operationType": a.operation_type,
        "initiatedBy": parsed(&a.initiated_by),
        "targetResources": parsed(&a.target_resources),
        "additionalDetails": parsed(&a.additional_details),
    })
}

fn parse_query(query: &str) -> Result<AuditFilter, String> {
    let mut f = AuditFilter {
        limit: DEFAULT_TOP,
        ..AuditFilter::default()
    };
    let (mut limit, mut offset) = (f.limit, f.offset);
    read_log_query(query, MAX_TOP, &mut limit, &mut offset, |v| {
        parse_filter(v, &mut f)
    })?;
    f.limit = limit;
    f.offset = offset;
    Ok(f)
}

/// `clause and clause ...` (an `and` inside a quoted value is part of the value).
fn parse_filter(text: &str, f: &mut AuditFilter) -> Result<(), String> {
    for clause in split_and(text) {
        let clause = clause.trim();
        if let Some(rest) = clause.strip_prefix("targetResources/any(") {
            let inner = rest.strip_suffix(')').ok_or_else(|| {
                format!("{clause:?}: expected targetResources/any(t: t/id eq '…')")
            })?;
            let (var, cond) = inner.split_once(':').ok_or_else(|| {
                format!("{clause:?}: expected targetResources/any(t: t/id eq '…')")
            })?;
            let cond = cond.trim();
            let id = cond
                .strip_prefix(&format!("{}/id eq ", var.trim()))
                .map(quoted)
                .ok_or_else(|| format!("{clause:?}: only t/id eq '…' is supported"))??;
            f.target_id = Some(id);
            continue;
        }
        let mut parts = clause.splitn(3, ' ');
        let (Some(field), Some(op), Some(value)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("$filter clause {clause:?} is not `field op value`"));
        };
        match (field, op) {
            ("category", "eq") => f.category = Some(quoted(value)?),
            ("activityDisplayName", "eq") => f.activity_display_name = Some(quoted(value)?),
            ("activityDateTime", "ge") => f.from = Some(instant(value)?),
            ("activityDateTime", "le") => f.to = Some(instant(value)?),
            _ => {
                return Err(format!(
                    "unsupported $filter clause {clause:?}: supported are category eq, \
                     activityDisplayName eq, targetResources/any(t: t/id eq '…'), \
                     activityDateTime ge|le"
                ));
            }
        }
    }
    Ok(())
}

/// `'text'` with OData's doubled quote.
fn quoted(value: &str) -> Result<String, String> {
    value
        .trim()
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .map(|v| v.replace("''", "'"))
        .ok_or_else(|| format!("expected a quoted string, got {value}"))
}

fn instant(text: &str) -> Result<i64, String> {
    OffsetDateTime::parse(text.trim(), &Rfc3339)
        .map(OffsetDateTime::unix_timestamp)
        .map_err(|_| format!("{text:?} is not an RFC 3339 date and time"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn an_and_inside_a_quoted_value_is_part_of_the_value() {
        let f = parse_query(
            "%24filter=activityDisplayName%20eq%20%27Add%20and%20remove%27%20and%20category%20eq%20%27Policy%27",
        )
        .unwrap();
        assert_eq!(f.activity_display_name.as_deref(), Some("Add and remove"));
        assert_eq!(f.category.as_deref(), Some("Policy"));
    }

    #[test]
    fn filters_that_are_supported_and_one_that_is_not() {
        let f = parse_query(
            "%24filter=category%20eq%20%27UserManagement%27%20and%20targetResources%2Fany(t%3A%20t%2Fid%20eq%20%27u-1%27)%20and%20activityDateTime%20ge%202026-01-01T00%3A00%3A00Z&%24top=5",
        )
        .unwrap();
        assert_eq!(f.category.as_deref(), Some("UserManagement"));
        assert_eq!(f.target_id.as_deref(), Some("u-1"));
        assert_eq!(f.from, Some(1_767_225_600));
        assert_eq!(f.limit, 5);
        assert!(parse_query("%24filter=result%20eq%20%27failure%27").is_err());
        assert!(parse_query("%24top=0").is_err());
        assert!(parse_query("%24orderby=x").is_err());
    }
}
