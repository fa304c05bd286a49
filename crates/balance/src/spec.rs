//! A backend's address and weight as an operator writes them:
//! `http://127.0.0.1:9001;weight=3` on the command line or in a config file,
//! and for an `https://` backend how its certificate is checked:
//! `https://origin.example:443;ca=/etc/meridian/origin-ca.pem;sni=origin.example`
//! or `;insecure-skip-verify`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use http::Uri;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::BalanceError;

/// Largest accepted weight. The consistent-hash ring holds 160 points per
/// unit of weight, so an unbounded weight from a flag would be an
/// unbounded allocation; 1000 is far beyond any useful ratio.
pub const MAX_WEIGHT: u32 = 1000;

/// A validated backend address and weight, as written on the command line
/// (`http://127.0.0.1:9001;weight=3`) or in a config file (same string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendSpec {
    url: Uri,
    /// `http://host:port[/prefix]` without a trailing slash: the identity of
    /// the backend on the hash ring, so it must not depend on how it was typed.
    base: String,
    weight: u32,
    /// `;id=NAME`: the backend's identity on the hash ring instead of its
    /// base URL, so processes that reach one backend through different
    /// addresses (relays, NAT, a local port per peer) still agree on which
    /// keys it owns (HAProxy's `hash-key id`, nginx's `server ... route=`).
    id: Option<String>,
    /// `Some` exactly for an `https://` backend.
    tls: Option<TlsOptions>,
}

/// Longest `;id=` value.
pub const MAX_ID_LEN: usize = 64;

/// Longest `;sni=` value (a DNS name is at most 253 characters).
pub const MAX_SNI_LEN: usize = 253;

/// How an `https://` backend's certificate is checked. The defaults verify
/// it against the system roots for the URL's host name (nginx's
/// `proxy_ssl_verify on` with `proxy_ssl_name` the proxied host).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TlsOptions {
    /// `;ca=PATH`: a PEM file of CA certificates trusted for this backend
    /// instead of the system roots (a relative path is relative to the
    /// config file).
    pub ca: Option<PathBuf>,
    /// `;sni=NAME`: the name sent in SNI and checked in the certificate,
    /// instead of the URL's host (the `Host` header stays the request's).
    pub sni: Option<String>,
    /// `;insecure-skip-verify`: any certificate is accepted. For tests and
    /// migrations only; logged as a warning at start and shown in `/stats`.
    pub insecure_skip_verify: bool,
}

impl TlsOptions {
    /// The options as they are written after the URL (`;ca=...;sni=...`).
    fn write(&self, f: &mut impl fmt::Write) -> fmt::Result {
        if let Some(ca) = &self.ca {
            write!(f, ";ca={}", ca.display())?;
        }
        if let Some(sni) = &self.sni {
            write!(f, ";sni={sni}")?;
        }
        if self.insecure_skip_verify {
            f.write_str(";insecure-skip-verify")?;
        }
        Ok(())
    }

    /// Applies one `key[=value]` option; `Ok(false)` when `key` is not a
    /// TLS option. `spec` names the backend in errors.
    pub fn apply(
        &mut self,
        spec: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<bool, BalanceError> {
        let bad = |reason: String| BalanceError::InvalidUrl {
            url: spec.to_string(),
            reason,
        };
        let needs_value = |v: Option<&str>| match v.map(str::trim) {
            Some(v) if !v.is_empty() => Ok(v.to_owned()),
            _ => Err(bad(format!("`{key}` needs a value (`;{key}=...`)"))),
        };
        match key {
            "ca" => self.ca = Some(PathBuf::from(needs_value(value)?)),
            "sni" => {
                let name = needs_value(value)?;
                let ok = name.len() <= MAX_SNI_LEN
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'));
                if !ok {
                    return Err(bad(format!(
                        "sni `{name}` must be a host name (letters, digits, `-` and `.`, at most {MAX_SNI_LEN})"
                    )));
                }
                self.sni = Some(name);
            }
            "insecure-skip-verify" => {
                if value.is_some() {
                    return Err(bad("`insecure-skip-verify` takes no value".into()));
                }
                self.insecure_skip_verify = true;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Whether `key` is one of the TLS options.
    pub fn is_option(key: &str) -> bool {
        matches!(key, "ca" | "sni" | "insecure-skip-verify")
    }
}

impl BackendSpec {
    /// A spec from a base URL and a weight (1..=[`MAX_WEIGHT`]).
    pub fn new(url: &str, weight: u32) -> Result<Self, BalanceError> {
        let (url, base) = parse_base_url(url)?;
        check_weight(&base, weight)?;
        let tls = (url.scheme_str() == Some("https")).then(TlsOptions::default);
        Ok(BackendSpec {
            url,
            base,
            weight,
            id: None,
            tls,
        })
    }

    /// The same `https://` backend with these TLS options.
    pub fn with_tls(mut self, tls: TlsOptions) -> Result<Self, BalanceError> {
        if self.tls.is_none() {
            return Err(BalanceError::InvalidUrl {
                url: self.base.clone(),
                reason: "TLS options need an https:// URL".into(),
            });
        }
        self.tls = Some(tls);
        Ok(self)
    }

    /// How the backend's certificate is checked; `None` for `http://`.
    pub fn tls(&self) -> Option<&TlsOptions> {
        self.tls.as_ref()
    }

    /// The base URL with its TLS options and no weight or id: the form
    /// an edge's `upstream` takes.
    pub fn endpoint(&self) -> String {
        let mut s = self.base.clone();
        if let Some(tls) = &self.tls {
            // Writing to a String cannot fail.
            let _ = tls.write(&mut s);
        }
        s
    }

    /// The same backend with `id` as its identity on the hash ring.
    pub fn with_id(mut self, id: &str) -> Result<Self, BalanceError> {
        check_id(&self.base, id)?;
        self.id = Some(id.to_owned());
        Ok(self)
    }

    /// What hash-based selectors hash: the `;id=` if given, else the base URL.
    pub fn hash_id(&self) -> &str {
        self.id.as_deref().unwrap_or(&self.base)
    }

    pub fn url(&self) -> &Uri {
        &self.url
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn weight(&self) -> u32 {
        self.weight
    }
}

fn check_weight(spec: &str, weight: u32) -> Result<(), BalanceError> {
    if (1..=MAX_WEIGHT).contains(&weight) {
        Ok(())
    } else {
        Err(BalanceError::InvalidWeight {
            spec: spec.to_string(),
            reason: format!("must be between 1 and {MAX_WEIGHT} (got {weight})"),
        })
    }
}

fn check_id(spec: &str, id: &str) -> Result<(), BalanceError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(BalanceError::InvalidUrl {
            url: spec.to_string(),
            reason: format!("id `{id}` must be 1 to {MAX_ID_LEN} letters, digits, `-`, `_` or `.`"),
        })
    }
}

/// Accepts `http://host:port` or `https://host:port` with an optional path
/// prefix, nothing else:
/// the proxy appends the request path to it, so a query, a fragment or
/// credentials in the base would produce wrong upstream URLs.
fn parse_base_url(s: &str) -> Result<(Uri, String), BalanceError> {
    let bad = |reason: &str| BalanceError::InvalidUrl {
        url: s.to_string(),
        reason: reason.to_string(),
    };
    let uri: Uri = s.trim().parse().map_err(|e: http::uri::InvalidUri| {
        bad(&format!("not a URL ({e}); expected http://host:port"))
    })?;
    let scheme = match uri.scheme_str() {
        Some(s @ ("http" | "https")) => s,
        Some(other) => {
            return Err(bad(&format!(
                "scheme must be http or https (got `{other}`)"
            )));
        }
        None => return Err(bad("missing scheme; expected http://host:port")),
    };
    let authority = uri
        .authority()
        .ok_or_else(|| bad("missing host; expected http://host:port"))?;
    if authority.as_str().contains('@') {
        return Err(bad("credentials in the URL are not supported"));
    }
    if authority.host().is_empty() {
        return Err(bad("missing host; expected http://host:port"));
    }
    match authority.port_u16() {
        Some(0) => return Err(bad("port 0 is not a valid upstream port")),
        Some(_) => {}
        None => return Err(bad("missing port; expected http://host:port")),
    }
    if uri.query().is_some() {
        return Err(bad("a query string is not allowed in a backend URL"));
    }
    let prefix = uri.path().trim_end_matches('/');
    let base = format!("{scheme}://{authority}{prefix}");
    Ok((uri, base))
}

impl FromStr for BackendSpec {
    type Err = BalanceError;

    /// `URL[;weight=N][;id=NAME]`, and for `https://` the [`TlsOptions`];
    /// options are `;key=value` pairs after the URL.
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let mut parts = spec.split(';');
        // `split` always yields a first item, even for "".
        let url = parts.next().unwrap_or_default();
        let (url, base) = parse_base_url(url)?;
        let mut weight = 1;
        let mut id = None;
        let mut tls = url
            .scheme_str()
            .is_some_and(|s| s == "https")
            .then(TlsOptions::default);
        for opt in parts.map(str::trim).filter(|o| !o.is_empty()) {
            let (key, value) = match opt.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v)),
                None => (opt, None),
            };
            if TlsOptions::is_option(key) {
                let Some(tls) = tls.as_mut() else {
                    return Err(BalanceError::InvalidUrl {
                        url: spec.to_string(),
                        reason: format!("`{key}` applies only to an https:// backend"),
                    });
                };
                tls.apply(spec, key, value)?;
                continue;
            }
            let value = value.unwrap_or("");
            match key {
                "weight" => {
                    weight = value
                        .trim()
                        .parse()
                        .map_err(|_| BalanceError::InvalidWeight {
                            spec: spec.to_string(),
                            reason: format!("`{}` is not a whole number", value.trim()),
                        })?;
                    check_weight(spec, weight)?;
                }
                "id" => {
                    check_id(spec, value.trim())?;
                    id = Some(value.trim().to_owned());
                }
                other => {
                    return Err(BalanceError::UnknownOption {
                        spec: spec.to_string(),
                        key: other.to_string(),
                    });
                }
            }
        }
        Ok(BackendSpec {
            url,
            base,
            weight,
            id,
            tls,
        })
    }
}

impl fmt::Display for BackendSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base)?;
        if self.weight != 1 {
            write!(f, ";weight={}", self.weight)?;
        }
        if let Some(id) = &self.id {
            write!(f, ";id={id}")?;
        }
        if let Some(tls) = &self.tls {
            tls.write(f)?;
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for BackendSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for BackendSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_names_the_backend_on_the_ring() {
        let s: BackendSpec = "http://127.0.0.1:7001;id=shield-1;weight=2"
            .parse()
            .expect("valid");
        assert_eq!((s.hash_id(), s.weight()), ("shield-1", 2));
        assert_eq!(s.to_string(), "http://127.0.0.1:7001;weight=2;id=shield-1");
        let plain: BackendSpec = "http://127.0.0.1:7001".parse().expect("valid");
        assert_eq!(plain.hash_id(), "http://127.0.0.1:7001");
        for bad in ["", "a b", "x/y", &"n".repeat(MAX_ID_LEN + 1)] {
            let spec = format!("http://127.0.0.1:7001;id={bad}");
            assert!(spec.parse::<BackendSpec>().is_err(), "{spec}");
        }
    }

    #[test]
    fn origin_spec_parses_weight() {
        let cases = [
            ("http://127.0.0.1:9001", "http://127.0.0.1:9001", 1),
            ("http://127.0.0.1:9001;weight=3", "http://127.0.0.1:9001", 3),
            (
                "http://127.0.0.1:9001/;weight=3",
                "http://127.0.0.1:9001",
                3,
            ),
            (
                " http://o.example:80/base/ ; weight = 7 ",
                "http://o.example:80/base",
                7,
            ),
            ("http://[::1]:9000;", "http://[::1]:9000", 1),
        ];
        for (input, base, weight) in cases {
            let spec: BackendSpec = input.parse().expect(input);
            assert_eq!((spec.base(), spec.weight()), (base, weight), "{input}");
        }
    }

    #[test]
    fn bad_origin_specs_are_rejected_with_the_reason() {
        let cases = [
            ("ftp://127.0.0.1:9001", "scheme must be http or https"),
            (
                "http://127.0.0.1:9001;ca=/x.pem",
                "only to an https:// backend",
            ),
            (
                "http://127.0.0.1:9001;insecure-skip-verify",
                "only to an https://",
            ),
            ("https://127.0.0.1:9001;ca=", "`ca` needs a value"),
            ("https://127.0.0.1:9001;sni", "`sni` needs a value"),
            ("https://127.0.0.1:9001;sni=a b", "must be a host name"),
            (
                "https://127.0.0.1:9001;insecure-skip-verify=yes",
                "takes no value",
            ),
            (
                "https://127.0.0.1:9001;verify=off",
                "unknown option `verify`",
            ),
            ("127.0.0.1:9001", "missing scheme"),
            ("http://127.0.0.1", "missing port"),
            ("http://127.0.0.1:0", "port 0"),
            ("http://u:p@127.0.0.1:9001", "credentials"),
            ("http://127.0.0.1:9001/?a=b", "query string"),
            ("", "not a URL"),
            ("http://127.0.0.1:9001;weight=0", "between 1 and 1000"),
            ("http://127.0.0.1:9001;weight=1001", "between 1 and 1000"),
            (
                "http://127.0.0.1:9001;weight=x",
                "`x` is not a whole number",
            ),
            ("http://127.0.0.1:9001;weight", "`` is not a whole number"),
            ("http://127.0.0.1:9001;backup=1", "unknown option `backup`"),
        ];
        for (input, want) in cases {
            let err = input.parse::<BackendSpec>().expect_err(input).to_string();
            assert!(err.contains(want), "{input}: {err}");
        }
    }

    #[test]
    fn an_https_backend_takes_tls_options() {
        let s: BackendSpec = "https://o.example:443/p;weight=2;ca=certs/ca.pem;sni=cdn.example"
            .parse()
            .expect("valid");
        assert_eq!((s.base(), s.weight()), ("https://o.example:443/p", 2));
        let tls = s.tls().expect("https has TLS options");
        assert_eq!(
            tls.ca.as_deref(),
            Some(std::path::Path::new("certs/ca.pem"))
        );
        assert_eq!(tls.sni.as_deref(), Some("cdn.example"));
        assert!(!tls.insecure_skip_verify);
        assert_eq!(
            s.endpoint(),
            "https://o.example:443/p;ca=certs/ca.pem;sni=cdn.example"
        );
        let plain: BackendSpec = "https://o.example:8443".parse().expect("valid");
        assert_eq!(plain.tls(), Some(&TlsOptions::default()));
        let off: BackendSpec = "https://o.example:8443; insecure-skip-verify "
            .parse()
            .expect("valid");
        assert!(off.tls().is_some_and(|t| t.insecure_skip_verify));
        let http: BackendSpec = "http://o.example:80".parse().expect("valid");
        assert_eq!(http.tls(), None);
        assert!(http.with_tls(TlsOptions::default()).is_err());
    }

    #[test]
    fn spec_round_trips_through_display() {
        for s in [
            "http://a:1",
            "http://a:1/p;weight=3",
            "https://a:1;weight=3;ca=/c.pem;sni=b.example;insecure-skip-verify",
        ] {
            let spec: BackendSpec = s.parse().expect(s);
            assert_eq!(spec.to_string(), s);
            assert_eq!(spec.to_string().parse::<BackendSpec>().expect(s), spec);
        }
    }
}
