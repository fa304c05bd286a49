//! The accept loop: connections served by hyper directly (no router on the
//! proxy path), HTTP/1.1 or HTTP/2, with graceful shutdown that lets
//! in-flight requests finish within a bound.
//!
//! A plain listener speaks HTTP/1.1 and, with prior knowledge (a client
//! that opens with the HTTP/2 preface), h2c, which tests and internal links
//! use. A TLS listener picks the protocol by ALPN. A plain listener beside
//! a TLS one can answer every request with a redirect to `https://`
//! instead (`tls.redirect-plain`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use meridian_common::Shutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinSet;

use crate::authority::{Authority, Scheme};
use crate::body::Body;
use crate::engine::{Engine, Handled, PROXY_HEALTH_PATH};
use crate::guard::Slot;
use crate::tls::Tls;
use crate::watch::{Activity, Tracked, Watched};

/// How long in-flight requests may take to finish after shutdown.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Which protocols a connection may speak, once its transport is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1, or HTTP/2 when the client opens with its preface (plain
    /// listeners: h2c with prior knowledge).
    Auto,
    /// TLS negotiated `http/1.1` (or no ALPN).
    Http1,
    /// TLS negotiated `h2`.
    Http2,
}

/// The connection builders of one listener and the graceful-shutdown
/// watcher its connections register with.
pub struct Connections {
    engine: Arc<Engine>,
    scheme: Scheme,
    auto: auto::Builder<TokioExecutor>,
    http1: auto::Builder<TokioExecutor>,
    http2: auto::Builder<TokioExecutor>,
    graceful: GracefulShutdown,
    /// With `Some(port)`, requests are answered with a redirect to
    /// `https://` on that port instead of being proxied.
    redirect: Option<u16>,
}

impl Connections {
    pub fn new(engine: Arc<Engine>, scheme: Scheme) -> Self {
        let auto = builder(&engine);
        Connections {
            http1: auto.clone().http1_only(),
            http2: auto.clone().http2_only(),
            auto,
            engine,
            scheme,
            graceful: GracefulShutdown::new(),
            redirect: None,
        }
    }

    /// Answers every request (but the proxy health path, which a tier
    /// below may poll) with 308 to the same URL on `https://` and
    /// `https_port`.
    pub fn redirecting(mut self, https_port: u16) -> Self {
        self.redirect = Some(https_port);
        self
    }

    /// Serves one accepted connection on its own task until it ends,
    /// overstays `timeouts.client-header` or `timeouts.client-idle`
    /// (closed), or shutdown drains it. `slot` is its place under
    /// `limits.max-connections`, released when it ends.
    pub fn spawn<S>(&self, stream: S, peer: SocketAddr, protocol: Protocol, slot: Slot)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let engine = Arc::clone(&self.engine);
        let scheme = self.scheme;
        let redirect = self.redirect;
        let activity = Arc::new(Activity::new(
            engine.guard.header_timeout,
            engine.guard.idle_timeout,
        ));
        let io = TokioIo::new(Watched::new(stream, Arc::clone(&activity)));
        let requests = Arc::clone(&activity);
        let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            let served = requests.started(req.version());
            // Decided here, before hyper takes the future: a hit's future
            // is its ready response (see `Engine::handle`).
            let handled = if let Some(port) = redirect
                && req.uri().path() != PROXY_HEALTH_PATH
            {
                Handled::ready(to_https(&req, port))
            } else {
                match engine.guard.refuse(&engine, req, peer) {
                    Ok(req) => engine.handle(req, peer, scheme),
                    Err(refused) => Handled::ready(*refused),
                }
            };
            async move { Ok::<_, Infallible>(handled.await.map(|b| Tracked::new(b, served))) }
        });
        let builder = match protocol {
            Protocol::Auto => &self.auto,
            Protocol::Http1 => &self.http1,
            Protocol::Http2 => &self.http2,
        };
        let conn = self
            .graceful
            .watch(builder.serve_connection(io, svc).into_owned());
        tokio::spawn(async move {
            let _slot = slot;
            tokio::select! {
                ended = conn => if let Err(e) = ended {
                    tracing::debug!(%peer, "connection ended: {e}");
                },
                expired = activity.expired() => {
                    tracing::debug!(%peer, "connection closed: {expired:?} timeout");
                }
            }
        });
    }

    /// Waits for the connections to finish, at most [`DRAIN_TIMEOUT`].
    pub async fn drain(self) {
        tokio::select! {
            _ = self.graceful.shutdown() => {}
            _ = tokio::time::sleep(DRAIN_TIMEOUT) => tracing::warn!("in-flight requests still running after {DRAIN_TIMEOUT:?}; closing"),
        }
    }
}

/// The HTTP/1.1 and HTTP/2 settings every listener shares; HTTP/2's
/// limits are the engine's `[http2]` section, HTTP/1.1's head limits its
/// `[limits]`.
fn builder(engine: &Engine) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Vectored writes always: the response head and the cached body `Bytes`
    // leave in one `writev` with no copy in user space (measured: a 100 KiB
    // hit runs the same instructions as a 1 KiB one), or, on plain TCP and
    // for a body in a memory file, the head corked and the body by
    // `sendfile(2)` (`meridian_sendfile::ZeroCopy`). hyper's default
    // guesses this from the IO type and would silently fall back to
    // copying every body into its own buffer if a wrapper around the
    // stream stopped reporting vectored support.
    builder
        .http1()
        .writev(true)
        .keep_alive(true)
        .timer(hyper_util::rt::TokioTimer::new())
        // hyper reads at most this much while it waits for a head, and
        // answers 431 and closes when the head does not fit (or has more
        // fields than `max_headers`): a client cannot make a connection
        // buffer more than `limits.max-request-head`. hyper's minimum is
        // 8 KiB, which the config enforces too.
        .max_buf_size(engine.guard.max_request_head.max(8 << 10))
        .max_headers(engine.guard.max_request_headers)
        // The head and idle deadlines are ours (`watch.rs`): hyper's
        // counts the rest between requests as part of the next head.
        .header_read_timeout(None);
    let h2 = &engine.http2;
    // Every limit explicit, none left to a library default that could
    // change under us. A client over `max-header-list-size` (CONTINUATION
    // frames included) or past either reset budget gets GOAWAY and the
    // connection closes: the rapid-reset (CVE-2023-44487) and CONTINUATION
    // flood guards of the `h2` crate, with our numbers.
    builder
        .http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .max_concurrent_streams(h2.max_concurrent_streams)
        .initial_stream_window_size(h2.initial_stream_window)
        .initial_connection_window_size(h2.initial_connection_window)
        .max_frame_size(h2.max_frame_size)
        .max_header_list_size(h2.max_header_list_size)
        .max_pending_accept_reset_streams(h2.max_pending_accept_reset_streams)
        .max_local_error_reset_streams(h2.max_local_error_reset_streams)
        .keep_alive_interval(h2.keep_alive_interval)
        .keep_alive_timeout(h2.keep_alive_timeout);
    builder
}

/// Waits for the next connection; `None` once `stop` fires. Accept errors
/// (EMFILE and friends) back off instead of spinning.
pub async fn accept(
    listener: &TcpListener,
    stop: &mut (impl std::future::Future<Output = ()> + Unpin),
) -> Option<(tokio::net::TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    return Some((stream, peer));
                }
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            _ = &mut *stop => return None,
        }
    }
}

/// Serves the proxy on plain `listener` until `shutdown`. `scheme` is what
/// the listener speaks to its clients: it goes into every cache key and
/// `X-Forwarded-Proto`.
pub async fn serve(listener: TcpListener, engine: Arc<Engine>, scheme: Scheme, shutdown: Shutdown) {
    serve_plain(listener, Connections::new(engine, scheme), shutdown).await;
}

/// The plain accept loop over `connections` (proxying, or redirecting).
/// Past `limits.max-connections` (across the node's listeners) it stops
/// accepting until a connection closes; a connection over
/// `limits.per-ip-connections` is closed as soon as it is accepted.
pub async fn serve_plain(listener: TcpListener, connections: Connections, shutdown: Shutdown) {
    let guard = Arc::clone(&connections.engine.guard);
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            permit = guard.slot() => permit,
            _ = &mut stop => break,
        };
        let Some((stream, peer)) = accept(&listener, &mut stop).await else {
            break;
        };
        if let Some(slot) = guard.admit(permit, peer.ip()) {
            // Plain TCP: large stored bodies leave by `sendfile(2)`.
            let stream = meridian_sendfile::ZeroCopy::new(stream);
            connections.spawn(stream, peer, Protocol::Auto, slot);
        }
    }
    drop(listener);
    connections.drain().await;
}

/// Serves the proxy over TLS on `listener` until `shutdown`: every
/// connection's handshake runs on its own task within
/// `tls.handshake-timeout` (at most `tls.max-handshakes` at once; past it
/// the listener waits before accepting more; and past
/// `limits.max-connections`, as the plain listener), then it is served as
/// [`Scheme::Https`], HTTP/2 when ALPN chose `h2`. A failed handshake is
/// logged at debug and costs nothing else.
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<Tls>,
    engine: Arc<Engine>,
    shutdown: Shutdown,
) {
    let guard = Arc::clone(&engine.guard);
    let connections = Connections::new(engine, Scheme::Https);
    let max = tls.settings().max_handshakes;
    let mut handshakes = JoinSet::new();
    // The connection slot the next accept goes into.
    let mut permit = None;
    let stop_accepting = shutdown.wait();
    let stop = shutdown.wait();
    tokio::pin!(stop_accepting, stop);
    loop {
        tokio::select! {
            p = guard.slot(), if permit.is_none() => permit = Some(p),
            accepted = accept(&listener, &mut stop_accepting), if permit.is_some() && handshakes.len() < max => {
                let Some((stream, peer)) = accepted else { break };
                let Some(slot) = permit.take().and_then(|p| guard.admit(p, peer.ip())) else {
                    continue;
                };
                let tls = Arc::clone(&tls);
                handshakes.spawn(async move { (tls.handshake(stream).await, peer, slot) });
            }
            Some(done) = handshakes.join_next() => match done {
                Ok((Ok(stream), peer, slot)) => {
                    let protocol = if crate::tls::is_h2(&stream) {
                        Protocol::Http2
                    } else {
                        Protocol::Http1
                    };
                    connections.spawn(stream, peer, protocol, slot);
                }
                Ok((Err(e), peer, _)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                Err(e) => tracing::error!("TLS handshake task failed: {e}"),
            },
            _ = &mut stop => break,
        }
    }
    // Handshakes still running belong to no request yet: drop them.
    handshakes.shutdown().await;
    drop(listener);
    connections.drain().await;
}

/// The 308 a redirecting plain listener answers: the request's own host
/// and path on `https://`, on `port` unless it is 443 (RFC 9110 §15.4.9:
/// 308 keeps the method and body, so a POST is redirected as a POST). An
/// authority that is not a valid host gets 400, never a `Location` built
/// from it.
fn to_https(req: &Request<hyper::body::Incoming>, port: u16) -> Response<Body> {
    let raw = req.uri().authority().map(|a| a.as_str()).or_else(|| {
        req.headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
    });
    let host = raw.and_then(|raw| Authority::parse(raw, Scheme::Http).ok());
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = host.and_then(|a| {
        let url = if port == Scheme::Https.default_port() {
            format!("https://{}{path}", a.host())
        } else {
            format!("https://{}:{port}{path}", a.host())
        };
        HeaderValue::from_str(&url).ok()
    });
    let Some(location) = location else {
        return plain_text(StatusCode::BAD_REQUEST, "missing or invalid Host\n");
    };
    let mut r = plain_text(StatusCode::PERMANENT_REDIRECT, "use https\n");
    r.headers_mut().insert(header::LOCATION, location);
    r
}

fn plain_text(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut r = Response::new(Body::from(text));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The proxy listeners of one node: plain HTTP, TLS, or both. A plain
/// `TcpListener` converts into one, so callers that serve only HTTP pass
/// their listener as before.
#[derive(Debug, Default)]
pub struct Listeners {
    pub plain: Option<TcpListener>,
    pub tls: Option<TlsListener>,
}

/// A bound TLS listener and what its handshakes use.
#[derive(Debug)]
pub struct TlsListener {
    pub listener: TcpListener,
    pub tls: Arc<Tls>,
}

impl From<TcpListener> for Listeners {
    fn from(plain: TcpListener) -> Self {
        Listeners {
            plain: Some(plain),
            tls: None,
        }
    }
}

/// Why a node's proxy listeners could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("cannot listen on {addr} ({key}): {source}")]
    Bind {
        addr: SocketAddr,
        /// The flag and config key that named the address.
        key: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// A proxy listener on `addr` with a listen backlog of `backlog`
/// (`limits.listen-backlog`; the kernel caps it at `net.core.somaxconn`).
/// `SO_REUSEADDR` is set, as `TcpListener::bind` does, so a restarted node
/// can bind while old connections linger in TIME_WAIT.
pub fn listen(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

impl Listeners {
    /// Binds the configured plain listener and TLS listener (with
    /// `limits.listen-backlog`) and loads the TLS certificates.
    pub async fn bind(config: &crate::Config) -> Result<Listeners, ListenError> {
        let backlog = config.limits.listen_backlog;
        let bind = |addr: SocketAddr, key: &'static str| async move {
            listen(addr, backlog).map_err(|source| ListenError::Bind { addr, key, source })
        };
        let plain = match config.listen {
            Some(addr) => Some(bind(addr, "--listen / listen").await?),
            None => None,
        };
        let tls = match &config.tls {
            Some(settings) => Some(TlsListener {
                listener: bind(settings.listen, "--tls-listen / tls.listen").await?,
                tls: Arc::new(Tls::new(settings)?),
            }),
            None => None,
        };
        Ok(Listeners { plain, tls })
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll};

    use meridian_balance::{Backend, BackendSpec, Balance, Health, HealthPolicy, Pool};
    use meridian_common::ByteSize;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadBuf};

    use super::*;
    use crate::config::FileConfig;

    /// A stream that counts the bytes the server read from it.
    struct Counting<S> {
        inner: S,
        read: Arc<AtomicUsize>,
    }

    impl<S: AsyncRead + Unpin> AsyncRead for Counting<S> {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let this = self.get_mut();
            let before = buf.filled().len();
            let r = Pin::new(&mut this.inner).poll_read(cx, buf);
            this.read
                .fetch_add(buf.filled().len() - before, Ordering::Relaxed);
            r
        }
    }

    impl<S: AsyncWrite + Unpin> AsyncWrite for Counting<S> {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
        }
        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.get_mut().inner).poll_flush(cx)
        }
        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
        }
    }

    fn engine(max_request_head: u64) -> Arc<Engine> {
        let mut file = FileConfig {
            upstream: vec!["http://127.0.0.1:9".into()],
            ..Default::default()
        };
        file.limits.max_request_head = Some(ByteSize(max_request_head));
        let config = file.validate("test").expect("config");
        let spec: BackendSpec = "http://127.0.0.1:9".parse().expect("spec");
        let health = Arc::new(Health::new(HealthPolicy { rise: 1, fall: 1 }));
        let pool = Pool::new(vec![Backend::new(spec, health)], Balance::Rendezvous).expect("pool");
        Arc::new(Engine::new(&config, Arc::new(pool)))
    }

    /// The finding: hyper's default read about 400 KB of a head
    /// before its 431. With `limits.max-request-head` it reads no more than
    /// the limit, whatever the client sends.
    #[tokio::test]
    async fn an_oversized_head_is_refused_with_431_after_reading_at_most_the_limit() {
        let limit = 16 << 10;
        let engine = engine(limit as u64);
        let guard = Arc::clone(&engine.guard);
        let connections = Connections::new(engine, Scheme::Http);
        // A small pipe: the client can only get ahead of the server's reads
        // by these few bytes.
        let (client, server) = tokio::io::duplex(1024);
        let read = Arc::new(AtomicUsize::new(0));
        let peer = SocketAddr::from(([127, 0, 0, 1], 50_000));
        let slot = guard.admit(guard.slot().await, peer.ip()).expect("a slot");
        let server = Counting {
            inner: server,
            read: Arc::clone(&read),
        };
        connections.spawn(server, peer, Protocol::Auto, slot);
        let (mut rd, mut wr) = tokio::io::split(client);
        let writer = tokio::spawn(async move {
            let pad = "p".repeat(1 << 20);
            let head = format!("GET / HTTP/1.1\r\nHost: a\r\nX-Pad: {pad}\r\n\r\n");
            let _ = wr.write_all(head.as_bytes()).await;
        });
        let mut answer = Vec::new();
        let _ = rd.read_to_end(&mut answer).await;
        writer.abort();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 431"), "answered {answer:?}");
        let read = read.load(Ordering::Relaxed);
        assert!(
            read <= limit,
            "read {read} bytes of the head, limit {limit}"
        );
    }
}

/// The size of the future hyper gets per request: hyper moves it into a
/// task per HTTP/2 stream, copying all of it, so every unboxed `await` on a
/// miss path made every hit pay for it (a 5.7 KB future cost a sixth of an
/// HTTP/2 hit's CPU). `Engine::handle` boxes whatever waits.
#[cfg(test)]
mod future_size {
    use super::*;

    /// The size of what `f` returns, without calling it.
    fn returned_size<A, R>(_f: impl FnOnce(A) -> R) -> usize {
        std::mem::size_of::<R>()
    }

    #[test]
    fn a_requests_future_is_about_the_size_of_its_response() {
        type Args = (
            Arc<Engine>,
            Request<hyper::body::Incoming>,
            SocketAddr,
            Scheme,
        );
        let handled = returned_size(|(e, r, p, s): Args| e.handle(r, p, s));
        let response = std::mem::size_of::<Response<Body>>();
        assert!(
            handled <= response + 64,
            "Engine::handle's future is {handled} bytes, a response {response}: box the await that grew it"
        );
    }
}
