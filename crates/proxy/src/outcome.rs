//! The outcome of one request: the [`CacheStatus`] value every phase
//! fills in is the one thing that becomes the `Cache-Status` header (in
//! `respond`), the `/stats` counters (`Stats::record`) and the request's
//! log line (in `Engine::handle`), and the Prometheus request counters
//! (`crate::metrics`, also from `Stats::record`). No phase bumps a counter
//! of its own, so they can never disagree.

use std::sync::atomic::{AtomicU64, Ordering};

use http::Response;
use meridian_cache::status::detail;
use meridian_cache::{CacheStatus, Fwd};

use crate::body::Body;
use crate::metrics::RequestMetrics;

/// A response and what happened to produce it.
pub(crate) type Served = (Response<Body>, CacheStatus);

/// Request counters for `/stats`, derived from outcomes.
#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    /// Served from the cache without waiting on the upstream (fresh hits,
    /// stale-while-revalidate).
    pub hits: AtomicU64,
    /// Cacheable requests that went upstream (misses, vary-misses,
    /// revalidations, client-forced refetches).
    pub misses: AtomicU64,
    /// Revalidations answered 304.
    pub revalidated: AtomicU64,
    /// Requests that read another request's fetch.
    pub collapsed: AtomicU64,
    /// Stale copies served (stale-while-revalidate, stale-if-error).
    pub stale_served: AtomicU64,
    /// Requests not handled by the cache (other methods, refused requests).
    pub bypassed: AtomicU64,
    /// Requests answered with an error because the upstream failed.
    pub upstream_errors: AtomicU64,
    /// Responses inserted into the store (counted when a fill completes).
    pub stored: AtomicU64,
    /// The same outcomes as Prometheus counters, by label.
    pub(crate) metrics: RequestMetrics,
}

pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Stats {
    /// Counts one finished request by its outcome and the response it got.
    pub(crate) fn record(&self, cs: &CacheStatus, response: &Response<Body>) {
        bump(&self.requests);
        match cs.fwd {
            None => bump(&self.hits),
            Some(Fwd::Bypass) => bump(&self.bypassed),
            Some(_) => bump(&self.misses),
        }
        if cs.collapsed {
            bump(&self.collapsed);
        }
        if cs.fwd_status == Some(304) && matches!(cs.fwd, Some(Fwd::Stale | Fwd::Request)) {
            bump(&self.revalidated);
        }
        match cs.detail {
            Some(d) if stale_served(d) => bump(&self.stale_served),
            Some(d) if upstream_failed(d) => bump(&self.upstream_errors),
            _ => {}
        }
        self.metrics
            .record(cs, response.status(), body_len(response.body()));
    }
}

/// A `Cache-Status` detail that says a stale copy was served.
pub(crate) fn stale_served(detail: &str) -> bool {
    matches!(
        detail,
        detail::STALE_WHILE_REVALIDATE | detail::STALE_IF_ERROR
    )
}

/// A `Cache-Status` detail that says the upstream failed the request.
pub(crate) fn upstream_failed(detail: &str) -> bool {
    detail.starts_with("upstream-") || detail == "no-upstream"
}

/// The body bytes a response will send, as it declares them: a cached
/// body's length, or the upstream's `Content-Length` for a streamed one
/// (one of unknown length counts what is buffered). Read at response time,
/// so the hit path wraps no body in a counting stream.
fn body_len(body: &Body) -> u64 {
    let hint = http_body::Body::size_hint(body);
    hint.exact().unwrap_or(hint.lower())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    #[test]
    fn counters_follow_the_outcome() {
        let s = Stats::default();
        let r = Response::new(Body::Empty);
        s.record(&CacheStatus::hit(60), &r);
        let mut swr = CacheStatus::hit(-1);
        swr.detail = Some(detail::STALE_WHILE_REVALIDATE);
        s.record(&swr, &r);
        let mut collapsed = CacheStatus::forward(Fwd::Miss);
        collapsed.collapsed = true;
        s.record(&collapsed, &r);
        let mut revalidated = CacheStatus::forward(Fwd::Stale);
        revalidated.fwd_status = Some(304);
        s.record(&revalidated, &r);
        let mut failed = CacheStatus::forward(Fwd::Miss);
        failed.detail = Some(detail::UPSTREAM_CONNECT);
        s.record(&failed, &r);
        s.record(&CacheStatus::forward(Fwd::Bypass), &r);
        assert_eq!(load(&s.requests), 6);
        assert_eq!(load(&s.hits), 2);
        assert_eq!(load(&s.stale_served), 1);
        assert_eq!(load(&s.misses), 3);
        assert_eq!(load(&s.collapsed), 1);
        assert_eq!(load(&s.revalidated), 1);
        assert_eq!(load(&s.upstream_errors), 1);
        assert_eq!(load(&s.bypassed), 1);
    }
}
