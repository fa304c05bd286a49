//! The purge guarantee on one node: an edge that has not heard from its
//! purge log for longer than `purge.max-lag` revalidates anything it fetched
//! before that, says so in `Cache-Status`, and never falls back to the
//! stored copy when the revalidation fails.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use meridian_common::HumanDuration;
use meridian_edge::FileConfig;
use meridian_edge::config::PurgeSection;

use crate::support::{Node, Origin, Reply, cache_status, client, fast_health};

/// An origin whose body is `v<N>` with a matching ETag, fresh for an hour
/// and usable for an hour on error.
async fn versioned() -> (Origin, Arc<AtomicU32>) {
    let version = Arc::new(AtomicU32::new(1));
    let v = Arc::clone(&version);
    let origin = Origin::start(move |s| {
        let n = v.load(Ordering::SeqCst);
        let etag = format!("\"v{n}\"");
        let cc = "max-age=3600, stale-if-error=3600";
        if s.header("if-none-match") == Some(etag.as_str()) {
            return Reply::ok("")
                .status(304)
                .header("etag", &etag)
                .header("cache-control", cc);
        }
        Reply::ok(format!("v{n}"))
            .header("etag", &etag)
            .header("cache-control", cc)
    })
    .await;
    (origin, version)
}

/// An edge following a purge log that is not there (nothing listens on
/// the discard port), so it never syncs.
fn cut_off_edge(origin: &Origin, name: &str) -> FileConfig {
    FileConfig {
        name: Some(name.into()),
        upstream: vec![origin.url()],
        health: fast_health(),
        purge: PurgeSection {
            log: Some("http://127.0.0.1:9".into()),
            max_lag: Some(HumanDuration(Duration::from_millis(700))),
            token_file: None,
        },
        ..Default::default()
    }
}

#[tokio::test]
async fn a_node_cut_off_from_the_purge_log_revalidates_what_it_stored_before_max_lag() {
    let (origin, version) = versioned().await;
    let edge = Node::edge_with(cut_off_edge(&origin, "lagging"))
        .start()
        .await;
    // The control: the same traffic through a node that follows no log.
    let plain = Node::edge(&[origin.url()]).name("plain").start().await;
    let c = client();
    for node in [&edge, &plain] {
        let r = c.get(node.url("/a")).send().await.expect("fill");
        assert_eq!(r.text().await.expect("body"), "v1");
    }
    // The object changes (a purge the cut-off node never hears of).
    version.store(2, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let r = c.get(plain.url("/a")).send().await.expect("send");
    assert!(cache_status(&r).contains("; hit"), "{}", cache_status(&r));
    assert_eq!(r.text().await.expect("body"), "v1", "no log, no guarantee");

    let before = origin.count();
    let r = c.get(edge.url("/a")).send().await.expect("send");
    let cs = cache_status(&r);
    assert!(cs.contains("fwd=stale"), "{cs}");
    assert!(
        cs.contains("detail=purge-lag"),
        "Cache-Status says why: {cs}"
    );
    assert_eq!(
        r.text().await.expect("body"),
        "v2",
        "the new bytes, not the stored ones"
    );
    assert_eq!(origin.count(), before + 1);
    assert_eq!(
        origin.last().header("if-none-match"),
        Some("\"v1\""),
        "a revalidation, not a blind refetch"
    );
    // Just fetched: within max-lag, so it is served as a hit again.
    let r = c.get(edge.url("/a")).send().await.expect("send");
    assert!(cache_status(&r).contains("; hit"), "{}", cache_status(&r));
    assert_eq!(r.text().await.expect("body"), "v2");
}

#[tokio::test]
async fn a_lagging_node_does_not_serve_its_old_copy_when_the_origin_is_down() {
    let (mut origin, _version) = versioned().await;
    let edge = Node::edge_with(cut_off_edge(&origin, "lagging"))
        .start()
        .await;
    let plain = Node::edge(&[origin.url()]).name("plain").start().await;
    let c = client();
    for node in [&edge, &plain] {
        c.get(node.url("/b")).send().await.expect("fill");
    }
    origin.stop().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // The control still has a fresh copy and serves it.
    let r = c.get(plain.url("/b")).send().await.expect("send");
    assert_eq!(r.status(), 200);
    // The lagging node may not: the copy may have been purged since.
    let r = c.get(edge.url("/b")).send().await.expect("send");
    let cs = cache_status(&r);
    assert_eq!(r.status(), 502, "{cs}");
    assert!(!cs.contains("stale-if-error"), "{cs}");
}
