//! Closed vocabularies: each maps 1:1 to a text CHECK constraint in the render schema and to an
//! enum in the .proto (conversions in `convert`).

use std::fmt;

macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The text stored in the database and shown to people.
            pub const fn as_str(&self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// Parses the database/CLI text.
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// Lifecycle of a render job.
    JobStatus {
        /// Waiting for its first chunk to be leased.
        Queued => "queued",
        /// At least one chunk leased or done.
        Rendering => "rendering",
        /// Every chunk completed; encoding not started.
        Rendered => "rendered",
        /// Frames are being assembled into the final container.
        Encoding => "encoding",
        /// Done.
        Completed => "completed",
        /// Gave up; `failure_reason` says why.
        Failed => "failed",
        /// Cancelled by a backend or ops.
        Cancelled => "cancelled",
    }
);

impl JobStatus {
    /// Completed, failed and cancelled jobs never change again (short of an explicit retry).
    pub const fn is_terminal(&self) -> bool {
        matches!(self, JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled)
    }
}

text_enum!(
    /// What a job is for.
    JobKind {
        /// A full video export.
        Export => "export",
        /// A low-resolution preview.
        Preview => "preview",
        /// A single-frame scene snapshot.
        Snapshot => "snapshot",
    }
);

impl JobKind {
    /// Default priority when the request leaves it at 0: previews and snapshots ahead of exports.
    pub const fn default_priority(&self) -> i16 {
        match self {
            JobKind::Export => 50,
            JobKind::Preview => 70,
            JobKind::Snapshot => 80,
        }
    }
}

text_enum!(
    /// State of one frame chunk.
    FrameJobState {
        /// Waiting for a node.
        Pending => "pending",
        /// Held by a node under a live lease.
        Leased => "leased",
        /// All its frames are rendered.
        Completed => "completed",
        /// Failed for good (max attempts, or a template error).
        Failed => "failed",
        /// Its job was cancelled.
        Cancelled => "cancelled",
    }
);

text_enum!(
    /// State of a render node; only `Online` nodes get work.
    NodeState {
        /// Takes work.
        Online => "online",
        /// Finishing running work, taking none.
        Draining => "draining",
        /// Drained and idle.
        Drained => "drained",
        /// Missed heartbeats; its leases were requeued.
        Offline => "offline",
        /// Taken out by ops.
        Disabled => "disabled",
        /// Crash loop; back only by ops or a successful probe.
        Quarantined => "quarantined",
    }
);

text_enum!(
    /// Operating system of a node.
    OperatingSystem {
        /// Windows.
        Windows => "windows",
        /// macOS.
        Macos => "macos",
        /// Linux (test doubles only: After Effects does not run on Linux).
        Linux => "linux",
    }
);

text_enum!(
    /// Why a render attempt failed.
    CrashClass {
        /// aerender or After Effects died.
        Crash => "crash",
        /// No progress within the watchdog budget; killed.
        Hang => "hang",
        /// The template itself is broken (missing comp, footage, fonts, effects): fails everywhere.
        TemplateError => "template_error",
        /// After Effects licensing refused to render.
        License => "license",
        /// aerender could not start.
        LaunchFailure => "launch_failure",
        /// Another After Effects instance held the machine.
        AeBusy => "ae_busy",
        /// Frames could not be written.
        OutputWrite => "output_write",
        /// The template cache or AE's disk cache misbehaved.
        CacheError => "cache_error",
        /// The node disappeared while holding the lease.
        AgentLost => "agent_lost",
        /// Anything else.
        Unknown => "unknown",
    }
);

text_enum!(
    /// What was done about a failure.
    RecoveryAction {
        /// Retry on the same node.
        RetryHere => "retry_here",
        /// Retry on another node (this one joins the job's bad-node list).
        RetryElsewhere => "retry_elsewhere",
        /// Fail the job: retrying cannot help.
        FailJob => "fail_job",
        /// Wait before taking more work.
        BackOff => "back_off",
        /// The node took itself out of dispatch.
        Quarantine => "quarantine",
        /// The control plane put the chunk back in the queue.
        Requeue => "requeue",
    }
);

text_enum!(
    /// Kind of bearer token.
    TokenKind {
        /// Exchanged for a node token at registration.
        Join => "join",
        /// A registered node.
        Node => "node",
        /// A backend service, optionally scoped to tenants.
        Service => "service",
        /// Ops.
        Admin => "admin",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value round-trips through its text form.
    #[test]
    fn text_round_trips() {
        for status in JobStatus::ALL {
            assert_eq!(JobStatus::parse(status.as_str()), Some(*status));
        }
        for state in NodeState::ALL {
            assert_eq!(NodeState::parse(state.as_str()), Some(*state));
        }
        for class in CrashClass::ALL {
            assert_eq!(CrashClass::parse(class.as_str()), Some(*class));
        }
        assert_eq!(NodeState::parse("sleeping"), None);
    }

    /// Only completed, failed and cancelled are terminal.
    #[test]
    fn terminal_statuses() {
        let terminal: Vec<_> = JobStatus::ALL.iter().filter(|status| status.is_terminal()).collect();
        assert_eq!(
            terminal,
            [&JobStatus::Completed, &JobStatus::Failed, &JobStatus::Cancelled]
        );
    }
}
