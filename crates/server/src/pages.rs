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

/// MFA: the code from the authenticator app, a code sent by email, or a recovery code.
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
    /// The user has an authenticator app: its code form.
    pub totp: bool,
    /// Where codes by email go, masked, when the user registered an address for them.
    pub email_hint: Option<&'a str>,
    /// A code was just emailed: the form for it comes first.
    pub email_sent: bool,
    /// The recovery code form.
    pub recovery: bool,
    /// Message to show.
    pub error: Option<&'a str>,
    /// What was done (a code was sent).
    pub notice: Option<&'a str>,
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
    /// The `otpauth://` URI as a QR code, inline SVG (see [`qr_svg`]).
    pub qr_svg: Option<&'a str>,
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

/// `text` as a QR code (error correction M), an inline `<svg>` for a page: drawn here, so the
/// page loads nothing and needs no script. The markup is made only of numbers (sizes and path
/// data), never of `text`, so it is safe to insert unescaped. `None` if `text` is too long for
/// a QR code.
pub fn qr_svg(text: &str) -> Option<String> {
    use qrcode::render::svg;
    let code =
        qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M).ok()?;
    let image = code
        .render::<svg::Color<'_>>()
        .min_dimensions(200, 200)
        .dark_color(svg::Color("#000"))
        .light_color(svg::Color("#fff"))
        .build();
    // Inline SVG in HTML takes no XML declaration.
    let start = image.find("<svg")?;
    Some(image[start..].replacen(
        "<svg ",
        "<svg role=\"img\" aria-label=\"QR code of the setup key\" ",
        1,
    ))
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
    /// What was done (a code was sent).
    pub notice: Option<&'a str>,
    /// Where codes by email go, masked, when the account has that method (second step).
    pub email_hint: Option<&'a str>,
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

/// The development outbox (`[mail] outbox = true`): mail the tenant would have sent.
#[derive(Template)]
#[template(path = "dev_outbox.html")]
pub struct DevOutbox<'a> {
    /// Tenant display name.
    pub tenant_name: &'a str,
    /// The newest messages first.
    pub mail: Vec<OutboxRow>,
    /// How many are listed at most.
    pub limit: i64,
}

/// One message on the development outbox page.
pub struct OutboxRow {
    /// Recipient.
    pub to: String,
    /// Subject.
    pub subject: String,
    /// When (UTC, RFC 3339).
    pub time: String,
    /// Plain-text body.
    pub body: String,
}

/// A member's security info (`/account/security`).
#[derive(Template)]
#[template(path = "account_security.html")]
pub struct AccountSecurity<'a> {
    /// Tenant display name.
    pub tenant_name: &'a str,
    /// CSRF token.
    pub csrf_token: &'a str,
    /// The member's sign-in address.
    pub email: &'a str,
    /// An authenticator app is registered.
    pub totp: bool,
    /// Where codes by email go, when registered.
    pub email_method: Option<&'a str>,
    /// The tenant sends mail (codes by email can be added).
    pub mail_on: bool,
    /// Unused recovery codes.
    pub recovery_codes: u64,
    /// Changes are allowed now (a recent sign-in or code).
    pub fresh: bool,
    /// The member is at risk: no new method (53004).
    pub blocked: bool,
    /// What was done.
    pub notice: Option<&'a str>,
    /// What went wrong.
    pub error: Option<&'a str>,
    /// An authenticator being added: its key and QR code.
    pub enrol: Option<&'a AccountEnrol>,
    /// A new address waiting for its code, masked.
    pub email_pending: Option<&'a str>,
    /// New recovery codes, shown this once.
    pub codes: Option<&'a [String]>,
}

/// An authenticator being added on the security info page.
pub struct AccountEnrol {
    /// The unconfirmed method's id, posted back with its first code.
    pub method_id: String,
    /// The key in groups of four.
    pub secret: String,
    /// The `otpauth://` URI as an inline SVG QR code.
    pub qr_svg: Option<String>,
    /// The `otpauth://` URI.
    pub otpauth_uri: String,
}
