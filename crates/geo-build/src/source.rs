//! Reads one flat-schema DB-IP file (`country_code`, `latitude`, `longitude`
//! as 32-bit floats) into country-coalesced address ranges plus weighted points.

use std::net::IpAddr;
use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

#[derive(Deserialize)]
struct Flat<'a> {
    country_code: Option<&'a str>,
    latitude: Option<f32>,
    longitude: Option<f32>,
}

/// Consecutive addresses of one country.
pub struct Range {
    pub start: IpAddr,
    pub end: IpAddr,
    pub country: String,
}

/// A located network: its country, position and how many addresses it holds.
pub struct Point {
    pub country: String,
    pub lat: f64,
    pub lon: f64,
    pub weight: f64,
}

pub struct Source {
    pub ranges: Vec<Range>,
    pub points: Vec<Point>,
    pub build_epoch: u64,
}

pub fn read(path: &Path) -> anyhow::Result<Source> {
    let reader = maxminddb::Reader::open_readfile(path)
        .with_context(|| format!("{}: not a readable MaxMind DB", path.display()))?;
    let mut ranges: Vec<Range> = Vec::new();
    let mut points = Vec::new();
    // The open run as (first, last) address numbers; IPv4 and IPv6 both fit u128.
    let mut run: Option<(u128, u128, String, bool)> = None;
    for item in reader.networks(Default::default())? {
        let item = item?;
        let net = item.network()?;
        let Some(rec) = item.decode::<Flat>()? else {
            continue;
        };
        let Some(cc) = rec.country_code.filter(|c| c.len() == 2) else {
            continue;
        };
        let (v4, start, end, host_bits) = match net {
            ipnetwork::IpNetwork::V4(n) => {
                let bits = 32 - u32::from(n.prefix());
                let s = u128::from(u32::from(n.network()));
                (true, s, s + ((1u128 << bits) - 1), bits)
            }
            ipnetwork::IpNetwork::V6(n) => {
                // Aliased IPv4 space (IPv4-mapped, 6to4, Teredo) comes from the IPv4 file.
                let s = u128::from(n.network());
                if is_ipv4_alias(s) {
                    continue;
                }
                let bits = 128 - u32::from(n.prefix());
                let e = if bits == 128 {
                    u128::MAX
                } else {
                    s + ((1u128 << bits) - 1)
                };
                (false, s, e, bits.saturating_sub(64))
            }
        };
        if let (Some(lat), Some(lon)) = (rec.latitude, rec.longitude) {
            points.push(Point {
                country: cc.to_string(),
                lat: f64::from(lat),
                lon: f64::from(lon),
                weight: 2f64.powi(host_bits as i32),
            });
        }
        match &mut run {
            Some((_, last, c, _)) if c == cc && last.checked_add(1) == Some(start) => *last = end,
            _ => {
                if let Some(r) = run.take() {
                    ranges.push(to_range(r));
                }
                run = Some((start, end, cc.to_string(), v4));
            }
        }
    }
    if let Some(r) = run.take() {
        ranges.push(to_range(r));
    }
    Ok(Source {
        ranges,
        points,
        build_epoch: reader.metadata().build_epoch,
    })
}

fn to_range((start, end, country, v4): (u128, u128, String, bool)) -> Range {
    let ip = |n: u128| -> IpAddr {
        if v4 {
            IpAddr::from(std::net::Ipv4Addr::from(n as u32))
        } else {
            IpAddr::from(std::net::Ipv6Addr::from(n))
        }
    };
    Range {
        start: ip(start),
        end: ip(end),
        country,
    }
}

fn is_ipv4_alias(addr: u128) -> bool {
    addr >> 32 == 0xffff // ::ffff:0:0/96
        || addr >> 96 == 0x2001_0000 // 2001::/32 (Teredo)
        || addr >> 112 == 0x2002 // 2002::/16 (6to4)
        || addr >> 32 == 0 // ::/96 (IPv4-compatible: the IPv4 subtree itself)
}
