//! Figures both reports derive from a [`Report`]: the headline sentence,
//! a bucket's hit ratio, what an event did to the timeline.

use crate::model::{Bucket, CpuUse, Event, Report, Routing, RoutingResult};

use super::format;

/// The result of `routing`, if the run has one.
pub fn routing(report: &Report, routing: Routing) -> Option<&RoutingResult> {
    report.routings.iter().find(|r| r.routing == routing)
}

/// "nearest edge: 38 ms median, 4.1x faster than going to the origin;
/// the origin saw 5% of requests", as far as the run has the figures.
pub fn headline(report: &Report) -> Option<String> {
    let director = routing(report, Routing::Director)?;
    let p50 = director.overall.p50_ms.filter(|v| v.is_finite())?;
    let mut line = format!("nearest edge: {} median", format::ms(Some(p50)));
    let origin = routing(report, Routing::Origin).and_then(|o| o.overall.p50_ms);
    if let Some(f) = format::factor(Some(p50), origin) {
        line.push_str(&format!(", {f:.1}x faster than going to the origin"));
    }
    if let Some(share) = format::origin_share(&director.overall) {
        line.push_str(&format!(
            "; the origin saw {} of requests",
            format::pct_short(Some(share))
        ));
    }
    Some(line)
}

/// The tail and the alternative, under the headline: "At the tail, p99
/// 376 ms against 464 ms straight to the origin; a random edge gives
/// 156 ms median: ...".
pub fn subhead(report: &Report) -> Option<String> {
    let director = routing(report, Routing::Director)?;
    let mut parts = Vec::new();
    if let Some(origin) = routing(report, Routing::Origin) {
        parts.push(format!(
            "p99 {} against {} straight to the origin",
            format::ms(director.overall.p99_ms),
            format::ms(origin.overall.p99_ms)
        ));
    }
    if let Some(random) = routing(report, Routing::Random) {
        parts.push(format!(
            "a random edge gives {} median: being near matters as much as the cache",
            format::ms(random.overall.p50_ms)
        ));
    }
    (!parts.is_empty()).then(|| format!("At the tail, {}.", parts.join("; ")))
}

/// The simulator's own CPU, in words.
/// The run's parameters, label and value, as both reports list them.
pub fn parameters(report: &Report) -> Vec<(&'static str, String)> {
    let p = &report.params;
    let w = &p.workload;
    let mut scenario = p.scenario.name().to_owned();
    if let Some(t) = &p.scenario_target {
        scenario.push_str(&format!(" ({t})"));
    }
    vec![
        ("seed", w.seed.to_string()),
        ("clients", format::count(u64::from(w.clients))),
        (
            "requests",
            format!("{} per routing", format::count(w.requests)),
        ),
        (
            "duration",
            format!("{} per routing", format::duration(w.duration_ms)),
        ),
        (
            "popularity",
            format!("Zipf, exponent {}", format::fixed(w.zipf_s, 2)),
        ),
        ("scenario", scenario),
        ("cluster file", p.config.clone()),
        ("cluster", p.cluster.clone()),
        ("geo database", p.database.clone()),
        ("client weights", p.weights_source.clone()),
        ("started", format::utc(p.started_at_ms)),
        (
            "wall time",
            format!("{} (all routings)", format::duration(p.wall_ms)),
        ),
        ("time buckets", format::duration(p.bucket_ms)),
        ("simulator CPU", cpu(p.sim_cpu)),
    ]
}

pub fn cpu(cpu: Option<CpuUse>) -> String {
    match cpu {
        Some(c) => format!(
            "{} of CPU, {} of one core over the run (the cluster's own work not counted)",
            format::duration(c.cpu_ms),
            format::pct(Some(c.percent_of_core / 100.0))
        ),
        None => "not measured on this platform".to_owned(),
    }
}

/// `s` with its first letter in upper case.
pub fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Edge hits over the requests that reached an edge in `b` (none for the
/// straight-to-origin routing).
pub fn hit_ratio(routing: Routing, b: &Bucket) -> Option<f64> {
    let reached = b.requests.saturating_sub(b.errors);
    (routing != Routing::Origin && reached > 0).then(|| b.edge_hits as f64 / reached as f64)
}

/// What happened around an event, from the routing's timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Effect {
    /// Edge hit ratio over the buckets just before, the lowest bucket
    /// after, and when it came back within 3 points of before.
    pub hit_before: Option<f64>,
    pub hit_lowest: Option<f64>,
    pub recovered_at_ms: Option<u64>,
    /// Origin requests per second before, and at the peak after.
    pub origin_before: Option<f64>,
    pub origin_peak: Option<f64>,
    /// Failed requests from the event on (within the look-ahead).
    pub errors_after: u64,
    pub stale_after: u64,
}

/// Buckets looked at before an event, and after it (at most: up to the
/// next event).
const BEFORE: usize = 3;
const AFTER: usize = 8;

pub fn effect(result: &RoutingResult, event: &Event, bucket_ms: u64) -> Effect {
    let t = &result.timeline;
    let at = t
        .iter()
        .position(|b| b.t_ms.saturating_add(bucket_ms) > event.t_ms);
    let at = at.unwrap_or(t.len());
    let before = &t[at.saturating_sub(BEFORE)..at];
    // Up to the routing's next event, so one event's effect is not
    // another's.
    let next = result
        .events
        .iter()
        .map(|e| e.t_ms)
        .filter(|&e| e > event.t_ms)
        .min()
        .unwrap_or(u64::MAX);
    let end = t[at..]
        .iter()
        .take(AFTER)
        .take_while(|b| b.t_ms < next)
        .count();
    let after = &t[at..at + end];
    let per_second = |n: u64| n as f64 * 1000.0 / bucket_ms.max(1) as f64;
    let r = result.routing;
    let pooled = |bs: &[Bucket]| {
        let reached: u64 = bs.iter().map(|b| b.requests.saturating_sub(b.errors)).sum();
        let hits: u64 = bs.iter().map(|b| b.edge_hits).sum();
        (r != Routing::Origin && reached > 0).then(|| hits as f64 / reached as f64)
    };
    let hit_before = pooled(before);
    let lowest = after
        .iter()
        .enumerate()
        .filter_map(|(i, b)| hit_ratio(r, b).map(|h| (i, h)))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    let recovered_at_ms = match (hit_before, lowest) {
        (Some(h), Some((i, _))) => t[at + i..]
            .iter()
            .find(|b| hit_ratio(r, b).is_some_and(|x| x >= h - 0.03))
            .map(|b| b.t_ms),
        _ => None,
    };
    Effect {
        hit_before,
        hit_lowest: lowest.map(|l| l.1),
        recovered_at_ms,
        origin_before: (!before.is_empty()).then(|| {
            per_second(before.iter().map(|b| b.origin_requests).sum::<u64>()) / before.len() as f64
        }),
        origin_peak: after
            .iter()
            .map(|b| per_second(b.origin_requests))
            .max_by(f64::total_cmp),
        errors_after: after.iter().map(|b| b.errors).sum(),
        stale_after: after.iter().map(|b| b.stale).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_purge_dips_the_hit_ratio_and_it_recovers() {
        let report = super::super::example();
        let director = routing(&report, Routing::Director).expect("director");
        let purge = director
            .events
            .iter()
            .find(|e| e.what.contains("purged"))
            .expect("purge event");
        let e = effect(director, purge, report.params.bucket_ms);
        let (before, lowest) = (e.hit_before.expect("before"), e.hit_lowest.expect("lowest"));
        assert!(before > 0.8 && lowest < before - 0.2, "{e:?}");
        assert!(e.recovered_at_ms.expect("recovers") > purge.t_ms, "{e:?}");
        assert!(
            e.origin_peak.expect("peak") > e.origin_before.expect("before"),
            "{e:?}"
        );
    }

    #[test]
    fn an_event_past_the_timeline_finds_nothing_and_does_not_panic() {
        let report = super::super::example();
        let director = routing(&report, Routing::Director).expect("director");
        let late = Event {
            t_ms: u64::MAX,
            what: String::new(),
        };
        let e = effect(director, &late, 0);
        assert_eq!(e.hit_lowest, None);
        assert_eq!(e.origin_peak, None);
    }
}
