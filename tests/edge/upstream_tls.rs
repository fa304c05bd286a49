//! TLS to upstreams (issue 12, item 2): an edge reaches an `https://`
//! origin whose certificate is from the test's own CA, verifies it for the
//! upstream's name (SNI the same), and treats any certificate it cannot
//! verify as a connect failure: 502, nothing stored, the next upstream
//! tried. `;insecure-skip-verify` is the only way around it.

use std::time::Duration;

use crate::support::{
    HOST, Handshake, Node, Origin, Pki, Reply, TlsOrigin, cache_status, client, get,
};

/// An origin whose every answer is cacheable for a minute.
async fn origin() -> Origin {
    Origin::start(|s| {
        Reply::ok(format!("body of {}", s.path)).header("cache-control", "max-age=60")
    })
    .await
}

/// A full handshake for `sni` that settled on HTTP/1.1.
fn http11(sni: Option<&str>) -> Handshake {
    Handshake {
        sni: sni.map(str::to_owned),
        alpn: Some("http/1.1".into()),
        resumed: false,
    }
}

#[tokio::test]
async fn an_https_origin_with_its_own_ca_is_fetched_stored_and_served_as_a_hit() {
    let origin = origin().await;
    let ca = Pki::named("origin CA");
    let front = TlsOrigin::start(&origin, &ca, &["localhost"]).await;
    let edge = Node::edge(&[format!("{}{}", front.url(), ca.option())]).await;
    let c = client();
    let (status, _, cs, body) = get(&c, &edge.url("/a")).await;
    assert_eq!((status, body.as_str()), (200, "body of /a"), "{cs}");
    assert!(cs.contains("fwd=miss") && cs.contains("stored"), "{cs}");
    let (status, _, cs, body) = get(&c, &edge.url("/a")).await;
    assert_eq!((status, body.as_str()), (200, "body of /a"));
    assert!(cs.contains("hit"), "{cs}");
    assert_eq!(origin.count(), 1);
    // The Host is the request's, the TLS name the upstream's own.
    assert_eq!(origin.last().header("host"), Some(HOST));
    assert_eq!(front.handshakes(), [http11(Some("localhost"))]);
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_502_and_nothing_is_stored() {
    let origin = origin().await;
    let (right, other) = (Pki::named("right CA"), Pki::named("other CA"));
    let mut front = TlsOrigin::start(&origin, &other, &["localhost"]).await;
    let edge = Node::edge(&[format!("{}{}", front.url(), right.option())]).await;
    let c = client();
    let r = c
        .get(edge.url("/x"))
        .header("host", HOST)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 502);
    assert!(
        cache_status(&r).contains("detail=upstream-connect"),
        "{}",
        cache_status(&r)
    );
    assert_eq!(origin.count(), 0, "no request went through");
    assert!(front.handshakes().is_empty(), "no handshake completed");
    // Counted against the upstream like a refused connect.
    let stats = edge.stats(&c).await;
    assert_eq!(stats["upstreams"][0]["failures"], 1, "{stats}");

    // The right certificate behind the same address: a fresh miss.
    let addr = front.addr;
    front.stop().await;
    let _front = TlsOrigin::start_at(addr, &origin, &right, &["localhost"]).await;
    let (status, _, cs, body) = get(&c, &edge.url("/x")).await;
    assert_eq!((status, body.as_str()), (200, "body of /x"), "{cs}");
    assert!(cs.contains("fwd=miss"), "the 502 was not stored: {cs}");
    assert_eq!(origin.count(), 1);
}

#[tokio::test]
async fn a_new_connection_resumes_the_tls_session() {
    let origin = Origin::start(|_| Reply::ok("fresh").header("cache-control", "no-store")).await;
    let ca = Pki::named("origin CA");
    let front = TlsOrigin::start(&origin, &ca, &["localhost"]).await;
    // No idle connections kept: every request connects anew.
    let edge = Node::edge(&[format!("{}{}", front.url(), ca.option())])
        .config(|c| c.timeouts.pool_idle = Some("0s".parse().expect("duration")))
        .await;
    let c = client();
    for i in 0..3 {
        let (status, _, cs, _) = get(&c, &edge.url(&format!("/r{i}"))).await;
        assert_eq!(status, 200, "{cs}");
    }
    let seen = front.handshakes();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(!seen[0].resumed, "{seen:?}");
    assert!(seen[1..].iter().all(|h| h.resumed), "{seen:?}");
}

#[tokio::test]
async fn a_certificate_for_another_name_is_502() {
    let origin = origin().await;
    let ca = Pki::named("origin CA");
    let front = TlsOrigin::start(&origin, &ca, &["elsewhere.example"]).await;
    let edge = Node::edge(&[format!("{}{}", front.url(), ca.option())]).await;
    let (status, _, cs, _) = get(&client(), &edge.url("/x")).await;
    assert_eq!(status, 502, "{cs}");
    assert_eq!(origin.count(), 0);
}

#[tokio::test]
async fn sni_names_the_certificate_and_an_ip_literal_sends_none() {
    let origin = origin().await;
    let ca = Pki::named("origin CA");
    // Reached by address, checked as origin.example.
    let named = TlsOrigin::start(&origin, &ca, &["origin.example"]).await;
    let by_ip = TlsOrigin::start(&origin, &ca, &["127.0.0.1"]).await;
    let c = client();
    let edge = Node::edge(&[format!(
        "https://{}{};sni=origin.example",
        named.addr,
        ca.option()
    )])
    .await;
    let (status, _, cs, _) = get(&c, &edge.url("/named")).await;
    assert_eq!(status, 200, "{cs}");
    assert_eq!(named.handshakes(), [http11(Some("origin.example"))]);
    assert_eq!(origin.last().header("host"), Some(HOST));

    let edge = Node::edge(&[format!("https://{}{}", by_ip.addr, ca.option())]).await;
    let (status, _, cs, _) = get(&c, &edge.url("/ip")).await;
    assert_eq!(status, 200, "{cs}");
    assert_eq!(by_ip.handshakes(), [http11(None)]);
}

#[tokio::test]
async fn insecure_skip_verify_accepts_any_certificate_and_shows_in_stats() {
    let origin = origin().await;
    let other = Pki::named("unknown CA");
    let front = TlsOrigin::start(&origin, &other, &["elsewhere.example"]).await;
    let edge = Node::edge(&[format!("{};insecure-skip-verify", front.url())]).await;
    let c = client();
    let (status, _, cs, body) = get(&c, &edge.url("/y")).await;
    assert_eq!((status, body.as_str()), (200, "body of /y"), "{cs}");
    let stats = edge.stats(&c).await;
    assert_eq!(
        stats["upstreams"][0]["tls_insecure_skip_verify"], true,
        "{stats}"
    );
}

#[tokio::test]
async fn a_connect_failing_verification_goes_to_the_next_upstream() {
    let origin = origin().await;
    let (right, other) = (Pki::named("right CA"), Pki::named("other CA"));
    let bad = TlsOrigin::start(&origin, &other, &["localhost"]).await;
    let good = TlsOrigin::start(&origin, &right, &["localhost"]).await;
    // Both trust `right`: one upstream's certificate fails, the other's not.
    let edge = Node::edge(&[
        format!("{}{}", bad.url(), right.option()),
        format!("{}{}", good.url(), right.option()),
    ])
    .config(|c| c.health.interval = Some("0s".parse().expect("duration")))
    .await;
    let c = client();
    // Keys hash over both; with 16 the chance none picks `bad` first is 2^-16.
    for i in 0..16 {
        let (status, _, cs, _) = get(&c, &edge.url(&format!("/k{i}"))).await;
        assert_eq!(status, 200, "/k{i}: {cs}");
    }
    let stats = edge.stats(&c).await;
    let failures = |url: &str| {
        stats["upstreams"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|u| u["url"] == url)
            .map(|u| u["failures"].as_u64().unwrap_or(0))
    };
    assert!(failures(&bad.url()).is_some_and(|n| n >= 1), "{stats}");
    assert_eq!(failures(&good.url()), Some(0), "{stats}");
}

#[tokio::test]
async fn the_connect_timeout_covers_a_stalled_handshake() {
    // Accepts TCP and never answers the TLS hello.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = silent.local_addr().expect("addr");
    let ca = Pki::named("origin CA");
    let edge = Node::edge_with(meridian_edge::FileConfig {
        upstream: vec![format!("https://localhost:{}{}", addr.port(), ca.option())],
        timeouts: meridian_edge::config::TimeoutSection {
            connect: Some("200ms".parse().expect("duration")),
            response: Some("20s".parse().expect("duration")),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        client().get(edge.url("/stall")).send(),
    )
    .await
    .expect("answered before the response timeout")
    .expect("send");
    assert_eq!(r.status(), 502);
    assert!(
        cache_status(&r).contains("detail=upstream-connect"),
        "{}",
        cache_status(&r)
    );
    drop(silent);
}

#[test]
fn a_missing_ca_file_or_an_unknown_option_names_the_key() {
    let edge = |upstream: &str| {
        meridian_edge::FileConfig {
            upstream: vec![upstream.to_owned()],
            ..Default::default()
        }
        .validate("edge.toml")
        .expect_err(upstream)
        .to_string()
    };
    let e = edge("https://localhost:8443;ca=/no/such/ca.pem");
    assert!(
        e.contains("edge.toml") && e.contains("`upstream`") && e.contains("/no/such/ca.pem"),
        "{e}"
    );
    let e = edge("https://localhost:8443;verify=no");
    assert!(
        e.contains("`upstream`") && e.contains("unknown option `verify=no`"),
        "{e}"
    );
    let e = meridian_edge::FileConfig {
        upstream: vec!["https://localhost:8443".into()],
        upstream_ca: Some("/no/such/ca.pem".into()),
        ..Default::default()
    }
    .validate("edge.toml")
    .expect_err("missing upstream-ca")
    .to_string();
    assert!(
        e.contains("`upstream-ca`") && e.contains("/no/such/ca.pem"),
        "{e}"
    );
}
