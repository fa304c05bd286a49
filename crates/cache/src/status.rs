//! The `Cache-Status` response header (RFC 9211): one list member per cache
//! that handled the response, the origin-most first; each cache appends its
//! own member after the ones it received.

use http::HeaderValue;

pub static CACHE_STATUS: http::header::HeaderName =
    http::header::HeaderName::from_static("cache-status");

/// RFC 9211 §2.2 `fwd`: why the request went forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fwd {
    /// Nothing usable was stored.
    Miss,
    /// Nothing was stored for the URI.
    UriMiss,
    /// Stored responses for the URI, none matching the request's Vary fields.
    VaryMiss,
    /// A stored response was stale (or needed validation).
    Stale,
    /// The request's own directives (no-cache, max-age=0) sent it forward.
    Request,
    /// The request could not be served from cache (method, config).
    Bypass,
}

impl Fwd {
    pub fn as_str(self) -> &'static str {
        match self {
            Fwd::Miss => "miss",
            Fwd::UriMiss => "uri-miss",
            Fwd::VaryMiss => "vary-miss",
            Fwd::Stale => "stale",
            Fwd::Request => "request",
            Fwd::Bypass => "bypass",
        }
    }
}

/// This cache's member of the `Cache-Status` list.
#[derive(Debug, Clone, Default)]
pub struct CacheStatus {
    pub hit: bool,
    pub fwd: Option<Fwd>,
    pub fwd_status: Option<u16>,
    pub ttl: Option<i64>,
    pub stored: bool,
    pub collapsed: bool,
    pub detail: Option<&'static str>,
}

impl CacheStatus {
    pub fn hit(ttl: i64) -> Self {
        CacheStatus {
            hit: true,
            ttl: Some(ttl),
            ..Default::default()
        }
    }

    pub fn forward(fwd: Fwd) -> Self {
        CacheStatus {
            fwd: Some(fwd),
            ..Default::default()
        }
    }

    /// Writes `name; hit; ttl=..` (RFC 9211 §2). `name` must already be a
    /// valid sf-token or sf-string, see [`cache_name`].
    pub fn render(&self, name: &str, out: &mut String) {
        use std::fmt::Write;
        out.push_str(name);
        if self.hit {
            out.push_str("; hit");
        }
        if let Some(f) = self.fwd {
            out.push_str("; fwd=");
            out.push_str(f.as_str());
        }
        if let Some(s) = self.fwd_status {
            let _ = write!(out, "; fwd-status={s}");
        }
        if let Some(t) = self.ttl {
            let _ = write!(out, "; ttl={t}");
        }
        if self.stored {
            out.push_str("; stored");
        }
        if self.collapsed {
            out.push_str("; collapsed");
        }
        if let Some(d) = self.detail {
            out.push_str("; detail=");
            out.push_str(d);
        }
    }

    /// The full header value: what the upstream sent (kept first, per §2),
    /// then this cache's member.
    pub fn header_value(&self, name: &str, upstream: Option<&HeaderValue>) -> HeaderValue {
        let mut s = String::with_capacity(64);
        if let Some(up) = upstream
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.trim().is_empty())
        {
            s.push_str(up);
            s.push_str(", ");
        }
        self.render(name, &mut s);
        // The String's buffer becomes the value's: one allocation, no copy.
        HeaderValue::from_maybe_shared(bytes::Bytes::from(s))
            .unwrap_or_else(|_| HeaderValue::from_static("meridian"))
    }
}

/// Makes a node name a valid RFC 8941 item for `Cache-Status`: a token when
/// it is one (`edge-1`), else a quoted string.
pub fn cache_name(name: &str) -> String {
    let token = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '*')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~:/".contains(c));
    if token {
        name.to_owned()
    } else {
        let escaped: String = name
            .chars()
            .filter(|c| c.is_ascii() && !c.is_ascii_control())
            .flat_map(|c| match c {
                '"' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        format!("\"{escaped}\"")
    }
}

/// Detail tokens used in `detail=`.
pub mod detail {
    pub const STALE_WHILE_REVALIDATE: &str = "stale-while-revalidate";
    pub const STALE_IF_ERROR: &str = "stale-if-error";
    pub const UPSTREAM_TIMEOUT: &str = "upstream-timeout";
    pub const UPSTREAM_CONNECT: &str = "upstream-connect";
    pub const TOO_LARGE: &str = "too-large";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_members_rfc9211_2() {
        let mut s = String::new();
        CacheStatus::hit(42).render("edge-1", &mut s);
        assert_eq!(s, "edge-1; hit; ttl=42");
        let c = CacheStatus {
            fwd: Some(Fwd::Stale),
            fwd_status: Some(304),
            ttl: Some(60),
            stored: true,
            ..Default::default()
        };
        let mut s = String::new();
        c.render("edge-1", &mut s);
        assert_eq!(s, "edge-1; fwd=stale; fwd-status=304; ttl=60; stored");
    }

    #[test]
    fn upstream_member_is_kept_first_rfc9211_2() {
        let up = HeaderValue::from_static("shield-a; fwd=uri-miss; stored");
        let v = CacheStatus::hit(5).header_value("edge-1", Some(&up));
        assert_eq!(v, "shield-a; fwd=uri-miss; stored, edge-1; hit; ttl=5");
    }

    #[test]
    fn names_become_tokens_or_strings_rfc8941() {
        assert_eq!(cache_name("edge-1"), "edge-1");
        assert_eq!(cache_name("eu west \"1\""), "\"eu west \\\"1\\\"\"");
        assert_eq!(cache_name("1edge"), "\"1edge\"");
    }
}
