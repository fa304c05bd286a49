//! `X-Forwarded-For` and `Forwarded`: the proxy's entry sanitising and
//! upstream fields, and the director's client-address walk. Lines are
//! client request fields `name: value`.
//! Invariants: no panic; from an untrusted peer the upstream sees exactly
//! the peer in `X-Forwarded-For` and one `Forwarded` element naming it;
//! the director never believes an untrusted peer, and with a trusted one
//! picks the peer or an address the header names.
#![no_main]

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;
use libfuzzer_sys::fuzz_target;
use meridian_geo_director::{AddressSource, ForwardedHeader, Forwarding, client_ip};
use meridian_proxy::authority::{Authority, Scheme};
use meridian_proxy::headers::{self, X_FORWARDED_FOR};

fuzz_target!(|data: &[u8]| {
    let mut h = HeaderMap::new();
    for line in data.split(|&b| b == b'\n').take(32) {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = match &line[..colon] {
            b"x" => X_FORWARDED_FOR.clone(),
            b"f" => headers::FORWARDED.clone(),
            n => match HeaderName::from_bytes(n) {
                Ok(n) => n,
                Err(_) => continue,
            },
        };
        if let Ok(v) = HeaderValue::from_bytes(&line[colon + 1..]) {
            h.append(name, v);
        }
    }
    let peer: IpAddr = [192, 0, 2, 7].into();
    let authority = Authority::parse("cdn.example:8080", Scheme::Https).expect("valid");
    let via = HeaderValue::from_static("1.1 edge");
    for trusted in [false, true] {
        let mut req = h.clone();
        headers::sanitize(&mut req, &authority, trusted);
        let f = headers::Forwarding {
            authority: &authority,
            peer,
            trusted,
            via: &via,
        };
        let up = headers::upstream_request(&req, &f);
        let xff: Vec<_> = up.get_all(&X_FORWARDED_FOR).iter().collect();
        assert_eq!(xff.len(), 1);
        if !trusted {
            assert_eq!(xff[0], "192.0.2.7");
            let fwd: Vec<_> = up.get_all(&headers::FORWARDED).iter().collect();
            assert_eq!(fwd.len(), 1);
            assert_eq!(
                fwd[0],
                "for=192.0.2.7;host=\"cdn.example:8080\";proto=https"
            );
        }
    }
    let nets: [IpNet; 1] = ["192.0.2.0/24".parse().expect("cidr")];
    for header in [ForwardedHeader::XForwardedFor, ForwardedHeader::Forwarded] {
        let f = Forwarding {
            trusted: &nets,
            header,
            max_hops: 32,
        };
        let untrusted: IpAddr = [198, 51, 100, 1].into();
        assert_eq!(
            client_ip(untrusted, &h, f),
            (untrusted, AddressSource::Peer)
        );
        let (ip, source) = client_ip(peer, &h, f);
        if source == AddressSource::Peer {
            assert_eq!(ip, peer);
        }
    }
});
