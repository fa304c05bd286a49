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
    /// Open descriptors but body memory files: those are cache contents,
    /// as many as bodies stored (at most `cache.zero-copy-max-bodies`), so
    /// they are not a leak when they grow.
    pub fds: u64,
}

/// Resident memory and the entries of `/proc/PID/fd`; `None` if it is gone
/// (or this is not Linux). Resident memory is `VmRSS` without its shared
/// memory part, plus every body memory file (`cache.zero-copy-*`) whole:
/// `VmRSS` counts those only where their mapping has been read, and a hit
/// sent with `sendfile` never reads it.
pub fn sample(pid: u32, at: Duration) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |field: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    let rss = kib("VmRSS:")?.saturating_sub(kib("RssShmem:").unwrap_or(0)) * 1024;
    let (fds, body_files) = descriptors(pid)?;
    Some(Sample {
        at: at.as_secs_f64(),
        pid,
        rss_bytes: rss + body_files.iter().sum::<u64>(),
        fds,
    })
}

/// The count of open descriptors other than body memory files, and the
/// size of each body memory file.
fn descriptors(pid: u32) -> Option<(u64, Vec<u64>)> {
    let mut fds = 0u64;
    let mut body_files = Vec::new();
    // Bounded by the process's own fd limit.
    for e in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten() {
        let path = e.path();
        let is_body = std::fs::read_link(&path)
            .is_ok_and(|t| meridian_sendfile::is_body_file(&t.to_string_lossy()));
        if is_body {
            body_files.push(std::fs::metadata(&path).map_or(0, |m| m.len()));
        } else {
            fds += 1;
        }
    }
    Some((fds, body_files))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_files_count_as_memory_not_as_descriptors() {
        // Memory files, and files on the large-page tmpfs (where it can be
        // mounted: elsewhere both rounds make memory files).
        for (large_pages, size) in [(false, (8 << 20) + 12_345), (true, (4 << 20) + 4_321)] {
            let pid = std::process::id();
            let body = vec![7u8; size];
            let mapped = meridian_sendfile::Mapping::new(1, 1 << 10)
                .large_pages(large_pages)
                .join([&body[..]], body.len())
                .expect("mapped");
            let (_, files) = descriptors(pid).expect("this process");
            assert!(files.contains(&(size as u64)), "{files:?}");
            assert!(sample(pid, Duration::ZERO).expect("sample").rss_bytes >= size as u64);
            drop(mapped);
            let (_, files) = descriptors(pid).expect("this process");
            assert!(
                !files.contains(&(size as u64)),
                "closed with its last handle"
            );
        }
    }
}
