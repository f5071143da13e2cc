//! The relying party a resource tenant runs against one partner: discovery (cached), the
//! authorization request (code flow, PKCE S256, `state`, `nonce`, `login_hint`), and the
//! callback (RFC 9207 `iss`, code exchange, ID token verification with the cached JWKS, refreshed
//! once when the token names a key the cache does not hold, so a partner's key rotation is
//! picked up without a restart). Any key the partner publishes in its JWKS is the partner's:
//! which one signed is reported, never judged.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreClaimName, CoreClaimType,
    CoreClient, CoreClientAuthMethod, CoreGrantType, CoreIdToken, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreJwsSigningAlgorithm,
    CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{
    AccessTokenHash, AdditionalProviderMetadata, AuthenticationContextClass, AuthorizationCode,
    ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, DiscoveryError, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, IssuerUrl, JwsSigningAlgorithm as _, LoginHint, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, ProviderMetadata, RedirectUrl,
    RequestTokenError, Scope, SignatureVerificationError, TokenResponse,
};
use protocol::jwt::{KeySet, PublicKey, SigningKey};
use risk::TokenIssuerFacts;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use tokio::sync::Mutex;

use crate::certificate::certificate_problem;
use crate::mapping::{ClaimMapping, RiskClaimReading};
use crate::{FederationError, TokenRefusal};

/// How far the partner's clock may be from ours when checking `exp` and `iat`.
pub const CLOCK_SKEW_SECS: i64 = 60;

/// The oldest `iat` accepted on an ID token fresh from the token endpoint.
pub const MAX_ID_TOKEN_AGE_SECS: i64 = 600;

/// How the resource authenticates at the partner's token endpoint.
pub enum Credential {
    /// `client_secret_basic` with this secret.
    Secret(String),
    /// `private_key_jwt` (RFC 7523), signed with the active key of this set.
    PrivateKeyJwt(KeySet),
}

impl Credential {
    /// `private_key_jwt` with one key.
    pub fn private_key(key: SigningKey) -> Self {
        Credential::PrivateKeyJwt(KeySet::new(vec![key], 0))
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Secret(_) => f.write_str("Secret(<redacted>)"),
            Credential::PrivateKeyJwt(_) => f.write_str("PrivateKeyJwt"),
        }
    }
}

/// An access token of this tenant's client at the partner (the client credentials grant).
#[derive(Clone)]
pub struct ClientToken {
    /// The token itself: a secret, never logged.
    pub secret: String,
    /// How long the partner said it lasts (`expires_in`), if it said.
    pub expires_in: Option<std::time::Duration>,
}

impl std::fmt::Debug for ClientToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientToken")
            .field("secret", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// What the resource needs to sign guests in through one partner.
#[derive(Debug)]
pub struct PartnerSettings {
    /// Partner id (the `home_tenant` claim, the sign-in log's `homeTenantId`).
    pub id: String,
    /// The partner's issuer, exactly as its ID tokens spell `iss`.
    pub issuer: String,
    /// The client id the resource holds at the partner.
    pub client_id: String,
    /// How the resource authenticates there.
    pub credential: Credential,
    /// The resource's callback URL registered at the partner.
    pub redirect_uri: String,
    /// Scopes asked for besides `openid`.
    pub scopes: Vec<String>,
    /// Where user risk is in the partner's ID token.
    pub claim_mapping: ClaimMapping,
}

/// Discovery fields beyond what openidconnect's core metadata reads.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct ExtraMetadata {
    /// RFC 9207 §3.
    #[serde(default)]
    authorization_response_iss_parameter_supported: Option<bool>,
    /// tenantd's extension: the home's self-service password reset page. Read as any JSON
    /// value, so a home that puts something odd there still federates.
    #[serde(default)]
    password_reset_uri: Option<Value>,
}
impl AdditionalProviderMetadata for ExtraMetadata {}

pub(crate) type Metadata = ProviderMetadata<
    ExtraMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

type OidcClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// One discovery of the partner: metadata and JWKS as fetched together.
pub(crate) struct Provider {
    client: OidcClient,
    /// The partner's public keys (its JWKS), as JSON, by which its Security Event Tokens are
    /// checked (`crate::signals`).
    pub(crate) jwks: Vec<Value>,
    /// The same keys parsed, for ID token signatures: parsing a JWK costs about half as much as
    /// checking an ES256 signature with it, and every federated sign-in checks one.
    parsed_keys: Vec<(CoreJsonWebKey, PublicKey)>,
    /// The `alg`s the partner signs ID tokens with (its discovery document).
    id_token_algs: Vec<CoreJwsSigningAlgorithm>,
    iss_parameter_supported: bool,
    token_endpoint: Option<String>,
    password_reset_uri: Option<String>,
}

/// The secrets of one outgoing authorization request, kept by the caller (server-side, keyed by
/// `state`) until the callback.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlowSecrets {
    /// The `nonce` the ID token must carry.
    pub nonce: String,
    /// The PKCE verifier for the code exchange.
    pub pkce_verifier: String,
}

/// An authorization request to send the browser to.
#[derive(Debug)]
pub struct AuthorizationRedirect {
    /// The partner's authorize URL with every parameter.
    pub url: String,
    /// The `state` parameter: the key the caller stores [`FlowSecrets`] under.
    pub state: String,
    /// What the callback needs.
    pub secrets: FlowSecrets,
}

/// The query of the partner's redirect back to the resource.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct CallbackParams {
    /// Authorization code.
    pub code: Option<String>,
    /// `state`, as sent.
    pub state: Option<String>,
    /// RFC 9207 issuer identifier.
    pub iss: Option<String>,
    /// Error code from the partner.
    pub error: Option<String>,
    /// Its description.
    pub error_description: Option<String>,
}

/// What an app asked of the user's authentication (OIDC Core §3.1.2.1), forwarded to the home:
/// a resource cannot authenticate a guest again itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reauthentication {
    /// `prompt=login`: authenticate again even with a session at the home.
    pub login: bool,
    /// `max_age` in seconds.
    pub max_age: Option<u64>,
    /// `acr_values`, in order of preference.
    pub acr_values: Vec<String>,
}

/// Who the partner says signed in, from a verified ID token.
#[derive(Debug, Clone)]
pub struct HomeIdentity {
    /// The partner's issuer (`idp` in the resource's tokens).
    pub issuer: String,
    /// The partner's `sub` for the user.
    pub subject: String,
    /// `email`, lowercased.
    pub email: Option<String>,
    /// `email_verified` (OIDC Core §5.1): true only when the home sent the boolean `true`
    /// (some homes send the string "true"; that counts too). Anything else is unverified.
    pub email_verified: bool,
    /// `name`.
    pub name: Option<String>,
    /// `given_name`.
    pub given_name: Option<String>,
    /// `family_name`.
    pub family_name: Option<String>,
    /// `amr` as the partner sent it.
    pub amr: Vec<String>,
    /// `auth_time`, if sent.
    pub auth_time: Option<i64>,
    /// `iat`.
    pub issued_at: i64,
    /// The user-risk claim, as the partner's mapping reads it.
    pub user_risk: RiskClaimReading,
    /// What the resource knows about the token itself (its `kid`, `iat`, `auth_time`, claim
    /// names), for `tokenIssuerAnomaly`.
    /// `usual_claim_names` is left empty: the caller keeps the partner's claim profile.
    pub token: TokenIssuerFacts,
    /// The self-service password reset page the partner advertises in its discovery document
    /// (`password_reset_uri`), when it is an https (or loopback http) URL: where a guest blocked
    /// at the resource can remediate.
    pub password_reset_uri: Option<String>,
}

/// The relying party for one partner. Cheap to share behind an `Arc`.
pub struct Upstream {
    settings: PartnerSettings,
    http: reqwest::Client,
    // Held across discovery, so concurrent sign-ins wait for one discovery instead of each
    // starting their own.
    current: Mutex<Option<Arc<Provider>>>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("partner", &self.settings.id)
            .field("issuer", &self.settings.issuer)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// A relying party for `settings`, talking through `http` (which must not follow redirects
    /// and should carry the partner's TLS trust and timeouts).
    pub fn new(settings: PartnerSettings, http: reqwest::Client) -> Self {
        Self {
            settings,
            http,
            current: Mutex::new(None),
        }
    }

    /// The settings this relying party was built with.
    pub fn settings(&self) -> &PartnerSettings {
        &self.settings
    }

    /// The HTTP client that talks to the partner (its TLS trust and timeout).
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Builds the authorization request that sends a guest to the partner. `correlation_id`
    /// travels as `client-request-id` so both tenants log the sign-in under the same id.
    pub async fn authorization_redirect(
        &self,
        login_hint: Option<&str>,
        correlation_id: &str,
        reauthentication: &Reauthentication,
    ) -> Result<AuthorizationRedirect, FederationError> {
        let provider = self.provider().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = provider
            .client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge)
            .add_extra_param("client-request-id", correlation_id);
        for scope in &self.settings.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        if let Some(hint) = login_hint {
            request = request.set_login_hint(LoginHint::new(hint.to_owned()));
        }
        // Only the home can authenticate a guest again: what the app asked for goes there.
        if reauthentication.login {
            request = request.add_prompt(CoreAuthPrompt::Login);
        }
        if let Some(max_age) = reauthentication.max_age {
            request = request.set_max_age(std::time::Duration::from_secs(max_age));
        }
        for acr in &reauthentication.acr_values {
            request = request.add_auth_context_value(AuthenticationContextClass::new(acr.clone()));
        }
        let (url, state, nonce) = request.url();
        Ok(AuthorizationRedirect {
            url: url.to_string(),
            state: state.secret().clone(),
            secrets: FlowSecrets {
                nonce: nonce.secret().clone(),
                pkce_verifier: verifier.secret().clone(),
            },
        })
    }

    /// Finishes a sign-in from the partner's redirect: checks the RFC 9207 `iss`, turns a
    /// partner error into [`FederationError::HomeError`], exchanges the code and verifies the ID
    /// token (signature, `iss`, `aud`, `exp`/`iat` within [`CLOCK_SKEW_SECS`], `nonce`,
    /// `at_hash`). `now` is unix seconds. The caller has already matched `state`.
    ///
    /// The identity carries [`HomeIdentity::token`]: the signing key's first-seen time is the
    /// `now` of the first completed sign-in whose JWKS held it.
    pub async fn complete(
        &self,
        callback: &CallbackParams,
        secrets: &FlowSecrets,
        now: i64,
    ) -> Result<HomeIdentity, FederationError> {
        // RFC 9207 §2.4: compare before looking at anything else in the response, errors too.
        match &callback.iss {
            Some(iss) if iss != &self.settings.issuer => {
                return Err(FederationError::IssuerMismatch(format!(
                    "the response names issuer {iss:?}, expected {:?}",
                    self.settings.issuer
                )));
            }
            _ => {}
        }
        let mut provider = self.provider().await?;
        if callback.iss.is_none() && provider.iss_parameter_supported {
            return Err(FederationError::IssuerMismatch(
                "the partner advertises RFC 9207 but its response carries no iss".into(),
            ));
        }
        if let Some(error) = &callback.error {
            return Err(FederationError::HomeError {
                error: error.clone(),
                description: callback.error_description.clone(),
            });
        }
        let code = callback
            .code
            .clone()
            .ok_or_else(|| FederationError::BadPartner("the response carries no code".into()))?;
        let tokens = self.exchange(&provider, code, secrets, now).await?;
        let claims = match verify(&provider, &tokens, secrets, now) {
            Err(FederationError::TokenRefused(TokenRefusal::UnknownKey, _)) => {
                tracing::info!(partner = %self.settings.id, "ID token signed with a key not in the cached JWKS; discovering again");
                provider = self.refresh(&provider).await?;
                verify(&provider, &tokens, secrets, now)?
            }
            other => other?,
        };
        let issued_at = claims.iat;
        let auth_time = claims.raw.get("auth_time").and_then(Value::as_i64);
        let token = self.token_facts(&tokens.0, &claims, auth_time)?;
        let text = |k: &str| claims.raw.get(k).and_then(Value::as_str).map(str::to_owned);
        Ok(HomeIdentity {
            issuer: self.settings.issuer.clone(),
            subject: claims.sub,
            email: text("email").map(|e| e.to_lowercase()),
            email_verified: match claims.raw.get("email_verified") {
                Some(Value::Bool(b)) => *b,
                Some(Value::String(s)) => s == "true",
                _ => false,
            },
            name: text("name"),
            given_name: text("given_name"),
            family_name: text("family_name"),
            amr: claims
                .raw
                .get("amr")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            auth_time,
            issued_at,
            user_risk: self.settings.claim_mapping.read(&claims.raw, issued_at),
            token,
            password_reset_uri: provider.password_reset_uri.clone(),
        })
    }

    /// The facts about a verified token that `tokenIssuerAnomaly` judges.
    fn token_facts(
        &self,
        id_token: &CoreIdToken,
        claims: &VerifiedClaims,
        auth_time: Option<i64>,
    ) -> Result<TokenIssuerFacts, FederationError> {
        let at = |t: i64, what: &str| {
            OffsetDateTime::from_unix_timestamp(t).map_err(|_| {
                FederationError::TokenRefused(
                    TokenRefusal::Invalid,
                    format!("{what} is out of range"),
                )
            })
        };
        let issued_at = at(claims.iat, "iat")?;
        // A verified token with an `auth_time` past year 9999 is not one to let in.
        let auth_time = auth_time.map(|t| at(t, "auth_time")).transpose()?;
        let key_id = header_kid(id_token);
        let mut claim_names: Vec<String> = claims.raw.keys().cloned().collect();
        claim_names.sort();
        Ok(TokenIssuerFacts {
            issuer: self.settings.issuer.clone(),
            key_id,
            issued_at,
            auth_time,
            claim_names,
            usual_claim_names: Vec::new(),
        })
    }

    async fn exchange(
        &self,
        provider: &Provider,
        code: String,
        secrets: &FlowSecrets,
        now: i64,
    ) -> Result<TokenPair, FederationError> {
        let mut request = provider
            .client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|_| {
                FederationError::BadPartner("the discovery document lists no token endpoint".into())
            })?
            .set_pkce_verifier(PkceCodeVerifier::new(secrets.pkce_verifier.clone()));
        if let Some(assertion) = self.assertion_for(provider, now)? {
            request = request
                .add_extra_param("client_assertion_type", JWT_BEARER)
                .add_extra_param("client_assertion", assertion);
        }
        let response = request
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                RequestTokenError::Request(e) => request_failure("token endpoint", &e),
                RequestTokenError::ServerResponse(r) => FederationError::BadPartner(format!(
                    "the token endpoint refused the code: {}{}",
                    r.error(),
                    r.error_description()
                        .map(|d| format!(" ({d})"))
                        .unwrap_or_default()
                )),
                RequestTokenError::Parse(e, _) => {
                    FederationError::BadPartner(format!("the token response is not valid: {e}"))
                }
                RequestTokenError::Other(e) => {
                    FederationError::BadPartner(format!("the token exchange failed: {e}"))
                }
            })?;
        let id_token = response.id_token().cloned().ok_or_else(|| {
            FederationError::BadPartner("the token response carries no ID token".into())
        })?;
        Ok((id_token, response.access_token().clone()))
    }

    /// An access token of this tenant's client at the partner for `scope` (space-separated), by the client
    /// credentials grant (RFC 6749 §4.4), authenticated as the code exchange is.
    pub async fn client_credentials_token(
        &self,
        scope: &str,
        now: i64,
    ) -> Result<ClientToken, FederationError> {
        let provider = self.provider().await?;
        let mut request = provider
            .client
            .exchange_client_credentials()
            .map_err(|_| {
                FederationError::BadPartner("the discovery document lists no token endpoint".into())
            })?
            .add_scopes(scope.split_whitespace().map(|s| Scope::new(s.to_owned())));
        if let Some(assertion) = self.assertion_for(&provider, now)? {
            request = request
                .add_extra_param("client_assertion_type", JWT_BEARER)
                .add_extra_param("client_assertion", assertion);
        }
        let response = request
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                RequestTokenError::Request(e) => request_failure("token endpoint", &e),
                RequestTokenError::ServerResponse(r) => FederationError::HomeError {
                    error: r.error().to_string(),
                    description: r.error_description().cloned(),
                },
                other => FederationError::BadPartner(format!("the token request failed: {other}")),
            })?;
        Ok(ClientToken {
            secret: response.access_token().secret().clone(),
            expires_in: response.expires_in(),
        })
    }

    /// The `private_key_jwt` client assertion for a request to the token endpoint, when this
    /// tenant authenticates that way (a secret goes in the Basic header instead).
    fn assertion_for(
        &self,
        provider: &Provider,
        now: i64,
    ) -> Result<Option<String>, FederationError> {
        match &self.settings.credential {
            Credential::PrivateKeyJwt(keys) => self.client_assertion(keys, provider, now).map(Some),
            Credential::Secret(_) => Ok(None),
        }
    }

    fn client_assertion(
        &self,
        keys: &KeySet,
        provider: &Provider,
        now: i64,
    ) -> Result<String, FederationError> {
        #[derive(Serialize)]
        struct Assertion<'a> {
            iss: &'a str,
            sub: &'a str,
            aud: &'a str,
            jti: String,
            iat: i64,
            exp: i64,
        }
        let aud = provider
            .token_endpoint
            .as_deref()
            .unwrap_or(&self.settings.issuer);
        let claims = Assertion {
            iss: &self.settings.client_id,
            sub: &self.settings.client_id,
            aud,
            jti: uuid::Uuid::new_v4().to_string(),
            iat: now,
            exp: now + 60,
        };
        let key = keys
            .active(protocol::jwt::SigningAlg::ES256)
            .or_else(|| keys.active(protocol::jwt::SigningAlg::RS256))
            .ok_or_else(|| FederationError::BadPartner("no client assertion key".into()))?;
        keys.sign(key.alg, "JWT", &claims).map_err(|e| {
            FederationError::BadPartner(format!("cannot sign the client assertion: {e}"))
        })
    }

    pub(crate) async fn provider(&self) -> Result<Arc<Provider>, FederationError> {
        let mut current = self.current.lock().await;
        if let Some(p) = current.as_ref() {
            return Ok(p.clone());
        }
        let p = Arc::new(self.discover().await?);
        *current = Some(p.clone());
        Ok(p)
    }

    /// Discovers again because `stale` could not verify a token. If another request already
    /// replaced `stale`, that newer discovery is used.
    pub(crate) async fn refresh(
        &self,
        stale: &Arc<Provider>,
    ) -> Result<Arc<Provider>, FederationError> {
        let mut current = self.current.lock().await;
        if let Some(p) = current.as_ref()
            && !Arc::ptr_eq(p, stale)
        {
            return Ok(p.clone());
        }
        let p = Arc::new(self.discover().await?);
        *current = Some(p.clone());
        Ok(p)
    }

    async fn discover(&self) -> Result<Provider, FederationError> {
        let issuer = IssuerUrl::new(self.settings.issuer.clone())
            .map_err(|e| FederationError::BadPartner(format!("issuer URL: {e}")))?;
        let metadata = Metadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| match e {
                DiscoveryError::Request(e) => request_failure("discovery", &e),
                DiscoveryError::Response(status, _, _) => {
                    FederationError::Unreachable(format!("discovery answered HTTP {status}"))
                }
                DiscoveryError::Validation(e) => FederationError::BadPartner(format!(
                    "the discovery document names another issuer: {e}"
                )),
                other => FederationError::BadPartner(format!("discovery: {}", chain(&other))),
            })?;
        let iss_parameter_supported = metadata
            .additional_metadata()
            .authorization_response_iss_parameter_supported
            .unwrap_or(false);
        let token_endpoint = metadata.token_endpoint().map(|u| u.as_str().to_owned());
        let id_token_algs = metadata.id_token_signing_alg_values_supported().clone();
        // A link the resource shows its guests: only one they can safely follow is kept.
        let password_reset_uri = match &metadata.additional_metadata().password_reset_uri {
            Some(Value::String(u)) if crate::is_https_or_loopback(u) => Some(u.clone()),
            Some(other) => {
                tracing::debug!(partner = %self.settings.id, value = %other, "ignoring the advertised password_reset_uri: not an https (or loopback http) URL");
                None
            }
            None => None,
        };
        tracing::info!(partner = %self.settings.id, keys = metadata.jwks().keys().len(), "discovered the partner");
        let mut jwks = Vec::new();
        let mut parsed_keys = Vec::new();
        for key in metadata.jwks().keys() {
            let Ok(json) = serde_json::to_value(key) else {
                continue;
            };
            // A key that does not parse is left out here and refused when a token names it.
            if let Ok(parsed) = PublicKey::from_jwk(&json) {
                parsed_keys.push((key.clone(), parsed));
            }
            jwks.push(json);
        }
        let secret = match &self.settings.credential {
            Credential::Secret(s) => Some(ClientSecret::new(s.clone())),
            Credential::PrivateKeyJwt(_) => None,
        };
        let redirect = RedirectUrl::new(self.settings.redirect_uri.clone())
            .map_err(|e| FederationError::BadPartner(format!("redirect URI: {e}")))?;
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.settings.client_id.clone()),
            secret,
        )
        .set_redirect_uri(redirect);
        Ok(Provider {
            client,
            jwks,
            parsed_keys,
            id_token_algs,
            iss_parameter_supported,
            token_endpoint,
            password_reset_uri,
        })
    }
}

/// RFC 7523's client assertion type.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The ID token plus the access token it came with (for `at_hash`).
type TokenPair = (CoreIdToken, openidconnect::AccessToken);

struct VerifiedClaims {
    sub: String,
    iat: i64,
    raw: Map<String, Value>,
}

fn verify(
    provider: &Provider,
    (id_token, access_token): &TokenPair,
    secrets: &FlowSecrets,
    now: i64,
) -> Result<VerifiedClaims, FederationError> {
    let skewed_now = chrono::DateTime::from_timestamp(now - CLOCK_SKEW_SECS, 0).unwrap_or_default();
    let verifier = provider
        .client
        .id_token_verifier()
        .set_time_fn(move || skewed_now)
        .set_issue_time_verifier_fn(move |iat| {
            let iat = iat.timestamp();
            if iat > now + CLOCK_SKEW_SECS {
                Err(format!("issued {}s in the future", iat - now))
            } else if iat < now - MAX_ID_TOKEN_AGE_SECS {
                Err(format!("issued {}s ago", now - iat))
            } else {
                Ok(())
            }
        });
    // Signatures with the partner's public keys are checked here with aws-lc-rs (openidconnect's
    // own ECDSA is pure Rust, about 10× slower); openidconnect checks everything else.
    let alg = id_token
        .signing_alg()
        .map_err(|e| refusal(ClaimsVerificationError::SignatureVerification(e)))?;
    let verifier = if alg.uses_shared_secret() {
        verifier
    } else {
        verify_signature(provider, id_token, alg, &verifier)?;
        verifier.insecure_disable_signature_check()
    };
    let nonce = Nonce::new(secrets.nonce.clone());
    let claims = id_token.claims(&verifier, &nonce).map_err(refusal)?;
    if let Some(expected) = claims.access_token_hash() {
        let actual = id_token
            .signing_alg()
            .and_then(|alg| Ok((alg, id_token.signing_key(&verifier)?)))
            .map_err(|e| e.to_string())
            .and_then(|(alg, key)| {
                AccessTokenHash::from_token(access_token, alg, key).map_err(|e| e.to_string())
            })
            .map_err(|e| {
                FederationError::TokenRefused(
                    TokenRefusal::Invalid,
                    format!("at_hash cannot be checked: {e}"),
                )
            })?;
        if actual != *expected {
            return Err(FederationError::TokenRefused(
                TokenRefusal::Invalid,
                "at_hash does not match the access token".into(),
            ));
        }
    }
    let raw = payload(id_token)?;
    Ok(VerifiedClaims {
        sub: claims.subject().as_str().to_owned(),
        iat: claims.issue_time().timestamp(),
        raw,
    })
}

/// The ID token's signature, made with `alg` (one the partner advertises) by the one key of its
/// JWKS that matches the token's `kid` and `alg` (OIDC Core §10.1), as openidconnect would pick.
fn verify_signature(
    provider: &Provider,
    id_token: &CoreIdToken,
    alg: &CoreJwsSigningAlgorithm,
    verifier: &openidconnect::core::CoreIdTokenVerifier<'_>,
) -> Result<(), FederationError> {
    let sig = |e| refusal(ClaimsVerificationError::SignatureVerification(e));
    if !provider.id_token_algs.contains(alg) {
        return Err(sig(SignatureVerificationError::DisallowedAlg(format!(
            "{alg:?} is not among the partner's id_token_signing_alg_values_supported"
        ))));
    }
    let key = id_token.signing_key(verifier).map_err(sig)?;
    let refused = |why: String| sig(SignatureVerificationError::CryptoError(why));
    let alg_name = serde_json::to_value(alg).map_err(|e| refused(e.to_string()))?;
    let alg_name = alg_name
        .as_str()
        .ok_or_else(|| refused(format!("{alg:?}")))?;
    let verified = match provider.parsed_keys.iter().find(|(jwk, _)| jwk == key) {
        Some((_, parsed)) => parsed.verify(&id_token.to_string(), alg_name),
        None => {
            let jwk = serde_json::to_value(key).map_err(|e| refused(e.to_string()))?;
            protocol::jwt::verify_signature(&id_token.to_string(), &jwk, alg_name)
        }
    };
    verified.map(|_| ()).map_err(|e| refused(e.to_string()))
}

fn refusal(e: ClaimsVerificationError) -> FederationError {
    let kind = match &e {
        ClaimsVerificationError::SignatureVerification(
            SignatureVerificationError::NoMatchingKey,
        ) => TokenRefusal::UnknownKey,
        ClaimsVerificationError::SignatureVerification(_) => TokenRefusal::BadSignature,
        ClaimsVerificationError::InvalidAudience(_) => TokenRefusal::WrongAudience,
        ClaimsVerificationError::InvalidIssuer(_) => TokenRefusal::UnknownIssuer,
        ClaimsVerificationError::Expired(_) => TokenRefusal::Expired,
        ClaimsVerificationError::InvalidNonce(_) => TokenRefusal::NonceMismatch,
        _ => TokenRefusal::Invalid,
    };
    FederationError::TokenRefused(kind, e.to_string())
}

/// The verified token's payload exactly as signed (the typed claims drop unknown ones, such
/// as `user_risk`).
fn payload(id_token: &CoreIdToken) -> Result<Map<String, Value>, FederationError> {
    let compact = id_token.to_string();
    let bad = |why: &str| FederationError::TokenRefused(TokenRefusal::Invalid, why.to_owned());
    let part = compact
        .split('.')
        .nth(1)
        .ok_or_else(|| bad("not a compact JWS"))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| bad("payload is not base64url"))?;
    serde_json::from_slice(&bytes).map_err(|_| bad("payload is not a JSON object"))
}

/// The `kid` of the token's JWS header (already verified, so only read here).
fn header_kid(id_token: &CoreIdToken) -> Option<String> {
    let compact = id_token.to_string();
    let header = compact.split('.').next()?;
    let bytes = URL_SAFE_NO_PAD.decode(header).ok()?;
    let header: Value = serde_json::from_slice(&bytes).ok()?;
    header.get("kid")?.as_str().map(str::to_owned)
}

/// A request to the partner that got no answer: an untrusted certificate if the TLS handshake
/// refused the partner's certificate (a configuration to fix, not an outage), else unreachable.
pub(crate) fn request_failure(
    what: &str,
    e: &(dyn std::error::Error + 'static),
) -> FederationError {
    match certificate_problem(e) {
        Some(problem) => {
            FederationError::UntrustedCertificate(problem, format!("{what}: {}", chain(e)))
        }
        None => FederationError::Unreachable(format!("{what}: {}", chain(e))),
    }
}

pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let token = ClientToken {
            secret: "tok-3f9a".into(),
            expires_in: Some(std::time::Duration::from_secs(300)),
        };
        let shown = format!("{token:?}");
        assert!(
            !shown.contains("tok-3f9a") && shown.contains("300"),
            "{shown}"
        );
        let credential = Credential::Secret("s3cret-value".to_owned());
        assert!(!format!("{credential:?}").contains("s3cret-value"));
    }
}
