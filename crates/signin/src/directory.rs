//! A tenant's directory: its config, store, clock, password hashing, apps, partners, ID
//! Protection and signing keys. Everything a sign-in needs from the tenant, with no HTTP in it;
//! the server wraps it with its HTTP-only parts (cookie names, cached documents).

use crate::apps::App;
use crate::config::{Config, PartnerConfig};
use crate::mail::Mailer;
use crate::passwords::Passwords;
use crate::protection::Protection;
use protocol::jwt::KeySet;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
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
    /// Whether a token without the mapped risk claim, or with one that cannot be read, was
    /// warned about: a wrong claim mapping shows in every token, so once per partner says it
    /// without flooding the log.
    pub(crate) risk_claim_warned: [AtomicBool; 2],
}

impl Partner {
    /// A partner with nothing learned or warned about yet.
    pub fn new(config: PartnerConfig, upstream: federation::Upstream) -> Self {
        Self {
            config,
            upstream,
            profile: std::sync::Mutex::new(None),
            risk_claim_warned: Default::default(),
        }
    }
}

/// A tenant's directory. Built once at start-up; only the key set and what [`Protection`]
/// holds change while it runs.
pub struct Directory {
    /// The validated config.
    pub config: Config,
    /// Storage.
    pub store: Store,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Password hashing.
    pub passwords: Passwords,
    /// The config file's apps by client id (registered apps are read from the store).
    pub apps: HashMap<String, Arc<App>>,
    /// Partners by id.
    pub partners: HashMap<String, Arc<Partner>>,
    /// Partner ids by email domain (home realm discovery).
    partner_domains: HashMap<String, String>,
    /// ID Protection: intel and policies (reloadable).
    pub protection: Protection,
    keys: RwLock<Arc<KeySet>>,
    /// The key authorization codes are sealed with, read from the store at first use.
    pub(crate) code_key: tokio::sync::OnceCell<protocol::sealed::SealingKey>,
    /// The users this replica issued codes to, for their exchange.
    pub(crate) issued_users: crate::authorization_codes::IssuedUsers,
    /// Where mail goes (`[mail]`); `None` when the tenant sends none.
    pub mailer: Option<Arc<Mailer>>,
    /// The sign-in counter's series seen so far.
    pub(crate) sign_in_counts: crate::signin_log::SignInCounts,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("tenant_id", &self.config.tenant_id)
            .field("apps", &self.apps.len())
            .field("partners", &self.partners.len())
            .finish_non_exhaustive()
    }
}

impl Directory {
    /// Assemble the directory.
    pub fn new(
        config: Config,
        store: Store,
        clock: Arc<dyn Clock>,
        passwords: Passwords,
        keys: KeySet,
        partners: Vec<Partner>,
        protection: Protection,
    ) -> Self {
        let apps = config
            .apps
            .iter()
            .chain(std::iter::once(&crate::apps::portal_app(&config)))
            .map(|a| (a.client_id.clone(), Arc::new(App::from_config(a))))
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
        // The config was validated, so this fails only if the system's TLS setup does; the
        // tenant then runs without mail (codes by email are not offered) and says so.
        let mailer = match Mailer::new(&config.mail) {
            Ok(m) => m.map(Arc::new),
            Err(e) => {
                tracing::error!(error = %e, "mail is off: the SMTP client could not be set up");
                None
            }
        };
        if matches!(mailer.as_deref(), Some(Mailer::Outbox)) {
            tracing::warn!(
                "[mail] outbox = true: mail is kept in the database and shown at /dev/outbox, never sent (development only)"
            );
        }
        Self {
            config,
            store,
            clock,
            passwords,
            apps,
            partners,
            partner_domains,
            protection,
            keys: RwLock::new(Arc::new(keys)),
            code_key: tokio::sync::OnceCell::new(),
            issued_users: crate::authorization_codes::IssuedUsers::default(),
            mailer,
            sign_in_counts: crate::signin_log::SignInCounts::default(),
        }
    }

    /// Unix seconds now.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The current key set.
    pub fn keys(&self) -> Arc<KeySet> {
        self.keys
            .read()
            .map(|k| k.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Swap in a freshly loaded key set. (A running server calls its own `set_keys`, which
    /// also refreshes the JWKS document it publishes.)
    pub fn set_keys(&self, keys: KeySet) {
        match self.keys.write() {
            Ok(mut k) => *k = Arc::new(keys),
            Err(p) => *p.into_inner() = Arc::new(keys),
        }
    }

    /// Looks up an app: the config file's, else a registered one, read from the store so that
    /// a change made on any replica holds here at once.
    pub async fn app(&self, client_id: &str) -> Result<Option<Arc<App>>, store::StoreError> {
        if let Some(app) = self.apps.get(client_id) {
            return Ok(Some(app.clone()));
        }
        match self.store.app_record(client_id).await? {
            // A config-file app this replica's file does not have: not ours to serve.
            Some(r) if r.source != store::AppSource::Config => {
                Ok(Some(Arc::new(App::from_record(&r)?)))
            }
            _ => Ok(None),
        }
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

/// Whether `email` looks like an address a user could sign in with (a sign-in name, an
/// invitation, a leaked-credential pair): a local part, `@`, a dotted domain, at most 254
/// bytes, no whitespace or control characters. Deliverability is not checked.
pub fn plausible_email(email: &str) -> bool {
    email.len() <= 254
        && email.split_once('@').is_some_and(|(l, d)| {
            !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}
