//! The sample job: a generated project the aerender double understands, served over HTTP from
//! this process, submitted through `RenderService.SubmitRenderJob` exactly as a backend would,
//! and followed with `WatchRenderJob`.

use std::time::Duration;

use anyhow::Context;
use flatrender_proto::pb::{self, render_service_client::RenderServiceClient};
use tonic::transport::Channel;

use super::progress::{ProgressDisplay, is_terminal_status};
use crate::{TemplateServer, authed};

/// The default FlatRender tenant (created by the migrations).
const DEMO_TENANT: &str = "00000000-0000-0000-0000-000000000001";
/// The composition of the sample project.
pub const SAMPLE_COMP: &str = "Main";
/// Frame rate of the sample project.
const SAMPLE_FPS: f64 = 25.0;
/// Base name of the frame files (the agent writes `quickstart_00000.png`, …).
const OUTPUT_NAME: &str = "quickstart";

/// The sample project: one 25 fps composition of `num_frames` frames. A real job would point at
/// an `.aep` in content storage; the double reads this text form instead.
pub fn sample_project(num_frames: u32) -> Vec<u8> {
    format!(
        "# FlatRender quickstart sample project (read by the aerender test double)\n\
         comp \"{SAMPLE_COMP}\" fps=25 frames={num_frames} start=0 width=320 height=180\n"
    )
    .into_bytes()
}

/// Publishes the sample project on `templates` and submits a job rendering all of it.
pub async fn submit(
    endpoint: &str,
    token: &str,
    templates: &TemplateServer,
    num_frames: u32,
) -> anyhow::Result<pb::RenderJob> {
    let (download_url, blake3_hex, size_bytes) = templates.publish("quickstart.aep", sample_project(num_frames));
    let last_frame = i32::try_from(num_frames).context("--frames too large")? - 1;
    let request = pb::SubmitRenderJobRequest {
        tenant_id: DEMO_TENANT.into(),
        user_id: uuid::Uuid::new_v4().to_string(),
        // A new key per run: resubmitting with the same key would return the earlier job.
        idempotency_key: format!("quickstart-{}", uuid::Uuid::new_v4()),
        kind: pb::JobKind::Export.into(),
        template: Some(pb::TemplateRef {
            template_id: uuid::Uuid::new_v4().to_string(),
            version: 1,
            download_url,
            blake3_hex,
            size_bytes,
        }),
        composition: SAMPLE_COMP.into(),
        frame_range: Some(pb::FrameRange {
            start: 0,
            end: last_frame,
        }),
        fps: SAMPLE_FPS,
        output: Some(pb::OutputSettings {
            output_name: OUTPUT_NAME.into(),
            container: "png_sequence".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    client(endpoint)
        .await?
        .submit_render_job(authed(request, token))
        .await
        .context("SubmitRenderJob")?
        .into_inner()
        .job
        .context("SubmitRenderJob returned no job")
}

/// Follows the job with `WatchRenderJob` until it is completed, failed or cancelled,
/// reconnecting if the stream breaks; fails after `limit`.
pub async fn watch(
    endpoint: &str,
    token: &str,
    job_id: &str,
    display: &mut ProgressDisplay,
    limit: Duration,
) -> anyhow::Result<pb::RenderJob> {
    let followed = tokio::time::timeout(limit, async {
        loop {
            match watch_once(endpoint, token, job_id, display).await {
                Ok(Some(job)) => return job,
                Ok(None) => {}
                Err(error) => display.suspend(|| tell!("watching the job: {error:#}; reconnecting")),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await;
    display.finish();
    followed.map_err(|_| anyhow::anyhow!("job {job_id} did not finish within {limit:?}"))
}

/// One watch stream: the final job, or `None` if the stream ended before a terminal state.
async fn watch_once(
    endpoint: &str,
    token: &str,
    job_id: &str,
    display: &mut ProgressDisplay,
) -> anyhow::Result<Option<pb::RenderJob>> {
    let request = pb::WatchRenderJobRequest { job_id: job_id.into() };
    let mut stream = client(endpoint)
        .await?
        .watch_render_job(authed(request, token))
        .await
        .context("WatchRenderJob")?
        .into_inner();
    // The display keeps its own clock ticking between messages.
    while let Some(message) = stream.message().await.context("WatchRenderJob stream")? {
        let Some(job) = message.job else { continue };
        display.update(&job);
        if is_terminal_status(job.status()) {
            return Ok(Some(job));
        }
    }
    Ok(None)
}

/// Cancels the job (best effort: used when a run is interrupted, so the next run starts clean).
pub async fn cancel(endpoint: &str, token: &str, job_id: &str, reason: &str) -> anyhow::Result<()> {
    let request = pb::CancelRenderJobRequest {
        job_id: job_id.into(),
        reason: reason.into(),
    };
    client(endpoint)
        .await?
        .cancel_render_job(authed(request, token))
        .await
        .context("CancelRenderJob")?;
    Ok(())
}

/// Cancels the unfinished jobs of earlier, interrupted runs on this data folder (their agents
/// would otherwise render them before the new sample job); returns their ids.
pub async fn cancel_unfinished(endpoint: &str, token: &str) -> anyhow::Result<Vec<String>> {
    let request = pb::ListRenderJobsRequest {
        tenant_id: DEMO_TENANT.into(),
        statuses: [
            pb::JobStatus::Queued,
            pb::JobStatus::Rendering,
            pb::JobStatus::Rendered,
            pb::JobStatus::Encoding,
        ]
        .into_iter()
        .map(i32::from)
        .collect(),
        page_size: 500,
        ..Default::default()
    };
    let jobs = client(endpoint)
        .await?
        .list_render_jobs(authed(request, token))
        .await
        .context("ListRenderJobs")?
        .into_inner()
        .jobs;
    let mut cancelled = Vec::new();
    for job in jobs {
        cancel(endpoint, token, &job.id, "left unfinished by an earlier quickstart run").await?;
        cancelled.push(job.id);
    }
    Ok(cancelled)
}

async fn client(endpoint: &str) -> anyhow::Result<RenderServiceClient<Channel>> {
    let channel = Channel::from_shared(endpoint.to_owned())?
        .connect()
        .await
        .with_context(|| format!("connect to {endpoint}"))?;
    Ok(RenderServiceClient::new(channel))
}
