//! An encode assignment read into what the encode needs ([`EncodePlan`]): the job, where each
//! scene's frames are (the render runner's layout, `runner::layout`), the frame rate, resolution
//! and container of the job's output, its audio and its output name.

use std::path::PathBuf;

use flatrender_proto::content::{ProjectAudio, Resolution};
use flatrender_proto::pb;
use flatrender_proto::types::{FieldError, FrameJobId, JobId, SafeName, TenantId};

use crate::config::AerenderConfig;
use crate::encode::{Container, SceneFrames};
use crate::runner::layout;

/// The delivered size when the job names none (OutputSettings.resolution: 1080p).
const DEFAULT_RESOLUTION: Resolution = Resolution::P1080;

/// Why an assignment cannot be encoded as given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum PlanError {
    /// A field this agent cannot read (a newer control plane, a bug): another node may.
    Malformed(String),
    /// The job's output name cannot name a file: the same everywhere.
    BadOutputName(String),
}

/// What one encode does.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct EncodePlan {
    pub tenant_id: TenantId,
    pub job_id: JobId,
    pub frame_job_id: FrameJobId,
    /// The scenes' frames in play order (absolute folders).
    pub scenes: Vec<SceneFrames>,
    pub fps: f64,
    pub resolution: Resolution,
    pub container: Container,
    /// The project's audio, start times not yet checked against the video's length (the spec
    /// does that, naming the track, so that a cue past the end fails the job as bad content).
    pub audio: Option<ProjectAudio>,
    /// The job's output name.
    pub stem: SafeName,
}

impl EncodePlan {
    /// Reads an encode assignment; frames are where this agent's `aerender` settings put them.
    pub fn from_assignment(assignment: &pb::WorkAssignment, aerender: &AerenderConfig) -> Result<Self, PlanError> {
        let malformed = |error: FieldError| PlanError::Malformed(format!("malformed encode assignment: {error}"));
        let tenant_id = TenantId::parse_field(&assignment.tenant_id, "tenant_id").map_err(malformed)?;
        let job_id = JobId::parse_field(&assignment.job_id, "job_id").map_err(malformed)?;
        let frame_job_id = FrameJobId::parse_field(&assignment.frame_job_id, "frame_job_id").map_err(malformed)?;
        let work = assignment
            .encode
            .as_ref()
            .ok_or_else(|| malformed(FieldError::new("encode", "is required for an encode item")))?;
        let output = assignment.output.clone().unwrap_or_default();
        let stem = SafeName::file_stem(&output.output_name, "output.output_name")
            .map_err(|error| PlanError::BadOutputName(error.to_string()))?;
        let container = Container::parse(&output.container).ok_or_else(|| {
            malformed(FieldError::new(
                "output.container",
                format!(
                    "{:?} is not a video this agent encodes (mp4, mov, webm, gif)",
                    output.container
                ),
            ))
        })?;
        let resolution = Resolution::from_wire_optional(output.resolution, "output.resolution")
            .map_err(malformed)?
            .unwrap_or(DEFAULT_RESOLUTION);
        let job = job_id.to_string();
        let scene_frames =
            |scene_index: Option<u32>, range: Option<&pb::FrameRange>, field: &str| -> Result<SceneFrames, PlanError> {
                let range = range.ok_or_else(|| malformed(FieldError::new(field, "is required")))?;
                let num_frames = i64::from(range.end) - i64::from(range.start) + 1;
                let num_frames = u32::try_from(num_frames)
                    .ok()
                    .filter(|frames| *frames > 0)
                    .ok_or_else(|| malformed(FieldError::new(field, "must have end >= start")))?;
                let frames = layout::frame_layout(aerender, &job, scene_index, &stem)
                    .map_err(|error| PlanError::Malformed(error.to_string()))?;
                Ok(SceneFrames {
                    dir: absolute(frames.dir),
                    pattern: frames.pattern,
                    first_frame: range.start,
                    num_frames,
                })
            };
        let scenes = if work.scenes.is_empty() {
            vec![scene_frames(None, assignment.frame_range.as_ref(), "frame_range")?]
        } else {
            work.scenes
                .iter()
                .enumerate()
                .map(|(position, scene)| {
                    let field = format!("encode.scenes[{position}]");
                    let index = u32::try_from(scene.index)
                        .map_err(|_| malformed(FieldError::new(format!("{field}.index"), "must be >= 0")))?;
                    scene_frames(Some(index), scene.frame_range.as_ref(), &format!("{field}.frame_range"))
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        // Starts are checked against the real length by `EncodeSpec::with_audio`, which names
        // the track and calls it bad content; here everything else about the audio is checked.
        let audio = work
            .audio
            .as_ref()
            .map(|audio| ProjectAudio::from_wire(audio, f64::INFINITY, "audio"))
            .transpose()
            .map_err(malformed)?;
        Ok(Self {
            tenant_id,
            job_id,
            frame_job_id,
            scenes,
            fps: assignment.fps,
            resolution,
            container,
            audio,
            stem,
        })
    }

    /// The export's file name: `<output name>.<container>`.
    pub fn file_name(&self) -> String {
        format!("{}.{}", self.stem.as_str(), self.container.as_str())
    }
}

/// ffmpeg is given absolute paths, whatever the agent's working folder.
fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
