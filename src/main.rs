//! The `meridian` binary: parses the command line, loads config, starts
//! tracing and hands over to the service libraries in `crates/`.

use clap::{Parser, Subcommand};

mod cli;

#[derive(Parser)]
#[command(
    name = "meridian",
    version,
    about = "Meridian: a caching CDN — edge, origin shield and geo director"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run an edge node: a caching reverse proxy in front of an upstream.
    Edge(cli::edge::EdgeArgs),
    /// Run a small static origin that serves files from a folder (for demos, tests, benchmarks).
    Origin(cli::origin::OriginArgs),
    /// Run an origin shield: a caching tier in front of load-balanced origins.
    Shield(cli::shield::ShieldArgs),
    /// Run the geo director: sends each client to its nearest healthy edge.
    Director(cli::director::DirectorArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    cli::init_tracing();
    let result = match cli.command {
        Command::Edge(a) => cli::edge::main(a),
        Command::Origin(a) => cli::origin::main(a),
        Command::Shield(a) => cli::shield::main(a),
        Command::Director(a) => cli::director::main(a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("meridian: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
