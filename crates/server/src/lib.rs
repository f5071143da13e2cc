//! The `tenantd` server: one tenant as an OpenID Connect provider over HTTP.
//!
//! This crate does the I/O: axum routes and pages, sessions and cookies, TLS, the store.
//! Decisions about requests and tokens live in `tenantd-protocol`; handlers parse, call those
//! checks and the store, and render. The CLI, the lab and dev certificates are in the `tenantd`
//! crate (the binary), which depends on this one.

pub mod access;
pub mod admin_api;
pub mod app;
pub mod audit_api;
pub mod authorize;
pub mod client_ip;
pub mod config;
pub mod federated;
pub mod guests;
pub mod login;
pub mod logout;
pub mod mfa;
pub mod pages;
pub mod passwords;
pub mod policy_api;
pub mod protection;
pub mod refusal;
pub mod resource;
pub mod risk_api;
pub mod server;
pub mod session;
pub mod signin_log;
pub mod sspr;
pub mod state;
pub mod tls;
pub mod token;
pub mod user_risk;
pub mod web;

pub use signin::{keys, secrets};

pub use config::Config;
pub use server::Tenant;
pub use state::{AppState, Clock, OffsetClock, SystemClock};
