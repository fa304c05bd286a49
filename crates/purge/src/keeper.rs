//! The keeper of the embedded purge log: the sequenced, durable log in the
//! director process, what each node has applied, and the release rule that
//! puts shields before edges. The HTTP routes over it are in
//! [`crate::keeper_http`]; the wire shapes in [`crate::http_log`].
//!
//! Release: an entry goes to shields as soon as it is appended, and to
//! edges once every configured shield has confirmed it, or `max-lag` after
//! the append, whichever is first. By then a shield that has not applied it
//! has not heard from the log for `max-lag`, so it revalidates everything it
//! stored before the purge: an edge that refills from it cannot get the
//! purged copy back.
//!
//! A node is at the log's head when it has applied every entry, released to
//! it or not; so an edge waiting for a slow shield counts as not synced, and
//! its own `max-lag` keeps running (conservative: it revalidates rather than
//! trusting a copy that a shield may still hold).

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use meridian_common::auth::Tokens;
use tokio::sync::watch;

use crate::http_log::{Ack, PollAnswer};
use crate::keeper_store::{Store, StoreError};
use crate::{LogEntry, NodeOutcome, NodeRef, NodeResult, NodeStatus, Purge, Report, Status, Tier};

/// Default `confirm-timeout`: how long `POST /v1/purge` waits for nodes.
pub const DEFAULT_CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);
/// Default `retain`: entries kept for nodes that catch up.
pub const DEFAULT_RETAIN: usize = 100_000;
/// Default `retain-bytes`: the retained entries' size, serialized.
pub const DEFAULT_RETAIN_BYTES: u64 = 64 << 20;
/// Default `poll-wait`: the longest a follower's long poll is held.
pub const DEFAULT_POLL_WAIT: Duration = Duration::from_secs(2);
/// Default `max-batch`: entries in one answer to a follower.
pub const DEFAULT_MAX_BATCH: usize = 1000;
/// An answer stops growing past this many bytes (it holds at least one entry).
pub const BATCH_BYTES: usize = 1 << 20;
/// Longest a publisher may ask to wait for confirmations.
pub const MAX_CONFIRM_TIMEOUT: Duration = Duration::from_secs(120);
/// Purges waiting for confirmations at once; more are refused (503).
pub const MAX_PENDING: usize = 256;
/// Nodes followed without being configured that are tracked.
pub const MAX_UNCONFIGURED: usize = 1024;
/// Longest node `max-lag` the release to edges waits out.
pub const MAX_NODE_LAG: Duration = Duration::from_secs(3600);
/// Longest node name accepted.
pub const MAX_NODE_NAME: usize = 128;

/// The keeper's settings (the director's `[purge-log]` table).
#[derive(Debug, Clone)]
pub struct KeeperConfig {
    pub state_dir: PathBuf,
    /// The cluster's `max-lag`: edges get an entry at the latest this long
    /// after its append.
    pub max_lag: Duration,
    pub confirm_timeout: Duration,
    pub retain: usize,
    pub retain_bytes: u64,
    pub poll_wait: Duration,
    pub max_batch: usize,
    /// The nodes a purge must reach, from the cluster file.
    pub nodes: Vec<NodeRef>,
    /// Tokens for the routes (`purge`, `follow`, `read`).
    pub tokens: Arc<Tokens>,
}

impl KeeperConfig {
    /// Settings with the defaults, for `nodes`, keeping state in `state_dir`.
    pub fn new(state_dir: PathBuf, nodes: Vec<NodeRef>, tokens: Arc<Tokens>) -> Self {
        KeeperConfig {
            state_dir,
            max_lag: crate::DEFAULT_MAX_LAG,
            confirm_timeout: DEFAULT_CONFIRM_TIMEOUT,
            retain: DEFAULT_RETAIN,
            retain_bytes: DEFAULT_RETAIN_BYTES,
            poll_wait: DEFAULT_POLL_WAIT,
            max_batch: DEFAULT_MAX_BATCH,
            nodes,
            tokens,
        }
    }
}

/// Why a keeper operation failed; [`crate::keeper_http`] maps it to HTTP.
#[derive(Debug, thiserror::Error)]
pub enum KeeperError {
    #[error("{0}")]
    BadRequest(String),
    #[error("too many purges are waiting for confirmations; retry shortly")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

/// What the keeper knows of one node.
#[derive(Debug)]
struct Track {
    tier: Tier,
    configured: bool,
    applied: u64,
    last_seen: Option<Instant>,
    /// When an answer last showed it at the head.
    synced: Option<Instant>,
    /// Its own `max-lag`, as its last poll said.
    max_lag: Option<Duration>,
}

/// A purge waiting for confirmations.
struct Pending {
    appended: Instant,
    results: HashMap<String, NodeResult>,
}

struct State {
    log_id: String,
    /// The retained window, with each entry's serialized size.
    entries: VecDeque<(LogEntry, usize)>,
    bytes: u64,
    head: u64,
    nodes: HashMap<String, Track>,
    pending: HashMap<u64, Pending>,
}

impl State {
    /// The first retained sequence number (`head + 1` when none is).
    fn first(&self) -> u64 {
        self.entries.front().map_or(self.head + 1, |(e, _)| e.seq)
    }

    /// The last entry edges may have at wall-clock `now_ms`, and when the
    /// next one is released by time (`None`: nothing waits).
    fn edge_release(&self, max_lag: Duration, now_ms: u64) -> (u64, Option<Duration>) {
        let shields = self
            .nodes
            .values()
            .filter(|t| t.configured && t.tier == Tier::Shield)
            .map(|t| t.applied)
            .min()
            .unwrap_or(self.head);
        let lag_ms = u64::try_from(max_lag.as_millis()).unwrap_or(u64::MAX);
        let due = |e: &LogEntry| e.at_ms.saturating_add(lag_ms) <= now_ms;
        let idx = self.entries.partition_point(|(e, _)| due(e));
        let by_time = match idx {
            0 => self.first() - 1,
            i => self.entries[i - 1].0.seq,
        };
        let released = shields.max(by_time).min(self.head);
        let next = self
            .entries
            .iter()
            .find(|(e, _)| e.seq > released)
            .map(|(e, _)| {
                let due_at = e.at_ms.saturating_add(lag_ms);
                Duration::from_millis(due_at.saturating_sub(now_ms))
            });
        (released, next)
    }

    /// What `tier` may have; edges wait out the longest `max-lag` of the
    /// configured (`max_lag`) and of any shield's own (as its polls say),
    /// so a shield with a longer one has started revalidating by then.
    fn released(&self, tier: Tier, max_lag: Duration) -> (u64, Option<Duration>) {
        match tier {
            Tier::Shield => (self.head, None),
            Tier::Edge => {
                let shields = self
                    .nodes
                    .values()
                    .filter(|t| t.tier == Tier::Shield)
                    .filter_map(|t| t.max_lag);
                let lag = shields.fold(max_lag, Duration::max).min(MAX_NODE_LAG);
                self.edge_release(lag, now_ms())
            }
        }
    }

    /// Records that `node` has applied everything up to `seq`.
    fn record_applied(&mut self, node: &str, seq: u64, ack: Option<&Ack>) {
        let Some(track) = self.nodes.get_mut(node) else {
            return;
        };
        track.applied = track.applied.max(seq.min(self.head));
        let tier = track.tier;
        for (&k, p) in self.pending.iter_mut() {
            if k > seq || p.results.contains_key(node) {
                continue;
            }
            let (entries, error) = match ack {
                Some(a) if a.from <= k => (a.entries, a.error.clone()),
                _ => (0, None),
            };
            p.results.insert(
                node.to_owned(),
                NodeResult {
                    node: node.to_owned(),
                    tier,
                    result: if error.is_some() {
                        NodeOutcome::Failed
                    } else {
                        NodeOutcome::Applied
                    },
                    entries,
                    ms: p.appended.elapsed().as_secs_f64() * 1000.0,
                    error,
                },
            );
        }
    }

    /// Finds or (within limits) adds the node; `None` if it cannot be tracked.
    fn touch(&mut self, node: &str, tier: Tier) -> Option<&mut Track> {
        if !self.nodes.contains_key(node) {
            let unconfigured = self.nodes.values().filter(|t| !t.configured).count();
            if unconfigured >= MAX_UNCONFIGURED {
                return None;
            }
            tracing::info!(
                node,
                tier = tier.as_str(),
                "a node not in the cluster file follows the purge log"
            );
            self.nodes.insert(
                node.to_owned(),
                Track {
                    tier,
                    configured: false,
                    applied: 0,
                    last_seen: None,
                    synced: None,
                    max_lag: None,
                },
            );
        }
        let t = self.nodes.get_mut(node)?;
        if t.tier != tier {
            tracing::warn!(
                node,
                "two nodes of different tiers use this name; names must be unique"
            );
        }
        t.last_seen = Some(Instant::now());
        Some(t)
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

struct Inner {
    config: KeeperConfig,
    state: Mutex<State>,
    store: Arc<Mutex<Store>>,
    /// Bumped when the log grows or what edges may have changes (a
    /// shield confirmed): wakes held polls.
    log_changed: watch::Sender<u64>,
    /// Bumped on every confirmation: wakes publishers.
    acked: watch::Sender<u64>,
}

/// The purge log keeper; cheap to clone.
#[derive(Clone)]
pub struct Keeper {
    inner: Arc<Inner>,
}

/// A follower's poll, validated.
#[derive(Debug, Clone)]
pub struct Poll {
    pub node: String,
    pub tier: Tier,
    pub after: u64,
    pub log_id: Option<String>,
    pub wait: Duration,
    /// The node's own `max-lag`, if it says.
    pub max_lag: Option<Duration>,
}

impl Keeper {
    /// Opens the state directory (reading the log back) and starts keeping.
    pub fn open(config: KeeperConfig) -> Result<Keeper, KeeperError> {
        let (store, loaded) = Store::open(&config.state_dir)?;
        let head = loaded.entries.back().map_or(0, |e| e.seq);
        let mut entries = VecDeque::with_capacity(loaded.entries.len());
        let mut bytes = 0u64;
        for e in loaded.entries {
            let size = serde_json::to_vec(&e).map_or(0, |v| v.len());
            bytes += size as u64;
            entries.push_back((e, size));
        }
        let nodes = config
            .nodes
            .iter()
            .map(|n| {
                (
                    n.name.clone(),
                    Track {
                        tier: n.tier,
                        configured: true,
                        applied: 0,
                        last_seen: None,
                        synced: None,
                        max_lag: None,
                    },
                )
            })
            .collect();
        tracing::info!(
            dir = %config.state_dir.display(),
            head,
            log_id = %loaded.log_id,
            "purge log opened"
        );
        let mut state = State {
            log_id: loaded.log_id,
            entries,
            bytes,
            head,
            nodes,
            pending: HashMap::new(),
        };
        trim(&mut state, &config);
        Ok(Keeper {
            inner: Arc::new(Inner {
                config,
                state: Mutex::new(state),
                store: Arc::new(Mutex::new(store)),
                log_changed: watch::channel(0).0,
                acked: watch::channel(0).0,
            }),
        })
    }

    pub fn config(&self) -> &KeeperConfig {
        &self.inner.config
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half
        // updated in a way that matters more than stopping would.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn bump(tx: &watch::Sender<u64>) {
        tx.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// The log's id and head.
    pub fn head(&self) -> (String, u64) {
        let s = self.state();
        (s.log_id.clone(), s.head)
    }

    /// Appends `purge` durably; returns its entry. `wait_for` registers
    /// the entry for confirmations first, so no ack is missed.
    async fn append(&self, purge: Purge, wait_for: bool) -> Result<LogEntry, KeeperError> {
        let keeper = self.clone();
        let entry = tokio::task::spawn_blocking(move || keeper.append_blocking(purge, wait_for))
            .await
            .map_err(|e| KeeperError::Internal(e.to_string()))??;
        Self::bump(&self.inner.log_changed);
        Ok(entry)
    }

    fn append_blocking(&self, purge: Purge, wait_for: bool) -> Result<LogEntry, KeeperError> {
        // The store lock serialises appends, so sequence numbers follow
        // file order.
        let mut store = self
            .inner
            .store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let seq = self.state().head + 1;
        let entry = LogEntry {
            seq,
            at_ms: now_ms(),
            purge,
        };
        store.append(&entry)?;
        let size = serde_json::to_vec(&entry).map_or(0, |v| v.len());
        let compact = {
            let mut s = self.state();
            s.head = seq;
            s.bytes += size as u64;
            s.entries.push_back((entry.clone(), size));
            if wait_for {
                // A publisher dropped while its append was being written
                // never made its guard; its record goes here.
                let stale = MAX_CONFIRM_TIMEOUT + Duration::from_secs(10);
                s.pending.retain(|_, p| p.appended.elapsed() < stale);
                s.pending.insert(
                    seq,
                    Pending {
                        appended: Instant::now(),
                        results: HashMap::new(),
                    },
                );
            }
            trim(&mut s, &self.inner.config);
            store.wants_compaction(s.entries.len())
        };
        if compact {
            // The entry is durable already; a failed compaction only
            // leaves the file longer, to be tried again on a later append.
            let keep: Vec<LogEntry> = self
                .state()
                .entries
                .iter()
                .map(|(e, _)| e.clone())
                .collect();
            if let Err(e) = store.compact(keep.iter()) {
                tracing::warn!("cannot compact the purge log: {e}");
            }
        }
        Ok(entry)
    }

    /// Appends `purge`, waits (at most `timeout`, capped by
    /// [`MAX_CONFIRM_TIMEOUT`]; default `confirm-timeout`) until every
    /// configured node confirmed it, and reports.
    pub async fn publish(
        &self,
        purge: Purge,
        timeout: Option<Duration>,
    ) -> Result<Report, KeeperError> {
        purge.validate().map_err(KeeperError::BadRequest)?;
        if self.state().pending.len() >= MAX_PENDING {
            return Err(KeeperError::Busy);
        }
        let timeout = timeout
            .unwrap_or(self.inner.config.confirm_timeout)
            .min(MAX_CONFIRM_TIMEOUT);
        let mut rx = self.inner.acked.subscribe();
        let entry = self.append(purge, true).await?;
        // Dropped with the request (a client that hangs up) or at the end.
        let _guard = PendingGuard {
            keeper: self.clone(),
            seq: entry.seq,
        };
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            rx.mark_unchanged();
            if self.all_confirmed(entry.seq) {
                break;
            }
            tokio::select! {
                _ = rx.changed() => {}
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        Ok(self.report(entry, started))
    }

    fn all_confirmed(&self, seq: u64) -> bool {
        let s = self.state();
        let Some(p) = s.pending.get(&seq) else {
            return true;
        };
        self.inner
            .config
            .nodes
            .iter()
            .all(|n| p.results.contains_key(&n.name))
    }

    fn report(&self, entry: LogEntry, started: Instant) -> Report {
        let s = self.state();
        let results = s.pending.get(&entry.seq).map(|p| &p.results);
        let mut nodes: Vec<NodeResult> = self
            .inner
            .config
            .nodes
            .iter()
            .map(|n| {
                results
                    .and_then(|r| r.get(&n.name))
                    .cloned()
                    .unwrap_or_else(|| NodeResult {
                        node: n.name.clone(),
                        tier: n.tier,
                        result: NodeOutcome::Timeout,
                        entries: 0,
                        ms: started.elapsed().as_secs_f64() * 1000.0,
                        error: Some("did not confirm before the deadline".into()),
                    })
            })
            .collect();
        nodes.sort_by_key(|n| n.tier);
        let ms = nodes.iter().map(|n| n.ms).fold(0.0, f64::max);
        Report {
            seq: entry.seq,
            purge: entry.purge,
            nodes,
            ms,
        }
    }

    /// Answers a follower: at once when entries after `poll.after` are
    /// released to its tier (or it must reset), else when one is, or empty
    /// after `poll.wait` (capped by `poll-wait`).
    pub async fn poll(&self, mut poll: Poll) -> Result<PollAnswer, KeeperError> {
        let wait = poll.wait.min(self.inner.config.poll_wait);
        let deadline = tokio::time::Instant::now() + wait;
        let mut rx = self.inner.log_changed.subscribe();
        loop {
            rx.mark_unchanged();
            let (answer, next) = self.try_answer(&poll)?;
            let now = tokio::time::Instant::now();
            if answer.reset_to.is_some() || !answer.entries.is_empty() || now >= deadline {
                return Ok(answer);
            }
            // Held without a reset: from here on the node follows this log,
            // so what is appended while it waits is news to it, not a
            // reason to purge everything (a new node's first poll).
            poll.log_id = Some(answer.log_id);
            let until = next.map_or(deadline, |d| (now + d).min(deadline));
            tokio::select! {
                _ = rx.changed() => {}
                _ = tokio::time::sleep_until(until) => {}
            }
        }
    }

    /// One look at the state for `poll`: the answer, and when a time
    /// release may change it.
    fn try_answer(&self, poll: &Poll) -> Result<(PollAnswer, Option<Duration>), KeeperError> {
        let max_lag = self.inner.config.max_lag;
        let mut s = self.state();
        let (released, next) = s.released(poll.tier, max_lag);
        let (head, first) = (s.head, s.first());
        let same_log = poll.log_id.as_deref() == Some(s.log_id.as_str());
        let fresh = poll.log_id.as_deref().is_none_or(str::is_empty) && poll.after == 0;
        let reset = if same_log {
            poll.after > head || (poll.after < released && poll.after + 1 < first)
        } else {
            // A node that never followed this log: its store may hold
            // anything older, so it purges everything once.
            !(fresh && released == 0)
        };
        let log_id = s.log_id.clone();
        let Some(track) = s.touch(&poll.node, poll.tier) else {
            return Err(KeeperError::BadRequest(format!(
                "more than {MAX_UNCONFIGURED} nodes outside the cluster file follow this log"
            )));
        };
        if poll.max_lag.is_some() {
            track.max_lag = poll.max_lag;
        }
        if reset {
            return Ok((
                PollAnswer {
                    log_id,
                    head,
                    reset_to: Some(released),
                    entries: Vec::new(),
                },
                None,
            ));
        }
        if same_log && poll.after > 0 {
            s.record_applied(&poll.node, poll.after, None);
        }
        let mut entries = Vec::new();
        let mut bytes = 0usize;
        if poll.after < released {
            let start = usize::try_from(poll.after + 1 - first).unwrap_or(usize::MAX);
            for (e, size) in s.entries.iter().skip(start) {
                if e.seq > released
                    || entries.len() >= self.inner.config.max_batch
                    || (bytes > 0 && bytes + size > BATCH_BYTES)
                {
                    break;
                }
                bytes += size;
                entries.push(e.clone());
            }
        }
        let reaches = entries.last().map_or(poll.after, |e| e.seq);
        if reaches >= head
            && let Some(t) = s.nodes.get_mut(&poll.node)
        {
            t.synced = Some(Instant::now());
        }
        Ok((
            PollAnswer {
                log_id,
                head,
                reset_to: None,
                entries,
            },
            next,
        ))
    }

    /// Records a follower's confirmation.
    pub fn ack(&self, ack: &Ack) -> Result<(), KeeperError> {
        {
            let mut s = self.state();
            if ack.log_id.as_deref().is_some_and(|id| id != s.log_id) {
                // From before this log was reset: not about our entries.
                return Ok(());
            }
            if ack.seq > s.head {
                return Err(KeeperError::BadRequest(format!(
                    "seq {} is past the log's head {}",
                    ack.seq, s.head
                )));
            }
            if s.touch(&ack.node, ack.tier).is_none() {
                return Ok(());
            }
            if let Some(e) = &ack.error {
                tracing::warn!(node = %ack.node, seq = ack.seq, "a node could not apply a purge: {e}");
            }
            s.record_applied(&ack.node, ack.seq, Some(ack));
        }
        Self::bump(&self.inner.acked);
        if ack.tier == Tier::Shield {
            Self::bump(&self.inner.log_changed);
        }
        Ok(())
    }

    /// Every configured node, then any other that followed.
    pub fn status(&self) -> Status {
        let s = self.state();
        let max_lag = self.inner.config.max_lag;
        let line = |name: &str, t: &Track| NodeStatus {
            node: name.to_owned(),
            tier: t.tier,
            applied: t.applied,
            behind: s.head.saturating_sub(t.applied),
            last_seen_ms: t
                .last_seen
                .map(|i| u64::try_from(i.elapsed().as_millis()).unwrap_or(u64::MAX)),
            lagging: t.synced.is_none_or(|i| i.elapsed() > max_lag),
        };
        let mut nodes: Vec<NodeStatus> = self
            .inner
            .config
            .nodes
            .iter()
            .filter_map(|n| s.nodes.get(&n.name).map(|t| line(&n.name, t)))
            .collect();
        nodes.sort_by_key(|n| n.tier);
        let mut others: Vec<NodeStatus> = s
            .nodes
            .iter()
            .filter(|(_, t)| !t.configured)
            .map(|(name, t)| line(name, t))
            .collect();
        others.sort_by(|a, b| (a.tier, &a.node).cmp(&(b.tier, &b.node)));
        nodes.extend(others);
        Status {
            head: s.head,
            nodes,
        }
    }
}

/// Drops the entries past `retain` or `retain-bytes` (the newest is kept).
fn trim(s: &mut State, config: &KeeperConfig) {
    while s.entries.len() > 1
        && (s.entries.len() > config.retain.max(1) || s.bytes > config.retain_bytes)
    {
        if let Some((_, size)) = s.entries.pop_front() {
            s.bytes = s.bytes.saturating_sub(size as u64);
        }
    }
}

struct PendingGuard {
    keeper: Keeper,
    seq: u64,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.keeper.state().pending.remove(&self.seq);
    }
}

#[cfg(test)]
#[path = "keeper_tests.rs"]
mod tests;
