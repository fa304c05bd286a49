//! A real edge engine following the NATS purge log, seen from a client:
//! a purge through the log makes the next request a miss, and a node cut
//! off from the log for longer than `max-lag` revalidates what it stored.

mod nats_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::routing::get;
use meridian_common::Shutdown;
use meridian_proxy::{Config, Engine, Scheme};
use meridian_purge::{FollowConfig, NodeRef, Purge, Tier};
use nats_support::{NatsServer, eventually};

/// An origin whose `/x` is fresh for an hour; counts its requests.
async fn origin() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = axum::Router::new().route(
        "/x",
        get(move || {
            let hits = counted.clone();
            async move {
                hits.fetch_add(1, Ordering::SeqCst);
                ([("cache-control", "max-age=3600")], "the object")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind origin");
    let addr = listener.local_addr().expect("origin addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), hits)
}

/// GETs `url` (the whole body, so the fill completes) and returns its
/// `Cache-Status`.
async fn cache_status(client: &reqwest::Client, url: &str) -> String {
    let response = client.get(url).send().await.expect("request");
    assert!(response.status().is_success(), "{}", response.status());
    let status = response
        .headers()
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    response.bytes().await.expect("body");
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_applies_purges_from_the_nats_log_and_revalidates_while_cut_off() {
    let mut server = NatsServer::start().await;
    let log = server.url();
    let (upstream, hits) = origin().await;

    let max_lag = Duration::from_secs(1);
    let mut config = Config::for_upstream(&upstream).expect("config");
    config.name = "edge-e".to_string();
    config.purge_log = Some(log.clone());
    config.purge_max_lag = max_lag;
    let pool = Arc::new(meridian_edge::upstream_pool(&config).expect("pool"));
    let engine = Arc::new(Engine::new(&config, pool));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind edge");
    let url = format!("http://{}/x", listener.local_addr().expect("edge addr"));
    let shutdown = Shutdown::new();
    tokio::spawn(meridian_proxy::server::serve(
        listener,
        engine.clone(),
        Scheme::Http,
        shutdown.clone(),
    ));
    let follow = FollowConfig {
        log: log.clone(),
        node: "edge-e".to_string(),
        tier: Tier::Edge,
        token: None,
    };
    tokio::spawn(meridian_purge::follow(
        follow,
        engine.clone(),
        engine.sync().clone(),
        shutdown.clone(),
    ));
    let sync = engine.sync().clone();
    eventually(
        "the edge syncs with the log",
        Duration::from_secs(10),
        || {
            let synced = sync.ever_synced();
            async move { synced }
        },
    )
    .await;

    let client = reqwest::Client::new();
    cache_status(&client, &url).await;
    assert!(cache_status(&client, &url).await.contains("; hit"));
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    let node = NodeRef {
        name: "edge-e".to_string(),
        tier: Tier::Edge,
    };
    let report = meridian_purge::publish(
        &log,
        None,
        &Purge::url(url.clone()),
        &[node],
        Duration::from_secs(10),
    )
    .await
    .expect("publish");
    assert!(report.unconfirmed().is_empty(), "{report:?}");
    assert_eq!(report.nodes[0].entries, 1);
    assert!(
        !cache_status(&client, &url).await.contains("; hit"),
        "served after the purge"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    assert!(cache_status(&client, &url).await.contains("; hit"));

    // Cut off from the log: past max-lag the stored copy is revalidated.
    server.kill();
    let before = hits.load(Ordering::SeqCst);
    let (client_ref, url_ref) = (&client, url.as_str());
    eventually("revalidation while lagging", max_lag * 5, || async move {
        cache_status(client_ref, url_ref)
            .await
            .contains("detail=purge-lag")
    })
    .await;
    assert!(hits.load(Ordering::SeqCst) > before, "the origin was asked");
    shutdown.trigger();
}
