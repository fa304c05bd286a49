//! The Meridian edge: an HTTP caching reverse proxy (RFC 9111 shared cache)
//! in front of an origin or a tier of origin shields.
//!
//! [`run`] starts the proxy and admin listeners; [`Engine`] is the caching
//! proxy itself, which the origin shield reuses with a different upstream
//! pool, so no caching rule exists twice.

pub mod admin;
pub mod body;
pub mod compact;
pub mod config;
pub mod engine;
mod fill;
pub mod headers;
pub mod respond;
pub mod server;
pub mod upstream;

use std::sync::Arc;

pub use config::{Config, FileConfig};
pub use engine::{Engine, PROXY_HEALTH_PATH};
use meridian_balance::{Backend, BackendSpec, Balance, BalanceError, Health, HealthPolicy, Pool};
use meridian_common::Shutdown;
use tokio::net::TcpListener;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] meridian_common::ConfigError),
    #[error("upstreams: {0}")]
    Balance(#[from] BalanceError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The edge's upstreams: with several shields, each cache key goes to its
/// rendezvous-hash winner, so every object is fetched by one shield.
pub fn upstream_pool(config: &Config) -> Result<Pool, BalanceError> {
    let policy = HealthPolicy {
        rise: config.health_rise,
        fall: config.health_fall,
    };
    let backends = config
        .upstreams
        .iter()
        .map(|u| {
            Ok(Backend::new(
                u.to_string().parse::<BackendSpec>()?,
                Arc::new(Health::new(policy)),
            ))
        })
        .collect::<Result<Vec<_>, BalanceError>>()?;
    Ok(Pool::new(backends, Balance::Rendezvous)?.with_cool_off(config.cool_off))
}

/// Runs an edge on `listener` (and the admin API on `admin`) until
/// `shutdown`. Active health checks of the upstreams run when there is more
/// than one (with a single upstream there is nothing to fail over to).
pub async fn run(
    listener: TcpListener,
    admin: Option<TcpListener>,
    config: Config,
    shutdown: Shutdown,
) -> Result<(), Error> {
    let pool = Arc::new(upstream_pool(&config)?);
    if pool.backends().len() > 1 && !config.health_interval.is_zero() {
        let client = health_client();
        pool.spawn_health_checks(
            client,
            &config.health_path,
            config.health_interval,
            config
                .health_interval
                .max(std::time::Duration::from_millis(500)),
            shutdown.clone(),
        )?;
    }
    let engine = Arc::new(Engine::new(&config, pool, Vec::new()));
    serve_all(listener, admin, engine, shutdown).await
}

/// Serves the proxy and admin listeners for an engine until shutdown
/// (shared with the origin shield).
pub async fn serve_all(
    listener: TcpListener,
    admin: Option<TcpListener>,
    engine: Arc<Engine>,
    shutdown: Shutdown,
) -> Result<(), Error> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(name = engine.name(), %addr, "proxy listening");
    }
    let admin_task = admin.map(|l| {
        if let Ok(addr) = l.local_addr() {
            tracing::info!(%addr, "admin listening");
        }
        tokio::spawn(admin::serve(l, Arc::clone(&engine), shutdown.clone()))
    });
    server::serve(listener, engine, shutdown).await;
    if let Some(t) = admin_task
        && let Ok(Err(e)) = t.await
    {
        return Err(e.into());
    }
    Ok(())
}

/// The client for active health checks.
pub fn health_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}
