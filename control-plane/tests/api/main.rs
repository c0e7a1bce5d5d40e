//! The control plane's API against real PostgreSQL over real loopback gRPC.

// Test helpers outside #[test] functions unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod completions;
mod dispatch;
mod encode;
mod faults;
mod hardening;
mod jobs;
mod leases;
mod outages;
mod projects;
mod reports;
mod retention;
mod security;
mod support;
mod token_kinds;
mod validation;
