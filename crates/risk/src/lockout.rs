//! Smart lockout, as Entra does it: wrong passwords for one account are counted per source,
//! familiar (a network the account signed in from before) apart from unfamiliar, so an attacker
//! guessing from elsewhere locks out only the sources they use, never the user at their usual
//! places. After `threshold` wrong passwords from a source, that source is locked for
//! `duration_secs`; each further lockout lasts twice as long (up to [`MAX_DOUBLINGS`] times the
//! first); a correct password ends the count. While a source is locked, passwords from it are not
//! even checked.
//!
//! Pure: the counter is data, the clock an argument; the store keeps it (so that it holds
//! across replicas) and the sign-in pages apply it.

use std::net::IpAddr;

use crate::signin::same_network;

/// The lockout settings (Entra's defaults: 10 failures, 60 seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutSettings {
    /// Wrong passwords from one source before it is locked.
    pub threshold: u32,
    /// How long the first lockout lasts.
    pub duration_secs: i64,
}

impl Default for LockoutSettings {
    fn default() -> Self {
        Self {
            threshold: 10,
            duration_secs: 60,
        }
    }
}

/// A lockout lasts at most 2^6 = 64 times the first one (an hour for Entra's 60 s).
pub const MAX_DOUBLINGS: u32 = 6;

/// Where wrong passwords come from, as the counters tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A network (IPv4 /24, IPv6 /64) the account signed in from successfully before.
    Familiar,
    /// Anywhere else.
    Unfamiliar,
}

impl Source {
    /// The source of `ip` for an account whose earlier successful sign-ins came from `known`.
    pub fn of(ip: IpAddr, known: impl IntoIterator<Item = IpAddr>) -> Self {
        if known.into_iter().any(|k| same_network(k, ip)) {
            Self::Familiar
        } else {
            Self::Unfamiliar
        }
    }

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Familiar => "familiar",
            Self::Unfamiliar => "unfamiliar",
        }
    }
}

/// One account's count for one source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counter {
    /// Wrong passwords since the last lockout or correct password.
    pub failures: u32,
    /// Locked until this unix time (0: never locked).
    pub locked_until: i64,
    /// Lockouts so far: each one lasts twice as long as the one before.
    pub lockouts: u32,
}

impl Counter {
    /// Until when the source is locked, if it is at `now`.
    pub fn locked(&self, now: i64) -> Option<i64> {
        (self.locked_until > now).then_some(self.locked_until)
    }

    /// One more wrong password at `now`: the counter after it, and whether it locked the source.
    #[must_use]
    pub fn failed(self, now: i64, settings: LockoutSettings) -> (Self, bool) {
        if self.locked(now).is_some() {
            // Refused without a check while locked: nothing to count.
            return (self, false);
        }
        let failures = self.failures.saturating_add(1);
        if failures < settings.threshold.max(1) {
            return (Self { failures, ..self }, false);
        }
        let doublings = self.lockouts.min(MAX_DOUBLINGS);
        let locked = Self {
            failures: 0,
            locked_until: now + settings.duration_secs.max(1) * (1i64 << doublings),
            lockouts: self.lockouts.saturating_add(1),
        };
        (locked, true)
    }

    /// A correct password: the count starts again (and so do the lockout durations).
    #[must_use]
    pub fn succeeded(self) -> Self {
        Self::default()
    }

    /// Whether this counter records anything a correct password would reset.
    pub fn is_clear(&self) -> bool {
        *self == Self::default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const S: LockoutSettings = LockoutSettings {
        threshold: 10,
        duration_secs: 60,
    };

    #[test]
    fn ten_failures_lock_for_a_minute_then_longer_each_time() {
        let mut c = Counter::default();
        for i in 1..10 {
            let (next, locked) = c.failed(1_000 + i, S);
            assert!(!locked);
            assert_eq!(next.failures, u32::try_from(i).unwrap());
            c = next;
        }
        let (c, locked) = c.failed(1_010, S);
        assert!(locked);
        assert_eq!(c.locked(1_010), Some(1_070));
        assert_eq!(c.locked(1_070), None, "unlocked after the duration");
        // Failures while locked are not counted and do not extend it.
        assert_eq!(c.failed(1_020, S), (c, false));
        // The next lockout lasts twice as long, and so on up to 64 times.
        let mut c = c;
        let mut durations = Vec::new();
        for round in 0..9 {
            let start = 10_000 * (round + 1);
            let mut locked = false;
            for i in 0..10 {
                (c, locked) = c.failed(start + i, S);
            }
            assert!(locked);
            durations.push(c.locked_until - (start + 9));
        }
        assert_eq!(
            durations,
            [120, 240, 480, 960, 1_920, 3_840, 3_840, 3_840, 3_840]
        );
        assert!(c.succeeded().is_clear());
    }

    #[test]
    fn sources_are_familiar_by_network() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let known = [ip("192.0.2.10"), ip("2001:db8:1:2::5")];
        assert_eq!(Source::of(ip("192.0.2.77"), known), Source::Familiar);
        assert_eq!(Source::of(ip("2001:db8:1:2::99"), known), Source::Familiar);
        assert_eq!(Source::of(ip("198.51.100.7"), known), Source::Unfamiliar);
        assert_eq!(Source::of(ip("192.0.3.10"), known), Source::Unfamiliar);
        assert_eq!(Source::of(ip("192.0.2.10"), []), Source::Unfamiliar);
    }

    #[test]
    fn a_threshold_of_one_locks_at_once() {
        let (c, locked) = Counter::default().failed(
            5,
            LockoutSettings {
                threshold: 1,
                duration_secs: 30,
            },
        );
        assert!(locked);
        assert_eq!(c.locked(5), Some(35));
    }
}
