//! Sign-in log rows (Graph `signIn`-shaped): every interactive sign-in attempt, success or
//! failure, with the reason and the client IP. Writing the log must never break a sign-in, so a
//! failure to write is logged loudly instead of returned.

use crate::state::AppState;
use crate::web::Ctx;
use store::SignInLog;

/// How the attempt ended: success, or an Entra-style error code and a reason.
#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    /// Signed in.
    Success,
    /// Refused, with the code and reason.
    Failure(i64, &'static str),
}

/// Record one attempt by a member of this tenant.
pub async fn record(
    state: &AppState,
    ctx: &Ctx,
    app_id: &str,
    upn: &str,
    user_id: Option<&str>,
    outcome: Outcome,
) {
    let (error_code, failure_reason) = match outcome {
        Outcome::Success => (0, None),
        Outcome::Failure(c, r) => (c, Some(r.to_owned())),
    };
    let row = SignInLog {
        id: uuid::Uuid::now_v7().to_string(),
        created_at: state.now(),
        correlation_id: ctx.correlation_id.clone(),
        user_id: user_id.map(str::to_owned),
        user_principal_name: Some(upn.to_owned()),
        app_id: Some(app_id.to_owned()),
        ip_address: Some(ctx.ip.to_string()),
        user_agent: ctx.user_agent.clone(),
        error_code,
        failure_reason,
        user_type: "member".into(),
        cross_tenant_access_type: "none".into(),
        home_tenant_id: Some(state.config.tenant_id.clone()),
        resource_tenant_id: Some(state.config.tenant_id.clone()),
        details: serde_json::json!({}),
    };
    if let Err(e) = state.store.insert_sign_in(&row).await {
        tracing::error!(correlation_id = %ctx.correlation_id, error = %e, "could not write the sign-in log");
    }
    tracing::info!(correlation_id = %ctx.correlation_id, user = upn, app = app_id, ip = %ctx.ip, error_code, "sign-in");
}
