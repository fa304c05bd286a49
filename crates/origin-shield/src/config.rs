//! Shield configuration: the TOML file shape ([`FileConfig`], every key
//! optional with a documented default) and the validated [`ShieldConfig`].
//! Precedence: command-line flags > file > defaults.
//!
//! The `[cache]`, `[timeouts]`, `[health]` and `[http2]` sections are the edge's own
//! types, so a caching rule or timeout is configured the same way on both
//! tiers; only the defaults of `[health]` differ (origins are polled on
//! `/healthz`, not on the Meridian-internal health path).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use ipnet::IpNet;
use meridian_balance::{BackendSpec, Balance};
use meridian_common::{ConfigError, HumanDuration};
use meridian_proxy::compress::CompressionSection;
use meridian_proxy::config::{
    AdminSection, CacheSection, HealthSection, Http2Section, LimitsSection, PurgeSection,
    TimeoutSection, TlsSection,
};
use serde::Deserialize;

/// Proxy listener when neither the file nor `--listen` names one.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8500);
/// Cache name in `Cache-Status` and `Via` when none is configured; differs
/// from the edge's default so the two tiers are told apart out of the box.
pub const DEFAULT_NAME: &str = "meridian-shield";
/// Origins are ordinary web servers: poll the conventional path.
pub const DEFAULT_HEALTH_PATH: &str = "/healthz";
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(2);

/// The file as written by an operator. See `config/shield.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    /// Node name, used in `Cache-Status` and `Via` (default "meridian-shield").
    pub name: Option<String>,
    /// Region label reported by `/healthz` (default "local").
    pub region: Option<String>,
    /// Plain proxy listener, where the edges connect (default
    /// "127.0.0.1:8500", or none when `tls.listen` is set: then it runs
    /// only when given).
    pub listen: Option<SocketAddr>,
    /// Admin listener (`/healthz`, `/stats`) (default none).
    pub admin_listen: Option<SocketAddr>,
    /// Origins, `http://host:port[;weight=N]` (required), or `https://...`
    /// with `;ca=PATH`, `;sni=NAME`, `;insecure-skip-verify`.
    #[serde(default)]
    pub origin: Vec<String>,
    /// PEM file of CA certificates that `https://` origins without their
    /// own `;ca=` are verified against, instead of the system roots
    /// (default none: the system roots). Relative to the config file.
    pub origin_ca: Option<std::path::PathBuf>,
    /// How requests are spread over the origins (default "round-robin").
    pub balance: Option<Balance>,
    /// CIDRs of peers (the edges, a load balancer) whose forwarding fields
    /// are kept and appended to, and whose `X-Forwarded-For` is believed
    /// for `ip-hash` (default []).
    pub trusted_forwarders: Option<Vec<IpNet>>,
    /// The older name of `trusted-forwarders`, still read; the two lists
    /// are joined.
    pub trusted_edges: Option<Vec<IpNet>>,
    /// Serve every request as this site (`host[:port]`), so edges on any
    /// address share one cache identity here (default none).
    pub site_host: Option<String>,
    /// Host names served; any other authority gets 421 (default: all).
    pub accept_hosts: Option<Vec<String>>,
    /// Runtime worker threads; 0 = one per core (default 0).
    pub workers: Option<usize>,
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
    /// Off unless `enabled = true`: a shield's clients are edges, which
    /// encode for their own clients.
    #[serde(default)]
    pub compression: CompressionSection,
    #[serde(default)]
    pub http2: Http2Section,
    #[serde(default)]
    pub limits: LimitsSection,
    /// TLS for edge-to-shield links that cross untrusted networks: the
    /// edge's own `[tls]` section.
    #[serde(default)]
    pub tls: TlsSection,
}

/// The validated shield configuration.
#[derive(Debug, Clone)]
pub struct ShieldConfig {
    /// The caching engine's settings (shared with the edge); its
    /// `upstreams` are the origins' base URLs.
    pub engine: meridian_proxy::Config,
    /// The origins with their weights, in the configured order.
    pub origins: Vec<BackendSpec>,
    pub balance: Balance,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        meridian_common::load_toml(path)
    }

    /// Checks every value and fills in defaults. `source` names the file
    /// (or "command line") in errors.
    pub fn validate(&self, source: &str) -> Result<ShieldConfig, ConfigError> {
        if self.origin.is_empty() {
            return Err(ConfigError::invalid(
                source,
                "origin",
                "at least one origin is required (--origin http://HOST:PORT[;weight=N])",
            ));
        }
        let origins = self
            .origin
            .iter()
            .map(|o| {
                o.parse::<BackendSpec>()
                    .map_err(|e| ConfigError::invalid(source, "origin", e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        for (i, o) in origins.iter().enumerate() {
            // The pool would refuse it too, but only after startup began.
            if origins[..i].iter().any(|p| p.base() == o.base()) {
                return Err(ConfigError::invalid(
                    source,
                    "origin",
                    format!("{} is listed twice (use ;weight=N instead)", o.base()),
                ));
            }
        }
        // The engine is configured through the edge's own validation, so
        // the cache, timeout and health rules are checked in one place.
        // Weights are the pool's business; the engine gets bare base URLs.
        let mut health = self.health.clone();
        health
            .path
            .get_or_insert_with(|| DEFAULT_HEALTH_PATH.into());
        health
            .interval
            .get_or_insert(HumanDuration(DEFAULT_HEALTH_INTERVAL));
        let edge = meridian_proxy::FileConfig {
            name: Some(self.name.clone().unwrap_or_else(|| DEFAULT_NAME.into())),
            region: self.region.clone(),
            // The shield's own default port, unless only TLS is asked for.
            listen: match (self.listen, self.tls.listen) {
                (Some(l), _) => Some(l),
                (None, Some(_)) => None,
                (None, None) => Some(DEFAULT_LISTEN),
            },
            admin_listen: self.admin_listen,
            // With each https origin's TLS options, so the engine builds
            // the same trust settings the pool's specs name.
            upstream: origins.iter().map(BackendSpec::endpoint).collect(),
            upstream_ca: self.origin_ca.clone(),
            workers: self.workers,
            site_host: self.site_host.clone(),
            accept_hosts: self.accept_hosts.clone(),
            trusted_forwarders: self.trusted(),
            cache: self.cache.clone(),
            timeouts: self.timeouts.clone(),
            health,
            admin: self.admin.clone(),
            purge: self.purge.clone(),
            compression: CompressionSection {
                enabled: Some(self.compression.enabled.unwrap_or(false)),
                ..self.compression.clone()
            },
            http2: self.http2.clone(),
            limits: self.limits.clone(),
            tls: self.tls.clone(),
        };
        // The engine names its upstreams `upstream`; here they are `origin`.
        let mut engine = edge.validate(source).map_err(|e| match e {
            ConfigError::Invalid { file, key, reason } => {
                let key = match key.as_str() {
                    "upstream" => "origin".to_owned(),
                    "upstream-ca" => "origin-ca".to_owned(),
                    _ => key,
                };
                ConfigError::Invalid { file, key, reason }
            }
            other => other,
        })?;
        engine.tier = meridian_purge::Tier::Shield;
        Ok(ShieldConfig {
            engine,
            origins,
            balance: self.balance.unwrap_or_default(),
        })
    }

    /// `trusted-forwarders` and `trusted-edges` as one list.
    fn trusted(&self) -> Option<Vec<IpNet>> {
        match (&self.trusted_forwarders, &self.trusted_edges) {
            (None, None) => None,
            (a, b) => Some(a.iter().chain(b).flatten().copied().collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meridian_common::parse_toml;

    fn parse(text: &str) -> Result<ShieldConfig, ConfigError> {
        parse_toml::<FileConfig>(Path::new("shield.toml"), text)?.validate("shield.toml")
    }

    #[test]
    fn defaults_fill_in() {
        let c = parse("origin = ['http://127.0.0.1:9000']").expect("valid");
        assert_eq!(c.engine.listen, Some(DEFAULT_LISTEN));
        assert!(c.engine.tls.is_none());
        assert_eq!(c.engine.name, DEFAULT_NAME);
        assert_eq!(c.engine.health_path, "/healthz");
        assert_eq!(c.engine.health_interval, Duration::from_secs(2));
        assert_eq!(c.balance, Balance::RoundRobin);
        assert!(c.engine.trusted_forwarders.is_empty());
    }

    #[test]
    fn weights_go_to_the_pool_and_bare_urls_to_the_engine() {
        let c = parse(
            "origin = ['http://127.0.0.1:9000', 'http://127.0.0.1:9001;weight=3']\n\
             balance = 'weighted-round-robin'\ntrusted-edges = ['127.0.0.0/8']",
        )
        .expect("valid");
        let weights: Vec<u32> = c.origins.iter().map(BackendSpec::weight).collect();
        assert_eq!(weights, [1, 3]);
        let upstreams: Vec<String> = c.engine.upstreams.iter().map(|u| u.to_string()).collect();
        assert_eq!(
            upstreams,
            ["http://127.0.0.1:9000/", "http://127.0.0.1:9001/"]
        );
        assert_eq!(c.balance, Balance::WeightedRoundRobin);
        assert_eq!(c.engine.trusted_forwarders.len(), 1);
    }

    #[test]
    fn the_http2_section_reaches_the_engine() {
        let c = parse(
            "origin = ['http://127.0.0.1:9000']\n[http2]\nmax-concurrent-streams = 7\n\
             initial-stream-window = '1MiB'",
        )
        .expect("valid");
        assert_eq!(c.engine.http2.max_concurrent_streams, 7);
        assert_eq!(c.engine.http2.initial_stream_window, 1 << 20);
        let e = parse("origin = ['http://127.0.0.1:9000']\n[http2]\nmax-frame-size = 10")
            .expect_err("too small")
            .to_string();
        assert!(
            e.contains("shield.toml") && e.contains("http2.max-frame-size"),
            "{e}"
        );
    }

    #[test]
    fn trusted_edges_and_trusted_forwarders_are_one_list() {
        let c = parse(
            "origin = ['http://127.0.0.1:9000']\ntrusted-edges = ['10.0.0.0/8']\n\
             trusted-forwarders = ['192.168.0.0/16']\nsite-host = 'Shop.Example'",
        )
        .expect("valid");
        assert_eq!(c.engine.trusted_forwarders.len(), 2);
        assert_eq!(c.engine.site_host.as_deref(), Some("shop.example"));
    }

    #[test]
    fn bad_values_name_file_and_key() {
        let cases = [
            ("", "origin"),
            ("origin = ['ftp://o:1']", "origin"),
            ("origin = ['https://o:1;ca=/no/such/ca.pem']", "origin"),
            (
                "origin = ['https://o:1']\norigin-ca = '/no/such/ca.pem'",
                "origin-ca",
            ),
            ("origin = ['http://o:1;weight=0']", "origin"),
            ("origin = ['http://o:1', 'http://o:1/']", "origin"),
            ("origin = ['http://o:1']\nbalance = 'fastest'", "balance"),
            (
                "origin = ['http://o:1']\ntrusted-edges = ['x']",
                "trusted-edges",
            ),
            (
                "origin = ['http://o:1']\ntrusted-forwarders = ['x']",
                "trusted-forwarders",
            ),
            ("origin = ['http://o:1']\nsite-host = 'a b'", "site-host"),
            ("origin = ['http://o:1']\nbogus = 1", "bogus"),
            (
                "origin = ['http://o:1']\n[health]\npath = 'healthz'",
                "health.path",
            ),
            (
                "origin = ['http://o:1']\n[cache]\nheuristic-fraction = 2.0",
                "cache.heuristic-fraction",
            ),
        ];
        for (text, key) in cases {
            let err = parse(text).expect_err(text).to_string();
            assert!(
                err.contains("shield.toml") && err.contains(key),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn example_config_file_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/shield.toml");
        let fc = FileConfig::load(&path).expect("config/shield.toml loads");
        let c = fc
            .validate("config/shield.toml")
            .expect("config/shield.toml is valid");
        assert_eq!(c.origins.len(), 2);
    }
}
