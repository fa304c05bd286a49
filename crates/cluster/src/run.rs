//! Starting the cluster: every listener is bound first (so a taken port is
//! an error naming the node and its key before anything runs), then the
//! nodes, the relays between them, the director with the purge log and the
//! dashboard start on one tokio runtime.
//!
//! Each controllable node (origin, shields, edges) lives in a slot: its
//! addresses, its running task and a `watch` of its [`Target`] that every
//! relay into it reads. Stopping a node shuts it down (its listeners close,
//! the relays drop connections into it); starting it binds the same
//! addresses again with an empty cache, as a restarted process would.
//! With `cluster.processes` a shield or edge slot runs a child process
//! instead of a task (`run/process.rs`): stopping it is a SIGKILL.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use meridian_common::auth::{TokenConfig, Tokens};
use meridian_common::{ByteSize, HumanDuration, Shutdown};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

use crate::config::{ClusterConfig, DIRECTOR_NAME, ORIGIN_NAME, Place};
use crate::control::{
    Action, BoxFuture, Control, ControlError, Fault, NodeInfo, NodeKind, OriginCounters,
    UpstreamLink,
};
use crate::link::{Target, serve_front, serve_link};

mod process;
pub use process::{NODES_DIR, log_file, pid_file};

/// How long a stopping node may take to close its connections.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// The token's file in the state directory (mode 0600).
pub const TOKEN_FILE: &str = "admin.token";

/// Why the cluster could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on {addr} for {what}{hint}")]
    Bind {
        addr: SocketAddr,
        what: String,
        hint: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(#[from] meridian_common::ConfigError),
    #[error("state directory {}: {source}", path.display())]
    State {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {reason}")]
    Node { what: String, reason: String },
}

/// Binds `addr` for `what` ("edge `eu-west` admin (edge[0].admin in FILE)")
/// with the nodes' default `limits.listen-backlog`, as `Listeners::bind`
/// binds a node's proxy listeners.
async fn bind(addr: SocketAddr, what: String) -> Result<TcpListener, Error> {
    let backlog = meridian_proxy::config::Limits::default().listen_backlog;
    meridian_proxy::server::listen(addr, backlog).map_err(|source| {
        let hint = if source.kind() == std::io::ErrorKind::AddrInUse {
            format!(
                " (port {} is taken: is another `meridian cluster up` running? \
                 Stop it, or give this node another port)",
                addr.port()
            )
        } else {
            String::new()
        };
        Error::Bind {
            addr,
            what,
            hint,
            source,
        }
    })
}

fn local(l: &TcpListener) -> Result<SocketAddr, Error> {
    l.local_addr().map_err(|e| Error::Node {
        what: "listener".into(),
        reason: e.to_string(),
    })
}

/// What a slot runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Origin,
    Shield(usize),
    Edge(usize),
}

/// One controllable node.
struct Slot {
    name: String,
    role: Role,
    /// Its proxy (or origin) listener address; for an edge behind a front
    /// without `listen`, the port the OS gave it first.
    listen: SocketAddr,
    /// Whether `listen` was asked for (rebound as is) or from the OS.
    fixed_listen: bool,
    admin: Option<SocketAddr>,
    /// An edge's HTTPS listener (`cluster.https`), from the OS at start and
    /// rebound as is.
    tls: Option<SocketAddr>,
    target: watch::Sender<Target>,
    state: Mutex<SlotState>,
}

struct SlotState {
    running: Option<(Shutdown, JoinHandle<()>)>,
}

/// The running cluster. Dropping it does not stop it; call
/// [`Cluster::shutdown`].
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClusterConfig,
    token: String,
    /// The CA and the edges' certificates, with `cluster.https`.
    tls: Option<ClusterTls>,
    nodes: Vec<NodeInfo>,
    slots: Vec<Slot>,
    /// Per shield, the upstream URL of its link to the origin.
    shield_origin_links: Vec<String>,
    /// Per edge, `URL;id=SHIELD` of its links to its shields.
    edge_links: Vec<Vec<String>>,
    origin: OriginRuntime,
    shutdown: Shutdown,
    director: SocketAddr,
    director_admin: SocketAddr,
    dashboard: SocketAddr,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

/// The local CA of `cluster.https` and one certificate per edge, written
/// into the state directory's `tls/` at start.
pub struct ClusterTls {
    /// The CA certificate, what clients are given (`curl --cacert`).
    pub ca_file: PathBuf,
    /// Per edge, its certificate and key.
    pub edges: Vec<meridian_proxy::config::CertSection>,
}

impl ClusterTls {
    fn generate(state: &Path, config: &ClusterConfig) -> Result<ClusterTls, Error> {
        let dir = state.join("tls");
        std::fs::create_dir_all(&dir).map_err(|source| Error::State {
            path: dir.clone(),
            source,
        })?;
        let failed = |e: meridian_common::certs::CertError| Error::Node {
            what: "the cluster's TLS certificates".into(),
            reason: e.to_string(),
        };
        let ca =
            meridian_common::certs::LocalCa::generate("Meridian cluster CA").map_err(failed)?;
        let ca_file = dir.join("ca.crt");
        ca.write_cert(&ca_file).map_err(failed)?;
        let mut edges = Vec::new();
        for e in &config.edges {
            let name = e.place.name.as_str();
            let files = ca
                .issue(&["localhost", "127.0.0.1", name])
                .and_then(|c| c.write(&dir, name))
                .map_err(failed)?;
            edges.push(meridian_proxy::config::CertSection {
                cert: files.cert,
                key: files.key,
            });
        }
        Ok(ClusterTls { ca_file, edges })
    }
}

/// The sample origin's content and counters (kept across its restarts).
struct OriginRuntime {
    site: Arc<meridian_origin::SampleSite>,
    counters: Arc<meridian_origin::Counters>,
}

impl Cluster {
    /// Binds every listener, then starts every node. Must run inside a
    /// tokio runtime.
    pub async fn start(config: ClusterConfig) -> Result<Cluster, Error> {
        let src = config.source.clone();
        // 1. Every listener the config names, before anything starts.
        let dashboard_l = bind(
            config.dashboard,
            format!("the dashboard (cluster.dashboard in {src})"),
        )
        .await?;
        let director_l = bind(
            config.director_listen(),
            format!("the director (director.listen in {src})"),
        )
        .await?;
        let director_admin_l = bind(
            config.director_admin(),
            format!("the director's admin and purge log (director.admin-listen in {src})"),
        )
        .await?;
        // Clients reach the origin through a front of its own (so `fail
        // origin` and `stop origin` apply to them as to the shields' links);
        // the origin itself listens on a port from the OS.
        let origin_front_l = bind(
            config.origin.listen,
            format!("the origin (origin.listen in {src})"),
        )
        .await?;
        let origin_l = bind(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            "the origin".to_owned(),
        )
        .await?;
        let mut shield_ls = Vec::new();
        for (i, s) in config.shields.iter().enumerate() {
            let name = &s.place.name;
            let l = bind(
                s.listen,
                format!("shield `{name}` (shield[{i}].url in {src})"),
            )
            .await?;
            let a = bind(
                s.admin,
                format!("shield `{name}` admin (shield[{i}].admin in {src})"),
            )
            .await?;
            shield_ls.push((l, a));
        }
        let mut front_ls = Vec::new();
        for f in &config.fronts {
            let names: Vec<&str> = f
                .edges
                .iter()
                .map(|&i| config.edges[i].place.name.as_str())
                .collect();
            front_ls.push(
                bind(
                    f.addr,
                    format!("edge `{}` ({} in {src})", names.join("`, `"), f.key),
                )
                .await?,
            );
        }
        let mut edge_ls = Vec::new();
        for (i, e) in config.edges.iter().enumerate() {
            let name = &e.place.name;
            let l = match e.listen {
                Some(a) => bind(a, format!("edge `{name}` (edge[{i}].listen in {src})")).await?,
                None => {
                    bind(
                        SocketAddr::from(([127, 0, 0, 1], 0)),
                        format!("edge `{name}`"),
                    )
                    .await?
                }
            };
            let a = bind(
                e.admin,
                format!("edge `{name}` admin (edge[{i}].admin in {src})"),
            )
            .await?;
            edge_ls.push((l, a));
        }
        // With `cluster.https`, each edge's HTTPS listener (on a port from
        // the OS, printed in the summary).
        let mut edge_tls_ls = Vec::new();
        for e in &config.edges {
            edge_tls_ls.push(if config.https {
                Some(
                    bind(
                        SocketAddr::from(([127, 0, 0, 1], 0)),
                        format!("edge `{}` HTTPS", e.place.name),
                    )
                    .await?,
                )
            } else {
                None
            });
        }

        // 2. State: the token and a fresh purge log.
        let token = cluster_token();
        let state = config.state_dir.clone();
        let state_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::State { path, source }
        };
        std::fs::create_dir_all(&state).map_err(state_err(&state))?;
        let token_path = state.join(TOKEN_FILE);
        write_private(&token_path, &token).map_err(state_err(&token_path))?;
        let tls = if config.https {
            Some(ClusterTls::generate(&state, &config)?)
        } else {
            None
        };
        let log_dir = state.join("purge-log");
        if log_dir.exists() {
            std::fs::remove_dir_all(&log_dir).map_err(state_err(&log_dir))?;
        }

        let shutdown = Shutdown::new();
        let mut tasks = Vec::new();

        // 3. Slots with their targets (nothing running yet).
        let mut slots = Vec::new();
        let origin_addr = local(&origin_l)?;
        slots.push(slot(ORIGIN_NAME, Role::Origin, origin_addr, false, None));
        for (i, (l, a)) in shield_ls.iter().enumerate() {
            slots.push(slot(
                &config.shields[i].place.name,
                Role::Shield(i),
                local(l)?,
                true,
                Some(local(a)?),
            ));
        }
        for (i, (l, a)) in edge_ls.iter().enumerate() {
            let e = &config.edges[i];
            let mut s = slot(
                &e.place.name,
                Role::Edge(i),
                local(l)?,
                e.listen.is_some(),
                Some(local(a)?),
            );
            if let Some(Some(t)) = edge_tls_ls.get(i) {
                s.tls = Some(local(t)?);
            }
            slots.push(s);
        }
        let slot_of = |role: Role| slots.iter().position(|s| s.role == role);

        // 4. Links: shield → origin, edge → each of its shields.
        let mut shield_origin_links = Vec::new();
        let origin_slot = slot_of(Role::Origin).unwrap_or(0);
        for s in &config.shields {
            let rtt = config.rtt(&s.place, &config.origin.place);
            let l = bind(
                SocketAddr::from(([127, 0, 0, 1], 0)),
                format!("the link {} → origin", s.place.name),
            )
            .await?;
            shield_origin_links.push(format!("http://{}", local(&l)?));
            let target = slots[origin_slot].target.subscribe();
            tasks.push(tokio::spawn(serve_link(l, rtt, target, shutdown.clone())));
        }
        let mut edge_links = Vec::new();
        for e in &config.edges {
            let mut urls = Vec::new();
            for &j in &e.shields {
                let s = &config.shields[j];
                let rtt = config.rtt(&e.place, &s.place);
                let l = bind(
                    SocketAddr::from(([127, 0, 0, 1], 0)),
                    format!("the link {} → {}", e.place.name, s.place.name),
                )
                .await?;
                urls.push(format!("http://{};id={}", local(&l)?, s.place.name));
                let target = slot_of(Role::Shield(j))
                    .map(|k| slots[k].target.subscribe())
                    .ok_or_else(|| Error::Node {
                        what: s.place.name.clone(),
                        reason: "no slot".into(),
                    })?;
                tasks.push(tokio::spawn(serve_link(l, rtt, target, shutdown.clone())));
            }
            edge_links.push(urls);
        }
        // Fronts: an edge region's address, over its edges.
        let mut front_addrs = Vec::new();
        for (f, l) in config.fronts.iter().zip(front_ls) {
            front_addrs.push(local(&l)?);
            let targets = f
                .edges
                .iter()
                .filter_map(|&i| slot_of(Role::Edge(i)).map(|k| slots[k].target.subscribe()))
                .collect();
            tasks.push(tokio::spawn(serve_front(l, targets, shutdown.clone())));
        }

        let origin_front = local(&origin_front_l)?;
        let target = slots[origin_slot].target.subscribe();
        tasks.push(tokio::spawn(serve_front(
            origin_front_l,
            vec![target],
            shutdown.clone(),
        )));

        // 5. The node list, with real addresses.
        let director = local(&director_l)?;
        let director_admin = local(&director_admin_l)?;
        let dashboard = local(&dashboard_l)?;
        let nodes = node_infos(
            &config,
            &slots,
            &front_addrs,
            origin_front,
            director,
            director_admin,
        );

        let inner = Arc::new(Inner {
            origin: OriginRuntime {
                site: Arc::new(meridian_origin::SampleSite::generate(config.seed)),
                counters: Arc::default(),
            },
            config,
            token,
            tls,
            nodes,
            slots,
            shield_origin_links,
            edge_links,
            shutdown: shutdown.clone(),
            director,
            director_admin,
            dashboard,
            tasks: std::sync::Mutex::new(tasks),
        });

        // 6. The nodes: origin, shields, edges, on the listeners bound above.
        type Bound = (TcpListener, Option<TcpListener>, Option<TcpListener>);
        let mut listeners: Vec<Bound> = vec![(origin_l, None, None)];
        listeners.extend(shield_ls.into_iter().map(|(l, a)| (l, Some(a), None)));
        listeners.extend(
            edge_ls
                .into_iter()
                .zip(edge_tls_ls)
                .map(|((l, a), t)| (l, Some(a), t)),
        );
        for (k, (l, a, t)) in listeners.into_iter().enumerate() {
            inner.launch(k, l, a, t).await?;
        }

        // 7. The director (with the purge log) and the dashboard.
        let director_config = inner.director_config(&front_addrs, &token_path)?;
        let d = Arc::new(
            meridian_geo_director::Director::new(director_config).map_err(|e| Error::Node {
                what: "the director".into(),
                reason: e.to_string(),
            })?,
        );
        let stop = shutdown.clone();
        let director_task = tokio::spawn(async move {
            if let Err(e) =
                meridian_geo_director::serve(director_l, Some(director_admin_l), d, stop.clone())
                    .await
            {
                tracing::error!("director stopped: {e}");
                stop.trigger();
            }
        });
        let control: Arc<dyn Control> = Arc::new(Handle(Arc::clone(&inner)));
        let app = crate::dashboard::router(control, dashboard, shutdown.clone());
        let stop = shutdown.clone();
        let dashboard_task = tokio::spawn(async move {
            if let Err(e) = axum::serve(dashboard_l, app)
                .with_graceful_shutdown(stop.wait())
                .await
            {
                tracing::error!("dashboard stopped: {e}");
            }
        });
        if let Ok(mut t) = inner.tasks.lock() {
            t.push(director_task);
            t.push(dashboard_task);
        }
        Ok(Cluster { inner })
    }

    /// The control interface (what the dashboard uses).
    pub fn control(&self) -> Arc<dyn Control> {
        Arc::new(Handle(Arc::clone(&self.inner)))
    }

    /// Every node with its real addresses.
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.inner.nodes
    }

    /// The node named `name`.
    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.inner.nodes.iter().find(|n| n.name == name)
    }

    pub fn director(&self) -> SocketAddr {
        self.inner.director
    }

    pub fn director_admin(&self) -> SocketAddr {
        self.inner.director_admin
    }

    pub fn dashboard(&self) -> SocketAddr {
        self.inner.dashboard
    }

    pub fn token(&self) -> &str {
        &self.inner.token
    }

    /// The CA and certificates of `cluster.https`, if on.
    pub fn tls(&self) -> Option<&ClusterTls> {
        self.inner.tls.as_ref()
    }

    /// The HTTPS address of the edge named `name` (with `cluster.https`).
    pub fn edge_https(&self, name: &str) -> Option<SocketAddr> {
        self.inner
            .slots
            .iter()
            .find(|s| s.name == name && matches!(s.role, Role::Edge(_)))
            .and_then(|s| s.tls)
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.inner.config
    }

    /// Requests and bytes the origin answered.
    pub fn origin_counters(&self) -> OriginCounters {
        self.inner.origin_counters()
    }

    /// Applies an action to a node (as the dashboard and `meridian cluster
    /// stop|start|slow|fail|heal` do).
    pub async fn act(&self, name: &str, action: Action) -> Result<Fault, ControlError> {
        self.inner.act(name, action).await
    }

    /// Resolves when the cluster shuts down (Ctrl-C handling is the caller's).
    pub async fn wait(&self) {
        self.inner.shutdown.wait().await;
    }

    /// Stops every node, relay and listener, and waits (bounded) for them.
    pub async fn shutdown(self) {
        self.inner.shutdown.trigger();
        for s in &self.inner.slots {
            let running = s.state.lock().await.running.take();
            if let Some((stop, task)) = running {
                stop.trigger();
                let _ = tokio::time::timeout(STOP_TIMEOUT, task).await;
            }
        }
        let tasks = match self.inner.tasks.lock() {
            Ok(mut t) => std::mem::take(&mut *t),
            Err(_) => Vec::new(),
        };
        for t in tasks {
            let _ = tokio::time::timeout(STOP_TIMEOUT, t).await;
        }
    }
}

fn slot(
    name: &str,
    role: Role,
    listen: SocketAddr,
    fixed_listen: bool,
    admin: Option<SocketAddr>,
) -> Slot {
    let (target, _) = watch::channel(Target {
        addr: None,
        fault: Fault::Stopped,
    });
    Slot {
        name: name.to_owned(),
        role,
        listen,
        fixed_listen,
        admin,
        tls: None,
        target,
        state: Mutex::new(SlotState { running: None }),
    }
}

fn node_infos(
    c: &ClusterConfig,
    slots: &[Slot],
    fronts: &[SocketAddr],
    origin_front: SocketAddr,
    director: SocketAddr,
    director_admin: SocketAddr,
) -> Vec<NodeInfo> {
    let link = |from: &Place, to: &Place| UpstreamLink {
        name: to.name.clone(),
        rtt_ms: c.rtt(from, to).as_secs_f64() * 1000.0,
    };
    let info = |p: &Place, kind, url: String, admin: Option<SocketAddr>, upstreams| NodeInfo {
        name: p.name.clone(),
        kind,
        region: p.region.clone(),
        latitude: p.latitude,
        longitude: p.longitude,
        url,
        admin: admin.map(|a| format!("http://{a}")),
        upstreams,
    };
    let mut nodes = Vec::new();
    for s in slots {
        match s.role {
            Role::Origin => nodes.push(info(
                &c.origin.place,
                NodeKind::Origin,
                format!("http://{origin_front}"),
                None,
                Vec::new(),
            )),
            Role::Shield(i) => {
                let p = &c.shields[i].place;
                nodes.push(info(
                    p,
                    NodeKind::Shield,
                    format!("http://{}", s.listen),
                    s.admin,
                    vec![link(p, &c.origin.place)],
                ))
            }
            Role::Edge(i) => {
                let e = &c.edges[i];
                let front = fronts.get(e.front).copied().unwrap_or(s.listen);
                nodes.push(info(
                    &e.place,
                    NodeKind::Edge,
                    format!("http://{front}"),
                    s.admin,
                    e.shields
                        .iter()
                        .map(|&j| link(&e.place, &c.shields[j].place))
                        .collect(),
                ))
            }
        }
    }
    let first = c.edges.first().map(|e| e.place.clone());
    let d = Place {
        name: DIRECTOR_NAME.into(),
        region: first
            .as_ref()
            .map_or_else(String::new, |p| p.region.clone()),
        latitude: first.as_ref().map_or(0.0, |p| p.latitude),
        longitude: first.as_ref().map_or(0.0, |p| p.longitude),
    };
    nodes.push(NodeInfo {
        name: d.name,
        kind: NodeKind::Director,
        region: "global".into(),
        latitude: d.latitude,
        longitude: d.longitude,
        url: format!("http://{director}"),
        admin: Some(format!("http://{director_admin}")),
        upstreams: Vec::new(),
    });
    nodes
}

impl Inner {
    fn origin_counters(&self) -> OriginCounters {
        use std::sync::atomic::Ordering::Relaxed;
        OriginCounters {
            requests: self.origin.counters.requests.load(Relaxed),
            bytes: self.origin.counters.bytes.load(Relaxed),
        }
    }

    /// Starts slot `k` on these listeners (`tls`: an edge's HTTPS one)
    /// and points its relays at it.
    async fn launch(
        &self,
        k: usize,
        listener: TcpListener,
        admin: Option<TcpListener>,
        tls: Option<TcpListener>,
    ) -> Result<(), Error> {
        let s = &self.slots[k];
        let addr = local(&listener)?;
        let stop = Shutdown::new();
        // The node stops with the cluster too.
        let (all, mine) = (self.shutdown.clone(), stop.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = all.wait() => mine.trigger(),
                _ = mine.wait() => {}
            }
        });
        let name = s.name.clone();
        let task = match s.role {
            Role::Shield(_) | Role::Edge(_) if self.config.processes => {
                // The child binds the same addresses.
                drop((listener, admin, tls));
                self.spawn_child(k, stop.clone()).await?
            }
            Role::Origin => {
                let app = meridian_origin::sample_router(
                    Arc::clone(&self.origin.site),
                    Arc::clone(&self.origin.counters),
                );
                let wait = stop.wait();
                tokio::spawn(async move {
                    if let Err(e) = axum::serve(listener, app)
                        .with_graceful_shutdown(wait)
                        .await
                    {
                        tracing::error!(node = %name, "stopped: {e}");
                    }
                })
            }
            Role::Shield(i) => {
                let config = self.shield_config(i)?;
                let stop = stop.clone();
                tokio::spawn(async move {
                    if let Err(e) = meridian_origin_shield::run(listener, admin, config, stop).await
                    {
                        tracing::error!(node = %name, "stopped: {e}");
                    }
                })
            }
            Role::Edge(i) => {
                let config = self.edge_config(i)?;
                let tls = match (tls, &config.tls) {
                    (Some(l), Some(settings)) => Some(meridian_proxy::TlsListener {
                        listener: l,
                        tls: Arc::new(meridian_proxy::tls::Tls::new(settings).map_err(|e| {
                            Error::Node {
                                what: name.clone(),
                                reason: e.to_string(),
                            }
                        })?),
                    }),
                    _ => None,
                };
                let listeners = meridian_proxy::Listeners {
                    plain: Some(listener),
                    tls,
                };
                let stop = stop.clone();
                tokio::spawn(async move {
                    if let Err(e) = meridian_edge::run(listeners, admin, config, stop).await {
                        tracing::error!(node = %name, "stopped: {e}");
                    }
                })
            }
        };
        s.state.lock().await.running = Some((stop, task));
        s.target.send_replace(Target {
            addr: Some(addr),
            fault: Fault::None,
        });
        Ok(())
    }

    /// The engine settings every cluster node shares.
    fn node_file(&self, name: &str, region: &str) -> meridian_proxy::FileConfig {
        use meridian_proxy::config::{CacheSection, HealthSection, PurgeSection};
        meridian_proxy::FileConfig {
            name: Some(name.to_owned()),
            region: Some(region.to_owned()),
            site_host: Some(self.config.site_host.clone()),
            cache: CacheSection {
                size: Some(ByteSize(self.config.cache_size)),
                ..Default::default()
            },
            health: HealthSection {
                interval: Some(HumanDuration(self.config.upstream_health_interval)),
                ..Default::default()
            },
            purge: PurgeSection {
                log: Some(format!("http://{}", self.director_admin)),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// Puts the cluster's token on a validated node config.
    fn with_token(&self, mut c: meridian_proxy::Config) -> meridian_proxy::Config {
        c.admin_tokens = Arc::new(Tokens::single("cluster", &self.token));
        c.purge_token = Some(self.token.clone());
        c
    }

    fn edge_config(&self, i: usize) -> Result<meridian_proxy::Config, Error> {
        let e = &self.config.edges[i];
        let mut file = self.node_file(&e.place.name, &e.place.region);
        file.upstream = self.edge_links[i].clone();
        let slot = self.slots.iter().find(|s| s.role == Role::Edge(i));
        if let (Some(tls), Some(slot)) = (&self.tls, slot)
            && let (Some(addr), Some(cert)) = (slot.tls, tls.edges.get(i))
        {
            file.listen = Some(slot.listen);
            file.tls = meridian_proxy::config::TlsSection {
                listen: Some(addr),
                cert: vec![cert.clone()],
                ..Default::default()
            };
        }
        let c = file.validate(&format!("edge `{}`", e.place.name))?;
        Ok(self.with_token(c))
    }

    fn shield_config(&self, i: usize) -> Result<meridian_origin_shield::ShieldConfig, Error> {
        let s = &self.config.shields[i];
        let base = self.node_file(&s.place.name, &s.place.region);
        let file = meridian_origin_shield::FileConfig {
            name: base.name,
            region: base.region,
            origin: vec![self.shield_origin_links[i].clone()],
            site_host: base.site_host,
            // The edges are on loopback: their X-Forwarded-For is believed.
            trusted_forwarders: Some(vec![
                ipnet::IpNet::from(std::net::IpAddr::from([127, 0, 0, 1])).trunc(),
            ]),
            cache: base.cache,
            // One origin: nothing to fail over to, so no active checks (a
            // failing origin then still gets asked, and stale-if-error
            // answers for it).
            health: meridian_proxy::config::HealthSection {
                interval: Some(HumanDuration(Duration::ZERO)),
                ..Default::default()
            },
            purge: base.purge,
            ..Default::default()
        };
        let mut c = file.validate(&format!("shield `{}`", s.place.name))?;
        c.engine = self.with_token(c.engine);
        Ok(c)
    }

    /// The director's config: the file's, with the real addresses and the
    /// purge log kept in the state directory.
    fn director_config(
        &self,
        fronts: &[SocketAddr],
        token_path: &Path,
    ) -> Result<meridian_geo_director::Config, Error> {
        let mut d = self.config.director.clone();
        for (i, e) in d.edges.iter_mut().enumerate() {
            let spec = &self.config.edges[i];
            if let Some(f) = fronts.get(spec.front) {
                e.url = format!("http://{f}");
            }
            if let Some(a) = self
                .slots
                .iter()
                .find(|s| s.role == Role::Edge(i))
                .and_then(|s| s.admin)
            {
                e.admin = format!("http://{a}");
            }
        }
        for (i, s) in d.shields.iter_mut().enumerate() {
            if let Some(slot) = self.slots.iter().find(|x| x.role == Role::Shield(i)) {
                s.url = format!("http://{}", slot.listen);
                if let Some(a) = slot.admin {
                    s.admin = format!("http://{a}");
                }
            }
        }
        d.listen = Some(self.director);
        d.admin_listen = Some(self.director_admin);
        // Everything is on loopback: the director believes X-Forwarded-For
        // from it (unless the file says whom to trust), which is how
        // `meridian simulate` places its clients around the world.
        if d.trusted_proxies.is_empty() {
            d.trusted_proxies
                .push(ipnet::IpNet::from(std::net::IpAddr::from([127, 0, 0, 1])).trunc());
        }
        d.purge_log.url = None;
        d.purge_log.state_dir = Some(self.config.state_dir.join("purge-log"));
        d.purge_log.tokens.push(TokenConfig {
            name: "cluster".into(),
            secret_file: token_path.to_path_buf(),
            scopes: None,
        });
        for path in &mut d.geoip {
            *path = resolve_shipped(path);
        }
        d.validate()?;
        Ok(d)
    }

    async fn act(&self, name: &str, action: Action) -> Result<Fault, ControlError> {
        if name == DIRECTOR_NAME {
            return Err(ControlError::Refused(
                "the director cannot be stopped or failed from here: every client's first request \
                 goes through it (stop the whole cluster with Ctrl-C)"
                    .into(),
            ));
        }
        let k = self
            .slots
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| ControlError::UnknownNode(name.to_owned()))?;
        let s = &self.slots[k];
        let refuse = |why: String| Err(ControlError::Refused(why));
        let current = s.target.borrow().fault;
        let stopped = current == Fault::Stopped;
        match action {
            Action::Stop => {
                let running = s.state.lock().await.running.take();
                s.target.send_modify(|t| {
                    t.addr = None;
                    t.fault = Fault::Stopped;
                });
                if let Some((stop, task)) = running {
                    stop.trigger();
                    if tokio::time::timeout(STOP_TIMEOUT, task).await.is_err() {
                        tracing::warn!(node = name, "did not stop within {STOP_TIMEOUT:?}");
                    }
                }
                tracing::info!(node = name, "stopped");
                Ok(Fault::Stopped)
            }
            Action::Start if !stopped => Ok(current),
            Action::Start => {
                // A child process is told its address: the same one again.
                let listen = if s.fixed_listen || self.config.processes {
                    s.listen
                } else {
                    SocketAddr::from(([127, 0, 0, 1], 0))
                };
                let what = |w: &str| format!("{w} of `{name}`");
                let l = bind(listen, what("the listener"))
                    .await
                    .map_err(|e| ControlError::Refused(e.to_string()))?;
                let a = match s.admin {
                    Some(a) => Some(
                        bind(a, what("the admin listener"))
                            .await
                            .map_err(|e| ControlError::Refused(e.to_string()))?,
                    ),
                    None => None,
                };
                let t = match s.tls {
                    Some(t) => Some(
                        bind(t, what("the HTTPS listener"))
                            .await
                            .map_err(|e| ControlError::Refused(e.to_string()))?,
                    ),
                    None => None,
                };
                self.launch(k, l, a, t)
                    .await
                    .map_err(|e| ControlError::Refused(e.to_string()))?;
                tracing::info!(node = name, "started");
                Ok(Fault::None)
            }
            _ if stopped => refuse(format!("`{name}` is stopped: start it first")),
            Action::Slow(d) => {
                let fault = Fault::Slow {
                    ms: u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
                };
                s.target.send_modify(|t| t.fault = fault);
                tracing::info!(node = name, ?d, "slowed");
                Ok(fault)
            }
            Action::Fail => {
                s.target.send_modify(|t| t.fault = Fault::Failing);
                tracing::info!(node = name, "failing");
                Ok(Fault::Failing)
            }
            Action::Heal => {
                s.target.send_modify(|t| t.fault = Fault::None);
                tracing::info!(node = name, "healed");
                Ok(Fault::None)
            }
        }
    }
}

/// `Inner` as the dashboard's [`Control`].
struct Handle(Arc<Inner>);

impl Control for Handle {
    fn nodes(&self) -> Vec<NodeInfo> {
        self.0.nodes.clone()
    }

    fn fault(&self, name: &str) -> Option<Fault> {
        if name == DIRECTOR_NAME {
            return Some(Fault::None);
        }
        self.0
            .slots
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.target.borrow().fault)
    }

    fn act<'a>(
        &'a self,
        name: &'a str,
        action: Action,
    ) -> BoxFuture<'a, Result<Fault, ControlError>> {
        Box::pin(self.0.act(name, action))
    }

    fn purge_log(&self) -> String {
        format!("http://{}", self.0.director_admin)
    }

    fn token(&self) -> String {
        self.0.token.clone()
    }

    fn origin_counters(&self) -> OriginCounters {
        self.0.origin_counters()
    }
}

/// `MERIDIAN_ADMIN_TOKEN` if set, else 32 random hex characters.
fn cluster_token() -> String {
    if let Ok(t) = std::env::var(meridian_common::auth::TOKEN_ENV)
        && t.trim().len() >= 16
    {
        return t.trim().to_owned();
    }
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: still unguessable enough for a loopback demo.
        let seed = std::collections::hash_map::RandomState::new();
        use std::hash::BuildHasher;
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (seed.hash_one(i) >> 8) as u8;
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `text` to a file only its owner can read.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(path)?;
    writeln!(f, "{text}")
}

/// The shipped database relative to the working directory, else to the
/// source tree this was built from (cargo run from a subfolder, tests).
pub fn resolve_shipped(path: &Path) -> PathBuf {
    if path.exists() || path.is_absolute() {
        return path.to_path_buf();
    }
    let built_in = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path);
    if built_in.exists() {
        built_in
    } else {
        path.to_path_buf()
    }
}
