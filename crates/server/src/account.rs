//! A member's security info, `/account/security`: the methods they registered (authenticator
//! app, address for codes by email, recovery codes left) and the changes they may make to them.
//!
//! The member signs in through the tenant's own flow ([`crate::portal`], [`Member`]). Every
//! form is CSRF-protected and posts to `POST /account/security` with an `action`. A change needs
//! a fresh proof: a sign-in in the last [`FRESH_SECS`], or a code from one of the member's
//! methods entered here (kept, for this browser's token only, for [`FRESH_SECS`]); tries at that
//! code are limited per member. A member at risk (any user risk) may look, and may remove
//! methods, but may not add one or mint recovery codes (`ProofUpBlockedDueToRisk`, 53004):
//! whoever holds a stolen password must not register their own factor.

use crate::pages;
use crate::portal::{self, Member, Portal};
use crate::state::AppState;
use crate::web::{Ctx, Form, PageError, check_csrf, csrf_token, html};
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;
use signin::email_otp::{self, Purpose, SendError, Verdict};
use signin::mfa;
use store::Interaction;

/// The page's path.
pub const SECURITY_PATH: &str = "/account/security";
/// How long a sign-in, or a code entered here, counts as a fresh proof.
pub const FRESH_SECS: i64 = 600;
/// Tries at a proof code per member within [`PROOF_WINDOW_SECS`].
const MAX_PROOF_TRIES: i64 = 5;
const PROOF_WINDOW_SECS: i64 = 900;
/// How long an authenticator started here may wait for its first code.
const ENROL_SECS: i64 = 900;

/// `GET /account`: the security info.
pub async fn home() -> Redirect {
    Redirect::to(SECURITY_PATH)
}

/// What the page shows besides the methods: the outcome of the last action and the panel it
/// opened.
#[derive(Default)]
struct Shown {
    notice: Option<String>,
    error: Option<String>,
    enrol: Option<pages::AccountEnrol>,
    email_pending: Option<String>,
    codes: Option<Vec<String>>,
}

impl Shown {
    fn notice(msg: impl Into<String>) -> Self {
        Self {
            notice: Some(msg.into()),
            ..Self::default()
        }
    }

    fn error(msg: impl Into<String>) -> Self {
        Self {
            error: Some(msg.into()),
            ..Self::default()
        }
    }
}

/// Where this browser's proof is kept: bound to the grant behind its token, so another
/// browser (another sign-in) has to prove itself.
fn proof_id(member: &Member) -> String {
    let grant = member
        .claims
        .gid
        .as_deref()
        .unwrap_or(member.claims.jti.as_str());
    format!("account-proof.{grant}")
}

async fn fresh(state: &AppState, member: &Member) -> Result<bool, PageError> {
    let now = state.now();
    if member
        .claims
        .auth_time
        .is_some_and(|t| now - t <= FRESH_SECS)
    {
        return Ok(true);
    }
    let proof = state.store.interaction(&proof_id(member), now).await?;
    Ok(proof.is_some_and(|p| p.request_json == member.user.id))
}

/// The 53004 refusal, when the member is at risk.
async fn registration_blocked(state: &AppState, member: &Member) -> Result<bool, PageError> {
    let status = signin::user_risk::current(state, &member.user.id)
        .await
        .map_err(|e| PageError::internal(e.to_string()))?;
    Ok(policy::mfa_registration_allowed(
        status.risk_level,
        risk::RiskLevel::None,
        risk::RiskLevel::Low,
    )
    .is_err())
}

const BLOCKED: &str = "Your account is at risk, so no new method can be added right now (error 53004). Reset your password to clear the risk, then try again.";
const NOT_FRESH: &str =
    "Confirm it's you first: enter a code from one of your methods, or sign in again.";

async fn render(
    state: &AppState,
    jar: CookieJar,
    member: &Member,
    shown: Shown,
) -> Result<Response, PageError> {
    let (jar, csrf) = csrf_token(state, jar);
    let methods = mfa::methods(state, &member.user.id).await?;
    // Masked even here: a borrowed or stolen session should not reveal another address.
    let email_method = methods.email.as_deref().map(email_otp::mask);
    let page = pages::AccountSecurity {
        tenant_name: &state.config.display_name,
        csrf_token: &csrf,
        email: &member.user.email,
        totp: methods.totp,
        email_method: email_method.as_deref(),
        mail_on: state.mailer.is_some(),
        recovery_codes: methods.recovery_codes,
        fresh: fresh(state, member).await?,
        blocked: registration_blocked(state, member).await?,
        notice: shown.notice.as_deref(),
        error: shown.error.as_deref(),
        enrol: shown.enrol.as_ref(),
        email_pending: shown.email_pending.as_deref(),
        codes: shown.codes.as_deref(),
    };
    Ok((jar, html(&page)).into_response())
}

/// `GET /account/security`.
pub async fn page(
    State(state): State<AppState>,
    member: Member,
    jar: CookieJar,
) -> Result<Response, PageError> {
    render(&state, jar, &member, Shown::default()).await
}

/// The page's forms.
#[derive(Debug, Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    method: String,
}

/// `POST /account/security`: one change, named by `action`.
pub async fn action(
    State(state): State<AppState>,
    ctx: Ctx,
    member: Member,
    jar: CookieJar,
    Form(f): Form<ActionForm>,
) -> Result<Response, PageError> {
    check_csrf(&state, &jar, &f.csrf_token)?;
    let shown = match f.action.as_str() {
        "prove" => prove(&state, &member, &f.code).await?,
        "send-proof-code" => {
            send_code(&state, &ctx, &member.user.id, Purpose::SecurityInfo, None)
                .await?
                .0
        }
        "reauth" => {
            return Ok(portal::sign_in_again(
                &state,
                jar,
                Portal::Account,
                SECURITY_PATH,
            ));
        }
        change => {
            if !fresh(&state, &member).await? {
                Shown::error(NOT_FRESH)
            } else {
                match change {
                    "totp-remove" => remove_totp(&state, &member).await?,
                    "email-remove" => remove_email(&state, &member).await?,
                    add if registration_blocked(&state, &member).await? => {
                        tracing::info!(correlation_id = %ctx.correlation_id, user = %member.user.id, action = add, "security info: registration refused, the user is at risk (53004)");
                        Shown::error(BLOCKED)
                    }
                    "totp-start" => start_totp(&state, &member).await?,
                    "totp-confirm" => confirm_totp(&state, &member, &f.method, &f.code).await?,
                    "email-add" => add_email(&state, &ctx, &member, &f.email).await?,
                    "email-confirm" => confirm_email(&state, &member, &f.code).await?,
                    "recovery-codes" => recovery_codes(&state, &member).await?,
                    _ => {
                        return Err(PageError::bad_request(
                            "Invalid request",
                            "This form is not one of the security info page's. Go back and try again.",
                        ));
                    }
                }
            }
        }
    };
    render(&state, jar, &member, shown).await
}

/// A code from one of the member's methods: this browser's changes count as fresh for a while.
async fn prove(state: &AppState, member: &Member, code: &str) -> Result<Shown, PageError> {
    let user_id = &member.user.id;
    let now = state.now();
    let bucket = format!("account-proof:{user_id}");
    let counts = state
        .store
        .count_sspr_attempt(&[bucket.as_str()], PROOF_WINDOW_SECS, now)
        .await?;
    if counts.first().is_some_and(|c| c.attempts > MAX_PROOF_TRIES) {
        return Ok(Shown::error(
            "Too many codes were tried. Wait a few minutes, or sign in again.",
        ));
    }
    if !mfa::verify_code(state, user_id, code.trim(), Purpose::SecurityInfo).await? {
        return Ok(Shown::error(
            "That code didn't work. Use the code your authenticator app shows now, the latest code we emailed you, or an unused recovery code.",
        ));
    }
    let id = proof_id(member);
    state.store.delete_interaction(&id).await?;
    state
        .store
        .create_interaction(&Interaction {
            id,
            request_json: user_id.clone(),
            created_at: now,
            expires_at: now + FRESH_SECS,
        })
        .await?;
    Ok(Shown::notice(format!(
        "Thanks: you can change your security info for the next {} minutes.",
        FRESH_SECS / 60
    )))
}

/// Emails a code (to the registered address, or to `to`); the notice or error to show.
async fn send_code(
    state: &AppState,
    ctx: &Ctx,
    user_id: &str,
    purpose: Purpose,
    to: Option<&str>,
) -> Result<(Shown, bool), PageError> {
    let sent = match to {
        Some(to) => email_otp::send_to(state, user_id, purpose, to).await,
        None => email_otp::send(state, user_id, purpose).await,
    };
    Ok(match sent {
        Ok(sent) => (
            Shown::notice(format!(
                "We sent a code to {}. It works once, for {} minutes.",
                sent.masked_to,
                email_otp::LIFETIME_SECS / 60
            )),
            true,
        ),
        Err(SendError::TooSoon { .. }) => (
            Shown::error(
                "A code was sent a moment ago: use the one in your inbox, or wait a little before asking for another.",
            ),
            false,
        ),
        Err(SendError::Mail(e)) => {
            tracing::error!(correlation_id = %ctx.correlation_id, error = %e, "security info: the code could not be emailed");
            (
                Shown::error("We couldn't send the email just now. Try again later."),
                false,
            )
        }
        Err(SendError::MailOff | SendError::NoAddress) => (
            Shown::error("No address is registered for codes by email."),
            false,
        ),
        Err(SendError::Store(e)) => return Err(e.into()),
    })
}

async fn start_totp(state: &AppState, member: &Member) -> Result<Shown, PageError> {
    let method = state
        .store
        .add_unconfirmed_totp(
            &uuid::Uuid::new_v4().to_string(),
            &member.user.id,
            &mfa::new_secret(),
            state.now(),
        )
        .await?;
    Ok(Shown {
        enrol: Some(enrol_view(state, member, &method)),
        ..Shown::default()
    })
}

fn enrol_view(
    state: &AppState,
    member: &Member,
    method: &store::TotpMethod,
) -> pages::AccountEnrol {
    let uri = mfa::otpauth_uri(
        &state.config.display_name,
        &member.user.email,
        &method.secret,
    );
    pages::AccountEnrol {
        method_id: method.id.clone(),
        secret: mfa::grouped(&method.secret),
        qr_svg: pages::qr_svg(&uri),
        otpauth_uri: uri,
    }
}

async fn confirm_totp(
    state: &AppState,
    member: &Member,
    method_id: &str,
    code: &str,
) -> Result<Shown, PageError> {
    let now = state.now();
    // Only the authenticator this page started, and only for a while.
    let Some(method) = state
        .store
        .unconfirmed_totp(&member.user.id)
        .await?
        .filter(|m| m.id == method_id && now - m.created_at <= ENROL_SECS)
    else {
        return Ok(Shown::error(
            "That setup has expired. Start adding the authenticator app again.",
        ));
    };
    let confirmed =
        match mfa::verify_totp(&method.secret, code, now).and_then(|s| i64::try_from(s).ok()) {
            Some(step) => {
                let added = signin::ssf::authenticator_signal(
                    &state.config.issuer,
                    &member.user.id,
                    "create",
                    now,
                );
                state
                    .store
                    .confirm_totp_signalled(&method.id, step, now, &[added])
                    .await?
            }
            None => false,
        };
    if !confirmed {
        return Ok(Shown {
            error: Some(
                "That code didn't match. Check the setup key in your app and enter the code it shows now."
                    .into(),
            ),
            enrol: Some(enrol_view(state, member, &method)),
            ..Shown::default()
        });
    }
    tracing::info!(user = %member.user.id, "security info: authenticator app registered");
    // Recovery codes come with a first authenticator; an existing set is kept.
    let codes = if state.store.unused_recovery_codes(&member.user.id).await? == 0 {
        Some(mfa::regenerate_recovery_codes(state, &member.user.id).await?)
    } else {
        None
    };
    Ok(Shown {
        notice: Some("Your authenticator app is set up.".into()),
        codes,
        ..Shown::default()
    })
}

async fn remove_totp(state: &AppState, member: &Member) -> Result<Shown, PageError> {
    let removed = signin::ssf::authenticator_signal(
        &state.config.issuer,
        &member.user.id,
        "delete",
        state.now(),
    );
    state
        .store
        .delete_totp_signalled(&member.user.id, &[removed])
        .await?;
    tracing::info!(user = %member.user.id, "security info: authenticator app removed");
    Ok(Shown::notice("Your authenticator app was removed."))
}

async fn add_email(
    state: &AppState,
    ctx: &Ctx,
    member: &Member,
    typed: &str,
) -> Result<Shown, PageError> {
    let email = typed.trim().to_lowercase();
    if !signin::plausible_email(&email) {
        return Ok(Shown::error("Enter a valid email address."));
    }
    if state.mailer.is_none() {
        return Ok(Shown::error(
            "This organization does not send codes by email.",
        ));
    }
    // The sign-in address is the member's already; another one must prove it reaches them.
    if email == member.user.email {
        email_otp::register_address(state, &member.user.id, &email).await?;
        tracing::info!(user = %member.user.id, "security info: codes by email to the sign-in address");
        return Ok(Shown::notice(format!(
            "Codes by email now go to {}.",
            email_otp::mask(&email)
        )));
    }
    let (mut shown, sent) = send_code(
        state,
        ctx,
        &member.user.id,
        Purpose::NewAddress,
        Some(&email),
    )
    .await?;
    if sent {
        shown.email_pending = Some(email_otp::mask(&email));
    }
    Ok(shown)
}

async fn confirm_email(state: &AppState, member: &Member, code: &str) -> Result<Shown, PageError> {
    let user_id = &member.user.id;
    let Some(pending) = state
        .store
        .email_otp(user_id, Purpose::NewAddress.as_str())
        .await?
    else {
        return Ok(Shown::error(
            "Enter the address again: we'll send a new code.",
        ));
    };
    match email_otp::verify(state, user_id, Purpose::NewAddress, code).await? {
        Verdict::Accepted => {
            email_otp::register_address(state, user_id, &pending.email).await?;
            tracing::info!(user = %user_id, "security info: codes by email to a new address");
            Ok(Shown::notice(format!(
                "Codes by email now go to {}.",
                email_otp::mask(&pending.email)
            )))
        }
        Verdict::Wrong { .. } => Ok(Shown {
            error: Some("That code didn't work. Enter the code from the latest email.".into()),
            email_pending: Some(email_otp::mask(&pending.email)),
            ..Shown::default()
        }),
        Verdict::Expired | Verdict::TooManyTries | Verdict::NoCode => Ok(Shown::error(
            "That code no longer works. Enter the address again: we'll send a new code.",
        )),
    }
}

async fn remove_email(state: &AppState, member: &Member) -> Result<Shown, PageError> {
    state.store.delete_email_otp_method(&member.user.id).await?;
    tracing::info!(user = %member.user.id, "security info: codes by email removed");
    Ok(Shown::notice("Codes by email are off for your account."))
}

async fn recovery_codes(state: &AppState, member: &Member) -> Result<Shown, PageError> {
    let codes = mfa::regenerate_recovery_codes(state, &member.user.id).await?;
    tracing::info!(user = %member.user.id, "security info: recovery codes regenerated");
    Ok(Shown {
        notice: Some("New recovery codes: the old ones no longer work.".into()),
        codes: Some(codes),
        ..Shown::default()
    })
}

/// `POST /account/signout`: forget the pages' token and end the session (RP-initiated logout).
pub async fn sign_out(
    State(state): State<AppState>,
    jar: CookieJar,
    Form(form): Form<std::collections::HashMap<String, String>>,
) -> Result<Response, PageError> {
    check_csrf(
        &state,
        &jar,
        form.get("csrf_token").map_or("", String::as_str),
    )?;
    Ok(portal::sign_out(State(state), jar).await)
}
