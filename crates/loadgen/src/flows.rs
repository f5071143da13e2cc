//! The HTTP conversations a browser and a relying party have with tenantd: a password sign-in
//! through the pages, an authorization with an existing session, the code exchange with PKCE,
//! and refresh-token rotation. Each returns the latency of its steps.

use anyhow::{Context, anyhow, bail, ensure};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use reqwest::header::LOCATION;
use serde::Deserialize;
use std::time::{Duration, Instant};
use url::Url;

/// Who signs in, to which client, where.
#[derive(Debug, Clone)]
pub struct Target {
    /// Issuer URL, no trailing slash.
    pub issuer: String,
    /// Client id.
    pub client_id: String,
    /// Client secret (client_secret_basic).
    pub client_secret: String,
    /// Registered redirect URI (never contacted: the code is read from the 303).
    pub redirect_uri: String,
    /// Requested scope.
    pub scope: String,
    /// User's email.
    pub username: String,
    /// User's password.
    pub password: String,
}

/// Step latencies of one operation, in order.
pub type Steps = Vec<(&'static str, Duration)>;

/// The token endpoint's answer.
#[derive(Debug, Deserialize)]
pub struct Tokens {
    /// Access token (RFC 9068 JWT).
    pub access_token: String,
    /// ID token, when `openid` was granted.
    pub id_token: Option<String>,
    /// Refresh token.
    pub refresh_token: Option<String>,
}

/// An admin API token at `issuer`: the client credentials grant with scope `admin`.
pub async fn admin_token(
    client: &reqwest::Client,
    issuer: &str,
    client_id: &str,
    secret: &str,
) -> anyhow::Result<String> {
    let resp = client
        .post(format!("{issuer}/token"))
        .basic_auth(client_id, Some(secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "admin")])
        .send()
        .await?;
    let status = resp.status();
    let v: serde_json::Value = resp.json().await?;
    ensure!(status.is_success(), "admin token at {issuer}: {status} {v}");
    Ok(v["access_token"]
        .as_str()
        .context("no access_token")?
        .to_owned())
}

/// `GET url`, expecting 200 and a body; returns the body length.
pub async fn fetch(client: &reqwest::Client, url: &str) -> anyhow::Result<usize> {
    let resp = client.get(url).send().await?;
    let status = resp.status();
    let body = resp.bytes().await?;
    ensure!(status == StatusCode::OK, "GET {url}: {status}");
    ensure!(!body.is_empty(), "GET {url}: empty body");
    Ok(body.len())
}

/// A full sign-in with the password: authorize (no usable session, or `prompt=login`), which
/// answers with the email page, then the password page, the code, the token exchange.
pub async fn password_sign_in(
    client: &reqwest::Client,
    t: &Target,
    prompt_login: bool,
    steps: &mut Steps,
) -> anyhow::Result<Tokens> {
    let req = AuthRequest::new()?;
    let page = timed(steps, "authorize", async {
        let r = client.get(req.url(t, prompt_login, None)?).send().await?;
        read_page(r, "authorize").await
    })
    .await?;
    let interaction = hidden(&page, "interaction").context("authorize: no interaction field")?;
    let csrf = hidden(&page, "csrf_token").context("authorize: no csrf_token field")?;
    let page = timed(steps, "email", async {
        let r = client
            .post(format!("{}/login", t.issuer))
            .form(&[
                ("interaction", interaction.as_str()),
                ("csrf_token", csrf.as_str()),
                ("email", t.username.as_str()),
            ])
            .send()
            .await?;
        read_page(r, "POST /login").await
    })
    .await?;
    let resp = submit_password(client, &t.issuer, t, &page, "POST /login", steps).await?;
    let code = req.code_from(t, &resp, "POST /login/password")?;
    req.exchange(client, t, &code, steps).await
}

/// The password page (`page`, the answer to `what`) submitted with the user's password to
/// `{base}/login/password`; the redirect a correct password gets.
async fn submit_password(
    client: &reqwest::Client,
    base: &str,
    t: &Target,
    page: &str,
    what: &str,
    steps: &mut Steps,
) -> anyhow::Result<reqwest::Response> {
    let interaction =
        hidden(page, "interaction").with_context(|| format!("{what}: no interaction field"))?;
    let csrf =
        hidden(page, "csrf_token").with_context(|| format!("{what}: no csrf_token field"))?;
    let email = hidden(page, "email").unwrap_or_else(|| t.username.clone());
    let resp = timed(
        steps,
        "password",
        client
            .post(format!("{base}/login/password"))
            .form(&[
                ("interaction", interaction.as_str()),
                ("csrf_token", csrf.as_str()),
                ("email", email.as_str()),
                ("password", t.password.as_str()),
            ])
            .send(),
    )
    .await?;
    if resp.status() == StatusCode::OK {
        let page = resp.text().await.unwrap_or_default();
        bail!(
            "POST {base}/login/password: the page came back instead of a redirect ({})",
            page_error(&page).unwrap_or("no message")
        );
    }
    Ok(resp)
}

/// An authorization with the browser's existing session, then the code exchange.
pub async fn code_flow(
    client: &reqwest::Client,
    t: &Target,
    steps: &mut Steps,
) -> anyhow::Result<Tokens> {
    let req = AuthRequest::new()?;
    let resp = timed(
        steps,
        "authorize",
        client.get(req.url(t, false, None)?).send(),
    )
    .await?;
    if resp.status() == StatusCode::OK {
        return Err(SessionLost.into());
    }
    let code = req.code_from(t, &resp, "authorize")?;
    req.exchange(client, t, &code, steps).await
}

/// A partner's user signs in at a resource tenant as a guest, as the browser and the app see
/// it: the app's authorize at the resource (`login_hint` = the guest's address), whose home
/// realm discovery redirects to the home's `/authorize` → the home answers with its session
/// straight to the resource's `/federation/callback` → the resource (which redeems the home's
/// code and verifies its ID token meanwhile) redirects to the app with a code → the app's
/// token exchange at the resource.
///
/// `t` is the resource tenant and its app, `t.username` the guest, `home` the home tenant's
/// issuer URL. The browser must have no session at the resource (else there is nothing to
/// federate). Without a home session the home asks for the password: with `sign_in` it is given
/// (step `password`); without, the flow fails with [`SessionLost`].
pub async fn federated_flow(
    client: &reqwest::Client,
    t: &Target,
    home: &str,
    sign_in: bool,
    steps: &mut Steps,
) -> anyhow::Result<Tokens> {
    let req = AuthRequest::new()?;
    let resp = federated_callback(client, t, home, sign_in, &req, steps).await?;
    let code = req.code_from(t, &resp, "federation callback")?;
    req.exchange(client, t, &code, steps).await
}

/// How a block page starts (the rest of the sentence is HTML-escaped on the page).
const BLOCKED: &str = "Your account is blocked.";

/// A guest the resource blocks: the same steps as [`federated_flow`] with the password at the
/// home, ending on the resource's 403 block page with the blocked sentence instead of a code.
pub async fn federated_blocked(
    client: &reqwest::Client,
    t: &Target,
    home: &str,
    steps: &mut Steps,
) -> anyhow::Result<()> {
    let req = AuthRequest::new()?;
    let resp = federated_callback(client, t, home, true, &req, steps).await?;
    let status = resp.status();
    let page = resp.text().await?;
    ensure!(
        status == StatusCode::FORBIDDEN && page.contains(BLOCKED),
        "federation callback: expected the 403 block page, got {status}"
    );
    Ok(())
}

/// A guest's steps from the resource's authorize to its federation callback's response.
async fn federated_callback(
    client: &reqwest::Client,
    t: &Target,
    home: &str,
    sign_in: bool,
    req: &AuthRequest,
    steps: &mut Steps,
) -> anyhow::Result<reqwest::Response> {
    let url = req.url(t, false, Some(&t.username))?;
    let resp = timed(steps, "authorize", client.get(url).send()).await?;
    let to_home = redirect_target(&t.issuer, &resp, "authorize")?;
    ensure!(
        at(&to_home, home, "/authorize"),
        "authorize: expected home realm discovery to redirect to {home}/authorize, got {to_home}"
    );
    let resp = timed(steps, "home-authorize", client.get(to_home.as_str()).send()).await?;
    let back = if resp.status() == StatusCode::OK {
        if !sign_in {
            return Err(SessionLost.into());
        }
        // With login_hint the home shows its password page at once.
        let page = read_page(resp, "home authorize").await?;
        let resp = submit_password(client, home, t, &page, "home authorize", steps).await?;
        redirect_target(home, &resp, "home POST /login/password")?
    } else {
        redirect_target(home, &resp, "home authorize")?
    };
    ensure!(
        at(&back, &t.issuer, "/federation/callback"),
        "home: expected a redirect to {}/federation/callback, got {back}",
        t.issuer
    );
    timed(steps, "callback", client.get(back.as_str()).send()).await
}

/// The server asked for a sign-in where the session should have sufficed.
#[derive(Debug)]
pub struct SessionLost;

impl std::fmt::Display for SessionLost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("authorize: the sign-in page came back: the session is gone")
    }
}

impl std::error::Error for SessionLost {}

/// One refresh-token grant; returns the new tokens (the old refresh token is now spent).
pub async fn refresh(
    client: &reqwest::Client,
    t: &Target,
    refresh_token: &str,
    steps: &mut Steps,
) -> anyhow::Result<Tokens> {
    let tokens: Tokens = timed(steps, "token", async {
        let r = client
            .post(format!("{}/token", t.issuer))
            .basic_auth(&t.client_id, Some(&t.client_secret))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ])
            .send()
            .await?;
        read_json(r, "refresh_token grant").await
    })
    .await?;
    ensure!(
        tokens.refresh_token.is_some(),
        "refresh_token grant: no new refresh_token"
    );
    Ok(tokens)
}

/// The per-request secrets of an authorization request.
struct AuthRequest {
    state: String,
    nonce: String,
    verifier: String,
}

impl AuthRequest {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            state: random_b64(16)?,
            nonce: random_b64(16)?,
            verifier: random_b64(32)?,
        })
    }

    fn url(&self, t: &Target, prompt_login: bool, login_hint: Option<&str>) -> anyhow::Result<Url> {
        let challenge = URL_SAFE_NO_PAD.encode(
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, self.verifier.as_bytes())
                .as_ref(),
        );
        let mut url = Url::parse(&format!("{}/authorize", t.issuer))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &t.client_id)
                .append_pair("redirect_uri", &t.redirect_uri)
                .append_pair("scope", &t.scope)
                .append_pair("state", &self.state)
                .append_pair("nonce", &self.nonce)
                .append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256");
            if prompt_login {
                q.append_pair("prompt", "login");
            }
            if let Some(hint) = login_hint {
                q.append_pair("login_hint", hint);
            }
        }
        Ok(url)
    }

    /// The code from an authorization response redirect, after checking `state` and RFC 9207 `iss`.
    fn code_from(
        &self,
        t: &Target,
        resp: &reqwest::Response,
        what: &str,
    ) -> anyhow::Result<String> {
        let to = redirect_target(&t.issuer, resp, what)?;
        let back = Url::parse(&t.redirect_uri)?;
        ensure!(
            at(&to, &t.redirect_uri, back.path()),
            "{what}: redirected to {} instead of the client",
            to.path()
        );
        let get = |name: &str| {
            to.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        if let Some(error) = get("error") {
            bail!(
                "{what}: error={error} ({})",
                get("error_description").unwrap_or_default()
            );
        }
        ensure!(
            get("state").as_deref() == Some(self.state.as_str()),
            "{what}: state mismatch"
        );
        ensure!(
            get("iss").as_deref() == Some(t.issuer.as_str()),
            "{what}: iss missing or wrong"
        );
        get("code").ok_or_else(|| anyhow!("{what}: no code in the redirect"))
    }

    /// `authorization_code` grant with the PKCE verifier; checks the ID token's claims.
    async fn exchange(
        &self,
        client: &reqwest::Client,
        t: &Target,
        code: &str,
        steps: &mut Steps,
    ) -> anyhow::Result<Tokens> {
        let tokens: Tokens = timed(steps, "token", async {
            let r = client
                .post(format!("{}/token", t.issuer))
                .basic_auth(&t.client_id, Some(&t.client_secret))
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", code),
                    ("redirect_uri", t.redirect_uri.as_str()),
                    ("code_verifier", self.verifier.as_str()),
                ])
                .send()
                .await?;
            read_json(r, "authorization_code grant").await
        })
        .await?;
        let id_token = tokens
            .id_token
            .as_deref()
            .context("authorization_code grant: no id_token")?;
        check_id_token(id_token, t, &self.nonce)?;
        ensure!(
            !tokens.access_token.is_empty(),
            "authorization_code grant: empty access_token"
        );
        Ok(tokens)
    }
}

/// The ID token's `iss`, `aud` and `nonce` (the signature is the server's business here; the
/// criterion benches measure verification).
fn check_id_token(jwt: &str, t: &Target, nonce: &str) -> anyhow::Result<()> {
    #[derive(Deserialize)]
    struct Claims {
        iss: String,
        aud: serde_json::Value,
        nonce: Option<String>,
    }
    let payload = jwt.split('.').nth(1).context("id_token is not a JWT")?;
    let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload)?)?;
    ensure!(claims.iss == t.issuer, "id_token: wrong iss");
    let aud_ok = match &claims.aud {
        serde_json::Value::String(a) => a == &t.client_id,
        serde_json::Value::Array(v) => v.iter().any(|a| a.as_str() == Some(t.client_id.as_str())),
        _ => false,
    };
    ensure!(aud_ok, "id_token: wrong aud");
    ensure!(
        claims.nonce.as_deref() == Some(nonce),
        "id_token: nonce mismatch"
    );
    Ok(())
}

async fn timed<T>(
    steps: &mut Steps,
    name: &'static str,
    f: impl Future<Output = Result<T, impl Into<anyhow::Error>>>,
) -> anyhow::Result<T> {
    let start = Instant::now();
    let r = f.await.map_err(Into::into);
    steps.push((name, start.elapsed()));
    r.with_context(|| format!("step {name}"))
}

/// The absolute target of a 303 (or other 3xx) response from `base` (an origin URL).
fn redirect_target(base: &str, resp: &reqwest::Response, what: &str) -> anyhow::Result<Url> {
    let status = resp.status();
    ensure!(
        status.is_redirection(),
        "{what}: expected a redirect, got {status}"
    );
    let loc = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .with_context(|| format!("{what}: redirect without Location"))?;
    Ok(Url::parse(base)?.join(loc)?)
}

/// Whether `to` is `path` at the origin of `base`.
fn at(to: &Url, base: &str, path: &str) -> bool {
    to.path() == path && Url::parse(base).is_ok_and(|b| b.origin() == to.origin())
}

async fn read_page(resp: reqwest::Response, what: &str) -> anyhow::Result<String> {
    let status = resp.status();
    let body = resp.text().await?;
    ensure!(
        status == StatusCode::OK,
        "{what}: {status} {}",
        page_error(&body).unwrap_or("")
    );
    Ok(body)
}

async fn read_json<T: serde::de::DeserializeOwned>(
    resp: reqwest::Response,
    what: &str,
) -> anyhow::Result<T> {
    let status = resp.status();
    let body = resp.bytes().await?;
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body);
        bail!(
            "{what}: {status} {}",
            text.chars().take(300).collect::<String>()
        );
    }
    serde_json::from_slice(&body)
        .with_context(|| format!("{what}: response is not the expected JSON"))
}

/// The value of `<input type="hidden" name="NAME" value="VALUE">` in a rendered page.
pub fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let len = html[start..].find('"')?;
    Some(unescape(&html[start..start + len]))
}

/// A visible error message on a page (`class="error"`), for error reports.
fn page_error(html: &str) -> Option<&str> {
    let start = html.find("class=\"error\"")?;
    let rest = &html[start..];
    let open = rest.find('>')? + 1;
    let close = rest[open..].find('<')?;
    Some(rest[open..open + close].trim())
}

fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    s.replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn random_b64(n: usize) -> anyhow::Result<String> {
    let mut buf = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut buf).map_err(|_| anyhow!("no randomness"))?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hidden_fields_are_found_and_unescaped() {
        let html = r#"<form><input type="hidden" name="interaction" value="abc-_1">
            <input type="hidden" name="email" value="a&amp;b@x.test"></form>"#;
        assert_eq!(hidden(html, "interaction").unwrap(), "abc-_1");
        assert_eq!(hidden(html, "email").unwrap(), "a&b@x.test");
        assert!(hidden(html, "csrf_token").is_none());
    }

    #[test]
    fn id_token_claims_are_checked() {
        let t = Target {
            issuer: "https://127.0.0.1:9443".into(),
            client_id: "lab-rp".into(),
            client_secret: String::new(),
            redirect_uri: String::new(),
            scope: String::new(),
            username: String::new(),
            password: String::new(),
        };
        let body = URL_SAFE_NO_PAD
            .encode(r#"{"iss":"https://127.0.0.1:9443","aud":"lab-rp","nonce":"n1"}"#);
        let jwt = format!("e30.{body}.sig");
        assert!(check_id_token(&jwt, &t, "n1").is_ok());
        assert!(check_id_token(&jwt, &t, "n2").is_err());
    }

    fn lab_rp() -> Target {
        Target {
            issuer: "https://127.0.0.1:9444".into(),
            client_id: "lab-rp".into(),
            client_secret: "lab-rp-secret".into(),
            redirect_uri: "http://127.0.0.1:9555/callback".into(),
            scope: "openid profile email".into(),
            username: "alice@contoso.test".into(),
            password: String::new(),
        }
    }

    #[test]
    fn authorize_url_carries_pkce_and_the_login_hint() {
        let t = lab_rp();
        let req = AuthRequest::new().unwrap();
        let url = req.url(&t, false, Some(&t.username)).unwrap();
        assert!(
            url.as_str()
                .starts_with("https://127.0.0.1:9444/authorize?")
        );
        let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "lab-rp");
        assert_eq!(q["redirect_uri"], "http://127.0.0.1:9555/callback");
        assert_eq!(q["scope"], "openid profile email");
        assert_eq!(q["state"], req.state);
        assert_eq!(q["nonce"], req.nonce);
        assert_eq!(q["login_hint"], "alice@contoso.test");
        assert_eq!(q["code_challenge_method"], "S256");
        let challenge = URL_SAFE_NO_PAD.encode(
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, req.verifier.as_bytes()).as_ref(),
        );
        assert_eq!(q["code_challenge"], challenge);
        assert!(!q.contains_key("prompt"));

        let url = req.url(&t, true, None).unwrap();
        let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(q["prompt"], "login");
        assert!(!q.contains_key("login_hint"));
    }

    #[test]
    fn hops_are_checked_by_origin_and_path() {
        let home = "https://127.0.0.1:9443";
        let resource = "https://127.0.0.1:9444";
        let to_home = Url::parse("https://127.0.0.1:9443/authorize?client_id=fabrikam").unwrap();
        assert!(at(&to_home, home, "/authorize"));
        // Same host, other port: another tenant.
        assert!(!at(&to_home, resource, "/authorize"));
        assert!(!at(&to_home, home, "/login"));
        let back = Url::parse("https://127.0.0.1:9444/federation/callback?code=c&state=s").unwrap();
        assert!(at(&back, resource, "/federation/callback"));
        assert!(!at(&back, "http://127.0.0.1:9444", "/federation/callback"));
        assert!(!at(&back, "not a url", "/federation/callback"));
    }

    #[test]
    fn random_values_are_unique_and_pkce_sized() {
        let a = random_b64(32).unwrap();
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_b64(32).unwrap());
    }
}
