//! The cache's error type (templates and assets). Clonable, because one failed shared download is reported to
//! every caller that waited on it.

use std::path::PathBuf;
use std::sync::Arc;

use flatrender_proto::types::{ContentHash, HttpUrl};

/// Result of a cache operation.
pub type CacheResult<T> = Result<T, CacheError>;

/// Why a template or an asset could not be provided, verified or removed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum CacheError {
    /// The download failed (network, timeout or HTTP status) after the allowed retries.
    #[error("download of {url} failed: {message}")]
    Download { url: HttpUrl, message: String },
    /// The downloaded bytes do not hash to the expected BLAKE3 digest (after one refetch).
    #[error("content hash mismatch: expected {expected}, got {actual}")]
    HashMismatch { expected: ContentHash, actual: ContentHash },
    /// The server sent a different number of bytes than the declared size.
    #[error("size mismatch for {hash}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        hash: ContentHash,
        expected: u64,
        actual: u64,
    },
    /// A zip bundle holds several `.aep` files and none is `project.aep` at its root, or none.
    #[error("bundle {hash} has no unique project: {candidates} .aep files and no project.aep at its root")]
    BundleWithoutProject { hash: ContentHash, candidates: usize },
    /// A zip bundle entry would land outside the extraction folder (`../`, absolute, drive).
    #[error("bundle {hash} holds an unsafe path: {entry_name:?}")]
    UnsafeBundlePath { hash: ContentHash, entry_name: String },
    /// A zip bundle could not be read.
    #[error("bundle {hash} is not a readable zip archive: {message}")]
    BadBundle { hash: ContentHash, message: String },
    /// The entry is not in the cache.
    #[error("{hash} is not cached")]
    NotCached { hash: ContentHash },
    /// The entry is in use by a render and cannot be removed now.
    #[error("{hash} is in use and cannot be removed")]
    Pinned { hash: ContentHash },
    /// A file system operation failed.
    #[error("cache io error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The HTTP client could not be built (TLS setup).
    #[error("http client setup failed: {message}")]
    HttpClient { message: String },
    /// A blocking task (hashing, extraction) panicked or was cancelled.
    #[error("cache background task failed: {message}")]
    Task { message: String },
}

impl CacheError {
    /// An [`CacheError::Io`] naming the path.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source: Arc::new(source),
        }
    }
}

impl From<tokio::task::JoinError> for CacheError {
    fn from(error: tokio::task::JoinError) -> Self {
        Self::Task {
            message: error.to_string(),
        }
    }
}
