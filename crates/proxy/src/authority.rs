//! The one authority a request is for: the site (scheme, host, port) it is
//! keyed under and the `Host` it is forwarded with.
//!
//! RFC 9112 §3.2.2: for an absolute-form target the authority is the
//! target's and `Host` is ignored; otherwise it is `Host`. RFC 9112 §3.2:
//! a request with more than one `Host` line, an invalid one, or (HTTP/1.1)
//! none at all gets 400. The value is normalised once — lower case, the
//! scheme's default port dropped (RFC 3986 §6.2.3), one trailing dot
//! dropped as nginx does — so the cache key and the upstream `Host` can
//! never disagree.

use std::fmt;

use http::HeaderValue;

/// The scheme of the listener a request arrived on. Plain listeners pass
/// [`Scheme::Http`]; a TLS listener passes [`Scheme::Https`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scheme {
    #[default]
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A DNS name is at most 253 characters (RFC 1035 §2.3.4); an IPv6 literal
/// with brackets is shorter. Anything longer is not a host.
const MAX_HOST_LEN: usize = 253;

/// A validated, normalised `host[:port]` with the scheme it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    scheme: Scheme,
    /// `host[:port]`, lower case, without the scheme's default port. A
    /// `String` built at its final size: one allocation per request.
    value: String,
    /// Length of the host part of `value`.
    host_len: usize,
}

/// Why a `Host` or target authority is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid authority: {0}")]
pub struct InvalidAuthority(pub &'static str);

impl Authority {
    /// Parses and normalises `raw` (`host[:port]`, as in `Host` or an
    /// absolute-form target) for `scheme`.
    pub fn parse(raw: &str, scheme: Scheme) -> Result<Authority, InvalidAuthority> {
        let bad = |why| Err(InvalidAuthority(why));
        let (host, port) = if let Some(rest) = raw.strip_prefix('[') {
            let Some((v6, after)) = rest.split_once(']') else {
                return bad("unclosed IPv6 literal");
            };
            let ip: std::net::Ipv6Addr = match v6.parse() {
                Ok(ip) => ip,
                Err(_) => return bad("bad IPv6 literal"),
            };
            let port = match after {
                "" => None,
                p => match p.strip_prefix(':') {
                    Some(p) => Some(p),
                    None => return bad("junk after IPv6 literal"),
                },
            };
            (format!("[{ip}]"), port)
        } else {
            let (host, port) = match raw.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (raw, None),
            };
            // One trailing dot names the same host (a fully qualified name).
            let host = host.strip_suffix('.').unwrap_or(host);
            if host.is_empty() {
                return bad("empty host");
            }
            if host.len() > MAX_HOST_LEN {
                return bad("host too long");
            }
            // RFC 3986 reg-name, restricted to what DNS names and IPv4
            // addresses use: no percent-encoding, no sub-delims, no
            // userinfo, nothing an origin could read as a path; no empty
            // label (a leading or trailing dot, or two in a row). One pass
            // over the bytes: this runs on every request.
            let mut prev = b'.';
            for b in host.bytes() {
                let ok = b.is_ascii_alphanumeric()
                    || matches!(b, b'-' | b'_')
                    || (b == b'.' && prev != b'.');
                if !ok {
                    return bad("host has characters a host name cannot have");
                }
                prev = b;
            }
            if prev == b'.' {
                return bad("host has characters a host name cannot have");
            }
            // Room for the port too, so appending it does not reallocate.
            let mut lower = String::with_capacity(host.len() + 6);
            lower.push_str(host);
            lower.make_ascii_lowercase();
            (lower, port)
        };
        let port = match port {
            // RFC 3986 §6.2.3: an empty port is the default one.
            None | Some("") => None,
            Some(p) => {
                if p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return bad("port is not a number");
                }
                match p.parse::<u16>() {
                    Ok(0) | Err(_) => return bad("port out of range"),
                    Ok(n) if n == scheme.default_port() => None,
                    Ok(n) => Some(n),
                }
            }
        };
        let host_len = host.len();
        let value = match port {
            Some(p) => {
                let mut v = host;
                v.push(':');
                push_u16(&mut v, p);
                v
            }
            None => host,
        };
        Ok(Authority {
            scheme,
            value,
            host_len,
        })
    }

    /// `host[:port]`, normalised: the cache key's host and the upstream `Host`.
    pub fn as_str(&self) -> &str {
        &self.value
    }

    /// The host without the port (an IPv6 literal keeps its brackets).
    pub fn host(&self) -> &str {
        &self.value[..self.host_len]
    }

    /// The port when it is not the scheme's default.
    pub fn port(&self) -> Option<u16> {
        self.value.get(self.host_len + 1..)?.parse().ok()
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The value for the upstream `Host` field.
    pub fn header_value(&self) -> HeaderValue {
        // Only visible ASCII passes `parse`, so this cannot fail.
        HeaderValue::from_str(&self.value).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
    }
}

/// Appends `n` in decimal without going through the formatter.
fn push_u16(s: &mut String, n: u16) {
    let mut digits = [0u8; 5];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        s.push(char::from(d));
    }
}

impl fmt::Display for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

/// One entry of `accept-hosts`: a host, optionally with a port, or a
/// `*.` suffix wildcard. Without a port it matches the host on any port
/// (as nginx's `server_name` does); with one, only that port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    wildcard: bool,
    /// Lower case; for a wildcard, the suffix with its leading dot.
    host: String,
    port: Option<u16>,
}

impl HostPattern {
    pub fn parse(s: &str) -> Result<HostPattern, InvalidAuthority> {
        let (wildcard, rest) = match s.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        // Validated as an http authority; a port is kept only if it was
        // written, even when it is 80.
        let a = Authority::parse(rest, Scheme::Http)?;
        let written_port = rest.rsplit_once(':').filter(|_| !rest.ends_with(']'));
        let port = match written_port {
            Some((_, p)) if !p.is_empty() => p.parse().ok(),
            _ => None,
        };
        let host = if wildcard {
            format!(".{}", a.host())
        } else {
            a.host().to_owned()
        };
        Ok(HostPattern {
            wildcard,
            host,
            port,
        })
    }

    pub fn matches(&self, a: &Authority) -> bool {
        let host_ok = if self.wildcard {
            a.host().ends_with(&self.host)
        } else {
            a.host() == self.host
        };
        let port_ok = self
            .port
            .is_none_or(|p| a.port().unwrap_or(a.scheme().default_port()) == p);
        host_ok && port_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities_are_normalised_once_rfc9112_3_2() {
        let ok = [
            ("a.example", Scheme::Http, "a.example"),
            ("A.EXAMPLE:80", Scheme::Http, "a.example"),
            ("a.example:080", Scheme::Http, "a.example"),
            ("a.example:", Scheme::Http, "a.example"),
            ("a.example.", Scheme::Http, "a.example"),
            ("a.example:443", Scheme::Http, "a.example:443"),
            ("a.example:443", Scheme::Https, "a.example"),
            ("a.example:80", Scheme::Https, "a.example:80"),
            ("a.example:8080", Scheme::Http, "a.example:8080"),
            ("127.0.0.1:9000", Scheme::Http, "127.0.0.1:9000"),
            ("[::1]:80", Scheme::Http, "[::1]"),
            ("[2001:DB8::1]:8080", Scheme::Http, "[2001:db8::1]:8080"),
            ("under_score.example", Scheme::Http, "under_score.example"),
        ];
        for (raw, scheme, want) in ok {
            let a = Authority::parse(raw, scheme).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(a.as_str(), want, "{raw}");
            assert_eq!(a.header_value(), want, "{raw}");
        }
    }

    #[test]
    fn invalid_authorities_are_refused_rfc9112_3_2() {
        for raw in [
            "",
            ":80",
            "a b",
            "a.example/p",
            "user@a.example",
            "a.example?x",
            "a.example#f",
            "a%2eexample",
            "a.example:http",
            "a.example:99999",
            "a.example:0",
            "a.example:80:80",
            "a..example",
            ".a.example",
            // Two final dots: an empty label, not a fully qualified name
            // (it read as `a.example.`, a key of its own, found by the
            // property tests).
            "a.example..",
            "a.example..:8080",
            "[::1",
            "[::1]x",
            "[zz::1]",
            "a,b",
            "a;b",
            "a\\b",
            "é.example",
        ] {
            assert!(Authority::parse(raw, Scheme::Http).is_err(), "{raw:?}");
        }
        let long = "a".repeat(MAX_HOST_LEN + 1);
        assert!(Authority::parse(&long, Scheme::Http).is_err());
    }

    #[test]
    fn host_and_port_parts() {
        let a = Authority::parse("Shop.Example:8443", Scheme::Http).expect("valid");
        assert_eq!((a.host(), a.port()), ("shop.example", Some(8443)));
        let a = Authority::parse("[::1]", Scheme::Https).expect("valid");
        assert_eq!((a.host(), a.port()), ("[::1]", None));
    }

    #[test]
    fn accept_host_patterns() {
        let a = |s| Authority::parse(s, Scheme::Http).expect("valid");
        let cases = [
            ("shop.example", "shop.example", true),
            ("shop.example", "SHOP.example:8080", true),
            ("shop.example", "www.shop.example", false),
            ("shop.example:8080", "shop.example:8080", true),
            ("shop.example:8080", "shop.example", false),
            ("shop.example:80", "shop.example", true),
            ("*.shop.example", "www.shop.example", true),
            ("*.shop.example", "shop.example", false),
            ("*.shop.example", "evilshop.example", false),
        ];
        for (pattern, host, want) in cases {
            let p = HostPattern::parse(pattern).expect("pattern");
            assert_eq!(p.matches(&a(host)), want, "{pattern} vs {host}");
        }
        assert!(HostPattern::parse("bad host").is_err());
    }
}

#[cfg(test)]
#[path = "authority_proptests.rs"]
mod proptests;
