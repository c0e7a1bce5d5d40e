//! Unit tests of the pure cache index: ordering, pins, budget, eviction plans, inventory changes.

use chrono::TimeZone;

use super::*;

fn hash(byte: u8) -> ContentHash {
    ContentHash::from_bytes([byte; 32])
}

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + seconds, 0)
        .single()
        .expect("valid timestamp")
}

fn entry(size_bytes: u64) -> IndexEntry {
    IndexEntry::new(size_bytes, None, 1, PathBuf::from("project.aep"), at(0))
}

fn index_with(budget_bytes: u64, sizes: &[(u8, u64)]) -> CacheIndex {
    let mut index = CacheIndex::new(budget_bytes);
    for (byte, size) in sizes {
        index.insert(hash(*byte), entry(*size));
    }
    index
}

fn lru_order(index: &CacheIndex) -> Vec<ContentHash> {
    index.iter_lru_first().map(|(hash, _)| *hash).collect()
}

/// A new index is empty, within budget, and reports its budget.
#[test]
fn new_index_is_empty() {
    let index = CacheIndex::new(100);
    assert!(index.is_empty());
    assert_eq!(index.len(), 0);
    assert_eq!(index.bytes_used(), 0);
    assert_eq!(index.budget_bytes(), 100);
    assert!(!index.is_over_budget());
    assert!(index.get(&hash(1)).is_none());
}

/// Inserting adds the size to the bytes used and makes the entry the most recently used.
#[test]
fn insert_accounts_bytes_and_orders_most_recent_last() {
    let index = index_with(100, &[(1, 10), (2, 20), (3, 30)]);
    assert_eq!(index.len(), 3);
    assert_eq!(index.bytes_used(), 60);
    assert_eq!(lru_order(&index), vec![hash(1), hash(2), hash(3)]);
}

/// Re-inserting a hash replaces its size but keeps pins and hits of live leases.
#[test]
fn reinsert_replaces_size_and_keeps_pins_and_hits() {
    let mut index = index_with(100, &[(1, 10)]);
    index.pin(&hash(1));
    index.record_hit(&hash(1), at(1));
    index.insert(hash(1), entry(15));
    let stored = index.get(&hash(1)).expect("entry");
    assert_eq!(index.bytes_used(), 15);
    assert_eq!(index.len(), 1);
    assert_eq!(stored.num_pins, 1);
    assert_eq!(stored.hits, 1);
}

/// Entries rebuilt from disk without a recorded order go to the least recently used end.
#[test]
fn insert_least_recent_goes_to_the_eviction_end() {
    let mut index = index_with(100, &[(1, 10)]);
    index.insert_least_recent(hash(2), entry(10));
    assert_eq!(lru_order(&index), vec![hash(2), hash(1)]);
}

/// A hit counts, updates the last use and moves the entry to the most recent end.
#[test]
fn record_hit_counts_and_promotes() {
    let mut index = index_with(100, &[(1, 10), (2, 10)]);
    assert!(index.record_hit(&hash(1), at(5)));
    let stored = index.get(&hash(1)).expect("entry");
    assert_eq!(stored.hits, 1);
    assert_eq!(stored.last_used_at, at(5));
    assert_eq!(lru_order(&index), vec![hash(2), hash(1)]);
    assert!(!index.record_hit(&hash(9), at(5)));
}

/// `get` does not change the order (peeking is not a use).
#[test]
fn get_does_not_promote() {
    let index = index_with(100, &[(1, 10), (2, 10)]);
    assert!(index.get(&hash(1)).is_some());
    assert_eq!(lru_order(&index), vec![hash(1), hash(2)]);
}

/// Pins nest; unpinning records the last use and promotes; unknown or unpinned entries refuse.
#[test]
fn pins_nest_and_unpin_records_last_use() {
    let mut index = index_with(100, &[(1, 10), (2, 10)]);
    assert!(index.pin(&hash(1)));
    assert!(index.pin(&hash(1)));
    assert!(index.is_pinned(&hash(1)));
    assert!(index.unpin(&hash(1), at(7)));
    assert!(index.is_pinned(&hash(1)));
    assert!(index.unpin(&hash(1), at(8)));
    assert!(!index.is_pinned(&hash(1)));
    assert!(!index.unpin(&hash(1), at(9)), "no pin left to release");
    assert_eq!(index.get(&hash(1)).expect("entry").last_used_at, at(8));
    assert_eq!(lru_order(&index), vec![hash(2), hash(1)]);
    assert!(!index.pin(&hash(9)));
    assert!(!index.unpin(&hash(9), at(9)));
    assert!(!index.is_pinned(&hash(9)));
}

/// Releasing a pin keeps the order and last use untouched.
#[test]
fn release_unpins_without_recording_use() {
    let mut index = index_with(100, &[(1, 10), (2, 10)]);
    index.pin(&hash(1));
    assert!(index.release(&hash(1)));
    assert!(!index.is_pinned(&hash(1)));
    assert!(!index.release(&hash(1)));
    assert!(!index.release(&hash(9)));
    assert_eq!(index.get(&hash(1)).expect("entry").last_used_at, at(0));
    assert_eq!(lru_order(&index), vec![hash(1), hash(2)]);
}

/// Nothing is evicted while the new bytes fit in the budget, exactly at the limit included.
#[test]
fn eviction_plan_is_empty_when_it_fits() {
    let index = index_with(100, &[(1, 40), (2, 40)]);
    assert_eq!(
        index.eviction_plan(20),
        EvictionPlan {
            victims: vec![],
            fits: true
        }
    );
    assert!(index.eviction_plan(0).victims.is_empty());
}

/// Victims are taken least recently used first, and only as many as needed.
#[test]
fn eviction_plan_takes_least_recent_first_and_only_what_is_needed() {
    let index = index_with(100, &[(1, 30), (2, 30), (3, 30)]);
    let plan = index.eviction_plan(20);
    assert_eq!(plan.victims, vec![hash(1)]);
    assert!(plan.fits);
    let plan = index.eviction_plan(50);
    assert_eq!(plan.victims, vec![hash(1), hash(2)]);
    assert!(plan.fits);
}

/// Recent use protects an entry: the hit one is evicted last.
#[test]
fn eviction_plan_follows_recent_use() {
    let mut index = index_with(100, &[(1, 30), (2, 30), (3, 30)]);
    index.record_hit(&hash(1), at(1));
    assert_eq!(index.eviction_plan(20).victims, vec![hash(2)]);
}

/// A pinned entry is never a victim even when it is the least recently used.
#[test]
fn eviction_plan_skips_pinned_entries() {
    let mut index = index_with(100, &[(1, 30), (2, 30), (3, 30)]);
    index.pin(&hash(1));
    let plan = index.eviction_plan(20);
    assert_eq!(plan.victims, vec![hash(2)]);
    assert!(plan.fits);
}

/// With everything pinned, nothing is evicted and the plan says the cache will be over budget.
#[test]
fn eviction_plan_admits_over_budget_when_everything_is_pinned() {
    let mut index = index_with(100, &[(1, 50), (2, 50)]);
    index.pin(&hash(1));
    index.pin(&hash(2));
    let plan = index.eviction_plan(10);
    assert!(plan.victims.is_empty());
    assert!(!plan.fits);
}

/// When unpinned entries cannot free enough, all of them are proposed and `fits` is false.
#[test]
fn eviction_plan_evicts_all_unpinned_when_not_enough() {
    let mut index = index_with(100, &[(1, 20), (2, 60), (3, 20)]);
    index.pin(&hash(2));
    let plan = index.eviction_plan(90);
    assert_eq!(plan.victims, vec![hash(1), hash(3)]);
    assert!(!plan.fits);
}

/// An entry larger than the whole budget never fits.
#[test]
fn eviction_plan_for_an_entry_larger_than_the_budget_does_not_fit() {
    let index = CacheIndex::new(100);
    let plan = index.eviction_plan(101);
    assert!(plan.victims.is_empty());
    assert!(!plan.fits);
}

/// A zero budget evicts every unpinned entry.
#[test]
fn zero_budget_evicts_everything_unpinned() {
    let mut index = index_with(0, &[(1, 1), (2, 1)]);
    assert!(index.is_over_budget());
    index.pin(&hash(2));
    assert_eq!(index.eviction_plan(0).victims, vec![hash(1)]);
}

/// Trimming (0 incoming bytes) brings an over-budget index back within budget once pins drop.
#[test]
fn trim_after_unpin_returns_within_budget() {
    let mut index = index_with(100, &[(1, 60)]);
    index.pin(&hash(1));
    index.insert(hash(2), entry(60));
    assert!(index.is_over_budget());
    assert_eq!(
        index.eviction_plan(0).victims,
        vec![hash(2)],
        "the unpinned one goes first"
    );
    index.pin(&hash(2));
    assert!(index.eviction_plan(0).victims.is_empty());
    index.unpin(&hash(1), at(3));
    // hash(2) is still pinned, so the released hash(1) goes even though it was just used.
    assert_eq!(index.eviction_plan(0).victims, vec![hash(1)]);
}

/// Zero-sized entries are never needed as victims.
#[test]
fn zero_sized_entries_are_not_evicted_needlessly() {
    let index = index_with(10, &[(1, 0), (2, 10)]);
    let plan = index.eviction_plan(5);
    assert_eq!(plan.victims, vec![hash(1), hash(2)]);
    assert!(plan.fits);
    assert!(index.eviction_plan(0).victims.is_empty());
}

/// Removing frees the bytes; pinned entries refuse; unknown hashes are absent.
#[test]
fn remove_unpinned_frees_bytes_and_refuses_pinned() {
    let mut index = index_with(100, &[(1, 10), (2, 20)]);
    index.pin(&hash(2));
    assert!(matches!(index.remove_unpinned(&hash(1)), Removal::Removed(removed) if removed.size_bytes == 10));
    assert_eq!(index.remove_unpinned(&hash(2)), Removal::Pinned);
    assert_eq!(index.remove_unpinned(&hash(9)), Removal::Absent);
    assert_eq!(index.bytes_used(), 20);
    assert_eq!(index.len(), 1);
}

/// The inventory lists every entry with its metadata, sorted by hash.
#[test]
fn inventory_lists_all_entries_sorted() {
    let template_id = TemplateId::new_random();
    let mut index = CacheIndex::new(100);
    index.insert(hash(3), entry(30));
    index.insert(
        hash(1),
        IndexEntry::new(10, Some(template_id), 7, PathBuf::from("a.aep"), at(2)),
    );
    index.record_hit(&hash(1), at(4));
    let inventory = index.inventory();
    assert_eq!(inventory.len(), 2);
    assert_eq!(inventory[0].hash, hash(1));
    assert_eq!(inventory[0].template_id, Some(template_id));
    assert_eq!(inventory[0].template_version, 7);
    assert_eq!(inventory[0].size_bytes, 10);
    assert_eq!(inventory[0].hits, 1);
    assert_eq!(inventory[0].last_used_at, at(4));
    assert_eq!(inventory[1].hash, hash(3));
    assert_eq!(index.info(&hash(3)), Some(inventory[1].clone()));
    assert_eq!(index.info(&hash(9)), None);
}

/// The first change report is a full sync of everything; later ones carry only deltas.
#[test]
fn first_take_changes_is_a_full_sync() {
    let mut index = index_with(100, &[(1, 10), (2, 10)]);
    let first = index.take_changes();
    assert!(first.full_sync);
    assert_eq!(first.upserted.len(), 2);
    assert!(first.removed.is_empty());
    let second = index.take_changes();
    assert_eq!(second, InventoryChanges::default());
}

/// Hits, unpins, inserts and removals each appear once in the next report.
#[test]
fn take_changes_reports_upserts_and_removals() {
    let mut index = index_with(100, &[(1, 10), (2, 10), (3, 10)]);
    index.take_changes();
    index.record_hit(&hash(1), at(1));
    index.pin(&hash(2));
    index.unpin(&hash(2), at(2));
    index.remove_unpinned(&hash(3));
    index.insert(hash(4), entry(10));
    let changes = index.take_changes();
    assert!(!changes.full_sync);
    let upserted: Vec<ContentHash> = changes.upserted.iter().map(|info| info.hash).collect();
    assert_eq!(upserted, vec![hash(1), hash(2), hash(4)]);
    assert_eq!(changes.removed, vec![hash(3)]);
    assert_eq!(index.take_changes(), InventoryChanges::default());
}

/// Pinning alone is not a reportable change.
#[test]
fn pin_alone_is_not_a_change() {
    let mut index = index_with(100, &[(1, 10)]);
    index.take_changes();
    index.pin(&hash(1));
    assert_eq!(index.take_changes(), InventoryChanges::default());
}

/// An entry removed and re-installed before the report is an upsert, not a removal.
#[test]
fn remove_then_reinsert_reports_only_the_upsert() {
    let mut index = index_with(100, &[(1, 10)]);
    index.take_changes();
    index.remove_unpinned(&hash(1));
    index.insert(hash(1), entry(12));
    let changes = index.take_changes();
    assert_eq!(changes.upserted.len(), 1);
    assert_eq!(changes.upserted[0].size_bytes, 12);
    assert!(changes.removed.is_empty());
}

/// An entry inserted and removed before the report is only a removal.
#[test]
fn insert_then_remove_reports_only_the_removal() {
    let mut index = CacheIndex::new(100);
    index.take_changes();
    index.insert(hash(1), entry(10));
    index.remove_unpinned(&hash(1));
    let changes = index.take_changes();
    assert!(changes.upserted.is_empty());
    assert_eq!(changes.removed, vec![hash(1)]);
}

/// Removals made before the first report are folded into the full sync.
#[test]
fn full_sync_ignores_earlier_removals() {
    let mut index = index_with(100, &[(1, 10), (2, 10)]);
    index.remove_unpinned(&hash(1));
    let changes = index.take_changes();
    assert!(changes.full_sync);
    assert_eq!(changes.upserted.len(), 1);
    assert!(changes.removed.is_empty());
    assert_eq!(index.take_changes(), InventoryChanges::default());
}
