//! The bytes of the sample site: a seeded generator ([`Rng`]) and one
//! function per file type. Everything here is deterministic for its
//! generator's state, valid for its type (HTML, CSS, JS, JSON, SVG and PNG
//! that a browser or parser accepts; only the MP4 is mere bytes), and about
//! the size asked for.

use std::fmt::Write as _;

/// SplitMix64: tiny, fast and good enough for filler content. Not for
/// anything secret.
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator for one asset: the site's seed mixed with the asset's
    /// path, so adding an asset never changes the bytes of another.
    pub(crate) fn for_asset(seed: u64, path: &str) -> Rng {
        let mut r = Rng(seed ^ fnv1a(path.as_bytes()));
        r.next();
        r
    }

    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi` (modulo bias is irrelevant here).
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        let span = hi.saturating_sub(lo).saturating_add(1);
        lo.saturating_add(self.next() % span.max(1))
    }

    /// Log-uniform in `lo..=hi`: as many 1–2 KB files as 100–200 KB ones,
    /// which is how real sites' sizes spread.
    pub(crate) fn log_range(&mut self, lo: u64, hi: u64) -> u64 {
        let hi = hi.max(lo);
        let (l, h) = ((lo.max(1) as f64).ln(), (hi.max(1) as f64).ln());
        let unit = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((l + (h - l) * unit).exp() as u64).clamp(lo, hi)
    }

    pub(crate) fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs.get(self.next() as usize % xs.len().max(1))
            .copied()
            .unwrap_or("")
    }

    /// Fisher–Yates.
    pub(crate) fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            let j = self.next() as usize % (i + 1);
            xs.swap(i, j);
        }
    }
}

/// FNV-1a, 64 bits, over `bytes`: seeds the per-asset generators.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

/// The hash behind every ETag, continued from `h` over `bytes`: FNV-1a's
/// step eight bytes at a time (then the tail and the length), so equal
/// bytes always get equal tags and any change of generator changes them.
/// Not collision-resistant, and it need not be: the bytes are our own.
pub(crate) fn digest(mut h: u64, bytes: &[u8]) -> u64 {
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let x = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        h = (h ^ x).wrapping_mul(0x0000_0100_0000_01B3).rotate_left(29);
    }
    for &b in words.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3);
    }
    (h ^ bytes.len() as u64).wrapping_mul(0x0000_0100_0000_01B3)
}

const WORDS: &[&str] = &[
    "edge", "cache", "origin", "shield", "latency", "region", "packet", "stream", "router",
    "signal", "harbor", "river", "market", "garden", "lantern", "summit", "copper", "velvet",
    "meadow", "quartz", "island", "canyon", "forest", "glacier", "orbit", "comet", "harvest",
    "beacon", "anchor", "compass", "falcon", "maple", "cedar", "willow", "ember", "crystal",
    "thunder", "breeze", "horizon", "valley", "pioneer", "voyage", "archive", "journal", "ledger",
    "mosaic", "pixel", "vector", "kernel", "socket", "buffer", "thread", "module", "crate",
    "season", "morning", "evening", "weekend", "festival", "concert", "museum", "library",
    "station", "bridge", "tower", "street", "square", "avenue", "coast", "city", "village",
];

pub(crate) fn word(rng: &mut Rng) -> &'static str {
    rng.pick(WORDS)
}

/// "Harbor lantern falcon": a title of `n` capitalised words.
pub(crate) fn title(rng: &mut Rng, n: usize) -> String {
    let mut out = String::new();
    for i in 0..n {
        if i > 0 {
            out.push(' ');
        }
        let w = word(rng);
        let mut chars = w.chars();
        if let Some(c) = chars.next() {
            out.push(c.to_ascii_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

/// One sentence of 6–16 words, capitalised, with a full stop.
pub(crate) fn sentence(rng: &mut Rng) -> String {
    let n = rng.range(6, 16) as usize;
    let mut s = title(rng, 1);
    for _ in 1..n {
        s.push(' ');
        s.push_str(word(rng));
    }
    s.push('.');
    s
}

/// Where an HTML page's surroundings point: every `href` and `src` in it.
pub(crate) struct PageLinks<'a> {
    pub(crate) css: &'a [String],
    pub(crate) js: &'a [String],
    /// The site navigation: (href, label).
    pub(crate) nav: &'a [(&'a str, &'a str)],
    /// Links in the body: (href, label).
    pub(crate) links: &'a [(String, String)],
    /// Images in the body: (src, alt).
    pub(crate) images: &'a [(String, String)],
    /// A `<video>` src and its poster image, if any.
    pub(crate) video: Option<(&'a str, &'a str)>,
}

/// A small valid HTML5 page of about `target` bytes (at least its frame).
/// Every word is ASCII letters, so nothing needs escaping.
pub(crate) fn html(rng: &mut Rng, page_title: &str, l: &PageLinks<'_>, target: usize) -> String {
    let mut h = String::with_capacity(target + 1024);
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let _ = writeln!(h, "<title>{page_title} | Meridian sample site</title>");
    h.push_str("<link rel=\"icon\" href=\"/img/logo.svg\" type=\"image/svg+xml\">\n");
    for css in l.css {
        let _ = writeln!(h, "<link rel=\"stylesheet\" href=\"{css}\">");
    }
    for js in l.js {
        let _ = writeln!(h, "<script src=\"{js}\" defer></script>");
    }
    h.push_str("</head>\n<body>\n<header>\n<a href=\"/\"><img src=\"/img/logo.svg\" alt=\"Meridian\" width=\"48\" height=\"48\"></a>\n<nav>");
    for (href, label) in l.nav {
        let _ = write!(h, " <a href=\"{href}\">{label}</a>");
    }
    let _ = write!(h, "</nav>\n</header>\n<main>\n<h1>{page_title}</h1>\n");
    if let Some((src, poster)) = l.video {
        let _ = writeln!(
            h,
            "<video src=\"{src}\" poster=\"{poster}\" controls width=\"640\" height=\"360\"></video>"
        );
    }
    for (src, alt) in l.images {
        let _ = writeln!(
            h,
            "<figure><img src=\"{src}\" alt=\"{alt}\" loading=\"lazy\"><figcaption>{alt}</figcaption></figure>"
        );
    }
    if !l.links.is_empty() {
        h.push_str("<ul>\n");
        for (href, label) in l.links {
            let _ = writeln!(h, "<li><a href=\"{href}\">{label}</a></li>");
        }
        h.push_str("</ul>\n");
    }
    const TAIL: &str = "</main>\n<footer><p>Generated by meridian origin --sample-site.</p></footer>\n</body>\n</html>\n";
    // At least one paragraph, so every page has text of its own.
    loop {
        h.push_str("<p>");
        for _ in 0..rng.range(2, 6) {
            h.push_str(&sentence(rng));
            h.push(' ');
        }
        h.push_str("</p>\n");
        if h.len() + TAIL.len() >= target {
            break;
        }
    }
    h.push_str(TAIL);
    h
}

/// A style sheet of about `target` bytes; `base` adds readable defaults.
pub(crate) fn css(rng: &mut Rng, base: bool, target: usize) -> String {
    let mut c = String::with_capacity(target + 256);
    let _ = writeln!(c, "/* {} */", sentence(rng));
    if base {
        c.push_str(concat!(
            "body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 60rem; padding: 1rem; line-height: 1.5; }\n",
            "header { display: flex; align-items: center; gap: 1rem; border-bottom: 1px solid #ddd; }\n",
            "nav a { margin-right: .75rem; }\n",
            "img, video { max-width: 100%; height: auto; }\n",
            "figure { margin: 1rem 0; }\n",
            "footer { margin-top: 2rem; color: #666; font-size: .875rem; }\n",
        ));
    }
    while c.len() < target {
        let _ = writeln!(
            c,
            ".{}-{} {{ color: #{:06x}; margin: {}px {}px; padding: {}px; border-radius: {}px; }}",
            word(rng),
            rng.range(0, 999),
            rng.next() & 0xFF_FFFF,
            rng.range(0, 32),
            rng.range(0, 32),
            rng.range(0, 16),
            rng.range(0, 8),
        );
    }
    c
}

/// A script of about `target` bytes that does nothing visible: a data
/// table and a function that reads it.
pub(crate) fn js(rng: &mut Rng, name: &str, target: usize) -> String {
    let mut j = String::with_capacity(target + 256);
    let _ = writeln!(j, "// {name}: {}", sentence(rng));
    j.push_str("\"use strict\";\n(function () {\n  const table = [\n");
    const TAIL: &str =
        "  ];\n  document.documentElement.dataset.assets = String(table.length);\n})();\n";
    loop {
        let _ = writeln!(
            j,
            "    {{ id: {}, name: \"{}\", weight: {} }},",
            rng.range(0, 99_999),
            word(rng),
            rng.range(0, 1000)
        );
        if j.len() + TAIL.len() >= target {
            break;
        }
    }
    j.push_str(TAIL);
    j
}

/// A JSON document of about `target` bytes: `head` (already valid JSON
/// members, without braces) plus an `items` array of filler.
pub(crate) fn json(rng: &mut Rng, head: &str, target: usize) -> String {
    let mut s = String::with_capacity(target + 128);
    let _ = write!(s, "{{{head},\"note\":\"{}\",\"items\":[", sentence(rng));
    let mut first = true;
    loop {
        if !first {
            s.push(',');
        }
        first = false;
        let _ = write!(
            s,
            "{{\"k\":\"{}\",\"v\":{}}}",
            word(rng),
            rng.range(0, 1_000_000)
        );
        if s.len() + 3 >= target {
            break;
        }
    }
    s.push_str("]}\n");
    s
}

/// A real SVG of about `target` bytes: coloured shapes on a square.
pub(crate) fn svg(rng: &mut Rng, size: u32, target: usize) -> String {
    let mut s = String::with_capacity(target + 128);
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{size}\" height=\"{size}\" viewBox=\"0 0 {size} {size}\">"
    );
    let _ = writeln!(
        s,
        "<rect width=\"{size}\" height=\"{size}\" rx=\"{}\" fill=\"#{:06x}\"/>",
        size / 8,
        rng.next() & 0xFF_FFFF
    );
    const TAIL: &str = "</svg>\n";
    let n = u64::from(size.max(1));
    // At least one shape, so every image differs from seed to seed.
    loop {
        let _ = writeln!(
            s,
            "<circle cx=\"{}\" cy=\"{}\" r=\"{}\" fill=\"#{:06x}\" fill-opacity=\"0.6\"/>",
            rng.range(0, n),
            rng.range(0, n),
            rng.range(1, n / 3 + 1),
            rng.next() & 0xFF_FFFF
        );
        if s.len() + TAIL.len() >= target {
            break;
        }
    }
    s.push_str(TAIL);
    s
}

/// A real PNG of about `target` bytes: an RGB gradient (4:3) stored
/// without compression, so its size follows from its dimensions alone.
pub(crate) fn png(rng: &mut Rng, target: usize) -> Vec<u8> {
    // Pixel data is 3 bytes per pixel plus a filter byte per row.
    let h = ((target as f64 / 4.0).sqrt() as u32).max(1);
    let w = (h * 4 / 3).max(1);
    let (c0, c1) = (rng.next(), rng.next());
    // The first row is a red/blue gradient; every later row, filtered
    // "Up" (RFC 2083 §6.3), adds 1 to the green of the row above. So every
    // row after the first is the same bytes: cheap even in a debug build.
    let mut first = Vec::with_capacity(1 + 3 * w as usize);
    first.push(0); // filter: none
    for x in 0..w {
        let fx = (u64::from(x) * 255 / u64::from(w)) as u8;
        first.extend_from_slice(&[fx ^ c0 as u8, (c0 >> 8) as u8, fx ^ c1 as u8]);
    }
    let mut up = vec![0u8; first.len()];
    up[0] = 2; // filter: up
    for g in up[2..].iter_mut().step_by(3) {
        *g = 1;
    }
    let mut raw = Vec::with_capacity(first.len() * h as usize);
    raw.extend_from_slice(&first);
    for _ in 1..h {
        raw.extend_from_slice(&up);
    }
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB, deflate, no filter, no interlace
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 65535 * 5 + 128);
    out.extend_from_slice(b"\x89PNG\r\n\x1a\n");
    png_chunk(&mut out, b"IHDR", &ihdr);
    png_chunk(&mut out, b"IDAT", &zlib_stored(&raw));
    png_chunk(&mut out, b"IEND", &[]);
    out
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(crc32_start(), kind);
    let crc = crc32(crc, data) ^ 0xFFFF_FFFF;
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A zlib stream (RFC 1950) of deflate "stored" blocks (RFC 1951 §3.2.4).
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 65535 * 5 + 16);
    out.extend_from_slice(&[0x78, 0x01]);
    let mut blocks = data.chunks(65535).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xFF, 0xFF]);
    }
    while let Some(block) = blocks.next() {
        out.push(u8::from(blocks.peek().is_none()));
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    // 5552 is the largest run before `b` could overflow (zlib's NMAX).
    for run in data.chunks(5552) {
        for &x in run {
            a += u32::from(x);
            b += a;
        }
        a %= 65521;
        b %= 65521;
    }
    (b << 16) | a
}

/// Slicing-by-8 tables for the PNG CRC: `CRC[0]` is the classic table,
/// `CRC[k][n]` the CRC of byte `n` followed by `k` zero bytes.
static CRC: [[u32; 256]; 8] = {
    let mut t = [[0u32; 256]; 8];
    let mut n = 0;
    while n < 256 {
        let mut c = n as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[0][n] = c;
        n += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut n = 0;
        while n < 256 {
            let prev = t[k - 1][n];
            t[k][n] = (prev >> 8) ^ t[0][(prev & 0xFF) as usize];
            n += 1;
        }
        k += 1;
    }
    t
};

fn crc32_start() -> u32 {
    0xFFFF_FFFF
}

/// The PNG CRC (ISO 3309), continued over `data`; finish with `^ !0`.
/// Eight bytes a step: the IDAT of a 3 MiB image is most of the site's
/// generation time in a debug build.
fn crc32(mut c: u32, data: &[u8]) -> u32 {
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let lo = c ^ u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        c = CRC[7][(lo & 0xFF) as usize]
            ^ CRC[6][((lo >> 8) & 0xFF) as usize]
            ^ CRC[5][((lo >> 16) & 0xFF) as usize]
            ^ CRC[4][(lo >> 24) as usize]
            ^ CRC[3][w[4] as usize]
            ^ CRC[2][w[5] as usize]
            ^ CRC[1][w[6] as usize]
            ^ CRC[0][w[7] as usize];
    }
    for &b in words.remainder() {
        c = CRC[0][((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
    }
    c
}

/// Bytes that look like a video container: an `ftyp` box, then noise.
pub(crate) fn video(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 8);
    v.extend_from_slice(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2");
    while v.len() < len {
        v.extend_from_slice(&rng.next().to_le_bytes());
    }
    v.truncate(len);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_and_adler32_match_their_reference_values() {
        // The check values of both algorithms for "123456789".
        assert_eq!(
            crc32(crc32_start(), b"123456789") ^ 0xFFFF_FFFF,
            0xCBF4_3926
        );
        // Eight bytes a step and one at a time agree, whatever the split.
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        let whole = crc32(crc32_start(), &data);
        for cut in [0, 1, 7, 8, 9, 500, 999] {
            let (a, b) = data.split_at(cut);
            assert_eq!(crc32(crc32(crc32_start(), a), b), whole, "cut at {cut}");
        }
        let bytewise = data.iter().fold(crc32_start(), |c, &b| crc32(c, &[b]));
        assert_eq!(bytewise, whole);
        assert_eq!(adler32(b"123456789"), 0x091E_01DE);
        assert_eq!(adler32(b""), 1);
    }

    #[test]
    fn ranges_stay_in_bounds_even_when_given_backwards() {
        let mut rng = Rng::new(3);
        for _ in 0..1000 {
            assert!((10..=20).contains(&rng.range(10, 20)));
            assert!((10..=20).contains(&rng.log_range(10, 20)));
        }
        assert_eq!(rng.log_range(50, 5), 50);
        assert_eq!(rng.range(50, 5), 50);
        assert_eq!(rng.pick(&[]), "");
    }

    #[test]
    fn png_is_framed_as_the_spec_says() {
        let p = png(&mut Rng::new(1), 70_000);
        assert!(p.starts_with(b"\x89PNG\r\n\x1a\n"));
        assert_eq!(&p[12..16], b"IHDR");
        assert!(p.ends_with(&[0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82]));
        let w = u32::from_be_bytes([p[16], p[17], p[18], p[19]]) as usize;
        let h = u32::from_be_bytes([p[20], p[21], p[22], p[23]]) as usize;
        // Signature, IHDR (25), IDAT framing (12 + zlib 6 + 5 per block), IEND (12).
        let raw = h * (1 + 3 * w);
        assert_eq!(
            p.len(),
            8 + 25 + 12 + 6 + raw + raw.div_ceil(65535) * 5 + 12
        );
        assert!((60_000..80_000).contains(&p.len()), "{}", p.len());
    }

    #[test]
    fn generators_reach_their_target_and_stay_valid() {
        let mut rng = Rng::new(7);
        for target in [200, 5_000, 50_000] {
            let j = json(&mut rng, "\"id\":1", target);
            let v: serde_json::Value = serde_json::from_str(&j).expect("valid JSON");
            assert_eq!(v["id"], 1);
            assert!(j.len() >= target && j.len() < target + 200, "{}", j.len());
            assert!(css(&mut rng, false, target).len() >= target);
            assert!(js(&mut rng, "x", target).len() >= target);
            let s = svg(&mut rng, 64, target);
            assert!(s.starts_with("<svg xmlns") && s.ends_with("</svg>\n"));
        }
        assert_eq!(video(&mut rng, 1000).len(), 1000);
    }
}
