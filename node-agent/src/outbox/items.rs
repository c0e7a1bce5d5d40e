//! What waits in the outbox: chunk completions and failures (mirrors of the wire requests, so
//! they survive a restart as JSON) and health samples, with their conversions to and from `pb`.

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

/// A chunk rendered to completion, waiting to be reported (mirrors `pb::CompletedChunk`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChunkCompletion {
    pub frame_job_id: String,
    pub lease_token: i64,
    pub outputs: Vec<FrameOutputRecord>,
    pub render_seconds: f64,
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
            export: None,
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
