//! Conditional Access through the admin API (Graph `conditionalAccessPolicy`):
//! `/v1.0/identity/conditionalAccess/policies` (list, get, create, update, delete), the what-if
//! `POST /v1.0/identity/conditionalAccess/evaluate`, and `POST /v1.0/tenantd/reload`.
//!
//! Policies from files are read-only here (the file is their source); policies created through
//! the API are stored in the database. Every change is validated by compiling the whole set it
//! would produce, so an invalid change is refused with each broken rule and nothing changes.

use crate::access;
use crate::admin_api::{authorize, graph_error};
use crate::protection::Origin;
use crate::state::AppState;
use crate::web::no_store;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use policy::{ConditionalAccessPolicy, PolicyError, Satisfied};
use risk::RiskLevel;
use serde::Deserialize;
use serde_json::Value;

fn ok(status: StatusCode, body: Value) -> Response {
    let mut r = (status, Json(body)).into_response();
    no_store(r.headers_mut());
    r
}

fn invalid(e: &PolicyError) -> Response {
    let details: Vec<Value> = e
        .field_errors()
        .iter()
        .map(|f| serde_json::json!({"code": "InvalidPolicy", "target": f.field, "message": f.to_string()}))
        .collect();
    let body = serde_json::json!({"error": {
        "code": "BadRequest",
        "message": e.to_string(),
        "details": details,
    }});
    let mut r = (StatusCode::BAD_REQUEST, Json(body)).into_response();
    no_store(r.headers_mut());
    r
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "policy API failed");
    graph_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalServerError",
        "The policy change could not be completed.",
    )
}

/// A policy as the API shows it in a list: Graph's shape plus where it comes from.
fn shown(p: &ConditionalAccessPolicy, origin: Option<&Origin>) -> Value {
    let mut v = serde_json::to_value(p).unwrap_or(Value::Null);
    if let Some(map) = v.as_object_mut() {
        let source = match origin {
            Some(Origin::File(f)) => format!("file:{f}"),
            Some(Origin::Api) => "api".into(),
            Some(Origin::BuiltIn) => "builtIn".into(),
            None => "unknown".into(),
        };
        map.insert("tenantdSource".into(), Value::String(source));
    }
    v
}

/// One policy as a response of its own (Graph adds the entity's `@odata.context`).
fn entity(state: &AppState, p: &ConditionalAccessPolicy, origin: Option<&Origin>) -> Value {
    let mut v = shown(p, origin);
    if let Some(map) = v.as_object_mut() {
        map.insert(
            "@odata.context".into(),
            Value::String(format!(
                "{}/v1.0/$metadata#identity/conditionalAccess/policies/$entity",
                state.config.issuer
            )),
        );
    }
    v
}

/// `GET /v1.0/identity/conditionalAccess/policies`
pub async fn list(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(e) = authorize(&state, &headers).await {
        return e.into_response();
    }
    let policies = state.protection.policies();
    let value: Vec<Value> = policies
        .set
        .policies()
        .iter()
        .map(|p| shown(p, policies.origin(&p.id)))
        .collect();
    ok(
        StatusCode::OK,
        serde_json::json!({
            "@odata.context": format!("{}/v1.0/$metadata#identity/conditionalAccess/policies", state.config.issuer),
            "value": value,
        }),
    )
}

/// `GET /v1.0/identity/conditionalAccess/policies/{id}`
pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(e) = authorize(&state, &headers).await {
        return e.into_response();
    }
    let policies = state.protection.policies();
    match policies.set.policies().iter().find(|p| p.id == id) {
        Some(p) => ok(StatusCode::OK, entity(&state, p, policies.origin(&id))),
        None => not_found(&id),
    }
}

fn not_found(id: &str) -> Response {
    graph_error(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        format!("No Conditional Access policy has id {id:?}."),
    )
}

fn read_only(id: &str, origin: &Origin) -> Response {
    let why = match origin {
        Origin::File(f) => format!("policy {id:?} is defined in {f}; edit the file and reload"),
        _ => format!(
            "policy {id:?} is a built-in ID Protection policy; configure it in identity-protection.toml"
        ),
    };
    graph_error(StatusCode::CONFLICT, "Conflict", why)
}

/// Validates the API policies as they would be, then stores the change and reloads.
async fn apply(
    state: &AppState,
    api: Vec<ConditionalAccessPolicy>,
    store_change: impl std::future::Future<Output = Result<(), store::StoreError>>,
) -> Option<Response> {
    if let Err(e) = state.protection.try_api_policies(api) {
        return Some(invalid(&e));
    }
    if let Err(e) = store_change.await {
        return Some(match e {
            store::StoreError::Conflict(m) => graph_error(StatusCode::CONFLICT, "Conflict", m),
            store::StoreError::NotFound => graph_error(
                StatusCode::NOT_FOUND,
                "ResourceNotFound",
                "The policy was deleted while this change was being made.",
            ),
            e => internal(e),
        });
    }
    if let Err(e) = state.protection.reload_policies(&state.store).await {
        return Some(internal(e));
    }
    None
}

fn parse_body(body: &[u8]) -> Result<ConditionalAccessPolicy, PolicyError> {
    let text = std::str::from_utf8(body).map_err(|_| PolicyError::Parse {
        file: "request body".into(),
        line: None,
        field: String::new(),
        message: "not UTF-8".into(),
    })?;
    policy::parse_policy_json("request body", text)
}

/// `POST /v1.0/identity/conditionalAccess/policies`: create (201 with the policy).
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let claims = match authorize(&state, &headers).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let mut p = match parse_body(&body) {
        Ok(p) => p,
        Err(e) => return invalid(&e),
    };
    if p.id.is_empty() {
        p.id = uuid::Uuid::new_v4().to_string();
    }
    let current = state.protection.policies();
    if let Some(origin) = current.origin(&p.id) {
        return graph_error(
            StatusCode::CONFLICT,
            "Conflict",
            format!("a policy with id {:?} exists already ({origin:?})", p.id),
        );
    }
    let now = time::OffsetDateTime::from_unix_timestamp(state.now())
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        });
    p.created_date_time = now;
    p.modified_date_time = None;
    p.odata_context = None;
    let json = match serde_json::to_string(&p) {
        Ok(j) => j,
        Err(e) => return internal(e),
    };
    let mut api = current.api.clone();
    api.push(p.clone());
    if let Some(r) = apply(
        &state,
        api,
        state.store.insert_ca_policy(&p.id, &json, state.now()),
    )
    .await
    {
        return r;
    }
    tracing::info!(app = %claims.client_id, policy = %p.id, "conditional access policy created");
    ok(StatusCode::CREATED, entity(&state, &p, Some(&Origin::Api)))
}

/// `PATCH /v1.0/identity/conditionalAccess/policies/{id}`: JSON merge patch (RFC 7396) of an
/// API-created policy; 204.
pub async fn update(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    let claims = match authorize(&state, &headers).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let Json(patch) = match body {
        Ok(b) => b,
        Err(e) => return graph_error(StatusCode::BAD_REQUEST, "BadRequest", e.body_text()),
    };
    let current = state.protection.policies();
    match current.origin(&id) {
        None => return not_found(&id),
        Some(Origin::Api) => {}
        Some(o) => return read_only(&id, o),
    }
    let Some(existing) = current.api.iter().find(|p| p.id == id) else {
        return not_found(&id);
    };
    let mut merged = serde_json::to_value(existing).unwrap_or(Value::Null);
    merge_patch(&mut merged, &patch);
    if merged.get("id").and_then(Value::as_str) != Some(id.as_str()) {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "A policy's id cannot be changed.",
        );
    }
    let mut p = match parse_body(merged.to_string().as_bytes()) {
        Ok(p) => p,
        Err(e) => return invalid(&e),
    };
    p.modified_date_time = time::OffsetDateTime::from_unix_timestamp(state.now())
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        });
    let json = match serde_json::to_string(&p) {
        Ok(j) => j,
        Err(e) => return internal(e),
    };
    let api: Vec<ConditionalAccessPolicy> = current
        .api
        .iter()
        .map(|q| if q.id == id { p.clone() } else { q.clone() })
        .collect();
    if let Some(r) = apply(
        &state,
        api,
        state.store.update_ca_policy(&id, &json, state.now()),
    )
    .await
    {
        return r;
    }
    tracing::info!(app = %claims.client_id, policy = %id, "conditional access policy updated");
    StatusCode::NO_CONTENT.into_response()
}

/// RFC 7396: objects merge, `null` removes, anything else replaces.
fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(serde_json::Map::new());
            }
            if let Some(t) = target.as_object_mut() {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// `DELETE /v1.0/identity/conditionalAccess/policies/{id}`: 204.
pub async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let claims = match authorize(&state, &headers).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let current = state.protection.policies();
    match current.origin(&id) {
        None => return not_found(&id),
        Some(Origin::Api) => {}
        Some(o) => return read_only(&id, o),
    }
    let api: Vec<ConditionalAccessPolicy> =
        current.api.iter().filter(|p| p.id != id).cloned().collect();
    let gone = async {
        match state.store.delete_ca_policy(&id).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(store::StoreError::NotFound),
            Err(e) => Err(e),
        }
    };
    if let Some(r) = apply(&state, api, gone).await {
        return r;
    }
    tracing::info!(app = %claims.client_id, policy = %id, "conditional access policy deleted");
    StatusCode::NO_CONTENT.into_response()
}

/// `POST /v1.0/identity/conditionalAccess/evaluate` body: who, what, from where, and
/// optionally the risk levels to assume.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WhatIfRequest {
    /// The user's id, or their sign-in name.
    user: String,
    app_id: String,
    ip_address: std::net::IpAddr,
    #[serde(default)]
    user_agent: Option<String>,
    /// Assume this user risk (default: a member's current risk here; `none` for a guest, whose
    /// risk only arrives with their home's token).
    #[serde(default)]
    user_risk_level: Option<RiskLevel>,
    /// Assume this sign-in risk (default: evaluated now from the IP, the user agent and the
    /// user's recent sign-ins here).
    #[serde(default)]
    sign_in_risk_level: Option<RiskLevel>,
    #[serde(default)]
    satisfied: Satisfied,
}

/// `POST /v1.0/identity/conditionalAccess/evaluate`: the decision and every policy's result for
/// a sign-in that does not happen. Nothing is signed in, stored or changed.
pub async fn evaluate(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<WhatIfRequest>, JsonRejection>,
) -> Response {
    if let Err(e) = authorize(&state, &headers).await {
        return e.into_response();
    }
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => return graph_error(StatusCode::BAD_REQUEST, "BadRequest", e.body_text()),
    };
    let found = if req.user.contains('@') {
        state.store.user_by_email(&req.user.to_lowercase()).await
    } else {
        state.store.user_by_id(&req.user).await
    };
    let user = match found {
        Ok(Some(u)) => u,
        Ok(None) => {
            return graph_error(
                StatusCode::NOT_FOUND,
                "ResourceNotFound",
                format!("No user {:?} in this tenant.", req.user),
            );
        }
        Err(e) => return internal(e),
    };
    if state.app(&req.app_id).is_none() {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("No app {:?} is registered here.", req.app_id),
        );
    }
    let guest = user.user_type == store::UserType::Guest;
    let user_risk = match req.user_risk_level {
        Some(l) => l,
        None if guest => RiskLevel::None,
        None => match access::member_risk(&state, &user.id).await {
            Ok(l) => l,
            Err(e) => return internal(e),
        },
    };
    let sign_in = match access::sign_in_risk(
        &state,
        req.ip_address,
        req.user_agent.as_deref().unwrap_or(""),
        &user.id,
        // What-if has no partner token to judge.
        None,
    )
    .await
    {
        Ok(s) => s,
        Err(e) => return internal(e),
    };
    let input = access::evaluation_input(
        &user,
        &req.app_id,
        &sign_in.facts,
        user_risk,
        req.sign_in_risk_level.unwrap_or(sign_in.risk_level),
        req.satisfied,
    );
    let policies = state.protection.policies();
    let evaluation = policies.set.what_if(&input);
    ok(
        StatusCode::OK,
        serde_json::json!({
            "userId": user.id,
            "userType": if guest { "guest" } else { "member" },
            "userRiskLevel": input.user_risk_level,
            "signInRiskLevel": input.sign_in_risk_level,
            "riskDetections": sign_in.detections,
            "location": sign_in.facts,
            "decision": evaluation.decision,
            "conditionalAccessStatus": evaluation.conditional_access_status,
            "appliedConditionalAccessPolicies": evaluation.applied_conditional_access_policies,
        }),
    )
}

/// `POST /v1.0/tenantd/reload`: re-read intel and policy files (as SIGHUP does). A bad file is
/// a 400 naming it, and the tenant keeps serving with what it had.
pub async fn reload(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(e) = authorize(&state, &headers).await {
        return e.into_response();
    }
    match state.protection.reload(&state.store).await {
        Ok(l) => ok(
            StatusCode::OK,
            serde_json::to_value(l).unwrap_or(Value::Null),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "reload refused; keeping the current intel and policies");
            graph_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("{e} (nothing was changed; the previous intel and policies stay in use)"),
            )
        }
    }
}
