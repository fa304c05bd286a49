//! The site's shape, table-free: what `generate` must hold for any seed.

use std::collections::HashSet;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;

use super::{Content, SampleSite};

fn site() -> &'static SampleSite {
    static SITE: OnceLock<SampleSite> = OnceLock::new();
    SITE.get_or_init(|| SampleSite::generate(1))
}

/// Every `href="..."` and `src="..."` value in `html`.
fn links(html: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for attr in ["href=\"", "src=\""] {
        let mut rest = html;
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            let end = rest.find('"').unwrap_or(rest.len());
            out.push(&rest[..end]);
            rest = &rest[end..];
        }
    }
    out
}

fn body(site: &SampleSite, path: &str) -> Vec<u8> {
    let a = site.get(path).expect("asset");
    a.slices(0..a.len).concat()
}

#[test]
fn a_few_hundred_assets_of_every_type_and_size() {
    let s = site();
    let n = s.assets().len();
    assert!((300..=400).contains(&n), "{n} assets");
    let kinds: HashSet<&str> = s.assets().iter().map(|a| a.kind).collect();
    for k in ["html", "css", "js", "json", "svg", "png", "mp4"] {
        assert!(kinds.contains(k), "no {k}");
    }
    let sections: HashSet<&str> = s.assets().iter().map(|a| a.section).collect();
    for sec in [
        "home", "news", "shop", "docs", "live", "static", "img", "video",
    ] {
        assert!(sections.contains(sec), "no section {sec}");
    }
    let paths: HashSet<&str> = s.assets().iter().map(|a| a.path.as_str()).collect();
    assert_eq!(paths.len(), n, "paths are unique");
    let smallest = s.assets().iter().map(|a| a.len).min().unwrap_or(0);
    assert!((100..=400).contains(&smallest), "smallest {smallest}");
    let big = s.get(super::BIG_VIDEO).expect("video");
    assert_eq!(big.len, 32 << 20);
    assert_eq!(big.content_type, "video/mp4");
    let mib = s
        .assets()
        .iter()
        .filter(|a| a.kind != "mp4" && a.len >= 1 << 20)
        .count();
    assert!(mib >= 2, "a few MiB-sized images: {mib}");
    assert_eq!(
        s.total_bytes(),
        s.assets().iter().map(|a| a.len).sum::<u64>()
    );
}

#[test]
fn the_site_stays_under_64_mib_of_memory() {
    // Count each distinct buffer once: `/index.html` shares `/`'s bytes and
    // the video is one block.
    let mut seen = HashSet::new();
    let mut resident = 0usize;
    for a in site().assets() {
        let buf: &Bytes = match &a.content {
            Content::Whole(b) => b,
            Content::Repeat { block, .. } => block,
        };
        if seen.insert(buf.as_ptr() as usize) {
            resident += buf.len();
        }
    }
    assert!(resident < 48 << 20, "{} MiB", resident >> 20);
    assert!(site().total_bytes() > resident as u64 + (30 << 20));
}

#[test]
fn the_same_seed_gives_the_same_site_and_another_seed_other_bytes() {
    let (a, b, other) = (site(), SampleSite::generate(1), SampleSite::generate(2));
    let tags = |s: &SampleSite| -> Vec<(String, String)> {
        s.assets()
            .iter()
            .map(|a| (a.path.clone(), a.etag.clone()))
            .collect()
    };
    assert_eq!(tags(a), tags(&b), "same order, same ETags");
    assert_eq!(body(a, "/"), body(&b, "/"));
    assert_eq!(body(a, super::BIG_VIDEO), body(&b, super::BIG_VIDEO));
    for x in a.assets() {
        let y = other.get(&x.path).expect("the same paths for every seed");
        if x.path != "/index.html" {
            assert_ne!(x.etag, y.etag, "{} changes with the seed", x.path);
        }
    }
    assert_ne!(tags(a), tags(&other));
}

#[test]
fn the_home_page_comes_first_and_index_html_is_the_same_page() {
    let s = site();
    assert_eq!(s.assets()[0].path, "/");
    let (home, index) = (s.get("/").expect("/"), s.get("/index.html").expect("index"));
    assert_eq!(home.etag, index.etag);
    assert_eq!(body(s, "/"), body(s, "/index.html"));
    let order: Vec<&str> = s.assets()[..4].iter().map(|a| a.path.as_str()).collect();
    assert_eq!(
        order,
        [
            "/",
            "/static/css/site.css",
            "/static/js/app.js",
            "/static/js/vendor.js"
        ]
    );
}

#[test]
fn every_page_links_only_to_assets_that_exist() {
    let s = site();
    let mut checked = 0;
    for a in s.assets().iter().filter(|a| a.kind == "html") {
        let html = String::from_utf8(body(s, &a.path)).expect("utf-8");
        assert!(html.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
        assert!(html.ends_with("</html>\n"));
        for link in links(&html) {
            assert!(s.get(link).is_some(), "{} links to missing {link}", a.path);
            checked += 1;
        }
    }
    assert!(checked > 1000, "{checked} links");
}

#[test]
fn surrogate_keys_name_the_section_and_the_type() {
    for a in site().assets() {
        let words: Vec<&str> = a.surrogate_key.split(' ').collect();
        assert_eq!(&words[..2], [a.section, a.kind], "{}", a.path);
    }
    let story = site().get("/news/story-007.html").expect("story");
    assert_eq!(story.surrogate_key, "news html story-007");
    let pic = site().get("/img/news/007.png").expect("picture");
    assert_eq!(pic.surrogate_key, "img png story-007");
}

#[test]
fn cache_control_follows_the_section() {
    let s = site();
    let cc = |p: &str| s.get(p).expect(p).cache_control.as_str();
    assert_eq!(
        cc("/"),
        "public, max-age=60, stale-while-revalidate=30, stale-if-error=300"
    );
    assert!(cc("/news/story-001.html").contains("s-maxage=300"));
    assert_eq!(
        cc("/static/css/site.css"),
        "public, max-age=86400, stale-if-error=604800"
    );
    assert_eq!(
        cc("/live/scores.json"),
        "public, max-age=5, stale-if-error=60"
    );
    let fast = SampleSite::generate(1).with_live_ttl(Duration::from_secs(1));
    let live = fast.get("/live/scores.json").expect("live");
    assert_eq!(live.cache_control, "public, max-age=1, stale-if-error=60");
    assert_eq!(
        live.headers()["cache-control"],
        "public, max-age=1, stale-if-error=60"
    );
    assert_eq!(live.etag, s.get("/live/scores.json").expect("live").etag);
    assert_eq!(fast.get("/").expect("/").cache_control, cc("/"));
}

#[test]
fn repeated_content_slices_like_the_bytes_it_stands_for() {
    let block = Bytes::from_static(b"abcdefg");
    let c = Content::Repeat {
        block: block.clone(),
        len: 30,
    };
    let naive: Vec<u8> = (0..30).map(|i| block[i % 7]).collect();
    for (start, end) in [
        (0, 30),
        (0, 7),
        (3, 4),
        (5, 16),
        (6, 29),
        (29, 30),
        (28, 99),
        (31, 40),
        (9, 3),
    ] {
        let got = c.slices(start..end).concat();
        let (s, e) = (start.min(30) as usize, end.min(30) as usize);
        let want = naive.get(s..e.max(s)).unwrap_or(&[]);
        assert_eq!(got, want, "{start}..{end}");
    }
}

#[test]
fn last_modified_is_in_the_past_and_etags_are_strong() {
    for a in site().assets() {
        assert!(a.last_modified < std::time::SystemTime::now());
        assert!(a.etag.starts_with('"') && a.etag.ends_with('"') && a.etag.len() == 18);
        assert_eq!(a.headers()["etag"], a.etag.as_str());
        assert_eq!(a.headers()["content-type"], a.content_type);
    }
}
