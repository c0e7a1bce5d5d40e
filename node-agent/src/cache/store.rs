//! The cache folder on disk: entry layout, reading and writing the manifest, the persisted LRU
//! index, installing a verified download atomically, verifying entries, and the start-up scan.
//!
//! ```text
//! <dir>/index.json               LRU order (least recent first), hits, last use; advisory
//! <dir>/<hex>/entry.json         manifest: kind, project, template id/version, files + BLAKE3
//! <dir>/<hex>/project.aep        a plain project download, or
//! <dir>/<hex>/bundle/...         the extracted zip bundle, or
//! <dir>/<hex>/asset.<ext>        one asset file (the asset cache), with its extension
//! <dir>/.tmp-<uuid>              downloads, staging folders, evicted folders awaiting deletion
//! ```
//!
//! Every function here is blocking and runs inside `spawn_blocking`; the async shell is in
//! `cache/mod.rs`.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use flatrender_proto::types::{ContentHash, TemplateId};

use super::CacheContent;
use super::bundle;
use super::error::{CacheError, CacheResult};
use super::manifest::{EntryKind, EntryManifest, MANIFEST_FORMAT, ManifestFile, join_relative};

/// Prefix of every temporary file or folder; all of them are garbage at start-up.
pub(crate) const TEMP_PREFIX: &str = ".tmp-";
const INDEX_FILE_NAME: &str = "index.json";
const MANIFEST_FILE_NAME: &str = "entry.json";
const PLAIN_PROJECT_NAME: &str = "project.aep";
pub(crate) const BUNDLE_DIR_NAME: &str = "bundle";
const ASSET_FILE_STEM: &str = "asset";
/// Longest extension kept on an asset file (`.jpeg`, `.webm`; anything longer is dropped).
const MAX_ASSET_EXTENSION_CHARS: usize = 16;
/// Format of `index.json` (the manifest has its own, `manifest::MANIFEST_FORMAT`).
const FORMAT_VERSION: u32 = 1;

/// `index.json`: what cannot be rebuilt from the entry folders (order, hits, last use).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IndexFile {
    pub(crate) format: u32,
    /// Least recently used first.
    pub(crate) entries: Vec<IndexFileEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IndexFileEntry {
    pub(crate) hash: String,
    pub(crate) template_id: Option<TemplateId>,
    pub(crate) template_version: i32,
    pub(crate) size_bytes: u64,
    pub(crate) hits: u64,
    pub(crate) last_used_at: DateTime<Utc>,
}

impl IndexFile {
    pub(crate) fn new(entries: Vec<IndexFileEntry>) -> Self {
        Self {
            format: FORMAT_VERSION,
            entries,
        }
    }
}

/// A fresh temporary name inside the cache folder.
pub(crate) fn new_temp_path(dir: &Path) -> PathBuf {
    dir.join(format!("{TEMP_PREFIX}{}", uuid::Uuid::new_v4().simple()))
}

/// The folder of an installed entry.
pub(crate) fn entry_dir(dir: &Path, hash: &ContentHash) -> PathBuf {
    dir.join(hash.to_hex())
}

/// Removes a file or folder; a missing one is fine.
pub(crate) fn remove_path(path: &Path) -> std::io::Result<()> {
    let result = match std::fs::symlink_metadata(path) {
        Ok(metadata) if metadata.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(error) => Err(error),
    };
    match result {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

/// Renames an entry folder to a temporary name, so the entry disappears atomically and the
/// slow deletion can happen later; returns the new name, or `None` if there was no folder.
pub(crate) fn move_to_trash(dir: &Path, hash: &ContentHash) -> std::io::Result<Option<PathBuf>> {
    let trash_path = new_temp_path(dir);
    match std::fs::rename(entry_dir(dir, hash), &trash_path) {
        Ok(()) => Ok(Some(trash_path)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// BLAKE3 and length of a file.
pub(crate) fn hash_file(path: &Path) -> std::io::Result<(ContentHash, u64)> {
    let mut file = File::open(path)?;
    let mut hasher = blake3::Hasher::new();
    let mut buffer = vec![0u8; 256 * 1024];
    let mut size_bytes = 0u64;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        size_bytes += read as u64;
    }
    Ok((ContentHash::from_bytes(*hasher.finalize().as_bytes()), size_bytes))
}

/// What to install: a download already verified against `hash`.
pub(crate) struct InstallRequest<'a> {
    pub(crate) dir: &'a Path,
    /// What the cache holds: a template is a project or a bundle to extract, an asset one file.
    pub(crate) content: CacheContent,
    /// An asset's file name as the request gave it (its extension is kept).
    pub(crate) file_name: Option<&'a str>,
    pub(crate) hash: ContentHash,
    pub(crate) template_id: Option<TemplateId>,
    pub(crate) template_version: i32,
    pub(crate) downloaded_path: &'a Path,
    pub(crate) now: DateTime<Utc>,
}

/// Installs a verified download: builds the entry in a staging folder (moving a plain project in,
/// or extracting a bundle), writes the manifest, then renames the folder to `<hex>`. The
/// downloaded file is consumed; nothing is left behind on failure.
pub(crate) fn install(request: &InstallRequest<'_>) -> CacheResult<EntryManifest> {
    let staging_dir = new_temp_path(request.dir);
    let result = install_into(request, &staging_dir);
    if let Err(error) = remove_path(request.downloaded_path) {
        warn!(path = %request.downloaded_path.display(), %error, "could not remove downloaded file");
    }
    if result.is_err() {
        if let Err(error) = remove_path(&staging_dir) {
            warn!(path = %staging_dir.display(), %error, "could not remove staging folder");
        }
    }
    result
}

fn install_into(request: &InstallRequest<'_>, staging_dir: &Path) -> CacheResult<EntryManifest> {
    let hash = request.hash;
    std::fs::create_dir(staging_dir).map_err(|error| CacheError::io(staging_dir, error))?;
    // Assets are never extracted: a zip the user uploads is just a file to AE.
    let is_zip = request.content == CacheContent::Templates
        && bundle::is_zip_file(request.downloaded_path)
            .map_err(|error| CacheError::io(request.downloaded_path, error))?;
    let (kind, project, files) = if request.content == CacheContent::Assets {
        let name = asset_file_name(request.file_name);
        let file = move_single_file(request, staging_dir, &name)?;
        (EntryKind::Asset, name, vec![file])
    } else if is_zip {
        let bundle_dir = staging_dir.join(BUNDLE_DIR_NAME);
        std::fs::create_dir(&bundle_dir).map_err(|error| CacheError::io(&bundle_dir, error))?;
        let extracted = bundle::extract(hash, request.downloaded_path, &bundle_dir)?;
        let relative_paths: Vec<&str> = extracted.iter().map(|file| file.path.as_str()).collect();
        let project_in_bundle = bundle::find_project(hash, &relative_paths)?;
        let files = extracted
            .into_iter()
            .map(|file| ManifestFile {
                path: format!("{BUNDLE_DIR_NAME}/{}", file.path),
                ..file
            })
            .collect();
        (
            EntryKind::Bundle,
            format!("{BUNDLE_DIR_NAME}/{project_in_bundle}"),
            files,
        )
    } else {
        let file = move_single_file(request, staging_dir, PLAIN_PROJECT_NAME)?;
        (EntryKind::Project, PLAIN_PROJECT_NAME.to_owned(), vec![file])
    };
    let manifest = EntryManifest {
        format: MANIFEST_FORMAT,
        hash: hash.to_hex(),
        kind,
        project,
        template_id: request.template_id,
        template_version: request.template_version,
        installed_at: request.now,
        files,
    };
    write_json(&staging_dir.join(MANIFEST_FILE_NAME), &manifest)?;
    let final_dir = entry_dir(request.dir, &hash);
    // Not in the index (the caller checked under its lock), so anything here is a stale leftover.
    remove_path(&final_dir).map_err(|error| CacheError::io(&final_dir, error))?;
    std::fs::rename(staging_dir, &final_dir).map_err(|error| CacheError::io(&final_dir, error))?;
    Ok(manifest)
}

/// Moves the verified download into the staging folder as `name`: the entry's one file.
fn move_single_file(request: &InstallRequest<'_>, staging_dir: &Path, name: &str) -> CacheResult<ManifestFile> {
    let path = staging_dir.join(name);
    std::fs::rename(request.downloaded_path, &path).map_err(|error| CacheError::io(&path, error))?;
    let size_bytes = std::fs::metadata(&path)
        .map_err(|error| CacheError::io(&path, error))?
        .len();
    Ok(ManifestFile {
        path: name.to_owned(),
        size_bytes,
        blake3: request.hash.to_hex(),
    })
}

/// `asset.<ext>` with the extension of the request's file name when it is plain (ASCII letters
/// and digits, at most 16), else `asset`. The name on disk never comes from the request as is.
fn asset_file_name(file_name: Option<&str>) -> String {
    let extension = file_name
        .and_then(|name| name.rsplit_once('.'))
        .map(|(_, extension)| extension)
        .filter(|extension| {
            !extension.is_empty()
                && extension.len() <= MAX_ASSET_EXTENSION_CHARS
                && extension.chars().all(|c| c.is_ascii_alphanumeric())
        });
    match extension {
        Some(extension) => format!("{ASSET_FILE_STEM}.{extension}"),
        None => ASSET_FILE_STEM.to_owned(),
    }
}

/// Result of re-hashing an entry.
#[derive(Debug)]
pub(crate) enum Verification {
    Valid(EntryManifest),
    Invalid(String),
}

/// Re-reads the manifest of `<hex>` and re-hashes every file it lists.
pub(crate) fn verify_entry(dir: &Path, hash: &ContentHash) -> Verification {
    let entry_path = entry_dir(dir, hash);
    let manifest_path = entry_path.join(MANIFEST_FILE_NAME);
    let manifest: EntryManifest = match std::fs::read(&manifest_path)
        .map_err(|error| error.to_string())
        .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|error| error.to_string()))
    {
        Ok(manifest) => manifest,
        Err(reason) => return Verification::Invalid(format!("unreadable manifest: {reason}")),
    };
    if let Err(reason) = manifest.check(hash) {
        return Verification::Invalid(reason);
    }
    for file in &manifest.files {
        let file_path = join_relative(&entry_path, &file.path);
        match hash_file(&file_path) {
            Ok((digest, size_bytes)) if size_bytes == file.size_bytes && digest.to_hex() == file.blake3 => {}
            Ok((digest, size_bytes)) => {
                return Verification::Invalid(format!(
                    "{} changed: {size_bytes} bytes with hash {digest}, expected {} bytes with hash {}",
                    file.path, file.size_bytes, file.blake3
                ));
            }
            Err(error) => return Verification::Invalid(format!("{} unreadable: {error}", file.path)),
        }
    }
    Verification::Valid(manifest)
}

/// What the start-up scan found.
#[derive(Debug, Default)]
pub(crate) struct ScanOutcome {
    /// Verified entries, in no particular order.
    pub(crate) entries: Vec<(ContentHash, EntryManifest)>,
    pub(crate) num_temp_removed: usize,
    pub(crate) num_invalid_removed: usize,
}

/// Start-up: removes leftover temporary files and folders, verifies every entry folder (full
/// re-hash) and deletes those that fail or hold the other cache's content (an asset in the
/// template cache or the reverse). Unknown names are left alone.
pub(crate) fn scan(dir: &Path, content: CacheContent) -> CacheResult<ScanOutcome> {
    let mut outcome = ScanOutcome::default();
    let read_dir = std::fs::read_dir(dir).map_err(|error| CacheError::io(dir, error))?;
    for dir_entry in read_dir {
        let dir_entry = dir_entry.map_err(|error| CacheError::io(dir, error))?;
        let name = dir_entry.file_name().to_string_lossy().into_owned();
        let path = dir_entry.path();
        if name.starts_with(TEMP_PREFIX) {
            remove_path(&path).map_err(|error| CacheError::io(&path, error))?;
            outcome.num_temp_removed += 1;
            debug!(path = %path.display(), "removed leftover temporary file");
            continue;
        }
        let Ok(hash) = ContentHash::parse_hex(&name, "cache entry") else {
            continue;
        };
        if name != hash.to_hex() || !path.is_dir() {
            continue;
        }
        let verification = match verify_entry(dir, &hash) {
            Verification::Valid(manifest) if content.holds(manifest.kind) => Verification::Valid(manifest),
            Verification::Valid(manifest) => Verification::Invalid(format!(
                "a {:?} entry does not belong in the {content} cache",
                manifest.kind
            )),
            invalid => invalid,
        };
        match verification {
            Verification::Valid(manifest) => outcome.entries.push((hash, manifest)),
            Verification::Invalid(reason) => {
                warn!(template_hash = %hash, %reason, "removing unverifiable cache entry");
                remove_path(&path).map_err(|error| CacheError::io(&path, error))?;
                outcome.num_invalid_removed += 1;
            }
        }
    }
    Ok(outcome)
}

/// Reads `index.json`; a missing or unreadable file is `None` (the scan rebuilds the order).
pub(crate) fn read_index_file(dir: &Path) -> Option<IndexFile> {
    let path = dir.join(INDEX_FILE_NAME);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
        Err(error) => {
            warn!(path = %path.display(), %error, "cannot read cache index, rebuilding from entries");
            return None;
        }
    };
    match serde_json::from_slice::<IndexFile>(&bytes) {
        Ok(index_file) if index_file.format == FORMAT_VERSION => Some(index_file),
        Ok(index_file) => {
            warn!(
                format = index_file.format,
                "unknown cache index format, rebuilding from entries"
            );
            None
        }
        Err(error) => {
            warn!(path = %path.display(), %error, "corrupt cache index, rebuilding from entries");
            None
        }
    }
}

/// Writes `index.json` atomically (temporary name, then rename).
pub(crate) fn write_index_file(dir: &Path, index_file: &IndexFile) -> CacheResult<()> {
    let temp_path = new_temp_path(dir);
    write_json(&temp_path, index_file)?;
    let path = dir.join(INDEX_FILE_NAME);
    std::fs::rename(&temp_path, &path).map_err(|error| {
        let _ = remove_path(&temp_path);
        CacheError::io(&path, error)
    })
}

fn write_json(path: &Path, value: &impl Serialize) -> CacheResult<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|error| CacheError::io(path, std::io::Error::other(error)))?;
    std::fs::write(path, bytes).map_err(|error| CacheError::io(path, error))
}

#[cfg(test)]
mod tests;
