//! Is this answer the origin's bytes? Every body the soak gets is compared
//! byte for byte with the sample site's asset, generated here from the
//! cluster's seed (the same bytes the origin serves): decoded first if the
//! edge compressed it, sliced by `Content-Range` for a 206.

use std::io::Read;
use std::ops::Range;

use meridian_origin::Asset;

/// How an answer went wrong, beyond a status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The right bytes (or a correct 304).
    Ok,
    /// A status the request cannot have: the cause of an error.
    Status(u16),
    /// The body (after decoding) is not the asset's bytes at that range.
    WrongBytes(String),
}

/// The most a decoded body may hold: an answer larger than its asset is
/// wrong whatever it holds, so decoding stops just past it.
fn decode(encoding: &str, body: &[u8], limit: u64) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let cap = limit.saturating_add(1);
    let r = match encoding {
        "" | "identity" => return Ok(body.to_vec()),
        "gzip" | "x-gzip" => flate2::read::GzDecoder::new(body)
            .take(cap)
            .read_to_end(&mut out),
        "br" => brotli::Decompressor::new(body, 4096)
            .take(cap)
            .read_to_end(&mut out),
        "zstd" => match zstd::stream::read::Decoder::new(body) {
            Ok(d) => d.take(cap).read_to_end(&mut out),
            Err(e) => Err(e),
        },
        other => return Err(format!("unknown Content-Encoding `{other}`")),
    };
    r.map_err(|e| format!("{encoding} body does not decode: {e}"))?;
    Ok(out)
}

/// `bytes A-B/LEN` of a single-part 206.
fn content_range(v: &str) -> Option<(u64, u64, u64)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (span, len) = rest.split_once('/')?;
    let (a, b) = span.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?, len.parse().ok()?))
}

fn same(asset: &Asset, range: Range<u64>, body: &[u8]) -> Verdict {
    if body.len() as u64 != range.end - range.start {
        return Verdict::WrongBytes(format!(
            "{}: {} bytes where {}..{} has {}",
            asset.path,
            body.len(),
            range.start,
            range.end,
            range.end - range.start
        ));
    }
    let mut at = 0usize;
    for s in asset.slices(range.clone()) {
        let end = at + s.len();
        if body.get(at..end) != Some(&s[..]) {
            return Verdict::WrongBytes(format!(
                "{}: bytes {}..{} of range {}..{} differ from the origin's",
                asset.path, at, end, range.start, range.end
            ));
        }
        at = end;
    }
    Verdict::Ok
}

/// Checks one answer about `asset`: `status`, its `Content-Encoding`,
/// `Content-Range` and `ETag`, and its body. `conditional`: the request
/// carried the asset's own ETag in `If-None-Match`; `head`: it was a HEAD.
pub fn verify(
    asset: &Asset,
    status: u16,
    headers: &http::HeaderMap,
    body: &[u8],
    conditional: bool,
    head: bool,
) -> Verdict {
    let get = |h: http::header::HeaderName| {
        headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    };
    match status {
        304 if conditional => Verdict::Ok,
        200 if head => {
            if body.is_empty() {
                Verdict::Ok
            } else {
                Verdict::WrongBytes(format!("{}: HEAD with a body", asset.path))
            }
        }
        200 => match decode(&get(http::header::CONTENT_ENCODING), body, asset.len) {
            Ok(b) => same(asset, 0..asset.len, &b),
            Err(e) => Verdict::WrongBytes(format!("{}: {e}", asset.path)),
        },
        206 => {
            if !get(http::header::CONTENT_ENCODING).is_empty() {
                return Verdict::WrongBytes(format!("{}: an encoded 206", asset.path));
            }
            match content_range(&get(http::header::CONTENT_RANGE)) {
                Some((a, b, len)) if len == asset.len && a <= b && b < len => {
                    same(asset, a..b + 1, body)
                }
                _ => Verdict::WrongBytes(format!(
                    "{}: 206 with Content-Range `{}` (length {})",
                    asset.path,
                    get(http::header::CONTENT_RANGE),
                    asset.len
                )),
            }
        }
        s => Verdict::Status(s),
    }
}

/// The edge's own verdict from `Cache-Status` (its entry is the last):
/// `hit`, `miss`, `stale`, `revalidated`, `uri-miss`..., or `none`.
pub fn cache_outcome(headers: &http::HeaderMap) -> &'static str {
    let v = headers
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(last) = v.rsplit(',').next() else {
        return "none";
    };
    let mut params = last.split(';').skip(1).map(str::trim);
    // The edge's or the shield's stale copy, while the origin failed.
    if v.contains("stale-if-error") {
        return "stale-if-error";
    }
    match params.next() {
        Some("hit") => "hit",
        Some(p) => match p.strip_prefix("fwd=") {
            Some("miss") => "miss",
            Some("stale") => "stale",
            Some("uri-miss") => "uri-miss",
            Some("vary-miss") => "vary-miss",
            Some("bypass") => "bypass",
            Some("method") => "method",
            Some("request") => "request",
            Some(_) => "fwd-other",
            None => "other",
        },
        None => "none",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> meridian_origin::SampleSite {
        meridian_origin::SampleSite::generate(1)
    }

    fn whole(a: &Asset) -> Vec<u8> {
        a.slices(0..a.len).concat()
    }

    #[test]
    fn the_origins_bytes_pass_and_one_flipped_byte_fails() {
        let s = site();
        let a = s.get("/index.html").expect("asset");
        let h = http::HeaderMap::new();
        let mut b = whole(a);
        assert_eq!(verify(a, 200, &h, &b, false, false), Verdict::Ok);
        b[3] ^= 1;
        assert!(matches!(
            verify(a, 200, &h, &b, false, false),
            Verdict::WrongBytes(_)
        ));
        assert!(matches!(
            verify(a, 200, &h, &b[1..], false, false),
            Verdict::WrongBytes(_)
        ));
    }

    #[test]
    fn a_gzip_body_is_decoded_before_the_comparison() {
        use std::io::Write;
        let s = site();
        let a = s.get("/index.html").expect("asset");
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&whole(a)).expect("gzip");
        let gz = e.finish().expect("gzip");
        let mut h = http::HeaderMap::new();
        h.insert("content-encoding", http::HeaderValue::from_static("gzip"));
        assert_eq!(verify(a, 200, &h, &gz, false, false), Verdict::Ok);
        assert!(matches!(
            verify(a, 200, &h, &whole(a), false, false),
            Verdict::WrongBytes(_)
        ));
    }

    #[test]
    fn a_range_is_checked_against_its_content_range() {
        let s = site();
        let a = s.get(meridian_origin::sample::BIG_VIDEO).expect("video");
        let body = a.slices(1_000_000..1_000_100).concat();
        let mut h = http::HeaderMap::new();
        let cr = format!("bytes 1000000-1000099/{}", a.len);
        h.insert(
            "content-range",
            http::HeaderValue::from_str(&cr).expect("value"),
        );
        assert_eq!(verify(a, 206, &h, &body, false, false), Verdict::Ok);
        let shifted = a.slices(1_000_001..1_000_101).concat();
        assert!(matches!(
            verify(a, 206, &h, &shifted, false, false),
            Verdict::WrongBytes(_)
        ));
        assert_eq!(verify(a, 503, &h, b"", false, false), Verdict::Status(503));
    }

    #[test]
    fn the_edges_entry_of_cache_status_is_read() {
        let mut h = http::HeaderMap::new();
        h.insert(
            "cache-status",
            http::HeaderValue::from_static("shield-us; fwd=miss; stored, eu-west; hit; ttl=5"),
        );
        assert_eq!(cache_outcome(&h), "hit");
        h.insert(
            "cache-status",
            http::HeaderValue::from_static("eu-west; fwd=stale; detail=stale-if-error"),
        );
        assert_eq!(cache_outcome(&h), "stale-if-error");
    }
}
