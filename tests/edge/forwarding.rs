//! 1. Forwarding, 13. Cache-Status on every response, 15. admin listener.

use crate::support::{Node, Origin, Reply, cache_status, client};

#[tokio::test]
async fn every_method_path_and_body_reach_the_upstream_unchanged() {
    let origin =
        Origin::start(|s| Reply::ok(format!("{} {} {}", s.method, s.path, s.body.len()))).await;
    let edge = Node::edge(&[origin.url()]).await;
    let c = client();
    for method in ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let r = c
            .request(m, edge.url("/a/b?x=1&y=%20"))
            .body("payload")
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200, "{method}");
        let seen = origin.last();
        assert_eq!(seen.method.as_str(), method);
        assert_eq!(seen.path, "/a/b?x=1&y=%20");
        if method != "GET" {
            assert_eq!(&seen.body[..], b"payload", "{method} body forwarded");
        }
    }
}

#[tokio::test]
async fn hop_by_hop_headers_dropped_and_forwarding_headers_added_rfc9110_7_6() {
    let origin = Origin::start(|_| {
        Reply::ok("x")
            .header("x-origin-custom", "kept")
            .header("connection", "x-origin-secret")
            .header("x-origin-secret", "dropped")
            .header("cache-control", "no-store")
    })
    .await;
    let edge = Node::edge(&[origin.url()]).await;
    let r = client()
        .get(edge.url("/h"))
        .header("x-unknown-thing", "passes")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "must-not-pass")
        .header("te", "trailers")
        .header("proxy-authorization", "Basic Zm9v")
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await
        .expect("send");
    assert_eq!(r.headers()["x-origin-custom"], "kept");
    assert!(
        r.headers().get("x-origin-secret").is_none(),
        "response hop-by-hop field named by Connection dropped"
    );
    let seen = origin.last();
    assert_eq!(seen.header("x-unknown-thing"), Some("passes"));
    assert_eq!(seen.header("x-hop"), None);
    assert_eq!(seen.header("te"), None);
    assert_eq!(seen.header("proxy-authorization"), None);
    assert_eq!(seen.header("via"), Some("1.1 edge-1"));
    assert_eq!(
        seen.header("x-forwarded-for"),
        Some("127.0.0.1"),
        "an untrusted client's X-Forwarded-For is replaced by the peer address"
    );
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(
        seen.header("x-forwarded-host"),
        Some(edge.addr.to_string().as_str())
    );
    assert_eq!(
        seen.header("host"),
        Some(edge.addr.to_string().as_str()),
        "the request's authority is the upstream Host"
    );
    assert_eq!(
        seen.header("forwarded").map(str::to_owned),
        Some(format!("for=127.0.0.1;host=\"{}\";proto=http", edge.addr))
    );
}

#[tokio::test]
async fn cache_status_on_every_response_and_upstream_member_kept_first_rfc9211_2() {
    let origin = Origin::start(|s| match s.path.as_str() {
        "/cached" => Reply::ok("c")
            .header("cache-control", "max-age=60")
            .header("cache-status", "origin-cache; hit"),
        "/private" => Reply::ok("p").header("cache-control", "private"),
        _ => Reply::ok("gone")
            .status(404)
            .header("cache-control", "no-store"),
    })
    .await;
    let edge = Node::edge(&[origin.url()]).await;
    let c = client();
    let r = c.get(edge.url("/cached")).send().await.expect("send");
    assert_eq!(
        cache_status(&r),
        "origin-cache; hit, edge-1; fwd=miss; fwd-status=200; ttl=60; stored"
    );
    let r = c.get(edge.url("/cached")).send().await.expect("send");
    assert!(
        cache_status(&r).starts_with("origin-cache; hit, edge-1; hit; ttl="),
        "{}",
        cache_status(&r)
    );
    let r = c.get(edge.url("/private")).send().await.expect("send");
    assert_eq!(
        cache_status(&r),
        "edge-1; fwd=miss; fwd-status=200; detail=private"
    );
    let r = c.post(edge.url("/cached")).send().await.expect("send");
    assert_eq!(
        cache_status(&r),
        "origin-cache; hit, edge-1; fwd=bypass; fwd-status=200"
    );
    let r = c.get(edge.url("/nothing")).send().await.expect("send");
    assert_eq!(r.status(), 404);
    assert!(
        cache_status(&r).contains("fwd-status=404"),
        "{}",
        cache_status(&r)
    );
}

#[tokio::test]
async fn admin_healthz_and_stats() {
    let origin = Origin::start(|_| Reply::ok("body").header("cache-control", "max-age=60")).await;
    let edge = Node::edge_with(meridian_edge::FileConfig {
        upstream: vec![origin.url()],
        name: Some("edge-eu".into()),
        region: Some("eu-west".into()),
        ..Default::default()
    })
    .await;
    let c = client();
    let h: serde_json::Value = c
        .get(edge.admin_url("/healthz"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(h["name"], "edge-eu");
    assert_eq!(h["region"], "eu-west");
    assert_eq!(h["status"], "ok");
    for _ in 0..4 {
        c.get(edge.url("/one")).send().await.expect("send");
    }
    let s: serde_json::Value = c
        .get(edge.admin_url("/stats"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(s["entries"], 1);
    assert_eq!(s["hits"], 3);
    assert_eq!(s["misses"], 1);
    assert_eq!(s["hit_ratio"], 0.75);
    assert!(s["bytes"].as_u64().expect("bytes") >= 4);
    assert_eq!(origin.count(), 1);
}

#[tokio::test]
async fn missing_host_is_a_400() {
    let origin = Origin::start(|_| Reply::ok("x")).await;
    let edge = Node::edge(&[origin.url()]).await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(edge.addr)
        .await
        .expect("connect");
    s.write_all(b"GET /x HTTP/1.0\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.0 400"), "{text}");
    assert_eq!(origin.count(), 0);
}

#[tokio::test]
async fn connect_is_refused_and_garbage_never_reaches_the_origin() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let origin = Origin::start(|_| Reply::ok("x")).await;
    let edge = Node::edge(&[origin.url()]).await;
    let cases: [&[u8]; 4] = [
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all\r\n\r\n",
    ];
    let want = [
        "HTTP/1.1 405",
        "HTTP/1.1 400",
        "HTTP/1.1 400",
        "HTTP/1.1 400",
    ];
    for (raw, want) in cases.iter().zip(want) {
        let mut s = tokio::net::TcpStream::connect(edge.addr)
            .await
            .expect("connect");
        s.write_all(raw).await.expect("write");
        let mut buf = vec![0u8; 512];
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("answered in time")
            .expect("read");
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(text.starts_with(want), "{raw:?}: {text}");
    }
    assert_eq!(origin.count(), 0);
    // And the edge still serves.
    let r = client().get(edge.url("/ok")).send().await.expect("send");
    assert_eq!(r.status(), 200);
}

/// An origin that builds absolute links from the forwarding fields, as
/// most web frameworks do behind a proxy.
fn link_builder(s: &crate::support::Seen) -> Reply {
    Reply::ok(format!(
        "<a href=\"{}://{}/next\"> for {} via {}",
        s.header("x-forwarded-proto").unwrap_or("-"),
        s.header("x-forwarded-host").unwrap_or("-"),
        s.header("x-forwarded-for").unwrap_or("-"),
        s.header("forwarded").unwrap_or("-"),
    ))
    .header("cache-control", "max-age=60")
}

const SPOOFED: [(&str, &str); 10] = [
    ("x-forwarded-host", "evil.example"),
    ("x-forwarded-proto", "https"),
    ("x-forwarded-port", "8443"),
    ("x-forwarded-prefix", "/evil"),
    ("forwarded", "for=6.6.6.6;host=evil.example;proto=https"),
    ("x-forwarded-for", "6.6.6.6"),
    ("x-real-ip", "6.6.6.6"),
    ("x-original-url", "/admin"),
    ("x-http-method-override", "DELETE"),
    ("x-host", "evil.example"),
];

#[tokio::test]
async fn spoofed_forwarding_headers_from_an_untrusted_client_are_replaced() {
    let origin = Origin::start(link_builder).await;
    let edge = Node::edge(&[origin.url()]).await;
    let c = client();
    let mut attack = c.get(edge.url("/page")).header("host", "shop.example");
    for (k, v) in SPOOFED {
        attack = attack.header(k, v);
    }
    let poisoned = attack
        .send()
        .await
        .expect("send")
        .bytes()
        .await
        .expect("body");
    let clean = "<a href=\"http://shop.example/next\"> for 127.0.0.1 via \
                 for=127.0.0.1;host=shop.example;proto=http";
    assert_eq!(
        poisoned.as_ref(),
        clean.as_bytes(),
        "the origin saw the node's values"
    );
    let seen = origin.last();
    for (k, _) in SPOOFED {
        if ![
            "x-forwarded-host",
            "x-forwarded-proto",
            "x-forwarded-for",
            "forwarded",
        ]
        .contains(&k)
        {
            assert_eq!(
                seen.header(k),
                None,
                "{k} is not passed from an untrusted client"
            );
        }
    }
    // The next user of the site gets the same, clean, cached bytes.
    let r = c
        .get(edge.url("/page"))
        .header("host", "shop.example")
        .send()
        .await
        .expect("send");
    assert!(cache_status(&r).contains("; hit"), "{}", cache_status(&r));
    assert_eq!(r.bytes().await.expect("body").as_ref(), clean.as_bytes());
    assert_eq!(origin.count(), 1);
}

#[tokio::test]
async fn a_trusted_forwarders_fields_are_kept_and_appended_to() {
    let origin = Origin::start(link_builder).await;
    let edge = Node::edge_with(meridian_edge::FileConfig {
        upstream: vec![origin.url()],
        name: Some("edge-1".into()),
        trusted_forwarders: Some(vec!["127.0.0.1/32".parse().expect("cidr")]),
        ..Default::default()
    })
    .await;
    let mut req = client().get(edge.url("/lb")).header("host", "shop.example");
    for (k, v) in SPOOFED {
        req = req.header(k, v);
    }
    let body = req.send().await.expect("send").bytes().await.expect("body");
    assert_eq!(
        body.as_ref(),
        b"<a href=\"https://evil.example/next\"> for 6.6.6.6, 127.0.0.1 via \
          for=6.6.6.6;host=evil.example;proto=https, for=127.0.0.1;host=shop.example;proto=http"
    );
    let seen = origin.last();
    assert_eq!(seen.header("host"), Some("shop.example"));
    assert_eq!(seen.header("x-real-ip"), Some("6.6.6.6"));
    assert_eq!(seen.header("x-forwarded-port"), Some("8443"));
}
