//! The `meridian cluster` commands as a user runs them, over the built
//! binary: `cluster up --check-config`, `cluster up` on the shipped file
//! (moved to free ports), `cluster stop|start|status` against it through
//! the token `up` wrote, a second `up` that names the taken port, and
//! Ctrl-C (SIGINT) stopping everything cleanly.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_meridian"));
    c.env_remove("MERIDIAN_ADMIN_TOKEN").env("NO_COLOR", "1");
    c
}

/// The shipped cluster file with every port moved to a free one (each old
/// port to one new port, so edges that shared an address still do) and the
/// state in `state`.
fn moved_config(dir: &Path, state: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("config/cluster.toml")).expect("shipped file");
    let mut ports: HashMap<String, u16> = HashMap::new();
    let mut out = String::new();
    let mut rest = text.as_str();
    // Hold every new port until all are chosen, so none is picked twice.
    let mut held = Vec::new();
    while let Some(i) = rest.find("127.0.0.1:") {
        let (before, after) = rest.split_at(i + "127.0.0.1:".len());
        out.push_str(before);
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        let new = *ports.entry(digits.clone()).or_insert_with(|| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            let p = l.local_addr().expect("addr").port();
            held.push(l);
            p
        });
        out.push_str(&new.to_string());
        rest = &after[digits.len()..];
    }
    out.push_str(rest);
    drop(held);
    let out = out.replacen(
        "# state-dir = \"/tmp/meridian-cluster-8080\"",
        &format!("state-dir = {:?}", state.display().to_string()),
        1,
    );
    // geo-data/ is found relative to the working directory, the repository.
    let path = dir.join("cluster.toml");
    std::fs::write(&path, out).expect("write config");
    path
}

/// A running `meridian cluster up`, killed when dropped.
struct Up {
    child: Child,
    stdout: mpsc::Receiver<String>,
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn up(config: &Path) -> Up {
    let mut child = bin()
        .args(["cluster", "up", "--config"])
        .arg(config)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start meridian cluster up");
    let (tx, rx) = mpsc::channel();
    if let Some(out) = child.stdout.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
    }
    Up { child, stdout: rx }
}

impl Up {
    /// Everything it printed up to `Ctrl-C stops everything.`
    fn summary(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut text = String::new();
        while Instant::now() < deadline {
            match self.stdout.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    text.push_str(&line);
                    text.push('\n');
                    if line.contains("Ctrl-C stops everything") {
                        return text;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        panic!("cluster up did not finish starting:\n{text}");
    }
}

fn run(args: &[&str], config: &Path) -> Output {
    bin()
        .args(args)
        .arg("--config")
        .arg(config)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run meridian")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn check_config_accepts_the_shipped_file_and_names_a_bad_key() {
    let root = env!("CARGO_MANIFEST_DIR");
    let ok = run(
        &["cluster", "up", "--check-config"],
        &Path::new(root).join("config/cluster.toml"),
    );
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(text(&ok).contains("configuration OK"), "{}", text(&ok));

    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.toml");
    let shipped =
        std::fs::read_to_string(Path::new(root).join("config/cluster.toml")).expect("read");
    std::fs::write(
        &bad,
        shipped.replacen("[origin]\n", "[origin]\nsize = 3\n", 1),
    )
    .expect("write");
    let out = run(&["cluster", "up", "--check-config"], &bad);
    assert!(!out.status.success());
    let t = text(&out);
    assert!(
        t.contains("bad.toml") && t.contains("origin") && t.contains("size"),
        "{t}"
    );
}

#[test]
fn up_stop_start_status_and_ctrl_c() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let config = moved_config(dir.path(), &state);
    let cluster = up(&config);
    let summary = cluster.summary();
    assert!(
        summary.contains("eu-west") && summary.contains("Dashboard"),
        "{summary}"
    );
    assert!(
        state.join("admin.token").exists(),
        "the token is in the state directory"
    );

    // A second cluster on the same file names the taken port and its key.
    let second = run(&["cluster", "up"], &config);
    assert!(!second.status.success());
    let t = text(&second);
    assert!(
        t.contains("is taken") && t.contains("cluster.dashboard"),
        "{t}"
    );

    // Faults through the control API, with the token `up` wrote.
    let stop = run(&["cluster", "stop", "eu-west"], &config);
    assert!(stop.status.success(), "{}", text(&stop));
    // `status` shows the dashboard's last poll (each second): ask until
    // one after the stop (bounded).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = run(&["cluster", "status"], &config);
        let t = text(&status);
        let line = t
            .lines()
            .find(|l| l.contains("eu-west"))
            .unwrap_or_default()
            .to_owned();
        if line.contains("down") || line.contains("stopped") {
            break;
        }
        assert!(Instant::now() < deadline, "eu-west never shown down:\n{t}");
        std::thread::sleep(Duration::from_millis(300));
    }
    let start = run(&["cluster", "start", "eu-west"], &config);
    assert!(start.status.success(), "{}", text(&start));
    let unknown = run(&["cluster", "stop", "no-such-node"], &config);
    assert!(!unknown.status.success());
    assert!(
        text(&unknown).contains("no-such-node"),
        "{}",
        text(&unknown)
    );

    // Ctrl-C: it exits by itself, successfully, and frees its ports.
    let mut cluster = cluster;
    let pid = cluster.child.id().to_string();
    let killed = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let code = loop {
        if let Some(code) = cluster.child.try_wait().expect("wait") {
            break code;
        }
        assert!(
            Instant::now() < deadline,
            "cluster up did not stop on SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(code.success(), "{code}");
    let again = up(&config);
    let _ = again.summary();
}

/// `meridian simulate` as the README runs it: against a running `cluster
/// up` (found through the cluster file and the token in its state
/// directory), a short seeded run that prints the tables and writes the
/// report and its figures.
#[test]
fn simulate_drives_a_running_cluster_up_and_writes_the_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let config = moved_config(dir.path(), &state);
    let cluster = up(&config);
    let _ = cluster.summary();
    let report = dir.path().join("report.html");
    let json = dir.path().join("report.json");
    let out = bin()
        .args([
            "simulate",
            "--clients",
            "40",
            "--requests",
            "240",
            "--duration",
            "1500ms",
            "--seed",
            "7",
            "--config",
        ])
        .arg(&config)
        .arg("--report")
        .arg(&report)
        .arg("--json")
        .arg(&json)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .output()
        .expect("run meridian simulate");
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    for routing in ["nearest edge", "random edge", "straight to"] {
        assert!(t.contains(routing), "{routing} missing:\n{t}");
    }
    let html = std::fs::read_to_string(&report).expect("the report");
    assert!(
        html.contains("<svg") && html.contains("id=\"map\""),
        "{html:.300}"
    );
    let figures: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("the figures")).expect("JSON");
    let routings = figures["routings"].as_array().expect("routings");
    assert_eq!(routings.len(), 3);
    for r in routings {
        assert_eq!(r["overall"]["requests"], 240, "{r}");
    }
    assert_eq!(figures["params"]["workload"]["seed"], 7);
    assert!(
        figures["params"]["cluster"]
            .as_str()
            .is_some_and(|c| c.contains("cluster up")),
        "{}",
        figures["params"]
    );
    // The simulator reports its own CPU use.
    assert!(
        figures["params"]["sim_cpu"]["cpu_ms"].is_u64(),
        "{}",
        figures["params"]
    );
}

/// `meridian simulate --spawn`: no cluster running, it starts one in its
/// own process on ports from the OS, with its token and purge log in a
/// directory of its own (not the file's state directory, which a running
/// `cluster up` may be using), and stops it at the end.
#[test]
fn simulate_spawn_runs_its_own_cluster_and_leaves_the_files_state_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let config = moved_config(dir.path(), &state);
    let report = dir.path().join("spawned.html");
    let out = bin()
        .args([
            "simulate",
            "--spawn",
            "--clients",
            "10",
            "--requests",
            "40",
            "--duration",
            "500ms",
            "--routing",
            "director,origin",
            "--config",
        ])
        .arg(&config)
        .arg("--report")
        .arg(&report)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .output()
        .expect("run meridian simulate");
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("spawned in-process"), "{t}");
    assert!(
        !t.contains("random edge"),
        "only the routings asked for:\n{t}"
    );
    assert!(report.exists());
    assert!(!state.exists(), "the file's state directory was written");
}
