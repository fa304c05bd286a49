//! `Age` (RFC 9111 §5.1) and the corrected initial age (§4.2.3) with the
//! input as Age (line 1) and Date (line 2).
//! Invariants: no panic; the age never exceeds 2^31 seconds; the corrected
//! initial age is at least the Age value.
#![no_main]

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;
use meridian_cache::cache_control::DELTA_SECONDS_CAP;
use meridian_cache::policy::{age_value, corrected_initial_age};

fuzz_target!(|data: &[u8]| {
    let mut lines = data.split(|&b| b == b'\n');
    let mut h = HeaderMap::new();
    for name in [header::AGE, header::DATE] {
        if let Some(v) = lines.next().and_then(|l| HeaderValue::from_bytes(l).ok()) {
            h.append(name, v);
        }
    }
    let age = age_value(&h);
    assert!(age <= Duration::from_secs(DELTA_SECONDS_CAP));
    let now = SystemTime::now();
    let corrected = corrected_initial_age(&h, now - Duration::from_secs(1), now);
    assert!(corrected >= age);
});
