//! Self-service password reset (`/password/reset`), where remediation of a member's user risk
//! happens without an administrator: the user proves possession of a method they registered
//! here (a code of their authenticator app, a code emailed to their registered address — sent
//! when they ask for it with `POST /password/reset/email` — or a recovery code), chooses a new
//! password, and their risk is
//! remediated (`userPerformedSecuredPasswordReset`). Their sessions and grants are revoked:
//! whoever held the old password loses what it got them.
//!
//! This is the page a resource tenant's block page links a guest to (the seed: remediation of
//! a B2B user's risk happens in their home directory).
//!
//! When the tenant turned it off (`[sspr] enabled = false`), or the account has no registered
//! method, the page says to contact the administrator and shows what to hand over: the account
//! as typed, the tenant, the time and the correlation id. An unknown address gets exactly the
//! answer of an account without a method, after the same work, so the page tells no one which
//! accounts exist. Attempts (the address step and each code) are counted per account and per
//! client IP in the database (`[sspr]` limits), so the limit holds across replicas and
//! restarts; over it, a 429 with `Retry-After`, whoever the account is.

use crate::pages;
use crate::passwords::check_new_password;
use crate::secrets::random_token;
use crate::state::AppState;
use crate::user_risk;
use crate::web::Form;
use crate::web::{Ctx, PageError, check_csrf, csrf_token, html};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use risk::{Actor, UserRiskEvent};
use serde::{Deserialize, Serialize};
use signin::email_otp::{self, Purpose, SendError};
use signin::mfa;
use store::{Consumption, Interaction, UserStatus, UserType};

/// Wrong codes allowed per reset before it must be started again.
const MAX_FAILURES: u32 = 5;

/// A reset in progress, stored under `sspr.<random>` and consumed by each attempt.
#[derive(Debug, Serialize, Deserialize)]
struct Reset {
    /// The account: an active member here with a registered method.
    user_id: Option<String>,
    email: String,
    failures: u32,
}

/// `GET /password/reset`: the email form.
pub async fn page(State(state): State<AppState>, jar: CookieJar) -> Response {
    let (jar, csrf) = csrf_token(&state, jar);
    (
        jar,
        html(&pages::PasswordReset {
            tenant_name: &state.config.display_name,
            enabled: state.config.sspr.enabled,
            csrf_token: &csrf,
            reset: "",
            email: None,
            error: None,
            notice: None,
            email_hint: None,
        }),
    )
        .into_response()
}

/// The email form.
#[derive(Debug, Deserialize)]
pub struct EmailForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    email: String,
}

/// `POST /password/reset`: start a reset for an address.
pub async fn start(
    State(state): State<AppState>,
    ctx: Ctx,
    jar: CookieJar,
    Form(f): Form<EmailForm>,
) -> Response {
    if let Err(e) = check_csrf(&state, &jar, &f.csrf_token) {
        return e.render(&state, &ctx);
    }
    let typed = f.email.trim();
    let email = typed.to_lowercase();
    if !signin::plausible_email(&email) {
        return html(&pages::PasswordReset {
            tenant_name: &state.config.display_name,
            enabled: state.config.sspr.enabled,
            csrf_token: &f.csrf_token,
            reset: "",
            email: None,
            error: Some("Enter a valid email address."),
            notice: None,
            email_hint: None,
        });
    }
    if let Some(refused) = over_limit(&state, &ctx, &email).await {
        return refused;
    }
    if !state.config.sspr.enabled {
        return administrator(&state, &ctx, typed, "self-service password reset is off");
    }
    let user = match state.store.user_by_email(&email).await {
        Ok(u) => u.filter(|u| u.status == UserStatus::Active && u.user_type == UserType::Member),
        Err(e) => return PageError::from(e).render(&state, &ctx),
    };
    // The same work for an unknown address: its method lookup (of no one) runs too.
    let has_method = match mfa::has_method(&state, user.as_ref().map_or("", |u| &u.id)).await {
        Ok(has) => has,
        Err(e) => return PageError::from(e).render(&state, &ctx),
    };
    let user = match user {
        Some(u) if has_method => u,
        Some(_) => return administrator(&state, &ctx, typed, "no registered method"),
        None => return administrator(&state, &ctx, typed, "no active member with this address"),
    };
    let reset = Reset {
        user_id: Some(user.id),
        email,
        failures: 0,
    };
    second_step(&state, &ctx, &f.csrf_token, &reset, None, None).await
}

/// Store the reset under a new id and show the code + new password form (with the way to get
/// a code by email, for a user who registered an address for codes).
async fn second_step(
    state: &AppState,
    ctx: &Ctx,
    csrf: &str,
    reset: &Reset,
    error: Option<&str>,
    notice: Option<&str>,
) -> Response {
    let email_hint = match &reset.user_id {
        Some(id) => match email_otp::address(state, id).await {
            Ok(address) => address.map(|a| email_otp::mask(&a)),
            Err(e) => return PageError::from(e).render(state, ctx),
        },
        None => None,
    };
    let id = format!("sspr.{}", random_token());
    let now = state.now();
    let json = match serde_json::to_string(reset) {
        Ok(j) => j,
        Err(e) => return PageError::internal(e.to_string()).render(state, ctx),
    };
    if let Err(e) = state
        .store
        .create_interaction(&Interaction {
            id: id.clone(),
            request_json: json,
            created_at: now,
            expires_at: now + state.config.tokens.sign_in_request,
        })
        .await
    {
        return PageError::from(e).render(state, ctx);
    }
    html(&pages::PasswordReset {
        tenant_name: &state.config.display_name,
        enabled: state.config.sspr.enabled,
        csrf_token: csrf,
        reset: &id,
        email: Some(&reset.email),
        error,
        notice,
        email_hint: email_hint.as_deref(),
    })
}

/// Claims the reset a form carries (each post consumes it: one winner for parallel posts).
async fn claim_reset(state: &AppState, reset: &str) -> Result<Reset, PageError> {
    if !reset.starts_with("sspr.") || reset.len() > 64 {
        return Err(PageError::expired_request());
    }
    match state.store.consume_interaction(reset, state.now()).await? {
        Consumption::Consumed(i) => {
            serde_json::from_str(&i.request_json).map_err(|e| PageError::internal(e.to_string()))
        }
        _ => Err(PageError::expired_request()),
    }
}

/// The "send me a code" form.
#[derive(Debug, Deserialize)]
pub struct SendCodeForm {
    #[serde(default)]
    reset: String,
    #[serde(default)]
    csrf_token: String,
}

/// `POST /password/reset/email`: email a code to the account's registered address (counted
/// as a reset attempt), then the code + new password form again.
pub async fn send_code(
    State(state): State<AppState>,
    ctx: Ctx,
    jar: CookieJar,
    Form(f): Form<SendCodeForm>,
) -> Response {
    if let Err(e) = check_csrf(&state, &jar, &f.csrf_token) {
        return e.render(&state, &ctx);
    }
    let reset = match claim_reset(&state, &f.reset).await {
        Ok(r) => r,
        Err(e) => return e.render(&state, &ctx),
    };
    if let Some(refused) = over_limit(&state, &ctx, &reset.email).await {
        return refused;
    }
    if !state.config.sspr.enabled {
        return administrator(
            &state,
            &ctx,
            &reset.email,
            "self-service password reset is off",
        );
    }
    let Some(user_id) = reset.user_id.clone() else {
        return PageError::expired_request().render(&state, &ctx);
    };
    let (notice, error): (Option<String>, Option<&str>) = match email_otp::send(
        &state,
        &user_id,
        Purpose::PasswordReset,
    )
    .await
    {
        Ok(sent) => (
            Some(format!(
                "We sent a code to {}. It works once, for {} minutes.",
                sent.masked_to,
                email_otp::LIFETIME_SECS / 60
            )),
            None,
        ),
        Err(SendError::TooSoon { .. }) => (
            None,
            Some(
                "A code was sent a moment ago: use the one in your inbox, or wait a little before asking for another.",
            ),
        ),
        Err(SendError::Mail(e)) => {
            tracing::error!(correlation_id = %ctx.correlation_id, error = %e, "password reset: the code could not be emailed");
            (
                None,
                Some("We couldn't send the email just now. Try again, or use another method."),
            )
        }
        Err(SendError::MailOff | SendError::NoAddress) => (
            None,
            Some(
                "No address is registered for codes by email on this account. Use another method.",
            ),
        ),
        Err(SendError::Store(e)) => return PageError::from(e).render(&state, &ctx),
    };
    second_step(
        &state,
        &ctx,
        &f.csrf_token,
        &reset,
        error,
        notice.as_deref(),
    )
    .await
}

/// The code + new password form.
#[derive(Debug, Deserialize)]
pub struct NewPasswordForm {
    #[serde(default)]
    reset: String,
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    confirm_password: String,
}

/// `POST /password/reset/new`: verify the code, set the password, remediate the risk.
pub async fn finish(
    State(state): State<AppState>,
    ctx: Ctx,
    jar: CookieJar,
    Form(f): Form<NewPasswordForm>,
) -> Response {
    if let Err(e) = check_csrf(&state, &jar, &f.csrf_token) {
        return e.render(&state, &ctx);
    }
    // Each attempt consumes the reset (one winner for parallel posts), then a new one carries
    // the failure count on.
    let mut reset = match claim_reset(&state, &f.reset).await {
        Ok(r) => r,
        Err(e) => return e.render(&state, &ctx),
    };
    if let Some(refused) = over_limit(&state, &ctx, &reset.email).await {
        return refused;
    }
    if !state.config.sspr.enabled {
        // Turned off (a reload) while this reset was in progress.
        return administrator(
            &state,
            &ctx,
            &reset.email,
            "self-service password reset is off",
        );
    }
    if f.new_password != f.confirm_password {
        return second_step(
            &state,
            &ctx,
            &f.csrf_token,
            &reset,
            Some("The passwords do not match."),
            None,
        )
        .await;
    }
    if let Err(msg) = check_new_password(&f.new_password) {
        return second_step(&state, &ctx, &f.csrf_token, &reset, Some(msg), None).await;
    }
    let verified = match &reset.user_id {
        Some(id) => match mfa::verify_code(&state, id, f.code.trim(), Purpose::PasswordReset).await
        {
            Ok(ok) => ok,
            Err(e) => return PageError::from(e).render(&state, &ctx),
        },
        None => false,
    };
    let Some(user_id) = reset.user_id.clone().filter(|_| verified) else {
        reset.failures += 1;
        tracing::info!(correlation_id = %ctx.correlation_id, failures = reset.failures, "password reset: wrong code");
        if reset.failures >= MAX_FAILURES {
            return PageError::bad_request(
                "Too many wrong codes",
                "Start the password reset again, or contact your administrator.",
            )
            .render(&state, &ctx);
        }
        return second_step(
            &state,
            &ctx,
            &f.csrf_token,
            &reset,
            Some("That code is not right. Use the current code from your authenticator app, the latest code we emailed you, or an unused recovery code."),
            None,
        )
        .await;
    };
    // A secure reset: the new password is not the current one, nor one known to be leaked
    // (checked only now, after the code, so the page is no oracle for the current password).
    let user = match state.store.user_by_id(&user_id).await {
        Ok(Some(u)) => u,
        Ok(None) => return PageError::expired_request().render(&state, &ctx),
        Err(e) => return PageError::from(e).render(&state, &ctx),
    };
    let refused = match super::new_password_problem(&state, &user, &f.new_password).await {
        Ok(refused) => refused,
        Err(e) => return e.render(&state, &ctx),
    };
    if let Some(msg) = refused {
        tracing::info!(correlation_id = %ctx.correlation_id, user = %user_id, "password reset: new password refused");
        return second_step(&state, &ctx, &f.csrf_token, &reset, Some(msg), None).await;
    }
    let hash = match state.passwords.hash(&f.new_password).await {
        Ok(h) => h,
        Err(e) => return PageError::internal(e.to_string()).render(&state, &ctx),
    };
    let now = state.now();
    let changed = signin::ssf::user_signal(
        &state.config.issuer,
        &user_id,
        &protocol::set::Event::credential_change("password", "update", now),
        &uuid::Uuid::new_v4().simple().to_string(),
        now,
    );
    if let Err(e) = state
        .store
        .set_password_signalled(&user_id, &hash, false, now, &[changed])
        .await
    {
        return PageError::from(e).render(&state, &ctx);
    }
    if let Err(e) = user_risk::after_password_set(&state, &user_id, &f.new_password).await {
        tracing::warn!(error = %e, "password reset: leak fingerprint not refreshed");
    }
    let remediated = user_risk::remediate(
        &state,
        &user_id,
        UserRiskEvent::SecuredPasswordReset,
        Actor::User(user_id.clone()),
    )
    .await;
    if let Err(e) = remediated {
        // The password is changed either way; an account without risk has nothing to remediate.
        tracing::info!(correlation_id = %ctx.correlation_id, error = %e, "password reset: risk not remediated");
    }
    // CAEP session-revoked for the partners the user is a guest at, written with the
    // revocation.
    let signals = [signin::ssf::user_signal(
        &state.config.issuer,
        &user_id,
        &protocol::set::Event::session_revoked("user", now),
        &uuid::Uuid::new_v4().simple().to_string(),
        now,
    )];
    if let Err(e) = state
        .store
        .end_user_sign_ins_signalled(&user_id, now, &signals)
        .await
    {
        return PageError::from(e).render(&state, &ctx);
    }
    tracing::info!(correlation_id = %ctx.correlation_id, user = %user_id, "password reset by the user (SSPR)");
    html(&pages::SignedOut {
        tenant_name: &state.config.display_name,
        title: "Your password was reset",
        message: "Your new password is set and any risk on your account is cleared. You were signed out everywhere; sign in again from your app.",
    })
}

/// Counts a reset attempt for `account` (lowercased) and the client's IP (an IPv6 client's
/// /64); over either limit, the page to try later (429 with `Retry-After`) — the same for any
/// account, known or not.
async fn over_limit(state: &AppState, ctx: &Ctx, account: &str) -> Option<Response> {
    let limits = state.config.sspr;
    let now = state.now();
    let ip = match ctx.ip {
        std::net::IpAddr::V6(v6) => ipnet::Ipv6Net::new(v6, 64)
            .map(|n| n.trunc().to_string())
            .unwrap_or_else(|_| v6.to_string()),
        v4 => v4.to_string(),
    };
    let buckets = [format!("account:{account}"), format!("ip:{ip}")];
    let counts = match state
        .store
        .count_sspr_attempt(
            &[buckets[0].as_str(), buckets[1].as_str()],
            limits.window_secs,
            now,
        )
        .await
    {
        Ok(c) => c,
        Err(e) => return Some(PageError::from(e).render(state, ctx)),
    };
    let retry_after = counts
        .iter()
        .zip([limits.max_attempts_per_account, limits.max_attempts_per_ip])
        .filter(|(c, max)| c.attempts > *max)
        .map(|(c, _)| c.window_ends_at - now)
        .max()?
        .max(1);
    tracing::info!(
        correlation_id = %ctx.correlation_id,
        retry_after,
        "password reset: too many attempts"
    );
    let minutes = (retry_after + 59) / 60;
    let message = format!(
        "There were too many password reset attempts. Try again in {minutes} minute{}.",
        if minutes == 1 { "" } else { "s" }
    );
    let page = pages::ErrorPage {
        tenant_name: &state.config.display_name,
        title: "Too many attempts",
        message: &message,
        error_code: None,
        correlation_id: &ctx.correlation_id,
    };
    Some(
        (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, retry_after.to_string())],
            html(&page),
        )
            .into_response(),
    )
}

/// The user cannot reset their password here: what to give their administrator. `why` is for
/// the log only; the page is the same whatever it is.
fn administrator(state: &AppState, ctx: &Ctx, account: &str, why: &str) -> Response {
    let now = state.now();
    let time = time::OffsetDateTime::from_unix_timestamp(now)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| now.to_string());
    tracing::info!(
        correlation_id = %ctx.correlation_id,
        reason = why,
        "password reset: not possible here, the user is sent to their administrator"
    );
    html(&pages::PasswordResetAdministrator {
        tenant_name: &state.config.display_name,
        tenant_id: &state.config.tenant_id,
        account,
        time: &time,
        correlation_id: &ctx.correlation_id,
    })
}
