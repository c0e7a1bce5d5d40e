//! The FlatRender control plane: owns the PostgreSQL `render` schema and hands out frame jobs.
//!
//! Layout:
//! - `server`: wires everything and runs the gRPC and HTTP listeners until shutdown.
//! - `config`: layered configuration with one validation pass.
//! - `api`: the gRPC edge (`RenderService`, `NodeService`, `AdminService`), validation there.
//! - `jobs`: submission (chunking), reads with progress/ETA, cancel, retry.
//! - `dispatch`: fair, cache-affine claims of chunks and encode items (to nodes that can do
//!   them) under leases; wake-ups of long-polling nodes.
//! - `completer`: completions recorded in batches, then their jobs advanced (a video's last
//!   chunk queues its encode, the encode's export completes the job).
//! - `leases`: renewal, progress, failure, and the reaper (which also advances jobs a
//!   completion left behind).
//! - `retention`: finished jobs' frames removed from their nodes after the retention time.
//! - `nodes`: registration, node state machine, coalesced liveness.
//! - `health`: batched health-sample ingestion. `partitions`: monthly partition upkeep.
//! - `readiness`: one database probe behind `/readyz` and gRPC health.
//! - `shutdown`: sleeps that give way to shutdown (every periodic task).
//! - `views`: what ops see (node, chunk, crash, cache entry, partition) as domain values.
//! - `auth`: bearer tokens. `metrics`: Prometheus. `error`: the crate's error type.
//! - `db`: repositories (plain SQL), the SQLSTATE classifier and the migration runner.
//! - `embedded_pg` / `embedded`: the private PostgreSQL used when no database URL is configured.
//! - `testing` (tests and the `testing` feature): `TestDb`, a migrated database per test.

pub(crate) mod api;
pub mod auth;
pub(crate) mod completer;
pub mod config;
pub mod db;
pub(crate) mod dispatch;
pub(crate) mod embedded;
pub mod embedded_pg;
pub mod error;
pub(crate) mod health;
pub(crate) mod jobs;
pub(crate) mod leases;
pub(crate) mod metrics;
pub(crate) mod nodes;
pub(crate) mod partitions;
pub mod readiness;
pub(crate) mod retention;
pub mod server;
mod shutdown;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub(crate) mod views;
