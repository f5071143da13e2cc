//! The sign-in gate: one decision for every token. Every sign-in, once the
//! user is known — a password just verified, a partner's ID token just accepted, a session
//! reused for single sign-on, a refresh token presented (a non-interactive sign-in) — is judged
//! here before any session, code or token exists for it:
//!
//! 1. **user risk**: a member's own (this tenant is their home); a guest's is the home's
//!    `user_risk` claim when the partner entry trusts it — the seed: "The user risk for B2B
//!    collaboration users is evaluated at their home directory";
//! 2. **sign-in risk**, in real time, from this tenant's intel and the user's recent sign-ins
//!    here — the seed: "evaluated at the resource directory when they try to access the
//!    resource" — from what belongs to the user ([`Origin`]);
//! 3. **Conditional Access** and the built-in risk policies, evaluated on both;
//! 4. the [`Verdict`]: allow, block (the seed's sentence, nothing created), or a step the user
//!    must take first (MFA here, or a members' secure password change).

use crate::codes;
use crate::config::PartnerConfig;
use crate::refusal::Refusal;
use crate::sign_in::{GuestSession, SignIn};
use crate::signin_log::{self, Entry, Outcome, RiskLog};
use crate::user_risk::{self, UserRiskError};
use crate::{App, Client, Directory};
use policy::{Decision, EvaluationInput, PolicySet, Satisfied, UserFacts};
use protocol::{ErrorCode, OAuthError};
use risk::{
    PastSignIn, RiskDetail, RiskEventType, RiskLevel, RiskState, SignInContext, SignInRisk,
    UserRiskClaim, UserRiskStatus, UserType,
};
use store::{Grant, StoreError, User, UserRiskRecord, UserStatus};
use time::OffsetDateTime;

/// How many of the user's recent successful sign-ins here sign-in risk compares with.
const HISTORY: i64 = 50;

/// The self-service password reset page of a tenant (advertised in its discovery document).
pub const PASSWORD_RESET_PATH: &str = protocol::discovery::paths::PASSWORD_RESET;

/// The gate's decision about one sign-in, once the policies have been read against what was
/// satisfied so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Let the sign-in (or refresh) through.
    Allow,
    /// Refuse it: the code people can look up, and the policies' reason.
    Block {
        /// 53011, 53003 or 50053.
        code: u32,
        /// Why, in the policies' words (for the logs).
        reason: String,
    },
    /// The user must do something first, interactively.
    Step(Step),
}

/// What a held sign-in waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// MFA at this tenant.
    Mfa,
    /// A secure password change (members; MFA done first).
    PasswordChange,
}

/// Where a sign-in comes from, as far as sign-in risk may judge it.
#[derive(Debug, Clone, Copy)]
pub enum Origin<'a> {
    /// The user's own device (a browser, or a public client's refresh): its IP and user agent
    /// are the user's and are judged (IP lists, travel, familiarity, velocity).
    Device {
        /// Client IP.
        ip: std::net::IpAddr,
        /// User agent.
        user_agent: &'a str,
    },
    /// A confidential client's back channel: the IP is its server's, not the user's, so it
    /// never feeds sign-in risk (a web app hosted abroad must not make its users look like
    /// impossible travellers).
    BackChannel,
}

impl<'a> From<Client<'a>> for Origin<'a> {
    fn from(c: Client<'a>) -> Self {
        Origin::Device {
            ip: c.ip,
            user_agent: c.user_agent.unwrap_or(""),
        }
    }
}

/// How a judged sign-in happened, for its log row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// A person at the pages (password, federation, a step done).
    Interactive,
    /// A live session reused for another app.
    SingleSignOn,
    /// A refresh-token grant (`nonInteractiveUser`).
    Refresh,
}

/// What the gate found for one sign-in, and its verdict.
#[derive(Debug, Clone)]
pub struct Assessment {
    /// The user risk the policies saw.
    pub user_risk: RiskLevel,
    /// This sign-in's real-time risk, each detection explained.
    pub sign_in: SignInRisk,
    /// Every policy's result and why.
    pub evaluation: policy::Evaluation<'static>,
    /// The decision.
    pub verdict: Verdict,
}

impl Assessment {
    /// Whether risk (the user's or the sign-in's) played a part: a block then says the seed's
    /// sentence and how to remediate.
    pub fn is_risky(&self) -> bool {
        self.user_risk > RiskLevel::None || self.sign_in.risk_level > RiskLevel::None
    }

    /// The sign-in's own risk state for the log: remediated when MFA was done in it.
    fn sign_in_risk_state(&self, sign_in: &SignIn) -> (RiskState, RiskDetail) {
        if self.sign_in.risk_level > RiskLevel::None && sign_in.mfa_done {
            risk::signin::remediated_by_mfa()
        } else {
            self.sign_in.risk_state()
        }
    }

    fn risk_log(&self, sign_in: &SignIn) -> RiskLog {
        let (risk_state, risk_detail) = self.sign_in_risk_state(sign_in);
        RiskLog {
            risk_level_aggregated: self.user_risk,
            risk_level_during_sign_in: self.sign_in.risk_level,
            risk_state,
            risk_detail,
            risk_event_types: self.sign_in.risk_event_types(),
            risk_detections: self.sign_in.detections.clone(),
            conditional_access_status: self.evaluation.conditional_access_status,
            applied_conditional_access_policies: self
                .evaluation
                .applied_conditional_access_policies
                .clone(),
            location: self.sign_in.facts.clone(),
        }
    }
}

/// User risk, sign-in risk and the policies' verdict for `user` signing in to `app_id` as
/// `sign_in` says so far. Reads the member's risk and the user's recent sign-ins; the rest is
/// pure.
pub async fn assess(
    dir: &Directory,
    origin: Origin<'_>,
    user: &User,
    sign_in: &SignIn,
    app_id: &str,
) -> Result<Assessment, StoreError> {
    assess_with(dir, origin, user, AlreadyRead::Nothing, sign_in, app_id).await
}

/// What the caller has already read of what the gate needs, so the gate does not read it
/// again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlreadyRead {
    /// Nothing: the gate reads what it needs.
    Nothing,
    /// What was read with the user in the same statement: with the session for a single
    /// sign-on ([`store::SessionUser`]), with the refresh token for a refresh
    /// ([`store::RefreshTokenUser`]).
    WithUser {
        /// The member's stored risk (`None`: never set).
        user_risk: Option<UserRiskRecord>,
        /// The version of the user's sign-ins, so their recent sign-ins kept in memory can be
        /// trusted without a read of their own (see `Store::recent_sign_ins`).
        sign_ins_version: i64,
    },
    /// What a password sign-in read with the user ([`store::UserWithRisk`]), its risk as the
    /// checks after the password left it ([`user_risk::after_password_verified`]).
    UserRisk {
        /// The member's current risk.
        status: UserRiskStatus,
        /// The version of the user's sign-ins, read with the user.
        sign_ins_version: i64,
    },
}

/// [`assess`], given what the caller already read.
pub async fn assess_with(
    dir: &Directory,
    origin: Origin<'_>,
    user: &User,
    read: AlreadyRead,
    sign_in: &SignIn,
    app_id: &str,
) -> Result<Assessment, StoreError> {
    let user_risk = match &sign_in.guest {
        Some(g) => UserRiskClaim::effective_level(g.user_risk.as_ref(), g.user_risk_trusted),
        // The change this sign-in just made remediated the risk; the policies (and the log)
        // judge the sign-in on the risk that required it, now satisfied.
        None if sign_in.password_changed => sign_in.user_risk_level,
        None => member_risk_of(dir, &user.id, &read).await?,
    };
    let sign_ins_version = match read {
        AlreadyRead::WithUser {
            sign_ins_version, ..
        }
        | AlreadyRead::UserRisk {
            sign_ins_version, ..
        } => Some(sign_ins_version),
        AlreadyRead::Nothing => None,
    };
    let risk = match origin {
        Origin::Device { ip, user_agent } => {
            sign_in_risk(
                dir,
                ip,
                user_agent,
                (&user.id, sign_ins_version),
                sign_in.guest.as_ref().and_then(|g| g.token.as_ref()),
            )
            .await?
        }
        Origin::BackChannel => SignInRisk::not_evaluated(
            "a confidential client's refresh comes from its server, not the user's device",
        ),
    };
    let mfa_satisfied = mfa_satisfied(dir, sign_in);
    let input = evaluation_input(
        user,
        groups_of(dir, &user.id).await?,
        app_id,
        &risk.facts,
        user_risk,
        risk.risk_level,
        Satisfied {
            mfa: mfa_satisfied,
            password_change: sign_in.password_changed,
        },
    );
    // A partner tenant signing one of our members in as its guest enforces its own policies
    // (as Entra: the resource tenant's Conditional Access applies to B2B access); here the home
    // only authenticates, and its own risk travels in the `user_risk` claim.
    let partner_app = sign_in.guest.is_none()
        && dir
            .app(app_id)
            .await?
            .is_some_and(|a| a.config.partner_tenant);
    let evaluation = if partner_app {
        PolicySet::default().evaluate(&input).into_owned()
    } else {
        dir.protection.policies().set.evaluate(&input).into_owned()
    };
    let verdict = verdict(&evaluation.decision, mfa_satisfied, &risk);
    Ok(Assessment {
        user_risk,
        sign_in: risk,
        evaluation,
        verdict,
    })
}

/// Whether MFA is satisfied for this sign-in: done here, or in its amr; for a guest the home's
/// MFA counts only where the partner entry trusts it.
fn mfa_satisfied(dir: &Directory, sign_in: &SignIn) -> bool {
    sign_in.mfa_done
        || match &sign_in.guest {
            Some(g) => {
                g.mfa_here
                    || (dir.partner(&g.partner).is_some_and(|p| p.config.trust_mfa)
                        && g.home_amr.iter().any(|a| a == "mfa"))
            }
            None => sign_in.amr.iter().any(|a| a == "mfa"),
        }
}

/// The policies' decision, read against what this sign-in has satisfied.
fn verdict(decision: &Decision, mfa_satisfied: bool, sign_in: &SignInRisk) -> Verdict {
    match decision {
        Decision::Allow => Verdict::Allow,
        Decision::Block { reason, error_code } => {
            let malicious_ip = sign_in
                .detections
                .iter()
                .any(|d| d.risk_event_type == RiskEventType::MaliciousIpAddress);
            let code = if *error_code == codes::BLOCKED_BY_CONDITIONAL_ACCESS && malicious_ip {
                codes::LOCKED_OR_MALICIOUS_IP
            } else {
                *error_code
            };
            Verdict::Block {
                code,
                reason: reason.clone(),
            }
        }
        Decision::RequireMfa | Decision::RequirePasswordChange { mfa_first: true }
            if !mfa_satisfied =>
        {
            Verdict::Step(Step::Mfa)
        }
        // MFA is satisfied yet still required: only a policy bug gets here; refuse rather than
        // let it through.
        Decision::RequireMfa => Verdict::Block {
            code: codes::BLOCKED_BY_CONDITIONAL_ACCESS,
            reason: "MFA satisfied but still required".to_owned(),
        },
        Decision::RequirePasswordChange { .. } => Verdict::Step(Step::PasswordChange),
    }
}

/// The ids of the user's groups, read only when a policy includes or excludes groups.
pub async fn groups_of(dir: &Directory, user_id: &str) -> Result<Vec<String>, StoreError> {
    if dir.protection.policies().set.names_groups() {
        dir.store.user_group_ids(user_id).await
    } else {
        Ok(Vec::new())
    }
}

/// What the policies read about one sign-in (the gate's, or a what-if's).
pub fn evaluation_input(
    user: &User,
    groups: Vec<String>,
    app_id: &str,
    facts: &risk::IpFacts,
    user_risk: RiskLevel,
    sign_in_risk: RiskLevel,
    satisfied: Satisfied,
) -> EvaluationInput {
    EvaluationInput {
        user: UserFacts {
            id: user.id.clone(),
            user_type: match user.user_type {
                store::UserType::Guest => UserType::Guest,
                store::UserType::Member => UserType::Member,
            },
            groups,
        },
        app_id: app_id.to_owned(),
        location: facts.into(),
        user_risk_level: user_risk,
        sign_in_risk_level: sign_in_risk,
        satisfied,
    }
}

/// Real-time sign-in risk of a sign-in by `user` (an id, and the version of their sign-ins when
/// it was read with their session) from `ip` now: one read at most (the user's recent sign-ins
/// here), the rest pure. `token`: the facts about the partner's ID token of a federated guest
/// sign-in, for `tokenIssuerAnomaly`.
pub async fn sign_in_risk(
    dir: &Directory,
    ip: std::net::IpAddr,
    user_agent: &str,
    (user_id, sign_ins_version): (&str, Option<i64>),
    token: Option<&risk::TokenIssuerFacts>,
) -> Result<SignInRisk, StoreError> {
    let history = past_sign_ins(dir, user_id, sign_ins_version).await?;
    let intel = dir.protection.intel();
    let at = OffsetDateTime::from_unix_timestamp(dir.now())
        .map_err(|e| StoreError::Corrupt(format!("clock out of range: {e}")))?;
    Ok(risk::evaluate_sign_in(
        &SignInContext {
            ip,
            user_agent,
            at,
            history: &history,
            token,
        },
        &intel,
        &dir.protection.settings().sign_in,
    ))
}

/// A member's current user risk at this (their home) tenant: remediated, dismissed and aged-out
/// risk counts as none.
pub async fn member_risk(dir: &Directory, user_id: &str) -> Result<RiskLevel, StoreError> {
    member_risk_of(dir, user_id, &AlreadyRead::Nothing).await
}

async fn member_risk_of(
    dir: &Directory,
    user_id: &str,
    read: &AlreadyRead,
) -> Result<RiskLevel, StoreError> {
    let status = match read {
        AlreadyRead::Nothing => user_risk::current(dir, user_id).await?,
        AlreadyRead::WithUser { user_risk, .. } => {
            user_risk::current_from(dir, user_id, user_risk.clone()).await?
        }
        AlreadyRead::UserRisk { status, .. } => *status,
    };
    Ok(match status.risk_state {
        RiskState::AtRisk | RiskState::ConfirmedCompromised => status.risk_level,
        _ => RiskLevel::None,
    })
}

/// The user's recent successful interactive sign-ins here, as sign-in risk compares them.
async fn past_sign_ins(
    dir: &Directory,
    user_id: &str,
    version: Option<i64>,
) -> Result<Vec<PastSignIn>, StoreError> {
    let rows = dir.store.recent_sign_ins(user_id, version, HISTORY).await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let at = OffsetDateTime::from_unix_timestamp(r.created_at).ok()?;
            let facts = r.facts();
            Some(PastSignIn {
                at,
                ip: facts.ip,
                country: facts.country.clone(),
                city: facts.city.clone(),
                latitude: facts.latitude,
                longitude: facts.longitude,
                asn: facts.asn,
                user_agent: r.user_agent.clone(),
            })
        })
        .collect())
}

/// Write the sign-in log row of a judged sign-in: who, how, the risk fields and the policies'
/// results, with `outcome`.
pub async fn log(
    dir: &Directory,
    client: Client<'_>,
    sign_in: &SignIn,
    user: &User,
    a: &Assessment,
    how: How,
    outcome: Outcome,
) {
    let sso = how == How::SingleSignOn;
    let details = match &sign_in.guest {
        Some(g) => {
            let mut d = serde_json::json!({
                "homeSubject": user.home_subject,
                "userRisk": g.user_risk,
                "userRiskTrusted": g.user_risk_trusted,
                "homeAmr": g.home_amr,
                "singleSignOn": sso,
            });
            if let Some(seen) = &g.risk_claim {
                seen.add_to(&mut d);
            }
            d
        }
        None => serde_json::json!({ "singleSignOn": sso }),
    };
    let entry = Entry {
        correlation_id: &sign_in.correlation_id,
        app_id: Some(&sign_in.request.client_id),
        upn: Some(&user.email),
        user_id: Some(&user.id),
        guest_of: sign_in.guest.as_ref().map(|g| g.partner.as_str()),
        details,
        risk: Some(a.risk_log(sign_in)),
        non_interactive: how == How::Refresh,
    };
    signin_log::write(dir, client, entry, outcome).await;
    if let (Verdict::Block { code, reason }, Some(guest)) = (&a.verdict, &sign_in.guest) {
        report_block(dir, client, user, &guest.partner, a, how, (*code, reason)).await;
    }
}

/// Seconds after a report of a guest's block during which their further blocks are not
/// reported again.
pub const REPORT_EVERY: i64 = 300;

/// Tells a blocked guest's home, when it listens (its partner settings name its stream's
/// app), that this tenant blocked its user: which policy, the sign-in's risk and detections.
/// The report is in the outbox before the refusal is answered; a failure to write it is
/// logged and does not change the refusal.
async fn report_block(
    dir: &Directory,
    client: Client<'_>,
    user: &User,
    partner_id: &str,
    a: &Assessment,
    how: How,
    (code, policy): (u32, &str),
) {
    let Some(partner) = dir.partner(partner_id) else {
        return;
    };
    let Some(to_client) = partner.config.reverse_stream_client_id.as_deref() else {
        return;
    };
    // One report per guest per REPORT_EVERY: an app retrying a refused refresh, or a person
    // retrying a blocked sign-in, tells the home nothing new each time.
    let now = dir.now();
    match dir
        .store
        .ssf_signalled_since(
            to_client,
            &user.id,
            protocol::set::event_type::SIGN_IN_BLOCKED,
            now - REPORT_EVERY,
        )
        .await
    {
        Ok(false) => {}
        Ok(true) => return,
        Err(e) => {
            tracing::error!(error = %e, partner = partner_id, user = %user.id, "could not tell whether the guest's home was told of a block lately");
            return;
        }
    }
    let report = crate::ssf::BlockReport {
        guest_id: &user.id,
        home_issuer: &partner.config.issuer,
        home_subject: user.home_subject.as_deref(),
        email: &user.email,
        to_client,
        code,
        policy,
        sign_in_risk_level: a.sign_in.risk_level.as_str(),
        risk_event_types: a
            .sign_in
            .risk_event_types()
            .into_iter()
            .map(|t| t.as_str().to_owned())
            .collect(),
        // A refresh's IP may be the app's server, not the user's.
        ip: (how != How::Refresh).then(|| client.ip.to_string()),
        at: now,
    };
    if let Err(e) = dir
        .store
        .record_signals(&[crate::ssf::block_signal(&report)])
        .await
    {
        tracing::error!(error = %e, partner = partner_id, user = %user.id, "the report of a block to the guest's home could not be written");
    }
}

/// The interruption of a sign-in held for `step`, as a sign-in log outcome of its own (as in
/// Entra: the decision and why are on record even if the user never finishes the step).
pub fn interrupted(step: Step) -> Outcome {
    match step {
        Step::Mfa => Outcome::Failure(
            codes::STRONG_AUTH_REQUIRED,
            "Strong authentication is required (interrupted: MFA).",
        ),
        Step::PasswordChange => Outcome::Failure(
            codes::PASSWORD_CHANGE_REQUIRED,
            "A password change is required due to user risk (interrupted).",
        ),
    }
}

/// A member's risky sign-in that still succeeded, without MFA remediating it, counts towards
/// their user risk here at their home: its strongest detection is recorded at
/// most `medium` — one sign-in is evidence, not proof of compromise.
pub async fn risky_sign_in_raises_user_risk(
    dir: &Directory,
    sign_in: &SignIn,
    user: &User,
    a: &Assessment,
) -> Result<(), UserRiskError> {
    let risk = &a.sign_in;
    if sign_in.guest.is_some() || sign_in.mfa_done || risk.risk_level == RiskLevel::None {
        return Ok(());
    }
    let Some(strongest) = risk.detections.iter().max_by_key(|d| d.risk_level) else {
        return Ok(());
    };
    let detection = user_risk::new_detection(
        strongest.risk_event_type,
        strongest.risk_level.min(RiskLevel::Medium),
        risk::DetectionTimingType::Realtime,
        risk.facts.ip,
        dir.now(),
        format!(
            "a sign-in that succeeded without MFA was risky: {}",
            strongest.explanation
        ),
    );
    user_risk::raise(dir, &user.id, detection).await?;
    Ok(())
}

/// The sign-in log's `failureReason` for a block code.
pub fn block_reason(code: u32) -> &'static str {
    match code {
        codes::BLOCKED_DUE_TO_HOME_RISK => "Blocked due to user risk on the home tenant.",
        codes::LOCKED_OR_MALICIOUS_IP => "Sign-in from a malicious IP address was blocked.",
        _ => "Blocked by Conditional Access.",
    }
}

/// Where a blocked user resets their password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordReset {
    /// A page to send them to.
    Link {
        /// Its absolute URL.
        href: String,
        /// The link's text.
        text: String,
    },
    /// No page is known (a home that neither the partner entry nor its discovery names one
    /// for): the seed's fallback, the guest's own organization's administrator.
    AskAdministrator,
}

/// Where a user can reset their password. A member: this tenant's own page. A guest: at home,
/// where their password and their risk live — the partner entry's `password_reset_url` (the
/// admins here know their partner), else the page the home advertised in discovery
/// (`password_reset_uri`, kept on the guest's sign-in), else nowhere: a link to
/// `<home issuer>/password/reset` would be a dead end at any home that is not tenantd.
pub fn password_reset(
    issuer: &str,
    guest: Option<&GuestSession>,
    partner: Option<&PartnerConfig>,
) -> PasswordReset {
    let Some(guest) = guest else {
        return PasswordReset::Link {
            href: format!("{}{}", issuer.trim_end_matches('/'), PASSWORD_RESET_PATH),
            text: "Reset your password".to_owned(),
        };
    };
    let configured = partner.and_then(|p| p.password_reset_url.as_deref());
    match configured.or(guest.home_password_reset_uri.as_deref()) {
        Some(href) => PasswordReset::Link {
            href: href.to_owned(),
            text: format!("Reset your password at {}", home_name(guest, partner)),
        },
        None => PasswordReset::AskAdministrator,
    }
}

/// How a guest's home is named to them: the partner entry's display name, or (the entry gone)
/// the host of the home's issuer.
fn home_name(guest: &GuestSession, partner: Option<&PartnerConfig>) -> String {
    match partner {
        Some(p) => p.display_name.clone(),
        None => url::Url::parse(&guest.idp)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| guest.idp.clone()),
    }
}

/// What a blocked sign-in tells the person and the app: with risk involved, the seed's
/// sentence, why, and where to remediate (a guest's home); without, a plain Conditional Access
/// refusal. A guest blocked for user risk also gets the seed's last line: contact the IT
/// administrator if resetting the password did not help.
pub fn blocked(dir: &Directory, sign_in: &SignIn, a: &Assessment, code: u32) -> Refusal {
    let (message, explanation, link) = if a.is_risky() {
        let guest = sign_in.guest.as_ref();
        let partner = guest.and_then(|g| dir.partner(&g.partner));
        let partner = partner.as_ref().map(|p| &p.config);
        let reset = password_reset(&dir.config.issuer, guest, partner);
        (
            codes::BLOCKED_MESSAGE.to_owned(),
            risky_explanation(&dir.config.display_name, guest, partner, &reset, code),
            match reset {
                PasswordReset::Link { href, text } => Some((href, text)),
                PasswordReset::AskAdministrator => None,
            },
        )
    } else {
        (
            "You cannot access this right now.".to_owned(),
            "Your sign-in was successful, but a Conditional Access policy of this \
             organization blocks access to this app."
                .to_owned(),
            None,
        )
    };
    Refusal {
        title: "Sign-in blocked",
        oauth: OAuthError::new(ErrorCode::AccessDenied, message.clone()),
        message,
        explanation: Some(explanation),
        home_link: link,
        footnote: (a.is_risky()
            && sign_in.guest.is_some()
            && code == codes::BLOCKED_DUE_TO_HOME_RISK)
            .then_some(codes::STILL_BLOCKED_AFTER_RESET),
        error_code: code,
    }
}

/// Why a risky sign-in was blocked and what to do, in plain words. For a guest with no reset
/// page known, the seed's fallback: "reach out to your organization's IT administrator".
fn risky_explanation(
    here: &str,
    guest: Option<&GuestSession>,
    partner: Option<&PartnerConfig>,
    reset: &PasswordReset,
    code: u32,
) -> String {
    let Some(guest) = guest else {
        return "Reset your password to secure your account, or contact your administrator."
            .to_owned();
    };
    let home = home_name(guest, partner);
    let ask_admin =
        format!("Contact your organization's administrator (at {home}) to reset your password.");
    match (code == codes::BLOCKED_DUE_TO_HOME_RISK, reset) {
        (true, PasswordReset::Link { .. }) => format!(
            "Your account belongs to {home}, and {home} considers it at risk. {here} cannot \
             clear that risk: only {home} can. Reset your password at {home} (it takes you to \
             your own organization's page), then sign in again."
        ),
        (true, PasswordReset::AskAdministrator) => format!(
            "Your account belongs to {home}, and {home} considers it at risk. {here} cannot \
             clear that risk: only {home} can. {ask_admin} Then sign in again."
        ),
        (false, PasswordReset::Link { .. }) => format!(
            "This sign-in looked risky to {here}. If it was you, try again from your usual \
             network; if your account is at risk, reset your password at {home}."
        ),
        (false, PasswordReset::AskAdministrator) => format!(
            "This sign-in looked risky to {here}. If it was you, try again from your usual \
             network. If your account is at risk: {ask_admin}"
        ),
    }
}

/// Why a refresh was refused, for the token endpoint.
#[derive(Debug)]
pub struct RefreshRefusal {
    /// `invalid_grant`, the code in the description.
    pub error: OAuthError,
    /// Whether the refresh token's family must go: the user's account or risk requires a new
    /// interactive sign-in (remediation), not merely another network.
    pub revoke_family: bool,
}

impl From<StoreError> for RefreshRefusal {
    fn from(e: StoreError) -> Self {
        Self {
            error: crate::tokens::store_failure(e),
            revoke_family: false,
        }
    }
}

/// A refresh-token grant is a non-interactive sign-in, as in Entra: the user's account state
/// and risk are read again (a member's own; a guest's the last claim their home sent), sign-in
/// risk judges what belongs to the user (a public client's IP is the user's device; a
/// confidential client's is its server's and is not judged), and the same policies decide.
/// Each refresh is a `nonInteractiveUser` row in the sign-in log. Returns the user to issue
/// tokens for.
///
/// `user` is the grant's user as the caller read it (`None`: gone), with what else it read
/// with them in `read` ([`store::Store::refresh_token_and_user`] reads it all at once).
pub async fn judge_refresh(
    dir: &Directory,
    client: Client<'_>,
    app: &App,
    grant: &Grant,
    user: Option<User>,
    read: AlreadyRead,
) -> Result<User, RefreshRefusal> {
    let refuse = |code: u32, message: &str, revoke_family: bool| RefreshRefusal {
        error: OAuthError::invalid_grant(format!("{message} (error code {code})")),
        revoke_family,
    };
    let user = match user {
        Some(u) if u.status == UserStatus::Active => u,
        _ => {
            return Err(refuse(
                codes::ACCOUNT_DISABLED,
                "The user account is disabled or no longer exists.",
                true,
            ));
        }
    };
    let origin = if app.config.auth_method == protocol::client_auth::AuthMethod::None {
        Origin::from(client)
    } else {
        Origin::BackChannel
    };
    let (sign_in, a) =
        assess_grant(dir, origin, client.correlation_id, app, grant, &user, read).await?;
    let (outcome, refusal) = refresh_outcome(&a);
    log(dir, client, &sign_in, &user, &a, How::Refresh, outcome).await;
    match refusal {
        None => Ok(user),
        Some((code, message, revoke_family)) => Err(refuse(code, message, revoke_family)),
    }
}

/// What the gate says of `user` holding `grant` now, as it would judge the grant's next
/// refresh (nothing is logged): a guest on the last user-risk claim their home sent. `read` is
/// what the caller already read with the user.
pub async fn assess_grant(
    dir: &Directory,
    origin: Origin<'_>,
    correlation_id: &str,
    app: &App,
    grant: &Grant,
    user: &User,
    read: AlreadyRead,
) -> Result<(SignIn, Assessment), StoreError> {
    let request = refreshed_request(app, grant);
    let mut sign_in =
        SignIn::new(request, correlation_id.to_owned()).authenticated(&user.id, grant.amr.clone());
    sign_in.guest = match user.user_type {
        store::UserType::Guest => Some(guest_on_refresh(dir, user, grant).await?),
        store::UserType::Member => None,
    };
    let a = assess_with(dir, origin, user, read, &sign_in, &app.config.client_id).await?;
    Ok((sign_in, a))
}

/// Whether an assessment ends the grant it was made for: a block, or a password change only
/// an interactive sign-in can make (what refuses a refresh and ends its family).
pub fn ends_grant(a: &Assessment) -> bool {
    refresh_outcome(a)
        .1
        .is_some_and(|(_, _, revoke_family)| revoke_family)
        || matches!(a.verdict, Verdict::Block { .. })
}

/// A refresh's log outcome, and its refusal: (code, message, whether the family ends).
fn refresh_outcome(a: &Assessment) -> (Outcome, Option<(u32, &'static str, bool)>) {
    // The user-risk policy's password change is a remediation only an interactive sign-in can
    // do (MFA first or not): refuse, and end the family.
    if matches!(
        a.evaluation.decision,
        Decision::RequirePasswordChange { .. }
    ) {
        return (
            Outcome::Failure(
                codes::PASSWORD_CHANGE_REQUIRED,
                "A password change is required due to user risk.",
            ),
            Some((
                codes::PASSWORD_CHANGE_REQUIRED,
                codes::BLOCKED_MESSAGE,
                true,
            )),
        );
    }
    match &a.verdict {
        Verdict::Allow => (Outcome::Success, None),
        Verdict::Block { code, .. } => {
            let message = if a.is_risky() {
                codes::BLOCKED_MESSAGE
            } else {
                "Access has been blocked by Conditional Access policies."
            };
            (
                Outcome::Failure(*code, block_reason(*code)),
                Some((*code, message, a.user_risk > RiskLevel::None)),
            )
        }
        Verdict::Step(_) => (
            Outcome::Failure(
                codes::STRONG_AUTH_REQUIRED_NON_INTERACTIVE,
                "Strong authentication is required; a refresh cannot provide it.",
            ),
            Some((
                codes::STRONG_AUTH_REQUIRED_NON_INTERACTIVE,
                "Multi-factor authentication is required: sign in again.",
                false,
            )),
        ),
    }
}

/// The authorization request a refresh stands for: the grant's app and scope (for the log and
/// the policies; nothing is redirected).
fn refreshed_request(app: &App, grant: &Grant) -> protocol::authorize::AuthorizationRequest {
    protocol::authorize::AuthorizationRequest {
        client_id: app.config.client_id.clone(),
        redirect_uri: String::new(),
        response_mode: protocol::authorize::ResponseMode::Query,
        scope: grant.scope.clone(),
        state: None,
        nonce: None,
        code_challenge: None,
        prompt: protocol::authorize::Prompt::default(),
        max_age: None,
        login_hint: None,
        id_token_hint: None,
        acr_values: None,
        claims: Default::default(),
    }
}

/// What a guest's refresh is judged with: the partner they come from, the home's last
/// `user_risk` claim (kept on the guest at each federated sign-in; real-time updates come with
/// shared signals), and whether MFA was done here in the session the grant came from.
async fn guest_on_refresh(
    dir: &Directory,
    user: &User,
    grant: &Grant,
) -> Result<GuestSession, StoreError> {
    let partner_id = user.partner_id.clone().unwrap_or_default();
    let partner = dir.partner(&partner_id);
    let user_risk: Option<UserRiskClaim> = user
        .home_user_risk
        .as_deref()
        .and_then(|json| serde_json::from_str(json).ok());
    // The session may be gone (an offline grant outlives it): then MFA done here is not
    // known, and only the home's MFA counts (if the partner is trusted for it).
    let session_facts: Option<GuestSession> = match &grant.session_id {
        Some(id) => dir
            .store
            .session_by_id(id)
            .await?
            .and_then(|s| s.federation_json)
            .and_then(|json| serde_json::from_str(&json).ok()),
        None => None,
    };
    Ok(GuestSession {
        idp: partner
            .as_ref()
            .map_or_else(String::new, |p| p.config.issuer.clone()),
        user_risk_trusted: partner.as_ref().is_some_and(|p| p.config.trust_user_risk),
        partner: partner_id,
        home_amr: grant.amr.clone(),
        user_risk,
        home_auth_time: Some(grant.auth_time),
        mfa_here: session_facts.as_ref().is_some_and(|f| f.mfa_here),
        token: None,
        risk_claim: None,
        // A refusal of a refresh is an OAuth error, never a page: kept only to be complete.
        home_password_reset_uri: session_facts.and_then(|f| f.home_password_reset_uri),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    //! The gate's decisions, without a server: a directory on a temporary SQLite database with
    //! a fake clock, the shipped intel (its anonymous and malicious IP lists) and a resource
    //! tenant's shipped policies (user risk high → password change; sign-in risk medium or
    //! high → MFA; sign-in risk high → block).

    use super::*;
    use crate::config::Config;
    use crate::passwords::Passwords;
    use crate::protection::Protection;
    use crate::{Clock, OffsetClock, sign_in::SignIn};
    use std::sync::Arc;

    const CLEAN: &str = "192.0.2.10";
    const ANONYMOUS: &str = "198.51.100.7";
    const MALICIOUS: &str = "203.0.113.66";

    async fn directory() -> Directory {
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config");
        let dir = std::env::temp_dir().join(format!("tenantd-gate-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = format!(
            r#"
[tenant]
id = "fabrikam"
display_name = "Fabrikam"
issuer = "https://fabrikam.test"
[server]
listen = "127.0.0.1:0"
plain_http = true
[database]
url = "sqlite://{db}"
[[apps]]
client_id = "web"
name = "Web app"
client_secret = "web-secret-123"
redirect_uris = ["https://web.test/cb"]
[[apps]]
client_id = "spa"
name = "Single-page app"
token_endpoint_auth_method = "none"
redirect_uris = ["https://spa.test/cb"]
[risk]
anonymous_ips = ["{i}/anonymous-ips.txt"]
malicious_ips = ["{i}/malicious-ips.txt"]
policies_dir = "{p}"
"#,
            db = dir.join("t.db").display(),
            i = root.join("intel").display(),
            p = root.join("policies/fabrikam").display(),
        );
        let config = Config::parse(&text, "gate-test.toml").unwrap();
        let store = crate::vault::open_store(&config).await.unwrap();
        let clock = Arc::new(OffsetClock::default());
        let now = clock.now();
        crate::keys::ensure_keys(&store, now).await.unwrap();
        let keys = crate::keys::load(&store, 600, now).await.unwrap();
        let passwords = Passwords::new(&config.passwords).unwrap();
        let protection = Protection::load(config.risk.clone(), &store).await.unwrap();
        Directory::new(
            config,
            store,
            clock,
            passwords,
            keys,
            Vec::new(),
            protection,
        )
    }

    async fn member(dir: &Directory, email: &str) -> User {
        dir.store
            .insert_user(&store::NewUser {
                id: uuid::Uuid::new_v4().to_string(),
                email: email.into(),
                display_name: email.into(),
                given_name: None,
                family_name: None,
                password_hash: None,
                must_change_password: false,
                now: dir.now(),
            })
            .await
            .unwrap()
    }

    async fn guest(dir: &Directory, email: &str) -> User {
        let (user, _) = dir
            .store
            .invite_guest(
                &store::NewGuest {
                    id: uuid::Uuid::new_v4().to_string(),
                    email: email.into(),
                    display_name: email.into(),
                    partner_id: "contoso".into(),
                    now: dir.now(),
                },
                &uuid::Uuid::new_v4().to_string(),
                None,
            )
            .await
            .unwrap();
        user
    }

    async fn high_user_risk(dir: &Directory, user: &User) {
        let d = user_risk::new_detection(
            RiskEventType::LeakedCredentials,
            RiskLevel::High,
            risk::DetectionTimingType::Offline,
            None,
            dir.now(),
            "test".into(),
        );
        user_risk::raise(dir, &user.id, d).await.unwrap();
    }

    fn request(app: &str) -> protocol::authorize::AuthorizationRequest {
        protocol::authorize::AuthorizationRequest {
            client_id: app.into(),
            redirect_uri: "https://web.test/cb".into(),
            response_mode: protocol::authorize::ResponseMode::Query,
            scope: "openid".into(),
            state: None,
            nonce: None,
            code_challenge: None,
            prompt: protocol::authorize::Prompt::default(),
            max_age: None,
            login_hint: None,
            id_token_hint: None,
            acr_values: None,
            claims: Default::default(),
        }
    }

    fn signed_in(user: &User, amr: &[&str]) -> SignIn {
        SignIn::new(request("web"), "corr".into())
            .authenticated(&user.id, amr.iter().map(|a| (*a).to_owned()).collect())
    }

    fn from(ip: &str) -> Origin<'static> {
        Origin::Device {
            ip: ip.parse().unwrap(),
            user_agent: "test-agent",
        }
    }

    fn guest_from_home(level: RiskLevel, trusted: bool, home_amr: &[&str]) -> GuestSession {
        GuestSession {
            partner: "contoso".into(),
            idp: "https://contoso.test".into(),
            home_amr: home_amr.iter().map(|a| (*a).to_owned()).collect(),
            user_risk: Some(UserRiskClaim {
                level,
                state: if level == RiskLevel::None {
                    RiskState::None
                } else {
                    RiskState::AtRisk
                },
                detail: RiskDetail::None,
                updated_at: 0,
            }),
            user_risk_trusted: trusted,
            home_auth_time: None,
            mfa_here: false,
            token: None,
            risk_claim: None,
            home_password_reset_uri: None,
        }
    }

    async fn verdict_of(dir: &Directory, origin: Origin<'_>, user: &User, s: &SignIn) -> Verdict {
        assess(dir, origin, user, s, "web").await.unwrap().verdict
    }

    #[tokio::test]
    async fn a_clean_member_is_allowed() {
        let dir = directory().await;
        let alice = member(&dir, "alice@fabrikam.test").await;
        let a = assess(
            &dir,
            from(CLEAN),
            &alice,
            &signed_in(&alice, &["pwd"]),
            "web",
        )
        .await
        .unwrap();
        assert_eq!(a.verdict, Verdict::Allow);
        assert_eq!(a.user_risk, RiskLevel::None);
        assert!(!a.is_risky());
    }

    #[tokio::test]
    async fn a_high_risk_member_does_mfa_then_a_password_change() {
        let dir = directory().await;
        let bob = member(&dir, "bob@fabrikam.test").await;
        high_user_risk(&dir, &bob).await;
        let mut s = signed_in(&bob, &["pwd"]);
        assert_eq!(
            verdict_of(&dir, from(CLEAN), &bob, &s).await,
            Verdict::Step(Step::Mfa)
        );
        s.mfa_passed();
        assert_eq!(
            verdict_of(&dir, from(CLEAN), &bob, &s).await,
            Verdict::Step(Step::PasswordChange)
        );
        // The change remediates (the sign-in keeps the level that required it) and passes.
        s.password_changed = true;
        s.user_risk_level = RiskLevel::High;
        assert_eq!(
            verdict_of(&dir, from(CLEAN), &bob, &s).await,
            Verdict::Allow
        );
    }

    #[tokio::test]
    async fn the_risk_already_read_judges_as_the_gates_own_read() {
        let dir = directory().await;
        let bob = member(&dir, "bob@fabrikam.test").await;
        let s = signed_in(&bob, &["pwd"]);
        let read = || async {
            AlreadyRead::WithUser {
                user_risk: dir.store.user_risk(&bob.id).await.unwrap(),
                sign_ins_version: dir.store.sign_ins_version(&bob.id).await.unwrap(),
            }
        };
        let given = assess_with(&dir, from(CLEAN), &bob, read().await, &s, "web")
            .await
            .unwrap();
        assert_eq!(given.user_risk, RiskLevel::None);
        assert_eq!(given.verdict, Verdict::Allow);

        high_user_risk(&dir, &bob).await;
        let own = assess(&dir, from(CLEAN), &bob, &s, "web").await.unwrap();
        let given = assess_with(&dir, from(CLEAN), &bob, read().await, &s, "web")
            .await
            .unwrap();
        assert_eq!(own.user_risk, RiskLevel::High);
        assert_eq!(given.user_risk, own.user_risk);
        assert_eq!(given.verdict, own.verdict);
        assert_eq!(given.verdict, Verdict::Step(Step::Mfa));

        // The password path hands over the risk its checks left.
        let status = user_risk::current(&dir, &bob.id).await.unwrap();
        let sign_ins_version = dir.store.sign_ins_version(&bob.id).await.unwrap();
        let given = assess_with(
            &dir,
            from(CLEAN),
            &bob,
            AlreadyRead::UserRisk {
                status,
                sign_ins_version,
            },
            &s,
            "web",
        )
        .await
        .unwrap();
        assert_eq!(given.user_risk, own.user_risk);
        assert_eq!(given.verdict, own.verdict);
    }

    #[tokio::test]
    async fn a_risky_sign_in_needs_mfa_and_a_malicious_ip_is_blocked() {
        let dir = directory().await;
        let alice = member(&dir, "alice@fabrikam.test").await;
        let mut s = signed_in(&alice, &["pwd"]);
        let a = assess(&dir, from(ANONYMOUS), &alice, &s, "web")
            .await
            .unwrap();
        assert_eq!(a.verdict, Verdict::Step(Step::Mfa));
        assert!(a.sign_in.risk_level >= RiskLevel::Medium);
        s.mfa_passed();
        assert_eq!(
            verdict_of(&dir, from(ANONYMOUS), &alice, &s).await,
            Verdict::Allow
        );
        match verdict_of(&dir, from(MALICIOUS), &alice, &s).await {
            Verdict::Block { code, .. } => assert_eq!(code, codes::LOCKED_OR_MALICIOUS_IP),
            v => panic!("{v:?}"),
        }
    }

    #[tokio::test]
    async fn single_sign_on_with_mfa_in_the_session_satisfies_mfa() {
        let dir = directory().await;
        let alice = member(&dir, "alice@fabrikam.test").await;
        // A session's amr carries the MFA of the sign-in that made it.
        let sso = signed_in(&alice, &["pwd", "mfa", "otp"]);
        assert_eq!(
            verdict_of(&dir, from(ANONYMOUS), &alice, &sso).await,
            Verdict::Allow
        );
    }

    #[tokio::test]
    async fn a_guest_is_judged_on_the_homes_claim_only_when_trusted() {
        let dir = directory().await;
        let gina = guest(&dir, "gina@contoso.test").await;
        let mut s = signed_in(&gina, &["pwd"]);
        s.guest = Some(guest_from_home(RiskLevel::High, true, &["pwd"]));
        let a = assess(&dir, from(CLEAN), &gina, &s, "web").await.unwrap();
        // passwordChange cannot be met by a guest here: blocked, with the home named.
        assert!(
            matches!(
                a.verdict,
                Verdict::Block {
                    code: codes::BLOCKED_DUE_TO_HOME_RISK,
                    ..
                }
            ),
            "{:?}",
            a.verdict
        );
        let r = blocked(&dir, &s, &a, codes::BLOCKED_DUE_TO_HOME_RISK);
        assert_eq!(r.message, codes::BLOCKED_MESSAGE);
        assert_eq!(r.oauth.code, ErrorCode::AccessDenied);
        // The same claim from an untrusted partner counts as no risk.
        s.guest = Some(guest_from_home(RiskLevel::High, false, &["pwd"]));
        assert_eq!(
            verdict_of(&dir, from(CLEAN), &gina, &s).await,
            Verdict::Allow
        );
    }

    /// The partner entry for contoso, with `extra` lines.
    fn contoso(extra: &str) -> PartnerConfig {
        let text = format!(
            r#"
[tenant]
id = "fabrikam"
display_name = "Fabrikam"
issuer = "https://fabrikam.test"
[server]
listen = "127.0.0.1:0"
plain_http = true
[database]
url = "sqlite://unused.db"
[[partners]]
id = "contoso"
display_name = "Contoso"
issuer = "https://contoso.test"
client_id = "fabrikam"
client_secret = "fabrikam-secret"
{extra}
"#
        );
        Config::parse(&text, "t.toml").unwrap().partners.remove(0)
    }

    #[test]
    fn the_reset_link_is_the_configured_page_then_the_advertised_one_then_none() {
        const HERE: &str = "https://fabrikam.test";
        let configured = contoso("password_reset_url = \"https://sspr.contoso.test/reset\"");
        let plain = contoso("");
        let mut g = guest_from_home(RiskLevel::High, true, &["pwd"]);
        let link = |href: &str, text: &str| PasswordReset::Link {
            href: href.into(),
            text: text.into(),
        };
        // Neither: no link to a page that may not exist.
        assert_eq!(
            password_reset(HERE, Some(&g), Some(&plain)),
            PasswordReset::AskAdministrator
        );
        assert_eq!(
            password_reset(HERE, Some(&g), Some(&configured)),
            link(
                "https://sspr.contoso.test/reset",
                "Reset your password at Contoso"
            )
        );
        g.home_password_reset_uri = Some("https://contoso.test/password/reset".into());
        assert_eq!(
            password_reset(HERE, Some(&g), Some(&plain)),
            link(
                "https://contoso.test/password/reset",
                "Reset your password at Contoso"
            )
        );
        // The partner entry wins over the home's discovery.
        assert_eq!(
            password_reset(HERE, Some(&g), Some(&configured)),
            link(
                "https://sspr.contoso.test/reset",
                "Reset your password at Contoso"
            )
        );
        // A partner entry since removed: the home is named by its issuer's host.
        assert_eq!(
            password_reset(HERE, Some(&g), None),
            link(
                "https://contoso.test/password/reset",
                "Reset your password at contoso.test"
            )
        );
        // A member resets here.
        assert_eq!(
            password_reset(HERE, None, Some(&configured)),
            link(
                "https://fabrikam.test/password/reset",
                "Reset your password"
            )
        );
    }

    #[tokio::test]
    async fn a_blocked_guest_is_sent_home_to_reset_or_to_their_administrator() {
        let dir = directory().await;
        let gina = guest(&dir, "gina@contoso.test").await;
        let mut s = signed_in(&gina, &["pwd"]);
        s.guest = Some(guest_from_home(RiskLevel::High, true, &["pwd"]));
        let a = assess(&dir, from(CLEAN), &gina, &s, "web").await.unwrap();
        let code = codes::BLOCKED_DUE_TO_HOME_RISK;
        assert!(
            matches!(a.verdict, Verdict::Block { code: c, .. } if c == code),
            "{:?}",
            a.verdict
        );
        // The home advertised no page (and no partner entry names one): no dead link, the
        // seed's fallback instead.
        let r = blocked(&dir, &s, &a, code);
        assert_eq!(r.message, codes::BLOCKED_MESSAGE);
        assert_eq!(r.home_link, None);
        assert_eq!(r.footnote, Some(codes::STILL_BLOCKED_AFTER_RESET));
        let explanation = r.explanation.unwrap();
        assert!(
            explanation.contains(
                "Contact your organization's administrator (at contoso.test) to reset your password."
            ),
            "{explanation}"
        );
        // The page its home advertised when it signed the guest in.
        if let Some(g) = s.guest.as_mut() {
            g.home_password_reset_uri = Some("https://contoso.test/password/reset".into());
        }
        let r = blocked(&dir, &s, &a, code);
        assert_eq!(r.message, codes::BLOCKED_MESSAGE);
        assert_eq!(
            r.home_link,
            Some((
                "https://contoso.test/password/reset".into(),
                "Reset your password at contoso.test".into()
            ))
        );
        assert_eq!(r.footnote, Some(codes::STILL_BLOCKED_AFTER_RESET));
        assert!(!r.explanation.unwrap().contains("administrator"));
    }

    #[tokio::test]
    async fn a_blocked_member_resets_here() {
        let dir = directory().await;
        let alice = member(&dir, "alice@fabrikam.test").await;
        let mut s = signed_in(&alice, &["pwd"]);
        s.mfa_passed();
        let a = assess(&dir, from(MALICIOUS), &alice, &s, "web")
            .await
            .unwrap();
        let r = blocked(&dir, &s, &a, codes::LOCKED_OR_MALICIOUS_IP);
        assert_eq!(r.message, codes::BLOCKED_MESSAGE);
        assert_eq!(
            r.footnote, None,
            "a member is not a guest blocked for home risk"
        );
        assert_eq!(
            r.home_link,
            Some((
                "https://fabrikam.test/password/reset".into(),
                "Reset your password".into()
            ))
        );
    }

    #[tokio::test]
    async fn a_guests_home_mfa_counts_only_with_trust_and_mfa_here_does() {
        let dir = directory().await;
        let gina = guest(&dir, "gina@contoso.test").await;
        let mut s = signed_in(&gina, &["pwd", "mfa"]);
        s.guest = Some(guest_from_home(RiskLevel::None, true, &["pwd", "mfa"]));
        // No partner entry trusts contoso's MFA here: a risky sign-in still needs MFA here.
        assert_eq!(
            verdict_of(&dir, from(ANONYMOUS), &gina, &s).await,
            Verdict::Step(Step::Mfa)
        );
        s.mfa_passed();
        assert_eq!(
            verdict_of(&dir, from(ANONYMOUS), &gina, &s).await,
            Verdict::Allow
        );
    }

    fn grant(user: &User, app: &str, amr: &[&str]) -> Grant {
        Grant {
            id: uuid::Uuid::new_v4().to_string(),
            client_id: app.into(),
            user_id: user.id.clone(),
            session_id: None,
            scope: "openid offline_access".into(),
            auth_time: 0,
            amr: amr.iter().map(|a| (*a).to_owned()).collect(),
            acr: None,
            offline: true,
            created_at: 0,
            expires_at: i64::MAX,
            revoked_at: None,
            claims: None,
        }
    }

    /// [`judge_refresh`] with the user read the way a caller without a read of its own does.
    async fn judge_reading(
        dir: &Directory,
        client: Client<'_>,
        app: &App,
        grant: &Grant,
    ) -> Result<User, RefreshRefusal> {
        let user = dir.store.user_by_id(&grant.user_id).await?;
        judge_refresh(dir, client, app, grant, user, AlreadyRead::Nothing).await
    }

    fn client(ip: &str) -> Client<'static> {
        Client {
            correlation_id: "refresh-corr",
            ip: ip.parse().unwrap(),
            user_agent: Some("test-agent"),
        }
    }

    #[tokio::test]
    async fn a_refresh_is_judged_again_and_logged_as_non_interactive() {
        let dir = directory().await;
        let web = dir.app("web").await.unwrap().unwrap();
        let spa = dir.app("spa").await.unwrap().unwrap();
        let alice = member(&dir, "alice@fabrikam.test").await;
        let g = grant(&alice, "web", &["pwd"]);
        assert_eq!(
            judge_reading(&dir, client(CLEAN), &web, &g)
                .await
                .unwrap()
                .id,
            alice.id
        );
        let rows = dir
            .store
            .list_sign_ins(&store::SignInFilter::default())
            .await
            .unwrap();
        assert_eq!(rows[0].sign_in_event_type, store::NON_INTERACTIVE_USER);
        assert_eq!(rows[0].error_code, 0);

        // A confidential client's back channel from a malicious IP is its server: not judged.
        assert!(
            judge_reading(&dir, client(MALICIOUS), &web, &g)
                .await
                .is_ok()
        );
        // A public client's IP is the user's device: judged, and refused without ending the
        // family (50053 from a malicious IP; 50076 from an anonymous one: MFA, which a refresh
        // cannot do).
        for (ip, code) in [(MALICIOUS, "50053"), (ANONYMOUS, "50076")] {
            let r = judge_reading(&dir, client(ip), &spa, &grant(&alice, "spa", &["pwd"]))
                .await
                .unwrap_err();
            assert!(
                r.error.description.contains(code),
                "{}",
                r.error.description
            );
            assert!(!r.revoke_family);
        }
    }

    #[tokio::test]
    async fn a_refresh_of_a_risky_or_disabled_user_ends_the_family() {
        let dir = directory().await;
        let web = dir.app("web").await.unwrap().unwrap();
        let bob = member(&dir, "bob@fabrikam.test").await;
        high_user_risk(&dir, &bob).await;
        // Even with MFA in the grant: the password change needs an interactive sign-in.
        let r = judge_reading(
            &dir,
            client(CLEAN),
            &web,
            &grant(&bob, "web", &["pwd", "mfa"]),
        )
        .await
        .unwrap_err();
        assert!(
            r.error.description.contains("50135"),
            "{}",
            r.error.description
        );
        assert_eq!(r.error.code, ErrorCode::InvalidGrant);
        assert!(r.revoke_family);
        // Judged on the risk read with the refresh token (the store's one read), not read again:
        // the same refusal with the stored risk, none with a read that found no risk.
        let judge = |user_risk| {
            let already = AlreadyRead::WithUser {
                user_risk,
                sign_ins_version: 0,
            };
            let g = grant(&bob, "web", &["pwd"]);
            let (dir, web, bob) = (&dir, &web, bob.clone());
            async move { judge_refresh(dir, client(CLEAN), web, &g, Some(bob), already).await }
        };
        let stored = dir.store.user_risk(&bob.id).await.unwrap();
        assert!(stored.is_some());
        let r = judge(stored).await.unwrap_err();
        assert!(r.error.description.contains("50135") && r.revoke_family);
        assert_eq!(judge(None).await.unwrap().id, bob.id);
        let r = judge_refresh(
            &dir,
            client(CLEAN),
            &web,
            &grant(&bob, "web", &["pwd"]),
            None,
            AlreadyRead::Nothing,
        )
        .await
        .unwrap_err();
        assert!(r.revoke_family, "a user read as gone ends the family");
        let carol = member(&dir, "carol@fabrikam.test").await;
        dir.store
            .set_user_status(&carol.id, store::UserStatus::Disabled, dir.now())
            .await
            .unwrap();
        let r = judge_reading(&dir, client(CLEAN), &web, &grant(&carol, "web", &["pwd"]))
            .await
            .unwrap_err();
        assert!(r.revoke_family);
    }

    #[tokio::test]
    async fn a_guests_refresh_uses_the_last_claim_their_home_sent() {
        let dir = directory().await;
        let web = dir.app("web").await.unwrap().unwrap();
        let gina = guest(&dir, "gina@contoso.test").await;
        let g = grant(&gina, "web", &["pwd"]);
        // No claim kept yet (and no partner entry to trust it): allowed.
        assert!(judge_reading(&dir, client(CLEAN), &web, &g).await.is_ok());
        let claim =
            serde_json::to_string(&guest_from_home(RiskLevel::High, true, &[]).user_risk).unwrap();
        dir.store
            .set_home_user_risk(&gina.id, Some(&claim))
            .await
            .unwrap();
        // Kept, but this tenant has no partner entry trusting contoso's risk: still none.
        assert!(judge_reading(&dir, client(CLEAN), &web, &g).await.is_ok());
    }
}
