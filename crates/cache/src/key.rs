//! The cache key: scheme, host and path with query (RFC 9111 §2: "the
//! primary cache key consists of the request method and target URI"; only
//! GET is stored, so the method is left out). Two hosts never share a key.

/// How the query string is normalised before it becomes part of the key.
#[derive(Debug, Clone, Default)]
pub struct KeyOptions {
    /// Sort query parameters so `?a=1&b=2` and `?b=2&a=1` share an entry.
    pub sort_query: bool,
    /// Query parameters left out of the key (tracking tags such as `utm_source`).
    pub drop_params: Vec<String>,
}

impl KeyOptions {
    fn rewrites_query(&self) -> bool {
        self.sort_query || !self.drop_params.is_empty()
    }
}

/// Builds the key `scheme://host/path?query`. The host is lower-cased and
/// a default port is dropped, so `Example.com:80` and `example.com` match;
/// the path is kept byte for byte (decoding could merge distinct resources).
pub fn cache_key(scheme: &str, host: &str, path_and_query: &str, opts: &KeyOptions) -> String {
    let host = strip_default_port(scheme, host);
    let mut key = String::with_capacity(scheme.len() + 3 + host.len() + path_and_query.len());
    key.push_str(scheme);
    key.push_str("://");
    let start = key.len();
    key.push_str(host);
    // In place, a byte at a time (non-ASCII bytes stay as they are).
    key[start..].make_ascii_lowercase();
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    if !path.starts_with('/') {
        key.push('/');
    }
    key.push_str(path);
    match query {
        Some(q) if opts.rewrites_query() => push_query(&mut key, q, opts),
        Some(q) => {
            key.push('?');
            key.push_str(q);
        }
        None => {}
    }
    key
}

fn strip_default_port<'a>(scheme: &str, host: &'a str) -> &'a str {
    let default = match scheme {
        "http" => ":80",
        "https" => ":443",
        _ => return host,
    };
    host.strip_suffix(default).unwrap_or(host)
}

fn push_query(key: &mut String, query: &str, opts: &KeyOptions) {
    let mut params: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| {
            let name = p.split_once('=').map_or(*p, |(n, _)| n);
            !opts.drop_params.iter().any(|d| d == name)
        })
        .collect();
    if opts.sort_query {
        // Stable sort by the whole pair keeps repeated names in a fixed order.
        params.sort_unstable();
    }
    if params.is_empty() {
        return;
    }
    key.push('?');
    for (i, p) in params.iter().enumerate() {
        if i > 0 {
            key.push('&');
        }
        key.push_str(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_includes_scheme_host_path_query_rfc9111_2() {
        let o = KeyOptions::default();
        let cases = [
            ("http", "example.com", "/a?x=1", "http://example.com/a?x=1"),
            ("http", "Example.COM:80", "/a", "http://example.com/a"),
            ("https", "example.com:443", "/", "https://example.com/"),
            (
                "http",
                "example.com:8080",
                "/a",
                "http://example.com:8080/a",
            ),
            ("http", "a.test", "", "http://a.test/"),
            ("http", "a.test", "/A/%7e", "http://a.test/A/%7e"),
        ];
        for (scheme, host, pq, want) in cases {
            assert_eq!(cache_key(scheme, host, pq, &o), want);
        }
    }

    #[test]
    fn two_hosts_never_share_a_key() {
        let o = KeyOptions::default();
        assert_ne!(
            cache_key("http", "a.test", "/x", &o),
            cache_key("http", "b.test", "/x", &o)
        );
        assert_ne!(
            cache_key("http", "a.test", "/x", &o),
            cache_key("https", "a.test", "/x", &o)
        );
        // A host cannot smuggle a path: the key keeps the separator.
        assert_ne!(
            cache_key("http", "a.test", "/b.test/x", &o),
            cache_key("http", "a.testb.test", "/x", &o)
        );
    }

    #[test]
    fn query_sorting_and_dropping_are_options() {
        let plain = KeyOptions::default();
        assert_ne!(
            cache_key("http", "h", "/p?b=2&a=1", &plain),
            cache_key("http", "h", "/p?a=1&b=2", &plain)
        );
        let sort = KeyOptions {
            sort_query: true,
            ..Default::default()
        };
        assert_eq!(
            cache_key("http", "h", "/p?b=2&a=1", &sort),
            "http://h/p?a=1&b=2"
        );
        let drop = KeyOptions {
            drop_params: vec!["utm_source".into()],
            ..Default::default()
        };
        assert_eq!(
            cache_key("http", "h", "/p?utm_source=x&id=3", &drop),
            "http://h/p?id=3"
        );
        assert_eq!(
            cache_key("http", "h", "/p?utm_source=x", &drop),
            "http://h/p"
        );
    }
}

#[cfg(test)]
#[path = "key_proptests.rs"]
mod proptests;
