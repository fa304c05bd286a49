//! Property tests of the Cache-Control parsers (issue 13): the lenient
//! RFC 9111 §5.2 parser used for Cache-Control and Surrogate-Control, and
//! the strict RFC 8941 one used for CDN-Cache-Control.

use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;

use super::*;

/// The directives a response or request can carry, as generated values.
fn directives() -> impl Strategy<Value = CacheControl> {
    let secs = || proptest::option::of(0u64..=DELTA_SECONDS_CAP);
    (
        (secs(), secs(), secs(), secs(), secs(), secs()),
        proptest::collection::vec(any::<bool>(), 10),
    )
        .prop_map(
            |((max_age, s_maxage, swr, sie, max_stale, min_fresh), b)| CacheControl {
                max_age,
                s_maxage,
                stale_while_revalidate: swr,
                stale_if_error: sie,
                max_stale,
                min_fresh,
                no_store: b[0],
                no_cache: b[1],
                private: b[2],
                public: b[3],
                must_revalidate: b[4],
                proxy_revalidate: b[5],
                no_transform: b[6],
                immutable: b[7],
                only_if_cached: b[8],
            },
        )
}

/// Renders `cc` as Cache-Control members (the renderer the parser has
/// to agree with; Meridian itself never writes this field from a struct).
fn members(cc: &CacheControl) -> Vec<String> {
    let mut out = Vec::new();
    let valued = [
        ("max-age", cc.max_age),
        ("s-maxage", cc.s_maxage),
        ("stale-while-revalidate", cc.stale_while_revalidate),
        ("stale-if-error", cc.stale_if_error),
        ("max-stale", cc.max_stale),
        ("min-fresh", cc.min_fresh),
    ];
    for (name, v) in valued {
        if let Some(v) = v {
            out.push(format!("{name}={v}"));
        }
    }
    let flags = [
        ("no-store", cc.no_store),
        ("no-cache", cc.no_cache),
        ("private", cc.private),
        ("public", cc.public),
        ("must-revalidate", cc.must_revalidate),
        ("proxy-revalidate", cc.proxy_revalidate),
        ("no-transform", cc.no_transform),
        ("immutable", cc.immutable),
        ("only-if-cached", cc.only_if_cached),
    ];
    for (name, on) in flags {
        if on {
            out.push(name.to_owned());
        }
    }
    out
}

/// Optional white space, as RFC 9110 §5.6.1 allows around list commas.
fn ows() -> impl Strategy<Value = String> {
    "[ \t]{0,2}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// No panic on any text, and the same text always reads the same.
    #[test]
    fn any_text_parses_the_same_way_twice(s in prop_oneof![
        proptest::collection::vec(any::<char>(), 0..64).prop_map(String::from_iter),
        "[a-z=,\" \\\\-]{0,64}".boxed(),
    ]) {
        prop_assert_eq!(CacheControl::parse(&s), CacheControl::parse(&s));
    }

    /// Valued directives never exceed the 2^31 cap (RFC 9111 §1.2.2),
    /// whatever digits an origin sends; `max-stale` alone means "any".
    #[test]
    fn delta_seconds_are_capped(digits in "[0-9]{1,30}", junk in "[^0-9,\"]{1,3}") {
        let cc = CacheControl::parse(&format!("max-age={digits}, s-maxage={digits}{junk}"));
        let want = digits.parse::<u64>().map_or(DELTA_SECONDS_CAP, |n| n.min(DELTA_SECONDS_CAP));
        prop_assert_eq!(cc.max_age, Some(want));
        // Trailing junk after the digits: invalid, so stale (0).
        let junk_trimmed = junk.trim_matches([' ', '\t']);
        let want_s = if junk_trimmed.is_empty() { want } else { 0 };
        prop_assert_eq!(cc.s_maxage, Some(want_s));
    }

    /// render → parse → render is stable: a struct written as a field
    /// reads back as itself, in any member order, any case, with any
    /// optional white space and empty list elements.
    #[test]
    fn render_then_parse_round_trips(
        cc in directives(),
        seed in any::<u64>(),
        upper in any::<bool>(),
        sep in (ows(), ows(), "[,]{1,2}"),
    ) {
        let mut m = members(&cc);
        // A deterministic shuffle from the seed.
        let n = m.len();
        for i in 0..n {
            let j = (seed.rotate_left(i as u32) as usize) % n;
            m.swap(i, j);
        }
        let (before, after, commas) = sep;
        let joined = m.join(&format!("{before}{commas}{after}"));
        let text = if upper { joined.to_ascii_uppercase() } else { joined };
        let parsed = CacheControl::parse(&text);
        prop_assert_eq!(&parsed, &cc, "from {:?}", text);
        prop_assert_eq!(CacheControl::parse(&members(&parsed).join(", ")), parsed);
    }

    /// Several field lines are one list (RFC 9110 §5.3): split anywhere
    /// between members, the field reads the same.
    #[test]
    fn field_lines_combine(cc in directives(), at in any::<prop::sample::Index>()) {
        let m = members(&cc);
        let cut = if m.is_empty() { 0 } else { at.index(m.len() + 1) };
        let mut h = HeaderMap::new();
        for part in [&m[..cut], &m[cut..]] {
            let v = HeaderValue::from_str(&part.join(",")).expect("ascii");
            h.append(http::header::CACHE_CONTROL, v);
        }
        prop_assert_eq!(CacheControl::from_cache_control(&h), cc);
    }

    /// The first occurrence of a valued directive wins (RFC 9111 §4.2.1),
    /// quoted or not, whatever follows it.
    #[test]
    fn first_occurrence_wins(a in 0u64..1_000_000, b in 0u64..1_000_000, quote in any::<bool>()) {
        let q = if quote { "\"" } else { "" };
        let cc = CacheControl::parse(&format!("max-age={q}{a}{q}, max-age={b}, max-age=x"));
        prop_assert_eq!(cc.max_age, Some(a));
    }

    /// Quoted strings hide commas: an unknown directive's quoted value
    /// never leaks a directive.
    #[test]
    fn quoted_values_hide_directives(inner in "[a-z =,-]{0,40}") {
        let cc = CacheControl::parse(&format!("ext=\"{inner}, no-store\", max-age=5"));
        prop_assert!(!cc.no_store);
        prop_assert_eq!(cc.max_age, Some(5));
    }

    /// CDN-Cache-Control: no panic on any bytes a header value can hold,
    /// and the delta-seconds cap holds for the strict parser too.
    #[test]
    fn structured_never_panics(bytes in proptest::collection::vec(0x20u8..0x7f, 0..64)) {
        let mut h = HeaderMap::new();
        h.append(&CDN_CACHE_CONTROL, HeaderValue::from_bytes(&bytes).expect("visible"));
        if let Some(cc) = CacheControl::from_structured(&h, &CDN_CACHE_CONTROL) {
            for v in [cc.max_age, cc.s_maxage, cc.stale_while_revalidate, cc.stale_if_error] {
                prop_assert!(v.is_none_or(|v| v <= DELTA_SECONDS_CAP));
            }
        }
    }

    /// CDN-Cache-Control as a Structured Field dictionary (RFC 9213 §2.1):
    /// a serialised dictionary reads back as the directives it holds,
    /// negative integers as 0 and large ones capped.
    #[test]
    fn structured_round_trips(
        max_age in proptest::option::of(-999_999_999_999_999i64..=999_999_999_999_999),
        no_store in any::<bool>(),
        private in proptest::option::of(any::<bool>()),
    ) {
        let mut dict = sfv::Dictionary::new();
        if let Some(n) = max_age {
            let n = sfv::integer(n);
            dict.insert(sfv::key_ref("max-age").to_owned(), sfv::Item::new(n).into());
        }
        if no_store {
            dict.insert(sfv::key_ref("no-store").to_owned(), sfv::Item::new(true).into());
        }
        if let Some(p) = private {
            dict.insert(sfv::key_ref("private").to_owned(), sfv::Item::new(p).into());
        }
        let Some(text) = sfv::FieldType::serialize(&dict) else {
            // An empty dictionary serialises to nothing: the field is absent.
            prop_assert!(max_age.is_none() && !no_store && private.is_none());
            return Ok(());
        };
        let mut h = HeaderMap::new();
        h.append(&CDN_CACHE_CONTROL, HeaderValue::from_str(&text).expect("ascii"));
        let cc = CacheControl::from_structured(&h, &CDN_CACHE_CONTROL).expect("parses");
        let want = max_age.map(|n| n.max(0).unsigned_abs().min(DELTA_SECONDS_CAP));
        prop_assert_eq!(cc.max_age, want);
        prop_assert_eq!(cc.no_store, no_store);
        prop_assert_eq!(cc.private, private == Some(true));
    }
}
