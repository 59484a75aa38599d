//! Which address a request came from when a load balancer stands in front:
//! the forwarding headers are believed only from the proxies the operator
//! names (`MARKETPLACE_TRUSTED_PROXIES`); from anyone else, the peer is the
//! client.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::{Error, Result};

/// The proxies whose `Forwarded` / `X-Forwarded-For` headers are believed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses a comma-separated list of addresses and CIDR blocks
    /// (`10.0.0.0/8, 192.168.1.7, ::1`); empty trusts nobody.
    pub fn parse(list: &str) -> Result<TrustedProxies> {
        let mut nets = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = item
                .parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    Error::setting(
                        "MARKETPLACE_TRUSTED_PROXIES",
                        format!("{item} is neither an IP address nor a CIDR block like 10.0.0.0/8"),
                    )
                })?;
            nets.push(net);
        }
        Ok(TrustedProxies(nets))
    }

    /// Whether nobody is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client behind a request that arrived from `peer` with these
    /// headers. The forwarding chain is read from the right (the hop nearest
    /// us): trusted proxies are skipped, and the first address that is not
    /// one is the client. A chain of proxies only, or a header that cannot be
    /// read, gives the last address known; an untrusted peer is the client
    /// whatever it says.
    pub fn client(&self, peer: IpAddr, headers: &http::HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut hops = forwarded_for(headers);
        let mut client = peer;
        while let Some(hop) = hops.pop() {
            client = hop;
            if !self.trusts(hop) {
                break;
            }
        }
        client
    }
}

/// IPv4 addresses mapped into IPv6 compare as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The addresses of the forwarding chain, nearest last: `Forwarded` (RFC
/// 7239) when present, `X-Forwarded-For` otherwise. Entries that are not
/// addresses (`unknown`, obfuscated names) end the chain where they stand.
fn forwarded_for(headers: &http::HeaderMap) -> Vec<IpAddr> {
    let joined = |name: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(",")
    };
    let forwarded = joined("forwarded");
    let raw: Vec<String> = if !forwarded.is_empty() {
        forwarded
            .split(',')
            .filter_map(|element| {
                element.split(';').find_map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    k.trim()
                        .eq_ignore_ascii_case("for")
                        .then(|| v.trim().to_owned())
                })
            })
            .collect()
    } else {
        joined("x-forwarded-for")
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    };
    let mut out = Vec::new();
    for entry in raw {
        match parse_node(&entry) {
            Some(ip) => out.push(canonical(ip)),
            // An unreadable hop: nothing left of it can be believed.
            None => out.clear(),
        }
    }
    out
}

/// `192.0.2.1`, `"192.0.2.1:4711"`, `"[2001:db8::1]:4711"`, `2001:db8::1`.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim().trim_matches('"');
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    node.rsplit_once(':')
        .and_then(|(host, _port)| host.parse::<IpAddr>().ok())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarding_headers_are_believed_only_from_trusted_proxies() {
        let lb = TrustedProxies::parse("10.0.0.0/8, 127.0.0.1").unwrap();
        let xff = headers(&[("x-forwarded-for", "198.51.100.7, 10.1.2.3")]);
        // Through the balancer (and an inner proxy): the real client.
        assert_eq!(lb.client(ip("127.0.0.1"), &xff), ip("198.51.100.7"));
        // Straight from the internet, the same header is a lie.
        assert_eq!(lb.client(ip("203.0.113.9"), &xff), ip("203.0.113.9"));
        // Nobody trusted: the peer, always.
        let none = TrustedProxies::default();
        assert_eq!(none.client(ip("127.0.0.1"), &xff), ip("127.0.0.1"));
        // A client that forges a first hop gets its own address, not the forged one.
        let forged = headers(&[("x-forwarded-for", "1.2.3.4, 198.51.100.7")]);
        assert_eq!(lb.client(ip("10.0.0.2"), &forged), ip("198.51.100.7"));
        // Headers sent twice are one chain.
        let twice = headers(&[
            ("x-forwarded-for", "198.51.100.8"),
            ("x-forwarded-for", "10.9.9.9"),
        ]);
        assert_eq!(lb.client(ip("127.0.0.1"), &twice), ip("198.51.100.8"));
    }

    #[test]
    fn forwarded_wins_and_reads_ports_quotes_and_ipv6() {
        let lb = TrustedProxies::parse("::1, 10.0.0.0/8").unwrap();
        let h = headers(&[
            (
                "forwarded",
                r#"for="[2001:db8::7]:4711";proto=https, for=10.0.0.5:80"#,
            ),
            ("x-forwarded-for", "203.0.113.1"),
        ]);
        assert_eq!(lb.client(ip("::1"), &h), ip("2001:db8::7"));
        // An unreadable hop: the address nearest us after it.
        let h = headers(&[("x-forwarded-for", "198.51.100.7, unknown, 10.0.0.4")]);
        assert_eq!(lb.client(ip("::ffff:10.0.0.1"), &h), ip("10.0.0.4"));
        // No header at all from a proxy: the proxy.
        assert_eq!(lb.client(ip("10.0.0.1"), &headers(&[])), ip("10.0.0.1"));
    }

    #[test]
    fn bad_entries_are_refused_by_name() {
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        match TrustedProxies::parse("10.0.0.0/8, proxy.local") {
            Err(Error::Setting {
                variable, message, ..
            }) => {
                assert_eq!(variable, "MARKETPLACE_TRUSTED_PROXIES");
                assert!(message.contains("proxy.local"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
    }
}
