//! Header handling at the proxy boundary (RFC 9110 §7.6): hop-by-hop
//! fields are dropped, `Via` and `X-Forwarded-*` are added, everything else
//! passes through untouched, unknown fields included.

use std::net::IpAddr;

use http::HeaderMap;
use http::header::{self, HeaderName, HeaderValue};

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// RFC 9110 §7.6.1: Connection, the fields it names, and the fields that
/// are hop-by-hop by definition (Keep-Alive, TE, Trailer, Transfer-Encoding,
/// Upgrade, Proxy-*).
pub fn remove_hop_by_hop(h: &mut HeaderMap) {
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for n in named {
        h.remove(n);
    }
    for n in [
        &header::CONNECTION,
        &KEEP_ALIVE,
        &header::TE,
        &header::TRAILER,
        &header::TRANSFER_ENCODING,
        &header::UPGRADE,
    ] {
        h.remove(n);
    }
    // Proxy-Authorization, Proxy-Authenticate, Proxy-Connection, ...
    let proxy: Vec<HeaderName> = h
        .keys()
        .filter(|k| k.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for n in proxy {
        h.remove(n);
    }
}

/// Adds this hop to `Via` and the client to `X-Forwarded-*`.
pub fn add_forwarding(
    h: &mut HeaderMap,
    via: &HeaderValue,
    client: IpAddr,
    host: Option<&HeaderValue>,
) {
    append_list(h, &header::VIA, via);
    let ip = HeaderValue::from_str(&client.to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
    append_list(h, &X_FORWARDED_FOR, &ip);
    // A tier behind us (a shield) keeps what the first hop recorded.
    if !h.contains_key(&X_FORWARDED_PROTO) {
        h.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    }
    if let Some(host) = host
        && !h.contains_key(&X_FORWARDED_HOST)
    {
        h.insert(X_FORWARDED_HOST.clone(), host.clone());
    }
}

/// Appends `value` to a comma-separated list field, as one line.
pub fn append_list(h: &mut HeaderMap, name: &HeaderName, value: &HeaderValue) {
    let combined = {
        let mut lines = h
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .peekable();
        if lines.peek().is_none() {
            None
        } else {
            let mut s: String = lines.collect::<Vec<_>>().join(", ");
            s.push_str(", ");
            s.push_str(value.to_str().unwrap_or(""));
            HeaderValue::from_str(&s).ok()
        }
    };
    h.insert(name.clone(), combined.unwrap_or_else(|| value.clone()));
}

/// Request headers a cache fill must not send: the cache fetches the whole
/// representation and answers the client's conditionals and ranges itself.
pub fn strip_client_validators(h: &mut HeaderMap) {
    for n in [
        &header::IF_NONE_MATCH,
        &header::IF_MODIFIED_SINCE,
        &header::IF_MATCH,
        &header::IF_UNMODIFIED_SINCE,
        &header::IF_RANGE,
        &header::RANGE,
    ] {
        h.remove(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_fields_are_dropped_rfc9110_7_6_1() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "close, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("trailer", "x"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "Basic x"),
            ("proxy-connection", "keep-alive"),
            ("x-custom", "kept"),
            ("accept", "*/*"),
        ] {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        remove_hop_by_hop(&mut h);
        let left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, vec!["x-custom", "accept"]);
    }

    #[test]
    fn via_and_forwarded_for_are_appended() {
        let mut h = HeaderMap::new();
        h.insert(&header::VIA, HeaderValue::from_static("1.1 a"));
        h.insert(&X_FORWARDED_FOR, HeaderValue::from_static("203.0.113.9"));
        add_forwarding(
            &mut h,
            &HeaderValue::from_static("1.1 edge-1"),
            IpAddr::from([127, 0, 0, 1]),
            None,
        );
        assert_eq!(h[&header::VIA], "1.1 a, 1.1 edge-1");
        assert_eq!(h[&X_FORWARDED_FOR], "203.0.113.9, 127.0.0.1");
        assert_eq!(h[&X_FORWARDED_PROTO], "http");
    }
}
