//! Streaming a file as a sequence of pieces: literal bytes (multipart
//! framing) and file ranges read in bounded chunks.

use std::collections::VecDeque;
use std::io::SeekFrom;

use axum::body::Body;
use bytes::Bytes;
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
