//! Users (members and guests alike): the `users` table.

use crate::db::{DbError, FromRow, Row, from_row, query, query_assembled};
use std::fmt;

use crate::{Store, StoreError, UserRiskRecord, bool_from_db, bool_to_db};

/// Whether a user may sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserStatus {
    /// May sign in.
    Active,
    /// Refused at sign-in; existing sessions are the caller's to revoke.
    Disabled,
}

impl UserStatus {
    /// The stored (and wire) spelling: `active` or `disabled`.
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Disabled => "disabled",
        }
    }

    /// Parses the stored spelling; `None` for anything else.
    pub fn parse(text: &str) -> Option<UserStatus> {
        match text {
            "active" => Some(UserStatus::Active),
            "disabled" => Some(UserStatus::Disabled),
            _ => None,
        }
    }
}

/// Whether a user belongs to this tenant or was invited from a partner (Graph `userType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserType {
    /// A local user of this tenant, who signs in here.
    Member,
    /// A user of a partner tenant, invited here; signs in at their home tenant.
    Guest,
}

impl UserType {
    /// The stored (and wire) spelling: `member` or `guest`.
    pub fn as_str(self) -> &'static str {
        match self {
            UserType::Member => "member",
            UserType::Guest => "guest",
        }
    }

    /// Parses the stored spelling; `None` for anything else.
    pub fn parse(text: &str) -> Option<UserType> {
        match text {
            "member" => Some(UserType::Member),
            "guest" => Some(UserType::Guest),
            _ => None,
        }
    }
}

/// Where a guest stands with their invitation (Graph's `externalUserState`, spelled in
/// camelCase like the other enumerations here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationState {
    /// Invited; the guest has not signed in at their home tenant yet, so they are not bound to
    /// a home identity.
    PendingAcceptance,
    /// Redeemed: the guest is bound to one home identity (`partner_id`, `home_subject`).
    Accepted,
}

impl InvitationState {
    /// The stored (and wire) spelling: `pendingAcceptance` or `accepted`.
    pub fn as_str(self) -> &'static str {
        match self {
            InvitationState::PendingAcceptance => "pendingAcceptance",
            InvitationState::Accepted => "accepted",
        }
    }

    /// Parses the stored spelling; `None` for anything else.
    pub fn parse(text: &str) -> Option<InvitationState> {
        match text {
            "pendingAcceptance" => Some(InvitationState::PendingAcceptance),
            "accepted" => Some(InvitationState::Accepted),
            _ => None,
        }
    }
}

/// A user of this tenant. `Debug` leaves out the password hash.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// Caller-chosen stable id (the `sub`).
    pub id: String,
    /// Sign-in name, stored lowercased.
    pub email: String,
    /// Name shown in pages and the `name` claim.
    pub display_name: String,
    /// `given_name` claim.
    pub given_name: Option<String>,
    /// `family_name` claim.
    pub family_name: Option<String>,
    /// PHC-format password hash; `None` for users without a local password (e.g. guests).
    pub password_hash: Option<String>,
    /// Whether the user may sign in.
    pub status: UserStatus,
    /// The next sign-in must change the password (temporary password set by an admin).
    pub must_change_password: bool,
    /// Creation time, unix seconds.
    pub created_at: i64,
    /// Last change, unix seconds.
    pub updated_at: i64,
    /// Member (local) or guest (invited from a partner).
    pub user_type: UserType,
    /// Guests: the partner (home tenant) they come from; `None` for members.
    pub partner_id: Option<String>,
    /// Guests: their `sub` at the home tenant, set when the invitation is redeemed; `None`
    /// before that and for members.
    pub home_subject: Option<String>,
    /// Guests: whether the invitation has been redeemed; `None` for members.
    pub invitation_state: Option<InvitationState>,
    /// Guests: the last `user_risk` claim their home sent (JSON), which a refresh is judged
    /// with; `None` for members (their risk is this tenant's own) and before any claim.
    pub home_user_risk: Option<String>,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("display_name", &self.display_name)
            .field("given_name", &self.given_name)
            .field("family_name", &self.family_name)
            .field(
                "password_hash",
                &self.password_hash.as_ref().map(|_| "<redacted>"),
            )
            .field("status", &self.status)
            .field("must_change_password", &self.must_change_password)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("user_type", &self.user_type)
            .field("partner_id", &self.partner_id)
            .field("home_subject", &self.home_subject)
            .field("invitation_state", &self.invitation_state)
            .field("home_user_risk", &self.home_user_risk)
            .finish()
    }
}

/// What [`Store::insert_user`] needs; the user is a [`UserType::Member`] and starts
/// [`UserStatus::Active`] (guests are created by [`Store::invite_guest`]).
/// `Debug` leaves out the password hash.
#[derive(Clone, PartialEq, Eq)]
pub struct NewUser {
    /// Caller-chosen stable id.
    pub id: String,
    /// Sign-in name; lowercased by the store.
    pub email: String,
    /// Name shown in pages and the `name` claim.
    pub display_name: String,
    /// `given_name` claim.
    pub given_name: Option<String>,
    /// `family_name` claim.
    pub family_name: Option<String>,
    /// PHC-format password hash, if the user has a local password.
    pub password_hash: Option<String>,
    /// Force a password change at the next sign-in.
    pub must_change_password: bool,
    /// Creation time, unix seconds.
    pub now: i64,
}

impl fmt::Debug for NewUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("display_name", &self.display_name)
            .field("given_name", &self.given_name)
            .field("family_name", &self.family_name)
            .field(
                "password_hash",
                &self.password_hash.as_ref().map(|_| "<redacted>"),
            )
            .field("must_change_password", &self.must_change_password)
            .field("now", &self.now)
            .finish()
    }
}

pub(crate) struct UserRow {
    id: String,
    email: String,
    display_name: String,
    given_name: Option<String>,
    family_name: Option<String>,
    password_hash: Option<String>,
    status: String,
    must_change_password: i64,
    created_at: i64,
    updated_at: i64,
    user_type: String,
    partner_id: Option<String>,
    home_subject: Option<String>,
    invitation_state: Option<String>,
    home_user_risk: Option<String>,
}
from_row!(UserRow {
    id,
    email,
    display_name,
    given_name,
    family_name,
    password_hash,
    status,
    must_change_password,
    created_at,
    updated_at,
    user_type,
    partner_id,
    home_subject,
    invitation_state,
    home_user_risk
});

impl TryFrom<UserRow> for User {
    type Error = StoreError;

    fn try_from(row: UserRow) -> Result<User, StoreError> {
        let status = UserStatus::parse(&row.status).ok_or_else(|| {
            StoreError::Corrupt(format!("user {}: unknown status {:?}", row.id, row.status))
        })?;
        let user_type = UserType::parse(&row.user_type).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "user {}: unknown user_type {:?}",
                row.id, row.user_type
            ))
        })?;
        let invitation_state = row
            .invitation_state
            .as_deref()
            .map(|text| {
                InvitationState::parse(text).ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "user {}: unknown invitation_state {text:?}",
                        row.id
                    ))
                })
            })
            .transpose()?;
        Ok(User {
            must_change_password: bool_from_db(row.must_change_password, "must_change_password")?,
            id: row.id,
            email: row.email,
            display_name: row.display_name,
            given_name: row.given_name,
            family_name: row.family_name,
            password_hash: row.password_hash,
            status,
            created_at: row.created_at,
            updated_at: row.updated_at,
            user_type,
            partner_id: row.partner_id,
            home_subject: row.home_subject,
            invitation_state,
            home_user_risk: row.home_user_risk,
        })
    }
}

/// Every column of `users`, in [`UserRow`]'s order (for SELECTs and [`insert_user_row`]).
macro_rules! user_columns {
    () => {
        "id, email, display_name, given_name, family_name, password_hash, status, \
         must_change_password, created_at, updated_at, user_type, partner_id, home_subject, \
         invitation_state, home_user_risk"
    };
}
pub(crate) use user_columns;

/// [`user_columns!`] of the table aliased `u` in a join: the same names, so [`UserRow`] reads
/// them; the other table's clashing columns (`id`, `created_at`) must be aliased.
macro_rules! joined_user_columns {
    () => {
        "u.id, u.email, u.display_name, u.given_name, u.family_name, u.password_hash, u.status, \
         u.must_change_password, u.created_at, u.updated_at, u.user_type, u.partner_id, \
         u.home_subject, u.invitation_state, u.home_user_risk"
    };
}
pub(crate) use joined_user_columns;

/// The columns [`JoinedUserRow`] reads besides the user's: the joined user's stored risk
/// (`ur`) and the version of their sign-ins (`h`), joined by [`joined_user_risk_tables`].
macro_rules! joined_user_risk_columns {
    () => {
        "ur.user_id AS r_user_id, ur.level AS r_level, ur.state AS r_state, \
         ur.detail AS r_detail, ur.updated_at AS r_updated_at, \
         COALESCE(h.version, 0) AS sign_ins_version"
    };
}
pub(crate) use joined_user_risk_columns;

/// The joins behind [`joined_user_risk_columns`], onto a user joined as `u`.
macro_rules! joined_user_risk_tables {
    () => {
        "LEFT JOIN user_risk ur ON ur.user_id = u.id \
         LEFT JOIN sign_in_heads h ON h.user_id = u.id"
    };
}
pub(crate) use joined_user_risk_tables;

/// A user read with their stored risk and the version of their sign-ins: the columns of
/// [`joined_user_columns`] and [`joined_user_risk_columns`], whatever the read joins them to
/// (a session, a refresh token, nothing).
pub(crate) struct JoinedUserRow {
    user: UserRow,
    /// `None` if their risk was never set.
    user_risk: Option<UserRiskRecord>,
    sign_ins_version: i64,
}

impl FromRow for JoinedUserRow {
    fn from_row(row: &Row<'_>) -> Result<Self, DbError> {
        let user = UserRow::from_row(row)?;
        let user_risk = match row.get::<Option<String>>("r_user_id")? {
            None => None,
            Some(user_id) => Some(UserRiskRecord {
                user_id,
                level: row.get("r_level")?,
                state: row.get("r_state")?,
                detail: row.get("r_detail")?,
                updated_at: row.get("r_updated_at")?,
            }),
        };
        Ok(Self {
            user,
            user_risk,
            sign_ins_version: row.get("sign_ins_version")?,
        })
    }
}

impl JoinedUserRow {
    /// The user, their risk row and the version of their sign-ins.
    pub(crate) fn into_parts(self) -> Result<(User, Option<UserRiskRecord>, i64), StoreError> {
        Ok((
            User::try_from(self.user)?,
            self.user_risk,
            self.sign_ins_version,
        ))
    }
}

/// A user with their stored risk, the version of their sign-ins and their leak fingerprint,
/// read together ([`Store::user_with_risk_by_email`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserWithRisk {
    /// The user.
    pub user: User,
    /// The user's `user_risk` row; `None` if their risk was never set.
    pub user_risk: Option<UserRiskRecord>,
    /// The version of the user's sign-ins, for [`Store::recent_sign_ins`].
    pub sign_ins_version: i64,
    /// The user's leak fingerprint and when it was set, as [`Store::leak_fingerprint`] reads
    /// them; `None` if they have none.
    pub leak_fingerprint: Option<(String, i64)>,
}

struct UserWithRiskRow {
    user: JoinedUserRow,
    leak_fingerprint: Option<(String, i64)>,
}

impl FromRow for UserWithRiskRow {
    fn from_row(row: &Row<'_>) -> Result<Self, DbError> {
        let user = JoinedUserRow::from_row(row)?;
        let fingerprint: Option<String> = row.get("lf_fingerprint")?;
        let set_at: Option<i64> = row.get("lf_updated_at")?;
        Ok(Self {
            user,
            leak_fingerprint: fingerprint.zip(set_at),
        })
    }
}

/// The stored form of an email: lowercased, so lookups and uniqueness ignore case.
pub(crate) fn normalize_email(email: &str) -> String {
    email.to_lowercase()
}

/// Inserts `user` as it is (the caller has normalized the email). A unique violation comes back
/// as the raw error: see [`Store::user_insert_error`].
pub(crate) async fn insert_user_row(
    executor: impl crate::db::Executor,
    user: &User,
) -> Result<(), DbError> {
    query(concat!(
        "INSERT INTO users (",
        user_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
    ))
    .bind(&user.id)
    .bind(&user.email)
    .bind(&user.display_name)
    .bind(&user.given_name)
    .bind(&user.family_name)
    .bind(&user.password_hash)
    .bind(user.status.as_str())
    .bind(bool_to_db(user.must_change_password))
    .bind(user.created_at)
    .bind(user.updated_at)
    .bind(user.user_type.as_str())
    .bind(&user.partner_id)
    .bind(&user.home_subject)
    .bind(user.invitation_state.map(InvitationState::as_str))
    .bind(&user.home_user_risk)
    .execute(executor)
    .await?;
    Ok(())
}

/// One condition of [`Store::list_users_page`]; a page's conditions all hold (`AND`). Text is
/// compared case-insensitively, as Graph compares directory strings (emails are stored
/// lowercased; display names are compared with `LOWER`, which on SQLite folds ASCII only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserCondition {
    /// The sign-in name (`userPrincipalName`) is this address.
    EmailIs(String),
    /// The sign-in name starts with this text (taken literally: `%`, `_` and `\` match only
    /// themselves).
    EmailStartsWith(String),
    /// The display name is this text.
    DisplayNameIs(String),
    /// The display name starts with this text (taken literally).
    DisplayNameStartsWith(String),
    /// Member or guest.
    TypeIs(UserType),
}

/// One page of [`Store::list_users_page`]: users ordered by email (unique, so the order is
/// stable), after a given email (keyset paging: a page is the same whatever was added or
/// deleted before it).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserPageQuery {
    /// What every user on the page satisfies.
    pub conditions: Vec<UserCondition>,
    /// Only users whose (lowercased) email sorts after this one: the last of the previous page.
    pub after_email: Option<String>,
    /// Page size; negative counts as 0.
    pub limit: i64,
}

/// Changes to one user, applied together by [`Store::update_user`]; `None` leaves a column
/// as it is.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct UserUpdate {
    /// New display name.
    pub display_name: Option<String>,
    /// New given name (`Some(None)` clears it).
    pub given_name: Option<Option<String>>,
    /// New family name (`Some(None)` clears it).
    pub family_name: Option<Option<String>>,
    /// Enable or disable.
    pub status: Option<UserStatus>,
    /// A new password hash (PHC) and whether the next sign-in must change it. Members only.
    pub password: Option<(String, bool)>,
    /// End every session and grant of the user in the same transaction (see
    /// [`Store::end_user_sign_ins`]).
    pub end_sign_ins: bool,
    /// Shared Signals events the change causes (`account-disabled`, `credential-change`...),
    /// written to the outbox in the same transaction.
    pub signals: Vec<crate::Signal>,
}

impl fmt::Debug for UserUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserUpdate")
            .field("display_name", &self.display_name)
            .field("given_name", &self.given_name)
            .field("family_name", &self.family_name)
            .field("status", &self.status)
            .field(
                "password",
                &self.password.as_ref().map(|(_, must)| ("<redacted>", must)),
            )
            .field("end_sign_ins", &self.end_sign_ins)
            .field("signals", &self.signals.len())
            .finish()
    }
}

/// What [`Store::delete_user`] removed with the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UserDeletion {
    /// Browser sessions.
    pub sessions: u64,
    /// Grants (with their codes, refresh tokens and the access tokens tied to them).
    pub grants: u64,
}

/// `text` as a `LIKE` pattern matching what starts with it, with `\` as the escape character.
pub(crate) fn like_prefix(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// The rows that hang off a user and go with them (besides sessions and grants, counted apart),
/// children first: the refresh tokens of the user's grants, then every table with a `user_id`.
/// The foreign keys cascade too; deleting explicitly does not depend on that.
const USER_DEPENDENTS: [&str; 11] = [
    "DELETE FROM refresh_tokens WHERE grant_id IN (SELECT id FROM grants WHERE user_id = $1)",
    "DELETE FROM consents WHERE user_id = $1",
    "DELETE FROM mfa_methods WHERE user_id = $1",
    "DELETE FROM recovery_codes WHERE user_id = $1",
    "DELETE FROM email_otps WHERE user_id = $1",
    "DELETE FROM email_otp_methods WHERE user_id = $1",
    "DELETE FROM user_risk WHERE user_id = $1",
    "DELETE FROM risk_history WHERE user_id = $1",
    "DELETE FROM risk_detections WHERE user_id = $1",
    "DELETE FROM leak_fingerprints WHERE user_id = $1",
    "DELETE FROM invitations WHERE user_id = $1",
];

impl Store {
    /// Creates an active user. The email is stored lowercased.
    ///
    /// Fails with [`StoreError::Conflict`] when the email (in any case) or the id is taken.
    pub async fn insert_user(&self, new: &NewUser) -> Result<User, StoreError> {
        self.insert_member(new, UserStatus::Active).await
    }

    /// Creates a member with the given status (an admin may create an account disabled). The
    /// email is stored lowercased.
    ///
    /// Fails with [`StoreError::Conflict`] when the email (in any case) or the id is taken.
    pub async fn insert_member(
        &self,
        new: &NewUser,
        status: UserStatus,
    ) -> Result<User, StoreError> {
        let user = User {
            id: new.id.clone(),
            email: normalize_email(&new.email),
            display_name: new.display_name.clone(),
            given_name: new.given_name.clone(),
            family_name: new.family_name.clone(),
            password_hash: new.password_hash.clone(),
            status,
            must_change_password: new.must_change_password,
            created_at: new.now,
            updated_at: new.now,
            user_type: UserType::Member,
            partner_id: None,
            home_subject: None,
            invitation_state: None,
            home_user_risk: None,
        };
        if let Err(err) = insert_user_row(&self.db, &user).await {
            return Err(self.user_insert_error(err, &user).await);
        }
        Ok(user)
    }

    /// Explains why inserting `user` failed: a unique violation becomes
    /// [`StoreError::Conflict`] naming the email or the id that is taken. Call it after the
    /// failed statement's transaction (if any) is gone: it reads through the pool.
    pub(crate) async fn user_insert_error(&self, err: DbError, user: &User) -> StoreError {
        let unique = err.is_unique_violation();
        if !unique {
            return StoreError::Database(err);
        }
        let email_taken = match self.user_by_email(&user.email).await {
            Ok(found) => found.is_some(),
            Err(lookup) => return lookup,
        };
        StoreError::conflict_or_db(err, || {
            if email_taken {
                format!("email already registered: {}", user.email)
            } else {
                format!("user id already exists: {}", user.id)
            }
        })
    }

    /// The user with this id.
    pub async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        let row: Option<UserRow> = query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.db)
        .await?;
        row.map(User::try_from).transpose()
    }

    /// The user with this email, compared case-insensitively.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        let row: Option<UserRow> = query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE email = $1"
        ))
        .bind(normalize_email(email))
        .fetch_optional(&self.db)
        .await?;
        row.map(User::try_from).transpose()
    }

    /// [`Store::user_by_email`], with the user's stored risk, the version of their sign-ins and
    /// their leak fingerprint in the same read: what a password sign-in judges and checks
    /// besides the user (see [`UserWithRisk`]), without a round trip of its own for each.
    pub async fn user_with_risk_by_email(
        &self,
        email: &str,
    ) -> Result<Option<UserWithRisk>, StoreError> {
        let row: Option<UserWithRiskRow> = query(concat!(
            "SELECT ",
            joined_user_columns!(),
            ", ",
            joined_user_risk_columns!(),
            ", lf.fingerprint AS lf_fingerprint, lf.updated_at AS lf_updated_at FROM users u ",
            joined_user_risk_tables!(),
            " LEFT JOIN leak_fingerprints lf ON lf.user_id = u.id WHERE u.email = $1"
        ))
        .bind(normalize_email(email))
        .fetch_optional(&self.db)
        .await?;
        row.map(|r| {
            let (user, user_risk, sign_ins_version) = r.user.into_parts()?;
            Ok(UserWithRisk {
                user,
                user_risk,
                sign_ins_version,
                leak_fingerprint: r.leak_fingerprint,
            })
        })
        .transpose()
    }

    /// All users, ordered by email.
    pub async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let rows: Vec<UserRow> = query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users ORDER BY email, id"
        ))
        .fetch_all(&self.db)
        .await?;
        rows.into_iter().map(User::try_from).collect()
    }

    /// Enables or disables a user. [`StoreError::NotFound`] if there is no such user.
    pub async fn set_user_status(
        &self,
        id: &str,
        status: UserStatus,
        now: i64,
    ) -> Result<(), StoreError> {
        let done = query("UPDATE users SET status = $1, updated_at = $2 WHERE id = $3")
            .bind(status.as_str())
            .bind(now)
            .bind(id)
            .execute(&self.db)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Records the `user_risk` claim (JSON) a guest's home just sent, or `None` when it sent
    /// none. Guests only: a member's risk is this tenant's own. [`StoreError::NotFound`] if
    /// there is no such guest.
    pub async fn set_home_user_risk(
        &self,
        id: &str,
        claim_json: Option<&str>,
    ) -> Result<(), StoreError> {
        let done =
            query("UPDATE users SET home_user_risk = $1 WHERE id = $2 AND user_type = 'guest'")
                .bind(claim_json)
                .bind(id)
                .execute(&self.db)
                .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Replaces a member's password hash and sets whether the next sign-in must change it.
    /// [`StoreError::NotFound`] if there is no such user, [`StoreError::Conflict`] for a guest.
    pub async fn set_password(
        &self,
        id: &str,
        hash: &str,
        must_change_password: bool,
        now: i64,
    ) -> Result<(), StoreError> {
        self.set_password_signalled(id, hash, must_change_password, now, &[])
            .await
    }

    /// [`Store::set_password`], writing `signals` (CAEP `credential-change`) to the Shared
    /// Signals outbox in the same transaction.
    pub async fn set_password_signalled(
        &self,
        id: &str,
        hash: &str,
        must_change_password: bool,
        now: i64,
        signals: &[crate::Signal],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let done = {
            // Members only: a guest's credentials live at their home tenant, and a local
            // password would let them sign in here around the home's risk.
            query(
                "UPDATE users SET password_hash = $1, must_change_password = $2, updated_at = $3 \
                 WHERE id = $4 AND user_type = 'member'",
            )
            .bind(hash)
            .bind(bool_to_db(must_change_password))
            .bind(now)
            .bind(id)
            .execute(&mut tx)
            .await?
        };
        if done.rows_affected() == 0 {
            drop(tx);
            return Err(match self.user_by_id(id).await? {
                Some(_) => StoreError::Conflict(
                    "a guest has no local password (their credentials live at their home tenant)"
                        .into(),
                ),
                None => StoreError::NotFound,
            });
        }
        crate::ssf::enqueue_signals(&mut tx, signals).await?;
        tx.commit().await?;
        Ok(())
    }

    /// One page of users matching every condition of `query`, ordered by email.
    pub async fn list_users_page(&self, query: &UserPageQuery) -> Result<Vec<User>, StoreError> {
        let mut conditions: Vec<String> = Vec::new();
        let mut args: Vec<String> = Vec::new();
        let mut push = |condition: &str, arg: String| {
            args.push(arg);
            conditions.push(condition.replace('?', &format!("${}", args.len())));
        };
        for c in &query.conditions {
            match c {
                UserCondition::EmailIs(email) => push("email = ?", normalize_email(email)),
                UserCondition::EmailStartsWith(prefix) => push(
                    r"email LIKE ? ESCAPE '\'",
                    like_prefix(&normalize_email(prefix)),
                ),
                UserCondition::DisplayNameIs(name) => {
                    push("LOWER(display_name) = LOWER(?)", name.clone());
                }
                UserCondition::DisplayNameStartsWith(prefix) => push(
                    r"LOWER(display_name) LIKE LOWER(?) ESCAPE '\'",
                    like_prefix(prefix),
                ),
                UserCondition::TypeIs(t) => push("user_type = ?", t.as_str().to_owned()),
            }
        }
        if let Some(after) = &query.after_email {
            push("email > ?", normalize_email(after));
        }
        let mut sql = String::from(concat!("SELECT ", user_columns!(), " FROM users"));
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        sql.push_str(&format!(" ORDER BY email LIMIT ${}", args.len() + 1));
        let mut q = query_assembled(sql);
        for arg in args {
            q = q.bind(arg);
        }
        let rows: Vec<UserRow> = q.bind(query.limit.max(0)).fetch_all(&self.db).await?;
        rows.into_iter().map(User::try_from).collect()
    }

    /// Applies `update` to the user `id` in one transaction, ending the user's sessions and
    /// grants in it when asked. Returns how many sessions and grants were ended.
    ///
    /// [`StoreError::NotFound`] if there is no such user; [`StoreError::Conflict`] for a
    /// password on a guest (their credentials live at their home tenant). Nothing changes
    /// when it fails.
    pub async fn update_user(
        &self,
        id: &str,
        update: &UserUpdate,
        now: i64,
    ) -> Result<(u64, u64), StoreError> {
        let mut tx = self.begin_write().await?;
        let found: Option<(String,)> = query("SELECT user_type FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut tx)
            .await?;
        let Some((user_type,)) = found else {
            return Err(StoreError::NotFound);
        };
        if update.password.is_some() && user_type != UserType::Member.as_str() {
            return Err(StoreError::Conflict(
                "a guest has no local password (their credentials live at their home tenant)"
                    .into(),
            ));
        }
        enum Value<'a> {
            Text(Option<&'a str>),
            Int(i64),
        }
        let mut sets: Vec<String> = Vec::new();
        let mut values: Vec<Value<'_>> = Vec::new();
        let mut set = |column: &str, value| {
            values.push(value);
            sets.push(format!("{column} = ${}", values.len()));
        };
        if let Some(name) = &update.display_name {
            set("display_name", Value::Text(Some(name)));
        }
        if let Some(name) = &update.given_name {
            set("given_name", Value::Text(name.as_deref()));
        }
        if let Some(name) = &update.family_name {
            set("family_name", Value::Text(name.as_deref()));
        }
        if let Some(status) = update.status {
            set("status", Value::Text(Some(status.as_str())));
        }
        if let Some((hash, must_change)) = &update.password {
            set("password_hash", Value::Text(Some(hash)));
            set("must_change_password", Value::Int(bool_to_db(*must_change)));
        }
        set("updated_at", Value::Int(now));
        let sql = format!(
            "UPDATE users SET {} WHERE id = ${}",
            sets.join(", "),
            values.len() + 1
        );
        let mut q = query_assembled(sql);
        for v in values {
            q = match v {
                Value::Text(t) => q.bind(t),
                Value::Int(i) => q.bind(i),
            };
        }
        q.bind(id).execute(&mut tx).await?;
        let ended = if update.end_sign_ins {
            crate::grants::end_user_sign_ins_in(&mut tx, id, now).await?
        } else {
            (0, 0)
        };
        crate::ssf::enqueue_signals(&mut tx, &update.signals).await?;
        tx.commit().await?;
        Ok(ended)
    }

    /// Deletes the user `id` and everything that hangs off them (sessions, grants with their
    /// codes and refresh tokens, consents, MFA, user risk with its history and detections, the
    /// leak fingerprint, a guest's invitations) in one transaction. The sign-in log keeps its
    /// rows (it records who signed in, whatever happened to them since). `None` if there is no
    /// such user (nothing changes).
    pub async fn delete_user(&self, id: &str) -> Result<Option<UserDeletion>, StoreError> {
        let mut tx = self.begin_write().await?;
        for sql in USER_DEPENDENTS {
            query(sql).bind(id).execute(&mut tx).await?;
        }
        let mut deletion = UserDeletion::default();
        for (count, sql) in [
            (
                &mut deletion.sessions,
                "DELETE FROM sessions WHERE user_id = $1",
            ),
            (
                &mut deletion.grants,
                "DELETE FROM grants WHERE user_id = $1",
            ),
        ] {
            *count = query(sql).bind(id).execute(&mut tx).await?.rows_affected();
        }
        let deleted = query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&mut tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            // Dropping the transaction rolls it back (there was nothing to delete anyway).
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some(deletion))
    }
}
