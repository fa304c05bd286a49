//! The chaos timeline and the failover probe.
//!
//! Fractions of the run (so a 60 s run and a 10-minute run do the same
//! things in the same order): purges of every kind the purge log takes
//! (URL, prefix, tag, everything, soft and hard), the origin slowed, the
//! first shield killed with SIGKILL and restarted, an edge that shares its
//! region's address stopped and started, the origin failing, the second
//! shield killed and restarted, purges again. No purge falls in a shield
//! kill: the probe's hot set must stay cached through it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use indicatif::ProgressBar;
use meridian_cluster::config::ClusterConfig;
use serde::Serialize;
use tokio::time::Instant;

use super::{Kind, Run, SoakError, fetch, hot_set};

/// One thing the timeline does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `POST /v1/purge` with this JSON body; `url`: the asset checked after
    /// (a URL purge must make its next request a miss).
    Purge {
        what: &'static str,
        body: serde_json::Value,
        url: Option<String>,
    },
    /// `meridian cluster ACTION NODE` (`stop`, `start`, `slow=300ms`, `fail`, `heal`).
    Act { node: String, action: String },
}

/// A fault, for classifying errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    OriginSlow,
    ShieldKilled,
    EdgeStopped,
    OriginFailing,
}

/// When a fault was on (seconds since the start), grace included.
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    pub fault: Fault,
    pub node: String,
    pub from: f64,
    /// When it was healed.
    pub healed: f64,
    /// `healed` plus the grace errors are still put down to it.
    pub until: f64,
}

/// One request of the failover probe.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeRecord {
    pub shield: String,
    /// Seconds since the kill.
    pub after_kill: f64,
    pub kind: Kind,
    pub ok: bool,
}

/// What a purge did.
#[derive(Debug, Clone, Serialize)]
pub struct PurgeRecord {
    pub at: f64,
    pub what: &'static str,
    pub status: u16,
    pub millis: u64,
    /// For a URL purge: the edge's `Cache-Status` verdict on the next
    /// request for it (never `hit`).
    pub next: Option<&'static str>,
}

/// The events at their times (seconds from the start), in order.
pub fn timeline(d: Duration, c: &ClusterConfig) -> Vec<(f64, Event)> {
    let t = |f: f64| d.as_secs_f64() * f;
    let host = &c.site_host;
    let act = |node: &str, action: &str| Event::Act {
        node: node.to_owned(),
        action: action.to_owned(),
    };
    let purge_url = |path: &str| Event::Purge {
        what: "url",
        body: serde_json::json!({ "urls": [format!("http://{host}{path}")] }),
        url: Some(path.to_owned()),
    };
    let tag = |what: &'static str, tag: &str, soft: bool| Event::Purge {
        what,
        body: serde_json::json!({ "tags": [tag], "soft": soft }),
        url: None,
    };
    let all = |what: &'static str, soft: bool| Event::Purge {
        what,
        body: serde_json::json!({ "all": true, "soft": soft }),
        url: None,
    };
    let prefix = Event::Purge {
        what: "prefix",
        body: serde_json::json!({ "prefixes": [format!("{host}/news/")] }),
        url: None,
    };
    let shields: Vec<&str> = c.shields.iter().map(|s| s.place.name.as_str()).collect();
    // An edge behind a shared region address, else the last edge.
    let edge = c
        .fronts
        .iter()
        .find(|f| f.edges.len() > 1)
        .and_then(|f| f.edges.first())
        .or(c.edges.len().checked_sub(1).as_ref())
        .and_then(|&i| c.edges.get(i))
        .map_or("", |e| e.place.name.as_str());
    let mut ev = vec![
        (t(0.08), purge_url("/index.html")),
        (t(0.10), prefix.clone()),
        (t(0.12), tag("tag", "news", false)),
        (t(0.13), tag("tag-soft", "css", true)),
        (t(0.14), all("all-soft", true)),
        (t(0.16), all("all", false)),
        (t(0.18), act("origin", "slow=300ms")),
        (t(0.26), act("origin", "heal")),
    ];
    if let Some(s) = shields.last() {
        ev.push((t(0.30), act(s, "stop")));
        ev.push((t(0.40), act(s, "start")));
    }
    if !edge.is_empty() {
        ev.push((t(0.46), act(edge, "stop")));
        ev.push((t(0.54), act(edge, "start")));
    }
    ev.push((t(0.58), act("origin", "fail")));
    ev.push((t(0.70), act("origin", "heal")));
    if shields.len() > 1
        && let Some(s) = shields.first()
    {
        ev.push((t(0.74), act(s, "stop")));
        ev.push((t(0.84), act(s, "start")));
    }
    ev.push((t(0.88), purge_url("/about.html")));
    ev.push((t(0.89), tag("tag", "product-007", false)));
    ev.push((t(0.90), prefix));
    ev.push((t(0.92), all("all", false)));
    ev
}

/// Waits (bounded) until every front answers the home page.
pub(crate) async fn wait_ready(run: &Run) -> Result<(), SoakError> {
    let until = Instant::now() + Duration::from_secs(60);
    for f in &run.fronts {
        loop {
            let r = run.client.get(format!("{f}/healthz")).send().await;
            let r2 = run.client.get(format!("{f}/")).send().await;
            if matches!((&r, &r2), (Ok(a), Ok(b)) if a.status().as_u16() < 500 && b.status().is_success())
            {
                break;
            }
            if Instant::now() > until {
                return Err(SoakError::Setup(format!(
                    "{f} does not answer (is `meridian cluster up` running with this file?)"
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

/// Answers of the dashboard's control API and the purge log.
async fn act(run: &Run, node: &str, action: &str) -> Result<(), String> {
    let url = format!("{}/api/nodes/{node}/{action}", run.dashboard);
    let r = run
        .client
        .post(&url)
        .bearer_auth(&run.token)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if r.status().is_success() {
        Ok(())
    } else {
        Err(format!("{node} {action}: {}", r.status()))
    }
}

/// Runs the timeline; answers the fault windows and purges. Returns after
/// the deadline.
pub(crate) async fn drive(
    run: &Arc<Run>,
    events: &[(f64, Event)],
    c: &ClusterConfig,
    bar: Option<&ProgressBar>,
) -> (Vec<Window>, Vec<PurgeRecord>, Vec<String>) {
    let grace = 2.0 * c.upstream_health_interval.as_secs_f64()
        + 2.0 * c.director.health.interval.as_secs_f64()
        + 2.0;
    let mut windows: Vec<Window> = Vec::new();
    let mut purges = Vec::new();
    let mut problems = Vec::new();
    let mut probe: Option<tokio::task::JoinHandle<()>> = None;
    let shields: Vec<&str> = c.shields.iter().map(|s| s.place.name.as_str()).collect();
    for (i, (at, ev)) in events.iter().enumerate() {
        let due = run.start + Duration::from_secs_f64(*at);
        tick_until(run, due, bar).await;
        if Instant::now() >= run.deadline {
            break;
        }
        match ev {
            Event::Purge { what, body, url } => {
                let t0 = Instant::now();
                let r = run
                    .client
                    .post(format!("{}/v1/purge", run.purge_log))
                    .bearer_auth(&run.token)
                    .json(body)
                    .send()
                    .await;
                let status = r.as_ref().map_or(0, |r| r.status().as_u16());
                let millis = t0.elapsed().as_millis() as u64;
                let mut next = None;
                if let (Some(path), Some(front), Some(asset)) = (
                    url,
                    run.fronts.first(),
                    url.as_deref().and_then(|p| run.site.get(p)),
                ) {
                    let u = format!("{front}{path}");
                    next = fetch(run, run.client.get(&u), asset, Kind::Full, &u).await;
                }
                if !(200..300).contains(&status) {
                    problems.push(format!("purge {what}: status {status}"));
                }
                if next == Some("hit") {
                    problems.push(format!("purge {what}: the next request was still a hit"));
                }
                purges.push(PurgeRecord {
                    at: run.now(),
                    what,
                    status,
                    millis,
                    next,
                });
            }
            Event::Act { node, action } => {
                let is_shield = shields.contains(&node.as_str());
                if is_shield && action == "stop" {
                    // The hot set is cached on every edge before the kill.
                    warm(run).await;
                }
                // The fault begins when it is asked for: requests in flight
                // at the kill fail before the control API answers.
                let now = run.now();
                if let Err(e) = act(run, node, action).await {
                    problems.push(e);
                }
                let fault = match (node.as_str(), action.as_str()) {
                    ("origin", a) if a.starts_with("slow") => Some(Fault::OriginSlow),
                    ("origin", "fail") => Some(Fault::OriginFailing),
                    (_, "stop") if is_shield => Some(Fault::ShieldKilled),
                    (_, "stop") => Some(Fault::EdgeStopped),
                    _ => None,
                };
                if let Some(fault) = fault {
                    if fault == Fault::OriginFailing {
                        run.origin_down.store(true, Ordering::Relaxed);
                    }
                    // Open until its heal or start (or the end).
                    let heal = events[i + 1..]
                        .iter()
                        .find(|(_, e)| matches!(e, Event::Act { node: n, action: a } if n == node && (a == "heal" || a == "start")))
                        .map_or(run.deadline.duration_since(run.start).as_secs_f64(), |(t, _)| *t);
                    windows.push(Window {
                        fault,
                        node: node.clone(),
                        from: now,
                        healed: heal,
                        until: heal + grace,
                    });
                    if fault == Fault::ShieldKilled {
                        let run = Arc::clone(run);
                        let shield = node.clone();
                        let until = run.start + Duration::from_secs_f64(heal);
                        probe = Some(tokio::spawn(probe_loop(run, shield, until)));
                    }
                } else if node == "origin" {
                    run.origin_down.store(false, Ordering::Relaxed);
                }
                if action == "start"
                    && let Some(p) = probe.take()
                {
                    let _ = p.await;
                }
            }
        }
    }
    tick_until(run, run.deadline, bar).await;
    if let Some(p) = probe.take() {
        let _ = p.await;
    }
    (windows, purges, problems)
}

async fn tick_until(run: &Run, due: Instant, bar: Option<&ProgressBar>) {
    // Bounded: one tick a second until `due`, never past the deadline.
    let due = due.min(run.deadline);
    while Instant::now() < due {
        if let Some(b) = bar {
            b.set_position(run.start.elapsed().as_secs());
            let f = run.tally.failures.lock().map_or(0, |f| f.len());
            b.set_message(format!(
                "{} requests, {f} errors",
                run.tally.requests.load(Ordering::Relaxed)
            ));
        }
        tokio::time::sleep(
            Duration::from_secs(1).min(due.saturating_duration_since(Instant::now())),
        )
        .await;
    }
}

/// The probe's hot set, twice on every front (the second a hit).
async fn warm(run: &Run) {
    for a in hot_set(&run.site, HOT) {
        for f in &run.fronts {
            for _ in 0..2 {
                let u = format!("{f}{}", a.path);
                fetch(run, run.client.get(&u), a, Kind::Full, &u).await;
            }
        }
    }
}

/// Hot assets per probe.
const HOT: usize = 8;

/// Every 50 ms until `until`: one fresh miss and one hot asset on every
/// front, recorded against the kill.
async fn probe_loop(run: Arc<Run>, shield: String, until: Instant) {
    let killed = Instant::now();
    let hot = hot_set(&run.site, HOT);
    let Some(miss_asset) = run.site.get("/index.html") else {
        return;
    };
    let mut n = 0u64;
    while Instant::now() < until.min(run.deadline) {
        for f in &run.fronts {
            n += 1;
            let u = format!("{f}{}?probe={shield}-{n}", miss_asset.path);
            let ok = fetch(&run, run.client.get(&u), miss_asset, Kind::ProbeMiss, &u).await;
            record(&run, &shield, killed, Kind::ProbeMiss, ok.is_some());
            if let Some(a) = hot.get(n as usize % hot.len().max(1)) {
                let u = format!("{f}{}", a.path);
                let ok = fetch(&run, run.client.get(&u), a, Kind::Hot, &u).await;
                record(&run, &shield, killed, Kind::Hot, ok.is_some());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn record(run: &Run, shield: &str, killed: Instant, kind: Kind, ok: bool) {
    if let Ok(mut p) = run.tally.probe.lock() {
        p.push(ProbeRecord {
            shield: shield.to_owned(),
            after_kill: killed.elapsed().as_secs_f64(),
            kind,
            ok,
        });
    }
}
