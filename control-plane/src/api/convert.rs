//! Domain → protobuf conversions for responses. (Requests are validated in each service's
//! handler, where the field names are known.)

use std::time::Duration;

use chrono::{DateTime, Utc};
use flatrender_proto::{
    content::{Field, ProjectAudio, Resolution, SceneContent},
    pb,
};

use crate::{
    jobs::{
        AudioSpec, Job, OutputSpec, SceneSpec, TemplateSpec,
        model::{Assignment, ExportView},
    },
    views::{CacheEntryView, CrashView, FrameJobView, NodeView, PartitionView},
};

/// A timestamp for the wire.
pub fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// An optional timestamp for the wire.
pub fn timestamp_opt(at: Option<DateTime<Utc>>) -> Option<prost_types::Timestamp> {
    at.map(timestamp)
}

/// A duration for the wire.
pub fn duration(value: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(value.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(value.subsec_nanos()).unwrap_or(0),
    }
}

/// A wire duration as a std duration; negative or missing values are `None`.
pub fn from_duration(value: Option<&prost_types::Duration>) -> Option<Duration> {
    let value = value?;
    if value.seconds < 0 || value.nanos < 0 {
        return None;
    }
    Some(Duration::new(
        u64::try_from(value.seconds).ok()?,
        u32::try_from(value.nanos).ok()?,
    ))
}

/// Now plus `duration`; `None` when that is past what a timestamp can hold (a client-chosen
/// duration must never overflow into a panic).
pub fn from_now(duration: Duration) -> Option<DateTime<Utc>> {
    Utc::now().checked_add_signed(chrono::Duration::from_std(duration).ok()?)
}

/// A wire timestamp as a chrono time.
pub fn from_timestamp(value: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    let value = value?;
    DateTime::from_timestamp(value.seconds, u32::try_from(value.nanos).ok()?)
}

/// A template reference for the wire.
pub fn template(spec: &TemplateSpec) -> pb::TemplateRef {
    pb::TemplateRef {
        template_id: spec.template_id.to_string(),
        version: spec.version,
        download_url: spec.url.to_string(),
        blake3_hex: spec.hash.to_hex(),
        size_bytes: spec.size_bytes,
    }
}

fn output(spec: &OutputSpec) -> pb::OutputSettings {
    pb::OutputSettings {
        output_name: spec.output_name.to_string(),
        output_module_template: spec.output_module_template.clone().unwrap_or_default(),
        render_settings_template: spec.render_settings_template.clone().unwrap_or_default(),
        container: spec.container.clone(),
        width: spec.width,
        height: spec.height,
        resolution: spec.resolution.map_or(0, Resolution::to_wire),
    }
}

fn audio(track: &Option<AudioSpec>) -> Option<pb::AudioTrack> {
    track.as_ref().map(|track| pb::AudioTrack {
        url: track.url.to_string(),
        volume: track.volume.get(),
    })
}

/// A job for the wire.
pub fn job(job: &Job) -> pb::RenderJob {
    let spec = &job.spec;
    pb::RenderJob {
        id: job.id.to_string(),
        tenant_id: spec.tenant_id.to_string(),
        user_id: spec.user_id.to_string(),
        saved_project_id: spec.saved_project_id.map(|id| id.to_string()).unwrap_or_default(),
        idempotency_key: spec.idempotency_key.clone().unwrap_or_default(),
        kind: spec.kind.to_wire(),
        priority: i32::from(spec.priority),
        template: Some(template(&spec.template)),
        composition: spec.composition.to_string(),
        frame_range: Some(spec.frame_range.into()),
        fps: spec.fps,
        output: Some(output(&spec.output)),
        music: audio(&spec.music),
        sfx: audio(&spec.sfx),
        voiceover: audio(&spec.voiceover),
        has_voiceover: spec.voiceover.is_some() || spec.audio.as_ref().is_some_and(|audio| audio.voiceover.is_some()),
        requirements: Some(pb::NodeRequirements {
            os: spec.requirements.os.map_or(0, |os| os.to_wire()),
            ae_version: spec.requirements.ae_version.clone().unwrap_or_default(),
            tags: spec.requirements.tags.clone(),
        }),
        status: job.status.to_wire(),
        progress: Some(pb::JobProgress {
            frames_total: job.progress.frames_total,
            frames_done: job.progress.frames_done,
            chunks_total: job.progress.chunks_total,
            chunks_completed: job.progress.chunks_completed,
            chunks_leased: job.progress.chunks_leased,
            eta: if job.status.is_terminal() {
                None
            } else {
                job.progress.eta().map(duration)
            },
        }),
        failure_reason: job.failure_reason.clone().unwrap_or_default(),
        created_at: Some(timestamp(job.created_at)),
        started_at: timestamp_opt(job.started_at),
        finished_at: timestamp_opt(job.finished_at),
        updated_at: Some(timestamp(job.updated_at)),
        scenes: spec.scenes.iter().map(scene).collect(),
        audio: spec.audio.as_ref().map(ProjectAudio::to_wire),
        export: job.export.as_ref().map(export),
    }
}

fn export(view: &ExportView) -> pb::Export {
    pb::Export {
        id: view.id.to_string(),
        location: view.location.clone(),
        format: view.format.clone(),
        width: view.width.unwrap_or_default(),
        height: view.height.unwrap_or_default(),
        size_bytes: view.size_bytes.unwrap_or_default(),
        duration: view
            .duration_ms
            .map(|ms| duration(std::time::Duration::from_millis(u64::try_from(ms).unwrap_or_default()))),
        blake3_hex: view.blake3_hex.clone().unwrap_or_default(),
        video_codec: view.video_codec.clone().unwrap_or_default(),
        audio_codec: view.audio_codec.clone().unwrap_or_default(),
        created_at: Some(timestamp(view.created_at)),
    }
}

fn scene(spec: &SceneSpec) -> pb::Scene {
    pb::Scene {
        scene_id: spec.scene_id.map(|id| id.to_string()).unwrap_or_default(),
        composition: spec.composition.to_string(),
        frame_range: Some(spec.frame_range.into()),
        fields: spec.fields.iter().map(Field::to_wire).collect(),
    }
}

/// An assignment for the wire.
pub fn assignment(assignment: &Assignment) -> pb::WorkAssignment {
    pb::WorkAssignment {
        frame_job_id: assignment.frame_job_id.to_string(),
        lease_token: assignment.lease_token.get(),
        lease_expires_at: Some(timestamp(assignment.lease_expires_at)),
        job_id: assignment.job_id.to_string(),
        tenant_id: assignment.tenant_id.to_string(),
        chunk_index: assignment.chunk_index,
        frame_range: Some(assignment.frame_range.into()),
        // An encode item renders nothing: no template or composition.
        template: assignment.encode.is_none().then(|| template(&assignment.template)),
        composition: if assignment.encode.is_some() {
            String::new()
        } else {
            assignment.composition.to_string()
        },
        fps: assignment.fps,
        output: Some(output(&assignment.output)),
        frames_already_written: assignment.frames_already_written.clone(),
        attempt: assignment.attempt,
        scene: assignment.scene.as_ref().map(SceneContent::to_wire),
        kind: if assignment.encode.is_some() {
            pb::WorkKind::Encode
        } else {
            pb::WorkKind::Render
        } as i32,
        encode: assignment.encode.as_ref().map(|work| pb::EncodeWork {
            scenes: work
                .scenes
                .iter()
                .map(|scene| pb::EncodeScene {
                    index: i32::try_from(scene.index).unwrap_or(i32::MAX),
                    frame_range: Some(scene.frames.into()),
                })
                .collect(),
            audio: work.audio.as_ref().map(ProjectAudio::to_wire),
        }),
    }
}

/// A node for the wire.
pub(crate) fn node(view: &NodeView) -> pb::Node {
    pb::Node {
        id: view.id.to_string(),
        name: view.name.clone(),
        hostname: view.hostname.clone(),
        os: view.os.to_wire(),
        os_version: view.os_version.clone().unwrap_or_default(),
        ae_version: view.ae_version.clone().unwrap_or_default(),
        agent_version: view.agent_version.clone(),
        cpu_cores: view.cpu_cores,
        memory_bytes: view.memory_bytes,
        tags: view.tags.clone(),
        max_leases: view.max_leases,
        state: view.state.to_wire(),
        state_reason: view.state_reason.clone().unwrap_or_default(),
        state_changed_at: Some(timestamp(view.state_changed_at)),
        drain_deadline: timestamp_opt(view.drain_deadline),
        last_seen_at: timestamp_opt(view.last_seen_at),
        registered_at: Some(timestamp(view.registered_at)),
        running_leases: i32::try_from(view.running_leases).unwrap_or(i32::MAX),
        capabilities: Some(pb::NodeCapabilities {
            encoder: view.capabilities.encoder.as_ref().map(|encoder| pb::Encoder {
                ffmpeg_version: encoder.ffmpeg.clone(),
                ffprobe_version: encoder.ffprobe.clone(),
            }),
            encode_only: view.capabilities.encode_only,
        }),
    }
}

/// A chunk for the wire.
pub(crate) fn frame_job(view: &FrameJobView) -> pb::FrameJob {
    pb::FrameJob {
        id: view.id.to_string(),
        job_id: view.job_id.to_string(),
        tenant_id: view.tenant_id.to_string(),
        chunk_index: view.chunk_index,
        frame_range: Some(pb::FrameRange {
            start: view.frame_range.start(),
            end: view.frame_range.end(),
        }),
        state: view.state.to_wire(),
        attempt: view.attempt,
        node_id: view.lease_node_id.map(|id| id.to_string()).unwrap_or_default(),
        lease_expires_at: timestamp_opt(view.lease_expires_at),
        frames_done: view.frames_done,
        last_error_class: view.last_error_class.clone().unwrap_or_default(),
        last_error: view.last_error.clone().unwrap_or_default(),
        node_name: view.lease_node_name.clone().unwrap_or_default(),
        kind: if view.encode {
            pb::WorkKind::Encode
        } else {
            pb::WorkKind::Render
        } as i32,
    }
}

/// A crash for the wire.
pub(crate) fn crash(view: CrashView) -> pb::Crash {
    pb::Crash {
        id: view.id.to_string(),
        node_id: view.node_id.to_string(),
        node_name: view.node_name,
        job_id: view.job_id.map(|id| id.to_string()).unwrap_or_default(),
        frame_job_id: view.frame_job_id.map(|id| id.to_string()).unwrap_or_default(),
        crash_class: view.crash_class.to_wire(),
        error_class: view.error_class.unwrap_or_default(),
        exit_code: view.exit_code,
        log_tail: view.log_tail.unwrap_or_default(),
        recovery_action: view.recovery_action.to_wire(),
        occurred_at: Some(timestamp(view.occurred_at)),
        recovered_at: timestamp_opt(view.recovered_at),
    }
}

/// A cache entry for the wire.
pub(crate) fn cache_entry(view: &CacheEntryView) -> pb::CacheEntryView {
    pb::CacheEntryView {
        blake3_hex: view.hash.to_hex(),
        template_id: view.template_id.map(|id| id.to_string()).unwrap_or_default(),
        template_version: view.template_version.unwrap_or(0),
        size_bytes: view.size_bytes,
        hits: view.hits,
        last_used_at: Some(timestamp(view.last_used_at)),
    }
}

/// A partition for the wire.
pub(crate) fn partition(view: PartitionView) -> pb::Partition {
    pb::Partition {
        parent: view.parent,
        name: view.name,
        range_start: timestamp_opt(view.range_start),
        range_end: timestamp_opt(view.range_end),
        approximate_rows: view.approximate_rows,
    }
}
