use super::*;

const EDGES: &str = r#"
[[edge]]
name = "eu-west"
region = "eu-west"
url = "http://127.0.0.1:8101"
admin = "http://127.0.0.1:9101"
latitude = 53.35
longitude = -6.26

[[edge]]
name = "us-east"
region = "us-east"
url = "http://127.0.0.1:8102/"
admin = "http://127.0.0.1:9102"
latitude = 38.9
longitude = -77.0
weight = 2
"#;

fn err(text: &str) -> String {
    match Config::parse("t.toml", text) {
        Ok(_) => panic!("config must be rejected:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_file_of_only_edge_tables_is_valid_with_defaults() {
    let c = Config::parse("t.toml", EDGES).expect("valid");
    assert_eq!(c.edges.len(), 2);
    assert_eq!(c.edges[1].weight, 2.0);
    assert_eq!(
        c.default_region, "eu-west",
        "default region is the first edge's"
    );
    assert!(c.health.enabled);
    assert_eq!(c.health.interval, Duration::from_secs(2));
    assert_eq!(c.geoip, vec![PathBuf::from(DEFAULT_GEOIP)]);
}

#[test]
fn other_services_tables_are_ignored() {
    let text = format!(
        "{EDGES}\n[origin]\nroot = \"x\"\n[[shield]]\nname = \"s\"\nurl = \"http://127.0.0.1:8500\"\nadmin = \"http://127.0.0.1:9500\"\n[cluster]\nfoo = 1\n"
    );
    assert!(Config::parse("t.toml", &text).is_ok());
}

#[test]
fn unknown_keys_in_director_tables_are_rejected_with_file_and_key() {
    let msg = err(&format!("{EDGES}\n[director]\nhealth-intervall = \"1s\"\n"));
    assert!(
        msg.contains("t.toml") && msg.contains("health-intervall"),
        "{msg}"
    );
    let msg = err(&format!("{EDGES}\n[[edge]]\nname = \"x\"\nbogus = 1\n"));
    assert!(msg.contains("bogus"), "{msg}");
}

#[test]
fn cross_references_are_checked() {
    let cases = [
        (
            "[director]\ndefault-region = \"mars\"\n",
            "director.default-region",
        ),
        (
            "[director]\nfallback = [\"nope\"]\n",
            "director.fallback[0]",
        ),
        (
            "[[coverage-zone]]\nnetworks = [\"10.0.0.0/8\"]\nedge = \"nope\"\n",
            "coverage-zone[0].edge",
        ),
        (
            "[[coverage-zone]]\nnetworks = [\"10.0.0.0/8\"]\n",
            "coverage-zone[0].edge",
        ),
        (
            "[[coverage-zone]]\nnetworks = []\nregion = \"us-east\"\n",
            "coverage-zone[0].networks",
        ),
    ];
    for (extra, key) in cases {
        let msg = err(&format!("{EDGES}\n{extra}"));
        assert!(msg.contains(key), "{key}: {msg}");
    }
}

#[test]
fn edge_values_are_checked() {
    let dup = EDGES.replace("name = \"us-east\"", "name = \"eu-west\"");
    assert!(err(&dup).contains("edge[1].name"));
    assert!(
        err(&EDGES.replace("latitude = 38.9", "latitude = 138.9")).contains("edge[1].latitude")
    );
    assert!(err(&EDGES.replace("http://127.0.0.1:8102/", "ftp://x")).contains("edge[1].url"));
    assert!(err(&EDGES.replace("weight = 2", "weight = 0")).contains("edge[1].weight"));
    assert!(err("").contains("edge"));
}

#[test]
fn health_checks_take_on_off_or_bool() {
    for (v, want) in [
        ("\"off\"", false),
        ("false", false),
        ("\"on\"", true),
        ("true", true),
    ] {
        let c = Config::parse(
            "t.toml",
            &format!("{EDGES}\n[director]\nhealth-checks = {v}\n"),
        )
        .expect(v);
        assert_eq!(c.health.enabled, want, "{v}");
    }
    assert!(
        err(&format!("{EDGES}\n[director]\nhealth-checks = \"maybe\"\n")).contains("health-checks")
    );
}

#[test]
fn geoip_takes_one_path_or_a_list() {
    let c = Config::parse(
        "t.toml",
        &format!("{EDGES}\n[director]\ngeoip = [\"a.mmdb\", \"b.mmdb\"]\n"),
    )
    .expect("list");
    assert_eq!(c.geoip.len(), 2);
}

/// Every example in config/ must load, so none can rot.
#[test]
fn example_configs_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    let mut loaded = 0;
    for entry in std::fs::read_dir(&dir).expect("config/ exists") {
        let path = entry.expect("dir entry").path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        // Only files meant for the director: those with [[edge]] tables.
        if path.extension().is_some_and(|e| e == "toml") && text.contains("[[edge]]") {
            Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
            loaded += 1;
        }
    }
    assert!(
        loaded >= 1,
        "no director example found in {}",
        dir.display()
    );
}

#[test]
fn health_timeout_may_not_exceed_the_interval() {
    let text = format!("{EDGES}\n[director]\nhealth-interval = \"1s\"\nhealth-timeout = \"2s\"\n");
    assert!(err(&text).contains("director.health-timeout"));
    let off = format!("{text}health-checks = \"off\"\n");
    assert!(
        Config::parse("t.toml", &off).is_ok(),
        "not checked when health checks are off"
    );
}

#[test]
fn forwarding_defaults_to_x_forwarded_for_read_32_hops_from_the_right() {
    let c = Config::parse("t.toml", EDGES).expect("valid");
    assert_eq!(c.forwarded_header, ForwardedHeader::XForwardedFor);
    assert_eq!(c.max_forwarded_hops, 32);
    let c = Config::parse(
        "t.toml",
        &format!("{EDGES}\n[director]\nforwarded-header = \"forwarded\"\nmax-forwarded-hops = 4\n"),
    )
    .expect("valid");
    assert_eq!(c.forwarded_header, ForwardedHeader::Forwarded);
    assert_eq!(c.max_forwarded_hops, 4);
    let msg = err(&format!("{EDGES}\n[director]\nmax-forwarded-hops = 0\n"));
    assert!(
        msg.contains("t.toml") && msg.contains("director.max-forwarded-hops"),
        "{msg}"
    );
    let msg = err(&format!(
        "{EDGES}\n[director]\nforwarded-header = \"x-real-ip\"\n"
    ));
    assert!(
        msg.contains("t.toml") && msg.contains("forwarded-header"),
        "{msg}"
    );
}

const SHIELD: &str = r#"
[[shield]]
name = "shield-1"
url = "http://127.0.0.1:8500"
admin = "http://127.0.0.1:9500"
"#;

#[test]
fn purge_log_short_form_and_table() {
    let c = Config::parse(
        "t.toml",
        &format!("purge-log = \"nats://127.0.0.1:4222\"\n{EDGES}{SHIELD}"),
    )
    .expect("valid");
    assert_eq!(c.purge_log.url.as_deref(), Some("nats://127.0.0.1:4222"));
    assert_eq!(c.purge_log.state_dir, None);
    let nodes = crate::purge_log::nodes(&c);
    assert_eq!(nodes[0].name, "shield-1", "shields first");
    assert_eq!(nodes.len(), 3);
    let text = format!(
        "{EDGES}{SHIELD}\n[purge-log]\nstate-dir = \"/tmp/x\"\nmax-lag = \"1s\"\npoll-wait = \"200ms\"\nconfirm-timeout = \"3s\"\nretain = 10\n"
    );
    let c = Config::parse("t.toml", &text).expect("valid");
    let p = &c.purge_log;
    assert_eq!(p.state_dir.as_deref(), Some(Path::new("/tmp/x")));
    assert_eq!(
        (p.max_lag, p.poll_wait, p.confirm_timeout, p.retain),
        (
            Duration::from_secs(1),
            Duration::from_millis(200),
            Duration::from_secs(3),
            10
        )
    );
}

#[test]
fn purge_log_mistakes_name_the_key() {
    let cases = [
        ("[purge-log]\nmax-lag = \"1s\"\n", "purge-log.poll-wait"),
        ("[purge-log]\nurl = \"ftp://x\"\n", "purge-log.url"),
        (
            "[purge-log]\nurl = \"nats://x:4222\"\nstate-dir = \"d\"\n",
            "purge-log.state-dir",
        ),
        ("[purge-log]\nretain = 0\n", "purge-log.retain"),
        ("[purge-log]\nstate-dirr = \"d\"\n", "state-dirr"),
        (
            "[[shield]]\nname = \"eu-west\"\nurl = \"http://a:1\"\nadmin = \"http://a:2\"\n",
            "shield[0].name",
        ),
        (
            "[[shield]]\nname = \"s\"\nurl = \"a:1\"\nadmin = \"http://a:2\"\n",
            "shield[0].url",
        ),
    ];
    for (extra, key) in cases {
        let msg = err(&format!("{EDGES}{extra}"));
        assert!(msg.contains("t.toml") && msg.contains(key), "{key}: {msg}");
    }
}

#[test]
fn the_example_cluster_file_has_the_shield_and_the_log() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/cluster.toml");
    let c = Config::load(&path).expect("config/cluster.toml is valid");
    assert_eq!(c.shields.len(), 2);
    assert_eq!(c.shields[0].name, "shield-us");
    assert_eq!(c.edges.len(), 6);
    assert_eq!(
        c.purge_log.url.as_deref(),
        Some("http://127.0.0.1:9000"),
        "the director's admin listener"
    );
    assert_eq!(c.purge_log.state_dir, None, "kept only with --purge-state");
}
