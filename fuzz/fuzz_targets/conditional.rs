//! RFC 9110 §13 preconditions. Lines: If-Match, If-None-Match,
//! If-Modified-Since, If-Unmodified-Since, ETag, Last-Modified, Date.
//! Invariants: no panic; non-GET/HEAD never gets 304; weak comparison
//! holds whenever strong comparison does; `*` always matches.
#![no_main]

use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use libfuzzer_sys::fuzz_target;
use meridian_cache::conditional::{self, Precondition};

fuzz_target!(|data: &[u8]| {
    let names = [
        header::IF_MATCH,
        header::IF_NONE_MATCH,
        header::IF_MODIFIED_SINCE,
        header::IF_UNMODIFIED_SINCE,
        header::ETAG,
        header::LAST_MODIFIED,
        header::DATE,
    ];
    let mut req = HeaderMap::new();
    let mut resp = HeaderMap::new();
    let lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    for (i, (name, line)) in names.iter().zip(&lines).enumerate() {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            if i < 4 { &mut req } else { &mut resp }.append(name.clone(), v);
        }
    }
    for method in [Method::GET, Method::HEAD, Method::POST, Method::PUT] {
        for status in [
            StatusCode::OK,
            StatusCode::NOT_FOUND,
            StatusCode::PRECONDITION_FAILED,
        ] {
            let p = conditional::evaluate(&method, &req, status, &resp);
            if !matches!(method, Method::GET | Method::HEAD) {
                assert_ne!(p, Precondition::NotModified);
            }
            if status == StatusCode::NOT_FOUND {
                assert_eq!(p, Precondition::Proceed);
            }
        }
    }
    let _ = conditional::not_modified_headers(&resp);
    if let (Some(a), Some(b)) = (lines.first(), lines.get(1)) {
        if conditional::etag_matches_strong(a, b) {
            assert!(conditional::etag_matches_weak(a, b));
        }
        assert_eq!(
            conditional::etag_matches_weak(a, b),
            conditional::etag_matches_weak(b, a)
        );
    }
});
