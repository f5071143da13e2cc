//! End-to-end tests: real tenants on ephemeral loopback ports, driven over HTTPS by a strict
//! third-party relying party (the `openidconnect` crate) and a browser-like reqwest client.
//! One test binary, so the suite links once.

mod account;
mod admin_pages;
mod applications;
mod browser;
mod compose;
mod durability;
mod email_otp;
mod faults;
mod federation;
mod flows;
mod fuzz;
mod gate;
mod groups;
mod lockout;
mod mfa;
mod observability;
mod operations;
mod partner_check;
mod registration;
mod replicas;
mod risk;
mod roles;
mod security;
mod seed;
mod signals;
mod ssf;
mod support;
mod user_risk;
mod users;
