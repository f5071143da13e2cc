//! Graph's ID Protection API at the home tenant (`/v1.0/identityProtection/...`): the risky
//! users report with history, the admin actions dismiss and confirm compromised, and the risk
//! detections. Protected like the rest of the admin API (an app token with the `admin` scope,
//! see [`crate::admin_api::authorize`]); errors are Graph's `{"error": {"code", "message"}}`.
//!
//! The seed's limitations hold here: guests do not appear in the risky users report, and
//! their risk cannot be dismissed or confirmed here (it is held by their home tenant).
//! Bad input is a 400 and changes nothing: a bulk action is checked for every user first.

use std::collections::{BTreeSet, HashMap};

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use risk::{Actor, RiskState, UserRiskEvent, UserRiskStatus, transition};
use serde::Deserialize;
use serde_json::{Value, json};
use store::{DetectionFilter, DetectionRecord, User, UserType};

use crate::admin_api::{authorize, graph_error};
use crate::state::AppState;
use crate::user_risk::{self, Home, UserRiskError, iso, status_of};
use crate::web::no_store;

/// Most users one dismiss/confirmCompromised call may name (Graph's limit).
pub const MAX_USER_IDS: usize = 60;
/// Default and largest page of `riskDetections`.
const DEFAULT_TOP: i64 = 100;
const MAX_TOP: i64 = 1000;

fn ok_json(body: Value) -> Response {
    let mut r = (StatusCode::OK, Json(body)).into_response();
    no_store(r.headers_mut());
    r
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "identity protection API failed");
    graph_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalServerError",
        "The request could not be completed.",
    )
}

fn not_found(id: &str) -> Response {
    graph_error(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        format!("No user with id {id} in this tenant."),
    )
}

fn risk_error(e: UserRiskError) -> Response {
    match e {
        UserRiskError::UnknownUser(id) => not_found(&id),
        UserRiskError::Refused(r) => {
            graph_error(StatusCode::BAD_REQUEST, "BadRequest", r.to_string())
        }
        UserRiskError::NotAnAction(_) | UserRiskError::Busy(_) => {
            graph_error(StatusCode::CONFLICT, "Conflict", e.to_string())
        }
        UserRiskError::Store(s) => internal(s),
    }
}

/// Graph `riskyUser`.
fn risky_user_json(user: &User, status: UserRiskStatus, updated_at: Option<i64>) -> Value {
    json!({
        "id": user.id,
        "userPrincipalName": user.email,
        "userDisplayName": user.display_name,
        "riskLevel": status.risk_level,
        "riskState": status.risk_state,
        "riskDetail": status.risk_detail,
        "riskLastUpdatedDateTime": updated_at.map(iso),
        "isDeleted": false,
        "isProcessing": false,
    })
}

/// The user and their current risk (recomputed if detections aged out); `None` for an unknown
/// user or a guest (not in this tenant's report).
async fn risky_user(state: &AppState, id: &str) -> Result<Option<Value>, Response> {
    let Some(user) = state.store.user_by_id(id).await.map_err(internal)? else {
        return Ok(None);
    };
    if user.user_type == UserType::Guest {
        return Ok(None);
    }
    let status = user_risk::current(state, &user.id)
        .await
        .map_err(risk_error)?;
    let updated = state
        .store
        .user_risk(&user.id)
        .await
        .map_err(internal)?
        .map(|r| r.updated_at);
    Ok(Some(risky_user_json(&user, status, updated)))
}

/// `GET /v1.0/identityProtection/riskyUsers`: members whose risk was ever recorded, most
/// recently changed first. Guests never appear (their risk is their home's).
pub async fn list_risky_users(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(e) = authorize(&state, &headers).await {
        return e.into_response();
    }
    let records = match state.store.list_user_risk().await {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    let mut value = Vec::with_capacity(records.len());
    for r in records {
        match risky_user(&state, &r.user_id).await {
            Ok(Some(v)) => value.push(v),
            Ok(None) => {}
            Err(resp) => return resp,
        }
    }
    ok_json(json!({ "value": value }))
}

/// `GET /v1.0/identityProtection/riskyUsers/{id}`.
pub async fn get_risky_user(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = authorize(&state, &headers).await {
        return e.into_response();
    }
    match risky_user(&state, &id).await {
        Ok(Some(v)) => ok_json(v),
        Ok(None) => not_found(&id),
        Err(resp) => resp,
    }
}

/// `GET /v1.0/identityProtection/riskyUsers/{id}/history`: Graph `riskyUserHistoryItem`s,
/// newest first, each with who initiated it and why (`reason`, a tenantd extension).
pub async fn risky_user_history(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = authorize(&state, &headers).await {
        return e.into_response();
    }
    let user = match state.store.user_by_id(&id).await {
        Ok(Some(u)) if u.user_type == UserType::Member => u,
        Ok(_) => return not_found(&id),
        Err(e) => return internal(e),
    };
    let items = match state.store.risk_history(&user.id).await {
        Ok(h) => h,
        Err(e) => return internal(e),
    };
    let value: Vec<Value> = items
        .into_iter()
        .map(|h| {
            json!({
                "id": h.id,
                "userId": user.id,
                "userPrincipalName": user.email,
                "userDisplayName": user.display_name,
                "initiatedBy": h.actor,
                "riskLevel": h.level,
                "riskState": h.state,
                "riskDetail": h.detail,
                "riskLastUpdatedDateTime": iso(h.created_at),
                "isDeleted": false,
                "isProcessing": false,
                "activity": { "detail": h.detail },
                "reason": h.reason,
            })
        })
        .collect();
    ok_json(json!({ "value": value }))
}

/// `POST .../dismiss` and `.../confirmCompromised` body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserIds {
    user_ids: Vec<String>,
}

/// `POST /v1.0/identityProtection/riskyUsers/dismiss`: 204.
pub async fn dismiss(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<UserIds>, JsonRejection>,
) -> Response {
    admin_action(state, headers, body, UserRiskEvent::AdminDismissed).await
}

/// `POST /v1.0/identityProtection/riskyUsers/confirmCompromised`: 204.
pub async fn confirm_compromised(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<UserIds>, JsonRejection>,
) -> Response {
    admin_action(
        state,
        headers,
        body,
        UserRiskEvent::AdminConfirmedCompromised,
    )
    .await
}

async fn admin_action(
    state: AppState,
    headers: HeaderMap,
    body: Result<Json<UserIds>, JsonRejection>,
    event: UserRiskEvent,
) -> Response {
    let claims = match authorize(&state, &headers).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => return graph_error(StatusCode::BAD_REQUEST, "BadRequest", e.body_text()),
    };
    if req.user_ids.is_empty() || req.user_ids.len() > MAX_USER_IDS {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("userIds must name between 1 and {MAX_USER_IDS} users."),
        );
    }
    let actor = Actor::Admin(claims.client_id.clone());
    // Check every user first: one bad id and nothing changes.
    let mut ids = Vec::new();
    let mut seen = BTreeSet::new();
    let home = Home::of(&state);
    for id in &req.user_ids {
        if !seen.insert(id.clone()) {
            continue;
        }
        let user = match state.store.user_by_id(id).await {
            Ok(Some(u)) => u,
            Ok(None) => return not_found(id),
            Err(e) => return internal(e),
        };
        if let Err(e) = user_risk::ensure_ours(&user) {
            return graph_error(StatusCode::FORBIDDEN, "Forbidden", e.to_string());
        }
        let status = match home.current(&user.id).await {
            Ok(s) => s,
            Err(e) => return risk_error(e),
        };
        if let Err(e) = transition(status, &event, &actor, time::OffsetDateTime::now_utc()) {
            return graph_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("user {id}: {e}"),
            );
        }
        ids.push(user.id);
    }
    for id in &ids {
        if let Err(e) = home.remediate(id, event.clone(), actor.clone()).await {
            return risk_error(e);
        }
    }
    tracing::info!(app = %claims.client_id, users = ids.len(), "admin risk action");
    let mut r = StatusCode::NO_CONTENT.into_response();
    no_store(r.headers_mut());
    r
}

/// Graph's `riskState`/`riskDetail` of a detection, from its own state (and, for a remediated
/// one, the user's detail saying how it was remediated).
fn detection_state(d: &DetectionRecord, user_status: Option<UserRiskStatus>) -> (String, String) {
    match d.state.as_str() {
        "dismissed" => (
            RiskState::Dismissed.as_str().into(),
            "adminDismissedAllRiskForUser".into(),
        ),
        "remediated" => (
            RiskState::Remediated.as_str().into(),
            user_status
                .filter(|s| s.risk_state == RiskState::Remediated)
                .map_or_else(|| "none".to_owned(), |s| s.risk_detail.as_str().to_owned()),
        ),
        _ => (RiskState::AtRisk.as_str().into(), "none".into()),
    }
}

/// `userId eq '<id>'`, the one `$filter` supported.
fn parse_filter(filter: &str) -> Option<String> {
    let rest = filter.trim().strip_prefix("userId")?.trim_start();
    let rest = rest.strip_prefix("eq")?.trim();
    let id = rest.strip_prefix('\'')?.strip_suffix('\'')?;
    (!id.is_empty() && !id.contains('\'')).then(|| id.to_owned())
}

/// `GET /v1.0/identityProtection/riskDetections`: newest first; `$top` (1..=1000, default
/// 100), `$skip`, and `$filter=userId eq '<id>'`. An `@odata.nextLink` follows a full page.
pub async fn list_risk_detections(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(e) = authorize(&state, &headers).await {
        return e.into_response();
    }
    let bad = |m: String| graph_error(StatusCode::BAD_REQUEST, "BadRequest", m);
    let mut filter = DetectionFilter {
        user_id: None,
        limit: DEFAULT_TOP,
        offset: 0,
    };
    for (k, v) in &query {
        match k.as_str() {
            "$top" => match v.parse::<i64>() {
                Ok(n) if (1..=MAX_TOP).contains(&n) => filter.limit = n,
                _ => return bad(format!("$top must be an integer from 1 to {MAX_TOP}.")),
            },
            "$skip" => match v.parse::<i64>() {
                Ok(n) if n >= 0 => filter.offset = n,
                _ => return bad("$skip must be a non-negative integer.".into()),
            },
            "$filter" => match parse_filter(v) {
                Some(id) => filter.user_id = Some(id),
                None => return bad("$filter supports only userId eq '<id>'.".into()),
            },
            other => return bad(format!("Unsupported query parameter {other}.")),
        }
    }
    let rows = match state.store.list_detections(&filter).await {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    let mut users: HashMap<String, (Option<User>, Option<UserRiskStatus>)> = HashMap::new();
    let mut value = Vec::with_capacity(rows.len());
    for d in &rows {
        if !users.contains_key(&d.user_id) {
            let user = match state.store.user_by_id(&d.user_id).await {
                Ok(u) => u,
                Err(e) => return internal(e),
            };
            let status = match state.store.user_risk(&d.user_id).await {
                Ok(r) => status_of(r.as_ref()).ok(),
                Err(e) => return internal(e),
            };
            users.insert(d.user_id.clone(), (user, status));
        }
        let (user, status) = users.get(&d.user_id).cloned().unwrap_or_default();
        let (risk_state, risk_detail) = detection_state(d, status);
        value.push(json!({
            "id": d.id,
            "userId": d.user_id,
            "userPrincipalName": user.as_ref().map(|u| u.email.clone()),
            "userDisplayName": user.as_ref().map(|u| u.display_name.clone()),
            "riskEventType": d.risk_event_type,
            "riskLevel": d.risk_level,
            "riskState": risk_state,
            "riskDetail": risk_detail,
            "detectionTimingType": d.detection_timing_type,
            "activity": "user",
            "source": d.source,
            "ipAddress": d.ip_address,
            "detectedDateTime": iso(d.detected_at),
            "additionalInfo": d.explanation,
        }));
    }
    let mut body = json!({ "value": value });
    if rows.len() as i64 == filter.limit {
        let mut next = format!(
            "{}/v1.0/identityProtection/riskDetections?$top={}&$skip={}",
            state.config.issuer,
            filter.limit,
            filter.offset + filter.limit
        );
        if let Some(id) = &filter.user_id {
            next.push_str(&format!(
                "&$filter={}",
                url::form_urlencoded::byte_serialize(format!("userId eq '{id}'").as_bytes())
                    .collect::<String>()
            ));
        }
        body["@odata.nextLink"] = Value::String(next);
    }
    ok_json(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_user_id_filter_parses() {
        assert_eq!(parse_filter("userId eq 'abc-1'").as_deref(), Some("abc-1"));
        assert_eq!(parse_filter(" userId  eq  'x' ").as_deref(), Some("x"));
        assert_eq!(parse_filter("userId eq ''"), None);
        assert_eq!(parse_filter("riskLevel eq 'high'"), None);
        assert_eq!(parse_filter("userId eq 'a' or 1 eq 1'"), None);
    }
}
