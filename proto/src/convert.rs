//! Conversions between protobuf enums/messages and domain types. Enum fields arrive as `i32`;
//! `UNSPECIFIED` and unknown numbers are refused with the field's name.

use crate::{
    pb,
    types::{self, FieldError, FrameRange},
};

macro_rules! enum_conversion {
    ($domain:ident, $wire:ident { $($variant:ident),+ $(,)? }) => {
        impl From<types::$domain> for pb::$wire {
            fn from(value: types::$domain) -> Self {
                match value {
                    $(types::$domain::$variant => pb::$wire::$variant),+
                }
            }
        }

        impl types::$domain {
            /// Converts a wire enum value; `UNSPECIFIED` or unknown values name `field`.
            pub fn from_wire(value: i32, field: &str) -> Result<Self, FieldError> {
                match pb::$wire::try_from(value) {
                    $(Ok(pb::$wire::$variant) => Ok(types::$domain::$variant),)+
                    _ => Err(FieldError::new(field, concat!("must be a known ", stringify!($wire), " (not UNSPECIFIED)"))),
                }
            }

            /// Like [`Self::from_wire`], but `UNSPECIFIED` means `None`.
            pub fn from_wire_optional(value: i32, field: &str) -> Result<Option<Self>, FieldError> {
                if value == 0 { Ok(None) } else { Self::from_wire(value, field).map(Some) }
            }

            /// The wire number.
            pub fn to_wire(self) -> i32 {
                pb::$wire::from(self) as i32
            }
        }
    };
}

enum_conversion!(
    JobStatus,
    JobStatus {
        Queued,
        Rendering,
        Rendered,
        Encoding,
        Completed,
        Failed,
        Cancelled
    }
);
enum_conversion!(
    JobKind,
    JobKind {
        Export,
        Preview,
        Snapshot
    }
);
enum_conversion!(
    FrameJobState,
    FrameJobState {
        Pending,
        Leased,
        Completed,
        Failed,
        Cancelled
    }
);
enum_conversion!(
    NodeState,
    NodeState {
        Online,
        Draining,
        Drained,
        Offline,
        Disabled,
        Quarantined
    }
);
enum_conversion!(OperatingSystem, OperatingSystem { Windows, Macos, Linux });
enum_conversion!(
    CrashClass,
    CrashClass {
        Crash,
        Hang,
        TemplateError,
        License,
        LaunchFailure,
        AeBusy,
        OutputWrite,
        CacheError,
        AgentLost,
        Unknown
    }
);
enum_conversion!(
    RecoveryAction,
    RecoveryAction {
        RetryHere,
        RetryElsewhere,
        FailJob,
        BackOff,
        Quarantine,
        Requeue
    }
);
enum_conversion!(
    TokenKind,
    TokenKind {
        Join,
        Node,
        Service,
        Admin
    }
);

/// A required `FrameRange` message; `field` names it.
pub fn frame_range_from_wire(value: Option<&pb::FrameRange>, field: &str) -> Result<FrameRange, FieldError> {
    let range = value.ok_or_else(|| FieldError::new(field, "is required"))?;
    FrameRange::new(range.start, range.end, field)
}

impl From<FrameRange> for pb::FrameRange {
    fn from(range: FrameRange) -> Self {
        pb::FrameRange {
            start: range.start(),
            end: range.end(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{JobStatus, NodeState};

    /// Every domain value survives a round trip through its wire number.
    #[test]
    fn enums_round_trip() {
        for status in JobStatus::ALL {
            assert_eq!(JobStatus::from_wire(status.to_wire(), "status").unwrap(), *status);
        }
        for state in NodeState::ALL {
            assert_eq!(NodeState::from_wire(state.to_wire(), "state").unwrap(), *state);
        }
    }

    /// UNSPECIFIED and unknown numbers are refused, naming the field.
    #[test]
    fn unspecified_is_refused() {
        assert_eq!(JobStatus::from_wire(0, "status").unwrap_err().field, "status");
        assert!(JobStatus::from_wire(99, "status").is_err());
        assert_eq!(JobStatus::from_wire_optional(0, "status").unwrap(), None);
    }

    /// A missing range names the field.
    #[test]
    fn missing_frame_range() {
        assert_eq!(
            frame_range_from_wire(None, "frame_range").unwrap_err().to_string(),
            "frame_range: is required"
        );
    }
}
