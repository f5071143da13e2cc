//! Security Event Tokens (RFC 8417) as the OpenID Shared Signals Framework 1.0 profiles them,
//! with the CAEP 1.0 and RISC 1.0 events tenantd sends, and the check a receiver runs on one.
//!
//! Only the wire shapes and the rules live here: the types are named after the specs' members
//! (`sub_id`, `events`, `delivery`, `endpoint_url`...), [`SetClaims::new`] builds a SET's claims
//! (never `sub` nor `exp`: SSF 1.0 §4.1.8 and §4.1.9), and [`validate`] checks one received
//! (signature with a given key set, `typ` `secevent+jwt`, `iss`, `aud`, age) and answers with
//! the RFC 8935 §2.3 error code a push receiver returns. Time is passed in; nothing reads a
//! clock, the network or a database.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::jwt::{KeySet, LEEWAY_SECS, SigningAlg, verify_signature};

/// The `typ` header of a SET (SSF 1.0 §4.1.10, RFC 8417 §2.3).
pub const SET_TYP: &str = "secevent+jwt";
/// The media type a pushed SET is sent as (RFC 8935 §2).
pub const SET_MEDIA_TYPE: &str = "application/secevent+jwt";
/// The SSF version tenantd implements (`spec_version` of the transmitter metadata).
pub const SPEC_VERSION: &str = "1_0";
/// The push delivery method (RFC 8935).
pub const DELIVERY_PUSH: &str = "urn:ietf:rfc:8935";
/// The poll delivery method (RFC 8936).
pub const DELIVERY_POLL: &str = "urn:ietf:rfc:8936";
/// The algorithm SETs are signed with: the CAEP interoperability profile requires RS256.
pub const SET_ALG: SigningAlg = SigningAlg::RS256;

/// Event type URIs (SSF 1.0 §8, CAEP 1.0 §3, RISC 1.0 §2).
pub mod event_type {
    /// SSF `verification`.
    pub const VERIFICATION: &str =
        "https://schemas.openid.net/secevent/ssf/event-type/verification";
    /// SSF `stream-updated`.
    pub const STREAM_UPDATED: &str =
        "https://schemas.openid.net/secevent/ssf/event-type/stream-updated";
    /// CAEP `session-revoked`.
    pub const SESSION_REVOKED: &str =
        "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
    /// CAEP `credential-change`.
    pub const CREDENTIAL_CHANGE: &str =
        "https://schemas.openid.net/secevent/caep/event-type/credential-change";
    /// CAEP `risk-level-change`.
    pub const RISK_LEVEL_CHANGE: &str =
        "https://schemas.openid.net/secevent/caep/event-type/risk-level-change";
    /// RISC `account-disabled`.
    pub const ACCOUNT_DISABLED: &str =
        "https://schemas.openid.net/secevent/risc/event-type/account-disabled";
    /// RISC `account-enabled`.
    pub const ACCOUNT_ENABLED: &str =
        "https://schemas.openid.net/secevent/risc/event-type/account-enabled";
    /// tenantd's report to a user's home: a partner blocked the user's sign-in there as a
    /// guest. No CAEP or RISC event says this; SSF lets a transmitter define its own.
    pub const SIGN_IN_BLOCKED: &str = "urn:tenantd:secevent:event-type:sign-in-blocked";

    /// Every event type a tenantd transmitter can send (`events_supported`).
    pub const SUPPORTED: [&str; 7] = [
        VERIFICATION,
        SESSION_REVOKED,
        CREDENTIAL_CHANGE,
        RISK_LEVEL_CHANGE,
        ACCOUNT_DISABLED,
        ACCOUNT_ENABLED,
        SIGN_IN_BLOCKED,
    ];
}

/// A subject identifier (RFC 9493, SSF 1.0 §3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "format", rename_all = "snake_case")]
pub enum SubjectId {
    /// `iss_sub`: the issuer and the `sub` it gives the user.
    IssSub {
        /// Issuer.
        iss: String,
        /// Subject at that issuer.
        sub: String,
    },
    /// `email`.
    Email {
        /// The address.
        email: String,
    },
    /// `opaque`: an identifier only the two sides understand (here, a tenant's issuer).
    Opaque {
        /// The identifier.
        id: String,
    },
    /// `complex` (SSF 1.0 §3.2): several members, each a simple subject identifier.
    Complex {
        /// The user.
        #[serde(skip_serializing_if = "Option::is_none")]
        user: Option<Box<SubjectId>>,
        /// The tenant the user belongs to.
        #[serde(skip_serializing_if = "Option::is_none")]
        tenant: Option<Box<SubjectId>>,
    },
}

impl SubjectId {
    /// A home user as tenantd names it in SETs: complex `user` (`iss_sub`) + `tenant`
    /// (`opaque`, the home's issuer), so a receiver federating with several homes knows whose
    /// user it is even without reading `iss`.
    pub fn home_user(issuer: &str, sub: &str) -> SubjectId {
        SubjectId::Complex {
            user: Some(Box::new(SubjectId::IssSub {
                iss: issuer.to_owned(),
                sub: sub.to_owned(),
            })),
            tenant: Some(Box::new(SubjectId::Opaque {
                id: issuer.to_owned(),
            })),
        }
    }

    /// The `sub` of the `iss_sub` user this names, directly or as a complex `user` member.
    pub fn user_sub(&self) -> Option<&str> {
        match self {
            SubjectId::IssSub { sub, .. } => Some(sub),
            SubjectId::Complex { user: Some(u), .. } => u.user_sub(),
            _ => None,
        }
    }

    /// The `email` this names, directly or as a complex `user` member.
    pub fn email(&self) -> Option<&str> {
        match self {
            SubjectId::Email { email } => Some(email),
            SubjectId::Complex { user: Some(u), .. } => u.email(),
            _ => None,
        }
    }
}

/// CAEP `risk-level-change` levels (CAEP 1.0 §3.8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum CaepRiskLevel {
    /// `LOW`
    Low,
    /// `MEDIUM`
    Medium,
    /// `HIGH`
    High,
}

impl CaepRiskLevel {
    /// The CAEP level of a Graph `riskLevel` (`none` and `hidden` have none: the event then
    /// carries `LOW`, the lowest level CAEP has, for "no risk").
    pub fn from_graph(level: &str) -> CaepRiskLevel {
        match level {
            "high" => CaepRiskLevel::High,
            "medium" => CaepRiskLevel::Medium,
            _ => CaepRiskLevel::Low,
        }
    }
}

/// One event of a SET: its type URI and its members.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The event type URI (see [`event_type`]).
    pub event_type: &'static str,
    /// The event's members.
    pub body: Map<String, Value>,
}

impl Event {
    fn new(event_type: &'static str, body: Value, event_timestamp: Option<i64>) -> Event {
        let mut body = match body {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        if let Some(ts) = event_timestamp {
            body.insert("event_timestamp".into(), Value::from(ts));
        }
        Event { event_type, body }
    }

    /// CAEP `risk-level-change` for a user (`principal: USER`).
    pub fn risk_level_change(
        current: CaepRiskLevel,
        previous: Option<CaepRiskLevel>,
        risk_reason: &str,
        at: i64,
    ) -> Event {
        let mut body = serde_json::json!({
            "principal": "USER",
            "current_level": current,
            "risk_reason": risk_reason,
        });
        if let (Some(p), Value::Object(m)) = (previous, &mut body) {
            m.insert("previous_level".into(), serde_json::json!(p));
        }
        Event::new(event_type::RISK_LEVEL_CHANGE, body, Some(at))
    }

    /// CAEP `session-revoked`; `initiating_entity` is `admin`, `user`, `policy` or `system`.
    pub fn session_revoked(initiating_entity: &str, at: i64) -> Event {
        Event::new(
            event_type::SESSION_REVOKED,
            serde_json::json!({ "initiating_entity": initiating_entity }),
            Some(at),
        )
    }

    /// CAEP `credential-change`: `credential_type` (`password`, `app`, `fido2-roaming`...)
    /// and `change_type` (`create`, `revoke`, `update`, `delete`).
    pub fn credential_change(credential_type: &str, change_type: &str, at: i64) -> Event {
        Event::new(
            event_type::CREDENTIAL_CHANGE,
            serde_json::json!({ "credential_type": credential_type, "change_type": change_type }),
            Some(at),
        )
    }

    /// RISC `account-disabled` (`reason` `hijacking` or `bulk-account`, when known).
    pub fn account_disabled(reason: Option<&str>) -> Event {
        let body = match reason {
            Some(r) => serde_json::json!({ "reason": r }),
            None => serde_json::json!({}),
        };
        Event::new(event_type::ACCOUNT_DISABLED, body, None)
    }

    /// RISC `account-enabled`.
    pub fn account_enabled() -> Event {
        Event::new(event_type::ACCOUNT_ENABLED, serde_json::json!({}), None)
    }

    /// tenantd's `sign-in-blocked`: which policy (`policy`, `error_code`), the sign-in's risk
    /// (`sign_in_risk_level`: CAEP's levels, and `NONE` for a sign-in without risk,
    /// `risk_event_types`) and the client's `ip_address` when known.
    pub fn sign_in_blocked(
        policy: &str,
        error_code: u32,
        sign_in_risk_level: &str,
        risk_event_types: &[String],
        ip_address: Option<&str>,
        at: i64,
    ) -> Event {
        let mut body = serde_json::json!({
            "policy": policy,
            "error_code": error_code,
            "sign_in_risk_level": sign_in_risk_level.to_ascii_uppercase(),
            "risk_event_types": risk_event_types,
        });
        if let (Some(ip), Value::Object(m)) = (ip_address, &mut body) {
            m.insert("ip_address".into(), Value::from(ip));
        }
        Event::new(event_type::SIGN_IN_BLOCKED, body, Some(at))
    }

    /// SSF `verification`, echoing the receiver's `state` when it gave one.
    pub fn verification(state: Option<&str>) -> Event {
        let body = match state {
            Some(s) => serde_json::json!({ "state": s }),
            None => serde_json::json!({}),
        };
        Event::new(event_type::VERIFICATION, body, None)
    }

    /// The `events` claim holding this one event.
    pub fn to_events_claim(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert(self.event_type.to_owned(), Value::Object(self.body.clone()));
        m
    }
}

/// A SET's claims (RFC 8417 §2.2 as SSF 1.0 §4.1 profiles them): no `sub`, no `exp`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetClaims {
    /// The transmitter.
    pub iss: String,
    /// The receiver (the stream's `aud`).
    pub aud: String,
    /// When the SET was issued.
    pub iat: i64,
    /// Unique per SET; the same on every retry of one SET, so receivers can drop duplicates.
    pub jti: String,
    /// Ties SETs caused by one change together (RFC 8417 §2.2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub txn: Option<String>,
    /// The subject (SSF 1.0 §4.1.3).
    pub sub_id: SubjectId,
    /// Exactly one event (SSF 1.0 §4.1.7), keyed by its type URI.
    pub events: Map<String, Value>,
}

impl SetClaims {
    /// A SET carrying `event` about `sub_id`.
    pub fn new(
        iss: &str,
        aud: &str,
        iat: i64,
        jti: &str,
        txn: Option<&str>,
        sub_id: SubjectId,
        event: &Event,
    ) -> SetClaims {
        SetClaims {
            iss: iss.to_owned(),
            aud: aud.to_owned(),
            iat,
            jti: jti.to_owned(),
            txn: txn.map(str::to_owned),
            sub_id,
            events: event.to_events_claim(),
        }
    }

    /// Signs with the tenant's active RS256 key, `typ` [`SET_TYP`].
    pub fn sign(&self, keys: &KeySet) -> Result<String, crate::jwt::JwtError> {
        keys.sign(SET_ALG, SET_TYP, self)
    }
}

/// Why a received SET is refused: the error codes of RFC 8935 §2.3 (RFC 8936 `setErrs` uses
/// the same).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    /// `invalid_request`: not a well-formed SET (bad JWT, wrong `typ`, `sub`/`exp` present,
    /// not exactly one event, too old or from the future).
    #[error("invalid_request: {0}")]
    InvalidRequest(String),
    /// `invalid_key`: no key of the transmitter verifies it.
    #[error("invalid_key: {0}")]
    InvalidKey(String),
    /// `invalid_issuer`: `iss` is not the expected transmitter.
    #[error("invalid_issuer: {0}")]
    InvalidIssuer(String),
    /// `invalid_audience`: `aud` does not name this receiver.
    #[error("invalid_audience: {0}")]
    InvalidAudience(String),
}

impl SetError {
    /// The RFC 8935 `err` code.
    pub fn code(&self) -> &'static str {
        match self {
            SetError::InvalidRequest(_) => "invalid_request",
            SetError::InvalidKey(_) => "invalid_key",
            SetError::InvalidIssuer(_) => "invalid_issuer",
            SetError::InvalidAudience(_) => "invalid_audience",
        }
    }

    /// The `{"err","description"}` body of RFC 8935 §2.3 / RFC 8936 `setErrs`.
    pub fn to_json(&self) -> Value {
        let description = match self {
            SetError::InvalidRequest(d)
            | SetError::InvalidKey(d)
            | SetError::InvalidIssuer(d)
            | SetError::InvalidAudience(d) => d.clone(),
        };
        serde_json::json!({ "err": self.code(), "description": description })
    }
}

/// What a receiver expects of a SET.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The transmitter's issuer.
    pub issuer: &'a str,
    /// This receiver's names (one of the SET's `aud` values must be one of them: a receiver
    /// may be addressed by its issuer or by its client id at the transmitter).
    pub audiences: &'a [&'a str],
    /// The transmitter's public keys: a JWKS document (`{"keys": [...]}`).
    pub jwks: &'a Value,
    /// The oldest `iat` accepted, in seconds before `now` (events older are replays or lost).
    pub max_age_secs: i64,
}

/// Checks a received SET completely: `typ` `secevent+jwt`, an asymmetric signature by the
/// transmitter's key named by `kid` (or, without `kid`, any of its keys), `iss`, `aud`, `iat`
/// within `max_age_secs` (and not in the future beyond [`LEEWAY_SECS`]), a `jti`, no `sub` or
/// `exp`, exactly one event; returns the claims.
pub fn validate(compact: &str, expected: &Expected<'_>, now: i64) -> Result<SetClaims, SetError> {
    let header = jsonwebtoken::decode_header(compact)
        .map_err(|e| SetError::InvalidRequest(format!("not a JWT: {e}")))?;
    let typ_ok = header.typ.as_deref().is_some_and(|t| {
        let t = t.strip_prefix("application/").unwrap_or(t);
        t.eq_ignore_ascii_case(SET_TYP)
    });
    if !typ_ok {
        return Err(SetError::InvalidRequest(format!(
            "typ {:?} is not {SET_TYP}",
            header.typ
        )));
    }
    let alg = format!("{:?}", header.alg);
    let keys = expected
        .jwks
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| SetError::InvalidKey("the transmitter publishes no keys".into()))?;
    let candidates: Vec<&Value> = keys
        .iter()
        .filter(|k| match header.kid.as_deref() {
            Some(kid) => k.get("kid").and_then(Value::as_str) == Some(kid),
            None => true,
        })
        .collect();
    if candidates.is_empty() {
        return Err(SetError::InvalidKey(format!(
            "no key {:?} at the transmitter",
            header.kid
        )));
    }
    let payload = candidates
        .iter()
        .find_map(|jwk| verify_signature(compact, jwk, &alg).ok())
        .ok_or_else(|| SetError::InvalidKey("the signature does not verify".into()))?;
    check_claims(Value::Object(payload), expected, now)
}

/// The claim checks of [`validate`], after the signature.
fn check_claims(payload: Value, expected: &Expected<'_>, now: i64) -> Result<SetClaims, SetError> {
    if payload.get("sub").is_some() {
        return Err(SetError::InvalidRequest("a SET has no sub".into()));
    }
    if payload.get("exp").is_some() {
        return Err(SetError::InvalidRequest("a SET has no exp".into()));
    }
    let iss = payload.get("iss").and_then(Value::as_str);
    if iss != Some(expected.issuer) {
        return Err(SetError::InvalidIssuer(format!("iss {iss:?}")));
    }
    let named = |a: &str| expected.audiences.iter().find(|x| **x == a).copied();
    let aud = match payload.get("aud") {
        Some(Value::String(a)) => named(a),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).find_map(named),
        _ => None,
    };
    let Some(aud) = aud else {
        return Err(SetError::InvalidAudience(format!(
            "aud does not name this receiver ({})",
            expected.audiences.join(" or ")
        )));
    };
    // `aud` may be an array on the wire; the claims keep the receiver's own.
    let mut payload = payload;
    if let Value::Object(m) = &mut payload {
        m.insert("aud".into(), Value::from(aud));
    }
    let claims: SetClaims = serde_json::from_value(payload)
        .map_err(|e| SetError::InvalidRequest(format!("malformed SET: {e}")))?;
    if claims.iat > now + LEEWAY_SECS {
        return Err(SetError::InvalidRequest("iat is in the future".into()));
    }
    if claims.iat < now - expected.max_age_secs {
        return Err(SetError::InvalidRequest("the SET is too old".into()));
    }
    if claims.jti.is_empty() {
        return Err(SetError::InvalidRequest("no jti".into()));
    }
    if claims.events.len() != 1 {
        return Err(SetError::InvalidRequest(
            "a SET carries exactly one event".into(),
        ));
    }
    Ok(claims)
}

/// Exponential back-off of a failed push: 2^attempts seconds from 2 s, at most an hour.
pub fn retry_delay_secs(attempts: u32) -> i64 {
    1_i64
        .checked_shl(attempts.min(12))
        .unwrap_or(4096)
        .min(3600)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::jwt::SigningKey;

    fn keys() -> KeySet {
        let pem = include_str!("../testdata/rs256.pem");
        let key = SigningKey::from_pkcs8_pem(SigningAlg::RS256, pem, 0, None).unwrap();
        KeySet::new(vec![key], 3600)
    }

    fn claims(now: i64) -> SetClaims {
        SetClaims::new(
            "https://home.example",
            "https://resource.example",
            now,
            "jti-1",
            Some("txn-1"),
            SubjectId::home_user("https://home.example", "user-1"),
            &Event::risk_level_change(
                CaepRiskLevel::High,
                Some(CaepRiskLevel::Low),
                "adminConfirmedUserCompromised",
                now,
            ),
        )
    }

    fn expected<'a>(jwks: &'a Value) -> Expected<'a> {
        Expected {
            issuer: "https://home.example",
            audiences: &["https://resource.example"],
            jwks,
            max_age_secs: 3600,
        }
    }

    #[test]
    fn a_set_has_the_profiled_shape() {
        let v = serde_json::to_value(claims(100)).unwrap();
        assert!(v.get("sub").is_none() && v.get("exp").is_none());
        assert_eq!(v["sub_id"]["format"], "complex");
        assert_eq!(v["sub_id"]["user"]["format"], "iss_sub");
        assert_eq!(v["sub_id"]["user"]["sub"], "user-1");
        assert_eq!(v["sub_id"]["tenant"]["format"], "opaque");
        let ev = &v["events"][event_type::RISK_LEVEL_CHANGE];
        assert_eq!(ev["principal"], "USER");
        assert_eq!(ev["current_level"], "HIGH");
        assert_eq!(ev["previous_level"], "LOW");
        assert_eq!(ev["risk_reason"], "adminConfirmedUserCompromised");
        assert_eq!(ev["event_timestamp"], 100);
    }

    #[test]
    fn a_signed_set_validates() {
        let keys = keys();
        let jwks = serde_json::to_value(keys.jwks(0)).unwrap();
        let token = claims(1000).sign(&keys).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.typ.as_deref(), Some(SET_TYP));
        let got = validate(&token, &expected(&jwks), 1010).unwrap();
        assert_eq!(got, claims(1000));
        assert_eq!(got.sub_id.user_sub(), Some("user-1"));
    }

    #[test]
    fn each_failure_has_its_rfc_8935_code() {
        let keys = keys();
        let jwks = serde_json::to_value(keys.jwks(0)).unwrap();
        let token = claims(1000).sign(&keys).unwrap();
        let e = expected(&jwks);

        let wrong_iss = Expected {
            issuer: "https://other.example",
            ..e
        };
        assert_eq!(
            validate(&token, &wrong_iss, 1000).unwrap_err().code(),
            "invalid_issuer"
        );
        let wrong_aud = Expected {
            audiences: &["https://other.example"],
            ..e
        };
        assert_eq!(
            validate(&token, &wrong_aud, 1000).unwrap_err().code(),
            "invalid_audience"
        );
        let no_keys = serde_json::json!({"keys": []});
        let unknown = Expected {
            jwks: &no_keys,
            ..e
        };
        assert_eq!(
            validate(&token, &unknown, 1000).unwrap_err().code(),
            "invalid_key"
        );
        assert_eq!(
            validate(&token, &e, 1000 + 3601).unwrap_err().code(),
            "invalid_request"
        );
        assert_eq!(
            validate(&token, &e, 1000 - 60).unwrap_err().code(),
            "invalid_request"
        );
        assert_eq!(
            validate("not.a.jwt", &e, 1000).unwrap_err().code(),
            "invalid_request"
        );

        // Tampered payload: the signature no longer verifies.
        let other_payload = claims(1001).sign(&keys).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let other: Vec<&str> = other_payload.split('.').collect();
        let tampered = format!("{}.{}.{}", parts[0], other[1], parts[2]);
        assert_eq!(
            validate(&tampered, &e, 1000).unwrap_err().code(),
            "invalid_key"
        );

        // Another typ is refused, even with a good signature.
        let other = keys.sign(SET_ALG, "JWT", &claims(1000)).unwrap();
        assert_eq!(
            validate(&other, &e, 1000).unwrap_err().code(),
            "invalid_request"
        );

        // A SET must not carry sub.
        let mut with_sub = serde_json::to_value(claims(1000)).unwrap();
        with_sub["sub"] = "user-1".into();
        let with_sub = keys.sign(SET_ALG, SET_TYP, &with_sub).unwrap();
        assert_eq!(
            validate(&with_sub, &e, 1000).unwrap_err().code(),
            "invalid_request"
        );
    }

    #[test]
    fn aud_may_be_an_array_and_exp_is_refused() {
        let keys = keys();
        let jwks = serde_json::to_value(keys.jwks(0)).unwrap();
        let e = expected(&jwks);
        let mut v = serde_json::to_value(claims(1000)).unwrap();
        v["aud"] = serde_json::json!(["https://other.example", "https://resource.example"]);
        let token = keys.sign(SET_ALG, SET_TYP, &v).unwrap();
        assert_eq!(
            validate(&token, &e, 1000).unwrap().aud,
            "https://resource.example"
        );
        v["exp"] = 2000.into();
        let token = keys.sign(SET_ALG, SET_TYP, &v).unwrap();
        assert_eq!(
            validate(&token, &e, 1000).unwrap_err().code(),
            "invalid_request"
        );
        // Two events in one SET are refused (SSF: exactly one).
        let mut two = serde_json::to_value(claims(1000)).unwrap();
        two["events"][event_type::ACCOUNT_ENABLED] = serde_json::json!({});
        let token = keys.sign(SET_ALG, SET_TYP, &two).unwrap();
        assert_eq!(
            validate(&token, &e, 1000).unwrap_err().code(),
            "invalid_request"
        );
        // The RFC 8935 error body.
        let err = SetError::InvalidKey("x".into()).to_json();
        assert_eq!(
            err,
            serde_json::json!({"err": "invalid_key", "description": "x"})
        );
    }

    #[test]
    fn subject_ids_round_trip() {
        for s in [
            SubjectId::Email {
                email: "a@example.com".into(),
            },
            SubjectId::IssSub {
                iss: "i".into(),
                sub: "s".into(),
            },
            SubjectId::home_user("i", "s"),
        ] {
            let back: SubjectId =
                serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
            assert_eq!(back, s);
        }
        let email: SubjectId =
            serde_json::from_value(serde_json::json!({"format": "email", "email": "x@y"})).unwrap();
        assert_eq!(email.email(), Some("x@y"));
    }

    #[test]
    fn back_off_doubles_up_to_an_hour() {
        assert_eq!(retry_delay_secs(1), 2);
        assert_eq!(retry_delay_secs(3), 8);
        assert_eq!(retry_delay_secs(40), 3600);
    }
}
