//! The geo director: Meridian's front door. It places a client address with
//! a MaxMind-format database (or a coverage zone) and redirects the client to
//! the nearest healthy edge.
//!
//! ```text
//! request ─▶ client address (peer, or X-Forwarded-For / Forwarded from a trusted proxy, read from the right)
//!         ─▶ place: coverage zone ▸ private/reserved → default region ▸ database ▸ default region
//!         ─▶ choose: healthy edges, preferred target first, then weighted great-circle distance
//!         ─▶ 302 to edge URL + path + query   (or JSON at /v1/route explaining all of it)
//! ```
//!
//! Health comes from polling every edge's admin `/healthz` with
//! [`meridian_balance::health::poll`]. The database is held in an
//! [`arc_swap::ArcSwap`] so `POST /reload` (admin) or SIGHUP (the CLI) swaps
//! in a replaced file without disturbing requests in flight.

mod centres;
mod client;
mod config;
mod director;
mod error;
mod explain;
mod http;
mod lookup;
pub mod purge_log;
mod zones;

use std::net::SocketAddr;
use std::sync::Arc;

use meridian_common::Shutdown;
use tokio::net::TcpListener;

pub use crate::client::{
    AddressSource, DEFAULT_MAX_FORWARDED_HOPS, ForwardedHeader, Forwarding, client_ip, is_special,
};
pub use crate::config::{Config, CoverageZone, DEFAULT_GEOIP, EdgeConfig, HealthSettings, Switch};
pub use crate::director::{Decision, Director, Edge, Placement, Reason, Target};
pub use crate::error::Error;
pub use crate::explain::{Explanation, explain};
pub use crate::lookup::{
    CountryCode, DEFAULT_GEOIP_MAX_SIZE, Geo, GeoLookup, MaxMindDb, MaxMindFiles, Network,
    Networks, Precision, Schema, StaticLookup,
};
pub use crate::purge_log::{PurgeLogSettings, ShieldConfig};

/// Opens the database, starts health checks and serves until `shutdown`.
pub async fn run(
    listener: TcpListener,
    admin: Option<TcpListener>,
    config: Config,
    shutdown: Shutdown,
) -> Result<(), Error> {
    let director = Arc::new(Director::new(config)?);
    serve(listener, admin, director, shutdown).await
}

/// Like [`run`] for a director built by the caller (which can then keep a
/// handle to reload it, as the CLI does on SIGHUP).
pub async fn serve(
    listener: TcpListener,
    admin: Option<TcpListener>,
    director: Arc<Director>,
    shutdown: Shutdown,
) -> Result<(), Error> {
    start_health_checks(&director, &shutdown)?;
    let keeper = purge_log::keeper(&director.config)?;
    if keeper.is_some() && admin.is_none() {
        return Err(Error::PurgeLog(
            "purge-log.state-dir is set but there is no admin listener to serve the log on \
             (--admin-listen / director.admin-listen)"
                .into(),
        ));
    }
    tracing::info!(
        listen = ?listener.local_addr().ok(),
        database = %director.database(),
        edges = director.edges().len(),
        "geo director serving"
    );
    let public = axum::serve(
        listener,
        http::public_router(director.clone()).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.wait());
    if let Some(addr) = admin.as_ref().and_then(|l| l.local_addr().ok()) {
        tracing::info!(%addr, purge_log = keeper.is_some(), "admin listening");
    }
    let mut admin_router = http::admin_router(director.clone());
    if let Some(k) = keeper {
        admin_router = admin_router.merge(meridian_purge::keeper_http::router(k));
    }
    let own = admin.as_ref().and_then(|l| l.local_addr().ok());
    let admin_router = http::host_guard(admin_router, own);
    let admin = async {
        match admin {
            Some(l) => axum::serve(l, admin_router)
                .with_graceful_shutdown(shutdown.wait())
                .await
                .map_err(|source| Error::Serve {
                    what: "admin",
                    source,
                }),
            None => Ok(()),
        }
    };
    let (public, admin) = tokio::join!(public, admin);
    public.map_err(|source| Error::Serve {
        what: "public",
        source,
    })?;
    admin
}

/// One poller per edge (unless health checks are off); each stops on shutdown.
fn start_health_checks(director: &Arc<Director>, shutdown: &Shutdown) -> Result<(), Error> {
    let settings = director.health_settings();
    if !settings.enabled {
        tracing::info!("health checks are off: every edge counts as up");
        return Ok(());
    }
    // No proxy: health checks go straight to the edges' admin listeners,
    // whatever HTTP_PROXY says.
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(Error::HttpClient)?;
    for edge in director.edges() {
        tokio::spawn(meridian_balance::health::poll(
            client.clone(),
            edge.healthz.clone(),
            settings.interval,
            settings.timeout,
            edge.health.clone(),
            shutdown.clone(),
        ));
    }
    Ok(())
}
