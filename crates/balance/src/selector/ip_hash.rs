use std::net::IpAddr;
use std::sync::Arc;

use super::{Pick, RoundRobin, Selector, eligible};
use crate::backend::Backend;
use crate::hash::{StableHasher, fmix64};

/// Rehash attempts before walking linearly (nginx uses 20 too).
const REHASHES: u64 = 20;

/// Sticky per client: the whole client address (not nginx's IPv4 /24,
/// since many unrelated clients share a /24 behind carrier NAT and the
/// spread would be poor) hashes to a backend. If that one is down or
/// excluded we rehash deterministically, so its clients spread over the
/// others instead of all landing on its neighbour; after 20 misses we walk
/// the list. No client address: plain round robin.
#[derive(Debug, Default)]
pub struct IpHash {
    fallback: RoundRobin,
}

impl IpHash {
    pub fn new() -> Self {
        Self::default()
    }
}

fn hash_ip(ip: IpAddr) -> u64 {
    // An IPv4 client reached over a dual-stack socket shows up as
    // ::ffff:a.b.c.d; hash it as the IPv4 address it is.
    let mut h = StableHasher::new();
    match ip.to_canonical() {
        IpAddr::V4(v4) => h.write(&v4.octets()),
        IpAddr::V6(v6) => h.write(&v6.octets()),
    }
    h.finish()
}

impl Selector for IpHash {
    fn select(&self, backends: &[Arc<Backend>], ctx: &Pick<'_>) -> Option<usize> {
        let Some(ip) = ctx.client_ip else {
            return self.fallback.select(backends, ctx);
        };
        let n = backends.len() as u64;
        if n == 0 {
            return None;
        }
        let h = hash_ip(ip);
        for attempt in 0..REHASHES {
            let hk = if attempt == 0 { h } else { fmix64(h ^ attempt) };
            let i = (hk % n) as usize;
            if eligible(backends, ctx, i) {
                return Some(i);
            }
        }
        let first = (h % n) as usize;
        (first..backends.len())
            .chain(0..first)
            .find(|&i| eligible(backends, ctx, i))
    }

    fn name(&self) -> &'static str {
        "ip-hash"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selector::testing::*;

    fn ip(i: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000u32 + i))
    }

    #[test]
    fn ip_hash_is_sticky_per_client() {
        let bs = backends(&[1, 1, 1, 1]);
        let sel = IpHash::new();
        for i in 0..100 {
            let ctx = Pick::new("", Some(ip(i)));
            let first = sel.select(&bs, &ctx);
            assert!((0..10).all(|_| sel.select(&bs, &ctx) == first));
            // A fresh selector (another process) agrees.
            assert_eq!(IpHash::new().select(&bs, &ctx), first);
        }
    }

    #[test]
    fn ip_hash_treats_mapped_ipv4_as_ipv4() {
        let v4: IpAddr = "192.0.2.7".parse().expect("ip");
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("ip");
        assert_eq!(hash_ip(v4), hash_ip(mapped));
    }

    #[test]
    fn ip_hash_only_moves_clients_of_a_down_backend() {
        let bs = backends(&[1, 1, 1, 1]);
        let sel = IpHash::new();
        let before: Vec<_> = (0..1000)
            .map(|i| sel.select(&bs, &Pick::new("", Some(ip(i)))))
            .collect();
        take_down(&bs[2]);
        let mut moved_to = [0; 4];
        for (i, was) in before.iter().enumerate() {
            let now = sel.select(&bs, &Pick::new("", Some(ip(i as u32))));
            if *was == Some(2) {
                moved_to[now.expect("others up")] += 1;
            } else {
                assert_eq!(now, *was, "client {i} moved although its backend is up");
            }
        }
        // Rehashing spreads the orphans over all three survivors.
        assert!(
            moved_to[0] > 30 && moved_to[1] > 30 && moved_to[3] > 30,
            "{moved_to:?}"
        );
    }

    #[test]
    fn ip_hash_without_client_ip_falls_back_to_round_robin() {
        let bs = backends(&[1, 1, 1]);
        assert_eq!(
            counts(&IpHash::new(), &bs, &Pick::default(), 30),
            [10, 10, 10]
        );
    }
}
