use std::sync::Arc;

use super::{Pick, Selector, eligible};
use crate::backend::Backend;
use crate::hash::StableHasher;

/// Highest random weight (rendezvous) hashing on the cache key: every
/// backend gets a score from `hash(key, backend URL)` and the highest
/// healthy one wins. The edge uses it to pick a shield per cache key:
/// edges agree without sharing state, a shield going down moves only its
/// own keys (each to that key's runner-up, spreading them evenly), and
/// [`rendezvous_order`] defines "the key's next shield". O(N) per pick,
/// which for a handful of shields beats a ring and needs no memory.
///
/// Weights use the logarithmic method (`w / -ln(u)`, Schindelhauer and
/// Schomaker), so a backend's share of keys is proportional to its weight.
#[derive(Debug, Default)]
pub struct Rendezvous;

impl Rendezvous {
    pub fn new() -> Self {
        Rendezvous
    }
}

fn key_hasher(key: &str) -> StableHasher {
    let mut h = StableHasher::new();
    h.write(key.as_bytes());
    // A byte that cannot occur in UTF-8 keeps ("ab","c") and ("a","bc") apart.
    h.write(&[0xff]);
    h
}

fn score(key: StableHasher, b: &Backend) -> f64 {
    let mut h = key;
    h.write(b.spec().hash_id().as_bytes());
    // Top 53 bits -> u in (0, 1), never 0 or 1, so ln(u) is finite and < 0.
    let u = ((h.finish() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    f64::from(b.weight()) / -u.ln()
}

/// All backend indices, best first, for `key`, ignoring health: the first
/// is the key's home, the second where it goes when the first is down, …
pub fn rendezvous_order(backends: &[Arc<Backend>], key: &str) -> Vec<usize> {
    let kh = key_hasher(key);
    let mut scored: Vec<(f64, usize)> = backends
        .iter()
        .enumerate()
        .map(|(i, b)| (score(kh, b), i))
        .collect();
    // Highest score first; equal scores (practically never) by index.
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().map(|(_, i)| i).collect()
}

impl Selector for Rendezvous {
    fn select(&self, backends: &[Arc<Backend>], ctx: &Pick<'_>) -> Option<usize> {
        // Same result as the first eligible entry of `rendezvous_order`,
        // without sorting or allocating.
        let kh = key_hasher(ctx.key);
        let mut best: Option<(f64, usize)> = None;
        for (i, b) in backends.iter().enumerate() {
            if !eligible(backends, ctx, i) {
                continue;
            }
            let s = score(kh, b);
            if best.is_none_or(|(bs, _)| s > bs) {
                best = Some((s, i));
            }
        }
        best.map(|(_, i)| i)
    }

    fn name(&self) -> &'static str {
        "rendezvous"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selector::testing::*;

    #[test]
    fn rendezvous_next_choice_when_first_down() {
        let bs = backends(&[1, 1, 1, 1]);
        let sel = Rendezvous::new();
        for k in 0..200 {
            let key = format!("/k/{k}");
            let order = rendezvous_order(&bs, &key);
            assert_eq!(sel.select(&bs, &Pick::new(&key, None)), Some(order[0]));
            bs[order[0]].health().record(false);
            assert_eq!(
                sel.select(&bs, &Pick::new(&key, None)),
                Some(order[1]),
                "{key}"
            );
            let tried = [order[1]];
            let retry = Pick::new(&key, None).excluding(&tried);
            assert_eq!(sel.select(&bs, &retry), Some(order[2]), "{key}");
            bs[order[0]].health().record(true);
        }
    }

    #[test]
    fn rendezvous_is_the_same_in_every_process_and_list_order() {
        let bs = backends(&[1, 1, 1]);
        let reversed: Vec<_> = bs.iter().rev().cloned().collect();
        for k in 0..100 {
            let key = k.to_string();
            let a = bs[rendezvous_order(&bs, &key)[0]].base();
            let b = reversed[rendezvous_order(&reversed, &key)[0]].base();
            assert_eq!(a, b, "{key}");
        }
    }

    #[test]
    fn backends_with_the_same_ids_own_the_same_keys_whatever_their_addresses() {
        let via = |ports: [u16; 2]| -> Vec<Arc<Backend>> {
            ["shield-1", "shield-2"]
                .iter()
                .zip(ports)
                .map(|(id, port)| {
                    Arc::new(
                        Backend::parse(&format!("http://127.0.0.1:{port};id={id}"))
                            .expect("valid spec"),
                    )
                })
                .collect()
        };
        let (a, b) = (via([7001, 7002]), via([8101, 8102]));
        let plain = backends(&[1, 1]);
        let mut differ_without_ids = 0;
        for k in 0..200 {
            let key = format!("/asset/{k}");
            let (ia, ib) = (rendezvous_order(&a, &key)[0], rendezvous_order(&b, &key)[0]);
            assert_eq!(a[ia].spec().hash_id(), b[ib].spec().hash_id(), "{key}");
            differ_without_ids += usize::from(rendezvous_order(&plain, &key)[0] != ia);
        }
        // The ids, not the addresses, decide: without them the split differs.
        assert!(differ_without_ids > 0);
    }

    #[test]
    fn rendezvous_share_follows_weight() {
        let bs = backends(&[1, 3]);
        let heavy = (0..10_000)
            .filter(|k| Rendezvous.select(&bs, &Pick::new(&k.to_string(), None)) == Some(1))
            .count();
        assert!(
            (7_000..=8_000).contains(&heavy),
            "weight 3 of 4 got {heavy}"
        );
    }

    #[test]
    fn rendezvous_removal_moves_only_the_removed_backends_keys() {
        let five = backends(&[1; 5]);
        let four: Vec<_> = five
            .iter()
            .filter(|b| b.base() != "http://b4:80")
            .cloned()
            .collect();
        for k in 0..2_000 {
            let key = k.to_string();
            let a = five[rendezvous_order(&five, &key)[0]].base();
            let b = four[rendezvous_order(&four, &key)[0]].base();
            assert!(a == b || a == "http://b4:80", "{key}: {a} -> {b}");
        }
    }
}
