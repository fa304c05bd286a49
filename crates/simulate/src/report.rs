//! The report: printed tables and one self-contained HTML file (inline SVG
//! and CSS, no network fetches). (Being written.)

use crate::model::Report;

/// The self-contained HTML report.
pub fn html(_report: &Report) -> String {
    String::new()
}

/// The tables `meridian simulate` prints.
pub fn text(_report: &Report) -> String {
    String::new()
}
