//! Which address a request is for: the socket peer, or, when the peer is a
//! trusted proxy, the address it reports in `X-Forwarded-For` or, if so
//! configured, `Forwarded` (RFC 7239). Anyone can send those headers, so
//! they count only from trusted proxies, and the chain is read right to
//! left: each proxy appends the address it saw, so the rightmost address
//! that is not itself a trusted proxy is the client, and entries to its left
//! were written by the client and prove nothing. The walk reads at most
//! [`Forwarding::max_hops`] entries, counted from the right (counted from the
//! left, a client that pre-fills the header would push the entries the
//! proxies appended out of reach and pick its own address).
//!
//! Only one header is read, the one the operator's proxy writes: a proxy
//! that appends `X-Forwarded-For` passes a client's `Forwarded` through
//! untouched, so preferring `Forwarded` whenever it is present would let
//! any client choose its address (nginx's `real_ip_header` and Envoy's
//! `xff_num_trusted_hops` likewise read one header).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use http::HeaderMap;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

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

/// The header a trusted proxy reports the client's address in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx, HAProxy, Envoy, cloud load balancers).
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239).
    Forwarded,
}

/// Default for `director.max-forwarded-hops`: real chains are a few hops.
pub const DEFAULT_MAX_FORWARDED_HOPS: usize = 32;

/// Which peers' forwarding headers are believed, and how far.
#[derive(Debug, Clone, Copy)]
pub struct Forwarding<'a> {
    /// Proxies whose forwarding header counts.
    pub trusted: &'a [IpNet],
    pub header: ForwardedHeader,
    /// Entries read at most, from the right: bounds the work one request causes.
    pub max_hops: usize,
}

/// The client's address for a request from `peer` (see the module docs).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, f: Forwarding<'_>) -> (IpAddr, AddressSource) {
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| f.trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return (peer, AddressSource::Peer);
    }
    let source = match f.header {
        ForwardedHeader::XForwardedFor => AddressSource::XForwardedFor,
        ForwardedHeader::Forwarded => AddressSource::Forwarded,
    };
    let mut client = None;
    for hop in hops_from_right(headers, f.header).take(f.max_hops) {
        // An unreadable hop (`unknown`, an obfuscated name, junk) ends what
        // can be trusted: the last good address stands.
        let Some(ip) = hop else { break };
        client = Some(ip);
        if !is_trusted(&ip) {
            break;
        }
    }
    match client {
        Some(ip) => (ip, source),
        None => (peer, AddressSource::Peer),
    }
}

/// The chain's entries, rightmost first, parsed lazily so that only the
/// entries taken are looked at. Several header lines form one chain, in
/// order. A line that is not visible ASCII is one unreadable hop.
fn hops_from_right(
    headers: &HeaderMap,
    header: ForwardedHeader,
) -> impl Iterator<Item = Option<IpAddr>> + '_ {
    let name = match header {
        ForwardedHeader::XForwardedFor => "x-forwarded-for",
        ForwardedHeader::Forwarded => "forwarded",
    };
    headers
        .get_all(name)
        .iter()
        .rev()
        .flat_map(|v| v.to_str().unwrap_or("").rsplit(','))
        .map(move |entry| match header {
            ForwardedHeader::XForwardedFor => parse_node(entry.trim()),
            ForwardedHeader::Forwarded => forwarded_for(entry),
        })
}

/// The `for=` of one `Forwarded` element (`for=1.2.3.4;proto=https`). An
/// element without one is a proxy that did not say whom it heard from: an
/// unreadable hop, not one to skip (skipping it would credit the entry to its
/// left, which the client may have written).
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("for")
            .then(|| parse_node(v.trim().trim_matches('"')))
    })?
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

#[cfg(test)]
#[path = "client_proptests.rs"]
mod proptests;
