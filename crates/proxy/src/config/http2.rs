//! The `[http2]` section: the limits an HTTP/2 connection from a client
//! lives under (RFC 9113 SETTINGS and the abuse limits of the `h2` crate),
//! so one connection cannot hold unbounded streams, windows, header blocks
//! or resets. The defaults are those an nginx or Envoy operator expects at
//! an edge: nginx's `http2_max_concurrent_streams 128`, Envoy's edge
//! windows (64 KiB per stream, 1 MiB per connection), the protocol's
//! 16 KiB frames.

use std::time::Duration;

use meridian_common::{ByteSize, ConfigError, HumanDuration};
use serde::Deserialize;

/// `http2.max-concurrent-streams` default, as nginx's.
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 128;
/// `http2.initial-stream-window` default (Envoy's edge recommendation):
/// what a client may send on one stream (a request body) before it is read.
pub const DEFAULT_STREAM_WINDOW: u32 = 64 << 10;
/// `http2.initial-connection-window` default (Envoy's edge recommendation).
pub const DEFAULT_CONNECTION_WINDOW: u32 = 1 << 20;
/// `http2.max-frame-size` default: RFC 9113 §6.5.2's initial value.
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 16 << 10;
/// `http2.max-header-list-size` default: the decoded request head (HPACK
/// output, RFC 9113 §6.5.2), about nginx's `large_client_header_buffers
/// 4 8k`.
pub const DEFAULT_MAX_HEADER_LIST_SIZE: u32 = 32 << 10;
/// `http2.max-pending-accept-reset-streams` default (the `h2` crate's):
/// streams a client opened and reset before they were served; past it the
/// connection gets GOAWAY (the CVE-2023-44487 "rapid reset" guard).
pub const DEFAULT_MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;
/// `http2.max-local-error-reset-streams` default (hyper's): streams this
/// node reset because the client broke the protocol on them; past it the
/// connection gets GOAWAY.
pub const DEFAULT_MAX_LOCAL_ERROR_RESET_STREAMS: usize = 1024;
/// `http2.keep-alive-timeout` default (hyper's): how long a PING may go
/// unanswered, when pings are on.
pub const DEFAULT_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// RFC 9113 §6.5.2: SETTINGS_MAX_FRAME_SIZE lies between 2^14 and 2^24-1.
const FRAME_SIZE_RANGE: std::ops::RangeInclusive<u64> = (1 << 14)..=((1 << 24) - 1);
/// RFC 9113 §6.9.1: a window never exceeds 2^31-1.
const MAX_WINDOW: u64 = (1 << 31) - 1;
/// RFC 9113 §6.9.2: the connection window starts at 65,535 and can only be
/// raised by WINDOW_UPDATE.
const MIN_CONNECTION_WINDOW: u64 = 65_535;
/// Envoy's ceiling for `max_request_headers_kb`: more is a memory hazard,
/// not a header.
const MAX_HEADER_LIST: u64 = 8 << 20;

/// The `[http2]` section as written (every key optional).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Http2Section {
    /// Streams a client may have open at once on one connection
    /// (SETTINGS_MAX_CONCURRENT_STREAMS) (default 128, as nginx).
    pub max_concurrent_streams: Option<u32>,
    /// Receive window of each stream: request body bytes a client may send
    /// ahead of the proxy reading them (default "64KiB").
    pub initial_stream_window: Option<ByteSize>,
    /// Receive window of the whole connection (default "1MiB").
    pub initial_connection_window: Option<ByteSize>,
    /// Largest frame payload accepted (SETTINGS_MAX_FRAME_SIZE), 16KiB to
    /// 16MiB-1 (default "16KiB").
    pub max_frame_size: Option<ByteSize>,
    /// Largest decoded request head (SETTINGS_MAX_HEADER_LIST_SIZE); a
    /// header block past it, CONTINUATION frames included, closes the
    /// connection (default "32KiB").
    pub max_header_list_size: Option<ByteSize>,
    /// Streams the client may reset before they are served; past it the
    /// connection is closed with GOAWAY (default 20).
    pub max_pending_accept_reset_streams: Option<usize>,
    /// Streams the proxy may reset for the client's protocol errors; past
    /// it the connection is closed with GOAWAY (default 1024).
    pub max_local_error_reset_streams: Option<usize>,
    /// Interval of keep-alive PINGs on an idle connection (default "0s":
    /// none).
    pub keep_alive_interval: Option<HumanDuration>,
    /// How long a PING may go unanswered before the connection is closed
    /// (default "20s"; used when `keep-alive-interval` is set).
    pub keep_alive_timeout: Option<HumanDuration>,
}

/// The validated `[http2]` limits every listener's connections get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Http2Settings {
    pub max_concurrent_streams: u32,
    pub initial_stream_window: u32,
    pub initial_connection_window: u32,
    pub max_frame_size: u32,
    pub max_header_list_size: u32,
    pub max_pending_accept_reset_streams: usize,
    pub max_local_error_reset_streams: usize,
    /// `None`: no keep-alive PINGs.
    pub keep_alive_interval: Option<Duration>,
    pub keep_alive_timeout: Duration,
}

impl Default for Http2Settings {
    fn default() -> Self {
        Http2Settings {
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
            initial_stream_window: DEFAULT_STREAM_WINDOW,
            initial_connection_window: DEFAULT_CONNECTION_WINDOW,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            max_header_list_size: DEFAULT_MAX_HEADER_LIST_SIZE,
            max_pending_accept_reset_streams: DEFAULT_MAX_PENDING_ACCEPT_RESET_STREAMS,
            max_local_error_reset_streams: DEFAULT_MAX_LOCAL_ERROR_RESET_STREAMS,
            keep_alive_interval: None,
            keep_alive_timeout: DEFAULT_KEEP_ALIVE_TIMEOUT,
        }
    }
}

impl Http2Section {
    /// Checks every value against what RFC 9113 allows and what makes sense
    /// (0 streams or windows would serve nothing) and fills in defaults.
    /// Out-of-range values are errors here, never a panic in the `h2`
    /// crate at the first connection.
    pub fn validate(&self, source: &str) -> Result<Http2Settings, ConfigError> {
        let bad = |key: &str, reason: String| {
            ConfigError::invalid(source, format!("http2.{key}"), reason)
        };
        let d = Http2Settings::default();
        let sized = |key: &str,
                     v: Option<ByteSize>,
                     default: u32,
                     range: std::ops::RangeInclusive<u64>|
         -> Result<u32, ConfigError> {
            let Some(v) = v else { return Ok(default) };
            if !range.contains(&v.bytes()) {
                return Err(bad(
                    key,
                    format!(
                        "{v} is outside {} to {}",
                        ByteSize(*range.start()),
                        ByteSize(*range.end())
                    ),
                ));
            }
            u32::try_from(v.bytes()).map_err(|_| bad(key, format!("{v} is too large")))
        };
        let at_least_one = |key: &str, v: Option<usize>, default: usize, why: &str| match v {
            Some(0) => Err(bad(key, format!("must be more than 0 ({why})"))),
            Some(n) => Ok(n),
            None => Ok(default),
        };
        let max_concurrent_streams = match self.max_concurrent_streams {
            Some(0) => {
                return Err(bad(
                    "max-concurrent-streams",
                    "must be more than 0 (no request could be sent)".into(),
                ));
            }
            Some(n) => n,
            None => d.max_concurrent_streams,
        };
        let keep_alive_timeout = self
            .keep_alive_timeout
            .map_or(d.keep_alive_timeout, HumanDuration::get);
        if keep_alive_timeout.is_zero() {
            return Err(bad(
                "keep-alive-timeout",
                "must be more than 0s (every ping would fail)".into(),
            ));
        }
        Ok(Http2Settings {
            max_concurrent_streams,
            initial_stream_window: sized(
                "initial-stream-window",
                self.initial_stream_window,
                d.initial_stream_window,
                1..=MAX_WINDOW,
            )?,
            initial_connection_window: sized(
                "initial-connection-window",
                self.initial_connection_window,
                d.initial_connection_window,
                MIN_CONNECTION_WINDOW..=MAX_WINDOW,
            )?,
            max_frame_size: sized(
                "max-frame-size",
                self.max_frame_size,
                d.max_frame_size,
                FRAME_SIZE_RANGE,
            )?,
            max_header_list_size: sized(
                "max-header-list-size",
                self.max_header_list_size,
                d.max_header_list_size,
                1024..=MAX_HEADER_LIST,
            )?,
            max_pending_accept_reset_streams: at_least_one(
                "max-pending-accept-reset-streams",
                self.max_pending_accept_reset_streams,
                d.max_pending_accept_reset_streams,
                "the first reset stream would close the connection",
            )?,
            max_local_error_reset_streams: at_least_one(
                "max-local-error-reset-streams",
                self.max_local_error_reset_streams,
                d.max_local_error_reset_streams,
                "the first malformed request would close the connection",
            )?,
            keep_alive_interval: self
                .keep_alive_interval
                .map(HumanDuration::get)
                .filter(|i| !i.is_zero()),
            keep_alive_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> Http2Section {
        meridian_common::parse_toml(std::path::Path::new("edge.toml"), toml).expect("parses")
    }

    #[test]
    fn defaults_are_operator_grade() {
        let s = Http2Section::default()
            .validate("edge.toml")
            .expect("valid");
        assert_eq!(s, Http2Settings::default());
        assert_eq!(s.max_concurrent_streams, 128);
        assert_eq!(s.initial_stream_window, 65_536);
        assert_eq!(s.max_frame_size, 16_384);
        assert_eq!(s.keep_alive_interval, None);
    }

    #[test]
    fn values_parse_with_units() {
        let s = parse(
            "max-concurrent-streams = 64\ninitial-stream-window = '256KiB'\n\
             initial-connection-window = '4MiB'\nmax-frame-size = 32768\n\
             max-header-list-size = '16KiB'\nmax-pending-accept-reset-streams = 5\n\
             max-local-error-reset-streams = 50\nkeep-alive-interval = '30s'\n\
             keep-alive-timeout = '5s'",
        )
        .validate("edge.toml")
        .expect("valid");
        assert_eq!(s.max_concurrent_streams, 64);
        assert_eq!(s.initial_stream_window, 256 << 10);
        assert_eq!(s.initial_connection_window, 4 << 20);
        assert_eq!(s.max_frame_size, 32_768);
        assert_eq!(s.max_header_list_size, 16 << 10);
        assert_eq!(s.max_pending_accept_reset_streams, 5);
        assert_eq!(s.max_local_error_reset_streams, 50);
        assert_eq!(s.keep_alive_interval, Some(Duration::from_secs(30)));
        assert_eq!(s.keep_alive_timeout, Duration::from_secs(5));
        let off = parse("keep-alive-interval = '0s'")
            .validate("edge.toml")
            .expect("valid");
        assert_eq!(off.keep_alive_interval, None);
    }

    /// RFC 9113 §6.5.2 (frame size range), §6.9.1 (2^31-1 windows), §6.9.2
    /// (the connection window starts at 65,535); zero where zero serves
    /// nothing.
    #[test]
    fn bad_values_name_the_key_rfc9113_6_5_2() {
        let cases = [
            ("max-concurrent-streams = 0", "http2.max-concurrent-streams"),
            ("initial-stream-window = 0", "http2.initial-stream-window"),
            (
                "initial-stream-window = '2GiB'",
                "http2.initial-stream-window",
            ),
            (
                "initial-connection-window = 1000",
                "http2.initial-connection-window",
            ),
            ("max-frame-size = 16383", "http2.max-frame-size"),
            ("max-frame-size = '16MiB'", "http2.max-frame-size"),
            ("max-header-list-size = 0", "http2.max-header-list-size"),
            (
                "max-header-list-size = '1GiB'",
                "http2.max-header-list-size",
            ),
            (
                "max-pending-accept-reset-streams = 0",
                "http2.max-pending-accept-reset-streams",
            ),
            (
                "max-local-error-reset-streams = 0",
                "http2.max-local-error-reset-streams",
            ),
            ("keep-alive-timeout = '0s'", "http2.keep-alive-timeout"),
        ];
        for (toml, key) in cases {
            let err = parse(toml)
                .validate("edge.toml")
                .expect_err(toml)
                .to_string();
            assert!(
                err.contains("edge.toml") && err.contains(key),
                "{toml}: {err}"
            );
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let r: Result<Http2Section, _> =
            meridian_common::parse_toml(std::path::Path::new("edge.toml"), "max-streams = 10");
        assert!(r.is_err());
    }
}
