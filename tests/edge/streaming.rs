//! Streaming fills (issue 8, item 3 and 4): a miss reaches its client while
//! the origin is still sending, collapsed requests read the same fill at
//! their own pace, a body that breaks off cuts every reader and is never
//! stored, and fills that cannot be stored (too large, out of budget) keep
//! streaming. The origin holds back the rest of each body until the test
//! releases it, so "before the origin finished" is shown by bytes received,
//! not by timing.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use meridian_common::ByteSize;
use meridian_proxy::config::CacheSection;

use crate::support::{Node, StreamOrigin, StreamSpec, cache_status, client};

/// Bounds every wait, so a regression fails instead of hanging.
const WAIT: Duration = Duration::from_secs(10);

/// Reads from `resp` until at least `n` bytes arrived; returns them.
async fn read_at_least(
    stream: &mut (impl futures_util::Stream<Item = reqwest::Result<Bytes>> + Unpin),
    n: usize,
) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < n {
        let next = tokio::time::timeout(WAIT, stream.next())
            .await
            .expect("bytes arrive while the origin holds the rest back");
        match next {
            Some(Ok(b)) => got.extend_from_slice(&b),
            other => panic!("body ended early: {other:?}"),
        }
    }
    got
}

/// Reads the rest; `Err` when the body was cut.
async fn read_rest(
    mut got: Vec<u8>,
    stream: &mut (impl futures_util::Stream<Item = reqwest::Result<Bytes>> + Unpin),
) -> Result<Vec<u8>, String> {
    loop {
        match tokio::time::timeout(WAIT, stream.next()).await {
            Err(_) => return Err("timed out".into()),
            Ok(None) => return Ok(got),
            Ok(Some(Ok(b))) => got.extend_from_slice(&b),
            Ok(Some(Err(e))) => return Err(e.to_string()),
        }
    }
}

async fn edge_for(origin: &StreamOrigin, cache: CacheSection) -> Node {
    Node::edge_with(meridian_edge::FileConfig {
        upstream: vec![origin.url()],
        name: Some("edge-1".into()),
        cache,
        ..Default::default()
    })
    .await
}

#[tokio::test]
async fn a_miss_streams_to_its_client_before_the_origin_finishes() {
    for content_length in [true, false] {
        let spec = StreamSpec {
            content_length,
            ..StreamSpec::new(64 << 10, 192 << 10)
        };
        let origin = StreamOrigin::start(spec.clone()).await;
        let edge = edge_for(&origin, CacheSection::default()).await;
        let c = client();
        let r = tokio::time::timeout(WAIT, c.get(edge.url("/big")).send())
            .await
            .expect("headers before the body is complete")
            .expect("send");
        assert_eq!(r.status(), 200);
        let cs = cache_status(&r);
        assert!(cs.contains("fwd=miss") && cs.contains("stored"), "{cs}");
        let mut s = r.bytes_stream();
        // The first 64 KiB arrive while the origin still holds the rest.
        let got = read_at_least(&mut s, 64 << 10).await;
        origin.release();
        let body = read_rest(got, &mut s).await.expect("complete body");
        assert!(
            body == spec.body(),
            "bytes identical (content-length: {content_length})"
        );
        // Stored whole: the next request is a hit with the same bytes.
        let again = c.get(edge.url("/big")).send().await.expect("send");
        assert!(
            cache_status(&again).contains("hit"),
            "{}",
            cache_status(&again)
        );
        assert_eq!(again.bytes().await.expect("body"), spec.body());
        assert_eq!(origin.gets(), 1);
    }
}

#[tokio::test]
async fn collapsed_requests_read_the_fill_while_it_arrives() {
    let spec = StreamSpec::new(32 << 10, 256 << 10);
    let origin = StreamOrigin::start(spec.clone()).await;
    let edge = edge_for(&origin, CacheSection::default()).await;
    let c = client();
    let leader = c.get(edge.url("/v.mp4")).send().await.expect("send");
    let mut streams = vec![leader.bytes_stream()];
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let r = tokio::time::timeout(WAIT, c.get(edge.url("/v.mp4")).send())
            .await
            .expect("a waiter gets headers while the fill is in progress")
            .expect("send");
        statuses.push(cache_status(&r));
        streams.push(r.bytes_stream());
    }
    // Every reader, the leader and ten waiters, has the first bytes before
    // the origin sends the rest.
    let mut firsts = Vec::new();
    for s in &mut streams {
        firsts.push(read_at_least(s, 32 << 10).await);
    }
    origin.release();
    for (s, got) in streams.iter_mut().zip(firsts) {
        let body = read_rest(got, s).await.expect("complete");
        assert!(body == spec.body(), "every reader gets identical bytes");
    }
    assert!(
        statuses.iter().all(|s| s.contains("collapsed")),
        "{statuses:?}"
    );
    assert_eq!(origin.gets(), 1, "one origin fetch for eleven readers");
}

#[tokio::test]
async fn a_body_that_breaks_off_cuts_every_reader_and_is_not_stored() {
    for content_length in [true, false] {
        let spec = StreamSpec {
            content_length,
            fail: true,
            ..StreamSpec::new(16 << 10, 64 << 10)
        };
        let origin = StreamOrigin::start(spec).await;
        let edge = edge_for(&origin, CacheSection::default()).await;
        let c = client();
        let mut streams = Vec::new();
        for _ in 0..4 {
            let r = c.get(edge.url("/broken")).send().await.expect("send");
            streams.push(r.bytes_stream());
        }
        let mut firsts = Vec::new();
        for s in &mut streams {
            firsts.push(read_at_least(s, 16 << 10).await);
        }
        origin.release();
        for (s, got) in streams.iter_mut().zip(firsts) {
            // Never a complete-looking short body.
            let r = read_rest(got, s).await;
            assert!(
                r.is_err(),
                "content-length {content_length}: body must be cut, got {} bytes",
                r.map(|b| b.len()).unwrap_or(0)
            );
        }
        // Nothing was stored: the next request goes to the origin again.
        let r = c.get(edge.url("/broken")).send().await.expect("send");
        assert!(
            cache_status(&r).contains("fwd=miss"),
            "{}",
            cache_status(&r)
        );
        drop(r);
        assert_eq!(origin.gets(), 2);
    }
}

#[tokio::test]
async fn a_body_growing_past_max_object_size_keeps_streaming_unstored() {
    let spec = StreamSpec {
        content_length: false,
        ..StreamSpec::new(48 << 10, 200 << 10)
    };
    let origin = StreamOrigin::start(spec.clone()).await;
    let edge = edge_for(
        &origin,
        CacheSection {
            max_object_size: Some(ByteSize(64 << 10)),
            ..Default::default()
        },
    )
    .await;
    let c = client();
    let r = c.get(edge.url("/grows")).send().await.expect("send");
    let mut s = r.bytes_stream();
    let got = read_at_least(&mut s, 48 << 10).await;
    origin.release();
    let body = read_rest(got, &mut s).await.expect("complete");
    assert!(body == spec.body(), "the whole body, byte for byte");
    let again = c.get(edge.url("/grows")).send().await.expect("send");
    assert!(cache_status(&again).contains("fwd=miss"), "not stored");
    assert_eq!(again.bytes().await.expect("body"), spec.body());
    assert_eq!(origin.gets(), 2);
}

#[tokio::test]
async fn misses_past_the_fill_budget_stream_through_unstored() {
    let spec = StreamSpec::new(40 << 10, 80 << 10);
    let origin = StreamOrigin::start(spec.clone()).await;
    origin.release();
    let budget = |n: u64| CacheSection {
        fill_budget: Some(ByteSize(n)),
        ..Default::default()
    };
    // One byte short of the body: streamed, not stored.
    let edge = edge_for(&origin, budget((120 << 10) - 1)).await;
    let c = client();
    for _ in 0..2 {
        let r = c.get(edge.url("/x")).send().await.expect("send");
        let cs = cache_status(&r);
        assert!(
            cs.contains("fwd=miss") && cs.contains("detail=fill-budget"),
            "{cs}"
        );
        assert_eq!(r.bytes().await.expect("body"), spec.body());
    }
    assert_eq!(origin.gets(), 2);
    // Exactly the body's size: stored.
    let edge = edge_for(&origin, budget(120 << 10)).await;
    let r = c.get(edge.url("/x")).send().await.expect("send");
    assert!(cache_status(&r).contains("stored"), "{}", cache_status(&r));
    assert_eq!(r.bytes().await.expect("body"), spec.body());
    let r = c.get(edge.url("/x")).send().await.expect("send");
    assert!(cache_status(&r).contains("hit"), "{}", cache_status(&r));
}

#[tokio::test]
async fn a_fill_that_began_before_an_invalidation_is_not_stored_after_it() {
    let spec = StreamSpec::new(8 << 10, 8 << 10);
    let origin = StreamOrigin::start(spec.clone()).await;
    let edge = edge_for(&origin, CacheSection::default()).await;
    let c = client();
    let r = c.get(edge.url("/doc")).send().await.expect("send");
    let mut s = r.bytes_stream();
    let got = read_at_least(&mut s, 8 << 10).await;
    // A POST to the URL succeeds while the GET is filling (RFC 9111 §4.4
    // invalidation: the same purge the admin API will use).
    let post = c
        .post(edge.url("/doc"))
        .body("x")
        .send()
        .await
        .expect("post");
    assert_eq!(post.status(), 200);
    origin.release();
    assert_eq!(read_rest(got, &mut s).await.expect("complete"), spec.body());
    // The fill finished after the invalidation: it must not be served.
    let r = c.get(edge.url("/doc")).send().await.expect("send");
    assert!(
        cache_status(&r).contains("fwd=miss"),
        "{}",
        cache_status(&r)
    );
    assert_eq!(r.bytes().await.expect("body"), spec.body());
    assert_eq!(origin.gets(), 2);
}

#[tokio::test]
async fn a_waiters_range_is_answered_from_the_fill_in_progress() {
    let spec = StreamSpec::new(16 << 10, 16 << 10);
    let origin = StreamOrigin::start(spec.clone()).await;
    let edge = edge_for(&origin, CacheSection::default()).await;
    let c = client();
    let leader = c.get(edge.url("/r")).send().await.expect("send");
    // Bytes 100..=199 are in the part already sent: answered before the
    // origin sends the rest.
    let r = tokio::time::timeout(
        WAIT,
        c.get(edge.url("/r"))
            .header("range", "bytes=100-199")
            .send(),
    )
    .await
    .expect("headers")
    .expect("send");
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes 100-199/{}", 32 << 10)
    );
    let part = tokio::time::timeout(WAIT, r.bytes())
        .await
        .expect("the range arrives before the rest of the body")
        .expect("body");
    assert_eq!(part, spec.body().slice(100..200));
    // A range in the part not yet sent follows the fill.
    let tail = c
        .get(edge.url("/r"))
        .header("range", "bytes=-10")
        .send()
        .await
        .expect("send");
    assert_eq!(tail.status(), 206);
    origin.release();
    assert_eq!(
        tail.bytes().await.expect("body"),
        spec.body().slice((32 << 10) - 10..)
    );
    assert_eq!(leader.bytes().await.expect("body"), spec.body());
    assert_eq!(origin.gets(), 1);
}
