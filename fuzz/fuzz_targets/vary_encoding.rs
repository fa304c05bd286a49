//! `Vary` secondary keys, Accept-Language and Accept-Encoding
//! normalisation, and content-coding negotiation. Line 1 is the response's
//! Vary; the rest are request fields `name: value`.
//! Invariants: no panic; a variant always matches the request it was made
//! from; negotiation picks an offered coding or identity.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue, header};
use libfuzzer_sys::fuzz_target;
use meridian_cache::Variant;
use meridian_cache::encoding::{self, Coding};

fuzz_target!(|data: &[u8]| {
    let mut lines = data.split(|&b| b == b'\n');
    let mut resp = HeaderMap::new();
    if let Some(v) = lines.next().and_then(|l| HeaderValue::from_bytes(l).ok()) {
        resp.append(header::VARY, v);
    }
    let mut req = HeaderMap::new();
    for line in lines.take(32) {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = match &line[..colon] {
            b"l" => header::ACCEPT_LANGUAGE,
            b"e" => header::ACCEPT_ENCODING,
            n => match HeaderName::from_bytes(n) {
                Ok(n) => n,
                Err(_) => continue,
            },
        };
        if let Ok(v) = HeaderValue::from_bytes(&line[colon + 1..]) {
            req.append(name, v);
        }
    }
    let variant = Variant::new(&resp, &req);
    assert!(variant.matches(&req));
    let _ = variant.weight();
    for offered in [&Coding::PREFERENCE[..], &[Coding::Gzip], &[]] {
        let c = encoding::negotiate(&req, offered);
        assert!(c == Coding::Identity || offered.contains(&c));
    }
    let _ = encoding::varies_on_encoding(&resp);
    let _ = encoding::is_encoded(&req);
    if let Some(tag) = req.get(header::ETAG) {
        let _ = encoding::encoded_etag(tag.as_bytes(), Coding::Br);
    }
});
