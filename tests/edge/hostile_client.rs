//! Hostile clients (issue 13): request smuggling, oversized heads and
//! targets, slowloris, idle hordes, connection and rate limits, absurd
//! `Range` sets and `Vary` explosions, each sent as raw bytes by
//! [`RawClient`]. Every test checks what the client sees, that the origin
//! never saw a request the client smuggled, and that the node is still
//! answering with its connections and memory back where they were.

use std::time::{Duration, Instant};

use meridian_common::{ByteSize, HumanDuration};
use rustls::version::TLS13;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::raw_client::{self, READ_WITHIN, closed_count, idle_connections, slowloris};
use crate::support::tls::{Conn, Pki, tls_edge};
use crate::support::{Node, Origin, RawClient, Reply, client, eventually};

/// What each limit test's edge allows (short deadlines keep the tests fast).
const HEADER: Duration = Duration::from_millis(400);
const IDLE: Duration = Duration::from_millis(600);

/// An origin answering every request 200 with its path as the body,
/// cacheable unless the path says `nostore`.
async fn origin() -> Origin {
    Origin::start(|s| {
        let cc = if s.path.contains("nostore") {
            "no-store"
        } else {
            "public, max-age=60"
        };
        Reply::ok(format!("path {}", s.path)).header("cache-control", cc)
    })
    .await
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: a.test\r\n\r\n").into_bytes()
}

/// The node answers, and once the test's connections are gone none is
/// left open and the store holds no more than `bytes_before` (plus what
/// `allowed` more bytes the test stored on purpose).
async fn assert_recovered(edge: &Node, bytes_before: u64, allowed: u64) {
    let c = client();
    let r = c
        .get(edge.url("/.well-known/meridian/health"))
        .send()
        .await
        .expect("the node answers");
    assert_eq!(r.status(), 200);
    drop(c);
    // The reqwest client above held one connection; wait for it to go too.
    let admin = client();
    eventually(
        "every client connection closed",
        Duration::from_secs(5),
        || {
            let admin = admin.clone();
            async move {
                let stats = edge.stats(&admin).await;
                stats["connections"] == 0
            }
        },
    )
    .await;
    let stats = edge.stats(&admin).await;
    let bytes = stats["bytes"].as_u64().expect("bytes");
    assert!(
        bytes <= bytes_before + allowed,
        "store holds {bytes} bytes, was {bytes_before} (+{allowed} allowed)"
    );
}

async fn edge_with(
    origin: &Origin,
    f: impl FnOnce(&mut meridian_edge::FileConfig) + Send + 'static,
) -> Node {
    Node::edge(&[origin.url()])
        .config(|c| {
            c.timeouts.client_header = Some(HumanDuration(HEADER));
            c.timeouts.client_idle = Some(HumanDuration(IDLE));
            f(c);
        })
        .await
}

fn paths(origin: &Origin) -> Vec<String> {
    origin.requests().into_iter().map(|s| s.path).collect()
}

// ---- request smuggling -------------------------------------------------

#[tokio::test]
async fn cl_te_is_read_as_chunked_and_the_connection_closed() {
    let origin = origin().await;
    let edge = edge_with(&origin, |_| {}).await;
    // A front end reading Content-Length would see a 6-byte body and then
    // a second request; RFC 9112 §6.1: Transfer-Encoding wins, and the
    // connection must close after the response.
    let attack = b"POST /nostore HTTP/1.1\r\nHost: a.test\r\nContent-Length: 6\r\n\
        Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n";
    let got = raw_client::exchange_to_close(edge.addr, attack).await;
    assert_eq!(
        got.statuses(),
        [200],
        "{:?}",
        String::from_utf8_lossy(&got.bytes)
    );
    assert!(got.closed, "the connection closes after such a request");
    assert_eq!(paths(&origin), ["/nostore"]);
    assert!(origin.last().body.is_empty(), "the chunked body was empty");
    assert_recovered(&edge, 0, 0).await;
}

#[tokio::test]
async fn te_cl_body_is_forwarded_as_a_body_never_as_a_request() {
    let origin = origin().await;
    let edge = edge_with(&origin, |_| {}).await;
    let inner = "GET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n";
    let attack = format!(
        "POST /nostore HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\
         Content-Length: 4\r\n\r\n{:x}\r\n{inner}\r\n0\r\n\r\n",
        inner.len()
    );
    let got = raw_client::exchange_to_close(edge.addr, attack.as_bytes()).await;
    assert_eq!(got.statuses(), [200]);
    assert!(got.closed);
    assert_eq!(paths(&origin), ["/nostore"]);
    assert_eq!(origin.last().body, inner.as_bytes());
    assert_recovered(&edge, 0, 0).await;
}

#[tokio::test]
async fn obfuscated_transfer_encoding_is_refused_with_400() {
    let origin = origin().await;
    let edge = edge_with(&origin, |_| {}).await;
    for te in [
        "Transfer-Encoding: chunked, identity\r\n",
        "Transfer-Encoding: xchunked\r\n",
        "Transfer-Encoding: identity\r\n",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
        "Transfer-Encoding : chunked\r\n",
        "Transfer-Encoding: chunked\r\n\tidentity\r\n",
    ] {
        let attack = format!(
            "POST /nostore HTTP/1.1\r\nHost: a.test\r\n{te}Content-Length: 5\r\n\r\n\
             0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n"
        );
        let got = raw_client::exchange_to_close(edge.addr, attack.as_bytes()).await;
        assert_eq!(got.statuses(), [400], "{te:?}");
        assert!(got.closed, "{te:?}");
    }
    // Transfer-Encoding is not HTTP/1.0.
    let old =
        b"POST /nostore HTTP/1.0\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    assert_eq!(
        raw_client::exchange(edge.addr, old, 1).await.statuses(),
        [400]
    );
    assert_eq!(
        origin.count(),
        0,
        "nothing reached the origin: {:?}",
        paths(&origin)
    );
    assert_recovered(&edge, 0, 0).await;
}

#[tokio::test]
async fn conflicting_content_lengths_are_refused_and_equal_ones_accepted() {
    let origin = origin().await;
    let edge = edge_with(&origin, |_| {}).await;
    for cl in [
        "Content-Length: 5\r\nContent-Length: 6\r\n",
        "Content-Length: 5, 6\r\n",
        "Content-Length: +5\r\n",
        "Content-Length: 0x5\r\n",
        "Content-Length: 5 5\r\n",
    ] {
        let attack = format!("POST /nostore HTTP/1.1\r\nHost: a.test\r\n{cl}\r\nhello");
        let got = raw_client::exchange_to_close(edge.addr, attack.as_bytes()).await;
        assert_eq!(
            got.statuses(),
            [400],
            "{cl:?} {:?}",
            String::from_utf8_lossy(&got.bytes)
        );
        assert!(got.closed, "{cl:?}");
    }
    assert_eq!(origin.count(), 0);
    // RFC 9110 §8.6: repeated identical values are one length.
    let same = b"POST /nostore HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello";
    assert_eq!(
        raw_client::exchange(edge.addr, same, 1).await.statuses(),
        [200]
    );
    assert_eq!(origin.last().body, "hello");
    assert_recovered(&edge, 0, 0).await;
}

#[tokio::test]
async fn obs_fold_in_a_request_header_is_refused_with_400() {
    let origin = origin().await;
    let edge = edge_with(&origin, |_| {}).await;
    // RFC 9112 §5.2: a server must reject obs-fold or replace it; a fold
    // could hide a field from one parser and show it to another.
    for fold in [
        "X-Note: a\r\n b\r\n",
        "X-Note: a\r\n\tTransfer-Encoding: chunked\r\n",
    ] {
        let attack = format!("GET /x HTTP/1.1\r\nHost: a.test\r\n{fold}\r\n");
        let got = raw_client::exchange(edge.addr, attack.as_bytes(), 1).await;
        assert_eq!(got.statuses(), [400], "{fold:?}");
    }
    for junk in ["X-Nul: a\0b\r\n", "X-Cr: a\rb\r\n", "Bad Name: x\r\n"] {
        let attack = format!("GET /x HTTP/1.1\r\nHost: a.test\r\n{junk}\r\n");
        let got = raw_client::exchange(edge.addr, attack.as_bytes(), 1).await;
        assert_eq!(got.statuses(), [400], "{junk:?}");
    }
    assert_eq!(origin.count(), 0);
    assert_recovered(&edge, 0, 0).await;
}

// ---- heads and targets -------------------------------------------------

/// A GET for `/` whose head is exactly `size` bytes, padded with one field.
fn head_of(size: usize) -> Vec<u8> {
    let fixed = "GET /nostore HTTP/1.1\r\nHost: a.test\r\nX-Pad: \r\n\r\n".len();
    let pad = "p".repeat(size - fixed);
    format!("GET /nostore HTTP/1.1\r\nHost: a.test\r\nX-Pad: {pad}\r\n\r\n").into_bytes()
}

#[tokio::test]
async fn a_request_head_over_max_request_head_gets_431() {
    let origin = origin().await;
    let limit = 16 << 10;
    let edge = edge_with(&origin, move |c| {
        c.limits.max_request_head = Some(ByteSize(limit as u64));
    })
    .await;
    let at = head_of(limit);
    assert_eq!(at.len(), limit);
    assert_eq!(
        raw_client::exchange(edge.addr, &at, 1).await.statuses(),
        [200]
    );
    let over = raw_client::exchange_to_close(edge.addr, &head_of(limit + 1)).await;
    assert_eq!(over.statuses(), [431]);
    assert!(over.closed);
    // A megabyte of header: 431 as soon as the limit is reached, not when
    // the client stops.
    let (mut rd, mut wr) = tokio::net::TcpStream::connect(edge.addr)
        .await
        .expect("connect")
        .into_split();
    let huge = head_of(1 << 20);
    let writer = tokio::spawn(async move { wr.write_all(&huge).await.is_ok() });
    let mut read = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + READ_WITHIN;
    while raw_client::parse_responses(&read).is_empty() && Instant::now() < deadline {
        match tokio::time::timeout(READ_WITHIN, rd.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => read.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    let statuses: Vec<u16> = raw_client::parse_responses(&read)
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [431], "{:?}", String::from_utf8_lossy(&read));
    writer.abort();
    assert_eq!(
        origin.count(),
        1,
        "only the head within the limit went upstream"
    );
    assert_recovered(&edge, 0, 0).await;
}

#[tokio::test]
async fn more_fields_than_max_request_headers_gets_431() {
    let origin = origin().await;
    let edge = edge_with(&origin, |c| c.limits.max_request_headers = Some(20)).await;
    let with = |fields: usize| {
        let extra: String = (1..fields).map(|i| format!("X-F{i}: v\r\n")).collect();
        format!("GET /nostore HTTP/1.1\r\nHost: a.test\r\n{extra}\r\n").into_bytes()
    };
    assert_eq!(
        raw_client::exchange(edge.addr, &with(20), 1)
            .await
            .statuses(),
        [200]
    );
    let over = raw_client::exchange_to_close(edge.addr, &with(21)).await;
    assert_eq!(over.statuses(), [431]);
    assert!(over.closed);
    assert_eq!(origin.count(), 1);
    assert_recovered(&edge, 0, 0).await;
}

#[tokio::test]
async fn a_target_over_max_uri_length_gets_414_and_goes_nowhere() {
    let origin = origin().await;
    let edge = edge_with(&origin, |c| c.limits.max_uri_length = Some(ByteSize(1024))).await;
    let target = |len: usize| format!("/nostore?{}", "q".repeat(len - "/nostore?".len()));
    let at = raw_client::exchange(edge.addr, &get(&target(1024)), 1).await;
    assert_eq!(at.statuses(), [200]);
    let mut c = RawClient::connect(edge.addr).await;
    c.send(&get(&target(1025))).await;
    let over = c.read_responses(1, READ_WITHIN).await;
    assert_eq!(over.statuses(), [414]);
    // A refused target is the request's fault, not the connection's: the
    // next request on it is served.
    c.send(&get("/nostore-next")).await;
    assert_eq!(
        c.read_responses(2, READ_WITHIN).await.statuses(),
        [414, 200]
    );
    assert_eq!(paths(&origin), [target(1024), "/nostore-next".to_owned()]);
    drop(c);
    assert_recovered(&edge, 0, 0).await;
}

// ---- deadlines -----------------------------------------------------------

#[tokio::test]
async fn slowloris_is_closed_after_client_header() {
    let origin = origin().await;
    let edge = edge_with(&origin, |_| {}).await;
    let s = slowloris(
        edge.addr,
        Duration::from_millis(50),
        Duration::from_secs(10),
    )
    .await;
    assert!(s.closed, "a head that never ends is cut off");
    assert!(
        s.held >= HEADER && s.held < HEADER * 10,
        "held {:?} (client-header {HEADER:?})",
        s.held
    );
    assert!(s.read.responses.is_empty(), "closed, not answered");
    // Silence from the start is a head that never starts: the same deadline.
    let mut quiet = RawClient::connect(edge.addr).await;
    assert!(quiet.read_until_closed(HEADER * 10).await.closed);
    // Just under: a head trickled in within the deadline is served.
    let mut slow = RawClient::connect(edge.addr).await;
    slow.trickle(&get("/nostore"), 8, Duration::from_millis(20))
        .await;
    assert_eq!(slow.read_responses(1, READ_WITHIN).await.statuses(), [200]);
    drop(slow);
    assert_eq!(paths(&origin), ["/nostore"]);
    assert_recovered(&edge, 0, 0).await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_client_idle_not_client_header() {
    let origin = origin().await;
    // A short head deadline and a longer idle one: resting between
    // requests past client-header is not a slow head.
    let edge = Node::edge(&[origin.url()])
        .config(|c| {
            c.timeouts.client_header = Some(HumanDuration(Duration::from_millis(300)));
            c.timeouts.client_idle = Some(HumanDuration(Duration::from_millis(1500)));
        })
        .await;
    let mut c = RawClient::connect(edge.addr).await;
    c.send(&get("/nostore-1")).await;
    assert_eq!(c.read_responses(1, READ_WITHIN).await.statuses(), [200]);
    // Rest well past client-header, within client-idle: still served.
    let rested = c.read_until_closed(Duration::from_millis(700)).await;
    assert!(!rested.closed, "closed while resting within client-idle");
    c.send(&get("/nostore-2")).await;
    assert_eq!(
        c.read_responses(2, READ_WITHIN).await.statuses(),
        [200, 200]
    );
    let idle_from = Instant::now();
    let end = c.read_until_closed(Duration::from_secs(10)).await;
    assert!(end.closed, "an idle connection is closed");
    assert!(idle_from.elapsed() >= Duration::from_millis(1400));
    drop(c);
    assert_recovered(&edge, 0, 0).await;
}

#[tokio::test]
async fn two_thousand_idle_connections_are_closed_and_the_node_keeps_serving() {
    let origin = origin().await;
    let edge = edge_with(&origin, |_| {}).await;
    let mut idle = idle_connections(edge.addr, 2000).await;
    // While they wait, a real request is served.
    let mut c = RawClient::connect(edge.addr).await;
    c.send(&get("/nostore")).await;
    assert_eq!(c.read_responses(1, READ_WITHIN).await.statuses(), [200]);
    drop(c);
    let start = Instant::now();
    let mut closed = 0;
    while closed < idle.len() && start.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        closed = closed_count(&mut idle).await.max(closed);
    }
    assert_eq!(closed, idle.len(), "every idle connection was closed");
    drop(idle);
    assert_recovered(&edge, 0, 0).await;
}

// ---- connection and rate limits ------------------------------------------

/// Whether `c` gets a response to a GET within `within`.
async fn served_within(c: &mut RawClient, path: &str, want: usize, within: Duration) -> bool {
    c.send(&get(path)).await;
    c.read_responses(want, within).await.responses.len() >= want
}

#[tokio::test]
async fn past_max_connections_new_connections_wait_until_a_slot_frees() {
    let origin = origin().await;
    let pki = Pki::new();
    let cert = pki.issue("edge", &["a.test"]);
    let edge = tls_edge(&origin.url(), &[cert])
        .config(|c| {
            c.limits.max_connections = Some(2);
            c.timeouts.client_idle = Some(HumanDuration(Duration::from_secs(30)));
        })
        .await;
    // One plain and one TLS connection take both slots.
    let mut plain = RawClient::connect(edge.addr).await;
    assert!(served_within(&mut plain, "/nostore-1", 1, READ_WITHIN).await);
    let mut tls = Conn::open(
        edge.tls_addr(),
        "a.test",
        pki.client(&[&TLS13], &[b"http/1.1"]),
    )
    .await;
    assert_eq!(tls.get("a.test", "/nostore-2").await.0, 200);
    // A third connects (the kernel queues it in the backlog) but is not
    // served while both are open...
    let mut waiting = RawClient::connect(edge.addr).await;
    assert!(!served_within(&mut waiting, "/nostore-3", 1, Duration::from_millis(500)).await);
    // ...while the connections it waits for keep working.
    assert!(served_within(&mut plain, "/nostore-4", 2, READ_WITHIN).await);
    assert_eq!(tls.get("a.test", "/nostore-5").await.0, 200);
    // Closing one lets the waiting connection in, and its request is served.
    drop(plain);
    let got = waiting.read_responses(1, READ_WITHIN).await;
    assert_eq!(got.statuses(), [200]);
    assert_eq!(origin.count_path("/nostore-3"), 1);
    drop((waiting, tls));
    assert_recovered(&edge, 0, 0).await;
}

#[tokio::test]
async fn a_connection_over_per_ip_connections_is_closed() {
    let origin = origin().await;
    let edge = edge_with(&origin, |c| {
        c.limits.per_ip_connections = Some(2);
        c.timeouts.client_idle = Some(HumanDuration(Duration::from_secs(30)));
    })
    .await;
    let mut a = RawClient::connect(edge.addr).await;
    let mut b = RawClient::connect(edge.addr).await;
    assert!(served_within(&mut a, "/nostore-a", 1, READ_WITHIN).await);
    assert!(served_within(&mut b, "/nostore-b", 1, READ_WITHIN).await);
    let mut over = RawClient::connect(edge.addr).await;
    over.send(&get("/nostore-over")).await;
    let got = over.read_until_closed(READ_WITHIN).await;
    assert!(got.closed && got.responses.is_empty(), "{got:?}");
    assert_eq!(origin.count_path("/nostore-over"), 0);
    // The ones already open are untouched, and a freed place is reusable.
    assert!(served_within(&mut a, "/nostore-a2", 2, READ_WITHIN).await);
    drop(b);
    let mut again = RawClient::connect(edge.addr).await;
    let mut ok = false;
    // The edge sees `b` close a moment after the client does.
    for _ in 0..50 {
        if served_within(&mut again, "/nostore-again", 1, Duration::from_millis(500)).await {
            ok = true;
            break;
        }
        again = RawClient::connect(edge.addr).await;
    }
    assert!(ok, "a place freed by a closed connection is reusable");
    drop((a, again, over));
    assert_recovered(&edge, 0, 0).await;
}

#[tokio::test]
async fn past_the_per_ip_rate_requests_get_429_with_retry_after_and_go_nowhere() {
    let origin = origin().await;
    let edge = edge_with(&origin, |c| {
        c.limits.per_ip_requests_per_second = Some(1);
        c.limits.per_ip_burst = Some(3);
        // Behind a trusted forwarder, the client is its X-Forwarded-For hop.
        c.trusted_forwarders = Some(vec!["127.0.0.1/32".parse().expect("cidr")]);
    })
    .await;
    let from = |ip: &str, path: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-For: {ip}\r\n\r\n").into_bytes()
    };
    let mut c = RawClient::connect(edge.addr).await;
    for i in 1..=4 {
        c.send(&from("192.0.2.1", &format!("/nostore-{i}"))).await;
    }
    let got = c.read_responses(4, READ_WITHIN).await;
    assert_eq!(got.statuses(), [200, 200, 200, 429]);
    let retry: u64 = got.responses[3]
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    assert_eq!(
        origin.count_path("/nostore-4"),
        0,
        "a refused request goes nowhere"
    );
    // Another client behind the same forwarder has its own allowance.
    c.send(&from("192.0.2.2", "/nostore-other")).await;
    assert_eq!(c.read_responses(5, READ_WITHIN).await.statuses()[4], 200);
    drop(c);
    assert_recovered(&edge, 0, 0).await;
}

// ---- ranges and variants -------------------------------------------------

#[tokio::test]
async fn absurd_range_sets_get_the_whole_body_or_416_never_a_blow_up() {
    let body: String = (0..1000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let expected = body.clone();
    let origin =
        Origin::start(move |_| Reply::ok(body.clone()).header("cache-control", "max-age=60")).await;
    let edge = edge_with(&origin, |_| {}).await;
    let ranged = |range: &str| {
        format!("GET /r HTTP/1.1\r\nHost: a.test\r\nRange: bytes={range}\r\n\r\n").into_bytes()
    };
    let thousands = vec!["0-0"; 3000].join(",");
    let disjoint_101: Vec<String> = (0..101).map(|i| format!("{0}-{0}", i * 2)).collect();
    let overlapping = ["0-999"; 4].join(",");
    for (what, range) in [
        ("3000 ranges", thousands.as_str()),
        ("101 disjoint ranges", &disjoint_101.join(",")),
        (
            "overlapping ranges adding up past the body",
            overlapping.as_str(),
        ),
    ] {
        let got = raw_client::exchange(edge.addr, &ranged(range), 1).await;
        assert_eq!(got.statuses(), [200], "{what}");
        assert_eq!(got.responses[0].body, expected.as_bytes(), "{what}");
    }
    // At the limit of 100 ranges: a multipart answer with 100 parts.
    let hundred = disjoint_101[..100].join(",");
    let got = raw_client::exchange(edge.addr, &ranged(&hundred), 1).await;
    assert_eq!(got.statuses(), [206]);
    let parts = String::from_utf8_lossy(&got.responses[0].body)
        .matches("Content-Range: bytes ")
        .count();
    assert_eq!(parts, 100);
    let none = raw_client::exchange(edge.addr, &ranged("5000-6000"), 1).await;
    assert_eq!(none.statuses(), [416]);
    assert_eq!(origin.count(), 1, "one fill served every range");
    assert_recovered(&edge, 0, 10 << 10).await;
}

#[tokio::test]
async fn a_vary_explosion_keeps_at_most_max_variants_per_url() {
    let origin = Origin::start(|s| {
        let v = s.header("x-variant").unwrap_or("-").to_owned();
        Reply::ok(format!("variant {v}"))
            .header("cache-control", "max-age=60")
            .header("vary", "X-Variant")
    })
    .await;
    let edge = edge_with(&origin, |c| c.cache.max_variants = Some(4)).await;
    let c = client();
    let fetch = |v: usize| {
        let c = c.clone();
        let url = edge.url("/v");
        async move {
            let r = c
                .get(url)
                .header("host", "a.test")
                .header("x-variant", v.to_string())
                .send()
                .await
                .expect("request");
            let cs = crate::support::cache_status(&r);
            (r.text().await.expect("body"), cs)
        }
    };
    for v in 0..500 {
        let (body, _) = fetch(v).await;
        assert_eq!(
            body,
            format!("variant {v}"),
            "never another variant's bytes"
        );
    }
    assert_eq!(origin.count(), 500);
    let stats = edge.stats(&c).await;
    assert_eq!(stats["entries"], 1, "one URL");
    // The newest four are kept; the first was dropped long ago.
    for v in 496..500 {
        let (body, cs) = fetch(v).await;
        assert_eq!(body, format!("variant {v}"));
        assert!(cs.contains("hit"), "variant {v}: {cs}");
    }
    let (body, cs) = fetch(0).await;
    assert_eq!(body, "variant 0");
    assert!(!cs.contains("hit"), "{cs}");
    // Four variants of a 13-byte body, whatever the 500 requests were.
    let bytes = edge.stats(&c).await["bytes"].as_u64().expect("bytes");
    assert!(bytes < 16 << 10, "{bytes} bytes for one URL's variants");
    drop(c);
    assert_recovered(&edge, 0, 16 << 10).await;
}
