//! Address to location. [`GeoLookup`] is the seam: [`MaxMindDb`] reads any
//! MaxMind DB file (GeoIP2/GeoLite2 City or Country, DB-IP Lite and
//! ip-location-db flat builds); [`StaticLookup`] is an in-memory table for
//! tests and benchmarks.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use crate::centres::CENTRES;

mod maxmind;

pub use maxmind::{DEFAULT_GEOIP_MAX_SIZE, MaxMindDb, MaxMindFiles, Network, Networks, Schema};

/// An ISO 3166-1 alpha-2 country code, upper case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CountryCode(pub [u8; 2]);

impl CountryCode {
    /// Accepts exactly two ASCII letters, in any case.
    pub fn parse(s: &str) -> Option<CountryCode> {
        match s.as_bytes() {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => Some(CountryCode([
                a.to_ascii_uppercase(),
                b.to_ascii_uppercase(),
            ])),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII letters get in (see `parse`), so this never falls back.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }

    /// The country's IP-weighted centre from the table kept in this crate.
    pub fn centre(&self) -> Option<(f64, f64)> {
        CENTRES
            .binary_search_by(|(cc, _, _)| cc.cmp(&self.0))
            .ok()
            .and_then(|i| CENTRES.get(i))
            .map(|&(_, lat, lon)| (f64::from(lat), f64::from(lon)))
    }
}

impl Serialize for CountryCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// How precise a location is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Precision {
    /// Coordinates the database holds for this network.
    Coordinates,
    /// Only the country was known: its centre from the crate's table.
    CountryCentre,
}

/// Where a database puts an address.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Geo {
    pub latitude: f64,
    pub longitude: f64,
    pub country: Option<CountryCode>,
    pub precision: Precision,
}

impl Geo {
    /// Builds a location from what a record holds: coordinates when both are
    /// present and sane, else the centre of the country. `None` when neither.
    pub fn from_parts(
        lat: Option<f64>,
        lon: Option<f64>,
        country: Option<CountryCode>,
    ) -> Option<Geo> {
        match (lat, lon) {
            (Some(latitude), Some(longitude))
                if (-90.0..=90.0).contains(&latitude) && (-180.0..=180.0).contains(&longitude) =>
            {
                Some(Geo {
                    latitude,
                    longitude,
                    country,
                    precision: Precision::Coordinates,
                })
            }
            _ => {
                let (latitude, longitude) = country?.centre()?;
                Some(Geo {
                    latitude,
                    longitude,
                    country,
                    precision: Precision::CountryCentre,
                })
            }
        }
    }
}

/// Resolves an address to a location. Implementations must be cheap to call
/// on every request and must not panic on any address.
pub trait GeoLookup: Send + Sync + 'static {
    /// `None` when the address is not in the database or has no usable location.
    fn lookup(&self, ip: IpAddr) -> Option<Geo>;
    /// A line for `/v1/route` and the logs: which database this is.
    fn describe(&self) -> String;
}

/// An in-memory table of networks to locations; the most specific network wins.
#[derive(Debug, Default, Clone)]
pub struct StaticLookup {
    entries: Vec<(IpNet, Geo)>,
}

impl StaticLookup {
    pub fn new() -> Self {
        StaticLookup::default()
    }

    /// Adds a network at given coordinates.
    pub fn with(mut self, net: IpNet, latitude: f64, longitude: f64) -> Self {
        self.entries.push((
            net.trunc(),
            Geo {
                latitude,
                longitude,
                country: None,
                precision: Precision::Coordinates,
            },
        ));
        // Longest prefix first, so the first match is the most specific.
        self.entries
            .sort_by_key(|(n, _)| std::cmp::Reverse(n.prefix_len()));
        self
    }
}

impl GeoLookup for StaticLookup {
    fn lookup(&self, ip: IpAddr) -> Option<Geo> {
        self.entries
            .iter()
            .find(|(n, _)| n.contains(&ip))
            .map(|(_, g)| *g)
    }

    fn describe(&self) -> String {
        format!("in-memory table ({} networks)", self.entries.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn country_centres_are_found_by_code() {
        let us = CountryCode::parse("us").and_then(|c| c.centre());
        assert!(
            matches!(us, Some((lat, lon)) if (30.0..45.0).contains(&lat) && (-100.0..-75.0).contains(&lon))
        );
        assert_eq!(CountryCode::parse("ZZ").and_then(|c| c.centre()), None);
        assert_eq!(CountryCode::parse("USA"), None);
    }

    #[test]
    fn centre_table_is_sorted_for_binary_search() {
        assert!(CENTRES.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn static_lookup_prefers_the_longest_prefix() {
        let t = StaticLookup::new()
            .with("8.0.0.0/8".parse().expect("cidr"), 1.0, 1.0)
            .with("8.8.8.0/24".parse().expect("cidr"), 2.0, 2.0);
        let hit = t.lookup("8.8.8.8".parse().expect("ip")).map(|g| g.latitude);
        assert_eq!(hit, Some(2.0));
        assert_eq!(t.lookup("9.9.9.9".parse().expect("ip")), None);
    }
}
