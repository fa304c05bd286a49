//! Preparing a response for storage. The stored headers are made ready to
//! send: `Content-Length` is set from the body and this node's `Via` hop is
//! appended, so a hit only adds `Age` and `Cache-Status`. (The cache core
//! then keeps them in compact form, see `meridian_cache::Fields`.)
//!
//! (Bodies are joined into one exact-size buffer when a fill completes, see
//! `meridian_cache::filling`, so an entry never pins hyper's read buffers.)

use bytes::Bytes;
use http::HeaderMap;
use http::header::{self, HeaderValue};

/// `h` with `Content-Length` and this hop's `Via` in place.
pub fn stored_headers(h: &HeaderMap, body_len: usize, via: &HeaderValue) -> HeaderMap {
    let mut out = h.clone();
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(body_len));
    if let Some(v) = with_via(h, via) {
        out.insert(header::VIA, v);
    }
    out
}

/// The head of a fill: `h` with this hop's `Via`, and `Content-Length`
/// only when the upstream declared one (else the body is sent chunked and
/// the stored entry gets its real length at the end).
pub fn fill_headers(h: &HeaderMap, declared: Option<u64>, via: &HeaderValue) -> HeaderMap {
    let mut out = h.clone();
    match declared {
        Some(n) => {
            out.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        }
        None => {
            out.remove(header::CONTENT_LENGTH);
        }
    }
    if let Some(v) = with_via(h, via) {
        out.insert(header::VIA, v);
    }
    out
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
    fn stored_headers_are_ready_to_send() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("999"));
        h.insert(header::VIA, HeaderValue::from_static("1.1 shield-1"));
        let via = HeaderValue::from_static("1.1 edge-1");
        let s = stored_headers(&h, 12, &via);
        assert_eq!(s[header::CONTENT_LENGTH], "12");
        assert_eq!(s[header::CONTENT_TYPE], "text/plain");
        assert_eq!(s[header::VIA], "1.1 shield-1, 1.1 edge-1");
        // Storing again (a 304 merge) does not add the hop twice.
        let again = stored_headers(&s, 12, &via);
        assert_eq!(again[header::VIA], "1.1 shield-1, 1.1 edge-1");
    }
}
