//! The gRPC edge: authenticate, validate and convert requests into domain calls, convert results
//! back. Domain code never sees protobuf.
//!
//! - `render`: backends submit and follow jobs.
//! - `node`: agents register, heartbeat, take and report work.
//! - `admin`: ops (one file per area).
//! - `status`: the one `ControlPlaneError` → `tonic::Status` mapping.
//! - `convert`: domain → protobuf.
//! - `oversize`: over-size requests answer `RESOURCE_EXHAUSTED`.

pub mod admin;
pub mod convert;
pub mod node;
pub mod oversize;
pub mod render;
pub mod status;

use std::sync::Arc;

use flatrender_proto::types::{FieldError, TokenKind};
use sqlx::PgPool;

use crate::{
    auth::{Authenticator, Principal},
    config::Config,
    dispatch::Dispatcher,
    error::ControlPlaneResult,
    health::HealthIngest,
    leases::LeaseRenewer,
    metrics::Metrics,
    nodes::NodeRegistry,
    readiness::Readiness,
    retention::FrameRetention,
};

/// Everything the handlers share.
pub struct AppState {
    /// Database pool (render role).
    pub pool: PgPool,
    /// Validated configuration.
    pub config: Arc<Config>,
    /// Bearer-token checks.
    pub auth: Arc<Authenticator>,
    /// Node view.
    pub nodes: Arc<NodeRegistry>,
    /// Claims and wake-ups.
    pub dispatcher: Arc<Dispatcher>,
    /// Batched lease renewal.
    pub renewer: LeaseRenewer,
    /// Records completions in batches.
    pub completer: crate::completer::Completer,
    /// Health-sample queue.
    pub health: HealthIngest,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Database reachability, shared by `/readyz` and gRPC health.
    pub readiness: Arc<Readiness>,
    /// Finished jobs' frames to remove from nodes.
    pub retention: Arc<FrameRetention>,
}

impl AppState {
    /// Authenticates the request and checks the token kind.
    pub async fn authorize<T>(
        &self,
        request: &tonic::Request<T>,
        allowed: &[TokenKind],
    ) -> ControlPlaneResult<Principal> {
        let principal = self.auth.authenticate(request.metadata()).await?;
        principal.require(allowed)?;
        Ok(principal)
    }
}

/// The one place a handler's result becomes a gRPC answer (errors map through `status`).
pub(crate) fn respond<T>(result: ControlPlaneResult<T>) -> Result<tonic::Response<T>, tonic::Status> {
    result.map(tonic::Response::new).map_err(tonic::Status::from)
}

/// Refuses strings longer than `max` bytes or with control characters; returns them trimmed.
pub(crate) fn bounded_text(value: &str, field: &str, max: usize) -> Result<String, FieldError> {
    if value.len() > max {
        return Err(FieldError::new(field, format!("must be at most {max} bytes")));
    }
    if value.chars().any(char::is_control) {
        return Err(FieldError::new(field, "must not contain control characters"));
    }
    Ok(value.trim().to_owned())
}

/// Node tags (on nodes and in job requirements): at most 32, each 1..64 of letters, digits,
/// `_`, `-`, `.`.
pub(crate) fn validate_tags(tags: &[String], field: &str) -> Result<(), FieldError> {
    if tags.len() > 32 {
        return Err(FieldError::new(field, "at most 32 tags"));
    }
    for (index, tag) in tags.iter().enumerate() {
        let valid = !tag.is_empty()
            && tag.len() <= 64
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !valid {
            return Err(FieldError::new(
                format!("{field}[{index}]"),
                "must be 1..64 of letters, digits, '_', '-', '.'",
            ));
        }
    }
    Ok(())
}

/// Page size: 0 means `default`, otherwise 1..=`max`.
pub(crate) fn page_size(requested: i32, default: i64, max: i64) -> Result<i64, FieldError> {
    match i64::from(requested) {
        0 => Ok(default),
        size if (1..=max).contains(&size) => Ok(size),
        _ => Err(FieldError::new("page_size", format!("must be between 1 and {max}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Text limits and page sizes name their field.
    #[test]
    fn edge_helpers_name_fields() {
        assert_eq!(bounded_text(" ok ", "label", 10).unwrap(), "ok");
        assert_eq!(bounded_text(&"x".repeat(11), "label", 10).unwrap_err().field, "label");
        assert!(bounded_text("a\u{0}b", "label", 10).is_err());
        assert_eq!(page_size(0, 50, 500).unwrap(), 50);
        assert_eq!(page_size(501, 50, 500).unwrap_err().field, "page_size");
        assert!(page_size(-1, 50, 500).is_err());
    }
}
