//! MaxMind DB files through the `maxminddb` crate. The record layout is
//! detected once when a file is opened ([`Schema`]); each lookup then takes
//! one `match` on it to pick the decoder.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use maxminddb::{LookupResult, Reader, Within, WithinOptions};
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

/// What one database may take in memory unless configured otherwise
/// (`director.geoip-max-size`): room for the largest commercial City
/// files, and a bound on what a corrupt or hostile compressed file can
/// make the director allocate.
pub const DEFAULT_GEOIP_MAX_SIZE: u64 = 1 << 30;

/// The first bytes of a zstd frame (RFC 8878 §3.1.1).
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// The file's bytes, decompressed when they are a zstd stream; never more
/// than `max` of either.
fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, Error> {
    use std::io::Read;
    let too_big = |what: &str| {
        Error::database(
            path,
            format!("{what} more than {max} bytes (director.geoip-max-size)"),
        )
    };
    let file = std::fs::File::open(path)
        .map_err(|e| Error::database(path, format!("cannot read: {e}")))?;
    let mut raw = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut raw)
        .map_err(|e| Error::database(path, format!("cannot read: {e}")))?;
    if raw.len() as u64 > max {
        return Err(too_big("is"));
    }
    if !raw.starts_with(&ZSTD_MAGIC) {
        return Ok(raw);
    }
    let broken = |e: std::io::Error| Error::database(path, format!("not a valid zstd file: {e}"));
    // The frame header may say how large the content is: allocate once.
    let hint = zstd::zstd_safe::get_frame_content_size(&raw)
        .ok()
        .flatten()
        .unwrap_or(0)
        .min(max);
    let mut out = Vec::with_capacity(usize::try_from(hint).unwrap_or(0));
    let decoder = zstd::stream::read::Decoder::with_buffer(raw.as_slice()).map_err(broken)?;
    decoder
        .take(max.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(broken)?;
    if out.len() as u64 > max {
        return Err(too_big("decompresses to"));
    }
    Ok(out)
}

/// One open MaxMind DB file.
pub struct MaxMindDb {
    reader: Reader<Vec<u8>>,
    schema: Schema,
    path: PathBuf,
}

impl MaxMindDb {
    /// Reads the whole file into memory (so a later replacement of the file
    /// cannot change what this reader sees) and detects its layout. A
    /// zstd-compressed file (the shipped `.mmdb.zst`) is decompressed.
    /// Either way at most [`DEFAULT_GEOIP_MAX_SIZE`] bytes are held.
    pub fn open(path: &Path) -> Result<MaxMindDb, Error> {
        MaxMindDb::open_limited(path, DEFAULT_GEOIP_MAX_SIZE)
    }

    /// As [`MaxMindDb::open`], holding at most `max_size` bytes: a larger
    /// file, or one that decompresses to more, is an error naming the file.
    pub fn open_limited(path: &Path, max_size: u64) -> Result<MaxMindDb, Error> {
        let bytes = read_bounded(path, max_size)?;
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
        self.geo_of(&found)
    }

    /// Where the record found for an address or a network puts it, by the
    /// file's layout. `None` when the record holds no usable location (or
    /// does not decode: treated the same, as a lookup does).
    fn geo_of(&self, found: &LookupResult<'_, Vec<u8>>) -> Option<Geo> {
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

    /// Every network of the file that holds a record, with where
    /// [`GeoLookup::lookup`] puts its addresses, in address order: IPv4
    /// networks as IPv4 (for an IPv6 file, once: not again through the
    /// `::ffff:0:0/96` and 6to4 aliases), then IPv6 ones. Each distinct
    /// record is decoded once, however many networks share it (the shipped
    /// database: 1.27 million networks at 250 locations).
    pub fn networks(&self) -> Networks<'_> {
        let (inner, pending) = match self.reader.networks(WithinOptions::default()) {
            Ok(within) => (Some(within), None),
            Err(e) => (None, Some(self.bad_tree(e))),
        };
        Networks {
            db: self,
            inner,
            pending,
            decoded: HashMap::default(),
            last: None,
        }
    }

    fn bad_tree(&self, e: maxminddb::MaxMindDbError) -> Error {
        Error::database(&self.path, format!("cannot read its networks: {e}"))
    }
}

/// One network of a geo database and where the database puts it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Network {
    pub net: IpNet,
    /// `None` when its record has no usable location (no coordinates and no
    /// country with a known centre), as `lookup` answers for it.
    pub geo: Option<Geo>,
}

/// The networks of one [`MaxMindDb`] ([`MaxMindDb::networks`]). A broken
/// search tree ends the iteration with one error naming the file.
pub struct Networks<'a> {
    db: &'a MaxMindDb,
    inner: Option<Within<'a, Vec<u8>>>,
    pending: Option<Error>,
    /// Where each record (by its data offset) puts its networks: many
    /// networks share a record.
    decoded: HashMap<usize, Option<Geo>, BuildHasherDefault<OffsetHasher>>,
    last: Option<(usize, Option<Geo>)>,
}

/// A multiplicative hash of a data offset (as rustc's FxHash), cheaper
/// than SipHash on a lookup per network. Offsets come from the file, but
/// a crafted file gains nothing by colliding them: it only slows its own
/// reading, as a file with more records would.
#[derive(Default)]
struct OffsetHasher(u64);

impl Hasher for OffsetHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

impl Iterator for Networks<'_> {
    type Item = Result<Network, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.pending.take() {
            return Some(Err(e));
        }
        let item = self.inner.as_mut()?.next()?;
        let found = match item {
            Ok(found) => found,
            Err(e) => {
                // The tree is broken from here on: stop after saying so.
                self.inner = None;
                return Some(Err(self.db.bad_tree(e)));
            }
        };
        let net = match found.network() {
            Ok(n) => IpNet::new(n.network(), n.prefix()).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let net = match net {
            Ok(net) => net,
            Err(e) => {
                self.inner = None;
                return Some(Err(Error::database(
                    &self.db.path,
                    format!("cannot read its networks: {e}"),
                )));
            }
        };
        let geo = match found.offset() {
            // Networks split from one range follow each other with one record.
            Some(offset) if self.last.is_some_and(|(o, _)| o == offset) => {
                self.last.and_then(|(_, g)| g)
            }
            Some(offset) => {
                let geo = *self
                    .decoded
                    .entry(offset)
                    .or_insert_with(|| self.db.geo_of(&found));
                self.last = Some((offset, geo));
                geo
            }
            None => None,
        };
        Some(Ok(Network { net, geo }))
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
        MaxMindFiles::open_limited(paths, DEFAULT_GEOIP_MAX_SIZE)
    }

    /// As [`MaxMindFiles::open`], each file holding at most `max_size` bytes
    /// ([`MaxMindDb::open_limited`]).
    pub fn open_limited(paths: &[impl AsRef<Path>], max_size: u64) -> Result<MaxMindFiles, Error> {
        let dbs = paths
            .iter()
            .map(|p| MaxMindDb::open_limited(p.as_ref(), max_size))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(MaxMindFiles { dbs })
    }

    /// Every network of every file as [`GeoLookup::lookup`] sees them: the
    /// files in order, each as [`MaxMindDb::networks`], leaving out a
    /// network of a later file whose first address an earlier file already
    /// locates (the earlier file answers for it). A later network that only
    /// partly overlaps an earlier file's is kept whole; files meant to be
    /// used together (an IPv4 and an IPv6 file) do not overlap.
    pub fn networks(&self) -> impl Iterator<Item = Result<Network, Error>> + '_ {
        self.dbs.iter().enumerate().flat_map(move |(i, db)| {
            let earlier = self.dbs.get(..i).unwrap_or_default();
            db.networks().filter(move |n| match n {
                Ok(n) => !earlier.iter().any(|e| e.locate(n.net.network()).is_some()),
                Err(_) => true,
            })
        })
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
    use std::net::IpAddr;
    use std::path::{Path, PathBuf};

    use ipnet::IpNet;
    use mmdb_writer::{IpVersion, Value, Writer};

    use super::*;
    use crate::Precision;

    #[test]
    fn build_date_is_utc_calendar_date() {
        assert_eq!(super::build_date(0), "1970-01-01");
        assert_eq!(super::build_date(1_780_666_922), "2026-06-05");
    }

    fn write(dir: &Path, name: &str, version: IpVersion, rows: &[(&str, Value)]) -> PathBuf {
        let mut w = Writer::builder("Test-DB").ip_version(version).build();
        for (net, v) in rows {
            w.insert_value(net.parse::<IpNet>().expect("cidr"), v.clone())
                .expect("insert");
        }
        let path = dir.join(name);
        std::fs::write(&path, w.to_bytes().expect("bytes")).expect("write");
        path
    }

    fn city(cc: &str, lat: f64, lon: f64) -> Value {
        Value::map([
            ("country", Value::map([("iso_code", Value::from(cc))])),
            (
                "location",
                Value::map([
                    ("latitude", Value::Double(lat)),
                    ("longitude", Value::Double(lon)),
                ]),
            ),
        ])
    }

    fn nets(files: &MaxMindFiles) -> Vec<Network> {
        files
            .networks()
            .collect::<Result<Vec<_>, _>>()
            .expect("networks")
    }

    #[test]
    fn networks_are_every_network_once_with_what_lookup_says_of_its_addresses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(
            dir.path(),
            "city.mmdb",
            IpVersion::V6,
            &[
                ("81.2.69.0/24", city("GB", 51.5, -0.1)),
                ("81.2.70.0/23", city("GB", 53.5, -2.2)),
                (
                    "2.2.2.0/24",
                    Value::map([("country", Value::map([("iso_code", Value::from("FR"))]))]),
                ),
                (
                    "4.4.4.0/24",
                    Value::map([("country", Value::map([("iso_code", Value::from("ZZ"))]))]),
                ),
                ("2a00::/16", city("DE", 52.0, 13.0)),
            ],
        );
        let files = MaxMindFiles::open(&[&path]).expect("open");
        let found = nets(&files);
        let listed: Vec<String> = found.iter().map(|n| n.net.to_string()).collect();
        // IPv4 as IPv4 and once (not again under ::ffff:0:0/96 or 2002::/16).
        assert_eq!(
            listed,
            [
                "2.2.2.0/24",
                "4.4.4.0/24",
                "81.2.69.0/24",
                "81.2.70.0/23",
                "2a00::/16"
            ]
        );
        for n in &found {
            for ip in [n.net.network(), n.net.broadcast()] {
                assert_eq!(files.lookup(ip), n.geo, "{ip} in {}", n.net);
            }
        }
        let fr = found.first().and_then(|n| n.geo).expect("France located");
        assert_eq!(fr.precision, Precision::CountryCentre);
        assert_eq!(
            found.get(1).map(|n| n.geo),
            Some(None),
            "unknown country code"
        );
    }

    #[test]
    fn networks_of_several_files_leave_out_what_an_earlier_file_answers_for() {
        let dir = tempfile::tempdir().expect("tempdir");
        let v4 = write(
            dir.path(),
            "v4.mmdb",
            IpVersion::V4,
            &[("8.8.8.0/24", city("US", 37.4, -122.1))],
        );
        let v6 = write(
            dir.path(),
            "v6.mmdb",
            IpVersion::V6,
            &[
                ("8.8.8.0/24", city("DE", 50.1, 8.7)),
                ("9.9.9.0/24", city("CH", 47.4, 8.5)),
                ("2a00::/16", city("DE", 52.0, 13.0)),
            ],
        );
        let files = MaxMindFiles::open(&[&v4, &v6]).expect("open");
        let found = nets(&files);
        let listed: Vec<String> = found
            .iter()
            .map(|n| {
                let cc = n.geo.and_then(|g| g.country);
                format!("{} {}", n.net, cc.as_ref().map_or("-", CountryCode::as_str))
            })
            .collect();
        // 8.8.8.0/24 of the second file is the first's: lookup answers US.
        assert_eq!(listed, ["8.8.8.0/24 US", "9.9.9.0/24 CH", "2a00::/16 DE"]);
        let ip: IpAddr = "8.8.8.8".parse().expect("ip");
        assert_eq!(files.lookup(ip), found.first().and_then(|n| n.geo));
    }

    #[test]
    fn a_zstd_compressed_file_reads_as_the_file_itself() {
        let dir = tempfile::tempdir().expect("tempdir");
        let raw = write(
            dir.path(),
            "city.mmdb",
            IpVersion::V6,
            &[("81.2.69.0/24", city("GB", 51.5, -0.1))],
        );
        let zst = dir.path().join("city.mmdb.zst");
        let bytes = std::fs::read(&raw).expect("read");
        std::fs::write(&zst, zstd::bulk::compress(&bytes, 3).expect("zstd")).expect("write");
        let ip: IpAddr = "81.2.69.142".parse().expect("ip");
        let plain = MaxMindFiles::open(&[&raw]).expect("plain");
        let packed = MaxMindFiles::open(&[&zst]).expect("compressed");
        assert!(packed.lookup(ip).is_some());
        assert_eq!(packed.lookup(ip), plain.lookup(ip));
        // The limit holds for what decompression yields, not the file size.
        let packed_len = std::fs::metadata(&zst).expect("meta").len();
        assert!(packed_len < bytes.len() as u64);
        let err = MaxMindDb::open_limited(&zst, packed_len + 1)
            .err()
            .expect("over the limit")
            .to_string();
        assert!(
            err.contains("city.mmdb.zst")
                && err.contains("decompresses to more than")
                && err.contains("director.geoip-max-size"),
            "{err}"
        );
        assert!(MaxMindDb::open_limited(&zst, bytes.len() as u64).is_ok());
        let err = MaxMindDb::open_limited(&raw, 10)
            .err()
            .expect("over the limit")
            .to_string();
        assert!(
            err.contains("city.mmdb") && err.contains("is more than 10 bytes"),
            "{err}"
        );
    }

    #[test]
    fn a_broken_zstd_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("broken.mmdb.zst");
        let mut bytes = super::ZSTD_MAGIC.to_vec();
        bytes.extend_from_slice(b"\x00\xff definitely not a zstd frame");
        std::fs::write(&path, &bytes).expect("write");
        let err = MaxMindDb::open(&path).err().expect("broken").to_string();
        assert!(
            err.contains("broken.mmdb.zst") && err.contains("not a valid zstd file"),
            "{err}"
        );
        // A truncated stream, too.
        let good = zstd::bulk::compress(&[7u8; 4096], 3).expect("zstd");
        std::fs::write(&path, &good[..good.len() / 2]).expect("write");
        let err = MaxMindDb::open(&path).err().expect("truncated").to_string();
        assert!(err.contains("broken.mmdb.zst"), "{err}");
    }
}
