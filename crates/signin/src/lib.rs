//! The application layer of a tenant, between HTTP and the pure crates, with no HTTP types in
//! it: no axum, no http, no templates. The server crate parses requests and renders responses;
//! what a sign-in means for the directory lives here.
//!
//! - [`secrets`]: random tokens, their storage hashes, constant-time comparison.
//! - [`keys`]: signing key creation, loading and rotation.

pub mod keys;
pub mod secrets;
