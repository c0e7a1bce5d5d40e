//! Compiles `flatrender/render/v1/*.proto` with protox (pure Rust, no system `protoc`) and
//! generates prost messages and tonic clients/servers into OUT_DIR. Also writes the encoded
//! descriptor set that the control plane serves through gRPC reflection.

use std::{env, path::PathBuf};

const PROTO_FILES: &[&str] = &[
    "flatrender/render/v1/common.proto",
    "flatrender/render/v1/render_service.proto",
    "flatrender/render/v1/node_service.proto",
    "flatrender/render/v1/admin_service.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for file in PROTO_FILES {
        println!("cargo:rerun-if-changed={file}");
    }
    let file_descriptors = protox::compile(PROTO_FILES, ["."])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("flatrender_descriptor.bin"),
        prost::Message::encode_to_vec(&file_descriptors),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(file_descriptors)?;
    Ok(())
}
