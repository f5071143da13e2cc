//! The client's IP address. `X-Forwarded-For` and `Forwarded` are believed only when the
//! connection comes from a configured trusted proxy; then the address is the right-most hop that
//! is not itself a trusted proxy (the left-most entries are whatever the client chose to send).

use http::HeaderMap;
use ipnet::IpNet;
use std::net::IpAddr;

/// The client IP of a request: its TCP peer (axum's `ConnectInfo`; loopback when a test
/// serves without one) and its forwarding headers, believed only from `trusted` peers.
pub fn of_request(extensions: &http::Extensions, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or(IpAddr::from([127, 0, 0, 1]), |c| c.0.ip());
    client_ip(peer, headers, trusted)
}

/// Work out the client IP from the TCP peer and the forwarding headers.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut hops: Vec<IpAddr> = Vec::new();
    for v in headers.get_all("forwarded") {
        let Ok(v) = v.to_str() else { return peer };
        for element in v.split(',') {
            for pair in element.split(';') {
                let Some((k, val)) = pair.trim().split_once('=') else {
                    continue;
                };
                if k.trim().eq_ignore_ascii_case("for") {
                    match parse_forwarded_node(val.trim()) {
                        Some(ip) => hops.push(ip),
                        None => return peer,
                    }
                }
            }
        }
    }
    if hops.is_empty() {
        for v in headers.get_all("x-forwarded-for") {
            let Ok(v) = v.to_str() else { return peer };
            for part in v.split(',') {
                match part.trim().parse::<IpAddr>() {
                    Ok(ip) => hops.push(ip),
                    Err(_) => return peer,
                }
            }
        }
    }
    hops.iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .copied()
        .or_else(|| hops.first().copied())
        .unwrap_or(peer)
}

/// RFC 7239 node: `192.0.2.1`, `"192.0.2.1:8080"`, `"[2001:db8::1]:443"`.
fn parse_forwarded_node(v: &str) -> Option<IpAddr> {
    let v = v.trim_matches('"');
    if let Some(rest) = v.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    let host = match v.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.contains(':') => h,
        _ => v,
    };
    host.parse().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn h(name: &'static str, v: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(name, v.parse().unwrap());
        m
    }

    fn trusted() -> Vec<IpNet> {
        vec![
            "127.0.0.1/32".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ]
    }

    #[test]
    fn untrusted_peer_headers_are_ignored() {
        let peer: IpAddr = "192.0.2.9".parse().unwrap();
        assert_eq!(
            client_ip(peer, &h("x-forwarded-for", "198.51.100.7"), &trusted()),
            peer
        );
    }

    #[test]
    fn trusted_peer_takes_rightmost_untrusted_hop() {
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        let got = client_ip(
            peer,
            &h("x-forwarded-for", "203.0.113.5, 198.51.100.7, 10.1.2.3"),
            &trusted(),
        );
        assert_eq!(got, "198.51.100.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn forwarded_header_wins_and_handles_ports_and_v6() {
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        let got = client_ip(
            peer,
            &h("forwarded", "for=\"[2001:db8::7]:443\";proto=https"),
            &trusted(),
        );
        assert_eq!(got, "2001:db8::7".parse::<IpAddr>().unwrap());
        let got = client_ip(peer, &h("forwarded", "for=198.51.100.7:1234"), &trusted());
        assert_eq!(got, "198.51.100.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn garbage_falls_back_to_peer() {
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            client_ip(peer, &h("x-forwarded-for", "not-an-ip"), &trusted()),
            peer
        );
    }
}
