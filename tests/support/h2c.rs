//! HTTP/2 from the client's side: a real hyper `client::conn::http2`
//! connection over plain TCP with prior knowledge ([`connect`], [`send`]),
//! and, for the flood tests, frames written by hand ([`frame`], [`hpack`])
//! so a test can send what no well-behaved client would.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Bounds every HTTP/2 exchange, so a hung node fails the test.
pub const H2_WAIT: Duration = Duration::from_secs(10);

/// One HTTP/2 connection (h2c, prior knowledge) to `addr`; the connection
/// is driven on its own task until every sender is dropped.
pub async fn connect(addr: SocketAddr) -> SendRequest<Full<Bytes>> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2 handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    send
}

/// A request for `http://{authority}{path}`: hyper sends the target as
/// `:scheme`, `:authority` and `:path`, and no `Host`.
pub fn request(authority: &str, path: &str) -> http::request::Builder {
    Request::builder().uri(format!("http://{authority}{path}"))
}

/// Sends `req` on `conn` and reads the whole answer (bounded by [`H2_WAIT`]).
pub async fn send(
    conn: &mut SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> Result<(http::response::Parts, Bytes), String> {
    let exchange = async {
        conn.ready().await.map_err(|e| format!("ready: {e}"))?;
        let resp: Response<hyper::body::Incoming> = conn
            .send_request(req)
            .await
            .map_err(|e| format!("send: {e}"))?;
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        Ok((parts, body))
    };
    tokio::time::timeout(H2_WAIT, exchange)
        .await
        .map_err(|_| "timed out".to_string())?
}

/// GETs `path` for `authority` on a new HTTP/2 connection to `addr`.
pub async fn get_once(addr: SocketAddr, authority: &str, path: &str) -> (u16, Bytes) {
    let mut c = connect(addr).await;
    let req = request(authority, path)
        .body(Full::new(Bytes::new()))
        .expect("request");
    let (parts, body) = send(&mut c, req).await.expect("h2 answer");
    (parts.status.as_u16(), body)
}

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame types (RFC 9113 §6).
pub mod kind {
    pub const HEADERS: u8 = 0x1;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const GOAWAY: u8 = 0x7;
    pub const CONTINUATION: u8 = 0x9;
}

/// Frame flags.
pub const END_STREAM: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
/// RST_STREAM error code CANCEL (RFC 9113 §7).
pub const CANCEL: u32 = 0x8;

/// One frame: the 9-byte header (24-bit length, type, flags, 31-bit stream
/// id) and the payload (RFC 9113 §4.1).
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("payload under 16 MiB");
    assert!(len < 1 << 24, "payload under 16 MiB");
    let mut f = Vec::with_capacity(9 + payload.len());
    f.extend_from_slice(&len.to_be_bytes()[1..]);
    f.push(kind);
    f.push(flags);
    f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// RST_STREAM with `code`.
pub fn rst_stream(stream: u32, code: u32) -> Vec<u8> {
    frame(kind::RST_STREAM, 0, stream, &code.to_be_bytes())
}

/// An empty SETTINGS frame: the client's half of the preface.
pub fn settings() -> Vec<u8> {
    frame(kind::SETTINGS, 0, 0, &[])
}

/// HPACK (RFC 7541) just far enough for a test client: literal header
/// fields without indexing and with a literal name (§6.2.2), no Huffman.
pub mod hpack {
    /// An integer with an `n`-bit prefix (§5.1) after `first`'s high bits.
    fn integer(out: &mut Vec<u8>, first: u8, n: u32, mut v: usize) {
        let max = (1usize << n) - 1;
        if v < max {
            out.push(first | v as u8);
            return;
        }
        out.push(first | max as u8);
        v -= max;
        while v >= 128 {
            out.push((v % 128) as u8 | 0x80);
            v /= 128;
        }
        out.push(v as u8);
    }

    /// One field: `0000 0000`, the name, the value, both as raw strings.
    pub fn literal(out: &mut Vec<u8>, name: &str, value: &[u8]) {
        out.push(0x00);
        integer(out, 0, 7, name.len());
        out.extend_from_slice(name.as_bytes());
        integer(out, 0, 7, value.len());
        out.extend_from_slice(value);
    }

    /// The block of a GET for `http://{authority}{path}`.
    pub fn get(authority: &str, path: &str) -> Vec<u8> {
        let mut b = Vec::new();
        literal(&mut b, ":method", b"GET");
        literal(&mut b, ":scheme", b"http");
        literal(&mut b, ":authority", authority.as_bytes());
        literal(&mut b, ":path", path.as_bytes());
        b
    }
}

/// What a raw connection's reader saw: the server's GOAWAY, if any, and
/// whether the connection then ended.
#[derive(Debug, Default, Clone, Copy)]
pub struct Seen {
    /// The GOAWAY error code, when one arrived.
    pub goaway: Option<u32>,
    /// The GOAWAY's last stream id: the highest stream the server says it
    /// may have acted on.
    pub last_stream: u32,
    /// The server closed (EOF or reset).
    pub closed: bool,
}

/// Reads frames from the server until it closes or a GOAWAY arrived and
/// the stream ended, at most `limit` bytes (so a reader is bounded too),
/// reporting what it saw through `tx` as it goes.
pub async fn watch(
    mut rd: tokio::net::tcp::OwnedReadHalf,
    tx: tokio::sync::watch::Sender<Seen>,
    limit: usize,
) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    let mut read = 0usize;
    loop {
        match rd.read(&mut chunk).await {
            Ok(0) | Err(_) => {
                tx.send_modify(|s| s.closed = true);
                return;
            }
            Ok(n) => {
                read += n;
                buf.extend_from_slice(&chunk[..n]);
            }
        }
        // Whole frames only; GOAWAY's payload starts with the last stream
        // id, then the error code.
        while buf.len() >= 9 {
            let len = usize::from(buf[0]) << 16 | usize::from(buf[1]) << 8 | usize::from(buf[2]);
            if buf.len() < 9 + len {
                break;
            }
            if buf[3] == kind::GOAWAY && len >= 8 {
                let last = u32::from_be_bytes([buf[9], buf[10], buf[11], buf[12]]) & 0x7fff_ffff;
                let code = u32::from_be_bytes([buf[13], buf[14], buf[15], buf[16]]);
                tx.send_modify(|s| {
                    s.goaway = Some(code);
                    s.last_stream = last;
                });
            }
            buf.drain(..9 + len);
        }
        if read > limit {
            return;
        }
    }
}
