//! The poller: every interval (or at once after an action) it asks every
//! node's admin listener for its counters, the director for its view of
//! the edges and the purge log for its status, all at the same time and
//! each within a short timeout (a dead node costs one timeout, not a
//! stalled page), and publishes one [`Snapshot`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::future::join_all;
use meridian_common::Shutdown;
use meridian_purge::Status;
use serde::Deserialize;
use tokio::sync::{Notify, watch};

use super::Settings;
use super::purges::Purges;
use super::snapshot::{
    Counters, Health, LinkView, LogView, NodePurge, NodeView, Numbers, Snapshot, Totals, health,
    numbers, offload, rate, ratio,
};
use crate::control::{Control, Fault, NodeInfo, NodeKind};

/// Largest answer read from a node's `/stats` or `/metrics`, the director
/// or the purge log's status: far above what a cluster's sends, and a
/// bound on what a misbehaving one makes us hold.
pub const MAX_ANSWER: usize = 1 << 20;

/// The metric whose value is the body bytes a node served.
const BYTES_SERVED: &str = "meridian_response_bytes_total";

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What the poller keeps between polls.
pub struct Poller {
    pub control: Arc<dyn Control>,
    pub client: reqwest::Client,
    pub settings: Settings,
    pub purges: Arc<Mutex<Purges>>,
    pub publish: watch::Sender<Arc<String>>,
    pub poke: Arc<Notify>,
    /// Each node's previous reading.
    previous: HashMap<String, (Instant, Counters)>,
    origin_previous: Option<(Instant, u64)>,
    /// Edge requests, hits+misses, hits and bytes served, and the origin's
    /// requests, summed across restarts; with their values one poll ago.
    lifetime: Lifetimes,
}

#[derive(Default)]
struct Lifetimes {
    edges: HashMap<String, EdgeLifetime>,
    at: Option<Instant>,
    before: (u64, u64),
}

#[derive(Default)]
struct EdgeLifetime {
    requests: super::snapshot::Lifetime,
    hits: super::snapshot::Lifetime,
    lookups: super::snapshot::Lifetime,
    bytes: super::snapshot::Lifetime,
}

/// One node's answers this poll.
enum Reading {
    /// An edge's or shield's counters.
    Counters(Counters),
    /// The director's health of each edge (by name and by URL).
    Director(Vec<DirectorEdge>),
    /// A node without an admin listener (the origin).
    Nothing,
    Unreachable(String),
}

#[derive(Debug, Clone, Deserialize)]
struct DirectorEdge {
    #[serde(default)]
    name: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    healthy: bool,
}

#[derive(Deserialize)]
struct DirectorEdges {
    #[serde(default)]
    edges: Vec<DirectorEdge>,
}

impl Poller {
    pub fn new(
        control: Arc<dyn Control>,
        client: reqwest::Client,
        settings: Settings,
        purges: Arc<Mutex<Purges>>,
        publish: watch::Sender<Arc<String>>,
        poke: Arc<Notify>,
    ) -> Self {
        Poller {
            control,
            client,
            settings,
            purges,
            publish,
            poke,
            previous: HashMap::new(),
            origin_previous: None,
            lifetime: Lifetimes::default(),
        }
    }

    /// Polls until `shutdown`.
    pub async fn run(mut self, shutdown: Shutdown) {
        loop {
            let snapshot = self.poll().await;
            match serde_json::to_string(&snapshot) {
                Ok(json) => {
                    self.publish.send_replace(Arc::new(json));
                }
                Err(e) => tracing::warn!("dashboard snapshot: {e}"),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.settings.poll_interval) => {}
                _ = self.poke.notified() => {}
                _ = shutdown.wait() => return,
            }
        }
    }

    /// One poll of everything, at once.
    pub async fn poll(&mut self) -> Snapshot {
        let infos = self.control.nodes();
        let readings = join_all(infos.iter().map(|n| self.read(n)));
        let log = self.read_log();
        let (readings, log) = tokio::join!(readings, log);
        let now = Instant::now();
        let generated_at = now_ms();

        let director: Vec<DirectorEdge> = readings
            .iter()
            .filter_map(|r| match r {
                Reading::Director(edges) => Some(edges.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        let status = log.as_ref().ok();
        if let Some(s) = status
            && let Ok(mut p) = self.purges.lock()
        {
            p.status(s, generated_at);
        }

        let mut nodes = Vec::with_capacity(infos.len());
        for (info, reading) in infos.into_iter().zip(readings) {
            nodes.push(self.view(info, reading, now, &director, status));
        }
        let totals = self.totals(&nodes, now);
        let links = links(&nodes);
        let purges = self.purges.lock().map(|p| p.records()).unwrap_or_default();
        let purge_log = match log {
            Ok(s) => LogView {
                reachable: true,
                head: Some(s.head),
                error: None,
            },
            Err(e) => LogView {
                reachable: false,
                head: None,
                error: Some(e),
            },
        };
        Snapshot {
            generated_at,
            interval_ms: u64::try_from(self.settings.poll_interval.as_millis()).unwrap_or(0),
            nodes,
            links,
            purges,
            purge_log,
            totals,
        }
    }

    fn view(
        &mut self,
        info: NodeInfo,
        reading: Reading,
        now: Instant,
        director: &[DirectorEdge],
        status: Option<&Status>,
    ) -> NodeView {
        let fault = self.control.fault(&info.name).unwrap_or_default();
        let (reachable, reason) = match &reading {
            Reading::Unreachable(why) => (false, Some(why.clone())),
            _ => (true, None),
        };
        let health = health(fault, reachable);
        let numbers = match reading {
            Reading::Counters(c) if health != Health::Down => {
                let before = self.previous.get(&info.name);
                let n = numbers(
                    &c,
                    before.map(|(at, b)| (b, now.duration_since(*at).as_secs_f64())),
                );
                self.previous.insert(info.name.clone(), (now, c));
                Some(n)
            }
            Reading::Nothing if info.kind == NodeKind::Origin => Some(self.origin_numbers(now)),
            _ => {
                // Down: the next reading starts a new interval.
                self.previous.remove(&info.name);
                None
            }
        };
        let director_healthy = (info.kind == NodeKind::Edge)
            .then(|| {
                director
                    .iter()
                    .find(|d| d.name == info.name)
                    .or_else(|| director.iter().find(|d| d.url == info.url))
                    .map(|d| d.healthy)
            })
            .flatten();
        let purge = status
            .and_then(|s| s.nodes.iter().find(|n| n.node == info.name))
            .map(|n| NodePurge {
                applied: n.applied,
                behind: n.behind,
                lagging: n.lagging,
                last_seen_ms: n.last_seen_ms,
            });
        NodeView {
            info,
            fault,
            state: health,
            rps: numbers.as_ref().map_or(0.0, |n| n.rps),
            reason: if health == Health::Down {
                reason.or_else(|| (fault == Fault::Stopped).then(|| "stopped".to_owned()))
            } else {
                None
            },
            numbers,
            director_healthy,
            purge,
        }
    }

    /// The origin's numbers, from the cluster's counters of it.
    fn origin_numbers(&mut self, now: Instant) -> Numbers {
        let c = self.control.origin_counters();
        let rps = self.origin_previous.map_or(0.0, |(at, r)| {
            rate(c.requests, r, now.duration_since(at).as_secs_f64())
        });
        self.origin_previous = Some((now, c.requests));
        Numbers {
            requests: c.requests,
            rps,
            bytes_served: Some(c.bytes),
            ..Numbers::default()
        }
    }

    fn totals(&mut self, nodes: &[NodeView], now: Instant) -> Totals {
        let mut t = Totals {
            nodes: nodes.len(),
            nodes_up: nodes.iter().filter(|n| n.state != Health::Down).count(),
            ..Totals::default()
        };
        let (mut hits, mut lookups) = (0, 0);
        for n in nodes.iter().filter(|n| n.info.kind == NodeKind::Edge) {
            let life = self.lifetime.edges.entry(n.info.name.clone()).or_default();
            if let Some(x) = &n.numbers {
                t.edge_rps += x.rps;
                hits += life.hits.observe(x.hits);
                lookups += life.lookups.observe(x.hits + x.misses);
                life.requests.observe(x.requests);
                life.bytes.observe(x.bytes_served.unwrap_or(0));
            }
        }
        for life in self.lifetime.edges.values() {
            t.edge_requests += life.requests.total;
            t.edge_bytes_served += life.bytes.total;
        }
        t.edge_recent_hit_ratio = ratio(hits, lookups);
        let origin = self.control.origin_counters();
        t.origin_requests = origin.requests;
        t.origin_bytes = origin.bytes;
        t.origin_rps = nodes
            .iter()
            .find(|n| n.info.kind == NodeKind::Origin)
            .and_then(|n| n.numbers.as_ref())
            .map_or(0.0, |x| x.rps);
        t.offload = offload(origin.requests, t.edge_requests);
        t.byte_offload = offload(origin.bytes, t.edge_bytes_served);
        let (edge_before, origin_before) = self.lifetime.before;
        if self.lifetime.at.is_some() {
            t.recent_offload = offload(
                origin.requests.saturating_sub(origin_before),
                t.edge_requests.saturating_sub(edge_before),
            );
        }
        self.lifetime.at = Some(now);
        self.lifetime.before = (t.edge_requests, origin.requests);
        t
    }

    /// One node's admin answers.
    async fn read(&self, info: &NodeInfo) -> Reading {
        let Some(admin) = info.admin.as_deref() else {
            return Reading::Nothing;
        };
        let admin = admin.trim_end_matches('/');
        if info.kind == NodeKind::Director {
            return match self.get(&format!("{admin}/v1/edges")).await {
                Ok(body) => match serde_json::from_slice::<DirectorEdges>(&body) {
                    Ok(d) => Reading::Director(d.edges),
                    Err(e) => Reading::Unreachable(format!("/v1/edges: {e}")),
                },
                Err(e) => Reading::Unreachable(e),
            };
        }
        let (stats_url, metrics_url) = (format!("{admin}/stats"), format!("{admin}/metrics"));
        let (stats, metrics) = tokio::join!(self.get(&stats_url), self.get(&metrics_url));
        let mut counters = match stats.and_then(|b| {
            serde_json::from_slice::<Counters>(&b).map_err(|e| format!("/stats: {e}"))
        }) {
            Ok(c) => c,
            Err(e) => return Reading::Unreachable(e),
        };
        counters.bytes_served = metrics
            .ok()
            .and_then(|b| bytes_served(&String::from_utf8_lossy(&b)));
        Reading::Counters(counters)
    }

    /// The purge log's status.
    async fn read_log(&self) -> Result<Status, String> {
        let log = self.control.purge_log();
        let url = format!("{}/v1/purges/status", log.trim_end_matches('/'));
        let body = self.get(&url).await?;
        serde_json::from_slice(&body).map_err(|e| format!("purge log status: {e}"))
    }

    /// `GET url` with the cluster token, within the client's timeout, at
    /// most [`MAX_ANSWER`] bytes.
    async fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        get_limited(&self.client, url, &self.control.token(), MAX_ANSWER).await
    }
}

/// `GET url` with `token`, reading at most `limit` bytes of a 2xx answer.
pub async fn get_limited(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    limit: usize,
) -> Result<Vec<u8>, String> {
    let mut r = client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| why(&e))?;
    if !r.status().is_success() {
        return Err(format!("answered {}", r.status()));
    }
    read_limited(&mut r, limit).await
}

/// The body of `r`, at most `limit` bytes.
pub async fn read_limited(r: &mut reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = r.chunk().await.map_err(|e| why(&e))? {
        if body.len() + chunk.len() > limit {
            return Err(format!("answer larger than {limit} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A short reason for a failed request (no URL: the page shows which node).
pub fn why(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "no answer within the timeout".into()
    } else if e.is_connect() {
        "connection refused".into()
    } else {
        let mut s = e.to_string();
        s.truncate(200);
        s
    }
}

/// The value of [`BYTES_SERVED`] in Prometheus text (summed over its
/// series, though a node has one); `None` without it.
pub fn bytes_served(text: &str) -> Option<u64> {
    let mut total: Option<u64> = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(BYTES_SERVED) else {
            continue;
        };
        // The name ends here: a label set or the value follows.
        let rest = match rest.chars().next() {
            Some('{') => rest.split_once('}').map_or("", |(_, v)| v),
            Some(' ') => rest,
            _ => continue,
        };
        let Some(value) = rest.split_whitespace().next() else {
            continue;
        };
        if let Ok(v) = value.parse::<f64>()
            && v.is_finite()
            && v >= 0.0
        {
            total = Some(total.unwrap_or(0).saturating_add(v as u64));
        }
    }
    total
}

/// Every node's upstream links, with whether both ends are up.
fn links(nodes: &[NodeView]) -> Vec<LinkView> {
    let up = |name: &str| {
        nodes
            .iter()
            .find(|n| n.info.name == name)
            .is_some_and(|n| n.state != Health::Down)
    };
    nodes
        .iter()
        .flat_map(|n| {
            n.info.upstreams.iter().map(|u| LinkView {
                from: n.info.name.clone(),
                to: u.name.clone(),
                rtt_ms: u.rtt_ms,
                up: n.state != Health::Down && up(&u.name),
            })
        })
        .collect()
}

/// The HTTP client of the poller and the purge form: short timeouts, no
/// proxy from the environment (every address is loopback), no redirects.
pub fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_served_reads_only_its_metric() {
        let text = "# HELP meridian_response_bytes Response body bytes.\n\
                    # TYPE meridian_response_bytes counter\n\
                    meridian_response_bytes_total 1234\n\
                    meridian_response_bytes_total_other 99\n\
                    meridian_requests_total{cache=\"hit\",class=\"2xx\"} 7\n";
        assert_eq!(bytes_served(text), Some(1234));
        assert_eq!(
            bytes_served("meridian_response_bytes_total{a=\"b\"} 5 1700000000\n"),
            Some(5)
        );
        assert_eq!(bytes_served("meridian_response_bytes_total NaN\n"), None);
        assert_eq!(bytes_served("meridian_response_bytes_total -3\n"), None);
        assert_eq!(bytes_served(""), None);
    }
}
