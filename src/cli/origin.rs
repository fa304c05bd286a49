//! `meridian origin`: serve a folder as a static origin (demos, tests,
//! benchmarks). Flags only; there is no config file for something this small.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use meridian_origin::{HeaderValue, OriginConfig};

#[derive(clap::Args)]
pub struct OriginArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
    /// Folder to serve; nothing outside it is ever served.
    #[arg(long)]
    root: PathBuf,
    /// `Cache-Control` sent with every file, e.g. 'public, max-age=3600'
    /// (none if absent).
    #[arg(long)]
    cache_control: Option<String>,
    /// Milliseconds to wait before answering each request (a slow origin).
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Runtime worker threads (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
}

pub fn main(args: OriginArgs) -> anyhow::Result<()> {
    // Check the flags before starting anything, so mistakes name the flag.
    match std::fs::metadata(&args.root) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => bail!("--root {}: not a directory", args.root.display()),
        Err(e) => bail!("--root {}: {e}", args.root.display()),
    }
    let cache_control = args
        .cache_control
        .as_deref()
        .map(HeaderValue::from_str)
        .transpose()
        .context("--cache-control: not a valid header value")?;
    if args.workers == Some(0) {
        bail!("--workers: must be at least 1");
    }
    let config = OriginConfig {
        root: args.root,
        cache_control,
        delay: Duration::from_millis(args.delay_ms),
    };
    let rt = super::runtime(args.workers)?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("--listen {}: cannot bind", args.listen))?;
        let shutdown = meridian_common::Shutdown::new();
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            meridian_common::shutdown_signal().await;
            trigger.trigger();
        });
        meridian_origin::run(listener, config, shutdown).await?;
        Ok(())
    })
}
