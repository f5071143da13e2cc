//! Scopes: parsing, the standard OIDC scopes, and which claims each releases.

use std::collections::BTreeSet;

/// Scopes this provider understands. Others requested by a client are ignored
/// (RFC 6749 §3.3 lets the server ignore part of the request) unless the app registers them.
pub const STANDARD_SCOPES: &[&str] = &["openid", "profile", "email", "offline_access"];

/// Scopes that give power over the tenant itself. A client gets them only by asking for them by
/// name: a request without `scope` is served with the client's other registered scopes
/// (RFC 6749 §3.3's "pre-defined default value"), never with these.
pub const PRIVILEGED_SCOPES: &[&str] = &["admin"];

/// Whether `scope` is one of [`PRIVILEGED_SCOPES`].
pub fn is_privileged(scope: &str) -> bool {
    PRIVILEGED_SCOPES.contains(&scope)
}

/// The scope that releases a standard claim (OIDC Core §5.4), among the scopes tenantd serves:
/// `profile` or `email`; `None` for any other claim.
pub fn scope_of_claim(claim: &str) -> Option<&'static str> {
    match claim {
        "name" | "family_name" | "given_name" | "middle_name" | "nickname"
        | "preferred_username" | "profile" | "picture" | "website" | "gender" | "birthdate"
        | "zoneinfo" | "locale" | "updated_at" => Some("profile"),
        "email" | "email_verified" => Some("email"),
        _ => None,
    }
}

/// A set of scopes, kept sorted so equal sets print the same.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope(BTreeSet<String>);

impl Scope {
    /// Parse a space-delimited scope string. Returns `None` if a token has characters outside
    /// RFC 6749 §3.3's `scope-token` grammar.
    pub fn parse(s: &str) -> Option<Self> {
        let mut set = BTreeSet::new();
        for tok in s.split(' ').filter(|t| !t.is_empty()) {
            if !tok
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
            {
                return None;
            }
            set.insert(tok.to_owned());
        }
        Some(Self(set))
    }

    /// Whether a scope is present.
    pub fn contains(&self, s: &str) -> bool {
        self.0.contains(s)
    }

    /// Keep only scopes accepted by `allowed`.
    #[must_use]
    pub fn retain(mut self, allowed: impl Fn(&str) -> bool) -> Self {
        self.0.retain(|s| allowed(s));
        self
    }

    /// Add one scope.
    pub fn insert(&mut self, s: &str) {
        self.0.insert(s.to_owned());
    }

    /// Remove one scope.
    pub fn remove(&mut self, s: &str) {
        self.0.remove(s);
    }

    /// Whether every scope here is also in `other`.
    pub fn is_subset(&self, other: &Scope) -> bool {
        self.0.is_subset(&other.0)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterate the scopes in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for s in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(s)?;
            first = false;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn parse_dedups_and_sorts() {
        let s = Scope::parse("profile openid  profile").unwrap();
        assert_eq!(s.to_string(), "openid profile");
        assert!(s.contains("openid"));
    }

    #[test]
    fn invalid_characters_are_refused() {
        assert!(Scope::parse("open\"id").is_none());
        assert!(Scope::parse("a\\b").is_none());
    }

    #[test]
    fn standard_claims_belong_to_profile_or_email() {
        assert_eq!(scope_of_claim("given_name"), Some("profile"));
        assert_eq!(scope_of_claim("updated_at"), Some("profile"));
        assert_eq!(scope_of_claim("email_verified"), Some("email"));
        assert_eq!(scope_of_claim("sub"), None);
        assert_eq!(scope_of_claim("user_risk"), None);
    }

    #[test]
    fn subset_and_retain() {
        let all = Scope::parse("openid profile email").unwrap();
        let some = Scope::parse("openid email").unwrap();
        assert!(some.is_subset(&all));
        assert!(!all.is_subset(&some));
        let r = all.retain(|s| s != "profile");
        assert_eq!(r.to_string(), "email openid");
    }
}
