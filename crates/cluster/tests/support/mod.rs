//! A small real cluster for the dashboard's tests, in this process on
//! ports from the OS: the sample origin (counting what it answers) on a
//! folder of files, one shield and three edges (two in the same place)
//! following a real purge log, and a [`TestControl`] over them whose
//! `stop` really shuts a node down and `start` brings it back on the same
//! addresses. Slow and fail are only recorded as the node's fault: the
//! links that apply them are not part of this cluster.
//!
//! ```ignore
//! let cluster = TestCluster::start().await;
//! let dash = cluster.dashboard().await;        // the router on 127.0.0.1:0
//! let body = cluster.get("edge-eu", "/page.txt").await;
//! ```

#![allow(dead_code)] // each test binary uses its own part

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use meridian_cluster::control::{
    Action, BoxFuture, Control, ControlError, Fault, NodeInfo, NodeKind, OriginCounters,
    UpstreamLink,
};
use meridian_common::Shutdown;
use meridian_common::auth::Tokens;
use meridian_purge::{Keeper, KeeperConfig, NodeRef, Tier};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The cluster token (every scope).
pub const TOKEN: &str = "dashboard-test-token-0123456789";

/// The edges, with their place; every edge fetches from the shield.
pub const EDGES: [(&str, &str, f64, f64); 3] = [
    ("edge-eu", "europe-west", 51.5, -0.1),
    ("edge-ap", "asia-east", 35.7, 139.7),
    ("edge-ap-2", "asia-east", 35.7, 139.7),
];
pub const SHIELD: &str = "shield-eu";
pub const ORIGIN: &str = "origin";

/// How a stoppable node runs.
#[derive(Clone)]
enum Spec {
    Edge(meridian_edge::Config),
    Shield(meridian_origin_shield::ShieldConfig),
}

struct Proc {
    spec: Spec,
    addr: SocketAddr,
    admin: SocketAddr,
    running: Option<(Shutdown, JoinHandle<()>)>,
}

impl Proc {
    async fn start(&mut self) -> Result<(), String> {
        let listener = bind_again(self.addr).await?;
        let admin = bind_again(self.admin).await?;
        self.start_on(listener, admin);
        Ok(())
    }

    fn start_on(&mut self, listener: TcpListener, admin: TcpListener) {
        let shutdown = Shutdown::new();
        let s = shutdown.clone();
        let task = match self.spec.clone() {
            Spec::Edge(config) => tokio::spawn(async move {
                if let Err(e) = meridian_edge::run(listener, Some(admin), config, s).await {
                    eprintln!("edge stopped: {e}");
                }
            }),
            Spec::Shield(config) => tokio::spawn(async move {
                if let Err(e) = meridian_origin_shield::run(listener, Some(admin), config, s).await
                {
                    eprintln!("shield stopped: {e}");
                }
            }),
        };
        self.running = Some((shutdown, task));
    }

    /// Shuts the node down and waits (bounded) until its listeners closed.
    async fn stop(&mut self) {
        if let Some((shutdown, task)) = self.running.take() {
            shutdown.trigger();
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

/// Binds `addr` again after its node stopped (the port may take a moment
/// to be free).
async fn bind_again(addr: SocketAddr) -> Result<TcpListener, String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) if Instant::now() >= deadline => return Err(format!("bind {addr}: {e}")),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The [`Control`] over the test cluster.
pub struct TestControl {
    infos: Vec<NodeInfo>,
    procs: HashMap<String, tokio::sync::Mutex<Proc>>,
    faults: std::sync::Mutex<HashMap<String, Fault>>,
    origin: Arc<(AtomicU64, AtomicU64)>,
    log: String,
}

impl TestControl {
    fn set_fault(&self, name: &str, fault: Fault) {
        if let Ok(mut f) = self.faults.lock() {
            f.insert(name.to_owned(), fault);
        }
    }

    /// Shuts a node down behind the cluster's back (its fault stays
    /// "none"), as a crash would.
    pub async fn crash(&self, name: &str) {
        if let Some(p) = self.procs.get(name) {
            p.lock().await.stop().await;
        }
    }
}

impl Control for TestControl {
    fn nodes(&self) -> Vec<NodeInfo> {
        self.infos.clone()
    }

    fn fault(&self, name: &str) -> Option<Fault> {
        self.faults.lock().ok()?.get(name).copied()
    }

    fn act<'a>(
        &'a self,
        name: &'a str,
        action: Action,
    ) -> BoxFuture<'a, Result<Fault, ControlError>> {
        Box::pin(async move {
            let now = self
                .fault(name)
                .ok_or_else(|| ControlError::UnknownNode(name.to_owned()))?;
            let proc = self.procs.get(name);
            let fault = match action {
                Action::Stop => {
                    let p = proc.ok_or_else(|| refused(name, "cannot be stopped here"))?;
                    p.lock().await.stop().await;
                    Fault::Stopped
                }
                Action::Start if now != Fault::Stopped => {
                    return Err(refused(name, "is running"));
                }
                Action::Start => {
                    let p = proc.ok_or_else(|| refused(name, "cannot be started here"))?;
                    p.lock()
                        .await
                        .start()
                        .await
                        .map_err(ControlError::Refused)?;
                    Fault::None
                }
                _ if now == Fault::Stopped => return Err(refused(name, "is stopped")),
                Action::Slow(d) => Fault::Slow {
                    ms: u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
                },
                Action::Fail => Fault::Failing,
                Action::Heal => Fault::None,
            };
            self.set_fault(name, fault);
            Ok(fault)
        })
    }

    fn purge_log(&self) -> String {
        self.log.clone()
    }

    fn token(&self) -> String {
        TOKEN.to_owned()
    }

    fn origin_counters(&self) -> OriginCounters {
        OriginCounters {
            requests: self.origin.0.load(Ordering::Relaxed),
            bytes: self.origin.1.load(Ordering::Relaxed),
        }
    }
}

fn refused(name: &str, why: &str) -> ControlError {
    ControlError::Refused(format!("`{name}` {why}"))
}

/// The running test cluster.
pub struct TestCluster {
    pub control: Arc<TestControl>,
    pub shutdown: Shutdown,
    pub client: reqwest::Client,
    _dirs: Vec<tempfile::TempDir>,
}

impl TestCluster {
    pub async fn start() -> TestCluster {
        let shutdown = Shutdown::new();
        let site = tempfile::tempdir().expect("site dir");
        std::fs::write(site.path().join("page.txt"), "a page of the sample site\n").expect("page");
        std::fs::create_dir(site.path().join("news")).expect("news dir");
        std::fs::write(site.path().join("news/today.txt"), "today's news\n").expect("news");
        let state = tempfile::tempdir().expect("log dir");

        // The origin, counting requests and body bytes.
        let counts = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
        let origin_addr = serve_origin(site.path(), Arc::clone(&counts), shutdown.clone()).await;

        // The purge log every node follows.
        let mut refs = vec![NodeRef {
            name: SHIELD.into(),
            tier: Tier::Shield,
        }];
        refs.extend(EDGES.iter().map(|e| NodeRef {
            name: e.0.into(),
            tier: Tier::Edge,
        }));
        let tokens = Arc::new(Tokens::single("cluster", TOKEN));
        let keeper_config = KeeperConfig::new(state.path().to_owned(), refs, tokens);
        let keeper = Keeper::open(keeper_config).expect("purge log");
        let log_addr = serve(
            meridian_purge::keeper_http::router(keeper),
            shutdown.clone(),
        )
        .await;
        let log = format!("http://{log_addr}");

        let mut infos = vec![NodeInfo {
            name: ORIGIN.into(),
            kind: NodeKind::Origin,
            region: "us-east".into(),
            latitude: 39.0,
            longitude: -77.5,
            url: format!("http://{origin_addr}"),
            admin: None,
            upstreams: Vec::new(),
        }];
        let mut procs = HashMap::new();

        let mut shield = meridian_origin_shield::FileConfig {
            name: Some(SHIELD.into()),
            region: Some("europe".into()),
            origin: vec![format!("http://{origin_addr}")],
            // No active checks: the origin counts only what the CDN fetched.
            health: meridian_proxy::config::HealthSection {
                interval: Some(meridian_common::HumanDuration(Duration::ZERO)),
                ..Default::default()
            },
            ..Default::default()
        };
        shield.purge.log = Some(log.clone());
        let mut shield = shield.validate("test").expect("shield config");
        shield.engine.purge_token = Some(TOKEN.into());
        let shield_proc = proc(Spec::Shield(shield)).await;
        infos.push(NodeInfo {
            name: SHIELD.into(),
            kind: NodeKind::Shield,
            region: "europe".into(),
            latitude: 50.1,
            longitude: 8.7,
            url: format!("http://{}", shield_proc.addr),
            admin: Some(format!("http://{}", shield_proc.admin)),
            upstreams: vec![UpstreamLink {
                name: ORIGIN.into(),
                rtt_ms: 92.0,
            }],
        });
        let shield_url = format!("http://{}", shield_proc.addr);
        procs.insert(SHIELD.to_owned(), shield_proc);

        for (name, region, lat, lon) in EDGES {
            let mut edge = meridian_edge::FileConfig {
                name: Some(name.into()),
                region: Some(region.into()),
                upstream: vec![shield_url.clone()],
                ..Default::default()
            };
            edge.purge.log = Some(log.clone());
            let mut edge = edge.validate("test").expect("edge config");
            edge.purge_token = Some(TOKEN.into());
            let p = proc(Spec::Edge(edge)).await;
            infos.push(NodeInfo {
                name: name.into(),
                kind: NodeKind::Edge,
                region: region.into(),
                latitude: lat,
                longitude: lon,
                url: format!("http://{}", p.addr),
                admin: Some(format!("http://{}", p.admin)),
                upstreams: vec![UpstreamLink {
                    name: SHIELD.into(),
                    rtt_ms: if region == "europe-west" { 17.0 } else { 236.0 },
                }],
            });
            procs.insert(name.to_owned(), p);
        }

        let faults = infos
            .iter()
            .map(|n| (n.name.clone(), Fault::None))
            .collect();
        let control = Arc::new(TestControl {
            infos,
            procs: procs
                .into_iter()
                .map(|(k, v)| (k, tokio::sync::Mutex::new(v)))
                .collect(),
            faults: std::sync::Mutex::new(faults),
            origin: counts,
            log,
        });
        TestCluster {
            control,
            shutdown,
            client: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client"),
            _dirs: vec![site, state],
        }
    }

    /// The dashboard's router over this cluster, served on 127.0.0.1:0.
    pub async fn dashboard(&self) -> SocketAddr {
        self.dashboard_with(meridian_cluster::dashboard::Settings::default())
            .await
    }

    pub async fn dashboard_with(
        &self,
        settings: meridian_cluster::dashboard::Settings,
    ) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let control: Arc<dyn Control> = self.control.clone();
        let app = meridian_cluster::dashboard::router_with(
            control,
            addr,
            self.shutdown.clone(),
            settings,
        );
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown.wait())
                .await;
        });
        addr
    }

    /// A node's client URL.
    pub fn url(&self, node: &str, path: &str) -> String {
        let info = self.control.infos.iter().find(|n| n.name == node);
        format!("{}{path}", info.map_or("", |n| n.url.as_str()))
    }

    /// `GET path` through `node`: the status and body.
    pub async fn get(&self, node: &str, path: &str) -> Result<(u16, String), reqwest::Error> {
        let r = self.client.get(self.url(node, path)).send().await?;
        let status = r.status().as_u16();
        Ok((status, r.text().await?))
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

async fn proc(spec: Spec) -> Proc {
    let a = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let b = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let mut p = Proc {
        spec,
        addr: a.local_addr().expect("addr"),
        admin: b.local_addr().expect("addr"),
        running: None,
    };
    p.start_on(a, b);
    p
}

/// Serves `app` on 127.0.0.1:0 until `shutdown`.
async fn serve(app: axum::Router, shutdown: Shutdown) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.wait())
            .await;
    });
    addr
}

/// The sample origin on `root` (max-age=60, files tagged by folder),
/// counting each request and the body bytes it declared.
async fn serve_origin(
    root: &std::path::Path,
    counts: Arc<(AtomicU64, AtomicU64)>,
    shutdown: Shutdown,
) -> SocketAddr {
    let config = meridian_origin::OriginConfig {
        root: root.to_owned(),
        cache_control: Some(http::HeaderValue::from_static("max-age=60")),
        delay: Duration::ZERO,
        rate: None,
        surrogate_key_by_dir: true,
    };
    let app = meridian_origin::router(config)
        .await
        .expect("origin")
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let counts = Arc::clone(&counts);
                async move {
                    let r = next.run(req).await;
                    counts.0.fetch_add(1, Ordering::Relaxed);
                    let len = r
                        .headers()
                        .get(http::header::CONTENT_LENGTH)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(0);
                    counts.1.fetch_add(len, Ordering::Relaxed);
                    r
                }
            },
        ));
    serve(app, shutdown).await
}

// The workspace's one bounded wait (polls every 20 ms).
#[path = "../../../../tests/support/eventually.rs"]
mod eventually_impl;
pub use eventually_impl::eventually;
