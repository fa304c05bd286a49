//! End-to-end tests of the origin shield (issue 3): real origins that count
//! their requests, shields and edges on 127.0.0.1 port 0, all in-process.

mod support;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures_util::{StreamExt, stream};
use support::{INTERVAL, Node, Origin, client, eventually, fast_health, get};

const WAIT: Duration = Duration::from_secs(5);

/// GETs every path through `node` (8 at a time) and returns which origin
/// answered each one.
async fn origin_of_each(c: &reqwest::Client, node: &Node, paths: &[String]) -> Vec<String> {
    stream::iter(paths)
        .map(|p| async move {
            let (status, origin, _, _) = get(c, &node.url(p)).await;
            assert_eq!(status, 200, "{p}");
            origin
        })
        .buffered(8)
        .collect()
        .await
}

fn count(origins: &[String], id: &str) -> usize {
    origins.iter().filter(|o| *o == id).count()
}

#[tokio::test]
async fn round_robin_splits_requests_exactly() {
    let os = [
        Origin::named("a").await,
        Origin::named("b").await,
        Origin::named("c").await,
    ];
    let shield = Node::shield(&os.each_ref().map(Origin::url))
        .name("s")
        .balance("round-robin")
        .without_health_checks()
        .await;
    let c = client();
    for i in 0..30 {
        let (status, ..) = get(&c, &shield.url(&format!("/nostore/{i}"))).await;
        assert_eq!(status, 200);
    }
    assert_eq!(os.each_ref().map(Origin::count), [10, 10, 10]);
}

#[tokio::test]
async fn weighted_round_robin_gives_three_to_one() {
    let (a, b) = (Origin::named("a").await, Origin::named("b").await);
    let origins = [format!("{};weight=3", a.url()), b.url()];
    let shield = Node::shield(&origins)
        .name("s")
        .balance("weighted-round-robin")
        .without_health_checks()
        .await;
    let c = client();
    let paths: Vec<String> = (0..80).map(|i| format!("/nostore/{i}")).collect();
    let served = origin_of_each(&c, &shield, &paths).await;
    let (na, nb) = (count(&served, "a"), count(&served, "b"));
    assert!(
        na.abs_diff(60) <= 2 && nb.abs_diff(20) <= 2,
        "a={na} b={nb}"
    );
}

#[tokio::test]
async fn least_connections_avoids_the_origin_busy_with_a_slow_request() {
    let slow = Duration::from_millis(1500);
    let os = [
        Origin::named_slow("a", slow).await,
        Origin::named_slow("b", slow).await,
    ];
    let shield = Node::shield(&os.each_ref().map(Origin::url))
        .name("s")
        .balance("least-connections")
        .await;
    let c = client();
    let slow_req = tokio::spawn({
        let (c, url) = (c.clone(), shield.url("/nostore/slow"));
        async move { get(&c, &url).await }
    });
    let busy = Instant::now() + WAIT;
    let busy_idx = loop {
        if let Some(i) = os.iter().position(|o| o.in_flight() == 1) {
            break i;
        }
        assert!(
            Instant::now() < busy,
            "the slow request never reached an origin"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let idle = &os[1 - busy_idx];
    let paths: Vec<String> = (0..10).map(|i| format!("/nostore/fast/{i}")).collect();
    for p in &paths {
        let (status, origin, ..) = get(&c, &shield.url(p)).await;
        assert_eq!((status, origin.as_str()), (200, idle.id.as_str()), "{p}");
    }
    assert_eq!(
        os[busy_idx].count(),
        1,
        "the busy origin got only the slow request"
    );
    let (status, ..) = slow_req.await.expect("slow request");
    assert_eq!(status, 200);
}

#[tokio::test]
async fn killed_origin_is_skipped_within_two_health_intervals_and_returns() {
    let (a, mut b) = (Origin::named("a").await, Origin::named("b").await);
    let shield = Node::shield(&[a.url(), b.url()])
        .name("s")
        .balance("round-robin")
        .await;
    let c = client();
    let served = origin_of_each(&c, &shield, &["/nostore/1".into(), "/nostore/2".into()]).await;
    assert_eq!((count(&served, "a"), count(&served, "b")), (1, 1));

    b.stop().await;
    let killed = Instant::now();
    // Polled every 20 ms; 50 ms of slack for a busy CI runner.
    eventually(
        "b down",
        2 * INTERVAL + Duration::from_millis(50),
        || async { !shield.upstream_up(&c, &b.url()).await },
    )
    .await;
    println!("origin b marked down {:?} after the kill", killed.elapsed());
    let stats = shield.stats(&c).await;
    let before = stats["upstreams"][1]["requests"].as_u64();
    let paths: Vec<String> = (0..10).map(|i| format!("/nostore/down/{i}")).collect();
    let served = origin_of_each(&c, &shield, &paths).await;
    assert_eq!(count(&served, "a"), 10);
    let stats = shield.stats(&c).await;
    assert_eq!(
        stats["upstreams"][1]["requests"].as_u64(),
        before,
        "b not even tried"
    );
    assert_eq!(stats["upstreams"][1]["up"], false);
    assert!(
        stats["upstreams"][1]["last_check_unix_ms"]
            .as_u64()
            .is_some()
    );

    b.restart().await;
    eventually("b up again", WAIT, || async {
        shield.upstream_up(&c, &b.url()).await
    })
    .await;
    let paths: Vec<String> = (0..10).map(|i| format!("/nostore/back/{i}")).collect();
    let served = origin_of_each(&c, &shield, &paths).await;
    assert_eq!((count(&served, "a"), count(&served, "b")), (5, 5));
}

#[tokio::test]
async fn connect_failure_is_retried_once_on_the_next_origin() {
    let (a, mut b) = (Origin::named("a").await, Origin::named("b").await);
    let mut health = fast_health();
    health.interval = Some(meridian_common::HumanDuration(Duration::ZERO));
    let shield = Node::shield_with(meridian_origin_shield::FileConfig {
        origin: vec![a.url(), b.url()],
        health,
        ..Default::default()
    })
    .await;
    b.stop().await;
    let c = client();
    // No active checks: round robin sends one of these to b, whose connect
    // fails; the retry on a answers it.
    let paths: Vec<String> = (0..4).map(|i| format!("/nostore/retry/{i}")).collect();
    let served = origin_of_each(&c, &shield, &paths).await;
    assert_eq!(count(&served, "a"), 4);
    let stats = shield.stats(&c).await;
    assert!(
        stats["upstreams"][1]["failures"].as_u64() >= Some(1),
        "{stats}"
    );
}

#[tokio::test]
async fn all_origins_down_are_still_tried_then_502_or_a_stale_copy() {
    let (mut a, mut b) = (Origin::named("a").await, Origin::named("b").await);
    let shield = Node::shield(&[a.url(), b.url()])
        .name("s")
        .balance("round-robin")
        .await;
    let c = client();
    let (status, _, cs, body) = get(&c, &shield.url("/stale")).await;
    assert!(status == 200 && cs.contains("stored"), "{cs}");
    a.stop().await;
    b.stop().await;
    eventually("both down", WAIT, || async {
        let s = shield.stats(&c).await;
        s["upstreams"]
            .as_array()
            .is_some_and(|u| u.iter().all(|o| o["up"] == false))
    })
    .await;
    // Panic mode: both are tried anyway; both refuse, so 502, not 503.
    let (status, _, cs, _) = get(&c, &shield.url("/never-fetched")).await;
    assert_eq!(status, 502, "{cs}");
    assert!(cs.contains("detail=upstream-connect"), "{cs}");
    // max-age=0, stale-if-error=60: RFC 5861 lets the stale copy stand in.
    let (status, _, cs, stale_body) = get(&c, &shield.url("/stale")).await;
    assert_eq!((status, stale_body), (200, body));
    assert!(cs.contains("stale-if-error"), "{cs}");
}

/// Health checks every `interval`, with the test's short cool-off.
fn health_every(interval: Duration) -> meridian_edge::config::HealthSection {
    meridian_edge::config::HealthSection {
        interval: Some(meridian_common::HumanDuration(interval)),
        ..fast_health()
    }
}

#[tokio::test]
async fn a_fresh_shield_presumes_its_origins_up_until_the_first_check() {
    let (a, b) = (Origin::named("a").await, Origin::named("b").await);
    let shield = Node::shield_with(meridian_origin_shield::FileConfig {
        origin: vec![a.url(), b.url()],
        health: health_every(Duration::from_secs(2)),
        ..Default::default()
    })
    .await;
    let c = client();
    let (status, _, cs, _) = get(&c, &shield.url("/nostore/first")).await;
    assert_eq!(status, 200, "{cs}");
    let stats = shield.stats(&c).await;
    for u in stats["upstreams"].as_array().expect("upstreams") {
        assert_eq!(u["up"], true, "{u}");
        assert!(u["last_check_unix_ms"].is_null(), "not checked yet: {u}");
    }
}

#[tokio::test]
async fn a_fresh_shield_answers_at_once_though_its_origins_started_after_it() {
    let (mut a, mut b) = (Origin::named("a").await, Origin::named("b").await);
    // Known ports with nothing listening: origins still starting up.
    a.stop().await;
    b.stop().await;
    let shield = Node::shield_with(meridian_origin_shield::FileConfig {
        origin: vec![a.url(), b.url()],
        health: health_every(Duration::from_millis(500)),
        ..Default::default()
    })
    .await;
    let c = client();
    eventually("the first checks found nothing", WAIT, || async {
        let s = shield.stats(&c).await;
        s["upstreams"].as_array().is_some_and(|u| {
            u.iter()
                .all(|o| o["up"] == false && o["last_check_unix_ms"].is_u64())
        })
    })
    .await;
    a.restart().await;
    b.restart().await;
    // The origins are up; the shield must not answer 503 until its next check.
    for i in 0..6 {
        let (status, _, cs, _) = get(&c, &shield.url(&format!("/nostore/early/{i}"))).await;
        assert_eq!(status, 200, "{cs}");
    }
}

#[tokio::test]
async fn edge_cache_status_shows_the_shield_then_the_edge() {
    let o = Origin::named("o").await;
    let shield = Node::shield(&[o.url()])
        .name("shield-t")
        .balance("round-robin")
        .await;
    let edge = Node::edge(&[shield.base_url()]).name("edge-t").await;
    let c = client();
    for want_edge in ["edge-t; fwd=miss", "edge-t; hit"] {
        let (status, _, cs, _) = get(&c, &edge.url("/both-tiers")).await;
        assert_eq!(status, 200);
        let (s, e) = (cs.find("shield-t; fwd=miss"), cs.find(want_edge));
        assert!(s.is_some() && e.is_some() && s < e, "{cs}");
    }
    assert_eq!(o.count(), 1);
}

#[tokio::test]
async fn stats_and_healthz_show_cache_figures_and_origin_states() {
    let (a, b) = (Origin::named("a").await, Origin::named("b").await);
    let shield = Node::shield(&[a.url(), b.url()])
        .name("s")
        .balance("two-choices")
        .await;
    let c = client();
    let paths: Vec<String> = (0..20).map(|i| format!("/obj/{i}")).collect();
    let served = origin_of_each(&c, &shield, &paths).await;
    assert!(
        count(&served, "a") > 0 && count(&served, "b") > 0,
        "two-choices spreads: {served:?}"
    );
    eventually("a health check ran", WAIT, || async {
        shield.stats(&c).await["upstreams"][0]["last_check_unix_ms"].is_u64()
    })
    .await;
    let s = shield.stats(&c).await;
    assert_eq!(
        (s["balance"].as_str(), s["entries"].as_u64()),
        (Some("two-choices"), Some(20))
    );
    for (i, o) in [&a, &b].into_iter().enumerate() {
        let u = &s["upstreams"][i];
        assert_eq!(
            (u["url"].as_str(), u["up"].as_bool()),
            (Some(o.url().as_str()), Some(true))
        );
        assert_eq!(u["in_flight"], 0);
        assert_eq!(u["requests"].as_u64(), Some(o.count() as u64));
        assert_eq!(u["failures"], 0);
    }
    let h: serde_json::Value = c
        .get(format!("http://{}/healthz", shield.admin))
        .send()
        .await
        .expect("healthz")
        .json()
        .await
        .expect("json");
    assert_eq!(h["status"], "ok");
}

#[tokio::test]
async fn two_hundred_concurrent_requests_through_two_edges_reach_the_origin_once() {
    let o = Origin::named_slow("o", Duration::from_millis(1000)).await;
    let shield = Node::shield(&[o.url()])
        .name("s")
        .balance("round-robin")
        .await;
    let edges = [
        Node::edge(&[shield.base_url()]).name("e1").await,
        Node::edge(&[shield.base_url()]).name("e2").await,
    ];
    let c = client();
    let answers: Vec<(u16, String, String, String)> = stream::iter(0..200)
        .map(|i| {
            let url = edges[i % 2].url("/slow/collapse");
            let c = &c;
            async move { get(c, &url).await }
        })
        .buffer_unordered(200)
        .collect()
        .await;
    assert!(
        answers
            .iter()
            .all(|a| a.0 == 200 && a.3 == "o /slow/collapse")
    );
    assert_eq!(o.count_path("/slow/collapse"), 1);
}

/// Consistent hashing on the cache key: adding a fifth origin moves about
/// 1/5 of the keys, all to the new one; losing one of four moves only its
/// own keys, about 1/4.
#[tokio::test]
async fn consistent_hash_moves_about_one_in_n_keys() {
    let mut os = Vec::new();
    for id in ["o1", "o2", "o3", "o4", "o5"] {
        os.push(Origin::named(id).await);
    }
    let urls: Vec<String> = os.iter().map(Origin::url).collect();
    // `four` must notice o4 going away later; `five` needs no checks.
    let four = Node::shield(&urls[..4])
        .name("four")
        .balance("consistent-hash")
        .health_fall(3)
        .await;
    let five = Node::shield(&urls)
        .name("five")
        .balance("consistent-hash")
        .without_health_checks()
        .await;
    let c = client();
    let paths: Vec<String> = (0..400).map(|i| format!("/nostore/key-{i}")).collect();
    let before = origin_of_each(&c, &four, &paths).await;
    let added = origin_of_each(&c, &five, &paths).await;
    let moved: Vec<usize> = (0..400).filter(|&i| before[i] != added[i]).collect();
    assert!(
        moved.iter().all(|&i| added[i] == "o5"),
        "only keys for the new origin move"
    );
    assert!(
        (40..=130).contains(&moved.len()),
        "moved {} of 400 (expect ~80)",
        moved.len()
    );

    os[3].stop().await;
    eventually("o4 down", WAIT, || async {
        !four.upstream_up(&c, &urls[3]).await
    })
    .await;
    let removed = origin_of_each(&c, &four, &paths).await;
    let moved: Vec<usize> = (0..400).filter(|&i| before[i] != removed[i]).collect();
    assert!(
        moved.iter().all(|&i| before[i] == "o4"),
        "only the lost origin's keys move"
    );
    assert!(
        (50..=160).contains(&moved.len()),
        "moved {} of 400 (expect ~100)",
        moved.len()
    );
}

/// Clients connect from their own loopback addresses (Linux routes all of
/// 127.0.0.0/8 to `lo`): through the edge, which the shield trusts, each
/// client sticks to one origin; straight to the shield, from an address it
/// does not trust, a forged `X-Forwarded-For` is ignored.
#[tokio::test]
async fn ip_hash_follows_the_client_only_behind_trusted_edges() {
    let os = [
        Origin::named("a").await,
        Origin::named("b").await,
        Origin::named("c").await,
    ];
    let shield = Node::shield_with(meridian_origin_shield::FileConfig {
        origin: os.each_ref().map(Origin::url).to_vec(),
        balance: Some("ip-hash".parse().expect("balance")),
        trusted_edges: Some(vec!["127.0.0.1/32".parse().expect("cidr")]),
        health: fast_health(),
        ..Default::default()
    })
    .await;
    let edge = Node::edge(&[shield.base_url()]).name("e").await;
    let from = |last_octet: u8| {
        reqwest::Client::builder()
            .no_proxy()
            .local_address(std::net::IpAddr::from([127, 0, 0, last_octet]))
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client")
    };
    let mut sticky: HashMap<u8, String> = HashMap::new();
    for n in 10..40 {
        let c = from(n);
        let (_, first, ..) = get(&c, &edge.url(&format!("/nostore/ip/{n}/0"))).await;
        let (_, again, ..) = get(&c, &edge.url(&format!("/nostore/ip/{n}/1"))).await;
        assert_eq!(first, again, "client 127.0.0.{n} stays on one origin");
        sticky.insert(n, first);
    }
    let distinct: HashSet<&String> = sticky.values().collect();
    assert!(distinct.len() >= 2, "clients spread: {sticky:?}");

    let untrusted = from(2);
    let mut seen = HashSet::new();
    for n in 10..20 {
        let r = untrusted
            .get(shield.url(&format!("/nostore/forged/{n}")))
            .header("host", support::HOST)
            .header("x-forwarded-for", format!("127.0.0.{n}"))
            .send()
            .await
            .expect("request");
        seen.insert(r.headers().get("x-origin").cloned());
    }
    assert_eq!(
        seen.len(),
        1,
        "forged X-Forwarded-For must not choose: {seen:?}"
    );
}

#[tokio::test]
async fn two_shields_fetch_each_url_once_and_edges_survive_one_stopping() {
    let o = Origin::named("o").await;
    let mut s1 = Node::shield(&[o.url()])
        .name("s1")
        .balance("round-robin")
        .await;
    let s2 = Node::shield(&[o.url()])
        .name("s2")
        .balance("round-robin")
        .await;
    let shields = [s1.base_url(), s2.base_url()];
    let edges = [
        Node::edge(&shields).name("e1").await,
        Node::edge(&shields).name("e2").await,
    ];
    let c = client();
    let fetch_all = |prefix: &'static str| {
        let (c, edges) = (&c, &edges);
        stream::iter((0..100).flat_map(|i| [(i, 0), (i, 1)]))
            .map(move |(i, e)| async move {
                let (status, _, cs, _) = get(c, &edges[e].url(&format!("/{prefix}/{i}"))).await;
                assert_eq!(status, 200, "{prefix}/{i} via e{}: {cs}", e + 1);
                cs
            })
            .buffer_unordered(16)
            .collect::<Vec<String>>()
    };
    let statuses = fetch_all("obj").await;
    for i in 0..100 {
        assert_eq!(o.count_path(&format!("/obj/{i}")), 1, "/obj/{i}");
    }
    let by_s1 = statuses.iter().filter(|cs| cs.starts_with("s1;")).count();
    assert!(
        (20..=180).contains(&by_s1),
        "both shields share the keys: {by_s1} of 200 via s1"
    );

    s1.stop().await;
    for e in &edges {
        eventually("edge sees s1 down", WAIT, || async {
            !e.upstream_up(&c, &shields[0]).await
        })
        .await;
    }
    fetch_all("obj").await;
    fetch_all("after").await;
    for i in 0..100 {
        assert_eq!(o.count_path(&format!("/after/{i}")), 1, "/after/{i}");
    }
}

/// GETs `url` with the Host the client naturally sends (the node's own
/// address): (x-origin, cache-status, body).
async fn get_by_address(c: &reqwest::Client, url: &str) -> (String, String, Vec<u8>) {
    let r = c.get(url).send().await.expect("request");
    assert_eq!(r.status(), 200, "{url}");
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (origin, cs) = (header("x-origin"), header("cache-status"));
    (origin, cs, r.bytes().await.expect("body").to_vec())
}

/// Clients reach each edge on its own address. Without `site-host` each
/// edge is its own site at the shield (one origin fetch per edge); with it,
/// both edges are the one site, and share the shield's entry.
#[tokio::test]
async fn site_host_gives_edges_on_different_addresses_one_cache_identity() {
    let o = Origin::named("o").await;
    let shield = Node::shield(&[o.url()])
        .name("s")
        .balance("round-robin")
        .await;
    let c = client();
    let plain = [
        Node::edge(&[shield.base_url()]).name("p1").await,
        Node::edge(&[shield.base_url()]).name("p2").await,
    ];
    for e in &plain {
        get_by_address(&c, &e.url("/apart")).await;
    }
    assert_eq!(o.count_path("/apart"), 2, "two edge addresses, two sites");

    let site = |name: &str| meridian_edge::FileConfig {
        name: Some(name.into()),
        upstream: vec![shield.base_url()],
        health: fast_health(),
        site_host: Some("www.shop.test".into()),
        ..Default::default()
    };
    let edges = [
        Node::edge_with(site("e1")).await,
        Node::edge_with(site("e2")).await,
    ];
    assert_ne!(edges[0].addr, edges[1].addr);
    let (_, first_cs, first) = get_by_address(&c, &edges[0].url("/shared")).await;
    assert!(first_cs.starts_with("s; fwd=miss"), "{first_cs}");
    let (_, cs, second) = get_by_address(&c, &edges[1].url("/shared")).await;
    assert!(
        cs.starts_with("s; hit"),
        "the shield's entry is shared: {cs}"
    );
    assert_eq!(first, second, "byte for byte");
    assert_eq!(first, b"o /shared");
    assert_eq!(o.count_path("/shared"), 1, "one origin fetch");
}

/// The shield's own `site-host` and `accept-hosts`: a request for another
/// authority is answered 421 and never reaches an origin.
#[tokio::test]
async fn shield_accept_hosts_answers_other_authorities_421() {
    let o = Origin::named("o").await;
    let shield = Node::shield_with(meridian_origin_shield::FileConfig {
        origin: vec![o.url()],
        health: fast_health(),
        site_host: Some(support::HOST.into()),
        accept_hosts: Some(vec!["*.shop.test".into()]),
        ..Default::default()
    })
    .await;
    let c = client();
    let (status, ..) = get(&c, &shield.url("/a")).await;
    assert_eq!(status, 200, "the site host itself is accepted");
    let r = c
        .get(shield.url("/a"))
        .header("host", "img.shop.test")
        .send()
        .await
        .expect("request");
    assert!(
        r.headers()["cache-status"]
            .to_str()
            .is_ok_and(|cs| cs.contains("; hit")),
        "an accepted alias is served as the site"
    );
    let r = c.get(shield.url("/a")).send().await.expect("request");
    assert_eq!(r.status(), 421, "the shield's bare address is not accepted");
    assert_eq!(o.count_path("/a"), 1);
}

/// Issue 12 item 2: a shield's active checks reach `https://` origins with
/// the same trust settings as its traffic, so an origin whose certificate
/// the shield cannot verify is down, and one it can is up and serves.
#[tokio::test]
async fn health_checks_reach_https_origins_with_the_traffics_trust() {
    use support::{Pki, TlsOrigin};
    let (a, b) = (Origin::named("a").await, Origin::named("b").await);
    let (right, other) = (Pki::named("right CA"), Pki::named("other CA"));
    let good = TlsOrigin::start(&a, &right, &["localhost"]).await;
    let bad = TlsOrigin::start(&b, &other, &["localhost"]).await;
    let shield = Node::shield(&[
        format!("{}{}", good.url(), right.option()),
        format!("{}{}", bad.url(), right.option()),
    ])
    .name("s")
    .health_fall(2)
    .await;
    let c = client();
    eventually("the unverifiable origin down", WAIT, || async {
        !shield.upstream_up(&c, &bad.url()).await
    })
    .await;
    assert!(shield.upstream_up(&c, &good.url()).await);
    let paths: Vec<String> = (0..4).map(|i| format!("/nostore/tls/{i}")).collect();
    let served = origin_of_each(&c, &shield, &paths).await;
    assert_eq!(count(&served, "a"), 4);
    assert_eq!(
        b.count(),
        0,
        "nothing reached the origin behind the bad certificate"
    );
    assert!(!good.handshakes().is_empty());
}

#[test]
fn a_shield_origins_tls_errors_name_the_key() {
    let shield = |origin: &str, ca: Option<&str>| {
        meridian_origin_shield::FileConfig {
            origin: vec![origin.to_owned()],
            origin_ca: ca.map(Into::into),
            ..Default::default()
        }
        .validate("shield.toml")
        .expect_err(origin)
        .to_string()
    };
    let e = shield("https://localhost:8443;ca=/no/such/ca.pem", None);
    assert!(
        e.contains("`origin`") && e.contains("/no/such/ca.pem"),
        "{e}"
    );
    let e = shield("https://localhost:8443", Some("/no/such/ca.pem"));
    assert!(
        e.contains("`origin-ca`") && e.contains("/no/such/ca.pem"),
        "{e}"
    );
    let e = shield("https://localhost:8443;verify=no", None);
    assert!(
        e.contains("`origin`") && e.contains("unknown option `verify`"),
        "{e}"
    );
}

/// 8 KiB of HTML worth compressing.
fn compressible_page() -> Vec<u8> {
    (0..400u32)
        .flat_map(|i| format!("<li>item {i:05} of the list</li>\n").into_bytes())
        .take(8192)
        .collect()
}

/// GETs `url` for [`support::HOST`] with `Accept-Encoding: accept`;
/// returns the `Content-Encoding` and the body decoded from it once.
async fn get_decoded(c: &reqwest::Client, url: &str, accept: &str) -> (Option<String>, Vec<u8>) {
    use std::io::Read;
    let r = c
        .get(url)
        .header("host", support::HOST)
        .header("accept-encoding", accept)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200, "{url}");
    let encoding = r
        .headers()
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = r.bytes().await.expect("body").to_vec();
    let mut out = Vec::new();
    match encoding.as_deref() {
        None => out = body,
        Some("br") => {
            brotli::Decompressor::new(&body[..], 4096)
                .read_to_end(&mut out)
                .expect("br decodes");
        }
        Some("gzip") => {
            flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut out)
                .expect("gzip decodes");
        }
        Some(other) => panic!("unexpected Content-Encoding {other}"),
    }
    (encoding, out)
}

#[tokio::test]
async fn edge_shield_origin_encodes_once_never_twice() {
    let origin = Origin::start(|_| {
        support::Reply::ok(compressible_page())
            .header("content-type", "text/html")
            .header("cache-control", "public, max-age=60")
            .header("etag", "\"p1\"")
    })
    .await;
    // Compression is off on a shield by default: its clients are edges.
    let shield = Node::shield(&[origin.url()]).await;
    let edge = Node::edge(&[shield.base_url()]).await;
    let c = client();
    let url = edge.url("/chain");
    for accept in ["br", "br", "gzip", "identity"] {
        let (_, body) = get_decoded(&c, &url, accept).await;
        assert_eq!(body, compressible_page(), "{accept} via the edge");
    }
    let (encoding, body) = get_decoded(&c, &edge.url("/chain"), "br").await;
    assert_eq!(encoding.as_deref(), Some("br"));
    assert_eq!(body, compressible_page());
    let (encoding, _) = get_decoded(&c, &shield.url("/chain"), "br").await;
    assert_eq!(encoding, None, "the shield serves identity");
    assert_eq!(origin.count(), 1);

    // A shield told to compress: the edges store its encoded answers as
    // they came and decode nothing twice.
    let shield = Node::shield(&[origin.url()])
        .config(|c| c.compression.enabled = Some(true))
        .await;
    let first = Node::edge(&[shield.base_url()]).await;
    get_decoded(&c, &first.url("/both"), "br").await;
    let second = Node::edge(&[shield.base_url()]).await;
    for accept in ["br", "gzip"] {
        for round in 0..2 {
            let (encoding, body) = get_decoded(&c, &second.url("/both"), accept).await;
            assert_eq!(encoding.as_deref(), Some(accept), "{accept} round {round}");
            assert_eq!(body, compressible_page(), "{accept} round {round}");
        }
    }
    let (encoding, _) = get_decoded(&c, &shield.url("/both"), "br").await;
    assert_eq!(encoding.as_deref(), Some("br"), "this shield encodes");
    assert_eq!(origin.count(), 2, "one more fetch, for the other shield");
}

/// Issue 13: an origin that misbehaves behind a shield. The shield's own
/// fill fails, so the edge's does too: the client sees the body cut off
/// (never a clean short one), neither tier stores it, and the next request
/// reaches the origin again. `hostile` is the script of the first answer;
/// later ones are good.
async fn misbehaving_origin_behind_a_shield(name: &str, hostile: support::Script) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let healed = std::sync::Arc::new(AtomicBool::new(false));
    let h = std::sync::Arc::clone(&healed);
    let origin = support::RawOrigin::start(move |_| {
        if h.load(Ordering::SeqCst) {
            support::Script::new().write(support::response(
                "200 OK",
                &[("cache-control", "public, max-age=60")],
                b"healed",
            ))
        } else {
            hostile.clone()
        }
    })
    .await;
    let fill = Some(meridian_common::HumanDuration(Duration::from_secs(1)));
    let shield = Node::shield(&[origin.url()])
        .without_health_checks()
        .config(|c| c.timeouts.fill = fill)
        .await;
    let edge = Node::edge(&[shield.base_url()])
        .config(|c| c.timeouts.fill = Some(meridian_common::HumanDuration(Duration::from_secs(3))))
        .await;
    let c = client();
    let url = edge.url(&format!("/{name}"));
    let clients = (0..3).map(|_| async {
        let r = c.get(&url).header("host", support::HOST).send().await;
        let r = r.expect("a response head");
        (r.status().as_u16(), r.bytes().await.is_err())
    });
    let seen = tokio::time::timeout(WAIT, futures_util::future::join_all(clients))
        .await
        .expect("no client left hanging");
    assert!(seen.iter().all(|s| *s == (200, true)), "{name}: {seen:?}");
    for node in [&shield, &edge] {
        let stats = node.stats(&c).await;
        assert_eq!(stats["entries"], 0, "{name}: nothing stored: {stats}");
    }
    healed.store(true, Ordering::SeqCst);
    let before = origin.requests();
    let (status, _, cs, body) = get(&c, &url).await;
    assert_eq!((status, body.as_str()), (200, "healed"), "{name}");
    assert!(
        cs.contains("shield-1; fwd=miss") && cs.contains("edge-1; fwd=miss"),
        "{name}: {cs}"
    );
    assert_eq!(origin.requests(), before + 1, "{name}");
}

#[tokio::test]
async fn a_truncated_body_behind_a_shield_is_cut_and_stored_by_neither_tier() {
    let hostile = support::Script::new()
        .write(
            "HTTP/1.1 200 OK\r\ncache-control: public, max-age=60\r\n\
             content-length: 100\r\n\r\nonly ten b",
        )
        .close();
    misbehaving_origin_behind_a_shield("truncated", hostile).await;
}

#[tokio::test]
async fn a_trickling_origin_behind_a_shield_is_cut_at_the_shields_fill_deadline() {
    let hostile = support::Script::new()
        .write(
            "HTTP/1.1 200 OK\r\ncache-control: public, max-age=60\r\n\
             content-length: 100\r\n\r\n",
        )
        .trickle(vec![b'x'; 100], Duration::from_millis(500));
    misbehaving_origin_behind_a_shield("trickle", hostile).await;
}
