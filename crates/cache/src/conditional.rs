//! RFC 9110 §13 conditional requests: evaluates `If-Match`,
//! `If-Unmodified-Since`, `If-None-Match` and `If-Modified-Since` against a
//! representation the caller already has (a stored cache entry or a local
//! file), in the order of §13.2.2. `If-Range` lives in [`crate::range`]
//! because it only decides whether a `Range` header applies.
//!
//! Everything here is total: malformed header values never panic, they
//! simply fail to match (which is what the RFC asks of a recipient that
//! cannot parse a validator).

use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{self, HeaderMap, HeaderName};
use http::{Method, StatusCode};

/// What the server should do after evaluating the preconditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// All preconditions hold (or none apply): perform the method.
    Proceed,
    /// Answer 304 (Not Modified) with [`not_modified_headers`].
    NotModified,
    /// Answer 412 (Precondition Failed).
    Failed,
}

/// Evaluates the request's preconditions in RFC 9110 §13.2.2 order against
/// the response the server would send without them (`resp_status`, `resp`).
pub fn evaluate(
    method: &Method,
    req: &HeaderMap,
    resp_status: StatusCode,
    resp: &HeaderMap,
) -> Precondition {
    // §13.2.1: preconditions are ignored unless the unconditional answer
    // would be 2xx or 412, and for methods that do not select a
    // representation at all.
    let applies = resp_status.is_success() || resp_status == StatusCode::PRECONDITION_FAILED;
    if !applies || matches!(*method, Method::CONNECT | Method::OPTIONS | Method::TRACE) {
        return Precondition::Proceed;
    }
    // Most requests carry no precondition: answer before parsing any date
    // (this runs on every cache hit).
    let conditional = [
        &header::IF_MATCH,
        &header::IF_NONE_MATCH,
        &header::IF_MODIFIED_SINCE,
        &header::IF_UNMODIFIED_SINCE,
    ];
    if !conditional.iter().any(|n| req.contains_key(*n)) {
        return Precondition::Proceed;
    }
    let etag = single(resp, &header::ETAG);
    let last_modified = single(resp, &header::LAST_MODIFIED).and_then(parse_date);

    // Step 1 / step 2: If-Match wins over If-Unmodified-Since.
    if let Some(list) = joined(req, &header::IF_MATCH) {
        if !list_matches(&list, etag, true) {
            return Precondition::Failed;
        }
    } else if let Some(since) = single(req, &header::IF_UNMODIFIED_SINCE).and_then(parse_date) {
        // §13.1.4: without a Last-Modified there is nothing to contradict.
        if last_modified.is_some_and(|lm| lm > since) {
            return Precondition::Failed;
        }
    }

    let safe = matches!(*method, Method::GET | Method::HEAD);
    // Step 3 / step 4: If-None-Match wins over If-Modified-Since.
    if let Some(list) = joined(req, &header::IF_NONE_MATCH) {
        if list_matches(&list, etag, false) {
            return if safe {
                Precondition::NotModified
            } else {
                Precondition::Failed
            };
        }
    } else if safe {
        // §13.1.3: a list of dates (several field lines) is ignored, as is an
        // invalid date; `single` and `parse_date` return None for both.
        // RFC 9111 §4.3.2: a stored response without Last-Modified is
        // compared by its Date.
        let since = single(req, &header::IF_MODIFIED_SINCE).and_then(parse_date);
        let modified = last_modified.or_else(|| single(resp, &header::DATE).and_then(parse_date));
        if since.zip(modified).is_some_and(|(since, lm)| lm <= since) {
            return Precondition::NotModified;
        }
    }
    Precondition::Proceed
}

/// Weak comparison (RFC 9110 §8.8.3.2): the opaque tags are equal, whether
/// or not either is marked weak. Both arguments are single entity-tags.
pub fn etag_matches_weak(a: &[u8], b: &[u8]) -> bool {
    match (parse_single(a), parse_single(b)) {
        (Some(x), Some(y)) => tags_match(x, y, false),
        _ => false,
    }
}

/// Strong comparison (RFC 9110 §8.8.3.2): neither tag is weak and the opaque
/// tags are equal.
pub fn etag_matches_strong(a: &[u8], b: &[u8]) -> bool {
    match (parse_single(a), parse_single(b)) {
        (Some(x), Some(y)) => tags_match(x, y, true),
        _ => false,
    }
}

/// The header fields RFC 9110 §15.4.5 has a 304 carry: Cache-Control,
/// Content-Location, Date, ETag, Expires and Vary (all field lines of each),
/// plus Last-Modified when there is no ETag, since then it is the only
/// validator a cache can update its entry with. Everything else is
/// representation metadata the recipient already holds.
pub fn not_modified_headers(resp: &HeaderMap) -> HeaderMap {
    const KEEP: [HeaderName; 6] = [
        header::CACHE_CONTROL,
        header::CONTENT_LOCATION,
        header::DATE,
        header::ETAG,
        header::EXPIRES,
        header::VARY,
    ];
    let mut out = HeaderMap::new();
    let mut copy = |name: &HeaderName| {
        for value in resp.get_all(name) {
            out.append(name.clone(), value.clone());
        }
    };
    KEEP.iter().for_each(&mut copy);
    if !resp.contains_key(header::ETAG) {
        copy(&header::LAST_MODIFIED);
    }
    out
}

/// One parsed entity-tag, borrowing its opaque part (without quotes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EntityTag<'a> {
    pub(crate) weak: bool,
    pub(crate) opaque: &'a [u8],
}

/// Parses exactly one entity-tag (`"x"` or `W/"x"`), allowing surrounding
/// whitespace; anything else is None.
pub(crate) fn parse_single(value: &[u8]) -> Option<EntityTag<'_>> {
    let (tag, rest) = parse_tag(value.trim_ascii_start())?;
    rest.trim_ascii().is_empty().then_some(tag)
}

/// Parses one entity-tag at the start of `s`, returning it and the rest.
/// `W/` is case-sensitive (`%s"W/"` in RFC 9110 §8.8.3); etagc excludes
/// DQUOTE, controls, space and DEL but includes obs-text and commas.
fn parse_tag(s: &[u8]) -> Option<(EntityTag<'_>, &[u8])> {
    let (weak, s) = match s.strip_prefix(b"W/") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let body = s.strip_prefix(b"\"")?;
    let close = body.iter().position(|&c| c == b'"')?;
    let opaque = &body[..close];
    if !opaque
        .iter()
        .all(|&c| c == 0x21 || (0x23..=0x7e).contains(&c) || c >= 0x80)
    {
        return None;
    }
    Some((EntityTag { weak, opaque }, &body[close + 1..]))
}

/// Does the `If-Match`/`If-None-Match` field value match the current ETag?
/// `*` matches any current representation (the caller has one). A list
/// that does not parse matches nothing, as RFC 9110 §13.1.1 prescribes for
/// a server that cannot verify the condition.
fn list_matches(list: &[u8], etag: Option<&[u8]>, strong: bool) -> bool {
    if list.trim_ascii() == b"*" {
        return true;
    }
    let Some(current) = etag else {
        return false;
    };
    let Some(current) = parse_single(current) else {
        return false;
    };
    let mut rest = list;
    loop {
        // #entity-tag: empty elements and OWS around commas are allowed.
        rest = rest.trim_ascii_start();
        if let Some(after) = rest.strip_prefix(b",") {
            rest = after;
            continue;
        }
        if rest.is_empty() {
            return false;
        }
        let Some((tag, after)) = parse_tag(rest) else {
            return false;
        };
        if tags_match(tag, current, strong) {
            return true;
        }
        let after = after.trim_ascii_start();
        if !(after.is_empty() || after.starts_with(b",")) {
            return false;
        }
        rest = after;
    }
}

/// Weak or strong comparison (RFC 9110 §8.8.3.2) of two parsed tags.
fn tags_match(a: EntityTag<'_>, b: EntityTag<'_>, strong: bool) -> bool {
    a.opaque == b.opaque && !(strong && (a.weak || b.weak))
}

/// The value of a header that must appear exactly once.
fn single<'a>(map: &'a HeaderMap, name: &HeaderName) -> Option<&'a [u8]> {
    let mut all = map.get_all(name).iter();
    let first = all.next()?;
    all.next().is_none().then_some(first.as_bytes())
}

/// All field lines of a list header joined with commas (RFC 9110 §5.3).
fn joined(map: &HeaderMap, name: &HeaderName) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    for value in map.get_all(name) {
        let buf = out.get_or_insert_with(Vec::new);
        if !buf.is_empty() {
            buf.push(b',');
        }
        buf.extend_from_slice(value.as_bytes());
    }
    out
}

/// An HTTP-date as whole seconds since the epoch: validators have
/// one-second resolution, so comparing seconds is exact.
pub(crate) fn parse_date(value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(value).ok()?;
    let time: SystemTime = httpdate::parse_http_date(text.trim()).ok()?;
    time.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const LM: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    const BEFORE: &str = "Sun, 06 Nov 1994 08:49:36 GMT";
    const AFTER: &str = "Sun, 06 Nov 1994 08:49:38 GMT";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            let name: HeaderName = name.parse().expect("test header name");
            map.append(
                name,
                HeaderValue::from_str(value).expect("test header value"),
            );
        }
        map
    }

    /// A stored 200 with a strong ETag and a Last-Modified.
    fn stored() -> HeaderMap {
        headers(&[("etag", "\"v1\""), ("last-modified", LM)])
    }

    fn check(cases: &[(&[(&str, &str)], Precondition)], method: Method, resp: &HeaderMap) {
        for (req, want) in cases {
            let got = evaluate(&method, &headers(req), StatusCode::OK, resp);
            assert_eq!(got, *want, "{method} {req:?}");
        }
    }

    #[test]
    fn if_match_uses_strong_comparison_rfc9110_13_1_1() {
        use Precondition::*;
        let cases: &[(&[(&str, &str)], Precondition)] = &[
            (&[("if-match", "\"v1\"")], Proceed),
            (&[("if-match", "\"v0\", \"v1\"")], Proceed),
            (&[("if-match", "*")], Proceed),
            (&[("if-match", "W/\"v1\"")], Failed),
            (&[("if-match", "\"v2\"")], Failed),
            (&[("if-match", "garbage")], Failed),
        ];
        check(cases, Method::PUT, &stored());
        // A weak current ETag never strongly matches, not even itself.
        let weak = headers(&[("etag", "W/\"v1\"")]);
        check(&[(&[("if-match", "W/\"v1\"")], Failed)], Method::GET, &weak);
    }

    #[test]
    fn if_unmodified_since_only_without_if_match_rfc9110_13_2_2() {
        use Precondition::*;
        let cases: &[(&[(&str, &str)], Precondition)] = &[
            (&[("if-unmodified-since", LM)], Proceed),
            (&[("if-unmodified-since", AFTER)], Proceed),
            (&[("if-unmodified-since", BEFORE)], Failed),
            (&[("if-unmodified-since", "not a date")], Proceed),
            // If-Match present and true: the stale date is not evaluated.
            (
                &[("if-match", "\"v1\""), ("if-unmodified-since", BEFORE)],
                Proceed,
            ),
        ];
        check(cases, Method::PUT, &stored());
    }

    #[test]
    fn if_none_match_uses_weak_comparison_rfc9110_13_1_2() {
        use Precondition::*;
        let cases: &[(&[(&str, &str)], Precondition)] = &[
            (&[("if-none-match", "\"v1\"")], NotModified),
            (&[("if-none-match", "W/\"v1\"")], NotModified),
            (&[("if-none-match", "\"a\", W/\"v1\"")], NotModified),
            (
                &[("if-none-match", "\"a\""), ("if-none-match", "\"v1\"")],
                NotModified,
            ),
            (&[("if-none-match", " , \"v1\" ,")], NotModified),
            (&[("if-none-match", "*")], NotModified),
            (&[("if-none-match", "\"v2\"")], Proceed),
            (&[("if-none-match", "\"v1")], Proceed),
            (&[("if-none-match", "v1")], Proceed),
            (&[("if-none-match", "w/\"v1\"")], Proceed),
        ];
        check(cases, Method::GET, &stored());
        check(cases, Method::HEAD, &stored());
    }

    #[test]
    fn if_none_match_on_unsafe_method_fails_rfc9110_13_1_2() {
        use Precondition::*;
        let cases: &[(&[(&str, &str)], Precondition)] = &[
            (&[("if-none-match", "\"v1\"")], Failed),
            (&[("if-none-match", "*")], Failed),
            (&[("if-none-match", "\"v2\"")], Proceed),
        ];
        check(cases, Method::POST, &stored());
        check(cases, Method::PUT, &stored());
    }

    #[test]
    fn if_modified_since_compares_seconds_rfc9110_13_1_3() {
        use Precondition::*;
        let cases: &[(&[(&str, &str)], Precondition)] = &[
            (&[("if-modified-since", LM)], NotModified),
            (&[("if-modified-since", AFTER)], NotModified),
            (&[("if-modified-since", BEFORE)], Proceed),
            // RFC 850 and asctime forms are valid HTTP-dates too.
            (
                &[("if-modified-since", "Sunday, 06-Nov-94 08:49:37 GMT")],
                NotModified,
            ),
            (
                &[("if-modified-since", "Sun Nov  6 08:49:37 1994")],
                NotModified,
            ),
            (&[("if-modified-since", "yesterday")], Proceed),
            (
                &[("if-modified-since", LM), ("if-modified-since", LM)],
                Proceed,
            ),
            // If-None-Match present: the date is ignored even though it matches.
            (
                &[("if-none-match", "\"v2\""), ("if-modified-since", AFTER)],
                Proceed,
            ),
        ];
        check(cases, Method::GET, &stored());
        // Only GET and HEAD.
        check(
            &[(&[("if-modified-since", AFTER)], Proceed)],
            Method::POST,
            &stored(),
        );
        // Nothing to compare with when the response has neither
        // Last-Modified nor Date.
        let no_lm = headers(&[("etag", "\"v1\"")]);
        check(
            &[(&[("if-modified-since", AFTER)], Proceed)],
            Method::GET,
            &no_lm,
        );
        // Without Last-Modified, its Date stands in (RFC 9111 §4.3.2).
        let dated = headers(&[("etag", "\"v1\""), ("date", LM)]);
        check(
            &[
                (&[("if-modified-since", AFTER)], NotModified),
                (&[("if-modified-since", LM)], NotModified),
                (&[("if-modified-since", BEFORE)], Proceed),
            ],
            Method::GET,
            &dated,
        );
        // Last-Modified, when present, wins over Date.
        let both = headers(&[("last-modified", AFTER), ("date", BEFORE)]);
        check(
            &[(&[("if-modified-since", LM)], Proceed)],
            Method::GET,
            &both,
        );
    }

    #[test]
    fn if_match_failure_precedes_if_none_match_rfc9110_13_2_2() {
        let req = headers(&[("if-match", "\"nope\""), ("if-none-match", "\"v1\"")]);
        let got = evaluate(&Method::GET, &req, StatusCode::OK, &stored());
        assert_eq!(got, Precondition::Failed);
    }

    #[test]
    fn preconditions_ignored_unless_2xx_or_412_rfc9110_13_2_1() {
        let req = headers(&[("if-none-match", "*"), ("if-match", "\"nope\"")]);
        let cases = [
            (StatusCode::OK, Precondition::Failed),
            (StatusCode::PARTIAL_CONTENT, Precondition::Failed),
            (StatusCode::PRECONDITION_FAILED, Precondition::Failed),
            (StatusCode::NOT_FOUND, Precondition::Proceed),
            (StatusCode::MOVED_PERMANENTLY, Precondition::Proceed),
            (StatusCode::INTERNAL_SERVER_ERROR, Precondition::Proceed),
        ];
        for (status, want) in cases {
            assert_eq!(
                evaluate(&Method::GET, &req, status, &stored()),
                want,
                "{status}"
            );
        }
        let got = evaluate(&Method::OPTIONS, &req, StatusCode::OK, &stored());
        assert_eq!(
            got,
            Precondition::Proceed,
            "OPTIONS selects no representation"
        );
    }

    #[test]
    fn etag_comparison_table_rfc9110_8_8_3_2() {
        // (a, b, strong, weak) — the table of RFC 9110 §8.8.3.2 plus garbage.
        let cases: &[(&[u8], &[u8], bool, bool)] = &[
            (b"W/\"1\"", b"W/\"1\"", false, true),
            (b"W/\"1\"", b"W/\"2\"", false, false),
            (b"W/\"1\"", b"\"1\"", false, true),
            (b"\"1\"", b"\"1\"", true, true),
            (b" \"1\" ", b"\"1\"", true, true),
            (b"\"a,b\"", b"\"a,b\"", true, true),
            (b"\"1\"", b"1", false, false),
            (b"\"1\" x", b"\"1\"", false, false),
            (b"\"1\"\"", b"\"1\"", false, false),
            (b"\"a b\"", b"\"a b\"", false, false),
            (b"", b"", false, false),
            (b"W/", b"W/", false, false),
        ];
        for (a, b, strong, weak) in cases {
            let (sa, sb) = (String::from_utf8_lossy(a), String::from_utf8_lossy(b));
            assert_eq!(etag_matches_strong(a, b), *strong, "strong {sa} {sb}");
            assert_eq!(etag_matches_weak(a, b), *weak, "weak {sa} {sb}");
        }
    }

    #[test]
    fn not_modified_keeps_only_listed_fields_rfc9110_15_4_5() {
        let resp = headers(&[
            ("cache-control", "max-age=60"),
            ("cache-control", "public"),
            ("content-location", "/a"),
            ("date", LM),
            ("etag", "\"v1\""),
            ("expires", LM),
            ("vary", "accept-encoding"),
            ("last-modified", LM),
            ("content-type", "text/plain"),
            ("content-length", "5"),
            ("x-custom", "1"),
        ]);
        let out = not_modified_headers(&resp);
        let mut names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        let want = [
            "cache-control",
            "content-location",
            "date",
            "etag",
            "expires",
            "vary",
        ];
        assert_eq!(names, want);
        assert_eq!(out.get_all(header::CACHE_CONTROL).iter().count(), 2);

        // Without an ETag, Last-Modified is the validator a cache updates.
        let resp = headers(&[("last-modified", LM), ("content-type", "text/plain")]);
        let out = not_modified_headers(&resp);
        assert_eq!(out.len(), 1);
        assert_eq!(
            out.get(header::LAST_MODIFIED).map(|v| v.as_bytes()),
            Some(LM.as_bytes())
        );
    }
}

#[cfg(test)]
#[path = "conditional_proptests.rs"]
mod proptests;
