//! The output store for finished videos: the folder store against real folders (publish, adopt
//! what an earlier attempt stored, cancel, discard) and the HTTP store against a small HTTP/1.1
//! file service on loopback (`server`): upload, retries, adopting on 412, refusals, giving up,
//! `DELETE`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod folder;
mod http;
mod server;

use std::path::{Path, PathBuf};

use flatrender_node_agent::export::ExportKey;
use flatrender_proto::types::{ContentHash, JobId, TenantId};

/// A file to store: its path, bytes and BLAKE3.
struct Video {
    path: PathBuf,
    bytes: Vec<u8>,
    checksum: ContentHash,
}

impl Video {
    /// Writes `size` bytes that depend on `seed` to `<dir>/<name>`.
    fn write(dir: &Path, name: &str, seed: u8, size: usize) -> Self {
        let bytes: Vec<u8> = (0..size)
            .map(|index| (index as u8).wrapping_mul(31).wrapping_add(seed))
            .collect();
        let path = dir.join(name);
        std::fs::write(&path, &bytes).unwrap();
        Self {
            path,
            checksum: checksum(&bytes),
            bytes,
        }
    }

    fn size_bytes(&self) -> u64 {
        self.bytes.len() as u64
    }
}

fn checksum(bytes: &[u8]) -> ContentHash {
    ContentHash::from_bytes(*blake3::hash(bytes).as_bytes())
}

/// A key for a fresh tenant and job.
fn new_key(file_name: &str) -> ExportKey {
    ExportKey::new(TenantId::new_random(), JobId::new_random(), file_name).unwrap()
}
