//! Completions without a job lock (issue 13, docs/dispatch.md "Completions"): chunks are recorded
//! in one statement and their job advanced in a second once that has committed, so the job's
//! last chunks completing at the same moment on different nodes must still move it on exactly
//! once, and a job whose advance never ran (its control plane died in between) is moved on by the
//! reaper.

use flatrender_proto::{pb, types::TenantId};

use crate::support::{Farm, TestNode, authed, completed_chunk, eventually, export_of, job_request, names_field};

/// Nodes, one chunk each.
const NODES: usize = 6;

/// Submits a job of `NODES` chunks (10 frames each) delivered as `container`, without audio.
async fn submit(farm: &Farm, container: &str) -> pb::RenderJob {
    let mut request = job_request(TenantId::new_random(), 0, (NODES as i32) * 10 - 1);
    request.music = None;
    request.voiceover = None;
    request.has_voiceover = false;
    request.output.as_mut().unwrap().container = container.into();
    farm.render()
        .await
        .submit_render_job(authed(request, &farm.service_token))
        .await
        .expect("submit")
        .into_inner()
        .job
        .unwrap()
}

/// Each node leases one chunk of the job, then all complete at once.
async fn complete_all_at_once(nodes: &mut [TestNode]) {
    let mut leased = Vec::new();
    for node in nodes.iter_mut() {
        let assignment = node.acquire(1).await.remove(0);
        leased.push((node.client.clone(), node.token.clone(), assignment));
    }
    let completions = leased.into_iter().map(|(mut client, token, assignment)| async move {
        let request = pb::CompleteWorkRequest {
            chunks: vec![completed_chunk(&assignment)],
        };
        client
            .complete_work(authed(request, &token))
            .await
            .expect("complete")
            .into_inner()
            .results[0]
            .outcome()
    });
    for outcome in futures_join_all(completions).await {
        assert_eq!(outcome, pb::CompletionOutcome::Accepted);
    }
}

/// Runs the futures concurrently and returns their outputs in order.
async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(handles.len());
    for handle in handles {
        outputs.push(handle.await.expect("completion task"));
    }
    outputs
}

/// The last chunks of a video job completing together queue its encode once and leave it
/// RENDERED; of a PNG sequence, complete it. Several rounds, since the race is the point.
#[tokio::test]
async fn last_chunks_completing_together_advance_the_job_once() {
    let farm = Farm::start().await;
    let mut nodes = Vec::new();
    for index in 0..NODES {
        nodes.push(farm.register(&format!("node-{index}"), &[]).await);
    }
    for round in 0..4 {
        let video = submit(&farm, "mp4").await;
        complete_all_at_once(&mut nodes).await;
        let job = farm.job(&video.id).await;
        assert_eq!(job.status(), pb::JobStatus::Rendered, "round {round}: {job:?}");
        assert_eq!(job.progress.unwrap().chunks_completed, NODES as i32);
        let encodes = farm
            .count(&format!(
                "SELECT count(*) FROM render.frame_jobs WHERE job_id = '{}' AND kind = 'encode' AND state = 'pending'",
                video.id
            ))
            .await;
        assert_eq!(encodes, 1, "round {round}: one encode queued");
        // The encode goes to an encoder node, not to these render-only ones.
        let frames = submit(&farm, "png_sequence").await;
        complete_all_at_once(&mut nodes).await;
        let job = farm.job(&frames.id).await;
        assert_eq!(job.status(), pb::JobStatus::Completed, "round {round}: {job:?}");
        assert!(job.finished_at.is_some());
    }
}

/// A job whose chunks were all recorded but whose advance never ran, as when the completing
/// control plane dies between its two statements, is advanced by the reaper.
#[tokio::test]
async fn the_reaper_advances_a_job_a_completion_left_behind() {
    let farm = Farm::start().await;
    let job = submit(&farm, "png_sequence").await;
    let mut node = farm.register("node-a", &[]).await;
    let assignment = node.acquire(1).await.remove(0);
    // Exactly what the first statement records, and nothing else: the job stays as it was.
    let recorded = sqlx::query(
        "UPDATE render.frame_jobs SET state = 'completed', lease_expires_at = NULL, completed_at = now(),
                frames_done = frame_end - frame_start + 1
         WHERE job_id = $1::uuid AND kind = 'render'",
    )
    .bind(&job.id)
    .execute(farm.db.pool())
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(recorded, NODES as u64);
    assert_ne!(farm.job(&job.id).await.status(), pb::JobStatus::Completed);
    assert!(
        eventually(|| async { farm.job(&job.id).await.status() == pb::JobStatus::Completed }).await,
        "the reaper completes the job"
    );
    // The lease it held ended with the chunk: a late report is a duplicate, not a second completion.
    assert_eq!(node.complete(&assignment).await, pb::CompletionOutcome::Duplicate);
}

/// Completions arriving together are recorded together, but judged per request: a request with
/// an invalid item (a chunk reported with an export) records nothing and is refused naming the
/// item, while the requests beside it in the same batch are recorded.
#[tokio::test]
async fn requests_recorded_together_are_judged_apart() {
    let farm = Farm::start().await;
    let mut nodes = Vec::new();
    for index in 0..NODES {
        nodes.push(farm.register(&format!("node-{index}"), &[]).await);
    }
    for round in 0..3 {
        let job = submit(&farm, "png_sequence").await;
        let mut leased = Vec::new();
        for node in nodes.iter_mut() {
            let assignment = node.acquire(1).await.remove(0);
            leased.push((node.client.clone(), node.token.clone(), assignment));
        }
        let refused = leased[0].2.clone();
        let start = std::sync::Arc::new(tokio::sync::Barrier::new(NODES));
        let calls = leased
            .into_iter()
            .enumerate()
            .map(|(index, (mut client, token, assignment))| {
                let start = start.clone();
                async move {
                    let mut chunk = completed_chunk(&assignment);
                    if index == 0 {
                        chunk.export = Some(export_of(&assignment));
                    }
                    start.wait().await;
                    let result = client
                        .complete_work(authed(pb::CompleteWorkRequest { chunks: vec![chunk] }, &token))
                        .await;
                    (assignment.frame_job_id, result)
                }
            });
        let results = futures_join_all(calls).await;
        for (index, (frame_job_id, result)) in results.into_iter().enumerate() {
            if index == 0 {
                let status = result.expect_err("a chunk with an export is refused");
                assert_eq!(status.code(), tonic::Code::InvalidArgument, "round {round}");
                assert!(names_field(&status, "chunks[0].export"), "round {round}: {status:?}");
                let state = farm
                    .count(&format!(
                        "SELECT count(*) FROM render.frame_jobs WHERE id = '{frame_job_id}' AND state = 'leased'"
                    ))
                    .await;
                assert_eq!(state, 1, "round {round}: the refused chunk stays leased");
            } else {
                let outcome = result.expect("complete").into_inner().results[0].outcome();
                assert_eq!(outcome, pb::CompletionOutcome::Accepted, "round {round}");
            }
        }
        let view = farm.job(&job.id).await;
        assert_eq!(
            view.progress.unwrap().chunks_completed,
            NODES as i32 - 1,
            "round {round}"
        );
        assert_eq!(view.status(), pb::JobStatus::Rendering, "round {round}");
        // Reported properly, the refused chunk completes the job.
        assert_eq!(nodes[0].complete(&refused).await, pb::CompletionOutcome::Accepted);
        assert_eq!(
            farm.job(&job.id).await.status(),
            pb::JobStatus::Completed,
            "round {round}"
        );
    }
}
