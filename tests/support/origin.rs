//! A real HTTP origin on 127.0.0.1 that records every request it sees:
//! either answering through a closure ([`Origin::start`]) or, for the
//! balancing tests, by a fixed set of path rules under a name it puts in
//! `x-origin` ([`Origin::named`]). It can be stopped and restarted on the
//! same port with the same records.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use meridian_common::Shutdown;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The path a shield polls on its origins. Requests for it are answered
/// but not recorded: an origin's counts are the test's own traffic.
const HEALTH_PATH: &str = "/healthz";

/// Largest request body an origin reads; a test never sends more.
const MAX_BODY: usize = 64 << 20;

/// One request as the origin saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    /// Path and query.
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What the origin answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// Waits this long before answering (the request counts as in flight).
    pub delay: Duration,
}

impl Reply {
    pub fn ok(body: impl Into<Bytes>) -> Self {
        Reply {
            status: 200,
            headers: Vec::new(),
            body: body.into(),
            delay: Duration::ZERO,
        }
    }
    pub fn status(mut self, s: u16) -> Self {
        self.status = s;
        self
    }
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
}

type Responder = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

/// Requests being answered now, and the most ever at once.
#[derive(Default)]
struct InFlight {
    now: AtomicUsize,
    max: AtomicUsize,
}

/// A real HTTP origin on 127.0.0.1 that counts what reaches it.
pub struct Origin {
    pub addr: SocketAddr,
    /// The name a [`named`](Origin::named) origin answers with in
    /// `x-origin`; empty for a closure origin.
    pub id: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    in_flight: Arc<InFlight>,
    respond: Responder,
    shutdown: Shutdown,
    task: Option<JoinHandle<()>>,
}

impl Origin {
    /// An origin on a port from the OS answering every request with `f`.
    pub async fn start(f: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
        Origin::serve_new(listener, String::new(), Arc::new(f))
    }

    /// An origin on a given address (one that was free, or a stopped
    /// origin's).
    pub async fn start_at(
        addr: SocketAddr,
        f: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> Origin {
        let listener = TcpListener::bind(addr).await.expect("rebind origin");
        Origin::serve_new(listener, String::new(), Arc::new(f))
    }

    /// An origin named `id` whose paths choose its behaviour; slow paths
    /// take 800 ms. See [`named_slow`](Origin::named_slow).
    pub async fn named(id: &str) -> Origin {
        Origin::named_slow(id, Duration::from_millis(800)).await
    }

    /// An origin named `id`. Paths choose its behaviour: containing
    /// `nostore` → `Cache-Control: no-store` (every request reaches an
    /// origin); `stale` → `max-age=0, stale-if-error=60`; otherwise
    /// `public, max-age=60`; every answer has `ETag: "v1"`. Containing
    /// `slow` → answers after `slow`. [`HEALTH_PATH`] answers 200. The body
    /// is `"<id> <path>"` and every answer carries `x-origin: <id>`.
    pub async fn named_slow(id: &str, slow: Duration) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
        let name = id.to_owned();
        let respond = move |seen: &Seen| {
            let path = seen.path.split('?').next().unwrap_or_default();
            if path == HEALTH_PATH {
                return Reply::ok("ok").header("x-origin", &name);
            }
            let cc = if path.contains("nostore") {
                "no-store"
            } else if path.contains("stale") {
                "max-age=0, stale-if-error=60"
            } else {
                "public, max-age=60"
            };
            let delay = if path.contains("slow") {
                slow
            } else {
                Duration::ZERO
            };
            Reply::ok(format!("{name} {path}"))
                .header("x-origin", &name)
                .header("content-type", "text/plain; charset=utf-8")
                .header("cache-control", cc)
                // Without a validator a max-age=0 answer could never be
                // reused, so the cache would not keep it for stale-if-error.
                .header("etag", "\"v1\"")
                .delay(delay)
        };
        Origin::serve_new(listener, id.to_owned(), Arc::new(respond))
    }

    fn serve_new(listener: TcpListener, id: String, respond: Responder) -> Origin {
        let mut origin = Origin {
            addr: listener.local_addr().expect("addr"),
            id,
            seen: Arc::default(),
            in_flight: Arc::default(),
            respond,
            shutdown: Shutdown::new(),
            task: None,
        };
        origin.serve(listener);
        origin
    }

    fn serve(&mut self, listener: TcpListener) {
        let (seen, in_flight, respond) = (
            Arc::clone(&self.seen),
            Arc::clone(&self.in_flight),
            Arc::clone(&self.respond),
        );
        let app = axum::Router::new().fallback(move |req: Request| {
            let (seen, in_flight, respond) = (
                Arc::clone(&seen),
                Arc::clone(&in_flight),
                Arc::clone(&respond),
            );
            answer(req, seen, in_flight, respond)
        });
        let stop = self.shutdown.wait();
        self.task = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await;
        }));
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests seen so far (health checks are not recorded).
    pub fn count(&self) -> usize {
        self.seen.lock().expect("lock").len()
    }

    /// Requests seen so far for exactly this path and query.
    pub fn count_path(&self, path: &str) -> usize {
        self.seen
            .lock()
            .expect("lock")
            .iter()
            .filter(|s| s.path == path)
            .count()
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    pub fn last(&self) -> Seen {
        self.seen
            .lock()
            .expect("lock")
            .last()
            .cloned()
            .expect("the origin saw a request")
    }

    /// Requests being answered now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.now.load(Ordering::SeqCst)
    }

    /// The most requests this origin was answering at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.in_flight.max.load(Ordering::SeqCst)
    }

    /// Stops accepting and closes idle connections: from now on a connect
    /// to this port is refused.
    pub async fn stop(&mut self) {
        self.shutdown.trigger();
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(5), t)
                .await
                .expect("origin stops within 5s")
                .expect("origin task");
        }
    }

    /// Serves again on the same port, with the same answers and records.
    pub async fn restart(&mut self) {
        self.shutdown = Shutdown::new();
        let listener = TcpListener::bind(self.addr)
            .await
            .expect("rebind same port");
        self.serve(listener);
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// Records `req` (unless it is a health check) and answers it.
async fn answer(
    req: Request,
    seen: Arc<Mutex<Vec<Seen>>>,
    in_flight: Arc<InFlight>,
    respond: Responder,
) -> http::Response<Body> {
    let record = req.uri().path() != HEALTH_PATH;
    if record {
        let now = in_flight.now.fetch_add(1, Ordering::SeqCst) + 1;
        in_flight.max.fetch_max(now, Ordering::SeqCst);
    }
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, MAX_BODY)
        .await
        .unwrap_or_default();
    let request = Seen {
        method: parts.method,
        path: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: parts.headers,
        body,
    };
    if record {
        seen.lock().expect("lock").push(request.clone());
    }
    let reply = respond(&request);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    if record {
        in_flight.now.fetch_sub(1, Ordering::SeqCst);
    }
    let mut resp = http::Response::new(Body::from(reply.body));
    *resp.status_mut() = StatusCode::from_u16(reply.status).expect("status");
    for (k, v) in reply.headers {
        resp.headers_mut().append(
            HeaderName::from_bytes(k.as_bytes()).expect("name"),
            HeaderValue::from_str(&v).expect("value"),
        );
    }
    resp
}
