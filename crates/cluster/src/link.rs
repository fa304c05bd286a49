//! Loopback relays for every hop between nodes.
//!
//! A *link* ([`serve_link`]) carries one hop (edge → shield, shield →
//! origin) with that hop's simulated round trip; a *front* ([`serve_front`])
//! is what clients reach for an edge region: no added latency, round robin
//! over the region's edges. Both are raw TCP relays that apply the target
//! node's [`Fault`]:
//!
//! - no address or [`Fault::Stopped`]: new connections are closed at once;
//! - [`Fault::Failing`]: each connection gets one `503` and is closed;
//! - [`Fault::Slow`]: its milliseconds are added to the round trip;
//! - a change of address, or a switch to `Stopped` / `Failing`, closes the
//!   connections already open, so pooled keep-alive connections cannot
//!   bypass a fault.
//!
//! Latency is a delay line, not a sleep per read: a reader stamps each chunk
//! with the time it is due at the other end and queues it (bounded:
//! [`DELAY_LINE_CHUNKS`] × [`CHUNK_BYTES`], then backpressure), a writer
//! sleeps until each stamp and writes. So a link adds its round trip to a
//! transfer rather than dividing the throughput. A new connection first waits
//! one round trip (the TCP handshake it stands for).

use std::future::pending;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use meridian_common::Shutdown;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tracing::debug;

use crate::control::Fault;

/// Concurrent connections per relay; past it a new connection is accepted
/// and closed at once.
pub const MAX_CONNECTIONS: usize = 4096;

/// The most one read puts into the delay line.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// Chunks in flight per direction of a connection. With [`CHUNK_BYTES`] that
/// is at most 4 MiB per direction, about a default Linux TCP window: a link
/// carries up to 4 MiB per one-way delay, as a real connection would.
pub const DELAY_LINE_CHUNKS: usize = 64;

/// Buffer per direction of a relay that adds no latency.
pub const PLAIN_BUF_BYTES: usize = 16 * 1024;

/// The longest request head a failing node reads before answering `503`.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// How long a failing node waits for a request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a failing node keeps reading (and discarding, at most
/// [`MAX_HEAD_BYTES`]) after its `503`, so closing does not reset the answer
/// away before the client has read it.
pub const LINGER: Duration = Duration::from_secs(1);

/// How long connecting to a node may take (on loopback it is immediate, or
/// refused).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest round trip a relay simulates (a link's own plus a
/// [`Fault::Slow`]); longer ones are cut to it.
pub const MAX_RTT: Duration = Duration::from_secs(60);

/// Pause after a failed `accept` (out of file descriptors, say) so the loop
/// does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

const FAILING_BODY: &str =
    "503 Service Unavailable: this node is failing (meridian cluster fault)\n";

/// Where a relay sends its connections, and the fault of the node there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Target {
    /// The node's real listener; `None` while it is stopped.
    pub addr: Option<SocketAddr>,
    pub fault: Fault,
}

/// A target that can change while relays run (a node stopped, restarted on
/// a new port, slowed).
pub type TargetWatch = watch::Receiver<Target>;

/// Serves a link until `shutdown`: every connection to `listener` is relayed
/// to the target with `rtt` (plus the target's [`Fault::Slow`]) of round trip.
pub async fn serve_link(
    listener: TcpListener,
    rtt: Duration,
    target: TargetWatch,
    shutdown: Shutdown,
) {
    serve(listener, rtt, vec![target], MAX_CONNECTIONS, shutdown).await;
}

/// Serves a front until `shutdown`: connections go round robin to the targets
/// that are not stopped, the next one if connecting fails; with none left the
/// connection is closed. No added latency beyond the chosen target's faults.
pub async fn serve_front(listener: TcpListener, targets: Vec<TargetWatch>, shutdown: Shutdown) {
    serve(listener, Duration::ZERO, targets, MAX_CONNECTIONS, shutdown).await;
}

/// One relay: its round trip, its targets, the round-robin counter.
struct Relay {
    rtt: Duration,
    targets: Vec<TargetWatch>,
    next: AtomicUsize,
    shutdown: Shutdown,
}

async fn serve(
    listener: TcpListener,
    rtt: Duration,
    targets: Vec<TargetWatch>,
    max_connections: usize,
    shutdown: Shutdown,
) {
    let local = listener.local_addr().ok();
    let relay = Arc::new(Relay {
        rtt: rtt.min(MAX_RTT),
        targets,
        next: AtomicUsize::new(0),
        shutdown: shutdown.clone(),
    });
    let permits = Arc::new(Semaphore::new(max_connections));
    let mut stop = shutdown.wait();
    loop {
        let (client, peer) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    debug!(?local, %error, "relay accept failed");
                    tokio::select! {
                        _ = &mut stop => break,
                        _ = sleep(ACCEPT_BACKOFF) => continue,
                    }
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            debug!(?local, %peer, max_connections, "relay full; closing the connection");
            drop(client);
            continue;
        };
        let relay = relay.clone();
        tokio::spawn(async move {
            let mut stop = relay.shutdown.wait();
            tokio::select! {
                _ = &mut stop => {}
                _ = relay.handle(client, peer) => {}
            }
            drop(permit);
        });
    }
    debug!(?local, "relay stopped");
}

impl Relay {
    /// Picks a target for one connection and carries it.
    async fn handle(&self, client: TcpStream, peer: SocketAddr) {
        let accepted = Instant::now();
        let _ = client.set_nodelay(true);
        for mut watch in self.candidates() {
            // Later changes, not this state, are what `diverted` waits for.
            let target = *watch.borrow_and_update();
            let Some(addr) = target.addr else { continue };
            match target.fault {
                Fault::Stopped => continue,
                Fault::Failing => return self.fail(client, accepted, peer).await,
                Fault::None | Fault::Slow { .. } => {}
            }
            match timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(upstream)) => {
                    return self.relay(client, upstream, accepted, watch, addr).await;
                }
                Ok(Err(error)) => debug!(%peer, %addr, %error, "relay connect failed"),
                Err(_) => debug!(%peer, %addr, "relay connect timed out"),
            }
        }
        debug!(%peer, "no target to relay to; closing the connection");
    }

    /// The targets to try, in order: those not stopped, starting at the next
    /// in round robin.
    fn candidates(&self) -> Vec<TargetWatch> {
        let live: Vec<&TargetWatch> = self
            .targets
            .iter()
            .filter(|w| {
                let t = w.borrow();
                t.addr.is_some() && t.fault != Fault::Stopped
            })
            .collect();
        if live.is_empty() {
            return Vec::new();
        }
        let first = self.next.fetch_add(1, Ordering::Relaxed) % live.len();
        live[first..]
            .iter()
            .chain(&live[..first])
            .map(|w| (*w).clone())
            .collect()
    }

    /// Relays both directions through delay lines until both are done, an
    /// error on either side, or the target is diverted (stopped, failing,
    /// moved).
    async fn relay(
        &self,
        client: TcpStream,
        upstream: TcpStream,
        accepted: Instant,
        watch: TargetWatch,
        addr: SocketAddr,
    ) {
        let _ = upstream.set_nodelay(true);
        let handshake = round_trip(self.rtt, watch.borrow().fault);
        if handshake.is_zero() {
            // No latency to add (a front, its edge not slowed): a plain copy,
            // without the delay line's queue and per-chunk copies. A later
            // `slow` closes the connection, so the next one gets its delay.
            let (mut client, mut upstream) = (client, upstream);
            tokio::select! {
                done = tokio::io::copy_bidirectional_with_sizes(
                    &mut client, &mut upstream, PLAIN_BUF_BYTES, PLAIN_BUF_BYTES,
                ) => match done {
                    Ok(_) => debug!(%addr, "relayed connection closed"),
                    Err(error) => debug!(%addr, %error, "relayed connection failed; closing both sides"),
                },
                _ = diverted(watch, addr, true) => debug!(%addr, "target changed; closing the relayed connection"),
            }
            return;
        }
        let ready = accepted + handshake;
        let rtt = self.rtt;
        let faults = watch.clone();
        let one_way = move || round_trip(rtt, faults.borrow().fault) / 2;
        let (client_read, client_write) = client.into_split();
        let (upstream_read, upstream_write) = upstream.into_split();
        let up = delay_line(client_read, upstream_write, ready, one_way.clone());
        let down = delay_line(upstream_read, client_write, ready, one_way);
        tokio::select! {
            done = async { tokio::try_join!(up, down) } => match done {
                Ok(_) => debug!(%addr, "relayed connection closed"),
                Err(error) => debug!(%addr, %error, "relayed connection failed; closing both sides"),
            },
            _ = diverted(watch, addr, false) => debug!(%addr, "target changed; closing the relayed connection"),
        }
    }

    /// A failing node: reads the request head (bounded), answers `503` a
    /// round trip later, closes.
    async fn fail(&self, mut client: TcpStream, accepted: Instant, peer: SocketAddr) {
        match timeout(HEAD_TIMEOUT, read_head(&mut client)).await {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => return debug!(%peer, "no complete request head; closing"),
            Ok(Err(error)) => return debug!(%peer, %error, "reading the request head failed"),
            Err(_) => return debug!(%peer, "no request head in time; closing"),
        }
        // The head reaches the node half a round trip after it was sent, the
        // answer comes back in the other half; nothing before the handshake.
        sleep_until(Instant::now().max(accepted + self.rtt) + self.rtt).await;
        if let Err(error) = client.write_all(failing_response().as_bytes()).await {
            return debug!(%peer, %error, "writing the 503 failed");
        }
        let _ = client.shutdown().await;
        let _ = timeout(LINGER, discard(&mut client, MAX_HEAD_BYTES)).await;
        debug!(%peer, "answered 503 (failing)");
    }
}

/// A round trip with a fault's slowness added, at most [`MAX_RTT`].
fn round_trip(rtt: Duration, fault: Fault) -> Duration {
    let slow = match fault {
        Fault::Slow { ms } => Duration::from_millis(ms),
        Fault::None | Fault::Stopped | Fault::Failing => Duration::ZERO,
    };
    rtt.saturating_add(slow).min(MAX_RTT)
}

/// Copies `from` to `to`, each chunk `one_way()` after it was read (and not
/// before `ready`). EOF from `from` shuts down `to` once the queue is written.
async fn delay_line<R, W>(
    mut from: R,
    mut to: W,
    ready: Instant,
    one_way: impl Fn() -> Duration,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (tx, mut rx) = mpsc::channel::<(Instant, Bytes)>(DELAY_LINE_CHUNKS);
    let read = async move {
        let mut buf = vec![0u8; CHUNK_BYTES];
        loop {
            let n = from.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, io::Error>(()); // drops `tx`: the writer finishes
            }
            let due = Instant::now().max(ready) + one_way();
            if tx
                .send((due, Bytes::copy_from_slice(&buf[..n])))
                .await
                .is_err()
            {
                return Ok(()); // the writer stopped on an error, which it reports
            }
        }
    };
    let write = async move {
        while let Some((due, chunk)) = rx.recv().await {
            if due > Instant::now() {
                sleep_until(due).await;
            }
            to.write_all(&chunk).await?;
        }
        to.shutdown().await
    };
    tokio::try_join!(read, write).map(|_| ())
}

/// Resolves when the target no longer is the one a connection was opened
/// to: another address, or stopped, or failing; or, for a connection
/// without a delay line (`on_slow`), slowed. (Otherwise `Slow` does not
/// count: the delay line applies it.)
async fn diverted(mut watch: TargetWatch, addr: SocketAddr, on_slow: bool) {
    loop {
        if watch.changed().await.is_err() {
            // No more changes will come; shutdown closes the connection.
            return pending().await;
        }
        let target = *watch.borrow_and_update();
        if target.addr != Some(addr)
            || matches!(target.fault, Fault::Stopped | Fault::Failing)
            || (on_slow && matches!(target.fault, Fault::Slow { .. }))
        {
            return;
        }
    }
}

/// Reads up to the end of a request head (an empty line). `false`: EOF or
/// [`MAX_HEAD_BYTES`] first.
async fn read_head<R: AsyncRead + Unpin>(from: &mut R) -> io::Result<bool> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 4096];
    while head.len() < MAX_HEAD_BYTES {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return Ok(false);
        }
        let from_byte = head.len().saturating_sub(3);
        head.extend_from_slice(&buf[..n]);
        if head[from_byte..].windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Reads and drops up to `limit` bytes, until EOF or an error.
async fn discard<R: AsyncRead + Unpin>(from: &mut R, limit: usize) {
    let mut buf = [0u8; 4096];
    let mut left = limit;
    while left > 0 {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}

/// What a failing node answers: not to be cached, and the connection ends.
fn failing_response() -> String {
    format!(
        "HTTP/1.1 503 Service Unavailable\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\n\
         Cache-Control: no-store\r\n\
         Connection: close\r\n\
         \r\n\
         {FAILING_BODY}",
        FAILING_BODY.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn bind() -> (TcpListener, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        (listener, addr)
    }

    async fn echo() -> SocketAddr {
        let (listener, addr) = bind().await;
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn echoes(stream: &mut TcpStream) -> bool {
        if stream.write_all(b"x").await.is_err() {
            return false;
        }
        let mut one = [0u8; 1];
        matches!(
            timeout(Duration::from_secs(10), stream.read(&mut one)).await,
            Ok(Ok(1))
        )
    }

    #[tokio::test]
    async fn past_the_connection_limit_new_connections_are_closed() {
        let (listener, addr) = bind().await;
        let target = Target {
            addr: Some(echo().await),
            fault: Fault::None,
        };
        let (_tx, rx) = watch::channel(target);
        let shutdown = Shutdown::new();
        tokio::spawn(serve(
            listener,
            Duration::ZERO,
            vec![rx],
            2,
            shutdown.clone(),
        ));
        let mut first = TcpStream::connect(addr).await.expect("connect");
        let mut second = TcpStream::connect(addr).await.expect("connect");
        assert!(echoes(&mut first).await && echoes(&mut second).await);

        let mut third = TcpStream::connect(addr).await.expect("connect");
        assert!(!echoes(&mut third).await, "a third connection was relayed");
        assert!(
            echoes(&mut first).await,
            "the limit closed an admitted connection"
        );

        // A closed connection frees its place.
        drop(first);
        let mut admitted = false;
        for _ in 0..100 {
            let mut next = TcpStream::connect(addr).await.expect("connect");
            if echoes(&mut next).await {
                admitted = true;
                break;
            }
            sleep(Duration::from_millis(20)).await;
        }
        assert!(admitted, "the freed place was not reused");
        shutdown.trigger();
    }

    #[tokio::test]
    async fn a_request_head_ends_at_the_empty_line() {
        let mut split: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r";
        assert!(
            !read_head(&mut split).await.expect("read"),
            "no empty line yet"
        );
        let mut whole: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody";
        assert!(read_head(&mut whole).await.expect("read"));
    }

    #[tokio::test]
    async fn a_request_head_is_bounded() {
        let endless = vec![b'a'; MAX_HEAD_BYTES * 2];
        let mut reader: &[u8] = &endless;
        assert!(!read_head(&mut reader).await.expect("read"));
        assert!(reader.len() >= MAX_HEAD_BYTES - 4096, "read past the bound");
    }

    #[test]
    fn slow_adds_to_the_round_trip_up_to_the_bound() {
        let rtt = Duration::from_millis(40);
        assert_eq!(round_trip(rtt, Fault::None), rtt);
        assert_eq!(round_trip(rtt, Fault::Failing), rtt);
        assert_eq!(
            round_trip(rtt, Fault::Slow { ms: 60 }),
            Duration::from_millis(100)
        );
        assert_eq!(round_trip(rtt, Fault::Slow { ms: u64::MAX }), MAX_RTT);
    }

    #[test]
    fn the_503_declares_its_length() {
        let response = failing_response();
        let (head, body) = response.split_once("\r\n\r\n").expect("head and body");
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
    }
}
