//! One authority per request (issue 8, item 1): the absolute-form target
//! or the single `Host` is the cache key's host and the upstream `Host`;
//! `site-host` and `accept-hosts`. Attacks are sent as raw bytes, the way
//! an attacker would, and what the origin saw is read from its records.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Node, Origin, Reply, cache_status, client};

/// A response read off the wire.
#[derive(Debug)]
pub struct Raw {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Raw {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Sends `request` (which should ask for `Connection: close`) on a new
/// connection and reads the whole answer, de-chunking the body.
pub async fn raw(addr: SocketAddr, request: &str) -> Raw {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(request.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("answered in time")
        .expect("read");
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head");
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let mut rest = &buf[split + 4..];
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        let mut body = Vec::new();
        // Bounded: every round consumes at least the size line.
        loop {
            let line_end = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("chunk size");
            let size = usize::from_str_radix(
                std::str::from_utf8(&rest[..line_end])
                    .expect("ascii")
                    .trim(),
                16,
            )
            .expect("hex size");
            rest = &rest[line_end + 2..];
            if size == 0 {
                break;
            }
            body.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        body
    } else {
        rest.to_vec()
    };
    Raw { status, head, body }
}

/// An origin whose page names the host it was asked for, as an origin
/// building absolute links does.
async fn host_echo() -> Origin {
    Origin::start(|s| {
        Reply::ok(format!(
            "page for {} at {}",
            s.header("host").unwrap_or("-"),
            s.path
        ))
        .header("cache-control", "max-age=60")
    })
    .await
}

#[tokio::test]
async fn absolute_form_authority_is_keyed_and_forwarded_host_ignored_rfc9112_3_2_2() {
    let origin = host_echo().await;
    let edge = Node::edge(&[origin.url()]).await;
    // The attack: a victim's URL with the attacker's Host.
    let r = raw(
        edge.addr,
        "GET http://victim.example/p HTTP/1.1\r\nHost: attacker.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("cache-status")
            .is_some_and(|cs| cs.contains("fwd=miss"))
    );
    assert_eq!(r.body, b"page for victim.example at /p");
    let seen = origin.last();
    assert_eq!(seen.header("host"), Some("victim.example"));
    assert_eq!(seen.header("x-forwarded-host"), Some("victim.example"));
    assert_eq!(seen.path, "/p");
    // The victim's users get victim.example's bytes, from the cache.
    let c = client();
    let r = c
        .get(edge.url("/p"))
        .header("host", "victim.example")
        .send()
        .await
        .expect("send");
    assert!(cache_status(&r).contains("; hit"), "{}", cache_status(&r));
    assert_eq!(
        r.bytes().await.expect("body").as_ref(),
        b"page for victim.example at /p"
    );
    // attacker.example is its own site with its own entry.
    let r = c
        .get(edge.url("/p"))
        .header("host", "attacker.example")
        .send()
        .await
        .expect("send");
    assert_eq!(
        r.bytes().await.expect("body").as_ref(),
        b"page for attacker.example at /p"
    );
    assert_eq!(origin.count(), 2);
}

#[tokio::test]
async fn two_host_headers_missing_or_invalid_host_are_400_rfc9112_3_2() {
    let origin = host_echo().await;
    let edge = Node::edge(&[origin.url()]).await;
    for request in [
        "GET /p HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n",
        "GET /p HTTP/1.1\r\nHost: a.example\r\nHost: a.example\r\nConnection: close\r\n\r\n",
        "GET http://a.example/p HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n",
        "GET /p HTTP/1.1\r\nConnection: close\r\n\r\n",
        "GET /p HTTP/1.1\r\nHost: user@a.example\r\nConnection: close\r\n\r\n",
        "GET /p HTTP/1.1\r\nHost: a.example:99999\r\nConnection: close\r\n\r\n",
        "GET /p HTTP/1.1\r\nHost: a%2eexample\r\nConnection: close\r\n\r\n",
    ] {
        let r = raw(edge.addr, request).await;
        assert_eq!(r.status, 400, "{request:?}");
    }
    assert_eq!(origin.count(), 0, "nothing reached the origin");
}

#[tokio::test]
async fn host_is_normalised_once_for_the_key_and_the_upstream_host() {
    let origin = host_echo().await;
    let edge = Node::edge(&[origin.url()]).await;
    let c = client();
    let r = c
        .get(edge.url("/n"))
        .header("host", "A.EXAMPLE:80")
        .send()
        .await
        .expect("send");
    assert_eq!(
        r.bytes().await.expect("body").as_ref(),
        b"page for a.example at /n"
    );
    assert_eq!(origin.last().header("host"), Some("a.example"));
    for host in ["a.example", "a.example.", "a.example:080"] {
        let r = c
            .get(edge.url("/n"))
            .header("host", host)
            .send()
            .await
            .expect("send");
        assert!(cache_status(&r).contains("; hit"), "{host}");
        assert_eq!(
            r.bytes().await.expect("body").as_ref(),
            b"page for a.example at /n"
        );
    }
    // A non-default port is a different site.
    let r = c
        .get(edge.url("/n"))
        .header("host", "a.example:8080")
        .send()
        .await
        .expect("send");
    assert_eq!(
        r.bytes().await.expect("body").as_ref(),
        b"page for a.example:8080 at /n"
    );
    assert_eq!(origin.count(), 2);
}

#[tokio::test]
async fn site_host_serves_every_authority_as_the_site() {
    let origin = host_echo().await;
    let edge = Node::edge_with(meridian_edge::FileConfig {
        upstream: vec![origin.url()],
        name: Some("edge-1".into()),
        site_host: Some("Shop.Example".into()),
        ..Default::default()
    })
    .await;
    let c = client();
    // reqwest sends the edge's address as Host.
    let r = c.get(edge.url("/s")).send().await.expect("send");
    assert_eq!(
        r.bytes().await.expect("body").as_ref(),
        b"page for shop.example at /s"
    );
    let seen = origin.last();
    assert_eq!(seen.header("host"), Some("shop.example"));
    assert_eq!(seen.header("x-forwarded-host"), Some("shop.example"));
    for host in ["other.example", "shop.example"] {
        let r = c
            .get(edge.url("/s"))
            .header("host", host)
            .send()
            .await
            .expect("send");
        assert!(cache_status(&r).contains("; hit"), "{host}");
        assert_eq!(
            r.bytes().await.expect("body").as_ref(),
            b"page for shop.example at /s"
        );
    }
    // An HTTP/1.0 client without Host is served as the site too.
    let r = raw(edge.addr, "GET /s HTTP/1.0\r\n\r\n").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"page for shop.example at /s");
    // Two Host lines are still refused.
    let r = raw(
        edge.addr,
        "GET /s HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(origin.count(), 1);
}

#[tokio::test]
async fn accept_hosts_answers_other_authorities_with_421_rfc9110_15_5_20() {
    let origin = host_echo().await;
    let edge = Node::edge_with(meridian_edge::FileConfig {
        upstream: vec![origin.url()],
        accept_hosts: Some(vec!["shop.example".into(), "*.cdn.example".into()]),
        ..Default::default()
    })
    .await;
    let c = client();
    for (host, want) in [
        ("shop.example", 200),
        ("SHOP.example:8080", 200),
        ("img.cdn.example", 200),
        ("cdn.example", 421),
        ("evil.example", 421),
        ("shop.example.evil.example", 421),
    ] {
        let r = c
            .get(edge.url("/a"))
            .header("host", host)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status().as_u16(), want, "{host}");
    }
    let r = raw(
        edge.addr,
        "GET http://evil.example/a HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(
        r.status, 421,
        "the absolute-form authority is the one checked"
    );
    assert_eq!(origin.count(), 3);
    // A lower tier's health check on the node's own address still works.
    let r = c
        .get(edge.url(meridian_proxy::PROXY_HEALTH_PATH))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn vary_uses_the_fields_left_after_connection_options_are_removed_rfc9110_7_6_1() {
    let origin = Origin::start(|s| {
        Reply::ok(format!(
            "lang={}",
            s.header("accept-language").unwrap_or("-")
        ))
        .header("cache-control", "max-age=60")
        .header("vary", "accept-language")
    })
    .await;
    let edge = Node::edge(&[origin.url()]).await;
    // The attack: a field the client marks hop-by-hop is not forwarded, so
    // the origin answers its default page; that must not become the `fr`
    // variant.
    let r = raw(
        edge.addr,
        "GET /v HTTP/1.1\r\nHost: v.example\r\nAccept-Language: fr\r\n\
         Connection: accept-language, close\r\n\r\n",
    )
    .await;
    assert_eq!(r.body, b"lang=-");
    assert_eq!(origin.last().header("accept-language"), None);
    let c = client();
    let r = c
        .get(edge.url("/v"))
        .header("host", "v.example")
        .header("accept-language", "fr")
        .send()
        .await
        .expect("send");
    assert_eq!(r.bytes().await.expect("body").as_ref(), b"lang=fr");
    assert_eq!(origin.last().header("accept-language"), Some("fr"));
    // Both variants are now stored, each under what the origin saw.
    let r = c
        .get(edge.url("/v"))
        .header("host", "v.example")
        .send()
        .await
        .expect("send");
    assert!(cache_status(&r).contains("; hit"), "{}", cache_status(&r));
    assert_eq!(r.bytes().await.expect("body").as_ref(), b"lang=-");
    let r = c
        .get(edge.url("/v"))
        .header("host", "v.example")
        .header("accept-language", "fr")
        .send()
        .await
        .expect("send");
    assert!(cache_status(&r).contains("; hit"), "{}", cache_status(&r));
    assert_eq!(r.bytes().await.expect("body").as_ref(), b"lang=fr");
    assert_eq!(origin.count(), 2);
}
