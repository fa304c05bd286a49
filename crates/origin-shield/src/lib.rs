//! The Meridian origin shield: the caching tier between all edges and the
//! origins.
//!
//! ```text
//! edge ─┐                 ┌─ origin a   (round robin, weighted, least
//! edge ─┼─► shield cache ─┼─ origin b    connections, ip hash, consistent
//! edge ─┘   (collapses)   └─ origin c    hash, two choices; health-checked)
//! ```
//!
//! The shield is the edge's caching [`Engine`] over a different upstream
//! [`Pool`]: the origins, chosen by the configured [`Balance`] and
//! health-checked on `/healthz`. Every caching rule, the collapsing of
//! concurrent misses (so many edges' misses for one URL become one origin
//! fetch), the stale rules, the retry of a failed connect on the next origin
//! and passive ejection therefore live in one place, `crates/edge` on top of
//! `crates/cache`; this crate only decides *which origins* and *how to
//! choose among them*.
//!
//! The edges tell the shield who the client is by appending to
//! `X-Forwarded-For`; the shield believes it (for `ip-hash`, and passes the
//! forwarding fields on) only when the connection comes from one of
//! `trusted-forwarders` (also read as `trusted-edges`), so a client talking
//! to the shield directly cannot pick its origin.

pub mod config;

use std::sync::Arc;
use std::time::Duration;

pub use config::{FileConfig, ShieldConfig};
use meridian_balance::{Balance, BalanceError, HealthPolicy, Pool};
use meridian_common::Shutdown;
use meridian_proxy::{Engine, Listeners};
use tokio::net::TcpListener;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] meridian_common::ConfigError),
    #[error("origins: {0}")]
    Balance(#[from] BalanceError),
    #[error(transparent)]
    Serve(#[from] meridian_proxy::Error),
}

/// A health check may take this long even when the interval is shorter, so
/// a slow-but-alive origin is not marked down by a tight test interval.
const MIN_CHECK_TIMEOUT: Duration = Duration::from_millis(500);

/// The origins and the algorithm that spreads requests over them.
pub fn origin_pool(config: &ShieldConfig) -> Result<Pool, BalanceError> {
    let policy = HealthPolicy {
        rise: config.engine.health_rise,
        fall: config.engine.health_fall,
    };
    Ok(
        Pool::from_specs(config.origins.clone(), config.balance, policy)?
            .with_cool_off(config.engine.cool_off)
            .with_eject_on_5xx(config.engine.eject_on_5xx),
    )
}

/// Runs a shield on `listeners` (a plain `TcpListener`, or [`Listeners`]
/// with a TLS one; the admin API on `admin`) until
/// `shutdown`. Active health checks of the origins run whenever the
/// interval is not zero, even for one origin, so `/stats` shows its state.
pub async fn run(
    listeners: impl Into<Listeners>,
    admin: Option<TcpListener>,
    config: ShieldConfig,
    shutdown: Shutdown,
) -> Result<(), Error> {
    let listeners = listeners.into();
    meridian_proxy::check_listeners(&listeners, &config.engine)?;
    let pool = Arc::new(origin_pool(&config)?);
    let e = &config.engine;
    if !e.health_interval.is_zero() {
        pool.spawn_health_checks(
            meridian_proxy::health_probe(e),
            &e.health_path,
            e.health_interval,
            e.health_interval.max(MIN_CHECK_TIMEOUT),
            shutdown.clone(),
        )?;
    }
    if config.balance == Balance::IpHash && e.trusted_forwarders.is_empty() {
        tracing::info!(
            "ip-hash without trusted-forwarders: hashing on the connecting address (the edge's, not the client's)"
        );
    }
    let engine = Arc::new(Engine::new(e, pool));
    meridian_proxy::serve_all(listeners, admin, engine, shutdown).await?;
    Ok(())
}
