//! End to end: the real control plane and real node agents driving the aerender test double,
//! over loopback, against a private PostgreSQL. One test binary (link time) with a module per
//! area.

// Helpers outside #[test] functions unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod encode;
mod failures;
mod operations;
mod projects;
mod quickstart;
mod rendering;
mod tls;

use std::path::PathBuf;

/// The test double, built with this package.
pub fn fake_aerender() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fake-aerender"))
}
