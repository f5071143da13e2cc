//! Development pages, served only when the tenant is configured for development: the mail
//! outbox (`GET /dev/outbox`, with `[mail] outbox = true`), which lists the mail the tenant
//! kept instead of sending it.

use crate::pages;
use crate::state::AppState;
use crate::web::{Ctx, PageError, html};
use axum::extract::State;
use axum::response::Response;

/// Messages the outbox page lists at most.
pub const OUTBOX_PAGE_LIMIT: i64 = 100;

/// The path of the development outbox.
pub const OUTBOX_PATH: &str = "/dev/outbox";

/// `GET /dev/outbox`: the mail kept by the development outbox, newest first. Routed only when
/// the outbox is on, so it is not found otherwise.
pub async fn outbox(State(state): State<AppState>, ctx: Ctx) -> Response {
    let mail = match state.store.outbox_mail(OUTBOX_PAGE_LIMIT).await {
        Ok(m) => m,
        Err(e) => return PageError::from(e).render(&state, &ctx),
    };
    let mail = mail
        .into_iter()
        .map(|m| pages::OutboxRow {
            time: rfc3339(m.created_at),
            to: m.recipient,
            subject: m.subject,
            body: m.body,
        })
        .collect();
    html(&pages::DevOutbox {
        tenant_name: &state.config.display_name,
        mail,
        limit: OUTBOX_PAGE_LIMIT,
    })
}

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}
