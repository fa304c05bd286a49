//! The MaxMind reader against tiny databases written with mmdb-writer in a
//! temp folder: layout detection, fallbacks, IPv4/IPv6, several files.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use meridian_geo_director::{GeoLookup, MaxMindDb, MaxMindFiles, Precision, Schema};
use mmdb_writer::{IpVersion, Value, Writer};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn write(dir: &Path, name: &str, version: IpVersion, rows: Vec<(&str, Value)>) -> PathBuf {
    let mut w = Writer::builder("Test-DB").ip_version(version).build();
    for (net, v) in rows {
        w.insert_value(net.parse::<ipnet::IpNet>().expect("cidr"), v)
            .expect("insert");
    }
    let path = dir.join(name);
    std::fs::write(&path, w.to_bytes().expect("bytes")).expect("write");
    path
}

fn iso(cc: &str) -> Value {
    Value::map([("iso_code", Value::from(cc))])
}

fn loc(lat: f64, lon: f64) -> Value {
    Value::map([
        ("latitude", Value::Double(lat)),
        ("longitude", Value::Double(lon)),
    ])
}

#[test]
fn city_records_use_coordinates_then_country_then_registered_country() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        "city.mmdb",
        IpVersion::V6,
        vec![
            (
                "81.2.69.0/24",
                Value::map([("country", iso("GB")), ("location", loc(51.5, -0.1))]),
            ),
            ("2.2.2.0/24", Value::map([("country", iso("FR"))])),
            (
                "3.3.3.0/24",
                Value::map([("registered_country", iso("JP"))]),
            ),
            ("2a00::/16", Value::map([("location", loc(52.0, 5.0))])),
            ("4.4.4.0/24", Value::map([("country", iso("ZZ"))])),
        ],
    );
    let db = MaxMindDb::open(&path).expect("open");
    assert_eq!(db.schema(), Schema::City);
    let files = MaxMindFiles::open(&[&path]).expect("open");
    let g = files.lookup(ip("81.2.69.142")).expect("located");
    assert_eq!(
        (g.latitude, g.longitude, g.precision),
        (51.5, -0.1, Precision::Coordinates)
    );
    assert_eq!(
        g.country.map(|c| c.as_str().to_string()).as_deref(),
        Some("GB")
    );
    let fr = files.lookup(ip("2.2.2.2")).expect("country centre");
    assert_eq!(fr.precision, Precision::CountryCentre);
    assert!((42.0..50.0).contains(&fr.latitude), "{fr:?}");
    let jp = files.lookup(ip("3.3.3.3")).expect("registered country");
    assert!(jp.longitude > 130.0, "{jp:?}");
    assert_eq!(
        files.lookup(ip("2a00::1")).map(|g| g.latitude),
        Some(52.0),
        "IPv6"
    );
    assert_eq!(
        files.lookup(ip("::ffff:81.2.69.142")).map(|g| g.latitude),
        Some(51.5),
        "mapped"
    );
    assert_eq!(files.lookup(ip("4.4.4.4")), None, "unknown country code");
    assert_eq!(files.lookup(ip("5.5.5.5")), None, "not in the database");
}

#[test]
fn country_and_flat_layouts_are_detected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let country = write(
        dir.path(),
        "country.mmdb",
        IpVersion::V6,
        vec![(
            "8.8.8.0/24",
            Value::map([
                ("country", iso("US")),
                ("continent", Value::map([("code", Value::from("NA"))])),
            ]),
        )],
    );
    let flat = write(
        dir.path(),
        "flat.mmdb",
        IpVersion::V4,
        vec![(
            "8.8.8.0/24",
            Value::map([
                ("country_code", Value::from("US")),
                ("latitude", Value::Float(37.42)),
                ("longitude", Value::Float(-122.08)),
            ]),
        )],
    );
    assert_eq!(
        MaxMindDb::open(&country).expect("open").schema(),
        Schema::Country
    );
    assert_eq!(MaxMindDb::open(&flat).expect("open").schema(), Schema::Flat);
    let g = MaxMindFiles::open(&[&flat])
        .expect("open")
        .lookup(ip("8.8.8.8"))
        .expect("flat");
    assert!(
        (g.latitude - 37.42).abs() < 1e-4 && (g.longitude + 122.08).abs() < 1e-4,
        "{g:?}"
    );
    // An IPv4-only file is skipped for IPv6, the next file answers.
    let v6 = write(
        dir.path(),
        "v6.mmdb",
        IpVersion::V6,
        vec![(
            "2a00::/16",
            Value::map([("country_code", Value::from("DE"))]),
        )],
    );
    let both = MaxMindFiles::open(&[&flat, &v6]).expect("open");
    assert_eq!(
        both.lookup(ip("2a00::1")).map(|g| g.precision),
        Some(Precision::CountryCentre)
    );
    assert!(both.lookup(ip("8.8.8.8")).is_some());
    assert!(both.describe().contains("flat.mmdb") && both.describe().contains("v6.mmdb"));
}

#[test]
fn unusable_files_name_the_file_and_the_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = write(dir.path(), "empty.mmdb", IpVersion::V6, vec![]);
    let junk = dir.path().join("junk.mmdb");
    std::fs::write(&junk, vec![0xab; 4096]).expect("write");
    for (path, want) in [
        (empty, "holds no records"),
        (junk, "not a valid MaxMind DB"),
    ] {
        let msg = MaxMindDb::open(&path)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            msg.contains(want) && msg.contains(&*path.to_string_lossy()),
            "{msg}"
        );
    }
}
