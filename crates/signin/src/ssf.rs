//! The home as a Shared Signals (SSF 1.0) transmitter: stream management for partner apps,
//! the signals user changes cause, and SETs signed for delivery.
//!
//! A partner app (`partner_tenant`) owns at most one stream. Events about a user reach a stream
//! when the user is one of the stream's subjects or uses that partner's app (see the store's
//! `ssf` module): the home's users who are guests at the partner. Events are written to the
//! outbox in the transaction of the change that caused them ([`risk_signal`] rides in a
//! `RiskChange`) and signed only when delivered, with the tenant's RS256 key (the CAEP
//! interoperability profile's algorithm), `jti` and `iat` fixed at write time.

use protocol::jwt::KeySet;
use protocol::set::{
    self, CaepRiskLevel, DELIVERY_POLL, DELIVERY_PUSH, Event, SetClaims, SubjectId, event_type,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use store::{
    OutboxEvent, STREAM_DISABLED, STREAM_ENABLED, STREAM_PAUSED, Signal, Store, StoreError,
    StreamRecord, UserRiskRecord,
};

/// Scope that lets a partner app manage its stream.
pub const SCOPE_MANAGE: &str = "ssf.manage";
/// Scope that lets a partner app read its stream and poll its events.
pub const SCOPE_READ: &str = "ssf.read";
/// Most SETs one poll returns.
pub const MAX_POLL: i64 = 100;
/// Longest a long poll (`returnImmediately: false`) is held waiting for a SET.
pub const LONG_POLL_HOLD: std::time::Duration = std::time::Duration::from_secs(5);
/// How often a held poll looks at the outbox.
pub const LONG_POLL_TICK: std::time::Duration = std::time::Duration::from_millis(10);

/// Why a stream request was refused.
#[derive(Debug, thiserror::Error)]
pub enum SsfError {
    /// The request is malformed (the message says what).
    #[error("{0}")]
    BadRequest(String),
    /// No such stream for this app.
    #[error("stream not found")]
    NotFound,
    /// The app already has a stream.
    #[error("the app already has a stream")]
    Conflict,
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `delivery` of a stream configuration (SSF 1.0 §8.1.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Delivery {
    /// `urn:ietf:rfc:8935` (push) or `urn:ietf:rfc:8936` (poll).
    #[serde(default)]
    pub method: String,
    /// Push: the receiver's URL. Poll: ours (set by the transmitter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// Push: the `Authorization` header value to send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_header: Option<String>,
}

/// A stream configuration as a receiver sends it (create, update, replace).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamRequest {
    /// `stream_id` (update and replace).
    #[serde(default)]
    pub stream_id: Option<String>,
    /// `events_requested`.
    #[serde(default)]
    pub events_requested: Option<Vec<String>>,
    /// `delivery`.
    #[serde(default)]
    pub delivery: Option<Delivery>,
    /// `description`.
    #[serde(default)]
    pub description: Option<String>,
}

/// A stream configuration as the transmitter answers it (SSF 1.0 §8.1.1).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamConfiguration {
    /// `stream_id`.
    pub stream_id: String,
    /// `iss`.
    pub iss: String,
    /// `aud`.
    pub aud: String,
    /// `events_supported`.
    pub events_supported: Vec<String>,
    /// `events_requested`.
    pub events_requested: Vec<String>,
    /// `events_delivered`.
    pub events_delivered: Vec<String>,
    /// `delivery`.
    pub delivery: Delivery,
    /// `description`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A stream's status (SSF 1.0 §8.1.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamStatus {
    /// `stream_id`.
    #[serde(default)]
    pub stream_id: String,
    /// `enabled`, `paused` or `disabled`.
    pub status: String,
    /// `reason`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Who asks: the partner app's `client_id` and the audience its SETs carry.
#[derive(Debug, Clone)]
pub struct Receiver {
    /// The partner app.
    pub client_id: String,
    /// The `aud` of its SETs (the partner's issuer when known, else the client id).
    pub aud: String,
}

/// The transmitter of one tenant.
#[derive(Clone, Copy)]
pub struct Transmitter<'a> {
    /// Storage.
    pub store: &'a Store,
    /// The tenant's issuer (`iss` of every SET).
    pub issuer: &'a str,
}

impl std::fmt::Debug for Transmitter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transmitter")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// The poll endpoint of a stream.
pub fn poll_url(issuer: &str, stream_id: &str) -> String {
    format!("{}/ssf/poll/{stream_id}", issuer.trim_end_matches('/'))
}

fn events_of(list: &str) -> Vec<String> {
    list.split(' ')
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `events_delivered`: what is both requested and supported (all supported if none asked).
fn negotiate(requested: Option<&[String]>) -> Vec<String> {
    match requested {
        None => event_type::SUPPORTED
            .iter()
            .map(|e| (*e).to_owned())
            .collect(),
        Some(r) => event_type::SUPPORTED
            .iter()
            .filter(|e| r.iter().any(|x| x == *e))
            .map(|e| (*e).to_owned())
            .collect(),
    }
}

/// Checks a requested delivery: push needs an https (or loopback http) URL.
fn check_delivery(d: Option<Delivery>) -> Result<Delivery, SsfError> {
    let d = d.unwrap_or_else(|| Delivery {
        method: DELIVERY_POLL.to_owned(),
        ..Delivery::default()
    });
    match d.method.as_str() {
        DELIVERY_POLL => Ok(Delivery {
            method: DELIVERY_POLL.to_owned(),
            endpoint_url: None,
            authorization_header: None,
        }),
        DELIVERY_PUSH => {
            let url = d
                .endpoint_url
                .as_deref()
                .ok_or_else(|| SsfError::BadRequest("push delivery needs endpoint_url".into()))?;
            // The rule partner URLs follow: https, or plain http on a loopback host only.
            if !federation::is_https_or_loopback(url) {
                return Err(SsfError::BadRequest(
                    "endpoint_url must be an https URL".into(),
                ));
            }
            Ok(d)
        }
        other => Err(SsfError::BadRequest(format!(
            "unsupported delivery method {other:?}"
        ))),
    }
}

impl Transmitter<'_> {
    /// The stream configuration a receiver sees.
    pub fn configuration(&self, record: &StreamRecord) -> StreamConfiguration {
        let events = events_of(&record.events_delivered);
        let endpoint_url = match record.delivery_method.as_str() {
            DELIVERY_POLL => Some(poll_url(self.issuer, &record.id)),
            _ => record.endpoint_url.clone(),
        };
        StreamConfiguration {
            stream_id: record.id.clone(),
            iss: self.issuer.to_owned(),
            aud: record.aud.clone(),
            events_supported: event_type::SUPPORTED
                .iter()
                .map(|e| (*e).to_owned())
                .collect(),
            events_requested: events_of(&record.events_requested),
            events_delivered: events,
            delivery: Delivery {
                method: record.delivery_method.clone(),
                endpoint_url,
                // Never echoed: it is the receiver's secret.
                authorization_header: None,
            },
            description: record.description.clone(),
        }
    }

    /// The app's stream, refused as not found when `stream_id` names another.
    pub async fn stream_of(
        &self,
        who: &Receiver,
        stream_id: Option<&str>,
    ) -> Result<StreamRecord, SsfError> {
        let streams = self.store.list_ssf_streams().await?;
        streams
            .into_iter()
            .find(|s| s.client_id == who.client_id && stream_id.is_none_or(|id| id == s.id))
            .ok_or(SsfError::NotFound)
    }

    /// Creates the app's stream (enabled), `stream_id` random.
    pub async fn create(
        &self,
        who: &Receiver,
        req: StreamRequest,
        stream_id: &str,
        now: i64,
    ) -> Result<StreamRecord, SsfError> {
        let delivery = check_delivery(req.delivery)?;
        let record = StreamRecord {
            id: stream_id.to_owned(),
            client_id: who.client_id.clone(),
            aud: who.aud.clone(),
            events_requested: req
                .events_requested
                .as_deref()
                .unwrap_or_default()
                .join(" "),
            events_delivered: negotiate(req.events_requested.as_deref()).join(" "),
            description: req.description,
            delivery_method: delivery.method,
            endpoint_url: delivery.endpoint_url,
            authorization_header: delivery.authorization_header,
            status: STREAM_ENABLED.to_owned(),
            reason: None,
            last_seq: 0,
            created_at: now,
            updated_at: now,
        };
        match self.store.create_ssf_stream(&record).await {
            Ok(()) => Ok(record),
            Err(StoreError::Conflict(_)) => Err(SsfError::Conflict),
            Err(e) => Err(e.into()),
        }
    }

    /// Updates (PATCH: only the members given) or replaces (PUT: absent members reset) the
    /// app's stream.
    pub async fn update(
        &self,
        who: &Receiver,
        req: StreamRequest,
        replace: bool,
        now: i64,
    ) -> Result<StreamRecord, SsfError> {
        let id = req
            .stream_id
            .clone()
            .ok_or_else(|| SsfError::BadRequest("stream_id is required".into()))?;
        let mut record = self.stream_of(who, Some(&id)).await?;
        if replace || req.events_requested.is_some() {
            record.events_delivered = negotiate(req.events_requested.as_deref()).join(" ");
            record.events_requested = req
                .events_requested
                .as_deref()
                .unwrap_or_default()
                .join(" ");
        }
        if replace || req.delivery.is_some() {
            let d = check_delivery(req.delivery)?;
            record.delivery_method = d.method;
            record.endpoint_url = d.endpoint_url;
            record.authorization_header = d.authorization_header;
        }
        if replace || req.description.is_some() {
            record.description = req.description;
        }
        record.updated_at = now;
        self.store.update_ssf_stream(&record).await?;
        Ok(record)
    }

    /// Sets the app's stream status.
    pub async fn set_status(
        &self,
        who: &Receiver,
        status: StreamStatus,
        now: i64,
    ) -> Result<StreamRecord, SsfError> {
        if ![STREAM_ENABLED, STREAM_PAUSED, STREAM_DISABLED].contains(&status.status.as_str()) {
            return Err(SsfError::BadRequest(format!(
                "status must be enabled, paused or disabled, got {:?}",
                status.status
            )));
        }
        let mut record = self.stream_of(who, Some(&status.stream_id)).await?;
        record.status = status.status;
        record.reason = status.reason;
        record.updated_at = now;
        self.store.update_ssf_stream(&record).await?;
        Ok(record)
    }

    /// Deletes the app's stream and everything it still owed.
    pub async fn delete(&self, who: &Receiver, stream_id: &str) -> Result<(), SsfError> {
        let record = self.stream_of(who, Some(stream_id)).await?;
        self.store.delete_ssf_stream(&record.id).await?;
        Ok(())
    }

    /// The user a subject names: `iss_sub` (this issuer) by id, or `email`.
    async fn user_of(&self, subject: &SubjectId) -> Result<String, SsfError> {
        if let Some(sub) = subject.user_sub() {
            let iss_ok = match subject {
                SubjectId::IssSub { iss, .. } => iss == self.issuer,
                SubjectId::Complex { user: Some(u), .. } => {
                    matches!(&**u, SubjectId::IssSub { iss, .. } if iss == self.issuer)
                }
                _ => false,
            };
            if iss_ok && self.store.user_by_id(sub).await?.is_some() {
                return Ok(sub.to_owned());
            }
        } else if let Some(email) = subject.email()
            && let Some(u) = self.store.user_by_email(email).await?
        {
            return Ok(u.id);
        }
        // SSF 1.0 §8.1.3.2: a transmitter may not tell which subjects exist; refusing alike
        // any subject it cannot add keeps that.
        Err(SsfError::BadRequest(
            "the subject is not one of ours".into(),
        ))
    }

    /// Adds a subject to the app's stream.
    pub async fn add_subject(
        &self,
        who: &Receiver,
        stream_id: &str,
        subject: &SubjectId,
        now: i64,
    ) -> Result<(), SsfError> {
        let record = self.stream_of(who, Some(stream_id)).await?;
        let user = self.user_of(subject).await?;
        self.store.add_ssf_subject(&record.id, &user, now).await?;
        Ok(())
    }

    /// Removes a subject from the app's stream.
    pub async fn remove_subject(
        &self,
        who: &Receiver,
        stream_id: &str,
        subject: &SubjectId,
    ) -> Result<(), SsfError> {
        let record = self.stream_of(who, Some(stream_id)).await?;
        let user = self.user_of(subject).await?;
        self.store.remove_ssf_subject(&record.id, &user).await?;
        Ok(())
    }

    /// Queues an SSF `verification` event on the app's stream (`state` echoed). The
    /// verification SET's subject is the stream itself (`opaque` stream id, SSF 1.0 §8.1.4.1).
    pub async fn verify(
        &self,
        who: &Receiver,
        stream_id: &str,
        state: Option<&str>,
        jti: &str,
        now: i64,
    ) -> Result<String, SsfError> {
        let record = self.stream_of(who, Some(stream_id)).await?;
        let payload = payload_json(
            &SubjectId::Opaque {
                id: record.id.clone(),
            },
            &Event::verification(state),
            None,
        );
        let signal = Signal {
            user_id: format!("stream:{}", record.id),
            event_type: event_type::VERIFICATION.to_owned(),
            payload_json: payload,
            jti: jti.to_owned(),
            at: now,
            to_client: None,
        };
        Ok(self.store.record_stream_signal(&record.id, &signal).await?)
    }

    /// Signs an outbox row as the SET it stands for.
    pub fn sign(
        &self,
        record: &StreamRecord,
        event: &OutboxEvent,
        keys: &KeySet,
    ) -> Result<String, SsfError> {
        let claims = claims_of(self.issuer, &record.aud, event)?;
        claims.sign(keys).map_err(|e| SsfError::Sign(e.to_string()))
    }

    /// RFC 8936 poll: acknowledges `ack`, records `set_errs` as final failures, then returns
    /// up to `max_events` pending SETs (signed), in stream order, and whether more wait.
    pub async fn poll(
        &self,
        who: &Receiver,
        stream_id: &str,
        req: &PollRequest,
        keys: &KeySet,
        now: i64,
    ) -> Result<PollResponse, SsfError> {
        let record = self.stream_of(who, Some(stream_id)).await?;
        if record.delivery_method != DELIVERY_POLL {
            return Err(SsfError::BadRequest(
                "the stream is not a poll stream".into(),
            ));
        }
        for jti in &req.ack {
            self.store.ssf_mark_delivered(&record.id, jti, now).await?;
        }
        for (jti, err) in &req.set_errs {
            let text = format!(
                "{}: {}",
                err.get("err").and_then(Value::as_str).unwrap_or("error"),
                err.get("description").and_then(Value::as_str).unwrap_or("")
            );
            self.store
                .ssf_mark_failed(&record.id, jti, &text, now)
                .await?;
        }
        let max = req.max_events.unwrap_or(MAX_POLL).clamp(0, MAX_POLL);
        let mut sets = Vec::new();
        let mut more = false;
        if max > 0 && record.status == STREAM_ENABLED {
            // RFC 8936 §2.4.1: without `returnImmediately: true` a poll is a long poll.
            let hold = req.return_immediately != Some(true);
            let held_since = tokio::time::Instant::now();
            let mut pending = self.store.ssf_pending(&record.id, max + 1).await?;
            // A long poll: the answer waits for the stream's next SET, up to LONG_POLL_HOLD.
            // The outbox is looked at again every LONG_POLL_TICK, so a SET written by any
            // replica is seen.
            while hold && pending.is_empty() && held_since.elapsed() < LONG_POLL_HOLD {
                tokio::time::sleep(LONG_POLL_TICK).await;
                pending = self.store.ssf_pending(&record.id, max + 1).await?;
            }
            more = pending.len() as i64 > max;
            for event in pending.iter().take(usize::try_from(max).unwrap_or(0)) {
                sets.push((event.jti.clone(), self.sign(&record, event, keys)?));
            }
        }
        Ok(PollResponse {
            sets,
            more_available: more,
        })
    }
}

/// An RFC 8936 poll request.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PollRequest {
    /// `maxEvents` (0 only acknowledges).
    #[serde(rename = "maxEvents", default)]
    pub max_events: Option<i64>,
    /// `returnImmediately`: unless `true`, the answer waits until a SET is there, up to
    /// [`LONG_POLL_HOLD`] (RFC 8936's default is a long poll).
    #[serde(rename = "returnImmediately", default)]
    pub return_immediately: Option<bool>,
    /// `ack`: the `jti`s received.
    #[serde(default)]
    pub ack: Vec<String>,
    /// `setErrs`: `jti` → `{"err","description"}`.
    #[serde(rename = "setErrs", default)]
    pub set_errs: Map<String, Value>,
}

/// An RFC 8936 poll response.
#[derive(Debug, Clone, Serialize)]
pub struct PollResponse {
    /// `sets`: `jti` → SET, written in stream order (JSON does not order an object's members,
    /// but a receiver that reads them in order gets each subject's events as they happened).
    #[serde(serialize_with = "members_in_order")]
    pub sets: Vec<(String, String)>,
    /// `moreAvailable`.
    #[serde(rename = "moreAvailable")]
    pub more_available: bool,
}

fn members_in_order<S: serde::Serializer>(
    members: &[(String, String)],
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(members.len()))?;
    for (k, v) in members {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

/// The `sub_id`, `events` and `txn` of a SET as the outbox stores them.
pub fn payload_json(sub_id: &SubjectId, event: &Event, txn: Option<&str>) -> String {
    let mut m = Map::new();
    m.insert(
        "sub_id".into(),
        serde_json::to_value(sub_id).unwrap_or(Value::Null),
    );
    m.insert("events".into(), Value::Object(event.to_events_claim()));
    if let Some(t) = txn {
        m.insert("txn".into(), Value::from(t));
    }
    Value::Object(m).to_string()
}

/// The SET claims of an outbox row.
pub fn claims_of(issuer: &str, aud: &str, event: &OutboxEvent) -> Result<SetClaims, SsfError> {
    let payload: Map<String, Value> = serde_json::from_str(&event.payload_json)
        .map_err(|e| SsfError::Sign(format!("outbox row {}: {e}", event.jti)))?;
    let sub_id: SubjectId = payload
        .get("sub_id")
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| SsfError::Sign(format!("outbox row {}: {e}", event.jti)))?
        .ok_or_else(|| SsfError::Sign(format!("outbox row {} has no sub_id", event.jti)))?;
    let events = match payload.get("events") {
        Some(Value::Object(m)) => m.clone(),
        _ => {
            return Err(SsfError::Sign(format!(
                "outbox row {} has no events",
                event.jti
            )));
        }
    };
    Ok(SetClaims {
        iss: issuer.to_owned(),
        aud: aud.to_owned(),
        iat: event.created_at,
        jti: event.jti.clone(),
        txn: payload
            .get("txn")
            .and_then(Value::as_str)
            .map(str::to_owned),
        sub_id,
        events,
    })
}

/// The CAEP `risk-level-change` signal of a user-risk change: `current_level` the new level,
/// `previous_level` the old one, `risk_reason` the new `riskDetail` (or, when that is `none`,
/// the new `riskState`, e.g. `atRisk`), `txn` the change's id.
pub fn risk_signal(
    issuer: &str,
    previous: Option<&UserRiskRecord>,
    current: &UserRiskRecord,
    jti: &str,
) -> Signal {
    let reason = if current.detail == "none" {
        &current.state
    } else {
        &current.detail
    };
    let event = Event::risk_level_change(
        CaepRiskLevel::from_graph(&current.level),
        previous.map(|p| CaepRiskLevel::from_graph(&p.level)),
        reason,
        current.updated_at,
    );
    Signal {
        user_id: current.user_id.clone(),
        event_type: event_type::RISK_LEVEL_CHANGE.to_owned(),
        payload_json: payload_json(
            &SubjectId::home_user(issuer, &current.user_id),
            &event,
            Some(jti),
        ),
        jti: jti.to_owned(),
        at: current.updated_at,
        to_client: None,
    }
}

/// A signal about a user with any event (session revoked, credential change, account
/// disabled/enabled).
pub fn user_signal(issuer: &str, user_id: &str, event: &Event, jti: &str, at: i64) -> Signal {
    Signal {
        user_id: user_id.to_owned(),
        event_type: event.event_type.to_owned(),
        payload_json: payload_json(&SubjectId::home_user(issuer, user_id), event, Some(jti)),
        jti: jti.to_owned(),
        at,
        to_client: None,
    }
}

/// The CAEP `credential-change` of an authenticator app added (`create`) or removed
/// (`delete`).
pub fn authenticator_signal(issuer: &str, user_id: &str, change_type: &str, now: i64) -> Signal {
    user_signal(
        issuer,
        user_id,
        &Event::credential_change("app", change_type, now),
        &uuid::Uuid::new_v4().simple().to_string(),
        now,
    )
}

/// One stream as an administrator sees it: its settings, where its SETs stand, and the
/// receiver's or the transport's last complaint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamOverview {
    /// The stream.
    pub stream: StreamRecord,
    /// Its SETs by delivery state.
    pub counts: store::DeliveryCounts,
    /// The newest error among its last 20 SETs.
    pub last_error: Option<String>,
}

/// Every stream this tenant transmits, for the admin API and pages.
pub async fn overview(store: &Store) -> Result<Vec<StreamOverview>, StoreError> {
    let mut all = Vec::new();
    for stream in store.list_ssf_streams().await? {
        let counts = store.ssf_delivery_counts(&stream.id).await?;
        let last_error = store
            .ssf_outbox(&stream.id, 20)
            .await?
            .into_iter()
            .find_map(|e| e.last_error);
        all.push(StreamOverview {
            stream,
            counts,
            last_error,
        });
    }
    Ok(all)
}

/// What a partner is told when this tenant blocked one of its users signing in here as a
/// guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockReport<'a> {
    /// The guest here (the outbox's subject key).
    pub guest_id: &'a str,
    /// The guest's home: its issuer, and the user's subject there (`None`: named by email).
    pub home_issuer: &'a str,
    /// The user's `sub` at the home.
    pub home_subject: Option<&'a str>,
    /// The user's email, when the home's subject is not known.
    pub email: &'a str,
    /// The app of the home's stream here.
    pub to_client: &'a str,
    /// The block's error code.
    pub code: u32,
    /// The policies' reason.
    pub policy: &'a str,
    /// The sign-in's own risk level (Graph spelling).
    pub sign_in_risk_level: &'a str,
    /// Its detections (`riskEventType` names).
    pub risk_event_types: Vec<String>,
    /// The user's IP, when it was the user's device that asked.
    pub ip: Option<String>,
    /// When.
    pub at: i64,
}

/// The `sign-in-blocked` signal of a [`BlockReport`], addressed to the home's stream only.
pub fn block_signal(r: &BlockReport<'_>) -> Signal {
    let subject = match r.home_subject {
        Some(sub) => SubjectId::home_user(r.home_issuer, sub),
        None => SubjectId::Email {
            email: r.email.to_owned(),
        },
    };
    let event = Event::sign_in_blocked(
        r.policy,
        r.code,
        r.sign_in_risk_level,
        &r.risk_event_types,
        r.ip.as_deref(),
        r.at,
    );
    let jti = uuid::Uuid::new_v4().simple().to_string();
    Signal {
        user_id: r.guest_id.to_owned(),
        event_type: event_type::SIGN_IN_BLOCKED.to_owned(),
        payload_json: payload_json(&subject, &event, None),
        jti,
        at: r.at,
        to_client: Some(r.to_client.to_owned()),
    }
}

/// The transmitter configuration metadata (SSF 1.0 §7.1), served at
/// `/.well-known/ssf-configuration`.
pub fn metadata(issuer: &str, jwks_uri: &str) -> Value {
    let base = issuer.trim_end_matches('/');
    serde_json::json!({
        "spec_version": set::SPEC_VERSION,
        "issuer": issuer,
        "jwks_uri": jwks_uri,
        "delivery_methods_supported": [DELIVERY_PUSH, DELIVERY_POLL],
        "configuration_endpoint": format!("{base}/ssf/stream"),
        "status_endpoint": format!("{base}/ssf/status"),
        "add_subject_endpoint": format!("{base}/ssf/subjects/add"),
        "remove_subject_endpoint": format!("{base}/ssf/subjects/remove"),
        "verification_endpoint": format!("{base}/ssf/verify"),
        "authorization_schemes": [{"spec_urn": "urn:ietf:rfc:6749"}],
        "default_subjects": "NONE",
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn negotiation_keeps_supported_requested_events() {
        let got = negotiate(Some(&[
            event_type::RISK_LEVEL_CHANGE.to_owned(),
            "urn:example:unknown".to_owned(),
        ]));
        assert_eq!(got, vec![event_type::RISK_LEVEL_CHANGE.to_owned()]);
        assert_eq!(negotiate(None).len(), event_type::SUPPORTED.len());
    }

    #[test]
    fn push_needs_https() {
        let push = |url: &str| Delivery {
            method: DELIVERY_PUSH.into(),
            endpoint_url: Some(url.into()),
            authorization_header: None,
        };
        assert!(check_delivery(Some(push("https://r.example/e"))).is_ok());
        assert!(check_delivery(Some(push("http://r.example/e"))).is_err());
        assert!(check_delivery(Some(push("http://127.0.0.1.evil.example/e"))).is_err());
        assert!(check_delivery(Some(push("http://127.0.0.1:9/e"))).is_ok());
        assert_eq!(check_delivery(None).unwrap().method, DELIVERY_POLL);
    }

    #[test]
    fn a_risk_signal_round_trips_to_set_claims() {
        let rec = |level: &str, state: &str, detail: &str| UserRiskRecord {
            user_id: "u1".into(),
            level: level.into(),
            state: state.into(),
            detail: detail.into(),
            updated_at: 500,
        };
        let s = risk_signal(
            "https://home.example",
            Some(&rec("low", "atRisk", "none")),
            &rec(
                "high",
                "confirmedCompromised",
                "adminConfirmedUserCompromised",
            ),
            "j1",
        );
        let row = OutboxEvent {
            stream_id: "s".into(),
            seq: 1,
            jti: "j1.1".into(),
            subject_key: s.user_id.clone(),
            event_type: s.event_type.clone(),
            payload_json: s.payload_json.clone(),
            created_at: 500,
            state: "pending".into(),
            attempts: 0,
            next_attempt_at: 500,
            last_error: None,
            delivered_at: None,
        };
        let c = claims_of("https://home.example", "https://resource.example", &row).unwrap();
        assert_eq!(c.sub_id.user_sub(), Some("u1"));
        assert_eq!(c.jti, "j1.1");
        let ev = &c.events[event_type::RISK_LEVEL_CHANGE];
        assert_eq!(ev["current_level"], "HIGH");
        assert_eq!(ev["previous_level"], "LOW");
        assert_eq!(ev["risk_reason"], "adminConfirmedUserCompromised");
    }
}
