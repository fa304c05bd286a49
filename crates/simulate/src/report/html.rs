//! The page: one self-contained HTML file. Its Content-Security-Policy
//! allows inline styles and `data:` images and nothing else, so the page
//! cannot fetch anything even if a string slipped through unescaped; there
//! is no script (the Report's JSON is a data block, never run).

use std::fmt::Write as _;

use crate::model::{EdgeDown, Report, Routing, RoutingResult};

use super::format::{self, count, esc, ms, pct, pct_short};
use super::{charts, figures, map};

/// The page's policy: nothing from anywhere, inline CSS and `data:`
/// images only.
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

const STYLE: &str = include_str!("style.css");

pub fn render(report: &Report) -> String {
    let mut s = String::with_capacity(96 * 1024);
    let _ = writeln!(
        s,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<link rel=\"icon\" href=\"data:,\">\n<style>\n{STYLE}</style>\n</head>\n<body>",
        esc(&title(report))
    );
    header(&mut s, report);
    headline(&mut s, report);
    map_section(&mut s, report);
    s.push_str("<div class=\"pair\">\n");
    let _ = writeln!(
        s,
        "<section id=\"latency-panel\"><h2>Latency per request</h2>\
         <p class=\"note\">Share of requests answered within a time: the further left, the faster.</p>\
         {}{}</section>",
        charts::latency(report),
        legend_latency(report)
    );
    let _ = writeln!(
        s,
        "<section id=\"regions-panel\"><h2>Per region</h2>\
         <p class=\"note\">Median latency, and the share answered from the edge's cache.</p>\
         {}</section>",
        charts::regions(report)
    );
    s.push_str("</div>\n");
    let _ = writeln!(
        s,
        "<section id=\"timeline-panel\"><h2>Over time</h2>\
         <p class=\"note\">What reached the origin through the run, and the scenario's events{}.</p>\
         {}{}</section>",
        if report.routings.iter().any(|r| !r.events.is_empty()) {
            ""
        } else {
            " (none in this run)"
        },
        charts::timeline(report),
        legend_routings(report)
    );
    for r in &report.routings {
        if let Some(d) = &r.edge_down {
            edge_down(&mut s, r.routing, d);
        }
    }
    region_table(&mut s, report);
    parameters(&mut s, report);
    data(&mut s, report);
    s.push_str("</body>\n</html>\n");
    s
}

fn title(report: &Report) -> String {
    format!(
        "meridian simulate: {} ({} requests, seed {})",
        report.params.scenario,
        count(report.params.workload.requests),
        report.params.workload.seed
    )
}

fn header(s: &mut String, report: &Report) {
    let p = &report.params;
    let mut scenario = esc(p.scenario.name());
    if let Some(t) = &p.scenario_target {
        let _ = write!(scenario, " ({})", esc(t));
    }
    let _ = writeln!(
        s,
        "<header><h1>What the CDN buys <span>meridian simulate</span></h1>\
         <p class=\"meta\">{} requests per routing from {} clients around the world · scenario {scenario} · \
         seed {} · {}</p></header>",
        count(p.workload.requests),
        count(u64::from(p.workload.clients)),
        p.workload.seed,
        esc(&format::utc(p.started_at_ms))
    );
}

fn headline(s: &mut String, report: &Report) {
    s.push_str("<section id=\"headline\">");
    match figures::headline(report) {
        Some(line) => {
            let _ = write!(
                s,
                "<p class=\"lede\">{}.</p>",
                esc(&figures::capitalise(&line))
            );
        }
        None => s.push_str("<p class=\"lede\">No routing ran: nothing to compare.</p>"),
    }
    if let Some(line) = figures::subhead(report) {
        let _ = write!(s, "<p class=\"sub\">{}</p>", esc(&line));
    }
    s.push_str("<div class=\"cards\">");
    let origin_p50 = figures::routing(report, Routing::Origin).and_then(|o| o.overall.p50_ms);
    for r in &report.routings {
        let o = &r.overall;
        let vs = match (r.routing, format::factor(o.p50_ms, origin_p50)) {
            (Routing::Origin, _) => "the baseline: no CDN".to_owned(),
            (_, Some(f)) if f >= 1.15 => format!("{f:.1}x faster than the origin"),
            (_, Some(f)) if f > 1.0 / 1.15 => "no faster than the origin".to_owned(),
            (_, Some(f)) => format!("{:.1}x slower than the origin", 1.0 / f),
            (_, None) => String::new(),
        };
        let _ = write!(
            s,
            "<div class=\"card {}\" data-routing=\"{}\" style=\"border-top-color:{}\">\
             <h3>{}</h3><p class=\"big\">{}<small>median</small></p><p class=\"vs\">{}</p><dl>\
             <div><dt>p99</dt><dd>{}</dd></div>\
             <div><dt>origin offload</dt><dd>{}</dd></div>\
             <div><dt>edge hit ratio</dt><dd>{}</dd></div>\
             <div><dt>errors</dt><dd>{}</dd></div></dl></div>",
            charts::class(r.routing),
            charts::class(r.routing),
            charts::colour(r.routing),
            esc(r.routing.label()),
            ms(o.p50_ms),
            esc(&vs),
            ms(o.p99_ms),
            pct_short(o.offload),
            pct_short(o.edge_hit_ratio),
            count(o.errors)
        );
    }
    s.push_str("</div></section>\n");
}

fn map_section(s: &mut String, report: &Report) {
    s.push_str(
        "<section id=\"map-panel\"><h2>Where clients are, and where the director sent them</h2>",
    );
    s.push_str(&map::svg(report));
    s.push_str("<ul class=\"legend\" id=\"map-legend\">");
    s.push_str(
        "<li><svg viewBox=\"-3 -3 6 6\"><circle r=\"2\" class=\"key-place\"/></svg>clients (area by number)</li>\
         <li><svg viewBox=\"-3 -3 6 6\"><rect x=\"-1.6\" y=\"-1.6\" width=\"3.2\" height=\"3.2\" \
         transform=\"rotate(45)\" class=\"key-shield\"/></svg>shield</li>\
         <li><svg viewBox=\"-3 -3 6 6\"><rect x=\"-2\" y=\"-2\" width=\"4\" height=\"4\" class=\"key-origin\"/></svg>origin</li>",
    );
    if report.nodes.iter().any(|n| n.kind == "director") {
        s.push_str(
            "<li><svg viewBox=\"-3 -3 6 6\"><path d=\"M0 -2.2l2.2 3.8h-4.4z\" class=\"key-director\"/></svg>director</li>",
        );
    }
    for t in map::targets(report) {
        let _ = write!(
            s,
            "<li><svg viewBox=\"-3 -3 6 6\"><circle r=\"2\" fill=\"{}\"/></svg>edge {} \
             <span class=\"muted\">({} clients)</span></li>",
            t.colour,
            esc(&t.label()),
            count(map::clients_of(report, &t))
        );
    }
    s.push_str("</ul></section>\n");
}

fn legend_latency(report: &Report) -> String {
    let mut s = String::from("<ul class=\"legend\">");
    for r in &report.routings {
        let _ = write!(
            s,
            "<li><svg viewBox=\"0 0 16 6\"><line x1=\"0\" y1=\"3\" x2=\"16\" y2=\"3\" stroke=\"{}\" \
             stroke-width=\"2.5\"/></svg><b>{}</b> p50 {} · p99 {}</li>",
            charts::colour(r.routing),
            esc(format::routing_short(r.routing)),
            ms(r.overall.p50_ms),
            ms(r.overall.p99_ms)
        );
    }
    s.push_str("</ul>");
    s
}

fn legend_routings(report: &Report) -> String {
    let mut s = String::from("<ul class=\"legend\">");
    for r in &report.routings {
        let _ = write!(
            s,
            "<li><svg viewBox=\"0 0 16 6\"><line x1=\"0\" y1=\"3\" x2=\"16\" y2=\"3\" stroke=\"{}\" \
             stroke-width=\"2.5\"/></svg>{}</li>",
            charts::colour(r.routing),
            esc(r.routing.label())
        );
    }
    s.push_str("<li><svg viewBox=\"0 0 16 6\"><line x1=\"8\" y1=\"0\" x2=\"8\" y2=\"6\" class=\"event-line\"/></svg>scenario event</li></ul>");
    s
}

fn edge_down(s: &mut String, routing: Routing, d: &EdgeDown) {
    let _ = write!(
        s,
        "<section id=\"edge-down\"><h2>Edge {} stopped at {}</h2>\
         <p class=\"note\">Its {} clients under the {} routing, before and after: the director sent them \
         to the next nearest edge.</p><p class=\"shift\">median {} <span>→</span> {}</p>\
         <div class=\"pair narrow\"><table class=\"figures\"><thead><tr><th></th><th>before</th><th>after</th></tr></thead><tbody>",
        esc(&d.edge),
        esc(&format::duration(d.at_ms)),
        count(u64::from(d.clients)),
        esc(format::routing_short(routing)),
        ms(d.before.p50_ms),
        ms(d.after.p50_ms)
    );
    let rows: [(&str, String, String); 7] = [
        (
            "requests",
            count(d.before.requests),
            count(d.after.requests),
        ),
        ("latency p50", ms(d.before.p50_ms), ms(d.after.p50_ms)),
        ("latency p95", ms(d.before.p95_ms), ms(d.after.p95_ms)),
        ("latency p99", ms(d.before.p99_ms), ms(d.after.p99_ms)),
        (
            "edge hit ratio",
            pct(d.before.edge_hit_ratio),
            pct(d.after.edge_hit_ratio),
        ),
        ("errors", count(d.before.errors), count(d.after.errors)),
        ("served stale", count(d.before.stale), count(d.after.stale)),
    ];
    for (k, b, a) in rows {
        let _ = write!(
            s,
            "<tr><th>{k}</th><td>{}</td><td>{}</td></tr>",
            esc(&b),
            esc(&a)
        );
    }
    s.push_str("</tbody></table><div><h3>where they went</h3><ul class=\"moved\">");
    let most = d.moved_to.iter().map(|m| m.1).max().unwrap_or(1).max(1);
    for (edge, n) in d.moved_to.iter().take(20) {
        let _ = write!(
            s,
            "<li><span class=\"name\">{}</span><span class=\"hbar\" style=\"width:{}%\"></span>{} clients</li>",
            esc(edge),
            format::num(f64::from(*n) / f64::from(most) * 60.0),
            count(u64::from(*n))
        );
    }
    if d.moved_to.is_empty() {
        s.push_str("<li class=\"muted\">not recorded</li>");
    }
    s.push_str("</ul></div></div></section>\n");
}

fn region_table(s: &mut String, report: &Report) {
    s.push_str(
        "<section id=\"region-table\"><h2>Per region, in figures</h2><table class=\"figures wide\">\
         <thead><tr><th class=\"l\">region</th><th class=\"l\">routing</th><th>clients</th><th>requests</th><th>edge hit</th>\
         <th>shield hit</th><th>p50</th><th>p95</th><th>p99</th><th>origin requests</th><th>bytes from origin</th></tr></thead><tbody>",
    );
    for region in crate::model::Region::ALL {
        let rows: Vec<(&RoutingResult, &crate::model::RegionStats)> = report
            .routings
            .iter()
            .filter_map(|r| {
                r.regions
                    .iter()
                    .find(|g| g.region == region)
                    .map(|g| (r, g))
            })
            .collect();
        for (i, (r, g)) in rows.iter().enumerate() {
            let st = &g.stats;
            let head = if i == 0 {
                format!(
                    "<th rowspan=\"{}\">{}</th>",
                    rows.len(),
                    esc(region.label())
                )
            } else {
                String::new()
            };
            let _ = write!(
                s,
                "<tr class=\"{}\">{head}<td class=\"routing\"><i style=\"background:{}\"></i>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                if i == 0 { "first" } else { "" },
                charts::colour(r.routing),
                esc(format::routing_short(r.routing)),
                count(u64::from(g.clients)),
                count(st.requests),
                pct(st.edge_hit_ratio),
                pct(st.shield_hit_ratio),
                ms(st.p50_ms),
                ms(st.p95_ms),
                ms(st.p99_ms),
                count(st.origin_requests),
                format::bytes(st.origin_bytes)
            );
        }
    }
    s.push_str("</tbody></table></section>\n");
}

fn parameters(s: &mut String, report: &Report) {
    let rows = figures::parameters(report);
    s.push_str("<section id=\"params\"><h2>The run</h2><dl class=\"params\">");
    for (k, v) in rows {
        let _ = write!(s, "<div><dt>{k}</dt><dd>{}</dd></div>", esc(&v));
    }
    s.push_str(
        "</dl><p class=\"note how\">How the figures are made: the same seeded workload is replayed \
         against each routing, caches emptied between. Each client's leg to the server it uses is \
         delayed by the great-circle distance between them under the cluster's latency model \
         (base plus a cost per 100 km, one more round trip for a new connection), as real sleeps, \
         not arithmetic; the hops inside the cluster (edge to shield to origin) carry the same \
         model. Latency is measured per request at the client; hit and origin figures come from \
         each response's <code>Cache-Status</code>, and the origin's own count is kept beside them.</p></section>\n",
    );
}

/// The whole Report as JSON, for anyone who wants the numbers. `<`, `>`
/// and `&` (only ever inside JSON strings) are written as `\u003c` and
/// the like, so no string can close the element.
fn data(s: &mut String, report: &Report) {
    let json = serde_json::to_string(report).unwrap_or_else(|_| "null".into());
    let json = json
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    let _ = writeln!(
        s,
        "<script type=\"application/json\" id=\"report-data\">{json}</script>"
    );
}
