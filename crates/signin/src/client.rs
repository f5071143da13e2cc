//! Who is asking: the facts about a request that sign-in decisions and logs need, without the
//! request itself.

use std::net::IpAddr;

/// The client behind a request, as the server saw it. Cheap to make and copy: it borrows from
/// the server's request context.
#[derive(Debug, Clone, Copy)]
pub struct Client<'a> {
    /// The request's correlation id (its request id). A sign-in log row carries the sign-in's
    /// own id instead ([`crate::signin_log::Entry::correlation_id`]), which may be an earlier
    /// request's.
    pub correlation_id: &'a str,
    /// The client IP (behind trusted proxies, the forwarded one).
    pub ip: IpAddr,
    /// The user agent, truncated.
    pub user_agent: Option<&'a str>,
}
