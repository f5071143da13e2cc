//! CIDR list files: one CIDR or single IP per line, `#` comments (whole-line or trailing),
//! blank lines ignored. Used for the anonymous-IP and malicious-IP lists (e.g. Tor exits).

use std::net::IpAddr;

use ipnet::IpNet;

use super::IntelError;
use super::range::{IpRange, IpRangeSet};

/// How many bad lines of one list file [`parse_cidr_list_each`] names; more are counted.
pub const MAX_BAD_LINES: usize = 10;

/// Parses one list file. Errors name the file, the 1-based line and its content.
pub fn parse_cidr_list(file: &str, text: &str) -> Result<Vec<IpRange>, IntelError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        out.push(
            parse_cidr_or_ip(line)
                .map_err(|message| IntelError::at_line(file, i + 1, raw.trim(), message))?,
        );
    }
    Ok(out)
}

/// Parses one list file, reporting every bad line (the first [`MAX_BAD_LINES`], then how many
/// more there are), for a check that shows all mistakes at once.
pub fn parse_cidr_list_each(file: &str, text: &str) -> Result<Vec<IpRange>, Vec<IntelError>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut more = 0usize;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        match parse_cidr_or_ip(line) {
            Ok(r) => out.push(r),
            Err(_) if errors.len() == MAX_BAD_LINES => more += 1,
            Err(message) => errors.push(IntelError::at_line(file, i + 1, raw.trim(), message)),
        }
    }
    if more > 0 {
        errors.push(IntelError::file(
            file,
            format!("{more} more bad line(s) not shown"),
        ));
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// `a.b.c.d/n`, `x::/n`, or a single address. A CIDR with host bits set (`192.0.2.7/24`) is
/// refused: it is almost always a typo, and silently widening it would flag innocent addresses.
pub(crate) fn parse_cidr_or_ip(s: &str) -> Result<IpRange, String> {
    if s.contains('/') {
        let net: IpNet = s
            .parse()
            .map_err(|_| "not a CIDR network (expected e.g. 192.0.2.0/24 or 2001:db8::/32)")?;
        if net.trunc() != net {
            return Err(format!(
                "host bits set in CIDR (did you mean {}?)",
                net.trunc()
            ));
        }
        Ok(IpRange::from_net(net))
    } else {
        let ip: IpAddr = s
            .parse()
            .map_err(|_| "not an IP address or CIDR network".to_owned())?;
        Ok(IpRange::single(ip))
    }
}

/// Parses several list files into one set.
pub fn load_cidr_lists<'a>(
    files: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<IpRangeSet, IntelError> {
    let mut all = Vec::new();
    for (name, text) in files {
        all.extend(parse_cidr_list(name, text)?);
    }
    Ok(IpRangeSet::from_ranges(all))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn good_list_with_comments_blank_lines_and_both_families() {
        let text = "# Tor exits\n\n198.51.100.7\n203.0.113.0/28   # a /28\n  2001:db8:1::/48\n";
        let set = load_cidr_lists([("anon.txt", text)]).unwrap();
        assert!(set.contains("198.51.100.7".parse().unwrap()));
        assert!(!set.contains("198.51.100.8".parse().unwrap()));
        assert!(set.contains("203.0.113.15".parse().unwrap()));
        assert!(!set.contains("203.0.113.16".parse().unwrap()));
        assert!(set.contains("2001:db8:1:ffff::1".parse().unwrap()));
        assert_eq!(set.len(), 3);
    }

    #[test]
    fn each_bad_line_reported_with_number_and_content() {
        let cases = [
            (
                "192.0.2.0/24\n198.51.100.300\n",
                2,
                "198.51.100.300",
                "not an IP",
            ),
            ("# c\n\n192.0.2.0/33\n", 3, "192.0.2.0/33", "not a CIDR"),
            ("192.0.2.7/24\n", 1, "192.0.2.7/24", "host bits"),
            ("192.0.2.1\nhello world\n", 2, "hello world", "not an IP"),
            ("2001:db8::/129\n", 1, "2001:db8::/129", "not a CIDR"),
            (
                "192.0.2.1 192.0.2.2\n",
                1,
                "192.0.2.1 192.0.2.2",
                "not an IP",
            ),
        ];
        for (text, line, content, msg) in cases {
            let all = parse_cidr_list_each("lists/anon.txt", text).unwrap_err();
            assert_eq!(all.len(), 1, "{all:?}");
            assert_eq!(all[0].line, Some(line), "{text:?}");
            let err = parse_cidr_list("lists/anon.txt", text).unwrap_err();
            assert_eq!(err.file, "lists/anon.txt");
            assert_eq!(err.line, Some(line), "{text:?}");
            assert_eq!(err.content.as_deref(), Some(content));
            assert!(err.message.contains(msg), "{err}");
            let shown = err.to_string();
            assert!(
                shown.starts_with(&format!("lists/anon.txt:{line}:")),
                "{shown}"
            );
            assert!(shown.contains(content), "{shown}");
        }
    }

    #[test]
    fn every_bad_line_is_reported_up_to_a_limit() {
        let text = "192.0.2.1\nbad-1\n192.0.2.0/24\nbad-2\n";
        let errors = parse_cidr_list_each("anon.txt", text).unwrap_err();
        let lines: Vec<_> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [Some(2), Some(4)]);
        let many = "x\n".repeat(MAX_BAD_LINES + 5);
        let errors = parse_cidr_list_each("anon.txt", &many).unwrap_err();
        assert_eq!(errors.len(), MAX_BAD_LINES + 1);
        assert!(
            errors[MAX_BAD_LINES].message.contains("5 more"),
            "{errors:?}"
        );
    }
}
