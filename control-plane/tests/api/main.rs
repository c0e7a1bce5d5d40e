//! The control plane's API against real PostgreSQL over real loopback gRPC.

mod admin;
mod dispatch;
mod jobs;
mod leases;
mod security;
mod support;
mod validation;
