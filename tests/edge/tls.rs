//! TLS termination (issue 12): certificates picked by SNI, TLS 1.2 and
//! 1.3, h2 by ALPN, the scheme in the cache key and `X-Forwarded-Proto`,
//! reload without dropping a connection, the plain listener's redirect,
//! the handshake timeout and session resumption. Clients are curl and a
//! rustls client that reports the certificate it was served.

use std::time::Duration;

use rustls::version::{TLS12, TLS13};
use tokio::io::AsyncReadExt;

use crate::support::tls::{Conn, Pki, STEP, handshake, leaf_der, tls_edge, tls_section};
use crate::support::{Node, Origin, Reply, client, eventually};

/// A cacheable answer naming the path, and whether the request came over TLS.
async fn origin() -> Origin {
    Origin::start(|s| {
        Reply::ok(format!(
            "{} via {}",
            s.path,
            s.header("x-forwarded-proto").unwrap_or("-")
        ))
        .header("cache-control", "max-age=60")
    })
    .await
}

fn cache_status(h: &http::HeaderMap) -> &str {
    h.get("cache-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// `curl --cacert CA --resolve NAME:PORT:127.0.0.1 https://NAME:PORT/PATH`:
/// the exit status, the body and curl's verbose log.
async fn curl(
    pki: &Pki,
    name: &str,
    port: u16,
    path: &str,
    extra: &[&str],
) -> (bool, String, String) {
    let out = tokio::time::timeout(
        STEP,
        tokio::process::Command::new("curl")
            .args(["-sS", "-v", "--max-time", "5", "--cacert"])
            .arg(&pki.ca_file)
            .arg("--resolve")
            .arg(format!("{name}:{port}:127.0.0.1"))
            .args(extra)
            .arg(format!("https://{name}:{port}{path}"))
            .output(),
    )
    .await
    .expect("curl in time")
    .expect("curl runs (apt-get install curl)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn curl_over_https_gets_the_certificate_its_sni_names() {
    let origin = origin().await;
    let pki = Pki::new();
    let a = pki.issue("a", &["a.test", "127.0.0.1"]);
    let b = pki.issue("b", &["*.b.test"]);
    let edge = tls_edge(&origin.url(), &[a.clone(), b.clone()]).await;
    let port = edge.tls_addr().port();

    // curl checks the served certificate against the name: a wrong pick
    // fails the handshake.
    for (name, subject) in [("a.test", "CN=a.test"), ("www.b.test", "CN=*.b.test")] {
        let (ok, body, log) = curl(&pki, name, port, "/hello", &[]).await;
        assert!(ok, "{name}: {log}");
        assert_eq!(body, "/hello via https", "{name}");
        assert!(log.contains(subject), "{name} served {subject}: {log}");
    }

    // The rustls client compares the exact certificate; no SNI (an IP
    // address) or an unknown name gets the first one.
    let config = pki.client(&[&TLS13], &[b"http/1.1"]);
    for (sni, want) in [("a.test", &a), ("img.b.test", &b), ("127.0.0.1", &a)] {
        let mut conn = Conn::open(edge.tls_addr(), sni, config.clone()).await;
        assert_eq!(conn.leaf, leaf_der(want), "{sni}");
        let (status, _, _) = conn.get(sni, "/x").await;
        assert_eq!(status, 200, "{sni}");
    }
    let unknown = handshake(edge.tls_addr(), "other.test", config).await;
    assert!(
        unknown.is_err(),
        "other.test gets the default certificate, which does not name it"
    );
}

#[tokio::test]
async fn tls_1_2_and_1_3_both_work() {
    let origin = origin().await;
    let pki = Pki::new();
    let edge = tls_edge(&origin.url(), &[pki.issue("a", &["a.test"])]).await;
    for (version, want) in [
        (&TLS12, rustls::ProtocolVersion::TLSv1_2),
        (&TLS13, rustls::ProtocolVersion::TLSv1_3),
    ] {
        let mut conn = Conn::open(edge.tls_addr(), "a.test", pki.client(&[version], &[])).await;
        assert_eq!(conn.version, Some(want));
        let (status, _, body) = conn.get("a.test", "/v").await;
        assert_eq!(
            (status.as_u16(), body.as_str()),
            (200, "/v via https"),
            "{want:?}"
        );
    }
}

#[tokio::test]
async fn h2_over_tls_end_to_end_is_answered_from_the_cache() {
    let origin = origin().await;
    let pki = Pki::new();
    let edge = tls_edge(&origin.url(), &[pki.issue("a", &["a.test"])]).await;
    let mut conn = Conn::open(
        edge.tls_addr(),
        "a.test",
        pki.client(&[&TLS13, &TLS12], &[b"h2", b"http/1.1"]),
    )
    .await;
    assert!(conn.h2, "ALPN chose h2");
    let (status, headers, body) = conn.get("a.test", "/h2").await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "/h2 via https"));
    assert!(cache_status(&headers).contains("miss"), "{headers:?}");
    let (status, headers, body) = conn.get("a.test", "/h2").await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "/h2 via https"));
    assert!(cache_status(&headers).contains("; hit"), "{headers:?}");
    assert_eq!(origin.count_path("/h2"), 1);

    // And curl, which speaks h2 when ALPN offers it.
    let (ok, body, log) = curl(&pki, "a.test", edge.tls_addr().port(), "/h2", &["--http2"]).await;
    assert!(ok, "{log}");
    assert_eq!(body, "/h2 via https");
    assert!(log.contains("HTTP/2 200"), "{log}");
}

#[tokio::test]
async fn https_and_http_are_distinct_cache_entries_and_the_origin_hears_https() {
    let origin = origin().await;
    let pki = Pki::new();
    let edge = tls_edge(&origin.url(), &[pki.issue("a", &["a.test"])]).await;
    let mut conn = Conn::open(edge.tls_addr(), "a.test", pki.client(&[&TLS13], &[])).await;
    for want in ["miss", "; hit"] {
        let (_, headers, body) = conn.get("a.test", "/same").await;
        assert_eq!(body, "/same via https");
        assert!(cache_status(&headers).contains(want), "{want}: {headers:?}");
    }
    assert_eq!(origin.last().header("x-forwarded-proto"), Some("https"));

    let c = client();
    for want in ["miss", "; hit"] {
        let r = c
            .get(edge.url("/same"))
            .header("host", "a.test")
            .send()
            .await
            .expect("plain");
        let cs = crate::support::cache_status(&r);
        assert_eq!(r.text().await.expect("body"), "/same via http");
        assert!(cs.contains(want), "plain {want}: {cs}");
    }
    assert_eq!(origin.count_path("/same"), 2, "one fill per scheme");
}

#[tokio::test]
async fn reload_serves_new_certificates_to_new_connections_and_keeps_open_ones() {
    let origin = origin().await;
    let pki = Pki::new();
    let old = pki.issue("a", &["a.test"]);
    let old_der = leaf_der(&old);
    let edge = tls_edge(&origin.url(), std::slice::from_ref(&old)).await;
    let config = pki.client(&[&TLS13], &[]);
    let mut kept = Conn::open(edge.tls_addr(), "a.test", config.clone()).await;
    assert_eq!(kept.get("a.test", "/1").await.0, 200);

    let new = pki.issue("a", &["a.test"]);
    let new_der = leaf_der(&new);
    assert_ne!(old_der, new_der);
    edge.certs().reload().expect("reloads");
    // A client of its own: one resuming a session would not be sent a
    // certificate at all and would report the session's.
    let fresh = Conn::open(edge.tls_addr(), "a.test", pki.client(&[&TLS13], &[])).await;
    assert_eq!(
        fresh.leaf, new_der,
        "a new connection sees the new certificate"
    );
    assert_eq!(kept.leaf, old_der);
    let (status, _, body) = kept.get("a.test", "/2").await;
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (200, "/2 via https"),
        "the open connection still answers"
    );

    // A broken certificate is refused and the one in use stays.
    std::fs::write(
        &new.cert,
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    let e = edge.certs().reload().expect_err("broken file");
    assert!(e.to_string().contains("a.crt"), "{e}");
    let after = Conn::open(edge.tls_addr(), "a.test", pki.client(&[&TLS13], &[])).await;
    assert_eq!(after.leaf, new_der, "the old certificates are kept");
    assert_eq!(kept.get("a.test", "/3").await.0, 200);
}

#[tokio::test]
async fn a_changed_certificate_file_is_picked_up_without_a_signal() {
    let origin = origin().await;
    let pki = Pki::new();
    let edge = tls_edge(&origin.url(), &[pki.issue("a", &["a.test"])]).await;
    let mut kept = Conn::open(edge.tls_addr(), "a.test", pki.client(&[&TLS13], &[])).await;
    let new_der = leaf_der(&pki.issue("a", &["a.test"]));
    let addr = edge.tls_addr();
    eventually(
        "a new connection is served the replaced file",
        Duration::from_secs(5),
        || {
            // A new client each time, so that no session is resumed.
            let config = pki.client(&[&TLS13], &[]);
            let new_der = new_der.clone();
            async move { Conn::open(addr, "a.test", config).await.leaf == new_der }
        },
    )
    .await;
    assert_eq!(
        kept.get("a.test", "/k").await.0,
        200,
        "the open connection still answers"
    );
}

#[tokio::test]
async fn the_plain_listener_can_redirect_to_https_with_308() {
    let origin = origin().await;
    let pki = Pki::new();
    let edge = tls_edge(&origin.url(), &[pki.issue("a", &["a.test"])])
        .config(|c| c.tls.redirect_plain = Some(true))
        .await;
    let port = edge.tls_addr().port();
    let c = client();
    let r = c
        .get(edge.url("/a/b?c=1&d=%20"))
        .header("host", "A.Test:8080")
        .send()
        .await
        .expect("plain");
    assert_eq!(r.status(), 308);
    assert_eq!(
        r.headers()["location"],
        format!("https://a.test:{port}/a/b?c=1&d=%20").as_str()
    );
    // 308 keeps the method: a POST is redirected, not proxied.
    let r = c
        .post(edge.url("/form"))
        .header("host", "a.test")
        .body("x")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 308);
    let r = c
        .get(edge.url("/x"))
        .header("host", "bad host")
        .send()
        .await
        .expect("bad host");
    assert_eq!(r.status(), 400, "no Location built from an invalid host");
    assert_eq!(origin.count(), 0, "nothing was proxied");
    // The tier below may still poll the health path over plain HTTP.
    let r = c
        .get(edge.url(meridian_proxy::PROXY_HEALTH_PATH))
        .send()
        .await
        .expect("health");
    assert_eq!(r.status(), 200);
    // The redirect's target answers.
    let (ok, body, log) = curl(&pki, "a.test", port, "/a/b?c=1&d=%20", &[]).await;
    assert!(ok, "{log}");
    assert_eq!(body, "/a/b?c=1&d=%20 via https");
}

#[tokio::test]
async fn a_client_that_sends_nothing_is_dropped_after_the_handshake_timeout() {
    let origin = origin().await;
    let pki = Pki::new();
    let edge = tls_edge(&origin.url(), &[pki.issue("a", &["a.test"])])
        .config(|c| {
            c.tls.handshake_timeout =
                Some(meridian_common::HumanDuration(Duration::from_millis(300)))
        })
        .await;
    let mut silent = tokio::net::TcpStream::connect(edge.tls_addr())
        .await
        .expect("connect");
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf))
        .await
        .expect("the edge closes a silent connection well before 5s");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "closed, not answered: {read:?}"
    );
    // Real clients are still served.
    let mut conn = Conn::open(edge.tls_addr(), "a.test", pki.client(&[&TLS13], &[])).await;
    assert_eq!(conn.get("a.test", "/after").await.0, 200);
}

#[tokio::test]
async fn a_returning_client_resumes_its_session_on_tls_1_2_and_1_3() {
    let origin = origin().await;
    let pki = Pki::new();
    let edge = tls_edge(&origin.url(), &[pki.issue("a", &["a.test"])]).await;
    for version in [&TLS13, &TLS12] {
        let config = pki.client(&[version], &[]);
        let mut first = Conn::open(edge.tls_addr(), "a.test", config.clone()).await;
        assert!(!first.resumed);
        // TLS 1.3 tickets arrive after the handshake: read an answer first.
        assert_eq!(first.get("a.test", "/r").await.0, 200);
        let mut again = Conn::open(edge.tls_addr(), "a.test", config).await;
        assert!(again.resumed, "{:?} resumed", version.version);
        assert_eq!(again.get("a.test", "/r").await.0, 200);
    }
}

#[tokio::test]
async fn a_shield_terminates_tls_too() {
    let origin = origin().await;
    let pki = Pki::new();
    let tls = tls_section(&[pki.issue("shield", &["shield.test"])]);
    let shield = Node::shield(&[origin.url()])
        .config(move |c| c.tls = tls)
        .await;
    let mut conn = Conn::open(
        shield.tls_addr(),
        "shield.test",
        pki.client(&[&TLS13], &[b"h2"]),
    )
    .await;
    let (status, _, body) = conn.get("shield.test", "/s").await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "/s via https"));
}

/// Issue 12: an edge reaches its shield over TLS (the link that crosses an
/// untrusted network), verifying the shield's certificate by SNI against
/// the cluster's CA; the miss, then the hit, carry the origin's bytes.
#[tokio::test]
async fn an_edge_reaches_its_shield_over_tls() {
    let origin = origin().await;
    let pki = Pki::new();
    let tls = tls_section(&[pki.issue("shield", &["shield.test"])]);
    let shield = Node::shield(&[origin.url()])
        .config(move |c| c.tls = tls)
        .await;
    let upstream = format!(
        "https://127.0.0.1:{};sni=shield.test{}",
        shield.tls_addr().port(),
        pki.option()
    );
    let edge = Node::edge(&[upstream]).await;
    let c = client();
    for expect in ["fwd=miss", "hit"] {
        let r = c
            .get(edge.url("/over-tls"))
            .header("host", "site.test")
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 200);
        let status = r
            .headers()
            .get("cache-status")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        assert!(status.contains(expect), "{status}");
        let body = r.text().await.expect("body");
        assert!(body.starts_with("/over-tls via "), "{body}");
    }
    assert_eq!(origin.count_path("/over-tls"), 1);
}
