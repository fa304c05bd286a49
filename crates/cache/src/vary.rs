//! Secondary cache keys from `Vary` (RFC 9111 §4.1): a stored response is
//! only reused for a request whose nominated header fields match those of
//! the request that produced it.

use bytes::Bytes;
use http::HeaderMap;
use http::header::{ACCEPT_ENCODING, ACCEPT_LANGUAGE, HeaderName, VARY};

/// The nominated request header values a stored response was selected by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Variant {
    fields: Box<[(HeaderName, Option<Bytes>)]>,
}

impl Variant {
    /// Records the request's values for every field the response's `Vary`
    /// names. (`Vary: *` responses are never stored, see `policy`.)
    pub fn new(resp: &HeaderMap, req: &HeaderMap) -> Self {
        let mut fields: Vec<(HeaderName, Option<Bytes>)> = Vec::new();
        for line in resp.get_all(VARY) {
            for name in line.as_bytes().split(|&b| b == b',') {
                let name = name.trim_ascii();
                if name.is_empty() || name == b"*" {
                    continue;
                }
                if let Ok(name) = HeaderName::from_bytes(name)
                    && !fields.iter().any(|(n, _)| *n == name)
                {
                    let value = normalized(req, &name);
                    fields.push((name, value));
                }
            }
        }
        Variant {
            fields: fields.into_boxed_slice(),
        }
    }

    /// True when this response varies on nothing.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// RFC 9111 §4.1: every nominated field matches (absent matches absent).
    pub fn matches(&self, req: &HeaderMap) -> bool {
        self.fields
            .iter()
            .all(|(name, want)| normalized(req, name) == *want)
    }

    /// Approximate bytes held, for the store's weigher.
    pub fn weight(&self) -> usize {
        self.fields
            .iter()
            .map(|(n, v)| n.as_str().len() + v.as_ref().map_or(0, |v| v.len()) + 16)
            .sum()
    }
}

/// RFC 9111 §4.1 allows normalising values "in a way that is known to have
/// identical semantics": all field lines are combined with commas and the
/// white space around list separators is dropped. Values are lower-cased only
/// for fields whose values are case-insensitive tokens; anything else (Cookie,
/// User-Agent...) is compared byte for byte, so two different values can never
/// share a variant.
fn normalized(req: &HeaderMap, name: &HeaderName) -> Option<Bytes> {
    let mut lines = req.get_all(name).iter().peekable();
    lines.peek()?;
    if *name == ACCEPT_LANGUAGE
        && let Some(v) = accept_language(req.get_all(name).iter().map(|v| v.as_bytes()))
    {
        return Some(Bytes::from(v));
    }
    let fold_case = *name == ACCEPT_ENCODING || *name == ACCEPT_LANGUAGE;
    let mut out = Vec::new();
    for line in lines {
        for item in line.as_bytes().split(|&b| b == b',') {
            let item = item.trim_ascii();
            if item.is_empty() {
                continue;
            }
            if !out.is_empty() {
                out.push(b',');
            }
            if fold_case {
                out.extend(item.iter().map(u8::to_ascii_lowercase));
            } else {
                out.extend_from_slice(item);
            }
        }
    }
    Some(Bytes::from(out))
}

/// `Accept-Language` (RFC 9110 §12.5.4) in a canonical form, so requests
/// that mean the same share a variant: tags lower-cased, white space
/// dropped, weights read as numbers (`q=1.0` is `q=1`, the default, and is
/// left out; `q=0.80` is `q=0.8`), ranges ordered by descending weight. The
/// order of ranges of equal weight is kept: RFC 9110 notes some servers
/// read it as a preference. `None` (compare the plain list instead) when a
/// member is not `range[;q=qvalue]`: nothing unclear is merged.
fn accept_language<'a>(lines: impl Iterator<Item = &'a [u8]>) -> Option<Vec<u8>> {
    let mut ranges: Vec<(Vec<u8>, u16)> = Vec::new();
    for line in lines {
        for member in line.split(|&b| b == b',') {
            let member = member.trim_ascii();
            if member.is_empty() {
                continue;
            }
            let mut parts = member.split(|&b| b == b';');
            let tag = parts.next()?.trim_ascii();
            let valid_tag = !tag.is_empty()
                && tag
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'*');
            if !valid_tag {
                return None;
            }
            let q = match parts.next() {
                None => 1000,
                Some(w) => qvalue(w.trim_ascii())?,
            };
            if parts.next().is_some() {
                return None;
            }
            ranges.push((tag.to_ascii_lowercase(), q));
        }
    }
    // Stable: equal weights keep their order.
    ranges.sort_by_key(|r| std::cmp::Reverse(r.1));
    let mut out = Vec::new();
    for (tag, q) in ranges {
        if !out.is_empty() {
            out.push(b',');
        }
        out.extend_from_slice(&tag);
        if q < 1000 {
            let mut digits = format!("{q:03}");
            while digits.ends_with('0') {
                digits.pop();
            }
            out.extend_from_slice(b";q=0");
            if !digits.is_empty() {
                out.push(b'.');
                out.extend_from_slice(digits.as_bytes());
            }
        }
    }
    Some(out)
}

/// RFC 9110 §12.4.2 `q=qvalue` as thousandths: `0`, `0.5`, `0.125`, `1`,
/// `1.000`; `None` for anything else (`q=1.5`, `q=.5`, `q=0.1234`).
fn qvalue(weight: &[u8]) -> Option<u16> {
    let v = match weight {
        [b'q' | b'Q', b'=', v @ ..] => v,
        _ => return None,
    };
    crate::encoding::qvalue_number(v)
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

    #[test]
    fn variant_matching_rfc9111_4_1() {
        let resp = h(&[("vary", "Accept-Encoding, Accept-Language")]);
        let v = Variant::new(
            &resp,
            &h(&[("accept-encoding", "gzip, br"), ("accept-language", "en")]),
        );
        let cases = [
            (
                "same values",
                h(&[("accept-encoding", "gzip, br"), ("accept-language", "en")]),
                true,
            ),
            (
                "whitespace around commas",
                h(&[("accept-encoding", "gzip,br"), ("accept-language", "en")]),
                true,
            ),
            (
                "split over lines",
                h(&[
                    ("accept-encoding", "gzip"),
                    ("accept-encoding", "br"),
                    ("accept-language", "en"),
                ]),
                true,
            ),
            (
                "token case folded",
                h(&[("accept-encoding", "GZIP, br"), ("accept-language", "EN")]),
                true,
            ),
            (
                "different value",
                h(&[("accept-encoding", "br"), ("accept-language", "en")]),
                false,
            ),
            (
                "missing field",
                h(&[("accept-encoding", "gzip, br")]),
                false,
            ),
        ];
        for (name, req, want) in cases {
            assert_eq!(v.matches(&req), want, "{name}");
        }
    }

    /// RFC 9111 §4.1 lets values be normalised where the semantics are the
    /// same; RFC 9110 §12.5.4 gives Accept-Language's.
    #[test]
    fn accept_language_normalised_rfc9110_12_5_4() {
        let lang = |v: &'static str| {
            let mut m = HeaderMap::new();
            for line in v.split('\n') {
                m.append(ACCEPT_LANGUAGE, HeaderValue::from_static(line));
            }
            normalized(&m, &ACCEPT_LANGUAGE)
        };
        let same: &[&[&'static str]] = &[
            &[
                "fr, en;q=0.8",
                "fr,en;q=0.8",
                "fr;q=1.0, en;q=0.8",
                "FR, EN;Q=0.800",
                "fr ; q=1 , en ; q=0.80",
                "en;q=0.8, fr",
                "fr\nen;q=0.8",
                "fr;q=1.000,,en;q=0.8",
            ],
            &["de-CH, de;q=0.9, *;q=0", "de-ch,de;q=0.9,*;q=0.000"],
            &["en-US", "en-us;q=1"],
        ];
        for group in same {
            for v in *group {
                assert_eq!(lang(v), lang(group[0]), "{v} == {}", group[0]);
            }
        }
        let different: &[(&'static str, &'static str)] = &[
            ("fr, en", "en, fr"),
            ("fr, en;q=0.8", "fr, en;q=0.7"),
            ("fr", "fr, en"),
            ("en-us", "en"),
            ("fr;q=0", "fr"),
            // Not a qvalue: compared as written, never merged.
            ("fr;q=2", "fr"),
            ("fr;q=abc", "fr"),
            ("fr;x=1", "fr"),
        ];
        for (a, b) in different {
            assert_ne!(lang(a), lang(b), "{a} != {b}");
        }
        assert_eq!(lang("EN;q=0.5, fr").as_deref(), Some(&b"fr,en;q=0.5"[..]));
        assert_eq!(lang("x;q=0.").as_deref(), Some(&b"x;q=0"[..]));
    }

    #[test]
    fn absent_matches_absent_rfc9111_4_1() {
        let v = Variant::new(&h(&[("vary", "accept-encoding")]), &HeaderMap::new());
        assert!(v.matches(&HeaderMap::new()));
        assert!(!v.matches(&h(&[("accept-encoding", "gzip")])));
    }

    #[test]
    fn case_sensitive_fields_are_compared_exactly() {
        let v = Variant::new(&h(&[("vary", "cookie")]), &h(&[("cookie", "id=Alice")]));
        assert!(!v.matches(&h(&[("cookie", "id=alice")])));
    }

    #[test]
    fn no_vary_matches_everything() {
        let v = Variant::new(&HeaderMap::new(), &h(&[("accept", "x")]));
        assert!(v.is_empty());
        assert!(v.matches(&h(&[("accept", "y")])));
    }
}

#[cfg(test)]
#[path = "vary_proptests.rs"]
mod proptests;
