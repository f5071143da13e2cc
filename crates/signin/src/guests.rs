//! Inviting guests (B2B collaboration): the domain action the CLI, the admin API and the lab
//! share. (User risk has its own module, [`crate::user_risk`]: it is only ever changed by
//! detections and the state machine, never set by hand.)

use crate::config::Config;
use store::{Invitation, NewGuest, Store, StoreError, User};

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
    if !crate::plausible_email(&email) {
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
