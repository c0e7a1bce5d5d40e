//! What can go wrong while storing or discarding an export. Every message names the location
//! (a path or a URL), and [`ExportError::is_retryable`] separates what another attempt may fix (the
//! store unreachable, 5xx, timeouts, disk trouble) from what it cannot (a refused request, a bad
//! configuration, a file that is not what was encoded).

/// Errors of the output store.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The export's file name cannot be a plain file name.
    #[error("invalid export file name {file_name:?}: {reason}")]
    InvalidKey {
        /// The name given.
        file_name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A setting is unusable; the key is the dotted configuration key (`export.url`).
    #[error("{key}: {message}")]
    Config {
        /// Dotted configuration key.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A file-system operation failed.
    #[error("{location}: cannot {action}: {source}")]
    Io {
        /// The path concerned.
        location: String,
        /// What was being done (`create the folder`, `write`).
        action: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file to store does not have the size or BLAKE3 the caller computed (it changed, or
    /// the caller measured another file).
    #[error("{location}: not the encoded file: {message}")]
    SourceMismatch {
        /// The file to store.
        location: String,
        /// Expected and actual size or checksum.
        message: String,
    },
    /// The HTTP store could not be reached or did not answer: connection refused or reset, a
    /// broken body, a timeout.
    #[error("{method} {location}: {message}")]
    Unreachable {
        /// `PUT`, `HEAD`, `GET` or `DELETE`.
        method: &'static str,
        /// The URL.
        location: String,
        /// The transport error.
        message: String,
    },
    /// The HTTP store answered with an unexpected status.
    #[error("{method} {location}: http status {status}{excerpt}")]
    Status {
        /// `PUT`, `HEAD`, `GET` or `DELETE`.
        method: &'static str,
        /// The URL.
        location: String,
        /// The status code.
        status: u16,
        /// `: ` and the start of the response body, or empty.
        excerpt: String,
    },
    /// The store said an upload exists (412) but it was gone when read: another attempt discarded
    /// it meanwhile. Storing again settles it.
    #[error("{location}: the existing upload vanished before it could be adopted")]
    Vanished {
        /// The URL.
        location: String,
    },
    /// The location holds something that cannot be an export (a folder where the file should
    /// be), or a location given to discard lies outside the store.
    #[error("{location}: {message}")]
    Unexpected {
        /// The path or URL.
        location: String,
        /// What was found.
        message: String,
    },
    /// Cancelled before the export was stored; nothing half-written is left visible.
    #[error("{location}: storing the export was cancelled")]
    Cancelled {
        /// Where the export was going.
        location: String,
    },
    /// Retryable failures went on for every allowed attempt.
    #[error("{location}: gave up after {attempts} attempts: {last}")]
    GaveUp {
        /// The URL.
        location: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: Box<ExportError>,
    },
}

impl ExportError {
    /// Whether a later attempt may succeed (the store unreachable or overloaded, a timeout, disk
    /// trouble) as opposed to a permanent refusal or a caller's mistake.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Io { .. } | Self::Unreachable { .. } | Self::Vanished { .. } | Self::GaveUp { .. } => true,
            Self::Status { status, .. } => is_retryable_status(*status),
            Self::InvalidKey { .. }
            | Self::Config { .. }
            | Self::SourceMismatch { .. }
            | Self::Unexpected { .. }
            | Self::Cancelled { .. } => false,
        }
    }

    /// Whether the store was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Self::Cancelled { .. })
    }

    pub(crate) fn io(location: &std::path::Path, action: &'static str, source: std::io::Error) -> Self {
        Self::Io {
            location: location.display().to_string(),
            action,
            source,
        }
    }
}

/// Statuses another attempt may get past: 5xx, 408 (request timeout) and 429 (too many requests).
pub(crate) fn is_retryable_status(status: u16) -> bool {
    (500..600).contains(&status) || status == 408 || status == 429
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> ExportError {
        ExportError::Status {
            method: "PUT",
            location: "http://files/exports/a".into(),
            status: code,
            excerpt: String::new(),
        }
    }

    /// 5xx, 408 and 429 are worth another attempt; other statuses are refusals.
    #[test]
    fn statuses_are_classified() {
        for code in [500, 502, 503, 504, 408, 429] {
            assert!(status(code).is_retryable(), "{code}");
        }
        for code in [400, 401, 403, 404, 409, 411, 413, 301] {
            assert!(!status(code).is_retryable(), "{code}");
        }
    }

    /// Transport and disk trouble are retryable; bad input and cancellation are not; messages
    /// name the location.
    #[test]
    fn kinds_are_classified_and_name_the_location() {
        let io = ExportError::io(
            std::path::Path::new("/srv/exports/t/j/a.mp4"),
            "write",
            std::io::Error::other("disk full"),
        );
        assert!(io.is_retryable());
        assert_eq!(io.to_string(), "/srv/exports/t/j/a.mp4: cannot write: disk full");
        let gave_up = ExportError::GaveUp {
            location: "http://files/x".into(),
            attempts: 3,
            last: Box::new(status(503)),
        };
        assert!(gave_up.is_retryable());
        assert_eq!(
            gave_up.to_string(),
            "http://files/x: gave up after 3 attempts: PUT http://files/exports/a: http status 503"
        );
        let cancelled = ExportError::Cancelled {
            location: "/srv/exports/t/j/a.mp4".into(),
        };
        assert!(!cancelled.is_retryable());
        assert!(cancelled.is_cancelled());
        let config = ExportError::Config {
            key: "export.url",
            message: "required".into(),
        };
        assert!(!config.is_retryable());
        assert_eq!(config.to_string(), "export.url: required");
    }
}
