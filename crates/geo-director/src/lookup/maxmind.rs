//! MaxMind DB files through the `maxminddb` crate. The record layout is
//! detected once when a file is opened ([`Schema`]); each lookup then takes
//! one `match` on it to pick the decoder.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use maxminddb::Reader;
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::{CountryCode, Geo, GeoLookup};
use crate::Error;

/// The record layouts the director understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// GeoIP2/GeoLite2 City (and DB-IP's own City Lite mmdb, and ours):
    /// `location.latitude/longitude`, `country.iso_code`, `registered_country.iso_code`.
    City,
    /// GeoIP2/GeoLite2 Country: only `country` / `registered_country`.
    Country,
    /// DB-IP Lite / ip-location-db builds: top-level `country_code`,
    /// `latitude`, `longitude` (32-bit floats).
    Flat,
}

#[derive(Deserialize)]
struct CityRecord<'a> {
    #[serde(default)]
    location: Option<Coordinates>,
    #[serde(borrow, default)]
    country: Option<CountryRecord<'a>>,
    #[serde(borrow, default)]
    registered_country: Option<CountryRecord<'a>>,
}

#[derive(Deserialize)]
struct Coordinates {
    latitude: Option<Degrees>,
    longitude: Option<Degrees>,
}

/// A coordinate stored as a double (GeoIP2) or a 32-bit float (DB-IP flat
/// builds). The `maxminddb` deserializer does not widen a float for an `f64`
/// field, so this takes whatever number is there.
struct Degrees(f64);

impl<'de> Deserialize<'de> for Degrees {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Degrees;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number of degrees")
            }
            fn visit_f64<E>(self, v: f64) -> Result<Degrees, E> {
                Ok(Degrees(v))
            }
            fn visit_f32<E>(self, v: f32) -> Result<Degrees, E> {
                Ok(Degrees(f64::from(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Degrees, E> {
                Ok(Degrees(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Degrees, E> {
                Ok(Degrees(v as f64))
            }
        }
        d.deserialize_any(V)
    }
}

fn degrees(d: Option<Degrees>) -> Option<f64> {
    d.map(|d| d.0)
}

#[derive(Deserialize)]
struct CountryRecord<'a> {
    iso_code: Option<&'a str>,
}

#[derive(Deserialize)]
struct FlatRecord<'a> {
    country_code: Option<&'a str>,
    latitude: Option<Degrees>,
    longitude: Option<Degrees>,
}

fn iso<'a>(c: &Option<CountryRecord<'a>>) -> Option<&'a str> {
    c.as_ref().and_then(|c| c.iso_code)
}

/// One open MaxMind DB file.
pub struct MaxMindDb {
    reader: Reader<Vec<u8>>,
    schema: Schema,
    path: PathBuf,
}

impl MaxMindDb {
    /// Reads the whole file into memory (so a later replacement of the file
    /// cannot change what this reader sees) and detects its layout.
    pub fn open(path: &Path) -> Result<MaxMindDb, Error> {
        let bytes =
            std::fs::read(path).map_err(|e| Error::database(path, format!("cannot read: {e}")))?;
        let reader = Reader::from_source(bytes).map_err(|e| {
            Error::database(path, format!("not a valid MaxMind DB (.mmdb) file: {e}"))
        })?;
        let schema = detect(&reader).map_err(|reason| Error::database(path, reason))?;
        Ok(MaxMindDb {
            reader,
            schema,
            path: path.to_path_buf(),
        })
    }

    pub fn schema(&self) -> Schema {
        self.schema
    }

    fn locate(&self, ip: IpAddr) -> Option<Geo> {
        if ip.is_ipv6() && self.reader.metadata().ip_version == 4 {
            return None;
        }
        // A lookup or decode error means this file cannot place the address;
        // it is not worth failing the request over.
        let found = self.reader.lookup(ip).ok()?;
        match self.schema {
            Schema::City => {
                let r: CityRecord = found.decode().ok()??;
                let cc = iso(&r.country)
                    .or(iso(&r.registered_country))
                    .and_then(CountryCode::parse);
                let (lat, lon) = r.location.map_or((None, None), |l| {
                    (degrees(l.latitude), degrees(l.longitude))
                });
                Geo::from_parts(lat, lon, cc)
            }
            Schema::Country => {
                let r: CityRecord = found.decode().ok()??;
                let cc = iso(&r.country)
                    .or(iso(&r.registered_country))
                    .and_then(CountryCode::parse);
                Geo::from_parts(None, None, cc)
            }
            Schema::Flat => {
                let r: FlatRecord = found.decode().ok()??;
                Geo::from_parts(
                    degrees(r.latitude),
                    degrees(r.longitude),
                    r.country_code.and_then(CountryCode::parse),
                )
            }
        }
    }
}

/// Looks at the first records to tell the layouts apart: the database type
/// string alone is not enough (ip-location-db's flat files call themselves
/// `city ipv4`, and a City database may start with records that hold only a
/// country).
fn detect(reader: &Reader<Vec<u8>>) -> Result<Schema, String> {
    let networks = reader
        .networks(Default::default())
        .map_err(|e| format!("cannot read its records: {e}"))?;
    let (mut location, mut country, mut flat, mut seen) = (false, false, false, 0);
    for item in networks.take(256) {
        let item = item.map_err(|e| format!("cannot read its records: {e}"))?;
        let Ok(Some(rec)) = item.decode::<BTreeMap<&str, IgnoredAny>>() else {
            continue;
        };
        seen += 1;
        location |= rec.contains_key("location");
        country |= rec.contains_key("country") || rec.contains_key("registered_country");
        flat |= rec.contains_key("country_code") || rec.contains_key("latitude");
    }
    let kind = reader.metadata().database_type.to_ascii_lowercase();
    if flat {
        Ok(Schema::Flat)
    } else if location || (country && kind.contains("city")) {
        Ok(Schema::City)
    } else if country {
        Ok(Schema::Country)
    } else if seen == 0 {
        Err("holds no records".into())
    } else {
        Err(format!(
            "database type `{}` has no location fields: expected a GeoIP2/GeoLite2 City or \
             Country database, or a DB-IP/ip-location-db one with country_code, latitude, longitude",
            reader.metadata().database_type
        ))
    }
}

/// The configured files, consulted in order: the first that locates an
/// address wins (so an IPv4 and an IPv6 file can be used together).
pub struct MaxMindFiles {
    dbs: Vec<MaxMindDb>,
}

impl MaxMindFiles {
    pub fn open(paths: &[impl AsRef<Path>]) -> Result<MaxMindFiles, Error> {
        let dbs = paths
            .iter()
            .map(|p| MaxMindDb::open(p.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(MaxMindFiles { dbs })
    }
}

impl GeoLookup for MaxMindFiles {
    fn lookup(&self, ip: IpAddr) -> Option<Geo> {
        self.dbs.iter().find_map(|db| db.locate(ip))
    }

    fn describe(&self) -> String {
        let parts: Vec<String> = self
            .dbs
            .iter()
            .map(|db| {
                let m = db.reader.metadata();
                format!(
                    "{} ({}, {:?} schema, built {})",
                    db.path.display(),
                    m.database_type,
                    db.schema,
                    build_date(m.build_epoch)
                )
            })
            .collect();
        parts.join("; ")
    }
}

/// `YYYY-MM-DD` of a Unix time (UTC), without pulling in a date crate.
fn build_date(epoch: u64) -> String {
    // Howard Hinnant's days-to-civil algorithm.
    let z = (epoch / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn build_date_is_utc_calendar_date() {
        assert_eq!(super::build_date(0), "1970-01-01");
        assert_eq!(super::build_date(1_780_666_922), "2026-06-05");
    }
}
