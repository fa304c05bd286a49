//! A hand-built [`Report`] for tests and for working on the report without
//! a run: the nodes of `config/cluster.toml`, 47 client places weighted
//! roughly by internet users, and three routings whose figures come from a
//! small deterministic model of the cluster (the cluster's own latency
//! model between the places, a hit ratio that warms up and dips after a
//! purge, eu-west stopping under the director routing). So its numbers
//! agree with each other as a real run's do: the percentiles, the
//! timeline, the regions and the CDFs are computed from the same requests.
//!
//! It shows every panel at once (a purge *and* an edge down), which one
//! real run never does.

use meridian_cluster::latency::{Model, great_circle_km};

use crate::model::Region::{self, *};
use crate::model::{
    Bucket, ClientPlace, Counted, CpuUse, EdgeDown, Event, NodeMark, RegionStats, Report, Route,
    Routing, RoutingResult, RunParams, Scenario, Stats, WorkloadParams,
};

/// city (for the reader of this file), country, region, latitude,
/// longitude, clients.
#[rustfmt::skip]
const PLACES: &[(&str, &str, Region, f64, f64, u32)] = &[
    ("New York", "US", NorthAmerica, 40.71, -74.01, 150),
    ("Chicago", "US", NorthAmerica, 41.88, -87.63, 70),
    ("Los Angeles", "US", NorthAmerica, 34.05, -118.24, 95),
    ("Dallas", "US", NorthAmerica, 32.78, -96.80, 60),
    ("Seattle", "US", NorthAmerica, 47.61, -122.33, 40),
    ("Atlanta", "US", NorthAmerica, 33.75, -84.39, 50),
    ("Denver", "US", NorthAmerica, 39.74, -104.99, 30),
    ("Miami", "US", NorthAmerica, 25.76, -80.19, 35),
    ("Toronto", "CA", NorthAmerica, 43.65, -79.38, 55),
    ("Mexico City", "MX", NorthAmerica, 19.43, -99.13, 80),
    ("São Paulo", "BR", SouthAmerica, -23.55, -46.63, 90),
    ("Rio de Janeiro", "BR", SouthAmerica, -22.91, -43.17, 45),
    ("Buenos Aires", "AR", SouthAmerica, -34.60, -58.38, 45),
    ("Bogotá", "CO", SouthAmerica, 4.71, -74.07, 40),
    ("Lima", "PE", SouthAmerica, -12.05, -77.04, 25),
    ("Santiago", "CL", SouthAmerica, -33.45, -70.67, 25),
    ("London", "GB", Europe, 51.51, -0.13, 110),
    ("Paris", "FR", Europe, 48.86, 2.35, 80),
    ("Berlin", "DE", Europe, 52.52, 13.40, 70),
    ("Amsterdam", "NL", Europe, 52.37, 4.90, 25),
    ("Madrid", "ES", Europe, 40.42, -3.70, 45),
    ("Rome", "IT", Europe, 41.90, 12.50, 45),
    ("Warsaw", "PL", Europe, 52.23, 21.01, 35),
    ("Stockholm", "SE", Europe, 59.33, 18.07, 20),
    ("Moscow", "RU", Europe, 55.76, 37.62, 60),
    ("Istanbul", "TR", Europe, 41.01, 28.98, 50),
    ("Lagos", "NG", Africa, 6.52, 3.38, 55),
    ("Cairo", "EG", Africa, 30.04, 31.24, 45),
    ("Johannesburg", "ZA", Africa, -26.20, 28.05, 30),
    ("Nairobi", "KE", Africa, -1.29, 36.82, 25),
    ("Casablanca", "MA", Africa, 33.57, -7.59, 20),
    ("Tokyo", "JP", Asia, 35.68, 139.69, 90),
    ("Seoul", "KR", Asia, 37.57, 126.98, 50),
    ("Shanghai", "CN", Asia, 31.23, 121.47, 100),
    ("Beijing", "CN", Asia, 39.90, 116.41, 80),
    ("Mumbai", "IN", Asia, 19.08, 72.88, 90),
    ("Delhi", "IN", Asia, 28.61, 77.21, 80),
    ("Jakarta", "ID", Asia, -6.21, 106.85, 70),
    ("Manila", "PH", Asia, 14.60, 120.98, 45),
    ("Bangkok", "TH", Asia, 13.76, 100.50, 35),
    ("Ho Chi Minh City", "VN", Asia, 10.82, 106.63, 35),
    ("Dubai", "AE", Asia, 25.20, 55.27, 20),
    ("Karachi", "PK", Asia, 24.86, 67.01, 40),
    ("Singapore", "SG", Asia, 1.35, 103.82, 15),
    ("Sydney", "AU", Oceania, -33.87, 151.21, 35),
    ("Melbourne", "AU", Oceania, -37.81, 144.96, 25),
    ("Auckland", "NZ", Oceania, -36.85, 174.76, 10),
];

/// name, region, latitude, longitude: `config/cluster.toml`'s `[[edge]]`s.
const EDGES: &[(&str, &str, f64, f64)] = &[
    ("eu-west", "eu-west", 53.35, -6.26),
    ("us-east-1", "us-east", 38.95, -77.45),
    ("us-east-2", "us-east", 38.95, -77.45),
    ("us-west", "us-west", 45.6, -119.7),
    ("ap-southeast", "ap-southeast", 1.35, 103.82),
    ("sa-east", "sa-east", -23.55, -46.63),
];
const SHIELDS: &[(&str, &str, f64, f64)] = &[
    ("shield-us", "us-east", 39.04, -77.49),
    ("shield-eu", "eu-central", 50.11, 8.68),
];
const ORIGIN: (f64, f64) = (39.04, -77.49);

/// The origin's own time for a response (an application behind it);
/// a cache answers in well under a millisecond.
const ORIGIN_MS: f64 = 20.0;
const DURATION_MS: u64 = 30_000;
const BUCKET_MS: u64 = 1_000;
const REQUESTS_PER_CLIENT: u64 = 8;
const PURGE_AT_MS: u64 = 15_000;
/// eu-west stops (director routing), and the ~1 s until the director's
/// health check sees it, in which its clients' requests fail.
const DOWN_EDGE: usize = 0;
const DOWN_AT_MS: u64 = 21_000;
const DOWN_NOTICED_MS: u64 = 900;

/// The example report (see the module docs).
#[doc(hidden)]
pub fn example() -> Report {
    let model = Model::default();
    let nearest: Vec<[usize; 2]> = PLACES
        .iter()
        .enumerate()
        .map(|(i, p)| two_nearest_edges(i, (p.3, p.4)))
        .collect();
    let routings: Vec<RoutingResult> = Routing::ALL
        .into_iter()
        .map(|r| {
            let samples = simulate(&model, r, &nearest);
            result(r, &samples, &nearest, &model)
        })
        .collect();
    let clients: u32 = PLACES.iter().map(|p| p.5).sum();
    let requests = u64::from(clients) * REQUESTS_PER_CLIENT;
    let wall_ms: u64 = routings.iter().map(|r| r.wall_ms).sum::<u64>() + 2_400;
    Report {
        params: RunParams {
            workload: WorkloadParams {
                seed: 42,
                clients,
                requests,
                duration_ms: DURATION_MS,
                zipf_s: 1.0,
            },
            scenario: Scenario::Purge,
            config: "config/cluster.toml".into(),
            cluster: "spawned in-process".into(),
            database: "geo-data/dbip-regions.mmdb.zst (249 countries, 1,024 networks)".into(),
            weights_source:
                "internet users per country, ITU 2023 (60 countries, the rest by continent)".into(),
            started_at_ms: 1_796_143_202_000,
            wall_ms,
            bucket_ms: BUCKET_MS,
            sim_cpu: Some(CpuUse {
                cpu_ms: 9_120,
                percent_of_core: 9_120.0 / wall_ms as f64 * 100.0,
            }),
            scenario_target: Some("tag news".into()),
        },
        nodes: nodes(),
        places: PLACES
            .iter()
            .map(|p| ClientPlace {
                latitude: p.3,
                longitude: p.4,
                country: p.1.into(),
                region: p.2,
                clients: p.5,
                requests: u64::from(p.5) * REQUESTS_PER_CLIENT,
            })
            .collect(),
        routes: PLACES
            .iter()
            .zip(&nearest)
            .map(|(p, n)| Route {
                latitude: p.3,
                longitude: p.4,
                edge: EDGES[n[0]].0.into(),
                clients: p.5,
            })
            .collect(),
        routings,
    }
}

fn nodes() -> Vec<NodeMark> {
    let mark = |name: &str, kind: &str, region: &str, at: (f64, f64)| NodeMark {
        name: name.into(),
        kind: kind.into(),
        region: region.into(),
        latitude: at.0,
        longitude: at.1,
    };
    let mut nodes: Vec<NodeMark> = EDGES
        .iter()
        .map(|e| mark(e.0, "edge", e.1, (e.2, e.3)))
        .collect();
    nodes.extend(SHIELDS.iter().map(|s| mark(s.0, "shield", s.1, (s.2, s.3))));
    nodes.push(mark("origin", "origin", "us-east", ORIGIN));
    nodes
}

/// The nearest edge and the next nearest at another place. The two
/// us-east edges share an address: the director sends a place to the
/// region, and its balancer picks one; here, by the place's index.
fn two_nearest_edges(place: usize, at: (f64, f64)) -> [usize; 2] {
    let mut order: Vec<usize> = (0..EDGES.len()).collect();
    order.sort_by(|&a, &b| {
        let da = great_circle_km(at, (EDGES[a].2, EDGES[a].3));
        let db = great_circle_km(at, (EDGES[b].2, EDGES[b].3));
        da.total_cmp(&db)
    });
    let region: Vec<usize> = order
        .iter()
        .copied()
        .filter(|&e| EDGES[e].1 == EDGES[order[0]].1)
        .collect();
    let first = region[place % region.len()];
    let second = order
        .iter()
        .copied()
        .find(|&e| EDGES[e].1 != EDGES[first].1)
        .unwrap_or(first);
    [first, second]
}

#[derive(Clone, Copy, PartialEq)]
enum Tier {
    Edge,
    Shield,
    Origin,
}

struct Sample {
    t_ms: u64,
    ms: f64,
    place: usize,
    /// The edge that answered (`None` straight to origin or failed).
    edge: Option<usize>,
    tier: Tier,
    bytes: u64,
    error: bool,
    stale: bool,
}

fn rtt(model: &Model, a: (f64, f64), b: (f64, f64)) -> f64 {
    model.rtt(great_circle_km(a, b)).as_secs_f64() * 1000.0
}

/// splitmix64 of the inputs, as a number in [0, 1).
fn unit(parts: &[u64]) -> f64 {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for &p in parts {
        x ^= p.wrapping_add(0x9e37_79b9_7f4a_7c15);
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^= x >> 31;
    }
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// Every request of one routing's run.
fn simulate(model: &Model, routing: Routing, nearest: &[[usize; 2]]) -> Vec<Sample> {
    let r = routing as u64;
    let mut out = Vec::new();
    for (i, p) in PLACES.iter().enumerate() {
        let at = (p.3, p.4);
        let n = u64::from(p.5) * REQUESTS_PER_CLIENT;
        for j in 0..n {
            let t_ms =
                ((j as f64 + unit(&[i as u64, j, 7])) / n as f64 * DURATION_MS as f64) as u64;
            let new_connection = j < u64::from(p.5);
            let client = j % u64::from(p.5);
            let bytes = asset_bytes(j % 97);
            let (edge, error) = match routing {
                Routing::Origin => (None, false),
                Routing::Random => (Some((unit(&[i as u64, client, 3]) * 6.0) as usize), false),
                Routing::Director => {
                    let [first, second] = nearest[i];
                    if first == DOWN_EDGE && t_ms >= DOWN_AT_MS {
                        (Some(second), t_ms < DOWN_AT_MS + DOWN_NOTICED_MS)
                    } else {
                        (Some(first), false)
                    }
                }
            };
            let jitter = 1.0 + 0.12 * unit(&[r, i as u64, j, 9]);
            let Some(e) = edge else {
                let leg = rtt(model, at, ORIGIN) * if new_connection { 2.0 } else { 1.0 };
                out.push(Sample {
                    t_ms,
                    ms: (leg + ORIGIN_MS + bytes as f64 / 400_000.0) * jitter,
                    place: i,
                    edge: None,
                    tier: Tier::Origin,
                    bytes,
                    error: false,
                    stale: false,
                });
                continue;
            };
            let edge_at = (EDGES[e].2, EDGES[e].3);
            let leg = rtt(model, at, edge_at);
            if error {
                out.push(Sample {
                    t_ms,
                    ms: leg * jitter,
                    place: i,
                    edge: None,
                    tier: Tier::Edge,
                    bytes: 0,
                    error: true,
                    stale: false,
                });
                continue;
            }
            // A new connection costs a round trip more; so does a client
            // that moved after its edge stopped.
            let moved = e != nearest[i][0] && routing == Routing::Director;
            let leg = leg
                * if new_connection || moved && t_ms < DOWN_AT_MS + 3_000 {
                    2.0
                } else {
                    1.0
                };
            let base = if routing == Routing::Random {
                0.91
            } else {
                0.95
            };
            let warm = 1.0 - 0.6 * (-(t_ms as f64) / 1_500.0).exp();
            let purge = if t_ms >= PURGE_AT_MS {
                1.0 - 0.5 * (-((t_ms - PURGE_AT_MS) as f64) / 2_000.0).exp()
            } else {
                1.0
            };
            let shield = usize::from(unit(&[j % 97, 5]) < 0.5);
            let shield_at = (SHIELDS[shield].2, SHIELDS[shield].3);
            let (tier, ms) = if unit(&[r, i as u64, j, 1]) < base * warm * purge {
                (Tier::Edge, leg + 0.4)
            } else if unit(&[r, i as u64, j, 2]) < 0.62 * warm * purge {
                (Tier::Shield, leg + rtt(model, edge_at, shield_at) + 0.6)
            } else {
                let via = rtt(model, edge_at, shield_at) + rtt(model, shield_at, ORIGIN);
                (Tier::Origin, leg + via + ORIGIN_MS)
            };
            out.push(Sample {
                t_ms,
                ms: (ms + bytes as f64 / 400_000.0) * jitter,
                place: i,
                edge: Some(e),
                tier,
                bytes,
                error: false,
                stale: tier == Tier::Edge && unit(&[r, i as u64, j, 4]) < 0.004,
            });
        }
    }
    out
}

/// The body size of asset `k`: mostly small pages and images, a few
/// large media segments.
fn asset_bytes(k: u64) -> u64 {
    let u = unit(&[k, 11]);
    match k % 20 {
        0 => 1_048_576,
        1..=5 => 40_000 + (u * 260_000.0) as u64,
        _ => 2_000 + (u * 38_000.0) as u64,
    }
}

fn result(
    routing: Routing,
    samples: &[Sample],
    nearest: &[[usize; 2]],
    model: &Model,
) -> RoutingResult {
    let all: Vec<&Sample> = samples.iter().collect();
    let regions = Region::ALL
        .into_iter()
        .filter_map(|region| {
            let places: Vec<usize> = (0..PLACES.len())
                .filter(|&i| PLACES[i].2 == region)
                .collect();
            if places.is_empty() {
                return None;
            }
            let of: Vec<&Sample> = samples
                .iter()
                .filter(|s| PLACES[s.place].2 == region)
                .collect();
            Some(RegionStats {
                region,
                clients: places.iter().map(|&i| PLACES[i].5).sum(),
                stats: stats(routing, &of),
            })
        })
        .collect();
    let overall = stats(routing, &all);
    let mut sorted: Vec<f64> = samples.iter().map(|s| s.ms).collect();
    sorted.sort_by(f64::total_cmp);
    let cdf_ms = (0..=100).map(|q| percentile(&sorted, q as f64)).collect();
    let timeline = (0..DURATION_MS / BUCKET_MS)
        .map(|b| {
            let t_ms = b * BUCKET_MS;
            let of: Vec<&Sample> = samples
                .iter()
                .filter(|s| s.t_ms >= t_ms && s.t_ms < t_ms + BUCKET_MS)
                .collect();
            Bucket::of(t_ms, &stats(routing, &of))
        })
        .collect();
    let mut events = vec![Event {
        // Each routing's purge lands a few milliseconds apart, as in a run.
        t_ms: PURGE_AT_MS + 2 * routing as u64,
        what: "tag news purged".into(),
    }];
    let mut edge_down = None;
    let mut resolve_p50_ms = None;
    if routing == Routing::Director {
        events.insert(
            0,
            Event {
                t_ms: DOWN_AT_MS,
                what: format!("{} stopped", EDGES[DOWN_EDGE].0),
            },
        );
        events.sort_by_key(|e| e.t_ms);
        edge_down = Some(down(samples, nearest));
        let mut resolve: Vec<f64> = PLACES
            .iter()
            .zip(nearest)
            .map(|(p, n)| rtt(model, (p.3, p.4), (EDGES[n[0]].2, EDGES[n[0]].3)))
            .collect();
        resolve.sort_by(f64::total_cmp);
        resolve_p50_ms = Some(percentile(&resolve, 50.0));
    }
    let revalidations = overall.origin_requests / 40;
    RoutingResult {
        routing,
        origin_counted: Counted {
            requests: overall.origin_requests + revalidations,
            bytes: overall.origin_bytes,
        },
        overall,
        regions,
        cdf_ms,
        timeline,
        events,
        edge_down,
        resolve_p50_ms,
        wall_ms: DURATION_MS + 1_100 + routing as u64 * 700,
    }
}

fn down(samples: &[Sample], nearest: &[[usize; 2]]) -> EdgeDown {
    let theirs = |s: &&Sample| nearest[s.place][0] == DOWN_EDGE;
    let before: Vec<&Sample> = samples
        .iter()
        .filter(theirs)
        .filter(|s| s.t_ms < DOWN_AT_MS)
        .collect();
    let after: Vec<&Sample> = samples
        .iter()
        .filter(theirs)
        .filter(|s| s.t_ms >= DOWN_AT_MS)
        .collect();
    let mut moved_to: Vec<(String, u32)> = Vec::new();
    for (i, n) in nearest.iter().enumerate() {
        if n[0] != DOWN_EDGE {
            continue;
        }
        let to = EDGES[n[1]].0;
        match moved_to.iter_mut().find(|(e, _)| e == to) {
            Some((_, c)) => *c += PLACES[i].5,
            None => moved_to.push((to.into(), PLACES[i].5)),
        }
    }
    moved_to.sort_by_key(|m| std::cmp::Reverse(m.1));
    EdgeDown {
        edge: EDGES[DOWN_EDGE].0.into(),
        at_ms: DOWN_AT_MS,
        clients: moved_to.iter().map(|m| m.1).sum(),
        before: stats(Routing::Director, &before),
        after: stats(Routing::Director, &after),
        moved_to,
    }
}

fn stats(routing: Routing, samples: &[&Sample]) -> Stats {
    let requests = samples.len() as u64;
    let errors = samples.iter().filter(|s| s.error).count() as u64;
    let at_edge = if routing == Routing::Origin {
        0
    } else {
        requests - errors
    };
    let edge_hits = samples
        .iter()
        .filter(|s| !s.error && s.edge.is_some() && s.tier == Tier::Edge)
        .count() as u64;
    let shield_hits = samples.iter().filter(|s| s.tier == Tier::Shield).count() as u64;
    let origin: Vec<&&Sample> = samples.iter().filter(|s| s.tier == Tier::Origin).collect();
    let mut ms: Vec<f64> = samples.iter().map(|s| s.ms).collect();
    ms.sort_by(f64::total_cmp);
    let ratio = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
    let p = |q: f64| (!ms.is_empty()).then(|| percentile(&ms, q));
    Stats {
        requests,
        ok: requests - errors,
        errors,
        edge_hits,
        shield_hits,
        stale: samples.iter().filter(|s| s.stale).count() as u64,
        edge_hit_ratio: ratio(edge_hits, at_edge),
        shield_hit_ratio: ratio(shield_hits, at_edge.saturating_sub(edge_hits)),
        p50_ms: p(50.0),
        p95_ms: p(95.0),
        p99_ms: p(99.0),
        mean_ms: (!ms.is_empty()).then(|| ms.iter().sum::<f64>() / ms.len() as f64),
        origin_requests: origin.len() as u64,
        origin_bytes: origin.iter().map(|s| s.bytes).sum(),
        client_bytes: samples.iter().map(|s| s.bytes).sum(),
        offload: ratio(requests - origin.len() as u64, requests),
    }
}

/// Nearest rank on sorted values; `sorted` is not empty.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}
