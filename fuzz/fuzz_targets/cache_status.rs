//! `Cache-Status` (RFC 9211): this cache's member rendered after whatever
//! the upstream sent. The first line is the node name, the second the
//! upstream's value; the next bytes pick the member's fields.
//! Invariants: no panic; with a valid upstream list (or none) the result
//! parses as an RFC 8941 list whose last member is this cache's, named as
//! configured, with the parameters that were set.
#![no_main]

use http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use meridian_cache::status::{self, CacheStatus, Fwd};

fuzz_target!(|data: &[u8]| {
    let mut lines = data.splitn(3, |&b| b == b'\n');
    let name = String::from_utf8_lossy(lines.next().unwrap_or_default());
    let upstream = lines.next().and_then(|l| HeaderValue::from_bytes(l).ok());
    let bits = lines.next().unwrap_or_default();
    let bit = |i: usize| bits.get(i / 8).is_some_and(|b| b >> (i % 8) & 1 == 1);
    let num = |i: usize| {
        bits.get(i..i + 8)
            .map_or(0, |b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    };
    let fwds = [
        Fwd::Miss,
        Fwd::UriMiss,
        Fwd::VaryMiss,
        Fwd::Stale,
        Fwd::Request,
        Fwd::Bypass,
    ];
    let cs = CacheStatus {
        hit: bit(0),
        fwd: bit(1).then(|| fwds[bits.first().map_or(0, |b| usize::from(*b >> 5) % 6)]),
        fwd_status: bit(2).then(|| num(2) as u16),
        ttl: bit(3).then(|| num(10)),
        stored: bit(4),
        collapsed: bit(5),
        detail: bit(6).then_some(status::detail::STALE_IF_ERROR),
    };
    let node = status::cache_name(&name);
    let value = cs.header_value(&node, upstream.as_ref());
    let upstream_ok = upstream.as_ref().is_none_or(|u| {
        u.as_bytes().trim_ascii().is_empty()
            || sfv::Parser::new(u.as_bytes()).parse::<sfv::List>().is_ok()
    });
    if !upstream_ok {
        return;
    }
    let list = sfv::Parser::new(value.as_bytes())
        .parse::<sfv::List>()
        .unwrap_or_else(|e| panic!("{value:?} is not a list: {e}"));
    let Some(sfv::ListEntry::Item(last)) = list.last() else {
        panic!("{value:?}: no member");
    };
    let want = name
        .chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control())
        .collect::<String>();
    let got = match &last.bare_item {
        sfv::BareItem::Token(t) => t.as_str().to_owned(),
        sfv::BareItem::String(s) => s.as_str().to_owned(),
        other => panic!("name is {other:?}"),
    };
    assert_eq!(got, want);
    assert_eq!(last.params.iter().any(|(k, _)| k.as_str() == "hit"), cs.hit);
});
