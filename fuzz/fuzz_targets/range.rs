//! `Range` and `If-Range` against a stored response. The first two bytes
//! are the body length; then lines: Range, If-Range, ETag, Last-Modified.
//! Invariants: no panic; a partial answer holds ascending, disjoint,
//! non-adjacent ranges inside the body; the rendered body is exactly the
//! requested bytes (one part) or framed parts whose length is announced.
#![no_main]

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;
use meridian_cache::range::{self, RangeOutcome};

fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let len = u64::from(u16::from_le_bytes(*len)) % 4096;
    let mut lines = rest.split(|&b| b == b'\n');
    let mut req = HeaderMap::new();
    let mut resp = HeaderMap::new();
    let put = |map: &mut HeaderMap, name, line: Option<&[u8]>| {
        if let Some(v) = line.and_then(|l| HeaderValue::from_bytes(l).ok()) {
            map.append(name, v);
        }
    };
    put(&mut req, header::RANGE, lines.next());
    put(&mut req, header::IF_RANGE, lines.next());
    put(&mut resp, header::ETAG, lines.next());
    put(&mut resp, header::LAST_MODIFIED, lines.next());
    let outcome = range::evaluate(&req, &resp, len);
    if let Some(v) = req.get(header::RANGE) {
        // Without If-Range the outcome is the parse of the value alone.
        if req.get(header::IF_RANGE).is_none() {
            assert_eq!(outcome, range::parse_range(v.as_bytes(), len));
        }
    }
    let RangeOutcome::Partial(ranges) = outcome else {
        return;
    };
    assert!(!ranges.is_empty());
    for r in &ranges {
        assert!(r.start <= r.end && r.end < len, "{r:?} outside {len}");
    }
    for w in ranges.windows(2) {
        assert!(w[0].end + 1 < w[1].start, "{w:?} not disjoint");
    }
    let body = Bytes::from((0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let out = range::render(&ranges, &body, None, "b");
    if let [one] = ranges.as_slice() {
        assert_eq!(&out.body[..], &body[one.start as usize..=one.end as usize]);
    } else {
        let framing = range::multipart(&ranges, len, None, "b");
        assert_eq!(framing.content_length, out.body.len() as u64);
    }
});
