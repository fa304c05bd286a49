//! `meridian soak`: a bounded chaos run against a running `meridian
//! cluster up --processes`, checking every answer; prints the report and
//! exits non-zero if a check failed (see `scripts/soak.sh`).

use std::path::PathBuf;

use anyhow::Context;
use meridian_cluster::config::DEFAULT_CONFIG;
use meridian_common::{ByteSize, HumanDuration};
use meridian_simulate::soak::{Settings, run};

#[derive(clap::Args)]
pub struct SoakArgs {
    /// The running cluster's file.
    #[arg(long, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// How long the traffic runs (the timeline scales with it).
    #[arg(long, default_value = "10m")]
    duration: HumanDuration,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// What a node's RSS may be above `cluster.cache-size`.
    #[arg(long, default_value = "160MiB")]
    rss_margin: ByteSize,
    /// What a node's open descriptors may grow by over the run.
    #[arg(long, default_value_t = 32)]
    fd_slack: u64,
    /// The `cluster up` process, sampled too.
    #[arg(long)]
    cluster_pid: Option<u32>,
    /// More logs to scan for panics (the cluster's own stderr); repeatable.
    #[arg(long = "log")]
    logs: Vec<PathBuf>,
    /// Waited after the traffic before the last samples.
    #[arg(long, default_value = "15s")]
    settle: HumanDuration,
    /// Seed of the workers' choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

pub fn main(a: SoakArgs) -> anyhow::Result<()> {
    let config = super::cluster::load(&a.config)?;
    anyhow::ensure!(
        a.duration.get().as_secs() >= 10,
        "--duration must be at least 10s"
    );
    anyhow::ensure!(
        (1..=512).contains(&a.concurrency),
        "--concurrency must be 1 to 512"
    );
    let settings = Settings {
        config,
        duration: a.duration.get(),
        concurrency: a.concurrency,
        rss_margin: a.rss_margin.bytes(),
        fd_slack: a.fd_slack,
        cluster_pid: a.cluster_pid,
        logs: a.logs,
        settle: a.settle.get(),
        seed: a.seed,
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let report = super::runtime(Some(2))?.block_on(run(settings))?;
    println!("{}", report.text());
    if let Some(p) = &a.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))?;
    }
    anyhow::ensure!(
        report.passed(),
        "the soak failed: {}",
        report.problems.join("; ")
    );
    Ok(())
}
