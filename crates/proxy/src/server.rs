//! The accept loop: connections served by hyper directly (no router on the
//! proxy path), HTTP/1.1 or HTTP/2, with graceful shutdown that lets
//! in-flight requests finish within a bound.
//!
//! A plain listener speaks HTTP/1.1 and, with prior knowledge (a client
//! that opens with the HTTP/2 preface), h2c, which tests and internal links
//! use. A TLS listener picks the protocol by ALPN.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::rt::{Read, Write};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use meridian_common::Shutdown;
use tokio::net::TcpListener;

use crate::authority::Scheme;
use crate::engine::Engine;

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
        }
    }

    /// Serves one accepted connection on its own task until it ends or
    /// shutdown drains it.
    pub fn spawn<I>(&self, io: I, peer: SocketAddr, protocol: Protocol)
    where
        I: Read + Write + Unpin + Send + 'static,
    {
        let engine = Arc::clone(&self.engine);
        let scheme = self.scheme;
        let svc = hyper::service::service_fn(move |req| {
            let engine = Arc::clone(&engine);
            async move { Ok::<_, Infallible>(engine.handle(req, peer, scheme).await) }
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
            if let Err(e) = conn.await {
                tracing::debug!(%peer, "connection ended: {e}");
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
/// limits are the engine's `[http2]` section.
fn builder(engine: &Engine) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Vectored writes always: the response head and the cached body `Bytes`
    // leave in one `writev` with no copy in user space (measured: a 100 KiB
    // hit runs the same instructions as a 1 KiB one). hyper's default
    // guesses this from the IO type and would silently fall back to
    // copying every body into its own buffer if a wrapper around the
    // stream stopped reporting vectored support.
    builder
        .http1()
        .writev(true)
        .keep_alive(true)
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));
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
    let connections = Connections::new(engine, scheme);
    let stop = shutdown.wait();
    tokio::pin!(stop);
    while let Some((stream, peer)) = accept(&listener, &mut stop).await {
        connections.spawn(TokioIo::new(stream), peer, Protocol::Auto);
    }
    drop(listener);
    connections.drain().await;
}
