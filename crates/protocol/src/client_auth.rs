//! Client authentication at the token, revocation and introspection endpoints: which method the
//! client used and with what credentials (RFC 6749 §2.3, OIDC Core §9). Exactly one method per
//! request; a client registered for one method cannot use another.

use crate::OAuthError;
use crate::params::Params;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

/// `token_endpoint_auth_method` values this provider supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// HTTP Basic with the client secret.
    ClientSecretBasic,
    /// Secret in the form body.
    ClientSecretPost,
    /// A JWT assertion signed with the client's private key.
    PrivateKeyJwt,
    /// Public client: no authentication.
    None,
}

impl AuthMethod {
    /// The registered string value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::PrivateKeyJwt => "private_key_jwt",
            Self::None => "none",
        }
    }
}

/// The assertion type for `private_key_jwt` (RFC 7523 §2.2).
pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Credentials presented by a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    /// `client_secret_basic` or `client_secret_post`.
    Secret {
        /// Which of the two.
        method: AuthMethod,
        /// Client id.
        client_id: String,
        /// Secret as sent.
        secret: String,
    },
    /// `private_key_jwt`.
    Assertion {
        /// `client_id` form parameter, if sent; must match the assertion's `sub`.
        client_id: Option<String>,
        /// The JWT.
        assertion: String,
    },
    /// A public client naming itself.
    None {
        /// Client id.
        client_id: String,
    },
}

impl Presented {
    /// The method used.
    pub fn method(&self) -> AuthMethod {
        match self {
            Self::Secret { method, .. } => *method,
            Self::Assertion { .. } => AuthMethod::PrivateKeyJwt,
            Self::None { .. } => AuthMethod::None,
        }
    }
}

/// Work out which credentials were presented. More than one method is an error
/// (RFC 6749 §2.3: "MUST NOT use more than one authentication method in each request").
pub fn presented(authorization: Option<&str>, params: &Params) -> Result<Presented, OAuthError> {
    let basic = authorization.map(parse_basic).transpose()?;
    let post_secret = params.get("client_secret");
    let assertion = params.get("client_assertion");
    let methods = usize::from(basic.is_some())
        + usize::from(post_secret.is_some())
        + usize::from(assertion.is_some());
    if methods > 1 {
        return Err(OAuthError::invalid_request(
            "Use exactly one client authentication method.",
        ));
    }
    if let Some((client_id, secret)) = basic {
        if params.get("client_id").is_some_and(|c| c != client_id) {
            return Err(OAuthError::invalid_request(
                "client_id does not match the Authorization header.",
            ));
        }
        return Ok(Presented::Secret {
            method: AuthMethod::ClientSecretBasic,
            client_id,
            secret,
        });
    }
    if let Some(secret) = post_secret {
        let client_id = params.require("client_id")?.to_owned();
        return Ok(Presented::Secret {
            method: AuthMethod::ClientSecretPost,
            client_id,
            secret: secret.to_owned(),
        });
    }
    if let Some(assertion) = assertion {
        if params.get("client_assertion_type") != Some(JWT_BEARER_ASSERTION) {
            return Err(OAuthError::invalid_request(
                "Unsupported client_assertion_type.",
            ));
        }
        return Ok(Presented::Assertion {
            client_id: params.get("client_id").map(str::to_owned),
            assertion: assertion.to_owned(),
        });
    }
    match params.get("client_id") {
        Some(id) => Ok(Presented::None {
            client_id: id.to_owned(),
        }),
        None => Err(OAuthError::invalid_client(
            "Client authentication is required.",
        )),
    }
}

/// Decode `Basic base64(urlencode(id):urlencode(secret))` (RFC 6749 §2.3.1).
fn parse_basic(header: &str) -> Result<(String, String), OAuthError> {
    let bad = || OAuthError::invalid_client("Malformed Basic authorization header.");
    let (scheme, value) = header.trim().split_once(' ').ok_or_else(bad)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_request(
            "Unsupported Authorization scheme at this endpoint.",
        ));
    }
    let decoded = STANDARD.decode(value.trim()).map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded)
        .map_err(|_| OAuthError::invalid_request("The Basic credentials are not valid UTF-8."))?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    // RFC 6749 §2.3.1: both are form-encoded; bytes that are not UTF-8 are refused, not replaced.
    let decode = |s: &str| {
        crate::params::form_decode(s.as_bytes())
            .map_err(|_| OAuthError::invalid_request("The Basic credentials are not valid UTF-8."))
    };
    let id = decode(id)?;
    let secret = decode(secret)?;
    if id.is_empty() {
        return Err(bad());
    }
    Ok((id, secret))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn basic(id: &str, secret: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
    }

    #[test]
    fn basic_is_form_decoded() {
        let p = Params::default();
        let got = presented(Some(&basic("my%20app", "s%3Acret")), &p).unwrap();
        assert_eq!(
            got,
            Presented::Secret {
                method: AuthMethod::ClientSecretBasic,
                client_id: "my app".into(),
                secret: "s:cret".into()
            }
        );
    }

    #[test]
    fn two_methods_are_refused() {
        let p = Params::parse("client_id=a&client_secret=b").unwrap();
        assert!(presented(Some(&basic("a", "b")), &p).is_err());
    }

    #[test]
    fn post_assertion_and_none() {
        let p = Params::parse("client_id=a&client_secret=b").unwrap();
        assert_eq!(
            presented(None, &p).unwrap().method(),
            AuthMethod::ClientSecretPost
        );
        let p = Params::parse(&format!(
            "client_assertion=x.y.z&client_assertion_type={}",
            JWT_BEARER_ASSERTION
        ))
        .unwrap();
        assert_eq!(
            presented(None, &p).unwrap().method(),
            AuthMethod::PrivateKeyJwt
        );
        let p = Params::parse("client_assertion=x.y.z&client_assertion_type=other").unwrap();
        assert!(presented(None, &p).is_err());
        let p = Params::parse("client_id=pub").unwrap();
        assert_eq!(
            presented(None, &p).unwrap(),
            Presented::None {
                client_id: "pub".into()
            }
        );
        assert!(presented(None, &Params::default()).is_err());
    }

    #[test]
    fn malformed_basic_is_invalid_client() {
        let p = Params::default();
        assert!(presented(Some("Basic !!!"), &p).is_err());
        assert!(presented(Some(&format!("Basic {}", STANDARD.encode("nocolon"))), &p).is_err());
    }

    #[test]
    fn basic_credentials_that_are_not_utf8_are_invalid_request() {
        let p = Params::default();
        for header in [
            basic("app", "s%FF"),
            basic("%C3", "secret"),
            format!("Basic {}", STANDARD.encode(b"app:\xff\xfe")),
        ] {
            let e = presented(Some(&header), &p).unwrap_err();
            assert_eq!(e.code, crate::ErrorCode::InvalidRequest, "{header}");
        }
    }
}
