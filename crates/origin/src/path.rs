//! Maps a request path to a file under the root without ever leaving it.
//!
//! Two defences, because each alone has holes: the decoded path is refused
//! if any segment is `..` (or contains a NUL or a backslash), which stops
//! traversal before touching the disk; and the file that would be served is
//! canonicalised and must still lie under the canonical root, which stops
//! symlinks pointing outside.

use std::path::{Path, PathBuf};

/// Why a request path maps to no file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reject {
    /// Traversal attempt or undecodable path: 400.
    BadPath,
    /// No such file (or it lies outside the root): 404.
    NotFound,
}

/// The decoded, relative form of a URI path (`/a/%20b` → `a/ b`).
pub(crate) fn relative(uri_path: &str) -> Result<PathBuf, Reject> {
    let decoded = percent_decode(uri_path.as_bytes()).ok_or(Reject::BadPath)?;
    // Split after decoding, so `..%2F` is seen as the `..` it becomes.
    let text = String::from_utf8(decoded).map_err(|_| Reject::BadPath)?;
    let mut out = PathBuf::new();
    for segment in text.split('/') {
        match segment {
            "" | "." => {}
            ".." => return Err(Reject::BadPath),
            s if s.contains(['\0', '\\']) => return Err(Reject::BadPath),
            s => out.push(s),
        }
    }
    Ok(out)
}

/// The canonical file to serve for `rel` under the canonical `root`: a
/// directory means its `index.html`.
pub(crate) async fn resolve(root: &Path, rel: &Path) -> Result<PathBuf, Reject> {
    let mut path = inside(root, &root.join(rel)).await?;
    if tokio::fs::metadata(&path)
        .await
        .map_err(|_| Reject::NotFound)?
        .is_dir()
    {
        path = inside(root, &path.join("index.html")).await?;
    }
    Ok(path)
}

async fn inside(root: &Path, path: &Path) -> Result<PathBuf, Reject> {
    let real = tokio::fs::canonicalize(path)
        .await
        .map_err(|_| Reject::NotFound)?;
    if real.starts_with(root) {
        Ok(real)
    } else {
        tracing::debug!(path = %path.display(), "refusing path that resolves outside the root");
        Err(Reject::NotFound)
    }
}

/// `%XX` decoding; a `%` not followed by two hex digits is malformed.
fn percent_decode(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' {
            let hex = input.get(i + 1..i + 3)?;
            let hi = (hex[0] as char).to_digit(16)?;
            let lo = (hex[1] as char).to_digit(16)?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(input[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_and_odd_bytes_are_refused() {
        let cases = [
            ("/a/b.txt", Ok(PathBuf::from("a/b.txt"))),
            ("/a//./b%20c", Ok(PathBuf::from("a/b c"))),
            ("/", Ok(PathBuf::new())),
            ("/../etc/passwd", Err(Reject::BadPath)),
            ("/a/%2e%2e/%2E%2E/x", Err(Reject::BadPath)),
            ("/a/..%2f..%2fx", Err(Reject::BadPath)),
            ("/a%5c..%5cx", Err(Reject::BadPath)),
            ("/a%00", Err(Reject::BadPath)),
            ("/a%zz", Err(Reject::BadPath)),
            ("/a%2", Err(Reject::BadPath)),
            ("/%ff", Err(Reject::BadPath)),
        ];
        for (input, want) in cases {
            assert_eq!(relative(input), want, "{input}");
        }
    }
}
