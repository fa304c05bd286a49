//! The one body type the proxy sends and receives: a cached `Bytes` (the
//! hit path: no boxing, no copy), an upstream body streamed through, or a
//! buffered prefix followed by the rest of an upstream stream.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use meridian_balance::InFlight;
use meridian_cache::{FillError, FillReader};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Default)]
pub enum Body {
    #[default]
    Empty,
    /// A complete body held in memory (shared with the cache).
    Full(Option<Bytes>),
    /// Several buffers sent in order (buffered prefix, multipart parts).
    Chunks(VecDeque<Bytes>),
    /// Buffered chunks, then the rest of a stream. `guard` keeps the
    /// upstream's in-flight slot until the body is done (least connections).
    Stream {
        prefix: VecDeque<Bytes>,
        rest: Incoming,
        guard: Option<InFlight>,
    },
    /// A client's request body on its way upstream, tagging client faults.
    Request(crate::upstream::RequestBody),
    /// A response body read from a fill in progress (read-while-write):
    /// ends cleanly only when the fill is complete, errors when it failed,
    /// so hyper cuts the response instead of ending it short.
    Fill(FillBody),
}

/// A [`FillReader`] as a body: its own cursor over the shared chunks.
pub struct FillBody {
    stream: BoxStream<'static, Result<Bytes, FillError>>,
    len: Option<u64>,
}

impl FillBody {
    /// Reads through `reader`; `len` is the exact number of bytes it will
    /// yield when known (a declared length or a range).
    pub fn new(reader: FillReader, len: Option<u64>) -> Self {
        let stream = futures_util::stream::unfold(reader, |mut r| async move {
            match r.next().await {
                Ok(Some(b)) => Some((Ok(b), r)),
                Ok(None) => None,
                Err(e) => Some((Err(e), r)),
            }
        })
        .boxed();
        FillBody { stream, len }
    }
}

impl std::fmt::Debug for FillBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FillBody").field("len", &self.len).finish()
    }
}

impl Body {
    pub fn full(b: impl Into<Bytes>) -> Self {
        Body::Full(Some(b.into()))
    }

    pub fn stream(rest: Incoming) -> Self {
        Body::Stream {
            prefix: VecDeque::new(),
            rest,
            guard: None,
        }
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Self {
        Body::Full(Some(b))
    }
}

impl From<&'static str> for Body {
    fn from(s: &'static str) -> Self {
        Body::Full(Some(Bytes::from_static(s.as_bytes())))
    }
}

impl From<String> for Body {
    fn from(s: String) -> Self {
        Body::Full(Some(Bytes::from(s)))
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Body::Empty => Poll::Ready(None),
            Body::Full(b) => Poll::Ready(
                b.take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
            Body::Chunks(q) => Poll::Ready(q.pop_front().map(|b| Ok(Frame::data(b)))),
            Body::Stream { prefix, rest, .. } => {
                if let Some(b) = prefix.pop_front() {
                    return Poll::Ready(Some(Ok(Frame::data(b))));
                }
                match Pin::new(rest).poll_frame(cx) {
                    Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
                    Poll::Ready(Some(Ok(f))) => Poll::Ready(Some(Ok(f))),
                    Poll::Ready(None) => Poll::Ready(None),
                    Poll::Pending => Poll::Pending,
                }
            }
            Body::Request(b) => Pin::new(b).poll_frame(cx),
            Body::Fill(f) => match f.stream.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(b))) => Poll::Ready(Some(Ok(Frame::data(b)))),
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Empty => true,
            Body::Full(b) => b.as_ref().is_none_or(Bytes::is_empty),
            Body::Chunks(q) => q.is_empty(),
            Body::Stream { prefix, rest, .. } => prefix.is_empty() && rest.is_end_stream(),
            Body::Request(b) => b.is_end_stream(),
            Body::Fill(f) => f.len == Some(0),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Empty => SizeHint::with_exact(0),
            Body::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Body::Chunks(q) => SizeHint::with_exact(q.iter().map(|b| b.len() as u64).sum()),
            Body::Stream { prefix, rest, .. } => {
                let p: u64 = prefix.iter().map(|b| b.len() as u64).sum();
                let r = rest.size_hint();
                let mut h = SizeHint::new();
                h.set_lower(p + r.lower());
                if let Some(u) = r.upper() {
                    h.set_upper(p + u);
                }
                h
            }
            Body::Request(b) => b.size_hint(),
            Body::Fill(f) => f.len.map_or_else(SizeHint::new, SizeHint::with_exact),
        }
    }
}
