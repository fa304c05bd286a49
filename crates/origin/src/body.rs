//! Streaming a file as a sequence of pieces: literal bytes (multipart
//! framing) and file ranges read in bounded chunks; and pacing any body to
//! a send rate.

use std::collections::VecDeque;
use std::io::SeekFrom;
use std::num::NonZeroU64;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// Largest read per chunk: big enough for throughput, small enough that
/// many concurrent downloads stay cheap.
const CHUNK: u64 = 128 * 1024;

pub(crate) enum Piece {
    Literal(Bytes),
    /// `len` bytes of the file from offset `pos`.
    File {
        pos: u64,
        len: u64,
    },
}

/// A body that yields `pieces` in order, reading file pieces from `file`.
/// If the file shrinks underneath us the stream fails with `UnexpectedEof`
/// rather than sending fewer bytes than the Content-Length promised.
pub(crate) fn stream(file: File, pieces: VecDeque<Piece>) -> Body {
    let state = (file, pieces, None::<u64>);
    let s = futures_util::stream::try_unfold(state, |(mut file, mut pieces, cursor)| async move {
        let Some(piece) = pieces.pop_front() else {
            return Ok::<_, std::io::Error>(None);
        };
        match piece {
            Piece::Literal(bytes) => Ok(Some((bytes, (file, pieces, cursor)))),
            Piece::File { pos, len } => {
                if cursor != Some(pos) {
                    file.seek(SeekFrom::Start(pos)).await?;
                }
                let n = len.min(CHUNK);
                let mut buf = vec![0; n as usize];
                file.read_exact(&mut buf).await?;
                if len > n {
                    pieces.push_front(Piece::File {
                        pos: pos + n,
                        len: len - n,
                    });
                }
                Ok(Some((Bytes::from(buf), (file, pieces, Some(pos + n)))))
            }
        }
    });
    Body::from_stream(s)
}

/// `body` sent at no more than `rate` bytes per second: cut into slices of
/// about a hundredth of a second's worth (1 KiB to 128 KiB), each released
/// when the bytes before it are due (`start + sent / rate`), so the first
/// slice leaves at once and the pace does not drift with timer granularity.
/// The clock
/// starts when the server first asks for body bytes, that is once the head
/// is written; that moment is logged at debug level (`origin first byte`,
/// with the wall clock in `unix_us`) so benchmarks can measure how long a
/// proxy made its clients wait for bytes the origin had already sent.
pub(crate) fn paced(body: Body, rate: NonZeroU64, path: String) -> Body {
    let slice = (rate.get() / 100).clamp(1024, CHUNK) as usize;
    let state = Paced {
        inner: body.into_data_stream(),
        pending: Bytes::new(),
        start: None,
        sent: 0,
        path,
    };
    let s = futures_util::stream::try_unfold(state, move |mut st| async move {
        while st.pending.is_empty() {
            match st.inner.next().await {
                None => return Ok(None),
                Some(chunk) => st.pending = chunk?,
            }
        }
        let chunk = st.pending.split_to(st.pending.len().min(slice));
        match st.start {
            None => {
                st.start = Some(Instant::now());
                let unix_us = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_micros() as u64);
                tracing::debug!(path = st.path.as_str(), unix_us, "origin first byte");
            }
            Some(start) => {
                let due = start + Duration::from_secs_f64(st.sent as f64 / rate.get() as f64);
                tokio::time::sleep_until(due.into()).await;
            }
        }
        st.sent += chunk.len() as u64;
        Ok::<_, axum::Error>(Some((chunk, st)))
    });
    Body::from_stream(s)
}

struct Paced {
    inner: axum::body::BodyDataStream,
    pending: Bytes,
    start: Option<Instant>,
    sent: u64,
    path: String,
}
