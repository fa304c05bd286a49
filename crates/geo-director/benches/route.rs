//! One routing decision: database lookup plus the choice among 50 edges.
//! Uses the shipped database when present (the real lookup cost), else a
//! tiny one built with mmdb-writer.

use std::hint::black_box;
use std::net::IpAddr;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use meridian_geo_director::{Config, Director};

fn config(db: PathBuf, weights: bool) -> Config {
    let mut text = String::new();
    for i in 0..50 {
        // Spread edges over the globe, deterministically.
        let lat = -60.0 + (i as f64 * 37.0) % 130.0;
        let lon = -180.0 + (i as f64 * 73.0) % 360.0;
        let weight = if weights { 1.0 + (i % 3) as f64 } else { 1.0 };
        text.push_str(&format!(
            "[[edge]]\nname = \"edge-{i:02}\"\nregion = \"r{}\"\nurl = \"http://127.0.0.1:{}\"\n\
             admin = \"http://127.0.0.1:{}\"\nlatitude = {lat}\nlongitude = {lon}\nweight = {weight}\n",
            i % 7,
            10_000 + i,
            20_000 + i
        ));
    }
    let mut c = Config::parse("bench.toml", &text).expect("bench config");
    c.geoip = vec![db];
    c
}

fn shipped() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../geo-data/dbip-regions.mmdb.zst")
}

fn bench(c: &mut Criterion) {
    let db = shipped();
    assert!(
        db.exists(),
        "the shipped database {} is missing",
        db.display()
    );
    let ips: Vec<IpAddr> = [
        "81.2.69.142",
        "8.8.8.8",
        "1.1.1.1",
        "2a00:1450:4001::1",
        "203.2.218.214",
        "200.160.2.3",
    ]
    .iter()
    .map(|s| s.parse().expect("ip"))
    .collect();
    for (name, weights) in [("route_50_edges", false), ("route_50_weighted_edges", true)] {
        let d = Director::new(config(db.clone(), weights)).expect("director");
        let mut n = 0usize;
        c.bench_function(name, |b| {
            b.iter(|| {
                n = n.wrapping_add(1);
                black_box(d.route(black_box(ips[n % ips.len()])))
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
