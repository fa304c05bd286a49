//! The keeper's state directory: `log.jsonl`, one [`LogEntry`] per line,
//! appended and `fsync`ed before an append is answered, and `log-id`, a
//! random id created once, so a node can tell a reset log from the history
//! it followed.
//!
//! On open the file is read back. A torn last line (the process died while
//! writing it, so it was never answered) is cut off; any other line that
//! does not parse, or a gap in the sequence numbers, is an error naming the
//! file and the line: a log that lost entries in the middle cannot promise
//! anything, and the operator must decide (deleting the directory starts a
//! new log, and every node then purges everything once).
//!
//! The file is compacted when it holds twice the retained entries: the
//! retained tail is written to `log.jsonl.tmp`, synced and renamed over.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::LogEntry;

const LOG_FILE: &str = "log.jsonl";
const ID_FILE: &str = "log-id";

/// Why the state directory cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("purge log state {}: {reason}", path.display())]
pub struct StoreError {
    pub path: PathBuf,
    pub reason: String,
}

fn err(path: &Path, reason: impl std::fmt::Display) -> StoreError {
    StoreError {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// The open state directory.
pub struct Store {
    dir: PathBuf,
    file: File,
    /// Lines in the file (to know when to compact).
    lines: usize,
}

/// What was on disk.
pub struct Loaded {
    pub log_id: String,
    pub entries: VecDeque<LogEntry>,
}

impl Store {
    /// Opens (creating if needed) `dir` and reads the log back.
    pub fn open(dir: &Path) -> Result<(Store, Loaded), StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| err(dir, e))?;
        let log_id = load_or_create_id(dir)?;
        let path = dir.join(LOG_FILE);
        let (entries, lines, good_len) = match std::fs::read(&path) {
            Ok(bytes) => parse(&path, &bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (VecDeque::new(), 0, 0),
            Err(e) => return Err(err(&path, e)),
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| err(&path, e))?;
        // Cut a torn last line, so the next append starts on a line of its own.
        let len = file.metadata().map_err(|e| err(&path, e))?.len();
        if len != good_len {
            tracing::warn!(file = %path.display(), "ignoring a torn last line of the purge log");
            file.set_len(good_len).map_err(|e| err(&path, e))?;
            file.sync_all().map_err(|e| err(&path, e))?;
        }
        let store = Store {
            dir: dir.to_path_buf(),
            file,
            lines,
        };
        Ok((store, Loaded { log_id, entries }))
    }

    /// Appends one entry and syncs it to disk. On failure (a full disk)
    /// the file is cut back to where it was, so no partial line is left
    /// for the next append to follow.
    pub fn append(&mut self, entry: &LogEntry) -> Result<(), StoreError> {
        let path = self.dir.join(LOG_FILE);
        let mut line = serde_json::to_vec(entry).map_err(|e| err(&path, e))?;
        line.push(b'\n');
        let before = self.file.metadata().map_err(|e| err(&path, e))?.len();
        let written = self
            .file
            .write_all(&line)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            let _ = self.file.set_len(before);
            return Err(err(&path, e));
        }
        self.lines += 1;
        Ok(())
    }

    /// Whether the file holds more than twice `retained` lines.
    pub fn wants_compaction(&self, retained: usize) -> bool {
        self.lines > retained.saturating_mul(2).max(16)
    }

    /// Rewrites the file with `keep` only (write, sync, rename, sync dir).
    pub fn compact<'a>(
        &mut self,
        keep: impl Iterator<Item = &'a LogEntry>,
    ) -> Result<(), StoreError> {
        let path = self.dir.join(LOG_FILE);
        let tmp = self.dir.join("log.jsonl.tmp");
        let mut out = std::io::BufWriter::new(File::create(&tmp).map_err(|e| err(&tmp, e))?);
        let mut lines = 0;
        for e in keep {
            serde_json::to_writer(&mut out, e).map_err(|e| err(&tmp, e))?;
            out.write_all(b"\n").map_err(|e| err(&tmp, e))?;
            lines += 1;
        }
        let f = out.into_inner().map_err(|e| err(&tmp, e.error()))?;
        f.sync_all().map_err(|e| err(&tmp, e))?;
        // The append handle is opened before the rename, so it is never
        // left pointing at the replaced file.
        let file = OpenOptions::new()
            .append(true)
            .open(&tmp)
            .map_err(|e| err(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| err(&path, e))?;
        self.file = file;
        self.lines = lines;
        sync_dir(&self.dir)?;
        Ok(())
    }
}

/// The entries, the line count and the length of the well-formed prefix.
fn parse(path: &Path, bytes: &[u8]) -> Result<(VecDeque<LogEntry>, usize, u64), StoreError> {
    let mut entries: VecDeque<LogEntry> = VecDeque::new();
    let mut offset = 0usize;
    let mut lines = 0usize;
    let mut rest = bytes;
    while !rest.is_empty() {
        let (line, complete) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], true),
            None => (rest, false),
        };
        let consumed = line.len() + usize::from(complete);
        let is_last = consumed == rest.len();
        let entry = match serde_json::from_slice::<LogEntry>(line) {
            Ok(entry) if complete => entry,
            // The last line, without its newline or not parsing: torn by a
            // crash while it was written, so never answered.
            _ if is_last => break,
            Ok(_) => break,
            Err(e) => return Err(err(path, format!("line {}: {e}", lines + 1))),
        };
        if let Some(prev) = entries.back()
            && entry.seq != prev.seq + 1
        {
            return Err(err(
                path,
                format!(
                    "line {}: sequence {} follows {} (entries are missing)",
                    lines + 1,
                    entry.seq,
                    prev.seq
                ),
            ));
        }
        entries.push_back(entry);
        lines += 1;
        offset += consumed;
        rest = &rest[consumed..];
    }
    Ok((entries, lines, offset as u64))
}

fn load_or_create_id(dir: &Path) -> Result<String, StoreError> {
    let path = dir.join(ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(&path, e)),
    }
    let id = random_id();
    let tmp = dir.join("log-id.tmp");
    let mut f = File::create(&tmp).map_err(|e| err(&tmp, e))?;
    f.write_all(format!("{id}\n").as_bytes())
        .map_err(|e| err(&tmp, e))?;
    f.sync_all().map_err(|e| err(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| err(&path, e))?;
    sync_dir(dir)?;
    Ok(id)
}

/// 128 random bits in hex. The standard library's `RandomState` is seeded
/// from the OS's random source per process; two hashers give two
/// independent 64-bit values (mixed with the time and pid for good measure).
fn random_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let word = |salt: u64| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(salt);
        h.write_u32(std::process::id());
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.finish()
    };
    format!("{:016x}{:016x}", word(1), word(2))
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| err(dir, e))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Purge;

    fn entry(seq: u64) -> LogEntry {
        LogEntry {
            seq,
            at_ms: 1,
            purge: Purge::url(format!("http://a.example/{seq}")),
        }
    }

    #[test]
    fn reopen_keeps_entries_and_the_id_and_cuts_a_torn_line() {
        let dir = tempfile::tempdir().expect("test");
        let (mut s, l) = Store::open(dir.path()).expect("test");
        assert!(l.entries.is_empty());
        let id = l.log_id.clone();
        assert_eq!(id.len(), 32);
        s.append(&entry(1)).expect("test");
        s.append(&entry(2)).expect("test");
        drop(s);
        let path = dir.path().join(LOG_FILE);
        let mut f = OpenOptions::new().append(true).open(&path).expect("test");
        f.write_all(br#"{"seq":3,"at_ms":1,"pur"#).expect("test");
        drop(f);
        let (mut s, l) = Store::open(dir.path()).expect("test");
        assert_eq!(l.log_id, id);
        assert_eq!(l.entries.len(), 2);
        s.append(&entry(3)).expect("test");
        drop(s);
        let (_, l) = Store::open(dir.path()).expect("test");
        assert_eq!(
            l.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [1, 2, 3]
        );
    }

    #[test]
    fn a_gap_or_a_bad_middle_line_is_an_error_naming_the_line() {
        let dir = tempfile::tempdir().expect("test");
        let path = dir.path().join(LOG_FILE);
        let line = |e: &LogEntry| serde_json::to_string(e).expect("test");
        std::fs::write(&path, format!("{}\n{}\n", line(&entry(1)), line(&entry(3)))).expect("test");
        let e = Store::open(dir.path()).err().expect("gap").to_string();
        assert!(e.contains("line 2") && e.contains("log.jsonl"), "{e}");
        std::fs::write(&path, format!("garbage\n{}\n", line(&entry(1)))).expect("test");
        let e = Store::open(dir.path()).err().expect("bad").to_string();
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn compaction_keeps_the_tail() {
        let dir = tempfile::tempdir().expect("test");
        let (mut s, _) = Store::open(dir.path()).expect("test");
        let all: Vec<_> = (1..=40).map(entry).collect();
        for e in &all {
            s.append(e).expect("test");
        }
        assert!(s.wants_compaction(10));
        s.compact(all[30..].iter()).expect("test");
        s.append(&entry(41)).expect("test");
        drop(s);
        let (_, l) = Store::open(dir.path()).expect("test");
        assert_eq!(l.entries.front().map(|e| e.seq), Some(31));
        assert_eq!(l.entries.back().map(|e| e.seq), Some(41));
        assert_eq!(l.entries.len(), 11);
    }
}
