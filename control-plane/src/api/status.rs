//! The one mapping from [`ControlPlaneError`] to `tonic::Status`. Internal causes are logged
//! here, once, and not sent to the caller.

use tonic::Status;
use tracing::error;

use crate::error::ControlPlaneError;

impl From<ControlPlaneError> for Status {
    fn from(error: ControlPlaneError) -> Self {
        match error {
            ControlPlaneError::InvalidArgument(field_error) => Status::invalid_argument(field_error.to_string()),
            ControlPlaneError::NotFound(what) => Status::not_found(format!("{what} not found")),
            ControlPlaneError::AlreadyExists(message) => Status::already_exists(message),
            ControlPlaneError::FailedPrecondition(message) => Status::failed_precondition(message),
            ControlPlaneError::Unauthenticated(message) => Status::unauthenticated(message),
            ControlPlaneError::PermissionDenied(message) => Status::permission_denied(message),
            ControlPlaneError::Aborted(message) => Status::aborted(message),
            ControlPlaneError::Unavailable(message) => Status::unavailable(message),
            ControlPlaneError::Internal(message) => {
                error!(cause = %message, "internal error");
                Status::internal("internal error; see control-plane logs")
            }
        }
    }
}
