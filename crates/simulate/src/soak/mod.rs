//! `meridian soak`: a bounded chaos run against a `meridian cluster up
//! --processes` cluster, checking every answer.
//!
//! ```text
//!  workers (closed loop) ─► fronts of every edge region: full GETs in every
//!     Accept-Encoding (Vary), ranges (the 32 MiB video too), If-None-Match,
//!     HEAD, unique misses (?soak=N) ─► each body compared with the asset
//!  chaos (a fixed timeline, fractions of --duration) ─► purges of every kind,
//!     origin slow, shield SIGKILL + restart (twice), edge stop + start,
//!     origin failing
//!  probe (around each shield kill) ─► hot set and fresh misses on every front
//!  sampler (every 5 s) ─► RSS and fds of every node process
//! ```
//!
//! An error inside a fault's window (plus a grace of two health intervals)
//! is put down to that fault; anything else, any wrong byte, any error on
//! the hot set while a shield is down, any panic in a log, a node's RSS
//! above the cache size plus the margin or its descriptors growing fails
//! the run. Every loop is bounded by the deadline or a count.

mod check;
mod plan;
mod procs;
mod report;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meridian_cluster::config::ClusterConfig;
use meridian_origin::{Asset, SampleSite};
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

pub use check::{Verdict, cache_outcome, verify};
pub use plan::{Event, Fault, Window, timeline};
pub use report::{Figures, Report};

/// What a soak run does.
#[derive(Debug, Clone)]
pub struct Settings {
    pub config: ClusterConfig,
    pub duration: Duration,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// What a node's RSS may be above `cluster.cache-size`.
    pub rss_margin: u64,
    /// What a node's descriptors may grow by between its first sample and
    /// its last (pooled connections come and go).
    pub fd_slack: u64,
    /// The `cluster up` process, sampled as the nodes are.
    pub cluster_pid: Option<u32>,
    /// More logs to scan for panics (the cluster's own).
    pub logs: Vec<PathBuf>,
    /// Waited after the traffic stops before the last samples.
    pub settle: Duration,
    pub seed: u64,
    pub progress: bool,
}

/// What one request was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Full,
    Range,
    Conditional,
    Head,
    Miss,
    /// The failover probe's hot set (cached everywhere before the kill).
    Hot,
    /// The failover probe's fresh misses.
    ProbeMiss,
}

/// One failed request.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Failure {
    pub at: f64,
    pub kind: Kind,
    pub cause: String,
    pub url: String,
}

/// Everything the workers and the probe record.
#[derive(Default)]
pub(crate) struct Tally {
    pub requests: AtomicU64,
    pub bytes_checked: AtomicU64,
    pub outcomes: Mutex<BTreeMap<(Kind, &'static str), u64>>,
    pub failures: Mutex<Vec<Failure>>,
    /// Requests (not unique misses) during the origin outage: served,
    /// served stale-if-error, failed.
    pub outage: Mutex<[u64; 3]>,
    pub probe: Mutex<Vec<plan::ProbeRecord>>,
}

/// The most failures kept in full (all are counted).
const KEEP_FAILURES: usize = 20_000;

impl Tally {
    fn fail(&self, f: Failure) {
        if let Ok(mut v) = self.failures.lock()
            && v.len() < KEEP_FAILURES
        {
            v.push(f);
        }
    }
    fn outcome(&self, kind: Kind, what: &'static str) {
        if let Ok(mut m) = self.outcomes.lock() {
            *m.entry((kind, what)).or_default() += 1;
        }
    }
}

/// The shared state of a run.
pub(crate) struct Run {
    pub client: reqwest::Client,
    pub site: SampleSite,
    /// Assets for full GETs (not the big video), most popular first.
    pub small: Vec<usize>,
    /// The front URLs (`http://127.0.0.1:8101`), one per edge region.
    pub fronts: Vec<String>,
    pub start: Instant,
    pub deadline: Instant,
    pub tally: Tally,
    pub miss_seq: AtomicU64,
    /// The origin is failing now (for the stale-if-error figure).
    pub origin_down: AtomicBool,
    pub dashboard: String,
    pub purge_log: String,
    pub token: String,
}

impl Run {
    pub(crate) fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }
}

/// Why the soak could not run (a failed check is a [`Report`], not this).
#[derive(Debug, thiserror::Error)]
pub enum SoakError {
    #[error("{0}")]
    Setup(String),
}

/// Runs the soak against the cluster `settings.config` describes (it must
/// be running, with `--processes` for real kills and per-node figures).
pub async fn run(settings: Settings) -> Result<Report, SoakError> {
    let c = &settings.config;
    let token_path = c.state_dir.join(meridian_cluster::run::TOKEN_FILE);
    let token = std::env::var(meridian_common::auth::TOKEN_ENV)
        .ok()
        .filter(|t| t.trim().len() >= 16)
        .or_else(|| {
            std::fs::read_to_string(&token_path)
                .ok()
                .and_then(|t| t.lines().next().map(|l| l.trim().to_owned()))
        })
        .ok_or_else(|| {
            SoakError::Setup(format!(
                "no token in {} (is `meridian cluster up` running with this file?)",
                token_path.display()
            ))
        })?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(settings.concurrency.max(4))
        .build()
        .map_err(|e| SoakError::Setup(e.to_string()))?;
    let site = SampleSite::generate(c.seed);
    let small: Vec<usize> = site
        .assets()
        .iter()
        .enumerate()
        .filter(|(_, a)| a.len <= 4 << 20)
        .map(|(i, _)| i)
        .collect();
    let fronts = c
        .fronts
        .iter()
        .map(|f| format!("http://{}", f.addr))
        .collect();
    let start = Instant::now();
    let run = Arc::new(Run {
        client,
        site,
        small,
        fronts,
        start,
        deadline: start + settings.duration,
        tally: Tally::default(),
        miss_seq: AtomicU64::new(0),
        origin_down: AtomicBool::new(false),
        dashboard: format!("http://{}", c.dashboard),
        purge_log: format!("http://{}", c.director_admin()),
        token,
    });
    // The cluster answers before anything starts.
    plan::wait_ready(&run).await?;

    let events = timeline(settings.duration, c);
    let nodes_dir = c.state_dir.join(meridian_cluster::run::NODES_DIR);
    let samples: Arc<Mutex<BTreeMap<String, Vec<procs::Sample>>>> = Arc::default();
    let sampler = tokio::spawn(sample_loop(
        Arc::clone(&run),
        nodes_dir.clone(),
        settings.cluster_pid,
        Arc::clone(&samples),
    ));
    let mut workers = Vec::new();
    for w in 0..settings.concurrency.max(1) {
        let run = Arc::clone(&run);
        let seed = settings.seed.wrapping_mul(1000).wrapping_add(w as u64);
        workers.push(tokio::spawn(async move { worker(run, seed).await }));
    }
    let bar = report::bar(settings.progress, settings.duration);
    let driven = plan::drive(&run, &events, c, bar.as_ref()).await;
    for w in workers {
        let _ = w.await;
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    // Let allocators give back what the burst took, and pools go idle.
    tokio::time::sleep(settings.settle).await;
    sampler.abort();
    let t = run.start.elapsed();
    let mut all = samples.lock().map(|s| s.clone()).unwrap_or_default();
    for (name, pid) in node_pids(&nodes_dir, settings.cluster_pid) {
        if let Some(s) = procs::sample(pid, t) {
            all.entry(name).or_default().push(s);
        }
    }
    let logs = procs::logs(&nodes_dir, &settings.logs);
    let panics = procs::panics(&logs, 5);
    Ok(report::build(&settings, &run, &driven, all, logs, panics))
}

fn node_pids(nodes_dir: &std::path::Path, cluster: Option<u32>) -> BTreeMap<String, u32> {
    let mut pids = procs::child_pids(nodes_dir);
    if let Some(p) = cluster {
        pids.insert("cluster-up".into(), p);
    }
    pids
}

async fn sample_loop(
    run: Arc<Run>,
    nodes_dir: PathBuf,
    cluster: Option<u32>,
    out: Arc<Mutex<BTreeMap<String, Vec<procs::Sample>>>>,
) {
    // Bounded by the deadline (and aborted after it).
    while Instant::now() < run.deadline {
        let t = run.start.elapsed();
        for (name, pid) in node_pids(&nodes_dir, cluster) {
            if let (Some(s), Ok(mut o)) = (procs::sample(pid, t), out.lock()) {
                o.entry(name).or_default().push(s);
            }
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// A popular-first pick: the square of a uniform draw leans to the front.
fn pick<R: Rng>(rng: &mut R, n: usize) -> usize {
    let u: f64 = rng.random();
    ((u * u) * n as f64) as usize % n.max(1)
}

const ENCODINGS: [&str; 6] = ["", "gzip", "br", "zstd", "gzip, br", "identity"];

async fn worker(run: Arc<Run>, seed: u64) {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    while Instant::now() < run.deadline {
        let front = &run.fronts[rng.random_range(0..run.fronts.len().max(1))];
        let roll: u32 = rng.random_range(0..100);
        let (kind, asset) = if roll < 15 {
            // A range: the big video a third of the time.
            let a = if rng.random_bool(0.33) {
                run.site.get(meridian_origin::sample::BIG_VIDEO)
            } else {
                run.site
                    .assets()
                    .get(run.small[pick(&mut rng, run.small.len())])
            };
            (Kind::Range, a)
        } else {
            let a = run
                .site
                .assets()
                .get(run.small[pick(&mut rng, run.small.len())]);
            let kind = match roll {
                15..25 => Kind::Conditional,
                25..30 => Kind::Head,
                30..40 => Kind::Miss,
                _ => Kind::Full,
            };
            (kind, a)
        };
        let Some(asset) = asset else { continue };
        let mut path = asset.path.clone();
        if kind == Kind::Miss {
            let n = run.miss_seq.fetch_add(1, Ordering::Relaxed);
            path = format!("{path}?soak={seed}-{n}");
        }
        let url = format!("{front}{path}");
        let mut req = if kind == Kind::Head {
            run.client.head(&url)
        } else {
            run.client.get(&url)
        };
        match kind {
            Kind::Range => {
                let len = asset.len.max(1);
                let a = rng.random_range(0..len);
                let b = (a + rng.random_range(0..(2u64 << 20))).min(len - 1);
                req = req.header("range", format!("bytes={a}-{b}"));
            }
            Kind::Conditional => req = req.header("if-none-match", &asset.etag),
            Kind::Full => {
                let e = ENCODINGS[rng.random_range(0..ENCODINGS.len())];
                if !e.is_empty() {
                    req = req.header("accept-encoding", e);
                }
            }
            _ => {}
        }
        let ok = fetch(&run, req, asset, kind, &url).await;
        if kind != Kind::Miss
            && run.origin_down.load(Ordering::Relaxed)
            && let Ok(mut o) = run.tally.outage.lock()
        {
            match ok {
                Some("stale-if-error") => o[1] += 1,
                Some(_) => o[0] += 1,
                None => o[2] += 1,
            }
        }
    }
}

/// Sends `req`, checks the answer against `asset`, records it; answers the
/// cache outcome if it was right, `None` if it failed.
pub(crate) async fn fetch(
    run: &Run,
    req: reqwest::RequestBuilder,
    asset: &Asset,
    kind: Kind,
    url: &str,
) -> Option<&'static str> {
    run.tally.requests.fetch_add(1, Ordering::Relaxed);
    let failed = |cause: String| {
        run.tally.fail(Failure {
            at: run.now(),
            kind,
            cause,
            url: url.to_owned(),
        });
        None
    };
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => return failed(report::io_cause(&e)),
    };
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = match resp.bytes().await {
        Ok(b) => b,
        Err(e) => return failed(format!("body: {}", report::io_cause(&e))),
    };
    let verdict = verify(
        asset,
        status,
        &headers,
        &body,
        kind == Kind::Conditional,
        kind == Kind::Head,
    );
    match verdict {
        Verdict::Ok => {
            run.tally
                .bytes_checked
                .fetch_add(body.len() as u64, Ordering::Relaxed);
            let o = cache_outcome(&headers);
            run.tally.outcome(kind, o);
            Some(o)
        }
        Verdict::Status(s) => {
            // What said no: the node in Cache-Status (or none: a relay).
            let who = headers
                .get("cache-status")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit(',').next())
                .and_then(|m| m.split(';').next())
                .map_or("no cache-status".to_owned(), |n| n.trim().to_owned());
            failed(format!("status {s} ({who})"))
        }
        Verdict::WrongBytes(why) => failed(format!("{}{why}", report::WRONG_BYTES)),
    }
}

/// The sample site's assets that a shield kill must not disturb once
/// cached: long-lived (`static`), small.
pub(crate) fn hot_set(site: &SampleSite, n: usize) -> Vec<&Asset> {
    site.assets()
        .iter()
        .filter(|a| a.section == "static" && a.len <= 256 << 10)
        .take(n)
        .collect()
}

pub(crate) fn wrong(cause: &str) -> bool {
    cause.starts_with(report::WRONG_BYTES)
}

/// For the report: which fault, if any, explains an error at `at`: of the
/// windows it falls in (grace included), the one that began last (a new
/// fault, not the tail of an old one).
pub(crate) fn explained(windows: &[Window], at: f64, kind: Kind) -> Option<&Window> {
    if kind == Kind::Hot {
        return None;
    }
    windows
        .iter()
        .filter(|w| at >= w.from && at <= w.until)
        .max_by(|a, b| a.from.total_cmp(&b.from))
}
