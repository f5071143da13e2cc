//! Prometheus metrics at `GET /metrics` (text exposition format 0.0.4), through the `metrics`
//! facade and its Prometheus exporter. One recorder per process: the lab's tenants share it,
//! and every series carries a `tenant` label.
//!
//! - `tenantd_http_requests_total`, `tenantd_http_request_duration_seconds` (histogram): per
//!   route (the route's pattern, never the raw path: ids would make unbounded series), method
//!   and status.
//! - `tenantd_sign_ins_total`: by `result` (`success` or `failure`) and `error_code`
//!   (`signin::signin_log`).
//! - `tenantd_conditional_access_blocks_total`: by `policy` (the id of each policy that
//!   blocked).
//! - `tenantd_risk_detections_total`: by `type` and `timing` (`signin::signin_log` for sign-in
//!   risk, `signin::user_risk` for user risk).
//! - `tenantd_rate_limited_total`: by `bucket` (`crate::rate_limits`).
//! - `tenantd_db_connections`: by `state` (`in_use`, `idle`), read when scraped.

use std::collections::HashMap;
use std::sync::{OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::state::AppState;

/// Latency buckets, seconds: from a cached page (~100 µs) to a slow federated sign-in.
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's recorder, installed at first use. `None` if another recorder was installed
/// first (an embedding program's): then `/metrics` says so rather than showing nothing.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let built = PrometheusBuilder::new()
                .set_buckets(&BUCKETS)
                .and_then(PrometheusBuilder::install_recorder);
            match built {
                Ok(handle) => {
                    // Histograms are drained into their buckets by upkeep; without a scrape
                    // for a long time they would otherwise keep every sample.
                    let upkeep = handle.clone();
                    std::thread::Builder::new()
                        .name("tenantd-metrics".into())
                        .spawn(move || {
                            loop {
                                std::thread::sleep(Duration::from_secs(5));
                                upkeep.run_upkeep();
                            }
                        })
                        .ok()?;
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    None
                }
            }
        })
        .as_ref()
}

/// `GET /metrics`.
pub async fn serve(State(state): State<AppState>) -> Response {
    let Some(handle) = handle() else {
        return (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "metrics are not available in this process",
        )
            .into_response();
    };
    let tenant = state.config.tenant_id.clone();
    if let Some((in_use, idle)) = state.store.connections() {
        metrics::gauge!("tenantd_db_connections", "tenant" => tenant.clone(), "state" => "in_use")
            .set(f64::from(in_use));
        metrics::gauge!("tenantd_db_connections", "tenant" => tenant, "state" => "idle")
            .set(f64::from(idle));
    }
    let mut resp = handle.render().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    crate::web::no_store(resp.headers_mut());
    resp
}

/// Middleware (a route layer, so the route's pattern is known): counts and times each request.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = method_label(req.method());
    let started = Instant::now();
    let resp = next.run(req).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    state.http_metrics.record(
        &state.config.tenant_id,
        route,
        method,
        resp.status(),
        started.elapsed(),
    );
    resp
}

/// The method as a label: HTTP's own methods by name, any other as `other`, so that a client
/// inventing methods cannot add series without end.
fn method_label(method: &Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "other",
    }
}

/// The request counter and duration histogram of each route, method and status seen, kept so
/// that a request finds its two series without building and hashing their labels (a handle
/// increments its series directly). The set is bounded: routes are patterns and statuses few.
#[derive(Default)]
pub struct HttpMetrics {
    by_route: RwLock<HashMap<String, Vec<HttpSeries>>>,
}

struct HttpSeries {
    method: &'static str,
    status: StatusCode,
    requests: Counter,
    duration: Histogram,
}

impl HttpMetrics {
    fn record(
        &self,
        tenant: &str,
        route: &str,
        method: &'static str,
        status: StatusCode,
        took: Duration,
    ) {
        let add = |all: &[HttpSeries]| {
            let found = all
                .iter()
                .find(|s| s.method == method && s.status == status);
            if let Some(s) = found {
                s.requests.increment(1);
                s.duration.record(took.as_secs_f64());
            }
            found.is_some()
        };
        let read = self.by_route.read().unwrap_or_else(PoisonError::into_inner);
        if read.get(route).is_some_and(|all| add(all)) {
            return;
        }
        drop(read);
        let mut write = self
            .by_route
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let all = write.entry(route.to_owned()).or_default();
        if add(all) {
            return;
        }
        let labels = [
            ("tenant", tenant.to_owned()),
            ("route", route.to_owned()),
            ("method", method.to_owned()),
            ("status", status.as_u16().to_string()),
        ];
        all.push(HttpSeries {
            method,
            status,
            requests: metrics::counter!("tenantd_http_requests_total", &labels),
            duration: metrics::histogram!("tenantd_http_request_duration_seconds", &labels),
        });
        add(all);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_method_is_labelled_by_name_and_an_invented_one_as_other() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        assert_eq!(
            method_label(&Method::from_bytes(b"PURGE").unwrap()),
            "other"
        );
        assert_eq!(method_label(&Method::from_bytes(b"get").unwrap()), "other");
    }
}
