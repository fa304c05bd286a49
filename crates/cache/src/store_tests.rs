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

/// A response tagged `tags` (Surrogate-Key, space separated) that varies on
/// Accept-Encoding when `vary` is set, stored for request `request`.
fn tagged(tags: &str, vary: bool, request: &HeaderMap) -> Arc<Entry> {
    let mut resp = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(tags) {
        resp.insert("surrogate-key", v);
    }
    if vary {
        resp.insert("vary", HeaderValue::from_static("accept-encoding"));
    }
    let variant = Variant::new(&resp, request);
    Arc::new(Entry::new(
        StatusCode::OK,
        resp,
        Bytes::from_static(b"0123456789abcdef"),
        freshness(),
        variant,
    ))
}

fn stored(s: &MemoryStore, key: &str) -> bool {
    !matches!(s.lookup(key, &HeaderMap::new()), Lookup::Miss)
}

#[test]
fn tag_purge_removes_only_the_variants_carrying_the_tag() {
    let s = MemoryStore::new(1 << 20);
    let gz = req(&[("accept-encoding", "gzip")]);
    let br = req(&[("accept-encoding", "br")]);
    s.insert("http://a/x", tagged("hot shared", true, &gz), &gz);
    s.insert("http://a/x", tagged("cold shared", true, &br), &br);
    s.insert("http://a/y", tagged("hot", false, &gz), &gz);
    s.insert("http://a/z", tagged("cold", false, &gz), &gz);
    assert_eq!(s.purge(&Selector::Tag("hot".into()), false), 2);
    assert!(matches!(s.lookup("http://a/x", &gz), Lookup::VaryMiss));
    assert!(matches!(s.lookup("http://a/x", &br), Lookup::Found(_)));
    assert!(!stored(&s, "http://a/y"));
    assert!(stored(&s, "http://a/z"));
    // The URL left behind is still found by the tags its other variant
    // carries, and no longer by the purged one.
    assert_eq!(s.purge(&Selector::Tag("hot".into()), false), 0);
    assert_eq!(s.purge(&Selector::Tag("shared".into()), false), 1);
    assert!(!stored(&s, "http://a/x"));
    assert!(stored(&s, "http://a/z"));
}

#[test]
fn prefix_purge_is_a_string_prefix_of_scheme_host_and_path() {
    let s = MemoryStore::new(1 << 20);
    let none = HeaderMap::new();
    let keys = [
        "http://a.example/img/1.png",
        "http://a.example/img/sub/2.png",
        "http://a.example/imgx",
        "http://a.example/css/1.css",
        "http://a.example.evil/img/1.png",
        "https://a.example/img/1.png",
        "http://a.example:8080/img/1.png",
    ];
    for k in keys {
        s.insert(k, tagged("", false, &none), &none);
    }
    assert_eq!(
        s.purge(&Selector::Prefix("http://a.example/img/".into()), false),
        2
    );
    let left: Vec<&str> = keys.into_iter().filter(|k| stored(&s, k)).collect();
    assert_eq!(left, &keys[2..], "only /img/ under http://a.example");
    // Like a Varnish ban on `req.url ~ "^/img"`: a plain string prefix.
    assert_eq!(
        s.purge(&Selector::Prefix("http://a.example/img".into()), false),
        1
    );
    assert!(!stored(&s, "http://a.example/imgx"));
    for k in &keys[3..] {
        assert!(stored(&s, k), "{k} untouched");
    }
}

#[test]
fn soft_purge_by_tag_marks_stale_and_keeps_entries() {
    let s = MemoryStore::new(1 << 20);
    let none = HeaderMap::new();
    s.insert("http://a/1", tagged("t", false, &none), &none);
    s.insert("http://a/2", tagged("t u", false, &none), &none);
    s.insert("http://a/3", tagged("u", false, &none), &none);
    assert_eq!(s.purge(&Selector::Tag("t".into()), true), 2);
    for (k, stale) in [
        ("http://a/1", true),
        ("http://a/2", true),
        ("http://a/3", false),
    ] {
        let Lookup::Found(e) = s.lookup(k, &none) else {
            panic!("{k} kept");
        };
        assert_eq!(e.is_invalidated(), stale, "{k}");
    }
    // Still indexed: a later hard purge by the tag removes them.
    assert_eq!(s.purge(&Selector::Tag("t".into()), false), 2);
    assert!(!stored(&s, "http://a/1") && !stored(&s, "http://a/2"));
}

#[test]
fn the_indexes_do_not_grow_under_churn() {
    // Room for about a hundred small responses.
    let s = MemoryStore::new(100 * 1200);
    let none = HeaderMap::new();
    for i in 0..10_000 {
        let e = tagged(&format!("all k-{i}"), false, &none);
        s.insert(&format!("http://a/churn/{i}"), e, &none);
    }
    s.maintain();
    let st = s.stats();
    assert!(st.entries > 10 && st.entries <= 120, "{}", st.entries);
    let (keys, links) = s.index_sizes();
    let entries = usize::try_from(st.entries).unwrap_or(usize::MAX);
    assert_eq!(keys, entries, "one index record per stored URL");
    assert_eq!(links, 2 * entries, "two tags per stored URL");
    assert!(st.evictions >= 10_000 - st.entries, "{st:?}");
    // What the index names is exactly what is stored.
    assert_eq!(s.purge(&Selector::Tag("all".into()), false), entries);
    assert_eq!(
        s.purge(&Selector::Prefix("http://a/churn/".into()), false),
        0
    );
    s.maintain();
    assert_eq!(s.index_sizes(), (0, 0));
    assert_eq!(s.stats().entries, 0);
}

#[test]
fn a_purge_of_everything_empties_the_indexes_and_later_fills_are_indexed() {
    let s = MemoryStore::new(1 << 20);
    let none = HeaderMap::new();
    s.insert("http://a/1", tagged("t", false, &none), &none);
    s.insert("http://a/2", tagged("t", false, &none), &none);
    assert_eq!(s.purge(&Selector::All, false), 2);
    assert_eq!(s.index_sizes(), (0, 0));
    let e = under(tagged("t", false, &none), s.generation());
    assert!(s.insert("http://a/1", e, &none));
    s.maintain();
    assert_eq!(s.index_sizes(), (1, 1));
    assert_eq!(s.purge(&Selector::Tag("t".into()), false), 1);
    assert!(!stored(&s, "http://a/1"));
}

/// A small xorshift generator: the churn below is varied but repeatable.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Every stored response is found by each of its tags and by its key as a
/// prefix; every index record belongs to a stored URL.
fn assert_index_matches_store(s: &MemoryStore) {
    s.maintain();
    let mut urls = 0;
    for (key, slot) in s.cache.iter() {
        urls += 1;
        let found = s.index.prefixed(&key);
        assert!(
            found.iter().any(|k| **k == *key),
            "{key} not in prefix index"
        );
        for e in slot.entries() {
            for t in e.tags() {
                let found = s.index.tagged(t);
                assert!(found.iter().any(|k| **k == *key), "{key} not under {t}");
            }
        }
    }
    assert_eq!(s.index_sizes().0, urls, "index records for URLs not stored");
}

#[test]
fn the_index_names_every_stored_response_under_concurrent_churn() {
    // Small enough that evictions race the inserts and purges.
    let s = Arc::new(MemoryStore::new(60 * 1200));
    let tags = ["red", "green", "blue", "red green", ""];
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let s = Arc::clone(&s);
            std::thread::spawn(move || {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (t + 1));
                let encodings = [req(&[("accept-encoding", "gzip")]), req(&[])];
                for _ in 0..4000 {
                    let key = format!("http://a/{}", rng.below(150));
                    let r = &encodings[rng.below(2) as usize];
                    match rng.below(50) {
                        0 | 1 => {
                            s.purge(&Selector::Tag("green".into()), false);
                        }
                        2 => {
                            s.purge(&Selector::Prefix("http://a/1".into()), false);
                        }
                        3 => {
                            s.purge(&Selector::All, false);
                        }
                        4..=6 => {
                            if let Lookup::Found(e) = s.lookup(&key, r) {
                                s.remove(&key, &e);
                            }
                        }
                        _ => {
                            let tag = tags[rng.below(tags.len() as u64) as usize];
                            let e = under(tagged(tag, true, r), s.generation());
                            s.insert(&key, e, r);
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("churn thread");
    }
    assert!(s.stats().evictions > 0, "the churn evicted");
    assert_index_matches_store(&s);
    // What a user sees: after a purge by tag, nothing with it is served,
    // and housekeeping then removes it.
    s.purge(&Selector::Tag("red".into()), false);
    for (key, slot) in s.cache.iter() {
        assert!(
            slot.entries()
                .iter()
                .all(|e| !e.has_tag("red") || e.is_purged()),
            "{key} still serves a red response"
        );
    }
    assert_index_matches_store(&s);
    for (key, slot) in s.cache.iter() {
        assert!(
            slot.entries().iter().all(|e| !e.has_tag("red")),
            "{key} still holds a red response"
        );
    }
}

#[test]
fn a_removal_racing_a_purge_of_everything_puts_nothing_back() {
    // remove() reads a URL's variants and puts back the ones it keeps; a
    // purge of everything landing in between must still win.
    let s = Arc::new(MemoryStore::new(1 << 20));
    let gz = req(&[("accept-encoding", "gzip")]);
    let br = req(&[("accept-encoding", "br")]);
    for round in 0..300 {
        let g = under(tagged("", true, &gz), s.generation());
        s.insert("http://a/x", Arc::clone(&g), &gz);
        let b = under(tagged("", true, &br), s.generation());
        s.insert("http://a/x", b, &br);
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let remover = {
            let (s, barrier) = (Arc::clone(&s), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                s.remove("http://a/x", &g);
            })
        };
        barrier.wait();
        s.purge(&Selector::All, false);
        remover.join().expect("remover");
        assert!(
            matches!(s.lookup("http://a/x", &br), Lookup::Miss),
            "round {round}: a purged variant came back"
        );
    }
}

#[test]
fn a_replaced_response_is_indexed_by_its_new_tags_only() {
    let s = MemoryStore::new(1 << 20);
    let none = HeaderMap::new();
    s.insert("http://a/x", tagged("a b", false, &none), &none);
    s.insert("http://a/x", tagged("c b", false, &none), &none);
    s.insert("http://a/x", tagged("b c", false, &none), &none);
    s.maintain();
    assert_eq!(s.index_sizes(), (1, 2));
    assert_eq!(s.purge(&Selector::Tag("a".into()), false), 0);
    assert!(stored(&s, "http://a/x"));
    assert_eq!(s.purge(&Selector::Tag("c".into()), false), 1);
    assert!(!stored(&s, "http://a/x"));
    s.maintain();
    assert_eq!(s.index_sizes(), (0, 0));
}

#[test]
fn a_hard_purge_is_effective_at_once_and_housekeeping_frees_it() {
    let s = MemoryStore::new(1 << 20);
    let none = HeaderMap::new();
    let gz = req(&[("accept-encoding", "gzip")]);
    let br = req(&[("accept-encoding", "br")]);
    s.insert("http://a/1", tagged("t", false, &none), &none);
    s.insert("http://a/2", tagged("t u", false, &none), &none);
    s.insert("http://a/v", tagged("t", true, &gz), &gz);
    s.insert("http://a/v", tagged("u", true, &br), &br);
    s.insert("http://a/keep", tagged("u", false, &none), &none);
    assert_eq!(s.purge(&Selector::Tag("t".into()), false), 3);
    // Never served, though moka still holds the slots until housekeeping.
    assert!(matches!(s.lookup("http://a/1", &none), Lookup::Miss));
    assert!(matches!(s.lookup("http://a/2", &none), Lookup::Miss));
    assert!(matches!(s.lookup("http://a/v", &gz), Lookup::VaryMiss));
    assert!(matches!(s.lookup("http://a/v", &br), Lookup::Found(_)));
    s.cache.run_pending_tasks();
    assert_eq!(s.cache.entry_count(), 4, "removal waits for maintain()");
    // Purged responses are not touched again, by any selector.
    assert_eq!(s.purge(&Selector::Tag("t".into()), false), 0);
    assert_eq!(s.purge(&Selector::Key("http://a/1".into()), true), 0);
    assert_eq!(s.purge(&Selector::Prefix("http://a/".into()), true), 2);
    s.maintain();
    let st = s.stats();
    assert_eq!(st.entries, 2, "{st:?}");
    assert_eq!(
        s.index_sizes(),
        (2, 2),
        "records and links of the purged go"
    );
    assert!(matches!(s.lookup("http://a/v", &br), Lookup::Found(_)));
    assert_eq!(s.purge(&Selector::All, false), 2);
}

#[test]
fn a_url_fetched_again_before_housekeeping_is_served_and_kept() {
    let s = MemoryStore::new(1 << 20);
    let none = HeaderMap::new();
    s.insert("http://a/1", tagged("t", false, &none), &none);
    assert_eq!(s.purge(&Selector::Tag("t".into()), false), 1);
    let fresh = under(tagged("t", false, &none), s.generation());
    assert!(s.insert("http://a/1", Arc::clone(&fresh), &none));
    s.maintain();
    let Lookup::Found(e) = s.lookup("http://a/1", &none) else {
        panic!("the new response is stored")
    };
    assert!(Arc::ptr_eq(&e, &fresh));
    assert_eq!(s.stats().entries, 1);
    assert_eq!(s.index_sizes(), (1, 1));
}

#[test]
fn purge_all_counts_only_what_earlier_purges_left() {
    let s = MemoryStore::new(1 << 20);
    let none = HeaderMap::new();
    for i in 0..5 {
        s.insert(&format!("http://a/{i}"), tagged("t", false, &none), &none);
    }
    assert_eq!(s.purge(&Selector::Prefix("http://a/1".into()), false), 1);
    assert_eq!(s.purge(&Selector::All, false), 4);
}

#[test]
fn the_queue_of_removals_stays_bounded() {
    let s = MemoryStore {
        removals_max: 100,
        ..MemoryStore::new(1 << 30)
    };
    let none = HeaderMap::new();
    for i in 0..150 {
        s.insert(&format!("http://a/{i}"), tagged("t u", false, &none), &none);
    }
    // Under the bound: queued for housekeeping.
    assert_eq!(s.purge(&Selector::Prefix("http://a/1".into()), false), 61);
    assert_eq!(s.removals_queue().len(), 61);
    // Past it: the purge that overfills the queue empties it.
    assert_eq!(s.purge(&Selector::Tag("u".into()), false), 89);
    assert_eq!(s.removals_queue().len(), 0, "the purge removed them itself");
    s.cache.run_pending_tasks();
    assert_eq!(s.cache.entry_count(), 0);
    assert_eq!(s.index_sizes(), (0, 0));
}

#[test]
fn past_max_variants_the_oldest_variant_is_dropped() {
    let s = MemoryStore::new(1 << 20).with_max_variants(3);
    let langs = ["a", "b", "c", "d", "e"];
    for lang in langs {
        let r = req(&[("accept-language", lang)]);
        s.insert(
            "http://a/x",
            entry(lang, &[("vary", "accept-language")], &r),
            &r,
        );
    }
    let found: Vec<&str> = langs
        .into_iter()
        .filter(|lang| {
            let r = req(&[("accept-language", lang)]);
            matches!(s.lookup("http://a/x", &r), Lookup::Found(_))
        })
        .collect();
    assert_eq!(found, ["c", "d", "e"]);
}
