//! `meridian purge`: sends a purge to the cluster purge log and prints each
//! node's confirmation; `--status` prints every node's sync. The log and
//! the nodes come from the cluster file (`[purge-log] url`, else the
//! director's `admin-listen`; `[[shield]]` and `[[edge]]`).
//!
//! Also the `--control` / `--purge-max-lag` flags of `meridian edge` and
//! `meridian shield` ([`FollowFlags`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use meridian_common::HumanDuration;
use meridian_common::auth::TOKEN_ENV;
use meridian_geo_director::Config;
use meridian_purge::{NodeRef, Purge, Report, Status};

#[derive(clap::Args)]
pub struct PurgeArgs {
    /// The cluster file: the log's location and the nodes to wait for.
    #[arg(long, default_value = "config/cluster.toml")]
    config: PathBuf,
    /// Purge this URL (every Vary variant); repeatable.
    #[arg(long = "url", value_name = "URL")]
    urls: Vec<String>,
    /// Purge everything under host plus path prefix; repeatable.
    #[arg(long = "prefix", value_name = "HOST/PATH")]
    prefixes: Vec<String>,
    /// Purge everything tagged (Surrogate-Key, Cache-Tag); repeatable.
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Purge everything.
    #[arg(long)]
    all: bool,
    /// Mark stale instead of removing (the next request revalidates).
    #[arg(long)]
    soft: bool,
    /// How long to wait for every node's confirmation.
    #[arg(long, default_value = "5s")]
    deadline: HumanDuration,
    /// File whose first line is the token [default: $MERIDIAN_ADMIN_TOKEN].
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Print every node's sync with the log instead of purging.
    #[arg(long, conflicts_with_all = ["urls", "prefixes", "tags", "all", "soft"])]
    status: bool,
    /// Send the purge this many times, one after the other, and print the
    /// time to the last confirmation (median, p99, min, max).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    repeat: u32,
}

/// Where the log is and who follows it, from the cluster file.
struct Cluster {
    log: String,
    nodes: Vec<NodeRef>,
}

fn cluster(path: &Path) -> anyhow::Result<Cluster> {
    let config = Config::load(path)?;
    let log = match (&config.purge_log.url, config.admin_listen) {
        (Some(url), _) => url.clone(),
        (None, Some(addr)) => format!("http://{addr}"),
        (None, None) => bail!(
            "{}: no purge log: set [purge-log] url, or [director] admin-listen for the \
             director's own log",
            path.display()
        ),
    };
    Ok(Cluster {
        log,
        nodes: meridian_geo_director::purge_log::nodes(&config),
    })
}

fn token(file: Option<&Path>) -> anyhow::Result<Option<String>> {
    match file {
        Some(f) => {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("--token-file {}", f.display()))?;
            let t = text.lines().next().unwrap_or("").trim().to_owned();
            if t.is_empty() {
                bail!("--token-file {}: the first line is empty", f.display());
            }
            Ok(Some(t))
        }
        None => Ok(std::env::var(TOKEN_ENV)
            .ok()
            .filter(|t| !t.trim().is_empty())),
    }
}

pub fn main(args: PurgeArgs) -> anyhow::Result<()> {
    let cluster = cluster(&args.config)?;
    let token = token(args.token_file.as_deref())?;
    let rt = super::runtime(Some(1))?;
    if args.status {
        let status = rt.block_on(meridian_purge::status(
            &cluster.log,
            token.as_deref(),
            &cluster.nodes,
        ))?;
        print!("{}", status_table(&status));
        return Ok(());
    }
    let purge = Purge {
        urls: args.urls.clone(),
        prefixes: args.prefixes.clone(),
        tags: args.tags.clone(),
        all: args.all,
        soft: args.soft,
    };
    if let Err(e) = purge.validate() {
        bail!("{e} (--url, --prefix, --tag or --all)");
    }
    let deadline = args.deadline.get();
    let mut times = Vec::with_capacity(args.repeat as usize);
    let mut last = None;
    for _ in 0..args.repeat {
        let started = Instant::now();
        let report = rt.block_on(meridian_purge::publish(
            &cluster.log,
            token.as_deref(),
            &purge,
            &cluster.nodes,
            deadline,
        ))?;
        times.push(started.elapsed());
        let unconfirmed = report.unconfirmed().len();
        last = Some(report);
        if unconfirmed > 0 {
            break;
        }
    }
    let Some(report) = last else {
        bail!("nothing was sent");
    };
    print!("{}", report_table(&report));
    if args.repeat > 1 {
        println!("{}", summary(&mut times));
    }
    let unconfirmed = report.unconfirmed();
    if !unconfirmed.is_empty() {
        bail!(
            "not confirmed within {}: {} (they apply it when they reach the log; until then \
             max-lag bounds what they serve)",
            args.deadline,
            unconfirmed.join(", ")
        );
    }
    Ok(())
}

fn report_table(r: &Report) -> String {
    use std::fmt::Write;
    let width = r
        .nodes
        .iter()
        .map(|n| n.node.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = format!(
        "{:<width$}  {:<6}  {:<7}  {:>8}  {:>9}\n",
        "node", "tier", "result", "entries", "ms"
    );
    for n in &r.nodes {
        let result = match n.result {
            meridian_purge::NodeOutcome::Applied => "applied",
            meridian_purge::NodeOutcome::Timeout => "timeout",
            meridian_purge::NodeOutcome::Failed => "failed",
        };
        let _ = writeln!(
            out,
            "{:<width$}  {:<6}  {:<7}  {:>8}  {:>9.1}{}",
            n.node,
            n.tier.as_str(),
            result,
            n.entries,
            n.ms,
            n.error
                .as_deref()
                .map(|e| format!("  {e}"))
                .unwrap_or_default()
        );
    }
    let applied = r.nodes.len() - r.unconfirmed().len();
    let entries: u64 = r.nodes.iter().map(|n| n.entries).sum();
    let _ = writeln!(
        out,
        "total: seq {}, {applied}/{} nodes applied, {entries} entries, {:.1} ms",
        r.seq,
        r.nodes.len(),
        r.ms
    );
    out
}

fn status_table(s: &Status) -> String {
    use std::fmt::Write;
    let width = s
        .nodes
        .iter()
        .map(|n| n.node.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = format!("log head: {}\n", s.head);
    let _ = writeln!(
        out,
        "{:<width$}  {:<6}  {:>8}  {:>6}  {:>10}  lagging",
        "node", "tier", "applied", "behind", "seen ms"
    );
    for n in &s.nodes {
        let seen = n
            .last_seen_ms
            .map_or_else(|| "never".to_owned(), |m| m.to_string());
        let _ = writeln!(
            out,
            "{:<width$}  {:<6}  {:>8}  {:>6}  {:>10}  {}",
            n.node,
            n.tier.as_str(),
            n.applied,
            n.behind,
            seen,
            if n.lagging { "yes" } else { "no" }
        );
    }
    out
}

/// Median, p99 (nearest rank), min and max of `times`, in ms.
fn summary(times: &mut [Duration]) -> String {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let rank = |p: f64| {
        let i = ((p * times.len() as f64).ceil() as usize).clamp(1, times.len());
        ms(times[i - 1])
    };
    match (times.first(), times.last()) {
        (Some(&min), Some(&max)) => format!(
            "{} purges: median {:.1} ms, p99 {:.1} ms, min {:.1} ms, max {:.1} ms",
            times.len(),
            rank(0.5),
            rank(0.99),
            ms(min),
            ms(max)
        ),
        _ => "no purges".to_owned(),
    }
}

/// `--control` / `--purge-max-lag`, flattened into `meridian edge` and
/// `meridian shield`.
#[derive(clap::Args)]
pub struct FollowFlags {
    /// Follow the cluster purge log here: the director's admin URL
    /// (http://HOST:PORT) or nats://HOST:PORT [config `purge.log`, default none].
    #[arg(long, value_name = "URL")]
    pub control: Option<String>,
    /// Revalidate what was fetched before this long ago while the log is
    /// unheard from for this long, e.g. 5s [config `purge.max-lag`, default 5s].
    #[arg(long, value_name = "DURATION")]
    pub purge_max_lag: Option<HumanDuration>,
}

impl FollowFlags {
    /// Puts the flags given over the file's `[purge]` section.
    pub fn apply(&self, purge: &mut meridian_proxy::config::PurgeSection) {
        if self.control.is_some() {
            purge.log = self.control.clone();
        }
        if self.purge_max_lag.is_some() {
            purge.max_lag = self.purge_max_lag;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p99_is_the_nearest_rank() {
        let mut t: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let s = summary(&mut t);
        assert!(
            s.contains("median 50.0 ms") && s.contains("p99 99.0 ms"),
            "{s}"
        );
        assert!(
            s.contains("min 1.0 ms") && s.contains("max 100.0 ms"),
            "{s}"
        );
    }

    #[test]
    fn the_example_cluster_file_names_the_log_and_every_node() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/cluster.toml");
        let c = cluster(&path).expect("config/cluster.toml");
        assert!(c.log.starts_with("http://"), "{}", c.log);
        assert_eq!(
            c.nodes[0].tier,
            meridian_purge::Tier::Shield,
            "shields first"
        );
        assert!(c.nodes.iter().any(|n| n.tier == meridian_purge::Tier::Edge));
    }
}
