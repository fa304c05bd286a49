//! Content-coding negotiation (RFC 9110 §12.5.3) and the rules for which
//! stored responses may be given an encoded form: pure functions, so the
//! proxy's compression and its tests share one reading of the RFC.
//!
//! The negotiated coding, not the raw `Accept-Encoding`, is what a cache
//! varies on: "gzip, deflate, br" and "br;q=1, gzip;q=0.8" both select
//! `br`, so they share one stored variant instead of one each.

use http::HeaderMap;
use http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, HeaderValue};

/// A content coding the proxy can produce, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Coding {
    Br,
    Zstd,
    Gzip,
    Identity,
}

impl Coding {
    /// Server preference among equal q-values: best ratio first.
    pub const PREFERENCE: [Coding; 3] = [Coding::Br, Coding::Zstd, Coding::Gzip];

    /// The token in `Content-Encoding` / `Accept-Encoding`.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Zstd => "zstd",
            Coding::Gzip => "gzip",
            Coding::Identity => "identity",
        }
    }

    /// The token as a header value (no allocation).
    pub fn header_value(self) -> HeaderValue {
        HeaderValue::from_static(self.token())
    }

    /// What an encoded form's entity-tag gets appended (`"abc"` becomes
    /// `"abc-gz"`), after nginx and Apache's `mod_deflate`.
    pub fn etag_suffix(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Zstd => "zstd",
            Coding::Gzip => "gz",
            Coding::Identity => "",
        }
    }

    /// Parses a configured or received coding name (case-insensitive;
    /// `x-gzip` is gzip, RFC 9110 §8.4.1.3).
    pub fn parse(token: &str) -> Option<Coding> {
        let t = token.trim();
        [
            ("br", Coding::Br),
            ("zstd", Coding::Zstd),
            ("gzip", Coding::Gzip),
            ("x-gzip", Coding::Gzip),
            ("identity", Coding::Identity),
        ]
        .into_iter()
        .find(|(name, _)| t.eq_ignore_ascii_case(name))
        .map(|(_, c)| c)
    }
}

/// Most `Accept-Encoding` members looked at; the rest are ignored, so a
/// huge header costs a bounded amount of parsing.
pub const MAX_MEMBERS: usize = 32;

/// The q-value of each coding as one `Accept-Encoding` gives it, in
/// thousandths (RFC 9110 §12.4.2); `None` where the header says nothing.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Weights {
    br: Option<u16>,
    zstd: Option<u16>,
    gzip: Option<u16>,
    identity: Option<u16>,
    star: Option<u16>,
}

impl Weights {
    fn slot(&mut self, c: Coding) -> &mut Option<u16> {
        match c {
            Coding::Br => &mut self.br,
            Coding::Zstd => &mut self.zstd,
            Coding::Gzip => &mut self.gzip,
            Coding::Identity => &mut self.identity,
        }
    }

    /// The weight of `c`: its own member, else `*`'s.
    fn of(&mut self, c: Coding) -> Option<u16> {
        let star = self.star;
        self.slot(c).or(star)
    }
}

/// The coding to serve a request with, among `offered` (in no particular
/// order; the server preference is [`Coding::PREFERENCE`]):
///
/// - no `Accept-Encoding`: identity. RFC 9110 lets the server pick any
///   coding then, but a client that sent nothing may not decode anything
///   (every CDN serves it identity).
/// - each member `coding[;q=W]`; a member whose q is malformed is
///   ignored; tokens are case-insensitive; `*` stands for every coding not
///   named; `q=0` refuses.
/// - the highest q wins; among equal q the server preference, and a
///   coding over identity.
/// - nothing acceptable (all refused, identity too): identity all the
///   same, as nginx, Fastly and Cloudflare do, rather than a 406 that
///   breaks the page (the RFC allows either).
pub fn negotiate(req: &HeaderMap, offered: &[Coding]) -> Coding {
    let mut lines = req.get_all(ACCEPT_ENCODING).iter().peekable();
    if lines.peek().is_none() {
        return Coding::Identity;
    }
    let mut w = Weights::default();
    let members = lines
        .flat_map(|l| l.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|m| !m.is_empty())
        .take(MAX_MEMBERS);
    for m in members {
        let mut parts = m.split(|&b| b == b';');
        let name = parts.next().unwrap_or_default().trim_ascii();
        let Some(q) = weight(parts) else {
            continue;
        };
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        if name == "*" {
            w.star = Some(q);
        } else if let Some(c) = Coding::parse(name) {
            // The first member naming a coding counts.
            let slot = w.slot(c);
            if slot.is_none() {
                *slot = Some(q);
            }
        }
    }
    // Identity is acceptable unless refused by name or by `*;q=0`. Not
    // named, it is the least wanted of what is acceptable (a client that
    // lists "br;q=0.5" wants br), and `*` gives it its weight.
    let identity = w.identity.or(w.star).unwrap_or(1);
    let mut best = (identity, Coding::Identity);
    for c in Coding::PREFERENCE {
        if !offered.contains(&c) {
            continue;
        }
        match w.of(c) {
            Some(q) if q > 0 && (q > best.0 || (q == best.0 && best.1 == Coding::Identity)) => {
                best = (q, c);
            }
            _ => {}
        }
    }
    best.1
}

/// The q of one member's parameters, in thousandths: 1000 without one,
/// `None` when it is malformed (RFC 9110 §12.4.2: `0[.ddd]` or `1[.000]`).
fn weight<'a>(params: impl Iterator<Item = &'a [u8]>) -> Option<u16> {
    let mut q = 1000;
    for p in params {
        let p = p.trim_ascii();
        let Some((k, v)) = p.split_at_checked(1) else {
            continue;
        };
        if !k.eq_ignore_ascii_case(b"q") {
            continue;
        }
        let v = v.trim_ascii_start().strip_prefix(b"=")?.trim_ascii();
        q = qvalue_number(v)?;
    }
    Some(q)
}

/// RFC 9110 §12.4.2 qvalue (the part after `q=`) as thousandths: `0`,
/// `0.5`, `0.125`, `1`, `1.000`; `None` for anything else (`1.5`, `.5`,
/// `0.1234`). Shared by content-coding negotiation and the
/// `Accept-Language` normalisation in `vary`.
pub(crate) fn qvalue_number(v: &[u8]) -> Option<u16> {
    let (int, frac) = match v.iter().position(|&b| b == b'.') {
        Some(i) => (&v[..i], &v[i + 1..]),
        None => (v, &[][..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths = 0u16;
    for (i, d) in frac.iter().enumerate() {
        thousandths += u16::from(d - b'0') * [100, 10, 1][i];
    }
    match int {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// Whether a media type is in `types`: exact (`application/json`), a
/// whole top-level type (`text/*`), or a structured suffix (`*/*+json`).
/// Parameters (`; charset=utf-8`) and case are ignored.
pub fn type_listed(content_type: &[u8], types: &[String]) -> bool {
    let essence = content_type
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    let Ok(essence) = std::str::from_utf8(essence) else {
        return false;
    };
    let essence = essence.to_ascii_lowercase();
    let Some((top, sub)) = essence.split_once('/') else {
        return false;
    };
    types.iter().any(|t| {
        let t = t.trim();
        match t.split_once('/') {
            Some(("*", s)) if s.starts_with("*+") => sub.ends_with(&s[1..]),
            Some((tt, "*")) => tt.eq_ignore_ascii_case(top),
            _ => t.eq_ignore_ascii_case(&essence),
        }
    })
}

/// A response (200, its headers) that may be given encoded forms, body
/// size aside: not encoded already (RFC 9110 §8.4: never twice), a listed
/// type, and no `Cache-Control: no-transform` (RFC 9110 §7.7, RFC 9111
/// §5.2.2.6).
pub fn encodable(status: http::StatusCode, h: &HeaderMap, types: &[String]) -> bool {
    if status != http::StatusCode::OK {
        return false;
    }
    if is_encoded(h) {
        return false;
    }
    if crate::CacheControl::from_cache_control(h).no_transform {
        return false;
    }
    h.get(CONTENT_TYPE)
        .is_some_and(|ct| type_listed(ct.as_bytes(), types))
}

/// Whether `h` names a content coding other than identity.
pub fn is_encoded(h: &HeaderMap) -> bool {
    h.get_all(CONTENT_ENCODING).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .map(<[u8]>::trim_ascii)
            .any(|c| !c.is_empty() && !c.eq_ignore_ascii_case(b"identity"))
    })
}

/// Whether `h`'s `Vary` already names `Accept-Encoding` (or is `*`).
pub fn varies_on_encoding(h: &HeaderMap) -> bool {
    h.get_all(http::header::VARY).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .map(<[u8]>::trim_ascii)
            .any(|n| n == b"*" || n.eq_ignore_ascii_case(b"accept-encoding"))
    })
}

/// Adds `Vary: Accept-Encoding` unless `h` varies on it already.
pub fn add_vary(h: &mut HeaderMap) {
    if !varies_on_encoding(h) {
        h.append(
            http::header::VARY,
            HeaderValue::from_static("Accept-Encoding"),
        );
    }
}

/// The entity-tag of `c`'s encoded form of a representation tagged
/// `etag`: weak, with the coding inside the quotes (`"abc"` →
/// `W/"abc-br"`). Weak because the bytes depend on the encoder and its
/// level, which may differ between nodes: a strong tag would promise
/// byte-identical bodies (If-Range, range merging) that only the identity
/// form can keep. `None` for a malformed tag (no tag is then sent).
pub fn encoded_etag(etag: &[u8], c: Coding) -> Option<HeaderValue> {
    let etag = etag.trim_ascii();
    let opaque = etag.strip_prefix(b"W/").unwrap_or(etag);
    let inner = opaque.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    if inner.contains(&b'"') {
        return None;
    }
    let mut v = Vec::with_capacity(inner.len() + 10);
    v.extend_from_slice(b"W/\"");
    v.extend_from_slice(inner);
    v.push(b'-');
    v.extend_from_slice(c.etag_suffix().as_bytes());
    v.push(b'"');
    HeaderValue::from_bytes(&v).ok()
}

/// `req` with `Accept-Encoding` set to `c`'s token: the form lookups,
/// stored variants and upstream requests see.
pub fn set_accept(req: &mut HeaderMap, c: Coding) {
    req.insert(ACCEPT_ENCODING, c.header_value());
}

#[cfg(test)]
#[path = "encoding_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "encoding_proptests.rs"]
mod proptests;
