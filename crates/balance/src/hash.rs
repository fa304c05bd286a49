//! The one hash every selector uses to map keys, client addresses and
//! backends onto each other.
//!
//! Why we own it instead of using `std`: `RandomState` is seeded per
//! process, so two edges would send the same cache key to different shields
//! (and the shield's cache hit rate would fall by the number of edges);
//! `DefaultHasher::new()` is SipHash-1-3 with zero keys today, but std
//! documents that the algorithm may change between Rust releases, and a
//! toolchain upgrade must not remap every key in the CDN. So: FNV-1a 64
//! (fixed by its spec, byte-at-a-time, no allocation) followed by the
//! MurmurHash3 `fmix64` finalizer. The finalizer is there because plain
//! FNV-1a mixes its last bytes poorly into the high bits, and cache keys
//! often differ only at the end (`/img/1.png`, `/img/2.png`), while the ring
//! and rendezvous compare whole 64-bit values.
//!
//! It is not keyed, so not flood-resistant: a client can aim many keys at
//! one origin, but it can do that anyway by requesting one URL repeatedly.

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Streaming form, so a key's prefix state can be reused for every backend
/// (rendezvous hashes `key ‖ backend` once per backend per pick).
#[derive(Debug, Clone, Copy)]
pub(crate) struct StableHasher(u64);

impl StableHasher {
    pub(crate) const fn new() -> Self {
        StableHasher(FNV_OFFSET)
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
    }

    pub(crate) fn finish(self) -> u64 {
        fmix64(self.0)
    }
}

/// Stable 64-bit hash of `bytes`: the same on every process, machine and build.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h = StableHasher::new();
    h.write(bytes);
    h.finish()
}

/// MurmurHash3's 64-bit finalizer: a bijection with full avalanche.
pub(crate) const fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pinned outputs: if this test fails, the hash changed and every
    /// deployed edge would disagree with the new build about where keys go.
    #[test]
    fn stable_hash_is_pinned() {
        // FNV-1a("") is the offset basis, so this also pins the finalizer.
        assert_eq!(stable_hash(b""), fmix64(FNV_OFFSET));
        // Known FNV-1a 64 vector: "a" -> 0xaf63dc4c8601ec8c.
        let mut h = StableHasher::new();
        h.write(b"a");
        assert_eq!(h.0, 0xaf63_dc4c_8601_ec8c);
        assert_eq!(stable_hash(b"a"), fmix64(0xaf63_dc4c_8601_ec8c));
    }

    #[test]
    fn streaming_equals_one_shot() {
        let mut h = StableHasher::new();
        h.write(b"/img/");
        h.write(b"1.png");
        assert_eq!(h.finish(), stable_hash(b"/img/1.png"));
    }

    #[test]
    fn keys_differing_at_the_end_spread_over_the_high_bits() {
        // The top 3 bits of 64 near-identical keys should hit all 8 buckets.
        let mut seen = [false; 8];
        for i in 0..64 {
            let h = stable_hash(format!("/img/{i}.png").as_bytes());
            seen[(h >> 61) as usize] = true;
        }
        assert!(seen.iter().all(|&s| s), "{seen:?}");
    }
}
