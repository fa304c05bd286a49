//! Purges by tag and by prefix in a store of 1,000,000 responses, 1,000 of
//! which each purge names: the indexes make the cost follow the matches,
//! not the store (issue 9: under 10 ms each).
//!
//! Run with `cargo bench -p meridian-cache --bench purge`. Building the
//! store takes about twenty seconds and 620 MB; bodies are 16 bytes, and
//! the 998,000 responses no purge touches share 1,000 `Entry` values (tags
//! `bg-0` .. `bg-999`, so the tag index holds 1,000 sets of ~1,000 keys).
//! The 1,000 a purge names get an `Entry` each, as the proxy stores them.
//!
//! A hard purge marks what it names (never served again) and leaves the
//! removal from moka to `maintain()`, the node's once-a-second
//! housekeeping (`store.rs`). Between timed purges the bench runs
//! `maintain()`, which removes them and pays for moka's hash-table rebuilds,
//! then stores the 1,000 again, both untimed.
//!
//! Criterion reports a mean, which a rare slow purge pulls up; before it
//! runs, the bench prints the distribution of 200 timed purges of each
//! kind (wall time, and wall time less the time spent waiting for a CPU as
//! Linux's schedstat reports it, for a shared machine), and of the
//! `maintain()` after each.
//!
//! Measured on the shared 2-core VM (2026-12-01, release), the same bench
//! against the store before and after the marks, three runs each,
//! interleaved (load average 5.2-5.6 in the first pair, 1.3-2.3 after):
//!
//! | | criterion mean, per run | p50 | p99 |
//! |---|---|---|---|
//! | tag, marking | 2.97, 1.53, 2.28 ms | 2.1-3.0 ms | 2.8-11.4 ms |
//! | prefix, marking | 2.89, 1.69, 1.84 ms | 1.9-2.4 ms | 2.9-8.9 ms |
//! | tag, removing in the purge | 16.4, 11.2, 11.4 ms | 4.8-6.6 ms | 62-71 ms |
//! | prefix, removing in the purge | 15.7, 12.3, 10.5 ms | 6.6-6.9 ms | 38-63 ms |
//! | soft tag, marking | 3.42, 1.93, 1.98 ms | | |
//! | soft tag, before | 2.35, 1.37, 1.63 ms | | |
//!
//! The `maintain()` that then removes the 1,000: mean 9-18 ms, p50 6-14 ms,
//! p99 57-80 ms (moka rebuilding segments of its table); before, removal
//! happened in the purge and `maintain()` had nothing to do.

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

/// The key of the i-th response a purge removes.
type KeyOf = dyn Fn(usize) -> String;

/// Stores the 1,000 responses a purge removes (again), one `Entry` each as
/// the proxy stores them (a purge marks the entry itself).
fn refill(store: &MemoryStore, key: &KeyOf, tags: &str) {
    let none = HeaderMap::new();
    let generation = store.generation();
    for i in 0..HOT {
        store.insert(&key(i), entry(tags, generation), &none);
    }
    store.maintain();
}

/// Between timed purges: housekeeping removes what the last purge marked
/// (paying moka's table rebuilds, as the node's once-a-second task does),
/// then the responses are stored again.
fn setup(store: &MemoryStore, key: &KeyOf, tags: &str) {
    store.maintain();
    refill(store, key, tags);
}

/// Nanoseconds this thread has waited on a run queue (Linux; 0 elsewhere).
fn run_queue_wait() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|x| x.parse().ok()))
        .unwrap_or(0)
}

fn percentiles(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let at = |q: usize| v[(v.len() - 1) * q / 100];
    let n = u32::try_from(v.len()).unwrap_or(u32::MAX).max(1);
    println!(
        "{name}: mean {:.2?} p50 {:.2?} p90 {:.2?} p99 {:.2?} max {:.2?} (n={})",
        v.iter().sum::<Duration>() / n,
        at(50),
        at(90),
        at(99),
        at(100),
        v.len()
    );
}

/// 200 timed purges of each kind, refilled untimed in between, and the
/// housekeeping after each that removes what it marked.
fn distribution(store: &MemoryStore) {
    let cases: [(&str, &KeyOf, &str, Selector); 2] = [
        (
            "tag",
            &tag_key,
            "t-hot other",
            Selector::Tag("t-hot".into()),
        ),
        (
            "prefix",
            &prefix_key,
            "bg-1",
            Selector::Prefix("http://cdn.example/hot/".into()),
        ),
    ];
    for (name, key, tags, sel) in cases {
        let (mut wall, mut on_cpu, mut removal) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..200 {
            refill(store, key, tags);
            let waited = run_queue_wait();
            let t = std::time::Instant::now();
            assert_eq!(store.purge(&sel, false), HOT);
            let w = t.elapsed();
            let waited = Duration::from_nanos(run_queue_wait().saturating_sub(waited));
            wall.push(w);
            on_cpu.push(w.saturating_sub(waited));
            let t = std::time::Instant::now();
            store.maintain();
            removal.push(t.elapsed());
        }
        percentiles(&format!("purge_1k_of_1m/{name} wall"), wall);
        percentiles(
            &format!("purge_1k_of_1m/{name} wall less run-queue wait"),
            on_cpu,
        );
        percentiles(
            &format!("purge_1k_of_1m/{name} then maintain() (removal)"),
            removal,
        );
    }
}

fn purge(c: &mut Criterion) {
    let store = populate();
    distribution(&store);
    let mut g = c.benchmark_group("purge_1k_of_1m");
    g.sample_size(30);
    g.bench_function("tag", |b| {
        b.iter_batched(
            || setup(&store, &tag_key, "t-hot other"),
            |()| {
                let n = store.purge(black_box(&Selector::Tag("t-hot".into())), false);
                assert_eq!(n, HOT);
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("prefix", |b| {
        b.iter_batched(
            || setup(&store, &prefix_key, "bg-1"),
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
            || setup(&store, &tag_key, "t-hot other"),
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
