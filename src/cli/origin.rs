//! `meridian origin`: serve a folder as a static origin (demos, tests,
//! benchmarks), or the generated sample site (`--sample-site`). Flags only;
//! there is no config file for something this small.

use std::net::SocketAddr;
use std::num::NonZeroU64;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use meridian_common::ByteSize;
use meridian_origin::{Counters, HeaderValue, OriginConfig, SampleSite};

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("site").required(true).args(["root", "sample_site"])))]
pub struct OriginArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
    /// Folder to serve; nothing outside it is ever served (or --sample-site).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Serve the generated sample site instead of a folder: a few hundred
    /// assets with a mix of types, sizes, TTLs and surrogate keys, an
    /// uncacheable /api/ and /sitemap.txt listing every asset.
    #[arg(long, conflicts_with_all = ["cache_control", "delay_ms", "rate", "surrogate_key_by_dir"])]
    sample_site: bool,
    /// Seed of the sample site: the same seed, the same bytes and ETags.
    #[arg(long, conflicts_with = "root", default_value_t = 1)]
    seed: u64,
    /// `Cache-Control` sent with every file, e.g. 'public, max-age=3600'
    /// (none if absent).
    #[arg(long)]
    cache_control: Option<String>,
    /// Milliseconds to wait before answering each request (a slow origin).
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Send each response body at this many bytes per second, e.g. `8MiB`
    /// or `8MiB/s` (a slow origin; unlimited if absent).
    #[arg(long, value_parser = parse_rate)]
    rate: Option<NonZeroU64>,
    /// Send `Surrogate-Key: DIR` with each file in a folder DIR of the root
    /// (its first folder; files in the root get none), to try tag purges.
    #[arg(long)]
    surrogate_key_by_dir: bool,
    /// Runtime worker threads (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
}

pub fn main(args: OriginArgs) -> anyhow::Result<()> {
    if args.workers == Some(0) {
        bail!("--workers: must be at least 1");
    }
    let Some(root) = args.root.clone() else {
        return sample_site(args);
    };
    // Check the flags before starting anything, so mistakes name the flag.
    match std::fs::metadata(&root) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => bail!("--root {}: not a directory", root.display()),
        Err(e) => bail!("--root {}: {e}", root.display()),
    }
    let cache_control = args
        .cache_control
        .as_deref()
        .map(HeaderValue::from_str)
        .transpose()
        .context("--cache-control: not a valid header value")?;
    let config = OriginConfig {
        root,
        cache_control,
        delay: Duration::from_millis(args.delay_ms),
        rate: args.rate,
        surrogate_key_by_dir: args.surrogate_key_by_dir,
    };
    serve(&args, |listener, shutdown| async move {
        meridian_origin::run(listener, config, shutdown).await
    })
}

/// `--sample-site`: generates the site, then serves it until Ctrl-C.
fn sample_site(args: OriginArgs) -> anyhow::Result<()> {
    let site = Arc::new(SampleSite::generate(args.seed));
    let counters = Arc::new(Counters::default());
    serve(&args, |listener, shutdown| async move {
        meridian_origin::run_sample(listener, site, counters, shutdown).await
    })
}

/// Binds `--listen` and runs `origin` on it until Ctrl-C or SIGTERM.
fn serve<F, Fut>(args: &OriginArgs, origin: F) -> anyhow::Result<()>
where
    F: FnOnce(tokio::net::TcpListener, meridian_common::Shutdown) -> Fut,
    Fut: std::future::Future<Output = Result<(), meridian_origin::Error>>,
{
    let listen = args.listen;
    super::runtime(args.workers)?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("--listen {listen}: cannot bind"))?;
        let shutdown = meridian_common::Shutdown::new();
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            meridian_common::shutdown_signal().await;
            trigger.trigger();
        });
        origin(listener, shutdown).await?;
        Ok(())
    })
}

/// `8MiB`, `8MiB/s` or `8388608`: bytes per second, at least one.
fn parse_rate(s: &str) -> Result<NonZeroU64, String> {
    let size: ByteSize = s
        .trim()
        .strip_suffix("/s")
        .unwrap_or(s)
        .parse()
        .map_err(|e| format!("{e}"))?;
    NonZeroU64::new(size.bytes()).ok_or_else(|| "must be at least 1 byte per second".to_owned())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{OriginArgs, parse_rate};

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: OriginArgs,
    }

    #[test]
    fn exactly_one_of_root_and_sample_site() {
        let parse = |args: &[&str]| Cli::try_parse_from([&["origin"], args].concat());
        assert!(parse(&[]).is_err(), "one of them is required");
        assert!(parse(&["--root", "www", "--sample-site"]).is_err());
        assert!(parse(&["--root", "www", "--seed", "3"]).is_err());
        for root_only in [
            &["--cache-control", "no-store"][..],
            &["--delay-ms", "5"],
            &["--rate", "1MiB"],
            &["--surrogate-key-by-dir"],
        ] {
            assert!(parse(&[&["--sample-site"], root_only].concat()).is_err());
        }
        let site = parse(&["--sample-site", "--seed", "3"]).expect("sample site");
        assert!(site.args.sample_site && site.args.root.is_none());
        assert_eq!(site.args.seed, 3);
        let root = parse(&["--root", "www", "--delay-ms", "5"]).expect("root");
        assert_eq!(root.args.root.as_deref(), Some(std::path::Path::new("www")));
        assert!(!root.args.sample_site);
    }

    #[test]
    fn rate_takes_a_size_per_second() {
        assert_eq!(parse_rate("8MiB").map(|r| r.get()), Ok(8 << 20));
        assert_eq!(parse_rate("8MiB/s").map(|r| r.get()), Ok(8 << 20));
        assert_eq!(parse_rate("1000").map(|r| r.get()), Ok(1000));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("fast").is_err());
    }
}
