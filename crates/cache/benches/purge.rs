//! Purges by tag and by prefix in a store of 1,000,000 responses, 1,000 of
//! which each purge removes: the indexes make the cost follow the matches,
//! not the store (issue 9: under 10 ms each).
//!
//! Run with `cargo bench -p meridian-cache --bench purge`. Building the
//! store takes about ten seconds and 1.3 GB; bodies are 16 bytes, and the
//! 998,000 responses no purge touches share 1,000 `Entry` values (tags
//! `bg-0` .. `bg-999`, so the tag index holds 1,000 sets of ~1,000 keys).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, StatusCode};
use meridian_cache::{Entry, Freshness, MemoryStore, Selector, Storage, Variant};

const STORED: usize = 1_000_000;
const HOT: usize = 1_000;

fn entry(tags: &str, generation: u64) -> Arc<Entry> {
    let mut resp = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(tags) {
        resp.insert("surrogate-key", v);
    }
    let fresh = Freshness::fresh_for(Duration::from_secs(3600), SystemTime::now());
    Arc::new(
        Entry::new(
            StatusCode::OK,
            resp,
            Bytes::from_static(b"0123456789abcdef"),
            fresh,
            Variant::default(),
        )
        .fetched_under(generation),
    )
}

fn tag_key(i: usize) -> String {
    format!("http://cdn.example/tagged/{i:04}.bin")
}

fn prefix_key(i: usize) -> String {
    format!("http://cdn.example/hot/{i:04}.bin")
}

/// The store: 998,000 background responses spread over 10 hosts, plus the
/// 1,000 tagged "t-hot" and the 1,000 under `http://cdn.example/hot/`.
fn populate() -> MemoryStore {
    let store = MemoryStore::new(4 << 30);
    let none = HeaderMap::new();
    let background: Vec<Arc<Entry>> = (0..1000).map(|j| entry(&format!("bg-{j}"), 0)).collect();
    for i in 0..STORED - 2 * HOT {
        let key = format!("http://cdn{}.example/f/{i:07}.bin", i % 10);
        store.insert(&key, Arc::clone(&background[i % 1000]), &none);
        if i % 100_000 == 0 {
            store.maintain();
        }
    }
    refill(&store, &tag_key, "t-hot other");
    refill(&store, &prefix_key, "bg-1");
    let stats = store.stats();
    assert_eq!(stats.entries, STORED as u64, "all fit: {stats:?}");
    store
}

/// Stores the 1,000 responses a purge removes (again).
fn refill(store: &MemoryStore, key: &dyn Fn(usize) -> String, tags: &str) {
    let none = HeaderMap::new();
    let e = entry(tags, store.generation());
    for i in 0..HOT {
        store.insert(&key(i), Arc::clone(&e), &none);
    }
    store.maintain();
}

fn purge(c: &mut Criterion) {
    let store = populate();
    let mut g = c.benchmark_group("purge_1k_of_1m");
    g.sample_size(30);
    g.bench_function("tag", |b| {
        b.iter_batched(
            || refill(&store, &tag_key, "t-hot other"),
            |()| {
                let n = store.purge(black_box(&Selector::Tag("t-hot".into())), false);
                assert_eq!(n, HOT);
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("prefix", |b| {
        b.iter_batched(
            || refill(&store, &prefix_key, "bg-1"),
            |()| {
                let sel = Selector::Prefix("http://cdn.example/hot/".into());
                let n = store.purge(black_box(&sel), false);
                assert_eq!(n, HOT);
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("tag_soft", |b| {
        b.iter_batched(
            || refill(&store, &tag_key, "t-hot other"),
            |()| {
                let n = store.purge(black_box(&Selector::Tag("t-hot".into())), true);
                assert_eq!(n, HOT);
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, purge);
criterion_main!(benches);
