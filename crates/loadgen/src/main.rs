//! `tenantd-loadgen`: drive whole tenantd flows at a chosen concurrency and report throughput,
//! latency percentiles, and the server's memory and CPU.
//!
//! Scenarios: `discovery` and `jwks` (GETs over keep-alive TLS), `refresh` (each worker signs
//! in once, then chains refresh-token grants), `code-flow` (each worker signs in once for a
//! session cookie, then loops authorize → code → token with PKCE), `password-login` (a full
//! password sign-in each time: argon2id-bound), `federated-flow` (a partner's user signs in at a
//! resource tenant as a guest through their home tenant, whose session each worker opened once).
//! `--password-workers` adds password sign-ins beside any of these, for a tenant's memory while
//! it hashes under another load.
//! Loopback only; every run is bounded by time and optionally by count, and stops by itself.

mod cookies;
mod flows;
mod mixed;
mod procfs;
mod signals;
mod spawn;
mod stats;

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use flows::{Steps, Target};
use stats::{Recorder, Summary};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::Barrier;

/// Longest measured run accepted (the benchmark scenarios).
const MAX_DURATION_SECS: u64 = 120;
/// Longest soak (`mixed`) accepted.
const MAX_SOAK_SECS: u64 = 24 * 3600;
/// Errors printed in full (the rest are only counted).
const MAX_ERRORS_SHOWN: usize = 8;

/// Load generator for tenantd: discovery/JWKS fetches, refresh grants, code flows with a
/// session, password sign-ins, and federated guest sign-ins, against tenants on loopback.
#[derive(Debug, Parser)]
#[command(
    name = "tenantd-loadgen",
    version,
    about,
    after_help = "Exit status: 0 every measured operation (and every --password-workers sign-in) succeeded; 3 some failed, or none ran; 1 the run could not be done.\nResults and method: BENCHMARKS.md."
)]
struct Cli {
    /// The tenant's issuer URL (must be a loopback address). For federated-flow: the home
    /// tenant, where the user has a session.
    #[arg(long, visible_alias = "home", default_value = "https://127.0.0.1:9443")]
    issuer: String,
    /// For federated-flow: the resource tenant's issuer URL (loopback), where the client is
    /// registered and the user is an invited guest.
    #[arg(long, default_value = "https://127.0.0.1:9444")]
    resource: String,
    /// CA certificate (PEM) to trust for the server's TLS certificate.
    #[arg(long, default_value = "certs/dev-ca.pem")]
    ca: PathBuf,
    /// What to drive.
    #[arg(long, value_enum, default_value_t = Scenario::Discovery)]
    scenario: Scenario,
    /// Concurrent workers (each one request or flow at a time).
    #[arg(long, short = 'c', default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    concurrency: u32,
    /// Measured seconds (after the warm-up); at most 120 (a day for mixed). Default 10 unless
    /// --requests is given.
    #[arg(long, short = 'd', value_parser = clap::value_parser!(u64).range(1..=MAX_SOAK_SECS))]
    duration: Option<u64>,
    /// Stop after this many measured operations (requests or flows) in total.
    #[arg(long, short = 'n', value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    requests: Option<u64>,
    /// Warm-up seconds before measuring (operations run but are not counted).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(0..=30))]
    warmup: u64,
    /// Use HTTP/2 (ALPN h2) instead of HTTP/1.1.
    #[arg(long)]
    http2: bool,
    /// Connections for discovery/jwks, shared round-robin by the workers (default: one per
    /// worker). Flow scenarios always use one connection (per tenant) and cookie jar per worker.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    connections: Option<u32>,
    /// Runtime threads of the load generator itself.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    threads: u16,
    /// Client id (client_secret_basic); for federated-flow, registered at the resource.
    #[arg(long, default_value = "lab-rp")]
    client_id: String,
    /// Client secret.
    #[arg(
        long,
        default_value = "lab-rp-secret",
        env = "TENANTD_LOADGEN_CLIENT_SECRET"
    )]
    client_secret: String,
    /// Redirect URI registered for the client.
    #[arg(long, default_value = "http://127.0.0.1:9555/callback")]
    redirect_uri: String,
    /// Scope requested.
    #[arg(long, default_value = "openid profile email")]
    scope: String,
    /// User who signs in (for federated-flow: the guest, sent as login_hint).
    #[arg(long, default_value = "alice@contoso.test")]
    username: String,
    /// That user's password.
    #[arg(
        long,
        default_value = "alice-lab-password",
        env = "TENANTD_LOADGEN_PASSWORD"
    )]
    password: String,
    /// A server process to watch, as PID or NAME=PID: its RSS (sampled every 100 ms) and CPU
    /// time. Repeatable, e.g. --server-pid home=1234 --server-pid resource=1235.
    #[arg(long, value_name = "[NAME=]PID", value_parser = parse_server_pid, conflicts_with = "spawn_server")]
    server_pid: Vec<ServerPid>,
    /// Start `tenantd serve --config CONFIG` for the run (and stop it afterwards).
    #[arg(long, value_name = "CONFIG")]
    spawn_server: Option<PathBuf>,
    /// The tenantd binary for --spawn-server (default: next to this one, else $PATH).
    #[arg(long, requires = "spawn_server")]
    server_bin: Option<PathBuf>,
    /// Where the spawned server's output goes (default: discarded).
    #[arg(long, requires = "spawn_server")]
    server_log: Option<PathBuf>,
    /// With --spawn-server: first create --username with --password (`tenantd user add`).
    #[arg(long, requires = "spawn_server")]
    seed_user: bool,
    /// Seconds to let a spawned server settle before its idle RSS is read.
    #[arg(long, default_value_t = 2, requires = "spawn_server", value_parser = clap::value_parser!(u64).range(0..=30))]
    settle: u64,
    /// Print the results as one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Workers doing full password sign-ins beside the scenario's, from the warm-up to the
    /// end, each with its own connection and cookie jar: one tenant's memory while it hashes
    /// passwords under another load (refresh, code-flow). They are counted apart, and the
    /// server's CPU per operation then includes theirs.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=64))]
    password_workers: u32,
    /// For signals: the admin client (client credentials, scope `admin`) at both tenants.
    #[arg(long, default_value = "lab-admin")]
    admin_client_id: String,
    /// For signals: its secret.
    #[arg(
        long,
        default_value = "lab-admin-secret",
        env = "TENANTD_LOADGEN_ADMIN_SECRET"
    )]
    admin_client_secret: String,
    /// For signals: the resource's partner id for the home.
    #[arg(long, default_value = "contoso")]
    partner: String,
    /// For mixed: the guest the resource blocks (a lab user whose home risk is high).
    #[arg(long, default_value = "bob@contoso.test")]
    blocked_user: String,
    /// That guest's password at the home.
    #[arg(long, default_value = "bob-lab-password")]
    blocked_password: String,
    /// For signals: changes sent back to back after the measured ones (events/s).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(0..=100_000))]
    burst: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
enum Scenario {
    /// GET /.well-known/openid-configuration.
    Discovery,
    /// GET /jwks.
    Jwks,
    /// Chained refresh-token grants (one chain per worker).
    Refresh,
    /// authorize with an existing session → code → token exchange (PKCE), per flow.
    CodeFlow,
    /// Full sign-in with the password (prompt=login) → code → token, per flow.
    PasswordLogin,
    /// Guest sign-in: authorize at the resource → home realm discovery → the home's authorize
    /// with its session → the resource's federation callback → code → token, per flow.
    FederatedFlow,
    /// User-risk changes at the home (`--issuer`), one at a time (`--requests`, default
    /// 1,000), each timed until the resource (`--resource`) has applied it (shared signals);
    /// then `--burst` changes back to back for events per second.
    Signals,
    /// The soak: member, guest and blocked-guest sign-ins, refreshes at both tenants and admin
    /// queries, mixed, against the home (`--issuer`) and the resource (`--resource`) for
    /// `--duration` (up to a day), with the `--server-pid` processes' memory every minute.
    Mixed,
}

impl Scenario {
    fn unit(self) -> &'static str {
        match self {
            Self::Discovery | Self::Jwks | Self::Refresh => "req",
            Self::CodeFlow | Self::PasswordLogin | Self::FederatedFlow => "flows",
            Self::Signals => "changes",
            Self::Mixed => "operations",
        }
    }

    fn signs_in(self) -> bool {
        matches!(
            self,
            Self::Refresh | Self::CodeFlow | Self::PasswordLogin | Self::FederatedFlow
        )
    }
}

/// A server process to watch (`--server-pid [NAME=]PID`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct ServerPid {
    name: Option<String>,
    pid: u32,
}

fn parse_server_pid(s: &str) -> Result<ServerPid, String> {
    let (name, pid) = match s.split_once('=') {
        Some((n, p)) => (Some(n.trim()), p),
        None => (None, s),
    };
    if name.is_some_and(|n| {
        n.is_empty()
            || !n
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    }) {
        return Err("NAME must be letters, digits, '-' or '_'".into());
    }
    match pid.trim().parse::<u32>() {
        Ok(pid) if pid > 0 => Ok(ServerPid {
            name: name.map(str::to_owned),
            pid,
        }),
        _ => Err(format!("{pid:?} is not a process id")),
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(usize::from(cli.threads))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(3),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Shared by the workers: when to stop, what counts, the first errors.
struct Control {
    scenario: Scenario,
    /// The tenant the flows start at (for federated-flow: the resource).
    target: Target,
    /// For federated-flow: the home tenant's issuer URL.
    home: String,
    stop: AtomicBool,
    started: OnceLock<Instant>,
    warmup: Duration,
    duration: Duration,
    budget: Option<u64>,
    claimed: AtomicU64,
    /// Errors outside the measured window (set-up, warm-up).
    unmeasured_errors: AtomicU64,
    errors: Mutex<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Warmup,
    Measure,
    Stop,
}

impl Control {
    fn phase(&self) -> Phase {
        if self.stop.load(Ordering::Relaxed) {
            return Phase::Stop;
        }
        let started = *self.started.get_or_init(Instant::now);
        let elapsed = started.elapsed();
        if elapsed < self.warmup {
            return Phase::Warmup;
        }
        if elapsed >= self.warmup + self.duration {
            return Phase::Stop;
        }
        if let Some(budget) = self.budget
            && self.claimed.fetch_add(1, Ordering::Relaxed) >= budget
        {
            return Phase::Stop;
        }
        Phase::Measure
    }

    /// Whether the run is over, without claiming an operation of the budget as
    /// [`Control::phase`] does.
    fn over(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
            || self
                .started
                .get()
                .is_some_and(|s| s.elapsed() >= self.warmup + self.duration)
            || self
                .budget
                .is_some_and(|b| self.claimed.load(Ordering::Relaxed) >= b)
    }

    fn error(&self, worker: u32, e: &anyhow::Error) {
        if let Ok(mut v) = self.errors.lock()
            && v.len() < MAX_ERRORS_SHOWN
        {
            v.push(format!("worker {worker}: {e:#}"));
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<bool> {
    let issuer = cli.issuer.trim_end_matches('/').to_owned();
    check_loopback(&issuer, "--issuer")?;
    if cli.scenario == Scenario::FederatedFlow {
        check_loopback(&cli.resource, "--resource")?;
    }
    if cli.password_workers > 0 && matches!(cli.scenario, Scenario::Signals | Scenario::Mixed) {
        bail!("--password-workers goes with the benchmark scenarios, not signals or mixed");
    }
    let tls = tls_config(&cli.ca, cli.http2)?;
    let probe = client(&tls, cli.http2, None)?;
    if cli.scenario == Scenario::Signals {
        let resource = cli.resource.trim_end_matches('/').to_owned();
        check_loopback(&resource, "--resource")?;
        let browser = client(&tls, cli.http2, Some(Arc::new(cookies::Jar::default())))?;
        let settings = signals::Settings {
            home: issuer.clone(),
            target: Target {
                issuer: resource.clone(),
                client_id: cli.client_id.clone(),
                client_secret: cli.client_secret.clone(),
                redirect_uri: cli.redirect_uri.clone(),
                scope: cli.scope.clone(),
                username: cli.username.clone(),
                password: cli.password.clone(),
            },
            resource,
            admin_id: cli.admin_client_id.clone(),
            admin_secret: cli.admin_client_secret.clone(),
            partner: cli.partner.clone(),
            changes: cli.requests.unwrap_or(1_000),
            burst: cli.burst,
        };
        return signals::run(&probe, &browser, &settings).await;
    }
    if cli.scenario == Scenario::Mixed {
        let resource = cli.resource.trim_end_matches('/').to_owned();
        check_loopback(&resource, "--resource")?;
        let target = |issuer: &str, username: &str, password: &str| Target {
            issuer: issuer.to_owned(),
            client_id: cli.client_id.clone(),
            client_secret: cli.client_secret.clone(),
            redirect_uri: cli.redirect_uri.clone(),
            scope: format!("{} offline_access", cli.scope),
            username: username.to_owned(),
            password: password.to_owned(),
        };
        let settings = mixed::Settings {
            member: target(&issuer, &cli.username, &cli.password),
            guest: target(&resource, &cli.username, &cli.password),
            blocked: target(&resource, &cli.blocked_user, &cli.blocked_password),
            admin_id: cli.admin_client_id.clone(),
            admin_secret: cli.admin_client_secret.clone(),
            concurrency: cli.concurrency,
            duration: Duration::from_secs(cli.duration.unwrap_or(60)),
            servers: cli
                .server_pid
                .iter()
                .map(|s| (s.name.clone().unwrap_or_else(|| s.pid.to_string()), s.pid))
                .collect(),
        };
        let http2 = cli.http2;
        return mixed::run(move |jar| client(&tls, http2, jar), settings).await;
    }
    if cli.duration.is_some_and(|d| d > MAX_DURATION_SECS) {
        bail!("--duration: at most {MAX_DURATION_SECS} s for this scenario (mixed takes longer)");
    }

    let mut spawned = None;
    if let Some(config) = &cli.spawn_server {
        let bin = spawn::server_bin(cli.server_bin.as_deref());
        if cli.seed_user {
            spawn::seed_user(&bin, config, &cli.username, &cli.password).await?;
        }
        if probe.get(format!("{issuer}/healthz")).send().await.is_ok() {
            bail!("something already answers at {issuer}: stop it, or leave out --spawn-server");
        }
        let mut server = spawn::Server::start(&bin, config, cli.server_log.as_deref())?;
        let ready = server.wait_ready(&probe, &issuer).await;
        if let Err(e) = ready {
            server.stop().await;
            return Err(e);
        }
        eprintln!("started {} serve (pid {})", bin.display(), server.pid);
        tokio::time::sleep(Duration::from_secs(cli.settle)).await;
        spawned = Some(server);
    }
    let servers = match &spawned {
        Some(s) => vec![ServerPid {
            name: None,
            pid: s.pid,
        }],
        None => cli.server_pid.clone(),
    };
    let result = measure(&cli, &issuer, &tls, &servers).await;
    if let Some(server) = spawned {
        server.stop().await;
    }
    let report = result?;
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.text());
    }
    let beside_failed = report
        .password_sign_ins_beside
        .as_ref()
        .map_or(0, |b| b.failed);
    Ok(report.failed == 0 && report.ok > 0 && beside_failed == 0)
}

async fn measure(
    cli: &Cli,
    issuer: &str,
    tls: &rustls::ClientConfig,
    servers: &[ServerPid],
) -> anyhow::Result<Report> {
    // federated-flow starts at the resource; the home is `issuer`.
    let resource = (cli.scenario == Scenario::FederatedFlow)
        .then(|| cli.resource.trim_end_matches('/').to_owned());
    let probe = client(tls, cli.http2, None)?;
    for base in std::iter::once(issuer).chain(resource.as_deref()) {
        flows::fetch(&probe, &format!("{base}/.well-known/openid-configuration"))
            .await
            .with_context(|| format!("{base} does not answer discovery"))?;
    }
    drop(probe);

    let mut watched = Vec::new();
    for s in servers {
        match procfs::Watch::start(s.name.clone(), s.pid) {
            Some(w) => watched.push(w),
            None => bail!("cannot read /proc/{}/status", s.pid),
        }
    }

    let duration = match (cli.duration, cli.requests) {
        (Some(d), _) => d,
        (None, Some(_)) => MAX_DURATION_SECS,
        (None, None) => 10,
    };
    let ctl = Arc::new(Control {
        scenario: cli.scenario,
        target: Target {
            issuer: resource.clone().unwrap_or_else(|| issuer.to_owned()),
            client_id: cli.client_id.clone(),
            client_secret: cli.client_secret.clone(),
            redirect_uri: cli.redirect_uri.clone(),
            scope: cli.scope.clone(),
            username: cli.username.clone(),
            password: cli.password.clone(),
        },
        home: issuer.to_owned(),
        stop: AtomicBool::new(false),
        started: OnceLock::new(),
        warmup: Duration::from_secs(cli.warmup),
        duration: Duration::from_secs(duration),
        budget: cli.requests,
        claimed: AtomicU64::new(0),
        unmeasured_errors: AtomicU64::new(0),
        errors: Mutex::new(Vec::new()),
    });

    let workers = cli.concurrency;
    let connections = if cli.scenario.signs_in() {
        workers
    } else {
        cli.connections.unwrap_or(workers).min(workers)
    };
    let clients = (0..connections)
        .map(|_| {
            let jar = cli
                .scenario
                .signs_in()
                .then(|| Arc::new(cookies::Jar::default()));
            Ok((client(tls, cli.http2, jar.clone())?, jar))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let barrier = Arc::new(Barrier::new(workers as usize + 1));
    let mut set = tokio::task::JoinSet::new();
    for id in 0..workers {
        let (client, jar) = clients[(id % connections) as usize].clone();
        set.spawn(worker(id, ctl.clone(), client, jar, barrier.clone()));
    }
    drop(clients);
    if cli.scenario.signs_in() && !cli.json {
        eprintln!("signing in {workers} workers…");
    }
    let setup_started = Instant::now();
    barrier.wait().await;
    let setup = setup_started.elapsed();
    let started = *ctl.started.get_or_init(Instant::now);
    let mut beside = tokio::task::JoinSet::new();
    for id in workers..workers + cli.password_workers {
        let jar = Arc::new(cookies::Jar::default());
        let client = client(tls, cli.http2, Some(jar))?;
        beside.spawn(password_worker(id, ctl.clone(), client));
    }

    // CPU time is counted from the end of the warm-up.
    tokio::time::sleep_until((started + ctl.warmup).into()).await;
    let cpu0 = (procfs::cpu_ticks(None), procfs::machine_ticks());
    for w in &mut watched {
        w.mark();
    }
    let measure_start = Instant::now();

    // Every worker stops at the deadline; allow in-flight requests (10 s timeout) to finish.
    let hard_stop = started + ctl.warmup + ctl.duration + Duration::from_secs(15);
    let interrupted = Arc::new(AtomicBool::new(false));
    let mut total = Recorder::default();
    loop {
        tokio::select! {
            next = set.join_next() => match next {
                Some(Ok(r)) => total.merge(r),
                Some(Err(e)) => {
                    ctl.unmeasured_errors.fetch_add(1, Ordering::Relaxed);
                    eprintln!("a worker failed: {e}");
                }
                None => break,
            },
            _ = tokio::time::sleep_until(hard_stop.into()) => {
                eprintln!("workers did not stop in time; aborting them");
                set.abort_all();
                beside.abort_all();
                ctl.stop.store(true, Ordering::Relaxed);
                while set.join_next().await.is_some() {}
                break;
            }
            _ = tokio::signal::ctrl_c(), if !interrupted.load(Ordering::Relaxed) => {
                eprintln!("interrupted: stopping the workers");
                interrupted.store(true, Ordering::Relaxed);
                ctl.stop.store(true, Ordering::Relaxed);
            }
        }
    }
    let mut passwords = Beside {
        workers: cli.password_workers,
        ..Beside::default()
    };
    while let Some(done) = beside.join_next().await {
        if let Ok((ok, failed)) = done {
            passwords.ok += ok;
            passwords.failed += failed;
        }
    }
    let elapsed = measure_start.elapsed();
    let cpu1 = (procfs::cpu_ticks(None), procfs::machine_ticks());
    let hz = procfs::clock_ticks_per_sec() as f64;
    let mut servers = Vec::new();
    for w in watched {
        servers.push(w.finish(elapsed, total.ok, hz).await);
    }
    let loadgen_cores = procfs::cores(cpu0.0, cpu1.0, hz, elapsed);
    let machine_cores = procfs::cores(cpu0.1.map(|m| m.busy), cpu1.1.map(|m| m.busy), hz, elapsed);
    let stolen_cores = procfs::cores(
        cpu0.1.map(|m| m.steal),
        cpu1.1.map(|m| m.steal),
        hz,
        elapsed,
    );
    let secs = elapsed.as_secs_f64().max(1e-9);
    let errors = ctl.errors.lock().map(|v| v.clone()).unwrap_or_default();
    let mut steps = Vec::new();
    for (name, mut samples) in std::mem::take(&mut total.steps) {
        if let Some(s) = samples.summary() {
            steps.push((name.to_owned(), s));
        }
    }
    let ok = total.ok;
    Ok(Report {
        scenario: cli.scenario,
        issuer: ctl.target.issuer.clone(),
        home: resource.is_some().then(|| issuer.to_owned()),
        http: if cli.http2 { "HTTP/2" } else { "HTTP/1.1" },
        concurrency: workers,
        connections,
        loadgen_threads: cli.threads,
        setup_secs: setup.as_secs_f64(),
        warmup_secs: cli.warmup,
        measured_secs: secs,
        ok,
        failed: total.err,
        unmeasured_errors: ctl.unmeasured_errors.load(Ordering::Relaxed),
        relogins: total.relogins,
        per_sec: ok as f64 / secs,
        http_requests_per_sec: total.http_requests as f64 / secs,
        unit: cli.scenario.unit(),
        latency: total.total.summary(),
        steps,
        servers,
        loadgen_cpu_cores: loadgen_cores,
        machine_busy_cores: machine_cores,
        stolen_cores,
        machine_cpus: procfs::cpus(),
        errors,
        interrupted: interrupted.load(Ordering::Relaxed),
        password_sign_ins_beside: (passwords.workers > 0).then_some(passwords),
    })
}

/// Password sign-ins made beside the scenario (`--password-workers`), warm-up included.
#[derive(Debug, Default, serde::Serialize)]
struct Beside {
    workers: u32,
    ok: u64,
    failed: u64,
}

/// A `--password-workers` worker: full password sign-ins until the run is over; how many
/// succeeded and failed.
async fn password_worker(id: u32, ctl: Arc<Control>, client: reqwest::Client) -> (u64, u64) {
    let (mut ok, mut failed) = (0, 0);
    let mut ignored = Steps::new();
    while !ctl.over() {
        ignored.clear();
        match flows::password_sign_in(&client, &ctl.target, true, &mut ignored).await {
            Ok(_) => ok += 1,
            Err(e) => {
                failed += 1;
                ctl.error(id, &e.context("password sign-in beside the scenario"));
            }
        }
    }
    (ok, failed)
}

/// One worker: set up (sign in if the scenario needs it), wait for everyone, then loop.
async fn worker(
    id: u32,
    ctl: Arc<Control>,
    client: reqwest::Client,
    jar: Option<Arc<cookies::Jar>>,
    barrier: Arc<Barrier>,
) -> Recorder {
    let mut rec = Recorder::default();
    let t = &ctl.target;
    let jar = jar.as_deref();
    let mut scratch = Steps::new();
    // Set-up: a session (code-flow, federated-flow: at the home) or the head of a
    // refresh-token chain (refresh).
    let mut chain: Option<String> = None;
    let mut ready = true;
    if matches!(
        ctl.scenario,
        Scenario::Refresh | Scenario::CodeFlow | Scenario::FederatedFlow
    ) {
        match sign_in(&ctl, &client, jar).await {
            Ok(refresh_token) => chain = refresh_token,
            Err(e) => {
                ctl.error(id, &e.context("set-up sign-in"));
                ctl.unmeasured_errors.fetch_add(1, Ordering::Relaxed);
                ready = false;
            }
        }
        if ctl.scenario == Scenario::Refresh && ready && chain.is_none() {
            ctl.error(
                id,
                &anyhow::anyhow!("set-up sign-in: no refresh_token issued"),
            );
            ctl.unmeasured_errors.fetch_add(1, Ordering::Relaxed);
            ready = false;
        }
    }
    barrier.wait().await;
    if !ready {
        return rec;
    }
    let discovery = format!("{}/.well-known/openid-configuration", t.issuer);
    let jwks = format!("{}/jwks", t.issuer);
    loop {
        let phase = ctl.phase();
        if phase == Phase::Stop {
            break;
        }
        scratch.clear();
        let start = Instant::now();
        let result: anyhow::Result<()> = match ctl.scenario {
            Scenario::Discovery => flows::fetch(&client, &discovery).await.map(drop),
            Scenario::Jwks => flows::fetch(&client, &jwks).await.map(drop),
            Scenario::CodeFlow => flows::code_flow(&client, t, &mut scratch).await.map(drop),
            Scenario::PasswordLogin => flows::password_sign_in(&client, t, true, &mut scratch)
                .await
                .map(drop),
            Scenario::FederatedFlow => {
                leave_resource(jar, t);
                flows::federated_flow(&client, t, &ctl.home, false, &mut scratch)
                    .await
                    .map(drop)
            }
            Scenario::Refresh => match chain.take() {
                Some(rt) => flows::refresh(&client, t, &rt, &mut scratch)
                    .await
                    .map(|tokens| {
                        chain = tokens.refresh_token;
                    }),
                None => Err(anyhow::anyhow!("no refresh token")),
            },
            Scenario::Signals | Scenario::Mixed => {
                Err(anyhow::anyhow!("this scenario has its own run"))
            }
        };
        let took = start.elapsed();
        let measured = phase == Phase::Measure;
        match result {
            Ok(()) if measured => {
                rec.ok += 1;
                rec.http_requests += scratch.len().max(1) as u64;
                rec.total.push(took);
                for &(name, d) in &scratch {
                    rec.step(name, d);
                }
            }
            Ok(()) => {}
            Err(e) => {
                if measured {
                    rec.err += 1;
                    rec.http_requests += scratch.len().max(1) as u64;
                } else {
                    ctl.unmeasured_errors.fetch_add(1, Ordering::Relaxed);
                }
                ctl.error(id, &e);
                // A broken chain or a lost session: sign in again (outside the measurements).
                let lost = match ctl.scenario {
                    Scenario::Refresh => chain.is_none(),
                    Scenario::CodeFlow | Scenario::FederatedFlow => {
                        e.downcast_ref::<flows::SessionLost>().is_some()
                    }
                    _ => false,
                };
                if lost {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    if let Ok(refresh_token) = sign_in(&ctl, &client, jar).await {
                        rec.relogins += 1;
                        if ctl.scenario == Scenario::Refresh {
                            chain = refresh_token;
                        }
                    }
                }
            }
        }
    }
    rec
}

/// A sign-in with the password, outside the measurements: the session that code-flow reuses
/// (for federated-flow: the session at the home, through a first federated sign-in), or the
/// refresh token that heads a chain.
async fn sign_in(
    ctl: &Control,
    client: &reqwest::Client,
    jar: Option<&cookies::Jar>,
) -> anyhow::Result<Option<String>> {
    let t = &ctl.target;
    let mut ignored = Steps::new();
    let tokens = if ctl.scenario == Scenario::FederatedFlow {
        leave_resource(jar, t);
        flows::federated_flow(client, t, &ctl.home, true, &mut ignored).await?
    } else {
        flows::password_sign_in(client, t, false, &mut ignored).await?
    };
    Ok(tokens.refresh_token)
}

/// federated-flow: each flow starts with none of the resource's cookies (so without a session
/// there, and it must federate) and keeps the home's (the session the guest signs in with).
fn leave_resource(jar: Option<&cookies::Jar>, t: &Target) {
    if let (Some(jar), Ok(resource)) = (jar, url::Url::parse(&t.issuer)) {
        jar.forget(&resource);
    }
}

fn check_loopback(issuer: &str, flag: &str) -> anyhow::Result<()> {
    let url = url::Url::parse(issuer).with_context(|| format!("{flag} {issuer} is not a URL"))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    if !loopback {
        bail!(
            "{flag} must be a loopback address (127.0.0.0/8, ::1, localhost): this tool only loads local servers"
        );
    }
    Ok(())
}

fn tls_config(ca: &std::path::Path, http2: bool) -> anyhow::Result<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in
        CertificateDer::pem_file_iter(ca).with_context(|| format!("reading {}", ca.display()))?
    {
        roots.add(cert.with_context(|| format!("parsing {}", ca.display()))?)?;
    }
    if roots.is_empty() {
        bail!("{} holds no certificate", ca.display());
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = vec![if http2 {
        b"h2".to_vec()
    } else {
        b"http/1.1".to_vec()
    }];
    Ok(cfg)
}

/// An HTTP client; with a cookie jar for the flow scenarios (one virtual browser).
fn client(
    tls: &rustls::ClientConfig,
    http2: bool,
    jar: Option<Arc<cookies::Jar>>,
) -> anyhow::Result<reqwest::Client> {
    let b = reqwest::Client::builder()
        .use_preconfigured_tls(tls.clone())
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .user_agent(concat!("tenantd-loadgen/", env!("CARGO_PKG_VERSION")));
    let b = match jar {
        Some(jar) => b.cookie_provider(jar),
        None => b,
    };
    let b = if http2 {
        b.http2_prior_knowledge()
    } else {
        b.http1_only()
    };
    Ok(b.build()?)
}

#[derive(Debug, serde::Serialize)]
struct Report {
    scenario: Scenario,
    /// Where the flows start (for federated-flow: the resource tenant).
    issuer: String,
    /// For federated-flow: the home tenant.
    home: Option<String>,
    http: &'static str,
    concurrency: u32,
    connections: u32,
    loadgen_threads: u16,
    setup_secs: f64,
    warmup_secs: u64,
    measured_secs: f64,
    ok: u64,
    failed: u64,
    unmeasured_errors: u64,
    relogins: u64,
    per_sec: f64,
    http_requests_per_sec: f64,
    unit: &'static str,
    latency: Option<Summary>,
    steps: Vec<(String, Summary)>,
    servers: Vec<procfs::ServerStats>,
    loadgen_cpu_cores: Option<f64>,
    machine_busy_cores: Option<f64>,
    /// CPU time the hypervisor gave to other machines: not in `machine_busy_cores`.
    stolen_cores: Option<f64>,
    machine_cpus: usize,
    errors: Vec<String>,
    interrupted: bool,
    password_sign_ins_beside: Option<Beside>,
}

/// The machine's CPU over the measured window. A database server on the same machine
/// (PostgreSQL) is among the "other processes": their CPU per operation is then what each
/// operation cost it, so it is given too once they used a noticeable share (0.05 cores).
fn machine_line(
    busy: f64,
    cpus: usize,
    others: f64,
    stolen: f64,
    per_sec: f64,
    unit: &str,
) -> String {
    let others = others.max(0.0);
    let per_op = if others >= 0.05 && per_sec > 0.0 {
        let op = if unit == "flows" { "flow" } else { "request" };
        format!(", {:.0} µs per {op}", others * 1e6 / per_sec)
    } else {
        String::new()
    };
    format!(
        "machine CPU busy: {busy:.2} of {cpus} cores (other processes {others:.2}{per_op}; stolen by the hypervisor {stolen:.2})"
    )
}

impl Report {
    fn text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let unit = self.unit;
        let home = self
            .home
            .as_ref()
            .map_or_else(String::new, |h| format!(" (home {h})"));
        let _ = writeln!(
            s,
            "scenario {:?} against {}{home} over {} with {} workers ({} connections, {} loadgen threads)",
            self.scenario,
            self.issuer,
            self.http,
            self.concurrency,
            self.connections,
            self.loadgen_threads
        );
        let _ = writeln!(
            s,
            "  set-up {:.1} s, warm-up {} s, measured {:.1} s{}",
            self.setup_secs,
            self.warmup_secs,
            self.measured_secs,
            if self.interrupted {
                " (interrupted)"
            } else {
                ""
            }
        );
        let _ = writeln!(
            s,
            "  {} ok, {} failed ({} errors outside the measured window, {} re-sign-ins)",
            self.ok, self.failed, self.unmeasured_errors, self.relogins
        );
        if let Some(b) = &self.password_sign_ins_beside {
            let _ = writeln!(
                s,
                "  beside them: {} password sign-ins by {} workers, {} failed (warm-up included; their server CPU is in the numbers below)",
                b.ok, b.workers, b.failed
            );
        }
        let _ = write!(s, "  throughput: {:.0} {unit}/s", self.per_sec);
        if unit == "flows" {
            let _ = write!(s, " ({:.0} HTTP requests/s)", self.http_requests_per_sec);
        }
        let _ = writeln!(s);
        if let Some(l) = &self.latency {
            let _ = writeln!(s, "  latency: {l}");
        }
        if self.steps.len() > 1 || unit == "flows" {
            for (name, l) in &self.steps {
                let _ = writeln!(s, "    {name:<14} {l}");
            }
        }
        let kib = |k: Option<u64>| k.map_or_else(|| "?".to_owned(), procfs::mib);
        for server in &self.servers {
            let name = server
                .name
                .as_ref()
                .map_or_else(String::new, |n| format!(" {n}"));
            let _ = writeln!(
                s,
                "  server{name} pid {}: RSS idle {}, set-up peak {}, at start of measurement {}, peak while measured {}, after {}; {} threads",
                server.pid,
                procfs::mib(server.idle_rss_kib),
                kib(server.setup_peak_rss_kib),
                kib(server.measure_start_rss_kib),
                procfs::mib(server.peak_rss_kib),
                kib(server.end_rss_kib),
                server
                    .threads
                    .map_or_else(|| "?".to_owned(), |t| t.to_string())
            );
            if let (Some(c), Some(per)) = (server.cpu_cores, server.cpu_us_per_op) {
                let op = if unit == "flows" { "flow" } else { "request" };
                let _ = write!(s, "  server{name} CPU: {c:.2} cores, {per:.0} µs per {op}");
                // A run of password sign-ins is mostly hashing: its CPU is the hash and
                // everything else. Elsewhere a stray tick of a hashing thread means nothing.
                match server.hashing_us_per_op {
                    Some(hash) if hash >= per / 2.0 => {
                        let _ = writeln!(
                            s,
                            " (hashing threads {hash:.0} µs; everything else {:.0} µs, {:.1} % of the hashing)",
                            per - hash,
                            (per - hash) * 100.0 / hash
                        );
                    }
                    _ => {
                        let _ = writeln!(s);
                    }
                }
            }
        }
        if let Some(c) = self.loadgen_cpu_cores {
            let _ = writeln!(s, "  loadgen CPU: {c:.2} cores (same machine)");
        }
        if let Some(m) = self.machine_busy_cores {
            let servers: f64 = self.servers.iter().filter_map(|x| x.cpu_cores).sum();
            let others = m - servers - self.loadgen_cpu_cores.unwrap_or(0.0);
            let _ = writeln!(
                s,
                "  {}",
                machine_line(
                    m,
                    self.machine_cpus,
                    others,
                    self.stolen_cores.unwrap_or(0.0),
                    self.per_sec,
                    unit
                )
            );
        }
        if !self.errors.is_empty() {
            let _ = writeln!(s, "  first errors:");
            for e in &self.errors {
                let _ = writeln!(s, "    {e}");
            }
        }
        s
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("tenantd-loadgen").chain(args.iter().copied()))
    }

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn federated_flow_defaults_point_at_the_lab() {
        let cli = parse(&["--scenario", "federated-flow"]).unwrap();
        assert_eq!(cli.scenario, Scenario::FederatedFlow);
        assert_eq!(cli.resource, "https://127.0.0.1:9444");
        assert_eq!(cli.issuer, "https://127.0.0.1:9443");
        assert_eq!(cli.client_id, "lab-rp");
        assert_eq!(cli.redirect_uri, "http://127.0.0.1:9555/callback");
        assert_eq!(cli.username, "alice@contoso.test");
        assert_eq!(cli.ca, PathBuf::from("certs/dev-ca.pem"));
        assert!(cli.server_pid.is_empty());
        assert!(Scenario::FederatedFlow.signs_in());
        assert_eq!(Scenario::FederatedFlow.unit(), "flows");
    }

    #[test]
    fn home_is_an_alias_of_issuer() {
        let cli = parse(&[
            "--scenario",
            "federated-flow",
            "--home",
            "https://127.0.0.1:9643",
            "--resource",
            "https://localhost:9644",
            "--client-id",
            "rp",
            "--client-secret",
            "s",
        ])
        .unwrap();
        assert_eq!(cli.issuer, "https://127.0.0.1:9643");
        assert_eq!(cli.resource, "https://localhost:9644");
        assert_eq!(cli.client_id, "rp");
        assert_eq!(cli.client_secret, "s");
    }

    #[test]
    fn server_pids_repeat_with_optional_names() {
        let cli = parse(&[
            "--server-pid",
            "home=12",
            "--server-pid",
            "resource=34",
            "--server-pid",
            "56",
        ])
        .unwrap();
        let named = |name: Option<&str>, pid| ServerPid {
            name: name.map(str::to_owned),
            pid,
        };
        assert_eq!(
            cli.server_pid,
            vec![
                named(Some("home"), 12),
                named(Some("resource"), 34),
                named(None, 56)
            ]
        );
        for bad in ["", "0", "x", "home=", "=12", "a b=1", "home=-1", "home=12x"] {
            assert!(parse_server_pid(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse(&["--server-pid", "1", "--spawn-server", "home.toml"]).is_err());
    }

    #[test]
    fn the_machine_line_gives_other_processes_cpu_per_operation_once_noticeable() {
        assert_eq!(
            machine_line(1.70, 2, 0.87, 0.0, 850.0, "flows"),
            "machine CPU busy: 1.70 of 2 cores (other processes 0.87, 1024 µs per flow; stolen by the hypervisor 0.00)"
        );
        assert_eq!(
            machine_line(1.0, 2, 0.5, 0.01, 5000.0, "req"),
            "machine CPU busy: 1.00 of 2 cores (other processes 0.50, 100 µs per request; stolen by the hypervisor 0.01)"
        );
        for (others, per_sec) in [(0.02, 850.0), (-0.01, 850.0), (0.5, 0.0)] {
            assert!(
                !machine_line(1.0, 2, others, 0.0, per_sec, "flows").contains("µs per"),
                "{others} {per_sec}"
            );
        }
    }

    #[test]
    fn workers_beside_the_scenario_see_its_end_without_spending_its_budget() {
        let ctl = Control {
            scenario: Scenario::Refresh,
            target: Target {
                issuer: "https://127.0.0.1:9443".into(),
                client_id: "lab-rp".into(),
                client_secret: "secret".into(),
                redirect_uri: "http://127.0.0.1:9555/callback".into(),
                scope: "openid".into(),
                username: "alice@contoso.test".into(),
                password: "pw".into(),
            },
            home: String::new(),
            stop: AtomicBool::new(false),
            started: OnceLock::new(),
            warmup: Duration::ZERO,
            duration: Duration::from_secs(60),
            budget: Some(2),
            claimed: AtomicU64::new(0),
            unmeasured_errors: AtomicU64::new(0),
            errors: Mutex::new(Vec::new()),
        };
        assert!(!ctl.over(), "not over before it starts");
        ctl.started.get_or_init(Instant::now);
        for _ in 0..5 {
            assert!(!ctl.over());
        }
        assert_eq!(ctl.phase(), Phase::Measure);
        assert_eq!(
            ctl.phase(),
            Phase::Measure,
            "the budget is the scenario's alone"
        );
        assert!(ctl.over(), "over once the scenario spent its budget");
        assert_eq!(ctl.phase(), Phase::Stop);

        let unbounded = Control {
            budget: None,
            ..ctl
        };
        assert!(!unbounded.over());
        unbounded.stop.store(true, Ordering::Relaxed);
        assert!(unbounded.over(), "over when stopped");
    }

    #[test]
    fn password_workers_go_with_benchmark_scenarios() {
        let cli = parse(&["--scenario", "refresh", "--password-workers", "2"]).unwrap();
        assert_eq!(cli.password_workers, 2);
        assert_eq!(parse(&[]).unwrap().password_workers, 0);
        assert!(parse(&["--password-workers", "65"]).is_err());
    }

    #[test]
    fn only_loopback_tenants() {
        assert!(check_loopback("https://127.0.0.1:9444", "--resource").is_ok());
        assert!(check_loopback("https://[::1]:9444", "--resource").is_ok());
        assert!(check_loopback("https://localhost:9444", "--resource").is_ok());
        let e = check_loopback("https://192.0.2.1:9444", "--resource").unwrap_err();
        assert!(e.to_string().starts_with("--resource must be a loopback"));
        assert!(check_loopback("not a url", "--issuer").is_err());
    }
}
