//! 2. What is stored, 3. Age and Date, 10. invalidation by unsafe methods,
//! 12. memory bounds and large objects.

use std::time::{Duration, SystemTime};

use crate::support::{Node, Origin, Reply, cache_status, client};

/// GETs `path` twice and returns how many requests reached the origin.
async fn origin_hits_for_two_gets(origin: &Origin, edge: &Node, path: &str) -> usize {
    let c = client();
    for _ in 0..2 {
        let r = c.get(edge.url(path)).send().await.expect("send");
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.bytes().await.expect("body");
    }
    origin.count_path(path)
}

#[tokio::test]
async fn storability_rules_rfc9111_3() {
    let lm = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(100_000));
    let origin = Origin::start(move |s| {
        let r = Reply::ok(format!("body of {}", s.path));
        match s.path.as_str() {
            "/max-age" => r.header("cache-control", "max-age=60"),
            "/no-store" => r.header("cache-control", "no-store, max-age=60"),
            "/private" => r.header("cache-control", "private, max-age=60"),
            "/set-cookie" => r
                .header("cache-control", "max-age=60")
                .header("set-cookie", "id=1"),
            "/heuristic" => r.header("last-modified", &lm),
            "/nothing" => r,
            "/cdn-cc" => r
                .header("cache-control", "no-cache")
                .header("cdn-cache-control", "max-age=60"),
            "/surrogate" => r
                .header("cache-control", "max-age=0")
                .header("surrogate-control", "max-age=60"),
            "/s-maxage" => r.header("cache-control", "max-age=0, s-maxage=60"),
            "/expires" => r.header(
                "expires",
                &httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(600)),
            ),
            "/404" => r.status(404).header("cache-control", "max-age=60"),
            "/500" => r.status(500).header("cache-control", "max-age=60"),
            _ => r,
        }
    })
    .await;
    let edge = Node::edge(&[origin.url()]).await;
    let cases = [
        ("/max-age", 1),
        ("/no-store", 2),
        ("/private", 2),
        ("/set-cookie", 2),
        ("/heuristic", 1),
        ("/nothing", 2),
        ("/cdn-cc", 1),
        ("/surrogate", 1),
        ("/s-maxage", 1),
        ("/expires", 1),
    ];
    for (path, want) in cases {
        assert_eq!(
            origin_hits_for_two_gets(&origin, &edge, path).await,
            want,
            "{path}"
        );
    }
    // Error statuses with explicit freshness are stored (RFC 9111 §3); a
    // 5xx briefly (cache.error-max-ttl, see `rfc_gaps`).
    let c = client();
    for _ in 0..2 {
        assert_eq!(
            c.get(edge.url("/404")).send().await.expect("send").status(),
            404
        );
        assert_eq!(
            c.get(edge.url("/500")).send().await.expect("send").status(),
            500
        );
    }
    assert_eq!(origin.count_path("/404"), 1);
    assert_eq!(origin.count_path("/500"), 1);
}

#[tokio::test]
async fn authorization_requests_are_stored_only_when_allowed_rfc9111_3_5() {
    let origin = Origin::start(|s| match s.path.as_str() {
        "/public" => Reply::ok("pub").header("cache-control", "public, max-age=60"),
        _ => Reply::ok("secret").header("cache-control", "max-age=60"),
    })
    .await;
    let edge = Node::edge(&[origin.url()]).await;
    let c = client();
    for _ in 0..2 {
        c.get(edge.url("/secret"))
            .header("authorization", "Bearer a")
            .send()
            .await
            .expect("send");
        c.get(edge.url("/public"))
            .header("authorization", "Bearer a")
            .send()
            .await
            .expect("send");
    }
    assert_eq!(origin.count_path("/secret"), 2);
    assert_eq!(origin.count_path("/public"), 1);
}

#[tokio::test]
async fn no_cache_is_stored_but_revalidated_every_time_rfc9111_5_2_2_4() {
    let origin = Origin::start(|s| {
        if s.header("if-none-match") == Some("\"v1\"") {
            Reply::ok("")
                .status(304)
                .header("etag", "\"v1\"")
                .header("cache-control", "no-cache")
        } else {
            Reply::ok("full body")
                .header("etag", "\"v1\"")
                .header("cache-control", "no-cache")
        }
    })
    .await;
    let edge = Node::edge(&[origin.url()]).await;
    let c = client();
    for i in 0..3 {
        let r = c.get(edge.url("/nc")).send().await.expect("send");
        assert_eq!(r.status(), 200);
        let cs = cache_status(&r);
        assert_eq!(r.text().await.expect("body"), "full body");
        if i > 0 {
            assert!(cs.contains("fwd=stale; fwd-status=304"), "{cs}");
        }
    }
    let reqs = origin.requests();
    assert_eq!(reqs.len(), 3);
    assert_eq!(reqs[0].header("if-none-match"), None);
    assert_eq!(reqs[1].header("if-none-match"), Some("\"v1\""));
}

#[tokio::test]
async fn head_is_answered_from_a_stored_get() {
    let origin =
        Origin::start(|_| Reply::ok("0123456789").header("cache-control", "max-age=60")).await;
    let edge = Node::edge(&[origin.url()]).await;
    let c = client();
    let r = c.head(edge.url("/doc")).send().await.expect("send");
    assert!(
        cache_status(&r).contains("fwd=miss"),
        "{}",
        cache_status(&r)
    );
    let r = c.head(edge.url("/doc")).send().await.expect("send");
    assert!(cache_status(&r).contains("; hit"), "{}", cache_status(&r));
    assert_eq!(r.headers()["content-length"], "10");
    assert_eq!(r.bytes().await.expect("body").len(), 0);
    let r = c.get(edge.url("/doc")).send().await.expect("send");
    assert_eq!(r.text().await.expect("body"), "0123456789");
    assert_eq!(origin.count(), 1);
    assert_eq!(
        origin.last().method,
        "GET",
        "a HEAD miss fills the cache with a GET"
    );
}

#[tokio::test]
async fn age_is_computed_and_date_is_kept_rfc9111_4_2_3() {
    let date = httpdate::fmt_http_date(SystemTime::now());
    let d = date.clone();
    let origin = Origin::start(move |_| {
        Reply::ok("aged")
            .header("cache-control", "max-age=600")
            .header("age", "100")
            .header("date", &d)
    })
    .await;
    let edge = Node::edge(&[origin.url()]).await;
    let c = client();
    for _ in 0..2 {
        let r = c.get(edge.url("/aged")).send().await.expect("send");
        let age: u64 = r.headers()["age"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("number");
        assert!((100..110).contains(&age), "age {age}");
        assert_eq!(r.headers()["date"], date.as_str());
        let cs = cache_status(&r);
        let ttl: i64 = cs
            .split("ttl=")
            .nth(1)
            .and_then(|t| t.split(';').next())
            .expect("ttl")
            .trim()
            .parse()
            .expect("n");
        assert!((490..=500).contains(&ttl), "{cs}");
    }
}

#[tokio::test]
async fn successful_unsafe_methods_invalidate_uri_and_location_rfc9111_4_4() {
    let origin = Origin::start(|s| match (s.method.as_str(), s.path.as_str()) {
        ("POST", "/items") => Reply::ok("created")
            .status(201)
            .header("location", "/items/7")
            .header("content-location", "/items/latest"),
        ("POST", "/fail") => Reply::ok("no").status(500),
        _ => Reply::ok(format!("v{}", s.path)).header("cache-control", "max-age=60"),
    })
    .await;
    let edge = Node::edge(&[origin.url()]).await;
    let c = client();
    for p in ["/items", "/items/7", "/items/latest", "/fail", "/other"] {
        c.get(edge.url(p)).send().await.expect("send");
    }
    assert_eq!(origin.count(), 5);
    c.post(edge.url("/items"))
        .body("x")
        .send()
        .await
        .expect("send");
    c.post(edge.url("/fail"))
        .body("x")
        .send()
        .await
        .expect("send");
    for p in ["/items", "/items/7", "/items/latest", "/fail", "/other"] {
        c.get(edge.url(p)).send().await.expect("send");
    }
    assert_eq!(origin.count_path("/items"), 3, "GET, POST, GET again");
    assert_eq!(origin.count_path("/items/7"), 2, "Location invalidated");
    assert_eq!(
        origin.count_path("/items/latest"),
        2,
        "Content-Location invalidated"
    );
    assert_eq!(
        origin.count_path("/fail"),
        2,
        "a failed POST invalidates nothing"
    );
    assert_eq!(origin.count_path("/other"), 1);
}

#[tokio::test]
async fn large_objects_stream_and_are_not_stored() {
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let body = bytes::Bytes::from(big.clone());
    let origin =
        Origin::start(move |_| Reply::ok(body.clone()).header("cache-control", "max-age=60")).await;
    let edge = Node::edge_with(meridian_edge::FileConfig {
        upstream: vec![origin.url()],
        name: Some("edge-1".into()),
        cache: meridian_edge::config::CacheSection {
            max_object_size: Some(meridian_common::ByteSize(64 * 1024)),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let c = client();
    for _ in 0..2 {
        let r = c.get(edge.url("/big")).send().await.expect("send");
        assert!(
            cache_status(&r).contains("detail=too-large"),
            "{}",
            cache_status(&r)
        );
        assert_eq!(
            &r.bytes().await.expect("body")[..],
            &big[..],
            "every byte streamed"
        );
    }
    assert_eq!(origin.count(), 2);
}

#[tokio::test]
async fn store_stays_within_its_byte_bound() {
    let origin =
        Origin::start(|_| Reply::ok(vec![b'x'; 2048]).header("cache-control", "max-age=60")).await;
    let cap = 64 * 1024;
    let edge = Node::edge_with(meridian_edge::FileConfig {
        upstream: vec![origin.url()],
        cache: meridian_edge::config::CacheSection {
            size: Some(meridian_common::ByteSize(cap)),
            max_object_size: Some(meridian_common::ByteSize(16 * 1024)),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let c = client();
    for i in 0..200 {
        let r = c
            .get(edge.url(&format!("/obj/{i}")))
            .send()
            .await
            .expect("send");
        assert_eq!(r.bytes().await.expect("body").len(), 2048);
    }
    let s: serde_json::Value = c
        .get(edge.admin_url("/stats"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let bytes = s["bytes"].as_u64().expect("bytes");
    assert!(bytes <= cap, "{bytes} > {cap}");
    assert!(s["entries"].as_u64().expect("entries") < 200);
}
