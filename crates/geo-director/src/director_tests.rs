use super::*;
use crate::lookup::StaticLookup;

const CLUSTER: &str = r#"
[[edge]]
name = "us-east"
region = "us-east"
url = "http://127.0.0.1:8102"
admin = "http://127.0.0.1:9102"
latitude = 38.95
longitude = -77.45

[[edge]]
name = "eu-west"
region = "eu-west"
url = "http://127.0.0.1:8101"
admin = "http://127.0.0.1:9101"
latitude = 53.35
longitude = -6.26

[[edge]]
name = "ap-southeast"
region = "ap-southeast"
url = "http://127.0.0.1:8104"
admin = "http://127.0.0.1:9104"
latitude = 1.35
longitude = 103.82
"#;

const LONDON: &str = "81.2.69.142";
const NEW_YORK: &str = "8.8.8.8";
const SYDNEY: &str = "1.1.1.1";

fn table() -> StaticLookup {
    let net = |s: &str| s.parse().expect("cidr");
    StaticLookup::new()
        .with(net("81.2.69.0/24"), 51.5, -0.13)
        .with(net("8.8.8.0/24"), 40.7, -74.0)
        .with(net("1.1.1.0/24"), -33.87, 151.2)
        .with(net("2a00:1450::/32"), 52.0, 5.0)
}

fn director(extra: &str) -> Director {
    let config = Config::parse("t.toml", &format!("{CLUSTER}\n{extra}")).expect("config");
    Director::with_lookup(config, Box::new(table())).expect("director")
}

fn chosen(d: &Director, ip: &str) -> Option<String> {
    let decision = d.route(ip.parse().expect("ip"));
    decision.edge.map(|i| d.edges()[i].name.clone())
}

fn take_down(d: &Director, name: &str) {
    let e = d.edges().iter().find(|e| e.name == name).expect("edge");
    for _ in 0..d.health_settings().policy.fall {
        e.health.record(false);
    }
}

#[test]
fn nearest_edge_wins() {
    let d = director("");
    assert_eq!(chosen(&d, LONDON).as_deref(), Some("eu-west"));
    assert_eq!(chosen(&d, NEW_YORK).as_deref(), Some("us-east"));
    assert_eq!(chosen(&d, SYDNEY).as_deref(), Some("ap-southeast"));
    assert_eq!(chosen(&d, "2a00:1450::1").as_deref(), Some("eu-west"));
    assert_eq!(d.route(LONDON.parse().expect("ip")).reason, Reason::Nearest);
}

#[test]
fn a_down_edge_is_skipped_for_the_next_nearest() {
    let d = director("");
    take_down(&d, "eu-west");
    assert_eq!(chosen(&d, LONDON).as_deref(), Some("us-east"));
}

#[test]
fn health_checks_off_counts_every_edge_up() {
    let d = director("[director]\nhealth-checks = \"off\"\n");
    take_down(&d, "eu-west");
    assert_eq!(chosen(&d, LONDON).as_deref(), Some("eu-west"));
}

#[test]
fn weight_draws_clients_from_further_away() {
    // New York is ~5,600 km from Dublin and ~330 km from Ashburn; a weight of
    // 20 on eu-west makes its weighted distance (~280) the smaller.
    let d = director("");
    let heavy = CLUSTER.replacen("longitude = -6.26", "longitude = -6.26\nweight = 20", 1);
    let config = Config::parse("t.toml", &heavy).expect("config");
    let heavy = Director::with_lookup(config, Box::new(table())).expect("director");
    assert_eq!(chosen(&d, NEW_YORK).as_deref(), Some("us-east"));
    assert_eq!(chosen(&heavy, NEW_YORK).as_deref(), Some("eu-west"));
}

#[test]
fn equal_distance_ties_break_by_name() {
    let twins = format!(
        "{CLUSTER}\n[[edge]]\nname = \"eu-west-b\"\nregion = \"eu-west\"\nurl = \"http://127.0.0.1:8109\"\n\
         admin = \"http://127.0.0.1:9109\"\nlatitude = 53.35\nlongitude = -6.26\n"
    );
    let config = Config::parse("t.toml", &twins).expect("config");
    let d = Director::with_lookup(config, Box::new(table())).expect("director");
    for _ in 0..3 {
        assert_eq!(chosen(&d, LONDON).as_deref(), Some("eu-west"));
    }
}

#[test]
fn a_coverage_zone_beats_the_database() {
    let d = director("[[coverage-zone]]\nnetworks = [\"81.2.69.0/24\"]\nedge = \"ap-southeast\"\n");
    assert_eq!(chosen(&d, LONDON).as_deref(), Some("ap-southeast"));
    let decision = d.route(LONDON.parse().expect("ip"));
    assert!(matches!(decision.placement, Placement::Zone(0, _)));
    assert_eq!(decision.reason, Reason::Preferred);
    take_down(&d, "ap-southeast");
    assert_eq!(
        d.route(LONDON.parse().expect("ip")).reason,
        Reason::PreferredDown
    );
}

#[test]
fn longest_zone_prefix_wins_and_zones_cover_private_space() {
    let d = director(
        "[[coverage-zone]]\nnetworks = [\"10.0.0.0/8\"]\nregion = \"us-east\"\n\
         [[coverage-zone]]\nnetworks = [\"10.9.0.0/16\"]\nregion = \"ap-southeast\"\n",
    );
    assert_eq!(chosen(&d, "10.1.1.1").as_deref(), Some("us-east"));
    assert_eq!(chosen(&d, "10.9.1.1").as_deref(), Some("ap-southeast"));
}

#[test]
fn private_and_unlocatable_addresses_go_to_the_default_region() {
    let d = director("[director]\ndefault-region = \"ap-southeast\"\n");
    for ip in ["10.0.0.1", "192.168.1.1", "fd00::1", "9.9.9.9"] {
        assert_eq!(chosen(&d, ip).as_deref(), Some("ap-southeast"), "{ip}");
    }
    assert_eq!(
        d.route("10.0.0.1".parse().expect("ip")).placement,
        Placement::DefaultSpecial
    );
    assert_eq!(
        d.route("9.9.9.9".parse().expect("ip")).placement,
        Placement::DefaultUnlocated
    );
}

#[test]
fn all_down_uses_the_fallback_order_else_nothing() {
    let d = director("[director]\nfallback = [\"ap-southeast\", \"eu-west\"]\n");
    let bare = director("");
    for d in [&d, &bare] {
        for e in ["us-east", "eu-west", "ap-southeast"] {
            take_down(d, e);
        }
    }
    let decision = d.route(LONDON.parse().expect("ip"));
    assert_eq!(decision.reason, Reason::Fallback);
    assert_eq!(chosen(&d, LONDON).as_deref(), Some("ap-southeast"));
    assert_eq!(
        bare.route(LONDON.parse().expect("ip")).reason,
        Reason::AllDown
    );
    assert_eq!(chosen(&bare, LONDON), None);
}

#[test]
fn distances_are_great_circle_km() {
    let d = director("");
    let eu = d
        .edges()
        .iter()
        .position(|e| e.name == "eu-west")
        .expect("edge");
    // London to Dublin is about 460 km.
    let km = d.distance_km((51.5, -0.13), eu).expect("km");
    assert!((440.0..480.0).contains(&km), "{km}");
}
