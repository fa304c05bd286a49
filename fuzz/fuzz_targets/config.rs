//! The config loaders of the edge, the shield and the director over
//! arbitrary (TOML-ish) text: `meridian_common::parse_toml` and each
//! service's validation.
//! Invariants: no panic; every error names the file.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

/// A file name no relative path in the input can reach.
const FILE: &str = "/nonexistent-meridian-fuzz/fuzz.toml";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Absolute paths could name a device that never ends (/dev/zero); the
    // loaders trust the operator's file system, not the file's text.
    if text.contains("/dev") || text.contains("/proc") || text.contains("/sys") {
        return;
    }
    let named = |e: meridian_common::ConfigError| {
        let msg = e.to_string();
        assert!(msg.contains(FILE), "{msg}");
    };
    match meridian_common::parse_toml::<meridian_proxy::FileConfig>(Path::new(FILE), text) {
        Ok(fc) => {
            if let Err(e) = fc.validate(FILE) {
                named(e);
            }
        }
        Err(e) => named(e),
    }
    match meridian_common::parse_toml::<meridian_origin_shield::FileConfig>(Path::new(FILE), text) {
        Ok(fc) => {
            if let Err(e) = fc.validate(FILE) {
                named(e);
            }
        }
        Err(e) => named(e),
    }
    if let Err(e) = meridian_geo_director::Config::parse(FILE, text) {
        named(e);
    }
});
