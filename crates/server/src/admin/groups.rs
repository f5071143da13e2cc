//! Graph's groups (`/v1.0/groups`): security groups of users and guests, which Conditional
//! Access policies include or exclude by id. A group a policy names cannot be deleted (a
//! break-glass exclusion must not vanish under its policy), and a policy naming a group that
//! does not exist is refused when saved ([`crate::admin::policies`]).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use store::Group;

use crate::admin::audits::{self, Activity, Area};
use crate::admin::users::user_json;
use crate::admin::{Admin, GraphError, GraphJson, MemberRef, already_a_member, no_content, reply};
use crate::state::AppState;
use crate::user_risk::iso;
use crate::web::Ctx;

/// Longest display name (Graph's limit).
const MAX_NAME: usize = 256;

fn no_group(id: &str) -> GraphError {
    GraphError::not_found(format!("No group with id {id} in this tenant."))
}

/// Graph `group` (security groups only).
fn group_json(g: &Group) -> Value {
    json!({
        "id": g.id,
        "displayName": g.display_name,
        "description": g.description,
        "securityEnabled": true,
        "mailEnabled": false,
        "groupTypes": [],
        "createdDateTime": iso(g.created_at),
    })
}

async fn existing(state: &AppState, id: &str) -> Result<Group, GraphError> {
    state.store.group(id).await?.ok_or_else(|| no_group(id))
}

/// `GET /v1.0/groups`.
pub async fn list(State(state): State<AppState>, _admin: Admin) -> Result<Response, GraphError> {
    let groups = state.store.list_groups().await?;
    Ok(reply(
        StatusCode::OK,
        json!({
            "@odata.context": format!("{}/v1.0/$metadata#groups", state.config.issuer),
            "value": groups.iter().map(group_json).collect::<Vec<_>>(),
        }),
    ))
}

/// `GET /v1.0/groups/{id}`.
pub async fn get(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, GraphError> {
    Ok(reply(
        StatusCode::OK,
        group_json(&existing(&state, &id).await?),
    ))
}

/// `POST /v1.0/groups` body: a security group.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateGroup {
    display_name: String,
    #[serde(default)]
    description: Option<String>,
    /// Graph requires it; must be false (no mail here).
    #[serde(default)]
    mail_enabled: bool,
    /// Graph requires it; accepted and not used.
    #[serde(default)]
    mail_nickname: Option<String>,
    /// Must be true: only security groups.
    #[serde(default = "yes")]
    security_enabled: bool,
    /// Must be empty: no Microsoft 365 or dynamic groups.
    #[serde(default)]
    group_types: Vec<String>,
}

fn yes() -> bool {
    true
}

/// `POST /v1.0/groups`: 201 with the group.
pub async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    admin: Admin,
    GraphJson(body): GraphJson<CreateGroup>,
) -> Result<Response, GraphError> {
    let _ = body.mail_nickname;
    let name = body.display_name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(GraphError::bad_request(format!(
            "displayName must be 1 to {MAX_NAME} characters."
        )));
    }
    if body.mail_enabled || !body.security_enabled || !body.group_types.is_empty() {
        return Err(GraphError::bad_request(
            "Only security groups exist here: mailEnabled false, securityEnabled true, \
             groupTypes [].",
        ));
    }
    let group = Group {
        id: uuid::Uuid::new_v4().to_string(),
        display_name: name.to_owned(),
        description: body.description.filter(|d| !d.trim().is_empty()),
        created_at: state.now(),
    };
    state.store.create_group(&group).await?;
    let activity = Activity::on(
        Area::Groups,
        "Add group",
        "Add",
        "Group",
        &group.id,
        &group.display_name,
    );
    audits::record(&state, &ctx, &admin, activity).await;
    Ok(reply(StatusCode::CREATED, group_json(&group)))
}

/// `DELETE /v1.0/groups/{id}`: 204; 409 while a policy names the group.
pub async fn delete(
    State(state): State<AppState>,
    ctx: Ctx,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, GraphError> {
    let group = existing(&state, &id).await?;
    let policies = state.protection.policies();
    if let Some(p) = policies.set.policies().iter().find(|p| {
        let u = &p.conditions.users;
        u.include_groups.contains(&id) || u.exclude_groups.contains(&id)
    }) {
        return Err(GraphError::conflict(format!(
            "The Conditional Access policy {:?} ({}) names this group: change the policy first.",
            p.display_name, p.id
        )));
    }
    if !state.store.delete_group(&id).await? {
        return Err(no_group(&id));
    }
    let activity = Activity::on(
        Area::Groups,
        "Delete group",
        "Delete",
        "Group",
        &group.id,
        &group.display_name,
    );
    audits::record(&state, &ctx, &admin, activity).await;
    Ok(no_content())
}

/// `GET /v1.0/groups/{id}/members`: users and guests, in Graph's `user` shape.
pub async fn members(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, GraphError> {
    existing(&state, &id).await?;
    let users = state.store.group_members(&id).await?;
    Ok(reply(
        StatusCode::OK,
        json!({
            "@odata.context": format!("{}/v1.0/$metadata#directoryObjects", state.config.issuer),
            "value": users.iter().map(user_json).collect::<Vec<_>>(),
        }),
    ))
}

/// `POST /v1.0/groups/{id}/members/$ref` with `{"@odata.id": ".../directoryObjects/{userId}"}`
/// (or `.../users/{userId}`): 204; adding a member twice is a 400, as in Graph.
pub async fn add_member(
    State(state): State<AppState>,
    ctx: Ctx,
    admin: Admin,
    Path(id): Path<String>,
    GraphJson(body): GraphJson<MemberRef>,
) -> Result<Response, GraphError> {
    let group = existing(&state, &id).await?;
    let user = body.user(&state).await?;
    if !state
        .store
        .add_group_member(&group.id, &user.id, state.now())
        .await?
    {
        return Err(already_a_member());
    }
    let activity = Activity::on_user(Area::Groups, "Add member to group", "Add", &user)
        .detail("groupId", group.id.as_str())
        .detail("groupName", group.display_name.as_str());
    audits::record(&state, &ctx, &admin, activity).await;
    Ok(no_content())
}

/// `DELETE /v1.0/groups/{id}/members/{userId}/$ref`: 204.
pub async fn remove_member(
    State(state): State<AppState>,
    ctx: Ctx,
    admin: Admin,
    Path((id, user_id)): Path<(String, String)>,
) -> Result<Response, GraphError> {
    let group = existing(&state, &id).await?;
    let user = state.store.user_by_id(&user_id).await?;
    if !state.store.remove_group_member(&group.id, &user_id).await? {
        return Err(GraphError::not_found(format!(
            "{user_id} is not a member of group {id}."
        )));
    }
    if let Some(user) = user {
        let activity = Activity::on_user(Area::Groups, "Remove member from group", "Delete", &user)
            .detail("groupId", group.id.as_str())
            .detail("groupName", group.display_name.as_str());
        audits::record(&state, &ctx, &admin, activity).await;
    }
    Ok(no_content())
}
