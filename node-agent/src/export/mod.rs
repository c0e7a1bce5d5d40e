//! The output store for finished videos: after the encode, the node stores the verified file
//! under `<tenant id>/<job id>/<file name>` in the shared folder (the default) or uploads it to
//! the file service over HTTP, and reports the [`StoredExport`] the control plane records.
//!
//! # Exactly one stored file per job
//! Two attempts of one encode may race: a node that lost its lease may still be storing while its
//! successor stores. Both stores therefore publish with *create-if-absent*, and the loser
//! **adopts** what the winner stored (`adopted = true`, with the stored file's own size and
//! BLAKE3, which may differ from the loser's bytes: two encodes of the same input need not be
//! byte-identical). Nothing is ever overwritten, and nothing half-written is ever visible:
//! - folder (`folder`): the bytes are copied to `.<file>.<uuid>.partial` in the final folder
//!   (hashed while copied and compared with the caller's size and BLAKE3), fsynced, then
//!   published with `hard_link(temp, final)`, which fails with `AlreadyExists` when another
//!   attempt published first; the final file is then hashed and adopted. The temporary name is
//!   removed in every case (success, error, cancel, the future dropped). Where the file system
//!   has no hard links (EPERM, ENOTSUP, EXDEV, …: FAT, some SMB mounts) the store falls back to
//!   `rename` when the final name is absent; two attempts that both see it absent can then both
//!   rename, the later replacing the earlier whole file — still one whole file, but the control
//!   plane may record the checksum of the replaced one (its fencing decides which attempt's
//!   report counts).
//! - HTTP (`http`): `PUT <url>/<tenant>/<job>/<file>` with `If-None-Match: *`, `Content-Length`
//!   and `X-Content-Blake3`; a 412 means another attempt's upload exists, so it is read back
//!   (`HEAD` for `X-Content-Blake3` and `Content-Length`, else a `GET` hashed as it streams) and
//!   adopted. A cancelled upload is dropped mid-body, which an HTTP server cannot mistake for a
//!   complete `Content-Length` body. Connection errors, timeouts, 5xx, 408 and 429 are retried
//!   with capped, jittered exponential back-off (`export.max_attempts`, `export.retry_base_ms`);
//!   other statuses fail at once.
//!
//! `discard` removes a stored export by its location (the job ended meanwhile); it refuses
//! locations outside the store, and one already gone is fine.
//!
//! # Layout
//! * `folder` — [`FolderStore`]: temporary name, fsync, hard-link publish or adopt.
//! * `http` — [`HttpStore`]: conditional `PUT`, adopt on 412, retries, `DELETE`.
//! * `error` — [`ExportError`] and which failures are retryable.

use std::path::Path;

use tokio_util::sync::CancellationToken;

use flatrender_proto::types::{ContentHash, JobId, TenantId};

use crate::config::{ExportSettings, ExportStoreKind};

mod error;
mod folder;
mod http;

pub use error::ExportError;
pub use folder::FolderStore;
pub use http::HttpStore;

/// Longest export file name, in bytes (the common file-system limit for one name).
pub const MAX_FILE_NAME_BYTES: usize = 255;

/// Where a job's video goes: "<tenant id>/<job id>/<file name>" under the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportKey {
    tenant_id: TenantId,
    job_id: JobId,
    file_name: String,
}

impl ExportKey {
    /// file_name: "<output name>.<ext>", a plain file name (no separators, not "."/"..", <=255 bytes).
    ///
    /// Also refused, because the agent runs on Windows too and the store reserves hidden names for
    /// its temporary files: control characters, `: * ? " < > |`, a leading `.` and a trailing `.`
    /// or space.
    pub fn new(tenant_id: TenantId, job_id: JobId, file_name: &str) -> Result<Self, ExportError> {
        let refuse = |reason| ExportError::InvalidKey {
            file_name: file_name.to_owned(),
            reason,
        };
        if file_name.is_empty() {
            return Err(refuse("is empty"));
        }
        if file_name.len() > MAX_FILE_NAME_BYTES {
            return Err(refuse("is longer than 255 bytes"));
        }
        if file_name == "." || file_name == ".." {
            return Err(refuse("is a relative path component"));
        }
        if file_name.chars().any(|c| matches!(c, '/' | '\\')) {
            return Err(refuse("contains a path separator"));
        }
        if file_name
            .chars()
            .any(|c| c.is_control() || matches!(c, ':' | '*' | '?' | '"' | '<' | '>' | '|'))
        {
            return Err(refuse("contains a control character or one of : * ? \" < > |"));
        }
        if file_name.starts_with('.') {
            return Err(refuse("starts with '.' (hidden names are the store's temporary files)"));
        }
        if file_name.ends_with('.') || file_name.ends_with(' ') {
            return Err(refuse("ends with '.' or a space (Windows drops them)"));
        }
        Ok(Self {
            tenant_id,
            job_id,
            file_name: file_name.to_owned(),
        })
    }

    /// "<tenant>/<job>/<file name>", '/'-separated.
    pub fn relative_path(&self) -> String {
        format!("{}/{}/{}", self.tenant_id, self.job_id, self.file_name)
    }

    /// The tenant the export belongs to.
    pub fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }

    /// The job the export belongs to.
    pub fn job_id(&self) -> JobId {
        self.job_id
    }

    /// The export's file name.
    pub fn file_name(&self) -> &str {
        &self.file_name
    }

    /// The three path segments: tenant id, job id, file name.
    fn segments(&self) -> [String; 3] {
        [
            self.tenant_id.to_string(),
            self.job_id.to_string(),
            self.file_name.clone(),
        ]
    }
}

/// A stored export as the control plane records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredExport {
    /// Absolute path of the file on the shared folder, or the http(s) URL.
    pub location: String,
    /// Size of the stored file.
    pub size_bytes: u64,
    /// BLAKE3 of the stored file.
    pub checksum: ContentHash,
    /// True when an earlier attempt had already stored this key and that file was kept.
    pub adopted: bool,
}

/// The configured output store.
#[derive(Debug)]
pub enum ExportStore {
    /// A folder, usually the farm's shared storage.
    Folder(FolderStore),
    /// The file service, by HTTP upload.
    Http(HttpStore),
}

impl ExportStore {
    /// The store `[export]` describes; the error names the bad key.
    pub fn from_config(config: &ExportSettings) -> Result<Self, ExportError> {
        config
            .check()
            .map_err(|(key, message)| ExportError::Config { key, message })?;
        match config.store {
            ExportStoreKind::Folder => FolderStore::new(&config.folder).map(Self::Folder),
            ExportStoreKind::Http => HttpStore::new(config).map(Self::Http),
        }
    }

    /// Stores `file` (an encoded, verified video whose BLAKE3 and size the caller computed) under
    /// `key`, or adopts what an earlier attempt stored there. `cancel` stops it (nothing half-written stays visible).
    pub async fn store(
        &self,
        file: &Path,
        key: &ExportKey,
        checksum: &ContentHash,
        size_bytes: u64,
        cancel: &CancellationToken,
    ) -> Result<StoredExport, ExportError> {
        match self {
            Self::Folder(store) => store.store(file, key, checksum, size_bytes, cancel).await,
            Self::Http(store) => store.store(file, key, checksum, size_bytes, cancel).await,
        }
    }

    /// Removes a stored export by its location (the job ended meanwhile); already gone is Ok.
    pub async fn discard(&self, location: &str) -> Result<(), ExportError> {
        match self {
            Self::Folder(store) => store.discard(location).await,
            Self::Http(store) => store.discard(location).await,
        }
    }

    /// Which kind of store this is.
    pub fn kind(&self) -> ExportStoreKind {
        match self {
            Self::Folder(_) => ExportStoreKind::Folder,
            Self::Http(_) => ExportStoreKind::Http,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(file_name: &str) -> Result<ExportKey, ExportError> {
        ExportKey::new(TenantId::new_random(), JobId::new_random(), file_name)
    }

    /// Ordinary output names are accepted and the path is tenant/job/file.
    #[test]
    fn plain_file_names_make_keys() {
        let tenant_id = TenantId::new_random();
        let job_id = JobId::new_random();
        let export = ExportKey::new(tenant_id, job_id, "promo final 2.mp4").unwrap();
        assert_eq!(
            export.relative_path(),
            format!("{tenant_id}/{job_id}/promo final 2.mp4")
        );
        assert_eq!(export.file_name(), "promo final 2.mp4");
        assert!(key(&"a".repeat(MAX_FILE_NAME_BYTES)).is_ok());
        assert!(key("vidéo.webm").is_ok());
    }

    /// Anything that is not one plain file name is refused, naming the name.
    #[test]
    fn names_that_are_not_plain_files_are_refused() {
        for bad in [
            "",
            ".",
            "..",
            "a/b.mp4",
            "a\\b.mp4",
            "c:x.mp4",
            "a\nb.mp4",
            "a\0b.mp4",
            "what?.mp4",
            ".promo.mp4",
            "promo.",
            "promo ",
        ] {
            let error = key(bad).unwrap_err();
            assert!(matches!(error, ExportError::InvalidKey { .. }), "{bad:?}");
            assert!(error.to_string().contains(&format!("{bad:?}")), "{error}");
            assert!(!error.is_retryable());
        }
        assert!(key(&"a".repeat(MAX_FILE_NAME_BYTES + 1)).is_err());
        assert!(key(&"é".repeat(128)).is_err(), "256 bytes although 128 characters");
    }

    /// A configuration the checks refuse does not make a store; the error names the key.
    #[test]
    fn bad_configuration_names_the_key() {
        let http_without_url = ExportSettings {
            store: ExportStoreKind::Http,
            ..ExportSettings::default()
        };
        let error = ExportStore::from_config(&http_without_url).unwrap_err();
        assert!(error.to_string().starts_with("export.url: "), "{error}");
        assert!(!error.is_retryable());
        let error = ExportStore::from_config(&ExportSettings::default()).unwrap_err();
        assert!(error.to_string().starts_with("export.folder: "), "{error}");
    }
}
