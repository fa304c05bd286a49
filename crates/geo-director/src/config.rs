//! The director's config in two layers: serde structs that mirror the TOML
//! file (`[[edge]]`, `[director]`, `[[coverage-zone]]`, and for the purge
//! log `[[shield]]` and `[purge-log]`; any other top-level table belongs to
//! other services and is ignored) and the validated
//! [`Config`] the director runs on. Command-line flags override fields of
//! [`Config`] and then [`Config::validate`] runs again.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use meridian_balance::HealthPolicy;
use meridian_common::{ByteSize, ConfigError, HumanDuration};
use serde::Deserialize;

use crate::client::{DEFAULT_MAX_FORWARDED_HOPS, ForwardedHeader};
use crate::purge_log::{PurgeLogFile, PurgeLogSettings, ShieldConfig};

/// The shipped database, relative to the working directory: sub-country
/// regions from DB-IP City Lite, zstd-compressed (see geo-data/README.md).
pub const DEFAULT_GEOIP: &str = "geo-data/dbip-regions.mmdb.zst";

/// The parts of a cluster config file the director reads. No
/// `deny_unknown_fields` here: the same file holds `[[shield]]`, `[origin]`...
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct FileConfig {
    #[serde(default)]
    edge: Vec<EdgeConfig>,
    #[serde(default)]
    director: DirectorFile,
    #[serde(default)]
    coverage_zone: Vec<CoverageZone>,
    #[serde(default)]
    shield: Vec<ShieldConfig>,
    purge_log: Option<PurgeLogFile>,
}

/// One `[[edge]]` table: where clients are sent and where its health is read.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct EdgeConfig {
    pub name: String,
    pub region: String,
    pub url: String,
    pub admin: String,
    pub latitude: f64,
    pub longitude: f64,
    #[serde(default = "default_weight")]
    pub weight: f64,
    /// The edge's own proxy listener, when `url` is not it (several edges
    /// of a region behind one balancer at `url`). The director sends
    /// clients to `url` either way; `meridian cluster up` binds this.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// The `[[shield]]` names this edge fetches through, in order of
    /// preference for `meridian cluster up` (default: every shield).
    #[serde(default)]
    pub shields: Option<Vec<String>>,
}

fn default_weight() -> f64 {
    1.0
}

/// One `[[coverage-zone]]`: networks pinned to an edge or a region.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CoverageZone {
    #[serde(default)]
    pub name: Option<String>,
    pub networks: Vec<IpNet>,
    #[serde(default)]
    pub edge: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
}

/// `on`/`off` (or `true`/`false`) for a flag or a config key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Switch(pub bool);

impl FromStr for Switch {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "on" | "true" | "yes" => Ok(Switch(true)),
            "off" | "false" | "no" => Ok(Switch(false)),
            _ => Err(format!("`{s}` is not on or off")),
        }
    }
}

impl<'de> Deserialize<'de> for Switch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            B(bool),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::B(b) => Ok(Switch(b)),
            Raw::S(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// The `[director]` table; every key is optional (defaults in brackets).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct DirectorFile {
    listen: Option<SocketAddr>,
    admin_listen: Option<SocketAddr>,
    geoip: Option<Paths>,
    geoip_max_size: Option<ByteSize>,
    health_checks: Option<Switch>,
    health_interval: Option<HumanDuration>,
    health_timeout: Option<HumanDuration>,
    health_rise: Option<u32>,
    health_fall: Option<u32>,
    default_region: Option<String>,
    #[serde(default)]
    fallback: Vec<String>,
    #[serde(default)]
    trusted_proxies: Vec<IpNet>,
    forwarded_header: Option<ForwardedHeader>,
    max_forwarded_hops: Option<usize>,
}

/// One path or a list of paths.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Paths {
    One(PathBuf),
    Many(Vec<PathBuf>),
}

/// How edges' `/healthz` are polled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthSettings {
    /// Off: every edge counts as up and nothing is polled.
    pub enabled: bool,
    pub interval: Duration,
    pub timeout: Duration,
    pub policy: HealthPolicy,
}

/// The validated director config.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the config came from (a file name, for error messages).
    pub source: String,
    pub edges: Vec<EdgeConfig>,
    pub coverage_zones: Vec<CoverageZone>,
    pub listen: Option<SocketAddr>,
    pub admin_listen: Option<SocketAddr>,
    /// MaxMind DB files, consulted in order; the first that locates an address wins.
    pub geoip: Vec<PathBuf>,
    /// Bytes one database may take in memory, after decompression (default
    /// [`crate::DEFAULT_GEOIP_MAX_SIZE`], 1 GiB).
    pub geoip_max_size: u64,
    pub health: HealthSettings,
    /// Region for private, reserved and unlocatable addresses.
    pub default_region: String,
    /// Edge names tried in order when every edge is down.
    pub fallback: Vec<String>,
    pub trusted_proxies: Vec<IpNet>,
    /// The header trusted proxies write the client address in (default `X-Forwarded-For`).
    pub forwarded_header: ForwardedHeader,
    /// Forwarding-header entries read at most, from the right (default 32).
    pub max_forwarded_hops: usize,
    /// `[[shield]]` tables: the shields a cluster purge must reach.
    pub shields: Vec<ShieldConfig>,
    /// `[purge-log]`: where the cluster purge log is, and the director's
    /// own log when it keeps one.
    pub purge_log: PurgeLogSettings,
}

impl Config {
    /// Loads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file: FileConfig = meridian_common::load_toml(path)?;
        Config::from_file(path.display().to_string(), file)
    }

    /// Parses and validates config text; `source` names it in errors.
    pub fn parse(source: &str, text: &str) -> Result<Config, ConfigError> {
        let file: FileConfig = meridian_common::parse_toml(Path::new(source), text)?;
        Config::from_file(source.to_string(), file)
    }

    fn from_file(source: String, f: FileConfig) -> Result<Config, ConfigError> {
        let d = f.director;
        let default_region = d
            .default_region
            .or_else(|| f.edge.first().map(|e| e.region.clone()))
            .unwrap_or_default();
        let config = Config {
            source,
            edges: f.edge,
            coverage_zones: f.coverage_zone,
            listen: d.listen,
            admin_listen: d.admin_listen,
            geoip: match d.geoip {
                None => vec![PathBuf::from(DEFAULT_GEOIP)],
                Some(Paths::One(p)) => vec![p],
                Some(Paths::Many(v)) => v,
            },
            geoip_max_size: d
                .geoip_max_size
                .map_or(crate::DEFAULT_GEOIP_MAX_SIZE, ByteSize::bytes),
            health: HealthSettings {
                enabled: d.health_checks.is_none_or(|s| s.0),
                interval: d
                    .health_interval
                    .map_or(Duration::from_secs(2), |h| h.get()),
                timeout: d.health_timeout.map_or(Duration::from_secs(1), |h| h.get()),
                policy: HealthPolicy {
                    rise: d.health_rise.unwrap_or(1),
                    fall: d.health_fall.unwrap_or(1),
                },
            },
            default_region,
            fallback: d.fallback,
            trusted_proxies: d.trusted_proxies,
            forwarded_header: d.forwarded_header.unwrap_or_default(),
            max_forwarded_hops: d.max_forwarded_hops.unwrap_or(DEFAULT_MAX_FORWARDED_HOPS),
            shields: f.shield,
            purge_log: PurgeLogSettings::from_file(f.purge_log),
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: cross-references, ranges and URLs.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad =
            |key: String, reason: String| Err(ConfigError::invalid(&self.source, key, reason));
        if self.edges.is_empty() {
            return bad(
                "edge".into(),
                "no [[edge]] tables: the director needs at least one edge".into(),
            );
        }
        let mut names = HashSet::new();
        for (i, e) in self.edges.iter().enumerate() {
            let key = |k: &str| format!("edge[{i}].{k}");
            if e.name.trim().is_empty() || !names.insert(e.name.as_str()) {
                return bad(
                    key("name"),
                    format!("`{}` is empty or used by another edge", e.name),
                );
            }
            if e.region.trim().is_empty() {
                return bad(key("region"), "must not be empty".into());
            }
            for (k, url) in [("url", &e.url), ("admin", &e.admin)] {
                if let Err(reason) = check_base_url(url) {
                    return bad(key(k), reason);
                }
            }
            if !(-90.0..=90.0).contains(&e.latitude) {
                return bad(
                    key("latitude"),
                    format!("{} is not within -90..90", e.latitude),
                );
            }
            if !(-180.0..=180.0).contains(&e.longitude) {
                return bad(
                    key("longitude"),
                    format!("{} is not within -180..180", e.longitude),
                );
            }
            if !(e.weight.is_finite() && e.weight > 0.0) {
                return bad(
                    key("weight"),
                    format!("{} must be a number above 0", e.weight),
                );
            }
        }
        let has_region = |r: &str| self.edges.iter().any(|e| e.region == r);
        if !has_region(&self.default_region) {
            return bad(
                "director.default-region".into(),
                format!("no edge has region `{}`", self.default_region),
            );
        }
        for (i, name) in self.fallback.iter().enumerate() {
            if !names.contains(name.as_str()) {
                return bad(
                    format!("director.fallback[{i}]"),
                    format!("no edge is named `{name}`"),
                );
            }
        }
        for (i, z) in self.coverage_zones.iter().enumerate() {
            let key = |k: &str| format!("coverage-zone[{i}].{k}");
            match (&z.edge, &z.region) {
                (Some(edge), None) if !names.contains(edge.as_str()) => {
                    return bad(key("edge"), format!("no edge is named `{edge}`"));
                }
                (None, Some(region)) if !has_region(region) => {
                    return bad(key("region"), format!("no edge has region `{region}`"));
                }
                (Some(_), None) | (None, Some(_)) => {}
                _ => return bad(key("edge"), "give exactly one of `edge` or `region`".into()),
            }
            if z.networks.is_empty() {
                return bad(key("networks"), "must list at least one CIDR".into());
            }
        }
        let h = &self.health;
        if h.enabled && (h.interval.is_zero() || h.timeout.is_zero()) {
            return bad(
                "director.health-interval".into(),
                "interval and timeout must be above 0".into(),
            );
        }
        // With fall = 1 this keeps the promise that an edge which stops
        // answering is out within two intervals: the next check starts within
        // one interval and gives up after the timeout.
        if h.enabled && h.timeout > h.interval {
            return bad(
                "director.health-timeout".into(),
                format!(
                    "{:?} is longer than health-interval ({:?})",
                    h.timeout, h.interval
                ),
            );
        }
        if h.policy.rise == 0 || h.policy.fall == 0 {
            return bad(
                "director.health-rise".into(),
                "rise and fall must be at least 1".into(),
            );
        }
        if self.max_forwarded_hops == 0 {
            return bad(
                "director.max-forwarded-hops".into(),
                "must be at least 1 (with no trusted proxies, forwarding headers are ignored anyway)"
                    .into(),
            );
        }
        if self.geoip.is_empty() {
            return bad("director.geoip".into(), "no database file given".into());
        }
        if self.geoip_max_size == 0 {
            return bad(
                "director.geoip-max-size".into(),
                "must be above 0 (the shipped database takes about 40MiB)".into(),
            );
        }
        crate::purge_log::validate(self)
    }
}

/// An absolute http(s) URL without query or fragment: a base to append paths to.
pub(crate) fn check_base_url(url: &str) -> Result<(), String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(format!("`{url}` must start with http:// or https://")),
    }
    if uri.authority().is_none() {
        return Err(format!("`{url}` has no host"));
    }
    if uri.query().is_some() || url.contains('#') {
        return Err(format!("`{url}` must not have a query or fragment"));
    }
    Ok(())
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
