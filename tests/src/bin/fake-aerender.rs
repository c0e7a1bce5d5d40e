//! `fake-aerender`: a std-only stand-in for Adobe's `aerender` command-line renderer.
//!
//! It accepts aerender's flags, prints aerender's line formats, writes real PNG frames and can be
//! told (by a scenario, never by a flag) to misbehave the way real aerender does. Everything lives
//! in `fake_aerender/`; see `fake_aerender/mod.rs` for the project-file and scenario formats.

// A command-line program imitating another program's console output: printing is its job.
#![allow(clippy::print_stdout)]

#[path = "fake_aerender/mod.rs"]
mod fake_aerender;

fn main() {
    let exit_code = fake_aerender::run();
    std::process::exit(exit_code);
}
