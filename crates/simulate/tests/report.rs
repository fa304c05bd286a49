//! The report of `meridian simulate`, from the example Report: the HTML
//! parses and holds every panel, fetches nothing, escapes what comes from
//! the data, survives missing and broken figures, stays small; the
//! printed tables hold the headline figures and fit 100 ASCII columns;
//! and a real headless Chromium renders the page with its map and charts.
//!
//! `MERIDIAN_REPORT_SCREENSHOT=path.png` keeps the browser test's
//! screenshot (for the README).

#[path = "../../cluster/tests/browser/mod.rs"]
mod browser;

use meridian_simulate::report;
use meridian_simulate::{Report, Routing};
use scraper::{Html, Selector};

fn sel(s: &str) -> Selector {
    Selector::parse(s).expect("selector")
}

fn count(doc: &Html, s: &str) -> usize {
    doc.select(&sel(s)).count()
}

fn edges(r: &Report) -> usize {
    r.nodes.iter().filter(|n| n.kind == "edge").count()
}

/// Every panel a reader looks for, by id and class, in `doc` (the page as
/// written or as a browser rendered it).
fn assert_every_panel(doc: &Html, r: &Report) {
    assert_eq!(count(doc, "svg#map"), 1, "one map");
    assert_eq!(count(doc, "svg#map .edge"), edges(r), "a mark per edge");
    assert_eq!(count(doc, "svg#map .shield"), 2, "a mark per shield");
    assert_eq!(count(doc, "svg#map .origin"), 1, "the origin");
    assert_eq!(
        count(doc, "svg#map .place"),
        r.places.len(),
        "a circle per place"
    );
    assert_eq!(
        count(doc, "svg#map .route"),
        r.routes.len(),
        "a line per route"
    );
    for n in &r.nodes {
        let label = format!("svg#map text.label[data-node=\"{}\"]", n.name);
        assert_eq!(count(doc, &label), 1, "a label for {}", n.name);
    }
    assert_eq!(
        count(doc, "svg#latency polyline.cdf"),
        3,
        "a CDF per routing"
    );
    assert_eq!(count(doc, "svg#regions g.region"), 6, "a row per region");
    assert_eq!(count(doc, "svg#timeline polyline.origin-line"), 3);
    assert_eq!(
        count(doc, "svg#timeline polyline.hit-line"),
        2,
        "no hit ratio without edges"
    );
    // The purge (in every routing, one marker) and the stop.
    assert_eq!(
        count(doc, "svg#timeline .event"),
        2,
        "the purge and the stop"
    );
    assert_eq!(count(doc, "#headline .card"), 3);
    assert_eq!(count(doc, "#edge-down"), 1);
    assert_eq!(count(doc, "#params"), 1);
}

#[test]
fn the_page_parses_and_holds_every_panel() {
    let r = report::example();
    let page = report::html(&r);
    let doc = Html::parse_document(&page);
    assert!(doc.errors.is_empty(), "parse errors: {:?}", doc.errors);
    assert_every_panel(&doc, &r);
    let title = doc.select(&sel("title")).next().expect("title");
    assert!(title.text().collect::<String>().contains("purge"));
    // The headline says what the CDN buys, in words.
    let lede: String = doc
        .select(&sel("#headline .lede"))
        .flat_map(|e| e.text())
        .collect();
    assert!(lede.starts_with("Nearest edge: "), "{lede}");
    assert!(lede.contains("faster than going to the origin"), "{lede}");
    // The Report rides along as JSON, whole.
    let data = doc
        .select(&sel("script#report-data[type=\"application/json\"]"))
        .next()
        .expect("report data");
    let json: serde_json::Value =
        serde_json::from_str(&data.text().collect::<String>()).expect("json");
    assert_eq!(json["nodes"].as_array().map(Vec::len), Some(r.nodes.len()));
    assert_eq!(
        json["places"].as_array().map(Vec::len),
        Some(r.places.len())
    );
    assert_eq!(json["routings"][2]["routing"], "origin");
    assert_eq!(
        json["routings"][0]["cdf_ms"].as_array().map(Vec::len),
        Some(101)
    );
    let p50 = json["routings"][0]["overall"]["p50_ms"]
        .as_f64()
        .expect("p50");
    assert!((p50 - r.routings[0].overall.p50_ms.expect("p50")).abs() < 1e-9);
}

/// The director sends a region whose edges share one address to the
/// region (the runner records `us-east`): those routes end between the
/// region's edges, in the region's colour, and the legend counts them.
#[test]
fn routes_to_a_region_with_two_edges_end_between_them() {
    let mut r = report::example();
    let mut to_region = 0;
    for route in r
        .routes
        .iter_mut()
        .filter(|x| x.edge.starts_with("us-east-"))
    {
        route.edge = "us-east".into();
        to_region += 1;
    }
    assert!(to_region > 0);
    let doc = Html::parse_document(&report::html(&r));
    assert_eq!(
        count(&doc, "svg#map .route"),
        r.routes.len(),
        "every route drawn"
    );
    let x_of = |name: &str| -> f64 {
        let mark = doc
            .select(&sel(&format!("svg#map circle.edge[data-node=\"{name}\"]")))
            .next()
            .unwrap_or_else(|| panic!("{name}"));
        mark.value()
            .attr("cx")
            .and_then(|v| v.parse().ok())
            .expect("cx")
    };
    let (a, b) = (x_of("us-east-1"), x_of("us-east-2"));
    let fill = |name: &str| {
        doc.select(&sel(&format!("svg#map circle.edge[data-node=\"{name}\"]")))
            .next()
            .and_then(|m| m.value().attr("fill"))
            .map(str::to_owned)
    };
    assert_eq!(
        fill("us-east-1"),
        fill("us-east-2"),
        "one colour for the region"
    );
    for line in doc.select(&sel("svg#map .route[data-edge=\"us-east\"]")) {
        let x2: f64 = line
            .value()
            .attr("x2")
            .and_then(|v| v.parse().ok())
            .expect("x2");
        assert!(x2 > a.min(b) && x2 < a.max(b), "{x2} between {a} and {b}");
        assert_eq!(
            line.value().attr("stroke").map(str::to_owned),
            fill("us-east-1")
        );
    }
    let legend: String = doc
        .select(&sel("#map-legend"))
        .flat_map(|e| e.text())
        .collect();
    let clients: u32 = r
        .routes
        .iter()
        .filter(|x| x.edge == "us-east")
        .map(|x| x.clients)
        .sum();
    assert!(
        legend.contains(&format!("edge us-east-1 + us-east-2 ({clients} clients)")),
        "{legend}"
    );
}

#[test]
fn the_page_fetches_nothing() {
    let page = report::html(&report::example());
    let doc = Html::parse_document(&page);
    let csp = doc
        .select(&sel("meta[http-equiv=\"Content-Security-Policy\"]"))
        .next()
        .and_then(|m| m.value().attr("content"))
        .expect("a CSP");
    assert_eq!(
        csp,
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    );
    for e in doc.select(&sel("*")) {
        for (name, value) in e.value().attrs() {
            let v = value.trim().to_ascii_lowercase();
            if [
                "src",
                "href",
                "xlink:href",
                "action",
                "poster",
                "srcset",
                "data",
            ]
            .contains(&name)
            {
                assert!(
                    v.starts_with("data:") || v.starts_with('#'),
                    "<{} {name}=\"{value}\"> would fetch",
                    e.value().name()
                );
            }
            assert!(
                !v.contains("url("),
                "<{} {name}=\"{value}\">",
                e.value().name()
            );
        }
    }
    for s in doc.select(&sel("script")) {
        assert_eq!(
            s.value().attr("type"),
            Some("application/json"),
            "no script runs"
        );
    }
    assert_eq!(
        count(&doc, "link[rel=\"stylesheet\"], img, iframe, object, embed"),
        0
    );
    let style: String = doc.select(&sel("style")).flat_map(|e| e.text()).collect();
    assert!(
        !style.contains("@import") && !style.contains("url("),
        "the CSS loads nothing"
    );
    let lower = page.to_ascii_lowercase();
    assert!(
        !lower.contains("http://") && !lower.contains("https://"),
        "no URL anywhere"
    );
}

#[test]
fn strings_from_the_data_are_escaped() {
    let mut r = report::example();
    let evil = "<script>alert(1)</script>";
    r.nodes[0].name = evil.into();
    for route in r.routes.iter_mut().filter(|x| x.edge == "eu-west") {
        route.edge = evil.into();
    }
    r.places[0].country = "\"><img src=x onerror=alert(2)>".into();
    r.params.config = "</script><script>alert(3)</script>".into();
    r.params.scenario_target = Some("<marquee onmouseover=alert(4)>news</marquee>".into());
    r.routings[0].events[0].what = "<svg onload=alert(5)>".into();
    let page = report::html(&r);
    let doc = Html::parse_document(&page);
    assert!(doc.errors.is_empty(), "parse errors: {:?}", doc.errors);
    assert_eq!(count(&doc, "script"), 1, "only the data block");
    assert_eq!(
        count(&doc, "img, marquee, svg svg"),
        0,
        "no element from the data"
    );
    for e in doc.select(&sel("*")) {
        for (name, _) in e.value().attrs() {
            assert!(!name.starts_with("on"), "<{} {name}>", e.value().name());
        }
    }
    // Shown as text, where they belong.
    let label = doc
        .select(&sel("svg#map text.label-edge"))
        .find(|t| t.text().collect::<String>() == evil);
    assert!(label.is_some(), "the name shows as text");
    let params: String = doc.select(&sel("#params")).flat_map(|e| e.text()).collect();
    assert!(params.contains("</script><script>alert(3)</script>"));
    // The routes to the renamed edge still find it.
    let routes = doc
        .select(&sel("svg#map .route"))
        .filter(|x| x.value().attr("data-edge") == Some(evil))
        .count();
    assert!(routes > 0);
    // And the JSON keeps them, without ever closing its element.
    let data: String = doc
        .select(&sel("#report-data"))
        .flat_map(|e| e.text())
        .collect();
    assert!(!data.contains("</"));
    let json: serde_json::Value = serde_json::from_str(&data).expect("json");
    assert_eq!(json["nodes"][0]["name"], evil);
    assert_eq!(
        json["params"]["config"],
        "</script><script>alert(3)</script>"
    );
}

#[test]
fn the_printed_tables_hold_the_headline_figures() {
    let r = report::example();
    let text = report::text(&r);
    for line in text.lines() {
        assert!(line.len() <= 100, "{} columns: {line}", line.len());
        assert!(line.is_ascii(), "not ASCII: {line}");
    }
    let ms = |v: Option<f64>| format!("{:.0} ms", v.expect("figure"));
    let pct = |v: Option<f64>| format!("{:.1}%", v.expect("figure") * 100.0);
    for routing in &r.routings {
        let o = &routing.overall;
        let p50 = ms(o.p50_ms);
        let row = |label: &str| {
            text.lines()
                .find(|l| l.trim_start().starts_with(label))
                .unwrap_or_else(|| panic!("no {label} row:\n{text}"))
                .to_owned()
        };
        assert!(row("latency p50").contains(&p50), "{p50}:\n{text}");
        assert!(row("latency p99").contains(&ms(o.p99_ms)));
        assert!(row("origin offload").contains(&pct(o.offload)));
        assert!(row("origin requests").contains(&format_count(o.origin_requests)));
        if routing.routing == Routing::Origin {
            // No edge, no hit ratio: a dash, not 0% or NaN.
            assert!(row("edge hit ratio").trim_end().ends_with(" -"), "{text}");
        } else {
            assert!(row("edge hit ratio").contains(&pct(o.edge_hit_ratio)));
        }
    }
    assert!(text.contains("Per region") && text.contains("North America"));
    assert!(text.contains("tag news purged") && text.contains("eu-west stopped"));
    assert!(text.contains("clients moved to us-east-1"), "{text}");
    assert!(text.contains("seed            42"), "{text}");
    assert!(text.contains("simulator CPU"));
    assert!(text.contains("Nearest edge: ") || text.contains("nearest edge: "));
}

fn format_count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[test]
fn control_characters_in_names_do_not_reach_the_terminal() {
    let mut r = report::example();
    r.routings[0].events[0].what = "purged\x1b[2J\x1b]0;owned\x07 évènement".into();
    let text = report::text(&r);
    assert!(text.is_ascii() && !text.contains('\x1b') && !text.contains('\x07'));
    assert!(text.contains("purged?[2J?]0;owned? ?v?nement"), "{text}");
}

#[test]
fn an_empty_run_and_broken_figures_still_make_a_page() {
    let mut empty = report::example();
    empty.places.clear();
    empty.routes.clear();
    empty.nodes.clear();
    empty.routings.clear();
    for page in [report::html(&empty), report::text(&empty)] {
        assert!(!page.is_empty());
    }
    let doc = Html::parse_document(&report::html(&empty));
    assert!(doc.errors.is_empty(), "{:?}", doc.errors);
    assert_eq!(
        count(&doc, "svg#map, svg#latency, svg#regions, svg#timeline"),
        4
    );

    let mut broken = report::example();
    broken.nodes[1].latitude = f64::NAN;
    broken.places[0].longitude = f64::INFINITY;
    broken.routes[1].latitude = 1e300;
    for routing in &mut broken.routings {
        routing.overall.p50_ms = Some(f64::NAN);
        routing.overall.edge_hit_ratio = Some(f64::INFINITY);
        routing.cdf_ms[3] = f64::NAN;
        routing.cdf_ms[4] = -1.0;
        routing.timeline[2].p50_ms = Some(f64::NEG_INFINITY);
        routing.events.push(meridian_simulate::Event {
            t_ms: u64::MAX,
            what: String::new(),
        });
    }
    broken.params.bucket_ms = 0;
    broken.params.workload.zipf_s = f64::NAN;
    if let Some(cpu) = &mut broken.params.sim_cpu {
        cpu.percent_of_core = f64::INFINITY;
    }
    let page = report::html(&broken);
    let text = report::text(&broken);
    assert!(!broken_number(&page), "no broken numbers drawn");
    assert!(!broken_number(&text), "{text}");
    let doc = Html::parse_document(&page);
    assert!(doc.errors.is_empty(), "{:?}", doc.errors);
    assert_eq!(
        count(&doc, "svg#map .place"),
        broken.places.len() - 1,
        "the place off the globe is left out"
    );
}

/// `NaN` or `inf` as a word (as Rust prints a broken float).
fn broken_number(s: &str) -> bool {
    let b = s.as_bytes();
    ["NaN", "inf"].iter().any(|w| {
        s.match_indices(w).any(|(i, _)| {
            let before = i.checked_sub(1).map(|j| b[j]);
            let after = b.get(i + w.len()).copied();
            !before.is_some_and(|c| c.is_ascii_alphabetic())
                && !after.is_some_and(|c| c.is_ascii_alphabetic())
        })
    })
}

#[test]
fn a_run_with_many_places_stays_under_300_kib() {
    // A 20,000-request run over a country-centre database: a few hundred
    // places and routes; the page is drawn from aggregates, not requests.
    let mut r = report::example();
    let (places, routes) = (r.places.clone(), r.routes.clone());
    for k in 1..6 {
        let shift = k as f64 * 0.7;
        r.places.extend(places.iter().cloned().map(|mut p| {
            p.latitude += shift;
            p
        }));
        r.routes.extend(routes.iter().cloned().map(|mut x| {
            x.latitude += shift;
            x
        }));
    }
    assert!(r.places.len() >= 280);
    let page = report::html(&r);
    assert!(page.len() < 300 * 1024, "{} bytes", page.len());
}

#[test]
fn the_report_renders_in_a_real_browser() {
    if browser::unavailable() {
        return;
    }
    let r = report::example();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("report.html");
    std::fs::write(&file, report::html(&r)).expect("write report");
    let url = format!("file://{}", file.display());
    let dom = browser::dump_dom(&url);
    let doc = Html::parse_document(&dom);
    assert_every_panel(&doc, &r);
    // Laid out, not only parsed: the browser gave the map a size.
    let shot = dir.path().join("report.png");
    browser::screenshot(&url, &shot, (1280, 3000));
    let png = std::fs::read(&shot).expect("png");
    assert!(
        png.len() > 100 * 1024,
        "a real picture, {} bytes",
        png.len()
    );
    let width = u32::from_be_bytes([png[16], png[17], png[18], png[19]]);
    assert_eq!(width, 1280, "IHDR width");
    if let Some(keep) = std::env::var_os("MERIDIAN_REPORT_SCREENSHOT") {
        std::fs::copy(&shot, keep).expect("keep the screenshot");
    }
}
