//! The admin listener, loopback by default:
//!
//! | route | token | what |
//! |---|---|---|
//! | `GET /healthz` | none | liveness |
//! | `GET /stats` | none | counters (JSON) |
//! | `GET /purge/status` | none | this node's sync with the purge log |
//! | `POST /purge` | scope `purge` | a [`Purge`] applied to this node |
//!
//! Every route sits behind the `Host` guard: a browser tricked by DNS
//! rebinding into sending requests here carries the attacker's host name,
//! and gets 421.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::{HeaderMap, StatusCode, header};
use meridian_common::Shutdown;
use meridian_common::auth::Scope;
use meridian_purge::Purge;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::authority::{Authority, HostPattern, Scheme};
use crate::engine::Engine;

/// Largest `POST /purge` body: far more than [`meridian_purge::MAX_ITEMS`]
/// URLs need in practice, and a bound on what one request may make us hold.
pub const MAX_PURGE_BODY: usize = 1 << 20;

/// How long a client may take to send a `POST /purge` body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

pub fn router(engine: Arc<Engine>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/purge", post(purge))
        .route("/purge/status", get(purge_status))
        .route("/stats", get(stats))
        .route("/metrics", get(metrics))
        .with_state(engine)
}

pub async fn serve(
    listener: TcpListener,
    engine: Arc<Engine>,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let guard = Arc::new(HostGuard::new(
        listener.local_addr()?,
        engine.admin_hosts.clone(),
    ));
    let app = router(engine).layer(middleware::from_fn_with_state(guard, host_guard));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.wait())
        .await
}

/// The `Host` values the admin listener answers: its own `ip:port`,
/// `localhost` and loopback IPs on any port (a port forward changes the
/// port, not the host), and `admin.hosts`.
struct HostGuard {
    own: Option<HostPattern>,
    extra: Vec<HostPattern>,
}

impl HostGuard {
    fn new(own: SocketAddr, extra: Vec<HostPattern>) -> Self {
        HostGuard {
            own: HostPattern::parse(&own.to_string()).ok(),
            extra,
        }
    }

    /// Whether a request naming this authority (the absolute-form
    /// target's, else the one `Host`) is for us.
    fn allows(&self, headers: &HeaderMap, uri: &http::Uri) -> bool {
        let Some(raw) = meridian_common::host::request_host(headers, uri) else {
            return false;
        };
        let Ok(a) = Authority::parse(raw, Scheme::Http) else {
            return false;
        };
        meridian_common::host::is_loopback_host(a.host())
            || self.own.as_ref().is_some_and(|p| p.matches(&a))
            || self.extra.iter().any(|p| p.matches(&a))
    }
}

async fn host_guard(State(guard): State<Arc<HostGuard>>, req: Request, next: Next) -> Response {
    if guard.allows(req.headers(), req.uri()) {
        return next.run(req).await;
    }
    error(
        StatusCode::MISDIRECTED_REQUEST,
        "this admin listener does not serve that Host (list it in admin.hosts)".into(),
    )
}

/// `{"error": why}` with `code`.
fn error(code: StatusCode, why: String) -> Response {
    (code, Json(json!({ "error": why }))).into_response()
}

async fn healthz(State(e): State<Arc<Engine>>) -> Json<Value> {
    Json(json!({ "name": e.name(), "region": e.region(), "status": "ok" }))
}

async fn stats(State(e): State<Arc<Engine>>) -> Json<Value> {
    let s = &e.stats;
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let (hits, misses) = (load(&s.hits), load(&s.misses));
    let store = store_stats(&e).await;
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
        "connections": e.open_connections(),
        "balance": e.pool().balance().name(),
        "upstreams": e.pool().stats(),
    }))
}

/// The store's figures, read on the blocking pool: exact figures run the
/// store's housekeeping first (removing what hard purges marked), which
/// can take tens of milliseconds and must not hold a worker that serves
/// requests.
async fn store_stats(e: &Arc<Engine>) -> meridian_cache::StoreStats {
    let store = Arc::clone(e.store());
    tokio::task::spawn_blocking(move || store.stats())
        .await
        .unwrap_or_default()
}

/// Prometheus metrics; no token needed (no secrets, nothing a client sent).
/// Encoded on the blocking pool, for the store's figures (see
/// [`store_stats`]).
async fn metrics(
    State(e): State<Arc<Engine>>,
    headers: http::HeaderMap,
) -> axum::response::Response {
    tokio::task::spawn_blocking(move || crate::metrics::scrape(&e, &headers))
        .await
        .unwrap_or_else(|_| {
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "metrics could not be gathered".into(),
            )
        })
}

/// `POST /purge`: the token first (an unauthenticated body is never
/// read), then the body as a [`Purge`], applied through
/// [`Engine::purge_now`].
async fn purge(
    State(e): State<Arc<Engine>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let token = match e.admin_tokens().check(authorization, Scope::Purge) {
        Ok(name) => name.to_owned(),
        Err(denied) => {
            let (code, body, extra) = crate::purge::refusal(denied, Scope::Purge);
            return (code, extra, Json(body)).into_response();
        }
    };
    let bytes = match read_body(&headers, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let purge: Purge = match serde_json::from_slice(&bytes) {
        Ok(p) => p,
        Err(err) => return error(StatusCode::BAD_REQUEST, format!("bad purge body: {err}")),
    };
    tracing::debug!(token, "admin purge");
    match e.purge_now(&purge) {
        Ok(applied) => Json(e.purge_answer(&purge, &applied)).into_response(),
        Err(why) => error(StatusCode::BAD_REQUEST, why),
    }
}

/// The body, at most [`MAX_PURGE_BODY`] bytes (413) within
/// [`BODY_TIMEOUT`] (408).
async fn read_body(headers: &HeaderMap, body: axum::body::Body) -> Result<bytes::Bytes, Response> {
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a purge body is at most {MAX_PURGE_BODY} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_PURGE_BODY as u64) {
        return Err(too_large());
    }
    match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_PURGE_BODY)).await {
        Err(_) => Err(error(
            StatusCode::REQUEST_TIMEOUT,
            format!("the body did not arrive within {BODY_TIMEOUT:?}"),
        )),
        Ok(Ok(b)) => Ok(b),
        Ok(Err(err)) => {
            let inner = err.into_inner();
            if inner
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(too_large())
            } else {
                Err(error(
                    StatusCode::BAD_REQUEST,
                    format!("could not read the body: {inner}"),
                ))
            }
        }
    }
}

/// `GET /purge/status`: how current this node is with the purge log.
async fn purge_status(State(e): State<Arc<Engine>>) -> Json<Value> {
    let s = e.sync();
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let following = s.is_following();
    Json(json!({
        "node": e.name(),
        "tier": e.tier().as_str(),
        "following": following,
        "applied": s.applied_seq(),
        "ever_synced": s.ever_synced(),
        "lag_ms": s.lag().map(ms),
        "max_lag_ms": following.then(|| ms(s.max_lag())),
        "lagging": s.is_lagging(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(guard: &HostGuard, host: Option<&str>, target: &str) -> bool {
        let mut h = HeaderMap::new();
        if let Some(v) = host {
            h.insert(header::HOST, v.parse().expect("value"));
        }
        guard.allows(&h, &target.parse().expect("uri"))
    }

    #[test]
    fn host_guard_answers_only_its_own_names() {
        let extra = vec![HostPattern::parse("admin.cdn.internal").expect("pattern")];
        let g = HostGuard::new(SocketAddr::from(([10, 0, 0, 5], 9091)), extra);
        let cases: [(Option<&str>, &str, bool); 12] = [
            (Some("10.0.0.5:9091"), "/stats", true),
            (Some("10.0.0.5:9092"), "/stats", false),
            (Some("localhost"), "/stats", true),
            (Some("LOCALHOST:1234"), "/stats", true),
            (Some("127.0.0.1"), "/stats", true),
            (Some("127.1.2.3:80"), "/stats", true),
            (Some("[::1]:9091"), "/stats", true),
            (Some("admin.cdn.internal:9091"), "/stats", true),
            (Some("evil.example"), "/stats", false),
            (Some("localhost.evil.example"), "/stats", false),
            (None, "/stats", false),
            (Some("localhost"), "http://evil.example/stats", false),
        ];
        for (host, target, want) in cases {
            assert_eq!(allows(&g, host, target), want, "{host:?} {target}");
        }
    }
}
