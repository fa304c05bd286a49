//! The client deadlines of one connection: `timeouts.client-header` (a
//! request head must arrive within it) and `timeouts.client-idle` (a
//! kept-alive connection with no request in flight is closed after it).
//!
//! hyper's own `header_read_timeout` starts when it begins waiting for a
//! head, idle time included, so it cannot tell a slow head (slowloris) from
//! a connection resting between requests; nginx (`client_header_timeout`,
//! `keepalive_timeout`) and Varnish (`timeout_req`, `timeout_idle`) keep
//! them apart, and so do we. A connection is in one phase:
//!
//! ```text
//! accepted ─► Head ──(request parsed)──► Busy ──(last response sent)──► Idle
//!              ▲                                                         │
//!              └──────────────(a byte of the next request)───────────────┘
//! ```
//!
//! `Head` ends after `client-header`, `Idle` after `client-idle`; `Busy`
//! has no deadline here (the request body and the upstream have their own).
//! On HTTP/2 the client's PING and SETTINGS frames are not a request head,
//! so once a connection has shown it speaks h2 reads no longer start one:
//! only the idle deadline applies between streams.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Version;
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use crate::body::{Body, BoxError};

/// Where a connection is, and since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for (the rest of) a request head, since the connection
    /// opened or the first byte of the head arrived.
    Head(Instant),
    /// This many requests are being served.
    Busy(u64),
    /// No request in flight since then.
    Idle(Instant),
}

/// What expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// `timeouts.client-header`.
    Header,
    /// `timeouts.client-idle`.
    Idle,
}

/// A [`Phase`] in one word, so the IO, the service and the watchdog share
/// it without a lock (three lock round trips per request were a visible
/// share of a 1 KiB hit): the top two bits say which phase, the rest hold
/// the request count or the nanoseconds since the connection was accepted
/// (2^62 ns is 146 years).
const TAG_SHIFT: u32 = 62;
const VALUE_MASK: u64 = (1 << TAG_SHIFT) - 1;
const HEAD: u64 = 0;
const BUSY: u64 = 1;
const IDLE: u64 = 2;

/// The phase of one connection, shared by its IO, its service and its
/// watchdog.
#[derive(Debug)]
pub struct Activity {
    phase: AtomicU64,
    /// When the connection was accepted; phase times count from it.
    base: Instant,
    /// Set once a request arrived over HTTP/2.
    h2: AtomicBool,
    header: Duration,
    idle: Duration,
}

impl Activity {
    /// A connection accepted now: its first head is due within `header`.
    pub fn new(header: Duration, idle: Duration) -> Self {
        Activity {
            phase: AtomicU64::new(HEAD << TAG_SHIFT),
            base: Instant::now(),
            h2: AtomicBool::new(false),
            header,
            idle,
        }
    }

    fn encode_time(&self, tag: u64, at: Instant) -> u64 {
        let nanos =
            u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(VALUE_MASK);
        (tag << TAG_SHIFT) | nanos.min(VALUE_MASK)
    }

    fn decode(&self, word: u64) -> Phase {
        let value = word & VALUE_MASK;
        let at = || self.base + Duration::from_nanos(value);
        match word >> TAG_SHIFT {
            BUSY => Phase::Busy(value),
            IDLE => Phase::Idle(at()),
            _ => Phase::Head(at()),
        }
    }

    fn phase(&self) -> Phase {
        self.decode(self.phase.load(Ordering::Acquire))
    }

    /// Bytes arrived from the client.
    fn read(&self) {
        if self.h2.load(Ordering::Relaxed) {
            return;
        }
        let word = self.phase.load(Ordering::Acquire);
        if word >> TAG_SHIFT == IDLE {
            // Lost only to a request starting or ending meanwhile, which
            // moves the phase on by itself.
            let head = self.encode_time(HEAD, Instant::now());
            let _ = self
                .phase
                .compare_exchange(word, head, Ordering::AcqRel, Ordering::Acquire);
        }
    }

    /// A request head was parsed; the returned guard ends the request when
    /// its response body is dropped (sent, or the connection gone).
    pub fn started(self: &std::sync::Arc<Self>, version: Version) -> Served {
        if version == Version::HTTP_2 {
            self.h2.store(true, Ordering::Relaxed);
        }
        let _ = self
            .phase
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                Some(match word >> TAG_SHIFT {
                    BUSY => word + 1,
                    _ => (BUSY << TAG_SHIFT) | 1,
                })
            });
        Served(std::sync::Arc::clone(self))
    }

    fn finished(&self) {
        // Read once, outside the update (which may run more than once).
        let idle = self.encode_time(IDLE, Instant::now());
        let _ = self
            .phase
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                Some(match word >> TAG_SHIFT {
                    BUSY if word & VALUE_MASK > 1 => word - 1,
                    _ => idle,
                })
            });
    }

    /// The current deadline and what it is, `None` while busy.
    fn deadline(&self) -> Option<(Instant, Expired)> {
        match self.phase() {
            Phase::Head(since) => Some((since + self.header, Expired::Header)),
            Phase::Idle(since) => Some((since + self.idle, Expired::Idle)),
            Phase::Busy(_) => None,
        }
    }

    /// Resolves when the connection has overstayed its current phase.
    ///
    /// Phase changes do not wake the watchdog (that would be a task wake-up
    /// and a timer per request on the hit path): it looks again at least
    /// every `min(header, idle)`. Every new deadline is at least that far
    /// from the change that set it, so the look that finds it expired is
    /// never late.
    pub async fn expired(&self) -> Expired {
        let step = self.header.min(self.idle);
        loop {
            let now = Instant::now();
            let wake = match self.deadline() {
                Some((at, what)) if at <= now => return what,
                Some((at, _)) => at.min(now + step),
                None => now + step,
            };
            tokio::time::sleep_until(wake).await;
        }
    }
}

/// One request in flight; dropping it ends the request.
#[derive(Debug)]
pub struct Served(std::sync::Arc<Activity>);

impl Drop for Served {
    fn drop(&mut self) {
        self.0.finished();
    }
}

/// A response body that ends its request's [`Served`] when it is dropped.
pub struct Tracked {
    body: Body,
    _served: Served,
}

impl Tracked {
    pub fn new(body: Body, served: Served) -> Self {
        Tracked {
            body,
            _served: served,
        }
    }
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A client stream that tells its [`Activity`] when bytes arrive; writes
/// pass through untouched (vectored writes included).
pub struct Watched<S> {
    inner: S,
    activity: std::sync::Arc<Activity>,
}

impl<S> Watched<S> {
    pub fn new(inner: S, activity: std::sync::Arc<Activity>) -> Self {
        Watched { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.read();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    const HEADER: Duration = Duration::from_secs(10);
    const IDLE: Duration = Duration::from_secs(60);

    #[tokio::test(start_paused = true)]
    async fn a_new_connection_must_send_its_head_within_client_header() {
        let a = Activity::new(HEADER, IDLE);
        let t = Instant::now();
        assert_eq!(a.expired().await, Expired::Header);
        assert_eq!(t.elapsed(), HEADER);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_has_no_client_deadline_then_idle_applies() {
        let a = Arc::new(Activity::new(HEADER, IDLE));
        let served = a.started(Version::HTTP_11);
        let watchdog = tokio::spawn({
            let a = Arc::clone(&a);
            async move { a.expired().await }
        });
        tokio::time::sleep(HEADER * 3).await;
        assert!(!watchdog.is_finished(), "no deadline while busy");
        let t = Instant::now();
        drop(served);
        assert_eq!(watchdog.await.ok(), Some(Expired::Idle));
        assert_eq!(t.elapsed(), IDLE);
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_byte_of_the_next_head_starts_the_header_deadline() {
        let a = Arc::new(Activity::new(HEADER, IDLE));
        drop(a.started(Version::HTTP_11));
        tokio::time::sleep(Duration::from_secs(5)).await;
        a.read();
        let t = Instant::now();
        assert_eq!(a.expired().await, Expired::Header);
        assert_eq!(t.elapsed(), HEADER);
    }

    #[tokio::test(start_paused = true)]
    async fn h2_frames_between_streams_are_not_a_head() {
        let a = Arc::new(Activity::new(HEADER, IDLE));
        drop(a.started(Version::HTTP_2));
        a.read();
        assert_eq!(a.expired().await, Expired::Idle);
    }
}
