use std::cmp::Reverse;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Pick, Selector, eligible};
use crate::backend::Backend;

/// The healthy backend with the fewest requests in flight; ties go to the
/// higher weight, then to whichever comes first in a rotating order, so
/// idle backends share traffic evenly instead of all of it going to index 0.
#[derive(Debug, Default)]
pub struct LeastConnections {
    start: AtomicUsize,
}

impl LeastConnections {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Selector for LeastConnections {
    fn select(&self, backends: &[Arc<Backend>], ctx: &Pick<'_>) -> Option<usize> {
        let n = backends.len();
        if n == 0 {
            return None;
        }
        let start = self.start.fetch_add(1, Ordering::Relaxed) % n;
        let mut best: Option<(usize, (usize, Reverse<u32>))> = None;
        for i in (start..n).chain(0..start) {
            if !eligible(backends, ctx, i) {
                continue;
            }
            let b = &backends[i];
            let rank = (b.in_flight(), Reverse(b.weight()));
            // Strictly better only, so the rotation decides among equals.
            if best.is_none_or(|(_, r)| rank < r) {
                best = Some((i, rank));
            }
        }
        best.map(|(i, _)| i)
    }

    fn name(&self) -> &'static str {
        "least-connections"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selector::testing::*;

    #[test]
    fn least_connections_avoids_busy_backend() {
        let bs = backends(&[1, 1, 1]);
        let _busy: Vec<_> = (0..3).map(|_| bs[1].start()).collect();
        let _one = bs[2].start();
        let lc = LeastConnections::new();
        assert_eq!(counts(&lc, &bs, &Pick::default(), 50), [50, 0, 0]);
    }

    #[test]
    fn least_connections_idle_backends_share_evenly() {
        let bs = backends(&[1, 1, 1, 1]);
        assert_eq!(
            counts(&LeastConnections::new(), &bs, &Pick::default(), 400),
            [100; 4]
        );
    }

    #[test]
    fn least_connections_tie_goes_to_higher_weight() {
        let bs = backends(&[1, 4, 1]);
        assert_eq!(
            counts(&LeastConnections::new(), &bs, &Pick::default(), 10),
            [0, 10, 0]
        );
    }

    #[test]
    fn least_connections_spreads_concurrent_requests() {
        // Held guards: each pick sees the load the earlier ones added.
        let bs = backends(&[1, 1, 1]);
        let lc = LeastConnections::new();
        let guards: Vec<_> = (0..9)
            .filter_map(|_| lc.select(&bs, &Pick::default()))
            .map(|i| bs[i].start())
            .collect();
        assert_eq!(guards.len(), 9);
        assert!(bs.iter().all(|b| b.in_flight() == 3));
    }
}
