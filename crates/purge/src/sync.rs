//! How current a node is with the purge log.
//!
//! The guarantee: a node that has not heard from the log for longer than
//! `max-lag` may have missed purges issued since. Any purge it missed was
//! issued after its last sync, and an object fetched less than `max-lag`
//! ago can only be covered by a purge younger than `max-lag`; so while
//! lagging, the node serves without revalidation only what it fetched in
//! the last `max-lag`, and revalidates everything older first. No node then
//! serves a purged object for longer than `max-lag` after the purge, even
//! while cut off from the log.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// A node's sync state; one per node, read on the hit path (one relaxed
/// load when the node follows no log, two and a clock read when it does).
#[derive(Debug)]
pub struct SyncState {
    /// Whether this node follows a purge log at all.
    following: bool,
    max_lag: Duration,
    origin: Instant,
    /// When the node last knew itself caught up with the log (the moment
    /// the request that proved it was sent), ms since `origin`.
    synced_ms: AtomicU64,
    /// The last log entry applied.
    applied: AtomicU64,
    /// Whether a sync has ever succeeded since start.
    ever_synced: AtomicBool,
}

impl SyncState {
    /// A node that follows no purge log: never lagging.
    pub fn unfollowed() -> Self {
        SyncState {
            following: false,
            max_lag: Duration::MAX,
            origin: Instant::now(),
            synced_ms: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            ever_synced: AtomicBool::new(false),
        }
    }

    /// A node following a log, counted as synced at start (its store is
    /// empty then, so nothing it serves predates a purge it missed).
    pub fn following(max_lag: Duration) -> Self {
        SyncState {
            following: true,
            max_lag,
            ..SyncState::unfollowed()
        }
    }

    pub fn is_following(&self) -> bool {
        self.following
    }

    pub fn max_lag(&self) -> Duration {
        self.max_lag
    }

    /// Records that at `at` the node was caught up with the log.
    pub fn synced_at(&self, at: Instant) {
        let ms = u64::try_from(at.saturating_duration_since(self.origin).as_millis())
            .unwrap_or(u64::MAX);
        self.synced_ms.fetch_max(ms, Ordering::Relaxed);
        self.ever_synced.store(true, Ordering::Relaxed);
    }

    /// Records that log entry `seq` has been applied.
    pub fn applied(&self, seq: u64) {
        self.applied.store(seq, Ordering::Relaxed);
    }

    /// The last log entry applied.
    pub fn applied_seq(&self) -> u64 {
        self.applied.load(Ordering::Relaxed)
    }

    /// Whether a sync with the log has succeeded since start.
    pub fn ever_synced(&self) -> bool {
        self.ever_synced.load(Ordering::Relaxed)
    }

    /// Time since the node last knew itself caught up (`None` when it
    /// follows no log).
    pub fn lag(&self) -> Option<Duration> {
        if !self.following {
            return None;
        }
        let synced = Duration::from_millis(self.synced_ms.load(Ordering::Relaxed));
        Some(self.origin.elapsed().saturating_sub(synced))
    }

    /// Whether the node is past `max-lag`.
    pub fn is_lagging(&self) -> bool {
        self.lag().is_some_and(|l| l > self.max_lag)
    }

    /// When lagging, the fetch time before which a stored response must be
    /// revalidated before use (`now - max-lag`); `None` when current.
    pub fn revalidate_before(&self, now: SystemTime) -> Option<SystemTime> {
        if !self.following {
            return None;
        }
        if !self.is_lagging() {
            return None;
        }
        now.checked_sub(self.max_lag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfollowed_never_lags() {
        let s = SyncState::unfollowed();
        assert_eq!(s.lag(), None);
        assert_eq!(s.revalidate_before(SystemTime::now()), None);
    }

    #[test]
    fn lagging_after_max_lag() {
        let s = SyncState::following(Duration::from_millis(0));
        std::thread::sleep(Duration::from_millis(5));
        assert!(s.is_lagging());
        let now = SystemTime::now();
        assert_eq!(s.revalidate_before(now), Some(now));
        let s = SyncState::following(Duration::from_secs(3600));
        assert!(!s.is_lagging());
        s.synced_at(Instant::now());
        assert!(s.ever_synced());
        assert_eq!(s.revalidate_before(SystemTime::now()), None);
    }
}
