//! Sending requests upstream: choosing the upstream from the pool, the HTTP
//! client, timeouts, retries, and passive health.
//!
//! The client is hyper's (`hyper-util` legacy pool) rather than reqwest: a
//! proxy must send the client's headers untouched, and reqwest adds its own
//! defaults (`Accept: */*`) that cannot be removed; hyper also hands us the
//! response body as the same `Incoming` stream we pass on to the client.
//!
//! What is held against an upstream (see `meridian_balance::passive`): a
//! connect failure, a timeout, a reset before the response head; a 5xx
//! only when configured. Never a client's fault ([`RequestBody`] tags those;
//! they answer 400), and never the keep-alive race below.
//!
//! Retries, each at most once and only before any response byte:
//! - an idempotent bodiless request whose *reused* pooled connection was
//!   closed or reset as it was sent (the origin timed the idle connection
//!   out just then) goes again on a new connection to the same upstream,
//!   as nginx and Varnish do;
//! - an idempotent bodiless request whose connect failed, or whose
//!   connection closed or was reset before the response head (the upstream
//!   died under it: a shield killed mid-request), goes to the next
//!   upstream, as nginx's default `proxy_next_upstream error` and Envoy's
//!   `retry_on: reset`. A timeout is not retried: it would double the load
//!   on an upstream that is already slow.
//!
//! The pool's idle timeout (`timeouts.pool-idle`, default 4s) is kept
//! below common origin keep-alive timeouts, so the race is rare to begin with.
//!
//! What is refused from an upstream, as 502 and not held against it (it
//! is that response's fault, not the server's health): a response head
//! larger than `limits.max-upstream-head` or with more fields than
//! `limits.max-upstream-headers` (hyper stops reading at the limit, so no
//! more than that is buffered), anything hyper cannot parse (a garbage
//! status line, NUL or a bare CR in a field, obs-fold), and a response
//! whose length is ambiguous: several Content-Length values, even equal
//! ones, or Content-Length with Transfer-Encoding (RFC 9112 §6.3 says the
//! latter "ought to be handled as an error"; nginx refuses both). The
//! connection of such a response is closed, never reused.

mod probe;
mod request_body;
mod reuse;
pub mod tls;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::capture_connection;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use meridian_balance::{Backend, InFlight, Outcome, Pick, Pool};
pub use probe::HealthProbe;
pub use request_body::{BodyState, RequestBody};
use reuse::{TrackingConnector, Usage};

use crate::body::Body;
use crate::config::Config;
use crate::metrics::UpstreamMetrics;

/// Why no upstream response could be had. Mapped to a status in one place
/// ([`FetchError::status`]).
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    #[error("cannot connect to upstream {0}")]
    Connect(String),
    #[error("upstream {0} timed out")]
    Timeout(String),
    #[error("no healthy upstream")]
    NoUpstream,
    #[error("upstream {0} failed: {1}")]
    Other(String, String),
    /// The client's request body was malformed, cut short or stalled.
    #[error("bad request body: {0}")]
    Client(String),
}

impl FetchError {
    /// 502 for connect and protocol failures, 504 for timeouts, 503 when
    /// there is no upstream to try, 400 when the client's body failed.
    pub fn status(&self) -> StatusCode {
        match self {
            FetchError::Connect(_) | FetchError::Other(..) => StatusCode::BAD_GATEWAY,
            FetchError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            FetchError::NoUpstream => StatusCode::SERVICE_UNAVAILABLE,
            FetchError::Client(_) => StatusCode::BAD_REQUEST,
        }
    }

    pub fn detail(&self) -> &'static str {
        match self {
            FetchError::Connect(_) => "upstream-connect",
            FetchError::Timeout(_) => "upstream-timeout",
            FetchError::NoUpstream => "no-upstream",
            FetchError::Other(..) => "upstream-error",
            FetchError::Client(_) => "client-body",
        }
    }
}

/// An upstream response with its in-flight slot (released when dropped).
pub struct Fetched {
    pub response: Response<Incoming>,
    pub request_time: SystemTime,
    pub guard: InFlight,
}

/// What to send upstream; rebuilt for a retry.
pub struct Outgoing<'a> {
    pub method: Method,
    pub path_and_query: &'a str,
    pub headers: HeaderMap,
    pub body: Body,
    /// Cache key, for hashing selectors.
    pub key: &'a str,
    pub client_ip: Option<IpAddr>,
}

type HttpClient = Client<TrackingConnector, Body>;

pub struct Upstreams {
    pool: Arc<Pool>,
    /// Keeps idle connections for `pool_idle_timeout`.
    client: HttpClient,
    /// Keeps none: a retry after a stale pooled connection must not be
    /// handed another idle one that may be just as stale.
    fresh: HttpClient,
    response_timeout: Duration,
    client_body_timeout: Duration,
    /// `timeouts.fill`: the total deadline of one cache fill.
    fill_timeout: Duration,
    /// Latency and errors, by the pool's upstream index.
    metrics: UpstreamMetrics,
}

/// What every attempt of one request asks for.
struct Target<'a> {
    method: &'a Method,
    path_and_query: &'a str,
}

/// How one attempt failed: the error, and whether it was the keep-alive
/// race (a reused connection closed before any response byte).
struct Failed {
    error: FetchError,
    stale: bool,
    /// Closed or reset before a complete response head, and not the
    /// keep-alive race: the upstream went away under the request.
    reset: bool,
}

impl Failed {
    /// Whether the next upstream may have the request instead: nothing
    /// came back from this one (no connection, or it went away before the
    /// response head), as nginx's default `proxy_next_upstream error`.
    fn elsewhere(&self) -> bool {
        self.reset || matches!(self.error, FetchError::Connect(_))
    }
}

impl Upstreams {
    pub fn new(pool: Arc<Pool>, config: &Config) -> Self {
        let connector =
            TrackingConnector::new(config.connect_timeout, Arc::clone(&config.upstream_trust));
        config.upstream_trust.warn_unverified();
        let idle = config.pool_idle_timeout;
        // hyper's read buffer is the head limit: a head still incomplete
        // when it is full fails as "message head is too large" (hyper
        // panics below 8 KiB, which the config already refuses).
        let max_head = config.limits.max_upstream_head.max(MIN_READ_BUFFER);
        let max_headers = config.limits.max_upstream_headers;
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(idle)
            .pool_max_idle_per_host(if idle.is_zero() { 0 } else { 256 })
            .http1_max_buf_size(max_head)
            .http1_max_headers(max_headers)
            .set_host(false)
            .build(connector.clone());
        let fresh = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .http1_max_buf_size(max_head)
            .http1_max_headers(max_headers)
            .set_host(false)
            .build(connector);
        Upstreams {
            metrics: UpstreamMetrics::new(pool.backends()),
            pool,
            client,
            fresh,
            response_timeout: config.response_timeout,
            client_body_timeout: config.client_body_timeout,
            fill_timeout: config.fill_timeout,
        }
    }

    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    pub fn response_timeout(&self) -> Duration {
        self.response_timeout
    }

    /// `timeouts.fill`: how long one cache fill may take, head and body.
    pub fn fill_timeout(&self) -> Duration {
        self.fill_timeout
    }

    pub fn metrics(&self) -> &UpstreamMetrics {
        &self.metrics
    }

    /// Sends the request to the chosen upstream, retrying (at most once
    /// each) as the module docs say; nothing is retried once the upstream
    /// answered.
    pub async fn send(&self, out: Outgoing<'_>) -> Result<Fetched, FetchError> {
        self.send_by(out, None).await
    }

    /// [`Upstreams::send`], with the response head due by `deadline` as
    /// well as within the response timeout (a cache fill's total
    /// deadline, `timeouts.fill`); missing either is a timeout.
    pub async fn send_by(
        &self,
        out: Outgoing<'_>,
        deadline: Option<Instant>,
    ) -> Result<Fetched, FetchError> {
        let Outgoing {
            method,
            path_and_query,
            headers,
            body,
            key,
            client_ip,
        } = out;
        let replayable = method.is_idempotent() && matches!(body, Body::Empty);
        let failover = replayable && self.pool.backends().len() > 1;
        let (body, client_body) = RequestBody::wrap(body, self.client_body_timeout);
        let target = Target {
            method: &method,
            path_and_query,
        };
        let mut tried: Vec<usize> = Vec::new();
        let mut body = Some(body);
        let mut headers = Some(headers);
        loop {
            let pick = Pick::new(key, client_ip).excluding(&tried);
            let Some((idx, backend)) = self.pool.pick(&pick) else {
                return Err(FetchError::NoUpstream);
            };
            let backend = Arc::clone(backend);
            // Only a replayable request can go twice, so only it pays for a copy.
            let h = if replayable {
                headers.clone().unwrap_or_default()
            } else {
                headers.take().unwrap_or_default()
            };
            let b = body.take().unwrap_or_default();
            let mut started = std::time::Instant::now();
            let mut result = self
                .attempt(
                    &self.client,
                    &backend,
                    &target,
                    (h, b),
                    client_body.as_deref(),
                    deadline,
                )
                .await;
            if let Err(Failed {
                stale: true, error, ..
            }) = &result
                && replayable
            {
                tracing::debug!(upstream = %backend.base(), "pooled connection closed under the request, retrying on a new one: {error}");
                let h = headers.clone().unwrap_or_default();
                // The dead pooled connection says nothing of the upstream's
                // latency: only the retry is measured.
                started = std::time::Instant::now();
                result = self
                    .attempt(
                        &self.fresh,
                        &backend,
                        &target,
                        (h, Body::Empty),
                        None,
                        deadline,
                    )
                    .await;
            }
            self.metrics.observe(
                idx,
                started.elapsed(),
                result.as_ref().map(|_| ()).map_err(|f| &f.error),
            );
            match result {
                Ok(f) => return Ok(f),
                Err(f) if failover && tried.is_empty() && f.elsewhere() => {
                    tracing::warn!(upstream = %backend.base(), "retrying on the next upstream: {}", f.error);
                    tried.push(idx);
                }
                Err(f) => return Err(f.error),
            }
        }
    }

    /// One try on one connection, with passive health fed from its result.
    async fn attempt(
        &self,
        client: &HttpClient,
        backend: &Arc<Backend>,
        target: &Target<'_>,
        (headers, body): (HeaderMap, Body),
        client_body: Option<&BodyState>,
        deadline: Option<Instant>,
    ) -> Result<Fetched, Failed> {
        let mut guard = backend.start();
        let base = || backend.base().to_string();
        let uri: Uri = backend
            .url_for(target.path_and_query)
            .parse()
            .map_err(|e| Failed {
                error: FetchError::Other(base(), format!("bad upstream URI: {e}")),
                stale: false,
                reset: false,
            })?;
        let mut req = Request::new(body);
        *req.method_mut() = target.method.clone();
        *req.uri_mut() = uri;
        *req.headers_mut() = headers;
        let conn = capture_connection(&mut req);
        let request_time = SystemTime::now();
        let result = self
            .within_timeout(client.request(req), client_body, deadline)
            .await;
        let seen = conn.connection_metadata().as_ref().and_then(Usage::of);
        let (error, outcome, stale): (_, Option<Outcome>, _) = match result {
            Some(Ok(response)) if ambiguous_length(response.headers()).is_some() => {
                // Dropping the unread body closes the connection: what
                // follows on it cannot be framed either.
                let why = ambiguous_length(response.headers()).unwrap_or_default();
                tracing::warn!(upstream = %backend.base(), "refused a response: {why}");
                (FetchError::Other(base(), why.into()), None, false)
            }
            Some(Ok(response)) => {
                let outcome = Outcome::from_status(response.status());
                self.pool.report(&mut guard, outcome);
                return Ok(Fetched {
                    response,
                    request_time,
                    guard,
                });
            }
            _ if client_body.and_then(BodyState::fault).is_some() => {
                let why = client_body.and_then(BodyState::fault).unwrap_or_default();
                (FetchError::Client(why.to_owned()), None, false)
            }
            None => (FetchError::Timeout(base()), Some(Outcome::Timeout), false),
            Some(Err(e)) if e.is_connect() => {
                if is_tls_handshake(&e) {
                    // A certificate that does not verify is an operator's
                    // problem to see, not only a 502 for the client.
                    tracing::warn!(upstream = %backend.base(), "{}", error_chain(&e));
                }
                (
                    FetchError::Connect(base()),
                    Some(Outcome::ConnectError),
                    false,
                )
            }
            Some(Err(e)) => {
                let closed = closed_early(&e);
                let stale = closed && seen.is_some_and(|s| s.reused && !s.answered);
                let outcome = (closed && !stale).then_some(Outcome::Reset);
                (FetchError::Other(base(), error_chain(&e)), outcome, stale)
            }
        };
        if let Some(outcome) = outcome {
            self.pool.report(&mut guard, outcome);
        }
        let reset = matches!(outcome, Some(Outcome::Reset));
        Err(Failed {
            error,
            stale,
            reset,
        })
    }

    /// Waits for the response head for the response timeout, counted from
    /// the last piece of request body sent: a long upload that keeps moving
    /// is not a slow upstream (a stalled client is caught by the request
    /// body's own timeout), and never past `cap`. `None` when the time ran
    /// out.
    async fn within_timeout<F, T>(
        &self,
        request: F,
        client_body: Option<&BodyState>,
        cap: Option<Instant>,
    ) -> Option<T>
    where
        F: std::future::Future<Output = T>,
    {
        tokio::pin!(request);
        let capped = |t: Instant| cap.map_or(t, |c| t.min(c));
        let mut deadline = capped(Instant::now() + self.response_timeout);
        loop {
            tokio::select! {
                r = &mut request => return Some(r),
                () = tokio::time::sleep_until(deadline) => {}
            }
            let moved = client_body
                .filter(|b| !b.is_done())
                .map(|b| capped(b.last_progress() + self.response_timeout))
                .filter(|&later| later > deadline);
            deadline = moved?;
        }
    }
}

/// hyper's smallest read buffer (`http1_max_buf_size` panics below it).
const MIN_READ_BUFFER: usize = 8 << 10;

/// RFC 9112 §6.3: why a response's length cannot be trusted, if it
/// cannot. hyper already refuses differing Content-Length values and ones
/// that are not a number; this also refuses equal duplicates (a list, or
/// several lines) and Content-Length beside Transfer-Encoding, as nginx
/// does: a proxy that forwarded either would leave the framing to
/// whichever parser reads it next.
fn ambiguous_length(h: &HeaderMap) -> Option<&'static str> {
    let mut lengths = h.get_all(http::header::CONTENT_LENGTH).iter();
    let first = lengths.next()?;
    if h.contains_key(http::header::TRANSFER_ENCODING) {
        return Some("both Content-Length and Transfer-Encoding");
    }
    if lengths.next().is_some() || first.as_bytes().contains(&b',') {
        return Some("several Content-Length values");
    }
    None
}

/// The connection closed or was reset before a complete response head: the
/// errors that a stale keep-alive connection gives (anything else, like a
/// response hyper cannot parse, is not held against the upstream).
fn closed_early(e: &hyper_util::client::legacy::Error) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(err) = src {
        if let Some(h) = err.downcast_ref::<hyper::Error>()
            && (h.is_incomplete_message() || h.is_canceled() || h.is_closed())
        {
            return true;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            )
        {
            return true;
        }
        src = err.source();
    }
    false
}

/// The connect failed in the TLS handshake (unknown CA, wrong name,
/// expired certificate), not in TCP.
fn is_tls_handshake(e: &hyper_util::client::legacy::Error) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(err) = src {
        if err.is::<reuse::TlsHandshake>() {
            return true;
        }
        src = err.source();
    }
    false
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}
