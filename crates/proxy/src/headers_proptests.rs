//! Property tests of the forwarding fields (`X-Forwarded-For`, RFC 7239
//! `Forwarded`) a node reads at entry and writes upstream (issue 13).

use proptest::prelude::*;

use super::*;
use crate::authority::Scheme;

fn peer() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(IpAddr::from),
        any::<[u16; 8]>().prop_map(IpAddr::from),
    ]
}

fn authority() -> impl Strategy<Value = Authority> {
    (
        prop_oneof![
            "[a-z]{1,8}(\\.[a-z]{2,3})?",
            Just("[2001:db8::1]".to_owned())
        ],
        proptest::option::of(1u16..),
        prop::sample::select(vec![Scheme::Http, Scheme::Https]),
    )
        .prop_map(|(h, p, s)| {
            let raw = p.map_or(h.clone(), |p| format!("{h}:{p}"));
            Authority::parse(&raw, s).expect("valid")
        })
}

/// What a client may send in the forwarding fields: addresses, junk,
/// several lines, and names that differ only in case.
fn client_fields() -> impl Strategy<Value = Vec<(&'static str, String)>> {
    let name = prop::sample::select(vec![
        "x-forwarded-for",
        "X-Forwarded-For",
        "forwarded",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-real-ip",
        "via",
        "accept",
        "connection",
    ]);
    proptest::collection::vec((name, "[ -~]{0,24}"), 0..6)
}

fn headers(fields: &[(&str, String)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in fields {
        let name = HeaderName::from_bytes(k.as_bytes()).expect("name");
        h.append(name, HeaderValue::from_str(v).expect("visible"));
    }
    h
}

/// RFC 7239 §4: `pair *( ";" pair )`, each `token "=" ( token / quoted-string )`.
/// The parse side of [`forwarded_element`], for the round trip.
fn parse_element(s: &str) -> Option<Vec<(String, String)>> {
    s.split(';')
        .map(|pair| {
            let (k, v) = pair.split_once('=')?;
            let v = match v.strip_prefix('"') {
                Some(q) => q.strip_suffix('"')?.to_owned(),
                None if !v.is_empty()
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)) =>
                {
                    v.to_owned()
                }
                None => return None,
            };
            Some((k.to_ascii_lowercase(), v))
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// From an untrusted peer, whatever the client sent: the upstream
    /// sees exactly the peer in `X-Forwarded-For`, one `Forwarded` element
    /// that parses (RFC 7239) back to the peer, the authority and the
    /// scheme, and `X-Forwarded-Host`/`-Proto` from the authority.
    #[test]
    fn an_untrusted_client_cannot_choose_its_forwarding_fields(
        fields in client_fields(),
        peer in peer(),
        authority in authority(),
    ) {
        let mut h = headers(&fields);
        sanitize(&mut h, &authority, false);
        let via = HeaderValue::from_static("1.1 edge");
        let f = Forwarding { authority: &authority, peer, trusted: false, via: &via };
        let up = upstream_request(&h, &f);
        prop_assert_eq!(up.get_all(&X_FORWARDED_FOR).iter().count(), 1);
        let peer_text = peer.to_string();
        prop_assert_eq!(up[&X_FORWARDED_FOR].to_str().ok(), Some(peer_text.as_str()));
        prop_assert_eq!(up[&X_FORWARDED_HOST].as_bytes(), authority.as_str().as_bytes());
        prop_assert_eq!(up[&X_FORWARDED_PROTO].as_bytes(), authority.scheme().as_str().as_bytes());
        prop_assert_eq!(up.get_all(&FORWARDED).iter().count(), 1);
        prop_assert!(!up.contains_key("x-real-ip"));
        let element = up[&FORWARDED].to_str().expect("ascii");
        let pairs = parse_element(element);
        prop_assert!(pairs.is_some(), "{}", element);
        let node = match peer {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
        };
        prop_assert_eq!(
            pairs.unwrap_or_default(),
            vec![
                ("for".to_owned(), node),
                ("host".to_owned(), authority.as_str().to_owned()),
                ("proto".to_owned(), authority.scheme().as_str().to_owned()),
            ]
        );
        prop_assert_eq!(up[&header::HOST].as_bytes(), authority.as_str().as_bytes());
    }

    /// From a trusted forwarder the chain is kept and the peer appended
    /// as its last member, so a reader walking from the right (the
    /// director, the origin) finds this hop first.
    #[test]
    fn a_trusted_chain_ends_with_the_peer(
        fields in client_fields(),
        peer in peer(),
        authority in authority(),
    ) {
        let mut h = headers(&fields);
        sanitize(&mut h, &authority, true);
        let via = HeaderValue::from_static("1.1 edge");
        let f = Forwarding { authority: &authority, peer, trusted: true, via: &via };
        let up = upstream_request(&h, &f);
        let xff = up[&X_FORWARDED_FOR].to_str().expect("ascii");
        let peer_text = peer.to_string();
        prop_assert_eq!(xff.rsplit(',').next().map(str::trim), Some(peer_text.as_str()));
        let fwd = up[&FORWARDED].to_str().expect("ascii");
        let last = fwd.rsplit(',').next().map(str::trim).unwrap_or_default();
        prop_assert_eq!(last, forwarded_element(peer, &authority));
    }
}
