//! `--scenario mixed`: the soak. Against the lab's two tenants at once, each worker cycles
//! through the traffic a lab sees (out of every 10 operations): 3 member code flows with a
//! session at the home, 1 member password sign-in, 1 refresh at the home, 2 guest sign-ins at
//! the resource through the home, 1 blocked guest (the resource's block page is the expected
//! answer), 1 refresh at the resource, 1 pair of admin queries (the home's risky users, the
//! resource's sign-in log). Per kind: operations, failures, latency; the watched servers'
//! memory every minute, so a leak shows as a trend.

use anyhow::{Context, ensure};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::flows::{self, Target};
use crate::stats::Samples;
use crate::{cookies, procfs};

/// What the run needs.
pub struct Settings {
    /// The home's app and member (`--issuer`, `--client-id`, `--username`).
    pub member: Target,
    /// The resource's app and guest (the same client and user at `--resource`).
    pub guest: Target,
    /// The guest the resource blocks (`--blocked-user`), with their password.
    pub blocked: Target,
    /// The admin client (client credentials, scope `admin`) at both tenants.
    pub admin_id: String,
    /// Its secret.
    pub admin_secret: String,
    /// Workers.
    pub concurrency: u32,
    /// How long.
    pub duration: Duration,
    /// Processes whose memory is sampled: (name, pid).
    pub servers: Vec<(String, u32)>,
}

/// The operations, in the order each worker cycles through them.
const CYCLE: [Kind; 10] = [
    Kind::MemberSso,
    Kind::GuestSignIn,
    Kind::MemberRefresh,
    Kind::MemberSso,
    Kind::BlockedGuest,
    Kind::MemberPassword,
    Kind::GuestRefresh,
    Kind::MemberSso,
    Kind::GuestSignIn,
    Kind::AdminQueries,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    MemberSso,
    MemberPassword,
    MemberRefresh,
    GuestSignIn,
    BlockedGuest,
    GuestRefresh,
    AdminQueries,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::MemberSso => "member code flow (session)",
            Kind::MemberPassword => "member password sign-in",
            Kind::MemberRefresh => "member refresh",
            Kind::GuestSignIn => "guest sign-in (federated)",
            Kind::BlockedGuest => "blocked guest (block page)",
            Kind::GuestRefresh => "guest refresh",
            Kind::AdminQueries => "admin queries (2 requests)",
        }
    }
}

#[derive(Default)]
struct Tally {
    samples: Samples,
    failures: u64,
    errors: Vec<String>,
}

type Tallies = Arc<Mutex<BTreeMap<Kind, Tally>>>;

/// Runs the soak; prints the report and returns whether nothing failed.
pub async fn run(
    new_client: impl Fn(Option<Arc<cookies::Jar>>) -> anyhow::Result<reqwest::Client>,
    s: Settings,
) -> anyhow::Result<bool> {
    let plain = new_client(None)?;
    let admin = Arc::new([
        Admin::new(&plain, &s.member.issuer, &s).await?,
        Admin::new(&plain, &s.guest.issuer, &s).await?,
    ]);
    let tallies: Tallies = Arc::default();
    let memory = Arc::new(Mutex::new(Vec::<(u64, Vec<u64>)>::new()));
    let started = Instant::now();
    let deadline = started + s.duration;
    let sampler = tokio::spawn({
        let (memory, servers) = (memory.clone(), s.servers.clone());
        async move {
            let mut minute = 0;
            loop {
                let rss = servers
                    .iter()
                    .map(|(_, pid)| procfs::rss_kib(*pid).unwrap_or(0))
                    .collect();
                if let Ok(mut m) = memory.lock() {
                    m.push((minute, rss));
                }
                minute += 1;
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
        }
    });
    let s = Arc::new(s);
    let mut workers = Vec::new();
    for w in 0..s.concurrency {
        let browser = new_client(Some(Arc::new(cookies::Jar::default())))?;
        let (s, tallies, admin) = (s.clone(), tallies.clone(), admin.clone());
        // The password sign-ins', the guest's and the blocked guest's browsers: each keeps its
        // session at the home; the resource's cookies are dropped before each guest sign-in,
        // so the resource federates every time.
        let jars: [Arc<cookies::Jar>; 3] = Default::default();
        let fresh = [
            new_client(Some(jars[0].clone()))?,
            new_client(Some(jars[1].clone()))?,
            new_client(Some(jars[2].clone()))?,
        ];
        let resource = url::Url::parse(&s.guest.issuer)?;
        workers.push(tokio::spawn(async move {
            let mut steps = Vec::new();
            // Set-up, counted like any operation of its kind: the member's session at the
            // home and the first tokens of both refresh chains.
            let mut member_rt = None;
            let mut guest_rt = None;
            let began = Instant::now();
            let first = flows::password_sign_in(&browser, &s.member, false, &mut steps).await;
            record(
                &tallies,
                Kind::MemberPassword,
                began,
                first.as_ref().map(drop),
            );
            if let Ok(tokens) = first {
                member_rt = tokens.refresh_token;
            }
            let began = Instant::now();
            let first =
                flows::federated_flow(&fresh[1], &s.guest, &s.member.issuer, true, &mut steps)
                    .await;
            record(&tallies, Kind::GuestSignIn, began, first.as_ref().map(drop));
            if let Ok(tokens) = first {
                guest_rt = tokens.refresh_token;
            }
            let mut i = w as usize;
            while Instant::now() < deadline {
                let kind = CYCLE[i % CYCLE.len()];
                i += 1;
                let began = Instant::now();
                steps.clear();
                let result: anyhow::Result<()> = async {
                    match kind {
                        Kind::MemberSso => {
                            let tokens = flows::code_flow(&browser, &s.member, &mut steps).await?;
                            member_rt = tokens.refresh_token.or(member_rt.take());
                        }
                        Kind::MemberPassword => {
                            flows::password_sign_in(&fresh[0], &s.member, true, &mut steps).await?;
                        }
                        Kind::MemberRefresh => {
                            let rt = member_rt.take().context("no member refresh token yet")?;
                            member_rt = flows::refresh(&browser, &s.member, &rt, &mut steps)
                                .await?
                                .refresh_token;
                        }
                        Kind::GuestSignIn => {
                            jars[1].forget(&resource);
                            let tokens = flows::federated_flow(
                                &fresh[1],
                                &s.guest,
                                &s.member.issuer,
                                true,
                                &mut steps,
                            )
                            .await?;
                            guest_rt = tokens.refresh_token.or(guest_rt.take());
                        }
                        Kind::BlockedGuest => {
                            jars[2].forget(&resource);
                            flows::federated_blocked(
                                &fresh[2],
                                &s.blocked,
                                &s.member.issuer,
                                &mut steps,
                            )
                            .await?;
                        }
                        Kind::GuestRefresh => {
                            let rt = guest_rt.take().context("no guest refresh token yet")?;
                            guest_rt = flows::refresh(&browser, &s.guest, &rt, &mut steps)
                                .await?
                                .refresh_token;
                        }
                        Kind::AdminQueries => {
                            admin[0]
                                .get(&browser, "/v1.0/identityProtection/riskyUsers", &s)
                                .await?;
                            admin[1]
                                .get(&browser, "/v1.0/auditLogs/signIns?$top=10", &s)
                                .await?;
                        }
                    }
                    Ok(())
                }
                .await;
                record(&tallies, kind, began, result);
            }
        }));
    }
    for w in workers {
        w.await?;
    }
    let elapsed = started.elapsed();
    if let Ok(mut m) = memory.lock() {
        m.push((
            elapsed.as_secs() / 60,
            s.servers
                .iter()
                .map(|(_, pid)| procfs::rss_kib(*pid).unwrap_or(0))
                .collect(),
        ));
    }
    sampler.abort();
    report(&s, &tallies, &memory, elapsed)
}

/// Counts one operation of `kind` begun at `began`.
fn record<E: std::fmt::Display>(
    tallies: &Tallies,
    kind: Kind,
    began: Instant,
    result: Result<(), E>,
) {
    let took = began.elapsed();
    if let Ok(mut t) = tallies.lock() {
        let tally = t.entry(kind).or_default();
        match result {
            Ok(()) => tally.samples.push(took),
            Err(e) => {
                tally.failures += 1;
                if tally.errors.len() < 3 {
                    tally.errors.push(format!("{e:#}"));
                }
            }
        }
    }
}

fn report(
    s: &Settings,
    tallies: &Tallies,
    memory: &Mutex<Vec<(u64, Vec<u64>)>>,
    elapsed: Duration,
) -> anyhow::Result<bool> {
    let mut ok = true;
    println!(
        "mixed traffic, {} workers, {:.0} s",
        s.concurrency,
        elapsed.as_secs_f64()
    );
    println!("| operation | done | failed | per second | p50 | p99 | max |");
    println!("|---|---|---|---|---|---|---|");
    let mut tallies = tallies
        .lock()
        .map_err(|_| anyhow::anyhow!("tallies poisoned"))?;
    for (kind, t) in tallies.iter_mut() {
        ok &= t.failures == 0;
        let summary = t.samples.summary();
        let done = summary.map_or(0, |x| x.count);
        let (p50, p99, max) = summary.map_or((0.0, 0.0, 0.0), |x| {
            (ms(x.p50_us), ms(x.p99_us), ms(x.max_us))
        });
        println!(
            "| {} | {done} | {} | {:.1} | {p50:.1} ms | {p99:.1} ms | {max:.1} ms |",
            kind.name(),
            t.failures,
            done as f64 / elapsed.as_secs_f64(),
        );
    }
    for (kind, t) in tallies.iter() {
        for e in &t.errors {
            println!("error ({}): {e}", kind.name());
        }
    }
    if !s.servers.is_empty() {
        let names: Vec<&str> = s.servers.iter().map(|(n, _)| n.as_str()).collect();
        println!("| minute | {} |", names.join(" RSS | ") + " RSS");
        println!("|---|{}", "---|".repeat(names.len()));
        let memory = memory
            .lock()
            .map_err(|_| anyhow::anyhow!("memory poisoned"))?;
        for (minute, rss) in memory.iter() {
            let cells: Vec<String> = rss.iter().map(|k| procfs::mib(*k)).collect();
            println!("| {minute} | {} |", cells.join(" | "));
        }
    }
    Ok(ok)
}

fn ms(us: u32) -> f64 {
    f64::from(us) / 1000.0
}

/// An admin client at one tenant, as an admin daemon holds one: a client-credentials token,
/// fetched again when the tenant says it expired (401).
struct Admin {
    issuer: String,
    token: tokio::sync::RwLock<String>,
}

impl Admin {
    async fn new(client: &reqwest::Client, issuer: &str, s: &Settings) -> anyhow::Result<Self> {
        Ok(Self {
            issuer: issuer.to_owned(),
            token: tokio::sync::RwLock::new(
                flows::admin_token(client, issuer, &s.admin_id, &s.admin_secret).await?,
            ),
        })
    }

    /// `GET path`, expecting success; one new token and one retry after a 401.
    async fn get(&self, client: &reqwest::Client, path: &str, s: &Settings) -> anyhow::Result<()> {
        let url = format!("{}{path}", self.issuer);
        for attempt in 0..2 {
            let token = self.token.read().await.clone();
            let resp = client.get(&url).bearer_auth(&token).send().await?;
            let status = resp.status();
            resp.bytes().await?;
            if status == reqwest::StatusCode::UNAUTHORIZED && attempt == 0 {
                let mut held = self.token.write().await;
                if *held == token {
                    *held = flows::admin_token(client, &self.issuer, &s.admin_id, &s.admin_secret)
                        .await?;
                }
                continue;
            }
            ensure!(status.is_success(), "GET {url}: {status}");
            return Ok(());
        }
        anyhow::bail!("GET {url}: 401 with a new token")
    }
}
