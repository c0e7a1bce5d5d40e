//! The durable outbox: results (chunk completions and failures) and health samples that could
//! not reach the control plane yet, kept on disk until it acknowledges them. Redelivery is safe
//! because the control plane answers `DUPLICATE` to a completion it already accepted.
//!
//! On disk (`files`), one JSON file per item, `<id, 20 digits>.<kind>.json` (`kind` is
//! `completion`, `failure` or `health`). A push writes `<name>.tmp`, fsyncs it, renames it into
//! place and fsyncs the folder, so an item is either wholly there or absent. On open, leftover
//! `.tmp` files are removed and a file that does not parse is renamed to `<name>.corrupt` and
//! skipped. Ids grow monotonically, so FIFO order is the file-name order.
//!
//! Bounds: health samples are dropped oldest first when over `max_health_samples` or
//! `max_bytes`; results are never dropped, and a result that does not fit is refused with
//! [`OutboxError::Full`] (the agent then stops taking work).
//!
//! Everything that touches the disk (`open`, `push`, `ack`) is async and runs on a blocking
//! thread: a slow disk must not stall heartbeats and lease renewals. The blocking halves are
//! private, so async code cannot call them by mistake. Writers take the `io` lock (only ever on
//! blocking threads); the index lock is held for in-memory updates only, never across IO, so the
//! queries (`pending`, `results_full`, ...) answer at once even while a write is stalled.

mod files;
mod items;

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::health::HealthSample;

use files::{
    CORRUPT_SUFFIX, ITEM_SUFFIX, TEMP_SUFFIX, decode_item_file, encode_item_file, parse_item_file_name,
    parse_leading_id, sync_dir, write_durably,
};
pub use items::{ChunkCompletion, ChunkFailure, ExportRecord, FrameOutputRecord, OutboxItem};

/// Outbox errors.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// A file operation failed.
    #[error("outbox io on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// A result does not fit the byte budget.
    #[error("outbox full: {results_bytes} bytes of results pending, {item_bytes} more would exceed {max_bytes}")]
    Full {
        results_bytes: u64,
        item_bytes: u64,
        max_bytes: u64,
    },
    /// An item could not be encoded.
    #[error("outbox item encoding: {0}")]
    Encode(#[from] serde_json::Error),
    /// The blocking thread doing the IO was cancelled (the runtime is shutting down).
    #[error("outbox io cancelled: {0}")]
    Cancelled(String),
}

/// Result of outbox operations.
pub type OutboxResult<T> = Result<T, OutboxError>;

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> OutboxError + '_ {
    move |source| OutboxError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// How much the outbox may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutboxLimits {
    /// Health samples kept at most.
    pub max_health_samples: usize,
    /// Budget for the item files together, results and health samples.
    pub max_bytes: u64,
}

/// The stable id of an outbox item; larger ids were pushed later.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ItemId(u64);

impl ItemId {
    /// The number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ItemId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{:020}", self.0)
    }
}

struct StoredItem {
    item: OutboxItem,
    file_bytes: u64,
}

#[derive(Default)]
struct OutboxState {
    items: BTreeMap<ItemId, StoredItem>,
    next_id: u64,
    results_bytes: u64,
    health_bytes: u64,
    num_health: usize,
    num_health_dropped: u64,
    /// The largest result (stored or refused) seen since opening: the room to keep free for
    /// the next one.
    largest_result_bytes: u64,
}

impl OutboxState {
    fn insert(&mut self, id: ItemId, stored_item: StoredItem) {
        if stored_item.item.is_result() {
            self.results_bytes += stored_item.file_bytes;
            self.largest_result_bytes = self.largest_result_bytes.max(stored_item.file_bytes);
        } else {
            self.health_bytes += stored_item.file_bytes;
            self.num_health += 1;
        }
        self.items.insert(id, stored_item);
    }

    fn remove(&mut self, id: ItemId) -> Option<StoredItem> {
        let stored_item = self.items.remove(&id)?;
        if stored_item.item.is_result() {
            self.results_bytes -= stored_item.file_bytes;
        } else {
            self.health_bytes -= stored_item.file_bytes;
            self.num_health -= 1;
        }
        Some(stored_item)
    }

    fn oldest_health_id(&self) -> Option<ItemId> {
        self.items
            .iter()
            .find(|(_, stored_item)| !stored_item.item.is_result())
            .map(|(id, _)| *id)
    }

    /// Takes the oldest health samples out of the index until `extra_bytes` more fit the byte
    /// budget and `extra_health` more fit the sample limit, or none is left. Returns the files
    /// to delete (the caller deletes them outside this lock).
    fn drop_health_until_within(
        &mut self,
        limits: OutboxLimits,
        extra_bytes: u64,
        extra_health: usize,
    ) -> Vec<(ItemId, OutboxItem)> {
        let mut dropped = Vec::new();
        while self.results_bytes + self.health_bytes + extra_bytes > limits.max_bytes
            || self.num_health + extra_health > limits.max_health_samples
        {
            let Some(oldest_health_id) = self.oldest_health_id() else {
                break;
            };
            if let Some(stored_item) = self.remove(oldest_health_id) {
                dropped.push((oldest_health_id, stored_item.item));
            }
            self.num_health_dropped += 1;
        }
        if !dropped.is_empty() {
            debug!(
                num_dropped = dropped.len(),
                "dropped oldest health samples from the outbox"
            );
        }
        dropped
    }
}

/// The durable outbox. Cheap to clone; clones share the folder and the index.
#[derive(Clone)]
pub struct Outbox {
    shared: Arc<OutboxShared>,
}

struct OutboxShared {
    dir: PathBuf,
    limits: OutboxLimits,
    /// Serialises the writers (push, ack); held across file IO, on blocking threads only.
    io: Mutex<()>,
    /// The index; held for in-memory updates only.
    state: Mutex<OutboxState>,
}

impl Outbox {
    /// Opens (creating if needed) the outbox in `dir` and restores the pending items in order.
    pub async fn open(dir: PathBuf, limits: OutboxLimits) -> OutboxResult<Outbox> {
        run_blocking(move || Self::open_blocking(dir, limits)).await
    }

    /// Stores `item` durably and returns its id. A result that does not fit the byte budget is
    /// refused with [`OutboxError::Full`]. Older health samples make room for a new item; a
    /// health sample that cannot fit even then is dropped itself (its id is then never pending).
    pub async fn push(&self, item: OutboxItem) -> OutboxResult<ItemId> {
        let outbox = self.clone();
        run_blocking(move || outbox.push_blocking(item)).await
    }

    /// Removes a delivered item durably. Acknowledging an unknown id does nothing.
    pub async fn ack(&self, id: ItemId) -> OutboxResult<()> {
        let outbox = self.clone();
        run_blocking(move || outbox.ack_blocking(id)).await
    }

    /// Every pending item, oldest first.
    pub fn pending(&self) -> Vec<(ItemId, OutboxItem)> {
        let state = self.lock_state();
        state
            .items
            .iter()
            .map(|(id, stored_item)| (*id, stored_item.item.clone()))
            .collect()
    }

    /// Pending results (completions and failures), oldest first.
    pub fn pending_results(&self) -> Vec<(ItemId, OutboxItem)> {
        let state = self.lock_state();
        let results = state
            .items
            .iter()
            .filter(|(_, stored_item)| stored_item.item.is_result());
        results
            .map(|(id, stored_item)| (*id, stored_item.item.clone()))
            .collect()
    }

    /// Up to `max_samples` pending health samples, oldest first.
    pub fn pending_health(&self, max_samples: usize) -> Vec<(ItemId, HealthSample)> {
        let state = self.lock_state();
        let samples = state
            .items
            .iter()
            .filter_map(|(id, stored_item)| match &stored_item.item {
                OutboxItem::Health(sample) => Some((*id, sample.clone())),
                _ => None,
            });
        samples.take(max_samples).collect()
    }

    /// Items pending, results and health samples.
    pub fn len(&self) -> usize {
        self.lock_state().items.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.lock_state().items.is_empty()
    }

    /// Results pending.
    pub fn results_pending(&self) -> usize {
        let state = self.lock_state();
        state.items.len() - state.num_health
    }

    /// Whether a result as large as the largest seen so far would be refused: the agent should
    /// take no new work until deliveries free room.
    pub fn results_full(&self) -> bool {
        let state = self.lock_state();
        state.results_bytes + state.largest_result_bytes > self.shared.limits.max_bytes
    }

    /// Health samples pending.
    pub fn health_pending(&self) -> usize {
        self.lock_state().num_health
    }

    /// Bytes of item files pending, results and health samples.
    pub fn bytes_pending(&self) -> u64 {
        let state = self.lock_state();
        state.results_bytes + state.health_bytes
    }

    /// Health samples dropped for lack of room since this outbox was opened.
    pub fn health_dropped_total(&self) -> u64 {
        self.lock_state().num_health_dropped
    }

    fn open_blocking(dir: PathBuf, limits: OutboxLimits) -> OutboxResult<Outbox> {
        fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        let mut state = OutboxState {
            next_id: 1,
            ..OutboxState::default()
        };
        let mut highest_seen_id = 0_u64;
        let mut changed_dir = false;
        for dir_entry in fs::read_dir(&dir).map_err(io_error(&dir))? {
            let dir_entry = dir_entry.map_err(io_error(&dir))?;
            let file_name = dir_entry.file_name().to_string_lossy().into_owned();
            let path = dir_entry.path();
            if let Some(id) = parse_leading_id(&file_name) {
                highest_seen_id = highest_seen_id.max(id.get());
            }
            if file_name.ends_with(TEMP_SUFFIX) {
                info!(path = %path.display(), "removing unfinished outbox write");
                fs::remove_file(&path).map_err(io_error(&path))?;
                changed_dir = true;
                continue;
            }
            let Some((id, kind)) = parse_item_file_name(&file_name) else {
                if !file_name.ends_with(CORRUPT_SUFFIX) {
                    debug!(path = %path.display(), "ignoring unknown file in outbox");
                }
                continue;
            };
            let bytes = fs::read(&path).map_err(io_error(&path))?;
            match decode_item_file(&bytes, id, kind) {
                Ok(item) => state.insert(
                    id,
                    StoredItem {
                        item,
                        file_bytes: bytes.len() as u64,
                    },
                ),
                Err(reason) => {
                    let corrupt_path = path.with_file_name(format!("{file_name}{CORRUPT_SUFFIX}"));
                    warn!(path = %path.display(), %reason, "skipping corrupt outbox item");
                    fs::rename(&path, &corrupt_path).map_err(io_error(&path))?;
                    changed_dir = true;
                }
            }
        }
        state.next_id = highest_seen_id + 1;
        let dropped = state.drop_health_until_within(limits, 0, 0);
        info!(
            num_results = state.items.len() - state.num_health,
            num_health = state.num_health,
            bytes = state.results_bytes + state.health_bytes,
            "outbox opened"
        );
        let outbox = Outbox {
            shared: Arc::new(OutboxShared {
                dir,
                limits,
                io: Mutex::new(()),
                state: Mutex::new(state),
            }),
        };
        changed_dir |= !dropped.is_empty();
        outbox.delete_dropped(&dropped);
        if changed_dir {
            sync_dir(&outbox.shared.dir)?;
        }
        Ok(outbox)
    }

    fn push_blocking(&self, item: OutboxItem) -> OutboxResult<ItemId> {
        let _writer = lock(&self.shared.io);
        let limits = self.shared.limits;
        // Decide under the index lock; the writer lock keeps the decision valid across the IO.
        let (id, file_contents, dropped) = {
            let mut state = self.lock_state();
            let id = ItemId(state.next_id);
            let file_contents = encode_item_file(id, &item)?;
            let item_bytes = file_contents.len() as u64;
            let dropped = if item.is_result() {
                state.largest_result_bytes = state.largest_result_bytes.max(item_bytes);
                if state.results_bytes + item_bytes > limits.max_bytes {
                    return Err(OutboxError::Full {
                        results_bytes: state.results_bytes,
                        item_bytes,
                        max_bytes: limits.max_bytes,
                    });
                }
                state.drop_health_until_within(limits, item_bytes, 0)
            } else {
                let dropped = state.drop_health_until_within(limits, item_bytes, 1);
                let fits_bytes = state.results_bytes + state.health_bytes + item_bytes <= limits.max_bytes;
                if !fits_bytes || state.num_health >= limits.max_health_samples {
                    state.next_id += 1;
                    state.num_health_dropped += 1;
                    debug!(item_id = %id, "outbox has no room for a health sample, dropped it");
                    drop(state);
                    self.delete_dropped(&dropped);
                    return Ok(id);
                }
                dropped
            };
            (id, file_contents, dropped)
        };
        self.delete_dropped(&dropped);
        write_durably(&self.shared.dir, &self.item_path(id, &item), &file_contents)?;
        let mut state = self.lock_state();
        state.next_id += 1;
        state.insert(
            id,
            StoredItem {
                item,
                file_bytes: file_contents.len() as u64,
            },
        );
        Ok(id)
    }

    fn ack_blocking(&self, id: ItemId) -> OutboxResult<()> {
        let _writer = lock(&self.shared.io);
        let Some(path) = self
            .lock_state()
            .items
            .get(&id)
            .map(|stored_item| self.item_path(id, &stored_item.item))
        else {
            return Ok(());
        };
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(OutboxError::Io { path, source: error }),
        }
        self.lock_state().remove(id);
        sync_dir(&self.shared.dir)
    }

    /// Deletes the files of health samples already taken out of the index.
    fn delete_dropped(&self, dropped: &[(ItemId, OutboxItem)]) {
        for (id, item) in dropped {
            let path = self.item_path(*id, item);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => warn!(path = %path.display(), %error, "could not delete dropped health sample"),
            }
        }
    }

    fn lock_state(&self) -> MutexGuard<'_, OutboxState> {
        lock(&self.shared.state)
    }

    fn item_path(&self, id: ItemId, item: &OutboxItem) -> PathBuf {
        self.shared.dir.join(format!("{id}.{}{ITEM_SUFFIX}", item.kind()))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update of the index is completed before the guard drops; keep going after a panic.
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs `blocking_work` on a blocking thread, in the caller's tracing span.
async fn run_blocking<T, F>(blocking_work: F) -> OutboxResult<T>
where
    F: FnOnce() -> OutboxResult<T> + Send + 'static,
    T: Send + 'static,
{
    let span = tracing::Span::current();
    match tokio::task::spawn_blocking(move || span.in_scope(blocking_work)).await {
        Ok(result) => result,
        Err(join_error) => match join_error.try_into_panic() {
            Ok(panic_payload) => std::panic::resume_unwind(panic_payload),
            Err(cancelled) => Err(OutboxError::Cancelled(cancelled.to_string())),
        },
    }
}
