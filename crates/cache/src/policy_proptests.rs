//! Property tests of the `Age` field (RFC 9111 §5.1) and the choice of
//! the targeted field that governs a response (RFC 9213 §2.2) (issue 13).

use http::HeaderValue;
use http::header::CACHE_CONTROL;
use proptest::prelude::*;

use super::*;
use crate::cache_control::DELTA_SECONDS_CAP;

fn map(pairs: &[(&HeaderName, String)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            (*k).clone(),
            HeaderValue::from_str(v).expect("visible ascii"),
        );
    }
    h
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// `Age` is delta-seconds: digits read as their value capped at 2^31;
    /// of a list (one line or several) the first member counts; anything
    /// else is ignored (zero). Never a panic, never past the cap.
    #[test]
    fn age_reads_the_first_member(
        digits in "[0-9]{1,25}",
        rest in proptest::collection::vec("[ -~]{0,10}", 0..3),
        ws in "[ \t]{0,2}",
        lines in any::<bool>(),
    ) {
        let first = format!("{ws}{digits}{ws}");
        let h = if lines {
            let mut pairs = vec![(&http::header::AGE, first)];
            pairs.extend(rest.iter().map(|r| (&http::header::AGE, r.clone())));
            map(&pairs)
        } else {
            let mut members = vec![first];
            members.extend(rest.iter().cloned());
            map(&[(&http::header::AGE, members.join(","))])
        };
        let want = digits.parse::<u64>().map_or(DELTA_SECONDS_CAP, |n| n.min(DELTA_SECONDS_CAP));
        prop_assert_eq!(age_value(&h), Duration::from_secs(want));
    }

    /// Any `Age` text: no panic, and the value never exceeds the cap; the
    /// corrected initial age (§4.2.3) is never below it.
    #[test]
    fn any_age_is_bounded(value in "[ -~]{0,30}", date in "[ -~]{0,30}") {
        let h = map(&[(&http::header::AGE, value), (&DATE, date)]);
        let age = age_value(&h);
        prop_assert!(age <= Duration::from_secs(DELTA_SECONDS_CAP));
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        prop_assert!(corrected_initial_age(&h, now - Duration::from_secs(2), now) >= age);
    }

    /// RFC 9213 §2.2: the first targeted field present and understood
    /// governs, Cache-Control otherwise; a CDN-Cache-Control that does not
    /// parse as a dictionary is passed over as a whole.
    #[test]
    fn the_first_understood_targeted_field_governs(
        cdn in proptest::option::of(prop_oneof![
            (0u64..100_000).prop_map(|n| format!("max-age={n}")),
            Just("max-age=\"60\", ,".to_owned()),
            "[ -~]{0,12}",
        ]),
        surrogate in proptest::option::of((0u64..100_000).prop_map(|n| format!("max-age={n}"))),
        cc in (0u64..100_000).prop_map(|n| format!("max-age={n}")),
    ) {
        let mut pairs = vec![(&CACHE_CONTROL, cc.clone())];
        if let Some(v) = &cdn {
            pairs.push((&CDN_CACHE_CONTROL, v.clone()));
        }
        if let Some(v) = &surrogate {
            pairs.push((&SURROGATE_CONTROL, v.clone()));
        }
        let h = map(&pairs);
        let (got, targeted) = response_directives(&Policy::default(), &h);
        let from_cdn = CacheControl::from_structured(&h, &CDN_CACHE_CONTROL)
            .filter(|c| *c != CacheControl::default());
        let want = match (from_cdn, &surrogate) {
            (Some(c), _) => (c, true),
            (None, Some(s)) => (CacheControl::parse(s), true),
            (None, None) => (CacheControl::parse(&cc), false),
        };
        prop_assert_eq!((got, targeted), want);
    }
}
