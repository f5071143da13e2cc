//! Named locations (Graph `ipNamedLocation` / `countryNamedLocation`), from TOML or JSON:
//!
//! ```toml
//! [[namedLocations]]
//! id = "hq"
//! displayName = "Head office"
//! isTrusted = true
//! ipRanges = ["192.0.2.0/25", { cidrAddress = "2001:db8:1::/48" }]
//!
//! [[namedLocations]]
//! id = "embargoed"
//! displayName = "Countries we do not serve"
//! countriesAndRegions = ["KP"]
//! includeUnknownCountriesAndRegions = false
//! ```
//!
//! As in Graph, a location is either IP-based (and may be trusted) or country-based (never
//! trusted: a country is not something an admin controls).

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::IntelError;
use super::lists::parse_cidr_or_ip;
use super::range::{IpRange, IpRangeSet};

/// One CIDR: a plain string, or Graph's `{ "cidrAddress": "..." }` object.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Cidr(IpRange);

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Clone, Copy)]
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Cidr;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a CIDR string or an object with cidrAddress")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Cidr, E> {
                parse_cidr_or_ip(s.trim())
                    .map(Cidr)
                    .map_err(|m| E::custom(format!("`{s}`: {m}")))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Cidr, A::Error> {
                let mut cidr = None;
                while let Some(k) = map.next_key::<String>()? {
                    if k == "cidrAddress" {
                        let s: String = map.next_value()?;
                        cidr = Some(self.visit_str::<A::Error>(&s)?);
                    } else {
                        // `@odata.type` and friends.
                        map.next_value::<de::IgnoredAny>()?;
                    }
                }
                cidr.ok_or_else(|| de::Error::missing_field("cidrAddress"))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawLocation {
    #[serde(rename = "@odata.type", default)]
    _odata_type: Option<String>,
    id: String,
    display_name: String,
    #[serde(default)]
    is_trusted: bool,
    #[serde(default)]
    ip_ranges: Vec<Cidr>,
    #[serde(default)]
    countries_and_regions: Vec<String>,
    #[serde(default)]
    include_unknown_countries_and_regions: bool,
    #[serde(default, rename = "createdDateTime")]
    _created: Option<String>,
    #[serde(default, rename = "modifiedDateTime")]
    _modified: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawFile {
    #[serde(default, alias = "value")]
    named_locations: Vec<RawLocation>,
}

#[derive(Debug, Clone, PartialEq)]
enum Matcher {
    Ips(IpRangeSet),
    Countries {
        codes: Vec<String>,
        include_unknown: bool,
    },
}

/// A compiled named location.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedLocation {
    pub id: String,
    pub display_name: String,
    pub is_trusted: bool,
    matcher: Matcher,
}

impl NamedLocation {
    /// An IP-based location.
    pub fn ip(
        id: impl Into<String>,
        display_name: impl Into<String>,
        is_trusted: bool,
        ranges: impl IntoIterator<Item = IpRange>,
    ) -> Self {
        Self {
            id: id.into(),
            display_name: display_name.into(),
            is_trusted,
            matcher: Matcher::Ips(IpRangeSet::from_ranges(ranges)),
        }
    }

    /// A country-based location (ISO 3166-1 alpha-2 codes).
    pub fn countries(
        id: impl Into<String>,
        display_name: impl Into<String>,
        codes: impl IntoIterator<Item = String>,
        include_unknown: bool,
    ) -> Self {
        Self {
            id: id.into(),
            display_name: display_name.into(),
            is_trusted: false,
            matcher: Matcher::Countries {
                codes: codes.into_iter().map(|c| c.to_ascii_uppercase()).collect(),
                include_unknown,
            },
        }
    }

    /// Whether a sign-in from `ip`, geolocated to `country`, is in this location.
    pub fn matches(&self, ip: IpAddr, country: Option<&str>) -> bool {
        match &self.matcher {
            Matcher::Ips(set) => set.contains(ip),
            Matcher::Countries {
                codes,
                include_unknown,
            } => match country {
                Some(c) => codes.iter().any(|k| k.eq_ignore_ascii_case(c)),
                None => *include_unknown,
            },
        }
    }
}

/// All named locations of a tenant.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NamedLocations {
    locations: Vec<NamedLocation>,
}

impl NamedLocations {
    pub fn new(locations: Vec<NamedLocation>) -> Self {
        Self { locations }
    }

    /// Parses TOML (`[[namedLocations]]`) .
    pub fn from_toml(file: &str, text: &str) -> Result<Self, IntelError> {
        let de = toml::Deserializer::parse(text).map_err(|e| toml_error(file, text, &e))?;
        let raw: RawFile = serde_path_to_error::deserialize(de).map_err(|e| {
            let line = e.inner().span().map(|s| line_of(text, s.start));
            located(file, text, line, e.path().to_string(), e.inner().message())
        })?;
        Self::compile(file, raw)
    }

    /// Parses JSON (`{"namedLocations": [...]}` or Graph's `{"value": [...]}`).
    pub fn from_json(file: &str, text: &str) -> Result<Self, IntelError> {
        let mut de = serde_json::Deserializer::from_str(text);
        let raw: RawFile = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let line = Some(e.inner().line()).filter(|l| *l > 0);
            let msg = e.inner().to_string();
            // serde_json appends " at line L column C"; the line is reported separately.
            let msg = msg.split(" at line ").next().unwrap_or(&msg).to_owned();
            located(file, text, line, e.path().to_string(), &msg)
        })?;
        Self::compile(file, raw)
    }

    fn compile(file: &str, raw: RawFile) -> Result<Self, IntelError> {
        let mut seen = HashSet::new();
        let mut locations = Vec::with_capacity(raw.named_locations.len());
        for (i, r) in raw.named_locations.into_iter().enumerate() {
            let field = |f: &str| format!("namedLocations[{i}].{f}");
            let err = |f: &str, m: String| IntelError::file(file, format!("{}: {m}", field(f)));
            if r.id.trim().is_empty() {
                return Err(err("id", "must not be empty".into()));
            }
            if !seen.insert(r.id.clone()) {
                return Err(err("id", format!("duplicate named location id `{}`", r.id)));
            }
            let has_ips = !r.ip_ranges.is_empty();
            let has_countries =
                !r.countries_and_regions.is_empty() || r.include_unknown_countries_and_regions;
            let loc = match (has_ips, has_countries) {
                (true, true) => {
                    return Err(err(
                        "ipRanges",
                        "a location is either IP-based (ipRanges) or country-based \
                         (countriesAndRegions), not both"
                            .into(),
                    ));
                }
                (false, false) => {
                    return Err(err(
                        "ipRanges",
                        "give ipRanges or countriesAndRegions".into(),
                    ));
                }
                (true, false) => NamedLocation::ip(
                    r.id,
                    r.display_name,
                    r.is_trusted,
                    r.ip_ranges.into_iter().map(|c| c.0),
                ),
                (false, true) => {
                    if r.is_trusted {
                        return Err(err(
                            "isTrusted",
                            "only IP-based locations can be trusted".into(),
                        ));
                    }
                    for (j, c) in r.countries_and_regions.iter().enumerate() {
                        if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_alphabetic()) {
                            return Err(err(
                                &format!("countriesAndRegions[{j}]"),
                                format!("`{c}` is not a two-letter ISO 3166-1 code"),
                            ));
                        }
                    }
                    NamedLocation::countries(
                        r.id,
                        r.display_name,
                        r.countries_and_regions,
                        r.include_unknown_countries_and_regions,
                    )
                }
            };
            locations.push(loc);
        }
        Ok(Self { locations })
    }

    /// The locations a sign-in matches, and whether any of them is trusted.
    pub fn matching<'s>(
        &'s self,
        ip: IpAddr,
        country: Option<&'s str>,
    ) -> impl Iterator<Item = &'s NamedLocation> + 's {
        self.locations
            .iter()
            .filter(move |l| l.matches(ip, country))
    }

    pub fn get(&self, id: &str) -> Option<&NamedLocation> {
        self.locations.iter().find(|l| l.id == id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &NamedLocation> {
        self.locations.iter()
    }

    pub fn len(&self) -> usize {
        self.locations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.locations.is_empty()
    }
}

pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset.min(text.len()))
        .map_or(0, |p| p.bytes().filter(|b| *b == b'\n').count())
        + 1
}

pub(crate) fn toml_error(file: &str, text: &str, e: &toml::de::Error) -> IntelError {
    let line = e.span().map(|s| line_of(text, s.start));
    located(file, text, line, String::new(), e.message())
}

fn located(file: &str, text: &str, line: Option<usize>, path: String, msg: &str) -> IntelError {
    let msg = msg.trim();
    let message = if path.is_empty() || path == "." {
        msg.to_owned()
    } else {
        format!("{path}: {msg}")
    };
    match line {
        Some(l) => {
            let content = text.lines().nth(l - 1).unwrap_or("").trim();
            IntelError::at_line(file, l, content, message)
        }
        None => IntelError::file(file, message),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const TOML: &str = r#"
[[namedLocations]]
id = "hq"
displayName = "Head office"
isTrusted = true
ipRanges = ["192.0.2.0/25", { cidrAddress = "2001:db8:1::/48" }]

[[namedLocations]]
id = "embargo"
displayName = "Embargoed"
countriesAndRegions = ["kp", "IR"]
includeUnknownCountriesAndRegions = true
"#;

    #[test]
    fn toml_and_json_agree() {
        let t = NamedLocations::from_toml("loc.toml", TOML).unwrap();
        let json = r##"{"value": [
          {"@odata.type": "#microsoft.graph.ipNamedLocation", "id": "hq", "displayName": "Head office",
           "isTrusted": true, "ipRanges": [{"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "192.0.2.0/25"}, "2001:db8:1::/48"]},
          {"id": "embargo", "displayName": "Embargoed", "countriesAndRegions": ["KP", "IR"], "includeUnknownCountriesAndRegions": true}
        ]}"##;
        let j = NamedLocations::from_json("loc.json", json).unwrap();
        assert_eq!(t, j);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn matching_by_ip_and_country() {
        let l = NamedLocations::from_toml("loc.toml", TOML).unwrap();
        let ids = |ip: &str, c: Option<&str>| {
            l.matching(ip.parse().unwrap(), c)
                .map(|l| (l.id.clone(), l.is_trusted))
                .collect::<Vec<_>>()
        };
        assert_eq!(ids("192.0.2.5", Some("NO")), vec![("hq".into(), true)]);
        assert_eq!(ids("192.0.2.200", Some("NO")), vec![]);
        assert_eq!(ids("2001:db8:1::9", Some("NO")), vec![("hq".into(), true)]);
        assert_eq!(
            ids("203.0.113.1", Some("ir")),
            vec![("embargo".into(), false)]
        );
        assert_eq!(ids("203.0.113.1", None), vec![("embargo".into(), false)]);
    }

    #[test]
    fn bad_files_name_field_and_line() {
        let cases: [(&str, Option<usize>, &str); 7] = [
            (
                "[[namedLocations]]\nid = \"x\"\ndisplayName = \"X\"\nipRanges = [\"192.0.2.0/33\"]\n",
                Some(4),
                "192.0.2.0/33",
            ),
            (
                "[[namedLocations]]\nid = \"x\"\ndisplayName = \"X\"\nisTrusted = true\ncountriesAndRegions = [\"NO\"]\n",
                None,
                "only IP-based",
            ),
            (
                "[[namedLocations]]\nid = \"x\"\ndisplayName = \"X\"\n",
                None,
                "give ipRanges",
            ),
            (
                "[[namedLocations]]\nid = \"x\"\ndisplayName = \"X\"\ncountriesAndRegions = [\"Norway\"]\n",
                None,
                "countriesAndRegions[0]",
            ),
            (
                "[[namedLocations]]\nid = \"x\"\ndisplayName = \"X\"\nipRanges = [\"192.0.2.0/24\"]\n[[namedLocations]]\nid = \"x\"\ndisplayName = \"Y\"\nipRanges = [\"192.0.2.0/24\"]\n",
                None,
                "duplicate",
            ),
            (
                "[[namedLocations]]\nid = \"x\"\ndisplayName = \"X\"\nipRange = [\"192.0.2.0/24\"]\n",
                Some(4),
                "unknown field",
            ),
            ("[[namedLocations]\n", Some(1), ""),
        ];
        for (text, line, msg) in cases {
            let err = NamedLocations::from_toml("loc.toml", text).unwrap_err();
            assert_eq!(err.file, "loc.toml");
            assert_eq!(err.line, line, "{text}: {err}");
            assert!(err.to_string().contains(msg), "{text}: {err}");
        }
        let err = NamedLocations::from_json("loc.json", "{\"namedLocations\": [\n {\"id\": 3}\n]}")
            .unwrap_err();
        assert_eq!(err.line, Some(2), "{err}");
        assert!(err.message.contains("namedLocations[0].id"), "{err}");
    }
}
