//! The `tenantd` server: one tenant as an OpenID Connect provider over HTTP.
//!
//! This crate does the HTTP: axum routes and pages, sessions and cookies, TLS. Decisions about
//! requests and tokens live in `tenantd-protocol`; the application layer (the tenant's
//! [`signin::Directory`], config, passwords, user risk, the sign-in log, error codes) lives in
//! `tenantd-signin`, whose modules are re-exported here under their old paths. Handlers parse,
//! call those and the store, and render. The CLI, the lab and dev certificates are in the
//! `tenantd` crate (the binary), which depends on this one.

pub mod account;
pub mod admin;
pub mod app;
pub mod client_ip;
pub mod dev;
pub mod federated;
pub mod login;
pub mod metrics;
pub mod oidc;
pub mod pages;
pub mod portal;
pub mod rate_limits;
pub mod server;
pub mod session;
pub mod ssf;
pub mod ssf_receiver;
pub mod state;
pub mod tls;
pub mod web;

pub use server::Tenant;
pub use signin::config::Config;
pub use signin::{
    apps, config, email_otp, guest_signals, guests, keys, mail, mfa, passwords, protection,
    secrets, signin_log, user_risk, users, vault,
};
pub use state::{AppState, Clock, OffsetClock, SystemClock};
