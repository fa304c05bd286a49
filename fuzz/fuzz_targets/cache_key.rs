//! The cache key of two requests. Lines: host 1, target 1, host 2,
//! target 2; hosts go through the authority parser as in the proxy.
//! Invariants: no panic; a key never mixes hosts or schemes (equal keys
//! mean equal normalised authorities and schemes); the key is the same
//! whatever the order of query parameters when `sort-query` is on.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meridian_cache::key::{KeyOptions, cache_key};
use meridian_proxy::authority::{Authority, Scheme};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = s.split('\n');
    let (Some(h1), Some(t1), Some(h2), Some(t2)) =
        (lines.next(), lines.next(), lines.next(), lines.next())
    else {
        return;
    };
    let opts = [
        KeyOptions::default(),
        KeyOptions {
            sort_query: true,
            drop_params: vec!["utm_source".into()],
        },
    ];
    for (s1, s2) in [(Scheme::Http, Scheme::Http), (Scheme::Http, Scheme::Https)] {
        let (Ok(a1), Ok(a2)) = (Authority::parse(h1, s1), Authority::parse(h2, s2)) else {
            continue;
        };
        for o in &opts {
            let k1 = cache_key(s1.as_str(), a1.as_str(), t1, o);
            let k2 = cache_key(s2.as_str(), a2.as_str(), t2, o);
            assert!(k1.starts_with(&format!("{}://{}/", s1, a1)));
            if k1 == k2 {
                assert_eq!((s1, a1.as_str()), (s2, a2.as_str()), "{k1}");
            }
        }
        // The same request with its query parameters reversed.
        if let Some((path, query)) = t1.split_once('?') {
            let reversed: Vec<&str> = query.split('&').rev().collect();
            let t = format!("{path}?{}", reversed.join("&"));
            assert_eq!(
                cache_key(s1.as_str(), a1.as_str(), t1, &opts[1]),
                cache_key(s1.as_str(), a1.as_str(), &t, &opts[1])
            );
        }
    }
});
