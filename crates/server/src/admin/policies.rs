//! Conditional Access through the admin API (Graph `conditionalAccessPolicy`):
//! `/v1.0/identity/conditionalAccess/policies` (list, get, create, update, delete), the what-if
//! `POST /v1.0/identity/conditionalAccess/evaluate`, and `POST /v1.0/tenantd/reload`.
//!
//! Policies from files are read-only here (the file is their source); policies created through
//! the API are stored in the database. Every change is validated by compiling the whole set it
//! would produce, so an invalid change is refused with each broken rule and nothing changes.

use crate::admin::audits::{self, Activity, Area};
use crate::admin::{Admin, GraphError, GraphErrorDetail, GraphJson, no_content, reply};
use crate::protection::{Origin, Policies};
use crate::state::AppState;
use crate::web::Ctx;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use policy::{ConditionalAccessPolicy, PolicyError, Satisfied};
use risk::RiskLevel;
use serde::Deserialize;
use serde_json::Value;
use signin::partner_check::{Occasion, check_partners};

/// A refused policy: the message, and each broken rule as a detail naming its field.
impl From<PolicyError> for GraphError {
    fn from(e: PolicyError) -> Self {
        let details = e
            .field_errors()
            .iter()
            .map(|f| GraphErrorDetail {
                code: "InvalidPolicy",
                target: f.field.clone(),
                message: f.to_string(),
            })
            .collect();
        GraphError::bad_request(e.to_string()).with_details(details)
    }
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
pub async fn list(State(state): State<AppState>, _admin: Admin) -> Result<Response, GraphError> {
    let policies = state.protection.policies();
    let value: Vec<Value> = policies
        .set
        .policies()
        .iter()
        .map(|p| shown(p, policies.origin(&p.id)))
        .collect();
    Ok(reply(
        StatusCode::OK,
        serde_json::json!({
            "@odata.context": format!("{}/v1.0/$metadata#identity/conditionalAccess/policies", state.config.issuer),
            "value": value,
        }),
    ))
}

/// `GET /v1.0/identity/conditionalAccess/policies/{id}`
pub async fn get(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, GraphError> {
    let policies = state.protection.policies();
    let p = policies
        .set
        .policies()
        .iter()
        .find(|p| p.id == id)
        .ok_or_else(|| no_policy(&id))?;
    Ok(reply(
        StatusCode::OK,
        entity(&state, p, policies.origin(&id)),
    ))
}

fn no_policy(id: &str) -> GraphError {
    GraphError::not_found(format!("No Conditional Access policy has id {id:?}."))
}

/// Only policies created through the API can be changed through it (a file policy's state
/// aside, see [`switch_file_policy`]): a file or the ID Protection configuration is the source
/// of the others, and a reload would undo the change.
fn ensure_api_owned(policies: &Policies, id: &str) -> Result<(), GraphError> {
    let why = match policies.origin(id) {
        None => return Err(no_policy(id)),
        Some(Origin::Api) => return Ok(()),
        Some(Origin::File(f)) => {
            format!("policy {id:?} is defined in {f}; edit the file and reload")
        }
        Some(_) => format!(
            "policy {id:?} is a built-in ID Protection policy; configure it in identity-protection.toml"
        ),
    };
    Err(GraphError::conflict(why))
}

/// Validates the API policies as they would be, then stores the change and reloads.
async fn apply(
    state: &AppState,
    api: Vec<ConditionalAccessPolicy>,
    store_change: impl std::future::Future<Output = Result<(), store::StoreError>>,
) -> Result<(), GraphError> {
    state.protection.try_api_policies(api)?;
    store_change.await.map_err(store_change_error)?;
    state
        .protection
        .reload_policies(&state.store)
        .await
        .map_err(GraphError::internal)
}

/// A policy may name only groups that exist: an exclusion of a group that is not there would
/// silently exclude no one.
async fn ensure_groups_exist(
    state: &AppState,
    p: &ConditionalAccessPolicy,
) -> Result<(), GraphError> {
    let u = &p.conditions.users;
    let mut unknown = Vec::new();
    for (field, id) in u
        .include_groups
        .iter()
        .map(|g| ("includeGroups", g))
        .chain(u.exclude_groups.iter().map(|g| ("excludeGroups", g)))
    {
        if state.store.group(id).await?.is_none() {
            unknown.push(GraphErrorDetail {
                code: "UnknownGroup",
                target: format!("conditions.users.{field}"),
                message: format!("No group with id {id:?} in this tenant."),
            });
        }
    }
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(
            GraphError::bad_request("The policy names groups that do not exist.")
                .with_details(unknown),
        )
    }
}

/// Another admin may have changed the same policy since it was read.
#[track_caller]
fn store_change_error(e: store::StoreError) -> GraphError {
    match e {
        store::StoreError::Conflict(m) => GraphError::conflict(m),
        store::StoreError::NotFound => {
            GraphError::not_found("The policy was deleted while this change was being made.")
        }
        e => e.into(),
    }
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

/// Now in RFC 3339, as Graph dates policies.
fn timestamp(state: &AppState) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp(state.now())
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
}

/// `POST /v1.0/identity/conditionalAccess/policies`: create (201 with the policy).
///
/// The body is raw bytes, not [`GraphJson`]: the policy parser reports each bad field itself.
pub async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    admin: Admin,
    body: axum::body::Bytes,
) -> Result<Response, GraphError> {
    let mut p = parse_body(&body)?;
    if p.id.is_empty() {
        p.id = uuid::Uuid::new_v4().to_string();
    }
    let current = state.protection.policies();
    if let Some(origin) = current.origin(&p.id) {
        return Err(GraphError::conflict(format!(
            "a policy with id {:?} exists already ({origin:?})",
            p.id
        )));
    }
    ensure_groups_exist(&state, &p).await?;
    p.created_date_time = timestamp(&state);
    p.modified_date_time = None;
    p.odata_context = None;
    let json = serde_json::to_string(&p).map_err(GraphError::internal)?;
    let mut api = current.api.clone();
    api.push(p.clone());
    apply(
        &state,
        api,
        state.store.insert_ca_policy(&p.id, &json, state.now()),
    )
    .await?;
    tracing::info!(app = %admin.client_id, policy = %p.id, "conditional access policy created");
    audit(
        &state,
        &ctx,
        &admin,
        "Add conditional access policy",
        "Add",
        &p,
    )
    .await;
    Ok(reply(
        StatusCode::CREATED,
        entity(&state, &p, Some(&Origin::Api)),
    ))
}

/// `PATCH /v1.0/identity/conditionalAccess/policies/{id}`: JSON merge patch (RFC 7396) of an
/// API-created policy; 204.
pub async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    admin: Admin,
    Path(id): Path<String>,
    GraphJson(patch): GraphJson<Value>,
) -> Result<Response, GraphError> {
    self::patch(&state, &ctx, &admin, &id, &patch).await?;
    Ok(no_content())
}

/// Applies an RFC 7396 merge patch to an API-created policy, validated as a whole set and
/// audited; the API's `PATCH` and the admin pages' switch.
pub(crate) async fn patch(
    state: &AppState,
    ctx: &Ctx,
    admin: &Admin,
    id: &str,
    patch: &Value,
) -> Result<(), GraphError> {
    let id = id.to_owned();
    let current = state.protection.policies();
    if let Some(new_state) = state_only(patch)
        && crate::protection::is_file_policy(&current, &id)
    {
        return switch_file_policy(state, ctx, admin, &id, new_state).await;
    }
    ensure_api_owned(&current, &id)?;
    let existing = current
        .api
        .iter()
        .find(|p| p.id == id)
        .ok_or_else(|| no_policy(&id))?;
    let mut merged = serde_json::to_value(existing).map_err(GraphError::internal)?;
    merge_patch(&mut merged, patch);
    if merged.get("id").and_then(Value::as_str) != Some(id.as_str()) {
        return Err(GraphError::bad_request("A policy's id cannot be changed."));
    }
    let mut p = parse_body(merged.to_string().as_bytes())?;
    ensure_groups_exist(state, &p).await?;
    p.modified_date_time = timestamp(state);
    let json = serde_json::to_string(&p).map_err(GraphError::internal)?;
    let api: Vec<ConditionalAccessPolicy> = current
        .api
        .iter()
        .map(|q| if q.id == id { p.clone() } else { q.clone() })
        .collect();
    apply(
        state,
        api,
        state.store.update_ca_policy(&id, &json, state.now()),
    )
    .await?;
    tracing::info!(app = %admin.client_id, policy = %id, "conditional access policy updated");
    audit(
        state,
        ctx,
        admin,
        "Update conditional access policy",
        "Update",
        &p,
    )
    .await;
    Ok(())
}

/// The new state of a patch that changes nothing else (`{"state": "…"}`).
fn state_only(patch: &Value) -> Option<&str> {
    let map = patch.as_object()?;
    (map.len() == 1)
        .then(|| map.get("state")?.as_str())
        .flatten()
}

/// Switches a policy from a file on, to report-only or off: the state is kept in the database
/// and wins over the file's at every reload; the rest of the policy stays the file's.
async fn switch_file_policy(
    state: &AppState,
    ctx: &Ctx,
    admin: &Admin,
    id: &str,
    new_state: &str,
) -> Result<(), GraphError> {
    serde_json::from_value::<policy::PolicyState>(Value::String(new_state.to_owned())).map_err(
        |_| {
            GraphError::bad_request(format!(
                "state {new_state:?}: enabled, enabledForReportingButNotEnforced or disabled"
            ))
        },
    )?;
    state
        .store
        .set_ca_policy_state(id, new_state, state.now())
        .await?;
    state
        .protection
        .reload_policies(&state.store)
        .await
        .map_err(GraphError::internal)?;
    let current = state.protection.policies();
    let p = current
        .set
        .policies()
        .iter()
        .find(|p| p.id == id)
        .ok_or_else(|| no_policy(id))?;
    tracing::info!(app = %admin.client_id, policy = %id, state = %new_state, "file policy switched");
    audit(
        state,
        ctx,
        admin,
        "Update conditional access policy",
        "Update",
        p,
    )
    .await;
    Ok(())
}

/// The audit line of a change to policy `p`, with the state it is in after the change.
async fn audit(
    state: &AppState,
    ctx: &Ctx,
    admin: &Admin,
    name: &'static str,
    operation: &'static str,
    p: &ConditionalAccessPolicy,
) {
    let activity = Activity::on(
        Area::ConditionalAccess,
        name,
        operation,
        "Policy",
        &p.id,
        &p.display_name,
    )
    .detail(
        "state",
        serde_json::to_value(p.state).map_or_else(
            |_| String::new(),
            |v| v.as_str().unwrap_or_default().to_owned(),
        ),
    );
    audits::record(state, ctx, admin, activity).await;
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
    ctx: Ctx,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, GraphError> {
    let current = state.protection.policies();
    ensure_api_owned(&current, &id)?;
    let gone_policy = current.api.iter().find(|p| p.id == id).cloned();
    let api: Vec<ConditionalAccessPolicy> =
        current.api.iter().filter(|p| p.id != id).cloned().collect();
    let gone = async {
        match state.store.delete_ca_policy(&id).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(store::StoreError::NotFound),
            Err(e) => Err(e),
        }
    };
    apply(&state, api, gone).await?;
    tracing::info!(app = %admin.client_id, policy = %id, "conditional access policy deleted");
    if let Some(p) = &gone_policy {
        audit(
            &state,
            &ctx,
            &admin,
            "Delete conditional access policy",
            "Delete",
            p,
        )
        .await;
    }
    Ok(no_content())
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
    _admin: Admin,
    GraphJson(req): GraphJson<WhatIfRequest>,
) -> Result<Response, GraphError> {
    let user = what_if_user(&state, &req.user).await?;
    if state.app(&req.app_id).await?.is_none() {
        return Err(GraphError::bad_request(format!(
            "No app {:?} is registered here.",
            req.app_id
        )));
    }
    let guest = user.user_type == store::UserType::Guest;
    let user_risk = match req.user_risk_level {
        Some(l) => l,
        None if guest => RiskLevel::None,
        None => signin::gate::member_risk(&state, &user.id).await?,
    };
    let sign_in = signin::gate::sign_in_risk(
        &state,
        req.ip_address,
        req.user_agent.as_deref().unwrap_or(""),
        (&user.id, None),
        // What-if has no partner token to judge.
        None,
    )
    .await?;
    let input = signin::gate::evaluation_input(
        &user,
        signin::gate::groups_of(&state, &user.id).await?,
        &req.app_id,
        &sign_in.facts,
        user_risk,
        req.sign_in_risk_level.unwrap_or(sign_in.risk_level),
        req.satisfied,
    );
    let policies = state.protection.policies();
    let evaluation = policies.set.what_if(&input);
    Ok(reply(
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
    ))
}

/// The what-if user, named by id or by sign-in name.
async fn what_if_user(state: &AppState, user: &str) -> Result<store::User, GraphError> {
    let found = if user.contains('@') {
        state.store.user_by_email(&user.to_lowercase()).await?
    } else {
        state.store.user_by_id(user).await?
    };
    found.ok_or_else(|| GraphError::not_found(format!("No user {user:?} in this tenant.")))
}

/// `POST /v1.0/tenantd/reload`: re-read intel and policy files (as SIGHUP does) and check the
/// partners again; the answer lists each partner's findings (`partners`). A bad file is a 400
/// naming it, and the tenant keeps serving with what it had.
pub async fn reload(State(state): State<AppState>, _admin: Admin) -> Result<Response, GraphError> {
    let loaded = state.protection.reload(&state.store).await.map_err(|e| {
        tracing::warn!(error = %e, "reload refused; keeping the current intel and policies");
        GraphError::bad_request(format!(
            "{e} (nothing was changed; the previous intel and policies stay in use)"
        ))
    })?;
    let partners = check_partners(&state, Occasion::Reload).await;
    let mut body = serde_json::to_value(loaded).map_err(GraphError::internal)?;
    if let Some(map) = body.as_object_mut() {
        map.insert(
            "partners".into(),
            serde_json::to_value(partners).map_err(GraphError::internal)?,
        );
    }
    Ok(reply(StatusCode::OK, body))
}
