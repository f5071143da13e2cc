//! Federation: the resource tenant's side of a guest sign-in.
//!
//! This crate owns the upstream OpenID Connect relying party a resource tenant runs against each
//! partner (the guest's home tenant): partner discovery with a cached JWKS that is refreshed when
//! a token names an unknown key, the authorization request (code flow, PKCE S256, `state`,
//! `nonce`, `login_hint`), the callback checks (RFC 9207 `iss`, code exchange, ID token
//! signature, `iss`, `aud`, `exp`/`iat` with a small skew, `nonce`, `at_hash`), and reading the
//! home's `user_risk` claim through the partner's claim mapping. A partner can
//! be checked before a guest needs it ([`check`]: discovery, JWKS, the mapped risk claim), and
//! a partner whose TLS certificate is refused is told apart from one that is down
//! ([`certificate`]). The Security Event Tokens a partner sends about its users (shared
//! signals) are checked with the same keys ([`signals`]).
//!
//! It does no storage and serves no HTTP: the server keeps the per-sign-in secrets, decides what
//! a partner is trusted for, and renders the outcome.

#![deny(missing_docs)]

pub mod certificate;
pub mod check;
pub mod mapping;
pub mod signals;
pub mod upstream;

pub use certificate::CertificateProblem;
pub use check::{Finding, PartnerReport};
pub use mapping::{ClaimFormat, ClaimMapping, ClaimPresence, RiskClaimReading};
pub use upstream::{
    AuthorizationRedirect, CallbackParams, Credential, FlowSecrets, HomeIdentity, PartnerSettings,
    Reauthentication, Upstream,
};

/// Whether `url` is one a resource may use for a partner — its issuer, the pages it sends guests
/// to: an absolute `https` URL, or plain `http` only on a loopback host (`127.0.0.1`, `::1`,
/// `localhost`), where nothing travels over a network (labs, tests). Anything else (another
/// scheme such as `javascript:`, plain http across a network) could be read or rewritten on the
/// way, or is no web page at all. Queries and fragments are the caller's to judge.
pub fn is_https_or_loopback(url: &str) -> bool {
    let Ok(u) = url::Url::parse(url) else {
        return false;
    };
    let loopback = match u.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip == std::net::Ipv4Addr::LOCALHOST,
        Some(url::Host::Ipv6(ip)) => ip == std::net::Ipv6Addr::LOCALHOST,
        None => return false,
    };
    match u.scheme() {
        "https" => true,
        "http" => loopback,
        _ => false,
    }
}

/// Why an ID token from a partner was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefusal {
    /// Signed with a key the partner does not publish (even after discovering again).
    UnknownKey,
    /// The signature does not verify, or uses an algorithm the partner does not advertise.
    BadSignature,
    /// `aud` does not name the resource's client id (or names others).
    WrongAudience,
    /// `iss` is not the partner's issuer.
    UnknownIssuer,
    /// `exp` has passed, or `iat` is out of line.
    Expired,
    /// `nonce` is not the one this sign-in sent.
    NonceMismatch,
    /// Anything else wrong with the token.
    Invalid,
}

impl TokenRefusal {
    /// A short phrase for logs and the sign-in log's `failureReason`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenRefusal::UnknownKey => "signed with an unknown key",
            TokenRefusal::BadSignature => "bad signature",
            TokenRefusal::WrongAudience => "wrong audience",
            TokenRefusal::UnknownIssuer => "unknown issuer",
            TokenRefusal::Expired => "expired",
            TokenRefusal::NonceMismatch => "nonce mismatch",
            TokenRefusal::Invalid => "invalid",
        }
    }
}

/// Why a federated sign-in could not be completed. Every variant fails the sign-in closed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FederationError {
    /// The partner could not be reached, or answered too slowly or with a server error.
    #[error("the home tenant is unreachable: {0}")]
    Unreachable(String),
    /// The partner's TLS certificate was refused: not an outage, a configuration to fix (this
    /// tenant's `ca_file`, or the partner's certificate). Trying again does not help.
    #[error("the home tenant's TLS certificate is not trusted ({problem}): {detail}", problem = .0, detail = .1)]
    UntrustedCertificate(CertificateProblem, String),
    /// The partner answered, but not in a way that can be used (discovery, token endpoint).
    #[error("the home tenant's answer is not usable: {0}")]
    BadPartner(String),
    /// The partner answered the authorization request with an OAuth error.
    #[error("the home tenant returned {error}")]
    HomeError {
        /// OAuth error code.
        error: String,
        /// Its description, if any.
        description: Option<String>,
    },
    /// The RFC 9207 `iss` parameter is wrong or missing.
    #[error("the response's issuer is wrong: {0}")]
    IssuerMismatch(String),
    /// The ID token was refused.
    #[error("the home tenant's ID token was refused ({reason}): {detail}", reason = .0.as_str(), detail = .1)]
    TokenRefused(TokenRefusal, String),
}

impl FederationError {
    /// Whether trying again later may help (the app then gets `temporarily_unavailable`).
    pub fn is_transient(&self) -> bool {
        matches!(self, FederationError::Unreachable(_))
            || matches!(self, FederationError::HomeError { error, .. } if error == "temporarily_unavailable" || error == "server_error")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_and_plain_http_only_on_loopback() {
        for ok in [
            "https://contoso.example",
            "https://contoso.example/password/reset?tenant=1",
            "https://127.0.0.1:9443/password/reset",
            "http://127.0.0.1:9443/password/reset",
            "http://[::1]:9443/",
            "http://localhost/reset",
            "http://LOCALHOST/reset",
        ] {
            assert!(is_https_or_loopback(ok), "{ok}");
        }
        for bad in [
            "http://contoso.example/reset",
            "http://127.0.0.2/reset",
            "http://localhost.contoso.example/reset",
            "javascript:alert(1)",
            "data:text/html,hi",
            "com.contoso.app://reset",
            "ftp://127.0.0.1/reset",
            "/password/reset",
            "https//contoso.example",
            "",
        ] {
            assert!(!is_https_or_loopback(bad), "{bad}");
        }
    }
}
