//! The `meridian` binary: parses the command line, loads config, starts
//! tracing and hands over to the service libraries in `crates/`.
//!
//! # Allocator
//!
//! The binary allocates with jemalloc, with its background purging threads
//! turned on at startup, because a cache node must give memory back once a
//! burst is over: large misses and slow clients hold many buffers for a
//! while and then free them all at once. `scripts/rss-check.sh` measures it
//! (40 slow clients on distinct 60 MiB misses, default settings, 240 MiB
//! left in the cache; figures in the README). A minute after the clients
//! left, RSS was:
//!
//! - glibc malloc: 580–955 MiB. Blocks above its mmap threshold go back at
//!   once, but freed smaller chunks stay in the per-thread arenas, which are
//!   trimmed only from the top (issue 8 saw 2.25 GB stay resident).
//! - mimalloc: 2.4–4.0 GiB, the peak, for the whole minute: it purges a
//!   thread's freed pages when that thread allocates again, and the threads
//!   of an idle node do not.
//! - jemalloc: 330–515 MiB, reached within 10 s. It returns freed pages on a
//!   decay schedule (`dirty_decay_ms`, 10 s by default; with
//!   `MADV_DONTNEED`, so RSS really falls). Without background threads that
//!   purging, too, happens only inside later allocations, so they are
//!   switched on here through `tikv-jemalloc-ctl` (the workspace forbids
//!   `unsafe`, which an exported `malloc_conf` symbol would need).
//!
//! The price: pages freed during a burst wait out the decay before they go,
//! so the peak can be higher than glibc's (2.7–4.2 against 2.7–2.9 GiB in
//! that test); bounding the memory of fills in flight is the engine's job.
//! Tuning without a rebuild: the symbols are prefixed, so the variable is
//! `_RJEM_MALLOC_CONF` (for example `_RJEM_MALLOC_CONF=dirty_decay_ms:1000`
//! returns memory sooner at the cost of more page faults). `cargo build
//! --no-default-features` uses the system allocator (MSVC targets always do).

use clap::{Parser, Subcommand};

mod cli;

#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Turns on jemalloc's background threads, which purge freed pages on the
/// decay schedule even while no request allocates (see the module docs). A
/// failure costs memory, not correctness: it is logged and the node runs.
fn start_allocator_purging() {
    #[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::warn!("jemalloc background purging is off: {e}");
    }
}

#[derive(Parser)]
#[command(
    name = "meridian",
    version,
    about = "Meridian: a caching CDN — edge, origin shield and geo director"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run an edge node: a caching reverse proxy in front of an upstream.
    Edge(cli::edge::EdgeArgs),
    /// Run a small static origin that serves files from a folder (for demos, tests, benchmarks).
    Origin(cli::origin::OriginArgs),
    /// Run an origin shield: a caching tier in front of load-balanced origins.
    Shield(cli::shield::ShieldArgs),
    /// Run the geo director: sends each client to its nearest healthy edge.
    Director(cli::director::DirectorArgs),
    /// Purge URLs, prefixes, tags or everything on every node of the cluster.
    Purge(cli::purge::PurgeArgs),
    /// Run a whole multi-region CDN on this machine (`cluster up`), and
    /// stop, start, slow or fail its nodes while it runs.
    Cluster(cli::cluster::ClusterArgs),
    /// Drive the cluster with synthetic clients around the world: nearest
    /// edge, random edge and straight to the origin, with an HTML report.
    Simulate(cli::simulate::SimulateArgs),
    /// A bounded chaos run against a running `cluster up --processes`:
    /// mixed traffic, purges, kills and outages, every body checked.
    Soak(cli::soak::SoakArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    cli::init_tracing();
    start_allocator_purging();
    // Every connection and every body sent from a file is a descriptor: the
    // soft limit (often 1,024) is raised to the hard one, as nginx's
    // `worker_rlimit_nofile` is set by hand and Go's runtime does at start.
    let files = meridian_sendfile::raise_open_files_limit();
    tracing::debug!(?files, "open-files limit");
    let result = match cli.command {
        Command::Edge(a) => cli::edge::main(a),
        Command::Origin(a) => cli::origin::main(a),
        Command::Shield(a) => cli::shield::main(a),
        Command::Director(a) => cli::director::main(a),
        Command::Purge(a) => cli::purge::main(a),
        Command::Cluster(a) => cli::cluster::main(a),
        Command::Simulate(a) => cli::simulate::main(a),
        Command::Soak(a) => cli::soak::main(a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("meridian: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
