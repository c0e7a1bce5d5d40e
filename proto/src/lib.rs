//! The wire contract between FlatRender's control plane, its node agents and the backends, and the
//! id/value types that cross it.
//!
//! Layout:
//! - `types`: validated domain ids and values (`TenantId`, `FrameRange`, ...) shared by every crate.
//!
//! The gRPC package `flatrender.render.v1` (generated from `flatrender/render/v1/*.proto`) lands
//! here with the control-plane API.

pub mod types;
