//! Request parameters as the client sent them: pairs, with the RFC 6749 §3.1 rule that a
//! parameter must not appear more than once, and size limits so oversized input is refused
//! before anything is stored.

use crate::OAuthError;
use std::collections::HashMap;
use std::collections::hash_map::Entry;

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
            match map.entry(k) {
                Entry::Vacant(e) => {
                    e.insert(v);
                }
                Entry::Occupied(e) => {
                    return Err(OAuthError::invalid_request(format!(
                        "Parameter '{}' was included more than once.",
                        truncate(e.key(), 64)
                    )));
                }
            }
        }
        Ok(Self(map))
    }

    /// Parse an `application/x-www-form-urlencoded` query or body: `+` is a space and `%XX` a
    /// byte, and every name and value must then be UTF-8. Bytes that are not are refused with
    /// `invalid_request`, never replaced: a `state` comes back exactly as sent or not at all
    /// (RFC 6749 §4.1.2), and no other value is silently altered.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(encoded: &T) -> Result<Self, OAuthError> {
        let mut pairs = Vec::new();
        for (name, value) in split_pairs(encoded.as_ref()) {
            match (form_decode(name), form_decode(value)) {
                (Ok(n), Ok(v)) => pairs.push((n, v)),
                (Ok(n), Err(_)) => {
                    return Err(OAuthError::invalid_request(format!(
                        "Parameter '{}' is not valid UTF-8.",
                        truncate(&n, 64)
                    )));
                }
                (Err(_), _) => {
                    return Err(OAuthError::invalid_request(
                        "A parameter name is not valid UTF-8.",
                    ));
                }
            }
            if pairs.len() > MAX_PARAMS {
                return Err(OAuthError::invalid_request("Too many parameters."));
            }
        }
        Self::from_pairs(pairs)
    }

    /// What can still be read of a request [`Params::parse`] refused for bytes that are not
    /// UTF-8: the same rules (at most once, sizes), but a parameter whose name or value does not
    /// decode is left out entirely. Only for finding where to send the refusal (client and
    /// redirect URI); never to act on the request.
    pub fn parse_decodable<T: AsRef<[u8]> + ?Sized>(encoded: &T) -> Result<Self, OAuthError> {
        let mut undecodable = Vec::new();
        let mut pairs = Vec::new();
        for (name, value) in split_pairs(encoded.as_ref()) {
            let (n, v) = (form_decode(name), form_decode(value));
            let readable = n.is_ok() && v.is_ok();
            let n = n.unwrap_or_else(|b| String::from_utf8_lossy(&b).into_owned());
            let v = v.unwrap_or_else(|b| String::from_utf8_lossy(&b).into_owned());
            if !readable {
                undecodable.push(n.clone());
            }
            pairs.push((n, v));
        }
        let mut params = Self::from_pairs(pairs)?;
        for name in undecodable {
            params.0.remove(&name);
        }
        Ok(params)
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

/// Whether every name and value of a form-encoded string decodes to UTF-8. Decoders that
/// replace bad bytes (serde's form decoder, `url::form_urlencoded`) are lossless exactly when
/// this holds, so a caller checks it first and refuses the request otherwise.
pub fn is_utf8_form(encoded: &[u8]) -> bool {
    split_pairs(encoded).all(|(n, v)| decodes_to_utf8(n) && decodes_to_utf8(v))
}

/// Whether [`form_decode`] would succeed. Without a `%` only `+` changes (to a space, as
/// ASCII as itself), so the encoded bytes are checked as they are, with nothing copied.
fn decodes_to_utf8(encoded: &[u8]) -> bool {
    if encoded.contains(&b'%') {
        form_decode(encoded).is_ok()
    } else {
        std::str::from_utf8(encoded).is_ok()
    }
}

/// The `name=value` pairs of a form-encoded string, as bytes still encoded (empty pieces, as in
/// `a=1&&b=2`, are skipped; a piece without `=` is a name with an empty value).
fn split_pairs(encoded: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    encoded
        .split(|&b| b == b'&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| match piece.iter().position(|&b| b == b'=') {
            Some(i) => (&piece[..i], &piece[i + 1..]),
            None => (piece, &[][..]),
        })
}

/// Decode one form-encoded name or value (`+` is a space, `%XX` a byte, a `%` not followed by
/// two hex digits stays as it is, as in the WHATWG URL standard) and require UTF-8; `Err` holds
/// the decoded bytes that are not.
pub fn form_decode(encoded: &[u8]) -> Result<String, Vec<u8>> {
    // Most names and values (ids, tokens, codes: base64url) have nothing to decode.
    if !encoded.iter().any(|&b| b == b'%' || b == b'+') {
        return String::from_utf8(encoded.to_vec()).map_err(std::string::FromUtf8Error::into_bytes);
    }
    let mut out = Vec::with_capacity(encoded.len());
    let mut i = 0;
    while let Some(&b) = encoded.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => match (
                encoded.get(i + 1).and_then(|&h| hex(h)),
                encoded.get(i + 2).and_then(|&l| hex(l)),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(std::string::FromUtf8Error::into_bytes)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
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
    fn decoding_follows_the_form_encoding() {
        let p = Params::parse("a=x+y%2B%26%3D&b=%E2%9C%93%20%25&c=100%&d=%zz&e&&f==").unwrap();
        assert_eq!(p.get("a"), Some("x y+&="));
        assert_eq!(p.get("b"), Some("\u{2713} %"));
        assert_eq!(p.get("c"), Some("100%"));
        assert_eq!(p.get("d"), Some("%zz"));
        assert_eq!(p.get("e"), None);
        assert_eq!(p.get("f"), Some("="));
        // Agrees with the url crate wherever the bytes are UTF-8.
        let q = "state=a%20b+c%2Bd&x=%C3%A9t%C3%A9&y=%&z=%4";
        let ours = Params::parse(q).unwrap();
        for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
            assert_eq!(ours.get(&k), Some(v.as_ref()), "{k}");
        }
    }

    #[test]
    fn utf8_forms_are_told_apart_from_forms_a_decoder_would_alter() {
        for good in ["", "a=1&b=%C3%A9", "x=100%&y=%zz", "e&&f=="] {
            assert!(is_utf8_form(good.as_bytes()), "{good}");
        }
        // Percent-encoded bytes that are not UTF-8, and raw bytes that are not (with nothing
        // to decode, with a `+`, and beside a `%`).
        let bad: [&[u8]; 6] = [
            b"state=%FF",
            b"a=1&b=%C3",
            b"%FE=1",
            b"a=\xff",
            b"a=x+\xc3",
            b"a=%41\xe2\x9c",
        ];
        for raw in bad {
            assert!(!is_utf8_form(raw), "{raw:?}");
        }
    }

    #[test]
    fn a_piece_with_nothing_to_decode_comes_back_as_it_is() {
        assert_eq!(form_decode(b"abc-_.~0123"), Ok("abc-_.~0123".to_owned()));
        assert_eq!(
            form_decode("\u{e9}t\u{e9}".as_bytes()),
            Ok("\u{e9}t\u{e9}".to_owned())
        );
        assert_eq!(form_decode(b""), Ok(String::new()));
        assert_eq!(form_decode(b"a\xffb"), Err(b"a\xffb".to_vec()));
    }

    #[test]
    fn bytes_that_are_not_utf8_are_refused_not_replaced() {
        for bad in [
            "state=%FF%FE",
            "client_id=app&state=ok%C3",
            "nonce=%ED%A0%80",
            "%FF=1",
        ] {
            let e = Params::parse(bad).unwrap_err();
            assert_eq!(e.code, crate::ErrorCode::InvalidRequest, "{bad}");
            assert!(e.description.contains("UTF-8"), "{bad}");
        }
        let e = Params::parse(b"state=\xff".as_slice()).unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::InvalidRequest);
        assert!(Params::parse("state=%E2%9C%93").is_ok());
    }

    #[test]
    fn what_is_decodable_of_a_refused_request_leaves_the_rest_out() {
        let p = Params::parse_decodable("client_id=app&state=%FF&nonce=n&%FE=x").unwrap();
        assert_eq!(p.get("client_id"), Some("app"));
        assert_eq!(p.get("nonce"), Some("n"));
        assert_eq!(p.get("state"), None);
        assert_eq!(p.0.len(), 2);
        // Repeats are still repeats, readable or not.
        assert!(Params::parse_decodable("state=%FF&state=ok").is_err());
    }

    #[test]
    fn oversized_value_is_refused() {
        let long = "x".repeat(MAX_PARAM_LEN + 1);
        assert!(Params::parse(&format!("state={long}")).is_err());
        let ok = "x".repeat(MAX_PARAM_LEN);
        assert!(Params::parse(&format!("state={ok}")).is_ok());
    }
}
