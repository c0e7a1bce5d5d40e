//! Regression tests for defects found by an outside gRPC client and by fault injection on a
//! live farm (issue 9). Each failed before its fix.

use std::time::Duration;

use flatrender_control_plane::readiness;
use flatrender_proto::{pb, types::TenantId};
use tonic::Code;

use crate::{
    faults::DbProxy,
    support::{Farm, authed, completed_chunk, eventually, http_get, job_request, metric_sample, test_config},
};

/// How long a test waits for something that takes well under a second on an idle machine.
const WAIT: Duration = Duration::from_secs(60);

/// The widest frame range a client can send is refused with INVALID_ARGUMENT naming the field
/// (it used to overflow the frame count and reset the stream), and nothing is written.
#[tokio::test]
async fn frame_ranges_near_i32_max_are_refused_not_panicked() {
    let farm = Farm::start().await;
    let mut client = farm.render().await;
    for (start, end) in [(0, i32::MAX), (1, i32::MAX), (0, i32::MAX - 1), (1000, i32::MAX)] {
        let mut request = job_request(TenantId::new_random(), start, end);
        request.frame_range = Some(pb::FrameRange { start, end });
        let status = client
            .submit_render_job(authed(request, &farm.service_token))
            .await
            .expect_err("an over-long range is refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{start}..{end}: {status:?}");
        assert!(status.message().contains("frame_range"), "{}", status.message());
    }
    assert_eq!(farm.count("SELECT count(*) FROM render.render_jobs").await, 0);

    // The top of the range still works for a short job.
    let job = farm
        .submit(TenantId::new_random(), i32::MAX - 9, i32::MAX, crate::support::HASH_A)
        .await;
    assert_eq!(job.progress.expect("progress").frames_total, 10);
}

/// Durations from clients (drain deadlines, token TTLs) past what a timestamp holds are
/// INVALID_ARGUMENT, not a panic.
#[tokio::test]
async fn huge_durations_are_refused_not_panicked() {
    let farm = Farm::start().await;
    let node = farm.register("node-far", &[]).await;
    let mut admin = farm.admin().await;
    let huge = prost_types::Duration {
        seconds: i64::MAX / 1000,
        nanos: 0,
    };
    let status = admin
        .drain_node(authed(
            pb::DrainNodeRequest {
                node_id: node.id.clone(),
                deadline: Some(huge),
            },
            &farm.admin_token,
        ))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("deadline"), "{}", status.message());
    let status = admin
        .create_token(authed(
            pb::CreateTokenRequest {
                kind: pb::TokenKind::Service as i32,
                label: "far".into(),
                ttl: Some(huge),
                ..Default::default()
            },
            &farm.admin_token,
        ))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("ttl"), "{}", status.message());
}

/// A message over `server.max_message_bytes` is RESOURCE_EXHAUSTED, as gRPC's status table says.
#[tokio::test]
async fn oversize_messages_are_resource_exhausted() {
    let mut config = test_config();
    config.server.max_message_bytes = 16 * 1024;
    let farm = Farm::start_with(config).await;
    let mut request = job_request(TenantId::new_random(), 0, 9);
    request.idempotency_key = "k".repeat(32 * 1024);
    let status = farm
        .render()
        .await
        .submit_render_job(authed(request, &farm.service_token))
        .await
        .expect_err("too large");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    // The connection stays usable.
    farm.submit(TenantId::new_random(), 0, 9, crate::support::HASH_A).await;
}

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

/// One CompleteWork naming the same chunk twice is ACCEPTED once, then DUPLICATE, and counts
/// one accepted completion; a stale token next to the live one is STALE.
#[tokio::test]
async fn a_chunk_named_twice_in_one_completion_counts_once() {
    let farm = Farm::start().await;
    let mut node = farm.register("node-twice", &[]).await;
    farm.submit(TenantId::new_random(), 0, 9, crate::support::HASH_A).await;
    let assignment = node.acquire(1).await.pop().unwrap();
    let mut stale = completed_chunk(&assignment);
    stale.lease_token += 1000;
    let results = node
        .client
        .complete_work(authed(
            pb::CompleteWorkRequest {
                chunks: vec![completed_chunk(&assignment), completed_chunk(&assignment), stale],
            },
            &node.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .results;
    let outcomes: Vec<_> = results.iter().map(pb::CompletionResult::outcome).collect();
    assert_eq!(
        outcomes,
        [
            pb::CompletionOutcome::Accepted,
            pb::CompletionOutcome::Duplicate,
            pb::CompletionOutcome::StaleLease
        ]
    );
    let (_, metrics) = http_get(farm.http, "/metrics").await;
    assert_eq!(
        metric_sample(&metrics, "flatrender_completions_total", &[("outcome", "accepted")]),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric_sample(&metrics, "flatrender_completions_total", &[("outcome", "duplicate")]),
        Some(1.0)
    );
    assert_eq!(
        farm.count("SELECT chunks_completed::int8 FROM render.render_jobs")
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

/// Reusing an idempotency key with a different request is ALREADY_EXISTS naming the key (it
/// used to return the first job silently); the identical request still returns that job.
#[tokio::test]
async fn an_idempotency_key_reused_for_another_request_is_a_conflict() {
    let farm = Farm::start().await;
    let mut client = farm.render().await;
    let tenant = TenantId::new_random();
    let mut first = job_request(tenant, 0, 99);
    first.idempotency_key = "order-1234".into();
    let created = client
        .submit_render_job(authed(first.clone(), &farm.service_token))
        .await
        .unwrap()
        .into_inner();
    assert!(created.created);
    let job_id = created.job.unwrap().id;

    let again = client
        .submit_render_job(authed(first.clone(), &farm.service_token))
        .await
        .unwrap()
        .into_inner();
    assert!(!again.created);
    assert_eq!(again.job.unwrap().id, job_id);

    type Change = fn(&mut pb::SubmitRenderJobRequest);
    let changes: [Change; 5] = [
        |r| r.frame_range = Some(pb::FrameRange { start: 0, end: 100 }),
        |r| r.composition = "Other Comp".into(),
        |r| r.fps = 30.0,
        |r| r.music.as_mut().unwrap().volume = 0.5,
        |r| r.template.as_mut().unwrap().blake3_hex = crate::support::HASH_B.into(),
    ];
    for change in changes {
        let mut different = first.clone();
        change(&mut different);
        let status = client
            .submit_render_job(authed(different, &farm.service_token))
            .await
            .expect_err("a different request under the same key is refused");
        assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
        assert!(status.message().contains("order-1234"), "{}", status.message());
        assert!(status.message().contains(&job_id), "{}", status.message());
    }
    assert_eq!(farm.count("SELECT count(*) FROM render.render_jobs").await, 1);
    // The same key under another tenant is another job.
    let mut other_tenant = first.clone();
    other_tenant.tenant_id = TenantId::new_random().to_string();
    let other = client
        .submit_render_job(authed(other_tenant, &farm.service_token))
        .await
        .unwrap()
        .into_inner();
    assert!(other.created);
}

async fn list_jobs_with(address: std::net::SocketAddr, token: &str) -> Result<(), tonic::Status> {
    flatrender_proto::pb::render_service_client::RenderServiceClient::new(Farm::channel_to(address).await)
        .list_render_jobs(authed(
            pb::ListRenderJobsRequest {
                tenant_id: TenantId::new_random().to_string(),
                ..Default::default()
            },
            token,
        ))
        .await
        .map(|_| ())
}

/// A token used once (so cached) stops working when it expires, not a cache lifetime later.
#[tokio::test]
async fn a_cached_token_stops_working_when_it_expires() {
    let mut config = test_config();
    config.server.auth_cache_seconds = 3600;
    let farm = Farm::start_with(config).await;
    let created = farm
        .admin()
        .await
        .create_token(authed(
            pb::CreateTokenRequest {
                kind: pb::TokenKind::Service as i32,
                label: "short-lived".into(),
                ttl: Some(prost_types::Duration { seconds: 2, nanos: 0 }),
                ..Default::default()
            },
            &farm.admin_token,
        ))
        .await
        .unwrap()
        .into_inner();
    list_jobs_with(farm.grpc, &created.token)
        .await
        .expect("valid before expiry");
    let expires_at: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT expires_at FROM render.api_tokens WHERE id = $1::uuid")
            .bind(&created.token_id)
            .fetch_one(farm.db.pool())
            .await
            .unwrap();
    assert!(eventually(|| async { chrono::Utc::now() > expires_at }).await);
    let status = list_jobs_with(farm.grpc, &created.token).await.expect_err("expired");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
}

/// A token revoked on one replica stops working on another at once (announced), even with a
/// cache lifetime of an hour there.
#[tokio::test]
async fn a_revocation_reaches_every_replica() {
    let mut config = test_config();
    config.server.auth_cache_seconds = 3600;
    let farm = Farm::start_with(config.clone()).await;
    let (other, _, _other_server) = farm.serve(config).await;
    let mut admin = farm.admin().await;
    let created = admin
        .create_token(authed(
            pb::CreateTokenRequest {
                kind: pb::TokenKind::Service as i32,
                label: "revoked soon".into(),
                ..Default::default()
            },
            &farm.admin_token,
        ))
        .await
        .unwrap()
        .into_inner();
    list_jobs_with(farm.grpc, &created.token).await.unwrap();
    list_jobs_with(other, &created.token)
        .await
        .expect("cached on the other replica");
    admin
        .revoke_token(authed(
            pb::RevokeTokenRequest {
                token_id: created.token_id.clone(),
            },
            &farm.admin_token,
        ))
        .await
        .unwrap();
    let status = list_jobs_with(farm.grpc, &created.token)
        .await
        .expect_err("revoked here");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(
        eventually(|| async {
            list_jobs_with(other, &created.token)
                .await
                .is_err_and(|status| status.code() == Code::Unauthenticated)
        })
        .await,
        "the other replica refuses the revoked token"
    );
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

/// More than a ranking window of tenants with higher-ranked work only macOS nodes can run do
/// not hide a lower-ranked tenant's work from an idle Windows node.
#[tokio::test]
async fn unrunnable_tenants_do_not_hide_runnable_work() {
    let farm = Farm::start().await;
    let mut client = farm.render().await;
    for _ in 0..20 {
        let mut request = job_request(TenantId::new_random(), 0, 9);
        request.priority = 90;
        request.requirements = Some(pb::NodeRequirements {
            os: pb::OperatingSystem::Macos as i32,
            ..Default::default()
        });
        client
            .submit_render_job(authed(request, &farm.service_token))
            .await
            .unwrap();
    }
    // Tags no node carries: unrunnable too.
    for _ in 0..4 {
        let mut request = job_request(TenantId::new_random(), 0, 9);
        request.priority = 95;
        request.requirements = Some(pb::NodeRequirements {
            tags: vec!["gpu-a100".into()],
            ..Default::default()
        });
        client
            .submit_render_job(authed(request, &farm.service_token))
            .await
            .unwrap();
    }
    let mut runnable = job_request(TenantId::new_random(), 0, 9);
    runnable.priority = 10;
    let runnable = client
        .submit_render_job(authed(runnable, &farm.service_token))
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    let mut node = farm.register("node-win", &[]).await;
    let taken = node.acquire(4).await;
    assert_eq!(taken.len(), 1, "the only runnable chunk is taken");
    assert_eq!(taken[0].job_id, runnable.id);
}

/// The crash that quarantines a node is recorded as such, and the re-admission after a passed
/// canary render marks the node's crashes recovered.
#[tokio::test]
async fn quarantine_and_readmission_are_recorded() {
    let farm = Farm::start().await;
    let mut node = farm.register("node-loop", &[]).await;
    farm.submit(TenantId::new_random(), 0, 9, crate::support::HASH_A).await;
    let assignment = node.acquire(1).await.pop().unwrap();
    node.fail(&assignment, pb::CrashClass::Crash, pb::RecoveryAction::Quarantine)
        .await
        .unwrap();
    let response = node
        .heartbeat(pb::HeartbeatRequest {
            quarantined: true,
            quarantine_reason: "3 crashes in 10 minutes".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(response.state(), pb::NodeState::Quarantined);
    assert_eq!(
        farm.count(
            "SELECT count(*) FROM render.node_crashes WHERE recovery_action = 'quarantine' AND recovered_at IS NULL"
        )
        .await,
        1
    );
    // Still quarantined while the agent says so and no probe passed.
    let response = node
        .heartbeat(pb::HeartbeatRequest {
            quarantined: true,
            ..Default::default()
        })
        .await;
    assert_eq!(response.state(), pb::NodeState::Quarantined);
    let response = node
        .heartbeat(pb::HeartbeatRequest {
            probe_succeeded: true,
            ..Default::default()
        })
        .await;
    assert_eq!(response.state(), pb::NodeState::Online);
    assert_eq!(
        farm.count("SELECT count(*) FROM render.node_crashes WHERE recovered_at IS NOT NULL")
            .await,
        1
    );
}
