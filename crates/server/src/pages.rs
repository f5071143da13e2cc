//! Server-rendered pages (askama: compiled, autoescaped). Each struct is one template.

use askama::Template;

/// Sign-in: email first.
#[derive(Template)]
#[template(path = "login_email.html")]
pub struct LoginEmail<'a> {
    /// Tenant display name.
    pub tenant_name: &'a str,
    /// App being signed in to.
    pub app_name: &'a str,
    /// Pending request id.
    pub interaction: &'a str,
    /// CSRF token.
    pub csrf_token: &'a str,
    /// Prefilled email.
    pub email: &'a str,
    /// Message to show.
    pub error: Option<&'a str>,
}

/// Sign-in: password.
#[derive(Template)]
#[template(path = "login_password.html")]
pub struct LoginPassword<'a> {
    /// Tenant display name.
    pub tenant_name: &'a str,
    /// Pending request id.
    pub interaction: &'a str,
    /// CSRF token.
    pub csrf_token: &'a str,
    /// The email entered.
    pub email: &'a str,
    /// Message to show.
    pub error: Option<&'a str>,
}

/// Forced password change.
#[derive(Template)]
#[template(path = "change_password.html")]
pub struct ChangePassword<'a> {
    /// Tenant display name.
    pub tenant_name: &'a str,
    /// Pending request id.
    pub interaction: &'a str,
    /// CSRF token.
    pub csrf_token: &'a str,
    /// The user's email.
    pub email: &'a str,
    /// Message to show.
    pub error: Option<&'a str>,
}

/// MFA: the code from the authenticator app, or a recovery code.
#[derive(Template)]
#[template(path = "mfa_verify.html")]
pub struct MfaVerify<'a> {
    /// Tenant display name.
    pub tenant_name: &'a str,
    /// Pending request id.
    pub interaction: &'a str,
    /// CSRF token.
    pub csrf_token: &'a str,
    /// The user's email.
    pub email: &'a str,
    /// Message to show.
    pub error: Option<&'a str>,
}

/// MFA enrolment: the key to add to an authenticator app, and its first code to confirm it.
#[derive(Template)]
#[template(path = "mfa_enrol.html")]
pub struct MfaEnrol<'a> {
    /// Tenant display name.
    pub tenant_name: &'a str,
    /// Pending request id.
    pub interaction: &'a str,
    /// CSRF token.
    pub csrf_token: &'a str,
    /// The user's email.
    pub email: &'a str,
    /// The key, base32 in groups of four (`id="totp-secret"`).
    pub secret: &'a str,
    /// The `otpauth://` URI for apps that import one (`id="totp-uri"`).
    pub otpauth_uri: &'a str,
    /// Message to show.
    pub error: Option<&'a str>,
}

/// MFA enrolment done: the recovery codes, shown once, and the way on.
#[derive(Template)]
#[template(path = "mfa_recovery_codes.html")]
pub struct MfaRecoveryCodes<'a> {
    /// Tenant display name.
    pub tenant_name: &'a str,
    /// The codes, in the form the user types them back.
    pub codes: &'a [String],
    /// Pending request id, for `/login/continue`.
    pub interaction: &'a str,
}

/// Consent.
#[derive(Template)]
#[template(path = "consent.html")]
pub struct Consent<'a> {
    /// Tenant display name.
    pub tenant_name: &'a str,
    /// App asking.
    pub app_name: &'a str,
    /// What each scope means, in words.
    pub scopes: Vec<&'static str>,
    /// The signed-in user.
    pub email: &'a str,
    /// Pending request id.
    pub interaction: &'a str,
    /// CSRF token.
    pub csrf_token: &'a str,
}

/// An error page: plain words and a correlation id, never internals.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    /// Tenant display name.
    pub tenant_name: &'a str,
    /// Heading.
    pub title: &'a str,
    /// What happened and what to do.
    pub message: &'a str,
    /// A short code people can look up.
    pub error_code: Option<u32>,
    /// Joins this page to the logs.
    pub correlation_id: &'a str,
}

/// OAuth 2.0 Form Post Response Mode.
#[derive(Template)]
#[template(path = "form_post.html")]
pub struct FormPost<'a> {
    /// The client's redirect URI.
    pub action: &'a str,
    /// Response parameters.
    pub fields: Vec<(&'a str, String)>,
    /// CSP nonce for the auto-submit script.
    pub nonce: &'a str,
}

/// Logout confirmation.
#[derive(Template)]
#[template(path = "logout_confirm.html")]
pub struct LogoutConfirm<'a> {
    /// Tenant display name.
    pub tenant_name: &'a str,
    /// App asking, if known.
    pub app_name: Option<&'a str>,
    /// CSRF token.
    pub csrf_token: &'a str,
    /// The logout parameters, carried through.
    pub fields: Vec<(&'a str, String)>,
}

/// Signed out / nothing to do.
#[derive(Template)]
#[template(path = "signed_out.html")]
pub struct SignedOut<'a> {
    /// Tenant display name.
    pub tenant_name: &'a str,
    /// Heading.
    pub title: &'a str,
    /// Text.
    pub message: &'a str,
}

/// What a scope lets an app do, for the consent page.
pub fn describe_scope(scope: &str) -> Option<&'static str> {
    match scope {
        "openid" => Some("Sign you in"),
        "profile" => Some("See your name"),
        "email" => Some("See your email address"),
        "offline_access" => Some("Keep access while you are away"),
        _ => None,
    }
}

/// A refused sign-in: plain words, a code to look up, the correlation id, and the way back to
/// the app carrying the OAuth error (so the app learns what happened when the user continues).
#[derive(Template)]
#[template(path = "refused.html")]
pub struct Refused<'a> {
    /// Tenant display name.
    pub tenant_name: &'a str,
    /// Heading.
    pub title: &'a str,
    /// What happened, in plain words.
    pub message: &'a str,
    /// Why, and what the user can do about it.
    pub explanation: Option<&'a str>,
    /// A link elsewhere (e.g. the home tenant) as (href, text).
    pub home_link: Option<(String, String)>,
    /// A last line after the link.
    pub footnote: Option<&'a str>,
    /// A short code people can look up.
    pub error_code: Option<u32>,
    /// Joins this page to the logs of both tenants.
    pub correlation_id: &'a str,
    /// The way back to the app with the OAuth error, when the request is known.
    pub back: Option<BackToApp>,
}

/// The authorization error response, as a link (query mode) or a form (form_post mode).
pub struct BackToApp {
    /// The app's name.
    pub app_name: String,
    /// The redirect URI with the error parameters (query) or without (form_post).
    pub action: String,
    /// `form_post`: the fields to post.
    pub fields: Vec<(&'static str, String)>,
    /// Whether to post a form instead of following a link.
    pub post: bool,
}

/// Self-service password reset: the email form, then (with `email`) the code + new password form.
#[derive(Template)]
#[template(path = "password_reset.html")]
pub struct PasswordReset<'a> {
    /// Tenant display name.
    pub tenant_name: &'a str,
    /// Whether self-service password reset is on (`[sspr] enabled`).
    pub enabled: bool,
    /// CSRF token.
    pub csrf_token: &'a str,
    /// The reset in progress (second step).
    pub reset: &'a str,
    /// The account being reset (second step).
    pub email: Option<&'a str>,
    /// Message to show.
    pub error: Option<&'a str>,
}

/// Self-service password reset is not possible (off, or no registered method): what to hand
/// the administrator.
#[derive(Template)]
#[template(path = "password_reset_administrator.html")]
pub struct PasswordResetAdministrator<'a> {
    /// Tenant display name.
    pub tenant_name: &'a str,
    /// Tenant id.
    pub tenant_id: &'a str,
    /// The account as the user typed it.
    pub account: &'a str,
    /// When (UTC, RFC 3339).
    pub time: &'a str,
    /// Joins this page to the logs.
    pub correlation_id: &'a str,
}
