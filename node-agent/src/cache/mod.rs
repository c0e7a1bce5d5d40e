//! The template cache: After Effects projects and zip bundles, downloaded by URL, addressed by
//! their BLAKE3 hash, pinned while a render uses them and evicted least-recently-used first
//! when the byte budget is exceeded. The same machinery, in its own folder with its own budget,
//! is the asset cache ([`AssetCache`], `assets`): the images, videos and audio files a saved
//! project's fields name, each kept as one file.
//!
//! This is the IO shell around the pure [`index::CacheIndex`]: it downloads (`download`),
//! installs atomically and verifies on disk (`store`, `bundle`, with the per-entry `manifest`),
//! shares one download between concurrent callers (`flight`), hands out [`CacheLease`]s (`lease`)
//! and rebuilds its state from the folder at start-up (`open`). Hashing and extraction run on
//! blocking threads.

mod assets;
mod bundle;
mod content;
mod download;
mod error;
mod flight;
pub mod index;
mod lease;
mod manifest;
mod open;
mod store;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use tracing::{Instrument, Span, info, warn};

use flatrender_proto::types::{ContentHash, HttpUrl, TemplateId};

pub use assets::{AcquireAllError, AssetCache};
pub(crate) use content::{CacheContent, EntryRequest};
pub use error::{CacheError, CacheResult};
pub use index::{CacheEntryInfo, InventoryChanges};
pub use lease::CacheLease;

use index::{CacheIndex, Removal};

/// Where the cache lives and how it downloads.
#[derive(Clone, Debug)]
pub struct CacheConfig {
    /// The cache folder (created if missing); nothing else should write there, except in folders
    /// whose names are no entry's (the asset cache's `assets/` inside the template cache's).
    pub dir: PathBuf,
    /// Bytes the installed entries may occupy; exceeded only while everything is pinned.
    pub budget_bytes: u64,
    /// Deadline of one download attempt (request and whole body).
    pub download_timeout: Duration,
    /// Attempts per download for transient failures (at least one).
    pub max_attempts: u32,
    /// Delay before the second attempt; doubles for each further one.
    pub retry_base_delay: Duration,
}

impl CacheConfig {
    /// A configuration with production defaults: 10 minute attempts, 5 attempts, 1 s backoff.
    pub fn new(dir: impl Into<PathBuf>, budget_bytes: u64) -> Self {
        Self {
            dir: dir.into(),
            budget_bytes,
            download_timeout: Duration::from_secs(600),
            max_attempts: 5,
            retry_base_delay: Duration::from_secs(1),
        }
    }
}

/// The template a render needs, as the control plane described it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateSpec {
    pub template_id: Option<TemplateId>,
    pub version: i32,
    pub url: HttpUrl,
    /// BLAKE3 of the downloaded bytes (the zip itself for a bundle).
    pub hash: ContentHash,
    /// Size of the download in bytes.
    pub size_bytes: u64,
}

/// Counters for metrics and `doctor`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub bytes_used: u64,
    pub budget_bytes: u64,
    pub entries: usize,
    /// Acquires for a render served from an installed entry (prefetches are not counted: they
    /// exist to turn later acquires into hits).
    pub hits: u64,
    /// Acquires for a render that had to wait for a download (shared downloads count once per
    /// caller).
    pub misses: u64,
    /// Downloads that completed and verified.
    pub downloads: u64,
    /// Downloads rejected for a wrong size or hash.
    pub hash_mismatches: u64,
}

impl CacheStats {
    /// Share of render acquires served from the cache (0 before the first one).
    pub fn hit_ratio(&self) -> f64 {
        let lookups = self.hits + self.misses;
        if lookups == 0 {
            0.0
        } else {
            self.hits as f64 / lookups as f64
        }
    }
}

/// Told the fresh [`CacheStats`] after every change of the cache and every acquire (metrics).
pub type StatsObserver = Box<dyn Fn(&CacheStats) + Send + Sync>;

/// The content-addressed template cache. Cheap to share: `open` returns it in an `Arc`.
pub struct TemplateCache {
    shared: Arc<Shared>,
}

/// State shared with leases and download tasks.
struct Shared {
    config: CacheConfig,
    content: CacheContent,
    client: reqwest::Client,
    /// A std mutex: every critical section is short bookkeeping (plus at most a few renames of
    /// evicted folders) and never spans an `.await`.
    state: Mutex<State>,
    counters: Counters,
    /// Serialises `index.json` writes; holds the generation last written. Tokio's mutex because
    /// it is held across the blocking write.
    persisted_generation: tokio::sync::Mutex<u64>,
    observer: OnceLock<StatsObserver>,
}

struct State {
    index: CacheIndex,
    flights: HashMap<ContentHash, flight::Flight>,
    next_flight_id: u64,
    /// Bumped on every change `index.json` should reflect.
    generation: u64,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    downloads: AtomicU64,
    hash_mismatches: AtomicU64,
}

impl TemplateCache {
    /// Opens (or creates) the cache folder: removes leftovers of interrupted downloads, verifies
    /// every entry (unverifiable ones are deleted), restores the LRU order from `index.json`
    /// when it is readable, and evicts down to the budget.
    pub async fn open(config: CacheConfig) -> CacheResult<Arc<Self>> {
        Self::open_for(config, CacheContent::Templates).await.map(Arc::new)
    }

    /// [`Self::open`] for a cache of `content`.
    async fn open_for(config: CacheConfig, content: CacheContent) -> CacheResult<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.download_timeout.min(Duration::from_secs(30)))
            .user_agent(concat!("flatrender-node-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| CacheError::HttpClient {
                message: error.to_string(),
            })?;
        let index = open::rebuild(&config, content).await?;
        let state = State {
            index,
            flights: HashMap::new(),
            next_flight_id: 0,
            generation: 1,
        };
        let shared = Arc::new(Shared {
            config,
            content,
            client,
            state: Mutex::new(state),
            counters: Counters::default(),
            persisted_generation: tokio::sync::Mutex::new(0),
            observer: OnceLock::new(),
        });
        shared.trim_to_budget().await;
        shared.persist().await;
        Ok(Self { shared })
    }

    /// A pinned lease on the template for a render, downloading and installing it first if
    /// needed. Concurrent calls for the same hash share one download.
    pub async fn acquire(&self, template: &TemplateSpec) -> CacheResult<CacheLease> {
        self.acquire_counted(&EntryRequest::from(template), true).await
    }

    /// Downloads and installs the template without keeping it pinned; not counted as a hit or
    /// a miss.
    pub async fn prefetch(&self, template: &TemplateSpec) -> CacheResult<()> {
        self.acquire_counted(&EntryRequest::from(template), false)
            .await
            .map(drop)
    }

    async fn acquire_counted(&self, request: &EntryRequest, count_lookup: bool) -> CacheResult<CacheLease> {
        let hash = request.hash;
        let (counter, looked_up) = {
            let mut state = self.shared.lock_state();
            if state.index.pin(&hash) {
                state.index.record_hit(&hash, chrono::Utc::now());
                state.generation += 1;
                let lease = lease::CacheLease::for_pinned(&self.shared, &state.index, hash);
                (&self.shared.counters.hits, Ok(lease))
            } else {
                let waiter = flight::join_or_start(&self.shared, &mut state, request);
                (&self.shared.counters.misses, Err(waiter))
            }
        };
        if count_lookup {
            counter.fetch_add(1, Ordering::Relaxed);
            self.shared.publish_stats();
        }
        match looked_up {
            Ok(lease) => lease,
            Err(waiter) => waiter.wait().await,
        }
    }

    /// A pinned lease on an installed entry, never downloading and not counted as a lookup (the
    /// canary render re-uses a template the node rendered before); `None` when not installed.
    pub fn lease_installed(&self, hash: &ContentHash) -> Option<CacheLease> {
        let mut state = self.shared.lock_state();
        if !state.index.pin(hash) {
            return None;
        }
        state.generation += 1;
        lease::CacheLease::for_pinned(&self.shared, &state.index, *hash).ok()
    }

    /// Registers the observer told the stats after every change and acquire, and tells it the
    /// current ones at once. Only one observer: later calls are ignored (and logged).
    pub fn observe_stats(&self, observer: impl Fn(&CacheStats) + Send + Sync + 'static) {
        if self.shared.observer.set(Box::new(observer)).is_err() {
            warn!(cache = %self.shared.content, "the cache already has a stats observer; ignoring another");
            return;
        }
        self.shared.publish_stats();
    }

    /// Re-hashes an installed entry on a blocking thread: `true` if every file is intact. The
    /// entry stays pinned meanwhile. Unknown entries are [`CacheError::NotCached`].
    pub async fn verify(&self, hash: &ContentHash) -> CacheResult<bool> {
        if !self.shared.lock_state().index.pin(hash) {
            return Err(CacheError::NotCached { hash: *hash });
        }
        // Released however this future ends (also when the caller drops it mid-hash).
        let _pin = VerificationPin {
            shared: &self.shared,
            hash: *hash,
        };
        let dir = self.shared.config.dir.clone();
        let entry_hash = *hash;
        let verification = spawn_blocking_in_span(move || Ok(store::verify_entry(&dir, &entry_hash))).await;
        match verification? {
            store::Verification::Valid(_) => Ok(true),
            store::Verification::Invalid(reason) => {
                warn!(template_hash = %hash, %reason, "cache entry failed verification");
                Ok(false)
            }
        }
    }

    /// Deletes an entry nobody is using (for example after [`Self::verify`] returned `false`).
    /// `Ok(false)` if it was not cached; [`CacheError::Pinned`] while a lease holds it.
    pub async fn remove(&self, hash: &ContentHash) -> CacheResult<bool> {
        let trash = {
            let mut state = self.shared.lock_state();
            match state.index.remove_unpinned(hash) {
                Removal::Absent => return Ok(false),
                Removal::Pinned => return Err(CacheError::Pinned { hash: *hash }),
                Removal::Removed(_) => {}
            }
            state.generation += 1;
            self.shared.move_to_trash_locked(hash)
        };
        info!(template_hash = %hash, "removed cache entry");
        self.shared.publish_stats();
        self.shared.delete_trash(trash).await;
        self.shared.persist().await;
        Ok(true)
    }

    /// Whether the entry is installed (not whether it is being downloaded).
    pub fn contains(&self, hash: &ContentHash) -> bool {
        self.shared.lock_state().index.get(hash).is_some()
    }

    /// Inventory changes since the previous call; the first call after `open` is a full sync.
    pub fn take_changes(&self) -> InventoryChanges {
        self.shared.lock_state().index.take_changes()
    }

    /// Every installed entry, sorted by hash.
    pub fn inventory(&self) -> Vec<CacheEntryInfo> {
        self.shared.lock_state().index.inventory()
    }

    /// Sizes and counters now.
    pub fn stats(&self) -> CacheStats {
        self.shared.stats()
    }

    /// Writes `index.json` now if it is behind (graceful shutdown; leases persist in the
    /// background otherwise).
    pub async fn flush(&self) {
        self.shared.persist().await;
    }
}

impl Shared {
    fn lock_state(&self) -> MutexGuard<'_, State> {
        // Bookkeeping stays consistent even if a holder panicked, so poisoning is ignored.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stats(&self) -> CacheStats {
        let (bytes_used, budget_bytes, entries) = {
            let state = self.lock_state();
            (state.index.bytes_used(), state.index.budget_bytes(), state.index.len())
        };
        let counters = &self.counters;
        CacheStats {
            bytes_used,
            budget_bytes,
            entries,
            hits: counters.hits.load(Ordering::Relaxed),
            misses: counters.misses.load(Ordering::Relaxed),
            downloads: counters.downloads.load(Ordering::Relaxed),
            hash_mismatches: counters.hash_mismatches.load(Ordering::Relaxed),
        }
    }

    /// Tells the observer the stats now. Never call with the state lock held (it takes it).
    fn publish_stats(&self) {
        if let Some(observer) = self.observer.get() {
            observer(&self.stats());
        }
    }

    /// Renames an entry folder out of the way while the state lock is held, so the index and
    /// the folder change together. Returns the path to delete later.
    fn move_to_trash_locked(&self, hash: &ContentHash) -> Option<PathBuf> {
        match store::move_to_trash(&self.config.dir, hash) {
            Ok(trash) => trash,
            Err(error) => {
                warn!(template_hash = %hash, %error, "could not move evicted entry aside, it stays on disk");
                None
            }
        }
    }

    /// Evicts unpinned entries, least recently used first, while over budget.
    fn evict_locked(&self, state: &mut State, incoming_bytes: u64) -> Vec<PathBuf> {
        let plan = state.index.eviction_plan(incoming_bytes);
        if !plan.fits {
            warn!(
                cache = %self.content,
                bytes_used = state.index.bytes_used(),
                incoming_bytes,
                budget_bytes = state.index.budget_bytes(),
                "cache over budget, remaining entries are pinned"
            );
        }
        let mut trash = Vec::new();
        for victim in plan.victims {
            if let Removal::Removed(entry) = state.index.remove_unpinned(&victim) {
                info!(template_hash = %victim, size_bytes = entry.size_bytes, "evicted cache entry");
                trash.extend(self.move_to_trash_locked(&victim));
                state.generation += 1;
            }
        }
        trash
    }

    /// Evicts down to the budget (after pins dropped, or at start-up).
    async fn trim_to_budget(&self) {
        let trash = {
            let mut state = self.lock_state();
            if !state.index.is_over_budget() {
                return;
            }
            self.evict_locked(&mut state, 0)
        };
        self.delete_trash(trash).await;
    }

    /// Deletes moved-aside folders on a blocking thread; failures leave `.tmp-` names that the
    /// next start-up removes.
    async fn delete_trash(&self, trash: impl IntoIterator<Item = PathBuf>) {
        let paths: Vec<PathBuf> = trash.into_iter().collect();
        if paths.is_empty() {
            return;
        }
        let result = spawn_blocking_in_span(move || {
            for path in &paths {
                if let Err(error) = store::remove_path(path) {
                    warn!(path = %path.display(), %error, "could not delete evicted entry");
                }
            }
            Ok(())
        })
        .await;
        if let Err(error) = result {
            warn!(%error, "could not delete evicted entries");
        }
    }

    /// Writes `index.json` if the state changed since the last write.
    async fn persist(&self) {
        let mut persisted_generation = self.persisted_generation.lock().await;
        let (generation, index_file) = {
            let state = self.lock_state();
            (state.generation, open::index_file_of(&state.index))
        };
        if generation <= *persisted_generation {
            return;
        }
        let dir = self.config.dir.clone();
        match spawn_blocking_in_span(move || store::write_index_file(&dir, &index_file)).await {
            Ok(()) => *persisted_generation = generation,
            Err(error) => warn!(%error, "could not write cache index"),
        }
    }

    /// Unpin bookkeeping for a dropped lease: records the use, evicts if the cache went over
    /// budget while everything was pinned, then deletes and persists in the background.
    fn release_lease(self: &Arc<Self>, hash: &ContentHash) {
        let trash = {
            let mut state = self.lock_state();
            state.index.unpin(hash, chrono::Utc::now());
            state.generation += 1;
            if state.index.is_over_budget() {
                self.evict_locked(&mut state, 0)
            } else {
                Vec::new()
            }
        };
        if !trash.is_empty() {
            self.publish_stats();
        }
        // Without a runtime (shutdown) the next start-up cleans up and rebuilds the order.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let shared = Arc::clone(self);
            runtime.spawn(
                async move {
                    shared.delete_trash(trash).await;
                    shared.persist().await;
                }
                .instrument(Span::current()),
            );
        }
    }
}

/// A pin held while an entry is re-hashed; released without counting as a use.
struct VerificationPin<'a> {
    shared: &'a Shared,
    hash: ContentHash,
}

impl Drop for VerificationPin<'_> {
    fn drop(&mut self) {
        self.shared.lock_state().index.release(&self.hash);
    }
}

/// Runs blocking work (hashing, extraction, deletion) off the async runtime, in the caller's span.
async fn spawn_blocking_in_span<T, F>(work: F) -> CacheResult<T>
where
    F: FnOnce() -> CacheResult<T> + Send + 'static,
    T: Send + 'static,
{
    let span = Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work)).await?
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hit ratio is hits over render acquires, and 0 (not NaN) before the first one.
    #[test]
    fn hit_ratio_is_hits_over_lookups() {
        let mut stats = CacheStats::default();
        assert_eq!(stats.hit_ratio(), 0.0);
        stats.misses = 1;
        assert_eq!(stats.hit_ratio(), 0.0);
        stats.hits = 3;
        assert_eq!(stats.hit_ratio(), 0.75);
    }
}
