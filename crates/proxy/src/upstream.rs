//! Sending requests upstream: choosing the upstream from the pool, the HTTP
//! client, timeouts, one retry on connect failure, and passive health.
//!
//! The client is hyper's (`hyper-util` legacy pool) rather than reqwest: a
//! proxy must send the client's headers untouched, and reqwest adds its own
//! defaults (`Accept: */*`) that cannot be removed; hyper also hands us the
//! response body as the same `Incoming` stream we pass on to the client.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use meridian_balance::{Backend, InFlight, Outcome, Pick, Pool};

use crate::body::Body;

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
}

impl FetchError {
    /// 502 for connect and protocol failures, 504 for timeouts, 503 when
    /// every upstream is down.
    pub fn status(&self) -> StatusCode {
        match self {
            FetchError::Connect(_) | FetchError::Other(..) => StatusCode::BAD_GATEWAY,
            FetchError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            FetchError::NoUpstream => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn detail(&self) -> &'static str {
        match self {
            FetchError::Connect(_) => "upstream-connect",
            FetchError::Timeout(_) => "upstream-timeout",
            FetchError::NoUpstream => "no-upstream",
            FetchError::Other(..) => "upstream-error",
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

pub struct Upstreams {
    pool: Arc<Pool>,
    client: Client<HttpConnector, Body>,
    response_timeout: Duration,
    /// Passive ejection is off with a single upstream (as nginx ignores
    /// max_fails for a one-server group): ejecting the only origin would
    /// turn one 5xx into ten seconds of 503s.
    passive: bool,
}

impl Upstreams {
    pub fn new(pool: Arc<Pool>, connect_timeout: Duration, response_timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        connector.enforce_http(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(256)
            .set_host(false)
            .build(connector);
        let passive = pool.backends().len() > 1;
        Upstreams {
            pool,
            client,
            response_timeout,
            passive,
        }
    }

    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    pub fn response_timeout(&self) -> Duration {
        self.response_timeout
    }

    /// Sends the request to the chosen upstream. A connect failure of a
    /// bodiless idempotent request is retried once on the next upstream;
    /// nothing is retried once the upstream answered.
    pub async fn send(&self, out: Outgoing<'_>) -> Result<Fetched, FetchError> {
        let retryable = out.method.is_idempotent()
            && matches!(out.body, Body::Empty)
            && self.pool.backends().len() > 1;
        let mut tried: Vec<usize> = Vec::new();
        let mut body = Some(out.body);
        let mut headers = Some(out.headers);
        loop {
            let pick = Pick {
                key: out.key,
                client_ip: out.client_ip,
                exclude: &tried,
            };
            let Some((idx, backend)) = self.pool.pick(&pick).or_else(|| self.fallback(&tried))
            else {
                return Err(FetchError::NoUpstream);
            };
            let backend = Arc::clone(backend);
            let b = body.take().unwrap_or_default();
            // Only a retryable request can loop, so only it pays for a copy.
            let h = if retryable {
                headers.clone().unwrap_or_default()
            } else {
                headers.take().unwrap_or_default()
            };
            match self
                .attempt(&backend, out.method.clone(), out.path_and_query, h, b)
                .await
            {
                Ok(f) => return Ok(f),
                Err(e @ FetchError::Connect(_)) if retryable && tried.is_empty() => {
                    tracing::warn!(upstream = %backend.base(), "connect failed, retrying on the next upstream: {e}");
                    tried.push(idx);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// With a single upstream there is nothing to fail over to: use it even
    /// when the checks say down (nginx does the same).
    fn fallback(&self, tried: &[usize]) -> Option<(usize, &Arc<Backend>)> {
        if self.passive || !tried.is_empty() {
            return None;
        }
        self.pool.backends().first().map(|b| (0, b))
    }

    async fn attempt(
        &self,
        backend: &Arc<Backend>,
        method: Method,
        path_and_query: &str,
        headers: HeaderMap,
        body: Body,
    ) -> Result<Fetched, FetchError> {
        let mut guard = backend.start();
        let uri: Uri = backend.url_for(path_and_query).parse().map_err(|e| {
            FetchError::Other(backend.base().to_string(), format!("bad upstream URI: {e}"))
        })?;
        let mut req = Request::new(body);
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        *req.headers_mut() = headers;
        let request_time = SystemTime::now();
        let result = tokio::time::timeout(self.response_timeout, self.client.request(req)).await;
        let err = match result {
            Ok(Ok(response)) => {
                if self.passive {
                    guard.report(Outcome::from_status(response.status()));
                } else if response.status().is_server_error() {
                    guard.fail();
                }
                return Ok(Fetched {
                    response,
                    request_time,
                    guard,
                });
            }
            Ok(Err(e)) if e.is_connect() => FetchError::Connect(backend.base().to_string()),
            Ok(Err(e)) => FetchError::Other(backend.base().to_string(), error_chain(&e)),
            Err(_) => FetchError::Timeout(backend.base().to_string()),
        };
        if self.passive && matches!(err, FetchError::Connect(_)) {
            guard.report(Outcome::ConnectError);
        } else {
            guard.fail();
        }
        Err(err)
    }
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
