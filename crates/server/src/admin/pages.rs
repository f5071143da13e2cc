//! The admin pages under `/admin`: the same reports and actions as the admin API, for a person.
//! An administrator signs in through the tenant's own OIDC flow ([`crate::portal`]); every page
//! checks the administrator role again, every form carries a CSRF token, and every action goes
//! through the same domain call and audit line as its API twin, so the two cannot disagree.
//!
//! Pages: risky users (user, level and state filters, sort, paging, CSV), one user's risk (a
//! timeline with its detections, recent sign-ins, and the actions: reset password, dismiss,
//! confirm compromised, confirm safe, block), risk detections, sign-in logs (the API's filters),
//! Conditional Access policies (view; switch on / report-only / off), guests and invitations,
//! and the audit log. At a resource tenant a guest's risk is their home's: the user page says
//! so and names the home, and the actions are refused.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;
use store::{
    AuditFilter, DetectionFilter, RiskyUserCondition, RiskyUserQuery, User, UserCondition,
    UserStatus, UserType,
};

use crate::admin::{audits, risk as risk_api, sign_ins, users as users_api};
use crate::portal::AdminUser;
use crate::state::AppState;
use crate::user_risk;
use crate::users::{self, NewPassword, UserChanges};
use crate::web::{self, Ctx, Form, PageError, Query, check_csrf, csrf_token, html};
use risk::{RiskState, UserRiskEvent};

/// Rows per page of every list.
const PAGE: i64 = 50;
/// Most rows one CSV export holds.
const CSV_MAX_ROWS: usize = 100_000;

/// The navigation bar and what every admin page's frame needs.
pub struct Nav {
    /// Tenant display name.
    pub tenant_name: String,
    /// This page's link (marked as current).
    pub current: &'static str,
    /// CSRF token for the page's forms (and sign-out).
    pub csrf_token: String,
    /// Who is signed in.
    pub admin_email: String,
}

const LINKS: [(&str, &str); 8] = [
    ("/admin/risky-users", "Risky users"),
    ("/admin/detections", "Risk detections"),
    ("/admin/sign-ins", "Sign-in logs"),
    ("/admin/policies", "Conditional Access"),
    ("/admin/users", "Users"),
    ("/admin/guests", "Guests"),
    ("/admin/shared-signals", "Shared signals"),
    ("/admin/audit", "Audit log"),
];

impl Nav {
    /// The pages, in the bar's order.
    pub fn links(&self) -> &'static [(&'static str, &'static str)] {
        &LINKS
    }
}

/// The frame of a page: the navigation, and the CSRF cookie set if the browser had none.
fn frame(
    state: &AppState,
    jar: CookieJar,
    admin: &AdminUser,
    current: &'static str,
) -> (CookieJar, Nav) {
    let (jar, csrf_token) = csrf_token(state, jar);
    let nav = Nav {
        tenant_name: state.config.display_name.clone(),
        current,
        csrf_token,
        admin_email: admin.user.email.clone(),
    };
    (jar, nav)
}

/// A time for people: `2026-12-04 21:42 UTC`.
pub fn when(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix).map_or_else(
        |_| unix.to_string(),
        |t| {
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02} UTC",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute()
            )
        },
    )
}

/// Template filters of the admin pages.
mod filters {
    /// Graph's words (`atRisk`, `adminDismissedAllRiskForUser`, `leakedCredentials`) as
    /// people say them; the pages keep the term itself in a `title` for those who look it up.
    #[askama::filter_fn]
    pub fn words<T: std::fmt::Display>(term: T, _: &dyn askama::Values) -> askama::Result<String> {
        Ok(super::words(&term.to_string()))
    }
}

/// See [`filters::words`].
pub fn words(term: &str) -> String {
    let known = match term {
        "none" | "" => "None",
        "atRisk" => "At risk",
        "hidden" => "Hidden",
        "anonymizedIPAddress" => "Anonymous IP address",
        "maliciousIPAddress" => "Malicious IP address",
        "suspiciousIPAddress" => "Suspicious IP address (many wrong passwords)",
        "userPerformedSecuredPasswordReset" => "The user reset their password securely",
        "userPerformedSecuredPasswordChange" => "The user changed their password securely",
        "adminGeneratedTemporaryPassword" => "An admin set a temporary password",
        "adminDismissedAllRiskForUser" => "An admin dismissed the user's risk",
        "adminConfirmedUserCompromised" => "An admin confirmed the user compromised",
        "adminConfirmedSigninSafe" | "adminConfirmedUserSafe" => {
            "An admin confirmed it was the user"
        }
        _ => "",
    };
    if !known.is_empty() {
        return known.to_owned();
    }
    // camelCase to words: "leakedCredentials" → "Leaked credentials".
    let mut out = String::with_capacity(term.len() + 4);
    for (i, c) in term.chars().enumerate() {
        if i == 0 {
            out.extend(c.to_uppercase());
        } else if c.is_uppercase() {
            out.push(' ');
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `GET /admin`: the risky users report is where an administrator starts.
pub async fn home(_admin: AdminUser) -> Redirect {
    Redirect::to("/admin/risky-users")
}

// ---- risky users ----

/// The risky users filters, as the page's form sends them.
#[derive(Debug, Default, Deserialize)]
pub struct RiskyUsersForm {
    #[serde(default)]
    user: String,
    #[serde(default)]
    level: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    order: String,
    #[serde(default)]
    after: String,
}

impl RiskyUsersForm {
    /// The store query: the seed's "User" filter is a prefix of the sign-in name (when it has
    /// an `@` or no space) or of the display name; level and state are Graph's words.
    fn query(&self, limit: i64) -> Result<RiskyUserQuery, PageError> {
        let bad = |m: String| PageError::bad_request("Filter not valid", m);
        let mut conditions = Vec::new();
        let user = self.user.trim();
        if !user.is_empty() {
            conditions.push(RiskyUserCondition::User(if user.contains('@') {
                UserCondition::EmailStartsWith(user.to_lowercase())
            } else {
                UserCondition::DisplayNameStartsWith(user.to_owned())
            }));
        }
        if !self.level.is_empty() {
            let level = risk::from_wire::<risk::RiskLevel>(&self.level)
                .ok_or_else(|| bad(format!("{:?} is not a risk level.", self.level)))?;
            conditions.push(RiskyUserCondition::LevelIs(risk::to_wire(&level)));
        }
        if !self.state.is_empty() {
            let state = risk::from_wire::<RiskState>(&self.state)
                .ok_or_else(|| bad(format!("{:?} is not a risk state.", self.state)))?;
            conditions.push(RiskyUserCondition::StateIs(risk::to_wire(&state)));
        }
        let oldest_first = match self.order.as_str() {
            "" | "newest" => false,
            "oldest" => true,
            other => return Err(bad(format!("{other:?} is not an order."))),
        };
        let after = if self.after.is_empty() {
            None
        } else {
            Some(
                self.after
                    .split_once('.')
                    .and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id.to_owned())))
                    .ok_or_else(|| bad("The page link is not one this page made.".into()))?,
            )
        };
        Ok(RiskyUserQuery {
            conditions,
            oldest_first,
            limit,
            after,
        })
    }

    /// This form's query string with `after` set to `next`.
    fn link(&self, path: &str, after: Option<&str>) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("user", self.user.as_str()),
            ("level", &self.level),
            ("state", &self.state),
            ("order", &self.order),
        ] {
            if !v.is_empty() {
                q.append_pair(k, v);
            }
        }
        if let Some(a) = after {
            q.append_pair("after", a);
        }
        format!("{path}?{}", q.finish())
    }
}

/// One row of the risky users page.
pub struct RiskyRow {
    /// User id.
    pub id: String,
    /// Sign-in name.
    pub email: String,
    /// Display name.
    pub name: String,
    /// `riskLevel`.
    pub level: String,
    /// `riskState`.
    pub state: String,
    /// `riskDetail`.
    pub detail: String,
    /// Last change.
    pub updated: String,
}

/// The risky users page.
#[derive(Template)]
#[template(path = "admin_risky_users.html")]
pub struct RiskyUsersPage {
    nav: Nav,
    form: RiskyUsersForm,
    rows: Vec<RiskyRow>,
    next: Option<String>,
    csv: String,
    levels: [&'static str; 4],
    states: [&'static str; 5],
}

/// `GET /admin/risky-users`: members whose risk was ever recorded; guests never (their risk is
/// their home's).
pub async fn risky_users(
    State(state): State<AppState>,
    admin: AdminUser,
    jar: CookieJar,
    Query(form): Query<RiskyUsersForm>,
) -> Result<Response, PageError> {
    let q = form.query(PAGE)?;
    let page = state.store.list_risky_users(&q).await?;
    let next = (page.len() as i64 == PAGE)
        .then(|| page.last())
        .flatten()
        .map(|last| {
            form.link(
                "/admin/risky-users",
                Some(&format!("{}.{}", last.risk.updated_at, last.user.id)),
            )
        });
    let rows = page
        .into_iter()
        .map(|r| RiskyRow {
            id: r.user.id,
            email: r.user.email,
            name: r.user.display_name,
            level: r.risk.level,
            state: r.risk.state,
            detail: r.risk.detail,
            updated: when(r.risk.updated_at),
        })
        .collect();
    let (jar, nav) = frame(&state, jar, &admin, "/admin/risky-users");
    let csv = form.link("/admin/risky-users.csv", None);
    Ok((
        jar,
        html(&RiskyUsersPage {
            nav,
            form,
            rows,
            next,
            csv,
            levels: ["high", "medium", "low", "none"],
            states: [
                "atRisk",
                "confirmedCompromised",
                "remediated",
                "dismissed",
                "confirmedSafe",
            ],
        }),
    )
        .into_response())
}

/// `GET /admin/risky-users.csv`: the same report, every page, as CSV (RFC 4180).
pub async fn risky_users_csv(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(form): Query<RiskyUsersForm>,
) -> Result<Response, PageError> {
    let mut q = form.query(999)?;
    let mut out = String::from(
        "id,userPrincipalName,userDisplayName,riskLevel,riskState,riskDetail,riskLastUpdatedDateTime\r\n",
    );
    let mut rows = 0;
    loop {
        let page = state.store.list_risky_users(&q).await?;
        for r in &page {
            let fields = [
                r.user.id.as_str(),
                &r.user.email,
                &r.user.display_name,
                &r.risk.level,
                &r.risk.state,
                &r.risk.detail,
                &user_risk::iso(r.risk.updated_at),
            ];
            let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
            out.push_str(&line.join(","));
            out.push_str("\r\n");
        }
        rows += page.len();
        match page.last() {
            Some(last) if page.len() as i64 == q.limit && rows < CSV_MAX_ROWS => {
                q.after = Some((last.risk.updated_at, last.user.id.clone()));
            }
            _ => break,
        }
    }
    let mut resp = out.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"risky-users.csv\""),
    );
    web::no_store(h);
    Ok(resp)
}

/// One CSV field (RFC 4180): quoted, quotes doubled. A field a spreadsheet would run as a
/// formula (`=`, `+`, `-`, `@`, tab, CR first) gets a leading `'` (OWASP's CSV injection advice):
/// a display name is anyone's text.
fn csv_field(value: &str) -> String {
    let guarded = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    format!("\"{}\"", guarded.replace('"', "\"\""))
}

// ---- one user ----

/// A line of a user's risk timeline.
pub struct TimelineItem {
    /// When.
    pub at: String,
    /// `riskLevel` after it.
    pub level: String,
    /// `riskState` after it.
    pub state: String,
    /// `riskDetail`.
    pub detail: String,
    /// Who did it.
    pub actor: String,
    /// Why, in words.
    pub reason: Option<String>,
}

/// A detection, for people.
pub struct DetectionRow {
    /// Detection id.
    pub id: String,
    /// User id.
    pub user_id: String,
    /// Who it is about.
    pub user: String,
    /// `riskEventType`.
    pub kind: String,
    /// `riskLevel`.
    pub level: String,
    /// `riskState`.
    pub state: String,
    /// `riskDetail`.
    pub detail: String,
    /// IP address.
    pub ip: String,
    /// When.
    pub at: String,
    /// What it means.
    pub explanation: String,
}

/// A sign-in, for people.
pub struct SignInRow {
    /// When.
    pub at: String,
    /// Who.
    pub user: String,
    /// Which app.
    pub app: String,
    /// From where.
    pub ip: String,
    /// `0` for success.
    pub error_code: i64,
    /// Why it failed.
    pub failure: String,
    /// Sign-in risk.
    pub risk: String,
    /// Conditional Access result.
    pub ca: String,
    /// Correlation id.
    pub correlation_id: String,
}

impl From<store::SignInLog> for SignInRow {
    fn from(r: store::SignInLog) -> Self {
        Self {
            at: when(r.created_at),
            user: r.user_principal_name.unwrap_or_default(),
            app: r.app_id.unwrap_or_default(),
            ip: r.ip_address.unwrap_or_default(),
            error_code: r.error_code,
            failure: r.failure_reason.unwrap_or_default(),
            risk: r.risk_level_during_sign_in.unwrap_or_else(|| "none".into()),
            ca: r.conditional_access_status.unwrap_or_default(),
            correlation_id: r.correlation_id,
        }
    }
}

/// The user page.
#[derive(Template)]
#[template(path = "admin_user.html")]
pub struct UserPage {
    nav: Nav,
    user: User,
    enabled: bool,
    guest_home: Option<String>,
    level: String,
    state: String,
    detail: String,
    timeline: Vec<TimelineItem>,
    detections: Vec<DetectionRow>,
    sign_ins: Vec<SignInRow>,
}

/// `GET /admin/users/{id}`: the user's risk now, its history as a timeline, their detections
/// and recent sign-ins, and the actions an administrator may take here.
pub async fn user(
    State(state): State<AppState>,
    admin: AdminUser,
    jar: CookieJar,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let user = find_user(&state, &id).await?;
    let guest_home = guest_home(&state, &user);
    let (level, risk_state, detail) = if guest_home.is_some() {
        (
            user.home_user_risk.clone().unwrap_or_else(|| "none".into()),
            String::new(),
            String::new(),
        )
    } else {
        let s = user_risk::current(&state, &user.id)
            .await
            .map_err(|e| PageError::internal(e.to_string()))?;
        (
            s.risk_level.as_str().to_owned(),
            s.risk_state.as_str().to_owned(),
            s.risk_detail.as_str().to_owned(),
        )
    };
    let timeline = state
        .store
        .risk_history(&user.id)
        .await?
        .into_iter()
        .map(|h| TimelineItem {
            at: when(h.created_at),
            level: h.level,
            state: h.state,
            detail: h.detail,
            actor: h.actor,
            reason: h.reason,
        })
        .collect();
    let detections = detection_rows(
        &state,
        &DetectionFilter {
            user_id: Some(user.id.clone()),
            limit: PAGE,
            offset: 0,
        },
    )
    .await?;
    let sign_ins = state
        .store
        .list_sign_ins(&store::SignInFilter {
            user_id: Some(user.id.clone()),
            limit: 10,
            ..store::SignInFilter::default()
        })
        .await?
        .into_iter()
        .map(SignInRow::from)
        .collect();
    let (jar, nav) = frame(&state, jar, &admin, "/admin/users");
    Ok((
        jar,
        html(&UserPage {
            nav,
            enabled: user.status == UserStatus::Active,
            user,
            guest_home,
            level,
            state: risk_state,
            detail,
            timeline,
            detections,
            sign_ins,
        }),
    )
        .into_response())
}

async fn find_user(state: &AppState, id: &str) -> Result<User, PageError> {
    state.store.user_by_id(id).await?.ok_or_else(|| PageError {
        status: axum::http::StatusCode::NOT_FOUND,
        ..PageError::bad_request("No such user", "There is no user with this id here.")
    })
}

/// The home tenant holding a guest's risk, by name.
fn guest_home(state: &AppState, user: &User) -> Option<String> {
    (user.user_type == UserType::Guest).then(|| {
        let partner = user.partner_id.clone().unwrap_or_default();
        state
            .partner(&partner)
            .map_or(partner, |p| p.config.display_name.clone())
    })
}

/// An action's form.
#[derive(Debug, Deserialize)]
pub struct ActionForm {
    csrf_token: String,
    action: String,
}

/// What an action did, shown once.
#[derive(Template)]
#[template(path = "admin_done.html")]
pub struct DonePage {
    nav: Nav,
    user: User,
    title: &'static str,
    message: String,
    reminder: Option<&'static str>,
    temporary_password: Option<String>,
}

/// `POST /admin/users/{id}`: one action on the user, with its audit line. The page that
/// follows says what changed; a temporary password is shown on it once and never again.
pub async fn user_action(
    State(state): State<AppState>,
    ctx: Ctx,
    admin: AdminUser,
    jar: CookieJar,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> Result<Response, PageError> {
    check_csrf(&state, &jar, &form.csrf_token)?;
    let user = find_user(&state, &id).await?;
    if let Some(home) = guest_home(&state, &user)
        && form.action != "block"
        && form.action != "unblock"
    {
        return Err(PageError {
            status: axum::http::StatusCode::FORBIDDEN,
            ..PageError::bad_request(
                "This guest's risk is held by their home organization",
                format!(
                    "{} is a guest from {home}. Their user risk, and its remediation (password \
                     reset, dismiss, confirm), belong to {home}: ask {home}'s administrators.",
                    user.email
                ),
            )
        });
    }
    let risk_event = match form.action.as_str() {
        "dismiss" => Some(UserRiskEvent::AdminDismissed),
        "confirm-compromised" => Some(UserRiskEvent::AdminConfirmedCompromised),
        "confirm-safe" => Some(UserRiskEvent::AdminConfirmedSafe),
        _ => None,
    };
    let ids = [user.id.clone()];
    let (title, message, reminder, temporary_password) = match (form.action.as_str(), risk_event) {
        (_, Some(event)) => {
            risk_api::act_on_users(&state, &ctx, &admin.admin, &ids, event.clone()).await?;
            match event {
                UserRiskEvent::AdminDismissed => (
                    "User risk dismissed",
                    format!(
                        "{}'s risk is dismissed; their password is unchanged.",
                        user.email
                    ),
                    Some(
                        "Dismissing does not change the password. If it may be known to \
                         someone else, have the user change it by other means.",
                    ),
                    None,
                ),
                UserRiskEvent::AdminConfirmedSafe => (
                    "User confirmed safe",
                    format!("{}'s risky activity is confirmed as their own.", user.email),
                    None,
                    None,
                ),
                _ => (
                    "User confirmed compromised",
                    format!(
                        "{}'s risk is now high. Policies that block high-risk users block them \
                         until they are remediated.",
                        user.email
                    ),
                    None,
                    None,
                ),
            }
        }
        ("reset-password", None) => {
            let password = users::temporary_password();
            let changes = UserChanges {
                password: Some(NewPassword {
                    password: password.clone(),
                    force_change: true,
                }),
                ..UserChanges::default()
            };
            apply_user_change(&state, &ctx, &admin, &user, &changes).await?;
            (
                "Temporary password set",
                format!(
                    "{} must change this password at their next sign-in. Their sessions and \
                     refresh tokens have ended. Hand it over by a channel you trust.",
                    user.email
                ),
                None,
                Some(password),
            )
        }
        (action @ ("block" | "unblock"), None) => {
            let block = action == "block";
            let changes = UserChanges {
                account_enabled: Some(!block),
                ..UserChanges::default()
            };
            apply_user_change(&state, &ctx, &admin, &user, &changes).await?;
            if block {
                (
                    "Account blocked",
                    format!(
                        "{} can no longer sign in; their sessions and refresh tokens have ended.",
                        user.email
                    ),
                    None,
                    None,
                )
            } else {
                (
                    "Account unblocked",
                    format!("{} can sign in again.", user.email),
                    None,
                    None,
                )
            }
        }
        _ => {
            return Err(PageError::bad_request(
                "Unknown action",
                "This action does not exist. Go back and choose one on the page.",
            ));
        }
    };
    let (jar, nav) = frame(&state, jar, &admin, "/admin/users");
    Ok((
        jar,
        html(&DonePage {
            nav,
            user,
            title,
            message,
            reminder,
            temporary_password,
        }),
    )
        .into_response())
}

async fn apply_user_change(
    state: &AppState,
    ctx: &Ctx,
    admin: &AdminUser,
    user: &User,
    changes: &UserChanges,
) -> Result<(), PageError> {
    let actor = admin.admin.actor();
    let done = users::update(state, &user.id, changes, &actor)
        .await
        .map_err(crate::admin::GraphError::from)?;
    for activity in users_api::update_activities(changes, &done.user) {
        audits::record(state, ctx, &admin.admin, activity).await;
    }
    Ok(())
}

// ---- users ----

/// The users list's filter.
#[derive(Debug, Default, Deserialize)]
pub struct UsersForm {
    #[serde(default)]
    user: String,
    #[serde(default)]
    after: String,
}

/// A user, for the users and guests lists.
pub struct UserRow {
    /// Id.
    pub id: String,
    /// Sign-in name.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Account enabled.
    pub enabled: bool,
    /// Home tenant (guests).
    pub home: String,
    /// Invitation state (guests).
    pub invitation: String,
}

/// The users (or guests) page.
#[derive(Template)]
#[template(path = "admin_users.html")]
pub struct UsersPage {
    nav: Nav,
    guests: bool,
    filter: String,
    rows: Vec<UserRow>,
    next: Option<String>,
    partners: Vec<(String, String)>,
    notice: Option<String>,
}

async fn users_page(
    state: &AppState,
    admin: &AdminUser,
    jar: CookieJar,
    form: &UsersForm,
    guests: bool,
    notice: Option<String>,
) -> Result<Response, PageError> {
    let mut conditions = Vec::new();
    let filter = form.user.trim();
    if !filter.is_empty() {
        conditions.push(if filter.contains('@') {
            UserCondition::EmailStartsWith(filter.to_lowercase())
        } else {
            UserCondition::DisplayNameStartsWith(filter.to_owned())
        });
    }
    conditions.push(UserCondition::TypeIs(if guests {
        UserType::Guest
    } else {
        UserType::Member
    }));
    let page = users::list(
        &state.store,
        &users::ListQuery {
            conditions,
            top: PAGE,
            after: (!form.after.is_empty())
                .then(|| users::decode_skiptoken(&form.after))
                .flatten(),
        },
    )
    .await?;
    let path = if guests {
        "/admin/guests"
    } else {
        "/admin/users"
    };
    let next = page.next.map(|n| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        if !filter.is_empty() {
            q.append_pair("user", filter);
        }
        q.append_pair("after", &n);
        format!("{path}?{}", q.finish())
    });
    let rows = page
        .users
        .into_iter()
        .map(|u| UserRow {
            home: guest_home(state, &u).unwrap_or_default(),
            invitation: u
                .invitation_state
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            enabled: u.status == UserStatus::Active,
            id: u.id,
            email: u.email,
            name: u.display_name,
        })
        .collect();
    let partners = state
        .config
        .partners
        .iter()
        .map(|p| (p.id.clone(), p.display_name.clone()))
        .collect();
    let (jar, nav) = frame(state, jar, admin, path);
    Ok((
        jar,
        html(&UsersPage {
            nav,
            guests,
            filter: filter.to_owned(),
            rows,
            next,
            partners,
            notice,
        }),
    )
        .into_response())
}

/// `GET /admin/users`: the tenant's members.
pub async fn users(
    State(state): State<AppState>,
    admin: AdminUser,
    jar: CookieJar,
    Query(form): Query<UsersForm>,
) -> Result<Response, PageError> {
    users_page(&state, &admin, jar, &form, false, None).await
}

/// `GET /admin/guests`: the guests and their invitations, and the form to invite one.
pub async fn guests(
    State(state): State<AppState>,
    admin: AdminUser,
    jar: CookieJar,
    Query(form): Query<UsersForm>,
) -> Result<Response, PageError> {
    users_page(&state, &admin, jar, &form, true, None).await
}

/// The invitation form.
#[derive(Debug, Deserialize)]
pub struct InviteForm {
    csrf_token: String,
    email: String,
    #[serde(default)]
    display_name: String,
    partner: String,
}

/// `POST /admin/guests`: invite a guest (as `POST /v1.0/invitations`).
pub async fn invite(
    State(state): State<AppState>,
    ctx: Ctx,
    admin: AdminUser,
    jar: CookieJar,
    Form(form): Form<InviteForm>,
) -> Result<Response, PageError> {
    check_csrf(&state, &jar, &form.csrf_token)?;
    let name = form.display_name.trim();
    let (user, _) = crate::guests::invite(
        &state.store,
        &state.config,
        &form.email,
        &form.partner,
        (!name.is_empty()).then_some(name),
        None,
        state.now(),
    )
    .await
    .map_err(|e| PageError::bad_request("The guest could not be invited", e.to_string()))?;
    let activity =
        audits::Activity::on_user(audits::Area::Users, "Invite external user", "Add", &user)
            .detail("partner", form.partner.as_str());
    audits::record(&state, &ctx, &admin.admin, activity).await;
    let notice = format!(
        "{} is invited. They sign in with their {} account; their first sign-in accepts the \
         invitation.",
        user.email,
        guest_home(&state, &user).unwrap_or_default()
    );
    users_page(
        &state,
        &admin,
        jar,
        &UsersForm::default(),
        true,
        Some(notice),
    )
    .await
}

// ---- detections ----

/// A list's page number.
#[derive(Debug, Default, Deserialize)]
pub struct PageForm {
    #[serde(default)]
    page: i64,
}

/// The detections page.
#[derive(Template)]
#[template(path = "admin_detections.html")]
pub struct DetectionsPage {
    nav: Nav,
    rows: Vec<DetectionRow>,
    prev: Option<String>,
    next: Option<String>,
}

/// Detections for people: the API's own reading ([`risk_api::detections_with_users`]).
async fn detection_rows(
    state: &AppState,
    filter: &DetectionFilter,
) -> Result<Vec<DetectionRow>, PageError> {
    let rows = state.store.list_detections(filter).await?;
    Ok(risk_api::detections_with_users(state, &rows)
        .await?
        .into_iter()
        .map(|r| {
            let d = r.detection;
            DetectionRow {
                id: d.id.clone(),
                user_id: d.user_id.clone(),
                user: r.user.map(|u| u.email).unwrap_or_default(),
                kind: d.risk_event_type.clone(),
                level: d.risk_level.clone(),
                state: r.risk_state,
                detail: r.risk_detail,
                ip: d.ip_address.clone().unwrap_or_default(),
                at: when(d.detected_at),
                explanation: d.explanation.clone(),
            }
        })
        .collect())
}

fn pages(path: &str, page: i64, full: bool) -> (Option<String>, Option<String>) {
    let prev = (page > 0).then(|| format!("{path}?page={}", page - 1));
    let next = full.then(|| format!("{path}?page={}", page + 1));
    (prev, next)
}

/// `GET /admin/detections`: newest first.
pub async fn detections(
    State(state): State<AppState>,
    admin: AdminUser,
    jar: CookieJar,
    Query(form): Query<PageForm>,
) -> Result<Response, PageError> {
    let page = form.page.clamp(0, 10_000);
    let rows = detection_rows(
        &state,
        &DetectionFilter {
            user_id: None,
            limit: PAGE,
            offset: page * PAGE,
        },
    )
    .await?;
    let (prev, next) = pages("/admin/detections", page, rows.len() as i64 == PAGE);
    let (jar, nav) = frame(&state, jar, &admin, "/admin/detections");
    Ok((
        jar,
        html(&DetectionsPage {
            nav,
            rows,
            prev,
            next,
        }),
    )
        .into_response())
}

// ---- sign-in logs ----

/// The sign-in log's filters: simple fields, or the API's `$filter` as typed.
#[derive(Debug, Default, Deserialize)]
pub struct SignInsForm {
    #[serde(default)]
    user: String,
    #[serde(default)]
    app: String,
    #[serde(default)]
    result: String,
    #[serde(default)]
    risk: String,
    #[serde(default)]
    filter: String,
    #[serde(default)]
    page: i64,
}

impl SignInsForm {
    /// The API's `$filter` these fields mean (the simple fields and the typed filter, joined).
    fn api_filter(&self) -> String {
        let quote = |v: &str| v.trim().replace('\'', "''");
        let mut clauses = Vec::new();
        if !self.user.trim().is_empty() {
            clauses.push(format!(
                "userPrincipalName eq '{}'",
                quote(&self.user.to_lowercase())
            ));
        }
        if !self.app.trim().is_empty() {
            clauses.push(format!("appId eq '{}'", quote(&self.app)));
        }
        match self.result.as_str() {
            "success" => clauses.push("status/errorCode eq 0".into()),
            "" | "any" => {}
            code => clauses.push(format!("status/errorCode eq {}", code.trim())),
        }
        if !self.risk.is_empty() {
            clauses.push(format!("riskLevelDuringSignIn eq '{}'", quote(&self.risk)));
        }
        if !self.filter.trim().is_empty() {
            clauses.push(self.filter.trim().to_owned());
        }
        clauses.join(" and ")
    }

    fn link(&self, page: i64) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("user", &self.user),
            ("app", &self.app),
            ("result", &self.result),
            ("risk", &self.risk),
            ("filter", &self.filter),
        ] {
            if !v.is_empty() {
                q.append_pair(k, v);
            }
        }
        q.append_pair("page", &page.to_string());
        format!("/admin/sign-ins?{}", q.finish())
    }
}

/// The sign-in logs page.
#[derive(Template)]
#[template(path = "admin_sign_ins.html")]
pub struct SignInsPage {
    nav: Nav,
    form: SignInsForm,
    error: Option<String>,
    rows: Vec<SignInRow>,
    prev: Option<String>,
    next: Option<String>,
}

/// `GET /admin/sign-ins`: the sign-in log, filtered as `GET /v1.0/auditLogs/signIns` filters.
pub async fn sign_in_logs(
    State(state): State<AppState>,
    admin: AdminUser,
    jar: CookieJar,
    Query(form): Query<SignInsForm>,
) -> Result<Response, PageError> {
    let page = form.page.clamp(0, 10_000);
    let filter = form.api_filter();
    let query = {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        if !filter.is_empty() {
            q.append_pair("$filter", &filter);
        }
        q.append_pair("$top", &PAGE.to_string());
        q.finish()
    };
    let (rows, error) = match sign_ins::parse_query(&query) {
        Ok(mut f) => {
            f.offset = page * PAGE;
            let rows: Vec<SignInRow> = state
                .store
                .list_sign_ins(&f)
                .await?
                .into_iter()
                .map(SignInRow::from)
                .collect();
            (rows, None)
        }
        Err(e) => (Vec::new(), Some(e)),
    };
    let prev = (page > 0).then(|| form.link(page - 1));
    let next = (rows.len() as i64 == PAGE).then(|| form.link(page + 1));
    let (jar, nav) = frame(&state, jar, &admin, "/admin/sign-ins");
    Ok((
        jar,
        html(&SignInsPage {
            nav,
            form,
            error,
            rows,
            prev,
            next,
        }),
    )
        .into_response())
}

// ---- Conditional Access ----

/// A policy, for people.
pub struct PolicyRow {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// `enabled`, `enabledForReportingButNotEnforced` or `disabled`.
    pub state: String,
    /// What it grants or blocks, in Graph's words.
    pub controls: String,
    /// The file it is defined in (its state is switched here; the rest is the file's).
    pub file: Option<String>,
    /// Whether it can be switched here (the built-in ID Protection policies are configured in
    /// their own settings).
    pub switchable: bool,
}

/// The Conditional Access page.
#[derive(Template)]
#[template(path = "admin_policies.html")]
pub struct PoliciesPage {
    nav: Nav,
    rows: Vec<PolicyRow>,
    notice: Option<String>,
}

async fn policies_page(
    state: &AppState,
    admin: &AdminUser,
    jar: CookieJar,
    notice: Option<String>,
) -> Result<Response, PageError> {
    let policies = state.protection.policies();
    let rows = policies
        .set
        .policies()
        .iter()
        .map(|p| {
            let json = serde_json::to_value(p).unwrap_or_default();
            PolicyRow {
                id: p.id.clone(),
                name: p.display_name.clone(),
                state: json["state"].as_str().unwrap_or_default().to_owned(),
                controls: json["grantControls"]["builtInControls"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default(),
                file: match policies.origin(&p.id) {
                    Some(crate::protection::Origin::File(f)) => Some(f.clone()),
                    _ => None,
                },
                switchable: matches!(
                    policies.origin(&p.id),
                    Some(crate::protection::Origin::Api | crate::protection::Origin::File(_))
                ),
            }
        })
        .collect();
    let (jar, nav) = frame(state, jar, admin, "/admin/policies");
    Ok((jar, html(&PoliciesPage { nav, rows, notice })).into_response())
}

/// `GET /admin/policies`.
pub async fn policies(
    State(state): State<AppState>,
    admin: AdminUser,
    jar: CookieJar,
) -> Result<Response, PageError> {
    policies_page(&state, &admin, jar, None).await
}

/// The switch's form.
#[derive(Debug, Deserialize)]
pub struct PolicyStateForm {
    csrf_token: String,
    state: String,
}

/// `POST /admin/policies/{id}`: switch a policy on, to report-only, or off (as the API's
/// `PATCH` with `{"state": …}`; for a policy from a file, the switch is kept in the database).
pub async fn set_policy_state(
    State(state): State<AppState>,
    ctx: Ctx,
    admin: AdminUser,
    jar: CookieJar,
    Path(id): Path<String>,
    Form(form): Form<PolicyStateForm>,
) -> Result<Response, PageError> {
    check_csrf(&state, &jar, &form.csrf_token)?;
    if !["enabled", "enabledForReportingButNotEnforced", "disabled"].contains(&form.state.as_str())
    {
        return Err(PageError::bad_request(
            "Unknown state",
            "A policy is on, report-only or off.",
        ));
    }
    crate::admin::policies::patch(
        &state,
        &ctx,
        &admin.admin,
        &id,
        &serde_json::json!({ "state": form.state }),
    )
    .await?;
    let notice = format!("Policy {id} is now {}.", form.state);
    policies_page(&state, &admin, jar, Some(notice)).await
}

// ---- audit log ----

/// An audit line, for people.
pub struct AuditRow {
    /// When.
    pub at: String,
    /// What.
    pub activity: String,
    /// Area.
    pub category: String,
    /// Who (user or app).
    pub by: String,
    /// On what.
    pub target: String,
    /// Details.
    pub details: String,
}

/// The audit log page.
#[derive(Template)]
#[template(path = "admin_audit.html")]
pub struct AuditPage {
    nav: Nav,
    rows: Vec<AuditRow>,
    prev: Option<String>,
    next: Option<String>,
}

/// `GET /admin/audit`: the directory audit log, newest first.
pub async fn audit(
    State(state): State<AppState>,
    admin: AdminUser,
    jar: CookieJar,
    Query(form): Query<PageForm>,
) -> Result<Response, PageError> {
    let page = form.page.clamp(0, 10_000);
    let rows = state
        .store
        .list_audits(&AuditFilter {
            limit: PAGE,
            offset: page * PAGE,
            ..AuditFilter::default()
        })
        .await?;
    let full = rows.len() as i64 == PAGE;
    let rows = rows
        .into_iter()
        .map(|a| {
            let by: serde_json::Value = serde_json::from_str(&a.initiated_by).unwrap_or_default();
            let targets: serde_json::Value =
                serde_json::from_str(&a.target_resources).unwrap_or_default();
            let details: serde_json::Value =
                serde_json::from_str(&a.additional_details).unwrap_or_default();
            AuditRow {
                at: when(a.activity_date_time),
                activity: a.activity_display_name,
                category: a.category,
                by: by["user"]["userPrincipalName"]
                    .as_str()
                    .or_else(|| by["app"]["displayName"].as_str())
                    .unwrap_or_default()
                    .to_owned(),
                target: targets[0]["userPrincipalName"]
                    .as_str()
                    .or_else(|| targets[0]["displayName"].as_str())
                    .unwrap_or_default()
                    .to_owned(),
                details: details
                    .as_array()
                    .map(|d| {
                        d.iter()
                            .map(|kv| {
                                format!(
                                    "{}: {}",
                                    kv["key"].as_str().unwrap_or_default(),
                                    kv["value"].as_str().unwrap_or_default()
                                )
                            })
                            .collect::<Vec<_>>()
                            .join("; ")
                    })
                    .unwrap_or_default(),
            }
        })
        .collect();
    let (prev, next) = pages("/admin/audit", page, full);
    let (jar, nav) = frame(&state, jar, &admin, "/admin/audit");
    Ok((
        jar,
        html(&AuditPage {
            nav,
            rows,
            prev,
            next,
        }),
    )
        .into_response())
}

/// A stream this tenant sends, on the shared signals page.
struct SentRow {
    id: String,
    app: String,
    status: String,
    reason: Option<String>,
    delivery: String,
    events: String,
    pending: i64,
    delivered: i64,
    failed: i64,
    last_error: String,
    recent: Vec<SetRow>,
}

/// One SET of a stream.
struct SetRow {
    at: String,
    event: String,
    subject: String,
    state: String,
    attempts: i64,
}

/// A stream this tenant receives.
struct ReceivedRow {
    partner_id: String,
    partner: String,
    delivery: &'static str,
    stream: String,
    events: i64,
    last_received: String,
}

/// The shared signals page.
#[derive(Template)]
#[template(path = "admin_shared_signals.html")]
pub struct SharedSignalsPage {
    nav: Nav,
    sent: Vec<SentRow>,
    received: Vec<ReceivedRow>,
}

/// An event type's short name: the last part of its URI (`risk-level-change`).
fn event_name(uri: &str) -> &str {
    uri.rsplit(['/', ':']).next().unwrap_or(uri)
}

/// SETs of each stream listed on the page.
const RECENT_SETS: i64 = 10;

/// `GET /admin/shared-signals`: the streams this tenant transmits (status, delivery, where
/// their SETs stand, the newest ones) and those it receives from its partners.
pub async fn shared_signals(
    State(state): State<AppState>,
    admin: AdminUser,
    jar: CookieJar,
) -> Result<Response, PageError> {
    let mut sent = Vec::new();
    for o in signin::ssf::overview(&state.store).await? {
        let s = o.stream;
        let app = match state.app(&s.client_id).await? {
            Some(a) => format!("{} ({})", a.config.name, s.client_id),
            None => s.client_id.clone(),
        };
        let recent = state
            .store
            .ssf_outbox(&s.id, RECENT_SETS)
            .await?
            .into_iter()
            .map(|e| SetRow {
                at: when(e.created_at),
                event: event_name(&e.event_type).to_owned(),
                subject: e.subject_key,
                state: e.state,
                attempts: e.attempts,
            })
            .collect();
        sent.push(SentRow {
            app,
            status: s.status,
            reason: s.reason,
            delivery: match s.endpoint_url {
                Some(url) if s.delivery_method == protocol::set::DELIVERY_PUSH => {
                    format!("push to {url}")
                }
                _ => "poll".to_owned(),
            },
            events: s
                .events_delivered
                .split(' ')
                .filter(|e| !e.is_empty())
                .map(event_name)
                .collect::<Vec<_>>()
                .join(", "),
            pending: o.counts.pending,
            delivered: o.counts.delivered,
            failed: o.counts.failed,
            last_error: o.last_error.unwrap_or_default(),
            recent,
            id: s.id,
        });
    }
    let received = signin::guest_signals::receiving_overview(&state)
        .await?
        .into_iter()
        .map(|o| ReceivedRow {
            partner_id: o.partner_id,
            partner: o.display_name,
            delivery: match o.delivery {
                signin::config::SignalsDelivery::Push => "pushed here",
                signin::config::SignalsDelivery::Poll => "polled",
            },
            stream: match o.stream {
                Some(s) => match s.stream_id {
                    Some(id) => format!("{id} (set up {})", when(s.updated_at)),
                    None => "not set up yet".to_owned(),
                },
                None => "not set up yet".to_owned(),
            },
            events: o.events,
            last_received: o.last_received_at.map(when).unwrap_or_default(),
        })
        .collect();
    let (jar, nav) = frame(&state, jar, &admin, "/admin/shared-signals");
    Ok((
        jar,
        html(&SharedSignalsPage {
            nav,
            sent,
            received,
        }),
    )
        .into_response())
}

/// `POST /admin/signout`: CSRF-checked, then the portal's sign-out.
pub async fn sign_out(
    State(state): State<AppState>,
    jar: CookieJar,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, PageError> {
    check_csrf(
        &state,
        &jar,
        form.get("csrf_token").map_or("", String::as_str),
    )?;
    Ok(crate::portal::sign_out(State(state), jar).await)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn graph_words_read_as_words() {
        assert_eq!(words("atRisk"), "At risk");
        assert_eq!(words("leakedCredentials"), "Leaked credentials");
        assert_eq!(words("confirmedCompromised"), "Confirmed compromised");
        assert_eq!(words("dismissed"), "Dismissed");
        assert_eq!(words("none"), "None");
    }

    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        assert_eq!(csv_field("bob@contoso.test"), "\"bob@contoso.test\"");
        assert_eq!(csv_field("Bob \"B\" Smith"), "\"Bob \"\"B\"\" Smith\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("-1"), "\"'-1\"");
        assert_eq!(csv_field("a,b\r\nc"), "\"a,b\r\nc\"");
    }

    #[test]
    fn the_user_filter_is_a_prefix_of_the_name_or_address() {
        let q = RiskyUsersForm {
            user: "Bob".into(),
            level: "high".into(),
            ..RiskyUsersForm::default()
        }
        .query(10)
        .unwrap();
        assert_eq!(
            q.conditions,
            vec![
                RiskyUserCondition::User(UserCondition::DisplayNameStartsWith("Bob".into())),
                RiskyUserCondition::LevelIs("high".into()),
            ]
        );
        let q = RiskyUsersForm {
            user: "BOB@".into(),
            order: "oldest".into(),
            ..RiskyUsersForm::default()
        }
        .query(10)
        .unwrap();
        assert!(q.oldest_first);
        assert_eq!(
            q.conditions,
            vec![RiskyUserCondition::User(UserCondition::EmailStartsWith(
                "bob@".into()
            ))]
        );
        for bad in [
            RiskyUsersForm {
                level: "extreme".into(),
                ..RiskyUsersForm::default()
            },
            RiskyUsersForm {
                state: "fine".into(),
                ..RiskyUsersForm::default()
            },
            RiskyUsersForm {
                order: "random".into(),
                ..RiskyUsersForm::default()
            },
            RiskyUsersForm {
                after: "nope".into(),
                ..RiskyUsersForm::default()
            },
        ] {
            assert!(bad.query(10).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sign_in_fields_make_the_api_filter() {
        let f = SignInsForm {
            user: "Bob@Contoso.test".into(),
            result: "53003".into(),
            filter: "riskLevelAggregated eq 'high'".into(),
            ..SignInsForm::default()
        };
        assert_eq!(
            f.api_filter(),
            "userPrincipalName eq 'bob@contoso.test' and status/errorCode eq 53003 and riskLevelAggregated eq 'high'"
        );
        let q = SignInsForm {
            user: "o'neil@x.test".into(),
            ..SignInsForm::default()
        };
        assert_eq!(q.api_filter(), "userPrincipalName eq 'o''neil@x.test'");
    }
}
