//! The OpenID Connect and OAuth endpoints: authorization ([`authorize`], then [`finish`] once
//! the gate has let the user through), token ([`token`]), userinfo, revocation and
//! introspection ([`resource`]), RP-initiated logout ([`logout`]), dynamic client registration
//! ([`registration`]).

pub mod authorize;
pub mod finish;
pub mod logout;
pub mod registration;
pub mod resource;
pub mod token;
