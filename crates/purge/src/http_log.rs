//! The embedded purge log, kept by the director's admin listener, over HTTP:
//! the wire shapes, the node's follower, and the clients of `meridian purge`.
//!
//! ```text
//! POST /v1/purge?timeout_ms=T      Purge        -> Report        (scope purge)
//! GET  /v1/purges?after=N&node=NAME&tier=edge|shield&wait=MS&log_id=ID&max_lag_ms=L
//!                                               -> PollAnswer    (scope follow)
//! POST /v1/purges/ack              Ack          -> 204           (scope follow)
//! GET  /v1/purges/status                        -> Status        (scope read)
//! ```
//!
//! The follower long-polls for the entries after the last one it applied,
//! applies them in order, confirms, and records a sync whenever an answer
//! shows it at the head: the moment *it sent* that request, since the log
//! may have grown while the answer was on its way back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::{
    Applier, FollowConfig, LogEntry, LogError, NodeOutcome, NodeRef, NodeResult, NodeStatus, Purge,
    Report, Status, SyncState, Tier,
};

/// The answer to a follower's poll.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PollAnswer {
    /// The log's id; a node that followed another id must start over.
    pub log_id: String,
    /// The last entry in the log (released to this node's tier or not).
    pub head: u64,
    /// Set when the node cannot catch up entry by entry (it never followed
    /// this log, or asks from before the retained window): it purges
    /// everything and counts itself at this sequence number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_to: Option<u64>,
    /// The entries after the asked one, in order (possibly not all).
    #[serde(default)]
    pub entries: Vec<LogEntry>,
}

/// A follower's confirmation of the entries `from..=seq`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    pub node: String,
    pub tier: Tier,
    /// The last entry applied.
    pub seq: u64,
    /// The first entry of the confirmed batch (default: `seq`).
    #[serde(default)]
    pub from: u64,
    /// Stored responses removed or marked stale by the batch.
    pub entries: u64,
    pub micros: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The log these entries came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_id: Option<String>,
}

/// Largest answer body a client reads.
const MAX_ANSWER: usize = 32 << 20;
/// First and longest pause after a failed poll.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// The longest a follower asks the keeper to hold its poll.
const POLL_WAIT_MAX: Duration = Duration::from_secs(2);
/// Time allowed on top of the hold for the answer to arrive.
const ANSWER_MARGIN: Duration = Duration::from_secs(3);

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(2))
        .pool_max_idle_per_host(2)
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

fn base(log: &str) -> &str {
    log.trim_end_matches('/')
}

fn authorized(req: reqwest::RequestBuilder, token: Option<&str>) -> reqwest::RequestBuilder {
    match token {
        Some(t) => req.bearer_auth(t),
        None => req,
    }
}

/// Sends `req` and reads a JSON answer of at most [`MAX_ANSWER`] bytes.
async fn call<T: serde::de::DeserializeOwned>(
    log: &str,
    req: reqwest::RequestBuilder,
) -> Result<T, LogError> {
    let unreachable = |reason: String| LogError::Unreachable {
        log: log.to_owned(),
        reason,
    };
    let mut resp = req.send().await.map_err(|e| unreachable(error_chain(&e)))?;
    let status = resp.status();
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| unreachable(error_chain(&e)))?
    {
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err(LogError::Other(format!(
                "{log}: answer larger than {MAX_ANSWER} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body[..body.len().min(512)])
            .trim()
            .to_owned();
        return Err(match status.as_u16() {
            401 | 403 | 400 => LogError::Refused(format!("{status}: {text}")),
            404 => LogError::Refused(format!(
                "{status}: no purge log here (is the director started with --purge-state DIR, \
                 or [purge-log] state-dir, and is this its admin listener?)"
            )),
            _ => unreachable(format!("{status}: {text}")),
        });
    }
    serde_json::from_slice(&body)
        .map_err(|e| LogError::Other(format!("{log}: unexpected answer: {e}")))
}

/// `url?k=v&...`, each key and value percent-encoded (RFC 3986: all but
/// the unreserved characters).
fn with_query(url: &str, pairs: &[(&str, &str)]) -> String {
    use std::fmt::Write;
    let mut out = String::from(url);
    for (i, (k, v)) in pairs.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        for (j, part) in [k, v].into_iter().enumerate() {
            if j == 1 {
                out.push('=');
            }
            for b in part.bytes() {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    out.push(char::from(b));
                } else {
                    let _ = write!(out, "%{b:02X}");
                }
            }
        }
    }
    out
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// How long to ask the keeper to hold a poll: half the node's `max-lag`,
/// so an idle node re-syncs well before it would start lagging.
fn poll_wait(max_lag: Duration) -> Duration {
    (max_lag / 2).clamp(Duration::from_millis(10), POLL_WAIT_MAX)
}

/// Follows the log (see [`crate::follow`]).
pub async fn follow(
    config: FollowConfig,
    applier: Arc<dyn Applier>,
    sync: Arc<SyncState>,
    shutdown: meridian_common::Shutdown,
) {
    let client = client();
    let mut follower = Follower {
        config,
        applier,
        sync,
        client,
        log_id: None,
    };
    tracing::info!(log = %follower.config.log, node = %follower.config.node, "following the purge log");
    let mut backoff = BACKOFF_MIN;
    let mut failing = false;
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        let step = tokio::select! {
            _ = &mut stop => return,
            r = follower.step() => r,
        };
        match step {
            Ok(()) => {
                if failing {
                    tracing::info!(log = %follower.config.log, "purge log reachable again");
                }
                failing = false;
                backoff = BACKOFF_MIN;
            }
            Err(e) => {
                if !failing {
                    tracing::warn!("cannot follow the purge log (retrying): {e}");
                }
                failing = true;
                tokio::select! {
                    _ = &mut stop => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

struct Follower {
    config: FollowConfig,
    applier: Arc<dyn Applier>,
    sync: Arc<SyncState>,
    client: reqwest::Client,
    log_id: Option<String>,
}

impl Follower {
    /// One poll, and applying and confirming what it brought.
    async fn step(&mut self) -> Result<(), LogError> {
        let wait = poll_wait(self.sync.max_lag());
        let after = self.sync.applied_seq();
        let url = format!("{}/v1/purges", base(&self.config.log));
        let wait_ms = wait.as_millis().to_string();
        let after_s = after.to_string();
        let max_lag_ms = self.sync.max_lag().as_millis().to_string();
        let mut query = vec![
            ("after", after_s.as_str()),
            ("node", self.config.node.as_str()),
            ("tier", self.config.tier.as_str()),
            ("wait", wait_ms.as_str()),
            ("max_lag_ms", max_lag_ms.as_str()),
        ];
        if let Some(id) = &self.log_id {
            query.push(("log_id", id.as_str()));
        }
        let req = self
            .client
            .get(with_query(&url, &query))
            .timeout(wait + ANSWER_MARGIN);
        let sent = Instant::now();
        let answer: PollAnswer = call(
            &self.config.log,
            authorized(req, self.config.token.as_deref()),
        )
        .await?;
        if self.log_id.as_deref() != Some(answer.log_id.as_str()) {
            if self.log_id.is_some() {
                tracing::warn!(log_id = %answer.log_id, "the purge log was reset; starting over");
            }
            self.log_id = Some(answer.log_id.clone());
        }
        let (from, last, applied) = if let Some(to) = answer.reset_to {
            let all = Purge {
                all: true,
                ..Purge::default()
            };
            let r = self.apply(all).await;
            self.sync.applied(to);
            (to, to, Some(r))
        } else {
            let mut from = 0;
            let mut total = Ok(crate::Applied::default());
            for entry in answer.entries {
                let expected = self.sync.applied_seq() + 1;
                if entry.seq != expected {
                    return Err(LogError::Other(format!(
                        "the log sent entry {} where {expected} was due",
                        entry.seq
                    )));
                }
                if from == 0 {
                    from = entry.seq;
                }
                let r = self.apply(entry.purge).await;
                self.sync.applied(entry.seq);
                total = match (total, r) {
                    (Ok(a), Ok(b)) => Ok(crate::Applied {
                        entries: a.entries.saturating_add(b.entries),
                        micros: a.micros.saturating_add(b.micros),
                    }),
                    (Err(e), _) | (_, Err(e)) => Err(e),
                };
            }
            let last = self.sync.applied_seq();
            (from, last, (from != 0).then_some(total))
        };
        if last >= answer.head {
            self.sync.synced_at(sent);
        }
        if let Some(result) = applied {
            self.confirm(from, last, result).await;
        }
        Ok(())
    }

    /// Applies one purge off the runtime threads (a large store takes a
    /// while to scan for `all`).
    async fn apply(&self, purge: Purge) -> Result<crate::Applied, String> {
        let applier = Arc::clone(&self.applier);
        let r = tokio::task::spawn_blocking(move || {
            purge.validate()?;
            applier.apply(&purge)
        })
        .await
        .unwrap_or_else(|e| Err(format!("applying the purge failed: {e}")));
        if let Err(e) = &r {
            // Not retried: an entry this node cannot understand would stop
            // it for good. The keeper reports the failure to the operator.
            tracing::error!(node = %self.config.node, "cannot apply a purge from the log: {e}");
        }
        r
    }

    /// Confirms a batch; a lost confirmation is made up for by the next
    /// poll, whose `after` says the same.
    async fn confirm(&self, from: u64, seq: u64, result: Result<crate::Applied, String>) {
        let (applied, error) = match result {
            Ok(a) => (a, None),
            Err(e) => (crate::Applied::default(), Some(e)),
        };
        let ack = Ack {
            node: self.config.node.clone(),
            tier: self.config.tier,
            seq,
            from,
            entries: applied.entries,
            micros: applied.micros,
            error,
            log_id: self.log_id.clone(),
        };
        let url = format!("{}/v1/purges/ack", base(&self.config.log));
        let req = self.client.post(url).json(&ack).timeout(ANSWER_MARGIN);
        match authorized(req, self.config.token.as_deref()).send().await {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => tracing::warn!(status = %r.status(), "the purge log refused a confirmation"),
            Err(e) => tracing::warn!("cannot confirm to the purge log: {}", error_chain(&e)),
        }
    }
}

/// Appends a purge and collects confirmations (see [`crate::publish`]).
/// Nodes in `nodes` the keeper does not know are reported as not confirmed.
pub async fn publish(
    log: &str,
    token: Option<&str>,
    purge: &Purge,
    nodes: &[NodeRef],
    deadline: Duration,
) -> Result<Report, LogError> {
    let url = format!("{}/v1/purge", base(log));
    let timeout_ms = deadline.as_millis().to_string();
    let req = client()
        .post(with_query(&url, &[("timeout_ms", timeout_ms.as_str())]))
        .json(purge)
        .timeout(deadline + ANSWER_MARGIN);
    let mut report: Report = call(log, authorized(req, token)).await?;
    for n in nodes {
        if !report.nodes.iter().any(|r| r.node == n.name) {
            report.nodes.push(NodeResult {
                node: n.name.clone(),
                tier: n.tier,
                result: NodeOutcome::Timeout,
                entries: 0,
                ms: report.ms,
                error: Some("not configured in the purge log keeper's cluster file".into()),
            });
        }
    }
    report.nodes.sort_by_key(|n| n.tier);
    Ok(report)
}

/// Every node's sync (see [`crate::status`]); nodes in `nodes` the keeper
/// has not heard of are listed as never seen.
pub async fn status(log: &str, token: Option<&str>, nodes: &[NodeRef]) -> Result<Status, LogError> {
    let url = format!("{}/v1/purges/status", base(log));
    let req = client().get(url).timeout(Duration::from_secs(5));
    let mut status: Status = call(log, authorized(req, token)).await?;
    for n in nodes {
        if !status.nodes.iter().any(|s| s.node == n.name) {
            status.nodes.push(NodeStatus {
                node: n.name.clone(),
                tier: n.tier,
                applied: 0,
                behind: status.head,
                last_seen_ms: None,
                lagging: true,
            });
        }
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_hold_for_half_the_max_lag_within_bounds() {
        assert_eq!(
            poll_wait(Duration::from_secs(1)),
            Duration::from_millis(500)
        );
        assert_eq!(poll_wait(Duration::from_secs(60)), POLL_WAIT_MAX);
        assert_eq!(
            poll_wait(Duration::from_millis(1)),
            Duration::from_millis(10)
        );
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            with_query("http://a/v1/purges", &[("node", "e 1&x"), ("after", "3")]),
            "http://a/v1/purges?node=e%201%26x&after=3"
        );
    }

    #[test]
    fn an_ack_without_from_reads() {
        let a: Ack =
            serde_json::from_str(r#"{"node":"e1","tier":"edge","seq":4,"entries":2,"micros":10}"#)
                .expect("test");
        assert_eq!((a.from, a.seq, a.error), (0, 4, None));
    }
}
