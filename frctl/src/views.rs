//! The JSON contract: serde structs with stable snake_case keys, built from wire messages.
//! Timestamps are RFC 3339 strings (UTC), enums lower snake strings, unknown values `"unknown"`,
//! empty optional text `null`. Adding keys is compatible; renaming or removing one is not.

use flatrender_proto::{
    content, pb,
    types::{CrashClass, FrameJobState, JobKind, JobStatus, NodeState, OperatingSystem, RecoveryAction},
};
use serde::Serialize;

use crate::output::{non_empty, rfc3339, seconds};

/// Wire enum number → its lower snake name (`"unknown"` for values this frctl does not know).
macro_rules! enum_name {
    ($name:ident, $domain:ident) => {
        /// The lower snake name of a wire value.
        pub fn $name(value: i32) -> &'static str {
            $domain::from_wire(value, stringify!($name)).map_or("unknown", |parsed| parsed.as_str())
        }
    };
}

enum_name!(node_state, NodeState);
enum_name!(job_status, JobStatus);
enum_name!(job_kind, JobKind);
enum_name!(chunk_state, FrameJobState);
enum_name!(crash_class, CrashClass);
enum_name!(recovery_action, RecoveryAction);
enum_name!(os_name, OperatingSystem);

/// A render node.
#[derive(Debug, Serialize)]
pub struct NodeJson {
    id: String,
    name: String,
    hostname: String,
    os: &'static str,
    os_version: Option<String>,
    ae_version: Option<String>,
    agent_version: String,
    cpu_cores: i32,
    memory_bytes: i64,
    tags: Vec<String>,
    max_leases: i32,
    /// `ffmpeg -version`'s version; null: the node takes no encode work.
    ffmpeg_version: Option<String>,
    /// No After Effects: encode work only.
    encode_only: bool,
    state: &'static str,
    state_reason: Option<String>,
    state_changed_at: Option<String>,
    drain_deadline: Option<String>,
    last_seen_at: Option<String>,
    registered_at: Option<String>,
    running_leases: i32,
}

impl From<&pb::Node> for NodeJson {
    fn from(node: &pb::Node) -> Self {
        Self {
            id: node.id.clone(),
            name: node.name.clone(),
            hostname: node.hostname.clone(),
            os: os_name(node.os),
            os_version: non_empty(&node.os_version),
            ae_version: non_empty(&node.ae_version),
            agent_version: node.agent_version.clone(),
            cpu_cores: node.cpu_cores,
            memory_bytes: node.memory_bytes,
            tags: node.tags.clone(),
            max_leases: node.max_leases,
            ffmpeg_version: node
                .capabilities
                .as_ref()
                .and_then(|capabilities| capabilities.encoder.as_ref())
                .map(|encoder| encoder.ffmpeg_version.clone()),
            encode_only: node
                .capabilities
                .as_ref()
                .is_some_and(|capabilities| capabilities.encode_only),
            state: node_state(node.state),
            state_reason: non_empty(&node.state_reason),
            state_changed_at: rfc3339(node.state_changed_at.as_ref()),
            drain_deadline: rfc3339(node.drain_deadline.as_ref()),
            last_seen_at: rfc3339(node.last_seen_at.as_ref()),
            registered_at: rfc3339(node.registered_at.as_ref()),
            running_leases: node.running_leases,
        }
    }
}

/// A frame chunk.
#[derive(Debug, Serialize)]
pub struct ChunkJson {
    id: String,
    job_id: String,
    tenant_id: String,
    chunk_index: i32,
    /// "render" (a chunk of frames) or "encode" (the job's video).
    kind: &'static str,
    frame_start: i32,
    frame_end: i32,
    state: &'static str,
    attempt: i32,
    node_id: Option<String>,
    /// Name of the node in `node_id`.
    node_name: Option<String>,
    lease_expires_at: Option<String>,
    frames_done: i32,
    last_error_class: Option<String>,
    last_error: Option<String>,
}

impl ChunkJson {
    /// The view of a chunk.
    pub fn new(chunk: &pb::FrameJob) -> Self {
        let range = chunk.frame_range.unwrap_or_default();
        Self {
            id: chunk.id.clone(),
            job_id: chunk.job_id.clone(),
            tenant_id: chunk.tenant_id.clone(),
            chunk_index: chunk.chunk_index,
            kind: if chunk.kind() == pb::WorkKind::Encode {
                "encode"
            } else {
                "render"
            },
            frame_start: range.start,
            frame_end: range.end,
            state: chunk_state(chunk.state),
            attempt: chunk.attempt,
            node_id: non_empty(&chunk.node_id),
            node_name: non_empty(&chunk.node_name),
            lease_expires_at: rfc3339(chunk.lease_expires_at.as_ref()),
            frames_done: chunk.frames_done,
            last_error_class: non_empty(&chunk.last_error_class),
            last_error: non_empty(&chunk.last_error),
        }
    }
}

/// A template in a node's cache.
#[derive(Debug, Serialize)]
pub struct CacheEntryJson {
    blake3_hex: String,
    template_id: Option<String>,
    template_version: i32,
    size_bytes: i64,
    hits: i64,
    last_used_at: Option<String>,
}

impl From<&pb::CacheEntryView> for CacheEntryJson {
    fn from(entry: &pb::CacheEntryView) -> Self {
        Self {
            blake3_hex: entry.blake3_hex.clone(),
            template_id: non_empty(&entry.template_id),
            template_version: entry.template_version,
            size_bytes: entry.size_bytes,
            hits: entry.hits,
            last_used_at: rfc3339(entry.last_used_at.as_ref()),
        }
    }
}

/// Progress of a job.
#[derive(Debug, Serialize)]
pub struct ProgressJson {
    frames_total: i32,
    frames_done: i32,
    chunks_total: i32,
    chunks_completed: i32,
    chunks_leased: i32,
    /// Server estimate of the time left, whole seconds; null when unknown.
    eta_seconds: Option<u64>,
}

/// A render job.
#[derive(Debug, Serialize)]
pub struct JobJson {
    id: String,
    tenant_id: String,
    user_id: String,
    kind: &'static str,
    priority: i32,
    status: &'static str,
    composition: String,
    frame_start: i32,
    frame_end: i32,
    fps: f64,
    template_id: Option<String>,
    template_version: Option<i32>,
    output_name: Option<String>,
    progress: ProgressJson,
    /// A saved project's scenes in play order (empty for a single-composition job).
    scenes: Vec<SceneJson>,
    /// The delivered video, once completed.
    export: Option<ExportJson>,
    failure_reason: Option<String>,
    created_at: Option<String>,
    started_at: Option<String>,
    finished_at: Option<String>,
    updated_at: Option<String>,
}

impl From<&pb::RenderJob> for JobJson {
    fn from(job: &pb::RenderJob) -> Self {
        let range = job.frame_range.unwrap_or_default();
        let progress = job.progress.unwrap_or_default();
        Self {
            id: job.id.clone(),
            tenant_id: job.tenant_id.clone(),
            user_id: job.user_id.clone(),
            kind: job_kind(job.kind),
            priority: job.priority,
            status: job_status(job.status),
            composition: job.composition.clone(),
            frame_start: range.start,
            frame_end: range.end,
            fps: job.fps,
            template_id: job
                .template
                .as_ref()
                .and_then(|template| non_empty(&template.template_id)),
            template_version: job.template.as_ref().map(|template| template.version),
            output_name: job.output.as_ref().and_then(|output| non_empty(&output.output_name)),
            progress: ProgressJson {
                frames_total: progress.frames_total,
                frames_done: progress.frames_done,
                chunks_total: progress.chunks_total,
                chunks_completed: progress.chunks_completed,
                chunks_leased: progress.chunks_leased,
                eta_seconds: seconds(progress.eta.as_ref()),
            },
            scenes: (0..)
                .zip(&job.scenes)
                .map(|(index, scene)| SceneJson::new(index, scene))
                .collect(),
            export: job.export.as_ref().map(ExportJson::from),
            failure_reason: non_empty(&job.failure_reason),
            created_at: rfc3339(job.created_at.as_ref()),
            started_at: rfc3339(job.started_at.as_ref()),
            finished_at: rfc3339(job.finished_at.as_ref()),
            updated_at: rfc3339(job.updated_at.as_ref()),
        }
    }
}

/// A job's delivered video.
#[derive(Debug, Serialize)]
pub struct ExportJson {
    /// Path on the shared export folder, or URL.
    pub location: String,
    /// mp4, mov, webm or gif.
    pub format: String,
    /// Pixels.
    pub width: i32,
    /// Pixels.
    pub height: i32,
    /// File size.
    pub size_bytes: i64,
    /// Length in seconds.
    pub duration_seconds: Option<f64>,
    /// BLAKE3 of the file.
    pub blake3_hex: String,
    /// Codec names as ffprobe gives them.
    pub video_codec: String,
    /// Empty: no audio stream (gif).
    pub audio_codec: String,
}

impl From<&pb::Export> for ExportJson {
    fn from(export: &pb::Export) -> Self {
        Self {
            location: export.location.clone(),
            format: export.format.clone(),
            width: export.width,
            height: export.height,
            size_bytes: export.size_bytes,
            duration_seconds: export
                .duration
                .as_ref()
                .map(|duration| duration.seconds as f64 + f64::from(duration.nanos) / 1e9),
            blake3_hex: export.blake3_hex.clone(),
            video_codec: export.video_codec.clone(),
            audio_codec: export.audio_codec.clone(),
        }
    }
}

/// A scene of a saved-project job.
#[derive(Debug, Serialize)]
pub struct SceneJson {
    /// Play order, from 0.
    pub index: i32,
    /// `content.scenes` id, when it has one.
    pub scene_id: Option<String>,
    /// Its composition.
    pub composition: String,
    /// First frame of the composition rendered.
    pub frame_start: i32,
    /// Last frame, inclusive.
    pub frame_end: i32,
    /// Field keys with their kinds (`headline:text`); empty when the server left values out.
    pub fields: Vec<String>,
}

impl SceneJson {
    /// The scene at `index` in play order.
    pub fn new(index: i32, scene: &pb::Scene) -> Self {
        let range = scene.frame_range.unwrap_or_default();
        let fields = scene
            .fields
            .iter()
            .map(|field| {
                let kind = field.value.as_ref().map_or("unknown", content::wire_kind);
                format!("{}:{kind}", field.key)
            })
            .collect();
        Self {
            index,
            scene_id: non_empty(&scene.scene_id),
            composition: scene.composition.clone(),
            frame_start: range.start,
            frame_end: range.end,
            fields,
        }
    }
}

/// A recorded render failure.
#[derive(Debug, Serialize)]
pub struct CrashJson {
    id: String,
    node_id: String,
    node_name: String,
    job_id: Option<String>,
    frame_job_id: Option<String>,
    crash_class: &'static str,
    error_class: Option<String>,
    exit_code: Option<i32>,
    log_tail: Option<String>,
    recovery_action: &'static str,
    occurred_at: Option<String>,
    recovered_at: Option<String>,
}

impl From<&pb::Crash> for CrashJson {
    fn from(crash: &pb::Crash) -> Self {
        Self {
            id: crash.id.clone(),
            node_id: crash.node_id.clone(),
            node_name: crash.node_name.clone(),
            job_id: non_empty(&crash.job_id),
            frame_job_id: non_empty(&crash.frame_job_id),
            crash_class: crash_class(crash.crash_class),
            error_class: non_empty(&crash.error_class),
            exit_code: crash.exit_code,
            log_tail: non_empty(&crash.log_tail),
            recovery_action: recovery_action(crash.recovery_action),
            occurred_at: rfc3339(crash.occurred_at.as_ref()),
            recovered_at: rfc3339(crash.recovered_at.as_ref()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Enum numbers become the documented lower snake names; unknown numbers say so.
    #[test]
    fn enums_are_lower_snake_names() {
        assert_eq!(node_state(pb::NodeState::Draining as i32), "draining");
        assert_eq!(crash_class(pb::CrashClass::TemplateError as i32), "template_error");
        assert_eq!(job_status(0), "unknown");
        assert_eq!(job_status(99), "unknown");
    }

    /// Node JSON keeps its documented keys and null for empty text.
    #[test]
    fn node_json_keys_are_stable() {
        let node = pb::Node {
            id: "id".into(),
            name: "node-a".into(),
            state: pb::NodeState::Online as i32,
            ..Default::default()
        };
        let value = serde_json::to_value(NodeJson::from(&node)).unwrap();
        assert_eq!(value["state"], "online");
        assert!(value["state_reason"].is_null());
        assert!(value.get("running_leases").is_some());
    }
}
