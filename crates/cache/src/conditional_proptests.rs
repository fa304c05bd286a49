//! Property tests of the conditional-request parsers (RFC 9110 §13):
//! entity-tags and their lists, and HTTP dates (issue 13).

use std::time::Duration;

use http::HeaderValue;
use proptest::prelude::*;

use super::*;

/// An opaque tag: etagc is `%x21 / %x23-7E / obs-text`; obs-text is left
/// out so the tag fits a `HeaderValue` built from a `str`.
fn opaque() -> impl Strategy<Value = String> {
    "[!#-~]{0,12}"
}

fn tag() -> impl Strategy<Value = (bool, String)> {
    (any::<bool>(), opaque())
}

fn render((weak, opaque): &(bool, String)) -> String {
    format!("{}\"{opaque}\"", if *weak { "W/" } else { "" })
}

fn map(pairs: &[(HeaderName, String)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(k.clone(), HeaderValue::from_str(v).expect("visible ascii"));
    }
    h
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// render → parse is stable for every entity-tag, with any
    /// surrounding white space; weak comparison is symmetric and implied
    /// by strong comparison, which never holds for a weak tag.
    #[test]
    fn entity_tags_round_trip(a in tag(), b in tag(), ws in "[ \t]{0,2}") {
        let (ra, rb) = (render(&a), render(&b));
        let padded = format!("{ws}{ra}{ws}");
        let parsed = parse_single(padded.as_bytes()).expect("a rendered tag parses");
        prop_assert_eq!(parsed.weak, a.0);
        prop_assert_eq!(parsed.opaque, a.1.as_bytes());
        let weak = etag_matches_weak(ra.as_bytes(), rb.as_bytes());
        prop_assert_eq!(weak, a.1 == b.1);
        prop_assert_eq!(weak, etag_matches_weak(rb.as_bytes(), ra.as_bytes()));
        let strong = etag_matches_strong(ra.as_bytes(), rb.as_bytes());
        prop_assert_eq!(strong, weak && !a.0 && !b.0);
    }

    /// If-None-Match: a list (on one line or several, with empty elements
    /// and white space) that holds the current tag answers 304 to GET and
    /// 412 to POST; one that does not lets the request proceed. `*` always
    /// matches.
    #[test]
    fn if_none_match_lists(
        list in proptest::collection::vec(tag(), 0..6),
        current in tag(),
        lines in 1usize..3,
        star in any::<bool>(),
    ) {
        let members: Vec<String> = list.iter().map(render).collect();
        let per = members.len().div_ceil(lines).max(1);
        let mut pairs: Vec<(HeaderName, String)> = members
            .chunks(per)
            .map(|c| (header::IF_NONE_MATCH, c.join(" ,, ")))
            .collect();
        if star {
            pairs = vec![(header::IF_NONE_MATCH, "*".into())];
        }
        if pairs.is_empty() {
            pairs.push((header::IF_NONE_MATCH, String::new()));
        }
        let req = map(&pairs);
        let resp = map(&[(header::ETAG, render(&current))]);
        let hit = star || list.iter().any(|t| t.1 == current.1);
        let get = evaluate(&Method::GET, &req, StatusCode::OK, &resp);
        prop_assert_eq!(get, if hit { Precondition::NotModified } else { Precondition::Proceed });
        let post = evaluate(&Method::POST, &req, StatusCode::OK, &resp);
        prop_assert_eq!(post, if hit { Precondition::Failed } else { Precondition::Proceed });
    }

    /// If-Match uses strong comparison: it holds only for an identical
    /// strong tag in the list (or `*`), else 412.
    #[test]
    fn if_match_is_strong(list in proptest::collection::vec(tag(), 1..5), current in tag()) {
        let value = list.iter().map(render).collect::<Vec<_>>().join(", ");
        let req = map(&[(header::IF_MATCH, value)]);
        let resp = map(&[(header::ETAG, render(&current))]);
        let holds = !current.0 && list.iter().any(|t| !t.0 && t.1 == current.1);
        let p = evaluate(&Method::GET, &req, StatusCode::OK, &resp);
        prop_assert_eq!(p == Precondition::Failed, !holds);
    }

    /// No panic on any bytes in any conditional field, and nothing but
    /// GET and HEAD ever gets a 304.
    #[test]
    fn any_conditional_fields_never_panic(
        values in proptest::collection::vec(proptest::collection::vec(0x20u8..0x7f, 0..40), 7),
    ) {
        let names = [
            header::IF_MATCH,
            header::IF_NONE_MATCH,
            header::IF_MODIFIED_SINCE,
            header::IF_UNMODIFIED_SINCE,
            header::ETAG,
            header::LAST_MODIFIED,
            header::DATE,
        ];
        let (mut req, mut resp) = (HeaderMap::new(), HeaderMap::new());
        for (i, (n, v)) in names.iter().zip(&values).enumerate() {
            let v = HeaderValue::from_bytes(v).expect("visible");
            if i < 4 { &mut req } else { &mut resp }.append(n.clone(), v);
        }
        for m in [Method::GET, Method::HEAD, Method::POST, Method::DELETE] {
            let p = evaluate(&m, &req, StatusCode::OK, &resp);
            prop_assert!(p != Precondition::NotModified || m == Method::GET || m == Method::HEAD);
        }
    }

    /// HTTP dates: the IMF-fixdate Meridian writes parses back to the same
    /// second, with white space around it; If-Modified-Since at or after
    /// Last-Modified is a 304, before it a 200.
    #[test]
    fn http_dates_round_trip(secs in 0u64..253_402_300_000, delta in -5i64..5) {
        let t = UNIX_EPOCH + Duration::from_secs(secs);
        let text = httpdate::fmt_http_date(t);
        prop_assert_eq!(parse_date(format!(" {text} ").as_bytes()), Some(secs));
        let since = secs.saturating_add_signed(delta);
        let since_text = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(since));
        let req = map(&[(header::IF_MODIFIED_SINCE, since_text)]);
        let resp = map(&[(header::LAST_MODIFIED, text)]);
        let p = evaluate(&Method::GET, &req, StatusCode::OK, &resp);
        prop_assert_eq!(p == Precondition::NotModified, since >= secs);
    }
}
