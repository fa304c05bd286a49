//! A TCP connection that sends slices of mapped bodies with `sendfile(2)`.

use std::io::{self, IoSlice};
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use rustix::net::{SendAncillaryBuffer, SendFlags};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use crate::SEND_MIN;

/// Bytes sent from body files by every connection of the process.
static SENT: AtomicU64 = AtomicU64::new(0);

/// Bytes every [`ZeroCopy`] connection has sent from body files.
pub fn sent_from_files() -> u64 {
    SENT.load(Ordering::Relaxed)
}
use crate::body::{Region, find};

/// A plain TCP connection whose large writes of mapped bodies leave by
/// `sendfile(2)`; every other write is the stream's own.
#[derive(Debug)]
pub struct ZeroCopy {
    stream: TcpStream,
    /// Bytes this connection sent from body files.
    from_files: u64,
}

impl ZeroCopy {
    pub fn new(stream: TcpStream) -> Self {
        ZeroCopy {
            stream,
            from_files: 0,
        }
    }

    /// Bytes this connection has sent straight from body files.
    pub fn sent_from_files(&self) -> u64 {
        self.from_files
    }

    fn count(&mut self, n: usize) {
        self.from_files += n as u64;
        SENT.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Runs `op` once the socket is writable, until it stops saying
    /// `WouldBlock` (each such answer clears tokio's readiness, so the next
    /// poll waits for the kernel).
    fn poll_io<R>(
        &self,
        cx: &mut Context<'_>,
        mut op: impl FnMut() -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        loop {
            ready!(self.stream.poll_write_ready(cx))?;
            match self.stream.try_io(Interest::WRITABLE, &mut op) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                done => return Poll::Ready(done),
            }
        }
    }

    fn sendfile(&self, region: &Region, offset: u64, len: usize) -> io::Result<usize> {
        let mut at = offset;
        Ok(rustix::fs::sendfile(
            self.stream.as_fd(),
            &region.file,
            Some(&mut at),
            len,
        )?)
    }

    /// `bufs[..i]` (the head), corked, then `bufs[i]` from its file.
    fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
        i: usize,
        region: &Region,
        offset: u64,
    ) -> Poll<io::Result<usize>> {
        let body = bufs[i].len();
        let before = &bufs[..i];
        let head: usize = before.iter().map(|b| b.len()).sum();
        if head == 0 {
            return match ready!(self.poll_io(cx, || self.sendfile(region, offset, body))) {
                Ok(n) => {
                    self.count(n);
                    Poll::Ready(Ok(n))
                }
                // A socket or file the kernel will not splice: copy instead.
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                    Pin::new(&mut self.stream).poll_write(cx, &bufs[i])
                }
                Err(e) => Poll::Ready(Err(e)),
            };
        }
        // The head with MSG_MORE, so it and the body's first bytes share a
        // segment, as one `writev` of both would.
        let sent = ready!(self.poll_io(cx, || {
            Ok(rustix::net::sendmsg(
                self.stream.as_fd(),
                before,
                &mut SendAncillaryBuffer::default(),
                SendFlags::MORE | SendFlags::NOSIGNAL,
            )?)
        }))?;
        if sent < head {
            return Poll::Ready(Ok(sent));
        }
        // The body now if the socket takes it; otherwise the head is what
        // this write did, and the body comes on the next one (an error
        // included: the next write meets it again).
        let more = self
            .stream
            .try_io(Interest::WRITABLE, || self.sendfile(region, offset, body))
            .unwrap_or(0);
        self.count(more);
        Poll::Ready(Ok(sent + more))
    }
}

impl AsyncRead for ZeroCopy {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ZeroCopy {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.len() >= SEND_MIN
            && let Some((region, offset)) = find(buf)
        {
            return this.poll_send(cx, &[IoSlice::new(buf)], 0, &region, offset);
        }
        Pin::new(&mut this.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let mapped = bufs.iter().enumerate().find_map(|(i, b)| {
            if b.len() < SEND_MIN {
                return None;
            }
            find(b).map(|(region, offset)| (i, region, offset))
        });
        match mapped {
            Some((i, region, offset)) => this.poll_send(cx, bufs, i, &region, offset),
            None => Pin::new(&mut this.stream).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Mapping;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn body(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 131 % 251) as u8).collect()
    }

    async fn pair() -> (ZeroCopy, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = TcpStream::connect(addr).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        (ZeroCopy::new(server), client)
    }

    /// Writes `parts` as hyper does: vectored, again from where each
    /// partial write stopped.
    async fn write_all_vectored(w: &mut ZeroCopy, parts: &[&[u8]]) {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let mut done = 0usize;
        let mut rounds = 0;
        while done < total {
            rounds += 1;
            assert!(rounds < 100_000, "no progress");
            let mut skip = done;
            let mut slices = Vec::new();
            for p in parts {
                if skip >= p.len() {
                    skip -= p.len();
                    continue;
                }
                slices.push(IoSlice::new(&p[skip..]));
                skip = 0;
            }
            let n = w.write_vectored(&slices).await.expect("write");
            assert!(n > 0);
            done += n;
        }
        w.flush().await.expect("flush");
    }

    #[tokio::test]
    async fn head_and_mapped_body_arrive_byte_for_byte_through_a_slow_reader() {
        // In a memory file, and (where it can be mounted) on the
        // large-page tmpfs: 3 MiB there is a 2 MiB folio and smaller ones.
        for large_pages in [false, true] {
            slow_reader_gets_every_byte(large_pages).await;
        }
    }

    async fn slow_reader_gets_every_byte(large_pages: bool) {
        let all = body(3 << 20);
        let mapped = Mapping::new(1, 64)
            .large_pages(large_pages)
            .join([&all[..]], all.len())
            .expect("mapped");
        let (mut server, mut client) = pair().await;
        // A slow reader: the socket fills, sendfile goes short and waits.
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = vec![0u8; 4096];
            while got.len() < 20 + (3 << 20) - 1000 {
                let n = client.read(&mut buf).await.expect("read");
                assert!(n > 0, "early end after {}", got.len());
                got.extend_from_slice(&buf[..n]);
                if got.len() % 7 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            got
        });
        let head = b"HTTP/1.1 200 OK\r\n\r\n.";
        // The slice starts inside the mapping: the file offset must follow.
        write_all_vectored(&mut server, &[&head[..], &mapped[1000..]]).await;
        assert_eq!(server.sent_from_files(), (all.len() - 1000) as u64);
        let got = reader.await.expect("reader");
        assert_eq!(&got[..head.len()], &head[..]);
        assert!(got[head.len()..] == all[1000..], "body bytes differ");
    }

    #[tokio::test]
    async fn a_body_alone_and_a_heap_body_are_written_as_they_are() {
        let all = body(200_000);
        let mapped = Mapping::new(1, 64)
            .join([&all[..]], all.len())
            .expect("mapped");
        let heap = body(100_000);
        let (mut server, mut client) = pair().await;
        let reader = tokio::spawn(async move {
            let mut got = vec![0u8; 300_000 + 5];
            client.read_exact(&mut got).await.expect("read");
            got
        });
        server.write_all(&mapped).await.expect("mapped write");
        assert_eq!(server.sent_from_files(), 200_000);
        write_all_vectored(&mut server, &[&heap[..], b"tail!"]).await;
        assert_eq!(server.sent_from_files(), 200_000, "heap bytes are copied");
        let got = reader.await.expect("reader");
        assert!(got[..200_000] == all[..]);
        assert!(got[200_000..300_000] == heap[..]);
        assert_eq!(&got[300_000..], b"tail!");
    }

    #[tokio::test]
    async fn a_closed_peer_is_an_error_not_a_hang() {
        let all = body(1 << 20);
        let mapped = Mapping::new(1, 64)
            .join([&all[..]], all.len())
            .expect("mapped");
        let (mut server, client) = pair().await;
        drop(client);
        let mut failed = false;
        for _ in 0..64 {
            if server.write_all(&mapped).await.is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed, "writes to a closed peer kept succeeding");
    }
}
