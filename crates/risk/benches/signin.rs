//! Sign-in risk evaluation with production-sized intel built in memory (no I/O):
//! 100,000 CIDR entries (anonymous + malicious lists), a 1,000,000-range geo table, a 100,000-range
//! ASN table, 20 named locations and a 20-sign-in history. Target: ≤ 5 µs per evaluation.
//!
//! `cargo bench -p tenantd-risk --bench signin`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use criterion::{Criterion, criterion_group, criterion_main};
use time::{Duration, OffsetDateTime};

use tenantd_risk::intel::{
    AsnDb, AsnRecord, AsnTable, GeoDb, GeoRecord, GeoTableBuilder, IpRange, IpRangeSet,
    NamedLocation, NamedLocations,
};
use tenantd_risk::{Intel, PastSignIn, SignInContext, SignInRiskConfig, evaluate_sign_in};

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn build_intel() -> Intel {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // 100k CIDR entries: 45k IPv4 + 5k IPv6 in each of the two lists.
    let list = |rng: &mut Rng| {
        let mut ranges = Vec::with_capacity(50_000);
        for _ in 0..45_000 {
            let len = 20 + (rng.next() % 13) as u32; // /20 .. /32
            let host_mask = u32::MAX.checked_shr(len).unwrap_or(0);
            let start = (rng.next() as u32) & !host_mask;
            ranges.push(IpRange::V4(start, start | host_mask));
        }
        for _ in 0..5_000 {
            let start = (0x2001_0db8_u128 << 96) | (u128::from(rng.next()) << 32);
            ranges.push(IpRange::V6(start, start + 0xffff));
        }
        IpRangeSet::from_ranges(ranges)
    };
    let anonymous_ips = list(&mut rng);
    let malicious_ips = list(&mut rng);

    // 1M geo ranges tiling the IPv4 space (4,096 addresses each), 10,000 distinct cities.
    let mut geo = GeoTableBuilder::with_capacity(1_000_000);
    let cities: Vec<GeoRecord> = (0..10_000)
        .map(|i| GeoRecord {
            country: format!(
                "{}{}",
                (b'A' + (i % 26) as u8) as char,
                (b'A' + (i / 26 % 26) as u8) as char
            )
            .into_boxed_str(),
            city: format!("City {i}").into_boxed_str(),
            latitude: Some(-60.0 + (i as f64 * 0.0123) % 120.0),
            longitude: Some(-180.0 + (i as f64 * 0.0371) % 360.0),
        })
        .collect();
    for i in 0..1_000_000u32 {
        let start = i * 4096;
        let city = cities[(rng.next() % cities.len() as u64) as usize].clone();
        geo.push(IpRange::V4(start, start + 4095), city);
    }
    let geo = geo.build().unwrap();

    // 100k ASN ranges.
    let asn = AsnTable::from_entries(
        (0..100_000u32)
            .map(|i| {
                let start = i * 40_960;
                (
                    IpRange::V4(start, start + 40_959),
                    AsnRecord {
                        number: 64_512 + (i % 1000),
                        organization: "Net".into(),
                    },
                )
            })
            .collect(),
    )
    .unwrap();

    let mut locations = Vec::new();
    for i in 0..10u32 {
        let s = i << 24;
        locations.push(NamedLocation::ip(
            format!("ip-{i}"),
            format!("Office {i}"),
            i % 2 == 0,
            [IpRange::V4(s, s + 255)],
        ));
        locations.push(NamedLocation::countries(
            format!("c-{i}"),
            format!("Countries {i}"),
            ["AA".to_owned(), format!("B{}", (b'A' + i as u8) as char)],
            false,
        ));
    }

    Intel {
        anonymous_ips,
        malicious_ips,
        named_locations: NamedLocations::new(locations),
        geo: Some(GeoDb::Table(geo)),
        asn: Some(AsnDb::Table(asn)),
    }
}

fn bench(c: &mut Criterion) {
    let intel = build_intel();
    let config = SignInRiskConfig {
        familiarity_min_history: 3,
        ..SignInRiskConfig::default()
    };
    let now = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
    let ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
    let mut rng = Rng(42);
    let history: Vec<PastSignIn> = (0..20)
        .map(|i| {
            let ip = IpAddr::V4(Ipv4Addr::from(rng.next() as u32));
            PastSignIn::from_facts(now - Duration::hours(6 * (i + 1)), ua, &intel.lookup(ip))
        })
        .collect();
    let ips: Vec<IpAddr> = (0..4096)
        .map(|i| {
            if i % 16 == 0 {
                IpAddr::V6(Ipv6Addr::from(
                    (0x2001_0db8_u128 << 96) | u128::from(rng.next()),
                ))
            } else {
                IpAddr::V4(Ipv4Addr::from(rng.next() as u32))
            }
        })
        .collect();

    let hits = ips
        .iter()
        .map(|ip| {
            let ctx = SignInContext {
                ip: *ip,
                user_agent: ua,
                at: now,
                history: &history,
                token: None,
            };
            evaluate_sign_in(&ctx, &intel, &config).detections.len()
        })
        .sum::<usize>();
    eprintln!(
        "intel: {} anonymous + {} malicious merged ranges, geo 1,000,000 ranges; {} detections over {} sample sign-ins",
        intel.anonymous_ips.len(),
        intel.malicious_ips.len(),
        hits,
        ips.len()
    );

    let mut i = 0usize;
    c.bench_function(
        "evaluate_sign_in (100k CIDRs, 1M geo ranges, 20 history)",
        |b| {
            b.iter(|| {
                i = (i + 1) % ips.len();
                let ctx = SignInContext {
                    ip: ips[i],
                    user_agent: ua,
                    at: now,
                    history: &history,
                    token: None,
                };
                black_box(evaluate_sign_in(black_box(&ctx), &intel, &config))
            })
        },
    );
    let mut j = 0usize;
    c.bench_function("intel.lookup only", |b| {
        b.iter(|| {
            j = (j + 1) % ips.len();
            black_box(intel.lookup(black_box(ips[j])))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
