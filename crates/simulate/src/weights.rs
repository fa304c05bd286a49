//! Where internet users are: the per-country weight table clients are
//! drawn with, and each country's region.
//!
//! A client's country is drawn with probability proportional to its
//! number of internet users ([`users_millions`]), among the countries the
//! geo database holds.

use crate::model::Region;

/// What [`WEIGHTS`] is, for the report.
pub const SOURCE: &str = "internet users per country, millions, ~2023, rounded estimates after \
     ITU \"Individuals using the Internet\" (% of population, as published by the World Bank, \
     IT.NET.USER.ZS) \u{d7} World Bank population (SP.POP.TOTL); 0.1 M for each country not in \
     the table";

/// Internet users of a country missing from [`WEIGHTS`], millions: the
/// table leaves out some 80 small countries and territories (micro-states,
/// islands, Antarctica's research stations) that together hold well under
/// 1 % of users, so each gets this small equal share rather than none.
pub const OTHER_COUNTRY_MILLIONS: f64 = 0.1;

/// Internet users by ISO 3166-1 alpha-2 code, millions, about 2023.
///
/// Source: ITU, "Individuals using the Internet" (share of the population
/// that used the Internet in the last three months, from any device; the
/// ITU World Telecommunication/ICT Indicators database, as published by
/// the World Bank as indicator `IT.NET.USER.ZS`, latest year up to 2023),
/// multiplied by the World Bank's population for 2023 (`SP.POP.TOTL`), and
/// rounded (to 1 M above 10 M). Where the ITU's latest figure is older
/// (Venezuela 2017, Afghanistan and Uganda 2021, several African countries
/// 2022), that share was applied to the 2023 population. The figures are
/// estimates with a few percent of uncertainty (the ITU's own world total
/// for 2023 is 5.4 billion; this table sums to about 5.25): fine for where a
/// synthetic client comes from, not for market research. They were written
/// down from those publications without a row-by-row check against the
/// downloaded datasets; a rebuild from the CSVs is welcome.
///
/// It covers the countries with about half a million users or more (171
/// of them); the 60 largest alone are well over 90 % of the world's users.
/// Sorted by code.
pub const WEIGHTS: &[(&str, f64)] = &[
    ("AE", 9.5),
    ("AF", 7.5),
    ("AL", 2.3),
    ("AM", 2.4),
    ("AO", 15.0),
    ("AR", 41.0),
    ("AT", 8.6),
    ("AU", 26.0),
    ("AZ", 8.9),
    ("BA", 2.7),
    ("BD", 77.0),
    ("BE", 11.0),
    ("BF", 5.0),
    ("BG", 5.1),
    ("BH", 1.6),
    ("BI", 1.2),
    ("BJ", 4.7),
    ("BN", 0.45),
    ("BO", 9.0),
    ("BR", 181.0),
    ("BS", 0.37),
    ("BT", 0.7),
    ("BW", 2.0),
    ("BY", 8.7),
    ("CA", 37.0),
    ("CD", 27.0),
    ("CF", 0.7),
    ("CG", 2.5),
    ("CH", 8.5),
    ("CI", 11.0),
    ("CL", 19.0),
    ("CM", 13.0),
    ("CN", 1090.0),
    ("CO", 40.0),
    ("CR", 4.4),
    ("CU", 8.0),
    ("CV", 0.4),
    ("CY", 1.2),
    ("CZ", 9.4),
    ("DE", 77.0),
    ("DJ", 0.7),
    ("DK", 5.8),
    ("DO", 9.6),
    ("DZ", 33.0),
    ("EC", 13.0),
    ("EE", 1.2),
    ("EG", 81.0),
    ("ES", 46.0),
    ("ET", 25.0),
    ("FI", 5.3),
    ("FJ", 0.8),
    ("FR", 58.0),
    ("GA", 1.7),
    ("GB", 65.0),
    ("GE", 3.2),
    ("GH", 24.0),
    ("GM", 0.9),
    ("GN", 4.0),
    ("GQ", 1.0),
    ("GR", 8.8),
    ("GT", 11.0),
    ("GW", 0.7),
    ("GY", 0.7),
    ("HK", 7.2),
    ("HN", 6.2),
    ("HR", 3.4),
    ("HT", 4.4),
    ("HU", 8.8),
    ("ID", 192.0),
    ("IE", 5.0),
    ("IL", 9.0),
    ("IN", 750.0),
    ("IQ", 35.0),
    ("IR", 70.0),
    ("IS", 0.38),
    ("IT", 51.0),
    ("JM", 2.3),
    ("JO", 10.0),
    ("JP", 107.0),
    ("KE", 22.0),
    ("KG", 5.6),
    ("KH", 10.0),
    ("KR", 50.0),
    ("KW", 4.3),
    ("KZ", 18.0),
    ("LA", 5.0),
    ("LB", 4.6),
    ("LK", 12.0),
    ("LR", 1.5),
    ("LS", 1.0),
    ("LT", 2.5),
    ("LU", 0.65),
    ("LV", 1.7),
    ("LY", 6.1),
    ("MA", 34.0),
    ("MD", 2.1),
    ("ME", 0.58),
    ("MG", 6.0),
    ("MK", 1.7),
    ("ML", 8.0),
    ("MM", 25.0),
    ("MN", 3.0),
    ("MO", 0.65),
    ("MR", 2.0),
    ("MT", 0.5),
    ("MU", 1.0),
    ("MV", 0.5),
    ("MW", 5.0),
    ("MX", 100.0),
    ("MY", 33.0),
    ("MZ", 7.0),
    ("NA", 1.7),
    ("NE", 4.0),
    ("NG", 90.0),
    ("NI", 4.0),
    ("NL", 17.0),
    ("NO", 5.4),
    ("NP", 17.0),
    ("NZ", 4.9),
    ("OM", 4.6),
    ("PA", 3.4),
    ("PE", 26.0),
    ("PG", 3.2),
    ("PH", 87.0),
    ("PK", 105.0),
    ("PL", 32.0),
    ("PR", 2.8),
    ("PS", 4.5),
    ("PT", 9.0),
    ("PY", 5.3),
    ("QA", 2.7),
    ("RO", 17.0),
    ("RS", 5.7),
    ("RU", 130.0),
    ("RW", 4.9),
    ("SA", 35.0),
    ("SD", 14.0),
    ("SE", 10.0),
    ("SG", 5.6),
    ("SI", 1.9),
    ("SK", 5.0),
    ("SL", 2.0),
    ("SN", 10.0),
    ("SO", 3.0),
    ("SR", 0.5),
    ("SS", 1.0),
    ("SV", 4.0),
    ("SY", 8.0),
    ("SZ", 0.7),
    ("TD", 2.0),
    ("TG", 3.0),
    ("TH", 63.0),
    ("TJ", 4.0),
    ("TL", 0.5),
    ("TM", 1.5),
    ("TN", 9.8),
    ("TR", 74.0),
    ("TT", 1.2),
    ("TW", 21.0),
    ("TZ", 21.0),
    ("UA", 30.0),
    ("UG", 13.0),
    ("US", 312.0),
    ("UY", 3.1),
    ("UZ", 29.0),
    ("VE", 17.0),
    ("VN", 78.0),
    ("YE", 6.0),
    ("ZA", 45.0),
    ("ZM", 6.0),
    ("ZW", 5.7),
];

/// Internet users of `country` (ISO 3166-1 alpha-2, upper case),
/// millions: the table's figure, else [`OTHER_COUNTRY_MILLIONS`].
pub fn users_millions(country: &str) -> f64 {
    WEIGHTS
        .binary_search_by(|(cc, _)| (*cc).cmp(country))
        .ok()
        .and_then(|i| WEIGHTS.get(i))
        .map_or(OTHER_COUNTRY_MILLIONS, |&(_, m)| m)
}

/// The region (continent) of an ISO 3166 country code.
///
/// Continents follow the UN's M49 regions, with what a CDN operator means
/// by them: Central America and the Caribbean are North America; Russia is
/// Europe; Turkey, the Caucasus and the Middle East are Asia; Cyprus (an EU
/// member, served from European PoPs) is Europe; Egypt is Africa. The
/// remote territories follow M49 (Bouvet Island and South Georgia: South
/// America; the British Indian Ocean Territory and the French Southern
/// Territories: Africa; Heard Island, Christmas and Cocos Islands and the
/// US Minor Outlying Islands: Oceania). `XK` (Kosovo, as geo databases
/// write it) is Europe. Antarctica (`AQ`), continent codes some databases
/// hold instead of a country (`EU`, `AP`) and anything unknown: `None`.
pub fn region_of(country: &str) -> Option<Region> {
    let cc = country.as_bytes();
    let [a, b] = cc else {
        return None;
    };
    let cc = [a.to_ascii_uppercase(), b.to_ascii_uppercase()];
    let cc = std::str::from_utf8(&cc).ok()?;
    REGIONS
        .iter()
        .find(|(_, codes)| codes.split(' ').any(|c| c == cc))
        .map(|&(region, _)| region)
}

/// Every ISO 3166-1 alpha-2 code but `AQ`, and `XK`, by region.
const REGIONS: [(Region, &str); 6] = [
    (
        Region::NorthAmerica,
        "AG AI AW BB BL BM BQ BS BZ CA CR CU CW DM DO GD GL GP GT HN HT JM KN KY LC MF MQ MS \
         MX NI PA PM PR SV SX TC TT US VC VG VI",
    ),
    (
        Region::SouthAmerica,
        "AR BO BR BV CL CO EC FK GF GS GY PE PY SR UY VE",
    ),
    (
        Region::Europe,
        "AD AL AT AX BA BE BG BY CH CY CZ DE DK EE ES FI FO FR GB GG GI GR HR HU IE IM IS IT \
         JE LI LT LU LV MC MD ME MK MT NL NO PL PT RO RS RU SE SI SJ SK SM UA VA XK",
    ),
    (
        Region::Africa,
        "AO BF BI BJ BW CD CF CG CI CM CV DJ DZ EG EH ER ET GA GH GM GN GQ GW IO KE KM LR LS \
         LY MA MG ML MR MU MW MZ NA NE NG RE RW SC SD SH SL SN SO SS ST SZ TD TF TG TN TZ UG \
         YT ZA ZM ZW",
    ),
    (
        Region::Asia,
        "AE AF AM AZ BD BH BN BT CN GE HK ID IL IN IQ IR JO JP KG KH KP KR KW KZ LA LB LK MM \
         MN MO MV MY NP OM PH PK PS QA SA SG SY TH TJ TL TM TR TW UZ VN YE",
    ),
    (
        Region::Oceania,
        "AS AU CC CK CX FJ FM GU HM KI MH MP NC NF NR NU NZ PF PG PN PW SB TK TO TV UM VU WF \
         WS",
    ),
];

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn the_table_is_sorted_without_duplicates_for_binary_search() {
        assert!(WEIGHTS.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(WEIGHTS.iter().all(|(_, m)| m.is_finite() && *m > 0.0));
    }

    #[test]
    fn the_weights_sum_to_about_the_worlds_internet_users() {
        // ITU: 5.4 billion people used the Internet in 2023.
        let total: f64 = WEIGHTS.iter().map(|(_, m)| m).sum();
        assert!((5_000.0..5_600.0).contains(&total), "{total}");
        // The 60 largest countries hold over 90 % of them.
        let mut sizes: Vec<f64> = WEIGHTS.iter().map(|&(_, m)| m).collect();
        sizes.sort_by(|a, b| b.total_cmp(a));
        let top: f64 = sizes.iter().take(60).sum();
        assert!(top / total > 0.9, "{top} of {total}");
    }

    #[test]
    fn every_table_country_has_a_region_and_the_regions_look_like_the_world() {
        let mut by_region: BTreeMap<Region, f64> = BTreeMap::new();
        for &(cc, m) in WEIGHTS {
            let region = region_of(cc);
            assert!(region.is_some(), "{cc} has no region");
            *by_region.entry(region.unwrap_or(Region::Asia)).or_default() += m;
        }
        let share = |r| by_region.get(&r).copied().unwrap_or(0.0) / 5_300.0;
        // ITU's regional shares of 2023's users, roughly.
        assert!((0.5..0.62).contains(&share(Region::Asia)));
        assert!((0.1..0.16).contains(&share(Region::Europe)));
        assert!((0.07..0.12).contains(&share(Region::NorthAmerica)));
        assert!((0.05..0.09).contains(&share(Region::SouthAmerica)));
        assert!((0.08..0.14).contains(&share(Region::Africa)));
        assert!((0.003..0.012).contains(&share(Region::Oceania)));
    }

    #[test]
    fn regions_follow_the_operators_continents() {
        for (cc, want) in [
            ("US", Some(Region::NorthAmerica)),
            ("mx", Some(Region::NorthAmerica)),
            ("PA", Some(Region::NorthAmerica)),
            ("CU", Some(Region::NorthAmerica)),
            ("BR", Some(Region::SouthAmerica)),
            ("RU", Some(Region::Europe)),
            ("CY", Some(Region::Europe)),
            ("XK", Some(Region::Europe)),
            ("TR", Some(Region::Asia)),
            ("SA", Some(Region::Asia)),
            ("IL", Some(Region::Asia)),
            ("EG", Some(Region::Africa)),
            ("NZ", Some(Region::Oceania)),
            ("AQ", None),
            ("EU", None),
            ("ZZ", None),
            ("", None),
            ("USA", None),
            ("\u{e9}", None),
        ] {
            assert_eq!(region_of(cc), want, "{cc}");
        }
    }

    #[test]
    fn every_iso_code_is_in_one_region_once() {
        let mut seen = BTreeMap::new();
        for (region, codes) in REGIONS {
            for cc in codes.split(' ') {
                assert_eq!(cc.len(), 2, "{cc:?}");
                assert!(seen.insert(cc, region).is_none(), "{cc} twice");
            }
        }
        // ISO 3166-1 has 249 codes; all but AQ, plus XK.
        assert_eq!(seen.len(), 249);
    }

    #[test]
    fn countries_missing_from_the_table_get_the_small_default() {
        assert_eq!(users_millions("US"), 312.0);
        assert_eq!(users_millions("TV"), OTHER_COUNTRY_MILLIONS);
    }
}
