//! The outcome of one request: the [`CacheStatus`] value every phase
//! fills in is the one thing that becomes the `Cache-Status` header (in
//! `respond`), the `/stats` counters (`Stats::record`) and the request's
//! log line (in `Engine::handle`). No phase bumps a counter of its own, so
//! the three can never disagree.

use std::sync::atomic::{AtomicU64, Ordering};

use http::Response;
use meridian_cache::status::detail;
use meridian_cache::{CacheStatus, Fwd};

use crate::body::Body;

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
}

pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Stats {
    /// Counts one finished request by its outcome.
    pub(crate) fn record(&self, cs: &CacheStatus) {
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
            Some(detail::STALE_WHILE_REVALIDATE | detail::STALE_IF_ERROR) => {
                bump(&self.stale_served)
            }
            Some(d) if d.starts_with("upstream-") || d == "no-upstream" => {
                bump(&self.upstream_errors)
            }
            _ => {}
        }
    }
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
        s.record(&CacheStatus::hit(60));
        let mut swr = CacheStatus::hit(-1);
        swr.detail = Some(detail::STALE_WHILE_REVALIDATE);
        s.record(&swr);
        let mut collapsed = CacheStatus::forward(Fwd::Miss);
        collapsed.collapsed = true;
        s.record(&collapsed);
        let mut revalidated = CacheStatus::forward(Fwd::Stale);
        revalidated.fwd_status = Some(304);
        s.record(&revalidated);
        let mut failed = CacheStatus::forward(Fwd::Miss);
        failed.detail = Some(detail::UPSTREAM_CONNECT);
        s.record(&failed);
        s.record(&CacheStatus::forward(Fwd::Bypass));
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
