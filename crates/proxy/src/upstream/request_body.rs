//! The client's request body on its way upstream, wrapped so that a failure
//! on the client's side is known as such: a malformed or truncated body,
//! or a client that stops sending, is the client's fault (400) and must
//! never be held against the upstream it was being sent to.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use crate::body::{Body, BoxError};

/// A client request body being streamed upstream. It ends with an error
/// (so hyper aborts the upstream request) when the client's body is
/// malformed or cut short, or when no byte of it arrives for `idle`; in
/// each case the shared [`BodyState`] records that the client was at fault.
#[derive(Debug)]
pub struct RequestBody {
    inner: Incoming,
    idle: Duration,
    /// Armed when the client has nothing for us; reset by every frame.
    stall: Pin<Box<Sleep>>,
    armed: bool,
    state: Arc<BodyState>,
}

/// What the sender of a request learns about its body afterwards.
#[derive(Debug)]
pub struct BodyState {
    born: Instant,
    /// Millis after `born` of the last frame read from the client.
    progress_ms: AtomicU64,
    done: AtomicBool,
    fault: OnceLock<String>,
}

impl BodyState {
    /// Why the client's body failed, if it did.
    pub fn fault(&self) -> Option<&str> {
        self.fault.get().map(String::as_str)
    }

    /// Whether the whole body has been read from the client.
    pub fn is_done(&self) -> bool {
        self.done.load(Ordering::Relaxed)
    }

    /// When the last piece of the body arrived (the start if none has).
    pub fn last_progress(&self) -> Instant {
        self.born + Duration::from_millis(self.progress_ms.load(Ordering::Relaxed))
    }

    fn fail(&self, why: String) -> BoxError {
        let why = self.fault.get_or_init(|| why);
        why.clone().into()
    }
}

impl RequestBody {
    pub fn new(inner: Incoming, idle: Duration) -> Self {
        RequestBody {
            inner,
            idle,
            stall: Box::pin(tokio::time::sleep(idle)),
            armed: false,
            state: Arc::new(BodyState {
                born: Instant::now(),
                progress_ms: AtomicU64::new(0),
                done: AtomicBool::new(false),
                fault: OnceLock::new(),
            }),
        }
    }

    /// Wraps a streamed client body (a `Body::Stream` with no upstream
    /// guard, as the engine builds from the client's `Incoming`) and
    /// returns it with its state; any other body is returned as it is.
    pub fn wrap(body: Body, idle: Duration) -> (Body, Option<Arc<BodyState>>) {
        match body {
            Body::Stream {
                prefix,
                rest,
                guard: None,
            } if prefix.is_empty() => {
                let rb = RequestBody::new(rest, idle);
                let state = Arc::clone(&rb.state);
                (Body::Request(rb), Some(state))
            }
            Body::Request(rb) => {
                let state = Arc::clone(&rb.state);
                (Body::Request(rb), Some(state))
            }
            other => (other, None),
        }
    }
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.armed = false;
                let ms = this.state.born.elapsed().as_millis();
                this.state
                    .progress_ms
                    .store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Relaxed);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                let why = format!("client request body: {e}");
                Poll::Ready(Some(Err(this.state.fail(why))))
            }
            Poll::Ready(None) => {
                this.state.done.store(true, Ordering::Relaxed);
                Poll::Ready(None)
            }
            Poll::Pending => {
                if !this.armed {
                    this.stall.as_mut().reset(Instant::now() + this.idle);
                    this.armed = true;
                }
                match this.stall.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        let why = format!("client sent no request body for {:?}", this.idle);
                        Poll::Ready(Some(Err(this.state.fail(why))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
