//! The `claims` request parameter (OIDC Core §5.5): claims an app asks for by name, in the ID
//! token and at userinfo, beyond those its scopes release.

use crate::OAuthError;
use crate::scope::{Scope, scope_of_claim};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// A `claims` request, reduced to what tenantd honours: the names of the standard claims
/// (OIDC Core §5.4's profile and email claims) asked for in each place; other names are
/// ignored (§5.5: a claim the provider does not understand is ignored). `essential`, `value`
/// and `values` are checked for shape only: a claim is released if the user has it, and a
/// sign-in is never refused because an essential claim cannot be (§5.5.1 leaves that to the
/// app).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimsRequest {
    /// Claims asked for in the ID token.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub id_token: BTreeSet<String>,
    /// Claims asked for at userinfo.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub userinfo: BTreeSet<String>,
}

impl ClaimsRequest {
    /// Parse the parameter's JSON: an object whose optional `id_token` and `userinfo` members
    /// are objects mapping claim names to `null` or to an object (with `essential` a boolean and
    /// `values` an array, if present). Anything else is `invalid_request`.
    pub fn parse(raw: &str) -> Result<Self, OAuthError> {
        let value: Value =
            serde_json::from_str(raw).map_err(|_| invalid("it is not valid JSON"))?;
        let Value::Object(top) = value else {
            return Err(invalid("it is not a JSON object"));
        };
        Ok(Self {
            id_token: names(&top, "id_token")?,
            userinfo: names(&top, "userinfo")?,
        })
    }

    /// Whether nothing is asked for.
    pub fn is_empty(&self) -> bool {
        self.id_token.is_empty() && self.userinfo.is_empty()
    }

    /// The scopes whose claims are asked for: what the user is asked to consent to besides the
    /// request's scopes.
    pub fn scopes(&self) -> Scope {
        let mut scopes = Scope::default();
        for name in self.id_token.iter().chain(&self.userinfo) {
            if let Some(scope) = scope_of_claim(name) {
                scopes.insert(scope);
            }
        }
        scopes
    }
}

fn invalid(why: &str) -> OAuthError {
    OAuthError::invalid_request(format!("The claims parameter is malformed: {why}."))
}

/// The known claim names of one member (`id_token` or `userinfo`), checking every entry's shape.
fn names(top: &Map<String, Value>, member: &str) -> Result<BTreeSet<String>, OAuthError> {
    let claims = match top.get(member) {
        None | Some(Value::Null) => return Ok(BTreeSet::new()),
        Some(Value::Object(claims)) => claims,
        Some(_) => return Err(invalid(&format!("'{member}' is not an object"))),
    };
    let mut names = BTreeSet::new();
    for (name, request) in claims {
        match request {
            Value::Null => {}
            Value::Object(r) => {
                if r.get("essential").is_some_and(|e| !e.is_boolean()) {
                    return Err(invalid("'essential' is not a boolean"));
                }
                if r.get("values").is_some_and(|v| !v.is_array()) {
                    return Err(invalid("'values' is not an array"));
                }
            }
            _ => return Err(invalid("a claim's request is neither null nor an object")),
        }
        if scope_of_claim(name).is_some() {
            names.insert(name.clone());
        }
    }
    Ok(names)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    #[test]
    fn standard_claims_are_kept_by_place_and_others_ignored() {
        let c = ClaimsRequest::parse(
            r#"{"id_token":{"email":null,"name":{"essential":true},"acr":{"values":["x"]}},
                "userinfo":{"email":null,"https://example.com/custom":null},
                "other":{"x":1}}"#,
        )
        .unwrap();
        assert_eq!(
            c.id_token.iter().map(String::as_str).collect::<Vec<_>>(),
            ["email", "name"]
        );
        assert_eq!(
            c.userinfo.iter().map(String::as_str).collect::<Vec<_>>(),
            ["email"]
        );
        assert_eq!(c.scopes().to_string(), "email profile");
        assert!(
            ClaimsRequest::parse(r#"{"userinfo":null}"#)
                .unwrap()
                .is_empty()
        );
        assert!(ClaimsRequest::parse("{}").unwrap().is_empty());
    }

    #[test]
    fn malformed_claims_are_invalid_request() {
        for bad in [
            "",
            "{",
            "[]",
            "\"email\"",
            r#"{"id_token":["email"]}"#,
            r#"{"userinfo":{"email":true}}"#,
            r#"{"userinfo":{"email":{"essential":"yes"}}}"#,
            r#"{"id_token":{"name":{"values":"a"}}}"#,
        ] {
            let e = ClaimsRequest::parse(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidRequest, "{bad}");
        }
    }

    #[test]
    fn kept_as_json_and_read_back() {
        let c = ClaimsRequest::parse(r#"{"userinfo":{"given_name":null}}"#).unwrap();
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, r#"{"userinfo":["given_name"]}"#);
        assert_eq!(serde_json::from_str::<ClaimsRequest>(&json).unwrap(), c);
        assert_eq!(
            serde_json::to_string(&ClaimsRequest::default()).unwrap(),
            "{}"
        );
    }
}
