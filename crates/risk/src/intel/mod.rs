//! IP intelligence: anonymous/malicious CIDR lists, named locations, geolocation and ASN.
//!
//! Loading takes file *contents* (the server does the reading) and returns a complete new
//! [`Intel`] or the first error with its file and line, so a bad reload changes nothing: the
//! caller keeps serving with the previous good value (e.g. behind an `ArcSwap`).
//!
//! Every lookup is O(log n): lists and CSV tables are sorted, merged range tables searched with
//! binary search; MMDB lookups walk the database's binary trie (≤ 128 steps).

pub mod geo;
pub mod lists;
pub mod locations;
#[cfg(test)]
mod mmdb_tests;
pub mod range;

use std::net::IpAddr;

use serde::Serialize;
use thiserror::Error;

pub use geo::{
    AsnDb, AsnRecord, AsnTable, GeoDb, GeoHit, GeoRecord, GeoTable, GeoTableBuilder, Mmdb,
};
pub use locations::{NamedLocation, NamedLocations};
pub use range::{IpRange, IpRangeMap, IpRangeSet};

/// A bad intel file: which file, which line (when the format has lines), the offending content
/// and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{file}{}: {message}{}", .line.map(|l| format!(":{l}")).unwrap_or_default(),
        .content.as_ref().map(|c| format!(" (`{c}`)")).unwrap_or_default())]
pub struct IntelError {
    pub file: String,
    pub line: Option<usize>,
    pub content: Option<String>,
    pub message: String,
}

impl IntelError {
    pub fn at_line(
        file: &str,
        line: usize,
        content: &str,
        message: impl Into<String>,
    ) -> IntelError {
        IntelError {
            file: file.to_owned(),
            line: Some(line),
            content: Some(content.to_owned()),
            message: message.into(),
        }
    }

    pub fn file(file: &str, message: impl Into<String>) -> IntelError {
        IntelError {
            file: file.to_owned(),
            line: None,
            content: None,
            message: message.into(),
        }
    }
}

/// One source file: its name (for errors and for choosing the format by extension) and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntelSource {
    pub name: String,
    pub bytes: Vec<u8>,
}

impl IntelSource {
    pub fn new(name: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            name: name.into(),
            bytes: bytes.into(),
        }
    }

    fn text(&self) -> Result<&str, IntelError> {
        std::str::from_utf8(&self.bytes).map_err(|e| {
            let line = self
                .bytes
                .get(..e.valid_up_to())
                .map_or(1, |b| b.iter().filter(|c| **c == b'\n').count() + 1);
            IntelError {
                file: self.name.clone(),
                line: Some(line),
                content: None,
                message: "not valid UTF-8".into(),
            }
        })
    }

    fn extension(&self) -> String {
        self.name
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase())
            .unwrap_or_default()
    }
}

/// Everything a tenant's intel is made of. Formats by file extension:
/// lists are text; named locations `.toml` or `.json`; geo `.csv` (IP to city lite) or `.mmdb`;
/// ASN `.csv` (IP to ASN lite) or `.mmdb`.
#[derive(Debug, Clone, Default)]
pub struct IntelSources {
    pub anonymous_ips: Vec<IntelSource>,
    pub malicious_ips: Vec<IntelSource>,
    pub named_locations: Option<IntelSource>,
    pub geo: Option<IntelSource>,
    pub asn: Option<IntelSource>,
}

/// The loaded intel: immutable, `Send + Sync`, share it behind an `Arc`.
#[derive(Debug, Default)]
pub struct Intel {
    pub anonymous_ips: IpRangeSet,
    pub malicious_ips: IpRangeSet,
    pub named_locations: NamedLocations,
    pub geo: Option<GeoDb>,
    pub asn: Option<AsnDb>,
}

/// What intel says about one address. Stored with the sign-in so policy, audit and later
/// travel/familiarity checks read the same facts.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct IpFacts {
    pub ip: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latitude: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub longitude: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    pub anonymous: bool,
    pub malicious: bool,
    /// Ids of the named locations the address is in.
    pub named_locations: Vec<String>,
    /// Whether any of those named locations is trusted.
    pub trusted_location: bool,
}

impl Intel {
    /// Loads all sources into a new value; the first bad file or line is the error. Takes the
    /// sources by value so a large MMDB file is not copied.
    pub fn load(sources: IntelSources) -> Result<Intel, IntelError> {
        Self::load_each(sources).map_err(|errors| {
            errors
                .into_iter()
                .next()
                .unwrap_or_else(|| IntelError::file("intel", "not loaded"))
        })
    }

    /// Loads all sources like [`Intel::load`], but reads every file whatever is wrong with the
    /// others: the error is every bad file (every bad line of a CIDR list, up to
    /// [`lists::MAX_BAD_LINES`]; the first problem of the other formats), in source order, so a
    /// start-up check can report them all at once.
    pub fn load_each(sources: IntelSources) -> Result<Intel, Vec<IntelError>> {
        let mut errors = Vec::new();
        let mut parse_lists = |files: &[IntelSource]| {
            let mut ranges = Vec::new();
            for s in files {
                match s.text() {
                    Err(e) => errors.push(e),
                    Ok(text) => match lists::parse_cidr_list_each(&s.name, text) {
                        Ok(r) => ranges.extend(r),
                        Err(e) => errors.extend(e),
                    },
                }
            }
            ranges
        };
        let anon = parse_lists(&sources.anonymous_ips);
        let mal = parse_lists(&sources.malicious_ips);
        let named_locations = match sources.named_locations.as_ref().map(named_locations) {
            None => NamedLocations::default(),
            Some(Ok(n)) => n,
            Some(Err(e)) => {
                errors.push(e);
                NamedLocations::default()
            }
        };
        let geo = match sources.geo.map(geo) {
            None => None,
            Some(Ok(g)) => Some(g),
            Some(Err(e)) => {
                errors.push(e);
                None
            }
        };
        let asn = match sources.asn.map(asn) {
            None => None,
            Some(Ok(a)) => Some(a),
            Some(Err(e)) => {
                errors.push(e);
                None
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Intel {
            anonymous_ips: IpRangeSet::from_ranges(anon),
            malicious_ips: IpRangeSet::from_ranges(mal),
            named_locations,
            geo,
            asn,
        })
    }

    /// One line for logs after a (re)load: what was loaded.
    pub fn describe(&self) -> String {
        let geo = match &self.geo {
            None => "no geolocation".to_owned(),
            Some(GeoDb::Table(t)) => format!("geolocation: {} CSV ranges", t.len()),
            Some(GeoDb::Mmdb(m)) => format!("geolocation: MMDB {}", m.database_type()),
        };
        let asn = match &self.asn {
            None => "no ASN data".to_owned(),
            Some(AsnDb::Table(t)) => format!("ASN: {} CSV ranges", t.len()),
            Some(AsnDb::Mmdb(m)) => format!("ASN: MMDB {}", m.database_type()),
        };
        format!(
            "{} anonymous-IP ranges, {} malicious-IP ranges, {} named locations, {geo}, {asn}",
            self.anonymous_ips.len(),
            self.malicious_ips.len(),
            self.named_locations.len()
        )
    }

    /// Everything known about `ip`.
    pub fn lookup(&self, ip: IpAddr) -> IpFacts {
        let ip = ip.to_canonical();
        let hit = self.geo.as_ref().and_then(|g| g.lookup(ip));
        let country = hit.and_then(|h| h.country);
        let mut named_locations = Vec::new();
        let mut trusted_location = false;
        for l in self.named_locations.matching(ip, country) {
            trusted_location |= l.is_trusted;
            named_locations.push(l.id.clone());
        }
        IpFacts {
            ip: Some(ip),
            country: country.map(str::to_owned),
            city: hit.and_then(|h| h.city).map(str::to_owned),
            latitude: hit.and_then(|h| h.latitude),
            longitude: hit.and_then(|h| h.longitude),
            asn: self.asn.as_ref().and_then(|a| a.lookup(ip)),
            anonymous: self.anonymous_ips.contains(ip),
            malicious: self.malicious_ips.contains(ip),
            named_locations,
            trusted_location,
        }
    }
}

fn named_locations(s: &IntelSource) -> Result<NamedLocations, IntelError> {
    match s.extension().as_str() {
        "toml" => NamedLocations::from_toml(&s.name, s.text()?),
        "json" => NamedLocations::from_json(&s.name, s.text()?),
        other => Err(IntelError::file(
            &s.name,
            format!("named locations must be .toml or .json, not `.{other}`"),
        )),
    }
}

fn geo(s: IntelSource) -> Result<GeoDb, IntelError> {
    match s.extension().as_str() {
        "csv" => Ok(GeoDb::Table(GeoTable::from_csv(&s.name, s.text()?)?)),
        "mmdb" => Ok(GeoDb::Mmdb(Mmdb::from_bytes(&s.name, s.bytes)?)),
        other => Err(IntelError::file(
            &s.name,
            format!("geolocation must be .csv or .mmdb, not `.{other}`"),
        )),
    }
}

fn asn(s: IntelSource) -> Result<AsnDb, IntelError> {
    match s.extension().as_str() {
        "csv" => Ok(AsnDb::Table(AsnTable::from_csv(&s.name, s.text()?)?)),
        "mmdb" => Ok(AsnDb::Mmdb(Mmdb::from_bytes(&s.name, s.bytes)?)),
        other => Err(IntelError::file(
            &s.name,
            format!("ASN data must be .csv or .mmdb, not `.{other}`"),
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn example(name: &str) -> IntelSource {
        let path = format!("{}/../../config/intel/{name}", env!("CARGO_MANIFEST_DIR"));
        IntelSource::new(name, std::fs::read(&path).unwrap())
    }

    fn shipped() -> IntelSources {
        IntelSources {
            anonymous_ips: vec![example("anonymous-ips.txt")],
            malicious_ips: vec![example("malicious-ips.txt")],
            named_locations: Some(example("named-locations.toml")),
            geo: Some(example("geo-city.csv")),
            asn: Some(example("asn.csv")),
        }
    }

    #[test]
    fn shipped_example_files_load_and_demonstrate_each_signal() {
        let intel = Intel::load(shipped()).unwrap();
        assert_eq!(
            intel.describe(),
            "3 anonymous-IP ranges, 2 malicious-IP ranges, 3 named locations, \
             geolocation: 4 CSV ranges, ASN: 4 CSV ranges"
        );
        let anon = intel.lookup("198.51.100.7".parse().unwrap());
        assert!(anon.anonymous, "{anon:?}");
        assert!(!anon.malicious);
        assert!(anon.country.is_some());
        let mal = intel.lookup("203.0.113.66".parse().unwrap());
        assert!(mal.malicious, "{mal:?}");
        let hq = intel.lookup("192.0.2.10".parse().unwrap());
        assert!(hq.trusted_location, "{hq:?}");
        assert!(hq.asn.is_some());
        let v6 = intel.lookup("2001:db8::1".parse().unwrap());
        assert!(v6.latitude.is_some(), "{v6:?}");
        // The documentation ranges are placed in far-apart cities.
        let (a, b) = (
            intel.lookup("192.0.2.1".parse().unwrap()),
            intel.lookup("203.0.113.1".parse().unwrap()),
        );
        assert_ne!(a.country, b.country);
        let d = crate::signin::haversine_km(
            (a.latitude.unwrap(), a.longitude.unwrap()),
            (b.latitude.unwrap(), b.longitude.unwrap()),
        );
        assert!(d > 5_000.0, "{d}");
    }

    #[test]
    fn one_bad_file_fails_the_whole_load() {
        let mut s = shipped();
        s.malicious_ips.push(IntelSource::new(
            "extra.txt",
            "192.0.2.1\n\n# x\n10.0.0.0/8x\n",
        ));
        let err = Intel::load(s).unwrap_err();
        assert_eq!(
            err.to_string(),
            "extra.txt:4: not a CIDR network (expected e.g. 192.0.2.0/24 or 2001:db8::/32) (`10.0.0.0/8x`)"
        );
        let mut s = shipped();
        s.geo = Some(IntelSource::new("geo.xlsx", "x"));
        assert!(
            Intel::load(s)
                .unwrap_err()
                .message
                .contains(".csv or .mmdb")
        );
        let mut s = shipped();
        s.anonymous_ips = vec![IntelSource::new("anon.txt", b"192.0.2.1\n\xff\n".to_vec())];
        let err = Intel::load(s).unwrap_err();
        assert_eq!(err.line, Some(2));
        assert!(err.message.contains("UTF-8"));
    }

    #[test]
    fn load_each_reports_every_bad_file() {
        let mut s = shipped();
        s.anonymous_ips
            .push(IntelSource::new("a.txt", "192.0.2.1\nnope\n300.0.0.1\n"));
        s.malicious_ips
            .push(IntelSource::new("m.txt", "10.0.0.0/8x\n"));
        s.geo = Some(IntelSource::new("geo.xlsx", "x"));
        let errors = Intel::load_each(s).unwrap_err();
        let shown: Vec<String> = errors
            .iter()
            .map(|e| format!("{}:{:?}", e.file, e.line))
            .collect();
        assert_eq!(
            shown,
            [
                "a.txt:Some(2)",
                "a.txt:Some(3)",
                "m.txt:Some(1)",
                "geo.xlsx:None"
            ]
        );
    }

    #[test]
    fn empty_intel_knows_nothing() {
        let f = Intel::default().lookup("192.0.2.1".parse().unwrap());
        assert_eq!(f.country, None);
        assert!(!f.anonymous && !f.malicious && !f.trusted_location);
        assert!(f.named_locations.is_empty());
    }
}
