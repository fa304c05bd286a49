//! The "recent purges" panel: the last few log entries and when each node
//! applied them.
//!
//! The log's status (`GET /v1/purges/status`) says only how far each node
//! got (`applied`, a sequence number), and reading the entries would make
//! the dashboard a follower. So two sources are merged: a purge sent
//! through the dashboard comes back with the log's report (what it was,
//! each node's confirmation in ms after the append); for any entry (sent
//! by `meridian purge` too) the poller notes the first poll at which a
//! node's `applied` reached it, to the poll interval.

use std::collections::VecDeque;

use meridian_purge::{NodeOutcome, Purge, Report, Status};
use serde::Serialize;

/// Longest purge summary shown.
const SUMMARY_CHARS: usize = 160;

/// One log entry as the panel shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    pub seq: u64,
    /// When it was appended (dashboard purges) or first seen in the log's
    /// head, ms since the Unix epoch; `None` if it was there before the
    /// dashboard started.
    pub at_ms: Option<u64>,
    /// What it purged (`tag: a, b`), when the dashboard sent it.
    pub summary: Option<String>,
    pub soft: bool,
    pub via_dashboard: bool,
    pub nodes: Vec<NodeApplied>,
}

/// One node's progress with one entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeApplied {
    pub node: String,
    pub state: AppliedState,
    /// When it applied the entry, ms since the Unix epoch (`None`: before
    /// the dashboard watched, or not yet).
    pub at_ms: Option<u64>,
    /// From the append to its confirmation, from the log's report.
    pub ms: Option<f64>,
    /// Entries it removed or marked stale, from the log's report.
    pub entries: Option<u64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AppliedState {
    Applied,
    Pending,
    /// Did not confirm before the report's deadline (still pending).
    Timeout,
    Failed,
}

/// The panel's memory: the last `cap` entries, newest first.
#[derive(Debug)]
pub struct Purges {
    records: VecDeque<Record>,
    cap: usize,
    /// The log's head at the last status read; `None` before the first.
    head: Option<u64>,
}

impl Purges {
    pub fn new(cap: usize) -> Self {
        Purges {
            records: VecDeque::new(),
            cap: cap.max(1),
            head: None,
        }
    }

    pub fn records(&self) -> Vec<Record> {
        self.records.iter().cloned().collect()
    }

    fn entry(&mut self, seq: u64, at_ms: Option<u64>) -> Option<&mut Record> {
        if let Some(i) = self.records.iter().position(|r| r.seq == seq) {
            return self.records.get_mut(i);
        }
        // Newest first; an entry older than every one kept and with no room
        // is not shown.
        let i = self.records.iter().position(|r| r.seq < seq);
        if i.is_none() && self.records.len() >= self.cap {
            return None;
        }
        let record = Record {
            seq,
            at_ms,
            summary: None,
            soft: false,
            via_dashboard: false,
            nodes: Vec::new(),
        };
        // Below `cap` either way: before a kept entry, or at the end of a
        // list with room.
        let i = i.unwrap_or(self.records.len());
        self.records.insert(i, record);
        self.records.truncate(self.cap);
        self.records.get_mut(i)
    }

    /// A purge the dashboard sent at `sent_ms`, and the log's report.
    pub fn report(&mut self, report: &Report, sent_ms: u64) {
        let Some(r) = self.entry(report.seq, Some(sent_ms)) else {
            return;
        };
        r.at_ms = Some(sent_ms);
        r.summary = Some(summary(&report.purge));
        r.soft = report.purge.soft;
        r.via_dashboard = true;
        for n in &report.nodes {
            let state = match n.result {
                NodeOutcome::Applied => AppliedState::Applied,
                NodeOutcome::Timeout => AppliedState::Timeout,
                NodeOutcome::Failed => AppliedState::Failed,
            };
            let line = NodeApplied {
                node: n.node.clone(),
                state,
                at_ms: (state == AppliedState::Applied)
                    .then(|| sent_ms.saturating_add(n.ms.max(0.0) as u64)),
                ms: (state == AppliedState::Applied).then_some(n.ms),
                entries: Some(n.entries),
                error: n.error.clone(),
            };
            match r.nodes.iter_mut().find(|x| x.node == n.node) {
                // A poll may have seen it first; the report's time is exact.
                Some(x) if x.state != AppliedState::Applied || state == AppliedState::Applied => {
                    *x = line
                }
                Some(_) => {}
                None => r.nodes.push(line),
            }
        }
    }

    /// The log's status read at `now_ms`: new entries appear, and a node
    /// whose `applied` reached an entry has applied it (by now).
    pub fn status(&mut self, status: &Status, now_ms: u64) {
        let first = self.head.is_none();
        let reset = self.head.is_some_and(|h| status.head < h);
        if reset {
            // The log was reset (a new log id): its numbers start again.
            self.records.clear();
        }
        let from = if reset { 0 } else { self.head.unwrap_or(0) };
        let oldest = status.head.saturating_sub(self.cap as u64);
        for seq in (from.max(oldest) + 1)..=status.head {
            self.entry(seq, (!first).then_some(now_ms));
        }
        self.head = Some(status.head);
        for r in self.records.iter_mut() {
            for n in &status.nodes {
                let applied = n.applied >= r.seq;
                match r.nodes.iter_mut().find(|x| x.node == n.node) {
                    Some(x) if applied && x.state != AppliedState::Applied => {
                        x.state = AppliedState::Applied;
                        x.at_ms = r.at_ms.map(|_| now_ms);
                        x.error = None;
                    }
                    Some(_) => {}
                    None => r.nodes.push(NodeApplied {
                        node: n.node.clone(),
                        state: if applied {
                            AppliedState::Applied
                        } else {
                            AppliedState::Pending
                        },
                        at_ms: (applied && r.at_ms.is_some()).then_some(now_ms),
                        ms: None,
                        entries: None,
                        error: None,
                    }),
                }
            }
        }
    }
}

/// `url: http://a/x, http://a/y (+3)`, `tag: news`, `all`; at most
/// [`SUMMARY_CHARS`] characters.
pub fn summary(p: &Purge) -> String {
    let mut parts = Vec::new();
    for (kind, items) in [("url", &p.urls), ("prefix", &p.prefixes), ("tag", &p.tags)] {
        if items.is_empty() {
            continue;
        }
        let shown: Vec<&str> = items.iter().take(3).map(String::as_str).collect();
        let more = items.len().saturating_sub(shown.len());
        let more = if more > 0 {
            format!(" (+{more})")
        } else {
            String::new()
        };
        parts.push(format!("{kind}: {}{more}", shown.join(", ")));
    }
    if p.all {
        parts.push("all".into());
    }
    let text = parts.join("; ");
    if text.chars().count() <= SUMMARY_CHARS {
        return text;
    }
    let mut cut: String = text.chars().take(SUMMARY_CHARS - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use meridian_purge::{NodeResult, NodeStatus, Tier};

    fn status(head: u64, nodes: &[(&str, u64)]) -> Status {
        Status {
            head,
            nodes: nodes
                .iter()
                .map(|&(node, applied)| NodeStatus {
                    node: node.into(),
                    tier: Tier::Edge,
                    applied,
                    behind: head - applied,
                    last_seen_ms: Some(10),
                    lagging: false,
                })
                .collect(),
        }
    }

    fn state(p: &Purges, seq: u64, node: &str) -> (AppliedState, Option<u64>) {
        let r = p.records.iter().find(|r| r.seq == seq).expect("record");
        let n = r.nodes.iter().find(|n| n.node == node).expect("node");
        (n.state, n.at_ms)
    }

    #[test]
    fn a_node_applies_an_entry_when_its_applied_reaches_it() {
        let mut p = Purges::new(10);
        p.status(&status(2, &[("a", 2), ("b", 1)]), 1_000);
        // Entries from before the dashboard watched: no times.
        assert_eq!(state(&p, 2, "a"), (AppliedState::Applied, None));
        assert_eq!(state(&p, 2, "b"), (AppliedState::Pending, None));
        p.status(&status(3, &[("a", 3), ("b", 2)]), 2_000);
        assert_eq!(state(&p, 3, "a"), (AppliedState::Applied, Some(2_000)));
        assert_eq!(state(&p, 3, "b"), (AppliedState::Pending, None));
        p.status(&status(3, &[("a", 3), ("b", 3)]), 3_000);
        assert_eq!(state(&p, 3, "b"), (AppliedState::Applied, Some(3_000)));
        assert_eq!(state(&p, 3, "a"), (AppliedState::Applied, Some(2_000)));
        let seqs: Vec<u64> = p.records().iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [3, 2, 1], "newest first");
    }

    #[test]
    fn a_report_gives_exact_times_and_what_was_purged() {
        let mut p = Purges::new(10);
        p.status(&status(0, &[("a", 0)]), 1_000);
        let report = Report {
            seq: 1,
            purge: Purge {
                tags: vec!["news".into()],
                soft: true,
                ..Purge::default()
            },
            nodes: vec![
                NodeResult {
                    node: "a".into(),
                    tier: Tier::Edge,
                    result: NodeOutcome::Applied,
                    entries: 4,
                    ms: 12.0,
                    error: None,
                },
                NodeResult {
                    node: "b".into(),
                    tier: Tier::Edge,
                    result: NodeOutcome::Timeout,
                    entries: 0,
                    ms: 5000.0,
                    error: Some("did not confirm".into()),
                },
            ],
            ms: 5000.0,
        };
        p.report(&report, 50_000);
        assert_eq!(state(&p, 1, "a"), (AppliedState::Applied, Some(50_012)));
        assert_eq!(state(&p, 1, "b"), (AppliedState::Timeout, None));
        let r = &p.records()[0];
        assert_eq!(r.summary.as_deref(), Some("tag: news"));
        assert!(r.soft && r.via_dashboard);
        // The next poll sees b caught up.
        p.status(&status(1, &[("a", 1), ("b", 1)]), 52_000);
        assert_eq!(state(&p, 1, "b"), (AppliedState::Applied, Some(52_000)));
        assert_eq!(state(&p, 1, "a"), (AppliedState::Applied, Some(50_012)));
    }

    #[test]
    fn only_the_last_entries_are_kept_and_a_reset_log_starts_over() {
        let mut p = Purges::new(3);
        p.status(&status(100, &[]), 1);
        let seqs: Vec<u64> = p.records().iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [100, 99, 98]);
        p.status(&status(101, &[]), 2);
        assert_eq!(p.records().len(), 3);
        assert_eq!(p.records()[0].seq, 101);
        p.status(&status(1, &[]), 3);
        let seqs: Vec<u64> = p.records().iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [1]);
    }

    #[test]
    fn summaries_are_short() {
        let p = Purge {
            urls: (0..10).map(|i| format!("http://a/{i}")).collect(),
            ..Purge::default()
        };
        assert_eq!(summary(&p), "url: http://a/0, http://a/1, http://a/2 (+7)");
        let long = Purge {
            tags: vec!["x".repeat(500)],
            ..Purge::default()
        };
        assert_eq!(summary(&long).chars().count(), SUMMARY_CHARS);
        let all = Purge {
            all: true,
            ..Purge::default()
        };
        assert_eq!(summary(&all), "all");
    }
}
