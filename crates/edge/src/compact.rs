//! Preparing a response for storage. Header values and single-chunk bodies
//! that come from hyper are `Bytes` slices of the connection's read buffer:
//! storing them as they are would pin that whole buffer (kilobytes) for as
//! long as the entry lives. So a stored entry gets its own compact copy —
//! every header value in one allocation, the body in an exact-size one — a
//! copy made once on the miss path so that the hit path copies nothing.
//!
//! The stored headers are also made ready to send: `Content-Length` is set
//! from the body and this node's `Via` hop is appended, so a hit only adds
//! `Age` and `Cache-Status`.

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http::header::{self, HeaderValue};

/// A copy of `h` whose values share one allocation, with `Content-Length`
/// and this hop's `Via` in place.
pub fn stored_headers(h: &HeaderMap, body_len: usize, via: &HeaderValue) -> HeaderMap {
    let via_value = with_via(h, via);
    let total: usize = h.iter().map(|(_, v)| v.len()).sum::<usize>()
        + via_value.as_ref().map_or(0, |v| v.len())
        + 20;
    let mut buf = BytesMut::with_capacity(total);
    let mut spans = Vec::with_capacity(h.len() + 2);
    for (name, value) in h {
        if name == header::VIA || name == header::CONTENT_LENGTH {
            continue;
        }
        let start = buf.len();
        buf.extend_from_slice(value.as_bytes());
        spans.push((name.clone(), start, buf.len()));
    }
    let len_start = buf.len();
    buf.extend_from_slice(body_len.to_string().as_bytes());
    let len_end = buf.len();
    let via_span = via_value.map(|v| {
        let s = buf.len();
        buf.extend_from_slice(v.as_bytes());
        (s, buf.len())
    });
    let all = buf.freeze();
    let mut out = HeaderMap::with_capacity(spans.len() + 2);
    for (name, s, e) in spans {
        if let Some(v) = value_of(&all, s, e) {
            out.append(name, v);
        }
    }
    if let Some(v) = value_of(&all, len_start, len_end) {
        out.insert(header::CONTENT_LENGTH, v);
    }
    if let Some((s, e)) = via_span
        && let Some(v) = value_of(&all, s, e)
    {
        out.insert(header::VIA, v);
    }
    out
}

/// The body in an allocation of its own size.
pub fn stored_body(body: Bytes) -> Bytes {
    if body.is_empty() {
        Bytes::new()
    } else {
        Bytes::copy_from_slice(&body)
    }
}

fn value_of(all: &Bytes, s: usize, e: usize) -> Option<HeaderValue> {
    // The bytes came from valid header values, so this only fails if a
    // value was invalid to begin with; such a value is dropped.
    HeaderValue::from_maybe_shared(all.slice(s..e)).ok()
}

/// The combined `Via` with this hop last, unless it is last already (a 304
/// merged into stored headers keeps the hop the entry was stored with).
fn with_via(h: &HeaderMap, via: &HeaderValue) -> Option<HeaderValue> {
    let mut lines = h.get_all(header::VIA).iter().peekable();
    if lines.peek().is_none() {
        return Some(via.clone());
    }
    let mut s = Vec::new();
    for (i, v) in lines.enumerate() {
        if i > 0 {
            s.extend_from_slice(b", ");
        }
        s.extend_from_slice(v.as_bytes());
    }
    if !s.ends_with(via.as_bytes()) {
        s.extend_from_slice(b", ");
        s.extend_from_slice(via.as_bytes());
    }
    HeaderValue::from_maybe_shared(Bytes::from(s)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_headers_share_one_buffer_and_are_ready_to_send() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("999"));
        h.append("x-a", HeaderValue::from_static("1"));
        h.append("x-a", HeaderValue::from_static("2"));
        h.insert(header::VIA, HeaderValue::from_static("1.1 shield-1"));
        let via = HeaderValue::from_static("1.1 edge-1");
        let s = stored_headers(&h, 12, &via);
        assert_eq!(s[header::CONTENT_LENGTH], "12");
        assert_eq!(s[header::CONTENT_TYPE], "text/plain");
        assert_eq!(s.get_all("x-a").iter().collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(s[header::VIA], "1.1 shield-1, 1.1 edge-1");
        // Storing again (a 304 merge) does not add the hop twice.
        let again = stored_headers(&s, 12, &via);
        assert_eq!(again[header::VIA], "1.1 shield-1, 1.1 edge-1");
        let base = s[header::CONTENT_TYPE].as_bytes().as_ptr() as usize;
        let other = s["x-a"].as_bytes().as_ptr() as usize;
        assert!(other.abs_diff(base) < 64, "values live in one small buffer");
    }

    #[test]
    fn stored_body_is_an_exact_copy() {
        let big = Bytes::from(vec![7u8; 8192]);
        let slice = big.slice(10..20);
        let stored = stored_body(slice.clone());
        assert_eq!(stored, slice);
        assert_ne!(stored.as_ptr(), slice.as_ptr());
    }
}
