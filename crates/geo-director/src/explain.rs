//! The JSON body of `GET /v1/route?ip=ADDR`: the whole decision spelled out,
//! for operators asking "why did this client go there?".

use serde::Serialize;

use crate::client::AddressSource;
use crate::director::{Decision, Director, Placement, Reason, Target};
use crate::lookup::{CountryCode, Precision};

#[derive(Serialize)]
pub struct Explanation {
    pub address: String,
    pub address_source: AddressSource,
    pub location: Location,
    pub candidates: Vec<Candidate>,
    pub chosen: Option<String>,
    pub url: Option<String>,
    pub reason: String,
}

#[derive(Serialize)]
pub struct Location {
    /// `database`, `coverage-zone` or `default`.
    pub source: &'static str,
    pub latitude: f64,
    pub longitude: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<CountryCode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub precision: Option<Precision>,
    /// The database file(s), the zone and network, or why the default applied.
    pub detail: String,
}

#[derive(Serialize)]
pub struct Candidate {
    pub name: String,
    pub region: String,
    pub url: String,
    pub distance_km: f64,
    pub weight: f64,
    pub healthy: bool,
    pub preferred: bool,
}

fn target_text(d: &Director, t: Option<&Target>) -> String {
    match t {
        Some(Target::Edge(i)) => format!(
            "edge `{}`",
            d.edges().get(*i).map_or("?", |e| e.name.as_str())
        ),
        Some(Target::Region(r)) => format!("region `{r}`"),
        None => "nothing".into(),
    }
}

pub fn explain(d: &Director, decision: &Decision, source: AddressSource) -> Explanation {
    let (placement, target) = d.place(decision.ip);
    let (lat, lon) = decision.from;
    let location = match placement {
        Placement::Database(g) => Location {
            source: "database",
            latitude: g.latitude,
            longitude: g.longitude,
            country: g.country,
            precision: Some(g.precision),
            detail: d.database(),
        },
        Placement::Zone(zone, net) => Location {
            source: "coverage-zone",
            latitude: lat,
            longitude: lon,
            country: None,
            precision: None,
            detail: format!(
                "{} matched {net} and sends to {}",
                d.zone_name(zone).unwrap_or_default(),
                target_text(d, d.zone_target(zone))
            ),
        },
        Placement::DefaultSpecial | Placement::DefaultUnlocated => Location {
            source: "default",
            latitude: lat,
            longitude: lon,
            country: None,
            precision: None,
            detail: format!(
                "{} address: default region `{}`",
                if placement == Placement::DefaultSpecial {
                    "private or reserved"
                } else {
                    "unlocatable"
                },
                d.default_region()
            ),
        },
    };
    let mut candidates: Vec<Candidate> = d
        .edges()
        .iter()
        .enumerate()
        .map(|(i, e)| Candidate {
            name: e.name.clone(),
            region: e.region.clone(),
            url: e.url.clone(),
            distance_km: (d.distance_km(decision.from, i).unwrap_or(0.0) * 10.0).round() / 10.0,
            weight: e.weight,
            healthy: d.is_up(i),
            preferred: d.prefers(target, i),
        })
        .collect();
    candidates.sort_by(|a, b| {
        a.distance_km
            .total_cmp(&b.distance_km)
            .then(a.name.cmp(&b.name))
    });
    let chosen = decision.edge.and_then(|i| d.edges().get(i));
    let reason = match decision.reason {
        Reason::Nearest => {
            // Name the nearer edges that were skipped, so a surprising choice explains itself.
            let chosen_km = candidates
                .iter()
                .find(|c| Some(&c.name) == chosen.map(|e| &e.name));
            let skipped: Vec<&str> = candidates
                .iter()
                .take_while(|c| chosen_km.is_some_and(|k| c.distance_km < k.distance_km))
                .filter(|c| !c.healthy)
                .map(|c| c.name.as_str())
                .collect();
            if skipped.is_empty() {
                "nearest healthy edge".to_string()
            } else {
                format!("nearest healthy edge; nearer {} down", skipped.join(", "))
            }
        }
        Reason::Preferred => format!("healthy edge of {}", target_text(d, target)),
        Reason::PreferredDown => format!(
            "{} is down: nearest healthy edge to it",
            target_text(d, target)
        ),
        Reason::Fallback => "every edge is down: first edge of the fallback order".into(),
        Reason::AllDown => "every edge is down and no fallback order is configured".into(),
    };
    Explanation {
        address: decision.ip.to_string(),
        address_source: source,
        location,
        candidates,
        chosen: chosen.map(|e| e.name.clone()),
        url: chosen.map(|e| e.url.clone()),
        reason,
    }
}
