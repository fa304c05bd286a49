//! An origin whose GET bodies stream under the test's control, so a test can
//! see what a client gets while the origin is still sending.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use axum::extract::Request;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};
use meridian_common::Shutdown;
use tokio::net::TcpListener;

/// How a [`StreamOrigin`] answers: `head` at once, then (after
/// [`StreamOrigin::release`]) `tail`, or a broken connection instead when
/// `fail` is set.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    pub head: Bytes,
    pub tail: Bytes,
    /// Send `Content-Length` (else the body is chunked).
    pub content_length: bool,
    /// Break the body off after `head` instead of sending `tail`.
    pub fail: bool,
    pub headers: Vec<(String, String)>,
}

impl StreamSpec {
    /// `head` and `tail` bytes of a recognisable pattern, cacheable.
    pub fn new(head: usize, tail: usize) -> Self {
        let all = pattern(head + tail);
        StreamSpec {
            head: all.slice(..head),
            tail: all.slice(head..),
            content_length: true,
            fail: false,
            headers: vec![("cache-control".into(), "public, max-age=60".into())],
        }
    }

    pub fn body(&self) -> Bytes {
        let mut v = self.head.to_vec();
        v.extend_from_slice(&self.tail);
        Bytes::from(v)
    }
}

/// `n` bytes that differ at every offset a test might compare.
fn pattern(n: usize) -> Bytes {
    Bytes::from(
        (0..n)
            .map(|i| (i % 251) as u8 ^ ((i / 251) % 256) as u8)
            .collect::<Vec<u8>>(),
    )
}

/// An origin whose GET bodies stream: the head at once, the rest only when
/// the test says so, so a test can see what a client gets while the origin
/// is still sending. Other methods get an empty 200.
pub struct StreamOrigin {
    pub addr: SocketAddr,
    gets: Arc<AtomicUsize>,
    gate: tokio::sync::watch::Sender<bool>,
    shutdown: Shutdown,
}

impl StreamOrigin {
    pub async fn start(spec: StreamSpec) -> StreamOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
        let addr = listener.local_addr().expect("addr");
        let gets: Arc<AtomicUsize> = Arc::default();
        let (gate, _) = tokio::sync::watch::channel(false);
        let shutdown = Shutdown::new();
        let (g, tx) = (Arc::clone(&gets), gate.clone());
        let app = axum::Router::new().fallback(move |req: Request| {
            let (g, tx, spec) = (Arc::clone(&g), tx.clone(), spec.clone());
            async move {
                if req.method() != Method::GET {
                    return http::Response::new(Body::empty());
                }
                g.fetch_add(1, Ordering::SeqCst);
                let rx = tx.subscribe();
                let total = spec.head.len() + spec.tail.len();
                let state = (0u8, rx, spec.clone());
                let body = futures_util::stream::unfold(state, |(step, mut rx, spec)| async move {
                    match step {
                        0 => Some((
                            Ok::<Bytes, std::io::Error>(spec.head.clone()),
                            (1, rx, spec),
                        )),
                        1 => {
                            let _ = rx.wait_for(|open| *open).await;
                            let item = if spec.fail {
                                Err(std::io::Error::other("origin broke off"))
                            } else {
                                Ok(spec.tail.clone())
                            };
                            Some((item, (2, rx, spec)))
                        }
                        _ => None,
                    }
                });
                let mut resp = http::Response::new(Body::from_stream(body));
                for (k, v) in &spec.headers {
                    resp.headers_mut().append(
                        HeaderName::from_bytes(k.as_bytes()).expect("name"),
                        HeaderValue::from_str(v).expect("value"),
                    );
                }
                if spec.content_length {
                    resp.headers_mut()
                        .insert(http::header::CONTENT_LENGTH, HeaderValue::from(total));
                }
                resp
            }
        });
        let sd = shutdown.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(sd.wait())
                .await;
        });
        StreamOrigin {
            addr,
            gets,
            gate,
            shutdown,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// GET requests that reached the origin.
    pub fn gets(&self) -> usize {
        self.gets.load(Ordering::SeqCst)
    }

    /// Lets every body (now and later) send the rest.
    pub fn release(&self) {
        self.gate.send_replace(true);
    }
}

impl Drop for StreamOrigin {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}
