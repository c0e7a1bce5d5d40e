//! Database access: pool construction, the SQLSTATE classifier, and the migration runner.
//!
//! Repository modules (one per table group) take `&mut PgConnection` so the service layer can
//! compose several statements into one transaction.

pub mod completions;
pub mod crashes;
pub mod frame_job_admin;
pub mod frame_jobs;
pub mod health_logs;
pub mod job_scenes;
pub mod jobs;
pub mod migrate;
pub mod nodes;
pub mod partitions;
pub mod retention;
pub mod tokens;

use thiserror::Error;

/// A database failure, classified once by SQLSTATE so callers never match on `sqlx::Error`.
#[derive(Debug, Error)]
pub enum DbError {
    /// A unique constraint was violated (SQLSTATE 23505).
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// A foreign key pointed nowhere (SQLSTATE 23503).
    #[error("referenced row not found: {0}")]
    ForeignKey(String),
    /// A CHECK or NOT NULL constraint rejected the row (SQLSTATE 23514, 23502).
    #[error("constraint violated: {0}")]
    Constraint(String),
    /// Serialization failure or deadlock (SQLSTATE 40001, 40P01): safe to retry the transaction.
    #[error("transient conflict, retry: {0}")]
    Retryable(String),
    /// Anything else, including lost connections.
    #[error(transparent)]
    Other(sqlx::Error),
}

impl From<sqlx::Error> for DbError {
    fn from(error: sqlx::Error) -> Self {
        let Some(database_error) = error.as_database_error() else {
            return DbError::Other(error);
        };
        let message = database_error.message().to_owned();
        match database_error.code().as_deref() {
            Some("23505") => DbError::AlreadyExists(message),
            Some("23503") => DbError::ForeignKey(message),
            Some("23514") | Some("23502") => DbError::Constraint(message),
            Some("40001") | Some("40P01") => DbError::Retryable(message),
            _ => DbError::Other(error),
        }
    }
}

/// A stored text that must parse into a domain value; a decode error names what and the text.
pub(crate) fn stored<T>(parsed: Option<T>, what: &str, text: &str) -> Result<T, DbError> {
    parsed.ok_or_else(|| {
        DbError::Other(sqlx::Error::Decode(
            format!("unknown {what} {text:?} in the database").into(),
        ))
    })
}

/// A stored value that fails domain validation (it was valid when written).
pub(crate) fn corrupt(error: impl std::fmt::Display) -> DbError {
    DbError::Other(sqlx::Error::Decode(format!("stored value: {error}").into()))
}
