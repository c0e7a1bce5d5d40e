//! `quickstart`: a whole FlatRender farm on one machine, a sample job rendered end to end, and
//! everything stopped again (`scripts/demo.sh` builds the workspace and runs this). See
//! `flatrender_e2e::quickstart`.

use std::process::ExitCode;

use clap::Parser;
use flatrender_e2e::quickstart::{self, Options, Outcome};

/// Exit code of a run stopped by Ctrl-C (128 + SIGINT, as shells report it).
const EXIT_INTERRUPTED: u8 = 130;

#[tokio::main]
async fn main() -> ExitCode {
    match quickstart::run(Options::parse()).await {
        Ok(Outcome::Completed) => ExitCode::SUCCESS,
        Ok(Outcome::Interrupted) => ExitCode::from(EXIT_INTERRUPTED),
        Err(error) => {
            eprintln!("quickstart: {error:#}");
            ExitCode::FAILURE
        }
    }
}
