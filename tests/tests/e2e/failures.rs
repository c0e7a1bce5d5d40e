//! Every failure mode of the aerender double ends in the right terminal state, with the right
//! crash class recorded, no process of the double's tree left running, and frames already
//! written kept (the retry renders only the missing ones).

use std::{
    collections::BTreeSet,
    ops::RangeInclusive,
    path::{Path, PathBuf},
};

use flatrender_e2e::{Agent, Farm, WAIT_LIMIT as LIMIT, binary, leftover_processes, wait_until};
use flatrender_proto::pb;

use crate::fake_aerender;

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

/// What [`fails_once_then_completes_elsewhere`] leaves for further checks.
struct Retried {
    farm: Farm,
    job: pb::RenderJob,
    /// The agent whose first run failed, kept running until the test ends.
    _first: Agent,
    /// State folder of the agent that finished the job (it has stopped).
    second_state_dir: PathBuf,
    /// Frames on disk when the failure was recorded, before the second agent started.
    frames_before_retry: BTreeSet<i32>,
}

/// The first agent fails its first run with `fake_env`; the failure is recorded with
/// `expected_class`; a second, healthy agent then finishes the job.
async fn fails_once_then_completes_elsewhere(name: &str, fake_env: &[(&str, &str)], expected_class: &str) -> Retried {
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
    let frames_before_retry = frames_on_disk(&farm.dir.path().join("renders").join(&job.id));
    let second = farm.agent(&format!("{name}-b"), &fake_aerender(), &[]);
    let done = farm.wait_terminal(&job.id, LIMIT).await;
    assert_eq!(
        done.status(),
        pb::JobStatus::Completed,
        "{done:?}\n{}",
        second.log_text()
    );
    let clean = wait_until(LIMIT, || async {
        leftover_processes(&first).is_empty() && leftover_processes(&second).is_empty()
    })
    .await;
    assert!(clean, "no process of the double's tree left");
    let second_state_dir = second.state_dir.clone();
    drop(second);
    Retried {
        farm,
        job,
        _first: first,
        second_state_dir,
        frames_before_retry,
    }
}

/// Frame numbers of the `<name>_<frame>.png` files in `dir`.
fn frames_on_disk(dir: &Path) -> BTreeSet<i32> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeSet::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let file_name = entry.file_name().into_string().ok()?;
            let (_, number) = file_name.strip_suffix(".png")?.rsplit_once('_')?;
            number.parse().ok()
        })
        .collect()
}

/// The frames each run of an agent rendered for one chunk, read back from aerender's raw output
/// that the agent keeps per run (`<state_dir>/render-logs/<job>/<chunk>-<first frame>.log`) with
/// `node-agent parse-log`: the settings block's `Start`..=`End`, which aerender prints from the
/// `-s`/`-e` it was given, each confirmed by a frame line for every frame in it.
async fn frames_rendered_per_run(state_dir: &Path, job_id: &str, frame_job_id: &str) -> Vec<RangeInclusive<i32>> {
    let dir = state_dir.join("render-logs").join(job_id);
    let mut runs = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let path = entry.path();
        let is_this_chunk = path
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with(&format!("{frame_job_id}-")));
        if !is_this_chunk {
            continue;
        }
        let parsed = tokio::time::timeout(
            LIMIT,
            tokio::process::Command::new(binary("node-agent"))
                .arg("parse-log")
                .arg(&path)
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("parse-log finished")
        .unwrap();
        let summary: serde_json::Value = serde_json::from_slice(&parsed.stdout).unwrap();
        let (Some(start), Some(end)) = (summary["start_frame"].as_i64(), summary["end_frame"].as_i64()) else {
            panic!("{} has no Start/End: {summary}", path.display());
        };
        assert_eq!(
            summary["frame_lines_seen"].as_i64(),
            Some(end - start + 1),
            "{} rendered its whole range: {summary}",
            path.display()
        );
        runs.push(i32::try_from(start).unwrap()..=i32::try_from(end).unwrap());
    }
    runs.sort_by_key(|range| *range.start());
    runs
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
/// already written: the retry renders only the frames the crash did not leave on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_mid_render_retries_elsewhere_keeping_written_frames() {
    let retried = fails_once_then_completes_elsewhere(
        "crash",
        &[("FAKE_AERENDER_MODE", "crash"), ("FAKE_AERENDER_AT_FRAME", "3")],
        "crash",
    )
    .await;
    let farm = &retried.farm;
    let (chunk_id, frame_start, frame_end): (uuid::Uuid, i32, i32) = sqlx::query_as(
        "SELECT f.id, f.frame_start, f.frame_end FROM render.frame_jobs f \
         JOIN render.node_crashes c ON c.frame_job_id = f.id WHERE c.crash_class = 'crash'",
    )
    .fetch_one(farm.db.pool())
    .await
    .unwrap();
    let chunk_frames: Vec<i32> = (frame_start..=frame_end).collect();
    let kept: Vec<i32> = chunk_frames
        .iter()
        .copied()
        .filter(|frame| retried.frames_before_retry.contains(frame))
        .collect();
    assert!(
        !kept.is_empty() && kept.len() < chunk_frames.len(),
        "the crash at frame 3 left some of {chunk_frames:?} on disk, not all: {kept:?}"
    );
    let missing: Vec<i32> = chunk_frames
        .iter()
        .copied()
        .filter(|frame| !kept.contains(frame))
        .collect();

    let runs = frames_rendered_per_run(&retried.second_state_dir, &retried.job.id, &chunk_id.to_string()).await;
    let rendered: Vec<i32> = runs.iter().cloned().flatten().collect();
    assert_eq!(
        rendered, missing,
        "the retry renders exactly the missing frames (runs {runs:?}), not the {kept:?} kept"
    );
    let written: Vec<i32> =
        sqlx::query_scalar("SELECT cardinality(frames_written) FROM render.frame_jobs WHERE id = $1")
            .bind(chunk_id)
            .fetch_all(farm.db.pool())
            .await
            .unwrap();
    assert_eq!(
        written,
        vec![chunk_frames.len() as i32],
        "the chunk ends with all its frames"
    );
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
    let done = farm.wait_terminal(&job.id, LIMIT).await;
    assert_eq!(done.status(), pb::JobStatus::Completed, "{}", agent.log_text());
    assert!(crash_classes(&farm).await.is_empty());
    let clean = wait_until(LIMIT, || async { leftover_processes(&agent).is_empty() }).await;
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
    let clean = wait_until(LIMIT, || async { leftover_processes(&agent).is_empty() }).await;
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
    let retried = fails_once_then_completes_elsewhere(
        "diskfull",
        &[("FAKE_AERENDER_MODE", "disk_full"), ("FAKE_AERENDER_AT_FRAME", "2")],
        "output_write",
    )
    .await;
    assert_eq!(
        crash_classes(&retried.farm).await[0],
        ("output_write".to_string(), Some("output_module_failed".to_string()))
    );
}
