use std::sync::{Arc, Mutex};

use super::{Pick, Selector, eligible};
use crate::backend::Backend;

/// nginx's smooth weighted round robin: every pick adds each healthy
/// backend's weight to its current weight, takes the largest, and subtracts
/// the total from the winner. Weights 3:1 give `a a b a | a a b a`, so the
/// heavy backend never gets a long burst, and over any `total` picks the
/// split is exact.
///
/// nginx also lowers an "effective weight" after failures; we do not, since
/// passive ejection already takes a failing backend out entirely.
#[derive(Debug, Default)]
pub struct WeightedRoundRobin {
    /// Current weight per backend index. A `Mutex` because one pick reads
    /// and writes every entry and must see them all consistently; the vector
    /// is a few words, the section has no `await` and runs in nanoseconds,
    /// so an uncontended std lock is cheaper and simpler than a lock-free
    /// scheme (which would need a CAS over the whole vector).
    current: Mutex<Vec<i64>>,
}

impl WeightedRoundRobin {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Selector for WeightedRoundRobin {
    fn select(&self, backends: &[Arc<Backend>], ctx: &Pick<'_>) -> Option<usize> {
        // A poisoned lock only means another pick panicked mid-update; the
        // weights are still plain integers, so carry on with them.
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if current.len() != backends.len() {
            current.clear();
            current.resize(backends.len(), 0);
        }
        let mut total = 0i64;
        let mut best: Option<usize> = None;
        for (i, b) in backends.iter().enumerate() {
            // Excluded or down backends sit this round out, as in nginx.
            if !eligible(backends, ctx, i) {
                continue;
            }
            let w = i64::from(b.weight());
            current[i] += w;
            total += w;
            // Strictly greater: ties go to the lower index, like nginx.
            if best.is_none_or(|j| current[i] > current[j]) {
                best = Some(i);
            }
        }
        let best = best?;
        current[best] -= total;
        Some(best)
    }

    fn name(&self) -> &'static str {
        "weighted-round-robin"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selector::testing::*;

    fn sequence(sel: &WeightedRoundRobin, bs: &[Arc<Backend>], n: usize) -> String {
        (0..n)
            .filter_map(|_| sel.select(bs, &Pick::default()))
            .map(|i| char::from(b'a' + i as u8))
            .collect()
    }

    #[test]
    fn smooth_wrr_interleaves_3_to_1() {
        let bs = backends(&[3, 1]);
        assert_eq!(sequence(&WeightedRoundRobin::new(), &bs, 8), "aabaaaba");
    }

    #[test]
    fn smooth_wrr_matches_nginx_5_1_1() {
        // The example from nginx's commit introducing smooth WRR.
        let bs = backends(&[5, 1, 1]);
        assert_eq!(sequence(&WeightedRoundRobin::new(), &bs, 7), "aabacaa");
    }

    #[test]
    fn smooth_wrr_split_is_exact_over_whole_cycles() {
        let cases: [(&[u32], usize); 3] =
            [(&[3, 1], 400), (&[1, 2, 3], 600), (&[7, 1, 1, 1], 1000)];
        for (weights, n) in cases {
            let bs = backends(weights);
            let total: u32 = weights.iter().sum();
            let want: Vec<usize> = weights
                .iter()
                .map(|&w| n * w as usize / total as usize)
                .collect();
            assert_eq!(
                counts(&WeightedRoundRobin::new(), &bs, &Pick::default(), n),
                want,
                "{weights:?}"
            );
        }
    }

    #[test]
    fn smooth_wrr_rebalances_over_the_healthy_ones() {
        let bs = backends(&[3, 1, 2]);
        take_down(&bs[0]);
        assert_eq!(
            counts(&WeightedRoundRobin::new(), &bs, &Pick::default(), 300),
            [0, 100, 200]
        );
    }
}
