//! Property tests of the cache key (issue 13): it never mixes hosts or
//! schemes, and equal keys come only from equivalent requests.

use proptest::prelude::*;

use super::*;

/// A host as the proxy hands it over: a normalised authority (lower or
/// upper case here, the key lower-cases it), maybe with a port.
fn host() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9]{1,6}(\\.[a-z]{1,3})?(:[0-9]{1,5})?"
}

fn scheme() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["http", "https"])
}

/// A path and query from the bytes a request target may hold.
fn target() -> impl Strategy<Value = String> {
    "/[a-zA-Z0-9/._~%-]{0,12}(\\?[a-z0-9=&]{0,16})?"
}

fn options() -> impl Strategy<Value = KeyOptions> {
    (any::<bool>(), proptest::collection::vec("[a-z]{1,2}", 0..3)).prop_map(
        |(sort_query, drop_params)| KeyOptions {
            sort_query,
            drop_params,
        },
    )
}

/// `host` as the key writes it: lower case, without the default port.
fn site(scheme: &str, host: &str) -> String {
    strip_default_port(scheme, host).to_ascii_lowercase()
}

/// The query parameters that count, as a sorted list when order does not.
fn params(query: Option<&str>, opts: &KeyOptions) -> Vec<String> {
    let Some(q) = query else { return Vec::new() };
    let mut p: Vec<String> = q
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| {
            !opts
                .drop_params
                .iter()
                .any(|d| d == p.split_once('=').map_or(*p, |(n, _)| n))
        })
        .map(str::to_owned)
        .collect();
    if opts.sort_query {
        p.sort();
    }
    p
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// A key never mixes hosts or schemes, and two requests share a key
    /// only when they are equivalent: same scheme, same host (case and
    /// default port aside), same path, and the same query (its parameters
    /// in any order when `sort-query` is on, tracking ones dropped).
    #[test]
    fn equal_keys_only_for_equivalent_requests(
        (s1, h1, t1) in (scheme(), host(), target()),
        (s2, h2, t2) in (scheme(), host(), target()),
        same_host in any::<bool>(),
        opts in options(),
    ) {
        let h2 = if same_host { h1.to_ascii_uppercase() } else { h2 };
        let k1 = cache_key(s1, &h1, &t1, &opts);
        let k2 = cache_key(s2, &h2, &t2, &opts);
        let split = |t: &str| match t.split_once('?') {
            Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
            None => (t.to_owned(), None),
        };
        let ((p1, q1), (p2, q2)) = (split(&t1), split(&t2));
        let equivalent = s1 == s2
            && site(s1, &h1) == site(s2, &h2)
            && p1 == p2
            && if opts.rewrites_query() {
                params(q1.as_deref(), &opts) == params(q2.as_deref(), &opts)
            } else {
                q1 == q2
            };
        prop_assert_eq!(k1 == k2, equivalent, "{} vs {}", k1, k2);
        let prefix = format!("{s1}://{}/", site(s1, &h1));
        prop_assert!(k1.starts_with(&prefix), "{}", k1);
    }

    /// Any text in any argument: no panic, and the key still starts with
    /// the scheme and the lower-cased host.
    #[test]
    fn any_target_keeps_the_host_first(host in "[ -~]{0,20}", target in proptest::collection::vec(any::<char>(), 0..30).prop_map(String::from_iter), opts in options()) {
        let k = cache_key("http", &host, &target, &opts);
        let prefix = format!("http://{}", site("http", &host));
        prop_assert!(k.starts_with(&prefix));
    }
}
