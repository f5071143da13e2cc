//! The sign-in in progress: one value from the app's authorization request to the code, carried
//! between pages under an id. Until someone is authenticated it holds only the app's validated
//! request, and is sealed into its id ([`begin`]); from then on it is kept in the store (an
//! interaction row, under a new random id at each step), and at the home tenant while a guest
//! signs in there.
//!
//! It starts with the validated request; the user is added once known (a password verified, a
//! partner's ID token accepted); the gate adds what it saw and holds it, bound to one browser,
//! while a step (MFA, password change) is done; federation adds where the guest was sent.

use crate::Directory;
use crate::secrets::{random_bytes, random_token};
use federation::{ClaimMapping, ClaimPresence, FlowSecrets, RiskClaimReading};
use protocol::authorize::AuthorizationRequest;
use risk::{RiskLevel, TokenIssuerFacts, UserRiskClaim};
use serde::{Deserialize, Serialize};
use store::{Interaction, StoreError};

/// A sign-in in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignIn {
    /// The validated authorization request.
    pub request: AuthorizationRequest,
    /// The sign-in's correlation id: the app's `client-request-id` when it sent a usable one
    /// (a resource tenant federating here does), else the id of the authorization request.
    pub correlation_id: String,
    /// Who is signing in, once known (a password verified, a partner's token accepted).
    #[serde(default)]
    pub user_id: Option<String>,
    /// How they authenticated so far (`pwd`, the home's `amr`, then `mfa`/`otp`).
    #[serde(default)]
    pub amr: Vec<String>,
    /// For a guest: what the home said (becomes the session's federation facts).
    #[serde(default)]
    pub guest: Option<GuestSession>,
    /// User risk the policies saw (for a guest: the home's claim when trusted).
    #[serde(default)]
    pub user_risk_level: RiskLevel,
    /// This tenant's real-time sign-in risk.
    #[serde(default)]
    pub sign_in_risk_level: RiskLevel,
    /// MFA done in this sign-in (TOTP here, or the home's MFA when trusted).
    #[serde(default)]
    pub mfa_done: bool,
    /// A secure password change done in this sign-in.
    #[serde(default)]
    pub password_changed: bool,
    /// Wrong MFA codes entered in this sign-in (the sign-in is refused at the fifth).
    #[serde(default)]
    pub mfa_failures: u32,
    /// The gate holds the sign-in for a step (MFA, password change) and judges it again when
    /// the step is done.
    #[serde(default)]
    pub held: bool,
    /// Hash of the CSRF cookie of the browser the sign-in is bound to while held or at the
    /// home: only that browser may go on with it (the URLs that carry its id could leak).
    #[serde(default)]
    pub bound_to: Option<String>,
    /// While a guest signs in at their home tenant.
    #[serde(default)]
    pub at_home: Option<AtHome>,
}

/// Where home realm discovery sent a guest, and what the answer must match.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AtHome {
    /// The id of the sign-in's page here (deleted when the sign-in completes).
    pub page: String,
    /// The partner (home tenant).
    pub partner: String,
    /// The address the user typed (what home realm discovery routed on).
    pub email: String,
    /// PKCE verifier and nonce of the request sent there.
    pub secrets: FlowSecrets,
    /// When the browser was sent: with `prompt=login`, the home must have authenticated the
    /// user after this.
    pub started_at: i64,
}

/// What a guest's session records about the federated sign-in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GuestSession {
    /// The partner the guest came through.
    pub partner: String,
    /// The home's issuer (`idp`).
    pub idp: String,
    /// The home's `amr`.
    pub home_amr: Vec<String>,
    /// The home's user-risk claim when the partner is trusted for it.
    pub user_risk: Option<UserRiskClaim>,
    /// Whether the partner's risk was believed.
    pub user_risk_trusted: bool,
    /// When the home authenticated the user (its `auth_time`, else its token's `iat`): the
    /// guest's session, and so `max_age` and the guest's ID tokens here, go by it.
    #[serde(default)]
    pub home_auth_time: Option<i64>,
    /// Whether the guest did MFA here (TOTP at this tenant) in this session.
    #[serde(default)]
    pub mfa_here: bool,
    /// The partner's ID token of this sign-in next to the partner's usual, for
    /// `tokenIssuerAnomaly`. Only for the sign-in that verified the token: a session does not
    /// keep it (single sign-on presents no partner token).
    #[serde(default)]
    pub token: Option<TokenIssuerFacts>,
    /// Whether that token carried the risk claim the partner's mapping looks for, for the
    /// sign-in log. Only for the sign-in that verified the token, like `token`.
    #[serde(default)]
    pub risk_claim: Option<RiskClaimSeen>,
    /// The self-service password reset page the home advertised in its discovery document
    /// when it signed the guest in: the block page links to it unless the partner entry names
    /// one (`password_reset_url`). Kept on the session, so a block at single sign-on has it too.
    #[serde(default)]
    pub home_password_reset_uri: Option<String>,
}

/// What the partner's claim mapping found in a token: the claim looked for and whether it was
/// there and readable. A mapping that names the wrong claim fails open (user risk reads as
/// none), so each guest sign-in's log row says what was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskClaimSeen {
    /// The mapped claim (`user_risk_claim.claim`).
    pub claim: String,
    /// Present, absent or unreadable.
    pub presence: ClaimPresence,
    /// Why an unreadable claim could not be read.
    #[serde(default)]
    pub problem: Option<String>,
}

impl RiskClaimSeen {
    /// What `mapping` read.
    pub fn new(mapping: &ClaimMapping, reading: &RiskClaimReading) -> Self {
        Self {
            claim: mapping.claim.clone(),
            presence: reading.presence(),
            problem: match reading {
                RiskClaimReading::Malformed(why) => Some(why.clone()),
                _ => None,
            },
        }
    }

    /// Adds `homeRiskClaim` (`present`, `absent`, `unreadable`), `homeRiskClaimName` and, when
    /// unreadable, `homeRiskClaimProblem` to sign-in log details.
    pub fn add_to(&self, details: &mut serde_json::Value) {
        if let Some(map) = details.as_object_mut() {
            map.insert("homeRiskClaim".into(), serde_json::json!(self.presence));
            map.insert("homeRiskClaimName".into(), self.claim.clone().into());
            if let Some(why) = &self.problem {
                map.insert("homeRiskClaimProblem".into(), why.clone().into());
            }
        }
    }
}

/// Why a stored sign-in cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// Unknown, expired or already used: the person starts again from the app.
    #[error("the sign-in is unknown or expired")]
    Expired,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored value cannot be read back.
    #[error("the stored sign-in is unreadable: {0}")]
    Unreadable(String),
}

impl SignIn {
    /// A new sign-in for a validated request.
    pub fn new(request: AuthorizationRequest, correlation_id: String) -> Self {
        Self {
            request,
            correlation_id,
            user_id: None,
            amr: Vec::new(),
            guest: None,
            user_risk_level: RiskLevel::None,
            sign_in_risk_level: RiskLevel::None,
            mfa_done: false,
            password_changed: false,
            mfa_failures: 0,
            held: false,
            bound_to: None,
            at_home: None,
        }
    }

    /// The same request after a fresh authentication of `user_id` with `amr`: nothing
    /// learned or done for an earlier user carries over.
    pub fn authenticated(self, user_id: &str, amr: Vec<String>) -> Self {
        Self {
            user_id: Some(user_id.to_owned()),
            amr,
            ..Self::new(self.request, self.correlation_id)
        }
    }

    /// Record MFA done in this sign-in: RFC 8176 `mfa` and `otp`, each once.
    pub fn mfa_passed(&mut self) {
        self.mfa_done = true;
        for method in ["mfa", "otp"] {
            if !self.amr.iter().any(|a| a == method) {
                self.amr.push(method.to_owned());
            }
        }
    }

    /// Whether the browser whose CSRF cookie hashes to `cookie_hash` is the one this sign-in
    /// is bound to (constant time).
    pub fn bound_to_browser(&self, cookie_hash: &str) -> bool {
        self.bound_to.as_deref().is_some_and(|b| {
            !b.is_empty() && crate::secrets::ct_eq(b.as_bytes(), cookie_hash.as_bytes())
        })
    }
}

/// Ids of sealed sign-ins start with this; a kept sign-in's id (base64url) has no dot.
const SEALED: &str = "s.";

/// Associated data of a sealed sign-in: nothing sealed for another purpose opens as one.
const PURPOSE: &str = "tenantd sign-in v1";

/// The longest sealed id handed out. A request that would seal longer (a very long `state`,
/// many `claims`) is kept in the store instead, so the pages' URLs stay short enough for every
/// browser and proxy.
const MAX_SEALED_LEN: usize = 2048;

/// What a sealed id carries.
#[derive(Serialize, Deserialize)]
struct Carried<S> {
    expires_at: i64,
    sign_in: S,
}

/// Begins the sign-in for a validated `request`; returns its id for the sign-in pages, and the
/// sign-in itself for the first of them.
///
/// Nobody is authenticated yet, so the sign-in is only the app's request, which the app's
/// authorization URL carries anyway: it is sealed into the id (the tenant's sealing key,
/// AES-256-GCM) and nothing is written. An authorization request that never becomes a sign-in
/// (a crawler, an abandoned tab) costs no row, and the pages before the password read none.
/// Like the authorization URL, the id can be used again until it expires; everything learned
/// once the user is known (the gate's hold, a guest's trip home) is kept in the store under a
/// new random id, and that id is used once.
pub async fn begin(
    dir: &Directory,
    request: AuthorizationRequest,
    correlation_id: String,
) -> Result<(String, SignIn), SignInError> {
    let sign_in = SignIn::new(request, correlation_id);
    let carried = Carried {
        expires_at: dir.now() + dir.config.tokens.sign_in_request,
        sign_in: &sign_in,
    };
    let json = serde_json::to_vec(&carried).map_err(|e| SignInError::Unreadable(e.to_string()))?;
    let sealed = crate::authorization_codes::key(dir)
        .await?
        .seal(random_bytes(), PURPOSE, &json);
    let id = if sealed.len() > MAX_SEALED_LEN {
        save(dir, &sign_in).await?
    } else {
        format!("{SEALED}{sealed}")
    };
    Ok((id, sign_in))
}

/// The id of the interaction row the sign-in with this id is kept in: `None` for a sealed one,
/// which has none to delete.
pub fn kept(id: &str) -> Option<&str> {
    (!id.starts_with(SEALED)).then_some(id)
}

/// Forgets the sign-in with this id (a sealed one simply expires).
pub async fn forget(dir: &Directory, id: &str) -> Result<(), SignInError> {
    if let Some(id) = kept(id) {
        dir.store.delete_interaction(id).await?;
    }
    Ok(())
}

/// Keep `sign_in` under a new random id; returns the id.
pub async fn save(dir: &Directory, sign_in: &SignIn) -> Result<String, SignInError> {
    let id = random_token();
    save_as(dir, &id, sign_in).await?;
    Ok(id)
}

/// Keep `sign_in` under `id` (a federation flow is kept under the hash of its `state`).
pub async fn save_as(dir: &Directory, id: &str, sign_in: &SignIn) -> Result<(), SignInError> {
    let now = dir.now();
    let json =
        serde_json::to_string(sign_in).map_err(|e| SignInError::Unreadable(e.to_string()))?;
    dir.store
        .create_interaction(&Interaction {
            id: id.to_owned(),
            request_json: json,
            created_at: now,
            expires_at: now + dir.config.tokens.sign_in_request,
        })
        .await?;
    Ok(())
}

/// The sign-in with this id: sealed into it, or kept under it.
pub async fn load(dir: &Directory, id: &str) -> Result<SignIn, SignInError> {
    if let Some(sealed) = id.strip_prefix(SEALED) {
        return open(dir, sealed).await;
    }
    if id.is_empty() || id.len() > 64 {
        return Err(SignInError::Expired);
    }
    let Some(i) = dir.store.interaction(id, dir.now()).await? else {
        return Err(SignInError::Expired);
    };
    read(&i.request_json)
}

/// The sign-in sealed into `sealed` by [`begin`], if it is this tenant's and has not expired.
async fn open(dir: &Directory, sealed: &str) -> Result<SignIn, SignInError> {
    if sealed.len() > MAX_SEALED_LEN {
        return Err(SignInError::Expired);
    }
    let key = crate::authorization_codes::key(dir).await?;
    let json = key.open(PURPOSE, sealed).ok_or(SignInError::Expired)?;
    let carried: Carried<SignIn> =
        serde_json::from_slice(&json).map_err(|e| SignInError::Unreadable(e.to_string()))?;
    if carried.expires_at <= dir.now() {
        return Err(SignInError::Expired);
    }
    Ok(carried.sign_in)
}

/// A stored sign-in's JSON, read back.
pub fn read(json: &str) -> Result<SignIn, SignInError> {
    serde_json::from_str(json).map_err(|e| SignInError::Unreadable(e.to_string()))
}

/// Replace the sign-in kept under `old_id` by `sign_in` under a new id (each step gets a new
/// id, so an old page's id is worthless).
pub async fn replace(
    dir: &Directory,
    old_id: &str,
    sign_in: &SignIn,
) -> Result<String, SignInError> {
    forget(dir, old_id).await?;
    save(dir, sign_in).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn the_log_says_what_the_claim_mapping_found() {
        let mapping = ClaimMapping::default();
        let mut details = serde_json::json!({"homeSubject": "s"});
        RiskClaimSeen::new(&mapping, &RiskClaimReading::Absent).add_to(&mut details);
        assert_eq!(details["homeRiskClaim"], "absent");
        assert_eq!(details["homeRiskClaimName"], "user_risk");
        assert!(details.get("homeRiskClaimProblem").is_none());
        let bad = RiskClaimReading::Malformed("claim \"user_risk\" is not a JSON object".into());
        let mut details = serde_json::json!({});
        RiskClaimSeen::new(&mapping, &bad).add_to(&mut details);
        assert_eq!(details["homeRiskClaim"], "unreadable");
        assert!(
            details["homeRiskClaimProblem"]
                .as_str()
                .unwrap()
                .contains("JSON object")
        );
    }

    fn request() -> AuthorizationRequest {
        let p = protocol::params::Params::parse(
            "client_id=app&redirect_uri=https%3A%2F%2Fapp.test%2Fcb&response_type=code&scope=openid",
        )
        .unwrap();
        let uris = vec!["https://app.test/cb".to_owned()];
        protocol::authorize::validate(
            &p,
            &protocol::authorize::ClientRules {
                client_id: "app",
                redirect_uris: &uris,
                public: false,
                allows_authorization_code: true,
                extra_scopes: &[],
            },
        )
        .unwrap()
    }

    #[test]
    fn a_new_authentication_forgets_what_the_gate_saw() {
        let mut s = SignIn::new(request(), "c1".into());
        s.held = true;
        s.mfa_done = true;
        s.bound_to = Some("h".into());
        let s = s.authenticated("u1", vec!["pwd".into()]);
        assert_eq!(s.user_id.as_deref(), Some("u1"));
        assert!(!s.held && !s.mfa_done && s.bound_to.is_none());
        assert_eq!(s.correlation_id, "c1");
    }

    #[test]
    fn mfa_adds_rfc8176_methods_once() {
        let mut s = SignIn::new(request(), "c1".into()).authenticated("u1", vec!["pwd".into()]);
        s.mfa_passed();
        s.mfa_passed();
        assert_eq!(s.amr, ["pwd", "mfa", "otp"]);
        assert!(s.mfa_done);
    }

    #[tokio::test]
    async fn a_new_sign_in_is_sealed_into_its_id_until_it_expires() {
        let (dir, clock, _) = crate::testing::directory().await;
        let (id, _) = begin(&dir, request(), "c1".into()).await.unwrap();
        assert!(id.starts_with(SEALED) && kept(&id).is_none(), "{id}");
        let back = load(&dir, &id).await.unwrap();
        assert_eq!(back.request.client_id, "app");
        assert_eq!(back.correlation_id, "c1");
        assert!(back.user_id.is_none() && !back.held);
        // Nothing was kept, so there is nothing to forget; the id works on until it expires.
        forget(&dir, &id).await.unwrap();
        assert!(load(&dir, &id).await.is_ok());
        clock.advance(dir.config.tokens.sign_in_request);
        assert!(matches!(load(&dir, &id).await, Err(SignInError::Expired)));
    }

    #[tokio::test]
    async fn a_sealed_id_that_was_altered_or_sealed_elsewhere_is_unknown() {
        let (dir, _, _) = crate::testing::directory().await;
        let (id, _) = begin(&dir, request(), "c1".into()).await.unwrap();
        let mut altered = id.clone().into_bytes();
        let last = altered.len() - 1;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).unwrap();
        // Another tenant (another sealing key) cannot open it either.
        let (other, _, _) = crate::testing::directory().await;
        let long = format!("{SEALED}{}", "A".repeat(MAX_SEALED_LEN + 1));
        for (d, id) in [
            (&dir, altered.as_str()),
            (&other, &id),
            (&dir, "s."),
            (&dir, &long),
        ] {
            assert!(
                matches!(load(d, id).await, Err(SignInError::Expired)),
                "{id}"
            );
        }
        // An authorization code, sealed with the same key for another purpose, does not open as one.
        let key = crate::authorization_codes::key(&dir).await.unwrap();
        let code = key.seal(random_bytes(), crate::authorization_codes::PURPOSE, b"{}");
        let as_sign_in = format!("{SEALED}{code}");
        assert!(matches!(
            load(&dir, &as_sign_in).await,
            Err(SignInError::Expired)
        ));
    }

    #[tokio::test]
    async fn a_request_too_long_to_seal_is_kept_and_used_once() {
        let (dir, _, _) = crate::testing::directory().await;
        let mut long = request();
        long.state = Some("s".repeat(MAX_SEALED_LEN));
        let (id, _) = begin(&dir, long, "c1".into()).await.unwrap();
        assert_eq!(kept(&id), Some(id.as_str()));
        assert_eq!(
            load(&dir, &id).await.unwrap().request.state.unwrap().len(),
            MAX_SEALED_LEN
        );
        forget(&dir, &id).await.unwrap();
        assert!(matches!(load(&dir, &id).await, Err(SignInError::Expired)));
    }

    #[test]
    fn only_the_bound_browser_goes_on() {
        let mut s = SignIn::new(request(), "c1".into());
        assert!(!s.bound_to_browser("h"));
        s.bound_to = Some("h".into());
        assert!(s.bound_to_browser("h"));
        assert!(!s.bound_to_browser("x"));
        s.bound_to = Some(String::new());
        assert!(!s.bound_to_browser(""));
    }
}
