//! Frame retention: once a job has been finished for the retention time, each node that rendered
//! its chunks is told to remove its frames, and its confirmation is recorded; nodes that rendered
//! nothing of it, and jobs still running, are left alone.

use flatrender_proto::{pb, types::TenantId};

use crate::support::{Farm, HASH_A, TestNode, test_config};

fn removals(beat: &pb::HeartbeatResponse) -> Vec<String> {
    beat.commands
        .iter()
        .filter_map(|command| match &command.command {
            Some(pb::node_command::Command::RemoveFrames(remove)) => Some(remove.job_id.clone()),
            _ => None,
        })
        .collect()
}

async fn beat(node: &mut TestNode, removed: Vec<String>) -> pb::HeartbeatResponse {
    node.heartbeat(pb::HeartbeatRequest {
        frames_removed_job_ids: removed,
        ..Default::default()
    })
    .await
}

#[tokio::test]
async fn finished_jobs_frames_are_removed_from_the_nodes_that_rendered_them() {
    let mut config = test_config();
    config.dispatch.frames_retention_seconds = 0;
    let farm = Farm::start_with(config).await;
    let job = farm.submit(TenantId::new_random(), 0, 9, HASH_A).await;
    let mut worker = farm.register("node-a", &[]).await;
    let mut bystander = farm.register("node-b", &[]).await;
    let chunk = worker.acquire(1).await.remove(0);
    // Running: nothing to remove yet.
    assert!(removals(&beat(&mut worker, Vec::new()).await).is_empty());
    assert_eq!(worker.complete(&chunk).await, pb::CompletionOutcome::Accepted);
    assert_eq!(farm.job(&job.id).await.status(), pb::JobStatus::Completed);

    assert_eq!(removals(&beat(&mut worker, Vec::new()).await), vec![job.id.clone()]);
    assert!(removals(&beat(&mut bystander, Vec::new()).await).is_empty());
    // A node cannot mark frames it did not render.
    beat(&mut bystander, vec![job.id.clone()]).await;
    assert_eq!(
        farm.count("SELECT count(*) FROM render.frame_jobs WHERE frames_removed_at IS NOT NULL")
            .await,
        0
    );
    // Confirmed: recorded, and not asked again.
    let after = beat(&mut worker, vec![job.id.clone()]).await;
    assert!(removals(&after).is_empty(), "{after:?}");
    assert_eq!(
        farm.count("SELECT count(*) FROM render.frame_jobs WHERE frames_removed_at IS NOT NULL")
            .await,
        1
    );
    assert!(removals(&beat(&mut worker, Vec::new()).await).is_empty());
    // A malformed id names its field.
    let refused = worker
        .client
        .heartbeat(crate::support::authed(
            pb::HeartbeatRequest {
                frames_removed_job_ids: vec!["not-a-job".into()],
                ..Default::default()
            },
            &worker.token,
        ))
        .await
        .unwrap_err();
    assert!(refused.message().contains("frames_removed_job_ids[0]"), "{refused:?}");
}

/// With the default retention, a just-finished job's frames stay.
#[tokio::test]
async fn frames_are_kept_for_the_retention_time() {
    let farm = Farm::start().await;
    farm.submit(TenantId::new_random(), 0, 9, HASH_A).await;
    let mut worker = farm.register("node-a", &[]).await;
    let chunk = worker.acquire(1).await.remove(0);
    assert_eq!(worker.complete(&chunk).await, pb::CompletionOutcome::Accepted);
    assert!(removals(&beat(&mut worker, Vec::new()).await).is_empty());
}
