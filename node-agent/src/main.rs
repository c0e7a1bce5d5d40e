//! `node-agent`: wires configuration and the library together.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use flatrender_node_agent::aerender_log;

/// FlatRender node agent.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Parse an aerender log (stdout capture or AE render-log file) and print one JSON summary.
    ParseLog {
        /// The log file to read.
        file: PathBuf,
    },
}

/// Exit code for an unreadable input file.
const EXIT_UNREADABLE_FILE: u8 = 2;

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::ParseLog { file }) => parse_log_command(&file),
        None => Ok(ExitCode::SUCCESS),
    }
}

/// Reads, decodes and parses `file`; exit 0 whatever the render's outcome, 2 if unreadable.
fn parse_log_command(file: &Path) -> anyhow::Result<ExitCode> {
    let bytes = match std::fs::read(file) {
        Ok(bytes) => bytes,
        Err(error) => {
            eprintln!("node-agent parse-log: cannot read {}: {error}", file.display());
            return Ok(ExitCode::from(EXIT_UNREADABLE_FILE));
        }
    };
    let summary = aerender_log::parse_log(&aerender_log::decode_log_bytes(&bytes));
    let json = serde_json::to_string(&summary)?;
    #[allow(clippy::print_stdout, reason = "parse-log's contract is one JSON object on stdout")]
    {
        println!("{json}");
    }
    Ok(ExitCode::SUCCESS)
}
