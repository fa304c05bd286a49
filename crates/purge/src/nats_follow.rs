//! One node following the NATS purge log (see the parent module).
//!
//! One client for the node's lifetime (it reconnects by itself, forever);
//! on top of it a loop of sessions: find the stream and the node's durable
//! consumer, then pull, apply, ack, confirm. Any error ends the session and
//! the next one starts after a bounded backoff; the durable consumer makes
//! the server replay, in order, whatever was not acked.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::context::ConsumerInfoErrorKind;
use async_nats::jetstream::{self, stream};
use futures_util::StreamExt;

use super::{
    ACK_PREFIX, EDGE_SUBJECT, HEARTBEAT_EVERY, STATUS_PREFIX, WireAck, WireEntry, WireHeartbeat,
    consumer_name, context, ensure_stream, options, tier_subject, valid_id,
};
use crate::{Applied, Applier, FollowConfig, Purge, SyncState, Tier};

/// Entries pulled per request (the server still hands them over one at a
/// time: at most one unacknowledged).
const BATCH: usize = 64;
/// How long the server keeps a redelivery back for an entry delivered but
/// not acknowledged (the node died or lost it in flight).
const ACK_WAIT: Duration = Duration::from_secs(5);
/// Backoff between failed sessions.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Longest wait for a reconnect attempt.
const RECONNECT_MAX: Duration = Duration::from_secs(1);
/// How often the client pings the server (finds a dead connection).
const PING_EVERY: Duration = Duration::from_secs(5);
/// Longest a confirmation or heartbeat may wait to be sent.
const SEND_TIMEOUT: Duration = Duration::from_secs(1);
/// A shield's edge-phase backstop waits this much past `max-lag`, so a
/// live publisher normally appends first.
const BACKSTOP_MARGIN: Duration = Duration::from_millis(500);
/// Most backstops one shield keeps waiting (one per purge in the last
/// `max-lag`).
const MAX_BACKSTOPS: usize = 10_000;

pub(super) async fn run(
    config: FollowConfig,
    applier: Arc<dyn Applier>,
    sync: Arc<SyncState>,
    shutdown: meridian_common::Shutdown,
) {
    let connecting = options(config.token.as_deref(), &config.node)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .ping_interval(PING_EVERY)
        .reconnect_delay_callback(|attempts| {
            let exp = u32::try_from(attempts.min(16)).unwrap_or(16);
            (Duration::from_millis(50) * 2_u32.pow(exp)).min(RECONNECT_MAX)
        })
        .connect(config.log.as_str());
    let client = match connecting.await {
        Ok(client) => client,
        Err(e) => {
            // Only an address that cannot be used gets here; the node
            // stays lagging (it never syncs), so it revalidates.
            tracing::error!(log = %config.log, node = %config.node, error = %e,
                "cannot follow the purge log");
            shutdown.wait().await;
            return;
        }
    };
    let mut follower = Follower {
        name: consumer_name(&config.node),
        js: context(client.clone()),
        client: client.clone(),
        config: config.clone(),
        applier,
        sync: Arc::clone(&sync),
        had_consumer: false,
        progressed: false,
        backstops: tokio::task::JoinSet::new(),
        live_after: u64::MAX,
    };
    tracing::info!(log = %config.log, node = %config.node, consumer = %follower.name,
        "following the purge log in NATS JetStream");
    // One task: aborting it stops the heartbeats too.
    tokio::select! {
        () = follower.sessions() => {}
        () = heartbeats(&client, &config, &sync) => {}
        () = shutdown.wait() => {}
    }
}

struct Follower {
    name: String,
    client: async_nats::Client,
    js: jetstream::Context,
    config: FollowConfig,
    applier: Arc<dyn Applier>,
    sync: Arc<SyncState>,
    /// Whether this process has had its consumer (so losing it means the
    /// log was reset under it).
    had_consumer: bool,
    /// Whether the current session got an answer from the server.
    progressed: bool,
    /// Shield only: edge phases to append if their publisher does not (see
    /// [`Follower::backstop`]); dropped, and so aborted, with the follower.
    backstops: tokio::task::JoinSet<()>,
    /// The log's last entry when the session started: later ones arrived
    /// live, earlier ones are a catch-up (never backstopped).
    live_after: u64,
}

impl Follower {
    async fn sessions(&mut self) {
        let mut delay = BACKOFF_MIN;
        let mut failing = false;
        loop {
            self.progressed = false;
            let Err(e) = self.session().await;
            if self.progressed {
                delay = BACKOFF_MIN;
            }
            if failing && !self.progressed {
                tracing::debug!(node = %self.config.node, error = %e, "purge log: still failing");
            } else {
                tracing::warn!(log = %self.config.log, node = %self.config.node, error = %e,
                    "purge log: following interrupted; retrying");
            }
            failing = true;
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(BACKOFF_MAX);
        }
    }

    /// Follows until something fails.
    async fn session(&mut self) -> Result<std::convert::Infallible, async_nats::Error> {
        let mut stream = ensure_stream(&self.js).await?;
        let state = stream.info().await?.state.clone();
        self.live_after = state.last_sequence;
        let mut consumer = self.consumer(&stream).await?;
        let applied = self.sync.applied_seq();
        if applied > 0 && (state.last_sequence < applied || state.first_sequence > applied + 1) {
            self.reset("the log no longer holds the entry applied last (recreated or trimmed)");
        }
        let expiry =
            (self.sync.max_lag() / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
        loop {
            // The proof of sync: the server says nothing is pending or
            // unacknowledged; it was true when the request was sent.
            let asked = Instant::now();
            let info = consumer.info().await?;
            self.progressed = true;
            if info.num_pending == 0 && info.num_ack_pending == 0 {
                self.sync.synced_at(asked);
            }
            let asked = Instant::now();
            let mut batch = consumer
                .batch()
                .max_messages(BATCH)
                .expires(expiry)
                .messages()
                .await?;
            // The client's own timer on a batch is long; a lost pull request
            // (server restarted) should not hold the session that long. The
            // server's expiry runs while entries are applied, so the wait
            // restarts after each one.
            let patience = expiry + Duration::from_secs(1);
            while let Ok(Some(message)) = tokio::time::timeout(patience, batch.next()).await {
                self.handle(message?, asked).await?;
            }
        }
    }

    /// The node's durable consumer, created when missing.
    async fn consumer(
        &mut self,
        stream: &stream::Stream,
    ) -> Result<PullConsumer, async_nats::Error> {
        let want = pull::Config {
            durable_name: Some(self.name.clone()),
            description: Some(format!(
                "meridian {} {}",
                self.config.tier.as_str(),
                self.config.node
            )),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            ack_wait: ACK_WAIT,
            filter_subject: tier_subject(self.config.tier).to_string(),
            max_ack_pending: 1,
            ..Default::default()
        };
        match stream.consumer_info(&self.name).await {
            Ok(info)
                if info.config.filter_subject == want.filter_subject
                    && info.config.max_ack_pending == 1
                    && info.config.ack_policy == AckPolicy::Explicit =>
            {
                self.had_consumer = true;
                return stream.get_consumer(&self.name).await;
            }
            Ok(_) => {
                tracing::warn!(consumer = %self.name,
                    "the node's consumer has another configuration; recreating it");
                stream.delete_consumer(&self.name).await?;
            }
            Err(e) if e.kind() == ConsumerInfoErrorKind::NotFound => {
                if self.had_consumer {
                    self.reset(
                        "its consumer is gone (the stream was recreated or the consumer deleted)",
                    );
                }
            }
            Err(e) => return Err(e.into()),
        }
        let consumer = stream.create_consumer(want).await?;
        self.had_consumer = true;
        Ok(consumer)
    }

    /// Applies one entry, acks it, confirms it.
    async fn handle(
        &mut self,
        message: jetstream::Message,
        asked: Instant,
    ) -> Result<(), async_nats::Error> {
        let (seq, pending) = {
            let info = message.info()?;
            (info.stream_sequence, info.pending)
        };
        // Appended while this session followed, and the node current: it
        // arrived about when it was appended (not a replay of history).
        let live = seq > self.live_after && !self.sync.is_lagging();
        let entry = serde_json::from_slice::<WireEntry>(&message.payload)
            .ok()
            .filter(|e| valid_id(&e.id));
        let outcome = self.apply(entry.as_ref());
        // Acked only once applied; a double ack, so the server has it before
        // the confirmation says so.
        message.double_ack().await?;
        self.sync.applied(seq);
        if let Some(entry) = entry {
            self.confirm(&entry.id, outcome).await;
            if self.config.tier == Tier::Shield && live && entry.purge.validate().is_ok() {
                self.backstop(entry, seq);
            }
        }
        if pending == 0 {
            self.sync.synced_at(asked);
        }
        Ok(())
    }

    /// Applies an entry's purge; an entry that cannot be read (garbage, or
    /// a newer format) purges everything, since what it meant is unknown.
    fn apply(&self, entry: Option<&WireEntry>) -> Result<Applied, String> {
        match entry {
            Some(entry) if entry.purge.validate().is_ok() => self.applier.apply(&entry.purge),
            _ => {
                tracing::warn!(node = %self.config.node,
                    "purge log: an entry that cannot be read; purging everything");
                self.applier.apply(&purge_all())
            }
        }
    }

    /// Makes sure the edges get a shield-phase entry even when its
    /// publisher died before appending the edge phase: `max-lag` after the
    /// entry reached this shield (so after every shield applied it or went
    /// lagging, the publisher's own condition), the shield appends the edge
    /// phase itself, under the message id the publisher uses, so the server
    /// keeps one of them (within the stream's duplicate window).
    fn backstop(&mut self, mut entry: WireEntry, seq: u64) {
        while self.backstops.try_join_next().is_some() {}
        if self.backstops.len() >= MAX_BACKSTOPS {
            tracing::debug!(id = %entry.id, "purge log: too many edge-phase backstops pending");
            return;
        }
        let js = self.js.clone();
        let wait = self.sync.max_lag().saturating_add(BACKSTOP_MARGIN);
        self.backstops.spawn(async move {
            tokio::time::sleep(wait).await;
            entry.shield_seq = seq;
            let msg_id = format!("{}.edge", entry.id);
            if let Err(e) = super::append(&js, EDGE_SUBJECT, &entry, &msg_id).await {
                tracing::warn!(id = %entry.id, error = %e, "purge log: edge-phase backstop failed");
            }
        });
    }

    async fn confirm(&self, id: &str, outcome: Result<Applied, String>) {
        let ack = match outcome {
            Ok(applied) => WireAck {
                node: self.config.node.clone(),
                tier: self.config.tier,
                entries: applied.entries,
                error: None,
            },
            Err(reason) => {
                tracing::warn!(node = %self.config.node, id, %reason, "purge log: a purge failed");
                WireAck {
                    node: self.config.node.clone(),
                    tier: self.config.tier,
                    entries: 0,
                    error: Some(reason),
                }
            }
        };
        let Ok(payload) = serde_json::to_vec(&ack) else {
            return;
        };
        let send = self
            .client
            .publish(format!("{ACK_PREFIX}.{id}"), payload.into());
        if !matches!(tokio::time::timeout(SEND_TIMEOUT, send).await, Ok(Ok(()))) {
            tracing::debug!(id, "purge log: a confirmation was not sent");
        }
    }

    /// The node cannot know what it missed: it purges everything.
    fn reset(&self, why: &str) {
        tracing::warn!(node = %self.config.node, why, "purge log: purging everything");
        if let Err(reason) = self.applier.apply(&purge_all()) {
            tracing::error!(node = %self.config.node, %reason, "purge log: purging everything failed");
        }
        self.sync.applied(0);
    }
}

fn purge_all() -> Purge {
    Purge {
        all: true,
        ..Purge::default()
    }
}

/// Publishes the node's sync each [`HEARTBEAT_EVERY`] while connected
/// (never queues stale ones while disconnected).
async fn heartbeats(client: &async_nats::Client, config: &FollowConfig, sync: &SyncState) {
    let subject = format!("{STATUS_PREFIX}.{}", consumer_name(&config.node));
    let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        if client.connection_state() != async_nats::connection::State::Connected {
            continue;
        }
        let beat = WireHeartbeat {
            node: config.node.clone(),
            tier: config.tier,
            applied: sync.applied_seq(),
            lag_ms: sync
                .lag()
                .map_or(0, |l| u64::try_from(l.as_millis()).unwrap_or(u64::MAX)),
            lagging: sync.is_lagging(),
        };
        if let Ok(payload) = serde_json::to_vec(&beat) {
            let _ = tokio::time::timeout(
                SEND_TIMEOUT,
                client.publish(subject.clone(), payload.into()),
            )
            .await;
        }
    }
}
