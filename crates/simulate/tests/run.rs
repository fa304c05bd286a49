//! The simulator against a real in-process cluster (the shipped
//! `config/cluster.toml` on ports from the OS): the runner on a small
//! hand-built workload, and the short seeded run end to end.

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

/// Clients at known places of the shipped database (country centres).
fn hand_workload() -> Workload {
    let places: [(&str, &str, Region, f64, f64); 3] = [
        ("81.2.69.142", "GB", Region::Europe, 54.0, -2.0),
        ("1.0.0.1", "AU", Region::Oceania, -27.0, 133.0),
        ("8.8.8.8", "US", Region::NorthAmerica, 38.0, -97.0),
    ];
    let paths: Vec<Arc<str>> = ["/", "/news/", "/docs/", "/about.html"]
        .iter()
        .map(|p| Arc::from(*p))
        .collect();
    let clients = (0..12u32)
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
                requests: (0..10)
                    .map(|k| Request {
                        path: paths[(i as usize + k) % paths.len()].clone(),
                        think_ms: 30,
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
            clients: 12,
            requests: 120,
            duration_ms: 600,
            zipf_s: 1.0,
        },
        clients,
        weights_source: "hand-built".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_measures_every_routing_on_a_hand_built_workload() {
    let (cluster, target, _state) = start().await;
    let w = hand_workload();
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
    assert!(d.overall.p50_ms < o.overall.p50_ms);
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
