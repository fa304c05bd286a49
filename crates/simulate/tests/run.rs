//! The simulator against a real in-process cluster (the shipped
//! `config/cluster.toml` on ports from the OS): the runner on a small
//! hand-built workload, the short seeded run end to end (its
//! report rendered by headless Chromium), and each scenario.

#[path = "../../cluster/tests/browser/mod.rs"]
mod browser;

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use meridian_cluster::config::ClusterConfig;
use meridian_cluster::run::Cluster;
use meridian_simulate::run::{Settings, Target, run};
use meridian_simulate::{Client, Region, Request, Routing, Scenario, Workload, WorkloadParams};

fn config() -> ClusterConfig {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/cluster.toml");
    ClusterConfig::load(&path)
        .expect("config/cluster.toml")
        .with_ephemeral_ports()
}

/// One cluster at a time in this binary: each test's figures are its own
/// cluster's, not the neighbours' load.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn start() -> (Cluster, Target, tempfile::TempDir) {
    let state = tempfile::tempdir().expect("tempdir");
    let mut c = config();
    c.state_dir = state.path().to_path_buf();
    let cluster = Cluster::start(c.clone()).await.expect("the cluster starts");
    let target = Target {
        dashboard: cluster.dashboard(),
        token: cluster.token().to_owned(),
        config: c,
        label: "spawned in-process".into(),
        database: "shipped".into(),
    };
    (cluster, target, state)
}

/// Clients at known places of the shipped database (country centres):
/// `clients` of them, each asking for `paths` in turn `per_client` times,
/// `think_ms` apart, over a window of `duration_ms`.
fn hand_workload(
    clients: u32,
    paths: &[&str],
    per_client: usize,
    think_ms: u64,
    duration_ms: u64,
) -> Workload {
    let places: [(&str, &str, Region, f64, f64); 3] = [
        ("81.2.69.142", "GB", Region::Europe, 54.0, -2.0),
        ("1.0.0.1", "AU", Region::Oceania, -27.0, 133.0),
        ("8.8.8.8", "US", Region::NorthAmerica, 38.0, -97.0),
    ];
    let paths: Vec<Arc<str>> = paths.iter().map(|p| Arc::from(*p)).collect();
    let clients: Vec<Client> = (0..clients)
        .map(|i| {
            let (ip, cc, region, lat, lon) = places[i as usize % places.len()];
            Client {
                id: i,
                ip: ip.parse::<IpAddr>().expect("ip"),
                country: cc.into(),
                region,
                latitude: lat,
                longitude: lon,
                start_ms: u64::from(i) * 20,
                requests: (0..per_client)
                    .map(|k| Request {
                        path: paths[(i as usize + k) % paths.len()].clone(),
                        think_ms: if k == 0 { 0 } else { think_ms },
                        range: None,
                    })
                    .collect(),
                random_pick: i * 7,
            }
        })
        .collect();
    Workload {
        params: WorkloadParams {
            seed: 0,
            clients: clients.len() as u32,
            requests: clients.iter().map(|c| c.requests.len() as u64).sum(),
            duration_ms,
            zipf_s: 1.0,
        },
        clients,
        weights_source: "hand-built".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_measures_every_routing_on_a_hand_built_workload() {
    let _serial = SERIAL.lock().await;
    let (cluster, target, _state) = start().await;
    let w = hand_workload(12, &["/", "/news/", "/docs/", "/about.html"], 10, 30, 600);
    let report = run(&target, &w, &Settings::default()).await.expect("run");
    assert_eq!(report.routings.len(), 3);
    for r in &report.routings {
        assert_eq!(r.overall.requests, 120, "{:?}", r.routing);
        assert_eq!(r.overall.ok, 120, "{:?}: {:#?}", r.routing, r.overall);
    }
    let by = |x: Routing| {
        report
            .routings
            .iter()
            .find(|r| r.routing == x)
            .expect("routing")
    };
    let (d, o) = (by(Routing::Director), by(Routing::Origin));
    eprintln!("{:#?}", d.overall);
    eprintln!("{:#?}", by(Routing::Random).overall);
    eprintln!("{:#?}", o.overall);
    assert!(d.overall.edge_hits > 0, "{:#?}", d.overall);
    assert_eq!(o.overall.origin_requests, 120);
    assert!(d.overall.origin_requests < 120);
    // The London clients went to eu-west, the Sydney ones to ap-southeast.
    let route = |lat: f64| {
        report
            .routes
            .iter()
            .find(|r| (r.latitude - lat).abs() < 0.01)
            .map(|r| r.edge.clone())
    };
    assert_eq!(
        route(54.0).as_deref(),
        Some("eu-west"),
        "{:?}",
        report.routes
    );
    assert_eq!(
        route(-27.0).as_deref(),
        Some("ap-southeast"),
        "{:?}",
        report.routes
    );
    let _ = Scenario::Steady;
    cluster.shutdown().await;
}

/// A short run's workload: popularity steeper than the web's 1.0, so a
/// few hundred requests warm the caches as a long run's thousands do.
fn params(seed: u64, clients: u32, requests: u64, duration_ms: u64) -> WorkloadParams {
    WorkloadParams {
        seed,
        clients,
        requests,
        duration_ms,
        zipf_s: 1.3,
    }
}

fn routing(report: &meridian_simulate::Report, r: Routing) -> &meridian_simulate::RoutingResult {
    report
        .routings
        .iter()
        .find(|x| x.routing == r)
        .expect("routing in the report")
}

/// A run of the real workload (`params(seed, clients, requests,
/// duration_ms)`) with `settings`, on a cluster of its own (one at a time);
/// answers the cluster (still running, for checks of its state) and the
/// report.
async fn scenario(
    seed: u64,
    clients: u32,
    requests: u64,
    duration_ms: u64,
    settings: Settings,
) -> (Cluster, meridian_simulate::Report, tempfile::TempDir) {
    let (cluster, target, state) = start().await;
    let (w, _) = meridian_simulate::workload_for(
        &target.config,
        params(seed, clients, requests, duration_ms),
    )
    .expect("workload");
    let report = run(&target, &w, &settings).await.expect("run");
    (cluster, report, state)
}

/// The test: a short seeded run on the real workload (addresses
/// from the shipped database, the sample site's assets).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_seeded_run_shows_what_the_cdn_buys() {
    let _serial = SERIAL.lock().await;
    let (cluster, target, _state) = start().await;
    let (w, _) = meridian_simulate::workload_for(&target.config, params(3, 30, 600, 3000))
        .expect("workload");
    assert_eq!(w.requests(), 600);
    let report = run(&target, &w, &Settings::default()).await.expect("run");
    let (d, o) = (
        routing(&report, Routing::Director),
        routing(&report, Routing::Origin),
    );
    assert!(
        d.overall.edge_hit_ratio.is_some_and(|h| h > 0.0),
        "{:#?}",
        d.overall
    );
    assert!(
        d.overall.p50_ms < o.overall.p50_ms,
        "{:#?}\n{:#?}",
        d.overall,
        o.overall
    );
    // Fewer origin requests than client requests: as the origin counted
    // them, and as the responses tell.
    assert!(d.origin_counted.requests < 600, "{:?}", d.origin_counted);
    assert!(d.overall.origin_requests < 600);
    assert!(o.origin_counted.requests >= 600, "{:?}", o.origin_counted);
    assert_eq!(report.params.workload.seed, 3);
    assert!(!report.places.is_empty() && !report.routes.is_empty());
    cluster.shutdown().await;

    // The report parses as HTML with the map and charts, and a real
    // browser renders them.
    let html = meridian_simulate::report::html(&report);
    let doc = scraper::Html::parse_document(&html);
    assert!(doc.errors.is_empty(), "{:?}", doc.errors);
    let count = |doc: &scraper::Html, s: &str| {
        doc.select(&scraper::Selector::parse(s).expect("selector"))
            .count()
    };
    assert_eq!(count(&doc, "svg#map"), 1);
    assert_eq!(count(&doc, "svg#map .place"), report.places.len());
    if browser::unavailable() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("report.html");
    std::fs::write(&file, &html).expect("write the report");
    let url = format!("file://{}", file.display());
    let dom = tokio::task::spawn_blocking(move || browser::dump_dom(&url))
        .await
        .expect("chromium");
    let rendered = scraper::Html::parse_document(&dom);
    let edges = report.nodes.iter().filter(|n| n.kind == "edge").count();
    assert_eq!(count(&rendered, "svg#map .edge"), edges, "{dom:.400}");
    assert_eq!(count(&rendered, "svg#map .route"), report.routes.len());
    assert_eq!(count(&rendered, "svg#latency polyline.cdf"), 3);
    assert!(count(&rendered, "svg#regions g.region") > 0);
    assert_eq!(count(&rendered, "svg#timeline polyline.origin-line"), 3);
}

/// `purge`: the tag purge happens at half time in every routing, and the
/// origin sees requests again after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_scenario_purges_at_half_time() {
    let _serial = SERIAL.lock().await;
    let (cluster, report, _state) = scenario(
        5,
        40,
        400,
        2000,
        Settings {
            scenario: Scenario::Purge,
            purge_tag: Some("home".into()),
            routings: Some(vec![Routing::Director]),
            ..Settings::default()
        },
    )
    .await;
    let d = routing(&report, Routing::Director);
    let purge = d
        .events
        .iter()
        .find(|e| e.what.contains("purge"))
        .expect("a purge event");
    assert!(!purge.what.contains("failed"), "{purge:?}");
    assert!((900..1600).contains(&purge.t_ms), "{purge:?}");
    assert_eq!(d.overall.errors, 0, "{:#?}", d.overall);
    cluster.shutdown().await;
}

/// `origin-outage`: the origin fails for the middle third; through the
/// CDN clients keep being served (from cache, stale if need be), straight
/// to the origin they get errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_outage_hurts_only_the_clients_without_a_cdn() {
    let _serial = SERIAL.lock().await;
    let (cluster, report, _state) = scenario(
        9,
        40,
        400,
        3000,
        Settings {
            scenario: Scenario::OriginOutage,
            routings: Some(vec![Routing::Director, Routing::Origin]),
            ..Settings::default()
        },
    )
    .await;
    let (d, o) = (
        routing(&report, Routing::Director),
        routing(&report, Routing::Origin),
    );
    for r in [d, o] {
        let verbs: Vec<&str> = r.events.iter().map(|e| e.what.as_str()).collect();
        assert_eq!(verbs, ["fail origin", "heal origin"], "{:?}", r.routing);
    }
    assert!(o.overall.errors > 0, "{:#?}", o.overall);
    assert!(
        d.overall.errors < o.overall.errors,
        "{:#?}\n{:#?}",
        d.overall,
        o.overall
    );
    // The cluster is healed afterwards.
    assert_eq!(
        cluster.control().fault("origin"),
        Some(meridian_cluster::control::Fault::None)
    );
    cluster.shutdown().await;
}

/// `edge-down`: the stopped edge's clients move to other edges and keep
/// being served; the report says where they went.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_down_moves_its_clients() {
    let _serial = SERIAL.lock().await;
    let (cluster, report, _state) = scenario(
        11,
        60,
        600,
        3000,
        Settings {
            scenario: Scenario::EdgeDown,
            edge_down: Some("eu-west".into()),
            routings: Some(vec![Routing::Director]),
            ..Settings::default()
        },
    )
    .await;
    let d = routing(&report, Routing::Director);
    let down = d.edge_down.as_ref().expect("the edge-down figures");
    assert_eq!(down.edge, "eu-west");
    assert!(down.clients > 0 && down.before.requests > 0, "{down:#?}");
    assert!(
        down.moved_to.iter().all(|(e, _)| e != "eu-west") && !down.moved_to.is_empty(),
        "{down:#?}"
    );
    assert_eq!(down.after.errors, 0, "{down:#?}");
    // It is started again afterwards.
    assert_eq!(
        cluster.control().fault("eu-west"),
        Some(meridian_cluster::control::Fault::None)
    );
    cluster.shutdown().await;
}

/// `origin-outage` on a page that expires during it: the live scores
/// (`max-age=5, stale-if-error=60`) are served stale through the CDN while
/// the origin fails, and counted; straight to the origin they fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_if_error_serves_through_an_outage_and_is_counted() {
    let _serial = SERIAL.lock().await;
    let (cluster, target, _state) = start().await;
    // Every 400 ms for 10.4 s: cached at once, stale from 5 s, the outage
    // from 4 s to 8 s.
    let w = hand_workload(3, &["/live/scores.json"], 27, 400, 12_000);
    let settings = Settings {
        scenario: Scenario::OriginOutage,
        routings: Some(vec![Routing::Director, Routing::Origin]),
        ..Settings::default()
    };
    let report = run(&target, &w, &settings).await.expect("run");
    let (d, o) = (
        routing(&report, Routing::Director),
        routing(&report, Routing::Origin),
    );
    assert!(d.overall.stale > 0, "{:#?}", d.overall);
    assert_eq!(d.overall.errors, 0, "{:#?}", d.overall);
    assert_eq!(o.overall.stale, 0);
    assert!(o.overall.errors > 0, "{:#?}", o.overall);
    cluster.shutdown().await;
}
