//! HTTP/2 at the edge (issue 12, item 4), from a real hyper HTTP/2 client
//! over plain TCP with prior knowledge: misses and hits, `:authority` as
//! the cache key's host and the upstream `Host`, a disagreeing `host` field
//! refused (RFC 9113 §8.3.1), `Via: 2 <name>`, no connection-specific
//! field in an answer (§8.2.2), request bodies and streaming misses, and
//! many streams on one connection each getting their own bytes.

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::h2c::{self, H2_WAIT};
use crate::support::{Node, Origin, Reply, StreamOrigin, StreamSpec};

/// Answers with the `Host` and path it saw, cacheable.
async fn echo_origin() -> Origin {
    Origin::start(|seen| {
        let host = seen.header("host").unwrap_or("-").to_owned();
        Reply::ok(format!("{host} {}", seen.path)).header("cache-control", "public, max-age=60")
    })
    .await
}

fn empty() -> Full<Bytes> {
    Full::new(Bytes::new())
}

fn header<'a>(p: &'a http::response::Parts, name: &str) -> &'a str {
    p.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test]
async fn a_miss_then_a_hit_keyed_by_authority_with_via_2() {
    let origin = echo_origin().await;
    let edge = Node::edge(&[origin.url()]).await;
    let mut c = h2c::connect(edge.addr).await;
    let get = |authority: &str| {
        h2c::request(authority, "/page?x=1")
            .body(empty())
            .expect("request")
    };
    let (p, body) = h2c::send(&mut c, get("a.test")).await.expect("miss");
    assert_eq!(p.status, 200);
    assert_eq!(p.version, http::Version::HTTP_2);
    assert_eq!(
        body, "a.test /page?x=1",
        "the origin saw :authority as Host"
    );
    assert!(header(&p, "cache-status").contains("fwd=miss"), "{p:?}");
    let seen = origin.last();
    assert_eq!(seen.header("host"), Some("a.test"));
    assert_eq!(
        seen.header("via"),
        Some("2 edge-1"),
        "the hop says the request came in over HTTP/2 (RFC 9110 §7.6.3)"
    );

    let (p, body) = h2c::send(&mut c, get("a.test")).await.expect("hit");
    assert_eq!(body, "a.test /page?x=1");
    assert!(header(&p, "cache-status").contains("hit"), "{p:?}");
    assert_eq!(origin.count(), 1);

    // Another authority is another key.
    let (_, body) = h2c::send(&mut c, get("b.test")).await.expect("b");
    assert_eq!(body, "b.test /page?x=1");
    assert_eq!(origin.count(), 2);

    // HTTP/1.1 clients share the entry: same key.
    let r = crate::support::client()
        .get(edge.url("/page?x=1"))
        .header("host", "a.test")
        .send()
        .await
        .expect("h1");
    assert!(
        crate::support::cache_status(&r).contains("hit"),
        "{:?}",
        r.headers()
    );
    assert_eq!(r.text().await.expect("body"), "a.test /page?x=1");
    assert_eq!(origin.count(), 2);
}

/// RFC 9113 §8.3.1: a `host` field naming another entity than
/// `:authority` is malformed. Answered 400 (as nginx does) and never
/// forwarded, so it can neither fill nor poison either site's entry.
#[tokio::test]
async fn a_host_field_disagreeing_with_authority_is_refused_rfc9113_8_3_1() {
    let origin = echo_origin().await;
    let edge = Node::edge(&[origin.url()]).await;
    let mut c = h2c::connect(edge.addr).await;
    let req = h2c::request("victim.test", "/home")
        .header("host", "attacker.test")
        .body(empty())
        .expect("request");
    let (p, _) = h2c::send(&mut c, req).await.expect("answer");
    assert_eq!(p.status, 400);
    assert_eq!(origin.count(), 0, "nothing was forwarded");

    // The victim's entry is the victim's.
    let (status, body) = h2c::get_once(edge.addr, "victim.test", "/home").await;
    assert_eq!((status, &body[..]), (200, &b"victim.test /home"[..]));
    let (_, body) = h2c::get_once(edge.addr, "victim.test", "/home").await;
    assert_eq!(body, "victim.test /home");
    assert_eq!(origin.count(), 1);

    // A host field that agrees (case and default port aside) is fine.
    let req = h2c::request("victim.test", "/home")
        .header("host", "Victim.Test:80")
        .body(empty())
        .expect("request");
    let (p, body) = h2c::send(&mut c, req).await.expect("answer");
    assert_eq!(p.status, 200);
    assert_eq!(body, "victim.test /home");
    assert_eq!(origin.count(), 1);
}

/// An origin that answers every request on a connection with the same raw
/// HTTP/1.1 response, hop-by-hop fields and all.
async fn raw_origin(response: &'static [u8]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        // Bounded: a test makes a handful of connections.
        for _ in 0..64 {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 << 10];
                let mut have = Vec::new();
                for _ in 0..64 {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => have.extend_from_slice(&buf[..n]),
                    }
                    while let Some(end) = have.windows(4).position(|w| w == b"\r\n\r\n") {
                        have.drain(..end + 4);
                        if s.write_all(response).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

/// RFC 9113 §8.2.2: connection-specific fields are malformed in HTTP/2 (the
/// client here, the `h2` crate, rejects an answer carrying one), so they
/// must never reach an HTTP/2 answer, even when the origin sends them.
#[tokio::test]
async fn connection_specific_fields_never_reach_an_h2_answer_rfc9113_8_2_2() {
    let upstream = raw_origin(
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive, x-hop\r\nKeep-Alive: timeout=5\r\n\
          Proxy-Connection: keep-alive\r\nUpgrade: h2c\r\nX-Hop: secret\r\n\
          Cache-Control: public, max-age=60\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    let edge = Node::edge(&[upstream]).await;
    let mut c = h2c::connect(edge.addr).await;
    for (path, want) in [("/a", "miss"), ("/a", "hit"), ("/b", "miss")] {
        let req = h2c::request("a.test", path).body(empty()).expect("req");
        let (p, body) = h2c::send(&mut c, req).await.expect("a valid h2 answer");
        assert_eq!(p.status, 200);
        assert_eq!(body, "hello");
        assert!(header(&p, "cache-status").contains(want), "{p:?}");
        for name in [
            "connection",
            "keep-alive",
            "proxy-connection",
            "transfer-encoding",
            "upgrade",
            "x-hop",
        ] {
            assert!(!p.headers.contains_key(name), "{name} in {:?}", p.headers);
        }
    }
}

#[tokio::test]
async fn request_bodies_pass_through_over_h2() {
    let origin =
        Origin::start(|seen| Reply::ok(format!("{} {} bytes", seen.method, seen.body.len()))).await;
    let edge = Node::edge(&[origin.url()]).await;
    let mut c = h2c::connect(edge.addr).await;
    // Larger than the 64 KiB stream window, so flow control has to work.
    let body: Bytes = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let req = h2c::request("a.test", "/upload")
        .method(Method::POST)
        .header("content-type", "application/octet-stream")
        .body(Full::new(body.clone()))
        .expect("request");
    let (p, answer) = h2c::send(&mut c, req).await.expect("answer");
    assert_eq!(p.status, 200);
    assert_eq!(answer, "POST 300000 bytes");
    let seen = origin.last();
    assert_eq!(seen.method, Method::POST);
    assert_eq!(seen.body, body, "the origin got the exact bytes");
    assert_eq!(seen.header("host"), Some("a.test"));
}

#[tokio::test]
async fn a_miss_streams_over_h2_before_the_origin_finishes() {
    let spec = StreamSpec::new(64 << 10, 192 << 10);
    let origin = StreamOrigin::start(spec.clone()).await;
    let edge = Node::edge(&[origin.url()]).await;
    let mut c = h2c::connect(edge.addr).await;
    c.ready().await.expect("ready");
    let req = h2c::request("a.test", "/big").body(empty()).expect("req");
    let resp = tokio::time::timeout(H2_WAIT, c.send_request(req))
        .await
        .expect("headers before the body is complete")
        .expect("answer");
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut got = Vec::new();
    // The head arrives while the origin holds the tail back.
    while got.len() < spec.head.len() {
        let f = tokio::time::timeout(H2_WAIT, body.frame())
            .await
            .expect("bytes arrive while the origin holds the rest back")
            .expect("not the end")
            .expect("frame");
        if let Ok(d) = f.into_data() {
            got.extend_from_slice(&d);
        }
    }
    assert_eq!(&got[..spec.head.len()], &spec.head[..]);
    origin.release();
    let rest = tokio::time::timeout(H2_WAIT, body.collect())
        .await
        .expect("the rest")
        .expect("body")
        .to_bytes();
    got.extend_from_slice(&rest);
    assert_eq!(Bytes::from(got), spec.body());
    // And it was stored: the next one is a hit with the same bytes.
    let (status, again) = h2c::get_once(edge.addr, "a.test", "/big").await;
    assert_eq!(status, 200);
    assert_eq!(again, spec.body());
    assert_eq!(origin.gets(), 1);
}

/// More streams than `http2.max-concurrent-streams` at once on one
/// connection, each for its own path: every answer has its own bytes.
#[tokio::test]
async fn many_concurrent_streams_on_one_connection_get_their_own_bytes() {
    let origin = Origin::start(|seen| {
        let n: usize = seen
            .path
            .trim_start_matches("/s/")
            .parse()
            .unwrap_or_default();
        // Bodies of different sizes, each recognisable by its path.
        let body = format!("{}:", seen.path).repeat(1 + n % 300);
        Reply::ok(body)
            .header("cache-control", "public, max-age=60")
            .delay(Duration::from_millis((n % 7) as u64))
    })
    .await;
    let edge = Node::edge_with(meridian_edge::FileConfig {
        name: Some("edge-1".into()),
        upstream: vec![origin.url()],
        http2: meridian_proxy::config::Http2Section {
            max_concurrent_streams: Some(32),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let c = h2c::connect(edge.addr).await;
    let n = 300;
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let mut c = c.clone();
            tokio::spawn(async move {
                let req = h2c::request("a.test", &format!("/s/{i}"))
                    .body(empty())
                    .expect("req");
                (i, h2c::send(&mut c, req).await)
            })
        })
        .collect();
    for t in tasks {
        let (i, answer) = t.await.expect("task");
        let (p, body) = answer.unwrap_or_else(|e| panic!("stream {i}: {e}"));
        assert_eq!(p.status, 200, "stream {i}");
        let path = format!("/s/{i}");
        assert_eq!(
            body,
            format!("{path}:").repeat(1 + i % 300),
            "stream {i} got its own bytes"
        );
    }
    assert_eq!(origin.count(), n);
}
