//! Purges, one node and cluster-wide.
//!
//! - [`Purge`]: what to take out (`{"urls": [...]}`, `prefixes`, `tags`,
//!   `all`, `soft`), the JSON body of a node's `POST /purge` and of the
//!   log's `POST /v1/purge`, and the payload of every log entry.
//! - [`Applier`]: a node's store, which applies a purge and says what it
//!   touched.
//! - [`SyncState`]: how current a node is with the purge log, and so
//!   whether it may serve what it stored without revalidating it first (the
//!   `purge.max-lag` guarantee).
//! - [`follow`], [`publish`], [`status`]: the cluster purge log, over HTTP
//!   to the [`Keeper`] in the director ([`http_log`]) or in NATS JetStream
//!   ([`nats_log`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub mod http_log;
pub mod keeper;
pub mod keeper_http;
mod keeper_store;
pub mod nats_log;
mod sync;

pub use keeper::{Keeper, KeeperConfig, KeeperError};
pub use keeper_store::StoreError;
pub use sync::SyncState;

/// Most URLs, prefixes and tags one purge may name, together.
pub const MAX_ITEMS: usize = 1000;
/// Longest URL, prefix or tag accepted, in bytes.
pub const MAX_ITEM_LEN: usize = 8192;

/// What to take out of the cache.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Purge {
    /// Absolute URLs (`http://host/path?query`): every Vary variant of
    /// each, keyed exactly as a request for it is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// Host plus path prefix (`cdn.example/img/`, or with a scheme
    /// `https://cdn.example/img/` to take one scheme only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<String>,
    /// Surrogate keys (`Surrogate-Key`, `Cache-Tag`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Everything.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
    /// Mark stale instead of removing: the next request revalidates, and
    /// stale-if-error can still serve the copy while the origin is down.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub soft: bool,
}

/// The kinds of purge, a fixed set (metric labels, the CLI table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Url,
    Prefix,
    Tag,
    All,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Url => "url",
            Kind::Prefix => "prefix",
            Kind::Tag => "tag",
            Kind::All => "all",
        }
    }
}

impl Purge {
    /// A purge of one URL.
    pub fn url(url: impl Into<String>) -> Self {
        Purge {
            urls: vec![url.into()],
            ..Purge::default()
        }
    }

    /// Checks the limits: something named, at most [`MAX_ITEMS`] items of
    /// at most [`MAX_ITEM_LEN`] bytes, none empty.
    pub fn validate(&self) -> Result<(), String> {
        let items = self.urls.len() + self.prefixes.len() + self.tags.len();
        if items == 0 && !self.all {
            return Err("name something to purge: urls, prefixes, tags or all".into());
        }
        if items > 0 && self.all {
            return Err(
                "`all` purges everything; do not combine it with urls, prefixes or tags".into(),
            );
        }
        if items > MAX_ITEMS {
            return Err(format!(
                "at most {MAX_ITEMS} urls, prefixes and tags per purge ({items} given)"
            ));
        }
        let all = self.urls.iter().chain(&self.prefixes).chain(&self.tags);
        for item in all {
            if item.is_empty() {
                return Err("an empty url, prefix or tag".into());
            }
            if item.len() > MAX_ITEM_LEN {
                return Err(format!("an item longer than {MAX_ITEM_LEN} bytes"));
            }
        }
        Ok(())
    }

    /// The kinds this purge contains, in a fixed order.
    pub fn kinds(&self) -> Vec<Kind> {
        let mut k = Vec::new();
        if !self.urls.is_empty() {
            k.push(Kind::Url);
        }
        if !self.prefixes.is_empty() {
            k.push(Kind::Prefix);
        }
        if !self.tags.is_empty() {
            k.push(Kind::Tag);
        }
        if self.all {
            k.push(Kind::All);
        }
        k
    }
}

/// What applying a purge did on one node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// Stored responses removed (hard) or marked stale (soft).
    pub entries: u64,
    /// How long applying took, in microseconds.
    pub micros: u64,
}

/// A node's store, as the purge code sees it.
pub trait Applier: Send + Sync + 'static {
    /// Applies `purge` (already validated). An error names an item that
    /// could not be understood (for example a URL that does not parse);
    /// nothing is partly applied then.
    fn apply(&self, purge: &Purge) -> Result<Applied, String>;
}

/// The tier of a node; a cluster purge reaches every shield before any
/// edge, so no edge refills from a shield's old copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Shield,
    Edge,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Shield => "shield",
            Tier::Edge => "edge",
        }
    }
}

/// One entry of the cluster purge log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Position in the log, from 1, without gaps.
    pub seq: u64,
    /// When it was appended, milliseconds since the Unix epoch.
    pub at_ms: u64,
    pub purge: Purge,
}

/// The default `purge.max-lag`: how long a node may go without hearing
/// from the purge log before it revalidates what it stored earlier.
pub const DEFAULT_MAX_LAG: Duration = Duration::from_secs(5);

/// How a node follows the log.
#[derive(Debug, Clone)]
pub struct FollowConfig {
    /// `http://director-admin:port` or `nats://host:port`.
    pub log: String,
    /// This node's name (unique in the cluster; the durable consumer name).
    pub node: String,
    pub tier: Tier,
    /// Sent as `Authorization: Bearer` (HTTP) or used as the NATS token.
    pub token: Option<String>,
}

/// A node a cluster purge must reach (from the cluster config).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRef {
    pub name: String,
    pub tier: Tier,
}

/// How one node fared with one cluster purge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeOutcome {
    /// Applied and confirmed.
    Applied,
    /// Did not confirm within the deadline (it will apply the entry when it
    /// catches up; meanwhile `max-lag` bounds what it serves).
    Timeout,
    /// Confirmed with an error.
    Failed,
}

/// One node's line in a cluster purge's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeResult {
    pub node: String,
    pub tier: Tier,
    pub result: NodeOutcome,
    /// Stored responses the node removed or marked stale.
    pub entries: u64,
    /// From the append to this node's confirmation, in milliseconds.
    pub ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The answer to a cluster purge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The log entry's sequence number.
    pub seq: u64,
    pub purge: Purge,
    /// Shields first, then edges.
    pub nodes: Vec<NodeResult>,
    /// From the append to the last confirmation (or the deadline), ms.
    pub ms: f64,
}

impl Report {
    /// The nodes that did not confirm.
    pub fn unconfirmed(&self) -> Vec<&str> {
        self.nodes
            .iter()
            .filter(|n| n.result != NodeOutcome::Applied)
            .map(|n| n.node.as_str())
            .collect()
    }
}

/// One node's sync with the log, as `GET /v1/purges/status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub node: String,
    pub tier: Tier,
    /// The last entry it applied (0: none yet).
    pub applied: u64,
    /// Entries it has not applied yet.
    pub behind: u64,
    /// Milliseconds since it was last heard from (`None`: never).
    pub last_seen_ms: Option<u64>,
    /// Whether it is past `max-lag` (and so revalidating what it stored).
    pub lagging: bool,
}

/// The log's state and every node's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The last sequence number in the log.
    pub head: u64,
    pub nodes: Vec<NodeStatus>,
}

/// Errors talking to the log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("purge log {log}: {reason}")]
    Unreachable { log: String, reason: String },
    #[error("purge log refused: {0}")]
    Refused(String),
    #[error("{0}")]
    Other(String),
}

/// Follows the log at `config.log` until `shutdown`: catches up in order
/// from `sync.applied_seq()`, applies each entry through `applier`,
/// confirms it, and records every successful sync in `sync`.
pub async fn follow(
    config: FollowConfig,
    applier: std::sync::Arc<dyn Applier>,
    sync: std::sync::Arc<SyncState>,
    shutdown: meridian_common::Shutdown,
) {
    if config.log.starts_with("nats://") {
        nats_log::follow(config, applier, sync, shutdown).await
    } else {
        http_log::follow(config, applier, sync, shutdown).await
    }
}

/// Appends `purge` to the log at `log` and waits (at most `deadline`) for
/// every node in `nodes` to confirm it, shields before edges.
pub async fn publish(
    log: &str,
    token: Option<&str>,
    purge: &Purge,
    nodes: &[NodeRef],
    deadline: Duration,
) -> Result<Report, LogError> {
    if log.starts_with("nats://") {
        nats_log::publish(log, token, purge, nodes, deadline).await
    } else {
        http_log::publish(log, token, purge, nodes, deadline).await
    }
}

/// Every node's sync with the log at `log`.
pub async fn status(log: &str, token: Option<&str>, nodes: &[NodeRef]) -> Result<Status, LogError> {
    if log.starts_with("nats://") {
        nats_log::status(log, token, nodes).await
    } else {
        http_log::status(log, token, nodes).await
    }
}
