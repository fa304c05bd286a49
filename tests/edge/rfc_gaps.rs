//! The cache's remaining RFC gaps (issue 14): stored 5xx and heuristic
//! statuses, CDN-Cache-Control as a Structured Field, Accept-Language
//! variants, HEAD responses updating the stored GET, 1xx interim responses.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use crate::support::{Node, Origin, Reply, cache_status, client};

/// The `ttl=` member of a `Cache-Status`.
fn ttl(cs: &str) -> Option<i64> {
    cs.split("; ")
        .find_map(|p| p.strip_prefix("ttl="))
        .and_then(|t| t.parse().ok())
}

/// RFC 9111 §3: a 5xx with explicit freshness is stored, for at most
/// `cache.error-max-ttl` whatever its `max-age`; without explicit freshness
/// (or as an error this node makes) it is not.
#[tokio::test]
async fn server_error_with_max_age_is_stored_briefly_rfc9111_3() {
    let lm = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(100_000));
    let origin = Origin::start(move |s| match s.path.as_str() {
        "/503" => Reply::ok("down for maintenance")
            .status(503)
            .header("cache-control", "max-age=3600"),
        "/500-heuristic" => Reply::ok("oops").status(500).header("last-modified", &lm),
        _ => Reply::ok("?").status(404),
    })
    .await;
    let edge = Node::edge(&[origin.url()]).await;
    let c = client();
    for _ in 0..3 {
        let r = c.get(edge.url("/503")).send().await.expect("send");
        assert_eq!(r.status(), 503);
        let cs = cache_status(&r);
        assert!(ttl(&cs).is_some_and(|t| t <= 10), "capped at 10 s: {cs}");
        assert_eq!(r.text().await.expect("body"), "down for maintenance");
    }
    assert_eq!(origin.count_path("/503"), 1, "stored");
    for _ in 0..2 {
        let r = c
            .get(edge.url("/500-heuristic"))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 500);
    }
    assert_eq!(
        origin.count_path("/500-heuristic"),
        2,
        "no heuristics for 5xx"
    );

    // An error the edge makes itself (nothing listens upstream) is never stored.
    let gone = Node::edge(&["http://127.0.0.1:9"]).await;
    for _ in 0..2 {
        let r = c.get(gone.url("/x")).send().await.expect("send");
        // 502 (connect refused), or 503 once health checks mark it down.
        assert!(r.status().is_server_error(), "{}", r.status());
        assert!(!cache_status(&r).contains("stored"), "{}", cache_status(&r));
    }
}

/// `cache.error-max-ttl` is the cap: with "0s" a `max-age=3600` 503 is
/// never reused.
#[tokio::test]
async fn error_max_ttl_caps_a_stored_error() {
    let origin = Origin::start(|_| {
        Reply::ok("down")
            .status(503)
            .header("cache-control", "max-age=3600")
    })
    .await;
    let edge = Node::edge(&[origin.url()])
        .config(|c| {
            c.cache.error_max_ttl = Some(meridian_common::HumanDuration(Duration::ZERO));
        })
        .await;
    let c = client();
    for _ in 0..2 {
        assert_eq!(
            c.get(edge.url("/e")).send().await.expect("send").status(),
            503
        );
    }
    assert_eq!(origin.count(), 2);
}

/// A 5xx answering the revalidation of a stale 200 that may still be served
/// on error (grace, stale-if-error) serves that 200, and neither evicts nor
/// replaces it, even though the 5xx says `max-age=60` (Varnish's grace,
/// Fastly's serve-stale).
#[tokio::test]
async fn server_error_does_not_replace_a_usable_stale_copy_rfc5861_4() {
    let failing = Arc::new(AtomicU32::new(0));
    let f = Arc::clone(&failing);
    let origin = Origin::start(move |_| {
        if f.load(Ordering::SeqCst) == 1 {
            return Reply::ok("broken")
                .status(503)
                .header("cache-control", "max-age=60");
        }
        // Stale at once, so every request revalidates.
        Reply::ok("good copy")
            .header("cache-control", "max-age=0")
            .header("etag", "\"g\"")
    })
    .await;
    let edge = Node::edge(&[origin.url()]).await;
    let c = client();
    let r = c.get(edge.url("/doc")).send().await.expect("fill");
    assert_eq!(r.text().await.expect("body"), "good copy");
    failing.store(1, Ordering::SeqCst);
    for i in 0..3 {
        let r = c.get(edge.url("/doc")).send().await.expect("send");
        assert_eq!(r.status(), 200, "request {i}");
        let cs = cache_status(&r);
        assert!(
            cs.contains("fwd-status=503") && cs.ends_with("detail=stale-if-error"),
            "{cs}"
        );
        assert_eq!(r.text().await.expect("body"), "good copy");
    }
    assert_eq!(origin.count(), 4, "each stale request asked the origin");
    failing.store(0, Ordering::SeqCst);
    let r = c.get(edge.url("/doc")).send().await.expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("body"), "good copy");
}

/// RFC 9110 §15.1: 501 is heuristically cacheable (stored with Last-Modified
/// alone, capped as an error), an unknown 599 only with explicit freshness.
#[tokio::test]
async fn heuristic_statuses_include_501_and_unknown_needs_max_age_rfc9110_15_1() {
    let lm = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(100_000));
    let origin = Origin::start(move |s| match s.path.as_str() {
        "/501" => Reply::ok("no such method")
            .status(501)
            .header("last-modified", &lm),
        "/410" => Reply::ok("gone").status(410).header("last-modified", &lm),
        "/599" => Reply::ok("odd").status(599).header("last-modified", &lm),
        "/599-max-age" => Reply::ok("odd")
            .status(599)
            .header("cache-control", "max-age=5"),
        _ => Reply::ok("?").status(404),
    })
    .await;
    let edge = Node::edge(&[origin.url()]).await;
    let c = client();
    for (path, status, want) in [
        ("/501", 501, 1),
        ("/410", 410, 1),
        ("/599", 599, 2),
        ("/599-max-age", 599, 1),
    ] {
        for _ in 0..2 {
            let r = c.get(edge.url(path)).send().await.expect("send");
            assert_eq!(r.status().as_u16(), status, "{path}");
        }
        assert_eq!(origin.count_path(path), want, "{path}");
    }
}

/// RFC 9213 §2.1: CDN-Cache-Control is a Structured Field. A value that
/// does not parse, or a directive of the wrong type, is ignored, so the
/// origin's `Cache-Control: no-store` governs and nothing is stored.
#[tokio::test]
async fn malformed_cdn_cache_control_is_ignored_rfc9213_2_1() {
    let origin = Origin::start(|s| {
        let cdn = match s.path.as_str() {
            "/valid" => "max-age=60",
            "/garbage" => "max-age=10000, &&&&&",
            "/string" => "max-age=\"10000\"",
            _ => "",
        };
        Reply::ok("body")
            .header("cache-control", "no-store")
            .header("cdn-cache-control", cdn)
    })
    .await;
    let edge = Node::edge(&[origin.url()]).await;
    let c = client();
    for (path, want) in [("/valid", 1), ("/garbage", 2), ("/string", 2)] {
        for _ in 0..2 {
            let r = c.get(edge.url(path)).send().await.expect("send");
            assert_eq!(r.status(), 200, "{path}");
        }
        assert_eq!(origin.count_path(path), want, "{path}");
    }
}

/// RFC 9111 §4.1 with RFC 9110 §12.5.4: Accept-Language values that mean
/// the same (spacing, case, `q=1.0`, order by weight) share one variant;
/// a different preference does not.
#[tokio::test]
async fn equivalent_accept_language_shares_a_variant_rfc9111_4_1() {
    let origin = Origin::start(|s| {
        Reply::ok(format!(
            "for {}",
            s.header("accept-language").unwrap_or("-")
        ))
        .header("cache-control", "max-age=60")
        .header("vary", "Accept-Language")
    })
    .await;
    let edge = Node::edge(&[origin.url()]).await;
    let c = client();
    let get = |lang: &'static str| {
        let c = c.clone();
        let url = edge.url("/page");
        async move {
            let r = c
                .get(url)
                .header("accept-language", lang)
                .send()
                .await
                .expect("send");
            (cache_status(&r), r.text().await.expect("body"))
        }
    };
    let (_, first) = get("fr, en;q=0.8").await;
    assert_eq!(first, "for fr, en;q=0.8");
    for same in [
        "fr,en;q=0.8",
        "fr;q=1.0, en;q=0.8",
        "FR, EN;q=0.80",
        "en;q=0.8, fr",
    ] {
        let (cs, body) = get(same).await;
        assert!(cs.contains("; hit"), "{same}: {cs}");
        assert_eq!(body, first, "{same}");
    }
    assert_eq!(origin.count(), 1);
    let (cs, body) = get("en, fr;q=0.8").await;
    assert!(cs.contains("fwd=vary-miss"), "{cs}");
    assert_eq!(body, "for en, fr;q=0.8");
    assert_eq!(origin.count(), 2);
}

/// RFC 9111 §4.3.5. Fills are always GETs (a HEAD miss fills with a GET, as
/// Varnish and nginx do), so a HEAD reaches the origin as a HEAD only when
/// the cache is bypassed, as with `Cache-Control: no-store`. Its 200 then
/// tells about the stored GET: the same validators leave it be (no-store:
/// nothing of that exchange is stored, §5.2.1.5), another ETag makes it
/// stale, so the next GET revalidates and gets the new representation.
#[tokio::test]
async fn head_response_with_other_validators_makes_the_stored_get_stale_rfc9111_4_3_5() {
    let version = Arc::new(AtomicU32::new(1));
    let v = Arc::clone(&version);
    let origin = Origin::start(move |s| {
        let n = v.load(Ordering::SeqCst);
        let etag = format!("\"v{n}\"");
        if s.header("if-none-match") == Some(etag.as_str()) {
            return Reply::ok("")
                .status(304)
                .header("etag", &etag)
                .header("cache-control", "max-age=60");
        }
        Reply::ok(format!("version {n}"))
            .header("etag", &etag)
            .header("cache-control", "max-age=60")
    })
    .await;
    let edge = Node::edge(&[origin.url()]).await;
    let c = client();
    let get = || async {
        let r = c.get(edge.url("/doc")).send().await.expect("send");
        (cache_status(&r), r.text().await.expect("body"))
    };
    let head = || async {
        let r = c
            .head(edge.url("/doc"))
            .header("cache-control", "no-store")
            .send()
            .await
            .expect("head");
        assert_eq!(r.status(), 200);
        r.headers()["etag"].to_str().expect("etag").to_owned()
    };
    assert_eq!(get().await.1, "version 1");
    assert_eq!(head().await, "\"v1\"");
    assert_eq!(origin.last().method, http::Method::HEAD);
    let (cs, body) = get().await;
    assert!(cs.contains("; hit"), "same validators: still fresh: {cs}");
    assert_eq!(body, "version 1");

    version.store(2, Ordering::SeqCst);
    assert_eq!(head().await, "\"v2\"");
    let (cs, body) = get().await;
    assert!(cs.contains("fwd=stale; fwd-status=200"), "{cs}");
    assert_eq!(body, "version 2");
    assert_eq!(origin.last().header("if-none-match"), Some("\"v1\""));
    let (cs, body) = get().await;
    assert!(cs.contains("; hit"), "{cs}");
    assert_eq!(body, "version 2");
    assert_eq!(origin.count(), 4);
}

/// RFC 9111 §4.3.5, the update half: a HEAD forwarded without `no-store`
/// (here one carrying a body, which bypasses the cache) whose 200 has the
/// stored GET's validators updates its header fields and freshness.
#[tokio::test]
async fn head_response_with_same_validators_updates_the_stored_get_rfc9111_4_3_5() {
    let version = Arc::new(AtomicU32::new(1));
    let v = Arc::clone(&version);
    let origin = Origin::start(move |_| {
        let n = v.load(Ordering::SeqCst);
        let cc = if n == 1 { "max-age=30" } else { "max-age=600" };
        Reply::ok("same bytes")
            .header("etag", "\"e\"")
            .header("cache-control", cc)
            .header("x-version", &n.to_string())
    })
    .await;
    let edge = Node::edge(&[origin.url()]).await;
    let c = client();
    let r = c.get(edge.url("/doc")).send().await.expect("fill");
    assert_eq!(r.headers()["x-version"], "1");
    version.store(2, Ordering::SeqCst);
    let r = c
        .head(edge.url("/doc"))
        .body("x")
        .send()
        .await
        .expect("head");
    assert_eq!(r.status(), 200);
    assert_eq!(origin.last().method, http::Method::HEAD);
    let r = c.get(edge.url("/doc")).send().await.expect("send");
    let cs = cache_status(&r);
    assert!(cs.contains("; hit"), "{cs}");
    assert!(
        ttl(&cs).is_some_and(|t| t > 500),
        "freshness from the HEAD: {cs}"
    );
    assert_eq!(r.headers()["x-version"], "2", "fields from the HEAD");
    assert_eq!(r.text().await.expect("body"), "same bytes");
    assert_eq!(origin.count(), 2);
}

/// An origin that writes raw HTTP/1.1: a `103 Early Hints` before every
/// final `200` (the test support's axum origin cannot: hyper's server has
/// no way to send a 1xx, see below). Counts the requests for `/page` it answers.
async fn early_hints_origin() -> (std::net::SocketAddr, Arc<AtomicU32>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let count = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&count);
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Bounded: a test request head is far below 64 KiB.
                while buf.len() < 65_536 {
                    let Ok(n) = conn.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        // Health checks are not the test's traffic.
                        if buf.starts_with(b"GET /page ") {
                            seen.fetch_add(1, Ordering::SeqCst);
                        }
                        buf.drain(..end + 4);
                        let answer = "HTTP/1.1 103 Early Hints\r\n\
                                      link: </style.css>; rel=preload; as=style\r\n\r\n\
                                      HTTP/1.1 200 OK\r\n\
                                      content-type: text/plain\r\n\
                                      cache-control: max-age=60\r\n\
                                      content-length: 11\r\n\r\n\
                                      final bytes";
                        if conn.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, count)
}

/// RFC 9110 §15.2 / RFC 8297: a 103 before the final response. The edge's
/// upstream client (hyper) reads past it; hyper's server cannot send a 1xx
/// to the client (hyperium/hyper#3815, #4114 are open), so the hint is
/// dropped, as RFC 8297 §2 allows an intermediary. It is never stored, its
/// fields never leak into the final response, and the final 200 is stored
/// and served.
#[tokio::test]
async fn early_hints_from_the_origin_do_not_break_the_final_response_rfc8297() {
    let (addr, count) = early_hints_origin().await;
    let edge = Node::edge(&[format!("http://{addr}")]).await;
    let c = client();
    for want in ["fwd=miss", "hit"] {
        let r = c.get(edge.url("/page")).send().await.expect("send");
        assert_eq!(r.status(), 200);
        let cs = cache_status(&r);
        assert!(cs.contains(want), "{want}: {cs}");
        assert!(
            r.headers().get("link").is_none(),
            "the 103's fields stay out"
        );
        assert_eq!(r.text().await.expect("body"), "final bytes");
    }
    assert_eq!(count.load(Ordering::SeqCst), 1, "the final 200 was stored");
}
