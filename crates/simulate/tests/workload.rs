//! The seeded workload against the shipped geo database
//! (`geo-data/dbip-regions.mmdb.zst`) and the real sample site.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use meridian_geo_director::{GeoLookup, MaxMindFiles, is_special};
use meridian_origin::SampleSite;
use meridian_origin::sample::BIG_VIDEO;
use meridian_simulate::workload::{self, Places};
use meridian_simulate::{AssetRef, Region, Workload, WorkloadParams, weights};
use mmdb_writer::{IpVersion, Value, Writer};

fn db() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../geo-data/dbip-regions.mmdb.zst")
}

/// The shipped database, read once per test binary.
fn places() -> &'static Places {
    static PLACES: OnceLock<Places> = OnceLock::new();
    PLACES.get_or_init(|| Places::open(&[db()]).expect("the shipped geo database opens"))
}

fn assets() -> &'static [AssetRef] {
    static ASSETS: OnceLock<Vec<AssetRef>> = OnceLock::new();
    ASSETS.get_or_init(|| workload::site_assets(&SampleSite::generate(7)))
}

fn params(seed: u64, clients: u32, requests: u64) -> WorkloadParams {
    WorkloadParams {
        seed,
        clients,
        requests,
        duration_ms: 20_000,
        zipf_s: 1.0,
    }
}

fn generate(p: &WorkloadParams) -> Workload {
    workload::generate(p, assets(), places()).expect("generated")
}

/// Every field of every client and request.
fn digest(w: &Workload) -> u64 {
    let mut h = DefaultHasher::new();
    w.weights_source.hash(&mut h);
    for c in &w.clients {
        (c.id, c.ip, &c.country, c.region, c.start_ms, c.random_pick).hash(&mut h);
        (c.latitude.to_bits(), c.longitude.to_bits()).hash(&mut h);
        for r in &c.requests {
            (&*r.path, r.think_ms, r.range).hash(&mut h);
        }
    }
    h.finish()
}

#[test]
fn the_same_seed_gives_the_same_workload_and_another_seed_another() {
    let a = generate(&params(42, 2_000, 20_000));
    let b = generate(&params(42, 2_000, 20_000));
    assert_eq!(digest(&a), digest(&b));
    let c = generate(&params(43, 2_000, 20_000));
    assert_ne!(digest(&a), digest(&c));
    let moved = a
        .clients
        .iter()
        .zip(&c.clients)
        .filter(|(x, y)| x.ip != y.ip)
        .count();
    assert!(moved > 1_900, "only {moved} of 2000 clients differ");
}

#[test]
fn each_draw_has_its_own_stream() {
    let base = generate(&params(5, 200, 2_000));
    // Another window changes start and think times, not who asks for what.
    let mut longer = params(5, 200, 2_000);
    longer.duration_ms = 60_000;
    let longer = generate(&longer);
    let paths = |w: &Workload| -> Vec<Vec<Arc<str>>> {
        w.clients
            .iter()
            .map(|c| c.requests.iter().map(|r| r.path.clone()).collect())
            .collect()
    };
    let ips = |w: &Workload| w.clients.iter().map(|c| c.ip).collect::<Vec<_>>();
    assert_eq!(ips(&base), ips(&longer));
    assert_eq!(paths(&base), paths(&longer));
    assert_ne!(digest(&base), digest(&longer));
    // Client i is where it was with more clients around.
    let more = generate(&params(5, 400, 4_000));
    assert_eq!(ips(&base), ips(&more).get(..200).unwrap_or_default());
}

#[test]
fn every_request_is_given_out_and_every_client_has_one() {
    for (clients, requests) in [
        (2_000, 20_000),
        (100, 100),
        (1, 7),
        (3, 1_000),
        (999, 1_001),
    ] {
        let w = generate(&params(9, clients, requests));
        assert_eq!(w.clients.len(), clients as usize);
        assert_eq!(w.requests(), requests, "{clients} clients");
        assert!(w.clients.iter().all(|c| !c.requests.is_empty()));
        let ids: Vec<u32> = w.clients.iter().map(|c| c.id).collect();
        assert_eq!(ids, (0..clients).collect::<Vec<_>>());
    }
}

#[test]
fn clients_come_from_where_internet_users_are() {
    let w = generate(&params(11, 20_000, 20_000));
    let mut seen: BTreeMap<Region, f64> = BTreeMap::new();
    let mut countries: HashMap<&str, u32> = HashMap::new();
    for c in &w.clients {
        *seen.entry(c.region).or_default() += 1.0 / 20_000.0;
        *countries.entry(c.country.as_str()).or_default() += 1;
    }
    // What the weights say, over the database's countries.
    let mut want: BTreeMap<Region, f64> = BTreeMap::new();
    for cc in places().countries() {
        if let Some(r) = weights::region_of(cc) {
            *want.entry(r).or_default() += weights::users_millions(cc);
        }
    }
    let total: f64 = want.values().sum();
    for (region, users) in &want {
        let (got, want) = (seen.get(region).copied().unwrap_or(0.0), users / total);
        // Random, but 20,000 draws: a few tenths of a percent of spread.
        assert!(
            (got - want).abs() < 0.02,
            "{region}: {got:.3}, weights {want:.3}"
        );
    }
    let share = |r| seen.get(&r).copied().unwrap_or(0.0);
    assert!(Region::ALL.iter().all(|&r| share(Region::Asia) >= share(r)));
    assert!((0.001..0.02).contains(&share(Region::Oceania)), "{seen:?}");
    let top = countries.iter().max_by_key(|(_, n)| **n).map(|(c, _)| *c);
    assert_eq!(top, Some("CN"));
    assert!(countries.get("IN") > countries.get("US"));
    assert!(countries.get("US") > countries.get("DE"));
}

#[test]
fn the_database_places_every_client_where_the_simulator_says() {
    let lookup = MaxMindFiles::open(&[db()]).expect("open");
    let w = generate(&params(3, 2_000, 2_000));
    for c in &w.clients {
        assert!(!is_special(c.ip), "{}", c.ip);
        let g = lookup
            .lookup(c.ip)
            .expect("the database locates the address");
        assert_eq!(
            (g.latitude, g.longitude),
            (c.latitude, c.longitude),
            "{}",
            c.ip
        );
        assert_eq!(
            g.country.map(|cc| cc.as_str().to_owned()).as_deref(),
            Some(c.country.as_str())
        );
        assert_eq!(weights::region_of(&c.country), Some(c.region));
    }
    // Clients of one country do not all share an address or a network.
    let us: Vec<_> = w
        .clients
        .iter()
        .filter(|c| c.country == "US")
        .map(|c| c.ip)
        .collect();
    let distinct: std::collections::HashSet<_> = us.iter().collect();
    assert!(
        us.len() > 50 && distinct.len() == us.len(),
        "{} US clients",
        us.len()
    );
}

fn hits(w: &Workload) -> HashMap<&str, u64> {
    let mut n: HashMap<&str, u64> = assets().iter().map(|a| (&*a.path, 0)).collect();
    for r in w.clients.iter().flat_map(|c| &c.requests) {
        *n.entry(&r.path).or_default() += 1;
    }
    n
}

#[test]
fn a_few_assets_get_most_requests() {
    let w = generate(&params(21, 2_000, 20_000));
    let by_asset = hits(&w);
    let mut counts: Vec<u64> = by_asset.values().copied().collect();
    counts.sort_unstable();
    let (top, median) = (
        counts.last().copied().unwrap_or(0),
        counts[counts.len() / 2],
    );
    assert!(top > 20 * median.max(1), "top {top}, median {median}");
    // The most popular is the first of the list: the home page.
    assert_eq!(by_asset.get("/").copied(), Some(top));
    // The uncacheable API calls are a share of real traffic (~5 %).
    let api: u64 = by_asset
        .iter()
        .filter(|(p, _)| p.starts_with("/api/"))
        .map(|(_, n)| n)
        .sum();
    assert!((600..1_600).contains(&api), "{api} API calls of 20,000");
    // Zipf exponent 0 is uniform.
    let mut flat = params(21, 2_000, 20_000);
    flat.zipf_s = 0.0;
    let flat = generate(&flat);
    let mut counts: Vec<u64> = hits(&flat).values().copied().collect();
    counts.sort_unstable();
    let (top, median) = (
        counts.last().copied().unwrap_or(0),
        counts[counts.len() / 2],
    );
    assert!(top < 3 * median, "top {top}, median {median}");
}

#[test]
fn large_media_is_asked_for_as_a_player_does_and_the_api_is_part_of_it() {
    let listed: Vec<&str> = assets().iter().map(|a| &*a.path).collect();
    assert!(!listed.contains(&"/sitemap.txt"));
    assert!(listed.iter().any(|p| p.starts_with("/api/")));
    assert!(listed.contains(&BIG_VIDEO));
    let mut flat = params(8, 500, 50_000);
    flat.zipf_s = 0.0;
    let w = generate(&flat);
    let mut video = 0;
    let mut api = 0;
    for r in w.clients.iter().flat_map(|c| &c.requests) {
        let asset = assets()
            .iter()
            .find(|a| a.path == r.path)
            .expect("an asset");
        if asset.bytes > workload::LARGE_MEDIA_BYTES {
            assert_eq!(r.range, Some((0, (1 << 20) - 1)), "{}", r.path);
            video += u32::from(&*r.path == BIG_VIDEO);
        } else {
            assert_eq!(r.range, None, "{}", r.path);
        }
        api += u32::from(r.path.starts_with("/api/"));
    }
    assert!(video > 0 && api > 0, "video {video}, api {api}");
    // Paths are the assets' own, shared, not copies.
    let first = w
        .clients
        .iter()
        .flat_map(|c| &c.requests)
        .next()
        .expect("a request");
    let asset = assets()
        .iter()
        .find(|a| a.path == first.path)
        .expect("an asset");
    assert!(Arc::ptr_eq(&first.path, &asset.path));
}

#[test]
fn sessions_fit_the_window() {
    let p = params(13, 2_000, 20_000);
    let w = generate(&p);
    for c in &w.clients {
        assert!(c.start_ms < p.duration_ms * 3 / 4);
        assert_eq!(c.requests.first().map(|r| r.think_ms), Some(0));
        assert!(
            c.requests
                .iter()
                .all(|r| r.think_ms <= workload::THINK_CAP_MS)
        );
        // Think times fill at most what is left of the window.
        let think: u64 = c.requests.iter().map(|r| r.think_ms).sum();
        assert!(think <= p.duration_ms - c.start_ms, "client {}", c.id);
    }
    // Starts spread over the first three quarters, not bunched.
    let early = w
        .clients
        .iter()
        .filter(|c| c.start_ms < p.duration_ms * 3 / 8)
        .count();
    assert!((800..1_200).contains(&early), "{early}");
    // Sessions last about a quarter of the window.
    let sessions: Vec<u64> = w
        .clients
        .iter()
        .filter(|c| c.requests.len() > 3)
        .map(|c| c.requests.iter().map(|r| r.think_ms).sum())
        .collect();
    let mean = sessions.iter().sum::<u64>() as f64 / sessions.len() as f64;
    let quarter = p.duration_ms as f64 / 4.0;
    assert!(mean > 0.6 * quarter && mean < 1.2 * quarter, "{mean}");
    // Not all think times are zero: clients pause between requests.
    let mean = w
        .clients
        .iter()
        .flat_map(|c| c.requests.iter().skip(1))
        .map(|r| r.think_ms)
        .sum::<u64>()
        / (p.requests - u64::from(p.clients));
    assert!((200..2_000).contains(&mean), "mean think {mean} ms");
}

#[test]
fn bad_parameters_are_refused_with_the_reason() {
    for (p, want) in [
        (params(1, 0, 10), "clients"),
        (params(1, 10, 5), "at least one per client"),
        (params(1, workload::MAX_CLIENTS + 1, 10_000_000), "clients"),
        (params(1, 10, workload::MAX_REQUESTS + 1), "at most"),
        (
            WorkloadParams {
                zipf_s: -1.0,
                ..params(1, 10, 10)
            },
            "zipf-s",
        ),
        (
            WorkloadParams {
                zipf_s: f64::NAN,
                ..params(1, 10, 10)
            },
            "zipf-s",
        ),
        (
            WorkloadParams {
                duration_ms: 0,
                ..params(1, 10, 10)
            },
            "duration",
        ),
    ] {
        let err = workload::generate(&p, assets(), places())
            .err()
            .map(|e| e.to_string());
        assert!(err.as_deref().is_some_and(|e| e.contains(want)), "{err:?}");
    }
    let none = workload::generate(&params(1, 10, 10), &[], places()).err();
    assert!(none.is_some_and(|e| e.to_string().contains("no assets")));
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

#[test]
fn addresses_are_drawn_by_network_size_at_each_networks_own_location() {
    let mut w = Writer::builder("Test-City")
        .ip_version(IpVersion::V6)
        .build();
    let only_country = Value::map([("country", Value::map([("iso_code", Value::from("US"))]))]);
    let unknown = Value::map([("country", Value::map([("iso_code", Value::from("ZZ"))]))]);
    for (net, v) in [
        ("81.2.0.0/24", city("GB", 51.5, -0.1)),
        ("81.2.1.0/24", city("GB", 53.5, -2.2)),
        ("81.3.0.0/20", city("GB", 55.9, -3.2)),
        ("10.0.0.0/8", city("GB", 51.5, -0.1)),
        ("2a00::/16", city("DE", 52.5, 13.4)),
        ("8.8.8.0/24", only_country),
        ("9.9.9.0/24", unknown),
    ] {
        w.insert_value(net.parse::<ipnet::IpNet>().expect("cidr"), v)
            .expect("insert");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("city.mmdb");
    std::fs::write(&path, w.to_bytes().expect("bytes")).expect("write");

    let places = Places::open(&[&path]).expect("open");
    let d = places.describe();
    assert!(
        d.contains("1 private or reserved left out") && d.contains("1 without a location"),
        "{d}"
    );
    assert_eq!(places.countries().collect::<Vec<_>>(), ["DE", "GB", "US"]);
    let w = workload::generate(&params(4, 4_000, 4_000), assets(), &places).expect("generated");
    let lookup = MaxMindFiles::open(&[&path]).expect("open");
    let mut at: HashMap<(String, u64), u32> = HashMap::new();
    for c in &w.clients {
        let g = lookup.lookup(c.ip).expect("located");
        assert_eq!(
            (g.latitude, g.longitude),
            (c.latitude, c.longitude),
            "{}",
            c.ip
        );
        assert!(!is_special(c.ip), "{}", c.ip);
        // Germany has only IPv6 space here: its clients get IPv6 addresses.
        assert_eq!(c.ip.is_ipv6(), c.country == "DE", "{}", c.ip);
        *at.entry((c.country.clone(), c.latitude.to_bits()))
            .or_default() += 1;
    }
    let n = |cc: &str, lat: f64| {
        at.get(&(cc.to_owned(), lat.to_bits()))
            .copied()
            .unwrap_or(0)
    };
    // Great Britain: a /20 at Edinburgh holds 16 times the addresses of
    // each /24 (London, Manchester), so gets about 16 times the clients.
    let (london, manchester, edinburgh) = (n("GB", 51.5), n("GB", 53.5), n("GB", 55.9));
    assert!(london > 5 && manchester > 5, "{london} {manchester}");
    assert!(
        edinburgh > 8 * (london + manchester) / 2,
        "{edinburgh} vs {london}, {manchester}"
    );
    assert!(
        edinburgh < 32 * (london + manchester) / 2,
        "{edinburgh} vs {london}, {manchester}"
    );
    // A country-only record: the country's centre, as the director uses.
    assert!(w.clients.iter().any(|c| c.country == "US"));
}

#[test]
fn the_shipped_database_is_read_into_places() {
    let d = places().describe();
    assert!(
        d.contains("dbip-regions.mmdb.zst") && d.contains("countries"),
        "{d}"
    );
    let countries: Vec<&str> = places().countries().collect();
    assert!(countries.len() > 200, "{}", countries.len());
    // Every country but Antarctica has a region, so none is left unweighted.
    let without: Vec<&str> = countries
        .iter()
        .copied()
        .filter(|c| weights::region_of(c).is_none())
        .collect();
    assert_eq!(without, ["AQ"]);
    // Every country of the table is in it.
    for (cc, _) in weights::WEIGHTS {
        assert!(countries.contains(cc), "{cc}");
    }
    let missing = Places::open(&[db().with_file_name("nowhere.mmdb")])
        .err()
        .map(|e| e.to_string());
    assert!(missing.is_some_and(|e| e.contains("nowhere.mmdb")));
}

/// Not a speed check (no timing asserts): prints what reading the
/// database and generating the workload take, for the note. Run
/// it in release: `cargo test --release -p meridian-simulate --test
/// workload how_long -- --nocapture`.
#[test]
fn how_long_opening_and_generating_take() {
    let t = Instant::now();
    let p = Places::open(&[db()]).expect("open");
    let opened = t.elapsed();
    let assets = assets();
    let t = Instant::now();
    let w = workload::generate(&params(1, 2_000, 20_000), assets, &p).expect("generated");
    let generated = t.elapsed();
    eprintln!(
        "open {opened:?} ({}); generate 2000 clients x {} requests {generated:?}",
        p.describe(),
        w.requests()
    );
}

/// The runner reads the database once per process: asked again for the
/// same unchanged files it gets the same places, and a changed file is
/// read again.
#[test]
fn open_shared_reads_unchanged_files_once_and_changed_files_again() {
    let write = |path: &std::path::Path, nets: &[(&str, Value)]| {
        let mut w = Writer::builder("Test-City")
            .ip_version(IpVersion::V6)
            .build();
        for (net, v) in nets {
            w.insert_value(net.parse::<ipnet::IpNet>().expect("cidr"), v.clone())
                .expect("insert");
        }
        std::fs::write(path, w.to_bytes().expect("bytes")).expect("write");
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("city.mmdb");
    write(&path, &[("81.2.0.0/24", city("GB", 51.5, -0.1))]);
    let first = Places::open_shared(&[&path]).expect("open");
    let again = Places::open_shared(&[&path]).expect("open");
    assert!(Arc::ptr_eq(&first, &again));
    assert_eq!(first.countries().collect::<Vec<_>>(), ["GB"]);

    write(
        &path,
        &[
            ("81.2.0.0/24", city("GB", 51.5, -0.1)),
            ("2a00::/16", city("DE", 52.5, 13.4)),
        ],
    );
    let changed = Places::open_shared(&[&path]).expect("open");
    assert_eq!(changed.countries().collect::<Vec<_>>(), ["DE", "GB"]);
    let missing = Places::open_shared(&[dir.path().join("nowhere.mmdb")]);
    assert!(missing.is_err());
}
