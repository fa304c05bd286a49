//! Which host a request names, for the guards that keep admin listeners
//! (and the cluster dashboard) from answering a page led to them by DNS
//! rebinding: the request's authority must name the listener itself.

use std::net::IpAddr;

use http::{HeaderMap, Uri, header};

/// The authority a request names: an absolute-form target's, else its one
/// `Host` field. `None` with no `Host`, several, or one that is not text.
pub fn request_host<'a>(headers: &'a HeaderMap, uri: &'a Uri) -> Option<&'a str> {
    if let Some(a) = uri.authority() {
        return Some(a.as_str());
    }
    let mut hosts = headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(h), None) => h.to_str().ok(),
        _ => None,
    }
}

/// A host (without port) as an IP address; IPv6 may be in brackets.
pub fn host_ip(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// `localhost` (any case) or a loopback IP: a name only this machine uses.
pub fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host_ip(host).is_some_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_named_host_is_the_targets_else_the_one_host_field() {
        let mut h = HeaderMap::new();
        let origin_form: Uri = "/x".parse().expect("uri");
        assert_eq!(request_host(&h, &origin_form), None);
        h.insert(header::HOST, "a.example:80".parse().expect("value"));
        assert_eq!(request_host(&h, &origin_form), Some("a.example:80"));
        let absolute: Uri = "http://b.example/x".parse().expect("uri");
        assert_eq!(request_host(&h, &absolute), Some("b.example"));
        h.append(header::HOST, "c.example".parse().expect("value"));
        assert_eq!(request_host(&h, &origin_form), None, "two Host fields");
    }

    #[test]
    fn loopback_names() {
        for yes in [
            "localhost",
            "LocalHost",
            "127.0.0.1",
            "127.9.9.9",
            "[::1]",
            "::1",
        ] {
            assert!(is_loopback_host(yes), "{yes}");
        }
        for no in [
            "10.0.0.1",
            "evil.example",
            "localhost.evil.example",
            "[::2]",
        ] {
            assert!(!is_loopback_host(no), "{no}");
        }
    }
}
