//! A real browser for tests: headless Chromium (Debian's `chromium`
//! package) loads a page and prints the DOM as rendered after its scripts
//! ran, or saves a screenshot.
//!
//! ```ignore
//! if browser::unavailable() { return; }            // MERIDIAN_SKIP_BROWSER=1
//! let dom = browser::dump_dom(&format!("http://{dash}/?poll"));
//! browser::screenshot(&url, Path::new("dash.png"), (1400, 1000));
//! ```
//!
//! Both block (run them in `spawn_blocking` beside an async server) and
//! are bounded: Chromium is killed after [`LIMIT`]. The page runs for
//! [`BUDGET_MS`] of virtual time (`--virtual-time-budget`) before the dump
//! or screenshot: its timers fire, and virtual time waits for every
//! pending fetch, so the dump is deterministic. The one catch: a fetch
//! that never ends holds virtual time still, and an `EventSource` is one
//! (Chromium then runs until it is killed). So load the dashboard as
//! `/?poll`: it then polls `/api/state` instead of following
//! `/api/events`. (Real time, `--timeout`, dumps at the load event or the
//! timeout, whichever Chromium decides; tried, and flaky.)
//! Each run gets its own profile directory, and background networking
//! (updates, sync, safe browsing) is off: nothing leaves the machine.

#![allow(dead_code)] // each test binary uses its own part

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The longest one Chromium run may take.
pub const LIMIT: Duration = Duration::from_secs(60);

/// Virtual milliseconds the page runs before the dump or screenshot.
pub const BUDGET_MS: u32 = 5000;

/// Set to `1` to skip browser tests on a machine without Chromium.
pub const SKIP_ENV: &str = "MERIDIAN_SKIP_BROWSER";

/// The Chromium binary: `MERIDIAN_CHROMIUM`, else the first of
/// `chromium`, `chromium-browser`, `google-chrome` on the `PATH`.
pub fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MERIDIAN_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser", "google-chrome"] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// True (after saying so) when the test should skip: no Chromium and
/// `MERIDIAN_SKIP_BROWSER=1`. Without Chromium and without that, panics
/// saying how to install it.
pub fn unavailable() -> bool {
    if chromium().is_some() {
        return false;
    }
    if std::env::var(SKIP_ENV).is_ok_and(|v| v == "1") {
        eprintln!("skipped: no Chromium found and {SKIP_ENV}=1");
        return true;
    }
    panic!(
        "this test needs a headless Chromium: `apt-get install chromium` \
         (or set MERIDIAN_CHROMIUM=/path/to/chrome; {SKIP_ENV}=1 skips it)"
    );
}

/// The page at `url` as rendered: the serialized DOM after
/// [`BUDGET_MS`] of virtual time.
pub fn dump_dom(url: &str) -> String {
    let out = tempfile::NamedTempFile::new().expect("temp file");
    run(&["--dump-dom".into(), url.into()], Some(out.path()));
    std::fs::read_to_string(out.path()).expect("dom")
}

/// A PNG of the page at `url` in a `size` (width, height) window.
pub fn screenshot(url: &str, path: &Path, size: (u32, u32)) {
    let _ = std::fs::remove_file(path);
    run(
        &[
            format!("--screenshot={}", path.display()),
            format!("--window-size={},{}", size.0, size.1),
            "--hide-scrollbars".into(),
            url.into(),
        ],
        None,
    );
    let png = std::fs::read(path).unwrap_or_default();
    assert!(
        png.starts_with(b"\x89PNG"),
        "no screenshot at {}",
        path.display()
    );
}

/// Runs Chromium headless with `args`, stdout to `stdout` (else dropped);
/// killed past [`LIMIT`].
fn run(args: &[String], stdout: Option<&Path>) {
    let chrome = chromium().expect("chromium (check browser::unavailable first)");
    let profile = tempfile::tempdir().expect("profile dir");
    let mut command = Command::new(&chrome);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--metrics-recording-only",
            "--mute-audio",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--virtual-time-budget={BUDGET_MS}"))
        .args(args)
        .stdin(Stdio::null());
    // MERIDIAN_BROWSER_LOG=1: Chromium's log, with the page's console, on
    // stderr.
    if std::env::var("MERIDIAN_BROWSER_LOG").is_ok_and(|v| v == "1") {
        command.arg("--enable-logging=stderr").arg("--v=0");
    } else {
        command.stderr(Stdio::null());
    }
    match stdout {
        Some(p) => {
            command.stdout(std::fs::File::create(p).expect("stdout file"));
        }
        None => {
            command.stdout(Stdio::null());
        }
    }
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", chrome.display()));
    let deadline = Instant::now() + LIMIT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromium did not finish within {LIMIT:?}: {args:?}");
            }
            Err(e) => panic!("chromium: {e}"),
        }
    }
}

/// The attributes of each element whose start tag begins with `start`
/// (`<div class="node"`) and which has `data-node="{node}"`.
pub fn element(dom: &str, start: &str, node: &str) -> Option<Vec<(String, String)>> {
    let needle = format!("data-node=\"{node}\"");
    let mut from = 0;
    while let Some(i) = dom[from..].find(start) {
        let at = from + i;
        let end = dom[at..].find('>').map_or(dom.len(), |e| at + e);
        let tag = &dom[at..end];
        if tag.contains(&needle) {
            return Some(attributes(tag));
        }
        from = end;
    }
    None
}

/// `key="value"` pairs of a start tag (as Chromium serializes them: always
/// double-quoted).
fn attributes(tag: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = tag;
    while let Some(eq) = rest.find("=\"") {
        let key = rest[..eq]
            .rsplit(|c: char| c.is_whitespace())
            .next()
            .unwrap_or("")
            .to_owned();
        let after = &rest[eq + 2..];
        let close = after.find('"').unwrap_or(after.len());
        out.push((key, after[..close].to_owned()));
        rest = after.get(close + 1..).unwrap_or("");
    }
    out
}

/// One attribute of [`element`]'s answer.
pub fn attr<'a>(attrs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}
