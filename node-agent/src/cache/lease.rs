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
}

impl CacheLease {
    /// Wraps a pin already taken in `index` (under the state lock).
    pub(super) fn for_pinned(shared: &Arc<Shared>, index: &CacheIndex, hash: ContentHash) -> CacheResult<Self> {
        let entry = index.get(&hash).ok_or(CacheError::NotCached { hash })?;
        let entry_dir = store::entry_dir(&shared.config.dir, &hash);
        let project_path = entry_dir.join(&entry.project_path);
        Ok(Self {
            shared: Arc::clone(shared),
            hash,
            project_path,
        })
    }

    /// The `.aep` to hand to aerender.
    pub fn project_path(&self) -> &Path {
        &self.project_path
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
            .finish()
    }
}

impl Drop for CacheLease {
    fn drop(&mut self) {
        self.shared.release_lease(&self.hash);
    }
}
