//! The live dashboard: one page, served from the binary, that shows the
//! running cluster on a world map and lets an operator stop, start, slow
//! and fail nodes and send purges.
//!
//! | route | token | what |
//! |---|---|---|
//! | `GET /` (+ `/app.js`, `/app.css`) | none | the page |
//! | `GET /api/state` | none | the current [`Snapshot`](snapshot::Snapshot) (JSON) |
//! | `GET /api/events` | none | the snapshot, pushed after every poll (server-sent events) |
//! | `POST /api/nodes/{name}/{action}` | cluster | an [`Action`] (`stop`, `start`, `slow`, `slow=300ms`, `fail`, `heal`); answers the node's new fault |
//! | `POST /api/purge` | cluster | a [`Purge`] (JSON), sent to the purge log; answers the log's report |
//!
//! A poller (`dashboard/poll.rs`) reads every node's admin listener once a second
//! and builds the snapshot. The page renders the first snapshot from
//! `GET /api/state`, then follows `/api/events` (or polls `/api/state`
//! when server-sent events do not get through).
//!
//! Like the admin listeners, every route answers only requests naming
//! this listener (its own `ip:port`, `localhost`, a loopback IP) and
//! gives anything else 421: a page on another site that a browser was led
//! here through DNS rebinding sends the attacker's host name. The actions
//! take the cluster token as `Authorization: Bearer`, which the page keeps
//! in `sessionStorage` (from the `#token=` fragment the CLI prints, never
//! sent in a URL); another site's page cannot read it, so it cannot press
//! the buttons. The page's `Content-Security-Policy` allows nothing but
//! this listener, and no frame.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use meridian_common::Shutdown;
use meridian_common::auth::{Denied, Scope, Tokens};
use meridian_purge::{Purge, Report};
use serde_json::json;
use tokio::sync::{Notify, watch};

use crate::control::{Action, Control, ControlError};

mod poll;
mod purges;
pub mod snapshot;
pub mod world;

/// The page, with `{{LAND}}` and `{{WATER}}` for the map's paths.
const INDEX_HTML: &str = include_str!("dashboard/index.html");
const APP_JS: &str = include_str!("dashboard/app.js");
const APP_CSS: &str = include_str!("dashboard/app.css");

/// The page may load and connect to nothing but this listener.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

/// The dashboard's limits. [`router`] uses the defaults; the cluster file
/// may set them through [`router_with`].
#[derive(Debug, Clone)]
pub struct Settings {
    /// How often every node is polled (default 1 s).
    pub poll_interval: Duration,
    /// How long one admin request may take, connecting included (default
    /// 500 ms): a dead node costs the poll this much, once.
    pub node_timeout: Duration,
    /// How long a purge sent to the log may take (default 15 s: the log
    /// waits up to its `confirm-timeout`, 5 s by default, for the nodes).
    pub purge_timeout: Duration,
    /// How long an action may take (default 30 s: starting a node).
    pub action_timeout: Duration,
    /// Largest request body (default 64 KiB).
    pub max_body: usize,
    /// Server-sent event clients at once; past it 503 (default 64).
    pub max_event_clients: usize,
    /// Purges in the "recent purges" panel (default 10).
    pub recent_purges: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            poll_interval: Duration::from_secs(1),
            node_timeout: Duration::from_millis(500),
            purge_timeout: Duration::from_secs(15),
            action_timeout: Duration::from_secs(30),
            max_body: 64 << 10,
            max_event_clients: 64,
            recent_purges: 10,
        }
    }
}

/// The dashboard's routes (the page, its assets, `/api/...`). `own` is the
/// listener's address (for the Host guard). Starts the poller, which runs
/// until `shutdown`; call it inside a Tokio runtime (without one nothing
/// is polled, and the page shows no numbers).
pub fn router(control: Arc<dyn Control>, own: SocketAddr, shutdown: Shutdown) -> axum::Router {
    router_with(control, own, shutdown, Settings::default())
}

/// The shortest poll interval and node timeout [`router_with`] uses (a
/// smaller one is raised to it): no busy loop, no timeout too short to
/// connect.
pub const MIN_POLL: Duration = Duration::from_millis(100);

/// [`router`] with other limits.
pub fn router_with(
    control: Arc<dyn Control>,
    own: SocketAddr,
    shutdown: Shutdown,
    mut settings: Settings,
) -> axum::Router {
    settings.poll_interval = settings.poll_interval.max(MIN_POLL);
    settings.node_timeout = settings.node_timeout.max(MIN_POLL);
    let (publish, snapshot) = watch::channel(Arc::new(String::from("{}")));
    let purges = Arc::new(Mutex::new(purges::Purges::new(settings.recent_purges)));
    let poke = Arc::new(Notify::new());
    let client = poll::client(settings.node_timeout);
    let poller = poll::Poller::new(
        Arc::clone(&control),
        client.clone(),
        settings.clone(),
        Arc::clone(&purges),
        publish,
        Arc::clone(&poke),
    );
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => {
            rt.spawn(poller.run(shutdown.clone()));
        }
        Err(_) => tracing::error!("dashboard: no Tokio runtime, so nothing is polled"),
    }
    let page = INDEX_HTML
        .replace("{{LAND}}", &world::land())
        .replace("{{WATER}}", &world::water());
    let app = Arc::new(App {
        tokens: Tokens::single("cluster", &control.token()),
        control,
        snapshot,
        poke,
        purges,
        client,
        settings,
        event_clients: Arc::new(AtomicUsize::new(0)),
        shutdown,
        page: page.into(),
    });
    Router::new()
        .route("/", get(index))
        .route(
            "/app.js",
            get(|| asset(APP_JS, "text/javascript; charset=utf-8")),
        )
        .route(
            "/app.css",
            get(|| asset(APP_CSS, "text/css; charset=utf-8")),
        )
        .route("/api/state", get(state))
        .route("/api/events", get(events))
        .route("/api/nodes/{name}/{action}", post(act))
        .route("/api/purge", post(purge))
        .fallback(|| async { Failure::NotFound("no such page".into()) })
        .with_state(app)
        .layer(middleware::from_fn_with_state(own, host_guard))
}

struct App {
    control: Arc<dyn Control>,
    tokens: Tokens,
    snapshot: watch::Receiver<Arc<String>>,
    /// Wakes the poller (after an action, so the page shows it at once).
    poke: Arc<Notify>,
    purges: Arc<Mutex<purges::Purges>>,
    client: reqwest::Client,
    settings: Settings,
    event_clients: Arc<AtomicUsize>,
    shutdown: Shutdown,
    page: Arc<str>,
}

type AppState = State<Arc<App>>;

/// Everything a route can answer besides success; the one place errors
/// become responses (`{"error": why}`).
enum Failure {
    Denied(Denied),
    NotFound(String),
    Bad(String),
    Refused(String),
    TooLarge(usize),
    Timeout(String),
    Busy(String),
    Log(String),
    MisdirectedHost,
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let (status, why) = match self {
            Failure::Denied(d) => (
                StatusCode::from_u16(d.status()).unwrap_or(StatusCode::FORBIDDEN),
                d.message(Scope::Purge),
            ),
            Failure::NotFound(m) => (StatusCode::NOT_FOUND, m),
            Failure::Bad(m) => (StatusCode::BAD_REQUEST, m),
            Failure::Refused(m) => (StatusCode::CONFLICT, m),
            Failure::TooLarge(max) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("a request body is at most {max} bytes"),
            ),
            Failure::Timeout(m) => (StatusCode::GATEWAY_TIMEOUT, m),
            Failure::Busy(m) => (StatusCode::SERVICE_UNAVAILABLE, m),
            Failure::Log(m) => (StatusCode::BAD_GATEWAY, m),
            Failure::MisdirectedHost => (
                StatusCode::MISDIRECTED_REQUEST,
                "the dashboard does not serve that Host".into(),
            ),
        };
        let mut r = (status, no_store(), Json(json!({ "error": why }))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

fn no_store() -> [(header::HeaderName, &'static str); 1] {
    [(header::CACHE_CONTROL, "no-store")]
}

/// Answers only requests naming this listener (see the module docs).
async fn host_guard(State(own): State<SocketAddr>, req: Request, next: Next) -> Response {
    if host_allowed(req.headers(), req.uri(), own) {
        next.run(req).await
    } else {
        Failure::MisdirectedHost.into_response()
    }
}

/// Whether the request's authority (an absolute-form target's, else its
/// one `Host`) is `own` (`ip:port`), `localhost` or a loopback IP (any
/// port: a port forward changes the port, not the host).
fn host_allowed(headers: &HeaderMap, uri: &http::Uri, own: SocketAddr) -> bool {
    use meridian_common::host::{host_ip, is_loopback_host, request_host};
    let Some(Ok(authority)) = request_host(headers, uri).map(str::parse::<http::uri::Authority>)
    else {
        return false;
    };
    if authority.as_str().contains('@') {
        return false;
    }
    let host = authority.host();
    is_loopback_host(host)
        || host_ip(host).is_some_and(|ip| {
            ip == own.ip()
                && !ip.is_unspecified()
                && authority.port_u16().unwrap_or(80) == own.port()
        })
}

/// Checks `Authorization: Bearer <cluster token>`.
fn authorize(app: &App, headers: &HeaderMap) -> Result<(), Failure> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    app.tokens
        .check(auth, Scope::Purge)
        .map(|_| ())
        .map_err(Failure::Denied)
}

async fn index(State(app): AppState) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        app.page.to_string(),
    )
        .into_response()
}

async fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// `GET /api/state`: the last snapshot.
async fn state(State(app): AppState) -> Response {
    let json = app.snapshot.borrow().clone();
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        json.to_string(),
    )
        .into_response()
}

/// Holds one of the [`Settings::max_event_clients`] places while a client
/// follows `/api/events`.
struct EventSlot(Arc<AtomicUsize>);

impl EventSlot {
    fn take(count: &Arc<AtomicUsize>, max: usize) -> Option<EventSlot> {
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| EventSlot(Arc::clone(count)))
    }
}

impl Drop for EventSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// `GET /api/events`: the current snapshot at once, then each new one;
/// ends at shutdown (so it does not hold the listener's graceful
/// shutdown open).
async fn events(State(app): AppState) -> Result<Response, Failure> {
    let max = app.settings.max_event_clients;
    let slot = EventSlot::take(&app.event_clients, max).ok_or_else(|| {
        Failure::Busy(format!(
            "{max} clients follow the dashboard already; poll /api/state"
        ))
    })?;
    let mut rx = app.snapshot.clone();
    let first = rx.borrow_and_update().clone();
    let changes = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.changed().await.ok()?;
        let next = rx.borrow_and_update().clone();
        Some((next, rx))
    });
    let stream = futures_util::stream::once(async move { first })
        .chain(changes)
        .map(move |json| {
            let _held = &slot;
            Ok::<_, Infallible>(Event::default().data(json.as_str()))
        })
        .take_until(app.shutdown.wait());
    Ok((
        no_store(),
        Sse::new(stream).keep_alive(KeepAlive::default()),
    )
        .into_response())
}

/// `POST /api/nodes/{name}/{action}`: the token, then the action.
async fn act(
    State(app): AppState,
    headers: HeaderMap,
    Path((name, action)): Path<(String, String)>,
) -> Result<Response, Failure> {
    authorize(&app, &headers)?;
    let action: Action = action.parse().map_err(Failure::Bad)?;
    if app.control.fault(&name).is_none() {
        return Err(Failure::NotFound(format!("no node named `{name}`")));
    }
    let limit = app.settings.action_timeout;
    let fault = tokio::time::timeout(limit, app.control.act(&name, action))
        .await
        .map_err(|_| Failure::Timeout(format!("`{name}` did not finish within {limit:?}")))?
        .map_err(|e| match e {
            ControlError::UnknownNode(n) => Failure::NotFound(format!("no node named `{n}`")),
            ControlError::Refused(why) => Failure::Refused(why),
        })?;
    tracing::info!(node = %name, ?action, "dashboard action");
    app.poke.notify_one();
    Ok((no_store(), Json(json!({ "node": name, "fault": fault }))).into_response())
}

/// `POST /api/purge`: the token, then the body (at most
/// [`Settings::max_body`]) as a [`Purge`], sent to the purge log with the
/// cluster token; answers what the log answered.
async fn purge(State(app): AppState, headers: HeaderMap, body: Body) -> Result<Response, Failure> {
    authorize(&app, &headers)?;
    let max = app.settings.max_body;
    let bytes = tokio::time::timeout(app.settings.purge_timeout, axum::body::to_bytes(body, max))
        .await
        .map_err(|_| Failure::Timeout("the request body did not arrive in time".into()))?
        .map_err(|_| Failure::TooLarge(max))?;
    let purge: Purge =
        serde_json::from_slice(&bytes).map_err(|e| Failure::Bad(format!("bad purge body: {e}")))?;
    purge.validate().map_err(Failure::Bad)?;

    let log = app.control.purge_log();
    let url = format!("{}/v1/purge", log.trim_end_matches('/'));
    let sent = poll::now_ms();
    let limit = app.settings.purge_timeout;
    let mut answer = app
        .client
        .post(&url)
        .bearer_auth(app.control.token())
        .timeout(limit)
        .json(&purge)
        .send()
        .await
        .map_err(|e| log_failure(&e, limit))?;
    let status = answer.status();
    let body = poll::read_limited(&mut answer, poll::MAX_ANSWER)
        .await
        .map_err(|e| Failure::Log(format!("the purge log's answer: {e}")))?;
    if status.is_success()
        && let Ok(report) = serde_json::from_slice::<Report>(&body)
    {
        if let Ok(mut p) = app.purges.lock() {
            p.report(&report, sent);
        }
        app.poke.notify_one();
    }
    // The log's own answer, passed on: its report, or its error.
    let body = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(v) => v,
        Err(_) => json!({ "error": String::from_utf8_lossy(&body) }),
    };
    let status = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    Ok((status, no_store(), Json(body)).into_response())
}

fn log_failure(e: &reqwest::Error, limit: Duration) -> Failure {
    if e.is_timeout() {
        Failure::Timeout(format!(
            "the purge log did not answer within {limit:?} (the purge may still be applied)"
        ))
    } else {
        Failure::Log(format!("the purge log: {}", poll::why(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_guard_answers_only_this_listener() {
        let own = SocketAddr::from(([10, 0, 0, 5], 9400));
        let cases: [(Option<&str>, &str, bool); 13] = [
            (Some("10.0.0.5:9400"), "/", true),
            (Some("10.0.0.5:9401"), "/", false),
            (Some("10.0.0.5"), "/", false),
            (Some("localhost"), "/", true),
            (Some("LOCALHOST:1234"), "/api/state", true),
            (Some("127.0.0.1:80"), "/", true),
            (Some("127.9.9.9"), "/", true),
            (Some("[::1]:9400"), "/", true),
            (Some("evil.example"), "/", false),
            (Some("localhost.evil.example"), "/", false),
            (Some("user@localhost"), "/", false),
            (None, "/", false),
            (Some("localhost"), "http://evil.example/", false),
        ];
        for (host, target, want) in cases {
            let mut h = HeaderMap::new();
            if let Some(v) = host {
                h.insert(header::HOST, HeaderValue::from_str(v).expect("value"));
            }
            let uri: http::Uri = target.parse().expect("uri");
            assert_eq!(host_allowed(&h, &uri, own), want, "{host:?} {target}");
        }
    }

    #[test]
    fn the_page_names_no_address_outside_the_cluster() {
        for (name, text) in [
            ("index.html", INDEX_HTML),
            ("app.js", APP_JS),
            ("app.css", APP_CSS),
        ] {
            for scheme in ["http://", "https://", "//cdn", "@import", "url("] {
                assert!(!text.contains(scheme), "{name} contains {scheme}");
            }
        }
    }

    #[test]
    fn event_slots_are_bounded_and_given_back() {
        let count = Arc::new(AtomicUsize::new(0));
        let a = EventSlot::take(&count, 2).expect("first");
        let b = EventSlot::take(&count, 2).expect("second");
        assert!(EventSlot::take(&count, 2).is_none());
        drop(a);
        let c = EventSlot::take(&count, 2);
        assert!(c.is_some());
        drop((b, c));
        assert_eq!(count.load(Ordering::Acquire), 0);
    }
}
