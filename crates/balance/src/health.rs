//! Health of one upstream (an origin, a shield, an edge): a rise/fall state
//! machine fed by active checks, plus passive ejection for a cool-off after
//! failures seen on real traffic (which failures, and when: `passive.rs`).
//!
//! Active checks: `rise` consecutive successes bring a down target up, `fall`
//! consecutive failures take an up target down (HAProxy's and nginx plus's
//! model). Passive: `eject(cool_off)` marks the target down until the
//! cool-off passes; the next active success after that brings it back.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use meridian_common::Shutdown;

/// What one active check runs: a GET of `url` that succeeds when it is
/// answered 2xx within `timeout`. reqwest's client is one; the proxy uses
/// its own upstream client, so a check reaches an `https://` upstream with
/// the same trust settings as the traffic does.
pub trait Probe: Clone + Send + Sync + 'static {
    fn check<'a>(
        &'a self,
        url: &'a str,
        timeout: Duration,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>>;
}

impl Probe for reqwest::Client {
    fn check<'a>(
        &'a self,
        url: &'a str,
        timeout: Duration,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        Box::pin(async move {
            matches!(
                self.get(url).timeout(timeout).send().await,
                Ok(r) if r.status().is_success()
            )
        })
    }
}

/// Thresholds for the active checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthPolicy {
    /// Consecutive successes that bring a down target up.
    pub rise: u32,
    /// Consecutive failures that take an up target down.
    pub fall: u32,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        HealthPolicy { rise: 1, fall: 1 }
    }
}

/// A change of state reported by [`Health::record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    WentUp,
    WentDown,
}

/// Lock-free health state of one target; share it as `Arc<Health>`.
#[derive(Debug)]
pub struct Health {
    up: AtomicBool,
    ok_streak: AtomicU32,
    fail_streak: AtomicU32,
    /// Unix millis until which a passive ejection holds the target down (0 = none).
    ejected_until_ms: AtomicU64,
    /// Unix millis of the last active check (0 = never).
    last_check_ms: AtomicU64,
    policy: HealthPolicy,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Health {
    /// A target starts up: traffic flows until checks say otherwise.
    pub fn new(policy: HealthPolicy) -> Self {
        Health {
            up: AtomicBool::new(true),
            ok_streak: AtomicU32::new(0),
            fail_streak: AtomicU32::new(0),
            ejected_until_ms: AtomicU64::new(0),
            last_check_ms: AtomicU64::new(0),
            policy,
        }
    }

    /// Up by the active checks and not passively ejected right now.
    pub fn is_up(&self) -> bool {
        if !self.up.load(Ordering::Relaxed) {
            return false;
        }
        let until = self.ejected_until_ms.load(Ordering::Relaxed);
        until == 0 || now_ms() >= until
    }

    /// Unix millis of the last active check, if any.
    pub fn last_check_ms(&self) -> Option<u64> {
        match self.last_check_ms.load(Ordering::Relaxed) {
            0 => None,
            t => Some(t),
        }
    }

    /// Feeds one active check result.
    pub fn record(&self, ok: bool) -> Option<Transition> {
        self.last_check_ms.store(now_ms(), Ordering::Relaxed);
        if ok {
            self.fail_streak.store(0, Ordering::Relaxed);
            let streak = self.ok_streak.fetch_add(1, Ordering::Relaxed) + 1;
            let ejected = self.ejected_until_ms.load(Ordering::Relaxed);
            if ejected != 0 && now_ms() >= ejected {
                self.ejected_until_ms.store(0, Ordering::Relaxed);
            }
            if !self.up.load(Ordering::Relaxed) && streak >= self.policy.rise.max(1) {
                self.up.store(true, Ordering::Relaxed);
                return Some(Transition::WentUp);
            }
        } else {
            self.ok_streak.store(0, Ordering::Relaxed);
            let streak = self.fail_streak.fetch_add(1, Ordering::Relaxed) + 1;
            if self.up.load(Ordering::Relaxed) && streak >= self.policy.fall.max(1) {
                self.up.store(false, Ordering::Relaxed);
                return Some(Transition::WentDown);
            }
        }
        None
    }

    /// Passive ejection: down for `cool_off` from now, whatever the checks say.
    pub fn eject(&self, cool_off: Duration) {
        let until = now_ms().saturating_add(cool_off.as_millis() as u64).max(1);
        self.ejected_until_ms.store(until, Ordering::Relaxed);
    }

    /// True while a passive ejection holds.
    pub fn is_ejected(&self) -> bool {
        let until = self.ejected_until_ms.load(Ordering::Relaxed);
        until != 0 && now_ms() < until
    }
}

/// Runs active checks of `url` every `interval` until shutdown, the first
/// one at once: a check succeeds when the target answers 2xx within
/// `timeout`.
pub async fn poll(
    client: impl Probe,
    url: String,
    interval: Duration,
    timeout: Duration,
    health: Arc<Health>,
    shutdown: Shutdown,
) {
    poll_after(
        Duration::ZERO,
        client,
        url,
        interval,
        timeout,
        health,
        shutdown,
    )
    .await;
}

/// [`poll`], with the first check `first` from now: until then the target
/// keeps the state it started with (up).
pub async fn poll_after(
    first: Duration,
    client: impl Probe,
    url: String,
    interval: Duration,
    timeout: Duration,
    health: Arc<Health>,
    shutdown: Shutdown,
) {
    let stop = shutdown.wait();
    tokio::pin!(stop);
    let start = tokio::time::Instant::now() + first;
    let mut tick = tokio::time::interval_at(start, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {}
        }
        let ok = client.check(&url, timeout).await;
        match health.record(ok) {
            Some(Transition::WentDown) => tracing::warn!(%url, "health check: target is down"),
            Some(Transition::WentUp) => tracing::info!(%url, "health check: target is up"),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fall_then_rise_thresholds() {
        let h = Health::new(HealthPolicy { rise: 2, fall: 3 });
        assert!(h.is_up());
        assert_eq!(h.record(false), None);
        assert_eq!(h.record(false), None);
        assert_eq!(h.record(false), Some(Transition::WentDown));
        assert!(!h.is_up());
        assert_eq!(h.record(true), None);
        assert!(!h.is_up());
        assert_eq!(h.record(true), Some(Transition::WentUp));
        assert!(h.is_up());
    }

    #[test]
    fn a_success_resets_the_fail_streak() {
        let h = Health::new(HealthPolicy { rise: 1, fall: 2 });
        h.record(false);
        h.record(true);
        h.record(false);
        assert!(h.is_up());
    }

    #[test]
    fn passive_ejection_holds_for_the_cool_off() {
        let h = Health::new(HealthPolicy::default());
        h.eject(Duration::from_secs(60));
        assert!(!h.is_up());
        assert!(h.is_ejected());
        let h = Health::new(HealthPolicy::default());
        h.eject(Duration::from_millis(0));
        std::thread::sleep(Duration::from_millis(2));
        assert!(h.is_up());
    }
}
