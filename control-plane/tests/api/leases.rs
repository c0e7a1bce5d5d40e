//! Fencing tokens, lease expiry, retries and failure.

use std::time::Duration;

use flatrender_proto::{
    pb::{self, node_service_client::NodeServiceClient},
    types::TenantId,
};

use crate::support::{Farm, HASH_A, PATIENCE, TestNode, authed, eventually, test_config};

/// A report carrying an old fencing token changes nothing and is refused.
#[tokio::test]
async fn stale_fencing_token_is_rejected() {
    let farm = Farm::start().await;
    farm.submit(TenantId::new_random(), 0, 9, HASH_A).await;
    let mut node = farm.register("node-a", &[]).await;
    let assignment = node.acquire(1).await.remove(0);
    let mut stale = assignment.clone();
    stale.lease_token += 1;
    let before = farm.render_state().await;
    let progress = node
        .client
        .report_progress(authed(
            pb::ReportProgressRequest {
                frame_job_id: stale.frame_job_id.clone(),
                lease_token: stale.lease_token,
                frames_done: 5,
                frames_written: vec![0, 1],
            },
            &node.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(progress.code(), tonic::Code::FailedPrecondition);
    let failure = node
        .fail(&stale, pb::CrashClass::Crash, pb::RecoveryAction::RetryElsewhere)
        .await
        .unwrap_err();
    assert_eq!(failure.code(), tonic::Code::FailedPrecondition);
    assert_eq!(node.complete(&stale).await, pb::CompletionOutcome::StaleLease);
    assert_eq!(farm.render_state().await, before, "nothing changed");
    assert_eq!(node.complete(&assignment).await, pb::CompletionOutcome::Accepted);
}

/// Another node's token for the same chunk is not accepted either.
#[tokio::test]
async fn a_node_cannot_report_on_another_nodes_lease() {
    let farm = Farm::start().await;
    farm.submit(TenantId::new_random(), 0, 9, HASH_A).await;
    let mut owner = farm.register("node-a", &[]).await;
    let mut other = farm.register("node-b", &[]).await;
    let assignment = owner.acquire(1).await.remove(0);
    let before = farm.render_state().await;
    assert_eq!(other.complete(&assignment).await, pb::CompletionOutcome::StaleLease);
    assert_eq!(farm.render_state().await, before, "nothing changed");
    assert_eq!(owner.complete(&assignment).await, pb::CompletionOutcome::Accepted);
}

/// An unrenewed lease expires and is requeued; the node that lost it cannot complete, and
/// another node finishes the chunk.
#[tokio::test]
async fn expired_lease_is_requeued_and_the_loser_cannot_complete() {
    let mut config = test_config();
    config.dispatch.lease_ttl_seconds = 2;
    config.dispatch.heartbeat_interval_seconds = 1;
    config.dispatch.node_offline_after_seconds = 60;
    let farm = Farm::start_with(config).await;
    let job = farm.submit(TenantId::new_random(), 0, 9, HASH_A).await;
    let mut slow = farm.register("node-slow", &[]).await;
    let mut rescuer = farm.register("node-rescue", &[]).await;
    let lost = slow.acquire(1).await.remove(0);
    let requeued = eventually(|| async {
        farm.count("SELECT count(*) FROM render.frame_jobs WHERE state = 'pending'")
            .await
            == 1
    })
    .await;
    assert!(requeued, "the reaper requeues the expired lease");
    let retry = rescuer.acquire(1).await.remove(0);
    assert_eq!(retry.frame_job_id, lost.frame_job_id);
    assert!(
        retry.lease_token > lost.lease_token,
        "a new lease has a higher fencing token"
    );
    assert_eq!(retry.attempt, 2);
    assert_eq!(slow.complete(&lost).await, pb::CompletionOutcome::StaleLease);
    assert_eq!(rescuer.complete(&retry).await, pb::CompletionOutcome::Accepted);
    assert_eq!(farm.job(&job.id).await.status(), pb::JobStatus::Completed);
    assert_eq!(
        farm.count("SELECT count(*) FROM render.node_crashes WHERE crash_class = 'agent_lost'")
            .await,
        1
    );
}

/// Heartbeats renew leases: each one moves the lease's expiry forward, and a node that keeps
/// heartbeating keeps its chunk after the expiry it was first given has passed.
#[tokio::test]
async fn heartbeats_keep_leases_alive() {
    let mut config = test_config();
    // Short enough to pass within the test, long enough that only a badly stalled machine lets
    // it lapse between two heartbeats (sent every 50 ms or so).
    config.dispatch.lease_ttl_seconds = 6;
    config.dispatch.heartbeat_interval_seconds = 1;
    let farm = Farm::start_with(config).await;
    farm.submit(TenantId::new_random(), 0, 9, HASH_A).await;
    let mut node = farm.register("node-a", &[]).await;
    let assignment = node.acquire(1).await.remove(0);
    let first_expiry = lease_expiry(&farm, &assignment).await;
    let renewal = pb::HeartbeatRequest {
        leases: vec![pb::LeaseStatus {
            frame_job_id: assignment.frame_job_id.clone(),
            lease_token: assignment.lease_token,
            frames_done: 2,
        }],
        ..Default::default()
    };
    let beat = node.heartbeat(renewal.clone()).await;
    assert!(beat.commands.is_empty(), "lease stays live: {:?}", beat.commands);
    assert!(
        lease_expiry(&farm, &assignment).await > first_expiry,
        "a heartbeat pushes the expiry forward"
    );
    // Keep heartbeating until the database clock is past the first expiry.
    let pool = farm.db.pool().clone();
    let outlived = eventually(|| {
        let mut client = node.client.clone();
        let request = authed(renewal.clone(), &node.token);
        let pool = pool.clone();
        async move {
            let beat = client.heartbeat(request).await.expect("heartbeat").into_inner();
            assert!(beat.commands.is_empty(), "lease stays live: {:?}", beat.commands);
            sqlx::query_scalar::<_, bool>("SELECT now() > $1")
                .bind(first_expiry)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    })
    .await;
    assert!(outlived, "the first expiry passes");
    assert_eq!(
        farm.count("SELECT count(*) FROM render.frame_jobs WHERE state = 'leased'")
            .await,
        1
    );
    assert_eq!(node.complete(&assignment).await, pb::CompletionOutcome::Accepted);
}

/// When the lease on `assignment`'s chunk expires.
async fn lease_expiry(farm: &Farm, assignment: &pb::WorkAssignment) -> chrono::DateTime<chrono::Utc> {
    sqlx::query_scalar("SELECT lease_expires_at FROM render.frame_jobs WHERE id = $1::uuid")
        .bind(&assignment.frame_job_id)
        .fetch_one(farm.db.pool())
        .await
        .unwrap()
}

/// A chunk that crashed on one node is not given back to it; after max attempts on other
/// nodes the job fails with a reason a person can read.
#[tokio::test]
async fn retries_elsewhere_then_fails_after_max_attempts() {
    let mut config = test_config();
    config.dispatch.max_attempts = 2;
    let farm = Farm::start_with(config).await;
    let job = farm.submit(TenantId::new_random(), 0, 9, HASH_A).await;
    let mut first = farm.register("node-a", &[]).await;
    let mut second = farm.register("node-b", &[]).await;
    let assignment = first.acquire(1).await.remove(0);
    assert!(
        first
            .fail(&assignment, pb::CrashClass::Crash, pb::RecoveryAction::RetryElsewhere)
            .await
            .unwrap()
    );
    assert!(
        first.acquire(1).await.is_empty(),
        "the bad node does not get the job again"
    );
    let retry = second.acquire(1).await.remove(0);
    assert_eq!(retry.frame_job_id, assignment.frame_job_id);
    assert!(
        !second
            .fail(&retry, pb::CrashClass::Crash, pb::RecoveryAction::RetryElsewhere)
            .await
            .unwrap()
    );
    let failed = farm.job(&job.id).await;
    assert_eq!(failed.status(), pb::JobStatus::Failed);
    assert!(
        failed.failure_reason.contains("failed 2 times"),
        "{}",
        failed.failure_reason
    );
    assert!(
        failed.failure_reason.contains("frames 0-9"),
        "{}",
        failed.failure_reason
    );
    assert_eq!(
        farm.count("SELECT count(*) FROM render.node_crashes WHERE crash_class = 'crash'")
            .await,
        2
    );
}

/// A bad node is only avoided, not banned: within the grace it does not get the chunk back; once
/// the chunk has waited the grace with no other taker, the node that crashed on it gets it again
/// (a one-node farm does not stall forever). Two control planes on the one database differ only in
/// their grace (an hour, a second), so neither half depends on how fast the test runs.
#[tokio::test]
async fn bad_node_gets_the_chunk_back_after_the_grace() {
    let mut strict = test_config();
    strict.dispatch.bad_node_grace_seconds = 3600;
    let farm = Farm::start_with(strict).await;
    let mut lenient = test_config();
    lenient.dispatch.bad_node_grace_seconds = 1;
    let (lenient_grpc, _, _lenient_server) = farm.serve(lenient).await;
    let job = farm.submit(TenantId::new_random(), 0, 9, HASH_A).await;
    let mut node = farm.register("node-a", &[]).await;
    let assignment = node.acquire(1).await.remove(0);
    assert!(
        node.fail(&assignment, pb::CrashClass::Crash, pb::RecoveryAction::RetryElsewhere)
            .await
            .unwrap()
    );
    assert!(node.acquire(1).await.is_empty(), "avoided within the grace");

    let mut same_node_elsewhere = TestNode {
        id: node.id.clone(),
        token: node.token.clone(),
        client: NodeServiceClient::new(Farm::channel_to(lenient_grpc).await),
    };
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let retry = loop {
        if let Some(retry) = same_node_elsewhere.acquire(1).await.pop() {
            break retry;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the chunk comes back once it has waited a second"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(retry.frame_job_id, assignment.frame_job_id);
    assert_eq!(
        same_node_elsewhere.complete(&retry).await,
        pb::CompletionOutcome::Accepted
    );
    assert_eq!(farm.job(&job.id).await.progress.unwrap().chunks_completed, 1);
}

/// A template error fails the job at once: it would fail on every node.
#[tokio::test]
async fn template_error_fails_the_job_immediately() {
    let farm = Farm::start().await;
    let job = farm.submit(TenantId::new_random(), 0, 29, HASH_A).await;
    let mut node = farm.register("node-a", &[]).await;
    let assignment = node.acquire(1).await.remove(0);
    assert!(
        !node
            .fail(&assignment, pb::CrashClass::TemplateError, pb::RecoveryAction::FailJob)
            .await
            .unwrap()
    );
    let failed = farm.job(&job.id).await;
    assert_eq!(failed.status(), pb::JobStatus::Failed);
    assert!(
        failed.failure_reason.contains("cannot render on any node"),
        "{}",
        failed.failure_reason
    );
    assert_eq!(
        farm.count("SELECT count(*) FROM render.frame_jobs WHERE state IN ('pending', 'leased')")
            .await,
        0
    );
}

/// Frames written before a crash are kept and handed to the retry.
#[tokio::test]
async fn frames_written_before_a_failure_are_kept_for_the_retry() {
    let farm = Farm::start().await;
    farm.submit(TenantId::new_random(), 0, 9, HASH_A).await;
    let mut first = farm.register("node-a", &[]).await;
    let mut second = farm.register("node-b", &[]).await;
    let assignment = first.acquire(1).await.remove(0);
    let request = pb::FailWorkRequest {
        frame_job_id: assignment.frame_job_id.clone(),
        lease_token: assignment.lease_token,
        crash_class: pb::CrashClass::Crash as i32,
        frames_written: vec![0, 1, 2, 99],
        recovery_action: pb::RecoveryAction::RetryElsewhere as i32,
        ..Default::default()
    };
    first.client.fail_work(authed(request, &first.token)).await.unwrap();
    let retry = second.acquire(1).await.remove(0);
    assert_eq!(
        retry.frames_already_written,
        vec![0, 1, 2],
        "frames outside the chunk are ignored"
    );
}

/// A node stopping gracefully hands its chunk back: no attempt used, no crash recorded, and it
/// may take the chunk again later.
#[tokio::test]
async fn handing_a_chunk_back_costs_nothing() {
    let farm = Farm::start().await;
    farm.submit(TenantId::new_random(), 0, 9, HASH_A).await;
    let mut node = farm.register("node-a", &[]).await;
    let assignment = node.acquire(1).await.remove(0);
    assert!(
        node.fail(&assignment, pb::CrashClass::Unknown, pb::RecoveryAction::Requeue)
            .await
            .unwrap()
    );
    assert_eq!(
        farm.count("SELECT count(*) FROM render.frame_jobs WHERE state = 'pending' AND attempt = 0")
            .await,
        1
    );
    assert_eq!(farm.count("SELECT count(*) FROM render.node_crashes").await, 0);
    let again = node.acquire(1).await.remove(0);
    assert_eq!(again.frame_job_id, assignment.frame_job_id);
    assert_eq!(again.attempt, 1);
}
