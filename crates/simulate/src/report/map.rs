//! The world map: land from the dashboard's polygons (x = longitude,
//! y = −latitude, so the SVG's user units are degrees), client places as
//! circles with area by clients, a line from each place to the edge the
//! director chose, coloured per edge, and the nodes as distinct marks:
//! edges circles, shields diamonds, the origin a square, the director a
//! triangle. Nodes at one place (Ashburn holds two edges, a shield and
//! the origin) are drawn side by side with their labels stacked, and
//! labels are moved off each other.

use meridian_cluster::dashboard::world;

use crate::model::Report;

use super::format::{count, esc, num};

/// The visible part of the world, degrees: 78° N to 58° S.
pub const VIEW: (f64, f64, f64, f64) = (-170.0, -78.0, 352.0, 136.0);

/// At most this many places and routes are drawn (the largest first); a
/// geo database of country centres gives a few hundred.
pub const MAX_PLACES: usize = 2_000;
pub const MAX_ROUTES: usize = 2_000;
/// At most this many nodes are drawn.
pub const MAX_NODES: usize = 200;

/// Edge colours, in the order of the report's edges; routes to an edge
/// the report does not list are grey.
pub const EDGE_COLOURS: [&str; 10] = [
    "#1f6fb2", "#b5367b", "#2e8b57", "#d4860b", "#00838f", "#8e44ad", "#5d6d1e", "#c8402f",
    "#6d4c41", "#3949ab",
];
const UNKNOWN: &str = "#8a8f98";

/// Label size, degrees.
const FONT: f64 = 3.1;
/// Marks at the same place (closer than this, degrees) are one group.
const SAME_PLACE: f64 = 1.5;
/// Distance between the marks of a group, degrees.
const SPREAD: f64 = 2.3;

/// A node ready to draw: where its mark goes.
struct Mark<'a> {
    name: &'a str,
    kind: &'a str,
    region: &'a str,
    x: f64,
    y: f64,
    colour: &'static str,
}

/// Where the director sends clients: an edge, or a region whose edges
/// share one address (the director names the region, and the region's
/// balancer picks the edge). One colour each.
pub struct Target<'a> {
    /// The region (or the edge's name when it has none).
    pub key: &'a str,
    /// Its edges, in the report's order.
    pub edges: Vec<&'a str>,
    pub colour: &'static str,
}

impl Target<'_> {
    /// Whether a route's `edge` (an edge's name or a region) is this one.
    pub fn matches(&self, edge: &str) -> bool {
        self.key == edge || self.edges.contains(&edge)
    }

    /// `us-east-1 + us-east-2`.
    pub fn label(&self) -> String {
        self.edges.join(" + ")
    }
}

/// The report's edges grouped by region, in order of first appearance.
pub fn targets(report: &Report) -> Vec<Target<'_>> {
    let mut out: Vec<Target> = Vec::new();
    for n in report.nodes.iter().filter(|n| n.kind == "edge") {
        let key = if n.region.is_empty() {
            n.name.as_str()
        } else {
            n.region.as_str()
        };
        match out.iter_mut().find(|t| t.key == key) {
            Some(t) => t.edges.push(&n.name),
            None => {
                let colour = EDGE_COLOURS[out.len() % EDGE_COLOURS.len()];
                out.push(Target {
                    key,
                    edges: vec![&n.name],
                    colour,
                });
            }
        }
    }
    out
}

/// Clients the director sent to `target`.
pub fn clients_of(report: &Report, target: &Target) -> u64 {
    report
        .routes
        .iter()
        .filter(|r| target.matches(&r.edge))
        .map(|r| u64::from(r.clients))
        .sum()
}

fn on_globe(lat: f64, lon: f64) -> bool {
    lat.is_finite() && lon.is_finite() && lat.abs() <= 90.0 && lon.abs() <= 180.0
}

pub fn svg(report: &Report) -> String {
    let targets = targets(report);
    let groups = groups(report, &targets);
    let (vx, vy, vw, vh) = VIEW;
    let mut s = format!(
        "<svg id=\"map\" viewBox=\"{} {} {} {}\" role=\"img\" \
         aria-label=\"the cluster's nodes, where clients are and which edge the director sent them to\">",
        num(vx),
        num(vy),
        num(vw),
        num(vh)
    );
    s.push_str(&format!(
        "<rect class=\"sea\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/>",
        num(vx),
        num(vy),
        num(vw),
        num(vh)
    ));
    s.push_str("<g class=\"graticule\">");
    for lon in (-150..=180).step_by(30) {
        s.push_str(&format!(
            "<line x1=\"{lon}\" y1=\"{vy}\" x2=\"{lon}\" y2=\"{}\"/>",
            vy + vh
        ));
    }
    for lat in (-60..=60).step_by(30) {
        s.push_str(&format!(
            "<line x1=\"{vx}\" y1=\"{lat}\" x2=\"{}\" y2=\"{lat}\"/>",
            vx + vw
        ));
    }
    s.push_str("</g>");
    s.push_str(&format!(
        "<path class=\"land\" d=\"{}\"/><path class=\"water\" d=\"{}\"/>",
        world::land(),
        world::water()
    ));
    routes(&mut s, report, &targets, &groups);
    places(&mut s, report);
    nodes(&mut s, &groups);
    s.push_str("</svg>");
    s
}

fn routes(s: &mut String, report: &Report, targets: &[Target], groups: &[Vec<Mark>]) {
    let mut routes: Vec<_> = report
        .routes
        .iter()
        .filter(|r| on_globe(r.latitude, r.longitude))
        .collect();
    routes.sort_by_key(|r| std::cmp::Reverse(r.clients));
    routes.truncate(MAX_ROUTES);
    let most = routes.iter().map(|r| r.clients).max().unwrap_or(1).max(1) as f64;
    s.push_str("<g id=\"routes\">");
    for r in routes {
        // To the edge named, or to the middle of the region's edges.
        let Some(target) = targets.iter().find(|t| t.matches(&r.edge)) else {
            continue;
        };
        let marks: Vec<&Mark> = groups
            .iter()
            .flatten()
            .filter(|m| m.kind == "edge")
            .filter(|m| {
                m.name == r.edge
                    || !target.edges.contains(&r.edge.as_str()) && target.edges.contains(&m.name)
            })
            .collect();
        if marks.is_empty() {
            continue;
        }
        let k = marks.len() as f64;
        let to = (
            marks.iter().map(|m| m.x).sum::<f64>() / k,
            marks.iter().map(|m| m.y).sum::<f64>() / k,
        );
        let width = 0.25 + 0.45 * (r.clients as f64 / most).sqrt();
        s.push_str(&format!(
            "<line class=\"route\" data-edge=\"{}\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" \
             stroke=\"{}\" stroke-width=\"{}\"><title>{} clients → {}</title></line>",
            esc(&r.edge),
            num(r.longitude),
            num(-r.latitude),
            num(to.0),
            num(to.1),
            target.colour,
            num(width),
            count(u64::from(r.clients)),
            esc(&r.edge)
        ));
    }
    s.push_str("</g>");
}

/// The radius of a place with `clients`, when the largest has `most`.
fn radius(clients: u32, most: u32) -> f64 {
    let share = f64::from(clients) / f64::from(most.max(1));
    (3.0 * share.sqrt()).max(0.45)
}

fn places(s: &mut String, report: &Report) {
    let mut places: Vec<_> = report
        .places
        .iter()
        .filter(|p| on_globe(p.latitude, p.longitude))
        .collect();
    // Large first, so small ones are drawn on top and stay visible.
    places.sort_by_key(|p| std::cmp::Reverse(p.clients));
    places.truncate(MAX_PLACES);
    let most = places.iter().map(|p| p.clients).max().unwrap_or(1);
    s.push_str("<g id=\"places\">");
    for p in places {
        s.push_str(&format!(
            "<circle class=\"place\" data-country=\"{}\" data-clients=\"{}\" cx=\"{}\" cy=\"{}\" r=\"{}\">\
             <title>{}, {}: {} clients, {} requests</title></circle>",
            esc(&p.country),
            p.clients,
            num(p.longitude),
            num(-p.latitude),
            num(radius(p.clients, most)),
            esc(&p.country),
            esc(p.region.label()),
            count(u64::from(p.clients)),
            count(p.requests)
        ));
    }
    s.push_str("</g>");
}

/// The report's nodes grouped by place, each mark where it is drawn.
fn groups<'a>(report: &'a Report, targets: &[Target]) -> Vec<Vec<Mark<'a>>> {
    let mut groups: Vec<(f64, f64, Vec<&'a crate::model::NodeMark>)> = Vec::new();
    for n in report
        .nodes
        .iter()
        .filter(|n| on_globe(n.latitude, n.longitude))
        .take(MAX_NODES)
    {
        let (x, y) = (n.longitude, -n.latitude);
        match groups
            .iter_mut()
            .find(|g| (g.0 - x).abs() < SAME_PLACE && (g.1 - y).abs() < SAME_PLACE)
        {
            Some(g) => g.2.push(n),
            None => groups.push((x, y, vec![n])),
        }
    }
    groups
        .into_iter()
        .map(|(x, y, nodes)| {
            let k = nodes.len() as f64;
            nodes
                .into_iter()
                .enumerate()
                .map(|(i, n)| Mark {
                    name: &n.name,
                    kind: &n.kind,
                    region: &n.region,
                    x: x + (i as f64 - (k - 1.0) / 2.0) * SPREAD,
                    y,
                    colour: if n.kind == "edge" {
                        targets
                            .iter()
                            .find(|t| t.edges.contains(&n.name.as_str()))
                            .map_or(UNKNOWN, |t| t.colour)
                    } else {
                        "#1d232b"
                    },
                })
                .collect()
        })
        .collect()
}

/// A label box, degrees.
#[derive(Clone, Copy)]
struct Box {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

impl Box {
    fn overlaps(&self, o: &Box) -> bool {
        self.x < o.x + o.w && o.x < self.x + self.w && self.y < o.y + o.h && o.y < self.y + self.h
    }
    fn inside_view(&self) -> bool {
        let (vx, vy, vw, vh) = VIEW;
        self.x >= vx && self.y >= vy && self.x + self.w <= vx + vw && self.y + self.h <= vy + vh
    }
}

fn text_width(s: &str) -> f64 {
    s.chars().count() as f64 * FONT * 0.56
}

fn nodes(s: &mut String, groups: &[Vec<Mark>]) {
    let line = FONT * 1.15;
    let mut taken: Vec<Box> = Vec::new();
    let mut labels = String::new();
    s.push_str("<g id=\"nodes\">");
    for g in groups {
        for m in g {
            mark(s, m);
        }
        let (Some(first), Some(last)) = (g.first(), g.last()) else {
            continue;
        };
        let w = g.iter().map(|m| text_width(m.name)).fold(0.0, f64::max);
        let h = line * g.len() as f64;
        let (cx, cy) = ((first.x + last.x) / 2.0, first.y);
        let half = (last.x - first.x) / 2.0 + 2.0;
        let candidates = [
            Box {
                x: cx + half,
                y: cy - h / 2.0,
                w,
                h,
            },
            Box {
                x: cx - half - w,
                y: cy - h / 2.0,
                w,
                h,
            },
            Box {
                x: cx - w / 2.0,
                y: cy - 2.2 - h,
                w,
                h,
            },
            Box {
                x: cx - w / 2.0,
                y: cy + 2.2,
                w,
                h,
            },
            Box {
                x: cx + half,
                y: cy - h - 1.0,
                w,
                h,
            },
            Box {
                x: cx + half,
                y: cy + 1.0,
                w,
                h,
            },
        ];
        let pick = candidates
            .iter()
            .find(|b| b.inside_view() && !taken.iter().any(|t| t.overlaps(b)))
            .or_else(|| candidates.iter().find(|b| b.inside_view()))
            .copied()
            .unwrap_or(candidates[0]);
        taken.push(pick);
        let right_side = pick.x >= cx;
        for (i, m) in g.iter().enumerate() {
            let baseline = pick.y + line * (i as f64 + 0.8);
            let (tx, anchor) = if right_side {
                (pick.x, "start")
            } else {
                (pick.x + pick.w, "end")
            };
            if g.len() > 1 {
                labels.push_str(&format!(
                    "<line class=\"leader\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>",
                    num(m.x),
                    num(m.y),
                    num(if right_side { tx - 0.4 } else { tx + 0.4 }),
                    num(baseline - FONT * 0.35)
                ));
            }
            labels.push_str(&format!(
                "<text class=\"label label-{}\" data-node=\"{}\" x=\"{}\" y=\"{}\" text-anchor=\"{anchor}\">{}</text>",
                kind_class(m.kind),
                esc(m.name),
                num(tx),
                num(baseline),
                esc(m.name)
            ));
        }
    }
    s.push_str("</g><g id=\"labels\">");
    s.push_str(&labels);
    s.push_str("</g>");
}

fn kind_class(kind: &str) -> &'static str {
    match kind {
        "edge" => "edge",
        "shield" => "shield",
        "origin" => "origin",
        "director" => "director",
        _ => "node",
    }
}

fn mark(s: &mut String, m: &Mark) {
    let title = format!(
        "<title>{} ({}, {})</title>",
        esc(m.name),
        esc(m.kind),
        esc(m.region)
    );
    let (x, y, name) = (num(m.x), num(m.y), esc(m.name));
    match kind_class(m.kind) {
        "edge" => s.push_str(&format!(
            "<circle class=\"edge\" data-node=\"{name}\" cx=\"{x}\" cy=\"{y}\" r=\"1.5\" fill=\"{}\">{title}</circle>",
            m.colour
        )),
        "shield" => s.push_str(&format!(
            "<rect class=\"shield\" data-node=\"{name}\" x=\"-1.2\" y=\"-1.2\" width=\"2.4\" height=\"2.4\" \
             transform=\"translate({x} {y}) rotate(45)\">{title}</rect>"
        )),
        "origin" => s.push_str(&format!(
            "<rect class=\"origin\" data-node=\"{name}\" x=\"{}\" y=\"{}\" width=\"2.8\" height=\"2.8\">{title}</rect>",
            num(m.x - 1.4),
            num(m.y - 1.4)
        )),
        "director" => s.push_str(&format!(
            "<path class=\"director\" data-node=\"{name}\" d=\"M{} {}l1.6 2.8h-3.2z\">{title}</path>",
            num(m.x),
            num(m.y - 1.6)
        )),
        _ => s.push_str(&format!(
            "<circle class=\"node\" data-node=\"{name}\" cx=\"{x}\" cy=\"{y}\" r=\"1\">{title}</circle>"
        )),
    }
}
