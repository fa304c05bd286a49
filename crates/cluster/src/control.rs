//! The cluster as the dashboard and the `meridian cluster` subcommands see
//! it: its nodes (fixed for a run), each node's fault state, and the actions
//! that change it. [`crate::run::Cluster`] implements [`Control`].

use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeKind {
    Origin,
    Shield,
    Edge,
    Director,
}

/// One node of the running cluster.
#[derive(Debug, Clone, Serialize)]
pub struct NodeInfo {
    pub name: String,
    pub kind: NodeKind,
    pub region: String,
    pub latitude: f64,
    pub longitude: f64,
    /// Where its clients reach it: an edge's `url` (its region's front), a
    /// shield's or the origin's listener, the director's public listener.
    pub url: String,
    /// Its admin listener (`/healthz`, `/stats`, `/metrics`); none for the
    /// origin.
    pub admin: Option<String>,
    /// Names of the nodes it fetches from (an edge: the shields; a shield:
    /// the origin), each with the simulated round trip of that link.
    pub upstreams: Vec<UpstreamLink>,
}

/// One link between two nodes.
#[derive(Debug, Clone, Serialize)]
pub struct UpstreamLink {
    pub name: String,
    /// Simulated round trip, milliseconds.
    pub rtt_ms: f64,
}

/// A node's injected fault, as set by [`Action`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Fault {
    /// Running normally.
    #[default]
    None,
    /// Stopped: its listeners are closed; connections to it are refused or reset.
    Stopped,
    /// Every hop into it costs this much more (round trip).
    Slow { ms: u64 },
    /// It answers every request with `503 Service Unavailable`.
    Failing,
}

/// What `meridian cluster stop|start|slow|fail|heal NODE` and the
/// dashboard's buttons ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Stop the node (its listeners close; its cache is lost, as in a crash).
    Stop,
    /// Start a stopped node again on the same addresses (with an empty cache).
    Start,
    /// Add this much round-trip delay to every hop into it.
    Slow(Duration),
    /// Make it answer errors.
    Fail,
    /// Clear `Slow` / `Fail`.
    Heal,
}

impl FromStr for Action {
    type Err = String;
    /// `stop`, `start`, `fail`, `heal`, `slow` (200 ms) or `slow=DURATION`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (verb, arg) = s.split_once('=').unwrap_or((s, ""));
        match (verb.trim(), arg.trim()) {
            ("stop", "") => Ok(Action::Stop),
            ("start", "") => Ok(Action::Start),
            ("fail", "") => Ok(Action::Fail),
            ("heal", "") => Ok(Action::Heal),
            ("slow", "") => Ok(Action::Slow(DEFAULT_SLOW)),
            ("slow", d) => humantime::parse_duration(d)
                .map(Action::Slow)
                .map_err(|e| format!("slow={d}: {e} (for example slow=300ms)")),
            _ => Err(format!(
                "`{s}` is not an action: stop, start, slow[=DURATION], fail or heal"
            )),
        }
    }
}

/// `slow` without a duration.
pub const DEFAULT_SLOW: Duration = Duration::from_millis(200);

/// Why an action was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ControlError {
    #[error("no node named `{0}`")]
    UnknownNode(String),
    #[error("{0}")]
    Refused(String),
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The running cluster, for the dashboard and the control API.
pub trait Control: Send + Sync + 'static {
    /// Every node, in a fixed order (origin, shields, edges, director).
    fn nodes(&self) -> Vec<NodeInfo>;
    /// A node's current fault; `None` for an unknown name.
    fn fault(&self, name: &str) -> Option<Fault>;
    /// Applies an action; answers the node's fault afterwards.
    fn act<'a>(
        &'a self,
        name: &'a str,
        action: Action,
    ) -> BoxFuture<'a, Result<Fault, ControlError>>;
    /// The purge log's base URL (the director's admin listener):
    /// `POST /v1/purge`, `GET /v1/purges/status`.
    fn purge_log(&self) -> String;
    /// The cluster's admin token (every scope), for the purge log and the
    /// nodes' admin routes.
    fn token(&self) -> String;
    /// Requests and body bytes the origin has answered since start.
    fn origin_counters(&self) -> OriginCounters;
}

/// The sample origin's counters.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct OriginCounters {
    pub requests: u64,
    pub bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_parse() {
        assert_eq!("stop".parse(), Ok(Action::Stop));
        assert_eq!("slow".parse(), Ok(Action::Slow(DEFAULT_SLOW)));
        assert_eq!("slow=1s".parse(), Ok(Action::Slow(Duration::from_secs(1))));
        assert!("slow=fast".parse::<Action>().is_err());
        assert!("explode".parse::<Action>().is_err());
    }
}
