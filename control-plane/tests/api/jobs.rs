//! Submitting, following and cancelling jobs.

use flatrender_proto::{pb, types::TenantId};
use tokio_stream::StreamExt;

use crate::support::{Farm, HASH_A, PATIENCE, authed, job_request};

/// A submission creates the job and its chunks in one go, covering the range exactly.
#[tokio::test]
async fn submit_creates_job_and_chunks() {
    let farm = Farm::start().await;
    let job = farm.submit(TenantId::new_random(), 0, 24, HASH_A).await;
    assert_eq!(job.status(), pb::JobStatus::Queued);
    assert_eq!(job.progress.unwrap().chunks_total, 3);
    let chunks: Vec<(i32, i32, i32)> = sqlx::query_as(
        "SELECT chunk_index, frame_start, frame_end FROM render.frame_jobs WHERE job_id = $1::uuid ORDER BY chunk_index",
    )
    .bind(&job.id)
    .fetch_all(farm.db.pool())
    .await
    .unwrap();
    assert_eq!(chunks, vec![(0, 0, 9), (1, 10, 19), (2, 20, 24)]);
    assert!(job.has_voiceover);
}

/// Resubmitting with the same idempotency key returns the first job and creates nothing.
#[tokio::test]
async fn submit_is_idempotent_on_tenant_and_key() {
    let farm = Farm::start().await;
    let tenant = TenantId::new_random();
    let mut request = job_request(tenant, 0, 9);
    request.idempotency_key = "order-42".into();
    let mut client = farm.render().await;
    let first = client
        .submit_render_job(authed(request.clone(), &farm.service_token))
        .await
        .unwrap()
        .into_inner();
    let second = client
        .submit_render_job(authed(request, &farm.service_token))
        .await
        .unwrap()
        .into_inner();
    assert!(first.created && !second.created);
    assert_eq!(first.job.unwrap().id, second.job.unwrap().id);
    assert_eq!(farm.count("SELECT count(*) FROM render.render_jobs").await, 1);
}

/// A node takes every chunk, completes them, and the job completes; a watcher sees it end.
#[tokio::test]
async fn acquire_complete_cycle_finishes_the_job_and_watch_follows_it() {
    let farm = Farm::start().await;
    let job = farm.submit(TenantId::new_random(), 1, 30, HASH_A).await;
    let mut watch = farm
        .render()
        .await
        .watch_render_job(authed(
            pb::WatchRenderJobRequest { job_id: job.id.clone() },
            &farm.service_token,
        ))
        .await
        .unwrap()
        .into_inner();
    let first = tokio::time::timeout(PATIENCE, watch.next())
        .await
        .expect("the watch sends the current state at once")
        .unwrap()
        .unwrap()
        .job
        .unwrap();
    assert_eq!(first.status(), pb::JobStatus::Queued);

    let mut node = farm.register("node-a", &[]).await;
    let assignments = node.acquire(4).await;
    assert_eq!(assignments.len(), 3);
    assert!(
        assignments
            .iter()
            .all(|a| a.composition == "Main Comp" && a.template.as_ref().unwrap().blake3_hex == HASH_A)
    );
    let rendering = farm.job(&job.id).await;
    assert_eq!(rendering.status(), pb::JobStatus::Rendering);
    assert_eq!(rendering.progress.unwrap().chunks_leased, 3);
    for assignment in &assignments {
        assert_eq!(node.complete(assignment).await, pb::CompletionOutcome::Accepted);
    }
    let done = farm.job(&job.id).await;
    assert_eq!(done.status(), pb::JobStatus::Completed);
    assert_eq!(done.progress.unwrap().frames_done, 30);
    assert!(done.finished_at.is_some());

    let mut last = first;
    while let Some(update) = tokio::time::timeout(PATIENCE, watch.next()).await.unwrap() {
        last = update.unwrap().job.unwrap();
    }
    assert_eq!(
        last.status(),
        pb::JobStatus::Completed,
        "the stream ends after the terminal state"
    );
}

/// Redelivering a completion with the same token is recognised, not double-counted.
#[tokio::test]
async fn redelivered_completion_is_a_duplicate() {
    let farm = Farm::start().await;
    let job = farm.submit(TenantId::new_random(), 0, 9, HASH_A).await;
    let mut node = farm.register("node-a", &[]).await;
    let assignment = node.acquire(1).await.remove(0);
    assert_eq!(node.complete(&assignment).await, pb::CompletionOutcome::Accepted);
    assert_eq!(node.complete(&assignment).await, pb::CompletionOutcome::Duplicate);
    assert_eq!(farm.job(&job.id).await.progress.unwrap().chunks_completed, 1);
}

/// Cancelling reaches the node on its next heartbeat, and its late result is discarded.
#[tokio::test]
async fn cancellation_reaches_the_node_and_discards_results() {
    let farm = Farm::start().await;
    let job = farm.submit(TenantId::new_random(), 0, 9, HASH_A).await;
    let mut node = farm.register("node-a", &[]).await;
    let assignment = node.acquire(1).await.remove(0);
    let cancelled = farm
        .render()
        .await
        .cancel_render_job(authed(
            pb::CancelRenderJobRequest {
                job_id: job.id.clone(),
                reason: "user abort".into(),
            },
            &farm.service_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(cancelled.status(), pb::JobStatus::Cancelled);
    let beat = node
        .heartbeat(pb::HeartbeatRequest {
            leases: vec![pb::LeaseStatus {
                frame_job_id: assignment.frame_job_id.clone(),
                lease_token: assignment.lease_token,
                frames_done: 3,
            }],
            ..Default::default()
        })
        .await;
    let cancels: Vec<_> = beat
        .commands
        .iter()
        .filter_map(|command| match &command.command {
            Some(pb::node_command::Command::CancelLease(cancel)) => Some(cancel.frame_job_id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(cancels, vec![assignment.frame_job_id.clone()]);
    // Not just stale: the job ended, so a stored export of this work is to be removed.
    assert_eq!(node.complete(&assignment).await, pb::CompletionOutcome::JobEnded);
    assert_eq!(farm.job(&job.id).await.status(), pb::JobStatus::Cancelled);
    let cancel_again = farm
        .render()
        .await
        .cancel_render_job(authed(
            pb::CancelRenderJobRequest {
                job_id: job.id.clone(),
                reason: String::new(),
            },
            &farm.service_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(cancel_again.code(), tonic::Code::FailedPrecondition);
}

/// Listing pages through a tenant's jobs newest first, filtered by status.
#[tokio::test]
async fn list_paginates_and_filters() {
    let farm = Farm::start().await;
    let tenant = TenantId::new_random();
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(farm.submit(tenant, 0, 0, HASH_A).await.id);
    }
    farm.submit(TenantId::new_random(), 0, 0, HASH_A).await;
    let mut client = farm.render().await;
    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = pb::ListRenderJobsRequest {
            tenant_id: tenant.to_string(),
            page_size: 2,
            page_token: page_token.clone(),
            ..Default::default()
        };
        let page = client
            .list_render_jobs(authed(request, &farm.service_token))
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.jobs.into_iter().map(|job| job.id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    ids.reverse();
    assert_eq!(seen, ids);
    let with_status = |status: pb::JobStatus| pb::ListRenderJobsRequest {
        tenant_id: tenant.to_string(),
        statuses: vec![status as i32],
        ..Default::default()
    };
    let queued = client
        .list_render_jobs(authed(with_status(pb::JobStatus::Queued), &farm.service_token))
        .await
        .unwrap()
        .into_inner()
        .jobs;
    assert_eq!(queued.len(), 5, "every job of the tenant is queued");
    assert!(
        client
            .list_render_jobs(authed(with_status(pb::JobStatus::Completed), &farm.service_token))
            .await
            .unwrap()
            .into_inner()
            .jobs
            .is_empty()
    );
}
