//! `[retention]`: how long the tenant keeps its logs (Entra's: sign-in and audit logs 30 days,
//! risk detections and history 90 days). Older rows are deleted in small batches in the
//! background. Detections still active are kept: they make a user's current risk.

use super::Validator;
use serde::Deserialize;

/// `[retention]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetention {
    sign_in_days: Option<u32>,
    risk_days: Option<u32>,
    audit_days: Option<u32>,
}

/// The validated `[retention]` section, in days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionSettings {
    /// Sign-in log.
    pub sign_in_days: u32,
    /// Risk detections (no longer active) and risk history.
    pub risk_days: u32,
    /// Directory audit log.
    pub audit_days: u32,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            sign_in_days: 30,
            risk_days: 90,
            audit_days: 30,
        }
    }
}

impl RetentionSettings {
    /// The cut-off times at `now` (unix seconds).
    pub fn cut_offs(&self, now: i64) -> store::Retention {
        let before = |days: u32| now - i64::from(days) * 86_400;
        store::Retention {
            sign_ins_before: before(self.sign_in_days),
            risk_before: before(self.risk_days),
            audits_before: before(self.audit_days),
        }
    }
}

impl Validator {
    pub(super) fn retention(&mut self, raw: RawRetention) -> RetentionSettings {
        let mut s = RetentionSettings::default();
        for (key, value, into) in [
            ("sign_in_days", raw.sign_in_days, &mut s.sign_in_days),
            ("risk_days", raw.risk_days, &mut s.risk_days),
            ("audit_days", raw.audit_days, &mut s.audit_days),
        ] {
            if let Some(days) = value {
                if !(1..=3650).contains(&days) {
                    self.bad(
                        format!("retention.{key}"),
                        format!("days from 1 to 3650, got {days}"),
                    );
                }
                *into = days;
            }
        }
        s
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::super::{Config, tests::GOOD};
    use super::*;

    #[test]
    fn retention_has_entras_defaults_and_is_checked() {
        let c = Config::parse(GOOD, "x.toml").unwrap();
        assert_eq!(c.retention, RetentionSettings::default());
        let c = Config::parse(&format!("{GOOD}[retention]\nsign_in_days = 7\n"), "x.toml").unwrap();
        assert_eq!(c.retention.sign_in_days, 7);
        assert_eq!(c.retention.risk_days, 90);
        let cut = c.retention.cut_offs(10 * 86_400);
        assert_eq!(cut.sign_ins_before, 3 * 86_400);
        let e =
            Config::parse(&format!("{GOOD}[retention]\nrisk_days = 0\n"), "x.toml").unwrap_err();
        assert_eq!(e.problems[0].key, "retention.risk_days", "{e}");
    }
}
