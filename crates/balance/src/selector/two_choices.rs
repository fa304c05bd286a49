use std::cmp::Reverse;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Pick, Selector, nth_eligible};
use crate::backend::Backend;

const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// Power of two random choices: pick two distinct healthy backends at
/// random and send the request to the one with fewer in flight (ties: the
/// higher weight). Nearly as good as least connections at spreading load,
/// without every request herding onto the same momentarily-idle backend
/// when many pickers act at once.
///
/// The randomness is SplitMix64 over one `AtomicU64`: lock-free, `Sync`
/// without a thread-local, one atomic add per draw, and seedable so tests
/// are deterministic. Statistical quality is far beyond what choosing
/// between a handful of backends needs, so no `fastrand` dependency.
#[derive(Debug)]
pub struct TwoChoices {
    state: AtomicU64,
}

impl Default for TwoChoices {
    fn default() -> Self {
        Self::new()
    }
}

impl TwoChoices {
    /// Seeded per process (unlike the hashes, nothing has to agree here).
    pub fn new() -> Self {
        Self::with_seed(RandomState::new().hash_one(0u8))
    }

    pub fn with_seed(seed: u64) -> Self {
        TwoChoices {
            state: AtomicU64::new(seed),
        }
    }

    fn next_u64(&self) -> u64 {
        let mut z = self
            .state
            .fetch_add(GOLDEN_GAMMA, Ordering::Relaxed)
            .wrapping_add(GOLDEN_GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0); the modulo bias is < n / 2^64.
    fn below(&self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

impl Selector for TwoChoices {
    fn select(&self, backends: &[Arc<Backend>], ctx: &Pick<'_>) -> Option<usize> {
        let count = (0..backends.len())
            .filter(|&i| super::eligible(backends, ctx, i))
            .count();
        match count {
            0 => None,
            1 => nth_eligible(backends, ctx, 0),
            _ => {
                // Two distinct positions among the eligible ones.
                let a = self.below(count);
                let mut b = self.below(count - 1);
                if b >= a {
                    b += 1;
                }
                let (ia, ib) = (
                    nth_eligible(backends, ctx, a)?,
                    nth_eligible(backends, ctx, b)?,
                );
                let rank = |i: usize| (backends[i].in_flight(), Reverse(backends[i].weight()));
                Some(if rank(ib) < rank(ia) { ib } else { ia })
            }
        }
    }

    fn name(&self) -> &'static str {
        "two-choices"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selector::testing::*;

    #[test]
    fn two_choices_never_picks_the_busiest_of_three() {
        // Any pair of two contains a less busy backend than the busiest.
        let bs = backends(&[1, 1, 1]);
        let _busy: Vec<_> = (0..5).map(|_| bs[0].start()).collect();
        let c = counts(&TwoChoices::with_seed(7), &bs, &Pick::default(), 300);
        assert_eq!(c[0], 0, "{c:?}");
        assert!(c[1] > 100 && c[2] > 100, "{c:?}");
    }

    #[test]
    fn two_choices_spreads_idle_load_roughly_evenly() {
        let bs = backends(&[1, 1, 1, 1]);
        let c = counts(&TwoChoices::with_seed(42), &bs, &Pick::default(), 4000);
        assert!(c.iter().all(|&n| (800..=1200).contains(&n)), "{c:?}");
    }

    #[test]
    fn two_choices_keeps_concurrent_load_balanced() {
        let bs = backends(&[1; 5]);
        let tc = TwoChoices::with_seed(1);
        let guards: Vec<_> = (0..100)
            .filter_map(|_| tc.select(&bs, &Pick::default()))
            .map(|i| bs[i].start())
            .collect();
        assert_eq!(guards.len(), 100);
        let (min, max) = bs
            .iter()
            .map(|b| b.in_flight())
            .fold((usize::MAX, 0), |(lo, hi), n| (lo.min(n), hi.max(n)));
        assert!(max - min <= 3, "in flight spread {min}..{max}");
    }
}
