//! `meridian simulate`: what users around the world would see through the
//! cluster, against the alternatives, on one seeded workload.
//!
//! ```text
//!  geo database ─► client addresses, weighted by internet users per country (weights)
//!  sample site  ─► assets, Zipf popularity, think times                      (workload)
//!          │
//!          ▼ replayed three times on the same cluster, caches emptied between:
//!     nearest edge (director) · random edge · straight to origin             (run)
//!          │  each client: up to six keep-alive connections, the client-to-server leg
//!          │  delayed by the distance (the cluster's latency model), sleeps not arithmetic
//!          ▼
//!     per request: latency, status, which tier answered (Cache-Status)      (stats)
//!          ▼
//!     Report ─► printed tables, self-contained HTML with inline SVG          (report)
//! ```
//!
//! Crates picked here: `rand_pcg` (PCG, a fixed algorithm, so a seed gives
//! the same workload on every machine and every `rand` release, which
//! `StdRng` does not promise) with `rand_distr` for Zipf and exponential
//! draws; `indicatif` for the progress bar (it stays quiet when stderr is
//! not a terminal); the client side is hyper's own connection API rather
//! than reqwest, so the simulator knows when a connection is new (and owes
//! its handshake's round trip) and which one a request goes out on.

pub mod cpu;
pub mod model;
pub mod report;
pub mod run;
pub mod soak;
pub mod stats;
pub mod weights;
pub mod workload;

pub use model::*;

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("geo database: {0}")]
    Geo(String),
    #[error("workload: {0}")]
    Workload(String),
    #[error("cluster: {0}")]
    Cluster(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// The workload for a cluster file: its sample site's assets (the site of
/// its `seed`) and addresses from its director's geo database. Answers the
/// database's description with it.
pub fn workload_for(
    config: &meridian_cluster::config::ClusterConfig,
    params: WorkloadParams,
) -> Result<(Workload, String), Error> {
    let paths: Vec<std::path::PathBuf> = config
        .director
        .geoip
        .iter()
        .map(|p| meridian_cluster::run::resolve_shipped(p))
        .collect();
    let places = workload::Places::open_shared(&paths)?;
    let site = meridian_origin::SampleSite::generate(config.seed);
    let assets = workload::site_assets(&site);
    let w = workload::generate(&params, &assets, &places)?;
    Ok((w, places.describe()))
}
