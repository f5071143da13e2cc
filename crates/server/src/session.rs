//! Browser sessions: a random token in a tenant-named cookie, its hash in the database.

use crate::secrets::{random_token, token_hash};
use crate::state::AppState;
use crate::web::cookie;
use axum_extra::extract::cookie::CookieJar;
use signin::gate::AlreadyRead;
use signin::sign_in::GuestSession;
use store::{Session, StoreError, User, UserStatus};

/// A live session and its user.
#[derive(Debug, Clone)]
pub struct Current {
    /// The session.
    pub session: Session,
    /// The signed-in user (active).
    pub user: User,
    /// What single sign-on judges besides, when it was read with the session.
    pub read: AlreadyRead,
}

/// The session this browser holds, if it is live and its user is still active.
pub async fn current(state: &AppState, jar: &CookieJar) -> Result<Option<Current>, StoreError> {
    let Some(c) = jar.get(&state.cookies.session) else {
        return Ok(None);
    };
    if c.value().len() != 43 {
        return Ok(None);
    }
    let now = state.now();
    match state
        .store
        .session_and_user(&token_hash(c.value()), now)
        .await?
    {
        Some(read) if read.user.status == UserStatus::Active => Ok(Some(Current {
            session: read.session,
            user: read.user,
            read: AlreadyRead::WithUser {
                user_risk: read.user_risk,
                sign_ins_version: read.sign_ins_version,
            },
        })),
        _ => Ok(None),
    }
}

/// Start a new session for a user who just authenticated on the sign-in page `page` (whose
/// interaction is deleted with the same commit). Always a new token, so a session id planted
/// before sign-in is worthless (session fixation).
pub async fn start(
    state: &AppState,
    jar: CookieJar,
    page: &str,
    user: User,
    amr: Vec<String>,
) -> Result<(CookieJar, Current), StoreError> {
    create(state, jar, page, user, amr, None, None).await
}

/// Start a session for a guest whose home tenant just signed them in; the session keeps what
/// the home said (its `amr`, its user-risk claim) for the policies evaluated on it.
pub async fn start_federated(
    state: &AppState,
    jar: CookieJar,
    page: &str,
    user: User,
    amr: Vec<String>,
    facts: &GuestSession,
) -> Result<(CookieJar, Current), StoreError> {
    // The partner token's facts judge (and are logged with) the sign-in that verified it;
    // single sign-on on this session presents no partner token, so judging that old token
    // again (older each time) would only raise stale anomalies.
    let facts = GuestSession {
        token: None,
        risk_claim: None,
        ..facts.clone()
    };
    let json = serde_json::to_string(&facts).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    create(
        state,
        jar,
        page,
        user,
        amr,
        facts.home_auth_time,
        Some(json),
    )
    .await
}

async fn create(
    state: &AppState,
    jar: CookieJar,
    page: &str,
    user: User,
    amr: Vec<String>,
    auth_time: Option<i64>,
    federation_json: Option<String>,
) -> Result<(CookieJar, Current), StoreError> {
    let now = state.now();
    // A guest authenticated at their home, not here: the session is as old as that (never
    // newer than now, whatever the home's clock says).
    let auth_time = auth_time.map_or(now, |t| t.min(now));
    let token = random_token();
    let session = Session {
        id: uuid::Uuid::new_v4().to_string(),
        token_hash: token_hash(&token),
        user_id: user.id.clone(),
        auth_time,
        amr,
        acr: None,
        created_at: now,
        expires_at: now + state.config.tokens.session,
        revoked_at: None,
        federation_json,
    };
    state
        .store
        .finish_sign_in(signin::sign_in::kept(page), &session)
        .await?;
    let jar = jar.add(cookie(state, &state.cookies.session, token, None));
    Ok((
        jar,
        Current {
            session,
            user,
            read: AlreadyRead::Nothing,
        },
    ))
}

/// Forget the session cookie.
pub fn clear(state: &AppState, jar: CookieJar) -> CookieJar {
    let mut c = cookie(state, &state.cookies.session, String::new(), Some(0));
    c.make_removal();
    jar.add(c)
}
