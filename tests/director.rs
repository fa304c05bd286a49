//! End-to-end tests of the geo director: real listeners on 127.0.0.1 port 0,
//! fake edges answering `/healthz`, databases built with mmdb-writer in a
//! temp folder, and the shipped database. Only loopback traffic; every wait
//! is a bounded retry loop.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use meridian_common::Shutdown;
use meridian_geo_director::{Config, Error};
use mmdb_writer::{IpVersion, Value, Writer};
use serde_json::Value as Json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use support::{client, eventually};

const LONDON: &str = "81.2.69.142";
const NEW_YORK: &str = "8.8.8.8";
const SYDNEY_V6: &str = "2406:da00::1";
/// Bounds every wait for the director to notice a change.
const WAIT: Duration = Duration::from_secs(5);

enum Schema {
    City,
    Country,
    Flat,
}

/// A tiny database: (CIDR, latitude, longitude, country) in the given layout.
fn write_db(path: &Path, schema: Schema, rows: &[(&str, f64, f64, &str)]) {
    let mut w = Writer::builder("Test-DB").ip_version(IpVersion::V6).build();
    for (net, lat, lon, cc) in rows {
        let value = match schema {
            Schema::City => Value::map([
                ("country", Value::map([("iso_code", Value::from(*cc))])),
                (
                    "location",
                    Value::map([
                        ("latitude", Value::Double(*lat)),
                        ("longitude", Value::Double(*lon)),
                    ]),
                ),
            ]),
            // Country databases may only know the registered country.
            Schema::Country => Value::map([(
                "registered_country",
                Value::map([("iso_code", Value::from(*cc))]),
            )]),
            Schema::Flat => Value::map([
                ("country_code", Value::from(*cc)),
                ("latitude", Value::Float(*lat as f32)),
                ("longitude", Value::Float(*lon as f32)),
            ]),
        };
        w.insert_value(net.parse::<ipnet::IpNet>().expect("cidr"), value)
            .expect("insert");
    }
    std::fs::write(path, w.to_bytes().expect("serialize")).expect("write db");
}

/// Dublin, Ashburn, Singapore.
fn edges(admins: [String; 3]) -> String {
    let spots = [
        ("eu-west", 53.35, -6.26),
        ("us-east", 38.95, -77.45),
        ("ap-southeast", 1.35, 103.82),
    ];
    let mut s = String::new();
    for (i, ((name, lat, lon), admin)) in spots.iter().zip(admins).enumerate() {
        s.push_str(&format!(
            "[[edge]]\nname = \"{name}\"\nregion = \"{name}\"\nurl = \"http://127.0.0.1:{}\"\n\
             admin = \"{admin}\"\nlatitude = {lat}\nlongitude = {lon}\n\n",
            8101 + i
        ));
    }
    s
}

fn unpolled_edges() -> String {
    edges([
        "http://127.0.0.1:9".into(),
        "http://127.0.0.1:9".into(),
        "http://127.0.0.1:9".into(),
    ])
}

fn shipped_db() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(meridian_geo_director::DEFAULT_GEOIP)
}

struct Running {
    addr: SocketAddr,
    admin: SocketAddr,
    shutdown: Shutdown,
    task: JoinHandle<Result<(), Error>>,
}

impl Running {
    async fn start(text: &str, db: &Path, trusted: bool) -> Running {
        let mut config = Config::parse("test.toml", text).expect("config");
        config.geoip = vec![db.to_path_buf()];
        if trusted {
            config.trusted_proxies = vec!["127.0.0.0/8".parse().expect("cidr")];
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
        let (addr, admin_addr) = (
            listener.local_addr().expect("addr"),
            admin.local_addr().expect("addr"),
        );
        let shutdown = Shutdown::new();
        let task = tokio::spawn(meridian_geo_director::run(
            listener,
            Some(admin),
            config,
            shutdown.clone(),
        ));
        Running {
            addr,
            admin: admin_addr,
            shutdown,
            task,
        }
    }

    /// Where a client reporting `xff` is redirected to (None: not a 302).
    async fn redirect(&self, xff: &str, path: &str) -> Option<String> {
        let r = client()
            .get(format!("http://{}{path}", self.addr))
            .header("x-forwarded-for", xff)
            .send()
            .await
            .ok()?;
        if r.status() != 302 {
            return None;
        }
        assert_eq!(
            r.headers()
                .get("cache-control")
                .and_then(|v| v.to_str().ok()),
            Some("no-store")
        );
        r.headers()
            .get("location")?
            .to_str()
            .ok()
            .map(str::to_string)
    }

    async fn explain(&self, ip: &str) -> Json {
        let r = client()
            .get(format!("http://{}/v1/route?ip={ip}", self.addr))
            .send()
            .await
            .expect("route");
        r.json().await.expect("json")
    }

    async fn chosen(&self, ip: &str) -> Option<String> {
        self.explain(ip).await["chosen"]
            .as_str()
            .map(str::to_string)
    }

    async fn stop(self) {
        self.shutdown.trigger();
        let done = tokio::time::timeout(Duration::from_secs(5), self.task).await;
        assert!(
            matches!(done, Ok(Ok(Ok(())))),
            "director did not stop cleanly"
        );
    }
}

#[tokio::test]
async fn shipped_database_routes_known_addresses_and_explains() {
    let text = format!("{}[director]\nhealth-checks = \"off\"\n", unpolled_edges());
    let d = Running::start(&text, &shipped_db(), true).await;
    assert_eq!(
        d.redirect(LONDON, "/img/logo.png?v=1").await.as_deref(),
        Some("http://127.0.0.1:8101/img/logo.png?v=1")
    );
    assert_eq!(
        d.redirect(NEW_YORK, "/").await.as_deref(),
        Some("http://127.0.0.1:8102/")
    );
    assert_eq!(
        d.chosen("1.1.1.1").await.as_deref(),
        Some("ap-southeast"),
        "AU"
    );
    assert_eq!(
        d.chosen("2a00:1450:4001::1").await.as_deref(),
        Some("eu-west"),
        "IPv6, DE"
    );
    let why = d.explain(LONDON).await;
    assert_eq!(why["location"]["source"], "database");
    assert_eq!(why["location"]["country"], "GB");
    assert_eq!(why["candidates"].as_array().map(Vec::len), Some(3));
    assert_eq!(why["candidates"][0]["name"], "eu-west");
    assert!(
        why["candidates"][0]["distance_km"]
            .as_f64()
            .is_some_and(|k| k < 1000.0),
        "{why}"
    );
    assert_eq!(why["reason"], "nearest healthy edge");
    d.stop().await;
}

/// Where DB-IP City Lite (the June 2026 release the shipped file is built
/// from) puts these addresses, and the edge nearest to that place among
/// edges on both US coasts and both Australian coasts. A database that
/// knows only countries sends all of the US to one coast and all of
/// Australia to one city.
const CITY_ADDRESSES: [(&str, &str, &str); 11] = [
    ("169.64.0.1", "New York", "new-york"),
    ("143.49.1.1", "San Francisco", "san-francisco"),
    ("151.220.1.1", "Los Angeles", "san-francisco"),
    ("4.172.1.1", "Toronto", "new-york"),
    ("137.82.1.1", "Vancouver", "san-francisco"),
    ("3.26.1.1", "Sydney", "sydney"),
    ("146.195.1.1", "Perth", "perth"),
    ("2601:18a::1", "Newark, New Jersey", "new-york"),
    ("2601:640::1", "Sunnyvale, California", "san-francisco"),
    ("2601:1c0::1", "Seattle", "san-francisco"),
    ("2001:8000::1", "Sydney", "sydney"),
];

#[tokio::test]
async fn the_shipped_database_tells_coasts_and_cities_apart() {
    let spots = [
        ("new-york", 40.71, -74.01),
        ("san-francisco", 37.77, -122.42),
        ("sydney", -33.87, 151.21),
        ("perth", -31.95, 115.86),
    ];
    let mut text = String::new();
    for (i, (name, lat, lon)) in spots.iter().enumerate() {
        text.push_str(&format!(
            "[[edge]]\nname = \"{name}\"\nregion = \"{name}\"\nurl = \"http://127.0.0.1:{}\"\n\
             admin = \"http://127.0.0.1:9\"\nlatitude = {lat}\nlongitude = {lon}\n\n",
            8101 + i
        ));
    }
    text.push_str("[director]\nhealth-checks = \"off\"\n");
    let d = Running::start(&text, &shipped_db(), true).await;
    for (ip, city, edge) in CITY_ADDRESSES {
        assert_eq!(d.chosen(ip).await.as_deref(), Some(edge), "{ip} ({city})");
    }
    let why = d.explain("146.195.1.1").await;
    assert_eq!(why["location"]["country"], "AU");
    assert_eq!(why["location"]["precision"], "coordinates");
    d.stop().await;
}

#[tokio::test]
async fn every_database_layout_locates_ipv4_and_ipv6() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rows = [
        ("81.2.69.0/24", 51.5, -0.13, "GB"),
        ("8.8.8.0/24", 40.7, -74.0, "US"),
        ("2406:da00::/32", -33.87, 151.2, "AU"),
    ];
    let text = format!("{}[director]\nhealth-checks = \"off\"\n", unpolled_edges());
    for (name, schema) in [
        ("city", Schema::City),
        ("country", Schema::Country),
        ("flat", Schema::Flat),
    ] {
        let path = dir.path().join(format!("{name}.mmdb"));
        write_db(&path, schema, &rows);
        let d = Running::start(&text, &path, true).await;
        assert_eq!(d.chosen(LONDON).await.as_deref(), Some("eu-west"), "{name}");
        assert_eq!(
            d.chosen(NEW_YORK).await.as_deref(),
            Some("us-east"),
            "{name}"
        );
        assert_eq!(
            d.chosen(SYDNEY_V6).await.as_deref(),
            Some("ap-southeast"),
            "{name} IPv6"
        );
        let want = if name == "country" {
            "country-centre"
        } else {
            "coordinates"
        };
        assert_eq!(
            d.explain(LONDON).await["location"]["precision"],
            want,
            "{name}"
        );
        d.stop().await;
    }
}

#[tokio::test]
async fn a_coverage_zone_beats_the_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("city.mmdb");
    write_db(&db, Schema::City, &[("81.2.69.0/24", 51.5, -0.13, "GB")]);
    let text = format!(
        "{}[director]\nhealth-checks = \"off\"\n\n[[coverage-zone]]\nname = \"misplaced\"\n\
         networks = [\"81.2.69.128/25\"]\nedge = \"ap-southeast\"\n",
        unpolled_edges()
    );
    let d = Running::start(&text, &db, true).await;
    assert_eq!(
        d.redirect(LONDON, "/a").await.as_deref(),
        Some("http://127.0.0.1:8103/a")
    );
    assert_eq!(
        d.chosen("81.2.69.1").await.as_deref(),
        Some("eu-west"),
        "outside the zone"
    );
    let why = d.explain(LONDON).await;
    assert_eq!(why["location"]["source"], "coverage-zone");
    assert!(
        why["location"]["detail"]
            .as_str()
            .is_some_and(|s| s.contains("misplaced")),
        "{why}"
    );
    d.stop().await;
}

#[tokio::test]
async fn untrusted_forwarded_headers_are_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("city.mmdb");
    write_db(&db, Schema::City, &[("8.8.8.0/24", 40.7, -74.0, "US")]);
    let text = format!(
        "{}[director]\nhealth-checks = \"off\"\ndefault-region = \"ap-southeast\"\n",
        unpolled_edges()
    );
    // Not trusted: the loopback peer itself is the client, and it is private.
    let d = Running::start(&text, &db, false).await;
    assert_eq!(
        d.redirect(NEW_YORK, "/x").await.as_deref(),
        Some("http://127.0.0.1:8103/x")
    );
    let r = client()
        .get(format!("http://{}/v1/route", d.addr))
        .header("x-forwarded-for", NEW_YORK)
        .send()
        .await
        .expect("route");
    let why: Json = r.json().await.expect("json");
    assert_eq!(why["address"], "127.0.0.1");
    assert_eq!(why["address_source"], "peer");
    assert_eq!(why["location"]["source"], "default");
    d.stop().await;
    // Trusted: the header counts.
    let d = Running::start(&text, &db, true).await;
    assert_eq!(
        d.redirect(NEW_YORK, "/x").await.as_deref(),
        Some("http://127.0.0.1:8102/x")
    );
    d.stop().await;
}

/// What `/v1/route` says about a request carrying these headers.
async fn route_with(d: &Running, headers: &[(&str, &str)]) -> Json {
    let mut req = client().get(format!("http://{}/v1/route", d.addr));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("route").json().await.expect("json")
}

/// The proxy chain a client builds to pick its own address: 32 forged
/// entries in front of what the trusted proxy (here the test, on loopback)
/// appends, the address it really saw.
#[tokio::test]
async fn a_client_prefilling_32_forwarded_for_entries_cannot_choose_its_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("city.mmdb");
    write_db(
        &db,
        Schema::City,
        &[
            ("81.2.69.0/24", 51.5, -0.13, "GB"),
            ("8.8.8.0/24", 40.7, -74.0, "US"),
        ],
    );
    let text = format!("{}[director]\nhealth-checks = \"off\"\n", unpolled_edges());
    let d = Running::start(&text, &db, true).await;
    let forged = vec![NEW_YORK; 32].join(", ");
    // One header line, the proxy appending to the client's value (nginx's
    // `$proxy_add_x_forwarded_for`), then a second trusted hop.
    let joined = format!("{forged}, {LONDON}, 127.0.0.2");
    assert_eq!(
        d.redirect(&joined, "/a").await.as_deref(),
        Some("http://127.0.0.1:8101/a"),
        "London client sent to its own edge"
    );
    let why = route_with(&d, &[("x-forwarded-for", &joined)]).await;
    assert_eq!(why["address"], LONDON, "{why}");
    assert_eq!(why["address_source"], "x-forwarded-for");
    // The proxy adds its own header line after the client's.
    let why = route_with(
        &d,
        &[("x-forwarded-for", &forged), ("x-forwarded-for", LONDON)],
    )
    .await;
    assert_eq!(why["address"], LONDON, "{why}");
    // Many more forged entries than the walk reads change nothing either.
    let flood = format!("{}, {LONDON}", vec![NEW_YORK; 2000].join(","));
    let why = route_with(&d, &[("x-forwarded-for", &flood)]).await;
    assert_eq!(why["address"], LONDON, "{why}");
    // Proxies here write X-Forwarded-For and pass a client's Forwarded through.
    let why = route_with(
        &d,
        &[
            ("forwarded", &format!("for={NEW_YORK}")),
            ("x-forwarded-for", LONDON),
        ],
    )
    .await;
    assert_eq!(why["address"], LONDON, "{why}");
    d.stop().await;

    // The same attack on `Forwarded`, where that is the header proxies write.
    let text = format!("{text}forwarded-header = \"forwarded\"\n");
    let d = Running::start(&text, &db, true).await;
    let forged = vec![format!("for={NEW_YORK}"); 40].join(", ");
    let chain = format!("{forged}, for=\"{LONDON}:4711\";proto=https, for=127.0.0.2");
    let why = route_with(&d, &[("forwarded", &chain), ("x-forwarded-for", NEW_YORK)]).await;
    assert_eq!(why["address"], LONDON, "{why}");
    assert_eq!(why["address_source"], "forwarded");
    assert_eq!(why["chosen"], "eu-west");
    d.stop().await;
}

/// A fake edge: answers `/healthz` until stopped.
struct FakeEdge {
    addr: SocketAddr,
    shutdown: Shutdown,
    task: JoinHandle<()>,
}

impl FakeEdge {
    async fn start(addr: &str) -> FakeEdge {
        let listener = TcpListener::bind(addr).await.expect("bind edge");
        let addr = listener.local_addr().expect("addr");
        let shutdown = Shutdown::new();
        let app = axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok" }));
        let stop = shutdown.wait();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await;
        });
        FakeEdge {
            addr,
            shutdown,
            task,
        }
    }

    async fn stop(self) -> SocketAddr {
        self.shutdown.trigger();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
        self.addr
    }
}

#[tokio::test]
async fn a_stopped_edge_is_skipped_and_comes_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("city.mmdb");
    write_db(&db, Schema::City, &[("81.2.69.0/24", 51.5, -0.13, "GB")]);
    let fakes = [
        FakeEdge::start("127.0.0.1:0").await,
        FakeEdge::start("127.0.0.1:0").await,
        FakeEdge::start("127.0.0.1:0").await,
    ];
    let admins = fakes.each_ref().map(|f| format!("http://{}", f.addr));
    let text = format!(
        "{}[director]\nhealth-interval = \"100ms\"\nhealth-timeout = \"100ms\"\n\
         health-fall = 1\nhealth-rise = 1\n",
        edges(admins)
    );
    let d = Running::start(&text, &db, true).await;
    let [eu, us, ap] = fakes;
    assert_eq!(d.chosen(LONDON).await.as_deref(), Some("eu-west"));
    let eu_addr = eu.stop().await;
    eventually("eu-west marked down", WAIT, || async {
        d.chosen(LONDON).await.as_deref() == Some("us-east")
    })
    .await;
    let why = d.explain(LONDON).await;
    let eu_row = why["candidates"]
        .as_array()
        .and_then(|c| c.iter().find(|e| e["name"] == "eu-west"))
        .cloned();
    assert_eq!(
        eu_row.map(|e| e["healthy"].clone()),
        Some(Json::Bool(false))
    );
    assert_eq!(why["reason"], "nearest healthy edge; nearer eu-west down");
    let eu = FakeEdge::start(&eu_addr.to_string()).await;
    eventually("eu-west back up", WAIT, || async {
        d.chosen(LONDON).await.as_deref() == Some("eu-west")
    })
    .await;
    // Everything down and no fallback order: 503.
    for f in [eu, us, ap] {
        f.stop().await;
    }
    eventually("all down gives 503", WAIT, || async {
        let r = client().get(format!("http://{}/x", d.addr)).send().await;
        r.is_ok_and(|r| r.status() == 503)
    })
    .await;
    d.stop().await;
}

#[tokio::test]
async fn a_replaced_database_is_used_after_reload_without_dropping_requests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("geo.mmdb");
    write_db(&db, Schema::City, &[("81.2.69.0/24", 51.5, -0.13, "GB")]);
    let text = format!("{}[director]\nhealth-checks = \"off\"\n", unpolled_edges());
    let d = Running::start(&text, &db, true).await;
    assert_eq!(d.chosen(LONDON).await.as_deref(), Some("eu-west"));

    // Replace the file the way a deploy does: write aside, rename over.
    let next = dir.path().join("geo.mmdb.new");
    write_db(&next, Schema::Flat, &[("81.2.69.0/24", 1.29, 103.85, "SG")]);
    std::fs::rename(&next, &db).expect("rename");
    assert_eq!(
        d.chosen(LONDON).await.as_deref(),
        Some("eu-west"),
        "not before reload"
    );

    // Keep traffic flowing while reloading: every request must get a 302.
    let addr = d.addr;
    let traffic = tokio::spawn(async move {
        let c = client();
        let mut ok = 0;
        for _ in 0..200 {
            let r = c
                .get(format!("http://{addr}/p"))
                .header("x-forwarded-for", LONDON)
                .send()
                .await;
            ok += usize::from(r.is_ok_and(|r| r.status() == 302));
        }
        ok
    });
    let r = client()
        .post(format!("http://{}/reload", d.admin))
        .send()
        .await
        .expect("reload");
    assert_eq!(r.status(), 200);
    assert_eq!(
        traffic.await.expect("traffic"),
        200,
        "a request failed during reload"
    );
    assert_eq!(d.chosen(LONDON).await.as_deref(), Some("ap-southeast"));

    // DNS rebinding: a page on evil.example resolved to loopback cannot
    // drive the admin listener.
    let r = client()
        .post(format!("http://{}/reload", d.admin))
        .header("host", "evil.example")
        .send()
        .await
        .expect("reload");
    assert_eq!(r.status(), 421);

    // A broken replacement is refused and the working database stays.
    std::fs::write(&db, b"not a database").expect("write");
    let r = client()
        .post(format!("http://{}/reload", d.admin))
        .send()
        .await
        .expect("reload");
    assert_eq!(r.status(), 500);
    assert!(
        r.text()
            .await
            .unwrap_or_default()
            .contains("not a valid MaxMind DB")
    );
    assert_eq!(d.chosen(LONDON).await.as_deref(), Some("ap-southeast"));
    d.stop().await;
}

#[tokio::test]
async fn a_broken_database_file_is_a_clear_startup_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let garbage = dir.path().join("garbage.mmdb");
    std::fs::write(&garbage, b"\x00\x01 definitely not MaxMind").expect("write");
    let asn = dir.path().join("asn.mmdb");
    let mut w = Writer::new("Test-ASN");
    let value = Value::map([("autonomous_system_number", Value::from(64_512_u32))]);
    w.insert_value("8.8.8.0/24".parse::<ipnet::IpNet>().expect("cidr"), value)
        .expect("insert");
    std::fs::write(&asn, w.to_bytes().expect("bytes")).expect("write");
    let cases = [
        (garbage, "not a valid MaxMind DB"),
        (asn, "no location fields"),
        (dir.path().join("missing.mmdb"), "cannot read"),
    ];
    for (path, want) in cases {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let mut config = Config::parse("test.toml", &unpolled_edges()).expect("config");
        config.geoip = vec![path.clone()];
        let err = meridian_geo_director::run(listener, None, config, Shutdown::new())
            .await
            .expect_err("must not start");
        let msg = err.to_string();
        assert!(
            msg.contains(want) && msg.contains(&*path.to_string_lossy()),
            "{msg}"
        );
    }
}

#[test]
fn cli_check_config_accepts_the_example_and_rejects_a_bad_database() {
    let bin = env!("CARGO_BIN_EXE_meridian");
    let root = env!("CARGO_MANIFEST_DIR");
    let ok = std::process::Command::new(bin)
        .args([
            "director",
            "--check-config",
            "--config",
            "config/cluster.toml",
        ])
        .current_dir(root)
        .output()
        .expect("run meridian");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // No --geoip and no director.geoip: the shipped, compressed database.
    let said = String::from_utf8_lossy(&ok.stdout);
    assert!(
        said.contains("dbip-regions.mmdb.zst") && said.contains("Meridian-DBIP-Regions-City"),
        "{said}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.mmdb");
    std::fs::write(&bad, b"nope").expect("write");
    let out = std::process::Command::new(bin)
        .args([
            "director",
            "--check-config",
            "--config",
            "config/cluster.toml",
            "--geoip",
        ])
        .arg(&bad)
        .current_dir(root)
        .output()
        .expect("run meridian");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("bad.mmdb") && stderr.contains("not a valid MaxMind DB"),
        "{stderr}"
    );
}
