//! Header handling at the proxy boundary (RFC 9110 §7.6): hop-by-hop
//! fields are dropped, the forwarding fields are the node's own (`Via`,
//! `X-Forwarded-*`, RFC 7239 `Forwarded`), everything else passes through
//! untouched, unknown fields included.

use std::net::IpAddr;

use http::HeaderMap;
use http::header::{self, HeaderName, HeaderValue};

use crate::authority::Authority;

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

/// A field that is hop-by-hop by definition (RFC 9110 §7.6.1); the
/// fields `Connection` names are found through `Connection` itself.
fn is_hop_by_hop(k: &HeaderName) -> bool {
    *k == header::CONNECTION
        || *k == KEEP_ALIVE
        || *k == header::TE
        || *k == header::TRAILER
        || *k == header::TRANSFER_ENCODING
        || *k == header::UPGRADE
        || k.as_str().starts_with("proxy-")
}

/// Who sent a request and for which site: what the node's own forwarding
/// fields are made of. Each value comes from the connection or from the
/// authority, which is in the cache key, never from the client's fields.
pub struct Forwarding<'a> {
    /// The one authority of the request: the upstream `Host`.
    pub authority: &'a Authority,
    /// The connecting peer.
    pub peer: IpAddr,
    /// The peer is one of `trusted-forwarders`: its forwarding fields
    /// were kept at entry and are appended to, not replaced.
    pub trusted: bool,
    /// This node's `Via` hop.
    pub via: &'a HeaderValue,
}

/// Fields an origin may act on (client address, scheme, host, path,
/// method) that the cache key ignores, so a client could use them to make
/// the origin build a page that is then served to everyone. From a peer
/// that is not a trusted forwarder they are dropped at entry ([`sanitize`]);
/// the node then sets its own `X-Forwarded-For`, `X-Forwarded-Host`,
/// `X-Forwarded-Proto` and `Forwarded` ([`upstream_request`]). Every
/// `X-Forwarded-*` field is in this class as well.
pub static FORWARDER_ONLY: [HeaderName; 18] = [
    HeaderName::from_static("forwarded"),
    HeaderName::from_static("x-real-ip"),
    HeaderName::from_static("x-client-ip"),
    HeaderName::from_static("true-client-ip"),
    HeaderName::from_static("cf-connecting-ip"),
    HeaderName::from_static("fastly-client-ip"),
    HeaderName::from_static("x-cluster-client-ip"),
    HeaderName::from_static("client-ip"),
    HeaderName::from_static("x-host"),
    HeaderName::from_static("x-original-host"),
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-original-uri"),
    HeaderName::from_static("x-rewrite-url"),
    HeaderName::from_static("x-http-method-override"),
    HeaderName::from_static("x-http-method"),
    HeaderName::from_static("x-method-override"),
    HeaderName::from_static("front-end-https"),
    HeaderName::from_static("x-url-scheme"),
];

/// RFC 7239.
pub static FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// The client's request as this node treats it, done once at entry so the
/// cache lookup, the stored `Variant` and the upstream request all see the
/// same fields: hop-by-hop fields removed (RFC 9110 §7.6.1), the
/// [`FORWARDER_ONLY`] fields and every `X-Forwarded-*` removed unless the
/// peer is `trusted`, and `Host` set to the request's one authority.
pub fn sanitize(h: &mut HeaderMap, authority: &Authority, trusted: bool) {
    // One pass over the names first: most requests carry none of these, and
    // this runs on every hit.
    let (hop, forwarder) = h.keys().fold((false, false), |(hop, fwd), k| {
        (
            hop || is_hop_by_hop(k),
            fwd || k.as_str().starts_with("x-forwarded-") || FORWARDER_ONLY.contains(k),
        )
    });
    if hop {
        remove_hop_by_hop(h);
    }
    if forwarder && !trusted {
        remove_forwarder_only(h);
    }
    let mut hosts = h.get_all(header::HOST).iter();
    let same = hosts.next().is_some_and(|v| v == authority.as_str()) && hosts.next().is_none();
    if !same {
        h.insert(header::HOST, authority.header_value());
    }
}

/// Removes [`FORWARDER_ONLY`] and every `X-Forwarded-*`, in one pass over
/// what the client sent (this runs on every hit).
fn remove_forwarder_only(h: &mut HeaderMap) {
    let doomed: Vec<HeaderName> = h
        .keys()
        .filter(|k| k.as_str().starts_with("x-forwarded-") || FORWARDER_ONLY.contains(k))
        .cloned()
        .collect();
    for n in doomed {
        h.remove(n);
    }
}

/// The headers of the upstream request made for a client request whose
/// fields went through [`sanitize`]: the one place that decides what an
/// upstream is told. `Host` is the authority; `Via` gains this hop;
/// `X-Forwarded-For` and `Forwarded` gain the peer (so from an untrusted
/// peer they hold just the peer); `X-Forwarded-Host` and
/// `X-Forwarded-Proto` are the authority and the listener's scheme unless a
/// trusted forwarder set them.
pub fn upstream_request(client: &HeaderMap, f: &Forwarding<'_>) -> HeaderMap {
    let mut h = client.clone();
    if !f.trusted {
        // Done at entry already; repeated so that no caller can forward a
        // client's forwarding fields by skipping `sanitize`.
        remove_forwarder_only(&mut h);
    }
    h.insert(header::HOST, f.authority.header_value());
    append_list(&mut h, &header::VIA, f.via);
    let ip = HeaderValue::from_str(&f.peer.to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
    append_list(&mut h, &X_FORWARDED_FOR, &ip);
    let proto = HeaderValue::from_static(f.authority.scheme().as_str());
    if !h.contains_key(&X_FORWARDED_PROTO) {
        h.insert(X_FORWARDED_PROTO.clone(), proto);
    }
    if !h.contains_key(&X_FORWARDED_HOST) {
        h.insert(X_FORWARDED_HOST.clone(), f.authority.header_value());
    }
    if let Ok(element) = HeaderValue::from_str(&forwarded_element(f.peer, f.authority)) {
        append_list(&mut h, &FORWARDED, &element);
    }
    h
}

/// One RFC 7239 §4 `forwarded-element`: `for=`, `host=`, `proto=`, with
/// values quoted when they are not tokens (an IPv6 address, a port).
fn forwarded_element(peer: IpAddr, authority: &Authority) -> String {
    let node = match peer {
        IpAddr::V4(ip) => ip.to_string(),
        // §6: an IPv6 address is bracketed, and so must be quoted.
        IpAddr::V6(ip) => format!("\"[{ip}]\""),
    };
    let host = authority.as_str();
    let is_token = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    let host = if is_token {
        host.to_owned()
    } else {
        // A validated authority holds no quote or backslash to escape.
        format!("\"{host}\"")
    };
    format!(
        "for={node};host={host};proto={}",
        authority.scheme().as_str()
    )
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
    use crate::authority::Scheme;

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

    fn forwarding<'a>(a: &'a Authority, peer: IpAddr, trusted: bool) -> Forwarding<'a> {
        static VIA: HeaderValue = HeaderValue::from_static("1.1 edge-1");
        Forwarding {
            authority: a,
            peer,
            trusted,
            via: &VIA,
        }
    }

    fn spoofed() -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("host", "attacker.example"),
            ("via", "1.1 a"),
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-host", "attacker.example"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-port", "443"),
            ("x-forwarded-prefix", "/evil"),
            ("forwarded", "for=1.2.3.4;host=attacker.example"),
            ("x-real-ip", "1.2.3.4"),
            ("x-original-url", "/admin"),
            ("x-http-method-override", "DELETE"),
            ("accept", "*/*"),
        ] {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn an_untrusted_peer_gets_the_nodes_own_forwarding_fields() {
        let a = Authority::parse("Shop.Example:80", Scheme::Http).expect("valid");
        let mut h = spoofed();
        sanitize(&mut h, &a, false);
        let up = upstream_request(&h, &forwarding(&a, IpAddr::from([127, 0, 0, 2]), false));
        assert_eq!(up[&header::HOST], "shop.example");
        assert_eq!(up[&header::VIA], "1.1 a, 1.1 edge-1");
        assert_eq!(up[&X_FORWARDED_FOR], "127.0.0.2");
        assert_eq!(up[&X_FORWARDED_HOST], "shop.example");
        assert_eq!(up[&X_FORWARDED_PROTO], "http");
        assert_eq!(up[&FORWARDED], "for=127.0.0.2;host=shop.example;proto=http");
        for gone in [
            "x-forwarded-port",
            "x-forwarded-prefix",
            "x-real-ip",
            "x-original-url",
            "x-http-method-override",
        ] {
            assert!(!up.contains_key(gone), "{gone}");
        }
        assert_eq!(up[&header::ACCEPT], "*/*");
    }

    #[test]
    fn the_builder_alone_never_forwards_an_untrusted_clients_fields() {
        let a = Authority::parse("shop.example", Scheme::Http).expect("valid");
        let up = upstream_request(
            &spoofed(),
            &forwarding(&a, IpAddr::from([127, 0, 0, 2]), false),
        );
        assert_eq!(up[&X_FORWARDED_FOR], "127.0.0.2");
        assert_eq!(up[&X_FORWARDED_HOST], "shop.example");
        assert_eq!(up[&FORWARDED], "for=127.0.0.2;host=shop.example;proto=http");
        assert!(!up.contains_key("x-real-ip"));
    }

    #[test]
    fn a_trusted_forwarder_is_appended_to() {
        let a = Authority::parse("shop.example", Scheme::Http).expect("valid");
        let mut h = spoofed();
        sanitize(&mut h, &a, true);
        let up = upstream_request(&h, &forwarding(&a, IpAddr::from([10, 0, 0, 1]), true));
        assert_eq!(up[&header::HOST], "shop.example");
        assert_eq!(up[&X_FORWARDED_FOR], "203.0.113.9, 10.0.0.1");
        assert_eq!(up[&X_FORWARDED_HOST], "attacker.example");
        assert_eq!(up[&X_FORWARDED_PROTO], "https");
        assert_eq!(
            up[&FORWARDED],
            "for=1.2.3.4;host=attacker.example, for=10.0.0.1;host=shop.example;proto=http"
        );
        assert_eq!(up["x-real-ip"], "1.2.3.4");
    }

    #[test]
    fn forwarded_quotes_ipv6_and_ports_rfc7239_4() {
        let a = Authority::parse("shop.example:8080", Scheme::Http).expect("valid");
        let peer: IpAddr = "2001:db8::1".parse().expect("ip");
        assert_eq!(
            forwarded_element(peer, &a),
            r#"for="[2001:db8::1]";host="shop.example:8080";proto=http"#
        );
        let a = Authority::parse("[::1]", Scheme::Https).expect("valid");
        assert_eq!(
            forwarded_element(IpAddr::from([192, 0, 2, 1]), &a),
            r#"for=192.0.2.1;host="[::1]";proto=https"#
        );
    }

    #[test]
    fn the_connection_option_named_field_is_gone_before_lookup_rfc9110_7_6_1() {
        let a = Authority::parse("a.example", Scheme::Http).expect("valid");
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_LANGUAGE, HeaderValue::from_static("fr"));
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("accept-language"),
        );
        sanitize(&mut h, &a, false);
        assert!(!h.contains_key(header::ACCEPT_LANGUAGE));
        assert_eq!(h[&header::HOST], "a.example");
    }
}

#[cfg(test)]
#[path = "headers_proptests.rs"]
mod proptests;
