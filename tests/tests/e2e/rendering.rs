//! Happy paths and resilience: two agents share a job; an agent killed mid-chunk; the control
//! plane going away and coming back.

use flatrender_e2e::{Farm, WAIT_LIMIT, kill_leftovers, leftover_processes, wait_until};
use flatrender_proto::pb;

use crate::fake_aerender;

/// Two agents render one job to completion, both taking chunks, every frame on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_render_a_job_to_completion() {
    let farm = Farm::start(&[]).await;
    let job = farm.submit("promo", "Main", 40, 0, 19).await;
    // The first agent lists a dead endpoint first: it fails over to the live one.
    let endpoints = format!("http://127.0.0.1:9,{}", farm.endpoint);
    let first = farm.agent(
        "node-a",
        &fake_aerender(),
        &[
            ("FAKE_AERENDER_FRAME_MS", "60"),
            ("FLATRENDER_AGENT_CONTROL_PLANE__ENDPOINTS", endpoints.as_str()),
        ],
    );
    let second = farm.agent("node-b", &fake_aerender(), &[("FAKE_AERENDER_FRAME_MS", "60")]);
    let done = farm.wait_terminal(&job.id, WAIT_LIMIT).await;
    assert_eq!(done.status(), pb::JobStatus::Completed, "{done:?}");
    assert_eq!(done.progress.unwrap().frames_done, 20);
    let nodes = farm
        .count("SELECT count(DISTINCT lease_node_id) FROM render.frame_jobs WHERE state = 'completed'")
        .await;
    assert_eq!(nodes, 2, "both agents rendered chunks");
    let frames = std::fs::read_dir(farm.dir.path().join("renders").join(&job.id))
        .unwrap()
        .count();
    assert_eq!(frames, 20);
    let cached = wait_until(WAIT_LIMIT, || async {
        farm.count("SELECT count(*) FROM render.node_template_cache").await == 2
    })
    .await;
    assert!(cached, "each agent reported the template in its cache");
    let logs = std::fs::read_dir(first.state_dir.join("render-logs").join(&job.id))
        .unwrap()
        .count()
        + std::fs::read_dir(second.state_dir.join("render-logs").join(&job.id)).map_or(0, |dir| dir.count());
    assert_eq!(logs, 4, "aerender's raw output is kept for each chunk's run");
    assert!(
        leftover_processes(&first).is_empty() && leftover_processes(&second).is_empty(),
        "no aerender tree left"
    );
}

/// An agent killed with SIGKILL mid-chunk: its chunk is requeued and another agent finishes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_agents_chunk_is_finished_by_another() {
    let farm = Farm::start(&[]).await;
    let job = farm.submit("kill", "Main", 40, 0, 9).await;
    let mut doomed = farm.agent("node-doomed", &fake_aerender(), &[("FAKE_AERENDER_FRAME_MS", "400")]);
    let leased = wait_until(WAIT_LIMIT, || async {
        farm.count("SELECT count(*) FROM render.frame_jobs WHERE state = 'leased'")
            .await
            > 0
    })
    .await;
    assert!(leased);
    doomed.kill();
    // What a dead machine would have taken down with it.
    kill_leftovers(&doomed);
    let _rescuer = farm.agent("node-rescuer", &fake_aerender(), &[]);
    let done = farm.wait_terminal(&job.id, WAIT_LIMIT).await;
    assert_eq!(done.status(), pb::JobStatus::Completed, "{done:?}");
    let lost = farm
        .count("SELECT count(*) FROM render.node_crashes WHERE crash_class = 'agent_lost'")
        .await;
    assert!(lost >= 1, "the lost lease is recorded");
}

/// The control plane goes down while a chunk renders: the result waits in the outbox and is
/// delivered once when the control plane is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_survive_a_control_plane_outage() {
    // Leases outlive the outage here: this test is about results waiting in the outbox (lease
    // expiry during an outage is covered by the killed-agent test).
    let mut farm = Farm::start(&[
        ("FLATRENDER_DISPATCH__LEASE_TTL_SECONDS", "120"),
        ("FLATRENDER_DISPATCH__NODE_OFFLINE_AFTER_SECONDS", "120"),
    ])
    .await;
    let job = farm.submit("outage", "Main", 40, 0, 4).await;
    let agent = farm.agent("node-a", &fake_aerender(), &[("FAKE_AERENDER_FRAME_MS", "300")]);
    let leased = wait_until(WAIT_LIMIT, || async {
        farm.count("SELECT count(*) FROM render.frame_jobs WHERE state = 'leased'")
            .await
            > 0
    })
    .await;
    assert!(leased);
    farm.kill_control_plane();
    let queued = wait_until(WAIT_LIMIT, || async {
        agent.log_text().contains("control plane unreachable") || agent.log_text().contains("heartbeat failed")
    })
    .await;
    assert!(queued, "the agent noticed the outage");
    // A chunk finished while the control plane is away: its completion waits in the outbox.
    let waiting = wait_until(WAIT_LIMIT, || async {
        let log = agent.log_text();
        log.matches("chunk rendered").count() > log.matches("completion delivered").count()
    })
    .await;
    assert!(waiting, "no chunk finished during the outage\n{}", agent.log_text());
    farm.start_control_plane().await;
    let done = farm.wait_terminal(&job.id, WAIT_LIMIT).await;
    assert_eq!(
        done.status(),
        pb::JobStatus::Completed,
        "{done:?}\n{}",
        agent.log_text()
    );
    assert_eq!(
        farm.count("SELECT count(*) FROM render.frame_jobs WHERE state = 'completed'")
            .await,
        2,
        "every chunk once"
    );
    assert!(agent.log_text().contains("completion delivered"));
}

/// An agent starting up sweeps only its own orphans: another agent on the machine with the same
/// node name (another farm, another state folder) keeps rendering. Before process tags named the
/// state folder, the newcomer's start-up sweep killed the first agent's aerender mid-chunk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_named_agents_on_one_machine_leave_each_other_alone() {
    let farm = Farm::start(&[]).await;
    let job = farm.submit("twins", "Main", 40, 0, 9).await;
    let agent = farm.agent("twin", &fake_aerender(), &[("FAKE_AERENDER_FRAME_MS", "400")]);
    let rendering = wait_until(WAIT_LIMIT, || async { agent.fake_runs() > 0 }).await;
    assert!(rendering, "the first agent started rendering");
    let other_farm = Farm::start(&[]).await;
    let other = other_farm.agent("twin", &fake_aerender(), &[]);
    let other_started = wait_until(WAIT_LIMIT, || async {
        other.log_text().contains("registered with the control plane")
    })
    .await;
    assert!(other_started, "{}", other.log_text());
    let done = farm.wait_terminal(&job.id, WAIT_LIMIT).await;
    assert_eq!(done.status(), pb::JobStatus::Completed);
    assert_eq!(
        farm.count("SELECT count(*) FROM render.node_crashes").await,
        0,
        "no render was killed: {}",
        agent.log_text()
    );
    assert_eq!(agent.fake_runs(), 2, "each chunk rendered once");
}
