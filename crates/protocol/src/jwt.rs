//! JWTs signed and verified with the tenant's keys: ID tokens (OIDC Core §2), access tokens
//! (RFC 9068, `typ: at+jwt`), the JWKS document, and `private_key_jwt` client assertions.
//!
//! Verification only ever accepts the algorithm of the key named by `kid`, so `alg: none` and
//! HS256-signed-with-our-public-key tokens are refused before any signature check. Claim times
//! are checked against the `now` the caller passes in.

use crate::OAuthError;
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;

mod parsed_keys;

/// The `typ` header of RFC 9068 access tokens.
pub const AT_JWT_TYP: &str = "at+jwt";
/// Clock skew tolerated on `exp`, `iat` and `nbf`.
pub const LEEWAY_SECS: i64 = 30;

/// Signature algorithms for tokens this provider issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SigningAlg {
    /// ECDSA P-256 SHA-256: the default (small, fast).
    ES256,
    /// RSASSA-PKCS1-v1_5 SHA-256: for clients that only know RS256.
    RS256,
}

impl SigningAlg {
    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ES256 => "ES256",
            Self::RS256 => "RS256",
        }
    }

    /// Parse a JOSE name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ES256" => Some(Self::ES256),
            "RS256" => Some(Self::RS256),
            _ => None,
        }
    }

    fn jose(self) -> Algorithm {
        match self {
            Self::ES256 => Algorithm::ES256,
            Self::RS256 => Algorithm::RS256,
        }
    }
}

/// Errors loading keys or handling tokens.
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    /// The key material could not be used.
    #[error("invalid key: {0}")]
    Key(String),
    /// The token is malformed, unsigned, signed with an unknown key or the wrong algorithm,
    /// or its signature does not verify.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The token's time claims say it is not valid now.
    #[error("token expired or not yet valid")]
    Expired,
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(String),
}

impl From<JwtError> for OAuthError {
    fn from(e: JwtError) -> Self {
        match e {
            JwtError::Key(d) | JwtError::Sign(d) => OAuthError::server_error(d),
            JwtError::Invalid(d) => {
                OAuthError::invalid_token("The token is invalid.").with_detail(d)
            }
            JwtError::Expired => OAuthError::invalid_token("The token has expired."),
        }
    }
}

/// One signing key: private half for signing, public half for verifying and the JWKS.
pub struct SigningKey {
    /// Key id: the RFC 7638 SHA-256 thumbprint of the public JWK.
    pub kid: String,
    /// Algorithm this key signs with (and the only one it verifies).
    pub alg: SigningAlg,
    /// When the key was created.
    pub created_at: i64,
    /// When a newer key replaced it; `None` while active.
    pub retired_at: Option<i64>,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Jwk,
    /// Keeps the parsed key pair that signs with `encoding` (see `parsed_keys`).
    _parsed: Arc<parsed_keys::KeyPair>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Load a key from its PKCS#8 PEM private key.
    pub fn from_pkcs8_pem(
        alg: SigningAlg,
        pem: &str,
        created_at: i64,
        retired_at: Option<i64>,
    ) -> Result<Self, JwtError> {
        parsed_keys::install();
        let encoding = match alg {
            SigningAlg::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()),
            SigningAlg::RS256 => EncodingKey::from_rsa_pem(pem.as_bytes()),
        }
        .map_err(|e| JwtError::Key(e.to_string()))?;
        let parsed = parsed_keys::parse(&encoding, alg.jose()).map_err(JwtError::Key)?;
        let mut jwk = Jwk::from_encoding_key(&encoding, alg.jose())
            .map_err(|e| JwtError::Key(e.to_string()))?;
        let kid = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|e| JwtError::Key(e.to_string()))?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwk.common.key_algorithm = Some(match alg {
            SigningAlg::ES256 => KeyAlgorithm::ES256,
            SigningAlg::RS256 => KeyAlgorithm::RS256,
        });
        let decoding = DecodingKey::from_jwk(&jwk).map_err(|e| JwtError::Key(e.to_string()))?;
        Ok(Self {
            kid,
            alg,
            created_at,
            retired_at,
            encoding,
            decoding,
            jwk,
            _parsed: parsed,
        })
    }

    /// The public JWK.
    pub fn public_jwk(&self) -> &Jwk {
        &self.jwk
    }
}

/// The tenant's keys: at most one active key per algorithm, plus retired keys that are kept
/// (published and accepted) until every token they signed has expired.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<SigningKey>,
    /// How long a retired key stays published: the longest lifetime of a JWT we issue.
    retired_grace: i64,
    /// Sign with the key that was active at this time (see [`KeySet::signing_as_of`]).
    signs_as_of: Option<i64>,
}

impl KeySet {
    /// Build from loaded keys. `retired_grace` is the longest JWT lifetime in seconds.
    pub fn new(keys: Vec<SigningKey>, retired_grace: i64) -> Self {
        Self {
            keys,
            retired_grace,
            signs_as_of: None,
        }
    }

    /// Sign with the key that was active at `at` rather than the newest: a key rotated in
    /// after `at` is published (and accepted) at once but signs only later, so every replica
    /// (each re-reading the keys now and then) publishes it before any replica signs with it.
    /// Where no key is that old (a first start), the oldest one still live signs.
    #[must_use]
    pub fn signing_as_of(mut self, at: i64) -> Self {
        self.signs_as_of = Some(at);
        self
    }

    /// The active key for an algorithm: the newest unretired one, or with
    /// [`KeySet::signing_as_of`], the one that was active then.
    pub fn active(&self, alg: SigningAlg) -> Option<&SigningKey> {
        let newest = || {
            self.keys
                .iter()
                .filter(|k| k.alg == alg && k.retired_at.is_none())
                .max_by_key(|k| k.created_at)
        };
        let Some(at) = self.signs_as_of else {
            return newest();
        };
        let live_then = |k: &&SigningKey| k.alg == alg && k.retired_at.is_none_or(|r| r > at);
        self.keys
            .iter()
            .filter(live_then)
            .filter(|k| k.created_at <= at)
            .max_by_key(|k| k.created_at)
            // Every key is younger than that (a rotation soon after the first start): the
            // oldest of them, which the others replace in their turn.
            // (Within one second, the one already retired is the older generation.)
            .or_else(|| {
                self.keys
                    .iter()
                    .filter(live_then)
                    .min_by_key(|k| (k.created_at, k.retired_at.is_none()))
            })
            .or_else(newest)
    }

    fn usable(&self, now: i64) -> impl Iterator<Item = &SigningKey> {
        let grace = self.retired_grace;
        self.keys
            .iter()
            .filter(move |k| k.retired_at.is_none_or(|r| r + grace > now))
    }

    /// Sign claims with the active key of `alg`, setting `typ` and `kid`.
    pub fn sign<T: Serialize>(
        &self,
        alg: SigningAlg,
        typ: &str,
        claims: &T,
    ) -> Result<String, JwtError> {
        let key = self
            .active(alg)
            .ok_or_else(|| JwtError::Key(format!("no active {} key", alg.as_str())))?;
        let mut header = Header::new(alg.jose());
        header.typ = Some(typ.to_owned());
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding)
            .map_err(|e| JwtError::Sign(e.to_string()))
    }

    /// Verify a token we issued: known `kid`, that key's algorithm, the expected `typ`
    /// (case-insensitive, `application/` prefix allowed per RFC 7515 §4.1.9), and the signature.
    /// Time claims are the caller's to check.
    pub fn verify<T: DeserializeOwned>(
        &self,
        token: &str,
        expected_typ: &str,
        now: i64,
    ) -> Result<T, JwtError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| JwtError::Invalid(e.to_string()))?;
        let kid = header
            .kid
            .as_deref()
            .ok_or_else(|| JwtError::Invalid("no kid".into()))?;
        let key = self
            .usable(now)
            .find(|k| k.kid == kid)
            .ok_or_else(|| JwtError::Invalid("unknown kid".into()))?;
        if header.alg != key.alg.jose() {
            return Err(JwtError::Invalid(format!(
                "alg {:?} does not match key",
                header.alg
            )));
        }
        if !typ_matches(header.typ.as_deref(), expected_typ) {
            return Err(JwtError::Invalid(format!(
                "typ {:?} is not {expected_typ}",
                header.typ
            )));
        }
        let data = jsonwebtoken::decode::<T>(token, &key.decoding, &signature_only(key.alg.jose()))
            .map_err(|e| JwtError::Invalid(e.to_string()))?;
        Ok(data.claims)
    }

    /// The JWKS document: public keys of every active key and every retired key still in its
    /// grace period.
    pub fn jwks(&self, now: i64) -> JwkSet {
        JwkSet {
            keys: self.usable(now).map(|k| k.jwk.clone()).collect(),
        }
    }
}

fn typ_matches(got: Option<&str>, expected: &str) -> bool {
    let Some(got) = got else { return false };
    let got = got.strip_prefix("application/").unwrap_or(got);
    got.eq_ignore_ascii_case(expected)
}

/// jsonwebtoken's validation reduced to the signature and algorithm: we check claims ourselves
/// against the caller's clock.
fn signature_only(alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims = HashSet::new();
    v
}

/// Check `exp` (required) and `iat`/`nbf` (when present) against `now` with [`LEEWAY_SECS`].
pub fn check_times(exp: i64, iat: Option<i64>, nbf: Option<i64>, now: i64) -> Result<(), JwtError> {
    if exp + LEEWAY_SECS <= now {
        return Err(JwtError::Expired);
    }
    if iat.is_some_and(|t| t > now + LEEWAY_SECS) || nbf.is_some_and(|t| t > now + LEEWAY_SECS) {
        return Err(JwtError::Expired);
    }
    Ok(())
}

/// An `aud` claim: one string or an array (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience.
    One(String),
    /// Several audiences.
    Many(Vec<String>),
}

impl Audience {
    /// Whether `aud` contains `value`.
    pub fn contains(&self, value: &str) -> bool {
        match self {
            Self::One(a) => a == value,
            Self::Many(v) => v.iter().any(|a| a == value),
        }
    }
}

/// ID token claims (OIDC Core §2) plus `tid`; scope-dependent and later claims go in `extra`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdTokenClaims {
    /// Issuer.
    pub iss: String,
    /// Subject: the user's stable id at this tenant.
    pub sub: String,
    /// The client id.
    pub aud: Audience,
    /// Expiry.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// When the user authenticated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// The request's nonce.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// Session id (OIDC Front/Back-Channel Logout).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Authentication methods (RFC 8176).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
    /// Authentication context class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    /// Authorized party.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub azp: Option<String>,
    /// Tenant id.
    pub tid: String,
    /// Profile, email and other claims.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Access token claims (RFC 9068 §2.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    /// Issuer.
    pub iss: String,
    /// Expiry.
    pub exp: i64,
    /// Audience: the resource the token is for.
    pub aud: Audience,
    /// The user, or the client for `client_credentials`.
    pub sub: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// Issued at.
    pub iat: i64,
    /// Unique id.
    pub jti: String,
    /// Granted scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// When the user authenticated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// Authentication context class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    /// Authentication methods.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
    /// Session id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Tenant id.
    pub tid: String,
    /// The grant this token belongs to; revoking the grant revokes the token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gid: Option<String>,
}

/// The claims of a `private_key_jwt` client assertion that the server must remember.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAssertion {
    /// `jti`, to refuse replays until `exp`.
    pub jti: String,
    /// `exp`.
    pub exp: i64,
}

#[derive(Deserialize)]
struct AssertionClaims {
    iss: String,
    sub: String,
    aud: Audience,
    exp: i64,
    iat: Option<i64>,
    nbf: Option<i64>,
    jti: String,
}

/// Longest lifetime accepted for a client assertion; longer ones make replay windows too wide.
pub const MAX_ASSERTION_LIFETIME: i64 = 600;

/// Verifies the signature of a compact JWS with a public JWK (JSON, RFC 7517) and an
/// asymmetric `alg` the caller has already accepted, and returns its payload. Nothing else is
/// checked: the caller validates the claims. Symmetric algorithms are refused (a public JWK
/// cannot verify them). A caller that verifies with the same key again keeps a [`PublicKey`].
pub fn verify_signature(
    compact: &str,
    jwk: &serde_json::Value,
    alg: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, JwtError> {
    PublicKey::from_jwk(jwk)?.verify(compact, alg)
}

/// A peer's public JWK, parsed once for all the signatures it will verify.
#[derive(Clone)]
pub struct PublicKey(DecodingKey);

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey").finish_non_exhaustive()
    }
}

impl PublicKey {
    /// Parses a public JWK (JSON, RFC 7517).
    pub fn from_jwk(jwk: &serde_json::Value) -> Result<Self, JwtError> {
        let jwk = Jwk::deserialize(jwk).map_err(|e| JwtError::Key(e.to_string()))?;
        DecodingKey::from_jwk(&jwk)
            .map(Self)
            .map_err(|e| JwtError::Key(e.to_string()))
    }

    /// [`verify_signature`] with this key.
    pub fn verify(
        &self,
        compact: &str,
        alg: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, JwtError> {
        let alg = Algorithm::from_str(alg).map_err(|_| JwtError::Invalid(format!("alg {alg}")))?;
        if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
            return Err(JwtError::Invalid(
                "a symmetric alg needs a shared secret".into(),
            ));
        }
        jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            compact,
            &self.0,
            &signature_only(alg),
        )
        .map(|data| data.claims)
        .map_err(|e| JwtError::Invalid(e.to_string()))
    }
}

/// Verify a `private_key_jwt` client assertion (RFC 7523 §3, OIDC Core §9): signed with one of
/// the client's registered asymmetric keys, `iss` = `sub` = client id, `aud` containing one of
/// `audiences` (the token endpoint URL or the issuer), unexpired, short-lived, with a `jti`.
pub fn verify_client_assertion(
    assertion: &str,
    client_id: &str,
    client_keys: &JwkSet,
    audiences: &[&str],
    now: i64,
) -> Result<VerifiedAssertion, OAuthError> {
    let bad =
        |d: String| OAuthError::invalid_client("The client assertion is invalid.").with_detail(d);
    let header = jsonwebtoken::decode_header(assertion).map_err(|e| bad(e.to_string()))?;
    if !matches!(
        header.alg,
        Algorithm::ES256
            | Algorithm::ES384
            | Algorithm::RS256
            | Algorithm::PS256
            | Algorithm::EdDSA
    ) {
        return Err(bad(format!(
            "alg {:?} not accepted for client assertions",
            header.alg
        )));
    }
    let jwk = match header.kid.as_deref() {
        Some(kid) => client_keys.find(kid),
        None if client_keys.keys.len() == 1 => client_keys.keys.first(),
        None => None,
    }
    .ok_or_else(|| bad("no matching client key".into()))?;
    if let Some(key_alg) = jwk.common.key_algorithm
        && format!("{key_alg:?}") != format!("{:?}", header.alg)
    {
        return Err(bad("alg does not match the key's alg".into()));
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|e| bad(e.to_string()))?;
    let claims =
        jsonwebtoken::decode::<AssertionClaims>(assertion, &key, &signature_only(header.alg))
            .map_err(|e| bad(e.to_string()))?
            .claims;
    if claims.iss != client_id || claims.sub != client_id {
        return Err(bad("iss/sub must equal the client id".into()));
    }
    if !audiences.iter().any(|a| claims.aud.contains(a)) {
        return Err(bad("aud does not name this server".into()));
    }
    check_times(claims.exp, claims.iat, claims.nbf, now).map_err(|e| bad(e.to_string()))?;
    if claims.exp > now + MAX_ASSERTION_LIFETIME {
        return Err(bad("assertion lives too long".into()));
    }
    if claims.jti.is_empty() || claims.jti.len() > 256 {
        return Err(bad("bad jti".into()));
    }
    Ok(VerifiedAssertion {
        jti: claims.jti,
        exp: claims.exp,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
pub(crate) mod tests {
    use super::*;

    /// Fixed test keys (generated once with rcgen; test-only).
    pub const EC_PEM: &str = include_str!("../testdata/es256.pem");
    pub const RSA_PEM: &str = include_str!("../testdata/rs256.pem");
    pub const EC_PEM_2: &str = include_str!("../testdata/es256-2.pem");

    fn keyset() -> KeySet {
        KeySet::new(
            vec![
                SigningKey::from_pkcs8_pem(SigningAlg::ES256, EC_PEM, 100, None).unwrap(),
                SigningKey::from_pkcs8_pem(SigningAlg::RS256, RSA_PEM, 100, None).unwrap(),
            ],
            600,
        )
    }

    fn at(now: i64) -> AccessTokenClaims {
        AccessTokenClaims {
            iss: "https://idp.test".into(),
            exp: now + 300,
            aud: Audience::One("https://idp.test".into()),
            sub: "u1".into(),
            client_id: "app".into(),
            iat: now,
            jti: "j1".into(),
            scope: Some("openid".into()),
            auth_time: None,
            acr: None,
            amr: None,
            sid: None,
            tid: "t".into(),
            gid: None,
        }
    }

    #[test]
    fn sign_and_verify_both_algs() {
        let ks = keyset();
        for alg in [SigningAlg::ES256, SigningAlg::RS256] {
            let t = ks.sign(alg, AT_JWT_TYP, &at(1000)).unwrap();
            let c: AccessTokenClaims = ks.verify(&t, AT_JWT_TYP, 1000).unwrap();
            assert_eq!(c, at(1000));
        }
    }

    #[test]
    fn a_signature_verifies_with_its_public_jwk_only() {
        let ks = keyset();
        let jwks = serde_json::to_value(ks.jwks(0)).unwrap();
        let (ec, rsa) = (&jwks["keys"][0], &jwks["keys"][1]);
        let t = ks.sign(SigningAlg::ES256, "JWT", &at(1000)).unwrap();
        let payload = verify_signature(&t, ec, "ES256").unwrap();
        assert_eq!(payload["sub"], at(1000).sub);
        // Another key, another alg, a changed payload, a symmetric alg: refused.
        assert!(verify_signature(&t, rsa, "RS256").is_err());
        assert!(verify_signature(&t, ec, "ES384").is_err());
        assert!(verify_signature(&t, ec, "HS256").is_err());
        let mut parts: Vec<&str> = t.split('.').collect();
        let other = ks.sign(SigningAlg::ES256, "JWT", &at(2000)).unwrap();
        parts[1] = other.split('.').nth(1).unwrap();
        assert!(verify_signature(&parts.join("."), ec, "ES256").is_err());
        let rt = ks.sign(SigningAlg::RS256, "JWT", &at(1000)).unwrap();
        assert!(verify_signature(&rt, rsa, "RS256").is_ok());
        assert!(verify_signature(&rt, ec, "RS256").is_err());
    }

    #[test]
    fn a_parsed_public_key_verifies_every_token_of_its_key_and_no_other() {
        let ks = keyset();
        let jwks = serde_json::to_value(ks.jwks(0)).unwrap();
        let ec = PublicKey::from_jwk(&jwks["keys"][0]).unwrap();
        for sub_at in [1000, 2000] {
            let t = ks.sign(SigningAlg::ES256, "JWT", &at(sub_at)).unwrap();
            assert_eq!(ec.verify(&t, "ES256").unwrap()["sub"], at(sub_at).sub);
        }
        let rt = ks.sign(SigningAlg::RS256, "JWT", &at(1000)).unwrap();
        assert!(ec.verify(&rt, "RS256").is_err());
        assert!(ec.verify(&rt, "ES256").is_err());
        // A point not on the curve is refused when parsed or when used, never accepted.
        let not_a_key = serde_json::json!({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"});
        assert!(matches!(
            PublicKey::from_jwk(&not_a_key).map(|k| k.verify(&rt, "ES256")),
            Err(JwtError::Key(_)) | Ok(Err(JwtError::Invalid(_)))
        ));
        assert!(matches!(
            PublicKey::from_jwk(&serde_json::json!({"kty": "nope"})),
            Err(JwtError::Key(_))
        ));
    }

    #[test]
    fn kid_is_rfc7638_thumbprint_and_jwks_has_no_private_parts() {
        let ks = keyset();
        let jwks = serde_json::to_value(ks.jwks(0)).unwrap();
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 2);
        for k in keys {
            assert!(k.get("d").is_none() && k.get("p").is_none());
            assert_eq!(k["use"], "sig");
            assert!(k["kid"].as_str().unwrap().len() == 43);
        }
    }

    #[test]
    fn wrong_typ_is_refused() {
        let ks = keyset();
        let t = ks.sign(SigningAlg::ES256, "JWT", &at(1000)).unwrap();
        assert!(
            ks.verify::<AccessTokenClaims>(&t, AT_JWT_TYP, 1000)
                .is_err()
        );
    }

    fn b64(v: &serde_json::Value) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    }

    #[test]
    fn alg_none_is_refused() {
        let ks = keyset();
        let kid = ks.active(SigningAlg::ES256).unwrap().kid.clone();
        let header = serde_json::json!({"alg": "none", "typ": "at+jwt", "kid": kid});
        let token = format!(
            "{}.{}.",
            b64(&header),
            b64(&serde_json::to_value(at(1000)).unwrap())
        );
        assert!(
            ks.verify::<AccessTokenClaims>(&token, AT_JWT_TYP, 1000)
                .is_err()
        );
    }

    #[test]
    fn hs256_with_public_key_as_secret_is_refused() {
        let ks = keyset();
        let key = ks.active(SigningAlg::RS256).unwrap();
        let public = serde_json::to_vec(key.public_jwk()).unwrap();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key.kid.clone());
        header.typ = Some(AT_JWT_TYP.into());
        let token =
            jsonwebtoken::encode(&header, &at(1000), &EncodingKey::from_secret(&public)).unwrap();
        assert!(
            ks.verify::<AccessTokenClaims>(&token, AT_JWT_TYP, 1000)
                .is_err()
        );
    }

    #[test]
    fn tampered_signature_is_refused() {
        let ks = keyset();
        let t = ks.sign(SigningAlg::ES256, AT_JWT_TYP, &at(1000)).unwrap();
        let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
        parts[1] = b64(&serde_json::json!({"sub": "admin"}));
        let forged = parts.join(".");
        assert!(
            ks.verify::<AccessTokenClaims>(&forged, AT_JWT_TYP, 1000)
                .is_err()
        );
    }

    #[test]
    fn retired_key_verifies_during_grace_then_disappears() {
        let old = SigningKey::from_pkcs8_pem(SigningAlg::ES256, EC_PEM, 100, None).unwrap();
        let t = KeySet::new(vec![old], 600)
            .sign(SigningAlg::ES256, AT_JWT_TYP, &at(1000))
            .unwrap();
        let ks = KeySet::new(
            vec![
                SigningKey::from_pkcs8_pem(SigningAlg::ES256, EC_PEM, 100, Some(1000)).unwrap(),
                SigningKey::from_pkcs8_pem(SigningAlg::ES256, EC_PEM_2, 1000, None).unwrap(),
            ],
            600,
        );
        assert_ne!(ks.active(SigningAlg::ES256).unwrap().kid, ks.keys[0].kid);
        assert!(ks.verify::<AccessTokenClaims>(&t, AT_JWT_TYP, 1200).is_ok());
        assert_eq!(ks.jwks(1200).keys.len(), 2);
        assert!(
            ks.verify::<AccessTokenClaims>(&t, AT_JWT_TYP, 1700)
                .is_err()
        );
        assert_eq!(ks.jwks(1700).keys.len(), 1);
    }

    #[test]
    fn a_rotated_in_key_is_published_at_once_and_signs_only_after_the_propagation_time() {
        let keys = || {
            vec![
                SigningKey::from_pkcs8_pem(SigningAlg::ES256, EC_PEM, 100, Some(1000)).unwrap(),
                SigningKey::from_pkcs8_pem(SigningAlg::ES256, EC_PEM_2, 1000, None).unwrap(),
            ]
        };
        let old_kid = KeySet::new(keys(), 600).keys[0].kid.clone();
        // 30 s after the rotation, signing as of 60 s ago: the old key still signs, both publish.
        let early = KeySet::new(keys(), 600).signing_as_of(1030 - 60);
        assert_eq!(early.active(SigningAlg::ES256).unwrap().kid, old_kid);
        assert_eq!(early.jwks(1030).keys.len(), 2);
        // 61 s after: the new key signs.
        let later = KeySet::new(keys(), 600).signing_as_of(1061 - 60);
        assert_ne!(later.active(SigningAlg::ES256).unwrap().kid, old_kid);
        // A first start (every key new): the newest signs.
        let fresh = KeySet::new(
            vec![SigningKey::from_pkcs8_pem(SigningAlg::ES256, EC_PEM, 5000, None).unwrap()],
            600,
        )
        .signing_as_of(5000 - 60);
        assert!(fresh.active(SigningAlg::ES256).is_some());
    }

    #[test]
    fn times() {
        assert!(check_times(1000, Some(900), None, 999).is_ok());
        assert!(check_times(1000, None, None, 1000 + LEEWAY_SECS).is_err());
        assert!(check_times(2000, Some(1500), None, 1000).is_err());
    }

    fn assertion(claims: serde_json::Value, key: &str, kid: &str) -> String {
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some(kid.into());
        jsonwebtoken::encode(
            &h,
            &claims,
            &EncodingKey::from_ec_pem(key.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn client_assertion_rules() {
        let client_key = SigningKey::from_pkcs8_pem(SigningAlg::ES256, EC_PEM_2, 0, None).unwrap();
        let jwks = JwkSet {
            keys: vec![client_key.public_jwk().clone()],
        };
        let kid = client_key.kid.clone();
        let good = serde_json::json!({"iss":"app","sub":"app","aud":"https://idp.test/token","exp":1100,"iat":1000,"jti":"a1"});
        let ok = verify_client_assertion(
            &assertion(good.clone(), EC_PEM_2, &kid),
            "app",
            &jwks,
            &["https://idp.test/token"],
            1000,
        )
        .unwrap();
        assert_eq!(ok.jti, "a1");
        // Signed by another key.
        assert!(
            verify_client_assertion(
                &assertion(good.clone(), EC_PEM, &kid),
                "app",
                &jwks,
                &["https://idp.test/token"],
                1000
            )
            .is_err()
        );
        // Wrong audience, wrong issuer, expired, too long-lived.
        let mut c = good.clone();
        c["aud"] = "https://other.test".into();
        assert!(
            verify_client_assertion(
                &assertion(c, EC_PEM_2, &kid),
                "app",
                &jwks,
                &["https://idp.test/token"],
                1000
            )
            .is_err()
        );
        let mut c = good.clone();
        c["iss"] = "other".into();
        assert!(
            verify_client_assertion(
                &assertion(c, EC_PEM_2, &kid),
                "app",
                &jwks,
                &["https://idp.test/token"],
                1000
            )
            .is_err()
        );
        assert!(
            verify_client_assertion(
                &assertion(good.clone(), EC_PEM_2, &kid),
                "app",
                &jwks,
                &["https://idp.test/token"],
                2000
            )
            .is_err()
        );
        let mut c = good;
        c["exp"] = 100_000.into();
        assert!(
            verify_client_assertion(
                &assertion(c, EC_PEM_2, &kid),
                "app",
                &jwks,
                &["https://idp.test/token"],
                1000
            )
            .is_err()
        );
    }
}
