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
        let key = (country, (lat * 100.0).round() as i64, (lon * 100.0).round() as i64);
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
        let (lat, lon) = (f64::from(f32::from_bits(lat)), f64::from(f32::from_bits(lon)));
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
pub fn build(source: &Source, params: &Params, centres: &Table) -> anyhow::Result<(Vec<u8>, Summary)> {
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
