//! The application layer of a tenant, between HTTP and the pure crates (`protocol`, `risk`,
//! `policy`), over `store` and `federation`. It has no HTTP types in it: no axum, no http, no
//! templates. The server crate parses requests and renders responses; what a sign-in means for
//! the tenant lives here.
//!
//! What it owns, or will own as the server is split up:
//!
//! - [`Directory`]: a tenant's config, store, clock, apps, partners (partner trust and home
//!   realm discovery), ID Protection and signing keys.
//! - [`config`]: the validated TOML config.
//! - [`passwords`]: argon2id on dedicated threads, and the password policy.
//! - [`protection`]: intel and compiled policies, reloadable.
//! - [`partner_check`]: each partner's discovery and JWKS checked at start-up and on reload,
//!   findings logged with what to fix.
//! - [`user_risk`]: the home's user-risk service ([`user_risk::Home`]), imports, detections.
//! - [`guests`]: inviting guests; [`guest_signals`]: what a partner's security events about
//!   its users (shared signals) change for them here as guests.
//! - [`users`]: the users the admin API lists, creates, changes and deletes (Graph `user`).
//! - [`codes`]: the error codes people can look up (Entra's numbers), all in one place.
//! - [`signin_log`]: sign-in log entries (Graph `signIn`-shaped), for the [`Client`] that asked.
//! - [`tokens`]: client authentication from what a client presented, minting access, ID and
//!   refresh tokens, verifying our access tokens, and the claims an app receives about a user.
//! - [`keys`]: signing key creation, loading and rotation.
//! - [`secrets`]: random tokens, their storage hashes, constant-time comparison.
//! - [`mfa`]: TOTP and recovery codes; [`email_otp`]: one-time codes sent by email, through
//!   [`mail`] (SMTP, or the development outbox).
//!
//! The sign-in in progress, the gate and the MFA core are still in the server crate; they move
//! here in later steps.

pub mod apps;
pub mod authorization_codes;
mod client;
pub mod codes;
pub mod config;
mod directory;
pub mod email_otp;
pub mod federation;
pub mod gate;
pub mod guest_signals;
pub mod guests;
pub mod keys;
pub mod lockout;
pub mod mail;
pub mod mfa;
pub mod partner_check;
pub mod passwords;
pub mod protection;
pub mod refusal;
pub mod secrets;
pub mod sign_in;
pub mod signin_log;
pub mod ssf;
#[cfg(test)]
mod testing;
pub mod tokens;
pub mod user_risk;
pub mod users;
pub mod vault;

pub use apps::App;
pub use client::Client;
pub use config::Config;
pub use directory::{Clock, Directory, OffsetClock, Partner, SystemClock, plausible_email};
