//! An origin that speaks raw TCP, not HTTP, so it can misbehave the way a
//! broken server or a hostile one does: a test scripts the bytes of every
//! answer, and the origin writes exactly those, however wrong.
//!
//! ```ignore
//! // Every request gets a Content-Length of 10 and 4 bytes, then a close.
//! let origin = RawOrigin::start(|_req| {
//!     Script::new()
//!         .write("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabcd")
//!         .close()
//! })
//! .await;
//! ```
//!
//! For each connection the origin reads a request head (up to the blank
//! line; request bodies are not read, the edge's fills are bodiless GETs),
//! records it, and asks the test's function for a [`Script`], passing a
//! [`Request`]: its number over every connection, its connection's number,
//! its number on that connection (a script per connection answers by the
//! last two), and its head. It then runs the script's [`Step`]s in order:
//! write bytes, pause, trickle bytes at a pace, close, reset (`SO_LINGER`
//! 0, so the peer gets an RST), or stay silent until the origin is
//! dropped. A script that ends without closing leaves the connection open
//! for the next request (keep-alive). Everything listens on 127.0.0.1 with
//! a port from the OS, and every task ends when the origin is dropped.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use meridian_common::Shutdown;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Largest request head the origin reads; a larger one closes the
/// connection (the edge never sends one).
const MAX_REQUEST_HEAD: usize = 64 << 10;

/// One thing the origin does on a connection.
#[derive(Debug, Clone)]
pub enum Step {
    /// Write these bytes at once.
    Write(Bytes),
    /// Wait this long.
    Pause(Duration),
    /// Write these bytes one at a time, one every `every`.
    Trickle { bytes: Bytes, every: Duration },
    /// Close the connection (a FIN) and stop.
    Close,
    /// Reset the connection (`SO_LINGER` 0, an RST) and stop.
    Reset,
    /// Write nothing more and keep the connection open until the origin
    /// is dropped.
    Silent,
}

/// What the origin does for one request: its [`Step`]s in order.
#[derive(Debug, Clone, Default)]
pub struct Script(pub Vec<Step>);

impl Script {
    pub fn new() -> Self {
        Script::default()
    }

    pub fn write(mut self, bytes: impl Into<Bytes>) -> Self {
        self.0.push(Step::Write(bytes.into()));
        self
    }

    pub fn pause(mut self, d: Duration) -> Self {
        self.0.push(Step::Pause(d));
        self
    }

    pub fn trickle(mut self, bytes: impl Into<Bytes>, every: Duration) -> Self {
        self.0.push(Step::Trickle {
            bytes: bytes.into(),
            every,
        });
        self
    }

    pub fn close(mut self) -> Self {
        self.0.push(Step::Close);
        self
    }

    pub fn reset(mut self) -> Self {
        self.0.push(Step::Reset);
        self
    }

    pub fn silent(mut self) -> Self {
        self.0.push(Step::Silent);
        self
    }
}

/// A complete, well-formed response: status line, the given fields, a
/// `Content-Length` for `body`, and the body.
pub fn response(status: &str, fields: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\n").into_bytes();
    for (k, v) in fields {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

/// A request the origin read, as its script function sees it.
#[derive(Debug, Clone)]
pub struct Request {
    /// Its number among every request the origin read, from 0.
    pub n: usize,
    /// Its connection's number, from 0.
    pub connection: usize,
    /// Its number on its connection, from 0.
    pub on_connection: usize,
    /// The request line and fields, as text.
    pub head: String,
}

type ScriptFn = dyn Fn(&Request) -> Script + Send + Sync;

#[derive(Default)]
struct Record {
    connections: AtomicUsize,
    heads: Mutex<Vec<String>>,
}

/// A raw-TCP origin running scripts; see the module docs.
pub struct RawOrigin {
    pub addr: SocketAddr,
    record: Arc<Record>,
    shutdown: Shutdown,
}

impl RawOrigin {
    /// Starts the origin; `script(request)` says what to do for each
    /// request.
    pub async fn start<F>(script: F) -> RawOrigin
    where
        F: Fn(&Request) -> Script + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
        let addr = listener.local_addr().expect("addr");
        let record: Arc<Record> = Arc::default();
        let shutdown = Shutdown::new();
        let script: Arc<ScriptFn> = Arc::new(script);
        let (rec, sd) = (Arc::clone(&record), shutdown.clone());
        tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    () = sd.wait() => return,
                    r = listener.accept() => match r {
                        Ok((s, _)) => s,
                        Err(_) => continue,
                    },
                };
                let connection = rec.connections.fetch_add(1, Ordering::SeqCst);
                let (rec, script, sd) = (Arc::clone(&rec), Arc::clone(&script), sd.clone());
                tokio::spawn(async move {
                    tokio::select! {
                        () = sd.wait() => {}
                        () = serve(stream, connection, &rec, &*script, &sd) => {}
                    }
                });
            }
        });
        RawOrigin {
            addr,
            record,
            shutdown,
        }
    }

    /// An origin that answers every request with the same script.
    pub async fn always(script: Script) -> RawOrigin {
        RawOrigin::start(move |_| script.clone()).await
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.record.connections.load(Ordering::SeqCst)
    }

    /// Requests read so far (every connection).
    pub fn requests(&self) -> usize {
        self.heads().len()
    }

    /// The request heads read so far, in order, as text.
    pub fn heads(&self) -> Vec<String> {
        self.record.heads.lock().expect("heads").clone()
    }
}

impl Drop for RawOrigin {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// Serves one connection: a request head, its script, and again while the
/// script leaves the connection open.
async fn serve(
    mut stream: TcpStream,
    connection: usize,
    rec: &Record,
    script: &ScriptFn,
    sd: &Shutdown,
) {
    let mut buf = Vec::new();
    for on_connection in 0.. {
        let Some(head) = read_head(&mut stream, &mut buf).await else {
            return;
        };
        let n = {
            let mut heads = rec.heads.lock().expect("heads");
            heads.push(head.clone());
            heads.len() - 1
        };
        let request = Request {
            n,
            connection,
            on_connection,
            head,
        };
        for step in script(&request).0 {
            match step {
                Step::Write(b) => {
                    if stream.write_all(&b).await.is_err() {
                        return;
                    }
                }
                Step::Pause(d) => tokio::time::sleep(d).await,
                Step::Trickle { bytes, every } => {
                    for byte in bytes.iter() {
                        if stream.write_all(&[*byte]).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(every).await;
                    }
                }
                Step::Close => {
                    let _ = stream.shutdown().await;
                    return;
                }
                Step::Reset => {
                    let _ = stream.set_zero_linger();
                    return; // dropped with linger 0: an RST
                }
                Step::Silent => {
                    sd.wait().await;
                    return;
                }
            }
        }
    }
}

/// Reads up to the end of a request head; bytes past it stay in `buf` for
/// the next. `None` when the peer closed or the head is too large.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head: Vec<u8> = buf.drain(..end + 4).collect();
            return Some(String::from_utf8_lossy(&head[..end]).into_owned());
        }
        if buf.len() > MAX_REQUEST_HEAD {
            return None;
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}
