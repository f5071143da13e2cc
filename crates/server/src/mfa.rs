//! TOTP multi-factor authentication at sign-in (RFC 6238): verification, enrolment with
//! recovery codes, and the refusals around them.
//!
//! The sign-in gate sends the browser to `GET /login/mfa?interaction=` with
//! [`Pending::gate`](crate::authorize::Pending) set when a policy requires MFA. Once a code is
//! accepted this module marks the gate (`mfa_done`, `amr` gains RFC 8176's `mfa` and `otp`),
//! moves the pending sign-in to a new id and answers 303 to `/login/continue?interaction=`,
//! where the gate resumes. That redirect is the whole contract with the gate.
//!
//! Each form submission first claims its pending sign-in (consumed at most once) and only
//! then checks the code, so racing submissions of one form get one verdict between them and
//! cannot fork the count of wrong codes.

use crate::authorize::{self, Gate, Pending};
use crate::pages;
use crate::refusal::{self, Refusal};
use crate::secrets::{random_bytes, token_hash};
use crate::signin_log::{self, Entry, Outcome};
use crate::state::AppState;
use crate::web::{Ctx, PageError, check_csrf, csrf_token, html};
use axum::Form;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use protocol::{ErrorCode, OAuthError};
use serde::Deserialize;
use signin::codes::STRONG_AUTH_FAILED;
use store::{Consumption, StoreError, TotpMethod, User, UserStatus};
use totp_rs::{Algorithm, Builder, Secret, Totp};

/// Digits of a code (RFC 6238's default, what every authenticator app shows).
const DIGITS: usize = 6;
/// Seconds per time step (RFC 6238 §5.2's recommendation).
const STEP_SECS: u64 = 30;
/// Time steps of clock drift accepted either way (RFC 6238 §5.2 recommends at most one).
const SKEW: u16 = 1;
/// Key length: 160 bits, RFC 4226 §4's recommendation.
const SECRET_BYTES: usize = 20;
/// Recovery codes issued at enrolment.
pub const RECOVERY_CODES: usize = 10;
/// Wrong codes after which a sign-in is refused.
pub const MAX_FAILURES: u32 = 5;
/// Recovery code characters: RFC 4648 base32, lowercase (no case or look-alike doubts when
/// typed back), 5 bits each.
const RECOVERY_ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
/// Characters in a recovery code: 80 bits, beyond guessing online and, unsalted, offline.
const RECOVERY_LEN: usize = 16;

fn totp(secret_base32: &str) -> Option<Totp> {
    let secret = Secret::try_from_base32(secret_base32).ok()?;
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS as u8)
        .with_skew(SKEW)
        .with_step_duration(STEP_SECS)
        .with_secret(secret)
        .build()
        .ok()
}

/// The RFC 6238 time step whose code `code` is, for the base32 key `secret` at unix time
/// `now`, within one step of drift; `None` for a wrong or malformed code (spaces are ignored).
/// Pure: the caller must still refuse a step already used (see [`verify_code`]).
pub fn verify_totp(secret: &str, code: &str, now: i64) -> Option<u64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    totp(secret)?.check(&code, u64::try_from(now).ok()?)
}

/// The `otpauth://` URI authenticator apps import (Key Uri Format): SHA-1, 6 digits, 30 s.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &str) -> String {
    let enc = |s: &str| -> String {
        url::form_urlencoded::byte_serialize(s.as_bytes())
            .collect::<String>()
            .replace('+', "%20")
    };
    format!(
        "otpauth://totp/{}:{}?secret={secret}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        enc(issuer),
        enc(account),
        enc(issuer),
    )
}

/// A new random key, base32.
fn new_secret() -> String {
    Secret::from(random_bytes::<SECRET_BYTES>()).to_base32()
}

/// The key in groups of four, easier to type into an app.
fn grouped(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A new recovery code, `xxxx-xxxx-xxxx-xxxx`.
fn new_recovery_code() -> String {
    let mut code = String::with_capacity(RECOVERY_LEN + 3);
    for (i, b) in random_bytes::<RECOVERY_LEN>().iter().enumerate() {
        if i > 0 && i % 4 == 0 {
            code.push('-');
        }
        code.push(char::from(RECOVERY_ALPHABET[usize::from(b & 31)]));
    }
    code
}

/// A recovery code as typed, reduced to what is hashed: lowercase, separators dropped.
fn normalize_recovery_code(code: &str) -> String {
    code.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Whether the user has a confirmed authenticator.
pub async fn has_method(state: &AppState, user_id: &str) -> Result<bool, StoreError> {
    Ok(state.store.confirmed_totp(user_id).await?.is_some())
}

/// Whether `code` proves the user's second factor now: a code of their confirmed authenticator
/// (each time step is accepted once, and never one older than the last accepted), or one of
/// their unused recovery codes, which this call spends.
pub async fn verify_code(state: &AppState, user_id: &str, code: &str) -> Result<bool, StoreError> {
    let digits = code.chars().filter(|c| !c.is_whitespace());
    if digits.clone().count() == DIGITS && digits.clone().all(|c| c.is_ascii_digit()) {
        check_totp(state, user_id, code).await
    } else {
        use_recovery_code(state, user_id, code).await
    }
}

async fn check_totp(state: &AppState, user_id: &str, code: &str) -> Result<bool, StoreError> {
    let Some(method) = state.store.confirmed_totp(user_id).await? else {
        return Ok(false);
    };
    match verify_totp(&method.secret, code, state.now()).and_then(|s| i64::try_from(s).ok()) {
        Some(step) => state.store.use_totp_step(&method.id, step).await,
        None => Ok(false),
    }
}

async fn use_recovery_code(
    state: &AppState,
    user_id: &str,
    code: &str,
) -> Result<bool, StoreError> {
    let code = normalize_recovery_code(code);
    if code.len() != RECOVERY_LEN {
        return Ok(false);
    }
    state
        .store
        .consume_recovery_code(user_id, &token_hash(&code), state.now())
        .await
}

/// Record MFA done in this sign-in: RFC 8176 `mfa` and `otp`, each once.
fn mark_done(gate: &mut Gate) {
    gate.mfa_done = true;
    for method in ["mfa", "otp"] {
        if !gate.amr.iter().any(|a| a == method) {
            gate.amr.push(method.to_owned());
        }
    }
}

/// A pending sign-in at the MFA step: its id, the request, the gate and the user it names.
struct Step {
    id: String,
    pending: Pending,
    gate: Gate,
    user: User,
}

async fn load(state: &AppState, jar: &CookieJar, interaction: &str) -> Result<Step, PageError> {
    let pending = authorize::load_pending(state, interaction).await?;
    // Only a sign-in the gate sent here (user known, MFA required) has an MFA step, and only
    // in the browser it was held for: a leaked URL must not let another browser enrol a factor.
    let Some(gate) = pending
        .gate
        .clone()
        .filter(|g| crate::access::same_browser(state, jar, g))
    else {
        return Err(PageError::expired_request());
    };
    let user = match state.store.user_by_id(&gate.user_id).await? {
        Some(u) if u.status == UserStatus::Active => u,
        _ => return Err(PageError::expired_request()),
    };
    Ok(Step {
        id: interaction.to_owned(),
        pending,
        gate,
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

/// Take the pending sign-in for this submission: only one submission of a form goes on.
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

/// Store the pending sign-in with its updated gate under a new id.
async fn resume(state: &AppState, step: &Step) -> Result<String, PageError> {
    let pending = Pending {
        gate: Some(step.gate.clone()),
        ..step.pending.clone()
    };
    authorize::start_pending(state, pending).await
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
        correlation_id: &step.pending.correlation_id,
        app_id: Some(&step.pending.request.client_id),
        upn: Some(&step.user.email),
        user_id: Some(&step.user.id),
        guest_of: step.user.partner_id.as_deref(),
        details,
        ..Entry::default()
    };
    signin_log::write(state, ctx, entry, outcome).await;
}

fn refuse(state: &AppState, step: &Step, r: Refusal) -> Response {
    refusal::render(
        state,
        &step.pending.correlation_id,
        Some(&step.pending.request),
        r,
    )
}

/// Registering a method is refused while the user or the sign-in is at any risk
/// (`ProofUpBlockedDueToRisk`, 53004): whoever holds a stolen password must not be able to
/// enrol their own authenticator. The sign-in ends; nothing is registered.
async fn refuse_risky_registration(state: &AppState, ctx: &Ctx, step: &Step) -> Option<Response> {
    let blocked = policy::mfa_registration_allowed(
        step.gate.user_risk_level,
        step.gate.sign_in_risk_level,
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
            error_code: code,
            oauth: OAuthError::new(
                ErrorCode::AccessDenied,
                "MFA registration is blocked because the user or the sign-in is at risk.",
            ),
        },
    ))
}

/// Which page a wrong code goes back to.
enum Retry<'a> {
    Verify(&'static str),
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
    step.gate.mfa_failures += 1;
    if step.gate.mfa_failures >= MAX_FAILURES {
        // The claimed interaction stays consumed: this sign-in cannot go on.
        log(
            state,
            ctx,
            &step,
            Outcome::Failure(
                STRONG_AUTH_FAILED,
                "Authentication failed during strong authentication request.",
            ),
            serde_json::json!({"mfaFailures": step.gate.mfa_failures}),
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
                error_code: STRONG_AUTH_FAILED,
                oauth: OAuthError::new(
                    ErrorCode::AccessDenied,
                    "Authentication failed during strong authentication request.",
                ),
            },
        ));
    }
    let id = resume(state, &step).await?;
    Ok(match retry {
        Retry::Verify(msg) => verify_page(state, &id, csrf, &step.user, Some(msg)),
        Retry::Enrol(method) => enrol_page(
            state,
            &id,
            csrf,
            &step.user,
            method,
            Some(
                "That code didn't match. Check the setup key in your app and enter the code it shows now.",
            ),
        ),
    })
}

/// MFA done: on to the gate.
async fn done(state: &AppState, mut step: Step) -> Result<String, PageError> {
    mark_done(&mut step.gate);
    resume(state, &step).await
}

fn verify_page(
    state: &AppState,
    interaction: &str,
    csrf: &str,
    user: &User,
    error: Option<&str>,
) -> Response {
    html(&pages::MfaVerify {
        tenant_name: &state.config.display_name,
        interaction,
        csrf_token: csrf,
        email: &user.email,
        error,
    })
}

fn enrol_page(
    state: &AppState,
    interaction: &str,
    csrf: &str,
    user: &User,
    method: &TotpMethod,
    error: Option<&str>,
) -> Response {
    html(&pages::MfaEnrol {
        tenant_name: &state.config.display_name,
        interaction,
        csrf_token: csrf,
        email: &user.email,
        secret: &grouped(&method.secret),
        otpauth_uri: &otpauth_uri(&state.config.display_name, &user.email, &method.secret),
        error,
    })
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
        return Ok((
            jar,
            verify_page(state, interaction, &csrf, &step.user, None),
        )
            .into_response());
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
    let page = enrol_page(state, interaction, &csrf, &step.user, &method, None);
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
        wrong_code(&state, &ctx, &f.csrf_token, step, Retry::Verify(msg)).await
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
            tracing::info!(correlation_id = %step.pending.correlation_id, user = %step.user.id, "recovery code used");
            let id = done(&state, step).await?;
            return Ok(Redirect::to(&continue_url(&id)).into_response());
        }
        let msg = "That recovery code didn't work. Each code can be used only once.";
        wrong_code(&state, &ctx, &f.csrf_token, step, Retry::Verify(msg)).await
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
            Some(time_step) => state.store.confirm_totp(&method.id, time_step, now).await?,
            None => false,
        };
    if !confirmed {
        return wrong_code(state, ctx, &f.csrf_token, step, Retry::Enrol(&method)).await;
    }
    let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| new_recovery_code()).collect();
    let hashes: Vec<String> = codes
        .iter()
        .map(|c| token_hash(&normalize_recovery_code(c)))
        .collect();
    state
        .store
        .replace_recovery_codes(&step.user.id, &hashes, now)
        .await?;
    tracing::info!(correlation_id = %step.pending.correlation_id, user = %step.user.id, "authenticator app registered");
    let id = done(state, step).await?;
    Ok(html(&pages::MfaRecoveryCodes {
        tenant_name: &state.config.display_name,
        codes: &codes,
        interaction: &id,
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B's SHA-1 key, ASCII "12345678901234567890", in base32.
    const RFC_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    #[test]
    fn rfc6238_sha1_vectors() {
        // Appendix B lists 8 digits; 6 digits are the last six.
        assert_eq!(verify_totp(RFC_SECRET, "287082", 59), Some(1));
        assert_eq!(
            verify_totp(RFC_SECRET, "081804", 1_111_111_109),
            Some(1_111_111_109 / 30)
        );
        assert_eq!(
            verify_totp(RFC_SECRET, "050471", 1_111_111_111),
            Some(1_111_111_111 / 30)
        );
        assert_eq!(verify_totp(RFC_SECRET, "287 082", 59), Some(1), "spaces");
    }

    #[test]
    fn one_step_of_skew_either_way() {
        // "287082" is step 1 (t = 30..59).
        assert_eq!(verify_totp(RFC_SECRET, "287082", 30), Some(1));
        assert_eq!(
            verify_totp(RFC_SECRET, "287082", 89),
            Some(1),
            "a step late"
        );
        assert_eq!(
            verify_totp(RFC_SECRET, "287082", 0),
            Some(1),
            "a step early"
        );
        assert_eq!(
            verify_totp(RFC_SECRET, "287082", 90),
            None,
            "two steps late"
        );
        let t: i64 = 1_111_111_109;
        let step = Some(1_111_111_109 / 30);
        assert_eq!(verify_totp(RFC_SECRET, "081804", t + 30), step);
        assert_eq!(verify_totp(RFC_SECRET, "081804", t - 30), step);
        assert_eq!(verify_totp(RFC_SECRET, "081804", t + 60), None);
        assert_eq!(verify_totp(RFC_SECRET, "081804", t - 60), None);
    }

    #[test]
    fn wrong_and_malformed_codes() {
        assert_eq!(verify_totp(RFC_SECRET, "287083", 59), None);
        assert_eq!(verify_totp(RFC_SECRET, "94287082", 59), None, "8 digits");
        assert_eq!(verify_totp(RFC_SECRET, "28708", 59), None);
        assert_eq!(verify_totp(RFC_SECRET, "+87082", 59), None);
        assert_eq!(verify_totp(RFC_SECRET, "", 59), None);
        assert_eq!(verify_totp(RFC_SECRET, "287082", -1), None);
        assert_eq!(verify_totp("not base32!", "287082", 59), None);
        assert_eq!(verify_totp("GEZDGNBV", "287082", 59), None, "key too short");
    }

    #[test]
    fn new_secrets_are_160_bit_and_verify() {
        let s = new_secret();
        assert_ne!(s, new_secret());
        assert_eq!(Secret::try_from_base32(&s).unwrap().as_bytes().len(), 20);
        let code = totp(&s).unwrap().generate(1_000_000).to_string();
        assert_eq!(verify_totp(&s, &code, 1_000_000), Some(1_000_000 / 30));
        assert_eq!(grouped("ABCDEFGHIJ"), "ABCD EFGH IJ");
    }

    #[test]
    fn otpauth_uri_names_issuer_and_account() {
        assert_eq!(
            otpauth_uri("Contoso Home", "alice@contoso.example", RFC_SECRET),
            "otpauth://totp/Contoso%20Home:alice%40contoso.example?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Contoso%20Home&algorithm=SHA1&digits=6&period=30"
        );
        assert!(otpauth_uri("A:B&c", "x", "S").starts_with("otpauth://totp/A%3AB%26c:x?"));
    }

    #[test]
    fn recovery_codes_are_random_and_normalized() {
        let c = new_recovery_code();
        assert_eq!(c.len(), 19);
        assert_eq!(c.matches('-').count(), 3);
        assert_ne!(c, new_recovery_code());
        let n = normalize_recovery_code(&c);
        assert_eq!(n.len(), RECOVERY_LEN);
        assert!(n.bytes().all(|b| RECOVERY_ALPHABET.contains(&b)));
        assert_eq!(
            normalize_recovery_code(&format!(" {} ", c.to_uppercase())),
            n
        );
    }

    #[test]
    fn mark_done_adds_rfc8176_values_once() {
        let mut g = Gate {
            amr: vec!["pwd".into(), "mfa".into()],
            ..Gate::default()
        };
        mark_done(&mut g);
        mark_done(&mut g);
        assert!(g.mfa_done);
        assert_eq!(g.amr, ["pwd", "mfa", "otp"]);
    }
}
