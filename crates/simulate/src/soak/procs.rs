//! The node processes, seen from outside as an operator would: RSS and
//! open file descriptors from `/proc/PID`, and panics in their logs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

/// One look at one process.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sample {
    /// Seconds since the soak started.
    pub at: f64,
    pub pid: u32,
    pub rss_bytes: u64,
    pub fds: u64,
}

/// `VmRSS` and the entries of `/proc/PID/fd`; `None` if it is gone (or
/// this is not Linux).
pub fn sample(pid: u32, at: Duration) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    // Bounded by the process's own fd limit.
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some(Sample {
        at: at.as_secs_f64(),
        pid,
        rss_bytes: kib * 1024,
        fds,
    })
}

/// Every child's pid, by node name, from `STATE-DIR/nodes/NAME.pid`.
pub fn child_pids(nodes_dir: &Path) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(nodes_dir) else {
        return out;
    };
    for e in dir.flatten().take(10_000) {
        let p = e.path();
        if p.extension().and_then(|x| x.to_str()) != Some("pid") {
            continue;
        }
        let (Some(name), Ok(text)) = (
            p.file_stem().and_then(|s| s.to_str()),
            std::fs::read_to_string(&p),
        ) else {
            continue;
        };
        if let Ok(pid) = text.trim().parse() {
            out.insert(name.to_owned(), pid);
        }
    }
    out
}

/// The logs to scan: every `*.log` in the nodes folder, plus `extra`.
pub fn logs(nodes_dir: &Path, extra: &[PathBuf]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(nodes_dir)
        .map(|d| {
            d.flatten()
                .take(10_000)
                .map(|e| e.path())
                .filter(|p| p.extension().and_then(|x| x.to_str()) == Some("log"))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out.extend(extra.iter().cloned());
    out
}

/// Lines that say a thread panicked (Rust's own message), per log file;
/// at most `keep` of them kept per file.
pub fn panics(files: &[PathBuf], keep: usize) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for f in files {
        let Ok(text) = std::fs::read(f) else {
            continue;
        };
        let text = String::from_utf8_lossy(&text);
        let hits: Vec<String> = text
            .lines()
            .filter(|l| l.contains("panicked at") || l.contains("panic="))
            .take(keep)
            .map(|l| l.chars().take(300).collect())
            .collect();
        if !hits.is_empty() {
            out.insert(f.display().to_string(), hits);
        }
    }
    out
}
