//! The authorization endpoint's request, validated as a pipeline of small checks
//! (client and redirect URI first, because until they are known to be right no error may be
//! sent back to the redirect URI), then response type, mode, scope, PKCE, prompt and friends.

use crate::claims::ClaimsRequest;
use crate::params::Params;
use crate::pkce;
use crate::scope::{STANDARD_SCOPES, Scope};
use crate::{ErrorCode, OAuthError};
use serde::{Deserialize, Serialize};

/// What the endpoint needs to know about the client to validate a request.
#[derive(Debug, Clone)]
pub struct ClientRules<'a> {
    /// The client's id.
    pub client_id: &'a str,
    /// Registered redirect URIs; matched byte for byte.
    pub redirect_uris: &'a [String],
    /// A public client (no secret): PKCE is mandatory.
    pub public: bool,
    /// Whether the client may use the authorization code grant at all.
    pub allows_authorization_code: bool,
    /// Scopes beyond the standard ones that this client may ask for.
    pub extra_scopes: &'a [String],
}

/// How the authorization response is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseMode {
    /// Parameters in the redirect URI's query (the default for `code`).
    Query,
    /// An auto-submitting HTML form POSTed to the redirect URI (OAuth 2.0 Form Post Response Mode).
    FormPost,
}

/// The `prompt` values (OIDC Core §3.1.2.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    /// `none`: no page may be shown.
    pub none: bool,
    /// `login`: re-authenticate even with a session.
    pub login: bool,
    /// `consent`: ask for consent even if given before.
    pub consent: bool,
    /// `select_account`: treated like `login`, as there is one account per session.
    pub select_account: bool,
}

/// A validated authorization request, ready to be kept while the user signs in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    /// Client id.
    pub client_id: String,
    /// The exact registered redirect URI.
    pub redirect_uri: String,
    /// Response mode.
    pub response_mode: ResponseMode,
    /// Scopes the client asked for, limited to what it may have.
    pub scope: String,
    /// Opaque `state`, returned unchanged.
    pub state: Option<String>,
    /// `nonce` for the ID token.
    pub nonce: Option<String>,
    /// PKCE S256 challenge.
    pub code_challenge: Option<String>,
    /// `prompt` values.
    pub prompt: Prompt,
    /// `max_age` in seconds.
    pub max_age: Option<u64>,
    /// `login_hint`, used to prefill the email.
    pub login_hint: Option<String>,
    /// `id_token_hint` as sent (checked by the server against its own keys).
    pub id_token_hint: Option<String>,
    /// `acr_values` as sent (space-separated, in order of preference). tenantd has one level
    /// of its own; a resource forwards them to a guest's home.
    #[serde(default)]
    pub acr_values: Option<String>,
    /// The standard claims asked for by name with the `claims` parameter (OIDC Core §5.5).
    #[serde(default, skip_serializing_if = "ClaimsRequest::is_empty")]
    pub claims: ClaimsRequest,
}

impl AuthorizationRequest {
    /// The parsed scope.
    pub fn scopes(&self) -> Scope {
        Scope::parse(&self.scope).unwrap_or_default()
    }

    /// What the user consents to: the scopes, and with `openid` the scopes of the claims asked
    /// for by name (a `claims` request for `email` needs the same consent as the `email` scope).
    pub fn consent_scopes(&self) -> Scope {
        let mut scopes = self.scopes();
        if scopes.contains("openid") {
            for s in self.claims.scopes().iter() {
                scopes.insert(s);
            }
        }
        scopes
    }
}

/// Why a request failed, and so where the error goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeError {
    /// The client or redirect URI cannot be trusted: show an error page, never redirect.
    Page(OAuthError),
    /// Send the error to the client's redirect URI.
    Redirect(ErrorRedirect),
}

/// An error to deliver to the client at its redirect URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorRedirect {
    /// The error.
    pub error: OAuthError,
    /// The verified redirect URI.
    pub redirect_uri: String,
    /// The request's `state`, echoed back.
    pub state: Option<String>,
    /// How to deliver it.
    pub response_mode: ResponseMode,
}

/// Step one: the `client_id`, so the server can look the client up.
pub fn client_id(params: &Params) -> Result<&str, AuthorizeError> {
    params.require("client_id").map_err(AuthorizeError::Page)
}

/// Validate the whole request for a known client.
pub fn validate(
    params: &Params,
    client: &ClientRules<'_>,
) -> Result<AuthorizationRequest, AuthorizeError> {
    let redirect_uri = check_redirect_uri(params, client).map_err(AuthorizeError::Page)?;
    let response_mode = check_response_mode(params);
    let state = params.get("state").map(str::to_owned);
    let to_client = |error: OAuthError| {
        AuthorizeError::Redirect(ErrorRedirect {
            error,
            redirect_uri: redirect_uri.clone(),
            state: state.clone(),
            response_mode: response_mode.unwrap_or(ResponseMode::Query),
        })
    };
    let response_mode = response_mode.ok_or_else(|| {
        to_client(OAuthError::invalid_request(
            "Unsupported response_mode; use query or form_post.",
        ))
    })?;
    check_no_request_objects(params).map_err(to_client)?;
    check_response_type(params, client).map_err(to_client)?;
    let scope = check_scope(params, client).map_err(to_client)?;
    let code_challenge = check_pkce(params, client).map_err(to_client)?;
    let prompt = check_prompt(params).map_err(to_client)?;
    let max_age = check_max_age(params).map_err(to_client)?;
    let claims = check_claims(params).map_err(to_client)?;
    let nonce = params.get("nonce").map(str::to_owned);
    let login_hint = params.get("login_hint").map(str::to_owned);
    let id_token_hint = params.get("id_token_hint").map(str::to_owned);
    let acr_values = params
        .get("acr_values")
        .filter(|v| !v.trim().is_empty())
        .map(str::to_owned);
    Ok(AuthorizationRequest {
        client_id: client.client_id.to_owned(),
        redirect_uri,
        response_mode,
        scope: scope.to_string(),
        state,
        nonce,
        code_challenge,
        prompt,
        max_age,
        login_hint,
        id_token_hint,
        acr_values,
        claims,
    })
}

/// Where to refuse a request whose parameters could not all be read ([`Params::parse`] failed,
/// e.g. on bytes that are not UTF-8), given what could be ([`Params::parse_decodable`]) and the
/// client it names: to the client's redirect URI if that is right (RFC 6749 §4.1.2.1), with
/// `state` only if it was readable itself (an altered `state` is never sent back), else to a page.
pub fn refuse_unreadable(
    readable: &Params,
    client: &ClientRules<'_>,
    error: OAuthError,
) -> AuthorizeError {
    if readable.get("client_id") != Some(client.client_id) {
        return AuthorizeError::Page(error);
    }
    match check_redirect_uri(readable, client) {
        Ok(redirect_uri) => AuthorizeError::Redirect(ErrorRedirect {
            error,
            redirect_uri,
            state: readable.get("state").map(str::to_owned),
            response_mode: check_response_mode(readable).unwrap_or(ResponseMode::Query),
        }),
        Err(_) => AuthorizeError::Page(error),
    }
}

/// `redirect_uri` is required (OIDC Core §3.1.2.1) and must equal a registered URI byte for
/// byte: no prefix, wildcard or normalisation, so an attacker cannot steer codes elsewhere.
pub fn check_redirect_uri(params: &Params, client: &ClientRules<'_>) -> Result<String, OAuthError> {
    let uri = params.require("redirect_uri")?;
    if client.redirect_uris.iter().any(|r| r == uri) {
        Ok(uri.to_owned())
    } else {
        Err(OAuthError::invalid_request(
            "redirect_uri does not match any redirect URI registered for this client.",
        ))
    }
}

/// `None` means an unsupported value; absent means `query`.
fn check_response_mode(params: &Params) -> Option<ResponseMode> {
    match params.get("response_mode") {
        None | Some("query") => Some(ResponseMode::Query),
        Some("form_post") => Some(ResponseMode::FormPost),
        Some(_) => None,
    }
}

fn check_no_request_objects(params: &Params) -> Result<(), OAuthError> {
    if params.contains("request") {
        return Err(OAuthError::new(
            ErrorCode::RequestNotSupported,
            "Request objects are not supported.",
        ));
    }
    if params.contains("request_uri") {
        return Err(OAuthError::new(
            ErrorCode::RequestUriNotSupported,
            "request_uri is not supported.",
        ));
    }
    Ok(())
}

fn check_response_type(params: &Params, client: &ClientRules<'_>) -> Result<(), OAuthError> {
    match params.require("response_type")? {
        "code" if client.allows_authorization_code => Ok(()),
        "code" => Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "This client may not use the authorization code grant.",
        )),
        _ => Err(OAuthError::new(
            ErrorCode::UnsupportedResponseType,
            "Only response_type=code is supported.",
        )),
    }
}

fn check_scope(params: &Params, client: &ClientRules<'_>) -> Result<Scope, OAuthError> {
    let raw = params.get("scope").unwrap_or("");
    let scope = Scope::parse(raw)
        .ok_or_else(|| OAuthError::new(ErrorCode::InvalidScope, "scope is malformed."))?;
    let scope = scope
        .retain(|s| STANDARD_SCOPES.contains(&s) || client.extra_scopes.iter().any(|e| e == s));
    if scope.is_empty() {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            "No supported scope was requested.",
        ));
    }
    Ok(scope)
}

fn check_pkce(params: &Params, client: &ClientRules<'_>) -> Result<Option<String>, OAuthError> {
    match params.get("code_challenge") {
        Some(challenge) => {
            pkce::check_challenge(challenge, params.get("code_challenge_method"))?;
            Ok(Some(challenge.to_owned()))
        }
        None if params.contains("code_challenge_method") => Err(OAuthError::invalid_request(
            "code_challenge_method without code_challenge.",
        )),
        None if client.public => Err(OAuthError::invalid_request(
            "PKCE is required: send code_challenge with code_challenge_method=S256.",
        )),
        None => Ok(None),
    }
}

fn check_prompt(params: &Params) -> Result<Prompt, OAuthError> {
    let mut prompt = Prompt::default();
    let Some(raw) = params.get("prompt") else {
        return Ok(prompt);
    };
    for value in raw.split(' ').filter(|v| !v.is_empty()) {
        match value {
            "none" => prompt.none = true,
            "login" => prompt.login = true,
            "consent" => prompt.consent = true,
            "select_account" => prompt.select_account = true,
            _ => return Err(OAuthError::invalid_request("Unsupported prompt value.")),
        }
    }
    if prompt.none && (prompt.login || prompt.consent || prompt.select_account) {
        return Err(OAuthError::invalid_request(
            "prompt=none cannot be combined with other values.",
        ));
    }
    Ok(prompt)
}

fn check_max_age(params: &Params) -> Result<Option<u64>, OAuthError> {
    params
        .get("max_age")
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| OAuthError::invalid_request("max_age must be a non-negative integer."))
        })
        .transpose()
}

/// The `claims` parameter (OIDC Core §5.5), if sent: malformed JSON is `invalid_request`.
fn check_claims(params: &Params) -> Result<ClaimsRequest, OAuthError> {
    params
        .get("claims")
        .map_or_else(|| Ok(ClaimsRequest::default()), ClaimsRequest::parse)
}

/// OIDC Core §11: `offline_access` is ignored unless the user is asked (`prompt=consent`), or
/// the app is first-party (its access is the organization's decision, not the user's).
pub fn limit_offline_access(request: &mut AuthorizationRequest, first_party: bool) {
    if !first_party && !request.prompt.consent {
        let mut scopes = request.scopes();
        if scopes.contains("offline_access") {
            scopes.remove("offline_access");
            request.scope = scopes.to_string();
        }
    }
}

/// Whether the user must be asked to consent: never for a first-party app (the organization
/// decided), always with `prompt=consent`, else when the request asks for scopes (or claims, see
/// [`AuthorizationRequest::consent_scopes`]) beyond those `given` before.
pub fn consent_needed(request: &AuthorizationRequest, first_party: bool, given: &Scope) -> bool {
    if first_party {
        return false;
    }
    request.prompt.consent || !request.consent_scopes().is_subset(given)
}

/// How far two clocks may disagree when one judges the other's `auth_time`.
pub const AUTH_TIME_SKEW_SECS: i64 = 60;

/// Whether an existing session, authenticated at `auth_time`, is good enough for this request
/// (OIDC Core §3.1.2.1): not with `prompt=login` or `select_account`, nor older than `max_age`.
pub fn session_satisfies(request: &AuthorizationRequest, auth_time: i64, now: i64) -> bool {
    if request.prompt.login || request.prompt.select_account {
        return false;
    }
    match request.max_age {
        Some(max_age) => {
            let age = now.saturating_sub(auth_time);
            age >= 0 && u64::try_from(age).is_ok_and(|a| a <= max_age)
        }
        None => true,
    }
}

/// Whether an authentication done elsewhere (a guest's home) at `auth_time` answers what the
/// app asked of this request, which was forwarded there at `started_at`: with `max_age`, the
/// `auth_time` must be known and recent enough (OIDC Core §2: `auth_time` is required then);
/// with `prompt=login`, the user must have authenticated after the request was forwarded.
/// [`AUTH_TIME_SKEW_SECS`] allows for the other clock. Refused: `login_required`.
pub fn check_remote_auth_time(
    request: &AuthorizationRequest,
    auth_time: Option<i64>,
    started_at: i64,
    now: i64,
) -> Result<(), OAuthError> {
    let needs_fresh = request.prompt.login || request.prompt.select_account;
    if request.max_age.is_none() && !needs_fresh {
        return Ok(());
    }
    let Some(auth_time) = auth_time else {
        return Err(OAuthError::new(
            ErrorCode::LoginRequired,
            "The user's home organization did not say when the user authenticated.",
        ));
    };
    if let Some(max_age) = request.max_age {
        let age = now
            .saturating_sub(auth_time)
            .saturating_sub(AUTH_TIME_SKEW_SECS);
        if u64::try_from(age).is_ok_and(|a| a > max_age) {
            return Err(OAuthError::new(
                ErrorCode::LoginRequired,
                "The user's authentication at their home organization is older than max_age.",
            ));
        }
    }
    if needs_fresh && auth_time < started_at.saturating_sub(AUTH_TIME_SKEW_SECS) {
        return Err(OAuthError::new(
            ErrorCode::LoginRequired,
            "The user's home organization did not authenticate the user again (prompt=login).",
        ));
    }
    Ok(())
}

/// The parameters of a successful authorization response, RFC 9207 `iss` included.
pub fn success_params(
    code: &str,
    state: Option<&str>,
    issuer: &str,
) -> Vec<(&'static str, String)> {
    let mut p = vec![("code", code.to_owned())];
    if let Some(s) = state {
        p.push(("state", s.to_owned()));
    }
    p.push(("iss", issuer.to_owned()));
    p
}

/// The parameters of an error authorization response, RFC 9207 `iss` included.
pub fn error_params(
    error: &OAuthError,
    state: Option<&str>,
    issuer: &str,
) -> Vec<(&'static str, String)> {
    let mut p = vec![
        ("error", error.code.as_str().to_owned()),
        ("error_description", error.description.to_string()),
    ];
    if let Some(s) = state {
        p.push(("state", s.to_owned()));
    }
    p.push(("iss", issuer.to_owned()));
    p
}

/// Append parameters to a redirect URI's query, keeping any query it already has
/// (RFC 6749 §3.1.2). Returns `None` if the URI does not parse.
pub fn append_query(redirect_uri: &str, params: &[(&str, String)]) -> Option<String> {
    let mut url = url::Url::parse(redirect_uri).ok()?;
    if params.is_empty() {
        // Nothing to add: keep the registered URI exactly, without a dangling '?'.
        return Some(redirect_uri.to_owned());
    }
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
    }
    Some(url.into())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn rules<'a>(uris: &'a [String], public: bool) -> ClientRules<'a> {
        ClientRules {
            client_id: "app",
            redirect_uris: uris,
            public,
            allows_authorization_code: true,
            extra_scopes: &[],
        }
    }

    fn base() -> String {
        "client_id=app&redirect_uri=https%3A%2F%2Fapp.test%2Fcb&response_type=code&scope=openid%20profile&state=s1"
            .to_owned()
    }

    fn uris() -> Vec<String> {
        vec!["https://app.test/cb".to_owned()]
    }

    fn request(extra: &str) -> AuthorizationRequest {
        let p = Params::parse(&format!("{}{extra}", base())).unwrap();
        let u = uris();
        validate(&p, &rules(&u, false)).unwrap()
    }

    #[test]
    fn a_session_satisfies_unless_login_or_too_old() {
        assert!(session_satisfies(&request(""), 0, 10_000));
        assert!(!session_satisfies(&request("&prompt=login"), 9_999, 10_000));
        assert!(session_satisfies(&request("&max_age=60"), 9_940, 10_000));
        assert!(!session_satisfies(&request("&max_age=60"), 9_939, 10_000));
        assert!(!session_satisfies(&request("&max_age=0"), 9_999, 10_000));
        // A session from the future (a clock moved back) is not trusted with max_age.
        assert!(!session_satisfies(&request("&max_age=60"), 10_100, 10_000));
    }

    #[test]
    fn a_remote_auth_time_must_answer_max_age_and_prompt_login() {
        let now = 10_000;
        // Nothing asked: anything goes, even no auth_time.
        assert!(check_remote_auth_time(&request(""), None, now - 5, now).is_ok());
        // max_age: auth_time required and recent (within the skew).
        let r = request("&max_age=0");
        let e = check_remote_auth_time(&r, None, now - 5, now).unwrap_err();
        assert_eq!(e.code, ErrorCode::LoginRequired);
        assert!(check_remote_auth_time(&r, Some(now - 3), now - 5, now).is_ok());
        let e = check_remote_auth_time(&r, Some(now - 3600), now - 5, now).unwrap_err();
        assert_eq!(e.code, ErrorCode::LoginRequired);
        // prompt=login: authenticated after the request was forwarded.
        let r = request("&prompt=login");
        assert!(check_remote_auth_time(&r, Some(now - 2), now - 5, now).is_ok());
        let e = check_remote_auth_time(&r, Some(now - 600), now - 5, now).unwrap_err();
        assert_eq!(e.code, ErrorCode::LoginRequired);
    }

    #[test]
    fn offline_access_needs_consent_or_a_first_party_app() {
        let offline = |extra| {
            let mut r = request(extra);
            r.scope = "offline_access openid".into();
            r
        };
        let mut r = offline("");
        limit_offline_access(&mut r, false);
        assert_eq!(r.scope, "openid");
        let mut r = offline("");
        limit_offline_access(&mut r, true);
        assert_eq!(r.scope, "offline_access openid");
        let mut r = offline("&prompt=consent");
        limit_offline_access(&mut r, false);
        assert_eq!(r.scope, "offline_access openid");
    }

    #[test]
    fn consent_is_asked_for_new_scopes_or_prompt_consent() {
        let given = Scope::parse("openid profile").unwrap();
        assert!(!consent_needed(&request(""), false, &given));
        assert!(consent_needed(&request(""), false, &Scope::default()));
        assert!(consent_needed(&request("&prompt=consent"), false, &given));
        assert!(!consent_needed(
            &request("&prompt=consent"),
            true,
            &Scope::default()
        ));
    }

    #[test]
    fn the_claims_parameter_is_kept_and_needs_consent_for_its_scopes() {
        let claims = urlenc(
            r#"{"id_token":{"email":null,"name":{"essential":true}},"userinfo":{"email":null}}"#,
        );
        let mut r = request(&format!("&claims={claims}"));
        r.scope = "openid".into();
        assert_eq!(
            r.claims
                .id_token
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            ["email", "name"]
        );
        assert_eq!(r.claims.userinfo.len(), 1);
        assert_eq!(r.consent_scopes().to_string(), "email openid profile");
        let given = Scope::parse("openid").unwrap();
        assert!(consent_needed(&r, false, &given));
        assert!(!consent_needed(&r, false, &r.consent_scopes()));
        assert!(!consent_needed(&r, true, &given));
        // Without openid, claims are not OpenID Connect's and ask for nothing.
        let mut plain = r.clone();
        plain.scope = "offline_access".into();
        assert_eq!(plain.consent_scopes().to_string(), "offline_access");
        // Kept through the stored sign-in; a sign-in stored before has none.
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(
            serde_json::from_str::<AuthorizationRequest>(&json).unwrap(),
            r
        );
        let old = serde_json::to_string(&request("")).unwrap();
        assert!(!old.contains("claims"));
        assert!(
            serde_json::from_str::<AuthorizationRequest>(&old)
                .unwrap()
                .claims
                .is_empty()
        );
        // Malformed JSON goes back to the app as invalid_request, with its state.
        let u = uris();
        let p = Params::parse(&format!("{}&claims=%7B%22id_token%22", base())).unwrap();
        match validate(&p, &rules(&u, false)) {
            Err(AuthorizeError::Redirect(r)) => {
                assert_eq!(r.error.code, ErrorCode::InvalidRequest);
                assert_eq!(r.state.as_deref(), Some("s1"));
            }
            other => panic!("{other:?}"),
        }
    }

    fn urlenc(s: &str) -> String {
        url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
    }

    #[test]
    fn acr_values_are_kept_as_sent() {
        assert_eq!(
            request("&acr_values=urn%3Aa%20urn%3Ab")
                .acr_values
                .as_deref(),
            Some("urn:a urn:b")
        );
        assert_eq!(request("").acr_values, None);
    }

    #[test]
    fn valid_request_passes() {
        let p = Params::parse(&format!(
            "{}&nonce=n&code_challenge={CHALLENGE}&code_challenge_method=S256",
            base()
        ))
        .unwrap();
        let u = uris();
        let r = validate(&p, &rules(&u, true)).unwrap();
        assert_eq!(r.redirect_uri, "https://app.test/cb");
        assert_eq!(r.scope, "openid profile");
        assert_eq!(r.code_challenge.as_deref(), Some(CHALLENGE));
        assert_eq!(r.nonce.as_deref(), Some("n"));
    }

    #[test]
    fn redirect_uri_must_match_exactly_and_errors_go_to_a_page() {
        let u = uris();
        for bad in [
            "https://app.test/cb/",
            "https://app.test/cb?x=1",
            "https://APP.test/cb",
            "https://app.test/c",
            "https://evil.test/cb",
        ] {
            let q = base().replace(
                "https%3A%2F%2Fapp.test%2Fcb",
                &url::form_urlencoded::byte_serialize(bad.as_bytes()).collect::<String>(),
            );
            let p = Params::parse(&q).unwrap();
            assert!(
                matches!(
                    validate(&p, &rules(&u, false)),
                    Err(AuthorizeError::Page(_))
                ),
                "{bad}"
            );
        }
        let p = Params::parse("client_id=app&response_type=code&scope=openid").unwrap();
        assert!(matches!(
            validate(&p, &rules(&u, false)),
            Err(AuthorizeError::Page(_))
        ));
    }

    #[test]
    fn public_client_needs_pkce_and_plain_is_refused() {
        let u = uris();
        let p = Params::parse(&base()).unwrap();
        match validate(&p, &rules(&u, true)) {
            Err(AuthorizeError::Redirect(r)) => {
                assert_eq!(r.error.code, ErrorCode::InvalidRequest);
                assert_eq!(r.state.as_deref(), Some("s1"));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            validate(&p, &rules(&u, false)).is_ok(),
            "confidential clients may omit PKCE"
        );
        let plain = Params::parse(&format!(
            "{}&code_challenge={CHALLENGE}&code_challenge_method=plain",
            base()
        ))
        .unwrap();
        assert!(matches!(
            validate(&plain, &rules(&u, false)),
            Err(AuthorizeError::Redirect(_))
        ));
        let nomethod = Params::parse(&format!("{}&code_challenge={CHALLENGE}", base())).unwrap();
        assert!(matches!(
            validate(&nomethod, &rules(&u, false)),
            Err(AuthorizeError::Redirect(_))
        ));
    }

    #[test]
    fn response_type_and_mode() {
        let u = uris();
        let p =
            Params::parse(&base().replace("response_type=code", "response_type=token")).unwrap();
        match validate(&p, &rules(&u, false)) {
            Err(AuthorizeError::Redirect(r)) => {
                assert_eq!(r.error.code, ErrorCode::UnsupportedResponseType)
            }
            other => panic!("{other:?}"),
        }
        let fp = Params::parse(&format!("{}&response_mode=form_post", base())).unwrap();
        assert_eq!(
            validate(&fp, &rules(&u, false)).unwrap().response_mode,
            ResponseMode::FormPost
        );
        let frag = Params::parse(&format!("{}&response_mode=fragment", base())).unwrap();
        assert!(matches!(
            validate(&frag, &rules(&u, false)),
            Err(AuthorizeError::Redirect(_))
        ));
    }

    #[test]
    fn prompt_rules() {
        let u = uris();
        let p = Params::parse(&format!("{}&prompt=none%20login", base())).unwrap();
        assert!(validate(&p, &rules(&u, false)).is_err());
        let p = Params::parse(&format!("{}&prompt=login%20consent", base())).unwrap();
        let r = validate(&p, &rules(&u, false)).unwrap();
        assert!(r.prompt.login && r.prompt.consent && !r.prompt.none);
    }

    #[test]
    fn unknown_scopes_are_dropped_but_empty_is_refused() {
        let u = uris();
        let p = Params::parse(&base().replace("openid%20profile", "openid%20calendar")).unwrap();
        assert_eq!(validate(&p, &rules(&u, false)).unwrap().scope, "openid");
        let p = Params::parse(&base().replace("openid%20profile", "calendar")).unwrap();
        assert!(validate(&p, &rules(&u, false)).is_err());
    }

    #[test]
    fn request_objects_and_bad_max_age_refused() {
        let u = uris();
        let p = Params::parse(&format!("{}&request=eyJ", base())).unwrap();
        match validate(&p, &rules(&u, false)) {
            Err(AuthorizeError::Redirect(r)) => {
                assert_eq!(r.error.code, ErrorCode::RequestNotSupported);
                assert_eq!(r.error.code.as_str(), "request_not_supported");
            }
            other => panic!("{other:?}"),
        }
        let p = Params::parse(&format!(
            "{}&request_uri=https%3A%2F%2Fapp.test%2Fr",
            base()
        ))
        .unwrap();
        match validate(&p, &rules(&u, false)) {
            Err(AuthorizeError::Redirect(r)) => {
                assert_eq!(r.error.code, ErrorCode::RequestUriNotSupported);
                assert_eq!(r.error.code.as_str(), "request_uri_not_supported");
                assert_eq!(r.state.as_deref(), Some("s1"));
            }
            other => panic!("{other:?}"),
        }
        // Only once the client and redirect URI are known to be right.
        let p = Params::parse(&format!("{}&request=eyJ", base()).replace("app.test", "evil.test"))
            .unwrap();
        assert!(matches!(
            validate(&p, &rules(&u, false)),
            Err(AuthorizeError::Page(_))
        ));
        let p = Params::parse(&format!("{}&max_age=-1", base())).unwrap();
        assert!(validate(&p, &rules(&u, false)).is_err());
    }

    #[test]
    fn unreadable_requests_go_back_to_a_verified_redirect_uri_without_an_altered_state() {
        let u = uris();
        let raw = format!("{}&nonce=%FF", base());
        let e = Params::parse(&raw).unwrap_err();
        let readable = Params::parse_decodable(&raw).unwrap();
        match refuse_unreadable(&readable, &rules(&u, false), e.clone()) {
            AuthorizeError::Redirect(r) => {
                assert_eq!(r.error.code, ErrorCode::InvalidRequest);
                assert_eq!(r.redirect_uri, "https://app.test/cb");
                assert_eq!(r.state.as_deref(), Some("s1"), "a readable state is echoed");
                assert_eq!(r.response_mode, ResponseMode::Query);
            }
            other => panic!("{other:?}"),
        }
        // A state that is not UTF-8 is left out, never sent back altered.
        let raw = format!("{}&response_mode=form_post", base()).replace("state=s1", "state=%FF%FE");
        let readable = Params::parse_decodable(&raw).unwrap();
        match refuse_unreadable(&readable, &rules(&u, false), e.clone()) {
            AuthorizeError::Redirect(r) => {
                assert_eq!(r.state, None);
                assert_eq!(r.response_mode, ResponseMode::FormPost);
            }
            other => panic!("{other:?}"),
        }
        // Until client and redirect URI are known to be right, a page.
        for raw in [
            base().replace(
                "redirect_uri=https%3A%2F%2Fapp.test%2Fcb",
                "redirect_uri=%FF",
            ),
            base().replace(
                "https%3A%2F%2Fapp.test%2Fcb",
                "https%3A%2F%2Fevil.test%2Fcb",
            ),
            base().replace("client_id=app", "client_id=other"),
        ] {
            let readable = Params::parse_decodable(&raw).unwrap();
            assert!(
                matches!(
                    refuse_unreadable(&readable, &rules(&u, false), e.clone()),
                    AuthorizeError::Page(_)
                ),
                "{raw}"
            );
        }
    }

    #[test]
    fn responses_carry_iss_and_keep_existing_query() {
        let url = append_query(
            "https://app.test/cb?x=1",
            &success_params("c0de", Some("st"), "https://idp.test"),
        )
        .unwrap();
        assert_eq!(
            url,
            "https://app.test/cb?x=1&code=c0de&state=st&iss=https%3A%2F%2Fidp.test"
        );
        let e = error_params(
            &OAuthError::new(ErrorCode::AccessDenied, "no"),
            None,
            "https://idp.test",
        );
        assert!(
            e.iter()
                .any(|(k, v)| *k == "iss" && v == "https://idp.test")
        );
    }
}
