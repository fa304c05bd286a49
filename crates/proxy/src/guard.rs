//! What one client may take of a node: connection slots (`limits.max-connections`,
//! `limits.per-ip-connections`), a request rate per client address
//! (`limits.per-ip-requests-per-second`, `per-ip-burst`) and the length of a
//! request target (`limits.max-uri-length`). The head size and count limits
//! are hyper's own (the server builder in `server.rs`) and the deadlines are
//! in `watch.rs`.
//!
//! Past `max-connections` a listener stops accepting: new connections wait
//! in the kernel's listen backlog, as nginx's `worker_connections` and
//! Envoy's `max_connections` overload action do, instead of being accepted
//! and dropped. One [`Guard`] serves every listener of a node (plain and
//! TLS), so the limit is the node's.
//!
//! "Client address" is the TCP peer for connection counts: a connection is
//! what a peer holds, whoever it forwards for. Peers listed in
//! `trusted-forwarders` (a tier of edges, a load balancer) carry many
//! clients' traffic and are exempt from `per-ip-connections`. For the
//! request rate it is the address the engine uses for `ip-hash`: the peer,
//! or the last `X-Forwarded-For` hop when the peer is a trusted forwarder,
//! so the clients behind an edge are limited one by one and never as one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};
use http::{HeaderValue, Request, Response, StatusCode, header};
use ipnet::IpNet;
use meridian_cache::{CacheStatus, Fwd};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::body::Body;
use crate::config::{Config, Rate};
use crate::engine::Engine;
use crate::respond;

/// How many rate checks pass between two sweeps of the limiter's table,
/// which drops addresses whose allowance has refilled (they are as new).
const SWEEP_EVERY: u64 = 4096;

/// The connection and request limits of one node, shared by its listeners.
pub struct Guard {
    slots: Arc<Semaphore>,
    per_ip: Option<PerIp>,
    rate: Option<DefaultKeyedRateLimiter<IpAddr>>,
    checks: AtomicU64,
    /// Connections admitted and not yet closed.
    open: AtomicUsize,
    max_uri_length: usize,
    trusted: Vec<IpNet>,
    /// `limits.max-request-head`, for the HTTP/1.1 builder.
    pub(crate) max_request_head: usize,
    /// `limits.max-request-headers`, likewise.
    pub(crate) max_request_headers: usize,
    /// `timeouts.client-header`.
    pub(crate) header_timeout: std::time::Duration,
    /// `timeouts.client-idle`.
    pub(crate) idle_timeout: std::time::Duration,
}

/// Open connections by peer address; an address leaves the map when its
/// last connection closes, so the map is never larger than the number of
/// open connections.
struct PerIp {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One accepted connection's place: released when the connection ends.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    /// The address counted against `per-ip-connections`, if any.
    counted: Option<IpAddr>,
    guard: Arc<Guard>,
}

impl Guard {
    pub fn new(config: &Config) -> Self {
        let limits = &config.limits;
        Guard {
            slots: Arc::new(Semaphore::new(limits.max_connections)),
            per_ip: limits.per_ip_connections.map(|max| PerIp {
                max,
                open: Mutex::default(),
            }),
            rate: limits.per_ip_rate.and_then(quota).map(|q| {
                // A keyed GCRA limiter: one atomic word per address.
                DefaultKeyedRateLimiter::keyed(q)
            }),
            checks: AtomicU64::new(0),
            open: AtomicUsize::new(0),
            max_uri_length: limits.max_uri_length,
            trusted: config.trusted_forwarders.clone(),
            max_request_head: limits.max_request_head,
            max_request_headers: limits.max_request_headers,
            header_timeout: config.client_header_timeout,
            idle_timeout: config.client_idle_timeout,
        }
    }

    /// Waits for a free connection slot: the accept loops call this before
    /// they accept, so past `max-connections` connections queue in the
    /// listen backlog.
    pub async fn slot(&self) -> OwnedSemaphorePermit {
        match Arc::clone(&self.slots).acquire_owned().await {
            Ok(p) => p,
            // The semaphore is never closed; if it were, accept nothing.
            Err(_) => std::future::pending().await,
        }
    }

    /// Admits a connection from `peer` into the slot `permit`, or `None`
    /// when `peer` already holds `per-ip-connections` (the caller closes
    /// it).
    pub fn admit(self: &Arc<Self>, permit: OwnedSemaphorePermit, peer: IpAddr) -> Option<Slot> {
        let counted = match &self.per_ip {
            Some(per_ip) if !self.is_trusted(peer) => {
                let mut open = per_ip.open.lock().unwrap_or_else(|p| p.into_inner());
                let n = open.entry(peer).or_insert(0);
                if *n >= per_ip.max {
                    tracing::debug!(%peer, limit = per_ip.max, "connection over limits.per-ip-connections closed");
                    return None;
                }
                *n += 1;
                Some(peer)
            }
            _ => None,
        };
        self.open.fetch_add(1, Ordering::Relaxed);
        Some(Slot {
            _permit: permit,
            counted,
            guard: Arc::clone(self),
        })
    }

    /// Client connections open now, on every listener of the node.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|n| n.contains(&ip))
    }

    /// The request back to serve it, or the answer for a request refused
    /// before the engine sees it (414, 429). Nothing refused here goes upstream.
    pub(crate) fn refuse<B>(
        &self,
        engine: &Engine,
        req: Request<B>,
        peer: std::net::SocketAddr,
    ) -> Result<Request<B>, Box<Response<Body>>> {
        let target = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
        if target > self.max_uri_length {
            return Err(Box::new(refusal(
                engine,
                StatusCode::URI_TOO_LONG,
                "the request target is longer than this node accepts",
            )));
        }
        let Some(rate) = &self.rate else {
            return Ok(req);
        };
        let (parts, body) = req.into_parts();
        let client = engine.client_ip(&parts, peer, self.is_trusted(peer.ip()));
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            rate.retain_recent();
            rate.shrink_to_fit();
        }
        match rate.check_key(&client) {
            Ok(()) => Ok(Request::from_parts(parts, body)),
            Err(not_until) => {
                let wait = not_until.wait_time_from(rate.clock().now());
                // Whole seconds, rounded up: a client that waits that long
                // is let in (RFC 9110 §10.2.3).
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                let mut r = refusal(
                    engine,
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many requests from this address",
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
                Err(Box::new(r))
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.guard.open.fetch_sub(1, Ordering::Relaxed);
        if let (Some(ip), Some(per_ip)) = (self.counted, &self.guard.per_ip) {
            let mut open = per_ip.open.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = open.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    open.remove(&ip);
                }
            }
        }
    }
}

/// `rate` as a governor quota (both numbers are validated non-zero).
fn quota(rate: Rate) -> Option<Quota> {
    let per_second = NonZeroU32::new(rate.per_second)?;
    let burst = NonZeroU32::new(rate.burst)?;
    Some(Quota::per_second(per_second).allow_burst(burst))
}

/// A refusal, counted in `/stats` and `/metrics` like the engine's own.
fn refusal(engine: &Engine, code: StatusCode, why: &str) -> Response<Body> {
    let cs = CacheStatus::forward(Fwd::Bypass);
    let r = respond::error(&engine.stamp, code, why, &cs);
    engine.stats.record(&cs, &r);
    r
}
