//! Progress bars on standard error (hidden when it is not a terminal, so
//! tests and CI logs stay clean).

use indicatif::{ProgressBar, ProgressStyle};

pub fn bar(len: u64, what: &str) -> anyhow::Result<ProgressBar> {
    let style = ProgressStyle::with_template(
        "{msg:<32} [{bar:40}] {percent:>3}% {elapsed_precise} (eta {eta})",
    )?
    .progress_chars("=> ");
    Ok(ProgressBar::new(len)
        .with_style(style)
        .with_message(what.to_string()))
}
