//! Upstream health that a client cannot game (issue 8, item 5): a URL that
//! answers 5xx, a malformed or stalled request body, upstreams that the
//! checks mark down, and origins that close idle keep-alive connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{Node, Origin, Reply, cache_status, client, eventually};

const WAIT: Duration = Duration::from_secs(5);

/// An edge over two origins that answer 500 on `/bad`, 503 on the health
/// path `/hc-down` and 200 (not storable) everywhere else.
async fn two_origins() -> (Origin, Origin) {
    let reply = |s: &crate::support::Seen| match s.path.as_str() {
        "/bad" | "/hc-down" => Reply::ok("broken").status(if s.path == "/bad" { 500 } else { 503 }),
        _ => Reply::ok(format!("ok {}", s.path)).header("cache-control", "no-store"),
    };
    (Origin::start(reply).await, Origin::start(reply).await)
}

async fn edge_over(origins: &[&Origin], health: meridian_edge::config::HealthSection) -> Node {
    Node::edge_with(meridian_edge::FileConfig {
        upstream: origins.iter().map(|o| o.url()).collect(),
        name: Some("edge-h".into()),
        health,
        timeouts: meridian_edge::config::TimeoutSection {
            client_body: Some("300ms".parse().expect("duration")),
            ..Default::default()
        },
        ..Default::default()
    })
    .await
}

async fn upstream_stats(c: &reqwest::Client, edge: &Node) -> Vec<Value> {
    let s: Value = c
        .get(edge.admin_url("/stats"))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    s["upstreams"].as_array().cloned().expect("upstreams")
}

fn assert_untouched(stats: &[Value]) {
    for u in stats {
        assert_eq!(
            (&u["up"], &u["ejected"], &u["failures"]),
            (&Value::Bool(true), &Value::Bool(false), &Value::from(0)),
            "{u}"
        );
    }
}

#[tokio::test]
async fn a_url_answering_500_ejects_no_upstream() {
    let (a, b) = two_origins().await;
    let edge = edge_over(&[&a, &b], Default::default()).await;
    let c = client();
    for _ in 0..10 {
        let r = c.get(edge.url("/bad")).send().await.expect("send");
        assert_eq!(r.status(), 500, "the origin's own answer passes through");
    }
    for i in 0..20 {
        let r = c
            .get(edge.url(&format!("/ok/{i}")))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200, "/ok/{i}: {}", cache_status(&r));
    }
    let stats = upstream_stats(&c, &edge).await;
    assert_untouched(&stats);
    let server_errors: u64 = stats
        .iter()
        .filter_map(|u| u["server_errors"].as_u64())
        .sum();
    assert_eq!(
        server_errors, 10,
        "5xx answers are counted, not held against"
    );
}

#[tokio::test]
async fn five_hundreds_eject_only_when_configured() {
    let (a, b) = two_origins().await;
    let edge = edge_over(
        &[&a, &b],
        meridian_edge::config::HealthSection {
            eject_on_5xx: Some(true),
            ..Default::default()
        },
    )
    .await;
    let c = client();
    for _ in 0..4 {
        c.get(edge.url("/bad")).send().await.expect("send");
    }
    let stats = upstream_stats(&c, &edge).await;
    let ejected = stats.iter().filter(|u| u["ejected"] == true).count();
    assert_eq!(
        ejected, 1,
        "one is ejected, the last healthy one never: {stats:?}"
    );
    let r = c.get(edge.url("/ok/after")).send().await.expect("send");
    assert_eq!(r.status(), 200);
}

/// Sends raw bytes to the edge and returns what it answered (the status
/// line first), reading until it closes or 5 s pass.
async fn raw(edge: &Node, request: &[u8], then: impl AsyncFnOnce(&mut TcpStream)) -> String {
    let mut s = TcpStream::connect(edge.addr).await.expect("connect");
    s.write_all(request).await.expect("write");
    then(&mut s).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test]
async fn bad_request_bodies_are_400_and_not_held_against_the_upstream() {
    let (a, b) = two_origins().await;
    let edge = edge_over(&[&a, &b], Default::default()).await;
    let c = client();
    let head = "POST /upload HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n";
    let malformed = format!("{head}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n");
    let answer = raw(&edge, malformed.as_bytes(), async |_| {}).await;
    assert!(
        answer.starts_with("HTTP/1.1 400"),
        "malformed chunked: {answer}"
    );
    assert!(answer.contains("detail=client-body"), "{answer}");

    let stalled = format!("{head}Content-Length: 100\r\n\r\nonly-this");
    let answer = raw(&edge, stalled.as_bytes(), async |_| {}).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "stalled body: {answer}");

    let truncated = format!("{head}Content-Length: 100\r\n\r\ncut-short");
    let answer = raw(&edge, truncated.as_bytes(), async |s| {
        s.shutdown().await.expect("half close");
    })
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 400"),
        "truncated body: {answer}"
    );

    // Let any upload still in flight at an origin finish failing.
    eventually("uploads at the origins done", WAIT, || async {
        upstream_stats(&c, &edge)
            .await
            .iter()
            .all(|u| u["in_flight"] == 0)
    })
    .await;
    assert_untouched(&upstream_stats(&c, &edge).await);
    for i in 0..6 {
        let r = c
            .get(edge.url(&format!("/ok/{i}")))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200);
    }
}

#[tokio::test]
async fn all_upstreams_marked_down_are_tried_anyway() {
    let (a, b) = two_origins().await;
    let edge = edge_over(
        &[&a, &b],
        meridian_edge::config::HealthSection {
            path: Some("/hc-down".into()),
            interval: Some("50ms".parse().expect("duration")),
            ..Default::default()
        },
    )
    .await;
    let c = client();
    eventually("the checks marked both down", WAIT, || async {
        upstream_stats(&c, &edge)
            .await
            .iter()
            .all(|u| u["up"] == false)
    })
    .await;
    for i in 0..6 {
        let r = c
            .get(edge.url(&format!("/p/{i}")))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200, "panic mode: {}", cache_status(&r));
        assert_eq!(r.text().await.expect("body"), format!("ok /p/{i}"));
    }
}

/// How the origin ends a reused connection.
#[derive(Clone, Copy)]
enum Close {
    /// FIN: hyper sees an incomplete message.
    Clean,
    /// RST (zero linger): hyper sees a connection reset.
    Reset,
}

/// A hand-written HTTP/1.1 origin that answers the first request on each
/// connection (keep-alive, no `Connection: close`) and, on a reused
/// connection, reads the request and closes without answering: the race
/// an origin's idle timeout causes. Counts requests per method.
struct ClosingOrigin {
    url: String,
    gets: Arc<AtomicUsize>,
    posts: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
}

impl ClosingOrigin {
    async fn start(close: Close) -> ClosingOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let o = ClosingOrigin {
            url,
            gets: Arc::default(),
            posts: Arc::default(),
            connections: Arc::default(),
        };
        let (gets, posts, conns) = (
            Arc::clone(&o.gets),
            Arc::clone(&o.posts),
            Arc::clone(&o.connections),
        );
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                conns.fetch_add(1, Ordering::SeqCst);
                let (gets, posts) = (Arc::clone(&gets), Arc::clone(&posts));
                tokio::spawn(serve_then_close(s, close, gets, posts));
            }
        });
        o
    }
}

/// Reads one request head (the tests send no request bodies).
async fn read_head(s: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut byte).await.ok()?;
        if n == 0 || buf.len() > 64 << 10 {
            return None;
        }
        buf.extend_from_slice(&byte[..n]);
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

async fn serve_then_close(
    mut s: TcpStream,
    close: Close,
    gets: Arc<AtomicUsize>,
    posts: Arc<AtomicUsize>,
) {
    for n in 0.. {
        let Some(head) = read_head(&mut s).await else {
            return;
        };
        let counter = if head.starts_with("POST") {
            &posts
        } else {
            &gets
        };
        counter.fetch_add(1, Ordering::SeqCst);
        if n > 0 {
            // Reused: the request was read; close without a byte.
            if let Close::Reset = close {
                let _ = s.set_zero_linger();
            }
            return;
        }
        let body = "fresh";
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nCache-Control: no-store\r\n\r\n{body}",
            body.len()
        );
        if s.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn a_get_on_a_closed_pooled_connection_is_retried_on_a_new_one() {
    for close in [Close::Clean, Close::Reset] {
        gets_survive_closed_connections(close).await;
    }
}

/// The same race over TLS: the origin's close reaches the edge as TLS's
/// close_notify (or a cut without one), and the handshake and session
/// tickets are not taken for a request or an answer.
#[tokio::test]
async fn a_get_on_a_closed_pooled_tls_connection_is_retried_on_a_new_one() {
    for close in [Close::Clean, Close::Reset] {
        let origin = ClosingOrigin::start(close).await;
        let ca = crate::support::Pki::named("origin CA");
        let addr = origin
            .url
            .trim_start_matches("http://")
            .parse()
            .expect("addr");
        let front = crate::support::TlsOrigin::start_for(addr, &ca, &["localhost"]).await;
        gets_survive_closed_connections_at(&origin, &format!("{}{}", front.url(), ca.option()))
            .await;
    }
}

async fn gets_survive_closed_connections(close: Close) {
    let origin = ClosingOrigin::start(close).await;
    gets_survive_closed_connections_at(&origin, &origin.url).await;
}

async fn gets_survive_closed_connections_at(origin: &ClosingOrigin, upstream: &str) {
    let edge = Node::edge(&[upstream]).await;
    let c = client();
    for i in 0..10 {
        let r = c
            .get(edge.url(&format!("/g/{i}")))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200, "GET {i}: {}", cache_status(&r));
        assert_eq!(r.text().await.expect("body"), "fresh");
    }
    let gets = origin.gets.load(Ordering::SeqCst);
    assert!(
        gets > 10,
        "some GETs met a closed connection and were retried: {gets}"
    );
    assert!(gets <= 20, "each at most once more: {gets}");
    let stats = upstream_stats(&c, &edge).await;
    assert_eq!(stats[0]["failures"], 0, "{stats:?}");
}

#[tokio::test]
async fn a_post_on_a_closed_pooled_connection_is_not_retried() {
    let origin = ClosingOrigin::start(Close::Clean).await;
    let edge = Node::edge(&[&origin.url]).await;
    let c = client();
    let r = c.get(edge.url("/warm")).send().await.expect("send");
    assert_eq!(r.status(), 200);
    r.text().await.expect("body");
    let before = origin.connections.load(Ordering::SeqCst);
    let r = c.post(edge.url("/p")).send().await.expect("send");
    assert_eq!(r.status(), 502, "{}", cache_status(&r));
    assert_eq!(
        origin.posts.load(Ordering::SeqCst),
        1,
        "the POST was sent once"
    );
    assert_eq!(
        origin.connections.load(Ordering::SeqCst),
        before,
        "and on the pooled connection only"
    );
    let stats = upstream_stats(&c, &edge).await;
    assert_eq!(
        stats[0]["failures"], 0,
        "the keep-alive race is not the origin's fault"
    );
}

/// An upstream that dies under a GET (the connection reset before any
/// response byte, as a shield killed mid-request) does not cost the client
/// a 502 when another upstream is there: the GET goes to it, as nginx's
/// default `proxy_next_upstream error` does. With one upstream the client
/// gets the 502 (`hostile_origin::reset_before_the_head_is_502`).
#[tokio::test]
async fn a_get_reset_before_the_head_goes_to_the_next_upstream() {
    let dying = crate::support::RawOrigin::always(crate::support::Script::new().reset()).await;
    let good = Origin::start(|s| Reply::ok(format!("good {}", s.path))).await;
    // No active checks: they would take the dying upstream out before any
    // request could reach it.
    let edge = Node::edge_with(meridian_edge::FileConfig {
        upstream: vec![dying.url(), good.url()],
        health: meridian_edge::config::HealthSection {
            interval: Some("0s".parse().expect("duration")),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let c = client();
    for i in 0..24 {
        let path = format!("/p{i}");
        let r = c.get(edge.url(&path)).send().await.expect("send");
        assert_eq!(r.status(), 200, "{path}: {}", cache_status(&r));
        assert_eq!(r.text().await.expect("body"), format!("good {path}"));
    }
    assert!(
        dying.heads().iter().any(|h| h.starts_with("GET /p")),
        "no GET reached the dying upstream, so nothing was retried: {:?}",
        dying.heads()
    );
}
