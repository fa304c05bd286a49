//! Property tests of `Range` (RFC 9110 §14) and the 206 bodies built from
//! it (issue 13).

use proptest::prelude::*;

use super::*;

/// One range-spec as a client writes it, with the bytes it asks for in a
/// body of `len` bytes (`None`: unsatisfiable there).
#[derive(Debug, Clone)]
enum Req {
    Int(u64, Option<u64>),
    Suffix(u64),
}

impl Req {
    fn text(&self) -> String {
        match self {
            Req::Int(a, Some(b)) => format!("{a}-{b}"),
            Req::Int(a, None) => format!("{a}-"),
            Req::Suffix(n) => format!("-{n}"),
        }
    }

    /// The half-open byte interval asked for, clamped to the body.
    fn wanted(&self, len: u64) -> Option<(u64, u64)> {
        let (start, end) = match *self {
            Req::Int(a, b) => (a, b.map_or(len, |b| b.saturating_add(1).min(len))),
            Req::Suffix(n) => (len.saturating_sub(n), len),
        };
        (start < end).then_some((start, end))
    }
}

fn spec(len: u64) -> impl Strategy<Value = Req> {
    let pos = 0..len.saturating_mul(2).max(1);
    prop_oneof![
        (pos.clone(), pos.clone()).prop_map(|(a, b)| Req::Int(a.min(b), Some(a.max(b)))),
        pos.clone().prop_map(|a| Req::Int(a, None)),
        pos.prop_map(Req::Suffix),
    ]
}

fn body_of(len: u64) -> Bytes {
    Bytes::from((0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// No panic on any value, and a partial answer only ever names bytes
    /// inside the object, ascending, disjoint and non-adjacent.
    #[test]
    fn any_value_yields_ranges_inside_the_object(
        value in "[ ,0-9=a-zA-Z-]{0,40}|bytes=[0-9, -]{0,40}",
        len in 0u64..10_000,
    ) {
        if let RangeOutcome::Partial(ranges) = parse_range(value.as_bytes(), len) {
            prop_assert!(!ranges.is_empty());
            for r in &ranges {
                prop_assert!(r.start <= r.end && r.end < len, "{:?} outside {}", r, len);
            }
            for w in ranges.windows(2) {
                prop_assert!(w[0].end.saturating_add(1) < w[1].start, "{:?}", w);
            }
        }
    }

    /// A valid range set covers exactly the satisfiable bytes the specs
    /// ask for (coalescing loses none and adds none), or is refused as a
    /// whole: 416 only when no spec is satisfiable, 200 for an overlap
    /// abuse (§17.15) or an empty body with a suffix spec.
    #[test]
    fn a_range_set_yields_exactly_the_bytes_asked_for(
        (len, specs) in (0u64..2_000).prop_flat_map(|len| {
            (Just(len), proptest::collection::vec(spec(len), 1..8))
        }),
        ows in "[ ]{0,2}",
        unit in prop::sample::select(vec!["bytes", "BYTES", "Bytes"]),
    ) {
        let value = format!(
            "{unit}={}",
            specs.iter().map(Req::text).collect::<Vec<_>>().join(&format!(",{ows}"))
        );
        let wanted: Vec<(u64, u64)> = specs.iter().filter_map(|s| s.wanted(len)).collect();
        match parse_range(value.as_bytes(), len) {
            RangeOutcome::Partial(ranges) => {
                for i in 0..len {
                    let asked = wanted.iter().any(|&(s, e)| s <= i && i < e);
                    let given = ranges.iter().any(|r| r.start <= i && i <= r.end);
                    prop_assert_eq!(asked, given, "byte {} of {} for {:?}", i, len, value);
                }
            }
            RangeOutcome::Unsatisfiable => prop_assert!(wanted.is_empty(), "{}", value),
            RangeOutcome::Full => {
                let total: u64 = wanted.iter().map(|(s, e)| e - s).sum();
                prop_assert!(len == 0 || (wanted.len() > 1 && total > len), "{}", value);
            }
        }
    }

    /// The 206 body holds exactly the object's bytes for each range: one
    /// part is the slice itself; a multipart body has every part's bytes
    /// after its own `Content-Range` head, and the announced length.
    #[test]
    fn rendered_parts_hold_the_objects_bytes(
        (len, specs) in (1u64..600).prop_flat_map(|len| {
            (Just(len), proptest::collection::vec(spec(len), 1..5))
        }),
    ) {
        let value = format!("bytes={}", specs.iter().map(Req::text).collect::<Vec<_>>().join(","));
        let RangeOutcome::Partial(ranges) = parse_range(value.as_bytes(), len) else {
            return Ok(());
        };
        let body = body_of(len);
        let out = render(&ranges, &body, None, "b0undary");
        let slice = |r: &ByteRange| body.slice(r.start as usize..=r.end as usize);
        if let [one] = ranges.as_slice() {
            prop_assert_eq!(&out.body, &slice(one));
            prop_assert_eq!(out.content_range, Some(content_range(*one, len)));
        } else {
            let framing = multipart(&ranges, len, None, "b0undary");
            prop_assert_eq!(framing.content_length, out.body.len() as u64);
            let mut at = 0usize;
            for (head, r) in &framing.parts {
                prop_assert_eq!(&out.body[at..at + head.len()], &head[..]);
                at += head.len();
                let data = slice(r);
                prop_assert_eq!(&out.body[at..at + data.len()], &data[..]);
                at += data.len();
            }
            prop_assert_eq!(&out.body[at..], &framing.epilogue[..]);
        }
    }

    /// `render` is total: ranges from anywhere (a caller's mistake) never
    /// panic and never yield a byte from outside the body.
    #[test]
    fn render_clamps_any_ranges(
        raw in proptest::collection::vec((0u64..300, 0u64..300), 0..4),
        len in 0u64..200,
    ) {
        let ranges: Vec<ByteRange> = raw.iter().map(|&(start, end)| ByteRange { start, end }).collect();
        let body = body_of(len);
        let out = render(&ranges, &body, None, "x");
        prop_assert!(out.body.len() as u64 <= len || ranges.len() > 1);
    }
}
