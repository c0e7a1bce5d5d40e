//! `frctl jobs list|show|cancel|retry` (`watch` is in `watch.rs`).

use flatrender_proto::{
    pb,
    types::{FrameJobState, JobStatus},
};
use serde::Serialize;

use crate::{
    args::{JobsCommand, OutputFormat},
    connect::{Answer, Client, Failure},
    duration,
    frames::node_cell,
    output::{Table, emit, or_dash, seconds, short_id, time_cell},
    views::{ChunkJson, ExportJson, JobJson, SceneJson, chunk_state, job_kind, job_status},
    watch,
};

/// The chunks of `job_id` in `states` (all when empty), in chunk order, with node names.
pub async fn job_chunks(client: &Client, job_id: &str, states: &[FrameJobState]) -> Result<Vec<pb::FrameJob>, Failure> {
    let response = client
        .admin()
        .list_frame_jobs(client.request(pb::ListFrameJobsRequest {
            job_id: job_id.to_owned(),
            states: states.iter().map(|state| state.to_wire()).collect(),
        }))
        .await
        .answer(client)?;
    Ok(response.frame_jobs)
}

/// Reads one job.
pub async fn get_job(client: &Client, job_id: &str) -> Result<pb::RenderJob, Failure> {
    let response = client
        .render()
        .get_render_job(client.request(pb::GetRenderJobRequest {
            job_id: job_id.to_owned(),
        }))
        .await
        .answer(client)?;
    Ok(response.job.unwrap_or_default())
}

#[derive(Serialize)]
struct JobListJson {
    jobs: Vec<JobJson>,
}

#[derive(Serialize)]
struct JobShowJson {
    job: JobJson,
    /// Every chunk, in chunk order.
    chunks: Vec<ChunkJson>,
}

#[derive(Serialize)]
struct JobChangeJson {
    job: JobJson,
    #[serde(skip_serializing_if = "Option::is_none")]
    requeued_chunks: Option<i32>,
}

/// Runs a `jobs` subcommand; returns the exit code (`watch` has its own).
pub async fn run(client: &Client, format: OutputFormat, command: JobsCommand) -> anyhow::Result<u8> {
    match command {
        JobsCommand::List {
            tenant,
            statuses,
            limit,
        } => list(client, format, tenant.unwrap_or_default(), &statuses, limit).await?,
        JobsCommand::Show(job) => show(client, format, &job.job_id).await?,
        JobsCommand::Watch(job) => return watch::run(client, format, &job.job_id).await,
        JobsCommand::Cancel { job, reason } => {
            let response = client
                .admin()
                .cancel_job(client.request(pb::CancelJobRequest {
                    job_id: job.job_id,
                    reason: reason.unwrap_or_default(),
                }))
                .await
                .answer(client)?;
            changed(format, response.job, None, "running chunks are stopped")?;
        }
        JobsCommand::Retry(job) => {
            let response = client
                .admin()
                .retry_job(client.request(pb::RetryJobRequest { job_id: job.job_id }))
                .await
                .answer(client)?;
            let note = format!("retried, {} chunk(s) requeued", response.requeued_chunks);
            changed(format, response.job, Some(response.requeued_chunks), &note)?;
        }
    }
    Ok(0)
}

async fn list(
    client: &Client,
    format: OutputFormat,
    tenant_id: String,
    statuses: &[JobStatus],
    limit: u32,
) -> anyhow::Result<()> {
    let mut jobs = Vec::new();
    let mut page_token = String::new();
    let wanted = limit as usize;
    while jobs.len() < wanted {
        let page_size = i32::try_from((wanted - jobs.len()).min(500)).unwrap_or(500);
        let page = client
            .render()
            .list_render_jobs(client.request(pb::ListRenderJobsRequest {
                tenant_id: tenant_id.clone(),
                statuses: statuses.iter().map(|status| status.to_wire()).collect(),
                page_size,
                page_token: page_token.clone(),
                ..Default::default()
            }))
            .await
            .answer(client)?;
        jobs.extend(page.jobs);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    jobs.truncate(wanted);
    let json = JobListJson {
        jobs: jobs.iter().map(JobJson::from).collect(),
    };
    emit(format, &json, || {
        let mut table = Table::new(&["ID", "STATUS", "KIND", "FRAMES", "PROGRESS", "TENANT", "CREATED"]);
        for job in &jobs {
            let range = job.frame_range.unwrap_or_default();
            let progress = job.progress.unwrap_or_default();
            table.row(vec![
                job.id.clone(),
                job_status(job.status).to_owned(),
                job_kind(job.kind).to_owned(),
                format!("{}-{}", range.start, range.end),
                format!("{}/{}", progress.frames_done, progress.frames_total),
                short_id(&job.tenant_id),
                time_cell(job.created_at.as_ref()),
            ]);
        }
        table.print_or("no jobs");
    })
}

async fn show(client: &Client, format: OutputFormat, job_id: &str) -> anyhow::Result<()> {
    let job = get_job(client, job_id).await?;
    let chunks = job_chunks(client, &job.id, &[]).await?;
    let json = JobShowJson {
        job: JobJson::from(&job),
        chunks: chunks.iter().map(ChunkJson::new).collect(),
    };
    emit(format, &json, || {
        let range = job.frame_range.unwrap_or_default();
        let progress = job.progress.unwrap_or_default();
        let eta = seconds(progress.eta.as_ref()).map_or_else(
            || "-".to_owned(),
            |eta| duration::format(std::time::Duration::from_secs(eta)),
        );
        let lines = [
            ("id", job.id.clone()),
            ("status", job_status(job.status).to_owned()),
            ("failure", or_dash(&job.failure_reason)),
            ("kind", format!("{} (priority {})", job_kind(job.kind), job.priority)),
            ("tenant", job.tenant_id.clone()),
            ("composition", job.composition.clone()),
            ("frames", format!("{}-{} at {} fps", range.start, range.end, job.fps)),
            (
                "progress",
                format!("{}/{} frames", progress.frames_done, progress.frames_total),
            ),
            (
                "chunks",
                format!(
                    "{} completed, {} leased, {} total",
                    progress.chunks_completed, progress.chunks_leased, progress.chunks_total
                ),
            ),
            ("eta", eta),
            ("created", time_cell(job.created_at.as_ref())),
            ("started", time_cell(job.started_at.as_ref())),
            ("finished", time_cell(job.finished_at.as_ref())),
        ];
        for (label, value) in lines {
            outln!("{label:<12} {value}");
        }
        if let Some(export) = &job.export {
            let export = ExportJson::from(export);
            outln!("\nexport:");
            outln!("  {}", export.location);
            let duration = export
                .duration_seconds
                .map_or_else(|| "-".to_owned(), |seconds| format!("{seconds:.2} s"));
            let audio = if export.audio_codec.is_empty() {
                "no audio".to_owned()
            } else {
                export.audio_codec.clone()
            };
            outln!(
                "  {} {}x{}, {duration}, {} + {audio}, {} bytes, blake3 {}",
                export.format,
                export.width,
                export.height,
                export.video_codec,
                export.size_bytes,
                export.blake3_hex
            );
        }
        if !job.scenes.is_empty() {
            outln!("\nscenes:");
            let mut table = Table::new(&["SCENE", "COMPOSITION", "FRAMES", "FIELDS"]);
            for (index, scene) in (0..).zip(&job.scenes) {
                let scene = SceneJson::new(index, scene);
                let fields = if scene.fields.is_empty() {
                    "-".to_owned()
                } else {
                    scene.fields.join(", ")
                };
                table.row(vec![
                    scene.index.to_string(),
                    scene.composition,
                    format!("{}-{}", scene.frame_start, scene.frame_end),
                    fields,
                ]);
            }
            table.print_or("  none");
        }
        outln!("\nchunks:");
        let mut table = Table::new(&["CHUNK", "FRAMES", "STATE", "NODE", "DONE", "ATTEMPT", "LAST ERROR"]);
        for chunk in &chunks {
            let range = chunk.frame_range.unwrap_or_default();
            let node = node_cell(chunk);
            let error = match (chunk.last_error_class.as_str(), chunk.last_error.as_str()) {
                ("", "") => "-".to_owned(),
                (class, "") => class.to_owned(),
                (class, text) => format!("{class}: {text}"),
            };
            let index = if chunk.kind() == pb::WorkKind::Encode {
                "encode".to_owned()
            } else {
                chunk.chunk_index.to_string()
            };
            table.row(vec![
                index,
                format!("{}-{}", range.start, range.end),
                chunk_state(chunk.state).to_owned(),
                node,
                chunk.frames_done.to_string(),
                chunk.attempt.to_string(),
                error,
            ]);
        }
        table.print_or("  none");
    })
}

fn changed(
    format: OutputFormat,
    job: Option<pb::RenderJob>,
    requeued_chunks: Option<i32>,
    note: &str,
) -> anyhow::Result<()> {
    let job = job.unwrap_or_default();
    let json = JobChangeJson {
        job: JobJson::from(&job),
        requeued_chunks,
    };
    emit(format, &json, || {
        outln!("job {} is now {}: {note}", job.id, job_status(job.status));
    })
}
