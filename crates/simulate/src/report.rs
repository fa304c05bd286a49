//! The report: the tables `meridian simulate` prints ([`text`]) and one
//! self-contained HTML file ([`html`]: inline SVG and CSS, no script, no
//! network fetch), both drawn from a [`Report`] alone.
//!
//! ```text
//!  Report ─► text: headline (routings side by side), regions, scenario, parameters
//!         └► html: headline strip · world map · latency CDFs · regions · over time
//!                  · edge down · parameters · the Report as JSON
//! ```

mod charts;
mod example;
mod figures;
mod format;
mod html;
mod map;
mod text;

use crate::model::Report;

#[doc(hidden)]
pub use example::example;

/// The self-contained HTML report.
pub fn html(report: &Report) -> String {
    html::render(report)
}

/// The tables `meridian simulate` prints at the end of a run.
pub fn text(report: &Report) -> String {
    text::render(report)
}
