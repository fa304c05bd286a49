//! The `[limits]` section: how much a client, or an upstream, may make a
//! node hold. Every size and count a peer controls has a ceiling here, so
//! no single connection can make the node buffer without bound, and the
//! node's own capacity (connections, backlog) is explicit. The defaults
//! are those a Varnish or nginx operator expects at an edge: a 32 KiB
//! request head (nginx's `large_client_header_buffers 4 8k`, Varnish's
//! `http_req_size`), 100 header fields (hyper's and Envoy's), an 8 KiB
//! request target (nginx's buffer size), a 64 KiB upstream head (Varnish's
//! `http_resp_size` is 32 KiB; origins that set many cookies need more).
//!
//! The deadlines that go with these limits are in `[timeouts]`
//! (`client-header`, `client-idle`, `fill`).

use meridian_common::{ByteSize, ConfigError};
use serde::Deserialize;

/// `limits.max-request-head` default.
pub const DEFAULT_MAX_REQUEST_HEAD: u64 = 32 << 10;
/// `limits.max-request-headers` default.
pub const DEFAULT_MAX_REQUEST_HEADERS: usize = 100;
/// `limits.max-uri-length` default.
pub const DEFAULT_MAX_URI_LENGTH: u64 = 8 << 10;
/// `limits.max-connections` default: well under the usual 64k descriptor
/// ceiling, with room for upstream connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// `limits.listen-backlog` default (nginx uses 511; Linux caps it at
/// `net.core.somaxconn`, 4096 on current kernels).
pub const DEFAULT_LISTEN_BACKLOG: u32 = 1024;
/// `limits.max-upstream-head` default.
pub const DEFAULT_MAX_UPSTREAM_HEAD: u64 = 64 << 10;
/// `limits.max-upstream-headers` default.
pub const DEFAULT_MAX_UPSTREAM_HEADERS: usize = 100;

/// hyper's smallest read buffer: a request head limit below it cannot be
/// enforced.
const MIN_HEAD: u64 = 8 << 10;
/// Past this a "head" is a memory hazard, not a header.
const MAX_HEAD: u64 = 16 << 20;
/// Most header fields one head may carry, whatever the config says.
const MAX_HEADER_COUNT: usize = 10_000;

/// The `[limits]` section as written (every key optional).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LimitsSection {
    /// Largest request head (request line and header fields) a client may
    /// send; past it the request gets 431 before more is buffered
    /// (default "32KiB", at least "8KiB").
    pub max_request_head: Option<ByteSize>,
    /// Most header fields in one request; past it, 431 (default 100).
    pub max_request_headers: Option<usize>,
    /// Longest request target (path and query); past it, 414 (default
    /// "8KiB").
    pub max_uri_length: Option<ByteSize>,
    /// Most client connections open at once on the node's listeners (plain
    /// and TLS together); past it new connections wait in the listen
    /// backlog until one closes (default 10000).
    pub max_connections: Option<usize>,
    /// The listen backlog of the proxy listeners (default 1024; the kernel
    /// caps it at `net.core.somaxconn`).
    pub listen_backlog: Option<u32>,
    /// Most connections open at once from one client address (default: no
    /// limit). Past it, a new connection from that address is closed.
    pub per_ip_connections: Option<usize>,
    /// Requests per second one client address may send, over every
    /// connection (default: no limit). Past it, 429 with `Retry-After`.
    pub per_ip_requests_per_second: Option<u32>,
    /// Requests one client address may send in a burst above its rate
    /// (default: the rate, one second's worth).
    pub per_ip_burst: Option<u32>,
    /// Largest response head an upstream may send; past it the answer is
    /// 502 and nothing is stored (default "64KiB").
    pub max_upstream_head: Option<ByteSize>,
    /// Most header fields in one upstream response; past it, 502 (default
    /// 100).
    pub max_upstream_headers: Option<usize>,
}

/// The validated `[limits]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_request_head: usize,
    pub max_request_headers: usize,
    pub max_uri_length: usize,
    pub max_connections: usize,
    pub listen_backlog: u32,
    /// `None`: no per-address connection limit.
    pub per_ip_connections: Option<usize>,
    /// `None`: no per-address request rate limit.
    pub per_ip_rate: Option<Rate>,
    pub max_upstream_head: usize,
    pub max_upstream_headers: usize,
}

/// A per-client-address request rate: `per_second` sustained, `burst` at
/// once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_head: DEFAULT_MAX_REQUEST_HEAD as usize,
            max_request_headers: DEFAULT_MAX_REQUEST_HEADERS,
            max_uri_length: DEFAULT_MAX_URI_LENGTH as usize,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            listen_backlog: DEFAULT_LISTEN_BACKLOG,
            per_ip_connections: None,
            per_ip_rate: None,
            max_upstream_head: DEFAULT_MAX_UPSTREAM_HEAD as usize,
            max_upstream_headers: DEFAULT_MAX_UPSTREAM_HEADERS,
        }
    }
}

impl LimitsSection {
    /// Checks every value and fills in defaults; a zero or out-of-range
    /// value is an error naming `limits.KEY`.
    pub fn validate(&self, source: &str) -> Result<Limits, ConfigError> {
        let bad = |key: &str, reason: String| {
            ConfigError::invalid(source, format!("limits.{key}"), reason)
        };
        let d = Limits::default();
        let head = |key: &str, v: Option<ByteSize>, default: usize| -> Result<usize, ConfigError> {
            let Some(v) = v else { return Ok(default) };
            if !(MIN_HEAD..=MAX_HEAD).contains(&v.bytes()) {
                return Err(bad(
                    key,
                    format!(
                        "{v} is outside {} to {}",
                        ByteSize(MIN_HEAD),
                        ByteSize(MAX_HEAD)
                    ),
                ));
            }
            usize::try_from(v.bytes()).map_err(|_| bad(key, format!("{v} is too large")))
        };
        let count = |key: &str, v: Option<usize>, default: usize| match v {
            None => Ok(default),
            Some(n) if (1..=MAX_HEADER_COUNT).contains(&n) => Ok(n),
            Some(n) => Err(bad(key, format!("{n} is outside 1 to {MAX_HEADER_COUNT}"))),
        };
        let positive = |key: &str, v: Option<usize>| match v {
            Some(0) => Err(bad(key, "must be more than 0".into())),
            v => Ok(v),
        };
        let max_uri_length = match self.max_uri_length {
            None => d.max_uri_length,
            Some(v) if (256..=MAX_HEAD).contains(&v.bytes()) => usize::try_from(v.bytes())
                .map_err(|_| bad("max-uri-length", format!("{v} is too large")))?,
            Some(v) => {
                return Err(bad(
                    "max-uri-length",
                    format!("{v} is outside 256B to {}", ByteSize(MAX_HEAD)),
                ));
            }
        };
        let listen_backlog = match self.listen_backlog {
            Some(0) => return Err(bad("listen-backlog", "must be more than 0".into())),
            Some(n) => n,
            None => d.listen_backlog,
        };
        let per_ip_rate = match (self.per_ip_requests_per_second, self.per_ip_burst) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(bad(
                    "per-ip-burst",
                    "needs per-ip-requests-per-second".into(),
                ));
            }
            (Some(0), _) => {
                return Err(bad(
                    "per-ip-requests-per-second",
                    "must be more than 0 (leave it out for no limit)".into(),
                ));
            }
            (Some(_), Some(0)) => return Err(bad("per-ip-burst", "must be more than 0".into())),
            (Some(per_second), burst) => Some(Rate {
                per_second,
                burst: burst.unwrap_or(per_second),
            }),
        };
        Ok(Limits {
            max_request_head: head(
                "max-request-head",
                self.max_request_head,
                d.max_request_head,
            )?,
            max_request_headers: count(
                "max-request-headers",
                self.max_request_headers,
                d.max_request_headers,
            )?,
            max_uri_length,
            max_connections: positive("max-connections", self.max_connections)?
                .unwrap_or(d.max_connections),
            listen_backlog,
            per_ip_connections: positive("per-ip-connections", self.per_ip_connections)?,
            per_ip_rate,
            max_upstream_head: head(
                "max-upstream-head",
                self.max_upstream_head,
                d.max_upstream_head,
            )?,
            max_upstream_headers: count(
                "max-upstream-headers",
                self.max_upstream_headers,
                d.max_upstream_headers,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Limits, String> {
        let section: LimitsSection =
            meridian_common::parse_toml(std::path::Path::new("edge.toml"), s)
                .map_err(|e| e.to_string())?;
        section.validate("edge.toml").map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_those_an_operator_expects() {
        let l = parse("").expect("defaults");
        assert_eq!(l, Limits::default());
        assert_eq!(l.max_request_head, 32 << 10);
        assert_eq!(l.per_ip_rate, None);
    }

    #[test]
    fn values_are_checked_and_named() {
        for (input, key) in [
            ("max-request-head = '1KiB'", "limits.max-request-head"),
            ("max-request-headers = 0", "limits.max-request-headers"),
            ("max-uri-length = '10B'", "limits.max-uri-length"),
            ("max-connections = 0", "limits.max-connections"),
            ("listen-backlog = 0", "limits.listen-backlog"),
            ("per-ip-connections = 0", "limits.per-ip-connections"),
            ("per-ip-burst = 5", "limits.per-ip-burst"),
            (
                "per-ip-requests-per-second = 0",
                "limits.per-ip-requests-per-second",
            ),
            ("max-upstream-head = '100MiB'", "limits.max-upstream-head"),
            (
                "max-upstream-headers = 100000",
                "limits.max-upstream-headers",
            ),
        ] {
            let e = parse(input).expect_err(input);
            assert!(e.contains("edge.toml") && e.contains(key), "{input}: {e}");
        }
    }

    #[test]
    fn a_rate_without_a_burst_allows_one_seconds_worth() {
        let l = parse("per-ip-requests-per-second = 50").expect("a rate");
        assert_eq!(
            l.per_ip_rate,
            Some(Rate {
                per_second: 50,
                burst: 50
            })
        );
    }
}
