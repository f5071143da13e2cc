//! Why a sign-in is refused, in words for the person and as the OAuth error for the app. The
//! server renders it (a page with the code and the correlation id, and the way back to the
//! app carrying the error).

use protocol::OAuthError;

/// A refused sign-in.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// Heading.
    pub title: &'static str,
    /// What happened.
    pub message: String,
    /// Why, and what to do.
    pub explanation: Option<String>,
    /// A link elsewhere (a guest's home password reset), as (href, text).
    pub home_link: Option<(String, String)>,
    /// A last line, after the link (a guest blocked for user risk: what to do if resetting
    /// the password did not help).
    pub footnote: Option<&'static str>,
    /// The code people can look up ([`crate::codes`]; sign-in log `status.errorCode`).
    pub error_code: u32,
    /// What the app receives.
    pub oauth: OAuthError,
}
