//! Error codes people can look up, all in one place: the sign-in log's
//! `status.errorCode` and the code on a refusal page. Entra's (AADSTS) numbers where one fits,
//! so a code means here what it means there.
//!
//! The codes the policy crate itself decides (blocks, MFA, password change, and a few it shares
//! with the gate) are defined in [`policy::codes`] and re-exported here; the rest are the
//! server's and this crate's. Several situations may share one Entra code under different names
//! (e.g. [`INVALID_USERNAME_OR_PASSWORD`] and [`GUEST_HAS_NO_LOCAL_PASSWORD`]): the name says
//! why, the number is what Entra would show.

pub use policy::codes::*;

/// Wrong password for an existing account (Entra 50126, "invalid username or password").
pub const INVALID_USERNAME_OR_PASSWORD: u32 = 50126;
/// No account with this sign-in name (Entra 50034, "the user account does not exist in this
/// directory"). Counted with wrong passwords towards password spray.
pub const USER_NOT_FOUND: u32 = 50034;
/// Too many wrong verification codes: the sign-in is refused (Entra 500121, "authentication
/// failed during strong authentication request").
pub const STRONG_AUTH_FAILED: u32 = 500121;
/// The federated sign-in response belongs to no sign-in in progress here: it came back to
/// another browser, was replayed, or its `state` is unknown or expired (Entra 9002313,
/// "invalid request").
pub const INVALID_FEDERATION_RESPONSE: u32 = 9002313;
/// The home tenant's answer could not be accepted: an error instead of a code, a response or ID
/// token that does not verify, or no readable user risk claim where one is required (Entra
/// 50008, "token is missing or not valid").
pub const INVALID_HOME_TOKEN: u32 = 50008;
/// The home tenant's ID token comes from an issuer other than the partner's (Entra 50107, "the
/// requested federation realm object does not exist").
pub const UNKNOWN_HOME_ISSUER: u32 = 50107;
/// The home tenant could not be reached in time (Entra 90033, "a transient error has
/// occurred"); the app gets `temporarily_unavailable`.
pub const HOME_UNREACHABLE: u32 = 90033;
/// The home tenant's TLS certificate is not trusted (an unknown CA, expired, another host
/// name): not an outage, so it is not [`HOME_UNREACHABLE`] — trying again does not help until
/// an administrator fixes the trust (the partner's `ca_file`) or the partner its certificate.
/// tenantd's own number, not an Entra one (none is known to fit), next to 90033 to be found
/// with it.
pub const HOME_CERTIFICATE_NOT_TRUSTED: u32 = 9003301;
