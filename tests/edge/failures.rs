//! 14. Upstream failures: 502 on connect failure, 504 on timeout, never stored.

use std::time::Duration;

use crate::support::{Node, Origin, Reply, cache_status, client};

#[tokio::test]
async fn connect_failure_is_502_and_is_not_stored() {
    // A port that was just free: nothing listens there.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let edge = Node::edge(&[format!("http://{addr}")]).await;
    let c = client();
    let r = c.get(edge.url("/x")).send().await.expect("send");
    assert_eq!(r.status(), 502);
    assert!(
        cache_status(&r).contains("detail=upstream-connect"),
        "{}",
        cache_status(&r)
    );
    assert!(
        !r.text().await.expect("body").is_empty(),
        "a short body explains"
    );
    let origin = Origin::start_at(addr, |_| {
        Reply::ok("up now").header("cache-control", "max-age=60")
    })
    .await;
    let r = c.get(edge.url("/x")).send().await.expect("send");
    assert_eq!(r.status(), 200, "the error was not stored");
    assert_eq!(r.text().await.expect("body"), "up now");
    assert_eq!(origin.count(), 1);
}

#[tokio::test]
async fn upstream_timeout_is_504() {
    let origin = Origin::start(|_| Reply::ok("late").delay(Duration::from_secs(3))).await;
    let edge = Node::edge_with(meridian_edge::FileConfig {
        upstream: vec![origin.url()],
        timeouts: meridian_edge::config::TimeoutSection {
            response: Some("300ms".parse().expect("duration")),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let r = client().get(edge.url("/slow")).send().await.expect("send");
    assert_eq!(r.status(), 504);
    assert!(
        cache_status(&r).contains("detail=upstream-timeout"),
        "{}",
        cache_status(&r)
    );
}

#[tokio::test]
async fn only_if_cached_miss_is_504_rfc9111_5_2_1_7() {
    let origin = Origin::start(|_| Reply::ok("x").header("cache-control", "max-age=60")).await;
    let edge = Node::edge(&[origin.url()]).await;
    let r = client()
        .get(edge.url("/oic"))
        .header("cache-control", "only-if-cached")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 504);
    assert_eq!(origin.count(), 0);
}
