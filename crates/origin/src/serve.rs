//! The one request handler: method check → path → file → preconditions →
//! range → response. Every failure becomes a status code here and nowhere
//! else; nothing a client sends can make it panic.

use std::collections::VecDeque;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName};
use http::{HeaderValue, Method, StatusCode, Uri};
use meridian_cache::conditional::{self, Precondition};
use meridian_cache::range::{self, RangeOutcome};
use tokio::fs::File;
use tokio::io::AsyncReadExt;

use crate::SMALL_FILE;
use crate::body::{self, Piece};
use crate::path::{self as paths, Reject};

pub(crate) struct Shared {
    pub(crate) root: PathBuf,
    pub(crate) cache_control: Option<HeaderValue>,
    pub(crate) delay: Duration,
    pub(crate) rate: Option<NonZeroU64>,
    pub(crate) surrogate_key_by_dir: bool,
}

pub(crate) async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    req: HeaderMap,
) -> Response {
    let started = Instant::now();
    if !shared.delay.is_zero() {
        tokio::time::sleep(shared.delay).await;
    }
    let mut resp = answer(&shared, &method, uri.path(), &req).await;
    if let Some(rate) = shared.rate {
        resp = resp.map(|b| body::paced(b, rate, uri.path().to_owned()));
    }
    tracing::debug!(
        %method,
        path = uri.path(),
        status = resp.status().as_u16(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "origin request"
    );
    resp
}

async fn answer(shared: &Shared, method: &Method, uri_path: &str, req: &HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        let mut resp = status_only(StatusCode::METHOD_NOT_ALLOWED);
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return resp;
    }
    let file = match paths::relative(uri_path) {
        Ok(rel) => paths::resolve(&shared.root, &rel).await,
        Err(e) => Err(e),
    };
    let path = match file {
        Ok(path) => path,
        Err(Reject::BadPath) => return status_only(StatusCode::BAD_REQUEST),
        // A file named `healthz` in the root wins over the built-in check.
        Err(Reject::NotFound) if uri_path == "/healthz" => return healthz(method),
        Err(Reject::NotFound) => return status_only(StatusCode::NOT_FOUND),
    };
    match serve_file(shared, method, &path, req).await {
        Ok(resp) => resp,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => status_only(StatusCode::NOT_FOUND),
        Err(e) => {
            tracing::warn!(path = %path.display(), "cannot read file: {e}");
            status_only(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

async fn serve_file(
    shared: &Shared,
    method: &Method,
    path: &Path,
    req: &HeaderMap,
) -> std::io::Result<Response> {
    let mut file = File::open(path).await?;
    let meta = file.metadata().await?;
    if !meta.is_file() {
        return Err(std::io::ErrorKind::NotFound.into());
    }
    let mtime = meta.modified().ok();
    let mut headers = representation_headers(shared, path, meta.len(), mtime);

    // Small files are read whole; from here on `data` is the truth for
    // lengths, even if the file changed since `metadata`.
    let data = if meta.len() <= SMALL_FILE {
        let mut buf = Vec::with_capacity(meta.len() as usize);
        (&mut file).take(SMALL_FILE).read_to_end(&mut buf).await?;
        Some(Bytes::from(buf))
    } else {
        None
    };
    let len = data.as_ref().map_or(meta.len(), |d| d.len() as u64);

    match conditional::evaluate(method, req, StatusCode::OK, &headers) {
        Precondition::Proceed => {}
        Precondition::NotModified => {
            let mut resp = status_only(StatusCode::NOT_MODIFIED);
            *resp.headers_mut() = conditional::not_modified_headers(&headers);
            return Ok(resp);
        }
        Precondition::Failed => return Ok(status_only(StatusCode::PRECONDITION_FAILED)),
    }

    // RFC 9110 §14.2 defines Range for GET only; HEAD gets the 200 headers.
    let outcome = if method == Method::GET {
        range::evaluate(req, &headers, len)
    } else {
        RangeOutcome::Full
    };
    let content_type = headers.get(header::CONTENT_TYPE).cloned();
    let (status, content_length, body) = match outcome {
        RangeOutcome::Unsatisfiable => {
            let mut resp = status_only(StatusCode::RANGE_NOT_SATISFIABLE);
            resp.headers_mut()
                .insert(header::CONTENT_RANGE, range::unsatisfied_content_range(len));
            copy(
                &headers,
                resp.headers_mut(),
                &[header::DATE, header::ACCEPT_RANGES],
            );
            return Ok(resp);
        }
        RangeOutcome::Full => match data {
            Some(data) => (StatusCode::OK, len, Body::from(data)),
            None => (
                StatusCode::OK,
                len,
                body::stream(file, [Piece::File { pos: 0, len }].into()),
            ),
        },
        RangeOutcome::Partial(ranges) => match data {
            Some(data) => {
                let part = range::render(&ranges, &data, content_type.as_ref(), &boundary());
                headers.insert(header::CONTENT_TYPE, part.content_type);
                if let Some(cr) = part.content_range {
                    headers.insert(header::CONTENT_RANGE, cr);
                }
                (
                    StatusCode::PARTIAL_CONTENT,
                    part.body.len() as u64,
                    Body::from(part.body),
                )
            }
            None => {
                let (pieces, n) = large_pieces(&ranges, len, content_type.as_ref(), &mut headers);
                (StatusCode::PARTIAL_CONTENT, n, body::stream(file, pieces))
            }
        },
    };
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(content_length));
    // HEAD: same headers as GET, including Content-Length, and no body.
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        body
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    Ok(resp)
}

/// Pieces and total length for a 206 of a file too large to hold in memory.
fn large_pieces(
    ranges: &[range::ByteRange],
    len: u64,
    content_type: Option<&HeaderValue>,
    headers: &mut HeaderMap,
) -> (VecDeque<Piece>, u64) {
    if let [one] = ranges {
        headers.insert(header::CONTENT_RANGE, range::content_range(*one, len));
        return (
            [Piece::File {
                pos: one.start,
                len: one.size(),
            }]
            .into(),
            one.size(),
        );
    }
    let framing = range::multipart(ranges, len, content_type, &boundary());
    headers.insert(header::CONTENT_TYPE, framing.content_type);
    let mut pieces = VecDeque::with_capacity(framing.parts.len() * 2 + 1);
    for (head, r) in framing.parts {
        pieces.push_back(Piece::Literal(head));
        pieces.push_back(Piece::File {
            pos: r.start,
            len: r.size(),
        });
    }
    pieces.push_back(Piece::Literal(framing.epilogue));
    (pieces, framing.content_length)
}

/// Headers describing the file, shared by 200, 206, 304 and HEAD.
fn representation_headers(
    shared: &Shared,
    path: &Path,
    len: u64,
    mtime: Option<SystemTime>,
) -> HeaderMap {
    let mut h = HeaderMap::new();
    let (etag, last_modified) = validators(len, mtime);
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if let Some(v) = last_modified.and_then(|lm| HeaderValue::from_str(&lm).ok()) {
        h.insert(header::LAST_MODIFIED, v);
    }
    let mime = mime_guess::from_path(path)
        .first_raw()
        .unwrap_or("application/octet-stream");
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(now) = HeaderValue::from_str(&httpdate::fmt_http_date(SystemTime::now())) {
        h.insert(header::DATE, now);
    }
    if let Some(cc) = &shared.cache_control {
        h.insert(header::CACHE_CONTROL, cc.clone());
    }
    if shared.surrogate_key_by_dir
        && let Some(tag) = top_dir(&shared.root, path)
    {
        h.insert(HeaderName::from_static("surrogate-key"), tag);
    }
    h
}

/// The first folder of `path` under `root`, as a header value (none for a
/// file in the root, or a name that is not a valid header value).
fn top_dir(root: &Path, path: &Path) -> Option<HeaderValue> {
    let mut parts = path.strip_prefix(root).ok()?.components();
    let first = parts.next()?;
    parts.next()?;
    HeaderValue::from_str(first.as_os_str().to_str()?).ok()
}

/// A strong ETag from size and mtime nanoseconds (`"<len hex>-<mtime hex>"`),
/// and Last-Modified when the mtime is one `httpdate` can format (it panics
/// outside 1970..=9999, so we check first).
fn validators(len: u64, mtime: Option<SystemTime>) -> (String, Option<String>) {
    const YEAR_10000: u64 = 253_402_300_800;
    let Some(mtime) = mtime else {
        return (format!("\"{len:x}\""), None);
    };
    match mtime.duration_since(UNIX_EPOCH) {
        Ok(d) => {
            let lm = (d.as_secs() < YEAR_10000).then(|| httpdate::fmt_http_date(mtime));
            (format!("\"{len:x}-{:x}\"", d.as_nanos()), lm)
        }
        Err(before) => (
            format!("\"{len:x}-p{:x}\"", before.duration().as_nanos()),
            None,
        ),
    }
}

/// A multipart boundary unlikely to occur in any file: a per-process
/// counter mixed with the clock. It need not be secret, only distinct.
pub(crate) fn boundary() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!("meridian-{t:016x}-{n:x}")
}

pub(crate) fn healthz(method: &Method) -> Response {
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from("ok")
    };
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(2u64));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

pub(crate) fn status_only(status: StatusCode) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = status;
    resp
}

fn copy(from: &HeaderMap, to: &mut HeaderMap, names: &[HeaderName]) {
    for name in names {
        if let Some(v) = from.get(name) {
            to.insert(name.clone(), v.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::top_dir;

    #[test]
    fn surrogate_key_is_the_first_folder_under_the_root() {
        let root = Path::new("/srv/www");
        let tag =
            |p: &str| top_dir(root, Path::new(p)).map(|v| v.to_str().unwrap_or("").to_owned());
        assert_eq!(tag("/srv/www/a/b/c.txt").as_deref(), Some("a"));
        assert_eq!(tag("/srv/www/img/x.png").as_deref(), Some("img"));
        assert_eq!(
            tag("/srv/www/page.txt"),
            None,
            "a file in the root has none"
        );
        assert_eq!(tag("/elsewhere/a/b.txt"), None);
    }
}
