//! The FlatRender control plane: owns the PostgreSQL `render` schema and hands out frame jobs.
//!
//! Layout:
//! - `db`: the connection pool, the SQLSTATE classifier and the migration runner (`db::migrate`).
//! - `embedded_pg`: a private PostgreSQL cluster under a data folder, used when no database URL
//!   is configured and by the test harness.
//! - `testing` (tests and the `testing` feature): `TestDb`, a freshly migrated database per test.
//!
//! The gRPC API, dispatch, leases, nodes, health ingestion and partition upkeep land here with
//! the control-plane issue.

pub mod db;
pub mod embedded_pg;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
