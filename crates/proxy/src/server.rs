//! The accept loop: HTTP/1.1 connections served by hyper directly (no
//! router on the proxy path), with graceful shutdown that lets in-flight
//! requests finish within a bound.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use meridian_common::Shutdown;
use tokio::net::TcpListener;

use crate::authority::Scheme;
use crate::engine::Engine;

/// How long in-flight requests may take to finish after shutdown.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the proxy on `listener` until `shutdown`. `scheme` is what the
/// listener speaks to its clients (a TLS listener passes
/// [`Scheme::Https`]): it goes into every cache key and `X-Forwarded-Proto`.
pub async fn serve(listener: TcpListener, engine: Arc<Engine>, scheme: Scheme, shutdown: Shutdown) {
    let graceful = GracefulShutdown::new();
    let stop = shutdown.wait();
    tokio::pin!(stop);
    let mut http = http1::Builder::new();
    // Vectored writes always: the response head and the cached body `Bytes`
    // leave in one `writev` with no copy in user space (measured: a 100 KiB
    // hit runs the same instructions as a 1 KiB one). hyper's default
    // guesses this from the IO type and would silently fall back to
    // copying every body into its own buffer if a wrapper around the
    // stream stopped reporting vectored support.
    http.writev(true)
        .keep_alive(true)
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let engine = Arc::clone(&engine);
                let svc = hyper::service::service_fn(move |req| {
                    let engine = Arc::clone(&engine);
                    async move { Ok::<_, Infallible>(engine.handle(req, peer, scheme).await) }
                });
                let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), svc));
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(%peer, "connection ended: {e}");
                    }
                });
            }
            _ = &mut stop => break,
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(DRAIN_TIMEOUT) => tracing::warn!("in-flight requests still running after {DRAIN_TIMEOUT:?}; closing"),
    }
}
