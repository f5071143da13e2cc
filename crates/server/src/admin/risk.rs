//! Graph's ID Protection API at the home tenant (`/v1.0/identityProtection/...`): the risky
//! users report with history, the admin actions dismiss and confirm compromised, and the risk
//! detections. Protected like the rest of the admin API (an app token with the `admin` scope,
//! see [`crate::admin::Admin`]); errors are Graph's `{"error": {"code", "message"}}`.
//!
//! The seed's limitations hold here: guests do not appear in the risky users report, and
//! their risk cannot be dismissed or confirmed here (it is held by their home tenant).
//! Bad input is a 400 and changes nothing: a bulk action is checked for every user first.

use std::collections::{BTreeSet, HashMap};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use risk::{Actor, RiskState, UserRiskEvent, UserRiskStatus, transition};
use serde::Deserialize;
use serde_json::{Value, json};
use store::{DetectionFilter, DetectionRecord, RiskyUserCondition, RiskyUserQuery, User, UserType};

use crate::admin::audits::{self, Activity, Area};
use crate::admin::{Admin, GraphError, GraphJson, GraphQuery, no_content, reply};
use crate::state::AppState;
use crate::user_risk::{self, Home, UserRiskError, iso, status_of};
use crate::web::Ctx;

/// Most users one dismiss/confirmCompromised call may name (Graph's limit).
pub const MAX_USER_IDS: usize = 60;
/// Default and largest page of `riskDetections`.
const DEFAULT_TOP: i64 = 100;
const MAX_TOP: i64 = 1000;

fn no_user(id: &str) -> GraphError {
    GraphError::not_found(format!("No user with id {id} in this tenant."))
}

impl From<UserRiskError> for GraphError {
    #[track_caller]
    fn from(e: UserRiskError) -> Self {
        match e {
            UserRiskError::UnknownUser(id) => no_user(&id),
            UserRiskError::Refused(r) => GraphError::bad_request(r.to_string()),
            // The request was fine; the user's risk was busy or the call cannot apply now.
            UserRiskError::NotAnAction(_) | UserRiskError::Busy(_) => {
                GraphError::conflict(e.to_string())
            }
            UserRiskError::Store(s) => GraphError::internal(s),
        }
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
async fn risky_user(state: &AppState, id: &str) -> Result<Option<Value>, GraphError> {
    let Some(user) = state.store.user_by_id(id).await? else {
        return Ok(None);
    };
    if user.user_type == UserType::Guest {
        return Ok(None);
    }
    let risk = user_risk::current_since(state, &user.id).await?;
    Ok(Some(risky_user_json(&user, risk.status, risk.updated_at)))
}

/// Default and largest page of `riskyUsers`.
const DEFAULT_RISKY_TOP: i64 = 100;
const MAX_RISKY_TOP: i64 = 999;

/// `GET /v1.0/identityProtection/riskyUsers`: members whose risk was ever recorded, most
/// recently changed first. Guests never appear (their risk is their home's).
///
/// `$filter`: `userPrincipalName` and `userDisplayName` with `eq` and `startswith`,
/// `riskLevel` and `riskState` with `eq`, joined by `and`; `$orderby=riskLastUpdatedDateTime`
/// (`desc`, the default, or `asc`); `$top` (1–999, default 100) and `@odata.nextLink`. Anything
/// else is a 400 `Request_UnsupportedQuery`, never ignored. The levels shown are as stored: a
/// level whose detections aged out since is recomputed when the user is read one by one or
/// signs in.
pub async fn list_risky_users(
    State(state): State<AppState>,
    _admin: Admin,
    GraphQuery(params): GraphQuery,
) -> Result<Response, GraphError> {
    let q = risky_users_query(&params).map_err(GraphError::unsupported_query)?;
    let page = state.store.list_risky_users(&q).await?;
    let full_page = page.len() as i64 == q.limit;
    let value: Vec<Value> = page
        .iter()
        .map(|r| {
            let status = status_of(Some(&r.risk)).unwrap_or_default();
            risky_user_json(&r.user, status, Some(r.risk.updated_at))
        })
        .collect();
    let mut body = json!({
        "@odata.context": format!("{}/v1.0/$metadata#identityProtection/riskyUsers", state.config.issuer),
        "value": value,
    });
    if full_page && let Some(map) = body.as_object_mut() {
        let mut next = url::form_urlencoded::Serializer::new(String::new());
        for key in ["$filter", "$orderby"] {
            if let Some(v) = params.get(key) {
                next.append_pair(key, v);
            }
        }
        next.append_pair("$top", &q.limit.to_string());
        if let Some(last) = page.last() {
            next.append_pair(
                "$skiptoken",
                &format!("{}.{}", last.risk.updated_at, last.user.id),
            );
        }
        map.insert(
            "@odata.nextLink".into(),
            Value::String(format!(
                "{}/v1.0/identityProtection/riskyUsers?{}",
                state.config.issuer,
                next.finish()
            )),
        );
    }
    Ok(reply(StatusCode::OK, body))
}

/// The report's query options, checked: every one is applied exactly or refused.
pub(crate) fn risky_users_query(
    params: &HashMap<String, String>,
) -> Result<RiskyUserQuery, String> {
    let mut q = RiskyUserQuery {
        limit: DEFAULT_RISKY_TOP,
        ..RiskyUserQuery::default()
    };
    for (k, v) in params {
        match k.as_str() {
            "$filter" => q.conditions = parse_risky_filter(v)?,
            "$orderby" => {
                let mut words = v.split_whitespace();
                if words.next() != Some("riskLastUpdatedDateTime") {
                    return Err(format!(
                        "$orderby {v:?} is not supported; riskLastUpdatedDateTime [asc|desc] is."
                    ));
                }
                q.oldest_first = match (words.next(), words.next()) {
                    (None | Some("desc"), None) => false,
                    (Some("asc"), None) => true,
                    _ => return Err(format!("$orderby {v:?}: asc or desc")),
                };
            }
            "$top" => {
                q.limit = v
                    .parse::<i64>()
                    .ok()
                    .filter(|n| (1..=MAX_RISKY_TOP).contains(n))
                    .ok_or_else(|| format!("$top must be a number from 1 to {MAX_RISKY_TOP}"))?;
            }
            "$skiptoken" => {
                // `<riskLastUpdated unix seconds>.<user id>` of the previous page's last row.
                q.after = v
                    .split_once('.')
                    .and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id.to_owned())))
                    .filter(|(_, id)| !id.is_empty())
                    .map(Some)
                    .ok_or("$skiptoken is not one this server issued")?;
            }
            other => {
                return Err(format!(
                    "The query parameter {other:?} is not supported here; supported: $filter, \
                     $orderby, $top, $skiptoken."
                ));
            }
        }
    }
    Ok(q)
}

const RISKY_FILTERABLE: &str =
    "userPrincipalName, userDisplayName (eq, startswith), riskLevel and riskState (eq)";

#[derive(Debug, Clone, Copy)]
enum RiskyField {
    UserPrincipalName,
    UserDisplayName,
    RiskLevel,
    RiskState,
}

fn risky_field(word: &str) -> Result<RiskyField, String> {
    match word {
        "userPrincipalName" => Ok(RiskyField::UserPrincipalName),
        "userDisplayName" => Ok(RiskyField::UserDisplayName),
        "riskLevel" => Ok(RiskyField::RiskLevel),
        "riskState" => Ok(RiskyField::RiskState),
        _ => Err(format!(
            "$filter on {word:?} is not supported; supported: {RISKY_FILTERABLE}, clauses joined \
             by `and`."
        )),
    }
}

/// A value of Graph's vocabulary (`riskLevel`, `riskState`), checked, in its wire spelling.
fn vocabulary<T: serde::de::DeserializeOwned + serde::Serialize>(
    field: &str,
    value: &str,
) -> Result<String, String> {
    risk::from_wire::<T>(value)
        .map(|v| risk::to_wire(&v))
        .ok_or_else(|| format!("$filter: {value:?} is not a {field}"))
}

fn parse_risky_filter(text: &str) -> Result<Vec<RiskyUserCondition>, String> {
    use crate::users::Clause;
    use store::UserCondition;
    crate::users::parse_clauses(text, |f| risky_field(f).map(|_| ()))?
        .into_iter()
        .map(|clause| {
            Ok(match clause {
                Clause::StartsWith(f, v) => match risky_field(&f)? {
                    RiskyField::UserPrincipalName => {
                        RiskyUserCondition::User(UserCondition::EmailStartsWith(v))
                    }
                    RiskyField::UserDisplayName => {
                        RiskyUserCondition::User(UserCondition::DisplayNameStartsWith(v))
                    }
                    RiskyField::RiskLevel | RiskyField::RiskState => {
                        return Err(format!("$filter: {f} supports eq only."));
                    }
                },
                Clause::Eq(f, v) => match risky_field(&f)? {
                    RiskyField::UserPrincipalName => {
                        RiskyUserCondition::User(UserCondition::EmailIs(v))
                    }
                    RiskyField::UserDisplayName => {
                        RiskyUserCondition::User(UserCondition::DisplayNameIs(v))
                    }
                    RiskyField::RiskLevel => {
                        RiskyUserCondition::LevelIs(vocabulary::<risk::RiskLevel>("riskLevel", &v)?)
                    }
                    RiskyField::RiskState => {
                        RiskyUserCondition::StateIs(vocabulary::<RiskState>("riskState", &v)?)
                    }
                },
            })
        })
        .collect()
}

/// `GET /v1.0/identityProtection/riskyUsers/{id}`.
pub async fn get_risky_user(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, GraphError> {
    let user = risky_user(&state, &id).await?.ok_or_else(|| no_user(&id))?;
    Ok(reply(StatusCode::OK, user))
}

/// `GET /v1.0/identityProtection/riskyUsers/{id}/history`: Graph `riskyUserHistoryItem`s,
/// newest first, each with who initiated it and why (`reason`, a tenantd extension).
pub async fn risky_user_history(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, GraphError> {
    let user = state
        .store
        .user_by_id(&id)
        .await?
        .filter(|u| u.user_type == UserType::Member)
        .ok_or_else(|| no_user(&id))?;
    let items = state.store.risk_history(&user.id).await?;
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
    Ok(reply(StatusCode::OK, json!({ "value": value })))
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
    ctx: Ctx,
    admin: Admin,
    GraphJson(req): GraphJson<UserIds>,
) -> Result<Response, GraphError> {
    admin_action(&state, &ctx, &admin, &req, UserRiskEvent::AdminDismissed).await
}

/// `POST /v1.0/identityProtection/riskyUsers/confirmSafe`: 204. The risky activity was the
/// user's own: risk `none`, `confirmedSafe`; the password is left alone. (Graph has this
/// action for risky sign-ins; here it applies to what made the user risky.)
pub async fn confirm_safe(
    State(state): State<AppState>,
    ctx: Ctx,
    admin: Admin,
    GraphJson(req): GraphJson<UserIds>,
) -> Result<Response, GraphError> {
    admin_action(
        &state,
        &ctx,
        &admin,
        &req,
        UserRiskEvent::AdminConfirmedSafe,
    )
    .await
}

/// `POST /v1.0/identityProtection/riskyUsers/confirmCompromised`: 204.
pub async fn confirm_compromised(
    State(state): State<AppState>,
    ctx: Ctx,
    admin: Admin,
    GraphJson(req): GraphJson<UserIds>,
) -> Result<Response, GraphError> {
    admin_action(
        &state,
        &ctx,
        &admin,
        &req,
        UserRiskEvent::AdminConfirmedCompromised,
    )
    .await
}

async fn admin_action(
    state: &AppState,
    ctx: &Ctx,
    admin: &Admin,
    req: &UserIds,
    event: UserRiskEvent,
) -> Result<Response, GraphError> {
    act_on_users(state, ctx, admin, &req.user_ids, event).await?;
    Ok(no_content())
}

/// An admin's risk action (dismiss, confirm safe, confirm compromised) on the named users,
/// each audited; every user is checked first, so one that cannot take it changes nothing.
pub(crate) async fn act_on_users(
    state: &AppState,
    ctx: &Ctx,
    admin: &Admin,
    user_ids: &[String],
    event: UserRiskEvent,
) -> Result<(), GraphError> {
    let actor = admin.actor();
    let home = Home::of(state);
    let users = accepting_users(state, &home, user_ids, &event, &actor).await?;
    let name = match event {
        UserRiskEvent::AdminDismissed => "Dismiss user risk",
        UserRiskEvent::AdminConfirmedSafe => "Confirm user safe",
        _ => "Confirm user compromised",
    };
    for user in &users {
        // The audit line goes in the change's own transaction.
        let line = |status: &UserRiskStatus| {
            let activity = Activity::on_user(Area::IdentityProtection, name, "Update", user)
                .detail("riskState", status.risk_state.as_str())
                .detail("riskDetail", status.risk_detail.as_str());
            audits::line(state, ctx, admin, activity)
        };
        home.remediate_audited(&user.id, event.clone(), actor.clone(), Some(&line))
            .await?;
    }
    tracing::info!(app = %admin.client_id, users = users.len(), "admin risk action");
    Ok(())
}

/// The named users, once each, after checking every one: one bad id and nothing changes.
async fn accepting_users(
    state: &AppState,
    home: &Home<'_>,
    user_ids: &[String],
    event: &UserRiskEvent,
    actor: &Actor,
) -> Result<Vec<User>, GraphError> {
    if user_ids.is_empty() || user_ids.len() > MAX_USER_IDS {
        return Err(GraphError::bad_request(format!(
            "userIds must name between 1 and {MAX_USER_IDS} users."
        )));
    }
    let mut ids = Vec::new();
    let mut seen = BTreeSet::new();
    for id in user_ids {
        if !seen.insert(id.as_str()) {
            continue;
        }
        let user = state
            .store
            .user_by_id(id)
            .await?
            .ok_or_else(|| no_user(id))?;
        user_risk::ensure_ours(&user).map_err(|e| GraphError::forbidden(e.to_string()))?;
        let status = home.current(&user.id).await?;
        transition(status, event, actor, time::OffsetDateTime::now_utc())
            .map_err(|e| GraphError::bad_request(format!("user {id}: {e}")))?;
        ids.push(user);
    }
    Ok(ids)
}

/// Graph's `riskState`/`riskDetail` of a detection, from its own state (and, for a remediated
/// one, the user's detail saying how it was remediated).
fn detection_state(d: &DetectionRecord, user_status: Option<UserRiskStatus>) -> (String, String) {
    match d.state.as_str() {
        "dismissed" if user_status.is_some_and(|s| s.risk_state == RiskState::ConfirmedSafe) => (
            RiskState::ConfirmedSafe.as_str().into(),
            "adminConfirmedSigninSafe".into(),
        ),
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

/// `$top`, `$skip` and `$filter` of `riskDetections`.
fn detection_filter(query: &HashMap<String, String>) -> Result<DetectionFilter, GraphError> {
    let mut filter = DetectionFilter {
        user_id: None,
        limit: DEFAULT_TOP,
        offset: 0,
    };
    for (k, v) in query {
        match k.as_str() {
            "$top" => match v.parse::<i64>() {
                Ok(n) if (1..=MAX_TOP).contains(&n) => filter.limit = n,
                _ => {
                    return Err(GraphError::bad_request(format!(
                        "$top must be an integer from 1 to {MAX_TOP}."
                    )));
                }
            },
            "$skip" => match v.parse::<i64>() {
                Ok(n) if n >= 0 => filter.offset = n,
                _ => {
                    return Err(GraphError::bad_request(
                        "$skip must be a non-negative integer.",
                    ));
                }
            },
            "$filter" => match parse_filter(v) {
                Some(id) => filter.user_id = Some(id),
                None => {
                    return Err(GraphError::bad_request(
                        "$filter supports only userId eq '<id>'.",
                    ));
                }
            },
            other => {
                return Err(GraphError::bad_request(format!(
                    "Unsupported query parameter {other}."
                )));
            }
        }
    }
    Ok(filter)
}

/// `GET /v1.0/identityProtection/riskDetections`: newest first; `$top` (1..=1000, default
/// 100), `$skip`, and `$filter=userId eq '<id>'`. An `@odata.nextLink` follows a full page.
pub async fn list_risk_detections(
    State(state): State<AppState>,
    _admin: Admin,
    GraphQuery(query): GraphQuery,
) -> Result<Response, GraphError> {
    let filter = detection_filter(&query)?;
    let rows = state.store.list_detections(&filter).await?;
    let mut body = json!({ "value": detections_json(&state, &rows).await? });
    if rows.len() as i64 == filter.limit {
        body["@odata.nextLink"] = Value::String(detections_next_link(&state, &filter));
    }
    Ok(reply(StatusCode::OK, body))
}

/// Graph `riskDetection`s, each user (and their risk) read once however many rows name them.
async fn detections_json(
    state: &AppState,
    rows: &[DetectionRecord],
) -> Result<Vec<Value>, GraphError> {
    Ok(detections_with_users(state, rows)
        .await?
        .into_iter()
        .map(|r| {
            let d = r.detection;
            json!({
                "id": d.id,
                "userId": d.user_id,
                "userPrincipalName": r.user.as_ref().map(|u| u.email.clone()),
                "userDisplayName": r.user.as_ref().map(|u| u.display_name.clone()),
                "riskEventType": d.risk_event_type,
                "riskLevel": d.risk_level,
                "riskState": r.risk_state,
                "riskDetail": r.risk_detail,
                "detectionTimingType": d.detection_timing_type,
                "activity": "user",
                "source": d.source,
                "ipAddress": d.ip_address,
                "detectedDateTime": iso(d.detected_at),
                "additionalInfo": d.explanation,
            })
        })
        .collect())
}

/// A detection with its user and its Graph `riskState` / `riskDetail`.
pub(crate) struct DetectionWithUser<'a> {
    /// The detection.
    pub detection: &'a DetectionRecord,
    /// Its user, if they still exist.
    pub user: Option<User>,
    /// Graph's `riskState`.
    pub risk_state: String,
    /// Graph's `riskDetail`.
    pub risk_detail: String,
}

/// `rows` with their users and states, each user (and their stored risk) read once however
/// many rows name them: what the API's and the pages' detection lists show.
pub(crate) async fn detections_with_users<'a>(
    state: &AppState,
    rows: &'a [DetectionRecord],
) -> Result<Vec<DetectionWithUser<'a>>, store::StoreError> {
    let mut users: HashMap<String, (Option<User>, Option<UserRiskStatus>)> = HashMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for d in rows {
        if !users.contains_key(&d.user_id) {
            let user = state.store.user_by_id(&d.user_id).await?;
            let record = state.store.user_risk(&d.user_id).await?;
            let status = status_of(record.as_ref()).ok();
            users.insert(d.user_id.clone(), (user, status));
        }
        let (user, status) = users.get(&d.user_id).cloned().unwrap_or_default();
        let (risk_state, risk_detail) = detection_state(d, status);
        out.push(DetectionWithUser {
            detection: d,
            user,
            risk_state,
            risk_detail,
        });
    }
    Ok(out)
}

/// The next page: the same filter, moved on by one page.
fn detections_next_link(state: &AppState, filter: &DetectionFilter) -> String {
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
    next
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
