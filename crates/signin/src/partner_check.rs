//! Partners checked before guests need them, at start-up and on reload: each partner's
//! discovery document and JWKS fetched through its own relying party
//! ([`federation::Upstream::check`]: its TLS trust, its timeout), and every finding logged once
//! as a warning that names the partner, its issuer and what to fix. Without it an untrusted
//! certificate or a wrong claim mapping shows only when a guest signs in, on the guest's page.
//!
//! Nothing here decides anything: a partner with findings still gets every sign-in tried (the
//! partner may be fixed a minute later; the sign-in fails closed on its own if not).

use crate::Directory;
use federation::{Finding, PartnerReport};
use std::sync::Arc;

/// When a check runs, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Occasion {
    /// The tenant just started.
    StartUp,
    /// SIGHUP or the reload API.
    Reload,
}

impl Occasion {
    fn as_str(self) -> &'static str {
        match self {
            Occasion::StartUp => "start-up",
            Occasion::Reload => "reload",
        }
    }
}

/// Checks every partner (at the same time: one slow partner does not hold up the others'
/// reports) and logs each finding once; the reports, ordered by partner id.
pub async fn check_partners(dir: &Directory, occasion: Occasion) -> Vec<PartnerReport> {
    let mut checks = tokio::task::JoinSet::new();
    for partner in dir.partners.values() {
        let partner = Arc::clone(partner);
        checks.spawn(async move {
            let report = partner.upstream.check().await;
            relevant(partner.config.trust_user_risk, report)
        });
    }
    let mut reports = Vec::with_capacity(dir.partners.len());
    while let Some(done) = checks.join_next().await {
        match done {
            Ok(report) => reports.push(report),
            Err(e) => tracing::error!(error = %e, "a partner check did not finish"),
        }
    }
    reports.sort_by(|a, b| a.partner.cmp(&b.partner));
    for report in &reports {
        log(report, occasion);
    }
    reports
}

/// The findings that matter under the partner's settings: the risk claim's name matters only
/// when the partner's risk is read at all (`trust_user_risk`).
fn relevant(trust_user_risk: bool, mut report: PartnerReport) -> PartnerReport {
    if !trust_user_risk {
        report
            .findings
            .retain(|f| !matches!(f, Finding::RiskClaimNotSupported { .. }));
    }
    report
}

fn log(report: &PartnerReport, occasion: Occasion) {
    let (partner, issuer) = (&report.partner, &report.issuer);
    if report.is_ok() {
        tracing::info!(%partner, %issuer, occasion = occasion.as_str(), "partner checked: discovery and JWKS are usable");
        return;
    }
    for f in &report.findings {
        tracing::warn!(
            %partner,
            %issuer,
            finding = f.kind(),
            occasion = occasion.as_str(),
            "partner {partner} ({issuer}): {}. To fix: {}.",
            f.message(),
            f.fix()
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn the_risk_claim_is_judged_only_for_partners_trusted_for_risk() {
        let report = PartnerReport {
            partner: "contoso".into(),
            issuer: "https://contoso.test".into(),
            findings: vec![
                Finding::RiskClaimNotSupported {
                    claim: "user_risk".into(),
                },
                Finding::Unreachable {
                    url: "https://contoso.test/jwks".into(),
                    detail: "timed out".into(),
                },
            ],
        };
        assert_eq!(relevant(true, report.clone()).findings.len(), 2);
        let untrusted = relevant(false, report);
        assert_eq!(untrusted.findings.len(), 1);
        assert_eq!(untrusted.findings[0].kind(), "unreachable");
    }
}
