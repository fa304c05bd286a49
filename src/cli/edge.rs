//! `meridian edge`: a caching reverse proxy in front of an origin or shields.

use std::net::SocketAddr;

use meridian_common::ByteSize;
use meridian_edge::FileConfig;

#[derive(clap::Args)]
pub struct EdgeArgs {
    /// Plain HTTP listener address [config `listen`, default 127.0.0.1:8080,
    /// or none with --tls-listen unless given].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Upstream base URL (an origin, or a shield); repeat for several shields.
    #[arg(long = "upstream", value_name = "URL")]
    upstreams: Vec<String>,
    /// CA certificates (PEM) that `https://` upstreams are verified against,
    /// instead of the system roots [config `upstream-ca`].
    #[arg(long, value_name = "PEM")]
    upstream_ca: Option<std::path::PathBuf>,
    /// Responses larger than this are streamed, not stored, e.g. 64MiB.
    #[arg(long)]
    max_object_size: Option<ByteSize>,
    #[command(flatten)]
    follow: super::purge::FollowFlags,
    #[command(flatten)]
    node: super::NodeFlags,
}

pub fn main(args: EdgeArgs) -> anyhow::Result<()> {
    let (file, source): (FileConfig, String) = args.node.load_file()?;
    let config = apply_flags(file, &args).validate(&source)?;
    if args.node.check_config {
        println!("{source}: configuration OK");
        return Ok(());
    }
    super::runtime(config.workers)?.block_on(async move {
        let (listeners, admin, shutdown) = super::bind_node(&config).await?;
        meridian_edge::run(listeners, admin, config, shutdown).await?;
        Ok(())
    })
}

/// The flags on top of the file: a flag given replaces the file's value.
fn apply_flags(mut file: FileConfig, args: &EdgeArgs) -> FileConfig {
    if args.listen.is_some() {
        file.listen = args.listen;
    }
    if !args.upstreams.is_empty() {
        file.upstream = args.upstreams.clone();
    }
    if args.max_object_size.is_some() {
        file.cache.max_object_size = args.max_object_size;
    }
    if let Some(ca) = args.upstream_ca.as_deref() {
        file.upstream_ca = Some(super::shell_path(ca));
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

    #[test]
    fn upstream_ca_flag_is_loaded_and_a_missing_file_is_named() {
        let dir = tempfile::tempdir().expect("dir");
        let ca = meridian_common::certs::LocalCa::generate("test CA").expect("ca");
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, ca.cert_pem()).expect("write");
        let validate = |ca: &str| {
            let args = Cli::try_parse_from([
                "edge",
                "--upstream",
                "https://127.0.0.1:9443",
                "--upstream-ca",
                ca,
            ])
            .expect("flags parse")
            .args;
            apply_flags(FileConfig::default(), &args).validate("command line")
        };
        validate(&ca_path.display().to_string()).expect("a CA file is accepted");
        let e = validate("/nonexistent/ca.pem")
            .expect_err("missing CA")
            .to_string();
        assert!(
            e.contains("upstream-ca") && e.contains("/nonexistent/ca.pem"),
            "{e}"
        );
    }

    #[test]
    fn tls_flags_pair_certificates_with_keys_in_order() {
        let dir = tempfile::tempdir().expect("dir");
        let ca = meridian_common::certs::LocalCa::generate("test CA").expect("ca");
        let mut paths = Vec::new();
        for stem in ["a", "b"] {
            let files = ca
                .issue(&[&format!("{stem}.test")])
                .expect("issue")
                .write(dir.path(), stem)
                .expect("write");
            paths.push((
                files.cert.display().to_string(),
                files.key.display().to_string(),
            ));
        }
        let parse = |extra: &[&str]| {
            let mut argv = vec!["edge", "--upstream", "http://127.0.0.1:9000"];
            argv.extend_from_slice(extra);
            Cli::try_parse_from(argv).expect("flags parse").args
        };
        let (a, b) = (&paths[0], &paths[1]);
        let args = parse(&[
            "--tls-listen",
            "127.0.0.1:8443",
            "--tls-cert",
            &a.0,
            "--tls-key",
            &a.1,
            "--tls-cert",
            &b.0,
            "--tls-key",
            &b.1,
            "--listen",
            "127.0.0.1:8080",
            "--redirect-https",
        ]);
        args.node.check_tls_pairs().expect("paired");
        let mut file = FileConfig {
            upstream: args.upstreams.clone(),
            listen: args.listen,
            ..Default::default()
        };
        super::super::apply_node_flags!(file, &args.node);
        let c = file.validate("command line").expect("valid");
        let tls = c.tls.expect("tls");
        assert_eq!(tls.certs.len(), 2);
        assert_eq!(tls.certs[1].key.display().to_string(), b.1);
        assert!(tls.redirect_plain);

        let args = parse(&["--tls-listen", "127.0.0.1:8443", "--tls-cert", &a.0]);
        let e = args.node.check_tls_pairs().expect_err("no key").to_string();
        assert!(e.contains("1 --tls-cert but 0 --tls-key"), "{e}");
    }
}
