//! `node-agent`: wires configuration and the library together.

use clap::Parser;

/// FlatRender node agent.
#[derive(Parser)]
#[command(version, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
