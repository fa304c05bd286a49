//! RFC 9110 §14 byte ranges over a complete representation of known length:
//! parsing `Range`, applying `If-Range` (§13.1.5), and laying out a single
//! part (`Content-Range`) or a `multipart/byteranges` body (§14.6).
//!
//! Policy, where the RFC leaves a choice to the server:
//! - a malformed `Range`, or one in a unit other than `bytes`, is ignored
//!   (the whole representation is sent), as §14.2 allows;
//! - satisfiable ranges are sorted and overlapping or adjacent ones are
//!   coalesced (§14.6 permits it), so [`RangeOutcome::Partial`] always holds
//!   ascending, disjoint, non-adjacent ranges;
//! - more than [`MAX_RANGES`] range-specs, or specs whose sizes add up to
//!   more than the whole body (only possible when they overlap), are treated
//!   as abuse (§17.15) and ignored;
//! - a zero-length body satisfies no int-range (416), and a suffix range on
//!   it is ignored (200 with the empty body): §14.1.1 calls the suffix
//!   satisfiable, but `Content-Range` cannot express an empty range.
//!
//! Callers apply this to GET only (§14.2 defines ranges for no other method).

use bytes::{BufMut, Bytes, BytesMut};
use http::HeaderValue;
use http::header::{self, HeaderMap};

use crate::conditional::{parse_date, parse_single};

/// Most range-specs honoured in one `Range` header.
pub const MAX_RANGES: usize = 100;

/// An inclusive byte range `start..=end` within a representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    /// Inclusive, like the `last-pos` of RFC 9110 §14.1.1.
    pub end: u64,
}

impl ByteRange {
    /// The number of bytes covered (never zero for a range built here).
    pub fn size(&self) -> u64 {
        self.end.saturating_sub(self.start).saturating_add(1)
    }
}

/// What to send for a GET that may carry a `Range` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeOutcome {
    /// 200 with the whole representation: no `Range`, or one to ignore.
    Full,
    /// 206 with these ranges (ascending, disjoint, at least one).
    Partial(Vec<ByteRange>),
    /// 416 with `Content-Range: bytes */len` ([`unsatisfied_content_range`]).
    Unsatisfiable,
}

/// Decides the response to a GET carrying `req` headers for a stored
/// response with headers `resp` and a body of `len` bytes. `If-Range`
/// (§13.1.5) that does not hold turns the request into a plain GET.
pub fn evaluate(req: &HeaderMap, resp: &HeaderMap, len: u64) -> RangeOutcome {
    let mut values = req.get_all(header::RANGE).iter();
    let (Some(range), None) = (values.next(), values.next()) else {
        // None, or several field lines, which is not a valid Range.
        return RangeOutcome::Full;
    };
    let if_range = req.get(header::IF_RANGE);
    if if_range.is_some_and(|v| !if_range_holds(v.as_bytes(), resp)) {
        return RangeOutcome::Full;
    }
    parse_range(range.as_bytes(), len)
}

/// `If-Range` holds when its entity-tag strongly matches the ETag, or its
/// date is exactly the Last-Modified date. A weak tag never holds.
fn if_range_holds(validator: &[u8], resp: &HeaderMap) -> bool {
    let v = validator.trim_ascii();
    if v.starts_with(b"\"") || v.starts_with(b"W/") {
        let Some(tag) = parse_single(v) else {
            return false;
        };
        let etag = resp
            .get(header::ETAG)
            .and_then(|e| parse_single(e.as_bytes()));
        return etag.is_some_and(|e| !tag.weak && !e.weak && e.opaque == tag.opaque);
    }
    let last_modified = resp
        .get(header::LAST_MODIFIED)
        .and_then(|lm| parse_date(lm.as_bytes()));
    match (parse_date(v), last_modified) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// Parses a `Range` field value against a body of `len` bytes.
pub fn parse_range(value: &[u8], len: u64) -> RangeOutcome {
    let Some(eq) = value.iter().position(|&c| c == b'=') else {
        return RangeOutcome::Full;
    };
    // Range units are case-insensitive (§14.1).
    if !value[..eq].trim_ascii().eq_ignore_ascii_case(b"bytes") {
        return RangeOutcome::Full;
    }
    let mut ranges = Vec::new();
    let mut requested: u64 = 0;
    let mut specs = 0usize;
    let mut suffix_on_empty = false;
    for spec in value[eq + 1..].split(|&c| c == b',') {
        let spec = spec.trim_ascii();
        if spec.is_empty() {
            continue; // empty list elements are allowed (§5.6.1)
        }
        specs += 1;
        if specs > MAX_RANGES {
            return RangeOutcome::Full;
        }
        let Some(spec) = parse_spec(spec) else {
            return RangeOutcome::Full;
        };
        if len == 0 {
            suffix_on_empty |= matches!(spec, Spec::Suffix(n) if n > 0);
            continue;
        }
        if let Some(r) = spec.resolve(len) {
            requested = requested.saturating_add(r.size());
            ranges.push(r);
        }
    }
    if specs == 0 {
        return RangeOutcome::Full; // `bytes=` has no range-spec: invalid
    }
    if ranges.is_empty() {
        return if suffix_on_empty {
            RangeOutcome::Full
        } else {
            RangeOutcome::Unsatisfiable
        };
    }
    if ranges.len() > 1 && requested > len {
        return RangeOutcome::Full;
    }
    RangeOutcome::Partial(coalesce(ranges))
}

/// One syntactically valid range-spec, before it meets the body length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spec {
    /// `first-last` or `first-`.
    Int(u64, Option<u64>),
    /// `-suffix`.
    Suffix(u64),
}

impl Spec {
    /// The satisfiable part of this spec for a body of `len > 0` bytes.
    fn resolve(self, len: u64) -> Option<ByteRange> {
        let last = len - 1;
        match self {
            Spec::Int(first, _) if first > last => None,
            Spec::Int(first, end) => Some(ByteRange {
                start: first,
                end: end.map_or(last, |e| e.min(last)),
            }),
            Spec::Suffix(0) => None,
            Spec::Suffix(n) => Some(ByteRange {
                start: len.saturating_sub(n),
                end: last,
            }),
        }
    }
}

fn parse_spec(spec: &[u8]) -> Option<Spec> {
    let dash = spec.iter().position(|&c| c == b'-')?;
    let (first, last) = (&spec[..dash], &spec[dash + 1..]);
    if first.is_empty() {
        return parse_pos(last).map(Spec::Suffix);
    }
    let first = parse_pos(first)?;
    if last.is_empty() {
        return Some(Spec::Int(first, None));
    }
    let last = parse_pos(last)?;
    // §14.1.1: last-pos below first-pos makes the spec (and header) invalid.
    (last >= first).then_some(Spec::Int(first, Some(last)))
}

/// `1*DIGIT`; values beyond u64 saturate, which only makes a position
/// "past the end", exactly what such a number means.
fn parse_pos(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

/// Sorts and merges overlapping or adjacent ranges.
fn coalesce(mut ranges: Vec<ByteRange>) -> Vec<ByteRange> {
    ranges.sort_unstable_by_key(|r| (r.start, r.end));
    let mut out: Vec<ByteRange> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(prev) if r.start <= prev.end.saturating_add(1) => prev.end = prev.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// The `Content-Range` of a 416: `bytes */LEN`.
pub fn unsatisfied_content_range(len: u64) -> HeaderValue {
    format_ascii(format!("bytes */{len}"))
}

/// `bytes START-END/LEN` for one part.
pub fn content_range(range: ByteRange, len: u64) -> HeaderValue {
    format_ascii(format!("bytes {}-{}/{len}", range.start, range.end))
}

/// The headers and body of a 206 response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeBody {
    /// The representation's type for one part, else `multipart/byteranges`.
    pub content_type: HeaderValue,
    /// Set for a single part; a multipart body carries one per part.
    pub content_range: Option<HeaderValue>,
    pub body: Bytes,
}

/// The framing of a `multipart/byteranges` body, for callers that stream
/// the parts from elsewhere (a file) rather than slicing a `Bytes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Multipart {
    /// `multipart/byteranges; boundary=...`
    pub content_type: HeaderValue,
    /// Each part: the bytes to send before its data, and the data's range.
    pub parts: Vec<(Bytes, ByteRange)>,
    /// Sent after the last part's data.
    pub epilogue: Bytes,
    /// Total body length, framing included.
    pub content_length: u64,
}

/// Boundary used when the caller's is not a safe token (§14.6 and RFC 2046
/// §5.1.1 limit it to 70 characters; we also keep it unquoted).
const FALLBACK_BOUNDARY: &str = "meridian-byteranges-3d6b1f0e9a";

/// Frames `ranges` of a body of `len` bytes as `multipart/byteranges`.
/// Each part starts with `--boundary`; the CRLF before every later
/// delimiter belongs to that delimiter (RFC 2046 §5.1.1).
pub fn multipart(
    ranges: &[ByteRange],
    len: u64,
    content_type: Option<&HeaderValue>,
    boundary: &str,
) -> Multipart {
    let valid = !boundary.is_empty()
        && boundary.len() <= 70
        && boundary
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"'()+_,-./:=?".contains(&c));
    let boundary = if valid { boundary } else { FALLBACK_BOUNDARY };
    let mut parts = Vec::with_capacity(ranges.len());
    let mut total: u64 = 0;
    for (i, r) in ranges.iter().enumerate() {
        let mut head = BytesMut::new();
        if i > 0 {
            head.put_slice(b"\r\n");
        }
        head.put_slice(format!("--{boundary}\r\n").as_bytes());
        if let Some(ct) = content_type {
            head.put_slice(b"Content-Type: ");
            head.put_slice(ct.as_bytes());
            head.put_slice(b"\r\n");
        }
        head.put_slice(
            format!("Content-Range: bytes {}-{}/{len}\r\n\r\n", r.start, r.end).as_bytes(),
        );
        total = total
            .saturating_add(head.len() as u64)
            .saturating_add(r.size());
        parts.push((head.freeze(), *r));
    }
    let epilogue = Bytes::from(format!("\r\n--{boundary}--\r\n"));
    Multipart {
        content_type: format_ascii(format!("multipart/byteranges; boundary={boundary}")),
        parts,
        content_length: total.saturating_add(epilogue.len() as u64),
        epilogue,
    }
}

/// Builds the 206 body for `ranges` of the complete `body`. One range is a
/// zero-copy slice. Ranges reaching past the body are clamped and empty ones
/// dropped, so a caller's mistake cannot panic; with nothing left the whole
/// body is returned without a `Content-Range`. A missing `content_type`
/// becomes `application/octet-stream` for a single part.
pub fn render(
    ranges: &[ByteRange],
    body: &Bytes,
    content_type: Option<&HeaderValue>,
    boundary: &str,
) -> RangeBody {
    let len = body.len() as u64;
    let ranges: Vec<ByteRange> = ranges
        .iter()
        .filter(|r| r.start <= r.end && r.start < len)
        .map(|r| ByteRange {
            start: r.start,
            end: r.end.min(len.saturating_sub(1)),
        })
        .collect();
    let octets = HeaderValue::from_static("application/octet-stream");
    let slice = |r: &ByteRange| body.slice(r.start as usize..=r.end as usize);
    match ranges.as_slice() {
        [] => RangeBody {
            content_type: content_type.cloned().unwrap_or(octets),
            content_range: None,
            body: body.clone(),
        },
        [one] => RangeBody {
            content_type: content_type.cloned().unwrap_or(octets),
            content_range: Some(content_range(*one, len)),
            body: slice(one),
        },
        many => {
            let framing = multipart(many, len, content_type, boundary);
            let mut out = BytesMut::with_capacity(framing.content_length as usize);
            for (head, r) in &framing.parts {
                out.put_slice(head);
                out.put_slice(&slice(r));
            }
            out.put_slice(&framing.epilogue);
            RangeBody {
                content_type: framing.content_type,
                content_range: None,
                body: out.freeze(),
            }
        }
    }
}

/// Turns text we formatted from digits and validated tokens into a header
/// value. `HeaderValue::from_maybe_shared` only rejects control bytes, which
/// none of our callers produce; the empty fallback keeps this total anyway.
fn format_ascii(s: String) -> HeaderValue {
    HeaderValue::from_maybe_shared(Bytes::from(s)).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeOutcome::{Full, Partial, Unsatisfiable};

    fn r(start: u64, end: u64) -> ByteRange {
        ByteRange { start, end }
    }

    fn check(cases: &[(&str, u64, RangeOutcome)]) {
        for (value, len, want) in cases {
            assert_eq!(
                parse_range(value.as_bytes(), *len),
                *want,
                "{value:?} len {len}"
            );
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            let name: header::HeaderName = name.parse().expect("test header name");
            map.append(
                name,
                HeaderValue::from_str(value).expect("test header value"),
            );
        }
        map
    }

    #[test]
    fn int_range_is_clamped_to_length_rfc9110_14_1_2() {
        check(&[
            ("bytes=0-499", 10_000, Partial(vec![r(0, 499)])),
            ("bytes=500-999", 10_000, Partial(vec![r(500, 999)])),
            ("bytes=9500-", 10_000, Partial(vec![r(9500, 9999)])),
            ("bytes=9500-20000", 10_000, Partial(vec![r(9500, 9999)])),
            ("bytes=0-0", 1, Partial(vec![r(0, 0)])),
            ("Bytes = 1-2", 10, Partial(vec![r(1, 2)])),
            (
                "bytes=0-99999999999999999999999",
                10,
                Partial(vec![r(0, 9)]),
            ),
        ]);
    }

    #[test]
    fn suffix_range_takes_last_bytes_rfc9110_14_1_2() {
        check(&[
            ("bytes=-500", 10_000, Partial(vec![r(9500, 9999)])),
            ("bytes=-1", 10_000, Partial(vec![r(9999, 9999)])),
            ("bytes=-20000", 10_000, Partial(vec![r(0, 9999)])),
        ]);
    }

    #[test]
    fn unsatisfiable_range_gives_416_rfc9110_14_1_1() {
        check(&[
            ("bytes=10000-", 10_000, Unsatisfiable),
            ("bytes=10000-10001, 20000-", 10_000, Unsatisfiable),
            ("bytes=-0", 10_000, Unsatisfiable),
            ("bytes=99999999999999999999999-", 10, Unsatisfiable),
            // One satisfiable spec is enough; the others are dropped.
            ("bytes=20000-, 0-1", 10_000, Partial(vec![r(0, 1)])),
        ]);
        assert_eq!(unsatisfied_content_range(10_000), "bytes */10000");
    }

    #[test]
    fn zero_length_body_satisfies_no_int_range_rfc9110_14_1_1() {
        check(&[
            ("bytes=0-", 0, Unsatisfiable),
            ("bytes=0-0", 0, Unsatisfiable),
            ("bytes=-0", 0, Unsatisfiable),
            // Satisfiable per the RFC but not expressible: send it all.
            ("bytes=-5", 0, Full),
        ]);
    }

    #[test]
    fn invalid_or_foreign_range_is_ignored_rfc9110_14_2() {
        check(&[
            ("items=0-5", 100, Full),
            ("bytes", 100, Full),
            ("bytes=", 100, Full),
            ("bytes=,", 100, Full),
            ("bytes=5-1", 100, Full),
            ("bytes=0-1, 5-1", 100, Full),
            ("bytes=a-b", 100, Full),
            ("bytes=-", 100, Full),
            ("bytes=+1-2", 100, Full),
            ("bytes=1-2-3", 100, Full),
            ("bytes=0-1;x", 100, Full),
        ]);
    }

    #[test]
    fn multiple_ranges_are_sorted_and_coalesced_rfc9110_14_6() {
        check(&[
            ("bytes=0-1, 5-6", 10, Partial(vec![r(0, 1), r(5, 6)])),
            ("bytes=5-6, 0-1", 10, Partial(vec![r(0, 1), r(5, 6)])),
            ("bytes=0-1,2-3", 10, Partial(vec![r(0, 3)])),
            ("bytes=0-2,2-3", 10, Partial(vec![r(0, 3)])),
            ("bytes=,0-1,, 4-4 ,", 10, Partial(vec![r(0, 1), r(4, 4)])),
        ]);
    }

    #[test]
    fn abusive_range_sets_are_ignored_rfc9110_17_15() {
        let many: Vec<String> = (0..=MAX_RANGES as u64)
            .map(|i| format!("{}-{}", i * 2, i * 2))
            .collect();
        let at_limit = format!("bytes={}", many[..MAX_RANGES].join(","));
        let over = format!("bytes={}", many.join(","));
        assert!(
            matches!(parse_range(at_limit.as_bytes(), 10_000), Partial(v) if v.len() == MAX_RANGES)
        );
        assert_eq!(parse_range(over.as_bytes(), 10_000), Full);
        // Overlap that asks for more bytes than the body holds.
        check(&[
            ("bytes=0-, 0-", 100, Full),
            ("bytes=0-60, 40-99", 100, Full),
        ]);
        check(&[("bytes=0-50, 40-60", 100, Partial(vec![r(0, 60)]))]);
    }

    #[test]
    fn if_range_with_strong_etag_or_exact_date_applies_rfc9110_13_1_5() {
        let lm = "Sun, 06 Nov 1994 08:49:37 GMT";
        let resp = headers(&[("etag", "\"v1\""), ("last-modified", lm)]);
        let cases: &[(&[(&str, &str)], RangeOutcome)] = &[
            (&[("range", "bytes=0-1")], Partial(vec![r(0, 1)])),
            (
                &[("range", "bytes=0-1"), ("if-range", "\"v1\"")],
                Partial(vec![r(0, 1)]),
            ),
            (
                &[("range", "bytes=0-1"), ("if-range", lm)],
                Partial(vec![r(0, 1)]),
            ),
            (&[("range", "bytes=0-1"), ("if-range", "\"v2\"")], Full),
            (
                &[
                    ("range", "bytes=0-1"),
                    ("if-range", "Sun, 06 Nov 1994 08:49:38 GMT"),
                ],
                Full,
            ),
            (&[("range", "bytes=0-1"), ("if-range", "junk")], Full),
            (&[("range", "bytes=0-1"), ("range", "bytes=2-3")], Full),
            (&[("if-range", "\"v1\"")], Full),
            (&[], Full),
        ];
        for (req, want) in cases {
            assert_eq!(evaluate(&headers(req), &resp, 10), *want, "{req:?}");
        }
    }

    #[test]
    fn if_range_with_weak_etag_is_full_rfc9110_13_1_5() {
        let strong = headers(&[("etag", "\"v1\"")]);
        let weak = headers(&[("etag", "W/\"v1\"")]);
        let req = |v: &str| headers(&[("range", "bytes=0-1"), ("if-range", v)]);
        assert_eq!(evaluate(&req("W/\"v1\""), &strong, 10), Full);
        assert_eq!(evaluate(&req("\"v1\""), &weak, 10), Full);
        assert_eq!(
            evaluate(&req("\"v1\""), &strong, 10),
            Partial(vec![r(0, 1)])
        );
    }

    #[test]
    fn single_range_is_a_zero_copy_slice_rfc9110_14_4() {
        let body = Bytes::from_static(b"0123456789");
        let ct = HeaderValue::from_static("text/plain");
        let out = render(&[r(2, 4)], &body, Some(&ct), "b");
        assert_eq!(out.body, "234");
        assert_eq!(
            out.body.as_ptr(),
            body[2..].as_ptr(),
            "must share the buffer"
        );
        assert_eq!(out.content_type, "text/plain");
        assert_eq!(
            out.content_range,
            Some(HeaderValue::from_static("bytes 2-4/10"))
        );
        // No stored type: octet-stream rather than letting clients sniff.
        let out = render(&[r(8, 50)], &body, None, "b");
        assert_eq!(out.content_type, "application/octet-stream");
        assert_eq!(out.body, "89");
    }

    #[test]
    fn multipart_byteranges_layout_rfc9110_14_6() {
        let body = Bytes::from_static(b"0123456789");
        let ct = HeaderValue::from_static("text/plain");
        let out = render(&[r(0, 1), r(7, 9)], &body, Some(&ct), "SEP");
        let want = "--SEP\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\n01\
                    \r\n--SEP\r\nContent-Type: text/plain\r\nContent-Range: bytes 7-9/10\r\n\r\n789\
                    \r\n--SEP--\r\n";
        assert_eq!(out.body, want);
        assert_eq!(out.content_type, "multipart/byteranges; boundary=SEP");
        assert_eq!(out.content_range, None);
        let framing = multipart(&[r(0, 1), r(7, 9)], 10, Some(&ct), "SEP");
        assert_eq!(framing.content_length, want.len() as u64);
        // An unsafe boundary is replaced, never copied into a header.
        let out = render(&[r(0, 0), r(2, 2)], &body, None, "bad\r\nboundary");
        assert_eq!(
            out.content_type,
            format!("multipart/byteranges; boundary={FALLBACK_BOUNDARY}").as_str()
        );
        assert!(!out.body.windows(12).any(|w| w == b"Content-Type"));
    }

    #[test]
    fn render_never_panics_on_out_of_bounds_ranges() {
        let body = Bytes::from_static(b"abc");
        let out = render(&[r(5, 9), r(2, 1)], &body, None, "b");
        assert_eq!((out.body, out.content_range), (body.clone(), None));
        let out = render(&[], &Bytes::new(), None, "b");
        assert!(out.body.is_empty());
    }
}

#[cfg(test)]
#[path = "range_proptests.rs"]
mod proptests;
