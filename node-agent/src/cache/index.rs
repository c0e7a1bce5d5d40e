//! Pure bookkeeping of the template cache: which entries exist, their least-recently-used order,
//! pins held by running renders, the byte budget, which entries to evict to make room, and the
//! inventory changes not yet reported to the control plane.
//!
//! No IO and no clock: callers pass `now`. The IO shell (`cache/mod.rs`) holds one `CacheIndex`
//! behind a mutex and acts on the decisions made here (deleting evicted folders, persisting the
//! order to `index.json`).

use std::collections::HashSet;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use lru::LruCache;

use flatrender_proto::types::{ContentHash, TemplateId};

/// What the index knows about one installed entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// Bytes the entry occupies on disk (counted against the budget).
    pub size_bytes: u64,
    /// The template it was downloaded for, when the caller knew it.
    pub template_id: Option<TemplateId>,
    /// The template version it was downloaded for.
    pub template_version: i32,
    /// The `.aep` to render, relative to the entry folder.
    pub project_path: PathBuf,
    /// Acquires served from the cache without a download.
    pub hits: u64,
    /// Last acquire or lease release.
    pub last_used_at: DateTime<Utc>,
    /// Live leases; a pinned entry is never evicted.
    pub num_pins: u32,
}

impl IndexEntry {
    /// A new, unpinned entry with no hits, last used at `now`.
    pub fn new(
        size_bytes: u64,
        template_id: Option<TemplateId>,
        template_version: i32,
        project_path: PathBuf,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            size_bytes,
            template_id,
            template_version,
            project_path,
            hits: 0,
            last_used_at: now,
            num_pins: 0,
        }
    }
}

/// One entry as reported to the control plane (`render.node_template_cache`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheEntryInfo {
    pub hash: ContentHash,
    pub template_id: Option<TemplateId>,
    pub template_version: i32,
    pub size_bytes: u64,
    pub hits: u64,
    pub last_used_at: DateTime<Utc>,
}

/// Inventory changes since the previous report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InventoryChanges {
    /// `true` on the first report after start: `upserted` is then the whole inventory and the
    /// receiver should drop anything else it holds for this node.
    pub full_sync: bool,
    /// Entries added or changed (hits, last use), sorted by hash.
    pub upserted: Vec<CacheEntryInfo>,
    /// Entries no longer held, sorted.
    pub removed: Vec<ContentHash>,
}

/// Entries to evict before admitting `incoming_bytes`, least recently used first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EvictionPlan {
    pub victims: Vec<ContentHash>,
    /// `false` when even evicting every unpinned entry leaves the cache over budget (the new
    /// entry is admitted anyway; the excess is trimmed when pins drop).
    pub fits: bool,
}

/// Outcome of [`CacheIndex::remove_unpinned`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Removal {
    Removed(IndexEntry),
    Pinned,
    Absent,
}

/// LRU order, pins and byte budget of the cache entries.
#[derive(Debug)]
pub struct CacheIndex {
    /// Most recently used first (the `lru` crate's order); unbounded, the budget is in bytes.
    entries: LruCache<ContentHash, IndexEntry>,
    budget_bytes: u64,
    bytes_used: u64,
    full_sync_pending: bool,
    changed: HashSet<ContentHash>,
    removed: HashSet<ContentHash>,
}

impl CacheIndex {
    /// An empty index; the first [`Self::take_changes`] is a full sync.
    pub fn new(budget_bytes: u64) -> Self {
        Self {
            entries: LruCache::unbounded(),
            budget_bytes,
            bytes_used: 0,
            full_sync_pending: true,
            changed: HashSet::new(),
            removed: HashSet::new(),
        }
    }

    pub fn budget_bytes(&self) -> u64 {
        self.budget_bytes
    }

    /// Sum of the entries' sizes.
    pub fn bytes_used(&self) -> u64 {
        self.bytes_used
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn is_over_budget(&self) -> bool {
        self.bytes_used > self.budget_bytes
    }

    /// Looks an entry up without changing its recency.
    pub fn get(&self, hash: &ContentHash) -> Option<&IndexEntry> {
        self.entries.peek(hash)
    }

    pub fn is_pinned(&self, hash: &ContentHash) -> bool {
        self.entries.peek(hash).is_some_and(|entry| entry.num_pins > 0)
    }

    /// Adds (or replaces) an entry as the most recently used. A replaced entry keeps its pins
    /// and hits so that live leases stay accounted for.
    pub fn insert(&mut self, hash: ContentHash, mut entry: IndexEntry) {
        if let Some(previous) = self.entries.pop(&hash) {
            self.bytes_used = self.bytes_used.saturating_sub(previous.size_bytes);
            entry.num_pins = entry.num_pins.saturating_add(previous.num_pins);
            entry.hits = entry.hits.max(previous.hits);
        }
        self.bytes_used = self.bytes_used.saturating_add(entry.size_bytes);
        self.entries.push(hash, entry);
        self.mark_changed(hash);
    }

    /// Adds an entry as the least recently used (rebuilding from disk, oldest last).
    pub fn insert_least_recent(&mut self, hash: ContentHash, entry: IndexEntry) {
        self.insert(hash, entry);
        self.entries.demote(&hash);
    }

    /// An acquire served from the cache: counts a hit, marks it most recently used.
    pub fn record_hit(&mut self, hash: &ContentHash, now: DateTime<Utc>) -> bool {
        let Some(entry) = self.entries.get_mut(hash) else {
            return false;
        };
        entry.hits = entry.hits.saturating_add(1);
        entry.last_used_at = now;
        self.mark_changed(*hash);
        true
    }

    /// Takes a pin (a lease); the entry is not evicted until every pin is released.
    pub fn pin(&mut self, hash: &ContentHash) -> bool {
        let Some(entry) = self.entries.peek_mut(hash) else {
            return false;
        };
        entry.num_pins = entry.num_pins.saturating_add(1);
        true
    }

    /// Releases a pin and records the use: the entry becomes the most recently used.
    /// Returns `false` if the entry is unknown or was not pinned.
    pub fn unpin(&mut self, hash: &ContentHash, now: DateTime<Utc>) -> bool {
        let Some(entry) = self.entries.get_mut(hash) else {
            return false;
        };
        if entry.num_pins == 0 {
            return false;
        }
        entry.num_pins -= 1;
        entry.last_used_at = now;
        self.mark_changed(*hash);
        true
    }

    /// Releases a pin without recording a use (a verification, not a render).
    pub fn release(&mut self, hash: &ContentHash) -> bool {
        match self.entries.peek_mut(hash) {
            Some(entry) if entry.num_pins > 0 => {
                entry.num_pins -= 1;
                true
            }
            _ => false,
        }
    }

    /// Which entries to evict, least recently used first, so that `incoming_bytes` more fit in
    /// the budget. Pinned entries are never chosen. With `incoming_bytes == 0` this trims an
    /// index that is over budget.
    pub fn eviction_plan(&self, incoming_bytes: u64) -> EvictionPlan {
        let needed_total = self.bytes_used.saturating_add(incoming_bytes);
        let mut bytes_to_free = needed_total.saturating_sub(self.budget_bytes);
        let mut victims = Vec::new();
        for (hash, entry) in self.entries.iter().rev() {
            if bytes_to_free == 0 {
                break;
            }
            if entry.num_pins > 0 {
                continue;
            }
            victims.push(*hash);
            bytes_to_free = bytes_to_free.saturating_sub(entry.size_bytes);
        }
        EvictionPlan {
            victims,
            fits: bytes_to_free == 0,
        }
    }

    /// Removes an entry unless it is pinned.
    pub fn remove_unpinned(&mut self, hash: &ContentHash) -> Removal {
        match self.entries.peek(hash) {
            None => Removal::Absent,
            Some(entry) if entry.num_pins > 0 => Removal::Pinned,
            Some(_) => match self.entries.pop(hash) {
                Some(entry) => {
                    self.bytes_used = self.bytes_used.saturating_sub(entry.size_bytes);
                    self.changed.remove(hash);
                    self.removed.insert(*hash);
                    Removal::Removed(entry)
                }
                None => Removal::Absent,
            },
        }
    }

    /// Entries from least to most recently used.
    pub fn iter_lru_first(&self) -> impl Iterator<Item = (&ContentHash, &IndexEntry)> {
        self.entries.iter().rev()
    }

    /// The inventory record of one entry.
    pub fn info(&self, hash: &ContentHash) -> Option<CacheEntryInfo> {
        self.entries.peek(hash).map(|entry| entry_info(hash, entry))
    }

    /// Every entry, sorted by hash.
    pub fn inventory(&self) -> Vec<CacheEntryInfo> {
        let mut all: Vec<CacheEntryInfo> = self
            .entries
            .iter()
            .map(|(hash, entry)| entry_info(hash, entry))
            .collect();
        all.sort_by_key(|info| info.hash);
        all
    }

    /// Changes since the previous call; the first call is a full sync.
    pub fn take_changes(&mut self) -> InventoryChanges {
        let changed = std::mem::take(&mut self.changed);
        let removed = std::mem::take(&mut self.removed);
        if std::mem::replace(&mut self.full_sync_pending, false) {
            return InventoryChanges {
                full_sync: true,
                upserted: self.inventory(),
                removed: Vec::new(),
            };
        }
        let mut upserted: Vec<CacheEntryInfo> = changed.iter().filter_map(|hash| self.info(hash)).collect();
        upserted.sort_by_key(|info| info.hash);
        let mut removed: Vec<ContentHash> = removed
            .into_iter()
            .filter(|hash| !self.entries.contains(hash))
            .collect();
        removed.sort();
        InventoryChanges {
            full_sync: false,
            upserted,
            removed,
        }
    }

    fn mark_changed(&mut self, hash: ContentHash) {
        self.removed.remove(&hash);
        self.changed.insert(hash);
    }
}

fn entry_info(hash: &ContentHash, entry: &IndexEntry) -> CacheEntryInfo {
    CacheEntryInfo {
        hash: *hash,
        template_id: entry.template_id,
        template_version: entry.template_version,
        size_bytes: entry.size_bytes,
        hits: entry.hits,
        last_used_at: entry.last_used_at,
    }
}

#[cfg(test)]
mod tests;
