//! The seeded workload: client addresses sampled from the networks of the
//! geo database, assets with Zipf popularity, think times.
//!
//! ```text
//! Places::open   every network of the database, once ─► per country: address
//!                ranges (adjacent networks with one location merged) + locations
//! generate       per client, each from its own seeded stream:
//!                  country   by internet users (weights), among the database's
//!                  address   uniform over the country's addresses (so a network
//!                            is drawn by its size), located as the database does
//!                  start     uniform in the first (1 - SESSION_SHARE) of the window
//!                  requests  the total split over clients (each at least one)
//!                  paths     Zipf ranks over the assets, most popular first
//!                  think     exponential, a session lasting SESSION_SHARE of the window
//! ```
//!
//! Every random draw comes from a PCG stream (`rand_pcg::Pcg64`, a fixed
//! algorithm, so a seed means the same on every machine) seeded from the
//! workload seed, the purpose of the draw and the client. A client's
//! place, start, think times and paths are each drawn from their own
//! stream: changing how think times are drawn does not move a single
//! client, and client `i` has the same address, start and first paths
//! whatever the number of clients (only its number of requests, a share of
//! the total, changes).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use meridian_geo_director::{Geo, is_special};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp, Zipf};
use rand_pcg::Pcg64;

use crate::Error;
use crate::model::{AssetRef, Client, Request, Workload, WorkloadParams};
use crate::weights;

mod places;

pub use places::{MAX_NETWORKS, Places};

/// At most this many clients in one workload.
pub const MAX_CLIENTS: u32 = 100_000;
/// At most this many requests in one workload (about 50 bytes each).
pub const MAX_REQUESTS: u64 = 2_000_000;
/// The longest window, milliseconds (a day).
pub const MAX_DURATION_MS: u64 = 86_400_000;
/// The steepest Zipf exponent accepted.
pub const MAX_ZIPF_S: f64 = 10.0;

/// Media larger than this is asked for in a range of its first
/// [`MEDIA_RANGE_BYTES`], as a video player asks for its first segment.
pub const LARGE_MEDIA_BYTES: u64 = 4 << 20;
/// The first range a player asks for.
pub const MEDIA_RANGE_BYTES: u64 = 1 << 20;

/// The longest mean think time, milliseconds: a reader between page views
/// on a short window.
pub const THINK_MEAN_MAX_MS: f64 = 2_000.0;
/// No single think time is longer, milliseconds.
pub const THINK_CAP_MS: u64 = 5_000;
/// The share of the window a client's think times fill on average: its
/// session. Clients start anywhere in the rest, so the load is flat over
/// the middle of the window (at `1 / (1 - SESSION_SHARE)` times the mean
/// rate) and ramps at both ends, rather than peaking at half time.
pub const SESSION_SHARE: f64 = 0.25;

/// The API calls of the sample site's pages, at the popularity rank
/// (0 = most popular) a page's script would give them. `/api/` is
/// `private, no-store`: no CDN can offload it, and real traffic has it.
const API_CALLS: [(&str, usize); 3] = [
    ("/api/session", 3),
    ("/api/cart", 12),
    ("/api/recommendations", 40),
];
/// About what `/api/` answers (a small JSON object), bytes.
const API_BYTES: u64 = 110;

/// What each seeded stream is for.
#[derive(Clone, Copy)]
enum Purpose {
    Place = 1,
    Start = 2,
    Counts = 3,
    Paths = 4,
    Think = 5,
    Pick = 6,
}

/// The stream of `purpose` for `client` (or for the whole workload).
fn stream(seed: u64, purpose: Purpose, client: u64) -> Pcg64 {
    let h = splitmix64(splitmix64(seed) ^ purpose as u64);
    Pcg64::seed_from_u64(splitmix64(h ^ client))
}

/// Sebastiano Vigna's SplitMix64 finaliser: unrelated seeds from related
/// inputs.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The sample site's assets, most popular first, as the workload asks for
/// them: every asset of [`meridian_origin::SampleSite::assets`] (already
/// in popularity order, tiers drawn from the site's seed) with the page's
/// API calls among them (`/api/session` 4th, `/api/cart` 13th,
/// `/api/recommendations` 41st: about 5 % of requests at Zipf exponent 1).
/// `/sitemap.txt` is for crawlers, not a page asset: left out.
pub fn site_assets(site: &meridian_origin::SampleSite) -> Vec<AssetRef> {
    let mut sections: HashMap<&str, Arc<str>> = HashMap::new();
    let mut section = |s: &'static str| sections.entry(s).or_insert_with(|| s.into()).clone();
    let mut out: Vec<AssetRef> = site
        .assets()
        .iter()
        .filter(|a| a.path != "/sitemap.txt")
        .map(|a| AssetRef {
            path: a.path.as_str().into(),
            bytes: a.len,
            section: section(a.section),
        })
        .collect();
    for (path, rank) in API_CALLS {
        let api = AssetRef {
            path: path.into(),
            bytes: API_BYTES,
            section: section("api"),
        };
        out.insert(rank.min(out.len()), api);
    }
    out
}

/// The workload for `params`: the same inputs give the same workload.
///
/// `assets` are most popular first (as [`site_assets`] gives them): a
/// request asks for asset `k - 1` where `k` is drawn from Zipf(`n`,
/// `params.zipf_s`), `n` the number of assets.
///
/// Timing: client `i` starts at `start_i`, uniform in
/// `[0, (1 - SESSION_SHARE) * D)` for a window `D = params.duration_ms`.
/// Its `n_i` requests have `n_i - 1` think times (the first request has
/// none; each is the gap after the previous request was due, the runner
/// sending requests when due), exponential with mean
///
/// ```text
/// mean_i = min(THINK_MEAN_MAX_MS, SESSION_SHARE * D / (n_i - 1))
/// ```
///
/// each cut at [`THINK_CAP_MS`]: a session is expected to last a quarter
/// of the window. The few sessions whose draws add up to more than the
/// time left after their start have them scaled down to fit, so none runs
/// past the window by its think times alone.
///
/// How many requests each client makes: one each, and the rest shared in
/// proportion to weights drawn from Exp(1) (the largest remainders get the
/// last ones), so the total is exactly `params.requests` and session
/// lengths vary around their mean as web sessions do.
pub fn generate(
    params: &WorkloadParams,
    assets: &[AssetRef],
    places: &Places,
) -> Result<Workload, Error> {
    check(params, assets)?;
    let countries = places.weighted();
    let counts = request_counts(params);
    let zipf = Zipf::new(assets.len() as f64, params.zipf_s)
        .map_err(|e| Error::Workload(format!("zipf-s {}: {e}", params.zipf_s)))?;
    let starts_before = ((1.0 - SESSION_SHARE) * params.duration_ms as f64) as u64;
    let mut clients = Vec::with_capacity(counts.len());
    for (id, &n) in (0u32..).zip(&counts) {
        let who = u64::from(id);
        let seed = params.seed;
        let (ip, geo) = countries
            .draw(places, &mut stream(seed, Purpose::Place, who))
            .ok_or_else(|| Error::Workload("the geo database has no usable address".into()))?;
        let Some(code) = geo.country else {
            return Err(Error::Workload(format!("{ip}: no country")));
        };
        let region = weights::region_of(code.as_str())
            .ok_or_else(|| Error::Workload(format!("{}: no region", code.as_str())))?;
        let start_ms = if starts_before == 0 {
            0
        } else {
            stream(seed, Purpose::Start, who).random_range(0..starts_before)
        };
        clients.push(Client {
            id,
            ip,
            country: code.as_str().to_owned(),
            region,
            latitude: geo.latitude,
            longitude: geo.longitude,
            start_ms,
            requests: requests(params, assets, &zipf, who, n, start_ms),
            random_pick: stream(seed, Purpose::Pick, who).random(),
        });
    }
    Ok(Workload {
        params: params.clone(),
        clients,
        weights_source: format!(
            "{}; over the {} countries of the geo database",
            weights::SOURCE,
            countries.len()
        ),
    })
}

fn check(params: &WorkloadParams, assets: &[AssetRef]) -> Result<(), Error> {
    let bad = |what: String| Err(Error::Workload(what));
    if params.clients == 0 || params.clients > MAX_CLIENTS {
        return bad(format!(
            "clients must be 1 to {MAX_CLIENTS}, not {}",
            params.clients
        ));
    }
    if params.requests < u64::from(params.clients) || params.requests > MAX_REQUESTS {
        return bad(format!(
            "requests must be at least one per client ({}) and at most {MAX_REQUESTS}, not {}",
            params.clients, params.requests
        ));
    }
    if params.duration_ms == 0 || params.duration_ms > MAX_DURATION_MS {
        return bad(format!(
            "duration must be 1 ms to {MAX_DURATION_MS} ms, not {} ms",
            params.duration_ms
        ));
    }
    if !(0.0..=MAX_ZIPF_S).contains(&params.zipf_s) {
        return bad(format!(
            "zipf-s must be 0 to {MAX_ZIPF_S}, not {}",
            params.zipf_s
        ));
    }
    if assets.is_empty() {
        return bad("no assets to ask for".into());
    }
    Ok(())
}

/// Requests per client: at least one each, `params.requests` in all.
fn request_counts(params: &WorkloadParams) -> Vec<u64> {
    let clients = params.clients as usize;
    let extra = params.requests.saturating_sub(params.clients.into());
    let mut rng = stream(params.seed, Purpose::Counts, 0);
    let weight = Exp::new(1.0).ok();
    let w: Vec<f64> = (0..clients)
        .map(|_| weight.map_or(1.0, |d| d.sample(&mut rng)))
        .collect();
    let total: f64 = w.iter().sum();
    let mut counts = vec![1u64; clients];
    let mut given = 0u64;
    let mut rest: Vec<(f64, usize)> = Vec::with_capacity(clients);
    for (i, wi) in w.iter().enumerate() {
        let share = if total > 0.0 {
            extra as f64 * wi / total
        } else {
            extra as f64 / clients as f64
        };
        // `as` saturates; `min` keeps a rounding error from overshooting.
        let whole = (share.floor() as u64).min(extra - given);
        given += whole;
        if let Some(c) = counts.get_mut(i) {
            *c += whole;
        }
        rest.push((share - share.floor(), i));
    }
    // The last ones to the largest remainders, ties to the lower id.
    rest.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let left = extra - given;
    for (n, &(_, i)) in rest.iter().cycle().enumerate() {
        if n as u64 >= left {
            break;
        }
        if let Some(c) = counts.get_mut(i) {
            *c += 1;
        }
    }
    counts
}

/// The `n` requests of client `who`, starting at `start_ms`.
fn requests(
    params: &WorkloadParams,
    assets: &[AssetRef],
    zipf: &Zipf<f64>,
    who: u64,
    n: u64,
    start_ms: u64,
) -> Vec<Request> {
    let mut paths = stream(params.seed, Purpose::Paths, who);
    let mut thinks = stream(params.seed, Purpose::Think, who);
    let left = params.duration_ms.saturating_sub(start_ms) as f64;
    let gaps = n.saturating_sub(1).max(1) as f64;
    let mean = (SESSION_SHARE * params.duration_ms as f64 / gaps).min(THINK_MEAN_MAX_MS);
    let think = (mean > 0.0).then(|| Exp::new(1.0 / mean).ok()).flatten();
    let last = assets.len().saturating_sub(1);
    let mut out = Vec::with_capacity(n as usize);
    for k in 0..n {
        // Zipf gives 1..=n as a float; `as` saturates, `min` guards the top.
        let rank = (zipf.sample(&mut paths) as usize)
            .saturating_sub(1)
            .min(last);
        let Some(asset) = assets.get(rank) else {
            continue;
        };
        let think_ms = match (&think, k) {
            (Some(d), 1..) => (d.sample(&mut thinks).round() as u64).min(THINK_CAP_MS),
            _ => 0,
        };
        let range = (asset.bytes > LARGE_MEDIA_BYTES).then_some((0, MEDIA_RANGE_BYTES - 1));
        out.push(Request {
            path: asset.path.clone(),
            think_ms,
            range,
        });
    }
    fit(&mut out, left as u64);
    out
}

/// Scales the think times down so they add up to at most `budget` ms.
fn fit(requests: &mut [Request], budget: u64) {
    let sum: u64 = requests.iter().map(|r| r.think_ms).sum();
    if sum <= budget {
        return;
    }
    for r in requests {
        // At most `budget * think / sum` each, rounded down: the sum fits.
        r.think_ms = (u128::from(r.think_ms) * u128::from(budget) / u128::from(sum)) as u64;
    }
}

/// The countries clients are drawn from, by weight.
struct Weighted {
    /// `(country index in Places, cumulative weight through it)`.
    cumulative: Vec<(usize, f64)>,
}

impl Weighted {
    fn len(&self) -> usize {
        self.cumulative.len()
    }

    /// A country by weight, then an address uniform over its addresses,
    /// with where the database puts it. Addresses the director would not
    /// look up (private, reserved) are drawn again, a bounded number of
    /// times.
    fn draw(&self, places: &Places, rng: &mut Pcg64) -> Option<(IpAddr, Geo)> {
        let total = self.cumulative.last()?.1;
        if !(total.is_finite() && total > 0.0) {
            return None;
        }
        for _ in 0..64 {
            let x = rng.random_range(0.0..total);
            let i = self.cumulative.partition_point(|&(_, c)| c <= x);
            let (country, _) = *self.cumulative.get(i).or(self.cumulative.last())?;
            if let Some((ip, geo)) = places.draw(country, rng)
                && !is_special(ip)
            {
                return Some((ip, geo));
            }
        }
        None
    }
}

impl Places {
    /// The countries with addresses and a region, weighted by users.
    fn weighted(&self) -> Weighted {
        let mut sum = 0.0;
        let cumulative = self
            .country_codes()
            .enumerate()
            .filter(|(_, cc)| weights::region_of(cc.as_str()).is_some())
            .map(|(i, cc)| {
                sum += weights::users_millions(cc.as_str());
                (i, sum)
            })
            .collect();
        Weighted { cumulative }
    }
}

#[cfg(test)]
mod tests;
