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

#[test]
fn untrusted_peer_headers_are_ignored() {
    let h = headers(&[("x-forwarded-for", "81.2.69.142")]);
    assert_eq!(
        client_ip(ip("192.0.2.9"), &h, &trusted()),
        (ip("192.0.2.9"), AddressSource::Peer)
    );
    assert_eq!(
        client_ip(ip("127.0.0.1"), &h, &[]),
        (ip("127.0.0.1"), AddressSource::Peer)
    );
}

#[test]
fn x_forwarded_for_is_read_right_to_left_past_trusted_hops() {
    let h = headers(&[("x-forwarded-for", "6.6.6.6, 81.2.69.142, 10.1.1.1")]);
    assert_eq!(
        client_ip(ip("127.0.0.1"), &h, &trusted()),
        (ip("81.2.69.142"), AddressSource::XForwardedFor)
    );
}

#[test]
fn several_x_forwarded_for_headers_form_one_chain() {
    let h = headers(&[
        ("x-forwarded-for", "81.2.69.142"),
        ("x-forwarded-for", "10.0.0.1"),
    ]);
    assert_eq!(
        client_ip(ip("127.0.0.1"), &h, &trusted()).0,
        ip("81.2.69.142")
    );
}

#[test]
fn forwarded_header_wins_and_accepts_ports_quotes_and_ipv6() {
    let h = headers(&[
        (
            "forwarded",
            "for=\"[2001:4860:4860::8888]:443\";proto=https, for=10.0.0.2",
        ),
        ("x-forwarded-for", "1.1.1.1"),
    ]);
    assert_eq!(
        client_ip(ip("127.0.0.1"), &h, &trusted()),
        (ip("2001:4860:4860::8888"), AddressSource::Forwarded)
    );
    let h = headers(&[("forwarded", "For=81.2.69.142:1234")]);
    assert_eq!(
        client_ip(ip("127.0.0.1"), &h, &trusted()).0,
        ip("81.2.69.142")
    );
}

#[test]
fn unknown_hop_stops_the_walk() {
    let h = headers(&[("x-forwarded-for", "81.2.69.142, unknown, 10.0.0.1")]);
    assert_eq!(client_ip(ip("127.0.0.1"), &h, &trusted()).0, ip("10.0.0.1"));
    let h = headers(&[("x-forwarded-for", "garbage")]);
    assert_eq!(
        client_ip(ip("127.0.0.1"), &h, &trusted()),
        (ip("127.0.0.1"), AddressSource::Peer)
    );
}

#[test]
fn ipv4_mapped_peers_are_treated_as_ipv4() {
    let h = headers(&[("x-forwarded-for", "81.2.69.142")]);
    assert_eq!(
        client_ip(ip("::ffff:127.0.0.1"), &h, &trusted()).0,
        ip("81.2.69.142")
    );
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
