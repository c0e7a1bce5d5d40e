//! [`AssetCache`]: the template cache's machinery for the files a saved project's fields name
//! (images, videos, audio). Content-addressed by BLAKE3 and verified after download like a
//! template, one download shared by concurrent renders, pinned while a render uses the file and
//! evicted least-recently-used first within its own byte budget and folder. Each entry is one
//! file kept with the extension of the file name it was first requested under
//! (`<hex>/asset.png`), never extracted, and never reported in the template inventory.

use std::sync::Arc;

use flatrender_proto::content::Asset;
use flatrender_proto::types::ContentHash;

use super::{CacheConfig, CacheContent, CacheLease, CacheResult, CacheStats, EntryRequest, TemplateCache};

/// The asset cache. Cheap to share: `open` returns it in an `Arc`.
pub struct AssetCache {
    cache: TemplateCache,
}

impl AssetCache {
    /// Opens (or creates) the asset cache folder, with the same start-up checks as the template
    /// cache (leftovers removed, entries re-hashed, budget applied).
    pub async fn open(config: CacheConfig) -> CacheResult<Arc<Self>> {
        let cache = TemplateCache::open_for(config, CacheContent::Assets).await?;
        Ok(Arc::new(Self { cache }))
    }

    /// A pinned lease on the asset's file ([`CacheLease::project_path`] is the file), downloading
    /// and verifying it first if needed. Concurrent calls for the same hash share one download.
    pub async fn acquire(&self, asset: &Asset) -> CacheResult<CacheLease> {
        let request = EntryRequest {
            url: asset.url.clone(),
            hash: asset.hash,
            size_bytes: asset.size_bytes,
            template_id: None,
            template_version: 0,
            file_name: Some(asset.file_name.clone()),
        };
        self.cache.acquire_counted(&request, true).await
    }

    /// Pinned leases on every asset of `assets`, in their order, fetched at once. The first
    /// failure ends the wait and comes back with the position of its asset; the other downloads
    /// go on, shared with whoever wants them next.
    pub async fn acquire_all(self: &Arc<Self>, assets: &[Asset]) -> Result<Vec<CacheLease>, AcquireAllError> {
        let mut fetches = tokio::task::JoinSet::new();
        for (position, asset) in assets.iter().cloned().enumerate() {
            let cache = Arc::clone(self);
            fetches.spawn(async move { (position, cache.acquire(&asset).await) });
        }
        let mut leases: Vec<Option<CacheLease>> = assets.iter().map(|_| None).collect();
        while let Some(joined) = fetches.join_next().await {
            let (position, acquired) = joined.map_err(AcquireAllError::Unfinished)?;
            match acquired {
                Ok(lease) => leases[position] = Some(lease),
                Err(error) => return Err(AcquireAllError::Failed { position, error }),
            }
        }
        Ok(leases.into_iter().flatten().collect())
    }

    /// Whether the asset is installed.
    pub fn contains(&self, hash: &ContentHash) -> bool {
        self.cache.contains(hash)
    }

    /// Re-hashes an installed asset: `true` if intact.
    pub async fn verify(&self, hash: &ContentHash) -> CacheResult<bool> {
        self.cache.verify(hash).await
    }

    /// Deletes an asset nobody is using; `Ok(false)` if it was not cached.
    pub async fn remove(&self, hash: &ContentHash) -> CacheResult<bool> {
        self.cache.remove(hash).await
    }

    /// Sizes and counters now.
    pub fn stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// Writes the LRU order to disk now if it is behind.
    pub async fn flush(&self) {
        self.cache.flush().await;
    }
}

/// Why [`AssetCache::acquire_all`] failed.
#[derive(Debug, thiserror::Error)]
pub enum AcquireAllError {
    /// Fetching the asset at `position` failed.
    #[error("{error}")]
    Failed {
        /// Its position in the request.
        position: usize,
        /// The cache's error.
        error: super::CacheError,
    },
    /// A fetch task did not finish (panicked or was cancelled).
    #[error("fetching the files did not finish: {0}")]
    Unfinished(tokio::task::JoinError),
}
