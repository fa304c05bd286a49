//! The tables `meridian simulate` prints at the end: the routings side by
//! side, then per region, the scenario's effect, the parameters. Plain
//! ASCII (anything else from the data prints as `?`, so no name can move
//! a terminal's cursor), aligned columns, at most [`WIDTH`] columns.

use crate::model::{Report, Routing, RoutingResult, Stats};

use super::figures;
use super::format::{self, NONE, count, ms, pct};

/// The widest line printed.
pub const WIDTH: usize = 100;

/// At most this many events are listed per routing.
const MAX_EVENTS: usize = 50;

/// The widest name (node, country, path) in a table cell.
const CELL: usize = 24;

pub fn render(report: &Report) -> String {
    let mut out = String::new();
    title(&mut out, report);
    headline(&mut out, report);
    regions(&mut out, report);
    scenario(&mut out, report);
    parameters(&mut out, report);
    out
}

fn title(out: &mut String, report: &Report) {
    let p = &report.params;
    let mut scenario = p.scenario.to_string();
    if let Some(t) = &p.scenario_target {
        scenario.push_str(&format!(" ({})", clean(t, CELL)));
    }
    wrap(
        out,
        "",
        &format!(
            "meridian simulate: {} requests x 3 routings, {} clients, scenario {scenario}, seed {}",
            count(p.workload.requests),
            count(u64::from(p.workload.clients)),
            p.workload.seed
        ),
    );
    out.push('\n');
}

fn headline(out: &mut String, report: &Report) {
    let results: Vec<&RoutingResult> = report.routings.iter().collect();
    if results.is_empty() {
        out.push_str("No routing ran: nothing to report.\n\n");
        return;
    }
    // The routings' names over two lines: "nearest edge" / "(director)".
    let head = |line: usize| {
        std::iter::once(String::new())
            .chain(results.iter().map(|r| {
                let (a, b) = match r.routing {
                    Routing::Director => ("nearest edge", "(director)"),
                    Routing::Random => ("random edge", ""),
                    Routing::Origin => ("straight to", "origin"),
                };
                if line == 0 { a } else { b }.to_owned()
            }))
            .collect::<Vec<String>>()
    };
    let mut rows: Vec<Vec<String>> = vec![head(0), head(1)];
    type Figure = fn(&RoutingResult) -> String;
    let figures: [(&str, Figure); 14] = [
        ("requests", |r| count(r.overall.requests)),
        ("latency p50", |r| ms(r.overall.p50_ms)),
        ("latency p95", |r| ms(r.overall.p95_ms)),
        ("latency p99", |r| ms(r.overall.p99_ms)),
        ("edge hit ratio", |r| pct(r.overall.edge_hit_ratio)),
        ("shield hit ratio", |r| pct(r.overall.shield_hit_ratio)),
        ("origin requests", |r| count(r.overall.origin_requests)),
        ("origin offload", |r| pct(r.overall.offload)),
        ("bytes from origin", |r| {
            format::bytes(r.overall.origin_bytes)
        }),
        ("origin counted", |r| count(r.origin_counted.requests)),
        ("bytes to clients", |r| {
            format::bytes(r.overall.client_bytes)
        }),
        ("errors", |r| count(r.overall.errors)),
        ("served stale", |r| count(r.overall.stale)),
        ("director resolve p50", |r| ms(r.resolve_p50_ms)),
    ];
    for (label, f) in figures {
        rows.push(
            std::iter::once(label.to_owned())
                .chain(results.iter().map(|r| f(r)))
                .collect(),
        );
    }
    table(out, &rows, &[false, true, true, true]);
    if let Some(line) = figures::headline(report) {
        out.push('\n');
        wrap(out, "  ", &format!("{line}."));
    }
    out.push_str(
        "  (origin counted: requests the origin itself saw, revalidations and refreshes included)\n\n",
    );
}

fn regions(out: &mut String, report: &Report) {
    out.push_str("Per region\n");
    let mut rows = vec![
        [
            "region",
            "routing",
            "clients",
            "requests",
            "edge hit",
            "shield hit",
            "p50 ms",
            "p95 ms",
            "p99 ms",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for region in crate::model::Region::ALL {
        let mut first = true;
        for r in &report.routings {
            let Some(rs) = r.regions.iter().find(|s| s.region == region) else {
                continue;
            };
            let s: &Stats = &rs.stats;
            rows.push(vec![
                if first {
                    region.label().to_owned()
                } else {
                    String::new()
                },
                format::routing_short(r.routing).to_owned(),
                count(u64::from(rs.clients)),
                count(s.requests),
                pct(s.edge_hit_ratio),
                pct(s.shield_hit_ratio),
                ms_bare(s.p50_ms),
                ms_bare(s.p95_ms),
                ms_bare(s.p99_ms),
            ]);
            first = false;
        }
    }
    if rows.len() == 1 {
        out.push_str("  no clients\n\n");
        return;
    }
    let right = [false, false, true, true, true, true, true, true, true];
    table(out, &rows, &right);
    out.push('\n');
}

fn scenario(out: &mut String, report: &Report) {
    let p = &report.params;
    let mut head = format!("Scenario: {}", p.scenario);
    if let Some(t) = &p.scenario_target {
        head.push_str(&format!(" ({})", clean(t, 60)));
    }
    out.push_str(&head);
    out.push('\n');
    let mut any = false;
    for r in &report.routings {
        for e in r.events.iter().take(MAX_EVENTS) {
            any = true;
            let effect = figures::effect(r, e, p.bucket_ms);
            wrap(
                out,
                "  ",
                &format!(
                    "{:<12} at {:>7}  {}",
                    format::routing_short(r.routing),
                    format::duration(e.t_ms),
                    clean(&e.what, 70)
                ),
            );
            let pad = "                ";
            if effect.hit_before.is_some() || effect.hit_lowest.is_some() {
                let line = match (effect.hit_before, effect.hit_lowest) {
                    (Some(b), Some(l)) if l < b - 0.03 => {
                        let back = effect.recovered_at_ms.map_or(String::new(), |t| {
                            format!(", back by {}", format::duration(t))
                        });
                        format!(
                            "edge hit ratio {} before, {} at the lowest{back}",
                            pct(Some(b)),
                            pct(Some(l))
                        )
                    }
                    (b, _) => format!("edge hit ratio {} before, no dip after", pct(b)),
                };
                wrap(out, pad, &line);
            }
            let per_s = |v: Option<f64>| v.map_or(NONE.to_owned(), |v| format!("{v:.0}/s"));
            let mut line = format!(
                "origin requests {} before, {} at the peak",
                per_s(effect.origin_before),
                per_s(effect.origin_peak)
            );
            if effect.errors_after > 0 || effect.stale_after > 0 {
                line.push_str(&format!(
                    "; {} failed, {} served stale after",
                    count(effect.errors_after),
                    count(effect.stale_after)
                ));
            }
            wrap(out, pad, &line);
        }
    }
    if !any {
        out.push_str("  no events\n");
    }
    for r in &report.routings {
        if let Some(d) = &r.edge_down {
            edge_down(out, r.routing, d);
        }
    }
    out.push('\n');
}

fn edge_down(out: &mut String, routing: Routing, d: &crate::model::EdgeDown) {
    let moved: Vec<String> = d
        .moved_to
        .iter()
        .take(8)
        .map(|(e, n)| format!("{} ({})", clean(e, CELL), count(u64::from(*n))))
        .collect();
    let moved = if moved.is_empty() {
        "nowhere recorded".to_owned()
    } else {
        moved.join(", ")
    };
    out.push('\n');
    wrap(
        out,
        "  ",
        &format!(
            "{} stopped at {} ({}): its {} clients moved to {moved}",
            clean(&d.edge, CELL),
            format::duration(d.at_ms),
            format::routing_short(routing),
            count(u64::from(d.clients)),
        ),
    );
    let rows = vec![
        vec!["".into(), "before".into(), "after".into()],
        vec![
            "requests".into(),
            count(d.before.requests),
            count(d.after.requests),
        ],
        vec![
            "latency p50".into(),
            ms(d.before.p50_ms),
            ms(d.after.p50_ms),
        ],
        vec![
            "latency p95".into(),
            ms(d.before.p95_ms),
            ms(d.after.p95_ms),
        ],
        vec![
            "latency p99".into(),
            ms(d.before.p99_ms),
            ms(d.after.p99_ms),
        ],
        vec![
            "edge hit ratio".into(),
            pct(d.before.edge_hit_ratio),
            pct(d.after.edge_hit_ratio),
        ],
        vec![
            "errors".into(),
            count(d.before.errors),
            count(d.after.errors),
        ],
    ];
    table(out, &rows, &[false, true, true]);
}

fn parameters(out: &mut String, report: &Report) {
    out.push_str("Parameters\n");
    let rows = figures::parameters(report);
    for (k, v) in rows {
        wrap(out, &format!("  {k:<16}"), &clean(&v, 200));
    }
}

/// [`ms`] without the unit (the column head has it).
fn ms_bare(v: Option<f64>) -> String {
    v.map_or(NONE.to_owned(), format::ms_number)
}

/// `s` as plain printable ASCII (anything else as `?`), at most `max`
/// characters (cut with `...`).
pub fn clean(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if out.len() > max && max > 3 {
        out.truncate(max - 3);
        out.push_str("...");
    }
    out
}

/// Rows as columns two spaces apart, indented two; `right[i]` aligns
/// column `i` to the right. Cells are plain ASCII already.
fn table(out: &mut String, rows: &[Vec<String>], right: &[bool]) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(String::len)
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::from(" ");
        for (c, cell) in row.iter().enumerate() {
            let w = widths[c];
            line.push(' ');
            if right.get(c).copied().unwrap_or(true) {
                line.push_str(&format!(" {cell:>w$}"));
            } else {
                line.push_str(&format!(" {cell:<w$}"));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

/// `text` after `lead`, wrapped at spaces to [`WIDTH`], continuation lines
/// indented as far as `lead`. Long words are cut.
fn wrap(out: &mut String, lead: &str, text: &str) {
    let indent = " ".repeat(lead.len());
    let room = WIDTH.saturating_sub(lead.len()).max(20);
    let mut line = lead.to_owned();
    let mut used = 0;
    for word in text.split(' ') {
        let word: String = word.chars().take(room).collect();
        if used > 0 && used + 1 + word.len() > room {
            out.push_str(line.trim_end());
            out.push('\n');
            line = indent.clone();
            used = 0;
        }
        if used > 0 {
            line.push(' ');
            used += 1;
        }
        line.push_str(&word);
        used += word.len();
    }
    out.push_str(line.trim_end());
    out.push('\n');
}
