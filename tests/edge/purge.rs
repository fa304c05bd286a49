//! Purges on one node (issue 9, item 2), seen from the client: after a
//! purge the next request is a miss (hard) or a revalidation (soft); a URL
//! purge takes every Vary variant and is keyed exactly as requests are; a
//! prefix stays on its host; tags come from `Surrogate-Key` and
//! `Cache-Tag`; a purge during a fill outlives the fill; `PURGE` on the
//! proxy listener is authenticated and never reaches the origin.

use std::time::Duration;

use futures_util::StreamExt;
use http::Method;
use meridian_common::auth::Scope;
use serde_json::{Value, json};

use crate::support::{
    Node, Origin, Reply, StreamOrigin, StreamSpec, cache_status, client, fast_health,
};

/// A token with the `purge` scope.
pub const OPS: &str = "ops-secret-0123456789";
/// A token with only the `read` scope.
pub const READER: &str = "reader-secret-0123456789";

const HOST: &str = "cdn.example";

/// Bounds every wait, so a regression fails instead of hanging.
const WAIT: Duration = Duration::from_secs(10);

/// `POST /purge` with the `purge` token; asserts 200 and returns the JSON.
pub async fn purge(c: &reqwest::Client, node: &Node, body: Value) -> Value {
    let r = c
        .post(node.admin_url("/purge"))
        .bearer_auth(OPS)
        .json(&body)
        .send()
        .await
        .expect("purge");
    let status = r.status();
    let text = r.text().await.expect("body");
    assert_eq!(status, 200, "purge {body}: {text}");
    serde_json::from_str(&text).expect("purge answer is JSON")
}

/// GETs `path` on `node` for `host`; returns (Cache-Status, body).
async fn fetch(c: &reqwest::Client, node: &Node, host: &str, path: &str) -> (String, String) {
    let r = c
        .get(node.url(path))
        .header("host", host)
        .send()
        .await
        .expect("request");
    assert!(r.status().is_success(), "{path}: {}", r.status());
    let cs = cache_status(&r);
    (cs, r.text().await.expect("body"))
}

fn is_hit(cs: &str) -> bool {
    cs.contains("; hit")
}

/// An origin whose answers are cacheable for a minute, carry an ETag and
/// name the path and how many times it was asked for it; `/tagged...`
/// paths get surrogate keys.
async fn counting_origin() -> Origin {
    let n = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    Origin::start(move |s| {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let host = s.header("host").unwrap_or("?");
        let mut r = Reply::ok(format!("{host}{} #{i}", s.path))
            .header("cache-control", "public, max-age=60")
            .header("etag", "\"v1\"");
        match s.path.as_str() {
            "/s1" => r = r.header("surrogate-key", "a b"),
            "/s2" => r = r.header("surrogate-key", "b"),
            "/c1" => r = r.header("cache-tag", "x,y"),
            "/c2" => r = r.header("cache-tag", "y"),
            _ => {}
        }
        r
    })
    .await
}

async fn guarded_edge(origin: &Origin) -> Node {
    Node::edge(&[origin.url()])
        .admin_token("ops", OPS, &[Scope::Purge])
        .await
}

#[tokio::test]
async fn url_purge_takes_every_vary_variant() {
    let origin = Origin::start(|s| {
        Reply::ok(format!(
            "{} {}",
            s.path,
            s.header("accept-encoding").unwrap_or("-")
        ))
        .header("cache-control", "max-age=60")
        .header("vary", "Accept-Encoding")
    })
    .await;
    let edge = guarded_edge(&origin).await;
    let c = client();
    let get = |path: &'static str, enc: &'static str| {
        let (c, url) = (c.clone(), edge.url(path));
        async move {
            let r = c
                .get(url)
                .header("host", HOST)
                .header("accept-encoding", enc)
                .send()
                .await
                .expect("get");
            cache_status(&r)
        }
    };
    for round in 0..2 {
        for enc in ["gzip", "br"] {
            let cs = get("/v", enc).await;
            assert_eq!(is_hit(&cs), round == 1, "round {round} {enc}: {cs}");
        }
    }
    get("/other", "gzip").await;
    let answer = purge(&c, &edge, json!({"urls": ["http://cdn.example/v"]})).await;
    assert_eq!(answer["entries"], 2, "both variants: {answer}");
    assert_eq!(answer["kinds"], json!(["url"]));
    // The first refills the URL, so the other is a vary-miss: not a hit.
    for enc in ["gzip", "br"] {
        let cs = get("/v", enc).await;
        assert!(
            cs.contains("fwd=miss") || cs.contains("fwd=vary-miss"),
            "{enc} after purge: {cs}"
        );
    }
    assert_eq!(origin.count_path("/v"), 4);
    assert!(is_hit(&get("/other", "gzip").await), "another URL stays");
}

#[tokio::test]
async fn url_purge_is_normalised_as_the_cache_key_is() {
    let origin = counting_origin().await;
    let edge = Node::edge(&[origin.url()])
        .admin_token("ops", OPS, &[Scope::Purge])
        .config(|c| c.cache.sort_query = Some(true))
        .await;
    let c = client();
    for path in ["/a?x", "/s?a=1&b=2"] {
        fetch(&c, &edge, HOST, path).await;
        assert!(is_hit(&fetch(&c, &edge, HOST, path).await.0), "{path}");
    }
    fetch(&c, &edge, "other.example", "/a?x").await;

    // Scheme and host in any case, the default port written out.
    let answer = purge(&c, &edge, json!({"urls": ["HTTP://Cdn.Example:80/a?x"]})).await;
    assert_eq!(answer["entries"], 1, "{answer}");
    assert!(fetch(&c, &edge, HOST, "/a?x").await.0.contains("fwd=miss"));
    assert!(
        is_hit(&fetch(&c, &edge, "other.example", "/a?x").await.0),
        "another host is another resource"
    );

    // With cache.sort-query on, the purge's query is sorted as well.
    let answer = purge(&c, &edge, json!({"urls": ["http://cdn.example/s?b=2&a=1"]})).await;
    assert_eq!(answer["entries"], 1, "{answer}");
    assert!(
        fetch(&c, &edge, HOST, "/s?a=1&b=2")
            .await
            .0
            .contains("fwd=miss")
    );

    // No scheme: both; a fragment is not part of what was requested.
    let answer = purge(&c, &edge, json!({"urls": ["cdn.example/a?x#top"]})).await;
    assert_eq!(answer["entries"], 1, "{answer}");
    assert!(fetch(&c, &edge, HOST, "/a?x").await.0.contains("fwd=miss"));
    assert_eq!(origin.count_path("/a?x"), 4, "two hosts, two purges");
}

#[tokio::test]
async fn prefix_purge_takes_that_prefix_on_that_host_only() {
    let origin = counting_origin().await;
    let edge = guarded_edge(&origin).await;
    let c = client();
    let warm = [
        (HOST, "/img/a"),
        (HOST, "/img/b"),
        (HOST, "/imgx"),
        (HOST, "/img"),
        ("other.example", "/img/a"),
    ];
    for (host, path) in warm {
        fetch(&c, &edge, host, path).await;
    }
    let answer = purge(&c, &edge, json!({"prefixes": ["cdn.example/img/"]})).await;
    assert_eq!(answer["entries"], 2, "{answer}");
    assert_eq!(answer["kinds"], json!(["prefix"]));
    for (host, path) in warm {
        let cs = fetch(&c, &edge, host, path).await.0;
        let purged = host == HOST && path.starts_with("/img/");
        assert_eq!(!is_hit(&cs), purged, "{host}{path}: {cs}");
    }
}

#[tokio::test]
async fn tag_purge_by_surrogate_key_and_cache_tag() {
    let origin = counting_origin().await;
    let edge = guarded_edge(&origin).await;
    let c = client();
    let paths = ["/s1", "/s2", "/c1", "/c2", "/plain"];
    for p in paths {
        fetch(&c, &edge, HOST, p).await;
    }
    // (tags, what they take): `Surrogate-Key` is space separated,
    // `Cache-Tag` comma separated.
    let steps: [(&[&str], &[&str]); 3] = [
        (&["a"], &["/s1"]),
        (&["x"], &["/c1"]),
        (&["b", "y"], &["/s1", "/s2", "/c1", "/c2"]),
    ];
    for (tags, taken) in steps {
        // Every path is stored again first (the previous step's misses
        // refilled it).
        for p in paths {
            fetch(&c, &edge, HOST, p).await;
        }
        let answer = purge(&c, &edge, json!({ "tags": tags })).await;
        assert_eq!(answer["entries"], taken.len(), "{tags:?}: {answer}");
        for p in paths {
            let cs = fetch(&c, &edge, HOST, p).await.0;
            assert_eq!(!is_hit(&cs), taken.contains(&p), "{tags:?} {p}: {cs}");
        }
    }
}

#[tokio::test]
async fn purge_all_empties_the_node() {
    let origin = counting_origin().await;
    let edge = guarded_edge(&origin).await;
    let c = client();
    for p in ["/1", "/2", "/3"] {
        fetch(&c, &edge, HOST, p).await;
    }
    let answer = purge(&c, &edge, json!({"all": true})).await;
    assert_eq!(answer["entries"], 3, "{answer}");
    assert_eq!(answer["kinds"], json!(["all"]));
    assert_eq!(edge.stats(&c).await["entries"], 0);
    for p in ["/1", "/2", "/3"] {
        assert!(fetch(&c, &edge, HOST, p).await.0.contains("fwd=miss"));
    }
}

#[tokio::test]
async fn soft_purge_revalidates_and_keeps_a_copy_for_stale_if_error() {
    let origin = Origin::start(|s| {
        if s.header("if-none-match") == Some("\"v1\"") {
            return Reply::ok("").status(304).header("etag", "\"v1\"");
        }
        Reply::ok(format!("body of {}", s.path))
            .header("cache-control", "max-age=60, stale-if-error=600")
            .header("etag", "\"v1\"")
    })
    .await;
    let mut origin = origin;
    let edge = guarded_edge(&origin).await;
    let c = client();
    for p in ["/soft", "/hard"] {
        fetch(&c, &edge, HOST, p).await;
    }

    let answer = purge(
        &c,
        &edge,
        json!({"urls": ["http://cdn.example/soft"], "soft": true}),
    )
    .await;
    assert_eq!(
        (answer["soft"].clone(), answer["entries"].clone()),
        (json!(true), json!(1))
    );
    let (cs, body) = fetch(&c, &edge, HOST, "/soft").await;
    assert!(cs.contains("fwd=stale"), "a revalidation: {cs}");
    assert_eq!(body, "body of /soft");
    assert_eq!(origin.last().header("if-none-match"), Some("\"v1\""));
    assert!(
        is_hit(&fetch(&c, &edge, HOST, "/soft").await.0),
        "304 freshened it"
    );

    // Origin down: the soft-purged copy is still there for stale-if-error,
    // the hard-purged one is gone.
    purge(
        &c,
        &edge,
        json!({"urls": ["http://cdn.example/soft"], "soft": true}),
    )
    .await;
    purge(&c, &edge, json!({"urls": ["http://cdn.example/hard"]})).await;
    origin.stop().await;
    let (cs, body) = fetch(&c, &edge, HOST, "/soft").await;
    assert!(cs.contains("stale-if-error"), "{cs}");
    assert_eq!(body, "body of /soft");
    let r = c
        .get(edge.url("/hard"))
        .header("host", HOST)
        .send()
        .await
        .expect("request");
    assert!(r.status().is_server_error(), "{}", r.status());
    assert_ne!(r.text().await.expect("body"), "body of /hard");
}

#[tokio::test]
async fn a_soft_purged_copy_without_stale_if_error_is_not_served_on_error() {
    // Fresh for a minute, no stale-if-error, the grace turned off: once
    // soft-purged it is stale, and a stale copy with no allowance is not an
    // error answer. (With the default grace of 10 s it would be, which is
    // what a soft purge is for.)
    let mut origin = Origin::start(|s| {
        Reply::ok(format!("body of {}", s.path))
            .header("cache-control", "max-age=60")
            .header("etag", "\"v1\"")
    })
    .await;
    let edge = Node::edge_with(meridian_edge::FileConfig {
        name: Some("edge-1".into()),
        upstream: vec![origin.url()],
        health: fast_health(),
        cache: meridian_edge::config::CacheSection {
            stale_if_error_grace: Some("0s".parse().expect("duration")),
            ..Default::default()
        },
        ..Default::default()
    })
    .admin_token("ops", OPS, &[Scope::Purge])
    .await;
    let c = client();
    fetch(&c, &edge, HOST, "/plain").await;
    fetch(&c, &edge, HOST, "/kept").await;
    purge(
        &c,
        &edge,
        json!({"urls": ["http://cdn.example/plain"], "soft": true}),
    )
    .await;
    origin.stop().await;
    let r = c
        .get(edge.url("/plain"))
        .header("host", HOST)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 502, "{}", cache_status(&r));
    // The control: a copy that was not purged is still fresh and served.
    assert!(is_hit(&fetch(&c, &edge, HOST, "/kept").await.0));
}

/// Starts a fill of `/f` (the origin holds back the body), purges with
/// `body` while it runs, lets the fill finish, and checks that what it
/// fetched was not kept: the next request fetches again.
async fn purge_during_fill(body: Value) {
    let mut spec = StreamSpec::new(1000, 1000);
    spec.headers.push(("surrogate-key".into(), "t1".into()));
    let origin = StreamOrigin::start(spec.clone()).await;
    let edge = Node::edge(&[origin.url()])
        .admin_token("ops", OPS, &[Scope::Purge])
        .await;
    let c = client();
    let first = c
        .get(edge.url("/f"))
        .header("host", HOST)
        .send()
        .await
        .expect("the fill's head arrives");
    assert_eq!(origin.gets(), 1);
    let mut stream = first.bytes_stream();
    let head = tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("head in time");
    assert!(head.is_some(), "the fill is in flight");

    purge(&c, &edge, body.clone()).await;
    origin.release();
    let mut n = head.map_or(0, |b| b.map_or(0, |b| b.len()));
    while let Some(chunk) = tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("rest in time")
    {
        n += chunk.expect("body").len();
    }
    assert_eq!(n, spec.body().len(), "the first client got the whole body");

    let r = c
        .get(edge.url("/f"))
        .header("host", HOST)
        .send()
        .await
        .expect("second request");
    let cs = cache_status(&r);
    assert!(
        cs.contains("fwd=miss"),
        "{body}: the fill did not survive: {cs}"
    );
    assert_eq!(r.bytes().await.expect("body"), spec.body());
    assert_eq!(origin.gets(), 2, "{body}: fetched again");
}

#[tokio::test]
async fn url_purge_during_a_fill_does_not_survive_it() {
    purge_during_fill(json!({"urls": ["http://cdn.example/f"]})).await;
}

#[tokio::test]
async fn tag_purge_during_a_fill_does_not_survive_it() {
    purge_during_fill(json!({"tags": ["t1"]})).await;
}

fn purge_method() -> Method {
    Method::from_bytes(b"PURGE").expect("method")
}

#[tokio::test]
async fn purge_method_needs_a_token_and_is_never_forwarded() {
    let origin = counting_origin().await;
    let edge = Node::edge(&[origin.url()])
        .admin_token("ops", OPS, &[Scope::Purge])
        .admin_token("reader", READER, &[Scope::Read])
        .await;
    let c = client();
    fetch(&c, &edge, HOST, "/p").await;
    let send = |token: Option<&'static str>| {
        let mut rb = c
            .request(purge_method(), edge.url("/p"))
            .header("host", HOST);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        async move { rb.send().await.expect("purge") }
    };

    let r = send(None).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers().get("www-authenticate").map(|v| v.as_bytes()),
        Some(&b"Bearer"[..])
    );
    let r = send(Some("wrong-token-0123456789")).await;
    assert_eq!(r.status(), 401);
    let r = send(Some(READER)).await;
    assert_eq!(r.status(), 403);
    let err: Value = r.json().await.expect("json");
    assert!(
        err["error"].as_str().unwrap_or("").contains("purge"),
        "{err}"
    );
    assert!(
        is_hit(&fetch(&c, &edge, HOST, "/p").await.0),
        "refusals purge nothing"
    );

    let r = send(Some(OPS)).await;
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.expect("json");
    assert_eq!(answer["entries"], 1, "{answer}");
    assert_eq!(answer["soft"], false);
    assert_eq!(answer["tier"], "edge");
    assert!(fetch(&c, &edge, HOST, "/p").await.0.contains("fwd=miss"));
    assert!(
        origin.requests().iter().all(|s| s.method == Method::GET),
        "only GETs reached the origin: {:?}",
        origin
            .requests()
            .iter()
            .map(|s| &s.method)
            .collect::<Vec<_>>()
    );
    assert_eq!(origin.count_path("/p"), 2);
}

#[tokio::test]
async fn purge_method_soft_by_header() {
    let origin = counting_origin().await;
    let edge = guarded_edge(&origin).await;
    let c = client();
    for header in ["soft-purge", "fastly-soft-purge"] {
        fetch(&c, &edge, HOST, "/q").await;
        let r = c
            .request(purge_method(), edge.url("/q"))
            .header("host", HOST)
            .header(header, "1")
            .bearer_auth(OPS)
            .send()
            .await
            .expect("purge");
        assert_eq!(r.status(), 200);
        let answer: Value = r.json().await.expect("json");
        assert_eq!(answer["soft"], true, "{header}: {answer}");
        let before = origin.count_path("/q");
        let cs = fetch(&c, &edge, HOST, "/q").await.0;
        assert!(cs.contains("fwd=stale"), "{header}: a revalidation: {cs}");
        assert_eq!(origin.count_path("/q"), before + 1);
        assert_eq!(origin.last().header("if-none-match"), Some("\"v1\""));
    }
    assert!(origin.requests().iter().all(|s| s.method == Method::GET));
}
