//! Security Event Tokens (RFC 8417) a partner sends about its users over OpenID Shared Signals
//! (SSF 1.0: CAEP and RISC events), checked the way a receiver must before it acts on one:
//! `typ` `secevent+jwt`; signed by a key of the partner's JWKS (by `kid`, discovering again once
//! when the key is unknown) with an asymmetric algorithm; `iss` the partner's issuer; `aud`
//! naming this receiver; a `jti`; `iat` neither in the future nor older than
//! [`MAX_SET_AGE_SECS`]; `events` present. A refusal carries the RFC 8935 §2.3 error code the
//! receiver answers with (push) or lists in `setErrs` (poll, RFC 8936).
//!
//! The partner's keys are the ones its OpenID discovery names (a tenantd home signs SETs with its
//! tenant keys, as it does ID tokens).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use crate::upstream::{Provider, Upstream};

/// The `typ` of a Security Event Token (RFC 8417 §2.3).
pub const SET_TYP: &str = "secevent+jwt";

/// How old a SET may be when it arrives: a receiver that was down catches up on what was
/// queued for it (by poll, or by the transmitter's retries) within this time; older ones are
/// refused, so the record of applied events need not be kept longer.
pub const MAX_SET_AGE_SECS: i64 = 7 * 86_400;

/// How far in the future `iat` may be (clocks differ).
const CLOCK_SKEW_SECS: i64 = 60;

/// Why a SET was refused, as RFC 8935 §2.3 names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    /// Not a well-formed SET (or one this receiver will not accept: too old, no `jti`).
    #[error("invalid_request: {0}")]
    InvalidRequest(String),
    /// Signed with a key the partner does not publish, or the signature does not verify.
    #[error("invalid_key: {0}")]
    InvalidKey(String),
    /// `iss` is not the partner.
    #[error("invalid_issuer: {0}")]
    InvalidIssuer(String),
    /// `aud` does not name this receiver.
    #[error("invalid_audience: {0}")]
    InvalidAudience(String),
    /// The partner's keys could not be had (it is unreachable): try again later.
    #[error("the partner's keys could not be fetched: {0}")]
    Unavailable(String),
}

impl SetError {
    /// The RFC 8935 `err` code.
    pub fn code(&self) -> &'static str {
        match self {
            SetError::InvalidRequest(_) | SetError::Unavailable(_) => "invalid_request",
            SetError::InvalidKey(_) => "invalid_key",
            SetError::InvalidIssuer(_) => "invalid_issuer",
            SetError::InvalidAudience(_) => "invalid_audience",
        }
    }

    /// The human-readable `description`.
    pub fn description(&self) -> String {
        match self {
            SetError::InvalidRequest(d)
            | SetError::InvalidKey(d)
            | SetError::InvalidIssuer(d)
            | SetError::InvalidAudience(d)
            | SetError::Unavailable(d) => d.clone(),
        }
    }
}

/// Who a SET is about (SSF subject identifiers, RFC 9493).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetSubject {
    /// `email` format.
    Email(String),
    /// `iss_sub` format.
    IssSub {
        /// The issuer the subject belongs to.
        iss: String,
        /// The subject there.
        sub: String,
    },
}

/// A SET that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedSet {
    /// Its id, unique per issuer.
    pub jti: String,
    /// When it was issued, unix seconds.
    pub iat: i64,
    /// Who it is about: the `sub_id` claim (or, as earlier drafts put it, an event's `subject`),
    /// for a user (the `user` of a `complex` subject); `None` when it names no user this
    /// receiver can read.
    pub subject: Option<SetSubject>,
    /// The events: event type URI → its payload.
    pub events: Map<String, Value>,
}

impl Upstream {
    /// Checks a SET the partner sent (see the module documentation); `aud` must contain one of
    /// `audiences` (the receiver's issuer, its client id at the partner).
    pub async fn verify_set(
        &self,
        compact: &str,
        audiences: &[&str],
        now: i64,
    ) -> Result<ReceivedSet, SetError> {
        let header = header(compact)?;
        let typ = header
            .get("typ")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let typ = typ.strip_prefix("application/").unwrap_or(typ);
        if !typ.eq_ignore_ascii_case(SET_TYP) {
            return Err(SetError::InvalidRequest(format!(
                "the JWS typ is {typ:?}, not {SET_TYP}"
            )));
        }
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or_else(|| SetError::InvalidRequest("the JWS header has no alg".into()))?;
        if alg == "none" || alg.starts_with("HS") {
            return Err(SetError::InvalidKey(format!(
                "alg {alg} is refused: a SET is signed with the partner's public key"
            )));
        }
        let kid = header.get("kid").and_then(Value::as_str);
        let unavailable = |e: crate::FederationError| SetError::Unavailable(e.to_string());
        let provider = self.provider().await.map_err(unavailable)?;
        let provider = match key_of(&provider, kid) {
            Some(_) => provider,
            // A key rotated in since the last discovery: look once more.
            None => self.refresh(&provider).await.map_err(unavailable)?,
        };
        let jwk = key_of(&provider, kid)
            .ok_or_else(|| SetError::InvalidKey(format!("the partner publishes no key {kid:?}")))?;
        let claims = protocol::jwt::verify_signature(compact, jwk, alg)
            .map_err(|e| SetError::InvalidKey(format!("the signature does not verify: {e}")))?;
        check_claims(claims, &self.settings().issuer, audiences, now)
    }
}

/// The JWK of the partner's named `kid` (or its only key, when the SET names none).
fn key_of<'a>(provider: &'a Provider, kid: Option<&str>) -> Option<&'a Value> {
    match kid {
        Some(kid) => provider
            .jwks
            .iter()
            .find(|k| k.get("kid").and_then(Value::as_str) == Some(kid)),
        None if provider.jwks.len() == 1 => provider.jwks.first(),
        None => None,
    }
}

/// The header of a compact JWS (three parts), decoded but not verified.
fn header(compact: &str) -> Result<Map<String, Value>, SetError> {
    let bad = |why: &str| SetError::InvalidRequest(why.to_owned());
    let mut it = compact.split('.');
    let (Some(h), Some(_), Some(_), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(bad("not a compact JWS (three parts)"));
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(h)
        .map_err(|_| bad("the JWS header is not base64url"))?;
    serde_json::from_slice(&bytes).map_err(|_| bad("the JWS header is not a JSON object"))
}

/// The checks on a SET's verified claims.
pub fn check_claims(
    claims: Map<String, Value>,
    issuer: &str,
    audiences: &[&str],
    now: i64,
) -> Result<ReceivedSet, SetError> {
    let iss = claims
        .get("iss")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if iss != issuer {
        return Err(SetError::InvalidIssuer(format!(
            "iss is {iss:?}, not the partner's issuer {issuer:?}"
        )));
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => audiences.contains(&a.as_str()),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .any(|a| audiences.contains(&a)),
        _ => false,
    };
    if !aud_ok {
        return Err(SetError::InvalidAudience(format!(
            "aud does not name this receiver ({})",
            audiences.join(" or ")
        )));
    }
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or_else(|| SetError::InvalidRequest("no jti (of at most 256 characters)".into()))?
        .to_owned();
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or_else(|| SetError::InvalidRequest("no iat".into()))?;
    if iat > now + CLOCK_SKEW_SECS {
        return Err(SetError::InvalidRequest(format!(
            "issued {}s in the future",
            iat - now
        )));
    }
    if iat < now - MAX_SET_AGE_SECS {
        return Err(SetError::InvalidRequest(format!(
            "issued {}s ago, more than the {MAX_SET_AGE_SECS}s accepted",
            now - iat
        )));
    }
    let events = match claims.get("events") {
        Some(Value::Object(e)) if !e.is_empty() => e.clone(),
        _ => return Err(SetError::InvalidRequest("no events".into())),
    };
    let subject = claims
        .get("sub_id")
        .or_else(|| events.values().find_map(|e| e.get("subject")))
        .and_then(subject_of);
    Ok(ReceivedSet {
        jti,
        iat,
        subject,
        events,
    })
}

/// A subject identifier this receiver can read: `email`, `iss_sub`, or the `user` of a
/// `complex` one.
fn subject_of(v: &Value) -> Option<SetSubject> {
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    match v.get("format").and_then(Value::as_str) {
        Some("email") => text("email").map(|e| SetSubject::Email(e.to_lowercase())),
        Some("iss_sub") => Some(SetSubject::IssSub {
            iss: text("iss")?,
            sub: text("sub")?,
        }),
        Some("complex") => v.get("user").and_then(subject_of),
        // A complex subject written without its format member (as some drafts do).
        None => v.get("user").and_then(subject_of),
        Some(_) => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    const ISS: &str = "https://home.test";
    const AUD: &str = "https://resource.test";

    fn claims(extra: Value) -> Map<String, Value> {
        let mut c = json!({
            "iss": ISS,
            "aud": AUD,
            "jti": "j-1",
            "iat": 1_000,
            "sub_id": {"format": "email", "email": "Bob@Contoso.test"},
            "events": {"https://schemas.openid.net/secevent/caep/event-type/session-revoked": {}},
        });
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c.as_object().unwrap().clone()
    }

    #[test]
    fn a_good_set_is_read() {
        let set = check_claims(claims(json!({})), ISS, &[AUD], 1_010).unwrap();
        assert_eq!(set.jti, "j-1");
        assert_eq!(
            set.subject,
            Some(SetSubject::Email("bob@contoso.test".into()))
        );
        let set = check_claims(
            claims(
                json!({"aud": ["other", AUD], "sub_id": {"format": "complex",
                "user": {"format": "iss_sub", "iss": ISS, "sub": "u-1"},
                "tenant": {"format": "opaque", "id": "contoso"}}}),
            ),
            ISS,
            &[AUD],
            1_010,
        )
        .unwrap();
        assert_eq!(
            set.subject,
            Some(SetSubject::IssSub {
                iss: ISS.into(),
                sub: "u-1".into()
            })
        );
    }

    #[test]
    fn each_refusal_has_its_rfc_8935_code() {
        let code = |extra: Value, now: i64| {
            check_claims(claims(extra), ISS, &[AUD], now)
                .unwrap_err()
                .code()
        };
        assert_eq!(
            code(json!({"iss": "https://evil.test"}), 1_010),
            "invalid_issuer"
        );
        assert_eq!(
            code(json!({"aud": "https://other.test"}), 1_010),
            "invalid_audience"
        );
        assert_eq!(code(json!({"aud": null}), 1_010), "invalid_audience");
        assert_eq!(code(json!({"jti": null}), 1_010), "invalid_request");
        assert_eq!(code(json!({"jti": ""}), 1_010), "invalid_request");
        assert_eq!(code(json!({"iat": null}), 1_010), "invalid_request");
        assert_eq!(code(json!({"events": {}}), 1_010), "invalid_request");
        assert_eq!(
            code(json!({}), 1_000 + MAX_SET_AGE_SECS + 1),
            "invalid_request"
        );
        assert_eq!(code(json!({"iat": 2_000}), 1_000), "invalid_request");
    }

    #[test]
    fn malformed_jws_is_an_invalid_request() {
        assert!(matches!(header("a.b"), Err(SetError::InvalidRequest(_))));
        assert!(matches!(
            header("a.b.c.d"),
            Err(SetError::InvalidRequest(_))
        ));
        assert!(matches!(
            header("!!.e30.x"),
            Err(SetError::InvalidRequest(_))
        ));
        assert!(matches!(
            header("bm90IGpzb24.e30.x"),
            Err(SetError::InvalidRequest(_))
        ));
    }
}

/// RFC 8935 push delivery, as SSF names it.
pub const PUSH_DELIVERY: &str = "urn:ietf:rfc:8935";
/// RFC 8936 poll delivery, as SSF names it.
pub const POLL_DELIVERY: &str = "urn:ietf:rfc:8936";
/// The scopes a receiver manages (`ssf.manage`) and reads and polls (`ssf.read`) its stream
/// at a tenantd transmitter with.
pub const MANAGE_SCOPE: &str = "ssf.manage ssf.read";

/// A partner's SSF transmitter metadata (its `/.well-known/ssf-configuration`): what a
/// receiver uses of it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct TransmitterConfig {
    /// The transmitter's issuer (the partner's).
    pub issuer: String,
    /// Where streams are created, read, replaced and deleted.
    pub configuration_endpoint: Option<String>,
    /// Where a verification event is asked for.
    pub verification_endpoint: Option<String>,
    /// Delivery methods it offers.
    #[serde(default)]
    pub delivery_methods_supported: Vec<String>,
}

/// The stream a partner holds for this receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamAtPartner {
    /// Its id there.
    pub stream_id: String,
    /// Where to poll it, for a polled stream.
    pub poll_url: Option<String>,
}

/// What one poll brought.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Polled {
    /// The SETs, `(jti, compact SET)`.
    pub sets: Vec<(String, String)>,
    /// Whether the transmitter holds more.
    pub more_available: bool,
}

/// How a receiver wants its stream delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WantedDelivery<'a> {
    /// Pushed to `endpoint_url` with `authorization_header` (RFC 8935).
    Push {
        /// The receiver's push endpoint.
        endpoint_url: &'a str,
        /// What the transmitter sends as `Authorization` with each push.
        authorization_header: &'a str,
    },
    /// Fetched by the receiver from the endpoint the transmitter names (RFC 8936).
    Poll,
}

/// The stream a receiver wants: its delivery and the events in `events_requested`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedStream<'a> {
    /// How it is delivered.
    pub delivery: WantedDelivery<'a>,
    /// The event types the receiver asks for.
    pub events_requested: &'a [&'a str],
    /// A description of the stream, for the partner's admins.
    pub description: &'a str,
}

impl Upstream {
    /// The partner's SSF transmitter metadata.
    pub async fn transmitter(&self) -> Result<TransmitterConfig, crate::FederationError> {
        let url = format!(
            "{}/.well-known/ssf-configuration",
            self.settings().issuer.trim_end_matches('/')
        );
        let (_, json) = self.ssf_json(self.http().get(&url), &[200]).await?;
        let config: TransmitterConfig = serde_json::from_value(json).map_err(|e| {
            crate::FederationError::BadPartner(format!("the SSF configuration is not usable: {e}"))
        })?;
        if config.issuer != self.settings().issuer {
            return Err(crate::FederationError::BadPartner(format!(
                "the SSF configuration's issuer is {:?}, not the partner's",
                config.issuer
            )));
        }
        Ok(config)
    }

    /// Makes the partner's stream to this receiver the one `wanted` describes: the stream
    /// already known (`known`), else the one the partner holds for this receiver, is replaced;
    /// one is created when the partner has none (it lost it, or never had it).
    pub async fn ensure_stream(
        &self,
        config: &TransmitterConfig,
        token: &str,
        wanted: &WantedStream<'_>,
        known: Option<&str>,
    ) -> Result<StreamAtPartner, crate::FederationError> {
        let bad = |why: String| crate::FederationError::BadPartner(why);
        let endpoint = config
            .configuration_endpoint
            .as_deref()
            .ok_or_else(|| bad("the SSF configuration has no configuration_endpoint".into()))?;
        let method = match wanted.delivery {
            WantedDelivery::Push { .. } => PUSH_DELIVERY,
            WantedDelivery::Poll => POLL_DELIVERY,
        };
        if !config
            .delivery_methods_supported
            .iter()
            .any(|m| m == method)
        {
            return Err(bad(format!(
                "the partner's transmitter does not offer {method} delivery"
            )));
        }
        let existing = match known {
            Some(id) => {
                let (status, stream) = self
                    .ssf_json(
                        self.http()
                            .get(endpoint)
                            .query(&[("stream_id", id)])
                            .bearer_auth(token),
                        &[200, 404],
                    )
                    .await?;
                (status == 200).then(|| stream_id_of(&stream)).flatten()
            }
            None => None,
        };
        let existing = match existing {
            Some(id) => Some(id),
            None => {
                let (_, streams) = self
                    .ssf_json(self.http().get(endpoint).bearer_auth(token), &[200, 404])
                    .await?;
                match &streams {
                    serde_json::Value::Array(list) => list.iter().find_map(stream_id_of),
                    one => stream_id_of(one),
                }
            }
        };
        let delivery = match wanted.delivery {
            WantedDelivery::Push {
                endpoint_url,
                authorization_header,
            } => serde_json::json!({
                "method": PUSH_DELIVERY,
                "endpoint_url": endpoint_url,
                "authorization_header": authorization_header,
            }),
            WantedDelivery::Poll => serde_json::json!({ "method": POLL_DELIVERY }),
        };
        let mut body = serde_json::json!({
            "delivery": delivery,
            "events_requested": wanted.events_requested,
            "description": wanted.description,
        });
        let (_, stream) = match existing {
            Some(id) => {
                body["stream_id"] = serde_json::Value::String(id);
                self.ssf_json(
                    self.http().put(endpoint).bearer_auth(token).json(&body),
                    &[200],
                )
                .await?
            }
            None => {
                self.ssf_json(
                    self.http().post(endpoint).bearer_auth(token).json(&body),
                    &[200, 201],
                )
                .await?
            }
        };
        let stream_id = stream_id_of(&stream)
            .ok_or_else(|| bad("the stream the partner returned has no stream_id".into()))?;
        let poll_url = match wanted.delivery {
            WantedDelivery::Poll => Some(
                stream["delivery"]["endpoint_url"]
                    .as_str()
                    .ok_or_else(|| {
                        bad("the polled stream the partner returned names no endpoint_url".into())
                    })?
                    .to_owned(),
            ),
            WantedDelivery::Push { .. } => None,
        };
        Ok(StreamAtPartner {
            stream_id,
            poll_url,
        })
    }

    /// One poll (RFC 8936 §2.4): acknowledges `ack`, reports `set_errs` (jti → the RFC 8935
    /// error and description), and returns the SETs the transmitter has (at most
    /// `max_events`) and whether it holds more.
    pub async fn poll(
        &self,
        poll_url: &str,
        token: &str,
        ack: &[String],
        set_errs: &[(String, &'static str, String)],
        max_events: u32,
    ) -> Result<Polled, crate::FederationError> {
        let errs: serde_json::Map<String, serde_json::Value> = set_errs
            .iter()
            .map(|(jti, err, description)| {
                (
                    jti.clone(),
                    serde_json::json!({ "err": err, "description": description }),
                )
            })
            .collect();
        let mut body = serde_json::json!({
            "maxEvents": max_events,
            "returnImmediately": true,
            "ack": ack,
        });
        if !errs.is_empty() {
            body["setErrs"] = serde_json::Value::Object(errs);
        }
        let (_, answer) = self
            .ssf_json(
                self.http().post(poll_url).bearer_auth(token).json(&body),
                &[200],
            )
            .await?;
        let sets = match answer.get("sets") {
            Some(serde_json::Value::Object(sets)) => sets
                .iter()
                .filter_map(|(jti, set)| Some((jti.clone(), set.as_str()?.to_owned())))
                .collect(),
            None => Vec::new(),
            Some(_) => {
                return Err(crate::FederationError::BadPartner(
                    "the poll answer's sets is not an object".into(),
                ));
            }
        };
        Ok(Polled {
            sets,
            more_available: answer
                .get("moreAvailable")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false),
        })
    }

    /// Asks the partner to send a verification event on `stream_id`, echoing `state`.
    pub async fn request_verification(
        &self,
        config: &TransmitterConfig,
        token: &str,
        stream_id: &str,
        state: &str,
    ) -> Result<(), crate::FederationError> {
        let endpoint = config.verification_endpoint.as_deref().ok_or_else(|| {
            crate::FederationError::BadPartner(
                "the SSF configuration has no verification_endpoint".into(),
            )
        })?;
        let request = self
            .http()
            .post(endpoint)
            .bearer_auth(token)
            .json(&serde_json::json!({ "stream_id": stream_id, "state": state }));
        let response = request
            .send()
            .await
            .map_err(|e| crate::upstream::request_failure("SSF verification endpoint", &e))?;
        match response.status().as_u16() {
            200 | 202 | 204 => Ok(()),
            s => Err(crate::FederationError::BadPartner(format!(
                "the verification endpoint answered HTTP {s}"
            ))),
        }
    }

    /// Sends `request` to the partner's transmitter and reads its JSON answer, for one of the
    /// `expected` statuses (a 404's body may be empty: it reads as `null`).
    async fn ssf_json(
        &self,
        request: reqwest::RequestBuilder,
        expected: &[u16],
    ) -> Result<(u16, serde_json::Value), crate::FederationError> {
        let response = request
            .send()
            .await
            .map_err(|e| crate::upstream::request_failure("SSF transmitter", &e))?;
        let status = response.status().as_u16();
        if !expected.contains(&status) {
            return Err(if status >= 500 {
                crate::FederationError::Unreachable(format!(
                    "the SSF transmitter answered HTTP {status}"
                ))
            } else {
                crate::FederationError::BadPartner(format!(
                    "the SSF transmitter answered HTTP {status}"
                ))
            });
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| crate::upstream::request_failure("SSF transmitter", &e))?;
        if bytes.is_empty() || status == 404 {
            return Ok((status, serde_json::Value::Null));
        }
        let value = serde_json::from_slice(&bytes).map_err(|e| {
            crate::FederationError::BadPartner(format!(
                "the SSF transmitter's answer is not the JSON expected: {e}"
            ))
        })?;
        Ok((status, value))
    }
}

fn stream_id_of(stream: &serde_json::Value) -> Option<String> {
    stream
        .get("stream_id")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
}
