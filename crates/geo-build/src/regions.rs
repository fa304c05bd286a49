//! Sub-country regions: a country's city locations grouped by weighted
//! k-means on the sphere, each location weighted by how many addresses DB-IP
//! puts there. A country gets as many regions as it needs for its
//! addresses to be, on average, within a target distance of their region's
//! centre (capped): one for Luxembourg, dozens for the United States.
//!
//! Deterministic by construction: points come in a fixed order, the first
//! centre is the weighted mean, each further one the point that adds most to
//! the squared error (the first such point on a tie), then Lloyd iterations.
//! No random seeding, no hash-map order.

/// Mean Earth radius (IUGG), for distances in km.
pub const EARTH_RADIUS_KM: f64 = 6371.0088;

/// How fine the regions are.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Stop adding regions to a country once its addresses are on average
    /// this close to their region's centre.
    pub target_km: f64,
    /// At most this many regions per country and address family.
    pub max_regions: usize,
    /// Lloyd iterations after seeding (fewer when the assignment settles).
    pub iterations: usize,
}

/// A location on the unit sphere and the addresses there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weighted {
    pub xyz: [f64; 3],
    pub weight: f64,
}

impl Weighted {
    pub fn new(lat: f64, lon: f64, weight: f64) -> Weighted {
        Weighted {
            xyz: unit_vector(lat, lon),
            weight,
        }
    }
}

/// The regions of one country: their centres as (latitude, longitude) and,
/// for every input point, the index of its region (its nearest centre).
#[derive(Debug, Clone, PartialEq)]
pub struct Regions {
    pub centres: Vec<(f64, f64)>,
    pub of_point: Vec<usize>,
}

pub fn unit_vector(lat: f64, lon: f64) -> [f64; 3] {
    let (lat, lon) = (lat.to_radians(), lon.to_radians());
    [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()]
}

/// (latitude, longitude) of a non-zero vector's direction.
pub fn lat_lon(v: [f64; 3]) -> (f64, f64) {
    let [x, y, z] = v;
    (z.atan2(x.hypot(y)).to_degrees(), y.atan2(x).to_degrees())
}

fn dot(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Great-circle distance in km between two unit vectors.
fn km(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    dot(a, b).clamp(-1.0, 1.0).acos() * EARTH_RADIUS_KM
}

/// The nearest centre to `p`: (index, distance in km); the first on a tie.
fn nearest(p: &[f64; 3], centres: &[[f64; 3]]) -> (usize, f64) {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, c) in centres.iter().enumerate() {
        let d = dot(p, c);
        if d > best.1 {
            best = (i, d);
        }
    }
    (best.0, best.1.clamp(-1.0, 1.0).acos() * EARTH_RADIUS_KM)
}

/// The weighted mean direction of `points`, `None` when they cancel out
/// (or there are none).
fn mean<'a>(points: impl Iterator<Item = &'a Weighted>) -> Option<[f64; 3]> {
    let mut s = [0.0; 3];
    for p in points {
        for (s, x) in s.iter_mut().zip(p.xyz) {
            *s += p.weight * x;
        }
    }
    normalised(s)
}

fn normalised(s: [f64; 3]) -> Option<[f64; 3]> {
    let n = s[0].hypot(s[1]).hypot(s[2]);
    (n > 0.0 && n.is_finite()).then(|| [s[0] / n, s[1] / n, s[2] / n])
}

/// Groups `points` (all of one country) into regions.
pub fn cluster(points: &[Weighted], params: &Params) -> Regions {
    let Some(first) = mean(points.iter()) else {
        return Regions {
            centres: Vec::new(),
            of_point: vec![0; points.len()],
        };
    };
    let total: f64 = points.iter().map(|p| p.weight).sum();
    let mut centres = vec![first];
    let mut near: Vec<(usize, f64)> = points.iter().map(|p| (0, km(&p.xyz, &first))).collect();
    let max = params.max_regions.max(1).min(points.len());
    // Seeding: add the point that contributes most to the squared error
    // until the mean error meets the target.
    while centres.len() < max {
        let error: f64 = points
            .iter()
            .zip(&near)
            .map(|(p, (_, d))| p.weight * d)
            .sum::<f64>()
            / total;
        if error <= params.target_km {
            break;
        }
        let mut pick: Option<(usize, f64)> = None;
        for (i, (p, (_, d))) in points.iter().zip(&near).enumerate() {
            let score = p.weight * d * d;
            if score > pick.map_or(0.0, |(_, s)| s) {
                pick = Some((i, score));
            }
        }
        let Some(c) = pick.and_then(|(i, _)| points.get(i)).map(|p| p.xyz) else {
            break;
        };
        let k = centres.len();
        centres.push(c);
        for (p, n) in points.iter().zip(near.iter_mut()) {
            let d = km(&p.xyz, &c);
            if d < n.1 {
                *n = (k, d);
            }
        }
    }
    // Lloyd: move each centre to its members' weighted mean, reassign.
    let mut of_point: Vec<usize> = near.iter().map(|(i, _)| *i).collect();
    for _ in 0..params.iterations {
        let mut sums = vec![[0.0; 3]; centres.len()];
        for (p, &k) in points.iter().zip(&of_point) {
            if let Some(s) = sums.get_mut(k) {
                for (s, x) in s.iter_mut().zip(p.xyz) {
                    *s += p.weight * x;
                }
            }
        }
        for (c, s) in centres.iter_mut().zip(sums) {
            // A centre left without members (or whose members cancel out)
            // stays where it is.
            if let Some(m) = normalised(s) {
                *c = m;
            }
        }
        let next: Vec<usize> = points.iter().map(|p| nearest(&p.xyz, &centres).0).collect();
        let settled = next == of_point;
        of_point = next;
        if settled {
            break;
        }
    }
    // Drop centres left without members (the first, the country's mean,
    // often is once the others take its points), keeping the order.
    let mut used = vec![false; centres.len()];
    for &k in &of_point {
        if let Some(u) = used.get_mut(k) {
            *u = true;
        }
    }
    let mut renumber = vec![0; centres.len()];
    let mut kept = Vec::new();
    for (k, c) in centres.into_iter().enumerate() {
        if used.get(k) == Some(&true) {
            if let Some(r) = renumber.get_mut(k) {
                *r = kept.len();
            }
            kept.push(lat_lon(c));
        }
    }
    Regions {
        centres: kept,
        of_point: of_point
            .into_iter()
            .map(|k| renumber.get(k).copied().unwrap_or(0))
            .collect(),
    }
}

/// Weighted mean distance (km) from each point to its region's centre.
pub fn mean_error_km(points: &[Weighted], regions: &Regions) -> f64 {
    let centres: Vec<[f64; 3]> = regions
        .centres
        .iter()
        .map(|&(lat, lon)| unit_vector(lat, lon))
        .collect();
    let (mut sum, mut total) = (0.0, 0.0);
    for (p, &i) in points.iter().zip(&regions.of_point) {
        if let Some(c) = centres.get(i) {
            sum += p.weight * km(&p.xyz, c);
            total += p.weight;
        }
    }
    if total > 0.0 { sum / total } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARAMS: Params = Params {
        target_km: 50.0,
        max_regions: 64,
        iterations: 20,
    };

    #[test]
    fn one_city_is_one_region_at_the_city() {
        let pts = [Weighted::new(48.85, 2.35, 1000.0)];
        let r = cluster(&pts, &PARAMS);
        assert_eq!(r.of_point, [0]);
        let (lat, lon) = r.centres[0];
        assert!((lat - 48.85).abs() < 1e-9 && (lon - 2.35).abs() < 1e-9);
    }

    #[test]
    fn two_coasts_become_two_regions_at_the_coasts() {
        // New York and San Francisco metro areas, a few towns in each.
        let pts = [
            Weighted::new(40.71, -74.01, 5000.0),
            Weighted::new(40.73, -73.94, 3000.0),
            Weighted::new(40.92, -74.17, 800.0),
            Weighted::new(37.77, -122.42, 4000.0),
            Weighted::new(37.34, -121.89, 2500.0),
        ];
        let r = cluster(&pts, &PARAMS);
        assert_eq!(r.centres.len(), 2, "{r:?}");
        assert_eq!(r.of_point[0], r.of_point[1]);
        assert_eq!(r.of_point[0], r.of_point[2]);
        assert_eq!(r.of_point[3], r.of_point[4]);
        assert_ne!(r.of_point[0], r.of_point[3]);
        assert!(mean_error_km(&pts, &r) < PARAMS.target_km);
        let east = r.centres[r.of_point[0]];
        assert!(
            (east.0 - 40.7).abs() < 0.5 && (east.1 + 74.0).abs() < 0.5,
            "{east:?}"
        );
    }

    #[test]
    fn the_region_cap_holds_and_weights_pull_centres() {
        // Ten cities along a line; at most three regions.
        let pts: Vec<Weighted> = (0..10)
            .map(|i| Weighted::new(0.0, f64::from(i) * 5.0, if i == 9 { 100.0 } else { 1.0 }))
            .collect();
        let params = Params {
            max_regions: 3,
            target_km: 1.0,
            ..PARAMS
        };
        let r = cluster(&pts, &params);
        assert_eq!(r.centres.len(), 3, "{r:?}");
        assert!(r.of_point.iter().all(|&k| k < r.centres.len()));
        // The heavy city has a region of its own, centred on it.
        let heavy = r.centres[r.of_point[9]];
        assert!((heavy.1 - 45.0).abs() < 1.0, "{heavy:?}");
    }

    #[test]
    fn antimeridian_cities_average_across_it_not_across_the_globe() {
        let pts = [
            Weighted::new(-17.0, 179.0, 1.0),
            Weighted::new(-17.0, -179.0, 1.0),
        ];
        let r = cluster(
            &pts,
            &Params {
                max_regions: 1,
                ..PARAMS
            },
        );
        assert!(r.centres[0].1.abs() > 179.0, "{:?}", r.centres);
    }

    #[test]
    fn no_points_or_no_weight_is_no_region() {
        assert!(cluster(&[], &PARAMS).centres.is_empty());
        let r = cluster(&[Weighted::new(1.0, 1.0, 0.0)], &PARAMS);
        assert!(r.centres.is_empty());
    }
}
