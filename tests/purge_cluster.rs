//! The cluster purge log end to end, over real processes of the built
//! binary: an origin, the director keeping the log, one shield and two
//! edges, all following it. `meridian purge` takes a URL out of every node
//! (hard and soft); a purge sent while an edge is stopped (SIGSTOP) is not
//! served by that edge after SIGCONT, also when the log's keeper was
//! restarted in between; `/v1/purges/status` shows what each node applied.
//!
//! Every process binds port 0 and the test reads the address it logs.

#[path = "support/eventually.rs"]
mod eventually;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eventually::eventually;

const TOKEN: &str = "cluster-test-token-0123456789";
const MAX_LAG: Duration = Duration::from_secs(1);
const SITE: &str = "cdn.test";
const URL: &str = "http://cdn.test/page.txt";

/// A child process of the `meridian` binary, killed when dropped.
struct Proc {
    name: &'static str,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    fn start(name: &'static str, args: &[String]) -> Proc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_meridian"))
            .args(args)
            .env("MERIDIAN_ADMIN_TOKEN", TOKEN)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start meridian");
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
                    .and_then(|l| addr_in(l));
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

/// The cluster: a director keeping the log, a shield, two edges.
struct Cluster {
    dir: tempfile::TempDir,
    origin_root: PathBuf,
    _origin: Proc,
    director: Option<Proc>,
    director_admin: String,
    _shield: Proc,
    shield_url: String,
    edges: Vec<(Proc, String)>,
    http: reqwest::Client,
}

/// The cluster file: the nodes to wait for and the log's settings. The
/// edges' and the shield's addresses are not needed by the log (health
/// checks are off).
fn cluster_file(log: Option<&str>) -> String {
    let url = log.map(|l| format!("url = \"{l}\"\n")).unwrap_or_default();
    format!(
        r#"
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

[purge-log]
{url}max-lag = "1s"
poll-wait = "400ms"
confirm-timeout = "3s"
"#
    )
}

impl Cluster {
    async fn start() -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let origin_root = dir.path().join("www");
        std::fs::create_dir_all(&origin_root).expect("mkdir");
        std::fs::write(origin_root.join("page.txt"), "v1").expect("write");
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
            ],
        );
        let origin_addr = origin.addr("origin listening").await;
        std::fs::write(dir.path().join("director.toml"), cluster_file(None)).expect("write");
        let director = start_director(dir.path(), "127.0.0.1:0");
        let director_admin = format!("http://{}", director.addr("admin listening").await);
        std::fs::write(
            dir.path().join("cluster.toml"),
            cluster_file(Some(&director_admin)),
        )
        .expect("write");
        let follow = |name: &str| {
            vec![
                s("--name"),
                s(name),
                s("--control"),
                director_admin.clone(),
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
        let c = Cluster {
            dir,
            origin_root,
            _origin: origin,
            director: Some(director),
            director_admin,
            _shield: shield,
            shield_url,
            edges,
            http,
        };
        c.wait_until_all_follow().await;
        c
    }

    /// Every node has polled the log and is not lagging.
    async fn wait_until_all_follow(&self) {
        eventually(
            "every node follows the log",
            Duration::from_secs(10),
            || async {
                self.status().await.is_some_and(|s| {
                    s.nodes.len() == 3 && s.nodes.iter().all(|n| !n.lagging && n.behind == 0)
                })
            },
        )
        .await;
    }

    async fn status(&self) -> Option<meridian_purge::Status> {
        let r = self
            .http
            .get(format!("{}/v1/purges/status", self.director_admin))
            .bearer_auth(TOKEN)
            .send()
            .await
            .ok()?;
        r.json().await.ok()
    }

    fn set_page(&self, body: &str) {
        std::fs::write(self.origin_root.join("page.txt"), body).expect("write");
    }

    /// GET /page.txt from `base`: body and Cache-Status.
    async fn get(&self, base: &str) -> (String, String) {
        let r = self
            .http
            .get(format!("{base}/page.txt"))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 200, "{base}");
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
        let cluster = self.dir.path().join("cluster.toml");
        let mut args = vec![
            "purge",
            "--config",
            cluster.to_str().expect("path"),
            "--deadline",
            "2s",
        ];
        args.extend_from_slice(extra);
        Command::new(env!("CARGO_BIN_EXE_meridian"))
            .args(&args)
            .env("MERIDIAN_ADMIN_TOKEN", TOKEN)
            .env("NO_COLOR", "1")
            .output()
            .expect("run meridian purge")
    }

    /// Stops e2 once its last poll has been answered (the keeper holds a
    /// poll at most `poll-wait`, 400ms), so no entry sent later waits in
    /// its socket for the moment it resumes.
    async fn stop_e2(&self) -> Instant {
        self.edges[1].0.signal("-STOP");
        let stopped = Instant::now();
        eventually(
            "e2's last poll was answered",
            Duration::from_secs(5),
            || async {
                self.status().await.is_some_and(|s| {
                    s.nodes
                        .iter()
                        .any(|n| n.node == "e2" && n.last_seen_ms.is_some_and(|ms| ms > 600))
                })
            },
        )
        .await;
        stopped
    }

    /// Kills the keeper and starts it again on its state dir and port;
    /// waits until it answers with the log's `head`.
    async fn restart_keeper(&mut self, head: u64) {
        let admin = self.director_admin.trim_start_matches("http://").to_owned();
        drop(self.director.take());
        self.director = Some(start_director(self.dir.path(), &admin));
        eventually(
            "the keeper is back with its log",
            Duration::from_secs(10),
            || async { self.status().await.is_some_and(|s| s.head == head) },
        )
        .await;
    }

    /// Every node has applied entry `seq`.
    async fn wait_applied(&self, seq: u64) {
        eventually(
            &format!("every node applied {seq}"),
            Duration::from_secs(5),
            || async {
                self.status()
                    .await
                    .is_some_and(|s| s.nodes.len() == 3 && s.nodes.iter().all(|n| n.applied == seq))
            },
        )
        .await;
    }

    /// Both edges and the shield hold `body` (the edges hit).
    async fn warm(&self, body: &str) {
        for i in 0..2 {
            let (b, _) = self.get(self.edge(i)).await;
            assert_eq!(b, body);
            let (b, cs) = self.get(self.edge(i)).await;
            assert_eq!(b, body);
            assert!(last_hop(&cs).contains("; hit"), "edge {i} warm: {cs}");
        }
        let (b, cs) = self.get(&self.shield_url).await;
        assert_eq!(
            (b.as_str(), last_hop(&cs).contains("; hit")),
            (body, true),
            "{cs}"
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

#[tokio::test]
async fn a_cluster_purge_reaches_every_node_even_one_stopped_or_a_restarted_keeper() {
    let mut c = Cluster::start().await;

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
    let out = c.purge(&["--url", URL]);
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
    let head = c.status().await.expect("status").head;
    c.wait_applied(head).await;

    // The same with the keeper restarted (same state dir, same port)
    // between the purge and SIGCONT: the log survives, the edge catches up.
    c.warm("v4").await;
    let stopped = c.stop_e2().await;
    c.set_page("v5");
    let out = c.purge(&["--url", URL]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("e2"),
        "{}",
        text(&out)
    );
    c.restart_keeper(head + 1).await;
    past_max_lag(stopped).await;
    c.edges[1].0.signal("-CONT");
    let (b, cs) = c.get(c.edge(1)).await;
    assert_eq!(b, "v5", "first answer after the keeper restarted: {cs}");
    c.wait_applied(head + 1).await;

    // And with the keeper still down at SIGCONT (the edge is cut off): the
    // first answer can only be right through the max-lag guarantee.
    c.warm("v5").await;
    let stopped = c.stop_e2().await;
    c.set_page("v6");
    let out = c.purge(&["--url", URL]);
    assert!(!out.status.success(), "{}", text(&out));
    drop(c.director.take());
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
    c.restart_keeper(head + 2).await;
    let head = head + 2;

    // Status: every node at the head.
    c.wait_applied(head).await;
    let out = c.purge(&["--status"]);
    assert!(out.status.success(), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains(&format!("log head: {head}")), "{table}");
    for node in ["s1", "e1", "e2"] {
        let line = table.lines().find(|l| l.starts_with(node)).unwrap_or("");
        assert!(line.contains(&format!(" {head} ")), "{node}: {table}");
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
