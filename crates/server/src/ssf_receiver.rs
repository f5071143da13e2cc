//! The receiving end of OpenID Shared Signals at a resource: the endpoint a partner pushes its
//! Security Event Tokens to (RFC 8935), one per partner with `shared_signals = true`. Parse,
//! call `signin::guest_signals::receive`, answer as RFC 8935 §2 says: 202 when accepted; 400
//! with `{"err", "description"}` when the SET is refused (the transmitter must not retry it);
//! 401 when the push token is wrong; 503 when the partner's keys or the database cannot be had
//! now (the transmitter retries).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use federation::signals::SetError;
use serde_json::json;
use signin::guest_signals::{self, ReceiveError};

use crate::state::AppState;

pub use guest_signals::PUSH_PATH;

fn refused(status: StatusCode, err: &str, description: impl Into<String>) -> Response {
    (
        status,
        Json(json!({ "err": err, "description": description.into() })),
    )
        .into_response()
}

/// `POST /ssf/receive/{partner}`: one SET, `application/secevent+jwt`.
pub async fn push(
    State(state): State<AppState>,
    Path(partner): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if state
        .partner(&partner)
        .is_none_or(|p| !p.config.shared_signals)
    {
        return refused(
            StatusCode::NOT_FOUND,
            "invalid_request",
            "no stream of shared signals from this partner",
        );
    }
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match guest_signals::push_authorized(&state, &partner, authorization).await {
        Ok(true) => {}
        Ok(false) => {
            return refused(
                StatusCode::UNAUTHORIZED,
                "authentication_failed",
                "the Authorization header is not this stream's",
            );
        }
        Err(e) => return unavailable(&e.to_string()),
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    if !content_type.is_some_and(|t| t.eq_ignore_ascii_case("application/secevent+jwt")) {
        return refused(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be one SET, Content-Type: application/secevent+jwt",
        );
    }
    let Ok(set) = std::str::from_utf8(&body) else {
        return refused(StatusCode::BAD_REQUEST, "invalid_request", "not UTF-8");
    };
    match guest_signals::receive(&state, &partner, set.trim()).await {
        Ok(received) => {
            tracing::info!(partner = %partner, received = ?received, "shared signal received");
            StatusCode::ACCEPTED.into_response()
        }
        Err(ReceiveError::Set(SetError::Unavailable(why))) => unavailable(&why),
        Err(ReceiveError::Set(e)) => {
            tracing::warn!(partner = %partner, error = %e, "shared signal refused");
            refused(StatusCode::BAD_REQUEST, e.code(), e.description())
        }
        Err(ReceiveError::UnknownPartner(p)) => refused(
            StatusCode::NOT_FOUND,
            "invalid_request",
            format!("no stream of shared signals from {p}"),
        ),
        Err(ReceiveError::Store(e)) => unavailable(&e.to_string()),
    }
}

/// The receiver cannot decide now: the transmitter keeps the SET and tries again.
fn unavailable(detail: &str) -> Response {
    tracing::error!(error = %detail, "a shared signal could not be received now");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "5")],
        Json(json!({ "err": "temporarily_unavailable", "description": "try again later" })),
    )
        .into_response()
}

/// `GET /v1.0/identityProtection/sharedSignals/received`: for each partner that sends signals,
/// its stream (id, delivery, when set up) and what came on it (events applied, the last one's
/// time).
pub async fn received(
    State(state): State<AppState>,
    _admin: crate::admin::Admin,
) -> Result<Response, crate::admin::GraphError> {
    use signin::config::SignalsDelivery;
    let value: Vec<serde_json::Value> = guest_signals::receiving_overview(&state)
        .await?
        .into_iter()
        .map(|o| {
            json!({
                "partnerId": o.partner_id,
                "displayName": o.display_name,
                "delivery": match o.delivery {
                    SignalsDelivery::Push => "push",
                    SignalsDelivery::Poll => "poll",
                },
                "streamId": o.stream.as_ref().and_then(|s| s.stream_id.clone()),
                "streamUpdatedDateTime": o.stream.as_ref().map(|s| crate::user_risk::iso(s.updated_at)),
                "eventsReceived": o.events,
                "lastReceivedDateTime": o.last_received_at.map(crate::user_risk::iso),
            })
        })
        .collect();
    Ok(crate::admin::reply(
        StatusCode::OK,
        json!({ "value": value }),
    ))
}
