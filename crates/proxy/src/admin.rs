//! The admin listener: `/healthz` and `/stats` (JSON). Loopback by default;
//! purge comes with the admin API issue.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use meridian_common::Shutdown;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::engine::Engine;

pub fn router(engine: Arc<Engine>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/stats", get(stats))
        .route("/metrics", get(metrics))
        .with_state(engine)
}

pub async fn serve(
    listener: TcpListener,
    engine: Arc<Engine>,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    axum::serve(listener, router(engine))
        .with_graceful_shutdown(shutdown.wait())
        .await
}

async fn healthz(State(e): State<Arc<Engine>>) -> Json<Value> {
    Json(json!({ "name": e.name(), "region": e.region(), "status": "ok" }))
}

async fn stats(State(e): State<Arc<Engine>>) -> Json<Value> {
    let s = &e.stats;
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let (hits, misses) = (load(&s.hits), load(&s.misses));
    let store = e.store().stats();
    Json(json!({
        "name": e.name(),
        "region": e.region(),
        "entries": store.entries,
        "bytes": store.bytes,
        "capacity": store.capacity,
        "requests": load(&s.requests),
        "hits": hits,
        "misses": misses,
        "hit_ratio": if hits + misses == 0 { 0.0 } else { hits as f64 / (hits + misses) as f64 },
        "revalidated": load(&s.revalidated),
        "collapsed": load(&s.collapsed),
        "stale_served": load(&s.stale_served),
        "bypassed": load(&s.bypassed),
        "stored": load(&s.stored),
        "upstream_errors": load(&s.upstream_errors),
        "balance": e.pool().balance().name(),
        "upstreams": e.pool().stats(),
    }))
}

/// Prometheus metrics; no token needed (no secrets, nothing a client sent).
async fn metrics(
    State(e): State<Arc<Engine>>,
    headers: http::HeaderMap,
) -> axum::response::Response {
    crate::metrics::scrape(&e, &headers)
}
