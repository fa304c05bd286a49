//! Turning a stored entry, an upstream response or an error into the
//! response the client gets. Every response leaves through here, so every
//! one carries `Cache-Status` and `Via`.

use std::time::SystemTime;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Response, StatusCode};
use meridian_cache::conditional::{self, Precondition};
use meridian_cache::range::{self, ByteRange, RangeOutcome};
use meridian_cache::status::CACHE_STATUS;
use meridian_cache::{CacheStatus, Entry, Freshness};

use crate::body::Body;
use crate::headers::append_list;

/// What every response needs to know about this node.
pub struct Stamp {
    /// RFC 9211 cache name (an sf-token or sf-string).
    pub name: String,
    /// `1.1 <name>` for `Via`.
    pub via: HeaderValue,
    /// `2 <name>`: the `Via` hop of a request received over HTTP/2 (RFC
    /// 9110 §7.6.3: the protocol the message was received with).
    pub via_h2: HeaderValue,
}

impl Stamp {
    pub fn new(name: &str) -> Self {
        let token = name.replace(|c: char| !c.is_ascii_graphic(), "-");
        let via = HeaderValue::from_str(&format!("1.1 {token}"))
            .unwrap_or_else(|_| HeaderValue::from_static("1.1 meridian"));
        let via_h2 = HeaderValue::from_str(&format!("2 {token}"))
            .unwrap_or_else(|_| HeaderValue::from_static("2 meridian"));
        Stamp {
            name: meridian_cache::status::cache_name(name),
            via,
            via_h2,
        }
    }

    /// Adds `Cache-Status`, and our `Via` hop unless the headers are a
    /// stored entry's (which carry it already, see `compact`).
    fn finish(&self, headers: &mut HeaderMap, status: &CacheStatus, add_via: bool) {
        let value = status.header_value(&self.name, headers.get(&CACHE_STATUS));
        headers.insert(CACHE_STATUS.clone(), value);
        if add_via {
            append_list(headers, &header::VIA, &self.via);
        }
    }
}

/// `Age` values for the first hour are made once and shared (a clone is a
/// reference count), sparing the hit path an allocation.
fn age_value(secs: u64) -> HeaderValue {
    static TABLE: std::sync::OnceLock<Vec<HeaderValue>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| (0..3600u64).map(HeaderValue::from).collect());
    match table.get(secs as usize) {
        Some(v) => v.clone(),
        None => HeaderValue::from(secs),
    }
}

/// What the head of a response (stored, or still filling) says to one
/// request, before any body byte is needed.
pub enum Plan {
    /// Answered from the head alone: 304, 412, 416.
    Done(Response<Body>),
    /// The whole representation, with these headers.
    Full(HeaderMap),
    /// Byte ranges of it (one or several), with these headers.
    Ranges(HeaderMap, Vec<ByteRange>),
    /// A Range request while the length is not known yet: answer it from
    /// the finished entry.
    NeedsLength,
}

/// Judges a request against a response head: preconditions (RFC 9110 §13)
/// first, then ranges (§14) when the length is known. `h` is the response's
/// headers with room for `Age` and `Cache-Status`.
#[allow(clippy::too_many_arguments)]
pub fn plan(
    stamp: &Stamp,
    method: &Method,
    req: &HeaderMap,
    code: StatusCode,
    mut h: HeaderMap,
    freshness: &Freshness,
    status: &mut CacheStatus,
    now: SystemTime,
    len: Option<u64>,
) -> Plan {
    let age = freshness.current_age(now).as_secs();
    if status.ttl.is_none() {
        status.ttl = Some(freshness.ttl(now));
    }
    match conditional::evaluate(method, req, code, &h) {
        Precondition::NotModified => {
            let cs = h.remove(&CACHE_STATUS);
            let mut h = conditional::not_modified_headers(&h);
            h.insert(header::AGE, age_value(age));
            if let Some(cs) = cs {
                h.insert(CACHE_STATUS.clone(), cs);
            }
            return Plan::Done(build(
                stamp,
                StatusCode::NOT_MODIFIED,
                h,
                Body::Empty,
                status,
                true,
            ));
        }
        Precondition::Failed => {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            return Plan::Done(build(
                stamp,
                StatusCode::PRECONDITION_FAILED,
                h,
                Body::from("412 Precondition Failed\n"),
                status,
                true,
            ));
        }
        Precondition::Proceed => {}
    }
    h.insert(header::AGE, age_value(age));
    // RFC 9110 §14.2: GET is the only method with range handling; HEAD
    // gets the 200's headers.
    if code != StatusCode::OK || method != Method::GET {
        return Plan::Full(h);
    }
    let Some(len) = len else {
        return if req.contains_key(header::RANGE) {
            Plan::NeedsLength
        } else {
            Plan::Full(h)
        };
    };
    match range::evaluate(req, &h, len) {
        RangeOutcome::Full => Plan::Full(h),
        RangeOutcome::Unsatisfiable => {
            h.insert(header::CONTENT_RANGE, range::unsatisfied_content_range(len));
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
            Plan::Done(build(
                stamp,
                StatusCode::RANGE_NOT_SATISFIABLE,
                h,
                Body::Empty,
                status,
                false,
            ))
        }
        RangeOutcome::Partial(ranges) => Plan::Ranges(h, ranges),
    }
}

/// Serves a stored response, answering the client's preconditions
/// (RFC 9110 §13) and ranges (§14) from it.
pub fn from_entry(
    stamp: &Stamp,
    method: &Method,
    req: &HeaderMap,
    entry: &Entry,
    status: &mut CacheStatus,
    now: SystemTime,
) -> Response<Body> {
    // The response's headers, rebuilt from the compact stored fields with
    // room for Age and Cache-Status; the preconditions are judged on them.
    let h = entry.headers.to_map(2);
    let len = entry.body.len() as u64;
    let plan = plan(
        stamp,
        method,
        req,
        entry.status,
        h,
        &entry.freshness,
        status,
        now,
        Some(len),
    );
    match plan {
        Plan::Done(r) => r,
        // A stored body always has a length.
        Plan::NeedsLength => error(
            stamp,
            StatusCode::INTERNAL_SERVER_ERROR,
            "stored body without a length",
            status,
        ),
        Plan::Ranges(h, ranges) => ranges_of(stamp, h, &entry.body, &ranges, status),
        Plan::Full(h) => {
            // Content-Length and Via are in the stored headers already.
            let body = if method == Method::HEAD {
                Body::Empty
            } else {
                Body::Full(Some(entry.body.clone()))
            };
            build(stamp, entry.status, h, body, status, false)
        }
    }
}

/// A 206 of `ranges` of `body` (multipart when there are several).
pub fn ranges_of(
    stamp: &Stamp,
    mut h: HeaderMap,
    body: &Bytes,
    ranges: &[ByteRange],
    status: &CacheStatus,
) -> Response<Body> {
    // Only a multipart answer needs a boundary (and its scan).
    let boundary = if ranges.len() > 1 {
        boundary(body)
    } else {
        String::new()
    };
    let rb = range::render(ranges, body, h.get(header::CONTENT_TYPE), &boundary);
    h.insert(header::CONTENT_TYPE, rb.content_type);
    match rb.content_range {
        Some(cr) => {
            h.insert(header::CONTENT_RANGE, cr);
        }
        None => {
            h.remove(header::CONTENT_RANGE);
        }
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(rb.body.len()));
    build(
        stamp,
        StatusCode::PARTIAL_CONTENT,
        h,
        Body::from(rb.body),
        status,
        false,
    )
}

/// A response whose body is a fill in progress (or a range of it), read
/// as it arrives. `h` came from [`plan`]; a single range is streamed, the
/// caller answers several from the finished entry.
pub fn from_fill(
    stamp: &Stamp,
    code: StatusCode,
    mut h: HeaderMap,
    body: Body,
    range: Option<(ByteRange, u64)>,
    status: &CacheStatus,
) -> Response<Body> {
    match range {
        Some((r, len)) => {
            h.insert(header::CONTENT_RANGE, range::content_range(r, len));
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(r.size()));
            build(stamp, StatusCode::PARTIAL_CONTENT, h, body, status, false)
        }
        None => build(stamp, code, h, body, status, false),
    }
}

/// A `multipart/byteranges` boundary that does not occur in the body, as
/// RFC 9110 §14.6 requires (clients find parts by scanning for it). Only
/// multi-range requests pay for the scan.
fn boundary(body: &Bytes) -> String {
    let body = &body[..];
    (0u32..64)
        .map(|salt| format!("meridian-byteranges-{:x}-{salt}", body.len()))
        .find(|b| !body.windows(b.len()).any(|w| w == b.as_bytes()))
        .unwrap_or_else(|| "meridian-byteranges-fallback-boundary".to_owned())
}

/// Passes an upstream response on (hop-by-hop fields already removed).
pub fn passthrough(
    stamp: &Stamp,
    status_code: StatusCode,
    headers: HeaderMap,
    body: Body,
    status: &CacheStatus,
) -> Response<Body> {
    build(stamp, status_code, headers, body, status, true)
}

/// A short error answer generated here (502, 503, 504, 400...).
pub fn error(
    stamp: &Stamp,
    code: StatusCode,
    message: &str,
    status: &CacheStatus,
) -> Response<Body> {
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let text = format!(
        "{} {}: {message}\n",
        code.as_u16(),
        code.canonical_reason().unwrap_or("")
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(text.len()));
    build(stamp, code, h, Body::from(Bytes::from(text)), status, true)
}

fn build(
    stamp: &Stamp,
    code: StatusCode,
    mut headers: HeaderMap,
    body: Body,
    status: &CacheStatus,
    add_via: bool,
) -> Response<Body> {
    stamp.finish(&mut headers, status, add_via);
    let mut r = Response::new(body);
    *r.status_mut() = code;
    *r.headers_mut() = headers;
    r
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use bytes::Bytes;
    use meridian_cache::{Freshness, Variant};

    use super::*;

    fn entry(body: Vec<u8>) -> Entry {
        let freshness = Freshness::fresh_for(Duration::from_secs(60), SystemTime::now());
        Entry::new(
            StatusCode::OK,
            HeaderMap::new(),
            Bytes::from(body),
            freshness,
            Variant::default(),
        )
    }

    #[test]
    fn multipart_boundary_never_occurs_in_the_body_rfc9110_14_6() {
        // A body that contains the first candidate boundary on purpose.
        let mut body = b"xx".to_vec();
        let len = 2 + "meridian-byteranges-00-0".len();
        body.extend_from_slice(format!("meridian-byteranges-{len:x}-0").as_bytes());
        assert_eq!(body.len(), len);
        let e = entry(body.clone());
        let b = boundary(&e.body);
        assert_ne!(b, format!("meridian-byteranges-{len:x}-0"));
        assert!(!body.windows(b.len()).any(|w| w == b.as_bytes()));
    }
}
