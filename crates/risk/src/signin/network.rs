//! Phase 1, the network: what the request's IP address alone says, before the user is known.

use super::{Evidence, Phase, SignInRiskConfig};
use crate::intel::IpFacts;
use crate::vocab::RiskEventType;

pub(super) fn evaluate(facts: &IpFacts, config: &SignInRiskConfig, ev: &mut Evidence) {
    let ip = facts
        .ip
        .map(|i| i.to_string())
        .unwrap_or_else(|| "the client address".to_owned());
    if facts.anonymous {
        ev.raise(
            Phase::Network,
            RiskEventType::AnonymizedIpAddress,
            config.levels.anonymized_ip_address,
            format!(
                "{ip} is on the anonymous-IP list (an anonymizer such as Tor or an anonymous VPN \
                 hides where the user really is)"
            ),
        );
    }
    if facts.malicious {
        ev.raise(
            Phase::Network,
            RiskEventType::MaliciousIpAddress,
            config.levels.malicious_ip_address,
            format!("{ip} is on the malicious-IP list"),
        );
    }
    if !facts.named_locations.is_empty() {
        ev.notes.push(format!(
            "{ip} is in named location{} {}{}",
            if facts.named_locations.len() == 1 {
                ""
            } else {
                "s"
            },
            facts.named_locations.join(", "),
            if facts.trusted_location {
                " (trusted)"
            } else {
                ""
            }
        ));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use crate::intel::{Intel, IntelSource, IntelSources};
    use crate::signin::{SignInContext, SignInRiskConfig, evaluate_sign_in};
    use crate::vocab::{RiskEventType, RiskLevel};
    use time::OffsetDateTime;

    fn intel() -> Intel {
        Intel::load(IntelSources {
            anonymous_ips: vec![IntelSource::new("anon.txt", "198.51.100.7\n")],
            malicious_ips: vec![IntelSource::new("bad.txt", "203.0.113.0/26\n2001:db8:bad::/48\n")],
            named_locations: Some(IntelSource::new(
                "loc.toml",
                "[[namedLocations]]\nid = \"hq\"\ndisplayName = \"HQ\"\nisTrusted = true\nipRanges = [\"192.0.2.0/24\"]\n",
            )),
            geo: None,
            asn: None,
        })
        .unwrap()
    }

    fn eval(ip: &str, cfg: &SignInRiskConfig) -> crate::signin::SignInRisk {
        let ctx = SignInContext {
            ip: ip.parse().unwrap(),
            user_agent: "Mozilla/5.0",
            at: OffsetDateTime::UNIX_EPOCH,
            history: &[],
            token: None,
        };
        evaluate_sign_in(&ctx, &intel(), cfg)
    }

    #[test]
    fn anonymized_ip() {
        let r = eval("198.51.100.7", &SignInRiskConfig::default());
        assert_eq!(
            r.risk_event_types(),
            vec![RiskEventType::AnonymizedIpAddress]
        );
        assert_eq!(r.risk_level, RiskLevel::Medium);
        assert!(r.detections[0].explanation.contains("198.51.100.7"));
        assert!(r.detections[0].explanation.contains("anonymous-IP list"));
        let r = eval("198.51.100.8", &SignInRiskConfig::default());
        assert!(r.detections.is_empty());
        assert_eq!(r.risk_level, RiskLevel::None);
    }

    #[test]
    fn malicious_ip_v4_and_v6() {
        for ip in ["203.0.113.63", "2001:db8:bad::1"] {
            let r = eval(ip, &SignInRiskConfig::default());
            assert_eq!(
                r.risk_event_types(),
                vec![RiskEventType::MaliciousIpAddress],
                "{ip}"
            );
            assert_eq!(r.risk_level, RiskLevel::High);
        }
        assert!(
            eval("203.0.113.64", &SignInRiskConfig::default())
                .detections
                .is_empty()
        );
    }

    #[test]
    fn configured_levels_apply_and_none_disables() {
        let mut cfg = SignInRiskConfig::default();
        cfg.levels.anonymized_ip_address = RiskLevel::High;
        assert_eq!(eval("198.51.100.7", &cfg).risk_level, RiskLevel::High);
        cfg.levels.anonymized_ip_address = RiskLevel::None;
        let r = eval("198.51.100.7", &cfg);
        assert!(r.detections.is_empty());
        assert!(
            r.notes
                .iter()
                .any(|n| n.contains("anonymizedIPAddress not raised"))
        );
    }

    #[test]
    fn named_location_reported_in_facts() {
        let r = eval("192.0.2.9", &SignInRiskConfig::default());
        assert_eq!(r.facts.named_locations, vec!["hq".to_owned()]);
        assert!(r.facts.trusted_location);
        assert!(r.notes.iter().any(|n| n.contains("hq (trusted)")));
    }
}
