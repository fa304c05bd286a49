//! What the page shows: one [`Snapshot`] of the cluster per poll, and the
//! arithmetic that turns two polls' counters into rates and ratios. Pure:
//! the poller (`poll.rs`) gathers the inputs.

use serde::Serialize;

use crate::control::{Fault, NodeInfo};

use super::purges::Record;

/// The whole picture, as `GET /api/state` and every server-sent event
/// carry it.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// When this poll finished, milliseconds since the Unix epoch.
    pub generated_at: u64,
    /// How often the dashboard polls, milliseconds.
    pub interval_ms: u64,
    pub nodes: Vec<NodeView>,
    pub links: Vec<LinkView>,
    /// The last purges, newest first.
    pub purges: Vec<Record>,
    pub purge_log: LogView,
    pub totals: Totals,
}

/// A node: what the cluster says it is, its fault, and what its admin
/// listener said.
#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    #[serde(flatten)]
    pub info: NodeInfo,
    pub fault: Fault,
    /// Up, slow, failing or down (the page's colour).
    pub state: Health,
    /// Requests per second over the last interval (0 while down), as in
    /// `numbers` (for `meridian cluster status`).
    pub rps: f64,
    /// Why it is down (the admin poll's error), if it is.
    pub reason: Option<String>,
    /// Its counters; `None` while it is down, or for a node without any
    /// (the director).
    pub numbers: Option<Numbers>,
    /// Whether the director's health checks see it up (edges only, once
    /// the director answered).
    pub director_healthy: Option<bool>,
    /// Its place in the purge log, once the log answered.
    pub purge: Option<NodePurge>,
}

/// Up, or how it is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Health {
    Up,
    /// Up, with extra delay on every hop into it.
    Slow,
    /// Up, answering errors.
    Failing,
    /// Stopped, or its admin listener does not answer.
    Down,
}

/// A node's health from its fault and whether its admin listener
/// answered: stopped or unreachable is down, whatever else is set.
pub fn health(fault: Fault, reachable: bool) -> Health {
    match fault {
        Fault::Stopped => Health::Down,
        _ if !reachable => Health::Down,
        Fault::Failing => Health::Failing,
        Fault::Slow { .. } => Health::Slow,
        Fault::None => Health::Up,
    }
}

/// A node's numbers, since it started (`requests`...) and over the last
/// poll interval (`rps`, `recent_hit_ratio`...).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Numbers {
    pub requests: u64,
    /// Requests per second over the last interval.
    pub rps: f64,
    pub hits: u64,
    pub misses: u64,
    /// hits / (hits + misses) since start; `None` before the first.
    pub hit_ratio: Option<f64>,
    /// The same over the last interval.
    pub recent_hit_ratio: Option<f64>,
    /// The share of its requests it answered without forwarding them
    /// upstream.
    pub offload: Option<f64>,
    /// Response body bytes it served (`meridian_response_bytes_total`).
    pub bytes_served: Option<u64>,
    pub bytes_per_s: Option<f64>,
    /// URLs stored, and the bytes the store charges for them.
    pub entries: u64,
    pub store_bytes: u64,
    pub stale_served: u64,
    pub upstream_errors: u64,
}

/// The counters one poll of a node reads (`/stats`, `/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default)]
pub struct Counters {
    pub requests: u64,
    pub hits: u64,
    pub misses: u64,
    pub collapsed: u64,
    pub bypassed: u64,
    pub entries: u64,
    #[serde(rename = "bytes")]
    pub store_bytes: u64,
    pub stale_served: u64,
    pub upstream_errors: u64,
    #[serde(skip)]
    pub bytes_served: Option<u64>,
}

/// Per second, from two readings of a counter `secs` apart. A counter
/// that went down was reset (the node restarted): all of it is new.
pub fn rate(now: u64, before: u64, secs: f64) -> f64 {
    if secs <= 0.0 || !secs.is_finite() {
        return 0.0;
    }
    let delta = if now >= before { now - before } else { now };
    delta as f64 / secs
}

/// `part / whole`, `None` when `whole` is 0; clamped to 0..=1.
pub fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| (part as f64 / whole as f64).clamp(0.0, 1.0))
}

/// What went up between two readings (all of it after a reset).
fn delta(now: u64, before: u64) -> u64 {
    if now >= before { now - before } else { now }
}

/// A node's numbers from this poll's counters and, when there was one, the
/// previous poll's taken `secs` earlier.
pub fn numbers(now: &Counters, before: Option<(&Counters, f64)>) -> Numbers {
    let forwarded = now.misses.saturating_sub(now.collapsed) + now.bypassed;
    let (rps, recent_hit_ratio, bytes_per_s) = match before {
        Some((b, secs)) => (
            rate(now.requests, b.requests, secs),
            ratio(
                delta(now.hits, b.hits),
                delta(now.hits, b.hits) + delta(now.misses, b.misses),
            ),
            match (now.bytes_served, b.bytes_served) {
                (Some(n), Some(b)) => Some(rate(n, b, secs)),
                _ => None,
            },
        ),
        None => (0.0, None, None),
    };
    Numbers {
        requests: now.requests,
        rps,
        hits: now.hits,
        misses: now.misses,
        hit_ratio: ratio(now.hits, now.hits + now.misses),
        recent_hit_ratio,
        offload: ratio(now.requests.saturating_sub(forwarded), now.requests),
        bytes_served: now.bytes_served,
        bytes_per_s,
        entries: now.entries,
        store_bytes: now.store_bytes,
        stale_served: now.stale_served,
        upstream_errors: now.upstream_errors,
    }
}

/// A counter summed across a node's restarts (each restart starts its
/// counters again from 0).
#[derive(Debug, Clone, Copy, Default)]
pub struct Lifetime {
    last: u64,
    pub total: u64,
}

impl Lifetime {
    /// Takes a reading; answers what it added.
    pub fn observe(&mut self, raw: u64) -> u64 {
        let added = delta(raw, self.last);
        self.last = raw;
        self.total = self.total.saturating_add(added);
        added
    }
}

/// One link: a node and one of its upstreams.
#[derive(Debug, Clone, Serialize)]
pub struct LinkView {
    pub from: String,
    pub to: String,
    pub rtt_ms: f64,
    /// Both ends are up (not down).
    pub up: bool,
}

/// A node's line in the purge log's status.
#[derive(Debug, Clone, Serialize)]
pub struct NodePurge {
    pub applied: u64,
    pub behind: u64,
    pub lagging: bool,
    pub last_seen_ms: Option<u64>,
}

/// Whether the purge log answered, and its head.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LogView {
    pub reachable: bool,
    pub head: Option<u64>,
    pub error: Option<String>,
}

/// The cluster as a whole.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Totals {
    pub nodes: usize,
    pub nodes_up: usize,
    /// Client requests at the edges since the dashboard started watching
    /// (summed across restarts), and per second now.
    pub edge_requests: u64,
    pub edge_rps: f64,
    pub edge_bytes_served: u64,
    /// Edge hit ratio over the last interval.
    pub edge_recent_hit_ratio: Option<f64>,
    pub origin_requests: u64,
    pub origin_rps: f64,
    pub origin_bytes: u64,
    /// 1 − origin requests / edge requests: the share of client requests
    /// the CDN kept from the origin, since start and over the last
    /// interval.
    pub offload: Option<f64>,
    pub recent_offload: Option<f64>,
    /// The same for bytes.
    pub byte_offload: Option<f64>,
}

/// `1 − origin / clients`, `None` without clients; 0 when the origin saw
/// more than the clients sent (revalidations, health checks).
pub fn offload(origin: u64, clients: u64) -> Option<f64> {
    ratio(origin, clients).map(|r| 1.0 - r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(requests: u64, hits: u64, misses: u64) -> Counters {
        Counters {
            requests,
            hits,
            misses,
            ..Counters::default()
        }
    }

    #[test]
    fn rate_is_the_delta_over_the_interval_and_survives_a_restart() {
        assert_eq!(rate(150, 100, 2.0), 25.0);
        assert_eq!(rate(7, 100, 1.0), 7.0, "restarted: counters began at 0");
        assert_eq!(rate(5, 1, 0.0), 0.0);
    }

    #[test]
    fn numbers_split_total_and_recent_hit_ratio() {
        let before = counters(10, 0, 10);
        let now = counters(30, 20, 10);
        let n = numbers(&now, Some((&before, 2.0)));
        assert_eq!(n.rps, 10.0);
        assert_eq!(n.hit_ratio, Some(20.0 / 30.0));
        assert_eq!(n.recent_hit_ratio, Some(1.0));
        assert_eq!(numbers(&now, None).rps, 0.0);
        assert_eq!(numbers(&Counters::default(), None).hit_ratio, None);
    }

    #[test]
    fn offload_counts_collapsed_misses_as_not_forwarded() {
        let now = Counters {
            requests: 10,
            hits: 5,
            misses: 5,
            collapsed: 2,
            bypassed: 1,
            ..Counters::default()
        };
        // Forwarded: 3 misses that fetched + 1 bypass; 6 of 10 kept.
        assert_eq!(numbers(&now, None).offload, Some(0.6));
        assert_eq!(offload(25, 100), Some(0.75));
        assert_eq!(offload(120, 100), Some(0.0));
        assert_eq!(offload(3, 0), None);
    }

    #[test]
    fn lifetime_adds_across_restarts() {
        let mut l = Lifetime::default();
        assert_eq!(l.observe(10), 10);
        assert_eq!(l.observe(15), 5);
        assert_eq!(l.observe(3), 3, "restarted");
        assert_eq!(l.total, 18);
    }

    #[test]
    fn stopped_or_unreachable_is_down_whatever_else_is_set() {
        assert_eq!(health(Fault::None, true), Health::Up);
        assert_eq!(health(Fault::Slow { ms: 200 }, true), Health::Slow);
        assert_eq!(health(Fault::Failing, true), Health::Failing);
        assert_eq!(health(Fault::Failing, false), Health::Down);
        assert_eq!(health(Fault::Stopped, true), Health::Down);
    }
}
