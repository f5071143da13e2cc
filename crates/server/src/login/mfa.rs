//! Multi-factor authentication at sign-in: a code of the user's authenticator app (RFC 6238
//! TOTP), a code emailed to their registered address (sent when they ask for it, `POST
//! /login/mfa/email/send`), or a recovery code; enrolment of an authenticator with recovery
//! codes for a user without a method; and the refusals around them.
//!
//! The sign-in gate sends the browser to `GET /login/mfa?interaction=` with the sign-in held
//! (`SignIn::held`) when a policy requires MFA. Once a code is accepted this module marks the
//! sign-in (`mfa_done`, `amr` gains RFC 8176's `mfa` and `otp`), keeps it under a new id and
//! answers 303 to `/login/continue?interaction=`, where the gate resumes. That redirect is the
//! whole contract with the gate. The TOTP and recovery-code core is `signin::mfa`.
//!
//! Each form submission first claims its held sign-in (consumed at most once) and only
//! then checks the code, so racing submissions of one form get one verdict between them and
//! cannot fork the count of wrong codes.

use crate::login::refusal::{self, Refusal};
use crate::pages;
use crate::signin_log::{self, Entry, Outcome};
use crate::state::AppState;
use crate::web::Form;
use crate::web::Query;
use crate::web::{Ctx, PageError, check_csrf, csrf_token, html_to};
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use protocol::{ErrorCode, OAuthError};
use serde::Deserialize;
use signin::codes::STRONG_AUTH_FAILED;
use signin::email_otp::{self, Purpose, SendError, Verdict};
use signin::mfa::{
    MAX_FAILURES, check_totp, grouped, has_method, methods, new_secret, otpauth_uri,
    regenerate_recovery_codes, use_recovery_code, verify_totp,
};
use signin::sign_in::{self as progress, SignIn};
use store::{Consumption, TotpMethod, User};

/// A held sign-in at the MFA step: its id, the sign-in and the user it names.
struct Step {
    id: String,
    sign_in: SignIn,
    user: User,
}

async fn load(state: &AppState, jar: &CookieJar, interaction: &str) -> Result<Step, PageError> {
    let sign_in = progress::load(state, interaction).await?;
    // Only a sign-in the gate holds (user known, MFA required) has an MFA step, and only in
    // the browser it was held for: a leaked URL must not let another browser enrol a factor.
    if !sign_in.held || !crate::login::gate::same_browser(state, jar, &sign_in) {
        return Err(PageError::expired_request());
    }
    let user = crate::login::gate::held_user(state, &sign_in).await?;
    Ok(Step {
        id: interaction.to_owned(),
        sign_in,
        user,
    })
}

async fn submitted(
    state: &AppState,
    jar: &CookieJar,
    csrf: &str,
    interaction: &str,
) -> Result<Step, PageError> {
    check_csrf(state, jar, csrf)?;
    load(state, jar, interaction).await
}

/// Take the held sign-in for this submission: only one submission of a form goes on.
async fn claim(state: &AppState, step: &Step) -> Result<(), PageError> {
    match state
        .store
        .consume_interaction(&step.id, state.now())
        .await?
    {
        Consumption::Consumed(_) => Ok(()),
        Consumption::AlreadyConsumed(_) | Consumption::NotFound => {
            Err(PageError::expired_request())
        }
    }
}

/// Keep the sign-in, updated, under a new id.
async fn resume(state: &AppState, step: &Step) -> Result<String, PageError> {
    Ok(progress::save(state, &step.sign_in).await?)
}

fn continue_url(id: &str) -> String {
    format!("/login/continue?interaction={id}")
}

async fn log(
    state: &AppState,
    ctx: &Ctx,
    step: &Step,
    outcome: Outcome,
    details: serde_json::Value,
) {
    let entry = Entry {
        correlation_id: &step.sign_in.correlation_id,
        app_id: Some(&step.sign_in.request.client_id),
        upn: Some(&step.user.email),
        user_id: Some(&step.user.id),
        guest_of: step.user.partner_id.as_deref(),
        details,
        ..Entry::default()
    };
    signin_log::write(state, ctx, entry, outcome).await;
}

async fn refuse(state: &AppState, step: &Step, r: Refusal) -> Response {
    refusal::render(
        state,
        &step.sign_in.correlation_id,
        Some(&step.sign_in.request),
        r,
    )
    .await
}

/// Registering a method is refused while the user or the sign-in is at any risk
/// (`ProofUpBlockedDueToRisk`, 53004): whoever holds a stolen password must not be able to
/// enrol their own authenticator. The sign-in ends; nothing is registered.
async fn refuse_risky_registration(state: &AppState, ctx: &Ctx, step: &Step) -> Option<Response> {
    let blocked = policy::mfa_registration_allowed(
        step.sign_in.user_risk_level,
        step.sign_in.sign_in_risk_level,
        risk::RiskLevel::Low,
    )
    .err()?;
    if let Err(e) = state.store.delete_interaction(&step.id).await {
        return Some(PageError::from(e).render(state, ctx));
    }
    let code = blocked.error_code;
    log(
        state,
        ctx,
        step,
        Outcome::Failure(
            code,
            "ProofUpBlockedDueToRisk: MFA registration is blocked because the user or the sign-in is at risk.",
        ),
        serde_json::json!({
            "userRiskLevel": blocked.user_risk_level,
            "riskLevelDuringSignIn": blocked.sign_in_risk_level,
        }),
    )
    .await;
    Some(refuse(
        state,
        step,
        Refusal {
            title: "You can't register a sign-in method right now",
            message: "This sign-in looks risky, so a new verification method can't be set up for your account during it.".into(),
            explanation: Some(
                "Methods are never registered during a risky sign-in: someone who has learned your password could otherwise register their own authenticator to your account. Try again later from a device and network you usually use, or ask your administrator to help you set up verification.".into(),
            ),
            home_link: None,
            footnote: None,
            error_code: code,
            oauth: OAuthError::new(
                ErrorCode::AccessDenied,
                "MFA registration is blocked because the user or the sign-in is at risk.",
            ),
        },
    )
    .await)
}

/// Which page a wrong code goes back to.
enum Retry<'a> {
    /// The code page, with the email code form shown when `email_sent`.
    Verify {
        msg: &'static str,
        email_sent: bool,
    },
    Enrol(&'a TotpMethod),
}

/// A wrong code: count it; at [`MAX_FAILURES`] the sign-in is refused, else the page again
/// (under the sign-in's new id).
async fn wrong_code(
    state: &AppState,
    ctx: &Ctx,
    csrf: &str,
    mut step: Step,
    retry: Retry<'_>,
) -> Result<Response, PageError> {
    step.sign_in.mfa_failures += 1;
    if step.sign_in.mfa_failures >= MAX_FAILURES {
        // The claimed interaction stays consumed: this sign-in cannot go on.
        log(
            state,
            ctx,
            &step,
            Outcome::Failure(
                STRONG_AUTH_FAILED,
                "Authentication failed during strong authentication request.",
            ),
            serde_json::json!({"mfaFailures": step.sign_in.mfa_failures}),
        )
        .await;
        return Ok(refuse(
            state,
            &step,
            Refusal {
                title: "We couldn't verify your sign-in",
                message: "Too many incorrect verification codes were entered.".into(),
                explanation: Some(
                    "Start signing in again from the app. If you no longer have your authenticator app or your recovery codes, ask your administrator to reset your verification methods.".into(),
                ),
                home_link: None,
                footnote: None,
                error_code: STRONG_AUTH_FAILED,
                oauth: OAuthError::new(
                    ErrorCode::AccessDenied,
                    "Authentication failed during strong authentication request.",
                ),
            },
        )
        .await);
    }
    let id = resume(state, &step).await?;
    Ok(match retry {
        Retry::Verify { msg, email_sent } => {
            let view = VerifyView::of(state, &step, email_sent).await?;
            verify_page(state, &id, csrf, &step, &view, Some(msg), None)
        }
        Retry::Enrol(method) => enrol_page(
            state,
            &id,
            csrf,
            &step,
            method,
            Some(
                "That code didn't match. Check the setup key in your app and enter the code it shows now.",
            ),
        ),
    })
}

/// MFA done: on to the gate.
async fn done(state: &AppState, mut step: Step) -> Result<String, PageError> {
    step.sign_in.mfa_passed();
    resume(state, &step).await
}

/// Which of the user's methods the code page offers.
struct VerifyView {
    totp: bool,
    /// Where codes by email go, masked.
    email_hint: Option<String>,
    /// A code was just emailed: show its form first.
    email_sent: bool,
    recovery: bool,
}

impl VerifyView {
    async fn of(state: &AppState, step: &Step, email_sent: bool) -> Result<Self, PageError> {
        let m = methods(state, &step.user.id).await?;
        Ok(Self {
            totp: m.totp,
            email_sent: email_sent && m.email.is_some(),
            email_hint: m.email.as_deref().map(email_otp::mask),
            recovery: m.totp || m.recovery_codes > 0,
        })
    }
}

fn verify_page(
    state: &AppState,
    interaction: &str,
    csrf: &str,
    step: &Step,
    view: &VerifyView,
    error: Option<&str>,
    notice: Option<&str>,
) -> Response {
    html_to(
        &pages::MfaVerify {
            tenant_name: &state.config.display_name,
            interaction,
            csrf_token: csrf,
            email: &step.user.email,
            totp: view.totp,
            email_hint: view.email_hint.as_deref(),
            email_sent: view.email_sent,
            recovery: view.recovery,
            error,
            notice,
        },
        &step.sign_in.request.redirect_uri,
    )
}

fn enrol_page(
    state: &AppState,
    interaction: &str,
    csrf: &str,
    step: &Step,
    method: &TotpMethod,
    error: Option<&str>,
) -> Response {
    let email = &step.user.email;
    let uri = otpauth_uri(&state.config.display_name, email, &method.secret);
    html_to(
        &pages::MfaEnrol {
            tenant_name: &state.config.display_name,
            interaction,
            csrf_token: csrf,
            email,
            secret: &grouped(&method.secret),
            qr_svg: pages::qr_svg(&uri).as_deref(),
            otpauth_uri: &uri,
            error,
        },
        &step.sign_in.request.redirect_uri,
    )
}

/// `?interaction=`
#[derive(Debug, Deserialize)]
pub struct MfaQuery {
    #[serde(default)]
    interaction: String,
}

/// `GET /login/mfa`: the code page, or enrolment for a user without an authenticator.
pub async fn page(
    State(state): State<AppState>,
    ctx: Ctx,
    jar: CookieJar,
    Query(q): Query<MfaQuery>,
) -> Response {
    page_inner(&state, &ctx, jar, &q.interaction)
        .await
        .unwrap_or_else(|e| e.render(&state, &ctx))
}

async fn page_inner(
    state: &AppState,
    ctx: &Ctx,
    jar: CookieJar,
    interaction: &str,
) -> Result<Response, PageError> {
    let step = load(state, &jar, interaction).await?;
    let (jar, csrf) = csrf_token(state, jar);
    if has_method(state, &step.user.id).await? {
        let view = VerifyView::of(state, &step, false).await?;
        let page = verify_page(state, interaction, &csrf, &step, &view, None, None);
        return Ok((jar, page).into_response());
    }
    if let Some(refused) = refuse_risky_registration(state, ctx, &step).await {
        return Ok(refused);
    }
    let method = state
        .store
        .add_unconfirmed_totp(
            &uuid::Uuid::new_v4().to_string(),
            &step.user.id,
            &new_secret(),
            state.now(),
        )
        .await?;
    let page = enrol_page(state, interaction, &csrf, &step, &method, None);
    Ok((jar, page).into_response())
}

/// The code forms (`/login/mfa`, `/login/mfa/enrol`).
#[derive(Debug, Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    interaction: String,
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    code: String,
}

/// `POST /login/mfa`: a code from the authenticator app.
pub async fn verify_submit(
    State(state): State<AppState>,
    ctx: Ctx,
    jar: CookieJar,
    Form(f): Form<CodeForm>,
) -> Response {
    let result = async {
        let step = submitted(&state, &jar, &f.csrf_token, &f.interaction).await?;
        claim(&state, &step).await?;
        if check_totp(&state, &step.user.id, &f.code).await? {
            let id = done(&state, step).await?;
            return Ok(Redirect::to(&continue_url(&id)).into_response());
        }
        let msg = "That code didn't work. Enter the code your authenticator app shows now.";
        let retry = Retry::Verify {
            msg,
            email_sent: false,
        };
        wrong_code(&state, &ctx, &f.csrf_token, step, retry).await
    };
    result.await.unwrap_or_else(|e| e.render(&state, &ctx))
}

/// The recovery code form.
#[derive(Debug, Deserialize)]
pub struct RecoveryForm {
    #[serde(default)]
    interaction: String,
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    recovery_code: String,
}

/// `POST /login/mfa/recovery`: one of the user's recovery codes, spent.
pub async fn recovery_submit(
    State(state): State<AppState>,
    ctx: Ctx,
    jar: CookieJar,
    Form(f): Form<RecoveryForm>,
) -> Response {
    let result = async {
        let step = submitted(&state, &jar, &f.csrf_token, &f.interaction).await?;
        claim(&state, &step).await?;
        if use_recovery_code(&state, &step.user.id, &f.recovery_code).await? {
            tracing::info!(correlation_id = %step.sign_in.correlation_id, user = %step.user.id, "recovery code used");
            let id = done(&state, step).await?;
            return Ok(Redirect::to(&continue_url(&id)).into_response());
        }
        let msg = "That recovery code didn't work. Each code can be used only once.";
        let retry = Retry::Verify {
            msg,
            email_sent: false,
        };
        wrong_code(&state, &ctx, &f.csrf_token, step, retry).await
    };
    result.await.unwrap_or_else(|e| e.render(&state, &ctx))
}

/// `POST /login/mfa/enrol`: the first code from a newly added authenticator confirms it; the
/// user then gets their recovery codes, once.
pub async fn enrol_submit(
    State(state): State<AppState>,
    ctx: Ctx,
    jar: CookieJar,
    Form(f): Form<CodeForm>,
) -> Response {
    enrol_inner(&state, &ctx, &jar, &f)
        .await
        .unwrap_or_else(|e| e.render(&state, &ctx))
}

async fn enrol_inner(
    state: &AppState,
    ctx: &Ctx,
    jar: &CookieJar,
    f: &CodeForm,
) -> Result<Response, PageError> {
    let step = submitted(state, jar, &f.csrf_token, &f.interaction).await?;
    // Checked again here: the risk may have been raised since the page was shown, and the
    // form can be posted without the page.
    if let Some(refused) = refuse_risky_registration(state, ctx, &step).await {
        return Ok(refused);
    }
    // A user with an authenticator proves it; enrolment never replaces it at sign-in.
    if has_method(state, &step.user.id).await? {
        return Ok(Redirect::to(&format!("/login/mfa?interaction={}", step.id)).into_response());
    }
    let Some(method) = state.store.unconfirmed_totp(&step.user.id).await? else {
        return Err(PageError::expired_request());
    };
    claim(state, &step).await?;
    let now = state.now();
    let confirmed =
        match verify_totp(&method.secret, &f.code, now).and_then(|s| i64::try_from(s).ok()) {
            Some(time_step) => {
                let added = signin::ssf::authenticator_signal(
                    &state.config.issuer,
                    &step.user.id,
                    "create",
                    now,
                );
                state
                    .store
                    .confirm_totp_signalled(&method.id, time_step, now, &[added])
                    .await?
            }
            None => false,
        };
    if !confirmed {
        return wrong_code(state, ctx, &f.csrf_token, step, Retry::Enrol(&method)).await;
    }
    let codes = regenerate_recovery_codes(state, &step.user.id).await?;
    tracing::info!(correlation_id = %step.sign_in.correlation_id, user = %step.user.id, "authenticator app registered");
    let target = step.sign_in.request.redirect_uri.clone();
    let id = done(state, step).await?;
    Ok(html_to(
        &pages::MfaRecoveryCodes {
            tenant_name: &state.config.display_name,
            codes: &codes,
            interaction: &id,
        },
        &target,
    ))
}

/// The form that asks for a code by email.
#[derive(Debug, Deserialize)]
pub struct SendCodeForm {
    #[serde(default)]
    interaction: String,
    #[serde(default)]
    csrf_token: String,
}

/// `POST /login/mfa/email/send`: email a code to the user's registered address, then the code
/// page with the form for it.
pub async fn email_send(
    State(state): State<AppState>,
    ctx: Ctx,
    jar: CookieJar,
    Form(f): Form<SendCodeForm>,
) -> Response {
    email_send_inner(&state, &jar, &f)
        .await
        .unwrap_or_else(|e| e.render(&state, &ctx))
}

async fn email_send_inner(
    state: &AppState,
    jar: &CookieJar,
    f: &SendCodeForm,
) -> Result<Response, PageError> {
    let step = submitted(state, jar, &f.csrf_token, &f.interaction).await?;
    claim(state, &step).await?;
    let (notice, error): (Option<String>, Option<&str>) = match email_otp::send(
        state,
        &step.user.id,
        Purpose::SignIn,
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
            tracing::error!(correlation_id = %step.sign_in.correlation_id, error = %e, "the sign-in code could not be emailed");
            (
                None,
                Some("We couldn't send the email just now. Try again, or use another method."),
            )
        }
        Err(SendError::MailOff | SendError::NoAddress) => (
            None,
            Some("No address is registered for codes by email. Use another method."),
        ),
        Err(SendError::Store(e)) => return Err(e.into()),
    };
    let id = resume(state, &step).await?;
    let view = VerifyView::of(state, &step, true).await?;
    Ok(verify_page(
        state,
        &id,
        &f.csrf_token,
        &step,
        &view,
        error,
        notice.as_deref(),
    ))
}

/// `POST /login/mfa/email`: the code from the email, spent.
pub async fn email_submit(
    State(state): State<AppState>,
    ctx: Ctx,
    jar: CookieJar,
    Form(f): Form<CodeForm>,
) -> Response {
    let result = async {
        let step = submitted(&state, &jar, &f.csrf_token, &f.interaction).await?;
        claim(&state, &step).await?;
        let retry = match email_otp::verify(&state, &step.user.id, Purpose::SignIn, &f.code).await?
        {
            Verdict::Accepted => {
                tracing::info!(correlation_id = %step.sign_in.correlation_id, user = %step.user.id, "emailed code used");
                let id = done(&state, step).await?;
                return Ok(Redirect::to(&continue_url(&id)).into_response());
            }
            Verdict::Wrong { .. } => Retry::Verify {
                msg: "That code didn't work. Enter the code from the latest email we sent you.",
                email_sent: true,
            },
            Verdict::Expired | Verdict::TooManyTries | Verdict::NoCode => Retry::Verify {
                msg: "That code no longer works. Send yourself a new one.",
                email_sent: false,
            },
        };
        wrong_code(&state, &ctx, &f.csrf_token, step, retry).await
    };
    result.await.unwrap_or_else(|e| e.render(&state, &ctx))
}
