//! The checks on an authorization response that the demo does itself, each a small pure
//! function. openidconnect verifies the ID token; it does not look at the redirect's query.

use url::Url;

/// The response's `state` must be the one this browser's flow sent (CSRF / response injection).
pub(crate) fn check_state(expected: &str, received: Option<&str>) -> Result<(), &'static str> {
    match received {
        None => Err("The response carries no state parameter."),
        Some(state) if state == expected => Ok(()),
        Some(_) => Err("The response's state does not match the sign-in started in this browser."),
    }
}

/// RFC 9207: when the response names its issuer (`iss`), it must be exactly ours (simple string
/// comparison, §2.4); when the provider advertises
/// `authorization_response_iss_parameter_supported`, it must be present. This defends against
/// mix-up attacks; openidconnect does not check it.
pub(crate) fn check_iss(
    issuer: &str,
    received: Option<&str>,
    required: bool,
) -> Result<(), &'static str> {
    match received {
        Some(iss) if iss == issuer => Ok(()),
        Some(_) => Err(
            "The response says it comes from a different issuer (iss parameter) than the one this \
             sign-in was sent to.",
        ),
        None if required => Err("The provider promises an iss parameter in its responses \
             (authorization_response_iss_parameter_supported), but this response has none."),
        None => Ok(()),
    }
}

/// The issuer strings to try at discovery, in order. `url::Url` always serialises an empty path
/// as `/`, so for an issuer that is a bare origin we cannot tell `https://h` from `https://h/`:
/// try the form without the slash (the common one) first, then the other. Issuers with a path
/// are used exactly as given.
pub(crate) fn issuer_candidates(issuer: &Url) -> Vec<String> {
    let exact = issuer.as_str().to_owned();
    if issuer.path() == "/" && issuer.query().is_none() && issuer.fragment().is_none() {
        let bare = exact.trim_end_matches('/').to_owned();
        vec![bare, exact]
    } else {
        vec![exact]
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const ISSUER: &str = "https://home.localhost:9443";

    #[test]
    fn state_must_match_exactly() {
        assert!(check_state("abc", Some("abc")).is_ok());
        assert!(check_state("abc", Some("abd")).is_err());
        assert!(check_state("abc", Some("abc ")).is_err());
        assert!(check_state("abc", None).is_err());
    }

    #[test]
    fn iss_must_equal_issuer_when_present() {
        assert!(check_iss(ISSUER, Some(ISSUER), false).is_ok());
        assert!(check_iss(ISSUER, Some("https://evil.example"), false).is_err());
        // Simple string comparison: no normalisation of a trailing slash or case.
        assert!(check_iss(ISSUER, Some("https://home.localhost:9443/"), true).is_err());
        assert!(check_iss(ISSUER, Some("HTTPS://home.localhost:9443"), true).is_err());
    }

    #[test]
    fn iss_is_required_only_when_advertised() {
        assert!(check_iss(ISSUER, None, false).is_ok());
        assert!(check_iss(ISSUER, None, true).is_err());
    }

    #[test]
    fn bare_origin_issuer_tries_both_forms() {
        let url = Url::parse("https://home.localhost:9443").unwrap();
        assert_eq!(
            issuer_candidates(&url),
            [
                "https://home.localhost:9443",
                "https://home.localhost:9443/"
            ]
        );
        let url = Url::parse("https://h.example/tenants/home").unwrap();
        assert_eq!(issuer_candidates(&url), ["https://h.example/tenants/home"]);
        let url = Url::parse("https://h.example/tenants/home/").unwrap();
        assert_eq!(issuer_candidates(&url), ["https://h.example/tenants/home/"]);
    }
}
