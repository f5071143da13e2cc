//! What a resource does when a partner — the home of some of its guests — tells it about a
//! change to one of its users (OpenID Shared Signals: CAEP and RISC events, checked as
//! Security Event Tokens before they get here). Without it a risky guest is stopped only at
//! their next sign-in or refresh; with it, at once:
//!
//! - a **risk level change** becomes the guest's user risk held here (the claim their next
//!   refresh is judged on), and each grant the guest holds is judged by the gate as its next
//!   refresh would be: if the policies now block any of them, every session and grant of the
//!   guest ends, and the log says which policy. A lower level ends nothing; it lets the next
//!   sign-in or refresh through;
//! - **session revoked**, **credential change** and **account disabled** end every session and
//!   grant of the guest (their home says the sessions are no longer theirs);
//! - **account enabled** changes nothing here (the home decides at the next sign-in).
//!
//! An event is applied once (`Store::apply_partner_signal`): the id it came with is recorded in
//! the transaction that applies it, so a retry or a replay changes nothing.

use crate::config::SignalsDelivery;
use federation::signals::{SetError, SetSubject, WantedDelivery, WantedStream};
use risk::{RiskDetail, RiskLevel, RiskState, UserRiskClaim};
use store::{GuestChange, SignalApplied, StoreError, User, UserType};

use crate::Directory;
use crate::gate::{self, Origin, Verdict};

/// Who an event is about, as the partner names its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// Their email address (`email` subject format).
    Email(String),
    /// Their subject at the partner (`iss_sub`; the caller checked `iss` is the partner's).
    HomeSubject(String),
}

/// The event types this receiver acts on (CAEP 1.0, RISC 1.0, and tenantd's report of a
/// block back to a user's home, `SIGN_IN_BLOCKED`) and the SSF stream verification event.
pub mod event_types {
    pub use protocol::set::event_type::{
        ACCOUNT_DISABLED, ACCOUNT_ENABLED, CREDENTIAL_CHANGE, RISK_LEVEL_CHANGE, SESSION_REVOKED,
        SIGN_IN_BLOCKED, VERIFICATION,
    };
}

/// The signals a SET's `events` carry; events of other types (and a risk level change of
/// anything but a user) are not for this receiver and are left out.
pub fn signals_of(events: &serde_json::Map<String, serde_json::Value>) -> Vec<Signal> {
    use event_types::*;
    events
        .iter()
        .filter_map(|(uri, payload)| match uri.as_str() {
            RISK_LEVEL_CHANGE => {
                let text = |k: &str| payload.get(k).and_then(serde_json::Value::as_str);
                if !text("principal").is_some_and(|p| p.eq_ignore_ascii_case("USER")) {
                    return None;
                }
                let current = match text("current_level")?.to_ascii_uppercase().as_str() {
                    "LOW" => RiskLevel::Low,
                    "MEDIUM" => RiskLevel::Medium,
                    "HIGH" => RiskLevel::High,
                    _ => return None,
                };
                Some(Signal::RiskLevelChange {
                    current,
                    reason: text("risk_reason").map(str::to_owned),
                    at: payload
                        .get("event_timestamp")
                        .and_then(serde_json::Value::as_i64),
                })
            }
            SESSION_REVOKED => Some(Signal::SessionRevoked),
            CREDENTIAL_CHANGE => Some(Signal::CredentialChange),
            ACCOUNT_DISABLED => Some(Signal::AccountDisabled),
            ACCOUNT_ENABLED => Some(Signal::AccountEnabled),
            _ => None,
        })
        .collect()
}

/// What the partner says changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// CAEP `risk-level-change` of the user's risk (`principal: USER`).
    RiskLevelChange {
        /// The level now.
        current: RiskLevel,
        /// The partner's reason (a tenantd home's: Graph's `riskDetail` or `riskState`).
        reason: Option<String>,
        /// When the change happened at the partner (`event_timestamp`), if it says.
        at: Option<i64>,
    },
    /// CAEP `session-revoked`.
    SessionRevoked,
    /// CAEP `credential-change`.
    CredentialChange,
    /// RISC `account-disabled`.
    AccountDisabled,
    /// RISC `account-enabled`.
    AccountEnabled,
}

impl Signal {
    /// The event's name, for the log.
    pub fn name(&self) -> &'static str {
        match self {
            Signal::RiskLevelChange { .. } => "risk-level-change",
            Signal::SessionRevoked => "session-revoked",
            Signal::CredentialChange => "credential-change",
            Signal::AccountDisabled => "account-disabled",
            Signal::AccountEnabled => "account-enabled",
        }
    }
}

/// What an event did here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The guest it was about; `None` when the partner's user is no guest here (the event is
    /// recorded and changes nothing).
    pub guest_id: Option<String>,
    /// Now, or before (a retry or a replay).
    pub applied: SignalApplied,
    /// Why the guest's sign-ins ended, if they did.
    pub ended_because: Option<String>,
}

/// Applies partner `partner_id`'s SET `jti` about `subject`, with the events it carries, at
/// most once.
pub async fn apply(
    dir: &Directory,
    partner_id: &str,
    jti: &str,
    subject: &Subject,
    signals: &[Signal],
) -> Result<Applied, StoreError> {
    let now = dir.now();
    let guest = guest_of(dir, partner_id, subject).await?;
    let mut change = GuestChange {
        guest_id: guest.as_ref().map(|g| g.id.clone()),
        ..GuestChange::default()
    };
    let mut ended_because = None;
    if let Some(mut guest) = guest {
        for signal in signals {
            match signal {
                Signal::RiskLevelChange {
                    current,
                    reason,
                    at,
                } => {
                    // A change older than the risk held (a SET that arrives late, out of
                    // order, or after a sign-in brought a newer claim) changes nothing.
                    let held_since = guest
                        .home_user_risk
                        .as_deref()
                        .and_then(|c| serde_json::from_str::<UserRiskClaim>(c).ok())
                        .map(|c| c.updated_at);
                    if at.zip(held_since).is_some_and(|(at, held)| at < held) {
                        continue;
                    }
                    let claim = held_claim(*current, reason.as_deref(), at.unwrap_or(now));
                    let json = serde_json::to_string(&claim)
                        .map_err(|e| StoreError::Corrupt(format!("user risk claim: {e}")))?;
                    guest.home_user_risk = Some(json.clone());
                    change.home_user_risk = Some(json);
                }
                Signal::SessionRevoked | Signal::CredentialChange | Signal::AccountDisabled => {
                    ended_because
                        .get_or_insert_with(|| format!("the home signalled {}", signal.name()));
                }
                Signal::AccountEnabled => {}
            }
        }
        if ended_because.is_none() && change.home_user_risk.is_some() {
            ended_because = blocking_policy(dir, &guest).await?;
        }
        change.end_sign_ins = ended_because.is_some();
    }
    let applied = dir
        .store
        .apply_partner_signal(partner_id, jti, &change, now)
        .await?;
    let names: Vec<&str> = signals.iter().map(Signal::name).collect();
    if applied != SignalApplied::Before
        && let (Some(guest), Some(why)) = (&change.guest_id, &ended_because)
    {
        tracing::info!(
            partner = partner_id,
            guest = %guest,
            events = ?names,
            reason = %why,
            "a partner's signal ended the guest's sessions and grants"
        );
    }
    Ok(Applied {
        guest_id: change.guest_id,
        applied,
        ended_because: ended_because.filter(|_| applied != SignalApplied::Before),
    })
}

/// The user risk held for a guest after a `risk-level-change`. CAEP has no level for "no
/// risk": a home that cleared a user's risk sends `LOW` (the lowest level CAEP has), and a
/// tenantd home says why in `risk_reason` with Graph's words (a `riskDetail` such as
/// `adminDismissedAllRiskForUser`, or a `riskState` such as `remediated`). `LOW` with such a
/// reason is therefore no risk, in that state; any other reason keeps the level as sent,
/// at risk (confirmed compromised when the home says so).
pub fn held_claim(current: RiskLevel, reason: Option<&str>, now: i64) -> UserRiskClaim {
    let word = |r: &str| serde_json::Value::String(r.to_owned());
    let detail = reason
        .and_then(|r| serde_json::from_value::<RiskDetail>(word(r)).ok())
        .unwrap_or(RiskDetail::None);
    let said = reason.and_then(|r| serde_json::from_value::<RiskState>(word(r)).ok());
    let cleared_by = match (detail, said) {
        (
            RiskDetail::UserPerformedSecuredPasswordReset
            | RiskDetail::UserPerformedSecuredPasswordChange
            | RiskDetail::AdminGeneratedTemporaryPassword
            | RiskDetail::UserPassedMfaDrivenByRiskBasedPolicy,
            _,
        )
        | (_, Some(RiskState::Remediated)) => Some(RiskState::Remediated),
        (RiskDetail::AdminDismissedAllRiskForUser, _) | (_, Some(RiskState::Dismissed)) => {
            Some(RiskState::Dismissed)
        }
        (RiskDetail::AdminConfirmedSigninSafe, _) | (_, Some(RiskState::ConfirmedSafe)) => {
            Some(RiskState::ConfirmedSafe)
        }
        (_, Some(RiskState::None)) => Some(RiskState::None),
        _ => None,
    };
    match cleared_by {
        Some(state) if current <= RiskLevel::Low => UserRiskClaim {
            level: RiskLevel::None,
            state,
            detail,
            updated_at: now,
        },
        _ => UserRiskClaim {
            level: current,
            state: if current == RiskLevel::None {
                RiskState::Remediated
            } else if detail == RiskDetail::AdminConfirmedUserCompromised
                || said == Some(RiskState::ConfirmedCompromised)
            {
                RiskState::ConfirmedCompromised
            } else {
                RiskState::AtRisk
            },
            detail: if cleared_by.is_some() {
                RiskDetail::None
            } else {
                detail
            },
            updated_at: now,
        },
    }
}

/// The guest `subject` names, if they are a guest from `partner_id`.
async fn guest_of(
    dir: &Directory,
    partner_id: &str,
    subject: &Subject,
) -> Result<Option<User>, StoreError> {
    let user = match subject {
        Subject::HomeSubject(sub) => dir.store.guest_by_home_subject(partner_id, sub).await?,
        Subject::Email(email) => dir.store.user_by_email(email).await?,
    };
    Ok(user
        .filter(|u| u.user_type == UserType::Guest && u.partner_id.as_deref() == Some(partner_id)))
}

/// The first of `guest`'s grants the gate would now refuse, and why (the policy's reason).
async fn blocking_policy(dir: &Directory, guest: &User) -> Result<Option<String>, StoreError> {
    for grant in dir.store.active_grants_of(&guest.id, dir.now()).await? {
        let Some(app) = dir.app(&grant.client_id).await? else {
            continue;
        };
        let (_, a) = gate::assess_grant(
            dir,
            Origin::BackChannel,
            "shared-signals",
            &app,
            &grant,
            guest,
            gate::AlreadyRead::Nothing,
        )
        .await?;
        if gate::ends_grant(&a) {
            let reason = match &a.verdict {
                Verdict::Block { code, reason } => format!("{reason} (error code {code})"),
                _ => "a password change is required due to user risk".to_owned(),
            };
            return Ok(Some(reason));
        }
    }
    Ok(None)
}

/// What receiving one SET did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Its events were applied (or had been, for a SET received before).
    Applied(Applied),
    /// The stream's verification event (SSF §8.1.4), with the `state` the receiver asked for.
    Verification {
        /// The `state` it echoes.
        state: Option<String>,
    },
    /// A partner's report that it blocked one of this tenant's members (recorded as a
    /// `partnerReportedRisk` detection, once).
    Reported {
        /// The member.
        user_id: String,
        /// Recorded now, or before (a retry or a replay).
        applied: SignalApplied,
    },
    /// Valid, but about nothing this receiver acts on (another kind of subject or event).
    Ignored,
}

/// Why a SET was not received.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// No partner of that id sends this tenant signals.
    #[error("no partner {0} sends shared signals here")]
    UnknownPartner(String),
    /// The SET failed a check (the RFC 8935 error to answer with).
    #[error(transparent)]
    Set(#[from] federation::signals::SetError),
    /// Applying it failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks a SET partner `partner_id` sent (push or poll) and applies its events to the guest it
/// names. `aud` must name this tenant (its issuer) or its client id at the partner.
pub async fn receive(
    dir: &Directory,
    partner_id: &str,
    compact: &str,
) -> Result<Received, ReceiveError> {
    let received = receive_unmetered(dir, partner_id, compact).await;
    let result = match &received {
        Ok(Received::Applied(a)) if a.applied == SignalApplied::Before => "repeat",
        Ok(Received::Applied(_)) => "applied",
        Ok(Received::Reported { applied, .. }) if *applied == SignalApplied::Before => "repeat",
        Ok(Received::Reported { .. }) => "reported",
        Ok(Received::Verification { .. }) => "verification",
        Ok(Received::Ignored) => "ignored",
        Err(ReceiveError::Set(e)) => e.code(),
        Err(_) => "error",
    };
    // The partner label only for configured partners: the path is the caller's to choose.
    let partner = if dir.partner(partner_id).is_some() {
        partner_id.to_owned()
    } else {
        "unknown".to_owned()
    };
    metrics::counter!(
        "tenantd_shared_signals_received_total",
        "tenant" => dir.config.tenant_id.clone(),
        "partner" => partner,
        "result" => result
    )
    .increment(1);
    received
}

async fn receive_unmetered(
    dir: &Directory,
    partner_id: &str,
    compact: &str,
) -> Result<Received, ReceiveError> {
    let partner = dir
        .partner(partner_id)
        .filter(|p| p.config.shared_signals)
        .ok_or_else(|| ReceiveError::UnknownPartner(partner_id.to_owned()))?;
    let audiences = [
        dir.config.issuer.as_str(),
        partner.config.client_id.as_str(),
    ];
    let set = partner
        .upstream
        .verify_set(compact, &audiences, dir.now())
        .await?;
    if let Some(v) = set.events.get(event_types::VERIFICATION) {
        let state = v
            .get("state")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned);
        if let Some(state) = &state {
            dir.store
                .receiving_verified(partner_id, state, dir.now())
                .await?;
        }
        return Ok(Received::Verification { state });
    }
    if let Some(report) = set.events.get(event_types::SIGN_IN_BLOCKED) {
        return reported(dir, &partner, &set, report).await;
    }
    let subject = match set.subject {
        Some(SetSubject::Email(email)) => Subject::Email(email),
        Some(SetSubject::IssSub { iss, sub }) if iss == partner.config.issuer => {
            Subject::HomeSubject(sub)
        }
        _ => return Ok(Received::Ignored),
    };
    let signals = signals_of(&set.events);
    if signals.is_empty() {
        return Ok(Received::Ignored);
    }
    Ok(Received::Applied(
        apply(dir, partner_id, &set.jti, &subject, &signals).await?,
    ))
}

/// A partner's report that it blocked one of this tenant's members (named as this tenant names
/// them: `iss_sub` with this tenant's issuer, or their email): a `partnerReportedRisk`
/// detection from that partner. The detection is raised before the event's id is recorded, so
/// a crash between the two at worst makes the partner send it again, and a repeat of a
/// standing detection is not recorded twice.
async fn reported(
    dir: &Directory,
    partner: &crate::Partner,
    set: &federation::signals::ReceivedSet,
    report: &serde_json::Value,
) -> Result<Received, ReceiveError> {
    let member = match &set.subject {
        Some(SetSubject::IssSub { iss, sub }) if *iss == dir.config.issuer => {
            dir.store.user_by_id(sub).await?
        }
        Some(SetSubject::Email(email)) => dir.store.user_by_email(email).await?,
        _ => None,
    };
    let Some(member) = member.filter(|u| u.user_type == UserType::Member) else {
        return Ok(Received::Ignored);
    };
    let text = |k: &str| report.get(k).and_then(serde_json::Value::as_str);
    let level = |l: &str| match l.to_ascii_uppercase().as_str() {
        "LOW" => RiskLevel::Low,
        "MEDIUM" => RiskLevel::Medium,
        "HIGH" => RiskLevel::High,
        _ => RiskLevel::None,
    };
    let code = report.get("error_code").and_then(serde_json::Value::as_u64);
    let policy = match (text("policy"), code) {
        (Some(p), Some(c)) => format!("{p} (error code {c})"),
        (Some(p), None) => p.to_owned(),
        (None, Some(c)) => format!("error code {c}"),
        (None, None) => "a policy".to_owned(),
    };
    let report = crate::user_risk::PartnerReport {
        partner: partner.config.id.clone(),
        partner_name: partner.config.display_name.clone(),
        blocked_at: report
            .get("event_timestamp")
            .and_then(serde_json::Value::as_i64)
            .unwrap_or(set.iat),
        policy,
        sign_in_risk: text("sign_in_risk_level").map_or(RiskLevel::None, level),
        detections: report
            .get("risk_event_types")
            .and_then(serde_json::Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(serde_json::Value::as_str)
                    .take(16)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        ip: text("ip_address").and_then(|ip| ip.parse().ok()),
    };
    if dir
        .store
        .received_before(&partner.config.id, &set.jti)
        .await?
    {
        return Ok(Received::Reported {
            user_id: member.id,
            applied: SignalApplied::Before,
        });
    }
    crate::user_risk::partner_reported(dir, &member.id, &report)
        .await
        .map_err(|e| StoreError::Corrupt(format!("recording the partner's report: {e}")))?;
    let applied = dir
        .store
        .apply_partner_signal(
            &partner.config.id,
            &set.jti,
            &GuestChange::default(),
            dir.now(),
        )
        .await?;
    Ok(Received::Reported {
        user_id: member.id,
        applied,
    })
}

/// Where partner `{partner}` pushes its SETs (RFC 8935), at this tenant's issuer.
pub const PUSH_PATH: &str = "/ssf/receive/{partner}";

/// The event types this receiver asks its partners for: what a home says about its users
/// who are guests here, and what a partner says of this tenant's users it blocked there.
pub const EVENTS_REQUESTED: [&str; 6] = [
    event_types::RISK_LEVEL_CHANGE,
    event_types::SESSION_REVOKED,
    event_types::CREDENTIAL_CHANGE,
    event_types::ACCOUNT_DISABLED,
    event_types::ACCOUNT_ENABLED,
    event_types::SIGN_IN_BLOCKED,
];

/// The token `partner_id` pushes its signals with (the stream's `authorization_header`,
/// `Bearer <token>`): a tenant secret, made on first use and sealed at rest like the others, so
/// every replica hands the partner the same one.
pub async fn push_token(dir: &Directory, partner_id: &str) -> Result<String, StoreError> {
    dir.store
        .tenant_secret(
            &format!("ssf-push-token/{partner_id}"),
            &crate::secrets::random_token(),
            dir.now(),
        )
        .await
}

/// Whether an `Authorization` header carries `partner_id`'s push token.
pub async fn push_authorized(
    dir: &Directory,
    partner_id: &str,
    authorization: Option<&str>,
) -> Result<bool, StoreError> {
    let Some(presented) = authorization.and_then(|h| {
        h.split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("Bearer"))
            .map(|(_, t)| t.trim())
    }) else {
        return Ok(false);
    };
    let token = push_token(dir, partner_id).await?;
    Ok(crate::secrets::ct_eq(
        presented.as_bytes(),
        token.as_bytes(),
    ))
}

/// Why the stream from a partner could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// No partner of that id with `shared_signals = true`.
    #[error("no partner {0} sends shared signals here")]
    UnknownPartner(String),
    /// The partner's transmitter refused or could not be reached.
    #[error(transparent)]
    Partner(#[from] federation::FederationError),
    /// This tenant's database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stream from the partner is not polled (or not set up yet).
    #[error("the stream from partner {0} is not polled")]
    NotPolled(String),
}

/// A stream of signals set up at a partner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connected {
    /// Its id at the partner.
    pub stream_id: String,
    /// How it is delivered: as asked, or polled when push was asked of a partner that does
    /// not offer it.
    pub delivery: SignalsDelivery,
}

/// Sets up the stream of signals from `partner_id` at its transmitter (SSF 1.0): this tenant's
/// client there gets a token with `ssf.manage` by the client credentials grant; the stream is
/// made (or, when the partner has one for this receiver, replaced, which also repairs one the
/// partner changed) to deliver the events this receiver acts on by `delivery`: pushed to its
/// push endpoint with its push token (polled instead when the partner does not offer push),
/// or polled. Its id is kept, and a verification event asked for: [`verified`] tells when it
/// came.
pub async fn connect(
    dir: &Directory,
    partner_id: &str,
    delivery: SignalsDelivery,
) -> Result<Connected, ConnectError> {
    let partner = dir
        .partner(partner_id)
        .filter(|p| p.config.shared_signals)
        .ok_or_else(|| ConnectError::UnknownPartner(partner_id.to_owned()))?;
    let upstream = &partner.upstream;
    let token = push_token(dir, partner_id).await?;
    let config = upstream.transmitter().await?;
    let access = upstream
        .client_credentials_token(federation::signals::MANAGE_SCOPE, dir.now())
        .await?
        .secret;
    let known = dir
        .store
        .receiving_stream(partner_id)
        .await?
        .and_then(|s| s.stream_id);
    let endpoint_url = format!(
        "{}{}",
        dir.config.issuer,
        PUSH_PATH.replace("{partner}", partner_id)
    );
    let authorization_header = format!("Bearer {token}");
    let description = format!(
        "{} receives signals about its guests",
        dir.config.display_name
    );
    let push_offered = config
        .delivery_methods_supported
        .iter()
        .any(|m| m == federation::signals::PUSH_DELIVERY);
    let delivery = match delivery {
        SignalsDelivery::Push if !push_offered => {
            tracing::info!(
                partner = partner_id,
                "the partner's transmitter does not push signals: polling it"
            );
            SignalsDelivery::Poll
        }
        d => d,
    };
    let wanted = WantedStream {
        delivery: match delivery {
            SignalsDelivery::Push => WantedDelivery::Push {
                endpoint_url: &endpoint_url,
                authorization_header: &authorization_header,
            },
            SignalsDelivery::Poll => WantedDelivery::Poll,
        },
        events_requested: &EVENTS_REQUESTED,
        description: &description,
    };
    let stream = upstream
        .ensure_stream(&config, &access, &wanted, known.as_deref())
        .await?;
    let state = crate::secrets::random_token();
    dir.store
        .put_receiving_stream(
            partner_id,
            Some(&stream.stream_id),
            stream.poll_url.as_deref(),
            Some(&state),
            dir.now(),
        )
        .await?;
    if let Err(e) = upstream
        .request_verification(&config, &access, &stream.stream_id, &state)
        .await
    {
        tracing::warn!(partner = partner_id, error = %e, "the partner did not take the stream verification request");
    }
    Ok(Connected {
        stream_id: stream.stream_id,
        delivery,
    })
}

/// Whether the verification event [`connect`] asked for has come from `partner_id` (pushed
/// to any replica, or polled).
pub async fn verified(dir: &Directory, partner_id: &str) -> Result<bool, StoreError> {
    Ok(dir
        .store
        .receiving_stream(partner_id)
        .await?
        .is_some_and(|s| s.verified_at.is_some()))
}

/// How many SETs one poll asks for.
const POLL_BATCH: u32 = 100;

/// Polls the stream from `partner_id` (RFC 8936) until the partner holds no more (the first
/// request a long poll: the partner may hold it until it has something), with an
/// access token of this tenant's client there (`ssf.manage`): each SET is received as a pushed
/// one is, and acknowledged in the next request; a refused one is reported in `setErrs`,
/// never acknowledged. A SET that could not be judged now (the partner's keys or this
/// database unavailable) is neither: the partner sends it again. Returns how many SETs came.
pub async fn poll(dir: &Directory, partner_id: &str, access: &str) -> Result<usize, ConnectError> {
    let partner = dir
        .partner(partner_id)
        .filter(|p| p.config.shared_signals)
        .ok_or_else(|| ConnectError::UnknownPartner(partner_id.to_owned()))?;
    let Some(poll_url) = dir
        .store
        .receiving_stream(partner_id)
        .await?
        .and_then(|s| s.poll_url)
    else {
        return Err(ConnectError::NotPolled(partner_id.to_owned()));
    };
    let mut ack: Vec<String> = Vec::new();
    let mut errs: Vec<(String, &'static str, String)> = Vec::new();
    let mut received = 0;
    // The first request waits at the partner for a SET; the rest fetch what it still holds.
    let mut long = true;
    loop {
        let polled = partner
            .upstream
            .poll(&poll_url, access, &ack, &errs, POLL_BATCH, long)
            .await?;
        long = false;
        ack.clear();
        errs.clear();
        let got = polled.sets.len();
        for (jti, set) in polled.sets {
            received += 1;
            match receive(dir, partner_id, &set).await {
                Ok(_) => ack.push(jti),
                Err(ReceiveError::Set(SetError::Unavailable(e))) => {
                    tracing::warn!(partner = partner_id, jti = %jti, error = %e, "a polled SET could not be judged now; the partner sends it again");
                }
                Err(ReceiveError::Set(e)) => {
                    tracing::warn!(partner = partner_id, jti = %jti, error = %e, "a polled SET was refused");
                    errs.push((jti, e.code(), e.description()));
                }
                Err(ReceiveError::Store(e)) => return Err(e.into()),
                Err(ReceiveError::UnknownPartner(p)) => {
                    return Err(ConnectError::UnknownPartner(p));
                }
            }
        }
        if !polled.more_available || got == 0 {
            if !ack.is_empty() || !errs.is_empty() {
                // Acknowledge the last batch, asking for nothing more.
                partner
                    .upstream
                    .poll(&poll_url, access, &ack, &errs, 0, false)
                    .await?;
            }
            return Ok(received);
        }
    }
}

/// One partner's stream as this tenant receives it, for the admin API and pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivingOverview {
    /// The partner.
    pub partner_id: String,
    /// Its name.
    pub display_name: String,
    /// Pushed here or polled.
    pub delivery: SignalsDelivery,
    /// The stream at the partner, once set up.
    pub stream: Option<store::ReceivingStream>,
    /// Events received and applied (as long as their ids are kept).
    pub events: i64,
    /// When the last one came.
    pub last_received_at: Option<i64>,
}

/// Every partner this tenant receives signals from, with its stream and what came on it.
pub async fn receiving_overview(dir: &Directory) -> Result<Vec<ReceivingOverview>, StoreError> {
    let counts = dir.store.received_signal_summary().await?;
    let mut all = Vec::new();
    for p in dir.config.partners.iter().filter(|p| p.shared_signals) {
        let count = counts.iter().find(|c| c.partner_id == p.id);
        all.push(ReceivingOverview {
            partner_id: p.id.clone(),
            display_name: p.display_name.clone(),
            delivery: p.signals_delivery,
            stream: dir.store.receiving_stream(&p.id).await?,
            events: count.map_or(0, |c| c.events),
            last_received_at: count.and_then(|c| c.last_received_at),
        });
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cleared_risk_is_held_as_no_risk_and_a_real_low_stays_low() {
        let held = |level, reason| {
            let c = held_claim(level, reason, 7);
            (c.level, c.state, c.detail)
        };
        // A tenantd home that dismissed, remediated or confirmed safe sends LOW with its word.
        assert_eq!(
            held(RiskLevel::Low, Some("adminDismissedAllRiskForUser")),
            (
                RiskLevel::None,
                RiskState::Dismissed,
                RiskDetail::AdminDismissedAllRiskForUser
            )
        );
        assert_eq!(
            held(RiskLevel::Low, Some("userPerformedSecuredPasswordReset")),
            (
                RiskLevel::None,
                RiskState::Remediated,
                RiskDetail::UserPerformedSecuredPasswordReset
            )
        );
        assert_eq!(
            held(RiskLevel::Low, Some("confirmedSafe")),
            (RiskLevel::None, RiskState::ConfirmedSafe, RiskDetail::None)
        );
        // A genuine low (its reason the state `atRisk`), or any other transmitter's words.
        assert_eq!(
            held(RiskLevel::Low, Some("atRisk")),
            (RiskLevel::Low, RiskState::AtRisk, RiskDetail::None)
        );
        assert_eq!(
            held(RiskLevel::Low, Some("suspicious sign-in pattern")),
            (RiskLevel::Low, RiskState::AtRisk, RiskDetail::None)
        );
        assert_eq!(
            held(RiskLevel::Low, None),
            (RiskLevel::Low, RiskState::AtRisk, RiskDetail::None)
        );
        // A clearing word never lowers a level above low.
        assert_eq!(held(RiskLevel::High, Some("remediated")).0, RiskLevel::High);
        assert_eq!(
            held(RiskLevel::High, Some("adminConfirmedUserCompromised")),
            (
                RiskLevel::High,
                RiskState::ConfirmedCompromised,
                RiskDetail::AdminConfirmedUserCompromised
            )
        );
    }
}
