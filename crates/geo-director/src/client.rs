//! Which address a request is for: the socket peer, or, when the peer is a
//! trusted proxy, the address it reports in `Forwarded` (RFC 7239) or
//! `X-Forwarded-For`. Anyone can send those headers, so they count only from
//! trusted proxies, and the chain is read right to left: the rightmost
//! address that is not itself a trusted proxy is the client (entries to its
//! left were written by the client and prove nothing).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use http::HeaderMap;
use ipnet::IpNet;
use serde::Serialize;

/// Where the client address came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AddressSource {
    Peer,
    Forwarded,
    XForwardedFor,
    /// Given as `?ip=` to `/v1/route`.
    Query,
}

/// Bounds the work one request can cause; real chains are a few hops.
const MAX_HOPS: usize = 32;

pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> (IpAddr, AddressSource) {
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return (peer, AddressSource::Peer);
    }
    let (hops, source) = if headers.contains_key(http::header::FORWARDED) {
        (forwarded_for(headers), AddressSource::Forwarded)
    } else {
        (x_forwarded_for(headers), AddressSource::XForwardedFor)
    };
    let mut client = None;
    for hop in hops.iter().rev() {
        // An unreadable hop (`unknown`, an obfuscated name, junk) ends what
        // can be trusted: the last good address stands.
        let Some(ip) = hop else { break };
        client = Some(*ip);
        if !is_trusted(ip) {
            break;
        }
    }
    match client {
        Some(ip) => (ip, source),
        None => (peer, AddressSource::Peer),
    }
}

fn x_forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .take(MAX_HOPS)
        .map(|s| parse_node(s.trim()))
        .collect()
}

fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all(http::header::FORWARDED)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .take(MAX_HOPS)
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| parse_node(v.trim().trim_matches('"')))
            })
        })
        .collect()
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:80`, `[2001:db8::1]:80`, `2001:db8::1`.
fn parse_node(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa.ip().to_canonical());
    }
    let inner = s.strip_prefix('[')?.split(']').next()?;
    inner
        .parse::<Ipv6Addr>()
        .ok()
        .map(|a| IpAddr::V6(a).to_canonical())
}

/// True for addresses no geo database can place: private, loopback,
/// link-local, shared (CGNAT), documentation, benchmarking, multicast and
/// other reserved space (IANA special-purpose registries).
pub fn is_special(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(a) => is_special_v4(a),
        IpAddr::V6(a) => is_special_v6(a),
    }
}

fn is_special_v4(a: Ipv4Addr) -> bool {
    let [b0, b1, b2, _] = a.octets();
    a.is_unspecified()
        || a.is_private()
        || a.is_loopback()
        || a.is_link_local()
        || a.is_multicast()
        || a.is_broadcast()
        || a.is_documentation()
        || b0 == 0
        || b0 >= 240
        || (b0 == 100 && (64..128).contains(&b1)) // 100.64.0.0/10 shared
        || (b0 == 192 && b1 == 0 && b2 == 0) // 192.0.0.0/24 protocol assignments
        || (b0 == 198 && (b1 == 18 || b1 == 19)) // 198.18.0.0/15 benchmarking
}

fn is_special_v6(a: Ipv6Addr) -> bool {
    let s = a.segments();
    a.is_unspecified()
        || a.is_loopback()
        || a.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // fc00::/7 unique local
        || (s[0] & 0xffc0) == 0xfe80 // fe80::/10 link-local
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0) // 100::/64 discard
        || (s[0] == 0x2001 && s[1] < 0x0200) // 2001::/23 IETF protocol assignments
        || s[0] < 0x2000 // outside 2000::/3, the global unicast space
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
