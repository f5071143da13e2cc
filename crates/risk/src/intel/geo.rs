//! IP geolocation and ASN: CSV range tables (the common free "IP to city lite" and "IP to ASN
//! lite" layouts) and MaxMind MMDB files (GeoIP2/GeoLite2 City and ASN) read from bytes.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;

use super::IntelError;
use super::range::{IpRange, IpRangeMap};

/// Where an address is.
#[derive(Debug, Clone, PartialEq)]
pub struct GeoRecord {
    /// ISO 3166-1 alpha-2, upper case (`"NO"`); empty when unknown.
    pub country: Box<str>,
    pub city: Box<str>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
}

/// What the geo database says about one address (borrowed from the database).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoHit<'a> {
    pub country: Option<&'a str>,
    pub city: Option<&'a str>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
}

/// A range table of geo records; records shared by many ranges are stored once.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GeoTable {
    map: IpRangeMap<u32>,
    records: Vec<GeoRecord>,
}

/// Collects ranges and deduplicates their records, then builds a [`GeoTable`].
#[derive(Debug, Default)]
pub struct GeoTableBuilder {
    entries: Vec<(IpRange, u32)>,
    records: Vec<GeoRecord>,
    index: HashMap<(Box<str>, Box<str>, u64, u64), u32>,
}

impl GeoTableBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(ranges: usize) -> Self {
        Self {
            entries: Vec::with_capacity(ranges),
            ..Self::default()
        }
    }

    pub fn push(&mut self, range: IpRange, record: GeoRecord) {
        let key = (
            record.country.clone(),
            record.city.clone(),
            record.latitude.map_or(u64::MAX, f64::to_bits),
            record.longitude.map_or(u64::MAX, f64::to_bits),
        );
        let next = u32::try_from(self.records.len()).unwrap_or(u32::MAX);
        let idx = *self.index.entry(key).or_insert_with(|| {
            self.records.push(record);
            next
        });
        self.entries.push((range, idx));
    }

    /// Builds the table; overlapping ranges are refused with their positions in push order.
    pub fn build(self) -> Result<GeoTable, super::range::Overlap> {
        Ok(GeoTable {
            map: IpRangeMap::from_entries(self.entries)?,
            records: self.records,
        })
    }
}

impl GeoTable {
    /// Parses the "IP to city lite" CSV layout:
    /// `ip_start,ip_end,continent,country,stateprov,city,latitude,longitude`
    /// (IPv4 and IPv6 rows, fields optionally double-quoted). Blank lines and `#` comment lines
    /// are skipped, as is a header row starting with `ip_start`. Errors name the file, line and
    /// content.
    pub fn from_csv(file: &str, text: &str) -> Result<GeoTable, IntelError> {
        let mut b = GeoTableBuilder::new();
        let mut lines = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let Some(fields) = csv_row(file, i + 1, raw)? else {
                continue;
            };
            if fields.len() != 8 {
                return Err(IntelError::at_line(
                    file,
                    i + 1,
                    raw.trim(),
                    format!(
                        "expected 8 fields (ip_start,ip_end,continent,country,stateprov,city,\
                         latitude,longitude), found {}",
                        fields.len()
                    ),
                ));
            }
            let bad = |m: String| IntelError::at_line(file, i + 1, raw.trim(), m);
            let range = range_of(&fields[0], &fields[1]).map_err(bad)?;
            let latitude = coord(&fields[6], 90.0, "latitude").map_err(bad)?;
            let longitude = coord(&fields[7], 180.0, "longitude").map_err(bad)?;
            if latitude.is_some() != longitude.is_some() {
                return Err(bad(
                    "latitude and longitude must both be given or both empty".into(),
                ));
            }
            let country = fields[3].trim().to_ascii_uppercase();
            if !(country.is_empty()
                || country.len() == 2 && country.bytes().all(|c| c.is_ascii_alphabetic()))
            {
                return Err(bad(format!(
                    "country must be a two-letter ISO code, found `{}`",
                    fields[3].trim()
                )));
            }
            b.push(
                range,
                GeoRecord {
                    country: country.into_boxed_str(),
                    city: fields[5].trim().into(),
                    latitude,
                    longitude,
                },
            );
            lines.push(i + 1);
        }
        b.build().map_err(|o| overlap_error(file, text, &lines, o))
    }

    pub fn lookup(&self, ip: IpAddr) -> Option<GeoHit<'_>> {
        let r = self.records.get(*self.map.get(ip)? as usize)?;
        Some(GeoHit {
            country: (!r.country.is_empty()).then_some(&*r.country),
            city: (!r.city.is_empty()).then_some(&*r.city),
            latitude: r.latitude,
            longitude: r.longitude,
        })
    }

    /// Number of ranges.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Autonomous system of an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsnRecord {
    pub number: u32,
    pub organization: Box<str>,
}

/// A range table of ASNs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AsnTable {
    map: IpRangeMap<u32>,
    records: Vec<AsnRecord>,
}

impl AsnTable {
    /// Parses the "IP to ASN lite" CSV layout: `ip_start,ip_end,as_number,as_organisation`
    /// (`as_number` with or without an `AS` prefix). Same comment/header rules as the geo CSV.
    pub fn from_csv(file: &str, text: &str) -> Result<AsnTable, IntelError> {
        let mut entries = Vec::new();
        let mut records: Vec<AsnRecord> = Vec::new();
        let mut by_number: HashMap<u32, u32> = HashMap::new();
        let mut lines = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let Some(fields) = csv_row(file, i + 1, raw)? else {
                continue;
            };
            let bad = |m: String| IntelError::at_line(file, i + 1, raw.trim(), m);
            if fields.len() != 4 {
                return Err(bad(format!(
                    "expected 4 fields (ip_start,ip_end,as_number,as_organisation), found {}",
                    fields.len()
                )));
            }
            let range = range_of(&fields[0], &fields[1]).map_err(bad)?;
            let n = fields[2].trim();
            let n = n
                .strip_prefix("AS")
                .or_else(|| n.strip_prefix("as"))
                .unwrap_or(n);
            let number: u32 = n
                .parse()
                .map_err(|_| bad(format!("as_number is not a number: `{}`", fields[2].trim())))?;
            let idx = *by_number.entry(number).or_insert_with(|| {
                records.push(AsnRecord {
                    number,
                    organization: fields[3].trim().into(),
                });
                u32::try_from(records.len() - 1).unwrap_or(u32::MAX)
            });
            entries.push((range, idx));
            lines.push(i + 1);
        }
        let map =
            IpRangeMap::from_entries(entries).map_err(|o| overlap_error(file, text, &lines, o))?;
        Ok(AsnTable { map, records })
    }

    /// Builds a table from ranges in memory (tests, benches).
    pub fn from_entries(
        entries: Vec<(IpRange, AsnRecord)>,
    ) -> Result<AsnTable, super::range::Overlap> {
        let mut records = Vec::with_capacity(entries.len());
        let mut idx = Vec::with_capacity(entries.len());
        for (i, (r, rec)) in entries.into_iter().enumerate() {
            records.push(rec);
            idx.push((r, u32::try_from(i).unwrap_or(u32::MAX)));
        }
        Ok(AsnTable {
            map: IpRangeMap::from_entries(idx)?,
            records,
        })
    }

    pub fn lookup(&self, ip: IpAddr) -> Option<&AsnRecord> {
        self.records.get(*self.map.get(ip)? as usize)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// A MaxMind database (GeoIP2/GeoLite2 City, Country or ASN) read from bytes.
pub struct Mmdb {
    reader: maxminddb::Reader<Vec<u8>>,
}

impl std::fmt::Debug for Mmdb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mmdb")
            .field("database_type", &self.reader.metadata().database_type)
            .finish()
    }
}

impl Mmdb {
    /// Opens a database from its bytes; a corrupt or truncated file is refused here, not at the
    /// first lookup.
    pub fn from_bytes(file: &str, bytes: Vec<u8>) -> Result<Mmdb, IntelError> {
        let reader = maxminddb::Reader::from_source(bytes)
            .map_err(|e| IntelError::file(file, format!("not a valid MaxMind DB: {e}")))?;
        reader
            .verify()
            .map_err(|e| IntelError::file(file, format!("MaxMind DB failed verification: {e}")))?;
        Ok(Mmdb { reader })
    }

    /// The database's `database_type` (e.g. `GeoLite2-City`).
    pub fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }

    /// City/country/location of an address. Lookup errors (an IPv6 address in an IPv4-only
    /// database, a corrupt record) are treated as "unknown": a sign-in is not failed because a
    /// geo record is bad.
    pub fn lookup_geo(&self, ip: IpAddr) -> Option<GeoHit<'_>> {
        let found = self.reader.lookup(ip.to_canonical()).ok()?;
        let city: maxminddb::geoip2::City<'_> = found.decode().ok()??;
        Some(GeoHit {
            country: city.country.iso_code,
            city: city.city.names.english,
            latitude: city.location.latitude,
            longitude: city.location.longitude,
        })
    }

    /// Autonomous system of an address (GeoLite2-ASN layout).
    pub fn lookup_asn(&self, ip: IpAddr) -> Option<(u32, Option<&str>)> {
        let found = self.reader.lookup(ip.to_canonical()).ok()?;
        let asn: maxminddb::geoip2::Asn<'_> = found.decode().ok()??;
        Some((
            asn.autonomous_system_number?,
            asn.autonomous_system_organization,
        ))
    }
}

/// Geolocation source: a CSV range table or an MMDB file.
#[derive(Debug)]
pub enum GeoDb {
    Table(GeoTable),
    Mmdb(Mmdb),
}

impl GeoDb {
    pub fn lookup(&self, ip: IpAddr) -> Option<GeoHit<'_>> {
        match self {
            GeoDb::Table(t) => t.lookup(ip),
            GeoDb::Mmdb(m) => m.lookup_geo(ip),
        }
    }
}

/// ASN source: a CSV range table or an MMDB file.
#[derive(Debug)]
pub enum AsnDb {
    Table(AsnTable),
    Mmdb(Mmdb),
}

impl AsnDb {
    pub fn lookup(&self, ip: IpAddr) -> Option<u32> {
        match self {
            AsnDb::Table(t) => t.lookup(ip).map(|r| r.number),
            AsnDb::Mmdb(m) => m.lookup_asn(ip).map(|(n, _)| n),
        }
    }
}

fn overlap_error(file: &str, text: &str, lines: &[usize], o: super::range::Overlap) -> IntelError {
    let first = lines.get(o.first).copied().unwrap_or(0);
    let second = lines.get(o.second).copied().unwrap_or(0);
    let content = text
        .lines()
        .nth(second.saturating_sub(1))
        .unwrap_or("")
        .trim();
    IntelError::at_line(
        file,
        second,
        content,
        format!("range overlaps the range on line {first}"),
    )
}

fn range_of(start: &str, end: &str) -> Result<IpRange, String> {
    let s: IpAddr = start
        .trim()
        .parse()
        .map_err(|_| format!("ip_start is not an IP address: `{}`", start.trim()))?;
    let e: IpAddr = end
        .trim()
        .parse()
        .map_err(|_| format!("ip_end is not an IP address: `{}`", end.trim()))?;
    IpRange::new(s, e).ok_or_else(|| {
        if s.is_ipv4() != e.is_ipv4() {
            "ip_start and ip_end are of different IP versions".to_owned()
        } else {
            "ip_start is after ip_end".to_owned()
        }
    })
}

fn coord(s: &str, max: f64, what: &str) -> Result<Option<f64>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{what} is not a number: `{s}`"))?;
    if !v.is_finite() || v.abs() > max {
        return Err(format!("{what} out of range (±{max}): `{s}`"));
    }
    Ok(Some(v))
}

/// Splits one CSV line (RFC 4180 quoting, `""` for a quote inside quotes). Returns `None` for
/// blank lines, `#` comments and an `ip_start,...` header.
fn csv_row<'t>(
    file: &str,
    line_no: usize,
    raw: &'t str,
) -> Result<Option<Vec<Cow<'t, str>>>, IntelError> {
    let line = raw.trim_end_matches('\r');
    let t = line.trim_start();
    if t.is_empty()
        || t.starts_with('#')
        || t.starts_with("ip_start")
        || t.starts_with("\"ip_start")
    {
        return Ok(None);
    }
    let mut fields = Vec::with_capacity(8);
    let bytes = line.as_bytes();
    let mut i = 0;
    loop {
        // Skip spaces before a field.
        while bytes.get(i) == Some(&b' ') {
            i += 1;
        }
        if bytes.get(i) == Some(&b'"') {
            let mut value = String::new();
            let mut j = i + 1;
            loop {
                match bytes.get(j) {
                    None => {
                        return Err(IntelError::at_line(
                            file,
                            line_no,
                            raw.trim(),
                            "unterminated quoted field",
                        ));
                    }
                    Some(b'"') if bytes.get(j + 1) == Some(&b'"') => {
                        value.push('"');
                        j += 2;
                    }
                    Some(b'"') => {
                        j += 1;
                        break;
                    }
                    Some(_) => {
                        // Push the whole UTF-8 character starting here.
                        let ch = line
                            .get(j..)
                            .and_then(|r| r.chars().next())
                            .unwrap_or('\u{fffd}');
                        value.push(ch);
                        j += ch.len_utf8();
                    }
                }
            }
            while bytes.get(j) == Some(&b' ') {
                j += 1;
            }
            fields.push(Cow::Owned(value));
            match bytes.get(j) {
                None => break,
                Some(b',') => i = j + 1,
                Some(_) => {
                    return Err(IntelError::at_line(
                        file,
                        line_no,
                        raw.trim(),
                        "text after a closing quote",
                    ));
                }
            }
        } else {
            let end = line
                .get(i..)
                .and_then(|r| r.find(','))
                .map_or(line.len(), |p| i + p);
            fields.push(Cow::Borrowed(line.get(i..end).unwrap_or("")));
            if end >= line.len() {
                break;
            }
            i = end + 1;
        }
    }
    Ok(Some(fields))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const CSV: &str = "\
# ip_start,ip_end,continent,country,stateprov,city,latitude,longitude
ip_start,ip_end,continent,country,stateprov,city,latitude,longitude
192.0.2.0,192.0.2.255,EU,NO,Oslo,Oslo,59.9139,10.7522
\"198.51.100.0\",\"198.51.100.255\",\"OC\",\"au\",\"New South Wales\",\"Sydney, NSW\",\"-33.8688\",\"151.2093\"

2001:db8::,2001:db8:ffff:ffff:ffff:ffff:ffff:ffff,NA,US,California,San Francisco,37.7749,-122.4194
203.0.113.0,203.0.113.255,SA,BR,,,,
";

    #[test]
    fn csv_lookup_v4_v6_quoted_and_empty_fields() {
        let t = GeoTable::from_csv("geo.csv", CSV).unwrap();
        assert_eq!(t.len(), 4);
        let oslo = t.lookup("192.0.2.9".parse().unwrap()).unwrap();
        assert_eq!(oslo.country, Some("NO"));
        assert_eq!(oslo.city, Some("Oslo"));
        assert_eq!(oslo.latitude, Some(59.9139));
        let syd = t.lookup("198.51.100.7".parse().unwrap()).unwrap();
        assert_eq!(syd.country, Some("AU"));
        assert_eq!(syd.city, Some("Sydney, NSW"));
        assert_eq!(syd.longitude, Some(151.2093));
        let sf = t.lookup("2001:db8:1::7".parse().unwrap()).unwrap();
        assert_eq!(sf.country, Some("US"));
        assert_eq!(sf.latitude, Some(37.7749));
        let br = t.lookup("203.0.113.1".parse().unwrap()).unwrap();
        assert_eq!(br.country, Some("BR"));
        assert_eq!(br.city, None);
        assert_eq!(br.latitude, None);
        assert!(t.lookup("192.0.3.1".parse().unwrap()).is_none());
        assert!(t.lookup("2001:db9::1".parse().unwrap()).is_none());
        assert!(t.lookup("::ffff:192.0.2.1".parse().unwrap()).is_some());
    }

    #[test]
    fn csv_bad_lines_name_line_and_content() {
        let ok = "192.0.2.0,192.0.2.255,EU,NO,Oslo,Oslo,59.9,10.7\n";
        let cases = [
            (
                "192.0.2.0,192.0.2.255,EU,NO,Oslo,Oslo,59.9\n",
                1,
                "expected 8 fields",
            ),
            (
                "192.0.2.0,192.0.2.x,EU,NO,Oslo,Oslo,59.9,10.7\n",
                1,
                "ip_end is not an IP",
            ),
            (
                "192.0.2.9,192.0.2.1,EU,NO,Oslo,Oslo,59.9,10.7\n",
                1,
                "after ip_end",
            ),
            (
                "192.0.2.0,2001:db8::,EU,NO,Oslo,Oslo,59.9,10.7\n",
                1,
                "different IP versions",
            ),
            (
                "192.0.2.0,192.0.2.255,EU,NO,Oslo,Oslo,91,10.7\n",
                1,
                "latitude out of range",
            ),
            (
                "192.0.2.0,192.0.2.255,EU,NO,Oslo,Oslo,59.9,east\n",
                1,
                "longitude is not a number",
            ),
            (
                "192.0.2.0,192.0.2.255,EU,NO,Oslo,Oslo,59.9,\n",
                1,
                "both be given",
            ),
            (
                "192.0.2.0,192.0.2.255,EU,Norway,Oslo,Oslo,59.9,10.7\n",
                1,
                "two-letter",
            ),
            (
                "192.0.2.0,192.0.2.255,EU,NO,\"Oslo,Oslo,59.9,10.7\n",
                1,
                "unterminated",
            ),
            (
                "192.0.2.0,192.0.2.255,EU,NO,\"Oslo\"x,Oslo,59.9,10.7\n",
                1,
                "after a closing quote",
            ),
        ];
        for (bad, line, msg) in cases {
            let text = format!("# header\n{ok}{bad}");
            let err = GeoTable::from_csv("geo.csv", &text).unwrap_err();
            assert_eq!(err.line, Some(line + 2), "{bad}: {err}");
            assert_eq!(err.content.as_deref(), Some(bad.trim()));
            assert!(err.message.contains(msg), "{bad}: {err}");
        }
    }

    #[test]
    fn csv_overlap_names_both_lines() {
        let text = "192.0.2.0,192.0.2.255,EU,NO,Oslo,Oslo,59.9,10.7\n\
                    # gap\n\
                    192.0.2.128,192.0.2.130,EU,SE,,Stockholm,59.3,18.0\n";
        let err = GeoTable::from_csv("geo.csv", text).unwrap_err();
        assert_eq!(err.line, Some(3));
        assert!(err.message.contains("line 1"), "{err}");
    }

    #[test]
    fn records_are_shared_between_ranges() {
        let text = "192.0.2.0,192.0.2.9,EU,NO,Oslo,Oslo,59.9,10.7\n\
                    192.0.2.10,192.0.2.19,EU,NO,Oslo,Oslo,59.9,10.7\n\
                    192.0.2.20,192.0.2.29,EU,NO,Oslo,Bergen,60.4,5.3\n";
        let t = GeoTable::from_csv("geo.csv", text).unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t.records.len(), 2);
    }

    #[test]
    fn asn_csv() {
        let text = "ip_start,ip_end,as_number,as_organisation\n\
                    192.0.2.0,192.0.2.255,AS64500,Example Net\n\
                    2001:db8::,2001:db8::ffff,64501,\"Doc, Inc\"\n";
        let t = AsnTable::from_csv("asn.csv", text).unwrap();
        assert_eq!(
            t.lookup("192.0.2.1".parse().unwrap()).map(|r| r.number),
            Some(64500)
        );
        let r = t.lookup("2001:db8::1".parse().unwrap()).unwrap();
        assert_eq!((r.number, &*r.organization), (64501, "Doc, Inc"));
        let err = AsnTable::from_csv("asn.csv", "192.0.2.0,192.0.2.255,ASX,Bad\n").unwrap_err();
        assert_eq!(err.line, Some(1));
        assert!(err.message.contains("as_number"));
    }

    #[test]
    fn mmdb_garbage_refused() {
        let err = Mmdb::from_bytes("GeoLite2-City.mmdb", b"not a database".to_vec()).unwrap_err();
        assert_eq!(err.file, "GeoLite2-City.mmdb");
        assert!(err.message.contains("MaxMind"), "{err}");
    }
}
