//! Partner trust: the judgement of a home tenant's answer once its ID token has verified
//! (`federation::Upstream` checks the signature, `iss`, `aud`, expiry, nonce). Whether it meets
//! what the app asked of the authentication, what its `user_risk` claim is worth under the
//! partner's trust settings, which guest it is (an invitation is redeemed only for an address
//! the home vouches for), and the facts the gate judges (`tokenIssuerAnomaly`). Every refusal
//! says why in plain words, with the code people can look up and the OAuth error for the app;
//! nothing is written for a refused answer except the learned claim profile.

use crate::codes;
use crate::refusal::Refusal;
use crate::sign_in::{GuestSession, RiskClaimSeen, SignIn};
use crate::{Directory, Partner};
use federation::{ClaimPresence, FederationError, HomeIdentity, RiskClaimReading};
use protocol::{ErrorCode, OAuthError};
use risk::TokenIssuerFacts;
use std::sync::atomic::Ordering;
use store::{InvitationState, PartnerProfile, StoreError, User, UserStatus, UserType};

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

/// A home's answer refused: the sign-in log's code, reason and details, and the page.
#[derive(Debug)]
pub struct Refused {
    /// `status.errorCode`.
    pub code: u32,
    /// `status.failureReason`.
    pub reason: &'static str,
    /// Why, for the log's details.
    pub details: serde_json::Value,
    /// What the person and the app are told.
    pub refusal: Refusal,
}

/// Why a home's answer was not accepted.
#[derive(Debug)]
pub enum NotAccepted {
    /// Refused, with the reason.
    Refused(Box<Refused>),
    /// The store failed.
    Store(StoreError),
}

impl From<StoreError> for NotAccepted {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

fn refused(
    code: u32,
    reason: &'static str,
    details: serde_json::Value,
    refusal: Refusal,
) -> NotAccepted {
    NotAccepted::Refused(Box::new(Refused {
        code,
        reason,
        details,
        refusal,
    }))
}

/// Accept the verified answer of `partner` for `sign_in` (waiting at the home since
/// `started_at`): the re-authentication the app asked for, the user-risk claim under the
/// partner's trust, the guest (found by home `sub`, or their invitation redeemed), their
/// profile and last home claim kept. Returns the sign-in with the guest authenticated and what
/// the home said, for the gate, and the guest.
///
/// Every sign-in log row of the answer, accepted or refused, says whether the token carried the
/// risk claim the partner's mapping looks for (`homeRiskClaim`).
pub async fn accept(
    dir: &Directory,
    partner: &Partner,
    home: &HomeIdentity,
    sign_in: SignIn,
    started_at: i64,
) -> Result<(SignIn, User), NotAccepted> {
    let seen = RiskClaimSeen::new(&partner.config.claim_mapping, &home.user_risk);
    warn_about_risk_claim(partner, &seen);
    match judge(dir, partner, home, sign_in, started_at, &seen).await {
        Err(NotAccepted::Refused(mut r)) => {
            seen.add_to(&mut r.details);
            Err(NotAccepted::Refused(r))
        }
        accepted => accepted,
    }
}

/// A partner whose tokens lack the mapped risk claim (or carry it in another shape) has its
/// user risk read as absent: with `trust_user_risk` that fails open quietly, the likely cause
/// being a claim mapping that names the wrong claim. Said once per partner and kind: every
/// token of the partner would say it again.
fn warn_about_risk_claim(partner: &Partner, seen: &RiskClaimSeen) {
    let config = &partner.config;
    // Without trust the claim is not read, so its name does not matter.
    if !config.trust_user_risk {
        return;
    }
    let (slot, found) = match (&seen.presence, &seen.problem) {
        (ClaimPresence::Present, _) => return,
        (ClaimPresence::Absent, _) => (0, format!("carries no claim {:?}", seen.claim)),
        (ClaimPresence::Unreadable, why) => (
            1,
            format!(
                "carries claim {:?} in another shape than configured ({})",
                seen.claim,
                why.as_deref().unwrap_or("unreadable")
            ),
        ),
    };
    if partner.risk_claim_warned[slot].swap(true, Ordering::Relaxed) {
        return;
    }
    let outcome = if config.require_user_risk_claim {
        "its guests' sign-ins are refused (require_user_risk_claim)"
    } else {
        "its guests' user risk reads as none"
    };
    tracing::warn!(
        partner = %config.id,
        issuer = %config.issuer,
        claim = %seen.claim,
        "partner {} ({}): an ID token {found}, so {outcome}. The claim mapping may be wrong: set \
         user_risk_claim.claim and user_risk_claim.format to where the partner sends user risk, \
         or have the partner release the claim to this tenant. (Logged once per partner; each \
         sign-in log row has homeRiskClaim.)",
        config.id,
        config.issuer,
    );
}

async fn judge(
    dir: &Directory,
    partner: &Partner,
    home: &HomeIdentity,
    sign_in: SignIn,
    started_at: i64,
    seen: &RiskClaimSeen,
) -> Result<(SignIn, User), NotAccepted> {
    let now = dir.now();
    let config = &partner.config;
    // What the app asked of the authentication was forwarded; the home's answer must meet it.
    if let Err(e) = protocol::authorize::check_remote_auth_time(
        &sign_in.request,
        home.auth_time,
        started_at,
        now,
    ) {
        let r = Refusal {
            title: "You need to sign in again",
            message: format!(
                "The app asked for a fresh sign-in, and {} did not confirm one.",
                config.display_name
            ),
            explanation: Some(format!(
                "Start again from the app and enter your password at {}.",
                config.display_name
            )),
            home_link: None,
            footnote: None,
            error_code: codes::REAUTHENTICATION_REQUIRED,
            oauth: e.clone(),
        };
        return Err(refused(
            codes::REAUTHENTICATION_REQUIRED,
            "The home tenant's authentication does not satisfy the app's prompt=login or max_age.",
            serde_json::json!({"federation": e.description, "homeAuthTime": home.auth_time}),
            r,
        ));
    }
    // The token verified: learn from it, and judge it against the profile as it was before.
    let profile = learn_claims(dir, partner, &home.token.claim_names, now).await?;
    let token = judged_token(&home.token, &profile);
    let user_risk = match (&home.user_risk, config.trust_user_risk) {
        (RiskClaimReading::Present(c), true) => Some(*c),
        (reading, true) if config.require_user_risk_claim => {
            let why = match reading {
                RiskClaimReading::Malformed(why) => why.clone(),
                _ => format!("claim {:?} is missing", config.claim_mapping.claim),
            };
            return Err(refused(
                codes::INVALID_HOME_TOKEN,
                "The home tenant's token has no readable user risk claim, which this tenant requires.",
                serde_json::json!({"federation": why}),
                Refusal {
                    title: "Your organization's sign-in could not be accepted",
                    message: format!(
                        "{} did not say whether your account is at risk, and this organization requires it.",
                        config.display_name
                    ),
                    explanation: Some("Contact the administrator of this organization.".into()),
                    home_link: None,
                    footnote: None,
                    error_code: codes::INVALID_HOME_TOKEN,
                    oauth: OAuthError::new(
                        ErrorCode::AccessDenied,
                        "The home tenant's ID token carries no valid user_risk claim.",
                    ),
                },
            ));
        }
        _ => None,
    };
    let guest = match find_guest(dir, partner, home).await {
        Ok(g) => g,
        Err(GuestRefusal::Store(e)) => return Err(e.into()),
        Err(GuestRefusal::Refused(reason, r)) => {
            return Err(refused(
                r.error_code,
                reason,
                serde_json::json!({"homeSubject": home.subject}),
                *r,
            ));
        }
        Err(GuestRefusal::Disabled) => {
            let r = Refusal {
                title: "Your guest account is disabled",
                message: format!(
                    "Your guest access to {} has been disabled.",
                    dir.config.display_name
                ),
                explanation: Some("Contact the administrator of this organization.".into()),
                home_link: None,
                footnote: None,
                error_code: codes::ACCOUNT_DISABLED,
                oauth: OAuthError::new(ErrorCode::AccessDenied, "The guest account is disabled."),
            };
            return Err(refused(
                codes::ACCOUNT_DISABLED,
                "User account is disabled.",
                serde_json::json!({}),
                r,
            ));
        }
    };
    let guest = refresh_profile(dir, guest, home, now).await?;
    // The claim this sign-in brought is what the guest's refreshes are judged with until the
    // next one: kept on the guest (written only when it changed).
    let claim_json = user_risk
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    if guest.home_user_risk != claim_json {
        dir.store
            .set_home_user_risk(&guest.id, claim_json.as_deref())
            .await?;
    }
    let amr = if home.amr.is_empty() {
        vec!["fed".to_owned()]
    } else {
        home.amr.clone()
    };
    let mut sign_in = sign_in.authenticated(&guest.id, amr);
    sign_in.guest = Some(GuestSession {
        partner: config.id.clone(),
        idp: home.issuer.clone(),
        home_amr: home.amr.clone(),
        user_risk,
        user_risk_trusted: config.trust_user_risk,
        home_auth_time: Some(home.auth_time.unwrap_or(home.issued_at)),
        mfa_here: false,
        token: Some(token),
        risk_claim: Some(seen.clone()),
        home_password_reset_uri: home.password_reset_uri.clone(),
    });
    Ok((sign_in, guest))
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
    dir: &Directory,
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
    let before = dir
        .store
        .record_partner_token(&partner.config.id, claim_names, now)
        .await?;
    let after = dir.store.partner_profile(&partner.config.id).await?;
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
    dir: &Directory,
    partner: &Partner,
    home: &HomeIdentity,
) -> Result<User, GuestRefusal> {
    let partner_id = &partner.config.id;
    if let Some(g) = dir
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
                    partner.config.display_name, dir.config.display_name
                ),
                explanation: Some(detail),
                home_link: None,
                footnote: None,
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
    let Some(user) = dir.store.user_by_email(email).await? else {
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
                    partner.config.display_name, email, dir.config.display_name
                ),
                explanation: Some(format!(
                    "Verify your email address at {}, then sign in again.",
                    partner.config.display_name
                )),
                home_link: None,
                footnote: None,
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
    match dir
        .store
        .redeem_invitation(&user.id, partner_id, &home.subject, dir.now())
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
    dir: &Directory,
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
    match dir
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
    Ok(dir.store.user_by_id(&guest.id).await?.unwrap_or(guest))
}

/// The refusal when the partner's users may not sign in here (inbound B2B disabled).
pub fn inbound_disabled(partner: &Partner) -> Refusal {
    Refusal {
        title: "Sign-in from your organization is not allowed",
        message: format!(
            "This organization does not accept sign-ins from {}.",
            partner.config.display_name
        ),
        explanation: Some("Contact the administrator of this organization.".into()),
        home_link: None,
        footnote: None,
        error_code: codes::BLOCKED_BY_INBOUND_POLICY,
        oauth: OAuthError::new(
            ErrorCode::AccessDenied,
            "Sign-ins from the user's home tenant are blocked by the inbound cross-tenant access policy.",
        ),
    }
}

/// Sign-in log codes for federation failures.
pub fn failure_code(e: &FederationError) -> u32 {
    match e {
        FederationError::Unreachable(_) => codes::HOME_UNREACHABLE,
        FederationError::UntrustedCertificate(..) => codes::HOME_CERTIFICATE_NOT_TRUSTED,
        FederationError::TokenRefused(federation::TokenRefusal::UnknownIssuer, _) => {
            codes::UNKNOWN_HOME_ISSUER
        }
        _ => codes::INVALID_HOME_TOKEN,
    }
}

/// The sign-in log's details for a federation failure: the error, and for an untrusted
/// certificate what was wrong with it (`homeCertificate`: `unknownIssuer`, `expired`,
/// `wrongName`, `other`).
pub fn failure_details(e: &FederationError) -> serde_json::Value {
    let mut details = serde_json::json!({"federation": e.to_string()});
    if let (FederationError::UntrustedCertificate(problem, _), Some(map)) =
        (e, details.as_object_mut())
    {
        map.insert("homeCertificate".into(), problem.kind().into());
    }
    details
}

/// The sign-in log's `failureReason` for a federation failure.
pub fn failure_reason(e: &FederationError) -> &'static str {
    use federation::TokenRefusal as T;
    match e {
        FederationError::Unreachable(_) => "The home tenant could not be reached in time.",
        FederationError::UntrustedCertificate(..) => "Home tenant TLS certificate not trusted.",
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

/// What the guest and the app are told about a federation failure.
pub fn federation_refusal(partner: &Partner, e: &FederationError) -> Refusal {
    let home = &partner.config.display_name;
    let code = if e.is_transient() {
        ErrorCode::TemporarilyUnavailable
    } else {
        ErrorCode::AccessDenied
    };
    let (title, message, description) = match e {
        // Not "not responding": the home answered, with a certificate this tenant does not
        // trust, and trying again will not help until an administrator fixes the trust.
        FederationError::UntrustedCertificate(..) => (
            "Your organization's certificate is not trusted",
            format!(
                "The secure connection to {home} could not be verified, so you were not signed \
                 in. An administrator of this organization needs to fix the trust in {home}'s \
                 certificate; trying again will not help until then."
            ),
            "The user's home tenant presented a TLS certificate that is not trusted.".to_owned(),
        ),
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
        footnote: None,
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
    fn an_untrusted_certificate_is_not_an_outage() {
        let e = FederationError::UntrustedCertificate(
            federation::CertificateProblem::UnknownIssuer,
            "discovery: invalid peer certificate: UnknownIssuer".into(),
        );
        assert!(!e.is_transient(), "the app gets access_denied");
        assert_eq!(failure_code(&e), codes::HOME_CERTIFICATE_NOT_TRUSTED);
        assert_ne!(failure_code(&e), codes::HOME_UNREACHABLE);
        assert!(failure_reason(&e).contains("certificate not trusted"));
        let details = failure_details(&e);
        assert_eq!(details["homeCertificate"], "unknownIssuer");
        assert!(
            details["federation"]
                .as_str()
                .unwrap()
                .contains("UnknownIssuer")
        );
        let down = FederationError::Unreachable("discovery: timed out".into());
        assert_eq!(failure_code(&down), codes::HOME_UNREACHABLE);
        assert!(failure_details(&down).get("homeCertificate").is_none());
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
