//! Happy paths and resilience: two agents share a job; an agent killed mid-chunk; the control
//! plane going away and coming back, for less and for longer than a lease (outage grace).

use std::time::Duration;

use flatrender_e2e::{Agent, Farm, WAIT_LIMIT, kill_leftovers, leftover_processes, wait_until};
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
    // The agent holds a chunk (a lease row alone is not enough: killing the control plane while
    // the AcquireWork answer is on the wire leaves the lease with nobody rendering it).
    let rendering = wait_until(WAIT_LIMIT, || async { agent.log_text().contains("rendering chunk") }).await;
    assert!(rendering, "the agent started a chunk\n{}", agent.log_text());
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

/// Lease timing of the outage-grace tests: a short lease, so that an outage of three of them
/// stays short.
const GRACE_TTL: Duration = Duration::from_secs(4);

/// A farm with a 4 s lease, 1 s heartbeats and nodes offline after 6 s of silence.
async fn short_lease_farm() -> Farm {
    Farm::start(&[
        ("FLATRENDER_DISPATCH__LEASE_TTL_SECONDS", "4"),
        ("FLATRENDER_DISPATCH__HEARTBEAT_INTERVAL_SECONDS", "1"),
        ("FLATRENDER_DISPATCH__NODE_OFFLINE_AFTER_SECONDS", "6"),
    ])
    .await
}

/// Waits until `agent` has an aerender running (so a chunk is mid-render), then kills the
/// control plane; returns when that happened.
async fn kill_control_plane_mid_render(farm: &mut Farm, agent: &Agent) -> tokio::time::Instant {
    // The double started and a tagged process lives: the agent's own tagged processes at start
    // (`ffmpeg -version`, `ffprobe -version`) come before it registers, so they are not a render.
    let rendering = wait_until(WAIT_LIMIT, || async {
        agent.fake_runs() > 0 && !leftover_processes(agent).is_empty()
    })
    .await;
    assert!(rendering, "the agent never started rendering\n{}", farm.logs());
    farm.kill_control_plane();
    tokio::time::Instant::now()
}

/// Restarts the control plane once the outage has lasted three lease TTLs. The fault's length
/// is the one thing here that is a duration, not a condition.
async fn end_outage_after_three_ttls(farm: &mut Farm, killed_at: tokio::time::Instant) {
    tokio::time::sleep_until(killed_at + GRACE_TTL * 3).await;
    farm.start_control_plane().await;
}

/// What every outage-grace test asserts once the job is done: it completed, nobody was
/// punished (no crash row, every chunk completed at its first attempt), and the agent's
/// outboxed reports were all taken (none refused, none stale).
async fn assert_nobody_punished(farm: &Farm, agent: &Agent, job_id: &str) {
    let done = farm.wait_terminal(job_id, WAIT_LIMIT).await;
    let log = agent.log_text();
    assert_eq!(done.status(), pb::JobStatus::Completed, "{done:?}\n{}", farm.logs());
    assert_eq!(
        farm.count("SELECT count(*) FROM render.node_crashes").await,
        0,
        "no crash row for an outage of ours\n{}",
        farm.logs()
    );
    assert_eq!(
        farm.count("SELECT count(*) FROM render.frame_jobs WHERE state = 'completed' AND attempt = 1")
            .await,
        2,
        "both chunks completed at attempt 1\n{}",
        farm.logs()
    );
    assert!(
        !log.contains("no longer ours") && !log.contains("refused a queued report"),
        "every outboxed report was accepted\n{log}"
    );
    let delivered = log.lines().filter(|line| line.contains("completion delivered")).count();
    let accepted = log
        .lines()
        .filter(|line| line.contains("completion delivered") && line.contains("Some(Accepted)"))
        .count();
    assert_eq!(
        (delivered, accepted),
        (2, 2),
        "each completion delivered once, accepted\n{log}"
    );
}

/// An outage of the control plane three lease TTLs long, during which a chunk finishes: its
/// completion waits in the outbox, is accepted when the control plane is back (the lease is
/// still live: outage grace), and nothing is requeued, charged or recorded as a crash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_of_three_leases_requeues_nothing() {
    let mut farm = short_lease_farm().await;
    let job = farm.submit("grace", "Main", 40, 0, 9).await;
    // A chunk takes under a second: it finishes well before its lease would be self-fenced.
    let agent = farm.agent("node-a", &fake_aerender(), &[("FAKE_AERENDER_FRAME_MS", "150")]);
    let killed_at = kill_control_plane_mid_render(&mut farm, &agent).await;
    let waiting = wait_until(WAIT_LIMIT, || async {
        let log = agent.log_text();
        log.matches("chunk rendered").count() > log.matches("completion delivered").count()
    })
    .await;
    assert!(waiting, "no chunk finished during the outage\n{}", agent.log_text());
    assert!(
        !agent.log_text().contains("self-fenced"),
        "the chunk finished before its lease ran out\n{}",
        agent.log_text()
    );
    end_outage_after_three_ttls(&mut farm, killed_at).await;
    assert_nobody_punished(&farm, &agent, &job.id).await;
}

/// A chunk still rendering when its lease TTL passes during the outage: the agent stops it
/// (self-fencing) and hands it back through the outbox with its verified frames; the control
/// plane, back after three TTLs, takes the hand-back without an attempt or a crash row, and the
/// job completes. Before hand-backs, the fenced chunk was silently dropped, its still-live lease
/// was reaped after the outage (an `agent_lost` row) and it rendered at attempt 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_fenced_during_an_outage_is_handed_back_without_an_attempt() {
    let mut farm = short_lease_farm().await;
    let job = farm.submit("fenced", "Main", 40, 0, 9).await;
    // Five seconds a chunk: longer than the lease, so the outage catches one mid-render.
    let agent = farm.agent("node-a", &fake_aerender(), &[("FAKE_AERENDER_FRAME_MS", "1000")]);
    let killed_at = kill_control_plane_mid_render(&mut farm, &agent).await;
    let fenced = wait_until(WAIT_LIMIT, || async {
        agent.log_text().contains("could not be renewed within their TTL")
    })
    .await;
    assert!(fenced, "the chunk was not self-fenced\n{}", agent.log_text());
    end_outage_after_three_ttls(&mut farm, killed_at).await;
    assert_nobody_punished(&farm, &agent, &job.id).await;
    let log = agent.log_text();
    assert!(
        log.lines()
            .any(|line| line.contains("failure delivered") && line.contains("will_retry=true")),
        "the hand-back was delivered and requeued\n{log}"
    );
    let control_plane_log = std::fs::read_to_string(farm.dir.path().join("control-plane.log")).unwrap();
    assert_eq!(
        control_plane_log.matches("chunk handed back").count(),
        1,
        "{control_plane_log}"
    );
}
