//! The sign-in pages: email first (home realm discovery sends a partner's user home), then
//! password, then (if the account requires it) a password change, then consent; the gate's
//! pages ([`gate`]: block, MFA and password-change steps), MFA ([`mfa`]), self-service
//! password reset ([`sspr`]) and refusals ([`refusal`]). Every attempt writes a sign-in log
//! row.

pub mod gate;
pub mod mfa;
pub mod refusal;
pub mod sspr;

use crate::federated;
use crate::oidc::finish;
use crate::pages;
use crate::passwords::check_new_password;
use crate::session;
use crate::signin_log::{self, Entry, Outcome};
use crate::state::AppState;
use crate::web::Form;
use crate::web::Query;
use crate::web::{Ctx, PageError, check_csrf, csrf_token, html, html_to};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use protocol::{ErrorCode, OAuthError};
use serde::Deserialize;
use signin::codes;
use signin::gate::AlreadyRead;
use signin::plausible_email;
use signin::sign_in::{self as progress, SignIn};
use store::{UserStatus, UserWithRisk};

/// `?interaction=`
#[derive(Debug, Deserialize)]
pub struct InteractionQuery {
    #[serde(default)]
    interaction: String,
}

/// `GET /login`: the email page (for a sign-in begun by an earlier authorization request).
pub async fn email_page(
    State(state): State<AppState>,
    ctx: Ctx,
    jar: CookieJar,
    Query(q): Query<InteractionQuery>,
) -> Result<Response, PageError> {
    let sign_in = progress::load(&state, &q.interaction).await?;
    Ok(first_page(&state, &ctx, jar, &q.interaction, sign_in).await)
}

/// The first sign-in page of `sign_in` (kept under `interaction`): the email page, or what
/// follows the email when the app already knows it. The authorization endpoint answers with it
/// at once, as Entra and Keycloak do, rather than redirecting to `GET /login`: a round trip
/// less, and the sealed sign-in stays out of the address bar and the history.
pub async fn first_page(
    state: &AppState,
    ctx: &Ctx,
    jar: CookieJar,
    interaction: &str,
    sign_in: SignIn,
) -> Response {
    let (jar, csrf) = csrf_token(state, jar);
    let hint = sign_in
        .request
        .login_hint
        .as_deref()
        .map(|h| h.trim().to_lowercase())
        .unwrap_or_default();
    // An app (or a resource tenant federating here) that already knows the address skips the
    // email page, as Entra does with login_hint.
    if plausible_email(&hint) {
        let next = after_email(state, ctx, interaction, sign_in, &csrf, &hint).await;
        return (jar, next).into_response();
    }
    let page = render_email(state, &sign_in, interaction, &csrf, &hint, None).await;
    (jar, page).into_response()
}

/// The live session a consent form or page belongs to.
async fn consenting(state: &AppState, jar: &CookieJar) -> Result<session::Current, PageError> {
    session::current(state, jar)
        .await?
        .ok_or_else(PageError::expired_request)
}

/// With the email known: home realm discovery sends a partner's user to their home tenant;
/// everyone else gets the password page (the same page whether or not the account exists, so
/// addresses cannot be enumerated).
async fn after_email(
    state: &AppState,
    ctx: &Ctx,
    interaction: &str,
    sign_in: SignIn,
    csrf: &str,
    email: &str,
) -> Response {
    if let Some(partner) = state.partner_for_email(email) {
        return federated::start(state, ctx, interaction, sign_in, partner, email, csrf).await;
    }
    html_to(
        &pages::LoginPassword {
            tenant_name: &state.config.display_name,
            interaction,
            csrf_token: csrf,
            email,
            error: None,
        },
        &sign_in.request.redirect_uri,
    )
}

async fn render_email(
    state: &AppState,
    sign_in: &SignIn,
    interaction: &str,
    csrf: &str,
    email: &str,
    error: Option<&str>,
) -> Response {
    let app_name = refusal::app_name(state, &sign_in.request.client_id).await;
    html(&pages::LoginEmail {
        tenant_name: &state.config.display_name,
        app_name: &app_name,
        interaction,
        csrf_token: csrf,
        email,
        error,
    })
}

/// Every form of the sign-in pages starts the same way: the CSRF check, then the sign-in it
/// belongs to.
async fn submitted_sign_in(
    state: &AppState,
    jar: &CookieJar,
    csrf_token: &str,
    interaction: &str,
) -> Result<SignIn, PageError> {
    check_csrf(state, jar, csrf_token)?;
    Ok(progress::load(state, interaction).await?)
}

/// The email form.
#[derive(Debug, Deserialize)]
pub struct EmailForm {
    #[serde(default)]
    interaction: String,
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    email: String,
}

/// `POST /login`: remember the email and ask for the password.
pub async fn email_submit(
    State(state): State<AppState>,
    ctx: Ctx,
    jar: CookieJar,
    Form(f): Form<EmailForm>,
) -> Result<Response, PageError> {
    let sign_in = submitted_sign_in(&state, &jar, &f.csrf_token, &f.interaction).await?;
    let email = f.email.trim().to_lowercase();
    if !plausible_email(&email) {
        return Ok(render_email(
            &state,
            &sign_in,
            &f.interaction,
            &f.csrf_token,
            &email,
            Some("Enter a valid email address."),
        )
        .await);
    }
    Ok(after_email(&state, &ctx, &f.interaction, sign_in, &f.csrf_token, &email).await)
}

/// The password form.
#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    interaction: String,
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

/// Log an attempt at the password pages (members of this tenant).
async fn log_member(
    state: &AppState,
    ctx: &Ctx,
    sign_in: &SignIn,
    upn: &str,
    user_id: Option<&str>,
    outcome: Outcome,
) {
    let entry = Entry {
        correlation_id: &sign_in.correlation_id,
        app_id: Some(&sign_in.request.client_id),
        upn: Some(upn),
        user_id,
        ..Entry::default()
    };
    signin_log::write(state, ctx, entry, outcome).await;
}

const BAD_CREDENTIALS: &str = "Your email or password is incorrect.";

/// The sign-in log's reason for a locked account (Entra's wording for 50053).
const LOCKED_REASON: &str = "Account is locked because the user tried to sign in too many times \
                             with an incorrect user ID or password.";

/// What a person whose sign-ins are locked is told: that it is temporary, and for how long.
fn locked_message(secs: i64) -> String {
    let minutes = (secs + 59) / 60;
    format!(
        "Your account is temporarily locked to prevent unauthorized use: there were too many \
         sign-in attempts with a wrong password. Try again in {minutes} minute{}. If this \
         was not you, reset your password or contact your administrator.",
        if minutes == 1 { "" } else { "s" }
    )
}

/// `POST /login/password`: verify (unless smart lockout holds the account's source), then
/// start a session and continue the authorization.
pub async fn password_submit(
    State(state): State<AppState>,
    ctx: Ctx,
    jar: CookieJar,
    Form(f): Form<PasswordForm>,
) -> Response {
    let sign_in = match submitted_sign_in(&state, &jar, &f.csrf_token, &f.interaction).await {
        Ok(p) => p,
        Err(e) => return e.render(&state, &ctx),
    };
    let email = f.email.trim().to_lowercase();
    let target = sign_in.request.redirect_uri.clone();
    let again = |msg: &str| {
        html_to(
            &pages::LoginPassword {
                tenant_name: &state.config.display_name,
                interaction: &f.interaction,
                csrf_token: &f.csrf_token,
                email: &email,
                error: Some(msg),
            },
            &target,
        )
    };
    if f.password.is_empty()
        || f.password.len() > crate::passwords::MAX_PASSWORD_LEN
        || !plausible_email(&email)
    {
        return again(BAD_CREDENTIALS);
    }
    // The user's risk and sign-ins version come with them: the lockout, the checks after the
    // password and the gate use these rather than read their own.
    let read = match state.store.user_with_risk_by_email(&email).await {
        Ok(r) => r,
        Err(e) => return PageError::from(e).render(&state, &ctx),
    };
    let user = read.as_ref().map(|r| &r.user);
    if let Some(guest) = user.filter(|u| u.user_type == store::UserType::Guest) {
        // A guest's credentials and risk live only at their home tenant: a password here,
        // whatever it is, would sign them in around the home's risk.
        let home = guest
            .partner_id
            .as_deref()
            .and_then(|p| state.partner(p))
            .map_or_else(
                || "your home organization".to_owned(),
                |p| p.config.display_name.clone(),
            );
        log_member(
            &state,
            &ctx,
            &sign_in,
            &email,
            Some(&guest.id),
            Outcome::Failure(
                codes::GUEST_HAS_NO_LOCAL_PASSWORD,
                "Guests sign in at their home tenant; this tenant holds no password for them.",
            ),
        )
        .await;
        return again(&format!(
            "This is a guest account: sign in with your {home} account. {} does not keep a \
             password for it.",
            state.config.display_name
        ));
    }
    let attempt = match signin::lockout::attempt(&state, &email, read.as_ref(), ctx.ip).await {
        Ok(a) => a,
        Err(e) => return PageError::from(e).render(&state, &ctx),
    };
    let now = state.now();
    if let Some(until) = attempt.locked_until(now) {
        // Locked: the password is not even checked, so guessing costs nothing here.
        log_member(
            &state,
            &ctx,
            &sign_in,
            &email,
            user.map(|u| u.id.as_str()),
            Outcome::Failure(codes::LOCKED_OR_MALICIOUS_IP, LOCKED_REASON),
        )
        .await;
        return again(&locked_message(until - now));
    }
    let ok = state
        .passwords
        .verify(&f.password, user.and_then(|u| u.password_hash.as_deref()))
        .await;
    if !ok {
        match signin::lockout::failed(&state, &email, user, &attempt, ctx.ip).await {
            Ok(Some(until)) => {
                log_member(
                    &state,
                    &ctx,
                    &sign_in,
                    &email,
                    user.map(|u| u.id.as_str()),
                    Outcome::Failure(codes::LOCKED_OR_MALICIOUS_IP, LOCKED_REASON),
                )
                .await;
                return again(&locked_message(until - state.now()));
            }
            Ok(None) => {}
            Err(e) => return PageError::from(e).render(&state, &ctx),
        }
    } else if let Err(e) = signin::lockout::succeeded(&state, &email, &attempt).await {
        return PageError::from(e).render(&state, &ctx);
    }
    let read = match (read, ok) {
        (Some(r), true) if r.user.status == UserStatus::Active => r,
        (Some(UserWithRisk { user: u, .. }), true) => {
            log_member(
                &state,
                &ctx,
                &sign_in,
                &email,
                Some(&u.id),
                Outcome::Failure(codes::ACCOUNT_DISABLED, "User account is disabled."),
            )
            .await;
            return again("Your account is disabled. Contact your administrator.");
        }
        (Some(UserWithRisk { user: u, .. }), false) => {
            log_member(
                &state,
                &ctx,
                &sign_in,
                &email,
                Some(&u.id),
                Outcome::Failure(
                    codes::INVALID_USERNAME_OR_PASSWORD,
                    "Invalid username or password.",
                ),
            )
            .await;
            return again(BAD_CREDENTIALS);
        }
        (None, _) => {
            log_member(
                &state,
                &ctx,
                &sign_in,
                &email,
                None,
                Outcome::Failure(
                    codes::USER_NOT_FOUND,
                    "The user account does not exist in this directory.",
                ),
            )
            .await;
            return again(BAD_CREDENTIALS);
        }
    };
    let user = &read.user;
    let sign_in = sign_in.authenticated(&user.id, vec!["pwd".into()]);
    if user.must_change_password {
        return match progress::replace(&state, &f.interaction, &sign_in).await {
            Ok(id) => html_to(
                &pages::ChangePassword {
                    tenant_name: &state.config.display_name,
                    interaction: &id,
                    csrf_token: &f.csrf_token,
                    email: &user.email,
                    error: None,
                },
                &sign_in.request.redirect_uri,
            ),
            Err(e) => PageError::from(e).render(&state, &ctx),
        };
    }
    // Leaked-credential and password-spray checks see the password and the IP only here; the
    // risk they leave is the one the gate judges.
    let status =
        match crate::user_risk::after_password_verified(&state, &read, &f.password, Some(ctx.ip))
            .await
        {
            Ok(status) => status,
            Err(e) => return PageError::from(e).render(&state, &ctx),
        };
    let already = AlreadyRead::UserRisk {
        status,
        sign_ins_version: read.sign_ins_version,
    };
    gate::judge(state, ctx, jar, &f.interaction, sign_in, read.user, already).await
}

/// The change-password form.
#[derive(Debug, Deserialize)]
pub struct ChangeForm {
    #[serde(default)]
    interaction: String,
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    confirm_password: String,
}

/// `POST /login/change-password`: a user whose password was just verified sets a new one.
pub async fn change_submit(
    State(state): State<AppState>,
    ctx: Ctx,
    jar: CookieJar,
    Form(f): Form<ChangeForm>,
) -> Response {
    let sign_in = match submitted_sign_in(&state, &jar, &f.csrf_token, &f.interaction).await {
        Ok(p) => p,
        Err(e) => return e.render(&state, &ctx),
    };
    let Some(user_id) = sign_in.user_id.clone() else {
        return PageError::expired_request().render(&state, &ctx);
    };
    // Only a sign-in the gate sent to this page (MFA done), in the browser it holds it for,
    // may change the password here; one still waiting for MFA may not skip it.
    if sign_in.held && (!sign_in.mfa_done || !gate::same_browser(&state, &jar, &sign_in)) {
        return PageError::expired_request().render(&state, &ctx);
    }
    let user = match state.store.user_by_id(&user_id).await {
        Ok(Some(u)) if u.status == UserStatus::Active => u,
        Ok(_) => return PageError::expired_request().render(&state, &ctx),
        Err(e) => return PageError::from(e).render(&state, &ctx),
    };
    let target = sign_in.request.redirect_uri.clone();
    let again = |msg: &str| {
        html_to(
            &pages::ChangePassword {
                tenant_name: &state.config.display_name,
                interaction: &f.interaction,
                csrf_token: &f.csrf_token,
                email: &user.email,
                error: Some(msg),
            },
            &target,
        )
    };
    if f.new_password != f.confirm_password {
        return again("The passwords do not match.");
    }
    if let Err(msg) = check_new_password(&f.new_password) {
        return again(msg);
    }
    match new_password_problem(&state, &user, &f.new_password).await {
        Ok(None) => {}
        Ok(Some(msg)) => return again(msg),
        Err(e) => return e.render(&state, &ctx),
    }
    let hash = match state.passwords.hash(&f.new_password).await {
        Ok(h) => h,
        Err(e) => return PageError::internal(e.to_string()).render(&state, &ctx),
    };
    // CAEP credential-change for the partners the user is a guest at, with the change.
    let now = state.now();
    let changed = signin::ssf::user_signal(
        &state.config.issuer,
        &user.id,
        &protocol::set::Event::credential_change("password", "update", now),
        &uuid::Uuid::new_v4().simple().to_string(),
        now,
    );
    if let Err(e) = state
        .store
        .set_password_signalled(&user.id, &hash, false, now, &[changed])
        .await
    {
        return PageError::from(e).render(&state, &ctx);
    }
    if let Err(e) = crate::user_risk::after_password_set(&state, &user.id, &f.new_password).await {
        tracing::warn!(correlation_id = %ctx.correlation_id, error = %e, "leak fingerprint not refreshed");
    }
    // The password was changed in this sign-in: either because the account required it
    // (a temporary password, already remediated when the admin set it) or because the user-risk
    // policy did, after MFA: a secure password change, which remediates the user's risk.
    let mut sign_in = sign_in;
    if sign_in.held {
        sign_in.password_changed = true;
        let remediated = crate::user_risk::remediate(
            &state,
            &user.id,
            risk::UserRiskEvent::SecuredPasswordChange,
            risk::Actor::User(user.id.clone()),
        )
        .await;
        if let Err(e) = remediated {
            return PageError::from(e).render(&state, &ctx);
        }
    }
    gate::judge(
        state,
        ctx,
        jar,
        &f.interaction,
        sign_in,
        user,
        AlreadyRead::Nothing,
    )
    .await
}

/// Why a user's own new password is no secure one, in words for the page: the current password
/// again, under the password policy, or in the leaked-credentials corpus. `None`: it will do.
pub(crate) async fn new_password_problem(
    state: &AppState,
    user: &store::User,
    password: &str,
) -> Result<Option<&'static str>, PageError> {
    if state
        .passwords
        .verify(password, user.password_hash.as_deref())
        .await
    {
        return Ok(Some(
            "Choose a new password: it must differ from your current one.",
        ));
    }
    match crate::users::check_password(&state.store, &user.email, password).await {
        Ok(()) => Ok(None),
        Err(crate::users::UserError::LeakedPassword) => Ok(Some(
            "This password appears in a list of leaked passwords. Choose another one.",
        )),
        Err(crate::users::UserError::WeakPassword(msg)) => Ok(Some(msg)),
        Err(crate::users::UserError::Store(e)) => Err(e.into()),
        Err(e) => Err(PageError::internal(e.to_string())),
    }
}

/// `GET /consent`.
pub async fn consent_page(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(q): Query<InteractionQuery>,
) -> Result<Response, PageError> {
    let sign_in = progress::load(&state, &q.interaction).await?;
    let current = consenting(&state, &jar).await?;
    let app = state
        .app(&sign_in.request.client_id)
        .await?
        .ok_or_else(PageError::expired_request)?;
    let (jar, csrf) = csrf_token(&state, jar);
    let scopes = sign_in
        .request
        .consent_scopes()
        .iter()
        .filter_map(pages::describe_scope)
        .collect();
    let page = pages::Consent {
        tenant_name: &state.config.display_name,
        app_name: &app.config.name,
        scopes,
        email: &current.user.email,
        interaction: &q.interaction,
        csrf_token: &csrf,
    };
    Ok((jar, html_to(&page, &sign_in.request.redirect_uri)).into_response())
}

/// The consent form.
#[derive(Debug, Deserialize)]
pub struct ConsentForm {
    #[serde(default)]
    interaction: String,
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    decision: String,
}

/// `POST /consent`.
pub async fn consent_submit(
    State(state): State<AppState>,
    ctx: Ctx,
    jar: CookieJar,
    Form(f): Form<ConsentForm>,
) -> Result<Response, PageError> {
    let sign_in = submitted_sign_in(&state, &jar, &f.csrf_token, &f.interaction).await?;
    let current = consenting(&state, &jar).await?;
    progress::forget(&state, &f.interaction).await?;
    if f.decision != "allow" {
        let e = OAuthError::new(
            ErrorCode::AccessDenied,
            "The user declined to grant access.",
        );
        return Ok(finish::error_to_client(&state, &ctx, &sign_in.request, e));
    }
    let mut request = sign_in.request;
    state
        .store
        .grant_consent(
            &current.user.id,
            &request.client_id,
            &request.consent_scopes().to_string(),
            state.now(),
        )
        .await?;
    // Consent is now recorded; don't ask again within this request.
    request.prompt.consent = false;
    Ok(finish::continue_with_session(state, ctx, jar, request, current).await)
}

/// `GET /` — nothing to see without an app; say so plainly.
pub async fn root(State(state): State<AppState>) -> Response {
    html(&pages::SignedOut {
        tenant_name: &state.config.display_name,
        title: &state.config.display_name,
        message: "This is an OpenID Connect provider. Sign in from an application that uses it.",
    })
}
