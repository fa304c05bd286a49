//! The functions on the edge's hit path (and the fill path's store side):
//! cache key building, Cache-Control parsing, the storage decision and the
//! reuse decision, and the in-memory store's lookup and insert.
//!
//! Run with `cargo bench -p meridian-cache --bench hot`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, StatusCode};
use meridian_cache::{
    CacheControl, Entry, KeyOptions, MemoryStore, Policy, Storage, Variant, cache_key, policy,
};

/// Response headers as `meridian origin` sends them for a small file.
fn origin_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    let now = httpdate::fmt_http_date(SystemTime::now());
    h.insert(header::DATE, HeaderValue::from_str(&now).expect("date"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("1024"));
    h.insert(
        header::ETAG,
        HeaderValue::from_static("\"400-18f2a3b4c5d\""),
    );
    h.insert(
        header::LAST_MODIFIED,
        HeaderValue::from_static("Mon, 01 Jan 2024 00:00:00 GMT"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h
}

/// A request as wrk sends it.
fn request_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
    h
}

fn entry(resp: &HeaderMap, req: &HeaderMap, body: Bytes) -> Arc<Entry> {
    let now = SystemTime::now();
    let fresh = policy::storable(
        &Policy::default(),
        &Method::GET,
        req,
        StatusCode::OK,
        resp,
        now,
        now,
    )
    .expect("storable");
    Arc::new(Entry::new(
        StatusCode::OK,
        resp.clone(),
        body,
        fresh,
        Variant::new(resp, req),
    ))
}

fn key(c: &mut Criterion) {
    let plain = KeyOptions::default();
    let sort = KeyOptions {
        sort_query: true,
        ..Default::default()
    };
    let mut g = c.benchmark_group("cache_key");
    g.bench_function("path", |b| {
        b.iter(|| {
            cache_key(
                black_box("http"),
                black_box("127.0.0.1:8080"),
                black_box("/hot/f04711.bin"),
                &plain,
            )
        })
    });
    g.bench_function("query", |b| {
        b.iter(|| {
            cache_key(
                black_box("http"),
                black_box("Example.COM:80"),
                black_box("/img/a.png?w=200&h=100&fmt=webp"),
                &plain,
            )
        })
    });
    g.bench_function("query_sorted", |b| {
        b.iter(|| {
            cache_key(
                black_box("http"),
                black_box("Example.COM:80"),
                black_box("/img/a.png?w=200&h=100&fmt=webp"),
                &sort,
            )
        })
    });
    g.finish();
}

fn cache_control(c: &mut Criterion) {
    let mut g = c.benchmark_group("cache_control_parse");
    for (name, value) in [
        ("public_max_age", "public, max-age=3600"),
        (
            "full",
            "public, max-age=60, s-maxage=300, stale-while-revalidate=30, stale-if-error=86400",
        ),
        ("no_store", "no-store"),
        (
            "quoted",
            "private=\"set-cookie\", no-cache=\"x\", max-age=0",
        ),
    ] {
        g.bench_function(name, |b| b.iter(|| CacheControl::parse(black_box(value))));
    }
    let req = request_headers();
    g.bench_function("request_absent", |b| {
        b.iter(|| CacheControl::from_cache_control(black_box(&req)))
    });
    g.finish();
}

fn freshness(c: &mut Criterion) {
    let resp = origin_headers();
    let req = request_headers();
    let pol = Policy::default();
    let mut g = c.benchmark_group("freshness");
    g.bench_function("storable", |b| {
        b.iter(|| {
            let now = SystemTime::now();
            policy::storable(
                &pol,
                &Method::GET,
                black_box(&req),
                StatusCode::OK,
                black_box(&resp),
                now,
                now,
            )
        })
    });
    let e = entry(&resp, &req, Bytes::from_static(&[b'x'; 1024]));
    let req_cc = CacheControl::default();
    g.bench_function("reuse", |b| {
        b.iter(|| {
            black_box(&e)
                .freshness
                .reuse(SystemTime::now(), black_box(&req_cc), false)
        })
    });
    let later = SystemTime::now() + Duration::from_secs(10);
    g.bench_function("reuse_fixed_now", |b| {
        b.iter(|| {
            black_box(&e)
                .freshness
                .reuse(black_box(later), black_box(&req_cc), false)
        })
    });
    g.finish();
}

const ENTRIES: usize = 10_000;

fn store(c: &mut Criterion) {
    let resp = origin_headers();
    let req = request_headers();
    let opts = KeyOptions::default();
    let body = Bytes::from(vec![b'x'; 1024]);
    let store = MemoryStore::new(1 << 30);
    let keys: Vec<String> = (0..ENTRIES)
        .map(|i| {
            cache_key(
                "http",
                "127.0.0.1:8080",
                &format!("/hot/f{i:05}.bin"),
                &opts,
            )
        })
        .collect();
    let e = entry(&resp, &req, body.clone());
    for k in &keys {
        store.insert(k, Arc::clone(&e), &req);
    }
    store.stats(); // runs moka's pending maintenance
    let mut g = c.benchmark_group("store");
    let mut i = 0usize;
    g.bench_function("lookup_hit_10k", |b| {
        b.iter(|| {
            i = (i + 7919) % ENTRIES;
            store.lookup(black_box(&keys[i]), black_box(&req))
        })
    });
    g.bench_function("lookup_miss_10k", |b| {
        b.iter(|| store.lookup(black_box("http://127.0.0.1:8080/nope"), black_box(&req)))
    });
    let mut n = 0usize;
    g.bench_function("insert_replace_10k", |b| {
        b.iter(|| {
            n = (n + 7919) % ENTRIES;
            store.insert(black_box(&keys[n]), Arc::clone(&e), &req)
        })
    });
    let fresh = MemoryStore::new(1 << 30);
    let mut m = 0u64;
    g.bench_function("insert_new", |b| {
        b.iter(|| {
            m += 1;
            let k = format!("http://127.0.0.1:8080/new/{m}");
            fresh.insert(black_box(&k), Arc::clone(&e), &req)
        })
    });
    g.finish();
}

criterion_group!(benches, key, cache_control, freshness, store);
criterion_main!(benches);
