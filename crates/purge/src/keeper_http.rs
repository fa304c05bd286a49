//! The keeper's routes, merged into the director's admin router (see
//! [`crate::http_log`] for the table). Errors become responses only in
//! `Failure::into_response`.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::{HeaderMap, StatusCode, header};
use meridian_common::auth::Scope;
use serde::Deserialize;

use crate::http_log::Ack;
use crate::keeper::{Keeper, KeeperError, MAX_NODE_NAME, Poll};
use crate::{Purge, Tier};

/// Largest request body (a purge, a confirmation).
pub const MAX_BODY: usize = 2 << 20;

/// The routes over `keeper`.
pub fn router(keeper: Keeper) -> Router {
    Router::new()
        .route("/v1/purge", post(publish))
        .route("/v1/purges", get(poll))
        .route("/v1/purges/ack", post(ack))
        .route("/v1/purges/status", get(status))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(keeper)
}

enum Failure {
    Denied(meridian_common::auth::Denied, Scope),
    Bad(String),
    /// The body could not be read (too large: 413).
    Body(StatusCode, String),
    Keeper(KeeperError),
}

impl From<KeeperError> for Failure {
    fn from(e: KeeperError) -> Self {
        Failure::Keeper(e)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let (status, msg) = match self {
            Failure::Denied(d, scope) => (
                StatusCode::from_u16(d.status()).unwrap_or(StatusCode::FORBIDDEN),
                d.message(scope),
            ),
            Failure::Body(status, m) => (status, m),
            Failure::Bad(m) | Failure::Keeper(KeeperError::BadRequest(m)) => {
                (StatusCode::BAD_REQUEST, m)
            }
            Failure::Keeper(e @ KeeperError::Busy) => {
                (StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
            Failure::Keeper(e) => {
                tracing::error!("purge log: {e}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the purge log could not store the purge (see the director's log)".into(),
                )
            }
        };
        let mut r = (
            status,
            [(header::CACHE_CONTROL, "no-store")],
            Json(serde_json::json!({ "error": msg })),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer"),
            );
        }
        r
    }
}

fn authorize(keeper: &Keeper, headers: &HeaderMap, scope: Scope) -> Result<(), Failure> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    keeper
        .config()
        .tokens
        .check(auth, scope)
        .map(|_| ())
        .map_err(|d| Failure::Denied(d, scope))
}

/// A JSON body, whatever its content type (as `curl -d` sends it). Too
/// large: 413; not the expected shape: 400 saying why.
fn json<T: serde::de::DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, Failure> {
    let bytes = body.map_err(|e| Failure::Body(e.status(), e.body_text()))?;
    serde_json::from_slice(&bytes).map_err(|e| Failure::Bad(format!("bad JSON body: {e}")))
}

#[derive(Deserialize)]
struct PublishQuery {
    timeout_ms: Option<u64>,
}

async fn publish(
    State(k): State<Keeper>,
    headers: HeaderMap,
    Query(q): Query<PublishQuery>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Failure> {
    authorize(&k, &headers, Scope::Purge)?;
    let purge: Purge = json(body)?;
    let report = k
        .publish(purge, q.timeout_ms.map(Duration::from_millis))
        .await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(report)).into_response())
}

#[derive(Deserialize)]
struct PollQuery {
    after: u64,
    node: String,
    tier: Tier,
    #[serde(default)]
    wait: u64,
    log_id: Option<String>,
    max_lag_ms: Option<u64>,
}

fn check_node(name: &str) -> Result<(), Failure> {
    if name.is_empty()
        || name.len() > MAX_NODE_NAME
        || name.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(Failure::Bad(format!(
            "a node name is 1 to {MAX_NODE_NAME} printable characters without spaces"
        )));
    }
    Ok(())
}

async fn poll(
    State(k): State<Keeper>,
    headers: HeaderMap,
    q: Result<Query<PollQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Failure> {
    authorize(&k, &headers, Scope::Follow)?;
    let Query(q) = q.map_err(|e| Failure::Bad(e.body_text()))?;
    check_node(&q.node)?;
    let answer = k
        .poll(Poll {
            node: q.node,
            tier: q.tier,
            after: q.after,
            log_id: q.log_id,
            wait: Duration::from_millis(q.wait),
            max_lag: q.max_lag_ms.map(Duration::from_millis),
        })
        .await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(answer)).into_response())
}

async fn ack(
    State(k): State<Keeper>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Failure> {
    authorize(&k, &headers, Scope::Follow)?;
    let ack: Ack = json(body)?;
    check_node(&ack.node)?;
    if ack.error.as_ref().is_some_and(|e| e.len() > 4096) {
        return Err(Failure::Bad("an error text longer than 4096 bytes".into()));
    }
    k.ack(&ack)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn status(State(k): State<Keeper>, headers: HeaderMap) -> Result<Response, Failure> {
    authorize(&k, &headers, Scope::Read)?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(k.status())).into_response())
}
