//! `frctl`, the FlatRender ops CLI: talks to the control plane's `AdminService` (and
//! `RenderService` to read jobs) with an admin token. Only wiring lives here.
//!
//! Layout:
//! - `args`: the command line (clap), with the exit-code table in `--help`.
//! - `connect`: endpoint and token resolution, gRPC clients, failures → exit codes and advice.
//! - `output`: tables, JSON printing and formatting helpers; `views`: the JSON contract.
//! - `duration`: `30m`, `1h30m`, `90s`, `2d`.
//! - `screen` (tests only): a tiny terminal to check what a redraw leaves on screen.
//! - `nodes`, `jobs`, `watch`, `frames`, `crashes`, `tokens`, `farm` (stats, partitions, cache):
//!   one module per area.
//!
//! Reference: docs/frctl.md.

/// `print!` that ends frctl quietly when stdout is closed early (`frctl … | head`) instead of
/// panicking.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!($($arg)*), false)
    };
}

/// `println!` with the same treatment of a closed stdout.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!($($arg)*), true)
    };
}

mod args;
mod connect;
mod crashes;
mod duration;
mod farm;
mod frames;
mod jobs;
mod nodes;
mod output;
#[cfg(test)]
mod screen;
mod tokens;
mod views;
mod watch;

use std::process::ExitCode;

use clap::Parser;

use crate::{
    args::{Cli, Command, FramesCommand},
    connect::{Client, Failure, Settings, exit},
};

fn main() -> ExitCode {
    // clap prints usage errors itself and exits 2 (0 for --help / --version).
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("frctl: cannot start the async runtime: {error}");
            return ExitCode::from(exit::UNEXPECTED);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            let code = error
                .downcast_ref::<Failure>()
                .map_or(exit::UNEXPECTED, |failure| failure.code);
            eprintln!("frctl: {error:#}");
            ExitCode::from(code)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    let format = cli.global.output;
    let settings = Settings::resolve(&cli.global)?;
    let client = Client::connect(settings).await?;
    match cli.command {
        Command::Nodes(command) => nodes::run(&client, format, command).await?,
        Command::Jobs(command) => return jobs::run(&client, format, command).await,
        Command::Frames(FramesCommand::Requeue(requeue)) => frames::requeue(&client, format, requeue).await?,
        Command::Crashes(command) => crashes::run(&client, format, command).await?,
        Command::Cache(command) => farm::cache(&client, format, command).await?,
        Command::Partitions(command) => farm::partitions(&client, format, command).await?,
        Command::Stats => farm::stats(&client, format).await?,
        Command::Tokens(command) => tokens::run(&client, format, command).await?,
    }
    Ok(0)
}
