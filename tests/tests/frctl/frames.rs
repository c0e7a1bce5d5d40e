//! `frctl frames requeue` (dry run, confirmation, the move) and `frctl crashes list`, on a job
//! whose chunk failed for good.

use flatrender_e2e::{Farm, WAIT_LIMIT};
use flatrender_proto::pb;

use crate::{fake_aerender, frctl};

/// Every chunk's state, attempt and node: what a requeue would change.
async fn chunk_states(farm: &Farm) -> Vec<(uuid::Uuid, String, i32, Option<uuid::Uuid>)> {
    sqlx::query_as("SELECT id, state, attempt, lease_node_id FROM render.frame_jobs ORDER BY id")
        .fetch_all(farm.db.pool())
        .await
        .unwrap()
}

/// A dry run lists exactly the failed chunk and moves nothing; a move over the threshold without
/// --yes is exit 7 and moves nothing; with --yes it moves what the dry run listed. The failure
/// shows in `crashes list`, filtered by node and class.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeue_dry_run_moves_nothing_and_yes_moves_the_failed_chunk() {
    let farm = Farm::start(&[]).await;
    let job = farm.submit("broken", "Main", 40, 0, 9).await;
    let mut agent = farm.agent(
        "node-f",
        &fake_aerender(),
        &[
            ("FAKE_AERENDER_MODE", "error"),
            ("FAKE_AERENDER_ERROR", "comp_not_found"),
        ],
    );
    let failed = farm.wait_terminal(&job.id, WAIT_LIMIT).await;
    assert_eq!(failed.status(), pb::JobStatus::Failed, "{}", agent.log_text());
    // Nothing may change the chunks behind the test's back.
    agent.kill();

    let crashes = frctl(
        &farm,
        &[
            "--output",
            "json",
            "crashes",
            "list",
            "--node",
            "node-f",
            "--class",
            "template_error",
            "--since",
            "1h",
        ],
    )
    .await;
    let crashes = crashes.expect_code(0).json();
    let crashes = crashes["crashes"].as_array().unwrap().clone();
    assert_eq!(crashes.len(), 1, "{crashes:?}");
    assert_eq!(crashes[0]["node_name"], "node-f");
    assert_eq!(crashes[0]["crash_class"], "template_error");
    assert_eq!(crashes[0]["job_id"], job.id.as_str());
    let other_class = frctl(&farm, &["--output", "json", "crashes", "list", "--class", "hang"]).await;
    assert!(
        other_class.expect_code(0).json()["crashes"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let table = frctl(&farm, &["crashes", "list"]).await;
    assert!(table.expect_code(0).stdout.contains("template_error"), "{table:?}");
    frctl(&farm, &["crashes", "list", "--node", "node-nope"])
        .await
        .expect_code(4);

    let before = chunk_states(&farm).await;
    let failed_chunks: Vec<String> = before
        .iter()
        .filter(|(_, state, _, _)| state == "failed")
        .map(|(id, _, _, _)| id.to_string())
        .collect();
    assert_eq!(failed_chunks.len(), 1, "{before:?}");
    let dry = frctl(
        &farm,
        &["--output", "json", "frames", "requeue", "--job", &job.id, "--dry-run"],
    )
    .await;
    let dry = dry.expect_code(0).json();
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["count"], 1);
    assert_eq!(dry["chunks"][0]["id"], failed_chunks[0].as_str(), "{dry}");
    assert_eq!(dry["chunks"][0]["state"], "failed");
    assert_eq!(chunk_states(&farm).await, before, "a dry run moves nothing");
    let table = frctl(&farm, &["frames", "requeue", "--job", &job.id, "--dry-run"]).await;
    assert!(table.expect_code(0).stdout.contains("nothing was moved"), "{table:?}");

    let refused = frctl(&farm, &["frames", "requeue", "--job", &job.id, "--confirm-over", "0"]).await;
    refused.expect_code(7);
    assert!(refused.stderr.contains("--yes"), "{refused:?}");
    assert_eq!(chunk_states(&farm).await, before, "a refused move moves nothing");

    let nothing = frctl(
        &farm,
        &[
            "--output",
            "json",
            "frames",
            "requeue",
            "--tenant",
            &uuid::Uuid::new_v4().to_string(),
        ],
    )
    .await;
    assert_eq!(nothing.expect_code(0).json()["count"], 0);
    frctl(&farm, &["frames", "requeue", "--job", "not-a-uuid"])
        .await
        .expect_code(2);

    let moved = frctl(
        &farm,
        &[
            "--output",
            "json",
            "frames",
            "requeue",
            "--job",
            &job.id,
            "--state",
            "failed",
            "--confirm-over",
            "0",
            "--yes",
        ],
    )
    .await;
    let moved = moved.expect_code(0).json();
    assert_eq!(moved["dry_run"], false);
    assert_eq!(moved["chunks"][0]["id"], failed_chunks[0].as_str(), "{moved}");
    assert_eq!(
        farm.count(&format!(
            "SELECT count(*) FROM render.frame_jobs WHERE id = '{}' AND state = 'pending'",
            failed_chunks[0]
        ))
        .await,
        1
    );
    assert_ne!(
        farm.job(&job.id).await.status(),
        pb::JobStatus::Failed,
        "the job is revived"
    );
}
