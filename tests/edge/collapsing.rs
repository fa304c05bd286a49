//! 9. Request collapsing.

use std::time::Duration;

use crate::support::{Node, Origin, Reply, cache_status, client};

#[tokio::test]
async fn concurrent_misses_send_one_request_upstream() {
    let origin = Origin::start(|_| {
        Reply::ok("shared bytes")
            .header("cache-control", "max-age=60")
            .delay(Duration::from_millis(400))
    })
    .await;
    let edge = Node::edge(&[origin.url()]).await;
    let c = client();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let c = c.clone();
        let url = edge.url("/hot");
        tasks.push(tokio::spawn(async move {
            let r = c.get(url).send().await.expect("send");
            (r.status(), cache_status(&r), r.text().await.expect("body"))
        }));
    }
    let mut collapsed = 0;
    for t in tasks {
        let (status, cs, body) = t.await.expect("join");
        assert_eq!(status, 200);
        assert_eq!(body, "shared bytes");
        if cs.contains("collapsed") {
            collapsed += 1;
        }
    }
    assert_eq!(origin.count(), 1, "exactly one upstream request");
    assert!(
        collapsed >= 40,
        "most requests waited on the one fetch: {collapsed}"
    );
}

#[tokio::test]
async fn waiters_go_upstream_at_once_when_the_response_is_not_storable() {
    let origin = Origin::start(|_| {
        Reply::ok("private")
            .header("cache-control", "private")
            .delay(Duration::from_millis(500))
    })
    .await;
    let edge = Node::edge(&[origin.url()]).await;
    let c = client();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let c = c.clone();
        let url = edge.url("/p");
        tasks.push(tokio::spawn(async move {
            c.get(url)
                .send()
                .await
                .expect("send")
                .text()
                .await
                .expect("body")
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("join"), "private");
    }
    assert_eq!(origin.count(), 8, "each went upstream on its own");
    // The leader's fetch, then all seven waiters together: never a queue of
    // one-at-a-time fetches.
    assert!(
        origin.max_in_flight() >= 7,
        "waiters were released together: {} at once",
        origin.max_in_flight()
    );
}
