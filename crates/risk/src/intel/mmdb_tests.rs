//! MMDB loading and lookup against a tiny database written here, byte by byte, following the
//! MaxMind DB format spec (24-bit records, IPv6 tree with IPv4 under `::/96`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::IpAddr;

use super::{AsnDb, GeoDb, Intel, IntelSource, IntelSources, Mmdb};

enum V<'a> {
    Str(&'a str),
    F64(f64),
    U32(u32),
    U16(u16),
    U64(u64),
    Map(Vec<(&'a str, V<'a>)>),
    Arr(Vec<V<'a>>),
}

fn ctrl(out: &mut Vec<u8>, ty: u8, size: usize) {
    assert!(size < 29 + 256);
    let (low, extra) = if size < 29 {
        (size as u8, None)
    } else {
        (29, Some((size - 29) as u8))
    };
    if ty <= 7 {
        out.push((ty << 5) | low);
    } else {
        out.push(low);
        out.push(ty - 7);
    }
    out.extend(extra);
}

fn enc(out: &mut Vec<u8>, v: &V<'_>) {
    match v {
        V::Str(s) => {
            ctrl(out, 2, s.len());
            out.extend_from_slice(s.as_bytes());
        }
        V::F64(f) => {
            ctrl(out, 3, 8);
            out.extend_from_slice(&f.to_be_bytes());
        }
        V::U16(n) => {
            ctrl(out, 5, 2);
            out.extend_from_slice(&n.to_be_bytes());
        }
        V::U32(n) => {
            ctrl(out, 6, 4);
            out.extend_from_slice(&n.to_be_bytes());
        }
        V::U64(n) => {
            ctrl(out, 9, 8);
            out.extend_from_slice(&n.to_be_bytes());
        }
        V::Map(kv) => {
            ctrl(out, 7, kv.len());
            for (k, v) in kv {
                enc(out, &V::Str(k));
                enc(out, v);
            }
        }
        V::Arr(items) => {
            ctrl(out, 11, items.len());
            for i in items {
                enc(out, i);
            }
        }
    }
}

const EMPTY: u32 = u32::MAX;

/// Builds an IPv6 database from (network bits as a 128-bit prefix, prefix length, record).
fn build(db_type: &str, networks: &[(u128, u32, V<'_>)]) -> Vec<u8> {
    let mut data = Vec::new();
    let mut nodes: Vec<[u32; 2]> = vec![[EMPTY, EMPTY]];
    let mut leaves: Vec<(usize, usize, usize)> = Vec::new(); // (node, side, data offset)
    for (net, len, rec) in networks {
        let offset = data.len();
        enc(&mut data, rec);
        let mut node = 0usize;
        for depth in 0..*len {
            let bit = ((net >> (127 - depth)) & 1) as usize;
            if depth + 1 == *len {
                leaves.push((node, bit, offset));
            } else {
                if nodes[node][bit] == EMPTY {
                    nodes.push([EMPTY, EMPTY]);
                    nodes[node][bit] = (nodes.len() - 1) as u32;
                }
                node = nodes[node][bit] as usize;
            }
        }
    }
    let count = nodes.len() as u32;
    for (node, side, offset) in leaves {
        nodes[node][side] = count + 16 + offset as u32;
    }
    let mut out = Vec::new();
    for [l, r] in nodes {
        for rec in [l, r] {
            let rec = if rec == EMPTY { count } else { rec };
            out.extend_from_slice(&rec.to_be_bytes()[1..]);
        }
    }
    out.extend_from_slice(&[0u8; 16]);
    out.extend_from_slice(&data);
    out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
    enc(
        &mut out,
        &V::Map(vec![
            ("node_count", V::U32(count)),
            ("record_size", V::U16(24)),
            ("ip_version", V::U16(6)),
            ("database_type", V::Str(db_type)),
            ("languages", V::Arr(vec![V::Str("en")])),
            ("binary_format_major_version", V::U16(2)),
            ("binary_format_minor_version", V::U16(0)),
            ("build_epoch", V::U64(1_700_000_000)),
            ("description", V::Map(vec![("en", V::Str("tenantd test"))])),
        ]),
    );
    out
}

fn city<'a>(iso: &'a str, name: &'a str, lat: f64, lon: f64) -> V<'a> {
    V::Map(vec![
        (
            "city",
            V::Map(vec![("names", V::Map(vec![("en", V::Str(name))]))]),
        ),
        ("country", V::Map(vec![("iso_code", V::Str(iso))])),
        (
            "location",
            V::Map(vec![("latitude", V::F64(lat)), ("longitude", V::F64(lon))]),
        ),
    ])
}

fn v4_in_v6(a: [u8; 4]) -> u128 {
    u128::from(u32::from_be_bytes(a))
}

fn city_db() -> Vec<u8> {
    build(
        "GeoLite2-City",
        &[
            (
                v4_in_v6([192, 0, 2, 0]),
                96 + 24,
                city("NO", "Oslo", 59.9139, 10.7522),
            ),
            (
                0x2001_0db8_u128 << 96,
                32,
                city("US", "San Francisco", 37.7749, -122.4194),
            ),
        ],
    )
}

fn asn_db() -> Vec<u8> {
    build(
        "GeoLite2-ASN",
        &[(
            v4_in_v6([198, 51, 100, 0]),
            96 + 24,
            V::Map(vec![
                ("autonomous_system_number", V::U32(64497)),
                (
                    "autonomous_system_organization",
                    V::Str("Southern Cross Transit"),
                ),
            ]),
        )],
    )
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn mmdb_city_lookup_v4_and_v6() {
    let db = Mmdb::from_bytes("GeoLite2-City.mmdb", city_db()).unwrap();
    assert_eq!(db.database_type(), "GeoLite2-City");
    let oslo = db.lookup_geo(ip("192.0.2.77")).unwrap();
    assert_eq!(oslo.country, Some("NO"));
    assert_eq!(oslo.city, Some("Oslo"));
    assert_eq!(oslo.latitude, Some(59.9139));
    assert_eq!(oslo.longitude, Some(10.7522));
    let sf = db.lookup_geo(ip("2001:db8:42::1")).unwrap();
    assert_eq!(sf.country, Some("US"));
    assert_eq!(sf.city, Some("San Francisco"));
    assert!(db.lookup_geo(ip("192.0.3.1")).is_none());
    assert!(db.lookup_geo(ip("2001:db9::1")).is_none());
    assert!(db.lookup_geo(ip("::ffff:192.0.2.1")).is_some());
}

#[test]
fn mmdb_asn_lookup() {
    let db = Mmdb::from_bytes("GeoLite2-ASN.mmdb", asn_db()).unwrap();
    assert_eq!(
        db.lookup_asn(ip("198.51.100.7")),
        Some((64497, Some("Southern Cross Transit")))
    );
    assert_eq!(db.lookup_asn(ip("192.0.2.1")), None);
}

#[test]
fn mmdb_through_intel_load_by_extension() {
    let intel = Intel::load(IntelSources {
        geo: Some(IntelSource::new("city.mmdb", city_db())),
        asn: Some(IntelSource::new("asn.MMDB", asn_db())),
        ..IntelSources::default()
    })
    .unwrap();
    assert!(matches!(intel.geo, Some(GeoDb::Mmdb(_))));
    assert!(matches!(intel.asn, Some(AsnDb::Mmdb(_))));
    let f = intel.lookup(ip("192.0.2.1"));
    assert_eq!(f.city.as_deref(), Some("Oslo"));
    assert_eq!(intel.lookup(ip("198.51.100.7")).asn, Some(64497));
}

#[test]
fn truncated_mmdb_refused_at_load() {
    let mut bytes = city_db();
    bytes.truncate(bytes.len() - 30);
    let err = Mmdb::from_bytes("city.mmdb", bytes).unwrap_err();
    assert_eq!(err.file, "city.mmdb");
    // A flipped byte in the search tree is caught by verification, not at the first lookup.
    let mut bytes = city_db();
    bytes[0] = 0xff;
    assert!(Mmdb::from_bytes("city.mmdb", bytes).is_err());
}
