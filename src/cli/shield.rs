//! `meridian shield`: the caching tier between the edges and load-balanced,
//! health-checked origins.

use std::net::SocketAddr;

use ipnet::IpNet;
use meridian_balance::Balance;
use meridian_common::HumanDuration;
use meridian_origin_shield::FileConfig;

#[derive(clap::Args)]
pub struct ShieldArgs {
    /// Plain proxy listener, where edges connect [config `listen`, default
    /// 127.0.0.1:8500, or none with --tls-listen unless given].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Origin `http://host:port[;weight=N]`; repeat for several.
    #[arg(long = "origin", value_name = "URL[;weight=N]")]
    origins: Vec<String>,
    /// CA certificates (PEM) that `https://` origins are verified against,
    /// instead of the system roots [config `origin-ca`].
    #[arg(long, value_name = "PEM")]
    origin_ca: Option<std::path::PathBuf>,
    /// round-robin, weighted-round-robin, least-connections, ip-hash,
    /// consistent-hash or two-choices [config `balance`, default round-robin].
    #[arg(long)]
    balance: Option<Balance>,
    /// Path polled on every origin [config `health.path`, default /healthz].
    #[arg(long)]
    health_path: Option<String>,
    /// Health poll interval, e.g. 2s; 0s turns checks off [config `health.interval`, default 2s].
    #[arg(long)]
    health_interval: Option<HumanDuration>,
    /// CIDR of edges whose forwarding fields are trusted (for ip-hash too);
    /// the older name of --trusted-forwarder; repeatable.
    #[arg(long = "trusted-edge", value_name = "CIDR")]
    trusted_edges: Vec<IpNet>,
    #[command(flatten)]
    follow: super::purge::FollowFlags,
    #[command(flatten)]
    node: super::NodeFlags,
}

pub fn main(args: ShieldArgs) -> anyhow::Result<()> {
    let (file, source): (FileConfig, String) = args.node.load_file()?;
    let config = apply_flags(file, &args).validate(&source)?;
    if args.node.check_config {
        println!(
            "{source}: configuration OK ({} origins, {})",
            config.origins.len(),
            config.balance
        );
        return Ok(());
    }
    super::runtime(config.engine.workers)?.block_on(async move {
        let (listeners, admin, shutdown) = super::bind_node(&config.engine).await?;
        meridian_origin_shield::run(listeners, admin, config, shutdown).await?;
        Ok(())
    })
}

/// The flags on top of the file: a flag given replaces the file's value.
fn apply_flags(mut file: FileConfig, args: &ShieldArgs) -> FileConfig {
    if args.listen.is_some() {
        file.listen = args.listen;
    }
    if !args.origins.is_empty() {
        file.origin = args.origins.clone();
    }
    if let Some(ca) = args.origin_ca.as_deref() {
        file.origin_ca = Some(super::shell_path(ca));
    }
    if args.balance.is_some() {
        file.balance = args.balance;
    }
    if args.health_path.is_some() {
        file.health.path = args.health_path.clone();
    }
    if args.health_interval.is_some() {
        file.health.interval = args.health_interval;
    }
    if !args.trusted_edges.is_empty() {
        file.trusted_edges = Some(args.trusted_edges.clone());
    }
    super::apply_node_flags!(file, &args.node);
    args.follow.apply(&mut file.purge);
    file
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ShieldArgs,
    }

    fn parse(argv: &[&str]) -> ShieldArgs {
        Cli::try_parse_from(std::iter::once("shield").chain(argv.iter().copied()))
            .expect("flags parse")
            .args
    }

    #[test]
    fn flags_override_the_example_file() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/shield.toml");
        let args = parse(&[
            "--config",
            path,
            "--origin",
            "http://127.0.0.1:7000;weight=2",
            "--balance",
            "least-connections",
            "--health-interval",
            "250ms",
            "--trusted-edge",
            "10.0.0.0/8",
            "--trusted-forwarder",
            "192.168.0.0/16",
            "--site-host",
            "Shop.Example",
            "--accept-host",
            "www.shop.example",
        ]);
        let file = FileConfig::load(std::path::Path::new(path)).expect("example loads");
        let c = apply_flags(file, &args).validate(path).expect("valid");
        assert_eq!(c.origins.len(), 1);
        assert_eq!(c.origins[0].weight(), 2);
        assert_eq!(c.balance, Balance::LeastConnections);
        assert_eq!(c.engine.health_interval.as_millis(), 250);
        assert_eq!(c.engine.health_path, "/healthz");
        assert_eq!(c.engine.trusted_forwarders.len(), 2);
        assert_eq!(c.engine.site_host.as_deref(), Some("shop.example"));
        assert_eq!(c.engine.accept_hosts.map(|a| a.len()), Some(1));
    }

    #[test]
    fn origin_ca_flag_is_named_in_errors_as_origin_ca() {
        let args = parse(&[
            "--origin",
            "https://127.0.0.1:9443",
            "--origin-ca",
            "/nonexistent/ca.pem",
        ]);
        let err = apply_flags(FileConfig::default(), &args)
            .validate("command line")
            .expect_err("missing CA")
            .to_string();
        assert!(
            err.contains("origin-ca") && err.contains("/nonexistent/ca.pem"),
            "{err}"
        );
    }

    #[test]
    fn bad_balance_flag_lists_the_algorithms() {
        let err = Cli::try_parse_from(["shield", "--balance", "fastest"])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("two-choices"), "{err}");
    }

    #[test]
    fn missing_origin_names_the_key() {
        let err = apply_flags(FileConfig::default(), &parse(&[]))
            .validate("command line")
            .expect_err("no origin")
            .to_string();
        assert!(err.contains("origin"), "{err}");
    }
}
