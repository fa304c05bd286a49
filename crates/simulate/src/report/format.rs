//! Numbers for people, and escaping for HTML: shared by the printed
//! tables and the page. Every function takes any value (not-a-number,
//! infinities, `None`) and answers something printable.

use crate::model::{Routing, Stats};

/// What a missing figure prints as.
pub const NONE: &str = "-";

/// Milliseconds: one decimal below 10 ms, none from there; thousands
/// separated (`3.4 ms`, `38 ms`, `1,204 ms`).
pub fn ms(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{} ms", ms_number(v)),
        _ => NONE.to_owned(),
    }
}

/// [`ms`] without the unit.
pub fn ms_number(v: f64) -> String {
    if !v.is_finite() {
        return NONE.to_owned();
    }
    if v.abs() < 10.0 {
        format!("{v:.1}")
    } else {
        group(v.round())
    }
}

/// A ratio as a percentage with one decimal (`0.912` → `91.2%`).
pub fn pct(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{:.1}%", v * 100.0),
        _ => NONE.to_owned(),
    }
}

/// A ratio as a whole percentage, one decimal below 10 % (`5%`, `4.5%`),
/// for the big numbers.
pub fn pct_short(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => {
            let p = v * 100.0;
            if p.abs() < 10.0 && (p - p.round()).abs() >= 0.05 {
                format!("{p:.1}%")
            } else {
                format!("{p:.0}%")
            }
        }
        _ => NONE.to_owned(),
    }
}

/// `v` with `decimals` decimals, [`NONE`] when not finite.
pub fn fixed(v: f64, decimals: usize) -> String {
    if v.is_finite() {
        format!("{v:.decimals$}")
    } else {
        NONE.to_owned()
    }
}

/// A count with thousands separators (`20,000`).
pub fn count(n: u64) -> String {
    group(n as f64)
}

/// Bytes in binary units with one decimal (`512 B`, `3.4 MiB`).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// Milliseconds of wall time as seconds (`31.2 s`), minutes past 100 s.
pub fn duration(ms: u64) -> String {
    let s = ms as f64 / 1000.0;
    if s < 100.0 {
        format!("{s:.1} s")
    } else {
        format!("{}m {:02}s", ms / 60_000, (ms / 1000) % 60)
    }
}

/// `a / b` as a factor (`4.1x`), when both are positive and finite.
pub fn factor(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if a.is_finite() && b.is_finite() && a > 0.0 && b > 0.0 => Some(b / a),
        _ => None,
    }
}

/// The share of requests that reached the origin (`1 − offload`, or the
/// counts when offload is missing).
pub fn origin_share(s: &Stats) -> Option<f64> {
    if s.requests == 0 {
        return None;
    }
    Some(s.origin_requests as f64 / s.requests as f64)
}

/// A UTC timestamp from milliseconds since the Unix epoch
/// (`2026-12-01 16:40:02 UTC`).
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 → (year,
/// month, day) in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The rounded value with `,` between thousands.
fn group(v: f64) -> String {
    if !v.is_finite() {
        return NONE.to_owned();
    }
    let digits = format!("{:.0}", v.abs());
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if v < 0.0 && digits != "0" {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Short names for narrow columns.
pub fn routing_short(r: Routing) -> &'static str {
    match r {
        Routing::Director => "director",
        Routing::Random => "random edge",
        Routing::Origin => "origin",
    }
}

/// At most `max` characters of `s`, cut with `…`.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Text for HTML content and attribute values: `& < > " '` escaped.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A coordinate for SVG: two decimals at most, `0` for anything not
/// finite (callers skip such points first; this keeps the markup valid).
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return "0".to_owned();
    }
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_get_a_decimal_only_below_ten() {
        assert_eq!(ms(Some(3.44)), "3.4 ms");
        assert_eq!(ms(Some(38.4)), "38 ms");
        assert_eq!(ms(Some(1204.0)), "1,204 ms");
        assert_eq!(ms(None), "-");
        assert_eq!(ms(Some(f64::NAN)), "-");
        assert_eq!(ms(Some(f64::INFINITY)), "-");
    }

    #[test]
    fn percentages_and_counts_read_as_people_write_them() {
        assert_eq!(pct(Some(0.9123)), "91.2%");
        assert_eq!(pct(None), "-");
        assert_eq!(pct_short(Some(0.95)), "95%");
        assert_eq!(pct_short(Some(0.045)), "4.5%");
        assert_eq!(pct_short(Some(0.05)), "5%");
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(20_000), "20,000");
        assert_eq!(count(1_234_567), "1,234,567");
    }

    #[test]
    fn bytes_use_binary_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 * 1024 * 1024 + 400 * 1024), "3.4 MiB");
        assert_eq!(bytes(u64::MAX), "16384.0 PiB");
    }

    #[test]
    fn timestamps_are_utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_796_143_202_000), "2026-12-01 16:40:02 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn html_specials_are_escaped() {
        assert_eq!(
            esc(r#"<script>"a" & 'b'</script>"#),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
    }

    #[test]
    fn svg_numbers_are_short_and_always_valid() {
        assert_eq!(num(1.0), "1");
        assert_eq!(num(-77.456), "-77.46");
        assert_eq!(num(-0.001), "0");
        assert_eq!(num(f64::NAN), "0");
    }
}
