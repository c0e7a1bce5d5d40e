//! Regression tests for defects that fault injection on a live farm found (issue 9): the
//! database hanging, outages longer than a lease, nodes coming back, concurrent batches, a
//! farm reconnecting at once. Each failed before its fix.

use std::time::Duration;

use flatrender_control_plane::readiness;
use flatrender_proto::{pb, types::TenantId};

use crate::{
    faults::DbProxy,
    support::{Farm, authed, completed_chunk, eventually, http_get, test_config},
};

/// How long a test waits for something that takes well under a second on an idle machine.
const WAIT: Duration = crate::support::PATIENCE;

/// The database's host and port, from the test database's URL.
fn database_address(farm: &Farm) -> std::net::SocketAddr {
    let url = farm.db.url();
    let host_and_path = url.rsplit_once('@').map_or(url.as_str(), |(_, rest)| rest);
    let host = host_and_path.split('/').next().unwrap();
    host.parse().expect("DATABASE_URL names an IP:port")
}

async fn grpc_health(address: std::net::SocketAddr, service: &str) -> i32 {
    let channel = Farm::channel_to(address).await;
    tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status
}

/// With the database hanging (not refusing: hanging, as a stopped host does), `/readyz` still
/// answers, 503, and gRPC health says NOT_SERVING for every service; both come back when the
/// database does. Before, `/readyz` waited on the pool and gRPC health said SERVING forever.
#[tokio::test]
async fn readiness_and_grpc_health_follow_the_database() {
    use tonic_health::pb::health_check_response::ServingStatus;
    let farm = Farm::start().await;
    let proxy = DbProxy::start(database_address(&farm)).await;
    // A pool that would wait ten minutes for a connection: readiness must not.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(600))
        .connect(&proxy.url_for(&farm.db.url()))
        .await
        .unwrap();
    let (grpc, http, _server) = farm.serve_with_pool(test_config(), pool).await;
    assert_eq!(http_get(http, "/readyz").await.0, 200);
    assert_eq!(grpc_health(grpc, "").await, ServingStatus::Serving as i32);

    proxy.blackhole(true);
    let answered = tokio::time::timeout(WAIT, async {
        loop {
            let (status, body) = http_get(http, "/readyz").await;
            if status == 503 {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("/readyz answers 503 while the database hangs");
    assert!(answered.contains("database"), "{answered}");
    for service in readiness::SERVICES {
        assert!(
            eventually(|| async { grpc_health(grpc, service).await == ServingStatus::NotServing as i32 }).await,
            "gRPC health of {service:?} turns NOT_SERVING"
        );
    }

    proxy.blackhole(false);
    assert!(eventually(|| async { http_get(http, "/readyz").await.0 == 200 }).await);
    for service in readiness::SERVICES {
        assert!(
            eventually(|| async { grpc_health(grpc, service).await == ServingStatus::Serving as i32 }).await,
            "gRPC health of {service:?} is SERVING again"
        );
    }
}

/// Short leases and offline times, fast reaper.
fn short_lease_config() -> flatrender_control_plane::config::Config {
    let mut config = test_config();
    config.dispatch.lease_ttl_seconds = 2;
    config.dispatch.heartbeat_interval_seconds = 1;
    config.dispatch.node_offline_after_seconds = 2;
    config
}

/// Waits until some reaper pass ran at least `after` past the database's `since`.
async fn reaper_passed(farm: &Farm, since: chrono::DateTime<chrono::Utc>, after: Duration) -> bool {
    let since = since + chrono::Duration::from_std(after).unwrap();
    eventually(|| async {
        let last: Option<chrono::DateTime<chrono::Utc>> =
            sqlx::query_scalar("SELECT last_pass_at FROM render.control_plane_beacon")
                .fetch_optional(farm.db.pool())
                .await
                .unwrap();
        last.is_some_and(|last| last > since)
    })
    .await
}

async fn database_now(farm: &Farm) -> chrono::DateTime<chrono::Utc> {
    sqlx::query_scalar("SELECT now()")
        .fetch_one(farm.db.pool())
        .await
        .unwrap()
}

fn lease_of(assignment: &pb::WorkAssignment) -> pb::HeartbeatRequest {
    pb::HeartbeatRequest {
        leases: vec![pb::LeaseStatus {
            frame_job_id: assignment.frame_job_id.clone(),
            lease_token: assignment.lease_token,
            frames_done: 0,
        }],
        ..Default::default()
    }
}

/// A node marked offline that comes back (heartbeat) is not reaped again before its liveness
/// is flushed, and a lease it takes at once stays its own: no requeue, no `agent_lost` row.
/// Two replicas: the node talks to one (which flushes liveness once a second and does not
/// reap), the other reaps every 100 ms, so the reaper never sees this replica's memory.
#[tokio::test]
async fn a_node_that_comes_back_is_not_reaped_again() {
    let mut quiet = short_lease_config();
    quiet.dispatch.reaper_interval_ms = 600_000;
    let farm = Farm::start_with(quiet).await;
    let (_reaper_grpc, _reaper_http, _reaper) = farm.serve(short_lease_config()).await;
    let mut node = farm.register("node-back", &[]).await;
    assert!(
        eventually(|| async {
            farm.count("SELECT count(*) FROM render.nodes WHERE name = 'node-back' AND state = 'offline'")
                .await
                == 1
        })
        .await,
        "a silent node goes offline"
    );
    farm.submit(TenantId::new_random(), 0, 9, crate::support::HASH_A).await;

    let back_at = database_now(&farm).await;
    let response = node.heartbeat(pb::HeartbeatRequest::default()).await;
    assert_eq!(response.state(), pb::NodeState::Online);
    // This replica may learn of the offline mark only at its next refresh: then the liveness
    // flush brings the node back instead of the heartbeat. Either way it gets work.
    let deadline = tokio::time::Instant::now() + WAIT;
    let assignment = loop {
        if let Some(assignment) = node.acquire(1).await.pop() {
            break assignment;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the node that came back gets work"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Several reaper passes, without a heartbeat for less than the offline time.
    assert!(reaper_passed(&farm, back_at, Duration::from_millis(1200)).await);
    let response = node.heartbeat(lease_of(&assignment)).await;
    assert_eq!(response.state(), pb::NodeState::Online, "{response:?}");
    assert!(
        response
            .commands
            .iter()
            .all(|command| !matches!(command.command, Some(pb::node_command::Command::CancelLease(_))))
    );
    assert_eq!(node.complete(&assignment).await, pb::CompletionOutcome::Accepted);
    assert_eq!(
        farm.count("SELECT count(*) FROM render.node_crashes WHERE crash_class = 'agent_lost'")
            .await,
        0
    );
    assert_eq!(
        farm.count("SELECT max(attempt)::int8 FROM render.frame_jobs WHERE state = 'completed'")
            .await,
        1
    );
}

/// A database outage of three lease lifetimes ends with every lease still its node's: the
/// reaper counts silence from when the control plane could hear again, so nothing is requeued,
/// no attempt is charged, no `agent_lost` row is written, and the finished chunk is accepted.
#[tokio::test]
async fn an_outage_longer_than_the_lease_punishes_nobody() {
    // The only control plane reaches its database through the proxy.
    let mut farm = Farm::without_server().await;
    let proxy = DbProxy::start(database_address(&farm)).await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(600))
        .connect(&proxy.url_for(&farm.db.url()))
        .await
        .unwrap();
    farm.attach(short_lease_config(), pool).await;
    let mut node = farm.register("node-outage", &[]).await;
    farm.submit(TenantId::new_random(), 0, 19, crate::support::HASH_A).await;
    let assignments = node.acquire(2).await;
    assert_eq!(assignments.len(), 2);

    // The outage: the database hangs for 3 x the lease TTL (the fault's length, not a wait
    // for a result). The node cannot reach anything meanwhile.
    proxy.blackhole(true);
    tokio::time::sleep(Duration::from_secs(6)).await;
    proxy.blackhole(false);
    let restored = database_now(&farm).await;

    // The worst case: reaper passes run before the node's first heartbeat.
    assert!(reaper_passed(&farm, restored, Duration::from_millis(500)).await);
    let response = node
        .heartbeat(pb::HeartbeatRequest {
            leases: assignments.iter().flat_map(|a| lease_of(a).leases).collect(),
            ..Default::default()
        })
        .await;
    assert!(
        response
            .commands
            .iter()
            .all(|command| !matches!(command.command, Some(pb::node_command::Command::CancelLease(_)))),
        "{response:?}"
    );
    for assignment in &assignments {
        assert_eq!(node.complete(assignment).await, pb::CompletionOutcome::Accepted);
    }
    assert_eq!(farm.count("SELECT count(*) FROM render.node_crashes").await, 0);
    assert_eq!(
        farm.count("SELECT count(*) FROM render.frame_jobs WHERE state = 'completed' AND attempt = 1")
            .await,
        2
    );
    assert_eq!(
        farm.count("SELECT count(*) FROM render.nodes WHERE state = 'online'")
            .await,
        1
    );
}

/// Batched completions of chunks of the same jobs, from several nodes at once and in
/// different orders, never deadlock (every transaction locks jobs first, in id order).
#[tokio::test]
async fn concurrent_batched_completions_do_not_deadlock() {
    let farm = Farm::start().await;
    let mut nodes = Vec::new();
    for index in 0..4 {
        let mut request = crate::support::registration(&format!("node-batch-{index}"), &[]);
        request.max_leases = 16;
        let mut client = farm.nodes().await;
        let response = client
            .register_node(authed(request, &farm.join_token))
            .await
            .unwrap()
            .into_inner();
        nodes.push(crate::support::TestNode {
            id: response.node_id,
            token: response.node_token,
            client,
        });
    }
    for _round in 0..6 {
        // Jobs of three chunks, taken one chunk per call, round robin over four nodes: every
        // node ends up with chunks of a different subset of the jobs.
        for _ in 0..22 {
            farm.submit(TenantId::new_random(), 0, 29, crate::support::HASH_A).await;
        }
        let mut held: Vec<Vec<pb::WorkAssignment>> = vec![Vec::new(); nodes.len()];
        for _ in 0..16 {
            for (index, node) in nodes.iter_mut().enumerate() {
                held[index].extend(node.acquire(1).await);
            }
        }
        assert_eq!(held.iter().map(Vec::len).sum::<usize>(), 64);
        // Each node heartbeats its leases (batched renewals) while all complete at once.
        let batches = nodes.iter().zip(held).enumerate().map(|(index, (node, mut chunks))| {
            // Different orders per node.
            if index % 2 == 1 {
                chunks.reverse();
            }
            let shift = index * 3 % chunks.len().max(1);
            chunks.rotate_left(shift);
            let mut client = node.client.clone();
            let mut heartbeats = node.client.clone();
            let token = node.token.clone();
            async move {
                let mut renewals = pb::HeartbeatRequest::default();
                for chunk in chunks.iter().rev() {
                    renewals.leases.extend(lease_of(chunk).leases);
                }
                let heartbeat = heartbeats.heartbeat(authed(renewals, &token));
                let completion = client.complete_work(authed(
                    pb::CompleteWorkRequest {
                        chunks: chunks.iter().map(completed_chunk).collect(),
                    },
                    &token,
                ));
                let (heartbeat, completion) = tokio::join!(heartbeat, completion);
                heartbeat.expect("no heartbeat fails (deadlock detected?)");
                completion
            }
        });
        for result in futures_join_all(batches).await {
            let results = result
                .expect("no batch fails (deadlock detected?)")
                .into_inner()
                .results;
            assert!(
                results
                    .iter()
                    .all(|result| result.outcome() == pb::CompletionOutcome::Accepted)
            );
        }
    }
    assert_eq!(
        farm.count("SELECT count(*) FROM render.frame_jobs WHERE state = 'completed'")
            .await,
        6 * 64
    );
}

/// Runs futures concurrently (the tests crate has no `futures` dependency).
async fn futures_join_all<F: std::future::Future + Send + 'static>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(handles.len());
    for handle in handles {
        outputs.push(handle.await.unwrap());
    }
    outputs
}

/// As many concurrent registrations as the pool has connections, and more, all succeed (each
/// used to hold a connection while re-reading every node through another one).
#[tokio::test]
async fn a_farm_reconnecting_at_once_can_register() {
    let mut farm = Farm::without_server().await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(3)
        .acquire_timeout(Duration::from_secs(10))
        .connect(&farm.db.url())
        .await
        .unwrap();
    farm.attach(test_config(), pool).await;
    let registrations = (0..24).map(|index| {
        let address = farm.grpc;
        let join_token = farm.join_token.clone();
        async move {
            let mut client = pb::node_service_client::NodeServiceClient::new(Farm::channel_to(address).await);
            client
                .register_node(authed(
                    crate::support::registration(&format!("node-rush-{index}"), &[]),
                    &join_token,
                ))
                .await
        }
    });
    for result in futures_join_all(registrations).await {
        result.expect("every registration succeeds");
    }
    assert_eq!(farm.count("SELECT count(*) FROM render.nodes").await, 24);
    assert_eq!(
        farm.count("SELECT count(*) FROM render.api_tokens WHERE kind = 'node' AND revoked_at IS NULL")
            .await,
        24
    );
}
