//! Property tests of `Cache-Status` (RFC 9211): render → parse round trip
//! through an RFC 8941 parser (issue 13).

use proptest::prelude::*;

use super::*;

/// One list member as read back: the cache's name and its parameters.
#[derive(Debug, PartialEq)]
struct Member {
    name: String,
    hit: bool,
    fwd: Option<String>,
    fwd_status: Option<i64>,
    ttl: Option<i64>,
    stored: bool,
    collapsed: bool,
    detail: Option<String>,
}

/// The parse side of `Cache-Status` (RFC 9211 §2): an RFC 8941 list of
/// items, each a token or string naming a cache, with parameters.
/// `None` when the value is not such a list.
fn parse(value: &HeaderValue) -> Option<Vec<Member>> {
    let list = sfv::Parser::new(value.as_bytes())
        .parse::<sfv::List>()
        .ok()?;
    list.iter()
        .map(|entry| {
            let sfv::ListEntry::Item(item) = entry else {
                return None;
            };
            let name = match &item.bare_item {
                sfv::BareItem::Token(t) => t.as_str().to_owned(),
                sfv::BareItem::String(s) => s.as_str().to_owned(),
                _ => return None,
            };
            let p = |k: &str| item.params.get(k);
            let flag = |k: &str| matches!(p(k), Some(sfv::BareItem::Boolean(true)));
            let int = |k: &str| match p(k) {
                Some(sfv::BareItem::Integer(n)) => Some(i64::from(*n)),
                _ => None,
            };
            let token = |k: &str| match p(k) {
                Some(sfv::BareItem::Token(t)) => Some(t.as_str().to_owned()),
                _ => None,
            };
            Some(Member {
                name,
                hit: flag("hit"),
                fwd: token("fwd"),
                fwd_status: int("fwd-status"),
                ttl: int("ttl"),
                stored: flag("stored"),
                collapsed: flag("collapsed"),
                detail: token("detail"),
            })
        })
        .collect()
}

const FWDS: [Fwd; 6] = [
    Fwd::Miss,
    Fwd::UriMiss,
    Fwd::VaryMiss,
    Fwd::Stale,
    Fwd::Request,
    Fwd::Bypass,
];
const DETAILS: [&str; 7] = [
    detail::STALE_WHILE_REVALIDATE,
    detail::STALE_IF_ERROR,
    detail::UPSTREAM_TIMEOUT,
    detail::UPSTREAM_CONNECT,
    detail::TOO_LARGE,
    detail::FILL_BUDGET,
    detail::PURGE_LAG,
];

fn status() -> impl Strategy<Value = CacheStatus> {
    (
        any::<bool>(),
        proptest::option::of(prop::sample::select(FWDS.to_vec())),
        proptest::option::of(any::<u16>()),
        proptest::option::of(prop_oneof![-1_000_000i64..1_000_000, any::<i64>()]),
        (any::<bool>(), any::<bool>()),
        proptest::option::of(prop::sample::select(DETAILS.to_vec())),
    )
        .prop_map(
            |(hit, fwd, fwd_status, ttl, (stored, collapsed), detail)| CacheStatus {
                hit,
                fwd,
                fwd_status,
                ttl,
                stored,
                collapsed,
                detail,
            },
        )
}

/// What a member should read back as: RFC 8941 Integers stop at 15
/// digits, so a ttl past them is written at the limit.
fn expected(name: &str, cs: &CacheStatus) -> Member {
    Member {
        name: name
            .chars()
            .filter(|c| c.is_ascii() && !c.is_ascii_control())
            .collect(),
        hit: cs.hit,
        fwd: cs.fwd.map(|f| f.as_str().to_owned()),
        fwd_status: cs.fwd_status.map(i64::from),
        ttl: cs.ttl.map(|t| t.clamp(-MAX_SF_INTEGER, MAX_SF_INTEGER)),
        stored: cs.stored,
        collapsed: cs.collapsed,
        detail: cs.detail.map(str::to_owned),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// render → parse: whatever the node is called and whatever the
    /// member holds, the header is a valid RFC 8941 list, the upstream
    /// members come first unchanged, and the last member reads back as
    /// this cache's name and fields.
    #[test]
    fn render_then_parse_round_trips(
        name in prop_oneof![
            proptest::collection::vec(any::<char>(), 0..24).prop_map(String::from_iter).boxed(),
            "[a-z][a-z0-9-]{0,10}".boxed(),
        ],
        cs in status(),
        up in proptest::option::of((status(), "[a-z][a-z0-9-]{0,6}")),
    ) {
        let upstream = up.as_ref().map(|(s, n)| s.header_value(&cache_name(n), None));
        let value = cs.header_value(&cache_name(&name), upstream.as_ref());
        let members = parse(&value);
        prop_assert!(members.is_some(), "not a list: {:?}", value);
        let mut members = members.unwrap_or_default();
        let last = members.pop();
        prop_assert_eq!(last, Some(expected(&name, &cs)), "{:?}", value);
        match up {
            Some((s, n)) => prop_assert_eq!(members, vec![expected(&n, &s)]),
            None => prop_assert!(members.is_empty()),
        }
    }

    /// Any upstream value (valid or not) and any name: no panic, and the
    /// header value is always one a client can be sent.
    #[test]
    fn any_upstream_value_never_panics(up in "[ -~]{0,200}", name in proptest::collection::vec(any::<char>(), 0..8).prop_map(String::from_iter), cs in status()) {
        let up = HeaderValue::from_str(&up).expect("visible");
        let value = cs.header_value(&cache_name(&name), Some(&up));
        prop_assert!(value.to_str().is_ok());
    }
}
