//! Job domain types: a validated submission, a job as read back, its progress. Pure values: the
//! operations are in `jobs`, the rows in `db::jobs`, and both convert into these.

use std::time::Duration;

use chrono::{DateTime, Utc};
use flatrender_proto::content::{Field, ProjectAudio, Resolution, SceneContent};
use flatrender_proto::types::{
    ContentHash, FrameJobId, FrameRange, HttpUrl, JobId, JobKind, JobStatus, LeaseToken, OperatingSystem, SafeName,
    TemplateId, TenantId, UserId, Volume,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The template a job renders.
#[derive(Clone, Debug, PartialEq)]
pub struct TemplateSpec {
    /// `content.templates.id`.
    pub template_id: TemplateId,
    /// Template version.
    pub version: i32,
    /// Where agents download it.
    pub url: HttpUrl,
    /// BLAKE3 of the file.
    pub hash: ContentHash,
    /// File size.
    pub size_bytes: i64,
}

/// How frames are written (stored as `render_jobs.output_settings`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputSpec {
    /// Frame file stem.
    pub output_name: SafeName,
    /// AE output module template, if not the default.
    pub output_module_template: Option<String>,
    /// AE render settings template, if not the default.
    pub render_settings_template: Option<String>,
    /// Final container.
    pub container: String,
    /// Width in pixels (0: the comp's).
    pub width: i32,
    /// Height in pixels (0: the comp's).
    pub height: i32,
    /// Size of the encoded video as requested (`None`: 1080p for video containers). Absent from
    /// the stored JSON when unset, so jobs stored before it existed hash and read alike.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
}

/// One chunk to create: its frames, and its scene for a project (`None`: the job's composition).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkPlan {
    /// Index of the scene in play order.
    pub scene_index: Option<i32>,
    /// Frames, in the scene's composition's numbering.
    pub frames: FrameRange,
}

/// A scene of a saved project: a composition of the template, its frames, the user's values.
#[derive(Clone, Debug, PartialEq)]
pub struct SceneSpec {
    /// `content.scenes.id`, when the scene has one.
    pub scene_id: Option<Uuid>,
    /// Its composition.
    pub composition: SafeName,
    /// Its frames, in the composition's numbering.
    pub frame_range: FrameRange,
    /// The user's values (empty when read without them: lists and watches).
    pub fields: Vec<Field>,
}

/// One audio track.
#[derive(Clone, Debug, PartialEq)]
pub struct AudioSpec {
    /// Where it is.
    pub url: HttpUrl,
    /// Its gain.
    pub volume: Volume,
}

/// What a node must offer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Requirements {
    /// Operating system, if it matters.
    pub os: Option<OperatingSystem>,
    /// After Effects version prefix, if it matters.
    pub ae_version: Option<String>,
    /// Tags the node must carry.
    pub tags: Vec<String>,
}

/// A validated submission.
#[derive(Clone, Debug, PartialEq)]
pub struct NewJob {
    /// Owner tenant.
    pub tenant_id: TenantId,
    /// Submitting user.
    pub user_id: UserId,
    /// `studio.saved_projects.id`.
    pub saved_project_id: Option<Uuid>,
    /// Client idempotency key.
    pub idempotency_key: Option<String>,
    /// Export, preview or snapshot.
    pub kind: JobKind,
    /// 0..=100.
    pub priority: i16,
    /// Template.
    pub template: TemplateSpec,
    /// Composition to render (a project's: its first scene's).
    pub composition: SafeName,
    /// Frames (a project's: the video's frames, numbered from 0).
    pub frame_range: FrameRange,
    /// A saved project's scenes in play order; empty for a single-composition job.
    pub scenes: Vec<SceneSpec>,
    /// Frames per second.
    pub fps: f64,
    /// Output.
    pub output: OutputSpec,
    /// Music track.
    pub music: Option<AudioSpec>,
    /// Sound effects track.
    pub sfx: Option<AudioSpec>,
    /// Voiceover track (`has_voiceover` is derived from it).
    pub voiceover: Option<AudioSpec>,
    /// A project's audio in full (music, cues, voiceover).
    pub audio: Option<ProjectAudio>,
    /// Node requirements.
    pub requirements: Requirements,
}

impl NewJob {
    /// BLAKE3 of the canonical submission: every field, labelled and length-prefixed, so two
    /// requests hash alike exactly when they ask for the same job. A resubmission under an
    /// idempotency key must match the stored hash. A field added to `NewJob` must be added here.
    pub fn request_hash(&self) -> [u8; 32] {
        let mut canonical = Canonical::default();
        canonical.put("tenant_id", &self.tenant_id.to_string());
        canonical.put("user_id", &self.user_id.to_string());
        canonical.put_opt("saved_project_id", self.saved_project_id.map(|id| id.to_string()));
        canonical.put_opt("idempotency_key", self.idempotency_key.clone());
        canonical.put("kind", self.kind.as_str());
        canonical.put("priority", &self.priority.to_string());
        canonical.put("template.id", &self.template.template_id.to_string());
        canonical.put("template.version", &self.template.version.to_string());
        canonical.put("template.url", self.template.url.as_str());
        canonical.put("template.hash", &self.template.hash.to_hex());
        canonical.put("template.size_bytes", &self.template.size_bytes.to_string());
        canonical.put("composition", self.composition.as_str());
        canonical.put("frame_range", &self.frame_range.to_string());
        // Bit-exact: 25.0 and 25.000001 are different jobs.
        canonical.put("fps", &self.fps.to_bits().to_string());
        let output = serde_json::to_string(&self.output).unwrap_or_default();
        canonical.put("output", &output);
        for (name, track) in [
            ("music", &self.music),
            ("sfx", &self.sfx),
            ("voiceover", &self.voiceover),
        ] {
            canonical.put_opt(
                name,
                track
                    .as_ref()
                    .map(|track| format!("{} {}", track.url.as_str(), track.volume.get().to_bits())),
            );
        }
        canonical.put_opt("requirements.os", self.requirements.os.map(|os| os.as_str().to_owned()));
        canonical.put_opt("requirements.ae_version", self.requirements.ae_version.clone());
        let mut tags = self.requirements.tags.clone();
        tags.sort();
        tags.dedup();
        canonical.put("requirements.tags", &tags.join(","));
        // Labelled only when present, so a single-composition job hashes as it did before
        // projects existed (its stored hash must still match a resubmission).
        for (index, scene) in self.scenes.iter().enumerate() {
            canonical.put(&format!("scenes[{index}].scene_id"), &format!("{:?}", scene.scene_id));
            canonical.put(&format!("scenes[{index}].composition"), scene.composition.as_str());
            canonical.put(&format!("scenes[{index}].frame_range"), &scene.frame_range.to_string());
            let fields = serde_json::to_string(&scene.fields).unwrap_or_default();
            canonical.put(&format!("scenes[{index}].fields"), &fields);
        }
        if let Some(audio) = &self.audio {
            canonical.put("audio", &serde_json::to_string(audio).unwrap_or_default());
        }
        *canonical.hasher.finalize().as_bytes()
    }
}

/// Builds a canonical byte string of labelled, length-prefixed values, hashing as it goes.
#[derive(Default)]
struct Canonical {
    hasher: blake3::Hasher,
}

impl Canonical {
    fn put(&mut self, label: &str, value: &str) {
        for part in [label, value] {
            self.hasher.update(&(part.len() as u64).to_le_bytes());
            self.hasher.update(part.as_bytes());
        }
    }

    fn put_opt(&mut self, label: &str, value: Option<String>) {
        match value {
            // A present empty value and an absent one differ.
            Some(value) => self.put(label, &format!("={value}")),
            None => self.put(label, ""),
        }
    }
}

/// Progress figures of a job.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JobProgressView {
    /// Frames in the job.
    pub frames_total: i32,
    /// Frames rendered so far.
    pub frames_done: i32,
    /// Chunks in the job.
    pub chunks_total: i32,
    /// Chunks completed.
    pub chunks_completed: i32,
    /// Chunks under a live lease.
    pub chunks_leased: i32,
    /// Observed render time per frame, when any chunk finished.
    pub seconds_per_frame: Option<f64>,
}

impl JobProgressView {
    /// Time left: remaining frames × observed seconds per frame, divided by the chunks running
    /// in parallel (at least one). `None` until a chunk has finished.
    pub fn eta(&self) -> Option<Duration> {
        let seconds_per_frame = self.seconds_per_frame?;
        let remaining = f64::from((self.frames_total - self.frames_done).max(0));
        let parallelism = f64::from(self.chunks_leased.max(1));
        Some(Duration::from_secs_f64(
            (remaining * seconds_per_frame / parallelism).max(0.0),
        ))
    }
}

/// A job as read back.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    /// Id.
    pub id: JobId,
    /// The submission.
    pub spec: NewJob,
    /// Attempts per chunk.
    pub max_attempts: i32,
    /// Current status.
    pub status: JobStatus,
    /// Progress.
    pub progress: JobProgressView,
    /// Why it failed.
    pub failure_reason: Option<String>,
    /// Submitted.
    pub created_at: DateTime<Utc>,
    /// First chunk leased.
    pub started_at: Option<DateTime<Utc>>,
    /// Reached a terminal state.
    pub finished_at: Option<DateTime<Utc>>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// The delivered video, once completed (`None` for a PNG sequence).
    pub export: Option<ExportView>,
}

/// A job's delivered video (`render.exports`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ExportView {
    /// Id.
    pub id: Uuid,
    /// Path on the shared folder or http(s) URL.
    pub location: String,
    /// mp4, mov, webm or gif.
    pub format: String,
    /// Pixels.
    pub width: Option<i32>,
    /// Pixels.
    pub height: Option<i32>,
    /// File size.
    pub size_bytes: Option<i64>,
    /// BLAKE3 of the file, lowercase hex.
    pub blake3_hex: Option<String>,
    /// Length.
    pub duration_ms: Option<i64>,
    /// ffprobe's video codec name.
    pub video_codec: Option<String>,
    /// ffprobe's audio codec name.
    pub audio_codec: Option<String>,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
}

/// A chunk leased to a node, with everything needed to render it.
#[derive(Clone, Debug)]
pub struct Assignment {
    /// The chunk.
    pub frame_job_id: FrameJobId,
    /// Fencing token of this lease.
    pub lease_token: LeaseToken,
    /// When the lease lapses unless renewed.
    pub lease_expires_at: DateTime<Utc>,
    /// Its job.
    pub job_id: JobId,
    /// The job's tenant.
    pub tenant_id: TenantId,
    /// Position in the job.
    pub chunk_index: i32,
    /// Frames to render.
    pub frame_range: FrameRange,
    /// Template to render from.
    pub template: TemplateSpec,
    /// Composition.
    pub composition: SafeName,
    /// Frames per second.
    pub fps: f64,
    /// Output settings.
    pub output: OutputSpec,
    /// Frames already written on earlier attempts.
    pub frames_already_written: Vec<i32>,
    /// 1 for the first lease of this chunk.
    pub attempt: i32,
    /// The saved-project scene of this chunk; `None` for a single-composition job.
    pub scene: Option<SceneContent>,
    /// Set for the job's encode item (then `frame_range` is the whole video's).
    pub encode: Option<EncodeWork>,
}

/// What a node needs to encode a job's video besides its fps and output settings.
#[derive(Clone, Debug, PartialEq)]
pub struct EncodeWork {
    /// A project's scenes in play order (empty: a single-composition job).
    pub scenes: Vec<EncodeScene>,
    /// The project's audio (`None`: a silent track).
    pub audio: Option<ProjectAudio>,
}

/// One scene's frames for the encode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodeScene {
    /// Play order.
    pub index: u32,
    /// Frames, in the scene's composition's numbering.
    pub frames: FrameRange,
}

/// Whether a job of this container is delivered as an encoded video (everything but a PNG
/// sequence, whose frames are the delivery).
pub fn is_video_container(container: &str) -> bool {
    container != "png_sequence"
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ETA divides the remaining work by the running parallelism, and is unknown before data.
    #[test]
    fn eta_from_observed_frame_times() {
        let mut progress = JobProgressView {
            frames_total: 100,
            frames_done: 40,
            chunks_total: 4,
            chunks_completed: 1,
            chunks_leased: 2,
            seconds_per_frame: None,
        };
        assert_eq!(progress.eta(), None);
        progress.seconds_per_frame = Some(0.5);
        assert_eq!(progress.eta(), Some(Duration::from_secs(15)));
    }
}
