//! What the canary remembers and checks, apart from rendering it: the last chunk this node
//! rendered successfully (`<state_dir>/canary.json`, written by the runner after each success)
//! and a PNG's size. Kept apart from `canary` so the runner can record a success without
//! importing the probe that runs chunks through it.

use std::{
    io::Read,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use tracing::warn;

/// The remembered last success, in the state folder.
pub(crate) const LAST_SUCCESS_FILE: &str = "canary.json";

/// A chunk this node rendered successfully, kept as its canary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastSuccess {
    /// BLAKE3 (hex) of the template in the cache.
    pub template_hash: String,
    /// The project inside the cache entry when it rendered (for people; the cache says where it
    /// is now).
    pub project_path: PathBuf,
    /// The composition rendered.
    pub composition: String,
    /// The job's output module template (empty: the agent's default).
    pub output_module_template: String,
    /// The job's render settings template (empty: none).
    pub render_settings_template: String,
    /// One frame it rendered.
    pub frame: i32,
    /// That frame's width and height, when it is a PNG.
    pub frame_size: Option<(u32, u32)>,
}

/// The remembered last success, if any (an unreadable record is ignored, and said so).
pub(crate) fn read_last_success(state_dir: &Path) -> Option<LastSuccess> {
    let path = state_dir.join(LAST_SUCCESS_FILE);
    let text = std::fs::read_to_string(&path).ok()?;
    match serde_json::from_str(&text) {
        Ok(last) => Some(last),
        Err(error) => {
            warn!(path = %path.display(), %error, "ignoring an unreadable canary record");
            None
        }
    }
}

/// Remembers a successful render as the canary (written atomically; a failure is only logged).
pub async fn remember_success(state_dir: &Path, last: &LastSuccess) {
    let path = state_dir.join(LAST_SUCCESS_FILE);
    let temp = path.with_extension("json.tmp");
    let written = async {
        let bytes = serde_json::to_vec_pretty(last).map_err(std::io::Error::other)?;
        tokio::fs::write(&temp, bytes).await?;
        tokio::fs::rename(&temp, &path).await
    };
    if let Err(error) = written.await {
        warn!(path = %path.display(), %error, "could not remember the successful render as the canary");
    }
}

/// Width and height from a PNG's header (signature, then the `IHDR` chunk). Blocking, 24 bytes.
pub fn png_size(path: &Path) -> Option<(u32, u32)> {
    const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];
    let mut header = [0_u8; 24];
    std::fs::File::open(path).ok()?.read_exact(&mut header).ok()?;
    if header[..8] != SIGNATURE || &header[12..16] != b"IHDR" {
        return None;
    }
    let width = u32::from_be_bytes([header[16], header[17], header[18], header[19]]);
    let height = u32::from_be_bytes([header[20], header[21], header[22], header[23]]);
    (width > 0 && height > 0).then_some((width, height))
}
