//! From what each request saw to the figures of the report: one
//! [`Sample`] per request, [`stats`] over any set of them, the timeline.

use http::HeaderMap;

use crate::model::{Bucket, Stats};

/// Which tier answered a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// The edge's cache.
    EdgeHit,
    /// The shield's cache (the edge missed).
    ShieldHit,
    /// The origin (every tier missed, or no CDN at all).
    Origin,
    /// Answered without a cache hit and without a trip of its own to the
    /// origin: a waiter collapsed onto another request's fill, or a node's
    /// own error page.
    Node,
    /// No answer at all: connection refused or reset, timeout.
    Failed,
}

/// What one request saw.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub client: u32,
    /// When it started, ms after the run's start.
    pub start_ms: u32,
    /// From the client's first byte out to its last byte in, simulated
    /// legs included, microseconds.
    pub latency_us: u32,
    /// The status, 0 without an answer.
    pub status: u16,
    pub served: Served,
    /// Some tier served a stale copy (stale-if-error, stale-while-revalidate).
    pub stale: bool,
    /// Body bytes received.
    pub bytes: u64,
    /// The server it went to: an index into the run's servers.
    pub server: u16,
    /// Which of the client's requests it is.
    pub request: u32,
}

impl Sample {
    pub fn ok(&self) -> bool {
        (200..400).contains(&self.status)
    }

    pub fn error(&self) -> bool {
        self.status == 0 || self.status >= 500
    }

    fn latency_ms(&self) -> f64 {
        f64::from(self.latency_us) / 1000.0
    }
}

/// Reads RFC 9211 `Cache-Status` (origin-most member first, the edge's
/// last): which tier answered, and whether a stale copy was served. `cdn`
/// is false for requests straight to the origin, which are all origin
/// answers.
pub fn served_by(headers: &HeaderMap, cdn: bool) -> (Served, bool) {
    if !cdn {
        return (Served::Origin, false);
    }
    let members: Vec<Member> = headers
        .get_all("cache-status")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(Member::parse)
        .collect();
    let stale = members.iter().any(|m| m.stale);
    let served = match members.as_slice() {
        [] => Served::Node,
        [.., edge] if edge.hit => Served::EdgeHit,
        [.., shield, _] if shield.hit => Served::ShieldHit,
        [.., edge] if edge.collapsed => Served::Node,
        [.., shield, _] if shield.collapsed => Served::Node,
        [.., first, _] | [first] if first.forwarded => Served::Origin,
        _ => Served::Node,
    };
    (served, stale)
}

/// One cache's member of `Cache-Status`, as far as the simulator cares.
struct Member {
    hit: bool,
    forwarded: bool,
    collapsed: bool,
    stale: bool,
}

impl Member {
    fn parse(s: &str) -> Member {
        let mut m = Member {
            hit: false,
            forwarded: false,
            collapsed: false,
            stale: false,
        };
        for param in s.split(';').skip(1).map(str::trim) {
            let (key, value) = param.split_once('=').unwrap_or((param, ""));
            match key {
                "hit" => m.hit = true,
                "fwd" => m.forwarded = true,
                "collapsed" => m.collapsed = true,
                "detail" => {
                    m.stale = matches!(value, "stale-while-revalidate" | "stale-if-error");
                }
                _ => {}
            }
        }
        m
    }
}

/// The figures over `samples`; `cdn` says whether they went through edges
/// (hit ratios are `None` for requests straight to the origin).
pub fn stats<'a>(samples: impl IntoIterator<Item = &'a Sample>, cdn: bool) -> Stats {
    let mut s = Stats::default();
    let mut latencies = Vec::new();
    let (mut answered_by_edge, mut forwarded) = (0u64, 0u64);
    for x in samples {
        s.requests += 1;
        latencies.push(x.latency_ms());
        s.ok += u64::from(x.ok());
        s.errors += u64::from(x.error());
        s.stale += u64::from(x.stale);
        s.client_bytes += x.bytes;
        match x.served {
            Served::EdgeHit => s.edge_hits += 1,
            Served::ShieldHit => s.shield_hits += 1,
            Served::Origin => {
                s.origin_requests += 1;
                s.origin_bytes += x.bytes;
            }
            Served::Node | Served::Failed => {}
        }
        if x.served != Served::Failed {
            answered_by_edge += 1;
            if x.served != Served::EdgeHit {
                forwarded += 1;
            }
        }
    }
    if cdn {
        s.edge_hit_ratio = ratio(s.edge_hits, answered_by_edge);
        s.shield_hit_ratio = ratio(s.shield_hits, forwarded);
    }
    s.offload = ratio(s.origin_requests, s.requests).map(|r| 1.0 - r);
    latencies.sort_by(f64::total_cmp);
    s.p50_ms = quantile(&latencies, 0.50);
    s.p95_ms = quantile(&latencies, 0.95);
    s.p99_ms = quantile(&latencies, 0.99);
    if !latencies.is_empty() {
        s.mean_ms = Some(latencies.iter().sum::<f64>() / latencies.len() as f64);
    }
    s
}

fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// The `q` quantile (0..=1) of sorted values, nearest rank.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted.get(rank).copied()
}

/// Latency at percentiles 0..=100.
pub fn cdf_ms(samples: &[Sample]) -> Vec<f64> {
    let mut l: Vec<f64> = samples.iter().map(Sample::latency_ms).collect();
    l.sort_by(f64::total_cmp);
    if l.is_empty() {
        return Vec::new();
    }
    (0..=100)
        .filter_map(|p| quantile(&l, f64::from(p) / 100.0))
        .collect()
}

/// The run in `bucket_ms` slices by start time, through the last request.
pub fn timeline(samples: &[Sample], bucket_ms: u64) -> Vec<Bucket> {
    let width = bucket_ms.max(1);
    let last = samples.iter().map(|s| u64::from(s.start_ms)).max();
    let Some(last) = last else {
        return Vec::new();
    };
    let n = (last / width + 1) as usize;
    let mut per: Vec<Vec<&Sample>> = vec![Vec::new(); n];
    for s in samples {
        if let Some(b) = per.get_mut((u64::from(s.start_ms) / width) as usize) {
            b.push(s);
        }
    }
    per.into_iter()
        .enumerate()
        .map(|(i, b)| Bucket::of(i as u64 * width, &stats(b.iter().copied(), true)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn cs(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("cache-status", HeaderValue::from_str(v).expect("value"));
        h
    }

    #[test]
    fn which_tier_answered() {
        let cases = [
            (
                "shield-us; hit; ttl=50, eu-west; fwd=uri-miss; fwd-status=200; stored",
                Served::ShieldHit,
                false,
            ),
            (
                "shield-us; fwd=uri-miss; fwd-status=200; stored, eu-west; fwd=uri-miss; fwd-status=200",
                Served::Origin,
                false,
            ),
            (
                "shield-us; fwd=uri-miss, eu-west; hit; ttl=30",
                Served::EdgeHit,
                false,
            ),
            (
                "eu-west; hit; ttl=-3; detail=stale-if-error",
                Served::EdgeHit,
                true,
            ),
            (
                "shield-us; fwd=stale; fwd-status=503; detail=stale-if-error, eu-west; fwd=miss",
                Served::Origin,
                true,
            ),
            (
                "eu-west; fwd=uri-miss; fwd-status=200",
                Served::Origin,
                false,
            ),
            ("eu-west; detail=no-upstream", Served::Node, false),
            (
                "shield-us; fwd=miss; fwd-status=200; stored, eu-west; fwd=miss; collapsed",
                Served::Node,
                false,
            ),
            (
                "shield-us; fwd=miss; collapsed, eu-west; fwd=miss; fwd-status=200",
                Served::Node,
                false,
            ),
        ];
        for (v, want, stale) in cases {
            assert_eq!(served_by(&cs(v), true), (want, stale), "{v}");
        }
        assert_eq!(served_by(&HeaderMap::new(), true), (Served::Node, false));
        assert_eq!(served_by(&cs("x; hit"), false), (Served::Origin, false));
    }

    fn sample(latency_ms: u32, served: Served, status: u16) -> Sample {
        Sample {
            client: 0,
            start_ms: latency_ms,
            latency_us: latency_ms * 1000,
            status,
            served,
            stale: false,
            bytes: 100,
            server: 0,
            request: 0,
        }
    }

    #[test]
    fn figures() {
        let samples = [
            sample(10, Served::EdgeHit, 200),
            sample(20, Served::EdgeHit, 200),
            sample(30, Served::ShieldHit, 200),
            sample(40, Served::Origin, 200),
            sample(50, Served::Failed, 0),
        ];
        let s = stats(&samples, true);
        assert_eq!((s.requests, s.ok, s.errors), (5, 4, 1));
        assert_eq!(s.edge_hit_ratio, Some(0.5));
        assert_eq!(s.shield_hit_ratio, Some(0.5));
        assert_eq!((s.origin_requests, s.origin_bytes), (1, 100));
        assert_eq!(s.offload, Some(0.8));
        assert_eq!(s.p50_ms, Some(30.0));
        assert_eq!(s.p99_ms, Some(50.0));
        assert_eq!(stats(&samples, false).edge_hit_ratio, None);
        let t = timeline(&samples, 25);
        assert_eq!(t.len(), 3);
        assert_eq!(t.iter().map(|b| b.requests).sum::<u64>(), 5);
        assert_eq!(cdf_ms(&samples).len(), 101);
        assert_eq!(stats(&[], true), Stats::default());
    }
}
