//! The Meridian proxy engine: the HTTP caching reverse proxy (RFC 9111
//! shared cache) that both tiers run. `meridian-edge` puts it in front of an
//! origin or a tier of shields; `meridian-origin-shield` puts it in front of
//! the origins with a balancing pool. Every caching rule, every limit and
//! every header the proxy writes therefore exists once, here, on top of the
//! pure RFC 9111 core in `meridian-cache`.
//!
//! [`Engine`] is the request flow; [`serve_all`] runs its proxy and admin
//! listeners until shutdown.

pub mod admin;
pub mod authority;
pub mod body;
pub mod compact;
pub mod compress;
pub mod config;
pub mod engine;
mod fill;
pub mod guard;
pub mod headers;
pub mod metrics;
pub mod outcome;
pub mod purge;
pub mod respond;
pub mod server;
pub mod tls;
pub mod upstream;
pub mod watch;

use std::sync::Arc;

pub use authority::{Authority, Scheme};
pub use config::{Config, FileConfig};
pub use engine::{Engine, PROXY_HEALTH_PATH};
use meridian_balance::BalanceError;
use meridian_common::Shutdown;
pub use server::{ListenError, Listeners, TlsListener};
use tokio::net::TcpListener;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] meridian_common::ConfigError),
    #[error("upstreams: {0}")]
    Balance(#[from] BalanceError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error("no proxy listener: give a plain listener, a TLS listener, or both")]
    NoListener,
    #[error("[tls] is configured but no TLS listener was bound for it")]
    NoTlsListener,
}

/// Checks that the listeners fit `config`: a caller that has a TLS
/// configuration must bind its listener ([`Listeners::bind`]); a node silently serving only plain HTTP would be
/// worse than one that does not start.
pub fn check_listeners(listeners: &Listeners, config: &Config) -> Result<(), Error> {
    if config.tls.is_some() && listeners.tls.is_none() {
        return Err(Error::NoTlsListener);
    }
    Ok(())
}

/// Serves the proxy listeners (plain, TLS, or both) and the admin listener
/// for an engine until shutdown, follows the purge log when the engine's
/// config names one, and reloads the TLS certificates on SIGHUP or when
/// their files change.
pub async fn serve_all(
    listeners: impl Into<Listeners>,
    admin: Option<TcpListener>,
    engine: Arc<Engine>,
    shutdown: Shutdown,
) -> Result<(), Error> {
    let Listeners { plain, tls } = listeners.into();
    if plain.is_none() && tls.is_none() {
        return Err(Error::NoListener);
    }
    for (l, proto) in [
        (plain.as_ref(), "http"),
        (tls.as_ref().map(|t| &t.listener), "https"),
    ] {
        if let Some(addr) = l.and_then(|l| l.local_addr().ok()) {
            tracing::info!(name = engine.name(), %addr, proto, "proxy listening");
        }
    }
    let admin_task = admin.map(|l| {
        if let Ok(addr) = l.local_addr() {
            tracing::info!(%addr, "admin listening");
        }
        tokio::spawn(admin::serve(l, Arc::clone(&engine), shutdown.clone()))
    });
    tokio::spawn(maintain(Arc::clone(engine.store()), shutdown.clone()));
    if let Some(follow) = engine.follow_config().cloned() {
        // Entries from the log go through `purge_now`, like every purge.
        let applier: Arc<dyn meridian_purge::Applier> = Arc::new(LogApplier(Arc::clone(&engine)));
        tokio::spawn(meridian_purge::follow(
            follow,
            applier,
            Arc::clone(engine.sync()),
            shutdown.clone(),
        ));
    }
    // The plain listener redirects to the TLS listener's own port.
    let redirect = tls
        .as_ref()
        .filter(|t| t.tls.settings().redirect_plain)
        .and_then(|t| t.listener.local_addr().ok())
        .map(|a| a.port());
    let plain_task = async {
        if let Some(l) = plain {
            let mut connections = server::Connections::new(Arc::clone(&engine), Scheme::Http);
            if let Some(port) = redirect {
                connections = connections.redirecting(port);
            }
            server::serve_plain(l, connections, shutdown.clone()).await;
        }
    };
    let tls_task = async {
        if let Some(t) = tls {
            tokio::spawn(Arc::clone(t.tls.certs()).watch(shutdown.clone()));
            server::serve_tls(t.listener, t.tls, Arc::clone(&engine), shutdown.clone()).await;
        }
    };
    tokio::join!(plain_task, tls_task);
    if let Some(t) = admin_task
        && let Ok(Err(e)) = t.await
    {
        return Err(e.into());
    }
    Ok(())
}

/// Applies the purge log's entries through [`Engine::purge_now`], the one
/// way a purge is applied (checked, counted, logged).
struct LogApplier(Arc<Engine>);

impl meridian_purge::Applier for LogApplier {
    fn apply(&self, purge: &meridian_purge::Purge) -> Result<meridian_purge::Applied, String> {
        self.0.purge_now(purge)
    }
}

/// Runs the store's housekeeping every second until shutdown: moka drops
/// evicted and expired entries (and so their bodies) only when it does
/// maintenance, which otherwise waits for traffic, and the responses hard
/// purges marked leave the store. That can take tens of milliseconds (moka
/// rebuilds a table segment after many removals), so it runs on the
/// blocking pool, never on a worker that serves requests.
async fn maintain(store: Arc<dyn meridian_cache::Storage>, shutdown: Shutdown) {
    let stop = shutdown.wait();
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {
                let store = Arc::clone(&store);
                // One at a time: the next tick waits for this one.
                if tokio::task::spawn_blocking(move || store.maintain()).await.is_err() {
                    tracing::error!("store housekeeping panicked");
                }
            }
        }
    }
}

/// The client for active health checks of `config`'s upstreams: the
/// upstream connector with the same TLS settings as the traffic's.
pub fn health_probe(config: &Config) -> upstream::HealthProbe {
    upstream::HealthProbe::new(config)
}

/// A plain reqwest client for health checks of `http://` targets (the
/// director's); a proxy's upstreams are checked with [`health_probe`].
pub fn health_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}
