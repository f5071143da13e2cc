//! Smart lockout at the password page: the `risk` crate's counters ([`risk::lockout`]) kept in
//! the store per account and source. The account is the sign-in name typed, known or not, so a
//! lockout says nothing about which accounts exist. The source is familiar when the client's
//! network is one the user signed in from successfully before.

use std::net::IpAddr;

use risk::lockout::{Counter, LockoutSettings, Source};
use risk::{DetectionTimingType, RiskEventType, RiskLevel};
use store::{LockoutRow, StoreError, User, UserType, UserWithRisk};

use crate::Directory;
use crate::user_risk::{Home, new_detection};

/// Successful sign-ins looked at to decide whether a source is familiar.
const FAMILIAR_HISTORY: i64 = 50;

/// Where a password attempt for `account` stands before it is checked.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    source: Source,
    counter: Counter,
}

impl Attempt {
    /// Until when the attempt's source is locked, if it is.
    pub fn locked_until(&self, now: i64) -> Option<i64> {
        self.counter.locked(now)
    }

    /// Familiar or not.
    pub fn source(&self) -> Source {
        self.source
    }
}

fn counter(row: LockoutRow) -> Counter {
    Counter {
        failures: u32::try_from(row.failures).unwrap_or(u32::MAX),
        locked_until: row.locked_until,
        lockouts: u32::try_from(row.lockouts).unwrap_or(u32::MAX),
    }
}

fn row(c: Counter) -> LockoutRow {
    LockoutRow {
        failures: i64::from(c.failures),
        locked_until: c.locked_until,
        lockouts: i64::from(c.lockouts),
    }
}

/// Reads where a password attempt for `account` (normalized) from `ip` stands; `user` is the
/// account's user, when there is one (their recent sign-ins tell a familiar source).
pub async fn attempt(
    dir: &Directory,
    account: &str,
    user: Option<&UserWithRisk>,
    ip: IpAddr,
) -> Result<Attempt, StoreError> {
    let known = match user {
        Some(u) => {
            dir.store
                .recent_sign_ins(&u.user.id, Some(u.sign_ins_version), FAMILIAR_HISTORY)
                .await?
        }
        None => Vec::new(),
    };
    let source = Source::of(ip, known.iter().filter_map(|r| r.facts().ip));
    let counter = dir
        .store
        .lockout(account, source.as_str())
        .await?
        .map(counter)
        .unwrap_or_default();
    Ok(Attempt { source, counter })
}

/// A wrong password: counted, and when it locks the source of a member's account, a
/// `suspiciousIPAddress` detection (low: guessing is not yet a compromise) so the reports show
/// the attack. Returns until when the source is now locked, if this attempt locked it.
pub async fn failed(
    dir: &Directory,
    account: &str,
    user: Option<&User>,
    attempt: &Attempt,
    ip: IpAddr,
) -> Result<Option<i64>, StoreError> {
    let settings = settings(dir);
    let now = dir.now();
    let mut locked_now = false;
    let stored = dir
        .store
        .update_lockout(account, attempt.source.as_str(), now, |current| {
            let (next, locked) = counter(current).failed(now, settings);
            locked_now = locked;
            row(next)
        })
        .await?;
    if !locked_now {
        return Ok(None);
    }
    tracing::warn!(account, source = attempt.source.as_str(), %ip, until = stored.locked_until, "smart lockout locked a sign-in source");
    if let Some(user) = user.filter(|u| u.user_type == UserType::Member) {
        let detection = new_detection(
            RiskEventType::SuspiciousIpAddress,
            RiskLevel::Low,
            DetectionTimingType::Realtime,
            Some(ip),
            now,
            format!(
                "{} wrong passwords from {ip} ({} network): smart lockout locked this source",
                settings.threshold,
                attempt.source.as_str()
            ),
        );
        if let Err(e) = Home::of(dir).raise(&user.id, detection).await {
            tracing::error!(error = %e, user = %user.id, "recording the lockout detection failed");
        }
    }
    Ok(Some(stored.locked_until))
}

/// A correct password: the source's count starts again.
pub async fn succeeded(
    dir: &Directory,
    account: &str,
    attempt: &Attempt,
) -> Result<(), StoreError> {
    if attempt.counter.is_clear() {
        return Ok(());
    }
    dir.store
        .update_lockout(account, attempt.source.as_str(), dir.now(), |c| {
            row(counter(c).succeeded())
        })
        .await?;
    Ok(())
}

fn settings(dir: &Directory) -> LockoutSettings {
    dir.config.passwords.lockout
}
