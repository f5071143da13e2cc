//! Graph's directory roles (`/v1.0/directoryRoles`): one role exists, the tenant's
//! administrator (Graph's Global Administrator). Its members may call the admin API with their
//! own tokens (see [`crate::admin::Admin`]) and use the admin pages.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::admin::audits::{self, Activity, Area};
use crate::admin::users::user_json;
use crate::admin::{Admin, GraphError, GraphJson, MemberRef, already_a_member, no_content, reply};
use crate::state::AppState;
use crate::web::Ctx;

/// The administrator role's id: Graph's role template id of Global Administrator.
pub const ADMINISTRATOR: &str = "62e90394-69f5-4237-9190-012177145e10";

fn role_json() -> Value {
    json!({
        "id": ADMINISTRATOR,
        "roleTemplateId": ADMINISTRATOR,
        "displayName": "Global Administrator",
        "description": "Can manage all aspects of this tenant: users, groups, risk, Conditional Access, apps.",
    })
}

fn the_role(id: &str) -> Result<(), GraphError> {
    if id == ADMINISTRATOR {
        Ok(())
    } else {
        Err(GraphError::not_found(format!(
            "No directory role with id {id}."
        )))
    }
}

/// `GET /v1.0/directoryRoles`.
pub async fn list(State(state): State<AppState>, _admin: Admin) -> Result<Response, GraphError> {
    Ok(reply(
        StatusCode::OK,
        json!({
            "@odata.context": format!("{}/v1.0/$metadata#directoryRoles", state.config.issuer),
            "value": [role_json()],
        }),
    ))
}

/// `GET /v1.0/directoryRoles/{id}/members`.
pub async fn members(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, GraphError> {
    the_role(&id)?;
    let users = state.store.role_members(&id).await?;
    Ok(reply(
        StatusCode::OK,
        json!({
            "@odata.context": format!("{}/v1.0/$metadata#directoryObjects", state.config.issuer),
            "value": users.iter().map(user_json).collect::<Vec<_>>(),
        }),
    ))
}

/// `POST /v1.0/directoryRoles/{id}/members/$ref` with
/// `{"@odata.id": ".../directoryObjects/{userId}"}`: 204.
pub async fn add_member(
    State(state): State<AppState>,
    ctx: Ctx,
    admin: Admin,
    Path(id): Path<String>,
    GraphJson(body): GraphJson<MemberRef>,
) -> Result<Response, GraphError> {
    the_role(&id)?;
    let user = body.user(&state).await?;
    if !state
        .store
        .add_role_member(&id, &user.id, state.now())
        .await?
    {
        return Err(already_a_member());
    }
    let activity = Activity::on_user(Area::Roles, "Add member to role", "Add", &user)
        .detail("roleName", "Global Administrator");
    audits::record(&state, &ctx, &admin, activity).await;
    Ok(no_content())
}

/// `DELETE /v1.0/directoryRoles/{id}/members/{userId}/$ref`: 204. An administrator cannot
/// remove themselves (someone must be left who can add them back).
pub async fn remove_member(
    State(state): State<AppState>,
    ctx: Ctx,
    admin: Admin,
    Path((id, user_id)): Path<(String, String)>,
) -> Result<Response, GraphError> {
    the_role(&id)?;
    if admin.user.as_ref().is_some_and(|u| u.id == user_id) {
        return Err(GraphError::bad_request(
            "An administrator cannot remove their own role; ask another administrator.",
        ));
    }
    let user = state.store.user_by_id(&user_id).await?;
    if !state.store.remove_role_member(&id, &user_id).await? {
        return Err(GraphError::not_found(format!(
            "{user_id} does not hold this role."
        )));
    }
    if let Some(user) = user {
        let activity = Activity::on_user(Area::Roles, "Remove member from role", "Delete", &user)
            .detail("roleName", "Global Administrator");
        audits::record(&state, &ctx, &admin, activity).await;
    }
    Ok(no_content())
}
