//! `/v1.0/users` in Graph's `user` shape: list (`$filter`, `$top`, `@odata.nextLink`), get by
//! id or `userPrincipalName`, create a member, change, delete. Each handler parses, makes one
//! [`signin::users`] call and renders; the rules (password policy and leaked credentials,
//! partner domains, what ends a user's sign-ins, risk remediation) live there.
//!
//! Errors are Graph's: `Request_BadRequest` (400) for a body that cannot be applied,
//! `Request_UnsupportedQuery` (400) for a query this server cannot answer exactly,
//! `Request_ResourceNotFound` (404) for an unknown user.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use store::{InvitationState, User, UserStatus, UserType};

use crate::admin::audits::{self, Activity, Area};
use crate::admin::{Admin, GraphError, GraphJson, GraphQuery, no_content, reply};
use crate::state::AppState;
use crate::user_risk::iso;
use crate::users::{self, ListQuery, NewMember, NewPassword, UserChanges, UserError};
use crate::web::Ctx;

/// The `@odata.type` of a Graph user, which a body may name.
const ODATA_TYPE: &str = "#microsoft.graph.user";

fn bad_request(message: impl Into<String>) -> GraphError {
    GraphError::new(StatusCode::BAD_REQUEST, "Request_BadRequest", message)
}

fn unsupported_query(message: impl Into<String>) -> GraphError {
    GraphError::unsupported_query(message)
}

impl From<UserError> for GraphError {
    #[track_caller]
    fn from(e: UserError) -> Self {
        match e {
            e @ UserError::NotFound(_) => GraphError::new(
                StatusCode::NOT_FOUND,
                "Request_ResourceNotFound",
                e.to_string(),
            ),
            e @ (UserError::Invalid(_)
            | UserError::DuplicateUpn
            | UserError::PartnerDomain { .. }
            | UserError::WeakPassword(_)
            | UserError::LeakedPassword
            | UserError::GuestPassword { .. }) => bad_request(e.to_string()),
            UserError::Password(e) => GraphError::internal(e),
            UserError::Risk(e) => e.into(),
            UserError::Store(e) => GraphError::internal(e),
        }
    }
}

/// Graph `user`.
pub(crate) fn user_json(user: &User) -> Value {
    let guest = user.user_type == UserType::Guest;
    json!({
        "id": user.id,
        "userPrincipalName": user.email,
        "mail": user.email,
        "displayName": user.display_name,
        "givenName": user.given_name,
        "surname": user.family_name,
        "accountEnabled": user.status == UserStatus::Active,
        "userType": if guest { "Guest" } else { "Member" },
        "externalUserState": user.invitation_state.map(|s| match s {
            InvitationState::PendingAcceptance => "PendingAcceptance",
            InvitationState::Accepted => "Accepted",
        }),
        "creationType": guest.then_some("Invitation"),
        "createdDateTime": iso(user.created_at),
    })
}

/// One user as an answer: Graph's `user` with its `@odata.context`.
fn entity(state: &AppState, user: &User) -> Value {
    let mut body = user_json(user);
    if let Some(map) = body.as_object_mut() {
        map.insert(
            "@odata.context".into(),
            Value::String(format!(
                "{}/v1.0/$metadata#users/$entity",
                state.config.issuer
            )),
        );
    }
    body
}

/// `GET /v1.0/users`: `$filter` (see [`users::parse_filter`]), `$top` (1–999, default 100),
/// `$skiptoken` from `@odata.nextLink`. Ordered by `userPrincipalName`.
pub async fn list(
    State(state): State<AppState>,
    _admin: Admin,
    GraphQuery(query): GraphQuery,
) -> Result<Response, GraphError> {
    if let Some(other) = query
        .keys()
        .find(|k| !matches!(k.as_str(), "$filter" | "$top" | "$skiptoken"))
    {
        return Err(unsupported_query(format!(
            "The query parameter {other:?} is not supported here; supported: $filter, $top, \
             $skiptoken."
        )));
    }
    let get = |k: &str| query.get(k).map(String::as_str);
    let parsed = ListQuery::parse(get("$filter"), get("$top"), get("$skiptoken"))
        .map_err(unsupported_query)?;
    let page = users::list(&state.store, &parsed).await?;
    let mut body = json!({
        "@odata.context": format!("{}/v1.0/$metadata#users", state.config.issuer),
        "value": page.users.iter().map(user_json).collect::<Vec<_>>(),
    });
    if let (Some(token), Some(map)) = (page.next, body.as_object_mut()) {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        if let Some(filter) = get("$filter") {
            q.append_pair("$filter", filter);
        }
        q.append_pair("$top", &parsed.top.to_string());
        q.append_pair("$skiptoken", &token);
        map.insert(
            "@odata.nextLink".into(),
            Value::String(format!("{}/v1.0/users?{}", state.config.issuer, q.finish())),
        );
    }
    Ok(reply(StatusCode::OK, body))
}

/// `GET /v1.0/users/{id | userPrincipalName}`.
pub async fn get(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, GraphError> {
    let user = users::find(&state.store, &id)
        .await?
        .ok_or(UserError::NotFound(id))?;
    Ok(reply(StatusCode::OK, entity(&state, &user)))
}

/// Graph `passwordProfile`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PasswordProfile {
    password: String,
    #[serde(default)]
    force_change_password_next_sign_in: bool,
    #[serde(default)]
    force_change_password_next_sign_in_with_mfa: bool,
}

impl TryFrom<PasswordProfile> for NewPassword {
    type Error = GraphError;

    fn try_from(p: PasswordProfile) -> Result<Self, GraphError> {
        if p.force_change_password_next_sign_in_with_mfa {
            return Err(bad_request(
                "forceChangePasswordNextSignInWithMfa is not supported; use \
                 forceChangePasswordNextSignIn (a change the user-risk policy requires comes \
                 after MFA anyway).",
            ));
        }
        Ok(NewPassword {
            password: p.password,
            force_change: p.force_change_password_next_sign_in,
        })
    }
}

fn odata_type(t: Option<&str>) -> Result<(), GraphError> {
    match t {
        Some(t) if t != ODATA_TYPE => Err(bad_request(format!(
            "@odata.type must be {ODATA_TYPE}, not {t:?}."
        ))),
        _ => Ok(()),
    }
}

/// `POST /v1.0/users` body: a member (Graph `user`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateUser {
    #[serde(rename = "@odata.type", default)]
    odata_type: Option<String>,
    account_enabled: bool,
    display_name: String,
    user_principal_name: String,
    password_profile: PasswordProfile,
    /// Graph requires it; tenantd has no mailboxes, so it is accepted and not used.
    #[serde(default)]
    mail_nickname: Option<String>,
    #[serde(default)]
    given_name: Option<String>,
    #[serde(default)]
    surname: Option<String>,
    /// The sign-in name is the address here: `mail`, if sent, must be the same.
    #[serde(default)]
    mail: Option<String>,
    #[serde(default)]
    user_type: Option<String>,
}

impl TryFrom<CreateUser> for NewMember {
    type Error = GraphError;

    fn try_from(u: CreateUser) -> Result<Self, GraphError> {
        odata_type(u.odata_type.as_deref())?;
        let _ = u.mail_nickname;
        match u.user_type.as_deref() {
            None => {}
            Some(t) if t.eq_ignore_ascii_case("member") => {}
            Some(t) if t.eq_ignore_ascii_case("guest") => {
                return Err(bad_request(
                    "Guests are not created here: invite them (POST /v1.0/invitations), and their \
                     first sign-in at their home tenant redeems the invitation.",
                ));
            }
            Some(t) => {
                return Err(bad_request(format!("userType must be Member, not {t:?}.")));
            }
        }
        if let Some(mail) = &u.mail
            && !mail
                .trim()
                .eq_ignore_ascii_case(u.user_principal_name.trim())
        {
            return Err(bad_request(
                "mail must be the same address as userPrincipalName (the sign-in name is the \
                 user's address here).",
            ));
        }
        Ok(NewMember {
            user_principal_name: u.user_principal_name,
            display_name: u.display_name,
            given_name: u.given_name,
            surname: u.surname,
            account_enabled: u.account_enabled,
            password: u.password_profile.try_into()?,
        })
    }
}

/// `POST /v1.0/users`: creates a member; 201 with the user.
pub async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    admin: Admin,
    GraphJson(body): GraphJson<CreateUser>,
) -> Result<Response, GraphError> {
    let new = NewMember::try_from(body)?;
    let user = users::create_member(&state, &new).await?;
    tracing::info!(app = %admin.client_id, user = %user.id, "user created");
    let activity = Activity::on_user(Area::Users, "Add user", "Add", &user);
    audits::record(&state, &ctx, &admin, activity).await;
    Ok(reply(StatusCode::CREATED, entity(&state, &user)))
}

/// A property that may be sent as `null`: absent is `None`, `null` is `Some(None)`.
fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// `PATCH /v1.0/users/{id}` body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateUser {
    #[serde(rename = "@odata.type", default)]
    odata_type: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    display_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    given_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    surname: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    account_enabled: Option<Option<bool>>,
    #[serde(default)]
    password_profile: Option<PasswordProfile>,
}

impl TryFrom<UpdateUser> for UserChanges {
    type Error = GraphError;

    fn try_from(u: UpdateUser) -> Result<Self, GraphError> {
        odata_type(u.odata_type.as_deref())?;
        let required = |name: &str| bad_request(format!("{name} cannot be null."));
        Ok(UserChanges {
            display_name: u
                .display_name
                .map(|n| n.ok_or_else(|| required("displayName")))
                .transpose()?,
            given_name: u.given_name,
            surname: u.surname,
            account_enabled: u
                .account_enabled
                .map(|e| e.ok_or_else(|| required("accountEnabled")))
                .transpose()?,
            password: u.password_profile.map(NewPassword::try_from).transpose()?,
        })
    }
}

/// `PATCH /v1.0/users/{id | userPrincipalName}`: 204.
pub async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    admin: Admin,
    Path(id): Path<String>,
    GraphJson(body): GraphJson<UpdateUser>,
) -> Result<Response, GraphError> {
    let changes = UserChanges::try_from(body)?;
    let actor = admin.actor();
    let done = users::update(&state, &id, &changes, &actor).await?;
    for activity in update_activities(&changes, &done.user) {
        audits::record(&state, &ctx, &admin, activity).await;
    }
    tracing::info!(
        app = %admin.client_id,
        user = %done.user.id,
        sessions_ended = done.sessions_ended,
        grants_ended = done.grants_ended,
        "user changed"
    );
    Ok(no_content())
}

/// The audit lines of one update, as Entra writes them: a password set by an admin, an account
/// disabled or enabled, and the rest as "Update user".
pub(crate) fn update_activities(changes: &UserChanges, user: &User) -> Vec<Activity> {
    let mut out = Vec::new();
    if let Some(p) = &changes.password {
        out.push(
            Activity::on_user(Area::Users, "Reset user password", "Update", user)
                .detail("forceChangePasswordNextSignIn", p.force_change.to_string()),
        );
    }
    match changes.account_enabled {
        Some(false) => out.push(Activity::on_user(
            Area::Users,
            "Disable account",
            "Update",
            user,
        )),
        Some(true) => out.push(Activity::on_user(
            Area::Users,
            "Enable account",
            "Update",
            user,
        )),
        None => {}
    }
    let mut names = Vec::new();
    if changes.display_name.is_some() {
        names.push("displayName");
    }
    if changes.given_name.is_some() {
        names.push("givenName");
    }
    if changes.surname.is_some() {
        names.push("surname");
    }
    if !names.is_empty() {
        out.push(
            Activity::on_user(Area::Users, "Update user", "Update", user)
                .detail("modifiedProperties", names.join(", ")),
        );
    }
    out
}

/// `DELETE /v1.0/users/{id | userPrincipalName}`: 204.
pub async fn delete(
    State(state): State<AppState>,
    ctx: Ctx,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, GraphError> {
    let (user, deleted) = users::delete(&state, &id).await?;
    audits::record(
        &state,
        &ctx,
        &admin,
        Activity::on_user(Area::Users, "Delete user", "Delete", &user),
    )
    .await;
    tracing::info!(
        app = %admin.client_id,
        user = %user.id,
        sessions = deleted.sessions,
        grants = deleted.grants,
        "user deleted"
    );
    Ok(no_content())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn create(body: Value) -> Result<NewMember, String> {
        let parsed: CreateUser = serde_json::from_value(body).map_err(|e| e.to_string())?;
        NewMember::try_from(parsed).map_err(|e| format!("{e:?}"))
    }

    fn patch(body: Value) -> Result<UserChanges, String> {
        let parsed: UpdateUser = serde_json::from_value(body).map_err(|e| e.to_string())?;
        UserChanges::try_from(parsed).map_err(|e| format!("{e:?}"))
    }

    #[test]
    fn create_bodies_are_graph_users() {
        let ok = create(json!({
            "@odata.type": "#microsoft.graph.user",
            "accountEnabled": true,
            "displayName": "Dana",
            "mailNickname": "dana",
            "userPrincipalName": "dana@contoso.test",
            "mail": "Dana@Contoso.test",
            "userType": "Member",
            "passwordProfile": {"password": "a-long-password", "forceChangePasswordNextSignIn": true},
        }))
        .unwrap();
        assert_eq!(ok.user_principal_name, "dana@contoso.test");
        assert!(ok.password.force_change && ok.account_enabled);
        let minimal = create(json!({
            "accountEnabled": false, "displayName": "D", "userPrincipalName": "d@c.test",
            "passwordProfile": {"password": "a-long-password"},
        }))
        .unwrap();
        assert!(!minimal.password.force_change, "Graph's default is false");

        for (body, needle) in [
            (
                json!({"displayName": "D", "userPrincipalName": "d@c.test", "passwordProfile": {"password": "p"}}),
                "accountEnabled",
            ),
            (
                json!({"accountEnabled": true, "displayName": "D", "userPrincipalName": "d@c.test"}),
                "passwordProfile",
            ),
            (
                json!({"accountEnabled": true, "displayName": "D", "userPrincipalName": "d@c.test", "passwordProfile": {"password": "p"}, "jobTitle": "x"}),
                "jobTitle",
            ),
            (
                json!({"accountEnabled": true, "displayName": "D", "userPrincipalName": "d@c.test", "passwordProfile": {"password": "p"}, "userType": "Guest"}),
                "invitations",
            ),
            (
                json!({"accountEnabled": true, "displayName": "D", "userPrincipalName": "d@c.test", "passwordProfile": {"password": "p"}, "userType": "Admin"}),
                "userType",
            ),
            (
                json!({"accountEnabled": true, "displayName": "D", "userPrincipalName": "d@c.test", "passwordProfile": {"password": "p"}, "mail": "x@c.test"}),
                "mail",
            ),
            (
                json!({"accountEnabled": true, "displayName": "D", "userPrincipalName": "d@c.test", "passwordProfile": {"password": "p", "forceChangePasswordNextSignInWithMfa": true}}),
                "WithMfa",
            ),
            (
                json!({"accountEnabled": true, "displayName": "D", "userPrincipalName": "d@c.test", "passwordProfile": {"password": "p"}, "@odata.type": "#microsoft.graph.group"}),
                "@odata.type",
            ),
        ] {
            let e = create(body.clone()).unwrap_err();
            assert!(e.contains(needle), "{body}: {e}");
        }
    }

    #[test]
    fn patch_bodies_tell_absent_from_null() {
        let c = patch(json!({"givenName": null, "surname": "S", "accountEnabled": false})).unwrap();
        assert_eq!(c.given_name, Some(None));
        assert_eq!(c.surname, Some(Some("S".into())));
        assert_eq!(c.account_enabled, Some(false));
        assert_eq!(c.display_name, None);
        assert!(c.password.is_none());
        assert_eq!(patch(json!({})).unwrap(), UserChanges::default());
        for (body, needle) in [
            (json!({"displayName": null}), "displayName cannot be null"),
            (
                json!({"accountEnabled": null}),
                "accountEnabled cannot be null",
            ),
            (
                json!({"userPrincipalName": "x@c.test"}),
                "userPrincipalName",
            ),
            (json!({"accountEnabled": "yes"}), "invalid type"),
            (
                json!({"passwordProfile": {"forceChangePasswordNextSignIn": true}}),
                "password",
            ),
        ] {
            let e = patch(body.clone()).unwrap_err();
            assert!(e.contains(needle), "{body}: {e}");
        }
    }

    #[test]
    fn users_render_in_graphs_shape() {
        let mut u = User {
            id: "u1".into(),
            email: "ann@contoso.test".into(),
            display_name: "Ann".into(),
            given_name: Some("Ann".into()),
            family_name: None,
            password_hash: Some("$argon2id$secret".into()),
            status: UserStatus::Disabled,
            must_change_password: false,
            created_at: 1_795_564_800,
            updated_at: 0,
            user_type: UserType::Member,
            partner_id: None,
            home_subject: None,
            invitation_state: None,
            home_user_risk: None,
        };
        let v = user_json(&u);
        assert_eq!(
            v,
            json!({
                "id": "u1", "userPrincipalName": "ann@contoso.test", "mail": "ann@contoso.test",
                "displayName": "Ann", "givenName": "Ann", "surname": null, "accountEnabled": false,
                "userType": "Member", "externalUserState": null, "creationType": null,
                "createdDateTime": "2026-11-25T00:00:00Z",
            })
        );
        assert!(!v.to_string().contains("argon2"));
        u.user_type = UserType::Guest;
        u.invitation_state = Some(InvitationState::Accepted);
        let v = user_json(&u);
        assert_eq!(
            (&v["userType"], &v["externalUserState"], &v["creationType"]),
            (&json!("Guest"), &json!("Accepted"), &json!("Invitation"))
        );
    }
}
