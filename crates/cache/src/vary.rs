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
