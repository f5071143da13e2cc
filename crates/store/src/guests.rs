//! Guests and their invitations: the guest columns of `users`, and `invitations`.
//!
//! A guest is created by an invitation, unbound (`home_subject` NULL, invitation state
//! `pendingAcceptance`). The first federated sign-in redeems it: the guest is bound to one home
//! identity, the pair (`partner_id`, `home_subject`), for good, and later sign-ins find the guest
//! by that pair ([`Store::guest_by_home_subject`]), never by email.

use crate::db::{from_row, query};
use crate::users::{UserRow, insert_user_row, normalize_email, user_columns};
use crate::{InvitationState, Store, StoreError, User, UserStatus, UserType};

/// Whether an invitation has been redeemed (Graph `invitation.status` spelling).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationStatus {
    /// Sent; not redeemed yet.
    PendingAcceptance,
    /// Redeemed: the guest signed in at their home tenant and was bound to that identity.
    Completed,
}

impl InvitationStatus {
    /// The stored (and wire) spelling: `PendingAcceptance` or `Completed`.
    pub fn as_str(self) -> &'static str {
        match self {
            InvitationStatus::PendingAcceptance => "PendingAcceptance",
            InvitationStatus::Completed => "Completed",
        }
    }

    /// Parses the stored spelling; `None` for anything else.
    pub fn parse(text: &str) -> Option<InvitationStatus> {
        match text {
            "PendingAcceptance" => Some(InvitationStatus::PendingAcceptance),
            "Completed" => Some(InvitationStatus::Completed),
            _ => None,
        }
    }
}

/// What [`Store::invite_guest`] needs to create a guest user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGuest {
    /// Caller-chosen stable id (the guest's `sub` in this tenant).
    pub id: String,
    /// The guest's email (their sign-in name at home); lowercased by the store.
    pub email: String,
    /// Name shown in pages and the `name` claim.
    pub display_name: String,
    /// The partner (home tenant) the guest comes from.
    pub partner_id: String,
    /// Creation time, unix seconds.
    pub now: i64,
}

/// An invitation of a guest (Graph `invitation`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    /// Caller-chosen id.
    pub id: String,
    /// The guest user it created.
    pub user_id: String,
    /// The invited email, lowercased.
    pub email: String,
    /// The partner (home tenant) the guest comes from.
    pub partner_id: String,
    /// Where to send the guest after redemption, if the inviter said.
    pub invite_redirect_url: Option<String>,
    /// Pending or completed.
    pub status: InvitationStatus,
    /// Creation time, unix seconds.
    pub created_at: i64,
    /// When it was redeemed, unix seconds; `None` while pending.
    pub redeemed_at: Option<i64>,
}

struct InvitationRow {
    id: String,
    user_id: String,
    email: String,
    partner_id: String,
    invite_redirect_url: Option<String>,
    status: String,
    created_at: i64,
    redeemed_at: Option<i64>,
}
from_row!(InvitationRow {
    id,
    user_id,
    email,
    partner_id,
    invite_redirect_url,
    status,
    created_at,
    redeemed_at
});

impl TryFrom<InvitationRow> for Invitation {
    type Error = StoreError;

    fn try_from(row: InvitationRow) -> Result<Invitation, StoreError> {
        let status = InvitationStatus::parse(&row.status).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "invitation {}: unknown status {:?}",
                row.id, row.status
            ))
        })?;
        Ok(Invitation {
            id: row.id,
            user_id: row.user_id,
            email: row.email,
            partner_id: row.partner_id,
            invite_redirect_url: row.invite_redirect_url,
            status,
            created_at: row.created_at,
            redeemed_at: row.redeemed_at,
        })
    }
}

macro_rules! invitation_columns {
    () => {
        "id, user_id, email, partner_id, invite_redirect_url, status, created_at, redeemed_at"
    };
}

/// The user with this id, read through `executor` (a transaction or the pool).
async fn user_with(
    executor: impl crate::db::Executor,
    id: &str,
) -> Result<Option<User>, StoreError> {
    let row: Option<UserRow> = query(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(executor)
    .await?;
    row.map(User::try_from).transpose()
}

impl Store {
    /// Invites a guest, in one transaction: creates the guest user (type guest, invitation
    /// state `pendingAcceptance`, no password, active, not bound to a home identity yet) and
    /// its invitation (`PendingAcceptance`). Returns both.
    ///
    /// [`StoreError::Conflict`] (and nothing is created) if the email (in any case) is taken by
    /// any user, member or guest, or the user id or invitation id is taken.
    pub async fn invite_guest(
        &self,
        guest: &NewGuest,
        invitation_id: &str,
        invite_redirect_url: Option<&str>,
    ) -> Result<(User, Invitation), StoreError> {
        let email = normalize_email(&guest.email);
        let user = User {
            id: guest.id.clone(),
            email: email.clone(),
            display_name: guest.display_name.clone(),
            given_name: None,
            family_name: None,
            password_hash: None,
            status: UserStatus::Active,
            must_change_password: false,
            created_at: guest.now,
            updated_at: guest.now,
            user_type: UserType::Guest,
            partner_id: Some(guest.partner_id.clone()),
            home_subject: None,
            invitation_state: Some(InvitationState::PendingAcceptance),
            home_user_risk: None,
        };
        let invitation = Invitation {
            id: invitation_id.to_owned(),
            user_id: guest.id.clone(),
            email,
            partner_id: guest.partner_id.clone(),
            invite_redirect_url: invite_redirect_url.map(str::to_owned),
            status: InvitationStatus::PendingAcceptance,
            created_at: guest.now,
            redeemed_at: None,
        };
        let mut tx = self.begin_write().await?;
        if let Err(err) = insert_user_row(&mut tx, &user).await {
            // Roll back (and release the write turn) before looking at what clashed.
            drop(tx);
            return Err(self.user_insert_error(err, &user).await);
        }
        query(concat!(
            "INSERT INTO invitations (",
            invitation_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(&invitation.id)
        .bind(&invitation.user_id)
        .bind(&invitation.email)
        .bind(&invitation.partner_id)
        .bind(&invitation.invite_redirect_url)
        .bind(invitation.status.as_str())
        .bind(invitation.created_at)
        .bind(invitation.redeemed_at)
        .execute(&mut tx)
        .await
        .map_err(|e| {
            StoreError::conflict_or_db(e, || format!("invitation exists: {}", invitation.id))
        })?;
        tx.commit().await?;
        Ok((user, invitation))
    }

    /// The latest invitation of a user (by creation time), if any.
    pub async fn invitation_for_user(
        &self,
        user_id: &str,
    ) -> Result<Option<Invitation>, StoreError> {
        let row: Option<InvitationRow> = query(concat!(
            "SELECT ",
            invitation_columns!(),
            " FROM invitations WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1"
        ))
        .bind(user_id)
        .fetch_optional(&self.db)
        .await?;
        row.map(Invitation::try_from).transpose()
    }

    /// The guest bound to the home identity (`partner_id`, `home_subject`): `None` if no guest
    /// has redeemed an invitation with that identity.
    pub async fn guest_by_home_subject(
        &self,
        partner_id: &str,
        home_subject: &str,
    ) -> Result<Option<User>, StoreError> {
        let row: Option<UserRow> = query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE partner_id = $1 AND home_subject = $2 AND user_type = 'guest'"
        ))
        .bind(partner_id)
        .bind(home_subject)
        .fetch_optional(&self.db)
        .await?;
        row.map(User::try_from).transpose()
    }

    /// Redeems a guest's invitation, in one transaction: binds the guest to the home identity
    /// (`partner_id`, `home_subject`), sets its invitation state to `accepted`, and marks its
    /// pending invitations `Completed` at `now`. Returns the updated guest.
    ///
    /// Binding happens once: redeeming again with the identity already bound returns the guest
    /// unchanged; [`StoreError::Conflict`] (and nothing changes) if the user is not a guest, is
    /// a guest of another partner, is bound to another identity, or if that identity is
    /// already bound to another guest. [`StoreError::NotFound`] if there
    /// is no such user.
    pub async fn redeem_invitation(
        &self,
        user_id: &str,
        partner_id: &str,
        home_subject: &str,
        now: i64,
    ) -> Result<User, StoreError> {
        let mut tx = self.begin_write().await?;
        let bound = query(
            "UPDATE users SET home_subject = $1, invitation_state = $2, updated_at = $3 \
             WHERE id = $4 AND user_type = 'guest' AND partner_id = $5 \
             AND home_subject IS NULL",
        )
        .bind(home_subject)
        .bind(InvitationState::Accepted.as_str())
        .bind(now)
        .bind(user_id)
        .bind(partner_id)
        .execute(&mut tx)
        .await
        .map_err(|e| {
            StoreError::conflict_or_db(e, || {
                format!("home identity already bound to another guest: {partner_id} {home_subject}")
            })
        })?;
        if bound.rows_affected() == 0 {
            let Some(user) = user_with(&mut tx, user_id).await? else {
                return Err(StoreError::NotFound);
            };
            if user.user_type == UserType::Guest
                && user.partner_id.as_deref() == Some(partner_id)
                && user.home_subject.as_deref() == Some(home_subject)
            {
                // The second of two first sign-ins at once (two tabs, a double click): the
                // first bound this very identity, so this is that guest.
                return Ok(user);
            }
            let why = if user.user_type != UserType::Guest {
                "not a guest"
            } else if user.partner_id.as_deref() != Some(partner_id) {
                "guest of another partner"
            } else {
                "invitation already redeemed"
            };
            return Err(StoreError::Conflict(format!("user {user_id}: {why}")));
        }
        query(
            "UPDATE invitations SET status = $1, redeemed_at = $2 \
             WHERE user_id = $3 AND status = $4",
        )
        .bind(InvitationStatus::Completed.as_str())
        .bind(now)
        .bind(user_id)
        .bind(InvitationStatus::PendingAcceptance.as_str())
        .execute(&mut tx)
        .await?;
        let user = user_with(&mut tx, user_id)
            .await?
            .ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(user)
    }

    /// Refreshes a guest's profile from their home tenant's claims: email (stored lowercased),
    /// display name, given and family name, and `updated_at`.
    ///
    /// [`StoreError::Conflict`] (and nothing changes) if the email is taken by another user;
    /// [`StoreError::NotFound`] if there is no guest with this id (members are never touched).
    pub async fn refresh_guest_profile(
        &self,
        user_id: &str,
        email: &str,
        display_name: &str,
        given_name: Option<&str>,
        family_name: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        let email = normalize_email(email);
        let done = query(
            "UPDATE users SET email = $1, display_name = $2, given_name = $3, \
             family_name = $4, updated_at = $5 WHERE id = $6 AND user_type = 'guest'",
        )
        .bind(&email)
        .bind(display_name)
        .bind(given_name)
        .bind(family_name)
        .bind(now)
        .bind(user_id)
        .execute(&self.db)
        .await
        .map_err(|e| {
            StoreError::conflict_or_db(e, || format!("email already registered: {email}"))
        })?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
