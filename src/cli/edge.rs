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
    follow: super::purge::FollowFlags,
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
    args.follow.apply(&mut file.purge);
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: EdgeArgs,
    }

    #[test]
    fn site_host_accept_hosts_and_forwarders_from_flags() {
        let args = Cli::try_parse_from([
            "edge",
            "--upstream",
            "http://127.0.0.1:9000",
            "--site-host",
            "Shop.Example:80",
            "--accept-host",
            "shop.example",
            "--accept-host",
            "*.shop.example",
            "--trusted-forwarder",
            "10.0.0.0/8",
        ])
        .expect("flags parse")
        .args;
        let mut file = FileConfig {
            upstream: args.upstreams.clone(),
            ..Default::default()
        };
        super::super::apply_node_flags!(file, &args.node);
        let c = file.validate("command line").expect("valid");
        assert_eq!(c.site_host.as_deref(), Some("shop.example"));
        assert_eq!(c.accept_hosts.map(|a| a.len()), Some(2));
        assert_eq!(c.trusted_forwarders.len(), 1);
    }
}
