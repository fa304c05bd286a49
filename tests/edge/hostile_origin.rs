//! Issue 13, item 1: an origin that breaks HTTP on purpose ([`RawOrigin`]).
//! For each way an origin can misbehave the test checks what a user sees
//! (502 or 504 before a response head; a body cut off after it, never one
//! that ends cleanly short), that nothing was stored (the next request
//! reaches the origin again and `Cache-Status` says `fwd=miss`), that no
//! collapsed request is left hanging (several clients on the same URL all
//! finish within a bound), that the edge still answers, and that the
//! engine's own accounting (fills in flight, fill budget in use, stored
//! entries and bytes, requests in flight upstream) is back where it was.
//! `docs/reliability.md` has the table of cases.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use meridian_common::{ByteSize, HumanDuration};

use crate::support::{Node, RawOrigin, Script, cache_status, client, eventually, response};

/// Clients sent at the same URL at once: one leads the fill, the others
/// are collapsed onto it.
const CLIENTS: usize = 4;
/// How long every client together may take: well past the test edge's
/// timeouts (a fill deadline of 1 s, a response timeout of 2 s), well
/// short of the defaults (120 s and 30 s).
const BOUND: Duration = Duration::from_secs(6);

const CACHEABLE: (&str, &str) = ("cache-control", "public, max-age=60");

/// The edge the tests use: no active health checks (they would reach the
/// scripted origin), a 2 s response timeout, a 1 s fill deadline.
async fn edge_over(origin: &RawOrigin) -> Node {
    Node::edge(&[origin.url()])
        .config(|c| {
            c.health.interval = Some(HumanDuration(Duration::ZERO));
            c.timeouts.response = Some(HumanDuration(Duration::from_secs(2)));
            c.timeouts.fill = Some(HumanDuration(Duration::from_secs(1)));
            c.cache.collapse_wait = Some(HumanDuration(Duration::from_secs(3)));
        })
        .await
}

/// What one client saw.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// A response whose body ended as its framing said.
    Complete(u16, Bytes),
    /// A response head, then a body that broke off.
    Cut(u16),
    /// No response at all.
    NoHead,
}

async fn fetch(c: &reqwest::Client, url: &str) -> Seen {
    let Ok(r) = c.get(url).send().await else {
        return Seen::NoHead;
    };
    let status = r.status().as_u16();
    match r.bytes().await {
        Ok(b) => Seen::Complete(status, b),
        Err(_) => Seen::Cut(status),
    }
}

/// The engine's own accounting of what a request holds.
#[derive(Debug, Clone, PartialEq)]
struct Accounting {
    fills_in_flight: f64,
    fill_budget_bytes: f64,
    entries: u64,
    stored_bytes: u64,
    upstream_in_flight: u64,
}

async fn accounting(c: &reqwest::Client, edge: &Node) -> Accounting {
    let text = c
        .get(edge.admin_url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    let gauge = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name} in /metrics"))
    };
    let stats = edge.stats(c).await;
    Accounting {
        fills_in_flight: gauge("meridian_fills_in_flight"),
        fill_budget_bytes: gauge("meridian_fill_budget_bytes"),
        entries: stats["entries"].as_u64().expect("entries"),
        stored_bytes: stats["bytes"].as_u64().expect("bytes"),
        upstream_in_flight: stats["upstreams"][0]["in_flight"]
            .as_u64()
            .expect("in_flight"),
    }
}

/// An origin that runs `bad` for every request until healed, then answers
/// `healed` (cacheable) to each.
struct Healing {
    origin: RawOrigin,
    healed: Arc<AtomicBool>,
}

impl Healing {
    async fn start(bad: Script) -> Healing {
        let healed: Arc<AtomicBool> = Arc::default();
        let h = Arc::clone(&healed);
        let origin = RawOrigin::start(move |_| {
            if h.load(Ordering::SeqCst) {
                Script::new().write(response("200 OK", &[CACHEABLE], b"healed"))
            } else {
                bad.clone()
            }
        })
        .await;
        Healing { origin, healed }
    }

    fn heal(&self) {
        self.healed.store(true, Ordering::SeqCst);
    }
}

/// What every client of a case must see.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// This status before any body (502, 504): nothing of the upstream's
    /// answer reached the client.
    Status(u16),
    /// A 200 head, then the body cut off.
    Cut,
}

/// Runs one case end to end: [`CLIENTS`] clients at once get `expect`
/// within [`BOUND`]; the accounting returns to where it was; then, with the
/// origin healed, the next request is a miss that reaches it (nothing was
/// stored) and the one after is a hit (the edge works as before).
async fn case(name: &str, bad: Script, expect: Expect) {
    let origin = Healing::start(bad).await;
    let edge = edge_over(&origin.origin).await;
    let c = client();
    let before = accounting(&c, &edge).await;
    let url = edge.url(&format!("/{name}"));
    let all = futures_util::future::join_all((0..CLIENTS).map(|_| fetch(&c, &url)));
    let seen = tokio::time::timeout(BOUND, all)
        .await
        .unwrap_or_else(|_| panic!("{name}: a client was left hanging"));
    for s in &seen {
        match (expect, s) {
            (Expect::Status(want), Seen::Complete(got, _)) if *got == want => {}
            (Expect::Cut, Seen::Cut(200)) => {}
            _ => panic!("{name}: wanted {expect:?}, a client saw {s:?} (all: {seen:?})"),
        }
    }
    eventually(
        &format!("{name}: the accounting back to {before:?}"),
        Duration::from_secs(3),
        || async { accounting(&c, &edge).await == before },
    )
    .await;
    origin.heal();
    let reached = origin.origin.requests();
    let r = c.get(&url).send().await.expect("after the case");
    let cs = cache_status(&r);
    assert_eq!(r.status(), 200, "{name}: the edge answers afterwards");
    assert!(cs.contains("fwd=miss"), "{name}: nothing was stored: {cs}");
    assert_eq!(r.bytes().await.expect("body"), "healed");
    assert_eq!(origin.origin.requests(), reached + 1, "{name}");
    let r = c.get(&url).send().await.expect("a hit");
    assert!(cache_status(&r).contains("hit"), "{name}: stored now");
}

/// A cacheable response head with these extra lines (each ending CRLF).
fn head_with(extra: &str) -> String {
    format!("HTTP/1.1 200 OK\r\ncache-control: public, max-age=60\r\n{extra}\r\n")
}

#[tokio::test]
async fn truncated_content_length_body_is_cut_and_not_stored() {
    let bad = Script::new()
        .write(head_with("content-length: 100\r\n") + "only ten b")
        .close();
    case("truncated-length", bad, Expect::Cut).await;
}

#[tokio::test]
async fn truncated_chunked_body_is_cut_and_not_stored() {
    let bad = Script::new()
        .write(head_with("transfer-encoding: chunked\r\n") + "a\r\n0123456789\r\n")
        .close();
    case("truncated-chunked", bad, Expect::Cut).await;
}

#[tokio::test]
async fn reset_mid_body_is_cut_and_not_stored() {
    let bad = Script::new()
        .write(head_with("content-length: 100\r\n") + "only ten b")
        .pause(Duration::from_millis(50))
        .reset();
    case("reset-mid-body", bad, Expect::Cut).await;
}

#[tokio::test]
async fn reset_before_the_head_is_502() {
    case(
        "reset-before-head",
        Script::new().reset(),
        Expect::Status(502),
    )
    .await;
}

#[tokio::test]
async fn garbage_status_line_is_502() {
    let bad = Script::new()
        .write("HTCPCP/1.0 418 I'm a teapot\r\ncontent-length: 2\r\n\r\nhi")
        .close();
    case("garbage-status", bad, Expect::Status(502)).await;
}

#[tokio::test]
async fn conflicting_content_lengths_are_502_rfc9112_6_3() {
    let bad =
        Script::new().write(head_with("content-length: 2\r\ncontent-length: 5\r\n") + "hello");
    case("conflicting-length", bad, Expect::Status(502)).await;
}

#[tokio::test]
async fn duplicate_content_lengths_are_502_rfc9112_6_3() {
    // RFC 9112 §6.3 lets a recipient take identical values as one, or
    // reject them; like nginx, a proxy that must never mis-frame rejects.
    let bad =
        Script::new().write(head_with("content-length: 5\r\ncontent-length: 5\r\n") + "hello");
    case("duplicate-length", bad, Expect::Status(502)).await;
}

#[tokio::test]
async fn content_length_with_transfer_encoding_is_502_rfc9112_6_3() {
    // "ought to be handled as an error" (a smuggling or splitting attempt).
    let bad = Script::new().write(
        head_with("content-length: 5\r\ntransfer-encoding: chunked\r\n")
            + "5\r\nhello\r\n0\r\n\r\n",
    );
    case("length-and-chunked", bad, Expect::Status(502)).await;
}

#[tokio::test]
async fn nul_in_a_header_is_502() {
    let bad = Script::new().write(head_with("x-bad: a\0b\r\ncontent-length: 2\r\n") + "hi");
    case("nul-header", bad, Expect::Status(502)).await;
}

#[tokio::test]
async fn bare_cr_in_a_header_is_502() {
    let bad = Script::new().write(head_with("x-bad: a\rb\r\ncontent-length: 2\r\n") + "hi");
    case("bare-cr", bad, Expect::Status(502)).await;
}

#[tokio::test]
async fn obs_fold_in_a_header_is_502_rfc9112_5_2() {
    let bad = Script::new().write(head_with("x-folded: a\r\n b\r\ncontent-length: 2\r\n") + "hi");
    case("obs-fold", bad, Expect::Status(502)).await;
}

#[tokio::test]
async fn bare_lf_line_ends_are_read_as_line_ends_rfc9112_2_2() {
    // §2.2: a recipient MAY take a lone LF as a line terminator, and hyper
    // does: the answer is the origin's, framed right, and stored.
    let origin =
        RawOrigin::always(Script::new().write(
            "HTTP/1.1 200 OK\ncache-control: public, max-age=60\ncontent-length: 5\n\nhello",
        ))
        .await;
    let edge = edge_over(&origin).await;
    let c = client();
    assert_eq!(
        fetch(&c, &edge.url("/lf")).await,
        Seen::Complete(200, Bytes::from("hello"))
    );
    let r = c.get(edge.url("/lf")).send().await.expect("again");
    assert!(cache_status(&r).contains("hit"), "{}", cache_status(&r));
    assert_eq!(r.bytes().await.expect("body"), "hello");
    assert_eq!(origin.requests(), 1);
}

#[tokio::test]
async fn a_300_kb_header_is_502_not_stored_and_not_served_back() {
    let big = "v".repeat(300 << 10);
    let bad =
        Script::new().write(head_with(&format!("x-big: {big}\r\ncontent-length: 2\r\n")) + "hi");
    case("big-header", bad, Expect::Status(502)).await;
}

#[tokio::test]
async fn five_thousand_headers_are_502() {
    let many: String = (0..5000).map(|i| format!("x-h{i}: {i}\r\n")).collect();
    let bad = Script::new().write(head_with(&format!("{many}content-length: 2\r\n")) + "hi");
    case("many-headers", bad, Expect::Status(502)).await;
}

#[tokio::test]
async fn silence_before_the_head_is_504() {
    case("silent-head", Script::new().silent(), Expect::Status(504)).await;
}

#[tokio::test]
async fn headers_then_silence_is_cut() {
    let bad = Script::new()
        .write(head_with("content-length: 100\r\n") + "0123")
        .silent();
    case("silent-body", bad, Expect::Cut).await;
}

#[tokio::test]
async fn a_body_trickled_a_byte_a_second_is_cut_at_the_fill_deadline() {
    // Each byte comes well within the response timeout (2 s), so only the
    // total deadline of the fill (1 s here, `timeouts.fill`) ends it.
    let bad = Script::new()
        .write(head_with("content-length: 100\r\n"))
        .trickle(vec![b'x'; 100], Duration::from_secs(1));
    case("trickle", bad, Expect::Cut).await;
}

#[tokio::test]
async fn keep_alive_closed_after_every_response_loses_no_request() {
    // The origin closes each connection after its answer without
    // `Connection: close`: the edge must notice, or retry on a new
    // connection, for every request.
    let origin = RawOrigin::start(|r| {
        let n = r.n;
        Script::new()
            .write(response(
                "200 OK",
                &[CACHEABLE],
                format!("answer {n}").as_bytes(),
            ))
            .pause(Duration::from_millis(5))
            .close()
    })
    .await;
    let edge = edge_over(&origin).await;
    let c = client();
    for i in 0..20 {
        let seen = fetch(&c, &edge.url(&format!("/ka/{i}"))).await;
        let Seen::Complete(200, body) = &seen else {
            panic!("request {i}: {seen:?}");
        };
        assert!(body.starts_with(b"answer "), "request {i}: {body:?}");
    }
    assert_eq!(origin.requests(), 20);
    assert_eq!(origin.connections(), 20, "one connection each");
}

#[tokio::test]
async fn a_5xx_storm_is_passed_on_not_stored_and_not_held_against_the_origin() {
    let origin =
        Healing::start(Script::new().write(response("503 Service Unavailable", &[], b"storm")))
            .await;
    let edge = edge_over(&origin.origin).await;
    let c = client();
    let before = accounting(&c, &edge).await;
    let all = (0..40).map(|i| {
        let c = c.clone();
        let url = edge.url(&format!("/storm/{}", i % 4));
        async move { fetch(&c, &url).await }
    });
    let seen = tokio::time::timeout(BOUND, futures_util::future::join_all(all))
        .await
        .expect("no client left hanging");
    for s in &seen {
        assert_eq!(s, &Seen::Complete(503, Bytes::from("storm")));
    }
    assert_eq!(accounting(&c, &edge).await, before);
    assert!(edge.upstream_up(&c, &origin.origin.url()).await);
    assert_eq!(failures(&c, &edge).await, 0, "a 5xx is not a failure");
    origin.heal();
    let r = c.get(edge.url("/storm/0")).send().await.expect("healed");
    assert_eq!(r.status(), 200);
    assert!(cache_status(&r).contains("fwd=miss"));
}

#[tokio::test]
async fn a_vary_that_changes_between_responses_never_serves_another_variant() {
    // Each answer varies on another field, and its body echoes both fields
    // it could vary on; whatever is stored, a client must get a body made
    // for its own value of every field the answer names in Vary.
    let origin = RawOrigin::start(|r| {
        let (n, head) = (r.n, &r.head);
        let field = |name: &str| {
            head.lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                })
                .unwrap_or_default()
        };
        let vary = ["accept-language", "x-variant", "accept-language, x-variant"][n % 3];
        let body = format!(
            "lang={};variant={}",
            field("accept-language"),
            field("x-variant")
        );
        Script::new().write(response(
            "200 OK",
            &[CACHEABLE, ("vary", vary)],
            body.as_bytes(),
        ))
    })
    .await;
    let edge = edge_over(&origin).await;
    let c = client();
    for i in 0..30 {
        let (lang, variant) = (["en", "fr"][i % 2], ["a", "b", "c"][i % 3]);
        let r = c
            .get(edge.url("/vary"))
            .header("accept-language", lang)
            .header("x-variant", variant)
            .send()
            .await
            .expect("send");
        let vary = r
            .headers()
            .get("vary")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = r.text().await.expect("body");
        if vary.contains("accept-language") {
            assert!(
                body.contains(&format!("lang={lang};")),
                "{i}: {vary}: {body}"
            );
        }
        if vary.contains("x-variant") {
            assert!(
                body.ends_with(&format!("variant={variant}")),
                "{i}: {vary}: {body}"
            );
        }
    }
}

#[tokio::test]
async fn an_etag_that_changes_between_responses_never_mixes_bodies() {
    // Every answer must be revalidated; the origin changes its ETag and
    // body on each, and ignores If-None-Match half the time (a 200), and
    // the other half answers 304 with the new ETag, which matches nothing
    // stored (RFC 9111 §4.3.4: such a 304 updates nothing).
    let origin = RawOrigin::start(|r| {
        let (n, head) = (r.n, &r.head);
        let conditional = head.to_ascii_lowercase().contains("if-none-match");
        let etag = format!("\"v{n}\"");
        let fields = [("cache-control", "no-cache"), ("etag", etag.as_str())];
        if conditional && n % 2 == 0 {
            let mut out = format!("HTTP/1.1 304 Not Modified\r\netag: {etag}\r\n").into_bytes();
            out.extend_from_slice(b"cache-control: no-cache\r\n\r\n");
            Script::new().write(out)
        } else {
            Script::new().write(response(
                "200 OK",
                &fields,
                format!("body of {etag}").as_bytes(),
            ))
        }
    })
    .await;
    let edge = edge_over(&origin).await;
    let c = client();
    for i in 0..12 {
        let r = c.get(edge.url("/etag")).send().await.expect("send");
        assert_eq!(r.status(), 200, "{i}");
        let etag = r
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = r.text().await.expect("body");
        assert_eq!(
            body,
            format!("body of {etag}"),
            "{i}: the body is the ETag's"
        );
    }
}

#[tokio::test]
async fn upstream_head_and_header_limits_hold_at_the_boundary() {
    // `limits.max-upstream-head` of 16 KiB: a head just under it is served,
    // one just over is 502; `limits.max-upstream-headers` of 20 likewise.
    let origin = RawOrigin::start(|r| {
        let path = r.head.split(' ').nth(1).unwrap_or("/").to_owned();
        let (pad, count) = match path.as_str() {
            "/under-size" => (15 << 10, 0),
            "/over-size" => (17 << 10, 0),
            "/under-count" => (0, 15),
            _ => (0, 25),
        };
        let fields: String = (0..count).map(|i| format!("x-h{i}: {i}\r\n")).collect();
        let pad = if pad > 0 {
            format!("x-pad: {}\r\n", "p".repeat(pad))
        } else {
            String::new()
        };
        Script::new().write(head_with(&format!("{fields}{pad}content-length: 2\r\n")) + "ok")
    })
    .await;
    let edge = Node::edge(&[origin.url()])
        .config(|c| {
            c.health.interval = Some(HumanDuration(Duration::ZERO));
            c.limits.max_upstream_head = Some(ByteSize(16 << 10));
            c.limits.max_upstream_headers = Some(20);
        })
        .await;
    let c = client();
    let before = accounting(&c, &edge).await;
    for (path, want) in [
        ("/under-size", 200),
        ("/over-size", 502),
        ("/under-count", 200),
        ("/over-count", 502),
    ] {
        let seen = fetch(&c, &edge.url(path)).await;
        match seen {
            Seen::Complete(got, body) if got == want => {
                if want == 200 {
                    assert_eq!(body, "ok", "{path}");
                }
            }
            other => panic!("{path}: wanted {want}, saw {other:?}"),
        }
    }
    let after = accounting(&c, &edge).await;
    assert_eq!(
        after.entries,
        before.entries + 2,
        "only the two under the limits stored"
    );
    assert!(edge.upstream_up(&c, &origin.url()).await);
    assert_eq!(failures(&c, &edge).await, 0, "not held against the origin");
}

/// Failures held against the (only) upstream, from `/stats`.
async fn failures(c: &reqwest::Client, edge: &Node) -> u64 {
    edge.stats(c).await["upstreams"][0]["failures"]
        .as_u64()
        .expect("failures")
}

#[tokio::test]
async fn the_fill_deadline_holds_at_the_boundary() {
    // `timeouts.fill` of 1.5 s: a slow body that is in by then is stored
    // whole; one that is not is cut off, and nothing is stored.
    let origin = RawOrigin::start(|r| {
        let (bytes, every) = if r.head.starts_with("GET /in-time ") {
            (10, Duration::from_millis(50))
        } else {
            (30, Duration::from_millis(100))
        };
        Script::new()
            .write(head_with(&format!("content-length: {bytes}\r\n")))
            .trickle(vec![b'x'; bytes], every)
    })
    .await;
    let edge = Node::edge(&[origin.url()])
        .config(|c| {
            c.health.interval = Some(HumanDuration(Duration::ZERO));
            c.timeouts.fill = Some(HumanDuration(Duration::from_millis(1500)));
        })
        .await;
    let c = client();
    assert_eq!(
        fetch(&c, &edge.url("/in-time")).await,
        Seen::Complete(200, Bytes::from(vec![b'x'; 10]))
    );
    let r = c.get(edge.url("/in-time")).send().await.expect("again");
    assert!(cache_status(&r).contains("hit"), "{}", cache_status(&r));
    assert_eq!(fetch(&c, &edge.url("/too-slow")).await, Seen::Cut(200));
    assert_eq!(origin.requests(), 2);
    let r = c.get(edge.url("/too-slow")).send().await.expect("again");
    assert!(
        cache_status(&r).contains("fwd=miss"),
        "{}",
        cache_status(&r)
    );
}

#[tokio::test]
async fn a_fill_that_stopped_storing_is_paced_by_its_client_not_the_deadline() {
    // Past `cache.max-object-size` the fill stops storing and streams to
    // its client alone: a long download, however slow, is not cut at
    // `timeouts.fill` (only a pause past `timeouts.response` ends it).
    let mut chunked = head_with("transfer-encoding: chunked\r\n").into_bytes();
    chunked.extend_from_slice(format!("20\r\n{}\r\n", "a".repeat(32)).as_bytes());
    let origin = RawOrigin::always(
        Script::new()
            .write(chunked)
            .trickle("5\r\nbbbbb\r\n", Duration::from_millis(120))
            .write("0\r\n\r\n"),
    )
    .await;
    let edge = Node::edge(&[origin.url()])
        .config(|c| {
            c.health.interval = Some(HumanDuration(Duration::ZERO));
            c.timeouts.fill = Some(HumanDuration(Duration::from_millis(500)));
            c.cache.max_object_size = Some(ByteSize(16));
        })
        .await;
    let c = client();
    let want = format!("{}bbbbb", "a".repeat(32));
    assert_eq!(
        fetch(&c, &edge.url("/big")).await,
        Seen::Complete(200, Bytes::from(want))
    );
}
