//! The client's address: the TCP peer, unless the peer is a proxy the operator
//! trusts, in which case `X-Forwarded-For` says who the peer forwarded for.
//!
//! `CADENZA_TRUSTED_PROXIES` lists the proxies as CIDRs (`10.0.0.0/8,
//! 2001:db8::/32`); empty (the default) trusts none, and the TCP peer is the
//! client. The header is read from the right, skipping the hops that are
//! trusted proxies themselves: the first hop that is not one is the client.
//! Everything left of it was written by the client or by proxies nobody
//! vouches for, so it never counts, whatever it says. A malformed hop ends the
//! walk at the last trusted one.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

pub const TRUSTED_PROXIES: &str = "CADENZA_TRUSTED_PROXIES";

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
}

impl TrustedProxies {
    /// Parses comma-separated CIDRs (a bare address is one host), naming the
    /// first entry that is neither.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut networks = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let network = entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("`{entry}` is not an address or a CIDR (like 10.0.0.0/8)"))?;
            networks.push(network);
        }
        Ok(Self { networks })
    }

    pub fn from_env(env: &mut cadenza_config::Env) -> Self {
        let list = env.string(TRUSTED_PROXIES, "");
        Self::parse(&list).unwrap_or_else(|reason| {
            env.problem(TRUSTED_PROXIES, reason);
            Self::default()
        })
    }

    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    fn trusts(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.networks.iter().any(|net| net.contains(&address))
    }

    /// The client's address for a request from `peer` carrying `headers`.
    pub fn client(&self, peer: Option<SocketAddr>, headers: &http::HeaderMap) -> Option<IpAddr> {
        let peer = canonical(peer?.ip());
        if !self.trusts(peer) {
            return Some(peer);
        }
        // Every X-Forwarded-For line, in order, as one list of hops.
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Ok(address) = hop.parse::<IpAddr>().map(canonical) else {
                break;
            };
            client = address;
            if !self.trusts(address) {
                break;
            }
        }
        Some(client)
    }
}

/// IPv4 addresses that arrive as IPv4-mapped IPv6 (a dual-stack socket) are
/// compared, limited and logged as the IPv4 addresses they are.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(lines: &[&str]) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        for line in lines {
            headers.append("x-forwarded-for", line.parse().expect("header"));
        }
        headers
    }

    fn peer(ip: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(ip.parse().expect("ip"), 443))
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().expect("ip"))
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client(peer("203.0.113.5"), &headers(&["198.51.100.1"])),
            ip("203.0.113.5")
        );
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let trusted = TrustedProxies::parse("10.0.0.0/8, 192.0.2.1").expect("parse");
        // client -> (forged entry written by the client) -> CDN 192.0.2.1 -> ingress 10.1.2.3
        let forwarded = headers(&["6.6.6.6, 198.51.100.7", "192.0.2.1"]);
        assert_eq!(
            trusted.client(peer("10.1.2.3"), &forwarded),
            ip("198.51.100.7")
        );
        // An untrusted peer's header is ignored entirely.
        assert_eq!(
            trusted.client(peer("203.0.113.9"), &forwarded),
            ip("203.0.113.9")
        );
        // No header: the trusted proxy itself.
        assert_eq!(
            trusted.client(peer("10.1.2.3"), &headers(&[])),
            ip("10.1.2.3")
        );
        // A malformed hop stops the walk at the last trusted one.
        assert_eq!(
            trusted.client(peer("10.1.2.3"), &headers(&["198.51.100.7, not-an-ip"])),
            ip("10.1.2.3")
        );
        // Mapped IPv4 is IPv4.
        assert_eq!(
            trusted.client(peer("::ffff:10.1.2.3"), &headers(&["198.51.100.7"])),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn bad_entries_are_named() {
        let err = TrustedProxies::parse("10.0.0.0/8, proxy.internal").expect_err("a name");
        assert!(err.contains("proxy.internal"), "{err}");
        assert!(TrustedProxies::parse("").expect("empty").is_empty());
    }
}
