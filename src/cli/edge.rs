//! `meridian edge`: a caching reverse proxy in front of an origin or shields.

use std::net::SocketAddr;

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
    /// Responses larger than this are streamed, not stored, e.g. 64MiB.
    #[arg(long)]
    max_object_size: Option<ByteSize>,
    #[command(flatten)]
    node: super::NodeFlags,
}

pub fn main(args: EdgeArgs) -> anyhow::Result<()> {
    let (mut file, source): (FileConfig, String) = args.node.load_file()?;
    if args.listen.is_some() {
        file.listen = args.listen;
    }
    if !args.upstreams.is_empty() {
        file.upstream = args.upstreams.clone();
    }
    if args.max_object_size.is_some() {
        file.cache.max_object_size = args.max_object_size;
    }
    super::apply_node_flags!(file, &args.node);
    let config = file.validate(&source)?;
    if args.node.check_config {
        println!("{source}: configuration OK");
        return Ok(());
    }
    super::runtime(config.workers)?.block_on(async move {
        let (listener, admin, shutdown) = super::bind(config.listen, config.admin_listen).await?;
        meridian_edge::run(listener, admin, config, shutdown).await?;
        Ok(())
    })
}
