#![allow(clippy::type_complexity)] // table-driven cases read best inline
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue, Method, StatusCode};

use super::*;

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

fn date(secs: u64) -> String {
    httpdate::fmt_http_date(t(secs))
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            http::header::HeaderName::from_bytes(k.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    h
}

fn store(status: u16, resp: &[(&str, &str)]) -> Result<Freshness, NotStorable> {
    storable(
        &Policy::default(),
        &Method::GET,
        &HeaderMap::new(),
        StatusCode::from_u16(status).expect("status"),
        &headers(resp),
        t(0),
        t(0),
    )
}

fn lifetime(resp: &[(&str, &str)]) -> Option<u64> {
    store(200, resp).ok().map(|f| f.lifetime.as_secs())
}

#[test]
fn freshness_order_rfc9111_4_2_1() {
    let d0 = date(0);
    let e100 = date(100);
    let cases: Vec<(&str, Vec<(&str, &str)>, Option<u64>)> = vec![
        (
            "s_maxage_overrides_max_age",
            vec![("cache-control", "max-age=10, s-maxage=20")],
            Some(20),
        ),
        (
            "max_age_overrides_expires",
            vec![
                ("cache-control", "max-age=10"),
                ("date", &d0),
                ("expires", &e100),
            ],
            Some(10),
        ),
        (
            "expires_minus_date",
            vec![("date", &d0), ("expires", &e100)],
            Some(100),
        ),
        (
            "invalid_expires_is_expired_rfc9111_5_3",
            vec![("date", &d0), ("expires", "0"), ("etag", "\"a\"")],
            Some(0),
        ),
        (
            "cdn_cache_control_overrides_cache_control_rfc9213_2_2",
            vec![
                ("cache-control", "max-age=10"),
                ("cdn-cache-control", "max-age=300"),
            ],
            Some(300),
        ),
        (
            "surrogate_control_overrides_cache_control",
            vec![
                ("cache-control", "max-age=10"),
                ("surrogate-control", "max-age=60"),
            ],
            Some(60),
        ),
        (
            "cdn_cache_control_beats_surrogate_control",
            vec![
                ("surrogate-control", "max-age=60"),
                ("cdn-cache-control", "max-age=30"),
            ],
            Some(30),
        ),
        (
            "targeted_field_ignores_expires_rfc9213_2_2",
            vec![
                ("cdn-cache-control", "public"),
                ("date", &d0),
                ("expires", &e100),
                ("etag", "\"x\""),
            ],
            Some(0),
        ),
    ];
    for (name, resp, want) in cases {
        assert_eq!(lifetime(&resp), want, "{name}");
    }
}

#[test]
fn targeted_no_store_wins_over_cache_control_rfc9213_2_2() {
    assert_eq!(
        store(
            200,
            &[
                ("cache-control", "max-age=60"),
                ("cdn-cache-control", "no-store")
            ]
        )
        .err(),
        Some(NotStorable::NoStore)
    );
    // And a CDN may store what browsers must not.
    assert!(
        store(
            200,
            &[
                ("cache-control", "private"),
                ("cdn-cache-control", "max-age=60")
            ]
        )
        .is_ok()
    );
}

/// RFC 9213 §2.1: CDN-Cache-Control is an RFC 8941 dictionary. A field that
/// fails to parse is ignored whole, a directive of the wrong type is
/// ignored; either way Cache-Control (here max-age=5) applies.
/// Surrogate-Control is not a Structured Field and keeps the lenient parser.
#[test]
fn cdn_cache_control_is_a_structured_field_rfc9213_2_1() {
    let cases: &[(&str, &str, Option<u64>)] = &[
        ("cdn-cache-control", "max-age=100", Some(100)),
        ("cdn-cache-control", "max-age=100, public", Some(100)),
        // Parameters are allowed and ignored.
        ("cdn-cache-control", "max-age=100;x=1", Some(100)),
        // Split over lines, combined.
        ("cdn-cache-control", "public\nmax-age=100", Some(100)),
        // Parse failures: the whole field goes, Cache-Control applies.
        ("cdn-cache-control", "max-age=10000, &&&&&", Some(5)),
        ("cdn-cache-control", "Max-Age=100", Some(5)),
        ("cdn-cache-control", "max-age=100,", Some(5)),
        ("cdn-cache-control", "max-age=1000000000000000", Some(5)),
        ("cdn-cache-control", "public\n&&", Some(5)),
        // Wrong types: the directive goes (nothing else left: Cache-Control).
        ("cdn-cache-control", "max-age=\"10000\"", Some(5)),
        ("cdn-cache-control", "max-age=1.5", Some(5)),
        ("cdn-cache-control", "max-age=?1", Some(5)),
        ("cdn-cache-control", "max-age", Some(5)),
        ("cdn-cache-control", "max-age=(1 2)", Some(5)),
        // ... but the rest of a valid field still governs: targeted, so no
        // Cache-Control; heuristics without Last-Modified give zero.
        (
            "cdn-cache-control",
            "max-age=\"10000\", s-maxage=30",
            Some(30),
        ),
        // Negative is stale; huge is capped (RFC 9111 §1.2.2).
        ("cdn-cache-control", "max-age=-1, stale-if-error=9", Some(0)),
        (
            "cdn-cache-control",
            "max-age=999999999999999",
            Some(2_147_483_648),
        ),
        // Surrogate-Control keeps the Cache-Control syntax.
        ("surrogate-control", "max-age=\"100\"", Some(100)),
        ("surrogate-control", "max-age=100, &&&&&", Some(100)),
    ];
    for &(name, value, want) in cases {
        let mut resp = headers(&[("cache-control", "max-age=5")]);
        for line in value.split('\n') {
            resp.append(
                http::header::HeaderName::from_static(name),
                HeaderValue::from_str(line).expect("value"),
            );
        }
        let got = storable(
            &Policy::default(),
            &Method::GET,
            &HeaderMap::new(),
            StatusCode::OK,
            &resp,
            t(0),
            t(0),
        )
        .ok()
        .map(|f| f.lifetime.as_secs());
        assert_eq!(got, want, "{name}: {value}");
    }
}

#[test]
fn structured_boolean_directives_rfc9213_2_1() {
    let cc = |v: &str| {
        let h = headers(&[("cdn-cache-control", v)]);
        CacheControl::from_structured(&h, &CDN_CACHE_CONTROL).expect("parses")
    };
    assert!(cc("no-store").no_store);
    assert!(!cc("no-store=?0").no_store);
    // Restrictive directives hold with any value but false (safe reading).
    assert!(cc("no-cache=(\"set-cookie\")").no_cache);
    assert!(cc("private=\"x\"").private);
    assert!(cc("must-revalidate;a=1").must_revalidate);
    // Permissive ones only as true.
    assert!(cc("public").public);
    assert!(!cc("public=\"yes\"").public);
    assert!(!cc("public=?0").public);
    // The last occurrence of a key wins in a dictionary (RFC 8941 §4.2.2).
    assert_eq!(cc("max-age=1, max-age=2").max_age, Some(2));
    assert!(CacheControl::from_structured(&headers(&[]), &CDN_CACHE_CONTROL).is_none());
    for garbage in ["\"", "=", "a=(", "a=:=:", "a=?2", "a=1;", "a;b=", "\u{7f}"] {
        if let Ok(v) = HeaderValue::from_str(garbage) {
            let mut h = HeaderMap::new();
            h.insert("cdn-cache-control", v);
            let _ = CacheControl::from_structured(&h, &CDN_CACHE_CONTROL);
        }
    }
}

#[test]
fn heuristic_freshness_is_a_fraction_of_last_modified_age_rfc9111_4_2_2() {
    let lm = httpdate::fmt_http_date(t(0) - Duration::from_secs(1000));
    let d0 = date(0);
    assert_eq!(
        lifetime(&[("date", &d0), ("last-modified", &lm)]),
        Some(100)
    );
    let old = httpdate::fmt_http_date(t(0) - Duration::from_secs(100 * 86_400));
    assert_eq!(
        lifetime(&[("date", &d0), ("last-modified", &old)]),
        Some(86_400),
        "capped"
    );
}

#[test]
fn heuristic_applies_only_without_explicit_freshness_rfc9111_4_2_2() {
    let lm = httpdate::fmt_http_date(t(0) - Duration::from_secs(1000));
    let d0 = date(0);
    let f = store(
        200,
        &[
            ("date", &d0),
            ("last-modified", &lm),
            ("cache-control", "max-age=5"),
        ],
    )
    .expect("storable");
    assert_eq!(f.lifetime.as_secs(), 5);
    assert!(!f.heuristic);
}

#[test]
fn what_is_not_stored_rfc9111_3() {
    let cases: Vec<(&str, u16, Vec<(&str, &str)>, NotStorable)> = vec![
        (
            "no_store",
            200,
            vec![("cache-control", "no-store, max-age=60")],
            NotStorable::NoStore,
        ),
        (
            "private_in_shared_cache_rfc9111_5_2_2_7",
            200,
            vec![("cache-control", "private, max-age=60")],
            NotStorable::Private,
        ),
        (
            "partial_content_not_stored",
            206,
            vec![("cache-control", "max-age=60")],
            NotStorable::Status,
        ),
        (
            "server_error_without_explicit_freshness_rfc9111_3",
            503,
            vec![("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT")],
            NotStorable::NoFreshness,
        ),
        (
            "public_server_error_is_not_heuristically_fresh",
            500,
            vec![("cache-control", "public"), ("etag", "\"a\"")],
            NotStorable::NoFreshness,
        ),
        (
            "interim_response_never_stored_rfc9110_15_2",
            103,
            vec![("cache-control", "max-age=60")],
            NotStorable::Status,
        ),
        (
            "not_modified_not_stored",
            304,
            vec![("cache-control", "max-age=60")],
            NotStorable::Status,
        ),
        (
            "set_cookie_not_stored_by_default",
            200,
            vec![("cache-control", "max-age=60"), ("set-cookie", "a=b")],
            NotStorable::SetCookie,
        ),
        (
            "vary_star_never_matches_rfc9111_4_1",
            200,
            vec![("cache-control", "max-age=60"), ("vary", "accept, *")],
            NotStorable::VaryStar,
        ),
        (
            "non_heuristic_status_needs_explicit_freshness",
            302,
            vec![("etag", "\"a\"")],
            NotStorable::NoFreshness,
        ),
        (
            "no_freshness_no_validators_not_reused",
            200,
            vec![],
            NotStorable::NotReusable,
        ),
        (
            "no_cache_without_validator_not_reused",
            200,
            vec![("cache-control", "no-cache, max-age=60")],
            NotStorable::NotReusable,
        ),
    ];
    for (name, status, resp, want) in cases {
        assert_eq!(store(status, &resp).err(), Some(want), "{name}");
    }
}

#[test]
fn what_is_stored_rfc9111_3() {
    assert!(
        store(302, &[("cache-control", "max-age=60")]).is_ok(),
        "any status with explicit freshness"
    );
    assert!(
        store(404, &[("etag", "\"a\"")]).is_ok(),
        "heuristically cacheable status with a validator"
    );
    assert!(
        store(200, &[("cache-control", "max-age=0, stale-if-error=60")]).is_ok(),
        "a stale-if-error window makes it reusable without a validator (RFC 5861 §4)"
    );
    let f = store(200, &[("cache-control", "no-cache"), ("etag", "\"a\"")])
        .expect("no-cache with validator is stored");
    assert!(f.no_cache);
}

/// RFC 9110 §15.1: these statuses may be given heuristic freshness; any
/// other (599 unknown, 302, 500) needs explicit freshness (RFC 9111 §4.2.2).
#[test]
fn heuristic_freshness_for_listed_statuses_rfc9110_15_1() {
    let d = date(1000);
    // Last modified 1000 s before Date: 10% heuristic = 100 s.
    let resp = [("date", d.as_str()), ("last-modified", &date(0)[..])];
    let listed = [200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501];
    for code in 100..=999u16 {
        let Ok(status) = StatusCode::from_u16(code) else {
            continue;
        };
        let want = listed.contains(&code);
        assert_eq!(heuristically_cacheable(status), want, "{code}");
        let got = storable(
            &Policy::default(),
            &Method::GET,
            &HeaderMap::new(),
            status,
            &headers(&resp),
            t(1000),
            t(1000),
        );
        match code {
            // Not a complete response: never stored, whatever it says.
            206 => assert_eq!(got.err(), Some(NotStorable::Status), "{code}"),
            _ if want => {
                let f = got.unwrap_or_else(|e| panic!("{code}: {e:?}"));
                assert!(f.heuristic, "{code}");
                let cap = if code >= 500 { 10 } else { 100 };
                assert_eq!(f.lifetime.as_secs(), cap, "{code}");
            }
            _ if code < 200 => assert_eq!(got.err(), Some(NotStorable::Status), "{code}"),
            _ if code == 304 => assert_eq!(got.err(), Some(NotStorable::Status), "{code}"),
            _ => assert_eq!(got.err(), Some(NotStorable::NoFreshness), "{code}"),
        }
    }
}

/// RFC 9111 §3: any final status with explicit freshness may be stored; a
/// 5xx keeps at most `error_max_ttl`, its stale windows too, and
/// must-revalidate still holds.
#[test]
fn server_errors_with_explicit_freshness_are_capped_rfc9111_3() {
    let cases: &[(u16, &str, u64, u64, u64, bool)] = &[
        // status, cache-control, lifetime, swr, sie, must_revalidate
        (503, "max-age=60", 10, 0, 0, false),
        (500, "max-age=5", 5, 0, 0, false),
        (599, "max-age=3", 3, 0, 0, false),
        (502, "s-maxage=600, max-age=1", 10, 0, 0, true),
        (504, "max-age=60, must-revalidate", 10, 0, 0, true),
        (
            503,
            "max-age=1, stale-while-revalidate=600, stale-if-error=86400",
            1,
            10,
            10,
            false,
        ),
        // A 4xx is not an error of the origin's: no cap.
        (404, "max-age=600", 600, 0, 0, false),
        (599, "max-age=600", 10, 0, 0, false),
    ];
    for &(code, cc, life, swr, sie, mr) in cases {
        let f =
            store(code, &[("cache-control", cc)]).unwrap_or_else(|e| panic!("{code} {cc}: {e:?}"));
        let got = (
            f.lifetime.as_secs(),
            f.stale_while_revalidate.as_secs(),
            f.stale_if_error.as_secs(),
            f.must_revalidate,
        );
        assert_eq!(got, (life, swr, sie, mr), "{code} {cc}");
    }
    let policy = Policy {
        error_max_ttl: Duration::from_secs(30),
        ..Policy::default()
    };
    let f = storable(
        &policy,
        &Method::GET,
        &HeaderMap::new(),
        StatusCode::SERVICE_UNAVAILABLE,
        &headers(&[("cache-control", "max-age=60")]),
        t(0),
        t(0),
    )
    .expect("stored");
    assert_eq!(f.lifetime, Duration::from_secs(30));
}

#[test]
fn only_get_is_stored_rfc9111_3() {
    for m in [Method::HEAD, Method::POST, Method::PUT] {
        let r = storable(
            &Policy::default(),
            &m,
            &HeaderMap::new(),
            StatusCode::OK,
            &headers(&[("cache-control", "max-age=60")]),
            t(0),
            t(0),
        );
        assert_eq!(r.err(), Some(NotStorable::Method), "{m}");
    }
}

#[test]
fn request_no_store_prevents_storing_rfc9111_5_2_1_5() {
    let r = storable(
        &Policy::default(),
        &Method::GET,
        &headers(&[("cache-control", "no-store")]),
        StatusCode::OK,
        &headers(&[("cache-control", "max-age=60")]),
        t(0),
        t(0),
    );
    assert_eq!(r.err(), Some(NotStorable::RequestNoStore));
}

#[test]
fn authorization_needs_explicit_permission_rfc9111_3_5() {
    let auth = headers(&[("authorization", "Bearer x")]);
    let cases = [
        ("max-age=60", false),
        ("public, max-age=60", true),
        ("s-maxage=60", true),
        ("must-revalidate, max-age=60", true),
    ];
    for (cc, ok) in cases {
        let r = storable(
            &Policy::default(),
            &Method::GET,
            &auth,
            StatusCode::OK,
            &headers(&[("cache-control", cc)]),
            t(0),
            t(0),
        );
        assert_eq!(r.is_ok(), ok, "{cc}");
        if !ok {
            assert_eq!(r.err(), Some(NotStorable::Authorization));
        }
    }
}

#[test]
fn set_cookie_stored_when_allowed() {
    let policy = Policy {
        store_set_cookie: true,
        ..Policy::default()
    };
    let r = storable(
        &policy,
        &Method::GET,
        &HeaderMap::new(),
        StatusCode::OK,
        &headers(&[("cache-control", "max-age=60"), ("set-cookie", "a=b")]),
        t(0),
        t(0),
    );
    assert!(r.is_ok());
}

#[test]
fn age_field_rfc9111_5_1() {
    // (Age field lines, want seconds): the first member of a list counts;
    // a value that is not delta-seconds is ignored.
    let cases: [(&[&str], u64); 11] = [
        (&["7200"], 7200),
        (&["7200, 0"], 7200),
        (&["7200,abc"], 7200),
        (&["7200", "0"], 7200),
        (&[" 60 "], 60),
        (&["abc"], 0),
        (&["+5"], 0),
        (&["-1"], 0),
        (&[""], 0),
        (&["1.5"], 0),
        (&["99999999999999999999999"], 2_147_483_648),
    ];
    for (lines, want) in cases {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(
                http::header::AGE,
                http::HeaderValue::from_str(l).expect("value"),
            );
        }
        assert_eq!(age_value(&h).as_secs(), want, "{lines:?}");
    }
}

#[test]
fn age_calculation_rfc9111_4_2_3() {
    // (date offset, Age header, request_time, response_time, want corrected_initial_age)
    let cases = [
        ("apparent_age_from_date", Some(0), None, 0, 10, 10),
        (
            "age_header_plus_response_delay",
            Some(10),
            Some("30"),
            5,
            10,
            35,
        ),
        (
            "date_in_future_is_zero_apparent_age",
            Some(100),
            None,
            10,
            10,
            0,
        ),
        ("no_date_uses_response_time", None, Some("7"), 10, 10, 7),
        ("invalid_age_is_zero", Some(10), Some("x"), 10, 10, 0),
    ];
    for (name, d, age, req, resp, want) in cases {
        let mut pairs = vec![];
        let ds;
        if let Some(d) = d {
            ds = date(d);
            pairs.push(("date", ds.as_str()));
        }
        if let Some(a) = age {
            pairs.push(("age", a));
        }
        let got = corrected_initial_age(&headers(&pairs), t(req), t(resp));
        assert_eq!(got.as_secs(), want, "{name}");
    }
    let f = store(200, &[("cache-control", "max-age=100"), ("age", "30")]).expect("storable");
    assert_eq!(
        f.current_age(t(20)).as_secs(),
        50,
        "current_age = corrected_initial_age + resident_time"
    );
    assert_eq!(f.ttl(t(20)), 50);
    assert_eq!(f.ttl(t(90)), -20);
}

fn fresh_for(cc: &str) -> Freshness {
    store(200, &[("cache-control", cc), ("etag", "\"v\"")]).expect("storable")
}

#[test]
fn reuse_decisions_rfc9111_4_and_rfc5861() {
    let none = CacheControl::default();
    let cases: Vec<(&str, &str, u64, CacheControl, bool, Reuse)> = vec![
        (
            "fresh_is_served",
            "max-age=60",
            10,
            none.clone(),
            false,
            Reuse::Fresh,
        ),
        (
            "stale_is_revalidated_rfc9111_4_3",
            "max-age=60",
            61,
            none.clone(),
            false,
            Reuse::Revalidate,
        ),
        (
            "no_cache_always_revalidates_rfc9111_5_2_2_4",
            "no-cache, max-age=60",
            1,
            none.clone(),
            false,
            Reuse::Revalidate,
        ),
        (
            "stale_while_revalidate_window_rfc5861_3",
            "max-age=60, stale-while-revalidate=30",
            80,
            none.clone(),
            false,
            Reuse::StaleWhileRevalidate,
        ),
        (
            "past_swr_window_revalidates_rfc5861_3",
            "max-age=60, stale-while-revalidate=30",
            95,
            none.clone(),
            false,
            Reuse::Revalidate,
        ),
        (
            "must_revalidate_blocks_swr_rfc9111_5_2_2_2",
            "max-age=60, must-revalidate, stale-while-revalidate=30",
            80,
            none.clone(),
            false,
            Reuse::Revalidate,
        ),
        (
            "s_maxage_implies_proxy_revalidate_rfc9111_5_2_2_10",
            "s-maxage=60",
            61,
            CacheControl::parse("max-stale=100"),
            false,
            Reuse::Revalidate,
        ),
        (
            "request_no_cache_revalidates_rfc9111_5_2_1_4",
            "max-age=60",
            1,
            CacheControl::parse("no-cache"),
            false,
            Reuse::Revalidate,
        ),
        (
            "request_max_age_zero_revalidates_rfc9111_5_2_1_1",
            "max-age=60",
            1,
            CacheControl::parse("max-age=0"),
            false,
            Reuse::Revalidate,
        ),
        (
            "request_min_fresh_rfc9111_5_2_1_3",
            "max-age=60",
            50,
            CacheControl::parse("min-fresh=20"),
            false,
            Reuse::Revalidate,
        ),
        (
            "request_max_stale_accepts_stale_rfc9111_5_2_1_2",
            "max-age=60",
            70,
            CacheControl::parse("max-stale=20"),
            false,
            Reuse::Fresh,
        ),
        (
            "soft_purged_is_stale",
            "max-age=60",
            1,
            none.clone(),
            true,
            Reuse::Revalidate,
        ),
    ];
    for (name, cc, at, req, invalidated, want) in cases {
        assert_eq!(
            fresh_for(cc).reuse(t(at), &req, invalidated),
            want,
            "{name}"
        );
    }
}

#[test]
fn stale_if_error_window_rfc5861_4() {
    let f = fresh_for("max-age=60, stale-if-error=100");
    assert!(f.usable_on_error(t(150), Duration::ZERO));
    assert!(!f.usable_on_error(t(170), Duration::ZERO));
    assert!(
        f.usable_on_error(t(170), Duration::from_secs(200)),
        "operator grace extends it"
    );
    let strict = fresh_for("max-age=60, must-revalidate, stale-if-error=100");
    assert!(
        !strict.usable_on_error(t(61), Duration::from_secs(1000)),
        "must-revalidate: 504 instead"
    );
}

#[test]
fn stale_when_disconnected_and_what_forbids_it_rfc9111_4_2_4() {
    // (Cache-Control, seconds after storing, grace, usable when the
    // upstream fails): the operator's grace serves stale for a while, and
    // each directive that forbids serving stale without validation still
    // forbids it.
    let grace = Duration::from_secs(10);
    let cases = [
        ("max-age=60", 65, grace, true),
        ("max-age=60", 70, grace, true),
        ("max-age=60", 71, grace, false),
        ("max-age=60", 65, Duration::ZERO, false),
        ("max-age=60, must-revalidate", 61, grace, false),
        ("max-age=60, proxy-revalidate", 61, grace, false),
        ("max-age=60, s-maxage=60", 61, grace, false),
        ("max-age=60, no-cache", 61, grace, false),
        ("no-cache", 1, grace, false),
        ("max-age=60, no-cache, stale-if-error=100", 61, grace, false),
        ("max-age=60, stale-if-error=100", 150, grace, true),
    ];
    for (cc, at, g, want) in cases {
        assert_eq!(
            fresh_for(cc).usable_on_error(t(at), g),
            want,
            "{cc} at {at}s, grace {g:?}"
        );
    }
}
