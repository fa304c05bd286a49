//! `meridian simulate`: synthetic clients around the world against the
//! cluster (a running `cluster up`, or one started here with `--spawn`),
//! nearest edge against random edge against straight to the origin; prints
//! the tables and writes the HTML report.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use meridian_cluster::config::DEFAULT_CONFIG;
use meridian_cluster::run::Cluster;
use meridian_common::HumanDuration;
use meridian_simulate::run::{Settings, Target};
use meridian_simulate::{CpuUse, Routing, Scenario, WorkloadParams, cpu, report};

#[derive(clap::Args)]
pub struct SimulateArgs {
    /// The cluster file (its edges, latency model, geo database, sample site).
    #[arg(long, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// Start the cluster in this process (on ports from the OS) instead of
    /// driving a running `meridian cluster up`.
    #[arg(long)]
    spawn: bool,
    /// Synthetic clients, each with its own address and keep-alive connection.
    #[arg(long, default_value_t = 2000)]
    clients: u32,
    /// Requests per routing (each routing replays the same ones).
    #[arg(long, default_value_t = 20_000)]
    requests: u64,
    /// The workload's seed: the same seed gives the same clients and requests.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The window clients arrive and make their requests in, per routing.
    #[arg(long, default_value = "8s")]
    duration: HumanDuration,
    /// steady, purge (a tag purge at half time), origin-outage (the origin
    /// fails for the middle third), edge-down (an edge stops at a third).
    #[arg(long, default_value = "steady")]
    scenario: Scenario,
    /// The edge `edge-down` stops [default: the busiest with its own address].
    #[arg(long)]
    edge: Option<String>,
    /// The tag `purge` purges [default: the most requested section].
    #[arg(long)]
    purge_tag: Option<String>,
    /// Zipf exponent of asset popularity.
    #[arg(long, default_value_t = 1.0)]
    zipf: f64,
    /// Only these routings, comma separated: director, random, origin.
    #[arg(long, value_delimiter = ',', value_parser = parse_routing)]
    routing: Option<Vec<Routing>>,
    /// Where to write the HTML report.
    #[arg(long, default_value = "report.html")]
    report: PathBuf,
    /// Also write the report's figures as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also write every request (routing, client, start, latency, status,
    /// which tier answered, bytes, server) as CSV here.
    #[arg(long)]
    samples: Option<PathBuf>,
    /// The simulator's runtime threads (the cluster's, with --spawn, are apart).
    #[arg(long, default_value_t = 2)]
    workers: usize,
}

fn parse_routing(s: &str) -> Result<Routing, String> {
    Routing::ALL
        .into_iter()
        .find(|r| format!("{r:?}").eq_ignore_ascii_case(s.trim()))
        .ok_or_else(|| format!("`{s}` is not a routing: director, random or origin"))
}

pub fn main(a: SimulateArgs) -> anyhow::Result<()> {
    anyhow::ensure!(a.clients > 0, "--clients must be at least 1");
    anyhow::ensure!(
        a.requests >= u64::from(a.clients),
        "--requests ({}) must be at least --clients ({}): every client makes a request",
        a.requests,
        a.clients
    );
    anyhow::ensure!(
        a.zipf.is_finite() && a.zipf > 0.0,
        "--zipf must be a positive number"
    );
    let config = super::cluster::load(&a.config)?;
    let params = WorkloadParams {
        seed: a.seed,
        clients: a.clients,
        requests: a.requests,
        duration_ms: u64::try_from(a.duration.get().as_millis()).unwrap_or(u64::MAX),
        zipf_s: a.zipf,
    };
    let t = Instant::now();
    let (workload, database) = meridian_simulate::workload_for(&config, params)?;
    eprintln!(
        "meridian: {} clients, {} requests per routing (seed {}), drawn in {:.0} ms from {database}",
        workload.clients.len(),
        workload.requests(),
        a.seed,
        t.elapsed().as_secs_f64() * 1000.0
    );
    let settings = Settings {
        scenario: a.scenario,
        edge_down: a.edge.clone(),
        purge_tag: a.purge_tag.clone(),
        bucket_ms: None,
        progress: true,
        routings: a.routing.clone(),
    };

    // The cluster (with --spawn) runs on its own runtime, so the
    // simulator's threads, counted for its CPU use, are its own.
    let cluster_rt = if a.spawn {
        Some(super::runtime(None)?)
    } else {
        None
    };
    // A spawned cluster keeps its token and purge log in a directory of
    // its own, not the file's (which a running `cluster up` may be using).
    let spawn_state =
        std::env::temp_dir().join(format!("meridian-simulate-{}", std::process::id()));
    let spawned = match &cluster_rt {
        Some(rt) => {
            let mut c = config.clone().with_ephemeral_ports();
            c.state_dir = spawn_state.clone();
            Some(rt.block_on(Cluster::start(c))?)
        }
        None => None,
    };
    let target = match &spawned {
        Some(c) => Target {
            dashboard: c.dashboard(),
            token: c.token().to_owned(),
            config: config.clone(),
            label: "spawned in-process".into(),
            database: database.clone(),
        },
        None => Target {
            dashboard: config.dashboard,
            token: super::cluster::read_token(&config)?,
            config: config.clone(),
            label: format!("`meridian cluster up` at http://{}", config.dashboard),
            database: database.clone(),
        },
    };
    let sim_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.workers.max(1))
        .thread_name(cpu::THREAD_NAME)
        .enable_all()
        .build()?;
    let result = sim_rt.block_on(meridian_simulate::run::run_detailed(
        &target, &workload, &settings,
    ));
    let cpu_used = cpu::sim_threads_cpu();
    drop(sim_rt);
    if let (Some(rt), Some(c)) = (cluster_rt, spawned) {
        rt.block_on(c.shutdown());
        let _ = std::fs::remove_dir_all(&spawn_state);
    }
    let (mut report, detail) = result?;
    report.params.sim_cpu = cpu_used.map(|c| cpu_use(c, report.params.wall_ms));

    println!("{}", report::text(&report));
    std::fs::write(&a.report, report::html(&report))
        .with_context(|| format!("cannot write the report to {}", a.report.display()))?;
    if let Some(path) = &a.json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json)
            .with_context(|| format!("cannot write the figures to {}", path.display()))?;
    }
    if let Some(path) = &a.samples {
        std::fs::write(path, detail.csv(&workload))
            .with_context(|| format!("cannot write the samples to {}", path.display()))?;
    }
    println!("report: {}", a.report.display());
    Ok(())
}

fn cpu_use(cpu: Duration, wall_ms: u64) -> CpuUse {
    let cpu_ms = u64::try_from(cpu.as_millis()).unwrap_or(u64::MAX);
    CpuUse {
        cpu_ms,
        percent_of_core: if wall_ms == 0 {
            0.0
        } else {
            cpu_ms as f64 * 100.0 / wall_ms as f64
        },
    }
}
