//! 7. Revalidation with 304, 8. stale-while-revalidate and stale-if-error.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::support::{Node, Origin, Reply, cache_status, client, eventually};

/// Waits until a `max-age=1` response is stale (ages are whole seconds).
async fn until_stale() {
    tokio::time::sleep(Duration::from_millis(2100)).await;
}

#[tokio::test]
async fn stale_response_is_revalidated_and_304_updates_headers_rfc9111_4_3_4() {
    let version = Arc::new(AtomicU32::new(1));
    let v = Arc::clone(&version);
    let origin = Origin::start(move |s| {
        let n = v.load(Ordering::SeqCst);
        if s.header("if-none-match") == Some("\"e1\"") {
            Reply::ok("")
                .status(304)
                .header("etag", "\"e1\"")
                .header("cache-control", "max-age=1")
                .header("x-version", &n.to_string())
        } else {
            Reply::ok("the body")
                .header("etag", "\"e1\"")
                .header("cache-control", "max-age=1")
                .header("x-version", &n.to_string())
        }
    })
    .await;
    let edge = Node::edge(&[origin.url()]).await;
    let c = client();
    c.get(edge.url("/doc")).send().await.expect("fill");
    version.store(2, Ordering::SeqCst);
    until_stale().await;
    let r = c.get(edge.url("/doc")).send().await.expect("send");
    assert_eq!(
        r.status(),
        200,
        "a client that did not ask conditionally gets 200"
    );
    assert_eq!(
        cache_status(&r),
        "edge-1; fwd=stale; fwd-status=304; ttl=1; stored"
    );
    assert_eq!(
        r.headers()["x-version"],
        "2",
        "stored headers updated from the 304"
    );
    assert_eq!(r.text().await.expect("body"), "the body");
    assert_eq!(origin.last().header("if-none-match"), Some("\"e1\""));
    let r = c.get(edge.url("/doc")).send().await.expect("send");
    assert!(
        cache_status(&r).contains("; hit"),
        "fresh again: {}",
        cache_status(&r)
    );
    assert_eq!(r.headers()["x-version"], "2");
    assert_eq!(origin.count(), 2);
}

#[tokio::test]
async fn last_modified_validator_is_used_when_there_is_no_etag() {
    let lm = "Tue, 01 Sep 2026 10:00:00 GMT";
    let origin = Origin::start(move |s| {
        if s.header("if-modified-since") == Some(lm) {
            Reply::ok("")
                .status(304)
                .header("cache-control", "max-age=1")
        } else {
            Reply::ok("lm body")
                .header("last-modified", lm)
                .header("cache-control", "max-age=1")
        }
    })
    .await;
    let edge = Node::edge(&[origin.url()]).await;
    let c = client();
    c.get(edge.url("/lm")).send().await.expect("fill");
    until_stale().await;
    let r = c.get(edge.url("/lm")).send().await.expect("send");
    assert!(
        cache_status(&r).contains("fwd-status=304"),
        "{}",
        cache_status(&r)
    );
    assert_eq!(r.text().await.expect("body"), "lm body");
}

#[tokio::test]
async fn stale_while_revalidate_serves_stale_and_refreshes_once_rfc5861_3() {
    let version = Arc::new(AtomicU32::new(1));
    let v = Arc::clone(&version);
    let origin = Origin::start(move |_| {
        let n = v.load(Ordering::SeqCst);
        // v2 stays fresh: however slow the machine, the polls below cannot
        // make it stale and start a second refresh.
        let cc = if n == 1 {
            "max-age=1, stale-while-revalidate=60"
        } else {
            "max-age=600"
        };
        Reply::ok(format!("v{n}"))
            .header("cache-control", cc)
            .delay(Duration::from_millis(300))
    })
    .await;
    let edge = Node::edge(&[origin.url()]).await;
    let c = client();
    c.get(edge.url("/swr")).send().await.expect("fill");
    version.store(2, Ordering::SeqCst);
    until_stale().await;
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let c = c.clone();
        let url = edge.url("/swr");
        tasks.push(tokio::spawn(async move {
            let r = c.get(url).send().await.expect("send");
            (cache_status(&r), r.text().await.expect("body"))
        }));
    }
    for t in tasks {
        let (cs, body) = t.await.expect("join");
        assert_eq!(body, "v1", "stale copy served at once");
        assert!(
            cs.contains("; hit") && cs.contains("detail=stale-while-revalidate"),
            "{cs}"
        );
    }
    let c2 = c.clone();
    let url = edge.url("/swr");
    eventually(
        "the background refresh stored v2",
        Duration::from_secs(5),
        || {
            let c = c2.clone();
            let url = url.clone();
            async move {
                c.get(url)
                    .send()
                    .await
                    .expect("send")
                    .text()
                    .await
                    .expect("body")
                    == "v2"
            }
        },
    )
    .await;
    assert_eq!(origin.count(), 2, "exactly one background refresh");
}

#[tokio::test]
async fn stale_if_error_serves_stale_when_the_origin_fails_rfc5861_4() {
    let failing = Arc::new(AtomicU32::new(0));
    let f = Arc::clone(&failing);
    let origin = Origin::start(move |s| {
        if f.load(Ordering::SeqCst) == 1 {
            return Reply::ok("broken").status(503);
        }
        let cc = if s.path == "/strict" {
            "max-age=1, must-revalidate"
        } else {
            "max-age=1, stale-if-error=60"
        };
        Reply::ok("good copy").header("cache-control", cc)
    })
    .await;
    let edge = Node::edge(&[origin.url()]).await;
    let c = client();
    c.get(edge.url("/sie")).send().await.expect("fill");
    c.get(edge.url("/strict")).send().await.expect("fill");
    failing.store(1, Ordering::SeqCst);
    until_stale().await;
    let r = c.get(edge.url("/sie")).send().await.expect("send");
    assert_eq!(r.status(), 200);
    let cs = cache_status(&r);
    // ttl is negative (stale); its exact value depends on where the second
    // boundary fell, since Date has one-second resolution.
    assert!(
        cs.starts_with("edge-1; fwd=stale; fwd-status=503; ttl=-")
            && cs.ends_with("; detail=stale-if-error"),
        "{cs}"
    );
    assert_eq!(r.text().await.expect("body"), "good copy");
    let r = c.get(edge.url("/strict")).send().await.expect("send");
    assert_eq!(r.status(), 503, "must-revalidate: never stale");
    // The failure did not poison the cache: the origin recovers, so does the edge.
    failing.store(0, Ordering::SeqCst);
    let r = c.get(edge.url("/sie")).send().await.expect("send");
    assert_eq!(r.status(), 200);
    assert!(
        cache_status(&r).contains("fwd-status=200; ttl=1; stored"),
        "{}",
        cache_status(&r)
    );
}

#[tokio::test]
async fn grace_serves_stale_when_the_origin_is_gone_and_must_revalidate_gives_504() {
    let mut origin = Origin::start(|s| {
        let cc = if s.path == "/strict" {
            "max-age=1, must-revalidate"
        } else {
            "max-age=1"
        };
        Reply::ok("kept").header("cache-control", cc)
    })
    .await;
    let edge = Node::edge_with(meridian_edge::FileConfig {
        upstream: vec![origin.url()],
        name: Some("edge-1".into()),
        cache: meridian_edge::config::CacheSection {
            stale_if_error_grace: Some("1h".parse().expect("duration")),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let c = client();
    c.get(edge.url("/g")).send().await.expect("fill");
    c.get(edge.url("/strict")).send().await.expect("fill");
    origin.stop().await;
    until_stale().await;
    let r = c.get(edge.url("/g")).send().await.expect("send");
    assert_eq!(r.status(), 200);
    assert!(
        cache_status(&r).contains("detail=stale-if-error"),
        "{}",
        cache_status(&r)
    );
    assert_eq!(r.text().await.expect("body"), "kept");
    let r = c.get(edge.url("/strict")).send().await.expect("send");
    assert_eq!(
        r.status(),
        502,
        "no stale copy under must-revalidate: the connect error shows"
    );
}

/// RFC 9111 §4.2.4 with the default `cache.stale-if-error-grace` (10 s,
/// nothing configured): an origin that is gone (connection refused) gets
/// its stale copy served for a while; `no-cache`, `proxy-revalidate` and
/// `s-maxage` still forbid it.
#[tokio::test]
async fn the_default_grace_serves_stale_when_the_origin_is_gone_unless_forbidden() {
    let mut origin = Origin::start(|s| {
        let cc = match s.path.as_str() {
            "/no-cache" => "max-age=1, no-cache",
            "/proxy" => "max-age=1, proxy-revalidate",
            "/s-maxage" => "max-age=1, s-maxage=1",
            _ => "max-age=1",
        };
        Reply::ok("kept")
            .header("cache-control", cc)
            .header("etag", "\"k\"")
    })
    .await;
    let edge = Node::edge(&[origin.url()]).await;
    let c = client();
    let paths = ["/plain", "/no-cache", "/proxy", "/s-maxage"];
    for p in paths {
        let r = c.get(edge.url(p)).send().await.expect("fill");
        assert_eq!(r.status(), 200, "{p}");
    }
    origin.stop().await;
    until_stale().await;
    let r = c.get(edge.url("/plain")).send().await.expect("send");
    assert_eq!(r.status(), 200);
    assert!(
        cache_status(&r).contains("detail=stale-if-error"),
        "{}",
        cache_status(&r)
    );
    assert_eq!(r.text().await.expect("body"), "kept");
    for p in ["/no-cache", "/proxy", "/s-maxage"] {
        let r = c.get(edge.url(p)).send().await.expect("send");
        assert_eq!(
            r.status(),
            502,
            "{p}: no stale copy, the connect error shows"
        );
    }
}
