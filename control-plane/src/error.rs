//! The control plane's error type. Domain code returns it; `api::status` maps it to
//! `tonic::Status` in one place.

use flatrender_proto::types::FieldError;
use thiserror::Error;

use crate::db::DbError;

/// Result alias for the control plane.
pub type ControlPlaneResult<T> = Result<T, ControlPlaneError>;

/// Everything that can go wrong in a request, by what the caller should do about it.
#[derive(Debug, Error)]
pub enum ControlPlaneError {
    /// A request field is invalid (names the field).
    #[error(transparent)]
    InvalidArgument(#[from] FieldError),
    /// No such job, node, token... (or not visible to the caller).
    #[error("{0} not found")]
    NotFound(String),
    /// The thing exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// The request is valid but the state forbids it (stale lease, terminal job, ...).
    #[error("{0}")]
    FailedPrecondition(String),
    /// No or unknown credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// Credentials valid, but not for this.
    #[error("{0}")]
    PermissionDenied(String),
    /// A transient conflict; the caller may retry.
    #[error("{0}")]
    Aborted(String),
    /// The database (or another dependency) is unreachable.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected database failure.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<DbError> for ControlPlaneError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::AlreadyExists(message) => ControlPlaneError::AlreadyExists(message),
            DbError::ForeignKey(message) => ControlPlaneError::FailedPrecondition(message),
            DbError::Constraint(message) => ControlPlaneError::FailedPrecondition(message),
            DbError::Retryable(message) => ControlPlaneError::Aborted(message),
            DbError::Other(sqlx::Error::PoolTimedOut) => {
                ControlPlaneError::Unavailable("database pool timed out".into())
            }
            DbError::Other(sqlx::Error::Io(error)) => {
                ControlPlaneError::Unavailable(format!("database unreachable: {error}"))
            }
            DbError::Other(error) => ControlPlaneError::Internal(error.to_string()),
        }
    }
}

impl From<sqlx::Error> for ControlPlaneError {
    fn from(error: sqlx::Error) -> Self {
        DbError::from(error).into()
    }
}
