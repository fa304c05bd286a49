//! Edge configuration: the TOML file shape (`FileConfig`, every key
//! optional with a documented default) and the validated runtime
//! [`Config`]. Precedence: command-line flags > file > defaults.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use http::Uri;
use http::header::HeaderName;
use ipnet::IpNet;
use meridian_cache::{KeyOptions, Policy};
use meridian_common::{ByteSize, ConfigError, HumanDuration};

/// `cache.stale-if-error-grace` default: a stale copy is served this long
/// past expiry when the upstream cannot be reached or fails (RFC 9111
/// §4.2.4), as Varnish's default grace of 10 s.
pub const DEFAULT_STALE_IF_ERROR_GRACE: Duration = Duration::from_secs(10);
use serde::Deserialize;

/// Most `cache.max-variants` may allow: every lookup of a URL walks its
/// variants.
const MAX_VARIANTS_LIMIT: usize = 1024;

use crate::authority::{Authority, HostPattern, Scheme};
use crate::upstream::tls::{TlsUpstream, UpstreamTls};
use meridian_balance::TlsOptions;

mod http2;
mod limits;
pub use http2::{Http2Section, Http2Settings};
pub use limits::{Limits, LimitsSection, Rate};

/// The file as written by an operator. See `config/edge.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    /// Node name, used in `Cache-Status` and `Via` (default "meridian").
    pub name: Option<String>,
    /// Region label reported by `/healthz` (default "local").
    pub region: Option<String>,
    /// Plain HTTP proxy listener (default "127.0.0.1:8080", or none when
    /// `tls.listen` is set: then it runs only when given).
    pub listen: Option<SocketAddr>,
    /// Admin listener (`/healthz`, `/stats`) (default none).
    pub admin_listen: Option<SocketAddr>,
    /// Upstream base URLs (an origin, or shields) (required):
    /// `http://host:port[/prefix][;id=NAME]`, or `https://...` with
    /// `;ca=PATH`, `;sni=NAME`, `;insecure-skip-verify`.
    #[serde(default)]
    pub upstream: Vec<String>,
    /// PEM file of CA certificates that `https://` upstreams without their
    /// own `;ca=` are verified against, instead of the system roots
    /// (default none: the system roots). Relative to the config file.
    pub upstream_ca: Option<std::path::PathBuf>,
    /// Runtime worker threads; 0 = one per core (default 0).
    pub workers: Option<usize>,
    /// Serve every request as this site (`host[:port]`), whatever
    /// authority the client used: its cache key and upstream `Host`
    /// (default none: each request's own authority).
    pub site_host: Option<String>,
    /// Host names served (`host`, `host:port` or `*.suffix`); any other
    /// authority gets 421. The site host is always accepted (default: all).
    pub accept_hosts: Option<Vec<String>>,
    /// CIDRs of peers whose forwarding fields (`X-Forwarded-*`,
    /// `Forwarded`, `X-Real-IP`...) are kept and appended to; from any
    /// other peer they are replaced (default []).
    pub trusted_forwarders: Option<Vec<IpNet>>,
    #[serde(default)]
    pub cache: CacheSection,
    #[serde(default)]
    pub timeouts: TimeoutSection,
    #[serde(default)]
    pub health: HealthSection,
    #[serde(default)]
    pub admin: AdminSection,
    #[serde(default)]
    pub purge: PurgeSection,
    #[serde(default)]
    pub compression: crate::compress::CompressionSection,
    /// Limits of a client's HTTP/2 connection.
    #[serde(default)]
    pub http2: Http2Section,
    /// Sizes, counts and connections a client or an upstream may use.
    #[serde(default)]
    pub limits: LimitsSection,
    /// The TLS listener and its certificates (default none).
    #[serde(default)]
    pub tls: TlsSection,
}

/// The admin listener's access rules.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AdminSection {
    /// Tokens for state-changing routes (`POST /purge`, `PURGE`), on top of
    /// `MERIDIAN_ADMIN_TOKEN` (default none: those routes answer 403).
    #[serde(default)]
    pub token: Vec<meridian_common::auth::TokenConfig>,
    /// `Host` values the admin listener answers besides its own address,
    /// `localhost` and loopback IPs (default none). Any other Host gets 421:
    /// a guard against DNS rebinding.
    pub hosts: Option<Vec<String>>,
}

/// TLS termination: a listener, its certificates, and the plain listener's
/// redirect. See the README's "HTTPS edge".
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TlsSection {
    /// TLS listener (default none: no TLS). With it, the plain `listen`
    /// runs only when it is set too.
    pub listen: Option<SocketAddr>,
    /// Certificates (`[[tls.cert]] cert = "PEM", key = "PEM"`, paths
    /// relative to the config file), picked by SNI from each one's
    /// subjectAltName names; the first is the default (required with
    /// `listen`).
    #[serde(default)]
    pub cert: Vec<CertSection>,
    /// A client that has not finished its handshake by then is dropped
    /// (default "10s").
    pub handshake_timeout: Option<HumanDuration>,
    /// The plain listener answers every request with 308 to the same URL
    /// on `https://` (the TLS listener's port when it is not 443) instead
    /// of proxying it (default false).
    pub redirect_plain: Option<bool>,
    /// TLS sessions kept for resumption by session ID; 0 keeps none
    /// (default 4096).
    pub session_cache: Option<usize>,
    /// Stateless session tickets for resumption (default true).
    pub session_tickets: Option<bool>,
    /// Handshakes in progress at once; past it the listener waits before
    /// accepting more (default 1024).
    pub max_handshakes: Option<usize>,
}

/// One `[[tls.cert]]` pair.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CertSection {
    /// PEM certificate chain, leaf first.
    pub cert: std::path::PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of the leaf.
    pub key: std::path::PathBuf,
}

/// Following the cluster purge log.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PurgeSection {
    /// The purge log to follow: the director's admin URL
    /// (`http://127.0.0.1:9000`) or `nats://host:4222` (default none).
    pub log: Option<String>,
    /// How long the node may go without hearing from the log before it
    /// revalidates anything it fetched earlier than that (default "5s").
    pub max_lag: Option<HumanDuration>,
    /// File holding the token sent to the log (default:
    /// `MERIDIAN_ADMIN_TOKEN`).
    pub token_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CacheSection {
    /// Memory for stored responses, headers included (default "256MiB").
    pub size: Option<ByteSize>,
    /// Larger responses are streamed, not stored (default "64MiB").
    pub max_object_size: Option<ByteSize>,
    /// Memory for bodies being filled, across all fills in flight (default
    /// half of `size`, at least `max-object-size`). Past it, new misses
    /// stream through to their client without being stored.
    pub fill_budget: Option<ByteSize>,
    /// How far a fill that stopped storing (too large, out of budget) may
    /// run ahead of its slowest reader: the memory such a fill holds
    /// (default "1MiB").
    pub pass_window: Option<ByteSize>,
    /// Stored bodies of at least this size live in sealed memory files, and
    /// hits on plain HTTP send them with `sendfile(2)` instead of copying
    /// them through the node (default "32KiB", at least "16KiB").
    pub zero_copy_min_size: Option<ByteSize>,
    /// Most bodies kept that way at once, each one open file (default
    /// 8192, and at most a quarter of the open-files limit; 0 keeps every
    /// body on the heap).
    pub zero_copy_max_bodies: Option<usize>,
    /// Those files live on a private tmpfs with large pages, so `sendfile`
    /// looks up a body's pages a folio at a time (default true; falls back
    /// to memory files with 4 KiB pages without CAP_SYS_ADMIN).
    pub zero_copy_large_pages: Option<bool>,
    /// Heuristic freshness fraction of the Last-Modified age (default 0.1).
    pub heuristic_fraction: Option<f64>,
    /// Cap on heuristic freshness (default "1day").
    pub heuristic_max: Option<HumanDuration>,
    /// Store responses carrying Set-Cookie (default false).
    pub store_set_cookie: Option<bool>,
    /// Sort query parameters in the cache key (default false).
    pub sort_query: Option<bool>,
    /// Query parameters left out of the cache key (default none).
    pub drop_query_params: Option<Vec<String>>,
    /// Serve stale this long past expiry when the upstream fails, on top of
    /// any `stale-if-error` (default "10s", as Varnish's default grace).
    pub stale_if_error_grace: Option<HumanDuration>,
    /// How long a collapsed request waits for the leader's fetch (default "30s").
    pub collapse_wait: Option<HumanDuration>,
    /// Longest a 5xx with explicit freshness stays fresh (and may be served
    /// stale) once stored (default "10s"; "0s" keeps it only for collapsing).
    pub error_max_ttl: Option<HumanDuration>,
    /// Targeted cache-control fields obeyed, highest precedence first
    /// (default `["CDN-Cache-Control", "Surrogate-Control"]`).
    pub targets: Option<Vec<String>>,
    /// Most variants (responses with different `Vary` values) kept for one
    /// URL; storing another drops the oldest (default 32, at most 1024).
    pub max_variants: Option<usize>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TimeoutSection {
    /// TCP connect to the upstream (default "2s"); failure gives 502.
    pub connect: Option<HumanDuration>,
    /// Wait for the upstream's response headers, and between body chunks
    /// (default "30s"); expiry gives 504.
    pub response: Option<HumanDuration>,
    /// Longest pause between two pieces of a client's request body
    /// (default "10s"); expiry gives 400 and is not held against the upstream.
    pub client_body: Option<HumanDuration>,
    /// How long an idle upstream connection is kept for reuse (default
    /// "4s"; "0s" keeps none). Keep it below the upstreams' own keep-alive
    /// timeout (5s in Apache and Node.js, 75s in nginx), so it is the proxy
    /// that closes an idle connection, not the origin while a request is
    /// being written on it.
    pub pool_idle: Option<HumanDuration>,
    /// Longest a client may take to send a request head, from its first
    /// byte (default "10s"); expiry closes the connection.
    pub client_header: Option<HumanDuration>,
    /// How long an idle client keep-alive connection is kept open between
    /// requests (default "60s").
    pub client_idle: Option<HumanDuration>,
    /// Longest a whole fill may take, head and body, whatever the pace of
    /// its chunks (default "120s"); expiry ends the fill, stores nothing,
    /// and the client and any collapsed waiters see the response cut off
    /// (or 504 before the head).
    pub fill: Option<HumanDuration>,
}

/// Health of the upstreams (used when there are several shields).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HealthSection {
    /// Path polled on each upstream (default "/.well-known/meridian/health",
    /// which every Meridian proxy listener answers itself).
    pub path: Option<String>,
    /// Poll interval (default "2s"); "0s" turns active checks off.
    pub interval: Option<HumanDuration>,
    /// Successes that bring an upstream back (default 1).
    pub rise: Option<u32>,
    /// Failures that take it out (default 1).
    pub fall: Option<u32>,
    /// How long a connect failure, timeout or reset takes an upstream out
    /// (default "10s"). The last healthy upstream is never taken out.
    pub cool_off: Option<HumanDuration>,
    /// Whether a 5xx answer counts as an upstream failure too (default
    /// false: a 5xx is that URL's answer, and one broken URL must not
    /// take a server out).
    pub eject_on_5xx: Option<bool>,
}

/// The validated edge configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub name: String,
    pub region: String,
    /// The plain listener; `None` when only the TLS listener runs.
    pub listen: Option<SocketAddr>,
    pub admin_listen: Option<SocketAddr>,
    pub upstreams: Vec<Uri>,
    /// Each upstream's `;id=NAME`, if given: its identity for the
    /// key-to-shield hashing instead of its address.
    pub upstream_ids: Vec<Option<String>>,
    /// Each `https://` upstream's TLS options (`None` for `http://`).
    pub upstream_tls: Vec<Option<TlsOptions>>,
    /// The TLS settings built from them, shared by every connection to an
    /// upstream and by the health checks.
    pub upstream_trust: std::sync::Arc<UpstreamTls>,
    pub workers: Option<usize>,
    /// `site-host`, validated.
    pub site_host: Option<String>,
    /// `accept-hosts`; `None` accepts every authority.
    pub accept_hosts: Option<Vec<HostPattern>>,
    pub trusted_forwarders: Vec<IpNet>,
    pub cache_size: u64,
    pub max_object_size: u64,
    pub fill_budget: u64,
    pub pass_window: u64,
    /// `cache.zero-copy-min-size` and `cache.zero-copy-max-bodies`.
    pub zero_copy_min_size: u64,
    pub zero_copy_max_bodies: usize,
    /// `cache.zero-copy-large-pages`.
    pub zero_copy_large_pages: bool,
    /// `cache.max-variants`.
    pub max_variants: usize,
    pub policy: Policy,
    pub key: KeyOptions,
    pub stale_if_error_grace: Duration,
    pub collapse_wait: Duration,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub client_body_timeout: Duration,
    /// Zero: upstream connections are not kept for reuse.
    pub pool_idle_timeout: Duration,
    /// `timeouts.client-header`.
    pub client_header_timeout: Duration,
    /// `timeouts.client-idle`.
    pub client_idle_timeout: Duration,
    /// `timeouts.fill`: the total deadline of one fill.
    pub fill_timeout: Duration,
    pub health_path: String,
    pub health_interval: Duration,
    pub health_rise: u32,
    pub health_fall: u32,
    pub cool_off: Duration,
    pub eject_on_5xx: bool,
    /// Tokens accepted by the admin listener and `PURGE`.
    pub admin_tokens: std::sync::Arc<meridian_common::auth::Tokens>,
    /// Extra `Host` values the admin listener answers.
    pub admin_hosts: Vec<String>,
    /// The purge log followed, if any (`http://...` or `nats://...`).
    pub purge_log: Option<String>,
    pub purge_max_lag: Duration,
    /// The token sent to the purge log.
    pub purge_token: Option<String>,
    /// Which tier this node is in (the shield's config sets `Shield`).
    pub tier: meridian_purge::Tier,
    /// `[compression]`; `None` when off.
    pub compression: Option<crate::compress::Compression>,
    /// `[http2]`: the limits of a client's HTTP/2 connection.
    pub http2: Http2Settings,
    /// `[limits]`.
    pub limits: Limits,
    /// The TLS listener and its certificates (`[tls]`), if any.
    pub tls: Option<crate::tls::TlsSettings>,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        meridian_common::load_toml(path)
    }

    /// Checks every value and fills in defaults. `source` names the file
    /// (or "command line") in errors.
    pub fn validate(&self, source: &str) -> Result<Config, ConfigError> {
        let bad = |key: &str, reason: String| ConfigError::invalid(source, key, reason);
        if self.upstream.is_empty() {
            return Err(bad(
                "upstream",
                "at least one upstream URL is required (--upstream http://HOST:PORT)".into(),
            ));
        }
        let parsed = self
            .upstream
            .iter()
            .map(|u| parse_upstream_spec(u).map_err(|r| bad("upstream", r)))
            .collect::<Result<Vec<_>, _>>()?;
        let base = Path::new(source).parent().unwrap_or(Path::new("."));
        let with_tls: Vec<_> = parsed
            .iter()
            .filter_map(|u| {
                u.tls.as_ref().map(|options| TlsUpstream {
                    uri: &u.uri,
                    options,
                })
            })
            .collect();
        let upstream_trust = UpstreamTls::build(&with_tls, self.upstream_ca.as_deref(), base)
            .map_err(|e| bad(e.key, e.reason))?;
        let (upstreams, (upstream_ids, upstream_tls)): (Vec<_>, (Vec<_>, Vec<_>)) =
            parsed.into_iter().map(|u| (u.uri, (u.id, u.tls))).unzip();
        let c = &self.cache;
        let cache_size = c.size.map_or(256 << 20, ByteSize::bytes);
        let max_object_size = c.max_object_size.map_or(64 << 20, ByteSize::bytes);
        if cache_size == 0 {
            return Err(bad("cache.size", "must be more than 0".into()));
        }
        let fill_budget = c
            .fill_budget
            .map_or((cache_size / 2).max(max_object_size), ByteSize::bytes);
        if fill_budget == 0 {
            return Err(bad(
                "cache.fill-budget",
                "must be more than 0 (no miss could be stored)".into(),
            ));
        }
        let pass_window = c.pass_window.map_or(1 << 20, ByteSize::bytes);
        if pass_window == 0 {
            return Err(bad(
                "cache.pass-window",
                "must be more than 0 (a passing fill could never send a byte)".into(),
            ));
        }
        let zero_copy_min_size = c.zero_copy_min_size.map_or(32 << 10, ByteSize::bytes);
        if zero_copy_min_size < meridian_sendfile::SEND_MIN as u64 {
            return Err(bad(
                "cache.zero-copy-min-size",
                format!(
                    "{} is below {}: smaller bodies cost less to copy than to send from a file",
                    ByteSize(zero_copy_min_size),
                    ByteSize(meridian_sendfile::SEND_MIN as u64)
                ),
            ));
        }
        if max_object_size > cache_size {
            return Err(bad(
                "cache.max-object-size",
                format!(
                    "{} is larger than cache.size {}",
                    ByteSize(max_object_size),
                    ByteSize(cache_size)
                ),
            ));
        }
        let max_variants = match c.max_variants {
            None => meridian_cache::store::MAX_VARIANTS,
            Some(n) if (1..=MAX_VARIANTS_LIMIT).contains(&n) => n,
            Some(n) => {
                return Err(bad(
                    "cache.max-variants",
                    format!("{n} is outside 1 to {MAX_VARIANTS_LIMIT}"),
                ));
            }
        };
        let heuristic_fraction = c.heuristic_fraction.unwrap_or(0.1);
        if !(0.0..=1.0).contains(&heuristic_fraction) {
            return Err(bad(
                "cache.heuristic-fraction",
                format!("{heuristic_fraction} is not between 0 and 1"),
            ));
        }
        let targets = match &c.targets {
            None => Policy::default().targets,
            Some(list) => list
                .iter()
                .map(|t| {
                    HeaderName::from_bytes(t.as_bytes())
                        .map_err(|_| bad("cache.targets", format!("`{t}` is not a header name")))
                })
                .collect::<Result<_, _>>()?,
        };
        let policy = Policy {
            heuristic_fraction,
            heuristic_max: c
                .heuristic_max
                .map_or(Duration::from_secs(86_400), HumanDuration::get),
            store_set_cookie: c.store_set_cookie.unwrap_or(false),
            targets,
            error_max_ttl: c.error_max_ttl.map_or(
                meridian_cache::policy::DEFAULT_ERROR_MAX_TTL,
                HumanDuration::get,
            ),
        };
        let name = self.name.clone().unwrap_or_else(|| "meridian".into());
        if name.trim().is_empty() {
            return Err(bad("name", "must not be empty".into()));
        }
        let health_path = self
            .health
            .path
            .clone()
            .unwrap_or_else(|| crate::engine::PROXY_HEALTH_PATH.into());
        if !health_path.starts_with('/') {
            return Err(bad(
                "health.path",
                format!("`{health_path}` must start with /"),
            ));
        }
        let site_host = match &self.site_host {
            None => None,
            Some(s) => Some(
                Authority::parse(s, Scheme::Http)
                    .map_err(|e| bad("site-host", format!("`{s}`: {e}")))?
                    .as_str()
                    .to_owned(),
            ),
        };
        let accept_hosts = match &self.accept_hosts {
            None => None,
            Some(list) if list.is_empty() && site_host.is_none() => {
                return Err(bad(
                    "accept-hosts",
                    "an empty list without site-host would refuse every request".into(),
                ));
            }
            Some(list) => Some(
                list.iter()
                    .map(|h| {
                        HostPattern::parse(h)
                            .map_err(|e| bad("accept-hosts", format!("`{h}`: {e}")))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        // A zero deadline would fail every request: refused, not obeyed.
        let nonzero = |key: &str, v: Option<HumanDuration>, default: Duration| {
            let d = v.map_or(default, HumanDuration::get);
            if d.is_zero() {
                return Err(bad(
                    key,
                    "must be more than 0s (every request would fail)".into(),
                ));
            }
            Ok(d)
        };
        let client_body_timeout = nonzero(
            "timeouts.client-body",
            self.timeouts.client_body,
            Duration::from_secs(10),
        )?;
        let admin_hosts = self.admin.hosts.clone().unwrap_or_default();
        for h in &admin_hosts {
            HostPattern::parse(h).map_err(|e| bad("admin.hosts", format!("`{h}`: {e}")))?;
        }
        let admin_tokens = meridian_common::auth::Tokens::load(&self.admin.token, base, source)?;
        let purge_max_lag = self
            .purge
            .max_lag
            .map_or(meridian_purge::DEFAULT_MAX_LAG, HumanDuration::get);
        if purge_max_lag.is_zero() {
            return Err(bad(
                "purge.max-lag",
                "must be more than 0s (every hit would revalidate)".into(),
            ));
        }
        if let Some(log) = &self.purge.log
            && !(log.starts_with("http://") || log.starts_with("nats://"))
        {
            return Err(bad(
                "purge.log",
                format!("`{log}`: use http://DIRECTOR-ADMIN or nats://HOST:PORT"),
            ));
        }
        let purge_token = match &self.purge.token_file {
            None => std::env::var(meridian_common::auth::TOKEN_ENV).ok(),
            Some(f) => {
                let path = base.join(f);
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| bad("purge.token-file", format!("{}: {e}", path.display())))?;
                Some(text.lines().next().unwrap_or("").trim().to_owned())
            }
        };
        let tls = self.tls.validate(source, base, self.listen)?;
        Ok(Config {
            name,
            region: self.region.clone().unwrap_or_else(|| "local".into()),
            // "Beside or instead of": without TLS there is always a plain
            // listener; with it, only when asked for.
            listen: match (self.listen, &tls) {
                (Some(l), _) => Some(l),
                (None, Some(_)) => None,
                (None, None) => Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
            },
            admin_listen: self.admin_listen,
            upstreams,
            upstream_ids,
            upstream_tls,
            upstream_trust: std::sync::Arc::new(upstream_trust),
            workers: self.workers.filter(|&w| w > 0),
            site_host,
            accept_hosts,
            trusted_forwarders: self.trusted_forwarders.clone().unwrap_or_default(),
            cache_size,
            max_object_size,
            fill_budget,
            pass_window,
            zero_copy_min_size,
            zero_copy_max_bodies: c.zero_copy_max_bodies.unwrap_or(8192),
            zero_copy_large_pages: c.zero_copy_large_pages.unwrap_or(true),
            max_variants,
            policy,
            key: KeyOptions {
                sort_query: c.sort_query.unwrap_or(false),
                drop_params: c.drop_query_params.clone().unwrap_or_default(),
            },
            stale_if_error_grace: c
                .stale_if_error_grace
                .map_or(DEFAULT_STALE_IF_ERROR_GRACE, HumanDuration::get),
            collapse_wait: c
                .collapse_wait
                .map_or(Duration::from_secs(30), HumanDuration::get),
            connect_timeout: self
                .timeouts
                .connect
                .map_or(Duration::from_secs(2), HumanDuration::get),
            response_timeout: self
                .timeouts
                .response
                .map_or(Duration::from_secs(30), HumanDuration::get),
            client_body_timeout,
            pool_idle_timeout: self
                .timeouts
                .pool_idle
                .map_or(Duration::from_secs(4), HumanDuration::get),
            client_header_timeout: nonzero(
                "timeouts.client-header",
                self.timeouts.client_header,
                Duration::from_secs(10),
            )?,
            client_idle_timeout: nonzero(
                "timeouts.client-idle",
                self.timeouts.client_idle,
                Duration::from_secs(60),
            )?,
            fill_timeout: nonzero(
                "timeouts.fill",
                self.timeouts.fill,
                Duration::from_secs(120),
            )?,
            health_path,
            health_interval: self
                .health
                .interval
                .map_or(Duration::from_secs(2), HumanDuration::get),
            health_rise: self.health.rise.unwrap_or(1).max(1),
            health_fall: self.health.fall.unwrap_or(1).max(1),
            cool_off: self
                .health
                .cool_off
                .map_or(Duration::from_secs(10), HumanDuration::get),
            eject_on_5xx: self.health.eject_on_5xx.unwrap_or(false),
            admin_tokens: std::sync::Arc::new(admin_tokens),
            admin_hosts,
            purge_log: self.purge.log.clone(),
            purge_max_lag,
            purge_token,
            tier: meridian_purge::Tier::Edge,
            compression: self.compression.validate(source)?,
            http2: self.http2.validate(source)?,
            limits: self.limits.validate(source)?,
            tls,
        })
    }
}

impl TlsSection {
    /// The validated section, `None` without a TLS listener. Certificate
    /// paths are taken relative to `base` (the config file's directory) and
    /// every pair is loaded, so a missing file, bad PEM or a key that is
    /// not the certificate's fails at start. `plain` is the plain listener
    /// the file asks for.
    pub fn validate(
        &self,
        source: &str,
        base: &Path,
        plain: Option<SocketAddr>,
    ) -> Result<Option<crate::tls::TlsSettings>, ConfigError> {
        let bad = |key: &str, reason: String| ConfigError::invalid(source, key, reason);
        let Some(listen) = self.listen else {
            if !self.cert.is_empty() || self.redirect_plain == Some(true) {
                return Err(bad(
                    "tls.listen",
                    "certificates or redirect-plain are set but there is no TLS listener \
                     (tls.listen = \"ADDR:443\", --tls-listen)"
                        .into(),
                ));
            }
            return Ok(None);
        };
        if self.cert.is_empty() {
            return Err(bad(
                "tls.cert",
                "a TLS listener needs at least one [[tls.cert]] (cert and key, PEM; \
                 --tls-cert/--tls-key)"
                    .into(),
            ));
        }
        // Port 0 asks the OS for a free port: two such binds never clash.
        if plain == Some(listen) && listen.port() != 0 {
            return Err(bad(
                "tls.listen",
                format!("{listen} is also the plain `listen`"),
            ));
        }
        let redirect_plain = self.redirect_plain.unwrap_or(false);
        if redirect_plain && plain.is_none() {
            return Err(bad(
                "tls.redirect-plain",
                "there is no plain `listen` to redirect from".into(),
            ));
        }
        let handshake_timeout = self
            .handshake_timeout
            .map_or(crate::tls::DEFAULT_HANDSHAKE_TIMEOUT, HumanDuration::get);
        if handshake_timeout.is_zero() {
            return Err(bad(
                "tls.handshake-timeout",
                "must be more than 0s (no handshake could finish)".into(),
            ));
        }
        let max_handshakes = self
            .max_handshakes
            .unwrap_or(crate::tls::DEFAULT_MAX_HANDSHAKES);
        if max_handshakes == 0 {
            return Err(bad(
                "tls.max-handshakes",
                "must be more than 0 (no connection could be accepted)".into(),
            ));
        }
        let mut certs = Vec::with_capacity(self.cert.len());
        for (i, pair) in self.cert.iter().enumerate() {
            let files = crate::tls::CertFiles {
                cert: base.join(&pair.cert),
                key: base.join(&pair.key),
            };
            crate::tls::load_pair(&files)
                .map_err(|e| bad(&format!("tls.cert[{i}].{}", e.field()), e.to_string()))?;
            certs.push(files);
        }
        Ok(Some(crate::tls::TlsSettings {
            listen,
            certs,
            handshake_timeout,
            redirect_plain,
            session_cache: self
                .session_cache
                .unwrap_or(crate::tls::DEFAULT_SESSION_CACHE),
            session_tickets: self.session_tickets.unwrap_or(true),
            max_handshakes,
        }))
    }
}

impl Config {
    /// A config for tests and embedding: defaults plus one upstream.
    pub fn for_upstream(upstream: &str) -> Result<Config, ConfigError> {
        FileConfig {
            upstream: vec![upstream.to_owned()],
            ..Default::default()
        }
        .validate("defaults")
    }
}

/// One `upstream` entry: `URL[;id=NAME]`, and for `https://` the TLS
/// options `;ca=PATH`, `;sni=NAME`, `;insecure-skip-verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSpec {
    pub uri: Uri,
    /// `;id=NAME`: the upstream's identity on the hash ring (so edges
    /// reaching a shield through different addresses agree on which keys
    /// it owns).
    pub id: Option<String>,
    /// `Some` exactly for an `https://` upstream.
    pub tls: Option<TlsOptions>,
}

/// Parses one `upstream` entry (see [`UpstreamSpec`]).
pub fn parse_upstream_spec(s: &str) -> Result<UpstreamSpec, String> {
    let (url, options) = s.split_once(';').unwrap_or((s, ""));
    let uri = parse_upstream(url.trim())?;
    let mut id = None;
    let mut tls = (uri.scheme_str() == Some("https")).then(TlsOptions::default);
    for opt in options.split(';').map(str::trim).filter(|o| !o.is_empty()) {
        let (key, value) = match opt.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v)),
            None => (opt, None),
        };
        match key {
            "id" => {
                let v = value.unwrap_or_default().trim();
                // The balancer checks the characters and length.
                meridian_balance::BackendSpec::new(&uri.to_string(), 1)
                    .and_then(|spec| spec.with_id(v))
                    .map_err(|e| format!("`{s}`: {e}"))?;
                id = Some(v.to_owned());
            }
            k if TlsOptions::is_option(k) => {
                let Some(tls) = tls.as_mut() else {
                    return Err(format!("`{s}`: `{k}` applies only to an https:// upstream"));
                };
                // The balancer's own parser, so both tiers read one syntax.
                tls.apply(s, k, value).map_err(|e| e.to_string())?;
            }
            _ => {
                return Err(format!(
                    "`{s}`: unknown option `{opt}` (options: `id=NAME`; for https:// \
                     also `ca=PATH`, `sni=NAME`, `insecure-skip-verify`)"
                ));
            }
        }
    }
    Ok(UpstreamSpec { uri, id, tls })
}

/// `URL[;id=NAME]`: the URL as [`parse_upstream`] takes it, and an
/// optional identity on the hash ring. TLS options are accepted and
/// checked but not returned: [`parse_upstream_spec`] has them.
pub fn parse_upstream_with_id(s: &str) -> Result<(Uri, Option<String>), String> {
    parse_upstream_spec(s).map(|u| (u.uri, u.id))
}

/// An upstream must be `http://host:port[/prefix]` or
/// `https://host:port[/prefix]`: no query, no other scheme.
pub fn parse_upstream(s: &str) -> Result<Uri, String> {
    let uri: Uri = s.parse().map_err(|e| format!("`{s}` is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => {
            return Err(format!(
                "`{s}`: scheme `{other}` is not supported (use http:// or https://)"
            ));
        }
        None => return Err(format!("`{s}` needs a scheme, like http://{s}")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("`{s}` has no host"));
    }
    if uri.query().is_some() {
        return Err(format!("`{s}`: an upstream URL cannot have a query"));
    }
    Ok(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upstream_can_name_its_identity_on_the_ring() {
        let mut f = FileConfig {
            upstream: vec![
                "http://127.0.0.1:7001;id=shield-1".into(),
                "http://127.0.0.1:7002".into(),
            ],
            ..Default::default()
        };
        let c = f.validate("t.toml").expect("valid");
        assert_eq!(c.upstream_ids, vec![Some("shield-1".to_string()), None]);
        f.upstream = vec!["http://127.0.0.1:7001;weight=2".into()];
        let e = f.validate("t.toml").expect_err("only id").to_string();
        assert!(
            e.contains("upstream") && e.contains("unknown option `weight=2`"),
            "{e}"
        );
        f.upstream = vec!["http://127.0.0.1:7001;id=a b".into()];
        assert!(f.validate("t.toml").is_err());
    }

    #[test]
    fn upstream_tls_options_parse() {
        let u = parse_upstream_spec("https://o.example:8443/p;sni=cdn.example;id=o-1;ca=ca.pem")
            .expect("valid");
        assert_eq!(u.uri.scheme_str(), Some("https"));
        assert_eq!(u.id.as_deref(), Some("o-1"));
        let tls = u.tls.expect("https");
        assert_eq!(tls.sni.as_deref(), Some("cdn.example"));
        assert_eq!(tls.ca.as_deref(), Some(Path::new("ca.pem")));
        assert!(!tls.insecure_skip_verify);
        let u = parse_upstream_spec("https://127.0.0.1:8443; insecure-skip-verify").expect("valid");
        assert!(
            u.tls
                .is_some_and(|t| t.insecure_skip_verify && t.ca.is_none())
        );
        assert_eq!(
            parse_upstream_spec("http://127.0.0.1:80")
                .expect("valid")
                .tls,
            None
        );
        let refused = [
            ("http://a:1;ca=ca.pem", "only to an https:// upstream"),
            (
                "http://a:1;insecure-skip-verify",
                "only to an https:// upstream",
            ),
            ("https://a:1;ca", "`ca` needs a value"),
            ("https://a:1;sni=x/y", "must be a host name"),
            ("https://a:1;insecure-skip-verify=true", "takes no value"),
            ("https://a:1;verify=none", "unknown option `verify=none`"),
        ];
        for (s, why) in refused {
            let e = parse_upstream_spec(s).expect_err(s);
            assert!(e.contains(why), "{s}: {e}");
        }
    }

    #[test]
    fn an_unverified_upstream_is_listed_for_the_start_warning() {
        let c = Config::for_upstream("https://127.0.0.1:8443;insecure-skip-verify").expect("valid");
        assert_eq!(c.upstream_trust.unverified(), ["https://127.0.0.1:8443"]);
        assert!(
            c.upstream_tls[0]
                .as_ref()
                .is_some_and(|t| t.insecure_skip_verify)
        );
    }

    #[test]
    fn defaults_fill_in() {
        let c = Config::for_upstream("http://127.0.0.1:9000").expect("valid");
        assert_eq!(c.cache_size, 256 << 20);
        assert_eq!(c.max_object_size, 64 << 20);
        assert_eq!(c.connect_timeout, Duration::from_secs(2));
        assert_eq!(c.client_body_timeout, Duration::from_secs(10));
        assert_eq!(c.pool_idle_timeout, Duration::from_secs(4));
        assert!(!c.eject_on_5xx);
        assert_eq!(c.zero_copy_min_size, 32 << 10);
        assert_eq!(c.zero_copy_max_bodies, 8192);
        assert!(c.zero_copy_large_pages);
    }

    #[test]
    fn zero_copy_min_size_may_be_as_small_as_what_sendfile_is_used_for() {
        let file = FileConfig {
            upstream: vec!["http://a:1".into()],
            cache: CacheSection {
                zero_copy_min_size: Some(ByteSize(16 * 1024)),
                zero_copy_max_bodies: Some(0),
                ..Default::default()
            },
            ..Default::default()
        };
        let c = file.validate("t.toml").expect("16KiB is the boundary");
        assert_eq!(c.zero_copy_min_size, 16 << 10);
        assert_eq!(c.zero_copy_max_bodies, 0);
    }

    #[test]
    fn bad_values_name_the_key() {
        let cases = [
            (FileConfig::default(), "upstream"),
            (
                FileConfig {
                    upstream: vec!["ftp://x".into()],
                    ..Default::default()
                },
                "upstream",
            ),
            (
                FileConfig {
                    upstream: vec!["https://x:443;ca=/no/such/ca.pem".into()],
                    ..Default::default()
                },
                "upstream",
            ),
            (
                FileConfig {
                    upstream: vec!["https://x:443".into()],
                    upstream_ca: Some("/no/such/ca.pem".into()),
                    ..Default::default()
                },
                "upstream-ca",
            ),
            (
                FileConfig {
                    upstream: vec!["127.0.0.1:9000".into()],
                    ..Default::default()
                },
                "upstream",
            ),
            (
                FileConfig {
                    upstream: vec!["http://a:1".into()],
                    cache: CacheSection {
                        size: Some(ByteSize(10)),
                        max_object_size: Some(ByteSize(20)),
                        ..Default::default()
                    },
                    ..Default::default()
                },
                "cache.max-object-size",
            ),
            (
                FileConfig {
                    upstream: vec!["http://a:1".into()],
                    cache: CacheSection {
                        heuristic_fraction: Some(2.0),
                        ..Default::default()
                    },
                    ..Default::default()
                },
                "cache.heuristic-fraction",
            ),
            (
                FileConfig {
                    upstream: vec!["http://a:1".into()],
                    site_host: Some("shop.example/x".into()),
                    ..Default::default()
                },
                "site-host",
            ),
            (
                FileConfig {
                    upstream: vec!["http://a:1".into()],
                    accept_hosts: Some(vec!["ok.example".into(), "bad host".into()]),
                    ..Default::default()
                },
                "accept-hosts",
            ),
            (
                FileConfig {
                    upstream: vec!["http://a:1".into()],
                    accept_hosts: Some(Vec::new()),
                    ..Default::default()
                },
                "accept-hosts",
            ),
            (
                FileConfig {
                    upstream: vec!["http://a:1".into()],
                    timeouts: TimeoutSection {
                        client_body: Some(HumanDuration(Duration::ZERO)),
                        ..Default::default()
                    },
                    ..Default::default()
                },
                "timeouts.client-body",
            ),
            (
                FileConfig {
                    upstream: vec!["http://a:1".into()],
                    cache: CacheSection {
                        pass_window: Some(ByteSize(0)),
                        ..Default::default()
                    },
                    ..Default::default()
                },
                "cache.pass-window",
            ),
            (
                FileConfig {
                    upstream: vec!["http://a:1".into()],
                    cache: CacheSection {
                        zero_copy_min_size: Some(ByteSize(16 * 1024 - 1)),
                        ..Default::default()
                    },
                    ..Default::default()
                },
                "cache.zero-copy-min-size",
            ),
            (
                FileConfig {
                    upstream: vec!["http://a:1".into()],
                    cache: CacheSection {
                        fill_budget: Some(ByteSize(0)),
                        ..Default::default()
                    },
                    ..Default::default()
                },
                "cache.fill-budget",
            ),
        ];
        for (fc, key) in cases {
            let err = fc.validate("edge.toml").expect_err(key).to_string();
            assert!(err.contains("edge.toml") && err.contains(key), "{err}");
        }
    }

    #[test]
    fn site_host_is_normalised_and_forwarders_parse() {
        let fc: FileConfig = meridian_common::parse_toml(
            Path::new("edge.toml"),
            "upstream = ['http://a:1']\nsite-host = 'Shop.Example:80'\n\
             accept-hosts = ['www.shop.example', '*.cdn.example']\n\
             trusted-forwarders = ['10.0.0.0/8', '::1/128']",
        )
        .expect("parses");
        let c = fc.validate("edge.toml").expect("valid");
        assert_eq!(c.site_host.as_deref(), Some("shop.example"));
        assert_eq!(c.accept_hosts.map(|l| l.len()), Some(2));
        assert_eq!(c.trusted_forwarders.len(), 2);
    }

    #[test]
    fn example_config_files_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/edge.toml");
        let fc = FileConfig::load(&dir).expect("config/edge.toml loads");
        fc.validate("config/edge.toml")
            .expect("config/edge.toml is valid");
    }
}
