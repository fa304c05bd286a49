//! Coverage zones: networks pinned to an edge or a region, checked before the
//! database (Apache Traffic Control's coverage zone file does the same for
//! networks whose location a database gets wrong). The longest prefix wins.
//!
//! Lookup is one hash probe per distinct prefix length, longest first, so it
//! stays cheap with thousands of networks.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

/// Masked network bits -> (network, zone index), for one prefix length.
type Table = HashMap<u128, (IpNet, usize)>;

/// Networks to zone indexes.
#[derive(Debug, Default)]
pub struct Zones {
    /// (prefix length, is IPv4, masked network -> (network, zone)), longest first.
    tables: Vec<(u8, bool, Table)>,
}

fn bits(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(a) => (true, u128::from(u32::from(a))),
        IpAddr::V6(a) => (false, u128::from(a)),
    }
}

fn mask(v4: bool, len: u8, value: u128) -> u128 {
    let width = if v4 { 32 } else { 128 };
    let host = width - u32::from(len);
    if host >= 128 {
        0
    } else {
        value & !((1u128 << host) - 1)
    }
}

impl Zones {
    /// Builds the table from `(network, zone index)`; a network listed twice
    /// keeps its first zone.
    pub fn new(entries: impl IntoIterator<Item = (IpNet, usize)>) -> Zones {
        let mut zones = Zones::default();
        for (net, zone) in entries {
            let net = net.trunc();
            let (v4, value) = bits(net.network());
            let len = net.prefix_len();
            let table = match zones
                .tables
                .iter()
                .position(|(l, f, _)| *l == len && *f == v4)
            {
                Some(i) => &mut zones.tables[i].2,
                None => {
                    zones.tables.push((len, v4, HashMap::new()));
                    let last = zones.tables.len() - 1;
                    &mut zones.tables[last].2
                }
            };
            table.entry(mask(v4, len, value)).or_insert((net, zone));
        }
        zones
            .tables
            .sort_by_key(|(len, v4, _)| (std::cmp::Reverse(*len), *v4));
        zones
    }

    /// The most specific network holding `ip`, and its zone.
    pub fn find(&self, ip: IpAddr) -> Option<(IpNet, usize)> {
        let (v4, value) = bits(ip);
        self.tables
            .iter()
            .filter(|(_, f, _)| *f == v4)
            .find_map(|(len, _, t)| t.get(&mask(v4, *len, value)).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn z(entries: &[(&str, usize)]) -> Zones {
        Zones::new(entries.iter().map(|(n, i)| (n.parse().expect("cidr"), *i)))
    }

    #[test]
    fn longest_prefix_wins() {
        let zones = z(&[("10.0.0.0/8", 0), ("10.1.0.0/16", 1), ("10.1.2.0/24", 2)]);
        let find = |ip: &str| zones.find(ip.parse().expect("ip")).map(|(_, i)| i);
        assert_eq!(find("10.1.2.3"), Some(2));
        assert_eq!(find("10.1.9.9"), Some(1));
        assert_eq!(find("10.200.0.1"), Some(0));
        assert_eq!(find("11.0.0.1"), None);
    }

    #[test]
    fn families_do_not_mix_and_zero_prefix_matches_all() {
        let zones = z(&[("2001:db8::/32", 0), ("0.0.0.0/0", 1)]);
        let find = |ip: &str| zones.find(ip.parse().expect("ip")).map(|(_, i)| i);
        assert_eq!(find("2001:db8::1"), Some(0));
        assert_eq!(find("2001:db9::1"), None);
        assert_eq!(find("192.0.2.1"), Some(1));
    }
}
