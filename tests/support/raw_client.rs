//! A raw-TCP client for hostile-client tests: it sends exactly the bytes
//! it is given (all at once or trickled), reads what comes back within a
//! bound, and reports the responses it could frame, whether the server
//! closed the connection, and every byte it read. No HTTP library sits in
//! between, so it can send what no well-behaved client would.
//!
//! ```ignore
//! let got = raw::exchange(edge.addr, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 1).await;
//! assert_eq!(got.statuses(), [200]);
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How long a read waits for the server unless told otherwise: well past
/// any answer a node on loopback gives, well under a test's patience.
pub const READ_WITHIN: Duration = Duration::from_secs(5);

/// One response as framed from the bytes read.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    /// Header fields, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What a client saw.
#[derive(Debug, Default)]
pub struct Exchange {
    /// The complete responses, in order.
    pub responses: Vec<RawResponse>,
    /// The server closed (or reset) the connection.
    pub closed: bool,
    /// Every byte read.
    pub bytes: Vec<u8>,
}

impl Exchange {
    pub fn statuses(&self) -> Vec<u16> {
        self.responses.iter().map(|r| r.status).collect()
    }
}

/// A raw connection to a server.
pub struct RawClient {
    stream: TcpStream,
    read: Vec<u8>,
    closed: bool,
}

impl RawClient {
    pub async fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        RawClient {
            stream,
            read: Vec::new(),
            closed: false,
        }
    }

    /// Writes `bytes`; `false` if the server had closed or reset the
    /// connection.
    pub async fn send(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).await.is_ok()
    }

    /// Writes `bytes` `chunk` bytes at a time with `pause` between pieces;
    /// `false` as soon as a write fails.
    pub async fn trickle(&mut self, bytes: &[u8], chunk: usize, pause: Duration) -> bool {
        for piece in bytes.chunks(chunk.max(1)) {
            if !self.send(piece).await {
                return false;
            }
            tokio::time::sleep(pause).await;
        }
        true
    }

    /// Reads until `want` complete responses have arrived, the server
    /// closes, or `within` passes; returns everything read so far.
    pub async fn read_responses(&mut self, want: usize, within: Duration) -> Exchange {
        let deadline = Instant::now() + within;
        let mut buf = vec![0u8; 16 << 10];
        while !self.closed && parse_responses(&self.read).len() < want {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Err(_) => break,
                Ok(Ok(0)) | Ok(Err(_)) => self.closed = true,
                Ok(Ok(n)) => self.read.extend_from_slice(&buf[..n]),
            }
        }
        self.exchange()
    }

    /// Reads until the server closes or `within` passes.
    pub async fn read_until_closed(&mut self, within: Duration) -> Exchange {
        self.read_responses(usize::MAX, within).await
    }

    /// What was read so far.
    pub fn exchange(&self) -> Exchange {
        Exchange {
            responses: parse_responses(&self.read),
            closed: self.closed,
            bytes: self.read.clone(),
        }
    }
}

/// Sends `request` on a new connection and reads `want` responses (or
/// until the server closes, or [`READ_WITHIN`]).
pub async fn exchange(addr: SocketAddr, request: &[u8], want: usize) -> Exchange {
    let mut c = RawClient::connect(addr).await;
    c.send(request).await;
    c.read_responses(want, READ_WITHIN).await
}

/// Sends `request` on a new connection and reads until the server closes
/// it (or [`READ_WITHIN`]): for requests a server must answer and then
/// close on.
pub async fn exchange_to_close(addr: SocketAddr, request: &[u8]) -> Exchange {
    let mut c = RawClient::connect(addr).await;
    c.send(request).await;
    c.read_until_closed(READ_WITHIN).await
}

/// What a slowloris client saw.
#[derive(Debug)]
pub struct Slowloris {
    /// The server closed the connection before the client gave up.
    pub closed: bool,
    /// From the connect to the close (or to giving up).
    pub held: Duration,
    pub read: Exchange,
}

/// A slowloris client: starts a request head and then sends one more
/// header field every `pause`, never finishing, for at most `give_up`.
pub async fn slowloris(addr: SocketAddr, pause: Duration, give_up: Duration) -> Slowloris {
    let start = Instant::now();
    let mut c = RawClient::connect(addr).await;
    let mut alive = c.send(b"GET /slow HTTP/1.1\r\nHost: a\r\n").await;
    let mut n = 0u64;
    while alive && start.elapsed() < give_up {
        // Wait for the next tick, or for the server to close first.
        let read = c.read_until_closed(pause).await;
        if read.closed {
            break;
        }
        n += 1;
        alive = c.send(format!("X-Slow-{n}: 1\r\n").as_bytes()).await;
    }
    if !c.closed {
        // A failed write means the server is gone; read what it said.
        c.read_until_closed(Duration::from_millis(200)).await;
    }
    Slowloris {
        closed: c.closed,
        held: start.elapsed(),
        read: c.exchange(),
    }
}

/// Opens `n` connections to `addr` that send nothing, 64 connects at a
/// time.
pub async fn idle_connections(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut open = Vec::with_capacity(n);
    while open.len() < n {
        let batch = (n - open.len()).min(64);
        let connects = (0..batch).map(|_| TcpStream::connect(addr));
        for c in futures_util::future::join_all(connects).await {
            open.push(c.expect("connect"));
        }
    }
    open
}

/// How many of `conns` the server has closed: a read that returns at once
/// with end-of-stream or an error. A connection still open has nothing to
/// read and is left as it was.
pub async fn closed_count(conns: &mut [TcpStream]) -> usize {
    let mut closed = 0;
    let mut buf = [0u8; 512];
    for c in conns {
        match tokio::time::timeout(Duration::from_millis(1), c.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => closed += 1,
            // Bytes (an error response before the close) or nothing yet.
            Ok(Ok(_)) | Err(_) => {}
        }
    }
    closed
}

/// The complete responses at the start of `bytes`: status line, fields,
/// and a body framed by Content-Length or chunked coding (none for 1xx,
/// 204 and 304). Stops at the first incomplete or unframeable one.
pub fn parse_responses(bytes: &[u8]) -> Vec<RawResponse> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while let Some((response, used)) = parse_one(rest) {
        out.push(response);
        rest = &rest[used..];
    }
    out
}

fn parse_one(bytes: &[u8]) -> Option<(RawResponse, usize)> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&bytes[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let body_start = end + 4;
    let find = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    if (100..200).contains(&status) || status == 204 || status == 304 {
        let r = RawResponse {
            status,
            headers,
            body: Vec::new(),
        };
        return Some((r, body_start));
    }
    let (body, used) = if find("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        dechunk(&bytes[body_start..])?
    } else {
        let len: usize = find("content-length")?.parse().ok()?;
        let body = bytes.get(body_start..body_start + len)?;
        (body.to_vec(), len)
    };
    Some((
        RawResponse {
            status,
            headers,
            body,
        },
        body_start + used,
    ))
}

/// A chunked body and the bytes it took, trailers included.
fn dechunk(bytes: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let line_end = at + bytes[at..].windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&bytes[at..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        at = line_end + 2;
        if size == 0 {
            // Trailers, then the empty line.
            let end = bytes[at..].windows(2).position(|w| w == b"\r\n")?;
            if end == 0 {
                return Some((body, at + 2));
            }
            let t = bytes[at..].windows(4).position(|w| w == b"\r\n\r\n")?;
            return Some((body, at + t + 4));
        }
        body.extend_from_slice(bytes.get(at..at + size)?);
        at += size + 2;
        if bytes.len() < at {
            return None;
        }
    }
}
