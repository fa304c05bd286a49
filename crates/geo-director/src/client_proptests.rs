//! Property tests of the director's client-address code (issue 13):
//! `X-Forwarded-For` and RFC 7239 `Forwarded` read right to left.

use std::net::Ipv4Addr;

use http::HeaderValue;
use proptest::prelude::*;

use super::*;

/// Trusted proxies live in 10.0.0.0/8; the client never does.
fn trusted() -> Vec<IpNet> {
    vec!["10.0.0.0/8".parse().expect("cidr")]
}

fn proxy() -> impl Strategy<Value = IpAddr> {
    any::<[u8; 3]>().prop_map(|[a, b, c]| IpAddr::V4(Ipv4Addr::new(10, a, b, c)))
}

fn client() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (11u8..=223, any::<[u8; 3]>())
            .prop_map(|(a, [b, c, d])| IpAddr::V4(Ipv4Addr::new(a, b, c, d))),
        any::<[u16; 8]>()
            .prop_filter("not v4-mapped", |s| IpAddr::from(*s)
                .to_canonical()
                .is_ipv6())
            .prop_map(IpAddr::from),
    ]
}

/// How a proxy writes an address in each header.
fn write(ip: IpAddr, header: ForwardedHeader, port: bool) -> String {
    let node = match (ip, port) {
        (IpAddr::V4(a), false) => a.to_string(),
        (IpAddr::V4(a), true) => format!("{a}:4711"),
        (IpAddr::V6(a), false) => a.to_string(),
        (IpAddr::V6(a), true) => format!("[{a}]:4711"),
    };
    match header {
        ForwardedHeader::XForwardedFor => node,
        ForwardedHeader::Forwarded if ip.is_ipv6() || port => format!("for=\"{node}\";proto=https"),
        ForwardedHeader::Forwarded => format!("for={node}"),
    }
}

fn header_name(h: ForwardedHeader) -> &'static str {
    match h {
        ForwardedHeader::XForwardedFor => "x-forwarded-for",
        ForwardedHeader::Forwarded => "forwarded",
    }
}

fn which() -> impl Strategy<Value = ForwardedHeader> {
    prop::sample::select(vec![
        ForwardedHeader::XForwardedFor,
        ForwardedHeader::Forwarded,
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Whatever a client writes before the entries the trusted proxies
    /// appended (forged addresses, junk, quotes, several lines), the
    /// address found is the one the first trusted proxy saw: the client
    /// cannot choose it.
    #[test]
    fn a_client_cannot_choose_its_address(
        forged in "[ -~]{0,40}",
        real in client(),
        chain in proptest::collection::vec(proxy(), 0..4),
        peer in proxy(),
        header in which(),
        ports in any::<bool>(),
        lines in any::<bool>(),
    ) {
        let mut entries = vec![write(real, header, ports)];
        entries.extend(chain.iter().map(|p| write(*p, header, ports)));
        let mut h = HeaderMap::new();
        let name = header_name(header);
        if lines {
            h.append(name, HeaderValue::from_str(&forged).expect("visible"));
            h.append(name, HeaderValue::from_str(&entries.join(", ")).expect("ascii"));
        } else {
            let value = format!("{forged}, {}", entries.join(","));
            h.append(name, HeaderValue::from_str(&value).expect("visible"));
        }
        let nets = trusted();
        let f = Forwarding { trusted: &nets, header, max_hops: DEFAULT_MAX_FORWARDED_HOPS };
        let source = match header {
            ForwardedHeader::XForwardedFor => AddressSource::XForwardedFor,
            ForwardedHeader::Forwarded => AddressSource::Forwarded,
        };
        prop_assert_eq!(client_ip(peer, &h, f), (real.to_canonical(), source), "{:?}", h);
    }

    /// No panic on any header; an untrusted peer is never overridden; a
    /// trusted one is replaced only by an address the header names.
    #[test]
    fn only_trusted_peers_are_overridden(
        values in proptest::collection::vec("[ -~]{0,30}", 0..3),
        header in which(),
        untrusted in client(),
        peer in proxy(),
        max_hops in 0usize..5,
    ) {
        let mut h = HeaderMap::new();
        for v in &values {
            h.append(header_name(header), HeaderValue::from_str(v).expect("visible"));
        }
        let nets = trusted();
        let f = Forwarding { trusted: &nets, header, max_hops };
        prop_assert_eq!(client_ip(untrusted, &h, f), (untrusted.to_canonical(), AddressSource::Peer));
        let (ip, source) = client_ip(peer, &h, f);
        if source == AddressSource::Peer {
            prop_assert_eq!(ip, peer);
        } else {
            prop_assert!(max_hops > 0);
            let all = values.join(",");
            let named = all
                .split(',')
                .any(|e| parse_node(e.trim()) == Some(ip) || forwarded_for(e) == Some(ip));
            prop_assert!(named, "{} not in {:?}", ip, values);
        }
    }
}
