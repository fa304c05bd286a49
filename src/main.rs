//! The `meridian` binary: parses the command line, loads config, starts
//! tracing and hands over to the service libraries in `crates/`.
//!
//! # Allocator
//!
//! The binary allocates with jemalloc, with its background purging threads
//! turned on at startup, because a cache node must give memory back once a
//! burst is over. Large misses and slow clients hold many megabyte-sized
//! buffers for a while and then free them all at once. glibc's malloc keeps
//! such memory: freed chunks in the middle of a heap or a per-thread arena
//! are not returned to the OS (only the top of the main heap is trimmed), and
//! after the first large buffer is freed its mmap threshold rises to 32 MiB,
//! so later large bodies come from those arenas too. An edge that 40 slow
//! clients had pushed to gigabytes stayed there after they left. jemalloc
//! returns dirty pages to the OS on a decay schedule (`dirty_decay_ms`, 10 s
//! by default, with `MADV_DONTNEED`, so RSS really falls); without background
//! threads that purging happens only as a side effect of later allocations,
//! which an idle node does not make, so the threads are switched on here
//! through `tikv-jemalloc-ctl` (the workspace forbids `unsafe`, which an
//! exported `malloc_conf` symbol would need). `scripts/rss-check.sh` measures
//! the difference; the figures are in the README. mimalloc also returns
//! memory, but its purging is driven by the allocating threads as well and
//! it offers less to tune and inspect at run time; jemalloc is what Varnish,
//! Redis and TiKV ship with for the same workload shape.
//!
//! Tuning without a rebuild: the symbols are prefixed, so the environment
//! variable is `_RJEM_MALLOC_CONF` (for example
//! `_RJEM_MALLOC_CONF=dirty_decay_ms:1000`). `cargo build
//! --no-default-features` builds with the system allocator instead (MSVC
//! targets always use it).

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
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    cli::init_tracing();
    start_allocator_purging();
    let result = match cli.command {
        Command::Edge(a) => cli::edge::main(a),
        Command::Origin(a) => cli::origin::main(a),
        Command::Shield(a) => cli::shield::main(a),
        Command::Director(a) => cli::director::main(a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("meridian: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
