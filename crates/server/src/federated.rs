//! Guest sign-in by federation (DESIGN.md §4): home realm discovery sends the browser to the
//! partner (the guest's home tenant); the partner's redirect comes back to
//! `/federation/callback`, where the response is verified, the guest is found (or their
//! invitation redeemed), and the sign-in continues as any other. Everything that goes wrong
//! fails closed: a page in plain words, the OAuth error for the app, a sign-in log row, and no
//! other write.

use std::sync::Arc;

use crate::access;
use crate::authorize::{Gate, Pending};
use crate::refusal::{self, Refusal};
use crate::secrets::{ct_eq, token_hash};
use crate::signin_log::{self, Entry, Outcome};
use crate::state::{AppState, Partner};
use crate::web::{Ctx, PageError};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use federation::{CallbackParams, FederationError, FlowSecrets, HomeIdentity, RiskClaimReading};
use protocol::{ErrorCode, OAuthError};
use risk::{TokenIssuerFacts, UserRiskClaim};
use serde::{Deserialize, Serialize};
use signin::codes;
use store::{
    Consumption, Interaction, InvitationState, PartnerProfile, StoreError, User, UserStatus,
    UserType,
};

/// How many verified ID tokens of a partner are learned from before its claim set is judged:
/// a single token cannot tell what the partner always sends from what that user's token had.
pub const CLAIM_PROFILE_LEARNING_TOKENS: i64 = 3;

/// OpenID Connect's standard user claims (Core §5.1): present or not depending on what the home
/// knows about each user (a user without a family name), so their absence or presence says
/// nothing about the issuer and they are left out of the claim comparison.
const PER_USER_CLAIMS: &[&str] = &[
    "name",
    "given_name",
    "family_name",
    "middle_name",
    "nickname",
    "preferred_username",
    "profile",
    "picture",
    "website",
    "email",
    "email_verified",
    "gender",
    "birthdate",
    "zoneinfo",
    "locale",
    "phone_number",
    "phone_number_verified",
    "address",
    "updated_at",
];

/// What the resource remembers between sending the browser to the partner and its return,
/// stored under the hash of `state` and consumed once.
#[derive(Debug, Serialize, Deserialize)]
struct Flow {
    /// The resource's pending sign-in page id (deleted when the sign-in completes).
    interaction: String,
    pending: Pending,
    partner: String,
    /// The address the user typed (what home realm discovery routed on).
    email: String,
    secrets: FlowSecrets,
    /// Hash of this browser's CSRF cookie: the callback must come back to the same browser.
    binding: String,
    /// When the browser was sent to the partner: with `prompt=login`, the home must have
    /// authenticated the user after this.
    #[serde(default)]
    started_at: i64,
}

/// What a guest session records about the federated sign-in (the session's `federation_json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GuestSession {
    /// The partner the guest came through.
    pub partner: String,
    /// The home's issuer (`idp`).
    pub idp: String,
    /// The home's `amr`.
    pub home_amr: Vec<String>,
    /// The home's user-risk claim when the partner is trusted for it.
    pub user_risk: Option<UserRiskClaim>,
    /// Whether the partner's risk was believed.
    pub user_risk_trusted: bool,
    /// When the home authenticated the user (its `auth_time`, else its token's `iat`): the
    /// guest's session, and so `max_age` and the guest's ID tokens here, go by it.
    #[serde(default)]
    pub home_auth_time: Option<i64>,
    /// Whether the guest did MFA here (TOTP at this tenant) in this session.
    #[serde(default)]
    pub mfa_here: bool,
    /// The partner's ID token of this sign-in next to the partner's usual, for
    /// `tokenIssuerAnomaly`. Only for the sign-in that verified the token: a session does not
    /// keep it (single sign-on presents no partner token).
    #[serde(default)]
    pub token: Option<TokenIssuerFacts>,
}

fn flow_key(state_param: &str) -> String {
    format!("fed.{}", token_hash(state_param))
}

/// Send the browser to `partner` for `email` (home realm discovery found it).
pub async fn start(
    state: &AppState,
    ctx: &Ctx,
    interaction: &str,
    pending: Pending,
    partner: Arc<Partner>,
    email: &str,
    csrf: &str,
) -> Response {
    let log = |outcome, details| {
        let entry = Entry {
            correlation_id: &pending.correlation_id,
            app_id: Some(&pending.request.client_id),
            upn: Some(email),
            guest_of: Some(&partner.config.id),
            details,
            ..Entry::default()
        };
        signin_log::write(state, ctx, entry, outcome)
    };
    if !partner.config.inbound_enabled {
        log(
            Outcome::Failure(
                codes::BLOCKED_BY_INBOUND_POLICY,
                "Blocked by the inbound cross-tenant access policy.",
            ),
            serde_json::json!({}),
        )
        .await;
        return refuse(state, &pending, inbound_disabled(&partner));
    }
    let request = &pending.request;
    let reauthentication = federation::Reauthentication {
        login: request.prompt.login || request.prompt.select_account,
        max_age: request.max_age,
        acr_values: request
            .acr_values
            .as_deref()
            .map(|v| v.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
    };
    let redirect = match partner
        .upstream
        .authorization_redirect(Some(email), &pending.correlation_id, &reauthentication)
        .await
    {
        Ok(r) => r,
        Err(e) => {
            log(
                Outcome::Failure(failure_code(&e), failure_reason(&e)),
                serde_json::json!({"federation": e.to_string()}),
            )
            .await;
            return refuse(state, &pending, federation_refusal(&partner, &e));
        }
    };
    let now = state.now();
    let flow = Flow {
        interaction: interaction.to_owned(),
        pending,
        partner: partner.config.id.clone(),
        email: email.to_owned(),
        secrets: redirect.secrets,
        binding: token_hash(csrf),
        started_at: now,
    };
    let json = match serde_json::to_string(&flow) {
        Ok(j) => j,
        Err(e) => return PageError::internal(e.to_string()).render(state, ctx),
    };
    let stored = state
        .store
        .create_interaction(&Interaction {
            id: flow_key(&redirect.state),
            request_json: json,
            created_at: now,
            expires_at: now + state.config.tokens.sign_in_request,
        })
        .await;
    if let Err(e) = stored {
        return PageError::from(e).render(state, ctx);
    }
    Redirect::to(&redirect.url).into_response()
}

/// `GET /federation/callback`: the partner's authorization response.
pub async fn callback(
    State(state): State<AppState>,
    ctx: Ctx,
    jar: CookieJar,
    Query(params): Query<CallbackParams>,
) -> Response {
    let Some(state_param) = params
        .state
        .as_deref()
        .filter(|s| !s.is_empty() && s.len() <= 128)
    else {
        return stale_callback(&state, &ctx, "the response carries no state").await;
    };
    let now = state.now();
    let flow: Flow = match state
        .store
        .consume_interaction(&flow_key(state_param), now)
        .await
    {
        Ok(Consumption::Consumed(i)) => match serde_json::from_str(&i.request_json) {
            Ok(f) => f,
            Err(e) => {
                return PageError::internal(format!("federation flow unreadable: {e}"))
                    .render(&state, &ctx);
            }
        },
        Ok(Consumption::AlreadyConsumed(i)) => {
            let flow: Option<Flow> = serde_json::from_str(&i.request_json).ok();
            return replayed(&state, &ctx, flow).await;
        }
        Ok(Consumption::NotFound) => {
            return stale_callback(&state, &ctx, "unknown or expired state").await;
        }
        Err(e) => return PageError::from(e).render(&state, &ctx),
    };
    let Some(partner) = state.partner(&flow.partner) else {
        return PageError::expired_request().render(&state, &ctx);
    };
    let fail = |code: u32, reason: &'static str, details: serde_json::Value, r: Refusal| {
        let flow = &flow;
        let state = &state;
        let ctx = &ctx;
        let partner_id = partner.config.id.clone();
        async move {
            let entry = Entry {
                correlation_id: &flow.pending.correlation_id,
                app_id: Some(&flow.pending.request.client_id),
                upn: Some(&flow.email),
                guest_of: Some(&partner_id),
                details,
                ..Entry::default()
            };
            signin_log::write(state, ctx, entry, Outcome::Failure(code, reason)).await;
            refuse(state, &flow.pending, r)
        }
    };
    let bound = jar
        .get(&state.cookies.csrf)
        .is_some_and(|c| ct_eq(token_hash(c.value()).as_bytes(), flow.binding.as_bytes()));
    if !bound {
        return fail(
            codes::INVALID_FEDERATION_RESPONSE,
            "The sign-in response came back to a different browser (state mismatch).",
            serde_json::json!({}),
            Refusal {
                title: "This sign-in could not be verified",
                message: "The answer from your home organization did not come back to the browser that started the sign-in.".into(),
                explanation: Some("Start signing in again from the app.".into()),
                home_link: None,
                error_code: codes::INVALID_FEDERATION_RESPONSE,
                oauth: OAuthError::new(ErrorCode::AccessDenied, "The federated sign-in response does not belong to this browser."),
            },
        )
        .await;
    }
    if !partner.config.inbound_enabled {
        return fail(
            codes::BLOCKED_BY_INBOUND_POLICY,
            "Blocked by the inbound cross-tenant access policy.",
            serde_json::json!({}),
            inbound_disabled(&partner),
        )
        .await;
    }
    let home = match partner.upstream.complete(&params, &flow.secrets, now).await {
        Ok(h) => h,
        Err(e) => {
            return fail(
                failure_code(&e),
                failure_reason(&e),
                serde_json::json!({"federation": e.to_string()}),
                federation_refusal(&partner, &e),
            )
            .await;
        }
    };
    // What the app asked of the authentication was forwarded; the home's answer must meet it.
    if let Err(e) = protocol::authorize::check_remote_auth_time(
        &flow.pending.request,
        home.auth_time,
        flow.started_at,
        now,
    ) {
        let r = Refusal {
            title: "You need to sign in again",
            message: format!(
                "The app asked for a fresh sign-in, and {} did not confirm one.",
                partner.config.display_name
            ),
            explanation: Some(format!(
                "Start again from the app and enter your password at {}.",
                partner.config.display_name
            )),
            home_link: None,
            error_code: codes::REAUTHENTICATION_REQUIRED,
            oauth: e.clone(),
        };
        return fail(
            codes::REAUTHENTICATION_REQUIRED,
            "The home tenant's authentication does not satisfy the app's prompt=login or max_age.",
            serde_json::json!({"federation": e.description, "homeAuthTime": home.auth_time}),
            r,
        )
        .await;
    }
    // The token verified: learn from it, and judge it against the profile as it was before.
    let profile = match learn_claims(&state, &partner, &home.token.claim_names, now).await {
        Ok(p) => p,
        Err(e) => return PageError::from(e).render(&state, &ctx),
    };
    let token = judged_token(&home.token, &profile);
    let user_risk = match (&home.user_risk, partner.config.trust_user_risk) {
        (RiskClaimReading::Present(c), true) => Some(*c),
        (reading, true) if partner.config.require_user_risk_claim => {
            let why = match reading {
                RiskClaimReading::Malformed(why) => why.clone(),
                _ => format!("claim {:?} is missing", partner.config.claim_mapping.claim),
            };
            return fail(
                codes::INVALID_HOME_TOKEN,
                "The home tenant's token has no readable user risk claim, which this tenant requires.",
                serde_json::json!({"federation": why}),
                Refusal {
                    title: "Your organization's sign-in could not be accepted",
                    message: format!("{} did not say whether your account is at risk, and this organization requires it.", partner.config.display_name),
                    explanation: Some("Contact the administrator of this organization.".into()),
                    home_link: None,
                    error_code: codes::INVALID_HOME_TOKEN,
                    oauth: OAuthError::new(ErrorCode::AccessDenied, "The home tenant's ID token carries no valid user_risk claim."),
                },
            )
            .await;
        }
        _ => None,
    };
    let guest = match find_guest(&state, &partner, &home).await {
        Ok(g) => g,
        Err(GuestRefusal::Store(e)) => return PageError::from(e).render(&state, &ctx),
        Err(GuestRefusal::Refused(reason, r)) => {
            return fail(
                r.error_code,
                reason,
                serde_json::json!({"homeSubject": home.subject}),
                *r,
            )
            .await;
        }
        Err(GuestRefusal::Disabled) => {
            let r = Refusal {
                title: "Your guest account is disabled",
                message: format!(
                    "Your guest access to {} has been disabled.",
                    state.config.display_name
                ),
                explanation: Some("Contact the administrator of this organization.".into()),
                home_link: None,
                error_code: codes::ACCOUNT_DISABLED,
                oauth: OAuthError::new(ErrorCode::AccessDenied, "The guest account is disabled."),
            };
            return fail(
                codes::ACCOUNT_DISABLED,
                "User account is disabled.",
                serde_json::json!({}),
                r,
            )
            .await;
        }
    };
    let guest = match refresh_profile(&state, guest, &home, now).await {
        Ok(g) => g,
        Err(e) => return PageError::from(e).render(&state, &ctx),
    };
    // The claim this sign-in brought is what the guest's refreshes are judged with until the
    // next one: kept on the guest (written only when it changed).
    let claim_json = match &user_risk {
        Some(c) => match serde_json::to_string(c) {
            Ok(j) => Some(j),
            Err(e) => return PageError::internal(e.to_string()).render(&state, &ctx),
        },
        None => None,
    };
    if guest.home_user_risk != claim_json
        && let Err(e) = state
            .store
            .set_home_user_risk(&guest.id, claim_json.as_deref())
            .await
    {
        return PageError::from(e).render(&state, &ctx);
    }
    let amr = if home.amr.is_empty() {
        vec!["fed".to_owned()]
    } else {
        home.amr.clone()
    };
    let gate = Gate {
        user_id: guest.id.clone(),
        amr,
        guest: Some(GuestSession {
            partner: partner.config.id.clone(),
            idp: home.issuer.clone(),
            home_amr: home.amr.clone(),
            user_risk,
            user_risk_trusted: partner.config.trust_user_risk,
            home_auth_time: Some(home.auth_time.unwrap_or(home.issued_at)),
            mfa_here: false,
            token: Some(token),
        }),
        ..Gate::default()
    };
    access::judge(
        state,
        ctx,
        jar,
        &flow.interaction,
        flow.pending,
        gate,
        guest,
    )
    .await
}

/// The token's facts with the claims the partner's profile can judge: once the profile is
/// learned, the claims the partner always sent (`usual_claim_names`) against this token's claims
/// that are either among them or never seen from this partner before. Claims the partner sends
/// only sometimes, and per-user claims, are left out of both, so only a claim the partner always
/// sent going missing, or one it never sent appearing, is a deviation.
fn judged_token(token: &TokenIssuerFacts, profile: &PartnerProfile) -> TokenIssuerFacts {
    let judged = |c: &&String| !PER_USER_CLAIMS.contains(&c.as_str());
    if profile.tokens_seen < CLAIM_PROFILE_LEARNING_TOKENS {
        return TokenIssuerFacts {
            usual_claim_names: Vec::new(),
            ..token.clone()
        };
    }
    let usual: Vec<String> = profile.always.iter().filter(judged).cloned().collect();
    let claim_names = token
        .claim_names
        .iter()
        .filter(judged)
        .filter(|c| usual.contains(c) || !profile.seen.contains(c))
        .cloned()
        .collect();
    TokenIssuerFacts {
        claim_names,
        usual_claim_names: usual,
        ..token.clone()
    }
}

/// The partner's claim profile before this token, updated with it. Once learned, a token whose
/// claims are all known and include every usual one changes nothing: it is judged against the
/// cached profile and nothing is written (a write per sign-in would cost a database write turn).
async fn learn_claims(
    state: &AppState,
    partner: &Partner,
    claim_names: &[String],
    now: i64,
) -> Result<store::PartnerProfile, StoreError> {
    let cached = partner
        .profile
        .lock()
        .map(|p| p.clone())
        .unwrap_or_else(|p| p.into_inner().clone());
    if let Some(p) = cached
        && p.tokens_seen >= CLAIM_PROFILE_LEARNING_TOKENS
        && p.always.iter().all(|c| claim_names.contains(c))
        && claim_names.iter().all(|c| p.seen.contains(c))
    {
        return Ok(p);
    }
    let before = state
        .store
        .record_partner_token(&partner.config.id, claim_names, now)
        .await?;
    let after = state.store.partner_profile(&partner.config.id).await?;
    match partner.profile.lock() {
        Ok(mut p) => *p = Some(after),
        Err(poisoned) => *poisoned.into_inner() = Some(after),
    }
    Ok(before)
}

enum GuestRefusal {
    Store(StoreError),
    Disabled,
    Refused(&'static str, Box<Refusal>),
}

impl From<StoreError> for GuestRefusal {
    fn from(e: StoreError) -> Self {
        GuestRefusal::Store(e)
    }
}

/// The guest for this home identity: bound by (partner, home `sub`) once their invitation was
/// redeemed, never matched on email alone after that.
async fn find_guest(
    state: &AppState,
    partner: &Partner,
    home: &HomeIdentity,
) -> Result<User, GuestRefusal> {
    let partner_id = &partner.config.id;
    if let Some(g) = state
        .store
        .guest_by_home_subject(partner_id, &home.subject)
        .await?
    {
        return active(g);
    }
    let not_invited = |reason: &'static str, detail: String| {
        GuestRefusal::Refused(
            reason,
            Box::new(Refusal {
                title: "You don't have access to this organization",
                message: format!(
                    "Your account from {} has not been invited to {}.",
                    partner.config.display_name, state.config.display_name
                ),
                explanation: Some(detail),
                home_link: None,
                error_code: codes::USER_NOT_INVITED,
                oauth: OAuthError::new(
                    ErrorCode::AccessDenied,
                    "The user has not been invited to this tenant.",
                ),
            }),
        )
    };
    let ask = "Ask an administrator of this organization to invite you.".to_owned();
    let Some(email) = home.email.as_deref() else {
        return Err(not_invited(
            "The home tenant sent no email address to match an invitation.",
            ask,
        ));
    };
    let Some(user) = state.store.user_by_email(email).await? else {
        return Err(not_invited("The user has not been invited.", ask));
    };
    let pending_guest = user.user_type == UserType::Guest
        && user.invitation_state == Some(InvitationState::PendingAcceptance);
    if !pending_guest {
        // A member with this address, or a guest already bound to another home account.
        return Err(not_invited(
            "No open invitation for this account (the address belongs to another account here).",
            ask,
        ));
    }
    if user.partner_id.as_deref() != Some(partner_id.as_str()) {
        return Err(not_invited(
            "The invitation was issued for another partner organization.",
            format!(
                "Your invitation is for an account at another organization, not {}.",
                partner.config.display_name
            ),
        ));
    }
    // An invitation is bound for good to the home account that redeems it, so the address must
    // be the home's word, not the user's: a home that lets people set their own email would
    // otherwise let anyone claim anyone's invitation.
    if !home.email_verified && !partner.config.emails_verified {
        return Err(GuestRefusal::Refused(
            "The home tenant did not verify the email address (email_verified is not true).",
            Box::new(Refusal {
                title: "Your email address is not verified",
                message: format!(
                    "{} did not confirm that {} is your address, so your invitation to {} \
                     cannot be accepted with this account.",
                    partner.config.display_name, email, state.config.display_name
                ),
                explanation: Some(format!(
                    "Verify your email address at {}, then sign in again.",
                    partner.config.display_name
                )),
                home_link: None,
                error_code: codes::UNVERIFIED_EMAIL,
                oauth: OAuthError::new(
                    ErrorCode::AccessDenied,
                    "The home tenant did not verify the user's email address.",
                ),
            }),
        ));
    }
    // A disabled guest is refused before the invitation is redeemed: nothing is written.
    let user = active(user)?;
    match state
        .store
        .redeem_invitation(&user.id, partner_id, &home.subject, state.now())
        .await
    {
        Ok(u) => Ok(u),
        Err(StoreError::Conflict(_)) => Err(not_invited(
            "The invitation was already redeemed by another account.",
            ask,
        )),
        Err(e) => Err(e.into()),
    }
}

fn active(user: User) -> Result<User, GuestRefusal> {
    if user.status == UserStatus::Active {
        Ok(user)
    } else {
        Err(GuestRefusal::Disabled)
    }
}

/// The guest's name and address follow the home's token at each sign-in.
async fn refresh_profile(
    state: &AppState,
    guest: User,
    home: &HomeIdentity,
    now: i64,
) -> Result<User, StoreError> {
    let email = home.email.clone().unwrap_or_else(|| guest.email.clone());
    let name = home
        .name
        .clone()
        .unwrap_or_else(|| guest.display_name.clone());
    let unchanged = email == guest.email
        && name == guest.display_name
        && home.given_name == guest.given_name
        && home.family_name == guest.family_name;
    if unchanged {
        return Ok(guest);
    }
    match state
        .store
        .refresh_guest_profile(
            &guest.id,
            &email,
            &name,
            home.given_name.as_deref(),
            home.family_name.as_deref(),
            now,
        )
        .await
    {
        Ok(()) => {}
        // Another account here already uses the new address: keep the old one.
        Err(StoreError::Conflict(_)) => {
            tracing::warn!(guest = %guest.id, "home changed the guest's email to one taken here; profile not refreshed");
            return Ok(guest);
        }
        Err(e) => return Err(e),
    }
    Ok(state.store.user_by_id(&guest.id).await?.unwrap_or(guest))
}

/// The same `state` came back a second time: someone replays the partner's response.
async fn replayed(state: &AppState, ctx: &Ctx, flow: Option<Flow>) -> Response {
    let Some(flow) = flow else {
        return stale_callback(state, ctx, "state replayed").await;
    };
    let entry = Entry {
        correlation_id: &flow.pending.correlation_id,
        app_id: Some(&flow.pending.request.client_id),
        upn: Some(&flow.email),
        guest_of: Some(&flow.partner),
        ..Entry::default()
    };
    let reason = "The sign-in response was replayed (state already used).";
    signin_log::write(
        state,
        ctx,
        entry,
        Outcome::Failure(codes::INVALID_FEDERATION_RESPONSE, reason),
    )
    .await;
    refuse(
        state,
        &flow.pending,
        Refusal {
            title: "This sign-in link was already used",
            message: "The answer from your home organization has already been used once.".into(),
            explanation: Some("Start signing in again from the app.".into()),
            home_link: None,
            error_code: codes::INVALID_FEDERATION_RESPONSE,
            oauth: OAuthError::new(
                ErrorCode::AccessDenied,
                "The federated sign-in response was already used.",
            ),
        },
    )
}

/// A callback that matches no sign-in in progress: there is no app to tell, only the log.
async fn stale_callback(state: &AppState, ctx: &Ctx, why: &'static str) -> Response {
    let entry = Entry {
        correlation_id: &ctx.correlation_id,
        details: serde_json::json!({"federation": why}),
        ..Entry::default()
    };
    signin_log::write(
        state,
        ctx,
        entry,
        Outcome::Failure(
            codes::INVALID_FEDERATION_RESPONSE,
            "The sign-in response matches no sign-in in progress.",
        ),
    )
    .await;
    PageError::expired_request().render(state, ctx)
}

fn refuse(state: &AppState, pending: &Pending, r: Refusal) -> Response {
    refusal::render(state, &pending.correlation_id, Some(&pending.request), r)
}

fn inbound_disabled(partner: &Partner) -> Refusal {
    Refusal {
        title: "Sign-in from your organization is not allowed",
        message: format!(
            "This organization does not accept sign-ins from {}.",
            partner.config.display_name
        ),
        explanation: Some("Contact the administrator of this organization.".into()),
        home_link: None,
        error_code: codes::BLOCKED_BY_INBOUND_POLICY,
        oauth: OAuthError::new(
            ErrorCode::AccessDenied,
            "Sign-ins from the user's home tenant are blocked by the inbound cross-tenant access policy.",
        ),
    }
}

/// Sign-in log codes for federation failures.
fn failure_code(e: &FederationError) -> u32 {
    match e {
        FederationError::Unreachable(_) => codes::HOME_UNREACHABLE,
        FederationError::TokenRefused(federation::TokenRefusal::UnknownIssuer, _) => {
            codes::UNKNOWN_HOME_ISSUER
        }
        _ => codes::INVALID_HOME_TOKEN,
    }
}

fn failure_reason(e: &FederationError) -> &'static str {
    use federation::TokenRefusal as T;
    match e {
        FederationError::Unreachable(_) => "The home tenant could not be reached in time.",
        FederationError::BadPartner(_) => "The home tenant's answer could not be used.",
        FederationError::HomeError { .. } => "The home tenant returned an error.",
        FederationError::IssuerMismatch(_) => {
            "The sign-in response names the wrong issuer (RFC 9207)."
        }
        FederationError::TokenRefused(t, _) => match t {
            T::UnknownKey | T::BadSignature => "The home tenant's ID token signature is invalid.",
            T::WrongAudience => "The home tenant's ID token is for another audience.",
            T::UnknownIssuer => "The home tenant's ID token comes from an unknown issuer.",
            T::Expired => "The home tenant's ID token has expired.",
            T::NonceMismatch => "The home tenant's ID token nonce does not match.",
            T::Invalid => "The home tenant's ID token is invalid.",
        },
    }
}

fn federation_refusal(partner: &Partner, e: &FederationError) -> Refusal {
    let home = &partner.config.display_name;
    let code = if e.is_transient() {
        ErrorCode::TemporarilyUnavailable
    } else {
        ErrorCode::AccessDenied
    };
    let (title, message, description) = match e {
        FederationError::Unreachable(_) => (
            "Your organization is not responding",
            format!("{home} could not be reached to sign you in. Try again in a few minutes."),
            "The user's home tenant could not be reached.".to_owned(),
        ),
        FederationError::HomeError { error, .. } => (
            "Your organization did not sign you in",
            format!("{home} answered the sign-in with an error."),
            format!("The user's home tenant returned {error}."),
        ),
        _ => (
            "Your organization's sign-in could not be accepted",
            format!("The answer from {home} could not be verified, so you were not signed in."),
            "The home tenant's response could not be verified.".to_owned(),
        ),
    };
    let oauth = OAuthError::new(code, description);
    Refusal {
        title,
        message,
        explanation: Some(failure_reason(e).to_owned()),
        home_link: None,
        error_code: failure_code(e),
        oauth,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use time::OffsetDateTime;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| (*s).to_owned()).collect()
    }

    fn token(claims: &[&str]) -> TokenIssuerFacts {
        TokenIssuerFacts {
            issuer: "https://home.test".into(),
            key_id: Some("k".into()),
            key_first_seen: OffsetDateTime::UNIX_EPOCH,
            previous_key_vanished: false,
            issued_at: OffsetDateTime::UNIX_EPOCH,
            auth_time: None,
            claim_names: names(claims),
            usual_claim_names: Vec::new(),
        }
    }

    fn profile(tokens_seen: i64, always: &[&str], seen: &[&str]) -> PartnerProfile {
        PartnerProfile {
            partner_id: "contoso".into(),
            tokens_seen,
            always: names(always),
            seen: names(seen),
            updated_at: 0,
        }
    }

    #[test]
    fn claims_are_not_judged_while_learning() {
        let t = judged_token(
            &token(&["iss", "x"]),
            &profile(2, &["iss", "amr"], &["iss", "amr"]),
        );
        assert!(t.usual_claim_names.is_empty());
        assert_eq!(t.claim_names, names(&["iss", "x"]));
    }

    #[test]
    fn only_always_and_never_seen_claims_are_judged() {
        let p = profile(
            5,
            &["amr", "email", "iss", "user_risk"],
            &["amr", "email", "family_name", "iss", "sid", "user_risk"],
        );
        // sid is sometimes sent, family_name is per user: neither counts; groups is new.
        let t = judged_token(
            &token(&["family_name", "groups", "iss", "sid", "user_risk"]),
            &p,
        );
        assert_eq!(t.usual_claim_names, names(&["amr", "iss", "user_risk"]));
        assert_eq!(t.claim_names, names(&["groups", "iss", "user_risk"]));
    }
}
