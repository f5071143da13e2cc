//! The tenant's users as the admin API manages them (Graph's `user`): listing with a subset of
//! OData `$filter` and keyset paging, creating members, changing and deleting users. The admin
//! API's handlers parse and render; what a change means (which password is acceptable, what
//! ends a user's sign-ins, what remediates their risk) is decided here, with no HTTP in sight.
//!
//! Members are created here; guests only by invitation ([`crate::guests`]): an address in a
//! partner's domain belongs to that partner's users, who sign in at their home tenant. A
//! password an admin sets passes the password policy and is refused when it is in the
//! leaked-credentials corpus. Disabling an account or setting its password ends the user's
//! sessions and grants (refresh tokens, and the access tokens tied to them) in the same
//! transaction; a password that must be changed at next sign-in is the admin's temporary
//! password, which remediates a member's user risk (as `tenantd user set-password --temporary`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use risk::{Actor, UserRiskEvent};
use store::{
    NewUser, Store, StoreError, User, UserCondition, UserDeletion, UserPageQuery, UserStatus,
    UserType, UserUpdate,
};

use crate::Directory;
use crate::passwords::{PasswordError, check_new_password};
use crate::user_risk::{Home, UserRiskError, password_sha1};

/// `$top` when the caller does not say.
pub const DEFAULT_TOP: i64 = 100;
/// Largest `$top` (Graph's limit for users).
pub const MAX_TOP: i64 = 999;
/// Most clauses one `$filter` may join with `and`.
pub const MAX_CLAUSES: usize = 16;
/// Longest display name (Graph's limit).
pub const MAX_DISPLAY_NAME: usize = 256;
/// Longest given name or surname (Graph's limit).
pub const MAX_NAME_PART: usize = 64;

/// The message Graph gives for a taken `userPrincipalName`.
pub const DUPLICATE_UPN: &str =
    "Another object with the same value for property userPrincipalName already exists.";

/// Why a user was not created, changed or deleted. Nothing was written in any case (except
/// where [`UserError::Risk`] says otherwise).
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// A value in the request is not acceptable; the message says which and why.
    #[error("{0}")]
    Invalid(String),
    /// Another user (member or guest) has this sign-in name.
    #[error("{DUPLICATE_UPN}")]
    DuplicateUpn,
    /// The address is in a partner's domain: that partner's users join as guests, by
    /// invitation.
    #[error(
        "{domain} is a domain of partner organization {partner}: its users sign in at their home \
         tenant and join this tenant as guests, by invitation (POST /v1.0/invitations)."
    )]
    PartnerDomain {
        /// The address's domain.
        domain: String,
        /// The partner's display name.
        partner: String,
    },
    /// The password does not meet the password policy.
    #[error(
        "The specified password does not comply with password complexity requirements: {0} \
         Please provide a different password."
    )]
    WeakPassword(&'static str),
    /// The password is in the leaked-credentials corpus.
    #[error(
        "The specified password appears in a list of leaked credentials and cannot be used. \
         Please provide a different password."
    )]
    LeakedPassword,
    /// A guest has no local password: their credentials live at their home tenant.
    #[error(
        "{email} is a guest from {home}: their password is managed at {home}, not here (a guest \
         has no local password)."
    )]
    GuestPassword {
        /// The guest's address.
        email: String,
        /// Their home tenant's display name.
        home: String,
    },
    /// No user with this id or sign-in name.
    #[error(
        "Resource '{0}' does not exist or one of its queried reference-property objects are not present."
    )]
    NotFound(String),
    /// Hashing the password failed.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// The user was created or changed, but a user-risk step after it failed (refreshing the
    /// leak fingerprint, or remediating a member's risk after a temporary password).
    #[error(transparent)]
    Risk(#[from] UserRiskError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

// ---- listing ----

/// What `GET /v1.0/users` asks for: the filter's conditions (all must hold), the page size and
/// where the page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// From `$filter`.
    pub conditions: Vec<UserCondition>,
    /// `$top`.
    pub top: i64,
    /// From `$skiptoken`: the sign-in name the previous page ended with.
    pub after: Option<String>,
}

impl Default for ListQuery {
    fn default() -> Self {
        Self {
            conditions: Vec::new(),
            top: DEFAULT_TOP,
            after: None,
        }
    }
}

impl ListQuery {
    /// Reads `$filter`, `$top` and `$skiptoken` (each as sent, decoded from the query string).
    /// Anything this server cannot apply exactly is refused with the reason, never ignored.
    pub fn parse(
        filter: Option<&str>,
        top: Option<&str>,
        skiptoken: Option<&str>,
    ) -> Result<Self, String> {
        let mut q = ListQuery::default();
        if let Some(filter) = filter {
            q.conditions = parse_filter(filter)?;
        }
        if let Some(top) = top {
            q.top = top
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=MAX_TOP).contains(n))
                .ok_or_else(|| {
                    format!("$top must be a number from 1 to {MAX_TOP}, got {top:?}.")
                })?;
        }
        if let Some(token) = skiptoken {
            q.after = Some(decode_skiptoken(token).ok_or(
                "$skiptoken is not one this server issued (take it from @odata.nextLink).",
            )?);
        }
        Ok(q)
    }
}

/// One page of users and, when more follow, the `$skiptoken` of the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPage {
    /// The users, ordered by sign-in name.
    pub users: Vec<User>,
    /// Opaque; `None` on the last page.
    pub next: Option<String>,
}

/// The users `query` asks for: filtered and paged in the database (one query, one row more
/// than the page to know whether another page follows).
pub async fn list(store: &Store, query: &ListQuery) -> Result<UserPage, StoreError> {
    let top = query.top.clamp(1, MAX_TOP);
    let mut users = store
        .list_users_page(&UserPageQuery {
            conditions: query.conditions.clone(),
            after_email: query.after.clone(),
            limit: top + 1,
        })
        .await?;
    let more = users.len() as i64 > top;
    users.truncate(usize::try_from(top).unwrap_or(0));
    let next = more
        .then(|| users.last().map(|u| encode_skiptoken(&u.email)))
        .flatten();
    Ok(UserPage { users, next })
}

const SKIPTOKEN_PREFIX: &str = "u1:";

fn encode_skiptoken(email: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{SKIPTOKEN_PREFIX}{email}"))
}

pub fn decode_skiptoken(token: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(token.trim()).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    text.strip_prefix(SKIPTOKEN_PREFIX).map(str::to_owned)
}

/// The fields `$filter` may name, in Graph's spelling.
const FILTERABLE: &str = "userPrincipalName, displayName (eq, startswith) and userType (eq)";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Text(String),
    Open,
    Close,
    Comma,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Word(w) => format!("`{w}`"),
            Token::Text(t) => format!("'{}'", t.replace('\'', "''")),
            Token::Open => "`(`".to_owned(),
            Token::Close => "`)`".to_owned(),
            Token::Comma => "`,`".to_owned(),
        }
    }
}

/// Splits a `$filter` into words, quoted strings (`''` is a quote inside one) and punctuation.
fn tokens(text: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' | ',' => {
                chars.next();
                out.push(match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    _ => Token::Comma,
                });
            }
            '\'' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some('\'') if chars.peek() == Some(&'\'') => {
                            chars.next();
                            s.push('\'');
                        }
                        Some('\'') => break,
                        Some(c) => s.push(c),
                        None => return Err(format!("$filter: the string '{s} is not closed.")),
                    }
                }
                out.push(Token::Text(s));
            }
            _ => {
                let mut w = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || matches!(c, '(' | ')' | ',' | '\'') {
                        break;
                    }
                    w.push(c);
                    chars.next();
                }
                out.push(Token::Word(w));
            }
        }
    }
    Ok(out)
}

/// A filterable field, by its Graph name (case-insensitive, as Graph reads property names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    UserPrincipalName,
    DisplayName,
    UserType,
}

fn field(word: &str) -> Result<Field, String> {
    match word.to_ascii_lowercase().as_str() {
        "userprincipalname" => Ok(Field::UserPrincipalName),
        "displayname" => Ok(Field::DisplayName),
        "usertype" => Ok(Field::UserType),
        _ => Err(format!(
            "$filter on {word:?} is not supported; supported: {FILTERABLE}, clauses joined by `and`."
        )),
    }
}

fn user_type(value: &str) -> Result<UserType, String> {
    match value.to_ascii_lowercase().as_str() {
        "member" => Ok(UserType::Member),
        "guest" => Ok(UserType::Guest),
        _ => Err(format!(
            "$filter: userType is 'Member' or 'Guest', not {value:?}."
        )),
    }
}

/// One clause of a `$filter`, as written: the field name and the quoted text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Clause {
    /// `field eq 'text'`.
    Eq(String, String),
    /// `startswith(field,'text')`.
    StartsWith(String, String),
}

/// Parses the syntax Graph's `$filter` has here: clauses `field eq 'text'` and
/// `startswith(field, 'text')` joined by `and` (at most [`MAX_CLAUSES`]); `''` is a quote inside
/// a string. Anything else (`or`, `not`, other operators, unquoted values) is refused with the
/// reason, and so is a field `known` refuses (checked as soon as it is read, so the reason
/// given is the first thing wrong).
pub fn parse_clauses(
    text: &str,
    known: impl Fn(&str) -> Result<(), String>,
) -> Result<Vec<Clause>, String> {
    let tokens = tokens(text)?;
    if tokens.is_empty() {
        return Err("$filter is empty.".to_owned());
    }
    let mut it = tokens.into_iter().peekable();
    let mut clauses = Vec::new();
    let unexpected = |t: Option<Token>, wanted: &str| match t {
        Some(t) => format!("$filter: expected {wanted}, found {}.", t.describe()),
        None => format!("$filter: expected {wanted}, found the end of the filter."),
    };
    loop {
        let clause = match it.next() {
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("startswith") => {
                if it.next() != Some(Token::Open) {
                    return Err("$filter: startswith is written startswith(field,'text').".into());
                }
                let f = match it.next() {
                    Some(Token::Word(f)) => f,
                    t => return Err(unexpected(t, "a field name")),
                };
                known(&f)?;
                match it.next() {
                    Some(Token::Comma) => {}
                    t => return Err(unexpected(t, "`,`")),
                }
                let value = match it.next() {
                    Some(Token::Text(v)) => v,
                    t => return Err(unexpected(t, "a quoted string such as 'text'")),
                };
                match it.next() {
                    Some(Token::Close) => {}
                    t => return Err(unexpected(t, "`)`")),
                }
                Clause::StartsWith(f, value)
            }
            Some(Token::Word(f)) => {
                known(&f)?;
                match it.next() {
                    Some(Token::Word(op)) if op.eq_ignore_ascii_case("eq") => {}
                    Some(Token::Word(op)) => {
                        return Err(format!(
                            "$filter: the operator {op:?} is not supported; use eq or startswith."
                        ));
                    }
                    t => return Err(unexpected(t, "eq")),
                }
                let value = match it.next() {
                    Some(Token::Text(v)) => v,
                    t => return Err(unexpected(t, "a quoted string such as 'text'")),
                };
                Clause::Eq(f, value)
            }
            t => {
                return Err(unexpected(
                    t,
                    "a clause: field eq 'text' or startswith(field,'text')",
                ));
            }
        };
        clauses.push(clause);
        if clauses.len() > MAX_CLAUSES {
            return Err(format!("$filter: at most {MAX_CLAUSES} clauses."));
        }
        match it.next() {
            None => return Ok(clauses),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("and") => {}
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("or") => {
                return Err(
                    "$filter: clauses may be joined by `and` only (`or` is not supported).".into(),
                );
            }
            t => return Err(unexpected(t, "`and` or the end of the filter")),
        }
    }
}

/// Parses Graph's `$filter` for users ([`parse_clauses`]) on `userPrincipalName`,
/// `displayName` (both operators) and `userType` (`eq 'Member'` or `'Guest'`). Text is
/// compared case-insensitively.
pub fn parse_filter(text: &str) -> Result<Vec<UserCondition>, String> {
    parse_clauses(text, |f| field(f).map(|_| ()))?
        .into_iter()
        .map(|clause| match clause {
            Clause::StartsWith(f, value) => match field(&f)? {
                Field::UserPrincipalName => Ok(UserCondition::EmailStartsWith(value)),
                Field::DisplayName => Ok(UserCondition::DisplayNameStartsWith(value)),
                Field::UserType => {
                    Err("$filter: userType supports eq only (eq 'Member' or eq 'Guest').".into())
                }
            },
            Clause::Eq(f, value) => match field(&f)? {
                Field::UserPrincipalName => Ok(UserCondition::EmailIs(value)),
                Field::DisplayName => Ok(UserCondition::DisplayNameIs(value)),
                Field::UserType => Ok(UserCondition::TypeIs(user_type(&value)?)),
            },
        })
        .collect()
}

// ---- reading ----

/// The user named by `id_or_upn`: their id, or their sign-in name (as Graph's
/// `/users/{id | userPrincipalName}`).
pub async fn find(store: &Store, id_or_upn: &str) -> Result<Option<User>, StoreError> {
    if let Some(user) = store.user_by_id(id_or_upn).await? {
        return Ok(Some(user));
    }
    if id_or_upn.contains('@') {
        return store.user_by_email(id_or_upn).await;
    }
    Ok(None)
}

async fn existing(store: &Store, id_or_upn: &str) -> Result<User, UserError> {
    find(store, id_or_upn)
        .await?
        .ok_or_else(|| UserError::NotFound(id_or_upn.to_owned()))
}

// ---- passwords ----

/// Whether `password` may be set for the account `email`: the password policy (as for every
/// new password), then the leaked-credentials corpus (a password-only entry, or a pair with
/// this address). A leaked password is refused, not merely flagged.
pub async fn check_password(store: &Store, email: &str, password: &str) -> Result<(), UserError> {
    check_new_password(password).map_err(UserError::WeakPassword)?;
    if store.is_leaked(&password_sha1(password), email).await? {
        return Err(UserError::LeakedPassword);
    }
    Ok(())
}

/// A password an admin sets.
#[derive(Clone, PartialEq, Eq)]
pub struct NewPassword {
    /// The password itself.
    pub password: String,
    /// The user must change it at their next sign-in (Graph `forceChangePasswordNextSignIn`).
    pub force_change: bool,
}

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewPassword")
            .field("password", &"<redacted>")
            .field("force_change", &self.force_change)
            .finish()
    }
}

// ---- names ----

fn display_name(name: &str) -> Result<String, UserError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(UserError::Invalid("displayName must not be empty.".into()));
    }
    if name.chars().count() > MAX_DISPLAY_NAME {
        return Err(UserError::Invalid(format!(
            "displayName must be at most {MAX_DISPLAY_NAME} characters."
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(UserError::Invalid(
            "displayName must not contain control characters.".into(),
        ));
    }
    Ok(name.to_owned())
}

/// A given name or surname: trimmed, empty means none.
fn name_part(what: &str, name: Option<&str>) -> Result<Option<String>, UserError> {
    let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    if name.chars().count() > MAX_NAME_PART || name.chars().any(char::is_control) {
        return Err(UserError::Invalid(format!(
            "{what} must be at most {MAX_NAME_PART} characters, without control characters."
        )));
    }
    Ok(Some(name.to_owned()))
}

// ---- creating ----

/// A member to create (Graph `user` with a `passwordProfile`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMember {
    /// The sign-in name: an email address.
    pub user_principal_name: String,
    /// Shown on pages and in the `name` claim.
    pub display_name: String,
    /// `given_name` claim.
    pub given_name: Option<String>,
    /// `family_name` claim.
    pub surname: Option<String>,
    /// Whether the account may sign in.
    pub account_enabled: bool,
    /// The first password.
    pub password: NewPassword,
}

/// Creates a member: the sign-in name must be an address outside every partner's domains and
/// not taken; the password passes [`check_password`] and is hashed with argon2id. Bad input
/// creates nothing.
pub async fn create_member(dir: &Directory, new: &NewMember) -> Result<User, UserError> {
    let upn = new.user_principal_name.trim().to_lowercase();
    if !crate::plausible_email(&upn) {
        return Err(UserError::Invalid(format!(
            "userPrincipalName must be an email address such as dana@contoso.test, not {:?}.",
            new.user_principal_name
        )));
    }
    if let Some(partner) = dir.partner_for_email(&upn) {
        return Err(UserError::PartnerDomain {
            domain: upn
                .rsplit_once('@')
                .map(|(_, d)| d)
                .unwrap_or_default()
                .to_owned(),
            partner: partner.config.display_name.clone(),
        });
    }
    let display_name = display_name(&new.display_name)?;
    let given_name = name_part("givenName", new.given_name.as_deref())?;
    let family_name = name_part("surname", new.surname.as_deref())?;
    check_password(&dir.store, &upn, &new.password.password).await?;
    // Checked before the (deliberately slow) hash; the unique index decides a race.
    if dir.store.user_by_email(&upn).await?.is_some() {
        return Err(UserError::DuplicateUpn);
    }
    let hash = dir.passwords.hash(&new.password.password).await?;
    let status = if new.account_enabled {
        UserStatus::Active
    } else {
        UserStatus::Disabled
    };
    let user = dir
        .store
        .insert_member(
            &NewUser {
                id: uuid::Uuid::new_v4().to_string(),
                email: upn,
                display_name,
                given_name,
                family_name,
                password_hash: Some(hash),
                must_change_password: new.password.force_change,
                now: dir.now(),
            },
            status,
        )
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => UserError::DuplicateUpn,
            e => UserError::Store(e),
        })?;
    Home::of(dir)
        .after_password_set(&user.id, &new.password.password)
        .await?;
    Ok(user)
}

// ---- changing ----

/// Changes to a user (Graph `PATCH /users/{id}`); `None` leaves a property as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserChanges {
    /// New display name.
    pub display_name: Option<String>,
    /// New given name (`Some(None)` clears it).
    pub given_name: Option<Option<String>>,
    /// New surname (`Some(None)` clears it).
    pub surname: Option<Option<String>>,
    /// Enable or disable the account.
    pub account_enabled: Option<bool>,
    /// A new password (members only).
    pub password: Option<NewPassword>,
}

/// What [`update`] did besides the changes themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Updated {
    /// The user before the change.
    pub user: User,
    /// Sessions ended.
    pub sessions_ended: u64,
    /// Grants ended (refresh tokens and the access tokens tied to them).
    pub grants_ended: u64,
}

/// The Shared Signals events of an admin's change to a user (written with the change): RISC
/// `account-disabled` / `account-enabled` when the account is blocked or unblocked, CAEP
/// `credential-change` (password, update) for a new password, and CAEP `session-revoked`
/// (admin) when the change ends the user's sign-ins.
fn update_signals(
    dir: &Directory,
    user: &User,
    changes: &UserChanges,
    password: bool,
) -> Vec<store::Signal> {
    use protocol::set::Event;
    let now = dir.now();
    let mut events = Vec::new();
    match changes.account_enabled {
        Some(false) if user.status != UserStatus::Disabled => {
            events.push(Event::account_disabled(None));
        }
        Some(true) if user.status == UserStatus::Disabled => {
            events.push(Event::account_enabled());
        }
        _ => {}
    }
    if password {
        events.push(Event::credential_change("password", "update", now));
    }
    if changes.account_enabled == Some(false) || password {
        events.push(Event::session_revoked("admin", now));
    }
    let txn = uuid::Uuid::new_v4().simple().to_string();
    events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let mut s = crate::ssf::user_signal(
                &dir.config.issuer,
                &user.id,
                e,
                &format!("{txn}-{i}"),
                now,
            );
            s.payload_json = crate::ssf::payload_json(
                &protocol::set::SubjectId::home_user(&dir.config.issuer, &user.id),
                e,
                Some(&txn),
            );
            s
        })
        .collect()
}

/// Applies `changes` to the user named by `id_or_upn` in one transaction, after checking all
/// of them (one bad value and nothing changes). Disabling the account or setting a password
/// ends the user's sessions and grants in that transaction. A password that must be changed at
/// the next sign-in is the admin's temporary password: it remediates the member's user risk
/// (`adminGeneratedTemporaryPassword`, recorded with `actor`).
pub async fn update(
    dir: &Directory,
    id_or_upn: &str,
    changes: &UserChanges,
    actor: &Actor,
) -> Result<Updated, UserError> {
    let user = existing(&dir.store, id_or_upn).await?;
    let display_name = changes
        .display_name
        .as_deref()
        .map(display_name)
        .transpose()?;
    let given_name = changes
        .given_name
        .as_ref()
        .map(|n| name_part("givenName", n.as_deref()))
        .transpose()?;
    let family_name = changes
        .surname
        .as_ref()
        .map(|n| name_part("surname", n.as_deref()))
        .transpose()?;
    let password = match &changes.password {
        None => None,
        Some(p) => {
            if user.user_type == UserType::Guest {
                return Err(guest_password(dir, &user));
            }
            check_password(&dir.store, &user.email, &p.password).await?;
            Some((dir.passwords.hash(&p.password).await?, p.force_change))
        }
    };
    let signals = update_signals(dir, &user, changes, password.is_some());
    let update = UserUpdate {
        signals,
        display_name,
        given_name,
        family_name,
        status: changes.account_enabled.map(|enabled| {
            if enabled {
                UserStatus::Active
            } else {
                UserStatus::Disabled
            }
        }),
        end_sign_ins: changes.account_enabled == Some(false) || password.is_some(),
        password,
    };
    let (sessions_ended, grants_ended) = dir
        .store
        .update_user(&user.id, &update, dir.now())
        .await
        .map_err(|e| match e {
            StoreError::NotFound => UserError::NotFound(id_or_upn.to_owned()),
            StoreError::Conflict(_) => guest_password(dir, &user),
            e => UserError::Store(e),
        })?;
    if let Some(p) = &changes.password {
        let home = Home::of(dir);
        home.after_password_set(&user.id, &p.password).await?;
        if p.force_change {
            home.remediate(
                &user.id,
                UserRiskEvent::AdminGeneratedTemporaryPassword,
                actor.clone(),
            )
            .await?;
        }
    }
    Ok(Updated {
        user,
        sessions_ended,
        grants_ended,
    })
}

fn guest_password(dir: &Directory, user: &User) -> UserError {
    let partner = user.partner_id.clone().unwrap_or_default();
    let home = dir
        .partner(&partner)
        .map_or(partner, |p| p.config.display_name.clone());
    UserError::GuestPassword {
        email: user.email.clone(),
        home,
    }
}

/// A temporary password an admin hands over (shown once, changed at the next sign-in):
/// readable, 128 bits of randomness.
pub fn temporary_password() -> String {
    crate::secrets::random_token().chars().take(22).collect()
}

// ---- deleting ----

/// Deletes the user named by `id_or_upn`, member or guest, with everything that hangs off them
/// (sessions, grants and their tokens, consents, MFA, user risk, a guest's invitations), in one
/// transaction. The sign-in log keeps its rows.
pub async fn delete(dir: &Directory, id_or_upn: &str) -> Result<(User, UserDeletion), UserError> {
    let user = existing(&dir.store, id_or_upn).await?;
    let deletion = dir
        .store
        .delete_user(&user.id)
        .await?
        .ok_or_else(|| UserError::NotFound(id_or_upn.to_owned()))?;
    Ok((user, deletion))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_into_conditions() {
        assert_eq!(
            parse_filter("userPrincipalName eq 'Ann@Example.com'").unwrap(),
            [UserCondition::EmailIs("Ann@Example.com".into())]
        );
        assert_eq!(
            parse_filter(
                "startswith(displayName,'O''Brien') and userType eq 'guest' AND \
                 startsWith( userPrincipalName , 'a and b' ) and displayname eq ''"
            )
            .unwrap(),
            [
                UserCondition::DisplayNameStartsWith("O'Brien".into()),
                UserCondition::TypeIs(UserType::Guest),
                UserCondition::EmailStartsWith("a and b".into()),
                UserCondition::DisplayNameIs(String::new()),
            ]
        );
        assert_eq!(
            parse_filter("userType eq 'Member'").unwrap(),
            [UserCondition::TypeIs(UserType::Member)]
        );
    }

    #[test]
    fn unsupported_filters_are_refused_with_the_reason() {
        for (filter, needle) in [
            ("", "empty"),
            ("   ", "empty"),
            ("mail eq 'a@b.test'", "not supported"),
            ("displayName ne 'x'", "operator \"ne\""),
            ("displayName eq x", "quoted string"),
            ("displayName eq 'x", "not closed"),
            (
                "displayName eq 'x' or displayName eq 'y'",
                "`or` is not supported",
            ),
            ("not(displayName eq 'x')", "not supported"),
            ("endswith(displayName,'x')", "not supported"),
            ("startswith(userType,'G')", "eq only"),
            ("startswith(displayName 'x')", "expected `,`"),
            ("startswith displayName", "startswith(field,'text')"),
            ("userType eq 'Admin'", "'Member' or 'Guest'"),
            ("displayName eq 'x' and", "a clause"),
            ("displayName eq 'x' displayName", "`and`"),
            ("displayName", "expected eq"),
            ("accountEnabled eq true", "not supported"),
        ] {
            let e = parse_filter(filter).unwrap_err();
            assert!(e.contains(needle), "{filter:?}: {e}");
        }
        let many = vec!["displayName eq 'x'"; MAX_CLAUSES + 1].join(" and ");
        assert!(parse_filter(&many).unwrap_err().contains("at most"));
    }

    #[test]
    fn top_and_skiptoken() {
        let q = ListQuery::parse(None, None, None).unwrap();
        assert_eq!(q, ListQuery::default());
        assert_eq!(q.top, 100);
        assert_eq!(ListQuery::parse(None, Some("999"), None).unwrap().top, 999);
        for bad in ["0", "1000", "-1", "ten", ""] {
            let e = ListQuery::parse(None, Some(bad), None).unwrap_err();
            assert!(e.contains("$top"), "{bad}: {e}");
        }
        let token = encode_skiptoken("ann@example.com");
        assert!(!token.contains("ann"), "opaque: {token}");
        assert_eq!(
            ListQuery::parse(None, None, Some(&token))
                .unwrap()
                .after
                .as_deref(),
            Some("ann@example.com")
        );
        for bad in ["", "!!", "YW5uQGV4YW1wbGUuY29t", "20"] {
            let e = ListQuery::parse(None, None, Some(bad)).unwrap_err();
            assert!(e.contains("$skiptoken"), "{bad}: {e}");
        }
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(display_name("  Ann  ").unwrap(), "Ann");
        assert!(display_name(" ").is_err());
        assert!(display_name(&"x".repeat(257)).is_err());
        assert!(display_name("a\u{0}b").is_err());
        assert_eq!(name_part("givenName", Some(" ")).unwrap(), None);
        assert_eq!(name_part("givenName", None).unwrap(), None);
        assert!(name_part("surname", Some(&"x".repeat(65))).is_err());
        let p = NewPassword {
            password: "hunter22-secret".into(),
            force_change: true,
        };
        assert!(!format!("{p:?}").contains("hunter"));
    }
}
