//! Vary (behaviour 4) and the cache key (behaviour 5), and the worst bug a CDN
//! can have: serving one host's or one variant's bytes for another.

use crate::support::{Node, Origin, Reply, cache_status, client};

fn body_for(host: &str, enc: &str, path: &str) -> String {
    format!("host={host} encoding={enc} path={path}")
}

#[tokio::test]
async fn two_hosts_and_two_variants_never_mix() {
    let origin = Origin::start(|s| {
        let host = s.header("host").unwrap_or("?").to_string();
        let enc = s
            .header("accept-encoding")
            .unwrap_or("identity")
            .to_string();
        Reply::ok(body_for(&host, &enc, &s.path))
            .header("cache-control", "max-age=60")
            .header("vary", "Accept-Encoding")
    })
    .await;
    let edge = Node::edge(&[origin.url()]).await;
    let c = client();
    let hosts = ["a.example", "b.example"];
    let encs = ["gzip", "br"];
    for round in 0..3 {
        for host in hosts {
            for enc in encs {
                let r = c
                    .get(edge.url("/same/path"))
                    .header("host", host)
                    .header("accept-encoding", enc)
                    .send()
                    .await
                    .expect("send");
                let cs = cache_status(&r);
                let body = r.text().await.expect("body");
                assert_eq!(
                    body,
                    body_for(host, enc, "/same/path"),
                    "round {round}: {cs}"
                );
                if round > 0 {
                    assert!(cs.contains("; hit"), "round {round} {host} {enc}: {cs}");
                }
            }
        }
    }
    assert_eq!(origin.count(), 4, "one fill per host and variant");
}

#[tokio::test]
async fn vary_miss_is_reported_and_vary_star_never_matches_rfc9111_4_1() {
    let origin = Origin::start(|s| match s.path.as_str() {
        "/star" => Reply::ok("star")
            .header("cache-control", "max-age=60")
            .header("vary", "*"),
        _ => Reply::ok(format!(
            "lang={}",
            s.header("accept-language").unwrap_or("-")
        ))
        .header("cache-control", "max-age=60")
        .header("vary", "accept-language"),
    })
    .await;
    let edge = Node::edge(&[origin.url()]).await;
    let c = client();
    let r = c
        .get(edge.url("/v"))
        .header("accept-language", "en")
        .send()
        .await
        .expect("send");
    assert!(cache_status(&r).contains("fwd=miss"));
    let r = c
        .get(edge.url("/v"))
        .header("accept-language", "fr")
        .send()
        .await
        .expect("send");
    assert!(
        cache_status(&r).contains("fwd=vary-miss"),
        "{}",
        cache_status(&r)
    );
    assert_eq!(r.text().await.expect("body"), "lang=fr");
    let r = c
        .get(edge.url("/v"))
        .header("accept-language", "en")
        .send()
        .await
        .expect("send");
    assert!(cache_status(&r).contains("; hit"));
    assert_eq!(r.text().await.expect("body"), "lang=en");
    for _ in 0..2 {
        c.get(edge.url("/star")).send().await.expect("send");
    }
    assert_eq!(origin.count_path("/star"), 2);
}

#[tokio::test]
async fn query_is_part_of_the_key_and_can_be_sorted_or_dropped() {
    let origin =
        Origin::start(|s| Reply::ok(s.path.clone()).header("cache-control", "max-age=60")).await;
    let plain = Node::edge(&[origin.url()]).await;
    let c = client();
    for p in ["/q?a=1&b=2", "/q?b=2&a=1", "/q?a=1&b=2"] {
        let r = c.get(plain.url(p)).send().await.expect("send");
        assert_eq!(r.text().await.expect("body"), p);
    }
    assert_eq!(origin.count(), 2);
    let tuned = Node::edge_with(meridian_edge::FileConfig {
        upstream: vec![origin.url()],
        cache: meridian_edge::config::CacheSection {
            sort_query: Some(true),
            drop_query_params: Some(vec!["utm_source".into()]),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    for p in ["/t?x=1&y=2", "/t?y=2&x=1", "/t?utm_source=mail&y=2&x=1"] {
        c.get(tuned.url(p)).send().await.expect("send");
    }
    assert_eq!(origin.count(), 3, "one fill for all three spellings");
}

/// RFC 9111 §4.1: when several stored responses match, the most recent
/// wins — here the origin changes what it varies on, and the newer answer
/// (not the first one stored) is served from then on.
#[tokio::test]
async fn the_newest_matching_variant_wins_rfc9111_4_1() {
    let n = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = std::sync::Arc::clone(&n);
    let origin = Origin::start(move |s| {
        let i = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let reply = Reply::ok(format!("v{i}")).header("etag", &format!("\"v{i}\""));
        if i == 0 {
            reply
                .header("cache-control", "max-age=60")
                .header("vary", "accept-encoding")
        } else if s.header("cache-control") == Some("no-cache") {
            reply
                .header("cache-control", "max-age=60")
                .header("vary", "accept-language")
        } else {
            reply.header("cache-control", "max-age=60")
        }
    })
    .await;
    let edge = Node::edge(&[origin.url()]).await;
    let c = client();
    let get = |extra: Option<(&'static str, &'static str)>| {
        let mut rq = c
            .get(edge.url("/p"))
            .header("accept-encoding", "gzip")
            .header("accept-language", "fr");
        if let Some((k, v)) = extra {
            rq = rq.header(k, v);
        }
        rq.send()
    };
    assert_eq!(
        get(None).await.expect("send").text().await.expect("body"),
        "v0"
    );
    // The client forces a refetch; the new answer varies on another field.
    let forced = get(Some(("cache-control", "no-cache")))
        .await
        .expect("send");
    assert_eq!(forced.text().await.expect("body"), "v1");
    let r = get(None).await.expect("send");
    assert!(cache_status(&r).contains("hit"), "{}", cache_status(&r));
    assert_eq!(
        r.text().await.expect("body"),
        "v1",
        "the newer response wins"
    );
    assert_eq!(origin.count(), 2);
}

/// A revalidation answered with something that may not be stored removes
/// the variant that was revalidated, and only that one.
#[tokio::test]
async fn a_failed_revalidation_leaves_other_variants_alone() {
    let origin = Origin::start(|s| {
        let lang = s.header("accept-language").unwrap_or("en").to_string();
        if s.header("if-none-match").is_some() {
            if lang == "en" {
                // The en variant's revalidation: an answer that may not be stored.
                return Reply::ok("en, private now").header("cache-control", "no-store");
            }
            return Reply::ok("")
                .status(304)
                .header("etag", &format!("\"{lang}\""));
        }
        Reply::ok(format!("page in {lang}"))
            .header("cache-control", "no-cache")
            .header("etag", &format!("\"{lang}\""))
            .header("vary", "accept-language")
    })
    .await;
    let edge = Node::edge(&[origin.url()]).await;
    let c = client();
    let get = |lang: &'static str| {
        c.get(edge.url("/doc"))
            .header("accept-language", lang)
            .send()
    };
    for lang in ["en", "fr"] {
        let r = get(lang).await.expect("send");
        assert_eq!(r.text().await.expect("body"), format!("page in {lang}"));
    }
    // en revalidates and gets no-store: en is gone...
    assert_eq!(
        get("en").await.expect("send").text().await.expect("body"),
        "en, private now"
    );
    // ...but fr is still stored: its revalidation is conditional and a 304
    // serves the stored fr bytes.
    let r = get("fr").await.expect("send");
    assert!(
        cache_status(&r).contains("fwd=stale"),
        "{}",
        cache_status(&r)
    );
    assert_eq!(r.text().await.expect("body"), "page in fr");
    let last = origin.last();
    assert_eq!(last.header("if-none-match"), Some("\"fr\""));
}
