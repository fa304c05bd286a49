//! The shipped database from the source networks: each located network is
//! put at the centre of its country's region ([`crate::regions`]) that holds
//! its city, neighbouring networks at the same place merge, and the result
//! is written as one IPv6 MaxMind DB in the GeoIP2-City layout.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context;
use mmdb_writer::{IpVersion, Value, Writer};

use crate::centres::{self, Table};
use crate::regions::{self, Params, Weighted};
use crate::source::{Family, Net, Source};

pub const DATABASE_TYPE: &str = "Meridian-DBIP-Regions-City";

/// A place the database puts addresses at.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
struct Place {
    country: [u8; 2],
    lat: f64,
    lon: f64,
}

/// What was built, for the log line.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Summary {
    /// Address ranges written (after merging neighbours at one place).
    pub ranges: usize,
    /// Distinct places (region centres and country centres).
    pub places: usize,
    pub countries: usize,
    /// Per family: (networks read, weighted mean error of the regions in km).
    pub v4: (usize, f64),
    pub v6: (usize, f64),
}

/// A network's city: its country and the source's coordinates, bit for bit.
type CityKey = ([u8; 2], u32, u32);

fn city_key(n: &Net) -> Option<CityKey> {
    n.at.map(|(lat, lon)| (n.country, lat.to_bits(), lon.to_bits()))
}

/// Interns places so that equal places (after rounding) share one record.
#[derive(Default)]
struct Places {
    list: Vec<Place>,
    index: BTreeMap<([u8; 2], i64, i64), usize>,
}

impl Places {
    fn intern(&mut self, country: [u8; 2], lat: f64, lon: f64) -> usize {
        let (lat, lon) = (centres::round(lat), centres::round(lon));
        // Rounded to 0.01 degree, so hundredths are exact integers.
        let key = (
            country,
            (lat * 100.0).round() as i64,
            (lon * 100.0).round() as i64,
        );
        let next = self.list.len();
        *self.index.entry(key).or_insert_with(|| {
            self.list.push(Place { country, lat, lon });
            next
        })
    }
}

/// Every city of one family to the place of its region, and the mean error.
fn regions_of(
    nets: &[Net],
    family: Family,
    params: &Params,
    places: &mut Places,
) -> anyhow::Result<(BTreeMap<CityKey, usize>, f64)> {
    let mut cities: BTreeMap<CityKey, f64> = BTreeMap::new();
    for n in nets {
        if let Some(k) = city_key(n) {
            *cities.entry(k).or_default() += n.weight(family);
        }
    }
    let mut by_country: BTreeMap<[u8; 2], Vec<(CityKey, Weighted)>> = BTreeMap::new();
    for (&k, &w) in &cities {
        let (_, lat, lon) = k;
        let (lat, lon) = (
            f64::from(f32::from_bits(lat)),
            f64::from(f32::from_bits(lon)),
        );
        by_country
            .entry(k.0)
            .or_default()
            .push((k, Weighted::new(lat, lon, w)));
    }
    let bar = crate::progress::bar(
        by_country.len() as u64,
        &format!("regions of {family:?} countries"),
    )?;
    let mut place_of = BTreeMap::new();
    let (mut err_sum, mut weight_sum) = (0.0, 0.0);
    for (cc, list) in &by_country {
        let points: Vec<Weighted> = list.iter().map(|(_, w)| *w).collect();
        let r = regions::cluster(&points, params);
        let weight: f64 = points.iter().map(|p| p.weight).sum();
        err_sum += regions::mean_error_km(&points, &r) * weight;
        weight_sum += weight;
        let ids: Vec<usize> = r
            .centres
            .iter()
            .map(|&(lat, lon)| places.intern(*cc, lat, lon))
            .collect();
        for ((key, _), region) in list.iter().zip(&r.of_point) {
            if let Some(&id) = ids.get(*region) {
                place_of.insert(*key, id);
            }
        }
        bar.inc(1);
    }
    bar.finish();
    let err = if weight_sum > 0.0 {
        err_sum / weight_sum
    } else {
        0.0
    };
    Ok((place_of, err))
}

/// Consecutive addresses at one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    start: u128,
    end: u128,
    place: usize,
}

fn ranges_of(
    nets: &[Net],
    place_of: &BTreeMap<CityKey, usize>,
    country_place: &mut impl FnMut([u8; 2]) -> Option<usize>,
) -> Vec<Range> {
    let mut out: Vec<Range> = Vec::new();
    for n in nets {
        let place = match city_key(n).and_then(|k| place_of.get(&k)) {
            Some(&p) => Some(p),
            // No coordinates: the country's centre, as the director does.
            None => country_place(n.country),
        };
        let Some(place) = place else { continue };
        match out.last_mut() {
            Some(r) if r.place == place && r.end.checked_add(1) == Some(n.start) => r.end = n.end,
            _ => out.push(Range {
                start: n.start,
                end: n.end,
                place,
            }),
        }
    }
    out
}

fn record(p: &Place) -> Value {
    Value::map([
        (
            "country",
            Value::map([("iso_code", Value::from(centres::code(&p.country).as_str()))]),
        ),
        (
            "location",
            Value::map([
                ("latitude", Value::Double(p.lat)),
                ("longitude", Value::Double(p.lon)),
            ]),
        ),
    ])
}

/// Builds the database (uncompressed bytes). `centres` answers for networks
/// without coordinates.
pub fn build(
    source: &Source,
    params: &Params,
    centres: &Table,
) -> anyhow::Result<(Vec<u8>, Summary)> {
    let mut places = Places::default();
    let mut summary = Summary::default();
    let mut ranges: Vec<(Family, Vec<Range>)> = Vec::new();
    for family in [Family::V4, Family::V6] {
        let nets = source.nets(family);
        let (place_of, err) = regions_of(nets, family, params, &mut places)?;
        let mut country_place = |cc: [u8; 2]| {
            centres
                .get(&cc)
                .map(|&(lat, lon)| places.intern(cc, lat, lon))
        };
        ranges.push((family, ranges_of(nets, &place_of, &mut country_place)));
        let stats = (nets.len(), err);
        match family {
            Family::V4 => summary.v4 = stats,
            Family::V6 => summary.v6 = stats,
        }
    }
    let values: Vec<Value> = places.list.iter().map(record).collect();
    // Reproducible output: the build time is the source's, not the clock's.
    let epoch = UNIX_EPOCH + Duration::from_secs(source.build_epoch);
    let mut writer = Writer::builder(DATABASE_TYPE)
        .ip_version(IpVersion::V6)
        .description(&[(
            "en",
            "Country and the centre of its sub-country region per network (k-means of city \
             locations weighted by addresses), from DB-IP IP to City Lite (CC BY 4.0, \
             https://db-ip.com)",
        )])
        .build_epoch(epoch)
        .build();
    let total: usize = ranges.iter().map(|(_, r)| r.len()).sum();
    let bar = crate::progress::bar(total as u64, "writing ranges")?;
    for (family, list) in &ranges {
        for r in list {
            let (start, end) = match family {
                Family::V4 => (
                    IpAddr::from(Ipv4Addr::from(r.start as u32)),
                    IpAddr::from(Ipv4Addr::from(r.end as u32)),
                ),
                Family::V6 => (
                    IpAddr::from(Ipv6Addr::from(r.start)),
                    IpAddr::from(Ipv6Addr::from(r.end)),
                ),
            };
            let value = values.get(r.place).context("a range without a place")?;
            writer
                .insert_range(start, end, value)
                .with_context(|| format!("inserting {start}-{end}"))?;
            bar.inc(1);
        }
    }
    bar.finish();
    summary.ranges = total;
    summary.places = places.list.len();
    let mut countries: Vec<[u8; 2]> = places.list.iter().map(|p| p.country).collect();
    countries.sort_unstable();
    countries.dedup();
    summary.countries = countries.len();
    let bytes = writer.to_bytes().context("serialising the database")?;
    Ok((bytes, summary))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use ipnet::IpNet;
    use mmdb_writer::{IpVersion, Value, Writer};

    use super::*;
    use crate::source::Source;

    const PARAMS: Params = Params {
        target_km: 25.0,
        max_regions: 50,
        iterations: 20,
    };

    /// A DB-IP-like flat file: (CIDR, country, latitude, longitude).
    fn flat(path: &Path, version: IpVersion, rows: &[(&str, &str, f32, f32)]) {
        let mut w = Writer::builder("city ipv4")
            .ip_version(version)
            .build_epoch(UNIX_EPOCH + Duration::from_secs(1_780_666_922))
            .build();
        for (net, cc, lat, lon) in rows {
            let v = Value::map([
                ("country_code", Value::from(*cc)),
                ("city", Value::from("somewhere")),
                ("latitude", Value::Float(*lat)),
                ("longitude", Value::Float(*lon)),
            ]);
            w.insert_value(net.parse::<IpNet>().expect("cidr"), v)
                .expect("insert");
        }
        std::fs::write(path, w.to_bytes().expect("bytes")).expect("write");
    }

    fn synthetic(dir: &Path) {
        // Two US coasts, interleaved in address space, and a small country.
        let mut v4 = Vec::new();
        let cities = [
            (40.71, -74.01),
            (37.77, -122.42),
            (40.73, -73.99),
            (37.34, -121.89),
        ];
        let nets: Vec<String> = (0..64).map(|i| format!("20.{i}.0.0/16")).collect();
        for (i, n) in nets.iter().enumerate() {
            let (lat, lon) = cities[(i / 3) % cities.len()];
            v4.push((n.as_str(), "US", lat, lon));
        }
        v4.push(("81.2.69.0/24", "GB", 51.51, -0.13));
        v4.push(("81.2.70.0/24", "GB", 53.48, -2.24));
        v4.push(("5.5.5.0/24", "LU", 49.61, 6.13));
        flat(&dir.join("dbip-city-ipv4.mmdb"), IpVersion::V4, &v4);
        flat(
            &dir.join("dbip-city-ipv6.mmdb"),
            IpVersion::V6,
            &[
                ("2600:1000::/28", "US", 40.71, -74.01),
                ("2600:1010::/28", "US", 37.77, -122.42),
                ("2a00:1450::/32", "DE", 50.11, 8.68),
            ],
        );
    }

    fn build_dir(dir: &Path) -> (Vec<u8>, Summary) {
        let source = Source::read_dir(dir).expect("read");
        let table = crate::country_centres(&source);
        build(&source, &PARAMS, &table).expect("build")
    }

    #[test]
    fn the_same_input_builds_the_same_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        synthetic(dir.path());
        let (a, summary) = build_dir(dir.path());
        let (b, _) = build_dir(dir.path());
        assert!(a == b, "two builds differ");
        let (za, zb) = (
            crate::compress(&a, 3).expect("zstd"),
            crate::compress(&b, 3).expect("zstd"),
        );
        assert!(za == zb, "two compressed builds differ");
        // Source order does not matter either: a copy of the folder with the
        // files written again gives the same database.
        let again = tempfile::tempdir().expect("tempdir");
        synthetic(again.path());
        assert!(build_dir(again.path()).0 == a);
        assert_eq!(summary.countries, 4, "{summary:?}");
    }

    #[test]
    fn each_coast_keeps_its_place_and_small_countries_one_place() {
        let dir = tempfile::tempdir().expect("tempdir");
        synthetic(dir.path());
        let (bytes, _) = build_dir(dir.path());
        let db = maxminddb::Reader::from_source(bytes).expect("a MaxMind DB");
        assert_eq!(db.metadata().database_type, DATABASE_TYPE);
        assert_eq!(db.metadata().build_epoch, 1_780_666_922);
        #[derive(serde::Deserialize)]
        struct Loc {
            latitude: f64,
            longitude: f64,
        }
        #[derive(serde::Deserialize)]
        struct Rec {
            location: Loc,
        }
        let at = |ip: &str| {
            let r: Rec = db
                .lookup(ip.parse().expect("ip"))
                .expect("lookup")
                .decode()
                .expect("decode")
                .expect("found");
            (r.location.latitude, r.location.longitude)
        };
        // 20.0/16 is New York, 20.3/16 San Francisco.
        let (ny, sf) = (at("20.0.1.1"), at("20.3.1.1"));
        assert!(
            (ny.0 - 40.7).abs() < 0.5 && (ny.1 + 74.0).abs() < 0.5,
            "{ny:?}"
        );
        assert!(
            (sf.0 - 37.6).abs() < 0.7 && (sf.1 + 122.2).abs() < 0.7,
            "{sf:?}"
        );
        // Through the IPv4-mapped alias too, and IPv6 on both coasts.
        assert_eq!(at("::ffff:20.0.1.1"), ny);
        assert!(at("2600:1000::1").1 < -73.0 && at("2600:1010::1").1 < -122.0);
        assert_eq!(at("5.5.5.5"), (49.61, 6.13));
    }
}
