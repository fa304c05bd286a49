//! Cache-Control, CDN-Cache-Control (RFC 8941 dictionary) and
//! Surrogate-Control: every line of the input is one field line of each.
//! Invariants: no panic; delta-seconds never exceed 2^31 (except
//! `max-stale` without a value); parsing is deterministic.
#![no_main]

use http::{HeaderMap, HeaderValue, header::CACHE_CONTROL};
use libfuzzer_sys::fuzz_target;
use meridian_cache::CacheControl;
use meridian_cache::cache_control::{CDN_CACHE_CONTROL, DELTA_SECONDS_CAP, SURROGATE_CONTROL};
use meridian_cache::policy::{Policy, response_directives};

fuzz_target!(|data: &[u8]| {
    let mut h = HeaderMap::new();
    for line in data.split(|&b| b == b'\n').take(16) {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            h.append(CACHE_CONTROL, v.clone());
            h.append(&CDN_CACHE_CONTROL, v.clone());
            h.append(&SURROGATE_CONTROL, v);
        }
    }
    let cc = CacheControl::from_cache_control(&h);
    assert_eq!(cc, CacheControl::from_cache_control(&h));
    for d in [
        cc.max_age,
        cc.s_maxage,
        cc.stale_while_revalidate,
        cc.stale_if_error,
        cc.min_fresh,
    ] {
        assert!(d.is_none_or(|d| d <= DELTA_SECONDS_CAP));
    }
    if let Some(cdn) = CacheControl::from_structured(&h, &CDN_CACHE_CONTROL) {
        for d in [
            cdn.max_age,
            cdn.s_maxage,
            cdn.stale_while_revalidate,
            cdn.stale_if_error,
        ] {
            assert!(d.is_none_or(|d| d <= DELTA_SECONDS_CAP));
        }
    }
    let _ = CacheControl::from_headers(&h, &SURROGATE_CONTROL);
    let _ = response_directives(&Policy::default(), &h);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = CacheControl::parse(s);
    }
});
