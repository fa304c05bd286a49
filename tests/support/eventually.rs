//! The one way a test waits: poll a condition, bounded, instead of sleeping.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often [`eventually`] checks.
const POLL: Duration = Duration::from_millis(20);

/// Polls `check` every 20 ms until it returns true; panics naming `what`
/// when it still does not after `within`. The check runs at least once,
/// and once more after the deadline, so a slow check cannot fail a wait
/// that did hold in time.
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for: {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}
