//! The Meridian edge: the caching proxy engine ([`meridian_proxy`]) in
//! front of an origin or a tier of origin shields, the node clients talk to.
//!
//! This crate only decides what is edge-specific: its upstreams are shields
//! (or one origin), chosen per cache key by rendezvous hashing so every
//! object is fetched by one shield. The request flow, the cache and every
//! limit live in `meridian-proxy`.

use std::sync::Arc;

use meridian_balance::{Backend, BackendSpec, Balance, BalanceError, Health, HealthPolicy, Pool};
use meridian_common::Shutdown;
pub use meridian_proxy::{
    Config, Engine, Error, FileConfig, Listeners, TlsListener, config, health_client, health_probe,
};
use tokio::net::TcpListener;

/// The edge's upstreams: with several shields, each cache key goes to its
/// rendezvous-hash winner, so every object is fetched by one shield. The
/// hash is over each upstream's `;id=` when it has one, else its address.
pub fn upstream_pool(config: &Config) -> Result<Pool, BalanceError> {
    let policy = HealthPolicy {
        rise: config.health_rise,
        fall: config.health_fall,
    };
    let backends = config
        .upstreams
        .iter()
        .zip(config.upstream_ids.iter().chain(std::iter::repeat(&None)))
        .zip(config.upstream_tls.iter().chain(std::iter::repeat(&None)))
        .map(|((u, id), tls)| {
            let mut spec = u.to_string().parse::<BackendSpec>()?;
            if let Some(id) = id {
                spec = spec.with_id(id)?;
            }
            if let Some(tls) = tls {
                spec = spec.with_tls(tls.clone())?;
            }
            Ok(Backend::new(spec, Arc::new(Health::new(policy))))
        })
        .collect::<Result<Vec<_>, BalanceError>>()?;
    Ok(Pool::new(backends, Balance::Rendezvous)?
        .with_cool_off(config.cool_off)
        .with_eject_on_5xx(config.eject_on_5xx))
}

/// Runs an edge on `listeners` (a plain `TcpListener`, or [`Listeners`]
/// with a TLS one; the admin API on `admin`) until
/// `shutdown`. Active health checks of the upstreams run when there is more
/// than one (with a single upstream there is nothing to fail over to).
pub async fn run(
    listeners: impl Into<Listeners>,
    admin: Option<TcpListener>,
    config: Config,
    shutdown: Shutdown,
) -> Result<(), Error> {
    let listeners = listeners.into();
    meridian_proxy::check_listeners(&listeners, &config)?;
    let pool = Arc::new(upstream_pool(&config)?);
    if pool.backends().len() > 1 && !config.health_interval.is_zero() {
        pool.spawn_health_checks(
            health_probe(&config),
            &config.health_path,
            config.health_interval,
            config
                .health_interval
                .max(std::time::Duration::from_millis(500)),
            shutdown.clone(),
        )?;
    }
    let engine = Arc::new(Engine::new(&config, pool));
    meridian_proxy::serve_all(listeners, admin, engine, shutdown).await
}
