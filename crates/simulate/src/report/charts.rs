//! The charts, as inline SVG in pixel units: the latency distribution of
//! each routing (CDFs on a log axis), hit ratio and median latency per
//! region, and the run over time (origin requests, hit ratio, failures,
//! with the scenario's events marked).

use std::fmt::Write as _;

use crate::model::{Region, Report, Routing, RoutingResult};

use super::figures;
use super::format::{self, esc, num, pct_short};

/// At most this many time buckets are drawn per routing.
pub const MAX_BUCKETS: usize = 2_000;
/// At most this many event markers are drawn.
pub const MAX_EVENTS: usize = 50;

/// The colour of each routing, everywhere on the page.
pub fn colour(r: Routing) -> &'static str {
    match r {
        Routing::Director => "#0a7f6f",
        Routing::Random => "#c77800",
        Routing::Origin => "#b3261e",
    }
}

pub fn class(r: Routing) -> &'static str {
    match r {
        Routing::Director => "director",
        Routing::Random => "random",
        Routing::Origin => "origin",
    }
}

/// A log-10 axis from `lo` to `hi` (both powers of ten) onto `a..b`.
struct Log {
    lo: f64,
    hi: f64,
    a: f64,
    b: f64,
}

impl Log {
    /// The decades around `min..=max` (positive, finite).
    fn around(min: f64, max: f64, a: f64, b: f64) -> Log {
        let lo = 10f64.powf(min.max(1e-3).log10().floor());
        let mut hi = 10f64.powf(max.max(lo).log10().ceil());
        if hi <= lo {
            hi = lo * 10.0;
        }
        Log { lo, hi, a, b }
    }
    fn at(&self, v: f64) -> f64 {
        let v = if v.is_finite() {
            v.clamp(self.lo, self.hi)
        } else {
            self.lo
        };
        let f = (v.log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10());
        self.a + f * (self.b - self.a)
    }
    /// 1, 2, 5 per decade.
    fn ticks(&self) -> Vec<(f64, bool)> {
        let mut out = Vec::new();
        let mut d = self.lo;
        while d <= self.hi * 1.0001 && out.len() < 40 {
            for (m, major) in [(1.0, true), (2.0, false), (5.0, false)] {
                if d * m <= self.hi * 1.0001 {
                    out.push((d * m, major));
                }
            }
            d *= 10.0;
        }
        out
    }
}

fn tick_label(v: f64) -> String {
    if v < 1.0 {
        format!("{v}")
    } else {
        format::count(v.round() as u64)
    }
}

fn empty(id: &str, w: u32, h: u32, what: &str) -> String {
    format!(
        "<svg id=\"{id}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{what}\">\
         <text class=\"empty\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">no requests</text></svg>",
        w / 2,
        h / 2
    )
}

/// The three CDFs (`cdf_ms`) on a log latency axis, p50 and p99 marked.
pub fn latency(report: &Report) -> String {
    let (w, h) = (620.0, 340.0);
    let (left, right, top, bottom) = (56.0, 604.0, 14.0, 290.0);
    let finite = |v: &&f64| v.is_finite() && **v > 0.0;
    let values: Vec<f64> = report
        .routings
        .iter()
        .flat_map(|r| r.cdf_ms.iter().filter(finite).copied())
        .collect();
    let (Some(min), Some(max)) = (
        values.iter().copied().reduce(f64::min),
        values.iter().copied().reduce(f64::max),
    ) else {
        return empty("latency", 620, 340, "latency distribution per routing");
    };
    let x = Log::around(min, max, left, right);
    let y = |p: f64| bottom - p / 100.0 * (bottom - top);
    let mut s = format!(
        "<svg id=\"latency\" viewBox=\"0 0 {w} {h}\" role=\"img\" \
         aria-label=\"latency distribution per routing\">"
    );
    s.push_str("<g class=\"grid\">");
    for (v, major) in x.ticks() {
        let px = num(x.at(v));
        let _ = write!(
            s,
            "<line class=\"{}\" x1=\"{px}\" y1=\"{top}\" x2=\"{px}\" y2=\"{bottom}\"/>\
             <text class=\"tick\" x=\"{px}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            if major { "major" } else { "minor" },
            bottom + 14.0,
            tick_label(v)
        );
    }
    for p in [0.0, 25.0, 50.0, 75.0, 100.0] {
        let py = num(y(p));
        let _ = write!(
            s,
            "<line class=\"minor\" x1=\"{left}\" y1=\"{py}\" x2=\"{right}\" y2=\"{py}\"/>\
             <text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{p}%</text>",
            left - 5.0,
            num(y(p) + 4.0)
        );
    }
    for (p, label) in [(50.0, "p50"), (99.0, "p99")] {
        let py = num(y(p));
        let _ = write!(
            s,
            "<line class=\"quantile\" x1=\"{left}\" y1=\"{py}\" x2=\"{right}\" y2=\"{py}\"/>\
             <text class=\"tick q\" x=\"{}\" y=\"{}\">{label}</text>",
            left + 4.0,
            num(y(p) - 3.0)
        );
    }
    s.push_str("</g>");
    let _ = write!(
        s,
        "<text class=\"axis\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">latency of a request, ms (log scale)</text>",
        (left + right) / 2.0,
        h - 12.0
    );
    for r in &report.routings {
        let n = r.cdf_ms.len();
        if n < 2 {
            continue;
        }
        let points: Vec<String> = r
            .cdf_ms
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(i, v)| {
                format!(
                    "{},{}",
                    num(x.at(*v)),
                    num(y(i as f64 * 100.0 / (n - 1) as f64))
                )
            })
            .collect();
        let _ = write!(
            s,
            "<polyline class=\"cdf {}\" data-routing=\"{}\" fill=\"none\" stroke=\"{}\" points=\"{}\"/>",
            class(r.routing),
            class(r.routing),
            colour(r.routing),
            points.join(" ")
        );
        for (p, v) in [(50.0, r.overall.p50_ms), (99.0, r.overall.p99_ms)] {
            if let Some(v) = v.filter(|v| v.is_finite()) {
                let _ = write!(
                    s,
                    "<circle class=\"q-mark\" cx=\"{}\" cy=\"{}\" r=\"3.5\" fill=\"{}\">\
                     <title>{}: p{p} {}</title></circle>",
                    num(x.at(v)),
                    num(y(p)),
                    colour(r.routing),
                    esc(r.routing.label()),
                    format::ms(Some(v))
                );
            }
        }
    }
    s.push_str("</svg>");
    s
}

/// Per region: median latency of each routing and the edge hit ratio of
/// the routings with edges, as bars.
pub fn regions(report: &Report) -> String {
    let regions: Vec<Region> = Region::ALL
        .into_iter()
        .filter(|g| {
            report
                .routings
                .iter()
                .any(|r| r.regions.iter().any(|s| s.region == *g))
        })
        .collect();
    if regions.is_empty() {
        return empty("regions", 620, 120, "hit ratio and latency per region");
    }
    let bar = 10.0;
    let row = report.routings.len().max(1) as f64 * (bar + 2.0) + 14.0;
    let head = 30.0;
    let (w, h) = (620.0, head + row * regions.len() as f64);
    let (lat_a, lat_b) = (120.0, 370.0);
    let (hit_a, hit_b) = (410.0, 580.0);
    let max_p50 = report
        .routings
        .iter()
        .flat_map(|r| r.regions.iter().filter_map(|s| s.stats.p50_ms))
        .filter(|v| v.is_finite())
        .fold(1.0, f64::max);
    let mut s = format!(
        "<svg id=\"regions\" viewBox=\"0 0 {w} {}\" role=\"img\" \
         aria-label=\"median latency and edge hit ratio per region and routing\">",
        num(h)
    );
    let _ = write!(
        s,
        "<text class=\"colhead\" x=\"{lat_a}\" y=\"16\">median latency</text>\
         <text class=\"colhead\" x=\"{hit_a}\" y=\"16\">edge hit ratio</text>"
    );
    for (k, g) in regions.iter().enumerate() {
        let y0 = head + k as f64 * row;
        let _ = write!(
            s,
            "<g class=\"region\" data-region=\"{}\"><text class=\"rname\" x=\"0\" y=\"{}\">{}</text>",
            esc(&format!("{g:?}").to_lowercase()),
            num(y0 + row / 2.0 - 2.0),
            esc(g.label())
        );
        for (i, r) in report.routings.iter().enumerate() {
            let Some(st) = r.regions.iter().find(|s| s.region == *g).map(|s| &s.stats) else {
                continue;
            };
            let by = y0 + i as f64 * (bar + 2.0);
            if let Some(p50) = st.p50_ms.filter(|v| v.is_finite() && *v >= 0.0) {
                let bw = (p50 / max_p50).min(1.0) * (lat_b - lat_a - 50.0);
                let _ = write!(
                    s,
                    "<rect class=\"bar {}\" x=\"{lat_a}\" y=\"{}\" width=\"{}\" height=\"{bar}\" fill=\"{}\">\
                     <title>{}, {}: median {}</title></rect>\
                     <text class=\"val\" x=\"{}\" y=\"{}\">{}</text>",
                    class(r.routing),
                    num(by),
                    num(bw.max(0.5)),
                    colour(r.routing),
                    esc(g.label()),
                    esc(r.routing.label()),
                    format::ms(Some(p50)),
                    num(lat_a + bw + 4.0),
                    num(by + bar - 1.0),
                    format::ms(Some(p50))
                );
            }
            match st.edge_hit_ratio.filter(|v| v.is_finite()) {
                Some(hit) => {
                    let bw = hit.clamp(0.0, 1.0) * (hit_b - hit_a);
                    let _ = write!(
                        s,
                        "<rect class=\"track\" x=\"{hit_a}\" y=\"{}\" width=\"{}\" height=\"{bar}\"/>\
                         <rect class=\"bar {}\" x=\"{hit_a}\" y=\"{}\" width=\"{}\" height=\"{bar}\" fill=\"{}\"/>\
                         <text class=\"val\" x=\"{}\" y=\"{}\">{}</text>",
                        num(by),
                        num(hit_b - hit_a),
                        class(r.routing),
                        num(by),
                        num(bw),
                        colour(r.routing),
                        num(hit_b + 4.0),
                        num(by + bar - 1.0),
                        pct_short(Some(hit))
                    );
                }
                None => {
                    let _ = write!(
                        s,
                        "<text class=\"val muted\" x=\"{hit_a}\" y=\"{}\">no cache</text>",
                        num(by + bar - 1.0)
                    );
                }
            }
        }
        s.push_str("</g>");
    }
    s.push_str("</svg>");
    s
}

/// Origin requests per second of each routing (log scale), the edge hit
/// ratio of the routings with edges, failures and stale answers when
/// there are any, and the scenario's events as vertical markers.
pub fn timeline(report: &Report) -> String {
    let bucket_ms = report.params.bucket_ms.max(1);
    let per_s = |n: u64| n as f64 * 1000.0 / bucket_ms as f64;
    let runs: Vec<&RoutingResult> = report
        .routings
        .iter()
        .filter(|r| !r.timeline.is_empty())
        .collect();
    let end_ms = runs
        .iter()
        .flat_map(|r| r.timeline.iter().take(MAX_BUCKETS))
        .map(|b| b.t_ms.saturating_add(bucket_ms))
        .max();
    let Some(end_ms) = end_ms else {
        return empty("timeline", 1200, 200, "the run over time");
    };
    let failures = runs
        .iter()
        .any(|r| r.timeline.iter().any(|b| b.errors > 0 || b.stale > 0));
    let (left, right) = (64.0, 1120.0);
    let (o_top, o_bottom) = (40.0, 200.0);
    let (h_top, h_bottom) = (236.0, 326.0);
    let (f_top, f_bottom) = (362.0, 422.0);
    let h = if failures {
        f_bottom + 34.0
    } else {
        h_bottom + 34.0
    };
    let x = |t: f64| left + t / end_ms as f64 * (right - left);
    let max_origin = runs
        .iter()
        .flat_map(|r| r.timeline.iter().take(MAX_BUCKETS))
        .map(|b| per_s(b.origin_requests))
        .fold(1.0, f64::max);
    let oy = Log::around(1.0, max_origin, o_bottom, o_top);
    let hy = |v: f64| h_bottom - v.clamp(0.0, 1.0) * (h_bottom - h_top);
    let mut s = format!(
        "<svg id=\"timeline\" viewBox=\"0 0 1200 {}\" role=\"img\" aria-label=\"the run over time\">",
        num(h)
    );
    // Plot titles and axes.
    let _ = write!(
        s,
        "<text class=\"colhead\" x=\"{left}\" y=\"{}\">origin requests per second (log scale)</text>\
         <text class=\"colhead\" x=\"{left}\" y=\"{}\">edge hit ratio</text>",
        o_top - 8.0,
        h_top - 8.0
    );
    s.push_str("<g class=\"grid\">");
    for (v, major) in oy.ticks() {
        if !major && oy.hi / oy.lo > 1000.0 {
            continue;
        }
        let py = num(oy.at(v));
        let _ = write!(
            s,
            "<line class=\"{}\" x1=\"{left}\" y1=\"{py}\" x2=\"{right}\" y2=\"{py}\"/>\
             <text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            if major { "major" } else { "minor" },
            left - 6.0,
            num(oy.at(v) + 4.0),
            tick_label(v)
        );
    }
    for v in [0.0, 0.5, 1.0] {
        let py = num(hy(v));
        let _ = write!(
            s,
            "<line class=\"minor\" x1=\"{left}\" y1=\"{py}\" x2=\"{right}\" y2=\"{py}\"/>\
             <text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            left - 6.0,
            num(hy(v) + 4.0),
            pct_short(Some(v))
        );
    }
    let step = nice_step(end_ms as f64 / 1000.0 / 10.0);
    let mut t = 0.0;
    let bottom = if failures { f_bottom } else { h_bottom };
    while t * 1000.0 <= end_ms as f64 && t / step < 60.0 {
        let px = num(x(t * 1000.0));
        let _ = write!(
            s,
            "<line class=\"minor\" x1=\"{px}\" y1=\"{o_top}\" x2=\"{px}\" y2=\"{bottom}\"/>\
             <text class=\"tick\" x=\"{px}\" y=\"{}\" text-anchor=\"middle\">{t} s</text>",
            bottom + 15.0
        );
        t += step;
    }
    s.push_str("</g>");
    events(&mut s, report, &x, (o_top - 22.0, bottom), bucket_ms);
    for r in &runs {
        let buckets = || r.timeline.iter().take(MAX_BUCKETS);
        let mid = |t_ms: u64| x(t_ms as f64 + bucket_ms as f64 / 2.0);
        let origin: Vec<String> = buckets()
            .map(|b| {
                format!(
                    "{},{}",
                    num(mid(b.t_ms)),
                    num(oy.at(per_s(b.origin_requests)))
                )
            })
            .collect();
        let _ = write!(
            s,
            "<polyline class=\"origin-line {}\" data-routing=\"{}\" fill=\"none\" stroke=\"{}\" points=\"{}\"/>",
            class(r.routing),
            class(r.routing),
            colour(r.routing),
            origin.join(" ")
        );
        let hits: Vec<String> = buckets()
            .filter_map(|b| figures::hit_ratio(r.routing, b).map(|v| (b.t_ms, v)))
            .map(|(t, v)| format!("{},{}", num(mid(t)), num(hy(v))))
            .collect();
        if !hits.is_empty() {
            let _ = write!(
                s,
                "<polyline class=\"hit-line {}\" data-routing=\"{}\" fill=\"none\" stroke=\"{}\" points=\"{}\"/>",
                class(r.routing),
                class(r.routing),
                colour(r.routing),
                hits.join(" ")
            );
        }
    }
    end_labels(&mut s, &runs, |v| oy.at(v), per_s, right + 6.0);
    if failures {
        failure_bars(&mut s, &runs, &x, bucket_ms, (f_top, f_bottom));
    }
    s.push_str("</svg>");
    s
}

/// Each routing's last origin requests per second at the right end of
/// its line, moved apart to stay readable.
fn end_labels(
    s: &mut String,
    runs: &[&RoutingResult],
    y: impl Fn(f64) -> f64,
    per_s: impl Fn(u64) -> f64,
    x: f64,
) {
    let mut labels: Vec<(f64, Routing, f64)> = runs
        .iter()
        .filter_map(|r| {
            r.timeline
                .iter()
                .take(MAX_BUCKETS)
                .next_back()
                .map(|b| (r, b))
        })
        .map(|(r, b)| {
            let v = per_s(b.origin_requests);
            (y(v) + 4.0, r.routing, v)
        })
        .collect();
    labels.sort_by(|a, b| a.0.total_cmp(&b.0));
    for i in 1..labels.len() {
        if labels[i].0 < labels[i - 1].0 + 12.0 {
            labels[i].0 = labels[i - 1].0 + 12.0;
        }
    }
    for (ly, routing, v) in labels {
        let _ = write!(
            s,
            "<text class=\"end-label\" x=\"{x}\" y=\"{}\" fill=\"{}\">{}/s</text>",
            num(ly),
            colour(routing),
            format::count(v.round() as u64)
        );
    }
}

/// Failed requests (solid) and stale answers (pale) per bucket, one bar
/// per routing side by side.
fn failure_bars(
    s: &mut String,
    runs: &[&RoutingResult],
    x: &dyn Fn(f64) -> f64,
    bucket_ms: u64,
    (top, bottom): (f64, f64),
) {
    let _ = write!(
        s,
        "<text class=\"colhead\" x=\"64\" y=\"{}\">failed requests (solid) and stale answers (pale) per bucket</text>",
        top - 8.0
    );
    let max = runs
        .iter()
        .flat_map(|r| r.timeline.iter().take(MAX_BUCKETS))
        .map(|b| b.errors.max(b.stale))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let _ = write!(
        s,
        "<line class=\"axisline\" x1=\"64\" y1=\"{bottom}\" x2=\"1120\" y2=\"{bottom}\"/>\
         <text class=\"tick\" x=\"58\" y=\"{}\" text-anchor=\"end\">{}</text>",
        num(top + 4.0),
        format::count(max as u64)
    );
    let width = (x(bucket_ms as f64) - x(0.0)) / (runs.len() as f64 * 2.0 + 1.0);
    for (k, r) in runs.iter().enumerate() {
        for b in r.timeline.iter().take(MAX_BUCKETS) {
            for (n, pale, what) in [(b.errors, false, "failed"), (b.stale, true, "stale")] {
                if n == 0 {
                    continue;
                }
                let bh = n as f64 / max * (bottom - top);
                let bx =
                    x(b.t_ms as f64) + width * (0.5 + 2.0 * k as f64 + f64::from(u8::from(pale)));
                let _ = write!(
                    s,
                    "<rect class=\"{} {}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"{}>\
                     <title>{}: {n} {what} at {}</title></rect>",
                    if pale { "stale" } else { "failed" },
                    class(r.routing),
                    num(bx),
                    num(bottom - bh),
                    num(width.max(0.8)),
                    num(bh),
                    colour(r.routing),
                    if pale { " fill-opacity=\"0.4\"" } else { "" },
                    esc(r.routing.label()),
                    format::duration(b.t_ms)
                );
            }
        }
    }
}

/// Each distinct event as a dashed vertical line with its label on top,
/// labels moved down a row when they would overlap.
fn events(
    s: &mut String,
    report: &Report,
    x: &dyn Fn(f64) -> f64,
    (label_y, bottom): (f64, f64),
    near_ms: u64,
) {
    // Each routing has its own events: the same one a few milliseconds
    // apart in each is one marker.
    let mut seen: Vec<(u64, &str)> = Vec::new();
    for r in &report.routings {
        for e in &r.events {
            let same = |(t, w): &(u64, &str)| *w == e.what && t.abs_diff(e.t_ms) <= near_ms;
            if !seen.iter().any(same) && seen.len() < MAX_EVENTS {
                seen.push((e.t_ms, &e.what));
            }
        }
    }
    seen.sort_by_key(|(t, _)| *t);
    let mut rows: Vec<f64> = Vec::new(); // right end of the last label in each row
    for (t, what) in seen {
        let px = x(t as f64).min(1120.0);
        let label = format!("{} {}", format::duration(t), format::truncate(what, 60));
        let width = label.chars().count() as f64 * 6.4;
        let row = rows.iter().position(|&end| end < px).unwrap_or(rows.len());
        if row == rows.len() {
            rows.push(0.0);
        }
        rows[row] = px + width + 8.0;
        let ly = label_y + row as f64 * 13.0;
        let _ = write!(
            s,
            "<g class=\"event\"><line class=\"event-line\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{bottom}\"/>\
             <text class=\"event-label\" x=\"{}\" y=\"{}\">{}</text></g>",
            num(px),
            num(ly + 3.0),
            num(px),
            num(px + 3.0),
            num(ly),
            esc(&label)
        );
    }
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if !raw.is_finite() || raw <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|v| *v >= raw)
        .unwrap_or(10.0 * p)
}
