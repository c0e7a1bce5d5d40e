//! `frctl nodes ...` and `frctl cache show`, by name and by id.

use flatrender_e2e::{Farm, WAIT_LIMIT, kill_leftovers, wait_until};
use flatrender_proto::pb;

use crate::{fake_aerender, frctl};

/// list, show, cache show, drain, undrain, disable, enable on a live node; unknown nodes are
/// exit 4 and a state conflict exit 6.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_are_listed_shown_and_moved_between_states() {
    let farm = Farm::start(&[]).await;
    let job = farm.submit("nodes", "Main", 40, 0, 9).await;
    let _agent = farm.agent("node-a", &fake_aerender(), &[]);
    let done = farm.wait_terminal(&job.id, WAIT_LIMIT).await;
    assert_eq!(done.status(), pb::JobStatus::Completed);
    let id = farm.node_id("node-a").await;

    let listed = frctl(&farm, &["--output", "json", "nodes", "list"]).await;
    let listed = listed.expect_code(0).json();
    assert_eq!(listed["nodes"][0]["name"], "node-a", "{listed}");
    assert_eq!(listed["nodes"][0]["id"], id.as_str());
    assert_eq!(listed["nodes"][0]["state"], "online");
    let table = frctl(&farm, &["nodes", "list", "--state", "online"]).await;
    assert!(table.expect_code(0).stdout.contains("node-a"), "{table:?}");
    let none = frctl(&farm, &["--output", "json", "nodes", "list", "--state", "disabled"]).await;
    assert_eq!(none.expect_code(0).json()["nodes"].as_array().unwrap().len(), 0);

    let shown = frctl(&farm, &["--output", "json", "nodes", "show", "node-a"]).await;
    let shown = shown.expect_code(0).json();
    assert_eq!(shown["node"]["id"], id.as_str());
    assert!(shown["running"].as_array().unwrap().is_empty(), "{shown}");
    frctl(&farm, &["nodes", "show", &id]).await.expect_code(0);

    // The agent reports its cache inventory with heartbeats.
    let cached = wait_until(WAIT_LIMIT, || async {
        let run = frctl(&farm, &["--output", "json", "cache", "show", "node-a"]).await;
        run.code == 0 && run.json()["cache"].as_array().is_some_and(|cache| !cache.is_empty())
    })
    .await;
    assert!(cached, "the template shows up in the node's cache");
    let cache = frctl(&farm, &["--output", "json", "cache", "show", &id]).await;
    let cache = cache.expect_code(0).json();
    assert_eq!(cache["node_name"], "node-a");
    assert_eq!(cache["cache"][0]["blake3_hex"].as_str().unwrap().len(), 64, "{cache}");

    let unknown = frctl(&farm, &["nodes", "show", "node-nope"]).await;
    unknown.expect_code(4);
    assert!(unknown.stderr.contains("frctl nodes list"), "{unknown:?}");
    frctl(&farm, &["cache", "show", "node-nope"]).await.expect_code(4);
    frctl(&farm, &["nodes", "drain", &uuid::Uuid::new_v4().to_string()])
        .await
        .expect_code(4);

    // Moves that do not apply to an online node are conflicts, and nothing changes.
    frctl(&farm, &["nodes", "undrain", "node-a"]).await.expect_code(6);
    let not_disabled = frctl(&farm, &["nodes", "enable", "node-a"]).await;
    not_disabled.expect_code(6);
    assert!(not_disabled.stderr.contains("is online"), "{not_disabled:?}");
    frctl(&farm, &["nodes", "disable", "node-nope"]).await.expect_code(4);

    let drained = frctl(&farm, &["--output", "json", "nodes", "drain", "node-a"]).await;
    let drained = drained.expect_code(0).json();
    assert!(
        ["draining", "drained"].contains(&drained["node"]["state"].as_str().unwrap()),
        "{drained}"
    );
    let undrained = frctl(&farm, &["--output", "json", "nodes", "undrain", "node-a"]).await;
    assert_eq!(undrained.expect_code(0).json()["node"]["state"], "online");

    let disabled = frctl(
        &farm,
        &[
            "--output",
            "json",
            "nodes",
            "disable",
            "node-a",
            "--reason",
            "disk swap",
        ],
    )
    .await;
    let disabled = disabled.expect_code(0).json();
    assert_eq!(disabled["node"]["state"], "disabled");
    assert_eq!(disabled["node"]["state_reason"], "disk swap");
    assert_eq!(disabled["requeued_chunks"], 0);
    let conflict = frctl(&farm, &["nodes", "drain", "node-a"]).await;
    conflict.expect_code(6);
    let enabled = frctl(&farm, &["nodes", "enable", "node-a"]).await;
    assert!(enabled.expect_code(0).stdout.contains("online"), "{enabled:?}");
    assert_eq!(
        farm.count("SELECT count(*) FROM render.nodes WHERE state = 'online'")
            .await,
        1
    );
}

/// Drain with a deadline requeues the chunk still running when the deadline passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_with_deadline_requeues_the_running_chunk() {
    // Chunks of 100 frames at 2 s a frame: a chunk cannot finish before the drain deadline
    // takes it, however slow the machine.
    let farm = Farm::start(&[("FLATRENDER_DISPATCH__CHUNK_FRAMES", "100")]).await;
    let job = farm.submit("deadline", "Main", 400, 0, 199).await;
    let mut agent = farm.agent("node-slow", &fake_aerender(), &[("FAKE_AERENDER_FRAME_MS", "2000")]);
    let leased = wait_until(WAIT_LIMIT, || async {
        farm.count("SELECT count(*) FROM render.frame_jobs WHERE state = 'leased'")
            .await
            == 1
    })
    .await;
    assert!(leased, "{}", agent.log_text());
    let running: uuid::Uuid = sqlx::query_scalar("SELECT id FROM render.frame_jobs WHERE state = 'leased'")
        .fetch_one(farm.db.pool())
        .await
        .unwrap();

    let job = frctl(&farm, &["--output", "json", "jobs", "show", &job.id]).await;
    let job = job.expect_code(0).json();
    let running_chunk = job["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|chunk| chunk["state"] == "leased")
        .unwrap();
    assert_eq!(running_chunk["id"], running.to_string().as_str(), "{job}");
    assert_eq!(running_chunk["node_name"], "node-slow", "{job}");

    let drained = frctl(
        &farm,
        &["--output", "json", "nodes", "drain", "node-slow", "--deadline", "1s"],
    )
    .await;
    let drained = drained.expect_code(0).json();
    assert_eq!(drained["node"]["state"], "draining", "{drained}");
    assert!(drained["node"]["drain_deadline"].as_str().unwrap().ends_with('Z'));

    let requeued = wait_until(WAIT_LIMIT, || async {
        farm.count(&format!(
            "SELECT count(*) FROM render.frame_jobs WHERE id = '{running}' AND state <> 'leased'"
        ))
        .await
            == 1
    })
    .await;
    assert!(requeued, "the chunk was requeued at the deadline\n{}", farm.logs());
    assert_eq!(
        farm.count(&format!(
            "SELECT count(*) FROM render.frame_jobs WHERE id = '{running}' AND state = 'pending'"
        ))
        .await,
        1,
        "back in the queue, not completed"
    );
    let node = frctl(&farm, &["--output", "json", "nodes", "show", "node-slow"]).await;
    let node = node.expect_code(0).json();
    assert!(node["running"].as_array().unwrap().is_empty(), "{node}");
    agent.kill();
    kill_leftovers(&agent);
}
