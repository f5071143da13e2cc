//! The shared state of a running tenant: its [`Directory`] (config, store, clock, keys, apps,
//! partners) and what only HTTP needs (cookie names, the discovery and JWKS documents).

use crate::config::Config;
use crate::passwords::Passwords;
use crate::protection::Protection;
use bytes::Bytes;
use protocol::jwt::KeySet;
pub use signin::{App, Clock, Directory, OffsetClock, Partner, SystemClock};
use std::ops::Deref;
use std::sync::{Arc, RwLock};
use store::Store;

/// Cookie names, namespaced per tenant so two tenants on one host never share a cookie.
#[derive(Debug, Clone)]
pub struct CookieNames {
    /// Browser session.
    pub session: String,
    /// CSRF double-submit token.
    pub csrf: String,
    /// Whether cookies carry `Secure`.
    pub secure: bool,
}

/// Shared state. Every request clones it (each extractor and middleware takes its own), so it
/// is one `Arc`: a clone is one reference count, not one per field. Derefs to [`Shared`], which
/// derefs to the [`Directory`], so `state.store`, `state.config`, `state.now()`,
/// `state.app(..)` read the directory and `state.cookies` the HTTP side.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// What [`AppState`] shares: the directory and what only HTTP needs.
pub struct Shared {
    directory: Arc<Directory>,
    /// Cookie names.
    pub cookies: CookieNames,
    /// The discovery document, serialised once.
    pub discovery: Bytes,
    /// Requests per client IP at the guessable endpoints (`[rate_limits]`).
    pub rate_limits: crate::rate_limits::RateLimits,
    /// Each route's request counter and duration histogram.
    pub http_metrics: crate::metrics::HttpMetrics,
    jwks: RwLock<Bytes>,
}

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl Deref for Shared {
    type Target = Directory;
    fn deref(&self) -> &Directory {
        &self.directory
    }
}

impl AppState {
    /// Assemble the state.
    pub fn new(
        config: Config,
        store: Store,
        clock: Arc<dyn Clock>,
        passwords: Passwords,
        keys: KeySet,
        partners: Vec<Partner>,
        protection: Protection,
    ) -> Self {
        let directory = Directory::new(config, store, clock, passwords, keys, partners, protection);
        Self::from_directory(Arc::new(directory))
    }

    /// Serve a directory: derive the cookie names and the discovery and JWKS documents.
    pub fn from_directory(directory: Arc<Directory>) -> Self {
        let config = &directory.config;
        let prefix = config.cookie_prefix();
        let cookies = CookieNames {
            session: format!("{prefix}-session"),
            csrf: format!("{prefix}-csrf"),
            secure: config.tls.is_some(),
        };
        let mut discovery = protocol::discovery::ProviderMetadata::new(
            &config.issuer,
            &["user_type", "idp", "home_tenant", "user_risk"],
        );
        if config.registration.enabled {
            discovery = discovery.with_registration();
        }
        // A resource's block page links to this page: only when a reset can be done there.
        if !config.sspr.enabled {
            discovery = discovery.without_password_reset();
        }
        let discovery = Bytes::from(serde_json::to_vec(&discovery).unwrap_or_default());
        let jwks = jwks_bytes(&directory.keys(), directory.now());
        let rate_limits = crate::rate_limits::RateLimits::new(&config.rate_limits);
        Self(Arc::new(Shared {
            directory,
            cookies,
            discovery,
            rate_limits,
            http_metrics: crate::metrics::HttpMetrics::default(),
            jwks: RwLock::new(jwks),
        }))
    }

    /// The directory this state serves.
    pub fn directory(&self) -> &Arc<Directory> {
        &self.directory
    }

    /// The JWKS document.
    pub fn jwks(&self) -> Bytes {
        self.jwks
            .read()
            .map(|j| j.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Swap in a freshly loaded key set and the JWKS document that publishes it.
    pub fn set_keys(&self, keys: KeySet) {
        let jwks = jwks_bytes(&keys, self.now());
        self.directory.set_keys(keys);
        match self.jwks.write() {
            Ok(mut j) => *j = jwks,
            Err(p) => *p.into_inner() = jwks,
        }
    }
}

fn jwks_bytes(keys: &KeySet, now: i64) -> Bytes {
    Bytes::from(serde_json::to_vec(&keys.jwks(now)).unwrap_or_default())
}
