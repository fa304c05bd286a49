//! Edges and shields started in this process on ports from the OS, built
//! from their real file configs:
//!
//! ```ignore
//! let shield = Node::shield(&[a.url(), b.url()]).name("s").balance("round-robin").await;
//! let edge = Node::edge(&[shield.base_url()]).await;
//! let tuned = Node::edge_with(meridian_edge::FileConfig { .. }).await;
//! let guarded = Node::edge(&[origin.url()])
//!     .admin_token("ops", "secret-of-16-chars+", &[Scope::Purge])
//!     .config(|c| c.cache.sort_query = Some(true))
//!     .await;
//! ```

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use meridian_common::auth::{Scope, TokenConfig};
use meridian_common::{HumanDuration, Shutdown};
use meridian_edge::config::{AdminSection, HealthSection, LimitsSection, TlsSection};
use meridian_edge::{Listeners, TlsListener};
use meridian_proxy::tls::{Certs, Tls};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Health interval of the nodes [`Node::edge`] and [`Node::shield`] build.
pub const INTERVAL: Duration = Duration::from_millis(100);

/// Fast health checks for tests: every [`INTERVAL`], fall and rise 1, a
/// 300 ms cool-off, so a test sees an upstream go down or come back within
/// a few polls.
pub fn fast_health() -> HealthSection {
    HealthSection {
        interval: Some(HumanDuration(INTERVAL)),
        cool_off: Some(HumanDuration(Duration::from_millis(300))),
        ..Default::default()
    }
}

/// A shield or an edge running in this process.
pub struct Node {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    /// The TLS listener's address and live certificates, when the config
    /// has a `[tls]` section (see `support::tls`).
    pub tls: Option<(SocketAddr, Arc<Certs>)>,
    shutdown: Shutdown,
    task: Option<JoinHandle<()>>,
}

/// A file config a test node can start from: the edge's or the shield's.
pub trait NodeConfig: Send + 'static {
    fn name_mut(&mut self) -> &mut Option<String>;
    fn admin_mut(&mut self) -> &mut AdminSection;
    fn tls(&self) -> &TlsSection;
    /// `[limits]`, for the listen backlog the builder binds with.
    fn limits(&self) -> &LimitsSection;
    /// Validates the config and runs the node on the listeners until
    /// `shutdown`; the task panics if the node fails.
    fn spawn(self, listeners: Listeners, admin: TcpListener, shutdown: Shutdown) -> JoinHandle<()>;
}

impl NodeConfig for meridian_edge::FileConfig {
    fn name_mut(&mut self) -> &mut Option<String> {
        &mut self.name
    }

    fn limits(&self) -> &LimitsSection {
        &self.limits
    }

    fn admin_mut(&mut self) -> &mut AdminSection {
        &mut self.admin
    }

    fn tls(&self) -> &TlsSection {
        &self.tls
    }

    fn spawn(self, listener: Listeners, admin: TcpListener, shutdown: Shutdown) -> JoinHandle<()> {
        let config = self.validate("test").expect("valid edge config");
        tokio::spawn(async move {
            meridian_edge::run(listener, Some(admin), config, shutdown)
                .await
                .expect("edge runs");
        })
    }
}

impl NodeConfig for meridian_origin_shield::FileConfig {
    fn name_mut(&mut self) -> &mut Option<String> {
        &mut self.name
    }

    fn limits(&self) -> &LimitsSection {
        &self.limits
    }

    fn admin_mut(&mut self) -> &mut AdminSection {
        &mut self.admin
    }

    fn tls(&self) -> &TlsSection {
        &self.tls
    }

    fn spawn(self, listener: Listeners, admin: TcpListener, shutdown: Shutdown) -> JoinHandle<()> {
        let config = self.validate("test").expect("valid shield config");
        tokio::spawn(async move {
            meridian_origin_shield::run(listener, Some(admin), config, shutdown)
                .await
                .expect("shield runs");
        })
    }
}

/// A node about to start: set what the test cares about, then `.await` it.
#[must_use = "a node starts when awaited"]
pub struct NodeBuilder<C> {
    config: C,
    /// Secret files of `admin_token`, kept until the node has read them.
    secrets: Vec<tempfile::NamedTempFile>,
}

impl Node {
    /// An edge named "edge-1" in front of `upstreams` (an origin, or
    /// shields), with [`fast_health`].
    pub fn edge(upstreams: &[impl AsRef<str>]) -> NodeBuilder<meridian_edge::FileConfig> {
        Node::edge_with(meridian_edge::FileConfig {
            name: Some("edge-1".into()),
            upstream: upstreams.iter().map(|u| u.as_ref().to_owned()).collect(),
            health: fast_health(),
            ..Default::default()
        })
    }

    /// An edge from exactly this file config.
    pub fn edge_with(config: meridian_edge::FileConfig) -> NodeBuilder<meridian_edge::FileConfig> {
        NodeBuilder {
            config,
            secrets: Vec::new(),
        }
    }

    /// A shield named "shield-1" over `origins` (`URL[;weight=N]`), with
    /// the default balance and [`fast_health`].
    pub fn shield(origins: &[impl AsRef<str>]) -> NodeBuilder<meridian_origin_shield::FileConfig> {
        Node::shield_with(meridian_origin_shield::FileConfig {
            name: Some("shield-1".into()),
            origin: origins.iter().map(|o| o.as_ref().to_owned()).collect(),
            health: fast_health(),
            ..Default::default()
        })
    }

    /// A shield from exactly this file config.
    pub fn shield_with(
        config: meridian_origin_shield::FileConfig,
    ) -> NodeBuilder<meridian_origin_shield::FileConfig> {
        NodeBuilder {
            config,
            secrets: Vec::new(),
        }
    }

    /// This node's base URL, to list it as an upstream.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The URL of `path` on this node.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The URL of `path` on this node's admin listener.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// The admin `/stats` JSON.
    pub async fn stats(&self, c: &reqwest::Client) -> Value {
        c.get(self.admin_url("/stats"))
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

    /// Stops the node and waits until it has (in-flight requests finish).
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

impl<C: NodeConfig> NodeBuilder<C> {
    /// The name in `Cache-Status` and `Via`.
    pub fn name(mut self, name: &str) -> Self {
        *self.config.name_mut() = Some(name.into());
        self
    }

    /// Changes the file config before the node starts.
    pub fn config(mut self, f: impl FnOnce(&mut C)) -> Self {
        f(&mut self.config);
        self
    }

    /// An `[[admin.token]]` table, as an operator writes one: `name`,
    /// `scopes`, and a `secret-file` (a temporary file) holding `secret`.
    pub fn admin_token(mut self, name: &str, secret: &str, scopes: &[Scope]) -> Self {
        let mut file = tempfile::NamedTempFile::new().expect("secret file");
        std::io::Write::write_all(&mut file, format!("{secret}\n").as_bytes()).expect("write");
        self.config.admin_mut().token.push(TokenConfig {
            name: name.into(),
            secret_file: file.path().to_owned(),
            scopes: Some(scopes.to_vec()),
        });
        self.secrets.push(file);
        self
    }

    /// Binds the listener, the admin listener and (with a `[tls]`
    /// section) a TLS listener, all on ports from the OS (the proxy
    /// listeners with the config's `limits.listen-backlog`, as a node
    /// binds them), and starts the node.
    pub async fn start(self) -> Node {
        let backlog = self
            .config
            .limits()
            .validate("test")
            .expect("valid [limits]")
            .listen_backlog;
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let listener = meridian_proxy::server::listen(loopback, backlog).expect("bind");
        let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
        let (addr, admin_addr) = (
            listener.local_addr().expect("addr"),
            admin.local_addr().expect("addr"),
        );
        let tls = match self.config.tls().listen {
            None => None,
            Some(_) => {
                let settings = self
                    .config
                    .tls()
                    .validate("test", std::path::Path::new(""), Some(addr))
                    .expect("valid [tls]")
                    .expect("a TLS listener");
                let listener = meridian_proxy::server::listen(loopback, backlog).expect("bind tls");
                let tls = Arc::new(Tls::new(&settings).expect("certificates load"));
                Some(TlsListener { listener, tls })
            }
        };
        let tls_info = tls.as_ref().map(|t| {
            (
                t.listener.local_addr().expect("addr"),
                Arc::clone(t.tls.certs()),
            )
        });
        let listeners = Listeners {
            plain: Some(listener),
            tls,
        };
        let shutdown = Shutdown::new();
        let task = self.config.spawn(listeners, admin, shutdown.clone());
        Node {
            addr,
            admin: admin_addr,
            tls: tls_info,
            shutdown,
            task: Some(task),
        }
    }
}

impl NodeBuilder<meridian_origin_shield::FileConfig> {
    /// How the shield spreads requests over its origins ("round-robin",
    /// "consistent-hash", ...).
    pub fn balance(mut self, balance: &str) -> Self {
        self.config.balance = Some(balance.parse().expect("balance"));
        self
    }

    /// No active health checks: for tests of how keys or requests are
    /// spread, where a check timing out on a loaded machine would move
    /// them and prove nothing.
    pub fn without_health_checks(mut self) -> Self {
        self.config.health.interval = Some(HumanDuration(Duration::ZERO));
        self
    }

    /// Failed checks in a row that take an origin out (1 by default): more
    /// than one keeps a single slow check on a loaded machine from moving
    /// keys.
    pub fn health_fall(mut self, fall: u32) -> Self {
        self.config.health.fall = Some(fall);
        self
    }
}

impl<C: NodeConfig> IntoFuture for NodeBuilder<C> {
    type Output = Node;
    type IntoFuture = Pin<Box<dyn Future<Output = Node> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.start())
    }
}
