//! Helpers for the shield's end-to-end tests: origins that count their
//! requests (and can be slow, killed and restarted on the same port),
//! shields and edges started in-process on 127.0.0.1 port 0, and a bounded
//! `eventually` instead of sleeps. Loopback only.

#![allow(dead_code)] // each test binary uses a different subset

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use meridian_common::{HumanDuration, Shutdown};
use meridian_edge::config::HealthSection;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Health interval used by the tests' shields and edges.
pub const INTERVAL: Duration = Duration::from_millis(100);

/// Polls `check` every 20 ms until it holds; panics after `within`.
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A client with a bounded pool and a timeout, never using a proxy.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(32)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// What an origin has seen, shared with its handler.
#[derive(Default)]
pub struct Counts {
    /// Requests other than health checks.
    pub hits: AtomicUsize,
    pub health_checks: AtomicUsize,
    pub in_flight: AtomicUsize,
    pub per_path: Mutex<HashMap<String, usize>>,
}

/// A test origin. Paths choose its behaviour: containing `nostore` →
/// `Cache-Control: no-store` (every request reaches an origin); `stale` →
/// `max-age=0, stale-if-error=60`; otherwise `public, max-age=60`.
/// Containing `slow` → answers after `slow`. `/healthz` answers 200.
/// Every answer carries `x-origin: <id>`.
pub struct Origin {
    pub id: String,
    pub addr: SocketAddr,
    pub counts: Arc<Counts>,
    slow: Duration,
    shutdown: Shutdown,
    task: Option<JoinHandle<()>>,
}

#[derive(Clone)]
struct OriginState {
    id: HeaderValue,
    counts: Arc<Counts>,
    slow: Duration,
}

impl Origin {
    pub async fn start(id: &str) -> Origin {
        Origin::start_slow(id, Duration::from_millis(800)).await
    }

    pub async fn start_slow(id: &str, slow: Duration) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut o = Origin {
            id: id.to_owned(),
            addr,
            counts: Arc::default(),
            slow,
            shutdown: Shutdown::new(),
            task: None,
        };
        o.serve(listener);
        o
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn hits(&self) -> usize {
        self.counts.hits.load(Ordering::SeqCst)
    }

    pub fn hits_for(&self, path: &str) -> usize {
        let map = self.counts.per_path.lock().expect("lock");
        map.get(path).copied().unwrap_or(0)
    }

    fn serve(&mut self, listener: TcpListener) {
        let state = OriginState {
            id: HeaderValue::from_str(&self.id).expect("id"),
            counts: Arc::clone(&self.counts),
            slow: self.slow,
        };
        let app = axum::Router::new().fallback(answer).with_state(state);
        let stop = self.shutdown.wait();
        self.task = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await;
        }));
    }

    /// Stops accepting and closes idle connections: from now on a connect
    /// to this port is refused.
    pub async fn kill(&mut self) {
        self.shutdown.trigger();
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(5), t)
                .await
                .expect("origin stops within 5s")
                .expect("origin task");
        }
    }

    /// Serves again on the same port, with the same counters.
    pub async fn restart(&mut self) {
        self.shutdown = Shutdown::new();
        let listener = TcpListener::bind(self.addr)
            .await
            .expect("rebind same port");
        self.serve(listener);
    }
}

async fn answer(State(s): State<OriginState>, req: Request) -> impl IntoResponse {
    let path = req.uri().path().to_owned();
    let mut h = HeaderMap::new();
    h.insert("x-origin", s.id.clone());
    if path == "/healthz" {
        s.counts.health_checks.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::OK, h, "ok".to_owned());
    }
    s.counts.hits.fetch_add(1, Ordering::SeqCst);
    s.counts.in_flight.fetch_add(1, Ordering::SeqCst);
    *s.counts
        .per_path
        .lock()
        .expect("lock")
        .entry(path.clone())
        .or_default() += 1;
    if path.contains("slow") {
        tokio::time::sleep(s.slow).await;
    }
    let cc = if path.contains("nostore") {
        "no-store"
    } else if path.contains("stale") {
        "max-age=0, stale-if-error=60"
    } else {
        "public, max-age=60"
    };
    h.insert("cache-control", HeaderValue::from_static(cc));
    // Without a validator a max-age=0 answer could never be reused, so the
    // cache would not keep it for stale-if-error either.
    h.insert("etag", HeaderValue::from_static("\"v1\""));
    s.counts.in_flight.fetch_sub(1, Ordering::SeqCst);
    let body = format!("{} {path}", s.id.to_str().unwrap_or_default());
    (StatusCode::OK, h, body)
}

/// A shield or an edge running in this process.
pub struct Node {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    shutdown: Shutdown,
    task: Option<JoinHandle<()>>,
}

/// Fast health checks for tests: 100 ms, fall and rise 1, a short cool-off.
pub fn fast_health() -> HealthSection {
    HealthSection {
        interval: Some(HumanDuration(INTERVAL)),
        cool_off: Some(HumanDuration(Duration::from_millis(300))),
        ..Default::default()
    }
}

async fn listeners() -> (TcpListener, TcpListener) {
    (
        TcpListener::bind("127.0.0.1:0").await.expect("bind"),
        TcpListener::bind("127.0.0.1:0").await.expect("bind admin"),
    )
}

impl Node {
    /// A shield over `origins` (`URL[;weight=N]`) with `balance`, `name`.
    pub async fn shield(name: &str, origins: &[String], balance: &str) -> Node {
        Node::shield_with(meridian_origin_shield::FileConfig {
            name: Some(name.into()),
            origin: origins.to_vec(),
            balance: Some(balance.parse().expect("balance")),
            health: fast_health(),
            ..Default::default()
        })
        .await
    }

    pub async fn shield_with(file: meridian_origin_shield::FileConfig) -> Node {
        let config = file.validate("test").expect("valid shield config");
        let (l, a) = listeners().await;
        let (addr, admin) = (l.local_addr().expect("addr"), a.local_addr().expect("addr"));
        let shutdown = Shutdown::new();
        let stop = shutdown.clone();
        let task = tokio::spawn(async move {
            meridian_origin_shield::run(l, Some(a), config, stop)
                .await
                .expect("shield runs");
        });
        Node {
            addr,
            admin,
            shutdown,
            task: Some(task),
        }
    }

    /// An edge in front of `upstreams` (shields).
    pub async fn edge(name: &str, upstreams: &[String]) -> Node {
        Node::edge_with(meridian_edge::FileConfig {
            name: Some(name.into()),
            upstream: upstreams.to_vec(),
            health: fast_health(),
            ..Default::default()
        })
        .await
    }

    /// An edge from a whole file config.
    pub async fn edge_with(file: meridian_edge::FileConfig) -> Node {
        let config = file.validate("test").expect("valid edge config");
        let (l, a) = listeners().await;
        let (addr, admin) = (l.local_addr().expect("addr"), a.local_addr().expect("addr"));
        let shutdown = Shutdown::new();
        let stop = shutdown.clone();
        let task = tokio::spawn(async move {
            meridian_edge::run(l, Some(a), config, stop)
                .await
                .expect("edge runs");
        });
        Node {
            addr,
            admin,
            shutdown,
            task: Some(task),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn get_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The admin `/stats` JSON.
    pub async fn stats(&self, c: &reqwest::Client) -> Value {
        c.get(format!("http://{}/stats", self.admin))
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("stats json")
    }

    /// Whether `/stats` shows the upstream at `url` as up.
    pub async fn upstream_up(&self, c: &reqwest::Client, url: &str) -> bool {
        let stats = self.stats(c).await;
        let up = stats["upstreams"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|u| u["url"] == url)
            .map(|u| u["up"] == true);
        up.expect("upstream listed in /stats")
    }

    pub async fn stop(&mut self) {
        self.shutdown.trigger();
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(15), t)
                .await
                .expect("node stops")
                .expect("node task");
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// The site every test requests. The cache key includes the host, and
/// real clients send the site's name to whichever edge they reach, not the
/// edge's address; so do the tests, or each edge would have its own keys.
pub const HOST: &str = "cdn.test";

/// GETs `url` for [`HOST`] and returns (status, x-origin, cache-status, body).
pub async fn get(c: &reqwest::Client, url: &str) -> (u16, String, String, String) {
    let r = c
        .get(url)
        .header("host", HOST)
        .send()
        .await
        .expect("request");
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (status, origin, cs) = (
        r.status().as_u16(),
        header("x-origin"),
        header("cache-status"),
    );
    (status, origin, cs, r.text().await.expect("body"))
}
