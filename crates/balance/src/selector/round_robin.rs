use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Pick, Selector, nth_eligible};
use crate::backend::Backend;

/// Each healthy backend in turn, ignoring weights: one shared counter, so
/// the split is exact over any multiple of the number of healthy backends.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl RoundRobin {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Selector for RoundRobin {
    fn select(&self, backends: &[Arc<Backend>], ctx: &Pick<'_>) -> Option<usize> {
        // Relaxed: the counter only has to hand out distinct numbers.
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        nth_eligible(backends, ctx, n)
    }

    fn name(&self) -> &'static str {
        "round-robin"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selector::testing::*;

    #[test]
    fn round_robin_splits_exactly_evenly() {
        let bs = backends(&[1, 5, 1]);
        let rr = RoundRobin::new();
        assert_eq!(counts(&rr, &bs, &Pick::default(), 300), [100, 100, 100]);
        let order: Vec<_> = (0..6)
            .filter_map(|_| rr.select(&bs, &Pick::default()))
            .collect();
        assert_eq!(order, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn round_robin_splits_evenly_over_the_healthy_ones() {
        let bs = backends(&[1, 1, 1, 1]);
        take_down(&bs[2]);
        assert_eq!(
            counts(&RoundRobin::new(), &bs, &Pick::default(), 300),
            [100, 100, 0, 100]
        );
    }
}
