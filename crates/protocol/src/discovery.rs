//! The discovery document (OpenID Connect Discovery 1.0 §3, RFC 8414) and the endpoint paths
//! it advertises.

use serde::Serialize;

/// Endpoint paths, relative to the issuer.
pub mod paths {
    /// Discovery.
    pub const DISCOVERY: &str = "/.well-known/openid-configuration";
    /// RFC 8414 metadata (same document).
    pub const OAUTH_METADATA: &str = "/.well-known/oauth-authorization-server";
    /// Authorization endpoint.
    pub const AUTHORIZE: &str = "/authorize";
    /// Token endpoint.
    pub const TOKEN: &str = "/token";
    /// UserInfo endpoint.
    pub const USERINFO: &str = "/userinfo";
    /// JWKS.
    pub const JWKS: &str = "/jwks";
    /// Revocation (RFC 7009).
    pub const REVOKE: &str = "/revoke";
    /// Introspection (RFC 7662).
    pub const INTROSPECT: &str = "/introspect";
    /// RP-initiated logout.
    pub const LOGOUT: &str = "/logout";
    /// Self-service password reset (a page for people, advertised as `password_reset_uri`).
    pub const PASSWORD_RESET: &str = "/password/reset";
    /// Dynamic client registration (RFC 7591); a registration is managed at
    /// `/register/{client_id}` (RFC 7592).
    pub const REGISTER: &str = "/register";
}

/// Provider metadata. Only what is true of this provider is advertised.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderMetadata {
    /// Issuer identifier.
    pub issuer: String,
    /// Authorization endpoint.
    pub authorization_endpoint: String,
    /// Token endpoint.
    pub token_endpoint: String,
    /// UserInfo endpoint.
    pub userinfo_endpoint: String,
    /// JWKS URI.
    pub jwks_uri: String,
    /// Revocation endpoint.
    pub revocation_endpoint: String,
    /// Introspection endpoint.
    pub introspection_endpoint: String,
    /// RP-initiated logout endpoint.
    pub end_session_endpoint: String,
    /// Dynamic client registration (RFC 7591), when the tenant allows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration_endpoint: Option<String>,
    /// Scopes.
    pub scopes_supported: Vec<&'static str>,
    /// Only `code`.
    pub response_types_supported: Vec<&'static str>,
    /// `query`, `form_post`.
    pub response_modes_supported: Vec<&'static str>,
    /// Grants.
    pub grant_types_supported: Vec<&'static str>,
    /// Subject types.
    pub subject_types_supported: Vec<&'static str>,
    /// ID token algorithms.
    pub id_token_signing_alg_values_supported: Vec<&'static str>,
    /// UserInfo responses are plain JSON.
    pub userinfo_signing_alg_values_supported: Vec<&'static str>,
    /// Client authentication at the token endpoint.
    pub token_endpoint_auth_methods_supported: Vec<&'static str>,
    /// Algorithms for `private_key_jwt`.
    pub token_endpoint_auth_signing_alg_values_supported: Vec<&'static str>,
    /// Same methods at revocation.
    pub revocation_endpoint_auth_methods_supported: Vec<&'static str>,
    /// Same methods at introspection.
    pub introspection_endpoint_auth_methods_supported: Vec<&'static str>,
    /// Only S256.
    pub code_challenge_methods_supported: Vec<&'static str>,
    /// Claims that may be released.
    pub claims_supported: Vec<&'static str>,
    /// The `claims` request parameter (OIDC Core §5.5), for standard claims.
    pub claims_parameter_supported: bool,
    /// No request objects.
    pub request_parameter_supported: bool,
    /// No request URIs.
    pub request_uri_parameter_supported: bool,
    /// RFC 9207.
    pub authorization_response_iss_parameter_supported: bool,
    /// Prompt values understood.
    pub prompt_values_supported: Vec<&'static str>,
    /// `sid` in ID tokens.
    pub frontchannel_logout_session_supported: bool,
    /// tenantd's extension: the self-service password reset page. A resource tenant that
    /// blocks one of this tenant's users as a guest links to it, so the user can remediate at
    /// home (only the home can clear a user's risk). Absent when the tenant has no self-service
    /// reset ([`ProviderMetadata::without_password_reset`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_reset_uri: Option<String>,
}

impl ProviderMetadata {
    /// Metadata for an issuer (without trailing slash) with `extra_claims` released by this
    /// tenant beyond the standard ones.
    pub fn new(issuer: &str, extra_claims: &[&'static str]) -> Self {
        let at = |p: &str| format!("{issuer}{p}");
        let auth = vec![
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "none",
        ];
        let mut claims = vec![
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "sid",
            "amr",
            "acr",
            "azp",
            "tid",
            "name",
            "given_name",
            "family_name",
            "preferred_username",
            "updated_at",
            "email",
            "email_verified",
        ];
        claims.extend_from_slice(extra_claims);
        Self {
            issuer: issuer.to_owned(),
            authorization_endpoint: at(paths::AUTHORIZE),
            token_endpoint: at(paths::TOKEN),
            userinfo_endpoint: at(paths::USERINFO),
            jwks_uri: at(paths::JWKS),
            revocation_endpoint: at(paths::REVOKE),
            introspection_endpoint: at(paths::INTROSPECT),
            end_session_endpoint: at(paths::LOGOUT),
            registration_endpoint: None,
            scopes_supported: vec!["openid", "profile", "email", "offline_access"],
            response_types_supported: vec!["code"],
            response_modes_supported: vec!["query", "form_post"],
            grant_types_supported: vec![
                "authorization_code",
                "refresh_token",
                "client_credentials",
            ],
            subject_types_supported: vec!["public"],
            id_token_signing_alg_values_supported: vec!["ES256", "RS256"],
            userinfo_signing_alg_values_supported: vec!["none"],
            token_endpoint_auth_methods_supported: auth.clone(),
            token_endpoint_auth_signing_alg_values_supported: vec![
                "ES256", "ES384", "RS256", "PS256", "EdDSA",
            ],
            revocation_endpoint_auth_methods_supported: auth.clone(),
            introspection_endpoint_auth_methods_supported: auth,
            code_challenge_methods_supported: vec!["S256"],
            claims_supported: claims,
            claims_parameter_supported: true,
            request_parameter_supported: false,
            request_uri_parameter_supported: false,
            authorization_response_iss_parameter_supported: true,
            prompt_values_supported: vec!["none", "login", "consent", "select_account"],
            frontchannel_logout_session_supported: false,
            password_reset_uri: Some(at(paths::PASSWORD_RESET)),
        }
    }

    /// The same, not advertising a self-service password reset page (the tenant switched it off).
    #[must_use]
    pub fn without_password_reset(mut self) -> Self {
        self.password_reset_uri = None;
        self
    }

    /// The same, advertising dynamic client registration at `<issuer>/register`.
    #[must_use]
    pub fn with_registration(mut self) -> Self {
        self.registration_endpoint = Some(format!("{}{}", self.issuer, paths::REGISTER));
        self
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_hang_off_the_issuer_and_only_s256_is_advertised() {
        let m = serde_json::to_value(ProviderMetadata::new("https://idp.test", &[])).unwrap();
        assert_eq!(m["issuer"], "https://idp.test");
        assert_eq!(m["token_endpoint"], "https://idp.test/token");
        assert_eq!(
            m["code_challenge_methods_supported"],
            serde_json::json!(["S256"])
        );
        assert_eq!(m["authorization_response_iss_parameter_supported"], true);
        // OIDC Core §6: request objects are refused (request_not_supported and
        // request_uri_not_supported), and discovery says so.
        assert_eq!(m["claims_parameter_supported"], true);
        assert_eq!(m["request_parameter_supported"], false);
        assert_eq!(m["request_uri_parameter_supported"], false);
        // The extension a resource tenant reads to send a blocked guest home to reset.
        assert_eq!(m["password_reset_uri"], "https://idp.test/password/reset");
        let off = serde_json::to_value(
            ProviderMetadata::new("https://idp.test", &[]).without_password_reset(),
        )
        .unwrap();
        assert!(off.get("password_reset_uri").is_none());
        // Registration is advertised only when the tenant allows it.
        assert!(m.get("registration_endpoint").is_none());
        let m = serde_json::to_value(
            ProviderMetadata::new("https://idp.test", &[]).with_registration(),
        )
        .unwrap();
        assert_eq!(m["registration_endpoint"], "https://idp.test/register");
    }
}
