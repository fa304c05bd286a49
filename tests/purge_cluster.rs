//! The cluster purge log end to end, over real processes of the built
//! binary: an origin, one shield and two edges, all following the log,
//! which is kept either by the director (the HTTP backend) or by a real
//! `nats-server -js` (JetStream). The same scenario runs against both:
//! `meridian purge` takes a URL out of every node (hard and soft); a purge
//! sent while an edge is stopped (SIGSTOP) is not served by that edge after
//! SIGCONT, also when the log (the director, or nats-server) was restarted
//! in between, or is still down; the status shows what each node applied.
//! Every purge kind (`--prefix`, `--tag`, `--all`) reaches every node.
//!
//! Every process binds port 0 (nats-server `-p -1`) and the test reads the
//! address it logs.

#[path = "support/eventually.rs"]
mod eventually;
#[path = "purge_cluster/nats.rs"]
mod nats;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eventually::eventually;
use meridian_purge::{NodeRef, Tier};

const TOKEN: &str = "cluster-test-token-0123456789";
const MAX_LAG: Duration = Duration::from_secs(1);
const SITE: &str = "cdn.test";
const URL: &str = "http://cdn.test/page.txt";

/// A child process (of the `meridian` binary or nats-server) whose stderr
/// is collected; killed when dropped.
struct Proc {
    name: &'static str,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    fn start(name: &'static str, args: &[String]) -> Proc {
        let mut command = Command::new(env!("CARGO_BIN_EXE_meridian"));
        command
            .args(args)
            .env("MERIDIAN_ADMIN_TOKEN", TOKEN)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info");
        Proc::spawn(name, command)
    }

    fn spawn(name: &'static str, mut command: Command) -> Proc {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        if let Some(stderr) = child.stderr.take() {
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    lines.lock().expect("lines").push(line);
                }
            });
        }
        Proc { name, child, lines }
    }

    /// The address in the first log line containing `what` (`addr=...`).
    async fn addr(&self, what: &str) -> String {
        let line = self.line(what).await;
        addr_in(&line).unwrap_or_else(|| panic!("{}: no addr= in `{line}`", self.name))
    }

    /// The first log line containing `what`, once there is one.
    async fn line(&self, what: &str) -> String {
        let mut found = None;
        eventually(
            &format!("{} logs `{what}`", self.name),
            Duration::from_secs(15),
            || {
                found = self
                    .lines
                    .lock()
                    .expect("lines")
                    .iter()
                    .find(|l| l.contains(what))
                    .cloned();
                let done = found.is_some();
                async move { done }
            },
        )
        .await;
        found.unwrap_or_default()
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.pid()])
            .status()
            .expect("kill");
        assert!(ok.success(), "kill {sig} {}", self.name);
    }

    fn log(&self) -> String {
        self.lines.lock().expect("lines").join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `127.0.0.1:PORT` after `addr=` (escape sequences removed).
fn addr_in(line: &str) -> Option<String> {
    let plain: String = {
        let mut out = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    };
    let rest = &plain[plain.find("addr=")? + 5..];
    let addr: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
        .collect();
    addr.contains(':').then_some(addr)
}

fn s(v: &str) -> String {
    v.to_owned()
}

/// Who keeps the purge log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    /// The director, on its admin listener, with a state directory.
    Http,
    /// A `nats-server -js` (JetStream).
    Nats,
}

/// The running keeper of the log.
enum Log {
    Director {
        proc: Option<Proc>,
        /// `127.0.0.1:PORT` of its admin listener, kept across restarts.
        admin: String,
    },
    Nats(nats::NatsServer),
}

/// The cluster: the log, an origin, a shield, two edges.
struct Cluster {
    dir: tempfile::TempDir,
    origin_root: PathBuf,
    _origin: Proc,
    log: Log,
    /// What every node follows and the CLI publishes to.
    log_url: String,
    nodes: Vec<NodeRef>,
    _shield: Proc,
    shield_url: String,
    edges: Vec<(Proc, String)>,
    http: reqwest::Client,
}

/// The edge and shield tables of the cluster file: the nodes to wait for.
/// Their addresses are not needed by the log (health checks are off).
const NODES: &str = r#"
[director]
health-checks = "off"

[[edge]]
name = "e1"
region = "eu"
url = "http://127.0.0.1:1"
admin = "http://127.0.0.1:1"
latitude = 50.0
longitude = 0.0

[[edge]]
name = "e2"
region = "eu"
url = "http://127.0.0.1:2"
admin = "http://127.0.0.1:2"
latitude = 51.0
longitude = 0.0

[[shield]]
name = "s1"
url = "http://127.0.0.1:3"
admin = "http://127.0.0.1:3"
"#;

/// The cluster file for the director's own log (`log` is its URL for the
/// CLI; none for the director itself, which keeps it).
fn cluster_file(log: Option<&str>) -> String {
    let url = log.map(|l| format!("url = \"{l}\"\n")).unwrap_or_default();
    format!(
        "{NODES}
[purge-log]
{url}max-lag = \"1s\"
poll-wait = \"400ms\"
confirm-timeout = \"3s\"
"
    )
}

/// The cluster file for a NATS log, in the short form (which must come
/// before every table).
fn nats_cluster_file(log: &str) -> String {
    format!("purge-log = \"{log}\"\n{NODES}")
}

/// What the origin serves at first: `/page.txt` in the root (no tag), and
/// files in two folders, tagged with the folder's name.
const FILES: [(&str, &str); 4] = [
    ("page.txt", "v1"),
    ("a/one.txt", "a1"),
    ("a/two.txt", "a2"),
    ("b/three.txt", "b3"),
];

impl Cluster {
    async fn start(backend: Backend) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let origin_root = dir.path().join("www");
        for (path, body) in FILES {
            let file = origin_root.join(path);
            std::fs::create_dir_all(file.parent().expect("a folder")).expect("mkdir");
            std::fs::write(file, body).expect("write");
        }
        let origin = Proc::start(
            "origin",
            &[
                s("origin"),
                s("--listen"),
                s("127.0.0.1:0"),
                s("--root"),
                origin_root.display().to_string(),
                s("--cache-control"),
                s("public, max-age=3600"),
                s("--surrogate-key-by-dir"),
            ],
        );
        let (log, log_url) = match backend {
            Backend::Http => {
                std::fs::write(dir.path().join("director.toml"), cluster_file(None))
                    .expect("write");
                let director = start_director(dir.path(), "127.0.0.1:0");
                let admin = director.addr("admin listening").await;
                let url = format!("http://{admin}");
                std::fs::write(dir.path().join("cluster.toml"), cluster_file(Some(&url)))
                    .expect("write");
                let log = Log::Director {
                    proc: Some(director),
                    admin,
                };
                (log, url)
            }
            Backend::Nats => {
                let server = nats::NatsServer::start().await;
                let url = server.url();
                std::fs::write(dir.path().join("cluster.toml"), nats_cluster_file(&url))
                    .expect("write");
                (Log::Nats(server), url)
            }
        };
        let origin_addr = origin.addr("origin listening").await;
        let follow = |name: &str| {
            vec![
                s("--name"),
                s(name),
                s("--control"),
                log_url.clone(),
                s("--purge-max-lag"),
                s("1s"),
                s("--site-host"),
                s(SITE),
                s("--listen"),
                s("127.0.0.1:0"),
            ]
        };
        let mut args = vec![
            s("shield"),
            s("--origin"),
            format!("http://{origin_addr}"),
            s("--health-interval"),
            s("0s"),
        ];
        args.extend(follow("s1"));
        let shield = Proc::start("shield", &args);
        let shield_url = format!("http://{}", shield.addr("proxy listening").await);
        let mut edges = Vec::new();
        for name in ["e1", "e2"] {
            let mut args = vec![s("edge"), s("--upstream"), shield_url.clone()];
            args.extend(follow(name));
            let p = Proc::start(if name == "e1" { "e1" } else { "e2" }, &args);
            let url = format!("http://{}", p.addr("proxy listening").await);
            edges.push((p, url));
        }
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        let node = |name: &str, tier| NodeRef {
            name: s(name),
            tier,
        };
        let c = Cluster {
            dir,
            origin_root,
            _origin: origin,
            log,
            log_url,
            nodes: vec![
                node("s1", Tier::Shield),
                node("e1", Tier::Edge),
                node("e2", Tier::Edge),
            ],
            _shield: shield,
            shield_url,
            edges,
            http,
        };
        c.wait_caught_up("every node follows the log").await;
        c
    }

    /// Every node has applied everything in the log and is not lagging;
    /// the status that showed it.
    async fn wait_caught_up(&self, what: &str) -> meridian_purge::Status {
        let last = std::cell::RefCell::new(None);
        eventually(what, Duration::from_secs(10), || async {
            let status = self.status().await.filter(|s| {
                s.nodes.len() == 3 && s.nodes.iter().all(|n| !n.lagging && n.behind == 0)
            });
            let done = status.is_some();
            *last.borrow_mut() = status;
            done
        })
        .await;
        last.into_inner().expect("caught up")
    }

    /// Every node has applied everything in the log, as the log's keeper
    /// has it: for NATS straight from the consumers (no heartbeats, so
    /// quicker than [`Cluster::status`]).
    async fn wait_applied(&self, what: &str) {
        let Log::Nats(server) = &self.log else {
            self.wait_caught_up(what).await;
            return;
        };
        eventually(what, Duration::from_secs(10), || async {
            for node in ["s1", "e1", "e2"] {
                if server.consumer(node).await.is_none_or(|c| c.behind > 0) {
                    return false;
                }
            }
            true
        })
        .await;
    }

    /// The log's view of every node, as `meridian purge --status` gets it
    /// (for NATS this listens to the nodes' heartbeats for 1.5 s).
    async fn status(&self) -> Option<meridian_purge::Status> {
        meridian_purge::status(&self.log_url, Some(TOKEN), &self.nodes)
            .await
            .ok()
    }

    fn set_page(&self, body: &str) {
        self.set_file("page.txt", body);
    }

    fn set_file(&self, path: &str, body: &str) {
        std::fs::write(self.origin_root.join(path), body).expect("write");
    }

    /// GET /page.txt from `base`: body and Cache-Status.
    async fn get(&self, base: &str) -> (String, String) {
        self.get_path(base, "page.txt").await
    }

    /// GET `/path` from `base`: body and Cache-Status.
    async fn get_path(&self, base: &str, path: &str) -> (String, String) {
        let r = self
            .http
            .get(format!("{base}/{path}"))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 200, "{base}/{path}");
        let cs = r
            .headers()
            .get("cache-status")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        (r.text().await.expect("body"), cs)
    }

    fn edge(&self, i: usize) -> &str {
        &self.edges[i].1
    }

    /// Runs `meridian purge` against the cluster file.
    fn purge(&self, extra: &[&str]) -> Output {
        self.purge_within("2s", extra)
    }

    /// Runs `meridian purge` while e2 is stopped: it cannot confirm, so
    /// the CLI waits out a shorter deadline (the others confirm in ms).
    fn purge_without_e2(&self) -> Output {
        self.purge_within("1s", &["--url", URL])
    }

    fn purge_within(&self, deadline: &str, extra: &[&str]) -> Output {
        let cluster = self.dir.path().join("cluster.toml");
        let mut args = vec![
            "purge",
            "--config",
            cluster.to_str().expect("path"),
            "--deadline",
            deadline,
        ];
        args.extend_from_slice(extra);
        Command::new(env!("CARGO_BIN_EXE_meridian"))
            .args(&args)
            .env("MERIDIAN_ADMIN_TOKEN", TOKEN)
            .env("NO_COLOR", "1")
            .output()
            .expect("run meridian purge")
    }

    /// Stops e2 once its last poll has been answered (the director holds a
    /// poll at most `poll-wait`, 400ms; the server drops a NATS pull
    /// request when it expires, after 250ms), so no entry sent later waits
    /// in its socket for the moment it resumes.
    async fn stop_e2(&self) -> Instant {
        self.edges[1].0.signal("-STOP");
        let stopped = Instant::now();
        eventually(
            "e2's last poll was answered",
            Duration::from_secs(5),
            || async {
                match &self.log {
                    Log::Nats(server) => {
                        server.consumer("e2").await.is_some_and(|c| c.waiting == 0)
                    }
                    Log::Director { .. } => self.status().await.is_some_and(|s| {
                        s.nodes
                            .iter()
                            .any(|n| n.node == "e2" && n.last_seen_ms.is_some_and(|ms| ms > 600))
                    }),
                }
            },
        )
        .await;
        stopped
    }

    /// The log's head, as the log itself says.
    async fn head(&self) -> u64 {
        let head = match &self.log {
            Log::Nats(server) => server.head().await,
            Log::Director { .. } => self.status().await.map(|s| s.head),
        };
        head.expect("the log answers")
    }

    /// Kills the log's keeper (the director, or nats-server).
    fn kill_log(&mut self) {
        match &mut self.log {
            Log::Director { proc, .. } => drop(proc.take()),
            Log::Nats(server) => server.kill(),
        }
    }

    /// Kills the log's keeper and starts it again on its state (dir or
    /// store) and port; waits until it answers with the log's `head`.
    async fn restart_log(&mut self, head: u64) {
        self.kill_log();
        match &mut self.log {
            Log::Director { proc, admin } => *proc = Some(start_director(self.dir.path(), admin)),
            Log::Nats(server) => server.start_again().await,
        }
        eventually(
            "the log is back with its entries",
            Duration::from_secs(10),
            || async {
                let now = match &self.log {
                    Log::Nats(server) => server.head().await,
                    Log::Director { .. } => self.status().await.map(|s| s.head),
                };
                now == Some(head)
            },
        )
        .await;
    }

    /// Both edges and the shield hold `body` (the edges hit).
    async fn warm(&self, body: &str) {
        self.warm_path("page.txt", body).await;
    }

    /// Both edges and the shield hold `body` at `/path` (the edges hit).
    async fn warm_path(&self, path: &str, body: &str) {
        for i in 0..2 {
            let (b, _) = self.get_path(self.edge(i), path).await;
            assert_eq!(b, body, "{path}");
            let (b, cs) = self.get_path(self.edge(i), path).await;
            assert_eq!(b, body, "{path}");
            assert!(
                last_hop(&cs).contains("; hit"),
                "edge {i} warm {path}: {cs}"
            );
        }
        let (b, cs) = self.get_path(&self.shield_url, path).await;
        assert_eq!(
            (b.as_str(), last_hop(&cs).contains("; hit")),
            (body, true),
            "shield warm {path}: {cs}"
        );
    }
}

fn start_director(dir: &Path, admin: &str) -> Proc {
    Proc::start(
        "director",
        &[
            s("director"),
            s("--config"),
            dir.join("director.toml").display().to_string(),
            s("--listen"),
            s("127.0.0.1:0"),
            s("--admin-listen"),
            s(admin),
            s("--purge-state"),
            dir.join("purge-state").display().to_string(),
        ],
    )
}

/// Waits until `max-lag` (and a margin) has passed since `since`: the
/// guarantee is about time, so this wait is what is tested, not a sync.
async fn past_max_lag(since: Instant) {
    tokio::time::sleep_until((since + MAX_LAG + Duration::from_millis(300)).into()).await;
}

/// This node's own part of a `Cache-Status` (the last member).
fn last_hop(cs: &str) -> &str {
    cs.rsplit(", ").next().unwrap_or(cs)
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn applied_line(o: &Output, node: &str) -> bool {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .any(|l| l.starts_with(&format!("{node} ")) && l.contains("applied"))
}

/// The other hop's part of a `Cache-Status` (the first member: the
/// shield's, in an edge's answer).
fn first_hop(cs: &str) -> &str {
    cs.split(", ").next().unwrap_or(cs)
}

#[tokio::test]
async fn a_cluster_purge_reaches_every_node_even_one_stopped_or_a_restarted_director() {
    purge_reaches_every_node_even_one_stopped_or_a_restarted_log(Backend::Http).await;
}

#[tokio::test]
async fn a_nats_purge_reaches_every_node_even_one_stopped_or_a_restarted_nats_server() {
    purge_reaches_every_node_even_one_stopped_or_a_restarted_log(Backend::Nats).await;
}

async fn purge_reaches_every_node_even_one_stopped_or_a_restarted_log(backend: Backend) {
    let mut c = Cluster::start(backend).await;

    // Hard purge: every node confirms, the next requests are misses.
    c.warm("v1").await;
    c.set_page("v2");
    let out = c.purge(&["--url", URL]);
    assert!(out.status.success(), "{}", text(&out));
    for node in ["s1", "e1", "e2"] {
        assert!(applied_line(&out, node), "{node}: {}", text(&out));
    }
    for i in 0..2 {
        let (b, cs) = c.get(c.edge(i)).await;
        assert_eq!(b, "v2", "edge {i} after a hard purge: {cs}");
        assert!(last_hop(&cs).contains("fwd=miss"), "{cs}");
    }

    // Soft purge: the copies stay but are revalidated first.
    c.warm("v2").await;
    c.set_page("v3");
    let out = c.purge(&["--url", URL, "--soft"]);
    assert!(out.status.success(), "{}", text(&out));
    for i in 0..2 {
        let (b, cs) = c.get(c.edge(i)).await;
        assert_eq!(b, "v3", "edge {i} after a soft purge: {cs}");
        assert!(last_hop(&cs).contains("fwd=stale"), "revalidated: {cs}");
    }

    // An edge stopped during a purge: the CLI names it; after SIGCONT its
    // very first answer is not the purged copy.
    c.warm("v3").await;
    let stopped = c.stop_e2().await;
    c.set_page("v4");
    let out = c.purge_without_e2();
    assert!(!out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("e2") && !stderr.contains("e1"),
        "{}",
        text(&out)
    );
    assert!(
        applied_line(&out, "e1") && applied_line(&out, "s1"),
        "{}",
        text(&out)
    );
    past_max_lag(stopped).await;
    c.edges[1].0.signal("-CONT");
    let (b, cs) = c.get(c.edge(1)).await;
    assert_eq!(b, "v4", "the stopped edge's first answer: {cs}");
    c.wait_applied("e2 caught up after SIGCONT").await;

    // The same with the log restarted (killed, started on the same state
    // and port) between the purge and SIGCONT: the log survives, the edge
    // catches up.
    c.warm("v4").await;
    let stopped = c.stop_e2().await;
    c.set_page("v5");
    let out = c.purge_without_e2();
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("e2"),
        "{}",
        text(&out)
    );
    let head = c.head().await;
    c.restart_log(head).await;
    past_max_lag(stopped).await;
    c.edges[1].0.signal("-CONT");
    let (b, cs) = c.get(c.edge(1)).await;
    assert_eq!(b, "v5", "first answer after the log restarted: {cs}");
    c.wait_applied("e2 caught up after the log restarted").await;

    // And with the log still down at SIGCONT (the edge is cut off): the
    // first answer can only be right through the max-lag guarantee.
    c.warm("v5").await;
    let stopped = c.stop_e2().await;
    c.set_page("v6");
    let out = c.purge_without_e2();
    assert!(!out.status.success(), "{}", text(&out));
    let head = c.head().await;
    c.kill_log();
    past_max_lag(stopped).await;
    c.edges[1].0.signal("-CONT");
    let (b, cs) = c.get(c.edge(1)).await;
    assert_eq!(
        b,
        "v6",
        "first answer while cut off from the log: {cs}\n{}",
        c.edges[1].0.log()
    );
    assert!(cs.contains("purge-lag"), "Cache-Status says why: {cs}");
    c.restart_log(head).await;

    // Status: every node has applied all of it, and the CLI says so.
    let status = c.wait_caught_up("every node caught up at the end").await;
    let out = c.purge(&["--status"]);
    assert!(out.status.success(), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains(&format!("log head: {head}")), "{table}");
    for n in &status.nodes {
        let line = table.lines().find(|l| l.starts_with(&n.node)).unwrap_or("");
        assert!(
            n.applied > 0 && line.contains(&format!(" {} ", n.applied)),
            "{}: {table}",
            n.node
        );
        if backend == Backend::Http {
            assert_eq!(n.applied, head, "{}: one sequence for every tier", n.node);
        }
    }
}

#[tokio::test]
async fn every_purge_kind_reaches_every_node_over_the_director() {
    every_purge_kind_reaches_every_node(Backend::Http).await;
}

#[tokio::test]
async fn every_purge_kind_reaches_every_node_over_nats() {
    every_purge_kind_reaches_every_node(Backend::Nats).await;
}

/// `--prefix`, `--tag` and `--all` cluster-wide: what they name misses on
/// both edges, and the first edge's answer shows the shield missing too
/// (the second edge then gets the shield's fresh copy); what they do not
/// name stays a hit everywhere.
async fn every_purge_kind_reaches_every_node(backend: Backend) {
    let c = Cluster::start(backend).await;
    // What every cache holds of each file, and what the origin has now.
    let mut cached: Vec<(&str, String)> = FILES[1..]
        .iter()
        .map(|(path, _)| (*path, format!("{path} v1")))
        .collect();
    for (path, body) in &cached {
        c.set_file(path, body);
    }
    for (version, (kind, args, purged)) in [
        (
            "prefix",
            &["--prefix", "cdn.test/a/"][..],
            &["a/one.txt", "a/two.txt"][..],
        ),
        ("tag", &["--tag", "b"][..], &["b/three.txt"][..]),
        (
            "all",
            &["--all"][..],
            &["a/one.txt", "a/two.txt", "b/three.txt"][..],
        ),
    ]
    .into_iter()
    .enumerate()
    {
        for (path, body) in &cached {
            c.warm_path(path, body).await;
        }
        let fresh = |path: &str| format!("{path} v{}", version + 2);
        for (path, _) in &cached {
            c.set_file(path, &fresh(path));
        }
        let out = c.purge(args);
        assert!(out.status.success(), "{kind}: {}", text(&out));
        for node in ["s1", "e1", "e2"] {
            assert!(applied_line(&out, node), "{kind} {node}: {}", text(&out));
        }
        for (path, was) in &mut cached {
            let now = fresh(path);
            let (b0, cs0) = c.get_path(c.edge(0), path).await;
            let (b1, cs1) = c.get_path(c.edge(1), path).await;
            if purged.contains(path) {
                assert_eq!((&b0, &b1), (&now, &now), "{kind} {path}: {cs0} / {cs1}");
                assert!(
                    last_hop(&cs0).contains("fwd=miss") && last_hop(&cs1).contains("fwd=miss"),
                    "{kind} {path}: the edges miss: {cs0} / {cs1}"
                );
                assert!(
                    cs0.contains(", ") && first_hop(&cs0).contains("fwd=miss"),
                    "{kind} {path}: the shield missed too: {cs0}"
                );
                *was = now;
            } else {
                assert_eq!(
                    (&b0, &b1),
                    (&*was, &*was),
                    "{kind} {path} is kept: {cs0} / {cs1}\n{}",
                    text(&out) + &c.edges[0].0.log()
                );
                assert!(
                    last_hop(&cs0).contains("; hit") && last_hop(&cs1).contains("; hit"),
                    "{kind} {path}: still hits: {cs0} / {cs1}"
                );
                let (b, cs) = c.get_path(&c.shield_url, path).await;
                assert!(
                    b == *was && last_hop(&cs).contains("; hit"),
                    "{kind} {path}: {cs}"
                );
            }
        }
    }
}

#[tokio::test]
async fn the_log_refuses_missing_wrong_and_under_scoped_tokens() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("reader.token"),
        "reader-secret-0123456789\n",
    )
    .expect("write");
    let file = format!(
        "{}\n[[purge-log.token]]\nname = \"reader\"\nsecret-file = \"reader.token\"\nscopes = [\"read\"]\n",
        cluster_file(None)
    );
    std::fs::write(dir.path().join("director.toml"), file).expect("write");
    let director = start_director(dir.path(), "127.0.0.1:0");
    let admin = format!("http://{}", director.addr("admin listening").await);
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let purge = |token: Option<&'static str>| {
        let mut r = http
            .post(format!("{admin}/v1/purge?timeout_ms=0"))
            .json(&serde_json::json!({ "urls": [URL] }));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        async move { r.send().await.expect("send").status().as_u16() }
    };
    assert_eq!(purge(None).await, 401);
    assert_eq!(purge(Some("wrong-token-0123456789")).await, 401);
    assert_eq!(purge(Some("reader-secret-0123456789")).await, 403);
    assert_eq!(purge(Some(TOKEN)).await, 200);
    // As `curl -d` sends it: no JSON content type.
    let raw = |body: &'static str| {
        let r = http
            .post(format!("{admin}/v1/purge?timeout_ms=0"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        async move {
            let r = r.send().await.expect("send");
            (r.status().as_u16(), r.text().await.unwrap_or_default())
        }
    };
    let (status, body) = raw(r#"{"tags": ["product-42"]}"#).await;
    assert_eq!(status, 200, "{body}");
    let report: meridian_purge::Report = serde_json::from_str(&body).expect("a report");
    assert_eq!(report.seq, 2);
    assert_eq!(report.unconfirmed(), ["s1", "e1", "e2"], "nobody follows");
    let (status, body) = raw(r#"{"tagz": ["x"]}"#).await;
    assert!(status == 400 && body.contains("tagz"), "{status} {body}");
    let (status, _) = raw(r#"{}"#).await;
    assert_eq!(status, 400, "a purge must name something");
    let status = http
        .get(format!("{admin}/v1/purges/status"))
        .bearer_auth("reader-secret-0123456789")
        .send()
        .await
        .expect("send");
    assert_eq!(status.status(), 200);
    let poll = http
        .get(format!("{admin}/v1/purges?after=0&node=x&tier=edge&wait=0"))
        .bearer_auth("reader-secret-0123456789")
        .send()
        .await
        .expect("send");
    assert_eq!(poll.status(), 403, "following needs the follow scope");
}

#[test]
fn a_director_keeping_the_log_needs_an_admin_listener() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("director.toml"), cluster_file(None)).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["director", "--listen", "127.0.0.1:0", "--config"])
        .arg(dir.path().join("director.toml"))
        .arg("--purge-state")
        .arg(dir.path().join("state"))
        .output()
        .expect("run meridian");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--admin-listen"), "{stderr}");
}
