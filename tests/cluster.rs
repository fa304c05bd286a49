//! `meridian cluster up` end to end, in-process: the shipped
//! `config/cluster.toml` on loopback ports from the OS (the origin with the
//! sample site, two shields, six edges in five regions, the director and
//! the purge log), driven as a user would: through the director's
//! redirects, the edges' fronts, the purge log and the control API.
//! Every wait is a bounded poll.

#[path = "../crates/cluster/tests/browser/mod.rs"]
mod browser;
#[path = "support/eventually.rs"]
mod eventually;

use std::path::Path;
use std::time::{Duration, Instant};

use meridian_cluster::config::ClusterConfig;
use meridian_cluster::control::{Action, Fault, NodeKind};
use meridian_cluster::run::Cluster;

use eventually::eventually;

/// London in the shipped database (GB): its nearest edge is eu-west.
const LONDON: &str = "81.2.69.142";
const SITE: &str = "site.meridian.test";

struct Running {
    cluster: Cluster,
    http: reqwest::Client,
    _state: tempfile::TempDir,
}

fn config() -> ClusterConfig {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/cluster.toml");
    ClusterConfig::load(&path)
        .expect("config/cluster.toml")
        .with_ephemeral_ports()
}

async fn start() -> Running {
    start_with(|_| {}).await
}

async fn start_with(tune: impl FnOnce(&mut ClusterConfig)) -> Running {
    let state = tempfile::tempdir().expect("tempdir");
    let mut c = config();
    tune(&mut c);
    c.state_dir = state.path().to_path_buf();
    // The test plays the clients' resolver: it tells the director who the
    // client is, as a trusted proxy on loopback would.
    c.director.trusted_proxies = vec!["127.0.0.0/8".parse().expect("cidr")];
    let cluster = Cluster::start(c).await.expect("the cluster starts");
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    let r = Running {
        cluster,
        http,
        _state: state,
    };
    r.wait_until_routed().await;
    r
}

impl Running {
    fn url_of(&self, node: &str) -> String {
        self.cluster.node(node).expect(node).url.clone()
    }

    /// The edge the director picks for `ip`.
    async fn route(&self, ip: &str) -> Option<String> {
        let url = format!("http://{}/v1/route?ip={ip}", self.cluster.director());
        let v: serde_json::Value = self.http.get(url).send().await.ok()?.json().await.ok()?;
        v["chosen"].as_str().map(str::to_owned)
    }

    /// The director's first health round has seen the edges.
    async fn wait_until_routed(&self) {
        eventually(
            "the director sends London to eu-west",
            Duration::from_secs(10),
            || async { self.route(LONDON).await.as_deref() == Some("eu-west") },
        )
        .await;
    }

    /// GET `path` through `base`; (status, Cache-Status, body length).
    async fn get(&self, base: &str, path: &str) -> (u16, String, usize) {
        let r = self
            .http
            .get(format!("{base}{path}"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {base}{path}: {e}"));
        let status = r.status().as_u16();
        let cs = r
            .headers()
            .get("cache-status")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = r.bytes().await.expect("body");
        (status, cs, body.len())
    }

    /// A cluster purge through the log; its report, every node applied.
    async fn purge(&self, body: serde_json::Value) -> serde_json::Value {
        let report: serde_json::Value = self
            .http
            .post(format!("http://{}/v1/purge", self.cluster.director_admin()))
            .bearer_auth(self.cluster.token())
            .json(&body)
            .send()
            .await
            .expect("purge")
            .json()
            .await
            .expect("report");
        let nodes = report["nodes"].as_array().expect("nodes");
        for n in nodes {
            assert_eq!(n["result"], "applied", "{report}");
        }
        report
    }

    fn origin_requests(&self) -> u64 {
        self.cluster.origin_counters().requests
    }
}

/// The Cache-Status member a node wrote (`name; ...`).
fn member<'a>(cs: &'a str, node_prefix: &str) -> &'a str {
    cs.split(',')
        .map(str::trim)
        .find(|m| m.starts_with(node_prefix))
        .unwrap_or_else(|| panic!("no `{node_prefix}` in Cache-Status `{cs}`"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn europe_goes_to_the_european_edge_and_edges_share_the_shields() {
    let r = start().await;
    let director = format!("http://{}", r.cluster.director());
    let eu = r.url_of("eu-west");

    // The director sends a London client to eu-west.
    let redirect = r
        .http
        .get(format!("{director}/index.html"))
        .header("x-forwarded-for", LONDON)
        .send()
        .await
        .expect("director");
    assert_eq!(redirect.status(), 302);
    let location = redirect.headers()["location"].to_str().expect("location");
    assert_eq!(location, format!("{eu}/index.html"));

    // A miss there (at the edge and at its shield), then a hit.
    let before = r.origin_requests();
    let (status, cs, len) = r.get(&eu, "/index.html").await;
    assert_eq!(status, 200, "{cs}");
    assert!(len > 0);
    assert!(member(&cs, "eu-west").contains("fwd=miss"), "{cs}");
    assert!(member(&cs, "shield-").contains("fwd=miss"), "{cs}");
    assert_eq!(r.origin_requests() - before, 1, "one origin fetch");
    let (_, cs, _) = r.get(&eu, "/index.html").await;
    assert!(member(&cs, "eu-west").contains("hit"), "{cs}");

    // The same URL through another region's edge: a miss at that edge, a
    // hit at the shield (the edges agree on which shield owns the URL).
    let us = r.url_of("us-east-1");
    let (status, cs, _) = r.get(&us, "/index.html").await;
    assert_eq!(status, 200);
    assert!(member(&cs, "us-east-").contains("fwd=miss"), "{cs}");
    assert!(member(&cs, "shield-").contains("hit"), "{cs}");
    assert_eq!(
        r.origin_requests() - before,
        1,
        "still one origin fetch in all"
    );
    r.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distance_costs_what_it_would_on_a_miss_and_not_on_a_hit() {
    let r = start().await;
    let c = r.cluster.config();
    let ap = c
        .edges
        .iter()
        .find(|e| e.place.name == "ap-southeast")
        .expect("ap-southeast");
    // The cheapest miss from Singapore: over its nearer shield to the origin.
    let floor = ap
        .shields
        .iter()
        .map(|&j| {
            c.rtt(&ap.place, &c.shields[j].place) + c.rtt(&c.shields[j].place, &c.origin.place)
        })
        .min()
        .expect("a shield");
    let base = r.url_of("ap-southeast");
    let t = Instant::now();
    let (status, cs, _) = r.get(&base, "/static/css/site.css").await;
    let miss = t.elapsed();
    assert_eq!(status, 200, "{cs}");
    assert!(cs.contains("fwd=miss"), "{cs}");
    assert!(
        miss >= floor,
        "a miss took {miss:?}, less than the links' {floor:?}"
    );
    let t = Instant::now();
    let (_, cs, _) = r.get(&base, "/static/css/site.css").await;
    let hit = t.elapsed();
    assert!(member(&cs, "ap-southeast").contains("hit"), "{cs}");
    assert!(
        hit < floor,
        "a hit took {hit:?}: it must not cross the links ({floor:?})"
    );
    r.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_edge_loses_its_clients_to_the_next_nearest_and_gets_them_back() {
    let r = start().await;
    let interval = r.cluster.config().director.health.interval;
    let eu = r.url_of("eu-west");
    assert_eq!(r.get(&eu, "/index.html").await.0, 200);

    let t = Instant::now();
    assert_eq!(
        r.cluster.act("eu-west", Action::Stop).await,
        Ok(Fault::Stopped)
    );
    // Its front no longer answers.
    assert!(r.http.get(format!("{eu}/index.html")).send().await.is_err());
    eventually(
        "London moves off eu-west",
        Duration::from_secs(10),
        || async { r.route(LONDON).await.is_some_and(|e| e != "eu-west") },
    )
    .await;
    let moved = t.elapsed();
    let next = r.route(LONDON).await.unwrap_or_default();
    assert!(
        next.starts_with("us-east-"),
        "London's next nearest is us-east, got {next}"
    );
    eprintln!("London moved to {next} after {moved:?} (health interval {interval:?})");
    assert!(
        moved <= 2 * interval + Duration::from_millis(500),
        "took {moved:?}, more than two health intervals of {interval:?}"
    );

    // Started again: clients come back, its cache starts empty.
    assert_eq!(
        r.cluster.act("eu-west", Action::Start).await,
        Ok(Fault::None)
    );
    r.wait_until_routed().await;
    let (status, cs, _) = r.get(&eu, "/index.html").await;
    assert_eq!(status, 200);
    assert!(member(&cs, "eu-west").contains("fwd=miss"), "{cs}");
    r.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_with_two_edges_survives_one_of_them() {
    let r = start().await;
    let front = r.url_of("us-east-1");
    assert_eq!(front, r.url_of("us-east-2"), "one address for the region");
    // A region's balancer spreads connections: one per request here.
    let fresh = Running {
        http: reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client"),
        ..r
    };
    let r = fresh;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let (_, cs, _) = r.get(&front, "/index.html").await;
        let m = member(&cs, "us-east-");
        seen.insert(m.split(';').next().unwrap_or_default().to_owned());
    }
    assert_eq!(
        seen.len(),
        2,
        "the region's balancer uses both edges: {seen:?}"
    );
    r.cluster
        .act("us-east-1", Action::Stop)
        .await
        .expect("stop");
    for _ in 0..4 {
        let (status, cs, _) = r.get(&front, "/index.html").await;
        assert_eq!(status, 200);
        assert!(member(&cs, "us-east-").starts_with("us-east-2"), "{cs}");
    }
    r.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_purge_reaches_every_node() {
    let r = start().await;
    let edges: Vec<String> = r
        .cluster
        .nodes()
        .iter()
        .filter(|n| n.kind == NodeKind::Edge)
        .map(|n| n.url.clone())
        .collect();
    for e in &edges {
        assert_eq!(r.get(e, "/index.html").await.0, 200);
    }
    let report = r
        .purge(serde_json::json!({ "urls": [format!("http://{SITE}/index.html")] }))
        .await;
    let nodes = report["nodes"].as_array().expect("nodes");
    let names: Vec<&str> = nodes.iter().filter_map(|n| n["node"].as_str()).collect();
    let expected = r
        .cluster
        .nodes()
        .iter()
        .filter(|n| matches!(n.kind, NodeKind::Edge | NodeKind::Shield))
        .count();
    assert_eq!(names.len(), expected, "{report}");
    // Gone everywhere: a miss at the edge and at the shield.
    let (_, cs, _) = r.get(&edges[0], "/index.html").await;
    assert!(member(&cs, "shield-").contains("fwd=miss"), "{cs}");
    r.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_origin_failing_is_covered_by_stale_if_error_and_a_shield_down_by_the_other() {
    let r = start().await;
    let eu = r.url_of("eu-west");
    assert_eq!(r.get(&eu, "/live/scores.json").await.0, 200);
    // The origin fails: fresh entries are still hits, and a soft-purged one
    // (stale now; the live section has stale-if-error but no
    // stale-while-revalidate) is served stale rather than as an error; a
    // miss gets the error, which is not stored.
    r.cluster.act("origin", Action::Fail).await.expect("fail");
    let (status, cs, _) = r.get(&eu, "/live/scores.json").await;
    assert_eq!(status, 200, "{cs}");
    assert!(member(&cs, "eu-west").contains("hit"), "{cs}");
    r.purge(
        serde_json::json!({ "urls": [format!("http://{SITE}/live/scores.json")], "soft": true }),
    )
    .await;
    let (status, cs, _) = r.get(&eu, "/live/scores.json").await;
    assert_eq!(
        status, 200,
        "stale-if-error serves the soft-purged copy: {cs}"
    );
    assert!(
        member(&cs, "shield-").contains("detail=stale-if-error"),
        "the shield answered from its stale copy: {cs}"
    );
    let (status, cs, _) = r.get(&eu, "/no-such-asset-while-failing").await;
    assert_eq!(status, 503, "a miss gets the origin's error: {cs}");
    r.cluster.act("origin", Action::Heal).await.expect("heal");
    let (status, cs, _) = r.get(&eu, "/no-such-asset-while-failing").await;
    assert_eq!(status, 404, "the error was not stored: {cs}");

    // Both shields own part of the keys; with one stopped, its keys go to
    // the other.
    r.cluster
        .act("shield-us", Action::Stop)
        .await
        .expect("stop");
    let interval = r.cluster.config().upstream_health_interval;
    tokio::time::sleep(interval * 2).await;
    for i in 0..8 {
        let (status, cs, _) = r.get(&eu, &format!("/news/{i}.html")).await;
        assert!(status == 200 || status == 404, "{status} {cs}");
        assert!(!cs.contains("shield-us"), "{cs}");
    }
    r.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_cluster_on_the_same_ports_says_which_port_is_taken() {
    let r = start().await;
    let mut c = config();
    c.dashboard = r.cluster.dashboard();
    let state = tempfile::tempdir().expect("tempdir");
    c.state_dir = state.path().to_path_buf();
    let err = match Cluster::start(c).await {
        Ok(_) => panic!("a second cluster on a taken port started"),
        Err(e) => e.to_string(),
    };
    let port = r.cluster.dashboard().port().to_string();
    assert!(
        err.contains("cluster.dashboard") && err.contains(&port) && err.contains("is taken"),
        "{err}"
    );
    r.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_printed_curl_line_works_as_printed() {
    let r = start().await;
    let text = meridian_cluster::summary::summary(&r.cluster);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("curl "))
        .collect();
    assert!(lines.len() >= 4, "{text}");
    for line in lines {
        let out = tokio::process::Command::new("bash")
            .arg("-c")
            .arg(format!("set -o pipefail; {line}"))
            .output()
            .await
            .expect("sh");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && !stdout.trim().is_empty(),
            "`{line}` failed: {}{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("$ {line}\n{stdout}");
    }
    r.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_https_the_printed_curl_line_reaches_an_edge_over_tls_with_the_ca() {
    let r = start_with(|c| c.https = true).await;
    let text = meridian_cluster::summary::summary(&r.cluster);
    let tls = r.cluster.tls().expect("cluster.https");
    assert!(
        tls.ca_file.starts_with(&r.cluster.config().state_dir),
        "{text}"
    );
    assert!(
        text.contains(&tls.ca_file.display().to_string()),
        "the CA path is printed: {text}"
    );
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("curl ") && l.contains("--cacert"))
        .unwrap_or_else(|| panic!("a curl line with --cacert: {text}"));
    for want in ["miss", "hit"] {
        let out = tokio::process::Command::new("bash")
            .arg("-c")
            .arg(format!("set -o pipefail; {line}"))
            .output()
            .await
            .expect("sh");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains(want),
            "`{line}` ({want}): {}{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    r.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_whole_cluster_live_in_a_real_browser() {
    if browser::unavailable() {
        return;
    }
    let r = start().await;
    let edges: Vec<(String, String)> = r
        .cluster
        .nodes()
        .iter()
        .filter(|n| n.kind == NodeKind::Edge)
        .map(|n| (n.name.clone(), n.url.clone()))
        .collect();
    // Traffic through every region (a fresh connection each, so both of
    // us-east's edges see some).
    let fresh = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    for (_, url) in &edges {
        for path in [
            "/index.html",
            "/static/css/site.css",
            "/index.html",
            "/news/",
        ] {
            let resp = fresh.get(format!("{url}{path}")).send().await.expect("get");
            assert!(resp.status().is_success(), "{url}{path}");
        }
    }
    let dash = r.cluster.dashboard();
    let state = format!("http://{dash}/api/state");
    eventually(
        "the dashboard counted every edge's traffic",
        Duration::from_secs(10),
        || async {
            let Ok(resp) = r.http.get(&state).send().await else {
                return false;
            };
            let v: serde_json::Value = resp.json().await.unwrap_or_default();
            let nodes = v["nodes"].as_array().cloned().unwrap_or_default();
            nodes.len() == r.cluster.nodes().len()
                && nodes
                    .iter()
                    .filter(|n| n["kind"] == "edge")
                    .all(|n| n["numbers"]["requests"].as_u64().unwrap_or(0) > 0)
        },
    )
    .await;

    let url = format!("http://{dash}/?poll#token={}", r.cluster.token());
    let dom = dump(&url).await;
    for n in r.cluster.nodes() {
        let card = browser::element(&dom, r#"<div class="node""#, &n.name)
            .unwrap_or_else(|| panic!("no card for {} in\n{dom}", n.name));
        assert_eq!(
            browser::attr(&card, "data-state"),
            Some("up"),
            "{}: {card:?}",
            n.name
        );
        assert!(
            browser::element(&dom, "<circle", &n.name).is_some(),
            "no map marker for {}",
            n.name
        );
        if n.kind == NodeKind::Edge {
            let requests: u64 = browser::attr(&card, "data-requests")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            assert!(requests > 0, "{}: no live numbers: {card:?}", n.name);
        }
    }

    // A stopped edge shows down within a few seconds.
    let t = Instant::now();
    r.cluster.act("sa-east", Action::Stop).await.expect("stop");
    loop {
        let dom = dump(&url).await;
        let card = browser::element(&dom, r#"<div class="node""#, "sa-east").expect("sa-east");
        if browser::attr(&card, "data-state") == Some("down") {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "sa-east never showed down: {card:?}"
        );
    }
    eprintln!(
        "a stopped edge showed down in the browser after {:?}",
        t.elapsed()
    );

    // `MERIDIAN_DASHBOARD_SCREENSHOT=docs/dashboard.png` keeps a screenshot.
    if let Some(png) = std::env::var_os("MERIDIAN_DASHBOARD_SCREENSHOT") {
        let png = std::path::PathBuf::from(png);
        tokio::task::spawn_blocking(move || browser::screenshot(&url, &png, (1400, 1100)))
            .await
            .expect("screenshot");
    }
    r.cluster.shutdown().await;
}

async fn dump(url: &str) -> String {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || browser::dump_dom(&url))
        .await
        .expect("chromium")
}

/// The pid `cluster up --processes` wrote for `node` (none once reaped).
fn child_pid(r: &Running, node: &str) -> Option<u32> {
    let path = meridian_cluster::run::pid_file(&r.cluster.config().state_dir, node);
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_processes_a_stopped_shield_is_a_killed_process_and_start_runs_a_new_one() {
    let r = start_with(|c| {
        c.processes = true;
        c.node_binary = Some(env!("CARGO_BIN_EXE_meridian").into());
    })
    .await;
    let eu = r.url_of("eu-west");
    let (status, cs, _) = r.get(&eu, "/index.html").await;
    assert_eq!(status, 200, "{cs}");
    let first = child_pid(&r, "shield-us").expect("shield-us runs as a process");
    assert!(alive(first));
    let edge = child_pid(&r, "eu-west").expect("eu-west runs as a process");

    // stop: a SIGKILL; the process is gone and reaped, the pid file too.
    r.cluster
        .act("shield-us", Action::Stop)
        .await
        .expect("stop");
    eventually(
        "the killed shield is reaped",
        Duration::from_secs(10),
        || async { !alive(first) && child_pid(&r, "shield-us").is_none() },
    )
    .await;
    // Its keys go to the other shield: misses through eu-west still work.
    let interval = r.cluster.config().upstream_health_interval;
    eventually(
        "misses are answered through shield-eu",
        interval * 3 + Duration::from_secs(5),
        || async {
            let (status, cs, _) = r.get(&eu, "/news/").await;
            status == 200 && !cs.contains("shield-us")
        },
    )
    .await;

    // start: a new process on the same addresses, answering health checks.
    r.cluster
        .act("shield-us", Action::Start)
        .await
        .expect("start");
    let second = child_pid(&r, "shield-us").expect("a new shield-us");
    assert_ne!(second, first);
    assert!(alive(second));
    let admin = r.cluster.node("shield-us").expect("node").admin.clone();
    let healthz = format!("{}/healthz", admin.expect("admin"));
    let (status, _, _) = r.get(&healthz, "").await;
    assert_eq!(status, 200);
    assert!(alive(edge), "the edge process lived through it");

    r.cluster.shutdown().await;
    eventually(
        "shutdown kills every child",
        Duration::from_secs(10),
        || async { !alive(second) && !alive(edge) },
    )
    .await;
}
