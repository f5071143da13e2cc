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

/// What the partner says changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// CAEP `risk-level-change` of the user's risk (`principal: USER`).
    RiskLevelChange {
        /// The level now.
        current: RiskLevel,
        /// The partner's reason, for the log.
        reason: Option<String>,
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

/// Applies partner `partner_id`'s event `jti` about `subject`.
pub async fn apply(
    dir: &Directory,
    partner_id: &str,
    jti: &str,
    subject: &Subject,
    signal: &Signal,
) -> Result<Applied, StoreError> {
    let now = dir.now();
    let guest = guest_of(dir, partner_id, subject).await?;
    let mut change = GuestChange {
        guest_id: guest.as_ref().map(|g| g.id.clone()),
        ..GuestChange::default()
    };
    let mut ended_because = None;
    if let Some(mut guest) = guest {
        match signal {
            Signal::RiskLevelChange { current, .. } => {
                let claim = UserRiskClaim {
                    level: *current,
                    state: if *current == RiskLevel::None {
                        RiskState::Remediated
                    } else {
                        RiskState::AtRisk
                    },
                    detail: RiskDetail::None,
                    updated_at: now,
                };
                let json = serde_json::to_string(&claim)
                    .map_err(|e| StoreError::Corrupt(format!("user risk claim: {e}")))?;
                guest.home_user_risk = Some(json.clone());
                change.home_user_risk = Some(json);
                ended_because = blocking_policy(dir, &guest).await?;
            }
            Signal::SessionRevoked | Signal::CredentialChange | Signal::AccountDisabled => {
                ended_because = Some(format!("the home signalled {}", signal.name()));
            }
            Signal::AccountEnabled => {}
        }
        change.end_sign_ins = ended_because.is_some();
    }
    let applied = dir
        .store
        .apply_partner_signal(partner_id, jti, &change, now)
        .await?;
    if applied != SignalApplied::Before
        && let (Some(guest), Some(why)) = (&change.guest_id, &ended_because)
    {
        tracing::info!(
            partner = partner_id,
            guest = %guest,
            event = signal.name(),
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
