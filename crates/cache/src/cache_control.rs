//! Cache-Control directives (RFC 9111 §5.2), and the targeted fields
//! CDN-Cache-Control (RFC 9213) and Surrogate-Control (Edge Architecture 1.0),
//! which share the directive syntax.
//!
//! Parsing is lenient, as RFC 9111 §5.2 asks: unknown directives are
//! ignored, names are case-insensitive, values may be tokens or quoted
//! strings, and the first occurrence of a repeated directive wins
//! (§4.2.1). An invalid delta-seconds value makes the response stale
//! (it is read as 0), and values past 2^31 are capped at 2^31 (§1.2.2).
//!
//! CDN-Cache-Control — and every targeted field but Surrogate-Control, which
//! predates RFC 9213 and keeps the lenient parser — is instead a Structured
//! Field dictionary (RFC 9213 §2.1, RFC 8941 §3.2), parsed strictly by the
//! `sfv` crate ([`CacheControl::from_structured`]): one syntax error and the
//! whole field is ignored, a directive of the wrong type is ignored. A
//! tested parser of the whole RFC 8941 grammar (inner lists, parameters,
//! byte sequences, the exact key and token alphabets) is what "fails the
//! whole field" needs; a hand parser would accept near-misses.

use http::HeaderMap;
use http::header::{CACHE_CONTROL, HeaderName};

/// RFC 9111 §1.2.2: "the cache MUST consider the value to be 2147483648".
pub const DELTA_SECONDS_CAP: u64 = 2_147_483_648;

/// RFC 9213 §3: the field targeted at CDN caches.
pub static CDN_CACHE_CONTROL: HeaderName = HeaderName::from_static("cdn-cache-control");
/// Edge Architecture Specification 1.0: the older surrogate-targeted field.
pub static SURROGATE_CONTROL: HeaderName = HeaderName::from_static("surrogate-control");

/// The directives Meridian understands, from one field (all lines of it).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CacheControl {
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    pub no_store: bool,
    /// Qualified `no-cache="field"` is treated as unqualified: the safe reading
    /// RFC 9111 §5.2.2.4 allows.
    pub no_cache: bool,
    /// Qualified `private="field"` is treated as unqualified (§5.2.2.7 allows it).
    pub private: bool,
    pub public: bool,
    pub must_revalidate: bool,
    pub proxy_revalidate: bool,
    pub no_transform: bool,
    pub immutable: bool,
    /// RFC 5861 §3.
    pub stale_while_revalidate: Option<u64>,
    /// RFC 5861 §4.
    pub stale_if_error: Option<u64>,
    // Request directives (RFC 9111 §5.2.1).
    /// `max-stale` with no value accepts any staleness: `Some(u64::MAX)`.
    pub max_stale: Option<u64>,
    pub min_fresh: Option<u64>,
    pub only_if_cached: bool,
}

impl CacheControl {
    /// Parses every line of `name` in `headers`.
    pub fn from_headers(headers: &HeaderMap, name: &HeaderName) -> Option<Self> {
        let mut values = headers.get_all(name).iter().peekable();
        values.peek()?;
        let mut cc = CacheControl::default();
        let mut seen = Seen::default();
        for v in values {
            parse_into(&mut cc, &mut seen, v.as_bytes());
        }
        Some(cc)
    }

    /// Parses the request's or response's `Cache-Control`.
    pub fn from_cache_control(headers: &HeaderMap) -> Self {
        Self::from_headers(headers, &CACHE_CONTROL).unwrap_or_default()
    }

    /// Parses one field value (handy in tests).
    pub fn parse(value: &str) -> Self {
        let mut cc = CacheControl::default();
        parse_into(&mut cc, &mut Seen::default(), value.as_bytes());
        cc
    }
}

impl CacheControl {
    /// Parses a targeted field as the RFC 8941 dictionary RFC 9213 §2.1
    /// makes it, every line of it combined (RFC 8941 §4.2). `None` when the
    /// field is absent or does not parse: "a parsing error ... MUST be
    /// ignored" — the whole field, so Cache-Control applies.
    ///
    /// Types: delta-seconds directives need an Integer (negative reads as
    /// 0, stale; past 2^31 is capped); `max-age="60"` or `max-age=1.5` is
    /// ignored. A directive without a value is Boolean true; `?0` is false.
    /// The directives that restrict reuse (no-store, no-cache, private,
    /// must-revalidate, proxy-revalidate) count with any value but `?0`
    /// (`no-cache=("set-cookie")` is the safe unqualified reading, as in
    /// Cache-Control); those that permit it (public, immutable) only as
    /// true. Parameters are ignored.
    pub fn from_structured(headers: &HeaderMap, name: &HeaderName) -> Option<Self> {
        let mut lines = headers.get_all(name).iter().peekable();
        lines.peek()?;
        let mut dict = sfv::Dictionary::new();
        for line in lines {
            sfv::Parser::new(line.as_bytes())
                .parse_dictionary_with_visitor(&mut dict)
                .ok()?;
        }
        let mut cc = CacheControl::default();
        for (key, entry) in &dict {
            let item = match entry {
                sfv::ListEntry::Item(item) => Some(&item.bare_item),
                sfv::ListEntry::InnerList(_) => None,
            };
            let seconds = || match item {
                Some(sfv::BareItem::Integer(n)) => {
                    let n = i64::from(*n).max(0).unsigned_abs();
                    Some(n.min(DELTA_SECONDS_CAP))
                }
                _ => None,
            };
            // Restrictive: present unless explicitly false.
            let restricts = !matches!(item, Some(sfv::BareItem::Boolean(false)));
            let permits = matches!(item, Some(sfv::BareItem::Boolean(true)));
            match key.as_str() {
                "max-age" => cc.max_age = seconds(),
                "s-maxage" => cc.s_maxage = seconds(),
                "stale-while-revalidate" => cc.stale_while_revalidate = seconds(),
                "stale-if-error" => cc.stale_if_error = seconds(),
                "no-store" => cc.no_store = restricts,
                "no-cache" => cc.no_cache = restricts,
                "private" => cc.private = restricts,
                "must-revalidate" => cc.must_revalidate = restricts,
                "proxy-revalidate" => cc.proxy_revalidate = restricts,
                "no-transform" => cc.no_transform = restricts,
                "public" => cc.public = permits,
                "immutable" => cc.immutable = permits,
                _ => {}
            }
        }
        Some(cc)
    }
}

/// Which valued directives were seen, so the first occurrence wins.
#[derive(Default)]
struct Seen {
    max_age: bool,
    s_maxage: bool,
    swr: bool,
    sie: bool,
    max_stale: bool,
    min_fresh: bool,
}

fn parse_into(cc: &mut CacheControl, seen: &mut Seen, input: &[u8]) {
    for (name, value) in Directives::new(input) {
        let set = |slot: &mut Option<u64>, seen: &mut bool| {
            if !*seen {
                *seen = true;
                *slot = Some(delta_seconds(value));
            }
        };
        match name.to_ascii_lowercase().as_slice() {
            b"max-age" => set(&mut cc.max_age, &mut seen.max_age),
            b"s-maxage" => set(&mut cc.s_maxage, &mut seen.s_maxage),
            b"stale-while-revalidate" => set(&mut cc.stale_while_revalidate, &mut seen.swr),
            b"stale-if-error" => set(&mut cc.stale_if_error, &mut seen.sie),
            b"min-fresh" => set(&mut cc.min_fresh, &mut seen.min_fresh),
            b"max-stale" if !seen.max_stale => {
                seen.max_stale = true;
                cc.max_stale = Some(match value {
                    None => u64::MAX,
                    Some(_) => delta_seconds(value),
                });
            }
            b"no-store" => cc.no_store = true,
            b"no-cache" => cc.no_cache = true,
            b"private" => cc.private = true,
            b"public" => cc.public = true,
            b"must-revalidate" => cc.must_revalidate = true,
            b"proxy-revalidate" => cc.proxy_revalidate = true,
            b"no-transform" => cc.no_transform = true,
            b"immutable" => cc.immutable = true,
            b"only-if-cached" => cc.only_if_cached = true,
            _ => {}
        }
    }
}

/// RFC 9111 §1.2.2 delta-seconds: digits only; anything else reads as 0
/// (stale), and overflow is capped at 2^31.
pub(crate) fn delta_seconds(value: Option<&[u8]>) -> u64 {
    let Some(v) = value else { return 0 };
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return 0;
    }
    let mut n: u64 = 0;
    for d in v {
        n = n.saturating_mul(10).saturating_add(u64::from(d - b'0'));
        if n >= DELTA_SECONDS_CAP {
            return DELTA_SECONDS_CAP;
        }
    }
    n
}

/// Iterates `name[=value]` pairs of a comma-separated directive list; quoted
/// values are unquoted (backslash escapes kept as the escaped byte is not
/// needed by any directive we read).
struct Directives<'a> {
    rest: &'a [u8],
}

impl<'a> Directives<'a> {
    fn new(input: &'a [u8]) -> Self {
        Directives { rest: input }
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', r @ ..] = s {
        s = r;
    }
    while let [r @ .., b' ' | b'\t'] = s {
        s = r;
    }
    s
}

impl<'a> Iterator for Directives<'a> {
    type Item = (&'a [u8], Option<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            // Find the end of this directive: a comma outside quotes.
            let mut in_quotes = false;
            let mut escaped = false;
            let mut end = self.rest.len();
            for (i, &b) in self.rest.iter().enumerate() {
                if escaped {
                    escaped = false;
                } else if in_quotes && b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_quotes = !in_quotes;
                } else if b == b',' && !in_quotes {
                    end = i;
                    break;
                }
            }
            let item = &self.rest[..end];
            self.rest = if end < self.rest.len() {
                &self.rest[end + 1..]
            } else {
                &[]
            };
            let item = trim(item);
            if item.is_empty() {
                continue;
            }
            return Some(match item.iter().position(|&b| b == b'=') {
                None => (item, None),
                Some(eq) => {
                    let name = trim(&item[..eq]);
                    let mut value = trim(&item[eq + 1..]);
                    if let [b'"', inner @ .., b'"'] = value {
                        value = inner;
                    }
                    (name, Some(value))
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_parse_rfc9111_5_2() {
        let cases: &[(&str, CacheControl)] = &[
            (
                "max-age=60",
                CacheControl {
                    max_age: Some(60),
                    ..Default::default()
                },
            ),
            (
                "public, s-maxage=120, max-age=60",
                CacheControl {
                    public: true,
                    s_maxage: Some(120),
                    max_age: Some(60),
                    ..Default::default()
                },
            ),
            (
                "NO-STORE",
                CacheControl {
                    no_store: true,
                    ..Default::default()
                },
            ),
            (
                "no-cache=\"set-cookie, x\"",
                CacheControl {
                    no_cache: true,
                    ..Default::default()
                },
            ),
            (
                "private=\"x\", max-age=5",
                CacheControl {
                    private: true,
                    max_age: Some(5),
                    ..Default::default()
                },
            ),
            (
                "max-age=\"30\"",
                CacheControl {
                    max_age: Some(30),
                    ..Default::default()
                },
            ),
            (
                "max-age=10, stale-while-revalidate=30, stale-if-error=600",
                CacheControl {
                    max_age: Some(10),
                    stale_while_revalidate: Some(30),
                    stale_if_error: Some(600),
                    ..Default::default()
                },
            ),
            (
                "must-revalidate,proxy-revalidate",
                CacheControl {
                    must_revalidate: true,
                    proxy_revalidate: true,
                    ..Default::default()
                },
            ),
            (
                "max-stale",
                CacheControl {
                    max_stale: Some(u64::MAX),
                    ..Default::default()
                },
            ),
            (
                "max-stale=5, min-fresh=3, only-if-cached",
                CacheControl {
                    max_stale: Some(5),
                    min_fresh: Some(3),
                    only_if_cached: true,
                    ..Default::default()
                },
            ),
            (
                "unknown-ext=\"a,b\", immutable",
                CacheControl {
                    immutable: true,
                    ..Default::default()
                },
            ),
            (
                " , ,max-age=1,, ",
                CacheControl {
                    max_age: Some(1),
                    ..Default::default()
                },
            ),
            ("", CacheControl::default()),
        ];
        for (input, want) in cases {
            assert_eq!(&CacheControl::parse(input), want, "input: {input:?}");
        }
    }

    #[test]
    fn first_occurrence_wins_rfc9111_4_2_1() {
        assert_eq!(
            CacheControl::parse("max-age=10, max-age=99").max_age,
            Some(10)
        );
    }

    #[test]
    fn invalid_delta_seconds_is_stale_rfc9111_1_2_2() {
        assert_eq!(CacheControl::parse("max-age=abc").max_age, Some(0));
        assert_eq!(CacheControl::parse("max-age=-5").max_age, Some(0));
        assert_eq!(CacheControl::parse("max-age").max_age, Some(0));
    }

    #[test]
    fn huge_delta_seconds_capped_at_2_pow_31_rfc9111_1_2_2() {
        assert_eq!(
            CacheControl::parse("max-age=99999999999999999999999").max_age,
            Some(DELTA_SECONDS_CAP)
        );
    }

    #[test]
    fn all_field_lines_are_combined() {
        let mut h = HeaderMap::new();
        h.append(CACHE_CONTROL, http::HeaderValue::from_static("public"));
        h.append(CACHE_CONTROL, http::HeaderValue::from_static("max-age=7"));
        let cc = CacheControl::from_cache_control(&h);
        assert!(cc.public);
        assert_eq!(cc.max_age, Some(7));
        assert_eq!(CacheControl::from_headers(&h, &CDN_CACHE_CONTROL), None);
    }

    #[test]
    fn garbage_never_panics() {
        for s in [
            "\"",
            "=",
            "max-age=\"",
            "a=\"\\",
            ",,,=,=",
            "max-age=\"1\\\"2\"",
        ] {
            let _ = CacheControl::parse(s);
        }
    }
}

#[cfg(test)]
#[path = "cache_control_proptests.rs"]
mod proptests;
