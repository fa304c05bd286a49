//! The cluster file: `config/cluster.toml` by default. One file describes
//! the whole CDN, and every service reads its part of it: the director its
//! `[[edge]]`, `[[shield]]`, `[director]`, `[[coverage-zone]]` and
//! `[purge-log]` tables, `cluster up` those plus its own `[cluster]`,
//! `[origin]` and `[latency]`. Here, unlike in the director, an unknown
//! top-level table is an error, because `cluster up` knows every table the
//! file may hold.
//!
//! [`ClusterConfig::parse`] checks what a running cluster needs beyond the
//! director's checks: every node has a place (region and coordinates), every
//! address is an `IP:PORT` that no other node uses, every shield an edge
//! names exists, every latency override names a region or a node. Each
//! error names the file, the key and the reason.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use meridian_common::{ByteSize, ConfigError, HumanDuration};
use serde::Deserialize;

use crate::latency::{Model, great_circle_km};

/// The file `cluster up` reads when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "config/cluster.toml";
/// `cluster.site-host` default.
pub const DEFAULT_SITE_HOST: &str = "site.meridian.test";
/// `cluster.dashboard` default.
pub const DEFAULT_DASHBOARD: &str = "127.0.0.1:8080";
/// `origin.listen` default.
pub const DEFAULT_ORIGIN_LISTEN: &str = "127.0.0.1:8600";
/// `cluster.cache-size` default (each edge and shield).
pub const DEFAULT_CACHE_SIZE: u64 = 128 << 20;
/// `cluster.upstream-health-interval` default.
pub const DEFAULT_UPSTREAM_HEALTH: Duration = Duration::from_secs(1);
/// Longest round trip a `[[latency.pair]]` may set.
pub const MAX_RTT: Duration = Duration::from_secs(10);
/// The names `cluster up` gives the origin and the director.
pub const ORIGIN_NAME: &str = "origin";
pub const DIRECTOR_NAME: &str = "director";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct File {
    #[serde(default)]
    cluster: ClusterSection,
    origin: Option<OriginSection>,
    #[serde(default)]
    latency: LatencySection,
    // Checked by the director's parser (`meridian_geo_director::Config`).
    #[serde(default, rename = "edge")]
    _edge: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "shield")]
    _shield: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "director")]
    _director: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "coverage-zone")]
    _coverage_zone: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "purge-log")]
    _purge_log: Option<serde::de::IgnoredAny>,
}

/// `[cluster]`: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ClusterSection {
    site_host: Option<String>,
    dashboard: Option<SocketAddr>,
    state_dir: Option<PathBuf>,
    cache_size: Option<ByteSize>,
    seed: Option<u64>,
    upstream_health_interval: Option<HumanDuration>,
    /// Edges also listen on HTTPS, with certificates from a CA made at start.
    https: Option<bool>,
    /// Every shield and edge runs as its own child process.
    processes: Option<bool>,
}

/// `[origin]`: where the sample origin runs and where it is on the map.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct OriginSection {
    listen: Option<SocketAddr>,
    region: String,
    latitude: f64,
    longitude: f64,
}

/// `[latency]`: the distance model and per-pair overrides.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct LatencySection {
    base: Option<HumanDuration>,
    /// Milliseconds of round trip per 100 km.
    per_100km: Option<f64>,
    local: Option<HumanDuration>,
    #[serde(default)]
    pair: Vec<PairSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct PairSection {
    between: [String; 2],
    rtt: HumanDuration,
}

/// Where a node is: its region and coordinates.
#[derive(Debug, Clone, PartialEq)]
pub struct Place {
    pub name: String,
    pub region: String,
    pub latitude: f64,
    pub longitude: f64,
}

/// The sample origin.
#[derive(Debug, Clone)]
pub struct OriginSpec {
    pub place: Place,
    pub listen: SocketAddr,
}

/// One shield.
#[derive(Debug, Clone)]
pub struct ShieldSpec {
    pub place: Place,
    /// Its proxy listener (`url`).
    pub listen: SocketAddr,
    pub admin: SocketAddr,
}

/// One edge.
#[derive(Debug, Clone)]
pub struct EdgeSpec {
    pub place: Place,
    /// Index into [`ClusterConfig::fronts`]: the front at its `url`.
    pub front: usize,
    /// Its own proxy listener (`listen`); `None`: a loopback port from the
    /// OS, reached through its front.
    pub listen: Option<SocketAddr>,
    pub admin: SocketAddr,
    /// Indices into [`ClusterConfig::shields`], in order of preference.
    pub shields: Vec<usize>,
}

/// The listener at an edge's `url`: one per distinct `url`, balancing over
/// the edges that share it.
#[derive(Debug, Clone)]
pub struct FrontSpec {
    pub addr: SocketAddr,
    /// The config key it came from, for bind errors.
    pub key: String,
    pub edges: Vec<usize>,
}

/// A validated cluster file.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The file name, for messages.
    pub source: String,
    /// The director's view of the same file (edges, shields, purge log).
    pub director: meridian_geo_director::Config,
    pub site_host: String,
    pub dashboard: SocketAddr,
    pub state_dir: PathBuf,
    pub cache_size: u64,
    /// Seed of the generated sample site.
    pub seed: u64,
    /// How often edges check their shields (and fail over).
    pub upstream_health_interval: Duration,
    /// Every edge also listens on HTTPS (`cluster.https`, `--https`), with
    /// a certificate for `localhost`, `127.0.0.1` and its name signed by a
    /// CA made at start in the state directory.
    pub https: bool,
    /// Every shield and edge runs as its own `meridian shield|edge
    /// --config FILE` child process behind the cluster's links
    /// (`cluster.processes`, `--processes`), so `stop` is a real SIGKILL and
    /// `start` a respawn; otherwise every node runs in this process.
    pub processes: bool,
    /// The `meridian` binary those children run (default: this process's
    /// own executable; a test names the built binary). Not a file key.
    pub node_binary: Option<PathBuf>,
    pub origin: OriginSpec,
    pub shields: Vec<ShieldSpec>,
    pub edges: Vec<EdgeSpec>,
    pub fronts: Vec<FrontSpec>,
    pub model: Model,
    /// `[[latency.pair]]`: (a, b, rtt), names of regions or nodes.
    pub overrides: Vec<(String, String, Duration)>,
}

impl ClusterConfig {
    /// Reads and checks a cluster file.
    pub fn load(path: &Path) -> Result<ClusterConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        ClusterConfig::parse(&path.display().to_string(), &text)
    }

    /// Checks config text; `source` names it in errors.
    pub fn parse(source: &str, text: &str) -> Result<ClusterConfig, ConfigError> {
        let bad = |key: &str, reason: String| ConfigError::invalid(source, key, reason);
        let file: File = meridian_common::parse_toml(Path::new(source), text)?;
        let director = meridian_geo_director::Config::parse(source, text)?;
        let c = &file.cluster;
        let site_host = c
            .site_host
            .clone()
            .unwrap_or_else(|| DEFAULT_SITE_HOST.into());
        if site_host.is_empty()
            || !site_host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'))
        {
            return Err(bad(
                "cluster.site-host",
                format!("`{site_host}` is not a host name"),
            ));
        }
        let dashboard = match c.dashboard {
            Some(a) => a,
            None => parse_addr(DEFAULT_DASHBOARD).map_err(|r| bad("cluster.dashboard", r))?,
        };
        let state_dir = c.state_dir.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!("meridian-cluster-{}", dashboard.port()))
        });
        let cache_size = c.cache_size.map_or(DEFAULT_CACHE_SIZE, ByteSize::bytes);
        if cache_size < 1 << 20 {
            return Err(bad("cluster.cache-size", "must be at least 1MiB".into()));
        }
        let upstream_health_interval = c
            .upstream_health_interval
            .map_or(DEFAULT_UPSTREAM_HEALTH, HumanDuration::get);
        if upstream_health_interval.is_zero() {
            return Err(bad(
                "cluster.upstream-health-interval",
                "must be more than 0 (edges fail over to the other shield on it)".into(),
            ));
        }

        let Some(o) = &file.origin else {
            return Err(bad(
                "origin",
                "no [origin] table: cluster up needs where the origin is \
                 (region, latitude, longitude)"
                    .into(),
            ));
        };
        check_coordinates(source, "origin", o.latitude, o.longitude)?;
        let origin = OriginSpec {
            place: Place {
                name: ORIGIN_NAME.into(),
                region: o.region.clone(),
                latitude: o.latitude,
                longitude: o.longitude,
            },
            listen: match o.listen {
                Some(a) => a,
                None => parse_addr(DEFAULT_ORIGIN_LISTEN).map_err(|r| bad("origin.listen", r))?,
            },
        };

        if director.shields.is_empty() {
            return Err(bad(
                "shield",
                "no [[shield]] tables: cluster up needs at least one shield".into(),
            ));
        }
        let mut shields = Vec::new();
        for (i, s) in director.shields.iter().enumerate() {
            let key = |k: &str| format!("shield[{i}].{k}");
            let need = |k: &str| {
                bad(
                    &key(k),
                    "cluster up needs where each shield is (region, latitude, longitude)".into(),
                )
            };
            let region = s.region.clone().ok_or_else(|| need("region"))?;
            let latitude = s.latitude.ok_or_else(|| need("latitude"))?;
            let longitude = s.longitude.ok_or_else(|| need("longitude"))?;
            check_coordinates(source, &format!("shield[{i}]"), latitude, longitude)?;
            shields.push(ShieldSpec {
                place: Place {
                    name: s.name.clone(),
                    region,
                    latitude,
                    longitude,
                },
                listen: url_addr(&s.url).map_err(|r| bad(&key("url"), r))?,
                admin: url_addr(&s.admin).map_err(|r| bad(&key("admin"), r))?,
            });
        }

        let mut fronts: Vec<FrontSpec> = Vec::new();
        let mut front_of_url: HashMap<&str, usize> = HashMap::new();
        let mut edges = Vec::new();
        for (i, e) in director.edges.iter().enumerate() {
            let key = |k: &str| format!("edge[{i}].{k}");
            let front = match front_of_url.get(e.url.as_str()) {
                Some(&f) => f,
                None => {
                    fronts.push(FrontSpec {
                        addr: url_addr(&e.url).map_err(|r| bad(&key("url"), r))?,
                        key: key("url"),
                        edges: Vec::new(),
                    });
                    front_of_url.insert(e.url.as_str(), fronts.len() - 1);
                    fronts.len() - 1
                }
            };
            fronts[front].edges.push(i);
            let shield_idx = match &e.shields {
                None => (0..shields.len()).collect(),
                Some(names) if names.is_empty() => {
                    return Err(bad(
                        &key("shields"),
                        "must name at least one shield (or leave it out for all)".into(),
                    ));
                }
                Some(names) => names
                    .iter()
                    .enumerate()
                    .map(|(j, n)| {
                        shields
                            .iter()
                            .position(|s| &s.place.name == n)
                            .ok_or_else(|| {
                                bad(
                                    &format!("edge[{i}].shields[{j}]"),
                                    format!("no [[shield]] is named `{n}`"),
                                )
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            };
            edges.push(EdgeSpec {
                place: Place {
                    name: e.name.clone(),
                    region: e.region.clone(),
                    latitude: e.latitude,
                    longitude: e.longitude,
                },
                front,
                listen: e.listen,
                admin: url_addr(&e.admin).map_err(|r| bad(&key("admin"), r))?,
                shields: shield_idx,
            });
        }

        let Some(director_admin) = director.admin_listen else {
            return Err(bad(
                "director.admin-listen",
                "cluster up serves the purge log and the director's health on it: \
                 set it (for example \"127.0.0.1:9000\")"
                    .into(),
            ));
        };
        if let Some(url) = &director.purge_log.url
            && url_addr(url).ok() != Some(director_admin)
        {
            return Err(bad(
                "purge-log.url",
                format!(
                    "cluster up keeps the purge log on the director: leave it out or set it to \
                     http://{director_admin}"
                ),
            ));
        }
        let director_listen = director
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8000)));

        // Names: the director checked edges and shields among themselves.
        for (i, s) in shields.iter().enumerate() {
            if [ORIGIN_NAME, DIRECTOR_NAME].contains(&s.place.name.as_str()) {
                return Err(bad(
                    &format!("shield[{i}].name"),
                    format!(
                        "`{}` is the name cluster up gives its own node",
                        s.place.name
                    ),
                ));
            }
        }
        for (i, e) in edges.iter().enumerate() {
            if [ORIGIN_NAME, DIRECTOR_NAME].contains(&e.place.name.as_str()) {
                return Err(bad(
                    &format!("edge[{i}].name"),
                    format!(
                        "`{}` is the name cluster up gives its own node",
                        e.place.name
                    ),
                ));
            }
        }

        // Addresses: every listener its own port.
        let mut taken: Vec<(SocketAddr, String)> = vec![
            (dashboard, "cluster.dashboard".into()),
            (origin.listen, "origin.listen".into()),
            (director_listen, "director.listen".into()),
            (director_admin, "director.admin-listen".into()),
        ];
        for (i, s) in shields.iter().enumerate() {
            taken.push((s.listen, format!("shield[{i}].url")));
            taken.push((s.admin, format!("shield[{i}].admin")));
        }
        for f in &fronts {
            taken.push((f.addr, f.key.clone()));
        }
        for (i, e) in edges.iter().enumerate() {
            taken.push((e.admin, format!("edge[{i}].admin")));
            if let Some(l) = e.listen {
                taken.push((l, format!("edge[{i}].listen")));
            }
        }
        for (i, (addr, key)) in taken.iter().enumerate() {
            if addr.port() == 0 {
                continue;
            }
            if let Some((_, first)) = taken[..i].iter().find(|(a, _)| {
                a.port() == addr.port()
                    && (a.ip() == addr.ip()
                        || a.ip().is_unspecified()
                        || addr.ip().is_unspecified())
            }) {
                return Err(bad(
                    key,
                    format!("{addr} is already used by `{first}`: every node needs its own port"),
                ));
            }
        }

        let l = &file.latency;
        let d = Model::default();
        let model = Model {
            base: l.base.map_or(d.base, HumanDuration::get),
            factor: l.per_100km.unwrap_or(d.factor),
            local: l.local.map_or(d.local, HumanDuration::get),
        };
        if !(model.factor.is_finite() && (0.0..=100.0).contains(&model.factor)) {
            return Err(bad(
                "latency.per-100km",
                format!("{} must be between 0 and 100 (ms per 100 km)", model.factor),
            ));
        }
        for (k, v) in [("latency.base", model.base), ("latency.local", model.local)] {
            if v > MAX_RTT {
                return Err(bad(k, format!("must be at most {MAX_RTT:?}")));
            }
        }
        let known = |n: &str| {
            n == origin.place.name
                || n == origin.place.region
                || shields
                    .iter()
                    .any(|s| s.place.name == n || s.place.region == n)
                || edges
                    .iter()
                    .any(|e| e.place.name == n || e.place.region == n)
        };
        let mut overrides = Vec::new();
        for (i, p) in l.pair.iter().enumerate() {
            for (j, n) in p.between.iter().enumerate() {
                if !known(n) {
                    return Err(bad(
                        &format!("latency.pair[{i}].between[{j}]"),
                        format!("`{n}` is neither a region nor a node of this cluster"),
                    ));
                }
            }
            if p.rtt.get() > MAX_RTT {
                return Err(bad(
                    &format!("latency.pair[{i}].rtt"),
                    format!("must be at most {MAX_RTT:?}"),
                ));
            }
            overrides.push((p.between[0].clone(), p.between[1].clone(), p.rtt.get()));
        }

        Ok(ClusterConfig {
            source: source.into(),
            director,
            site_host,
            dashboard,
            state_dir,
            cache_size,
            seed: c.seed.unwrap_or(1),
            upstream_health_interval,
            https: c.https.unwrap_or(false),
            processes: c.processes.unwrap_or(false),
            node_binary: None,
            origin,
            shields,
            edges,
            fronts,
            model,
            overrides,
        })
    }

    /// The director's public listener.
    pub fn director_listen(&self) -> SocketAddr {
        self.director
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8000)))
    }

    /// The director's admin listener (checked to be set).
    pub fn director_admin(&self) -> SocketAddr {
        self.director
            .admin_listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9000)))
    }

    /// Every listener on a loopback port from the OS, as tests want it.
    /// Edges that shared a `url` still share a front.
    pub fn with_ephemeral_ports(mut self) -> ClusterConfig {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        self.dashboard = any;
        self.origin.listen = any;
        self.director.listen = Some(any);
        self.director.admin_listen = Some(any);
        self.director.purge_log.url = None;
        for s in &mut self.shields {
            s.listen = any;
            s.admin = any;
        }
        for f in &mut self.fronts {
            f.addr = any;
        }
        for e in &mut self.edges {
            e.admin = any;
            e.listen = e.listen.map(|_| any);
        }
        self
    }

    /// The simulated round trip between two places: a `[[latency.pair]]`
    /// naming both (by node name first, then region), else the model over
    /// their great-circle distance.
    pub fn rtt(&self, a: &Place, b: &Place) -> Duration {
        let names = |p: &Place| [p.name.clone(), p.region.clone()];
        for x in names(a) {
            for y in names(b) {
                if let Some((_, _, rtt)) = self
                    .overrides
                    .iter()
                    .find(|(p, q, _)| (*p == x && *q == y) || (*p == y && *q == x))
                {
                    return *rtt;
                }
            }
        }
        self.model.rtt(great_circle_km(
            (a.latitude, a.longitude),
            (b.latitude, b.longitude),
        ))
    }
}

fn check_coordinates(source: &str, table: &str, lat: f64, lon: f64) -> Result<(), ConfigError> {
    if !(-90.0..=90.0).contains(&lat) {
        return Err(ConfigError::invalid(
            source,
            format!("{table}.latitude"),
            format!("{lat} is not within -90..90"),
        ));
    }
    if !(-180.0..=180.0).contains(&lon) {
        return Err(ConfigError::invalid(
            source,
            format!("{table}.longitude"),
            format!("{lon} is not within -180..180"),
        ));
    }
    Ok(())
}

fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|_| format!("`{s}` is not an IP:PORT address"))
}

/// `http://IP:PORT` (what cluster up binds) → the address.
fn url_addr(url: &str) -> Result<SocketAddr, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("`{url}`: cluster up binds it, so it must be http://IP:PORT"))?;
    let authority = rest.trim_end_matches('/');
    authority
        .parse()
        .map_err(|_| format!("`{url}`: cluster up binds it, so it must be http://IP:PORT"))
}

#[cfg(test)]
mod tests;
