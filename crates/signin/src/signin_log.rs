//! Sign-in log rows (Graph `signIn`-shaped): every sign-in attempt, interactive or with a
//! refresh token, success or failure, with the reason and the client IP. Rows are written
//! behind the request, in batches (the store's `log_sign_in`): writing the log must never
//! break or slow a sign-in, so a failure to write is logged loudly instead of returned.
//!
//! Both tenants of a federated sign-in log their side under the same correlation id: the
//! resource sends its id to the home as `client-request-id`, and each tenant keeps it with the
//! pending sign-in, so the two logs join on `correlationId`.

use std::sync::{Mutex, PoisonError};

use crate::{Client, Directory};
use store::SignInLog;

/// How the attempt ended: success, or an error code ([`crate::codes`]) and a reason.
#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    /// Signed in.
    Success,
    /// Refused, with the code and reason.
    Failure(u32, &'static str),
}

/// Who tried to sign in to what.
#[derive(Debug, Default)]
pub struct Entry<'a> {
    /// The sign-in's correlation id (shared with the other tenant when federated).
    pub correlation_id: &'a str,
    /// The app signed in to, when known.
    pub app_id: Option<&'a str>,
    /// The sign-in name.
    pub upn: Option<&'a str>,
    /// The user's id here, when known.
    pub user_id: Option<&'a str>,
    /// For a guest: the partner (home tenant) they come from.
    pub guest_of: Option<&'a str>,
    /// Extra facts (the home's user risk, why a federated sign-in failed, ...).
    pub details: serde_json::Value,
    /// The risk and Conditional Access outcome, for sign-ins the gate judged.
    pub risk: Option<RiskLog>,
    /// A refresh-token grant (`nonInteractiveUser`) rather than a person at the pages.
    pub non_interactive: bool,
}

/// What the sign-in gate saw and decided (Graph `signIn` risk and Conditional Access fields).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RiskLog {
    /// `riskLevelAggregated`: the user risk the policies were evaluated with.
    pub risk_level_aggregated: risk::RiskLevel,
    /// `riskLevelDuringSignIn`: this sign-in's real-time risk.
    pub risk_level_during_sign_in: risk::RiskLevel,
    /// `riskState` of the sign-in.
    pub risk_state: risk::RiskState,
    /// `riskDetail` of the sign-in.
    pub risk_detail: risk::RiskDetail,
    /// `riskEventTypes_v2`.
    #[serde(rename = "riskEventTypes_v2")]
    pub risk_event_types: Vec<risk::RiskEventType>,
    /// Each detection with its level and explanation.
    pub risk_detections: Vec<risk::SignInDetection>,
    /// `conditionalAccessStatus`.
    pub conditional_access_status: policy::ConditionalAccessStatus,
    /// `appliedConditionalAccessPolicies` (id, displayName, enforcedGrantControls, result, why).
    pub applied_conditional_access_policies: Vec<policy::AppliedPolicy<'static>>,
    /// Where the IP is (country, city, coordinates, ASN, named locations): kept so later
    /// sign-ins can be compared with this one (travel, unfamiliar features).
    pub location: risk::IpFacts,
}

/// Record one attempt by `client` (the server passes its request context).
pub async fn write<'c>(
    dir: &Directory,
    client: impl Into<Client<'c>>,
    entry: Entry<'_>,
    outcome: Outcome,
) {
    let client = client.into();
    let (error_code, failure_reason) = match outcome {
        Outcome::Success => (0, None),
        Outcome::Failure(c, r) => (i64::from(c), Some(r.to_owned())),
    };
    let here = dir.config.tenant_id.clone();
    // At a home tenant, an app registered as a partner tenant is another tenant signing in
    // one of our members as its guest.
    let app = match entry.app_id {
        Some(id) => dir.app(id).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, app = id, "sign-in log: app lookup failed");
            None
        }),
        None => None,
    };
    let resource_partner = app
        .filter(|a| a.config.partner_tenant)
        .map(|a| a.config.client_id.clone());
    let (user_type, access, home, resource) = match (entry.guest_of, resource_partner) {
        (Some(partner), _) => ("guest", "b2bCollaboration", partner.to_owned(), here),
        (None, Some(resource)) => ("member", "b2bCollaboration", here, resource),
        (None, None) => ("member", "none", here.clone(), here),
    };
    let mut details = match entry.details {
        serde_json::Value::Null => serde_json::json!({}),
        d => d,
    };
    let location = entry.risk.as_ref().map(|r| {
        let f = &r.location;
        store::SignInLocation {
            country: f.country.clone(),
            city: f.city.clone(),
            latitude: f.latitude,
            longitude: f.longitude,
            asn: f.asn,
        }
        .to_json()
    });
    let (risk_state, risk_detail) = entry.risk.as_ref().map_or((None, None), |r| {
        (
            Some(risk::to_wire(&r.risk_state)),
            Some(risk::to_wire(&r.risk_detail)),
        )
    });
    let (aggregated, during, ca_status) = match &entry.risk {
        Some(r) => {
            if let (Ok(serde_json::Value::Object(extra)), Some(map)) =
                (serde_json::to_value(r), details.as_object_mut())
            {
                map.extend(extra);
            }
            (
                Some(risk::to_wire(&r.risk_level_aggregated)),
                Some(risk::to_wire(&r.risk_level_during_sign_in)),
                Some(risk::to_wire(&r.conditional_access_status)),
            )
        }
        None => (None, None, None),
    };
    let row = SignInLog {
        id: uuid::Uuid::now_v7().to_string(),
        created_at: dir.now(),
        correlation_id: entry.correlation_id.to_owned(),
        user_id: entry.user_id.map(str::to_owned),
        user_principal_name: entry.upn.map(str::to_owned),
        app_id: entry.app_id.map(str::to_owned),
        ip_address: Some(client.ip.to_string()),
        user_agent: client.user_agent.map(str::to_owned),
        error_code,
        failure_reason,
        user_type: user_type.into(),
        cross_tenant_access_type: access.into(),
        home_tenant_id: Some(home),
        resource_tenant_id: Some(resource),
        risk_level_aggregated: aggregated,
        risk_level_during_sign_in: during,
        conditional_access_status: ca_status,
        location,
        details,
        sign_in_event_type: if entry.non_interactive {
            store::NON_INTERACTIVE_USER
        } else {
            store::INTERACTIVE_USER
        }
        .to_owned(),
        risk_state,
        risk_detail,
    };
    count(dir, &row, entry.risk.as_ref());
    dir.store.log_sign_in(row);
    tracing::info!(correlation_id = %entry.correlation_id, user = entry.upn.unwrap_or(""), app = entry.app_id.unwrap_or(""), ip = %client.ip, error_code, user_type, "sign-in");
}

/// The sign-in in the process's metrics: its result and error code, the policies that blocked
/// it, and its sign-in risk detections (see the server's `metrics` module).
fn count(dir: &Directory, row: &SignInLog, risk: Option<&RiskLog>) {
    dir.sign_in_counts.increment(
        &dir.config.tenant_id,
        row.error_code,
        &row.sign_in_event_type,
    );
    let Some(risk) = risk else {
        return;
    };
    let tenant = dir.config.tenant_id.clone();
    for p in &risk.applied_conditional_access_policies {
        if p.result == policy::PolicyResult::Failure
            && p.enforced_grant_controls
                .contains(policy::BuiltInControl::Block)
        {
            metrics::counter!(
                "tenantd_conditional_access_blocks_total",
                "tenant" => tenant.clone(),
                "policy" => p.id.to_string()
            )
            .increment(1);
        }
    }
    for d in &risk.risk_detections {
        metrics::counter!(
            "tenantd_risk_detections_total",
            "tenant" => tenant.clone(),
            "type" => d.risk_event_type.as_str(),
            "timing" => risk::to_wire(&d.detection_timing_type)
        )
        .increment(1);
    }
}

/// `tenantd_sign_ins_total`'s series seen so far (an error code and an event type each), kept
/// so that a sign-in increments its series without building and hashing its labels. Few:
/// error codes are a fixed list.
#[derive(Default)]
pub(crate) struct SignInCounts(Mutex<Vec<(i64, String, metrics::Counter)>>);

impl SignInCounts {
    fn increment(&self, tenant: &str, error_code: i64, event_type: &str) {
        let mut seen = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, _, counter)) = seen
            .iter()
            .find(|(code, event, _)| *code == error_code && event == event_type)
        {
            counter.increment(1);
            return;
        }
        let counter = metrics::counter!(
            "tenantd_sign_ins_total",
            "tenant" => tenant.to_owned(),
            "result" => if error_code == 0 { "success" } else { "failure" },
            "error_code" => error_code.to_string(),
            "event_type" => event_type.to_owned()
        );
        counter.increment(1);
        seen.push((error_code, event_type.to_owned(), counter));
    }
}
