//! The sample site (`meridian origin --sample-site`, issue 10) behind a real
//! edge: its headers make the edge do what a CDN demo should show. Pages
//! are a miss then hits, `/api/` is never stored, the short-TTL live data
//! revalidates with a 304 (no body from the origin), and a tag purge by
//! section takes that section only.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use meridian_common::Shutdown;
use meridian_common::auth::Scope;
use meridian_origin::{Counters, SampleSite};
use serde_json::json;

use crate::purge::{OPS, purge};
use crate::support::{Node, cache_status, client, eventually};

/// The sample origin on 127.0.0.1:0; stops when dropped.
struct SampleOrigin {
    url: String,
    site: Arc<SampleSite>,
    counters: Arc<Counters>,
    shutdown: Shutdown,
}

impl Drop for SampleOrigin {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

impl SampleOrigin {
    /// The site for seed 1 with the live section fresh for one second (5
    /// by default), so a revalidation comes within the test's time.
    async fn start() -> SampleOrigin {
        let site = Arc::new(SampleSite::generate(1).with_live_ttl(Duration::from_secs(1)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let counters = Arc::new(Counters::default());
        let shutdown = Shutdown::new();
        let (s, c, sd) = (Arc::clone(&site), Arc::clone(&counters), shutdown.clone());
        tokio::spawn(async move { meridian_origin::run_sample(listener, s, c, sd).await });
        SampleOrigin {
            url,
            site,
            counters,
            shutdown,
        }
    }

    fn requests(&self) -> u64 {
        self.counters.requests.load(Ordering::SeqCst)
    }

    fn bytes(&self) -> u64 {
        self.counters.bytes.load(Ordering::SeqCst)
    }
}

/// GETs `path` on the edge; returns (status, Cache-Status, body).
async fn fetch(c: &reqwest::Client, edge: &Node, path: &str) -> (u16, String, bytes::Bytes) {
    let r = c.get(edge.url(path)).send().await.expect("request");
    let (status, cs) = (r.status().as_u16(), cache_status(&r));
    (status, cs, r.bytes().await.expect("body"))
}

fn body_of(site: &SampleSite, path: &str) -> Vec<u8> {
    let a = site.get(path).expect("asset");
    a.slices(0..a.len).concat()
}

#[tokio::test]
async fn pages_are_cached_the_api_never_and_live_data_revalidates_with_304() {
    let origin = SampleOrigin::start().await;
    let edge = Node::edge(&[&origin.url])
        .admin_token("ops", OPS, &[Scope::Purge])
        .await;
    let c = client();

    // A page: a miss that reaches the origin, then a hit that does not.
    let (status, cs, body) = fetch(&c, &edge, "/").await;
    assert_eq!(status, 200);
    assert!(cs.contains("fwd=miss") && cs.contains("stored"), "{cs}");
    assert_eq!(body, body_of(&origin.site, "/"));
    let asked = origin.requests();
    let (_, cs, body) = fetch(&c, &edge, "/").await;
    assert!(cs.contains("; hit"), "{cs}");
    assert_eq!(body, body_of(&origin.site, "/"));
    assert_eq!(origin.requests(), asked, "a hit costs the origin nothing");

    // The API: every request reaches the origin, and each answer is new.
    let (_, cs1, first) = fetch(&c, &edge, "/api/cart").await;
    let (_, cs2, second) = fetch(&c, &edge, "/api/cart").await;
    assert_eq!(
        origin.requests(),
        asked + 2,
        "the API is never served from cache"
    );
    for cs in [&cs1, &cs2] {
        assert!(!cs.contains("stored") && !cs.contains("hit"), "{cs}");
    }
    assert_ne!(first, second);

    // Live data: stored, then once stale revalidated in line with a 304,
    // which costs the origin a request and no body.
    let live = "/live/scores.json";
    let (_, cs, body) = fetch(&c, &edge, live).await;
    assert!(cs.contains("fwd=miss") && cs.contains("stored"), "{cs}");
    let (asked, sent) = (origin.requests(), origin.bytes());
    let last = std::cell::RefCell::new(String::new());
    eventually(
        "the live data goes stale and is revalidated",
        Duration::from_secs(5),
        || async {
            let (status, cs, again) = fetch(&c, &edge, live).await;
            assert_eq!(status, 200);
            assert_eq!(again, body, "the same bytes, fresh or revalidated");
            let revalidated = cs.contains("fwd=stale; fwd-status=304");
            assert!(
                revalidated || !cs.contains("fwd="),
                "fresh is a hit, stale a 304 from the origin: {cs}"
            );
            *last.borrow_mut() = cs;
            revalidated
        },
    )
    .await;
    let last = last.into_inner();
    assert_eq!(origin.requests(), asked + 1, "one revalidation: {last}");
    assert_eq!(origin.bytes(), sent, "a 304 carries no body");
    let (_, cs, _) = fetch(&c, &edge, live).await;
    assert!(cs.contains("; hit"), "fresh again after the 304: {cs}");

    // A tag purge by section: news goes, the style sheet stays.
    let story = "/news/story-003.html";
    let css = "/static/css/site.css";
    fetch(&c, &edge, story).await;
    fetch(&c, &edge, css).await;
    purge(&c, &edge, json!({"tags": ["news"]})).await;
    let (_, cs, _) = fetch(&c, &edge, story).await;
    assert!(cs.contains("fwd=miss"), "purged with its section: {cs}");
    let (_, cs, _) = fetch(&c, &edge, css).await;
    assert!(cs.contains("; hit"), "another section stays: {cs}");
}
