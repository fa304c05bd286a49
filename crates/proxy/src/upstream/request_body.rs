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
pub struct RequestBody<B = Incoming> {
    inner: B,
    idle: Duration,
    /// Armed when the client has nothing for us; disarmed by every frame.
    /// Made on the first wait, so a body that never waits costs no timer.
    stall: Option<Pin<Box<Sleep>>>,
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

impl<B> RequestBody<B> {
    pub fn new(inner: B, idle: Duration) -> Self {
        RequestBody {
            inner,
            idle,
            stall: None,
            armed: false,
            state: Arc::new(BodyState {
                born: Instant::now(),
                progress_ms: AtomicU64::new(0),
                done: AtomicBool::new(false),
                fault: OnceLock::new(),
            }),
        }
    }

    pub fn state(&self) -> &Arc<BodyState> {
        &self.state
    }
}

impl RequestBody {
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

impl<B> http_body::Body for RequestBody<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
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
                let until = Instant::now() + this.idle;
                let stall = this
                    .stall
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(until)));
                if !this.armed {
                    stall.as_mut().reset(until);
                    this.armed = true;
                }
                match stall.as_mut().poll(cx) {
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

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::io;

    use http_body::Body as _;

    use super::*;

    const IDLE: Duration = Duration::from_secs(10);

    /// A client body that plays a script: `Some(Ok)` a chunk, `Some(Err)`
    /// a broken body, `None` the end; past the script it has nothing yet.
    struct Script(VecDeque<Option<Result<&'static str, &'static str>>>);

    impl http_body::Body for Script {
        type Data = Bytes;
        type Error = io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
            match self.0.pop_front() {
                None => Poll::Pending,
                Some(None) => Poll::Ready(None),
                Some(Some(Ok(s))) => Poll::Ready(Some(Ok(Frame::data(Bytes::from(s))))),
                Some(Some(Err(e))) => Poll::Ready(Some(Err(io::Error::other(e)))),
            }
        }
    }

    fn body(script: &[Option<Result<&'static str, &'static str>>]) -> RequestBody<Script> {
        RequestBody::new(Script(script.iter().copied().collect()), IDLE)
    }

    /// One poll: `Some(Ok(()))` a frame, `Some(Err)` an error, `None` pending
    /// or the end (tell them apart with the state).
    fn poll_once(b: &mut RequestBody<Script>) -> Poll<Option<Result<(), String>>> {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        Pin::new(b)
            .poll_frame(&mut cx)
            .map(|f| f.map(|r| r.map(|_| ()).map_err(|e| e.to_string())))
    }

    #[test]
    fn a_body_read_to_the_end_is_done_and_blames_no_one() {
        let mut b = body(&[Some(Ok("a")), Some(Ok("b")), None]);
        for _ in 0..2 {
            assert_eq!(poll_once(&mut b), Poll::Ready(Some(Ok(()))));
        }
        assert_eq!(poll_once(&mut b), Poll::Ready(None));
        assert!(b.state().is_done() && b.state().fault().is_none());
    }

    #[test]
    fn a_malformed_or_truncated_body_is_the_clients_fault() {
        let mut b = body(&[Some(Ok("a")), Some(Err("invalid chunk size"))]);
        assert_eq!(poll_once(&mut b), Poll::Ready(Some(Ok(()))));
        let Poll::Ready(Some(Err(e))) = poll_once(&mut b) else {
            panic!("the error is passed on, so the upstream request is aborted");
        };
        assert!(e.contains("invalid chunk size"), "{e}");
        assert!(!b.state().is_done());
        assert_eq!(b.state().fault(), Some(e.as_str()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_stops_sending_is_cut_after_the_idle_timeout() {
        let mut b = body(&[Some(Ok("a"))]);
        assert_eq!(poll_once(&mut b), Poll::Ready(Some(Ok(()))));
        assert_eq!(poll_once(&mut b), Poll::Pending);
        tokio::time::advance(IDLE - Duration::from_millis(1)).await;
        assert_eq!(poll_once(&mut b), Poll::Pending, "not yet");
        tokio::time::advance(Duration::from_millis(1)).await;
        let r = poll_once(&mut b);
        assert!(matches!(r, Poll::Ready(Some(Err(_)))), "{r:?}");
        assert!(
            b.state()
                .fault()
                .is_some_and(|f| f.contains("no request body"))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn every_piece_of_body_restarts_the_idle_timeout() {
        let mut b = body(&[Some(Ok("a"))]);
        assert_eq!(poll_once(&mut b), Poll::Ready(Some(Ok(()))));
        for _ in 0..3 {
            assert_eq!(poll_once(&mut b), Poll::Pending);
            tokio::time::advance(IDLE - Duration::from_millis(1)).await;
            b.inner.0.push_back(Some(Ok("more")));
            assert_eq!(poll_once(&mut b), Poll::Ready(Some(Ok(()))));
        }
        assert!(b.state().fault().is_none());
        assert!(b.state().last_progress() > b.state().born);
    }
}
