//! `meridian origin`: a small static file server for demos, tests and
//! benchmarks. It serves GET and HEAD from one folder with strong ETags,
//! Last-Modified, conditional requests and byte ranges, using the same RFC
//! 9110 code as the cache (`meridian_cache::{conditional, range}`) so the
//! edge and its test origin can never disagree about those rules.
//!
//! Files up to [`SMALL_FILE`] bytes are read into memory per request and
//! sliced; there is deliberately no in-process cache, because the kernel's
//! page cache already makes repeated reads cheap and a cache here would
//! have to track mtimes to stay correct. Larger files are streamed in
//! chunks, seeking to each requested range, so memory use stays bounded
//! whatever the file size.
//!
//! For benchmarks the origin can also play a slow one: a fixed delay before
//! each answer ([`OriginConfig::delay`]) and a send rate per response body
//! ([`OriginConfig::rate`]), which paces the bytes so that a 16 MiB file at
//! 8 MiB/s takes two seconds, with its first bytes sent at once.
//!
//! Instead of a folder it can serve a generated [`SampleSite`] (see
//! [`sample`]): a few hundred assets with a realistic mix of types, sizes,
//! TTLs and surrogate keys, for `meridian cluster up` and load tests.

use std::num::NonZeroU64;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use meridian_common::Shutdown;

/// Re-exported so callers can build [`OriginConfig`] without depending on `http`.
pub use http::HeaderValue;

mod body;
mod path;
pub mod sample;
mod serve;

pub use sample::{Asset, Counters, SampleSite, run_sample, sample_router};

/// Files at most this large are read whole; larger ones are streamed.
pub const SMALL_FILE: u64 = 1 << 20;

/// How the origin behaves; built by the CLI or a test.
#[derive(Debug, Clone)]
pub struct OriginConfig {
    /// The folder to serve. Nothing outside it is ever served.
    pub root: PathBuf,
    /// Sent verbatim as `Cache-Control` on every file response, if set.
    pub cache_control: Option<HeaderValue>,
    /// Waited before answering each request, to play a slow origin.
    pub delay: Duration,
    /// Bytes per second each response body is sent at, if set (every body
    /// is paced on its own; `None` sends as fast as the client reads).
    pub rate: Option<NonZeroU64>,
    /// Tag each file in a folder with that folder's name under the root
    /// (`a/b/c.txt` gets `Surrogate-Key: a`; files in the root get none),
    /// so tag purges can be tried against a plain folder.
    pub surrogate_key_by_dir: bool,
}

/// Why the origin could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("root {}: {source}", path.display())]
    Root {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("root {} is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error("serving HTTP: {0}")]
    Serve(#[source] std::io::Error),
}

/// Serves `config.root` on `listener` until `shutdown` fires; in-flight
/// requests are allowed to finish.
pub async fn run(
    listener: tokio::net::TcpListener,
    config: OriginConfig,
    shutdown: Shutdown,
) -> Result<(), Error> {
    let app = router(config).await?;
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "origin listening");
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.wait())
        .await
        .map_err(Error::Serve)
}

/// The origin as an axum `Router` (every path goes to one handler).
pub async fn router(config: OriginConfig) -> Result<Router, Error> {
    // Canonical once, so per-request containment checks compare like with like.
    let root = tokio::fs::canonicalize(&config.root)
        .await
        .map_err(|source| Error::Root {
            path: config.root.clone(),
            source,
        })?;
    if !tokio::fs::metadata(&root)
        .await
        .map_err(|source| Error::Root {
            path: config.root.clone(),
            source,
        })?
        .is_dir()
    {
        return Err(Error::NotADirectory { path: config.root });
    }
    let shared = Arc::new(serve::Shared {
        root,
        cache_control: config.cache_control,
        delay: config.delay,
        rate: config.rate,
        surrogate_key_by_dir: config.surrogate_key_by_dir,
    });
    Ok(Router::new().fallback(serve::handle).with_state(shared))
}
