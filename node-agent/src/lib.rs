//! The FlatRender node agent: the daemon on every After Effects machine.
//!
//! Layout, one module per concern:
//! - `service`: the run loop (register, heartbeat, take work, render, report) and quarantine.
//! - `client`: the control-plane client with endpoint fail-over. `delivery`: the outbox drain.
//!   `retry`: capped exponential back-off with full jitter for every retry of the control plane.
//! - `runner`: one leased chunk end to end, under watchdogs. `leases`: leases held, self-fencing.
//! - `supervisor`: finding aerender, its command line, the process tree and its output.
//! - `encode`: rendered frames and the project's audio into one verified video with ffmpeg and
//!   ffprobe, run as supervised process trees like aerender. `export`: the output store the
//!   finished video goes to (a shared folder or an HTTP upload), exactly one file per job.
//! - `aerender_log`: the pure parser of aerender output. `recovery`: verdicts and policy.
//! - `cache`: the BLAKE3-addressed LRU template and asset caches. `outbox`: durable results and
//!   samples.
//! - `content`: a saved project's values put into a working copy of the template (the generated
//!   script, the After Effects startup hook, the working folder).
//! - `health`: sysinfo samples. `metrics`: the agent's Prometheus endpoint.
//! - `config`: layered configuration. `doctor`: set-up checks. `probe`: does aerender start.
//! - `canary`: the one-frame render that re-admits a quarantined node.
//! - `install`: running as a systemd, launchd or Windows service.

pub mod aerender_log;
pub mod cache;
pub(crate) mod canary;
pub(crate) mod client;
pub mod config;
pub mod content;
pub(crate) mod delivery;
pub mod doctor;
pub mod encode;
pub mod export;
pub mod health;
pub mod install;
pub(crate) mod leases;
pub mod logfile;
pub(crate) mod metrics;
pub mod outbox;
pub(crate) mod probe;
pub(crate) mod recovery;
pub(crate) mod render_logs;
pub(crate) mod retry;
pub(crate) mod runner;
pub mod service;
pub mod supervisor;
