//! End-to-end: the sample site on 127.0.0.1:0, driven with reqwest as a
//! browser or a cache would.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use meridian_common::Shutdown;
use meridian_origin::sample::BIG_VIDEO;
use meridian_origin::{Counters, SampleSite};
use reqwest::StatusCode;

struct Server {
    addr: SocketAddr,
    site: Arc<SampleSite>,
    counters: Arc<Counters>,
    shutdown: Shutdown,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn requests(&self) -> u64 {
        self.counters.requests.load(Ordering::SeqCst)
    }

    fn bytes(&self) -> u64 {
        self.counters.bytes.load(Ordering::SeqCst)
    }
}

/// The site for seed 1, generated once for the whole binary.
fn site() -> Arc<SampleSite> {
    static SITE: OnceLock<Arc<SampleSite>> = OnceLock::new();
    Arc::clone(SITE.get_or_init(|| Arc::new(SampleSite::generate(1))))
}

async fn serve(site: Arc<SampleSite>) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let counters = Arc::new(Counters::default());
    let shutdown = Shutdown::new();
    let (s, c, sd) = (Arc::clone(&site), Arc::clone(&counters), shutdown.clone());
    tokio::spawn(async move { meridian_origin::run_sample(listener, s, c, sd).await });
    Server {
        addr,
        site,
        counters,
        shutdown,
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> &'a str {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

async fn get(url: &str, headers: &[(&'static str, &str)]) -> reqwest::Response {
    let mut req = client().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("request")
}

/// The bytes the site holds for `path` (what a response must carry).
fn bytes_of(site: &SampleSite, path: &str) -> Vec<u8> {
    let a = site.get(path).expect("asset");
    a.slices(0..a.len).concat()
}

#[tokio::test]
async fn the_sitemap_lists_every_asset_most_popular_first() {
    let o = serve(site()).await;
    let resp = get(&o.url("/sitemap.txt"), &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "content-type"), "text/plain; charset=utf-8");
    assert!(header(&resp, "etag").starts_with('"'));
    let text = resp.text().await.expect("body");
    let listed: Vec<&str> = text.lines().collect();
    let want: Vec<&str> = o.site.assets().iter().map(|a| a.path.as_str()).collect();
    assert_eq!(listed, want);
    assert!(listed.len() >= 300, "{} assets", listed.len());
    assert_eq!(listed[0], "/");
}

#[tokio::test]
async fn every_asset_answers_head_with_its_headers() {
    let o = serve(site()).await;
    let c = client();
    for a in o.site.assets() {
        let resp = c.head(o.url(&a.path)).send().await.expect("head");
        assert_eq!(resp.status(), StatusCode::OK, "{}", a.path);
        assert_eq!(header(&resp, "content-type"), a.content_type, "{}", a.path);
        assert_eq!(header(&resp, "content-length"), a.len.to_string());
        assert_eq!(header(&resp, "etag"), a.etag, "{}", a.path);
        assert_eq!(header(&resp, "cache-control"), a.cache_control);
        assert_eq!(header(&resp, "surrogate-key"), a.surrogate_key);
        assert_eq!(header(&resp, "accept-ranges"), "bytes");
        let lm = httpdate::parse_http_date(header(&resp, "last-modified")).expect("lm");
        assert_eq!(lm, a.last_modified);
        assert!(httpdate::parse_http_date(header(&resp, "date")).is_ok());
        let key: Vec<&str> = a.surrogate_key.split(' ').collect();
        assert_eq!(&key[..2], [a.section, a.kind], "{}", a.path);
        assert!(
            resp.bytes().await.expect("body").is_empty(),
            "HEAD has no body"
        );
    }
    // The mix of TTLs the site promises, by section.
    let cc = |p: &str| o.site.get(p).expect(p).cache_control.clone();
    assert_eq!(
        cc("/static/js/app.js"),
        "public, max-age=86400, stale-if-error=604800"
    );
    assert_eq!(
        cc("/img/logo.svg"),
        "public, max-age=86400, stale-if-error=604800"
    );
    assert_eq!(cc(BIG_VIDEO), "public, max-age=86400, stale-if-error=86400");
    assert_eq!(
        cc("/live/scores.json"),
        "public, max-age=5, stale-if-error=60"
    );
    assert!(cc("/news/").contains("s-maxage=300"));
    assert!(cc("/shop/p/001.json").contains("max-age=10, s-maxage=60"));
}

#[tokio::test]
async fn each_type_is_a_real_file_of_its_type() {
    let o = serve(site()).await;
    for (path, ct) in [
        ("/", "text/html; charset=utf-8"),
        ("/static/css/site.css", "text/css; charset=utf-8"),
        ("/static/js/app.js", "text/javascript; charset=utf-8"),
        ("/shop/p/003.json", "application/json"),
        ("/live/scores.json", "application/json"),
        ("/img/logo.svg", "image/svg+xml"),
        ("/img/news/003.png", "image/png"),
        ("/img/hero/1.png", "image/png"),
        ("/video/clip-1.mp4", "video/mp4"),
    ] {
        let resp = get(&o.url(path), &[]).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert_eq!(header(&resp, "content-type"), ct, "{path}");
        let body = resp.bytes().await.expect("body");
        assert_eq!(body, bytes_of(&o.site, path), "{path}");
        match ct {
            "application/json" => {
                serde_json::from_slice::<serde_json::Value>(&body).expect("JSON parses");
            }
            "image/png" => assert!(body.starts_with(b"\x89PNG\r\n\x1a\n"), "{path}"),
            "image/svg+xml" => assert!(body.starts_with(b"<svg xmlns=")),
            "video/mp4" => assert_eq!(&body[4..8], b"ftyp"),
            _ if ct.starts_with("text/html") => assert!(body.starts_with(b"<!DOCTYPE html>")),
            _ => assert!(std::str::from_utf8(&body).is_ok()),
        }
    }
    let hero = o.site.get("/img/hero/1.png").expect("hero");
    assert!(hero.len >= 1 << 20, "a MiB-sized image: {}", hero.len);
}

#[tokio::test]
async fn the_same_seed_serves_the_same_etags_and_bytes_another_seed_differs() {
    let (a, b) = (
        serve(site()).await,
        serve(Arc::new(SampleSite::generate(1))).await,
    );
    let other = serve(Arc::new(SampleSite::generate(2))).await;
    // Every tenth asset, so every section and type is among them.
    for asset in a.site.assets().iter().step_by(10) {
        let path = asset.path.as_str();
        let (ra, rb) = (get(&a.url(path), &[]).await, get(&b.url(path), &[]).await);
        let ro = get(&other.url(path), &[]).await;
        assert_eq!(header(&ra, "etag"), header(&rb, "etag"), "{path}");
        assert_ne!(header(&ra, "etag"), header(&ro, "etag"), "{path}");
        let (ba, bb) = (ra.bytes().await.expect("a"), rb.bytes().await.expect("b"));
        assert_eq!(ba, bb, "{path}");
        assert_ne!(ba, ro.bytes().await.expect("other"), "{path}");
    }
}

#[tokio::test]
async fn conditional_requests_get_304_and_412() {
    let o = serve(site()).await;
    let a = o.site.get("/news/story-001.html").expect("story");
    let url = o.url(&a.path);
    let resp = get(&url, &[("if-none-match", &a.etag)]).await;
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(header(&resp, "etag"), a.etag);
    assert_eq!(header(&resp, "cache-control"), a.cache_control);
    assert!(resp.bytes().await.expect("body").is_empty());

    let lm = httpdate::fmt_http_date(a.last_modified);
    let resp = get(&url, &[("if-modified-since", &lm)]).await;
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);

    let resp = get(&url, &[("if-none-match", "\"something-else\"")]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.bytes().await.expect("body"),
        bytes_of(&o.site, &a.path)
    );

    let resp = get(&url, &[("if-match", "\"something-else\"")]).await;
    assert_eq!(resp.status(), StatusCode::PRECONDITION_FAILED);
}

#[tokio::test]
async fn ranges_of_the_video_are_its_bytes() {
    let o = serve(site()).await;
    let video = bytes_of(&o.site, BIG_VIDEO);
    assert_eq!(video.len(), 32 << 20);
    // A video-like file: an `ftyp` box first, then the 1,000,003-byte block
    // again and again.
    assert_eq!(&video[4..8], b"ftyp");
    assert_eq!(video[1_000_003..1_000_035], video[..32]);
    let url = o.url(BIG_VIDEO);
    // Across the edge of the repeated block (1,000,003 bytes), from the
    // start, and at the very end.
    for (spec, start, end) in [
        ("bytes=999990-1000020", 999_990, 1_000_020),
        ("bytes=0-99", 0, 99),
        ("bytes=-100", video.len() - 100, video.len() - 1),
        ("bytes=33554000-", 33_554_000, video.len() - 1),
    ] {
        let resp = get(&url, &[("range", spec)]).await;
        assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT, "{spec}");
        assert_eq!(
            header(&resp, "content-range"),
            format!("bytes {start}-{end}/{}", video.len())
        );
        assert_eq!(header(&resp, "content-type"), "video/mp4");
        let body = resp.bytes().await.expect("body");
        assert_eq!(&body[..], &video[start..=end], "{spec}");
    }

    let resp = get(&url, &[("range", "bytes=0-9,2000000-2000009")]).await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert!(header(&resp, "content-type").starts_with("multipart/byteranges; boundary="));
    let body = resp.bytes().await.expect("body");
    let find = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    assert!(find(&video[0..10]) && find(&video[2_000_000..2_000_010]));
    assert!(find(b"Content-Range: bytes 2000000-2000009/33554432"));

    let resp = get(&url, &[("range", "bytes=40000000-")]).await;
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&resp, "content-range"), "bytes */33554432");

    // If-Range with another validator: the whole file.
    let resp = get(&url, &[("range", "bytes=0-9"), ("if-range", "\"old\"")]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.expect("body").len(), video.len());
}

#[tokio::test]
async fn the_api_is_never_cacheable_and_changes_every_time() {
    let o = serve(site()).await;
    let mut seen = Vec::new();
    for path in ["/api/x", "/api/x", "/api/cart", "/api/time"] {
        let resp = get(&o.url(path), &[]).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(header(&resp, "cache-control"), "private, no-store");
        assert_eq!(header(&resp, "content-type"), "application/json");
        assert!(header(&resp, "etag").is_empty() && header(&resp, "last-modified").is_empty());
        let v: serde_json::Value = resp.json().await.expect("json");
        assert_eq!(v["path"], path);
        assert!(
            v["time"]
                .as_str()
                .is_some_and(|t| httpdate::parse_http_date(t).is_ok())
        );
        seen.push(v);
    }
    assert_ne!(seen[0], seen[1], "the same URL answers differently");
    let counts: Vec<u64> = seen.iter().filter_map(|v| v["count"].as_u64()).collect();
    assert_eq!(counts, [1, 2, 3, 4]);
}

#[tokio::test]
async fn counters_count_every_request_but_healthz_and_every_body_byte() {
    let o = serve(site()).await;
    let a = o.site.get("/static/css/site.css").expect("css");
    let url = o.url(&a.path);
    assert_eq!((o.requests(), o.bytes()), (0, 0));

    get(&url, &[]).await.bytes().await.expect("body");
    assert_eq!((o.requests(), o.bytes()), (1, a.len));

    client().head(&url).send().await.expect("head");
    get(&url, &[("if-none-match", &a.etag)]).await;
    assert_eq!(
        (o.requests(), o.bytes()),
        (3, a.len),
        "HEAD and 304 send no body"
    );

    get(&url, &[("range", "bytes=10-109")])
        .await
        .bytes()
        .await
        .expect("body");
    assert_eq!((o.requests(), o.bytes()), (4, a.len + 100));

    let resp = get(&o.url("/healthz"), &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.expect("body"), "ok");
    assert_eq!(o.requests(), 4, "health checks are not site traffic");

    let n = get(&o.url("/nope"), &[])
        .await
        .bytes()
        .await
        .expect("body")
        .len() as u64;
    assert_eq!((o.requests(), o.bytes()), (5, a.len + 100 + n));
    client().post(&url).send().await.expect("post");
    assert_eq!(o.requests(), 6);
}

#[tokio::test]
async fn the_home_page_links_only_to_assets_that_exist() {
    let o = serve(site()).await;
    for home in ["/", "/index.html"] {
        let resp = get(&o.url(home), &[]).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let html = resp.text().await.expect("html");
        let mut links = Vec::new();
        for attr in ["href=\"", "src=\""] {
            for part in html.split(attr).skip(1) {
                links.push(part.split('"').next().unwrap_or("").to_owned());
            }
        }
        assert!(links.len() >= 20, "{links:?}");
        for link in &links {
            assert!(link.starts_with('/'), "{link}");
            let resp = client().head(o.url(link)).send().await.expect("head");
            assert_eq!(resp.status(), StatusCode::OK, "{home} links to {link}");
        }
        for want in [
            "/static/css/site.css",
            "/static/js/app.js",
            "/img/logo.svg",
            "/news/",
        ] {
            assert!(links.iter().any(|l| l == want), "{home} links to {want}");
        }
    }
}

#[tokio::test]
async fn unknown_paths_are_404_for_ten_seconds_and_other_methods_405() {
    let o = serve(site()).await;
    let resp = get(&o.url("/no/such/page.html"), &[]).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(header(&resp, "cache-control"), "public, max-age=10");
    assert!(resp.text().await.expect("body").contains("Not found"));

    let resp = get(&o.url("/news"), &[]).await;
    assert_eq!(resp.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(header(&resp, "location"), "/news/");
    let resp = get(&o.url("/api"), &[]).await;
    assert_eq!(header(&resp, "cache-control"), "private, no-store");

    let resp = get(&o.url("/news/story-001.html?utm=x"), &[]).await;
    assert_eq!(resp.status(), StatusCode::OK, "the query string is ignored");

    for method in [
        reqwest::Method::POST,
        reqwest::Method::DELETE,
        reqwest::Method::PUT,
    ] {
        let resp = client()
            .request(method.clone(), o.url("/"))
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(header(&resp, "allow"), "GET, HEAD");
    }
}
