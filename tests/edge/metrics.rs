//! Issue 9, item 4: `GET /metrics` on the admin listener parses as
//! Prometheus text, and its counters move with traffic by exactly what was
//! sent; no label carries anything a client chose.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use crate::support::{Node, Origin, Reply, cache_status, client, eventually};

/// Every family a node exposes, as a scraper sees it (Prometheus text
/// 0.0.4 names, counters with `_total`), and its type.
const FAMILIES: [(&str, &str); 20] = [
    ("meridian_requests_total", "counter"),
    ("meridian_response_bytes_total", "counter"),
    ("meridian_collapsed_total", "counter"),
    ("meridian_upstream_request_duration_seconds", "histogram"),
    ("meridian_upstream_errors_total", "counter"),
    ("meridian_upstream_up", "gauge"),
    ("meridian_cache_entries", "gauge"),
    ("meridian_cache_bytes", "gauge"),
    ("meridian_cache_capacity_bytes", "gauge"),
    ("meridian_cache_evictions_total", "counter"),
    ("meridian_purges_total", "counter"),
    ("meridian_purged_entries_total", "counter"),
    ("meridian_fills_in_flight", "gauge"),
    ("meridian_fill_budget_bytes", "gauge"),
    ("meridian_fill_budget_capacity_bytes", "gauge"),
    ("meridian_zero_copy_bodies", "gauge"),
    ("meridian_zero_copy_body_bytes", "gauge"),
    ("meridian_zero_copy_sent_bytes_total", "counter"),
    ("meridian_zero_copy_large_pages", "gauge"),
    ("meridian_build_info", "gauge"),
];

/// One scrape, parsed strictly.
#[derive(Debug)]
struct Scrape {
    text: String,
    /// Family name → (HELP, TYPE).
    families: HashMap<String, (String, String)>,
    /// Sample name → label set → value.
    samples: HashMap<String, BTreeMap<Vec<(String, String)>, f64>>,
}

impl Scrape {
    /// The value of the sample `name` whose labels include `labels`,
    /// summed over the ones that match (so `&[]` sums a whole family).
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .get(name)
            .into_iter()
            .flatten()
            .filter(|(set, _)| {
                labels
                    .iter()
                    .all(|(k, v)| set.iter().any(|(sk, sv)| sk == k && sv == v))
            })
            .map(|(_, v)| v)
            .sum()
    }

    /// The one sample `name` with exactly `labels`; panics if absent.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut want: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        want.sort();
        *self
            .samples
            .get(name)
            .and_then(|s| s.get(&want))
            .unwrap_or_else(|| panic!("no sample {name}{labels:?} in\n{}", self.text))
    }

    fn label_values(&self) -> impl Iterator<Item = &str> {
        self.samples
            .values()
            .flat_map(|s| s.keys())
            .flatten()
            .map(|(_, v)| v.as_str())
    }
}

/// Parses the Prometheus text format 0.0.4, strictly: every sample belongs
/// to the family of the `# TYPE` line before it (a histogram's
/// `_bucket`/`_sum`/`_count` included), every family has `# HELP` and
/// `# TYPE` once, names and label names are valid, label values are quoted
/// with only the three escapes, values are numbers, no series repeats.
fn parse(text: &str) -> Result<Scrape, String> {
    let mut families: HashMap<String, (String, String)> = HashMap::new();
    let mut helps: HashMap<String, String> = HashMap::new();
    let mut samples: HashMap<String, BTreeMap<Vec<(String, String)>, f64>> = HashMap::new();
    let mut current: Option<(String, String)> = None;
    let mut seen_types = HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let at = |why: &str| format!("line {}: {why}: {line:?}", n + 1);
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest
                .split_once(' ')
                .ok_or_else(|| at("HELP without text"))?;
            valid_name(name).map_err(|e| at(&e))?;
            if helps.insert(name.to_owned(), help.to_owned()).is_some() {
                return Err(at("second HELP"));
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .ok_or_else(|| at("TYPE without type"))?;
            valid_name(name).map_err(|e| at(&e))?;
            if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                return Err(at("unknown type"));
            }
            if !seen_types.insert(name.to_owned()) {
                return Err(at("second TYPE"));
            }
            let help = helps.get(name).ok_or_else(|| at("TYPE before HELP"))?;
            families.insert(name.to_owned(), (help.clone(), kind.to_owned()));
            current = Some((name.to_owned(), kind.to_owned()));
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            return Err(at("unexpected comment or blank line"));
        }
        let (name, labels, value) = sample(line).map_err(|e| at(&e))?;
        let (family, kind) = current.as_ref().ok_or_else(|| at("sample before TYPE"))?;
        let belongs = name == *family
            || (kind == "histogram"
                && ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| name.strip_suffix(s) == Some(family.as_str())));
        if !belongs {
            return Err(at(&format!("sample outside its family {family}")));
        }
        if kind == "histogram"
            && name.ends_with("_bucket")
            && !labels.iter().any(|(k, _)| k == "le")
        {
            return Err(at("bucket without le"));
        }
        if samples
            .entry(name)
            .or_default()
            .insert(labels, value)
            .is_some()
        {
            return Err(at("series repeated"));
        }
    }
    Ok(Scrape {
        text: text.to_owned(),
        families,
        samples,
    })
}

fn valid_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        Ok(())
    } else {
        Err(format!("invalid name {name:?}"))
    }
}

type Sample = (String, Vec<(String, String)>, f64);

/// `name{k="v",...} value`: labels sorted by name.
fn sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or_else(|| "no value".to_owned())?;
    let name = &line[..name_end];
    valid_name(name)?;
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(mut body) = rest.strip_prefix('{') {
        loop {
            if let Some(after) = body.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after) = body.split_once("=\"").ok_or("label without =\"")?;
            valid_name(key)?;
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next().ok_or("unterminated label value")? {
                    (i, '"') => break i,
                    (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        'n' => value.push('\n'),
                        c => return Err(format!("bad escape \\{c}")),
                    },
                    (_, c) => value.push(c),
                }
            };
            if labels.iter().any(|(k, _)| k == key) {
                return Err(format!("label {key} twice"));
            }
            labels.push((key.to_owned(), value));
            body = &after[end + 1..];
            body = body.strip_prefix(',').unwrap_or(body);
        }
    }
    let value = rest.strip_prefix(' ').ok_or("no space before the value")?;
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().map_err(|_| format!("bad value {v:?}"))?,
    };
    labels.sort();
    Ok((name.to_owned(), labels, value))
}

async fn scrape(c: &reqwest::Client, node: &Node) -> Scrape {
    let r = c
        .get(node.admin_url("/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(r.status(), 200);
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = r.text().await.expect("body");
    parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

const REQUESTS: &str = "meridian_requests_total";
const BYTES: &str = "meridian_response_bytes_total";
const LATENCY_COUNT: &str = "meridian_upstream_request_duration_seconds_count";

#[test]
fn the_parser_rejects_what_prometheus_would() {
    let ok = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 2\n";
    assert!(parse(ok).is_ok());
    let bad = [
        "a_total 1\n",
        "# TYPE a_total counter\na_total 1\n",
        "# HELP a A.\n# TYPE a gauge\nb 1\n",
        "# HELP a A.\n# TYPE a gauge\na{x=\"1} 1\n",
        "# HELP a A.\n# TYPE a gauge\na{x=\"\\q\"} 1\n",
        "# HELP a A.\n# TYPE a gauge\na one\n",
        "# HELP a A.\n# TYPE a gauge\na 1\na 2\n",
        "# HELP a A.\n# TYPE a gauge\na{x=\"1\",x=\"2\"} 1\n",
        "# HELP a A.\n# TYPE a histogram\na_bucket 1\n",
    ];
    for text in bad {
        assert!(parse(text).is_err(), "accepted {text:?}");
    }
}

#[tokio::test]
async fn metrics_parse_and_count_a_miss_and_a_hit_exactly() {
    const BODY: &str = "seventeen bytes!!";
    let origin = Origin::start(|_| Reply::ok(BODY).header("cache-control", "max-age=60")).await;
    let edge = Node::edge(&[origin.url()]).await;
    let c = client();

    let before = scrape(&c, &edge).await;
    for (family, kind) in FAMILIES {
        let (help, got) = before
            .families
            .get(family)
            .unwrap_or_else(|| panic!("no family {family} in\n{}", before.text));
        assert_eq!(got, kind, "{family}");
        assert!(!help.trim().is_empty(), "{family} has no help");
    }
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        before.value("meridian_build_info", &[("version", version)]),
        1.0
    );
    let upstream = origin.url();
    let up = [("upstream", upstream.as_str())];
    assert_eq!(before.value("meridian_upstream_up", &up), 1.0);

    for want in ["fwd=miss", "hit"] {
        let r = c.get(edge.url("/metered")).send().await.expect("send");
        assert!(cache_status(&r).contains(want), "{}", cache_status(&r));
        assert_eq!(r.text().await.expect("body"), BODY);
    }

    let after = scrape(&c, &edge).await;
    let moved =
        |name: &str, labels: &[(&str, &str)]| after.sum(name, labels) - before.sum(name, labels);
    let miss = [("cache", "miss"), ("class", "2xx")];
    let hit = [("cache", "hit"), ("class", "2xx")];
    assert_eq!(moved(REQUESTS, &miss), 1.0);
    assert_eq!(moved(REQUESTS, &hit), 1.0);
    assert_eq!(moved(REQUESTS, &[]), 2.0, "nothing else was counted");
    assert_eq!(moved(BYTES, &[]), 2.0 * BODY.len() as f64);
    let response = [("upstream", upstream.as_str()), ("result", "response")];
    assert_eq!(moved(LATENCY_COUNT, &response), 1.0, "one upstream request");
    assert_eq!(moved(LATENCY_COUNT, &[]), 1.0);
    assert_eq!(after.value("meridian_cache_entries", &[]), 1.0);
    assert!(after.value("meridian_cache_bytes", &[]) >= BODY.len() as f64);
    assert_eq!(after.value("meridian_fills_in_flight", &[]), 0.0);
    assert_eq!(after.value("meridian_fill_budget_bytes", &[]), 0.0);
}

#[tokio::test]
async fn no_label_carries_what_a_client_sent() {
    let origin = Origin::start(|_| Reply::ok("x").header("cache-control", "max-age=60")).await;
    let edge = Node::edge(&[origin.url()]).await;
    let c = client();
    let path = "/leak-probe-7f3a9c2e/sub";
    let host = "leak-host-7f3a9c2e.test";
    for _ in 0..2 {
        let r = c
            .get(edge.url(&format!("{path}?q=leak-query-7f3a9c2e")))
            .header("host", host)
            .header("user-agent", "leak-agent-7f3a9c2e")
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200);
    }
    let after = scrape(&c, &edge).await;
    assert!(
        !after.text.contains("7f3a9c2e"),
        "request data in the metrics:\n{}",
        after.text
    );
    // The only free-form label is the configured upstream.
    let upstream = origin.url();
    let fixed = [
        "hit",
        "miss",
        "stale",
        "revalidated",
        "collapsed",
        "bypass",
        "error",
        "1xx",
        "2xx",
        "3xx",
        "4xx",
        "5xx",
        "response",
        "connect_error",
        "timeout",
        "url",
        "prefix",
        "tag",
        "all",
        "true",
        "false",
        env!("CARGO_PKG_VERSION"),
        upstream.as_str(),
    ];
    for v in after.label_values() {
        assert!(
            fixed.contains(&v) || v.parse::<f64>().is_ok() || v == "+Inf",
            "label value {v:?} is not from a fixed set"
        );
    }
}

#[tokio::test]
async fn unreachable_upstreams_show_as_errors_and_down() {
    // Ports that were just free: nothing listens there. Two, since an edge
    // health-checks its upstreams only when it has more than one.
    let dead = || {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    let upstreams = [dead(), dead()];
    let edge = Node::edge(&upstreams).await;
    let c = client();
    let before = scrape(&c, &edge).await;
    let r = c.get(edge.url("/down")).send().await.expect("send");
    assert_eq!(r.status(), 502);
    let after = scrape(&c, &edge).await;
    let moved =
        |name: &str, labels: &[(&str, &str)]| after.sum(name, labels) - before.sum(name, labels);
    assert_eq!(
        moved(REQUESTS, &[("cache", "error"), ("class", "5xx")]),
        1.0
    );
    assert_eq!(moved(REQUESTS, &[]), 1.0);
    // The failed connect went on to the other upstream: one attempt each.
    for u in &upstreams {
        let connect = [("upstream", u.as_str()), ("result", "connect_error")];
        assert_eq!(
            moved("meridian_upstream_errors_total", &connect),
            1.0,
            "{u}"
        );
        assert_eq!(moved(LATENCY_COUNT, &connect), 1.0, "{u}");
    }
    eventually(
        "the health checks mark both upstreams down",
        Duration::from_secs(5),
        || async {
            let s = scrape(&c, &edge).await;
            upstreams
                .iter()
                .all(|u| s.value("meridian_upstream_up", &[("upstream", u.as_str())]) == 0.0)
        },
    )
    .await;
}

#[tokio::test]
async fn openmetrics_when_the_scraper_asks_for_it() {
    let origin = Origin::start(|_| Reply::ok("x")).await;
    let edge = Node::edge(&[origin.url()]).await;
    let r = client()
        .get(edge.admin_url("/metrics"))
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3",
        )
        .send()
        .await
        .expect("scrape");
    assert_eq!(r.status(), 200);
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    let text = r.text().await.expect("body");
    assert!(text.ends_with("# EOF\n"), "{text}");
    // OpenMetrics names the counter family without `_total`.
    assert!(
        text.contains("# TYPE meridian_requests counter\n"),
        "{text}"
    );
    assert!(text.contains("meridian_requests_total{"), "{text}");
}
