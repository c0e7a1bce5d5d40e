//! Every failure mode of the aerender double ends in the right terminal state, with the right
//! crash class recorded, no process of the double's tree left running, and frames already
//! written kept.

use std::time::Duration;

use flatrender_e2e::{Agent, Farm, leftover_processes, wait_until};
use flatrender_proto::pb;

use crate::fake_aerender;

const LIMIT: Duration = Duration::from_secs(60);

/// Starts a farm, submits a 10-frame job and runs one agent with `fake_env` on it.
async fn farm_with_failing_agent(name: &str, fake_env: &[(&str, &str)]) -> (Farm, pb::RenderJob, Agent) {
    let farm = Farm::start(&[("FLATRENDER_DISPATCH__MAX_ATTEMPTS", "3")]).await;
    let job = farm.submit(name, "Main", 40, 0, 9).await;
    let agent = farm.agent(&format!("{name}-a"), &fake_aerender(), fake_env);
    (farm, job, agent)
}

async fn crash_classes(farm: &Farm) -> Vec<(String, Option<String>)> {
    sqlx::query_as("SELECT crash_class, error_class FROM render.node_crashes WHERE crash_class <> 'agent_lost' ORDER BY occurred_at")
        .fetch_all(farm.db.pool())
        .await
        .unwrap()
}

/// The first agent fails its first run with `fake_env`; the failure is recorded with
/// `expected_class`; a second, healthy agent then finishes the job.
async fn fails_once_then_completes_elsewhere(
    name: &str,
    fake_env: &[(&str, &str)],
    expected_class: &str,
) -> (Farm, Agent) {
    let mut env = vec![("FAKE_AERENDER_RUNS", "1")];
    env.extend_from_slice(fake_env);
    let (farm, job, first) = farm_with_failing_agent(name, &env).await;
    let failed = wait_until(LIMIT, || async {
        farm.count(&format!(
            "SELECT count(*) FROM render.node_crashes WHERE crash_class = '{expected_class}'"
        ))
        .await
            >= 1
    })
    .await;
    assert!(
        failed,
        "expected a {expected_class} crash: {:?}\n{}",
        crash_classes(&farm).await,
        first.log_text()
    );
    let second = farm.agent(&format!("{name}-b"), &fake_aerender(), &[]);
    let done = farm.wait_terminal(&job.id, LIMIT).await;
    assert_eq!(
        done.status(),
        pb::JobStatus::Completed,
        "{done:?}\n{}",
        second.log_text()
    );
    let clean = wait_until(Duration::from_secs(5), || async {
        leftover_processes(&first).is_empty() && leftover_processes(&second).is_empty()
    })
    .await;
    assert!(clean, "no process of the double's tree left");
    drop(second);
    (farm, first)
}

/// A comp that does not exist fails the job at once as a template error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_comp_fails_the_job_as_template_error() {
    let (farm, job, agent) = farm_with_failing_agent(
        "nocomp",
        &[
            ("FAKE_AERENDER_MODE", "error"),
            ("FAKE_AERENDER_ERROR", "comp_not_found"),
        ],
    )
    .await;
    let done = farm.wait_terminal(&job.id, LIMIT).await;
    assert_eq!(done.status(), pb::JobStatus::Failed, "{}", agent.log_text());
    assert!(
        done.failure_reason.contains("cannot render on any node"),
        "{}",
        done.failure_reason
    );
    assert_eq!(
        crash_classes(&farm).await,
        vec![("template_error".to_string(), Some("comp_not_found".to_string()))]
    );
}

/// Output damaged by missing footage (exit 0) fails the job as a template error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completed_with_damage_fails_the_job() {
    let (farm, job, agent) = farm_with_failing_agent("damage", &[("FAKE_AERENDER_MODE", "damage")]).await;
    let done = farm.wait_terminal(&job.id, LIMIT).await;
    assert_eq!(done.status(), pb::JobStatus::Failed, "{}", agent.log_text());
    assert_eq!(
        crash_classes(&farm).await[0],
        ("template_error".to_string(), Some("missing_footage".to_string()))
    );
}

/// A crash mid-render (truncated frame, SIGABRT) retries elsewhere and keeps the frames
/// already written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_mid_render_retries_elsewhere_keeping_written_frames() {
    let (farm, _first) = fails_once_then_completes_elsewhere(
        "crash",
        &[("FAKE_AERENDER_MODE", "crash"), ("FAKE_AERENDER_AT_FRAME", "3")],
        "crash",
    )
    .await;
    let kept: Vec<i32> =
        sqlx::query_scalar("SELECT cardinality(frames_written) FROM render.frame_jobs WHERE chunk_index = 0")
            .fetch_all(farm.db.pool())
            .await
            .unwrap();
    assert_eq!(kept, vec![5], "the chunk ends with all its frames");
}

/// A render that stalls mid-way is detected as a hang, killed, and retried elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_is_killed_as_a_hang() {
    fails_once_then_completes_elsewhere(
        "stall",
        &[("FAKE_AERENDER_MODE", "stall"), ("FAKE_AERENDER_AT_FRAME", "2")],
        "hang",
    )
    .await;
}

/// The crash-dialog hang (the whole tree alive and silent) is killed as a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_dialog_is_killed_as_a_hang() {
    fails_once_then_completes_elsewhere(
        "dialog",
        &[("FAKE_AERENDER_MODE", "crash_dialog"), ("FAKE_AERENDER_AT_FRAME", "2")],
        "hang",
    )
    .await;
}

/// A silent early exit with code 0 is a crash, not a success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_exit_is_a_crash() {
    fails_once_then_completes_elsewhere(
        "silent",
        &[
            ("FAKE_AERENDER_MODE", "silent_exit"),
            ("FAKE_AERENDER_EXIT_AFTER_MS", "300"),
        ],
        "crash",
    )
    .await;
}

/// An error line with exit code 0 is a failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_with_exit_zero_is_a_failure() {
    fails_once_then_completes_elsewhere(
        "errzero",
        &[
            ("FAKE_AERENDER_MODE", "error"),
            ("FAKE_AERENDER_ERROR", "runtime"),
            (
                "FAKE_AERENDER_ERROR_MESSAGE",
                "internal verification failure, sorry! {heap corrupted}",
            ),
            ("FAKE_AERENDER_EXIT_CODE", "0"),
            ("FAKE_AERENDER_AT_FRAME", "2"),
        ],
        "crash",
    )
    .await;
}

/// Exit 0 with nothing rendered is a failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_render_exit_is_a_failure() {
    fails_once_then_completes_elsewhere("norender", &[("FAKE_AERENDER_MODE", "no_render")], "crash").await;
}

/// AE busy backs off and retries on the same node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_instance_backs_off_and_retries_here() {
    let (farm, job, agent) =
        farm_with_failing_agent("busy", &[("FAKE_AERENDER_MODE", "busy"), ("FAKE_AERENDER_RUNS", "1")]).await;
    let done = farm.wait_terminal(&job.id, LIMIT).await;
    assert_eq!(done.status(), pb::JobStatus::Completed, "{}", agent.log_text());
    assert_eq!(
        crash_classes(&farm).await,
        vec![("ae_busy".to_string(), Some("ae_busy".to_string()))]
    );
}

/// Hanging after the finish line with every frame written is judged by the outputs: success,
/// and the tree is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hang_after_finish_succeeds_by_outputs_and_is_killed() {
    let (farm, job, agent) = farm_with_failing_agent("tail", &[("FAKE_AERENDER_MODE", "hang_after_finish")]).await;
    let done = farm.wait_terminal(&job.id, Duration::from_secs(30)).await;
    assert_eq!(done.status(), pb::JobStatus::Completed, "{}", agent.log_text());
    assert!(crash_classes(&farm).await.is_empty());
    let clean = wait_until(Duration::from_secs(5), || async {
        leftover_processes(&agent).is_empty()
    })
    .await;
    assert!(clean, "the hung tree was killed");
}

/// An After Effects child that outlives aerender is killed after a successful render.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn surviving_child_is_killed() {
    let (farm, job, agent) = farm_with_failing_agent(
        "orphan",
        &[
            ("FAKE_AERENDER_CHILD_SURVIVES", "true"),
            ("FAKE_AERENDER_CHILD_DETACH", "true"),
        ],
    )
    .await;
    let done = farm.wait_terminal(&job.id, LIMIT).await;
    assert_eq!(done.status(), pb::JobStatus::Completed, "{}", agent.log_text());
    let clean = wait_until(Duration::from_secs(5), || async {
        leftover_processes(&agent).is_empty()
    })
    .await;
    assert!(clean, "the surviving child was found and killed");
}

/// Slow start, slow frames, banner-last ordering and missing-font warnings still render.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_noisy_renders_succeed() {
    let (farm, job, agent) = farm_with_failing_agent(
        "noisy",
        &[
            ("FAKE_AERENDER_START_DELAY_MS", "800"),
            ("FAKE_AERENDER_SLOW_FRAMES", "2:700"),
            ("FAKE_AERENDER_BANNER_LAST", "true"),
            ("FAKE_AERENDER_MISSING_FONTS", "simple"),
        ],
    )
    .await;
    let done = farm.wait_terminal(&job.id, LIMIT).await;
    assert_eq!(done.status(), pb::JobStatus::Completed, "{}", agent.log_text());
}

/// The output disk filling up mid-render (the double reports the write error and exits 9) is an
/// output write failure: the chunk moves to another node, which completes the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_output_disk_is_an_output_write_failure() {
    let (farm, _first) = fails_once_then_completes_elsewhere(
        "diskfull",
        &[("FAKE_AERENDER_MODE", "disk_full"), ("FAKE_AERENDER_AT_FRAME", "2")],
        "output_write",
    )
    .await;
    assert_eq!(
        crash_classes(&farm).await[0],
        ("output_write".to_string(), Some("output_module_failed".to_string()))
    );
}
