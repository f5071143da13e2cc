//! The token endpoint's grant, parsed from the form body.

use crate::params::Params;
use crate::scope::Scope;
use crate::{ErrorCode, OAuthError};

/// One token request's grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantRequest {
    /// `authorization_code` (RFC 6749 §4.1.3, RFC 7636 §4.5).
    AuthorizationCode {
        /// The code.
        code: String,
        /// Must equal the authorization request's `redirect_uri`.
        redirect_uri: Option<String>,
        /// The PKCE verifier.
        code_verifier: Option<String>,
    },
    /// `refresh_token` (RFC 6749 §6).
    RefreshToken {
        /// The refresh token.
        refresh_token: String,
        /// A narrower scope, if asked.
        scope: Option<Scope>,
    },
    /// `client_credentials` (RFC 6749 §4.4).
    ClientCredentials {
        /// Requested scope.
        scope: Option<Scope>,
    },
}

impl GrantRequest {
    /// The registered `grant_type` value.
    pub fn grant_type(&self) -> &'static str {
        match self {
            Self::AuthorizationCode { .. } => "authorization_code",
            Self::RefreshToken { .. } => "refresh_token",
            Self::ClientCredentials { .. } => "client_credentials",
        }
    }
}

/// Parse the grant from the token request parameters.
pub fn parse_grant(params: &Params) -> Result<GrantRequest, OAuthError> {
    let scope = || -> Result<Option<Scope>, OAuthError> {
        params
            .get("scope")
            .map(|s| {
                Scope::parse(s)
                    .ok_or_else(|| OAuthError::new(ErrorCode::InvalidScope, "scope is malformed."))
            })
            .transpose()
    };
    match params.require("grant_type")? {
        "authorization_code" => Ok(GrantRequest::AuthorizationCode {
            code: params.require("code")?.to_owned(),
            redirect_uri: params.get("redirect_uri").map(str::to_owned),
            code_verifier: params.get("code_verifier").map(str::to_owned),
        }),
        "refresh_token" => Ok(GrantRequest::RefreshToken {
            refresh_token: params.require("refresh_token")?.to_owned(),
            scope: scope()?,
        }),
        "client_credentials" => Ok(GrantRequest::ClientCredentials { scope: scope()? }),
        _ => Err(OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            "Unsupported grant_type.",
        )),
    }
}

/// What the authorization request that produced a code bound it to.
#[derive(Debug, Clone, Copy)]
pub struct CodeBinding<'a> {
    /// The client the code was issued to.
    pub client_id: &'a str,
    /// The request's `redirect_uri`.
    pub redirect_uri: &'a str,
    /// Its PKCE S256 challenge, if it had one.
    pub code_challenge: Option<&'a str>,
}

/// RFC 6749 §4.1.3 and RFC 7636 §4.6: a code is redeemed only by the client it was issued to,
/// with the same `redirect_uri`, and with the verifier of its challenge. A verifier for a code
/// issued without a challenge is a PKCE downgrade attempt and is refused too.
pub fn check_code_redemption(
    code: &CodeBinding<'_>,
    client_id: &str,
    redirect_uri: Option<&str>,
    code_verifier: Option<&str>,
) -> Result<(), OAuthError> {
    if code.client_id != client_id {
        return Err(OAuthError::invalid_grant(
            "The authorization code was issued to another client.",
        ));
    }
    if redirect_uri != Some(code.redirect_uri) {
        return Err(OAuthError::invalid_grant(
            "redirect_uri does not match the authorization request.",
        ));
    }
    match (code.code_challenge, code_verifier) {
        (Some(challenge), Some(v)) => crate::pkce::verify(v, challenge),
        (Some(_), None) => Err(OAuthError::invalid_grant("code_verifier is required.")),
        (None, Some(_)) => Err(OAuthError::invalid_grant(
            "code_verifier was sent but the authorization request had no code_challenge.",
        )),
        (None, None) => Ok(()),
    }
}

/// The scope a `client_credentials` token is granted (RFC 6749 §4.4.2, §3.3): what the client
/// asked for, if every scope is registered for it; without a `scope` parameter, the registered
/// scopes except the privileged ones, which must be asked for by name.
pub fn client_credentials_scope(
    requested: Option<Scope>,
    registered: &[String],
) -> Result<Scope, OAuthError> {
    let registered_scope = |s: &str| registered.iter().any(|r| r == s);
    match requested {
        Some(s) if s.iter().all(registered_scope) => Ok(s),
        Some(_) => Err(OAuthError::new(
            ErrorCode::InvalidScope,
            "The requested scope is not allowed for this client.",
        )),
        None => {
            let defaults: Vec<&str> = registered
                .iter()
                .map(String::as_str)
                .filter(|s| !crate::scope::is_privileged(s))
                .collect();
            Scope::parse(&defaults.join(" ")).ok_or_else(|| {
                OAuthError::server_error("a registered scope is not a valid scope token")
            })
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn registered(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn a_code_is_redeemed_by_its_client_redirect_and_verifier_only() {
        let verifier = "v".repeat(43);
        let challenge = crate::pkce::s256_challenge(&verifier);
        let code = CodeBinding {
            client_id: "app",
            redirect_uri: "https://app.test/cb",
            code_challenge: Some(&challenge),
        };
        let cb = Some("https://app.test/cb");
        assert!(check_code_redemption(&code, "app", cb, Some(&verifier)).is_ok());
        for (client, redirect, v) in [
            ("other", cb, Some(verifier.as_str())),
            (
                "app",
                Some("https://app.test/other"),
                Some(verifier.as_str()),
            ),
            ("app", None, Some(verifier.as_str())),
            ("app", cb, None),
            ("app", cb, Some("w".repeat(43).as_str())),
        ] {
            let e = check_code_redemption(&code, client, redirect, v).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidGrant, "{client} {redirect:?}");
        }
        let plain = CodeBinding {
            code_challenge: None,
            ..code
        };
        assert!(check_code_redemption(&plain, "app", cb, None).is_ok());
        let e = check_code_redemption(&plain, "app", cb, Some(&verifier)).unwrap_err();
        assert!(e.description.contains("no code_challenge"));
    }

    #[test]
    fn client_credentials_without_scope_never_gets_admin() {
        let s = client_credentials_scope(None, &registered(&["admin", "reports.read"])).unwrap();
        assert_eq!(s.to_string(), "reports.read");
        let s = client_credentials_scope(None, &registered(&["admin"])).unwrap();
        assert!(s.is_empty());
    }

    #[test]
    fn client_credentials_gets_what_it_asked_for_if_registered() {
        let reg = registered(&["admin", "reports.read"]);
        let s = client_credentials_scope(Scope::parse("admin"), &reg).unwrap();
        assert_eq!(s.to_string(), "admin");
        let e = client_credentials_scope(Scope::parse("admin other"), &reg).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidScope);
    }

    #[test]
    fn parses_each_grant() {
        let g = parse_grant(
            &Params::parse(
                "grant_type=authorization_code&code=c&redirect_uri=https%3A%2F%2Fa&code_verifier=v",
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(g.grant_type(), "authorization_code");
        let g = parse_grant(
            &Params::parse("grant_type=refresh_token&refresh_token=r&scope=openid").unwrap(),
        )
        .unwrap();
        assert!(matches!(
            g,
            GrantRequest::RefreshToken { scope: Some(_), .. }
        ));
        let g = parse_grant(&Params::parse("grant_type=client_credentials").unwrap()).unwrap();
        assert_eq!(g, GrantRequest::ClientCredentials { scope: None });
    }

    #[test]
    fn unknown_grant_and_missing_code_are_errors() {
        let e = parse_grant(&Params::parse("grant_type=password&username=a").unwrap()).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnsupportedGrantType);
        let e = parse_grant(&Params::parse("grant_type=authorization_code").unwrap()).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
    }
}
