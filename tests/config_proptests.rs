//! Property tests of every config loader (issue 13): the edge's, the
//! shield's and the director's, each over text near its example file in
//! `config/`: `meridian_common::parse_toml` and the validation after it.

use std::path::Path;

use proptest::prelude::*;

/// A directory no relative path in the text can reach.
const DIR: &str = "/nonexistent-meridian-proptest";

/// A value of any TOML type, some of them near what the loaders take.
fn odd_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "-?[0-9]{1,22}",
        "[0-9]{1,3}\\.[0-9]{1,3}",
        "\"[ -~&&[^\"\\\\]]{0,16}\"",
        "\"[0-9]{1,12} ?(B|KiB|MiB|GiB|TiB|s|ms|m|h|day|d|parsecs)?\"",
        "true|false",
        "\\[\\]|\\[\"[a-z:/.0-9;=]{0,20}\"\\]",
        "\"(http|https|nats)://[a-z0-9.:\\[\\]]{0,20}(/[a-z]{0,4})?(;[a-z-]{1,8}(=[a-z0-9]{0,4})?)?\"",
        "\\{\\}|\\{ ?[a-z-]{1,8} = [0-9]{1,3} ?\\}",
    ]
}

/// TOML-ish text near a real config file: the example with lines
/// replaced, inserted, dropped, values swapped for ones of other types,
/// and maybe cut short at any character.
fn near_config(example: &'static str) -> impl Strategy<Value = String> {
    let lines: Vec<&'static str> = example.lines().collect();
    let odd_line = prop_oneof![
        (odd_value(), "[a-z-]{1,16}").prop_map(|(v, k)| format!("{k} = {v}")),
        "\\[\\[?[a-z-]{1,12}\\]\\]?",
        "[ -~]{0,30}",
    ];
    let edit = (any::<prop::sample::Index>(), 0u8..4, odd_line, odd_value());
    (
        proptest::collection::vec(edit, 0..6),
        proptest::option::of(any::<prop::sample::Index>()),
    )
        .prop_map(move |(edits, cut)| {
            let mut text: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
            for (at, op, line, value) in edits {
                let i = at.index(text.len().max(1));
                match op {
                    _ if text.is_empty() => text.push(line),
                    0 => text[i] = line,
                    1 => text.insert(i, line),
                    2 => {
                        text.remove(i);
                    }
                    _ => {
                        if let Some((key, _)) = text[i].split_once(" = ") {
                            text[i] = format!("{key} = {value}");
                        }
                    }
                }
            }
            let mut text = text.join("\n");
            if let Some(cut) = cut {
                let at = cut.index(text.len() + 1);
                let at = (0..=at)
                    .rev()
                    .find(|&i| text.is_char_boundary(i))
                    .unwrap_or(0);
                text.truncate(at);
            }
            text
        })
}

/// `result`, the load of `file`, is fine or an error naming the file.
fn names_the_file<T>(
    file: &str,
    result: Result<T, meridian_common::ConfigError>,
) -> Result<(), TestCaseError> {
    if let Err(e) = result {
        let msg = e.to_string();
        prop_assert!(msg.contains(file), "{}", msg);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Arbitrary TOML-ish text never panics a loader, and every error,
    /// from the TOML syntax to the last validation rule, names the file.
    #[test]
    fn any_edge_text_loads_or_names_the_file(text in near_config(include_str!("../config/edge.toml"))) {
        let file = format!("{DIR}/edge.toml");
        names_the_file(&file, meridian_common::parse_toml::<meridian_edge::FileConfig>(Path::new(&file), &text)
            .and_then(|fc| fc.validate(&file)))?;
    }

    #[test]
    fn any_shield_text_loads_or_names_the_file(text in near_config(include_str!("../config/shield.toml"))) {
        let file = format!("{DIR}/shield.toml");
        names_the_file(&file, meridian_common::parse_toml::<meridian_origin_shield::FileConfig>(Path::new(&file), &text)
            .and_then(|fc| fc.validate(&file)))?;
    }

    #[test]
    fn any_director_text_loads_or_names_the_file(text in near_config(include_str!("../config/cluster.toml"))) {
        let file = format!("{DIR}/director.toml");
        names_the_file(&file, meridian_geo_director::Config::parse(&file, &text))?;
    }
}
