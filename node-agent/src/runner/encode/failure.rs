//! How an encode attempt's failure is reported: crash class, recovery action and an
//! `error_class` for people (the control plane's job failure reason reads `<error class>:
//! <message>`). The policy:
//!
//! | what | class | action |
//! |---|---|---|
//! | an audio file that does not decode, a cue past the video's end (`is_bad_content`) | unknown | fail the job: the same on every node |
//! | the job's output name is no file name, the store refuses the key or the request | unknown / output_write | fail the job |
//! | frames missing or empty (named) | unknown | retry elsewhere |
//! | an audio file cannot be downloaded or fails its BLAKE3 (named) | cache_error | retry elsewhere (after the job's attempts: the job fails naming the track) |
//! | ffmpeg or ffprobe exits badly | crash | retry elsewhere |
//! | ffprobe hangs | hang | retry elsewhere |
//! | the file fails verification, unexpected tool output | unknown | retry elsewhere |
//! | ffmpeg is gone or does not start | launch_failure | retry elsewhere |
//! | local disk trouble, the encoded file changed before it was stored | output_write | retry elsewhere |
//! | the store is unreachable or overloaded (retryable) | output_write | back off |
//!
//! Tracks are named as the job's request names them (`audio.music`, `audio.sfx[1]`), whichever
//! step failed (download or decode).
//!
//! `template_error` is not used: it means a broken After Effects template to the control plane.
//! Encode failures do not count towards the crash loop, whose canary proves After Effects
//! (`service::work`).

use flatrender_proto::types::{CrashClass, RecoveryAction};

use crate::encode::{EncodeError, Tracks};
use crate::export::ExportError;
use crate::recovery::Failure;

/// A failed attempt with what goes into the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Failed {
    /// Class, action and message.
    pub failure: Failure,
    /// `bad_audio`, `frames_missing`, `ffmpeg_failed`, …
    pub error_class: String,
    /// The tool's last stderr lines, when one failed.
    pub log_tail: String,
}

impl Failed {
    /// A failure without a log.
    pub fn new(crash_class: CrashClass, action: RecoveryAction, error_class: &str, message: String) -> Self {
        Self {
            failure: Failure {
                crash_class,
                error_class: None,
                action,
                message,
            },
            error_class: error_class.to_owned(),
            log_tail: String::new(),
        }
    }

    /// The attempt was stopped from outside (lease lost, shutdown): handed back, no attempt.
    pub fn stopped() -> Self {
        Self::new(
            CrashClass::Unknown,
            RecoveryAction::Requeue,
            "cancelled",
            "encode stopped on purpose (lease cancelled or agent stopping)".to_owned(),
        )
    }
}

/// An error of the encode step (spec, ffmpeg, verification).
pub(super) fn encode_failed(error: &EncodeError) -> Failed {
    use CrashClass as C;
    use RecoveryAction as A;
    let message = match error {
        EncodeError::Input { tracks, reason } => format!("{}: {reason}", field_names(tracks)),
        _ => error.to_string(),
    };
    match error {
        _ if error.is_bad_content() => Failed::new(C::Unknown, A::FailJob, "bad_audio", message),
        EncodeError::Input { .. } => Failed::new(C::Unknown, A::RetryElsewhere, "frames_missing", message),
        EncodeError::InvalidSpec { .. } => Failed::new(C::Unknown, A::RetryElsewhere, "malformed_assignment", message),
        EncodeError::ToolMissing { tool, .. } | EncodeError::Spawn { tool, .. } => {
            Failed::new(C::LaunchFailure, A::RetryElsewhere, &format!("{tool}_missing"), message)
        }
        EncodeError::ToolFailed { tool, stderr_tail, .. } => Failed {
            log_tail: stderr_tail.clone(),
            ..Failed::new(C::Crash, A::RetryElsewhere, &format!("{tool}_failed"), message)
        },
        EncodeError::ToolTimedOut { tool, .. } => {
            Failed::new(C::Hang, A::RetryElsewhere, &format!("{tool}_timed_out"), message)
        }
        EncodeError::UnexpectedOutput { tool, .. } => Failed::new(
            C::Unknown,
            A::RetryElsewhere,
            &format!("{tool}_unexpected_output"),
            message,
        ),
        EncodeError::Verify { .. } => Failed::new(C::Unknown, A::RetryElsewhere, "verify_failed", message),
        EncodeError::Cancelled => Failed::stopped(),
        EncodeError::Io { .. } => Failed::new(C::OutputWrite, A::RetryElsewhere, "encode_io", message),
    }
}

/// The tracks as the job's request names them (`audio.music`, `audio.sfx[1]`,
/// `audio.voiceover`), the same names as a download failure's; frames keep the encode's own
/// (`scene 0 frames`).
fn field_names(tracks: &Tracks) -> String {
    let names: Vec<String> = tracks
        .0
        .iter()
        .map(|track| {
            if track.is_audio() {
                format!("audio.{track}")
            } else {
                track.to_string()
            }
        })
        .collect();
    names.join(", ")
}

/// An error of the output store.
pub(super) fn store_failed(error: &ExportError) -> Failed {
    let message = format!("storing the export: {error}");
    let action = match error {
        _ if error.is_cancelled() => return Failed::stopped(),
        // Our own file changed between hashing and storing: this node's disk, not the job.
        ExportError::SourceMismatch { .. } => RecoveryAction::RetryElsewhere,
        // The store is away or overloaded: the whole farm sees it; pause, then anyone retries.
        _ if error.is_retryable() => RecoveryAction::BackOff,
        _ => RecoveryAction::FailJob,
    };
    Failed::new(CrashClass::OutputWrite, action, "export_store", message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::Track;

    fn classified(failed: &Failed) -> (CrashClass, RecoveryAction, &str) {
        (
            failed.failure.crash_class,
            failed.failure.action,
            failed.error_class.as_str(),
        )
    }

    /// Bad audio fails the job naming the track; missing frames, a crash, a failed check retry
    /// elsewhere; a crash keeps ffmpeg's last lines.
    #[test]
    fn encode_errors_map_to_the_policy() {
        let bad_audio = encode_failed(&EncodeError::Input {
            tracks: Tracks(vec![Track::SoundEffect(1)]),
            reason: "does not decode: Invalid data found when processing input".into(),
        });
        assert_eq!(
            classified(&bad_audio),
            (CrashClass::Unknown, RecoveryAction::FailJob, "bad_audio")
        );
        assert!(bad_audio.failure.message.starts_with("audio.sfx[1]: does not decode"));
        let shared = encode_failed(&EncodeError::Input {
            tracks: Tracks(vec![Track::Music, Track::SoundEffect(0), Track::SoundEffect(3)]),
            reason: "does not decode".into(),
        });
        assert_eq!(
            shared.failure.message,
            "audio.music, audio.sfx[0], audio.sfx[3]: does not decode"
        );
        let frames = encode_failed(&EncodeError::Input {
            tracks: Tracks(vec![Track::SceneFrames(0)]),
            reason: "1 of 3 frames missing or empty, the first /r/j/out_00002.png".into(),
        });
        assert_eq!(
            classified(&frames),
            (CrashClass::Unknown, RecoveryAction::RetryElsewhere, "frames_missing")
        );
        assert!(frames.failure.message.contains("/r/j/out_00002.png"));
        let crash = encode_failed(&EncodeError::ToolFailed {
            tool: "ffmpeg",
            exit: "signal 9".into(),
            stderr_tail: "Killed".into(),
        });
        assert_eq!(
            classified(&crash),
            (CrashClass::Crash, RecoveryAction::RetryElsewhere, "ffmpeg_failed")
        );
        assert_eq!(crash.log_tail, "Killed");
        let verify = encode_failed(&EncodeError::Verify {
            reason: "duration 2.1 s, expected 3 s".into(),
        });
        assert_eq!(
            classified(&verify),
            (CrashClass::Unknown, RecoveryAction::RetryElsewhere, "verify_failed")
        );
        let missing = encode_failed(&EncodeError::ToolMissing {
            tool: "ffprobe",
            program: "ffprobe".into(),
        });
        assert_eq!(
            classified(&missing),
            (
                CrashClass::LaunchFailure,
                RecoveryAction::RetryElsewhere,
                "ffprobe_missing"
            )
        );
        assert_eq!(
            encode_failed(&EncodeError::Cancelled).failure.action,
            RecoveryAction::Requeue
        );
        for failed in [&bad_audio, &frames, &crash, &verify, &missing] {
            assert_ne!(failed.failure.crash_class, CrashClass::TemplateError);
        }
    }

    /// The store away backs off, a refusal fails the job, our own file changing retries
    /// elsewhere, a cancel is a hand-back.
    #[test]
    fn store_errors_map_to_the_policy() {
        let away = store_failed(&ExportError::Unreachable {
            method: "PUT",
            location: "http://files/x".into(),
            message: "connection refused".into(),
        });
        assert_eq!(
            classified(&away),
            (CrashClass::OutputWrite, RecoveryAction::BackOff, "export_store")
        );
        assert!(
            away.failure
                .message
                .starts_with("storing the export: PUT http://files/x")
        );
        let refused = store_failed(&ExportError::Status {
            method: "PUT",
            location: "http://files/x".into(),
            status: 403,
            excerpt: String::new(),
        });
        assert_eq!(refused.failure.action, RecoveryAction::FailJob);
        let changed = store_failed(&ExportError::SourceMismatch {
            location: "/w/a.mp4".into(),
            message: "size".into(),
        });
        assert_eq!(changed.failure.action, RecoveryAction::RetryElsewhere);
        let cancelled = store_failed(&ExportError::Cancelled {
            location: "/e/a.mp4".into(),
        });
        assert_eq!(cancelled.failure.action, RecoveryAction::Requeue);
    }
}
