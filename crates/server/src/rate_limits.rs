//! Rate limits per client IP at the endpoints people and scripts guess at (`[rate_limits]`):
//! the sign-in pages' submissions, the token endpoint, password reset. Over the limit a
//! request is answered 429 with `Retry-After` (RFC 6585 §4) before anything else runs: no
//! password is hashed, no row written. `governor`'s keyed GCRA limiters, in this process.
//! Smart lockout (per account, in the database) is the other half of brute-force protection.

use std::net::IpAddr;
use std::num::NonZeroU32;

use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use signin::config::RateLimitSettings;

use crate::state::AppState;

/// What a request is counted as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// A credential a sign-in page takes: a password, an MFA code, a new password.
    SignIn,
    /// `POST /token`.
    Token,
    /// A password reset form.
    PasswordReset,
}

impl Bucket {
    /// The bucket of a request, if it is one that is limited: form submissions and the token
    /// endpoint, never a page load, discovery, keys or the API (which has tokens to show).
    pub fn of(method: &Method, path: &str) -> Option<Self> {
        if method != Method::POST {
            return None;
        }
        if path == "/token" {
            Some(Self::Token)
        } else if path.starts_with("/password/reset") {
            Some(Self::PasswordReset)
        } else if path == "/login/password"
            || path.starts_with("/login/mfa")
            || path == "/login/change-password"
        {
            Some(Self::SignIn)
        } else {
            None
        }
    }
}

/// The tenant's limiters (`None` where a limit is off).
pub struct RateLimits {
    sign_in: Option<DefaultKeyedRateLimiter<IpAddr>>,
    token: Option<DefaultKeyedRateLimiter<IpAddr>>,
    reset: Option<DefaultKeyedRateLimiter<IpAddr>>,
    exempt: Vec<ipnet::IpNet>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits").finish_non_exhaustive()
    }
}

fn limiter(per_minute: u32) -> Option<DefaultKeyedRateLimiter<IpAddr>> {
    // The whole minute's allowance may come at once (a burst), then it refills evenly.
    NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n)))
}

impl RateLimits {
    /// The limiters `settings` asks for.
    pub fn new(settings: &RateLimitSettings) -> Self {
        Self {
            sign_in: limiter(settings.sign_in_per_minute),
            token: limiter(settings.token_per_minute),
            reset: limiter(settings.password_reset_per_minute),
            exempt: settings.exempt.clone(),
        }
    }

    /// `Ok` if `ip` may make a request of `bucket` now; otherwise how many seconds until it may.
    pub fn check(&self, bucket: Bucket, ip: IpAddr) -> Result<(), u64> {
        let limiter = match bucket {
            Bucket::SignIn => &self.sign_in,
            Bucket::Token => &self.token,
            Bucket::PasswordReset => &self.reset,
        };
        let Some(limiter) = limiter else {
            return Ok(());
        };
        if self.exempt.iter().any(|n| n.contains(&ip)) {
            return Ok(());
        }
        limiter.check_key(&ip).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }

    /// Forgets clients whose allowance is full again (memory stays bounded by recent clients).
    pub fn forget_idle(&self) {
        for l in [&self.sign_in, &self.token, &self.reset]
            .into_iter()
            .flatten()
        {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

/// The 429 (with `Retry-After`) for a client over its limit at this request's endpoint, if it
/// is; `None` lets the request through. Run by the router's middleware (`crate::app`).
pub fn refusal(state: &AppState, req: &Request) -> Option<Response> {
    let bucket = Bucket::of(req.method(), req.uri().path())?;
    let ip = crate::client_ip::of_request(
        req.extensions(),
        req.headers(),
        &state.config.trusted_proxies,
    );
    let secs = state.rate_limits.check(bucket, ip).err()?;
    tracing::warn!(%ip, ?bucket, retry_after = secs, "rate limited");
    metrics::counter!(
        "tenantd_rate_limited_total",
        "tenant" => state.config.tenant_id.clone(),
        "bucket" => format!("{bucket:?}")
    )
    .increment(1);
    Some(too_many(bucket, secs))
}

fn too_many(bucket: Bucket, secs: u64) -> Response {
    let mut resp = if bucket == Bucket::Token {
        // The token endpoint answers in JSON like its other errors.
        (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(serde_json::json!({
                "error": "temporarily_unavailable",
                "error_description": "Too many requests from this address; try again later.",
            })),
        )
            .into_response()
    } else {
        (
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts from your network. Wait a moment, then go back and try again.",
        )
            .into_response()
    };
    if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    crate::web::no_store(resp.headers_mut());
    resp
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_guessable_submissions_are_limited() {
        let post = Method::POST;
        assert_eq!(Bucket::of(&post, "/token"), Some(Bucket::Token));
        assert_eq!(Bucket::of(&post, "/login/password"), Some(Bucket::SignIn));
        assert_eq!(
            Bucket::of(&post, "/login"),
            None,
            "the email step guesses nothing"
        );
        assert_eq!(Bucket::of(&post, "/login/mfa"), Some(Bucket::SignIn));
        assert_eq!(
            Bucket::of(&post, "/password/reset/new"),
            Some(Bucket::PasswordReset)
        );
        assert_eq!(Bucket::of(&Method::GET, "/login"), None);
        assert_eq!(Bucket::of(&post, "/loginx"), None);
        assert_eq!(Bucket::of(&post, "/v1.0/users"), None);
    }

    #[test]
    fn a_client_over_its_limit_waits_and_others_and_exempt_ones_do_not() {
        let limits = RateLimits::new(&RateLimitSettings {
            sign_in_per_minute: 3,
            token_per_minute: 0,
            password_reset_per_minute: 1,
            exempt: vec!["10.0.0.0/8".parse().unwrap()],
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(limits.check(Bucket::SignIn, a), Ok(()));
        }
        let wait = limits.check(Bucket::SignIn, a).unwrap_err();
        assert!((1..=20).contains(&wait), "{wait}");
        assert_eq!(limits.check(Bucket::SignIn, b), Ok(()), "per client");
        assert_eq!(limits.check(Bucket::PasswordReset, a), Ok(()), "per bucket");
        assert!(limits.check(Bucket::PasswordReset, a).is_err());
        for _ in 0..100 {
            assert_eq!(limits.check(Bucket::Token, a), Ok(()), "0 is off");
            assert_eq!(
                limits.check(Bucket::SignIn, "10.1.2.3".parse().unwrap()),
                Ok(()),
                "exempt"
            );
        }
    }
}
