//! Inviting guests (B2B collaboration) and setting a member's user risk: the domain actions the
//! CLI, the admin API and the lab share.

use crate::config::Config;
use risk::{RiskDetail, RiskLevel, RiskState};
use store::{Invitation, NewGuest, Store, StoreError, User, UserRiskRecord};

/// Why an invitation was not created. Nothing is written in any case.
#[derive(Debug, thiserror::Error)]
pub enum InviteError {
    /// Not an email address.
    #[error("{0:?} is not an email address")]
    BadEmail(String),
    /// No partner with this id is configured.
    #[error("no partner {0:?} is configured (see [[partners]] in the tenant config)")]
    UnknownPartner(String),
    /// The redirect URL is not an absolute http(s) URL.
    #[error("inviteRedirectUrl must be an absolute https (or loopback http) URL")]
    BadRedirect,
    /// A user with this address exists already.
    #[error("a user with the address {0} already exists")]
    Exists(String),
    /// Storage failed.
    #[error(transparent)]
    Store(StoreError),
}

/// Invite `email` as a guest from `partner_id`. The guest exists at once (pending acceptance,
/// no password); their first federated sign-in through that partner redeems the invitation.
pub async fn invite(
    store: &Store,
    config: &Config,
    email: &str,
    partner_id: &str,
    display_name: Option<&str>,
    redirect_url: Option<&str>,
    now: i64,
) -> Result<(User, Invitation), InviteError> {
    let email = email.trim().to_lowercase();
    if !crate::login::plausible_email(&email) {
        return Err(InviteError::BadEmail(email));
    }
    if !config.partners.iter().any(|p| p.id == partner_id) {
        return Err(InviteError::UnknownPartner(partner_id.to_owned()));
    }
    if let Some(u) = redirect_url {
        let ok = url::Url::parse(u).is_ok_and(|url| {
            url.scheme() == "https"
                || (url.scheme() == "http"
                    && matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")))
        });
        if !ok {
            return Err(InviteError::BadRedirect);
        }
    }
    let name = display_name
        .map(str::to_owned)
        .unwrap_or_else(|| email.split('@').next().unwrap_or_default().to_owned());
    let guest = NewGuest {
        id: uuid::Uuid::new_v4().to_string(),
        email: email.clone(),
        display_name: name,
        partner_id: partner_id.to_owned(),
        now,
    };
    store
        .invite_guest(&guest, &uuid::Uuid::new_v4().to_string(), redirect_url)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => InviteError::Exists(email),
            e => InviteError::Store(e),
        })
}

/// Why user risk was not set.
#[derive(Debug, thiserror::Error)]
pub enum RiskError {
    /// The user is a guest: their risk belongs to their home tenant (seed: a resource cannot
    /// remediate or change a guest's risk).
    #[error("{email} is a guest from {partner}: their user risk is held by their home tenant")]
    Guest {
        /// The guest's address.
        email: String,
        /// The home tenant.
        partner: String,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Set a member's user risk by hand, recorded in the risk history with who did it.
pub async fn set_user_risk(
    store: &Store,
    user: &User,
    level: RiskLevel,
    state: RiskState,
    detail: RiskDetail,
    actor: &str,
    now: i64,
) -> Result<(), RiskError> {
    if let Some(partner) = &user.partner_id {
        return Err(RiskError::Guest {
            email: user.email.clone(),
            partner: partner.clone(),
        });
    }
    let record = UserRiskRecord {
        user_id: user.id.clone(),
        level: level.as_str().to_owned(),
        state: state.as_str().to_owned(),
        detail: detail.as_str().to_owned(),
        updated_at: now,
    };
    store
        .set_user_risk(&record, actor, Some("set by an administrator"))
        .await?;
    Ok(())
}
