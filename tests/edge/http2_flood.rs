//! HTTP/2 floods against a real edge (issue 12, item 4), written frame by
//! frame over a TcpStream: a rapid reset (CVE-2023-44487) and a
//! CONTINUATION flood. Each must cost the attacker its connection, not the
//! node its service: others are answered during and after, the origin
//! does not see the flood, and the node does not read it all.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::support::h2c::{self, END_HEADERS, END_STREAM, hpack, kind};
use crate::support::{Node, Origin, Reply, client, eventually};

/// Streams one rapid-reset connection opens (and resets) at most.
const RESET_STREAMS: u32 = 20_000;
/// Bytes of CONTINUATION one connection sends at most.
const CONTINUATION_BYTES: usize = 64 << 20;

/// Every request the origin sees is a cacheable miss with its own path:
/// the most work a request can cost.
async fn counting_origin() -> Origin {
    Origin::start(|seen| {
        Reply::ok(format!("ok {}", seen.path)).header("cache-control", "public, max-age=60")
    })
    .await
}

/// A raw connection: the preface and SETTINGS written, a reader task
/// watching for GOAWAY or the end.
async fn raw(addr: SocketAddr) -> (tokio::net::tcp::OwnedWriteHalf, watch::Receiver<h2c::Seen>) {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (rd, mut wr) = tcp.into_split();
    let (tx, rx) = watch::channel(h2c::Seen::default());
    tokio::spawn(h2c::watch(rd, tx, 16 << 20));
    wr.write_all(h2c::PREFACE).await.expect("preface");
    wr.write_all(&h2c::settings()).await.expect("settings");
    (wr, rx)
}

/// Normal requests on new connections, HTTP/2 and HTTP/1.1, until `stop`:
/// how many were answered right, and the first failure.
fn bystander(
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Result<usize, String>> {
    tokio::spawn(async move {
        let h1 = client();
        let mut ok = 0;
        // Bounded: the attacks end within seconds.
        for i in 0..10_000 {
            if stop.load(Ordering::SeqCst) && ok > 0 {
                break;
            }
            let path = format!("/bystander/{}", i % 4);
            let (status, body) = h2c::get_once(addr, "a.test", &path).await;
            if status != 200 || body != format!("ok {path}") {
                return Err(format!("h2 bystander got {status} {body:?}"));
            }
            let r = h1
                .get(format!("http://{addr}{path}"))
                .header("host", "a.test")
                .send()
                .await
                .map_err(|e| format!("h1 bystander: {e}"))?;
            if r.status() != 200 {
                return Err(format!("h1 bystander got {}", r.status()));
            }
            ok += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(ok)
    })
}

/// CVE-2023-44487: one connection opens up to 20,000 streams, each a GET
/// for its own uncached path, and resets each at once. The node closes
/// that connection (GOAWAY) long before the last, the origin sees a small
/// fraction, and other clients are answered during and after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rapid_reset_flood_costs_the_attacker_its_connection_cve_2023_44487() {
    let origin = counting_origin().await;
    let edge = Node::edge(&[origin.url()]).await;
    let stop = Arc::new(AtomicBool::new(false));
    let others = bystander(edge.addr, Arc::clone(&stop));

    let (mut wr, mut seen) = raw(edge.addr).await;
    let mut sent = 0u32;
    let mut batch = Vec::new();
    while sent < RESET_STREAMS {
        // 100 HEADERS + RST_STREAM pairs per write, as fast as TCP takes them.
        batch.clear();
        for _ in 0..100 {
            let id = 2 * sent + 1;
            let block = hpack::get("a.test", &format!("/flood/{id}"));
            batch.extend(h2c::frame(
                kind::HEADERS,
                END_HEADERS | END_STREAM,
                id,
                &block,
            ));
            batch.extend(h2c::rst_stream(id, h2c::CANCEL));
            sent += 1;
        }
        let closed = { seen.borrow().closed || seen.borrow().goaway.is_some() };
        if closed || wr.write_all(&batch).await.is_err() {
            break;
        }
        // Let the reader see a GOAWAY, as an attacker watching would.
        tokio::task::yield_now().await;
    }
    tokio::time::timeout(
        Duration::from_secs(10),
        seen.wait_for(|s| s.goaway.is_some() || s.closed),
    )
    .await
    .expect("the node closes the attacking connection")
    .expect("watch");
    let s = *seen.borrow();
    // The GOAWAY says how far the node got: far short of the flood (the
    // kernel's buffers may have taken the rest of what was sent).
    assert!(
        s.last_stream < 2 * 2_000,
        "the node went on to stream {} of {sent}: {s:?}",
        s.last_stream
    );
    // ENHANCE_YOUR_CALM (0xb), as the h2 crate's guard answers.
    assert_eq!(s.goaway, Some(0xb), "{s:?}");

    stop.store(true, Ordering::SeqCst);
    let ok = others.await.expect("task").expect("bystanders answered");
    assert!(ok > 0);
    // After: a new connection is served.
    let (status, body) = h2c::get_once(edge.addr, "a.test", "/after").await;
    assert_eq!((status, &body[..]), (200, &b"ok /after"[..]));
    let flood = origin
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/flood/"))
        .count();
    assert!(
        flood < 500,
        "the origin saw {flood} of the {sent} reset requests"
    );
}

/// A HEADERS frame without END_HEADERS, then CONTINUATION frames without
/// end (up to 64 MiB). The node closes the connection once the header block
/// passes `http2.max-header-list-size` (or the CONTINUATION count that
/// implies), long before the attacker is done, and never forwards it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continuation_flood_is_cut_off_at_the_header_list_limit() {
    let origin = counting_origin().await;
    let edge = Node::edge(&[origin.url()]).await;
    let stop = Arc::new(AtomicBool::new(false));
    let others = bystander(edge.addr, Arc::clone(&stop));

    // Two shapes: frames full of headers, and empty frames (no bytes to
    // count, only frames).
    for (name, pad) in [("padded", 16_000usize), ("empty", 0)] {
        let (mut wr, mut seen) = raw(edge.addr).await;
        let head = hpack::get("a.test", "/continuation");
        wr.write_all(&h2c::frame(kind::HEADERS, END_STREAM, 1, &head))
            .await
            .expect("headers");
        let mut payload = Vec::new();
        if pad > 0 {
            hpack::literal(&mut payload, "x-pad", &vec![b'a'; pad]);
        }
        let one = h2c::frame(kind::CONTINUATION, 0, 1, &payload);
        // About 1 MiB per write.
        let per_write = ((1 << 20) / one.len()).max(1);
        let batch: Vec<u8> = one.repeat(per_write);
        let mut sent = 0usize;
        let mut cut = false;
        while sent < CONTINUATION_BYTES {
            if seen.borrow().closed || seen.borrow().goaway.is_some() {
                cut = true;
                break;
            }
            if wr.write_all(&batch).await.is_err() {
                cut = true;
                break;
            }
            sent += batch.len();
            tokio::task::yield_now().await;
        }
        tokio::time::timeout(
            Duration::from_secs(10),
            seen.wait_for(|s| s.goaway.is_some() || s.closed),
        )
        .await
        .unwrap_or_else(|_| panic!("{name}: the node closes the connection"))
        .expect("watch");
        assert!(
            cut && sent < CONTINUATION_BYTES,
            "{name}: all {sent} bytes went in: the node read the whole flood"
        );
        let s = *seen.borrow();
        assert!(s.goaway.is_some(), "{name}: GOAWAY before the end: {s:?}");
    }
    stop.store(true, Ordering::SeqCst);
    let ok = others.await.expect("task").expect("bystanders answered");
    assert!(ok > 0);
    let (status, _) = h2c::get_once(edge.addr, "a.test", "/after").await;
    assert_eq!(status, 200);
    eventually(
        "the origin saw the bystanders",
        Duration::from_secs(5),
        || async { origin.count_path("/after") == 1 },
    )
    .await;
    assert_eq!(
        origin.count_path("/continuation"),
        0,
        "an unfinished header block is never a request"
    );
}
