//! Phase 2, the user is known: this sign-in against the user's own recent sign-ins at this
//! tenant (travel, new country, unfamiliar features, velocity).
//!
//! Repeats from a familiar device and network are never suspicious (test suites sign one user
//! in thousands of times from one machine): a sign-in from the IP address and user agent of
//! earlier ones is not travel (same address), not a new country and not unfamiliar (nothing in
//! it is new), and not velocity, which counts different networks or devices, not sign-ins.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use time::Duration;

use super::{
    Evidence, PastSignIn, Phase, SignInContext, SignInRiskConfig, haversine_km, human_duration,
    place,
};
use crate::intel::IpFacts;
use crate::vocab::RiskEventType;

pub(super) fn evaluate(
    ctx: &SignInContext<'_>,
    facts: &IpFacts,
    config: &SignInRiskConfig,
    ev: &mut Evidence,
) {
    let trusted = facts.trusted_location && config.trusted_location_lowers_unfamiliarity;
    let trusted_note = |what: &str| {
        format!(
            "{what} not raised: the sign-in comes from trusted named location {}",
            facts.named_locations.join(", ")
        )
    };
    travel(ctx, facts, config, trusted, ev, &trusted_note);
    new_country(ctx, facts, config, trusted, ev, &trusted_note);
    unfamiliar(ctx, facts, config, trusted, ev, &trusted_note);
    velocity(ctx, config, ev);
}

/// `impossibleTravel` / `unlikelyTravel`: the speed needed to get from the previous sign-in's
/// place to this one's. Bands: speed ≥ `impossibleTravelKmh` (default 1,000 km/h, faster than
/// any airliner over ground) is impossible; `unlikelyTravelKmh` (default 500) up to that is
/// unlikely (only by air with next to no time on the ground). Moves shorter than
/// `travelMinDistanceKm` are geolocation noise. A sign-in through an anonymizer is skipped: its
/// exit's location says nothing about the user (and is its own detection). A sign-in from the
/// IP address of the previous one (or of one since) is never travel: the user did not move.
fn travel(
    ctx: &SignInContext<'_>,
    facts: &IpFacts,
    config: &SignInRiskConfig,
    trusted: bool,
    ev: &mut Evidence,
    trusted_note: &dyn Fn(&str) -> String,
) {
    let (Some(lat), Some(lon)) = (facts.latitude, facts.longitude) else {
        return;
    };
    if facts.anonymous {
        return;
    }
    // The most recent earlier sign-in with a known position.
    let Some((prev, plat, plon)) = ctx
        .history
        .iter()
        .filter(|p| p.at <= ctx.at)
        .filter_map(|p| Some((p, p.latitude?, p.longitude?)))
        .max_by_key(|(p, _, _)| p.at)
    else {
        return;
    };
    // A repeat from the address the user was last seen at is not a move, whatever the
    // geolocation says now (intel is reloaded; a second may hold sign-ins from two places).
    if ctx
        .history
        .iter()
        .any(|p| p.at >= prev.at && p.at <= ctx.at && p.ip == Some(ctx.ip))
    {
        return;
    }
    let km = haversine_km((plat, plon), (lat, lon));
    if km < config.travel_min_distance_km {
        return;
    }
    let elapsed = ctx.at - prev.at;
    let hours = elapsed.as_seconds_f64() / 3600.0;
    let kmh = if hours > 0.0 {
        km / hours
    } else {
        f64::INFINITY
    };
    let (kind, level, limit, adjective) = if kmh >= config.impossible_travel_kmh {
        (
            RiskEventType::ImpossibleTravel,
            config.levels.impossible_travel,
            config.impossible_travel_kmh,
            "impossible",
        )
    } else if kmh >= config.unlikely_travel_kmh {
        (
            RiskEventType::UnlikelyTravel,
            config.levels.unlikely_travel,
            config.unlikely_travel_kmh,
            "unlikely",
        )
    } else {
        return;
    };
    let speed = if kmh.is_finite() {
        format!("{kmh:.0} km/h")
    } else {
        "no time at all".to_owned()
    };
    let why = format!(
        "{km:.0} km from {} to {} in {}: {speed}, at or above the {limit:.0} km/h {adjective}-travel limit",
        place(prev.country.as_deref(), prev.city.as_deref(), prev.ip),
        place(facts.country.as_deref(), facts.city.as_deref(), facts.ip),
        human_duration(elapsed),
    );
    if trusted {
        if kind == RiskEventType::UnlikelyTravel {
            ev.notes.push(trusted_note("unlikelyTravel"));
            return;
        }
        let lowered = level.lowered();
        ev.notes.push(format!(
            "impossibleTravel lowered from {level} to {lowered}: the sign-in comes from trusted named location {}",
            facts.named_locations.join(", ")
        ));
        ev.raise(Phase::UserKnown, kind, lowered, why);
        return;
    }
    ev.raise(Phase::UserKnown, kind, level, why);
}

/// `newCountry`: the country was never seen for this user here (needs at least one earlier
/// sign-in with a known country). An address the user already signed in from is never a new
/// country, whatever the geolocation said of it then (intel is reloaded).
fn new_country(
    ctx: &SignInContext<'_>,
    facts: &IpFacts,
    config: &SignInRiskConfig,
    trusted: bool,
    ev: &mut Evidence,
    trusted_note: &dyn Fn(&str) -> String,
) {
    let Some(country) = facts.country.as_deref() else {
        return;
    };
    if ctx.history.iter().any(|p| p.ip == Some(ctx.ip)) {
        return;
    }
    let mut known = ctx
        .history
        .iter()
        .filter_map(|p| p.country.as_deref())
        .peekable();
    if known.peek().is_none() {
        return;
    }
    if known.any(|c| c.eq_ignore_ascii_case(country)) {
        return;
    }
    if trusted {
        ev.notes.push(trusted_note("newCountry"));
        return;
    }
    ev.raise(
        Phase::UserKnown,
        RiskEventType::NewCountry,
        config.levels.new_country,
        format!(
            "first sign-in from {country} for this user here (checked against {} earlier sign-ins)",
            ctx.history.len()
        ),
    );
}

/// `unfamiliarFeatures`: at least `unfamiliarMinProperties` of {country, ASN, user agent} were
/// never seen for this user here, and only after the learning period
/// (`familiarityMinHistory` earlier sign-ins). User agents are compared without version numbers
/// so a browser update is not "unfamiliar". An earlier sign-in from the same address counts as
/// having this one's country and ASN (the geolocation may have changed since, the user did not).
fn unfamiliar(
    ctx: &SignInContext<'_>,
    facts: &IpFacts,
    config: &SignInRiskConfig,
    trusted: bool,
    ev: &mut Evidence,
    trusted_note: &dyn Fn(&str) -> String,
) {
    if ctx.history.len() < config.familiarity_min_history.max(1) {
        return;
    }
    let mut new: Vec<String> = Vec::with_capacity(3);
    let same_address = |p: &PastSignIn| p.ip == Some(ctx.ip);
    if let Some(c) = facts.country.as_deref()
        && unseen(ctx.history, |p| {
            if same_address(p) {
                return Some(true);
            }
            p.country.as_deref().map(|k| k.eq_ignore_ascii_case(c))
        })
    {
        new.push(format!("country {c}"));
    }
    if let Some(a) = facts.asn
        && unseen(ctx.history, |p| {
            if same_address(p) {
                return Some(true);
            }
            p.asn.map(|k| k == a)
        })
    {
        new.push(format!("network AS{a}"));
    }
    if !ctx.user_agent.is_empty()
        && unseen(ctx.history, |p| {
            p.user_agent
                .as_deref()
                .map(|u| same_agent(u, ctx.user_agent))
        })
    {
        new.push(format!("user agent \"{}\"", truncate(ctx.user_agent, 80)));
    }
    if new.len() < config.unfamiliar_min_properties {
        return;
    }
    if trusted {
        ev.notes.push(trusted_note("unfamiliarFeatures"));
        return;
    }
    ev.raise(
        Phase::UserKnown,
        RiskEventType::UnfamiliarFeatures,
        config.levels.unfamiliar_features,
        format!(
            "never seen for this user here in {} earlier sign-ins: {}",
            ctx.history.len(),
            new.join(", ")
        ),
    );
}

/// Whether no earlier sign-in has the property (`seen` returns `None` when the earlier sign-in
/// did not record it). A property never recorded at all is not "unseen": there is nothing to
/// compare with.
fn unseen(history: &[PastSignIn], seen: impl Fn(&PastSignIn) -> Option<bool>) -> bool {
    let mut recorded = false;
    for p in history {
        match seen(p) {
            Some(true) => return false,
            Some(false) => recorded = true,
            None => {}
        }
    }
    recorded
}

/// User agents equal once digits, dots and underscores (version numbers) are dropped, ignoring
/// ASCII case. No allocation.
fn same_agent(a: &str, b: &str) -> bool {
    // The usual case (the browser the user signed in with before) first: a comparison of
    // bytes, not of the normalised characters.
    if a == b {
        return true;
    }
    let keep = |c: &char| !(c.is_ascii_digit() || *c == '.' || *c == '_');
    a.chars()
        .filter(keep)
        .map(|c| c.to_ascii_lowercase())
        .eq(b.chars().filter(keep).map(|c| c.to_ascii_lowercase()))
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => s.get(..i).unwrap_or(s),
        None => s,
    }
}

/// Where a sign-in came from, as velocity tells people apart: its network (the IPv4 /24 or
/// IPv6 /64 its address is in; `None` when no address was recorded) and its device (the user
/// agent; none sent counts as the empty one).
#[derive(Debug, Clone, Copy)]
struct Origin<'a> {
    network: Option<Network>,
    agent: &'a str,
}

/// An IPv4 /24 or IPv6 /64, the address with its host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Network(IpAddr);

impl Network {
    /// IPv4 /24 is the smallest prefix routed between networks on the internet, so one /24 is
    /// one site; IPv6 /64 is one LAN (RFC 4291 interface identifiers). An IPv4-mapped IPv6
    /// address counts as the IPv4 one.
    fn of(ip: IpAddr) -> Self {
        Self(match ip.to_canonical() {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & !0xff)),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & !u128::from(u64::MAX))),
        })
    }
}

/// Whether two addresses are on one network (the same IPv4 /24 or IPv6 /64): how sign-in risk
/// and smart lockout tell a familiar place from another.
pub fn same_network(a: IpAddr, b: IpAddr) -> bool {
    Network::of(a) == Network::of(b)
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(a) => write!(f, "{a}/24"),
            IpAddr::V6(a) => write!(f, "{a}/64"),
        }
    }
}

impl<'a> Origin<'a> {
    fn of(p: &'a PastSignIn) -> Self {
        Self {
            network: p.ip.map(Network::of),
            agent: p.user_agent.as_deref().unwrap_or(""),
        }
    }

    /// The same network and the same device (user agents equal without version numbers, as
    /// for `unfamiliarFeatures`). A sign-in recorded without an address matches nothing.
    fn same(&self, other: &Origin<'_>) -> bool {
        self.network.is_some()
            && self.network == other.network
            && same_agent(self.agent, other.agent)
    }
}

/// `suspiciousVelocity`: sign-ins from more than `velocityMaxSignIns` different networks or
/// devices within `velocityWindowSeconds`, as when one account is used from many places at
/// once, faster than a person moves. Sign-ins are told apart by their [`Origin`]: the network
/// (same IPv4 /24 or IPv6 /64) and the device (same user agent, versions ignored); all
/// sign-ins from one origin count once. A *repeat* — this sign-in's origin matches an earlier
/// sign-in of the user's history here, in the window or before it — is never suspicious: a
/// test suite signs one user in thousands of times from one machine. The same ASN is not the
/// same network: a carrier or cloud provider hosts millions of people, and attackers.
///
/// No allocation: each sign-in in the window is compared with the earlier ones in it, and a
/// network is compared before the user agent.
fn velocity(ctx: &SignInContext<'_>, config: &SignInRiskConfig, ev: &mut Evidence) {
    let network = Network::of(ctx.ip);
    let here = Origin {
        network: Some(network),
        agent: ctx.user_agent,
    };
    let earlier = || ctx.history.iter().filter(|p| p.at <= ctx.at);
    let repeat = earlier().any(|p| here.same(&Origin::of(p)));
    let window = Duration::seconds(i64::from(config.velocity_window_seconds));
    let since = ctx.at - window;
    let in_window = || earlier().filter(|p| p.at > since);
    // Distinct origins in the window: each sign-in whose origin no earlier one in the window
    // had, plus this one's unless it is among them.
    let mut origins = in_window()
        .enumerate()
        .filter(|(i, p)| {
            let o = Origin::of(p);
            !in_window().take(*i).any(|q| o.same(&Origin::of(q)))
        })
        .count();
    if !in_window().any(|p| here.same(&Origin::of(p))) {
        origins += 1;
    }
    if origins <= config.velocity_max_sign_ins {
        return;
    }
    let why = format!(
        "sign-ins from {origins} different networks or devices within {}, more than the {} allowed",
        human_duration(window),
        config.velocity_max_sign_ins
    );
    if repeat {
        ev.notes.push(format!(
            "suspiciousVelocity not raised ({why}): this sign-in repeats an earlier one's network {network} and user agent"
        ));
        return;
    }
    ev.raise(
        Phase::UserKnown,
        RiskEventType::SuspiciousVelocity,
        config.levels.suspicious_velocity,
        format!("{why}; this one from network {network} is new"),
    );
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::intel::{GeoTable, Intel, IntelSource, IntelSources};
    use crate::signin::{SignInRisk, evaluate_sign_in};
    use crate::vocab::RiskLevel;
    use time::OffsetDateTime;

    const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
    const FIREFOX_NEWER: &str =
        "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0";
    const CURL: &str = "curl/8.5.0";

    // Oslo (192.0.2.0/25), Stockholm (192.0.2.128/25, 417 km away), Sydney (198.51.100.0/24),
    // Bergen (203.0.113.0/24, 305 km from Oslo) with its own ASN.
    fn intel(trusted_sydney: bool) -> Intel {
        let geo = "\
192.0.2.0,192.0.2.127,EU,NO,Oslo,Oslo,59.9139,10.7522
192.0.2.128,192.0.2.255,EU,SE,Stockholm,Stockholm,59.3293,18.0686
198.51.100.0,198.51.100.255,OC,AU,New South Wales,Sydney,-33.8688,151.2093
203.0.113.0,203.0.113.255,EU,NO,Vestland,Bergen,60.3913,5.3221
";
        let asn = "\
192.0.2.0,192.0.2.255,64500,Nordic Net
198.51.100.0,198.51.100.255,64501,Southern Net
203.0.113.0,203.0.113.255,64502,West Net
";
        let loc = if trusted_sydney {
            "[[namedLocations]]\nid = \"sydney-office\"\ndisplayName = \"Sydney office\"\nisTrusted = true\nipRanges = [\"198.51.100.0/24\"]\n"
        } else {
            ""
        };
        let mut i = Intel::load(IntelSources {
            named_locations: Some(IntelSource::new("loc.toml", loc)),
            asn: Some(IntelSource::new("asn.csv", asn)),
            ..IntelSources::default()
        })
        .unwrap();
        i.geo = Some(crate::intel::GeoDb::Table(
            GeoTable::from_csv("geo.csv", geo).unwrap(),
        ));
        i
    }

    fn t(min: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::days(20_000) + Duration::minutes(min)
    }

    fn past(i: &Intel, ip: &str, min: i64, ua: &str) -> PastSignIn {
        PastSignIn::from_facts(t(min), ua, &i.lookup(ip.parse().unwrap()))
    }

    fn eval_with(
        i: &Intel,
        ip: &str,
        min: i64,
        ua: &str,
        history: &[PastSignIn],
        cfg: &SignInRiskConfig,
    ) -> SignInRisk {
        let ctx = SignInContext {
            ip: ip.parse().unwrap(),
            user_agent: ua,
            at: t(min),
            history,
            token: None,
        };
        evaluate_sign_in(&ctx, i, cfg)
    }

    fn types(r: &SignInRisk) -> Vec<RiskEventType> {
        r.risk_event_types()
    }

    #[test]
    fn impossible_travel_oslo_to_sydney_in_an_hour() {
        let i = intel(false);
        let h = [past(&i, "192.0.2.1", -60, FIREFOX)];
        let r = eval_with(
            &i,
            "198.51.100.1",
            0,
            FIREFOX,
            &h,
            &SignInRiskConfig::default(),
        );
        assert!(
            types(&r).contains(&RiskEventType::ImpossibleTravel),
            "{r:#?}"
        );
        let d = r
            .detections
            .iter()
            .find(|d| d.risk_event_type == RiskEventType::ImpossibleTravel)
            .unwrap();
        assert_eq!(d.risk_level, RiskLevel::High);
        assert_eq!(d.phase, Phase::UserKnown);
        assert!(
            d.explanation.contains("Oslo, NO (192.0.2.1)"),
            "{}",
            d.explanation
        );
        assert!(d.explanation.contains("Sydney, AU"), "{}", d.explanation);
        assert!(d.explanation.contains("1 h 0 min"), "{}", d.explanation);
        assert!(d.explanation.contains("1000 km/h"), "{}", d.explanation);
        assert_eq!(r.risk_level, RiskLevel::High);
    }

    #[test]
    fn travel_bands_and_threshold_is_configurable() {
        let i = intel(false);
        // Oslo -> Stockholm, 417 km.
        let cases = [
            (20, Some(RiskEventType::ImpossibleTravel)), // ~1,250 km/h
            (40, Some(RiskEventType::UnlikelyTravel)),   // ~625 km/h
            (120, None),                                 // ~208 km/h
        ];
        for (minutes, want) in cases {
            let h = [past(&i, "192.0.2.1", -minutes, FIREFOX)];
            let r = eval_with(
                &i,
                "192.0.2.200",
                0,
                FIREFOX,
                &h,
                &SignInRiskConfig::default(),
            );
            let travel: Vec<_> = types(&r)
                .into_iter()
                .filter(|t| {
                    matches!(
                        t,
                        RiskEventType::ImpossibleTravel | RiskEventType::UnlikelyTravel
                    )
                })
                .collect();
            assert_eq!(
                travel,
                want.into_iter().collect::<Vec<_>>(),
                "{minutes} min"
            );
        }
        let h = [past(&i, "192.0.2.1", -20, FIREFOX)];
        let slow_planes = SignInRiskConfig {
            impossible_travel_kmh: 2000.0,
            ..SignInRiskConfig::default()
        };
        let r = eval_with(&i, "192.0.2.200", 0, FIREFOX, &h, &slow_planes);
        assert!(types(&r).contains(&RiskEventType::UnlikelyTravel), "{r:#?}");
        assert!(
            !types(&r).contains(&RiskEventType::ImpossibleTravel),
            "{r:#?}"
        );
    }

    #[test]
    fn travel_uses_the_latest_previous_sign_in_and_ignores_short_moves() {
        let i = intel(false);
        // Sydney long ago, then Bergen 30 min ago; now Oslo (305 km from Bergen in 30 min =
        // 610 km/h): unlikely, judged against Bergen, not Sydney.
        let h = [
            past(&i, "203.0.113.5", -30, FIREFOX),
            past(&i, "198.51.100.1", -100_000, FIREFOX),
        ];
        let r = eval_with(
            &i,
            "192.0.2.1",
            0,
            FIREFOX,
            &h,
            &SignInRiskConfig::default(),
        );
        assert!(types(&r).contains(&RiskEventType::UnlikelyTravel), "{r:#?}");
        assert!(!types(&r).contains(&RiskEventType::ImpossibleTravel));
        // Same city twice at once: no travel.
        let h = [past(&i, "192.0.2.1", 0, FIREFOX)];
        let r = eval_with(
            &i,
            "192.0.2.2",
            0,
            FIREFOX,
            &h,
            &SignInRiskConfig::default(),
        );
        assert!(r.detections.is_empty(), "{r:#?}");
        // Simultaneous sign-ins in two far places: impossible (no time at all).
        let h = [past(&i, "198.51.100.1", 0, FIREFOX)];
        let r = eval_with(
            &i,
            "192.0.2.2",
            0,
            FIREFOX,
            &h,
            &SignInRiskConfig::default(),
        );
        assert!(types(&r).contains(&RiskEventType::ImpossibleTravel));
        assert!(
            r.detections
                .iter()
                .any(|d| d.explanation.contains("no time at all"))
        );
    }

    #[test]
    fn trusted_location_lowers_travel_and_removes_unfamiliarity() {
        let i = intel(true);
        let h = [
            past(&i, "192.0.2.1", -60, FIREFOX),
            past(&i, "192.0.2.1", -600, FIREFOX),
            past(&i, "192.0.2.1", -6000, FIREFOX),
        ];
        let r = eval_with(
            &i,
            "198.51.100.1",
            0,
            CURL,
            &h,
            &SignInRiskConfig::default(),
        );
        assert_eq!(types(&r), vec![RiskEventType::ImpossibleTravel], "{r:#?}");
        assert_eq!(r.detections[0].risk_level, RiskLevel::Medium);
        assert!(r.notes.iter().any(|n| n.contains("newCountry not raised")));
        assert!(
            r.notes
                .iter()
                .any(|n| n.contains("unfamiliarFeatures not raised"))
        );
        assert!(
            r.notes
                .iter()
                .any(|n| n.contains("lowered from high to medium"))
        );
        // With the behaviour off, the same sign-in is judged as anywhere else.
        let off = SignInRiskConfig {
            trusted_location_lowers_unfamiliarity: false,
            ..SignInRiskConfig::default()
        };
        let r = eval_with(&i, "198.51.100.1", 0, CURL, &h, &off);
        assert!(types(&r).contains(&RiskEventType::NewCountry));
        assert!(types(&r).contains(&RiskEventType::UnfamiliarFeatures));
        assert_eq!(r.risk_level, RiskLevel::High);
    }

    #[test]
    fn anonymizer_exit_is_not_travel() {
        let mut i = intel(false);
        i.anonymous_ips = crate::intel::IpRangeSet::from_nets(["198.51.100.0/24".parse().unwrap()]);
        let h = [past(&i, "192.0.2.1", -5, FIREFOX)];
        let r = eval_with(
            &i,
            "198.51.100.1",
            0,
            FIREFOX,
            &h,
            &SignInRiskConfig::default(),
        );
        assert!(types(&r).contains(&RiskEventType::AnonymizedIpAddress));
        assert!(!types(&r).contains(&RiskEventType::ImpossibleTravel));
    }

    #[test]
    fn new_country_needs_history_with_countries() {
        let i = intel(false);
        let far_past = -100_000;
        let r = eval_with(
            &i,
            "198.51.100.1",
            0,
            FIREFOX,
            &[],
            &SignInRiskConfig::default(),
        );
        assert!(r.detections.is_empty(), "no history, nothing is new");
        let h = [past(&i, "192.0.2.1", far_past, FIREFOX)];
        let r = eval_with(
            &i,
            "198.51.100.1",
            0,
            FIREFOX,
            &h,
            &SignInRiskConfig::default(),
        );
        assert_eq!(types(&r), vec![RiskEventType::NewCountry]);
        assert_eq!(r.detections[0].risk_level, RiskLevel::Low);
        assert!(r.detections[0].explanation.contains("AU"));
        // Bergen is in Norway like Oslo: not new.
        let r = eval_with(
            &i,
            "203.0.113.9",
            0,
            FIREFOX,
            &h,
            &SignInRiskConfig::default(),
        );
        assert!(!types(&r).contains(&RiskEventType::NewCountry));
        // History without recorded countries: nothing to compare with.
        let blank = [PastSignIn {
            at: t(far_past),
            ip: None,
            country: None,
            city: None,
            latitude: None,
            longitude: None,
            asn: None,
            user_agent: None,
        }];
        let r = eval_with(
            &i,
            "198.51.100.1",
            0,
            FIREFOX,
            &blank,
            &SignInRiskConfig::default(),
        );
        assert!(r.detections.is_empty());
    }

    #[test]
    fn unfamiliar_features_after_learning_period_only() {
        let i = intel(false);
        let cfg = SignInRiskConfig::default();
        let h2 = [
            past(&i, "192.0.2.1", -100_000, FIREFOX),
            past(&i, "192.0.2.2", -90_000, FIREFOX),
        ];
        // Bergen: same country, new ASN, new agent = 2 new properties, but only 2 sign-ins known.
        let r = eval_with(&i, "203.0.113.9", 0, CURL, &h2, &cfg);
        assert!(!types(&r).contains(&RiskEventType::UnfamiliarFeatures));
        let mut h3 = h2.to_vec();
        h3.push(past(&i, "192.0.2.3", -80_000, FIREFOX));
        let r = eval_with(&i, "203.0.113.9", 0, CURL, &h3, &cfg);
        assert_eq!(types(&r), vec![RiskEventType::UnfamiliarFeatures], "{r:#?}");
        let e = &r.detections[0].explanation;
        assert!(e.contains("network AS64502") && e.contains("curl"), "{e}");
        assert!(!e.contains("country"), "{e}");
        // Only one new property (the ASN) is not enough by default ...
        let r = eval_with(&i, "203.0.113.9", 0, FIREFOX, &h3, &cfg);
        assert!(r.detections.is_empty(), "{r:#?}");
        // ... but is with unfamiliarMinProperties = 1.
        let strict = SignInRiskConfig {
            unfamiliar_min_properties: 1,
            ..SignInRiskConfig::default()
        };
        let r = eval_with(&i, "203.0.113.9", 0, FIREFOX, &h3, &strict);
        assert_eq!(types(&r), vec![RiskEventType::UnfamiliarFeatures]);
        // A browser update is not a new user agent.
        let r = eval_with(&i, "192.0.2.9", 0, FIREFOX_NEWER, &h3, &strict);
        assert!(r.detections.is_empty(), "{r:#?}");
    }

    fn at_s(i: &Intel, ip: &str, sec: i64, ua: &str) -> PastSignIn {
        PastSignIn::from_facts(
            t(0) + Duration::seconds(sec),
            ua,
            &i.lookup(ip.parse().unwrap()),
        )
    }

    fn eval_at_s(
        i: &Intel,
        ip: &str,
        sec: i64,
        ua: &str,
        history: &[PastSignIn],
        cfg: &SignInRiskConfig,
    ) -> SignInRisk {
        let ctx = SignInContext {
            ip: ip.parse().unwrap(),
            user_agent: ua,
            at: t(0) + Duration::seconds(sec),
            history,
            token: None,
        };
        evaluate_sign_in(&ctx, i, cfg)
    }

    /// `n` sign-ins within 300 s, `(ip, agent)` of each from `origin(k)`, each judged against
    /// the ones before it as the gate reads them (the last 50, newest first). Returns every
    /// result.
    fn run<'a>(
        i: &Intel,
        n: usize,
        cfg: &SignInRiskConfig,
        origin: impl Fn(usize) -> (String, &'a str),
    ) -> Vec<SignInRisk> {
        let mut history: Vec<PastSignIn> = Vec::new();
        let mut out = Vec::with_capacity(n);
        for k in 0..n {
            let sec = (k * 299 / n) as i64;
            let (ip, ua) = origin(k);
            let recent: Vec<PastSignIn> = history.iter().rev().take(50).cloned().collect();
            out.push(eval_at_s(i, &ip, sec, ua, &recent, cfg));
            history.push(at_s(i, &ip, sec, ua));
        }
        out
    }

    #[test]
    fn two_hundred_sign_ins_from_one_machine_in_five_minutes_are_never_risky() {
        // Sydney: geolocated, with an ASN, not trusted, so every history evaluator runs.
        let i = intel(false);
        let cfg = SignInRiskConfig::default();
        for (k, r) in run(&i, 200, &cfg, |_| ("198.51.100.7".into(), CURL))
            .iter()
            .enumerate()
        {
            assert!(r.detections.is_empty(), "sign-in {k}: {r:#?}");
            assert!(r.notes.is_empty(), "sign-in {k}: {r:#?}");
            assert_eq!(r.risk_level, RiskLevel::None);
        }
        // The same against the whole history (199 earlier sign-ins, oldest first).
        let history: Vec<PastSignIn> = (0..199)
            .map(|k| at_s(&i, "198.51.100.7", k * 3 / 2, CURL))
            .collect();
        let r = eval_at_s(&i, "198.51.100.7", 299, CURL, &history, &cfg);
        assert!(r.detections.is_empty(), "{r:#?}");
        // A machine without a user agent: none sent now, none recorded before.
        let blank: Vec<PastSignIn> = history
            .iter()
            .map(|p| PastSignIn {
                user_agent: None,
                ..p.clone()
            })
            .collect();
        let r = eval_at_s(&i, "198.51.100.7", 299, "", &blank, &cfg);
        assert!(r.detections.is_empty(), "{r:#?}");
    }

    #[test]
    fn eleven_networks_in_five_minutes_are_suspicious_velocity() {
        // 10.0.k.1: eleven different /24s, outside the geo and ASN tables (no travel, no new
        // country, no unfamiliar features: only velocity can fire).
        let i = intel(false);
        let cfg = SignInRiskConfig::default();
        let rs = run(&i, 11, &cfg, |k| (format!("10.0.{k}.1"), FIREFOX));
        for r in &rs[..10] {
            assert!(r.detections.is_empty(), "ten networks are allowed: {r:#?}");
        }
        let last = &rs[10];
        assert_eq!(types(last), vec![RiskEventType::SuspiciousVelocity]);
        assert_eq!(last.risk_level, RiskLevel::Medium);
        assert_eq!(last.detections[0].phase, Phase::UserKnown);
        let e = &last.detections[0].explanation;
        assert!(
            e.contains("11 different networks or devices within 5 min")
                && e.contains("more than the 10 allowed")
                && e.contains("10.0.10.0/24"),
            "{e}"
        );
        // Eleven devices on one network count as well.
        let agents = [
            "Agent A", "Agent B", "Agent C", "Agent D", "Agent E", "Agent F", "Agent G", "Agent H",
            "Agent I", "Agent J", "Agent K",
        ];
        let rs = run(&i, 11, &cfg, |k| ("10.0.0.1".into(), agents[k]));
        assert!(rs[..10].iter().all(|r| r.detections.is_empty()));
        assert_eq!(types(&rs[10]), vec![RiskEventType::SuspiciousVelocity]);
    }

    #[test]
    fn velocity_mixed_cases() {
        let i = intel(false);
        let cfg = SignInRiskConfig::default();
        let quiet = |rs: &[SignInRisk], what: &str| {
            for (k, r) in rs.iter().enumerate() {
                assert!(r.detections.is_empty(), "{what}, sign-in {k}: {r:#?}");
            }
        };
        // Two machines taking turns, 200 times: two origins.
        let rs = run(&i, 200, &cfg, |k| {
            if k % 2 == 0 {
                ("10.0.0.1".into(), FIREFOX)
            } else {
                ("10.9.9.9".into(), CURL)
            }
        });
        quiet(&rs, "two machines");
        // One machine whose address moves within its /24 (DHCP) and whose browser updates.
        let rs = run(&i, 50, &cfg, |k| {
            (
                format!("10.0.0.{}", k + 1),
                if k % 2 == 0 { FIREFOX } else { FIREFOX_NEWER },
            )
        });
        quiet(&rs, "DHCP and a browser update");
        // IPv6: one /64 is one network, and an IPv4-mapped address is the IPv4 one.
        let rs = run(&i, 50, &cfg, |k| {
            (format!("fd00:1:2:3::{:x}", k + 1), FIREFOX)
        });
        quiet(&rs, "one IPv6 /64");
        let rs = run(&i, 11, &cfg, |k| {
            (format!("fd00:1:2:{:x}::1", k + 1), FIREFOX)
        });
        assert_eq!(types(&rs[10]), vec![RiskEventType::SuspiciousVelocity]);
        assert!(
            rs[10].detections[0].explanation.contains("fd00:1:2:b::/64"),
            "{:#?}",
            rs[10]
        );
        let rs = run(&i, 50, &cfg, |k| {
            if k % 2 == 0 {
                ("10.0.0.1".into(), FIREFOX)
            } else {
                ("::ffff:10.0.0.2".into(), FIREFOX)
            }
        });
        quiet(&rs, "IPv4-mapped IPv6");
        // A busy test suite does not hide a new network, nor make it suspicious by itself.
        let rs = run(&i, 60, &cfg, |k| {
            if k == 59 {
                ("10.7.7.7".into(), FIREFOX)
            } else {
                ("10.0.0.1".into(), CURL)
            }
        });
        quiet(&rs, "suite, then another machine");
        // Eleven networks, then a repeat from the first: the repeat is not suspicious, and
        // says why velocity was not raised.
        let mut h: Vec<PastSignIn> = (0..11)
            .map(|k| at_s(&i, &format!("10.0.{k}.1"), k * 10, FIREFOX))
            .collect();
        let r = eval_at_s(&i, "10.0.0.1", 120, FIREFOX, &h, &cfg);
        assert!(r.detections.is_empty(), "{r:#?}");
        assert!(
            r.notes
                .iter()
                .any(|n| n.contains("suspiciousVelocity not raised") && n.contains("10.0.0.0/24")),
            "{r:#?}"
        );
        // The same from a network and device seen only yesterday: familiar too.
        h.push(at_s(&i, "10.8.8.8", -86_400, CURL));
        let r = eval_at_s(&i, "10.8.8.8", 120, CURL, &h, &cfg);
        assert!(r.detections.is_empty(), "{r:#?}");
        // A known network with a new device is a new origin.
        let r = eval_at_s(&i, "10.0.0.1", 120, CURL, &h, &cfg);
        assert_eq!(types(&r), vec![RiskEventType::SuspiciousVelocity]);
        assert!(
            r.detections[0]
                .explanation
                .contains("12 different networks or devices"),
            "{r:#?}"
        );
        // Sign-ins before the window do not count: ten in it, the eleventh network now.
        let h: Vec<PastSignIn> = (0..10)
            .map(|k| at_s(&i, &format!("10.0.{k}.1"), -300 + k, FIREFOX))
            .collect();
        let r = eval_at_s(&i, "10.0.99.1", 0, FIREFOX, &h, &cfg);
        assert!(r.detections.is_empty(), "the first is 300 s old: {r:#?}");
        let r = eval_at_s(&i, "10.0.99.1", -1, FIREFOX, &h, &cfg);
        assert_eq!(types(&r), vec![RiskEventType::SuspiciousVelocity]);
        // Sign-ins recorded without an address are each a network of their own.
        let h: Vec<PastSignIn> = (0..10)
            .map(|k| PastSignIn {
                ip: None,
                ..at_s(&i, "10.0.0.1", k, FIREFOX)
            })
            .collect();
        let r = eval_at_s(&i, "10.0.0.1", 20, FIREFOX, &h, &cfg);
        assert_eq!(types(&r), vec![RiskEventType::SuspiciousVelocity]);
        // The threshold and window are configurable.
        let strict = SignInRiskConfig {
            velocity_max_sign_ins: 3,
            velocity_window_seconds: 600,
            ..SignInRiskConfig::default()
        };
        let h: Vec<PastSignIn> = [(1, -60), (2, -120), (3, -1800)]
            .iter()
            .map(|(n, s)| at_s(&i, &format!("10.0.{n}.1"), *s, FIREFOX))
            .collect();
        let r = eval_at_s(&i, "10.0.9.1", 0, FIREFOX, &h, &strict);
        assert!(r.detections.is_empty(), "3 networks in 10 min: allowed");
        let h: Vec<PastSignIn> = [(1, -60), (2, -120), (3, -540)]
            .iter()
            .map(|(n, s)| at_s(&i, &format!("10.0.{n}.1"), *s, FIREFOX))
            .collect();
        let r = eval_at_s(&i, "10.0.9.1", 0, FIREFOX, &h, &strict);
        assert_eq!(types(&r), vec![RiskEventType::SuspiciousVelocity]);
        assert!(
            r.detections[0]
                .explanation
                .contains("4 different networks or devices within 10 min"),
            "{r:#?}"
        );
    }

    #[test]
    fn a_repeat_from_the_same_address_is_never_travel_new_country_or_unfamiliar() {
        let i = intel(false);
        let cfg = SignInRiskConfig::default();
        // The address was geolocated in Oslo (NO, AS64500) when it was recorded; the intel
        // now says Sydney (AU, AS64501). The user did not move: no travel, no new country, and
        // neither the country nor the network is unfamiliar.
        let h: Vec<PastSignIn> = [-10, -20, -30]
            .iter()
            .map(|m| PastSignIn {
                ip: Some("198.51.100.1".parse().unwrap()),
                ..past(&i, "192.0.2.1", *m, FIREFOX)
            })
            .collect();
        let r = eval_with(&i, "198.51.100.1", 0, FIREFOX, &h, &cfg);
        assert!(r.detections.is_empty(), "{r:#?}");
        // The same intel change under another address of that network is judged as ever.
        let r = eval_with(&i, "198.51.100.2", 0, CURL, &h, &cfg);
        for kind in [
            RiskEventType::ImpossibleTravel,
            RiskEventType::NewCountry,
            RiskEventType::UnfamiliarFeatures,
        ] {
            assert!(types(&r).contains(&kind), "{kind}: {r:#?}");
        }
        // Oslo and Sydney in the same second, then Sydney again: judged against Sydney,
        // whichever the history lists first.
        let h = [
            past(&i, "198.51.100.1", -1, FIREFOX),
            past(&i, "192.0.2.1", -1, FIREFOX),
        ];
        let r = eval_with(&i, "198.51.100.1", 0, FIREFOX, &h, &cfg);
        assert!(r.detections.is_empty(), "{r:#?}");
        // A different address in the same place as the last one is still judged: Oslo, then
        // Sydney, then back to Oslo within the hour.
        let h = [
            past(&i, "192.0.2.1", -60, FIREFOX),
            past(&i, "198.51.100.1", -30, FIREFOX),
        ];
        let r = eval_with(&i, "192.0.2.1", 0, FIREFOX, &h, &cfg);
        assert!(
            types(&r).contains(&RiskEventType::ImpossibleTravel),
            "{r:#?}"
        );
    }

    #[test]
    fn agent_comparison_ignores_versions_only() {
        assert!(same_agent(FIREFOX, FIREFOX_NEWER));
        assert!(same_agent("CURL/8.5.0", "curl/7.1"));
        assert!(!same_agent(FIREFOX, CURL));
        assert!(!same_agent("Mozilla/5.0 Chrome/1", "Mozilla/5.0 Firefox/1"));
    }
}
