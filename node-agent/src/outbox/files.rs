//! The outbox's files: one JSON file per item, `<id, 20 digits>.<kind>.json`, holding
//! `{"format_version":1,"id":<id>,"item":{"kind":...,<fields>}}`, written durably (temporary
//! file, fsync, rename, fsync of the folder). Blocking IO: called on blocking threads only.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{ItemId, OutboxError, OutboxItem, OutboxResult, io_error};

/// Version of the item file envelope.
const FORMAT_VERSION: u32 = 1;
pub(super) const ITEM_SUFFIX: &str = ".json";
pub(super) const TEMP_SUFFIX: &str = ".tmp";
pub(super) const CORRUPT_SUFFIX: &str = ".corrupt";

#[derive(Serialize, Deserialize)]
struct ItemFile {
    format_version: u32,
    id: ItemId,
    item: OutboxItem,
}

pub(super) fn encode_item_file(id: ItemId, item: &OutboxItem) -> OutboxResult<Vec<u8>> {
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
pub(super) fn decode_item_file(bytes: &[u8], expected_id: ItemId, expected_kind: &str) -> Result<OutboxItem, String> {
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
pub(super) fn parse_leading_id(file_name: &str) -> Option<ItemId> {
    let digits = file_name.get(..20)?;
    if !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(ItemId)
}

/// `<20 digits>.<kind>.json` → (id, kind).
pub(super) fn parse_item_file_name(file_name: &str) -> Option<(ItemId, &str)> {
    let id = parse_leading_id(file_name)?;
    let kind = file_name.get(20..)?.strip_prefix('.')?.strip_suffix(ITEM_SUFFIX)?;
    matches!(kind, "completion" | "failure" | "health").then_some((id, kind))
}

/// Writes `contents` to `<final_path>.tmp`, fsyncs, renames into place and fsyncs the folder.
pub(super) fn write_durably(dir: &Path, final_path: &Path, contents: &[u8]) -> OutboxResult<()> {
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
pub(super) fn sync_dir(dir: &Path) -> OutboxResult<()> {
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
    use crate::outbox::ChunkFailure;

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
