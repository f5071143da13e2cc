//! `GET /v1.0/auditLogs/signIns`: the sign-in log in Graph's `signIn` shape, newest first, with
//! a subset of OData `$filter` (clauses joined by `and`), `$top` and `$skiptoken` paging.
//!
//! Filters: `userId`, `appId`, `userPrincipalName`, `correlationId`, `riskLevelDuringSignIn`,
//! `riskLevelAggregated` (all `eq 'text'`), `status/errorCode eq N`, and `createdDateTime`
//! with `ge`/`le` and an RFC 3339 time.

use crate::admin::{Admin, GraphError, reply};
use crate::state::AppState;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use store::{SignInFilter, SignInLog};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const DEFAULT_TOP: i64 = 50;
const MAX_TOP: i64 = 1000;

/// `GET /v1.0/auditLogs/signIns`
pub async fn sign_ins(
    State(state): State<AppState>,
    _admin: Admin,
    RawQuery(query): RawQuery,
) -> Result<Response, GraphError> {
    let query = query.unwrap_or_default();
    let filter = parse_query(&query).map_err(GraphError::bad_request)?;
    let rows = state.store.list_sign_ins(&filter).await?;
    let value: Vec<Value> = rows.iter().map(sign_in).collect();
    Ok(log_page(
        &state,
        "signIns",
        &query,
        value,
        filter.limit,
        filter.offset,
    ))
}

/// A page of an audit log (`/v1.0/auditLogs/{log}`): its rows, and `@odata.nextLink` with
/// `$skiptoken` moved on when the page is full.
pub(crate) fn log_page(
    state: &AppState,
    log: &str,
    query: &str,
    value: Vec<Value>,
    limit: i64,
    offset: i64,
) -> Response {
    let issuer = &state.config.issuer;
    let full_page = value.len() as i64 == limit;
    let mut body = json!({
        "@odata.context": format!("{issuer}/v1.0/$metadata#auditLogs/{log}"),
        "value": value,
    });
    if full_page && let Some(map) = body.as_object_mut() {
        let path = format!("/v1.0/auditLogs/{log}");
        map.insert(
            "@odata.nextLink".into(),
            Value::String(offset_next_link(issuer, &path, query, offset + limit)),
        );
    }
    reply(StatusCode::OK, body)
}

/// `{issuer}{path}` with the same query and `$skiptoken` moved on to `offset`.
fn offset_next_link(issuer: &str, path: &str, query: &str, offset: i64) -> String {
    let mut pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k != "$skiptoken")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    pairs.push(("$skiptoken".into(), offset.to_string()));
    let q = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!("{issuer}{path}?{q}")
}

/// `$top` (1 to `max`) and `$skiptoken` (an offset this server issued) into `limit` and
/// `offset`; `None` for any other key.
pub(crate) fn paging_param(
    key: &str,
    value: &str,
    max: i64,
    limit: &mut i64,
    offset: &mut i64,
) -> Option<Result<(), String>> {
    match key {
        "$top" => Some(
            value
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .map(|n| *limit = n)
                .ok_or_else(|| format!("$top must be a number from 1 to {max}")),
        ),
        "$skiptoken" => Some(
            value
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .map(|n| *offset = n)
                .ok_or_else(|| "$skiptoken is not one this server issued".to_owned()),
        ),
        _ => None,
    }
}

pub(crate) fn parse_query(query: &str) -> Result<SignInFilter, String> {
    let mut f = SignInFilter {
        limit: DEFAULT_TOP,
        ..SignInFilter::default()
    };
    let (mut limit, mut offset) = (f.limit, f.offset);
    read_log_query(query, MAX_TOP, &mut limit, &mut offset, |v| {
        parse_filter(v, &mut f)
    })?;
    f.limit = limit;
    f.offset = offset;
    Ok(f)
}

/// A log's query string (`/v1.0/auditLogs/...`): `$top` and `$skiptoken` into `limit` and
/// `offset`, `$filter` to `filter`, anything else refused. Bytes that are not UTF-8 are refused
/// (the url crate's decoder would replace them).
pub(crate) fn read_log_query(
    query: &str,
    max_top: i64,
    limit: &mut i64,
    offset: &mut i64,
    mut filter: impl FnMut(&str) -> Result<(), String>,
) -> Result<(), String> {
    if !protocol::params::is_utf8_form(query.as_bytes()) {
        return Err("the query string is not valid UTF-8".into());
    }
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        if let Some(done) = paging_param(&k, &v, max_top, limit, offset) {
            done?;
            continue;
        }
        match k.as_ref() {
            "$filter" => filter(&v)?,
            other => return Err(format!("unsupported query parameter {other:?}")),
        }
    }
    Ok(())
}

/// `clause and clause ...`, each `field op value`.
fn parse_filter(text: &str, f: &mut SignInFilter) -> Result<(), String> {
    for clause in split_and(text) {
        if let Some(t) = event_type_clause(clause.trim()) {
            f.sign_in_event_type = Some(t?);
            continue;
        }
        let mut parts = clause.trim().splitn(3, ' ');
        let (Some(field), Some(op), Some(value)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("$filter clause {clause:?} is not `field op value`"));
        };
        let value = value.trim();
        let text = || {
            value
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .map(|v| v.replace("''", "'"))
                .ok_or_else(|| format!("{field}: expected a quoted string, got {value}"))
        };
        match (field, op) {
            ("userId", "eq") => f.user_id = Some(text()?),
            ("appId", "eq") => f.app_id = Some(text()?),
            ("userPrincipalName", "eq") => f.user_principal_name = Some(text()?.to_lowercase()),
            ("correlationId", "eq") => f.correlation_id = Some(text()?),
            ("riskLevelDuringSignIn", "eq") => f.risk_level_during_sign_in = Some(level(&text()?)?),
            ("riskLevelAggregated", "eq") => f.risk_level_aggregated = Some(level(&text()?)?),
            ("status/errorCode", "eq") => {
                f.error_code =
                    Some(value.parse().map_err(|_| {
                        format!("status/errorCode: expected a number, got {value}")
                    })?);
            }
            ("createdDateTime", "ge") => f.from = Some(instant(value)?),
            ("createdDateTime", "le") => f.to = Some(instant(value)?),
            _ => {
                return Err(format!(
                    "unsupported $filter clause {clause:?}; supported: userId, appId, \
                     userPrincipalName, correlationId, riskLevelDuringSignIn, riskLevelAggregated \
                     (eq 'text'), status/errorCode eq N, createdDateTime ge|le TIME, \
                     signInEventTypes/any(t: t eq 'interactiveUser'|'nonInteractiveUser')"
                ));
            }
        }
    }
    Ok(())
}

/// Graph's lambda on the `signInEventTypes` collection, `signInEventTypes/any(t: t eq 'X')`
/// (any variable name): `None` if the clause is about something else.
fn event_type_clause(clause: &str) -> Option<Result<String, String>> {
    let body = clause
        .strip_prefix("signInEventTypes/any(")?
        .strip_suffix(')')?;
    let parsed = body.split_once(':').and_then(|(var, test)| {
        let test = test.trim().strip_prefix(var.trim())?.trim_start();
        let value = test.strip_prefix("eq ")?.trim();
        value.strip_prefix('\'')?.strip_suffix('\'')
    });
    Some(match parsed {
        Some(t @ (store::INTERACTIVE_USER | store::NON_INTERACTIVE_USER)) => Ok(t.to_owned()),
        _ => Err(format!(
            "{clause:?}: expected signInEventTypes/any(t: t eq 'interactiveUser' or \
             'nonInteractiveUser')"
        )),
    })
}

/// Splits on ` and ` outside quotes.
pub(crate) fn split_and(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let words: Vec<&str> = text.split(' ').collect();
    for w in words {
        if !quoted && w.eq_ignore_ascii_case("and") {
            out.push(std::mem::take(&mut cur));
            continue;
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(w);
        quoted ^= w.matches('\'').count() % 2 == 1;
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    out
}

fn level(text: &str) -> Result<String, String> {
    risk::from_wire::<risk::RiskLevel>(text)
        .map(|l| l.as_str().to_owned())
        .ok_or_else(|| format!("{text:?} is not a risk level (none, low, medium, high, hidden)"))
}

fn instant(text: &str) -> Result<i64, String> {
    OffsetDateTime::parse(text.trim_matches('\''), &Rfc3339)
        .map(OffsetDateTime::unix_timestamp)
        .map_err(|_| format!("{text:?} is not an RFC 3339 time such as 2026-11-25T10:00:00Z"))
}

/// One row in Graph's `signIn` shape.
fn sign_in(r: &SignInLog) -> Value {
    let created = OffsetDateTime::from_unix_timestamp(r.created_at)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok());
    let d = &r.details;
    let get = |k: &str| d.get(k).cloned().unwrap_or(Value::Null);
    let location = d.get("location").map(|l| {
        json!({
            "city": l.get("city"),
            "countryOrRegion": l.get("country"),
            "geoCoordinates": {"latitude": l.get("latitude"), "longitude": l.get("longitude")},
        })
    });
    json!({
        "id": r.id,
        "createdDateTime": created,
        "userId": r.user_id,
        "userPrincipalName": r.user_principal_name,
        "appId": r.app_id,
        "ipAddress": r.ip_address,
        "clientAppUsed": "Browser",
        "userAgent": r.user_agent,
        "correlationId": r.correlation_id,
        "isInteractive": r.sign_in_event_type == store::INTERACTIVE_USER,
        "signInEventTypes": [r.sign_in_event_type],
        "userType": r.user_type,
        "crossTenantAccessType": r.cross_tenant_access_type,
        "homeTenantId": r.home_tenant_id,
        "resourceTenantId": r.resource_tenant_id,
        "status": {
            "errorCode": r.error_code,
            "failureReason": r.failure_reason,
        },
        "conditionalAccessStatus": r.conditional_access_status.as_deref().unwrap_or("notApplied"),
        "appliedConditionalAccessPolicies": d.get("appliedConditionalAccessPolicies").cloned().unwrap_or(json!([])),
        "riskLevelAggregated": r.risk_level_aggregated.as_deref().unwrap_or("none"),
        "riskLevelDuringSignIn": r.risk_level_during_sign_in.as_deref().unwrap_or("none"),
        // The columns say how the sign-in's risk was closed since; the details, as it was.
        "riskState": r.risk_state.as_deref().map_or_else(|| d.get("riskState").cloned().unwrap_or(json!("none")), |s| json!(s)),
        "riskDetail": r.risk_detail.as_deref().map_or_else(|| d.get("riskDetail").cloned().unwrap_or(json!("none")), |s| json!(s)),
        "riskEventTypes_v2": d.get("riskEventTypes_v2").cloned().unwrap_or(json!([])),
        "location": location,
        "tenantdDetails": {
            "riskDetections": get("riskDetections"),
            "singleSignOn": get("singleSignOn"),
            "homeSubject": get("homeSubject"),
            "userRisk": get("userRisk"),
            "homeAmr": get("homeAmr"),
            "federation": get("federation"),
        },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_into_the_store_filter() {
        let f = parse_query(
            "%24filter=userId+eq+%27u1%27+and+riskLevelDuringSignIn+eq+%27high%27+and+status%2FerrorCode+eq+53011+and+createdDateTime+ge+2026-11-25T00%3A00%3A00Z&%24top=10&%24skiptoken=20",
        )
        .unwrap();
        assert_eq!(f.user_id.as_deref(), Some("u1"));
        assert_eq!(f.risk_level_during_sign_in.as_deref(), Some("high"));
        assert_eq!(f.error_code, Some(53011));
        assert_eq!(f.from, Some(1_795_564_800));
        assert_eq!((f.limit, f.offset), (10, 20));
    }

    #[test]
    fn sign_in_event_types_filter_with_any_lambda() {
        let f = parse_query(
            "%24filter=signInEventTypes%2Fany%28t%3A+t+eq+%27nonInteractiveUser%27%29+and+userId+eq+%27u1%27",
        )
        .unwrap();
        assert_eq!(f.sign_in_event_type.as_deref(), Some("nonInteractiveUser"));
        assert_eq!(f.user_id.as_deref(), Some("u1"));
        let e =
            parse_query("%24filter=signInEventTypes%2Fany%28t%3A+t+eq+%27other%27%29").unwrap_err();
        assert!(e.contains("nonInteractiveUser"), "{e}");
    }

    #[test]
    fn quoted_and_is_not_a_separator() {
        let f = parse_query("%24filter=userPrincipalName+eq+%27rock+and+roll%40x.test%27").unwrap();
        assert_eq!(
            f.user_principal_name.as_deref(),
            Some("rock and roll@x.test")
        );
    }

    #[test]
    fn bad_filters_are_explained() {
        for (q, needle) in [
            (
                "%24filter=displayName+eq+%27x%27",
                "unsupported $filter clause",
            ),
            (
                "%24filter=riskLevelDuringSignIn+eq+%27severe%27",
                "not a risk level",
            ),
            ("%24filter=status%2FerrorCode+eq+abc", "expected a number"),
            ("%24filter=createdDateTime+ge+yesterday", "RFC 3339"),
            ("%24top=0", "$top"),
            ("%24skiptoken=-1", "$skiptoken"),
            ("%24orderby=x", "unsupported query parameter"),
            ("%24filter=userId+eq+u1", "quoted string"),
        ] {
            let e = parse_query(q).unwrap_err();
            assert!(e.contains(needle), "{q}: {e}");
        }
    }
}
