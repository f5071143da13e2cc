//! `--spawn-server`: run `tenantd serve --config CONFIG` as a child for the length of the run,
//! so the load generator knows its pid, and stop it afterwards.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};

/// How long the server may take to answer `/healthz` after it is started.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a graceful shutdown may take before the child is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(12);

/// The `tenantd` binary: `--server-bin`, else the one next to this executable, else `$PATH`.
pub fn server_bin(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_owned();
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("tenantd")))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("tenantd"))
}

/// `tenantd user add --config CONFIG EMAIL --password-stdin`; an existing user is fine.
pub async fn seed_user(
    bin: &Path,
    config: &Path,
    email: &str,
    password: &str,
) -> anyhow::Result<()> {
    let mut child = Command::new(bin)
        .args(["user", "add", "--config"])
        .arg(config)
        .arg(email)
        .args(["--name", "Load Test", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(format!("{password}\n").as_bytes()).await?;
    }
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .context("`tenantd user add` timed out")??;
    // Exit code 5: already exists (see the tenantd CLI's documented exit codes).
    match out.status.code() {
        Some(0) => eprintln!("seeded user {email}"),
        Some(5) => eprintln!("user {email} already exists"),
        _ => bail!(
            "`tenantd user add` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    }
    Ok(())
}

/// A running server child.
#[derive(Debug)]
pub struct Server {
    child: Child,
    /// Its pid.
    pub pid: u32,
}

impl Server {
    /// Start `tenantd serve --config CONFIG`, its output to `log` (or discarded).
    pub fn start(bin: &Path, config: &Path, log: Option<&Path>) -> anyhow::Result<Self> {
        let (out, err) = match log {
            Some(path) => {
                let f = std::fs::File::create(path)
                    .with_context(|| format!("creating {}", path.display()))?;
                (Stdio::from(f.try_clone()?), Stdio::from(f))
            }
            None => (Stdio::null(), Stdio::null()),
        };
        let child = Command::new(bin)
            .args(["serve", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} serve", bin.display()))?;
        let pid = child.id().context("the server exited at once")?;
        Ok(Self { child, pid })
    }

    /// Wait until `GET {issuer}/healthz` answers 200.
    pub async fn wait_ready(
        &mut self,
        client: &reqwest::Client,
        issuer: &str,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        let url = format!("{issuer}/healthz");
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("the server exited during start-up ({status}); see --server-log");
            }
            if let Ok(r) = client.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                bail!("the server did not become ready within {READY_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM (graceful shutdown), then SIGKILL if it takes too long.
    pub async fn stop(mut self) {
        let term = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await;
        if term.is_ok_and(|s| s.success())
            && let Ok(Ok(_)) = tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await
        {
            return;
        }
        let _ = self.child.kill().await;
    }
}
