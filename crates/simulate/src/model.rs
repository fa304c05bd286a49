//! The data every part of the simulator shares: the workload (who asks
//! for what, when, from where) and the results (what they saw, per
//! routing and region), which the printed tables and the HTML report are
//! drawn from. Plain data, `Serialize` (the report embeds it as JSON, and
//! `--json` prints it).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use serde::Serialize;

/// Where clients are, for per-region figures: the continent of the
/// country the geo database puts the client's address in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Region {
    NorthAmerica,
    SouthAmerica,
    Europe,
    Africa,
    Asia,
    Oceania,
}

impl Region {
    pub const ALL: [Region; 6] = [
        Region::NorthAmerica,
        Region::SouthAmerica,
        Region::Europe,
        Region::Africa,
        Region::Asia,
        Region::Oceania,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Region::NorthAmerica => "North America",
            Region::SouthAmerica => "South America",
            Region::Europe => "Europe",
            Region::Africa => "Africa",
            Region::Asia => "Asia",
            Region::Oceania => "Oceania",
        }
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// How a client picks the server it fetches from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Routing {
    /// Asks the geo director, which sends it to the nearest healthy edge.
    Director,
    /// Any edge, picked at random (seeded per client).
    Random,
    /// No CDN: straight to the origin.
    Origin,
}

impl Routing {
    /// In the order they run and are shown.
    pub const ALL: [Routing; 3] = [Routing::Director, Routing::Random, Routing::Origin];

    pub fn label(self) -> &'static str {
        match self {
            Routing::Director => "nearest edge (director)",
            Routing::Random => "random edge",
            Routing::Origin => "straight to origin",
        }
    }
}

impl fmt::Display for Routing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// What happens during each routing's run, at the same workload time in
/// each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Nothing: the steady state.
    #[default]
    Steady,
    /// A tag purge at half time: the hit ratio dips and recovers.
    Purge,
    /// The origin answers 503 for the middle third of the run: cached and
    /// stale-if-error answers keep clients served.
    OriginOutage,
    /// One edge stops at a third of the run: its clients move elsewhere.
    EdgeDown,
}

impl Scenario {
    pub const ALL: [Scenario; 4] = [
        Scenario::Steady,
        Scenario::Purge,
        Scenario::OriginOutage,
        Scenario::EdgeDown,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Steady => "steady",
            Scenario::Purge => "purge",
            Scenario::OriginOutage => "origin-outage",
            Scenario::EdgeDown => "edge-down",
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scenario {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scenario::ALL
            .into_iter()
            .find(|c| c.name() == s.trim())
            .ok_or_else(|| {
                format!("`{s}` is not a scenario: steady, purge, origin-outage or edge-down")
            })
    }
}

// ---------------------------------------------------------------- workload

/// What a workload is generated from (the `simulate` flags).
#[derive(Debug, Clone, Serialize)]
pub struct WorkloadParams {
    pub seed: u64,
    pub clients: u32,
    /// Requests per routing (each routing replays the same ones).
    pub requests: u64,
    /// The window in which clients arrive and make their requests,
    /// milliseconds (per routing).
    pub duration_ms: u64,
    /// Zipf exponent of asset popularity (1.0 is the classic web figure).
    pub zipf_s: f64,
}

/// One asset the workload may ask for.
#[derive(Debug, Clone)]
pub struct AssetRef {
    pub path: Arc<str>,
    pub bytes: u64,
    /// The sample site's section (`news`, `static`...): its purge tag.
    pub section: Arc<str>,
}

/// One synthetic client: an address from the geo database, where that
/// database puts it, and its requests.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: u32,
    pub ip: IpAddr,
    /// ISO 3166 code.
    pub country: String,
    pub region: Region,
    pub latitude: f64,
    pub longitude: f64,
    /// When its first request is due, milliseconds after the run starts.
    pub start_ms: u64,
    /// In order; at least one.
    pub requests: Vec<Request>,
    /// A seeded draw for the random routing: the client uses edge
    /// `random_pick % number of edges`.
    pub random_pick: u32,
}

/// One request of a client.
#[derive(Debug, Clone)]
pub struct Request {
    /// Path and query, starting with `/`.
    pub path: Arc<str>,
    /// Milliseconds after the previous request was due (0 for the first):
    /// the client's think time. A request goes out when it is due, on one
    /// of the client's few connections, as a browser's do; so a client's
    /// session lasts its think times plus its last request, not the sum of
    /// every latency.
    pub think_ms: u64,
    /// A byte range (`Range: bytes=first-last`) for large media, as a
    /// player asks for its first segment.
    pub range: Option<(u64, u64)>,
}

/// A whole seeded workload: the same seed and parameters give the same one.
#[derive(Debug, Clone)]
pub struct Workload {
    pub params: WorkloadParams,
    pub clients: Vec<Client>,
    /// What the weights table is and where its figures come from (for the
    /// report).
    pub weights_source: String,
}

impl Workload {
    /// Requests over all clients.
    pub fn requests(&self) -> u64 {
        self.clients.iter().map(|c| c.requests.len() as u64).sum()
    }
}

// ----------------------------------------------------------------- results

/// Everything a run found: the report and the printed tables are drawn
/// from this alone.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub params: RunParams,
    /// The cluster's nodes, for the map.
    pub nodes: Vec<NodeMark>,
    /// Clients grouped by the place the database gives them.
    pub places: Vec<ClientPlace>,
    /// Where the director sent each place's clients (first resolution of
    /// the director run).
    pub routes: Vec<Route>,
    /// One per routing, in [`Routing::ALL`] order.
    pub routings: Vec<RoutingResult>,
}

/// The run's parameters, as the report shows them.
#[derive(Debug, Clone, Serialize)]
pub struct RunParams {
    pub workload: WorkloadParams,
    pub scenario: Scenario,
    /// The cluster file.
    pub config: String,
    /// `spawned in-process` or the dashboard address of the running cluster.
    pub cluster: String,
    /// The geo database the clients' addresses come from.
    pub database: String,
    pub weights_source: String,
    /// When the run started, milliseconds since the Unix epoch.
    pub started_at_ms: u64,
    /// Wall time of the whole run (all routings), milliseconds.
    pub wall_ms: u64,
    /// Width of a [`Bucket`], milliseconds.
    pub bucket_ms: u64,
    /// CPU the simulator's own threads used (not the cluster's).
    pub sim_cpu: Option<CpuUse>,
    /// What the scenario did, by name (`origin` failed, `eu-west` stopped,
    /// tag `news` purged).
    pub scenario_target: Option<String>,
}

/// CPU time, and the share of one core over the wall time.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CpuUse {
    pub cpu_ms: u64,
    pub percent_of_core: f64,
}

/// A node on the map.
#[derive(Debug, Clone, Serialize)]
pub struct NodeMark {
    pub name: String,
    /// `edge`, `shield`, `origin` or `director`.
    pub kind: String,
    pub region: String,
    pub latitude: f64,
    pub longitude: f64,
}

/// Clients at one place.
#[derive(Debug, Clone, Serialize)]
pub struct ClientPlace {
    pub latitude: f64,
    pub longitude: f64,
    pub country: String,
    pub region: Region,
    pub clients: u32,
    pub requests: u64,
}

/// The director sent `clients` clients at this place to `edge`.
#[derive(Debug, Clone, Serialize)]
pub struct Route {
    pub latitude: f64,
    pub longitude: f64,
    pub edge: String,
    pub clients: u32,
}

/// What one routing's run found.
#[derive(Debug, Clone, Serialize)]
pub struct RoutingResult {
    pub routing: Routing,
    pub overall: Stats,
    /// Regions with at least one client, in [`Region::ALL`] order.
    pub regions: Vec<RegionStats>,
    /// Latency (ms) at percentiles 0, 1, ..., 100 of all requests: the
    /// distribution as a CDF. Empty without requests.
    pub cdf_ms: Vec<f64>,
    /// The run in [`RunParams::bucket_ms`] slices, from its start.
    pub timeline: Vec<Bucket>,
    /// Requests and body bytes the origin itself counted during this run
    /// (revalidations and background refreshes included).
    pub origin_counted: Counted,
    /// The scenario's events, at their time in the run.
    pub events: Vec<Event>,
    /// With `--scenario edge-down`: the stopped edge's clients.
    pub edge_down: Option<EdgeDown>,
    /// Resolving through the director (director routing only): latency of
    /// the redirect, ms.
    pub resolve_p50_ms: Option<f64>,
    pub wall_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RegionStats {
    pub region: Region,
    pub clients: u32,
    pub stats: Stats,
}

/// Figures over a set of requests.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    pub requests: u64,
    /// Answered 2xx or 304.
    pub ok: u64,
    /// Failed: a 5xx, or no answer at all.
    pub errors: u64,
    /// Answered by the edge's cache.
    pub edge_hits: u64,
    /// Missed at the edge, answered by the shield's cache.
    pub shield_hits: u64,
    /// Served stale (stale-if-error, stale-while-revalidate) by any tier.
    pub stale: u64,
    /// edge_hits / requests that reached an edge.
    pub edge_hit_ratio: Option<f64>,
    /// shield_hits / requests the edge forwarded.
    pub shield_hit_ratio: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub mean_ms: Option<f64>,
    /// Requests that went all the way to the origin, as the responses'
    /// `Cache-Status` tell (every request, for the origin routing).
    pub origin_requests: u64,
    /// Body bytes of those responses.
    pub origin_bytes: u64,
    /// Body bytes clients received.
    pub client_bytes: u64,
    /// 1 − origin_requests / requests.
    pub offload: Option<f64>,
}

/// One slice of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Bucket {
    /// Start of the slice, ms from the run's start.
    pub t_ms: u64,
    /// Requests that started in it, and what became of them.
    pub requests: u64,
    pub edge_hits: u64,
    pub shield_hits: u64,
    pub origin_requests: u64,
    pub errors: u64,
    pub stale: u64,
    pub p50_ms: Option<f64>,
}

impl Bucket {
    /// The slice starting at `t_ms` with the figures of its requests.
    pub fn of(t_ms: u64, st: &Stats) -> Bucket {
        Bucket {
            t_ms,
            requests: st.requests,
            edge_hits: st.edge_hits,
            shield_hits: st.shield_hits,
            origin_requests: st.origin_requests,
            errors: st.errors,
            stale: st.stale,
            p50_ms: st.p50_ms,
        }
    }
}

/// Something the scenario did.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub t_ms: u64,
    pub what: String,
}

/// Requests and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counted {
    pub requests: u64,
    pub bytes: u64,
}

/// The clients of the edge that stopped: latency before and after, and
/// where they went.
#[derive(Debug, Clone, Serialize)]
pub struct EdgeDown {
    pub edge: String,
    pub at_ms: u64,
    /// Clients that had used the edge before it stopped.
    pub clients: u32,
    /// Their requests before it stopped, and after.
    pub before: Stats,
    pub after: Stats,
    /// Edges that served them after, with how many clients each.
    pub moved_to: Vec<(String, u32)>,
}
