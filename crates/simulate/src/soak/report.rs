//! What a soak found: figures, and the checks that failed.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::plan::{Fault, PurgeRecord, Window};
use super::procs::Sample;
use super::{Kind, Run, Settings, explained, wrong};

/// The cause of every wrong-bytes failure starts with this.
pub const WRONG_BYTES: &str = "wrong bytes: ";

/// A progress bar over the run's seconds (hidden off a terminal).
pub(crate) fn bar(on: bool, d: Duration) -> Option<ProgressBar> {
    if !on {
        return None;
    }
    let b = ProgressBar::new(d.as_secs().max(1));
    if let Ok(s) =
        ProgressStyle::with_template("soak {elapsed_precise} [{bar:30}] {pos}/{len}s  {msg}")
    {
        b.set_style(s.progress_chars("=> "));
    }
    Some(b)
}

/// A client-side error, by cause (never the URL, which the failure keeps).
pub(crate) fn io_cause(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connect".into()
    } else if e.is_body() || e.is_decode() {
        "body cut short".into()
    } else if e.is_request() {
        "connection closed or reset".into()
    } else {
        "other client error".into()
    }
}

/// One failover: a shield SIGKILLed while the probe ran.
#[derive(Debug, Clone, Serialize)]
pub struct Failover {
    pub shield: String,
    pub misses: u64,
    pub misses_failed: u64,
    /// Seconds from the kill to the last failed miss (0: none failed).
    pub last_failed_miss: f64,
    pub hot: u64,
    pub hot_failed: u64,
    pub health_interval: f64,
}

/// One node process over the run.
#[derive(Debug, Clone, Serialize)]
pub struct NodeFigures {
    pub pids: Vec<u32>,
    pub first: Option<Sample>,
    /// The baseline the fd growth is measured from: the final process's
    /// first sample at least 10 s after it appeared (or its first).
    pub baseline: Option<Sample>,
    pub last: Option<Sample>,
    pub max_rss_bytes: u64,
    pub fd_growth: i64,
}

/// The figures of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub duration_s: f64,
    pub requests: u64,
    pub bytes_checked: u64,
    pub outcomes: BTreeMap<String, u64>,
    pub errors: u64,
    /// `fault: cause` or `unexpected: cause` → count.
    pub errors_by_cause: BTreeMap<String, u64>,
    pub wrong_bytes: u64,
    pub failovers: Vec<Failover>,
    /// During the origin outage, requests for site assets (not unique
    /// misses): served fresh or revalidated, served stale-if-error, failed.
    pub outage_served: u64,
    pub outage_stale: u64,
    pub outage_failed: u64,
    pub purges: Vec<PurgeRecord>,
    pub windows: Vec<Window>,
    pub nodes: BTreeMap<String, NodeFigures>,
    pub rss_limit_bytes: u64,
    pub fd_slack: u64,
    pub logs_scanned: usize,
    pub panics: BTreeMap<String, Vec<String>>,
}

/// Figures and verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub figures: Figures,
    /// Every failed check; empty: the soak passed.
    pub problems: Vec<String>,
    /// Some unexpected failures in full.
    pub examples: Vec<super::Failure>,
    /// Every failure (the first 20,000).
    pub failures: Vec<super::Failure>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

fn mib(b: u64) -> f64 {
    b as f64 / (1u64 << 20) as f64
}

pub(crate) fn build(
    s: &Settings,
    run: &Run,
    driven: &(Vec<Window>, Vec<PurgeRecord>, Vec<String>),
    samples: BTreeMap<String, Vec<Sample>>,
    logs: Vec<PathBuf>,
    panics: BTreeMap<String, Vec<String>>,
) -> Report {
    let (windows, purges, driver_problems) = driven;
    let mut problems = driver_problems.clone();
    let t = &run.tally;
    let failures = t.failures.lock().map(|f| f.clone()).unwrap_or_default();
    let mut by_cause = BTreeMap::new();
    let mut examples = Vec::new();
    let mut wrong_bytes = 0;
    for f in &failures {
        let label = match explained(windows, f.at, f.kind) {
            _ if wrong(&f.cause) => {
                wrong_bytes += 1;
                "WRONG BYTES".to_owned()
            }
            Some(w) => format!("{} {}", fault_name(w.fault), w.node),
            None => "unexpected".to_owned(),
        };
        if (label == "unexpected"
            || label == "WRONG BYTES"
            || label.starts_with(fault_name(Fault::OriginSlow)))
            && examples.len() < 20
        {
            examples.push(f.clone());
        }
        let cause = if wrong(&f.cause) {
            "body differs from the origin's"
        } else {
            f.cause.as_str()
        };
        *by_cause
            .entry(format!("{label}: {:?} {cause}", f.kind))
            .or_default() += 1;
    }
    let unexpected: u64 = by_cause
        .iter()
        .filter(|(k, _)| k.starts_with("unexpected") || k.starts_with("origin-slow"))
        .map(|(_, v)| v)
        .sum();
    if wrong_bytes > 0 {
        problems.push(format!("{wrong_bytes} answers with wrong bytes"));
    }
    if unexpected > 0 {
        problems.push(format!(
            "{unexpected} errors not explained by an injected fault"
        ));
    }

    let probe = t.probe.lock().map(|p| p.clone()).unwrap_or_default();
    let health = s.config.upstream_health_interval.as_secs_f64();
    let mut failovers = Vec::new();
    for w in windows.iter().filter(|w| w.fault == Fault::ShieldKilled) {
        let mine = probe.iter().filter(|p| p.shield == w.node);
        let mut f = Failover {
            shield: w.node.clone(),
            misses: 0,
            misses_failed: 0,
            last_failed_miss: 0.0,
            hot: 0,
            hot_failed: 0,
            health_interval: health,
        };
        for p in mine {
            match p.kind {
                Kind::Hot => {
                    f.hot += 1;
                    f.hot_failed += u64::from(!p.ok);
                }
                _ => {
                    f.misses += 1;
                    if !p.ok {
                        f.misses_failed += 1;
                        f.last_failed_miss = f.last_failed_miss.max(p.after_kill);
                    }
                }
            }
        }
        if f.hot_failed > 0 {
            problems.push(format!(
                "{} of {} cached requests failed while {} was down",
                f.hot_failed, f.hot, f.shield
            ));
        }
        if f.last_failed_miss > health {
            problems.push(format!(
                "misses failed {:.2} s after {} was killed (health interval {health} s)",
                f.last_failed_miss, f.shield
            ));
        }
        if f.misses == 0 {
            problems.push(format!(
                "the probe sent no miss while {} was down",
                f.shield
            ));
        }
        failovers.push(f);
    }

    let limit = s.config.cache_size + s.rss_margin;
    let mut nodes = BTreeMap::new();
    for (name, list) in samples {
        let mut pids: Vec<u32> = Vec::new();
        for x in &list {
            if !pids.contains(&x.pid) {
                pids.push(x.pid);
            }
        }
        let last = list.last().copied();
        let fin: Vec<&Sample> = list
            .iter()
            .filter(|x| Some(x.pid) == last.map(|l| l.pid))
            .collect();
        let born = fin.first().map_or(0.0, |x| x.at);
        let baseline = fin
            .iter()
            .find(|x| x.at >= born + 10.0)
            .or(fin.first())
            .map(|x| **x);
        let max_rss = list.iter().map(|x| x.rss_bytes).max().unwrap_or(0);
        let growth = match (baseline, last) {
            (Some(b), Some(l)) => l.fds as i64 - b.fds as i64,
            _ => 0,
        };
        if max_rss > limit {
            problems.push(format!(
                "{name}: RSS reached {:.1} MiB, above cache size {:.0} MiB + margin {:.0} MiB",
                mib(max_rss),
                mib(s.config.cache_size),
                mib(s.rss_margin)
            ));
        }
        if growth > s.fd_slack as i64 {
            problems.push(format!(
                "{name}: {growth} more file descriptors at the end than at its baseline"
            ));
        }
        nodes.insert(
            name,
            NodeFigures {
                pids,
                first: list.first().copied(),
                baseline,
                last,
                max_rss_bytes: max_rss,
                fd_growth: growth,
            },
        );
    }
    if !panics.is_empty() {
        problems.push(format!("panics in {} log(s)", panics.len()));
    }
    let outage = t.outage.lock().map(|o| *o).unwrap_or_default();
    let outcomes = t
        .outcomes
        .lock()
        .map(|m| {
            m.iter()
                .map(|((k, o), n)| (format!("{k:?} {o}"), *n))
                .collect()
        })
        .unwrap_or_default();
    Report {
        figures: Figures {
            duration_s: run.now(),
            requests: t.requests.load(Ordering::Relaxed),
            bytes_checked: t.bytes_checked.load(Ordering::Relaxed),
            outcomes,
            errors: failures.len() as u64,
            errors_by_cause: by_cause,
            wrong_bytes,
            failovers,
            outage_served: outage[0],
            outage_stale: outage[1],
            outage_failed: outage[2],
            purges: purges.clone(),
            windows: windows.clone(),
            nodes,
            rss_limit_bytes: limit,
            fd_slack: s.fd_slack,
            logs_scanned: logs.len(),
            panics,
        },
        problems,
        examples,
        failures,
    }
}

fn fault_name(f: Fault) -> &'static str {
    match f {
        Fault::OriginSlow => "origin-slow",
        Fault::ShieldKilled => "shield-killed",
        Fault::EdgeStopped => "edge-stopped",
        Fault::OriginFailing => "origin-failing",
    }
}

impl Report {
    /// The report as text, for a terminal or `docs/`.
    pub fn text(&self) -> String {
        let f = &self.figures;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "soak: {:.0} s, {} requests ({:.1}/s), {:.1} MiB of bodies checked against the origin",
            f.duration_s,
            f.requests,
            f.requests as f64 / f.duration_s.max(1.0),
            mib(f.bytes_checked)
        );
        let _ = writeln!(s, "\nanswers by kind and edge verdict:");
        for (k, n) in &f.outcomes {
            let _ = writeln!(s, "  {k:<28} {n}");
        }
        let _ = writeln!(s, "\nerrors: {} (wrong bytes: {})", f.errors, f.wrong_bytes);
        for (k, n) in &f.errors_by_cause {
            let _ = writeln!(s, "  {k:<60} {n}");
        }
        let _ = writeln!(
            s,
            "\nfault windows (s since start; errors until `until` are put down to them):"
        );
        for w in &f.windows {
            let _ = writeln!(
                s,
                "  {:<15} {:<10} {:>7.1} .. {:>7.1} (until {:.1})",
                fault_name(w.fault),
                w.node,
                w.from,
                w.healed,
                w.until
            );
        }
        let _ = writeln!(
            s,
            "\nfailover (shield SIGKILLed, probe on every front every 50 ms):"
        );
        for o in &f.failovers {
            let _ = writeln!(
                s,
                "  {}: cached {} requests, {} failed; fresh misses {}, {} failed, last failure {:.0} ms after the kill (health interval {:.0} ms)",
                o.shield,
                o.hot,
                o.hot_failed,
                o.misses,
                o.misses_failed,
                o.last_failed_miss * 1000.0,
                o.health_interval * 1000.0
            );
        }
        let total = f.outage_served + f.outage_stale + f.outage_failed;
        let _ = writeln!(
            s,
            "\norigin failing: {total} requests for site assets, {:.1}% served ({} fresh/hit, {} stale-if-error), {} failed",
            100.0 * (f.outage_served + f.outage_stale) as f64 / total.max(1) as f64,
            f.outage_served,
            f.outage_stale,
            f.outage_failed
        );
        let _ = writeln!(s, "\npurges:");
        for p in &f.purges {
            let _ = writeln!(
                s,
                "  {:>7.1} s {:<9} {} in {} ms{}",
                p.at,
                p.what,
                p.status,
                p.millis,
                p.next
                    .map_or(String::new(), |n| format!(", next request: {n}"))
            );
        }
        let _ = writeln!(
            s,
            "\nprocesses (RSS limit {:.0} MiB, fd slack {}):",
            mib(f.rss_limit_bytes),
            f.fd_slack
        );
        let _ = writeln!(
            s,
            "  {:<13} {:>5} {:>11} {:>11} {:>11} {:>9} {:>9} {:>6}",
            "NODE", "PIDS", "RSS first", "RSS max", "RSS end", "fds base", "fds end", "growth"
        );
        for (name, n) in &f.nodes {
            let r = |x: Option<Sample>| x.map_or(0.0, |x| mib(x.rss_bytes));
            let _ = writeln!(
                s,
                "  {:<13} {:>5} {:>8.1}MiB {:>8.1}MiB {:>8.1}MiB {:>9} {:>9} {:>6}",
                name,
                n.pids.len(),
                r(n.first),
                mib(n.max_rss_bytes),
                r(n.last),
                n.baseline.map_or(0, |x| x.fds),
                n.last.map_or(0, |x| x.fds),
                n.fd_growth
            );
        }
        let _ = writeln!(
            s,
            "\nlogs: {} scanned, {} with a panic",
            f.logs_scanned,
            f.panics.len()
        );
        for (file, lines) in &f.panics {
            let _ = writeln!(s, "  {file}:");
            for l in lines {
                let _ = writeln!(s, "    {l}");
            }
        }
        if !self.examples.is_empty() {
            let _ = writeln!(s, "\nunexplained failures (first {}):", self.examples.len());
            for e in &self.examples {
                let _ = writeln!(s, "  {:>7.1} s {:?} {} {}", e.at, e.kind, e.cause, e.url);
            }
        }
        if self.passed() {
            let _ = writeln!(s, "\nPASS");
        } else {
            let _ = writeln!(s, "\nFAIL:");
            for p in &self.problems {
                let _ = writeln!(s, "  - {p}");
            }
        }
        s
    }
}
