//! Submission: validation at the edge (every error names its field), then `jobs::submit`.

use flatrender_proto::{
    pb,
    types::{
        ContentHash, FieldError, HttpUrl, JobKind, OperatingSystem, SafeName, TemplateId, TenantId, UserId, Volume,
    },
};
use tonic::Request;
use tracing::instrument;
use uuid::Uuid;

use super::{CALLERS, project};
use crate::{
    api::{AppState, bounded_text, convert, validate_tags},
    error::{ControlPlaneError, ControlPlaneResult},
    jobs::{self, AudioSpec, NewJob, OutputSpec, Requirements, TemplateSpec, model::is_video_container},
};

const MAX_TEMPLATE_BYTES: i64 = 64 * 1024 * 1024 * 1024;
const CONTAINERS: &[&str] = &["mp4", "mov", "webm", "gif", "png_sequence"];

/// Validates a submission, naming the first bad field.
pub fn validate_submission(request: &pb::SubmitRenderJobRequest) -> Result<NewJob, FieldError> {
    let tenant_id = TenantId::parse_field(&request.tenant_id, "tenant_id")?;
    let user_id = UserId::parse_field(&request.user_id, "user_id")?;
    let saved_project_id = if request.saved_project_id.is_empty() {
        None
    } else {
        Some(
            Uuid::parse_str(&request.saved_project_id)
                .map_err(|_| FieldError::new("saved_project_id", "must be a UUID"))?,
        )
    };
    let idempotency_key = match bounded_text(&request.idempotency_key, "idempotency_key", 200)? {
        key if key.is_empty() => None,
        key => Some(key),
    };
    let kind = JobKind::from_wire_optional(request.kind, "kind")?.unwrap_or(JobKind::Export);
    let priority = match request.priority {
        0 => kind.default_priority(),
        value @ 1..=100 => value as i16,
        _ => return Err(FieldError::new("priority", "must be between 0 and 100")),
    };
    let template = request
        .template
        .as_ref()
        .ok_or_else(|| FieldError::new("template", "is required"))?;
    let template = TemplateSpec {
        template_id: TemplateId::parse_field(&template.template_id, "template.template_id")?,
        version: if template.version > 0 {
            template.version
        } else {
            return Err(FieldError::new("template.version", "must be > 0"));
        },
        url: HttpUrl::parse(&template.download_url, "template.download_url")?,
        hash: ContentHash::parse_hex(&template.blake3_hex, "template.blake3_hex")?,
        size_bytes: if (1..=MAX_TEMPLATE_BYTES).contains(&template.size_bytes) {
            template.size_bytes
        } else {
            return Err(FieldError::new(
                "template.size_bytes",
                format!("must be between 1 and {MAX_TEMPLATE_BYTES}"),
            ));
        },
    };
    let timeline = project::timeline(request)?;
    if !request.fps.is_finite() || request.fps <= 0.0 || request.fps > 240.0 {
        return Err(FieldError::new("fps", "must be > 0 and <= 240"));
    }
    let duration_ms = timeline.frame_range.len() as f64 * 1000.0 / request.fps;
    let output = validate_output(request.output.as_ref())?;
    let audio = |track: &Option<pb::AudioTrack>, field: &str| -> Result<Option<AudioSpec>, FieldError> {
        let Some(track) = track else {
            return Ok(None);
        };
        Ok(Some(AudioSpec {
            url: HttpUrl::parse(&track.url, &format!("{field}.url"))?,
            volume: Volume::new(track.volume, &format!("{field}.volume"))?,
        }))
    };
    let music = audio(&request.music, "music")?;
    let sfx = audio(&request.sfx, "sfx")?;
    let voiceover = audio(&request.voiceover, "voiceover")?;
    let project_audio = project::audio(request, duration_ms)?;
    // A video's audio is mixed by a node that must verify each file: the URL-only tracks carry
    // no checksum, so they would be mixed unverified or dropped silently. Neither: refused.
    if is_video_container(&output.container) {
        for (track, field) in [(&music, "music"), (&sfx, "sfx"), (&voiceover, "voiceover")] {
            if track.is_some() {
                return Err(FieldError::new(
                    field,
                    format!(
                        "a {} is mixed from `audio` (each file with its BLAKE3); the URL-only tracks \
                         are kept for png_sequence jobs only",
                        output.container
                    ),
                ));
            }
        }
    }
    let voiceover_given = voiceover.is_some() || project_audio.as_ref().is_some_and(|audio| audio.voiceover.is_some());
    if request.has_voiceover != voiceover_given {
        return Err(FieldError::new(
            "has_voiceover",
            "must be true exactly when a voiceover is given (voiceover or audio.voiceover)",
        ));
    }
    let requirements = validate_requirements(request.requirements.as_ref())?;
    Ok(NewJob {
        tenant_id,
        user_id,
        saved_project_id,
        idempotency_key,
        kind,
        priority,
        template,
        composition: timeline.composition,
        frame_range: timeline.frame_range,
        scenes: timeline.scenes,
        fps: request.fps,
        output,
        music,
        sfx,
        voiceover,
        audio: project_audio,
        requirements,
    })
}

fn validate_output(output: Option<&pb::OutputSettings>) -> Result<OutputSpec, FieldError> {
    let default = pb::OutputSettings::default();
    let output = output.unwrap_or(&default);
    let output_name = if output.output_name.is_empty() {
        "frame"
    } else {
        output.output_name.as_str()
    };
    let template_name = |value: &str, field: &str| -> Result<Option<String>, FieldError> {
        let name = bounded_text(value, field, 255)?;
        if name.contains(['/', '\\']) {
            return Err(FieldError::new(field, "must not contain path separators"));
        }
        Ok(if name.is_empty() { None } else { Some(name) })
    };
    let container = if output.container.is_empty() {
        "png_sequence"
    } else {
        output.container.as_str()
    };
    if !CONTAINERS.contains(&container) {
        return Err(FieldError::new(
            "output.container",
            format!("must be one of {}", CONTAINERS.join(", ")),
        ));
    }
    for (value, field) in [(output.width, "output.width"), (output.height, "output.height")] {
        if !(0..=16_384).contains(&value) {
            return Err(FieldError::new(field, "must be between 0 (the comp's size) and 16384"));
        }
    }
    let resolution = project::resolution(output, container)?;
    Ok(OutputSpec {
        output_name: SafeName::file_stem(output_name, "output.output_name")?,
        output_module_template: template_name(&output.output_module_template, "output.output_module_template")?,
        render_settings_template: template_name(&output.render_settings_template, "output.render_settings_template")?,
        container: container.to_owned(),
        width: output.width,
        height: output.height,
        resolution,
    })
}

fn validate_requirements(requirements: Option<&pb::NodeRequirements>) -> Result<Requirements, FieldError> {
    let Some(requirements) = requirements else {
        return Ok(Requirements::default());
    };
    let os = OperatingSystem::from_wire_optional(requirements.os, "requirements.os")?;
    let ae_version = match requirements.ae_version.as_str() {
        "" => None,
        version if version.len() <= 32 && version.chars().all(|c| c.is_ascii_digit() || c == '.') => {
            Some(version.to_owned())
        }
        _ => {
            return Err(FieldError::new(
                "requirements.ae_version",
                "must be a version such as 24 or 24.1",
            ));
        }
    };
    validate_tags(&requirements.tags, "requirements.tags")?;
    Ok(Requirements {
        os,
        ae_version,
        tags: requirements.tags.clone(),
    })
}

#[instrument(skip_all, fields(tenant_id = %request.get_ref().tenant_id))]
pub(super) async fn submit_render_job(
    state: &AppState,
    request: Request<pb::SubmitRenderJobRequest>,
) -> ControlPlaneResult<pb::SubmitRenderJobResponse> {
    let principal = state.authorize(&request, CALLERS).await?;
    let new_job = validate_submission(request.get_ref())?;
    if !principal.can_access(new_job.tenant_id) {
        return Err(ControlPlaneError::PermissionDenied(format!(
            "this token cannot submit for tenant {}",
            new_job.tenant_id
        )));
    }
    let (job, created) = jobs::submit(&state.pool, &new_job, &state.config.dispatch).await?;
    if created {
        state.dispatcher.work_added();
    }
    Ok(pb::SubmitRenderJobResponse {
        job: Some(convert::job(&job)),
        created,
    })
}
