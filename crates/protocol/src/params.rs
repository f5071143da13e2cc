//! Request parameters as the client sent them: pairs, with the RFC 6749 §3.1 rule that a
//! parameter must not appear more than once, and size limits so oversized input is refused
//! before anything is stored.

use crate::OAuthError;
use std::collections::HashMap;

/// Longest value accepted for any single parameter. Real values (state, nonce, URIs,
/// assertions) are far shorter; anything longer is an attack or a bug.
pub const MAX_PARAM_LEN: usize = 4096;
/// Most parameters accepted in one request.
pub const MAX_PARAMS: usize = 64;

/// Parameters of one request, each at most once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(HashMap<String, String>);

impl Params {
    /// Build from decoded pairs, refusing repeats, empty names and oversized values.
    /// Empty values are treated as absent (RFC 6749 §3.1).
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Result<Self, OAuthError> {
        if pairs.len() > MAX_PARAMS {
            return Err(OAuthError::invalid_request("Too many parameters."));
        }
        let mut map = HashMap::with_capacity(pairs.len());
        for (k, v) in pairs {
            if v.len() > MAX_PARAM_LEN || k.len() > 128 {
                return Err(OAuthError::invalid_request(format!(
                    "Parameter '{}' is too long.",
                    truncate(&k, 64)
                )));
            }
            if v.is_empty() {
                continue;
            }
            if map.insert(k.clone(), v).is_some() {
                return Err(OAuthError::invalid_request(format!(
                    "Parameter '{}' was included more than once.",
                    truncate(&k, 64)
                )));
            }
        }
        Ok(Self(map))
    }

    /// Parse an `application/x-www-form-urlencoded` string.
    pub fn parse(encoded: &str) -> Result<Self, OAuthError> {
        let pairs = url::form_urlencoded::parse(encoded.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Self::from_pairs(pairs)
    }

    /// The value of a parameter, if present and non-empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The value of a required parameter.
    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name).ok_or_else(|| {
            OAuthError::invalid_request(format!("Missing required parameter '{name}'."))
        })
    }

    /// Whether a parameter is present.
    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameter_is_refused() {
        let e = Params::parse("a=1&a=2").unwrap_err();
        assert!(e.description.contains("more than once"));
    }

    #[test]
    fn empty_values_count_as_absent() {
        let p = Params::parse("a=&b=2").unwrap();
        assert_eq!(p.get("a"), None);
        assert_eq!(p.get("b"), Some("2"));
        assert!(p.require("a").is_err());
    }

    #[test]
    fn oversized_value_is_refused() {
        let long = "x".repeat(MAX_PARAM_LEN + 1);
        assert!(Params::parse(&format!("state={long}")).is_err());
        let ok = "x".repeat(MAX_PARAM_LEN);
        assert!(Params::parse(&format!("state={ok}")).is_ok());
    }
}
