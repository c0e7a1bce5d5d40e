//! The durable outbox: results (chunk completions and failures) and health samples that could
//! not reach the control plane yet, kept on disk until it acknowledges them. Redelivery is safe
//! because the control plane answers `DUPLICATE` to a completion it already accepted.
//!
//! On disk, one JSON file per item in the outbox folder, named `<id, 20 digits>.<kind>.json`
//! (`kind` is `completion`, `failure` or `health`) and holding
//! `{"format_version":1,"id":<id>,"item":{"kind":...,<fields>}}`. A push writes
//! `<name>.tmp`, fsyncs it, renames it into place and fsyncs the folder, so an item is either
//! wholly there or absent. On open, leftover `.tmp` files are removed and a file that does not
//! parse is renamed to `<name>.corrupt` and skipped. Ids grow monotonically, so FIFO order is the
//! file-name order.
//!
//! Bounds: health samples are dropped oldest first when over `max_health_samples` or
//! `max_bytes`; results are never dropped, and a result that does not fit is refused with
//! [`OutboxError::Full`] (the agent then stops taking work).
//!
//! The methods block on file IO (fsync); async code uses the `_async` variants, which run them on
//! a blocking thread. The std mutex is held across that IO, never across an `.await`.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use flatrender_proto::pb;

use crate::health::HealthSample;

/// Version of the item file envelope.
const FORMAT_VERSION: u32 = 1;
const ITEM_SUFFIX: &str = ".json";
const TEMP_SUFFIX: &str = ".tmp";
const CORRUPT_SUFFIX: &str = ".corrupt";

/// Outbox errors.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox io on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("outbox full: {results_bytes} bytes of results pending, {item_bytes} more would exceed {max_bytes}")]
    Full {
        results_bytes: u64,
        item_bytes: u64,
        max_bytes: u64,
    },
    #[error("outbox item encoding: {0}")]
    Encode(#[from] serde_json::Error),
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
    pub max_health_samples: usize,
    /// Budget for the item files together, results and health samples.
    pub max_bytes: u64,
}

/// The stable id of an outbox item; larger ids were pushed later.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ItemId(u64);

impl ItemId {
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ItemId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{:020}", self.0)
    }
}

/// One rendered frame of a completed chunk (mirrors `pb::FrameOutput`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FrameOutputRecord {
    pub frame: i32,
    pub path: String,
    pub size_bytes: i64,
    pub blake3_hex: String,
}

/// A chunk rendered to completion, waiting to be reported (mirrors `pb::CompletedChunk`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChunkCompletion {
    pub frame_job_id: String,
    pub lease_token: i64,
    pub outputs: Vec<FrameOutputRecord>,
    pub render_seconds: f64,
}

impl ChunkCompletion {
    pub fn to_pb(&self) -> pb::CompletedChunk {
        pb::CompletedChunk {
            frame_job_id: self.frame_job_id.clone(),
            lease_token: self.lease_token,
            outputs: self
                .outputs
                .iter()
                .map(|output| pb::FrameOutput {
                    frame: output.frame,
                    path: output.path.clone(),
                    size_bytes: output.size_bytes,
                    blake3_hex: output.blake3_hex.clone(),
                })
                .collect(),
            render_seconds: self.render_seconds,
        }
    }
}

impl From<pb::CompletedChunk> for ChunkCompletion {
    fn from(chunk: pb::CompletedChunk) -> Self {
        ChunkCompletion {
            frame_job_id: chunk.frame_job_id,
            lease_token: chunk.lease_token,
            outputs: chunk
                .outputs
                .into_iter()
                .map(|output| FrameOutputRecord {
                    frame: output.frame,
                    path: output.path,
                    size_bytes: output.size_bytes,
                    blake3_hex: output.blake3_hex,
                })
                .collect(),
            render_seconds: chunk.render_seconds,
        }
    }
}

/// A chunk that failed, waiting to be reported (mirrors `pb::FailWorkRequest`; the enums are
/// kept as their wire numbers, `pb::CrashClass` and `pb::RecoveryAction`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChunkFailure {
    pub frame_job_id: String,
    pub lease_token: i64,
    pub crash_class: i32,
    pub error_class: String,
    pub exit_code: Option<i32>,
    pub log_tail: String,
    pub message: String,
    pub frames_written: Vec<i32>,
    pub recovery_action: i32,
}

impl ChunkFailure {
    pub fn to_pb(&self) -> pb::FailWorkRequest {
        pb::FailWorkRequest {
            frame_job_id: self.frame_job_id.clone(),
            lease_token: self.lease_token,
            crash_class: self.crash_class,
            error_class: self.error_class.clone(),
            exit_code: self.exit_code,
            log_tail: self.log_tail.clone(),
            message: self.message.clone(),
            frames_written: self.frames_written.clone(),
            recovery_action: self.recovery_action,
        }
    }
}

impl From<pb::FailWorkRequest> for ChunkFailure {
    fn from(request: pb::FailWorkRequest) -> Self {
        ChunkFailure {
            frame_job_id: request.frame_job_id,
            lease_token: request.lease_token,
            crash_class: request.crash_class,
            error_class: request.error_class,
            exit_code: request.exit_code,
            log_tail: request.log_tail,
            message: request.message,
            frames_written: request.frames_written,
            recovery_action: request.recovery_action,
        }
    }
}

/// Something waiting for delivery to the control plane.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OutboxItem {
    Completion(ChunkCompletion),
    Failure(ChunkFailure),
    Health(HealthSample),
}

impl OutboxItem {
    /// The `<kind>` part of the item's file name.
    fn kind(&self) -> &'static str {
        match self {
            OutboxItem::Completion(_) => "completion",
            OutboxItem::Failure(_) => "failure",
            OutboxItem::Health(_) => "health",
        }
    }

    /// Whether this is a chunk result (never dropped) rather than a health sample.
    pub fn is_result(&self) -> bool {
        !matches!(self, OutboxItem::Health(_))
    }
}

#[derive(Serialize, Deserialize)]
struct ItemFile {
    format_version: u32,
    id: ItemId,
    item: OutboxItem,
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
}

/// The durable outbox. Cheap to clone; clones share the folder and the index.
#[derive(Clone)]
pub struct Outbox {
    shared: Arc<OutboxShared>,
}

struct OutboxShared {
    dir: PathBuf,
    limits: OutboxLimits,
    state: Mutex<OutboxState>,
}

impl Outbox {
    /// Opens (creating if needed) the outbox in `dir` and restores the pending items in order.
    pub fn open(dir: PathBuf, limits: OutboxLimits) -> OutboxResult<Outbox> {
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
        let outbox = Outbox {
            shared: Arc::new(OutboxShared {
                dir,
                limits,
                state: Mutex::new(state),
            }),
        };
        {
            let mut state = outbox.lock_state();
            let num_dropped = outbox.drop_health_until_within(&mut state, 0, 0);
            changed_dir |= num_dropped > 0;
            info!(
                num_results = state.items.len() - state.num_health,
                num_health = state.num_health,
                bytes = state.results_bytes + state.health_bytes,
                "outbox opened"
            );
        }
        if changed_dir {
            sync_dir(&outbox.shared.dir)?;
        }
        Ok(outbox)
    }

    fn lock_state(&self) -> MutexGuard<'_, OutboxState> {
        // Every update of the index is completed before the guard drops; keep going after a panic.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The folder holding the item files.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Stores `item` durably and returns its id. A result that does not fit the byte budget is
    /// refused with [`OutboxError::Full`]. Older health samples make room for a new item; a
    /// health sample that cannot fit even then is dropped itself (its id is then never pending).
    pub fn push(&self, item: OutboxItem) -> OutboxResult<ItemId> {
        let mut state = self.lock_state();
        let id = ItemId(state.next_id);
        let file_contents = encode_item_file(id, &item)?;
        let item_bytes = file_contents.len() as u64;
        let max_bytes = self.shared.limits.max_bytes;
        if item.is_result() {
            state.largest_result_bytes = state.largest_result_bytes.max(item_bytes);
            if state.results_bytes + item_bytes > max_bytes {
                return Err(OutboxError::Full {
                    results_bytes: state.results_bytes,
                    item_bytes,
                    max_bytes,
                });
            }
            self.drop_health_until_within(&mut state, item_bytes, 0);
        } else {
            self.drop_health_until_within(&mut state, item_bytes, 1);
            let fits_bytes = state.results_bytes + state.health_bytes + item_bytes <= max_bytes;
            if !fits_bytes || state.num_health >= self.shared.limits.max_health_samples {
                state.next_id += 1;
                state.num_health_dropped += 1;
                debug!(item_id = %id, "outbox has no room for a health sample, dropped it");
                return Ok(id);
            }
        }
        let final_path = self.item_path(id, &item);
        write_durably(&self.shared.dir, &final_path, &file_contents)?;
        state.next_id += 1;
        state.insert(
            id,
            StoredItem {
                item,
                file_bytes: item_bytes,
            },
        );
        Ok(id)
    }

    /// Drops the oldest health samples until `extra_bytes` more fit the byte budget and
    /// `extra_health` more fit the sample limit, or no health sample is left. Returns how many.
    fn drop_health_until_within(&self, state: &mut OutboxState, extra_bytes: u64, extra_health: usize) -> usize {
        let limits = self.shared.limits;
        let mut num_dropped = 0;
        while state.results_bytes + state.health_bytes + extra_bytes > limits.max_bytes
            || state.num_health + extra_health > limits.max_health_samples
        {
            let Some(oldest_health_id) = state.oldest_health_id() else {
                break;
            };
            if let Some(stored_item) = state.remove(oldest_health_id) {
                let path = self.item_path(oldest_health_id, &stored_item.item);
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                    Err(error) => warn!(path = %path.display(), %error, "could not delete dropped health sample"),
                }
            }
            state.num_health_dropped += 1;
            num_dropped += 1;
        }
        if num_dropped > 0 {
            debug!(num_dropped, "dropped oldest health samples from the outbox");
        }
        num_dropped
    }

    /// Removes a delivered item durably. Acknowledging an unknown id does nothing.
    pub fn ack(&self, id: ItemId) -> OutboxResult<()> {
        let mut state = self.lock_state();
        let Some(stored_item) = state.items.get(&id) else {
            return Ok(());
        };
        let path = self.item_path(id, &stored_item.item);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(OutboxError::Io { path, source: error }),
        }
        state.remove(id);
        drop(state);
        sync_dir(&self.shared.dir)
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

    pub fn len(&self) -> usize {
        self.lock_state().items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock_state().items.is_empty()
    }

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

    /// [`Outbox::push`] on a blocking thread.
    pub async fn push_async(&self, item: OutboxItem) -> OutboxResult<ItemId> {
        let outbox = self.clone();
        run_blocking(move || outbox.push(item)).await
    }

    /// [`Outbox::ack`] on a blocking thread.
    pub async fn ack_async(&self, id: ItemId) -> OutboxResult<()> {
        let outbox = self.clone();
        run_blocking(move || outbox.ack(id)).await
    }

    fn item_path(&self, id: ItemId, item: &OutboxItem) -> PathBuf {
        self.shared.dir.join(format!("{id}.{}{ITEM_SUFFIX}", item.kind()))
    }
}

async fn run_blocking<T, F>(blocking_work: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let span = tracing::Span::current();
    match tokio::task::spawn_blocking(move || span.in_scope(blocking_work)).await {
        Ok(value) => value,
        Err(join_error) => match join_error.try_into_panic() {
            Ok(panic_payload) => std::panic::resume_unwind(panic_payload),
            Err(cancelled) => panic!("outbox io cancelled: {cancelled}"),
        },
    }
}

fn encode_item_file(id: ItemId, item: &OutboxItem) -> OutboxResult<Vec<u8>> {
    #[derive(Serialize)]
    struct ItemFileRef<'a> {
        format_version: u32,
        id: ItemId,
        item: &'a OutboxItem,
    }
    let mut contents = serde_json::to_vec(&ItemFileRef {
        format_version: FORMAT_VERSION,
        id,
        item,
    })?;
    contents.push(b'\n');
    Ok(contents)
}

/// Parses an item file, checking it against its name. The error says why it was rejected.
fn decode_item_file(bytes: &[u8], expected_id: ItemId, expected_kind: &str) -> Result<OutboxItem, String> {
    let item_file: ItemFile = serde_json::from_slice(bytes).map_err(|error| error.to_string())?;
    if item_file.format_version != FORMAT_VERSION {
        return Err(format!("unknown format_version {}", item_file.format_version));
    }
    if item_file.id != expected_id || item_file.item.kind() != expected_kind {
        return Err(format!(
            "contents are item {} ({}), not the one named",
            item_file.id,
            item_file.item.kind()
        ));
    }
    Ok(item_file.item)
}

/// The id at the start of any outbox file name (item, temporary or corrupt).
fn parse_leading_id(file_name: &str) -> Option<ItemId> {
    let digits = file_name.get(..20)?;
    if !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(ItemId)
}

/// `<20 digits>.<kind>.json` → (id, kind).
fn parse_item_file_name(file_name: &str) -> Option<(ItemId, &str)> {
    let id = parse_leading_id(file_name)?;
    let kind = file_name.get(20..)?.strip_prefix('.')?.strip_suffix(ITEM_SUFFIX)?;
    matches!(kind, "completion" | "failure" | "health").then_some((id, kind))
}

/// Writes `contents` to `<final_path>.tmp`, fsyncs, renames into place and fsyncs the folder.
fn write_durably(dir: &Path, final_path: &Path, contents: &[u8]) -> OutboxResult<()> {
    let mut temp_name = final_path.file_name().unwrap_or_default().to_os_string();
    temp_name.push(TEMP_SUFFIX);
    let temp_path = final_path.with_file_name(temp_name);
    let write_result = (|| {
        let mut temp_file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp_path)?;
        temp_file.write_all(contents)?;
        temp_file.sync_all()
    })();
    if let Err(source) = write_result {
        let _ = fs::remove_file(&temp_path);
        return Err(OutboxError::Io {
            path: temp_path,
            source,
        });
    }
    if let Err(source) = fs::rename(&temp_path, final_path) {
        let _ = fs::remove_file(&temp_path);
        return Err(OutboxError::Io {
            path: final_path.to_path_buf(),
            source,
        });
    }
    sync_dir(dir)
}

/// Makes renames and deletions in `dir` durable. Windows cannot open a folder as a file; NTFS
/// journals the rename itself.
fn sync_dir(dir: &Path) -> OutboxResult<()> {
    if cfg!(windows) {
        return Ok(());
    }
    File::open(dir)
        .and_then(|dir_handle| dir_handle.sync_all())
        .map_err(io_error(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Item file names parse back to their id and kind; anything else is rejected.
    #[test]
    fn item_file_names_round_trip() {
        let file_name = format!("{}.failure.json", ItemId(42));
        assert_eq!(file_name, "00000000000000000042.failure.json");
        assert_eq!(parse_item_file_name(&file_name), Some((ItemId(42), "failure")));
        assert_eq!(parse_item_file_name("00000000000000000042.failure.json.tmp"), None);
        assert_eq!(parse_item_file_name("00000000000000000042.other.json"), None);
        assert_eq!(parse_item_file_name("0000000000000000004x.health.json"), None);
        assert_eq!(
            parse_leading_id("00000000000000000007.health.json.corrupt"),
            Some(ItemId(7))
        );
    }

    /// A file whose contents name another id or kind than its file name is rejected.
    #[test]
    fn mismatched_contents_are_rejected() {
        let item = OutboxItem::Failure(ChunkFailure::default());
        let contents = encode_item_file(ItemId(3), &item).unwrap();
        assert_eq!(decode_item_file(&contents, ItemId(3), "failure"), Ok(item));
        assert!(decode_item_file(&contents, ItemId(4), "failure").is_err());
        assert!(decode_item_file(&contents, ItemId(3), "completion").is_err());
        assert!(decode_item_file(&contents[..contents.len() / 2], ItemId(3), "failure").is_err());
    }
}
