//! What waits in the outbox: chunk completions (an encode's with its export) and failures
//! (mirrors of the wire requests, so they survive a restart as JSON) and health samples, with
//! their conversions to and from `pb`. Fields added later default when absent, so files an older
//! agent wrote still read.

use serde::{Deserialize, Serialize};

use flatrender_proto::pb;

use crate::health::HealthSample;

/// One rendered frame of a completed chunk (mirrors `pb::FrameOutput`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FrameOutputRecord {
    pub frame: i32,
    pub path: String,
    pub size_bytes: i64,
    pub blake3_hex: String,
}

/// The stored, verified video of an encode (mirrors `pb::Export` without the control plane's
/// id and creation time).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExportRecord {
    /// Where the export store put it (a path on the shared folder, or a URL).
    pub location: String,
    /// `mp4`, `mov`, `webm` or `gif`.
    pub format: String,
    pub width: i32,
    pub height: i32,
    pub size_bytes: i64,
    /// The length ffprobe read.
    pub duration_seconds: f64,
    pub blake3_hex: String,
    pub video_codec: String,
    /// Empty: no audio stream (gif).
    pub audio_codec: String,
}

impl ExportRecord {
    pub fn to_pb(&self) -> pb::Export {
        pb::Export {
            id: String::new(),
            location: self.location.clone(),
            format: self.format.clone(),
            width: self.width,
            height: self.height,
            size_bytes: self.size_bytes,
            duration: Some(duration_to_pb(self.duration_seconds)),
            blake3_hex: self.blake3_hex.clone(),
            video_codec: self.video_codec.clone(),
            audio_codec: self.audio_codec.clone(),
            created_at: None,
        }
    }
}

impl From<pb::Export> for ExportRecord {
    fn from(export: pb::Export) -> Self {
        ExportRecord {
            location: export.location,
            format: export.format,
            width: export.width,
            height: export.height,
            size_bytes: export.size_bytes,
            duration_seconds: export.duration.map_or(0.0, |duration| {
                duration.seconds as f64 + f64::from(duration.nanos) / 1e9
            }),
            blake3_hex: export.blake3_hex,
            video_codec: export.video_codec,
            audio_codec: export.audio_codec,
        }
    }
}

/// Seconds as a protobuf duration, to the nanosecond; negative and non-finite values are zero.
fn duration_to_pb(seconds: f64) -> prost_types::Duration {
    let duration = std::time::Duration::try_from_secs_f64(seconds).unwrap_or_default();
    prost_types::Duration {
        seconds: i64::try_from(duration.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(duration.subsec_nanos()).unwrap_or(0),
    }
}

/// A chunk rendered to completion, waiting to be reported (mirrors `pb::CompletedChunk`).
/// An encode's completion carries its export and no frame outputs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChunkCompletion {
    pub frame_job_id: String,
    pub lease_token: i64,
    pub outputs: Vec<FrameOutputRecord>,
    pub render_seconds: f64,
    /// Absent in completions written before encodes existed (and in every render's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<ExportRecord>,
}

impl ChunkCompletion {
    pub fn to_pb(&self) -> pb::CompletedChunk {
        pb::CompletedChunk {
            frame_job_id: self.frame_job_id.clone(),
            lease_token: self.lease_token,
            outputs: self
                .outputs
                .iter()
                .map(|output| pb::FrameOutput {
                    frame: output.frame,
                    path: output.path.clone(),
                    size_bytes: output.size_bytes,
                    blake3_hex: output.blake3_hex.clone(),
                })
                .collect(),
            render_seconds: self.render_seconds,
            export: self.export.as_ref().map(ExportRecord::to_pb),
        }
    }
}

impl From<pb::CompletedChunk> for ChunkCompletion {
    fn from(chunk: pb::CompletedChunk) -> Self {
        ChunkCompletion {
            frame_job_id: chunk.frame_job_id,
            lease_token: chunk.lease_token,
            outputs: chunk
                .outputs
                .into_iter()
                .map(|output| FrameOutputRecord {
                    frame: output.frame,
                    path: output.path,
                    size_bytes: output.size_bytes,
                    blake3_hex: output.blake3_hex,
                })
                .collect(),
            render_seconds: chunk.render_seconds,
            export: chunk.export.map(ExportRecord::from),
        }
    }
}

/// A chunk that failed, waiting to be reported (mirrors `pb::FailWorkRequest`; the enums are
/// kept as their wire numbers, `pb::CrashClass` and `pb::RecoveryAction`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChunkFailure {
    pub frame_job_id: String,
    pub lease_token: i64,
    pub crash_class: i32,
    pub error_class: String,
    pub exit_code: Option<i32>,
    pub log_tail: String,
    pub message: String,
    pub frames_written: Vec<i32>,
    pub recovery_action: i32,
}

impl ChunkFailure {
    pub fn to_pb(&self) -> pb::FailWorkRequest {
        pb::FailWorkRequest {
            frame_job_id: self.frame_job_id.clone(),
            lease_token: self.lease_token,
            crash_class: self.crash_class,
            error_class: self.error_class.clone(),
            exit_code: self.exit_code,
            log_tail: self.log_tail.clone(),
            message: self.message.clone(),
            frames_written: self.frames_written.clone(),
            recovery_action: self.recovery_action,
        }
    }
}

impl From<pb::FailWorkRequest> for ChunkFailure {
    fn from(request: pb::FailWorkRequest) -> Self {
        ChunkFailure {
            frame_job_id: request.frame_job_id,
            lease_token: request.lease_token,
            crash_class: request.crash_class,
            error_class: request.error_class,
            exit_code: request.exit_code,
            log_tail: request.log_tail,
            message: request.message,
            frames_written: request.frames_written,
            recovery_action: request.recovery_action,
        }
    }
}

/// Something waiting for delivery to the control plane.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OutboxItem {
    Completion(ChunkCompletion),
    Failure(ChunkFailure),
    Health(HealthSample),
}

impl OutboxItem {
    /// The `<kind>` part of the item's file name.
    pub(super) fn kind(&self) -> &'static str {
        match self {
            OutboxItem::Completion(_) => "completion",
            OutboxItem::Failure(_) => "failure",
            OutboxItem::Health(_) => "health",
        }
    }

    /// Whether this is a chunk result (never dropped) rather than a health sample.
    pub fn is_result(&self) -> bool {
        !matches!(self, OutboxItem::Health(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export() -> ExportRecord {
        ExportRecord {
            location: "/exports/t/j/promo.mp4".into(),
            format: "mp4".into(),
            width: 1920,
            height: 1080,
            size_bytes: 123_456,
            duration_seconds: 6.04,
            blake3_hex: "ab".repeat(32),
            video_codec: "h264".into(),
            audio_codec: "aac".into(),
        }
    }

    /// A completion written before encodes existed (no `export` key) still reads, as one
    /// without an export; a render's completion is written without the key.
    #[test]
    fn completions_without_an_export_read_and_write_as_before() {
        let old = r#"{"kind":"completion","frame_job_id":"f","lease_token":7,
            "outputs":[{"frame":1,"path":"p","size_bytes":3,"blake3_hex":"ab"}],"render_seconds":1.5}"#;
        let item: OutboxItem = serde_json::from_str(old).unwrap();
        let OutboxItem::Completion(completion) = &item else {
            panic!("{item:?}")
        };
        assert_eq!(completion.export, None);
        assert_eq!(completion.outputs.len(), 1);
        let written = serde_json::to_string(&item).unwrap();
        assert!(!written.contains("export"), "{written}");
        assert_eq!(completion.to_pb().export, None);
    }

    /// An encode's export survives the outbox file and goes on the wire with its duration as a
    /// protobuf duration; the wire form converts back.
    #[test]
    fn exports_round_trip_through_file_and_wire() {
        let item = OutboxItem::Completion(ChunkCompletion {
            frame_job_id: "f".into(),
            lease_token: 9,
            outputs: Vec::new(),
            render_seconds: 12.0,
            export: Some(export()),
        });
        let read: OutboxItem = serde_json::from_str(&serde_json::to_string(&item).unwrap()).unwrap();
        assert_eq!(read, item);
        let OutboxItem::Completion(completion) = read else {
            panic!("a completion")
        };
        let wire = completion.to_pb();
        let wire_export = wire.export.clone().unwrap();
        assert_eq!(
            wire_export.duration,
            Some(prost_types::Duration {
                seconds: 6,
                nanos: 40_000_000
            })
        );
        assert_eq!(wire_export.location, "/exports/t/j/promo.mp4");
        assert_eq!((wire_export.width, wire_export.height), (1920, 1080));
        assert_eq!(wire_export.blake3_hex, "ab".repeat(32));
        assert_eq!(ChunkCompletion::from(wire), completion);
    }

    /// Durations that cannot be one (negative, not a number) go out as zero.
    #[test]
    fn odd_durations_are_zero() {
        assert_eq!(duration_to_pb(-1.0), prost_types::Duration::default());
        assert_eq!(duration_to_pb(f64::NAN), prost_types::Duration::default());
        assert_eq!(duration_to_pb(2.5).nanos, 500_000_000);
    }
}
