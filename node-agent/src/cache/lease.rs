//! [`CacheLease`]: a pin on an installed entry, held for as long as a render uses it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flatrender_proto::types::ContentHash;

use super::error::{CacheError, CacheResult};
use super::index::CacheIndex;
use super::{Shared, store};

/// A pinned cache entry: never evicted or removed while the lease lives. Dropping it unpins the
/// entry and records the use (the entry becomes the most recently used).
pub struct CacheLease {
    shared: Arc<Shared>,
    hash: ContentHash,
    project_path: PathBuf,
    /// The extracted tree of a zip bundle (`<entry>/bundle`); `None` for a single file.
    bundle_root: Option<PathBuf>,
}

impl CacheLease {
    /// Wraps a pin already taken in `index` (under the state lock).
    pub(super) fn for_pinned(shared: &Arc<Shared>, index: &CacheIndex, hash: ContentHash) -> CacheResult<Self> {
        let entry = index.get(&hash).ok_or(CacheError::NotCached { hash })?;
        let entry_dir = store::entry_dir(&shared.config.dir, &hash);
        let project_path = entry_dir.join(&entry.project_path);
        let bundle_root = entry
            .project_path
            .starts_with(store::BUNDLE_DIR_NAME)
            .then(|| entry_dir.join(store::BUNDLE_DIR_NAME));
        Ok(Self {
            shared: Arc::clone(shared),
            hash,
            project_path,
            bundle_root,
        })
    }

    /// The `.aep` to hand to aerender (in the asset cache: the asset's file).
    pub fn project_path(&self) -> &Path {
        &self.project_path
    }

    /// For a template that came as a zip bundle, the folder it was extracted into (the project
    /// finds its footage relative to itself there); `None` for a plain project or an asset.
    pub fn bundle_root(&self) -> Option<&Path> {
        self.bundle_root.as_deref()
    }

    pub fn hash(&self) -> ContentHash {
        self.hash
    }
}

impl fmt::Debug for CacheLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheLease")
            .field("hash", &self.hash)
            .field("project_path", &self.project_path)
            .field("bundle_root", &self.bundle_root)
            .finish()
    }
}

impl Drop for CacheLease {
    fn drop(&mut self) {
        self.shared.release_lease(&self.hash);
    }
}
