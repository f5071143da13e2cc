//! The Shared Signals (SSF 1.0) transmitter endpoints: `/.well-known/ssf-configuration`, the
//! stream management API (stream, status, subjects, verification), RFC 8936 poll, and the
//! RFC 8935 push worker.
//!
//! Every management call needs a bearer access token issued here by client credentials to a
//! partner app (`partner_tenant = true`) for itself, with `ssf.manage` (changes) or `ssf.read`
//! (reads and polling): [`SsfCaller`]. Handlers are thin: extract, one call of
//! [`signin::ssf::Transmitter`], render.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use protocol::set::{DELIVERY_PUSH, SET_MEDIA_TYPE, SubjectId, retry_delay_secs};
use protocol::{ErrorCode, OAuthError};
use serde::Deserialize;
use serde_json::{Value, json};
use signin::ssf::{
    PollRequest, Receiver, SCOPE_MANAGE, SCOPE_READ, SsfError, StreamRequest, StreamStatus,
    Transmitter, metadata,
};
use signin::tokens::verify_access_token;

use crate::admin::{Admin, reply};
use crate::state::AppState;
use crate::web::{BearerError, bearer_header};

/// The transmitter metadata path (SSF 1.0 §7.2).
pub const WELL_KNOWN: &str = "/.well-known/ssf-configuration";

/// A partner app calling the stream API with its own client-credentials token.
#[derive(Debug, Clone)]
pub struct SsfCaller {
    /// The app, as a receiver.
    pub receiver: Receiver,
    /// Whether the token carries `ssf.manage` (else only `ssf.read`).
    pub manage: bool,
}

impl FromRequestParts<AppState> for SsfCaller {
    type Rejection = BearerError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_header(&parts.headers)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| OAuthError::invalid_token("An access token is required."))?;
        let claims = verify_access_token(state, &token).await?;
        let refused = |why: &str| -> BearerError {
            OAuthError::new(ErrorCode::InsufficientScope, why.to_owned()).into()
        };
        // An app's own token (client credentials) only: its `sub` is its client id.
        if claims.sub != claims.client_id {
            return Err(refused("The stream API needs a partner app's own token."));
        }
        let scopes: Vec<&str> = claims.scope.as_deref().unwrap_or("").split(' ').collect();
        let manage = scopes.contains(&SCOPE_MANAGE);
        if !manage && !scopes.contains(&SCOPE_READ) {
            return Err(refused(
                "The stream API needs the ssf.manage or ssf.read scope.",
            ));
        }
        let app = state.app(&claims.client_id).await?;
        if !app.is_some_and(|a| a.config.partner_tenant) {
            return Err(refused("Only partner apps may have a stream."));
        }
        Ok(SsfCaller {
            receiver: Receiver {
                aud: claims.client_id.clone(),
                client_id: claims.client_id,
            },
            manage,
        })
    }
}

impl SsfCaller {
    fn must_manage(&self) -> Result<(), SsfHttpError> {
        if self.manage {
            Ok(())
        } else {
            Err(SsfHttpError::Bearer(
                OAuthError::new(
                    ErrorCode::InsufficientScope,
                    "Changing a stream needs the ssf.manage scope.",
                )
                .into(),
            ))
        }
    }
}

/// A refused stream call: an RFC 6750 challenge, or an SSF status with an OAuth-shaped body.
#[derive(Debug)]
pub enum SsfHttpError {
    /// Authentication or scope.
    Bearer(BearerError),
    /// The domain refused.
    Ssf(SsfError),
}

impl From<SsfError> for SsfHttpError {
    fn from(e: SsfError) -> Self {
        Self::Ssf(e)
    }
}

impl From<store::StoreError> for SsfHttpError {
    fn from(e: store::StoreError) -> Self {
        Self::Ssf(SsfError::Store(e))
    }
}

impl IntoResponse for SsfHttpError {
    fn into_response(self) -> Response {
        let e = match self {
            SsfHttpError::Bearer(b) => return b.into_response(),
            SsfHttpError::Ssf(e) => e,
        };
        let (status, err) = match e {
            SsfError::BadRequest(d) => (StatusCode::BAD_REQUEST, OAuthError::invalid_request(d)),
            SsfError::NotFound => (
                StatusCode::NOT_FOUND,
                OAuthError::invalid_request("No such stream."),
            ),
            SsfError::Conflict => (
                StatusCode::CONFLICT,
                OAuthError::invalid_request("The app already has a stream."),
            ),
            SsfError::Store(s) if s.is_unavailable() => (
                StatusCode::SERVICE_UNAVAILABLE,
                signin::tokens::store_failure(s),
            ),
            e @ (SsfError::Sign(_) | SsfError::Store(_)) => {
                tracing::error!(error = %e, "stream request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    OAuthError::server_error(e.to_string()),
                )
            }
        };
        reply(status, err.to_json())
    }
}

fn transmitter(state: &AppState) -> Transmitter<'_> {
    Transmitter {
        store: &state.store,
        issuer: &state.config.issuer,
    }
}

fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, SsfHttpError> {
    serde_json::from_slice(body)
        .map_err(|e| SsfHttpError::Ssf(SsfError::BadRequest(format!("malformed JSON: {e}"))))
}

fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// `GET /.well-known/ssf-configuration`.
pub async fn configuration(State(state): State<AppState>) -> Response {
    let issuer = &state.config.issuer;
    let jwks = format!("{}/jwks", issuer.trim_end_matches('/'));
    reply(StatusCode::OK, metadata(issuer, &jwks))
}

/// `?stream_id=`.
#[derive(Debug, Deserialize)]
pub struct StreamIdQuery {
    /// The stream.
    pub stream_id: Option<String>,
}

/// `POST /ssf/stream`: create the app's stream.
pub async fn create(
    State(state): State<AppState>,
    caller: SsfCaller,
    body: axum::body::Bytes,
) -> Result<Response, SsfHttpError> {
    caller.must_manage()?;
    let req: StreamRequest = json_body(&body)?;
    let t = transmitter(&state);
    let record = t
        .create(&caller.receiver, req, &new_id(), state.now())
        .await?;
    Ok(reply(StatusCode::CREATED, json!(t.configuration(&record))))
}

/// `GET /ssf/stream[?stream_id=]`: one configuration, or the list (of at most one).
pub async fn read(
    State(state): State<AppState>,
    caller: SsfCaller,
    Query(q): Query<StreamIdQuery>,
) -> Result<Response, SsfHttpError> {
    let t = transmitter(&state);
    match q.stream_id {
        Some(id) => {
            let record = t.stream_of(&caller.receiver, Some(&id)).await?;
            Ok(reply(StatusCode::OK, json!(t.configuration(&record))))
        }
        None => {
            let list = match t.stream_of(&caller.receiver, None).await {
                Ok(r) => vec![t.configuration(&r)],
                Err(SsfError::NotFound) => Vec::new(),
                Err(e) => return Err(e.into()),
            };
            Ok(reply(StatusCode::OK, json!(list)))
        }
    }
}

/// `PATCH /ssf/stream`: update the members given.
pub async fn update(
    State(state): State<AppState>,
    caller: SsfCaller,
    body: axum::body::Bytes,
) -> Result<Response, SsfHttpError> {
    change(state, caller, body, false).await
}

/// `PUT /ssf/stream`: replace.
pub async fn replace(
    State(state): State<AppState>,
    caller: SsfCaller,
    body: axum::body::Bytes,
) -> Result<Response, SsfHttpError> {
    change(state, caller, body, true).await
}

async fn change(
    state: AppState,
    caller: SsfCaller,
    body: axum::body::Bytes,
    replace: bool,
) -> Result<Response, SsfHttpError> {
    caller.must_manage()?;
    let req: StreamRequest = json_body(&body)?;
    let t = transmitter(&state);
    let record = t
        .update(&caller.receiver, req, replace, state.now())
        .await?;
    Ok(reply(StatusCode::OK, json!(t.configuration(&record))))
}

/// `DELETE /ssf/stream?stream_id=`.
pub async fn delete(
    State(state): State<AppState>,
    caller: SsfCaller,
    Query(q): Query<StreamIdQuery>,
) -> Result<Response, SsfHttpError> {
    caller.must_manage()?;
    let id = q
        .stream_id
        .ok_or_else(|| SsfError::BadRequest("stream_id is required".into()))?;
    transmitter(&state).delete(&caller.receiver, &id).await?;
    Ok(crate::admin::no_content())
}

/// `GET /ssf/status?stream_id=`.
pub async fn status(
    State(state): State<AppState>,
    caller: SsfCaller,
    Query(q): Query<StreamIdQuery>,
) -> Result<Response, SsfHttpError> {
    let r = transmitter(&state)
        .stream_of(&caller.receiver, q.stream_id.as_deref())
        .await?;
    Ok(reply(
        StatusCode::OK,
        json!(StreamStatus {
            stream_id: r.id,
            status: r.status,
            reason: r.reason,
        }),
    ))
}

/// `POST /ssf/status`: enable, pause or disable.
pub async fn set_status(
    State(state): State<AppState>,
    caller: SsfCaller,
    body: axum::body::Bytes,
) -> Result<Response, SsfHttpError> {
    caller.must_manage()?;
    let req: StreamStatus = json_body(&body)?;
    let r = transmitter(&state)
        .set_status(&caller.receiver, req, state.now())
        .await?;
    Ok(reply(
        StatusCode::OK,
        json!(StreamStatus {
            stream_id: r.id,
            status: r.status,
            reason: r.reason,
        }),
    ))
}

/// The body of the add/remove subject calls.
#[derive(Debug, Deserialize)]
pub struct SubjectRequest {
    /// The stream.
    pub stream_id: String,
    /// The subject.
    pub subject: SubjectId,
    /// `verified` (add only; informational).
    #[serde(default)]
    pub verified: Option<bool>,
}

/// `POST /ssf/subjects/add`.
pub async fn add_subject(
    State(state): State<AppState>,
    caller: SsfCaller,
    body: axum::body::Bytes,
) -> Result<Response, SsfHttpError> {
    caller.must_manage()?;
    let req: SubjectRequest = json_body(&body)?;
    transmitter(&state)
        .add_subject(&caller.receiver, &req.stream_id, &req.subject, state.now())
        .await?;
    Ok(reply(StatusCode::OK, json!({})))
}

/// `POST /ssf/subjects/remove`.
pub async fn remove_subject(
    State(state): State<AppState>,
    caller: SsfCaller,
    body: axum::body::Bytes,
) -> Result<Response, SsfHttpError> {
    caller.must_manage()?;
    let req: SubjectRequest = json_body(&body)?;
    transmitter(&state)
        .remove_subject(&caller.receiver, &req.stream_id, &req.subject)
        .await?;
    Ok(crate::admin::no_content())
}

/// The body of a verification request.
#[derive(Debug, Deserialize)]
pub struct VerifyRequest {
    /// The stream.
    pub stream_id: String,
    /// Echoed in the verification event.
    #[serde(default)]
    pub state: Option<String>,
}

/// `POST /ssf/verify`: queue a verification event.
pub async fn verify(
    State(state): State<AppState>,
    caller: SsfCaller,
    body: axum::body::Bytes,
) -> Result<Response, SsfHttpError> {
    let req: VerifyRequest = json_body(&body)?;
    transmitter(&state)
        .verify(
            &caller.receiver,
            &req.stream_id,
            req.state.as_deref(),
            &new_id(),
            state.now(),
        )
        .await?;
    Ok(crate::admin::no_content())
}

/// `POST /ssf/poll/{stream_id}` (RFC 8936).
pub async fn poll(
    State(state): State<AppState>,
    caller: SsfCaller,
    Path(stream_id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, SsfHttpError> {
    let req: PollRequest = if body.is_empty() {
        PollRequest::default()
    } else {
        json_body(&body)?
    };
    let keys = state.keys();
    let resp = transmitter(&state)
        .poll(&caller.receiver, &stream_id, &req, &keys, state.now())
        .await?;
    // Serialized as it is, not through a `Value`, whose map would sort the SETs by `jti`.
    let mut r = (StatusCode::OK, axum::Json(resp)).into_response();
    crate::web::no_store(r.headers_mut());
    Ok(r)
}

/// `GET /v1.0/identityProtection/sharedSignals/streams`: every stream with its status and
/// delivery counts (admin API).
pub async fn admin_streams(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Response, crate::admin::GraphError> {
    let iso = crate::user_risk::iso;
    let value: Vec<Value> = signin::ssf::overview(&state.store)
        .await?
        .into_iter()
        .map(|o| {
            let s = o.stream;
            json!({
                "id": s.id,
                "appId": s.client_id,
                "audience": s.aud,
                "status": s.status,
                "reason": s.reason,
                "deliveryMethod": s.delivery_method,
                "endpointUrl": s.endpoint_url,
                "eventsDelivered": s.events_delivered.split(' ').collect::<Vec<_>>(),
                "pending": o.counts.pending,
                "delivered": o.counts.delivered,
                "failed": o.counts.failed,
                "lastError": o.last_error,
                "createdDateTime": iso(s.created_at),
                "lastModifiedDateTime": iso(s.updated_at),
            })
        })
        .collect();
    Ok(reply(StatusCode::OK, json!({ "value": value })))
}

/// `GET /v1.0/identityProtection/sharedSignals/streams/{id}/events`: the stream's newest 100
/// SETs with their delivery state (admin API). 404 for an unknown stream.
pub async fn admin_stream_events(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, crate::admin::GraphError> {
    if state.store.ssf_stream(&id).await?.is_none() {
        return Err(crate::admin::GraphError::not_found(format!(
            "No stream with id {id}."
        )));
    }
    let value: Vec<Value> = state
        .store
        .ssf_outbox(&id, 100)
        .await?
        .into_iter()
        .map(|e| {
            json!({
                "id": e.jti,
                "sequence": e.seq,
                "eventType": e.event_type,
                "subject": e.subject_key,
                "state": e.state,
                "attempts": e.attempts,
                "nextAttemptDateTime": crate::user_risk::iso(e.next_attempt_at),
                "lastError": e.last_error,
                "createdDateTime": crate::user_risk::iso(e.created_at),
                "settledDateTime": e.delivered_at.map(crate::user_risk::iso),
            })
        })
        .collect();
    Ok(reply(StatusCode::OK, json!({ "value": value })))
}

/// How long a push worker holds a SET it is sending (longer than the push timeout).
pub const PUSH_LEASE_SECS: i64 = 30;

/// How often the push worker looks for due SETs when nothing woke it sooner (signals written
/// by another replica, retries coming due).
pub const PUSH_EVERY: Duration = Duration::from_millis(500);

/// Runs the RFC 8935 push worker until the process ends: when this process has written
/// signals, and at least every [`PUSH_EVERY`], sends the due SETs of enabled push streams
/// (oldest pending per subject first). 202 (or 200) is delivered;
/// 400 with `{"err","description"}` is a permanent refusal, recorded; anything else (or no
/// answer) is retried with exponential back-off. All state is in the outbox, so a restart
/// resumes where it stopped.
pub fn spawn_push_worker(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let clients = match PushClients::new(&state.config.apps) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "the SSF push worker cannot start");
                return;
            }
        };
        loop {
            // A round sends each subject's oldest pending SET: the next ones of a subject
            // (a burst about one user) go in the rounds that follow at once.
            loop {
                match push_due(&state, &clients).await {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "SSF push round failed");
                        break;
                    }
                }
            }
            // A signal written here is pushed at once; one written by another replica (or due
            // again after a failure) at the next round.
            tokio::select! {
                _ = state.store.outbox_written() => {}
                _ = tokio::time::sleep(PUSH_EVERY) => {}
            }
        }
    })
}

/// The HTTP clients SETs are pushed with: receivers are reached like any other server
/// (the system's roots, no redirects), except a partner app whose push endpoint is signed by
/// the CA of its `push_ca_file`.
pub struct PushClients {
    system: reqwest::Client,
    by_app: HashMap<String, reqwest::Client>,
}

impl PushClients {
    /// The clients for `apps` (the CA files were checked with the configuration).
    pub fn new(apps: &[signin::config::AppConfig]) -> anyhow::Result<Self> {
        let timeout = Duration::from_secs(10);
        let mut by_app = HashMap::new();
        for app in apps {
            if let Some(ca) = &app.push_ca_file {
                by_app.insert(
                    app.client_id.clone(),
                    crate::tls::http_client(Some(ca), timeout)?,
                );
            }
        }
        Ok(PushClients {
            system: crate::tls::http_client(None, timeout)?,
            by_app,
        })
    }

    fn for_app(&self, client_id: &str) -> &reqwest::Client {
        self.by_app.get(client_id).unwrap_or(&self.system)
    }
}

/// One round of the push worker; returns how many SETs the receivers took.
pub async fn push_due(state: &AppState, clients: &PushClients) -> Result<usize, SsfError> {
    let now = state.now();
    let due = state.store.ssf_due_pushes(now, 50).await?;
    if due.is_empty() {
        return Ok(0);
    }
    let mut delivered = 0;
    let keys = state.keys();
    let t = transmitter(state);
    // A subject whose SET failed this round is not pushed again this round: its next SET
    // must not overtake it.
    let mut blocked: Vec<(String, String)> = Vec::new();
    for event in due {
        let key = (event.stream_id.clone(), event.subject_key.clone());
        if blocked.contains(&key) {
            continue;
        }
        let Some(stream) = state.store.ssf_stream(&event.stream_id).await? else {
            continue;
        };
        if stream.delivery_method != DELIVERY_PUSH {
            continue;
        }
        let Some(url) = stream.endpoint_url.as_deref() else {
            continue;
        };
        // One replica pushes it: the others see the lease and skip it.
        if !state
            .store
            .ssf_claim_push(
                &stream.id,
                &event.jti,
                event.next_attempt_at,
                now + PUSH_LEASE_SECS,
            )
            .await?
        {
            continue;
        }
        let set = t.sign(&stream, &event, &keys)?;
        let mut req = clients
            .for_app(&stream.client_id)
            .post(url)
            .header(header::CONTENT_TYPE, SET_MEDIA_TYPE)
            .header(header::ACCEPT, "application/json")
            .body(set);
        if let Some(auth) = stream.authorization_header.as_deref()
            && let Ok(v) = HeaderValue::from_str(auth)
        {
            req = req.header(header::AUTHORIZATION, v);
        }
        let outcome = req.send().await;
        let now = state.now();
        match outcome {
            Ok(resp)
                if resp.status() == StatusCode::ACCEPTED || resp.status() == StatusCode::OK =>
            {
                state
                    .store
                    .ssf_mark_delivered(&stream.id, &event.jti, now)
                    .await?;
                delivered += 1;
            }
            Ok(resp) if resp.status() == StatusCode::BAD_REQUEST => {
                let body: Value = resp.json().await.unwrap_or(Value::Null);
                let text = format!(
                    "{}: {}",
                    body.get("err")
                        .and_then(Value::as_str)
                        .unwrap_or("invalid_request"),
                    body.get("description")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                );
                tracing::warn!(stream = %stream.id, jti = %event.jti, error = %text, "SET refused by the receiver");
                state
                    .store
                    .ssf_mark_failed(&stream.id, &event.jti, &text, now)
                    .await?;
            }
            other => {
                let text = match other {
                    Ok(resp) => format!("HTTP {}", resp.status().as_u16()),
                    Err(e) => format!("transport: {e}"),
                };
                let attempts = u32::try_from(event.attempts + 1).unwrap_or(u32::MAX);
                state
                    .store
                    .ssf_mark_retry(
                        &stream.id,
                        &event.jti,
                        &text,
                        now + retry_delay_secs(attempts),
                    )
                    .await?;
                blocked.push(key);
            }
        }
    }
    Ok(delivered)
}
