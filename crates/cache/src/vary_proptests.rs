//! Property tests of `Vary` secondary keys (RFC 9111 §4.1) and the
//! normalisation of the request fields they nominate (issue 13).

use http::HeaderValue;
use proptest::prelude::*;

use super::*;

fn map(pairs: &[(HeaderName, String)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(k.clone(), HeaderValue::from_str(v).expect("visible ascii"));
    }
    h
}

/// A language range with its weight in thousandths.
fn language() -> impl Strategy<Value = (String, u16)> {
    (
        "[a-z]{1,3}(-[a-z0-9]{1,4})?|\\*",
        prop_oneof![Just(1000u16), 0u16..1000],
    )
}

/// Writes a weight the many ways RFC 9110 §12.4.2 allows (`q=0.5`,
/// `Q=0.500`; `q=1`, `q=1.0`, or none for 1).
fn weight(q: u16, style: u8) -> String {
    let k = if style & 1 == 0 { "q" } else { "Q" };
    if q == 1000 {
        return match style % 3 {
            0 => String::new(),
            1 => format!(";{k}=1"),
            _ => format!(" ; {k}=1.000"),
        };
    }
    let long = format!("{q:03}");
    let short = long.trim_end_matches('0');
    match (style >> 1) % 2 {
        0 if short.is_empty() => format!(";{k}=0"),
        0 => format!(";{k}=0.{short}"),
        _ => format!("; {k}=0.{long}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// No panic on any Vary and any nominated request values, and a
    /// stored variant always matches the request it was stored for.
    #[test]
    fn a_variant_matches_its_own_request(
        vary in "[a-zA-Z, *-]{0,40}",
        values in proptest::collection::vec(("[a-c]", "[ -~]{0,20}"), 0..6),
    ) {
        let resp = map(&[(VARY, vary)]);
        let req = map(&values
            .iter()
            .map(|(n, v)| (HeaderName::from_bytes(n.as_bytes()).expect("name"), v.clone()))
            .collect::<Vec<_>>());
        let variant = Variant::new(&resp, &req);
        prop_assert!(variant.matches(&req));
    }

    /// Values that differ after normalisation never share a variant:
    /// byte-compared fields (not Accept-Encoding or Accept-Language) only
    /// match when their lists of trimmed members are equal.
    #[test]
    fn different_values_never_share_a_variant(a in "[ -~]{0,16}", b in "[ -~]{0,16}") {
        let resp = map(&[(VARY, "x-device".into())]);
        let name = HeaderName::from_static("x-device");
        let variant = Variant::new(&resp, &map(&[(name.clone(), a.clone())]));
        let members = |s: &str| -> Vec<String> {
            s.split(',').map(|m| m.trim().to_owned()).filter(|m| !m.is_empty()).collect()
        };
        let same = members(&a) == members(&b);
        prop_assert_eq!(variant.matches(&map(&[(name, b)])), same);
    }

    /// Accept-Language: the same preferences share a variant however they
    /// are written (case, white space, `q=1` or none, `q=0.5` or
    /// `q=0.500`, split over field lines); a different tag or weight never
    /// does.
    #[test]
    fn accept_language_normalises_the_same_preferences(
        langs in proptest::collection::vec(language(), 1..5),
        style in proptest::collection::vec(any::<u8>(), 5),
        upper in any::<bool>(),
        other in language(),
    ) {
        let write = |langs: &[(String, u16)], style: &[u8], upper: bool| -> HeaderMap {
            let members: Vec<String> = langs
                .iter()
                .zip(style)
                .map(|((tag, q), s)| {
                    let tag = if upper { tag.to_ascii_uppercase() } else { tag.clone() };
                    format!("{tag}{}", weight(*q, *s))
                })
                .collect();
            let lines: Vec<(HeaderName, String)> = if style[0] & 4 == 0 {
                vec![(ACCEPT_LANGUAGE, members.join(", "))]
            } else {
                members.into_iter().map(|m| (ACCEPT_LANGUAGE, m)).collect()
            };
            map(&lines)
        };
        let resp = map(&[(VARY, "accept-language".into())]);
        let plain = write(&langs, &[0; 5], false);
        let variant = Variant::new(&resp, &plain);
        prop_assert!(variant.matches(&write(&langs, &style, upper)));
        // Change one member's tag or weight to something else.
        let mut changed = langs.clone();
        changed[0] = other.clone();
        // The model of RFC 9110 §12.5.4 preferences: tags without case,
        // ordered by weight (stable among equal weights).
        let model = |l: &[(String, u16)]| {
            let mut m: Vec<(String, u16)> =
                l.iter().map(|(t, q)| (t.to_ascii_lowercase(), *q)).collect();
            m.sort_by_key(|r| std::cmp::Reverse(r.1));
            m
        };
        let same_meaning = model(&langs) == model(&changed);
        prop_assert_eq!(variant.matches(&write(&changed, &[0; 5], false)), same_meaning);
        // The canonical form is a fixed point.
        let canonical = normalized(&plain, &ACCEPT_LANGUAGE).expect("present");
        let again = map(&[(ACCEPT_LANGUAGE, String::from_utf8(canonical.to_vec()).expect("ascii"))]);
        prop_assert_eq!(normalized(&again, &ACCEPT_LANGUAGE), Some(canonical));
    }
}
