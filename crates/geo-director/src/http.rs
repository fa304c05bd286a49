//! The two listeners. Public: `GET /v1/route` explains a decision, every
//! other request is redirected (302) to the chosen edge with the same path
//! and query. Admin: `/healthz`, `POST /reload`, `GET /v1/edges`.
//!
//! Errors become responses only in [`Failure::into_response`].

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Query, State};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use serde::Deserialize;

use crate::client::{AddressSource, client_ip};
use crate::director::Director;
use crate::explain::explain;

type App = State<Arc<Director>>;

/// What can go wrong in a handler, and the one place it becomes HTTP.
enum Failure {
    NoEdge,
    BadAddress(String),
    BadLocation,
    Reload(String),
    Internal,
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let (status, msg) = match self {
            Failure::NoEdge => (
                StatusCode::SERVICE_UNAVAILABLE,
                "no edge is available\n".to_string(),
            ),
            Failure::BadAddress(a) => (
                StatusCode::BAD_REQUEST,
                format!("`{a}` is not an IP address\n"),
            ),
            Failure::BadLocation => (
                StatusCode::BAD_REQUEST,
                "cannot build a redirect for this path\n".into(),
            ),
            Failure::Reload(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("reload failed: {e}\n"),
            ),
            Failure::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n".into()),
        };
        (status, [(header::CACHE_CONTROL, "no-store")], msg).into_response()
    }
}

pub fn public_router(director: Arc<Director>) -> Router {
    Router::new()
        .route("/v1/route", get(route))
        .fallback(redirect)
        .with_state(director)
}

pub fn admin_router(director: Arc<Director>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/reload", post(reload))
        .route("/v1/edges", get(edges))
        .with_state(director)
}

async fn redirect(
    State(d): App,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, Failure> {
    let (ip, _) = client_ip(peer.ip(), &headers, d.forwarding());
    let decision = d.route(ip);
    let edge = decision
        .edge
        .and_then(|i| d.edges().get(i))
        .ok_or(Failure::NoEdge)?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    // The path always starts with `/`, so the target stays on the edge's host.
    let location =
        HeaderValue::try_from(format!("{}{path}", edge.url)).map_err(|_| Failure::BadLocation)?;
    tracing::debug!(client = %ip, edge = %edge.name, path, "redirect");
    Ok((
        StatusCode::FOUND,
        [
            (header::LOCATION, location),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        format!("{}{path}\n", edge.url),
    )
        .into_response())
}

#[derive(Deserialize)]
struct RouteQuery {
    ip: Option<String>,
}

async fn route(
    State(d): App,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<RouteQuery>,
) -> Result<Response, Failure> {
    let (ip, source) = match q.ip {
        Some(s) => {
            let ip: IpAddr = s
                .trim()
                .parse()
                .map_err(|_| Failure::BadAddress(s.clone()))?;
            (ip, AddressSource::Query)
        }
        None => client_ip(peer.ip(), &headers, d.forwarding()),
    };
    let decision = d.route(ip);
    let body = explain(&d, &decision, source);
    let status = if decision.edge.is_some() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok((status, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}

async fn reload(State(d): App) -> Result<Response, Failure> {
    // Reading a large database file is blocking work: keep it off the runtime threads.
    let result = tokio::task::spawn_blocking(move || d.reload())
        .await
        .map_err(|_| Failure::Internal)?;
    match result {
        Ok(db) => Ok(Json(serde_json::json!({ "reloaded": db })).into_response()),
        Err(e) => {
            tracing::error!("reload failed: {e}");
            Err(Failure::Reload(e.to_string()))
        }
    }
}

async fn edges(State(d): App) -> Json<serde_json::Value> {
    let edges: Vec<_> = d
        .edges()
        .iter()
        .enumerate()
        .map(|(i, e)| {
            serde_json::json!({
                "name": e.name, "region": e.region, "url": e.url,
                "healthz": e.healthz, "healthy": d.is_up(i),
                "last_check_ms": e.health.last_check_ms(),
            })
        })
        .collect();
    Json(serde_json::json!({ "database": d.database(), "edges": edges }))
}

/// The admin listener answers only requests naming it: its own IP,
/// `localhost` or a loopback IP, on any port. Anything else (a browser led
/// here by DNS rebinding names the attacker's host) gets 421, before any
/// route runs.
pub fn host_guard(router: Router, own: Option<SocketAddr>) -> Router {
    router.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| async move {
            if admin_host_allowed(req.headers(), req.uri(), own) {
                next.run(req).await
            } else {
                (
                    StatusCode::MISDIRECTED_REQUEST,
                    [(header::CACHE_CONTROL, "no-store")],
                    "this admin listener does not serve that Host\n",
                )
                    .into_response()
            }
        },
    ))
}

/// Whether the request's authority (absolute-form target, else its one
/// `Host`) is this listener.
fn admin_host_allowed(headers: &HeaderMap, uri: &Uri, own: Option<SocketAddr>) -> bool {
    use meridian_common::host::{host_ip, is_loopback_host, request_host};
    let Some(Ok(authority)) = request_host(headers, uri).map(str::parse::<http::uri::Authority>)
    else {
        return false;
    };
    let host = authority.host();
    is_loopback_host(host)
        || host_ip(host)
            .is_some_and(|ip| own.is_some_and(|o| o.ip() == ip && !o.ip().is_unspecified()))
}

#[cfg(test)]
mod host_guard_tests {
    use super::*;

    #[test]
    fn only_its_own_names() {
        let own = Some(SocketAddr::from(([10, 0, 0, 5], 9000)));
        let cases = [
            (Some("10.0.0.5:9000"), "/v1/edges", true),
            (Some("localhost:9000"), "/v1/edges", true),
            (Some("LOCALHOST"), "/v1/edges", true),
            (Some("127.0.0.1:1"), "/v1/edges", true),
            (Some("[::1]:9000"), "/v1/edges", true),
            (Some("10.0.0.6:9000"), "/v1/edges", false),
            (Some("evil.example"), "/v1/edges", false),
            (Some("localhost.evil.example"), "/v1/edges", false),
            (None, "/v1/edges", false),
            (Some("localhost"), "http://evil.example/v1/edges", false),
        ];
        for (host, target, want) in cases {
            let mut h = HeaderMap::new();
            if let Some(v) = host {
                h.insert(header::HOST, HeaderValue::from_str(v).expect("value"));
            }
            let uri: Uri = target.parse().expect("uri");
            assert_eq!(admin_host_allowed(&h, &uri, own), want, "{host:?} {target}");
        }
    }
}
