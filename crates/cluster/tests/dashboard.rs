//! The dashboard over a real (small) cluster: an origin, a shield and
//! three edges in this process, all following a real purge log. Its API
//! from a client, then the page in a real headless Chromium.

mod browser;
mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use meridian_cluster::control::{Action, Control, Fault};
use meridian_cluster::dashboard::Settings;
use serde_json::{Value, json};
use support::{EDGES, ORIGIN, SHIELD, TOKEN, TestCluster, eventually};

const WITHIN: Duration = Duration::from_secs(10);

async fn state(c: &reqwest::Client, dash: SocketAddr) -> Value {
    c.get(format!("http://{dash}/api/state"))
        .send()
        .await
        .expect("state")
        .json()
        .await
        .expect("json")
}

fn node<'a>(s: &'a Value, name: &str) -> &'a Value {
    s["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["name"] == name))
        .unwrap_or(&Value::Null)
}

/// Polls `/api/state` (bounded) until `check` holds; answers that state.
/// On timeout the panic shows the last one.
async fn state_where(
    c: &reqwest::Client,
    dash: SocketAddr,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + WITHIN;
    loop {
        let s = state(c, dash).await;
        if check(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {WITHIN:?} waiting for: {what}\nlast state: {s:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn all_up(s: &Value) -> bool {
    s["nodes"]
        .as_array()
        .is_some_and(|n| n.len() == 5 && n.iter().all(|n| n["state"] == "up"))
}

async fn post(
    c: &reqwest::Client,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = c.post(url);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.expect("post");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_shows_every_node_with_live_numbers_after_traffic() {
    let cluster = TestCluster::start().await;
    let dash = cluster.dashboard().await;
    let c = &cluster.client;
    state_where(c, dash, "every node up", all_up).await;

    for _ in 0..5 {
        let (status, body) = cluster.get("edge-eu", "/page.txt").await.expect("get");
        assert_eq!(
            (status, body.as_str()),
            (200, "a page of the sample site\n")
        );
    }
    let s = state_where(c, dash, "edge-eu counted 5 requests", |s| {
        node(s, "edge-eu")["numbers"]["requests"] == 5
    })
    .await;
    let eu = &node(&s, "edge-eu")["numbers"];
    assert_eq!(eu["hits"], 4, "{eu}");
    assert_eq!(eu["misses"], 1, "{eu}");
    assert_eq!(eu["hit_ratio"], 0.8, "{eu}");
    assert_eq!(eu["offload"], 0.8, "{eu}");
    assert_eq!(eu["entries"], 1, "{eu}");
    assert_eq!(
        eu["bytes_served"],
        5 * "a page of the sample site\n".len(),
        "{eu}"
    );
    assert_eq!(node(&s, SHIELD)["numbers"]["requests"], 1);
    assert_eq!(node(&s, ORIGIN)["numbers"]["requests"], 1);
    assert_eq!(s["totals"]["origin_requests"], 1);
    assert_eq!(s["totals"]["edge_requests"], 5);
    assert_eq!(s["totals"]["offload"], 0.8);
    // Links: each edge to the shield, the shield to the origin.
    let links = s["links"].as_array().expect("links");
    assert_eq!(links.len(), 4, "{links:?}");
    assert!(links.iter().any(|l| l["from"] == SHIELD
        && l["to"] == ORIGIN
        && l["rtt_ms"] == 92.0
        && l["up"] == true));
    assert!(s["generated_at"].as_u64().is_some_and(|t| t > 0));
    assert_eq!(s["purge_log"]["reachable"], true, "{:#}", s["purge_log"]);

    // The rate: traffic between two polls shows as requests per second.
    let started = Instant::now();
    let mut seen = 0.0;
    while seen == 0.0 && started.elapsed() < WITHIN {
        cluster.get("edge-ap", "/page.txt").await.expect("get");
        let s = state(c, dash).await;
        seen = node(&s, "edge-ap")["numbers"]["rps"]
            .as_f64()
            .unwrap_or(0.0);
    }
    assert!(seen > 0.0, "edge-ap never showed a rate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_edge_shows_down_within_a_poll_and_up_again_after_start() {
    let cluster = TestCluster::start().await;
    let dash = cluster.dashboard().await;
    let c = &cluster.client;
    state_where(c, dash, "every node up", all_up).await;
    cluster.get("edge-ap", "/page.txt").await.expect("get");

    let url = format!("http://{dash}/api/nodes/edge-ap/stop");
    let (status, body) = post(c, url, Some(TOKEN), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["fault"]["state"], "stopped", "{body}");
    // Really stopped: nothing listens there now.
    assert!(cluster.get("edge-ap", "/page.txt").await.is_err());
    let s = state_where(c, dash, "edge-ap down", |s| {
        node(s, "edge-ap")["state"] == "down"
    })
    .await;
    let ap = node(&s, "edge-ap");
    assert_eq!(ap["fault"]["state"], "stopped");
    assert_eq!(ap["numbers"], Value::Null);
    assert_eq!(node(&s, "edge-ap-2")["state"], "up");
    assert_eq!(s["totals"]["nodes_up"], 4);
    let link = s["links"]
        .as_array()
        .and_then(|l| l.iter().find(|l| l["from"] == "edge-ap"))
        .expect("link");
    assert_eq!(link["up"], false);

    let url = format!("http://{dash}/api/nodes/edge-ap/start");
    let (status, body) = post(c, url, Some(TOKEN), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["fault"]["state"], "none");
    let s = state_where(c, dash, "edge-ap up again", |s| {
        node(s, "edge-ap")["state"] == "up"
    })
    .await;
    // Started again with an empty cache and counters.
    assert_eq!(node(&s, "edge-ap")["numbers"]["requests"], 0);
    assert_eq!(
        cluster.get("edge-ap", "/page.txt").await.expect("get").0,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_whose_admin_does_not_answer_is_down_whatever_its_fault() {
    let cluster = TestCluster::start().await;
    let dash = cluster.dashboard().await;
    let c = &cluster.client;
    state_where(c, dash, "every node up", all_up).await;
    cluster.control.crash("edge-eu").await;
    let s = state_where(c, dash, "crashed edge-eu down", |s| {
        node(s, "edge-eu")["state"] == "down"
    })
    .await;
    let eu = node(&s, "edge-eu");
    assert_eq!(eu["fault"]["state"], "none");
    assert_eq!(eu["reason"], "connection refused", "{eu}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_fail_show_as_such_and_heal_clears_them() {
    let cluster = TestCluster::start().await;
    let dash = cluster.dashboard().await;
    let c = &cluster.client;
    state_where(c, dash, "every node up", all_up).await;
    let act = |a: &str| {
        post(
            c,
            format!("http://{dash}/api/nodes/{SHIELD}/{a}"),
            Some(TOKEN),
            None,
        )
    };
    let (status, body) = act("slow=300ms").await;
    assert_eq!(
        (status, &body["fault"]),
        (200, &json!({"state": "slow", "ms": 300}))
    );
    state_where(c, dash, "shield slow", |s| {
        node(s, SHIELD)["state"] == "slow"
    })
    .await;
    assert_eq!(act("fail").await.0, 200);
    state_where(c, dash, "shield failing", |s| {
        node(s, SHIELD)["state"] == "failing"
    })
    .await;
    assert_eq!(act("heal").await.0, 200);
    state_where(c, dash, "shield healed", |s| {
        node(s, SHIELD)["state"] == "up"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_and_purges_need_the_cluster_token() {
    let cluster = TestCluster::start().await;
    let dash = cluster.dashboard().await;
    let c = &cluster.client;
    let stop = format!("http://{dash}/api/nodes/edge-eu/stop");
    for token in [None, Some("wrong-token-of-some-length")] {
        let (status, body) = post(c, stop.clone(), token, None).await;
        assert_eq!(status, 401, "{token:?}: {body}");
        assert!(body["error"].is_string(), "{body}");
        let (status, _) = post(
            c,
            format!("http://{dash}/api/purge"),
            token,
            Some(json!({"all": true})),
        )
        .await;
        assert_eq!(status, 401);
    }
    assert_eq!(cluster.control.fault("edge-eu"), Some(Fault::None));
    assert_eq!(
        cluster.get("edge-eu", "/page.txt").await.expect("get").0,
        200
    );

    let (status, body) = post(
        c,
        format!("http://{dash}/api/nodes/nowhere/stop"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = post(
        c,
        format!("http://{dash}/api/nodes/edge-eu/explode"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("not an action")),
        "{body}"
    );
    let (status, body) = post(
        c,
        format!("http://{dash}/api/nodes/edge-eu/start"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 409, "start while running: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_guard_refuses_other_names_with_421() {
    let cluster = TestCluster::start().await;
    let dash = cluster.dashboard().await;
    let c = &cluster.client;
    for path in ["/", "/api/state", "/api/events"] {
        let r = c
            .get(format!("http://{dash}{path}"))
            .header("host", "rebound.evil.example")
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 421, "{path}");
    }
    let r = c
        .post(format!("http://{dash}/api/nodes/edge-eu/stop"))
        .header("host", format!("evil.example:{}", dash.port()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 421);
    assert_eq!(cluster.control.fault("edge-eu"), Some(Fault::None));
    let r = c
        .get(format!("http://{dash}/"))
        .header("host", format!("localhost:{}", dash.port()))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_served_whole_from_the_binary() {
    let cluster = TestCluster::start().await;
    let dash = cluster.dashboard().await;
    let c = &cluster.client;
    let r = c.get(format!("http://{dash}/")).send().await.expect("page");
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    let page = r.text().await.expect("page");
    assert!(page.contains(r#"<svg id="map""#));
    assert!(
        page.contains(r#"<path class="land" d="M"#),
        "the continents are in the page"
    );
    let mut everything = page.clone();
    for asset in ["/app.js", "/app.css"] {
        let r = c
            .get(format!("http://{dash}{asset}"))
            .send()
            .await
            .expect("asset");
        assert_eq!(r.status(), 200, "{asset}");
        everything.push_str(&r.text().await.expect("asset"));
    }
    for scheme in ["http://", "https://"] {
        assert!(
            !everything.contains(scheme),
            "the page names an address: {scheme}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sent_events_push_snapshots_and_are_bounded() {
    let cluster = TestCluster::start().await;
    let dash = cluster
        .dashboard_with(Settings {
            max_event_clients: 2,
            ..Settings::default()
        })
        .await;
    let c = &cluster.client;
    let open = || async {
        c.get(format!("http://{dash}/api/events"))
            .send()
            .await
            .expect("events")
    };
    let mut first = open().await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["content-type"], "text/event-stream");
    // Two events: the current snapshot at once, then the next poll's.
    let mut text = String::new();
    let mut snapshots = Vec::new();
    let deadline = Instant::now() + WITHIN;
    while snapshots.len() < 2 {
        assert!(Instant::now() < deadline, "no two snapshots in {text}");
        let chunk = tokio::time::timeout(WITHIN, first.chunk())
            .await
            .expect("an event in time")
            .expect("stream")
            .expect("open");
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) {
                let v: Value = serde_json::from_str(data).expect("json");
                if v["nodes"].is_array() {
                    snapshots.push(v);
                }
            }
        }
    }
    assert_eq!(snapshots[1]["nodes"].as_array().map(Vec::len), Some(5));
    let _second = open().await;
    let third = open().await;
    assert_eq!(third.status(), 503, "past max-event-clients");
    drop(first);
    // The place is given back once the first client is gone.
    eventually("a place frees up", WITHIN, || async {
        open().await.status() == 200
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_reaches_every_node_and_shows_when_each_applied_it() {
    let cluster = TestCluster::start().await;
    let dash = cluster.dashboard().await;
    let c = &cluster.client;
    state_where(c, dash, "every node up", all_up).await;
    cluster
        .get("edge-eu", "/news/today.txt")
        .await
        .expect("get");
    let purge = format!("http://{dash}/api/purge");

    let (status, body) = post(c, purge.clone(), Some(TOKEN), Some(json!({"tags": []}))).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = post(c, purge.clone(), Some(TOKEN), Some(json!({"tag": ["x"]}))).await;
    assert_eq!(status, 400, "unknown field: {body}");
    let big = json!({ "urls": vec!["http://cdn.test/".repeat(20); 300] });
    let (status, body) = post(c, purge.clone(), Some(TOKEN), Some(big)).await;
    assert_eq!(status, 413, "{body}");

    let (status, report) = post(c, purge, Some(TOKEN), Some(json!({"tags": ["news"]}))).await;
    assert_eq!(status, 200, "{report}");
    let nodes = report["nodes"].as_array().expect("report nodes");
    assert_eq!(nodes.len(), 4, "{report}");
    assert!(nodes.iter().all(|n| n["result"] == "applied"), "{report}");
    let eu = nodes
        .iter()
        .find(|n| n["node"] == "edge-eu")
        .expect("edge-eu");
    assert_eq!(eu["entries"], 1, "edge-eu held the tagged page: {report}");
    let seq = report["seq"].as_u64().expect("seq");

    let s = state_where(c, dash, "the purge in the recent list", |s| {
        s["purges"][0]["seq"] == seq
    })
    .await;
    let p = &s["purges"][0];
    assert_eq!(p["summary"], "tag: news");
    assert_eq!(p["via_dashboard"], true);
    let applied = p["nodes"].as_array().expect("nodes");
    for name in EDGES.iter().map(|e| e.0).chain([SHIELD]) {
        let n = applied
            .iter()
            .find(|n| n["node"] == name)
            .unwrap_or_else(|| panic!("{name} in {p}"));
        assert_eq!(n["state"], "applied", "{n}");
        assert!(n["at_ms"].as_u64().is_some(), "{n}");
    }
    assert_eq!(node(&s, "edge-eu")["purge"]["applied"], seq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_in_a_real_browser_shows_every_node_live_and_a_stopped_edge_down() {
    if browser::unavailable() {
        return;
    }
    let cluster = TestCluster::start().await;
    let dash = cluster.dashboard().await;
    let c = &cluster.client;
    for _ in 0..3 {
        cluster.get("edge-eu", "/page.txt").await.expect("get");
    }
    cluster
        .get("edge-ap", "/news/today.txt")
        .await
        .expect("get");
    let body = json!({"tags": ["news"]});
    let (status, report) = post(
        c,
        format!("http://{dash}/api/purge"),
        Some(TOKEN),
        Some(body),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    state_where(c, dash, "the poll counted the traffic and the purge", |s| {
        all_up(s) && node(s, "edge-eu")["numbers"]["requests"] == 3 && s["purges"][0]["seq"] == 1
    })
    .await;
    // `?poll`: an event stream would hold Chromium's virtual time still.
    let url = format!("http://{dash}/?poll#token={TOKEN}");
    let dom = dump(&url).await;
    for name in [ORIGIN, SHIELD]
        .into_iter()
        .chain(EDGES.iter().map(|e| e.0))
    {
        let card = browser::element(&dom, r#"<div class="node""#, name)
            .unwrap_or_else(|| panic!("no card for {name} in\n{dom}"));
        assert_eq!(
            browser::attr(&card, "data-state"),
            Some("up"),
            "{name}: {card:?}"
        );
        assert!(
            browser::element(&dom, "<circle", name).is_some(),
            "no map marker for {name}"
        );
    }
    let eu = browser::element(&dom, r#"<div class="node""#, "edge-eu").expect("edge-eu");
    let requests: u64 = browser::attr(&eu, "data-requests")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert_eq!(requests, 3, "{eu:?}");
    assert!(
        dom.contains(r#"<dd id="t-up">5 / 5</dd>"#),
        "the totals are rendered"
    );
    // The recent purge, with every node's confirmation.
    assert!(
        dom.contains(r#"<div class="purge" data-seq="1">"#),
        "no recent purge"
    );
    for name in [SHIELD].into_iter().chain(EDGES.iter().map(|e| e.0)) {
        let chip = browser::element(&dom, r#"<span class="chip"#, name)
            .unwrap_or_else(|| panic!("no purge chip for {name}"));
        assert_eq!(
            browser::attr(&chip, "data-state"),
            Some("applied"),
            "{chip:?}"
        );
    }
    // Every address in the rendered page is the cluster's own.
    for scheme in ["http://", "https://"] {
        for (i, _) in dom.match_indices(scheme) {
            let rest = &dom[i + scheme.len()..];
            assert!(
                rest.starts_with("127.0.0.1:"),
                "an outside address: {}",
                &dom[i..(i + 60).min(dom.len())]
            );
        }
    }

    cluster
        .control
        .act("edge-ap", Action::Stop)
        .await
        .expect("stop");
    let deadline = Instant::now() + WITHIN;
    loop {
        let dom = dump(&url).await;
        let ap = browser::element(&dom, r#"<div class="node""#, "edge-ap").expect("edge-ap");
        if browser::attr(&ap, "data-state") == Some("down") {
            let marker = browser::element(&dom, "<circle", "edge-ap").expect("marker");
            assert_eq!(browser::attr(&marker, "data-state"), Some("down"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "edge-ap never showed down: {ap:?}"
        );
    }

    // The screenshot works too; MERIDIAN_DASHBOARD_SCREENSHOT=path keeps it.
    let keep = std::env::var_os("MERIDIAN_DASHBOARD_SCREENSHOT").map(std::path::PathBuf::from);
    let png = keep.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("meridian-dashboard-{}.png", std::process::id()))
    });
    let shot = png.clone();
    tokio::task::spawn_blocking(move || browser::screenshot(&url, &shot, (1400, 1000)))
        .await
        .expect("screenshot");
    if keep.is_none() {
        std::fs::remove_file(&png).ok();
    }
}

async fn dump(url: &str) -> String {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || browser::dump_dom(&url))
        .await
        .expect("chromium")
}
