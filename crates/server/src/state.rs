//! The shared state of a running tenant: config, store, keys, apps, and the clock.

use crate::config::{AppConfig, Config, PartnerConfig};
use crate::passwords::Passwords;
use crate::secrets;
use bytes::Bytes;
use protocol::jwt::KeySet;
use std::collections::HashMap;
use std::ops::Deref;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use store::Store;

/// Where "now" comes from. Tests move it forward instead of sleeping.
pub trait Clock: Send + Sync + 'static {
    /// Unix seconds.
    fn now(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    }
}

/// The system clock plus an adjustable offset, for tests of expiry.
#[derive(Debug, Default)]
pub struct OffsetClock(AtomicI64);

impl OffsetClock {
    /// Move time forward by `secs`.
    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> i64 {
        SystemClock.now() + self.0.load(Ordering::SeqCst)
    }
}

/// A registered app with its secret reduced to a digest.
#[derive(Debug)]
pub struct App {
    /// The registration.
    pub config: AppConfig,
    /// SHA-256 of the client secret.
    pub secret_digest: Option<[u8; 32]>,
}

/// A partner tenant: its settings and the relying party that federates sign-ins to it.
#[derive(Debug)]
pub struct Partner {
    /// The settings.
    pub config: PartnerConfig,
    /// The upstream relying party.
    pub upstream: federation::Upstream,
    /// The claim profile of the partner's tokens as last read or written here: a token that
    /// changes nothing in a learned profile is judged against it without a write.
    pub profile: std::sync::Mutex<Option<store::PartnerProfile>>,
}

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

/// Shared state; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// What [`AppState`] holds.
pub struct Inner {
    /// The validated config.
    pub config: Config,
    /// Storage.
    pub store: Store,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Password hashing.
    pub passwords: Passwords,
    /// Cookie names.
    pub cookies: CookieNames,
    /// Apps by client id.
    pub apps: HashMap<String, Arc<App>>,
    /// Partners by id.
    pub partners: HashMap<String, Arc<Partner>>,
    /// Partner ids by email domain (home realm discovery).
    partner_domains: HashMap<String, String>,
    /// ID Protection: intel and policies (reloadable).
    pub protection: crate::protection::Protection,
    /// The discovery document, serialised once.
    pub discovery: Bytes,
    keys: RwLock<Arc<KeySet>>,
    jwks: RwLock<Bytes>,
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
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
        protection: crate::protection::Protection,
    ) -> Self {
        let prefix = config.cookie_prefix();
        let cookies = CookieNames {
            session: format!("{prefix}-session"),
            csrf: format!("{prefix}-csrf"),
            secure: config.tls.is_some(),
        };
        let apps = config
            .apps
            .iter()
            .map(|a| {
                let app = App {
                    secret_digest: a.client_secret.as_deref().map(secrets::secret_digest),
                    config: a.clone(),
                };
                (a.client_id.clone(), Arc::new(app))
            })
            .collect();
        let partner_domains = partners
            .iter()
            .flat_map(|p| {
                p.config
                    .domains
                    .iter()
                    .map(|d| (d.clone(), p.config.id.clone()))
            })
            .collect();
        let partners = partners
            .into_iter()
            .map(|p| (p.config.id.clone(), Arc::new(p)))
            .collect();
        let discovery = protocol::discovery::ProviderMetadata::new(
            &config.issuer,
            &["user_type", "idp", "home_tenant", "user_risk"],
        );
        let discovery = Bytes::from(serde_json::to_vec(&discovery).unwrap_or_default());
        let now = clock.now();
        let jwks = jwks_bytes(&keys, now);
        Self(Arc::new(Inner {
            config,
            store,
            clock,
            passwords,
            cookies,
            apps,
            partners,
            partner_domains,
            protection,
            discovery,
            keys: RwLock::new(Arc::new(keys)),
            jwks: RwLock::new(jwks),
        }))
    }

    /// Unix seconds now.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The current key set.
    pub fn keys(&self) -> Arc<KeySet> {
        self.0
            .keys
            .read()
            .map(|k| k.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// The JWKS document.
    pub fn jwks(&self) -> Bytes {
        self.0
            .jwks
            .read()
            .map(|j| j.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Swap in a freshly loaded key set.
    pub fn set_keys(&self, keys: KeySet) {
        let jwks = jwks_bytes(&keys, self.now());
        match self.0.keys.write() {
            Ok(mut k) => *k = Arc::new(keys),
            Err(p) => *p.into_inner() = Arc::new(keys),
        }
        match self.0.jwks.write() {
            Ok(mut j) => *j = jwks,
            Err(p) => *p.into_inner() = jwks,
        }
    }

    /// Look up an app.
    pub fn app(&self, client_id: &str) -> Option<Arc<App>> {
        self.apps.get(client_id).cloned()
    }

    /// A partner by id.
    pub fn partner(&self, id: &str) -> Option<Arc<Partner>> {
        self.partners.get(id).cloned()
    }

    /// The partner whose users have addresses in `email`'s domain: home realm discovery.
    pub fn partner_for_email(&self, email: &str) -> Option<Arc<Partner>> {
        let (_, domain) = email.rsplit_once('@')?;
        let id = self.partner_domains.get(&domain.to_ascii_lowercase())?;
        self.partner(id)
    }

    /// How long retired keys stay published: the longest JWT lifetime.
    pub fn key_grace(&self) -> i64 {
        self.config
            .tokens
            .id_token
            .max(self.config.tokens.access_token)
    }
}

fn jwks_bytes(keys: &KeySet, now: i64) -> Bytes {
    Bytes::from(serde_json::to_vec(&keys.jwks(now)).unwrap_or_default())
}
