//! `--scenario signals`: how fast a user-risk change at the home reaches the resource over
//! OpenID Shared Signals, and how many events one stream carries per second.
//!
//! Against a running home and resource (the lab): the guest (`--username`) signs in to the
//! resource once through the home (so the home's stream for the resource hears about them);
//! then the home's admin alternately confirms them compromised and dismisses their risk,
//! `--requests` times (default 1,000), one change at a time. For each change the latency is
//! from sending the admin request at the home to the resource reporting the first of its
//! events applied (`GET /v1.0/identityProtection/sharedSignals/received`, read every 2 ms):
//! applying a risk change is what ends the guest's sessions and grants, in the same
//! transaction. Then `--burst` changes are sent back to back, and events per second counted
//! from the first send to the last event applied.

use anyhow::{Context, bail, ensure};
use serde_json::Value;
use std::time::{Duration, Instant};

use crate::flows::{self, Target};

/// What the run needs.
pub struct Settings {
    /// The home's issuer.
    pub home: String,
    /// The resource's issuer.
    pub resource: String,
    /// The resource's app and the guest, for the one federated sign-in.
    pub target: Target,
    /// The admin client (client credentials, scope `admin`) at both tenants.
    pub admin_id: String,
    /// Its secret.
    pub admin_secret: String,
    /// The resource's partner id for the home.
    pub partner: String,
    /// Changes measured one at a time.
    pub changes: u64,
    /// Changes sent back to back for the throughput figure.
    pub burst: u64,
}

/// Longest one change may take to reach the resource before the run gives up.
const PATIENCE: Duration = Duration::from_secs(30);

/// Runs the scenario; prints the results and returns whether every change arrived.
pub async fn run(
    client: &reqwest::Client,
    browser: &reqwest::Client,
    s: &Settings,
) -> anyhow::Result<bool> {
    let home_admin = flows::admin_token(client, &s.home, &s.admin_id, &s.admin_secret).await?;
    let resource_admin =
        flows::admin_token(client, &s.resource, &s.admin_id, &s.admin_secret).await?;
    // The resource sets its stream up at the home when it starts: a moment after a lab starts.
    let started = Instant::now();
    while !stream_ready(client, &s.resource, &resource_admin, &s.partner).await? {
        ensure!(
            started.elapsed() < PATIENCE,
            "the resource has no stream from {} yet",
            s.partner
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut scratch = Vec::new();
    flows::federated_flow(browser, &s.target, &s.home, true, &mut scratch)
        .await
        .context("the guest's sign-in at the resource")?;
    let user: Value = get(
        client,
        &format!("{}/v1.0/users/{}", s.home, s.target.username),
        &home_admin,
    )
    .await?;
    let user_id = user["id"]
        .as_str()
        .context("the home's user has no id")?
        .to_owned();
    let received = || applied(client, &s.resource, &resource_admin, &s.partner);

    let mut latencies = Vec::with_capacity(usize::try_from(s.changes).unwrap_or(0));
    for i in 0..s.changes {
        let before = received().await?;
        let started = Instant::now();
        change(client, &s.home, &home_admin, &user_id, i).await?;
        loop {
            if received().await? > before {
                latencies.push(started.elapsed());
                break;
            }
            if started.elapsed() > PATIENCE {
                bail!("change {i} did not reach the resource within {PATIENCE:?}");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        settle(&received).await?;
    }
    latencies.sort_unstable();
    print_latencies(&latencies);

    if s.burst > 0 {
        let before = received().await?;
        let started = Instant::now();
        for i in 0..s.burst {
            change(client, &s.home, &home_admin, &user_id, s.changes + i).await?;
        }
        let sent_in = started.elapsed();
        let after = settle(&received).await?;
        // The time of the last event, not of the settling reads after it.
        let events = after - before;
        let took = started.elapsed().saturating_sub(SETTLED);
        println!(
            "burst: {} changes sent in {:.2} s ({:.0}/s), {events} events applied in {:.2} s: {:.0} events/s on one stream",
            s.burst,
            sent_in.as_secs_f64(),
            s.burst as f64 / sent_in.as_secs_f64(),
            took.as_secs_f64(),
            events as f64 / took.as_secs_f64()
        );
    }
    Ok(true)
}

/// How long the count must stay the same to be taken as settled.
const SETTLED: Duration = Duration::from_millis(200);

/// Waits until the resource's count of applied events stops moving; returns it.
async fn settle<F, Fut>(received: &F) -> anyhow::Result<i64>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<i64>>,
{
    let mut last = received().await?;
    let mut still_since = Instant::now();
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let now = received().await?;
        if now != last {
            last = now;
            still_since = Instant::now();
        } else if still_since.elapsed() >= SETTLED {
            return Ok(last);
        }
        ensure!(started.elapsed() < PATIENCE, "the events never settled");
    }
}

fn print_latencies(sorted: &[Duration]) {
    if sorted.is_empty() {
        return;
    }
    let at = |q: f64| {
        let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[i].as_secs_f64() * 1000.0
    };
    println!(
        "risk change at the home -> applied at the resource, {} changes: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        sorted.len(),
        at(0.50),
        at(0.90),
        at(0.99),
        at(1.0)
    );
}

/// Change `i`: even ones confirm the user compromised, odd ones dismiss the risk.
async fn change(
    client: &reqwest::Client,
    home: &str,
    token: &str,
    user_id: &str,
    i: u64,
) -> anyhow::Result<()> {
    let action = if i.is_multiple_of(2) {
        "confirmCompromised"
    } else {
        "dismiss"
    };
    let resp = client
        .post(format!(
            "{home}/v1.0/identityProtection/riskyUsers/{action}"
        ))
        .bearer_auth(token)
        .json(&serde_json::json!({ "userIds": [user_id] }))
        .send()
        .await?;
    let status = resp.status();
    ensure!(status.as_u16() == 204, "{action}: {status}");
    Ok(())
}

/// Whether the resource has set its stream up at `partner`.
async fn stream_ready(
    client: &reqwest::Client,
    resource: &str,
    token: &str,
    partner: &str,
) -> anyhow::Result<bool> {
    let v = get(
        client,
        &format!("{resource}/v1.0/identityProtection/sharedSignals/received"),
        token,
    )
    .await?;
    Ok(v["value"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["partnerId"] == partner))
        .is_some_and(|p| p["streamId"].is_string()))
}

/// Events the resource applied from `partner` so far.
async fn applied(
    client: &reqwest::Client,
    resource: &str,
    token: &str,
    partner: &str,
) -> anyhow::Result<i64> {
    let v = get(
        client,
        &format!("{resource}/v1.0/identityProtection/sharedSignals/received"),
        token,
    )
    .await?;
    v["value"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["partnerId"] == partner))
        .and_then(|p| p["eventsReceived"].as_i64())
        .with_context(|| format!("the resource receives no signals from {partner}"))
}

async fn get(client: &reqwest::Client, url: &str, token: &str) -> anyhow::Result<Value> {
    let resp = client.get(url).bearer_auth(token).send().await?;
    let status = resp.status();
    ensure!(status.is_success(), "GET {url}: {status}");
    Ok(resp.json().await?)
}
