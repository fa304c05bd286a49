//! `meridian edge`: a caching reverse proxy in front of an origin or shields.

use std::net::SocketAddr;
use std::path::PathBuf;

use meridian_common::ByteSize;
use meridian_edge::FileConfig;

#[derive(clap::Args)]
pub struct EdgeArgs {
    /// Proxy listener address [config `listen`, default 127.0.0.1:8080].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Upstream base URL (an origin, or a shield); repeat for several shields.
    #[arg(long = "upstream", value_name = "URL")]
    upstreams: Vec<String>,
    /// Admin listener (/healthz, /stats) [config `admin-listen`, default off].
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    /// Node name, shown in Cache-Status and Via [default "meridian"].
    #[arg(long)]
    name: Option<String>,
    /// Region label reported by /healthz [default "local"].
    #[arg(long)]
    region: Option<String>,
    /// Memory for stored responses, e.g. 256MiB.
    #[arg(long)]
    cache_size: Option<ByteSize>,
    /// Responses larger than this are streamed, not stored, e.g. 64MiB.
    #[arg(long)]
    max_object_size: Option<ByteSize>,
    /// Runtime worker threads (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// TOML config file (see config/edge.toml); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Validate the configuration and exit.
    #[arg(long)]
    check_config: bool,
}

pub fn main(args: EdgeArgs) -> anyhow::Result<()> {
    let (mut file, source) = match &args.config {
        Some(p) => (FileConfig::load(p)?, p.display().to_string()),
        None => (FileConfig::default(), "command line".to_string()),
    };
    if args.listen.is_some() {
        file.listen = args.listen;
    }
    if !args.upstreams.is_empty() {
        file.upstream = args.upstreams.clone();
    }
    if args.admin_listen.is_some() {
        file.admin_listen = args.admin_listen;
    }
    if args.name.is_some() {
        file.name = args.name.clone();
    }
    if args.region.is_some() {
        file.region = args.region.clone();
    }
    if args.cache_size.is_some() {
        file.cache.size = args.cache_size;
    }
    if args.max_object_size.is_some() {
        file.cache.max_object_size = args.max_object_size;
    }
    if args.workers.is_some() {
        file.workers = args.workers;
    }
    let config = file.validate(&source)?;
    if args.check_config {
        println!("{source}: configuration OK");
        return Ok(());
    }
    super::runtime(config.workers)?.block_on(async move {
        let (listener, admin, shutdown) = super::bind(config.listen, config.admin_listen).await?;
        meridian_edge::run(listener, admin, config, shutdown).await?;
        Ok(())
    })
}
