//! OpenID Connect and OAuth 2.0 on the wire, without I/O.
//!
//! This crate owns what a request or a token *means*: the one OAuth error type (RFC 6749 / OIDC
//! error codes and their HTTP status), authorization and token request validation as small named
//! checks, PKCE, client authentication parsing, JWT signing and verification with the tenant's
//! keys, the JWKS document and the discovery document. Time is always passed in (`now`, unix
//! seconds) and nothing here reads the clock, the network or a database, so every rule is unit
//! tested on its own. The server crate wires these decisions to HTTP and storage.

pub mod authorize;
pub mod claims;
pub mod client_auth;
pub mod discovery;
pub mod error;
pub mod jwt;
pub mod params;
pub mod pkce;
pub mod scope;
pub mod sealed;
pub mod set;
pub mod token;

pub use error::{ErrorCode, OAuthError};
