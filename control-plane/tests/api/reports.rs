//! A node's reports on its leases (CompleteWork, FailWork, ReportProgress) with bad input: each is
//! INVALID_ARGUMENT naming the exact field, and nothing is written.

use flatrender_proto::{pb, types::TenantId};
use tonic::Code;

use crate::support::{Farm, HASH_A, TestNode, authed, completed_chunk, metric_sample, names_field, test_config};

type CompleteMutation = fn(&mut pb::CompleteWorkRequest);
type FailMutation = fn(&mut pb::FailWorkRequest);
type ProgressMutation = fn(&mut pb::ReportProgressRequest);

/// A farm with one job of two chunks, both leased to one node. Leases last ten minutes, so only a
/// refused report (never the reaper) could change them while a test runs.
async fn two_leased_chunks() -> (Farm, TestNode, Vec<pb::WorkAssignment>) {
    let mut config = test_config();
    config.dispatch.lease_ttl_seconds = 600;
    let farm = Farm::start_with(config).await;
    farm.submit(TenantId::new_random(), 0, 19, HASH_A).await;
    let mut node = farm.register("node-a", &[]).await;
    let leased = node.acquire(2).await;
    assert_eq!(leased.len(), 2);
    (farm, node, leased)
}

/// Asserts `result` is INVALID_ARGUMENT naming exactly `field`.
fn assert_refused<T: std::fmt::Debug>(result: Result<T, tonic::Status>, field: &str) {
    let status = result.expect_err(field);
    assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
    assert!(
        names_field(&status, field),
        "expected field {field}, got {:?}",
        status.message()
    );
}

/// A valid failure report for `assignment`.
fn failure(assignment: &pb::WorkAssignment) -> pb::FailWorkRequest {
    let start = assignment.frame_range.unwrap().start;
    pb::FailWorkRequest {
        frame_job_id: assignment.frame_job_id.clone(),
        lease_token: assignment.lease_token,
        crash_class: pb::CrashClass::Crash as i32,
        error_class: "ae_runtime_error".into(),
        exit_code: Some(-1073741819),
        log_tail: "aerender Error: After Effects error: crashed".into(),
        message: "After Effects crashed".into(),
        frames_written: vec![start, start + 1],
        recovery_action: pb::RecoveryAction::RetryElsewhere as i32,
    }
}

/// A valid progress report for `assignment`.
fn progress(assignment: &pb::WorkAssignment) -> pb::ReportProgressRequest {
    let start = assignment.frame_range.unwrap().start;
    pb::ReportProgressRequest {
        frame_job_id: assignment.frame_job_id.clone(),
        lease_token: assignment.lease_token,
        frames_done: 3,
        frames_written: vec![start, start + 1, start + 2],
    }
}

/// Every malformed completion names its field and writes nothing, not even the valid chunk sent
/// with it; the same request without the fault completes both chunks.
#[tokio::test]
async fn bad_completions_name_the_field_and_write_nothing() {
    let (farm, mut node, leased) = two_leased_chunks().await;
    let valid = pb::CompleteWorkRequest {
        chunks: leased.iter().map(completed_chunk).collect(),
    };
    let cases: Vec<(&str, CompleteMutation)> = vec![
        ("chunks", |r| r.chunks.clear()),
        ("chunks", |r| r.chunks = vec![r.chunks[0].clone(); 65]),
        ("chunks[1].frame_job_id", |r| r.chunks[1].frame_job_id.clear()),
        ("chunks[1].frame_job_id", |r| {
            r.chunks[1].frame_job_id = "chunk-1".into()
        }),
        ("chunks[1].frame_job_id", |r| {
            r.chunks[1].frame_job_id = uuid::Uuid::nil().to_string()
        }),
        ("chunks[1].lease_token", |r| r.chunks[1].lease_token = 0),
        ("chunks[1].lease_token", |r| r.chunks[1].lease_token = -3),
        ("chunks[1].lease_token", |r| r.chunks[1].lease_token = i64::MIN),
        ("chunks[1].outputs[0].size_bytes", |r| {
            r.chunks[1].outputs[0].size_bytes = -1
        }),
        ("chunks[1].outputs[0].blake3_hex", |r| {
            r.chunks[1].outputs[0].blake3_hex.clear()
        }),
        ("chunks[1].outputs[0].blake3_hex", |r| {
            r.chunks[1].outputs[0].blake3_hex = HASH_A[..63].into()
        }),
        ("chunks[1].outputs[0].blake3_hex", |r| {
            r.chunks[1].outputs[0].blake3_hex = format!("{HASH_A}0")
        }),
        ("chunks[1].outputs[0].blake3_hex", |r| {
            r.chunks[1].outputs[0].blake3_hex = "g".repeat(64)
        }),
        ("chunks[1].outputs[9].blake3_hex", |r| {
            r.chunks[1].outputs[9].blake3_hex = format!("{}x1", &HASH_A[..62])
        }),
        // 64 bytes but 32 characters: a byte-wise length check must not let it through.
        ("chunks[0].outputs[3].blake3_hex", |r| {
            r.chunks[0].outputs[3].blake3_hex = "é".repeat(32)
        }),
        ("chunks[1].outputs[0].path", |r| {
            r.chunks[1].outputs[0].path = "x".repeat(4097)
        }),
        ("chunks[1].outputs[0].path", |r| {
            r.chunks[1].outputs[0].path = "out/frame\u{7}.png".into()
        }),
        ("chunks[1].outputs[0].path", |r| r.chunks[1].outputs[0].path.clear()),
        ("chunks[1].outputs[2].frame", |r| r.chunks[1].outputs[2].frame = -1),
        ("chunks[1].render_seconds", |r| r.chunks[1].render_seconds = -0.5),
        ("chunks[1].render_seconds", |r| r.chunks[1].render_seconds = f64::NAN),
        ("chunks[1].render_seconds", |r| {
            r.chunks[1].render_seconds = f64::INFINITY
        }),
    ];
    let before = farm.render_state().await;
    for (field, mutate) in cases {
        let mut request = valid.clone();
        mutate(&mut request);
        let result = node.client.complete_work(authed(request, &node.token)).await;
        assert_refused(result, field);
        assert_eq!(farm.render_state().await, before, "{field}: nothing is written");
    }
    assert_eq!(
        farm.count("SELECT count(*) FROM render.frame_jobs WHERE state = 'leased'")
            .await,
        2
    );
    let metrics = farm.metrics().await;
    for outcome in ["accepted", "duplicate", "stale"] {
        assert_eq!(
            metric_sample(&metrics, "flatrender_completions_total", &[("outcome", outcome)]),
            None,
            "no completion was judged: {metrics}"
        );
    }

    let results = node
        .client
        .complete_work(authed(valid, &node.token))
        .await
        .expect("the unmodified request is valid")
        .into_inner()
        .results;
    assert!(
        results.len() == 2
            && results
                .iter()
                .all(|result| result.outcome() == pb::CompletionOutcome::Accepted),
        "{results:?}"
    );
}

/// Every malformed failure report names its field and records nothing: no crash, no bad-node
/// mark, no attempt used, the lease still live; the same report without the fault is recorded.
#[tokio::test]
async fn bad_failure_reports_name_the_field_and_write_nothing() {
    let (farm, mut node, leased) = two_leased_chunks().await;
    let valid = failure(&leased[0]);
    let cases: Vec<(&str, FailMutation)> = vec![
        ("frame_job_id", |r| r.frame_job_id.clear()),
        ("frame_job_id", |r| r.frame_job_id = "chunk-0".into()),
        ("frame_job_id", |r| r.frame_job_id = uuid::Uuid::nil().to_string()),
        ("lease_token", |r| r.lease_token = 0),
        ("lease_token", |r| r.lease_token = -1),
        ("lease_token", |r| r.lease_token = i64::MIN),
        ("crash_class", |r| r.crash_class = 42),
        ("crash_class", |r| r.crash_class = -1),
        ("recovery_action", |r| r.recovery_action = 42),
        ("error_class", |r| r.error_class = "e".repeat(65)),
        ("error_class", |r| r.error_class = "ae\u{0}error".into()),
        ("log_tail", |r| r.log_tail = "l".repeat(64 * 1024 + 1)),
        ("message", |r| r.message = "m".repeat(4001)),
    ];
    let before = farm.render_state().await;
    for (field, mutate) in cases {
        let mut request = valid.clone();
        mutate(&mut request);
        let result = node.client.fail_work(authed(request, &node.token)).await;
        assert_refused(result, field);
        assert_eq!(farm.render_state().await, before, "{field}: nothing is written");
    }
    assert_eq!(
        farm.count("SELECT count(*) FROM render.frame_jobs WHERE state = 'leased'")
            .await,
        2
    );
    let metrics = farm.metrics().await;
    assert!(
        !metrics
            .lines()
            .any(|line| line.starts_with("flatrender_failures_total{")),
        "no failure was counted: {metrics}"
    );

    let retried = node
        .client
        .fail_work(authed(valid, &node.token))
        .await
        .expect("the unmodified report is valid")
        .into_inner();
    assert!(retried.will_retry);
    assert_eq!(farm.count("SELECT count(*) FROM render.node_crashes").await, 1);
}

/// Every malformed progress report names its field and changes nothing (the lease is not
/// extended, frames_done stays); the same report without the fault is recorded.
#[tokio::test]
async fn bad_progress_reports_name_the_field_and_write_nothing() {
    let (farm, mut node, leased) = two_leased_chunks().await;
    let valid = progress(&leased[0]);
    let cases: Vec<(&str, ProgressMutation)> = vec![
        ("frame_job_id", |r| r.frame_job_id.clear()),
        ("frame_job_id", |r| r.frame_job_id = "chunk-0".into()),
        ("frame_job_id", |r| r.frame_job_id = uuid::Uuid::nil().to_string()),
        ("lease_token", |r| r.lease_token = 0),
        ("lease_token", |r| r.lease_token = -9),
        ("lease_token", |r| r.lease_token = i64::MIN),
    ];
    let before = farm.render_state().await;
    for (field, mutate) in cases {
        let mut request = valid.clone();
        mutate(&mut request);
        let result = node.client.report_progress(authed(request, &node.token)).await;
        assert_refused(result, field);
        assert_eq!(farm.render_state().await, before, "{field}: nothing is written");
    }

    node.client
        .report_progress(authed(valid, &node.token))
        .await
        .expect("the unmodified report is valid");
    let frames_done: i32 = sqlx::query_scalar("SELECT frames_done FROM render.frame_jobs WHERE id = $1::uuid")
        .bind(&leased[0].frame_job_id)
        .fetch_one(farm.db.pool())
        .await
        .unwrap();
    assert_eq!(frames_done, 3);
}

/// A negative frame count is refused, naming the field, like every other negative count.
#[tokio::test]
async fn negative_frames_done_is_refused() {
    let (farm, mut node, leased) = two_leased_chunks().await;
    let mut request = progress(&leased[0]);
    request.frames_done = -1;
    let before = farm.render_state().await;
    let result = node.client.report_progress(authed(request, &node.token)).await;
    assert_refused(result, "frames_done");
    assert_eq!(farm.render_state().await, before, "nothing is written");
    let heartbeat = pb::HeartbeatRequest {
        leases: vec![pb::LeaseStatus {
            frame_job_id: leased[1].frame_job_id.clone(),
            lease_token: leased[1].lease_token,
            frames_done: -1,
        }],
        ..Default::default()
    };
    let result = node.client.heartbeat(authed(heartbeat, &node.token)).await;
    assert_refused(result, "leases[0].frames_done");
    assert_eq!(farm.render_state().await, before, "nothing is written");
}
