use std::sync::Arc;

use super::{Pick, Selector, eligible};
use crate::backend::Backend;
use crate::hash::{StableHasher, stable_hash};

/// Virtual points on the ring per unit of weight (ketama's 160): enough
/// that each backend's share is within a few percent of its weight.
pub const POINTS_PER_WEIGHT: u32 = 160;

/// A ketama-style hash ring keyed on the cache key: each backend owns
/// `160 × weight` points placed by hashing its base URL, and a key goes to
/// the first point at or after its hash. Points depend only on the URL, not
/// on the backend's position, so adding or removing one of N backends
/// moves about 1/N of the keys, and only keys of the removed one. A down or
/// excluded backend is skipped by walking on along the ring, so its keys
/// spread over the others in proportion to their points.
///
/// The ring is built once: a pool's backend list is fixed.
#[derive(Debug)]
pub struct ConsistentHash {
    /// (point, backend index), sorted by point.
    ring: Vec<(u64, usize)>,
    backends: usize,
}

impl ConsistentHash {
    pub fn new(backends: &[Arc<Backend>]) -> Self {
        let points: usize = backends
            .iter()
            .map(|b| (POINTS_PER_WEIGHT * b.weight()) as usize)
            .sum();
        let mut ring = Vec::with_capacity(points);
        for (idx, b) in backends.iter().enumerate() {
            let mut prefix = StableHasher::new();
            prefix.write(b.spec().hash_id().as_bytes());
            prefix.write(b"#");
            for point in 0..POINTS_PER_WEIGHT * b.weight() {
                let mut h = prefix;
                h.write(&point.to_le_bytes());
                ring.push((h.finish(), idx));
            }
        }
        // Two equal 64-bit points practically never happen; if they do, the
        // index decides, so the ring is still the same in every process.
        ring.sort_unstable();
        ConsistentHash {
            ring,
            backends: backends.len(),
        }
    }
}

impl Selector for ConsistentHash {
    fn select(&self, backends: &[Arc<Backend>], ctx: &Pick<'_>) -> Option<usize> {
        if self.ring.is_empty() {
            return None;
        }
        let h = stable_hash(ctx.key.as_bytes());
        let start = self.ring.partition_point(|&(p, _)| p < h);
        let len = self.ring.len();
        // Remember backends already found ineligible so a long walk past a
        // down heavy backend costs one health check per backend, and stop
        // once every backend has been ruled out.
        let mut ruled_out = vec![false; self.backends];
        let mut left = self.backends;
        for step in 0..len {
            let idx = self.ring[(start + step) % len].1;
            if ruled_out.get(idx).copied().unwrap_or(true) {
                continue;
            }
            if eligible(backends, ctx, idx) {
                return Some(idx);
            }
            ruled_out[idx] = true;
            left -= 1;
            if left == 0 {
                break;
            }
        }
        None
    }

    fn name(&self) -> &'static str {
        "consistent-hash"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selector::testing::*;

    const KEYS: usize = 10_000;

    /// Key -> base URL of the chosen backend, so rings over different
    /// backend lists can be compared.
    fn mapping(bs: &[Arc<Backend>]) -> Vec<String> {
        let ring = ConsistentHash::new(bs);
        (0..KEYS)
            .map(|k| {
                let key = format!("/objects/{k}");
                let i = ring.select(bs, &Pick::new(&key, None)).expect("all up");
                bs[i].base().to_string()
            })
            .collect()
    }

    #[test]
    fn consistent_hash_moves_about_one_nth() {
        let five = backends(&[1; 5]);
        let six = backends(&[1; 6]);
        let (a, b) = (mapping(&five), mapping(&six));
        let moved = a.iter().zip(&b).filter(|(x, y)| x != y).count();
        let share = moved as f64 / KEYS as f64;
        eprintln!("consistent hash: 5 -> 6 backends moved {share:.3} of keys");
        assert!((0.10..=0.25).contains(&share), "5 -> 6 moved {share:.3}");
        // Every moved key moved to the new backend.
        assert!(a.iter().zip(&b).all(|(x, y)| x == y || y == "http://b5:80"));
    }

    #[test]
    fn consistent_hash_removal_moves_only_the_removed_backends_keys() {
        let five = backends(&[1; 5]);
        let four: Vec<_> = five
            .iter()
            .filter(|b| b.base() != "http://b2:80")
            .cloned()
            .collect();
        let (a, b) = (mapping(&five), mapping(&four));
        for (k, (x, y)) in a.iter().zip(&b).enumerate() {
            if x != "http://b2:80" {
                assert_eq!(x, y, "key {k} moved although its backend stayed");
            }
        }
        let removed = a.iter().filter(|x| *x == "http://b2:80").count();
        assert!((1000..=3000).contains(&removed), "b2 held {removed} keys");
    }

    #[test]
    fn consistent_hash_down_backend_keys_walk_to_the_next_point() {
        let bs = backends(&[1; 5]);
        let ring = ConsistentHash::new(&bs);
        let before: Vec<_> = (0..KEYS)
            .map(|k| ring.select(&bs, &Pick::new(&k.to_string(), None)))
            .collect();
        take_down(&bs[3]);
        for (k, was) in before.iter().enumerate() {
            let now = ring.select(&bs, &Pick::new(&k.to_string(), None));
            assert!(
                now != Some(3) && (*was == Some(3) || now == *was),
                "key {k}"
            );
        }
    }

    #[test]
    fn consistent_hash_share_follows_weight() {
        let bs = backends(&[1, 3]);
        let ring = ConsistentHash::new(&bs);
        let heavy = (0..KEYS)
            .filter(|k| ring.select(&bs, &Pick::new(&k.to_string(), None)) == Some(1))
            .count();
        let share = heavy as f64 / KEYS as f64;
        assert!(
            (0.68..=0.82).contains(&share),
            "weight 3 of 4 got {share:.3}"
        );
    }
}
