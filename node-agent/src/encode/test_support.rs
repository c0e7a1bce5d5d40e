//! Builders shared by the encode module's unit tests.

use std::path::PathBuf;

use flatrender_proto::content::Asset;
use flatrender_proto::types::{ContentHash, HttpUrl, Volume};

use super::spec::SceneFrames;
use crate::supervisor::FramePattern;

/// `out_[#####].png` frames in `dir`.
pub fn scene(dir: &str, first_frame: i32, num_frames: u32) -> SceneFrames {
    SceneFrames {
        dir: PathBuf::from(dir),
        pattern: FramePattern::parse("out_[#####].png").unwrap(),
        first_frame,
        num_frames,
    }
}

/// An asset whose BLAKE3 is 32 times `byte`.
pub fn asset(byte: u8, name: &str) -> Asset {
    Asset {
        url: HttpUrl::parse(&format!("https://cdn.example/{name}"), "url").unwrap(),
        hash: ContentHash::from_bytes([byte; 32]),
        size_bytes: 1000,
        file_name: name.to_owned(),
    }
}

/// A valid volume.
pub fn volume(value: f64) -> Volume {
    Volume::new(value, "volume").unwrap()
}
