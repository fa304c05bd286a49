//! The routing decision: address → location (coverage zone, database or
//! default region) → nearest healthy edge.
//!
//! Distance is the great-circle angle between unit vectors, precomputed for
//! every edge, so a decision costs one dot product per edge (plus one `acos`
//! per edge when weights differ). A weight divides the distance: an edge of
//! weight 2 draws clients from twice as far as an edge of weight 1.
//!
//! Ranking among healthy edges, all deterministic:
//! 1. edges the location prefers (the coverage zone's edge or region, or the
//!    default region) before all others;
//! 2. smaller weighted distance;
//! 3. higher weight;
//! 4. name (edges are kept sorted by name, so the lower index).
//!
//! If every edge is down, the first edge of `[director] fallback` takes the
//! request; without a fallback list the answer is 503.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use ipnet::IpNet;
use meridian_balance::Health;

use crate::Error;
use crate::client::{Forwarding, is_special};
use crate::config::{Config, HealthSettings};
use crate::lookup::{Geo, GeoLookup, MaxMindFiles};
use crate::zones::Zones;

/// Mean Earth radius (IUGG), for reporting distances in km.
pub const EARTH_RADIUS_KM: f64 = 6371.0088;

/// One edge as the director sees it.
#[derive(Debug)]
pub struct Edge {
    pub name: String,
    pub region: String,
    /// Base URL clients are sent to, without a trailing slash.
    pub url: String,
    /// The edge's admin `/healthz`.
    pub healthz: String,
    pub latitude: f64,
    pub longitude: f64,
    pub weight: f64,
    pub health: Arc<Health>,
    xyz: [f64; 3],
}

/// What a zone or the default sends clients to.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Edge(usize),
    Region(String),
}

/// How the address was placed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Placement {
    /// A coverage zone matched: (its index, the matching network).
    Zone(usize, IpNet),
    Database(Geo),
    /// Private or reserved address.
    DefaultSpecial,
    /// Not in the database, or no usable location.
    DefaultUnlocated,
}

/// Why the chosen edge won.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Healthy and nearest (no preference applied).
    Nearest,
    /// A healthy edge of the zone's or default's target.
    Preferred,
    /// The target's edges are all down: the nearest healthy edge to it.
    PreferredDown,
    /// Every edge is down: the first edge of the fallback order.
    Fallback,
    /// Every edge is down and there is no fallback order.
    AllDown,
}

/// A routing decision; `edge` is an index into [`Director::edges`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub ip: IpAddr,
    pub placement: Placement,
    /// The point distances were measured from (latitude, longitude).
    pub from: (f64, f64),
    pub edge: Option<usize>,
    pub reason: Reason,
}

pub struct Director {
    pub(crate) config: Config,
    edges: Vec<Edge>,
    zones: Zones,
    zone_targets: Vec<Target>,
    default_target: Target,
    fallback: Vec<usize>,
    uniform_weights: bool,
    geo: ArcSwap<Box<dyn GeoLookup>>,
}

fn unit_vector(lat: f64, lon: f64) -> [f64; 3] {
    let (lat, lon) = (lat.to_radians(), lon.to_radians());
    [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()]
}

fn dot(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Great-circle angle in radians; `clamp` absorbs rounding just past ±1.
fn angle(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    dot(a, b).clamp(-1.0, 1.0).acos()
}

impl Director {
    /// Opens the configured database files and builds the director.
    pub fn new(config: Config) -> Result<Director, Error> {
        config.validate()?;
        let db = MaxMindFiles::open_limited(&config.geoip, config.geoip_max_size)?;
        Director::with_lookup(config, Box::new(db))
    }

    /// Builds the director around any [`GeoLookup`] (tests, benchmarks).
    pub fn with_lookup(config: Config, lookup: Box<dyn GeoLookup>) -> Result<Director, Error> {
        config.validate()?;
        let mut edges: Vec<Edge> = config
            .edges
            .iter()
            .map(|e| Edge {
                name: e.name.clone(),
                region: e.region.clone(),
                url: e.url.trim_end_matches('/').to_string(),
                healthz: format!("{}/healthz", e.admin.trim_end_matches('/')),
                latitude: e.latitude,
                longitude: e.longitude,
                weight: e.weight,
                health: Arc::new(Health::new(config.health.policy)),
                xyz: unit_vector(e.latitude, e.longitude),
            })
            .collect();
        edges.sort_by(|a, b| a.name.cmp(&b.name));
        let index = |name: &str| edges.iter().position(|e| e.name == name);
        // `validate` checked every reference, so these lookups all succeed;
        // a miss would only drop a zone or fallback entry, never panic.
        let zone_targets = config
            .coverage_zones
            .iter()
            .map(|z| match (&z.edge, &z.region) {
                (Some(name), _) => {
                    index(name).map_or_else(|| Target::Region(name.clone()), Target::Edge)
                }
                (None, region) => Target::Region(region.clone().unwrap_or_default()),
            })
            .collect();
        let zones = Zones::new(
            config
                .coverage_zones
                .iter()
                .enumerate()
                .flat_map(|(i, z)| z.networks.iter().map(move |n| (*n, i))),
        );
        let fallback = config.fallback.iter().filter_map(|n| index(n)).collect();
        let uniform_weights = edges.windows(2).all(|w| w[0].weight == w[1].weight);
        Ok(Director {
            default_target: Target::Region(config.default_region.clone()),
            config,
            edges,
            zones,
            zone_targets,
            fallback,
            uniform_weights,
            geo: ArcSwap::from_pointee(lookup),
        })
    }

    pub fn edges(&self) -> &[Edge] {
        &self.edges
    }

    pub fn health_settings(&self) -> HealthSettings {
        self.config.health
    }

    pub fn trusted_proxies(&self) -> &[IpNet] {
        &self.config.trusted_proxies
    }

    /// Whose forwarding headers count, which one and how far: for [`crate::client_ip`].
    pub fn forwarding(&self) -> Forwarding<'_> {
        Forwarding {
            trusted: &self.config.trusted_proxies,
            header: self.config.forwarded_header,
            max_hops: self.config.max_forwarded_hops,
        }
    }

    pub fn zone_name(&self, zone: usize) -> Option<String> {
        let z = self.config.coverage_zones.get(zone)?;
        Some(
            z.name
                .clone()
                .unwrap_or_else(|| format!("coverage-zone[{zone}]")),
        )
    }

    pub fn zone_target(&self, zone: usize) -> Option<&Target> {
        self.zone_targets.get(zone)
    }

    pub fn default_region(&self) -> &str {
        &self.config.default_region
    }

    /// Which database answers lookups now.
    pub fn database(&self) -> String {
        self.geo.load().describe()
    }

    /// Re-opens the configured database files and swaps them in. Requests in
    /// flight keep the reader they loaded; on error the old one stays.
    pub fn reload(&self) -> Result<String, Error> {
        let db = MaxMindFiles::open_limited(&self.config.geoip, self.config.geoip_max_size)?;
        let described = db.describe();
        self.geo.store(Arc::new(Box::new(db)));
        tracing::info!(database = %described, "geo database reloaded");
        Ok(described)
    }

    /// The configured database paths.
    pub fn geoip_paths(&self) -> &[PathBuf] {
        &self.config.geoip
    }

    pub fn is_up(&self, edge: usize) -> bool {
        !self.config.health.enabled || self.edges.get(edge).is_some_and(|e| e.health.is_up())
    }

    /// Is edge `i` one the target prefers?
    pub fn prefers(&self, target: Option<&Target>, i: usize) -> bool {
        match target {
            None => false,
            Some(Target::Edge(t)) => *t == i,
            Some(Target::Region(r)) => self.edges.get(i).is_some_and(|e| &e.region == r),
        }
    }

    /// The point a target stands for: its edge, or the mean of its region's edges.
    fn target_point(&self, target: &Target) -> [f64; 3] {
        let mut sum = [0.0; 3];
        for (i, e) in self.edges.iter().enumerate() {
            if self.prefers(Some(target), i) {
                sum = [sum[0] + e.xyz[0], sum[1] + e.xyz[1], sum[2] + e.xyz[2]];
            }
        }
        let norm = dot(&sum, &sum).sqrt();
        if norm > 0.0 {
            sum.map(|c| c / norm)
        } else {
            [1.0, 0.0, 0.0]
        }
    }

    /// Where `ip` is and what it prefers.
    pub fn place(&self, ip: IpAddr) -> (Placement, Option<&Target>) {
        if let Some((net, zone)) = self.zones.find(ip) {
            return (Placement::Zone(zone, net), self.zone_targets.get(zone));
        }
        if is_special(ip) {
            return (Placement::DefaultSpecial, Some(&self.default_target));
        }
        match self.geo.load().lookup(ip) {
            Some(geo) => (Placement::Database(geo), None),
            None => (Placement::DefaultUnlocated, Some(&self.default_target)),
        }
    }

    /// Weighted distance from `from` to edge `e`, in a unit fit for ranking only.
    fn rank_distance(&self, from: &[f64; 3], e: &Edge) -> f64 {
        if self.uniform_weights {
            // 1 - cos grows with the angle: same order, no acos.
            1.0 - dot(from, &e.xyz)
        } else {
            angle(from, &e.xyz) / e.weight
        }
    }

    /// Distance in km from `from` (latitude, longitude) to edge `i`.
    pub fn distance_km(&self, from: (f64, f64), i: usize) -> Option<f64> {
        let e = self.edges.get(i)?;
        Some(angle(&unit_vector(from.0, from.1), &e.xyz) * EARTH_RADIUS_KM)
    }

    /// The decision for one address. Allocation-free: it runs on every request.
    pub fn route(&self, ip: IpAddr) -> Decision {
        let ip = ip.to_canonical();
        let (placement, target) = self.place(ip);
        let point = match (&placement, target) {
            (Placement::Database(g), _) => unit_vector(g.latitude, g.longitude),
            (_, Some(t)) => self.target_point(t),
            (_, None) => [1.0, 0.0, 0.0],
        };
        let mut best: Option<(usize, bool, f64)> = None;
        for (i, e) in self.edges.iter().enumerate() {
            if !self.is_up(i) {
                continue;
            }
            let preferred = self.prefers(target, i);
            let d = self.rank_distance(&point, e);
            let better = match best {
                None => true,
                Some((b, bp, bd)) => {
                    // Edges are sorted by name, so on a full tie the earlier stays.
                    (preferred, -d, e.weight) > (bp, -bd, self.edges[b].weight)
                }
            };
            if better {
                best = Some((i, preferred, d));
            }
        }
        let (edge, reason) = match best {
            Some((i, true, _)) => (Some(i), Reason::Preferred),
            Some((i, false, _)) if target.is_some() => (Some(i), Reason::PreferredDown),
            Some((i, false, _)) => (Some(i), Reason::Nearest),
            None => match self.fallback.first() {
                Some(&i) => (Some(i), Reason::Fallback),
                None => (None, Reason::AllDown),
            },
        };
        let from = match placement {
            Placement::Database(g) => (g.latitude, g.longitude),
            _ => (
                point[2].clamp(-1.0, 1.0).asin().to_degrees(),
                point[1].atan2(point[0]).to_degrees(),
            ),
        };
        Decision {
            ip,
            placement,
            from,
            edge,
            reason,
        }
    }
}

#[cfg(test)]
#[path = "director_tests.rs"]
mod tests;
