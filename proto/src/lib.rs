//! The wire contract between FlatRender's control plane, its node agents and the backends, and the
//! id/value types that cross it.
//!
//! Layout:
//! - `pb`: code generated from `flatrender/render/v1/*.proto` (package `flatrender.render.v1`):
//!   messages, and tonic clients and servers for `RenderService`, `NodeService`, `AdminService`.
//! - `types`: validated domain ids and values (`TenantId`, `FrameRange`, `LeaseToken`, ...).
//! - `content`: a saved project's scenes' field values, assets and audio, validated from the wire.
//! - `convert`: protobuf ⇄ domain conversions; errors name the offending field.
//! - `testing` (feature `testing`): helpers every test suite shares.
//! - `client`: the gRPC endpoint a client of the control plane connects to (TLS trusting one CA).

pub mod client;
pub mod content;
pub mod convert;
#[cfg(feature = "testing")]
pub mod testing;
pub mod types;

/// Generated protobuf messages and gRPC stubs. Use with the `pb::` prefix; never glob-import.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("flatrender.render.v1");

    /// Encoded `FileDescriptorSet` of the package, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/flatrender_descriptor.bin"));
}
