//! `frctl jobs list|show|watch|cancel|retry`.

use flatrender_e2e::{Farm, WAIT_LIMIT, wait_until};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::{command, fake_aerender, farm_args, frctl, output};

/// watch follows a job to completion (exit 0, NDJSON with per-node activity), then list and
/// show report it; bad and unknown ids are exit 2 and 4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_follows_a_job_to_completion() {
    let farm = Farm::start(&[]).await;
    let job = farm.submit("watched", "Main", 40, 0, 19).await;
    let _agent = farm.agent("node-w", &fake_aerender(), &[("FAKE_AERENDER_FRAME_MS", "150")]);

    let watched = frctl(&farm, &["--output", "json", "jobs", "watch", &job.id]).await;
    watched.expect_code(0);
    let updates: Vec<Value> = watched
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}")))
        .collect();
    let last = updates.last().unwrap();
    assert_eq!(last["job"]["status"], "completed", "{watched:?}");
    assert_eq!(last["job"]["progress"]["frames_done"], 20);
    assert!(
        updates
            .iter()
            .flat_map(|update| update["running"].as_array().unwrap())
            .any(|chunk| chunk["node_name"] == "node-w"),
        "per-node activity names the node: {watched:?}"
    );
    // Watching a finished job in table mode prints its final line and exits 0 at once.
    let table = frctl(&farm, &["jobs", "watch", &job.id]).await;
    assert!(table.expect_code(0).stdout.contains("completed"), "{table:?}");

    let listed = frctl(&farm, &["--output", "json", "jobs", "list", "--status", "completed"]).await;
    let listed = listed.expect_code(0).json();
    assert_eq!(listed["jobs"][0]["id"], job.id.as_str(), "{listed}");
    let by_tenant = frctl(&farm, &["--output", "json", "jobs", "list", "--tenant", &job.tenant_id]).await;
    assert_eq!(by_tenant.expect_code(0).json()["jobs"].as_array().unwrap().len(), 1);
    let bad_tenant = frctl(&farm, &["jobs", "list", "--tenant", "not-a-uuid"]).await;
    bad_tenant.expect_code(2);
    assert!(bad_tenant.stderr.contains("tenant_id"), "{bad_tenant:?}");
    let empty = frctl(&farm, &["--output", "json", "jobs", "list", "--status", "failed"]).await;
    assert!(empty.expect_code(0).json()["jobs"].as_array().unwrap().is_empty());
    let shown = frctl(&farm, &["--output", "json", "jobs", "show", &job.id]).await;
    let shown = shown.expect_code(0).json();
    assert_eq!(shown["job"]["status"], "completed");
    assert_eq!(shown["job"]["progress"]["chunks_completed"], 4);
    assert!(shown["job"]["finished_at"].as_str().unwrap().ends_with('Z'));
    let chunks = shown["chunks"].as_array().unwrap();
    assert_eq!(
        chunks
            .iter()
            .map(|chunk| chunk["chunk_index"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        vec![0, 1, 2, 3],
        "every chunk, in order: {shown}"
    );
    assert!(chunks.iter().all(|chunk| chunk["state"] == "completed"), "{shown}");
    let table = frctl(&farm, &["jobs", "show", &job.id]).await;
    assert!(table.expect_code(0).stdout.contains("20/20 frames"), "{table:?}");

    let invalid = frctl(&farm, &["jobs", "show", "not-a-uuid"]).await;
    invalid.expect_code(2);
    assert!(invalid.stderr.contains("job_id"), "{invalid:?}");
    frctl(&farm, &["jobs", "show", &uuid::Uuid::new_v4().to_string()])
        .await
        .expect_code(4);
    frctl(&farm, &["jobs", "watch", &uuid::Uuid::new_v4().to_string()])
        .await
        .expect_code(4);
}

/// `jobs show` lists a saved project's scenes in play order with their fields, in both outputs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_lists_a_projects_scenes() {
    use flatrender_proto::pb::{self, field_value::Value};
    let farm = Farm::start(&[]).await;
    let scene = |composition: &str, end: i32, fields: Vec<pb::FieldValue>| pb::Scene {
        scene_id: String::new(),
        composition: composition.into(),
        frame_range: Some(pb::FrameRange { start: 0, end }),
        fields,
    };
    let headline = pb::FieldValue {
        key: "headline".into(),
        layer_name: "Title".into(),
        property: String::new(),
        value: Some(Value::Text("Hi".into())),
    };
    let request = farm.project_request(
        "shown",
        b"any project".to_vec(),
        vec![scene("Intro", 9, vec![headline]), scene("Outro", 4, Vec::new())],
    );
    let job = farm.submit_with(request).await;
    let shown = frctl(&farm, &["--output", "json", "jobs", "show", &job.id]).await;
    let shown = shown.expect_code(0).json();
    let scenes = shown["job"]["scenes"].as_array().unwrap();
    assert_eq!(scenes.len(), 2, "{shown}");
    assert_eq!(scenes[0]["composition"], "Intro");
    assert_eq!(scenes[0]["fields"][0], "headline:text");
    assert_eq!(scenes[1]["frame_end"], 4);
    let table = frctl(&farm, &["jobs", "show", &job.id]).await;
    let table = &table.expect_code(0).stdout;
    assert!(table.contains("scenes:") && table.contains("headline:text"), "{table}");
    assert!(table.contains("Outro"), "{table}");
}

/// `jobs show` lists a video job's export and its encode item, in both outputs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_lists_the_export() {
    let farm = Farm::start(&[]).await;
    let mut request = farm.submit_request("exported", "Main", 40, 0, 9);
    request.output.as_mut().unwrap().container = "webm".into();
    let job = farm.submit_with(request).await;
    let _agent = farm.agent("node-e", &fake_aerender(), &[]);
    let done = farm.wait_terminal(&job.id, WAIT_LIMIT).await;
    let export = done.export.expect("a completed video job has its export");

    let shown = frctl(&farm, &["--output", "json", "jobs", "show", &job.id]).await;
    let shown = shown.expect_code(0).json();
    assert_eq!(shown["job"]["export"]["location"], export.location.as_str(), "{shown}");
    assert_eq!(shown["job"]["export"]["format"], "webm");
    assert_eq!(shown["job"]["export"]["blake3_hex"], export.blake3_hex.as_str());
    let kinds: Vec<&str> = shown["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|chunk| chunk["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.iter().filter(|kind| **kind == "encode").count(), 1, "{shown}");
    let table = frctl(&farm, &["jobs", "show", &job.id]).await;
    let table = &table.expect_code(0).stdout;
    assert!(table.contains("export:") && table.contains(&export.location), "{table}");
    assert!(table.contains("vp9 + opus") && table.contains("encode"), "{table}");
}

/// A watch survives a control-plane restart and exits 8 when the job is cancelled; a cancelled
/// job can be retried once, and retrying a live job is a conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_reconnects_and_exits_8_on_cancel() {
    let mut farm = Farm::start(&[]).await;
    let job = farm.submit("cancelled", "Main", 40, 0, 9).await;

    let mut watch = command(&farm_args(&farm, &["--output", "json", "jobs", "watch", &job.id]))
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    let mut stderr_lines = BufReader::new(watch.stderr.take().unwrap()).lines();
    let first = tokio::time::timeout(WAIT_LIMIT, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let first: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["job"]["status"], "queued");

    farm.kill_control_plane();
    // The watch notices the lost stream and starts reconnecting before the control plane is back.
    let mut stderr = String::new();
    tokio::time::timeout(WAIT_LIMIT, async {
        while let Some(line) = stderr_lines.next_line().await.unwrap() {
            stderr.push_str(&line);
            stderr.push('\n');
            if line.contains("reconnecting") {
                return;
            }
        }
        panic!("watch ended without reconnecting: {stderr}");
    })
    .await
    .unwrap_or_else(|_| panic!("watch did not start reconnecting: {stderr}"));
    farm.start_control_plane().await;
    let cancelled = frctl(
        &farm,
        &[
            "--output",
            "json",
            "jobs",
            "cancel",
            &job.id,
            "--reason",
            "wrong template",
        ],
    )
    .await;
    assert_eq!(cancelled.expect_code(0).json()["job"]["status"], "cancelled");

    let mut last = first;
    while let Ok(Some(line)) = tokio::time::timeout(WAIT_LIMIT, lines.next_line()).await.unwrap() {
        last = serde_json::from_str(&line).unwrap();
    }
    let status = tokio::time::timeout(WAIT_LIMIT, watch.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(8), "watch exits 8 after the restart and the cancel");
    assert_eq!(last["job"]["status"], "cancelled");

    let watched = frctl(&farm, &["jobs", "watch", &job.id]).await;
    assert!(watched.expect_code(8).stdout.contains("cancelled"), "{watched:?}");

    let retried = frctl(&farm, &["--output", "json", "jobs", "retry", &job.id]).await;
    let retried = retried.expect_code(0).json();
    assert_eq!(retried["requeued_chunks"], 2, "{retried}");
    let conflict = frctl(&farm, &["jobs", "retry", &job.id]).await;
    conflict.expect_code(6);
    assert!(conflict.stderr.contains("only failed or cancelled"), "{conflict:?}");
    let requeued = wait_until(WAIT_LIMIT, || async {
        farm.count("SELECT count(*) FROM render.frame_jobs WHERE state = 'pending'")
            .await
            == 2
    })
    .await;
    assert!(requeued);
    output(command(&farm_args(&farm, &["jobs", "cancel", "not-a-uuid"])))
        .await
        .expect_code(2);
}
