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

/// Repeated crashes quarantine the node; ops bring it back.
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
            ("FLATRENDER_AGENT_RECOVERY__PROBE_INTERVAL_SECONDS", "3600"),
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
