//! Running a workload against a cluster: each routing in turn, caches
//! emptied before each, every client on its own keep-alive connections
//! (at most [`CONNECTIONS_PER_CLIENT`], each request sent when it is due)
//! with its distance to the server it talks to turned into real delay.
//!
//! The delay a client sees from its distance is the cluster's own latency
//! model (`[latency]` of the cluster file, the same one its links use
//! between nodes) over the great-circle distance from the client's place
//! to the server's:
//!
//! - a new connection costs one round trip (the TCP handshake) before its
//!   first request;
//! - each request costs half a round trip out before it is sent and half
//!   back after the last byte of its answer arrived;
//! - the hops behind the edge (edge → shield → origin) are the cluster's
//!   relays, so a miss pays them in real time as well.
//!
//! These are `tokio::time::sleep`s: every figure is a measured wall time.
//! Bandwidth and TCP slow start are not modelled (the relays carry a few
//! MiB per round trip).
//!
//! The cluster is driven through its dashboard's control API (the same for
//! `--spawn` and a running `cluster up`): `/api/state` for the nodes and the
//! origin's own counters, `POST /api/purge` and `POST /api/nodes/...` for
//! the scenarios. Clients resolve through the director's public listener
//! with `X-Forwarded-For` carrying their address (the cluster's director
//! trusts loopback), and follow its redirect.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request as HttpRequest, header};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use meridian_cluster::config::{ClusterConfig, Place};
use meridian_cluster::latency::great_circle_km;
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::Error;
use crate::model::{
    Client, ClientPlace, Counted, EdgeDown, Event, NodeMark, RegionStats, Report, Request, Route,
    RoutingResult, RunParams, Scenario, Workload,
};
use crate::stats::{Sample, Served, cdf_ms, served_by, stats, timeline};
use crate::{Region, Routing};

/// How long one attempt at a request may take, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a client keeps retrying a request that got no answer (a
/// stopped edge) before it counts as failed; with the pause between tries.
pub const RETRY_FOR: Duration = Duration::from_secs(4);
pub const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// Longest wait for the cluster between routings (purge, edges healthy).
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(20);
/// Connections a client opens at most to the server it uses, as browsers
/// do per host over HTTP/1.1.
pub const CONNECTIONS_PER_CLIENT: usize = 6;
/// The most answers read from the control API.
const MAX_ANSWER: usize = 4 << 20;

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub scenario: Scenario,
    /// The edge `edge-down` stops (default: the busiest edge that has an
    /// address of its own).
    pub edge_down: Option<String>,
    /// The tag `purge` purges (default: the most requested section).
    pub purge_tag: Option<String>,
    /// Timeline slice (default: a thirtieth of the duration).
    pub bucket_ms: Option<u64>,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Only these routings (default all three, in order).
    pub routings: Option<Vec<Routing>>,
}

/// The cluster to drive.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its dashboard (control API).
    pub dashboard: SocketAddr,
    /// The cluster's admin token.
    pub token: String,
    /// Its file: the latency model, and the geo database's path.
    pub config: ClusterConfig,
    /// How the report names it (`spawned in-process`, or the dashboard).
    pub label: String,
    /// The geo database the workload's addresses come from.
    pub database: String,
}

/// A server clients connect to: the address of a group of edges (one
/// region's front), or the origin.
#[derive(Debug, Clone)]
struct Server {
    /// The edge names behind it, or `origin`.
    names: Vec<String>,
    /// How the report names it: the edge's name, or the region's when
    /// several edges share the address.
    label: String,
    addr: SocketAddr,
    host: HeaderValue,
    place: Place,
}

/// One node of `/api/state`.
#[derive(Debug, Clone, Deserialize)]
struct NodeState {
    name: String,
    kind: String,
    region: String,
    latitude: f64,
    longitude: f64,
    url: String,
    admin: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Totals {
    origin_requests: u64,
    origin_bytes: u64,
}

#[derive(Debug, Deserialize)]
struct State {
    generated_at: u64,
    nodes: Vec<NodeState>,
    totals: Totals,
}

/// The control API.
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    fn new(target: &Target) -> Result<Api, Error> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(SETTLE_TIMEOUT)
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| Error::Cluster(format!("HTTP client: {e}")))?;
        Ok(Api {
            http,
            base: format!("http://{}", target.dashboard),
            token: target.token.clone(),
        })
    }

    async fn read(mut r: reqwest::Response, what: &str) -> Result<Vec<u8>, Error> {
        let status = r.status();
        let mut body = Vec::new();
        while let Some(chunk) = r
            .chunk()
            .await
            .map_err(|e| Error::Cluster(format!("{what}: {e}")))?
        {
            if body.len() + chunk.len() > MAX_ANSWER {
                return Err(Error::Cluster(format!("{what}: answer too large")));
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            return Err(Error::Cluster(format!(
                "{what}: {status}: {}",
                String::from_utf8_lossy(&body).trim()
            )));
        }
        Ok(body)
    }

    /// The dashboard's last snapshot (after its first poll: until then it
    /// answers `{}`).
    async fn state(&self) -> Result<State, Error> {
        let url = format!("{}/api/state", self.base);
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            let r = self.http.get(&url).send().await.map_err(|e| {
                Error::Cluster(format!(
                    "no cluster dashboard answers at {url} ({e}): start one with \
                     `meridian cluster up`, or pass --spawn"
                ))
            })?;
            let body = Self::read(r, "GET /api/state").await?;
            match serde_json::from_slice(&body) {
                Ok(s) => return Ok(s),
                Err(e) if Instant::now() > deadline => {
                    return Err(Error::Cluster(format!("/api/state: {e}")));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// A state polled after `after_ms` (the dashboard polls its nodes
    /// every interval; the origin's counters are as of the last poll).
    async fn fresh_state(&self, after_ms: u64) -> Result<State, Error> {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            let s = self.state().await?;
            if s.generated_at >= after_ms || Instant::now() > deadline {
                return Ok(s);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn act(&self, node: &str, action: &str) -> Result<(), Error> {
        let url = format!("{}/api/nodes/{node}/{action}", self.base);
        let r = self
            .http
            .post(&url)
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| Error::Cluster(format!("{action} {node}: {e}")))?;
        Self::read(r, &format!("{action} {node}")).await.map(drop)
    }

    async fn purge(&self, body: serde_json::Value) -> Result<(), Error> {
        let url = format!("{}/api/purge", self.base);
        let r = self
            .http
            .post(&url)
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .map_err(|e| Error::Cluster(format!("purge: {e}")))?;
        Self::read(r, "purge").await.map(drop)
    }

    /// Waits until the director's health checks see every edge up.
    async fn edges_healthy(&self, director_admin: &str) -> Result<(), Error> {
        let url = format!("{}/v1/edges", director_admin.trim_end_matches('/'));
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            let up = match self.http.get(&url).send().await {
                Ok(r) => {
                    let body = Self::read(r, "the director's /v1/edges").await?;
                    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    v["edges"].as_array().is_some_and(|edges| {
                        edges
                            .iter()
                            .all(|e| e["healthy"].as_bool().unwrap_or(false))
                    })
                }
                Err(_) => false,
            };
            if up {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Cluster(format!(
                    "the director does not see every edge up after {SETTLE_TIMEOUT:?} ({url})"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Everything the clients of one run share.
struct Ctx {
    config: ClusterConfig,
    /// The edge groups, then the origin (last).
    servers: Vec<Server>,
    director: SocketAddr,
    director_host: HeaderValue,
    /// The director's redirects go to these authorities (`127.0.0.1:8101`).
    by_authority: HashMap<String, usize>,
    done: AtomicU64,
    progress: Option<indicatif::ProgressBar>,
}

impl Ctx {
    fn origin(&self) -> usize {
        self.servers.len() - 1
    }

    fn edge_groups(&self) -> usize {
        self.servers.len() - 1
    }

    fn rtt(&self, c: &Client, server: usize) -> Duration {
        let place = Place {
            name: "client".into(),
            region: "client".into(),
            latitude: c.latitude,
            longitude: c.longitude,
        };
        self.servers
            .get(server)
            .map_or(Duration::ZERO, |s| self.config.rtt(&place, &s.place))
    }
}

fn parse_addr(url: &str) -> Result<(SocketAddr, String), Error> {
    let authority = url
        .trim()
        .strip_prefix("http://")
        .unwrap_or(url)
        .trim_end_matches('/')
        .to_owned();
    let addr = authority
        .parse::<SocketAddr>()
        .map_err(|e| Error::Cluster(format!("`{url}` is not http://IP:PORT: {e}")))?;
    Ok((addr, authority))
}

fn header_value(s: &str) -> Result<HeaderValue, Error> {
    HeaderValue::from_str(s).map_err(|e| Error::Cluster(format!("`{s}`: {e}")))
}

impl Server {
    /// The server at `n`'s address.
    fn of(n: &NodeState) -> Result<Server, Error> {
        let (addr, authority) = parse_addr(&n.url)?;
        Ok(Server {
            names: vec![n.name.clone()],
            label: n.name.clone(),
            addr,
            host: header_value(&authority)?,
            place: Place {
                name: n.name.clone(),
                region: n.region.clone(),
                latitude: n.latitude,
                longitude: n.longitude,
            },
        })
    }
}

/// Groups the edges by the address clients reach them at; the origin last.
fn servers(nodes: &[NodeState]) -> Result<Vec<Server>, Error> {
    let mut out: Vec<Server> = Vec::new();
    for n in nodes.iter().filter(|n| n.kind == "edge") {
        let server = Server::of(n)?;
        if let Some(s) = out.iter_mut().find(|s| s.addr == server.addr) {
            s.names.push(n.name.clone());
            s.label = n.region.clone();
        } else {
            out.push(server);
        }
    }
    if out.is_empty() {
        return Err(Error::Cluster("the cluster has no edge".into()));
    }
    let origin = nodes
        .iter()
        .find(|n| n.kind == "origin")
        .ok_or_else(|| Error::Cluster("the cluster has no origin".into()))?;
    out.push(Server::of(origin)?);
    Ok(out)
}

/// Runs every routing of `settings` on `workload` against `target`.
pub async fn run(
    target: &Target,
    workload: &Workload,
    settings: &Settings,
) -> Result<Report, Error> {
    run_detailed(target, workload, settings)
        .await
        .map(|(r, _)| r)
}

/// Every request one routing made.
pub struct RoutingSamples {
    pub routing: Routing,
    pub samples: Vec<Sample>,
}

/// What a run found, with every request's [`Sample`]; `servers` names
/// their `server` indexes.
pub struct Detail {
    pub servers: Vec<String>,
    pub routings: Vec<RoutingSamples>,
}

impl Detail {
    /// Every request of `workload` as CSV, one line each, with a header line.
    pub fn csv(&self, workload: &Workload) -> String {
        let mut out = String::from(
            "routing,client,start_ms,latency_ms,status,served,stale,bytes,server,path\n",
        );
        for r in &self.routings {
            for x in &r.samples {
                let server = self
                    .servers
                    .get(usize::from(x.server))
                    .map_or("?", String::as_str);
                let path = workload
                    .clients
                    .get(x.client as usize)
                    .and_then(|c| c.requests.get(x.request as usize))
                    .map_or("?", |r| &*r.path);
                out.push_str(&format!(
                    "{:?},{},{},{:.3},{},{:?},{},{},{},{}\n",
                    r.routing,
                    x.client,
                    x.start_ms,
                    f64::from(x.latency_us) / 1000.0,
                    x.status,
                    x.served,
                    x.stale,
                    x.bytes,
                    server,
                    path
                ));
            }
        }
        out
    }
}

/// [`run`], also answering every request's figures.
pub async fn run_detailed(
    target: &Target,
    workload: &Workload,
    settings: &Settings,
) -> Result<(Report, Detail), Error> {
    let started = Instant::now();
    let started_at_ms = now_ms();
    let api = Api::new(target)?;
    let state = api.state().await?;
    let servers = servers(&state.nodes)?;
    let director = state
        .nodes
        .iter()
        .find(|n| n.kind == "director")
        .ok_or_else(|| Error::Cluster("the cluster has no director".into()))?;
    let (director_addr, director_authority) = parse_addr(&director.url)?;
    let director_admin = director
        .admin
        .clone()
        .ok_or_else(|| Error::Cluster("the director has no admin listener".into()))?;
    let by_authority = servers[..servers.len() - 1]
        .iter()
        .enumerate()
        .map(|(i, s)| (s.addr.to_string(), i))
        .collect();
    let routings = settings
        .routings
        .clone()
        .unwrap_or_else(|| Routing::ALL.to_vec());
    let total = workload.requests() * routings.len() as u64;
    let progress = settings.progress.then(|| progress_bar(total));
    let ctx = Arc::new(Ctx {
        config: target.config.clone(),
        servers,
        director: director_addr,
        director_host: header_value(&director_authority)?,
        by_authority,
        done: AtomicU64::new(0),
        progress,
    });
    let duration_ms = workload.params.duration_ms.max(1);
    let bucket_ms = settings
        .bucket_ms
        .unwrap_or_else(|| (duration_ms / 30).max(50));
    let plan = Plan::new(&ctx, workload, settings);

    let mut results = Vec::new();
    let mut detail = Vec::new();
    let mut routes = Vec::new();
    for routing in routings {
        settle(&api, &director_admin).await?;
        let before = api.fresh_state(now_ms()).await?.totals;
        if let Some(pb) = &ctx.progress {
            pb.set_message(routing.label());
        }
        let phase_start = Instant::now();
        let out = phase(&ctx, &api, workload, routing, &plan).await;
        let wall_ms = ms(phase_start.elapsed());
        undo(&api, &plan, &out.events).await?;
        let after = api.fresh_state(now_ms()).await?.totals;
        let origin_counted = Counted {
            requests: after.origin_requests.saturating_sub(before.origin_requests),
            bytes: after.origin_bytes.saturating_sub(before.origin_bytes),
        };
        if routing == Routing::Director {
            routes = director_routes(&ctx, workload, &out.first_server);
        }
        detail.push(RoutingSamples {
            routing,
            samples: out.samples.clone(),
        });
        results.push(result(
            &ctx,
            workload,
            routing,
            out,
            origin_counted,
            bucket_ms,
            wall_ms,
        ));
    }
    if let Some(pb) = &ctx.progress {
        pb.finish_and_clear();
    }
    // The faults the scenario set were undone after each routing; the
    // caches stay as the last routing left them.
    let wall_ms = ms(started.elapsed());
    let report = Report {
        params: RunParams {
            workload: workload.params.clone(),
            scenario: settings.scenario,
            config: target.config.source.clone(),
            cluster: target.label.clone(),
            database: target.database.clone(),
            weights_source: workload.weights_source.clone(),
            started_at_ms,
            wall_ms,
            bucket_ms,
            sim_cpu: None,
            scenario_target: plan.target_label(),
        },
        nodes: state
            .nodes
            .iter()
            .map(|n| NodeMark {
                name: n.name.clone(),
                kind: n.kind.clone(),
                region: n.region.clone(),
                latitude: n.latitude,
                longitude: n.longitude,
            })
            .collect(),
        places: places(workload),
        routes,
        routings: results,
    };
    let detail = Detail {
        servers: ctx.servers.iter().map(|s| s.label.clone()).collect(),
        routings: detail,
    };
    Ok((report, detail))
}

fn progress_bar(total: u64) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg:>24} [{bar:36}] {pos}/{len} requests, {per_sec}, {eta} left",
    ) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb
}

/// Empty caches and every edge up, before a routing runs.
async fn settle(api: &Api, director_admin: &str) -> Result<(), Error> {
    api.purge(serde_json::json!({ "all": true })).await?;
    api.edges_healthy(director_admin).await
}

/// What the scenario does, decided once for every routing.
struct Plan {
    scenario: Scenario,
    /// Edge-down: the node stopped and the server index it is behind.
    edge: Option<(String, usize)>,
    tag: Option<String>,
    duration_ms: u64,
}

impl Plan {
    fn new(ctx: &Ctx, w: &Workload, s: &Settings) -> Plan {
        let duration_ms = w.params.duration_ms.max(1);
        let edge = (s.scenario == Scenario::EdgeDown).then(|| match &s.edge_down {
            Some(name) => ctx.servers[..ctx.edge_groups()]
                .iter()
                .position(|g| g.names.iter().any(|n| n == name))
                .map(|i| (name.clone(), i)),
            None => busiest_lone_edge(ctx, w),
        });
        let tag = (s.scenario == Scenario::Purge)
            .then(|| s.purge_tag.clone().unwrap_or_else(|| busiest_section(w)));
        Plan {
            scenario: s.scenario,
            edge: edge.flatten(),
            tag,
            duration_ms,
        }
    }

    fn target_label(&self) -> Option<String> {
        match self.scenario {
            Scenario::Steady => None,
            Scenario::Purge => self.tag.as_ref().map(|t| format!("tag `{t}`")),
            Scenario::OriginOutage => Some("origin".into()),
            Scenario::EdgeDown => self.edge.as_ref().map(|(n, _)| n.clone()),
        }
    }

    /// The scenario's actions: at what time, which node or purge, which verb.
    fn steps(&self) -> Vec<(u64, Step)> {
        let d = self.duration_ms;
        match self.scenario {
            Scenario::Steady => Vec::new(),
            Scenario::Purge => self
                .tag
                .iter()
                .map(|t| (d / 2, Step::PurgeTag(t.clone())))
                .collect(),
            Scenario::OriginOutage => vec![
                (d / 3, Step::Act("origin".into(), "fail")),
                (2 * d / 3, Step::Act("origin".into(), "heal")),
            ],
            Scenario::EdgeDown => self
                .edge
                .iter()
                .map(|(n, _)| (d / 3, Step::Act(n.clone(), "stop")))
                .collect(),
        }
    }
}

#[derive(Debug, Clone)]
enum Step {
    PurgeTag(String),
    Act(String, &'static str),
}

/// The edge with the most clients nearest to it among those with an
/// address of their own (stopping one of two edges behind one address
/// moves no client).
fn busiest_lone_edge(ctx: &Ctx, w: &Workload) -> Option<(String, usize)> {
    let groups = &ctx.servers[..ctx.edge_groups()];
    let mut count = vec![0u32; groups.len()];
    for c in &w.clients {
        let nearest = groups
            .iter()
            .enumerate()
            .min_by(|a, b| {
                let d = |s: &Server| {
                    great_circle_km(
                        (c.latitude, c.longitude),
                        (s.place.latitude, s.place.longitude),
                    )
                };
                d(a.1).total_cmp(&d(b.1))
            })
            .map(|(i, _)| i);
        if let Some(i) = nearest {
            count[i] += 1;
        }
    }
    groups
        .iter()
        .enumerate()
        .filter(|(_, g)| g.names.len() == 1)
        .max_by_key(|(i, _)| count[*i])
        .map(|(i, g)| (g.names[0].clone(), i))
}

/// The sample site's section (its purge tag) of a path: the first path
/// segment of a path in a directory, `home` for the top-level pages.
pub fn section_of(path: &str) -> &str {
    let p = path.trim_start_matches('/');
    match p.split_once('/') {
        Some((first, _)) if !first.is_empty() => first,
        _ => "home",
    }
}

/// The most requested cacheable section.
fn busiest_section(w: &Workload) -> String {
    let mut count: BTreeMap<&str, u64> = BTreeMap::new();
    for r in w.clients.iter().flat_map(|c| &c.requests) {
        let s = section_of(&r.path);
        if s != "api" {
            *count.entry(s).or_default() += 1;
        }
    }
    count
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map_or_else(|| "home".to_owned(), |(s, _)| s.to_owned())
}

/// What one routing's run gathered.
struct PhaseOut {
    samples: Vec<Sample>,
    events: Vec<Event>,
    /// Per client, the server of its first answered request.
    first_server: Vec<Option<u16>>,
    /// How long each resolution through the director took, ms.
    resolves_ms: Vec<f64>,
}

async fn phase(
    ctx: &Arc<Ctx>,
    api: &Api,
    workload: &Workload,
    routing: Routing,
    plan: &Plan,
) -> PhaseOut {
    let t0 = tokio::time::Instant::now() + Duration::from_millis(20);
    let mut clients = JoinSet::new();
    for (i, c) in workload.clients.iter().enumerate() {
        let ctx = ctx.clone();
        let c = Arc::new(c.clone());
        clients.spawn(async move { (i, client(&ctx, &c, routing, t0).await) });
    }
    let steps = plan.steps();
    let scenario = async {
        let mut events = Vec::new();
        for (at, step) in steps {
            tokio::time::sleep_until(t0 + Duration::from_millis(at)).await;
            let t_ms = ms(t0.elapsed());
            let (what, result) = match &step {
                Step::PurgeTag(t) => (
                    format!("purge of tag `{t}`"),
                    api.purge(serde_json::json!({ "tags": [t] })).await,
                ),
                Step::Act(node, verb) => (format!("{verb} {node}"), api.act(node, verb).await),
            };
            match result {
                Ok(()) => events.push(Event { t_ms, what }),
                Err(e) => {
                    tracing::warn!("{what}: {e}");
                    events.push(Event {
                        t_ms,
                        what: format!("{what} (failed: {e})"),
                    });
                }
            }
        }
        events
    };
    let gather = async {
        let mut samples = Vec::with_capacity(workload.requests() as usize);
        let mut first_server = vec![None; workload.clients.len()];
        let mut resolves_ms = Vec::new();
        while let Some(done) = clients.join_next().await {
            if let Ok((i, out)) = done {
                samples.extend(out.samples);
                resolves_ms.extend(out.resolves_ms);
                if let Some(slot) = first_server.get_mut(i) {
                    *slot = out.first;
                }
            }
        }
        (samples, first_server, resolves_ms)
    };
    // The scenario's steps are all within the window; clients run past it
    // when they are late, so both are awaited.
    let (events, (mut samples, first_server, resolves_ms)) = tokio::join!(scenario, gather);
    samples.sort_by_key(|s| (s.start_ms, s.client));
    PhaseOut {
        samples,
        events,
        first_server,
        resolves_ms,
    }
}

/// Undoes what the scenario did (heal, start), so the next routing starts
/// from the same cluster.
async fn undo(api: &Api, plan: &Plan, events: &[Event]) -> Result<(), Error> {
    match plan.scenario {
        Scenario::OriginOutage if !events.iter().any(|e| e.what.starts_with("heal")) => {
            api.act("origin", "heal").await
        }
        Scenario::EdgeDown => match &plan.edge {
            Some((name, _)) => api.act(name, "start").await,
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

/// What one client saw.
struct ClientOut {
    samples: Vec<Sample>,
    /// The server of its first answered request.
    first: Option<u16>,
    resolves_ms: Vec<f64>,
}

/// A client's connections and where they go, shared by its requests in
/// flight.
struct ClientConns {
    /// The server it uses now; `None` until resolved, and again after a
    /// failure (held while resolving, so one resolution serves every
    /// request waiting for it).
    server: tokio::sync::Mutex<Option<usize>>,
    /// Idle keep-alive connections, with their server.
    idle: std::sync::Mutex<Vec<(usize, SendRequest<Empty<Bytes>>)>>,
    /// Failed attempts so far (the random routing's next pick).
    tries: std::sync::atomic::AtomicU32,
    resolves_ms: std::sync::Mutex<Vec<f64>>,
}

/// One client's session: each request goes out when it is due (the
/// previous one's due time plus the think time), on one of at most
/// [`CONNECTIONS_PER_CLIENT`] keep-alive connections, as a browser's
/// requests to one host do; a request due while all are busy waits for
/// one, and that wait is part of its latency.
async fn client(
    ctx: &Arc<Ctx>,
    c: &Arc<Client>,
    routing: Routing,
    t0: tokio::time::Instant,
) -> ClientOut {
    let conns = Arc::new(ClientConns {
        server: tokio::sync::Mutex::new(None),
        idle: std::sync::Mutex::new(Vec::new()),
        tries: std::sync::atomic::AtomicU32::new(0),
        resolves_ms: std::sync::Mutex::new(Vec::new()),
    });
    let slots = Arc::new(tokio::sync::Semaphore::new(CONNECTIONS_PER_CLIENT));
    let mut in_flight = JoinSet::new();
    let mut due = t0 + Duration::from_millis(c.start_ms);
    for (k, req) in c.requests.iter().enumerate() {
        if k > 0 {
            due += Duration::from_millis(req.think_ms);
        }
        tokio::time::sleep_until(due).await;
        let start_ms = ms(due.saturating_duration_since(t0));
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let (ctx, c, conns, req) = (ctx.clone(), c.clone(), conns.clone(), req.clone());
        in_flight.spawn(async move {
            let mut sample = request(&ctx, &c, &conns, routing, &req, due, start_ms).await;
            sample.request = u32::try_from(k).unwrap_or(u32::MAX);
            drop(slot);
            let n = ctx.done.fetch_add(1, Ordering::Relaxed);
            if let Some(pb) = &ctx.progress
                && n.is_multiple_of(64)
            {
                pb.set_position(n + 1);
            }
            (k, sample)
        });
    }
    let mut samples: Vec<(usize, Sample)> = Vec::with_capacity(c.requests.len());
    while let Some(done) = in_flight.join_next().await {
        if let Ok(x) = done {
            samples.push(x);
        }
    }
    samples.sort_by_key(|(k, _)| *k);
    let first = samples
        .iter()
        .find(|(_, s)| s.status != 0)
        .map(|(_, s)| s.server);
    let resolves_ms = conns
        .resolves_ms
        .lock()
        .map(|mut r| std::mem::take(&mut *r))
        .unwrap_or_default();
    ClientOut {
        samples: samples.into_iter().map(|(_, s)| s).collect(),
        first,
        resolves_ms,
    }
}

/// One request, retried (on another connection, after asking again where
/// to go) until it is answered or [`RETRY_FOR`] has passed.
async fn request(
    ctx: &Ctx,
    c: &Client,
    conns: &ClientConns,
    routing: Routing,
    req: &Request,
    due: tokio::time::Instant,
    start_ms: u64,
) -> Sample {
    let (outcome, used) = loop {
        let chosen = {
            let mut server = conns.server.lock().await;
            match *server {
                Some(s) => s,
                None => {
                    let asked = Instant::now();
                    let tries = conns.tries.load(Ordering::Relaxed);
                    let s = choose(ctx, c, routing, &req.path, tries).await;
                    if routing == Routing::Director
                        && let Ok(mut r) = conns.resolves_ms.lock()
                    {
                        r.push(asked.elapsed().as_secs_f64() * 1000.0);
                    }
                    *server = Some(s);
                    s
                }
            }
        };
        let reuse = conns.idle.lock().ok().and_then(|mut idle| {
            idle.retain(|(_, send)| !send.is_closed());
            let i = idle.iter().position(|(s, _)| *s == chosen)?;
            Some(idle.swap_remove(i).1)
        });
        let attempt = tokio::time::timeout(
            REQUEST_TIMEOUT,
            fetch(ctx, c, chosen, reuse, &req.path, req.range),
        )
        .await;
        match attempt {
            Ok(Ok((answer, send))) => {
                if let Ok(mut idle) = conns.idle.lock() {
                    idle.push((chosen, send));
                }
                break (Some(answer), chosen);
            }
            Ok(Err(_)) | Err(_) => {
                conns.tries.fetch_add(1, Ordering::Relaxed);
                // Straight to the origin there is nowhere else to go;
                // otherwise ask again (the director, or another edge).
                if routing != Routing::Origin {
                    let mut server = conns.server.lock().await;
                    if *server == Some(chosen) {
                        *server = None;
                    }
                }
                if due.elapsed() >= RETRY_FOR {
                    break (None, chosen);
                }
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    };
    let latency = due.elapsed();
    let (status, served, stale, bytes) = match outcome {
        Some(a) => {
            let (served, stale) = served_by(&a.headers, routing != Routing::Origin);
            (a.status, served, stale, a.bytes)
        }
        None => (0, Served::Failed, false, 0),
    };
    Sample {
        client: c.id,
        start_ms: u32::try_from(start_ms).unwrap_or(u32::MAX),
        latency_us: micros(latency),
        status,
        served,
        stale,
        bytes,
        server: u16::try_from(used).unwrap_or(u16::MAX),
        request: 0,
    }
}

/// The server for the client's next connection.
async fn choose(ctx: &Ctx, c: &Client, routing: Routing, path: &str, tries: u32) -> usize {
    let groups = ctx.edge_groups().max(1);
    let random = ((c.random_pick as usize).wrapping_add(tries as usize)) % groups;
    match routing {
        Routing::Origin => ctx.origin(),
        Routing::Random => random,
        // Without an answer from the director, a random edge (as a client
        // whose lookup failed would use a cached or default address).
        Routing::Director => resolve(ctx, c, path).await.unwrap_or(random),
    }
}

/// Asks the director where `c` should go: its redirect's target.
async fn resolve(ctx: &Ctx, c: &Client, path: &str) -> Option<usize> {
    let (mut send, conn) = connect(ctx.director).await.ok()?;
    let driver = tokio::spawn(conn);
    let req = HttpRequest::get(path)
        .header(header::HOST, ctx.director_host.clone())
        .header("x-forwarded-for", c.ip.to_string())
        .body(Empty::<Bytes>::new())
        .ok()?;
    let answer = tokio::time::timeout(REQUEST_TIMEOUT, send.send_request(req))
        .await
        .ok()?
        .ok()?;
    driver.abort();
    let location = answer.headers().get(header::LOCATION)?.to_str().ok()?;
    let rest = location.strip_prefix("http://")?;
    let authority = rest.split('/').next()?;
    ctx.by_authority.get(authority).copied()
}

type Conn = hyper::client::conn::http1::Connection<TokioIo<TcpStream>, Empty<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<(SendRequest<Empty<Bytes>>, Conn), Error> {
    let io = |e: std::io::Error| Error::Io {
        what: format!("connect to {addr}"),
        source: e,
    };
    let stream = TcpStream::connect(addr).await.map_err(io)?;
    stream.set_nodelay(true).map_err(io)?;
    hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| Error::Cluster(format!("handshake with {addr}: {e}")))
}

struct Answer {
    status: u16,
    headers: http::HeaderMap,
    bytes: u64,
}

/// One request to `server`, on `reuse` if given, else on a new
/// connection (paying the handshake's round trip); answers the
/// connection for the next request.
async fn fetch(
    ctx: &Ctx,
    c: &Client,
    server: usize,
    reuse: Option<SendRequest<Empty<Bytes>>>,
    path: &str,
    range: Option<(u64, u64)>,
) -> Result<(Answer, SendRequest<Empty<Bytes>>), Error> {
    let rtt = ctx.rtt(c, server);
    let target = ctx
        .servers
        .get(server)
        .ok_or_else(|| Error::Cluster("no such server".into()))?;
    let mut send = match reuse {
        Some(send) => send,
        None => {
            let (send, driver) = connect(target.addr).await?;
            tokio::spawn(async move {
                let _ = driver.await;
            });
            tokio::time::sleep(rtt).await;
            send
        }
    };
    let mut req = HttpRequest::get(path)
        .header(header::HOST, target.host.clone())
        .header(header::USER_AGENT, "meridian-simulate");
    if let Some((a, b)) = range {
        req = req.header(header::RANGE, format!("bytes={a}-{b}"));
    }
    let req = req
        .body(Empty::<Bytes>::new())
        .map_err(|e| Error::Cluster(format!("request for {path}: {e}")))?;
    tokio::time::sleep(rtt / 2).await;
    send.ready()
        .await
        .map_err(|e| Error::Cluster(format!("connection: {e}")))?;
    let answer = send
        .send_request(req)
        .await
        .map_err(|e| Error::Cluster(format!("request: {e}")))?;
    let status = answer.status().as_u16();
    let (parts, mut body) = answer.into_parts();
    let mut bytes = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Error::Cluster(format!("body: {e}")))?;
        if let Some(d) = frame.data_ref() {
            bytes += d.len() as u64;
        }
    }
    tokio::time::sleep(rtt / 2).await;
    Ok((
        Answer {
            status,
            headers: parts.headers,
            bytes,
        },
        send,
    ))
}

/// The figures of one routing's run.
fn result(
    ctx: &Ctx,
    w: &Workload,
    routing: Routing,
    out: PhaseOut,
    origin_counted: Counted,
    bucket_ms: u64,
    wall_ms: u64,
) -> RoutingResult {
    let cdn = routing != Routing::Origin;
    let region_of: HashMap<u32, Region> = w.clients.iter().map(|c| (c.id, c.region)).collect();
    let mut regions = Vec::new();
    for r in Region::ALL {
        let clients = w.clients.iter().filter(|c| c.region == r).count() as u32;
        if clients == 0 {
            continue;
        }
        let st = stats(
            out.samples
                .iter()
                .filter(|s| region_of.get(&s.client) == Some(&r)),
            cdn,
        );
        regions.push(RegionStats {
            region: r,
            clients,
            stats: st,
        });
    }
    let edge_down = edge_down(ctx, &out);
    RoutingResult {
        routing,
        overall: stats(&out.samples, cdn),
        regions,
        cdf_ms: cdf_ms(&out.samples),
        timeline: timeline(&out.samples, bucket_ms),
        origin_counted,
        events: out.events,
        edge_down,
        resolve_p50_ms: {
            let mut r = out.resolves_ms.clone();
            r.sort_by(f64::total_cmp);
            crate::stats::quantile(&r, 0.5)
        },
        wall_ms,
    }
}

/// The stopped edge's clients, before and after it stopped.
fn edge_down(ctx: &Ctx, out: &PhaseOut) -> Option<EdgeDown> {
    let stop = out.events.iter().find(|e| e.what.starts_with("stop "))?;
    let name = stop.what.strip_prefix("stop ")?.to_owned();
    let server = ctx.servers.iter().position(|s| s.names.contains(&name))? as u16;
    let at = stop.t_ms;
    let theirs: std::collections::HashSet<u32> = out
        .samples
        .iter()
        .filter(|s| s.server == server && u64::from(s.start_ms) < at)
        .map(|s| s.client)
        .collect();
    if theirs.is_empty() {
        return None;
    }
    let mine = || out.samples.iter().filter(|s| theirs.contains(&s.client));
    let before = stats(mine().filter(|s| u64::from(s.start_ms) < at), true);
    let after = stats(mine().filter(|s| u64::from(s.start_ms) >= at), true);
    let mut last: HashMap<u32, u16> = HashMap::new();
    for s in mine().filter(|s| u64::from(s.start_ms) >= at && s.status != 0) {
        last.insert(s.client, s.server);
    }
    let mut moved: BTreeMap<String, u32> = BTreeMap::new();
    for server in last.values() {
        if let Some(s) = ctx.servers.get(usize::from(*server)) {
            *moved.entry(s.label.clone()).or_default() += 1;
        }
    }
    let mut moved_to: Vec<(String, u32)> = moved.into_iter().collect();
    moved_to.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Some(EdgeDown {
        edge: name,
        at_ms: at,
        clients: theirs.len() as u32,
        before,
        after,
        moved_to,
    })
}

/// Clients grouped by place.
fn places(w: &Workload) -> Vec<ClientPlace> {
    let mut by: BTreeMap<(i64, i64, String), ClientPlace> = BTreeMap::new();
    for c in &w.clients {
        let key = (
            (c.latitude * 100.0).round() as i64,
            (c.longitude * 100.0).round() as i64,
            c.country.clone(),
        );
        let p = by.entry(key).or_insert_with(|| ClientPlace {
            latitude: c.latitude,
            longitude: c.longitude,
            country: c.country.clone(),
            region: c.region,
            clients: 0,
            requests: 0,
        });
        p.clients += 1;
        p.requests += c.requests.len() as u64;
    }
    let mut v: Vec<ClientPlace> = by.into_values().collect();
    v.sort_by_key(|p| std::cmp::Reverse(p.clients));
    v
}

/// Where the director sent each place's clients.
fn director_routes(ctx: &Ctx, w: &Workload, first: &[Option<u16>]) -> Vec<Route> {
    let mut by: BTreeMap<(i64, i64, u16), Route> = BTreeMap::new();
    for (c, server) in w.clients.iter().zip(first) {
        let Some(server) = *server else { continue };
        let Some(s) = ctx.servers.get(usize::from(server)) else {
            continue;
        };
        let key = (
            (c.latitude * 100.0).round() as i64,
            (c.longitude * 100.0).round() as i64,
            server,
        );
        by.entry(key)
            .or_insert_with(|| Route {
                latitude: c.latitude,
                longitude: c.longitude,
                edge: s.label.clone(),
                clients: 0,
            })
            .clients += 1;
    }
    let mut v: Vec<Route> = by.into_values().collect();
    v.sort_by_key(|p| std::cmp::Reverse(p.clients));
    v
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, ms)
}
