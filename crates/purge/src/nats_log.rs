//! The purge log in NATS JetStream, for clusters spread over several hosts
//! (`purge.log = "nats://host:4222"`; several servers separated by commas).
//!
//! # Shape
//!
//! - One stream, [`STREAM`], file storage, at most [`MAX_ENTRIES`] messages
//!   (the oldest are discarded), with two subjects: [`SHIELD_SUBJECT`] and
//!   [`EDGE_SUBJECT`]. A cluster purge is two messages with the same `id`:
//!   first on the shield subject (its stream sequence is the purge's `seq`),
//!   then, once every shield confirmed it or `max-lag` passed, on the edge
//!   subject. So no edge hears of a purge while a shield that has not
//!   applied it could still serve it without revalidation. Should the
//!   publisher die between the two, each shield appends the edge phase
//!   itself `max-lag` after the entry reached it, under the same message
//!   id, which the stream keeps once ([`DUPLICATE_WINDOW`]).
//! - Every node has a durable pull consumer named after it (see
//!   [`consumer_name`]), filtered to its tier's subject, explicit acks, at
//!   most one unacknowledged message (strict order). It acks an entry only
//!   after applying it, so after a restart, a reconnect or a partition the
//!   server replays exactly what the node has not applied, in order.
//! - Confirmations are core NATS messages on `meridian.purge.ack.<id>`;
//!   the publisher subscribes before it appends.
//! - Every follower publishes a heartbeat on `meridian.purge.status.<node>`
//!   each second; [`status`] combines those (lag, lagging) with the stream's
//!   head and each consumer's ack floor and pending count (applied,
//!   behind), which the server knows even for a node that is down.
//!
//! # The guarantee
//!
//! A follower records a sync in [`SyncState`] only from the server's own
//! word: a consumer info with nothing pending or unacknowledged, or a
//! delivered entry whose metadata says nothing more is pending. The instant
//! recorded is when the request that proved it was sent. An empty fetch
//! proves nothing (the client ends a fetch on its own timer too), so it is
//! never counted.
//!
//! # Client
//!
//! The official client, `async-nats`, without its default features: those
//! enable `server_2_10` and later, which make the client use consumer
//! creation requests and fields that nats-server 2.9 (what Debian ships)
//! rejects. Without them it speaks the 2.9 API, which later servers still
//! accept.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, stream};
use futures_util::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::{
    Applier, DEFAULT_MAX_LAG, FollowConfig, LogError, NodeOutcome, NodeRef, NodeResult, NodeStatus,
    Purge, Report, Status, SyncState, Tier,
};

#[path = "nats_follow.rs"]
mod follow;

/// The stream that holds the purge log.
pub const STREAM: &str = "MERIDIAN_PURGE";
/// Where purges are appended for shields.
pub const SHIELD_SUBJECT: &str = "meridian.purge.shield";
/// Where purges are appended for edges, once the shields have them.
pub const EDGE_SUBJECT: &str = "meridian.purge.edge";
/// Prefix of the confirmation subjects (`<prefix>.<id>`).
pub const ACK_PREFIX: &str = "meridian.purge.ack";
/// Prefix of the heartbeat subjects (`<prefix>.<node>`).
pub const STATUS_PREFIX: &str = "meridian.purge.status";
/// Most entries the stream keeps; older ones are discarded. A node away
/// for longer than that many purges purges everything when it returns.
pub const MAX_ENTRIES: i64 = 100_000;

/// How long the stream remembers message ids to drop duplicate appends.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one JetStream API request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// How often a follower publishes its heartbeat.
pub(crate) const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// How long [`status`] listens for heartbeats (more than one period).
const STATUS_LISTEN: Duration = Duration::from_millis(1500);
/// Largest confirmation or heartbeat read, in bytes.
const MAX_NOTE_LEN: usize = 4096;
/// Longest name kept as given in a consumer name or subject token.
const MAX_NAME_LEN: usize = 48;
/// Attempts at appending the edge phase (deduplicated by message id).
const EDGE_APPEND_TRIES: u32 = 3;

/// A log entry as stored in the stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WireEntry {
    /// Names the purge across both phases; the confirmation subject.
    pub id: String,
    /// When it was appended, ms since the Unix epoch.
    pub at_ms: u64,
    /// In the edge phase: the shield phase's stream sequence.
    #[serde(default)]
    pub shield_seq: u64,
    pub purge: Purge,
}

/// A node's confirmation of one entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WireAck {
    pub node: String,
    pub tier: Tier,
    pub entries: u64,
    #[serde(default)]
    pub error: Option<String>,
}

/// A follower's heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WireHeartbeat {
    pub node: String,
    pub tier: Tier,
    /// The last stream sequence applied.
    pub applied: u64,
    /// Ms since the node last proved itself caught up.
    pub lag_ms: u64,
    pub lagging: bool,
}

/// The durable consumer name (and subject token) for a node: its name with
/// anything outside `[A-Za-z0-9_-]` replaced, cut to a bounded length, and
/// when that changed it, followed by a hash of the name as given, so two
/// names never share a consumer.
pub fn consumer_name(node: &str) -> String {
    let clean: String = node
        .chars()
        .take(MAX_NAME_LEN)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean == node && !clean.is_empty() {
        return clean;
    }
    // FNV-1a: stable across builds and platforms, unlike `DefaultHasher`.
    let hash = node.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{clean}-{hash:016x}")
}

/// The stream subject a tier's entries are on.
pub(crate) fn tier_subject(tier: Tier) -> &'static str {
    match tier {
        Tier::Shield => SHIELD_SUBJECT,
        Tier::Edge => EDGE_SUBJECT,
    }
}

/// Whether `id` may stand in a subject (it comes from the network).
pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn unreachable(log: &str, reason: impl std::fmt::Display) -> LogError {
    LogError::Unreachable {
        log: log.to_string(),
        reason: reason.to_string(),
    }
}

/// Connection options shared by followers and one-shot callers.
pub(crate) fn options(token: Option<&str>, name: &str) -> async_nats::ConnectOptions {
    let options = match token {
        Some(token) => async_nats::ConnectOptions::with_token(token.to_string()),
        None => async_nats::ConnectOptions::new(),
    };
    options
        .name(format!("meridian {name}"))
        .connection_timeout(CONNECT_TIMEOUT)
        .request_timeout(Some(REQUEST_TIMEOUT))
}

/// Connects for one call (publish, status): fails at once when the server
/// cannot be reached.
async fn connect(
    log: &str,
    token: Option<&str>,
    name: &str,
) -> Result<async_nats::Client, LogError> {
    options(token, name)
        .max_reconnects(Some(3))
        .connect(log)
        .await
        .map_err(|e| unreachable(log, e))
}

pub(crate) fn context(client: async_nats::Client) -> jetstream::Context {
    let mut js = jetstream::new(client);
    js.set_timeout(REQUEST_TIMEOUT);
    js
}

/// The log's stream, created when missing (idempotent: an existing stream
/// is used as it is).
pub(crate) async fn ensure_stream(
    js: &jetstream::Context,
) -> Result<stream::Stream, async_nats::Error> {
    let config = stream::Config {
        name: STREAM.to_string(),
        description: Some("Meridian cluster purge log".to_string()),
        subjects: vec![SHIELD_SUBJECT.to_string(), EDGE_SUBJECT.to_string()],
        storage: stream::StorageType::File,
        max_messages: MAX_ENTRIES,
        discard: stream::DiscardPolicy::Old,
        // Appends under one message id within this window are kept once:
        // retried edge phases, and the shields' backstops for them.
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    };
    Ok(js.get_or_create_stream(config).await?)
}

/// Follows the log (see [`crate::follow`]).
pub async fn follow(
    config: FollowConfig,
    applier: Arc<dyn Applier>,
    sync: Arc<SyncState>,
    shutdown: meridian_common::Shutdown,
) {
    follow::run(config, applier, sync, shutdown).await
}

/// Appends a purge and collects confirmations (see [`crate::publish`]),
/// holding the edge phase back for at most [`DEFAULT_MAX_LAG`].
pub async fn publish(
    log: &str,
    token: Option<&str>,
    purge: &Purge,
    nodes: &[NodeRef],
    deadline: Duration,
) -> Result<Report, LogError> {
    publish_with_max_lag(log, token, purge, nodes, deadline, DEFAULT_MAX_LAG).await
}

/// [`publish`] for a cluster whose `purge.max-lag` is `max_lag`: the edge
/// phase is appended once every shield confirmed or `max_lag` passed since
/// the append (by then a shield that has not applied the purge is lagging
/// and revalidates what it stored before). That wait is not cut short by
/// `deadline`; edges are waited for until `deadline` from the start.
pub async fn publish_with_max_lag(
    log: &str,
    token: Option<&str>,
    purge: &Purge,
    nodes: &[NodeRef],
    deadline: Duration,
    max_lag: Duration,
) -> Result<Report, LogError> {
    purge.validate().map_err(LogError::Refused)?;
    let client = connect(log, token, "purge").await?;
    let js = context(client.clone());
    ensure_stream(&js).await.map_err(|e| unreachable(log, e))?;

    // The id names the confirmations: subscribe before the append, and make
    // sure the server has the subscription before any node can answer.
    let inbox = client.new_inbox();
    let id = inbox.rsplit('.').next().unwrap_or_default().to_string();
    let mut acks = client
        .subscribe(format!("{ACK_PREFIX}.{id}"))
        .await
        .map_err(|e| unreachable(log, e))?;
    client.flush().await.map_err(|e| unreachable(log, e))?;

    let mut entry = WireEntry {
        id: id.clone(),
        at_ms: now_ms(),
        shield_seq: 0,
        purge: purge.clone(),
    };
    let start = Instant::now();
    let seq = append(&js, SHIELD_SUBJECT, &entry, &format!("{id}.shield"))
        .await
        .map_err(|e| append_error(log, e))?;

    let mut confirmed: HashMap<&str, (Duration, WireAck)> = HashMap::new();
    let shields: Vec<&NodeRef> = nodes.iter().filter(|n| n.tier == Tier::Shield).collect();
    collect(
        &mut acks,
        nodes,
        &shields,
        &mut confirmed,
        start,
        start + max_lag,
    )
    .await;

    entry.shield_seq = seq;
    let mut tries = 0;
    loop {
        tries += 1;
        match append(&js, EDGE_SUBJECT, &entry, &format!("{id}.edge")).await {
            Ok(_) => break,
            Err(e) if tries >= EDGE_APPEND_TRIES => {
                return Err(LogError::Other(format!(
                    "purge log {log}: appended as {seq} for shields, but the edge phase could \
                     not be appended ({e}); issue the purge again"
                )));
            }
            Err(e) => tracing::warn!(error = %e, "appending the edge phase; retrying"),
        }
    }
    collect(
        &mut acks,
        nodes,
        &nodes.iter().collect::<Vec<_>>(),
        &mut confirmed,
        start,
        start + deadline,
    )
    .await;

    let (nodes, ms) = results(nodes, &confirmed, start);
    Ok(Report {
        seq,
        purge: purge.clone(),
        nodes,
        ms,
    })
}

/// Each node's line, shields first, and the time to the last confirmation
/// (or until now, when some node did not confirm).
fn results(
    nodes: &[NodeRef],
    confirmed: &HashMap<&str, (Duration, WireAck)>,
    start: Instant,
) -> (Vec<NodeResult>, f64) {
    let mut results = Vec::with_capacity(nodes.len());
    let ordered = nodes
        .iter()
        .filter(|n| n.tier == Tier::Shield)
        .chain(nodes.iter().filter(|n| n.tier == Tier::Edge));
    let mut last = Duration::ZERO;
    for node in ordered {
        results.push(match confirmed.get(node.name.as_str()) {
            Some((at, ack)) => {
                last = last.max(*at);
                NodeResult {
                    node: node.name.clone(),
                    tier: node.tier,
                    result: if ack.error.is_some() {
                        NodeOutcome::Failed
                    } else {
                        NodeOutcome::Applied
                    },
                    entries: ack.entries,
                    ms: millis(*at),
                    error: ack.error.clone(),
                }
            }
            None => NodeResult {
                node: node.name.clone(),
                tier: node.tier,
                result: NodeOutcome::Timeout,
                entries: 0,
                ms: millis(start.elapsed()),
                error: None,
            },
        });
    }
    let all_confirmed = results.iter().all(|r| r.result != NodeOutcome::Timeout);
    let ms = if all_confirmed {
        millis(last)
    } else {
        millis(start.elapsed())
    };
    (results, ms)
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Appends one entry and waits for the server's acknowledgement (the
/// durable append); `msg_id` makes a retry a no-op.
async fn append(
    js: &jetstream::Context,
    subject: &'static str,
    entry: &WireEntry,
    msg_id: &str,
) -> Result<u64, async_nats::Error> {
    let payload = serde_json::to_vec(entry)?;
    let message = jetstream::message::PublishMessage::build()
        .payload(payload.into())
        .message_id(msg_id);
    let ack = js.send_publish(subject, message).await?.await?;
    Ok(ack.sequence)
}

fn append_error(log: &str, e: async_nats::Error) -> LogError {
    let reason = e.to_string();
    if reason.contains("maximum payload") || reason.contains("max payload") {
        LogError::Refused(format!(
            "the purge is larger than the NATS server accepts: {reason}"
        ))
    } else {
        unreachable(log, reason)
    }
}

/// Reads confirmations until every node in `wanted` confirmed or `until`.
async fn collect<'n>(
    acks: &mut async_nats::Subscriber,
    nodes: &'n [NodeRef],
    wanted: &[&NodeRef],
    confirmed: &mut HashMap<&'n str, (Duration, WireAck)>,
    start: Instant,
    until: Instant,
) {
    let until = tokio::time::Instant::from_std(until);
    while !wanted
        .iter()
        .all(|n| confirmed.contains_key(n.name.as_str()))
    {
        let Ok(Some(message)) = tokio::time::timeout_at(until, acks.next()).await else {
            return;
        };
        if message.payload.len() > MAX_NOTE_LEN {
            continue;
        }
        let Ok(ack) = serde_json::from_slice::<WireAck>(&message.payload) else {
            continue;
        };
        // Only the nodes asked about count, each once, at its first answer.
        if let Some(node) = nodes.iter().find(|n| n.name == ack.node) {
            confirmed
                .entry(node.name.as_str())
                .or_insert((start.elapsed(), ack));
        }
    }
}

/// Every node's sync (see [`crate::status`]): applied and behind from the
/// server (each node's consumer), lag from the nodes' heartbeats; a node
/// not heard from within 1.5 s counts as lagging.
pub async fn status(log: &str, token: Option<&str>, nodes: &[NodeRef]) -> Result<Status, LogError> {
    let client = connect(log, token, "status").await?;
    let mut beats = client
        .subscribe(format!("{STATUS_PREFIX}.*"))
        .await
        .map_err(|e| unreachable(log, e))?;
    client.flush().await.map_err(|e| unreachable(log, e))?;
    let listening = Instant::now();

    let js = context(client.clone());
    let mut stream = ensure_stream(&js).await.map_err(|e| unreachable(log, e))?;
    let head = stream
        .info()
        .await
        .map_err(|e| unreachable(log, e))?
        .state
        .last_sequence;
    let mut per_subject: HashMap<String, u64> = HashMap::new();
    let mut subjects = stream
        .info_with_subjects("meridian.purge.*")
        .await
        .map_err(|e| unreachable(log, e))?;
    while let Some((subject, count)) = subjects.try_next().await.map_err(|e| unreachable(log, e))? {
        per_subject.insert(subject, u64::try_from(count).unwrap_or(u64::MAX));
    }

    let mut server_side = Vec::with_capacity(nodes.len());
    for node in nodes {
        let (applied, behind) = match stream.consumer_info(consumer_name(&node.name)).await {
            Ok(info) => (
                info.ack_floor.stream_sequence,
                info.num_pending
                    .saturating_add(u64::try_from(info.num_ack_pending).unwrap_or(u64::MAX)),
            ),
            Err(e) if e.kind() == jetstream::context::ConsumerInfoErrorKind::NotFound => (
                0,
                per_subject
                    .get(tier_subject(node.tier))
                    .copied()
                    .unwrap_or(0),
            ),
            Err(e) => return Err(unreachable(log, e)),
        };
        server_side.push((applied, behind));
    }

    let mut heard: HashMap<String, (Instant, WireHeartbeat)> = HashMap::new();
    let until = tokio::time::Instant::from_std(listening + STATUS_LISTEN);
    while let Ok(Some(message)) = tokio::time::timeout_at(until, beats.next()).await {
        if message.payload.len() > MAX_NOTE_LEN {
            continue;
        }
        let Ok(beat) = serde_json::from_slice::<WireHeartbeat>(&message.payload) else {
            continue;
        };
        if nodes.iter().any(|n| n.name == beat.node) {
            heard.insert(beat.node.clone(), (Instant::now(), beat));
        }
    }

    let nodes = nodes
        .iter()
        .zip(server_side)
        .map(|(node, (applied, behind))| {
            let beat = heard.get(&node.name);
            NodeStatus {
                node: node.name.clone(),
                tier: node.tier,
                applied,
                behind,
                last_seen_ms: beat.map(|(at, b)| {
                    b.lag_ms
                        .saturating_add(u64::try_from(at.elapsed().as_millis()).unwrap_or(u64::MAX))
                }),
                lagging: beat.is_none_or(|(_, b)| b.lagging),
            }
        })
        .collect();
    Ok(Status { head, nodes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_names_follow_nats_rules_and_stay_distinct() {
        assert_eq!(consumer_name("edge-1"), "edge-1");
        let dotted = consumer_name("edge.1");
        let under = consumer_name("edge_1");
        assert_ne!(dotted, under);
        for name in [
            &dotted,
            &consumer_name("a b*>/\\"),
            &consumer_name(""),
            &consumer_name(&"x".repeat(300)),
        ] {
            assert!(name.len() <= MAX_NAME_LEN + 17, "{name}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
                "{name}"
            );
            assert!(!name.is_empty());
        }
    }

    #[test]
    fn ids_from_the_network_are_checked_before_use_in_a_subject() {
        assert!(valid_id("AbC123_-"));
        for bad in ["", "a.b", "a*", "a>", "a b", &"x".repeat(65)] {
            assert!(!valid_id(bad), "{bad}");
        }
    }
}
