//! The `Selector` trait and its algorithms, one type per file. A selector
//! only chooses an index; the pool owns the backends and counts requests.

use std::net::IpAddr;
use std::sync::Arc;

use crate::backend::Backend;

mod consistent_hash;
mod ip_hash;
mod least_connections;
mod rendezvous;
mod round_robin;
mod two_choices;
mod weighted_round_robin;

pub use consistent_hash::{ConsistentHash, POINTS_PER_WEIGHT};
pub use ip_hash::IpHash;
pub use least_connections::LeastConnections;
pub use rendezvous::{Rendezvous, rendezvous_order};
pub use round_robin::RoundRobin;
pub use two_choices::TwoChoices;
pub use weighted_round_robin::WeightedRoundRobin;

/// What a selector may look at for one pick.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pick<'a> {
    /// The cache key (hashing selectors map it to a backend).
    pub key: &'a str,
    /// The client's address (for `IpHash`).
    pub client_ip: Option<IpAddr>,
    /// Indices already tried for this request: a retry goes to the next one.
    pub exclude: &'a [usize],
    /// Count every backend as up: set by [`crate::Pool::pick`] when all
    /// that are left are down (panic mode).
    pub panic: bool,
}

impl<'a> Pick<'a> {
    pub fn new(key: &'a str, client_ip: Option<IpAddr>) -> Self {
        Pick {
            key,
            client_ip,
            exclude: &[],
            panic: false,
        }
    }

    /// The same pick, minus the backends already tried.
    pub fn excluding(self, exclude: &'a [usize]) -> Self {
        Pick { exclude, ..self }
    }
}

/// Chooses one backend for a request. Implementations are shared by all
/// request tasks, so they keep their state in atomics (or a short lock).
pub trait Selector: Send + Sync + 'static {
    /// An index into `backends` among those that are up (all of them when
    /// [`Pick::panic`]) and not excluded; `None` when there is none.
    fn select(&self, backends: &[Arc<Backend>], ctx: &Pick<'_>) -> Option<usize>;

    /// The kebab-case name, as in config and `/stats`.
    fn name(&self) -> &'static str;
}

/// Whether `i` may be picked: it exists, is up (or the pool is in panic
/// mode) and was not tried yet.
pub(crate) fn eligible(backends: &[Arc<Backend>], ctx: &Pick<'_>, i: usize) -> bool {
    !ctx.exclude.contains(&i) && backends.get(i).is_some_and(|b| ctx.panic || b.is_up())
}

/// The `n`-th eligible index (wrapping), scanning once to count and once to
/// find, so no per-pick allocation. Health can change between the scans;
/// then we settle for the first eligible one rather than fail the pick.
pub(crate) fn nth_eligible(backends: &[Arc<Backend>], ctx: &Pick<'_>, n: usize) -> Option<usize> {
    let count = (0..backends.len())
        .filter(|&i| eligible(backends, ctx, i))
        .count();
    if count == 0 {
        return None;
    }
    (0..backends.len())
        .filter(|&i| eligible(backends, ctx, i))
        .nth(n % count)
        .or_else(|| (0..backends.len()).find(|&i| eligible(backends, ctx, i)))
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::health::{Health, HealthPolicy};

    /// Backends `http://b{i}:80` with the given weights, all up.
    pub(crate) fn backends(weights: &[u32]) -> Vec<Arc<Backend>> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| named(&format!("http://b{i}:80"), w))
            .collect()
    }

    pub(crate) fn named(url: &str, weight: u32) -> Arc<Backend> {
        let spec = crate::BackendSpec::new(url, weight).expect("test URL is valid");
        Arc::new(Backend::new(
            spec,
            Arc::new(Health::new(HealthPolicy::default())),
        ))
    }

    /// Takes a backend down through the active-check path (fall = 1).
    pub(crate) fn take_down(b: &Backend) {
        b.health().record(false);
    }

    /// Index -> number of picks, over `n` picks with `ctx`.
    pub(crate) fn counts(
        sel: &dyn Selector,
        backends: &[Arc<Backend>],
        ctx: &Pick<'_>,
        n: usize,
    ) -> Vec<usize> {
        let mut c = vec![0; backends.len()];
        for _ in 0..n {
            if let Some(i) = sel.select(backends, ctx) {
                c[i] += 1;
            }
        }
        c
    }
}

/// Rules every algorithm must follow, run against each of them.
#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use crate::Balance;

    fn all(backends: &[Arc<Backend>]) -> Vec<Box<dyn Selector>> {
        Balance::ALL.iter().map(|b| b.selector(backends)).collect()
    }

    fn ctxs() -> Vec<(String, Option<IpAddr>)> {
        (0..200)
            .map(|i| {
                (
                    format!("/k/{i}"),
                    Some(IpAddr::from([10, 0, (i / 256) as u8, (i % 256) as u8])),
                )
            })
            .collect()
    }

    #[test]
    fn down_backend_gets_no_traffic() {
        let bs = backends(&[1, 2, 1, 3]);
        take_down(&bs[1]);
        bs[3].health().eject(std::time::Duration::from_secs(60));
        for sel in all(&bs) {
            for (key, ip) in ctxs() {
                let i = sel.select(&bs, &Pick::new(&key, ip));
                assert!(matches!(i, Some(0 | 2)), "{}: {key} -> {i:?}", sel.name());
            }
        }
    }

    #[test]
    fn excluded_backend_is_skipped_for_retry() {
        let bs = backends(&[1, 1, 1]);
        for sel in all(&bs) {
            for (key, ip) in ctxs() {
                let first = sel.select(&bs, &Pick::new(&key, ip)).expect("all up");
                let tried = [first];
                let retry = sel.select(&bs, &Pick::new(&key, ip).excluding(&tried));
                assert!(retry.is_some_and(|r| r != first), "{}: {key}", sel.name());
                let tried = [0, 1, 2];
                assert_eq!(
                    sel.select(&bs, &Pick::new(&key, ip).excluding(&tried)),
                    None
                );
            }
        }
    }

    #[test]
    fn all_down_gives_none() {
        let bs = backends(&[1, 2]);
        bs.iter().for_each(|b| take_down(b));
        for sel in all(&bs) {
            assert_eq!(
                sel.select(&bs, &Pick::new("/k", None)),
                None,
                "{}",
                sel.name()
            );
        }
        for sel in all(&[]) {
            assert_eq!(
                sel.select(&[], &Pick::new("/k", None)),
                None,
                "{}",
                sel.name()
            );
        }
    }

    #[test]
    fn every_algorithm_reaches_every_backend() {
        let bs = backends(&[1, 1, 1, 1]);
        for sel in all(&bs) {
            let mut seen = [false; 4];
            for (key, ip) in ctxs() {
                if let Some(i) = sel.select(&bs, &Pick::new(&key, ip)) {
                    seen[i] = true;
                }
            }
            assert!(seen.iter().all(|&s| s), "{}: {seen:?}", sel.name());
        }
    }
}
