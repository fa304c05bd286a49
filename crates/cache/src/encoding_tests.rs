use http::HeaderValue;

use super::*;

fn ae(values: &[&'static str]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for v in values {
        h.append(ACCEPT_ENCODING, HeaderValue::from_static(v));
    }
    h
}

const ALL: [Coding; 3] = [Coding::Br, Coding::Zstd, Coding::Gzip];

#[test]
fn negotiation_matrix_rfc9110_12_5_3() {
    use Coding::*;
    let cases: &[(&[&'static str], &[Coding], Coding)] = &[
        (&[], &ALL, Identity),
        (&[""], &ALL, Identity),
        (&["gzip"], &ALL, Gzip),
        (&["gzip, deflate, br"], &ALL, Br),
        (&["br, gzip"], &ALL, Br),
        (&["gzip, zstd"], &ALL, Zstd),
        (&["GZIP, Br"], &ALL, Br),
        (&["x-gzip"], &ALL, Gzip),
        (&["gzip", "br"], &ALL, Br),
        (&["br;q=0.5, gzip;q=0.8"], &ALL, Gzip),
        (&["br;q=0.5, gzip;Q=0.8"], &ALL, Gzip),
        (&["br ; q=0.9, gzip ; q = 0.9"], &ALL, Br),
        (&["br;q=0, gzip"], &ALL, Gzip),
        (&["br;q=0.000"], &ALL, Identity),
        (&["*"], &ALL, Br),
        (&["*;q=0.5"], &ALL, Br),
        (&["*, br;q=0"], &ALL, Zstd),
        (&["gzip;q=0.3, identity;q=0.5"], &ALL, Identity),
        (&["identity"], &ALL, Identity),
        (&["identity;q=0"], &ALL, Identity),
        (&["identity;q=0, gzip;q=0.1"], &ALL, Gzip),
        (&["*;q=0"], &ALL, Identity),
        (&["*;q=0, identity"], &ALL, Identity),
        (&["deflate, compress"], &ALL, Identity),
        (&["br"], &[Coding::Gzip], Identity),
        (&["br, gzip;q=0.5"], &[Coding::Gzip], Gzip),
        (&["*"], &[], Identity),
        // Malformed q: the member is ignored.
        (&["br;q=2, gzip"], &ALL, Gzip),
        (&["br;q=1.5, gzip"], &ALL, Gzip),
        (&["br;q=0.1234, gzip;q=0.1"], &ALL, Gzip),
        (&["br;q=abc"], &ALL, Identity),
        (&["br;q=, gzip;q=0.2"], &ALL, Gzip),
        (&["br;q=-1"], &ALL, Identity),
        (&["br;q=1.000"], &ALL, Br),
        // The first member naming a coding counts.
        (&["gzip;q=0, gzip"], &ALL, Identity),
        (&[",, ,br"], &ALL, Br),
        (&["br;level=5"], &ALL, Br),
    ];
    for (values, offered, want) in cases {
        assert_eq!(
            negotiate(&ae(values), offered),
            *want,
            "{values:?} {offered:?}"
        );
    }
}

#[test]
fn members_past_the_limit_are_ignored() {
    let mut v = "deflate, ".repeat(MAX_MEMBERS);
    v.push_str("br");
    let mut h = HeaderMap::new();
    h.insert(ACCEPT_ENCODING, HeaderValue::from_str(&v).expect("value"));
    assert_eq!(negotiate(&h, &ALL), Coding::Identity);
}

#[test]
fn types_match_exactly_by_top_level_or_suffix() {
    let types: Vec<String> = ["text/*", "application/json", "*/*+xml"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let cases: &[(&[u8], bool)] = &[
        (b"text/html; charset=utf-8", true),
        (b"TEXT/CSS", true),
        (b"application/json", true),
        (b"application/JSON ; charset=x", true),
        (b"application/jsonp", false),
        (b"application/rss+xml", true),
        (b"image/png", false),
        (b"font/woff2", false),
        (b"text", false),
        (b"", false),
        (b"\xff/x", false),
    ];
    for (ct, want) in cases {
        assert_eq!(
            type_listed(ct, &types),
            *want,
            "{:?}",
            String::from_utf8_lossy(ct)
        );
    }
}

fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut m = HeaderMap::new();
    for (k, v) in pairs {
        m.append(*k, HeaderValue::from_static(v));
    }
    m
}

#[test]
fn never_encoded_twice_nor_against_no_transform_rfc9110_7_7() {
    let types = vec!["text/*".to_string()];
    let ok = http::StatusCode::OK;
    assert!(encodable(ok, &h(&[("content-type", "text/plain")]), &types));
    assert!(encodable(
        ok,
        &h(&[
            ("content-type", "text/plain"),
            ("content-encoding", "identity")
        ]),
        &types
    ));
    assert!(!encodable(
        ok,
        &h(&[("content-type", "text/plain"), ("content-encoding", "gzip")]),
        &types
    ));
    assert!(!encodable(
        ok,
        &h(&[
            ("content-type", "text/plain"),
            ("cache-control", "max-age=5, no-transform")
        ]),
        &types
    ));
    assert!(!encodable(
        http::StatusCode::PARTIAL_CONTENT,
        &h(&[("content-type", "text/plain")]),
        &types
    ));
    assert!(!encodable(ok, &h(&[("content-type", "image/png")]), &types));
    assert!(!encodable(ok, &HeaderMap::new(), &types));
}

#[test]
fn encoded_etags_are_weak_and_distinct() {
    let cases: &[(&[u8], Coding, Option<&str>)] = &[
        (b"\"abc\"", Coding::Br, Some("W/\"abc-br\"")),
        (b"\"abc\"", Coding::Gzip, Some("W/\"abc-gz\"")),
        (b"W/\"abc\"", Coding::Zstd, Some("W/\"abc-zstd\"")),
        (b"abc", Coding::Br, None),
        (b"\"a\"b\"", Coding::Br, None),
    ];
    for (tag, c, want) in cases {
        let got = encoded_etag(tag, *c);
        assert_eq!(got.as_ref().map(|v| v.to_str().expect("ascii")), *want);
    }
}

#[test]
fn vary_is_added_once() {
    let mut m = h(&[("vary", "Accept-Language")]);
    add_vary(&mut m);
    add_vary(&mut m);
    assert_eq!(m.get_all("vary").iter().count(), 2);
    assert!(varies_on_encoding(&m));
    let mut star = h(&[("vary", "*")]);
    add_vary(&mut star);
    assert_eq!(star.get_all("vary").iter().count(), 1);
}
