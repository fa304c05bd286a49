use super::*;

fn shipped() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/cluster.toml");
    std::fs::read_to_string(path).expect("config/cluster.toml")
}

fn parse(text: &str) -> Result<ClusterConfig, String> {
    ClusterConfig::parse("c.toml", text).map_err(|e| e.to_string())
}

/// The shipped file with `from` replaced by `to` (which must occur).
fn edited(from: &str, to: &str) -> String {
    let s = shipped();
    assert!(s.contains(from), "the shipped file has no `{from}`");
    s.replacen(from, to, 1)
}

#[test]
fn the_shipped_file_is_a_whole_cluster() {
    let c = parse(&shipped()).expect("config/cluster.toml is valid");
    let regions: std::collections::BTreeSet<&str> =
        c.edges.iter().map(|e| e.place.region.as_str()).collect();
    assert!(regions.len() >= 5, "{regions:?}");
    assert_eq!(c.shields.len(), 2);
    // us-east's two edges share one front; every other edge has its own.
    assert_eq!(c.fronts.len(), c.edges.len() - 1);
    let shared = c
        .fronts
        .iter()
        .find(|f| f.edges.len() == 2)
        .expect("a two-edge region");
    let region = |i: usize| c.edges[i].place.region.clone();
    assert_eq!(region(shared.edges[0]), region(shared.edges[1]));
    assert!(c.edges.iter().all(|e| e.shields == vec![0, 1]));
    assert_eq!(c.site_host, "site.meridian.test");
    assert_eq!(c.director_admin().port(), 9000);
}

#[test]
fn rtt_follows_the_model_and_overrides_win() {
    let text = edited(
        "# [[latency.pair]]                # a measured figure beats the model\n# between = [\"us-east\", \"eu-west\"] # regions or node names\n# rtt = \"75ms\"",
        "[[latency.pair]]\nbetween = [\"eu-west\", \"us-east\"]\nrtt = \"75ms\"",
    );
    let c = parse(&text).expect("valid");
    let eu = &c.edges[0].place;
    let us = &c.edges[1].place;
    let sg = &c.edges[4].place;
    assert_eq!(c.rtt(us, eu), Duration::from_millis(75));
    assert_eq!(c.rtt(eu, us), Duration::from_millis(75));
    let far = c.rtt(eu, sg);
    assert!(far > Duration::from_millis(100), "{far:?}");
    assert_eq!(c.rtt(us, &c.edges[2].place), c.model.local, "same place");
}

#[test]
fn mistakes_name_the_file_the_key_and_the_reason() {
    let cases: Vec<(String, &str, &str)> = vec![
        (
            edited("[cluster]\n", "[cluster]\ncolour = \"blue\"\n"),
            "colour",
            "unknown field",
        ),
        (
            edited("[latency]\n", "[latencies]\n"),
            "latencies",
            "unknown field",
        ),
        (
            edited(
                "admin = \"http://127.0.0.1:9103\"",
                "admin = \"http://127.0.0.1:9101\"",
            ),
            "edge[3].admin",
            "already used by `edge[0].admin`",
        ),
        (
            edited(
                "url = \"http://127.0.0.1:8501\"",
                "url = \"http://127.0.0.1:8600\"",
            ),
            "shield[1].url",
            "already used by `origin.listen`",
        ),
        (
            edited("name = \"us-west\"", "name = \"eu-west\""),
            "edge[3].name",
            "used by another edge",
        ),
        (
            edited("latitude = 45.6                   # Boardman, Oregon\n", ""),
            "edge[3]",
            "latitude",
        ),
        (
            edited(
                "# shields = [\"shield-eu\", \"shield-us\"]  # optional; default every shield",
                "shields = [\"shield-eu\", \"shield-asia\"]",
            ),
            "edge[0].shields[1]",
            "no [[shield]] is named `shield-asia`",
        ),
        (
            edited("region = \"eu-central\"\n", ""),
            "shield[1].region",
            "where each shield is",
        ),
        (
            edited(
                "url = \"http://127.0.0.1:8104\"",
                "url = \"http://edge.example:8104\"",
            ),
            "edge[4].url",
            "http://IP:PORT",
        ),
        (
            edited("admin-listen = \"127.0.0.1:9000\"", "# no admin"),
            "director.admin-listen",
            "purge log",
        ),
        (
            edited("site-host = \"site.meridian.test\"", "site-host = \"a b\""),
            "cluster.site-host",
            "not a host name",
        ),
        (
            edited(
                "# [[latency.pair]]                # a measured figure beats the model\n# between = [\"us-east\", \"eu-west\"] # regions or node names\n# rtt = \"75ms\"",
                "[[latency.pair]]\nbetween = [\"us-east\", \"mars\"]\nrtt = \"75ms\"",
            ),
            "latency.pair[0].between[1]",
            "`mars`",
        ),
        (
            edited("per-100km = 1.4", "per-100km = -1.0"),
            "latency.per-100km",
            "between 0 and 100",
        ),
    ];
    for (text, key, reason) in cases {
        let e = parse(&text).expect_err(key);
        assert!(
            e.contains("c.toml") && e.contains(key) && e.contains(reason),
            "{key}: {e}"
        );
    }
}

#[test]
fn ephemeral_ports_keep_shared_fronts() {
    let c = parse(&shipped()).expect("valid").with_ephemeral_ports();
    assert!(c.fronts.iter().all(|f| f.addr.port() == 0));
    assert_eq!(c.fronts.len(), c.edges.len() - 1);
    assert_eq!(c.director_admin().port(), 0);
}
