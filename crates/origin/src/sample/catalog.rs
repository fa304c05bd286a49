//! What the sample site holds: every path, its section, type, popularity
//! tier, tags and TTL, and the generator of its bytes. The paths are the
//! same for every seed (so a seed changes bytes, never the shape); links
//! between pages are built from the same path functions as the assets, so a
//! page can only link to something that exists.

use bytes::Bytes;

use super::content::{self as make, PageLinks, Rng};
use super::{Asset, Content};

/// Pages: a minute fresh, refreshed in the background for 30 s more, and
/// served stale for five minutes while the origin is down.
pub(crate) const PAGE: &str = "public, max-age=60, stale-while-revalidate=30, stale-if-error=300";
/// News: browsers a minute, the CDN five minutes (`s-maxage`), because a
/// newsroom purges the `news` tag when it publishes.
pub(crate) const NEWS: &str =
    "public, max-age=60, s-maxage=300, stale-while-revalidate=30, stale-if-error=300";
/// Prices: browsers 10 s, the CDN a minute, stale for five on an outage.
pub(crate) const PRICES: &str = "public, max-age=10, s-maxage=60, stale-if-error=300";
/// Docs change rarely: an hour, a day's grace on errors.
pub(crate) const DOCS: &str =
    "public, max-age=3600, stale-while-revalidate=600, stale-if-error=86400";
/// CSS, JS and images: a day, a week's grace on errors.
pub(crate) const STATIC: &str = "public, max-age=86400, stale-if-error=604800";
/// Video: a day, and a day's grace.
pub(crate) const VIDEO: &str = "public, max-age=86400, stale-if-error=86400";
/// The sitemap: five minutes.
pub(crate) const SITEMAP: &str = "public, max-age=300";
/// The default `max-age` of the live section, in seconds.
pub(crate) const LIVE_TTL: u64 = 5;

/// Live data: `max-age` short enough to watch revalidation (a stale copy
/// costs the origin a 304, not a body), and no `stale-while-revalidate`,
/// so each revalidation happens in line where a client can see it.
pub(crate) fn live_cache_control(max_age: u64) -> String {
    format!("public, max-age={max_age}, stale-if-error=60")
}

const STORIES: usize = 80;
const PRODUCTS: usize = 40;
const GUIDES: usize = 40;
const MATCHES: usize = 10;
const HEROES: usize = 3;
const CLIPS: usize = 3;
const ICONS: &[&str] = &[
    "home", "search", "cart", "user", "menu", "close", "star", "heart", "share", "play", "pause",
    "next", "prev", "info", "warn", "check", "mail", "phone", "map", "clock",
];
const CSS: &[&str] = &[
    "site",
    "news",
    "shop",
    "docs",
    "live",
    "video",
    "print",
    "theme-dark",
];
const JS: &[&str] = &[
    "app",
    "vendor",
    "news",
    "shop",
    "docs",
    "live",
    "video",
    "analytics",
    "polyfills",
    "search",
];
/// The big video-like file.
pub const BIG_VIDEO: &str = "/video/big-buck.mp4";
const BIG_VIDEO_LEN: u64 = 32 << 20;
/// Its repeating block: an odd length, so a range that gets the block
/// arithmetic wrong shows different bytes.
const VIDEO_BLOCK: usize = 1_000_003;
const POSTER: &str = "/img/video/poster.png";
const NAV: &[(&str, &str)] = &[
    ("/", "Home"),
    ("/news/", "News"),
    ("/shop/", "Shop"),
    ("/docs/", "Docs"),
    ("/live/", "Live"),
    ("/video/", "Video"),
    ("/about.html", "About"),
];

fn story(i: usize) -> String {
    format!("/news/story-{i:03}.html")
}
fn story_img(i: usize) -> String {
    format!("/img/news/{i:03}.png")
}
fn product(i: usize) -> String {
    format!("/shop/p/{i:03}.html")
}
fn product_json(i: usize) -> String {
    format!("/shop/p/{i:03}.json")
}
fn product_img(i: usize) -> String {
    format!("/img/shop/{i:03}.png")
}
fn guide(i: usize) -> String {
    format!("/docs/guide-{i:02}.html")
}
fn match_json(i: usize) -> String {
    format!("/live/match-{i:02}.json")
}
fn css(name: &str) -> String {
    format!("/static/css/{name}.css")
}
fn js(name: &str) -> String {
    format!("/static/js/{name}.js")
}

/// The file types, each with its `Content-Type` and its `Surrogate-Key` word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Html,
    Css,
    Js,
    Json,
    Svg,
    Png,
    Mp4,
    /// Only the sitemap.
    Txt,
}

impl Kind {
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Kind::Html => "text/html; charset=utf-8",
            Kind::Css => "text/css; charset=utf-8",
            Kind::Js => "text/javascript; charset=utf-8",
            Kind::Json => "application/json",
            Kind::Svg => "image/svg+xml",
            Kind::Png => "image/png",
            Kind::Mp4 => "video/mp4",
            Kind::Txt => "text/plain; charset=utf-8",
        }
    }

    pub(crate) fn key(self) -> &'static str {
        match self {
            Kind::Html => "html",
            Kind::Css => "css",
            Kind::Js => "js",
            Kind::Json => "json",
            Kind::Svg => "svg",
            Kind::Png => "png",
            Kind::Mp4 => "mp4",
            Kind::Txt => "txt",
        }
    }
}

/// Collects the assets with their popularity tier (0 = on every page).
struct Builder {
    seed: u64,
    live_ttl: u64,
    out: Vec<(u8, Asset)>,
}

impl Builder {
    fn rng(&self, path: &str) -> Rng {
        Rng::for_asset(self.seed, path)
    }

    fn add(&mut self, e: Entry, kind: Kind, body: Content) {
        let cc = match e.cache_control {
            Some(cc) => cc.to_owned(),
            None => live_cache_control(self.live_ttl),
        };
        let mut key = format!("{} {}", e.section, kind.key());
        if let Some(item) = e.item {
            key.push(' ');
            key.push_str(&item);
        }
        let asset = Asset::new(self.seed, e.path, e.section, kind, key, cc, body);
        self.out.push((e.tier, asset));
    }

    fn page(&mut self, e: Entry, links: &PageLinks<'_>, size: (u64, u64)) {
        let mut rng = self.rng(&e.path);
        let title = make::title(&mut rng, 3);
        let target = rng.log_range(size.0, size.1) as usize;
        let html = make::html(&mut rng, &title, links, target);
        self.add(e, Kind::Html, Content::Whole(Bytes::from(html)));
    }

    fn bytes(&mut self, e: Entry, kind: Kind, make: impl FnOnce(&mut Rng) -> Vec<u8>) {
        let mut rng = self.rng(&e.path);
        let body = Content::Whole(Bytes::from(make(&mut rng)));
        self.add(e, kind, body);
    }
}

/// Where an asset sits: its popularity tier (0 = what every page loads),
/// path, section, item tag and `Cache-Control` (`None`: the live TTL).
struct Entry {
    tier: u8,
    path: String,
    section: &'static str,
    item: Option<String>,
    cache_control: Option<&'static str>,
}

fn at(tier: u8, section: &'static str, cc: &'static str, path: impl Into<String>) -> Entry {
    Entry {
        tier,
        path: path.into(),
        section,
        item: None,
        cache_control: Some(cc),
    }
}

/// An asset of the live section, with its short TTL.
fn live_at(tier: u8, path: impl Into<String>) -> Entry {
    Entry {
        tier,
        path: path.into(),
        section: "live",
        item: None,
        cache_control: None,
    }
}

impl Entry {
    /// Tags the asset with its item as well (`story-007`, `product-017`).
    fn item(mut self, item: impl Into<String>) -> Entry {
        self.item = Some(item.into());
        self
    }
}

/// Every asset of the site for `seed`, most popular first: a fixed head
/// (what every page loads), then tiers of decreasing popularity, each in a
/// seeded order.
pub(crate) fn build(seed: u64, live_ttl: u64) -> Vec<Asset> {
    let mut b = Builder {
        seed,
        live_ttl,
        out: Vec::with_capacity(400),
    };
    home(&mut b);
    news(&mut b);
    shop(&mut b);
    docs(&mut b);
    live(&mut b);
    statics(&mut b);
    images(&mut b);
    video(&mut b);

    let mut order = Rng::new(seed ^ 0x005E_ED0F_0DE5);
    let mut tiers: [Vec<Asset>; 4] = Default::default();
    for (tier, asset) in b.out {
        tiers[usize::from(tier).min(3)].push(asset);
    }
    let mut all = Vec::with_capacity(400);
    for (i, mut t) in tiers.into_iter().enumerate() {
        // The head keeps its written order: `/` is always the first.
        if i > 0 {
            order.shuffle(&mut t);
        }
        all.extend(t);
    }
    all
}

/// The style sheets and scripts of a page in `section`.
fn styles(section: &str) -> (Vec<String>, Vec<String>) {
    (
        vec![css("site"), css(section)],
        vec![js("app"), js(section)],
    )
}

fn linked(paths: impl IntoIterator<Item = (String, String)>) -> Vec<(String, String)> {
    paths.into_iter().collect()
}

fn home(b: &mut Builder) {
    let css = vec![css("site")];
    let scripts = vec![js("app"), js("vendor")];
    let mut images = vec![("/img/hero/1.png".to_owned(), "Hero image".to_owned())];
    let mut links = linked((0..6).map(|i| (story(i), format!("Story {i}"))));
    for i in 0..4 {
        images.push((story_img(i), format!("Story {i}")));
        images.push((product_img(i), format!("Product {i}")));
        links.push((product(i), format!("Product {i}")));
    }
    for (href, label) in [
        ("/live/", "Live scores"),
        ("/video/", "Watch the video"),
        ("/docs/", "Documentation"),
        ("/contact.html", "Contact"),
    ] {
        links.push((href.to_owned(), label.to_owned()));
    }
    let page = PageLinks {
        css: &css,
        js: &scripts,
        nav: NAV,
        links: &links,
        images: &images,
        video: None,
    };
    let size = (4_000, 8_000);
    b.page(at(0, "home", PAGE, "/"), &page, size);
    // `/index.html` is the same page: the same bytes, so the same ETag.
    if let Some((_, home)) = b.out.last() {
        let body = home.content.clone();
        b.add(at(3, "home", PAGE, "/index.html"), Kind::Html, body);
    }
    let plain = PageLinks {
        images: &[],
        links: &[],
        ..page
    };
    b.page(at(3, "home", PAGE, "/about.html"), &plain, (1_500, 4_000));
    b.page(at(3, "home", PAGE, "/contact.html"), &plain, (1_000, 3_000));
}

fn news(b: &mut Builder) {
    let (css, js) = styles("news");
    let links = linked((0..STORIES).map(|i| (story(i), format!("Story {i}"))));
    let images = linked((0..3).map(|i| (story_img(i), format!("Story {i}"))));
    let index = PageLinks {
        css: &css,
        js: &js,
        nav: NAV,
        links: &links,
        images: &images,
        video: None,
    };
    b.page(at(1, "news", NEWS, "/news/"), &index, (6_000, 12_000));
    for i in 0..STORIES {
        let related = linked([1, 2, 7].map(|d| {
            (
                story((i + d) % STORIES),
                format!("Story {}", (i + d) % STORIES),
            )
        }));
        let images = [(story_img(i), format!("Story {i}"))];
        let page = PageLinks {
            links: &related,
            images: &images,
            ..index
        };
        let item = format!("story-{i:03}");
        let tier = if i < 10 { 1 } else { 2 };
        b.page(
            at(tier, "news", NEWS, story(i)).item(item),
            &page,
            (2_000, 30_000),
        );
    }
}

fn shop(b: &mut Builder) {
    let (css, js) = styles("shop");
    let links = linked((0..PRODUCTS).map(|i| (product(i), format!("Product {i}"))));
    let images = linked((0..8).map(|i| (product_img(i), format!("Product {i}"))));
    let index = PageLinks {
        css: &css,
        js: &js,
        nav: NAV,
        links: &links,
        images: &images,
        video: None,
    };
    b.page(at(1, "shop", PAGE, "/shop/"), &index, (4_000, 10_000));
    for i in 0..PRODUCTS {
        let mut links = linked([(product_json(i), "Price and stock".to_owned())]);
        links.extend([3, 11].map(|d| {
            (
                product((i + d) % PRODUCTS),
                format!("Product {}", (i + d) % PRODUCTS),
            )
        }));
        let images = [(product_img(i), format!("Product {i}"))];
        let page = PageLinks {
            links: &links,
            images: &images,
            ..index
        };
        let tier = if i < 8 { 1 } else { 2 };
        let item = format!("product-{i:03}");
        b.page(
            at(tier, "shop", PAGE, product(i)).item(item.clone()),
            &page,
            (2_000, 20_000),
        );
        b.bytes(at(2, "shop", PRICES, product_json(i)).item(item), Kind::Json, |rng| {
            let head = format!(
                "\"id\":{i},\"name\":\"{}\",\"price_cents\":{},\"currency\":\"EUR\",\"in_stock\":{},\"image\":\"{}\",\"page\":\"{}\"",
                make::title(rng, 2),
                rng.range(99, 99_999),
                rng.range(0, 500),
                product_img(i),
                product(i),
            );
            let target = rng.log_range(300, 4_000) as usize;
            make::json(rng, &head, target).into_bytes()
        });
    }
}

fn docs(b: &mut Builder) {
    let (css, js) = styles("docs");
    let links = linked((0..GUIDES).map(|i| (guide(i), format!("Guide {i}"))));
    let index = PageLinks {
        css: &css,
        js: &js,
        nav: NAV,
        links: &links,
        images: &[],
        video: None,
    };
    b.page(at(2, "docs", DOCS, "/docs/"), &index, (3_000, 6_000));
    for i in 0..GUIDES {
        let prev = (i + GUIDES - 1) % GUIDES;
        let next = (i + 1) % GUIDES;
        let links = [
            (guide(prev), "Previous".to_owned()),
            (guide(next), "Next".to_owned()),
            ("/docs/".to_owned(), "All guides".to_owned()),
        ];
        let page = PageLinks {
            links: &links,
            ..index
        };
        b.page(at(3, "docs", DOCS, guide(i)), &page, (3_000, 40_000));
    }
}

fn live(b: &mut Builder) {
    let (css, js) = styles("live");
    let mut links = linked([
        ("/live/scores.json".to_owned(), "All scores".to_owned()),
        ("/live/ticker.json".to_owned(), "Ticker".to_owned()),
    ]);
    links.extend((0..MATCHES).map(|i| (match_json(i), format!("Match {i}"))));
    let index = PageLinks {
        css: &css,
        js: &js,
        nav: NAV,
        links: &links,
        images: &[],
        video: None,
    };
    b.page(live_at(1, "/live/"), &index, (2_000, 4_000));
    b.bytes(live_at(1, "/live/scores.json"), Kind::Json, |rng| {
        let list: Vec<String> = (0..MATCHES)
            .map(|i| format!("\"{}\"", match_json(i)))
            .collect();
        let head = format!("\"matches\":[{}]", list.join(","));
        make::json(rng, &head, 2_000).into_bytes()
    });
    b.bytes(live_at(1, "/live/ticker.json"), Kind::Json, |rng| {
        let head = format!("\"headline\":\"{}\"", make::title(rng, 5));
        make::json(rng, &head, 1_000).into_bytes()
    });
    for i in 0..MATCHES {
        let item = format!("match-{i:02}");
        b.bytes(live_at(2, match_json(i)).item(item), Kind::Json, |rng| {
            let head = format!(
                "\"match\":{i},\"home\":\"{}\",\"away\":\"{}\",\"score\":[{},{}],\"minute\":{}",
                make::title(rng, 1),
                make::title(rng, 1),
                rng.range(0, 5),
                rng.range(0, 5),
                rng.range(1, 90)
            );
            let target = rng.log_range(200, 600) as usize;
            make::json(rng, &head, target).into_bytes()
        });
    }
}

fn statics(b: &mut Builder) {
    for name in CSS {
        let (tier, size) = match *name {
            "site" => (0, (12_000, 16_000)),
            "print" => (3, (800, 1_500)),
            "theme-dark" => (3, (2_000, 4_000)),
            _ => (1, (2_000, 40_000)),
        };
        b.bytes(at(tier, "static", STATIC, css(name)), Kind::Css, |rng| {
            let target = rng.log_range(size.0, size.1) as usize;
            make::css(rng, *name == "site", target).into_bytes()
        });
    }
    for name in JS {
        let (tier, size) = match *name {
            "app" => (0, (20_000, 40_000)),
            "vendor" => (0, (400_000, 700_000)),
            "polyfills" | "search" => (3, (5_000, 60_000)),
            _ => (1, (5_000, 120_000)),
        };
        b.bytes(at(tier, "static", STATIC, js(name)), Kind::Js, |rng| {
            let target = rng.log_range(size.0, size.1) as usize;
            make::js(rng, name, target).into_bytes()
        });
    }
}

fn images(b: &mut Builder) {
    let svg = |size: u32, lo: u64, hi: u64| {
        move |rng: &mut Rng| {
            let target = rng.log_range(lo, hi) as usize;
            make::svg(rng, size, target).into_bytes()
        }
    };
    let png = |lo: u64, hi: u64| {
        move |rng: &mut Rng| {
            let target = rng.log_range(lo, hi) as usize;
            make::png(rng, target)
        }
    };
    b.bytes(
        at(0, "img", STATIC, "/img/logo.svg"),
        Kind::Svg,
        svg(48, 1_000, 1_500),
    );
    for name in ICONS {
        let path = format!("/img/icons/{name}.svg");
        b.bytes(at(1, "img", STATIC, path), Kind::Svg, svg(24, 200, 1_500));
    }
    for i in 0..HEROES {
        let path = format!("/img/hero/{}.png", i + 1);
        let tier = if i == 0 { 1 } else { 3 };
        b.bytes(
            at(tier, "img", STATIC, path),
            Kind::Png,
            png(1 << 20, 3 << 20),
        );
    }
    for i in 0..STORIES {
        let item = format!("story-{i:03}");
        let tier = if i < 10 { 1 } else { 2 };
        b.bytes(
            at(tier, "img", STATIC, story_img(i)).item(item),
            Kind::Png,
            png(10_000, 200_000),
        );
    }
    for i in 0..PRODUCTS {
        let item = format!("product-{i:03}");
        let tier = if i < 8 { 1 } else { 2 };
        b.bytes(
            at(tier, "img", STATIC, product_img(i)).item(item),
            Kind::Png,
            png(8_000, 120_000),
        );
    }
    b.bytes(
        at(2, "img", STATIC, POSTER),
        Kind::Png,
        png(150_000, 250_000),
    );
}

fn video(b: &mut Builder) {
    let (css, js) = styles("video");
    let links = linked((0..CLIPS).map(|i| {
        (
            format!("/video/clip-{}.mp4", i + 1),
            format!("Clip {}", i + 1),
        )
    }));
    let page = PageLinks {
        css: &css,
        js: &js,
        nav: NAV,
        links: &links,
        images: &[],
        video: Some((BIG_VIDEO, POSTER)),
    };
    b.page(at(1, "video", PAGE, "/video/"), &page, (2_000, 4_000));
    let mut rng = b.rng(BIG_VIDEO);
    let block = Bytes::from(make::video(&mut rng, VIDEO_BLOCK));
    let body = Content::Repeat {
        block,
        len: BIG_VIDEO_LEN,
    };
    b.add(at(2, "video", VIDEO, BIG_VIDEO), Kind::Mp4, body);
    for i in 0..CLIPS {
        let path = format!("/video/clip-{}.mp4", i + 1);
        b.bytes(at(3, "video", VIDEO, path), Kind::Mp4, |rng| {
            let len = rng.log_range(256 << 10, 4 << 20) as usize;
            make::video(rng, len)
        });
    }
}
