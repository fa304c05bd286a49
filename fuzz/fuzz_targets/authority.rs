//! The authority parser (`Host` or an absolute-form target) and the
//! `accept-hosts` patterns.
//! Invariants: no panic; parse → render → parse is stable; an accepted
//! value is lower case and holds no byte a host name cannot; a pattern
//! written as a host matches that host.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meridian_proxy::authority::{Authority, HostPattern, Scheme};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    for scheme in [Scheme::Http, Scheme::Https] {
        let Ok(a) = Authority::parse(s, scheme) else {
            continue;
        };
        let again = Authority::parse(a.as_str(), scheme).expect("a rendered authority parses");
        assert_eq!(again, a, "{s:?}");
        assert!(
            a.as_str()
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b.is_ascii_uppercase())
        );
        assert!(a.as_str().starts_with(a.host()));
        assert!(a.port() != Some(scheme.default_port()));
        let _ = a.header_value();
    }
    if let Ok(p) = HostPattern::parse(s) {
        if let Ok(a) = Authority::parse(s, Scheme::Http) {
            assert!(p.matches(&a), "{s:?}");
        }
    }
});
