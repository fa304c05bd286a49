//! The `Cache-Status` response header (RFC 9211): one list member per cache
//! that handled the response, the origin-most first; each cache appends its
//! own member after the ones it received.

use http::HeaderValue;

pub static CACHE_STATUS: http::header::HeaderName =
    http::header::HeaderName::from_static("cache-status");

/// RFC 8941 §3.3.1: an Integer has at most 15 decimal digits.
pub const MAX_SF_INTEGER: i64 = 999_999_999_999_999;

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
    pub fn render(&self, name: &str, out: &mut impl std::fmt::Write) {
        let _ = out.write_str(name);
        if self.hit {
            let _ = out.write_str("; hit");
        }
        if let Some(f) = self.fwd {
            let _ = out.write_str("; fwd=");
            let _ = out.write_str(f.as_str());
        }
        if let Some(s) = self.fwd_status {
            let _ = write!(out, "; fwd-status={s}");
        }
        if let Some(t) = self.ttl {
            // An sf-integer has at most 15 digits: a ttl past them (only a
            // caller's arithmetic could make one) is written at the limit,
            // so the field stays a valid list.
            let t = t.clamp(-MAX_SF_INTEGER, MAX_SF_INTEGER);
            let _ = write!(out, "; ttl={t}");
        }
        if self.stored {
            let _ = out.write_str("; stored");
        }
        if self.collapsed {
            let _ = out.write_str("; collapsed");
        }
        if let Some(d) = self.detail {
            let _ = out.write_str("; detail=");
            let _ = out.write_str(d);
        }
    }

    /// The full header value: what the upstream sent (kept first, per §2),
    /// then this cache's member. Rendered on the stack, so the value is the
    /// one exact-size allocation (this runs on every response).
    pub fn header_value(&self, name: &str, upstream: Option<&HeaderValue>) -> HeaderValue {
        // An empty upstream value has no members to keep.
        let upstream = upstream
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.trim().is_empty());
        let mut buf = StackStr::<192>::new();
        if let Some(up) = upstream {
            buf.push_str(up);
            buf.push_str(", ");
        }
        self.render(name, &mut buf);
        let value = match buf.as_str() {
            Some(s) => HeaderValue::from_str(s),
            // Longer than the stack buffer (a long upstream chain): heap.
            None => {
                let mut s = String::new();
                if let Some(up) = upstream {
                    s.push_str(up);
                    s.push_str(", ");
                }
                self.render(name, &mut s);
                HeaderValue::from_str(&s)
            }
        };
        value.unwrap_or_else(|_| HeaderValue::from_static("meridian"))
    }
}

/// A fixed-capacity string on the stack; writes past the end are dropped
/// and remembered, so the caller can fall back to the heap.
struct StackStr<const N: usize> {
    buf: [u8; N],
    len: usize,
    overflow: bool,
}

impl<const N: usize> StackStr<N> {
    fn new() -> Self {
        StackStr {
            buf: [0; N],
            len: 0,
            overflow: false,
        }
    }

    fn push_str(&mut self, s: &str) {
        match self.buf.get_mut(self.len..self.len + s.len()) {
            Some(dst) if !self.overflow => {
                dst.copy_from_slice(s.as_bytes());
                self.len += s.len();
            }
            _ => self.overflow = true,
        }
    }

    fn as_str(&self) -> Option<&str> {
        if self.overflow {
            return None;
        }
        std::str::from_utf8(&self.buf[..self.len]).ok()
    }
}

impl<const N: usize> std::fmt::Write for StackStr<N> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.push_str(s);
        Ok(())
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
    /// Not stored: the memory for bodies being filled was in use.
    pub const FILL_BUDGET: &str = "fill-budget";
    /// Revalidated first: the node has not heard from the purge log for
    /// longer than `purge.max-lag`, and this copy is older than that.
    pub const PURGE_LAG: &str = "purge-lag";
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

    /// Found by the `cache_status` fuzz target: past the stack buffer (a
    /// long node name here) an empty upstream value left a leading ", ",
    /// which is not an RFC 8941 list.
    #[test]
    fn an_empty_upstream_value_adds_no_member_on_the_heap_path_too() {
        let name = cache_name(&"\\".repeat(90));
        for up in ["", "  "] {
            let up = HeaderValue::from_static(up);
            let v = CacheStatus::hit(5).header_value(&name, Some(&up));
            let v = v.to_str().expect("ascii");
            assert!(v.len() > 192 && v.starts_with('"'), "{v}");
        }
    }

    #[test]
    fn long_upstream_chains_are_kept_whole() {
        let chain: Vec<String> = (0..20)
            .map(|i| format!("shield-{i}; fwd=miss; stored"))
            .collect();
        let up = HeaderValue::from_str(&chain.join(", ")).expect("value");
        let v = CacheStatus::hit(1).header_value("edge-1", Some(&up));
        let text = v.to_str().expect("ascii");
        assert!(
            text.starts_with("shield-0; fwd=miss; stored, shield-1"),
            "{text}"
        );
        assert!(
            text.ends_with("shield-19; fwd=miss; stored, edge-1; hit; ttl=1"),
            "{text}"
        );
    }

    #[test]
    fn names_become_tokens_or_strings_rfc8941() {
        assert_eq!(cache_name("edge-1"), "edge-1");
        assert_eq!(cache_name("eu west \"1\""), "\"eu west \\\"1\\\"\"");
        assert_eq!(cache_name("1edge"), "\"1edge\"");
    }
}

#[cfg(test)]
#[path = "status_proptests.rs"]
mod proptests;
