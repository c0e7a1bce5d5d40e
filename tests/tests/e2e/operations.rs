//! Ops-facing behaviour: drain, quarantine, health and cache inventory reaching the database.

use std::time::Duration;

use flatrender_e2e::{Farm, authed, http_get, project_file, wait_until};
use flatrender_proto::pb::{self, admin_service_client::AdminServiceClient};
use tonic::transport::Channel;

use crate::fake_aerender;

async fn admin(farm: &Farm) -> AdminServiceClient<Channel> {
    AdminServiceClient::new(
        Channel::from_shared(farm.endpoint.clone())
            .unwrap()
            .connect()
            .await
            .unwrap(),
    )
}

/// Drain lets the running chunk finish and takes no more; the node ends drained.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_finishes_the_running_chunk_and_takes_no_more() {
    let farm = Farm::start(&[]).await;
    let job = farm.submit("drain", "Main", 40, 0, 19).await;
    let _agent = farm.agent("node-a", &fake_aerender(), &[("FAKE_AERENDER_FRAME_MS", "300")]);
    let leased = wait_until(Duration::from_secs(20), || async {
        farm.count("SELECT count(*) FROM render.frame_jobs WHERE state = 'leased'")
            .await
            == 1
    })
    .await;
    assert!(leased);
    let id = farm.node_id("node-a").await;
    admin(&farm)
        .await
        .drain_node(authed(
            pb::DrainNodeRequest {
                node_id: id,
                deadline: None,
            },
            &farm.admin_token,
        ))
        .await
        .unwrap();
    let drained = wait_until(Duration::from_secs(30), || async {
        farm.count("SELECT count(*) FROM render.nodes WHERE state = 'drained'")
            .await
            == 1
    })
    .await;
    assert!(drained, "the node drains once its chunk is done");
    assert_eq!(
        farm.count("SELECT count(*) FROM render.frame_jobs WHERE state = 'completed'")
            .await,
        1
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        farm.count("SELECT count(*) FROM render.frame_jobs WHERE state = 'pending'")
            .await,
        3,
        "no more work taken"
    );
    assert_eq!(farm.job(&job.id).await.status(), pb::JobStatus::Rendering);
}

async fn node_quarantined(farm: &Farm) -> bool {
    farm.count("SELECT count(*) FROM render.nodes WHERE state = 'quarantined'")
        .await
        == 1
}

/// Repeated crashes quarantine the node. The crash that completes the loop is reported with the
/// quarantine action. With no canary to render (none configured, no successful render yet) the
/// probes fail and say so, the node stays quarantined, and ops bring it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_crashes_quarantine_the_node() {
    let farm = Farm::start(&[]).await;
    for index in 0..3 {
        farm.submit(&format!("crashy{index}"), "Main", 40, 0, 4).await;
    }
    let agent = farm.agent(
        "node-crashy",
        &fake_aerender(),
        &[
            ("FAKE_AERENDER_MODE", "crash"),
            ("FLATRENDER_AGENT_RECOVERY__PROBE_INTERVAL_SECONDS", "1"),
            ("FLATRENDER_AGENT_RECOVERY__PROBE_INTERVAL_MAX_SECONDS", "2"),
        ],
    );
    let quarantined = wait_until(Duration::from_secs(60), || async {
        farm.count("SELECT count(*) FROM render.nodes WHERE state = 'quarantined'")
            .await
            == 1
    })
    .await;
    assert!(quarantined, "{}", agent.log_text());
    assert!(
        farm.count("SELECT count(*) FROM render.node_crashes WHERE crash_class = 'crash'")
            .await
            >= 3
    );
    assert_eq!(
        farm.count("SELECT count(*) FROM render.node_crashes WHERE recovery_action = 'quarantine'")
            .await,
        1,
        "the crash that completed the loop says so"
    );
    let probes_failed = wait_until(Duration::from_secs(60), || async {
        agent.log_text().matches("no canary to render").count() >= 2 || !node_quarantined(&farm).await
    })
    .await;
    assert!(probes_failed && node_quarantined(&farm).await, "{}", agent.log_text());
    assert_eq!(
        farm.count("SELECT count(*) FROM render.nodes WHERE state_reason LIKE '%waits for ops%'")
            .await,
        1,
        "the reason says who brings it back"
    );
    let id = farm.node_id("node-crashy").await;
    admin(&farm)
        .await
        .enable_node(authed(pb::EnableNodeRequest { node_id: id }, &farm.admin_token))
        .await
        .unwrap();
    assert_eq!(
        farm.count("SELECT count(*) FROM render.nodes WHERE state = 'online'")
            .await,
        1
    );
}

/// Issue 9 #6: a node whose every render crashes is quarantined and stays quarantined while its
/// canary render (the last chunk it rendered successfully) keeps failing, although aerender
/// still starts; once renders work again the canary re-admits it without ops, and it renders.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarantine_holds_until_a_canary_render_passes() {
    let farm = Farm::start(&[]).await;
    // The double reads this file on every run: rewriting it breaks and repairs the "machine".
    let scenario = farm.dir.path().join("canary-node.scenario");
    std::fs::write(&scenario, "mode=success\n").unwrap();
    let scenario_path = scenario.to_string_lossy().into_owned();
    let agent = farm.agent(
        "node-canary",
        &fake_aerender(),
        &[
            ("FAKE_AERENDER_SCENARIO", scenario_path.as_str()),
            ("FLATRENDER_AGENT_RECOVERY__PROBE_INTERVAL_SECONDS", "1"),
            ("FLATRENDER_AGENT_RECOVERY__PROBE_INTERVAL_MAX_SECONDS", "2"),
        ],
    );
    let first = farm.submit("healthy", "Main", 40, 0, 9).await;
    let done = farm.wait_terminal(&first.id, Duration::from_secs(60)).await;
    assert_eq!(done.status(), pb::JobStatus::Completed, "{}", agent.log_text());

    std::fs::write(&scenario, "mode=crash\n").unwrap();
    for index in 0..3 {
        farm.submit(&format!("crashing{index}"), "Main", 40, 0, 4).await;
    }
    let quarantined = wait_until(Duration::from_secs(60), || async {
        farm.count("SELECT count(*) FROM render.nodes WHERE state = 'quarantined'")
            .await
            == 1
    })
    .await;
    assert!(quarantined, "{}", agent.log_text());
    let failed_canaries = wait_until(Duration::from_secs(60), || async {
        agent.log_text().matches("canary render failed").count() >= 2 || !node_quarantined(&farm).await
    })
    .await;
    assert!(
        failed_canaries && node_quarantined(&farm).await,
        "must stay quarantined while renders crash, across failed probes:\n{}",
        agent.log_text()
    );
    assert_eq!(
        farm.count("SELECT count(*) FROM render.nodes WHERE state_reason LIKE '%canary render%'")
            .await,
        1,
        "the reason names the canary"
    );

    std::fs::write(&scenario, "mode=success\n").unwrap();
    let readmitted = wait_until(Duration::from_secs(60), || async {
        farm.count("SELECT count(*) FROM render.nodes WHERE state = 'online'")
            .await
            == 1
    })
    .await;
    assert!(readmitted, "{}", agent.log_text());
    assert!(agent.log_text().contains("canary render passed"));
    let scratch = agent.state_dir.join("canary");
    assert_eq!(
        std::fs::read_dir(&scratch).unwrap().count(),
        0,
        "the canary's scratch folders are removed"
    );
    let last = farm.submit("after", "Main", 40, 0, 9).await;
    let done = farm.wait_terminal(&last.id, Duration::from_secs(60)).await;
    assert_eq!(done.status(), pb::JobStatus::Completed, "{}", agent.log_text());
}

/// A canary project configured by ops re-admits a quarantined node when it renders, even if the
/// node never rendered anything successfully (here only the jobs' comp crashes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_canary_project_readmits_the_node() {
    let farm = Farm::start(&[]).await;
    let canary_project = farm.dir.path().join("canary.aep");
    std::fs::write(&canary_project, project_file("Canary", 10)).unwrap();
    let canary_path = canary_project.to_string_lossy().into_owned();
    farm.submit("crashy", "Main", 40, 0, 4).await;
    let agent = farm.agent(
        "node-ops-canary",
        &fake_aerender(),
        &[
            ("FAKE_AERENDER_MODE", "crash"),
            ("FAKE_AERENDER_ONLY_COMP", "Main"),
            ("FLATRENDER_AGENT_RECOVERY__CRASH_LOOP_THRESHOLD", "1"),
            ("FLATRENDER_AGENT_RECOVERY__PROBE_INTERVAL_SECONDS", "1"),
            ("FLATRENDER_AGENT_RECOVERY__CANARY_PROJECT", canary_path.as_str()),
            ("FLATRENDER_AGENT_RECOVERY__CANARY_COMPOSITION", "Canary"),
            ("FLATRENDER_AGENT_RECOVERY__CANARY_FRAME", "3"),
        ],
    );
    let readmitted = wait_until(Duration::from_secs(60), || async {
        agent.log_text().contains("node state from=quarantined to=online")
    })
    .await;
    assert!(readmitted, "{}", agent.log_text());
    let log = agent.log_text();
    assert!(
        log.contains(&format!(
            "canary render passed; leaving quarantine canary=frame 3 of \"Canary\" in {canary_path}"
        )),
        "{log}"
    );
}

/// Health samples from the agent land in the partitioned health table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_health_reaches_the_database() {
    let farm = Farm::start(&[]).await;
    let _agent = farm.agent("node-a", &fake_aerender(), &[]);
    let stored = wait_until(Duration::from_secs(30), || async {
        farm.count("SELECT count(*) FROM render.node_health_logs").await >= 2
    })
    .await;
    assert!(stored);
}

/// An agent told to stop hands its running chunk back when the grace period ends: the chunk is
/// pending again without losing an attempt, no crash is recorded, and nothing is left running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_hands_the_running_chunk_back() {
    let farm = Farm::start(&[]).await;
    farm.submit("handback", "Main", 40, 0, 9).await;
    let mut agent = farm.agent(
        "node-stopping",
        &fake_aerender(),
        &[
            ("FAKE_AERENDER_FRAME_MS", "1000"),
            ("FLATRENDER_AGENT_NODE__SHUTDOWN_GRACE_SECONDS", "1"),
        ],
    );
    let leased = wait_until(Duration::from_secs(20), || async {
        farm.count("SELECT count(*) FROM render.frame_jobs WHERE state = 'leased'")
            .await
            == 1
    })
    .await;
    assert!(leased);
    assert!(
        agent.stop(Duration::from_secs(20)).await,
        "the agent exits by itself after SIGTERM\n{}",
        agent.log_text()
    );
    assert_eq!(
        farm.count("SELECT count(*) FROM render.frame_jobs WHERE state = 'leased'")
            .await,
        0,
        "{}",
        agent.log_text()
    );
    assert_eq!(
        farm.count("SELECT count(*) FROM render.frame_jobs WHERE state = 'pending' AND attempt = 0")
            .await,
        2
    );
    assert_eq!(farm.count("SELECT count(*) FROM render.node_crashes").await, 0);
    assert!(flatrender_e2e::leftover_processes(&agent).is_empty());
}

/// The value of the sample `name` (no labels) in a Prometheus/OpenMetrics exposition.
fn sample(exposition: &str, name: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

/// Issue 9 #17: the agent's frame-time histogram and template-cache gauges move with what the
/// agent does. Two chunks of one template are rendered (one frame of them takes over a second),
/// then the agent's own /metrics is scraped over HTTP and its sample values are read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_metrics_follow_renders_and_the_cache() {
    let farm = Farm::start(&[]).await;
    let job = farm.submit("metrics", "Main", 40, 0, 9).await;
    let metrics_address = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let listen = metrics_address.to_string();
    let agent = farm.agent(
        "node-metrics",
        &fake_aerender(),
        &[
            ("FLATRENDER_AGENT_METRICS__LISTEN", listen.as_str()),
            ("FAKE_AERENDER_SLOW_FRAMES", "3:1100"),
        ],
    );
    let done = farm.wait_terminal(&job.id, Duration::from_secs(60)).await;
    assert_eq!(done.status(), pb::JobStatus::Completed, "{}", agent.log_text());
    let exposition = http_get(metrics_address, "/metrics")
        .await
        .expect("agent metrics answer");
    let value = |name: &str| sample(&exposition, name).unwrap_or_else(|| panic!("no {name} in\n{exposition}"));

    assert_eq!(value("flatrender_agent_frames_rendered_total"), 10.0, "{exposition}");
    assert_eq!(
        value("flatrender_agent_frame_seconds_count"),
        10.0,
        "one observation per rendered frame, from its progress line"
    );
    assert!(
        value("flatrender_agent_frame_seconds_sum") >= 1.0,
        "frame 3 took over a second:\n{exposition}"
    );
    let template_bytes = project_file("Main", 40).len() as f64;
    assert_eq!(value("flatrender_agent_cache_bytes"), template_bytes, "{exposition}");
    // Both chunks asked the cache; the first one missed, unless a prefetch command from the
    // control plane installed the template first (prefetches are not lookups).
    let hit_ratio = value("flatrender_agent_cache_hit_ratio");
    assert!(hit_ratio == 0.5 || hit_ratio == 1.0, "{exposition}");
    assert_eq!(value("flatrender_agent_aerender_running"), 0.0);
}
