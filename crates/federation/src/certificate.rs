//! Telling an untrusted partner certificate from an outage.
//!
//! A TLS handshake that fails because the partner's certificate does not verify is not an
//! outage: trying again will not help, and the fix is on one side's configuration (this
//! tenant's `ca_file`, or the partner's certificate). reqwest reports both as a request error,
//! so the rustls error is looked for in the error's source chain. The handshake's `io::Error`
//! wraps rustls's error but does not expose it as its source (`io::Error::source` is the inner
//! error's source), so each `io::Error` on the way is opened with `get_ref`.

use std::error::Error;

/// Why the partner's TLS certificate was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateProblem {
    /// Issued by a CA this tenant does not trust (or self-signed, or signed by another CA of
    /// the same name as a trusted one).
    UnknownIssuer,
    /// Expired, or not valid yet.
    Expired,
    /// Issued for another host name than the one in the partner's URL.
    WrongName,
    /// Refused for another reason (revoked, wrong purpose, a bad encoding, ...).
    Other,
}

impl CertificateProblem {
    /// A short phrase for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            CertificateProblem::UnknownIssuer => "issued by an unknown certificate authority",
            CertificateProblem::Expired => "expired or not yet valid",
            CertificateProblem::WrongName => "issued for another host name",
            CertificateProblem::Other => "refused",
        }
    }

    /// Its name in JSON (the reload API, sign-in log details).
    pub fn kind(self) -> &'static str {
        match self {
            CertificateProblem::UnknownIssuer => "unknownIssuer",
            CertificateProblem::Expired => "expired",
            CertificateProblem::WrongName => "wrongName",
            CertificateProblem::Other => "other",
        }
    }

    /// What an administrator does about it.
    pub fn fix(self) -> &'static str {
        match self {
            CertificateProblem::UnknownIssuer => {
                "set the partner's ca_file to the CA certificate (PEM) that issued the partner's \
                 TLS certificate, or add that CA to this host's trusted roots"
            }
            CertificateProblem::Expired => {
                "the partner must renew its TLS certificate (or this host's clock is wrong)"
            }
            CertificateProblem::WrongName => {
                "the partner's issuer URL must use a host name its TLS certificate names"
            }
            CertificateProblem::Other => "check the partner's TLS certificate chain",
        }
    }
}

impl std::fmt::Display for CertificateProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The certificate problem somewhere in `error`'s source chain, if the request failed because
/// the partner's certificate was refused.
pub fn certificate_problem(error: &(dyn Error + 'static)) -> Option<CertificateProblem> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(rustls::Error::InvalidCertificate(c)) = e.downcast_ref::<rustls::Error>() {
            return Some(classify(c));
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            && let Some(p) = certificate_problem(inner)
        {
            return Some(p);
        }
        next = e.source();
    }
    None
}

fn classify(c: &rustls::CertificateError) -> CertificateProblem {
    use rustls::CertificateError as C;
    match c {
        // webpki says BadSignature when a trusted CA has the issuer's name but did not sign
        // the certificate (another CA of the same name, e.g. a regenerated dev CA): still a
        // CA this tenant does not trust, with the same fix.
        C::UnknownIssuer | C::BadSignature => CertificateProblem::UnknownIssuer,
        C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. } => {
            CertificateProblem::Expired
        }
        C::NotValidForName | C::NotValidForNameContext { .. } => CertificateProblem::WrongName,
        _ => CertificateProblem::Other,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    /// An error that wraps another as its source, like reqwest's and hyper's.
    #[derive(Debug)]
    struct Wrap(Box<dyn Error + Send + Sync>);
    impl std::fmt::Display for Wrap {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("request failed")
        }
    }
    impl Error for Wrap {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&*self.0)
        }
    }

    fn handshake(c: rustls::CertificateError) -> Wrap {
        // As tokio-rustls reports a refused handshake, under two layers of request errors.
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(c),
        );
        Wrap(Box::new(Wrap(Box::new(io))))
    }

    #[test]
    fn a_refused_certificate_is_found_through_io_errors() {
        use rustls::CertificateError as C;
        for (c, p) in [
            (C::UnknownIssuer, CertificateProblem::UnknownIssuer),
            (C::Expired, CertificateProblem::Expired),
            (C::NotValidYet, CertificateProblem::Expired),
            (C::NotValidForName, CertificateProblem::WrongName),
            (C::BadSignature, CertificateProblem::UnknownIssuer),
            (C::Revoked, CertificateProblem::Other),
        ] {
            assert_eq!(certificate_problem(&handshake(c)), Some(p));
        }
    }

    #[test]
    fn other_failures_are_not_certificate_problems() {
        let refused = Wrap(Box::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        assert_eq!(certificate_problem(&refused), None);
        let alert = Wrap(Box::new(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure),
        )));
        assert_eq!(certificate_problem(&alert), None);
    }
}
