//! `meridian cluster up|stop|start|slow|fail|heal|status`: the whole
//! multi-region CDN in this process (`up`), and the faults a user can set
//! on its nodes while it runs (the others, through the dashboard's control
//! API with the token `up` wrote to its state directory).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use meridian_cluster::config::{ClusterConfig, DEFAULT_CONFIG};
use meridian_cluster::control::Action;
use meridian_cluster::run::{Cluster, TOKEN_FILE};
use meridian_common::HumanDuration;

#[derive(clap::Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(clap::Subcommand)]
enum ClusterCommand {
    /// Start the whole cluster (origin, shields, edges, director, purge log,
    /// dashboard) in this process, until Ctrl-C.
    Up {
        #[command(flatten)]
        file: FileArg,
        /// Validate the cluster file and exit.
        #[arg(long)]
        check_config: bool,
        /// Runtime worker threads [default: one per core].
        #[arg(long)]
        workers: Option<usize>,
        /// Edges also listen on HTTPS, with certificates from a local CA
        /// made at start (its path is printed) [config `cluster.https`].
        #[arg(long)]
        https: bool,
        /// Every shield and edge runs as its own `meridian shield|edge`
        /// child process, so `stop` is a real SIGKILL and `start` a
        /// respawn [config `cluster.processes`].
        #[arg(long)]
        processes: bool,
    },
    /// Stop a node: its listeners close and its cache is lost.
    Stop(NodeArg),
    /// Start a stopped node again, on the same addresses, with an empty cache.
    Start(NodeArg),
    /// Add round-trip delay to every hop into a node.
    Slow {
        #[command(flatten)]
        node: NodeArg,
        /// How much (round trip).
        #[arg(long, default_value = "200ms")]
        by: HumanDuration,
    },
    /// Make a node answer every request with 503.
    Fail(NodeArg),
    /// Clear `slow` and `fail` on a node.
    Heal(NodeArg),
    /// Print every node and its state.
    Status {
        #[command(flatten)]
        file: FileArg,
    },
}

#[derive(clap::Args)]
struct FileArg {
    /// The cluster file.
    #[arg(long, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
}

#[derive(clap::Args)]
struct NodeArg {
    /// The node's name (see `meridian cluster status`).
    node: String,
    #[command(flatten)]
    file: FileArg,
}

pub fn main(args: ClusterArgs) -> anyhow::Result<()> {
    match args.command {
        ClusterCommand::Up {
            file,
            check_config,
            workers,
            https,
            processes,
        } => up(&file.config, check_config, workers, https, processes),
        ClusterCommand::Stop(n) => act(&n, "stop"),
        ClusterCommand::Start(n) => act(&n, "start"),
        ClusterCommand::Slow { node, by } => act(&node, &format!("slow={}", fmt_ms(by.get()))),
        ClusterCommand::Fail(n) => act(&n, "fail"),
        ClusterCommand::Heal(n) => act(&n, "heal"),
        ClusterCommand::Status { file } => status(&file.config),
    }
}

fn fmt_ms(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// The cluster file: as given, else (for the default name) the copy in the
/// source tree this binary was built from, so `cargo run -- cluster up`
/// works from any folder of the repository.
pub(crate) fn load(path: &Path) -> anyhow::Result<ClusterConfig> {
    let built_in = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_CONFIG);
    let path = if !path.exists() && path == Path::new(DEFAULT_CONFIG) && built_in.exists() {
        built_in.as_path()
    } else {
        path
    };
    Ok(ClusterConfig::load(path)?)
}

fn up(
    path: &Path,
    check_config: bool,
    workers: Option<usize>,
    https: bool,
    processes: bool,
) -> anyhow::Result<()> {
    let mut config = load(path)?;
    config.https |= https;
    config.processes |= processes;
    if check_config {
        println!(
            "{}: configuration OK ({} edges in {} regions, {} shields)",
            config.source,
            config.edges.len(),
            config
                .edges
                .iter()
                .map(|e| e.place.region.as_str())
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            config.shields.len()
        );
        return Ok(());
    }
    super::runtime(workers)?.block_on(async move {
        let cluster = Cluster::start(config).await?;
        println!("{}", meridian_cluster::summary::summary(&cluster));
        tokio::select! {
            _ = meridian_common::shutdown_signal() => {}
            _ = cluster.wait() => {}
        }
        eprintln!("meridian: stopping the cluster");
        cluster.shutdown().await;
        Ok(())
    })
}

/// Asks the running cluster's control API (on the dashboard port) to act.
fn act(n: &NodeArg, action: &str) -> anyhow::Result<()> {
    // Checks the action the same way the server will.
    action.parse::<Action>().map_err(|e| anyhow::anyhow!(e))?;
    let config = load(&n.file.config)?;
    let token = read_token(&config)?;
    let url = format!(
        "http://{}/api/nodes/{}/{}",
        config.dashboard, n.node, action
    );
    let (code, body) = blocking(async {
        let r = client()?
            .post(&url)
            .bearer_auth(&token)
            .send()
            .await
            .with_context(|| not_running(&config))?;
        let code = r.status();
        Ok((code, r.text().await.unwrap_or_default()))
    })?;
    if !code.is_success() {
        bail!("{} {}: {}", n.node, action, body.trim());
    }
    println!("{}: {}", n.node, body.trim());
    Ok(())
}

fn status(path: &Path) -> anyhow::Result<()> {
    let config = load(path)?;
    let url = format!("http://{}/api/state", config.dashboard);
    // Right after `up` the first poll may not have finished: wait for it.
    let mut nodes = Vec::new();
    for attempt in 0..10 {
        let body = blocking(async {
            let r = client()?
                .get(&url)
                .send()
                .await
                .with_context(|| not_running(&config))?;
            Ok(r.text().await.unwrap_or_default())
        })?;
        let v: serde_json::Value =
            serde_json::from_str(&body).context("the dashboard's /api/state")?;
        nodes = v["nodes"].as_array().cloned().unwrap_or_default();
        if !nodes.is_empty() || attempt == 9 {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    println!(
        "  {:<14} {:<9} {:<13} {:<10} {:>8}",
        "NODE", "KIND", "REGION", "STATE", "REQ/S"
    );
    for n in nodes {
        let get = |k: &str| n[k].as_str().map(str::to_owned).unwrap_or_default();
        let state = n["state"].as_str().unwrap_or("?").to_owned();
        println!(
            "  {:<14} {:<9} {:<13} {:<10} {:>8.1}",
            get("name"),
            get("kind"),
            get("region"),
            state,
            n["rps"].as_f64().unwrap_or(0.0)
        );
    }
    Ok(())
}

fn not_running(config: &ClusterConfig) -> String {
    format!(
        "no cluster answers on {} (cluster.dashboard in {}): start it with `meridian cluster up`",
        config.dashboard, config.source
    )
}

pub(crate) fn read_token(config: &ClusterConfig) -> anyhow::Result<String> {
    if let Ok(t) = std::env::var(meridian_common::auth::TOKEN_ENV)
        && !t.trim().is_empty()
    {
        return Ok(t.trim().to_owned());
    }
    let path = config.state_dir.join(TOKEN_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read the cluster's token from {} (is `meridian cluster up` running?)",
            path.display()
        )
    })?;
    Ok(text.lines().next().unwrap_or_default().trim().to_owned())
}

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(15))
        .build()?)
}

fn blocking<T>(f: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    super::runtime(Some(1))?.block_on(f)
}
