//! Security Event Tokens (RFC 8417) a partner sends about its users over OpenID Shared Signals
//! (SSF 1.0: CAEP and RISC events), checked the way a receiver must before it acts on one, by
//! `protocol::set::validate` (`typ` `secevent+jwt`; an asymmetric signature by the partner's key
//! of its `kid`; `iss` the partner's issuer; `aud` naming this receiver; a `jti`; `iat` neither
//! in the future nor older than [`MAX_SET_AGE_SECS`]; one event; no `sub` or `exp`) with the keys
//! the partner publishes, discovering them again once when a SET names a key not yet known. A
//! refusal carries the RFC 8935 §2.3 error code the receiver answers with (push) or lists in
//! `setErrs` (poll, RFC 8936).
//!
//! The partner's keys are the ones its OpenID discovery names (a tenantd home signs SETs with its
//! tenant keys, as it does ID tokens).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use protocol::set::{Expected, SubjectId};
use serde_json::{Map, Value};

use crate::upstream::Upstream;

/// How old a SET may be when it arrives: a receiver that was down catches up on what was
/// queued for it (by poll, or by the transmitter's retries) within this time; older ones are
/// refused, so the record of applied events need not be kept longer.
pub const MAX_SET_AGE_SECS: i64 = 7 * 86_400;

/// Why a SET was not received.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    /// It was refused (the RFC 8935 error to answer with).
    #[error(transparent)]
    Refused(#[from] protocol::set::SetError),
    /// The partner's keys could not be had (it is unreachable): try again later.
    #[error("the partner's keys could not be fetched: {0}")]
    Unavailable(String),
}

impl SetError {
    /// The RFC 8935 `err` code.
    pub fn code(&self) -> &'static str {
        match self {
            SetError::Refused(e) => e.code(),
            SetError::Unavailable(_) => "invalid_request",
        }
    }

    /// The human-readable `description`.
    pub fn description(&self) -> String {
        match self {
            SetError::Refused(e) => e.to_json()["description"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            SetError::Unavailable(d) => d.clone(),
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
    /// Who it is about: the user its `sub_id` names (directly or as the `user` of a `complex`
    /// subject); `None` when it names no user this receiver can read.
    pub subject: Option<SetSubject>,
    /// The event: its type URI → its payload.
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
        let unavailable = |e: crate::FederationError| SetError::Unavailable(e.to_string());
        let mut provider = self.provider().await.map_err(unavailable)?;
        // A key rotated in since the last discovery: look once more (only for a kid not known,
        // so a forged SET cannot make the partner be asked again and again).
        if let Some(kid) = kid_of(compact)
            && !provider
                .jwks
                .iter()
                .any(|k| k.get("kid").and_then(Value::as_str) == Some(kid.as_str()))
        {
            provider = self.refresh(&provider).await.map_err(unavailable)?;
        }
        let jwks = serde_json::json!({ "keys": provider.jwks });
        let expected = Expected {
            issuer: &self.settings().issuer,
            audiences,
            jwks: &jwks,
            max_age_secs: MAX_SET_AGE_SECS,
        };
        let claims = protocol::set::validate(compact, &expected, now)?;
        Ok(ReceivedSet {
            jti: claims.jti,
            iat: claims.iat,
            subject: subject_of(&claims.sub_id),
            events: claims.events,
        })
    }
}

/// The `kid` of a compact JWS's header, if it names one (read only to pick the keys; the
/// signature is checked by `validate`).
fn kid_of(compact: &str) -> Option<String> {
    let header = URL_SAFE_NO_PAD.decode(compact.split('.').next()?).ok()?;
    let header: Value = serde_json::from_slice(&header).ok()?;
    header.get("kid")?.as_str().map(str::to_owned)
}

/// The user a subject identifier names in a form this receiver can read: `email`, `iss_sub`,
/// or either as the `user` of a `complex` one.
fn subject_of(subject: &SubjectId) -> Option<SetSubject> {
    match subject {
        SubjectId::Email { email } => Some(SetSubject::Email(email.to_lowercase())),
        SubjectId::IssSub { iss, sub } => Some(SetSubject::IssSub {
            iss: iss.clone(),
            sub: sub.clone(),
        }),
        SubjectId::Complex { user: Some(u), .. } => subject_of(u),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn users_are_read_from_simple_and_complex_subjects() {
        let email = SubjectId::Email {
            email: "Bob@Contoso.test".into(),
        };
        assert_eq!(
            subject_of(&email),
            Some(SetSubject::Email("bob@contoso.test".into()))
        );
        let home = SubjectId::home_user("https://home.test", "u-1");
        assert_eq!(
            subject_of(&home),
            Some(SetSubject::IssSub {
                iss: "https://home.test".into(),
                sub: "u-1".into()
            })
        );
        assert_eq!(subject_of(&SubjectId::Opaque { id: "x".into() }), None);
    }

    #[test]
    fn the_kid_is_read_from_the_header_only() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256","kid":"k-1"}"#);
        assert_eq!(kid_of(&format!("{header}.e30.sig")).as_deref(), Some("k-1"));
        assert_eq!(kid_of("!!.e30.sig"), None);
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
    /// `max_events`) and whether it holds more. `long`: ask the transmitter to hold the
    /// request until it has a SET (`returnImmediately: false`, RFC 8936 §2.4), waiting up to
    /// [`LONG_POLL_WAIT`] for its answer.
    pub async fn poll(
        &self,
        poll_url: &str,
        token: &str,
        ack: &[String],
        set_errs: &[(String, &'static str, String)],
        max_events: u32,
        long: bool,
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
            "returnImmediately": !long,
            "ack": ack,
        });
        if !errs.is_empty() {
            body["setErrs"] = serde_json::Value::Object(errs);
        }
        let mut request = self.http().post(poll_url).bearer_auth(token).json(&body);
        if long {
            // Replaces the partner's usual time limit for this request only.
            request = request.timeout(LONG_POLL_WAIT);
        }
        let (_, answer): (u16, PollAnswer) = self.ssf_json(request, &[200]).await?;
        Ok(Polled {
            sets: answer
                .sets
                .0
                .into_iter()
                .filter_map(|(jti, set)| Some((jti, set.as_str()?.to_owned())))
                .collect(),
            more_available: answer.more_available,
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
    async fn ssf_json<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        expected: &[u16],
    ) -> Result<(u16, T), crate::FederationError> {
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
        let body: &[u8] = if bytes.is_empty() || status == 404 {
            b"null"
        } else {
            &bytes
        };
        let value = serde_json::from_slice(body).map_err(|e| {
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

/// How long a receiver waits for a long poll's answer, instead of the partner's usual time
/// limit (a transmitter that holds a poll longer makes the request fail and be tried again).
pub const LONG_POLL_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// An RFC 8936 poll answer, its `sets` in the order the transmitter wrote them: a transmitter
/// that lists a subject's events in the order they happened (tenantd's does) has them applied
/// in that order.
#[derive(Debug, serde::Deserialize)]
struct PollAnswer {
    #[serde(default)]
    sets: InOrder,
    #[serde(rename = "moreAvailable", default)]
    more_available: bool,
}

/// A JSON object's members in document order (`serde_json::Map` sorts them by key).
#[derive(Debug, Default)]
struct InOrder(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for InOrder {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = InOrder;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of jti to SET")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<InOrder, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(InOrder(members))
            }
        }
        d.deserialize_map(Members)
    }
}
