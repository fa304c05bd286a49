use http::HeaderValue;

use super::*;

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, v.parse().expect("header value"));
    }
    h
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn trusted() -> Vec<IpNet> {
    vec![
        "127.0.0.0/8".parse().expect("cidr"),
        "10.0.0.0/8".parse().expect("cidr"),
    ]
}

fn xff(trusted: &[IpNet]) -> Forwarding<'_> {
    Forwarding {
        trusted,
        header: ForwardedHeader::XForwardedFor,
        max_hops: DEFAULT_MAX_FORWARDED_HOPS,
    }
}

fn fwd(trusted: &[IpNet]) -> Forwarding<'_> {
    Forwarding {
        header: ForwardedHeader::Forwarded,
        ..xff(trusted)
    }
}

const FORGED: &str = "6.6.6.6";
const CLIENT: &str = "81.2.69.142";

/// `n` forged entries, as a client pre-fills the header.
fn forged(n: usize) -> String {
    vec![FORGED; n].join(", ")
}

/// One case: the peer, the header lines, and the address that must win.
struct Case {
    rule: &'static str,
    peer: &'static str,
    lines: Vec<(&'static str, String)>,
    want: (&'static str, AddressSource),
}

fn case(
    rule: &'static str,
    peer: &'static str,
    lines: &[(&'static str, &str)],
    want: (&'static str, AddressSource),
) -> Case {
    Case {
        rule,
        peer,
        lines: lines.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        want,
    }
}

fn check(f: Forwarding<'_>, cases: &[Case]) {
    for c in cases {
        let mut h = HeaderMap::new();
        for (k, v) in &c.lines {
            h.append(*k, v.parse().expect("header value"));
        }
        assert_eq!(
            client_ip(ip(c.peer), &h, f),
            (ip(c.want.0), c.want.1),
            "{}",
            c.rule
        );
    }
}

#[test]
fn x_forwarded_for_is_walked_from_the_right_past_trusted_proxies() {
    use AddressSource::{Peer, XForwardedFor as Xff};
    let t = trusted();
    let xf = "x-forwarded-for";
    check(
        xff(&t),
        &[
            case(
                "untrusted peer: headers ignored",
                "192.0.2.9",
                &[(xf, CLIENT)],
                ("192.0.2.9", Peer),
            ),
            case(
                "one trusted hop",
                "127.0.0.1",
                &[(xf, CLIENT)],
                (CLIENT, Xff),
            ),
            case(
                "rightmost untrusted wins over forged entries to its left",
                "127.0.0.1",
                &[(xf, &format!("{FORGED}, {CLIENT}, 10.1.1.1"))],
                (CLIENT, Xff),
            ),
            case(
                "32 forged entries in front of the proxy's",
                "127.0.0.1",
                &[(xf, &format!("{}, {CLIENT}", forged(32)))],
                (CLIENT, Xff),
            ),
            case(
                "a flood of forged entries is never reached",
                "127.0.0.1",
                &[(xf, &format!("{}, {CLIENT}, 10.0.0.7", forged(5000)))],
                (CLIENT, Xff),
            ),
            case(
                "the proxy's own line after the client's forged one",
                "127.0.0.1",
                &[(xf, &forged(40)), (xf, CLIENT)],
                (CLIENT, Xff),
            ),
            case(
                "several lines form one chain, in order",
                "127.0.0.1",
                &[(xf, CLIENT), (xf, "10.0.0.1")],
                (CLIENT, Xff),
            ),
            case(
                "every hop trusted: the leftmost stands",
                "127.0.0.1",
                &[(xf, "10.0.0.3, 10.0.0.2")],
                ("10.0.0.3", Xff),
            ),
            case(
                "ports and brackets are accepted",
                "127.0.0.1",
                &[(xf, "[2001:4860:4860::8888]:443, 10.0.0.1:80")],
                ("2001:4860:4860::8888", Xff),
            ),
            case("no header: the peer", "127.0.0.1", &[], ("127.0.0.1", Peer)),
            case(
                "a client's Forwarded is not read when proxies write X-Forwarded-For",
                "127.0.0.1",
                &[("forwarded", &format!("for={FORGED}")), (xf, CLIENT)],
                (CLIENT, Xff),
            ),
            case(
                "only Forwarded present: the peer",
                "127.0.0.1",
                &[("forwarded", &format!("for={FORGED}"))],
                ("127.0.0.1", Peer),
            ),
        ],
    );
}

#[test]
fn an_unreadable_hop_ends_the_walk() {
    use AddressSource::{Peer, XForwardedFor as Xff};
    let t = trusted();
    let xf = "x-forwarded-for";
    check(
        xff(&t),
        &[
            case(
                "unknown: the last good address stands",
                "127.0.0.1",
                &[(xf, &format!("{CLIENT}, unknown, 10.0.0.1"))],
                ("10.0.0.1", Xff),
            ),
            case(
                "junk as the first hop: the peer",
                "127.0.0.1",
                &[(xf, "garbage")],
                ("127.0.0.1", Peer),
            ),
            case(
                "an empty entry",
                "127.0.0.1",
                &[(xf, &format!("{CLIENT}, , 10.0.0.1"))],
                ("10.0.0.1", Xff),
            ),
        ],
    );
    // A line that is not visible ASCII cannot be read either.
    let mut h = HeaderMap::new();
    h.append(xf, CLIENT.parse().expect("value"));
    h.append(
        xf,
        HeaderValue::from_bytes(b"\xff\xfe").expect("opaque value"),
    );
    h.append(xf, "10.0.0.1".parse().expect("value"));
    assert_eq!(
        client_ip(ip("127.0.0.1"), &h, xff(&t)),
        (ip("10.0.0.1"), Xff)
    );
}

#[test]
fn at_most_max_hops_entries_are_read_counted_from_the_right() {
    use AddressSource::XForwardedFor as Xff;
    let t = trusted();
    let xf = "x-forwarded-for";
    let two = Forwarding {
        max_hops: 2,
        ..xff(&t)
    };
    check(
        two,
        &[
            case(
                "the client within the bound",
                "127.0.0.1",
                &[(xf, &format!("{}, {CLIENT}, 10.0.0.1", forged(50)))],
                (CLIENT, Xff),
            ),
            case(
                "past the bound the last trusted hop read stands, never a forged entry",
                "127.0.0.1",
                &[(xf, &format!("{FORGED}, {CLIENT}, 10.0.0.2, 10.0.0.1"))],
                ("10.0.0.2", Xff),
            ),
        ],
    );
}

#[test]
fn forwarded_is_walked_from_the_right_when_configured() {
    use AddressSource::{Forwarded as Fwd, Peer};
    let t = trusted();
    let fw = "forwarded";
    let forged_elements = vec![format!("for={FORGED}"); 40].join(", ");
    check(
        fwd(&t),
        &[
            case(
                "ports, quotes and IPv6",
                "127.0.0.1",
                &[(
                    fw,
                    "for=\"[2001:4860:4860::8888]:443\";proto=https, for=10.0.0.2",
                )],
                ("2001:4860:4860::8888", Fwd),
            ),
            case(
                "parameter names are case-insensitive",
                "127.0.0.1",
                &[(fw, "For=81.2.69.142:1234")],
                (CLIENT, Fwd),
            ),
            case(
                "40 forged elements in front of the proxy's",
                "127.0.0.1",
                &[(fw, &format!("{forged_elements}, for={CLIENT};proto=https"))],
                (CLIENT, Fwd),
            ),
            case(
                "the proxy's own line after the client's forged one",
                "127.0.0.1",
                &[(fw, &forged_elements), (fw, &format!("for={CLIENT}"))],
                (CLIENT, Fwd),
            ),
            case(
                "an element without for= is an unreadable hop, not one to skip",
                "127.0.0.1",
                &[(fw, &format!("for={FORGED}, proto=https"))],
                ("127.0.0.1", Peer),
            ),
            case(
                "for=unknown ends the walk",
                "127.0.0.1",
                &[(fw, &format!("for={CLIENT}, for=unknown, for=10.0.0.9"))],
                ("10.0.0.9", Fwd),
            ),
            case(
                "a client's X-Forwarded-For is not read when proxies write Forwarded",
                "127.0.0.1",
                &[("x-forwarded-for", FORGED), (fw, &format!("for={CLIENT}"))],
                (CLIENT, Fwd),
            ),
        ],
    );
}

#[test]
fn ipv4_mapped_peers_are_treated_as_ipv4() {
    let h = headers(&[("x-forwarded-for", CLIENT)]);
    let t = trusted();
    assert_eq!(client_ip(ip("::ffff:127.0.0.1"), &h, xff(&t)).0, ip(CLIENT));
}

#[test]
fn special_addresses_are_recognised() {
    for s in [
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "127.0.0.1",
        "169.254.1.1",
        "100.64.0.1",
        "192.0.2.1",
        "198.51.100.7",
        "203.0.113.9",
        "198.18.0.1",
        "224.0.0.1",
        "255.255.255.255",
        "0.1.2.3",
        "::1",
        "::",
        "fd00::1",
        "fe80::1",
        "2001:db8::1",
        "ff02::1",
        "::ffff:10.0.0.1",
    ] {
        assert!(is_special(ip(s)), "{s} is special");
    }
    for s in [
        "81.2.69.142",
        "8.8.8.8",
        "2001:4860:4860::8888",
        "2a00:1450::1",
    ] {
        assert!(!is_special(ip(s)), "{s} is public");
    }
}
