use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};

use super::*;
use crate::policy::Freshness;
use crate::vary::Variant;

fn freshness() -> Freshness {
    Freshness::fresh_for(Duration::from_secs(60), SystemTime::now())
}

fn req(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_static(v));
    }
    h
}

fn entry(
    body: &'static str,
    resp: &[(&'static str, &'static str)],
    request: &HeaderMap,
) -> Arc<Entry> {
    let resp = req(resp);
    let variant = Variant::new(&resp, request);
    Arc::new(Entry::new(
        StatusCode::OK,
        resp,
        Bytes::from_static(body.as_bytes()),
        freshness(),
        variant,
    ))
}

fn body_of(l: Lookup) -> Option<Bytes> {
    match l {
        Lookup::Found(e) => Some(e.body.clone()),
        _ => None,
    }
}

#[test]
fn lookup_distinguishes_miss_and_vary_miss_rfc9211_2_2() {
    let s = MemoryStore::new(1 << 20);
    assert!(matches!(
        s.lookup("http://a/x", &HeaderMap::new()),
        Lookup::Miss
    ));
    let gz = req(&[("accept-encoding", "gzip")]);
    s.insert(
        "http://a/x",
        entry("gz", &[("vary", "accept-encoding")], &gz),
        &gz,
    );
    assert!(matches!(
        s.lookup("http://a/x", &req(&[("accept-encoding", "br")])),
        Lookup::VaryMiss
    ));
    assert_eq!(
        body_of(s.lookup("http://a/x", &gz)),
        Some(Bytes::from_static(b"gz"))
    );
}

#[test]
fn variants_of_one_url_are_kept_apart() {
    let s = MemoryStore::new(1 << 20);
    let gz = req(&[("accept-encoding", "gzip")]);
    let br = req(&[("accept-encoding", "br")]);
    s.insert(
        "http://a/x",
        entry("gz-bytes", &[("vary", "accept-encoding")], &gz),
        &gz,
    );
    s.insert(
        "http://a/x",
        entry("br-bytes", &[("vary", "accept-encoding")], &br),
        &br,
    );
    assert_eq!(
        body_of(s.lookup("http://a/x", &gz)),
        Some(Bytes::from_static(b"gz-bytes"))
    );
    assert_eq!(
        body_of(s.lookup("http://a/x", &br)),
        Some(Bytes::from_static(b"br-bytes"))
    );
    // Re-inserting a variant replaces it rather than adding a third.
    s.insert(
        "http://a/x",
        entry("gz-new", &[("vary", "accept-encoding")], &gz),
        &gz,
    );
    assert_eq!(
        body_of(s.lookup("http://a/x", &gz)),
        Some(Bytes::from_static(b"gz-new"))
    );
    assert_eq!(s.purge(&Selector::Key("http://a/x".into()), false), 2);
}

#[test]
fn hit_shares_body_bytes_without_copy() {
    let s = MemoryStore::new(1 << 20);
    s.insert(
        "k",
        entry("shared", &[], &HeaderMap::new()),
        &HeaderMap::new(),
    );
    let (Lookup::Found(a), Lookup::Found(b)) = (
        s.lookup("k", &HeaderMap::new()),
        s.lookup("k", &HeaderMap::new()),
    ) else {
        panic!("expected hits");
    };
    assert_eq!(a.body.as_ptr(), b.body.as_ptr());
}

#[test]
fn purge_by_key_prefix_tag_and_all() {
    let s = MemoryStore::new(1 << 20);
    let none = HeaderMap::new();
    s.insert(
        "http://a/img/1",
        entry("1", &[("surrogate-key", "img product-7")], &none),
        &none,
    );
    s.insert(
        "http://a/img/2",
        entry("2", &[("cache-tag", "img,x")], &none),
        &none,
    );
    s.insert(
        "http://a/css/1",
        entry("3", &[("surrogate-key", "product-7")], &none),
        &none,
    );
    s.insert("http://b/img/1", entry("4", &[], &none), &none);
    assert_eq!(s.purge(&Selector::Prefix("http://a/img/".into()), false), 2);
    assert!(matches!(s.lookup("http://a/img/1", &none), Lookup::Miss));
    assert!(
        matches!(s.lookup("http://b/img/1", &none), Lookup::Found(_)),
        "other host untouched"
    );
    assert_eq!(s.purge(&Selector::Tag("product-7".into()), false), 1);
    assert!(matches!(s.lookup("http://a/css/1", &none), Lookup::Miss));
    assert_eq!(s.purge(&Selector::All, false), 1);
    assert!(matches!(s.lookup("http://b/img/1", &none), Lookup::Miss));
}

#[test]
fn soft_purge_marks_stale_and_keeps_entry() {
    let s = MemoryStore::new(1 << 20);
    s.insert("k", entry("x", &[], &HeaderMap::new()), &HeaderMap::new());
    assert_eq!(s.purge(&Selector::Key("k".into()), true), 1);
    let Lookup::Found(e) = s.lookup("k", &HeaderMap::new()) else {
        panic!("kept")
    };
    assert!(e.is_invalidated());
    assert_eq!(
        e.reuse(SystemTime::now(), &Default::default()),
        crate::Reuse::Revalidate
    );
}

#[test]
fn store_is_bounded_by_bytes() {
    let cap = 64 * 1024;
    let s = MemoryStore::new(cap);
    static BODY: [u8; 1024] = [7u8; 1024];
    for i in 0..500 {
        let e = Arc::new(Entry::new(
            StatusCode::OK,
            HeaderMap::new(),
            Bytes::from_static(&BODY),
            freshness(),
            Variant::default(),
        ));
        s.insert(&format!("http://a/{i}"), e, &HeaderMap::new());
    }
    let st = s.stats();
    assert!(st.bytes <= cap, "{} > {cap}", st.bytes);
    assert!(st.entries > 10 && st.entries < 500, "{}", st.entries);
}

#[test]
fn newest_matching_response_wins_and_replaces_what_it_matches_rfc9111_4_1() {
    let s = MemoryStore::new(1 << 20);
    let fr = req(&[("accept-language", "fr"), ("accept-encoding", "gzip")]);
    // The old response varied on Accept-Encoding, the new one on
    // Accept-Language: both match the request, the newest must win.
    s.insert(
        "http://a/x",
        entry("old", &[("vary", "accept-encoding")], &fr),
        &fr,
    );
    s.insert(
        "http://a/x",
        entry("new", &[("vary", "accept-language")], &fr),
        &fr,
    );
    assert_eq!(
        body_of(s.lookup("http://a/x", &fr)),
        Some(Bytes::from_static(b"new"))
    );
    // ...and it replaced the one it matched instead of sitting beside it.
    assert_eq!(s.purge(&Selector::Key("http://a/x".into()), false), 1);
}

#[test]
fn removing_one_variant_leaves_the_others() {
    let s = MemoryStore::new(1 << 20);
    let gz = req(&[("accept-encoding", "gzip")]);
    let br = req(&[("accept-encoding", "br")]);
    let g = entry("gz", &[("vary", "accept-encoding")], &gz);
    s.insert("http://a/x", Arc::clone(&g), &gz);
    s.insert(
        "http://a/x",
        entry("br", &[("vary", "accept-encoding")], &br),
        &br,
    );
    s.remove("http://a/x", &g);
    assert!(matches!(s.lookup("http://a/x", &gz), Lookup::VaryMiss));
    assert_eq!(
        body_of(s.lookup("http://a/x", &br)),
        Some(Bytes::from_static(b"br"))
    );
}

fn under(e: Arc<Entry>, generation: u64) -> Arc<Entry> {
    let e = Arc::try_unwrap(e).expect("unique");
    Arc::new(e.fetched_under(generation))
}

#[test]
fn a_fill_that_began_before_a_purge_cannot_insert_after_it() {
    let s = MemoryStore::new(1 << 20);
    let none = HeaderMap::new();
    let cases: [(Selector, &str, bool); 5] = [
        (Selector::Key("http://a/x".into()), "http://a/x", false),
        (Selector::Key("http://a/other".into()), "http://a/x", true),
        (Selector::Prefix("http://a/".into()), "http://a/x", false),
        (Selector::Tag("product-7".into()), "http://a/x", false),
        (Selector::All, "http://a/x", false),
    ];
    for (selector, key, lands) in cases {
        let started = s.generation();
        s.purge(&selector, false);
        let e = under(
            entry("x", &[("surrogate-key", "product-7")], &none),
            started,
        );
        assert_eq!(s.insert(key, e, &none), lands, "{selector:?}");
        s.purge(&Selector::All, false);
        // A fill that starts after the purge lands.
        let e = under(entry("x", &[], &none), s.generation());
        assert!(s.insert(key, e, &none), "{selector:?}: fresh fill");
        s.purge(&Selector::All, false);
    }
}

#[test]
fn a_fill_older_than_the_purge_log_is_refused() {
    let s = MemoryStore::new(1 << 20);
    let none = HeaderMap::new();
    let started = s.generation();
    for i in 0..(PURGE_LOG + 1) {
        s.purge(&Selector::Key(format!("http://other/{i}")), false);
    }
    let e = under(entry("x", &[], &none), started);
    assert!(!s.insert("http://a/x", e, &none));
}
