//! Property tests of `Accept-Encoding` negotiation (RFC 9110 §12.5.3),
//! which is also the normalisation a cache varies on (issue 13).

use proptest::prelude::*;

use super::*;

const ALL: [Coding; 4] = [Coding::Br, Coding::Zstd, Coding::Gzip, Coding::Identity];

/// One member: a coding name (or `*`), with its weight in thousandths.
fn member() -> impl Strategy<Value = (String, Option<u16>)> {
    (
        prop::sample::select(vec![
            "br", "zstd", "gzip", "x-gzip", "identity", "*", "deflate", "GZip",
        ]),
        proptest::option::of(prop_oneof![Just(0u16), Just(1000), 0u16..=1000]),
    )
        .prop_map(|(n, q)| (n.to_owned(), q))
}

fn write(members: &[(String, Option<u16>)]) -> HeaderMap {
    let text = members
        .iter()
        .map(|(n, q)| match q {
            None => n.clone(),
            Some(1000) => format!("{n};q=1"),
            Some(q) => format!("{n};q=0.{q:03}"),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let mut h = HeaderMap::new();
    h.append(
        ACCEPT_ENCODING,
        HeaderValue::from_str(&text).expect("ascii"),
    );
    h
}

/// The weight the request gives `c`: its first member, else `*`'s.
fn weight_of(members: &[(String, Option<u16>)], c: Coding) -> Option<u16> {
    let named = members
        .iter()
        .find(|(n, _)| Coding::parse(n) == Some(c))
        .map(|(_, q)| q.unwrap_or(1000));
    let star = members
        .iter()
        .rfind(|(n, _)| n == "*")
        .map(|(_, q)| q.unwrap_or(1000));
    named.or(star)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// No panic on any field; the answer is an offered coding or identity.
    #[test]
    fn any_field_negotiates_an_offered_coding(
        value in "[ -~]{0,60}",
        offered in proptest::collection::vec(prop::sample::select(ALL.to_vec()), 0..4),
    ) {
        let mut h = HeaderMap::new();
        h.append(ACCEPT_ENCODING, HeaderValue::from_str(&value).expect("visible"));
        let c = negotiate(&h, &offered);
        prop_assert!(c == Coding::Identity || offered.contains(&c));
    }

    /// The chosen coding is never one the client refused (q=0), and has
    /// the highest weight among the offered codings the client accepts.
    #[test]
    fn the_best_acceptable_coding_wins(members in proptest::collection::vec(member(), 1..6)) {
        let c = negotiate(&write(&members), &Coding::PREFERENCE);
        if c != Coding::Identity {
            let q = weight_of(&members, c).unwrap_or(0);
            prop_assert!(q > 0, "{:?} refused in {:?}", c, members);
            for other in Coding::PREFERENCE {
                prop_assert!(weight_of(&members, other).unwrap_or(0) <= q, "{:?} over {:?}", other, c);
            }
        }
    }

    /// Case, white space and the order of members naming different
    /// codings do not change the answer, so such requests share the
    /// stored variant.
    #[test]
    fn writing_does_not_change_the_answer(
        members in proptest::collection::vec(member(), 1..5),
        seed in any::<u64>(),
    ) {
        // Keep one member per coding (and per `*`): with duplicates the
        // first one counts, so order matters by design.
        let mut seen = Vec::new();
        let mut unique: Vec<(String, Option<u16>)> = Vec::new();
        for (n, q) in members {
            let id = Coding::parse(&n).map(|c| c.token()).unwrap_or(if n == "*" { "*" } else { "" });
            if id.is_empty() || seen.contains(&id) {
                continue;
            }
            seen.push(id);
            unique.push((n, q));
        }
        let want = negotiate(&write(&unique), &Coding::PREFERENCE);
        let n = unique.len();
        for i in 0..n {
            unique.swap(i, (seed.rotate_left(i as u32 * 7) as usize) % n.max(1));
        }
        let shuffled: Vec<(String, Option<u16>)> =
            unique.iter().map(|(n, q)| (format!(" {}", n.to_ascii_uppercase()), *q)).collect();
        prop_assert_eq!(negotiate(&write(&shuffled), &Coding::PREFERENCE), want);
    }
}
