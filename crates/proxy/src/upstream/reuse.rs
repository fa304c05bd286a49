//! Which upstream connection a request went out on, and what it did there:
//! was the connection reused from the pool, and did any byte of a response
//! come back? hyper-util retries a request itself only when hyper hands it
//! back unsent; when the origin closes an idle keep-alive connection just
//! as the request is written, the request fails with nothing returned, and
//! only these two facts tell that race (safe to retry an idempotent request
//! on a new connection) from an origin that failed it.
//!
//! The connector wraps each new stream so that it counts its requests
//! (a write after a read starts one, in HTTP/1.1) and the bytes it read;
//! [`Usage`] rides along in hyper-util's `Connected` extras, where
//! `capture_connection` finds it after the request, whatever its result.
//! For an `https://` upstream it counts above TLS, so the handshake and
//! TLS's own records (session tickets) are not taken for a request or an
//! answer, and one pool holds both kinds of connection.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tower_service::Service;

use super::tls::UpstreamTls;
use crate::body::BoxError;

/// Per-connection counters, shared by the stream and its `Connected`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Usage(Arc<Counters>);

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    read: AtomicU64,
    read_at_request: AtomicU64,
    writing: AtomicBool,
}

/// The facts about one request's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seen {
    /// The connection had carried an earlier request.
    pub reused: bool,
    /// Some byte came back since this request started.
    pub answered: bool,
}

impl Usage {
    /// The usage recorded in a captured connection's extras.
    pub(crate) fn of(connected: &Connected) -> Option<Seen> {
        let mut ext = http::Extensions::new();
        connected.get_extras(&mut ext);
        let c = &ext.get::<Usage>()?.0;
        Some(Seen {
            reused: c.requests.load(Ordering::Relaxed) > 1,
            answered: c.read.load(Ordering::Relaxed) > c.read_at_request.load(Ordering::Relaxed),
        })
    }

    fn wrote(&self) {
        let c = &self.0;
        if !c.writing.swap(true, Ordering::Relaxed) {
            c.requests.fetch_add(1, Ordering::Relaxed);
            c.read_at_request
                .store(c.read.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }

    fn read(&self, n: usize) {
        if n > 0 {
            let c = &self.0;
            c.read.fetch_add(n as u64, Ordering::Relaxed);
            c.writing.store(false, Ordering::Relaxed);
        }
    }
}

/// A connection to an upstream: plain TCP, or TLS over it.
#[derive(Debug)]
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref().0,
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A connection that keeps its [`Usage`].
#[derive(Debug)]
pub(crate) struct Tracked {
    io: Stream,
    usage: Usage,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            let n = buf.filled().len().saturating_sub(before);
            self.usage.read(n);
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.usage.wrote();
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.usage.wrote();
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl Connection for Tracked {
    fn connected(&self) -> Connected {
        self.io.tcp().connected().extra(self.usage.clone())
    }
}

/// hyper-util's `HttpConnector` for TCP, then for an `https://` upstream
/// the TLS handshake with its [`UpstreamTls`] settings, handing out
/// [`Tracked`] streams. `connect_timeout` covers both: a handshake that
/// stalls is a connect failure like a SYN that goes unanswered.
#[derive(Debug, Clone)]
pub(crate) struct TrackingConnector {
    tcp: HttpConnector,
    tls: Arc<UpstreamTls>,
    connect_timeout: Duration,
}

impl TrackingConnector {
    pub(crate) fn new(connect_timeout: Duration, tls: Arc<UpstreamTls>) -> Self {
        let mut tcp = HttpConnector::new();
        tcp.set_connect_timeout(Some(connect_timeout));
        tcp.set_nodelay(true);
        // `https://` URIs reach the TCP step too; TLS is added below.
        tcp.enforce_http(false);
        TrackingConnector {
            tcp,
            tls,
            connect_timeout,
        }
    }
}

type Connecting = Pin<Box<dyn Future<Output = Result<TokioIo<Tracked>, BoxError>> + Send>>;

impl Service<Uri> for TrackingConnector {
    type Response = TokioIo<Tracked>;
    type Error = BoxError;
    type Future = Connecting;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Connecting {
        let tls = match uri.scheme_str() {
            Some("https") => match self.tls.endpoint(&uri) {
                Some(e) => Some(e.clone()),
                // Every https upstream has settings; one without is refused
                // rather than reached unverified.
                None => {
                    let why = format!("no TLS settings for upstream {uri}");
                    return Box::pin(async move { Err(why.into()) });
                }
            },
            Some("http") => None,
            _ => {
                let why = format!("unsupported upstream scheme in {uri}");
                return Box::pin(async move { Err(why.into()) });
            }
        };
        let connecting = self.tcp.call(uri);
        let limit = self.connect_timeout;
        Box::pin(async move {
            let connect = async move {
                let tcp = connecting.await?.into_inner();
                let io = match tls {
                    None => Stream::Plain(tcp),
                    Some(e) => {
                        let tls = tokio_rustls::TlsConnector::from(e.config)
                            .connect(e.name, tcp)
                            .await
                            .map_err(|err| TlsHandshake(err.to_string()))?;
                        Stream::Tls(Box::new(tls))
                    }
                };
                Ok::<_, BoxError>(io)
            };
            let io = tokio::time::timeout(limit, connect)
                .await
                .map_err(|_| format!("connect (TCP and TLS) took more than {limit:?}"))??;
            Ok(TokioIo::new(Tracked {
                io,
                usage: Usage::default(),
            }))
        })
    }
}

/// The TLS handshake with an upstream failed (unknown CA, wrong name,
/// expired certificate, no common protocol).
#[derive(Debug, thiserror::Error)]
#[error("TLS handshake failed: {0}")]
pub(crate) struct TlsHandshake(String);

#[cfg(test)]
mod tests {
    use super::*;

    /// The I/O a connection sees, in order: `w` a write, `r` a read of
    /// some bytes, `0` a read of nothing (the idle-close check).
    fn replay(io: &str) -> Option<Seen> {
        let usage = Usage::default();
        for step in io.chars() {
            match step {
                'w' => usage.wrote(),
                'r' => usage.read(100),
                _ => usage.read(0),
            }
        }
        Usage::of(&Connected::new().extra(usage))
    }

    #[test]
    fn a_write_after_a_read_starts_a_new_request_on_a_reused_connection() {
        let seen = |reused, answered| Some(Seen { reused, answered });
        let cases = [
            ("w", seen(false, false)),
            ("wwr", seen(false, true)),
            ("wrw", seen(true, false)),
            ("wrr0ww", seen(true, false)),
            ("wrwr", seen(true, true)),
            ("wrwrw0", seen(true, false)),
        ];
        for (io, want) in cases {
            assert_eq!(replay(io), want, "{io}");
        }
    }

    #[test]
    fn a_connection_without_usage_tells_nothing() {
        assert_eq!(Usage::of(&Connected::new()), None);
    }
}
