//! The folder store: exports under `<root>/<tenant id>/<job id>/<file name>`, usually on the
//! farm's shared storage. A store copies to a temporary name beside the final one, fsyncs, and
//! publishes with a hard link, which never replaces an existing file; when the name is taken, the
//! file there was published whole by an earlier attempt and is adopted (see the module doc of
//! `export` for the race this settles).
//!
//! The file work is blocking and runs on `spawn_blocking`; a cancellation token, cancelled also
//! when the async caller is dropped, stops the copy between chunks.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::path::{Component, Path, PathBuf};

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use flatrender_proto::types::ContentHash;

use super::{ExportError, ExportKey, StoredExport};

/// Bytes read per chunk when copying or hashing; cancellation is checked between chunks.
const CHUNK_BYTES: usize = 1 << 20;

/// Suffix of temporary files (the prefix is `.`, which export file names never start with).
const TEMP_SUFFIX: &str = ".partial";

/// Longest part of the file name kept in a temporary name (the rest is a uuid and the suffix, so
/// the whole stays under 255 bytes).
const TEMP_NAME_STEM_BYTES: usize = 200;

/// Exports in a folder.
#[derive(Clone, Debug)]
pub struct FolderStore {
    /// Absolute, UTF-8.
    root: PathBuf,
}

impl FolderStore {
    /// A store rooted at `root` (made absolute against the current directory); the folders are
    /// created when the first export is stored.
    pub fn new(root: &Path) -> Result<Self, ExportError> {
        let config_error = |message: String| ExportError::Config {
            key: "export.folder",
            message,
        };
        if root.as_os_str().is_empty() {
            return Err(config_error("is empty".into()));
        }
        let absolute = std::path::absolute(root)
            .map_err(|error| config_error(format!("cannot make {} absolute: {error}", root.display())))?;
        if absolute.to_str().is_none() {
            return Err(config_error(format!(
                "{} is not valid UTF-8 (locations are recorded as text)",
                absolute.display()
            )));
        }
        Ok(Self { root: absolute })
    }

    /// The store's root folder (absolute).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where `key`'s file is published.
    pub fn final_path(&self, key: &ExportKey) -> PathBuf {
        let mut path = self.root.clone();
        path.extend(key.segments());
        path
    }

    /// Stores `file` under `key`, or adopts the file an earlier attempt published there.
    pub async fn store(
        &self,
        file: &Path,
        key: &ExportKey,
        checksum: &ContentHash,
        size_bytes: u64,
        cancel: &CancellationToken,
    ) -> Result<StoredExport, ExportError> {
        let final_path = self.final_path(key);
        let location = final_path.display().to_string();
        let work_cancel = cancel.child_token();
        // Dropping this future (not only cancelling `cancel`) stops the blocking copy too, so a
        // store nobody waits for does not publish later.
        let drop_guard = work_cancel.clone().drop_guard();
        let publish = Publish {
            source: file.to_owned(),
            final_path,
            checksum: *checksum,
            size_bytes,
            cancel: work_cancel,
        };
        let span = tracing::Span::current();
        let joined = tokio::task::spawn_blocking(move || span.in_scope(|| publish.run())).await;
        drop_guard.disarm();
        joined.map_err(|error| ExportError::Io {
            location,
            action: "run the store task",
            source: std::io::Error::other(error.to_string()),
        })?
    }

    /// Removes the export at `location` (a path this store returned); already gone is fine.
    pub async fn discard(&self, location: &str) -> Result<(), ExportError> {
        let path = self.export_path(location)?;
        let joined = tokio::task::spawn_blocking(move || match std::fs::remove_file(&path) {
            Ok(()) => {
                info!(location = %path.display(), "export discarded");
                Ok(())
            }
            Err(error) if error.kind() == ErrorKind::NotFound => {
                debug!(location = %path.display(), "export already gone");
                Ok(())
            }
            Err(error) => Err(ExportError::io(&path, "remove the export", error)),
        })
        .await;
        joined.map_err(|error| ExportError::Io {
            location: location.to_owned(),
            action: "run the discard task",
            source: std::io::Error::other(error.to_string()),
        })?
    }

    /// `location` as a path, if it is an export of this store: `<root>/<a>/<b>/<c>`, no `..`.
    fn export_path(&self, location: &str) -> Result<PathBuf, ExportError> {
        let path = PathBuf::from(location);
        let inside = path.strip_prefix(&self.root).ok().filter(|relative| {
            relative.components().count() == 3
                && relative
                    .components()
                    .all(|component| matches!(component, Component::Normal(_)))
        });
        match inside {
            Some(_) => Ok(path),
            None => Err(ExportError::Unexpected {
                location: location.to_owned(),
                message: format!("not an export of the store at {}", self.root.display()),
            }),
        }
    }
}

/// One store, run on a blocking thread.
struct Publish {
    source: PathBuf,
    final_path: PathBuf,
    checksum: ContentHash,
    size_bytes: u64,
    cancel: CancellationToken,
}

impl Publish {
    fn run(&self) -> Result<StoredExport, ExportError> {
        let cancelled = || ExportError::Cancelled {
            location: self.final_path.display().to_string(),
        };
        if self.cancel.is_cancelled() {
            return Err(cancelled());
        }
        let (folder, file_name) = match (self.final_path.parent(), self.final_path.file_name()) {
            (Some(folder), Some(file_name)) => (folder, file_name.to_string_lossy()),
            _ => {
                return Err(ExportError::Unexpected {
                    location: self.final_path.display().to_string(),
                    message: "has no folder or file name".into(),
                });
            }
        };
        std::fs::create_dir_all(folder).map_err(|error| ExportError::io(folder, "create the folder", error))?;
        let temp = TempFile::new(folder, &file_name);
        if !self.copy_verified(&temp.path)? {
            return Err(cancelled());
        }
        match std::fs::hard_link(&temp.path, &self.final_path) {
            Ok(()) => {
                sync_folder(folder);
                Ok(self.published())
            }
            Err(error) if error.kind() == ErrorKind::AlreadyExists => self.adopt(),
            Err(error) if links_unsupported(&error) => {
                debug!(location = %self.final_path.display(), %error, "no hard links here, publishing by rename");
                self.rename_if_absent(&temp.path, folder)
            }
            Err(error) => Err(ExportError::io(&self.final_path, "publish the export", error)),
        }
    }

    /// Copies the source to `temp`, hashing as it goes, and fsyncs it; `false` when cancelled.
    /// The source must have exactly the caller's size and BLAKE3.
    fn copy_verified(&self, temp: &Path) -> Result<bool, ExportError> {
        let mut source = File::open(&self.source).map_err(|error| ExportError::io(&self.source, "open", error))?;
        let mut target = File::options()
            .write(true)
            .create_new(true)
            .open(temp)
            .map_err(|error| ExportError::io(temp, "create", error))?;
        let mut hasher = blake3::Hasher::new();
        let mut buffer = vec![0_u8; CHUNK_BYTES];
        let mut num_bytes = 0_u64;
        loop {
            if self.cancel.is_cancelled() {
                return Ok(false);
            }
            let read = source
                .read(&mut buffer)
                .map_err(|error| ExportError::io(&self.source, "read", error))?;
            if read == 0 {
                break;
            }
            target
                .write_all(&buffer[..read])
                .map_err(|error| ExportError::io(temp, "write", error))?;
            hasher.update(&buffer[..read]);
            num_bytes = num_bytes.saturating_add(read as u64);
        }
        let actual = ContentHash::from_bytes(*hasher.finalize().as_bytes());
        if num_bytes != self.size_bytes || actual != self.checksum {
            return Err(ExportError::SourceMismatch {
                location: self.source.display().to_string(),
                message: format!(
                    "expected {} bytes with BLAKE3 {}, read {num_bytes} bytes with BLAKE3 {actual}",
                    self.size_bytes, self.checksum
                ),
            });
        }
        target
            .sync_all()
            .map_err(|error| ExportError::io(temp, "fsync", error))?;
        Ok(!self.cancel.is_cancelled())
    }

    /// The fallback without hard links: rename only when the final name is free. Two attempts
    /// can both find it free and both rename; the later then replaces the earlier's whole file.
    fn rename_if_absent(&self, temp: &Path, folder: &Path) -> Result<StoredExport, ExportError> {
        match std::fs::symlink_metadata(&self.final_path) {
            Ok(_) => self.adopt(),
            Err(error) if error.kind() == ErrorKind::NotFound => {
                std::fs::rename(temp, &self.final_path)
                    .map_err(|error| ExportError::io(&self.final_path, "publish the export", error))?;
                sync_folder(folder);
                Ok(self.published())
            }
            Err(error) => Err(ExportError::io(&self.final_path, "look at the export", error)),
        }
    }

    fn published(&self) -> StoredExport {
        info!(location = %self.final_path.display(), size_bytes = self.size_bytes, "export stored");
        StoredExport {
            location: self.final_path.display().to_string(),
            size_bytes: self.size_bytes,
            checksum: self.checksum,
            adopted: false,
        }
    }

    /// The final name exists: an earlier attempt published it whole. Keep it and report its own
    /// size and BLAKE3.
    fn adopt(&self) -> Result<StoredExport, ExportError> {
        let metadata = std::fs::metadata(&self.final_path)
            .map_err(|error| ExportError::io(&self.final_path, "look at the existing export", error))?;
        if !metadata.is_file() {
            return Err(ExportError::Unexpected {
                location: self.final_path.display().to_string(),
                message: "is taken by something that is not a file".into(),
            });
        }
        let (checksum, size_bytes) =
            hash_file(&self.final_path, &self.cancel)?.ok_or_else(|| ExportError::Cancelled {
                location: self.final_path.display().to_string(),
            })?;
        info!(location = %self.final_path.display(), size_bytes, ours = %self.checksum, theirs = %checksum,
            "export already stored by an earlier attempt, adopted");
        Ok(StoredExport {
            location: self.final_path.display().to_string(),
            size_bytes,
            checksum,
            adopted: true,
        })
    }
}

/// BLAKE3 and size of a file, streaming; `None` when cancelled.
fn hash_file(path: &Path, cancel: &CancellationToken) -> Result<Option<(ContentHash, u64)>, ExportError> {
    let mut file = File::open(path).map_err(|error| ExportError::io(path, "open", error))?;
    let mut hasher = blake3::Hasher::new();
    let mut buffer = vec![0_u8; CHUNK_BYTES];
    let mut num_bytes = 0_u64;
    loop {
        if cancel.is_cancelled() {
            return Ok(None);
        }
        let read = file
            .read(&mut buffer)
            .map_err(|error| ExportError::io(path, "read", error))?;
        if read == 0 {
            return Ok(Some((
                ContentHash::from_bytes(*hasher.finalize().as_bytes()),
                num_bytes,
            )));
        }
        hasher.update(&buffer[..read]);
        num_bytes = num_bytes.saturating_add(read as u64);
    }
}

/// A temporary file beside the final name, removed when dropped (after a publish the final name
/// is a second link to the same data, so removing this one keeps the export).
struct TempFile {
    path: PathBuf,
}

impl TempFile {
    fn new(folder: &Path, file_name: &str) -> Self {
        let mut stem_end = file_name.len().min(TEMP_NAME_STEM_BYTES);
        while !file_name.is_char_boundary(stem_end) {
            stem_end -= 1;
        }
        let token = uuid::Uuid::new_v4().simple();
        Self {
            path: folder.join(format!(".{}.{token}{TEMP_SUFFIX}", &file_name[..stem_end])),
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        match std::fs::remove_file(&self.path) {
            Err(error) if error.kind() != ErrorKind::NotFound => {
                warn!(path = %self.path.display(), %error, "could not remove a temporary export file");
            }
            _ => {}
        }
    }
}

/// Whether `hard_link` failed because the file system has no hard links (rather than a real
/// problem): EPERM (FAT, some SMB mounts), ENOTSUP/EOPNOTSUPP, ENOSYS, EXDEV; on Windows
/// ERROR_INVALID_FUNCTION, ERROR_NOT_SAME_DEVICE, ERROR_NOT_SUPPORTED.
fn links_unsupported(error: &std::io::Error) -> bool {
    if matches!(error.kind(), ErrorKind::Unsupported | ErrorKind::CrossesDevices) {
        return true;
    }
    let Some(code) = error.raw_os_error() else {
        return false;
    };
    #[cfg(unix)]
    {
        use nix::errno::Errno;
        [
            Errno::EPERM,
            Errno::ENOTSUP,
            Errno::EOPNOTSUPP,
            Errno::ENOSYS,
            Errno::EXDEV,
        ]
        .iter()
        .any(|errno| *errno as i32 == code)
    }
    #[cfg(windows)]
    {
        const ERROR_INVALID_FUNCTION: i32 = 1;
        const ERROR_NOT_SAME_DEVICE: i32 = 17;
        const ERROR_NOT_SUPPORTED: i32 = 50;
        matches!(
            code,
            ERROR_INVALID_FUNCTION | ERROR_NOT_SAME_DEVICE | ERROR_NOT_SUPPORTED
        )
    }
    #[cfg(not(any(unix, windows)))]
    {
        let _ = code;
        false
    }
}

/// Makes the new name durable (fsync of the folder; Unix only — Windows has no folder handle to
/// flush this way, NTFS journals the link). A failure only loses durability, so it is logged.
fn sync_folder(folder: &Path) {
    #[cfg(unix)]
    if let Err(error) = File::open(folder).and_then(|handle| handle.sync_all()) {
        debug!(path = %folder.display(), %error, "could not fsync the export folder");
    }
    #[cfg(not(unix))]
    let _ = folder;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Temporary names are hidden, unique, end in `.partial` and stay under 255 bytes however
    /// long the file name (cut on a character boundary).
    #[test]
    fn temporary_names_are_hidden_and_short() {
        let folder = Path::new("/srv/exports/t/j");
        let first = TempFile::new(folder, "promo.mp4");
        let second = TempFile::new(folder, "promo.mp4");
        assert_ne!(first.path, second.path);
        let name = first.path.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(name.starts_with(".promo.mp4.") && name.ends_with(TEMP_SUFFIX), "{name}");
        let long = TempFile::new(folder, &"é".repeat(127));
        let long_name = long.path.file_name().unwrap().to_str().unwrap();
        assert!(long_name.len() <= 255, "{}", long_name.len());
    }

    /// Only locations of three plain segments under the root can be discarded.
    #[test]
    fn discard_accepts_only_exports_of_the_store() {
        let store = FolderStore::new(Path::new("/srv/exports")).unwrap();
        assert!(store.export_path("/srv/exports/t/j/a.mp4").is_ok());
        for outside in [
            "/srv/exports/t/j",
            "/srv/exports/t/j/k/a.mp4",
            "/srv/other/t/j/a.mp4",
            "/srv/exports/t/../../etc/passwd",
            "relative/t/j/a.mp4",
        ] {
            let error = store.export_path(outside).unwrap_err();
            assert!(!error.is_retryable(), "{outside}");
            assert!(error.to_string().contains(outside), "{error}");
        }
    }

    /// The errors a file system without hard links gives are recognised; a real failure is not.
    #[cfg(unix)]
    #[test]
    fn missing_hard_link_support_is_recognised() {
        use nix::errno::Errno;
        for errno in [Errno::EPERM, Errno::EOPNOTSUPP, Errno::EXDEV, Errno::ENOSYS] {
            assert!(
                links_unsupported(&std::io::Error::from_raw_os_error(errno as i32)),
                "{errno}"
            );
        }
        for errno in [Errno::ENOSPC, Errno::EACCES, Errno::EIO, Errno::ENOENT] {
            assert!(
                !links_unsupported(&std::io::Error::from_raw_os_error(errno as i32)),
                "{errno}"
            );
        }
    }
}
