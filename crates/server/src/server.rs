//! Starting and stopping a tenant: open the store, sync apps, make sure keys exist, serve HTTP
//! (TLS with rustls unless plain HTTP is configured), and run the housekeeping tasks.

use crate::app::router;
use crate::config::{Config, ConfigError, PartnerConfig, PartnerCredential, Problem};
use crate::passwords::Passwords;
use crate::protection::{LoadError, Prepared, Protection};
use crate::state::{AppState, Clock, Partner, SystemClock};
use crate::{keys, tls};
use anyhow::Context;
use axum_server::Handle;
use protocol::jwt::{SigningAlg, SigningKey};
use signin::partner_check::{Occasion, check_partners};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// How often keys are re-read from the store (so `tenantd keys rotate` takes effect), and
/// policies recompiled if another replica changed them through the admin API.
const KEY_RELOAD: Duration = Duration::from_secs(30);
/// How often expired rows are purged.
const PURGE: Duration = Duration::from_secs(300);

/// Assemble the state for a config whose named files were read and checked (`prepared`):
/// first what needs only files (password hashing, the partners' relying parties), so a bad
/// file is reported before anything exists; then the store is opened, apps and partners are
/// written, keys are created, and the policies created through the admin API are added.
pub async fn build_state(
    config: Config,
    prepared: Prepared,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<AppState> {
    let passwords = Passwords::new(&config.passwords)?;
    let mut partners = Vec::new();
    let mut problems = Vec::new();
    for (i, p) in config.partners.iter().enumerate() {
        match partner(&config.issuer, p.clone()) {
            Ok(p) => partners.push(p),
            Err(e) => problems.push(Problem::new(
                config.source.clone(),
                format!("partners[{i}]"),
                format!("settings this tenant can talk to the partner with ({e:#})"),
            )),
        }
    }
    if !problems.is_empty() {
        return Err(ConfigError {
            file: config.source.clone(),
            problems,
        }
        .into());
    }
    let store = signin::vault::open_store(&config).await.with_context(|| {
        format!(
            "opening database {}",
            crate::config::redact_url(&config.database_url)
        )
    })?;
    let now = clock.now();
    let file_apps = config
        .apps
        .iter()
        .map(|app| Ok((app.client_id.clone(), serde_json::to_string(app)?)))
        .collect::<Result<Vec<_>, serde_json::Error>>()?;
    // A client id in the file that is also registered through the API is refused here.
    store
        .sync_config_apps(&file_apps, now)
        .await
        .context("writing the config file's apps")?;
    keys::ensure_keys(&store, now).await?;
    let grace = config.tokens.id_token.max(config.tokens.access_token);
    let keyset = keys::load(&store, grace, now).await?;
    for p in &config.partners {
        store
            .upsert_partner(&p.id, &p.public_json().to_string(), now)
            .await?;
    }
    let protection = Protection::with_files(config.risk.clone(), prepared, &store)
        .await
        .with_context(|| {
            format!(
                "{}: the Conditional Access policies with those created through the admin API",
                config.source
            )
        })?;
    Ok(AppState::new(
        config, store, clock, passwords, keyset, partners, protection,
    ))
}

/// A partner's relying party: its own TLS trust and timeouts, and the credential.
fn partner(issuer: &str, config: PartnerConfig) -> anyhow::Result<Partner> {
    use federation::{Credential, PartnerSettings, Upstream};
    let key = |pem: &str| {
        [SigningAlg::ES256, SigningAlg::RS256]
            .into_iter()
            .find_map(|alg| SigningKey::from_pkcs8_pem(alg, pem, 0, None).ok())
    };
    let credential = match &config.credential {
        PartnerCredential::Secret(s) => Credential::Secret(s.clone()),
        PartnerCredential::PrivateKey { path, pem } => {
            Credential::private_key(key(pem).with_context(|| {
                format!(
                    "partner {}: {} is not a PKCS#8 ES256 or RS256 private key",
                    config.id,
                    path.display()
                )
            })?)
        }
    };
    let http = tls::http_client(config.ca_file.as_deref(), config.timeout)
        .with_context(|| format!("partner {}: TLS trust", config.id))?;
    let settings = PartnerSettings {
        id: config.id.clone(),
        issuer: config.issuer.clone(),
        client_id: config.client_id.clone(),
        credential,
        redirect_uri: format!("{issuer}{}", crate::federated::CALLBACK_PATH),
        scopes: config.scopes.clone(),
        claim_mapping: config.claim_mapping.clone(),
    };
    Ok(Partner::new(config, Upstream::new(settings, http)))
}

/// A running tenant.
pub struct Tenant {
    /// The bound address.
    pub addr: SocketAddr,
    /// Its state (for tests and the lab).
    pub state: AppState,
    handle: Handle<SocketAddr>,
    server: JoinHandle<std::io::Result<()>>,
    housekeeping: JoinHandle<()>,
    partner_check: JoinHandle<()>,
    signal_streams: Option<JoinHandle<()>>,
    /// The Shared Signals push worker.
    ssf_push: JoinHandle<()>,
}

impl Tenant {
    /// Start serving on an already bound listener (tests bind port 0 first to learn the issuer).
    /// The files the config names are read and checked first: a bad one is a [`ConfigError`]
    /// (with every problem) and nothing is created.
    pub async fn start(
        config: Config,
        listener: std::net::TcpListener,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let prepared = match Prepared::read_blocking(config.risk.clone()).await {
            Ok(p) => p,
            Err(LoadError::Files(problems)) => {
                return Err(ConfigError {
                    file: config.source.clone(),
                    problems,
                }
                .into());
            }
            Err(e) => return Err(e.into()),
        };
        Self::start_prepared(config, prepared, listener, clock).await
    }

    /// [`Tenant::start`] with the intel and file policies already read (by
    /// [`Config::load_checked`]). A TLS certificate and key rustls refuses, or a partner this
    /// tenant cannot build a client for, is a [`ConfigError`], found before anything is created.
    pub async fn start_prepared(
        config: Config,
        prepared: Prepared,
        listener: std::net::TcpListener,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        // Recording starts with the first tenant of the process (a no-op for the others).
        crate::metrics::handle();
        let tls = match &config.tls {
            Some(files) => Some(tls::server_config(files).map_err(|e| ConfigError {
                file: config.source.clone(),
                problems: vec![Problem::new(
                    files.cert.display().to_string(),
                    "server.tls",
                    format!("a certificate chain and its private key ({e:#})"),
                )],
            })?),
            None => None,
        };
        let state = build_state(config, prepared, clock).await?;
        let addr = listener.local_addr()?;
        let handle = Handle::new();
        let app = router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let server = match tls {
            Some(cfg) => {
                let s =
                    hardened(axum_server::from_tcp_rustls(listener, cfg)?).handle(handle.clone());
                tokio::spawn(async move { s.serve(app).await })
            }
            None => {
                let s = hardened(axum_server::from_tcp(listener)?).handle(handle.clone());
                tokio::spawn(async move { s.serve(app).await })
            }
        };
        let housekeeping = tokio::spawn(housekeeping(state.clone()));
        tracing::info!(tenant = %state.config.tenant_id, issuer = %state.config.issuer, %addr, "tenant started");
        // In the background: a partner that is down or slow must not hold up serving, and what
        // the check finds is only reported (sign-ins fail closed on their own).
        let partner_check = spawn_partner_check(&state, Occasion::StartUp);
        let signal_streams = spawn_signal_streams(&state);
        let ssf_push = crate::ssf::spawn_push_worker(state.clone());
        Ok(Self {
            addr,
            state,
            handle,
            server,
            housekeeping,
            partner_check,
            signal_streams,
            ssf_push,
        })
    }

    /// Stop accepting, finish in-flight requests (up to 10 s), close the store.
    pub async fn shutdown(self) {
        self.handle.graceful_shutdown(Some(Duration::from_secs(10)));
        self.housekeeping.abort();
        self.partner_check.abort();
        if let Some(streams) = &self.signal_streams {
            streams.abort();
        }
        self.ssf_push.abort();
        let _ = self.server.await;
        self.state.store.close().await;
    }
}

async fn housekeeping(state: AppState) {
    let mut keys_tick = tokio::time::interval(KEY_RELOAD);
    let mut purge_tick = tokio::time::interval(PURGE);
    keys_tick.tick().await;
    let mut hangup = hangup_signal();
    loop {
        tokio::select! {
            Some(()) = hangup.recv() => {
                reload_protection(&state).await;
                // Detached, so a slow partner does not hold up key reloads and purges.
                drop(spawn_partner_check(&state, Occasion::Reload));
            }
            _ = keys_tick.tick() => {
                reload_keys(&state).await;
                follow_policies(&state).await;
            }
            _ = purge_tick.tick() => {
                let now = state.now();
                if let Err(e) = state.store.purge_expired(now).await {
                    tracing::warn!(error = %e, "purging expired rows failed");
                }
                state.rate_limits.forget_idle();
                purge_retained(&state, now).await;
                // A partner's event older than a receiver accepts cannot come again.
                if let Err(e) = state.store.purge_received_signals(now - federation::signals::MAX_SET_AGE_SECS).await {
                    tracing::warn!(error = %e, "purging received signals failed");
                }
                // Smart lockout forgets an account's count a day after its last wrong password.
                if let Err(e) = state.store.purge_lockouts(now - 86_400).await {
                    tracing::warn!(error = %e, "purging lockout counts failed");
                }
                // Delivered and refused SETs are kept a week for the admin API, then go.
                if let Err(e) = state.store.purge_ssf_outbox(now - 7 * 86_400).await {
                    tracing::warn!(error = %e, "purging the shared signals outbox failed");
                }
                if let Err(e) = state.store.delete_signing_keys_retired_before(now - state.key_grace()).await {
                    tracing::warn!(error = %e, "deleting old keys failed");
                }
            }
        }
    }
}

/// Recompiles the policies if another replica changed them; a failure keeps the current ones.
pub async fn follow_policies(state: &AppState) {
    match state.protection.follow_store(&state.store).await {
        Ok(true) => tracing::info!("policies changed in the database: recompiled"),
        Ok(false) => {}
        Err(e) => {
            tracing::error!(error = %e, "recompiling the policies after a change in the database failed; keeping the current ones")
        }
    }
}

/// Rows of each kind one retention batch deletes.
const RETENTION_BATCH: i64 = 1_000;

/// Deletes what is older than `[retention]` keeps, a batch at a time with a pause between, so
/// requests get the database in between however much has piled up.
async fn purge_retained(state: &AppState, now: i64) {
    let cut_offs = state.config.retention.cut_offs(now);
    let mut total = store::Purged::default();
    loop {
        match state.store.purge_retained(&cut_offs, RETENTION_BATCH).await {
            Ok(p) => {
                total.sign_ins += p.sign_ins;
                total.detections += p.detections;
                total.history += p.history;
                total.audits += p.audits;
                if !p.full(RETENTION_BATCH) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "retention purge failed");
                break;
            }
        }
    }
    if total != store::Purged::default() {
        tracing::info!(
            sign_ins = total.sign_ins,
            detections = total.detections,
            history = total.history,
            audits = total.audits,
            "retention: old rows deleted"
        );
    }
}

/// Longest a client may take to send a request's head (its line and headers), and a new
/// connection its first request (the TLS handshake has its own 10 s): a slow client cannot
/// hold connections open for free.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head an HTTP/1 client may send, and most headers (an HTTP/2 header list is
/// held to the same size).
const MAX_HEAD_BYTES: usize = 32 * 1024;
const MAX_HEADERS: usize = 64;

/// The server with the limits against slow and oversized clients.
fn hardened<A: axum_server::Address, Acc>(
    mut server: axum_server::Server<A, Acc>,
) -> axum_server::Server<A, Acc> {
    let http = server.http_builder();
    http.http1()
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS);
    http.http2()
        .max_header_list_size(u32::try_from(MAX_HEAD_BYTES).unwrap_or(u32::MAX));
    server.first_request_timeout(HEAD_TIMEOUT)
}

/// SIGHUP, as a channel (nothing arrives where there is no such signal).
fn hangup_signal() -> tokio::sync::mpsc::Receiver<()> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    #[cfg(unix)]
    if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        tokio::spawn(async move {
            while s.recv().await.is_some() {
                if tx.send(()).await.is_err() {
                    break;
                }
            }
        });
    }
    #[cfg(not(unix))]
    drop(tx);
    rx
}

/// Re-read intel and policies (SIGHUP); a bad file keeps the current ones and says why. (The
/// partners are checked again too; see the housekeeping loop.)
pub async fn reload_protection(state: &AppState) {
    match state.protection.reload(&state.store).await {
        Ok(l) => {
            tracing::info!(intel = %l.intel, policies = l.policies, "intel and policies reloaded")
        }
        Err(e) => {
            tracing::error!(error = %e, "reloading intel and policies failed; keeping the current ones")
        }
    }
}

/// How often the streams of shared signals are set up again at their partners (which also
/// repairs one a partner lost or changed).
const STREAM_CHECK: Duration = Duration::from_secs(600);

/// How often a polled stream is polled when the partner had nothing.
const POLL_EVERY: Duration = Duration::from_secs(1);

/// Follows, in the background, the stream of shared signals from each partner with
/// `shared_signals = true` (see [`follow_partner`]). `None` when no partner sends signals.
fn spawn_signal_streams(state: &AppState) -> Option<JoinHandle<()>> {
    let partners: Vec<String> = state
        .config
        .partners
        .iter()
        .filter(|p| p.shared_signals)
        .map(|p| p.id.clone())
        .collect();
    if partners.is_empty() {
        return None;
    }
    let state = state.clone();
    Some(tokio::spawn(async move {
        futures::future::join_all(partners.iter().map(|id| follow_partner(&state, id))).await;
    }))
}

/// How long a pushed stream's verification event may take to arrive before this tenant
/// concludes that the partner's pushes do not reach it.
const PUSH_VERIFY_WAIT: Duration = Duration::from_secs(5);

/// Sets up the stream from `partner_id` at the partner, and again every [`STREAM_CHECK`]; a
/// polled one is long-polled without pause (a partner that answers at once with nothing, every
/// [`POLL_EVERY`]). A pushed one must bring its verification event within
/// [`PUSH_VERIFY_WAIT`]: when it does not (the partner cannot reach this tenant's push
/// endpoint, or does not trust its certificate), the stream is polled until the next check,
/// which tries push again. A partner that cannot be reached is tried again with back-off, 2 s
/// doubling to 5 min.
async fn follow_partner(state: &AppState, partner_id: &str) {
    use signin::config::SignalsDelivery;
    use signin::guest_signals;
    const FIRST_RETRY: Duration = Duration::from_secs(2);
    let Some(configured) = state.partner(partner_id).map(|p| p.config.signals_delivery) else {
        return;
    };
    let mut delivery = configured;
    let mut retry = FIRST_RETRY;
    let mut set_up: Option<tokio::time::Instant> = None;
    let mut access: Option<(String, tokio::time::Instant)> = None;
    loop {
        if set_up.is_none_or(|t| t.elapsed() >= STREAM_CHECK) {
            let connected = match guest_signals::connect(state, partner_id, configured).await {
                Ok(c)
                    if c.delivery == SignalsDelivery::Push
                        && !push_verified(state, partner_id).await =>
                {
                    tracing::warn!(partner = %partner_id, stream = %c.stream_id, wait_secs = PUSH_VERIFY_WAIT.as_secs(), "the partner's pushed signals do not reach this tenant (can the partner reach its push endpoint, and does it trust its certificate?); polling instead until the next check");
                    guest_signals::connect(state, partner_id, SignalsDelivery::Poll).await
                }
                other => other,
            };
            match connected {
                Ok(c) => {
                    tracing::info!(partner = %partner_id, stream = %c.stream_id, delivery = ?c.delivery, "receiving shared signals");
                    delivery = c.delivery;
                    set_up = Some(tokio::time::Instant::now());
                    retry = FIRST_RETRY;
                }
                Err(e) => {
                    tracing::warn!(partner = %partner_id, error = %e, retry_secs = retry.as_secs(), "could not set up the stream of shared signals; trying again");
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(Duration::from_secs(300));
                    continue;
                }
            }
        }
        if delivery == SignalsDelivery::Push {
            tokio::time::sleep(STREAM_CHECK).await;
            continue;
        }
        // A token is renewed before it expires, so no poll is refused for an expired one.
        let token = match access
            .as_ref()
            .filter(|(_, renew)| tokio::time::Instant::now() < *renew)
        {
            Some((t, _)) => t.clone(),
            None => match state.partner(partner_id) {
                Some(p) => match p
                    .upstream
                    .client_credentials_token(federation::signals::MANAGE_SCOPE, state.now())
                    .await
                {
                    Ok(t) => {
                        access = Some((
                            t.secret.clone(),
                            tokio::time::Instant::now() + renew_after(t.expires_in),
                        ));
                        t.secret
                    }
                    Err(e) => {
                        tracing::warn!(partner = %partner_id, error = %e, "no token to poll the partner's signals with; trying again");
                        tokio::time::sleep(retry).await;
                        retry = (retry * 2).min(Duration::from_secs(300));
                        continue;
                    }
                },
                None => return,
            },
        };
        let polled_at = tokio::time::Instant::now();
        match guest_signals::poll(state, partner_id, &token).await {
            Ok(received) => {
                retry = FIRST_RETRY;
                // A long poll comes back when a SET came or the partner's hold ended: poll
                // again at once. One that came back at once with nothing is a partner that
                // does not hold polls: wait before the next.
                if received == 0 && polled_at.elapsed() < POLL_EVERY {
                    tokio::time::sleep(POLL_EVERY).await;
                }
            }
            Err(e) => {
                // The token may have expired, or the stream gone: both are had again.
                tracing::warn!(partner = %partner_id, error = %e, retry_secs = retry.as_secs(), "polling the partner's signals failed; trying again");
                access = None;
                set_up = None;
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(Duration::from_secs(300));
            }
        }
    }
}

/// Whether the verification event of the stream just set up from `partner_id` arrives within
/// [`PUSH_VERIFY_WAIT`].
async fn push_verified(state: &AppState, partner_id: &str) -> bool {
    let started = tokio::time::Instant::now();
    loop {
        if signin::guest_signals::verified(state, partner_id)
            .await
            .unwrap_or(false)
        {
            return true;
        }
        if started.elapsed() >= PUSH_VERIFY_WAIT {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How soon to renew a token that lasts `expires_in`: a minute before it ends (half-way through
/// a short one), or after five minutes when the partner did not say.
fn renew_after(expires_in: Option<Duration>) -> Duration {
    let lasts = expires_in.unwrap_or(Duration::from_secs(360));
    lasts - Duration::from_secs(60).min(lasts / 2)
}

/// Check every partner (discovery, JWKS, the risk claim) in the background; findings are
/// logged as warnings with what to fix.
fn spawn_partner_check(state: &AppState, occasion: Occasion) -> JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move {
        check_partners(&state, occasion).await;
    })
}

/// Re-read keys from the store and swap them in.
pub async fn reload_keys(state: &AppState) {
    match keys::load(&state.store, state.key_grace(), state.now()).await {
        Ok(k) => state.set_keys(k),
        Err(e) => {
            tracing::warn!(error = %e, "reloading signing keys failed; keeping the current ones")
        }
    }
}

/// `tenantd serve`: bind the configured address and serve until Ctrl-C / SIGTERM, with the
/// intel and file policies [`Config::load_checked`] read.
pub async fn serve(config: Config, prepared: Prepared) -> anyhow::Result<()> {
    let stop = shutdown_signal();
    let listener = std::net::TcpListener::bind(config.listen)
        .with_context(|| format!("binding {}", config.listen))?;
    let tenant = Tenant::start_prepared(config, prepared, listener, Arc::new(SystemClock)).await?;
    let scheme = if tenant.state.config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    // A log line, not a print: with `--log-format json` every line of output is JSON.
    tracing::info!(
        tenant = %tenant.state.config.tenant_id,
        issuer = %tenant.state.config.issuer,
        "listening on {scheme}://{}",
        tenant.addr
    );
    stop.await;
    tracing::info!("shutting down");
    tenant.shutdown().await;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM. The SIGTERM handler is installed when this is called, not
/// when the future is first polled: called before a server starts answering, a SIGTERM sent as
/// soon as it is ready stops it cleanly, where the signal's default action would kill it (and
/// the sign-in log's last batch with it). Ctrl-C is handled from the first poll, so at a
/// terminal it still stops a start-up at once.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        #[cfg(unix)]
        let term = async move {
            match terminate {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signals_token_is_renewed_before_it_expires() {
        let at = |s: Option<u64>| renew_after(s.map(Duration::from_secs));
        assert_eq!(at(Some(3600)), Duration::from_secs(3540));
        assert_eq!(at(Some(300)), Duration::from_secs(240));
        assert_eq!(at(Some(60)), Duration::from_secs(30));
        assert_eq!(at(Some(0)), Duration::ZERO);
        assert_eq!(at(None), Duration::from_secs(300));
    }
}
