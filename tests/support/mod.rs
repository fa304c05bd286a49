//! Test support: a real axum origin that records every request it sees,
//! a real edge on a port from the OS, and `eventually` instead of sleeps.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use meridian_common::Shutdown;
use tokio::net::TcpListener;

/// One request as the origin saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
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

/// A real HTTP origin on 127.0.0.1 that counts what reaches it.
pub struct Origin {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Requests being answered now, and the most ever at once.
    in_flight: Arc<(AtomicUsize, AtomicUsize)>,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<()>,
}

impl Origin {
    pub async fn start(f: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
        Self::start_on(listener, Arc::new(f)).await
    }

    /// Restarts an origin on a given address (after `stop`).
    pub async fn start_at(
        addr: SocketAddr,
        f: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> Origin {
        let listener = TcpListener::bind(addr).await.expect("rebind origin");
        Self::start_on(listener, Arc::new(f)).await
    }

    async fn start_on(listener: TcpListener, f: Responder) -> Origin {
        let addr = listener.local_addr().expect("addr");
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let in_flight: Arc<(AtomicUsize, AtomicUsize)> = Arc::default();
        let shutdown = Shutdown::new();
        let rec = Arc::clone(&seen);
        let flight = Arc::clone(&in_flight);
        let app = axum::Router::new().fallback(move |req: Request| {
            let rec = Arc::clone(&rec);
            let f = Arc::clone(&f);
            let flight = Arc::clone(&flight);
            async move {
                let now = flight.0.fetch_add(1, Ordering::SeqCst) + 1;
                flight.1.fetch_max(now, Ordering::SeqCst);
                let (parts, body) = req.into_parts();
                let body = axum::body::to_bytes(body, 64 << 20)
                    .await
                    .unwrap_or_default();
                let seen = Seen {
                    method: parts.method,
                    path: parts
                        .uri
                        .path_and_query()
                        .map(|p| p.to_string())
                        .unwrap_or_default(),
                    headers: parts.headers,
                    body,
                };
                rec.lock().expect("lock").push(seen.clone());
                let reply = f(&seen);
                if !reply.delay.is_zero() {
                    tokio::time::sleep(reply.delay).await;
                }
                flight.0.fetch_sub(1, Ordering::SeqCst);
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
        });
        let sd = shutdown.clone();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(sd.wait())
                .await;
        });
        Origin {
            addr,
            seen,
            in_flight,
            shutdown,
            task,
        }
    }

    /// The most requests this origin was answering at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.in_flight.1.load(Ordering::SeqCst)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests seen so far.
    pub fn count(&self) -> usize {
        self.seen.lock().expect("lock").len()
    }

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

    /// Stops listening; connects to its address then fail.
    pub async fn stop(self) {
        self.shutdown.trigger();
        self.task.abort();
        let _ = self.task.await;
    }
}

/// A real edge (in this process) on ports from the OS.
pub struct Edge {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    shutdown: Shutdown,
}

impl Edge {
    pub async fn start(upstream: &str) -> Edge {
        Self::start_with(meridian_edge::FileConfig {
            upstream: vec![upstream.to_string()],
            name: Some("edge-1".into()),
            ..Default::default()
        })
        .await
    }

    pub async fn start_with(fc: meridian_edge::FileConfig) -> Edge {
        let config = fc.validate("test").expect("valid test config");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind edge");
        let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
        let addr = listener.local_addr().expect("addr");
        let admin_addr = admin.local_addr().expect("addr");
        let shutdown = Shutdown::new();
        tokio::spawn(meridian_edge::run(
            listener,
            Some(admin),
            config,
            shutdown.clone(),
        ));
        Edge {
            addr,
            admin: admin_addr,
            shutdown,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    pub fn stop(&self) {
        self.shutdown.trigger();
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// A client that talks to loopback only and follows no redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(64)
        .build()
        .expect("client")
}

/// Polls `f` until it returns true or `deadline` passes.
pub async fn eventually<F, Fut>(deadline: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f().await
}

pub fn cache_status(r: &reqwest::Response) -> String {
    r.headers()
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// How a [`StreamOrigin`] answers: `head` at once, then (after
/// [`StreamOrigin::release`]) `tail`, or a broken connection instead when
/// `fail` is set.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    pub head: Bytes,
    pub tail: Bytes,
    /// Send `Content-Length` (else the body is chunked).
    pub content_length: bool,
    /// Break the body off after `head` instead of sending `tail`.
    pub fail: bool,
    pub headers: Vec<(String, String)>,
}

impl StreamSpec {
    /// `head` and `tail` bytes of a recognisable pattern, cacheable.
    pub fn new(head: usize, tail: usize) -> Self {
        let all = pattern(head + tail);
        StreamSpec {
            head: all.slice(..head),
            tail: all.slice(head..),
            content_length: true,
            fail: false,
            headers: vec![("cache-control".into(), "public, max-age=60".into())],
        }
    }

    pub fn body(&self) -> Bytes {
        let mut v = self.head.to_vec();
        v.extend_from_slice(&self.tail);
        Bytes::from(v)
    }
}

/// `n` bytes that differ at every offset a test might compare.
pub fn pattern(n: usize) -> Bytes {
    Bytes::from(
        (0..n)
            .map(|i| (i % 251) as u8 ^ ((i / 251) % 256) as u8)
            .collect::<Vec<u8>>(),
    )
}

/// An origin whose GET bodies stream: the head at once, the rest only when
/// the test says so, so a test can see what a client gets while the origin
/// is still sending. Other methods get an empty 200.
pub struct StreamOrigin {
    pub addr: SocketAddr,
    gets: Arc<AtomicUsize>,
    gate: tokio::sync::watch::Sender<bool>,
    shutdown: Shutdown,
}

impl StreamOrigin {
    pub async fn start(spec: StreamSpec) -> StreamOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
        let addr = listener.local_addr().expect("addr");
        let gets: Arc<AtomicUsize> = Arc::default();
        let (gate, _) = tokio::sync::watch::channel(false);
        let shutdown = Shutdown::new();
        let (g, tx) = (Arc::clone(&gets), gate.clone());
        let app = axum::Router::new().fallback(move |req: Request| {
            let (g, tx, spec) = (Arc::clone(&g), tx.clone(), spec.clone());
            async move {
                if req.method() != Method::GET {
                    return http::Response::new(Body::empty());
                }
                g.fetch_add(1, Ordering::SeqCst);
                let rx = tx.subscribe();
                let total = spec.head.len() + spec.tail.len();
                let state = (0u8, rx, spec.clone());
                let body = futures_util::stream::unfold(state, |(step, mut rx, spec)| async move {
                    match step {
                        0 => Some((
                            Ok::<Bytes, std::io::Error>(spec.head.clone()),
                            (1, rx, spec),
                        )),
                        1 => {
                            let _ = rx.wait_for(|open| *open).await;
                            let item = if spec.fail {
                                Err(std::io::Error::other("origin broke off"))
                            } else {
                                Ok(spec.tail.clone())
                            };
                            Some((item, (2, rx, spec)))
                        }
                        _ => None,
                    }
                });
                let mut resp = http::Response::new(Body::from_stream(body));
                for (k, v) in &spec.headers {
                    resp.headers_mut().append(
                        HeaderName::from_bytes(k.as_bytes()).expect("name"),
                        HeaderValue::from_str(v).expect("value"),
                    );
                }
                if spec.content_length {
                    resp.headers_mut()
                        .insert(http::header::CONTENT_LENGTH, HeaderValue::from(total));
                }
                resp
            }
        });
        let sd = shutdown.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(sd.wait())
                .await;
        });
        StreamOrigin {
            addr,
            gets,
            gate,
            shutdown,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// GET requests that reached the origin.
    pub fn gets(&self) -> usize {
        self.gets.load(Ordering::SeqCst)
    }

    /// Lets every body (now and later) send the rest.
    pub fn release(&self) {
        self.gate.send_replace(true);
    }
}

impl Drop for StreamOrigin {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}
