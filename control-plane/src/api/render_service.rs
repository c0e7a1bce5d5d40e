//! `RenderService`: backends submit, read, list, cancel and watch render jobs. Service tokens
//! see only their tenants; another tenant's job is `NOT_FOUND`, never data.

use std::{pin::Pin, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use flatrender_proto::{
    convert::frame_range_from_wire,
    pb::{self, render_service_server::RenderService},
    types::{
        ContentHash, FieldError, HttpUrl, JobId, JobKind, JobStatus, OperatingSystem, SafeName, TemplateId, TenantId,
        TokenKind, UserId, Volume,
    },
};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use tracing::instrument;
use uuid::Uuid;

use super::{AppState, bounded_text, convert, page_size, validate_tags};
use crate::{
    auth::{Principal, TenantScope},
    db::jobs::JobFilter,
    error::ControlPlaneError,
    jobs::{self, AudioSpec, Job, NewJob, OutputSpec, Requirements, TemplateSpec},
};

const CALLERS: &[TokenKind] = &[TokenKind::Service, TokenKind::Admin];
const MAX_TEMPLATE_BYTES: i64 = 64 * 1024 * 1024 * 1024;
const CONTAINERS: &[&str] = &["mp4", "mov", "webm", "gif", "png_sequence"];
const WATCH_POLL: Duration = Duration::from_millis(250);

/// The `RenderService` implementation.
pub struct RenderApi {
    state: Arc<AppState>,
}

impl RenderApi {
    /// Handlers over the shared state.
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }

    /// Loads a job the caller may see; others' jobs are indistinguishable from missing ones.
    async fn visible_job(&self, principal: &Principal, job_id: JobId) -> Result<Job, ControlPlaneError> {
        let job = jobs::get(&self.state.pool, job_id).await?;
        if !principal.can_access(job.spec.tenant_id) {
            return Err(ControlPlaneError::NotFound(format!("job {job_id}")));
        }
        Ok(job)
    }
}

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
    let composition = SafeName::composition(&request.composition, "composition")?;
    let frame_range = frame_range_from_wire(request.frame_range.as_ref(), "frame_range")?;
    if !request.fps.is_finite() || request.fps <= 0.0 || request.fps > 240.0 {
        return Err(FieldError::new("fps", "must be > 0 and <= 240"));
    }
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
    if request.has_voiceover != voiceover.is_some() {
        return Err(FieldError::new(
            "has_voiceover",
            "must be true exactly when a voiceover track is given",
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
        composition,
        frame_range,
        fps: request.fps,
        output,
        music,
        sfx,
        voiceover,
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
    Ok(OutputSpec {
        output_name: SafeName::file_stem(output_name, "output.output_name")?,
        output_module_template: template_name(&output.output_module_template, "output.output_module_template")?,
        render_settings_template: template_name(&output.render_settings_template, "output.render_settings_template")?,
        container: container.to_owned(),
        width: output.width,
        height: output.height,
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

fn encode_page_token(job: &Job) -> String {
    format!("{}_{}", job.created_at.timestamp_micros(), job.id)
}

fn decode_page_token(token: &str) -> Result<Option<(DateTime<Utc>, JobId)>, FieldError> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || FieldError::new("page_token", "is not a token from a previous response");
    let (micros, id) = token.split_once('_').ok_or_else(invalid)?;
    let at = DateTime::from_timestamp_micros(micros.parse().map_err(|_| invalid())?).ok_or_else(invalid)?;
    Ok(Some((at, JobId::parse_field(id, "page_token").map_err(|_| invalid())?)))
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchRenderJobResponse, Status>> + Send>>;

#[tonic::async_trait]
impl RenderService for RenderApi {
    #[instrument(skip_all, fields(tenant_id = %request.get_ref().tenant_id))]
    async fn submit_render_job(
        &self,
        request: Request<pb::SubmitRenderJobRequest>,
    ) -> Result<Response<pb::SubmitRenderJobResponse>, Status> {
        let principal = self.state.authorize(&request, CALLERS).await?;
        let new_job = validate_submission(request.get_ref()).map_err(ControlPlaneError::from)?;
        if !principal.can_access(new_job.tenant_id) {
            return Err(ControlPlaneError::PermissionDenied(format!(
                "this token cannot submit for tenant {}",
                new_job.tenant_id
            ))
            .into());
        }
        let (job, created) = jobs::submit(&self.state.pool, &new_job, &self.state.config.dispatch).await?;
        if created {
            self.state.dispatcher.work_added();
        }
        Ok(Response::new(pb::SubmitRenderJobResponse {
            job: Some(convert::job(&job)),
            created,
        }))
    }

    #[instrument(skip_all, fields(job_id = %request.get_ref().job_id))]
    async fn get_render_job(
        &self,
        request: Request<pb::GetRenderJobRequest>,
    ) -> Result<Response<pb::GetRenderJobResponse>, Status> {
        let principal = self.state.authorize(&request, CALLERS).await?;
        let job_id = JobId::parse_field(&request.get_ref().job_id, "job_id").map_err(ControlPlaneError::from)?;
        let job = self.visible_job(&principal, job_id).await?;
        Ok(Response::new(pb::GetRenderJobResponse {
            job: Some(convert::job(&job)),
        }))
    }

    #[instrument(skip_all)]
    async fn list_render_jobs(
        &self,
        request: Request<pb::ListRenderJobsRequest>,
    ) -> Result<Response<pb::ListRenderJobsResponse>, Status> {
        let principal = self.state.authorize(&request, CALLERS).await?;
        let message = request.get_ref();
        let tenant =
            TenantId::parse_optional_field(&message.tenant_id, "tenant_id").map_err(ControlPlaneError::from)?;
        let tenant_ids = match (tenant, &principal.scope) {
            (Some(tenant), _) if principal.can_access(tenant) => Some(vec![tenant]),
            (Some(tenant), _) => {
                return Err(
                    ControlPlaneError::PermissionDenied(format!("this token cannot read tenant {tenant}")).into(),
                );
            }
            (None, TenantScope::All) => None,
            (None, TenantScope::Only(tenants)) => Some(tenants.clone()),
        };
        let statuses = message
            .statuses
            .iter()
            .enumerate()
            .map(|(index, status)| JobStatus::from_wire(*status, &format!("statuses[{index}]")))
            .collect::<Result<Vec<_>, _>>()
            .map_err(ControlPlaneError::from)?;
        let limit = page_size(message.page_size, 50, 500).map_err(ControlPlaneError::from)?;
        let filter = JobFilter {
            tenant_ids,
            user_id: UserId::parse_optional_field(&message.user_id, "user_id").map_err(ControlPlaneError::from)?,
            statuses,
            after: decode_page_token(&message.page_token).map_err(ControlPlaneError::from)?,
            limit: limit + 1,
        };
        let mut found = jobs::list(&self.state.pool, &filter)
            .await
            .map_err(ControlPlaneError::from)?;
        let next_page_token = if found.len() as i64 > limit {
            found.truncate(limit as usize);
            found.last().map(encode_page_token).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListRenderJobsResponse {
            jobs: found.iter().map(convert::job).collect(),
            next_page_token,
        }))
    }

    #[instrument(skip_all, fields(job_id = %request.get_ref().job_id))]
    async fn cancel_render_job(
        &self,
        request: Request<pb::CancelRenderJobRequest>,
    ) -> Result<Response<pb::CancelRenderJobResponse>, Status> {
        let principal = self.state.authorize(&request, CALLERS).await?;
        let job_id = JobId::parse_field(&request.get_ref().job_id, "job_id").map_err(ControlPlaneError::from)?;
        let reason = bounded_text(&request.get_ref().reason, "reason", 1000).map_err(ControlPlaneError::from)?;
        self.visible_job(&principal, job_id).await?;
        let job = jobs::cancel(&self.state.pool, job_id, &reason).await?;
        Ok(Response::new(pb::CancelRenderJobResponse {
            job: Some(convert::job(&job)),
        }))
    }

    type WatchRenderJobStream = WatchStream;

    #[instrument(skip_all, fields(job_id = %request.get_ref().job_id))]
    async fn watch_render_job(
        &self,
        request: Request<pb::WatchRenderJobRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let principal = self.state.authorize(&request, CALLERS).await?;
        let job_id = JobId::parse_field(&request.get_ref().job_id, "job_id").map_err(ControlPlaneError::from)?;
        let first = self.visible_job(&principal, job_id).await?;
        let pool = self.state.pool.clone();
        let (sender, receiver) = tokio::sync::mpsc::channel(8);
        tokio::spawn(async move {
            let mut last = first;
            if sender
                .send(Ok(pb::WatchRenderJobResponse {
                    job: Some(convert::job(&last)),
                }))
                .await
                .is_err()
            {
                return;
            }
            while !last.status.is_terminal() {
                tokio::select! {
                    () = sender.closed() => return,
                    () = tokio::time::sleep(WATCH_POLL) => {}
                }
                let current = match jobs::get(&pool, job_id).await {
                    Ok(job) => job,
                    Err(error) => {
                        let _ = sender.send(Err(Status::from(error))).await;
                        return;
                    }
                };
                let changed = current.status != last.status
                    || current.progress.frames_done != last.progress.frames_done
                    || current.progress.chunks_completed != last.progress.chunks_completed
                    || current.progress.chunks_leased != last.progress.chunks_leased;
                last = current;
                if changed
                    && sender
                        .send(Ok(pb::WatchRenderJobResponse {
                            job: Some(convert::job(&last)),
                        }))
                        .await
                        .is_err()
                {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(
            receiver,
        ))))
    }
}
