//! Property tests of the authority parser (issue 13): what the cache key
//! and the upstream `Host` are made of.

use proptest::prelude::*;

use super::*;

fn scheme() -> impl Strategy<Value = Scheme> {
    prop::sample::select(vec![Scheme::Http, Scheme::Https])
}

/// Text close to an authority, so that most cases get past the first check.
fn near_authority() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9._-]{0,12}(:[0-9]{0,6})?",
        "[a-z.]{0,6}\\.{0,3}[a-z]{0,3}\\.{0,2}(:[0-9]{1,3})?",
        "\\[[0-9a-fA-F:.]{0,20}\\](:[0-9]{0,6})?",
        "[ -~]{0,20}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// No panic on any text; an accepted authority is normalised once:
    /// parse → render → parse gives the same authority (so the cache key
    /// and the upstream `Host` never disagree), its text is lower-case
    /// visible ASCII, the host is a prefix, and the default port is gone.
    #[test]
    fn parse_render_parse_is_stable(raw in near_authority(), scheme in scheme()) {
        let Ok(a) = Authority::parse(&raw, scheme) else {
            return Ok(());
        };
        let again = Authority::parse(a.as_str(), scheme);
        prop_assert_eq!(again.as_ref(), Ok(&a), "{:?} became {:?}", raw, a.as_str());
        prop_assert!(a.as_str().bytes().all(|b| b.is_ascii_graphic() && !b.is_ascii_uppercase()));
        prop_assert!(a.as_str().starts_with(a.host()));
        prop_assert_ne!(a.port(), Some(scheme.default_port()));
        prop_assert!(!a.host().is_empty() && a.host().len() <= MAX_HOST_LEN + 2);
        prop_assert_eq!(a.header_value(), a.as_str());
    }

    /// The one-pass host check is the reg-name rule as written: DNS name
    /// and IPv4 characters only, no empty label; what it accepts comes
    /// out lower-cased and otherwise as sent (a good host can still be
    /// refused for its port).
    #[test]
    fn host_check_is_the_reg_name_rule(raw in near_authority(), scheme in scheme()) {
        if raw.starts_with('[') {
            return Ok(());
        }
        let host = raw.rsplit_once(':').map_or(raw.as_str(), |(h, _)| h);
        let host = host.strip_suffix('.').unwrap_or(host);
        let rule = !host.is_empty()
            && host.len() <= MAX_HOST_LEN
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
            && !host.starts_with('.')
            && !host.ends_with('.')
            && !host.contains("..");
        match Authority::parse(&raw, scheme) {
            Ok(a) => {
                prop_assert!(rule, "{:?} accepted", raw);
                prop_assert_eq!(a.host(), host.to_ascii_lowercase());
            }
            Err(InvalidAuthority(why)) if rule => {
                prop_assert!(why.starts_with("port"), "{:?} refused: {}", raw, why);
            }
            Err(_) => {}
        }
    }

    /// Two authorities are the same site exactly when their host names
    /// (case and one final dot aside) and effective ports are equal: a key
    /// never mixes hosts.
    #[test]
    fn same_site_only_for_the_same_host_and_port(
        h1 in "[a-c]{1,2}(\\.[a-c]{1,2})?",
        h2 in "[a-c]{1,2}(\\.[a-c]{1,2})?",
        p1 in proptest::option::of(prop::sample::select(vec![80u16, 443, 8080])),
        p2 in proptest::option::of(prop::sample::select(vec![80u16, 443, 8080])),
        dot in any::<bool>(),
        upper in any::<bool>(),
        scheme in scheme(),
    ) {
        let write = |h: &str, p: Option<u16>, dot: bool, upper: bool| {
            let h = if upper { h.to_ascii_uppercase() } else { h.to_owned() };
            let d = if dot { "." } else { "" };
            p.map_or(format!("{h}{d}"), |p| format!("{h}{d}:{p}"))
        };
        let a1 = Authority::parse(&write(&h1, p1, dot, upper), scheme).expect("valid");
        let a2 = Authority::parse(&write(&h2, p2, false, false), scheme).expect("valid");
        let port = |p: Option<u16>| p.unwrap_or(scheme.default_port());
        prop_assert_eq!(a1 == a2, h1 == h2 && port(p1) == port(p2));
    }

    /// `accept-hosts` patterns: no panic on any text; a pattern written as
    /// an authority matches it; a wildcard matches subdomains only.
    #[test]
    fn host_patterns_match_what_they_name(raw in near_authority(), sub in "[a-z]{1,4}") {
        if let (Ok(p), Ok(a)) = (HostPattern::parse(&raw), Authority::parse(&raw, Scheme::Http)) {
            prop_assert!(p.matches(&a), "{:?}", raw);
            if !a.host().starts_with('[') {
                let wild = HostPattern::parse(&format!("*.{}", a.host())).expect("valid");
                let child = Authority::parse(&format!("{sub}.{}", a.host()), Scheme::Http);
                if let Ok(child) = child {
                    prop_assert!(wild.matches(&child));
                }
                prop_assert!(!wild.matches(&a));
            }
        }
    }
}
