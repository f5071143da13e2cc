//! PKCE (RFC 7636), S256 only: `plain` gives no protection against a stolen code and is refused.

use crate::OAuthError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

/// Check the syntax of a `code_challenge` and its method at the authorization endpoint.
/// A challenge without a method means `plain` (RFC 7636 §4.3), which is refused.
pub fn check_challenge(challenge: &str, method: Option<&str>) -> Result<(), OAuthError> {
    match method {
        Some("S256") => {}
        Some("plain") | None => {
            return Err(OAuthError::invalid_request(
                "code_challenge_method must be S256; plain is not allowed.",
            ));
        }
        Some(_) => {
            return Err(OAuthError::invalid_request(
                "Unsupported code_challenge_method.",
            ));
        }
    }
    // base64url(SHA-256) without padding is exactly 43 characters.
    if challenge.len() != 43 || !challenge.bytes().all(is_b64url) {
        return Err(OAuthError::invalid_request(
            "code_challenge is not a valid S256 challenge.",
        ));
    }
    Ok(())
}

/// Verify a `code_verifier` against the stored S256 challenge, in constant time.
pub fn verify(verifier: &str, challenge: &str) -> Result<(), OAuthError> {
    if !(43..=128).contains(&verifier.len()) || !verifier.bytes().all(is_unreserved) {
        return Err(OAuthError::invalid_grant("code_verifier is malformed."));
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    let computed = URL_SAFE_NO_PAD.encode(digest.as_ref());
    if computed.as_bytes().ct_eq(challenge.as_bytes()).into() {
        Ok(())
    } else {
        Err(OAuthError::invalid_grant(
            "code_verifier does not match the code_challenge.",
        ))
    }
}

/// The S256 challenge for a verifier (used by clients and tests).
pub fn s256_challenge(verifier: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc_7636_example_verifies() {
        assert_eq!(s256_challenge(VERIFIER), CHALLENGE);
        assert!(verify(VERIFIER, CHALLENGE).is_ok());
        assert!(check_challenge(CHALLENGE, Some("S256")).is_ok());
    }

    #[test]
    fn plain_and_missing_method_are_refused() {
        assert!(check_challenge(CHALLENGE, Some("plain")).is_err());
        assert!(check_challenge(CHALLENGE, None).is_err());
        assert!(check_challenge(CHALLENGE, Some("S512")).is_err());
    }

    #[test]
    fn wrong_or_malformed_verifier_is_refused() {
        let wrong = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXX";
        assert!(verify(wrong, CHALLENGE).is_err());
        assert!(verify("short", CHALLENGE).is_err());
        assert!(verify(&format!("{VERIFIER}!"), CHALLENGE).is_err());
        assert!(check_challenge("abc", Some("S256")).is_err());
    }
}
