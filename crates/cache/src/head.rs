//! RFC 9111 §4.3.5: a 200 answering a HEAD this cache sent upstream says
//! whether the stored GET response it could have chosen is still the same
//! representation. Same validators (and Content-Length): its header fields
//! update the stored ones, as a 304's do (§3.2, §4.3.4). Different: the
//! stored response is stale.

use http::header::{self, HeaderName};
use http::{HeaderMap, StatusCode};

use crate::fields::Fields;

/// What a HEAD response does to a stored GET response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadUpdate {
    /// The same representation: update the stored header fields.
    Update,
    /// Another representation (or nothing to tell): consider it stale.
    Stale,
    /// Not a 200: says nothing about the stored response.
    Ignore,
}

/// §4.3.5: "if the stored response and HEAD response have matching values
/// for any received validator fields (ETag and Last-Modified) and, if the
/// HEAD response has a Content-Length header field, the value of
/// Content-Length matches that of the stored response, the cache SHOULD
/// update the stored response ...; otherwise, the cache SHOULD consider the
/// stored response to be stale." Matching is byte for byte (`W/"a"` is not
/// `"a"`), and a HEAD response without any validator proves nothing, so it
/// makes the stored response stale too.
pub fn head_update(
    status: StatusCode,
    stored: &Fields,
    stored_len: u64,
    head: &HeaderMap,
) -> HeadUpdate {
    if status != StatusCode::OK {
        return HeadUpdate::Ignore;
    }
    let mut validators = 0;
    for name in [header::ETAG, header::LAST_MODIFIED] {
        let mut values = head.get_all(&name).iter();
        match (values.next(), values.next()) {
            (None, _) => continue,
            (Some(v), None) if stored.get(&name).is_some_and(|s| s == v) => validators += 1,
            _ => return HeadUpdate::Stale,
        }
    }
    if validators == 0 {
        return HeadUpdate::Stale;
    }
    let mut lengths = head.get_all(header::CONTENT_LENGTH).iter();
    match (lengths.next(), lengths.next()) {
        (None, _) => {}
        (Some(v), None)
            if v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()) == Some(stored_len) => {}
        _ => return HeadUpdate::Stale,
    }
    HeadUpdate::Update
}

/// RFC 9111 §3.2: the stored header fields updated by those of a 304 or a
/// HEAD response: each field received replaces the stored one, except
/// those that describe the stored body's bytes (Content-Length,
/// Content-Encoding, Content-Range).
pub fn merge_updates(stored: &Fields, updates: &HeaderMap) -> HeaderMap {
    let mut merged = stored.to_map(0);
    let names: Vec<&HeaderName> = updates
        .keys()
        .filter(|n| {
            **n != header::CONTENT_LENGTH
                && **n != header::CONTENT_ENCODING
                && **n != header::CONTENT_RANGE
        })
        .collect();
    for n in &names {
        merged.remove(*n);
    }
    for n in names {
        for v in updates.get_all(n) {
            merged.append(n.clone(), v.clone());
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, HeaderValue::from_static(v));
        }
        m
    }

    const LM: &str = "Tue, 01 Sep 2026 10:00:00 GMT";

    /// (name, HEAD status, HEAD fields, what it does).
    type Case = (
        &'static str,
        u16,
        &'static [(&'static str, &'static str)],
        HeadUpdate,
    );

    #[test]
    fn head_response_updates_or_stales_the_stored_get_rfc9111_4_3_5() {
        let stored = Fields::from_map(&h(&[
            ("etag", "\"v1\""),
            ("last-modified", LM),
            ("content-length", "5"),
        ]));
        let cases: &[Case] = &[
            ("same etag", 200, &[("etag", "\"v1\"")], HeadUpdate::Update),
            (
                "same etag and length",
                200,
                &[("etag", "\"v1\""), ("content-length", "5")],
                HeadUpdate::Update,
            ),
            (
                "same last-modified",
                200,
                &[("last-modified", LM)],
                HeadUpdate::Update,
            ),
            (
                "both validators match",
                200,
                &[("etag", "\"v1\""), ("last-modified", LM)],
                HeadUpdate::Update,
            ),
            ("other etag", 200, &[("etag", "\"v2\"")], HeadUpdate::Stale),
            (
                "weak is not strong",
                200,
                &[("etag", "W/\"v1\"")],
                HeadUpdate::Stale,
            ),
            (
                "etag matches, last-modified does not",
                200,
                &[
                    ("etag", "\"v1\""),
                    ("last-modified", "Wed, 02 Sep 2026 10:00:00 GMT"),
                ],
                HeadUpdate::Stale,
            ),
            (
                "length differs",
                200,
                &[("etag", "\"v1\""), ("content-length", "6")],
                HeadUpdate::Stale,
            ),
            (
                "length unreadable",
                200,
                &[("etag", "\"v1\""), ("content-length", "five")],
                HeadUpdate::Stale,
            ),
            (
                "two etags",
                200,
                &[("etag", "\"v1\""), ("etag", "\"v1\"")],
                HeadUpdate::Stale,
            ),
            ("no validator proves nothing", 200, &[], HeadUpdate::Stale),
            ("not a 200", 404, &[("etag", "\"v2\"")], HeadUpdate::Ignore),
            ("a 304 is not a HEAD answer", 304, &[], HeadUpdate::Ignore),
        ];
        for &(name, status, head, want) in cases {
            let status = StatusCode::from_u16(status).expect("status");
            assert_eq!(head_update(status, &stored, 5, &h(head)), want, "{name}");
        }
        let without_etag = Fields::from_map(&h(&[("last-modified", LM)]));
        assert_eq!(
            head_update(StatusCode::OK, &without_etag, 0, &h(&[("etag", "\"v1\"")])),
            HeadUpdate::Stale,
            "a validator the stored response lacks does not match"
        );
    }

    #[test]
    fn updates_replace_fields_but_not_body_framing_rfc9111_3_2() {
        let stored = Fields::from_map(&h(&[
            ("content-type", "text/plain"),
            ("cache-control", "max-age=1"),
            ("content-length", "5"),
            ("content-encoding", "gzip"),
            ("x-a", "1"),
            ("x-a", "2"),
        ]));
        let merged = merge_updates(
            &stored,
            &h(&[
                ("cache-control", "max-age=60"),
                ("content-length", "0"),
                ("content-encoding", "br"),
                ("x-a", "3"),
            ]),
        );
        assert_eq!(merged["cache-control"], "max-age=60");
        assert_eq!(merged["content-length"], "5");
        assert_eq!(merged["content-encoding"], "gzip");
        assert_eq!(merged["content-type"], "text/plain");
        let xa: Vec<_> = merged.get_all("x-a").iter().collect();
        assert_eq!(xa, ["3"]);
    }
}
