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
    );
    s.insert(
        "http://a/x",
        entry("br-bytes", &[("vary", "accept-encoding")], &br),
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
    s.insert("k", entry("shared", &[], &HeaderMap::new()));
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
    );
    s.insert(
        "http://a/img/2",
        entry("2", &[("cache-tag", "img,x")], &none),
    );
    s.insert(
        "http://a/css/1",
        entry("3", &[("surrogate-key", "product-7")], &none),
    );
    s.insert("http://b/img/1", entry("4", &[], &none));
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
    s.insert("k", entry("x", &[], &HeaderMap::new()));
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
        s.insert(&format!("http://a/{i}"), e);
    }
    let st = s.stats();
    assert!(st.bytes <= cap, "{} > {cap}", st.bytes);
    assert!(st.entries > 10 && st.entries < 500, "{}", st.entries);
}
