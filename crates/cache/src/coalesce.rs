//! Request collapsing: concurrent misses for one key send one request
//! upstream. The first caller becomes the [`Leader`] and fetches; the others
//! are [`Follower`]s that wait (bounded) for its [`Outcome`]. When the
//! response turns out not storable, every follower is told at once and goes
//! upstream on its own — no queue of one-at-a-time fetches (nginx's
//! `proxy_cache_lock` makes waiters retry serially; we don't).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::entry::Entry;
use crate::filling::Filling;

/// What the leader tells its followers.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The response's head arrived and its body is being filled: read it
    /// while it arrives (the leader may publish `Stored` later, for those
    /// who come after).
    Filling(Arc<Filling>),
    /// The response was stored: serve this.
    Stored(Arc<Entry>),
    /// Not storable, failed, or abandoned: fetch on your own.
    NotStored,
}

type Slot = watch::Sender<Option<Outcome>>;

/// The table of fetches in flight. A std `Mutex` is right here: the critical
/// section is a hash-map probe, never held across an `.await`.
#[derive(Default)]
pub struct Coalescer {
    inflight: Arc<Mutex<HashMap<String, Slot>>>,
}

/// The role a caller got for a key.
pub enum Join {
    Leader(Leader),
    Follower(Follower),
}

/// The one caller that fetches. Dropping it without [`Leader::finish`]
/// (an error, a cancelled request) releases followers with `NotStored`.
pub struct Leader {
    key: String,
    inflight: Arc<Mutex<HashMap<String, Slot>>>,
    tx: Option<Slot>,
}

pub struct Follower {
    rx: watch::Receiver<Option<Outcome>>,
}

impl Coalescer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Becomes the leader for `key`, or a follower of the fetch in flight.
    pub fn join(&self, key: &str) -> Join {
        let mut map = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = map.get(key) {
            return Join::Follower(Follower { rx: tx.subscribe() });
        }
        let (tx, _rx) = watch::channel(None);
        map.insert(key.to_owned(), tx.clone());
        Join::Leader(Leader {
            key: key.to_owned(),
            inflight: Arc::clone(&self.inflight),
            tx: Some(tx),
        })
    }

    /// Fetches in flight (for stats and tests).
    pub fn in_flight(&self) -> usize {
        self.inflight.lock().map(|m| m.len()).unwrap_or(0)
    }
}

impl Leader {
    /// Tells the followers (those waiting now and those who join until
    /// [`Leader::finish`]) without releasing the key: used to hand out a
    /// fill in progress at headers.
    pub fn publish(&self, outcome: Outcome) {
        if let Some(tx) = &self.tx {
            tx.send_replace(Some(outcome));
        }
    }

    /// Publishes the outcome to every follower and releases the key.
    pub fn finish(mut self, outcome: Outcome) {
        self.release(outcome);
    }

    fn release(&mut self, outcome: Outcome) {
        if let Some(tx) = self.tx.take() {
            // Remove first, so a request arriving after this point looks in
            // the store (where a stored outcome already is) instead of
            // following a fetch that is over.
            if let Ok(mut map) = self.inflight.lock() {
                map.remove(&self.key);
            }
            let _ = tx.send(Some(outcome));
        }
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        self.release(Outcome::NotStored);
    }
}

impl Follower {
    /// Waits up to `timeout` for the leader; `None` when it took too long.
    pub async fn wait(mut self, timeout: Duration) -> Option<Outcome> {
        let waited = tokio::time::timeout(timeout, self.rx.wait_for(|v| v.is_some())).await;
        match waited {
            Ok(Ok(v)) => v.clone(),
            // The sender is gone without a value: treat as not stored.
            Ok(Err(_)) => Some(Outcome::NotStored),
            Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_leader_many_followers() {
        let c = Coalescer::new();
        let Join::Leader(leader) = c.join("k") else {
            panic!("first is leader")
        };
        let mut followers = Vec::new();
        for _ in 0..10 {
            match c.join("k") {
                Join::Follower(f) => followers.push(f),
                Join::Leader(_) => panic!("only one leader"),
            }
        }
        assert_eq!(c.in_flight(), 1);
        let waits: Vec<_> = followers
            .into_iter()
            .map(|f| tokio::spawn(f.wait(Duration::from_secs(5))))
            .collect();
        leader.finish(Outcome::NotStored);
        for w in waits {
            assert!(matches!(w.await.expect("join"), Some(Outcome::NotStored)));
        }
        assert_eq!(c.in_flight(), 0);
        assert!(matches!(c.join("k"), Join::Leader(_)), "key released");
    }

    #[tokio::test]
    async fn dropped_leader_releases_followers() {
        let c = Coalescer::new();
        let leader = c.join("k");
        let Join::Follower(f) = c.join("k") else {
            panic!("follower")
        };
        drop(leader);
        assert!(matches!(
            f.wait(Duration::from_secs(5)).await,
            Some(Outcome::NotStored)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_is_bounded() {
        let c = Coalescer::new();
        let _leader = c.join("k");
        let Join::Follower(f) = c.join("k") else {
            panic!("follower")
        };
        assert!(f.wait(Duration::from_millis(100)).await.is_none());
    }

    #[tokio::test]
    async fn different_keys_do_not_collapse() {
        let c = Coalescer::new();
        let a = c.join("a");
        let b = c.join("b");
        assert!(matches!(a, Join::Leader(_)));
        assert!(matches!(b, Join::Leader(_)));
        assert_eq!(c.in_flight(), 2);
    }
}
