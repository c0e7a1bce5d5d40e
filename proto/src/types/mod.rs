//! Validated ids and values shared by the control plane, the node agent and the tests.
//!
//! Constructors validate once; a value that exists is valid. Errors are [`FieldError`]s naming
//! the offending field so the API edge can answer `INVALID_ARGUMENT` precisely.

mod ids;
mod states;
mod values;

pub use ids::{DEFAULT_TENANT_ID, FrameJobId, JobId, NodeId, TemplateId, TenantId, TokenId, UserId};
pub use states::{
    CrashClass, FrameJobState, JobKind, JobStatus, NodeState, OperatingSystem, RecoveryAction, TokenKind,
};
pub use values::{ContentHash, FrameRange, HttpUrl, LeaseToken, SafeName, Volume};

/// A value that failed validation, naming the field (`frame_range.end: must be >= start`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// Dotted path of the field, as named in the .proto.
    pub field: String,
    /// What is wrong, lowercase.
    pub message: String,
}

impl FieldError {
    /// A new error for `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error nested under `parent` (`template` + `blake3_hex` → `template.blake3_hex`).
    pub fn within(mut self, parent: &str) -> Self {
        self.field = format!("{parent}.{}", self.field);
        self
    }
}
