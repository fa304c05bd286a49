//! What `meridian cluster up` prints once everything listens: the nodes
//! with their addresses and simulated links, the dashboard with its token,
//! and a few commands that work as printed (a test runs each one).

use crate::control::NodeKind;
use crate::run::{Cluster, TOKEN_FILE};

/// The table of nodes, the dashboard and a few commands that work as printed.
pub fn summary(c: &Cluster) -> String {
    use std::fmt::Write;
    let config = c.config();
    let mut s = String::new();
    let regions: std::collections::BTreeSet<&str> = config
        .edges
        .iter()
        .map(|e| e.place.region.as_str())
        .collect();
    let _ = writeln!(
        s,
        "\nMeridian cluster up ({}): {} edges in {} regions, {} shields, site {}\n",
        config.source,
        config.edges.len(),
        regions.len(),
        config.shields.len(),
        config.site_host
    );
    let _ = writeln!(
        s,
        "  {:<14} {:<9} {:<13} {:<24} {:<24} UPSTREAMS (simulated round trip)",
        "NODE", "KIND", "REGION", "URL", "ADMIN"
    );
    for n in c.nodes() {
        let kind = match n.kind {
            NodeKind::Origin => "origin",
            NodeKind::Shield => "shield",
            NodeKind::Edge => "edge",
            NodeKind::Director => "director",
        };
        let ups: Vec<String> = n
            .upstreams
            .iter()
            .map(|u| format!("{} {:.0} ms", u.name, u.rtt_ms))
            .collect();
        let _ = writeln!(
            s,
            "  {:<14} {:<9} {:<13} {:<24} {:<24} {}",
            n.name,
            kind,
            n.region,
            n.url,
            n.admin.as_deref().unwrap_or("-"),
            ups.join(", ")
        );
    }
    let token_file = config.state_dir.join(TOKEN_FILE);
    let first_edge = c.nodes().iter().find(|n| n.kind == NodeKind::Edge);
    let edge_url = first_edge.map_or_else(String::new, |n| n.url.clone());
    let edge_name = first_edge.map_or("eu-west", |n| n.name.as_str());
    let dash = c.dashboard();
    let _ = writeln!(s, "\n  Dashboard  http://{dash}/#token={}", c.token());
    let _ = writeln!(
        s,
        "  Token      {} (in {})",
        c.token(),
        token_file.display()
    );
    let https = c.tls().map(|tls| {
        let edges: Vec<String> = c
            .nodes()
            .iter()
            .filter(|n| n.kind == NodeKind::Edge)
            .filter_map(|n| {
                c.edge_https(&n.name)
                    .map(|a| format!("{} https://localhost:{}", n.name, a.port()))
            })
            .collect();
        let _ = writeln!(
            s,
            "  HTTPS      {} (CA {}; no simulated distance)",
            edges.join(", "),
            tls.ca_file.display()
        );
        tls.ca_file.display().to_string()
    });
    let _ = writeln!(s, "\n  Try:");
    let mut lines = vec![];
    if let (Some(ca), Some(addr)) = (&https, first_edge.and_then(|n| c.edge_https(&n.name))) {
        lines.push((
            format!(
                "curl -si --cacert {ca} https://localhost:{}/index.html | grep -i cache-status",
                addr.port()
            ),
            format!("{edge_name} over HTTPS, with the cluster's CA"),
        ));
    }
    lines.extend([
        (
            format!("curl -si {edge_url}/index.html | grep -i cache-status"),
            format!("{edge_name}: run it twice (miss, then hit)"),
        ),
        (
            format!(
                "curl -sL -o /dev/null -w '%{{url_effective}}\\n' http://{}/index.html",
                c.director()
            ),
            "the director redirects to an edge".to_string(),
        ),
        (
            format!("curl -s 'http://{}/v1/route?ip=81.2.69.160'", c.director()),
            "where a London client goes, and why".to_string(),
        ),
        (
            format!(
                "curl -s -H 'Authorization: Bearer {}' -d '{{\"tags\":[\"news\"]}}' http://{}/v1/purge",
                c.token(),
                c.director_admin()
            ),
            "purge a section on every node".to_string(),
        ),
        (
            format!("cargo run --release -- cluster stop {edge_name}"),
            "watch the dashboard; `cluster start` brings it back".to_string(),
        ),
    ]);
    for (cmd, what) in lines {
        let _ = writeln!(s, "    {cmd}\n        # {what}");
    }
    let _ = writeln!(s, "\n  Ctrl-C stops everything.");
    s
}
