//! Start-up: rebuilding the index from the cache folder. The folder is the truth (an entry
//! exists if its folder verifies); `index.json` only restores the LRU order, hits and last
//! use, and may be missing, stale or corrupt.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use tracing::info;

use flatrender_proto::types::ContentHash;

use super::error::{CacheError, CacheResult};
use super::index::{CacheIndex, IndexEntry};
use super::manifest::EntryManifest;
use super::store::{self, IndexFile, IndexFileEntry};
use super::{CacheConfig, CacheContent, spawn_blocking_in_span};

/// Creates the folder if needed, removes temporary leftovers, verifies every entry on a
/// blocking thread and builds the index (not yet trimmed to the budget).
pub(super) async fn rebuild(config: &CacheConfig, content: CacheContent) -> CacheResult<CacheIndex> {
    tokio::fs::create_dir_all(&config.dir)
        .await
        .map_err(|error| CacheError::io(&config.dir, error))?;
    let started = tokio::time::Instant::now();
    let dir = config.dir.clone();
    let (scan, index_file_opt) = spawn_blocking_in_span(move || {
        let scan = store::scan(&dir, content)?;
        Ok((scan, store::read_index_file(&dir)))
    })
    .await?;
    let num_temp_removed = scan.num_temp_removed;
    let num_invalid_removed = scan.num_invalid_removed;
    let index = index_from(config.budget_bytes, scan.entries, index_file_opt);
    info!(
        cache = %content,
        dir = %config.dir.display(),
        entries = index.len(),
        bytes_used = index.bytes_used(),
        budget_bytes = index.budget_bytes(),
        num_temp_removed,
        num_invalid_removed,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "cache opened"
    );
    Ok(index)
}

/// Builds the index from verified entries, in the order of `index.json` (least recent first);
/// entries it does not know go to the least recent end, oldest install last used. Records of
/// `index.json` without a verified folder are ignored.
pub(super) fn index_from(
    budget_bytes: u64,
    entries: Vec<(ContentHash, EntryManifest)>,
    index_file_opt: Option<IndexFile>,
) -> CacheIndex {
    let mut manifests: HashMap<ContentHash, EntryManifest> = entries.into_iter().collect();
    let mut index = CacheIndex::new(budget_bytes);
    for record in index_file_opt.map(|index_file| index_file.entries).unwrap_or_default() {
        let Ok(hash) = ContentHash::parse_hex(&record.hash, "index.json hash") else {
            continue;
        };
        let Some(manifest) = manifests.remove(&hash) else {
            continue;
        };
        let mut entry = entry_of(&manifest, record.last_used_at);
        entry.hits = record.hits;
        index.insert(hash, entry);
    }
    let mut unknown: Vec<(ContentHash, EntryManifest)> = manifests.into_iter().collect();
    // Newest first, each pushed to the least recent end: the oldest install ends up evicted first.
    unknown.sort_by(|left, right| {
        right
            .1
            .installed_at
            .cmp(&left.1.installed_at)
            .then(left.0.cmp(&right.0))
    });
    for (hash, manifest) in unknown {
        let entry = entry_of(&manifest, manifest.installed_at);
        index.insert_least_recent(hash, entry);
    }
    index
}

fn entry_of(manifest: &EntryManifest, last_used_at: DateTime<Utc>) -> IndexEntry {
    IndexEntry::new(
        manifest.size_bytes(),
        manifest.template_id,
        manifest.template_version,
        manifest.project_path(),
        last_used_at,
    )
}

/// The `index.json` content for the current index.
pub(super) fn index_file_of(index: &CacheIndex) -> IndexFile {
    let entries = index
        .iter_lru_first()
        .map(|(hash, entry)| IndexFileEntry {
            hash: hash.to_hex(),
            template_id: entry.template_id,
            template_version: entry.template_version,
            size_bytes: entry.size_bytes,
            hits: entry.hits,
            last_used_at: entry.last_used_at,
        })
        .collect();
    IndexFile::new(entries)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::super::manifest::{EntryKind, ManifestFile};
    use super::*;

    fn hash(byte: u8) -> ContentHash {
        ContentHash::from_bytes([byte; 32])
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + seconds, 0)
            .single()
            .expect("valid timestamp")
    }

    fn manifest(byte: u8, size_bytes: u64, installed_second: i64) -> (ContentHash, EntryManifest) {
        let manifest = EntryManifest {
            format: 1,
            hash: hash(byte).to_hex(),
            kind: EntryKind::Project,
            project: "project.aep".to_owned(),
            template_id: None,
            template_version: i32::from(byte),
            installed_at: at(installed_second),
            files: vec![ManifestFile {
                path: "project.aep".to_owned(),
                size_bytes,
                blake3: hash(byte).to_hex(),
            }],
        };
        (hash(byte), manifest)
    }

    fn order(index: &CacheIndex) -> Vec<ContentHash> {
        index.iter_lru_first().map(|(hash, _)| *hash).collect()
    }

    /// Without `index.json` the oldest installs are the least recently used.
    #[test]
    fn without_index_file_order_follows_install_time() {
        let entries = vec![manifest(1, 10, 30), manifest(2, 10, 10), manifest(3, 10, 20)];
        let index = index_from(100, entries, None);
        assert_eq!(order(&index), vec![hash(2), hash(3), hash(1)]);
        assert_eq!(index.bytes_used(), 30);
        assert_eq!(index.get(&hash(1)).expect("entry").last_used_at, at(30));
    }

    /// `index.json` restores order, hits and last use; unknown entries go before known ones and
    /// records without a verified folder are dropped.
    #[test]
    fn index_file_restores_order_and_hits() {
        let entries = vec![manifest(1, 10, 0), manifest(2, 10, 0), manifest(3, 10, 5)];
        let mut previous = CacheIndex::new(100);
        previous.insert(hash(2), entry_of(&entries[1].1, at(50)));
        previous.insert(hash(9), entry_of(&manifest(9, 10, 0).1, at(60)));
        previous.insert(hash(1), entry_of(&entries[0].1, at(70)));
        previous.record_hit(&hash(1), at(80));
        let index_file = index_file_of(&previous);
        let index = index_from(100, entries, Some(index_file));
        assert_eq!(order(&index), vec![hash(3), hash(2), hash(1)]);
        let first = index.get(&hash(1)).expect("entry");
        assert_eq!(first.hits, 1);
        assert_eq!(first.last_used_at, at(80));
        assert_eq!(first.template_version, 1);
        assert!(index.get(&hash(9)).is_none());
    }

    /// Garbage hashes in `index.json` are skipped.
    #[test]
    fn malformed_index_records_are_skipped() {
        let entries = vec![manifest(1, 10, 0)];
        let index_file = IndexFile::new(vec![IndexFileEntry {
            hash: "not-a-hash".to_owned(),
            template_id: None,
            template_version: 0,
            size_bytes: 1,
            hits: 5,
            last_used_at: at(0),
        }]);
        let index = index_from(100, entries, Some(index_file));
        assert_eq!(order(&index), vec![hash(1)]);
        assert_eq!(index.get(&hash(1)).expect("entry").hits, 0);
    }

    /// The index file round-trips through JSON.
    #[test]
    fn index_file_round_trips_through_json() {
        let entries = vec![manifest(1, 10, 0), manifest(2, 20, 1)];
        let index = index_from(100, entries.clone(), None);
        let index_file = index_file_of(&index);
        let json = serde_json::to_string(&index_file).expect("serialise");
        let parsed: IndexFile = serde_json::from_str(&json).expect("parse");
        assert_eq!(parsed, index_file);
        let rebuilt = index_from(100, entries, Some(parsed));
        assert_eq!(order(&rebuilt), order(&index));
    }
}
